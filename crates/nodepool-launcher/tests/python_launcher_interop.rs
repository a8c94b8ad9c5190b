//! Drop-in check: Python Nodepool 11's own launcher (its fake driver) and ours share one TLS
//! ZooKeeper. Each serves its own label, neither touches the other's nodes, and a request
//! nobody can serve fails only once both have declined it: pool components, request locks,
//! declines and node records are understood both ways.
//!
//! Needs the test venv from `scripts/setup.sh` (`nodepool==11.0.0` with its dependencies).

mod common;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use nodepool_driver::DriverRegistry;
use nodepool_driver_fake::FakeDriver;
use nodepool_launcher::{Launcher, LauncherOptions};
use nodepool_model::{ComponentKind, NodeState, RequestState};
use nodepool_store::{Backend, Store};
use nodepool_store_zk::{ZooKeeperBackend, ZooKeeperOptions, ZooKeeperTls};
use nodepool_testkit::{RequestOptions, ServerOptions, ZooKeeperServer, ZuulClient};

const CHROOT: &str = "/interop";
const WAIT: Duration = Duration::from_secs(90);

fn venv() -> PathBuf {
    std::env::var("NODEPOOL_TEST_VENV")
        .unwrap_or_else(|_| "/var/tmp/nodepool-venv".into())
        .into()
}

struct PythonLauncher(Child);

