//! The loader never panics, whatever it is fed, and every diagnostic it gives points at a
//! real place in the file (or is explicitly about the whole file).
//!
//! Inputs are arbitrary text, soups of YAML fragments and Nodepool keys, and the valid
//! corpus files damaged by random edits: changed bytes, deleted, duplicated and swapped
//! lines, shifted indentation, truncation.

mod common;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use common::{CorpusFile, corpus_files};
use nodepool_config::{Diagnostic, Env, diff, parse_config};
use proptest::prelude::*;

/// Messages of diagnostics that concern a file as a whole (line 0).
const WHOLE_FILE: &[&str] = &["the configuration file is empty"];

fn corpus() -> &'static [CorpusFile] {
    static CORPUS: OnceLock<Vec<CorpusFile>> = OnceLock::new();
    CORPUS.get_or_init(|| {
        corpus_files("valid")
            .iter()
            .map(|p| CorpusFile::read(p))
            .collect()
    })
}

fn check_diagnostic(diagnostic: &Diagnostic, texts: &[(&Path, &str)]) -> Result<(), TestCaseError> {
    if diagnostic.line == 0 {
        prop_assert!(
            WHOLE_FILE.contains(&diagnostic.message.as_str()) && diagnostic.key_path.is_empty(),
            "a diagnostic without a position that is not about the whole file: {diagnostic}"
        );
        return Ok(());
    }
    prop_assert!(diagnostic.column >= 1, "column 0: {diagnostic}");
    let text = texts
        .iter()
        .find(|(p, _)| *p == diagnostic.file)
        .map(|(_, t)| *t);
    prop_assert!(
        text.is_some(),
        "a diagnostic for a file that was not loaded: {diagnostic}"
    );
    // A position may sit just past the last line (end of input), not further. YAML breaks
    // lines at CR too, so count every break character as one line (an upper bound).
    let lines = text
        .unwrap_or_default()
        .split(['\n', '\r', '\u{85}', '\u{2028}', '\u{2029}'])
        .count();
    prop_assert!(
        diagnostic.line <= lines + 1,
        "line {} of a {lines}-line file: {diagnostic}",
        diagnostic.line
    );
    prop_assert!(
        !diagnostic.message.is_empty(),
        "an empty message at {diagnostic}"
    );
    Ok(())
}

/// Loads `text` (and `secure`) and checks the invariants of the result.
fn check_load(text: &str, secure: Option<&str>, env: &Env) -> Result<(), TestCaseError> {
    let path = PathBuf::from("fuzz.yaml");
    let secure_path = PathBuf::from("fuzz.secure.yaml");
    let result = parse_config(&path, text, secure.map(|s| (secure_path.as_path(), s)), env);
    let mut texts = vec![(path.as_path(), text)];
    if let Some(s) = secure {
        texts.push((secure_path.as_path(), s));
    }
    match result {
        Ok(loaded) => {
            for warning in &loaded.warnings {
                check_diagnostic(warning, &texts)?;
            }
            prop_assert!(diff(&loaded.config, &loaded.config).is_empty());
        }
        Err(errors) => {
            prop_assert!(
                errors.errors().next().is_some(),
                "an Err without any error: {:?}",
                errors.0
            );
            for diagnostic in &errors.0 {
                check_diagnostic(diagnostic, &texts)?;
            }
        }
    }
    Ok(())
}

/// One way of damaging a file.
#[derive(Debug, Clone)]
enum Edit {
    /// Replace the byte at (position % len) with one of a few troublesome characters.
    Byte(usize, char),
    DeleteLine(usize),
    DuplicateLine(usize),
    SwapLines(usize, usize),
    /// Add or remove leading spaces (indentation) of a line.
    Indent(usize, i8),
    /// Insert a fragment at the start of a line.
    Insert(usize, &'static str),
    Truncate(usize),
}

const FRAGMENTS: &[&str] = &[
    "- ",
    ": ",
    "name: x",
    "labels:",
    "- name: fake-label",
    "providers:",
    "pools:",
    "diskimages:",
    "cloud-images:",
    "driver: static",
    "driver: aws",
    "driver: kubernetes",
    "driver: openshiftpods",
    "driver: qemu",
    "driver: container",
    "driver: nope",
    "<<: *a",
    "&a",
    "*a",
    "*nope",
    "[",
    "]",
    "{",
    "}",
    "'",
    "\"",
    "|",
    ">",
    "!!str",
    "!!int",
    "!tag",
    "?",
    "---",
    "...",
    "%(NODEPOOL_X)",
    "~",
    "null",
    "yes",
    "0x1f",
    "010",
    "1e5",
    "-1",
    "99999999999999999999",
    ".inf",
    "\t",
    "#",
    "min-ready: -5",
    "max-servers: ten",
    "parent: x",
    "abstract: true",
    "diskimage: x",
    "cloud-image: x",
    "image-id: x",
    "fleet: {}",
    "type: pod",
    "zookeeper-tls: {}",
    "chroot: x",
    "port: 0",
    "labels: a b",
    "nodes:",
    "env-vars: {a: 1}",
    "formats: [x]",
    "é",
    "\u{feff}",
];

const BYTES: &[char] = &[
    ':', '-', ' ', '\n', '\t', '[', ']', '{', '}', '&', '*', '!', '#', '"', '\'', '|', '>', '%',
    '@', '`', '0', 'x', '\0', 'é',
];

fn edit_strategy() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (any::<usize>(), prop::sample::select(BYTES)).prop_map(|(p, c)| Edit::Byte(p, c)),
        any::<usize>().prop_map(Edit::DeleteLine),
        any::<usize>().prop_map(Edit::DuplicateLine),
        (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Edit::SwapLines(a, b)),
        (any::<usize>(), -4i8..=4).prop_map(|(l, d)| Edit::Indent(l, d)),
        (any::<usize>(), prop::sample::select(FRAGMENTS)).prop_map(|(l, f)| Edit::Insert(l, f)),
        any::<usize>().prop_map(Edit::Truncate),
    ]
}

