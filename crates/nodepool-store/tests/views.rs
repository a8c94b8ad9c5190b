//! Typed views over the embedded store: Nodepool's paths and JSON, read and written exactly
//! as Python Nodepool does (the golden documents were produced by Nodepool 11's classes).

use std::path::PathBuf;
use std::sync::Arc;

use nodepool_model::{
    BuildId, BuildState, Component, ComponentKind, ComponentRole, ImageBuild, ImageUpload, Node,
    NodeId, NodeRequest, NodeState, PoolDetails, RequestId, RequestState, UploadState,
};
use nodepool_store::{Backend, CreateMode, LockWait, SqliteBackend, SqliteOptions, Store, paths};

fn golden(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../nodepool-model/tests/golden")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("golden {}: {e}", path.display()))
}

async fn store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().expect("tempdir");
    let backend = SqliteBackend::open(SqliteOptions::new(dir.path().join("np.db")))
        .await
        .expect("open");
    (dir, Store::new(Arc::new(backend)))
}

/// Writes a document where Python Nodepool would have written it.
async fn put(store: &Store, path: &str, data: &[u8]) {
    store
        .backend()
        .create(path, data, CreateMode::Persistent, true)
        .await
        .expect("seed");
}

async fn raw(store: &Store, path: &str) -> Vec<u8> {
    store
        .backend()
        .get(path)
        .await
        .expect("get")
        .expect("exists")
        .0
}

#[tokio::test]
async fn reads_and_rewrites_a_tree_written_by_python_nodepool() {
    let (_dir, store) = store().await;
    for (id, file) in [
        ("0000000001", "node_openstack.json"),
        ("0000000002", "node_kubernetes.json"),
        ("0000000003", "node_aws.json"),
        ("0000000004", "node_static.json"),
    ] {
        put(&store, &format!("/nodepool/nodes/{id}"), &golden(file)).await;
    }
    put(
        &store,
        "/nodepool/requests/200-0000000007",
        &golden("request_fulfilled.json"),
    )
    .await;
    put(
        &store,
        "/nodepool/requests/900-0000000008",
        &golden("request_min_ready.json"),
    )
    .await;
    put(&store, "/nodepool/requests/garbage", b"{}").await;
    let build = "6e1f0b1c7d7b4e9c8a1e2b3c4d5e6f70";
    put(
        &store,
        &format!("/nodepool/images/debian/builds/{build}"),
        &golden("build_ready.json"),
    )
    .await;
    put(
        &store,
        &format!("/nodepool/images/debian/builds/{build}/providers/p1/images/0000000001"),
        &golden("upload_ready.json"),
    )
    .await;
    put(&store, "/nodepool/images/debian/pause", b"").await;

    let nodes = store.nodes();
    let mut ids = nodes.ids().await.expect("ids");
    ids.sort();
    assert_eq!(ids.len(), 4);
    for id in ids {
        let node = nodes.get(id).await.expect("get").expect("a node");
        // Writing back what we read gives the bytes Nodepool would write.
        let before = raw(&store, &format!("/nodepool/nodes/{id}")).await;
        nodes.store(id, &node.value).await.expect("store");
        assert_eq!(
            raw(&store, &format!("/nodepool/nodes/{id}")).await,
            before,
            "node {id} rewritten identically"
        );
    }
    let openstack = nodes
        .get(NodeId::parse("0000000001").expect("id"))
        .await
        .expect("get")
        .expect("node")
        .value;
    assert!(!openstack.node_type.is_empty());

    let requests = store.requests();
    let mut request_ids = requests.ids().await.expect("ids");
    request_ids.sort();
    assert_eq!(
        request_ids
            .iter()
            .map(|r| r.to_string())
            .collect::<Vec<_>>(),
        vec!["200-0000000007", "900-0000000008"]
    );
    let fulfilled = requests
        .get(&request_ids[0])
        .await
        .expect("get")
        .expect("request")
        .value;
    assert_eq!(fulfilled.state, RequestState::Fulfilled);

    let images = store.images();
    assert_eq!(
        images.names().await.expect("names"),
        vec!["debian".to_string()]
    );
    assert!(images.is_paused("debian").await.expect("paused"));
    let build_id = BuildId::parse(build).expect("build id");
    assert_eq!(
        images.build_ids("debian").await.expect("builds"),
        vec![build_id.clone()]
    );
    let record = images
        .build("debian", &build_id)
        .await
        .expect("get")
        .expect("build")
        .value;
    assert_eq!(record.state, BuildState::Ready);
    assert_eq!(
        images
            .build_providers("debian", &build_id)
            .await
            .expect("providers"),
        vec!["p1".to_string()]
    );
    let uploads = images
        .upload_ids("debian", &build_id, "p1")
        .await
        .expect("uploads");
    assert_eq!(uploads.len(), 1);
    let upload = images
        .upload("debian", &build_id, "p1", uploads[0])
        .await
        .expect("get")
        .expect("upload")
        .value;
    assert_eq!(upload.state, UploadState::Ready);
}

