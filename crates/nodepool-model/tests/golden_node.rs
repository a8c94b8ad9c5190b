//! Node JSON against golden files written by Nodepool 11's own `Node` class
//! (see tests/golden/README.md).

#![allow(clippy::unwrap_used)] // tests may unwrap: a panic is a test failure

use nodepool_model::node::{ConnectionPort, ExternalId, Node};
use nodepool_model::wire::node::{from_json, to_json};
use nodepool_model::{DocumentKind, NodeState, RequestId, WireError};
use serde_json::{Map, Value, json};

const STATE_TIME: f64 = 1732550000.123456;
const BUILD_ID: &str = "6e1f0b1c7d7b4e9c8a1e2b3c4d5e6f70";
const POOL_WORKER: &str =
    "np1.example.com-PoolWorker.rax-dfw-main-0123456789abcdef0123456789abcdef";
const ZUUL_SYSTEM: &str = "9f1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e";

fn text(bytes: &[u8]) -> &str {
    std::str::from_utf8(bytes).unwrap()
}

fn object(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(object) => object,
        other => panic!("not an object: {other}"),
    }
}

fn s(value: &str) -> Option<String> {
    Some(value.to_owned())
}

fn strings(values: &[&str]) -> Vec<String> {
    values.iter().map(|v| (*v).to_owned()).collect()
}

/// The same node `generate.py` builds in `openstack_node()`: every key set.
fn openstack_node() -> Node {
    let mut node = Node::new(NodeState::Ready, STATE_TIME);
    node.cloud = s("mycloud");
    node.provider = s("rax-dfw");
    node.pool = s("main");
    node.node_type = strings(&["ubuntu-jammy"]);
    node.allocated_to = Some(RequestId::parse("200-0000001234").unwrap());
    node.az = s("nova");
    node.region = s("DFW");
    node.public_ipv4 = s("203.0.113.10");
    node.private_ipv4 = s("10.0.0.10");
    node.public_ipv6 = s("2001:db8::10");
    node.host_id = s("hv-42");
    node.interface_ip = s("203.0.113.11");
    node.connection_port = Some(ConnectionPort::Port(2222));
    node.image_id = Some(format!(
        "/nodepool/images/ubuntu-jammy/builds/{BUILD_ID}/providers/rax-dfw/images/0000000001"
    ));
    node.launcher = s(POOL_WORKER);
    node.created_time = Some(1732549900.0);
    node.external_id = Some(ExternalId::Id(
        "3b0f6e2a-7c1d-4e5f-9a8b-0c1d2e3f4a5b".to_owned(),
    ));
    node.hostname = s("np0000000042");
    node.comment = s("Held for debugging: café ☕ 🚀 \"quoted\"\n");
    node.user_data = json!({"zuul_system": ZUUL_SYSTEM, "project_name": "opendev.org/zuul/zuul"});
    node.hold_job = s("openstack opendev.org/zuul/zuul zuul-tox refs/heads/master");
    node.host_keys = strings(&[
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGx",
        "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC",
    ]);
    node.username = s("ubuntu");
    node.connection_type = s("ssh");
    node.shell_type = s("bash");
    node.hold_expiration = Some(86400);
    node.resources = Some(object(
        json!({"cores": 8, "instances": 1, "ram": 8192, "volumes": 1, "volume-gb": 80}),
    ));
    node.slot = Some(3);
    node.attributes = Some(object(
        json!({"executor-zone": "dfw", "flavor": {"ssd": true}}),
    ));
    node.python_path = s("/usr/bin/python3");
    node.tenant_name = s("openstack");
    node.driver_data = json!({"any": ["thing", 1, 2.5, null, true]});
    node.requestor = s(ZUUL_SYSTEM);
    node.node_properties = Some(object(json!({"spot": false})));
    node
}

fn kubernetes_node() -> Node {
    let mut node = Node::new(NodeState::Ready, STATE_TIME);
    node.cloud = s("admin-cluster.local");
    node.provider = s("k8s");
    node.pool = s("main");
    node.node_type = strings(&["pod-fedora"]);
    node.allocated_to = Some(RequestId::parse("100-0000000007").unwrap());
    node.host_id = s("k8s-worker-1");
    node.interface_ip = s("pod-fedora");
    node.connection_port = Some(ConnectionPort::Credentials(object(json!({
        "name": "zuul-worker",
        "namespace": "main-0000000043",
        "host": "https://k8s.example.com:6443",
        "skiptls": false,
        "token": "ZXlKaGJHY2lPaUpTVXpJMU5pSXNJbXRwWkNJNkluZz0=",
        "user": "zuul-worker",
        "ca_crt": "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0t",
        "pod": "pod-fedora",
    }))));
    node.connection_type = s("kubectl");
    node.launcher = s(POOL_WORKER);
    node.created_time = Some(1732549950.5);
    node.external_id = Some(ExternalId::Id("main-0000000043".to_owned()));
    node.python_path = s("auto");
    node.resources = Some(object(json!({
        "cores": 2, "instances": 1, "ram": 1024, "ephemeral-storage": 10, "nvidia.com/gpu": 1
    })));
    node.tenant_name = s("example");
    node.requestor = s(ZUUL_SYSTEM);
    node
}

