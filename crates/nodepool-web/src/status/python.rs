//! How Python prints the values Nodepool puts in its tables: `str()` of parsed JSON values
//! (dicts as reprs), and `status.age`.

pub use nodepool_model::python_json::python_repr;
use serde_json::Value;

pub(crate) fn python_bool(value: bool) -> &'static str {
    if value { "True" } else { "False" }
}

/// Python's `divmod` of two floats (CPython `float_divmod`): the remainder has the sign of
/// the divisor and the quotient is floored.
fn python_divmod(x: f64, y: f64) -> (f64, f64) {
    let mut remainder = x % y;
    let mut quotient = (x - remainder) / y;
    if remainder != 0.0 {
        if (y < 0.0) != (remainder < 0.0) {
            remainder += y;
            quotient -= 1.0;
        }
    } else {
        remainder = 0.0_f64.copysign(y);
    }
    let floored = if quotient != 0.0 {
        let mut floored = quotient.floor();
        if quotient - floored > 0.5 {
            floored += 1.0;
        }
        floored
    } else {
        0.0_f64.copysign(x / y)
    };
    (floored, remainder)
}

/// Python's `'%02d' % value` for a float: truncated toward zero, at least two digits.
fn two_digits(value: f64) -> String {
    // Finite by construction (a difference of finite times); `as` saturates otherwise.
    format!("{:02}", value.trunc() as i64)
}

/// Nodepool's `status.age`: `now - timestamp` as `DD:HH:MM:SS` (days may exceed two
/// digits; a timestamp in the future gives negative days, as Python's floored divmod does).
pub fn age(now: f64, timestamp: f64) -> String {
    let elapsed = now - timestamp;
    let (minutes, seconds) = python_divmod(elapsed, 60.0);
    let (hours, minutes) = python_divmod(minutes, 60.0);
    let (days, hours) = python_divmod(hours, 24.0);
    format!(
        "{}:{}:{}:{}",
        two_digits(days),
        two_digits(hours),
        two_digits(minutes),
        two_digits(seconds)
    )
}

/// Python's `str()` of a value parsed from JSON: strings as themselves, `None` as `None`,
/// booleans `True`/`False`, floats in `repr` form, lists and dicts as their reprs.
///
/// (Nodepool's table code prints a top-level `None` as an empty cell and joins top-level
/// lists with `,`; [`super::Cell`] does that before calling this.)
pub fn python_str(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::String(text) => text.clone(),
        Value::Array(items) => items.iter().map(python_str).collect::<Vec<_>>().join(","),
        other => python_repr(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn ages_like_python() {
        assert_eq!(age(100.0, 100.0), "00:00:00:00");
        assert_eq!(age(1000.0, 937.9), "00:00:01:02");
        assert_eq!(age(200_000.0 * 86400.0, 0.0), "200000:00:00:00");
        // A future timestamp: floored divmod gives -1 days and positive remainders.
        assert_eq!(age(100.0, 105.5), "-1:23:59:54");
    }

    #[test]
    fn reprs_like_python() {
        assert_eq!(
            python_repr(&json!({"a": [1, 2.5, null, true], "b": "it's", "c": "x\"y'z"})),
            r#"{'a': [1, 2.5, None, True], 'b': "it's", 'c': 'x"y\'z'}"#
        );
        assert_eq!(
            python_repr(&json!("tab\there\u{0}\u{85}é\u{200b}😀")),
            r"'tab\there\x00\x85é\u200b😀'"
        );
        assert_eq!(python_str(&json!(1e20)), "1e+20");
        assert_eq!(python_str(&json!("plain")), "plain");
    }
}
