//! The store's outage cases (`nodepool_store::outage_tests!`) against real ZooKeeper 3.8:
//! a standalone server SIGKILLed and started again on its data (plaintext and TLS), and a
//! three-server ensemble over TLS whose leader is SIGKILLed (sessions move to the servers
//! left). After each outage the same sessions must see every later change through the
//! watches, caches and lock waiters they had before it.
//!
//! Each kind of service lives in a static and is shared by its cases, which take turns
//! (an outage interrupts every client of the service): a JVM start costs seconds here.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use nodepool_store::Backend;
use nodepool_store::testing::OutageHarness;
use nodepool_store_zk::{ZooKeeperBackend, ZooKeeperOptions, ZooKeeperTls};
use nodepool_testkit::{ClientTls, ServerOptions, ZooKeeperEnsemble, ZooKeeperServer};
use tokio::sync::{Mutex, OwnedMutexGuard};

/// Long enough that no session expires while a server restarts or an ensemble elects a new
/// leader on a loaded machine: the cases check watches on surviving sessions.
const SESSION_TIMEOUT: Duration = Duration::from_secs(40);

/// How long a new quorum may take to form after the leader is killed.
const ELECTION_LIMIT: Duration = Duration::from_secs(60);

fn init_logging() {
    // Client and backend logs, shown for failing tests (`RUST_LOG` picks the level).
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

fn tls_options(servers: Vec<String>, files: &ClientTls) -> ZooKeeperOptions {
    let mut options = ZooKeeperOptions::new(servers);
    options.tls = Some(ZooKeeperTls {
        cert: files.cert.clone(),
        key: files.key.clone(),
        ca: files.ca.clone(),
    });
    options
}

/// The service one kind of case interrupts.
enum Service {
    Standalone(ZooKeeperServer),
    Ensemble(ZooKeeperEnsemble),
}

impl Service {
    /// Kills the server (or the ensemble's leader) and brings the service back: the
    /// standalone server on its data and ports; the ensemble once the two servers left have
    /// a new leader, after which the old leader rejoins as a follower.
    fn interrupt(&mut self) {
        match self {
            Service::Standalone(server) => server
                .restart()
                .unwrap_or_else(|e| panic!("the ZooKeeper server restarts: {e}")),
            Service::Ensemble(ensemble) => {
                let leader = ensemble
                    .wait_for_quorum(ELECTION_LIMIT)
                    .unwrap_or_else(|e| panic!("the ensemble has a leader: {e}"));
                ensemble.server_mut(leader).stop().expect("kill the leader");
                let new_leader = ensemble
                    .wait_for_quorum(ELECTION_LIMIT)
                    .unwrap_or_else(|e| panic!("the servers left elect a leader: {e}"));
                assert_ne!(new_leader, leader, "a new leader is elected");
                ensemble
                    .server_mut(leader)
                    .start_again()
                    .unwrap_or_else(|e| panic!("the old leader rejoins: {e}"));
            }
        }
    }
}

/// One case's turn on a shared service: the guard keeps the other cases of the kind off it.
struct Turn {
    service: OwnedMutexGuard<Service>,
    options: ZooKeeperOptions,
    root: String,
}

impl Turn {
    async fn take(service: &'static OnceLock<Arc<Mutex<Service>>>, start: fn() -> Service) -> Turn {
        init_logging();
        let shared = service
            .get_or_init(|| Arc::new(Mutex::new(start())))
            .clone();
        let service = shared.lock_owned().await;
        let mut options = match &*service {
            Service::Standalone(server) => match server.client_tls() {
                Some(files) => tls_options(
                    vec![server.tls_address().expect("the server has a TLS port")],
                    files,
                ),
                None => ZooKeeperOptions::new([server.plain_address()]),
            },
            Service::Ensemble(ensemble) => tls_options(
                ensemble
                    .tls_addresses()
                    .expect("the ensemble has TLS ports"),
                ensemble.client_tls().expect("the ensemble has TLS"),
            ),
        };
        options.session_timeout = SESSION_TIMEOUT;
        let root = format!("/outage-{}", uuid::Uuid::new_v4().simple());
        options.chroot = Some(root.clone());
        Turn {
            service,
            options,
            root,
        }
    }
}

/// The harness holds the service's lock behind a std mutex only to make `outage` `&self`.
struct Harness(std::sync::Mutex<Turn>);

#[async_trait]
impl OutageHarness for Harness {
    async fn client(&self) -> Arc<dyn Backend> {
        let (options, root) = {
            let turn = self.0.lock().unwrap_or_else(|e| e.into_inner());
            (turn.options.clone(), turn.root.clone())
        };
        let backend = ZooKeeperBackend::connect(options)
            .await
            .unwrap_or_else(|e| panic!("a client connects under {root}: {e}"));
        Arc::new(backend)
    }

    async fn outage(&self) {
        tokio::task::block_in_place(|| {
            self.0
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .service
                .interrupt()
        });
    }
}

fn standalone(tls: bool) -> Service {
    let options = if tls {
        ServerOptions::with_tls()
    } else {
        ServerOptions::default()
    };
    Service::Standalone(
        ZooKeeperServer::start(options)
            .unwrap_or_else(|e| panic!("a ZooKeeper server starts: {e}")),
    )
}

async fn plaintext_restart() -> Harness {
    static SERVICE: OnceLock<Arc<Mutex<Service>>> = OnceLock::new();
    Harness(std::sync::Mutex::new(
        Turn::take(&SERVICE, || standalone(false)).await,
    ))
}

async fn tls_restart() -> Harness {
    static SERVICE: OnceLock<Arc<Mutex<Service>>> = OnceLock::new();
    Harness(std::sync::Mutex::new(
        Turn::take(&SERVICE, || standalone(true)).await,
    ))
}

async fn tls_ensemble_leader_loss() -> Harness {
    static SERVICE: OnceLock<Arc<Mutex<Service>>> = OnceLock::new();
    Harness(std::sync::Mutex::new(
        Turn::take(&SERVICE, || {
            Service::Ensemble(
                ZooKeeperEnsemble::start(3, ServerOptions::with_tls())
                    .unwrap_or_else(|e| panic!("a three-server ensemble starts: {e}")),
            )
        })
        .await,
    ))
}

mod plaintext_restart {
    nodepool_store::outage_tests!(super::plaintext_restart().await);
}

mod tls_restart {
    nodepool_store::outage_tests!(super::tls_restart().await);
}

mod tls_ensemble_leader_loss {
    nodepool_store::outage_tests!(super::tls_ensemble_leader_loss().await);
}
