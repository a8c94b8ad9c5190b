//! `nodepool launcher` as a child process, and the scenario every cloud driver must pass:
//! a launcher SIGKILLed in the middle of a launch, then restarted, serves the request with a
//! fresh node and leaves no server behind (`launcher_restart.rs` with the fake cloud,
//! `openstack_launcher_restart.rs`, `aws_launcher_restart.rs`).

use std::fs::File;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use nodepool_model::{ExternalId, Node, NodeId, NodeState, RequestState};
use nodepool_store::{Backend, Store, paths};
use nodepool_store_zk::{ZooKeeperBackend, ZooKeeperOptions, ZooKeeperTls};
use nodepool_testkit::wait::{wait_for, wait_for_store_change};
use nodepool_testkit::{RequestOptions, ServerOptions, ZooKeeperServer, ZuulClient};

use super::BINARY;

/// How often a process is looked at (exit) when nothing can be watched.
const PROCESS_POLL: Duration = Duration::from_millis(50);

/// A running `nodepool launcher` (or `nodepool builder`); killed on drop if still running.
pub struct DaemonProcess {
    child: Child,
    log: PathBuf,
}

impl DaemonProcess {
    /// Starts `nodepool launcher -c CONFIG -f --no-webapp` with its stderr in `log`, the
    /// test intervals (`NODEPOOL_TEST_FAST_TIMING=1`, see `commands/daemons.rs`) and `env`.
    pub fn start(config: &Path, log: PathBuf, env: &[(&str, &str)]) -> DaemonProcess {
        DaemonProcess::spawn(&["launcher", "--no-webapp"], config, log, env)
    }

    /// Starts `nodepool builder -c CONFIG -f` as [`DaemonProcess::start`] starts a launcher.
    pub fn builder(config: &Path, log: PathBuf) -> DaemonProcess {
        DaemonProcess::spawn(&["builder"], config, log, &[])
    }

