//! `{request.<attr>}` templates of a label's `dynamic-instance-properties` (OpenStack) and
//! `dynamic-tags` (AWS): the subset of Python's `str.format` those keys are written in.
//!
//! Nodepool formats each template with `request=request.getSafeAttributes()` and, when that
//! raises, logs the error and leaves the entry out; the node is still launched. We do the
//! same. Supported: literal text, `{{`/`}}` escapes and `{request.<attr>}` for the eight
//! attributes below, followed by any number of `[index]` lookups (a list or string by
//! position, a dict such as `requestor_data` by string key), a `!s` or `!r` conversion and
//! a format spec of fill, align (`<`, `>`, `^`, `=`), `0`, width, a string precision and the
//! `s`/`d` types (e.g. `{request.id:>20}`, `{request.labels[0]!r:_^12}`). Anything else
//! Python would accept (attributes of attributes, `!a`, signs, `#`, grouping, number
//! precision and other types, nested fields in the spec) is an error, so such an entry is
//! skipped where Python would have filled it.

use std::collections::BTreeMap;

use nodepool_model::python_json::python_repr;
use nodepool_model::{NodeRequest, RequestId};
use serde_json::Value;

use crate::instance::metadata_keys;
use crate::provider::CreateSpec;

/// The node request a node is launched for, as Nodepool's `NodeRequest.getSafeAttributes`
/// exposes it to templates: these and no other fields are visible to configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestAttributes {
    /// `<precedence>-<sequence>`, e.g. `100-0000000042`.
    pub id: String,
    /// The request's `node_types`.
    pub labels: Vec<String>,
    pub requestor: Option<String>,
    /// Opaque JSON of the requestor; `Null` when absent.
    pub requestor_data: Value,
    pub relative_priority: i64,
    pub event_id: Option<String>,
    pub created_time: Option<f64>,
    pub tenant_name: Option<String>,
}

impl RequestAttributes {
    pub fn new(id: &RequestId, request: &NodeRequest) -> RequestAttributes {
        RequestAttributes {
            id: id.to_string(),
            labels: request.node_types.clone(),
            requestor: request.requestor.clone(),
            requestor_data: request.requestor_data.clone(),
            relative_priority: request.relative_priority,
            event_id: request.event_id.clone(),
            created_time: request.created_time,
            tenant_name: request.tenant_name.clone(),
        }
    }

    /// One attribute as the JSON-shaped value Python holds, `None` for an unknown name.
    fn attribute(&self, name: &str) -> Option<Value> {
        let optional = |value: &Option<String>| value.clone().map_or(Value::Null, Value::String);
        Some(match name {
            "id" => Value::String(self.id.clone()),
            "labels" => Value::from(self.labels.clone()),
            "requestor" => optional(&self.requestor),
            "requestor_data" => self.requestor_data.clone(),
            "relative_priority" => Value::from(self.relative_priority),
            "event_id" => optional(&self.event_id),
            "created_time" => self
                .created_time
                .and_then(serde_json::Number::from_f64)
                .map_or(Value::Null, Value::Number),
            "tenant_name" => optional(&self.tenant_name),
            _ => return None,
        })
    }
}

/// Why a template could not be filled; the entry is then left out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    #[error("single '}}' encountered in format string")]
    SingleClosingBrace,
    #[error("expected '}}' before end of string")]
    UnclosedField,
    #[error("unsupported replacement field {{{0}}}: only {{request.<attribute>}} is supported")]
    UnsupportedField(String),
    #[error("the request has no attribute {0:?}")]
    UnknownAttribute(String),
    #[error("there is no node request to format {{request.{0}}} with")]
    NoRequest(String),
    /// An `[index]` that finds nothing (Python's IndexError, KeyError or TypeError).
    #[error("{{{field}}}: {reason}")]
    Lookup { field: String, reason: String },
    #[error("{{{field}}}: unsupported conversion {conversion:?}: only !s and !r are supported")]
    UnsupportedConversion { field: String, conversion: String },
    #[error("{{{field}}}: cannot format a {kind} with the format spec {spec:?}: {reason}")]
    UnsupportedSpec {
        field: String,
        spec: String,
        kind: &'static str,
        reason: String,
    },
}

