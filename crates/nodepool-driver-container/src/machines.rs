//! The create and delete state machines of the container provider.
//!
//! Create: `start` (node dir, address lease, `metadata.json`, the image's ids shifted once)
//! -> `mounting overlay` -> `configuring root` (keys, host keys, hostname, name servers, ids
//! shifted into the container range) -> `creating container` (`config.json`, `runc create`:
//! the container's namespaces exist, its sshd waits) -> `creating network` (the runtime's
//! network namespace named and joined to this machine by a veth pair; the node firewall) ->
//! `starting container` (`runc start`) -> `waiting for ssh` -> `complete`. The external id
//! (the hostname) is known before the first step. A failed step cleans nothing up: the
//! launcher runs the delete machine, so every step can be repeated and the delete handles
//! any partial state.
//!
//! Delete: `start` (kill the container) -> `stopping` (wait for it to stop, remove it from the
//! runtime) -> `removing network` -> `unmounting` -> `removing files` -> `complete`. Nodes
//! started by the driver before it used runc (an `unshare` process in a pidfile) are killed
//! by their pid.

use std::fs;
use std::net::{Ipv4Addr, SocketAddr};
use std::os::unix::fs::{PermissionsExt, lchown};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use nodepool_driver::{CreateMachine, CreateSpec, DeleteMachine, DriverError, Instance};
use nodepool_model::ExternalId;
use tokio::net::TcpStream;
use tokio::process::Command;

use nodepool_driver::node_network::{
    Leases, NodeKind, firewall, host_link_name, links, namespace_name,
};

use crate::bundle::{self, BundlePlan, DEFAULT_PIDS_LIMIT};
use crate::host::{self, Tools};
use crate::idmap::{self, HOST_ID_BASE};
use crate::image::{remove_tree, rootfs_path};
use crate::node_dir::{NodeDir, NodeRecord, valid_name};
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
/// How long killed processes have to disappear before the delete reports an error (and is
/// run again by the launcher).
const STOP_TIMEOUT: Duration = Duration::from_secs(20);
/// The port sshd listens on in the container.
const SSH_PORT: u16 = 22;

const START: &str = "start";
const MOUNTING: &str = "mounting overlay";
const CONFIGURING: &str = "configuring root";
const CREATING: &str = "creating container";
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

