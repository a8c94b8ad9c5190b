//! A node request: Zuul (or min-ready) asking for a set of labels (spec 1.7).

use std::cmp::Ordering;

use serde_json::Value;

use crate::ids::{NodeId, RequestId};
use crate::states::RequestState;

/// `requestor` of the requests the launcher makes to keep `min-ready` nodes.
/// The request handler special-cases it (spec 8.1 item 12).
pub const MIN_READY_REQUESTOR: &str = "NodePool:min-ready";

/// Precedence of min-ready requests: after every Zuul pipeline.
pub const MIN_READY_PRECEDENCE: &str = "900";

/// Precedence Nodepool uses when it stores a new request without one.
pub const DEFAULT_PRECEDENCE: &str = "100";

/// A node request record, every key of `/nodepool/requests/<id>`.
///
/// The request id is the znode name, not part of the document.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeRequest {
    pub state: RequestState,
    pub state_time: f64,
    /// Pool worker ids (`launcher_id`) that declined the request.
    pub declined_by: Vec<String>,
    /// Requested labels; order matters and duplicates are allowed.
    pub node_types: Vec<String>,
    /// Granted node ids, in `node_types` order (Zuul zips the two).
    pub nodes: Vec<NodeId>,
    /// May existing READY nodes be used; false for min-ready requests.
    pub reuse: bool,
    /// Zuul system id, or [`MIN_READY_REQUESTOR`].
    pub requestor: Option<String>,
    /// Opaque to Nodepool; Zuul keeps its own data here because Nodepool
    /// drops every other key it does not know. `Value::Null` is JSON null.
    pub requestor_data: Value,
    /// Preferred provider (Zuul: the provider of a paused parent job).
    pub provider: Option<String>,
    /// Lower is more urgent; Zuul may revise it while the request is unlocked.
    pub relative_priority: i64,
    /// Trace id.
    pub event_id: Option<String>,
    pub created_time: Option<f64>,
    pub tenant_name: Option<String>,
}

impl NodeRequest {
    /// A request as Nodepool's `NodeRequest()` constructor makes it, in
    /// state `requested` since `now`.
    pub fn new(now: f64) -> NodeRequest {
        NodeRequest {
            state: RequestState::Requested,
            state_time: now,
            declined_by: Vec::new(),
            node_types: Vec::new(),
            nodes: Vec::new(),
            reuse: true,
            requestor: None,
            requestor_data: Value::Null,
            provider: None,
            relative_priority: 0,
            event_id: None,
            created_time: None,
            tenant_name: None,
        }
    }

    /// The request the launcher stores (ephemeral, precedence
    /// [`MIN_READY_PRECEDENCE`]) to get one more READY node of `label`.
    /// `event_id` is a fresh `uuid4().hex` in Nodepool
    /// ([`crate::ids::random_uuid_hex`]).
    pub fn min_ready(label: &str, event_id: String, now: f64) -> NodeRequest {
        NodeRequest {
            node_types: vec![label.to_owned()],
            reuse: false,
            requestor: Some(MIN_READY_REQUESTOR.to_owned()),
            event_id: Some(event_id),
            ..NodeRequest::new(now)
        }
    }

    /// Changes the state and stamps `state_time`.
    pub fn set_state(&mut self, state: RequestState, now: f64) {
        self.state = state;
        self.state_time = now;
    }

    pub fn is_min_ready(&self) -> bool {
        self.requestor.as_deref() == Some(MIN_READY_REQUESTOR)
    }

    /// This request's place in the launchers' queue.
    pub fn priority(&self, id: &RequestId) -> RequestPriority {
        RequestPriority::new(id, self.relative_priority)
    }
}

/// The sort key launchers process requests by, smallest first (spec 1.3,
/// 8.1 item 1): precedence *string*, then `relative_priority`, then the
/// sequence (ten digits, so numeric order equals Nodepool's string order).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RequestPriority {
    precedence: String,
    relative_priority: i64,
    sequence: u32,
}

impl RequestPriority {
    pub fn new(id: &RequestId, relative_priority: i64) -> RequestPriority {
        RequestPriority {
            precedence: id.precedence().to_owned(),
            relative_priority,
            sequence: id.sequence(),
        }
    }
}

impl Ord for RequestPriority {
    fn cmp(&self, other: &RequestPriority) -> Ordering {
        self.precedence
            .cmp(&other.precedence)
            .then(self.relative_priority.cmp(&other.relative_priority))
            .then(self.sequence.cmp(&other.sequence))
    }
}

impl PartialOrd for RequestPriority {
    fn partial_cmp(&self, other: &RequestPriority) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn priority(id: &str, relative_priority: i64) -> RequestPriority {
        RequestPriority::new(&RequestId::parse(id).unwrap(), relative_priority)
    }

    #[test]
    fn precedence_is_compared_as_a_string_first() {
        let mut keys = [
            ("900-0000000001", 0),
            ("300-0000000002", 0),
            ("200-0000000003", -5),
            ("100-0000000004", 10),
            ("099-0000000005", 99),
        ]
        .map(|(id, rel)| (id, priority(id, rel)));
        keys.sort_by(|a, b| a.1.cmp(&b.1));
        let order: Vec<&str> = keys.iter().map(|(id, _)| *id).collect();
        assert_eq!(
            order,
            [
                "099-0000000005",
                "100-0000000004",
                "200-0000000003",
                "300-0000000002",
                "900-0000000001"
            ]
        );
        // "99" without padding sorts after "100", exactly as in Python.
        assert!(priority("99-0000000001", 0) > priority("100-0000000002", 0));
    }

    #[test]
    fn relative_priority_breaks_ties_before_sequence() {
        assert!(priority("200-0000000009", 0) < priority("200-0000000001", 1));
        assert!(priority("200-0000000009", -1) < priority("200-0000000001", 0));
        assert!(priority("200-0000000001", 3) < priority("200-0000000002", 3));
        assert_eq!(priority("200-0000000001", 3), priority("200-0000000001", 3));
    }

    #[test]
    fn request_priority_uses_its_own_relative_priority() {
        let mut request = NodeRequest::new(1.0);
        request.relative_priority = 4;
        let id = RequestId::parse("100-0000000003").unwrap();
        assert_eq!(request.priority(&id), priority("100-0000000003", 4));
    }

    #[test]
    fn min_ready_request_matches_create_min_ready() {
        let request = NodeRequest::min_ready("ubuntu", "abc".to_owned(), 5.0);
        assert_eq!(request.state, RequestState::Requested);
        assert_eq!(request.node_types, ["ubuntu"]);
        assert!(!request.reuse);
        assert!(request.is_min_ready());
        assert_eq!(request.event_id.as_deref(), Some("abc"));
        assert_eq!(request.state_time, 5.0);
        assert!(!NodeRequest::new(1.0).is_min_ready());
    }

    #[test]
    fn set_state_stamps_state_time() {
        let mut request = NodeRequest::new(1.0);
        request.set_state(RequestState::Pending, 3.0);
        assert_eq!(request.state, RequestState::Pending);
        assert_eq!(request.state_time, 3.0);
    }
}
