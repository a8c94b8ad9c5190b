//! The OCI runtime (`runc`) that runs container nodes.
//!
//! Why runc and not crun: both are in Debian 12, but crun 1.8.1 refuses to run on a "hybrid"
//! cgroup machine whose unified hierarchy holds a controller (it needs every controller on
//! one side), which is how this project's own test machines are set up; runc 1.1.5 uses the
//! v1 controllers there and v2 where that is all there is. runc keeps no process per
//! container once it has started one, as crun does not either.
//!
//! Each provider has its own runtime state directory (`<state-dir>/.runc`): the containers
//! listed there are the provider's, whichever launcher started them, and they outlive the
//! launcher (the runtime forks them off; nothing of ours stays their parent).

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use nodepool_driver::{DriverError, command::run};
use serde::Deserialize;
use tokio::process::Command;

/// What `runc state` tells of a container.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ContainerState {
    /// `created`, `running`, `paused` or `stopped`.
    pub status: String,
    /// The container's init process as this machine sees it (0 once stopped).
    #[serde(default)]
    pub pid: u32,
}

impl ContainerState {
    pub fn is_stopped(&self) -> bool {
        self.status == "stopped"
    }
}

/// One provider's runc.
#[derive(Debug, Clone)]
pub struct Runtime {
    pub binary: PathBuf,
    pub root: PathBuf,
}

/// Whether a runc error says the container does not exist.
pub fn is_missing(message: &str) -> bool {
    message.contains("does not exist") || message.contains("not exist")
}

impl Runtime {
    pub fn new(binary: &Path, state_dir: &Path) -> Runtime {
        Runtime {
            binary: binary.to_path_buf(),
            root: state_dir.join(".runc"),
        }
    }

    fn command(&self) -> Command {
        let mut command = Command::new(&self.binary);
        command.arg("--root").arg(&self.root);
        command
    }

    /// Creates container `id` from the bundle in `bundle` (its init waits for `start`). The
    /// container inherits `console` as its standard output and error, so sshd's log lands
    /// there; it must not inherit a pipe of ours, which would stay open for its whole life.
    pub async fn create(
        &self,
        id: &str,
        bundle: &Path,
        pid_file: &Path,
        console: File,
    ) -> Result<(), DriverError> {
        let console_err = console
            .try_clone()
            .map_err(|e| DriverError::Fatal(format!("cannot open the console log: {e}")))?;
        let mut command = self.command();
        command
            .arg("create")
            .arg("--bundle")
            .arg(bundle)
            .arg("--pid-file")
            .arg(pid_file)
            .arg(id)
            .stdin(Stdio::null())
            .stdout(Stdio::from(console))
            .stderr(Stdio::from(console_err));
        let status = command.status().await.map_err(|e| {
            DriverError::Fatal(format!("cannot run {}: {e}", self.binary.display()))
        })?;
        if status.success() {
            Ok(())
        } else {
            Err(DriverError::Fatal(format!(
                "`runc create {id}` failed ({status})"
            )))
        }
    }

    pub async fn start(&self, id: &str) -> Result<(), DriverError> {
        run(self.command().arg("start").arg(id)).await.map(drop)
    }

    /// The container's state, `None` when the runtime has no such container.
    pub async fn state(&self, id: &str) -> Result<Option<ContainerState>, DriverError> {
        match run(self.command().arg("state").arg(id)).await {
            Ok(text) => serde_json::from_str(&text).map(Some).map_err(|e| {
                DriverError::Fatal(format!(
                    "runc state {id} answered something unreadable: {e}"
                ))
            }),
            Err(DriverError::Fatal(message)) if is_missing(&message) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// SIGKILLs every process of the container; a container already gone is fine.
    pub async fn kill(&self, id: &str) -> Result<(), DriverError> {
        match run(self.command().args(["kill", "--all", id, "KILL"])).await {
            Ok(_) => Ok(()),
            Err(DriverError::Fatal(message))
                if is_missing(&message) || message.contains("not running") =>
            {
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// Removes the container (killing what is left) and its cgroup; gone already is fine.
    pub async fn delete(&self, id: &str) -> Result<(), DriverError> {
        match run(self.command().args(["delete", "--force", id])).await {
            Ok(_) => Ok(()),
            Err(DriverError::Fatal(message)) if is_missing(&message) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// The ids of every container in this provider's state directory.
    pub async fn list(&self) -> Result<Vec<String>, DriverError> {
        if !self.root.exists() {
            return Ok(Vec::new());
        }
        let text = run(self.command().args(["list", "--quiet"])).await?;
        Ok(text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(String::from)
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_answers_are_read() {
        let state: ContainerState = serde_json::from_str(
            r#"{"ociVersion":"1.0.2-dev","id":"np1","pid":9195,"status":"created","bundle":"/b","rootfs":"/b/merged","created":"2026-12-07T21:47:32Z","owner":""}"#,
        )
        .expect("state");
        assert_eq!(state.pid, 9195);
        assert!(!state.is_stopped());
        assert!(is_missing("container \"np1\" does not exist"));
    }
}
