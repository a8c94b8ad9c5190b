//! The command line: Nodepool 11's `nodepool` argument parser, plus the daemons as
//! sub-commands (spec sections 5.1, 5.2, 2.1 and 3.1).
//!
//! The shape follows Nodepool's argparse parser so scripts keep working: global options
//! precede the sub-command, `-s` has no long form, long options may be abbreviated to any
//! unambiguous prefix (argparse's `allow_abbrev`), and usage errors exit with 2. Help texts
//! are our own words.

use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::error::ErrorKind;
use clap::{ArgAction, Args, CommandFactory, Parser, Subcommand};

/// Our release, shown by `--version` in Nodepool's wording.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Where Nodepool looks for its configuration when `-c` is not given.
pub const DEFAULT_CONFIG: &str = "/etc/nodepool/nodepool.yaml";

/// Exit code of a command-line usage error; argparse uses 2, and so do scripts that check it.
pub const USAGE_ERROR: u8 = 2;

/// `nodepool [-h] [-l LOGCONFIG] [--version] [-c CONFIG] [-s SECURE] [--debug] <command> ...`
#[derive(Debug, Parser)]
#[command(
    name = "nodepool",
    about = "Node pool: keeps ready test nodes for Zuul.",
    version = VERSION,
    disable_version_flag = true,
    disable_help_subcommand = true,
    infer_long_args = true
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    /// Optional so that a bare `nodepool` can print help and exit 1, as Nodepool does,
    /// instead of clap's usage error (exit 2).
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Options that precede the sub-command.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Python logging configuration file (ignored with --debug)
    #[arg(short = 'l', value_name = "LOGCONFIG")]
    pub logconfig: Option<PathBuf>,
    /// Print the Nodepool version and exit
    #[arg(long, action = ArgAction::Version)]
    pub version: Option<bool>,
    /// Configuration file
    #[arg(short = 'c', value_name = "CONFIG", default_value = DEFAULT_CONFIG)]
    pub config: PathBuf,
    /// Secure configuration file (credentials, ZooKeeper TLS)
    #[arg(short = 's', value_name = "SECURE")]
    pub secure: Option<PathBuf>,
    /// Log at DEBUG level
    #[arg(long)]
    pub debug: bool,
}

/// Every sub-command, in Nodepool's order, then our daemons.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// List nodes
    List(ListArgs),
    /// List image uploads in providers
    ImageList(OutputArgs),
    /// List disk image builds
    DibImageList(OutputArgs),
    /// Show per-image pause flag and pending build request
    ImageStatus(OutputArgs),
    /// Request a new build of a disk image
    ImageBuild(ImageArgs),
    /// List provider images that Nodepool uploaded but no longer tracks
    AlienImageList(AlienImageListArgs),
    /// Mark a node for deletion
    Delete(DeleteArgs),
    /// Put a node on hold (keep it for inspection)
    Hold(NodeIdArgs),
    /// Delete one image upload from a provider
    ImageDelete(ImageDeleteArgs),
    /// Delete a disk image build and every upload of it
    DibImageDelete(BuildIdArgs),
    /// Check a configuration file and report every problem
    ConfigValidate,
    /// List node requests
    RequestList(OutputArgs),
    /// Show what the store holds for a provider
    Info(InfoArgs),
    /// Remove a provider's data from the store
    Erase(EraseArgs),
    /// Stop building an image
    ImagePause(ImageArgs),
    /// Resume building an image
    ImageUnpause(ImageArgs),
    /// Write image build and upload records to a file
    ExportImageData(PathArgs),
    /// Load image build and upload records from a file
    ImportImageData(PathArgs),
    /// Run the launcher daemon (what `nodepool-launcher` runs)
    #[command(version = VERSION, disable_version_flag = true)]
    Launcher(LauncherArgs),
    /// Run the image builder daemon (what `nodepool-builder` runs)
    #[command(version = VERSION, disable_version_flag = true)]
    Builder(BuilderArgs),
    /// Run launcher, builder and web server in one process
    #[command(version = VERSION, disable_version_flag = true)]
    Up(UpArgs),
}

