//! Reading a JSON object the way Python's `dict.get` does.
//!
//! Each accessor takes its key out of the object, applies the reader
//! default when the key is absent, and reports a wrong JSON type as a
//! [`WireError::WrongType`] naming the key. Whatever is left afterwards is
//! the set of keys nobody asked for (the component reader keeps them).

use std::collections::HashMap;
use std::fmt;

use serde::de::{Deserializer as _, MapAccess, Visitor};
use serde_json::{Map, Value};

use super::{DocumentKind, WireError};

/// The largest document read: ZooKeeper's own limit on znode data (`jute.maxbuffer`, 1 MiB
/// by default). No Nodepool record comes near it; one that exceeds it (possible in the
/// embedded store) is rejected before parsing, so a huge record costs no parse per pass.
pub const MAX_DOCUMENT_BYTES: usize = 1024 * 1024;

pub(crate) struct Fields {
    document: DocumentKind,
    /// The object's keys in document order; a taken key's value is `None`. A list, not a
    /// map: documents have a few dozen keys, each read once, and the launcher parses every
    /// node and request version it sees, so hashing and re-ordering a map cost more than a
    /// scan of short keys.
    entries: Vec<(String, Option<Value>)>,
}

impl Fields {
    /// Parses znode data into an object. `b""` is [`WireError::Empty`].
    pub(crate) fn parse(document: DocumentKind, data: &[u8]) -> Result<Fields, WireError> {
        if data.is_empty() {
            return Err(WireError::Empty { document });
        }
        if data.len() > MAX_DOCUMENT_BYTES {
            return Err(WireError::TooLarge {
                document,
                bytes: data.len(),
            });
        }
        let mut deserializer = serde_json::Deserializer::from_slice(data);
        if let Ok(entries) = deserializer.deserialize_map(EntriesVisitor)
            && deserializer.end().is_ok()
        {
            return Ok(Fields { document, entries });
        }
        // Not an object, or not JSON: parse again to say which.
        let value: Value = serde_json::from_slice(data)
            .map_err(|source| WireError::InvalidJson { document, source })?;
        match value {
            Value::Object(object) => Ok(Fields {
                document,
                entries: object.into_iter().map(|(k, v)| (k, Some(v))).collect(),
            }),
            other => Err(WireError::NotAnObject {
                document,
                found: json_type(&other),
            }),
        }
    }

    /// Removes and returns `key`; `None` when absent (JSON null is `Some(Null)`).
    pub(crate) fn take(&mut self, key: &str) -> Option<Value> {
        self.entries
            .iter_mut()
            .find(|(k, _)| k == key)
            .and_then(|(_, value)| value.take())
    }

    /// The keys not taken yet, in document order.
    pub(crate) fn into_remaining(self) -> Map<String, Value> {
        self.entries
            .into_iter()
            .filter_map(|(key, value)| value.map(|v| (key, v)))
            .collect()
    }

    pub(crate) fn wrong_type(
        &self,
        key: &'static str,
        expected: &'static str,
        found: &Value,
    ) -> WireError {
        WireError::WrongType {
            document: self.document,
            key,
            expected,
            found: describe(found),
        }
    }

    /// A string key without a reader default (`state`).
    pub(crate) fn required_string(&mut self, key: &'static str) -> Result<String, WireError> {
        match self.take(key) {
            None => Err(WireError::MissingKey {
                document: self.document,
                key,
            }),
            Some(Value::String(text)) => Ok(text),
            Some(other) => Err(self.wrong_type(key, "a string", &other)),
        }
    }

    /// A time key without a reader default (`state_time`). Integers are
    /// accepted as whole seconds.
    pub(crate) fn required_time(&mut self, key: &'static str) -> Result<f64, WireError> {
        match self.take(key) {
            None => Err(WireError::MissingKey {
                document: self.document,
                key,
            }),
            Some(Value::Number(number)) => number
                .as_f64()
                .ok_or_else(|| self.wrong_type(key, "a number", &Value::Number(number.clone()))),
            Some(other) => Err(self.wrong_type(key, "a number", &other)),
        }
    }

