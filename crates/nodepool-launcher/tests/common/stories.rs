//! Scenario bodies run on every store backend: `scenarios.rs` runs them on SQLite,
//! `zk_scenarios.rs` on a real ZooKeeper. Each takes a harness already holding its config.

use nodepool_driver::metadata_keys;
use nodepool_model::{NodeState, RequestState};
use nodepool_testkit::RequestOptions;

use super::{Harness, WAIT, eventually, fake_config};

pub fn single_label_config() -> String {
    fake_config(&[("small", 0)], Some(10), "")
}

/// One label: fulfilled with a node carrying the fake cloud's fields, used, returned, and
/// then deleted with its server.
pub async fn single_label_request_is_fulfilled_used_and_deleted(mut h: Harness) {
    h.start_launcher().await;
    let (id, request) = h.submit_and_wait(&["small"]).await;
    assert_eq!(request.state, RequestState::Fulfilled);
    assert_eq!(request.nodes.len(), 1);
    let node = h
        .store
        .nodes()
        .get(request.nodes[0])
        .await
        .expect("get")
        .expect("node")
        .value;
    assert_eq!(node.state, NodeState::Ready);
    assert_eq!(node.allocated_to.as_ref(), Some(&id));
    assert_eq!(node.interface_ip.as_deref(), Some("fake"));
    assert_eq!(node.host_keys, vec!["ssh-rsa FAKEKEY".to_string()]);
    assert_eq!(node.provider.as_deref(), Some("fake-provider"));
    assert_eq!(node.requestor.as_deref(), Some("zuul-system-id"));
    assert!(
        node.launcher
            .as_deref()
            .is_some_and(|l| l.contains("PoolWorker.fake-provider-main-"))
    );
    assert_eq!(
        node.resources.as_ref().map(|r| r["cores"].clone()),
        Some(serde_json::json!(4))
    );
    let cloud = h.cloud("fake-provider");
    let servers = cloud.servers();
    assert_eq!(servers.len(), 1);
    assert_eq!(
        servers[0].metadata[metadata_keys::NODE_ID],
        request.nodes[0].to_string()
    );
    assert_eq!(servers[0].name, format!("np{}", request.nodes[0]));

    let mut set = h.zuul.accept(&id, &request).await.expect("accept");
    h.zuul
        .use_nodes(&mut set, "org/project")
        .await
        .expect("use");
    h.zuul.return_nodes(set).await.expect("return");
    h.wait_no_nodes().await;
    eventually("the server is deleted", || async {
        cloud.servers().is_empty()
    })
    .await;
    h.shutdown().await;
}

pub fn multi_label_config() -> String {
    fake_config(&[("a", 0), ("b", 0)], Some(10), "")
}

/// Several labels, one repeated: the nodes are listed in request order.
pub async fn multi_label_request_lists_nodes_in_request_order(mut h: Harness) {
    h.start_launcher().await;
    let (id, request) = h.submit_and_wait(&["b", "a", "b"]).await;
    assert_eq!(request.state, RequestState::Fulfilled);
    let mut labels = Vec::new();
    for node_id in &request.nodes {
        let node = h
            .store
            .nodes()
            .get(*node_id)
            .await
            .expect("get")
            .expect("node")
            .value;
        labels.push(node.node_type[0].clone());
    }
    assert_eq!(labels, ["b", "a", "b"]);
    let mut set = h.zuul.accept(&id, &request).await.expect("accept");
    h.zuul
        .use_nodes(&mut set, "org/project")
        .await
        .expect("use");
    h.zuul.return_nodes(set).await.expect("return");
    h.wait_no_nodes().await;
    let cloud = h.cloud("fake-provider");
    eventually("the servers are deleted", || async {
        cloud.servers().is_empty()
    })
    .await;
    h.shutdown().await;
}

pub fn min_ready_config() -> String {
    fake_config(&[("small", 2)], Some(10), "")
}

/// min-ready keeps two spares; a job reuses one and exactly one replacement is launched.
pub async fn min_ready_is_kept_and_refilled_after_use(mut h: Harness) {
    h.start_launcher().await;
    let ready = h.wait_ready("small", 2).await;
    let creates = h.cloud("fake-provider").creates();
    let ids = h
        .zuul
        .run_job(&["small"], RequestOptions::default(), WAIT)
        .await
        .expect("job");
    assert!(ready.contains(&ids[0]), "a ready node was reused");
    h.wait_ready("small", 2).await;
    assert_eq!(
        h.cloud("fake-provider").creates(),
        creates + 1,
        "one replacement launched"
    );
    h.shutdown().await;
}

pub fn quota_config() -> String {
    fake_config(&[("small", 0)], Some(1), "")
}

/// max-servers 1: the second request waits (pending) until the first node is returned.
pub async fn quota_pauses_the_pool_then_resumes_when_a_node_is_freed(mut h: Harness) {
    h.start_launcher().await;
    let set = h.running_job(&["small"], RequestOptions::default()).await;
    let second = h
        .zuul
        .submit(&["small"], RequestOptions::default())
        .await
        .expect("submit");
    h.wait_pending(&second).await;
    assert_eq!(h.cloud("fake-provider").servers().len(), 1);
    h.zuul.return_nodes(set).await.expect("return");
    let second_req = h.zuul.wait(&second, WAIT).await.expect("wait");
    assert_eq!(second_req.state, RequestState::Fulfilled);
    let mut set = h.zuul.accept(&second, &second_req).await.expect("accept");
    h.zuul
        .use_nodes(&mut set, "org/project")
        .await
        .expect("use");
    h.zuul.return_nodes(set).await.expect("return");
    h.wait_no_nodes().await;
    h.shutdown().await;
}
