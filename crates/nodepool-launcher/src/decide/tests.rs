use std::collections::{BTreeMap, BTreeSet, HashSet};

use nodepool_driver::Quota;
use nodepool_model::{Node, NodeId, NodeRequest, NodeState, PoolDetails, RequestId, RequestState};

use super::*;
use crate::view::{NodeEntry, RequestEntry};

fn me(labels: &[&str], priority: i64) -> PoolIdentity {
    PoolIdentity {
        launcher_id: "me".into(),
        provider: "p1".into(),
        pool: "main".into(),
        priority,
        labels: labels.iter().map(|s| s.to_string()).collect(),
    }
}

fn pool(id: &str, provider: &str, labels: &[&str], priority: i64, paused: bool) -> PoolDetails {
    PoolDetails {
        id: Some(id.into()),
        name: Some("main".into()),
        provider_name: Some(provider.into()),
        supported_labels: labels.iter().map(|s| s.to_string()).collect(),
        priority,
        paused,
    }
}

fn request(labels: &[&str]) -> NodeRequest {
    let mut r = NodeRequest::new(0.0);
    r.node_types = labels.iter().map(|s| s.to_string()).collect();
    r
}

fn node(id: u32, state: NodeState, label: &str, t: f64) -> NodeEntry {
    let mut n = Node::new(state, t);
    n.provider = Some("p1".into());
    n.pool = Some("main".into());
    n.node_type = vec![label.into()];
    NodeEntry {
        id: NodeId::new(id),
        node: std::sync::Arc::new(n),
        locked: false,
        lock_dir: false,
        version: 1,
    }
}

#[test]
fn requests_this_pool_can_serve_fully_come_first_then_by_priority() {
    let entry = |id: &str, labels: &[&str], rel: i64| {
        let mut r = request(labels);
        r.relative_priority = rel;
        RequestEntry {
            id: RequestId::parse(id).expect("id"),
            request: std::sync::Arc::new(r),
            version: 0,
        }
    };
    let mut requests = vec![
        entry("100-0000000003", &["a"], 0),
        entry("100-0000000001", &["a", "z"], 0),
        entry("200-0000000000", &["a"], 0),
        entry("100-0000000002", &["a"], 5),
        entry("099-0000000009", &["a"], 9),
    ];
    let labels: BTreeSet<String> = ["a".to_string()].into();
    request_order(&mut requests, &labels);
    let ids: Vec<String> = requests.iter().map(|r| r.id.to_string()).collect();
    assert_eq!(
        ids,
        [
            "099-0000000009",
            "100-0000000003",
            "100-0000000002",
            "200-0000000000",
            "100-0000000001"
        ]
    );
}

#[test]
fn pre_check_follows_nodepools_order_of_rules() {
    let pools = vec![
        pool("me", "p1", &["a"], 100, false),
        pool("other", "p2", &["a", "b"], 100, false),
    ];
    let mut r = request(&["a"]);
    r.state = RequestState::Pending;
    assert_eq!(
        pre_check(&r, &me(&["a"], 100), &pools),
        Some(Skip::NotRequested)
    );
    let mut r = request(&["a"]);
    r.declined_by.push("me".into());
    assert_eq!(
        pre_check(&r, &me(&["a"], 100), &pools),
        Some(Skip::AlreadyDeclined)
    );
    let mut r = request(&["a"]);
    r.provider = Some("p2".into());
    assert_eq!(
        pre_check(&r, &me(&["a"], 100), &pools),
        Some(Skip::PreferredProvider)
    );
    let better = vec![
        pool("me", "p1", &["a"], 100, false),
        pool("o", "p2", &["a"], 50, false),
    ];
    assert_eq!(
        pre_check(&request(&["a"]), &me(&["a"], 100), &better),
        Some(Skip::HigherPriorityPool)
    );
    // A request naming our provider is not yielded to better pools of other providers.
    let mut named = request(&["a"]);
    named.provider = Some("p1".into());
    assert_eq!(pre_check(&named, &me(&["a"], 100), &better), None);
    // A paused better pool does not make us yield.
    let paused = vec![
        pool("me", "p1", &["a"], 100, false),
        pool("o", "p2", &["a"], 50, true),
    ];
    assert_eq!(pre_check(&request(&["a"]), &me(&["a"], 100), &paused), None);
    // Labels we lack: skip while someone else can serve, else consider (to decline).
    assert_eq!(
        pre_check(&request(&["a", "b"]), &me(&["a"], 100), &pools),
        Some(Skip::OthersCanServe)
    );
    assert_eq!(
        pre_check(&request(&["zzz"]), &me(&["a"], 100), &pools),
        None
    );
}

