//! `nodepool launcher` with a `kubernetes` provider, as a process on a real ZooKeeper over
//! TLS, against the project's own Kubernetes control plane (`scripts/kubernetes/`: a real
//! kube-apiserver, controller-manager and scheduler, kwok as the kubelet; built and started
//! when missing). The configuration is the shape a site writes: `driver: kubernetes`,
//! `context:` naming a context of the kubeconfig in `KUBECONFIG`, one pool with a `namespace`
//! label and a `pod` label.
//!
//! Each test has a pool of its own (namespaces are named `<pool>-<node id>`, and node ids
//! start again in every ZooKeeper chroot), so runs and tests never see each other's.

#![cfg(feature = "kubernetes")]

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::launcher::{
    CloudServer, DaemonProcess, KillPoint, RestartSite, ZooKeeperChroot,
    killed_mid_launch_then_restarted, wait_no_nodes,
};
use nodepool_driver::metadata_keys;
use nodepool_driver_kubernetes::testing::{self, CONTEXT};
use nodepool_driver_kubernetes::{ApiErrorKind, Kind, KubeClient};
use nodepool_model::{ConnectionPort, ExternalId, NodeState, RequestState};
use nodepool_testkit::wait::wait_for;
use nodepool_testkit::{RequestOptions, ZuulClient};
use serde_json::{Map, Value, json};
use tempfile::TempDir;

/// Pods reach Running in seconds on kwok; a dead launcher's session takes 10 s to expire,
/// and namespaces take a few seconds to finish deleting.
const WAIT: Duration = Duration::from_secs(180);

const PROVIDER: &str = "kube";

struct Site {
    dir: TempDir,
    zookeeper: ZooKeeperChroot,
    kubeconfig: PathBuf,
    admin: KubeClient,
    /// This test's pool: its namespaces are `<pool>-<node id>`.
    pool: String,
}

impl Site {
    async fn new(prefix: &str) -> Site {
        let (zookeeper, kubeconfig) = tokio::task::spawn_blocking({
            let prefix = prefix.to_string();
            move || {
                let kubeconfig = testing::ensure_cluster()
                    .unwrap_or_else(|e| panic!("the local Kubernetes runs: {e}"));
                (ZooKeeperChroot::new(&prefix), kubeconfig)
            }
        })
        .await
        .expect("the set-up task");
        let admin = testing::admin_client().unwrap_or_else(|e| panic!("admin client: {e}"));
        // Lower-case letters and digits: a valid namespace name prefix, unique per run.
        let pool = format!("{prefix}{}", testing::unique_node_id());
        Site {
            dir: tempfile::tempdir().expect("tempdir"),
            zookeeper,
            kubeconfig,
            admin,
            pool,
        }
    }

    /// Writes `nodepool.yaml`: labels `ns` (a namespace) and `small` (a pod); `pod_extra`
    /// goes into the pod label (e.g. a node selector nothing matches, to hold launches), and
    /// `max_servers` limits the pool.
    fn write_config(&self, pod_extra: &str, max_servers: Option<u32>) {
        let max_servers =
            max_servers.map_or(String::new(), |n| format!("        max-servers: {n}\n"));
        let text = format!(
            "{zk}labels:\n  - name: ns\n    min-ready: 0\n  - name: small\n    min-ready: 0\n\
             providers:\n  - name: {PROVIDER}\n    driver: kubernetes\n    context: {CONTEXT}\n\
             \x20   pools:\n      - name: {pool}\n{max_servers}\
             \x20       labels:\n          - name: ns\n            type: namespace\n\
             \x20         - name: small\n            type: pod\n            image: docker.io/library/debian:12\n\
             \x20           cpu: 1\n            memory: 256\n            env:\n              - name: GREETING\n                value: hello\n{pod_extra}",
            zk = self.zookeeper.config_section(),
            pool = self.pool,
        );
        std::fs::write(self.dir.path().join("nodepool.yaml"), text).expect("write config");
    }

    fn start(&self, name: &str) -> DaemonProcess {
        let kubeconfig = self.kubeconfig.display().to_string();
        DaemonProcess::start(
            &self.dir.path().join("nodepool.yaml"),
            self.dir.path().join(format!("{name}.log")),
            &[("KUBECONFIG", kubeconfig.as_str())],
        )
    }