impl Drop for PythonLauncher {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn connect(server: &ZooKeeperServer) -> Store {
    let tls = server.client_tls().expect("client certificate");
    let mut options = ZooKeeperOptions::new([server.tls_address().expect("TLS port")]);
    options.chroot = Some(CHROOT.to_string());
    options.tls = Some(ZooKeeperTls {
        cert: tls.cert.clone(),
        key: tls.key.clone(),
        ca: tls.ca.clone(),
    });
    let backend = ZooKeeperBackend::connect(options).await.expect("connect");
    Store::new(Arc::new(backend) as Arc<dyn Backend>)
}

fn config(server: &ZooKeeperServer, label: &str, provider: &str) -> String {
    let address = server.tls_address().expect("TLS port");
    let (host, port) = address.rsplit_once(':').expect("host:port");
    let tls = server.client_tls().expect("client certificate");
    let lines = [
        "zookeeper-servers:".to_string(),
        format!("  - host: {host}"),
        format!("    port: {port}"),
        format!("    chroot: {CHROOT}"),
        "zookeeper-tls:".to_string(),
        format!("  cert: {}", tls.cert.display()),
        format!("  key: {}", tls.key.display()),
        format!("  ca: {}", tls.ca.display()),
        "labels:".to_string(),
        format!("  - name: {label}"),
        "providers:".to_string(),
        format!("  - name: {provider}"),
        "    driver: fake".to_string(),
        "    cloud: fake".to_string(),
        "    rate: 0.0001".to_string(),
        "    cloud-images:".to_string(),
        "      - name: fake-image".to_string(),
        "        image-id: fake-image-id".to_string(),
        "    pools:".to_string(),
        "      - name: main".to_string(),
        "        max-servers: 10".to_string(),
        "        labels:".to_string(),
        format!("          - name: {label}"),
        "            cloud-image: fake-image".to_string(),
        "            min-ram: 8192".to_string(),
    ];
    lines.join("\n") + "\n"
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_nodepool_and_our_launcher_share_one_zookeeper() {
    let server = ZooKeeperServer::start(ServerOptions::with_tls()).expect("zookeeper");
    let dir = tempfile::tempdir().expect("tempdir");
    let clouds = dir.path().join("clouds.yaml");
    std::fs::write(
        &clouds,
        "clouds:\n  fake:\n    auth:\n      username: fake\n      password: fake\n      project_id: fake\n      auth_url: http://fake\n",
    )
    .expect("clouds.yaml");
    let py_config = dir.path().join("python.yaml");
    std::fs::write(&py_config, config(&server, "py-label", "py-provider")).expect("config");
    let rs_config = dir.path().join("rust.yaml");
    std::fs::write(&rs_config, config(&server, "rs-label", "rs-provider")).expect("config");

    let log = std::fs::File::create(dir.path().join("python-launcher.log")).expect("log");
    let python = PythonLauncher(
        Command::new(venv().join("bin/nodepool-launcher"))
            .args(["-c"])
            .arg(&py_config)
            .args(["-f", "--no-webapp", "-p"])
            .arg(dir.path().join("pid"))
            .env("OS_CLIENT_CONFIG_FILE", &clouds)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start Python nodepool-launcher (run scripts/setup.sh)"),
    );

    let launcher_store = connect(&server).await;
    let mut registry = DriverRegistry::new();
    registry.register(Arc::new(FakeDriver::new()));
    let mut options = LauncherOptions::new(rs_config.clone(), None);
    options.timing = common::fast_timing();
    let ours = Launcher::start(launcher_store.clone(), registry, options)
        .await
        .expect("our launcher");

    let store = connect(&server).await;
    let zuul = ZuulClient::new(store.clone(), "zuul-interop");
    // Both launchers' pools registered: Python's is how our launcher knows a request for an
    // unknown label may only fail once Python declined it too.
    nodepool_testkit::wait::wait_for(WAIT, Duration::from_millis(100), || {
        let store = store.clone();
        async move {
            let pools = store.components().list(ComponentKind::Pool).await.ok()?;
            (pools.len() == 2).then_some(())
        }
    })
    .await
    .unwrap_or_else(|_| {
        panic!(
            "both pools registered; Python log:\n{}",
            std::fs::read_to_string(dir.path().join("python-launcher.log")).unwrap_or_default()
        )
    });

    let py = zuul
        .submit(&["py-label"], RequestOptions::default())
        .await
        .expect("submit");
    let rs = zuul
        .submit(&["rs-label"], RequestOptions::default())
        .await
        .expect("submit");
    let none = zuul
        .submit(&["no-such-label"], RequestOptions::default())
        .await
        .expect("submit");
    let py_req = zuul.wait(&py, WAIT).await.expect("python request");
    let rs_req = zuul.wait(&rs, WAIT).await.expect("our request");
    let none_req = zuul.wait(&none, WAIT).await.expect("unknown label request");
    assert_eq!(py_req.state, RequestState::Fulfilled);
    assert_eq!(rs_req.state, RequestState::Fulfilled);
    assert_eq!(none_req.state, RequestState::Failed);
    assert_eq!(none_req.declined_by.len(), 2, "{:?}", none_req.declined_by);
    assert!(
        none_req
            .declined_by
            .iter()
            .any(|d| d.contains("PoolWorker.py-provider-main"))
    );
    assert!(
        none_req
            .declined_by
            .iter()
            .any(|d| d.contains("PoolWorker.rs-provider-main"))
    );
    zuul.cancel(&none).await.expect("cancel");

    let py_node = store
        .nodes()
        .get(py_req.nodes[0])
        .await
        .expect("get")
        .expect("node")
        .value;
    let rs_node = store
        .nodes()
        .get(rs_req.nodes[0])
        .await
        .expect("get")
        .expect("node")
        .value;
    assert_eq!(py_node.provider.as_deref(), Some("py-provider"));
    assert_eq!(rs_node.provider.as_deref(), Some("rs-provider"));
    // Our node reads like Python's: every field Zuul uses is filled the same way.
    for node in [&py_node, &rs_node] {
        assert_eq!(node.state, NodeState::Ready);
        assert_eq!(node.host_keys, vec!["ssh-rsa FAKEKEY".to_string()]);
    }
    let comparable = |n: &nodepool_model::Node| {
        let mut json: serde_json::Value =
            serde_json::from_slice(&nodepool_model::wire::node::to_json(n)).expect("json");
        let map = json.as_object_mut().expect("object");
        for volatile in [
            "state_time",
            "created_time",
            "provider",
            "launcher",
            "external_id",
            "allocated_to",
            "az",
            "requestor",
            "type",
        ] {
            map.remove(volatile);
        }
        json
    };
    assert_eq!(
        comparable(&rs_node),
        comparable(&py_node),
        "our node record differs from Python's"
    );
    for (id, request) in [(&py, &py_req), (&rs, &rs_req)] {
        let mut set = zuul.accept(id, request).await.expect("accept");
        zuul.use_nodes(&mut set, "org/project").await.expect("use");
        zuul.return_nodes(set).await.expect("return");
    }
    nodepool_testkit::wait::wait_for(WAIT, Duration::from_millis(100), || {
        let store = store.clone();
        async move { store.nodes().ids().await.ok()?.is_empty().then_some(()) }
    })
    .await
    .expect("both launchers delete their used nodes");

    ours.stop().await;
    let _ = launcher_store.backend().close().await;
    drop(python);
    let _ = store.backend().close().await;
}