#[test]
fn decline_reasons_in_nodepools_order_and_words() {
    let facts = DeclineFacts {
        max_servers: Some(0),
        unavailable_labels: vec!["x".into(), "y".into()],
        images_available: false,
        fits_empty_provider: false,
    };
    assert_eq!(
        decline_reason(&facts).as_deref(),
        Some("pool is disabled by max_servers")
    );
    let facts = DeclineFacts {
        max_servers: None,
        ..facts
    };
    assert_eq!(
        decline_reason(&facts).as_deref(),
        Some("node type(s) [x,y] not available")
    );
    let facts = DeclineFacts {
        unavailable_labels: vec![],
        ..facts
    };
    assert_eq!(
        decline_reason(&facts).as_deref(),
        Some("images are not available")
    );
    let facts = DeclineFacts {
        images_available: true,
        ..facts
    };
    assert_eq!(
        decline_reason(&facts).as_deref(),
        Some("it would exceed quota")
    );
    let facts = DeclineFacts {
        fits_empty_provider: true,
        ..facts
    };
    assert_eq!(decline_reason(&facts), None);
}

#[test]
fn request_fails_only_when_every_registered_pool_declined() {
    let pools = vec![
        pool("a", "p1", &["x"], 100, false),
        pool("b", "p2", &["x"], 100, false),
    ];
    let mut r = request(&["x"]);
    r.declined_by = vec!["a".into()];
    assert_eq!(declined_state(&r, &pools), RequestState::Requested);
    r.declined_by.push("b".into());
    assert_eq!(declined_state(&r, &pools), RequestState::Failed);
}

#[test]
fn usage_counts_every_state_with_recorded_resources_or_label_needs() {
    let mut with_resources = node(1, NodeState::Used, "a", 0.0);
    std::sync::Arc::make_mut(&mut with_resources.node).resources =
        Some(Quota::one_instance().with("cores", 4.0).to_json());
    let nodes = vec![
        with_resources,
        node(2, NodeState::Hold, "a", 0.0),
        node(3, NodeState::Deleting, "unknown-label", 0.0),
    ];
    let pools: BTreeMap<String, BTreeSet<String>> =
        [("main".to_string(), ["a".to_string()].into())].into();
    let used = usage(&nodes, "p1", None, &pools, |_, _| {
        Quota::one_instance().with("cores", 2.0)
    });
    assert_eq!(used.get("instances"), 2.0);
    assert_eq!(used.get("cores"), 6.0);
}

#[test]
fn oldest_unused_node_guard_holds_while_a_recent_delete_is_running() {
    let nodes = vec![
        node(1, NodeState::Ready, "a", 50.0),
        node(2, NodeState::Ready, "a", 10.0),
    ];
    assert_eq!(
        oldest_unused_node(&nodes, "p1", "main", 100.0, 300.0),
        Some(NodeId::new(2))
    );
    let mut with_deleting = nodes.clone();
    with_deleting.push(node(3, NodeState::Deleting, "a", 90.0));
    assert_eq!(
        oldest_unused_node(&with_deleting, "p1", "main", 100.0, 300.0),
        None
    );
    assert_eq!(
        oldest_unused_node(&with_deleting, "p1", "main", 1000.0, 300.0),
        Some(NodeId::new(2))
    );
}

