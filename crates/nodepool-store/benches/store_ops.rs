//! Prints store operations per second on the embedded SQLite backend (the ZooKeeper
//! backend's figures come from `nodepool-store-zk`'s bench).
//!
//! `cargo bench -p nodepool-store --bench store_ops` (`BENCH_COUNT`, default 2000).

use std::sync::Arc;

use nodepool_store::{SqliteBackend, SqliteOptions, bench};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let count: usize = std::env::var("BENCH_COUNT")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(2000);
    let dir = tempfile::tempdir().expect("a temporary directory");
    let backend = SqliteBackend::open(SqliteOptions::new(dir.path().join("bench.db")))
        .await
        .expect("open the database");
    let backend = Arc::new(backend);
    for concurrency in [1, 8] {
        let figures = bench::measure(backend.clone(), count, concurrency)
            .await
            .expect("benchmark");
        println!("{}", bench::to_json_lines("sqlite", &figures));
    }
}
