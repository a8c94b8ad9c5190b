//! The create and delete state machines of the container provider.
//!
//! Create: `start` (node dir, address lease, `metadata.json`) -> `mounting overlay` ->
//! `configuring root` (keys, host keys, hostname) -> `creating network` (namespace, veth) ->
//! `starting container` -> `waiting for ssh` -> `complete`. The external id (the hostname) is
//! known before the first step. A failed step cleans nothing up: the launcher runs the delete
//! machine, so every step can be repeated and the delete handles any partial state.
//!
//! Delete: `start` (kill the container) -> `stopping` (wait for its processes to end) ->
//! `removing network` -> `unmounting` -> `removing files` -> `complete`.

use std::collections::BTreeSet;
use std::fs;
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use nodepool_driver::{CreateMachine, CreateSpec, DeleteMachine, DriverError, Instance};
use nodepool_model::ExternalId;
use tokio::net::TcpStream;
use tokio::process::Command;

use crate::address::{VETH_PREFIX, first_free_block, host_link_name, namespace_name};
use crate::host::{self, Tools};
use crate::image::{remove_tree, rootfs_path};
use crate::node_dir::{
    InitPlan, Leases, NodeDir, NodeRecord, StartPlan, init_script, start_script, valid_name,
};
use crate::provider::{Shared, console_tail};
use crate::rootfs;

/// Between quick setup steps: they are local and short, so come back at once.
const STEP_POLL: Duration = Duration::from_millis(5);
/// Between delete steps, mostly waiting for killed processes to go.
const DELETE_POLL: Duration = Duration::from_millis(20);
/// Between connection attempts while sshd starts.
const BOOT_POLL: Duration = Duration::from_millis(50);
/// One connection attempt; the address is on this machine, so an answer is quick.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);
/// How long the started container has to write its pidfile (its first command).
const PIDFILE_GRACE: Duration = Duration::from_secs(10);
/// Between looks for the pidfile.
const PIDFILE_POLL: Duration = Duration::from_millis(2);
/// How long killed processes have to disappear before the delete reports an error (and is
/// run again by the launcher).
const STOP_TIMEOUT: Duration = Duration::from_secs(20);
/// The port sshd listens on in the container.
const SSH_PORT: u16 = 22;

const START: &str = "start";
const MOUNTING: &str = "mounting overlay";
const CONFIGURING: &str = "configuring root";
const NETWORKING: &str = "creating network";
const STARTING: &str = "starting container";
const BOOTING: &str = "waiting for ssh";
const STOPPING: &str = "stopping";
const UNNETWORKING: &str = "removing network";
const UNMOUNTING: &str = "unmounting";
const REMOVING: &str = "removing files";
const COMPLETE: &str = "complete";

fn now_epoch() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or_default()
}

fn fatal(what: String) -> impl FnOnce(std::io::Error) -> DriverError {
    move |e| DriverError::Fatal(format!("{what}: {e}"))
}

fn netns_exists(namespace: &str) -> bool {
    Path::new("/run/netns").join(namespace).exists()
}

fn link_exists(link: &str) -> bool {
    Path::new("/sys/class/net").join(link).exists()
}

#[derive(Debug)]
pub struct ContainerCreateMachine {
    shared: Arc<Shared>,
    spec: CreateSpec,
    node: NodeDir,
    state: &'static str,
    /// The node's record once its address is claimed.
    record: Option<NodeRecord>,
    /// The image user named by the image, reported as the node's username.
    username: Option<String>,
    /// When the container was started, for the pidfile grace and the boot timeout.
    started_at: Option<Instant>,
    /// The finished instance, handed out again if `advance` is called after completion.
    instance: Option<Instance>,
}

impl ContainerCreateMachine {
    pub(crate) fn new(shared: Arc<Shared>, spec: CreateSpec) -> ContainerCreateMachine {
        ContainerCreateMachine {
            node: shared.node_dir(&spec.hostname),
            shared,
            spec,
            state: START,
            record: None,
            username: None,
            started_at: None,
            instance: None,
        }
    }

    fn record(&self) -> Result<&NodeRecord, DriverError> {
        self.record.as_ref().ok_or_else(|| {
            DriverError::Fatal(format!(
                "{}: no node record in state {}",
                self.node.hostname, self.state
            ))
        })
    }

