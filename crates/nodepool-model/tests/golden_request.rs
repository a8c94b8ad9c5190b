//! Node request JSON against golden files written by Nodepool 11's own
//! `NodeRequest` class (see tests/golden/README.md).

#![allow(clippy::unwrap_used)] // tests may unwrap: a panic is a test failure

use nodepool_model::request::{MIN_READY_REQUESTOR, NodeRequest};
use nodepool_model::wire::request::{from_json, to_json};
use nodepool_model::{DocumentKind, NodeId, RequestId, RequestState, WireError};
use serde_json::{Value, json};

const STATE_TIME: f64 = 1732550000.123456;
const ZUUL_SYSTEM: &str = "9f1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e";

const FULFILLED: &[u8] = include_bytes!("golden/request_fulfilled.json");
const MIN_READY: &[u8] = include_bytes!("golden/request_min_ready.json");
const ZUUL_SUBMITTED: &[u8] = include_bytes!("golden/input/request_zuul_submitted.json");
const ZUUL_SUBMITTED_REWRITTEN: &[u8] =
    include_bytes!("golden/input/request_zuul_submitted.rewritten.json");
const MINIMAL: &[u8] = include_bytes!("golden/input/request_minimal.json");
const MINIMAL_REWRITTEN: &[u8] = include_bytes!("golden/input/request_minimal.rewritten.json");

fn text(bytes: &[u8]) -> &str {
    std::str::from_utf8(bytes).unwrap()
}

/// The request `generate.py` builds as `request_fulfilled.json`.
fn fulfilled_request() -> NodeRequest {
    let mut request = NodeRequest::new(0.0);
    request.set_state(RequestState::Fulfilled, STATE_TIME);
    request.declined_by =
        vec!["np1.example.com-PoolWorker.rax-ord-main-0123456789abcdef0123456789abcdef".to_owned()];
    request.node_types = ["ubuntu-jammy", "ubuntu-jammy", "centos-9"]
        .map(str::to_owned)
        .to_vec();
    request.nodes = [42, 43, 44].map(NodeId::new).to_vec();
    request.reuse = true;
    request.requestor = Some(ZUUL_SYSTEM.to_owned());
    request.requestor_data = json!({
        "build_set_uuid": "b5e0c8a1d2f34e56a7b8c9d0e1f2a3b4",
        "tenant_name": "openstack",
        "pipeline_name": "check",
        "job_uuid": "c0ffee00c0ffee00c0ffee00c0ffee00",
        "job_name": "tox-py311",
        "span_info": {"span_id": "abc", "trace_id": "def"},
    });
    request.provider = Some("rax-dfw".to_owned());
    request.relative_priority = 2;
    request.event_id = Some("e7a1b2c3d4e5f60718293a4b5c6d7e8f".to_owned());
    request.created_time = Some(1732549999.5);
    request.tenant_name = Some("openstack".to_owned());
    request
}

#[test]
fn fully_populated_request_serializes_to_golden_bytes() {
    assert_eq!(text(&to_json(&fulfilled_request())), text(FULFILLED));
}

#[test]
fn fully_populated_request_reads_every_field() {
    assert_eq!(from_json(FULFILLED).unwrap(), fulfilled_request());
}

#[test]
fn min_ready_request_matches_create_min_ready() {
    let request = NodeRequest::min_ready(
        "ubuntu-jammy",
        "0a1b2c3d4e5f60718293a4b5c6d7e8f9".to_owned(),
        STATE_TIME,
    );
    assert_eq!(text(&to_json(&request)), text(MIN_READY));
    let read = from_json(MIN_READY).unwrap();
    assert_eq!(read, request);
    assert!(read.is_min_ready());
    assert_eq!(read.requestor.as_deref(), Some(MIN_READY_REQUESTOR));
}

#[test]
fn golden_requests_round_trip_byte_for_byte() {
    for golden in [FULFILLED, MIN_READY] {
        assert_eq!(text(&to_json(&from_json(golden).unwrap())), text(golden));
    }
}

#[test]
fn zuul_submitted_request_reads_with_defaults() {
    let request = from_json(ZUUL_SUBMITTED).unwrap();
    assert_eq!(request.state, RequestState::Requested);
    assert_eq!(request.state_time, 1732549998.0001);
    assert!(request.declined_by.is_empty());
    assert!(request.nodes.is_empty());
    assert!(request.reuse);
    assert_eq!(request.node_types, ["debian-bookworm"]);
    assert_eq!(request.requestor.as_deref(), Some(ZUUL_SYSTEM));
    assert_eq!(request.requestor_data["pipeline_name"], "gate");
    assert_eq!(request.requestor_data["span_info"], Value::Null);
    assert_eq!(request.provider, None);
    assert_eq!(request.relative_priority, 0);
    assert_eq!(
        request.event_id.as_deref(),
        Some("5c4b3a29180f7e6d5c4b3a29180f7e6d")
    );
    assert_eq!(request.created_time, Some(1732549998.0));
    assert_eq!(request.tenant_name.as_deref(), Some("example"));
    assert_eq!(text(&to_json(&request)), text(ZUUL_SUBMITTED_REWRITTEN));
}

