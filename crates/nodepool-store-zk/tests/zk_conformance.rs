//! The store's conformance suite against a real ZooKeeper 3.8 (Debian's `zookeeper`
//! package), once over plaintext and once over TLS with client certificates, as Nodepool
//! runs in production.
//!
//! One server per test binary (it has both ports): a JVM start costs a few seconds here,
//! and every case works under its own random root. The server lives in a static, so it is
//! never dropped; the testkit's wrapper stops it when this process exits.

use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use nodepool_store::Backend;
use nodepool_store::testing::Harness;
use nodepool_store_zk::{ZooKeeperBackend, ZooKeeperOptions, ZooKeeperTls};
use nodepool_testkit::{ServerOptions, TcpProxy, ZooKeeperServer};

fn server() -> &'static ZooKeeperServer {
    // Client and backend logs, shown for failing tests (`RUST_LOG` picks the level).
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    static SERVER: OnceLock<ZooKeeperServer> = OnceLock::new();
    SERVER.get_or_init(|| {
        ZooKeeperServer::start(ServerOptions::with_tls())
            .unwrap_or_else(|e| panic!("a ZooKeeper server with a TLS port starts: {e}"))
    })
}

struct ZooKeeperHarness {
    /// Options for direct connections to the server (address, chroot, TLS).
    direct: ZooKeeperOptions,
    /// Every client handed out with the proxy it connects through, so `expire` can find
    /// the backend behind an `Arc<dyn Backend>` (by session id) and cut it off.
    clients: Mutex<Vec<(Arc<ZooKeeperBackend>, Arc<TcpProxy>)>>,
}

impl ZooKeeperHarness {
    fn new(direct: ZooKeeperOptions) -> ZooKeeperHarness {
        ZooKeeperHarness {
            direct,
            clients: Mutex::new(Vec::new()),
        }
    }
}

/// Waits until `client` reports a session other than `old`, or `limit` passes.
async fn new_session_within(client: &Arc<dyn Backend>, old: i64, limit: Duration) -> bool {
    let mut states = client.session_state();
    let renewed = tokio::time::timeout(limit, async {
        // Every renewal ends with a state change (Lost, then Connected).
        while client.session_id() == old {
            if states.changed().await.is_err() {
                return;
            }
        }
    })
    .await;
    renewed.is_ok() && client.session_id() != old
}

#[async_trait]
impl Harness for ZooKeeperHarness {
    /// A client that reaches the server through its own proxy, so it can be cut off alone.
    async fn client(&self) -> Arc<dyn Backend> {
        let target = self.direct.servers[0].clone();
        let proxy = TcpProxy::start(target)
            .await
            .unwrap_or_else(|e| panic!("a proxy to the test server starts: {e}"));
        let mut options = self.direct.clone();
        options.servers = vec![proxy.address()];
        let backend = Arc::new(
            ZooKeeperBackend::connect(options)
                .await
                .unwrap_or_else(|e| panic!("a client connects to the test server: {e}")),
        );
        self.clients
            .lock()
            .expect("clients lock")
            .push((backend.clone(), Arc::new(proxy)));
        backend
    }

    /// Cuts the client off, takes its session over with a direct connection and closes it
    /// (the server deletes its ephemerals at once), lets the client back in, and waits for
    /// it to notice the loss and open a new session.
    async fn expire(&self, client: &Arc<dyn Backend>) {
        let old = client.session_id();
        let (backend, proxy) = self
            .clients
            .lock()
            .expect("clients lock")
            .iter()
            .find(|(backend, _)| backend.session_id() == old)
            .cloned()
            .unwrap_or_else(|| panic!("session {old:#x} belongs to a client of this harness"));
        proxy.cut();
        let expired = backend.force_expire_session(self.direct.clone()).await;
        proxy.restore();
        expired.unwrap_or_else(|e| panic!("the server closes session {old:#x} on request: {e}"));
        assert!(
            new_session_within(client, old, Duration::from_secs(20)).await,
            "the client opens a new session after its session {old:#x} expired"
        );
    }
}

fn plaintext_harness() -> ZooKeeperHarness {
    let mut options = ZooKeeperOptions::new([server().plain_address()]);
    options.chroot = Some("/conformance-plaintext".to_string());
    ZooKeeperHarness::new(options)
}

fn tls_harness() -> ZooKeeperHarness {
    let server = server();
    let files = server
        .client_tls()
        .expect("the test server was started with TLS");
    let address = server
        .tls_address()
        .expect("the test server has a TLS port");
    let mut options = ZooKeeperOptions::new([address]);
    // A nested chroot: its ancestors are created too.
    options.chroot = Some("/conformance-tls/nested".to_string());
    options.tls = Some(ZooKeeperTls {
        cert: files.cert.clone(),
        key: files.key.clone(),
        ca: files.ca.clone(),
    });
    ZooKeeperHarness::new(options)
}

mod plaintext {
    nodepool_store::conformance_tests!(super::plaintext_harness());
}

mod tls {
    nodepool_store::conformance_tests!(super::tls_harness());
}
