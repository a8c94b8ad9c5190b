//! Reading the hand-written corpus under `tests/corpus/`.
//!
//! Each corpus file may start with header comments:
//!
//! * `# env: NODEPOOL_X=value`: an environment variable visible to `%(NODEPOOL_*)`.
//! * `# expect: LINE:COLUMN KEY.PATH ~ message substring`: an error the main file must give
//!   (`-` stands for an empty key path, `0:0` for a whole-file error).
//! * `# expect-secure: ...`: the same, for the secure file next to it.
//! * `# expect-warning: ...`: a warning that must be reported (other warnings are allowed
//!   in invalid files, but not in valid ones).
//!
//! A file `NAME.secure.yaml` next to `NAME.yaml` is loaded as its secure file.

#![allow(dead_code)]

use std::fmt;
use std::path::{Path, PathBuf};

use nodepool_config::{ConfigErrors, Diagnostic, Env, Loaded, Severity, parse_config};

pub fn corpus_dir(kind: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/corpus")
        .join(kind)
}

/// The main files of one corpus directory (secure files excluded), sorted.
pub fn corpus_files(kind: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(corpus_dir(kind))
        .unwrap_or_else(|e| panic!("reading the {kind} corpus: {e}"))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .filter(|p| !p.to_string_lossy().ends_with(".secure.yaml"))
        .collect();
    files.sort();
    files
}

pub fn stem(path: &Path) -> String {
    path.file_stem()
        .expect("file name")
        .to_string_lossy()
        .into_owned()
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Main,
    Secure,
}

/// One diagnostic a corpus file announces in its header.
#[derive(Debug, Clone)]
pub struct Expectation {
    pub source: Source,
    pub severity: Severity,
    pub line: usize,
    pub column: usize,
    pub key_path: String,
    pub substring: String,
    /// The header line, for messages.
    pub written: String,
}

impl fmt::Display for Expectation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.written)
    }
}

impl Expectation {
    pub fn matches(&self, diagnostic: &Diagnostic, main: &Path) -> bool {
        let in_main = diagnostic.file == main;
        (self.source == Source::Main) == in_main
            && diagnostic.severity == self.severity
            && diagnostic.line == self.line
            && diagnostic.column == self.column
            && diagnostic.key_path == self.key_path
            && diagnostic.message.contains(&self.substring)
    }
}

/// A corpus file with its header read.
#[derive(Debug)]
pub struct CorpusFile {
    pub path: PathBuf,
    pub text: String,
    pub secure_path: Option<PathBuf>,
    pub secure_text: Option<String>,
    pub env: Env,
    pub expectations: Vec<Expectation>,
}

impl CorpusFile {
    pub fn read(path: &Path) -> CorpusFile {
        let text =
            std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let secure_path = path.with_file_name(format!("{}.secure.yaml", stem(path)));
        let (secure_path, secure_text) = match std::fs::read_to_string(&secure_path) {
            Ok(secure_text) => (Some(secure_path), Some(secure_text)),
            Err(_) => (None, None),
        };
        let mut env = Env::new();
        let mut expectations = Vec::new();
        for line in text.lines().filter_map(|l| l.strip_prefix('#')) {
            let line = line.trim();
            if let Some(assignment) = line.strip_prefix("env:") {
                let (name, value) = assignment
                    .trim()
                    .split_once('=')
                    .unwrap_or_else(|| panic!("{}: bad env line `{line}`", path.display()));
                env.insert(name.to_string(), value.to_string());
                continue;
            }
            let (source, severity, rest) = if let Some(rest) = line.strip_prefix("expect:") {
                (Source::Main, Severity::Error, rest)
            } else if let Some(rest) = line.strip_prefix("expect-secure:") {
                (Source::Secure, Severity::Error, rest)
            } else if let Some(rest) = line.strip_prefix("expect-warning:") {
                (Source::Main, Severity::Warning, rest)
            } else {
                continue;
            };
            expectations.push(parse_expectation(path, line, source, severity, rest));
        }
        CorpusFile {
            path: path.to_path_buf(),
            text,
            secure_path,
            secure_text,
            env,
            expectations,
        }
    }

    pub fn load(&self) -> Result<Loaded, ConfigErrors> {
        let secure = match (&self.secure_path, &self.secure_text) {
            (Some(p), Some(t)) => Some((p.as_path(), t.as_str())),
            _ => None,
        };
        parse_config(&self.path, &self.text, secure, &self.env)
    }

    pub fn expected_errors(&self) -> impl Iterator<Item = &Expectation> {
        self.expectations
            .iter()
            .filter(|e| e.severity == Severity::Error)
    }

    pub fn expected_warnings(&self) -> impl Iterator<Item = &Expectation> {
        self.expectations
            .iter()
            .filter(|e| e.severity == Severity::Warning)
    }
}

fn parse_expectation(
    path: &Path,
    line: &str,
    source: Source,
    severity: Severity,
    rest: &str,
) -> Expectation {
    let bad = || -> ! {
        panic!(
            "{}: cannot read `{line}`; expected `# expect: LINE:COL KEY.PATH ~ substring`",
            path.display()
        )
    };
    let (location, substring) = rest.split_once(" ~ ").unwrap_or_else(|| bad());
    let mut words = location.split_whitespace();
    let position = words.next().unwrap_or_else(|| bad());
    let key_path = words.next().unwrap_or_else(|| bad());
    if words.next().is_some() {
        bad();
    }
    let (l, c) = position.split_once(':').unwrap_or_else(|| bad());
    Expectation {
        source,
        severity,
        line: l.parse().unwrap_or_else(|_| bad()),
        column: c.parse().unwrap_or_else(|_| bad()),
        key_path: if key_path == "-" {
            String::new()
        } else {
            key_path.to_string()
        },
        substring: substring.trim().to_string(),
        written: line.to_string(),
    }
}

/// Pairs each expectation with a distinct diagnostic; returns what is missing and what is
/// left over among `diagnostics` (of the expectations' severity).
pub fn reconcile<'d>(
    expectations: impl Iterator<Item = &'d Expectation>,
    diagnostics: &'d [Diagnostic],
    main: &Path,
) -> (Vec<&'d Expectation>, Vec<&'d Diagnostic>) {
    let mut used = vec![false; diagnostics.len()];
    let mut missing = Vec::new();
    for expectation in expectations {
        let found = diagnostics
            .iter()
            .enumerate()
            .find(|(index, d)| !used[*index] && expectation.matches(d, main));
        match found {
            Some((index, _)) => used[index] = true,
            None => missing.push(expectation),
        }
    }
    let left = diagnostics
        .iter()
        .zip(used)
        .filter(|(_, used)| !used)
        .map(|(d, _)| d)
        .collect();
    (missing, left)
}

/// How a diagnostic would be written as an expectation, to make fixing a header easy.
pub fn as_expectation(diagnostic: &Diagnostic, main: &Path) -> String {
    let kind = match (diagnostic.severity, diagnostic.file == main) {
        (Severity::Warning, _) => "expect-warning",
        (Severity::Error, true) => "expect",
        (Severity::Error, false) => "expect-secure",
    };
    let path = if diagnostic.key_path.is_empty() {
        "-"
    } else {
        diagnostic.key_path.as_str()
    };
    format!(
        "# {kind}: {}:{} {path} ~ {}",
        diagnostic.line, diagnostic.column, diagnostic.message
    )
}