impl Command {
    /// The name the user typed, for messages.
    pub fn name(&self) -> &'static str {
        match self {
            Command::List(_) => "list",
            Command::ImageList(_) => "image-list",
            Command::DibImageList(_) => "dib-image-list",
            Command::ImageStatus(_) => "image-status",
            Command::ImageBuild(_) => "image-build",
            Command::AlienImageList(_) => "alien-image-list",
            Command::Delete(_) => "delete",
            Command::Hold(_) => "hold",
            Command::ImageDelete(_) => "image-delete",
            Command::DibImageDelete(_) => "dib-image-delete",
            Command::ConfigValidate => "config-validate",
            Command::RequestList(_) => "request-list",
            Command::Info(_) => "info",
            Command::Erase(_) => "erase",
            Command::ImagePause(_) => "image-pause",
            Command::ImageUnpause(_) => "image-unpause",
            Command::ExportImageData(_) => "export-image-data",
            Command::ImportImageData(_) => "import-image-data",
            Command::Launcher(_) => "launcher",
            Command::Builder(_) => "builder",
            Command::Up(_) => "up",
        }
    }
}

/// Output choice of the listing commands; `--json` is our addition.
#[derive(Debug, Args)]
pub struct OutputArgs {
    /// Print JSON instead of a table
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Show every node column
    #[arg(long)]
    pub detail: bool,
    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Debug, Args)]
pub struct ImageArgs {
    /// Disk image name
    pub image: String,
}

#[derive(Debug, Args)]
pub struct AlienImageListArgs {
    /// Only this provider
    #[arg(value_name = "PROVIDER")]
    pub provider: Option<String>,
    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Debug, Args)]
pub struct DeleteArgs {
    /// Node id
    pub id: String,
    /// Delete the instance now, from this process, instead of leaving it to a launcher
    #[arg(long)]
    pub now: bool,
}

#[derive(Debug, Args)]
pub struct NodeIdArgs {
    /// Node id
    pub id: String,
}

/// `image-delete`: Nodepool requires all four options.
#[derive(Debug, Args)]
pub struct ImageDeleteArgs {
    /// Provider name
    #[arg(long, required = true)]
    pub provider: String,
    /// Image name
    #[arg(long, required = true)]
    pub image: String,
    /// Upload id
    #[arg(long = "upload-id", required = true)]
    pub upload_id: String,
    /// Build id
    #[arg(long = "build-id", required = true)]
    pub build_id: String,
}

#[derive(Debug, Args)]
pub struct BuildIdArgs {
    /// Build id as `<image>-<build id>` (split at the last `-`)
    pub id: String,
}

#[derive(Debug, Args)]
pub struct InfoArgs {
    /// Provider name
    #[arg(value_name = "PROVIDER")]
    pub provider: String,
    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Debug, Args)]
pub struct EraseArgs {
    /// Provider name
    #[arg(value_name = "PROVIDER")]
    pub provider: String,
    /// Do not ask for confirmation
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct PathArgs {
    /// File path
    pub path: PathBuf,
}

/// The options `nodepool-launcher` and `nodepool-builder` take themselves. They repeat the
/// global `-c`, `-s` and `-l` so that `nodepool-launcher -c FILE` (rewritten to
/// `nodepool launcher -c FILE`, see `argv0`) parses; when given here they win over the
/// global ones.
#[derive(Debug, Args)]
pub struct DaemonFiles {
    /// Configuration file [default: the global -c]
    #[arg(short = 'c', value_name = "CONFIG")]
    pub config: Option<PathBuf>,
    /// Secure configuration file [default: the global -s]
    #[arg(short = 's', value_name = "SECURE")]
    pub secure: Option<PathBuf>,
    /// Python logging configuration file [default: the global -l]
    #[arg(short = 'l', value_name = "LOGCONFIG")]
    pub logconfig: Option<PathBuf>,
    /// Print the Nodepool version and exit
    #[arg(long, action = ArgAction::Version)]
    pub version: Option<bool>,
}

/// How a Nodepool daemon runs: Nodepool forks into the background unless `-d` or `-f`.
#[derive(Debug, Args)]
pub struct DaemonMode {
    /// Stay in the foreground and log at DEBUG level
    #[arg(short = 'd')]
    pub debug: bool,
    /// Stay in the foreground
    #[arg(short = 'f')]
    pub foreground: bool,
    /// Nodepool's debugging REPL on port 3000; accepted for compatibility, not provided
    #[arg(long)]
    pub repl: bool,
}

/// `nodepool-launcher`'s flags.
#[derive(Debug, Args)]
pub struct LauncherArgs {
    #[command(flatten)]
    pub files: DaemonFiles,
    /// PID file
    #[arg(
        short = 'p',
        value_name = "PIDFILE",
        default_value = "/var/run/nodepool/nodepool.pid"
    )]
    pub pidfile: PathBuf,
    #[command(flatten)]
    pub mode: DaemonMode,
    /// Do not serve the web API
    #[arg(long = "no-webapp")]
    pub no_webapp: bool,
}

