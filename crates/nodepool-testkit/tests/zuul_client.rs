//! The Zuul client against the embedded SQLite store, with the test playing the launcher by
//! hand: it creates READY nodes allocated to a request and marks the request fulfilled.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use nodepool_model::{Node, NodeId, NodeRequest, NodeState, RequestId, RequestState};
use nodepool_store::{LockWait, SqliteBackend, SqliteOptions, Store, TreeCache, paths};
use nodepool_testkit::wait::{
    ChangeWaitError, Timeout, wait_for, wait_for_cache_change, wait_for_store_change,
};
use nodepool_testkit::zuul::{RequestOptions, ZuulClient, ZuulError};
use serde_json::{Value, json};
use tempfile::TempDir;

const SYSTEM_ID: &str = "3f1c0a9e2b7d4c6f8a5e9d0b1c2a3f4e";
const WAIT: Duration = Duration::from_secs(10);

async fn open_store() -> (TempDir, Store) {
    let dir = tempfile::tempdir().expect("tempdir");
    let backend = SqliteBackend::open(SqliteOptions::new(dir.path().join("store.db")))
        .await
        .expect("open the store");
    (dir, Store::new(Arc::new(backend)))
}

fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs_f64()
}

/// A READY node of `label` allocated to `allocated_to`, as a launcher leaves it.
async fn ready_node(store: &Store, label: &str, allocated_to: &RequestId) -> NodeId {
    let mut node = Node::new(NodeState::Ready, now());
    node.node_type = vec![label.to_string()];
    node.provider = Some("fake-provider".to_string());
    node.pool = Some("main".to_string());
    node.interface_ip = Some("198.51.100.7".to_string());
    node.allocated_to = Some(allocated_to.clone());
    store.nodes().create(&mut node).await.expect("create node")
}

/// Marks the request fulfilled with `nodes`, as the launcher's pool worker does.
async fn fulfil(store: &Store, id: &RequestId, nodes: Vec<NodeId>) {
    let mut request = store
        .requests()
        .get(id)
        .await
        .expect("read request")
        .expect("request exists")
        .value;
    request.set_state(RequestState::Fulfilled, now());
    request.nodes = nodes;
    store.requests().store(id, &request).await.expect("store");
}

/// Plays the launcher for one request: one READY node per label, then fulfilled.
async fn launch_all(store: &Store, id: &RequestId) -> Vec<NodeId> {
    let request = store
        .requests()
        .get(id)
        .await
        .expect("read request")
        .expect("request exists")
        .value;
    let mut nodes = Vec::new();
    for label in &request.node_types {
        nodes.push(ready_node(store, label, id).await);
    }
    fulfil(store, id, nodes.clone()).await;
    nodes
}

async fn raw(store: &Store, path: &str) -> Option<Value> {
    let (data, _) = store.backend().get(path).await.expect("get")?;
    Some(serde_json::from_slice(&data).expect("JSON"))
}

async fn node_json(store: &Store, id: NodeId) -> Value {
    raw(store, &paths::node(id)).await.expect("node exists")
}

async fn assert_unlocked(store: &Store, id: NodeId) {
    let contenders = store.nodes().lock_contenders(id).await.expect("contenders");
    assert!(
        contenders.is_empty(),
        "node {id} still locked: {contenders:?}"
    );
}

async fn fulfilled_request(client: &ZuulClient, labels: &[&str]) -> (RequestId, NodeRequest) {
    let id = client
        .submit(labels, RequestOptions::default())
        .await
        .expect("submit");
    launch_all(client.store(), &id).await;
    let request = client.wait(&id, WAIT).await.expect("wait");
    (id, request)
}