    fn lower(&self) -> Result<PathBuf, DriverError> {
        let image = self.spec.image_external_id.as_deref().ok_or_else(|| {
            DriverError::Fatal(format!(
                "{}: the container driver needs a diskimage label (no image given)",
                self.node.hostname
            ))
        })?;
        if !valid_name(image) {
            return Err(DriverError::Fatal(format!(
                "{}: image id {image:?} cannot name an image directory",
                self.node.hostname
            )));
        }
        let rootfs = rootfs_path(&self.shared.settings.image_dir, image);
        if !rootfs.is_dir() {
            return Err(DriverError::Fatal(format!(
                "{}: image {image} is not unpacked in provider {} ({} is missing)",
                self.node.hostname,
                self.shared.name,
                rootfs.display()
            )));
        }
        Ok(rootfs)
    }

    /// Node dir, address lease and record. Repeatable: an existing record or lease of this
    /// hostname is reused.
    async fn prepare(&mut self) -> Result<(), DriverError> {
        self.shared.tools()?;
        let subnet = self.shared.subnet()?;
        let hostname = self.node.hostname.clone();
        if !valid_name(&hostname) {
            return Err(DriverError::Fatal(format!(
                "hostname {hostname:?} cannot name a node directory"
            )));
        }
        self.lower()?;
        // Checked before anything is made: a label this provider does not have is a
        // configuration error, not a node to clean up.
        self.shared.label(&self.spec.pool, &self.spec.label)?;
        for dir in [self.node.upper(), self.node.work(), self.node.merged()] {
            fs::create_dir_all(&dir).map_err(fatal(format!("cannot create {}", dir.display())))?;
        }
        if let Some(record) = self.node.read_record()? {
            self.record = Some(record);
            return Ok(());
        }
        let leases = Leases::new(&self.shared.settings.state_dir);
        let held = leases.list()?;
        let address = match held.iter().find(|(_, holder)| *holder == hostname) {
            Some((address, _)) => subnet
                .block_of(*address)
                .and_then(|b| subnet.block_addresses(b)),
            None => None,
        };
        let pair = match address {
            Some(pair) => pair,
            None => {
                // Taken: every lease, and every node record (a node made before its lease
                // was lost must not share its address).
                let mut used: BTreeSet<u32> = held
                    .iter()
                    .filter_map(|(address, _)| subnet.block_of(*address))
                    .collect();
                for other in crate::node_dir::node_hostnames(&self.shared.settings.state_dir)? {
                    if let Ok(Some(record)) = self.shared.node_dir(&other).read_record()
                        && let Some(block) = subnet.block_of(record.address)
                    {
                        used.insert(block);
                    }
                }
                loop {
                    let block = first_free_block(&subnet, &used).ok_or_else(|| {
                        DriverError::Capacity(format!(
                            "subnet {} of provider {} has no free address for {hostname}",
                            self.shared.settings.subnet, self.shared.name
                        ))
                    })?;
                    let Some(pair) = subnet.block_addresses(block) else {
                        return Err(DriverError::Fatal(format!(
                            "block {block} is outside subnet {}",
                            self.shared.settings.subnet
                        )));
                    };
                    if leases.claim(pair.container, &hostname)? {
                        break pair;
                    }
                    // Claimed by a concurrent create since the listing: try the next one.
                    used.insert(block);
                }
            }
        };
        let record = NodeRecord {
            hostname: hostname.clone(),
            label: self.spec.label.clone(),
            pool: self.spec.pool.clone(),
            image: self.spec.image_external_id.clone().unwrap_or_default(),
            address: pair.container,
            host_address: pair.host,
            created: now_epoch(),
            metadata: self.spec.metadata.clone(),
        };
        self.node.write_record(&record)?;
        tracing::info!(hostname, address = %record.address, image = %record.image, "node directory and address ready");
        self.record = Some(record);
        Ok(())
    }

    async fn mount(&mut self) -> Result<(), DriverError> {
        let tools = self.shared.tools()?;
        let merged = self.node.merged();
        if host::is_mount_point(&merged)? {
            return Ok(());
        }
        let options = format!(
            "lowerdir={},upperdir={},workdir={}",
            self.lower()?.display(),
            self.node.upper().display(),
            self.node.work().display()
        );
        host::run(
            Command::new(&tools.mount)
                .args(["-t", "overlay", "overlay", "-o"])
                .arg(options)
                .arg(&merged),
        )
        .await?;
        Ok(())
    }