    /// `d.get(key)` for a string: absent and null are `None`.
    pub(crate) fn optional_string(
        &mut self,
        key: &'static str,
    ) -> Result<Option<String>, WireError> {
        match self.take(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(text)) => Ok(Some(text)),
            Some(other) => Err(self.wrong_type(key, "a string or null", &other)),
        }
    }

    /// `d.get(key, default)` for a string: absent is `default`, null stays null.
    pub(crate) fn string_or(
        &mut self,
        key: &'static str,
        default: &str,
    ) -> Result<Option<String>, WireError> {
        match self.take(key) {
            None => Ok(Some(default.to_owned())),
            Some(Value::Null) => Ok(None),
            Some(Value::String(text)) => Ok(Some(text)),
            Some(other) => Err(self.wrong_type(key, "a string or null", &other)),
        }
    }

    /// `d.get(key)` for a time: absent and null are `None`.
    pub(crate) fn optional_time(&mut self, key: &'static str) -> Result<Option<f64>, WireError> {
        match self.take(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(number)) => match number.as_f64() {
                Some(seconds) => Ok(Some(seconds)),
                None => Err(self.wrong_type(key, "a number or null", &Value::Number(number))),
            },
            Some(other) => Err(self.wrong_type(key, "a number or null", &other)),
        }
    }

    /// `d.get(key)` for an integer: absent and null are `None`.
    pub(crate) fn optional_int(&mut self, key: &'static str) -> Result<Option<i64>, WireError> {
        match self.take(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(number)) => match number.as_i64() {
                Some(integer) => Ok(Some(integer)),
                None => Err(self.wrong_type(key, "an integer or null", &Value::Number(number))),
            },
            Some(other) => Err(self.wrong_type(key, "an integer or null", &other)),
        }
    }

    /// An integer whose absence (and, for want of a better value, null) means
    /// `default`.
    pub(crate) fn int_or(&mut self, key: &'static str, default: i64) -> Result<i64, WireError> {
        Ok(self.optional_int(key)?.unwrap_or(default))
    }

    /// A boolean: absent is `absent`, null is false (Python's `None` is falsy
    /// wherever these flags are tested).
    pub(crate) fn bool_or(&mut self, key: &'static str, absent: bool) -> Result<bool, WireError> {
        match self.take(key) {
            None => Ok(absent),
            Some(Value::Null) => Ok(false),
            Some(Value::Bool(flag)) => Ok(flag),
            Some(other) => Err(self.wrong_type(key, "a boolean", &other)),
        }
    }

    /// A list of strings: absent and null are empty.
    pub(crate) fn string_list(&mut self, key: &'static str) -> Result<Vec<String>, WireError> {
        match self.take(key) {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(value) => self.strings_in(key, value),
        }
    }

    /// The strings of a JSON list, or a wrong-type error for `key`.
    pub(crate) fn strings_in(
        &self,
        key: &'static str,
        value: Value,
    ) -> Result<Vec<String>, WireError> {
        let Value::Array(items) = value else {
            return Err(self.wrong_type(key, "a list of strings", &value));
        };
        items
            .into_iter()
            .map(|item| match item {
                Value::String(text) => Ok(text),
                other => Err(self.wrong_type(key, "a list of strings", &other)),
            })
            .collect()
    }

    /// `d.get(key)` for an object: absent and null are `None`.
    pub(crate) fn optional_object(
        &mut self,
        key: &'static str,
    ) -> Result<Option<Map<String, Value>>, WireError> {
        match self.take(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Object(object)) => Ok(Some(object)),
            Some(other) => Err(self.wrong_type(key, "an object or null", &other)),
        }
    }

    /// `d.get(key)` for opaque data: any JSON, absent is null.
    pub(crate) fn any(&mut self, key: &'static str) -> Value {
        self.take(key).unwrap_or(Value::Null)
    }
}

/// A JSON object's members in order. A repeated key keeps its first place and its last
/// value, as Python's `json.loads` (and serde_json's ordered map) do.
struct EntriesVisitor;

impl<'de> Visitor<'de> for EntriesVisitor {
    type Value = Vec<(String, Option<Value>)>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        // Repeated keys are found by a scan while the object is small, by an index built
        // once it grows past that (a znode of many thousand keys must not take quadratic time).
        const SCANNED: usize = 64;
        // serde_json gives no size hint; a node has about 35 keys.
        let mut entries: Self::Value = Vec::with_capacity(map.size_hint().unwrap_or(40).min(64));
        let mut index: HashMap<String, usize> = HashMap::new();
        while let Some(key) = map.next_key::<String>()? {
            let value: Value = map.next_value()?;
            if entries.len() == SCANNED && index.is_empty() {
                index = entries
                    .iter()
                    .enumerate()
                    .map(|(i, (k, _))| (k.clone(), i))
                    .collect();
            }
            let seen = if index.is_empty() {
                entries.iter().position(|(k, _)| *k == key)
            } else {
                index.get(&key).copied()
            };
            match seen {
                Some(i) => entries[i].1 = Some(value),
                None => {
                    if !index.is_empty() {
                        index.insert(key.clone(), entries.len());
                    }
                    entries.push((key, Some(value)));
                }
            }
        }
        Ok(entries)
    }
}

