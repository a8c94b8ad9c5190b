//! Python Nodepool 11's own ZooKeeper code and ours on one real ZooKeeper over TLS: what
//! Nodepool writes we read as the right typed values, and what we write Nodepool reads.
//! The Python side is `nodepool_exchange.py`, run in the venv `scripts/setup.sh` makes
//! (it installs `nodepool==11.0.0` there without its cloud dependencies).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use nodepool_model::{
    BuildId, BuildState, ConnectionPort, ImageBuild, ImageUpload, Node, NodeId, NodeRequest,
    NodeState, RequestId, RequestState, UploadId, UploadState,
};
use nodepool_store::Store;
use nodepool_store_zk::{ZooKeeperBackend, ZooKeeperOptions, ZooKeeperTls};
use nodepool_testkit::{ServerOptions, ZooKeeperServer};
use serde_json::Value;

async fn python_nodepool(server: &ZooKeeperServer, args: &[&str]) -> Value {
    let venv =
        std::env::var("NODEPOOL_TEST_VENV").unwrap_or_else(|_| "/var/tmp/nodepool-venv".into());
    let python = PathBuf::from(venv).join("bin/python");
    assert!(
        python.exists(),
        "{} exists: run scripts/setup.sh",
        python.display()
    );
    let files = server.client_tls().expect("TLS files");
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/nodepool_exchange.py");
    let output = tokio::time::timeout(
        Duration::from_secs(60),
        tokio::process::Command::new(python)
            .arg(script)
            .arg(server.tls_address().expect("TLS port"))
            .args([&files.ca, &files.cert, &files.key])
            .args(args)
            .output(),
    )
    .await
    .expect("Python Nodepool answers in time")
    .expect("Python Nodepool runs");
    assert!(
        output.status.success(),
        "Python Nodepool failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("JSON from Python Nodepool: {e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_cross_between_python_nodepool_and_us() {
    let server = ZooKeeperServer::start(ServerOptions::with_tls())
        .unwrap_or_else(|e| panic!("ZooKeeper starts: {e}"));
    let files = server.client_tls().expect("TLS files");
    let mut options = ZooKeeperOptions::new([server.tls_address().expect("TLS port")]);
    options.tls = Some(ZooKeeperTls {
        cert: files.cert.clone(),
        key: files.key.clone(),
        ca: files.ca.clone(),
    });
    let store = Store::new(Arc::new(
        ZooKeeperBackend::connect(options)
            .await
            .unwrap_or_else(|e| panic!("connect: {e}")),
    ));

    // Python Nodepool writes; we read.
    let written = python_nodepool(&server, &["write"]).await;
    let text = |key: &str| {
        written[key]
            .as_str()
            .unwrap_or_else(|| panic!("{key} in {written}"))
            .to_string()
    };
    let node_id = NodeId::parse(&text("node")).expect("a node id");
    let node = store
        .nodes()
        .get(node_id)
        .await
        .expect("get")
        .expect("the node")
        .value;
    assert_eq!(node.state, NodeState::Ready);
    assert_eq!(node.node_type, vec!["debian".to_string()]);
    assert_eq!(node.provider.as_deref(), Some("p1"));
    assert_eq!(node.connection_port, Some(ConnectionPort::Port(22)));
    assert_eq!(node.host_keys, vec!["ssh-rsa AAAA".to_string()]);
    assert!(node.created_time.is_some());
    let ephemeral = RequestId::parse(&text("ephemeral_request")).expect("a request id");
    assert_eq!(ephemeral.precedence(), "900");
    assert!(
        store
            .requests()
            .get(&ephemeral)
            .await
            .expect("get")
            .is_none(),
        "Nodepool's own (ephemeral) request vanished with its session"
    );
    let request_id = RequestId::parse(&text("request")).expect("a request id");
    assert_eq!(request_id.precedence(), "200");
    let request = store
        .requests()
        .get(&request_id)
        .await
        .expect("get")
        .expect("the request")
        .value;
    assert_eq!(request.state, RequestState::Requested);
    assert_eq!(
        request.node_types,
        vec!["debian".to_string(), "debian".to_string()]
    );
    assert_eq!(request.relative_priority, 3);
    let build_id = BuildId::parse(&text("build")).expect("a build id");
    let build = store
        .images()
        .build("debian", &build_id)
        .await
        .expect("get")
        .expect("the build")
        .value;
    assert_eq!(build.state, BuildState::Ready);
    assert_eq!(build.builder.as_deref(), Some("builder.example.com"));
    let mut formats = build.formats.clone();
    formats.sort();
    assert_eq!(formats, vec!["qcow2".to_string(), "raw".to_string()]);
    let upload_id = UploadId::parse(&text("upload")).expect("an upload id");
    let upload = store
        .images()
        .upload("debian", &build_id, "p1", upload_id)
        .await
        .expect("get")
        .expect("upload")
        .value;
    assert_eq!(upload.state, UploadState::Ready);
    assert_eq!(upload.external_id.as_deref(), Some("image-1"));

    // We write; Python Nodepool reads.
    let mut node = Node::new(NodeState::Building, 1_732_550_000.25);
    node.node_type = vec!["ubuntu".into()];
    node.provider = Some("p1".into());
    node.connection_port = Some(ConnectionPort::Port(2222));
    node.host_keys = vec!["ssh-ed25519 BBBB".into()];
    let our_node = store.nodes().create(&mut node).await.expect("create node");
    let mut request = NodeRequest::new(1_732_550_001.0);
    request.node_types = vec!["ubuntu".into()];
    request.requestor = Some("NodePool:min-ready".into());
    request.reuse = false;
    let our_request = store
        .requests()
        .create(&request, "900", false)
        .await
        .expect("create request");
    let our_build = BuildId::new_random();
    let mut build = ImageBuild::new(BuildState::Ready, 1_732_550_002.0);
    build.formats = vec!["raw".into(), "qcow2".into()];
    build.builder = Some("rust-builder".into());
    store
        .images()
        .create_build("debian", &our_build, &build)
        .await
        .expect("create build");
    let mut upload = ImageUpload::new(UploadState::Ready, 1_732_550_003.0);
    upload.external_id = Some("image-2".into());
    upload.format = Some("qcow2".into());
    let our_upload = store
        .images()
        .create_upload("debian", &our_build, "p1", &upload)
        .await
        .expect("create upload");
    let read = python_nodepool(
        &server,
        &[
            "read",
            &our_node.to_string(),
            &our_request.to_string(),
            our_build.as_str(),
            &our_upload.to_string(),
        ],
    )
    .await;
    assert_eq!(read["node"]["state"], "building");
    assert_eq!(read["node"]["type"], serde_json::json!(["ubuntu"]));
    assert_eq!(read["node"]["connection_port"], 2222);
    assert_eq!(
        read["node"]["host_keys"],
        serde_json::json!(["ssh-ed25519 BBBB"])
    );
    assert_eq!(read["node"]["created_time"], 1_732_550_000.25);
    assert_eq!(read["request"]["state"], "requested");
    assert_eq!(read["request"]["requestor"], "NodePool:min-ready");
    assert_eq!(read["request"]["reuse"], false);
    assert_eq!(read["request"]["nodes"], serde_json::json!([]));
    assert_eq!(read["build"]["state"], "ready");
    assert_eq!(read["build"]["builder"], "rust-builder");
    assert_eq!(
        read["build"]["formats"],
        serde_json::json!(["qcow2", "raw"])
    );
    assert_eq!(read["upload"]["state"], "ready");
    assert_eq!(read["upload"]["external_id"], "image-2");
}
