//! The container driver against this machine: real overlay mounts, network namespaces and
//! sshd (needs root, `debootstrap` for the test image once, iproute2, util-linux and the
//! OpenSSH client). Each test has its own state and image dirs and its own subnet, so tests
//! (and the launcher's container scenarios) run in parallel.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use nodepool_driver::{DriverError, ImageUploadSpec, Metadata, metadata_keys};
use nodepool_driver_container::address;
use nodepool_driver_container::host::is_mount_point;
use nodepool_model::ExternalId;

mod common;
use common::*;

/// Whether the provider's runc knows container `id`.
fn runc_has(cloud: &Cloud, id: &str) -> bool {
    Command::new("runc")
        .arg("--root")
        .arg(cloud.state_dir().join(".runc"))
        .args(["state", id])
        .output()
        .expect("run runc")
        .status
        .success()
}

fn netns_exists(name: &str) -> bool {
    Path::new("/run/netns").join(name).exists()
}

fn link_exists(name: &str) -> bool {
    Path::new("/sys/class/net").join(name).exists()
}

/// Asserts that nothing of node `hostname` at `ip` is left on the machine.
fn assert_gone(cloud: &Cloud, hostname: &str, ip: std::net::Ipv4Addr) {
    let node_dir = cloud.state_dir().join(hostname);
    assert!(
        !netns_exists(&address::namespace_name(hostname, ip)),
        "netns of {hostname} left"
    );
    assert!(
        !link_exists(&address::host_link_name(address::NodeKind::Container, ip)),
        "veth of {hostname} left"
    );
    assert!(
        !is_mount_point(&node_dir.join("merged")).expect("mountinfo"),
        "overlay of {hostname} still mounted"
    );
    assert!(!node_dir.exists(), "directory of {hostname} left");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nodes_boot_answer_ssh_with_their_host_keys_and_are_deleted_without_trace() {
    let cloud = cloud("172.31.248.0/24");
    let image = upload(&cloud).await;
    let provider = cloud.provider.as_ref();

    // Two nodes at once, as two launches would make them.
    let began = Instant::now();
    let (first, second) = tokio::join!(
        create(provider, spec("0000000001", &image)),
        create(provider, spec("0000000002", &image))
    );
    let ready_in = began.elapsed();
    let first = first.expect("first node");
    let second = second.expect("second node");
    eprintln!(
        "two containers created and answering SSH in {:.2} s",
        ready_in.as_secs_f64()
    );
    assert_ne!(address_of(&first), address_of(&second));
    for (instance, hostname) in [(&first, "np0000000001"), (&second, "np0000000002")] {
        assert_eq!(
            instance.external_id,
            Some(ExternalId::Id(hostname.to_string()))
        );
        assert_eq!(instance.private_ipv4, instance.interface_ip);
        assert_eq!(instance.public_ipv4, instance.interface_ip);
        assert_eq!(instance.connection_port, Some(22));
        assert_eq!(instance.connection_type.as_deref(), Some("ssh"));
        assert_eq!(instance.username.as_deref(), Some(TEST_IMAGE_USER));
        assert_eq!(instance.node_id(), Some(&hostname[2..]));
        let keys = instance.host_keys.as_ref().expect("host keys");
        assert!(
            keys.iter().any(|k| k.starts_with("ssh-ed25519 ")),
            "{keys:?}"
        );
        // The image user and root both get in with the provider's key, and the container
        // knows its name.
        assert_eq!(ssh(&cloud, instance, TEST_IMAGE_USER, "hostname"), hostname);
        assert_eq!(ssh(&cloud, instance, TEST_IMAGE_USER, "id -un"), "zuul");
        assert_eq!(ssh(&cloud, instance, "root", "hostname"), hostname);
    }
    // The container is not this process's child (it outlives a launcher restart): its
    // outer process was reparented away from us, in a session of its own.
    let pid: u32 = std::fs::read_to_string(cloud.state_dir().join("np0000000001/pid"))
        .expect("pidfile")
        .trim()
        .parse()
        .expect("pid");
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .expect("stat fields")
        .1
        .split_whitespace()
        .collect();
    let (parent, session): (u32, u32) = (
        fields[1].parse().expect("ppid"),
        fields[3].parse().expect("sid"),
    );
    assert_ne!(parent, std::process::id());
    assert_eq!(session, pid, "the container leads its own session");
    // The containers are separate: their own PID namespaces with sshd as PID 1.
    assert_eq!(
        ssh(&cloud, &first, "root", "cat /proc/1/comm"),
        "sshd",
        "sshd is PID 1"
    );
    ssh(&cloud, &first, "root", "touch /only-in-first");
    assert_eq!(
        ssh(
            &cloud,
            &second,
            "root",
            "test -e /only-in-first && echo shared || echo separate"
        ),
        "separate"
    );

    // One more node alone, timed from the create call to SSH answering.
    let began = Instant::now();
    let third = create_timed(provider, spec("0000000003", &image), true)
        .await
        .expect("third node");
    eprintln!(
        "container create to SSH ready: {:.3} s",
        began.elapsed().as_secs_f64()
    );
    let addresses: BTreeSet<_> = [&first, &second, &third]
        .iter()
        .map(|i| address_of(i))
        .collect();
    assert_eq!(addresses.len(), 3, "every node has its own address");

    let log = provider
        .console_log(&ExternalId::Id("np0000000001".into()))
        .await;
    assert!(log.is_some(), "a console log exists");

    // An image in use is not deleted.
    assert!(matches!(
        provider.delete_image(&image).await,
        Err(DriverError::Transient(_))
    ));

    // The listing finds every node with its tags.
    let resources = provider.list_resources().await.expect("resources");
    let ids: BTreeSet<_> = resources
        .iter()
        .map(|r| {
            assert_eq!(r.kind, "instance");
            r.metadata
                .get(metadata_keys::NODE_ID)
                .cloned()
                .expect("node id tag")
        })
        .collect();
    assert_eq!(
        ids,
        BTreeSet::from([
            "0000000001".to_string(),
            "0000000002".into(),
            "0000000003".into()
        ])
    );
    assert_eq!(provider.list_instances().await.expect("instances").len(), 3);

    // Delete through the machine: everything goes.
    delete(provider, "np0000000001").await.expect("delete");
    assert_gone(&cloud, "np0000000001", address_of(&first));
    assert!(matches!(
        provider
            .delete_machine(&ExternalId::Id("np0000000001".into()))
            .advance()
            .await,
        Err(DriverError::NotFound(_))
    ));

    // Delete as leak cleanup does: by resource.
    for resource in provider.list_resources().await.expect("resources") {
        provider
            .delete_resource(&resource)
            .await
            .expect("delete resource");
    }
    assert_gone(&cloud, "np0000000002", address_of(&second));
    assert_gone(&cloud, "np0000000003", address_of(&third));
    assert!(provider.list_resources().await.expect("list").is_empty());

    // A freed address is handed out again.
    let again = create(provider, spec("0000000004", &image))
        .await
        .expect("fourth node");
    assert_eq!(address_of(&again), address_of(&first));
    delete(provider, "np0000000004").await.expect("delete");

    provider.delete_image(&image).await.expect("delete image");
    assert!(matches!(
        provider.delete_image(&image).await,
        Err(DriverError::NotFound(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_stopped_at_any_step_is_deleted_completely() {
    let cloud = cloud("172.31.249.0/24");
    let image = upload(&cloud).await;
    let provider = cloud.provider.as_ref();
    // Stop after 1 (directory and lease), 3 (mounted, configured), 4 (container created),
    // 5 (network) and 6 (container started) steps: the delete must clean up each partial node.
    for (steps, node_id) in [
        (1, "0000000011"),
        (3, "0000000013"),
        (4, "0000000014"),
        (5, "0000000015"),
        (6, "0000000016"),
    ] {
        let mut machine = provider.create_machine(spec(node_id, &image));
        for _ in 0..steps {
            assert_eq!(machine.advance().await.expect("step"), None);
        }
        let hostname = format!("np{node_id}");
        assert_eq!(
            machine.external_id(),
            Some(ExternalId::Id(hostname.clone()))
        );
        let record: serde_json::Value = serde_json::from_slice(
            &std::fs::read(cloud.state_dir().join(&hostname).join("metadata.json"))
                .expect("metadata.json"),
        )
        .expect("json");
        let ip: std::net::Ipv4Addr = record["address"]
            .as_str()
            .expect("address")
            .parse()
            .expect("ip");
        let id = address::namespace_name(&hostname, ip);
        if steps >= 4 {
            assert!(runc_has(&cloud, &id), "container {id} exists");
        }
        if steps >= 5 {
            assert!(netns_exists(&id));
        }
        drop(machine);
        delete(provider, &hostname).await.expect("delete");
        assert_gone(&cloud, &hostname, ip);
        assert!(!runc_has(&cloud, &id), "container {id} left in the runtime");
    }
    assert!(provider.list_resources().await.expect("list").is_empty());

    // A container and a lease that no node directory names (the directory removed by hand)
    // are removed by the next listing.
    let mut machine = provider.create_machine(spec("0000000019", &image));
    for _ in 0..4 {
        assert_eq!(machine.advance().await.expect("step"), None);
    }
    drop(machine);
    let node_dir = cloud.state_dir().join("np0000000019");
    let record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(node_dir.join("metadata.json")).expect("record"))
            .expect("json");
    let ip: std::net::Ipv4Addr = record["address"]
        .as_str()
        .expect("address")
        .parse()
        .expect("ip");
    let id = address::namespace_name("np0000000019", ip);
    assert!(runc_has(&cloud, &id));
    let umount = Command::new("umount")
        .arg("-l")
        .arg(node_dir.join("merged"))
        .status()
        .expect("umount");
    assert!(umount.success());
    std::fs::remove_dir_all(&node_dir).expect("remove the node directory");
    assert!(provider.list_resources().await.expect("list").is_empty());
    assert!(!runc_has(&cloud, &id), "the orphan container is removed");
    assert!(
        !cloud
            .state_dir()
            .join(".leases")
            .join(ip.to_string())
            .exists(),
        "the orphan lease is released"
    );
    provider.delete_image(&image).await.expect("delete image");
}

#[tokio::test]
async fn bad_requests_fail_clearly_and_leave_nothing() {
    let cloud = cloud("172.31.247.0/24");
    let provider = cloud.provider.as_ref();
    let error = provider
        .upload_image(&ImageUploadSpec {
            image_name: "ct-image".into(),
            external_name: IMAGE.into(),
            path: "/nonexistent.qcow2".into(),
            format: "qcow2".into(),
            metadata: Metadata::new(),
            md5: None,
            sha256: None,
        })
        .await
        .expect_err("qcow2 is refused");
    assert!(error.to_string().contains("tar"), "{error}");

    let error = create(provider, spec("0000000021", "no-such-image"))
        .await
        .expect_err("no image");
    assert!(error.to_string().contains("no-such-image"), "{error}");
    assert!(matches!(delete(provider, "np0000000021").await, Ok(()),));
    assert!(provider.list_resources().await.expect("list").is_empty());
    assert!(matches!(
        provider.delete_image("never-uploaded").await,
        Err(DriverError::NotFound(_))
    ));

    let quota = provider.quota_for_label("main", "ct").await.expect("quota");
    assert_eq!(quota.get("cores"), 2.0);
    assert_eq!(quota.get("ram"), 512.0);
    assert_eq!(quota.get("instances"), 1.0);
    let limits = provider.quota_limits().await.expect("limits");
    assert!(limits.get("cores") >= 1.0);
    assert!(limits.get("ram") > 0.0);
    assert!(limits.get("instances").is_infinite());
}