#[tokio::test]
async fn node_lifecycle_and_locks() {
    let (_dir, store) = store().await;
    let nodes = store.nodes();
    let mut node = Node::new(NodeState::Init, 1_732_550_000.5);
    node.node_type = vec!["debian".into()];
    let first = nodes.create(&mut node).await.expect("create");
    assert_eq!(
        first.to_string(),
        "0000000000",
        "the first node id, as ZooKeeper gives it"
    );
    assert_eq!(node.created_time, Some(1_732_550_000.5));
    let lock = nodes
        .lock(first, LockWait::NonBlocking)
        .await
        .expect("lock")
        .expect("free");
    assert_eq!(
        nodes
            .lock_contenders(first)
            .await
            .expect("contenders")
            .len(),
        1
    );
    assert!(
        nodes
            .lock(first, LockWait::NonBlocking)
            .await
            .expect("lock")
            .is_none(),
        "the lock excludes"
    );
    node.set_state(NodeState::Building, 1_732_550_001.0);
    nodes.store(first, &node).await.expect("store");
    lock.release().await.expect("release");
    nodes
        .delete(first, &mut node, 1_732_550_002.0)
        .await
        .expect("delete");
    assert!(nodes.get(first).await.expect("get").is_none());
    assert!(
        store
            .backend()
            .exists("/nodepool/nodes/0000000000")
            .await
            .expect("exists")
            .is_none()
    );
    // Our node lock does not bring a vanished node back: it is simply not acquired.
    assert!(
        nodes
            .lock(first, LockWait::NonBlocking)
            .await
            .expect("lock")
            .is_none(),
        "a vanished node is not locked"
    );
    assert!(
        store
            .backend()
            .exists("/nodepool/nodes/0000000000")
            .await
            .expect("exists")
            .is_none(),
        "and not re-created"
    );
    // Zuul's (kazoo's) lock re-creates an empty znode (ensure_path): not a node.
    let lock = store
        .lock(&paths::node_lock(first), "", LockWait::NonBlocking)
        .await
        .expect("lock")
        .expect("free");
    assert!(
        nodes.get(first).await.expect("get").is_none(),
        "empty data is no node"
    );
    lock.release().await.expect("release");
}

#[tokio::test]
async fn requests_sequence_locks_and_ephemeral_min_ready() {
    let dir = tempfile::tempdir().expect("tempdir");
    let options = SqliteOptions::new(dir.path().join("np.db"));
    let launcher: Arc<dyn Backend> =
        Arc::new(SqliteBackend::open(options.clone()).await.expect("open"));
    let zuul = Store::new(Arc::new(SqliteBackend::open(options).await.expect("open")));
    let launcher_store = Store::new(launcher.clone());
    let mut request = NodeRequest::new(1_732_550_000.0);
    request.node_types = vec!["debian".into()];
    let zuul_id = zuul
        .requests()
        .create(&request, "200", false)
        .await
        .expect("submit");
    assert_eq!(zuul_id.to_string(), "200-0000000000");
    let min_ready = NodeRequest::min_ready("debian", "e".into(), 1_732_550_000.0);
    let ephemeral = launcher_store
        .requests()
        .create(&min_ready, "900", true)
        .await
        .expect("min-ready");
    assert_eq!(ephemeral, RequestId::parse("900-0000000001").expect("id"));
    let lock = launcher_store
        .requests()
        .lock(&zuul_id, LockWait::NonBlocking)
        .await
        .expect("lock")
        .expect("free");
    assert!(
        zuul.requests()
            .lock(&zuul_id, LockWait::NonBlocking)
            .await
            .expect("try")
            .is_none()
    );
    zuul.requests()
        .delete(&zuul_id)
        .await
        .expect("cancel while locked");
    assert!(
        lock.is_held().await.expect("held"),
        "the lock survives the request's deletion"
    );
    lock.release().await.expect("release");
    assert_eq!(
        zuul.requests().lock_dirs().await.expect("dirs"),
        vec![zuul_id.to_string()]
    );
    launcher.close().await.expect("close");
    assert!(
        zuul.requests()
            .get(&ephemeral)
            .await
            .expect("get")
            .is_none(),
        "min-ready requests vanish with their launcher"
    );
}