/// Fills `template` as Python's `template.format(request=...)` would.
pub fn format_request_template(
    template: &str,
    request: Option<&RequestAttributes>,
) -> Result<String, FormatError> {
    let mut out = String::with_capacity(template.len());
    let mut chars = template.chars().peekable();
    while let Some(ch) = chars.next() {
        match ch {
            '{' if chars.peek() == Some(&'{') => {
                chars.next();
                out.push('{');
            }
            '{' => {
                // Python finds the field's end by brace nesting, so `{a{b}c}` is one field.
                let mut field = String::new();
                let mut depth = 1;
                loop {
                    let Some(c) = chars.next() else {
                        return Err(FormatError::UnclosedField);
                    };
                    match c {
                        '{' => depth += 1,
                        '}' => {
                            depth -= 1;
                            if depth == 0 {
                                break;
                            }
                        }
                        _ => {}
                    }
                    field.push(c);
                }
                out.push_str(&replacement(&field, request)?);
            }
            '}' if chars.peek() == Some(&'}') => {
                chars.next();
                out.push('}');
            }
            '}' => return Err(FormatError::SingleClosingBrace),
            other => out.push(other),
        }
    }
    Ok(out)
}

/// The text for one replacement field (the part between the braces).
fn replacement(field: &str, request: Option<&RequestAttributes>) -> Result<String, FormatError> {
    let unsupported = || FormatError::UnsupportedField(field.to_string());
    if field.contains('{') {
        // Nested fields (Python fills them inside the format spec).
        return Err(unsupported());
    }
    let (name, conversion, spec) = split_field(field).ok_or_else(unsupported)?;
    let (attribute, lookups) = parse_field_name(name).ok_or_else(unsupported)?;
    let request = request.ok_or_else(|| FormatError::NoRequest(attribute.to_string()))?;
    let mut value = request
        .attribute(attribute)
        .ok_or_else(|| FormatError::UnknownAttribute(attribute.to_string()))?;
    for key in lookups {
        value = look_up(&value, key).map_err(|reason| FormatError::Lookup {
            field: field.to_string(),
            reason,
        })?;
    }
    let value = match conversion {
        None => value,
        Some("s") => Value::String(python_str(&value)),
        Some("r") => Value::String(python_repr(&value)),
        Some(other) => {
            return Err(FormatError::UnsupportedConversion {
                field: field.to_string(),
                conversion: other.to_string(),
            });
        }
    };
    format_value(&value, spec).map_err(|reason| FormatError::UnsupportedSpec {
        field: field.to_string(),
        spec: spec.to_string(),
        kind: python_type(&value),
        reason,
    })
}

/// Splits a field into its name, conversion and format spec as Python does: the name ends
/// at the first `!` or `:` outside square brackets; a conversion is one character followed
/// by `:` or the end. `None` for a malformed field.
fn split_field(field: &str) -> Option<(&str, Option<&str>, &str)> {
    let mut in_brackets = false;
    let mut end = field.len();
    for (at, ch) in field.char_indices() {
        match ch {
            '[' => in_brackets = true,
            ']' => in_brackets = false,
            '!' | ':' if !in_brackets => {
                end = at;
                break;
            }
            _ => {}
        }
    }
    let (name, rest) = field.split_at(end);
    if let Some(rest) = rest.strip_prefix('!') {
        let mut chars = rest.chars();
        let conversion = chars.next()?;
        let after = chars.as_str();
        let spec = match after.strip_prefix(':') {
            Some(spec) => spec,
            None if after.is_empty() => "",
            None => return None,
        };
        let conversion = &rest[..conversion.len_utf8()];
        return Some((name, Some(conversion), spec));
    }
    Some((name, None, rest.strip_prefix(':').unwrap_or(rest)))
}

/// `request.<attr>` and the `[key]` lookups after it; `None` for any other shape (another
/// name, `request` itself, an attribute of an attribute, an empty or unclosed `[]`).
fn parse_field_name(name: &str) -> Option<(&str, Vec<&str>)> {
    let rest = name.strip_prefix("request.")?;
    let attribute_end = rest.find(['.', '[']).unwrap_or(rest.len());
    let (attribute, mut rest) = rest.split_at(attribute_end);
    if attribute.is_empty() {
        return None;
    }
    let mut lookups = Vec::new();
    while !rest.is_empty() {
        // `.name` after the attribute reaches Python methods and internals: not supported.
        let inner = rest.strip_prefix('[')?;
        let close = inner.find(']')?;
        let key = &inner[..close];
        if key.is_empty() {
            return None;
        }
        lookups.push(key);
        rest = &inner[close + 1..];
    }
    Some((attribute, lookups))
}

