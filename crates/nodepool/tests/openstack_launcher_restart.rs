//! `nodepool launcher` with an `openstack` provider, as a process on a real ZooKeeper over
//! TLS, against the project's own local OpenStack (`scripts/openstack/`: Keystone, Nova with
//! the fake virt driver, Neutron, Glance; started when it is not running): SIGKILLed in the
//! middle of a launch and restarted, it serves the request with a fresh node and leaves no
//! server behind (issue "cloud drivers").
//!
//! To hold a launch after Nova has its server, the first launcher checks host keys on a port
//! nothing listens on (reserved by this test, so connections are refused) with a long
//! `boot-timeout`: the node stays BUILDING in its nodescan. The second launcher does not
//! check host keys, so its launch ends as soon as the server is ACTIVE.
//!
//! Two networks: `public` (external, no floating IP; the launcher is killed as soon as Nova
//! lists the server, usually still in BUILD) and `private` with `auto-floating-ip` (killed
//! once the floating IP is attached; no floating IP may be left either).

#![cfg(feature = "openstack")]

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::launcher::{
    CloudServer, DaemonProcess, KillPoint, RestartSite, ZooKeeperChroot,
    killed_mid_launch_then_restarted,
};
use nodepool_driver::metadata_keys;
use nodepool_driver_openstack::testing::{self, TestProject};
use nodepool_driver_openstack::{OpenStackClient, Service};
use nodepool_model::ExternalId;
use serde_json::Value;
use tempfile::TempDir;

/// Servers take 10-30 s to go ACTIVE on the local cloud, more when tests run at once; a
/// dead launcher's session takes 10 s to expire.
const WAIT: Duration = Duration::from_secs(300);

/// The name of the test project's entry in `clouds.yaml`.
const CLOUD: &str = "np-test";

struct Site {
    dir: TempDir,
    zookeeper: ZooKeeperChroot,
    project: TestProject,
    /// The project's own view of Nova, for listing its servers.
    client: OpenStackClient,
    clouds_yaml: PathBuf,
    /// Bound and never listening: connections to this port are refused, so a nodescan of it
    /// waits until its `boot-timeout`.
    _refused_port: tokio::net::TcpSocket,
    refused_port: u16,
    network: Network,
}

/// Where the nodes' servers are attached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Network {
    /// The external network itself: no floating IP.
    Public,
    /// A tenant network behind a router: each server gets a floating IP.
    PrivateWithFloatingIp,
}

impl Site {
    async fn new(network: Network) -> Site {
        let zookeeper = tokio::task::spawn_blocking(|| {
            testing::ensure_cloud().expect("the local OpenStack runs");
            ZooKeeperChroot::new("openstack-restart")
        })
        .await
        .expect("the set-up task");
        testing::ensure_test_image().await.expect("test image");
        let project = TestProject::create("np-restart")
            .await
            .expect("test project");
        let dir = tempfile::tempdir().expect("tempdir");
        let clouds_yaml = project
            .write_clouds_yaml(dir.path(), CLOUD)
            .expect("clouds.yaml");
        let client = project.client().expect("client");
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket
            .bind("0.0.0.0:0".parse().expect("address"))
            .expect("bind a port");
        let refused_port = socket.local_addr().expect("bound address").port();
        Site {
            dir,
            zookeeper,
            project,
            client,
            clouds_yaml,
            _refused_port: socket,
            refused_port,
            network,
        }
    }

    fn config_path(&self) -> PathBuf {
        self.dir.path().join("nodepool.yaml")
    }

