//! `nodepool.yaml`: parsing, validation and diffing. (API stub; being written.)

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Environment variables visible to `%(NODEPOOL_*)` substitution.
pub type Env = BTreeMap<String, String>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Error,
    Warning,
}

/// One problem found in a configuration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub severity: Severity,
    pub file: PathBuf,
    pub line: usize,
    pub column: usize,
    pub key_path: String,
    pub message: String,
}

/// Every error found while loading (never just the first).
#[derive(Debug, Clone, thiserror::Error)]
#[error("configuration has {} error(s)", .0.len())]
pub struct ConfigErrors(pub Vec<Diagnostic>);

#[derive(Debug, Clone)]
pub struct Config {}

#[derive(Debug, Clone)]
pub struct Loaded {
    pub config: Config,
    pub warnings: Vec<Diagnostic>,
}

/// Loads, merges the secure file into, and validates a configuration.
pub fn load_config(_path: &Path, _secure: Option<&Path>, _env: &Env) -> Result<Loaded, ConfigErrors> {
    Ok(Loaded { config: Config {}, warnings: Vec::new() })
}