    /// This test's namespaces that are not being deleted, with their node label.
    async fn namespaces(&self) -> Vec<CloudServer> {
        let selector = format!("{}={PROVIDER}", metadata_keys::PROVIDER_NAME);
        let listed = self
            .admin
            .list_namespaces(&selector)
            .await
            .unwrap_or_else(|e| panic!("list namespaces: {e}"));
        listed
            .iter()
            .filter_map(|namespace| {
                let name = namespace.pointer("/metadata/name")?.as_str()?;
                let phase = namespace
                    .pointer("/status/phase")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string();
                (name.starts_with(&format!("{}-", self.pool)) && phase != "Terminating").then(
                    || CloudServer {
                        id: name.to_string(),
                        node: namespace
                            .pointer(&format!("/metadata/labels/{}", metadata_keys::NODE_ID))
                            .and_then(Value::as_str)
                            .map(str::to_string),
                        state: phase,
                    },
                )
            })
            .collect()
    }

    async fn wait_namespaces_gone(&self, launcher: &DaemonProcess) {
        let gone = wait_for(WAIT, Duration::from_millis(500), || async {
            self.namespaces().await.is_empty().then_some(())
        })
        .await;
        if gone.is_err() {
            panic!(
                "namespaces left: {:?}; launcher log:\n{}",
                self.namespaces().await,
                launcher.log()
            );
        }
    }
}

impl RestartSite for Site {
    fn write_config(&self, hold_launches: bool) {
        // A pod no node can take stays Pending: its launch waits with its namespace made.
        let hold = "            node-selector:\n              nodepool-test/hold: never\n";
        Site::write_config(self, if hold_launches { hold } else { "" }, None);
    }

    fn launcher(&self, name: &str) -> DaemonProcess {
        self.start(name)
    }

    async fn servers(&self) -> Vec<CloudServer> {
        self.namespaces().await
    }

    fn server_id(&self, external_id: &ExternalId) -> String {
        match external_id {
            ExternalId::Id(id) => id.clone(),
            other => panic!("a namespace name, not {other:?}"),
        }
    }

    fn deadline(&self) -> Duration {
        WAIT
    }

    fn cloud_poll(&self) -> Duration {
        Duration::from_millis(500)
    }
}