/// The runtime's id of a node's container, which is also its network namespace's name:
/// unique on this machine (see `namespace_name`).
pub fn container_id(record: &NodeRecord) -> String {
    namespace_name(&record.hostname, record.address)
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
        let lower = self.lower()?;
        // Checked before anything is made: a label this provider does not have is a
        // configuration error, not a node to clean up.
        self.shared.label(&self.spec.pool, &self.spec.label)?;
        for dir in [self.node.upper(), self.node.work(), self.node.merged()] {
            fs::create_dir_all(&dir).map_err(fatal(format!("cannot create {}", dir.display())))?;
        }
        if let Some(image_dir) = lower.parent() {
            idmap::ensure_image_shifted(image_dir, &lower)?;
        }
        // The upper layer's root is the container's `/`: owned by the container's root.
        let upper = self.node.upper();
        lchown(&upper, Some(HOST_ID_BASE), Some(HOST_ID_BASE))
            .map_err(fatal(format!("cannot chown {}", upper.display())))?;
        if let Some(record) = self.node.read_record()? {
            self.record = Some(record);
            return Ok(());
        }
        // Taken besides leases: every node record (a node made before its lease was lost
        // must not share its address).
        let mut also_used: Vec<Ipv4Addr> = Vec::new();
        for other in crate::node_dir::node_hostnames(&self.shared.settings.state_dir)? {
            if let Ok(Some(record)) = self.shared.node_dir(&other).read_record() {
                also_used.push(record.address);
            }
        }
        let pair = Leases::new(&self.shared.settings.state_dir)
            .claim_for(&subnet, &hostname, &also_used)
            .map_err(|e| match e {
                DriverError::Capacity(message) => {
                    DriverError::Capacity(format!("provider {}: {message}", self.shared.name))
                }
                other => other,
            })?;
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
        rootfs::set_hostname(&merged, &self.node.hostname)?;
        let servers = nodepool_driver::node_network::dns::node_nameservers();
        if servers.is_empty() {
            tracing::warn!(hostname = %self.node.hostname, "this machine names no name server a node can reach (only loopback ones); the node has no DNS");
        }
        rootfs::set_resolv_conf(
            &merged,
            &nodepool_driver::node_network::dns::resolv_conf(&servers),
        )?;
        let shifted = idmap::shift_through(&self.node.upper(), &merged)?;
        tracing::debug!(hostname = %self.node.hostname, shifted, "node files moved into the container's id range");
        Ok(())
    }

    /// `config.json` and `runc create`: the container's namespaces and mounts exist and its
    /// sshd waits to be started. A container left by an earlier try is reused while it has not
    /// started, and replaced when it has stopped.
    async fn create_container(&mut self) -> Result<(), DriverError> {
        let runtime = self.shared.runtime()?;
        let record = self.record()?.clone();
        let id = container_id(&record);
        match runtime.state(&id).await? {
            Some(state) if !state.is_stopped() => return Ok(()),
            Some(_) => runtime.delete(&id).await?,
            None => {}
        }
        let label = self.shared.label(&self.spec.pool, &self.spec.label)?;
        let merged = self.node.merged();
        let config = bundle::config(&BundlePlan {
            hostname: &record.hostname,
            rootfs: &merged,
            id: &id,
            cores: label.cores,
            ram: label.ram,
            pids_limit: label.pids_limit.unwrap_or(DEFAULT_PIDS_LIMIT),
        });
        let config_path = self.node.config();
        let text = serde_json::to_vec_pretty(&config).map_err(|e| {
            DriverError::Fatal(format!("cannot encode {}: {e}", config_path.display()))
        })?;
        fs::write(&config_path, text)
            .map_err(fatal(format!("cannot write {}", config_path.display())))?;
        let console_path = self.node.console_log();
        let console = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&console_path)
            .map_err(fatal(format!("cannot open {}", console_path.display())))?;
        let _ = fs::remove_file(self.node.pidfile());
        runtime
            .create(&id, &self.node.dir, &self.node.pidfile(), console)
            .await
            .map_err(|e| {
                DriverError::Fatal(format!(
                    "{}: {e}; console log:\n{}",
                    record.hostname,
                    console_tail(&console_path)
                ))
            })?;
        tracing::debug!(hostname = %record.hostname, id, "container created");
        Ok(())
    }

    /// Names the container's network namespace (made by the runtime inside the container's
    /// user namespace) and joins it to this machine; installs the node firewall.
    async fn network(&mut self) -> Result<(), DriverError> {
        let tools = self.shared.tools()?.clone();
        let runtime = self.shared.runtime()?;
        let subnet = self.shared.subnet()?;
        let record = self.record()?.clone();
        let id = container_id(&record);
        let state = runtime.state(&id).await?.ok_or_else(|| {
            DriverError::Fatal(format!("{}: container {id} is gone", record.hostname))
        })?;
        if state.is_stopped() || state.pid == 0 {
            return Err(DriverError::Fatal(format!(
                "{}: container {id} stopped before it was started; console log:\n{}",
                record.hostname,
                console_tail(&self.node.console_log())
            )));
        }
        let namespace = id.clone();
        let link = host_link_name(NodeKind::Container, record.address);
        // A name left by an earlier try may point at another process's namespace.
        links::remove(&tools.ip, &namespace, &link).await?;
        host::run(
            Command::new(&tools.ip)
                .args(["netns", "attach", &namespace])
                .arg(state.pid.to_string()),
        )
        .await?;
        let pair = nodepool_driver::node_network::AddressPair {
            host: record.host_address,
            container: record.address,
        };
        links::join(&tools.ip, &namespace, &link, pair).await?;
        firewall::ensure(&tools.nft, &subnet).await?;
        tracing::debug!(hostname = %record.hostname, namespace, link, "network ready");
        Ok(())
    }

    async fn start(&mut self) -> Result<(), DriverError> {
        let runtime = self.shared.runtime()?;
        let record = self.record()?.clone();
        let id = container_id(&record);
        match runtime.state(&id).await? {
            Some(state) if state.status == "created" => runtime.start(&id).await?,
            Some(state) if state.status == "running" => {}
            other => {
                return Err(DriverError::Fatal(format!(
                    "{}: container {id} cannot be started ({}); console log:\n{}",
                    record.hostname,
                    other.map_or_else(|| "gone".to_string(), |s| s.status),
                    console_tail(&self.node.console_log())
                )));
            }
        }
        self.started_at = Some(Instant::now());
        tracing::info!(hostname = %record.hostname, address = %record.address, "container started");
        Ok(())
    }

    /// `Some(instance)` once sshd accepts connections.
    async fn boot(&mut self) -> Result<Option<Instance>, DriverError> {
        let record = self.record()?.clone();
        let started = *self.started_at.get_or_insert_with(Instant::now);
        let waited = started.elapsed();
        let running = self
            .shared
            .runtime()?
            .state(&container_id(&record))
            .await?
            .is_some_and(|state| state.status == "running");
        if !running {
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
            CONFIGURING => (self.configure().await, CREATING),
            CREATING => (self.create_container().await, NETWORKING),
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

#[derive(Debug)]
pub struct ContainerDeleteMachine {
    shared: Arc<Shared>,
    /// `None` for an external id this driver cannot have made (structured fields).
    hostname: Option<String>,
    state: &'static str,
    record: Option<NodeRecord>,
    /// The processes killed, waited for in `stopping` (nodes from before runc).
    killed: Vec<u32>,
    /// The runtime's container, waited for in `stopping` and then removed.
    container: Option<String>,
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
            container: None,
            stopping_since: None,
        }
    }

    /// Kills the container through the runtime; a node started before the driver used runc
    /// is killed by its pidfile.
    async fn kill(&mut self, tools: &Tools, node: &NodeDir) -> Result<(), DriverError> {
        if let Some(record) = &self.record {
            let runtime = self.shared.runtime()?;
            let id = container_id(record);
            if let Some(state) = runtime.state(&id).await? {
                if !state.is_stopped() {
                    runtime.kill(&id).await?;
                    tracing::info!(hostname = %node.hostname, id, "container killed");
                }
                self.container = Some(id);
                return Ok(());
            }
        }
        self.kill_legacy(tools, node).await
    }

    /// Kills the outer process of a node started by `unshare` (before runc) and its child,
    /// the PID 1 of the node's PID namespace, whose death ends every process in it.
    async fn kill_legacy(&mut self, tools: &Tools, node: &NodeDir) -> Result<(), DriverError> {
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
        if self.state == STOPPING
            && let Some(id) = self.container.clone()
        {
            let runtime = self.shared.runtime()?;
            let stopped = runtime
                .state(&id)
                .await?
                .is_none_or(|state| state.is_stopped());
            if !stopped {
                let since = self.stopping_since.get_or_insert_with(Instant::now);
                if since.elapsed() > STOP_TIMEOUT {
                    return Err(DriverError::Transient(format!(
                        "container {id} of {hostname} still runs {} s after SIGKILL",
                        STOP_TIMEOUT.as_secs()
                    )));
                }
                return Ok(false);
            }
            runtime.delete(&id).await?;
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
                links::remove(
                    &tools.ip,
                    &container_id(record),
                    &host_link_name(NodeKind::Container, record.address),
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
