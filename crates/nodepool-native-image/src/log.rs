//! The build log: every step and every tool's output, appended to one file.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Instant;

use anyhow::{Context as _, bail};

/// Appends to a build's log file; steps are also logged through `tracing`, which is the
/// progress an operator sees on a terminal.
#[derive(Debug)]
pub struct BuildLog {
    path: PathBuf,
    started: Instant,
}

impl BuildLog {
    pub fn new(path: &Path) -> BuildLog {
        BuildLog {
            path: path.to_path_buf(),
            started: Instant::now(),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn file(&self) -> anyhow::Result<std::fs::File> {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .with_context(|| format!("opening the build log {}", self.path.display()))
    }

    /// A line in the log (best effort: a log that cannot be written must not fail a build).
    pub fn line(&self, text: &str) {
        if let Ok(mut file) = self.file() {
            let _ = writeln!(file, "{text}");
        }
    }

    /// Starts a named step.
    pub fn step(&self, image: &str, what: &str) {
        let elapsed = self.started.elapsed().as_secs();
        tracing::info!(image, elapsed_s = elapsed, "native build: {what}");
        self.line(&format!("==> [{elapsed:>4} s] {what}"));
    }

    /// Runs a tool with its output going to the log; a non-zero exit is an error naming it.
    pub async fn run(&self, command: &mut tokio::process::Command) -> anyhow::Result<()> {
        let file = self.file()?;
        let shown = describe(command);
        self.line(&format!("+ {shown}"));
        let status = command
            .stdin(Stdio::null())
            .stdout(Stdio::from(file.try_clone()?))
            .stderr(Stdio::from(file))
            .kill_on_drop(true)
            .status()
            .await
            .with_context(|| format!("starting `{shown}`"))?;
        if !status.success() {
            bail!("`{shown}` failed ({status}); see {}", self.path.display());
        }
        Ok(())
    }
}

fn describe(command: &tokio::process::Command) -> String {
    let std = command.as_std();
    let mut words = vec![std.get_program().to_string_lossy().into_owned()];
    words.extend(std.get_args().map(|a| a.to_string_lossy().into_owned()));
    words.join(" ")
}