#[tokio::test]
async fn submit_writes_zuuls_request_document() {
    let (_dir, store) = open_store().await;
    let client = ZuulClient::new(store.clone(), SYSTEM_ID);
    let options = RequestOptions {
        priority: 5,
        relative_priority: 3,
        provider: Some("fake-provider".to_string()),
        tenant_name: Some("tenant-one".to_string()),
        ..RequestOptions::default()
    };
    let id = client
        .submit(&["ubuntu-noble", "ubuntu-noble"], options)
        .await
        .expect("submit");
    assert_eq!(id.precedence(), "005");

    let document = raw(&store, &paths::request(&id)).await.expect("request");
    let keys: Vec<&str> = document
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        [
            "requestor_data",
            "node_types",
            "requestor",
            "created_time",
            "provider",
            "state",
            "state_time",
            "relative_priority",
            "event_id",
            "tenant_name"
        ]
    );
    let data = &document["requestor_data"];
    let data_keys: Vec<&str> = data
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        data_keys,
        [
            "build_set_uuid",
            "tenant_name",
            "pipeline_name",
            "job_uuid",
            "job_name",
            "span_info"
        ]
    );
    assert_eq!(data["tenant_name"], "tenant-one");
    assert_eq!(
        document["node_types"],
        json!(["ubuntu-noble", "ubuntu-noble"])
    );
    assert_eq!(document["requestor"], SYSTEM_ID);
    assert_eq!(document["state"], "requested");
    assert_eq!(document["relative_priority"], 3);
    assert_eq!(document["provider"], "fake-provider");
    assert_eq!(document["event_id"].as_str().map(str::len), Some(32));

    // Nodepool's reader fills in what Zuul leaves out.
    let request = store
        .requests()
        .get(&id)
        .await
        .expect("read")
        .expect("exists")
        .value;
    assert!(request.reuse);
    assert!(request.declined_by.is_empty());
    assert!(request.nodes.is_empty());
    assert_eq!(request.requestor.as_deref(), Some(SYSTEM_ID));

    let default = client
        .submit(&["ubuntu-noble"], RequestOptions::default())
        .await
        .expect("submit");
    assert_eq!(default.precedence(), "100");
}

#[tokio::test]
async fn accept_use_return_moves_nodes_through_in_use_to_used() {
    let (_dir, store) = open_store().await;
    let client = ZuulClient::new(store.clone(), SYSTEM_ID);
    let (id, request) = fulfilled_request(&client, &["small", "large"]).await;
    assert_eq!(request.state, RequestState::Fulfilled);
    assert_eq!(request.nodes.len(), 2);

    let mut node_set = client.accept(&id, &request).await.expect("accept");
    assert_eq!(node_set.ids(), request.nodes);
    assert_eq!(node_set.request_id(), &id);
    let labels: Vec<&str> = node_set.nodes().iter().map(|h| h.label.as_str()).collect();
    assert_eq!(labels, ["small", "large"]);
    assert!(
        store.requests().get(&id).await.expect("read").is_none(),
        "accept deletes the request"
    );
    for held in node_set.nodes() {
        assert!(held.lock().is_held().await.expect("lock state"));
        let contenders = store.nodes().lock_contenders(held.id).await.expect("list");
        assert_eq!(contenders.len(), 1);
        // Zuul locks with an empty identifier.
        let (data, _) = store
            .backend()
            .get(held.lock().node())
            .await
            .expect("get")
            .expect("contender");
        assert!(data.is_empty());
    }

    client
        .use_nodes(&mut node_set, "review.example.org/org/project")
        .await
        .expect("use");
    for held in node_set.nodes() {
        assert_eq!(held.node.state, NodeState::InUse);
        let document = node_json(&store, held.id).await;
        assert_eq!(document["state"], "in-use");
        assert_eq!(
            document["user_data"],
            json!({"zuul_system": SYSTEM_ID, "project_name": "review.example.org/org/project"})
        );
        // Zuul's Node.toDict: its own keys first, then what it read.
        assert_eq!(document["id"], held.id.to_string());
        let keys: Vec<&str> = document
            .as_object()
            .expect("object")
            .keys()
            .take(8)
            .map(String::as_str)
            .collect();
        assert_eq!(
            keys,
            [
                "id",
                "state",
                "hold_job",
                "comment",
                "user_data",
                "tenant_name",
                "requestor",
                "state_time"
            ]
        );
        assert_eq!(document["allocated_to"], id.to_string());
        assert_eq!(document["interface_ip"], "198.51.100.7");
        // Nodepool still reads what Zuul wrote.
        let node = store
            .nodes()
            .get(held.id)
            .await
            .expect("read")
            .expect("exists");
        assert_eq!(node.value.state, NodeState::InUse);
    }

    let ids = node_set.ids();
    client.return_nodes(node_set).await.expect("return");
    for id in ids {
        assert_eq!(node_json(&store, id).await["state"], "used");
        assert_unlocked(&store, id).await;
    }
}