    async fn configure(&mut self) -> Result<(), DriverError> {
        let tools = self.shared.tools()?;
        let merged = self.node.merged();
        let key = self.shared.public_key().await?;
        self.username = rootfs::inject_keys(&merged, &key)?;
        // Only missing key types are generated, so a repeated step keeps the keys.
        host::run(
            Command::new(&tools.ssh_keygen)
                .arg("-A")
                .arg("-f")
                .arg(&merged),
        )
        .await?;
        let privsep = rootfs::inside(&merged, "run/sshd");
        fs::create_dir_all(&privsep)
            .and_then(|()| fs::set_permissions(&privsep, fs::Permissions::from_mode(0o755)))
            .map_err(fatal(format!("cannot create {}", privsep.display())))?;
        rootfs::set_hostname(&merged, &self.node.hostname)
    }

    /// A fresh namespace and veth pair. Whatever exists under these names is stale (an
    /// earlier failed try, or a killed installation that had the same address) and is
    /// removed first.
    async fn network(&mut self) -> Result<(), DriverError> {
        let tools = self.shared.tools()?.clone();
        let record = self.record()?.clone();
        let namespace = namespace_name(&record.hostname, record.address);
        let link = host_link_name(record.address);
        remove_network(&tools, &namespace, &link).await?;
        let ip = |args: &[&str]| {
            let mut command = Command::new(&tools.ip);
            command.args(args);
            command
        };
        let host_cidr = format!("{}/{VETH_PREFIX}", record.host_address);
        let container_cidr = format!("{}/{VETH_PREFIX}", record.address);
        let host_address = record.host_address.to_string();
        host::run(&mut ip(&["netns", "add", &namespace])).await?;
        host::run(&mut ip(&[
            "link", "add", &link, "type", "veth", "peer", "name", "eth0", "netns", &namespace,
        ]))
        .await?;
        host::run(&mut ip(&["addr", "add", &host_cidr, "dev", &link])).await?;
        host::run(&mut ip(&["link", "set", &link, "up"])).await?;
        host::run(&mut ip(&["-n", &namespace, "link", "set", "lo", "up"])).await?;
        host::run(&mut ip(&[
            "-n",
            &namespace,
            "addr",
            "add",
            &container_cidr,
            "dev",
            "eth0",
        ]))
        .await?;
        host::run(&mut ip(&["-n", &namespace, "link", "set", "eth0", "up"])).await?;
        host::run(&mut ip(&[
            "-n",
            &namespace,
            "route",
            "add",
            "default",
            "via",
            &host_address,
        ]))
        .await?;
        tracing::debug!(hostname = %record.hostname, namespace, link, "network ready");
        Ok(())
    }

