//! Nodescan against a real sshd (`nodepool_testkit::SshdHost`: needs root, iproute2 and
//! openssh-server, as `scripts/setup.sh` installs).

use std::collections::BTreeSet;
use std::time::Duration;

use nodepool_driver::nodescan::{NodescanError, ScanTarget, scan};
use nodepool_testkit::SshdHost;

fn target(host: &SshdHost, timeout: Duration) -> ScanTarget {
    ScanTarget {
        host: host.address(),
        port: host.port(),
        connection_type: "ssh".to_string(),
        gather_keys: true,
        timeout,
    }
}

#[tokio::test]
async fn scan_returns_the_hosts_three_keys() {
    let mut host = SshdHost::start("nodescan-keys").expect("start sshd host");
    host.wait_ready(Duration::from_secs(30))
        .await
        .expect("sshd ready");
    let keys = scan(&target(&host, Duration::from_secs(30)))
        .await
        .expect("scan a running sshd");
    let scanned: BTreeSet<String> = keys.iter().cloned().collect();
    let expected: BTreeSet<String> = host.host_keys().into_iter().collect();
    assert_eq!(scanned, expected, "sshd log:\n{}", host.log());
    assert_eq!(keys.len(), 3);
    let types: BTreeSet<&str> = keys
        .iter()
        .filter_map(|key| key.split_whitespace().next())
        .collect();
    assert_eq!(
        types,
        BTreeSet::from(["ecdsa-sha2-nistp256", "ssh-ed25519", "ssh-rsa"])
    );
}

#[tokio::test]
async fn scan_waits_for_a_host_that_comes_up_late() {
    // Start the scan before sshd listens: it must retry quietly and succeed.
    let mut host = SshdHost::start("nodescan-late").expect("start sshd host");
    host.stop();
    let scan_target = target(&host, Duration::from_secs(30));
    let scanning = tokio::spawn(async move { scan(&scan_target).await });
    host.start_again().expect("start sshd again");
    let keys = scanning
        .await
        .expect("scan task")
        .expect("scan a host that came up late");
    assert_eq!(keys.len(), 3, "sshd log:\n{}", host.log());
}

#[tokio::test]
async fn stopped_host_times_out() {
    let mut host = SshdHost::start("nodescan-stopped").expect("start sshd host");
    host.stop();
    let error = scan(&target(&host, Duration::from_secs(1)))
        .await
        .expect_err("nothing listens");
    assert_eq!(
        error,
        NodescanError::ConnectTimeout {
            host: host.address(),
            port: 22
        }
    );
}
