//! Node JSON, `/nodepool/nodes/<id>` (spec 1.5; np `Node.toDict`/`updateFromDict`).
//!
//! Written in full on every store, 37 keys in Nodepool's order. Reading
//! follows `Node.updateFromDict`:
//!
//! * `state` and `state_time` are required. (Python rejects a missing or
//!   unknown `state` and stamps a missing `state_time` with the read time; we
//!   keep unknown states as [`NodeState::Other`] and report a missing
//!   `state_time`, having no clock.)
//! * `type`: a list of strings; a bare string becomes a one-element list;
//!   null, `""` and other empty values become `[]` (Python `as_list`).
//! * `connection_port`: an int port or a credentials object; when absent the
//!   value of `ssh_port` is used; when both are absent, 22. An explicit null
//!   stays null.
//! * `external_id`: a string, an object (AWS) or null.
//! * `hold_expiration`: coerced like Python `int()`: numbers truncate toward
//!   zero, booleans are 0/1, numeric strings (surrounding whitespace, sign,
//!   `_` between digits) are parsed, other strings become 0, null stays null.
//!   Lists and objects also become 0 (Python raises `TypeError` there).
//! * `username` defaults to `"zuul"` when absent; `host_keys` to `[]`;
//!   `node_properties` to null; everything else to null.
//! * `allocated_to`: a request id; `""` reads as not allocated.
//! * Unknown keys (Zuul's `id`, anything newer) are ignored and not written
//!   back, exactly as Nodepool drops them.

use serde::Serialize;
use serde_json::{Map, Value};

use super::fields::Fields;
use super::{DocumentKind, WireError};
use crate::ids::RequestId;
use crate::node::{ConnectionPort, DEFAULT_CONNECTION_PORT, DEFAULT_USERNAME, ExternalId, Node};
use crate::python_json::to_python_json;
use crate::states::NodeState;

/// The document as Nodepool writes it, keys in `Node.toDict` order.
/// (`toDict` assigns `connection_port` twice; a Python dict keeps the first
/// position, right after `interface_ip`.)
#[derive(Serialize)]
struct NodeDocument<'a> {
    state: &'a str,
    state_time: f64,
    cloud: &'a Option<String>,
    provider: &'a Option<String>,
    pool: &'a Option<String>,
    #[serde(rename = "type")]
    node_type: &'a [String],
    allocated_to: Option<String>,
    az: &'a Option<String>,
    region: &'a Option<String>,
    public_ipv4: &'a Option<String>,
    private_ipv4: &'a Option<String>,
    public_ipv6: &'a Option<String>,
    host_id: &'a Option<String>,
    interface_ip: &'a Option<String>,
    connection_port: Option<PortDocument<'a>>,
    /// Backwards-compatible copy of `connection_port` for old Zuul readers.
    ssh_port: Option<PortDocument<'a>>,
    image_id: &'a Option<String>,
    launcher: &'a Option<String>,
    created_time: Option<f64>,
    external_id: Option<ExternalIdDocument<'a>>,
    hostname: &'a Option<String>,
    comment: &'a Option<String>,
    user_data: &'a Value,
    hold_job: &'a Option<String>,
    host_keys: &'a [String],
    username: &'a Option<String>,
    connection_type: &'a Option<String>,
    shell_type: &'a Option<String>,
    hold_expiration: Option<i64>,
    resources: &'a Option<Map<String, Value>>,
    slot: Option<i64>,
    attributes: &'a Option<Map<String, Value>>,
    python_path: &'a Option<String>,
    tenant_name: &'a Option<String>,
    driver_data: &'a Value,
    requestor: &'a Option<String>,
    node_properties: &'a Option<Map<String, Value>>,
}

#[derive(Serialize)]
#[serde(untagged)]
enum PortDocument<'a> {
    Port(u16),
    Credentials(&'a Map<String, Value>),
}

#[derive(Serialize)]
#[serde(untagged)]
enum ExternalIdDocument<'a> {
    Id(&'a str),
    Fields(&'a Map<String, Value>),
}

fn port_document(port: &Option<ConnectionPort>) -> Option<PortDocument<'_>> {
    match port {
        None => None,
        Some(ConnectionPort::Port(port)) => Some(PortDocument::Port(*port)),
        Some(ConnectionPort::Credentials(credentials)) => {
            Some(PortDocument::Credentials(credentials))
        }
    }
}

