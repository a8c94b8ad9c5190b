//! What every launcher task shares.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use anyhow::Context as _;
use nodepool_config::Config;
use nodepool_driver::DriverRegistry;
use nodepool_store::{Store, TreeCache, paths};
use tokio::sync::watch;

use crate::LauncherOptions;
use crate::providers::ProviderRuntime;
use crate::stats::Stats;
use crate::view::{NodeParser, PoolsParser, RequestParser};
use nodepool_model::workers::Workers;

#[derive(Debug)]
pub struct Context {
    pub store: Store,
    /// `/nodepool/nodes`, with lock contenders: what every loop reads nodes from.
    pub nodes: TreeCache,
    pub requests: TreeCache,
    /// `/nodepool/components`: registered pools decide declines and yielding.
    pub components: TreeCache,
    /// `/nodepool/images`: READY uploads decide image availability and what to boot.
    pub images: TreeCache,
    pub node_parser: NodeParser,
    pub request_parser: RequestParser,
    pub pools_parser: PoolsParser,
    pub drivers: DriverRegistry,
    pub options: LauncherOptions,
    /// The current configuration; the main loop replaces it on reload.
    pub config: watch::Sender<Arc<Config>>,
    /// Provider runtimes by name; replaced when a provider's configuration changes.
    /// A std lock: readers clone the `Arc` out and never await under it.
    pub providers: RwLock<BTreeMap<String, Arc<ProviderRuntime>>>,
    pub workers: Workers,
    pub stats: Stats,
    pub shutdown: watch::Receiver<bool>,
    /// Bumped whenever a launch or delete task finishes, to wake the loops that wait on it.
    pub progress: watch::Sender<u64>,
    ready: AtomicBool,
}

/// Reads the configuration files' modification times, to notice edits.
pub fn config_stamp(options: &LauncherOptions) -> Vec<Option<SystemTime>> {
    std::iter::once(&options.config_path)
        .chain(options.secure_path.as_ref())
        .map(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok())
        .collect()
}

pub fn load_config(options: &LauncherOptions) -> anyhow::Result<Config> {
    let loaded = nodepool_config::load_config(
        &options.config_path,
        options.secure_path.as_deref(),
        &nodepool_config::nodepool_env(),
    )
    .map_err(|e| anyhow::anyhow!("{e}"))
    .with_context(|| format!("loading {}", options.config_path.display()))?;
    for warning in &loaded.warnings {
        tracing::warn!("{warning}");
    }
    Ok(loaded.config)
}

impl Context {
    pub async fn start(
        store: Store,
        drivers: DriverRegistry,
        options: LauncherOptions,
        shutdown: watch::Receiver<bool>,
    ) -> anyhow::Result<Arc<Context>> {
        let config = load_config(&options)?;
        for dir in [
            paths::NODES,
            paths::REQUESTS,
            paths::REQUEST_LOCKS,
            paths::IMAGES,
        ] {
            store.ensure_path(dir).await?;
        }
        store.components().ensure_dirs().await?;
        let backend = store.backend().clone();
        let nodes =
            TreeCache::start_with(backend.clone(), paths::NODES, paths::is_node_lock).await?;
        let requests = TreeCache::start(backend.clone(), paths::REQUESTS).await?;
        let components = TreeCache::start(backend.clone(), paths::COMPONENTS).await?;
        let images = TreeCache::start(backend, paths::IMAGES).await?;
        let (config, _) = watch::channel(Arc::new(config));
        let (progress, _) = watch::channel(0);
        let stats = match &options.statsd {
            Some((host, port)) => Stats::to(host, *port),
            None => Stats::from_env(),
        };
        Ok(Arc::new(Context {
            store,
            nodes,
            requests,
            components,
            images,
            node_parser: NodeParser::default(),
            request_parser: RequestParser::default(),
            pools_parser: PoolsParser::default(),
            drivers,
            options,
            config,
            providers: RwLock::new(BTreeMap::new()),
            workers: Workers::default(),
            stats,
            shutdown,
            progress,
            ready: AtomicBool::new(false),
        }))
    }

    pub fn config(&self) -> Arc<Config> {
        self.config.borrow().clone()
    }