    async fn start(&mut self) -> Result<(), DriverError> {
        let tools = self.shared.tools()?.clone();
        let record = self.record()?.clone();
        let marker = self.node.process_marker();
        if let Some(pid) = self.node.read_pid()
            && host::process_alive(pid, &marker).await
        {
            // Started by an earlier try of this step.
            self.started_at.get_or_insert_with(Instant::now);
            return Ok(());
        }
        let _ = fs::remove_file(self.node.pidfile());
        let namespace = namespace_name(&record.hostname, record.address);
        let start = start_script(&StartPlan {
            node: &self.node,
            namespace: &namespace,
            ip: &tools.ip,
            unshare: &tools.unshare,
            sh: &tools.sh,
        });
        let init = init_script(&InitPlan {
            node: &self.node,
            hostname_tool: &tools.hostname,
            mount: &tools.mount,
            chroot: &tools.chroot,
        });
        for (path, text) in [
            (self.node.start_script(), start),
            (self.node.init_script(), init),
        ] {
            fs::write(&path, text).map_err(fatal(format!("cannot write {}", path.display())))?;
        }
        let console_path = self.node.console_log();
        let console = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&console_path)
            .map_err(fatal(format!("cannot open {}", console_path.display())))?;
        let console_err = console
            .try_clone()
            .map_err(fatal(format!("cannot open {}", console_path.display())))?;
        // `setsid --fork` returns at once; the container runs in its own session, reparented
        // to init, so it neither is the launcher's child nor dies with it.
        let status = Command::new(&tools.setsid)
            .arg("--fork")
            .arg(&tools.sh)
            .arg(self.node.start_script())
            .stdin(Stdio::null())
            .stdout(Stdio::from(console))
            .stderr(Stdio::from(console_err))
            .status()
            .await
            .map_err(|e| {
                DriverError::Fatal(format!(
                    "{}: cannot run {}: {e}",
                    record.hostname,
                    tools.setsid.display()
                ))
            })?;
        if !status.success() {
            return Err(DriverError::Fatal(format!(
                "{}: starting the container failed ({status}); console log:\n{}",
                record.hostname,
                console_tail(&console_path)
            )));
        }
        self.started_at = Some(Instant::now());
        // The script records its pid first thing; waiting for it here means a delete after
        // this step always finds the process to kill.
        let began = Instant::now();
        while self.node.read_pid().is_none() {
            if began.elapsed() > PIDFILE_GRACE {
                return Err(DriverError::Fatal(format!(
                    "the container of {} wrote no pidfile within {} s; console log:\n{}",
                    record.hostname,
                    PIDFILE_GRACE.as_secs(),
                    console_tail(&console_path)
                )));
            }
            tokio::time::sleep(PIDFILE_POLL).await;
        }
        tracing::info!(hostname = %record.hostname, address = %record.address, "container started");
        Ok(())
    }

    /// `Some(instance)` once sshd accepts connections.
    async fn boot(&mut self) -> Result<Option<Instance>, DriverError> {
        let record = self.record()?.clone();
        let started = *self.started_at.get_or_insert_with(Instant::now);
        let waited = started.elapsed();
        let Some(pid) = self.node.read_pid() else {
            return Err(DriverError::Fatal(format!(
                "the container of {} has no pidfile; console log:\n{}",
                record.hostname,
                console_tail(&self.node.console_log())
            )));
        };
        if !host::process_alive(pid, &self.node.process_marker()).await {
            return Err(DriverError::Fatal(format!(
                "the container of {} exited before sshd answered; console log:\n{}",
                record.hostname,
                console_tail(&self.node.console_log())
            )));
        }
        let target = SocketAddr::from((record.address, SSH_PORT));
        if let Ok(Ok(_stream)) =
            tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(target)).await
        {
            return self.finish(&record).map(Some);
        }
        let boot_timeout = Duration::from_secs(self.shared.settings.boot_timeout);
        if waited >= boot_timeout {
            return Err(DriverError::Transient(format!(
                "sshd of {} did not answer on {target} within {} s; console log:\n{}",
                record.hostname,
                boot_timeout.as_secs(),
                console_tail(&self.node.console_log())
            )));
        }
        Ok(None)
    }

    fn finish(&mut self, record: &NodeRecord) -> Result<Instance, DriverError> {
        let mut instance = self.shared.instance(record);
        instance.host_keys = Some(rootfs::host_keys(&self.node.merged())?);
        instance.username = self.username.clone();
        instance.resources = self
            .shared
            .label(&self.spec.pool, &self.spec.label)
            .ok()
            .map(Shared::label_quota);
        tracing::info!(
            hostname = %record.hostname,
            address = %record.address,
            seconds = self.started_at.map(|s| s.elapsed().as_secs_f64()).unwrap_or_default(),
            "container answers ssh"
        );
        self.instance = Some(instance.clone());
        self.state = COMPLETE;
        Ok(instance)
    }
}

#[async_trait]
impl CreateMachine for ContainerCreateMachine {
    async fn advance(&mut self) -> Result<Option<Instance>, DriverError> {
        let (step, next) = match self.state {
            START => (self.prepare().await, MOUNTING),
            MOUNTING => (self.mount().await, CONFIGURING),
            CONFIGURING => (self.configure().await, NETWORKING),
            NETWORKING => (self.network().await, STARTING),
            STARTING => (self.start().await, BOOTING),
            BOOTING => return self.boot().await,
            _ => return Ok(self.instance.clone()),
        };
        if let Err(e) = &step {
            tracing::warn!(hostname = %self.node.hostname, state = self.state, error = %e, "container create step failed");
        }
        step?;
        self.state = next;
        Ok(None)
    }

    fn state(&self) -> &str {
        self.state
    }

    fn external_id(&self) -> Option<ExternalId> {
        Some(ExternalId::Id(self.node.hostname.clone()))
    }

    fn poll_after(&self) -> Duration {
        if self.state == BOOTING {
            BOOT_POLL
        } else {
            STEP_POLL
        }
    }
}

/// Removes a namespace and this machine's end of a veth pair, whichever exist.
async fn remove_network(tools: &Tools, namespace: &str, link: &str) -> Result<(), DriverError> {
    if netns_exists(namespace) {
        host::run(Command::new(&tools.ip).args(["netns", "del", namespace])).await?;
    }
    // Deleting the namespace usually takes the pair with it; the link can also outlive a
    // namespace that was never made or is still held by a dying process.
    if link_exists(link)
        && let Err(e) = host::run(Command::new(&tools.ip).args(["link", "del", link])).await
        && link_exists(link)
    {
        return Err(e);
    }
    Ok(())
}

