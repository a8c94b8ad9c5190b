//! The create and delete state machines: each `advance` is one short step, and everything
//! a step needs is in the node directory, so a restarted launcher can delete what it made.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use nodepool_driver::{CreateMachine, DeleteMachine, DriverError, Instance, Quota};
use nodepool_model::ExternalId;
use tokio::io::AsyncReadExt as _;

use crate::host;
use crate::node_dir::{self, NodeDir, NodeRecord, io_error};

/// What a create needs from the provider.
#[derive(Debug, Clone)]
pub struct Launch {
    pub settings: Arc<crate::Settings>,
    pub hostname: String,
    pub pool: String,
    pub label: String,
    pub image: PathBuf,
    pub cores: u32,
    pub ram: u64,
    /// GiB; the overlay grows the image to this size.
    pub disk_size: Option<u64>,
    pub metadata: nodepool_driver::Metadata,
    /// Cloud images name their user; diskimage users come from the build record.
    pub username: Option<String>,
}

/// Serializes port choice across concurrent creates in this process.
static PORTS: Mutex<u16> = Mutex::new(0);

/// The qemu command line for one node.
pub fn qemu_args(launch: &Launch, node: &NodeDir, port: u16, kvm: bool) -> Vec<String> {
    let path = |p: PathBuf| p.to_string_lossy().into_owned();
    let mut args = vec![
        // The node's name tags the process, so a pid is only ever taken for this node's VM.
        "-name".to_string(),
        format!("{},process=qemu-{}", launch.hostname, launch.hostname),
        "-daemonize".into(),
        "-pidfile".into(),
        path(node.pidfile()),
        "-m".into(),
        format!("{}M", launch.ram),
        "-smp".into(),
        launch.cores.to_string(),
    ];
    if kvm {
        args.extend(["-accel".into(), "kvm".into(), "-cpu".into(), "host".into()]);
    } else {
        // A large translation cache: TCG boots spend most of their time translating.
        args.extend(["-accel".into(), "tcg,tb-size=256".into()]);
    }
    args.extend([
        // No window, but a VGA device: GRUB and the BIOS want a video console.
        "-display".into(),
        "none".into(),
        "-monitor".into(),
        "none".into(),
        "-serial".into(),
        format!("file:{}", path(node.console())),
        "-drive".into(),
        format!("file={},if=none,format=qcow2,id=root", path(node.overlay())),
        // The boot disk first, whatever order the PCI slots give.
        "-device".into(),
        "virtio-blk-pci,drive=root,bootindex=0".into(),
        "-drive".into(),
        format!(
            "file={},if=none,format=raw,id=nodepool-config,readonly=on",
            path(node.config_disk())
        ),
        "-device".into(),
        "virtio-blk-pci,drive=nodepool-config,serial=nodepool-config".into(),
        "-netdev".into(),
        format!("user,id=net0,hostfwd=tcp:127.0.0.1:{port}-:22"),
        "-device".into(),
        "virtio-net-pci,netdev=net0".into(),
    ]);
    args
}

#[derive(Debug)]
enum CreateStep {
    Prepare,
    Start,
    Booting { port: u16, deadline: Instant },
    Done,
}

#[derive(Debug)]
pub struct QemuCreate {
    launch: Launch,
    node: NodeDir,
    step: CreateStep,
}

impl QemuCreate {
    pub fn new(launch: Launch) -> QemuCreate {
        let node = NodeDir::new(&launch.settings.state_dir, &launch.hostname);
        QemuCreate {
            launch,
            node,
            step: CreateStep::Prepare,
        }
    }

    fn record(&self) -> Result<NodeRecord, DriverError> {
        self.node.read_record().ok_or_else(|| {
            DriverError::Fatal(format!(
                "node {}: its record {} is gone",
                self.launch.hostname,
                self.node.record_path().display()
            ))
        })
    }

