//! Black-box test of the webapp that `nodepool launcher` serves (spec 6): on the configured
//! `webapp.port`, `/ready` turns 200 once the launcher is ready, and Nodepool's listings
//! show what the launcher did (a min-ready node); SIGINT stops both.

use std::fs::File;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use nodepool_testkit::http;
use nodepool_testkit::wait::wait_for;
use serde_json::Value;

const BINARY: &str = env!("CARGO_BIN_EXE_nodepool");
const WAIT: Duration = Duration::from_secs(60);
const POLL: Duration = Duration::from_millis(100);

/// A free loopback port: bind port 0, read it, let it go.
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local address").port()
}

struct Launcher {
    child: Child,
    log: std::path::PathBuf,
}

impl Launcher {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Launcher {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_launcher_serves_the_webapp_and_reports_ready() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let config = dir.path().join("nodepool.yaml");
    let text = format!(
        "database: {database}\n\
         webapp:\n  port: {port}\n  listen_address: 127.0.0.1\n\
         labels:\n  - name: small\n    min-ready: 1\n\
         providers:\n  - name: fake-provider\n    driver: fake\n    cloud: fake\n\
         \x20   cloud-images:\n      - name: fake-image\n        image-id: fake-image-id\n\
         \x20   pools:\n      - name: main\n        max-servers: 5\n        labels:\n\
         \x20         - name: small\n            cloud-image: fake-image\n            min-ram: 8192\n",
        database = dir.path().join("np.db").display(),
    );
    std::fs::write(&config, text).expect("write config");
    let log = dir.path().join("launcher.log");
    let child = Command::new(BINARY)
        .arg("launcher")
        .arg("-c")
        .arg(&config)
        .arg("-f")
        .env("NODEPOOL_TEST_FAST_TIMING", "1")
        .env_remove("RUST_LOG")
        .env_remove("STATSD_HOST")
        .env_remove("STATSD_PORT")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(File::create(&log).expect("create log file"))
        .spawn()
        .expect("start nodepool launcher");
    let mut launcher = Launcher { child, log };
    let address = format!("127.0.0.1:{port}");

    // Nothing announces readiness but the endpoint itself: ask until it says OK.
    let ready = wait_for(WAIT, POLL, || async {
        let response = http::get(&address, "/ready", None).await.ok()?;
        (response.status == 200).then_some(response)
    })
    .await
    .unwrap_or_else(|_| panic!("/ready never said 200; log:\n{}", launcher.log()));
    assert_eq!(ready.text(), "OK");
    assert_eq!(ready.header("cache-control"), Some("max-age=1, public"));

    // min-ready 1: the launcher makes a node, and /node-list shows it.
    let node = wait_for(WAIT, POLL, || async {
        let response = http::get(&address, "/node-list", Some("application/json"))
            .await
            .ok()?;
        let rows: Value = serde_json::from_slice(&response.body).ok()?;
        rows.as_array()?
            .iter()
            .find(|row| row["label"] == serde_json::json!(["small"]) && row["state"] == "ready")
            .cloned()
    })
    .await
    .unwrap_or_else(|_| panic!("no ready node in /node-list; log:\n{}", launcher.log()));
    assert_eq!(node["provider"], "fake-provider");
    assert_eq!(node["pool"], "main");

    let table = http::get(&address, "/node-list", None)
        .await
        .expect("node-list");
    assert_eq!(
        table.header("content-type"),
        Some("text/plain; charset=UTF-8")
    );
    assert!(table.text().contains(node["id"].as_str().expect("id")));
    let labels = http::get(&address, "/label-list", None)
        .await
        .expect("label-list");
    assert!(labels.text().contains("| small |"), "{}", labels.text());
    let api = http::get(&address, "/api/labels", None).await.expect("api");
    let api: Value = serde_json::from_slice(&api.body).expect("json");
    assert_eq!(api[0]["name"], "small");
    assert_eq!(api[0]["min_ready"], 1);
    assert_eq!(http::get(&address, "/", None).await.expect("/").status, 404);
    // What only the launcher process knows: launch results, workers, quota use.
    let metrics = http::get(&address, "/metrics", None)
        .await
        .expect("metrics");
    let metrics = metrics.text();
    assert!(
        metrics.contains("nodepool_launches_total{provider=\"fake-provider\",result=\"ready\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("nodepool_worker_busy{worker=\"pool:fake-provider-main\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains("nodepool_pool_quota_used{provider=\"fake-provider\",pool=\"main\",resource=\"instances\"} 1"),
        "{metrics}"
    );
    let providers = http::get(&address, "/api/providers", None)
        .await
        .expect("providers");
    let providers: Value = serde_json::from_str(&providers.text()).expect("json");
    assert_eq!(providers[0]["name"], "fake-provider");
    assert_eq!(providers[0]["pools"][0]["used"]["instances"], 1.0);

    let status = Command::new("kill")
        .arg("-INT")
        .arg(launcher.child.id().to_string())
        .status()
        .expect("run kill");
    assert!(status.success());
    let child = &mut launcher.child;
    let exit = wait_for(WAIT, POLL, || {
        let exit = child.try_wait().expect("poll the launcher");
        async move { exit }
    })
    .await
    .expect("the launcher exits after SIGINT");
    assert!(exit.success(), "exit {exit:?}; log:\n{}", launcher.log());
    assert!(
        http::get(&address, "/ready", None).await.is_err(),
        "the webapp stopped with the launcher"
    );
}