fn aws_node() -> Node {
    let mut node = Node::new(NodeState::InUse, STATE_TIME);
    node.cloud = s("AWS");
    node.provider = s("aws-us-east-1");
    node.pool = s("main");
    node.node_type = strings(&["debian-bookworm-arm64"]);
    node.allocated_to = Some(RequestId::parse("099-0000000100").unwrap());
    node.az = s("us-east-1a");
    node.region = s("us-east-1");
    node.private_ipv4 = s("172.31.0.12");
    node.interface_ip = s("172.31.0.12");
    node.image_id = s("debian-bookworm");
    node.launcher = s(POOL_WORKER);
    node.created_time = Some(1732549000.25);
    node.external_id = Some(ExternalId::Fields(object(
        json!({"instance": "i-0123456789abcdef0", "host": "h-0abc"}),
    )));
    node.user_data = json!({"zuul_system": ZUUL_SYSTEM, "project_name": "example.com/org/project"});
    node.host_keys = strings(&["ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTY="]);
    node.username = s("admin");
    node.connection_type = s("ssh");
    node.resources = Some(object(
        json!({"cores": 2, "instances": 1, "ram": 4096, "L-1216C47A": 2}),
    ));
    node.python_path = s("auto");
    node.tenant_name = s("example");
    node.requestor = s(ZUUL_SYSTEM);
    node.node_properties = Some(object(json!({"fleet": false, "spot": true})));
    node
}

fn static_node() -> Node {
    let mut node = Node::new(NodeState::Ready, STATE_TIME);
    node.provider = s("static-rack");
    node.pool = s("main");
    node.node_type = strings(&["static-debian", "static-any"]);
    node.interface_ip = s("192.0.2.5");
    node.connection_port = Some(ConnectionPort::Port(22022));
    node.launcher = s("static driver");
    node.created_time = Some(STATE_TIME);
    node.external_id = Some(ExternalId::Id("builder05.example.com".to_owned()));
    node.hostname = s("builder05.example.com");
    node.host_keys = strings(&["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAA"]);
    node.username = s("zuul");
    node.connection_type = s("ssh");
    node.slot = Some(0);
    node.attributes = Some(object(json!({"executor-zone": "rack-1"})));
    node.python_path = s("/usr/bin/python3");
    node
}

const OPENSTACK: &[u8] = include_bytes!("golden/node_openstack.json");
const KUBERNETES: &[u8] = include_bytes!("golden/node_kubernetes.json");
const AWS: &[u8] = include_bytes!("golden/node_aws.json");
const STATIC: &[u8] = include_bytes!("golden/node_static.json");
const NEW: &[u8] = include_bytes!("golden/node_new.json");

#[test]
fn fully_populated_node_serializes_to_golden_bytes() {
    assert_eq!(text(&to_json(&openstack_node())), text(OPENSTACK));
}

#[test]
fn fully_populated_node_reads_every_field() {
    assert_eq!(from_json(OPENSTACK).unwrap(), openstack_node());
}

#[test]
fn kubernetes_node_with_credentials_dict() {
    assert_eq!(text(&to_json(&kubernetes_node())), text(KUBERNETES));
    let node = from_json(KUBERNETES).unwrap();
    assert_eq!(node, kubernetes_node());
    let Some(ConnectionPort::Credentials(credentials)) = &node.connection_port else {
        panic!("expected credentials, got {:?}", node.connection_port);
    };
    assert_eq!(credentials["namespace"], "main-0000000043");
    assert_eq!(node.port(), None);
    // Written twice: as connection_port and as the ssh_port copy.
    let written: Value = serde_json::from_slice(&to_json(&node)).unwrap();
    assert_eq!(written["ssh_port"], written["connection_port"]);
}

#[test]
fn aws_node_with_dict_external_id() {
    assert_eq!(text(&to_json(&aws_node())), text(AWS));
    let node = from_json(AWS).unwrap();
    assert_eq!(node, aws_node());
    let Some(ExternalId::Fields(id)) = &node.external_id else {
        panic!("expected fields, got {:?}", node.external_id);
    };
    assert_eq!(id["instance"], "i-0123456789abcdef0");
    assert_eq!(node.state, NodeState::InUse);
}

#[test]
fn static_node_with_several_labels() {
    assert_eq!(text(&to_json(&static_node())), text(STATIC));
    let node = from_json(STATIC).unwrap();
    assert_eq!(node, static_node());
    assert!(node.has_label("static-any"));
}

