//! The create and delete state machines: each `advance` is one short step, and everything
//! a step needs is in the node directory, so a restarted launcher can delete what it made.
//!
//! A VM's network (issue 16): QEMU runs inside a network namespace of the node's own
//! (`ip netns exec`), still with user-mode networking, whose SSH forward listens on port 22 of
//! the namespace's address. A veth pair with a /30 from the provider's `subnet` joins the
//! namespace to this machine, and the node firewall (`node_network::firewall`) drops what
//! arrives from it for this machine or another node and masquerades the rest. The guest's
//! `10.0.2.2` (user-mode networking's "host") is the namespace's own loopback, where nothing
//! listens; its `10.0.2.3` resolver forwards to the name servers of
//! `/etc/netns/<namespace>/resolv.conf`, which `ip netns exec` puts over `/etc/resolv.conf`.

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use nodepool_driver::command::run;
use nodepool_driver::node_network::{AddressPair, Leases, dns, firewall, links};
use nodepool_driver::{CreateMachine, DeleteMachine, DriverError, Instance};
use nodepool_model::ExternalId;
use tokio::io::AsyncReadExt as _;
use tokio::process::Command;

use crate::host;
use crate::node_dir::{self, NodeDir, NodeRecord, SSH_PORT, io_error};

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

/// Whether "nodes get no DNS" was logged: once per process is enough.
static WARNED_NO_NAMESERVERS: AtomicBool = AtomicBool::new(false);

/// Files `ip netns exec <namespace>` puts over `/etc` for the processes it starts.
fn netns_etc(namespace: &str) -> PathBuf {
    Path::new("/etc/netns").join(namespace)
}

/// The qemu command line for one node, whose SSH is forwarded from port 22 of `ssh` (the
/// address of the network namespace QEMU runs in).
pub fn qemu_args(launch: &Launch, node: &NodeDir, ssh: Ipv4Addr, kvm: bool) -> Vec<String> {
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
        format!("user,id=net0,hostfwd=tcp:{ssh}:{SSH_PORT}-:22"),
        "-device".into(),
        "virtio-net-pci,netdev=net0".into(),
    ]);
    args
}

#[derive(Debug)]
enum CreateStep {
    Prepare,
    Network,
    Start,
    Booting { ssh: SocketAddr, deadline: Instant },
    Done,
}

#[derive(Debug)]
pub struct QemuCreate {
    launch: Launch,
    node: NodeDir,
    step: CreateStep,
    /// The node's addresses, claimed by `Prepare`.
    pair: Option<AddressPair>,
}