/// The credentials dict of a node's `connection_port`.
fn credentials(port: Option<&ConnectionPort>) -> Map<String, Value> {
    match port {
        Some(ConnectionPort::Credentials(map)) => map.clone(),
        other => panic!("a credentials dict, not {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namespace_and_pod_nodes_are_served_with_credentials_that_work_only_in_their_namespace() {
    let site = Site::new("ns").await;
    site.write_config("", None);
    let launcher = site.start("launcher");
    let store = site.zookeeper.connect().await;
    let zuul = ZuulClient::new(store.clone(), "zuul");
    let id = zuul
        .submit(&["ns", "small"], RequestOptions::default())
        .await
        .expect("submit");
    let request = zuul
        .wait(&id, WAIT)
        .await
        .unwrap_or_else(|e| panic!("{e}; launcher log:\n{}", launcher.log()));
    assert_eq!(
        request.state,
        RequestState::Fulfilled,
        "launcher log:\n{}",
        launcher.log()
    );
    let mut node_set = zuul.accept(&id, &request).await.expect("accept");
    let mut namespaces = Vec::new();
    for held in node_set.nodes() {
        let node = &held.node;
        let label = node.node_type.first().cloned().unwrap_or_default();
        let dict = credentials(node.connection_port.as_ref());
        let namespace = dict["namespace"].as_str().expect("namespace").to_string();
        assert_eq!(namespace, format!("{}-{}", site.pool, held.id));
        assert_eq!(node.external_id, Some(ExternalId::Id(namespace.clone())));
        assert_eq!(node.provider.as_deref(), Some(PROVIDER));
        assert_eq!(node.cloud.as_deref(), Some(CONTEXT));
        match label.as_str() {
            "ns" => assert_eq!(node.connection_type.as_deref(), Some("namespace")),
            _ => {
                assert_eq!(node.connection_type.as_deref(), Some("kubectl"));
                assert_eq!(dict["pod"], json!("small"));
                let pod = site
                    .admin
                    .get_in(&namespace, Kind::Pod, "small")
                    .await
                    .expect("the pod");
                assert_eq!(pod.pointer("/status/phase"), Some(&json!("Running")));
                assert_eq!(
                    pod.pointer("/spec/containers/0/env/0"),
                    Some(&json!({"name": "GREETING", "value": "hello"}))
                );
            }
        }
        // Zuul's view: the node's token works in its namespace and nowhere else.
        let client = testing::client_from_credentials(&dict)
            .unwrap_or_else(|e| panic!("a client from the node's credentials: {e}"));
        client
            .list_in(&namespace, Kind::Pod)
            .await
            .unwrap_or_else(|e| panic!("{label}: the token lists pods in {namespace}: {e}"));
        let outside = client.list_in("default", Kind::Pod).await;
        assert!(
            matches!(&outside, Err(e) if e.kind == ApiErrorKind::Forbidden),
            "{label}: the token is refused outside its namespace: {:?}",
            outside.err()
        );
        namespaces.push(namespace);
    }
    assert_eq!(namespaces.len(), 2);
    zuul.use_nodes(&mut node_set, "org/project")
        .await
        .expect("use");
    zuul.return_nodes(node_set).await.expect("return");
    wait_no_nodes(&store, &launcher, WAIT).await;
    site.wait_namespaces_gone(&launcher).await;
    assert!(
        launcher.error_lines().is_empty(),
        "launcher log:\n{}",
        launcher.log()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_launcher_killed_mid_launch_leaves_no_namespace_after_a_restart() {
    let site = Site::new("kill").await;
    let store = site.zookeeper.connect().await;
    killed_mid_launch_then_restarted(&site, &store, KillPoint::ServerListed).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leaked_namespace_is_deleted_and_max_servers_pauses_the_pool() {
    let site = Site::new("leak").await;
    site.write_config("", Some(1));
    // A namespace with the provider's labels that no node names: a leak.
    let leaked = format!("{}-0000099999", site.pool);
    site.admin
        .create_namespace(&json!({
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": leaked, "labels": {
                metadata_keys::PROVIDER_NAME: PROVIDER,
                metadata_keys::POOL_NAME: site.pool,
                metadata_keys::NODE_ID: "0000099999",
            }},
        }))
        .await
        .expect("create the leaked namespace");
    let launcher = site.start("launcher");
    let store = site.zookeeper.connect().await;
    let zuul = ZuulClient::new(store.clone(), "zuul");

    // max-servers 1: the second request waits (not failed) while the first node is held.
    let first = zuul
        .submit(&["small"], RequestOptions::default())
        .await
        .expect("submit");
    let first_request = zuul.wait(&first, WAIT).await.expect("first request");
    assert_eq!(first_request.state, RequestState::Fulfilled);
    let mut held = zuul.accept(&first, &first_request).await.expect("accept");
    zuul.use_nodes(&mut held, "org/project").await.expect("use");
    let second = zuul
        .submit(&["small"], RequestOptions::default())
        .await
        .expect("submit");
    // The pool pauses: the second request is taken but gets no node while the first is
    // held, and it does not fail.
    let paused = wait_for(WAIT, Duration::from_millis(250), || async {
        let request = store.requests().get(&second).await.ok()??;
        (request.value.state == RequestState::Pending).then_some(())
    })
    .await;
    assert!(
        paused.is_ok(),
        "the second request is pending; log:\n{}",
        launcher.log()
    );
    let building = store.nodes().ids().await.expect("node ids").len();
    assert_eq!(building, 1, "no second node while at max-servers");

    // The leak goes meanwhile.
    let leak_gone = wait_for(WAIT, Duration::from_millis(500), || async {
        match site.admin.get_namespace(&leaked).await {
            Err(e) if e.kind == ApiErrorKind::NotFound => Some(()),
            Ok(ns) if ns.pointer("/status/phase") == Some(&json!("Terminating")) => Some(()),
            _ => None,
        }
    })
    .await;
    assert!(
        leak_gone.is_ok(),
        "the leaked namespace is deleted; log:\n{}",
        launcher.log()
    );

    zuul.return_nodes(held).await.expect("return");
    let second_request = zuul.wait(&second, WAIT).await.expect("second request");
    assert_eq!(
        second_request.state,
        RequestState::Fulfilled,
        "log:\n{}",
        launcher.log()
    );
    let mut node_set = zuul.accept(&second, &second_request).await.expect("accept");
    let nodes: Vec<_> = node_set
        .nodes()
        .iter()
        .map(|h| h.node.state.clone())
        .collect();
    assert_eq!(nodes, vec![NodeState::Ready]);
    // Used, so it is deleted when returned (an unused node would stay READY as a spare).
    zuul.use_nodes(&mut node_set, "org/project")
        .await
        .expect("use");
    zuul.return_nodes(node_set).await.expect("return");
    wait_no_nodes(&store, &launcher, WAIT).await;
    site.wait_namespaces_gone(&launcher).await;
}