    /// Node directory, port, record, overlay disk and config disk.
    async fn prepare(&mut self) -> Result<(), DriverError> {
        let settings = &self.launch.settings;
        if !self.launch.image.is_file() {
            return Err(DriverError::Fatal(format!(
                "node {}: image {} does not exist",
                self.launch.hostname,
                self.launch.image.display()
            )));
        }
        let key = host::public_key(&settings.ssh_key).await?;
        let port = {
            let mut last = PORTS.lock().unwrap_or_else(PoisonError::into_inner);
            let used: BTreeSet<u16> = node_dir::all_records(&settings.state_dir)
                .values()
                .map(|r| r.port)
                .collect();
            let port = free_port(settings.ssh_port_range, &used, *last).ok_or_else(|| {
                DriverError::Quota(format!(
                    "no free port left in {}-{} for the VM's SSH",
                    settings.ssh_port_range.0, settings.ssh_port_range.1
                ))
            })?;
            *last = port;
            self.node.write_record(&NodeRecord {
                hostname: self.launch.hostname.clone(),
                pool: self.launch.pool.clone(),
                label: self.launch.label.clone(),
                image: self.launch.image.clone(),
                port,
                cores: self.launch.cores,
                ram: self.launch.ram,
                metadata: self.launch.metadata.clone(),
                created: SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map(|d| d.as_secs_f64())
                    .unwrap_or(0.0),
            })?;
            port
        };
        tracing::debug!(hostname = %self.launch.hostname, port, "qemu node prepared");
        let format = image_format(&self.launch.image).await?;
        let mut create = tokio::process::Command::new("qemu-img");
        create
            .args(["create", "-q", "-f", "qcow2", "-F", &format, "-b"])
            .arg(&self.launch.image)
            .arg(self.node.overlay());
        if let Some(gib) = self.launch.disk_size {
            create.arg(format!("{gib}G"));
        }
        run(&mut create, "qemu-img create").await?;
        let config = node_dir::config_disk(&self.launch.hostname, &key);
        std::fs::write(self.node.config_disk(), config)
            .map_err(|e| io_error("writing", &self.node.config_disk(), e))
    }

    async fn start(&mut self) -> Result<u16, DriverError> {
        let record = self.record()?;
        if self.node.live_pid(&self.launch.hostname).is_some() {
            return Ok(record.port);
        }
        let settings = &self.launch.settings;
        let kvm = host::use_kvm(settings.accel);
        let args = qemu_args(&self.launch, &self.node, record.port, kvm);
        tracing::info!(hostname = %self.launch.hostname, port = record.port, kvm, "starting the VM");
        run(
            tokio::process::Command::new(&settings.qemu_binary).args(&args),
            &settings.qemu_binary,
        )
        .await?;
        Ok(record.port)
    }

    fn instance(&self, port: u16) -> Instance {
        let resources = Quota::one_instance()
            .with("cores", f64::from(self.launch.cores))
            .with("ram", self.launch.ram as f64);
        Instance {
            external_id: Some(ExternalId::Id(self.launch.hostname.clone())),
            interface_ip: Some("127.0.0.1".into()),
            public_ipv4: Some("127.0.0.1".into()),
            private_ipv4: None,
            public_ipv6: None,
            private_ipv6: None,
            cloud: None,
            region: None,
            az: None,
            host_id: None,
            driver_data: serde_json::Value::Null,
            slot: None,
            node_properties: None,
            metadata: self.launch.metadata.clone(),
            resources: Some(resources),
            username: self.launch.username.clone(),
            python_path: None,
            shell_type: None,
            connection_port: Some(port),
            connection_type: Some("ssh".into()),
            host_keys: None,
        }
    }
}

/// A port in the range nobody else's VM has and nothing on this machine listens on.
fn free_port(range: (u16, u16), used: &BTreeSet<u16>, hint: u16) -> Option<u16> {
    let mut taken = used.clone();
    loop {
        let port = node_dir::choose_port(range, &taken, hint)?;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return Some(port);
        }
        taken.insert(port);
    }
}

/// The image file's format, as qemu-img sees it.
async fn image_format(image: &Path) -> Result<String, DriverError> {
    let output = tokio::process::Command::new("qemu-img")
        .args(["info", "--output=json"])
        .arg(image)
        .output()
        .await
        .map_err(|e| DriverError::Fatal(format!("running qemu-img info: {e}")))?;
    if !output.status.success() {
        return Err(DriverError::Fatal(format!(
            "qemu-img info {}: {}",
            image.display(),
            nodepool_driver::stderr_tail(&output.stderr)
        )));
    }
    let info: serde_json::Value = serde_json::from_slice(&output.stdout)
        .map_err(|e| DriverError::Fatal(format!("qemu-img info {}: {e}", image.display())))?;
    info.get("format")
        .and_then(|f| f.as_str())
        .map(str::to_string)
        .ok_or_else(|| DriverError::Fatal(format!("qemu-img info {}: no format", image.display())))
}

