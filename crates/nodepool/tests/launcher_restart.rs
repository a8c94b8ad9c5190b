//! Black-box tests of `nodepool launcher` as a process: SIGKILL in the middle of a launch and
//! a restart recover the request and leak nothing; SIGINT stops it gracefully.
//!
//! The launcher uses the embedded SQLite store and a fake cloud that keeps its servers in a
//! JSON file (`fake-state`), so both survive the process. A Zuul-protocol client on its own
//! store session submits and consumes requests, as Zuul does. `NODEPOOL_TEST_FAST_TIMING=1`
//! shortens the launcher's cleanup intervals (see `commands/daemons.rs`).

mod common;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use common::launcher::{
    CloudServer, DaemonProcess, KillPoint, RestartSite, killed_mid_launch_then_restarted,
};
use nodepool_model::{ComponentKind, ExternalId};
use nodepool_store::{SqliteBackend, SqliteOptions, Store, paths};
use nodepool_testkit::wait::wait_for_store_change;
use tempfile::TempDir;

/// Long enough for a dead session to be reaped (10 s) and the request to be served again.
const WAIT: Duration = Duration::from_secs(60);

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

    /// Our own store session, like Zuul's.
    async fn store(&self) -> Store {
        let backend = SqliteBackend::open(SqliteOptions::new(self.database()))
            .await
            .expect("open the embedded store");
        Store::new(Arc::new(backend))
    }
}

impl RestartSite for Site {
    /// Held launches come from slow server creates (5 s each) in the fake cloud.
    fn write_config(&self, hold_launches: bool) {
        let faults = if hold_launches {
            "    fake-faults:\n      create-delay: 5\n"
        } else {
            ""
        };
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

    fn launcher(&self, name: &str) -> DaemonProcess {
        let log = self.dir.path().join(format!("{name}.log"));
        DaemonProcess::start(&self.config_path(), log, &[])
    }

    /// The fake cloud's servers as its state file shows them.
    async fn servers(&self) -> Vec<CloudServer> {
        let Ok(text) = std::fs::read_to_string(self.cloud_state()) else {
            return Vec::new();
        };
        let document: serde_json::Value =
            serde_json::from_str(&text).expect("the cloud state file is JSON");
        document["servers"]
            .as_array()
            .expect("servers is a list")
            .iter()
            .map(|server| CloudServer {
                id: server["id"].as_str().expect("server id").to_string(),
                node: server["metadata"]["nodepool_node_id"]
                    .as_str()
                    .map(str::to_string),
                state: server["status"].as_str().unwrap_or_default().to_string(),
            })
            .collect()
    }

    fn server_id(&self, external_id: &ExternalId) -> String {
        match external_id {
            ExternalId::Id(id) => id.clone(),
            ExternalId::Fields(fields) => panic!("the fake cloud uses plain ids, not {fields:?}"),
        }
    }

    fn deadline(&self) -> Duration {
        WAIT
    }

    fn cloud_poll(&self) -> Duration {
        Duration::from_millis(50)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_launcher_killed_mid_launch_is_recovered_by_the_next_one_without_leaks() {
    let site = Site::new();
    let store = site.store().await;
    killed_mid_launch_then_restarted(&site, &store, KillPoint::ServerListed).await;
    let _ = store.backend().close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_launcher_killed_as_its_node_starts_building_leaks_nothing() {
    let site = Site::new();
    let store = site.store().await;
    killed_mid_launch_then_restarted(&site, &store, KillPoint::NodeBuilding).await;
    let _ = store.backend().close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigint_stops_the_launcher_gracefully_and_unregisters_its_pool() {
    let site = Site::new();
    site.write_config(false);
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
