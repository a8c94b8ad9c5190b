//! The two Unicode properties Nodepool's text output depends on, as its Python (3.11) sees
//! them: combining marks (PrettyTable counts them zero columns wide) and printability
//! (`repr()` escapes what is not printable).

use crate::unicode_tables::{COMBINING, NOT_PRINTABLE};

fn in_ranges(ranges: &[(u32, u32)], code: u32) -> bool {
    ranges
        .binary_search_by(|&(low, high)| {
            if high < code {
                std::cmp::Ordering::Less
            } else if low > code {
                std::cmp::Ordering::Greater
            } else {
                std::cmp::Ordering::Equal
            }
        })
        .is_ok()
}

/// `unicodedata.combining(ch) != 0`.
pub fn is_combining(ch: char) -> bool {
    in_ranges(COMBINING, u32::from(ch))
}

/// Python's `str.isprintable` for one character.
pub fn is_printable(ch: char) -> bool {
    let code = u32::from(ch);
    if code < 0x80 {
        return (0x20..0x7f).contains(&code);
    }
    !in_ranges(NOT_PRINTABLE, code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn properties_as_python_sees_them() {
        assert!(is_combining('\u{301}'));
        assert!(!is_combining('e'));
        assert!(is_printable('é') && is_printable(' ') && is_printable('😀'));
        // A control, an unassigned code point, private use, a format character.
        for ch in ['\u{7f}', '\u{378}', '\u{e000}', '\u{200b}'] {
            assert!(!is_printable(ch), "{ch:?}");
        }
    }
}
