//! Node request JSON, `/nodepool/requests/<id>` (spec 1.7; np
//! `NodeRequest.toDict`/`updateFromDict`; Zuul `NodeRequest.toDict`).
//!
//! Written with exactly the 13 keys Nodepool writes, always all of them:
//! Zuul indexes `requestor_data`, `event_id`, `provider`, `requestor`,
//! `node_types`, `state` and `state_time` directly and raises `KeyError`
//! when one is missing.
//!
//! Reading accepts what Zuul submits (no `declined_by`, `nodes` or
//! `reuse`): absent lists are empty, `reuse` defaults to true,
//! `relative_priority` to 0, everything else to null. Explicit nulls where
//! Python would carry `None` along are read as the natural empty value:
//! null lists as `[]`, `reuse: null` as false (Python tests it for truth),
//! `relative_priority: null` as 0 (Python could not sort it). `nodes` entries
//! must be node ids. Unknown keys are dropped, as Nodepool drops them.

use serde::Serialize;
use serde_json::Value;

use super::fields::Fields;
use super::{DocumentKind, WireError};
use crate::ids::NodeId;
use crate::python_json::to_python_json;
use crate::request::NodeRequest;
use crate::states::RequestState;

/// The document as Nodepool writes it, keys in `NodeRequest.toDict` order.
#[derive(Serialize)]
struct RequestDocument<'a> {
    state: &'a str,
    state_time: f64,
    declined_by: &'a [String],
    node_types: &'a [String],
    nodes: Vec<String>,
    reuse: bool,
    requestor: &'a Option<String>,
    requestor_data: &'a Value,
    provider: &'a Option<String>,
    relative_priority: i64,
    event_id: &'a Option<String>,
    created_time: Option<f64>,
    tenant_name: &'a Option<String>,
}

/// The bytes Nodepool would store for `request`.
pub fn to_json(request: &NodeRequest) -> Vec<u8> {
    let document = RequestDocument {
        state: request.state.as_str(),
        state_time: request.state_time,
        declined_by: &request.declined_by,
        node_types: &request.node_types,
        nodes: request.nodes.iter().map(NodeId::to_string).collect(),
        reuse: request.reuse,
        requestor: &request.requestor,
        requestor_data: &request.requestor_data,
        provider: &request.provider,
        relative_priority: request.relative_priority,
        event_id: &request.event_id,
        created_time: request.created_time,
        tenant_name: &request.tenant_name,
    };
    to_python_json(&document)
}

/// Reads request znode data. `b""` is [`WireError::Empty`].
pub fn from_json(data: &[u8]) -> Result<NodeRequest, WireError> {
    let mut fields = Fields::parse(DocumentKind::NodeRequest, data)?;
    let state = RequestState::parse(&fields.required_string("state")?);
    let state_time = fields.required_time("state_time")?;
    let nodes = read_nodes(&mut fields)?;
    Ok(NodeRequest {
        state,
        state_time,
        declined_by: fields.string_list("declined_by")?,
        node_types: fields.string_list("node_types")?,
        nodes,
        reuse: fields.bool_or("reuse", true)?,
        requestor: fields.optional_string("requestor")?,
        requestor_data: fields.any("requestor_data"),
        provider: fields.optional_string("provider")?,
        relative_priority: fields.int_or("relative_priority", 0)?,
        event_id: fields.optional_string("event_id")?,
        created_time: fields.optional_time("created_time")?,
        tenant_name: fields.optional_string("tenant_name")?,
    })
}

/// `nodes`: node ids as strings; absent and null are empty.
fn read_nodes(fields: &mut Fields) -> Result<Vec<NodeId>, WireError> {
    const KEY: &str = "nodes";
    const EXPECTED: &str = "a list of 10-digit node ids";
    let items = match fields.take(KEY) {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(items)) => items,
        Some(other) => return Err(fields.wrong_type(KEY, EXPECTED, &other)),
    };
    items
        .iter()
        .map(|item| match item {
            Value::String(text) => {
                NodeId::parse(text).map_err(|_| fields.wrong_type(KEY, EXPECTED, item))
            }
            _ => Err(fields.wrong_type(KEY, EXPECTED, item)),
        })
        .collect()
}
