//! Turning the marked YAML tree into raw structs, collecting every problem.
//!
//! This plays the part serde usually plays, but serde stops at the first error and forgets
//! positions; an operator fixing a config wants every mistake at once, each with its line,
//! column and key path. Raw structs are declared with [`raw_struct!`], which lists each field
//! with its YAML key; every field is optional here, and `validate` decides what is required.

use serde_json::Value as Json;

use crate::diagnostic::{At, Collector, Sp};
use crate::yaml::{Node, Value};

/// A type that can be read from one YAML value.
pub(crate) trait Decode: Sized {
    /// Returns `None` after recording why the value is unusable.
    fn decode(node: &Node, at: &At, cx: &mut Collector) -> Option<Self>;
}

pub(crate) fn type_error(node: &Node, at: &At, cx: &mut Collector, expected: &str) {
    let found = describe(node, cx);
    cx.error(at, format!("expected {expected}, found {found}"));
}

/// What a value is, for a message: its text where short, only its kind in the secure file.
fn describe(node: &Node, cx: &Collector) -> String {
    if cx.hide_values {
        return format!(
            "{} (its value is not shown: the secure file holds secrets)",
            node.kind_name()
        );
    }
    match &node.value {
        Value::Str(s) if s.len() <= 40 => format!("the string `{s}`"),
        Value::Int(i) => format!("the integer {i}"),
        Value::Float(_) => format!("the number {}", node.scalar_text().unwrap_or_default()),
        Value::Bool(b) => format!("the boolean {b}"),
        _ => node.kind_name().to_string(),
    }
}

impl Decode for String {
    fn decode(node: &Node, at: &At, cx: &mut Collector) -> Option<Self> {
        match &node.value {
            Value::Str(s) => Some(s.clone()),
            Value::Int(_) | Value::Float(_) => {
                let message = if cx.hide_values {
                    format!(
                        "expected a string, found {}; quote it if it is meant as text",
                        describe(node, cx)
                    )
                } else {
                    format!(
                        "expected a string, found {}; quote it (`\"{}\"`) if it is meant as text",
                        describe(node, cx),
                        node.scalar_text().unwrap_or_default()
                    )
                };
                cx.error(at, message);
                None
            }
            Value::Bool(_) => {
                // The text may have been `yes`, `on`, `True`...: do not guess which.
                cx.error(
                    at,
                    format!(
                        "expected a string, found {} (YAML reads yes/no/on/off/true/false unquoted as booleans); quote the value if it is meant as text",
                        describe(node, cx)
                    ),
                );
                None
            }
            _ => {
                type_error(node, at, cx, "a string");
                None
            }
        }
    }
}

impl Decode for i64 {
    fn decode(node: &Node, at: &At, cx: &mut Collector) -> Option<Self> {
        match node.value {
            Value::Int(i) => Some(i),
            _ => {
                type_error(node, at, cx, "an integer");
                None
            }
        }
    }
}

impl Decode for f64 {
    fn decode(node: &Node, at: &At, cx: &mut Collector) -> Option<Self> {
        match node.value {
            Value::Int(i) => Some(i as f64),
            Value::Float(f) => Some(f),
            _ => {
                type_error(node, at, cx, "a number");
                None
            }
        }
    }
}

impl Decode for bool {
    fn decode(node: &Node, at: &At, cx: &mut Collector) -> Option<Self> {
        match node.value {
            Value::Bool(b) => Some(b),
            _ => {
                type_error(node, at, cx, "a boolean (true or false)");
                None
            }
        }
    }
}

impl<T: Decode> Decode for Vec<T> {
    fn decode(node: &Node, at: &At, cx: &mut Collector) -> Option<Self> {
        let Value::Seq(items) = &node.value else {
            type_error(node, at, cx, "a list");
            return None;
        };
        let mut out = Vec::with_capacity(items.len());
        for (index, item) in items.iter().enumerate() {
            let item_at = at.index(index, item.mark);
            if let Some(value) = T::decode(item, &item_at, cx) {
                out.push(value);
            }
        }
        Some(out)
    }
}

impl<T: Decode> Decode for Sp<T> {
    fn decode(node: &Node, at: &At, cx: &mut Collector) -> Option<Self> {
        T::decode(node, at, cx).map(|value| Sp {
            value,
            at: at.clone(),
        })
    }
}

/// Free-form data (`node-attributes`, `meta`, `instance-properties`...), kept as JSON because
/// it ends up in node records and cloud metadata. `expect` names the required top shape.
#[derive(Debug, Clone, PartialEq)]
pub struct FreeMap(pub serde_json::Map<String, Json>);

impl Decode for FreeMap {
    fn decode(node: &Node, at: &At, cx: &mut Collector) -> Option<Self> {
        match to_json(node) {
            Json::Object(map) => Some(FreeMap(map)),
            _ => {
                type_error(node, at, cx, "a mapping");
                None
            }
        }
    }
}

/// Free-form list (kubernetes `volumes`, `volume-mounts`).
#[derive(Debug, Clone, PartialEq)]
pub struct FreeList(pub Vec<Json>);