    /// The project's floating IP addresses.
    async fn floating_ips(&self) -> Vec<String> {
        let body = self
            .client
            .get(Service::Network, "/floatingips")
            .await
            .expect("list the project's floating IPs");
        body["floatingips"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .filter(|fip| fip["project_id"] == self.project.project_id.as_str())
            .map(|fip| {
                fip["floating_ip_address"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string()
            })
            .collect()
    }
}

impl RestartSite for Site {
    fn write_config(&self, hold_launches: bool) {
        // Holding: the nodescan of the refused port lasts far beyond the test's deadlines.
        let boot_timeout = if hold_launches { 3600 } else { 60 };
        let (network, floating_ip) = match self.network {
            Network::Public => ("public", false),
            Network::PrivateWithFloatingIp => ("private", true),
        };
        let text = format!(
            "{zookeeper}\
labels:
  - name: small
    min-ready: 0
providers:
  - name: os
    driver: openstack
    cloud: {CLOUD}
    rate: 0.001
    boot-timeout: {boot_timeout}
    launch-timeout: 280
    cloud-images:
      - name: test-image
        image-name: {image}
        username: cirros
        connection-port: {port}
    pools:
      - name: main
        max-servers: 10
        networks: [{network}]
        auto-floating-ip: {floating_ip}
        host-key-checking: {hold_launches}
        labels:
          - name: small
            cloud-image: test-image
            flavor-name: {flavor}
",
            zookeeper = self.zookeeper.config_section(),
            image = testing::TEST_IMAGE,
            port = self.refused_port,
            flavor = testing::TINY,
        );
        let temporary = self.dir.path().join("nodepool.yaml.new");
        std::fs::write(&temporary, text).expect("write config");
        std::fs::rename(&temporary, self.config_path()).expect("replace config");
    }

    fn launcher(&self, name: &str) -> DaemonProcess {
        let log = self.dir.path().join(format!("{name}.log"));
        let clouds = self.clouds_yaml.to_str().expect("a UTF-8 path");
        DaemonProcess::start(
            &self.config_path(),
            log,
            &[("OS_CLIENT_CONFIG_FILE", clouds)],
        )
    }

    /// The project's servers as Nova lists them (those being deleted included); the state
    /// is Nova's status, with `+floating` once a floating IP shows in the addresses.
    async fn servers(&self) -> Vec<CloudServer> {
        let body = self
            .client
            .get(Service::Compute, "/servers/detail")
            .await
            .expect("list the project's servers");
        body["servers"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .filter(|server| server["status"] != "DELETED")
            .map(|server| CloudServer {
                id: server["id"].as_str().expect("server id").to_string(),
                node: server["metadata"][metadata_keys::NODE_ID]
                    .as_str()
                    .map(str::to_string),
                state: format!(
                    "{}{}",
                    server["status"].as_str().unwrap_or_default(),
                    if has_floating_ip(server) {
                        "+floating"
                    } else {
                        ""
                    }
                ),
            })
            .collect()
    }

    fn server_id(&self, external_id: &ExternalId) -> String {
        match external_id {
            ExternalId::Id(id) => id.clone(),
            ExternalId::Fields(fields) => panic!("a Nova server id, not {fields:?}"),
        }
    }

    fn deadline(&self) -> Duration {
        WAIT
    }

    fn cloud_poll(&self) -> Duration {
        Duration::from_millis(500)
    }

    fn far_enough(&self, server: &CloudServer) -> bool {
        match self.network {
            Network::Public => true,
            Network::PrivateWithFloatingIp => server.state == "ACTIVE+floating",
        }
    }
}

fn has_floating_ip(server: &Value) -> bool {
    server["addresses"].as_object().is_some_and(|networks| {
        networks
            .values()
            .flat_map(|a| a.as_array().into_iter().flatten())
            .any(|address| address["OS-EXT-IPS:type"] == "floating")
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_openstack_launcher_killed_mid_launch_leaves_no_server_after_a_restart() {
    let site = Site::new(Network::Public).await;
    let store = site.zookeeper.connect().await;
    killed_mid_launch_then_restarted(&site, &store, KillPoint::ServerListed).await;
    let _ = store.backend().close().await;
    site.project.delete_servers().await.expect("cleanup");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_launcher_killed_with_a_floating_ip_attached_leaves_no_server_or_floating_ip() {
    let site = Site::new(Network::PrivateWithFloatingIp).await;
    let store = site.zookeeper.connect().await;
    killed_mid_launch_then_restarted(&site, &store, KillPoint::ServerListed).await;
    // The servers are gone (the scenario waited for it), and so are their floating IPs.
    let left = site.floating_ips().await;
    assert!(left.is_empty(), "floating IPs left behind: {left:?}");
    let _ = store.backend().close().await;
    site.project.delete_servers().await.expect("cleanup");
}

/// Killed before (or while) `POST /servers` answers: a server may exist that the node record
/// does not name; leak cleanup finds it by its metadata.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_openstack_launcher_killed_as_its_node_starts_building_leaks_no_server() {
    let site = Site::new(Network::Public).await;
    let store = site.zookeeper.connect().await;
    killed_mid_launch_then_restarted(&site, &store, KillPoint::NodeBuilding).await;
    let _ = store.backend().close().await;
    site.project.delete_servers().await.expect("cleanup");
}