    fn spawn(args: &[&str], config: &Path, log: PathBuf, env: &[(&str, &str)]) -> DaemonProcess {
        let mut command = Command::new(BINARY);
        command
            .arg(args[0])
            .arg("-c")
            .arg(config)
            .arg("-f")
            .args(&args[1..])
            .env("NODEPOOL_TEST_FAST_TIMING", "1")
            .env_remove("RUST_LOG")
            .env_remove("STATSD_HOST")
            .env_remove("STATSD_PORT");
        for (key, value) in env {
            command.env(key, value);
        }
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(File::create(&log).expect("create log file"))
            .spawn()
            .unwrap_or_else(|e| panic!("start nodepool {}: {e}", args[0]));
        DaemonProcess { child, log }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The log's ERROR lines (scenario tests fail on unexpected ones).
    pub fn error_lines(&self) -> Vec<String> {
        self.log()
            .lines()
            .filter(|line| line.contains(" ERROR "))
            .map(str::to_string)
            .collect()
    }

    /// SIGKILL: no chance to clean up anything.
    pub fn kill(&mut self) {
        self.child.kill().expect("SIGKILL the daemon");
        self.child.wait().expect("reap the daemon");
    }

    pub fn interrupt(&self) {
        let status = Command::new("kill")
            .arg("-INT")
            .arg(self.child.id().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -INT failed");
    }

    pub async fn wait_exit(&mut self, within: Duration) -> ExitStatus {
        let child = &mut self.child;
        let status = wait_for(within, PROCESS_POLL, || {
            let status = child.try_wait().expect("poll the launcher");
            async move { status }
        })
        .await;
        status.unwrap_or_else(|_| panic!("the launcher did not exit; its log:\n{}", self.log()))
    }
}

impl Drop for DaemonProcess {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Waits until some node satisfies `condition` (checked on every change under the nodes).
pub async fn wait_node<T>(
    store: &Store,
    what: &str,
    launcher: &DaemonProcess,
    within: Duration,
    condition: impl Fn(NodeId, &Node) -> Option<T>,
) -> T {
    let condition = &condition;
    wait_for_store_change(
        store.backend().as_ref(),
        paths::NODES,
        within,
        || async move {
            for id in store.nodes().ids().await.ok()? {
                if let Ok(Some(node)) = store.nodes().get(id).await
                    && let Some(found) = condition(id, &node.value)
                {
                    return Some(found);
                }
            }
            None
        },
    )
    .await
    .unwrap_or_else(|e| {
        panic!(
            "timed out waiting for {what} ({e}); launcher log:\n{}",
            launcher.log()
        )
    })
}

pub async fn wait_node_gone(store: &Store, id: NodeId, launcher: &DaemonProcess, within: Duration) {
    wait_for_store_change(store.backend().as_ref(), paths::NODES, within, || async {
        matches!(store.nodes().get(id).await, Ok(None)).then_some(())
    })
    .await
    .unwrap_or_else(|e| panic!("node {id} remains ({e}); launcher log:\n{}", launcher.log()));
}

pub async fn wait_no_nodes(store: &Store, launcher: &DaemonProcess, within: Duration) {
    wait_for_store_change(store.backend().as_ref(), paths::NODES, within, || async {
        store.nodes().ids().await.ok()?.is_empty().then_some(())
    })
    .await
    .unwrap_or_else(|e| {
        panic!(
            "nodes left in the store ({e}); launcher log:\n{}",
            launcher.log()
        )
    });
}

/// The ZooKeeper server of this test binary, with the TLS port and client certificates
/// production uses (killed when the binary exits, see `ZooKeeperServer`).
pub fn zookeeper() -> &'static ZooKeeperServer {
    static SERVER: OnceLock<ZooKeeperServer> = OnceLock::new();
    SERVER.get_or_init(|| {
        ZooKeeperServer::start(ServerOptions::with_tls())
            .unwrap_or_else(|e| panic!("a ZooKeeper server starts: {e}"))
    })
}

/// A chroot of its own on [`zookeeper`] for one test, over TLS.
pub struct ZooKeeperChroot {
    chroot: String,
}

impl ZooKeeperChroot {
    /// Starts the server the first time (blocking: call it off the async threads).
    pub fn new(prefix: &str) -> ZooKeeperChroot {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        zookeeper();
        ZooKeeperChroot {
            chroot: format!(
                "/{prefix}-{}-{}",
                std::process::id(),
                NEXT.fetch_add(1, Ordering::Relaxed)
            ),
        }
    }

    /// The `zookeeper-servers` and `zookeeper-tls` sections of `nodepool.yaml`.
    pub fn config_section(&self) -> String {
        let server = zookeeper();
        let address = server.tls_address().expect("TLS port");
        let (host, port) = address.rsplit_once(':').expect("host:port");
        let tls = server.client_tls().expect("client certificate");
        format!(
            "zookeeper-servers:\n  - host: {host}\n    port: {port}\n    chroot: {chroot}\n\
             zookeeper-tls:\n  cert: {cert}\n  key: {key}\n  ca: {ca}\n",
            chroot = self.chroot,
            cert = tls.cert.display(),
            key = tls.key.display(),
            ca = tls.ca.display()
        )
    }

    /// A store session of our own, like Zuul's.
    pub async fn connect(&self) -> Store {
        tls_store(zookeeper(), &self.chroot).await
    }
}

/// A store session on `server`'s TLS port under `chroot`, like Zuul's.
pub async fn tls_store(server: &ZooKeeperServer, chroot: &str) -> Store {
    let tls = server.client_tls().expect("client certificate");
    let mut options = ZooKeeperOptions::new([server.tls_address().expect("TLS port")]);
    options.chroot = Some(chroot.to_string());
    options.tls = Some(ZooKeeperTls {
        cert: tls.cert.clone(),
        key: tls.key.clone(),
        ca: tls.ca.clone(),
    });
    let backend = ZooKeeperBackend::connect(options)
        .await
        .unwrap_or_else(|e| {
            // The server's side of a failed connection is in its log, not in the client's error.
            let log = server.log();
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            panic!(
                "connect to ZooKeeper: {e:?}; the server's log ends:\n{}",
                tail.join("\n")
            )
        });
    Store::new(Arc::new(backend) as Arc<dyn Backend>)
}

/// A server (or instance) as the cloud lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloudServer {
    /// The id the node's external id names.
    pub id: String,
    /// Its `nodepool_node_id` metadata or tag.
    pub node: Option<String>,
    /// What the cloud says it is doing (Nova's status, EC2's state), for the test's output.
    pub state: String,
}

/// What [`killed_mid_launch_then_restarted`] needs from a test site: a configuration with
/// one provider serving the label `small`, a way to start the launcher, and the cloud.
pub trait RestartSite {
    /// Writes `nodepool.yaml`. With `hold_launches`, a launch stays BUILDING after its
    /// server exists (until long after the test's deadlines); without, launches are quick.
    fn write_config(&self, hold_launches: bool);

    /// Starts a launcher on the site's configuration; `name` names its log.
    fn launcher(&self, name: &str) -> DaemonProcess;