    pub fn provider(&self, name: &str) -> Option<Arc<ProviderRuntime>> {
        self.providers
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .cloned()
    }

    pub fn providers(&self) -> Vec<Arc<ProviderRuntime>> {
        self.providers
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect()
    }

    pub fn is_stopping(&self) -> bool {
        *self.shutdown.borrow()
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst)
    }

    pub fn set_ready(&self) {
        self.ready.store(true, Ordering::SeqCst);
    }

    pub fn progressed(&self) {
        self.progress.send_modify(|n| *n += 1);
    }

    /// Every node in the cache, shared between callers until the cache changes.
    pub fn nodes_view(&self) -> Arc<Vec<crate::view::NodeEntry>> {
        self.node_parser.snapshot(&self.nodes)
    }

    /// The registered pool components.
    pub fn pools_view(&self) -> Arc<Vec<nodepool_model::PoolDetails>> {
        self.pools_parser.pools(&self.components)
    }

    pub fn requests_view(&self) -> Vec<crate::view::RequestEntry> {
        self.request_parser.requests(&self.requests)
    }

    /// Ids of the requests in the cache (no parsing).
    pub fn request_ids(&self) -> std::collections::HashSet<nodepool_model::RequestId> {
        self.requests
            .children(paths::REQUESTS)
            .iter()
            .filter_map(|n| nodepool_model::RequestId::parse(n).ok())
            .collect()
    }

    /// Waits until one of the caches changes, a task finishes, the deadline passes or the
    /// launcher stops.
    pub async fn wait_for_change(&self, watches: &mut Watches, deadline: Duration) {
        self.wait_for_change_batched(watches, deadline, Duration::ZERO)
            .await;
    }

    /// As [`Context::wait_for_change`]; when a change is what woke it, waits `batch` longer
    /// (unless stopping) so the changes close behind it are handled by one pass.
    pub async fn wait_for_change_batched(
        &self,
        watches: &mut Watches,
        deadline: Duration,
        batch: Duration,
    ) {
        let mut shutdown = self.shutdown.clone();
        let changed = tokio::select! {
            _ = watches.nodes.changed(), if watches.use_nodes => true,
            _ = watches.requests.changed(), if watches.use_requests => true,
            _ = watches.components.changed(), if watches.use_components => true,
            _ = watches.images.changed(), if watches.use_images => true,
            _ = watches.progress.changed(), if watches.use_progress => true,
            _ = shutdown.wait_for(|s| *s) => false,
            _ = tokio::time::sleep(deadline) => false,
        };
        if changed && !batch.is_zero() {
            tokio::select! {
                _ = shutdown.wait_for(|s| *s) => {}
                _ = tokio::time::sleep(batch) => {}
            }
        }
    }

    pub fn watches(&self, nodes: bool, requests: bool, components: bool, images: bool) -> Watches {
        Watches {
            nodes: self.nodes.generation(),
            requests: self.requests.generation(),
            components: self.components.generation(),
            images: self.images.generation(),
            progress: self.progress.subscribe(),
            use_nodes: nodes,
            use_requests: requests,
            use_components: components,
            use_images: images,
            use_progress: true,
        }
    }
}

impl Watches {
    /// Whether node changes wake the loop from now on.
    pub fn follow_nodes(&mut self, follow: bool) {
        self.use_nodes = follow;
    }

    /// Whether a task's progress (a launch or delete ended, a request paused) wakes the
    /// loop: only pool workers act on it.
    pub fn follow_progress(&mut self, follow: bool) {
        self.use_progress = follow;
    }

    /// Whether request changes wake the loop from now on.
    pub fn follow_requests(&mut self, follow: bool) {
        self.use_requests = follow;
    }
}

/// The change signals one loop listens to.
#[derive(Debug)]
pub struct Watches {
    nodes: watch::Receiver<u64>,
    requests: watch::Receiver<u64>,
    components: watch::Receiver<u64>,
    images: watch::Receiver<u64>,
    progress: watch::Receiver<u64>,
    use_nodes: bool,
    use_requests: bool,
    use_components: bool,
    use_images: bool,
    use_progress: bool,
}