impl Decode for FreeList {
    fn decode(node: &Node, at: &At, cx: &mut Collector) -> Option<Self> {
        match to_json(node) {
            Json::Array(items) => Some(FreeList(items)),
            _ => {
                type_error(node, at, cx, "a list");
                None
            }
        }
    }
}

/// Converts a YAML value to JSON; non-string keys become their text, as Nodepool's JSON
/// dump of such a dict would.
pub(crate) fn to_json(node: &Node) -> Json {
    match &node.value {
        Value::Null => Json::Null,
        Value::Bool(b) => Json::Bool(*b),
        Value::Int(i) => Json::from(*i),
        Value::Float(f) => serde_json::Number::from_f64(*f)
            .map(Json::Number)
            .unwrap_or(Json::Null),
        Value::Str(s) => Json::String(s.clone()),
        Value::Seq(items) => Json::Array(items.iter().map(to_json).collect()),
        Value::Map(pairs) => Json::Object(
            pairs
                .iter()
                .map(|(k, v)| (k.scalar_text().unwrap_or_default(), to_json(v)))
                .collect(),
        ),
    }
}

/// A mapping with string keys and uniformly typed values (`env-vars`, `max-resources`).
#[derive(Debug, Clone, PartialEq)]
pub struct StrMap<T>(pub Vec<(String, Sp<T>)>);

impl<T> Default for StrMap<T> {
    fn default() -> Self {
        StrMap(Vec::new())
    }
}

impl<T: Decode> Decode for StrMap<T> {
    fn decode(node: &Node, at: &At, cx: &mut Collector) -> Option<Self> {
        let Value::Map(pairs) = &node.value else {
            type_error(node, at, cx, "a mapping");
            return None;
        };
        let mut out = Vec::with_capacity(pairs.len());
        for (key, value) in pairs {
            let Some(name) = key.as_str() else {
                type_error(key, &at.key("?", key.mark), cx, "a string key");
                continue;
            };
            let value_at = at.key(name, value.mark);
            if let Some(v) = T::decode(value, &value_at, cx) {
                out.push((
                    name.to_string(),
                    Sp {
                        value: v,
                        at: value_at,
                    },
                ));
            }
        }
        Some(StrMap(out))
    }
}

/// `str` or `[str]`, as several Nodepool keys accept (`labels` of static nodes, `host-key`).
/// List items keep their positions, so a problem with one points at it.
#[derive(Debug, Clone, PartialEq)]
pub enum OneOrMany {
    One(String),
    Many(Vec<Sp<String>>),
}

impl Decode for OneOrMany {
    fn decode(node: &Node, at: &At, cx: &mut Collector) -> Option<Self> {
        match &node.value {
            Value::Str(s) => Some(OneOrMany::One(s.clone())),
            Value::Seq(_) => Vec::<Sp<String>>::decode(node, at, cx).map(OneOrMany::Many),
            _ => {
                type_error(node, at, cx, "a string or a list of strings");
                None
            }
        }
    }
}

/// A scalar read as text (`release: 30` means the string "30", as Nodepool's `str()` does).
#[derive(Debug, Clone, PartialEq)]
pub struct ScalarText(pub String);

impl Decode for ScalarText {
    fn decode(node: &Node, at: &At, cx: &mut Collector) -> Option<Self> {
        match &node.value {
            Value::Str(_) | Value::Int(_) | Value::Float(_) => node.scalar_text().map(ScalarText),
            _ => {
                type_error(node, at, cx, "a string or a number");
                None
            }
        }
    }
}

/// A number that may also be written as a numeric string (voluptuous `Coerce(float)`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CoercedFloat(pub f64);

impl Decode for CoercedFloat {
    fn decode(node: &Node, at: &At, cx: &mut Collector) -> Option<Self> {
        match &node.value {
            Value::Int(i) => Some(CoercedFloat(*i as f64)),
            Value::Float(f) => Some(CoercedFloat(*f)),
            Value::Str(s) => match s.trim().parse::<f64>() {
                Ok(f) => Some(CoercedFloat(f)),
                Err(_) => {
                    type_error(node, at, cx, "a number");
                    None
                }
            },
            _ => {
                type_error(node, at, cx, "a number");
                None
            }
        }
    }
}

/// Reads the fields of one mapping and reports keys nobody asked for.
pub(crate) struct MapReader<'a> {
    pairs: &'a [(Node, Node)],
    at: At,
}

impl<'a> MapReader<'a> {
    pub fn new(node: &'a Node, at: &At, cx: &mut Collector) -> Option<MapReader<'a>> {
        match &node.value {
            Value::Map(pairs) => Some(MapReader {
                pairs,
                at: At {
                    path: at.path.clone(),
                    mark: node.mark,
                },
            }),
            _ => {
                type_error(node, at, cx, "a mapping");
                None
            }
        }
    }

    pub fn at(&self) -> &At {
        &self.at
    }

    pub fn pairs(&self) -> &'a [(Node, Node)] {
        self.pairs
    }

