//! Black-box tests of `nodepool launcher` as a process: SIGKILL in the middle of a launch and
//! a restart recover the request and leak nothing; SIGINT stops it gracefully.
//!
//! The launcher uses the embedded SQLite store and a fake cloud that keeps its servers in a
//! JSON file (`fake-state`), so both survive the process. A Zuul-protocol client on its own
//! store session submits and consumes requests, as Zuul does. `NODEPOOL_TEST_FAST_TIMING=1`
//! shortens the launcher's cleanup intervals (see `commands/daemons.rs`).

use std::fs::File;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::time::Duration;

use nodepool_model::{ComponentKind, ExternalId, NodeId, NodeState, RequestState};
use nodepool_store::{SqliteBackend, SqliteOptions, Store, paths};
use nodepool_testkit::wait::{wait_for, wait_for_store_change};
use nodepool_testkit::{RequestOptions, ZuulClient};
use tempfile::TempDir;

const BINARY: &str = env!("CARGO_BIN_EXE_nodepool");

/// Long enough for a dead session to be reaped (10 s) and the request to be served again.
const WAIT: Duration = Duration::from_secs(60);
const POLL: Duration = Duration::from_millis(50);

/// A working directory with the configuration, the database and the cloud's state file.
struct Site {
    dir: TempDir,
}

