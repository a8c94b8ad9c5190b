//! A YAML tree that remembers where every value came from.
//!
//! Nodepool reads its configuration with PyYAML's `safe_load`, so this loader follows PyYAML
//! (YAML 1.1) rather than YAML 1.2 where they differ: `yes`/`no`/`on`/`off` are booleans,
//! `010` is octal, `1e5` (no dot) is a string, duplicate keys are allowed (the last one wins),
//! and `<<` merge keys are applied. Aliases are expanded into copies, so later stages see a
//! plain tree; each value keeps the line and column where it was written, which is what makes
//! every validation message point at the right place.

use std::collections::HashMap;
use std::fmt;

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser, Tag};
use yaml_rust2::scanner::{Marker, TScalarStyle};

/// A position in the source text, both 1-based.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Mark {
    pub line: usize,
    pub column: usize,
}

impl Mark {
    fn from_marker(marker: Marker) -> Mark {
        Mark {
            line: marker.line(),
            column: marker.col() + 1,
        }
    }
}

impl fmt::Display for Mark {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

/// One YAML value with its position.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub value: Value,
    pub mark: Mark,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    /// Pairs in document order, merge keys applied, duplicates removed (last wins).
    Map(Vec<(Node, Node)>),
}

impl Node {
    /// The word used in messages for this value's type ("a string", "a list", ...).
    pub fn kind_name(&self) -> &'static str {
        match self.value {
            Value::Null => "null",
            Value::Bool(_) => "a boolean",
            Value::Int(_) => "an integer",
            Value::Float(_) => "a number",
            Value::Str(_) => "a string",
            Value::Seq(_) => "a list",
            Value::Map(_) => "a mapping",
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// Looks a key up in a mapping (string keys only).
    pub fn get(&self, key: &str) -> Option<&Node> {
        match &self.value {
            Value::Map(pairs) => pairs
                .iter()
                .find(|(k, _)| k.as_str() == Some(key))
                .map(|(_, v)| v),
            _ => None,
        }
    }

    /// The value as Python's `str()` would print it, for scalars used as text (`release: 30`).
    pub fn scalar_text(&self) -> Option<String> {
        match &self.value {
            Value::Str(s) => Some(s.clone()),
            Value::Int(i) => Some(i.to_string()),
            Value::Float(f) => Some(python_float_str(*f)),
            Value::Bool(b) => Some(if *b { "True" } else { "False" }.to_string()),
            Value::Null => Some("None".to_string()),
            Value::Seq(_) | Value::Map(_) => None,
        }
    }

    /// The value as JSON, for documents read into serde types (clouds.yaml, kubeconfig):
    /// mapping keys as their `scalar_text`, floats JSON cannot hold as their text.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as Json;
        match &self.value {
            Value::Null => Json::Null,
            Value::Bool(b) => Json::Bool(*b),
            Value::Int(i) => Json::from(*i),
            Value::Float(f) => serde_json::Number::from_f64(*f)
                .map(Json::Number)
                .unwrap_or_else(|| Json::String(self.scalar_text().unwrap_or_default())),
            Value::Str(s) => Json::String(s.clone()),
            Value::Seq(items) => Json::Array(items.iter().map(Node::to_json).collect()),
            Value::Map(pairs) => Json::Object(
                pairs
                    .iter()
                    .map(|(k, v)| {
                        let key = k.scalar_text().unwrap_or_else(|| k.to_json().to_string());
                        (key, v.to_json())
                    })
                    .collect(),
            ),
        }
    }
}

fn python_float_str(f: f64) -> String {
    if f.is_nan() {
        "nan".into()
    } else if f.is_infinite() {
        if f > 0.0 { "inf".into() } else { "-inf".into() }
    } else if f.fract() == 0.0 && f.abs() < 1e16 {
        format!("{f:.1}")
    } else {
        format!("{f}")
    }
}

/// A problem found while reading YAML: syntax errors stop loading; the rest are notes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct YamlProblem {
    pub mark: Mark,
    pub message: String,
}

/// The result of parsing one file.
#[derive(Debug, Clone)]
pub struct Document {
    /// `None` for an empty file (PyYAML returns `None`).
    pub root: Option<Node>,
    /// Non-fatal findings such as duplicate keys.
    pub warnings: Vec<YamlProblem>,
}