    pub fn node(&self, key: &str) -> Option<&'a Node> {
        self.pairs
            .iter()
            .find(|(k, _)| k.as_str() == Some(key))
            .map(|(_, v)| v)
    }

    /// A key whose value is null counts as absent: `labels:` with nothing after it is how
    /// YAML files often say "none", and Nodepool treats it so.
    pub fn field<T: Decode>(&self, cx: &mut Collector, key: &str) -> Option<Sp<T>> {
        let node = self.node(key)?;
        if node.value == Value::Null {
            return None;
        }
        let at = self.at.key(key, node.mark);
        T::decode(node, &at, cx).map(|value| Sp { value, at })
    }

    /// Reports every key not in `known`, with a suggestion when one is close.
    pub fn finish(&self, cx: &mut Collector, known: &[&str], what: &str) {
        for (key, _) in self.pairs {
            let Some(name) = key.as_str() else {
                let text = key.scalar_text().unwrap_or_else(|| key.kind_name().into());
                cx.error(
                    &self.at.key(&text, key.mark),
                    format!("keys of {what} must be strings"),
                );
                continue;
            };
            if known.contains(&name) {
                continue;
            }
            let mut message = format!("unknown key `{name}` in {what}");
            if let Some(hint) = did_you_mean(name, known) {
                message.push_str(&format!("; did you mean `{hint}`?"));
            }
            cx.error(&self.at.key(name, key.mark), message);
        }
    }
}

/// The closest known name, if it is close enough to be a likely typo.
pub fn did_you_mean<'k>(name: &str, known: &[&'k str]) -> Option<&'k str> {
    let lowered = name.to_ascii_lowercase().replace('_', "-");
    known
        .iter()
        .map(|k| (strsim::jaro_winkler(&lowered, k), *k))
        .filter(|(score, k)| *score >= 0.85 || strsim::levenshtein(&lowered, k) <= 2)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, k)| k)
}

/// Declares a raw struct mirroring one YAML mapping, and its decoder.
macro_rules! raw_struct {
    ($(#[$meta:meta])* $name:ident, $what:literal { $( $field:ident : $ty:ty = $key:literal ),* $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Default)]
        pub struct $name {
            /// Where the mapping starts.
            pub at: $crate::diagnostic::At,
            $( pub $field: Option<$crate::diagnostic::Sp<$ty>>, )*
        }

        impl $name {
            /// Every key this mapping accepts.
            pub const KEYS: &'static [&'static str] = &[$($key),*];
        }

        impl $crate::decode::Decode for $name {
            fn decode(
                node: &$crate::yaml::Node,
                at: &$crate::diagnostic::At,
                cx: &mut $crate::diagnostic::Collector,
            ) -> Option<Self> {
                let map = $crate::decode::MapReader::new(node, at, cx)?;
                let out = $name {
                    at: map.at().clone(),
                    $( $field: map.field(cx, $key), )*
                };
                map.finish(cx, Self::KEYS, $what);
                Some(out)
            }
        }
    };
}
pub(crate) use raw_struct;

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    raw_struct!(Sample, "a sample" { name: String = "name", count: i64 = "count", tags: Vec<String> = "tags" });

    fn decode_sample(text: &str) -> (Option<Sample>, Collector) {
        let root = crate::yaml::parse(text).expect("yaml").root.expect("root");
        let mut cx = Collector::new(Path::new("t.yaml"));
        let sample = Sample::decode(&root, &At::default(), &mut cx);
        (sample, cx)
    }

    #[test]
    fn collects_every_problem() {
        let (sample, cx) = decode_sample("name: 5\ncount: x\ntags: [a, 1]\ncuont: 3\n");
        let sample = sample.expect("a mapping decodes");
        assert_eq!(sample.at.mark, crate::yaml::Mark { line: 1, column: 1 });
        assert!(sample.name.is_none() && sample.count.is_none());
        assert_eq!(sample.tags.expect("tags").value, vec!["a".to_string()]);
        let messages: Vec<String> = cx
            .diagnostics
            .iter()
            .map(|d| format!("{}:{} {} {}", d.line, d.column, d.key_path, d.message))
            .collect();
        assert_eq!(messages.len(), 4, "{messages:#?}");
        assert!(
            messages[0].starts_with("1:7 name expected a string"),
            "{}",
            messages[0]
        );
        assert!(
            messages[1].starts_with("2:8 count expected an integer"),
            "{}",
            messages[1]
        );
        assert!(
            messages[2].starts_with("3:11 tags[1] expected a string"),
            "{}",
            messages[2]
        );
        assert!(
            messages[3].contains("did you mean `count`"),
            "{}",
            messages[3]
        );
    }

    #[test]
    fn suggestions() {
        assert_eq!(
            did_you_mean("max-server", &["max-servers", "name"]),
            Some("max-servers")
        );
        assert_eq!(
            did_you_mean("min_ready", &["min-ready", "name"]),
            Some("min-ready")
        );
        assert_eq!(did_you_mean("zzz", &["min-ready", "name"]), None);
    }
}
