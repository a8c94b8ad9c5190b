//! The static driver in the launcher against real sshd hosts, each in its own network
//! namespace (`nodepool_testkit::SshdHost`; needs root, iproute2 and openssh-server).

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::{Harness, WAIT};
use nodepool_model::{NodeState, RequestState};
use nodepool_testkit::{RequestOptions, SshdHost};

async fn host(name: &str) -> SshdHost {
    let mut host = SshdHost::start(name).expect("start sshd host");
    host.wait_ready(Duration::from_secs(30))
        .await
        .expect("sshd ready");
    host
}

fn config(hosts: &[(&SshdHost, &str, u32)]) -> String {
    let mut text = String::from(
        "labels:\n  - name: static-label\nproviders:\n  - name: static-provider\n    driver: static\n    pools:\n      - name: main\n        node-attributes:\n          executor-zone: lab\n        nodes:\n",
    );
    for (host, key, slots) in hosts {
        text.push_str(&format!(
            "          - name: {}\n            labels: [static-label]\n            host-key: \"{key}\"\n            max-parallel-jobs: {slots}\n            timeout: 10\n",
            host.address()
        ));
    }
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn static_hosts_are_registered_verified_reused_and_retired() {
    let good = host("np-static-good").await;
    let bad = host("np-static-bad").await;
    let good_key = good.host_keys()[0].clone();
    // The second host is configured with the first host's key: a mismatch.
    let text = config(&[(&good, &good_key, 2), (&bad, &good_key, 1)]);
    let mut h = Harness::sqlite(&text).await;
    h.start_launcher().await;

    let ready = h.wait_ready("static-label", 2).await;
    let nodes = h.all_nodes().await;
    let scanned: BTreeSet<String> = good.host_keys().into_iter().collect();
    let mut slots = BTreeSet::new();
    for (id, node) in &nodes {
        assert!(ready.contains(id));
        assert_eq!(
            node.hostname.as_deref(),
            Some(good.address().as_str()),
            "only the verified host is registered"
        );
        assert_eq!(node.interface_ip.as_deref(), Some(good.address().as_str()));
        assert_eq!(node.launcher.as_deref(), Some("static driver"));
        assert_eq!(
            node.host_keys.iter().cloned().collect::<BTreeSet<_>>(),
            scanned
        );
        assert_eq!(
            node.attributes
                .as_ref()
                .and_then(|a| a.get("executor-zone"))
                .and_then(|v| v.as_str()),
            Some("lab")
        );
        slots.insert(node.slot);
    }
    assert_eq!(slots, BTreeSet::from([Some(0), Some(1)]));

    // A job gets one of the registered nodes; after use its slot is registered again.
    let (id, request) = h.submit_and_wait(&["static-label"]).await;
    assert_eq!(request.state, RequestState::Fulfilled);
    assert!(
        ready.contains(&request.nodes[0]),
        "an existing READY node is handed out"
    );
    let mut set = h.zuul.accept(&id, &request).await.expect("accept");
    h.zuul
        .use_nodes(&mut set, "org/project")
        .await
        .expect("use");
    h.zuul.return_nodes(set).await.expect("return");
    let used = request.nodes[0];
    h.wait_nodes("the used slot re-registered under a new id", |nodes| {
        let ready = nodes
            .iter()
            .filter(|(_, n)| n.state == NodeState::Ready)
            .count();
        (ready == 2 && !nodes.iter().any(|(id, _)| *id == used)).then_some(())
    })
    .await;

    // More jobs than slots: the third request waits until a node comes back.
    let first = h
        .zuul
        .submit(&["static-label"], RequestOptions::default())
        .await
        .expect("submit");
    let second = h
        .zuul
        .submit(&["static-label"], RequestOptions::default())
        .await
        .expect("submit");
    let r1 = h.zuul.wait(&first, WAIT).await.expect("wait");
    let r2 = h.zuul.wait(&second, WAIT).await.expect("wait");
    let mut s1 = h.zuul.accept(&first, &r1).await.expect("accept");
    let mut s2 = h.zuul.accept(&second, &r2).await.expect("accept");
    h.zuul.use_nodes(&mut s1, "org/project").await.expect("use");
    h.zuul.use_nodes(&mut s2, "org/project").await.expect("use");
    let third = h
        .zuul
        .submit(&["static-label"], RequestOptions::default())
        .await
        .expect("submit");
    h.zuul.return_nodes(s1).await.expect("return");
    let r3 = h.zuul.wait(&third, WAIT).await.expect("wait");
    assert_eq!(r3.state, RequestState::Fulfilled);
    h.zuul.return_nodes(s2).await.expect("return");

    // Dropping the host from the configuration retires its READY nodes.
    h.write_config(&config(&[(&bad, &bad.host_keys()[0], 1)]));
    h.wait_nodes(
        "the good host's ready nodes retired and the other host registered",
        |nodes| {
            let hosts: BTreeSet<_> = nodes
                .iter()
                .filter(|(_, n)| n.state == NodeState::Ready && n.allocated_to.is_none())
                .filter_map(|(_, n)| n.hostname.clone())
                .collect();
            (hosts == BTreeSet::from([bad.address()])
                && nodes
                    .iter()
                    .filter(|(_, n)| {
                        n.hostname.as_deref() == Some(good.address().as_str())
                            && n.allocated_to.is_none()
                    })
                    .count()
                    == 0)
                .then_some(())
        },
    )
    .await;
    h.shutdown().await;
}