    /// The cloud's live servers (deleted ones are left out).
    fn servers(&self) -> impl Future<Output = Vec<CloudServer>>;

    /// The server id a node's external id names.
    fn server_id(&self, external_id: &ExternalId) -> String;

    /// The longest any step may take (a dead session must expire, a server must boot).
    fn deadline(&self) -> Duration;

    /// How often the cloud is listed while waiting for it.
    fn cloud_poll(&self) -> Duration;

    /// Whether the held launch's server is as far as the test wants it before the launcher
    /// is killed (by default: as soon as it is listed).
    fn far_enough(&self, _server: &CloudServer) -> bool {
        true
    }
}

async fn wait_servers<S: RestartSite>(
    site: &S,
    what: &str,
    launcher: &DaemonProcess,
    condition: impl Fn(&[CloudServer]) -> bool,
) -> Vec<CloudServer> {
    let condition = &condition;
    let found = wait_for(site.deadline(), site.cloud_poll(), || async move {
        let servers = site.servers().await;
        condition(&servers).then_some(servers)
    })
    .await;
    match found {
        Ok(servers) => servers,
        Err(_) => panic!(
            "timed out waiting until {what}: {:?}; launcher log:\n{}",
            site.servers().await,
            launcher.log()
        ),
    }
}

/// The launcher's log lines that mention any of `ids`.
fn lines_about(launcher: &DaemonProcess, ids: &[&str]) -> String {
    launcher
        .log()
        .lines()
        .filter(|line| ids.iter().any(|id| !id.is_empty() && line.contains(id)))
        .collect::<Vec<_>>()
        .join("\n")
}

fn assert_no_errors(launcher: &DaemonProcess) {
    let errors = launcher.error_lines();
    assert!(
        errors.is_empty(),
        "ERROR lines in the launcher log:\n{}\n--- full log:\n{}",
        errors.join("\n"),
        launcher.log()
    );
}

/// When [`killed_mid_launch_then_restarted`] kills the first launcher.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KillPoint {
    /// Once the cloud lists the launch's server (and [`RestartSite::far_enough`] agrees).
    ServerListed,
    /// As soon as the node is BUILDING, whatever the cloud has: the create call may be in
    /// flight, or done with its answer not stored, so a server may exist that no node
    /// record names (leak cleanup must find it by its tags).
    NodeBuilding,
}

