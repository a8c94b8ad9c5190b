//! The daemons: `launcher` (`nodepool-launcher`), `builder` (`nodepool-builder`) and our
//! all-in-one `up`.
//!
//! Nodepool forks into the background and writes the `-p` PID file unless `-d` or `-f` is
//! given. We always run in the foreground (systemd and containers expect it) and say so
//! when `-p` is given without `-f`/`-d`.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use nodepool_builder::{Builder, BuilderOptions, Timing as BuilderTiming};
use nodepool_driver::DriverRegistry;
use nodepool_launcher::{Launcher, LauncherOptions, Timing};
use nodepool_store::Store;
use nodepool_web::server::{LabelSetting, WebState};

use crate::cli::{BuilderArgs, DaemonMode, LauncherArgs, UpArgs};
use crate::commands::Context;

/// The drivers built into this binary.
pub fn drivers() -> DriverRegistry {
    let mut registry = DriverRegistry::new();
    registry.register(Arc::new(nodepool_driver_fake::FakeDriver::new()));
    #[cfg(feature = "openstack")]
    registry.register(Arc::new(nodepool_driver_openstack::OpenStackDriver::new()));
    #[cfg(feature = "aws")]
    registry.register(Arc::new(nodepool_driver_aws::AwsDriver::new()));
    registry.register(Arc::new(nodepool_driver_container::ContainerDriver::new()));
    registry.register(Arc::new(nodepool_driver_qemu::QemuDriver::new()));
    #[cfg(feature = "kubernetes")]
    registry.register(Arc::new(nodepool_driver_kubernetes::KubernetesDriver::new()));
    #[cfg(feature = "kubernetes")]
    registry.register(Arc::new(
        nodepool_driver_kubernetes::OpenShiftPodsDriver::new(),
    ));
    registry
}

/// The launcher's runtime: one worker thread unless `TOKIO_WORKER_THREADS` says otherwise,
/// and at most 16 blocking threads.
/// The launcher waits on the store and the clouds far more than it computes (about 1.5 ms
/// of CPU per request in `nodepool-bench`, so one core serves hundreds of requests a
/// second); on one thread its tasks never migrate or wake each other across threads, which
/// measured about 20 % less CPU per request than two. ZooKeeper's socket and timers are on
/// this runtime too (the vendored client, `vendor/zookeeper-client/PATCHED.md`); SQLite
/// calls and other blocking work have their own pool.
fn launcher_runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if std::env::var_os("TOKIO_WORKER_THREADS").is_none() {
        builder.worker_threads(1);
    }
    // The SQLite store runs each call on a blocking thread, one at a time on its
    // connection: without a cap, 200 requests in flight grew the pool to 360 threads (and
    // the peak RSS threefold) for no throughput.
    builder.max_blocking_threads(16);
    builder
        .enable_all()
        .build()
        .context("cannot start a runtime")
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
    let runtime = launcher_runtime()?;
    runtime.block_on(async {
        let store = crate::store::open(&context.config).await?;
        // Bound before the launcher starts, so a taken port fails the start.
        let listener = if args.no_webapp {
            None
        } else {
            Some(Webapp::bind(context).await?)
        };
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
        let webapp = listener
            .map(|listener| Webapp::start(context, store.clone(), listener, launcher.observer()))
            .transpose()?;
        let stop = wait_for_stop_signal();
        tokio::pin!(stop);
        match &webapp {
            Some(webapp) => {
                // `/ready` follows the launcher's first completed main-loop pass, which the
                // launcher only offers as a flag: look at it until it is set.
                let mut check = tokio::time::interval(READY_CHECK);
                loop {
                    tokio::select! {
                        result = &mut stop => break result?,
                        _ = check.tick(), if !webapp.ready.load(Ordering::SeqCst) => {
                            if launcher.is_ready() {
                                tracing::info!("launcher ready; the webapp's /ready says OK");
                                webapp.ready.store(true, Ordering::SeqCst);
                            }
                        }
                    }
                }
            }
            None => stop.await?,
        }
        tracing::info!("stopping the launcher");
        if let Some(webapp) = webapp {
            webapp.stop().await;
        }
        launcher.stop().await;
        if let Err(e) = store.backend().close().await {
            tracing::debug!(error = %e, "closing the store session failed");
        }
        Ok(ExitCode::SUCCESS)
    })
}

/// How often the launcher's readiness is looked at until it is ready.
const READY_CHECK: Duration = Duration::from_millis(100);