/// Collections nested deeper than this are refused. PyYAML's recursive composer gives up at
/// a few hundred levels too, and every later stage walks the tree recursively.
pub const MAX_DEPTH: usize = 200;

/// The most values a document may hold once aliases are expanded: aliases are copied, so
/// a few lines of nested aliases ("billion laughs") could otherwise exhaust memory.
pub const MAX_NODES: usize = 500_000;

/// Parses one YAML document the way PyYAML's `safe_load` would.
pub fn parse(text: &str) -> Result<Document, YamlProblem> {
    let mut builder = TreeBuilder::default();
    let mut parser = Parser::new_from_str(text);
    // The parser's own `load` recurses once per nesting level (a stack overflow on deeply
    // nested input); pulling events one at a time keeps the depth under our control.
    loop {
        let (event, marker) = parser.next_token().map_err(|e| YamlProblem {
            mark: Mark::from_marker(*e.marker()),
            message: format!("YAML syntax error: {}", e.info()),
        })?;
        if event == Event::StreamEnd {
            break;
        }
        builder.on_event(event, marker);
        if builder.error.is_some() {
            break;
        }
    }
    if let Some(problem) = builder.error {
        return Err(problem);
    }
    if builder.documents > 1 {
        return Err(YamlProblem {
            mark: builder.second_document_mark.unwrap_or_default(),
            message: "expected a single YAML document, found several (`---` separators)".into(),
        });
    }
    Ok(Document {
        root: builder.root,
        warnings: builder.warnings,
    })
}

/// How big a finished value is: its number of values and its nesting height.
#[derive(Debug, Clone, Copy, Default)]
struct Size {
    nodes: usize,
    height: usize,
}

impl Size {
    const SCALAR: Size = Size {
        nodes: 1,
        height: 0,
    };
}

/// A collection being assembled while its events arrive.
#[derive(Debug)]
struct Open {
    anchor: usize,
    mark: Mark,
    /// Values inside so far, and the tallest of them.
    size: Size,
    kind: OpenKind,
}

#[derive(Debug)]
enum OpenKind {
    Seq {
        items: Vec<Node>,
    },
    Map {
        entries: Vec<(Node, Node)>,
        pending_key: Option<Node>,
    },
}

#[derive(Debug, Default)]
struct TreeBuilder {
    stack: Vec<Open>,
    anchors: HashMap<usize, (Node, Size)>,
    /// Values created so far, aliases counted as the copies they become.
    nodes: usize,
    root: Option<Node>,
    documents: usize,
    second_document_mark: Option<Mark>,
    warnings: Vec<YamlProblem>,
    /// The first semantic error (bad tag, unknown alias); PyYAML stops at it too.
    error: Option<YamlProblem>,
}

impl TreeBuilder {
    fn fail(&mut self, mark: Mark, message: String) {
        if self.error.is_none() {
            self.error = Some(YamlProblem { mark, message });
        }
    }

    /// Accounts for a value about to be added at the current depth; false (after recording
    /// the problem) when it would make the document too big or too deep.
    fn admit(&mut self, mark: Mark, size: Size) -> bool {
        self.nodes = self.nodes.saturating_add(size.nodes);
        if self.nodes > MAX_NODES {
            self.fail(
                mark,
                format!(
                    "the document holds more than {MAX_NODES} values once aliases are expanded"
                ),
            );
            return false;
        }
        if self.stack.len() + size.height > MAX_DEPTH {
            self.fail(
                mark,
                format!("values are nested more than {MAX_DEPTH} levels deep"),
            );
            return false;
        }
        true
    }

    fn push_value(&mut self, node: Node, size: Size) {
        match self.stack.last_mut() {
            None => self.root = Some(node),
            Some(open) => {
                open.size.nodes = open.size.nodes.saturating_add(size.nodes);
                open.size.height = open.size.height.max(size.height + 1);
                match &mut open.kind {
                    OpenKind::Seq { items } => items.push(node),
                    OpenKind::Map {
                        entries,
                        pending_key,
                    } => match pending_key.take() {
                        None => *pending_key = Some(node),
                        Some(key) => entries.push((key, node)),
                    },
                }
            }
        }
    }

