//! The daemons: `launcher` (`nodepool-launcher`), `builder` (`nodepool-builder`) and our
//! all-in-one `up`.
//!
//! Nodepool forks into the background and writes the `-p` PID file unless `-d` or `-f` is
//! given; whether we do the same is decided when the daemons exist. Until then each one
//! logs its options at DEBUG and reports that it is not implemented.

use std::process::ExitCode;

use crate::cli::{BuilderArgs, DaemonMode, LauncherArgs, UpArgs};
use crate::commands::{Context, not_implemented};

/// `nodepool launcher` / `nodepool-launcher`.
pub fn launcher(context: &Context, args: &LauncherArgs) -> anyhow::Result<ExitCode> {
    warn_about_repl(&args.mode);
    tracing::debug!(
        pidfile = %args.pidfile.display(),
        foreground = args.mode.foreground,
        no_webapp = args.no_webapp,
        "launcher options"
    );
    not_implemented(context, "launcher")
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