/// Python's `value[key]` for a format-string key: all digits is an integer index, anything
/// else a string key. The error is Python's message.
fn look_up(value: &Value, key: &str) -> Result<Value, String> {
    let index = (key.bytes().all(|b| b.is_ascii_digit()))
        .then(|| key.parse::<usize>().unwrap_or(usize::MAX));
    match (value, index) {
        (Value::Array(items), Some(i)) => items
            .get(i)
            .cloned()
            .ok_or_else(|| "list index out of range".to_string()),
        (Value::String(text), Some(i)) => text
            .chars()
            .nth(i)
            .map(|c| Value::String(c.to_string()))
            .ok_or_else(|| "string index out of range".to_string()),
        (Value::Object(map), None) => map
            .get(key)
            .cloned()
            .ok_or_else(|| format!("KeyError: {}", python_repr(&Value::from(key)))),
        // JSON keys are strings; Python looks the integer up and finds nothing.
        (Value::Object(_), Some(_)) => Err(format!("KeyError: {key}")),
        (Value::Array(_), None) => Err("list indices must be integers or slices, not str".into()),
        (Value::String(_), None) => Err("string indices must be integers, not 'str'".into()),
        (other, _) => Err(format!(
            "'{}' object is not subscriptable",
            python_type(other)
        )),
    }
}

/// The Python type name of a JSON value.
fn python_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "NoneType",
        Value::Bool(_) => "bool",
        Value::Number(n) if n.is_f64() => "float",
        Value::Number(_) => "int",
        Value::String(_) => "str",
        Value::Array(_) => "list",
        Value::Object(_) => "dict",
    }
}

/// Python's `str()`: strings bare, everything else as `repr()`.
fn python_str(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        other => python_repr(other),
    }
}

/// A parsed format spec: `[[fill]align][0][width][.precision][type]`.
#[derive(Debug, Default, PartialEq)]
struct Spec {
    fill: Option<char>,
    align: Option<char>,
    zero: bool,
    width: usize,
    precision: Option<usize>,
    kind: Option<char>,
}

/// Parses the supported part of Python's format-spec mini-language; the error names what
/// is not supported.
fn parse_spec(spec: &str) -> Result<Spec, String> {
    let chars: Vec<char> = spec.chars().collect();
    let mut parsed = Spec::default();
    let mut at = 0;
    let is_align = |c: char| matches!(c, '<' | '>' | '^' | '=');
    if chars.len() >= 2 && is_align(chars[1]) {
        parsed.fill = Some(chars[0]);
        parsed.align = Some(chars[1]);
        at = 2;
    } else if chars.first().copied().is_some_and(is_align) {
        parsed.align = Some(chars[0]);
        at = 1;
    }
    if let Some(&c) = chars.get(at)
        && matches!(c, '+' | '-' | ' ' | 'z' | '#')
    {
        return Err(format!("{c:?} is not supported"));
    }
    if chars.get(at) == Some(&'0') {
        parsed.zero = true;
        at += 1;
    }
    let digits = |at: &mut usize| {
        let start = *at;
        while chars.get(*at).is_some_and(char::is_ascii_digit) {
            *at += 1;
        }
        let text: String = chars[start..*at].iter().collect();
        (!text.is_empty()).then(|| text.parse::<usize>().map_err(|_| "too large".to_string()))
    };
    if let Some(width) = digits(&mut at) {
        parsed.width = width?;
    }
    if let Some(&c) = chars.get(at)
        && matches!(c, ',' | '_')
    {
        return Err(format!("grouping with {c:?} is not supported"));
    }
    if chars.get(at) == Some(&'.') {
        at += 1;
        parsed.precision = Some(digits(&mut at).ok_or("missing precision")??);
    }
    match &chars[at..] {
        [] => {}
        [kind] => parsed.kind = Some(*kind),
        _ => return Err("invalid format specifier".into()),
    }
    Ok(parsed)
}

/// Python's `format(value, spec)` for the supported specs.
fn format_value(value: &Value, spec: &str) -> Result<String, String> {
    if spec.is_empty() {
        return Ok(python_str(value));
    }
    let spec = parse_spec(spec)?;
    match value {
        Value::String(text) => {
            if !matches!(spec.kind, None | Some('s')) {
                return Err(format!(
                    "unknown format code {:?}",
                    spec.kind.unwrap_or(' ')
                ));
            }
            if spec.align == Some('=') {
                return Err("'=' alignment is not allowed for strings".into());
            }
            if spec.zero {
                return Err("'0' padding is not supported for strings".into());
            }
            let text: String = match spec.precision {
                Some(precision) => text.chars().take(precision).collect(),
                None => text.clone(),
            };
            Ok(pad(&text, &spec, '<'))
        }
        // As in Python, a bool formats as the integer it is once there is a spec.
        Value::Bool(b) => format_number(&i64::from(*b).to_string(), &spec, true),
        Value::Number(n) if n.is_f64() => {
            if spec.kind.is_some() || spec.precision.is_some() {
                return Err("only fill, align and width are supported for floats".into());
            }
            format_number(&python_repr(value), &spec, false)
        }
        Value::Number(n) => format_number(&n.to_string(), &spec, true),
        _ => Err("only an empty spec is supported (Python raises TypeError)".into()),
    }
}