    fn finish_map(&mut self, mark: Mark, entries: Vec<(Node, Node)>) -> Node {
        let mut merged: Vec<(Node, Node)> = Vec::new();
        let mut explicit: Vec<(Node, Node)> = Vec::new();
        for (key, value) in entries {
            if is_merge_key(&key) {
                self.merge_into(&mut merged, &value);
            } else {
                explicit.push((key, value));
            }
        }
        // Explicit keys win over merged ones; among explicit duplicates the last wins (PyYAML).
        let mut result: Vec<(Node, Node)> = Vec::new();
        for (key, value) in merged.into_iter().chain(explicit) {
            if let Some(slot) = result.iter_mut().find(|(k, _)| same_key(k, &key)) {
                *slot = (key, value);
            } else {
                result.push((key, value));
            }
        }
        Node {
            value: Value::Map(result),
            mark,
        }
    }

    /// Applies a `<<` value: a mapping, or a list of mappings where earlier ones win.
    fn merge_into(&mut self, merged: &mut Vec<(Node, Node)>, value: &Node) {
        let sources: Vec<&Node> = match &value.value {
            Value::Map(_) => vec![value],
            Value::Seq(items) => items.iter().collect(),
            _ => {
                self.fail(
                    value.mark,
                    format!(
                        "a `<<` merge key needs a mapping or a list of mappings, found {}",
                        value.kind_name()
                    ),
                );
                return;
            }
        };
        for source in sources {
            let Value::Map(pairs) = &source.value else {
                self.fail(
                    source.mark,
                    format!(
                        "a `<<` merge list may hold only mappings, found {}",
                        source.kind_name()
                    ),
                );
                return;
            };
            for (key, item) in pairs {
                if !merged.iter().any(|(k, _)| same_key(k, key)) {
                    merged.push((key.clone(), item.clone()));
                }
            }
        }
    }

    fn check_duplicates(&mut self, entries: &[(Node, Node)]) {
        for (index, (key, _)) in entries.iter().enumerate() {
            if is_merge_key(key) {
                continue;
            }
            if let Some((later, _)) = entries[index + 1..].iter().find(|(k, _)| same_key(k, key)) {
                let name = key.scalar_text().unwrap_or_else(|| "?".into());
                self.warnings.push(YamlProblem {
                    mark: key.mark,
                    message: format!(
                        "duplicate key `{name}`: the later one at line {} wins (as in Nodepool)",
                        later.mark.line
                    ),
                });
            }
        }
    }
}

fn is_merge_key(key: &Node) -> bool {
    key.as_str() == Some("<<")
}

fn same_key(a: &Node, b: &Node) -> bool {
    a.value == b.value
}