impl QemuCreate {
    pub fn new(launch: Launch) -> QemuCreate {
        let node = NodeDir::new(&launch.settings.state_dir, &launch.hostname);
        QemuCreate {
            launch,
            node,
            step: CreateStep::Prepare,
            pair: None,
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

    /// The addresses `Prepare` claimed, with the node's namespace and host link.
    fn network(&self) -> Result<(AddressPair, String, String), DriverError> {
        let pair = self.pair.ok_or_else(|| {
            DriverError::Fatal(format!("node {}: no address claimed", self.launch.hostname))
        })?;
        let (namespace, link) = NodeRecord::network_names_of(&self.launch.hostname, pair.container);
        Ok((pair, namespace, link))
    }

    /// Node directory, address lease, record, overlay disk and config disk.
    async fn prepare(&mut self) -> Result<(), DriverError> {
        let settings = &self.launch.settings;
        let hostname = &self.launch.hostname;
        if !self.launch.image.is_file() {
            return Err(DriverError::Fatal(format!(
                "node {hostname}: image {} does not exist",
                self.launch.image.display()
            )));
        }
        // Checked before anything is made: without them there is no node to clean up.
        settings.tools()?;
        let key = host::public_key(&settings.ssh_key).await?;
        // The directory before the lease: a delete of this node finds the directory, and
        // releases the lease with it.
        std::fs::create_dir_all(&self.node.path)
            .map_err(|e| io_error("creating", &self.node.path, e))?;
        // Taken besides the leases: addresses of this provider's nodes whose lease was lost,
        // and of every node link on this machine (another provider or state dir on an
        // overlapping subnet, a container).
        let also_used: Vec<Ipv4Addr> = node_dir::all_records(&settings.state_dir)
            .values()
            .filter(|record| record.hostname != *hostname)
            .filter_map(|record| record.address)
            .chain(links::node_link_addresses())
            .collect();
        let pair =
            Leases::new(&settings.state_dir).claim_for(&settings.subnet, hostname, &also_used)?;
        self.node.write_record(&NodeRecord {
            hostname: hostname.clone(),
            pool: self.launch.pool.clone(),
            label: self.launch.label.clone(),
            image: self.launch.image.clone(),
            port: SSH_PORT,
            address: Some(pair.container),
            cores: self.launch.cores,
            ram: self.launch.ram,
            metadata: self.launch.metadata.clone(),
            created: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs_f64())
                .unwrap_or(0.0),
        })?;
        self.pair = Some(pair);
        tracing::debug!(hostname = %hostname, address = %pair.container, "qemu node prepared");
        let format = image_format(&self.launch.image).await?;
        let mut create = Command::new("qemu-img");
        create
            .args(["create", "-q", "-f", "qcow2", "-F", &format, "-b"])
            .arg(&self.launch.image)
            .arg(self.node.overlay());
        if let Some(gib) = self.launch.disk_size {
            create.arg(format!("{gib}G"));
        }
        run(&mut create).await?;
        let config = node_dir::config_disk(hostname, &key);
        std::fs::write(self.node.config_disk(), config)
            .map_err(|e| io_error("writing", &self.node.config_disk(), e))
    }

    /// The firewall, the node's namespace joined to this machine, and its resolv.conf.
    /// Every part is repeatable.
    async fn make_network(&mut self) -> Result<(), DriverError> {
        let settings = &self.launch.settings;
        let tools = settings.tools()?;
        let (pair, namespace, link) = self.network()?;
        // Before the link exists, so nothing ever leaves the namespace unfiltered.
        firewall::ensure(&tools.nft, &settings.subnet).await?;
        if !links::netns_exists(&namespace) {
            run(Command::new(&tools.ip).args(["netns", "add", &namespace])).await?;
        }
        links::join(&tools.ip, &namespace, &link, pair).await?;
        let servers = dns::node_nameservers();
        if servers.is_empty() && !WARNED_NO_NAMESERVERS.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                "no name server this machine uses is reachable from nodes (only loopback ones in {} and {}): VMs get no DNS",
                dns::RESOLV_CONF,
                dns::RESOLVED_UPSTREAM
            );
        }
        let etc = netns_etc(&namespace);
        std::fs::create_dir_all(&etc).map_err(|e| io_error("creating", &etc, e))?;
        let resolv = etc.join("resolv.conf");
        std::fs::write(&resolv, dns::resolv_conf(&servers))
            .map_err(|e| io_error("writing", &resolv, e))?;
        tracing::info!(hostname = %self.launch.hostname, %namespace, address = %pair.container, "VM network ready");
        Ok(())
    }

    async fn start(&mut self) -> Result<SocketAddr, DriverError> {
        let (pair, namespace, _) = self.network()?;
        let ssh = SocketAddr::from((pair.container, SSH_PORT));
        if self.node.live_pid(&self.launch.hostname).is_some() {
            return Ok(ssh);
        }
        let settings = &self.launch.settings;
        let tools = settings.tools()?;
        let kvm = host::use_kvm(settings.accel);
        let args = qemu_args(&self.launch, &self.node, pair.container, kvm);
        tracing::info!(hostname = %self.launch.hostname, %namespace, kvm, "starting the VM");
        run(Command::new(&tools.ip)
            .args(["netns", "exec", &namespace])
            .arg(&settings.qemu_binary)
            .args(&args))
        .await?;
        Ok(ssh)
    }
}

