//! JSON bytes exactly as Python's `json.dumps(obj)` prints them, and Python's `repr()` of
//! parsed JSON values (which Nodepool's tables and request templates print).
//!
//! Readers never depend on formatting, but writing the same bytes as
//! Nodepool keeps diffs, golden tests and side-by-side comparisons honest.
//! Python's defaults differ from serde_json's in three ways:
//!
//! * separators are `", "` and `": "` (no indentation);
//! * `ensure_ascii=True`: every character outside printable ASCII
//!   (`0x20..=0x7e`) is escaped, non-ASCII as `\uXXXX` UTF-16 code units
//!   (surrogate pairs above U+FFFF), DEL as `\u007f`, lowercase hex;
//! * floats print as Python's `repr(float)`: shortest round-trip digits,
//!   positional notation when the decimal exponent is in `-4..16` (always with
//!   a fractional part, `1732550000.0`), scientific otherwise with a signed
//!   two-digit-minimum exponent (`1e+16`, `1e-05`).
//!
//! Non-finite floats cannot be represented: serde_json writes `null` for
//! them (Python would write `NaN`/`Infinity`). Domain times are always finite.

use std::io;

use serde::Serialize;
use serde_json::ser::{Formatter, Serializer};
use serde_json::{Map, Value};

/// A serde_json [`Formatter`] that prints like Python's `json.dumps`.
#[derive(Debug, Clone, Copy, Default)]
pub struct PythonFormatter;

impl Formatter for PythonFormatter {
    fn write_f64<W>(&mut self, writer: &mut W, value: f64) -> io::Result<()>
    where
        W: ?Sized + io::Write,
    {
        writer.write_all(python_float_repr(value).as_bytes())
    }

    fn write_f32<W>(&mut self, writer: &mut W, value: f32) -> io::Result<()>
    where
        W: ?Sized + io::Write,
    {
        // Python has no f32; print the value as the f64 it widens to.
        self.write_f64(writer, f64::from(value))
    }

    fn write_string_fragment<W>(&mut self, writer: &mut W, fragment: &str) -> io::Result<()>
    where
        W: ?Sized + io::Write,
    {
        // serde_json has already escaped `"`, `\` and control characters
        // below 0x20 (identically to Python) and hands us the rest.
        let mut plain_start = 0;
        for (index, ch) in fragment.char_indices() {
            if (' '..='~').contains(&ch) {
                continue;
            }
            writer.write_all(&fragment.as_bytes()[plain_start..index])?;
            let mut units = [0u16; 2];
            for unit in ch.encode_utf16(&mut units) {
                write!(writer, "\\u{unit:04x}")?;
            }
            plain_start = index + ch.len_utf8();
        }
        writer.write_all(&fragment.as_bytes()[plain_start..])
    }

    fn begin_array_value<W>(&mut self, writer: &mut W, first: bool) -> io::Result<()>
    where
        W: ?Sized + io::Write,
    {
        if first {
            Ok(())
        } else {
            writer.write_all(b", ")
        }
    }

    fn begin_object_key<W>(&mut self, writer: &mut W, first: bool) -> io::Result<()>
    where
        W: ?Sized + io::Write,
    {
        if first {
            Ok(())
        } else {
            writer.write_all(b", ")
        }
    }

    fn begin_object_value<W>(&mut self, writer: &mut W) -> io::Result<()>
    where
        W: ?Sized + io::Write,
    {
        writer.write_all(b": ")
    }
}

/// Serializes `value` as `json.dumps(value)` would, keys in the order `value`
/// serializes them.
pub fn to_python_json<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
    let mut bytes = Vec::new();
    let mut serializer = Serializer::with_formatter(&mut bytes, PythonFormatter);
    // Writing into a Vec cannot fail, and the values this crate serializes
    // (strings, numbers, lists, string-keyed maps, derived structs) have no
    // failing Serialize impl: an error here is a bug in this crate.
    value
        .serialize(&mut serializer)
        .expect("serializing model values to JSON cannot fail");
    bytes
}

/// Serializes a JSON object as `json.dumps(value, sort_keys=True)` would:
/// keys of every object, nested ones included, in code point order.
pub fn to_python_json_sorted(object: &Map<String, Value>) -> Vec<u8> {
    let mut sorted = object.clone();
    sort_keys_recursively(&mut sorted);
    to_python_json(&sorted)
}

fn sort_keys_recursively(object: &mut Map<String, Value>) {
    object.sort_keys();
    for value in object.values_mut() {
        sort_value_keys(value);
    }
}

