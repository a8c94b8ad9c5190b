//! Is a configured host usable: Nodepool's `checkHost` and `checkNodeLiveness` (spec 7.5).

use std::time::Duration;

use nodepool_config::StaticNode;
use nodepool_driver::nodescan::{NodescanError, ScanTarget, scan};

use crate::plan::NodeTuple;

/// Why a host cannot be registered (or its address not resolved). The launcher logs it as a
/// warning, skips the host and tries again on the next pass.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StaticHostError {
    /// The port never answered within the node's `timeout`.
    #[error("{tuple}: ConnectionTimeoutException")]
    ConnectionTimeout { tuple: String },
    /// A configured `host-key` is not among the keys the host presented.
    #[error("{tuple}: host key mismatches ({})", python_list(.scanned))]
    HostKeyMismatch { tuple: String, scanned: Vec<String> },
    /// The port answered but no host keys could be read.
    #[error("{tuple}: {reason}")]
    Keys { tuple: String, reason: String },
    /// The host's name did not resolve (needed for `public_ipv4`/`public_ipv6`).
    #[error("{tuple}: cannot resolve {name}: {reason}")]
    Resolve {
        tuple: String,
        name: String,
        reason: String,
    },
}

/// The node tuple as Nodepool logs it: `Node(hostname='h', username='zuul', port=22)`.
pub fn node_tuple_text(node: &StaticNode) -> String {
    NodeTuple::of_static(node).to_string()
}

/// Whether the connection type has SSH host keys.
fn has_host_keys(connection_type: &str) -> bool {
    matches!(connection_type, "ssh" | "network_cli")
}

/// Nodepool's `checkHost`: the host keys to store on the host's nodes.
///
/// * `ssh`/`network_cli` with `host-key-checking: false`: the configured `host-key` list,
///   without contacting the host.
/// * Otherwise the host must answer on its port within `timeout` seconds; for
///   `ssh`/`network_cli` its keys are scanned and must include every configured `host-key`.
///   Other connection types get no keys.
pub async fn check_host(node: &StaticNode) -> Result<Vec<String>, StaticHostError> {
    let gather_keys = has_host_keys(&node.connection_type);
    if gather_keys && !node.host_key_checking {
        return Ok(node.host_keys.clone());
    }
    let keys = scan(&scan_target(node, gather_keys))
        .await
        .map_err(|error| scan_error(node, error))?;
    if !gather_keys {
        return Ok(Vec::new());
    }
    if node
        .host_keys
        .iter()
        .all(|configured| keys.contains(configured))
    {
        Ok(keys)
    } else {
        let tuple = node_tuple_text(node);
        tracing::debug!(
            node = %tuple,
            configured = ?node.host_keys,
            scanned = ?keys,
            "A configured host key is not among the scanned keys"
        );
        Err(StaticHostError::HostKeyMismatch {
            tuple,
            scanned: keys,
        })
    }
}

/// Nodepool's `checkNodeLiveness` for a configured host: with host-key checking, the port
/// must answer within `timeout` (no key scan); without, the host is assumed alive. The caller
/// deregisters the node when this is false (and when the host is no longer configured).
pub async fn check_reusable(node: &StaticNode) -> bool {
    if !node.host_key_checking {
        return true;
    }
    match scan(&scan_target(node, false)).await {
        Ok(_) => true,
        Err(error) => {
            tracing::warn!(
                node = %node_tuple_text(node),
                %error,
                "Failed to connect to static node"
            );
            false
        }
    }
}

fn scan_target(node: &StaticNode, gather_keys: bool) -> ScanTarget {
    ScanTarget {
        host: node.name.clone(),
        port: node.connection_port,
        connection_type: node.connection_type.clone(),
        gather_keys,
        timeout: Duration::from_secs(node.timeout),
    }
}

