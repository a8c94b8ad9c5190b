//! Runs one parsed sub-command. Every sub-command is dispatched from `dispatch` below to one
//! function that takes its parsed arguments, so later work fills in a function and touches
//! nothing else.
//!
//! Order of events, as in Nodepool: a bare `nodepool` prints help and fails; logging is set
//! up; `config-validate` validates; every other command loads the configuration first and
//! stops with exit 1 if it is invalid.

mod config_validate;
mod configuration;
mod daemons;
mod images;
mod nodes;
mod providers;
mod requests;

use std::process::ExitCode;

use nodepool_config::Config;

use crate::cli::{self, Cli, Command, Settings};
use crate::logging;

/// What every command except `config-validate` starts from.
#[derive(Debug)]
pub struct Context {
    /// The resolved files and logging options; daemons watch the files for reloads.
    pub settings: Settings,
    /// The validated configuration.
    pub config: Config,
}

/// Runs the program after parsing and returns its exit code.
pub fn run(parsed: Cli) -> ExitCode {
    let Some(command) = parsed.command else {
        return cli::print_help_for_missing_command();
    };
    let settings = Settings::resolve(&parsed.global, &command);
    logging::init(settings.debug);
    if let Err(code) = logging::check_log_config(settings.logconfig.as_deref()) {
        return code;
    }
    let name = command.name();
    match dispatch(settings, command) {
        Ok(code) => code,
        Err(error) => {
            // The counterpart of Nodepool's uncaught exception: report it and exit 1.
            tracing::error!("nodepool {name}: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn dispatch(settings: Settings, command: Command) -> anyhow::Result<ExitCode> {
    if let Command::ConfigValidate = command {
        return Ok(config_validate::config_validate(&settings));
    }
    let is_daemon = matches!(
        command,
        Command::Launcher(_) | Command::Builder(_) | Command::Up(_)
    );
    let Some(config) = configuration::load(&settings, is_daemon) else {
        return Ok(ExitCode::FAILURE);
    };
    let context = Context { settings, config };
    match command {
        Command::List(args) => nodes::list(&context, &args),
        Command::ImageList(args) => images::image_list(&context, &args),
        Command::DibImageList(args) => images::dib_image_list(&context, &args),
        Command::ImageStatus(args) => images::image_status(&context, &args),
        Command::ImageBuild(args) => images::image_build(&context, &args),
        Command::AlienImageList(args) => images::alien_image_list(&context, &args),
        Command::Delete(args) => nodes::delete(&context, &args),
        Command::Hold(args) => nodes::hold(&context, &args),
        Command::ImageDelete(args) => images::image_delete(&context, &args),
        Command::DibImageDelete(args) => images::dib_image_delete(&context, &args),
        Command::RequestList(args) => requests::request_list(&context, &args),
        Command::Info(args) => providers::info(&context, &args),
        Command::Erase(args) => providers::erase(&context, &args),
        Command::ImagePause(args) => images::image_pause(&context, &args),
        Command::ImageUnpause(args) => images::image_unpause(&context, &args),
        Command::ExportImageData(args) => images::export_image_data(&context, &args),
        Command::ImportImageData(args) => images::import_image_data(&context, &args),
        Command::Launcher(args) => daemons::launcher(&context, &args),
        Command::Builder(args) => daemons::builder(&context, &args),
        Command::Up(args) => daemons::up(&context, &args),
        // Handled before loading; listed so the match stays exhaustive.
        Command::ConfigValidate => Ok(config_validate::config_validate(&context.settings)),
    }
}

/// Wall-clock seconds since the epoch, as Nodepool's `time.time()`: ages and state times
/// are compared across hosts.
fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// Prints a table as Nodepool's `print(table)` does.
fn print_table(table: &nodepool_web::status::Table) {
    println!("{}", nodepool_web::status::render_text(table));
}

/// Prints our `--json` output: one line of JSON as Python's `json.dumps` writes it.
fn print_json(value: &serde_json::Value) {
    println!("{}", nodepool_web::status::to_python_json_text(value));
}
