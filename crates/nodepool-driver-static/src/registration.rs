//! The node record of a static host's slot (spec 7.5 "Registration").

use nodepool_config::StaticNode;
use nodepool_model::{ConnectionPort, ExternalId, Node, NodeState};
use serde_json::{Map, Value};

use crate::check::{StaticHostError, node_tuple_text};

/// The `launcher` field of every static node.
pub const LAUNCHER_NAME: &str = "static driver";

/// The READY record for `slot` of `static_node`, as Nodepool's `registerNodeFromConfig`
/// writes it. `host_keys` come from [`crate::check_host`]; `public_ipv4`/`public_ipv6` are
/// left empty: apply [`resolve_public_address`]'s result with [`PublicAddress::apply_to`].
pub fn registration_node(
    provider: &str,
    pool: &str,
    pool_node_attributes: Option<&Map<String, Value>>,
    static_node: &StaticNode,
    slot: u32,
    host_keys: Vec<String>,
    now: f64,
) -> Node {
    let mut node = Node::new(NodeState::Ready, now);
    node.provider = Some(provider.to_string());
    node.pool = Some(pool.to_string());
    node.launcher = Some(LAUNCHER_NAME.to_string());
    node.external_id = Some(ExternalId::Id(static_node.name.clone()));
    node.hostname = Some(static_node.name.clone());
    node.interface_ip = Some(static_node.name.clone());
    node.attributes = pool_node_attributes.cloned();
    node.slot = Some(i64::from(slot));
    update_from_config(&mut node, static_node, host_keys);
    node
}

/// Whether a record's labels, username, port, connection type, shell type, python path and
/// (when given) host keys differ from its configured host: Nodepool's in-place update test
/// at start.
pub fn differs_from_config(
    node: &Node,
    static_node: &StaticNode,
    host_keys: Option<&[String]>,
) -> bool {
    node.node_type != static_node.labels
        || node.username.as_deref() != Some(static_node.username.as_str())
        || node.port() != Some(static_node.connection_port)
        || node.connection_type.as_deref() != Some(static_node.connection_type.as_str())
        || node.shell_type != static_node.shell_type
        || node.python_path.as_deref() != Some(static_node.python_path.as_str())
        || host_keys.is_some_and(|keys| node.host_keys != keys)
}

/// Rewrites the configured fields of a record (Nodepool's `updateNodeFromConfig`); the state,
/// slot and allocation are left alone. The launcher re-resolves the address too.
pub fn update_from_config(node: &mut Node, static_node: &StaticNode, host_keys: Vec<String>) {
    node.node_type = static_node.labels.clone();
    node.username = Some(static_node.username.clone());
    node.connection_port = Some(ConnectionPort::Port(static_node.connection_port));
    node.connection_type = Some(static_node.connection_type.clone());
    node.python_path = Some(static_node.python_path.clone());
    node.shell_type = static_node.shell_type.clone();
    node.host_keys = host_keys;
}

/// The public address of a static host, from DNS (Nodepool's `set_node_ip`): the first
/// address `getaddrinfo` returns, IPv4 or IPv6.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PublicAddress {
    pub ipv4: Option<String>,
    pub ipv6: Option<String>,
}

impl PublicAddress {
    /// Sets `public_ipv4` or `public_ipv6`, leaving the other as it was (as Nodepool does).
    pub fn apply_to(&self, node: &mut Node) {
        if let Some(ipv4) = &self.ipv4 {
            node.public_ipv4 = Some(ipv4.clone());
        }
        if let Some(ipv6) = &self.ipv6 {
            node.public_ipv6 = Some(ipv6.clone());
        }
    }
}