/// The launcher's webapp (spec 6) on `webapp.listen_address:webapp.port`, on a thread and
/// runtime of its own (`nodepool_web::server::serve_in_thread`), so no web client can take
/// the launcher's runtime or its ZooKeeper session from it.
struct Webapp {
    /// What `/ready` reports; set once the launcher is ready.
    ready: Arc<AtomicBool>,
    server: nodepool_web::server::ServerThread,
}

impl Webapp {
    async fn bind(context: &Context) -> anyhow::Result<std::net::TcpListener> {
        let settings = &context.config.webapp;
        let listener =
            tokio::net::TcpListener::bind((settings.listen_address.as_str(), settings.port))
                .await
                .with_context(|| {
                    format!(
                        "cannot listen on {}:{} for the webapp",
                        settings.listen_address, settings.port
                    )
                })?;
        let address = listener
            .local_addr()
            .map(|a| a.to_string())
            .unwrap_or_default();
        tracing::info!(%address, "webapp listening");
        Ok(listener.into_std()?)
    }

    /// Serves on the bound listener, with the launcher's in-process view.
    fn start(
        context: &Context,
        store: Store,
        listener: std::net::TcpListener,
        launcher: nodepool_launcher::Observer,
    ) -> anyhow::Result<Webapp> {
        let labels = context
            .config
            .labels
            .values()
            .map(|label| LabelSetting {
                name: label.name.clone(),
                min_ready: label.min_ready,
            })
            .collect();
        let ready = Arc::new(AtomicBool::new(false));
        let state = WebState::with_launcher(store, ready.clone(), labels, launcher);
        let server = nodepool_web::server::serve_in_thread(
            listener,
            state,
            nodepool_web::server::Limits::default(),
        )
        .context("cannot start the webapp's thread")?;
        Ok(Webapp { ready, server })
    }

    async fn stop(self) {
        let stopped = tokio::task::spawn_blocking(move || self.server.stop()).await;
        match stopped {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "the webapp failed"),
            Err(e) => tracing::warn!(error = %e, "the webapp's thread ended abnormally"),
        }
    }
}

/// Test hook, not a user setting: with `NODEPOOL_TEST_FAST_TIMING=1` the launcher runs its
/// cleanup and deleted-node workers every second instead of every 60 and 5 seconds, and gives
/// a hung delete up after 20 s instead of 10 minutes, so black-box tests
/// (`tests/launcher_restart.rs`) and fault runs (`nodepool-bench --faults`) see recovery
/// within seconds.
const FAST_TIMING_ENV: &str = "NODEPOOL_TEST_FAST_TIMING";

