//! Scenario harness: a store (SQLite file or a real ZooKeeper), launchers with the fake
//! driver on short intervals, and a Zuul-protocol client with its own session.

#![allow(dead_code)]

pub mod stories;

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use nodepool_driver::DriverRegistry;
use nodepool_driver_fake::{FakeCloud, FakeDriver};
use nodepool_launcher::{Launcher, LauncherOptions, Timing};
use nodepool_model::{Node, NodeId, NodeRequest, NodeState, RequestId};
use nodepool_store::{Backend, SqliteBackend, SqliteOptions, Store, TreeCache, paths};
use nodepool_store_zk::{ZooKeeperBackend, ZooKeeperOptions};
use nodepool_testkit::wait::wait_for_cache_change;
use nodepool_testkit::{RequestOptions, ZooKeeperServer, ZuulClient, log_errors};

pub const WAIT: Duration = Duration::from_secs(30);

pub fn fast_timing() -> Timing {
    Timing {
        idle_recheck: Duration::from_millis(250),
        config_check: Duration::from_millis(100),
        deleted_node_interval: Duration::from_millis(250),
        cleanup_interval: Duration::from_millis(300),
        delete_timeout: Duration::from_secs(10),
        request_lock_age: Duration::from_secs(2),
        console_log_timeout: Duration::from_millis(500),
        ..Timing::default()
    }
}

/// Where the store lives.
pub enum Backing {
    Sqlite(PathBuf),
    ZooKeeper(Arc<ZooKeeperServer>, String),
}

pub struct Harness {
    pub dir: tempfile::TempDir,
    pub config_path: PathBuf,
    pub backing: Backing,
    /// The client's own session, like Zuul's.
    pub store: Store,
    pub zuul: ZuulClient,
    pub nodes: TreeCache,
    pub fake: Arc<FakeDriver>,
    /// Drivers besides the fake one (a scenario file for a real driver pushes it here
    /// before starting launchers).
    pub drivers: Vec<Arc<dyn nodepool_driver::Driver>>,
    /// The intervals launchers started from now on run with ([`fast_timing`] by default).
    pub timing: Timing,
    pub launchers: Vec<(Launcher, Store)>,
}

impl Harness {
    pub async fn sqlite(config: &str) -> Harness {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = dir.path().join("nodepool.db");
        let backing = Backing::Sqlite(db);
        Harness::with_backing(dir, backing, config).await
    }

    pub async fn zookeeper(server: Arc<ZooKeeperServer>, config: &str) -> Harness {
        let dir = tempfile::tempdir().expect("tempdir");
        let chroot = format!("/scenario-{}", nodepool_model::ids::random_uuid_hex());
        Harness::with_backing(dir, Backing::ZooKeeper(server, chroot), config).await
    }

    async fn with_backing(dir: tempfile::TempDir, backing: Backing, config: &str) -> Harness {
        log_errors::install();
        let config_path = dir.path().join("nodepool.yaml");
        std::fs::write(&config_path, config).expect("write config");
        let store = open(&backing).await;
        for p in [paths::NODES, paths::REQUESTS] {
            store.ensure_path(p).await.expect("ensure path");
        }
        let nodes = TreeCache::start(store.backend().clone(), paths::NODES)
            .await
            .expect("node cache");
        Harness {
            zuul: ZuulClient::new(store.clone(), "zuul-system-id"),
            dir,
            config_path,
            backing,
            store,
            nodes,
            fake: Arc::new(FakeDriver::new()),
            drivers: Vec::new(),
            timing: fast_timing(),
            launchers: Vec::new(),
        }
    }

    pub fn registry(&self) -> DriverRegistry {
        let mut registry = DriverRegistry::new();
        registry.register(self.fake.clone());
        for driver in &self.drivers {
            registry.register(driver.clone());
        }
        registry
    }