impl MarkedEventReceiver for TreeBuilder {
    fn on_event(&mut self, event: Event, marker: Marker) {
        if self.error.is_some() {
            return;
        }
        let mark = Mark::from_marker(marker);
        match event {
            Event::DocumentStart => {
                self.documents += 1;
                if self.documents == 2 {
                    self.second_document_mark = Some(mark);
                }
            }
            Event::Alias(id) => match self.anchors.get(&id).map(|(_, size)| *size) {
                Some(size) => {
                    // Checked before copying, so a refused alias costs nothing.
                    if self.admit(mark, size)
                        && let Some((node, _)) = self.anchors.get(&id)
                    {
                        // The copy is reported where the alias is written.
                        let node = Node {
                            mark,
                            ..node.clone()
                        };
                        self.push_value(node, size);
                    }
                }
                None => self.fail(mark, "alias refers to an unknown anchor".into()),
            },
            Event::Scalar(text, style, anchor, tag) => {
                let value = match resolve_scalar(&text, style, tag.as_ref()) {
                    Ok(value) => value,
                    Err(message) => {
                        self.fail(mark, message);
                        return;
                    }
                };
                if !self.admit(mark, Size::SCALAR) {
                    return;
                }
                let node = Node { value, mark };
                if anchor != 0 {
                    self.anchors.insert(anchor, (node.clone(), Size::SCALAR));
                }
                self.push_value(node, Size::SCALAR);
            }
            Event::SequenceStart(anchor, _tag) => {
                if self.admit(
                    mark,
                    Size {
                        nodes: 1,
                        height: 1,
                    },
                ) {
                    self.stack.push(Open {
                        anchor,
                        mark,
                        size: Size {
                            nodes: 1,
                            height: 0,
                        },
                        kind: OpenKind::Seq { items: Vec::new() },
                    })
                }
            }
            Event::MappingStart(anchor, _tag) => {
                if self.admit(
                    mark,
                    Size {
                        nodes: 1,
                        height: 1,
                    },
                ) {
                    self.stack.push(Open {
                        anchor,
                        mark,
                        size: Size {
                            nodes: 1,
                            height: 0,
                        },
                        kind: OpenKind::Map {
                            entries: Vec::new(),
                            pending_key: None,
                        },
                    })
                }
            }
            Event::SequenceEnd => {
                if let Some(Open {
                    anchor,
                    mark,
                    size,
                    kind: OpenKind::Seq { items },
                }) = self.stack.pop()
                {
                    let node = Node {
                        value: Value::Seq(items),
                        mark,
                    };
                    if anchor != 0 {
                        self.anchors.insert(anchor, (node.clone(), size));
                    }
                    self.push_value(node, size);
                }
            }
            Event::MappingEnd => {
                if let Some(Open {
                    anchor,
                    mark,
                    size,
                    kind: OpenKind::Map { entries, .. },
                }) = self.stack.pop()
                {
                    // A block mapping's start mark is unreliable; its first key is where it
                    // visibly begins.
                    let mark = entries.first().map(|(k, _)| k.mark).unwrap_or(mark);
                    self.check_duplicates(&entries);
                    let node = self.finish_map(mark, entries);
                    if anchor != 0 {
                        self.anchors.insert(anchor, (node.clone(), size));
                    }
                    self.push_value(node, size);
                }
            }
            Event::StreamStart | Event::StreamEnd | Event::DocumentEnd | Event::Nothing => {}
        }
    }
}

const CORE_TAG: &str = "tag:yaml.org,2002:";

/// Types a scalar as PyYAML's SafeLoader does (YAML 1.1 implicit resolvers).
fn resolve_scalar(text: &str, style: TScalarStyle, tag: Option<&Tag>) -> Result<Value, String> {
    if let Some(tag) = tag {
        let name = if tag.handle == CORE_TAG || tag.handle == "!!" {
            tag.suffix.as_str()
        } else {
            return Err(format!(
                "unsupported YAML tag `{}{}`: safe loading only knows the standard `!!` tags",
                tag.handle, tag.suffix
            ));
        };
        return match name {
            "str" => Ok(Value::Str(text.to_string())),
            "int" => parse_int(text)
                .map(Value::Int)
                .ok_or_else(|| format!("`{text}` is not an integer")),
            "float" => parse_float(text)
                .or_else(|| parse_int(text).map(|i| i as f64))
                .map(Value::Float)
                .ok_or_else(|| format!("`{text}` is not a number")),
            "bool" => parse_bool(text)
                .map(Value::Bool)
                .ok_or_else(|| format!("`{text}` is not a boolean")),
            "null" => Ok(Value::Null),
            other => Err(format!("unsupported YAML tag `!!{other}`")),
        };
    }
    if style != TScalarStyle::Plain {
        return Ok(Value::Str(text.to_string()));
    }
    if matches!(text, "" | "~" | "null" | "Null" | "NULL") {
        return Ok(Value::Null);
    }
    if let Some(b) = parse_bool(text) {
        return Ok(Value::Bool(b));
    }
    if let Some(i) = parse_int(text) {
        return Ok(Value::Int(i));
    }
    if let Some(f) = parse_float(text) {
        return Ok(Value::Float(f));
    }
    Ok(Value::Str(text.to_string()))
}

fn parse_bool(text: &str) -> Option<bool> {
    match text {
        "yes" | "Yes" | "YES" | "true" | "True" | "TRUE" | "on" | "On" | "ON" => Some(true),
        "no" | "No" | "NO" | "false" | "False" | "FALSE" | "off" | "Off" | "OFF" => Some(false),
        _ => None,
    }
}

fn split_sign(text: &str) -> (i64, &str) {
    match text.as_bytes().first() {
        Some(b'-') => (-1, &text[1..]),
        Some(b'+') => (1, &text[1..]),
        _ => (1, text),
    }
}