#[tokio::test]
async fn accept_fails_when_a_node_is_allocated_elsewhere() {
    let (_dir, store) = open_store().await;
    let client = ZuulClient::new(store.clone(), SYSTEM_ID);
    let id = client
        .submit(&["small", "small"], RequestOptions::default())
        .await
        .expect("submit");
    let other = RequestId::parse("200-0000009999").expect("id");
    let mine = ready_node(&store, "small", &id).await;
    let theirs = ready_node(&store, "small", &other).await;
    fulfil(&store, &id, vec![mine, theirs]).await;
    let request = client.wait(&id, WAIT).await.expect("wait");

    let error = client.accept(&id, &request).await.expect_err("not ours");
    assert_eq!(
        error,
        ZuulError::NotAllocated {
            node: theirs,
            request: id.clone(),
            allocated_to: Some(other),
        }
    );
    // The first node was locked, then released; the request is deleted regardless.
    assert_unlocked(&store, mine).await;
    assert_unlocked(&store, theirs).await;
    assert!(store.requests().get(&id).await.expect("read").is_none());
    assert_eq!(node_json(&store, mine).await["state"], "ready");
}

#[tokio::test]
async fn accept_gives_up_on_a_node_locked_by_someone_else() {
    let (_dir, store) = open_store().await;
    let client = ZuulClient::new(store.clone(), SYSTEM_ID)
        .with_node_lock_timeout(Duration::from_millis(200));
    let (id, request) = fulfilled_request(&client, &["small"]).await;
    let node = request.nodes[0];
    let launcher_lock = store
        .nodes()
        .lock(node, LockWait::NonBlocking)
        .await
        .expect("lock")
        .expect("free");

    let error = client.accept(&id, &request).await.expect_err("locked");
    assert_eq!(error, ZuulError::NodeLockTimeout(node));
    assert!(store.requests().get(&id).await.expect("read").is_none());
    launcher_lock.release().await.expect("release");
    assert_unlocked(&store, node).await;
}

#[tokio::test]
async fn autohold_and_release_hold() {
    let (_dir, store) = open_store().await;
    let client = ZuulClient::new(store.clone(), SYSTEM_ID);
    let (id, request) = fulfilled_request(&client, &["small"]).await;
    let mut node_set = client.accept(&id, &request).await.expect("accept");
    client
        .use_nodes(&mut node_set, "review.example.org/org/project")
        .await
        .expect("use");
    let node = node_set.ids()[0];
    let hold_job = "tenant-one review.example.org/org/project job refs/heads/.*";
    client
        .autohold(node_set, hold_job, "debug the failure", Some(3600))
        .await
        .expect("autohold");

    let document = node_json(&store, node).await;
    assert_eq!(document["state"], "hold");
    assert_eq!(document["hold_job"], hold_job);
    assert_eq!(document["comment"], "debug the failure");
    assert_eq!(document["hold_expiration"], 3600);
    assert_unlocked(&store, node).await;
    let held = store
        .nodes()
        .get(node)
        .await
        .expect("read")
        .expect("exists");
    assert_eq!(held.value.hold_expiration, Some(3600));
    assert_eq!(held.value.hold_job.as_deref(), Some(hold_job));

    // Someone else holds the lock: Zuul skips the node.
    let other_lock = store
        .nodes()
        .lock(node, LockWait::NonBlocking)
        .await
        .expect("lock")
        .expect("free");
    assert_eq!(
        client.release_hold(&[node]).await.expect("release"),
        Vec::<NodeId>::new()
    );
    assert_eq!(node_json(&store, node).await["state"], "hold");
    other_lock.release().await.expect("release");

    // A missing node is skipped without re-creating its znode.
    let missing = NodeId::new(999_999);
    assert_eq!(
        client
            .release_hold(&[missing, node])
            .await
            .expect("release"),
        vec![node]
    );
    assert!(
        store
            .backend()
            .get(&paths::node(missing))
            .await
            .expect("get")
            .is_none()
    );
    assert_eq!(node_json(&store, node).await["state"], "used");
    assert_unlocked(&store, node).await;
}