/// The bytes Nodepool would store for `node`.
pub fn to_json(node: &Node) -> Vec<u8> {
    let document = NodeDocument {
        state: node.state.as_str(),
        state_time: node.state_time,
        cloud: &node.cloud,
        provider: &node.provider,
        pool: &node.pool,
        node_type: &node.node_type,
        allocated_to: node.allocated_to.as_ref().map(RequestId::to_string),
        az: &node.az,
        region: &node.region,
        public_ipv4: &node.public_ipv4,
        private_ipv4: &node.private_ipv4,
        public_ipv6: &node.public_ipv6,
        host_id: &node.host_id,
        interface_ip: &node.interface_ip,
        connection_port: port_document(&node.connection_port),
        ssh_port: port_document(&node.connection_port),
        image_id: &node.image_id,
        launcher: &node.launcher,
        created_time: node.created_time,
        external_id: node.external_id.as_ref().map(|id| match id {
            ExternalId::Id(text) => ExternalIdDocument::Id(text),
            ExternalId::Fields(fields) => ExternalIdDocument::Fields(fields),
        }),
        hostname: &node.hostname,
        comment: &node.comment,
        user_data: &node.user_data,
        hold_job: &node.hold_job,
        host_keys: &node.host_keys,
        username: &node.username,
        connection_type: &node.connection_type,
        shell_type: &node.shell_type,
        hold_expiration: node.hold_expiration,
        resources: &node.resources,
        slot: node.slot,
        attributes: &node.attributes,
        python_path: &node.python_path,
        tenant_name: &node.tenant_name,
        driver_data: &node.driver_data,
        requestor: &node.requestor,
        node_properties: &node.node_properties,
    };
    to_python_json(&document)
}

/// Reads node znode data. `b""` is [`WireError::Empty`]: "no node".
pub fn from_json(data: &[u8]) -> Result<Node, WireError> {
    let mut fields = Fields::parse(DocumentKind::Node, data)?;
    let state = NodeState::parse(&fields.required_string("state")?);
    let state_time = fields.required_time("state_time")?;
    let node_type = read_type(&mut fields)?;
    let allocated_to = read_allocated_to(&mut fields)?;
    let connection_port = read_connection_port(&mut fields)?;
    let external_id = read_external_id(&mut fields)?;
    let hold_expiration = fields
        .take("hold_expiration")
        .and_then(|value| coerce_python_int(&value));
    Ok(Node {
        state,
        state_time,
        cloud: fields.optional_string("cloud")?,
        provider: fields.optional_string("provider")?,
        pool: fields.optional_string("pool")?,
        node_type,
        allocated_to,
        az: fields.optional_string("az")?,
        region: fields.optional_string("region")?,
        public_ipv4: fields.optional_string("public_ipv4")?,
        private_ipv4: fields.optional_string("private_ipv4")?,
        public_ipv6: fields.optional_string("public_ipv6")?,
        host_id: fields.optional_string("host_id")?,
        interface_ip: fields.optional_string("interface_ip")?,
        connection_port,
        image_id: fields.optional_string("image_id")?,
        launcher: fields.optional_string("launcher")?,
        created_time: fields.optional_time("created_time")?,
        external_id,
        hostname: fields.optional_string("hostname")?,
        comment: fields.optional_string("comment")?,
        user_data: fields.any("user_data"),
        hold_job: fields.optional_string("hold_job")?,
        host_keys: fields.string_list("host_keys")?,
        username: fields.string_or("username", DEFAULT_USERNAME)?,
        connection_type: fields.optional_string("connection_type")?,
        shell_type: fields.optional_string("shell_type")?,
        hold_expiration,
        resources: fields.optional_object("resources")?,
        slot: fields.optional_int("slot")?,
        attributes: fields.optional_object("attributes")?,
        python_path: fields.optional_string("python_path")?,
        tenant_name: fields.optional_string("tenant_name")?,
        driver_data: fields.any("driver_data"),
        requestor: fields.optional_string("requestor")?,
        node_properties: fields.optional_object("node_properties")?,
    })
}

/// `type` through Python's `as_list`: falsy values give `[]`, a list is
/// kept, anything else is wrapped in a list.
fn read_type(fields: &mut Fields) -> Result<Vec<String>, WireError> {
    const KEY: &str = "type";
    const EXPECTED: &str = "a list of strings or a string";
    match fields.take(KEY) {
        None => Ok(Vec::new()),
        Some(value) if is_python_falsy(&value) => Ok(Vec::new()),
        Some(Value::String(label)) => Ok(vec![label]),
        Some(value @ Value::Array(_)) => fields.strings_in(KEY, value),
        Some(other) => Err(fields.wrong_type(KEY, EXPECTED, &other)),
    }
}

fn is_python_falsy(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::Bool(flag) => !flag,
        Value::Number(number) => number.as_f64() == Some(0.0),
        Value::String(text) => text.is_empty(),
        Value::Array(items) => items.is_empty(),
        Value::Object(object) => object.is_empty(),
    }
}

fn read_allocated_to(fields: &mut Fields) -> Result<Option<RequestId>, WireError> {
    const KEY: &str = "allocated_to";
    match fields.take(KEY) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) if text.is_empty() => Ok(None),
        Some(Value::String(text)) => match RequestId::parse(&text) {
            Ok(id) => Ok(Some(id)),
            Err(_) => Err(fields.wrong_type(KEY, "a request id or null", &Value::String(text))),
        },
        Some(other) => Err(fields.wrong_type(KEY, "a request id or null", &other)),
    }
}