#[test]
fn min_ready_counts_unallocated_ready_nodes_of_any_provider() {
    let mut allocated = node(2, NodeState::Ready, "a", 0.0);
    std::sync::Arc::make_mut(&mut allocated.node).allocated_to =
        Some(RequestId::parse("100-0000000001").expect("id"));
    let mut elsewhere = node(3, NodeState::Ready, "a", 0.0);
    std::sync::Arc::make_mut(&mut elsewhere.node).provider = Some("p9".into());
    let nodes = vec![
        node(1, NodeState::Ready, "a", 0.0),
        allocated,
        elsewhere,
        node(4, NodeState::Building, "a", 0.0),
    ];
    assert_eq!(min_ready_deficit(&nodes, "a", 4), 2);
    assert_eq!(min_ready_deficit(&nodes, "a", 1), 0);
}

#[test]
fn hold_expiry_uses_the_shorter_of_node_and_global_limits() {
    let mut n = Node::new(NodeState::Hold, 100.0);
    assert!(!hold_expired(&n, None, 1e9));
    n.hold_expiration = Some(10);
    assert!(!hold_expired(&n, None, 109.0));
    assert!(hold_expired(&n, None, 110.0));
    assert!(hold_expired(&n, Some(5), 105.0));
    n.hold_expiration = Some(0);
    assert!(hold_expired(&n, Some(5), 105.0));
    n.state = NodeState::Ready;
    assert!(!hold_expired(&n, Some(5), 1e9));
}

#[test]
fn leaks_are_deleted_on_the_second_sighting_only() {
    let (delete, seen) = leaks(vec!["a", "b"], &HashSet::new());
    assert!(delete.is_empty());
    let (delete, seen) = leaks(vec!["b", "c"], &seen);
    assert_eq!(delete, vec!["b"]);
    let (delete, _) = leaks(vec!["a"], &seen);
    assert!(delete.is_empty());
}

#[test]
fn fulfilment_lists_nodes_in_request_order_with_duplicates() {
    let types: Vec<String> = ["a", "b", "a"].iter().map(|s| s.to_string()).collect();
    let assigned = vec![
        ("b".to_string(), NodeId::new(1)),
        ("a".to_string(), NodeId::new(2)),
        ("a".to_string(), NodeId::new(3)),
    ];
    assert_eq!(
        fulfilment_order(&types, &assigned),
        Some(vec![NodeId::new(2), NodeId::new(1), NodeId::new(3)])
    );
    assert_eq!(fulfilment_order(&types, &assigned[..2]), None);
    assert_eq!(
        needed_labels(&types, &["a".to_string()]),
        vec!["b".to_string(), "a".to_string()]
    );
}

#[test]
fn max_ready_age_counts_whole_seconds() {
    let n = Node::new(NodeState::Ready, 100.5);
    assert!(!ready_too_old(&n, 10, 110.9));
    assert!(ready_too_old(&n, 10, 111.0));
    assert!(!ready_too_old(&n, 0, 1e9));
}

#[test]
fn an_init_node_is_orphaned_only_when_old_and_its_request_is_gone() {
    let mut n = Node::new(NodeState::Init, 100.0);
    n.allocated_to = Some(RequestId::parse("100-0000000001").expect("request id"));
    let later = 100.0 + INIT_ORPHAN_AGE;
    assert!(orphaned_init(&n, false, later), "old, request gone");
    assert!(!orphaned_init(&n, true, later), "its request still waits");
    assert!(
        !orphaned_init(&n, false, later - 1.0),
        "its launcher may be about to lock it"
    );
    n.allocated_to = None;
    assert!(orphaned_init(&n, true, later), "old and for no request");
    n.state = NodeState::Building;
    assert!(!orphaned_init(&n, false, later), "only INIT nodes");
}