fn scan_error(node: &StaticNode, error: NodescanError) -> StaticHostError {
    let tuple = node_tuple_text(node);
    match error {
        NodescanError::ConnectTimeout { .. } => StaticHostError::ConnectionTimeout { tuple },
        NodescanError::Keys { .. } => StaticHostError::Keys {
            tuple,
            reason: error.to_string(),
        },
    }
}

/// A list of strings as Python prints it: `['a', 'b']`.
fn python_list(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|item| format!("'{item}'")).collect();
    format!("[{}]", quoted.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn static_node(name: &str) -> StaticNode {
        StaticNode {
            name: name.to_string(),
            labels: vec!["label".to_string()],
            username: "zuul".to_string(),
            timeout: 1,
            host_key_checking: true,
            host_keys: Vec::new(),
            connection_port: 22022,
            connection_type: "ssh".to_string(),
            shell_type: None,
            max_parallel_jobs: 1,
            python_path: "auto".to_string(),
        }
    }

    #[test]
    fn errors_read_like_nodepools() {
        let node = static_node("host.example");
        let tuple = node_tuple_text(&node);
        assert_eq!(
            tuple,
            "Node(hostname='host.example', username='zuul', port=22022)"
        );
        let timeout = StaticHostError::ConnectionTimeout {
            tuple: tuple.clone(),
        };
        assert_eq!(
            timeout.to_string(),
            "Node(hostname='host.example', username='zuul', port=22022): ConnectionTimeoutException"
        );
        let mismatch = StaticHostError::HostKeyMismatch {
            tuple,
            scanned: vec!["ssh-rsa AAA".to_string(), "ssh-ed25519 BBB".to_string()],
        };
        assert_eq!(
            mismatch.to_string(),
            "Node(hostname='host.example', username='zuul', port=22022): host key mismatches \
             (['ssh-rsa AAA', 'ssh-ed25519 BBB'])"
        );
    }

    #[tokio::test]
    async fn fake_hosts_pass_with_the_fake_key() {
        let node = static_node("fake-host-1");
        assert_eq!(
            check_host(&node).await.expect("fake host"),
            vec![nodepool_driver::nodescan::FAKE_HOST_KEY.to_string()]
        );
        assert!(check_reusable(&node).await);
    }

    #[tokio::test]
    async fn unchecked_ssh_hosts_are_not_contacted() {
        // 192.0.2.0/24 (TEST-NET-1) is never routed; a contact attempt would time out.
        let mut node = static_node("192.0.2.123");
        node.host_key_checking = false;
        node.host_keys = vec!["ssh-rsa CONFIGURED".to_string()];
        node.timeout = 60;
        let keys = tokio::time::timeout(Duration::from_secs(5), check_host(&node))
            .await
            .expect("no contact, so no wait")
            .expect("configured keys");
        assert_eq!(keys, vec!["ssh-rsa CONFIGURED".to_string()]);
        assert!(check_reusable(&node).await);
    }

    #[tokio::test]
    async fn non_ssh_hosts_only_need_the_port() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let mut node = static_node("127.0.0.1");
        node.connection_port = listener.local_addr().expect("local addr").port();
        node.connection_type = "winrm".to_string();
        node.host_keys = vec!["ssh-rsa IGNORED".to_string()];
        assert_eq!(
            check_host(&node).await.expect("open port"),
            Vec::<String>::new()
        );
        assert!(check_reusable(&node).await);
    }

    #[tokio::test]
    async fn closed_ports_time_out() {
        let port = {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind");
            listener.local_addr().expect("local addr").port()
        };
        let mut node = static_node("127.0.0.1");
        node.connection_port = port;
        node.connection_type = "winrm".to_string();
        let error = check_host(&node).await.expect_err("closed port");
        assert_eq!(
            error,
            StaticHostError::ConnectionTimeout {
                tuple: format!("Node(hostname='127.0.0.1', username='zuul', port={port})")
            }
        );
        assert!(!check_reusable(&node).await);
    }
}
