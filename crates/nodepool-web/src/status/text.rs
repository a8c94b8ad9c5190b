//! PrettyTable 0.7.2's text layout, as Nodepool configures it: borders, every column
//! left-aligned, one space of padding, header row, a rule only around the header and at
//! the bottom.

use super::{Cell, Table};
use nodepool_model::unicode::is_combining;

/// PrettyTable's `_char_block_width`, rule for rule (including its quirks: backspace and
/// DEL count -1, only NUL and U+001F count 0 among the control characters).
fn char_width(ch: char) -> i64 {
    let code = u32::from(ch);
    if (0x21..=0x7e).contains(&code) {
        return 1;
    }
    if (0x4e00..=0x9fff).contains(&code) || (0xac00..=0xd7af).contains(&code) {
        return 2;
    }
    if is_combining(ch) {
        return 0;
    }
    if (0x3040..=0x309f).contains(&code)
        || (0x30a0..=0x30ff).contains(&code)
        || (0xff01..=0xff60).contains(&code)
        || (0x3000..=0x303e).contains(&code)
    {
        return 2;
    }
    match code {
        0x08 | 0x7f => -1,
        0x00 | 0x1f => 0,
        _ => 1,
    }
}

/// Removes ANSI colour sequences (`ESC [ digits-and-semicolons m`), which PrettyTable does
/// not count.
fn strip_ansi(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.contains('\u{1b}') {
        return std::borrow::Cow::Borrowed(text);
    }
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        if chars[i] == '\u{1b}' && chars.get(i + 1) == Some(&'[') {
            let mut j = i + 2;
            while j < chars.len() && (chars[j].is_ascii_digit() || chars[j] == ';') {
                j += 1;
            }
            if chars.get(j) == Some(&'m') {
                i = j + 1;
                continue;
            }
        }
        out.push(chars[i]);
        i += 1;
    }
    std::borrow::Cow::Owned(out)
}

/// The number of terminal columns PrettyTable reserves for one line of text.
pub fn display_width(line: &str) -> i64 {
    strip_ansi(line).chars().map(char_width).sum()
}

/// Widest line of a (possibly multi-line) cell.
fn block_width(text: &str) -> i64 {
    text.split('\n').map(display_width).max().unwrap_or(0)
}

fn pad(text: &str, width: i64) -> String {
    let excess = width - display_width(text);
    let mut padded = String::with_capacity(text.len() + 2);
    padded.push(' ');
    padded.push_str(text);
    for _ in 0..excess.max(0) {
        padded.push(' ');
    }
    padded.push(' ');
    padded
}

fn rule(widths: &[i64]) -> String {
    let mut line = String::from("+");
    for width in widths {
        for _ in 0..(width + 2).max(0) {
            line.push('-');
        }
        line.push('+');
    }
    line
}

/// The table as `str(PrettyTable)`: no trailing newline (the CLI's `print` adds one).
/// An empty table still prints its header between rules, then a closing rule.
pub fn render_text(table: &Table) -> String {
    let cells: Vec<Vec<String>> = table
        .rows
        .iter()
        .map(|row| row.iter().map(Cell::to_text).collect())
        .collect();
    let mut widths: Vec<i64> = table.headers.iter().map(|h| block_width(h.title)).collect();
    for row in &cells {
        for (width, text) in widths.iter_mut().zip(row) {
            *width = (*width).max(block_width(text));
        }
    }
    let rule = rule(&widths);
    let mut lines = vec![rule.clone()];
    let mut header = String::from("|");
    for (h, width) in table.headers.iter().zip(&widths) {
        header.push_str(&pad(h.title, *width));
        header.push('|');
    }
    lines.push(header);
    lines.push(rule.clone());
    for row in &cells {
        let split: Vec<Vec<&str>> = row.iter().map(|text| text.split('\n').collect()).collect();
        let height = split.iter().map(Vec::len).max().unwrap_or(1);
        for y in 0..height {
            let mut line = String::from("|");
            for (parts, width) in split.iter().zip(&widths) {
                line.push_str(&pad(parts.get(y).copied().unwrap_or(""), *width));
                line.push('|');
            }
            lines.push(line);
        }
    }
    lines.push(rule);
    lines.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::Header;

    #[test]
    fn widths_follow_prettytable() {
        assert_eq!(display_width("abc"), 3);
        assert_eq!(display_width("日本"), 4);
        assert_eq!(display_width("e\u{301}"), 1);
        assert_eq!(display_width("\u{1b}[31mred\u{1b}[0m"), 3);
        assert_eq!(display_width("a\u{8}"), 0);
    }

    #[test]
    fn empty_and_multi_line() {
        let mut table = Table::new(&[Header::new("a", "A"), Header::new("b", "Bee")]);
        assert_eq!(
            render_text(&table),
            "+---+-----+\n| A | Bee |\n+---+-----+\n+---+-----+"
        );
        table
            .rows
            .push(vec![Cell::Text("x\nyy".into()), Cell::Int(7)]);
        assert_eq!(
            render_text(&table),
            "+----+-----+\n| A  | Bee |\n+----+-----+\n| x  | 7   |\n| yy |     |\n+----+-----+"
        );
    }
}
