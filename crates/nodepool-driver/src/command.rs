//! Running the system tools local drivers change the machine with (`ip`, `nft`, `mount`,
//! `runc`, ...): the workspace forbids `unsafe`, and these commands are what an operator would
//! type to inspect or repair a node by hand.

use std::process::Stdio;

use tokio::process::Command;

use crate::{DriverError, stderr_tail};

/// The command line as text, for error messages and logs.
pub fn describe(command: &Command) -> String {
    let std = command.as_std();
    let mut text = std.get_program().to_string_lossy().into_owned();
    for arg in std.get_args() {
        text.push(' ');
        text.push_str(&arg.to_string_lossy());
    }
    text
}

/// Runs `command` to completion and returns its standard output; a failure names the
/// command, its status and the end of its stderr.
pub async fn run(command: &mut Command) -> Result<String, DriverError> {
    run_with_input(command, None).await
}

/// [`run`] with `input` written to the command's standard input.
pub async fn run_with_input(
    command: &mut Command,
    input: Option<&[u8]>,
) -> Result<String, DriverError> {
    use tokio::io::AsyncWriteExt as _;
    let text = describe(command);
    let mut child = command
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| DriverError::Fatal(format!("cannot run `{text}`: {e}")))?;
    if let (Some(input), Some(mut stdin)) = (input, child.stdin.take()) {
        stdin
            .write_all(input)
            .await
            .map_err(|e| DriverError::Fatal(format!("cannot write to `{text}`: {e}")))?;
    }
    let output = child
        .wait_with_output()
        .await
        .map_err(|e| DriverError::Fatal(format!("cannot run `{text}`: {e}")))?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(DriverError::Fatal(format!(
            "`{text}` failed ({}): {}",
            output.status,
            stderr_tail(&output.stderr)
        )))
    }
}

/// Directories searched for tools besides `PATH`: a launcher started without the `sbin`
/// directories in its `PATH` still finds `ip` and `nft`.
const EXTRA_TOOL_DIRS: &[&str] = &[
    "/usr/local/sbin",
    "/usr/local/bin",
    "/usr/sbin",
    "/usr/bin",
    "/sbin",
    "/bin",
];

/// Where the executable `program` is: in this process's `PATH`, else in the usual `bin` and
/// `sbin` directories.
pub fn find_program(program: &str) -> Option<std::path::PathBuf> {
    use std::os::unix::fs::PermissionsExt as _;
    let path = std::env::var_os("PATH");
    path.iter()
        .flat_map(std::env::split_paths)
        .chain(EXTRA_TOOL_DIRS.iter().map(std::path::PathBuf::from))
        .map(|dir| dir.join(program))
        .find(|candidate| {
            std::fs::metadata(candidate)
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn programs_are_found_outside_the_path_too() {
        assert!(find_program("sh").is_some_and(|p| p.is_absolute()));
        assert_eq!(find_program("no-such-program-nodepool"), None);
    }
}

/// Fails unless this process runs as root; `driver` and `why` name who needs it for what.
pub fn require_root(driver: &str, why: &str) -> Result<(), DriverError> {
    use std::os::unix::fs::MetadataExt as _;
    // `/proc/self` belongs to the process's effective user.
    let uid = std::fs::metadata("/proc/self")
        .map(|m| m.uid())
        .map_err(|e| DriverError::Fatal(format!("cannot read /proc/self: {e}")))?;
    if uid == 0 {
        Ok(())
    } else {
        Err(DriverError::Fatal(format!(
            "the {driver} driver needs root ({why}); running as uid {uid}"
        )))
    }
}

/// Finds a driver's programs and names every missing one (with its Debian package) at once.
#[derive(Debug, Default)]
pub struct ToolFinder {
    missing: Vec<String>,
}

impl ToolFinder {
    /// The absolute path of `program`; a missing one is remembered for [`ToolFinder::finish`].
    pub fn find(&mut self, program: &str, package: &str) -> std::path::PathBuf {
        find_program(program).unwrap_or_else(|| {
            self.missing.push(format!("{program} (package {package})"));
            std::path::PathBuf::new()
        })
    }

    /// `Fatal` naming every program not found.
    pub fn finish(self, driver: &str) -> Result<(), DriverError> {
        if self.missing.is_empty() {
            Ok(())
        } else {
            Err(DriverError::Fatal(format!(
                "the {driver} driver needs programs that are not installed: {}",
                self.missing.join(", ")
            )))
        }
    }
}