    /// Starts one more launcher with its own store session.
    pub async fn start_launcher(&mut self) -> usize {
        let store = open(&self.backing).await;
        let mut options = LauncherOptions::new(self.config_path.clone(), None);
        options.timing = self.timing.clone();
        options.hostname = format!("launcher{}", self.launchers.len());
        options.fqdn = options.hostname.clone();
        let launcher = Launcher::start(store.clone(), self.registry(), options)
            .await
            .expect("launcher starts");
        self.launchers.push((launcher, store));
        self.launchers.len() - 1
    }

    /// Submits a request for `labels` as Zuul does and waits until it is answered.
    pub async fn submit_and_wait(&self, labels: &[&str]) -> (RequestId, NodeRequest) {
        let id = self
            .zuul
            .submit(labels, RequestOptions::default())
            .await
            .expect("submit");
        let request = self.zuul.wait(&id, WAIT).await.expect("wait");
        (id, request)
    }

    /// Stops a launcher gracefully and closes its session.
    pub async fn stop_launcher(&mut self, index: usize) {
        let (launcher, store) = self.launchers.remove(index);
        launcher.stop().await;
        let _ = store.backend().close().await;
    }

    pub fn write_config(&self, config: &str) {
        // Rename so the launcher never reads half a file.
        let tmp = self.dir.path().join("nodepool.yaml.new");
        std::fs::write(&tmp, config).expect("write config");
        std::fs::rename(&tmp, &self.config_path).expect("replace config");
    }

    pub fn cloud(&self, provider: &str) -> Arc<FakeCloud> {
        self.fake.cloud(provider).expect("fake cloud exists")
    }

    pub async fn all_nodes(&self) -> Vec<(NodeId, Node)> {
        let mut out = Vec::new();
        for id in self.store.nodes().ids().await.expect("node ids") {
            if let Some(n) = self.store.nodes().get(id).await.expect("node") {
                out.push((id, n.value));
            }
        }
        out
    }

    /// Waits until `condition` holds for the nodes in the store, re-checking on each change.
    pub async fn wait_nodes<T>(
        &self,
        what: &str,
        condition: impl Fn(&[(NodeId, Node)]) -> Option<T>,
    ) -> T {
        let store = self.store.clone();
        let condition = &condition;
        wait_for_cache_change(&self.nodes, WAIT, || {
            let store = store.clone();
            async move {
                let mut nodes = Vec::new();
                for id in store.nodes().ids().await.ok()? {
                    if let Ok(Some(n)) = store.nodes().get(id).await {
                        nodes.push((id, n.value));
                    }
                }
                condition(&nodes)
            }
        })
        .await
        .unwrap_or_else(|e| panic!("timed out waiting for {what}: {e:?}"))
    }

    /// Waits until one of `ids` not in `done` is fulfilled and returns it.
    pub async fn wait_requests_fulfilled(
        &self,
        ids: &[&RequestId],
        done: &[RequestId],
    ) -> RequestId {
        let store = self.store.clone();
        let ids: Vec<RequestId> = ids.iter().map(|i| (*i).clone()).collect();
        let done = done.to_vec();
        nodepool_testkit::wait::wait_for_store_change(
            self.store.backend().as_ref(),
            paths::REQUESTS,
            WAIT,
            || {
                let store = store.clone();
                let ids = ids.clone();
                let done = done.clone();
                async move {
                    for id in ids.iter().filter(|i| !done.contains(i)) {
                        if let Ok(Some(r)) = store.requests().get(id).await
                            && r.value.state == nodepool_model::RequestState::Fulfilled
                        {
                            return Some(id.clone());
                        }
                    }
                    None
                }
            },
        )
        .await
        .expect("a request is fulfilled")
    }

    /// A job as Zuul runs it up to the build: submit, wait for fulfilment, accept (nodes
    /// locked, request deleted) and mark the nodes in use. Return them with `zuul.return_nodes`.
    pub async fn running_job(
        &self,
        labels: &[&str],
        options: RequestOptions,
    ) -> nodepool_testkit::NodeSet {
        let id = self.zuul.submit(labels, options).await.expect("submit");
        let request = self.zuul.wait(&id, WAIT).await.expect("wait");
        assert_eq!(request.state, nodepool_model::RequestState::Fulfilled);
        let mut set = self.zuul.accept(&id, &request).await.expect("accept");
        self.zuul
            .use_nodes(&mut set, "org/project")
            .await
            .expect("use");
        set
    }