fn sort_value_keys(value: &mut Value) {
    match value {
        Value::Object(object) => sort_keys_recursively(object),
        Value::Array(items) => items.iter_mut().for_each(sort_value_keys),
        _ => {}
    }
}

/// The shortest digits that read back as `value`, as `<d>[.<ddd>]e<exp>`,
/// choosing among equally short candidates the one nearest the exact value
/// with ties to even, as Python's repr (David Gay's dtoa) does.
///
/// Rust's `{:e}` already gives the shortest length, but breaks an exact tie
/// upwards (`-2131840612963129.25` prints as `...129.3`, Python `...129.2`).
/// Rust's fixed-precision formatting is exact and rounds ties to even, so
/// redo the last digit with it whenever that still reads back as `value`.
fn shortest_round_trip_scientific(value: f64) -> String {
    let shortest = format!("{value:e}");
    let mantissa = shortest.split('e').next().unwrap_or_default();
    let digit_count = mantissa.bytes().filter(u8::is_ascii_digit).count();
    if digit_count > 1 {
        let nearest = format!("{value:.precision$e}", precision = digit_count - 1);
        if nearest != shortest && nearest.parse::<f64>() == Ok(value) {
            return nearest;
        }
    }
    shortest
}

/// Python's `repr(float)` for a finite value.
pub fn python_float_repr(value: f64) -> String {
    if !value.is_finite() {
        // What Python's json module prints with the default allow_nan=True.
        return if value.is_nan() {
            "NaN".to_owned()
        } else if value > 0.0 {
            "Infinity".to_owned()
        } else {
            "-Infinity".to_owned()
        };
    }
    let scientific = shortest_round_trip_scientific(value);
    let (mantissa, exponent) = scientific
        .split_once('e')
        .unwrap_or((scientific.as_str(), "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    let (sign, mantissa) = match mantissa.strip_prefix('-') {
        Some(rest) => ("-", rest),
        None => ("", mantissa),
    };
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();

    let mut out = String::from(sign);
    if (-4..16).contains(&exponent) {
        if exponent >= 0 {
            let integer_len = usize::try_from(exponent).unwrap_or(0) + 1;
            if digits.len() <= integer_len {
                out.push_str(&digits);
                out.extend(std::iter::repeat_n('0', integer_len - digits.len()));
                out.push_str(".0");
            } else {
                out.push_str(&digits[..integer_len]);
                out.push('.');
                out.push_str(&digits[integer_len..]);
            }
        } else {
            let leading_zeros = usize::try_from(-exponent - 1).unwrap_or(0);
            out.push_str("0.");
            out.extend(std::iter::repeat_n('0', leading_zeros));
            out.push_str(&digits);
        }
    } else {
        out.push_str(&digits[..1]);
        if digits.len() > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        let exponent_sign = if exponent < 0 { '-' } else { '+' };
        out.push_str(&format!("e{exponent_sign}{:02}", exponent.unsigned_abs()));
    }
    out
}

/// Python's `repr()` of a value parsed from JSON.
pub fn python_repr(value: &Value) -> String {
    let mut out = String::new();
    write_repr(&mut out, value);
    out
}

fn write_repr(out: &mut String, value: &Value) {
    match value {
        Value::Null => out.push_str("None"),
        Value::Bool(true) => out.push_str("True"),
        Value::Bool(false) => out.push_str("False"),
        Value::Number(number) => {
            if let Some(i) = number.as_i64() {
                out.push_str(&i.to_string());
            } else if let Some(u) = number.as_u64() {
                out.push_str(&u.to_string());
            } else if let Some(f) = number.as_f64() {
                out.push_str(&python_float_repr(f));
            }
        }
        Value::String(text) => write_string_repr(out, text),
        Value::Array(items) => {
            out.push('[');
            for (index, item) in items.iter().enumerate() {
                if index > 0 {
                    out.push_str(", ");
                }
                write_repr(out, item);
            }
            out.push(']');
        }
        Value::Object(object) => {
            out.push('{');
            for (index, (key, item)) in object.iter().enumerate() {
                if index > 0 {
                    out.push_str(", ");
                }
                write_string_repr(out, key);
                out.push_str(": ");
                write_repr(out, item);
            }
            out.push('}');
        }
    }
}

/// CPython's `unicode_repr`: single quotes unless the text has a single quote and no
/// double quote; `\\`, the quote, `\t`, `\n`, `\r` escaped; other unprintable characters as
/// `\xhh`, `\uhhhh` or `\Uhhhhhhhh`.
fn write_string_repr(out: &mut String, text: &str) {
    let quote = if text.contains('\'') && !text.contains('"') {
        '"'
    } else {
        '\''
    };
    out.push(quote);
    for ch in text.chars() {
        match ch {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if crate::unicode::is_printable(c) => out.push(c),
            c => {
                let code = u32::from(c);
                if code < 0x100 {
                    out.push_str(&format!("\\x{code:02x}"));
                } else if code < 0x10000 {
                    out.push_str(&format!("\\u{code:04x}"));
                } else {
                    out.push_str(&format!("\\U{code:08x}"));
                }
            }
        }
    }
    out.push(quote);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reprs_escape_what_python_finds_unprintable() {
        assert_eq!(
            python_repr(&serde_json::json!({"a": [1, 2.5, null, true], "b": "it's"})),
            r#"{'a': [1, 2.5, None, True], 'b': "it's"}"#
        );
        // U+0378 is unassigned and U+E000 private use: Python escapes both.
        assert_eq!(
            python_repr(&Value::from(
                "x\u{0}\u{85}é\u{200b}\u{378}\u{e000}😀\u{e0001}"
            )),
            r"'x\x00\x85é\u200b\u0378\ue000😀\U000e0001'"
        );
    }
    use serde_json::json;

    #[test]
    // The tie cases spell out exact binary values on purpose.
    #[allow(clippy::excessive_precision)]
    fn floats_print_like_python_repr() {
        let cases = [
            (1732550000.123456, "1732550000.123456"),
            (1732550000.0, "1732550000.0"),
            (0.1, "0.1"),
            (1e16, "1e+16"),
            (1e15, "1000000000000000.0"),
            (123456789012345680.0, "1.2345678901234568e+17"),
            (1e-5, "1e-05"),
            (0.0001, "0.0001"),
            (-0.0, "-0.0"),
            (0.0, "0.0"),
            (5e-324, "5e-324"),
            (1.7976931348623157e308, "1.7976931348623157e+308"),
            (2.5e-7, "2.5e-07"),
            (1e22, "1e+22"),
            (-1.5, "-1.5"),
            (100.0, "100.0"),
            (123.456, "123.456"),
            (0.000123, "0.000123"),
            // Exact ties in the last digit round to even, as in Python.
            (-2131840612963129.25, "-2131840612963129.2"),
            (148906574030391.125, "148906574030391.12"),
            (1685094889599744.25, "1685094889599744.2"),
            (1685094889599744.75, "1685094889599744.8"),
        ];
        for (value, expected) in cases {
            assert_eq!(python_float_repr(value), expected, "{value:e}");
        }
        assert_eq!(python_float_repr(f64::NAN), "NaN");
        assert_eq!(python_float_repr(f64::INFINITY), "Infinity");
        assert_eq!(python_float_repr(f64::NEG_INFINITY), "-Infinity");
    }

    #[test]
    fn separators_and_nesting_match_json_dumps() {
        let value = json!({"a": [1, 2.5, {"b": null}], "c": {}, "d": [], "e": true});
        assert_eq!(
            String::from_utf8(to_python_json(&value)).unwrap(),
            r#"{"a": [1, 2.5, {"b": null}], "c": {}, "d": [], "e": true}"#
        );
    }

    #[test]
    fn strings_are_ascii_escaped() {
        let value = json!(["café ☕ 🚀", "\u{7f}\u{0}\u{1f}\t\n", "a\"b\\c/", "plain"]);
        assert_eq!(
            String::from_utf8(to_python_json(&value)).unwrap(),
            r#"["caf\u00e9 \u2615 \ud83d\ude80", "\u007f\u0000\u001f\t\n", "a\"b\\c/", "plain"]"#
        );
    }

    #[test]
    fn object_keys_are_escaped_too() {
        let value = json!({"é": 1});
        assert_eq!(to_python_json(&value), br#"{"\u00e9": 1}"#);
    }

    #[test]
    fn sorted_output_sorts_nested_objects() {
        let Value::Object(object) = json!({"b": {"z": 1, "a": [{"y": 1, "x": 2}]}, "a": 0}) else {
            unreachable!()
        };
        assert_eq!(
            String::from_utf8(to_python_json_sorted(&object)).unwrap(),
            r#"{"a": 0, "b": {"a": [{"x": 2, "y": 1}], "z": 1}}"#
        );
    }
}
