//! The launcher with an aws provider on a real local moto server, each scenario on SQLite and
//! on a real ZooKeeper: Zuul gets nodes with the right tags (dynamic ones filled from the
//! request), addresses and instance type; used nodes are terminated; a leaked tagged instance
//! is removed; a launch stopped mid-way leaves nothing behind.

mod common;

use std::sync::{Arc, OnceLock};

use common::{Harness, WAIT, eventually};
use nodepool_driver::metadata_keys;
use nodepool_driver_aws::AwsDriver;
use nodepool_driver_aws::testing::{
    ACCESS_KEY, MotoServer, REGION, SECRET_KEY, ec2_client, instances, register_test_image,
    run_tagged_instance,
};
use nodepool_model::{ExternalId, NodeState, RequestState};
use nodepool_testkit::{RequestOptions, ServerOptions, ZooKeeperServer};

/// An aws provider on moto. `scan` turns host-key checking on for the `scanned` label:
/// moto's addresses never answer, so such a launch stays BUILDING in its nodescan.
fn config(endpoint: &str, image_id: &str, scan: bool) -> String {
    config_with(endpoint, image_id, scan, "")
}

/// `config` with more settings for the `main` pool (indented for it).
fn config_with(endpoint: &str, image_id: &str, scan: bool, main_pool: &str) -> String {
    format!(
        r#"
labels:
  - name: small
  - name: scanned
providers:
  - name: ec2
    driver: aws
    region-name: {REGION}
    endpoint-url: {endpoint}
    rate: 200
    boot-timeout: 120
    launch-retries: 1
    cloud-images:
      - name: test-image
        image-id: {image_id}
        username: zuul
    pools:
      - name: main
        max-servers: 5
        host-key-checking: false
{main_pool}
        labels:
          - name: small
            cloud-image: test-image
            instance-type: t3.medium
            key-name: zuul
            tags:
              team: ci
            dynamic-tags:
              zuul-tenant: "{{request.tenant_name}}"
              zuul-event: "{{request.event_id}}"
              zuul-requestor: "{{request.requestor}}"
              zuul-request: "request-{{request.id}}"
      - name: scan
        max-servers: 5
        host-key-checking: {scan}
        labels:
          - name: scanned
            cloud-image: test-image
            instance-type: t3.micro
            key-name: zuul
"#
    )
}

struct Aws {
    moto: MotoServer,
    ec2: aws_sdk_ec2::Client,
    image_id: String,
}

async fn aws() -> Aws {
    let moto = tokio::task::spawn_blocking(MotoServer::start)
        .await
        .expect("moto start task")
        .expect("start moto_server (scripts/setup.sh installs it)");
    let ec2 = ec2_client(&moto.endpoint()).await;
    let image_id = register_test_image(&ec2, "nodepool-test-image")
        .await
        .expect("register image");
    Aws {
        moto,
        ec2,
        image_id,
    }
}

/// Which store a scenario runs on.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Sqlite,
    ZooKeeper,
}

