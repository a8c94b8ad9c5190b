//! Black-box tests of the `nodepool` binary: flags, exit codes and output streams as Nodepool's
//! argparse-based CLI has them (spec 5.1), `config-validate` (spec 4.7), and the
//! `nodepool-launcher` / `nodepool-builder` program names.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use tempfile::TempDir;

const BINARY: &str = env!("CARGO_BIN_EXE_nodepool");

/// A configuration every validator accepts.
const GOOD_CONFIG: &str = "labels:\n  - name: small\n    min-ready: 0\n";

/// The result of one run, with the streams as text.
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Run {
    fn from(output: Output) -> Run {
        Run {
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    fn assert_code(&self, expected: i32) -> &Run {
        assert_eq!(
            self.code,
            Some(expected),
            "exit code\n--- stdout:\n{}\n--- stderr:\n{}",
            self.stdout,
            self.stderr
        );
        self
    }

    /// Log lines (stderr) of the given Python level name, without their timestamps.
    fn log_lines(&self, level: &str) -> Vec<&str> {
        let marker = format!(" {level} ");
        self.stderr
            .lines()
            .filter_map(|line| line.find(&marker).map(|at| &line[at + 1..]))
            .collect()
    }
}

/// A command for `program` with an environment that cannot change the outcome.
fn command(program: &Path) -> Command {
    let mut command = Command::new(program);
    command.env_remove("RUST_LOG");
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("NODEPOOL_") {
            command.env_remove(name);
        }
    }
    command
}

fn run(args: &[&str]) -> Run {
    run_program(Path::new(BINARY), args)
}

fn run_program(program: &Path, args: &[&str]) -> Run {
    match command(program).args(args).output() {
        Ok(output) => Run::from(output),
        Err(error) => panic!("cannot run {}: {error}", program.display()),
    }
}

fn temp_dir() -> TempDir {
    match tempfile::tempdir() {
        Ok(dir) => dir,
        Err(error) => panic!("cannot create a temporary directory: {error}"),
    }
}

fn write(dir: &TempDir, name: &str, text: &str) -> String {
    let path = dir.path().join(name);
    if let Err(error) = std::fs::write(&path, text) {
        panic!("cannot write {}: {error}", path.display());
    }
    path.to_string_lossy().into_owned()
}

/// A directory holding symlinks named like Nodepool's daemons, pointing at our binary.
#[cfg(unix)]
fn daemon_links() -> (TempDir, PathBuf, PathBuf) {
    let dir = temp_dir();
    let launcher = dir.path().join("nodepool-launcher");
    let builder = dir.path().join("nodepool-builder");
    for link in [&launcher, &builder] {
        if let Err(error) = std::os::unix::fs::symlink(BINARY, link) {
            panic!("cannot create {}: {error}", link.display());
        }
    }
    (dir, launcher, builder)
}

#[test]
fn version_prints_nodepool_wording_on_stdout() {
    let result = run(&["--version"]);
    result.assert_code(0);
    assert_eq!(
        result.stdout,
        format!("Nodepool version: {}\n", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn version_wins_over_a_later_sub_command() {
    // argparse acts on --version as soon as it reads it.
    let result = run(&["--version", "list"]);
    result.assert_code(0);
    assert!(
        result.stdout.starts_with("Nodepool version: "),
        "{}",
        result.stdout
    );
}

#[test]
fn no_sub_command_prints_help_on_stdout_and_fails() {
    let result = run(&[]);
    result.assert_code(1);
    assert!(
        result.stdout.contains("config-validate"),
        "help lists the commands: {}",
        result.stdout
    );
    assert!(result.stdout.contains("-c <CONFIG>"), "{}", result.stdout);
    // Only global options, still no command.
    run(&["-c", "/nonexistent.yaml", "--debug"]).assert_code(1);
}

#[test]
fn help_succeeds() {
    let result = run(&["-h"]);
    result.assert_code(0);
    assert!(result.stdout.contains("image-delete"), "{}", result.stdout);
    run(&["image-delete", "--help"]).assert_code(0);
}

#[test]
fn usage_errors_exit_2_on_stderr() {
    for args in [
        &["--bogus", "list"][..],
        &["no-such-command"],
        &["help"],
        &["list", "--bogus"],
        &["list", "extra-argument"],
        &["hold"],
        &["-c"],
    ] {
        let result = run(args);
        result.assert_code(2);
        assert!(result.stdout.is_empty(), "{args:?}: {}", result.stdout);
        assert!(
            result.stderr.starts_with("error:"),
            "{args:?}: {}",
            result.stderr
        );
    }
}

#[test]
fn secure_option_has_only_the_short_form() {
    let dir = temp_dir();
    let config = write(&dir, "nodepool.yaml", GOOD_CONFIG);
    let secure = write(&dir, "secure.yaml", "");
    run(&["-c", &config, "-s", &secure, "config-validate"]).assert_code(0);
    run(&["-c", &config, "--secure", &secure, "config-validate"]).assert_code(2);
}

#[test]
fn global_options_must_precede_the_sub_command() {
    let dir = temp_dir();
    let config = write(&dir, "nodepool.yaml", GOOD_CONFIG);
    run(&["-c", &config, "config-validate"]).assert_code(0);
    run(&["config-validate", "-c", &config]).assert_code(2);
    run(&["config-validate", "--debug"]).assert_code(2);
}

#[test]
fn image_delete_requires_every_option() {
    let result = run(&[
        "image-delete",
        "--provider",
        "p",
        "--image",
        "i",
        "--build-id",
        "0000000001",
    ]);
    result.assert_code(2);
    assert!(result.stderr.contains("--upload-id"), "{}", result.stderr);
}

#[test]
fn config_validate_accepts_a_good_config() {
    let dir = temp_dir();
    let config = write(&dir, "nodepool.yaml", GOOD_CONFIG);
    let result = run(&["-c", &config, "config-validate"]);
    result.assert_code(0);
    assert_eq!(
        result.log_lines("INFO").first().copied(),
        Some(format!("INFO nodepool::commands::config_validate: validating {config}").as_str())
    );
    assert!(result.log_lines("ERROR").is_empty(), "{}", result.stderr);
    assert!(result.stdout.is_empty(), "{}", result.stdout);
}

#[test]
fn config_validate_log_lines_look_like_nodepool_ones() {
    let dir = temp_dir();
    let config = write(&dir, "nodepool.yaml", GOOD_CONFIG);
    let result = run(&["-c", &config, "config-validate"]);
    let line = result.stderr.lines().next().unwrap_or_default();
    // `2024-05-01 12:34:56,789 INFO <target>: validating <file>`
    let (date, rest) = line.split_at(line.find(' ').unwrap_or(0));
    let (time, rest) = rest[1..].split_at(rest[1..].find(' ').unwrap_or(0));
    assert_eq!(date.len(), 10, "{line}");
    assert_eq!(date.as_bytes()[4], b'-', "{line}");
    assert_eq!(time.len(), 12, "{line}");
    assert_eq!(time.as_bytes()[8], b',', "{line}");
    assert!(rest.starts_with(" INFO "), "{line}");
    assert!(rest.ends_with(&format!(": validating {config}")), "{line}");
}

#[test]
fn config_validate_fails_on_a_missing_file() {
    let dir = temp_dir();
    let missing = dir
        .path()
        .join("missing.yaml")
        .to_string_lossy()
        .into_owned();
    let result = run(&["-c", &missing, "config-validate"]);
    result.assert_code(1);
    let errors = result.log_lines("ERROR");
    assert!(
        errors.iter().any(|line| line.contains(&missing)),
        "{}",
        result.stderr
    );
}

#[test]
fn config_validate_reports_each_error_with_file_line_and_key() {
    let dir = temp_dir();
    let config = write(&dir, "nodepool.yaml", "labels: []\nnothandled: 1\n");
    let result = run(&["-c", &config, "config-validate"]);
    result.assert_code(1);
    let expected = format!(": {config}:2:1: nothandled: ");
    assert!(
        result
            .log_lines("ERROR")
            .iter()
            .any(|line| line.contains(&expected)),
        "expected an ERROR line containing {expected:?}:\n{}",
        result.stderr
    );
}

#[test]
fn config_validate_logs_warnings_and_still_succeeds() {
    let dir = temp_dir();
    // A duplicated key: YAML loaders keep the last one; we warn about it.
    let config = write(&dir, "nodepool.yaml", "labels: []\nlabels: []\n");
    let result = run(&["-c", &config, "config-validate"]);
    result.assert_code(0);
    assert!(!result.log_lines("WARNING").is_empty(), "{}", result.stderr);
}

#[test]
fn config_validate_substitutes_nodepool_environment_variables() {
    let dir = temp_dir();
    let config = write(
        &dir,
        "nodepool.yaml",
        "labels:\n  - name: %(NODEPOOL_LABEL_NAME)\n",
    );
    run(&["-c", &config, "config-validate"]).assert_code(1);
    let substituted = command(Path::new(BINARY))
        .args(["-c", &config, "config-validate"])
        .env("NODEPOOL_LABEL_NAME", "small")
        .output()
        .map(Run::from);
    match substituted {
        Ok(result) => {
            result.assert_code(0);
        }
        Err(error) => panic!("cannot run the binary: {error}"),
    }
}

#[test]
fn rust_log_overrides_the_default_level() {
    let dir = temp_dir();
    let config = write(&dir, "nodepool.yaml", GOOD_CONFIG);
    let output = command(Path::new(BINARY))
        .args(["-c", &config, "config-validate"])
        .env("RUST_LOG", "warn")
        .output();
    match output.map(Run::from) {
        Ok(result) => {
            result.assert_code(0);
            assert!(result.log_lines("INFO").is_empty(), "{}", result.stderr);
        }
        Err(error) => panic!("cannot run the binary: {error}"),
    }
}

#[test]
fn debug_flag_enables_debug_lines() {
    let dir = temp_dir();
    let config = write(&dir, "nodepool.yaml", GOOD_CONFIG);
    assert!(run(&["-c", &config, "list"]).log_lines("DEBUG").is_empty());
    assert!(
        !run(&["--debug", "-c", &config, "list"])
            .log_lines("DEBUG")
            .is_empty()
    );
}

#[test]
fn up_without_an_images_dir_fails_like_the_builder() {
    let dir = temp_dir();
    let config = write(&dir, "nodepool.yaml", GOOD_CONFIG);
    let result = run(&["-c", config.as_str(), "up"]);
    result.assert_code(1);
    assert!(
        result
            .stderr
            .contains("nodepool up: No images-dir specified in config."),
        "{}",
        result.stderr
    );
}

#[test]
fn commands_stop_on_an_invalid_config_before_doing_anything() {
    let dir = temp_dir();
    let missing = dir
        .path()
        .join("missing.yaml")
        .to_string_lossy()
        .into_owned();
    let result = run(&["-c", &missing, "list"]);
    result.assert_code(1);
    assert!(!result.log_lines("ERROR").is_empty(), "{}", result.stderr);
    assert!(
        !result.stderr.contains("not implemented"),
        "{}",
        result.stderr
    );
}

#[test]
fn missing_logging_config_fails() {
    let dir = temp_dir();
    let config = write(&dir, "nodepool.yaml", GOOD_CONFIG);
    let missing = dir
        .path()
        .join("logging.conf")
        .to_string_lossy()
        .into_owned();
    let result = run(&["-l", &missing, "-c", &config, "config-validate"]);
    result.assert_code(1);
    let expected = format!("Unable to read logging config file at {missing}");
    assert!(
        result
            .log_lines("ERROR")
            .iter()
            .any(|line| line.ends_with(&expected)),
        "{}",
        result.stderr
    );
}

#[test]
fn existing_logging_config_is_accepted_with_a_warning() {
    let dir = temp_dir();
    let config = write(&dir, "nodepool.yaml", GOOD_CONFIG);
    let logging = write(&dir, "logging.conf", "[loggers]\nkeys=root\n");
    let result = run(&["-l", &logging, "-c", &config, "config-validate"]);
    result.assert_code(0);
    assert!(
        result
            .log_lines("WARNING")
            .iter()
            .any(|line| line.contains(&logging)),
        "{}",
        result.stderr
    );
}

#[test]
fn debug_ignores_the_logging_config_of_admin_commands() {
    let dir = temp_dir();
    let config = write(&dir, "nodepool.yaml", GOOD_CONFIG);
    let missing = dir
        .path()
        .join("logging.conf")
        .to_string_lossy()
        .into_owned();
    run(&["-l", &missing, "--debug", "-c", &config, "config-validate"]).assert_code(0);
}

#[cfg(unix)]
#[test]
fn launcher_program_name_runs_the_launcher() {
    let (_dir, launcher, _builder) = daemon_links();
    let help = run_program(&launcher, &["--help"]);
    help.assert_code(0);
    for flag in [
        "--no-webapp",
        "-p <PIDFILE>",
        "-d",
        "-f",
        "-c <CONFIG>",
        "-s <SECURE>",
    ] {
        assert!(
            help.stdout.contains(flag),
            "{flag} missing from:\n{}",
            help.stdout
        );
    }
    assert!(!help.stdout.contains("--build-workers"), "{}", help.stdout);

    let version = run_program(&launcher, &["--version"]);
    version.assert_code(0);
    assert!(
        version.stdout.starts_with("Nodepool version: "),
        "{}",
        version.stdout
    );

    let missing = run_program(
        &launcher,
        &[
            "-c",
            "missing.yaml",
            "-s",
            "secure.yaml",
            "--no-webapp",
            "-d",
        ],
    );
    missing.assert_code(1);
    assert!(
        missing
            .log_lines("ERROR")
            .iter()
            .any(|line| line.contains("missing.yaml")),
        "{}",
        missing.stderr
    );

    // nodepool-launcher has no --debug (only -d).
    run_program(&launcher, &["--debug"]).assert_code(2);
}

#[cfg(unix)]
#[test]
fn builder_program_name_runs_the_builder() {
    let (dir, _launcher, builder) = daemon_links();
    let config = write(&dir, "nodepool.yaml", GOOD_CONFIG);
    let help = run_program(&builder, &["--help"]);
    help.assert_code(0);
    assert!(
        help.stdout.contains("--build-workers") && help.stdout.contains("--upload-workers"),
        "{}",
        help.stdout
    );
    assert!(!help.stdout.contains("--no-webapp"), "{}", help.stdout);

    let result = run_program(
        &builder,
        &[
            "-c",
            &config,
            "--build-workers",
            "2",
            "--upload-workers",
            "8",
            "-d",
        ],
    );
    // The builder runs; without `images-dir` it stops as Nodepool's does.
    result.assert_code(1);
    assert!(
        result.stderr.contains("No images-dir specified in config."),
        "{}",
        result.stderr
    );
    assert!(
        !result.log_lines("DEBUG").is_empty(),
        "-d logs at DEBUG: {}",
        result.stderr
    );

    run_program(&builder, &["--build-workers", "many"]).assert_code(2);
}