/// `nodepool-builder`'s flags.
#[derive(Debug, Args)]
pub struct BuilderArgs {
    #[command(flatten)]
    pub files: DaemonFiles,
    /// PID file
    #[arg(
        short = 'p',
        value_name = "PIDFILE",
        default_value = "/var/run/nodepool/nodepool-builder.pid"
    )]
    pub pidfile: PathBuf,
    #[command(flatten)]
    pub mode: DaemonMode,
    /// Number of image build workers
    #[arg(
        long = "build-workers",
        value_name = "BUILD_WORKERS",
        default_value_t = 1
    )]
    pub build_workers: usize,
    /// Number of image upload workers
    #[arg(
        long = "upload-workers",
        value_name = "UPLOAD_WORKERS",
        default_value_t = 4
    )]
    pub upload_workers: usize,
}

/// Our all-in-one daemon: only the configuration files, the rest comes from the config.
#[derive(Debug, Args)]
pub struct UpArgs {
    #[command(flatten)]
    pub files: DaemonFiles,
}

/// Parses the argument vector. `Err` means "stop with this exit code": help, version and
/// usage errors have been printed already.
pub fn parse(argv: Vec<OsString>) -> Result<Cli, ExitCode> {
    match Cli::try_parse_from(argv) {
        Ok(cli) => Ok(cli),
        Err(error) if error.kind() == ErrorKind::DisplayVersion => {
            // clap would print "nodepool 0.1.0"; Nodepool prints this, to stdout.
            println!("Nodepool version: {VERSION}");
            Err(ExitCode::SUCCESS)
        }
        Err(error) => {
            // Help goes to stdout with exit 0, usage errors to stderr with exit 2.
            let code = if error.use_stderr() { USAGE_ERROR } else { 0 };
            // Nothing sensible is left to do if the terminal is gone.
            let _ = error.print();
            Err(ExitCode::from(code))
        }
    }
}

/// A bare `nodepool`: print the top-level help to stdout and fail, as Nodepool does.
pub fn print_help_for_missing_command() -> ExitCode {
    let mut stdout = std::io::stdout();
    let help = Cli::command().render_help();
    let _ = write!(stdout, "{help}");
    ExitCode::FAILURE
}

/// What the program needs from the parsed options, resolved once: which files, which
/// logging.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub config: PathBuf,
    pub secure: Option<PathBuf>,
    /// Only set when it must be honoured: `nodepool --debug` ignores `-l`, the daemons do not.
    pub logconfig: Option<PathBuf>,
    pub debug: bool,
}

impl Settings {
    /// Merges the global options with a daemon sub-command's own, which win.
    pub fn resolve(global: &GlobalArgs, command: &Command) -> Settings {
        let (files, daemon_debug) = match command {
            Command::Launcher(args) => (Some(&args.files), args.mode.debug),
            Command::Builder(args) => (Some(&args.files), args.mode.debug),
            Command::Up(args) => (Some(&args.files), false),
            _ => (None, false),
        };
        let debug = global.debug || daemon_debug;
        let (config, secure, logconfig) = match files {
            Some(files) => (
                files.config.as_ref().unwrap_or(&global.config),
                files.secure.as_ref().or(global.secure.as_ref()),
                files.logconfig.as_ref().or(global.logconfig.as_ref()),
            ),
            // The admin CLI drops -l under --debug (Nodepool's NodePoolCmd.setup_logging).
            None => (
                &global.config,
                global.secure.as_ref(),
                global.logconfig.as_ref().filter(|_| !global.debug),
            ),
        };
        Settings {
            config: expand_user(config),
            secure: secure.map(|path| expand_user(path)),
            logconfig: logconfig.map(|path| expand_user(path)),
            debug,
        }
    }
}

