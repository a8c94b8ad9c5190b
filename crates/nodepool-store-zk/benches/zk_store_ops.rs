//! Prints store operations per second on a real ZooKeeper (started by the testkit, over
//! plaintext and TLS) beside the embedded SQLite backend, as JSON lines.
//!
//! `cargo bench -p nodepool-store-zk --bench zk_store_ops` (`BENCH_COUNT`, default 2000).

use std::sync::Arc;

use nodepool_store::{SqliteBackend, SqliteOptions, bench};
use nodepool_store_zk::{ZooKeeperBackend, ZooKeeperOptions, ZooKeeperTls};
use nodepool_testkit::{ServerOptions, ZooKeeperServer};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let count: usize = std::env::var("BENCH_COUNT")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(2000);
    let server = ZooKeeperServer::start(ServerOptions::with_tls())
        .unwrap_or_else(|e| panic!("ZooKeeper starts: {e}"));
    let plain = ZooKeeperOptions::new([server.plain_address()]);
    let files = server.client_tls().expect("TLS files");
    let mut tls = ZooKeeperOptions::new([server.tls_address().expect("TLS port")]);
    tls.tls = Some(ZooKeeperTls {
        cert: files.cert.clone(),
        key: files.key.clone(),
        ca: files.ca.clone(),
    });
    let dir = tempfile::tempdir().expect("a temporary directory");
    let sqlite = Arc::new(
        SqliteBackend::open(SqliteOptions::new(dir.path().join("bench.db")))
            .await
            .expect("open"),
    );
    let zk_plain = Arc::new(ZooKeeperBackend::connect(plain).await.expect("connect"));
    let zk_tls = Arc::new(
        ZooKeeperBackend::connect(tls)
            .await
            .expect("connect over TLS"),
    );
    for concurrency in [1, 8] {
        let backends: [(&str, Arc<dyn nodepool_store::Backend>); 3] = [
            ("sqlite", sqlite.clone()),
            ("zookeeper", zk_plain.clone()),
            ("zookeeper-tls", zk_tls.clone()),
        ];
        for (name, backend) in backends {
            let figures = bench::measure(backend, count, concurrency)
                .await
                .expect("benchmark");
            println!("{}", bench::to_json_lines(name, &figures));
        }
    }
}
