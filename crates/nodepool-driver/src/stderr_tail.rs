//! The end of a failed command's standard error, for error messages.

/// Lines of a failed command's stderr an error message keeps.
const KEPT_LINES: usize = 12;
/// Characters of a failed command's stderr an error message keeps.
const KEPT_CHARS: usize = 2000;

/// The last lines of `stderr`, trimmed, with a count of what was left out.
///
/// A tool that fails on every file (tar on a full disk) can print megabytes; the cause is
/// in its last lines, and an error that size drowns the log and the test report.
pub fn stderr_tail(stderr: &[u8]) -> String {
    let text = String::from_utf8_lossy(stderr);
    let lines: Vec<&str> = text.trim().lines().collect();
    let first_kept = lines.len().saturating_sub(KEPT_LINES);
    let mut tail = lines[first_kept..].join("\n");
    let mut dropped = first_kept;
    if tail.chars().count() > KEPT_CHARS {
        let skip = tail.chars().count() - KEPT_CHARS;
        let cut = tail.char_indices().nth(skip).map_or(tail.len(), |(i, _)| i);
        // Whole lines before the cut are dropped; the one it falls in keeps its end.
        dropped += tail[..cut].matches('\n').count();
        tail = format!("…{}", &tail[cut..]);
    }
    match dropped {
        0 => tail,
        1 => format!("[1 earlier line left out]\n{tail}"),
        n => format!("[{n} earlier lines left out]\n{tail}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_output_is_kept_whole_and_trimmed() {
        assert_eq!(stderr_tail(b"  one\ntwo\n\n"), "one\ntwo");
        assert_eq!(stderr_tail(b""), "");
    }

    #[test]
    fn long_output_keeps_its_last_lines() {
        let text: String = (1..=100).map(|i| format!("line {i}\n")).collect();
        let tail = stderr_tail(text.as_bytes());
        assert!(
            tail.starts_with("[88 earlier lines left out]\nline 89\n"),
            "{tail}"
        );
        assert!(tail.ends_with("line 100"), "{tail}");
    }

    #[test]
    fn one_huge_line_keeps_its_end() {
        let text = format!("{}the cause", "x".repeat(10_000));
        let tail = stderr_tail(text.as_bytes());
        assert!(tail.chars().count() < KEPT_CHARS + 40, "{}", tail.len());
        assert!(tail.ends_with("the cause"));
        assert!(tail.starts_with("…x"), "{tail}");
    }
}
