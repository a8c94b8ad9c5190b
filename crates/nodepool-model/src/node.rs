//! A node: one machine (or namespace, or pod) handed to Zuul (spec 1.5).
//!
//! The JSON form lives in `wire::node`; this is the plain Rust value the
//! launcher, CLI and web work with. Times are `f64` seconds since the epoch
//! because that is what Nodepool and Zuul write (`time.time()`) and compare
//! across hosts.

use serde_json::{Map, Value};

use crate::ids::RequestId;
use crate::states::NodeState;

/// Port Nodepool assumes when a node document has neither `connection_port`
/// nor `ssh_port`, and the constructor default.
pub const DEFAULT_CONNECTION_PORT: u16 = 22;

/// `username` assumed when the key is absent on read (not the constructor
/// default, which is null).
pub const DEFAULT_USERNAME: &str = "zuul";

/// How Zuul connects to a node: `connection_port` (and its copy `ssh_port`).
#[derive(Debug, Clone, PartialEq)]
pub enum ConnectionPort {
    /// A TCP port (ssh, winrm, ...).
    Port(u16),
    /// The Kubernetes driver stores the whole credentials dict here
    /// (`name`, `namespace`, `host`, `skiptls`, `token`, `user`, optional
    /// `ca_crt` and `pod`; spec 7.6). Zuul expects it for connection types
    /// `namespace`, `project` and `kubectl`.
    Credentials(Map<String, Value>),
}

/// The cloud's id for the node's instance: `external_id`.
#[derive(Debug, Clone, PartialEq)]
pub enum ExternalId {
    /// Most drivers: a server uuid, namespace name or hostname.
    Id(String),
    /// AWS stores `{"instance": "i-...", "host": "h-..."}` (host only for
    /// dedicated hosts).
    Fields(Map<String, Value>),
}

/// A node record, every key of `/nodepool/nodes/<id>`.
///
/// The node id is not part of the document; it is the znode name.
/// `Option` fields are JSON `null` when `None`.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub state: NodeState,
    /// Time of the last state change; `set_state` keeps it in step.
    pub state_time: f64,
    /// Cloud name (OpenStack cloud, `"AWS"`, k8s context).
    pub cloud: Option<String>,
    /// Provider name from the configuration.
    pub provider: Option<String>,
    /// Pool name within the provider.
    pub pool: Option<String>,
    /// Labels this node satisfies: JSON key `type`, always written as a list.
    pub node_type: Vec<String>,
    /// The request this node is reserved for.
    pub allocated_to: Option<RequestId>,
    pub az: Option<String>,
    pub region: Option<String>,
    pub public_ipv4: Option<String>,
    pub private_ipv4: Option<String>,
    pub public_ipv6: Option<String>,
    /// Hypervisor host id, or the Kubernetes node name.
    pub host_id: Option<String>,
    /// The address Zuul connects to (a pod name for Kubernetes pods).
    pub interface_ip: Option<String>,
    /// Written as both `connection_port` and `ssh_port`. `None` only when a
    /// foreign writer stored `null`.
    pub connection_port: Option<ConnectionPort>,
    /// Upload znode path for diskimage labels, cloud-image name otherwise.
    pub image_id: Option<String>,
    /// Pool worker id of the launcher that made the node, or `"static driver"`.
    pub launcher: Option<String>,
    /// Set once, on the first store.
    pub created_time: Option<f64>,
    pub external_id: Option<ExternalId>,
    /// Only static nodes set it.
    pub hostname: Option<String>,
    /// Zuul autohold reason.
    pub comment: Option<String>,
    /// Opaque to Nodepool; Zuul stores `{"zuul_system", "project_name"}`.
    /// `Value::Null` is JSON null.
    pub user_data: Value,
    /// Zuul autohold key `"<tenant> <project> <job> <ref_filter>"`.
    pub hold_job: Option<String>,
    /// `"<keytype> <base64>"` lines.
    pub host_keys: Vec<String>,
    pub username: Option<String>,
    /// `ssh`, `winrm`, `network_cli`, `namespace`, `kubectl`, ...
    pub connection_type: Option<String>,
    pub shell_type: Option<String>,
    /// Seconds a held node may live; `None` or `Some(0)` mean no limit of its own.
    pub hold_expiration: Option<i64>,
    /// Quota the node consumes (`cores`, `instances`, `ram`, driver extras).
    pub resources: Option<Map<String, Value>>,
    /// Static/metastatic slot index.
    pub slot: Option<i64>,
    /// The pool's `node-attributes`; Zuul reads `executor-zone` from it.
    pub attributes: Option<Map<String, Value>>,
    pub python_path: Option<String>,
    pub tenant_name: Option<String>,
    /// Opaque per-driver data; `Value::Null` is JSON null.
    pub driver_data: Value,
    /// Copied from the request.
    pub requestor: Option<String>,
    /// E.g. AWS `{"fleet": bool, "spot": bool}`.
    pub node_properties: Option<Map<String, Value>>,
}