    /// Waits until a launcher accepted the request (pending: waiting for quota or nodes).
    pub async fn wait_pending(&self, id: &RequestId) {
        eventually("the request is pending", || async {
            self.store
                .requests()
                .get(id)
                .await
                .ok()
                .flatten()
                .is_some_and(|r| r.value.state == nodepool_model::RequestState::Pending)
        })
        .await;
    }

    /// Waits until `count` pool components are registered (workers started).
    pub async fn wait_pools(&self, count: usize) {
        let store = self.store.clone();
        nodepool_testkit::wait::wait_for_store_change(
            self.store.backend().as_ref(),
            paths::COMPONENTS,
            WAIT,
            || {
                let store = store.clone();
                async move {
                    let pools = store
                        .components()
                        .list(nodepool_model::ComponentKind::Pool)
                        .await
                        .ok()?;
                    (pools.len() == count).then_some(())
                }
            },
        )
        .await
        .expect("pool workers registered");
    }

    pub async fn wait_no_nodes(&self) {
        self.wait_nodes("every node deleted", |n| n.is_empty().then_some(()))
            .await
    }

    pub async fn wait_ready(&self, label: &str, count: usize) -> Vec<NodeId> {
        self.wait_nodes(&format!("{count} ready {label} nodes"), |nodes| {
            let ready: Vec<NodeId> = nodes
                .iter()
                .filter(|(_, n)| {
                    n.state == NodeState::Ready
                        && n.allocated_to.is_none()
                        && n.node_type.iter().any(|t| t == label)
                })
                .map(|(id, _)| *id)
                .collect();
            (ready.len() == count).then_some(ready)
        })
        .await
    }

    pub async fn shutdown(mut self) {
        while !self.launchers.is_empty() {
            self.stop_launcher(0).await;
        }
        let _ = self.store.backend().close().await;
        log_errors::assert_none();
    }
}

pub async fn open(backing: &Backing) -> Store {
    match backing {
        Backing::Sqlite(path) => {
            let backend = SqliteBackend::open(SqliteOptions::new(path))
                .await
                .expect("open sqlite");
            Store::new(Arc::new(backend))
        }
        Backing::ZooKeeper(server, chroot) => {
            let mut options = ZooKeeperOptions::new([server.plain_address()]);
            options.chroot = Some(chroot.clone());
            let backend = ZooKeeperBackend::connect(options)
                .await
                .expect("connect zookeeper");
            Store::new(Arc::new(backend) as Arc<dyn Backend>)
        }
    }
}

/// Polls a condition that has no watch (the fake cloud's memory) until it holds.
pub async fn eventually<F, Fut>(what: &str, condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let mut condition = condition;
    nodepool_testkit::wait::wait_for(WAIT, Duration::from_millis(25), || {
        let fut = condition();
        async move { fut.await.then_some(()) }
    })
    .await
    .unwrap_or_else(|_| panic!("timed out waiting for {what}"));
}

/// A fake-driver config with one provider and one pool.
pub fn fake_config(
    labels: &[(&str, u32)],
    max_servers: Option<u32>,
    extra_provider: &str,
) -> String {
    let mut text = String::from("labels:\n");
    for (label, min_ready) in labels {
        text.push_str(&format!("  - name: {label}\n    min-ready: {min_ready}\n"));
    }
    text.push_str("providers:\n  - name: fake-provider\n    driver: fake\n    cloud: fake\n");
    text.push_str(extra_provider);
    text.push_str("    cloud-images:\n      - name: fake-image\n        image-id: fake-image-id\n");
    text.push_str("    pools:\n      - name: main\n");
    if let Some(max) = max_servers {
        text.push_str(&format!("        max-servers: {max}\n"));
    }
    text.push_str("        labels:\n");
    for (label, _) in labels {
        text.push_str(&format!(
            "          - name: {label}\n            cloud-image: fake-image\n            min-ram: 8192\n"
        ));
    }
    text
}