#[tokio::test]
async fn autohold_without_expiration_leaves_it_unset() {
    let (_dir, store) = open_store().await;
    let client = ZuulClient::new(store.clone(), SYSTEM_ID);
    let (id, request) = fulfilled_request(&client, &["small"]).await;
    let mut node_set = client.accept(&id, &request).await.expect("accept");
    client.use_nodes(&mut node_set, "p").await.expect("use");
    let node = node_set.ids()[0];
    client
        .autohold(node_set, "t p j r", "why", None)
        .await
        .expect("autohold");
    let document = node_json(&store, node).await;
    assert_eq!(document["state"], "hold");
    assert_eq!(document["hold_expiration"], Value::Null);
}

#[tokio::test]
async fn revise_priority_only_when_the_request_is_unlocked() {
    let (_dir, store) = open_store().await;
    let client = ZuulClient::new(store.clone(), SYSTEM_ID);
    let id = client
        .submit(&["small"], RequestOptions::default())
        .await
        .expect("submit");

    let launcher_lock = store
        .requests()
        .lock(&id, LockWait::NonBlocking)
        .await
        .expect("lock")
        .expect("free");
    assert!(!client.revise_priority(&id, 7).await.expect("revise"));
    let unchanged = raw(&store, &paths::request(&id)).await.expect("request");
    assert_eq!(unchanged["relative_priority"], 0);
    launcher_lock.release().await.expect("release");

    assert!(client.revise_priority(&id, 7).await.expect("revise"));
    let revised = raw(&store, &paths::request(&id)).await.expect("request");
    assert_eq!(revised["relative_priority"], 7);
    // Only relative_priority changed: Zuul's document keeps its shape.
    let mut expected = unchanged.clone();
    expected["relative_priority"] = json!(7);
    assert_eq!(revised, expected);
    assert!(revised.get("declined_by").is_none());
    let contenders = store
        .lock_contenders(&paths::request_lock(&id))
        .await
        .expect("contenders");
    assert!(contenders.is_empty());
}

#[tokio::test]
async fn wait_reports_failed_vanished_and_timeout() {
    let (_dir, store) = open_store().await;
    let client = ZuulClient::new(store.clone(), SYSTEM_ID);

    let failed = client
        .submit(&["small"], RequestOptions::default())
        .await
        .expect("submit");
    let launcher = {
        let store = store.clone();
        let failed = failed.clone();
        tokio::spawn(async move {
            let mut request = store
                .requests()
                .get(&failed)
                .await
                .expect("read")
                .expect("exists")
                .value;
            request
                .declined_by
                .push("launcher-PoolWorker.fake-main-0".to_string());
            request.set_state(RequestState::Failed, now());
            store
                .requests()
                .store(&failed, &request)
                .await
                .expect("store");
        })
    };
    let request = client.wait(&failed, WAIT).await.expect("wait");
    launcher.await.expect("launcher task");
    assert_eq!(request.state, RequestState::Failed);
    let error = client.accept(&failed, &request).await.expect_err("failed");
    assert!(matches!(error, ZuulError::NotFulfilled { .. }), "{error:?}");
    assert!(store.requests().get(&failed).await.expect("read").is_none());

    let cancelled = client
        .submit(&["small"], RequestOptions::default())
        .await
        .expect("submit");
    client.cancel(&cancelled).await.expect("cancel");
    assert_eq!(
        client.wait(&cancelled, WAIT).await,
        Err(ZuulError::Vanished(cancelled.clone()))
    );

    let pending = client
        .submit(&["small"], RequestOptions::default())
        .await
        .expect("submit");
    let after = Duration::from_millis(200);
    assert_eq!(
        client.wait(&pending, after).await,
        Err(ZuulError::Timeout {
            request: pending.clone(),
            after
        })
    );
}

/// A launcher stand-in that fulfils (or fails) the first request it sees, found through a
/// store watch.
fn spawn_fake_launcher(store: Store, fail: bool) -> tokio::task::JoinHandle<RequestId> {
    tokio::spawn(async move {
        let requests = store.requests();
        let id = wait_for_store_change(store.backend().as_ref(), paths::REQUESTS, WAIT, || async {
            requests.ids().await.expect("ids").into_iter().next()
        })
        .await
        .expect("a request arrives");
        if fail {
            let mut request = requests
                .get(&id)
                .await
                .expect("read")
                .expect("exists")
                .value;
            request.set_state(RequestState::Failed, now());
            requests.store(&id, &request).await.expect("store");
        } else {
            launch_all(&store, &id).await;
        }
        id
    })
}

