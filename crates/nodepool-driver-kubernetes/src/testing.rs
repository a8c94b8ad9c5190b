//! Test support against the local Kubernetes of `scripts/kubernetes/` (a real API server,
//! controller-manager and scheduler on 127.0.0.1, kwok as the kubelet): start it when it is
//! not running, an admin client, a client from a node's credentials, node ids no other test
//! run uses.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use serde_json::{Map, Value};

use crate::client::KubeClient;
use crate::kubeconfig::{self, ClusterAccess, Credential, KubeconfigSource, Secret};

/// The context `ensure.sh`'s kubeconfig has (cluster admin).
pub const CONTEXT: &str = "nodepool-test";

/// The `scripts/kubernetes` folder of this repository.
pub fn scripts_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/kubernetes")
}

/// Runs `scripts/kubernetes/ensure.sh` once per process (it builds the cluster the first
/// time, about 12 minutes, and starts it unless it runs) and returns the admin kubeconfig's
/// path. Blocking. The error carries the script's output.
pub fn ensure_cluster() -> Result<PathBuf, String> {
    static DONE: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    DONE.get_or_init(|| {
        let output = std::process::Command::new("bash")
            .arg(scripts_dir().join("ensure.sh"))
            .output()
            .map_err(|e| format!("cannot run ensure.sh: {e}"))?;
        if !output.status.success() {
            return Err(format!(
                "ensure.sh failed ({}):\n{}\n{}",
                output.status,
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            ));
        }
        let path = String::from_utf8_lossy(&output.stdout).trim().to_string();
        if path.is_empty() {
            return Err(format!(
                "ensure.sh printed no kubeconfig path:\n{}",
                String::from_utf8_lossy(&output.stderr)
            ));
        }
        Ok(PathBuf::from(path))
    })
    .clone()
}

/// The local cluster's kubeconfig as a source for the driver.
pub fn kubeconfig_source() -> Result<KubeconfigSource, String> {
    Ok(KubeconfigSource::Files(vec![ensure_cluster()?]))
}

/// A cluster-admin client of the local cluster.
pub fn admin_client() -> Result<KubeClient, String> {
    let access = kubeconfig::load(&kubeconfig_source()?, Some(CONTEXT))?;
    KubeClient::new(access).map_err(|e| e.to_string())
}

/// A client that uses a node's credentials dict (its `connection_port`) as Zuul would: the
/// `host`, the `token`, and the `ca_crt` (base64 PEM) unless `skiptls`.
pub fn client_from_credentials(credentials: &Map<String, Value>) -> Result<KubeClient, String> {
    let text = |key: &str| {
        credentials
            .get(key)
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| format!("the credentials have no {key}"))
    };
    let skip_tls = credentials
        .get("skiptls")
        .and_then(Value::as_bool)
        .ok_or("the credentials have no skiptls")?;
    let ca_pem = if skip_tls {
        None
    } else {
        Some(
            kubeconfig::decode_base64(&text("ca_crt")?)
                .map_err(|e| format!("ca_crt is not base64: {e}"))?,
        )
    };
    let access = ClusterAccess {
        server: text("host")?,
        ca_pem,
        insecure_skip_tls_verify: skip_tls,
        identity: None,
        credential: Credential::Token(Secret::new(text("token")?)),
        origin: format!("credentials of namespace {}", text("namespace")?),
    };
    KubeClient::new(access).map_err(|e| e.to_string())
}

/// A node id (ten digits, as Nodepool's) that this process has not used and that earlier
/// test runs are unlikely to have used: from the clock and a counter.
pub fn unique_node_id() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    let n = NEXT.fetch_add(1, Ordering::SeqCst);
    format!("{:010}", (millis * 100 + n % 100) % 10_000_000_000)
}
