//! Launcher scenarios on the embedded SQLite store with the fake driver, driven by a
//! Zuul-protocol client exactly as Zuul drives Nodepool.

mod common;

use common::stories;

use std::time::Duration;

use common::{Harness, WAIT, eventually, fake_config};
use nodepool_driver::metadata_keys;
use nodepool_model::{NodeState, RequestState};
use nodepool_testkit::RequestOptions;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_label_request_is_fulfilled_used_and_deleted() {
    let h = Harness::sqlite(&stories::single_label_config()).await;
    stories::single_label_request_is_fulfilled_used_and_deleted(h).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multi_label_request_lists_nodes_in_request_order() {
    let h = Harness::sqlite(&stories::multi_label_config()).await;
    stories::multi_label_request_lists_nodes_in_request_order(h).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn min_ready_is_kept_and_refilled_after_use() {
    let h = Harness::sqlite(&stories::min_ready_config()).await;
    stories::min_ready_is_kept_and_refilled_after_use(h).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quota_pauses_the_pool_then_resumes_when_a_node_is_freed() {
    let h = Harness::sqlite(&stories::quota_config()).await;
    stories::quota_pauses_the_pool_then_resumes_when_a_node_is_freed(h).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_label_fails_once_every_pool_declined() {
    let mut h = Harness::sqlite(&fake_config(&[("small", 0)], Some(10), "")).await;
    h.start_launcher().await;
    let (_, request) = h.submit_and_wait(&["nonexistent"]).await;
    assert_eq!(request.state, RequestState::Failed);
    assert_eq!(request.declined_by.len(), 1);
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leaked_instance_is_deleted_on_the_second_sighting() {
    let mut h = Harness::sqlite(&fake_config(&[("small", 0)], Some(10), "")).await;
    h.start_launcher().await;
    let cloud = h.cloud_after_start().await;
    let mut metadata = nodepool_driver::Metadata::new();
    metadata.insert(metadata_keys::NODE_ID.into(), "0000099999".into());
    metadata.insert(metadata_keys::POOL_NAME.into(), "main".into());
    metadata.insert(metadata_keys::PROVIDER_NAME.into(), "fake-provider".into());
    let leaked = cloud.insert_server("np0000099999", metadata);
    let mut foreign = nodepool_driver::Metadata::new();
    foreign.insert(metadata_keys::PROVIDER_NAME.into(), "someone-else".into());
    foreign.insert(metadata_keys::NODE_ID.into(), "0000099998".into());
    let kept = cloud.insert_server("not-ours", foreign);
    eventually("the leaked server is deleted", || async {
        cloud.server(&leaked).is_none()
    })
    .await;
    assert!(
        cloud.server(&kept).is_some(),
        "other providers' servers are left alone"
    );
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn held_node_expires() {
    let mut h = Harness::sqlite(&fake_config(&[("small", 0)], Some(10), "")).await;
    h.start_launcher().await;
    let (id, request) = h.submit_and_wait(&["small"]).await;
    let mut set = h.zuul.accept(&id, &request).await.expect("accept");
    h.zuul
        .use_nodes(&mut set, "org/project")
        .await
        .expect("use");
    h.zuul
        .autohold(set, "tenant org/project job .*", "debugging", Some(1))
        .await
        .expect("hold");
    let node = h
        .store
        .nodes()
        .get(request.nodes[0])
        .await
        .expect("get")
        .expect("node")
        .value;
    assert_eq!(node.state, NodeState::Hold);
    h.wait_no_nodes().await;
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn launch_failures_are_retried_and_quota_errors_abort_then_retry() {
    let faults = "    fake-faults:\n      launch-failures: 2\n      quota-errors: 1\n";
    let mut h = Harness::sqlite(&fake_config(&[("small", 0)], Some(10), faults)).await;
    h.start_launcher().await;
    let (_, request) = h.submit_and_wait(&["small"]).await;
    assert_eq!(request.state, RequestState::Fulfilled);
    let ids = h
        .zuul
        .run_job(&["small"], RequestOptions::default(), WAIT)
        .await
        .expect("job");
    assert_eq!(ids.len(), 1);
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exhausted_launch_retries_fail_the_request() {
    let faults = "    launch-retries: 2\n    fake-faults:\n      launch-failures: 2\n";
    let mut h = Harness::sqlite(&fake_config(&[("small", 0)], Some(10), faults)).await;
    h.start_launcher().await;
    let (id, request) = h.submit_and_wait(&["small"]).await;
    assert_eq!(request.state, RequestState::Failed);
    h.zuul.cancel(&id).await.expect("cancel");
    // The failed node (left BUILDING, unlocked) is cleaned up.
    h.wait_no_nodes().await;
    eventually("no servers left", || async {
        h.cloud("fake-provider").servers().is_empty()
    })
    .await;
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_reload_adds_a_label_without_restart() {
    let mut h = Harness::sqlite(&fake_config(&[("small", 0)], Some(10), "")).await;
    h.start_launcher().await;
    h.zuul
        .run_job(&["small"], RequestOptions::default(), WAIT)
        .await
        .expect("job");
    h.write_config(&fake_config(&[("small", 0), ("large", 1)], Some(10), ""));
    h.wait_ready("large", 1).await;
    let ids = h
        .zuul
        .run_job(&["large"], RequestOptions::default(), WAIT)
        .await
        .expect("job");
    assert_eq!(ids.len(), 1);
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_ready_age_replaces_old_ready_nodes() {
    let config = fake_config(&[("small", 1)], Some(10), "").replace(
        "    min-ready: 1\n",
        "    min-ready: 1\n    max-ready-age: 1\n",
    );
    let mut h = Harness::sqlite(&config).await;
    h.start_launcher().await;
    let first = h.wait_ready("small", 1).await;
    h.wait_nodes("the old ready node replaced", |nodes| {
        (!nodes.iter().any(|(id, _)| *id == first[0])
            && nodes.iter().any(|(_, n)| n.state == NodeState::Ready))
        .then_some(())
    })
    .await;
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn declines_across_two_launchers_until_failed() {
    // Two providers, each knowing one label; a request for both labels fits neither.
    let config = "labels:\n  - name: a\n  - name: b\nproviders:\n".to_string()
        + &provider_block("p-a", "a")
        + &provider_block("p-b", "b");
    let mut h = Harness::sqlite(&config).await;
    h.start_launcher().await;
    h.start_launcher().await;
    let (_, request) = h.submit_and_wait(&["a", "b"]).await;
    assert_eq!(request.state, RequestState::Failed);
    // Two launchers, two pools each: every registered pool declined.
    assert_eq!(request.declined_by.len(), 4, "{:?}", request.declined_by);
    h.shutdown().await;
}

fn provider_block(name: &str, label: &str) -> String {
    format!(
        "  - name: {name}\n    driver: fake\n    cloud: fake\n    cloud-images:\n      - name: img\n        image-id: fake-image-id\n    pools:\n      - name: main\n        labels:\n          - name: {label}\n            cloud-image: img\n            min-ram: 8192\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenant_resource_limits_defer_requests() {
    let config = fake_config(&[("small", 0)], Some(10), "")
        + "tenant-resource-limits:\n  - tenant-name: tenant-a\n    max-servers: 1\n";
    let mut h = Harness::sqlite(&config).await;
    h.start_launcher().await;
    let options = || RequestOptions {
        tenant_name: Some("tenant-a".into()),
        ..RequestOptions::default()
    };
    let first = h.zuul.submit(&["small"], options()).await.expect("submit");
    let first_req = h.zuul.wait(&first, WAIT).await.expect("wait");
    let mut set = h.zuul.accept(&first, &first_req).await.expect("accept");
    h.zuul
        .use_nodes(&mut set, "org/project")
        .await
        .expect("use");
    let second = h.zuul.submit(&["small"], options()).await.expect("submit");
    // Deferred, not accepted, while the tenant is at its limit.
    tokio::time::sleep(Duration::from_millis(800)).await;
    let state = h
        .store
        .requests()
        .get(&second)
        .await
        .expect("get")
        .expect("request")
        .value
        .state;
    assert_eq!(state, RequestState::Requested);
    h.zuul.return_nodes(set).await.expect("return");
    let second_req = h.zuul.wait(&second, WAIT).await.expect("wait");
    assert_eq!(second_req.state, RequestState::Fulfilled);
    h.shutdown().await;
}

trait CloudAfterStart {
    async fn cloud_after_start(&self) -> std::sync::Arc<nodepool_driver_fake::FakeCloud>;
}

impl CloudAfterStart for Harness {
    async fn cloud_after_start(&self) -> std::sync::Arc<nodepool_driver_fake::FakeCloud> {
        let fake = self.fake.clone();
        nodepool_testkit::wait::wait_for(WAIT, Duration::from_millis(20), || {
            let fake = fake.clone();
            async move { fake.cloud("fake-provider") }
        })
        .await
        .expect("the provider starts")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_are_served_in_priority_order() {
    let mut h = Harness::sqlite(&fake_config(&[("small", 0)], Some(1), "")).await;
    let low = h
        .zuul
        .submit(
            &["small"],
            RequestOptions {
                priority: 300,
                ..RequestOptions::default()
            },
        )
        .await
        .expect("submit");
    let relative_late = h
        .zuul
        .submit(
            &["small"],
            RequestOptions {
                priority: 100,
                relative_priority: 5,
                ..RequestOptions::default()
            },
        )
        .await
        .expect("submit");
    let high = h
        .zuul
        .submit(
            &["small"],
            RequestOptions {
                priority: 100,
                ..RequestOptions::default()
            },
        )
        .await
        .expect("submit");
    h.start_launcher().await;
    let mut order = Vec::new();
    for _ in 0..3 {
        let next = h
            .wait_requests_fulfilled(&[&low, &relative_late, &high], &order)
            .await;
        let request = h
            .store
            .requests()
            .get(&next)
            .await
            .expect("get")
            .expect("request")
            .value;
        let mut set = h.zuul.accept(&next, &request).await.expect("accept");
        h.zuul
            .use_nodes(&mut set, "org/project")
            .await
            .expect("use");
        h.zuul.return_nodes(set).await.expect("return");
        order.push(next);
    }
    assert_eq!(order, vec![high, relative_late, low]);
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_request_is_reset_and_served() {
    use nodepool_model::{Node, NodeRequest};
    let mut h = Harness::sqlite(&fake_config(&[("small", 0)], Some(10), "")).await;
    // What a launcher that died mid-request leaves: a PENDING request nobody has locked and
    // an INIT node allocated to it.
    let mut request = NodeRequest::new(0.0);
    request.node_types = vec!["small".into()];
    request.requestor = Some("zuul-system-id".into());
    request.state = RequestState::Pending;
    let id = h
        .store
        .requests()
        .create(&request, "100", false)
        .await
        .expect("create");
    let mut orphan = Node::new(NodeState::Init, 0.0);
    orphan.provider = Some("fake-provider".into());
    orphan.pool = Some("main".into());
    orphan.node_type = vec!["small".into()];
    orphan.allocated_to = Some(id.clone());
    let orphan_id = h
        .store
        .nodes()
        .create(&mut orphan)
        .await
        .expect("create node");
    h.start_launcher().await;
    let fulfilled = h.zuul.wait(&id, WAIT).await.expect("wait");
    assert_eq!(fulfilled.state, RequestState::Fulfilled);
    assert_ne!(fulfilled.nodes, vec![orphan_id]);
    h.wait_nodes("the orphaned INIT node deleted", |nodes| {
        (!nodes.iter().any(|(id, _)| *id == orphan_id)).then_some(())
    })
    .await;
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_request_lock_directories_are_removed() {
    let mut h = Harness::sqlite(&fake_config(&[("small", 0)], Some(10), "")).await;
    let stale = "/nodepool/requests-lock/100-0000099999";
    h.store.ensure_path(stale).await.expect("lock dir");
    h.start_launcher().await;
    eventually("the stale lock dir is removed", || async {
        h.store
            .backend()
            .exists(stale)
            .await
            .ok()
            .flatten()
            .is_none()
    })
    .await;
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_request_that_zuul_withdraws_launches_nothing() {
    let mut h = Harness::sqlite(&fake_config(&[("small", 0)], Some(1), "")).await;
    h.start_launcher().await;
    let set = h.running_job(&["small"], RequestOptions::default()).await;
    let second = h
        .zuul
        .submit(&["small"], RequestOptions::default())
        .await
        .expect("submit");
    h.wait_pending(&second).await;
    h.zuul.cancel(&second).await.expect("cancel");
    eventually(
        "the paused handler lets go of the withdrawn request",
        || async {
            h.store
                .lock_contenders(&nodepool_store::paths::request_lock(&second))
                .await
                .is_ok_and(|c| c.is_empty())
        },
    )
    .await;
    h.zuul.return_nodes(set).await.expect("return");
    h.wait_no_nodes().await;
    assert_eq!(
        h.cloud("fake-provider").creates(),
        1,
        "nothing launched for the withdrawn request"
    );
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_naming_a_provider_go_to_it_and_pool_priority_is_respected() {
    let config = "labels:\n  - name: a\nproviders:\n".to_string()
        + &provider_block("p-a", "a")
        + &provider_block("p-b", "a").replace(
            "      - name: main\n",
            "      - name: main\n        priority: 1\n",
        );
    let mut h = Harness::sqlite(&config).await;
    h.start_launcher().await;
    h.wait_pools(2).await;
    // Pool priority: p-b's pool (priority 1) wins over p-a's (default 100).
    let (_, request) = h.submit_and_wait(&["a"]).await;
    let node = h
        .store
        .nodes()
        .get(request.nodes[0])
        .await
        .expect("get")
        .expect("node")
        .value;
    assert_eq!(node.provider.as_deref(), Some("p-b"));
    // A request naming p-a goes there despite the priorities.
    let id = h
        .zuul
        .submit(
            &["a"],
            RequestOptions {
                provider: Some("p-a".into()),
                ..RequestOptions::default()
            },
        )
        .await
        .expect("submit");
    let request = h.zuul.wait(&id, WAIT).await.expect("wait");
    let node = h
        .store
        .nodes()
        .get(request.nodes[0])
        .await
        .expect("get")
        .expect("node")
        .value;
    assert_eq!(node.provider.as_deref(), Some("p-a"));
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_stop_unregisters_and_returns_waiting_requests() {
    let mut h = Harness::sqlite(&fake_config(&[("small", 0)], Some(1), "")).await;
    h.start_launcher().await;
    let set = h.running_job(&["small"], RequestOptions::default()).await;
    let second = h
        .zuul
        .submit(&["small"], RequestOptions::default())
        .await
        .expect("submit");
    h.wait_pending(&second).await;
    h.stop_launcher(0).await;
    let request = h
        .store
        .requests()
        .get(&second)
        .await
        .expect("get")
        .expect("request")
        .value;
    assert_eq!(
        request.state,
        RequestState::Requested,
        "handed back for another launcher"
    );
    let pools = h
        .store
        .components()
        .list(nodepool_model::ComponentKind::Pool)
        .await
        .expect("list");
    assert!(pools.is_empty(), "pool components unregistered");
    let launchers = h
        .store
        .components()
        .list(nodepool_model::ComponentKind::Launcher)
        .await
        .expect("list");
    assert!(launchers.is_empty(), "launcher component unregistered");
    h.zuul.return_nodes(set).await.expect("return");
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_launchers_on_one_store_never_share_a_node() {
    let quota =
        "    fake-quota:\n      instances: 1000\n      cores: 100000\n      ram: 100000000\n";
    let mut h = Harness::sqlite(&fake_config(&[("small", 0)], Some(200), quota)).await;
    h.start_launcher().await;
    h.start_launcher().await;
    let zuul = std::sync::Arc::new(h.zuul.clone());
    let mut tasks = tokio::task::JoinSet::new();
    let semaphore = std::sync::Arc::new(tokio::sync::Semaphore::new(10));
    for _ in 0..60 {
        let zuul = zuul.clone();
        let permit = semaphore.clone().acquire_owned().await.expect("permit");
        tasks.spawn(async move {
            let ids = zuul
                .run_job(&["small"], RequestOptions::default(), WAIT)
                .await
                .expect("job");
            drop(permit);
            ids
        });
    }
    let mut seen = std::collections::HashSet::new();
    while let Some(result) = tasks.join_next().await {
        for id in result.expect("task") {
            assert!(seen.insert(id), "node {id} handed to two requests");
        }
    }
    assert_eq!(seen.len(), 60);
    h.wait_no_nodes().await;
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cloud_quota_counts_unmanaged_servers_and_pauses_the_pool() {
    // The cloud allows two instances; one is taken by a server nodepool did not make.
    let quota = "    fake-quota:\n      instances: 2\n";
    let mut h = Harness::sqlite(&fake_config(&[("small", 0)], Some(10), quota)).await;
    h.start_launcher().await;
    let cloud = h.cloud_after_start().await;
    cloud.insert_server("someone-elses-vm", nodepool_driver::Metadata::new());
    let set = h.running_job(&["small"], RequestOptions::default()).await;
    let second = h
        .zuul
        .submit(&["small"], RequestOptions::default())
        .await
        .expect("submit");
    h.wait_pending(&second).await;
    assert_eq!(
        cloud.servers().len(),
        2,
        "no launch beyond the cloud's quota"
    );
    h.zuul.return_nodes(set).await.expect("return");
    let second_req = h.zuul.wait(&second, WAIT).await.expect("wait");
    assert_eq!(second_req.state, RequestState::Fulfilled);
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_concurrency_limits_launches_in_flight() {
    let extra = "    max-concurrency: 1\n    fake-faults:\n      create-delay: 0.3\n";
    let mut h = Harness::sqlite(&fake_config(&[("small", 0)], Some(10), extra)).await;
    h.start_launcher().await;
    let ids = vec![
        h.zuul
            .submit(&["small"], RequestOptions::default())
            .await
            .expect("submit"),
        h.zuul
            .submit(&["small"], RequestOptions::default())
            .await
            .expect("submit"),
        h.zuul
            .submit(&["small"], RequestOptions::default())
            .await
            .expect("submit"),
    ];
    // Count BUILDING nodes on every change of the node tree until the requests are done.
    let (done_tx, mut done_rx) = tokio::sync::oneshot::channel::<()>();
    let watcher = {
        let store = h.store.clone();
        let mut generation = h.nodes.generation();
        tokio::spawn(async move {
            let mut most = 0;
            loop {
                let mut building = 0;
                for id in store.nodes().ids().await.unwrap_or_default() {
                    if let Ok(Some(n)) = store.nodes().get(id).await
                        && n.value.state == NodeState::Building
                    {
                        building += 1;
                    }
                }
                most = most.max(building);
                tokio::select! {
                    _ = generation.changed() => {}
                    _ = &mut done_rx => return most,
                }
            }
        })
    };
    for id in &ids {
        let request = h.zuul.wait(id, WAIT).await.expect("wait");
        assert_eq!(request.state, RequestState::Fulfilled);
    }
    let _ = done_tx.send(());
    let most_building = watcher.await.expect("watcher");
    assert_eq!(most_building, 1, "one launch at a time");
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_hold_age_deletes_held_nodes_without_their_own_expiry() {
    let config = "max-hold-age: 1\n".to_string() + &fake_config(&[("small", 0)], Some(10), "");
    let mut h = Harness::sqlite(&config).await;
    h.start_launcher().await;
    let (id, request) = h.submit_and_wait(&["small"]).await;
    let mut set = h.zuul.accept(&id, &request).await.expect("accept");
    h.zuul
        .use_nodes(&mut set, "org/project")
        .await
        .expect("use");
    h.zuul
        .autohold(set, "tenant org/project job .*", "keep", None)
        .await
        .expect("hold");
    h.wait_no_nodes().await;
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_step_that_never_answers_times_out_and_the_launch_is_retried() {
    let extra = "    launch-timeout: 1\n    fake-faults:\n      hung-creates: 1\n";
    let mut h = Harness::sqlite(&fake_config(&[("small", 0)], Some(10), extra)).await;
    h.start_launcher().await;
    let (id, request) = h.submit_and_wait(&["small"]).await;
    assert_eq!(request.state, RequestState::Fulfilled);
    let cloud = h.cloud("fake-provider");
    assert_eq!(cloud.faults_left().hung_creates, 0, "the first create hung");
    assert_eq!(cloud.creates(), 1, "the retry made the only server");
    h.zuul.cancel(&id).await.expect("cancel");
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_create_on_the_last_attempt_declines_the_request() {
    let extra =
        "    launch-timeout: 1\n    launch-retries: 1\n    fake-faults:\n      hung-creates: 1\n";
    let mut h = Harness::sqlite(&fake_config(&[("small", 0)], Some(10), extra)).await;
    h.start_launcher().await;
    let (id, request) = h.submit_and_wait(&["small"]).await;
    assert_eq!(request.state, RequestState::Failed);
    assert_eq!(request.declined_by.len(), 1);
    h.zuul.cancel(&id).await.expect("cancel");
    h.wait_no_nodes().await;
    assert_eq!(h.cloud("fake-provider").creates(), 0);
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_interrupts_a_create_step_that_never_answers() {
    // No launch-timeout to save the launch: only the stop can end the hung step.
    let extra = "    launch-timeout: 3600\n    fake-faults:\n      hung-creates: 1\n";
    let mut h = Harness::sqlite(&fake_config(&[("small", 0)], Some(10), extra)).await;
    h.start_launcher().await;
    let id = h
        .zuul
        .submit(&["small"], RequestOptions::default())
        .await
        .expect("submit");
    let cloud = h.cloud_after_start().await;
    eventually("the create hangs", || async {
        cloud.faults_left().hung_creates == 0
    })
    .await;
    tokio::time::timeout(Duration::from_secs(10), h.stop_launcher(0))
        .await
        .expect("the launcher stops despite the hung create");
    // As on any stop: the request goes back to be served, the node stays BUILDING.
    let request = h
        .store
        .requests()
        .get(&id)
        .await
        .expect("get")
        .expect("request")
        .value;
    assert_eq!(request.state, RequestState::Requested);
    let nodes = h.all_nodes().await;
    assert_eq!(nodes.len(), 1);
    assert_eq!(nodes[0].1.state, NodeState::Building);
    let abandoned = nodes[0].0;
    h.start_launcher().await;
    let request = h.zuul.wait(&id, WAIT).await.expect("wait");
    assert_eq!(request.state, RequestState::Fulfilled);
    h.wait_nodes("the abandoned node deleted", |nodes| {
        (!nodes.iter().any(|(id, _)| *id == abandoned)).then_some(())
    })
    .await;
    h.zuul.cancel(&id).await.expect("cancel");
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delete_step_that_never_answers_is_given_up_and_retried() {
    let extra = "    fake-faults:\n      hung-deletes: 1\n";
    let mut h = Harness::sqlite(&fake_config(&[("small", 0)], Some(10), extra)).await;
    h.timing.delete_timeout = Duration::from_secs(1);
    h.start_launcher().await;
    h.zuul
        .run_job(&["small"], RequestOptions::default(), WAIT)
        .await
        .expect("job");
    h.wait_no_nodes().await;
    let cloud = h.cloud("fake-provider");
    assert_eq!(cloud.faults_left().hung_deletes, 0, "the first delete hung");
    assert!(cloud.servers().is_empty(), "the retry deleted the server");
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_console_log_that_never_comes_does_not_hold_the_next_attempt() {
    let extra = "    fake-faults:\n      launch-failures: 1\n      hung-console-logs: 1\n";
    let config = fake_config(&[("small", 0)], Some(10), extra).replace(
        "min-ram: 8192\n",
        "min-ram: 8192\n            console-log: true\n",
    );
    let mut h = Harness::sqlite(&config).await;
    h.timing.console_log_timeout = Duration::from_millis(200);
    h.start_launcher().await;
    let (id, request) = h.submit_and_wait(&["small"]).await;
    assert_eq!(request.state, RequestState::Fulfilled);
    let left = h.cloud("fake-provider").faults_left();
    assert_eq!(left.launch_failures, 0, "the first attempt failed");
    assert_eq!(left.hung_console_logs, 0, "its console log never came");
    h.zuul.cancel(&id).await.expect("cancel");
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_withdrawn_while_its_node_boots_leaves_a_free_ready_node() {
    let extra = "    fake-faults:\n      create-delay: 1\n";
    let mut h = Harness::sqlite(&fake_config(&[("small", 0)], Some(10), extra)).await;
    h.start_launcher().await;
    let id = h
        .zuul
        .submit(&["small"], RequestOptions::default())
        .await
        .expect("submit");
    let building = h
        .wait_nodes("a node booting for the request", |nodes| {
            nodes
                .iter()
                .find(|(_, n)| n.state == NodeState::Building && n.allocated_to == Some(id.clone()))
                .map(|(node_id, _)| *node_id)
        })
        .await;
    h.zuul.cancel(&id).await.expect("cancel");
    // The fulfilment finds the request gone: the node is unallocated, not handed out.
    h.wait_nodes("the node ready and free", |nodes| {
        nodes
            .iter()
            .any(|(node_id, n)| {
                *node_id == building && n.state == NodeState::Ready && n.allocated_to.is_none()
            })
            .then_some(())
    })
    .await;
    let reused = h
        .zuul
        .run_job(&["small"], RequestOptions::default(), WAIT)
        .await
        .expect("job");
    assert_eq!(
        reused,
        vec![building],
        "the freed node serves the next request"
    );
    h.shutdown().await;
}
