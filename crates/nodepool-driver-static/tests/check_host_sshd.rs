//! `check_host` against real sshd hosts (`nodepool_testkit::SshdHost`: needs root, iproute2
//! and openssh-server, as `scripts/setup.sh` installs).

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use nodepool_config::StaticNode;
use nodepool_driver_static::{StaticHostError, check_host, check_reusable};
use nodepool_testkit::SshdHost;

const READY_TIMEOUT: Duration = Duration::from_secs(30);

fn static_node(host: &SshdHost, host_keys: Vec<String>) -> StaticNode {
    StaticNode {
        name: host.address(),
        labels: vec!["static-label".to_string()],
        username: "zuul".to_string(),
        timeout: 20,
        host_key_checking: true,
        host_keys,
        connection_port: host.port(),
        connection_type: "ssh".to_string(),
        shell_type: None,
        max_parallel_jobs: 1,
        python_path: "auto".to_string(),
    }
}

async fn running_host(name: &str) -> SshdHost {
    let mut host = SshdHost::start(name).expect("start sshd host");
    host.wait_ready(READY_TIMEOUT).await.expect("sshd ready");
    host
}

#[tokio::test]
async fn right_configured_key_returns_the_scanned_keys() {
    let host = running_host("static-right-key").await;
    let ed25519 = host
        .host_keys()
        .into_iter()
        .find(|key| key.starts_with("ssh-ed25519 "))
        .expect("an ed25519 host key");
    let node = static_node(&host, vec![ed25519]);
    let keys = check_host(&node).await.expect("host key matches");
    assert_eq!(
        keys.iter().cloned().collect::<BTreeSet<_>>(),
        host.host_keys().into_iter().collect::<BTreeSet<_>>(),
        "sshd log:\n{}",
        host.log()
    );
    // No configured keys: anything the host presents is accepted.
    let keys = check_host(&static_node(&host, Vec::new()))
        .await
        .expect("no keys configured");
    assert_eq!(keys.len(), 3);
    assert!(check_reusable(&node).await);
}

#[tokio::test]
async fn wrong_configured_key_is_a_mismatch() {
    let host = running_host("static-wrong-key").await;
    // Another host's key: well-formed, but not this host's.
    let other = SshdHost::start("static-other-keys").expect("start second host");
    let foreign = other.host_keys()[0].clone();
    let node = static_node(&host, vec![host.host_keys()[1].clone(), foreign]);
    let error = check_host(&node).await.expect_err("foreign key configured");
    let StaticHostError::HostKeyMismatch { tuple, scanned } = &error else {
        panic!("expected a mismatch, got {error:?}");
    };
    assert_eq!(
        tuple,
        &format!(
            "Node(hostname='{}', username='zuul', port=22)",
            host.address()
        )
    );
    assert_eq!(scanned.len(), 3);
    let message = error.to_string();
    assert!(message.contains("host key mismatches"), "{message}");
    assert!(message.contains(&host.address()), "{message}");
}

#[tokio::test]
async fn unchecked_host_returns_configured_keys_without_contact() {
    let mut host = SshdHost::start("static-unchecked").expect("start sshd host");
    // Nothing listens: any contact attempt would take the whole timeout and fail.
    host.stop();
    let mut node = static_node(&host, vec!["ssh-rsa CONFIGURED".to_string()]);
    node.host_key_checking = false;
    node.timeout = 30;
    let started = Instant::now();
    let keys = check_host(&node).await.expect("configured keys");
    assert_eq!(keys, vec!["ssh-rsa CONFIGURED".to_string()]);
    assert!(check_reusable(&node).await);
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn stopped_host_times_out_like_nodepool() {
    let mut host = running_host("static-stopped").await;
    host.stop();
    let mut node = static_node(&host, host.host_keys());
    node.timeout = 1;
    let error = check_host(&node).await.expect_err("sshd stopped");
    assert_eq!(
        error.to_string(),
        format!(
            "Node(hostname='{}', username='zuul', port=22): ConnectionTimeoutException",
            host.address()
        )
    );
    assert!(!check_reusable(&node).await);
}