/// YAML 1.1 integers: decimal, `0b`, `0x`, leading-zero octal, `_` separators, base 60.
fn parse_int(text: &str) -> Option<i64> {
    let (sign, body) = split_sign(text);
    if body.is_empty() {
        return None;
    }
    let digits_of = |s: &str, radix: u32| -> Option<i64> {
        let cleaned: String = s.chars().filter(|c| *c != '_').collect();
        if cleaned.is_empty() || !s.chars().all(|c| c == '_' || c.is_digit(radix)) {
            return None;
        }
        i64::from_str_radix(&cleaned, radix).ok()
    };
    let magnitude = if let Some(rest) = body.strip_prefix("0b") {
        digits_of(rest, 2)?
    } else if let Some(rest) = body.strip_prefix("0x") {
        digits_of(rest, 16)?
    } else if body == "0" {
        0
    } else if let Some(rest) = body.strip_prefix('0') {
        digits_of(rest, 8)?
    } else if body.contains(':') {
        let mut total: i64 = 0;
        let mut parts = body.split(':');
        let first = parts.next()?;
        if !first.starts_with(|c: char| ('1'..='9').contains(&c)) {
            return None;
        }
        total = total.checked_add(digits_of(first, 10)?)?;
        for part in parts {
            if part.is_empty() || part.len() > 2 || !part.chars().all(|c| c.is_ascii_digit()) {
                return None;
            }
            let value: i64 = part.parse().ok()?;
            if value > 59 {
                return None;
            }
            total = total.checked_mul(60)?.checked_add(value)?;
        }
        total
    } else if body.starts_with(|c: char| ('1'..='9').contains(&c)) {
        digits_of(body, 10)?
    } else {
        return None;
    };
    magnitude.checked_mul(sign)
}