async fn run(command: &mut tokio::process::Command, what: &str) -> Result<(), DriverError> {
    let output = command
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .map_err(|e| DriverError::Fatal(format!("running {what}: {e}")))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(DriverError::Fatal(format!(
            "{what} failed ({}): {}",
            output.status,
            nodepool_driver::stderr_tail(&output.stderr)
        )))
    }
}

/// Whether an SSH server answers on the forwarded port. User-mode networking accepts the
/// connection even before the guest listens, so only the server's banner counts.
async fn ssh_banner(port: u16) -> bool {
    let attempt = async {
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .ok()?;
        let mut buf = [0u8; 8];
        let mut got = 0;
        while got < 4 {
            let n = stream.read(&mut buf[got..]).await.ok()?;
            if n == 0 {
                return None;
            }
            got += n;
        }
        Some(buf.starts_with(b"SSH-"))
    };
    tokio::time::timeout(Duration::from_secs(3), attempt)
        .await
        .ok()
        .flatten()
        .unwrap_or(false)
}

#[async_trait]
impl CreateMachine for QemuCreate {
    async fn advance(&mut self) -> Result<Option<Instance>, DriverError> {
        match self.step {
            CreateStep::Prepare => {
                self.prepare().await?;
                self.step = CreateStep::Start;
                Ok(None)
            }
            CreateStep::Start => {
                let port = self.start().await?;
                let deadline =
                    Instant::now() + Duration::from_secs(self.launch.settings.boot_timeout);
                self.step = CreateStep::Booting { port, deadline };
                Ok(None)
            }
            CreateStep::Booting { port, deadline } => {
                if self.node.live_pid(&self.launch.hostname).is_none() {
                    return Err(DriverError::Fatal(format!(
                        "node {}: the VM exited while booting; console: {}",
                        self.launch.hostname,
                        tail(&self.node.console(), 2000)
                    )));
                }
                if ssh_banner(port).await {
                    self.step = CreateStep::Done;
                    return Ok(Some(self.instance(port)));
                }
                if Instant::now() >= deadline {
                    return Err(DriverError::Transient(format!(
                        "node {}: SSH did not answer within {} s",
                        self.launch.hostname, self.launch.settings.boot_timeout
                    )));
                }
                Ok(None)
            }
            CreateStep::Done => Err(DriverError::Fatal("create already finished".into())),
        }
    }

    fn state(&self) -> &str {
        match self.step {
            CreateStep::Prepare => "preparing",
            CreateStep::Start => "starting",
            CreateStep::Booting { .. } => "booting",
            CreateStep::Done => "complete",
        }
    }

    fn external_id(&self) -> Option<ExternalId> {
        Some(ExternalId::Id(self.launch.hostname.clone()))
    }

    fn poll_after(&self) -> Duration {
        match self.step {
            CreateStep::Booting { .. } => Duration::from_secs(1),
            _ => Duration::from_millis(10),
        }
    }
}

/// The end of a file, for error messages and console logs.
pub fn tail(path: &Path, max: usize) -> String {
    let Ok(bytes) = std::fs::read(path) else {
        return String::new();
    };
    let start = bytes.len().saturating_sub(max);
    String::from_utf8_lossy(&bytes[start..]).into_owned()
}

#[derive(Debug)]
enum DeleteStep {
    Stop,
    WaitExit {
        pid: u32,
        killed: bool,
        since: Instant,
    },
    Remove,
}

#[derive(Debug)]
pub struct QemuDelete {
    hostname: String,
    node: NodeDir,
    step: DeleteStep,
}

impl QemuDelete {
    pub fn new(state_dir: &Path, hostname: &str) -> QemuDelete {
        QemuDelete {
            hostname: hostname.to_string(),
            node: NodeDir::new(state_dir, hostname),
            step: DeleteStep::Stop,
        }
    }
}

async fn signal(pid: u32, signal: &str) {
    let _ = tokio::process::Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .output()
        .await;
}

