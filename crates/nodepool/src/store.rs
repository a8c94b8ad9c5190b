//! Opening the store a configuration names: ZooKeeper when it lists `zookeeper-servers`,
//! the embedded SQLite database otherwise.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use nodepool_config::Config;
use nodepool_store::{SqliteBackend, SqliteOptions, Store};
use nodepool_store_zk::{ZooKeeperBackend, ZooKeeperOptions, ZooKeeperTls};

/// Where the embedded store lives when the configuration does not say (`database`).
pub const DEFAULT_DATABASE: &str = "/var/lib/nodepool/nodepool.db";

/// Connects to the configured store and creates the component directories, as every
/// Nodepool process does on connect.
pub async fn open(config: &Config) -> anyhow::Result<Store> {
    let store = match &config.zookeeper {
        Some(zookeeper) => {
            let servers = zookeeper.servers.iter().map(|s| s.address());
            let mut options = ZooKeeperOptions::new(servers);
            options.chroot = zookeeper.chroot.clone();
            options.session_timeout = Duration::from_secs_f64(zookeeper.timeout);
            match &zookeeper.tls {
                Some(tls) => {
                    options.tls = Some(ZooKeeperTls {
                        cert: tls.cert.clone(),
                        key: tls.key.clone(),
                        ca: tls.ca.clone(),
                    })
                }
                None => tracing::warn!(
                    "connecting to ZooKeeper without TLS (no zookeeper-tls); Python Nodepool refuses this, use it only for development"
                ),
            }
            let backend = ZooKeeperBackend::connect(options)
                .await
                .with_context(|| format!("cannot connect to ZooKeeper at {}", zookeeper.hosts()))?;
            Store::new(Arc::new(backend))
        }
        None => {
            let path = config
                .database
                .clone()
                .unwrap_or_else(|| PathBuf::from(DEFAULT_DATABASE));
            let backend = SqliteBackend::open(SqliteOptions::new(&path))
                .await
                .with_context(|| format!("cannot open the embedded store at {}", path.display()))?;
            Store::new(Arc::new(backend))
        }
    };
    store
        .components()
        .ensure_dirs()
        .await
        .context("cannot create the component directories")?;
    Ok(store)
}

/// Runs one admin command's store work on a small runtime and closes the session after.
pub fn run<T>(
    config: &Config,
    work: impl AsyncFnOnce(&Store) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start a runtime")?;
    runtime.block_on(async {
        let store = open(config).await?;
        let result = work(&store).await;
        if let Err(e) = store.backend().close().await {
            tracing::debug!(error = %e, "closing the store session failed");
        }
        result
    })
}