#[test]
fn new_node_serializes_like_the_python_constructor() {
    let mut node = Node::new(NodeState::Init, STATE_TIME);
    node.created_time = Some(node.state_time);
    assert_eq!(text(&to_json(&node)), text(NEW));
}

#[test]
fn golden_nodes_round_trip_byte_for_byte() {
    for golden in [OPENSTACK, KUBERNETES, AWS, STATIC, NEW] {
        assert_eq!(text(&to_json(&from_json(golden).unwrap())), text(golden));
    }
}

/// Foreign documents and what Nodepool writes back after reading them.
const REWRITES: &[(&str, &[u8], &[u8])] = &[
    (
        "zuul_written",
        include_bytes!("golden/input/node_zuul_written.json"),
        include_bytes!("golden/input/node_zuul_written.rewritten.json"),
    ),
    (
        "legacy",
        include_bytes!("golden/input/node_legacy.json"),
        include_bytes!("golden/input/node_legacy.rewritten.json"),
    ),
    (
        "minimal",
        include_bytes!("golden/input/node_minimal.json"),
        include_bytes!("golden/input/node_minimal.rewritten.json"),
    ),
    (
        "nulls",
        include_bytes!("golden/input/node_nulls.json"),
        include_bytes!("golden/input/node_nulls.rewritten.json"),
    ),
];

#[test]
fn read_modify_write_matches_nodepool() {
    for (name, input, rewritten) in REWRITES {
        let node = from_json(input).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(text(&to_json(&node)), text(rewritten), "{name}");
    }
}

#[test]
fn zuul_written_node_ignores_id_and_unknown_keys() {
    let node = from_json(REWRITES[0].1).unwrap();
    // The same node Nodepool wrote, apart from what Zuul changed.
    assert_eq!(node, aws_node());
    let written = text(&to_json(&node)).to_owned();
    assert!(!written.contains("\"id\""));
    assert!(!written.contains("future_key"));
}

#[test]
fn legacy_node_fields_take_reader_defaults() {
    let node = from_json(REWRITES[1].1).unwrap();
    assert_eq!(node.state, NodeState::Hold);
    assert_eq!(node.node_type, ["centos-7"]);
    assert_eq!(node.connection_port, Some(ConnectionPort::Port(2022)));
    assert_eq!(node.hold_expiration, Some(3600));
    assert_eq!(node.username.as_deref(), Some("zuul"));
    assert_eq!(node.node_properties, None);
    assert_eq!(node.host_keys, ["ssh-rsa AAAA"]);
    assert_eq!(node.created_time, None);
    assert_eq!(node.user_data, Value::Null);
}