/// YAML 1.1 floats as PyYAML resolves them: a dot is required (`1e5` stays a string).
fn parse_float(text: &str) -> Option<f64> {
    let (sign, body) = split_sign(text);
    let sign = sign as f64;
    match body {
        ".inf" | ".Inf" | ".INF" => return Some(sign * f64::INFINITY),
        _ => {}
    }
    if matches!(text, ".nan" | ".NaN" | ".NAN") {
        return Some(f64::NAN);
    }
    let cleaned: String = body.chars().filter(|c| *c != '_').collect();
    let (mantissa, exponent) = match cleaned.find(['e', 'E']) {
        Some(at) => (&cleaned[..at], Some(&cleaned[at + 1..])),
        None => (cleaned.as_str(), None),
    };
    let (whole, fraction) = mantissa.split_once('.')?;
    let whole_ok = whole.chars().all(|c| c.is_ascii_digit());
    let fraction_ok = fraction.chars().all(|c| c.is_ascii_digit());
    if !whole_ok || !fraction_ok || (whole.is_empty() && fraction.is_empty()) {
        return None;
    }
    if whole.is_empty() && fraction.is_empty() {
        return None;
    }
    if let Some(exp) = exponent {
        let digits = exp.strip_prefix(['+', '-'])?;
        if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_digit()) {
            return None;
        }
    }
    cleaned.parse::<f64>().ok().map(|f| sign * f)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root(text: &str) -> Node {
        parse(text).expect("parses").root.expect("has a root")
    }

    #[test]
    fn scalars_follow_pyyaml() {
        let node = root(
            "a: yes\nb: off\nc: 010\nd: 0x1f\ne: 1e5\nf: 1.5\ng: '30'\nh: ~\ni: 1_000\nj: 1:30\nk: .inf\nl: 30\n",
        );
        let get = |k: &str| node.get(k).expect("key").value.clone();
        assert_eq!(get("a"), Value::Bool(true));
        assert_eq!(get("b"), Value::Bool(false));
        assert_eq!(get("c"), Value::Int(8));
        assert_eq!(get("d"), Value::Int(31));
        assert_eq!(get("e"), Value::Str("1e5".into()));
        assert_eq!(get("f"), Value::Float(1.5));
        assert_eq!(get("g"), Value::Str("30".into()));
        assert_eq!(get("h"), Value::Null);
        assert_eq!(get("i"), Value::Int(1000));
        assert_eq!(get("j"), Value::Int(90));
        assert_eq!(get("k"), Value::Float(f64::INFINITY));
        assert_eq!(get("l"), Value::Int(30));
    }

    #[test]
    fn aliases_and_merge_keys() {
        let node = root(
            "base: &b {x: 1, y: 2}\nother: &o {y: 3, z: 4}\nm:\n  <<: [*b, *o]\n  x: 9\nlist: &l [1, 2]\ncopy: *l\n",
        );
        let m = node.get("m").expect("m");
        assert_eq!(m.get("x").expect("x").value, Value::Int(9));
        assert_eq!(
            m.get("y").expect("y").value,
            Value::Int(2),
            "earlier merge source wins"
        );
        assert_eq!(m.get("z").expect("z").value, Value::Int(4));
        let (copy, list) = (
            node.get("copy").expect("copy"),
            node.get("list").expect("list"),
        );
        assert_eq!(copy.value, list.value);
        assert_eq!(
            copy.mark,
            Mark { line: 7, column: 7 },
            "an alias is reported where it is used"
        );
    }

    #[test]
    fn deep_nesting_is_refused_not_overflowed() {
        let deep_block = format!("a:\n{}x\n", "- ".repeat(5_000));
        let err = parse(&deep_block).expect_err("too deep");
        assert!(err.message.contains("nested more than"), "{}", err.message);
        let ok = format!("a:\n{}x\n", "- ".repeat(MAX_DEPTH - 2));
        assert!(parse(&ok).is_ok());
        // Aliases nest too: each anchor wraps the previous one in 150 more levels.
        let mut text = String::from("a0: &a0 x\n");
        for i in 1..5 {
            text.push_str(&format!(
                "a{i}: &a{i} {}*a{}{}\n",
                "[".repeat(150),
                i - 1,
                "]".repeat(150)
            ));
        }
        let err = parse(&text).expect_err("too deep through aliases");
        assert!(err.message.contains("nested more than"), "{}", err.message);
        assert_eq!(err.mark.line, 3);
    }

    #[test]
    fn alias_bombs_are_refused() {
        let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..9 {
            text.push_str(&format!(
                "a{i}: &a{i} [{}]\n",
                vec![format!("*a{}", i - 1); 10].join(", ")
            ));
        }
        let err = parse(&text).expect_err("a billion laughs");
        assert!(
            err.message.contains("aliases are expanded"),
            "{}",
            err.message
        );
        assert_eq!(err.mark.line, 6, "the first alias that crosses the limit");
    }

    #[test]
    fn duplicate_keys_last_wins_with_warning() {
        let doc = parse("labels:\nlabels: [a]\n").expect("parses");
        let root = doc.root.expect("root");
        assert!(matches!(
            root.get("labels").expect("labels").value,
            Value::Seq(_)
        ));
        assert_eq!(doc.warnings.len(), 1);
        assert_eq!(doc.warnings[0].mark.line, 1);
    }

    #[test]
    fn marks_are_one_based() {
        let node = root("a:\n  b: 1\n");
        let b = node.get("a").and_then(|a| a.get("b")).expect("b");
        assert_eq!(b.mark, Mark { line: 2, column: 6 });
    }

    #[test]
    fn syntax_errors_have_positions() {
        let err = parse("a: [1\nb: 2").expect_err("bad yaml");
        assert_eq!(err.mark.line, 2);
        let err = parse("a: *nope\n").expect_err("unknown alias");
        assert!(
            err.message.contains("unknown") || err.message.contains("syntax"),
            "{}",
            err.message
        );
    }

    #[test]
    fn empty_and_multi_document() {
        assert!(parse("").expect("empty").root.is_none());
        assert!(parse("# only a comment\n").expect("comment").root.is_none());
        assert!(parse("a: 1\n---\nb: 2\n").is_err());
    }

    #[test]
    fn tags() {
        let node = root("a: !!str 2\nb: !!float 3\n");
        assert_eq!(node.get("a").expect("a").value, Value::Str("2".into()));
        assert_eq!(node.get("b").expect("b").value, Value::Float(3.0));
        assert!(parse("a: !custom 1\n").is_err());
    }
}