#[tokio::test]
async fn images_builds_uploads_and_flags() {
    let (_dir, store) = store().await;
    let images = store.images();
    let build_id = BuildId::new_random();
    let mut build = ImageBuild::new(BuildState::Building, 1.0);
    images
        .create_build("debian", &build_id, &build)
        .await
        .expect("create");
    let upload_lock = images
        .lock_uploads("debian", &build_id, "p1", LockWait::NonBlocking)
        .await
        .expect("lock")
        .expect("free");
    let upload_id = images
        .create_upload(
            "debian",
            &build_id,
            "p1",
            &ImageUpload::new(UploadState::Uploading, 2.0),
        )
        .await
        .expect("upload");
    assert_eq!(
        upload_id.to_string(),
        "0000000001",
        "the lock dir came first, as in Nodepool"
    );
    upload_lock.release().await.expect("release");
    assert_eq!(
        images
            .upload_ids("debian", &build_id, "p1")
            .await
            .expect("ids"),
        vec![upload_id]
    );
    build.set_state(BuildState::Ready, 3.0);
    images
        .store_build("debian", &build_id, &build)
        .await
        .expect("store");
    assert!(!images.is_paused("debian").await.expect("paused"));
    images.pause("debian").await.expect("pause");
    images.pause("debian").await.expect("pause is idempotent");
    assert!(images.is_paused("debian").await.expect("paused"));
    images.unpause("debian").await.expect("unpause");
    images
        .unpause("debian")
        .await
        .expect("unpause is idempotent");
    assert!(
        images
            .build_request("debian")
            .await
            .expect("flag")
            .is_none()
    );
    images.request_build("debian").await.expect("request");
    assert!(
        images
            .build_request("debian")
            .await
            .expect("flag")
            .is_some()
    );
    images.clear_build_request("debian").await.expect("clear");
    images.erase_provider("p1").await.expect("erase");
    assert!(
        images
            .build_providers("debian", &build_id)
            .await
            .expect("providers")
            .is_empty()
    );
    images
        .delete_build("debian", &build_id)
        .await
        .expect("delete");
    assert!(images.build_ids("debian").await.expect("ids").is_empty());
}

#[tokio::test]
async fn components_register_update_and_vanish() {
    let dir = tempfile::tempdir().expect("tempdir");
    let options = SqliteOptions::new(dir.path().join("np.db"));
    let launcher: Arc<dyn Backend> =
        Arc::new(SqliteBackend::open(options.clone()).await.expect("open"));
    let observer = Store::new(Arc::new(SqliteBackend::open(options).await.expect("open")));
    let store = Store::new(launcher.clone());
    store.components().ensure_dirs().await.expect("dirs");
    let details = PoolDetails {
        id: Some("host-PoolWorker.p-main-abc".into()),
        supported_labels: vec!["debian".into()],
        ..PoolDetails::default()
    };
    let mut pool = Component::new("host", Some("11.0.0"), ComponentRole::Pool(details));
    let mut registration = store.components().register(&pool).await.expect("register");
    assert!(
        registration
            .path
            .starts_with("/nodepool/components/pool/host")
    );
    let listed = observer
        .components()
        .list(ComponentKind::Pool)
        .await
        .expect("list");
    assert_eq!(listed.len(), 1);
    assert_eq!(
        listed[0]
            .component
            .value
            .pool()
            .expect("pool")
            .supported_labels,
        vec!["debian".to_string()]
    );
    if let ComponentRole::Pool(details) = &mut pool.role {
        details.paused = true;
    }
    store
        .components()
        .update(&mut registration, &pool)
        .await
        .expect("update");
    let stale = nodepool_store::Registration {
        path: registration.path.clone(),
        version: 0,
    };
    assert!(
        store
            .components()
            .update(&mut stale.clone(), &pool)
            .await
            .is_err(),
        "updates are version-checked"
    );
    let listed = observer
        .components()
        .list(ComponentKind::Pool)
        .await
        .expect("list");
    assert!(listed[0].component.value.pool().expect("pool").paused);
    launcher.close().await.expect("close");
    assert!(
        observer
            .components()
            .list(ComponentKind::Pool)
            .await
            .expect("list")
            .is_empty()
    );
}
