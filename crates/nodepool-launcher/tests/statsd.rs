//! statsd metrics on the wire (spec 2.16): a launcher pointed at a UDP socket of ours
//! fulfils a request, and the launch counters and the max-servers gauge arrive under
//! Nodepool's names.

mod common;

use std::collections::BTreeSet;

use common::{Harness, WAIT, fake_config, fast_timing};
use nodepool_launcher::{Launcher, LauncherOptions};
use nodepool_testkit::RequestOptions;
use tokio::net::UdpSocket;

/// Receives statsd lines until every expected one (matched by `wanted`) arrived, or the
/// deadline passes; returns everything received.
async fn receive_until(socket: &UdpSocket, wanted: &[fn(&str) -> bool]) -> Vec<String> {
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut lines = Vec::new();
    let mut buffer = vec![0u8; 65536];
    loop {
        let missing = wanted
            .iter()
            .any(|matches| !lines.iter().any(|l: &String| matches(l)));
        if !missing {
            return lines;
        }
        match tokio::time::timeout_at(deadline, socket.recv(&mut buffer)).await {
            Ok(Ok(n)) => lines.extend(
                String::from_utf8_lossy(&buffer[..n])
                    .lines()
                    .map(str::to_string),
            ),
            Ok(Err(e)) => panic!("receiving statsd packets: {e}"),
            Err(_) => {
                let seen: BTreeSet<&String> = lines.iter().collect();
                panic!("not every expected statsd line arrived; got {seen:#?}")
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn launch_counters_and_max_servers_gauge_are_sent() {
    let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind UDP");
    let port = socket.local_addr().expect("local address").port();
    let mut h = Harness::sqlite(&fake_config(&[("small", 0)], Some(10), "")).await;
    let store = common::open(&h.backing).await;
    let mut options = LauncherOptions::new(h.config_path.clone(), None);
    options.timing = fast_timing();
    options.hostname = "statsd-launcher".to_string();
    options.fqdn = options.hostname.clone();
    options.statsd = Some(("127.0.0.1".to_string(), port));
    let launcher = Launcher::start(store.clone(), h.registry(), options)
        .await
        .expect("launcher starts");
    h.launchers.push((launcher, store));

    let nodes = h
        .zuul
        .run_job(&["small"], RequestOptions::default(), WAIT)
        .await
        .expect("job");
    assert_eq!(nodes.len(), 1);

    let lines = receive_until(
        &socket,
        &[
            |l| l == "nodepool.launch.ready:1|c",
            |l| l.starts_with("nodepool.launch.ready:") && l.ends_with("|ms"),
            |l| l == "nodepool.launch.provider.fake-provider.ready:1|c",
            |l| l == "nodepool.launch.requestor.zuul-system-id.ready:1|c",
            |l| l == "nodepool.provider.fake-provider.max_servers:10|g",
        ],
    )
    .await;
    // The fake cloud reports an availability zone, so the per-AZ key is sent too.
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("nodepool.launch.provider.fake-provider.")
                && l.ends_with(".ready:1|c")
                && l.matches('.').count() == 5),
        "a per-AZ launch counter: {lines:#?}"
    );
    h.shutdown().await;
}