#[test]
fn minimal_request_drops_unknown_keys_like_nodepool() {
    let request = from_json(MINIMAL).unwrap();
    assert_eq!(request.state, RequestState::Pending);
    assert_eq!(request.requestor_data, Value::Null);
    assert_eq!(text(&to_json(&request)), text(MINIMAL_REWRITTEN));
}

#[test]
fn keys_zuul_indexes_directly_are_always_written() {
    let written: Value = serde_json::from_slice(&to_json(&NodeRequest::new(1.0))).unwrap();
    let keys: Vec<&str> = written
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        [
            "state",
            "state_time",
            "declined_by",
            "node_types",
            "nodes",
            "reuse",
            "requestor",
            "requestor_data",
            "provider",
            "relative_priority",
            "event_id",
            "created_time",
            "tenant_name",
        ]
    );
}

#[test]
fn priority_orders_queued_requests() {
    let mut queue: Vec<(RequestId, NodeRequest)> = [
        ("300-0000000001", 0),
        ("100-0000000009", 1),
        ("100-0000000010", 0),
        ("099-0000000011", 5),
        ("900-0000000002", 0),
    ]
    .map(|(id, relative_priority)| {
        let mut request = NodeRequest::new(1.0);
        request.relative_priority = relative_priority;
        (RequestId::parse(id).unwrap(), request)
    })
    .to_vec();
    queue.sort_by_key(|(id, request)| request.priority(id));
    let order: Vec<String> = queue.iter().map(|(id, _)| id.to_string()).collect();
    assert_eq!(
        order,
        [
            "099-0000000011",
            "100-0000000010",
            "100-0000000009",
            "300-0000000001",
            "900-0000000002"
        ]
    );
}

#[test]
fn explicit_nulls_read_as_empty_values() {
    let request = from_json(
        br#"{"state": "requested", "state_time": 1.0, "declined_by": null, "node_types": null,
             "nodes": null, "reuse": null, "relative_priority": null}"#,
    )
    .unwrap();
    assert!(request.declined_by.is_empty());
    assert!(request.node_types.is_empty());
    assert!(request.nodes.is_empty());
    assert!(!request.reuse);
    assert_eq!(request.relative_priority, 0);
}

#[test]
fn unknown_request_state_is_kept() {
    let request = from_json(br#"{"state": "accepted", "state_time": 1.0}"#).unwrap();
    assert_eq!(request.state, RequestState::Other("accepted".to_owned()));
    assert!(text(&to_json(&request)).starts_with(r#"{"state": "accepted", "#));
}

#[test]
fn empty_and_malformed_requests() {
    let error = from_json(b"").unwrap_err();
    assert!(error.is_empty_data());
    assert_eq!(error.document(), DocumentKind::NodeRequest);
    assert!(matches!(
        from_json(b"nope"),
        Err(WireError::InvalidJson { .. })
    ));
    assert!(matches!(
        from_json(b"\"x\""),
        Err(WireError::NotAnObject {
            found: "string",
            ..
        })
    ));
    assert!(matches!(
        from_json(br#"{"state_time": 1.0}"#),
        Err(WireError::MissingKey { key: "state", .. })
    ));
    for (document, key) in [
        (
            r#"{"state": "requested", "state_time": 1.0, "nodes": ["42"]}"#,
            "nodes",
        ),
        (
            r#"{"state": "requested", "state_time": 1.0, "nodes": [42]}"#,
            "nodes",
        ),
        (
            r#"{"state": "requested", "state_time": 1.0, "nodes": "0000000042"}"#,
            "nodes",
        ),
        (
            r#"{"state": "requested", "state_time": 1.0, "node_types": "a"}"#,
            "node_types",
        ),
        (
            r#"{"state": "requested", "state_time": 1.0, "reuse": "yes"}"#,
            "reuse",
        ),
        (
            r#"{"state": "requested", "state_time": 1.0, "relative_priority": 1.5}"#,
            "relative_priority",
        ),
        (
            r#"{"state": "requested", "state_time": 1.0, "event_id": 7}"#,
            "event_id",
        ),
    ] {
        match from_json(document.as_bytes()) {
            Err(WireError::WrongType { key: named, .. }) => assert_eq!(named, key, "{document}"),
            other => panic!("{document} gave {other:?}"),
        }
    }
    let message = from_json(br#"{"state": "requested", "state_time": 1.0, "nodes": ["42"]}"#)
        .unwrap_err()
        .to_string();
    assert_eq!(
        message,
        r#"node request key "nodes" must be a list of 10-digit node ids, found string "42""#
    );
}