/// The image file's format, as qemu-img sees it.
async fn image_format(image: &Path) -> Result<String, DriverError> {
    let output = run(Command::new("qemu-img")
        .args(["info", "--output=json"])
        .arg(image))
    .await?;
    let info: serde_json::Value = serde_json::from_str(&output)
        .map_err(|e| DriverError::Fatal(format!("qemu-img info {}: {e}", image.display())))?;
    info.get("format")
        .and_then(|f| f.as_str())
        .map(str::to_string)
        .ok_or_else(|| DriverError::Fatal(format!("qemu-img info {}: no format", image.display())))
}

/// Whether an SSH server answers at `ssh`. User-mode networking accepts the connection even
/// before the guest listens, so only the server's banner counts.
async fn ssh_banner(ssh: SocketAddr) -> bool {
    let attempt = async {
        let mut stream = tokio::net::TcpStream::connect(ssh).await.ok()?;
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
                self.step = CreateStep::Network;
                Ok(None)
            }
            CreateStep::Network => {
                self.make_network().await?;
                self.step = CreateStep::Start;
                Ok(None)
            }
            CreateStep::Start => {
                let ssh = self.start().await?;
                let deadline =
                    Instant::now() + Duration::from_secs(self.launch.settings.boot_timeout);
                self.step = CreateStep::Booting { ssh, deadline };
                Ok(None)
            }
            CreateStep::Booting { ssh, deadline } => {
                if self.node.live_pid(&self.launch.hostname).is_none() {
                    return Err(DriverError::Fatal(format!(
                        "node {}: the VM exited while booting; console: {}",
                        self.launch.hostname,
                        tail(&self.node.console(), 2000)
                    )));
                }
                if ssh_banner(ssh).await {
                    self.step = CreateStep::Done;
                    let record = self.record()?;
                    return Ok(Some(crate::instance_of(
                        &record,
                        self.launch.username.clone(),
                    )));
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
            CreateStep::Network => "making the network",
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
    settings: Arc<crate::Settings>,
    hostname: String,
    node: NodeDir,
    step: DeleteStep,
}

impl QemuDelete {
    pub fn new(settings: Arc<crate::Settings>, hostname: &str) -> QemuDelete {
        QemuDelete {
            node: NodeDir::new(&settings.state_dir, hostname),
            settings,
            hostname: hostname.to_string(),
            step: DeleteStep::Stop,
        }
    }

    /// Once QEMU is gone: the node's network (namespace, veth pair, `/etc/netns` files),
    /// its address lease, then its directory. Every part is repeatable, and the network is
    /// found from what is on disk: the record's address, and the lease in case the record
    /// is unreadable. A record made before VMs had namespaces has neither.
    async fn remove(&self) -> Result<(), DriverError> {
        let leases = Leases::new(&self.settings.state_dir);
        let mut addresses: BTreeSet<Ipv4Addr> = leases
            .list()?
            .into_iter()
            .filter(|(_, holder)| *holder == self.hostname)
            .map(|(address, _)| address)
            .collect();
        if let Some(address) = self.node.read_record().and_then(|r| r.address) {
            addresses.insert(address);
        }
        for address in addresses {
            let (namespace, link) = NodeRecord::network_names_of(&self.hostname, address);
            let etc = netns_etc(&namespace);
            if links::netns_exists(&namespace) || links::link_exists(&link) {
                let tools = self.settings.tools()?;
                links::remove(&tools.ip, &namespace, &link).await?;
            }
            match std::fs::remove_dir_all(&etc) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(io_error("removing", &etc, e));
                }
                _ => {}
            }
        }
        leases.release(&self.hostname)?;
        match std::fs::remove_dir_all(&self.node.path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(io_error("removing", &self.node.path, e))
            }
            _ => Ok(()),
        }
    }
}