impl Node {
    /// A node as Nodepool's `Node()` constructor makes it, in `state` since
    /// `now`: port 22, no labels, no host keys, empty `node_properties`,
    /// everything else null.
    pub fn new(state: NodeState, now: f64) -> Node {
        Node {
            state,
            state_time: now,
            cloud: None,
            provider: None,
            pool: None,
            node_type: Vec::new(),
            allocated_to: None,
            az: None,
            region: None,
            public_ipv4: None,
            private_ipv4: None,
            public_ipv6: None,
            host_id: None,
            interface_ip: None,
            connection_port: Some(ConnectionPort::Port(DEFAULT_CONNECTION_PORT)),
            image_id: None,
            launcher: None,
            created_time: None,
            external_id: None,
            hostname: None,
            comment: None,
            user_data: Value::Null,
            hold_job: None,
            host_keys: Vec::new(),
            username: None,
            connection_type: None,
            shell_type: None,
            hold_expiration: None,
            resources: None,
            slot: None,
            attributes: None,
            python_path: None,
            tenant_name: None,
            driver_data: Value::Null,
            requestor: None,
            node_properties: Some(Map::new()),
        }
    }

    /// Changes the state and stamps `state_time`, as every state assignment
    /// in Nodepool and Zuul does. Hold expiry and max-ready-age count from it.
    pub fn set_state(&mut self, state: NodeState, now: f64) {
        self.state = state;
        self.state_time = now;
    }

    /// Whether the node is reserved for `request`.
    pub fn is_allocated_to(&self, request: &RequestId) -> bool {
        self.allocated_to.as_ref() == Some(request)
    }

    /// The TCP port, if the node has one (Kubernetes nodes have credentials).
    pub fn port(&self) -> Option<u16> {
        match self.connection_port {
            Some(ConnectionPort::Port(port)) => Some(port),
            _ => None,
        }
    }

    /// Whether the node satisfies `label`.
    pub fn has_label(&self, label: &str) -> bool {
        self.node_type.iter().any(|own| own == label)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_node_has_python_constructor_defaults() {
        let node = Node::new(NodeState::Init, 10.5);
        assert_eq!(node.state, NodeState::Init);
        assert_eq!(node.state_time, 10.5);
        assert_eq!(node.port(), Some(22));
        assert_eq!(node.node_properties, Some(Map::new()));
        assert_eq!(node.username, None);
        assert!(node.host_keys.is_empty());
        assert_eq!(node.user_data, Value::Null);
    }

    #[test]
    fn set_state_stamps_state_time() {
        let mut node = Node::new(NodeState::Building, 1.0);
        node.set_state(NodeState::Ready, 2.0);
        assert_eq!(node.state, NodeState::Ready);
        assert_eq!(node.state_time, 2.0);
    }

    #[test]
    fn allocation_and_labels() {
        let mut node = Node::new(NodeState::Ready, 1.0);
        let request = RequestId::parse("200-0000000001").unwrap();
        assert!(!node.is_allocated_to(&request));
        node.allocated_to = Some(request.clone());
        assert!(node.is_allocated_to(&request));
        assert!(!node.is_allocated_to(&RequestId::parse("200-0000000002").unwrap()));

        node.node_type = vec!["a".to_owned(), "b".to_owned()];
        assert!(node.has_label("b"));
        assert!(!node.has_label("c"));
    }

    #[test]
    fn credentials_have_no_port() {
        let mut node = Node::new(NodeState::Ready, 1.0);
        node.connection_port = Some(ConnectionPort::Credentials(Map::new()));
        assert_eq!(node.port(), None);
        node.connection_port = None;
        assert_eq!(node.port(), None);
    }
}
