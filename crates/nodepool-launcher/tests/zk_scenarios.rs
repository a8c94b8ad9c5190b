//! The main launcher scenarios on a real ZooKeeper (one server per test binary, one chroot
//! per test), and two launchers serving the same provider under a burst of Zuul jobs.

mod common;

use common::stories;

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use common::{Harness, eventually, fake_config};
use nodepool_model::{NodeId, RequestId, RequestState};
use nodepool_testkit::{RequestOptions, ServerOptions, ZooKeeperServer, ZuulClient};

/// One ZooKeeper for the whole binary; the wrapper process kills it when the binary exits.
fn server() -> Arc<ZooKeeperServer> {
    static SERVER: OnceLock<Arc<ZooKeeperServer>> = OnceLock::new();
    SERVER
        .get_or_init(|| {
            Arc::new(
                ZooKeeperServer::start(ServerOptions::default())
                    .unwrap_or_else(|e| panic!("a ZooKeeper server starts: {e}")),
            )
        })
        .clone()
}

async fn harness(config: &str) -> Harness {
    // Starting the JVM blocks; keep it off the runtime's workers.
    let server = tokio::task::spawn_blocking(server)
        .await
        .expect("the server start task");
    Harness::zookeeper(server, config).await
}

/// A fake cloud large enough that only `max-servers` limits the pool.
const BIG_CLOUD: &str =
    "    fake-quota:\n      instances: 1000\n      cores: 100000\n      ram: 100000000\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zk_single_label_request_is_fulfilled_used_and_deleted() {
    let h = harness(&stories::single_label_config()).await;
    stories::single_label_request_is_fulfilled_used_and_deleted(h).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zk_multi_label_request_lists_nodes_in_request_order() {
    let h = harness(&stories::multi_label_config()).await;
    stories::multi_label_request_lists_nodes_in_request_order(h).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zk_min_ready_is_kept_and_refilled_after_use() {
    let h = harness(&stories::min_ready_config()).await;
    stories::min_ready_is_kept_and_refilled_after_use(h).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zk_quota_pauses_the_pool_then_resumes_when_a_node_is_freed() {
    let h = harness(&stories::quota_config()).await;
    stories::quota_pauses_the_pool_then_resumes_when_a_node_is_freed(h).await;
}

/// How many jobs the burst runs, and how many are outstanding at once.
const JOBS: usize = 300;
const CONCURRENT: usize = 30;

/// One job as Zuul runs it; returns the request and the nodes it was granted.
async fn job(zuul: &ZuulClient, labels: &[&str]) -> (RequestId, Vec<NodeId>) {
    let id = zuul
        .submit(labels, RequestOptions::default())
        .await
        .expect("submit");
    let request = zuul
        .wait(&id, Duration::from_secs(120))
        .await
        .unwrap_or_else(|e| panic!("request {id}: {e}"));
    assert_eq!(
        request.state,
        RequestState::Fulfilled,
        "request {id} fulfilled: {request:?}"
    );
    let mut set = zuul
        .accept(&id, &request)
        .await
        .unwrap_or_else(|e| panic!("accepting {id} with nodes {:?}: {e}", request.nodes));
    assert_eq!(set.ids(), request.nodes);
    zuul.use_nodes(&mut set, "org/project").await.expect("use");
    zuul.return_nodes(set).await.expect("return");
    (id, request.nodes)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn zk_two_launchers_on_one_provider_never_hand_a_node_to_two_requests() {
    let mut h = harness(&fake_config(&[("a", 0), ("b", 0)], Some(200), BIG_CLOUD)).await;
    h.start_launcher().await;
    h.start_launcher().await;
    let mut tasks = tokio::task::JoinSet::new();
    for worker in 0..CONCURRENT {
        let zuul = h.zuul.clone();
        tasks.spawn(async move {
            let mut granted = Vec::new();
            for n in (worker..JOBS).step_by(CONCURRENT) {
                let labels: &[&str] = match n % 3 {
                    0 => &["a"],
                    1 => &["b"],
                    _ => &["a", "b"],
                };
                granted.push(job(&zuul, labels).await);
            }
            granted
        });
    }
    let mut owner: HashMap<NodeId, RequestId> = HashMap::new();
    let mut fulfilled = 0;
    while let Some(result) = tasks.join_next().await {
        for (request, nodes) in result.expect("a job task") {
            fulfilled += 1;
            for node in nodes {
                if let Some(first) = owner.insert(node, request.clone()) {
                    panic!("node {node} was handed to {first} and to {request}");
                }
            }
        }
    }
    assert_eq!(fulfilled, JOBS);
    assert_eq!(owner.len(), JOBS / 3 * 4);
    h.wait_no_nodes().await;
    let cloud = h.cloud("fake-provider");
    eventually("every server is deleted", || async {
        cloud.servers().is_empty()
    })
    .await;
    h.shutdown().await;
}