#[tokio::test]
async fn run_job_runs_on_launched_nodes() {
    let (_dir, store) = open_store().await;
    let client = ZuulClient::new(store.clone(), SYSTEM_ID);
    let launcher = spawn_fake_launcher(store.clone(), false);
    let nodes = client
        .run_job(&["small"], RequestOptions::default(), WAIT)
        .await
        .expect("job runs");
    let id = launcher.await.expect("launcher");
    assert_eq!(nodes.len(), 1);
    let document = node_json(&store, nodes[0]).await;
    assert_eq!(document["state"], "used");
    assert_eq!(document["user_data"]["zuul_system"], SYSTEM_ID);
    assert_unlocked(&store, nodes[0]).await;
    assert!(store.requests().get(&id).await.expect("read").is_none());

    assert_eq!(
        client
            .run_job(&[], RequestOptions::default(), WAIT)
            .await
            .expect("empty node set"),
        Vec::<NodeId>::new()
    );
    assert!(store.requests().ids().await.expect("ids").is_empty());
}

#[tokio::test]
async fn run_job_reports_a_failed_request_and_deletes_it() {
    let (_dir, store) = open_store().await;
    let client = ZuulClient::new(store.clone(), SYSTEM_ID);
    let launcher = spawn_fake_launcher(store.clone(), true);
    let error = client
        .run_job(&["small"], RequestOptions::default(), WAIT)
        .await
        .expect_err("fails");
    let id = launcher.await.expect("launcher");
    assert_eq!(error, ZuulError::Failed(id.clone()));
    assert!(store.requests().get(&id).await.expect("read").is_none());
}

#[tokio::test]
async fn wait_helpers_time_out_and_succeed() {
    let calls = AtomicU32::new(0);
    let value = wait_for(WAIT, Duration::from_millis(5), || async {
        (calls.fetch_add(1, Ordering::SeqCst) >= 2).then_some("done")
    })
    .await
    .expect("third check succeeds");
    assert_eq!(value, "done");
    assert_eq!(calls.load(Ordering::SeqCst), 3);

    let after = Duration::from_millis(50);
    assert_eq!(
        wait_for(after, Duration::from_millis(10), || async { None::<()> }).await,
        Err(Timeout(after))
    );

    let (_dir, store) = open_store().await;
    assert_eq!(
        wait_for_store_change(store.backend().as_ref(), paths::NODES, after, || async {
            None::<()>
        })
        .await,
        Err(ChangeWaitError::Timeout(Timeout(after)))
    );
}

#[tokio::test]
async fn client_futures_can_run_in_spawned_tasks() {
    let (_dir, store) = open_store().await;
    let client = ZuulClient::new(store.clone(), SYSTEM_ID);
    let launcher = spawn_fake_launcher(store.clone(), false);
    let job = tokio::spawn(async move {
        client
            .run_job(&["small"], RequestOptions::default(), WAIT)
            .await
    });
    let nodes = job.await.expect("job task").expect("job runs");
    launcher.await.expect("launcher");
    assert_eq!(node_json(&store, nodes[0]).await["state"], "used");
}

#[tokio::test]
async fn wait_for_cache_change_sees_a_new_node() {
    let (_dir, store) = open_store().await;
    let cache = TreeCache::start(store.backend().clone(), paths::NODES)
        .await
        .expect("cache");
    let request = RequestId::parse("100-0000000001").expect("id");
    let writer = {
        let store = store.clone();
        let request = request.clone();
        tokio::spawn(async move { ready_node(&store, "small", &request).await })
    };
    let seen = wait_for_cache_change(&cache, WAIT, || async {
        cache.children(paths::NODES).into_iter().next()
    })
    .await
    .expect("the cache sees the node");
    let created = writer.await.expect("writer");
    assert_eq!(seen, created.to_string());

    let after = Duration::from_millis(50);
    assert_eq!(
        wait_for_cache_change(&cache, after, || async { None::<()> }).await,
        Err(ChangeWaitError::Timeout(Timeout(after)))
    );
}
