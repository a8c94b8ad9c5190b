//! The daemons: `launcher` (`nodepool-launcher`), `builder` (`nodepool-builder`) and our
//! all-in-one `up`.
//!
//! Nodepool forks into the background and writes the `-p` PID file unless `-d` or `-f` is
//! given. We always run in the foreground (systemd and containers expect it) and say so
//! when `-p` is given without `-f`/`-d`.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use nodepool_driver::DriverRegistry;
use nodepool_launcher::{Launcher, LauncherOptions, Timing};

use crate::cli::{BuilderArgs, DaemonMode, LauncherArgs, UpArgs};
use crate::commands::{Context, not_implemented};

/// The drivers built into this binary.
pub fn drivers() -> DriverRegistry {
    let mut registry = DriverRegistry::new();
    registry.register(Arc::new(nodepool_driver_fake::FakeDriver::new()));
    registry
}

/// `nodepool launcher` / `nodepool-launcher`.
pub fn launcher(context: &Context, args: &LauncherArgs) -> anyhow::Result<ExitCode> {
    warn_about_repl(&args.mode);
    tracing::debug!(
        pidfile = %args.pidfile.display(),
        foreground = args.mode.foreground,
        no_webapp = args.no_webapp,
        "launcher options"
    );
    if !args.no_webapp {
        tracing::info!("the webapp is not served yet; running as with --no-webapp");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start a runtime")?;
    runtime.block_on(async {
        let store = crate::store::open(&context.config).await?;
        let mut options = LauncherOptions::new(
            context.settings.config.clone(),
            context.settings.secure.clone(),
        );
        if let Some(timing) = test_timing() {
            tracing::warn!("{FAST_TIMING_ENV} is set: running with test intervals");
            options.timing = timing;
        }
        let launcher = Launcher::start(store.clone(), drivers(), options).await?;
        tracing::info!("launcher running");
        wait_for_stop_signal().await?;
        tracing::info!("stopping the launcher");
        launcher.stop().await;
        if let Err(e) = store.backend().close().await {
            tracing::debug!(error = %e, "closing the store session failed");
        }
        Ok(ExitCode::SUCCESS)
    })
}

/// Test hook, not a user setting: with `NODEPOOL_TEST_FAST_TIMING=1` the launcher runs its
/// cleanup and deleted-node workers every second instead of every 60 and 5 seconds, so
/// black-box tests (`tests/launcher_restart.rs`) see crash recovery within seconds.
const FAST_TIMING_ENV: &str = "NODEPOOL_TEST_FAST_TIMING";

fn test_timing() -> Option<Timing> {
    (std::env::var(FAST_TIMING_ENV).ok()? == "1").then(|| Timing {
        idle_recheck: Duration::from_millis(250),
        config_check: Duration::from_millis(250),
        deleted_node_interval: Duration::from_secs(1),
        cleanup_interval: Duration::from_secs(1),
        ..Timing::default()
    })
}

/// SIGINT, SIGTERM and SIGUSR1 stop the daemons gracefully.
async fn wait_for_stop_signal() -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut interrupt = signal(SignalKind::interrupt()).context("installing SIGINT handler")?;
    let mut terminate = signal(SignalKind::terminate()).context("installing SIGTERM handler")?;
    let mut user1 = signal(SignalKind::user_defined1()).context("installing SIGUSR1 handler")?;
    tokio::select! {
        _ = interrupt.recv() => {}
        _ = terminate.recv() => {}
        _ = user1.recv() => {}
    }
    Ok(())
}

/// `nodepool builder` / `nodepool-builder`.
pub fn builder(context: &Context, args: &BuilderArgs) -> anyhow::Result<ExitCode> {
    warn_about_repl(&args.mode);
    tracing::debug!(
        pidfile = %args.pidfile.display(),
        foreground = args.mode.foreground,
        build_workers = args.build_workers,
        upload_workers = args.upload_workers,
        "builder options"
    );
    not_implemented(context, "builder")
}

/// `nodepool up`: launcher, builder and web server in one process.
pub fn up(context: &Context, _args: &UpArgs) -> anyhow::Result<ExitCode> {
    not_implemented(context, "up")
}

/// `--repl` opens a Python shell in Nodepool; scripts may still pass it.
fn warn_about_repl(mode: &DaemonMode) {
    if mode.repl {
        tracing::warn!("--repl (Nodepool's Python debugging shell) is not provided; ignoring it");
    }
}