#[derive(Debug)]
pub struct ContainerDeleteMachine {
    shared: Arc<Shared>,
    /// `None` for an external id this driver cannot have made (structured fields).
    hostname: Option<String>,
    state: &'static str,
    record: Option<NodeRecord>,
    /// The processes killed, waited for in `stopping`.
    killed: Vec<u32>,
    stopping_since: Option<Instant>,
}

impl ContainerDeleteMachine {
    pub(crate) fn new(shared: Arc<Shared>, hostname: Option<String>) -> ContainerDeleteMachine {
        ContainerDeleteMachine {
            shared,
            hostname,
            state: START,
            record: None,
            killed: Vec::new(),
            stopping_since: None,
        }
    }

    /// Kills the container's outer process and its child, the PID 1 of the container's PID
    /// namespace, whose death ends every process in it.
    async fn kill(&mut self, tools: &Tools, node: &NodeDir) -> Result<(), DriverError> {
        let Some(pid) = node.read_pid() else {
            return Ok(());
        };
        if !host::process_alive(pid, &node.process_marker()).await {
            return Ok(());
        }
        let mut pids = vec![pid];
        pids.extend(host::children(pid));
        for pid in &pids {
            // A process that ended meanwhile makes `kill` fail; only a survivor matters and
            // `stopping` finds that.
            if let Err(e) = host::run(
                Command::new(&tools.kill)
                    .args(["-KILL", "--"])
                    .arg(pid.to_string()),
            )
            .await
            {
                tracing::debug!(hostname = %node.hostname, pid, error = %e, "kill failed");
            }
        }
        tracing::info!(hostname = %node.hostname, pids = ?pids, "container killed");
        self.killed = pids;
        Ok(())
    }
}

#[async_trait]
impl DeleteMachine for ContainerDeleteMachine {
    async fn advance(&mut self) -> Result<bool, DriverError> {
        let Some(hostname) = self.hostname.clone().filter(|h| valid_name(h)) else {
            return Err(DriverError::NotFound(format!(
                "provider {} has no container with that external id",
                self.shared.name
            )));
        };
        let node = self.shared.node_dir(&hostname);
        if self.state == START {
            let tools = self.shared.tools()?.clone();
            if !node.dir.exists() {
                Leases::new(&self.shared.settings.state_dir).release(&hostname)?;
                return Err(DriverError::NotFound(format!(
                    "no container {hostname} in provider {}",
                    self.shared.name
                )));
            }
            tracing::info!(hostname, "deleting container");
            // Without a record there is no address, hence no network to remove (the record
            // is written before the network is made).
            self.record = node.read_record().ok().flatten();
            self.kill(&tools, &node).await?;
            self.stopping_since = Some(Instant::now());
            self.state = STOPPING;
        }
        if self.state == STOPPING {
            let running: Vec<u32> = self
                .killed
                .iter()
                .copied()
                .filter(|pid| host::pid_running(*pid))
                .collect();
            if !running.is_empty() {
                let since = self.stopping_since.get_or_insert_with(Instant::now);
                if since.elapsed() > STOP_TIMEOUT {
                    return Err(DriverError::Transient(format!(
                        "processes {running:?} of container {hostname} still run {} s after SIGKILL",
                        STOP_TIMEOUT.as_secs()
                    )));
                }
                return Ok(false);
            }
            self.state = UNNETWORKING;
        }
        if self.state == UNNETWORKING {
            if let Some(record) = &self.record {
                let tools = self.shared.tools()?;
                remove_network(
                    tools,
                    &namespace_name(&record.hostname, record.address),
                    &host_link_name(record.address),
                )
                .await?;
            }
            self.state = UNMOUNTING;
        }
        if self.state == UNMOUNTING {
            let merged = node.merged();
            if host::is_mount_point(&merged)? {
                let tools = self.shared.tools()?;
                if let Err(e) = host::run(Command::new(&tools.umount).arg(&merged)).await {
                    // Busy (a shell of a dying process, an open file): detach it now, the
                    // kernel frees it when the last user lets go.
                    tracing::warn!(hostname, error = %e, "unmount failed; detaching lazily");
                    host::run(Command::new(&tools.umount).arg("-l").arg(&merged)).await?;
                }
            }
            self.state = REMOVING;
        }
        if self.state == REMOVING {
            remove_tree(node.dir.clone()).await?;
            Leases::new(&self.shared.settings.state_dir).release(&hostname)?;
            tracing::info!(hostname, "container deleted");
            self.state = COMPLETE;
        }
        Ok(true)
    }

    fn state(&self) -> &str {
        self.state
    }

    fn poll_after(&self) -> Duration {
        DELETE_POLL
    }
}