fn apply(text: &str, edit: &Edit) -> String {
    let mut lines: Vec<String> = text.split('\n').map(String::from).collect();
    let n = lines.len().max(1);
    match edit {
        Edit::Byte(position, c) => {
            let chars: Vec<char> = text.chars().collect();
            if chars.is_empty() {
                return c.to_string();
            }
            let at = position % chars.len();
            let mut out: String = chars[..at].iter().collect();
            out.push(*c);
            out.extend(&chars[at + 1..]);
            return out;
        }
        Edit::DeleteLine(l) => {
            if !lines.is_empty() {
                lines.remove(l % n);
            }
        }
        Edit::DuplicateLine(l) => {
            if !lines.is_empty() {
                let line = lines[l % n].clone();
                lines.insert(l % n, line);
            }
        }
        Edit::SwapLines(a, b) => {
            if !lines.is_empty() {
                lines.swap(a % n, b % n);
            }
        }
        Edit::Indent(l, delta) => {
            if !lines.is_empty() {
                let line = &mut lines[l % n];
                if *delta >= 0 {
                    line.insert_str(0, &" ".repeat(*delta as usize));
                } else {
                    let strip = line
                        .chars()
                        .take((-delta) as usize)
                        .take_while(|c| *c == ' ')
                        .count();
                    line.replace_range(..strip, "");
                }
            }
        }
        Edit::Insert(l, fragment) => {
            if lines.is_empty() {
                lines.push(String::new());
            }
            let line = &mut lines[l % n];
            let indent = line.len() - line.trim_start().len();
            line.insert_str(indent, fragment);
        }
        Edit::Truncate(position) => {
            let chars: Vec<char> = text.chars().collect();
            let at = if chars.is_empty() {
                0
            } else {
                position % chars.len()
            };
            return chars[..at].iter().collect();
        }
    }
    lines.join("\n")
}

fn soup() -> impl Strategy<Value = String> {
    let token = prop_oneof![
        prop::sample::select(FRAGMENTS).prop_map(String::from),
        Just("\n".to_string()),
        Just("\n  ".to_string()),
        Just("\n    ".to_string()),
        "[a-z-]{1,12}".prop_map(|s| s),
    ];
    prop::collection::vec(token, 0..60).prop_map(|tokens| tokens.concat())
}

/// 600 cases per property (a second or two in debug builds); `PROPTEST_CASES` asks for more.
fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(600)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_text_never_panics(text in ".{0,400}") {
        check_load(&text, None, &Env::new())?;
    }

    #[test]
    fn yaml_soup_never_panics(text in soup(), secure in proptest::option::of(soup())) {
        check_load(&text, secure.as_deref(), &Env::new())?;
    }

    #[test]
    fn damaged_corpus_files_never_panic(
        index in any::<prop::sample::Index>(),
        edits in prop::collection::vec(edit_strategy(), 1..6),
        damage_secure in any::<bool>(),
    ) {
        let file = index.get(corpus());
        let mut text = file.text.clone();
        let mut secure = file.secure_text.clone();
        for edit in &edits {
            match secure.as_mut() {
                Some(s) if damage_secure => *s = apply(s, edit),
                _ => text = apply(&text, edit),
            }
        }
        check_load(&text, secure.as_deref(), &file.env)?;
    }
}

#[test]
fn undamaged_corpus_files_pass_the_same_checks() {
    for file in corpus() {
        let result = check_load(&file.text, file.secure_text.as_deref(), &file.env);
        assert!(result.is_ok(), "{}: {result:?}", file.path.display());
    }
}

#[test]
fn edits_do_what_they_say() {
    let text = "a: 1\n  b: 2\nc: 3";
    assert_eq!(apply(text, &Edit::DeleteLine(1)), "a: 1\nc: 3");
    assert_eq!(
        apply(text, &Edit::DuplicateLine(3)),
        "a: 1\na: 1\n  b: 2\nc: 3"
    );
    assert_eq!(apply(text, &Edit::SwapLines(0, 2)), "c: 3\n  b: 2\na: 1");
    assert_eq!(apply(text, &Edit::Indent(1, -4)), "a: 1\nb: 2\nc: 3");
    assert_eq!(apply(text, &Edit::Indent(0, 2)), "  a: 1\n  b: 2\nc: 3");
    assert_eq!(apply(text, &Edit::Insert(1, "- ")), "a: 1\n  - b: 2\nc: 3");
    assert_eq!(apply(text, &Edit::Byte(1, '-')), "a- 1\n  b: 2\nc: 3");
    assert_eq!(apply(text, &Edit::Truncate(4)), "a: 1");
}
