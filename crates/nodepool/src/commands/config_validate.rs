//! `nodepool config-validate` (spec 4.7): validate the configuration, report every problem
//! through the log, exit 0 when there is no error and 1 otherwise.
//!
//! Unlike Nodepool, which ignores `-s` here (a TODO in its source), the secure file is
//! validated too when given, because the daemons read it and can fail on it.

use std::process::ExitCode;

use crate::cli::Settings;
use crate::commands::configuration;

pub fn config_validate(settings: &Settings) -> ExitCode {
    tracing::info!("validating {}", settings.config.display());
    match configuration::load_and_validate(settings) {
        Ok(loaded) => {
            configuration::log_diagnostics(&loaded.warnings);
            ExitCode::SUCCESS
        }
        Err(errors) => {
            configuration::log_diagnostics(&errors.0);
            ExitCode::FAILURE
        }
    }
}
