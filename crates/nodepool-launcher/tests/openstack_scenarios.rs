//! The launcher with `driver: openstack` against the real local OpenStack of
//! `scripts/openstack/` (started when it is not running; Nova's fake virt driver, Neutron,
//! Glance) on a real ZooKeeper. Each test has its own OpenStack project, so listings, leaks
//! and quotas of parallel tests never meet.

mod common;

use std::future::Future;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use common::Harness;
use nodepool_driver::metadata_keys;
use nodepool_driver_openstack::testing::{self, TestProject};
use nodepool_driver_openstack::{OpenStackDriver, ProviderOptions, Service};
use nodepool_model::{ExternalId, NodeState, RequestState};
use nodepool_testkit::{RequestOptions, ServerOptions, ZooKeeperServer};
use serde_json::{Value, json};

/// Servers take about 10 s to go ACTIVE on the local cloud, longer when tests run at once.
const CLOUD_WAIT: Duration = Duration::from_secs(180);

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

/// The cloud is up, the test image exists, and the test has its project.
async fn project(prefix: &str) -> TestProject {
    tokio::task::spawn_blocking(testing::ensure_cloud)
        .await
        .expect("ensure task")
        .expect("the local OpenStack runs");
    testing::ensure_test_image().await.expect("test image");
    TestProject::create(prefix).await.expect("test project")
}

/// A launcher harness on ZooKeeper whose `openstack` provider `os` uses `project`.
async fn harness(project: &TestProject, config: &str) -> Harness {
    let zk = tokio::task::spawn_blocking(server)
        .await
        .expect("the server start task");
    let mut h = Harness::zookeeper(zk, config).await;
    let clouds = project
        .write_clouds_yaml(h.dir.path(), "np-test")
        .expect("clouds.yaml");
    h.drivers
        .push(Arc::new(OpenStackDriver::with_options(ProviderOptions {
            clouds_file: Some(clouds),
            page_size: None,
        })));
    h
}

/// No `driver:` key: openstack is the default.
fn config(max_servers: u32) -> String {
    format!(
        "labels:
  - name: small
    min-ready: 0
providers:
  - name: os
    cloud: np-test
    rate: 0.001
    boot-timeout: 10
    launch-timeout: 170
    cloud-images:
      - name: test-image
        image-name: {image}
        username: cirros
    pools:
      - name: main
        max-servers: {max_servers}
        networks: [public]
        auto-floating-ip: false
        host-key-checking: false
        labels:
          - name: small
            cloud-image: test-image
            flavor-name: {flavor}
            instance-properties:
              purpose: nodepool-test
            dynamic-instance-properties:
              zuul-tenant: \"{{request.tenant_name}}\"
              zuul-event: \"{{request.event_id}}\"
              zuul-requestor: \"{{request.requestor}}\"
              zuul-labels: \"{{request.labels}}\"
",
        image = testing::TEST_IMAGE,
        flavor = testing::TINY,
    )
}

