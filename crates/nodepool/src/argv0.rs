//! Dispatch on the program name, so one binary can stand in for Nodepool's three programs.
//!
//! Nodepool installs `nodepool`, `nodepool-launcher` and `nodepool-builder`. Sites start the
//! daemons with service files such as `nodepool-launcher -c FILE -s SECURE --no-webapp -d`.
//! A symlink with the daemon's name pointing at our binary must keep working unchanged, so
//! such an invocation is rewritten to `nodepool launcher -c FILE -s SECURE --no-webapp -d`.
//! The `launcher` and `builder` sub-commands accept the daemon's whole flag set (including
//! `-c`, `-s`, `-l` and `--version`) after the sub-command name, so the rewrite is a plain
//! insertion and clap does all the parsing; no flag is moved or reinterpreted here.

use std::ffi::{OsStr, OsString};
use std::path::Path;

/// Which of Nodepool's programs the binary was invoked as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Program {
    /// `nodepool`, or any name we do not recognise: the admin CLI with sub-commands.
    Nodepool,
    /// `nodepool-launcher`: the launcher daemon.
    Launcher,
    /// `nodepool-builder`: the image builder daemon.
    Builder,
}

impl Program {
    /// Recognises the program by the file name of `argv[0]` (the name of the symlink, not of
    /// its target).
    pub fn from_argv0(argv0: &OsStr) -> Program {
        match Path::new(argv0).file_name().and_then(OsStr::to_str) {
            Some("nodepool-launcher") => Program::Launcher,
            Some("nodepool-builder") => Program::Builder,
            _ => Program::Nodepool,
        }
    }

    /// The sub-command that plays this program, if it is a daemon.
    fn sub_command(self) -> Option<&'static str> {
        match self {
            Program::Nodepool => None,
            Program::Launcher => Some("launcher"),
            Program::Builder => Some("builder"),
        }
    }
}

/// Turns the argument vector of a `nodepool-launcher` or `nodepool-builder` invocation into
/// the equivalent `nodepool launcher ...` or `nodepool builder ...` one; any other
/// invocation is returned unchanged.
///
/// The program name becomes `nodepool` so usage and error messages name the sub-command the
/// way a user could type it.
pub fn rewrite(argv: Vec<OsString>) -> Vec<OsString> {
    let Some(argv0) = argv.first() else {
        return argv;
    };
    let Some(sub_command) = Program::from_argv0(argv0).sub_command() else {
        return argv;
    };
    let mut rewritten = Vec::with_capacity(argv.len() + 1);
    rewritten.push(OsString::from("nodepool"));
    rewritten.push(OsString::from(sub_command));
    rewritten.extend(argv.into_iter().skip(1));
    rewritten
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(words: &[&str]) -> Vec<OsString> {
        words.iter().map(OsString::from).collect()
    }

    #[test]
    fn program_is_recognised_by_file_name_only() {
        assert_eq!(
            Program::from_argv0(OsStr::new("nodepool")),
            Program::Nodepool
        );
        assert_eq!(
            Program::from_argv0(OsStr::new("/usr/local/bin/nodepool-launcher")),
            Program::Launcher
        );
        assert_eq!(
            Program::from_argv0(OsStr::new("./nodepool-builder")),
            Program::Builder
        );
        assert_eq!(
            Program::from_argv0(OsStr::new("/opt/nodepool-launcher/bin/nodepool")),
            Program::Nodepool
        );
        assert_eq!(
            Program::from_argv0(OsStr::new("nodepool-launcher.old")),
            Program::Nodepool
        );
        assert_eq!(Program::from_argv0(OsStr::new("")), Program::Nodepool);
    }

    #[test]
    fn launcher_invocation_becomes_launcher_sub_command() {
        let rewritten = rewrite(argv(&[
            "/usr/bin/nodepool-launcher",
            "-c",
            "/etc/np.yaml",
            "-s",
            "/etc/sec.yaml",
            "--no-webapp",
            "-d",
        ]));
        assert_eq!(
            rewritten,
            argv(&[
                "nodepool",
                "launcher",
                "-c",
                "/etc/np.yaml",
                "-s",
                "/etc/sec.yaml",
                "--no-webapp",
                "-d"
            ])
        );
    }

    #[test]
    fn builder_invocation_becomes_builder_sub_command() {
        let rewritten = rewrite(argv(&["nodepool-builder", "--build-workers", "2", "-f"]));
        assert_eq!(
            rewritten,
            argv(&["nodepool", "builder", "--build-workers", "2", "-f"])
        );
    }

    #[test]
    fn daemon_invocation_without_arguments_still_selects_the_daemon() {
        assert_eq!(
            rewrite(argv(&["nodepool-builder"])),
            argv(&["nodepool", "builder"])
        );
    }

    #[test]
    fn nodepool_invocation_is_unchanged() {
        let original = argv(&["/usr/bin/nodepool", "-c", "x.yaml", "list", "--detail"]);
        assert_eq!(rewrite(original.clone()), original);
    }

    #[test]
    fn empty_argv_is_unchanged() {
        assert_eq!(rewrite(Vec::new()), Vec::<OsString>::new());
    }
}
