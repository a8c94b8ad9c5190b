//! Python's `shlex.split` (POSIX mode, no comments): how Nodepool turns the build command
//! line into an argv. No shell runs it, so `$VAR`, `;`, `|` and backquotes in `dib-cmd` or
//! an element name are plain characters, as with Nodepool.

/// Why a line cannot be split.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SplitError {
    #[error("no closing quotation")]
    NoClosingQuotation,
    #[error("no escaped character")]
    NoEscapedCharacter,
}

/// Splits `line` into words as `shlex.split(line)` does.
pub fn split(line: &str) -> Result<Vec<String>, SplitError> {
    let mut words = Vec::new();
    let mut word = String::new();
    // A word has begun (so `''` is an empty word, not nothing).
    let mut in_word = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' | '\r' | '\n' => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            '\\' => {
                word.push(chars.next().ok_or(SplitError::NoEscapedCharacter)?);
                in_word = true;
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next().ok_or(SplitError::NoClosingQuotation)? {
                        '\'' => break,
                        c => word.push(c),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next().ok_or(SplitError::NoClosingQuotation)? {
                        '"' => break,
                        // Inside double quotes a backslash escapes only `"` and itself.
                        '\\' => match chars.next().ok_or(SplitError::NoEscapedCharacter)? {
                            c @ ('"' | '\\') => word.push(c),
                            c => {
                                word.push('\\');
                                word.push(c);
                            }
                        },
                        c => word.push(c),
                    }
                }
            }
            c => {
                word.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        words.push(word);
    }
    Ok(words)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each line with what Python 3.11's `shlex.split` returns for it.
    #[test]
    fn splits_as_python_does() {
        let cases: &[(&str, &[&str])] = &[
            (
                "disk-image-create -x -t qcow2",
                &["disk-image-create", "-x", "-t", "qcow2"],
            ),
            ("  a\tb\n c  ", &["a", "b", "c"]),
            (
                "--qemu-img-options 'compat=0.10'",
                &["--qemu-img-options", "compat=0.10"],
            ),
            ("-o '/a b/it'\\''s'", &["-o", "/a b/it's"]),
            (
                "$HOME; rm -rf / `id` | x",
                &["$HOME;", "rm", "-rf", "/", "`id`", "|", "x"],
            ),
            (r#""a \" \\ \$ b" c"#, &[r#"a " \ \$ b"#, "c"]),
            ("'' x \"\"", &["", "x", ""]),
            (r"a\ b c\\d", &["a b", r"c\d"]),
            ("a#b # c", &["a#b", "#", "c"]),
            ("pre'quoted'post", &["prequotedpost"]),
        ];
        for (line, expected) in cases {
            let expected: Vec<String> = expected.iter().map(|w| w.to_string()).collect();
            assert_eq!(split(line), Ok(expected), "{line:?}");
        }
    }

    #[test]
    fn unclosed_quotes_and_trailing_escapes_are_errors() {
        assert_eq!(split("a 'b"), Err(SplitError::NoClosingQuotation));
        assert_eq!(split("a \"b\\"), Err(SplitError::NoEscapedCharacter));
        assert_eq!(split("a b\\"), Err(SplitError::NoEscapedCharacter));
    }
}
