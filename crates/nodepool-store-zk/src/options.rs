//! Connection options and the connect-with-retries loop.

use std::path::PathBuf;
use std::time::Duration;

use nodepool_store::validate_path;
use tokio::time::Instant;
use zookeeper_client as zk;

/// How often the initial connection is retried (Nodepool: 1 s attempts).
const RETRY_INTERVAL: Duration = Duration::from_secs(1);
/// Retries are logged at most this often (Nodepool: "Retrying zookeeper connection" every 10 s).
const RETRY_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// Where and how to connect; mirrors `zookeeper-servers`, `zookeeper-tls` and
/// `zookeeper-timeout` in `nodepool.yaml`.
#[derive(Debug, Clone)]
pub struct ZooKeeperOptions {
    /// `host:port` of each server; IPv6 literals as `[addr]:port`. Every server is used
    /// (Nodepool's kazoo host string only used the servers before the first chroot).
    pub servers: Vec<String>,
    /// One chroot applied to every path, e.g. `/nodepool`. Created (with its ancestors, as
    /// empty persistent znodes) at connect time when missing, so a fresh ensemble works
    /// without a manual step; kazoo would fail instead on the first write.
    pub chroot: Option<String>,
    /// Client certificate, key and CA. `None` means plaintext, which only tests and local
    /// setups use: the `nodepool` binaries insist on TLS as Nodepool does.
    pub tls: Option<ZooKeeperTls>,
    /// Requested session timeout (`zookeeper-timeout`, default 10 s); the server clamps it
    /// to its own minimum and maximum.
    pub session_timeout: Duration,
    /// How long [`crate::ZooKeeperBackend::connect`] keeps trying before it gives up.
    pub connect_timeout: Duration,
}

impl ZooKeeperOptions {
    /// Plaintext, no chroot, Nodepool's default session timeout, 30 s to connect.
    pub fn new<S: Into<String>>(servers: impl IntoIterator<Item = S>) -> ZooKeeperOptions {
        ZooKeeperOptions {
            servers: servers.into_iter().map(Into::into).collect(),
            chroot: None,
            tls: None,
            session_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(30),
        }
    }

    /// The host list for the client, without a chroot (the chroot is applied separately).
    pub(crate) fn hosts(&self) -> String {
        self.servers.join(",")
    }

    /// The chroot to apply, if any (`/` means none).
    pub(crate) fn effective_chroot(&self) -> Option<&str> {
        self.chroot.as_deref().filter(|c| *c != "/")
    }

    fn check(&self) -> Result<(), ConnectError> {
        if self.servers.is_empty() {
            return Err(ConnectError::NoServers);
        }
        if let Some(bad) = self
            .servers
            .iter()
            .find(|s| s.is_empty() || s.contains('/') || s.contains(','))
        {
            return Err(ConnectError::BadServer(bad.clone()));
        }
        if let Some(chroot) = self.effective_chroot()
            && validate_path(chroot).is_err()
        {
            return Err(ConnectError::BadChroot(chroot.to_string()));
        }
        Ok(())
    }
}

/// The PEM files of a `zookeeper-tls` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZooKeeperTls {
    /// Client certificate (`zookeeper-tls.cert`).
    pub cert: PathBuf,
    /// Its private key (`zookeeper-tls.key`).
    pub key: PathBuf,
    /// CA certificate that signed the servers' certificates (`zookeeper-tls.ca`).
    pub ca: PathBuf,
}

impl ZooKeeperTls {
    /// Reads the three files. The server's certificate must name the host we connect to
    /// (DNS name or IP address in its subjectAltName): the client verifies it, where kazoo
    /// only checks the chain.
    fn load(&self) -> Result<zk::TlsOptions, ConnectError> {
        let read = |what: &'static str, path: &PathBuf| {
            std::fs::read_to_string(path).map_err(|source| ConnectError::TlsFile {
                what,
                path: path.clone(),
                source,
            })
        };
        // The ZooKeeper client asks rustls for the process's default crypto provider, which
        // rustls cannot choose once a binary links two (ring here, aws-lc-rs for the AWS SDK):
        // name ring, unless something already installed a default.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let (cert, key, ca) = (
            read("cert", &self.cert)?,
            read("key", &self.key)?,
            read("ca", &self.ca)?,
        );
        zk::TlsOptions::new()
            .with_pem_ca(&ca)
            .map_err(|e| ConnectError::Tls(format!("CA {}: {e}", self.ca.display())))?
            .with_pem_identity(&cert, &key)
            .map_err(|e| {
                ConnectError::Tls(format!(
                    "certificate {} with key {}: {e}",
                    self.cert.display(),
                    self.key.display()
                ))
            })
    }
}

/// Why [`crate::ZooKeeperBackend::connect`] failed. Configuration problems are permanent;
/// [`ConnectError::Unreachable`] is worth retrying.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("no ZooKeeper servers are configured")]
    NoServers,
    #[error("invalid ZooKeeper server {0:?} (expected host:port)")]
    BadServer(String),
    #[error("invalid ZooKeeper chroot {0:?}")]
    BadChroot(String),
    #[error("cannot read the zookeeper-tls {what} file {path}: {source}")]
    TlsFile {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid zookeeper-tls material: {0}")]
    Tls(String),
    #[error("could not connect to ZooKeeper at {servers} within {waited:?}: {last_error}")]
    Unreachable {
        servers: String,
        waited: Duration,
        last_error: String,
    },
    #[error("cannot create the ZooKeeper chroot {chroot}: {reason}")]
    Chroot { chroot: String, reason: String },
}

