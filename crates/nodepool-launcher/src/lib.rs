//! The launcher as a library (spec section 2, DESIGN.md section 6).
//!
//! [`Launcher::start`] runs, on the caller's tokio runtime: one pool worker per
//! provider-pool (each registered as a `pool` component), the main loop (config reload,
//! provider reconciliation, min-ready), the deleted-node worker and the cleanup worker.
//! Loops are level-triggered: each pass re-derives its work from the caches and waits for
//! the next change (a watch), a launch finishing, or a deadline, never a fixed sleep.

mod cleanup;
mod clock;
mod context;
pub mod decide;
mod deleter;
mod handler;
mod launch;
mod main_loop;
mod pool_worker;
mod providers;
mod static_sync;
pub mod stats;
mod view;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use nodepool_driver::DriverRegistry;
use nodepool_store::Store;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use nodepool_model::workers::{WorkerState, WorkerStatus};
pub use stats::LaunchTally;

/// Intervals and ages. Defaults are Nodepool's (spec appendix A); tests shorten them.
#[derive(Debug, Clone)]
pub struct Timing {
    /// Longest a loop waits without any change before re-checking anyway.
    pub idle_recheck: Duration,
    /// How often the config files are checked for changes.
    pub config_check: Duration,
    /// Deleted-node worker fallback period (it also runs on every node change).
    pub deleted_node_interval: Duration,
    /// Cleanup worker period (leaks, lost requests, ages, stale locks).
    pub cleanup_interval: Duration,
    /// Request lock directories without a request are removed after this long.
    pub request_lock_age: Duration,
    /// Provider quota limits are re-read after this long.
    pub quota_cache_age: Duration,
    /// At quota, no unused node is deleted while one of the pool's nodes started deleting
    /// less than this long ago.
    pub recent_delete_guard: Duration,
    /// A delete state machine is given up (and retried later) after this long.
    pub delete_timeout: Duration,
    /// After a change wakes the deleted-node worker or the main loop, they wait this long
    /// for more before a pass: under load nodes change hundreds of times a second, and each
    /// pass walks every node.
    pub change_batching: Duration,
    /// The console log of a failed launch attempt (`console-log: true`) is given up after
    /// this long: it only goes to the log, and the next attempt waits for it.
    pub console_log_timeout: Duration,
}

impl Default for Timing {
    fn default() -> Timing {
        Timing {
            idle_recheck: Duration::from_secs(1),
            config_check: Duration::from_secs(1),
            deleted_node_interval: Duration::from_secs(5),
            cleanup_interval: Duration::from_secs(60),
            request_lock_age: Duration::from_secs(8 * 3600),
            quota_cache_age: Duration::from_secs(300),
            recent_delete_guard: Duration::from_secs(300),
            delete_timeout: Duration::from_secs(600),
            change_batching: Duration::from_millis(20),
            console_log_timeout: Duration::from_secs(60),
        }
    }
}

/// Where the configuration comes from and how to run.
#[derive(Debug, Clone)]
pub struct LauncherOptions {
    pub config_path: PathBuf,
    pub secure_path: Option<PathBuf>,
    /// `socket.gethostname()`: component names.
    pub hostname: String,
    /// `socket.getfqdn()`: pool worker ids.
    pub fqdn: String,
    pub timing: Timing,
    /// The statsd collector as (host, port); `None` reads `STATSD_HOST` and `STATSD_PORT`
    /// as Nodepool does. Tests set it: changing the environment is unsafe in a threaded
    /// test binary.
    pub statsd: Option<(String, u16)>,
}

impl LauncherOptions {
    /// Options with this machine's host name and Nodepool's timing.
    pub fn new(config_path: PathBuf, secure_path: Option<PathBuf>) -> LauncherOptions {
        let hostname = clock::hostname();
        LauncherOptions {
            config_path,
            secure_path,
            fqdn: hostname.clone(),
            hostname,
            timing: Timing::default(),
            statsd: None,
        }
    }
}

