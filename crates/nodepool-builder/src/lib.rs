//! The image builder (spec section 3, DESIGN.md section 7).
//!
//! [`Builder::start`] runs, on the caller's tokio runtime, Nodepool's three kinds of loops:
//! build workers (scheduled builds by `rebuild-age` and manual `image-build` requests, one
//! build per image cluster-wide under the image build lock), upload workers (the newest
//! READY build this builder holds, to every provider that takes the image, under the upload
//! lock) and a janitor (retention of builds, uploads and local files).
//!
//! Every rule lives in [`decide`] as a pure function over plain data (the validated
//! [`nodepool_config::Config`] and the [`nodepool_model`] records of one image), unit-tested
//! without a store, a cloud or a disk. The loops (`build`, `upload`, `janitor`) read the
//! store and the images directory, ask those functions what to do, and apply the answer
//! under Nodepool's locks (spec 3.8). Whatever depends on a lock being free (is that
//! BUILDING build or UPLOADING upload still in progress?) is decided by the loop.
//!
//! Architecture invariant: [`decide`] does no I/O; the loops hold no state between passes
//! beyond the configuration and provider objects, so any builder can pick up any work.

// Tests may unwrap: a panic there is a test failure with a backtrace.
#![cfg_attr(test, allow(clippy::unwrap_used))]

mod build;
mod context;
pub mod decide;
mod janitor;
mod records;
mod shlex;
mod upload;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use nodepool_driver::DriverRegistry;
use nodepool_model::component::{Component, ComponentRole};
use nodepool_store::{Registration, Store};
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use build::dib_command_line;
pub use nodepool_model::workers::{WorkerState, WorkerStatus};

/// Loop periods. Defaults are Nodepool's (spec 3.1); tests shorten them.
#[derive(Debug, Clone)]
pub struct Timing {
    /// How often each build worker looks for images to build.
    pub build_interval: Duration,
    /// How often each upload worker looks for builds to upload.
    pub upload_interval: Duration,
    /// How often the janitor applies retention.
    pub cleanup_interval: Duration,
}

impl Default for Timing {
    fn default() -> Timing {
        Timing {
            build_interval: Duration::from_secs(10),
            upload_interval: Duration::from_secs(10),
            cleanup_interval: Duration::from_secs(60),
        }
    }
}

/// Where the configuration comes from and how to run.
#[derive(Debug, Clone)]
pub struct BuilderOptions {
    pub config_path: PathBuf,
    pub secure_path: Option<PathBuf>,
    /// Overrides the configuration's `images-dir` (tests); one of them must be set.
    pub images_dir: Option<PathBuf>,
    /// Recorded as `builder` on every build (Nodepool: the FQDN).
    pub hostname: String,
    pub timing: Timing,
    /// `--build-workers` (default 1).
    pub build_workers: usize,
    /// `--upload-workers` (default 4).
    pub upload_workers: usize,
}

impl BuilderOptions {
    /// Options with this machine's host name, Nodepool's timing and worker counts.
    pub fn new(config_path: PathBuf, secure_path: Option<PathBuf>) -> BuilderOptions {
        BuilderOptions {
            config_path,
            secure_path,
            images_dir: None,
            hostname: hostname(),
            timing: Timing::default(),
            build_workers: 1,
            upload_workers: 4,
        }
    }
}

/// This machine's host name (`/proc/sys/kernel/hostname`, then `$HOSTNAME`).
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".to_string())
}

/// A running builder.
#[derive(Debug)]
pub struct Builder {
    context: Arc<context::Context>,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    /// Our `builder` component (spec 1.9), removed at stop. Nothing reads it but the
    /// CLI and other tools listing components; it vanishes with the session as well.
    registration: Registration,
}

impl Builder {
    /// Loads the configuration, reads (or creates) the builder id and starts every loop.
    pub async fn start(
        store: Store,
        drivers: DriverRegistry,
        options: BuilderOptions,
    ) -> anyhow::Result<Builder> {
        let (shutdown, shutdown_rx) = watch::channel(false);
        store
            .ensure_path(nodepool_store::paths::IMAGES)
            .await
            .context("creating the images directory in the store")?;
        // Nodepool registers the builder as `stopped` and never updates it (spec 1.9).
        let component = Component::new(
            &options.hostname,
            Some(env!("CARGO_PKG_VERSION")),
            ComponentRole::Builder,
        );
        let context = Arc::new(
            context::Context::start(store, drivers, options, shutdown_rx)
                .context("starting the builder")?,
        );
        let registration = context
            .store
            .components()
            .register(&component)
            .await
            .context("registering the builder component")?;
        let mut tasks = Vec::new();
        for n in 0..context.options.build_workers.max(1) {
            tasks.push(tokio::spawn(build::run(
                context.clone(),
                format!("build-worker-{n}"),
            )));
        }
        for n in 0..context.options.upload_workers.max(1) {
            tasks.push(tokio::spawn(upload::run(
                context.clone(),
                format!("upload-worker-{n}"),
            )));
        }
        tasks.push(tokio::spawn(janitor::run(
            context.clone(),
            "janitor".to_string(),
        )));
        tracing::info!(
            builder_id = %context.builder_id,
            images_dir = %context.images_dir.display(),
            "builder started"
        );
        Ok(Builder {
            context,
            shutdown,
            tasks,
            registration,
        })
    }

    /// The uuid recorded on this builder's builds (`<images-dir>/builder_id.txt`).
    pub fn builder_id(&self) -> &str {
        &self.context.builder_id
    }

    /// The state of every worker loop, for the CLI and web.
    pub fn workers(&self) -> Vec<WorkerStatus> {
        self.context.workers.snapshot()
    }

    /// Graceful stop: a running build command is killed and its build recorded FAILED (the
    /// janitor removes it), an upload in flight is abandoned (its UPLOADING record has no
    /// lock holder, so the janitor removes it), then every task is awaited.
    pub async fn stop(self) {
        let _ = self.shutdown.send(true);
        for task in self.tasks {
            if let Err(e) = task.await {
                tracing::warn!(error = %e, "builder worker ended abnormally");
            }
        }
        if let Err(e) = self
            .context
            .store
            .components()
            .unregister(&self.registration)
            .await
        {
            tracing::warn!(error = %e, "cannot unregister the builder component");
        }
    }
}