/// One ZooKeeper for the whole binary; the testkit's wrapper process kills it when the
/// binary exits.
fn zookeeper_server() -> Arc<ZooKeeperServer> {
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

/// A launcher harness on `kind`'s store with the aws driver and `config`.
async fn harness_with(kind: Kind, config: &str) -> Harness {
    let mut h = match kind {
        Kind::Sqlite => Harness::sqlite(config).await,
        Kind::ZooKeeper => {
            // Starting the JVM blocks; keep it off the runtime's workers.
            let server = tokio::task::spawn_blocking(zookeeper_server)
                .await
                .expect("the server start task");
            Harness::zookeeper(server, config).await
        }
    };
    h.drivers.push(Arc::new(AwsDriver::with_static_credentials(
        ACCESS_KEY, SECRET_KEY,
    )));
    h
}

async fn harness(kind: Kind, aws: &Aws, scan: bool) -> Harness {
    harness_with(kind, &config(&aws.moto.endpoint(), &aws.image_id, scan)).await
}

fn instance_of(external_id: &Option<ExternalId>) -> String {
    match external_id {
        Some(ExternalId::Fields(fields)) => fields["instance"]
            .as_str()
            .expect("instance id")
            .to_string(),
        other => panic!("not an aws external id: {other:?}"),
    }
}

/// The state of instance `id` in moto (`None` if moto does not know it).
async fn state(aws: &Aws, id: &str) -> Option<String> {
    instances(&aws.ec2)
        .await
        .expect("describe instances")
        .into_iter()
        .find(|(i, _, _)| i == id)
        .map(|(_, state, _)| state)
}

async fn terminated(aws: &Aws, id: &str) -> bool {
    state(aws, id).await.is_none_or(|s| s == "terminated")
}

async fn zuul_gets_tagged_aws_nodes_and_used_nodes_are_terminated(kind: Kind) {
    let aws = aws().await;
    let mut h = harness(kind, &aws, false).await;
    h.start_launcher().await;
    let options = RequestOptions {
        tenant_name: Some("example-tenant".into()),
        ..RequestOptions::default()
    };
    let id = h
        .zuul
        .submit(&["small", "small"], options)
        .await
        .expect("submit");
    let request = h.zuul.wait(&id, WAIT).await.expect("wait");
    assert_eq!(request.state, RequestState::Fulfilled);
    assert_eq!(request.nodes.len(), 2);
    let described = instances(&aws.ec2).await.expect("instances");
    let mut instance_ids = Vec::new();
    for node_id in &request.nodes {
        let node = h
            .store
            .nodes()
            .get(*node_id)
            .await
            .expect("get")
            .expect("node")
            .value;
        assert_eq!(node.state, NodeState::Ready);
        assert_eq!(node.cloud.as_deref(), Some("AWS"));
        assert_eq!(node.provider.as_deref(), Some("ec2"));
        assert_eq!(node.region.as_deref(), Some(REGION));
        assert!(node.interface_ip.is_some(), "{node:?}");
        assert!(node.private_ipv4.is_some(), "{node:?}");
        assert_eq!(node.username.as_deref(), Some("zuul"));
        assert!(node.host_keys.is_empty());
        let resources = node.resources.clone().expect("resources");
        assert_eq!(resources["cores"].as_f64(), Some(1.0));
        assert_eq!(resources["L-1216C47A"].as_f64(), Some(2.0));
        let instance_id = instance_of(&node.external_id);
        let (_, state, tags) = described
            .iter()
            .find(|(i, _, _)| *i == instance_id)
            .expect("the node's instance exists");
        assert_eq!(state, "running");
        assert_eq!(tags["Name"], format!("np{node_id}"));
        assert_eq!(tags[metadata_keys::NODE_ID], node_id.to_string());
        assert_eq!(tags[metadata_keys::POOL_NAME], "main");
        assert_eq!(tags[metadata_keys::PROVIDER_NAME], "ec2");
        assert_eq!(tags["team"], "ci");
        // The label's dynamic tags, filled from Zuul's request.
        assert_eq!(tags["zuul-tenant"], "example-tenant");
        assert_eq!(
            Some(&tags["zuul-event"]),
            request.event_id.as_ref(),
            "{tags:?}"
        );
        assert_eq!(tags["zuul-requestor"], "zuul-system-id");
        assert_eq!(tags["zuul-request"], format!("request-{id}"));
        let ec2_instance = aws
            .ec2
            .describe_instances()
            .instance_ids(&instance_id)
            .send()
            .await
            .expect("describe");
        let ec2_instance = &ec2_instance.reservations()[0].instances()[0];
        assert_eq!(
            ec2_instance.instance_type().map(|t| t.as_str()),
            Some("t3.medium")
        );
        assert_eq!(
            ec2_instance.private_ip_address(),
            node.private_ipv4.as_deref()
        );
        instance_ids.push(instance_id);
    }

    let mut set = h.zuul.accept(&id, &request).await.expect("accept");
    h.zuul
        .use_nodes(&mut set, "org/project")
        .await
        .expect("use");
    h.zuul.return_nodes(set).await.expect("return");
    h.wait_no_nodes().await;
    for instance_id in &instance_ids {
        eventually("the used node's instance is terminated", || async {
            terminated(&aws, instance_id).await
        })
        .await;
    }
    h.shutdown().await;
}

async fn a_leaked_tagged_instance_is_terminated(kind: Kind) {
    let aws = aws().await;
    let mut h = harness(kind, &aws, false).await;
    let leaked = run_tagged_instance(
        &aws.ec2,
        &aws.image_id,
        &[
            (metadata_keys::NODE_ID, "0000099999"),
            (metadata_keys::POOL_NAME, "main"),
            (metadata_keys::PROVIDER_NAME, "ec2"),
            ("Name", "np0000099999"),
        ],
    )
    .await
    .expect("leaked instance");
    // Not ours: no nodepool tags (another provider's would carry its own name).
    let foreign = run_tagged_instance(
        &aws.ec2,
        &aws.image_id,
        &[(metadata_keys::PROVIDER_NAME, "someone-else")],
    )
    .await
    .expect("foreign instance");
    h.start_launcher().await;
    eventually("the leaked instance is terminated", || async {
        terminated(&aws, &leaked).await
    })
    .await;
    assert_eq!(state(&aws, &foreign).await.as_deref(), Some("running"));
    h.shutdown().await;
}

async fn a_launch_stopped_mid_way_leaves_nothing_after_a_restart(kind: Kind) {
    let aws = aws().await;
    // The pool scans host keys: the launch stays BUILDING after the instance exists.
    let mut h = harness(kind, &aws, true).await;
    let launcher = h.start_launcher().await;
    let id = h
        .zuul
        .submit(&["scanned"], RequestOptions::default())
        .await
        .expect("submit");
    let (node_id, instance_id) = h
        .wait_nodes("a building node with its instance id", |nodes| {
            nodes.iter().find_map(|(node_id, n)| {
                (n.state == NodeState::Building && n.external_id.is_some())
                    .then(|| (*node_id, instance_of(&n.external_id)))
            })
        })
        .await;
    assert_eq!(state(&aws, &instance_id).await.as_deref(), Some("running"));
    h.stop_launcher(launcher).await;

    // Restart without host-key checking: the stale node's instance is deleted and the
    // request is served by a new node.
    h.write_config(&config(&aws.moto.endpoint(), &aws.image_id, false));
    h.start_launcher().await;
    eventually("the half-launched instance is terminated", || async {
        terminated(&aws, &instance_id).await
    })
    .await;
    let request = h.zuul.wait(&id, WAIT).await.expect("wait");
    assert_eq!(request.state, RequestState::Fulfilled);
    assert_ne!(request.nodes, vec![node_id]);
    h.wait_nodes("the stale node is gone", |nodes| {
        (!nodes.iter().any(|(n, _)| *n == node_id)).then_some(())
    })
    .await;
    // Every running instance belongs to a node in the store.
    let nodes = h.all_nodes().await;
    for (instance, state, tags) in instances(&aws.ec2).await.expect("instances") {
        if state == "terminated" {
            continue;
        }
        let owner = tags
            .get(metadata_keys::NODE_ID)
            .cloned()
            .unwrap_or_default();
        assert!(
            nodes.iter().any(|(n, _)| n.to_string() == owner),
            "instance {instance} of node {owner} has no node"
        );
    }
    h.shutdown().await;
}

async fn the_pool_vcpu_limit_holds_a_request_until_a_node_is_returned(kind: Kind) {
    let aws = aws().await;
    // One t3.medium has 2 vCPUs of the on-demand standard-family quota code.
    let mut h = harness_with(
        kind,
        &config_with(
            &aws.moto.endpoint(),
            &aws.image_id,
            false,
            "        max-resources:\n          L-1216C47A: 2",
        ),
    )
    .await;
    h.start_launcher().await;
    let first = h.running_job(&["small"], RequestOptions::default()).await;
    let second = h
        .zuul
        .submit(&["small"], RequestOptions::default())
        .await
        .expect("submit");
    h.wait_pending(&second).await;
    // Still pending a moment later: no second instance was started.
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    let running = instances(&aws.ec2)
        .await
        .expect("instances")
        .into_iter()
        .filter(|(_, state, _)| state != "terminated")
        .count();
    assert_eq!(running, 1);
    h.zuul.return_nodes(first).await.expect("return");
    let request = h.zuul.wait(&second, WAIT).await.expect("wait");
    assert_eq!(request.state, RequestState::Fulfilled);
    h.shutdown().await;
}

/// Makes a `sqlite::<name>` and a `zookeeper::<name>` test of each scenario function.
macro_rules! scenarios {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::Kind::Sqlite).await;
                }
            )*
        }
        mod zookeeper {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::Kind::ZooKeeper).await;
                }
            )*
        }
    };
}

scenarios!(
    zuul_gets_tagged_aws_nodes_and_used_nodes_are_terminated,
    a_leaked_tagged_instance_is_terminated,
    a_launch_stopped_mid_way_leaves_nothing_after_a_restart,
    the_pool_vcpu_limit_holds_a_request_until_a_node_is_returned,
);
