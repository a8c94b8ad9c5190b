//! `nodepool launcher` with an `aws` provider, as a process on a real ZooKeeper over TLS,
//! against a real local moto server: SIGKILLed in the middle of a launch and restarted, it
//! serves the request with a fresh node and leaves no instance behind (issue "cloud
//! drivers").
//!
//! To hold a launch after EC2 has its instance, the first launcher checks host keys with a
//! long `boot-timeout`: moto's addresses never answer (and the connection port is one this
//! test keeps bound without listening), so the node stays BUILDING in its nodescan. The
//! second launcher does not check host keys, so its launch ends once the instance runs.
//!
//! A third test loses `RunInstances`' answer: the first launcher talks to moto through a
//! proxy that, once a `RunInstances` request has passed, forwards nothing more moto says on
//! that connection. The instance exists with its tags, but no node record names it when the
//! launcher is killed; leak cleanup must find it.

#![cfg(feature = "aws")]

mod common;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::launcher::{
    CloudServer, DaemonProcess, KillPoint, RestartSite, ZooKeeperChroot,
    killed_mid_launch_then_restarted,
};
use nodepool_driver::metadata_keys;
use nodepool_driver_aws::testing::{
    ACCESS_KEY, MotoServer, REGION, SECRET_KEY, ec2_client, instances, register_test_image,
};
use nodepool_model::ExternalId;
use tempfile::TempDir;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

/// A dead launcher's session takes 10 s to expire; moto answers in well under a second.
const WAIT: Duration = Duration::from_secs(120);

struct Site {
    dir: TempDir,
    zookeeper: ZooKeeperChroot,
    moto: MotoServer,
    /// Between the first launcher and moto, when its create answers are to be lost.
    proxy: Option<AnswerLosingProxy>,
    ec2: aws_sdk_ec2::Client,
    image_id: String,
    /// Bound and never listening, so nothing answers a nodescan of this port.
    _refused_port: tokio::net::TcpSocket,
    refused_port: u16,
}

impl Site {
    /// `lose_create_answers`: the first launcher reaches moto through [`AnswerLosingProxy`].
    async fn new(lose_create_answers: bool) -> Site {
        let (zookeeper, moto) = tokio::task::spawn_blocking(|| {
            let moto =
                MotoServer::start().expect("start moto_server (scripts/setup.sh installs it)");
            (ZooKeeperChroot::new("aws-restart"), moto)
        })
        .await
        .expect("the set-up task");
        let ec2 = ec2_client(&moto.endpoint()).await;
        let image_id = register_test_image(&ec2, "nodepool-test-image")
            .await
            .expect("register image");
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket
            .bind("0.0.0.0:0".parse().expect("address"))
            .expect("bind a port");
        let refused_port = socket.local_addr().expect("bound address").port();
        let proxy = if lose_create_answers {
            Some(AnswerLosingProxy::start(moto.port).await)
        } else {
            None
        };
        Site {
            dir: tempfile::tempdir().expect("tempdir"),
            zookeeper,
            moto,
            proxy,
            ec2,
            image_id,
            _refused_port: socket,
            refused_port,
        }
    }

    fn config_path(&self) -> PathBuf {
        self.dir.path().join("nodepool.yaml")
    }
}

impl RestartSite for Site {
    fn write_config(&self, hold_launches: bool) {
        // Holding: the nodescan lasts far beyond the test's deadlines.
        let boot_timeout = if hold_launches { 3600 } else { 120 };
        let text = format!(
            "{zookeeper}\
labels:
  - name: small
    min-ready: 0
providers:
  - name: ec2
    driver: aws
    region-name: {REGION}
    endpoint-url: {endpoint}
    rate: 200
    boot-timeout: {boot_timeout}
    launch-timeout: 100
    cloud-images:
      - name: test-image
        image-id: {image_id}
        username: zuul
        connection-port: {port}
    pools:
      - name: main
        max-servers: 5
        host-key-checking: {hold_launches}
        labels:
          - name: small
            cloud-image: test-image
            instance-type: t3.medium
            key-name: zuul
",
            zookeeper = self.zookeeper.config_section(),
            endpoint = match &self.proxy {
                Some(proxy) if hold_launches => proxy.endpoint(),
                _ => self.moto.endpoint(),
            },
            image_id = self.image_id,
            port = self.refused_port,
        );
        let temporary = self.dir.path().join("nodepool.yaml.new");
        std::fs::write(&temporary, text).expect("write config");
        std::fs::rename(&temporary, self.config_path()).expect("replace config");
    }

    fn launcher(&self, name: &str) -> DaemonProcess {
        let log = self.dir.path().join(format!("{name}.log"));
        // The SDK's default chain finds these in the environment; no instance metadata.
        DaemonProcess::start(
            &self.config_path(),
            log,
            &[
                ("AWS_ACCESS_KEY_ID", ACCESS_KEY),
                ("AWS_SECRET_ACCESS_KEY", SECRET_KEY),
                ("AWS_EC2_METADATA_DISABLED", "true"),
                ("AWS_CONFIG_FILE", "/dev/null"),
                ("AWS_SHARED_CREDENTIALS_FILE", "/dev/null"),
            ],
        )
    }