/// `d.get('connection_port', d.get('ssh_port', 22))`.
fn read_connection_port(fields: &mut Fields) -> Result<Option<ConnectionPort>, WireError> {
    let ssh_port = fields.take("ssh_port");
    let (key, value) = match fields.take("connection_port") {
        Some(value) => ("connection_port", value),
        None => match ssh_port {
            Some(value) => ("ssh_port", value),
            None => return Ok(Some(ConnectionPort::Port(DEFAULT_CONNECTION_PORT))),
        },
    };
    const EXPECTED: &str = "a port number, a credentials object or null";
    match value {
        Value::Null => Ok(None),
        Value::Object(credentials) => Ok(Some(ConnectionPort::Credentials(credentials))),
        Value::Number(ref number) => {
            match number.as_u64().and_then(|port| u16::try_from(port).ok()) {
                Some(port) => Ok(Some(ConnectionPort::Port(port))),
                None => Err(fields.wrong_type(key, EXPECTED, &value)),
            }
        }
        other => Err(fields.wrong_type(key, EXPECTED, &other)),
    }
}

fn read_external_id(fields: &mut Fields) -> Result<Option<ExternalId>, WireError> {
    match fields.take("external_id") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(id)) => Ok(Some(ExternalId::Id(id))),
        Some(Value::Object(id_fields)) => Ok(Some(ExternalId::Fields(id_fields))),
        Some(other) => Err(fields.wrong_type("external_id", "a string, an object or null", &other)),
    }
}

/// `int(value)` as `Node.updateFromDict` applies it to `hold_expiration`,
/// with `ValueError` (and, unlike Python, `TypeError`) becoming 0.
/// `None` only for JSON null.
pub fn coerce_python_int(value: &Value) -> Option<i64> {
    match value {
        Value::Null => None,
        Value::Bool(flag) => Some(i64::from(*flag)),
        Value::Number(number) => Some(match number.as_i64() {
            Some(integer) => integer,
            // Truncation toward zero; `as` saturates outside the i64 range,
            // where Python would keep a big integer.
            None => number.as_f64().map_or(0, |float| float.trunc() as i64),
        }),
        Value::String(text) => Some(parse_python_int_literal(text).unwrap_or(0)),
        Value::Array(_) | Value::Object(_) => Some(0),
    }
}

/// Python `int(str)` for base 10: optional surrounding whitespace, optional
/// sign, ASCII digits with single underscores between them. Saturates
/// outside the i64 range. (Python also accepts non-ASCII decimal digits;
/// those give `None` here.)
fn parse_python_int_literal(text: &str) -> Option<i64> {
    let text = text.trim();
    let (negative, digits) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    if digits.is_empty()
        || digits.starts_with('_')
        || digits.ends_with('_')
        || digits.contains("__")
        || !digits.bytes().all(|b| b.is_ascii_digit() || b == b'_')
    {
        return None;
    }
    let mut magnitude: i64 = 0;
    for digit in digits.bytes().filter(u8::is_ascii_digit) {
        let digit = i64::from(digit - b'0');
        magnitude = magnitude.saturating_mul(10).saturating_add(digit);
    }
    Some(if negative { -magnitude } else { magnitude })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn python_int_literals() {
        let cases = [
            ("3600", Some(3600)),
            (" 42 ", Some(42)),
            ("+7", Some(7)),
            ("-8", Some(-8)),
            ("1_000", Some(1000)),
            ("1.5", None),
            ("", None),
            ("-", None),
            ("abc", None),
            ("1__0", None),
            ("_1", None),
            ("1_", None),
            ("0x10", None),
            ("99999999999999999999", Some(i64::MAX)),
        ];
        for (text, expected) in cases {
            assert_eq!(parse_python_int_literal(text), expected, "{text:?}");
        }
    }

    #[test]
    fn coercion_of_non_strings() {
        assert_eq!(coerce_python_int(&json!(null)), None);
        assert_eq!(coerce_python_int(&json!(2.9)), Some(2));
        assert_eq!(coerce_python_int(&json!(-2.9)), Some(-2));
        assert_eq!(coerce_python_int(&json!(true)), Some(1));
        assert_eq!(coerce_python_int(&json!(1e300)), Some(i64::MAX));
        assert_eq!(coerce_python_int(&json!(u64::MAX)), Some(i64::MAX));
        assert_eq!(coerce_python_int(&json!([1])), Some(0));
        assert_eq!(coerce_python_int(&json!({})), Some(0));
    }

    #[test]
    fn falsy_values() {
        for value in [
            json!(null),
            json!(false),
            json!(0),
            json!(0.0),
            json!(""),
            json!([]),
            json!({}),
        ] {
            assert!(is_python_falsy(&value), "{value}");
        }
        for value in [
            json!(true),
            json!(1),
            json!("a"),
            json!([0]),
            json!({"a": 0}),
        ] {
            assert!(!is_python_falsy(&value), "{value}");
        }
    }
}
