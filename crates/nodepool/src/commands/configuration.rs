//! Loading `nodepool.yaml` (and the secure file) the way every command does, and reporting
//! its diagnostics through the log.

use nodepool_config::{Config, ConfigErrors, Diagnostic, Loaded, Severity};

use crate::cli::Settings;

/// Loads and validates the configuration named by `-c`/`-s`, with the `NODEPOOL_*`
/// environment variables for `%(NODEPOOL_X)` substitution.
pub fn load_and_validate(settings: &Settings) -> Result<Loaded, ConfigErrors> {
    let env = nodepool_config::nodepool_env();
    nodepool_config::load_config(&settings.config, settings.secure.as_deref(), &env)
}

/// Loads the configuration for a command that needs it. Errors are logged and give `None`.
/// Warnings are logged at WARNING for daemons, which read the configuration once at start,
/// and at DEBUG for admin commands, so `nodepool list` does not repeat them on every call
/// (Nodepool has no such warnings; `config-validate` shows them).
pub fn load(settings: &Settings, is_daemon: bool) -> Option<Config> {
    match load_and_validate(settings) {
        Ok(loaded) => {
            for warning in &loaded.warnings {
                if is_daemon {
                    tracing::warn!("{warning}");
                } else {
                    tracing::debug!("{warning}");
                }
            }
            Some(loaded.config)
        }
        Err(errors) => {
            log_diagnostics(&errors.0);
            let count = errors.errors().count();
            tracing::error!(
                "cannot use the configuration {}: {count} error{}",
                settings.config.display(),
                if count == 1 { "" } else { "s" }
            );
            None
        }
    }
}

/// Logs each diagnostic at its own level as `<file>:<line>:<column>: <key path>: <message>`.
pub fn log_diagnostics(diagnostics: &[Diagnostic]) {
    for diagnostic in diagnostics {
        match diagnostic.severity {
            Severity::Error => tracing::error!("{diagnostic}"),
            Severity::Warning => tracing::warn!("{diagnostic}"),
        }
    }
}
