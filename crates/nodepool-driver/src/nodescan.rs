//! Is a new node reachable, and what are its SSH host keys (spec 2.12 step 4, 7.5).
//!
//! Shared by every driver: a TCP connect to `host:port` retried until the deadline, then for
//! `ssh` and `network_cli` connections the host keys.
//!
//! Nodepool does one paramiko handshake per key type. We run OpenSSH's `ssh-keyscan` (Debian's
//! `openssh-client`) instead, which does the same handshakes and prints `host keytype base64`
//! lines; it is retried while it finds no keys, because a freshly booted node often accepts
//! TCP connections before sshd has loaded its keys.

use std::io;
use std::process::Stdio;
use std::time::Duration;

use tokio::net::TcpStream;
use tokio::process::Command;
use tokio::time::{Instant, sleep, timeout};

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

/// The `ssh-keyscan` Debian installs.
const SSH_KEYSCAN: &str = "ssh-keyscan";

/// The longest a single connect or key-scan attempt may take (Nodepool's per-attempt socket
/// timeout).
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);

/// Pause between attempts after a refused connection or an empty key scan.
const RETRY_INTERVAL: Duration = Duration::from_millis(500);

/// The key types gathered, as `ssh-keyscan -t` names them.
const KEY_TYPES: &str = "rsa,ecdsa,ed25519";

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
    let deadline = Instant::now() + target.timeout;
    let host = unbracketed(&target.host);
    wait_for_port(host, target.port, deadline)
        .await
        .map_err(|()| NodescanError::ConnectTimeout {
            host: target.host.clone(),
            port: target.port,
        })?;
    let has_keys = matches!(target.connection_type.as_str(), "ssh" | "network_cli");
    if !(has_keys && target.gather_keys) {
        return Ok(Vec::new());
    }
    gather_keys(host, target.port, deadline)
        .await
        .map_err(|reason| NodescanError::Keys {
            host: target.host.clone(),
            port: target.port,
            reason,
        })
}

/// `[::1]` -> `::1`: addresses written as in URLs still work.
fn unbracketed(host: &str) -> &str {
    host.strip_prefix('[')
        .and_then(|rest| rest.strip_suffix(']'))
        .unwrap_or(host)
}

/// Connects until one attempt succeeds or `deadline` passes.
async fn wait_for_port(host: &str, port: u16, deadline: Instant) -> Result<(), ()> {
    loop {
        let now = Instant::now();
        if now >= deadline {
            return Err(());
        }
        let attempt = ATTEMPT_TIMEOUT.min(deadline - now);
        match timeout(attempt, TcpStream::connect((host, port))).await {
            Ok(Ok(_stream)) => return Ok(()),
            Ok(Err(error)) if is_quiet_connect_error(&error) => {}
            Ok(Err(error)) => {
                tracing::debug!(host, port, %error, "Connection attempt failed; retrying");
            }
            Err(_elapsed) => {
                tracing::debug!(
                    host,
                    port,
                    ?attempt,
                    "Connection attempt timed out; retrying"
                );
                continue;
            }
        }
        sleep_until_retry(deadline).await;
    }
}

/// Errors that only mean "not up yet", which Nodepool retries without logging.
fn is_quiet_connect_error(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::HostUnreachable
            | io::ErrorKind::NetworkUnreachable
    )
}

async fn sleep_until_retry(deadline: Instant) {
    let left = deadline.saturating_duration_since(Instant::now());
    sleep(RETRY_INTERVAL.min(left)).await;
}

/// Runs `ssh-keyscan` until it reports keys or `deadline` passes; at least one attempt is
/// made even when the connect used up the time. The error is the last attempt's reason.
async fn gather_keys(host: &str, port: u16, deadline: Instant) -> Result<Vec<String>, String> {
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let attempt = left.clamp(Duration::from_secs(1), ATTEMPT_TIMEOUT);
        let reason = match keyscan_once(host, port, attempt).await {
            Ok(keys) if !keys.is_empty() => return Ok(keys),
            Ok(_) => "ssh-keyscan returned no keys".to_string(),
            Err(KeyscanFailure::Retry(reason)) => reason,
            Err(KeyscanFailure::Fatal(reason)) => return Err(reason),
        };
        if Instant::now() >= deadline {
            return Err(reason);
        }
        tracing::debug!(host, port, %reason, "No host keys yet; retrying");
        sleep_until_retry(deadline).await;
    }
}

enum KeyscanFailure {
    /// Worth another try (timeout, sshd not ready).
    Retry(String),
    /// Retrying cannot help (`ssh-keyscan` is missing).
    Fatal(String),
}