fn test_timing() -> Option<Timing> {
    (std::env::var(FAST_TIMING_ENV).ok()? == "1").then(|| Timing {
        idle_recheck: Duration::from_millis(250),
        config_check: Duration::from_millis(250),
        deleted_node_interval: Duration::from_secs(1),
        cleanup_interval: Duration::from_secs(1),
        // A hung delete call is given up after this long instead of 10 minutes.
        delete_timeout: Duration::from_secs(20),
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
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start a runtime")?;
    // Checked before the store opens, so a bad configuration creates no database file.
    require_images_dir(context)?;
    runtime.block_on(async {
        let store = crate::store::open(&context.config).await?;
        let mut options = BuilderOptions::new(
            context.settings.config.clone(),
            context.settings.secure.clone(),
        );
        options.build_workers = args.build_workers;
        options.upload_workers = args.upload_workers;
        if test_timing().is_some() {
            tracing::warn!("{FAST_TIMING_ENV} is set: running with test intervals");
            options.timing = BuilderTiming {
                build_interval: Duration::from_millis(250),
                upload_interval: Duration::from_millis(250),
                cleanup_interval: Duration::from_secs(1),
            };
        }
        let builder = Builder::start(store.clone(), drivers(), options).await?;
        tracing::info!("builder running");
        wait_for_stop_signal().await?;
        tracing::info!("stopping the builder");
        builder.stop().await;
        if let Err(e) = store.backend().close().await {
            tracing::debug!(error = %e, "closing the store session failed");
        }
        Ok(ExitCode::SUCCESS)
    })
}

/// `nodepool up`: builder, launcher and web server in one process on the configured store
/// (the embedded SQLite file unless the configuration names ZooKeeper). It prints how to
/// reach each node as it becomes ready; SIGINT (Ctrl-C) stops everything, leaving nodes,
/// images and the store for the next `up` to reuse.
pub fn up(context: &Context, _args: &UpArgs) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start a runtime")?;
    require_images_dir(context)?;
    runtime.block_on(async {
        let store = crate::store::open(&context.config).await?;
        let listener = Webapp::bind(context).await?;
        let builder_options = BuilderOptions::new(
            context.settings.config.clone(),
            context.settings.secure.clone(),
        );
        let builder = Builder::start(store.clone(), drivers(), builder_options).await?;
        let mut launcher_options = LauncherOptions::new(
            context.settings.config.clone(),
            context.settings.secure.clone(),
        );
        if let Some(timing) = test_timing() {
            tracing::warn!("{FAST_TIMING_ENV} is set: running with test intervals");
            launcher_options.timing = timing;
        }
        let launcher = Launcher::start(store.clone(), drivers(), launcher_options).await?;
        let webapp = Webapp::start(context, store.clone(), listener, launcher.observer())?;
        let address = format!(
            "http://{}:{}/dashboard",
            context.config.webapp.listen_address, context.config.webapp.port
        );
        println!("nodepool up: builder, launcher and web running; dashboard at {address}");
        println!("Images are built first (minutes the first time); Ctrl-C stops.");
        let reporter = tokio::spawn(report_ready_nodes(
            store.clone(),
            Arc::new(context.config.clone()),
        ));
        let stop = wait_for_stop_signal();
        tokio::pin!(stop);
        let mut check = tokio::time::interval(READY_CHECK);
        loop {
            tokio::select! {
                result = &mut stop => break result?,
                _ = check.tick(), if !webapp.ready.load(Ordering::SeqCst) => {
                    if launcher.is_ready() {
                        webapp.ready.store(true, Ordering::SeqCst);
                    }
                }
            }
        }
        println!("nodepool up: stopping (nodes and images stay for the next run)");
        reporter.abort();
        webapp.stop().await;
        launcher.stop().await;
        builder.stop().await;
        if let Err(e) = store.backend().close().await {
            tracing::debug!(error = %e, "closing the store session failed");
        }
        Ok(ExitCode::SUCCESS)
    })
}

/// How often `up` looks for nodes that became ready.
const REPORT_INTERVAL: Duration = Duration::from_secs(2);

/// Prints one line per node the first time it is seen READY: how to log in to it.
async fn report_ready_nodes(store: Store, config: Arc<nodepool_config::Config>) {
    let mut reported = std::collections::BTreeSet::new();
    loop {
        if let Ok(ids) = store.nodes().ids().await {
            for id in ids {
                if reported.contains(&id) {
                    continue;
                }
                let Ok(Some(node)) = store.nodes().get(id).await else {
                    continue;
                };
                if node.value.state != nodepool_model::NodeState::Ready {
                    continue;
                }
                reported.insert(id);
                println!("{}", how_to_reach(&config, id, &node.value));
            }
        }
        tokio::time::sleep(REPORT_INTERVAL).await;
    }
}

/// `node 0000000001 (debian on local-qemu) is ready: ssh -i KEY zuul@172.31.224.2` (`-p PORT`
/// when the port is not 22).
fn how_to_reach(
    config: &nodepool_config::Config,
    id: nodepool_model::NodeId,
    node: &nodepool_model::Node,
) -> String {
    let provider = node.provider.clone().unwrap_or_default();
    let key = config
        .providers
        .get(&provider)
        .and_then(|p| match &p.settings {
            nodepool_config::ProviderSettings::Qemu(q) => Some(q.ssh_key.clone()),
            nodepool_config::ProviderSettings::Container(c) => Some(c.ssh_key.clone()),
            _ => None,
        });
    let port = match &node.connection_port {
        Some(nodepool_model::ConnectionPort::Port(p)) if *p != 22 => format!(" -p {p}"),
        _ => String::new(),
    };
    let user = node.username.clone().unwrap_or_else(|| "root".into());
    let host = node.interface_ip.clone().unwrap_or_default();
    let key = key
        .map(|k| format!(" -i {}", k.display()))
        .unwrap_or_default();
    format!(
        "node {id} ({} on {provider}) is ready: ssh{key}{port} {user}@{host}",
        node.node_type.join(",")
    )
}

/// The builder's first check (Nodepool's message).
fn require_images_dir(context: &Context) -> anyhow::Result<()> {
    if context.config.images_dir.is_none() {
        anyhow::bail!("No images-dir specified in config.");
    }
    Ok(())
}

/// `--repl` opens a Python shell in Nodepool; scripts may still pass it.
fn warn_about_repl(mode: &DaemonMode) {
    if mode.repl {
        tracing::warn!("--repl (Nodepool's Python debugging shell) is not provided; ignoring it");
    }
}