/// Expands a leading `~/` with `$HOME`, as Nodepool's daemons do (`os.path.expanduser`);
/// shells do not expand it in `-c~/x` or quoted arguments.
fn expand_user(path: &Path) -> PathBuf {
    match (path.strip_prefix("~"), std::env::var_os("HOME")) {
        (Ok(rest), Some(home)) => PathBuf::from(home).join(rest),
        _ => path.to_path_buf(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_ok(words: &[&str]) -> Cli {
        match Cli::try_parse_from(words) {
            Ok(cli) => cli,
            Err(error) => panic!("{words:?} should parse: {error}"),
        }
    }

    fn parse_error(words: &[&str]) -> ErrorKind {
        match Cli::try_parse_from(words) {
            Ok(cli) => panic!("{words:?} should not parse, got {cli:?}"),
            Err(error) => error.kind(),
        }
    }

    fn settings(words: &[&str]) -> Settings {
        let cli = parse_ok(words);
        let command = cli.command.expect("a sub-command");
        Settings::resolve(&cli.global, &command)
    }

    #[test]
    fn clap_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn defaults_match_nodepool() {
        let cli = parse_ok(&["nodepool", "list"]);
        assert_eq!(
            cli.global.config,
            PathBuf::from("/etc/nodepool/nodepool.yaml")
        );
        assert_eq!(cli.global.secure, None);
        assert!(!cli.global.debug);
        let Some(Command::List(args)) = cli.command else {
            panic!("list expected")
        };
        assert!(!args.detail && !args.output.json);
    }

    #[test]
    fn global_options_must_precede_the_sub_command() {
        parse_ok(&[
            "nodepool", "-c", "a.yaml", "-s", "s.yaml", "--debug", "list",
        ]);
        assert_eq!(
            parse_error(&["nodepool", "list", "-c", "a.yaml"]),
            ErrorKind::UnknownArgument
        );
        assert_eq!(
            parse_error(&["nodepool", "list", "--debug"]),
            ErrorKind::UnknownArgument
        );
    }

    #[test]
    fn secure_has_no_long_form() {
        assert_eq!(
            parse_error(&["nodepool", "--secure", "s.yaml", "list"]),
            ErrorKind::UnknownArgument
        );
    }

    #[test]
    fn long_options_may_be_abbreviated_like_argparse() {
        let cli = parse_ok(&["nodepool", "--deb", "list", "--det"]);
        assert!(cli.global.debug);
        let Some(Command::List(args)) = cli.command else {
            panic!("list expected")
        };
        assert!(args.detail);
    }

    #[test]
    fn sub_commands_may_not_be_abbreviated() {
        assert_eq!(
            parse_error(&["nodepool", "request"]),
            ErrorKind::InvalidSubcommand
        );
    }

    #[test]
    fn image_delete_requires_all_four_options() {
        parse_ok(&[
            "nodepool",
            "image-delete",
            "--provider",
            "p",
            "--image",
            "i",
            "--build-id",
            "1",
            "--upload-id",
            "2",
        ]);
        assert_eq!(
            parse_error(&[
                "nodepool",
                "image-delete",
                "--provider",
                "p",
                "--image",
                "i",
                "--build-id",
                "1"
            ]),
            ErrorKind::MissingRequiredArgument
        );
    }

    #[test]
    fn positional_arguments() {
        let Some(Command::AlienImageList(args)) =
            parse_ok(&["nodepool", "alien-image-list"]).command
        else {
            panic!("alien-image-list expected")
        };
        assert_eq!(args.provider, None);
        let Some(Command::Delete(args)) =
            parse_ok(&["nodepool", "delete", "0000000001", "--now"]).command
        else {
            panic!("delete expected")
        };
        assert_eq!((args.id.as_str(), args.now), ("0000000001", true));
        assert_eq!(
            parse_error(&["nodepool", "hold"]),
            ErrorKind::MissingRequiredArgument
        );
        assert_eq!(
            parse_error(&["nodepool", "info"]),
            ErrorKind::MissingRequiredArgument
        );
    }

    #[test]
    fn version_is_only_a_global_and_daemon_option() {
        assert_eq!(
            parse_error(&["nodepool", "--version"]),
            ErrorKind::DisplayVersion
        );
        assert_eq!(
            parse_error(&["nodepool", "launcher", "--version"]),
            ErrorKind::DisplayVersion
        );
        assert_eq!(
            parse_error(&["nodepool", "list", "--version"]),
            ErrorKind::UnknownArgument
        );
    }

    #[test]
    fn launcher_flags_and_defaults() {
        let Some(Command::Launcher(args)) = parse_ok(&["nodepool", "launcher"]).command else {
            panic!("launcher expected")
        };
        assert_eq!(
            args.pidfile,
            PathBuf::from("/var/run/nodepool/nodepool.pid")
        );
        assert!(!args.no_webapp && !args.mode.debug && !args.mode.foreground && !args.mode.repl);
        let Some(Command::Launcher(args)) = parse_ok(&[
            "nodepool",
            "launcher",
            "-c",
            "n.yaml",
            "--no-webapp",
            "-f",
            "-p",
            "/tmp/l.pid",
            "--repl",
        ])
        .command
        else {
            panic!("launcher expected")
        };
        assert!(args.no_webapp && args.mode.foreground && args.mode.repl);
        assert_eq!(args.pidfile, PathBuf::from("/tmp/l.pid"));
    }

    #[test]
    fn builder_flags_and_defaults() {
        let Some(Command::Builder(args)) = parse_ok(&["nodepool", "builder"]).command else {
            panic!("builder expected")
        };
        assert_eq!((args.build_workers, args.upload_workers), (1, 4));
        assert_eq!(
            args.pidfile,
            PathBuf::from("/var/run/nodepool/nodepool-builder.pid")
        );
        let Some(Command::Builder(args)) = parse_ok(&[
            "nodepool",
            "builder",
            "--build-workers",
            "3",
            "--upload-workers",
            "0",
            "-d",
        ])
        .command
        else {
            panic!("builder expected")
        };
        assert_eq!((args.build_workers, args.upload_workers), (3, 0));
        assert!(args.mode.debug);
        assert_eq!(
            parse_error(&["nodepool", "builder", "--build-workers", "two"]),
            ErrorKind::ValueValidation
        );
        assert_eq!(
            parse_error(&["nodepool", "builder", "--no-webapp"]),
            ErrorKind::UnknownArgument
        );
    }

    #[test]
    fn admin_settings_come_from_global_options() {
        let resolved = settings(&[
            "nodepool",
            "-c",
            "/a.yaml",
            "-s",
            "/s.yaml",
            "-l",
            "/log.conf",
            "list",
        ]);
        assert_eq!(
            resolved,
            Settings {
                config: PathBuf::from("/a.yaml"),
                secure: Some(PathBuf::from("/s.yaml")),
                logconfig: Some(PathBuf::from("/log.conf")),
                debug: false,
            }
        );
    }

    #[test]
    fn admin_debug_ignores_the_logging_config() {
        let resolved = settings(&["nodepool", "-l", "/log.conf", "--debug", "list"]);
        assert_eq!((resolved.logconfig, resolved.debug), (None, true));
    }

    #[test]
    fn daemon_options_win_over_global_ones() {
        let resolved = settings(&[
            "nodepool",
            "-c",
            "/global.yaml",
            "-s",
            "/gs.yaml",
            "launcher",
            "-c",
            "/own.yaml",
            "-d",
        ]);
        assert_eq!(resolved.config, PathBuf::from("/own.yaml"));
        assert_eq!(resolved.secure, Some(PathBuf::from("/gs.yaml")));
        assert!(resolved.debug, "-d means debug logging");
        let resolved = settings(&["nodepool", "--debug", "-l", "/log.conf", "builder"]);
        assert_eq!(
            (resolved.logconfig, resolved.debug),
            (Some(PathBuf::from("/log.conf")), true)
        );
        let resolved = settings(&["nodepool", "up"]);
        assert_eq!(resolved.config, PathBuf::from(DEFAULT_CONFIG));
    }

    #[test]
    fn leading_tilde_is_expanded() {
        let Some(home) = std::env::var_os("HOME") else {
            return;
        };
        assert_eq!(
            expand_user(Path::new("~/np.yaml")),
            PathBuf::from(home).join("np.yaml")
        );
        assert_eq!(
            expand_user(Path::new("/etc/~/np.yaml")),
            PathBuf::from("/etc/~/np.yaml")
        );
    }
}
