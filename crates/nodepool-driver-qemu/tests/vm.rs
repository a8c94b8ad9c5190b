//! A real VM from the native test image: boots under KVM or TCG, answers SSH with the
//! injected key as the image's user and root, carries its node name, and is gone after a
//! delete. Needs root, qemu-system-x86 and the native build's tools (see nodepool-testkit).

#![allow(clippy::unwrap_used)] // tests may unwrap: a panic is a test failure

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use nodepool_config::{Env, parse_config};
use nodepool_driver::{CreateSpec, Driver, ImageUploadSpec, Provider};
use nodepool_driver_qemu::QemuDriver;
use nodepool_model::ExternalId;
use nodepool_testkit::images::native_test_image;

fn provider(dir: &Path) -> std::sync::Arc<dyn Provider> {
    let text = format!(
        "labels:\n  - name: debian\ndiskimages:\n  - name: test\n    build-backend: native\nproviders:\n  - name: local\n    driver: qemu\n    image-dir: {d}/images\n    state-dir: {d}/nodes\n    ssh-port-range: 42900-42949\n    diskimages:\n      - name: test\n    pools:\n      - name: main\n        max-servers: 2\n        labels:\n          - name: debian\n            diskimage: test\n            ram: 768\n",
        d = dir.display()
    );
    let loaded = match parse_config(Path::new("nodepool.yaml"), &text, None, &Env::new()) {
        Ok(loaded) => loaded,
        Err(errors) => panic!("{errors}"),
    };
    let config = loaded
        .config
        .providers
        .get("local")
        .expect("provider")
        .clone();
    QemuDriver::new().build(&config).expect("provider")
}

fn ssh(key: &Path, port: u16, user: &str, command: &str) -> std::process::Output {
    Command::new("ssh")
        .args([
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
        ])
        .args(["-o", "BatchMode=yes", "-o", "ConnectTimeout=10", "-i"])
        .arg(key)
        .args([
            "-p",
            &port.to_string(),
            &format!("{user}@127.0.0.1"),
            command,
        ])
        .output()
        .expect("ssh")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vm_boots_from_the_native_image_and_answers_ssh_with_the_injected_key() {
    let image = native_test_image().await.expect("native test image");
    let dir = tempfile::tempdir().unwrap();
    let provider = provider(dir.path());

    let id = provider
        .upload_image(&ImageUploadSpec {
            image_name: "test".into(),
            external_name: "test-0000000001".into(),
            path: image.file("qcow2"),
            format: "qcow2".into(),
            metadata: Default::default(),
            md5: None,
            sha256: None,
        })
        .await
        .expect("upload");
    assert!(dir.path().join("images").join(&id).is_file());

    let hostname = "np0000000042";
    let mut create = provider.create_machine(CreateSpec {
        hostname: hostname.into(),
        pool: "main".into(),
        label: "debian".into(),
        image_external_id: Some(id.clone()),
        metadata: [("nodepool_node_id".to_string(), "0000000042".to_string())].into(),
        az: None,
        request: None,
    });
    assert_eq!(create.external_id(), Some(ExternalId::Id(hostname.into())));
    let started = Instant::now();
    let instance = loop {
        if let Some(instance) = create.advance().await.expect("create step") {
            break instance;
        }
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "still {}",
            create.state()
        );
        tokio::time::sleep(create.poll_after()).await;
    };
    eprintln!(
        "VM answered SSH after {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let port = instance.connection_port.expect("port");
    assert_eq!(instance.interface_ip.as_deref(), Some("127.0.0.1"));

    // The provider's key (made on first use) logs in as the image's user and as root.
    let key = dir.path().join("nodes/id_ed25519");
    let out = ssh(&key, port, &image.username, "hostname; sudo -n id -u");
    assert!(
        out.status.success(),
        "ssh: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("{hostname}\n0\n")
    );
    let out = ssh(&key, port, "root", "cat /etc/ssh/ssh_host_ed25519_key.pub");
    assert!(
        out.status.success(),
        "ssh root: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let host_key = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .nth(1)
        .unwrap_or_default()
        .to_string();
    // What a scan of the forwarded port sees is the node's own host key.
    let scan = Command::new("ssh-keyscan")
        .args(["-t", "ed25519", "-p", &port.to_string(), "127.0.0.1"])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&scan.stdout).contains(&host_key),
        "scan shows the node's key"
    );

    // Listed by node id for leak cleanup; the console log is kept.
    let resources = provider.list_resources().await.unwrap();
    assert_eq!(resources.len(), 1);
    assert_eq!(resources[0].id, hostname);
    assert_eq!(resources[0].metadata["nodepool_node_id"], "0000000042");
    let console = provider
        .console_log(&ExternalId::Id(hostname.into()))
        .await
        .unwrap_or_default();
    assert!(
        console.contains("Linux version"),
        "console log has the boot"
    );

    nodepool_driver::run_delete_machine(
        &*provider,
        &ExternalId::Id(hostname.into()),
        Duration::from_secs(60),
    )
    .await
    .expect("delete");
    assert!(!dir.path().join("nodes").join(hostname).exists());
    assert!(provider.list_instances().await.unwrap().is_empty());
    let ps = Command::new("pgrep")
        .args(["-f", &format!("-name {hostname},")])
        .output()
        .unwrap();
    assert!(ps.stdout.is_empty(), "no VM process left");

    provider.delete_image(&id).await.expect("delete image");
    assert!(!dir.path().join("images").join(&id).exists());
}