#[test]
fn absent_ports_default_to_22_and_explicit_null_stays_null() {
    let minimal = from_json(br#"{"state": "ready", "state_time": 1.5}"#).unwrap();
    assert_eq!(minimal.connection_port, Some(ConnectionPort::Port(22)));
    assert_eq!(minimal.host_keys, Vec::<String>::new());
    assert_eq!(minimal.node_type, Vec::<String>::new());

    // connection_port wins over ssh_port, even when null.
    let nulls = from_json(REWRITES[3].1).unwrap();
    assert_eq!(nulls.connection_port, None);
    assert_eq!(nulls.username, None);
}

#[test]
fn ssh_port_alone_may_hold_credentials() {
    let node =
        from_json(br#"{"state": "ready", "state_time": 1.5, "ssh_port": {"name": "x"}}"#).unwrap();
    assert_eq!(
        node.connection_port,
        Some(ConnectionPort::Credentials(object(json!({"name": "x"}))))
    );
}

#[test]
fn hold_expiration_is_coerced_like_python_int() {
    let cases: Vec<(Value, Value)> =
        serde_json::from_slice(include_bytes!("golden/hold_expiration_cases.json")).unwrap();
    assert!(cases.len() > 20);
    for (input, python) in cases {
        let document = json!({"state": "hold", "state_time": 1.0, "hold_expiration": input});
        let node = from_json(document.to_string().as_bytes()).unwrap();
        let expected = match python {
            Value::Null => None,
            Value::Number(number) => Some(number.as_i64().unwrap()),
            // Python raises TypeError for lists and objects; we read 0.
            Value::String(error) if error == "TypeError" => Some(0),
            other => panic!("unexpected case {other}"),
        };
        assert_eq!(node.hold_expiration, expected, "hold_expiration {input}");
    }
    let absent = from_json(br#"{"state": "hold", "state_time": 1.0}"#).unwrap();
    assert_eq!(absent.hold_expiration, None);
}

#[test]
fn type_is_read_through_as_list() {
    let read = |value: Value| {
        let document = json!({"state": "ready", "state_time": 1.0, "type": value});
        from_json(document.to_string().as_bytes()).map(|node| node.node_type)
    };
    assert_eq!(read(json!("label")).unwrap(), ["label"]);
    assert_eq!(read(json!(["a", "b"])).unwrap(), ["a", "b"]);
    for empty in [
        json!(null),
        json!(""),
        json!([]),
        json!({}),
        json!(0),
        json!(false),
    ] {
        assert_eq!(
            read(empty.clone()).unwrap(),
            Vec::<String>::new(),
            "{empty}"
        );
    }
    assert!(matches!(
        read(json!(["a", 1])),
        Err(WireError::WrongType { key: "type", .. })
    ));
    assert!(matches!(
        read(json!(5)),
        Err(WireError::WrongType { key: "type", .. })
    ));
}

#[test]
fn unknown_state_is_kept_and_written_back() {
    let data = br#"{"state": "hibernating", "state_time": 1.0}"#;
    let node = from_json(data).unwrap();
    assert_eq!(node.state, NodeState::Other("hibernating".to_owned()));
    assert!(text(&to_json(&node)).starts_with(r#"{"state": "hibernating", "state_time": 1.0, "#));
}

#[test]
fn empty_allocated_to_means_unallocated() {
    let node = from_json(br#"{"state": "ready", "state_time": 1.0, "allocated_to": ""}"#).unwrap();
    assert_eq!(node.allocated_to, None);
}

#[test]
fn null_lists_read_as_empty() {
    let node = from_json(br#"{"state": "ready", "state_time": 1.0, "host_keys": null}"#).unwrap();
    assert!(node.host_keys.is_empty());
}

#[test]
fn integer_times_are_accepted_and_written_as_floats() {
    // Python would write the int back unchanged; both read as numbers.
    let node =
        from_json(br#"{"state": "ready", "state_time": 1732550000, "created_time": 5}"#).unwrap();
    assert_eq!(node.state_time, 1732550000.0);
    let written = to_json(&node);
    assert!(text(&written).contains(r#""state_time": 1732550000.0"#));
    assert!(text(&written).contains(r#""created_time": 5.0"#));
}

#[test]
fn empty_data_means_no_node() {
    let error = from_json(b"").unwrap_err();
    assert!(error.is_empty_data());
    assert_eq!(error.document(), DocumentKind::Node);
}

#[test]
fn malformed_documents_give_typed_errors() {
    assert!(matches!(
        from_json(b"{\"state\": "),
        Err(WireError::InvalidJson { .. })
    ));
    assert!(matches!(
        from_json(b"\xff\xfe"),
        Err(WireError::InvalidJson { .. })
    ));
    assert!(matches!(
        from_json(b"   "),
        Err(WireError::InvalidJson { .. })
    ));
    assert!(matches!(
        from_json(b"[1, 2]"),
        Err(WireError::NotAnObject { found: "list", .. })
    ));
    assert!(matches!(
        from_json(br#"{"state_time": 1.0}"#),
        Err(WireError::MissingKey { key: "state", .. })
    ));
    assert!(matches!(
        from_json(br#"{"state": "ready"}"#),
        Err(WireError::MissingKey {
            key: "state_time",
            ..
        })
    ));
    assert!(matches!(
        from_json(br#"{"state": null, "state_time": 1.0}"#),
        Err(WireError::WrongType { key: "state", .. })
    ));
    assert!(matches!(
        from_json(br#"{"state": "ready", "state_time": "now"}"#),
        Err(WireError::WrongType {
            key: "state_time",
            ..
        })
    ));

    let wrong = |key: &str, value: Value| {
        let mut document = object(json!({"state": "ready", "state_time": 1.0}));
        document.insert(key.to_owned(), value);
        from_json(Value::Object(document).to_string().as_bytes())
    };
    for (key, value) in [
        ("cloud", json!(5)),
        ("provider", json!(["x"])),
        ("connection_port", json!("22")),
        ("connection_port", json!(70000)),
        ("connection_port", json!(-1)),
        ("connection_port", json!(22.5)),
        ("allocated_to", json!("not-a-request-id")),
        ("allocated_to", json!(100)),
        ("external_id", json!(42)),
        ("host_keys", json!("ssh-rsa AAAA")),
        ("created_time", json!("yesterday")),
        ("resources", json!([1])),
        ("slot", json!(1.5)),
        ("username", json!(false)),
    ] {
        match wrong(key, value.clone()) {
            Err(WireError::WrongType { key: named, .. }) => assert_eq!(named, key, "{value}"),
            other => panic!("{key}: {value} gave {other:?}"),
        }
    }

    let message = wrong("cloud", json!(5)).unwrap_err().to_string();
    assert_eq!(
        message,
        r#"node key "cloud" must be a string or null, found number 5"#
    );
}
