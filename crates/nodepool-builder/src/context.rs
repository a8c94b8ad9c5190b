//! What every builder loop shares: the store, the drivers, the configuration as last
//! loaded, provider objects, the worker board and the shutdown signal.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use nodepool_config::{Config, Provider as ProviderConfig};
use nodepool_driver::{DriverRegistry, Provider};
use nodepool_store::Store;
use tokio::sync::watch;

use crate::BuilderOptions;
use nodepool_model::workers::Workers;

/// Wall-clock seconds since the epoch, as Nodepool writes `state_time`.
/// Logs a failed pass of a builder loop (`subject`: the worker, or the image a step was for). One the store connection caused is a
/// WARNING: the session may well survive (a ZooKeeper server restarting, a leader lost) and
/// the next pass tries again, as the launcher's loops say it. Anything else is an ERROR.
pub fn log_failure(error: &anyhow::Error, subject: &str, what: &str) {
    let connection = error.chain().any(|cause| {
        matches!(
            cause.downcast_ref::<nodepool_store::StoreError>(),
            Some(nodepool_store::StoreError::Suspended | nodepool_store::StoreError::SessionLost)
        )
    });
    let error = format!("{error:#}");
    if connection {
        tracing::warn!(subject, error, "{what} (store connection; trying again)");
    } else {
        tracing::error!(subject, error, "{what}");
    }
}

pub fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// The configuration with the file stamps it was read at.
#[derive(Debug)]
struct LoadedConfig {
    stamp: Vec<Option<SystemTime>>,
    config: Arc<Config>,
}

/// A provider object with the configuration it was built from.
type BuiltProvider = (ProviderConfig, Arc<dyn Provider>);

#[derive(Debug)]
pub struct Context {
    pub store: Store,
    pub drivers: DriverRegistry,
    pub options: BuilderOptions,
    /// `<images-dir>`: options first, else the configuration's `images-dir`.
    pub images_dir: PathBuf,
    /// The uuid in `<images-dir>/builder_id.txt`, recorded on every build.
    pub builder_id: String,
    /// The configuration as last loaded; every pass reloads it when a file changed.
    /// A std mutex: nothing awaits under it.
    config: Mutex<LoadedConfig>,
    /// Provider objects by name with the configuration they were built from; rebuilt when
    /// that configuration changes. A std mutex: callers clone the `Arc` out.
    providers: Mutex<BTreeMap<String, BuiltProvider>>,
    pub workers: Workers,
    pub shutdown: watch::Receiver<bool>,
}

fn config_stamp(options: &BuilderOptions) -> Vec<Option<SystemTime>> {
    std::iter::once(&options.config_path)
        .chain(options.secure_path.as_ref())
        .map(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok())
        .collect()
}

fn load_config(options: &BuilderOptions) -> anyhow::Result<Config> {
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

/// Reads `<images-dir>/builder_id.txt`, creating it with a new uuid4 on first start.
fn builder_id(images_dir: &std::path::Path) -> anyhow::Result<String> {
    let path = images_dir.join("builder_id.txt");
    match std::fs::read_to_string(&path) {
        Ok(text) if !text.trim().is_empty() => return Ok(text.trim().to_string()),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    }
    let id = uuid::Uuid::new_v4().to_string();
    std::fs::write(&path, &id).with_context(|| format!("writing {}", path.display()))?;
    Ok(id)
}

impl Context {
    pub fn start(
        store: Store,
        drivers: DriverRegistry,
        options: BuilderOptions,
        shutdown: watch::Receiver<bool>,
    ) -> anyhow::Result<Context> {
        let stamp = config_stamp(&options);
        let config = load_config(&options)?;
        let images_dir = options
            .images_dir
            .clone()
            .or_else(|| config.images_dir.clone())
            .context("No images-dir specified in config.")?;
        std::fs::create_dir_all(&images_dir)
            .with_context(|| format!("creating {}", images_dir.display()))?;
        let builder_id = builder_id(&images_dir)?;
        Ok(Context {
            store,
            drivers,
            options,
            images_dir,
            builder_id,
            config: Mutex::new(LoadedConfig {
                stamp,
                config: Arc::new(config),
            }),
            providers: Mutex::new(BTreeMap::new()),
            workers: Workers::default(),
            shutdown,
        })
    }

    /// The current configuration, reloaded first if a file changed. A configuration that
    /// no longer loads is reported and the previous one kept.
    pub fn config(&self) -> Arc<Config> {
        let stamp = config_stamp(&self.options);
        let mut loaded = self.config.lock().unwrap_or_else(PoisonError::into_inner);
        if loaded.stamp != stamp {
            match load_config(&self.options) {
                Ok(config) => {
                    tracing::info!("configuration reloaded");
                    loaded.config = Arc::new(config);
                }
                Err(e) => {
                    tracing::error!(error = %format!("{e:#}"), "keeping the previous configuration")
                }
            }
            loaded.stamp = stamp;
        }
        loaded.config.clone()
    }

    /// The provider object for a configured provider, built on first use and rebuilt when
    /// its configuration changed.
    pub fn provider(&self, config: &ProviderConfig) -> anyhow::Result<Arc<dyn Provider>> {
        let mut providers = self
            .providers
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some((built_from, provider)) = providers.get(&config.name)
            && built_from == config
        {
            return Ok(provider.clone());
        }
        let provider = self
            .drivers
            .build(config)
            .with_context(|| format!("building provider {}", config.name))?;
        providers.insert(config.name.clone(), (config.clone(), provider.clone()));
        Ok(provider)
    }

    pub fn is_stopping(&self) -> bool {
        *self.shutdown.borrow()
    }

    /// Waits `period` or until the builder stops.
    pub async fn pause(&self, period: Duration) {
        let mut shutdown = self.shutdown.clone();
        tokio::select! {
            _ = shutdown.wait_for(|s| *s) => {}
            _ = tokio::time::sleep(period) => {}
        }
    }
}