/// The launcher is SIGKILLed while a launch is under way (the node BUILDING; at `kill_at`)
/// and restarted: the request is fulfilled by a fresh node, the killed launch's node record
/// and server are deleted, no server is left but those of READY nodes, and once Zuul returns
/// the node the cloud is empty. `store` is a session of the site's store.
pub async fn killed_mid_launch_then_restarted<S: RestartSite>(
    site: &S,
    store: &Store,
    kill_at: KillPoint,
) {
    let wait = site.deadline();
    let began = std::time::Instant::now();
    site.write_config(true);
    let zuul = ZuulClient::new(store.clone(), "zuul-system-id");
    let mut first = site.launcher("first");
    let request_id = zuul
        .submit(&["small"], RequestOptions::default())
        .await
        .expect("submit");

    // The launch is under way: the node is BUILDING and (at `ServerListed`) the cloud lists
    // a server tagged with it, whether or not the node has stored the server's id yet.
    let killed_node = wait_node(store, "a BUILDING node", &first, wait, |id, node| {
        (node.state == NodeState::Building && node.allocated_to.as_ref() == Some(&request_id))
            .then_some(id)
    })
    .await;
    let killed_tag = killed_node.to_string();
    let killed_server = match kill_at {
        KillPoint::NodeBuilding => None,
        KillPoint::ServerListed => {
            let servers = wait_servers(
                site,
                "the launch's server is in the cloud, far enough",
                &first,
                |servers| {
                    servers.iter().any(|s| {
                        s.node.as_deref() == Some(killed_tag.as_str()) && site.far_enough(s)
                    })
                },
            )
            .await;
            let killed: Vec<&CloudServer> = servers
                .iter()
                .filter(|s| s.node.as_deref() == Some(killed_tag.as_str()))
                .collect();
            assert_eq!(killed.len(), 1, "one server for the node: {servers:?}");
            Some(killed[0].clone())
        }
    };
    let node = store
        .nodes()
        .get(killed_node)
        .await
        .expect("read the node")
        .expect("the node exists")
        .value;
    assert_eq!(
        node.state,
        NodeState::Building,
        "the launch is not finished when the launcher is killed; log:\n{}",
        first.log()
    );
    first.kill();
    let stored = node.external_id.as_ref().map(|e| site.server_id(e));
    if let (Some(stored), Some(server)) = (&stored, &killed_server) {
        assert_eq!(*stored, server.id, "the node names its server");
    }
    // The server of the killed launch, if there is one: by its id or its tag.
    let killed_id = killed_server
        .as_ref()
        .map(|s| s.id.clone())
        .or(stored.clone())
        .unwrap_or_default();
    let of_killed_launch = |s: &CloudServer| {
        s.node.as_deref() == Some(killed_tag.as_str())
            || (!killed_id.is_empty() && s.id == killed_id)
    };
    let in_cloud: Vec<CloudServer> = site
        .servers()
        .await
        .into_iter()
        .filter(|s| s.node.as_deref() == Some(killed_tag.as_str()))
        .collect();
    eprintln!(
        "{:.1} s: killed the launcher; node {killed_node} BUILDING (server id on the node: {stored:?}), its servers in the cloud: {in_cloud:?}; what it said about them:\n{}",
        began.elapsed().as_secs_f64(),
        lines_about(&first, &[&killed_tag])
    );
    assert_no_errors(&first);

    // The next launcher, with quick launches, picks up after the dead session is reaped.
    site.write_config(false);
    let mut second = site.launcher("second");
    let request = zuul
        .wait(&request_id, wait)
        .await
        .unwrap_or_else(|e| panic!("request {request_id}: {e}; launcher log:\n{}", second.log()));
    assert_eq!(
        request.state,
        RequestState::Fulfilled,
        "launcher log:\n{}",
        second.log()
    );
    assert_eq!(request.nodes.len(), 1);
    let fresh_node = request.nodes[0];
    eprintln!(
        "{:.1} s: the restarted launcher fulfilled the request with node {fresh_node}",
        began.elapsed().as_secs_f64()
    );
    assert_ne!(fresh_node, killed_node, "a fresh node serves the request");
    let fresh = store
        .nodes()
        .get(fresh_node)
        .await
        .expect("read the node")
        .expect("the fresh node exists")
        .value;
    assert_eq!(fresh.state, NodeState::Ready);
    let fresh_server = site.server_id(fresh.external_id.as_ref().expect("external id"));

    // The killed launch's node and server are gone: nothing leaked.
    wait_node_gone(store, killed_node, &second, wait).await;
    wait_servers(
        site,
        "the killed launch's server is deleted",
        &second,
        |servers| !servers.iter().any(of_killed_launch),
    )
    .await;
    eprintln!(
        "{:.1} s: the killed launch's node and server are deleted",
        began.elapsed().as_secs_f64()
    );
    // Every server left belongs to a READY node, and the fresh node has its server.
    let servers = site.servers().await;
    let fresh_tag = fresh_node.to_string();
    assert!(
        servers
            .iter()
            .any(|s| s.id == fresh_server && s.node.as_deref() == Some(fresh_tag.as_str())),
        "the fresh node's server {fresh_server} is in the cloud: {servers:?}"
    );
    for server in &servers {
        let owner = server.node.as_deref().and_then(|n| NodeId::parse(n).ok());
        let node = match owner {
            Some(id) => store.nodes().get(id).await.expect("read the node"),
            None => None,
        };
        let owned = node.is_some_and(|n| {
            n.value.state == NodeState::Ready
                && n.value.external_id.as_ref().map(|e| site.server_id(e))
                    == Some(server.id.clone())
        });
        assert!(
            owned,
            "server {server:?} belongs to no READY node; launcher log:\n{}",
            second.log()
        );
    }

    // The job runs and returns its node; everything is cleaned up.
    let mut node_set = zuul.accept(&request_id, &request).await.expect("accept");
    zuul.use_nodes(&mut node_set, "org/project")
        .await
        .expect("use");
    zuul.return_nodes(node_set).await.expect("return");
    wait_no_nodes(store, &second, wait).await;
    wait_servers(site, "every server is deleted", &second, <[_]>::is_empty).await;
    eprintln!(
        "{:.1} s: the used node and its server are deleted; what the restarted launcher said about node {killed_node}:\n{}",
        began.elapsed().as_secs_f64(),
        lines_about(&second, &[&killed_tag, &killed_id])
    );

    second.interrupt();
    let status = second.wait_exit(wait).await;
    assert_eq!(status.code(), Some(0), "launcher log:\n{}", second.log());
    assert_no_errors(&second);
}
