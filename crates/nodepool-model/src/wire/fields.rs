//! Reading a JSON object the way Python's `dict.get` does.
//!
//! Each accessor takes its key out of the object, applies the reader
//! default when the key is absent, and reports a wrong JSON type as a
//! [`WireError::WrongType`] naming the key. Whatever is left afterwards is
//! the set of keys nobody asked for (the component reader keeps them).

use serde_json::{Map, Value};

use super::{DocumentKind, WireError};

pub(crate) struct Fields {
    document: DocumentKind,
    object: Map<String, Value>,
}

impl Fields {
    /// Parses znode data into an object. `b""` is [`WireError::Empty`].
    pub(crate) fn parse(document: DocumentKind, data: &[u8]) -> Result<Fields, WireError> {
        if data.is_empty() {
            return Err(WireError::Empty { document });
        }
        let value: Value = serde_json::from_slice(data)
            .map_err(|source| WireError::InvalidJson { document, source })?;
        match value {
            Value::Object(object) => Ok(Fields { document, object }),
            other => Err(WireError::NotAnObject {
                document,
                found: json_type(&other),
            }),
        }
    }

    /// Removes and returns `key`; `None` when absent (JSON null is `Some(Null)`).
    pub(crate) fn take(&mut self, key: &str) -> Option<Value> {
        // shift_remove keeps the order of the keys left over.
        self.object.shift_remove(key)
    }

    /// The keys not taken yet.
    pub(crate) fn into_remaining(self) -> Map<String, Value> {
        self.object
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
    fn duplicate_keys_keep_the_last_value_like_python() {
        let mut fields = Fields::parse(DocumentKind::Node, br#"{"a": "1", "a": "2"}"#).unwrap();
        assert_eq!(fields.optional_string("a").unwrap().as_deref(), Some("2"));
    }
}
