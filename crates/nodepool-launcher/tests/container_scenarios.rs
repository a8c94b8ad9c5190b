//! The container driver in the launcher: a Zuul request for a container label is fulfilled
//! with a node that answers SSH, and the returned node's container is deleted. Needs root,
//! overlayfs, network namespaces and the test image (`nodepool_driver_container::testing`,
//! built once with debootstrap).

mod common;

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use common::{Harness, eventually};
use nodepool_driver::{Driver, ImageUploadSpec, Metadata};
use nodepool_driver_container::{ContainerDriver, address, host, rootfs};
use nodepool_model::{
    BuildId, BuildState, ImageBuild, ImageUpload, NodeState, RequestState, UploadState,
};

/// The login user of the native test image (`nodepool_testkit::images`).
const TEST_IMAGE_USER: &str = "zuul";
const IMAGE: &str = "ct-image";
const PROVIDER: &str = "ct-provider";
/// Distinct from the driver crate's tests' subnets, so both run at once.
const SUBNET: &str = "172.31.250.0/24";

fn config(dir: &Path) -> String {
    let root = dir.display();
    format!(
        "labels:\n  - name: ct\ndiskimages:\n  - name: {IMAGE}\nproviders:\n  - name: {PROVIDER}\n    driver: container\n    image-dir: {root}/ct/images\n    state-dir: {root}/ct/nodes\n    subnet: {SUBNET}\n    boot-timeout: 30\n    launch-retries: 1\n    ssh-key: {root}/ct/id_ed25519\n    diskimages:\n      - name: {IMAGE}\n    pools:\n      - name: main\n        max-servers: 4\n        labels:\n          - name: ct\n            diskimage: {IMAGE}\n            cores: 1\n            ram: 256\n"
    )
}

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs_f64()
}

/// Does what the builder does for a container provider: unpacks the image through the
/// provider and records a READY `tar` build and a READY upload with the provider's id.
async fn upload_image(h: &Harness, text: &str) {
    let loaded = nodepool_config::parse_config(
        Path::new("nodepool.yaml"),
        text,
        None,
        &nodepool_config::Env::new(),
    )
    .expect("valid configuration");
    let provider_config = loaded.config.providers.get(PROVIDER).expect("provider");
    let provider = ContainerDriver::new()
        .build(provider_config)
        .expect("provider");
    // The native builder's own image, as the builder would upload it.
    let tar = nodepool_testkit::images::native_test_image()
        .await
        .expect("native test image")
        .file("tar");
    let external_name = format!("{IMAGE}-0000000001");
    let external_id = provider
        .upload_image(&ImageUploadSpec {
            image_name: IMAGE.into(),
            external_name: external_name.clone(),
            path: tar,
            format: "tar".into(),
            metadata: Metadata::new(),
            md5: None,
            sha256: None,
        })
        .await
        .expect("upload");

    let images = h.store.images();
    let build_id = BuildId::new_random();
    let mut build = ImageBuild::new(BuildState::Building, now());
    build.builder = Some("builder.example.com".into());
    images
        .create_build(IMAGE, &build_id, &build)
        .await
        .expect("create build");
    build.formats = vec!["tar".into()];
    build.username = Some(TEST_IMAGE_USER.into());
    build.set_state(BuildState::Ready, now());
    images
        .store_build(IMAGE, &build_id, &build)
        .await
        .expect("store build");
    let mut upload = ImageUpload::new(UploadState::Uploading, now());
    upload.external_name = Some(external_name);
    upload.format = Some("tar".into());
    upload.username = Some(TEST_IMAGE_USER.into());
    let upload_id = images
        .create_upload(IMAGE, &build_id, PROVIDER, &upload)
        .await
        .expect("create upload");
    upload.external_id = Some(external_id);
    upload.set_state(UploadState::Ready, now());
    images
        .store_upload(IMAGE, &build_id, PROVIDER, upload_id, &upload)
        .await
        .expect("store upload");
}

/// Runs `command` on the node as `user` with the provider's key, trusting only `host_keys`.
fn ssh(dir: &Path, ip: &str, host_keys: &[String], user: &str, command: &str) -> String {
    let known_hosts = dir.join("known_hosts");
    let lines: String = host_keys.iter().map(|k| format!("{ip} {k}\n")).collect();
    std::fs::write(&known_hosts, lines).expect("known_hosts");
    let output = Command::new("ssh")
        .arg("-i")
        .arg(dir.join("ct/id_ed25519"))
        .args(["-o", "StrictHostKeyChecking=yes", "-o"])
        .arg(format!("UserKnownHostsFile={}", known_hosts.display()))
        .args([
            "-o",
            "BatchMode=yes",
            "-o",
            "ConnectTimeout=10",
            "-o",
            "LogLevel=ERROR",
        ])
        .arg(format!("{user}@{ip}"))
        .arg(command)
        .output()
        .expect("run ssh");
    assert!(
        output.status.success(),
        "ssh {user}@{ip} {command} failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_container_node_serves_a_job_and_is_deleted_after_it() {
    let mut h = Harness::sqlite("labels: []\nproviders: []\n").await;
    let text = config(h.dir.path());
    h.write_config(&text);
    upload_image(&h, &text).await;
    h.drivers.push(Arc::new(ContainerDriver::new()));
    h.start_launcher().await;

    let (id, request) = h.submit_and_wait(&["ct"]).await;
    assert_eq!(request.state, RequestState::Fulfilled);
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
    assert_eq!(node.provider.as_deref(), Some(PROVIDER));
    let hostname = format!("np{node_id}");
    let ip = node.interface_ip.clone().expect("interface ip");
    let merged = h.dir.path().join("ct/nodes").join(&hostname).join("merged");
    let container_keys = rootfs::host_keys(&merged).expect("container host keys");
    assert_eq!(
        node.host_keys, container_keys,
        "the node record carries the container's own host keys"
    );
    assert_eq!(node.username.as_deref(), Some(TEST_IMAGE_USER));

    let mut set = h.zuul.accept(&id, &request).await.expect("accept");
    h.zuul
        .use_nodes(&mut set, "org/project")
        .await
        .expect("use");
    // The job's view: log in with the injected key, verifying the recorded host keys.
    assert_eq!(
        ssh(
            h.dir.path(),
            &ip,
            &node.host_keys,
            TEST_IMAGE_USER,
            "hostname"
        ),
        hostname
    );
    assert_eq!(
        ssh(h.dir.path(), &ip, &node.host_keys, "root", "id -u"),
        "0"
    );
    h.zuul.return_nodes(set).await.expect("return");

    h.wait_no_nodes().await;
    let node_dir = h.dir.path().join("ct/nodes").join(&hostname);
    let container: std::net::Ipv4Addr = ip.parse().expect("IPv4");
    eventually("the container is gone", || {
        let node_dir = node_dir.clone();
        let hostname = hostname.clone();
        async move {
            !node_dir.exists()
                && !Path::new("/run/netns")
                    .join(address::namespace_name(&hostname, container))
                    .exists()
                && !Path::new("/sys/class/net")
                    .join(address::host_link_name(
                        address::NodeKind::Container,
                        container,
                    ))
                    .exists()
        }
    })
    .await;
    assert!(!host::is_mount_point(&merged).expect("mountinfo"));
    h.shutdown().await;
}