/// One `ssh-keyscan` run with `attempt` as its own timeout (and a little more as ours).
async fn keyscan_once(
    host: &str,
    port: u16,
    attempt: Duration,
) -> Result<Vec<String>, KeyscanFailure> {
    let seconds = attempt.as_secs().max(1);
    let mut command = Command::new(SSH_KEYSCAN);
    command
        .arg("-T")
        .arg(seconds.to_string())
        .arg("-p")
        .arg(port.to_string())
        .arg("-t")
        .arg(KEY_TYPES)
        .arg(host)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let child = command.spawn().map_err(|error| {
        KeyscanFailure::Fatal(format!(
            "cannot run {SSH_KEYSCAN} (install openssh-client): {error}"
        ))
    })?;
    // ssh-keyscan's -T bounds each read, not the whole run; ours bounds the whole run.
    let output = timeout(attempt + Duration::from_secs(2), child.wait_with_output())
        .await
        .map_err(|_| KeyscanFailure::Retry(format!("{SSH_KEYSCAN} timed out")))?
        .map_err(|error| KeyscanFailure::Retry(format!("{SSH_KEYSCAN} failed: {error}")))?;
    let keys = parse_keyscan_output(&String::from_utf8_lossy(&output.stdout));
    if keys.is_empty() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let complaint = stderr
            .lines()
            .map(str::trim)
            .filter(|line| !line.is_empty() && !line.starts_with('#'))
            .collect::<Vec<_>>()
            .join("; ");
        if !complaint.is_empty() {
            return Err(KeyscanFailure::Retry(complaint));
        }
    }
    Ok(keys)
}

/// `host keytype base64` lines -> `"keytype base64"`, in order, without duplicates; comment
/// and malformed lines are skipped.
fn parse_keyscan_output(stdout: &str) -> Vec<String> {
    let mut keys: Vec<String> = Vec::new();
    for line in stdout.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut fields = line.split_whitespace();
        let (Some(_host), Some(key_type), Some(blob)) =
            (fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        let key = format!("{key_type} {blob}");
        if !keys.contains(&key) {
            keys.push(key);
        }
    }
    keys
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    fn target(host: &str, port: u16, connection_type: &str, timeout: Duration) -> ScanTarget {
        ScanTarget {
            host: host.to_string(),
            port,
            connection_type: connection_type.to_string(),
            gather_keys: true,
            timeout,
        }
    }

    #[test]
    fn keyscan_lines_become_type_and_key() {
        let stdout = "# 10.0.0.1:22 SSH-2.0-OpenSSH_9.2p1\n\
                      10.0.0.1 ssh-rsa AAAArsa\n\
                      \n\
                      [10.0.0.1]:2222 ssh-ed25519 AAAAed\n\
                      10.0.0.1 ssh-rsa AAAArsa\n\
                      garbage\n";
        assert_eq!(
            parse_keyscan_output(stdout),
            vec![
                "ssh-rsa AAAArsa".to_string(),
                "ssh-ed25519 AAAAed".to_string()
            ]
        );
    }

    #[test]
    fn brackets_around_ipv6_literals_are_dropped() {
        assert_eq!(unbracketed("[::1]"), "::1");
        assert_eq!(unbracketed("::1"), "::1");
        assert_eq!(unbracketed("example.org"), "example.org");
    }

    #[tokio::test]
    async fn fake_hosts_get_the_fake_key() {
        let keys = scan(&target("fake-host", 22, "ssh", Duration::ZERO))
            .await
            .expect("fake scan");
        assert_eq!(keys, vec![FAKE_HOST_KEY.to_string()]);
    }

    #[tokio::test]
    async fn answering_port_of_non_ssh_type_gives_no_keys() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("local addr").port();
        let keys = scan(&target("127.0.0.1", port, "winrm", Duration::from_secs(5)))
            .await
            .expect("scan of an open port");
        assert!(keys.is_empty());
    }

    #[tokio::test]
    async fn ipv6_literals_connect() {
        let Ok(listener) = TcpListener::bind("[::1]:0").await else {
            // No IPv6 loopback in this environment: nothing to test.
            return;
        };
        let port = listener.local_addr().expect("local addr").port();
        for host in ["::1", "[::1]"] {
            let mut scan_target = target(host, port, "ssh", Duration::from_secs(5));
            scan_target.gather_keys = false;
            let keys = scan(&scan_target).await.expect("scan of an IPv6 literal");
            assert!(keys.is_empty());
        }
    }

    #[tokio::test]
    async fn closed_port_times_out_quickly() {
        // Bind, note the port, close: connections are now refused.
        let port = {
            let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
            listener.local_addr().expect("local addr").port()
        };
        let started = std::time::Instant::now();
        let error = scan(&target(
            "127.0.0.1",
            port,
            "ssh",
            Duration::from_millis(1200),
        ))
        .await
        .expect_err("closed port");
        assert_eq!(
            error,
            NodescanError::ConnectTimeout {
                host: "127.0.0.1".to_string(),
                port
            }
        );
        let took = started.elapsed();
        assert!(
            took >= Duration::from_millis(1200),
            "gave up early: {took:?}"
        );
        assert!(took < Duration::from_secs(5), "took {took:?}");
    }

    #[tokio::test]
    async fn port_that_is_not_sshd_gives_a_keys_error() {
        // Accepts and immediately closes: TCP works, no SSH banner ever comes.
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("local addr").port();
        let server = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                drop(stream);
            }
        });
        let error = scan(&target("127.0.0.1", port, "ssh", Duration::from_secs(1)))
            .await
            .expect_err("no sshd");
        assert!(
            matches!(&error, NodescanError::Keys { port: p, .. } if *p == port),
            "{error:?}"
        );
        server.abort();
    }
}