fn format_number(digits: &str, spec: &Spec, integer: bool) -> Result<String, String> {
    if integer && !matches!(spec.kind, None | Some('d')) {
        return Err(format!(
            "unknown format code {:?}",
            spec.kind.unwrap_or(' ')
        ));
    }
    if spec.precision.is_some() {
        return Err("precision is not allowed for integers".into());
    }
    let spec = Spec {
        fill: spec.fill.or(spec.zero.then_some('0')),
        align: spec.align.or(spec.zero.then_some('=')),
        ..*spec
    };
    if spec.align == Some('=')
        && let Some(unsigned) = digits.strip_prefix('-')
    {
        let inner = Spec {
            width: spec.width.saturating_sub(1),
            ..spec
        };
        return Ok(format!("-{}", pad(unsigned, &inner, '>')));
    }
    Ok(pad(digits, &spec, '>'))
}

/// Pads `text` to the spec's width with its fill (space by default) and alignment.
fn pad(text: &str, spec: &Spec, default_align: char) -> String {
    let len = text.chars().count();
    let missing = spec.width.saturating_sub(len);
    let fill = spec.fill.unwrap_or(' ');
    let (before, after) = match spec.align.unwrap_or(default_align) {
        '<' => (0, missing),
        '^' => (missing / 2, missing - missing / 2),
        // '>' and '=' (the sign, if any, was put before by the caller).
        _ => (missing, 0),
    };
    let mut out = String::with_capacity(text.len() + missing * fill.len_utf8());
    out.extend(std::iter::repeat_n(fill, before));
    out.push_str(text);
    out.extend(std::iter::repeat_n(fill, after));
    out
}