/// Resolves the host's name; names containing `fake` are not resolved (empty result). A
/// name that does not resolve is an error: Nodepool does not register such a host.
pub async fn resolve_public_address(
    static_node: &StaticNode,
) -> Result<PublicAddress, StaticHostError> {
    let name = static_node.name.as_str();
    if name.contains("fake") {
        return Ok(PublicAddress::default());
    }
    let resolve_error = |reason: String| StaticHostError::Resolve {
        tuple: node_tuple_text(static_node),
        name: name.to_string(),
        reason,
    };
    let mut addresses = tokio::net::lookup_host((name, static_node.connection_port))
        .await
        .map_err(|error| resolve_error(error.to_string()))?;
    let first = addresses
        .next()
        .ok_or_else(|| resolve_error("no addresses".to_string()))?;
    let ip = first.ip();
    Ok(if ip.is_ipv4() {
        PublicAddress {
            ipv4: Some(ip.to_string()),
            ipv6: None,
        }
    } else {
        PublicAddress {
            ipv4: None,
            ipv6: Some(ip.to_string()),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn host(name: &str) -> StaticNode {
        StaticNode {
            name: name.to_string(),
            labels: vec!["label-a".to_string(), "label-b".to_string()],
            username: "admin".to_string(),
            timeout: 5,
            host_key_checking: true,
            host_keys: Vec::new(),
            connection_port: 2222,
            connection_type: "network_cli".to_string(),
            shell_type: Some("cmd".to_string()),
            max_parallel_jobs: 2,
            python_path: "/usr/bin/python3".to_string(),
        }
    }

    #[test]
    fn registration_record_has_every_field_nodepool_sets() {
        let attributes = json!({"executor-zone": "vpn"});
        let attributes = attributes.as_object().expect("object");
        let static_node = host("host.example");
        let keys = vec!["ssh-ed25519 AAAA".to_string()];
        let node = registration_node(
            "static",
            "main",
            Some(attributes),
            &static_node,
            1,
            keys.clone(),
            42.5,
        );
        let mut expected = Node::new(NodeState::Ready, 42.5);
        expected.provider = Some("static".to_string());
        expected.pool = Some("main".to_string());
        expected.launcher = Some("static driver".to_string());
        expected.node_type = vec!["label-a".to_string(), "label-b".to_string()];
        expected.external_id = Some(ExternalId::Id("host.example".to_string()));
        expected.hostname = Some("host.example".to_string());
        expected.interface_ip = Some("host.example".to_string());
        expected.username = Some("admin".to_string());
        expected.connection_port = Some(ConnectionPort::Port(2222));
        expected.connection_type = Some("network_cli".to_string());
        expected.python_path = Some("/usr/bin/python3".to_string());
        expected.shell_type = Some("cmd".to_string());
        expected.host_keys = keys.clone();
        expected.attributes = Some(attributes.clone());
        expected.slot = Some(1);
        assert_eq!(node, expected);
        assert!(!differs_from_config(&node, &static_node, Some(&keys)));
        assert!(differs_from_config(&node, &static_node, Some(&[])));
    }

    #[test]
    fn update_rewrites_configured_fields_only() {
        let old = host("h");
        let mut node = registration_node("p", "main", None, &old, 1, Vec::new(), 1.0);
        let mut new = old.clone();
        new.python_path = "auto".to_string();
        new.shell_type = None;
        assert!(differs_from_config(&node, &new, None));
        update_from_config(&mut node, &new, vec!["ssh-rsa K".to_string()]);
        assert!(!differs_from_config(
            &node,
            &new,
            Some(&["ssh-rsa K".to_string()])
        ));
        assert_eq!(node.slot, Some(1));
        assert_eq!(node.state, NodeState::Ready);
    }

    #[tokio::test]
    async fn addresses_resolve_except_for_fake_names() {
        let fake = resolve_public_address(&host("fake-host.example"))
            .await
            .expect("fake names are not resolved");
        assert_eq!(fake, PublicAddress::default());

        let v4 = resolve_public_address(&host("127.0.0.1"))
            .await
            .expect("IPv4 literal");
        assert_eq!(v4.ipv4.as_deref(), Some("127.0.0.1"));
        let v6 = resolve_public_address(&host("::1"))
            .await
            .expect("IPv6 literal");
        assert_eq!(v6.ipv6.as_deref(), Some("::1"));

        let mut node = Node::new(NodeState::Ready, 0.0);
        v6.apply_to(&mut node);
        v4.apply_to(&mut node);
        assert_eq!(node.public_ipv4.as_deref(), Some("127.0.0.1"));
        assert_eq!(node.public_ipv6.as_deref(), Some("::1"));

        let error = resolve_public_address(&host("no-such-host.invalid"))
            .await
            .expect_err("unresolvable");
        assert!(
            matches!(error, StaticHostError::Resolve { .. }),
            "{error:?}"
        );
    }
}