/// Checked options with the TLS material loaded once, for the first session and every
/// later one.
#[derive(Debug, Clone)]
pub(crate) struct Prepared {
    pub options: ZooKeeperOptions,
    pub tls: Option<zk::TlsOptions>,
}

impl Prepared {
    pub fn new(options: ZooKeeperOptions) -> Result<Prepared, ConnectError> {
        options.check()?;
        let tls = options.tls.as_ref().map(ZooKeeperTls::load).transpose()?;
        Ok(Prepared { options, tls })
    }

    /// A connector with our timeout and TLS settings.
    pub fn connector(&self) -> zk::Connector {
        let connector = zk::Client::connector()
            .with_session_timeout(self.options.session_timeout)
            // Give up after one pass over the servers; the caller's loop retries.
            .with_fail_eagerly();
        match &self.tls {
            Some(tls) => connector.with_tls(tls.clone()),
            None => connector,
        }
    }

    /// Connects `connector` to every server, over TLS when configured.
    pub async fn connect_with(&self, connector: zk::Connector) -> Result<zk::Client, zk::Error> {
        let hosts = self.options.hosts();
        if self.tls.is_some() {
            connector.secure_connect(&hosts).await
        } else {
            connector.connect(&hosts).await
        }
    }

    /// Opens a new session, retrying until `deadline`, and applies the chroot (creating it
    /// if missing).
    pub async fn open_session(&self, deadline: Instant) -> Result<zk::Client, ConnectError> {
        let started = Instant::now();
        let mut last_log: Option<Instant> = None;
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            let last_error =
                match tokio::time::timeout(remaining, self.connect_with(self.connector())).await {
                    Ok(Ok(client)) => return self.apply_chroot(client).await,
                    Ok(Err(e)) => e.to_string(),
                    Err(_) => "timed out".to_string(),
                };
            if Instant::now() + RETRY_INTERVAL > deadline {
                return Err(ConnectError::Unreachable {
                    servers: self.options.hosts(),
                    waited: started.elapsed(),
                    last_error,
                });
            }
            if last_log.is_none_or(|at| at.elapsed() >= RETRY_LOG_INTERVAL) {
                tracing::warn!(
                    servers = %self.options.hosts(),
                    error = %last_error,
                    "retrying the ZooKeeper connection"
                );
                last_log = Some(Instant::now());
            }
            tokio::time::sleep(RETRY_INTERVAL).await;
        }
    }

    async fn apply_chroot(&self, client: zk::Client) -> Result<zk::Client, ConnectError> {
        let Some(chroot) = self.effective_chroot() else {
            return Ok(client);
        };
        let failed = |reason: String| ConnectError::Chroot {
            chroot: chroot.to_string(),
            reason,
        };
        let exists = client
            .check_stat(chroot)
            .await
            .map_err(|e| failed(e.to_string()))?;
        if exists.is_none() {
            let options = zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all());
            client
                .mkdir(chroot, &options)
                .await
                .map_err(|e| failed(e.to_string()))?;
            tracing::info!(chroot, "created the ZooKeeper chroot");
        }
        client
            .chroot(chroot.to_string())
            .map_err(|_| failed("rejected by the client".to_string()))
    }

    fn effective_chroot(&self) -> Option<&str> {
        self.options.effective_chroot()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_lists_and_chroots_are_checked() {
        let ok = ZooKeeperOptions::new(["zk1:2281", "[::1]:2281"]);
        assert!(ok.check().is_ok(), "host:port entries are accepted");
        assert_eq!(ok.hosts(), "zk1:2281,[::1]:2281", "every server is used");

        for bad in ["", "zk1:2281/nodepool", "zk1:2281,zk2:2281"] {
            assert!(
                matches!(
                    ZooKeeperOptions::new([bad]).check(),
                    Err(ConnectError::BadServer(_))
                ),
                "{bad:?} is rejected: chroots and lists have their own options"
            );
        }

        let mut root = ZooKeeperOptions::new(["zk1:2281"]);
        root.chroot = Some("/".into());
        assert_eq!(root.effective_chroot(), None, "`/` means no chroot");
        root.chroot = Some("/nodepool/".into());
        assert!(
            matches!(root.check(), Err(ConnectError::BadChroot(_))),
            "a chroot with a trailing slash is rejected"
        );
    }

    #[test]
    fn unreadable_tls_files_are_named() {
        let tls = ZooKeeperTls {
            cert: "/nonexistent/cert.pem".into(),
            key: "/nonexistent/key.pem".into(),
            ca: "/nonexistent/ca.pem".into(),
        };
        let error = tls.load().expect_err("missing files fail");
        assert!(
            error
                .to_string()
                .contains("zookeeper-tls cert file /nonexistent/cert.pem"),
            "the message names the option and the file: {error}"
        );
    }
}