impl Site {
    fn new() -> Site {
        Site {
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    fn config_path(&self) -> PathBuf {
        self.dir.path().join("nodepool.yaml")
    }

    fn database(&self) -> PathBuf {
        self.dir.path().join("np.db")
    }

    fn cloud_state(&self) -> PathBuf {
        self.dir.path().join("cloud.json")
    }

    /// Writes the configuration; `create_delay` slows every server create in the fake cloud.
    fn write_config(&self, create_delay: Option<u32>) {
        let faults = create_delay
            .map(|d| format!("    fake-faults:\n      create-delay: {d}\n"))
            .unwrap_or_default();
        let text = format!(
            "database: {database}\n\
             labels:\n  - name: small\n    min-ready: 0\n\
             providers:\n  - name: fake-provider\n    driver: fake\n    cloud: fake\n\
             \x20   fake-state: {state}\n{faults}\
             \x20   cloud-images:\n      - name: fake-image\n        image-id: fake-image-id\n\
             \x20   pools:\n      - name: main\n        max-servers: 10\n        labels:\n\
             \x20         - name: small\n            cloud-image: fake-image\n            min-ram: 8192\n",
            database = self.database().display(),
            state = self.cloud_state().display(),
        );
        let temporary = self.dir.path().join("nodepool.yaml.new");
        std::fs::write(&temporary, text).expect("write config");
        std::fs::rename(&temporary, self.config_path()).expect("replace config");
    }

    /// The fake cloud's servers as its state file shows them: (server id, node id).
    fn servers(&self) -> Vec<(String, Option<String>)> {
        let Ok(text) = std::fs::read_to_string(self.cloud_state()) else {
            return Vec::new();
        };
        let document: serde_json::Value =
            serde_json::from_str(&text).expect("the cloud state file is JSON");
        document["servers"]
            .as_array()
            .expect("servers is a list")
            .iter()
            .map(|server| {
                let id = server["id"].as_str().expect("server id").to_string();
                let node = server["metadata"]["nodepool_node_id"]
                    .as_str()
                    .map(str::to_string);
                (id, node)
            })
            .collect()
    }

    async fn wait_servers(
        &self,
        what: &str,
        condition: impl Fn(&[(String, Option<String>)]) -> bool,
    ) {
        wait_for(WAIT, POLL, || async {
            condition(&self.servers()).then_some(())
        })
        .await
        .unwrap_or_else(|_| panic!("timed out waiting until {what}: {:?}", self.servers()));
    }

    /// Our own store session, like Zuul's.
    async fn store(&self) -> Store {
        let backend = SqliteBackend::open(SqliteOptions::new(self.database()))
            .await
            .expect("open the embedded store");
        Store::new(Arc::new(backend))
    }

    fn launcher(&self, name: &str) -> LauncherProcess {
        let log = self.dir.path().join(format!("{name}.log"));
        let child = Command::new(BINARY)
            .arg("launcher")
            .arg("-c")
            .arg(self.config_path())
            .arg("-f")
            .arg("--no-webapp")
            .env("NODEPOOL_TEST_FAST_TIMING", "1")
            .env_remove("RUST_LOG")
            .env_remove("STATSD_HOST")
            .env_remove("STATSD_PORT")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(File::create(&log).expect("create log file"))
            .spawn()
            .expect("start nodepool launcher");
        LauncherProcess { child, log }
    }
}

/// A running `nodepool launcher`; killed on drop if still running.
struct LauncherProcess {
    child: Child,
    log: PathBuf,
}

impl LauncherProcess {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGKILL: no chance to clean up anything.
    fn kill(&mut self) {
        self.child.kill().expect("SIGKILL the launcher");
        self.child.wait().expect("reap the launcher");
    }

    fn interrupt(&self) {
        let status = Command::new("kill")
            .arg("-INT")
            .arg(self.child.id().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -INT failed");
    }

    async fn wait_exit(&mut self, within: Duration) -> ExitStatus {
        let child = &mut self.child;
        let status = wait_for(within, POLL, || {
            let status = child.try_wait().expect("poll the launcher");
            async move { status }
        })
        .await;
        status.unwrap_or_else(|_| panic!("the launcher did not exit; its log:\n{}", self.log()))
    }
}

impl Drop for LauncherProcess {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn external_id(id: &ExternalId) -> String {
    match id {
        ExternalId::Id(id) => id.clone(),
        ExternalId::Fields(fields) => panic!("the fake cloud uses plain ids, not {fields:?}"),
    }
}

/// Waits until some node satisfies `condition` (checked on every change under the nodes).
async fn wait_node<T>(
    store: &Store,
    what: &str,
    launcher: &LauncherProcess,
    condition: impl Fn(NodeId, &nodepool_model::Node) -> Option<T>,
) -> T {
    let condition = &condition;
    wait_for_store_change(
        store.backend().as_ref(),
        paths::NODES,
        WAIT,
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

async fn wait_no_nodes(store: &Store, launcher: &LauncherProcess) {
    wait_for_store_change(store.backend().as_ref(), paths::NODES, WAIT, || async {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_launcher_killed_mid_launch_is_recovered_by_the_next_one_without_leaks() {
    let site = Site::new();
    site.write_config(Some(5));
    let store = site.store().await;
    let zuul = ZuulClient::new(store.clone(), "zuul-system-id");
    let mut first = site.launcher("first");
    let request_id = zuul
        .submit(&["small"], RequestOptions::default())
        .await
        .expect("submit");

    // The launch is under way: the node is BUILDING with the server's id, the server exists.
    let (killed_node, killed_server) = wait_node(
        &store,
        "a BUILDING node with a server",
        &first,
        |id, node| {
            (node.state == NodeState::Building && node.allocated_to.as_ref() == Some(&request_id))
                .then(|| node.external_id.as_ref().map(|e| (id, external_id(e))))
                .flatten()
        },
    )
    .await;
    site.wait_servers("the server is in the cloud's state file", |servers| {
        servers.iter().any(|(id, _)| *id == killed_server)
    })
    .await;
    first.kill();

    // The next launcher, with fast creates, picks up after the dead session is reaped.
    site.write_config(None);
    let mut second = site.launcher("second");
    let request = zuul
        .wait(&request_id, WAIT)
        .await
        .unwrap_or_else(|e| panic!("request {request_id}: {e}; launcher log:\n{}", second.log()));
    assert_eq!(
        request.state,
        RequestState::Fulfilled,
        "launcher log:\n{}",
        second.log()
    );
    assert_eq!(request.nodes.len(), 1);
    assert_ne!(
        request.nodes[0], killed_node,
        "a fresh node serves the request"
    );

    // The killed launch's node and server are gone: nothing leaked.
    wait_for_store_change(store.backend().as_ref(), paths::NODES, WAIT, || async {
        matches!(store.nodes().get(killed_node).await, Ok(None)).then_some(())
    })
    .await
    .unwrap_or_else(|e| {
        panic!(
            "node {killed_node} of the killed launch remains ({e}); log:\n{}",
            second.log()
        )
    });
    site.wait_servers("the killed launch's server is deleted", |servers| {
        !servers.iter().any(|(id, _)| *id == killed_server)
    })
    .await;

    // The job runs and returns its node; everything is cleaned up.
    let mut node_set = zuul.accept(&request_id, &request).await.expect("accept");
    zuul.use_nodes(&mut node_set, "org/project")
        .await
        .expect("use");
    zuul.return_nodes(node_set).await.expect("return");
    wait_no_nodes(&store, &second).await;
    site.wait_servers("every server is deleted", <[_]>::is_empty)
        .await;

    second.interrupt();
    let status = second.wait_exit(WAIT).await;
    assert_eq!(status.code(), Some(0), "launcher log:\n{}", second.log());
    let _ = store.backend().close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigint_stops_the_launcher_gracefully_and_unregisters_its_pool() {
    let site = Site::new();
    site.write_config(None);
    let store = site.store().await;
    let mut launcher = site.launcher("launcher");
    let pools = || async {
        store
            .components()
            .list(ComponentKind::Pool)
            .await
            .map(|pools| pools.len())
            .ok()
    };
    wait_for_store_change(
        store.backend().as_ref(),
        paths::COMPONENTS,
        WAIT,
        || async { (pools().await? == 1).then_some(()) },
    )
    .await
    .unwrap_or_else(|e| panic!("the pool never registered ({e}); log:\n{}", launcher.log()));

    launcher.interrupt();
    let status = launcher.wait_exit(WAIT).await;
    assert_eq!(status.code(), Some(0), "launcher log:\n{}", launcher.log());
    // Unregistered on the way out, not reaped with a dead session later.
    assert_eq!(pools().await, Some(0), "launcher log:\n{}", launcher.log());
    let _ = store.backend().close().await;
}
