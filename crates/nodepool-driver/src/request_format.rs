//! `{request.<attr>}` templates of a label's `dynamic-instance-properties` (OpenStack) and
//! `dynamic-tags` (AWS): the subset of Python's `str.format` those keys are written in.
//!
//! Nodepool formats each template with `request=request.getSafeAttributes()` and, when that
//! raises, logs the error and leaves the entry out; the node is still launched. We do the
//! same. Supported: literal text, `{{`/`}}` escapes and `{request.<attr>}` for the eight
//! attributes below. Conversions (`!r`), format specs (`:>8`) and indexing (`[0]`) are
//! rejected, so such an entry is skipped where Python would have filled it.

use std::collections::BTreeMap;

use nodepool_model::python_json::python_float_repr;
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

    /// Python's `str()` of one attribute, `None` for an unknown name.
    fn attribute(&self, name: &str) -> Option<String> {
        let optional = |value: &Option<String>| value.clone().unwrap_or_else(|| "None".into());
        Some(match name {
            "id" => self.id.clone(),
            "labels" => python_repr(&Value::from(self.labels.clone())),
            "requestor" => optional(&self.requestor),
            "requestor_data" => match &self.requestor_data {
                Value::String(text) => text.clone(),
                other => python_repr(other),
            },
            "relative_priority" => self.relative_priority.to_string(),
            "event_id" => optional(&self.event_id),
            "created_time" => self
                .created_time
                .map_or_else(|| "None".into(), python_float_repr),
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
    let attribute = field
        .strip_prefix("request.")
        .filter(|name| !name.is_empty() && name.chars().all(|c| c.is_alphanumeric() || c == '_'))
        .ok_or_else(|| FormatError::UnsupportedField(field.to_string()))?;
    let request = request.ok_or_else(|| FormatError::NoRequest(attribute.to_string()))?;
    request
        .attribute(attribute)
        .ok_or_else(|| FormatError::UnknownAttribute(attribute.to_string()))
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

/// Python's `repr()` of a JSON value (`str()` of a list or dict prints its items this way).
fn python_repr(value: &Value) -> String {
    let mut out = String::new();
    write_repr(&mut out, value);
    out
}

fn write_repr(out: &mut String, value: &Value) {
    match value {
        Value::Null => out.push_str("None"),
        Value::Bool(true) => out.push_str("True"),
        Value::Bool(false) => out.push_str("False"),
        Value::Number(number) => match (number.as_i64(), number.as_u64(), number.as_f64()) {
            (Some(i), _, _) => out.push_str(&i.to_string()),
            (_, Some(u), _) => out.push_str(&u.to_string()),
            (_, _, Some(f)) => out.push_str(&python_float_repr(f)),
            _ => out.push_str(&number.to_string()),
        },
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

/// CPython's string repr: single quotes unless the text holds a single quote and no double
/// quote; backslash, the quote, tab, newline and carriage return escaped; other unprintable
/// characters as `\xhh`/`\uhhhh`/`\Uhhhhhhhh`.
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
            c if is_printable(c) => out.push(c),
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

/// Python's `str.isprintable` for one character, without the full Unicode tables (which
/// only nodepool-web carries): controls, separators and the common format characters are
/// unprintable; unassigned code points are taken as printable.
fn is_printable(ch: char) -> bool {
    if ch.is_ascii() {
        return (' '..='~').contains(&ch);
    }
    !(ch.is_control()
        || ch.is_whitespace()
        || matches!(ch, '\u{ad}' | '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}'
            | '\u{2060}'..='\u{2064}' | '\u{feff}')
        || ('\u{e000}'..='\u{f8ff}').contains(&ch))
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
            "request.id!r",
            "request.id:>20",
            "request.labels[0]",
            "request.id.upper",
            "request.{x}",
        ] {
            assert_eq!(
                fill(&format!("{{{field}}}")),
                Err(FormatError::UnsupportedField(field.into())),
                "{field:?}"
            );
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