/// A running launcher.
#[derive(Debug)]
pub struct Launcher {
    context: Arc<context::Context>,
    shutdown: watch::Sender<bool>,
    main: JoinHandle<()>,
}

impl Launcher {
    /// Loads the configuration, starts the caches and every worker.
    pub async fn start(
        store: Store,
        drivers: DriverRegistry,
        options: LauncherOptions,
    ) -> anyhow::Result<Launcher> {
        let (shutdown, shutdown_rx) = watch::channel(false);
        let context = context::Context::start(store, drivers, options, shutdown_rx)
            .await
            .context("starting the launcher")?;
        let main = tokio::spawn(main_loop::run(context.clone()));
        Ok(Launcher {
            context,
            shutdown,
            main,
        })
    }

    /// The state of every worker loop, for the CLI and web.
    pub fn workers(&self) -> Vec<WorkerStatus> {
        self.context.workers.snapshot()
    }

    /// Whether the first main-loop pass has finished (webapp `/ready`).
    pub fn is_ready(&self) -> bool {
        self.context.is_ready()
    }

    /// A handle the webapp keeps to read the launcher's in-process state.
    pub fn observer(&self) -> Observer {
        Observer {
            context: self.context.clone(),
        }
    }

    /// Graceful stop: pool workers release paused requests and unregister, launches in
    /// flight are abandoned (their nodes stay BUILDING and unlocked, so any launcher deletes
    /// them), then every task is awaited.
    pub async fn stop(self) {
        let _ = self.shutdown.send(true);
        if let Err(e) = self.main.await {
            tracing::warn!(error = %e, "launcher main loop ended abnormally");
        }
    }
}

/// Reads what only the launcher process knows: launch results, worker states, quota use.
#[derive(Debug, Clone)]
pub struct Observer {
    context: Arc<context::Context>,
}

/// A snapshot for `/metrics` and the dashboard.
#[derive(Debug, Clone, PartialEq)]
pub struct Observations {
    pub ready: bool,
    pub launches: Vec<LaunchTally>,
    pub workers: Vec<WorkerStatus>,
    pub providers: Vec<ProviderUse>,
}

/// Quota use of one provider: the cloud's limits as last read, and per pool its limits
/// and what nodepool's nodes use.
#[derive(Debug, Clone, PartialEq)]
pub struct ProviderUse {
    pub name: String,
    pub driver: String,
    /// Cloud limits minus unmanaged use, when read; finite resources only.
    pub cloud_limits: Option<std::collections::BTreeMap<String, f64>>,
    pub pools: Vec<PoolUse>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PoolUse {
    pub name: String,
    /// Finite limits only (`instances` from max-servers, `max-*`).
    pub limits: std::collections::BTreeMap<String, f64>,
    pub used: std::collections::BTreeMap<String, f64>,
}

fn finite(q: &nodepool_driver::Quota) -> std::collections::BTreeMap<String, f64> {
    q.resources()
        .filter(|(_, v)| v.is_finite())
        .map(|(k, v)| (k.to_string(), v))
        .collect()
}

impl Observer {
    pub fn observe(&self) -> Observations {
        let ctx = &self.context;
        let nodes = ctx.nodes_view();
        let providers = ctx
            .providers()
            .iter()
            .map(|rt| ProviderUse {
                name: rt.name().to_string(),
                driver: rt.config.driver.name().to_string(),
                cloud_limits: rt.cached_limits().map(|q| finite(&q)),
                pools: rt
                    .config
                    .pools
                    .iter()
                    .map(|pool| PoolUse {
                        name: pool.name.clone(),
                        limits: finite(&providers::pool_limits(pool)),
                        used: finite(&rt.usage(&nodes, Some(&pool.name))),
                    })
                    .collect(),
            })
            .collect();
        Observations {
            ready: ctx.is_ready(),
            launches: ctx.stats.launches(),
            workers: ctx.workers.snapshot(),
            providers,
        }
    }
}