/// The JSON type name of a value, for messages.
pub(crate) fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "list",
        Value::Object(_) => "object",
    }
}

/// A short description of a value for error messages: its type, and the value
/// itself when it is a scalar (strings cut to a readable length).
pub(crate) fn describe(value: &Value) -> String {
    const MAX_SHOWN: usize = 40;
    match value {
        Value::Null => "null".to_owned(),
        Value::Bool(flag) => format!("boolean {flag}"),
        Value::Number(number) => format!("number {number}"),
        Value::String(text) if text.chars().count() > MAX_SHOWN => {
            let shown: String = text.chars().take(MAX_SHOWN).collect();
            format!("string {shown:?}...")
        }
        Value::String(text) => format!("string {text:?}"),
        Value::Array(items) => format!("a list of {} items", items.len()),
        Value::Object(object) => format!("an object with {} keys", object.len()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn describe_is_short_and_typed() {
        assert_eq!(describe(&json!(null)), "null");
        assert_eq!(describe(&json!(true)), "boolean true");
        assert_eq!(describe(&json!(1.5)), "number 1.5");
        assert_eq!(describe(&json!("x")), "string \"x\"");
        assert_eq!(describe(&json!([1, 2])), "a list of 2 items");
        assert_eq!(describe(&json!({"a": 1})), "an object with 1 keys");
        let long = "y".repeat(100);
        assert_eq!(
            describe(&json!(long)),
            format!("string {:?}...", "y".repeat(40))
        );
    }

    #[test]
    fn parse_distinguishes_empty_invalid_and_non_objects() {
        assert!(matches!(
            Fields::parse(DocumentKind::Node, b""),
            Err(WireError::Empty {
                document: DocumentKind::Node
            })
        ));
        assert!(matches!(
            Fields::parse(DocumentKind::Node, b"{"),
            Err(WireError::InvalidJson { .. })
        ));
        assert!(matches!(
            Fields::parse(DocumentKind::Node, b"[]"),
            Err(WireError::NotAnObject { found: "list", .. })
        ));
        assert!(matches!(
            Fields::parse(DocumentKind::Node, b"null"),
            Err(WireError::NotAnObject { found: "null", .. })
        ));
    }

    #[test]
    fn trailing_data_is_invalid_json() {
        assert!(matches!(
            Fields::parse(DocumentKind::Node, br#"{"a": 1} x"#),
            Err(WireError::InvalidJson { .. })
        ));
        assert!(matches!(
            Fields::parse(DocumentKind::Node, br#"{"a": 1}{"b": 2}"#),
            Err(WireError::InvalidJson { .. })
        ));
        assert!(Fields::parse(DocumentKind::Node, b" {\"a\": 1} \n").is_ok());
    }

    #[test]
    fn remaining_keys_keep_document_order_and_a_repeated_key_its_first_place() {
        let mut fields = Fields::parse(
            DocumentKind::Component,
            br#"{"z": 1, "a": 2, "m": 3, "z": 4}"#,
        )
        .unwrap();
        assert_eq!(fields.take("a"), Some(json!(2)));
        assert_eq!(fields.take("a"), None);
        let rest: Vec<(String, Value)> = fields.into_remaining().into_iter().collect();
        assert_eq!(
            rest,
            vec![("z".to_owned(), json!(4)), ("m".to_owned(), json!(3))]
        );
    }

    #[test]
    fn a_large_object_with_repeated_keys_reads_like_a_small_one() {
        let mut text = String::from("{");
        for i in 0..200 {
            text.push_str(&format!("\"k{i}\": {i}, "));
        }
        text.push_str("\"k3\": \"again\", \"k150\": \"again\", \"last\": 1}");
        let mut fields = Fields::parse(DocumentKind::Component, text.as_bytes()).unwrap();
        assert_eq!(fields.take("k3"), Some(json!("again")));
        assert_eq!(fields.take("k150"), Some(json!("again")));
        assert_eq!(fields.take("k199"), Some(json!(199)));
        let rest = fields.into_remaining();
        assert_eq!(rest.len(), 198);
        assert_eq!(rest.keys().next_back().map(String::as_str), Some("last"));
    }

    #[test]
    fn duplicate_keys_keep_the_last_value_like_python() {
        let mut fields = Fields::parse(DocumentKind::Node, br#"{"a": "1", "a": "2"}"#).unwrap();
        assert_eq!(fields.optional_string("a").unwrap().as_deref(), Some("2"));
    }
}