/// A label's dynamic entries filled for the node of `spec`. An entry whose template cannot be
/// filled is logged and left out, as Nodepool does; the launch goes on without it.
pub fn format_dynamic_entries(
    templates: &BTreeMap<String, String>,
    spec: &CreateSpec,
    config_key: &str,
) -> BTreeMap<String, String> {
    let request = spec.request.as_ref();
    let mut filled = BTreeMap::new();
    for (key, template) in templates {
        match format_request_template(template, request) {
            Ok(value) => {
                filled.insert(key.clone(), value);
            }
            Err(error) => tracing::error!(
                node_id = spec.metadata.get(metadata_keys::NODE_ID).map(String::as_str).unwrap_or(""),
                request_id = request.map(|r| r.id.as_str()).unwrap_or(""),
                label = %spec.label,
                config_key,
                key = %key,
                template = %template,
                %error,
                "cannot format a dynamic entry; it is left out"
            ),
        }
    }
    filled
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn zuul_request() -> RequestAttributes {
        RequestAttributes {
            id: "100-0000000042".into(),
            labels: vec!["small".into(), "it's".into()],
            requestor: Some("zuul.example.org".into()),
            requestor_data: json!({"job_name": "tox", "build_set": [1, 2.5, null, true]}),
            relative_priority: -3,
            event_id: Some("8d7c6b".into()),
            created_time: Some(1_732_550_000.0),
            tenant_name: None,
        }
    }

    fn fill(template: &str) -> Result<String, FormatError> {
        format_request_template(template, Some(&zuul_request()))
    }

    #[test]
    fn attributes_print_as_python_str_does() {
        assert_eq!(fill("{request.id}").as_deref(), Ok("100-0000000042"));
        assert_eq!(
            fill("{request.labels}").as_deref(),
            Ok(r#"['small', "it's"]"#)
        );
        assert_eq!(
            fill("{request.requestor}").as_deref(),
            Ok("zuul.example.org")
        );
        assert_eq!(
            fill("{request.requestor_data}").as_deref(),
            Ok("{'job_name': 'tox', 'build_set': [1, 2.5, None, True]}")
        );
        assert_eq!(fill("{request.relative_priority}").as_deref(), Ok("-3"));
        assert_eq!(fill("{request.event_id}").as_deref(), Ok("8d7c6b"));
        assert_eq!(
            fill("{request.created_time}").as_deref(),
            Ok("1732550000.0")
        );
        assert_eq!(fill("{request.tenant_name}").as_deref(), Ok("None"));
    }

    #[test]
    fn literal_text_and_escaped_braces_surround_fields() {
        assert_eq!(
            fill("tenant={request.tenant_name}, event {{{request.event_id}}} }}{{").as_deref(),
            Ok("tenant=None, event {8d7c6b} }{")
        );
        assert_eq!(fill("").as_deref(), Ok(""));
        assert_eq!(fill("no fields é").as_deref(), Ok("no fields é"));
        // A string requestor_data prints bare, as str() does.
        let mut request = zuul_request();
        request.requestor_data = json!("opaque");
        assert_eq!(
            format_request_template("{request.requestor_data}", Some(&request)).as_deref(),
            Ok("opaque")
        );
    }

    #[test]
    fn bad_templates_are_errors() {
        assert_eq!(fill("a}b"), Err(FormatError::SingleClosingBrace));
        assert_eq!(fill("{request.id"), Err(FormatError::UnclosedField));
        assert_eq!(fill("{"), Err(FormatError::UnclosedField));
        assert_eq!(
            fill("{request.nodes}"),
            Err(FormatError::UnknownAttribute("nodes".into()))
        );
        for field in [
            "",
            "0",
            "request",
            "request.",
            "tenant",
            " request.id",
            "request.id.upper",
            "request.labels[0].upper",
            "request.{x}",
            "request.id:{x}",
            "request[id]",
            "request.labels[]",
            "request.labels[0",
            "request.labels[0]x",
            "request.id!",
            "request.id!rr",
        ] {
            assert_eq!(
                fill(&format!("{{{field}}}")),
                Err(FormatError::UnsupportedField(field.into())),
                "{field:?}"
            );
        }
    }

    #[test]
    fn lists_strings_and_dicts_are_indexed() {
        assert_eq!(fill("{request.labels[0]}").as_deref(), Ok("small"));
        assert_eq!(fill("{request.labels[1]}").as_deref(), Ok("it's"));
        assert_eq!(fill("{request.id[4]}").as_deref(), Ok("0"));
        assert_eq!(
            fill("{request.requestor_data[job_name]}").as_deref(),
            Ok("tox")
        );
        assert_eq!(
            fill("{request.requestor_data[build_set]}").as_deref(),
            Ok("[1, 2.5, None, True]")
        );
        assert_eq!(
            fill("{request.requestor_data[build_set][1]}-{request.requestor_data[build_set][3]}")
                .as_deref(),
            Ok("2.5-True")
        );
        let lookup = |field: &str, reason: &str| {
            assert_eq!(
                fill(&format!("{{{field}}}")),
                Err(FormatError::Lookup {
                    field: field.into(),
                    reason: reason.into()
                }),
                "{field}"
            )
        };
        lookup("request.labels[2]", "list index out of range");
        lookup(
            "request.labels[first]",
            "list indices must be integers or slices, not str",
        );
        lookup("request.id[99]", "string index out of range");
        lookup("request.requestor_data[nope]", "KeyError: 'nope'");
        lookup("request.requestor_data[0]", "KeyError: 0");
        lookup(
            "request.relative_priority[0]",
            "'int' object is not subscriptable",
        );
        lookup(
            "request.tenant_name[0]",
            "'NoneType' object is not subscriptable",
        );
    }

    #[test]
    fn conversions_give_str_or_repr() {
        assert_eq!(fill("{request.id!s}").as_deref(), Ok("100-0000000042"));
        assert_eq!(fill("{request.id!r}").as_deref(), Ok("'100-0000000042'"));
        assert_eq!(fill("{request.labels[1]!r}").as_deref(), Ok(r#""it's""#));
        assert_eq!(fill("{request.tenant_name!r}").as_deref(), Ok("None"));
        assert_eq!(fill("{request.relative_priority!r}").as_deref(), Ok("-3"));
        assert_eq!(
            fill("{request.id!a}"),
            Err(FormatError::UnsupportedConversion {
                field: "request.id!a".into(),
                conversion: "a".into()
            })
        );
        assert_eq!(
            fill("{request.id!x}"),
            Err(FormatError::UnsupportedConversion {
                field: "request.id!x".into(),
                conversion: "x".into()
            })
        );
    }

    #[test]
    fn fill_align_and_width_pad_strings_and_numbers() {
        for (template, filled) in [
            ("{request.id:>16}", "  100-0000000042"),
            ("{request.id:<16}|", "100-0000000042  |"),
            ("{request.id:*^18}", "**100-0000000042**"),
            ("{request.event_id:^9}|", " 8d7c6b  |"),
            ("{request.id:16}|", "100-0000000042  |"),
            ("{request.id:5}", "100-0000000042"),
            ("{request.id:.3}", "100"),
            ("{request.id:_<6.3s}", "100___"),
            ("{request.id:}", "100-0000000042"),
            ("{request.labels[0]!r:_^12}", "__'small'___"),
            ("{request.tenant_name!s:>6}", "  None"),
            ("{request.relative_priority:5}", "   -3"),
            ("{request.relative_priority:<5}|", "-3   |"),
            ("{request.relative_priority:05}", "-0003"),
            ("{request.relative_priority:=5d}", "-   3"),
            ("{request.relative_priority:x<4}", "-3xx"),
            ("{request.requestor_data[build_set][0]:03}", "001"),
            ("{request.requestor_data[build_set][3]:>3}", "  1"),
            ("{request.created_time:>14}", "  1732550000.0"),
            ("{request.requestor_data[build_set][1]:06}", "0002.5"),
        ] {
            assert_eq!(fill(template).as_deref(), Ok(filled), "{template}");
        }
    }

    #[test]
    fn other_format_specs_are_errors() {
        for (field, kind) in [
            ("request.id:=10", "str"),
            ("request.id:010", "str"),
            ("request.id:d", "str"),
            ("request.id:+", "str"),
            ("request.id:>10x", "str"),
            ("request.relative_priority:+5", "int"),
            ("request.relative_priority:x", "int"),
            ("request.relative_priority:,", "int"),
            ("request.relative_priority:.2", "int"),
            ("request.relative_priority:#x", "int"),
            ("request.created_time:.2f", "float"),
            ("request.created_time:.", "float"),
            ("request.tenant_name:>5", "NoneType"),
            ("request.labels:>30", "list"),
            ("request.requestor_data:>30", "dict"),
        ] {
            match fill(&format!("{{{field}}}")) {
                Err(FormatError::UnsupportedSpec {
                    field: f, kind: k, ..
                }) => assert_eq!((f.as_str(), k), (field, kind)),
                other => panic!("{field}: {other:?}"),
            }
        }
    }

    #[test]
    fn without_a_request_only_fieldless_templates_fill() {
        assert_eq!(
            format_request_template("static {{x}}", None).as_deref(),
            Ok("static {x}")
        );
        assert_eq!(
            format_request_template("{request.id}", None),
            Err(FormatError::NoRequest("id".into()))
        );
    }

    #[test]
    fn strings_in_reprs_are_escaped_like_python() {
        assert_eq!(
            python_repr(&json!([
                "a\\b",
                "tab\t",
                "x\"y'z",
                "\u{0}\u{85}é\u{200b}😀",
                "\u{a0}"
            ])),
            r#"['a\\b', 'tab\t', 'x"y\'z', '\x00\x85é\u200b😀', '\xa0']"#
        );
        assert_eq!(
            python_repr(&json!({"big": 1e20, "neg": -7})),
            "{'big': 1e+20, 'neg': -7}"
        );
    }

    #[test]
    fn unfillable_entries_are_left_out() {
        let spec = CreateSpec {
            hostname: "np0000000001".into(),
            pool: "main".into(),
            label: "small".into(),
            image_external_id: None,
            metadata: BTreeMap::from([(metadata_keys::NODE_ID.into(), "0000000001".into())]),
            az: None,
            request: Some(zuul_request()),
        };
        let templates = BTreeMap::from([
            ("event".to_string(), "{request.event_id}".to_string()),
            ("broken".to_string(), "{request.nope}".to_string()),
            ("plain".to_string(), "fixed".to_string()),
        ]);
        let filled = format_dynamic_entries(&templates, &spec, "dynamic-tags");
        assert_eq!(
            filled,
            BTreeMap::from([
                ("event".to_string(), "8d7c6b".to_string()),
                ("plain".to_string(), "fixed".to_string()),
            ])
        );
        let no_request = CreateSpec {
            request: None,
            ..spec
        };
        assert_eq!(
            format_dynamic_entries(&templates, &no_request, "dynamic-tags"),
            BTreeMap::from([("plain".to_string(), "fixed".to_string())])
        );
    }
}