    /// Moto's instances that are not terminated.
    async fn servers(&self) -> Vec<CloudServer> {
        instances(&self.ec2)
            .await
            .expect("describe instances")
            .into_iter()
            .filter(|(_, state, _)| state != "terminated")
            .map(|(id, state, tags)| CloudServer {
                id,
                node: tags.get(metadata_keys::NODE_ID).cloned(),
                state,
            })
            .collect()
    }

    fn server_id(&self, external_id: &ExternalId) -> String {
        match external_id {
            ExternalId::Fields(fields) => fields["instance"]
                .as_str()
                .expect("an instance id")
                .to_string(),
            ExternalId::Id(id) => panic!("an aws external id has fields, not {id}"),
        }
    }

    fn deadline(&self) -> Duration {
        WAIT
    }

    fn cloud_poll(&self) -> Duration {
        Duration::from_millis(200)
    }

    /// With the proxy: once moto has made the instance and its answer is lost.
    fn far_enough(&self, _server: &CloudServer) -> bool {
        self.proxy
            .as_ref()
            .is_none_or(|proxy| proxy.lost_an_answer.load(Ordering::SeqCst))
    }
}

/// A TCP proxy to moto that loses `RunInstances` answers: once a request carrying
/// `Action=RunInstances` passed on a connection, nothing moto sends on it reaches the client,
/// and the connection stays open (so the SDK neither gets an answer nor sees an error).
struct AnswerLosingProxy {
    port: u16,
    /// Set when a `RunInstances` request went through (its answer will be lost).
    lost_an_answer: Arc<AtomicBool>,
    accepting: tokio::task::JoinHandle<()>,
}

const RUN_INSTANCES: &[u8] = b"Action=RunInstances";

impl AnswerLosingProxy {
    async fn start(moto_port: u16) -> AnswerLosingProxy {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the proxy");
        let port = listener.local_addr().expect("proxy address").port();
        let lost_an_answer = Arc::new(AtomicBool::new(false));
        let lost = lost_an_answer.clone();
        let accepting = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                if let Ok(moto) = TcpStream::connect(("127.0.0.1", moto_port)).await {
                    tokio::spawn(relay(client, moto, lost.clone()));
                }
            }
        });
        AnswerLosingProxy {
            port,
            lost_an_answer,
            accepting,
        }
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for AnswerLosingProxy {
    fn drop(&mut self) {
        self.accepting.abort();
    }
}

/// Copies one connection both ways until a `RunInstances` request passes; from then on what
/// moto says is dropped and the client's side is held open.
async fn relay(client: TcpStream, moto: TcpStream, lost: Arc<AtomicBool>) {
    let (mut from_client, mut to_client) = client.into_split();
    let (mut from_moto, mut to_moto) = moto.into_split();
    let losing = Arc::new(AtomicBool::new(false));
    let upstream = {
        let losing = losing.clone();
        async move {
            let mut buffer = vec![0; 64 * 1024];
            // The end of what came before, for a marker split across reads.
            let mut window: Vec<u8> = Vec::new();
            loop {
                let n = match from_client.read(&mut buffer).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                window.extend_from_slice(&buffer[..n]);
                if window
                    .windows(RUN_INSTANCES.len())
                    .any(|w| w == RUN_INSTANCES)
                {
                    // Before moto sees the request, so its whole answer is dropped.
                    losing.store(true, Ordering::SeqCst);
                }
                let keep_from = window.len().saturating_sub(RUN_INSTANCES.len());
                window.drain(..keep_from);
                if to_moto.write_all(&buffer[..n]).await.is_err() {
                    break;
                }
                if losing.load(Ordering::SeqCst) {
                    lost.store(true, Ordering::SeqCst);
                }
            }
        }
    };
    let downstream = async move {
        let mut buffer = vec![0; 64 * 1024];
        loop {
            let n = match from_moto.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            if losing.load(Ordering::SeqCst) {
                continue;
            }
            if to_client.write_all(&buffer[..n]).await.is_err() {
                return;
            }
        }
        if losing.load(Ordering::SeqCst) {
            // Moto closed: keep the client waiting rather than let it see the end.
            std::future::pending::<()>().await;
        }
        drop(to_client);
    };
    tokio::join!(upstream, downstream);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_aws_launcher_killed_mid_launch_leaves_no_instance_after_a_restart() {
    let site = Site::new(false).await;
    let store = site.zookeeper.connect().await;
    killed_mid_launch_then_restarted(&site, &store, KillPoint::ServerListed).await;
    let _ = store.backend().close().await;
}

/// Killed before (or while) `RunInstances` answers: an instance may exist that the node
/// record does not name; leak cleanup finds it by its tags.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_aws_launcher_killed_as_its_node_starts_building_leaks_no_instance() {
    let site = Site::new(false).await;
    let store = site.zookeeper.connect().await;
    killed_mid_launch_then_restarted(&site, &store, KillPoint::NodeBuilding).await;
    let _ = store.backend().close().await;
}

/// `RunInstances`' answer never arrives: the instance exists, tagged with the node, but the
/// node record does not name it when the launcher is killed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_aws_launcher_killed_before_run_instances_answers_leaks_no_instance() {
    let site = Site::new(true).await;
    let store = site.zookeeper.connect().await;
    killed_mid_launch_then_restarted(&site, &store, KillPoint::ServerListed).await;
    let _ = store.backend().close().await;
}
