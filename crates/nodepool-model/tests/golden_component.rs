//! Component JSON against golden files written by Nodepool 11's own
//! component classes (see tests/golden/README.md).

#![allow(clippy::unwrap_used)] // tests may unwrap: a panic is a test failure

use nodepool_model::wire::component::{from_json, to_json};
use nodepool_model::{
    Component, ComponentKind, ComponentRole, ComponentState, DocumentKind, PoolDetails, WireError,
};
use serde_json::json;

const LAUNCHER: &[u8] = include_bytes!("golden/component_launcher.json");
const BUILDER: &[u8] = include_bytes!("golden/component_builder.json");
const POOL: &[u8] = include_bytes!("golden/component_pool.json");
const POOL_EXTRA: &[u8] = include_bytes!("golden/input/component_pool_extra.json");
const POOL_EXTRA_REWRITTEN: &[u8] =
    include_bytes!("golden/input/component_pool_extra.rewritten.json");
const LAUNCHER_MINIMAL: &[u8] = include_bytes!("golden/input/component_launcher_minimal.json");
const LAUNCHER_MINIMAL_REWRITTEN: &[u8] =
    include_bytes!("golden/input/component_launcher_minimal.rewritten.json");

fn text(bytes: &[u8]) -> &str {
    std::str::from_utf8(bytes).unwrap()
}

fn pool_component() -> Component {
    let mut component = Component::new(
        "np1.example.com",
        Some("11.0.0"),
        ComponentRole::Pool(PoolDetails {
            id: Some(
                "np1.example.com-PoolWorker.rax-dfw-main-0123456789abcdef0123456789abcdef"
                    .to_owned(),
            ),
            name: Some("main".to_owned()),
            provider_name: Some("rax-dfw".to_owned()),
            supported_labels: vec!["ubuntu-jammy".to_owned(), "centos-9".to_owned()],
            priority: 50,
            paused: true,
        }),
    );
    component.state = ComponentState::Running;
    component
}

#[test]
fn launcher_component() {
    let mut launcher = Component::new("np1.example.com", Some("11.0.0"), ComponentRole::Launcher);
    launcher.state = ComponentState::Running;
    assert_eq!(text(&to_json(&launcher)), text(LAUNCHER));
    let read = from_json(
        ComponentKind::Launcher,
        "np1.example.com0000000001",
        LAUNCHER,
    )
    .unwrap();
    assert_eq!(read, launcher);
}

#[test]
fn builder_component_stays_stopped() {
    let builder = Component::new("nb01.example.com", Some("11.0.0"), ComponentRole::Builder);
    assert_eq!(text(&to_json(&builder)), text(BUILDER));
    let read = from_json(
        ComponentKind::Builder,
        "nb01.example.com0000000002",
        BUILDER,
    )
    .unwrap();
    assert_eq!(read, builder);
    assert_eq!(read.state, ComponentState::Stopped);
}

#[test]
fn pool_component_with_every_field() {
    assert_eq!(text(&to_json(&pool_component())), text(POOL));
    let read = from_json(ComponentKind::Pool, "np1.example.com0000000003", POOL).unwrap();
    assert_eq!(read, pool_component());
    let details = read.pool().unwrap();
    assert_eq!(details.supported_labels, ["ubuntu-jammy", "centos-9"]);
    assert!(details.paused);
}

#[test]
fn golden_components_round_trip_byte_for_byte() {
    for (kind, golden) in [
        (ComponentKind::Launcher, LAUNCHER),
        (ComponentKind::Builder, BUILDER),
        (ComponentKind::Pool, POOL),
    ] {
        let read = from_json(kind, "host0000000001", golden).unwrap();
        assert_eq!(text(&to_json(&read)), text(golden));
    }
}

#[test]
fn unknown_component_keys_survive_a_rewrite() {
    let read = from_json(ComponentKind::Pool, "np20000000003", POOL_EXTRA).unwrap();
    assert_eq!(read.hostname, "np2");
    assert_eq!(read.state, ComponentState::Paused);
    assert_eq!(read.model_api, 1);
    assert_eq!(read.version.as_deref(), Some("12.0.0"));
    let keys: Vec<&str> = read.extra.keys().map(String::as_str).collect();
    assert_eq!(keys, ["zeta", "alpha"]);
    assert_eq!(read.extra["zeta"], json!({"b": 1, "a": [{"y": 2, "x": 1}]}));
    // Sorted recursively, like json.dumps(sort_keys=True).
    assert_eq!(text(&to_json(&read)), text(POOL_EXTRA_REWRITTEN));
}

#[test]
fn missing_component_keys_take_class_defaults() {
    let read = from_json(ComponentKind::Launcher, "np30000000004", LAUNCHER_MINIMAL).unwrap();
    assert_eq!(read.hostname, "np30000000004");
    assert_eq!(read.state, ComponentState::Running);
    assert_eq!(read.version, None);
    assert_eq!(read.model_api, 0);
    assert_eq!(text(&to_json(&read)), text(LAUNCHER_MINIMAL_REWRITTEN));

    let pool = from_json(ComponentKind::Pool, "p0000000001", b"{}").unwrap();
    assert_eq!(pool.state, ComponentState::Stopped);
    assert_eq!(pool.pool(), Some(&PoolDetails::default()));
    assert_eq!(pool.hostname, "p0000000001");
}

#[test]
fn kind_comes_from_the_directory() {
    // A pool's keys in the launcher directory are just unknown keys there.
    let read = from_json(ComponentKind::Launcher, "np0000000001", POOL).unwrap();
    assert_eq!(read.kind(), ComponentKind::Launcher);
    assert!(read.extra.contains_key("supported_labels"));
    assert!(!read.extra.contains_key("kind"));
}

#[test]
fn unknown_component_state_is_kept() {
    let read = from_json(
        ComponentKind::Builder,
        "b0000000001",
        br#"{"state": "draining"}"#,
    )
    .unwrap();
    assert_eq!(read.state, ComponentState::Other("draining".to_owned()));
}

#[test]
fn empty_and_malformed_components() {
    let error = from_json(ComponentKind::Pool, "p0000000001", b"").unwrap_err();
    assert!(error.is_empty_data());
    assert_eq!(error.document(), DocumentKind::Component);
    assert!(matches!(
        from_json(ComponentKind::Pool, "p0000000001", b"{"),
        Err(WireError::InvalidJson { .. })
    ));
    for (document, key) in [
        (r#"{"supported_labels": "a"}"#, "supported_labels"),
        (r#"{"priority": "high"}"#, "priority"),
        (r#"{"paused": 1}"#, "paused"),
        (r#"{"model_api": "0"}"#, "model_api"),
        (r#"{"id": 5}"#, "id"),
    ] {
        match from_json(ComponentKind::Pool, "p0000000001", document.as_bytes()) {
            Err(WireError::WrongType { key: named, .. }) => assert_eq!(named, key),
            other => panic!("{document} gave {other:?}"),
        }
    }
}