#[async_trait]
impl DeleteMachine for QemuDelete {
    async fn advance(&mut self) -> Result<bool, DriverError> {
        match self.step {
            DeleteStep::Stop => {
                // Node names are plain (`np<id>`); anything else must not become a path.
                if self.hostname.is_empty() || self.hostname.contains(['/', '.']) {
                    return Err(DriverError::NotFound(format!(
                        "no qemu node {:?}",
                        self.hostname
                    )));
                }
                if !self.node.exists() {
                    return Err(DriverError::NotFound(format!(
                        "qemu node {}",
                        self.hostname
                    )));
                }
                match self.node.live_pid(&self.hostname) {
                    Some(pid) => {
                        tracing::info!(hostname = %self.hostname, pid, "stopping the VM");
                        signal(pid, "TERM").await;
                        self.step = DeleteStep::WaitExit {
                            pid,
                            killed: false,
                            since: Instant::now(),
                        };
                    }
                    None => self.step = DeleteStep::Remove,
                }
                Ok(false)
            }
            DeleteStep::WaitExit { pid, killed, since } => {
                if self.node.live_pid(&self.hostname).is_none() {
                    self.step = DeleteStep::Remove;
                } else if !killed && since.elapsed() > Duration::from_secs(10) {
                    signal(pid, "KILL").await;
                    self.step = DeleteStep::WaitExit {
                        pid,
                        killed: true,
                        since,
                    };
                }
                Ok(false)
            }
            DeleteStep::Remove => {
                match std::fs::remove_dir_all(&self.node.path) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                        return Err(io_error("removing", &self.node.path, e));
                    }
                    _ => {}
                }
                tracing::info!(hostname = %self.hostname, "qemu node deleted");
                Ok(true)
            }
        }
    }

    fn state(&self) -> &str {
        match self.step {
            DeleteStep::Stop => "stopping",
            DeleteStep::WaitExit { .. } => "waiting for exit",
            DeleteStep::Remove => "removing",
        }
    }

    fn poll_after(&self) -> Duration {
        match self.step {
            DeleteStep::WaitExit { .. } => Duration::from_millis(200),
            _ => Duration::from_millis(10),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn launch() -> Launch {
        Launch {
            settings: Arc::new(crate::Settings {
                provider: "local".into(),
                image_dir: "/i".into(),
                state_dir: "/s".into(),
                qemu_binary: "qemu-system-x86_64".into(),
                accel: nodepool_config::QemuAccel::Auto,
                boot_timeout: 300,
                ssh_port_range: (42000, 42999),
                ssh_key: "/s/id_ed25519".into(),
                host_cores: None,
                host_ram: None,
            }),
            hostname: "np0000000007".into(),
            pool: "main".into(),
            label: "debian".into(),
            image: "/i/debian.qcow2".into(),
            cores: 2,
            ram: 768,
            disk_size: None,
            metadata: Default::default(),
            username: None,
        }
    }

    #[test]
    fn command_line_tags_the_process_and_forwards_ssh() {
        let l = launch();
        let node = NodeDir::new(Path::new("/s"), &l.hostname);
        let args = qemu_args(&l, &node, 42007, false).join(" ");
        assert!(
            args.contains("-name np0000000007,process=qemu-np0000000007"),
            "{args}"
        );
        assert!(args.contains("-pidfile /s/np0000000007/qemu.pid"));
        assert!(args.contains("-m 768M -smp 2"));
        assert!(args.contains("-accel tcg,tb-size=256"));
        assert!(args.contains("hostfwd=tcp:127.0.0.1:42007-:22"));
        assert!(args.contains("serial=nodepool-config"));
        assert!(args.contains("-serial file:/s/np0000000007/console.log"));
        let kvm = qemu_args(&l, &node, 42007, true).join(" ");
        assert!(kvm.contains("-accel kvm -cpu host"));
    }

    #[tokio::test]
    async fn delete_of_an_unknown_node_is_not_found() {
        let dir = tempfile::tempdir().unwrap();
        let mut delete = QemuDelete::new(dir.path(), "np404");
        assert!(matches!(
            delete.advance().await,
            Err(DriverError::NotFound(_))
        ));
        let mut sneaky = QemuDelete::new(dir.path(), "../etc");
        assert!(matches!(
            sneaky.advance().await,
            Err(DriverError::NotFound(_))
        ));
    }

    #[tokio::test]
    async fn delete_removes_a_node_without_a_vm() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("np1")).unwrap();
        std::fs::write(dir.path().join("np1/qemu.pid"), "1\n").unwrap();
        let mut delete = QemuDelete::new(dir.path(), "np1");
        let mut done = false;
        for _ in 0..5 {
            if delete.advance().await.unwrap() {
                done = true;
                break;
            }
        }
        assert!(done);
        assert!(!dir.path().join("np1").exists());
    }
}