async fn signal(pid: u32, signal: &str) {
    let _ = Command::new("kill")
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
                self.remove().await?;
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

    fn settings(state_dir: &Path) -> Arc<crate::Settings> {
        Arc::new(crate::Settings {
            provider: "local".into(),
            image_dir: "/i".into(),
            state_dir: state_dir.into(),
            qemu_binary: "qemu-system-x86_64".into(),
            accel: nodepool_config::QemuAccel::Auto,
            boot_timeout: 300,
            subnet: nodepool_driver::node_network::Subnet::parse("172.31.224.0/20").unwrap(),
            ssh_key: state_dir.join("id_ed25519"),
            host_cores: None,
            host_ram: None,
            tools: Err(DriverError::Fatal("no tools in unit tests".into())),
        })
    }

    fn launch() -> Launch {
        Launch {
            settings: settings(Path::new("/s")),
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
    fn command_line_tags_the_process_and_forwards_ssh_from_the_namespace_address() {
        let l = launch();
        let node = NodeDir::new(Path::new("/s"), &l.hostname);
        let address = Ipv4Addr::new(172, 31, 224, 6);
        let args = qemu_args(&l, &node, address, false).join(" ");
        assert!(
            args.contains("-name np0000000007,process=qemu-np0000000007"),
            "{args}"
        );
        assert!(args.contains("-pidfile /s/np0000000007/qemu.pid"));
        assert!(args.contains("-m 768M -smp 2"));
        assert!(args.contains("-accel tcg,tb-size=256"));
        assert!(
            args.contains("-netdev user,id=net0,hostfwd=tcp:172.31.224.6:22-:22 "),
            "{args}"
        );
        assert!(
            !args.contains("127.0.0.1"),
            "nothing on this machine's loopback"
        );
        assert!(args.contains("serial=nodepool-config"));
        assert!(args.contains("-serial file:/s/np0000000007/console.log"));
        let kvm = qemu_args(&l, &node, address, true).join(" ");
        assert!(kvm.contains("-accel kvm -cpu host"));
    }

    #[tokio::test]
    async fn delete_of_an_unknown_node_is_not_found() {
        let dir = tempfile::tempdir().unwrap();
        let mut delete = QemuDelete::new(settings(dir.path()), "np404");
        assert!(matches!(
            delete.advance().await,
            Err(DriverError::NotFound(_))
        ));
        let mut sneaky = QemuDelete::new(settings(dir.path()), "../etc");
        assert!(matches!(
            sneaky.advance().await,
            Err(DriverError::NotFound(_))
        ));
    }

    async fn delete_to_the_end(dir: &Path, hostname: &str) {
        let mut delete = QemuDelete::new(settings(dir), hostname);
        for _ in 0..5 {
            if delete.advance().await.unwrap() {
                return;
            }
        }
        panic!(
            "the delete of {hostname} did not finish: {}",
            delete.state()
        );
    }

    #[tokio::test]
    async fn delete_removes_a_node_without_a_vm_and_releases_its_lease() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("np1")).unwrap();
        std::fs::write(dir.path().join("np1/qemu.pid"), "1\n").unwrap();
        let leases = Leases::new(dir.path());
        // Claimed, but the create died before its record and network were made: no
        // namespace or link exists, so the delete needs no tools.
        let subnet = nodepool_driver::node_network::Subnet::parse("198.51.100.0/24").unwrap();
        leases.claim_for(&subnet, "np1", &[]).unwrap();
        leases.claim_for(&subnet, "np2", &[]).unwrap();
        delete_to_the_end(dir.path(), "np1").await;
        assert!(!dir.path().join("np1").exists());
        let held: Vec<String> = leases.list().unwrap().into_iter().map(|(_, h)| h).collect();
        assert_eq!(held, ["np2"], "only np1's lease is released");
    }

    #[tokio::test]
    async fn a_node_recorded_before_network_namespaces_still_deletes() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("np3")).unwrap();
        std::fs::write(
            dir.path().join("np3/node.json"),
            r#"{"hostname": "np3", "pool": "main", "label": "debian",
                "image": "/i/debian.qcow2", "port": 42003, "cores": 1, "ram": 1024,
                "metadata": {}, "created": 1.0}"#,
        )
        .unwrap();
        delete_to_the_end(dir.path(), "np3").await;
        assert!(!dir.path().join("np3").exists());
    }
}
