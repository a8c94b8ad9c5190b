//! Problems found in a configuration, each with file, position and key path.

use std::fmt;
use std::ops::Deref;
use std::path::{Path, PathBuf};

use crate::yaml::Mark;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Error,
    Warning,
}

/// One problem found in a configuration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub severity: Severity,
    pub file: PathBuf,
    /// 1-based; 0 when the problem concerns the file as a whole.
    pub line: usize,
    pub column: usize,
    /// Where the value sits, e.g. `providers[0].pools[1].labels[2].min-ram`.
    pub key_path: String,
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if self.line > 0 {
            write!(f, ":{}:{}", self.line, self.column)?;
        }
        if !self.key_path.is_empty() {
            write!(f, ": {}", self.key_path)?;
        }
        write!(f, ": {}", self.message)
    }
}

/// Every error found while loading (never just the first), plus the warnings seen on the way.
#[derive(Debug, Clone, thiserror::Error)]
pub struct ConfigErrors(pub Vec<Diagnostic>);

impl ConfigErrors {
    pub fn errors(&self) -> impl Iterator<Item = &Diagnostic> {
        self.0.iter().filter(|d| d.severity == Severity::Error)
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let count = self.errors().count();
        write!(
            f,
            "configuration has {count} error{}",
            if count == 1 { "" } else { "s" }
        )?;
        for diagnostic in self.errors() {
            write!(f, "\n  {diagnostic}")?;
        }
        Ok(())
    }
}

/// Where a value sits in a file: key path and position.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct At {
    pub path: String,
    pub mark: Mark,
}

impl At {
    pub fn key(&self, key: &str, mark: Mark) -> At {
        let path = if self.path.is_empty() {
            key.to_string()
        } else {
            format!("{}.{key}", self.path)
        };
        At { path, mark }
    }

    pub fn index(&self, index: usize, mark: Mark) -> At {
        At {
            path: format!("{}[{index}]", self.path),
            mark,
        }
    }
}

/// A value together with where it was written.
#[derive(Debug, Clone, PartialEq)]
pub struct Sp<T> {
    pub value: T,
    pub at: At,
}

impl<T> Deref for Sp<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.value
    }
}

/// Collects diagnostics for one file.
#[derive(Debug)]
pub(crate) struct Collector {
    pub file: PathBuf,
    pub diagnostics: Vec<Diagnostic>,
    /// The file holds secrets (the secure file): messages name a value's kind, never the
    /// value, so a mistyped password does not end up in a log or a terminal.
    pub hide_values: bool,
}

impl Collector {
    pub fn new(file: &Path) -> Collector {
        Collector {
            file: file.to_path_buf(),
            diagnostics: Vec::new(),
            hide_values: false,
        }
    }

    /// A collector for the secure file: see `hide_values`.
    pub fn for_secrets(file: &Path) -> Collector {
        Collector {
            hide_values: true,
            ..Collector::new(file)
        }
    }

    pub fn push(&mut self, severity: Severity, at: &At, message: impl Into<String>) {
        self.diagnostics.push(Diagnostic {
            severity,
            file: self.file.clone(),
            line: at.mark.line,
            column: at.mark.column,
            key_path: at.path.clone(),
            message: message.into(),
        });
    }

    pub fn error(&mut self, at: &At, message: impl Into<String>) {
        self.push(Severity::Error, at, message);
    }

    pub fn warn(&mut self, at: &At, message: impl Into<String>) {
        self.push(Severity::Warning, at, message);
    }

    pub fn has_errors(&self) -> bool {
        self.diagnostics
            .iter()
            .any(|d| d.severity == Severity::Error)
    }
}