async fn poll_until<F, Fut, T>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let began = Instant::now();
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(began.elapsed() < CLOUD_WAIT, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The project's servers as Nova lists them (`id`, `status`, `metadata`, `flavor`).
async fn servers(project: &TestProject) -> Vec<Value> {
    let client = project.client().expect("client");
    let body = client
        .get(Service::Compute, "/servers/detail")
        .await
        .expect("server list");
    body["servers"].as_array().cloned().unwrap_or_default()
}

async fn wait_server_gone(project: &TestProject, id: &str) {
    poll_until(&format!("server {id} deleted from nova"), || async {
        let listed = servers(project).await;
        (!listed
            .iter()
            .any(|s| s["id"] == id && s["status"] != "DELETED"))
        .then_some(())
    })
    .await
}

fn server_id(node: &nodepool_model::Node) -> String {
    match &node.external_id {
        Some(ExternalId::Id(id)) => id.clone(),
        other => panic!("external id {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openstack_nodes_are_fulfilled_used_deleted_and_leaks_removed() {
    let project = project("np-launch").await;
    let mut h = harness(&project, &config(10)).await;
    h.start_launcher().await;

    let options = RequestOptions {
        tenant_name: Some("example-tenant".into()),
        ..RequestOptions::default()
    };
    let id = h.zuul.submit(&["small"], options).await.expect("submit");
    let request = h.zuul.wait(&id, CLOUD_WAIT).await.expect("wait");
    assert_eq!(request.state, RequestState::Fulfilled, "{request:?}");
    let node_id = request.nodes[0];
    let node = h
        .store
        .nodes()
        .get(node_id)
        .await
        .expect("get")
        .expect("node")
        .value;
    assert_eq!(node.state, NodeState::Ready);
    assert_eq!(node.provider.as_deref(), Some("os"));
    assert_eq!(node.cloud.as_deref(), Some("np-test"));
    assert_eq!(node.az.as_deref(), Some("nova"));
    assert_eq!(node.username.as_deref(), Some("cirros"));
    let ip = node.interface_ip.clone().expect("interface ip");
    assert!(
        ip.starts_with("127.43.0."),
        "an address of the public network: {ip}"
    );
    assert_eq!(node.public_ipv4.as_deref(), Some(ip.as_str()));
    assert_eq!(node.private_ipv4.as_deref(), Some(ip.as_str()));
    assert!(node.host_keys.is_empty(), "host-key-checking is off");
    let resources = node.resources.clone().expect("resources");
    assert_eq!(resources["ram"], json!(512));
    assert_eq!(resources["cores"], json!(1));
    assert_eq!(resources["instances"], json!(1));

    // Nova has the server with nodepool's name, metadata and flavor.
    let sid = server_id(&node);
    let listed = servers(&project).await;
    let server = listed
        .iter()
        .find(|s| s["id"] == sid.as_str())
        .expect("server in nova");
    assert_eq!(server["name"], format!("np{node_id}"));
    assert_eq!(server["status"], "ACTIVE");
    let meta = &server["metadata"];
    assert_eq!(meta[metadata_keys::NODE_ID], node_id.to_string());
    assert_eq!(meta[metadata_keys::PROVIDER_NAME], "os");
    assert_eq!(meta[metadata_keys::POOL_NAME], "main");
    assert_eq!(meta["groups"], "os,test-image,small");
    assert_eq!(meta["purpose"], "nodepool-test");
    // The label's dynamic properties, filled from Zuul's request.
    assert_eq!(meta["zuul-tenant"], "example-tenant");
    assert_eq!(
        meta["zuul-event"].as_str(),
        request.event_id.as_deref(),
        "{meta}"
    );
    assert_eq!(meta["zuul-requestor"], "zuul-system-id");
    assert_eq!(meta["zuul-labels"], "['small']");
    assert_eq!(server["flavor"]["original_name"], testing::TINY);

    // Zuul uses and returns the node: the launcher deletes it from ZooKeeper and Nova.
    let mut set = h.zuul.accept(&id, &request).await.expect("accept");
    h.zuul
        .use_nodes(&mut set, "org/project")
        .await
        .expect("use");
    h.zuul.return_nodes(set).await.expect("return");
    wait_server_gone(&project, &sid).await;
    poll_until("the node record is deleted", || async {
        matches!(h.store.nodes().get(node_id).await, Ok(None)).then_some(())
    })
    .await;

    // A server with nodepool's metadata for a node ZooKeeper does not know is a leak.
    let client = project.client().expect("client");
    let image = testing::ensure_test_image().await.expect("image");
    let flavors = client
        .get(Service::Compute, "/flavors")
        .await
        .expect("flavors");
    let flavor = flavors["flavors"]
        .as_array()
        .and_then(|f| f.iter().find(|f| f["name"] == testing::TINY))
        .and_then(|f| f["id"].as_str())
        .expect("m1.tiny")
        .to_string();
    let network = client
        .get(Service::Network, "/networks?name=public")
        .await
        .expect("networks")["networks"][0]["id"]
        .as_str()
        .expect("public network")
        .to_string();
    let created = client
        .post(
            Service::Compute,
            "/servers",
            &json!({"server": {"name": "np9999999999", "imageRef": image, "flavorRef": flavor,
                "networks": [{"uuid": network}],
                "metadata": {"nodepool_node_id": "9999999999", "nodepool_provider_name": "os",
                    "nodepool_pool_name": "main"}}}),
        )
        .await
        .expect("leaked server");
    let leaked = created["server"]["id"].as_str().expect("id").to_string();
    // Someone else's server (no nodepool metadata) stays.
    let other = client
        .post(
            Service::Compute,
            "/servers",
            &json!({"server": {"name": "not-ours", "imageRef": image, "flavorRef": flavor,
                "networks": [{"uuid": network}]}}),
        )
        .await
        .expect("unrelated server");
    let other = other["server"]["id"].as_str().expect("id").to_string();
    wait_server_gone(&project, &leaked).await;
    assert!(
        servers(&project)
            .await
            .iter()
            .any(|s| s["id"] == other.as_str()),
        "a server without nodepool metadata is left alone"
    );
    h.shutdown().await;
    project.delete_servers().await.expect("cleanup");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_clouds_instance_limit_pauses_the_pool_until_a_node_is_freed() {
    let project = project("np-limit").await;
    project
        .set_compute_quota(&json!({"instances": 2}))
        .await
        .expect("instance quota");
    // max-servers is far above the cloud's limit: only /limits can hold the pool back.
    let mut h = harness(&project, &config(10)).await;
    h.start_launcher().await;

    let first = h
        .zuul
        .submit(&["small"], RequestOptions::default())
        .await
        .expect("submit");
    let second = h
        .zuul
        .submit(&["small"], RequestOptions::default())
        .await
        .expect("submit");
    let r1 = h.zuul.wait(&first, CLOUD_WAIT).await.expect("wait");
    let r2 = h.zuul.wait(&second, CLOUD_WAIT).await.expect("wait");
    assert_eq!(r1.state, RequestState::Fulfilled);
    assert_eq!(r2.state, RequestState::Fulfilled);

    // The third waits for quota rather than failing against Nova.
    let third = h
        .zuul
        .submit(&["small"], RequestOptions::default())
        .await
        .expect("submit");
    h.wait_pending(&third).await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let request = h
        .store
        .requests()
        .get(&third)
        .await
        .expect("get")
        .expect("request")
        .value;
    assert_eq!(
        request.state,
        RequestState::Pending,
        "paused at the cloud's limit"
    );
    let active = servers(&project).await;
    assert_eq!(active.len(), 2, "no server beyond the limit was asked for");
    let aborted = h
        .all_nodes()
        .await
        .iter()
        .filter(|(_, n)| matches!(n.state, NodeState::Aborted | NodeState::Failed))
        .count();
    assert_eq!(aborted, 0, "no launch hit Nova's quota error");

    // Zuul returns the first node: its server goes and the paused request gets one.
    let mut set = h.zuul.accept(&first, &r1).await.expect("accept");
    h.zuul
        .use_nodes(&mut set, "org/project")
        .await
        .expect("use");
    h.zuul.return_nodes(set).await.expect("return");
    let r3 = h.zuul.wait(&third, CLOUD_WAIT).await.expect("wait");
    assert_eq!(r3.state, RequestState::Fulfilled);
    assert!(servers(&project).await.len() <= 2);
    h.shutdown().await;
    project.delete_servers().await.expect("cleanup");
}

/// A `disk-image-create` stand-in: a real (empty) qcow2, with its md5 file, as the builder
/// expects from `-o <out> -t qcow2`.
const FAKE_DIB: &str = r#"#!/bin/sh
out=""
formats=""
while [ $# -gt 0 ]; do
  case "$1" in
    -o) out="$2"; shift 2 ;;
    -t) formats="$2"; shift 2 ;;
    --qemu-img-options) shift 2 ;;
    *) shift ;;
  esac
done
for f in $(echo "$formats" | tr , ' '); do
  qemu-img create -q -f "$f" "$out.$f" 16M
  md5sum "$out.$f" | cut -c1-32 > "$out.$f.md5"
done
mkdir -p "$out.d"
"#;

fn diskimage_config(dir: &std::path::Path) -> String {
    format!(
        "images-dir: {dir}/images
build-log-dir: {dir}/logs
labels:
  - name: dib
    min-ready: 0
diskimages:
  - name: test-dib
    elements: [vm]
    release: 12
    dib-cmd: {dir}/fake-image-create
    rebuild-age: 86400
providers:
  - name: os
    cloud: np-test
    rate: 0.001
    boot-timeout: 10
    image-name-format: '{{image_name}}-{{timestamp}}'
    diskimages:
      - name: test-dib
        meta:
          purpose: nodepool-test
    pools:
      - name: main
        max-servers: 5
        networks: [public]
        auto-floating-ip: false
        host-key-checking: false
        labels:
          - name: dib
            diskimage: test-dib
            flavor-name: {flavor}
",
        dir = dir.display(),
        flavor = testing::TINY,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_diskimage_built_and_uploaded_to_glance_boots_nodes() {
    use std::os::unix::fs::PermissionsExt as _;
    let project = project("np-dib").await;
    let workdir = tempfile::tempdir().expect("tempdir");
    let script = workdir.path().join("fake-image-create");
    std::fs::write(&script, FAKE_DIB).expect("script");
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let mut h = harness(&project, &diskimage_config(workdir.path())).await;
    let clouds = h.dir.path().join("clouds.yaml");

    // The builder builds the image and uploads it to this project's Glance.
    let mut registry = nodepool_driver::DriverRegistry::new();
    registry.register(Arc::new(OpenStackDriver::with_options(ProviderOptions {
        clouds_file: Some(clouds),
        page_size: None,
    })));
    let mut options = nodepool_builder::BuilderOptions::new(h.config_path.clone(), None);
    options.hostname = "builder.example.org".into();
    options.timing = nodepool_builder::Timing {
        build_interval: Duration::from_millis(200),
        upload_interval: Duration::from_millis(200),
        cleanup_interval: Duration::from_secs(60),
    };
    let builder_store = common::open(&h.backing).await;
    let builder = nodepool_builder::Builder::start(builder_store.clone(), registry, options)
        .await
        .expect("builder starts");
    h.start_launcher().await;

    // A pool without a ready upload declines the request: wait for the upload first.
    let store = h.store.clone();
    let upload_id = poll_until("a READY upload of test-dib to os", || {
        let store = store.clone();
        async move {
            let images = store.images();
            for build in images.build_ids("test-dib").await.ok()? {
                for upload in images.upload_ids("test-dib", &build, "os").await.ok()? {
                    let record = images
                        .upload("test-dib", &build, "os", upload)
                        .await
                        .ok()??;
                    if record.value.state == nodepool_model::UploadState::Ready {
                        return record.value.external_id;
                    }
                }
            }
            None
        }
    })
    .await;
    // Let the launcher's image cache see it.
    tokio::time::sleep(Duration::from_secs(2)).await;

    let id = h
        .zuul
        .submit(&["dib"], RequestOptions::default())
        .await
        .expect("submit");
    let request = h.zuul.wait(&id, CLOUD_WAIT).await.expect("wait");
    assert_eq!(request.state, RequestState::Fulfilled, "{request:?}");
    let node = h
        .store
        .nodes()
        .get(request.nodes[0])
        .await
        .expect("get")
        .expect("node")
        .value;
    assert!(
        node.interface_ip
            .as_deref()
            .is_some_and(|ip| ip.starts_with("127.43.0."))
    );

    // The server boots the uploaded Glance image, which carries nodepool's tags and meta.
    let sid = server_id(&node);
    let client = project.client().expect("client");
    let server = client
        .get(Service::Compute, &format!("/servers/{sid}"))
        .await
        .expect("server");
    let image_id = server["server"]["image"]["id"]
        .as_str()
        .expect("image id")
        .to_string();
    assert_eq!(image_id, upload_id, "the server boots the builder's upload");
    let image = client
        .get(Service::Image, &format!("/images/{image_id}"))
        .await
        .expect("image");
    assert_eq!(image["status"], "active");
    assert!(
        image["name"]
            .as_str()
            .is_some_and(|n| n.starts_with("test-dib-")),
        "{image}"
    );
    assert_eq!(image["nodepool_provider_name"], "os");
    assert!(image["nodepool_build_id"].is_string());
    assert!(image["nodepool_upload_id"].is_string());
    assert_eq!(image["purpose"], "nodepool-test");
    assert_eq!(image["disk_format"], "qcow2");
    assert_eq!(image["visibility"], "private");
    assert_eq!(server["server"]["metadata"]["groups"], "os,test-dib,dib");

    let mut set = h.zuul.accept(&id, &request).await.expect("accept");
    h.zuul
        .use_nodes(&mut set, "org/project")
        .await
        .expect("use");
    h.zuul.return_nodes(set).await.expect("return");
    wait_server_gone(&project, &sid).await;
    builder.stop().await;
    let _ = builder_store.backend().close().await;
    h.shutdown().await;
}
