//! Which Kubernetes API server to talk to, and as whom: a kubeconfig read the way the Python
//! `kubernetes` client that Nodepool uses reads it, or the in-cluster service account.
//!
//! Files: the `KUBECONFIG` variable (`:`-separated; missing files skipped) or
//! `~/.kube/config`. Several files are merged as that client merges them: the first file to
//! name a cluster, context or user wins, and the first `current-context` wins. Relative paths
//! are relative to the file that holds them. The context is the provider's `context`, else
//! `current-context`. When no file exists (or all are empty) the in-cluster configuration is
//! used, as Nodepool falls back to it.
//!
//! Where the Python client and client-go disagree, the Python client is followed: a file
//! (`certificate-authority`, `client-key`, `tokenFile`) wins over the inline value.
//! Exec credential plugins and auth providers are not supported: a user that has only those is
//! refused with a clear error.
//!
//! Secrets (tokens, private keys, passwords) are kept in [`Secret`], whose `Debug` hides them.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use serde::Deserialize;
use serde_json::Value;

/// A value that must not reach logs: `Debug` prints `<redacted>`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret<T>(T);

impl<T> Secret<T> {
    pub fn new(value: T) -> Secret<T> {
        Secret(value)
    }

    /// The secret itself, for the one place that sends it.
    pub fn expose(&self) -> &T {
        &self.0
    }
}

impl<T> std::fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Where to read the configuration from.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum KubeconfigSource {
    /// `KUBECONFIG` (or `~/.kube/config`), falling back to the in-cluster configuration when
    /// no file is there: what Nodepool does.
    #[default]
    Default,
    /// These files, merged; all must exist (tests and tools).
    Files(Vec<PathBuf>),
}

/// A client certificate and its key, both PEM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientIdentity {
    pub certificate_pem: Vec<u8>,
    pub key_pem: Secret<Vec<u8>>,
}

/// How requests authenticate besides (or instead of) a client certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    None,
    /// `Authorization: Bearer <token>`.
    Token(Secret<String>),
    /// A bearer token read from this file (re-read now and then: projected service-account
    /// tokens are rotated).
    TokenFile(PathBuf),
    /// HTTP basic authentication (`username`/`password`).
    Basic {
        username: String,
        password: Secret<String>,
    },
}

/// One API server and the identity to use there, resolved from a kubeconfig context or the
/// in-cluster configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterAccess {
    /// The server URL as written (Nodepool hands it to Zuul as the namespace's `host`).
    pub server: String,
    /// The PEM certificates the server's certificate must chain to; `None` trusts the
    /// built-in web roots.
    pub ca_pem: Option<Vec<u8>>,
    /// `insecure-skip-tls-verify`: no certificate checks at all (Nodepool's `skiptls`).
    pub insecure_skip_tls_verify: bool,
    pub identity: Option<ClientIdentity>,
    pub credential: Credential,
    /// Where this came from, for messages: `kubeconfig /path (context c)` or
    /// `in-cluster configuration`.
    pub origin: String,
}

/// The in-cluster service account's files.
const IN_CLUSTER_TOKEN: &str = "/var/run/secrets/kubernetes.io/serviceaccount/token";
const IN_CLUSTER_CA: &str = "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt";

/// The largest kubeconfig, certificate or key file read (a kubeconfig with hundreds of
/// contexts and embedded certificates is well under a MiB).
const MAX_FILE_BYTES: u64 = 16 * 1024 * 1024;

/// Reads the configuration for `context` (the provider's `context`; `None` is the
/// kubeconfig's `current-context`).
pub fn load(source: &KubeconfigSource, context: Option<&str>) -> Result<ClusterAccess, String> {
    match source {
        KubeconfigSource::Files(paths) => {
            for path in paths {
                if !path.is_file() {
                    return Err(format!("kubeconfig {}: no such file", path.display()));
                }
            }
            let files = read_files(paths)?;
            let merged = Merged::from_files(&files);
            if merged.is_empty() {
                return Err(format!(
                    "kubeconfig {}: no configuration found (no clusters, contexts or users)",
                    describe(paths)
                ));
            }
            merged.resolve(context, &describe(paths))
        }
        KubeconfigSource::Default => {
            let paths = default_paths();
            let existing: Vec<PathBuf> = paths.iter().filter(|p| p.is_file()).cloned().collect();
            let files = read_files(&existing)?;
            let merged = Merged::from_files(&files);
            if !merged.is_empty() {
                return merged.resolve(context, &describe(&existing));
            }
            in_cluster().map_err(|why| {
                format!(
                    "no kubeconfig found (looked at {}) and {why}",
                    describe(&paths)
                )
            })
        }
    }
}

/// `KUBECONFIG`'s files, else `~/.kube/config`.
fn default_paths() -> Vec<PathBuf> {
    if let Some(list) = std::env::var_os("KUBECONFIG").filter(|v| !v.is_empty()) {
        return std::env::split_paths(&list)
            .filter(|p| !p.as_os_str().is_empty())
            .collect();
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_default();
    vec![home.join(".kube").join("config")]
}

fn describe(paths: &[PathBuf]) -> String {
    paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(":")
}

/// The service account a pod runs as, as the Python client's `load_incluster_config` reads it.
fn in_cluster() -> Result<ClusterAccess, String> {
    let host = std::env::var("KUBERNETES_SERVICE_HOST").unwrap_or_default();
    let port = std::env::var("KUBERNETES_SERVICE_PORT").unwrap_or_default();
    if host.is_empty() || port.is_empty() {
        return Err("this is not a Kubernetes pod (KUBERNETES_SERVICE_HOST or \
                    KUBERNETES_SERVICE_PORT is not set) for the in-cluster configuration"
            .to_string());
    }
    let host = if host.contains(':') {
        format!("[{host}]")
    } else {
        host
    };
    let token = PathBuf::from(IN_CLUSTER_TOKEN);
    if !token.is_file() {
        return Err(format!(
            "the in-cluster configuration has no service account token ({IN_CLUSTER_TOKEN})"
        ));
    }
    let ca = read_capped(Path::new(IN_CLUSTER_CA))
        .map_err(|e| format!("the in-cluster configuration: {e}"))?;
    Ok(ClusterAccess {
        server: format!("https://{host}:{port}"),
        ca_pem: Some(ca),
        insecure_skip_tls_verify: false,
        identity: None,
        credential: Credential::TokenFile(token),
        origin: "in-cluster configuration".to_string(),
    })
}

fn read_capped(path: &Path) -> Result<Vec<u8>, String> {
    use std::io::Read as _;
    let file =
        std::fs::File::open(path).map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    let mut data = Vec::new();
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut data)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if data.len() as u64 > MAX_FILE_BYTES {
        return Err(format!(
            "{} is larger than {MAX_FILE_BYTES} bytes",
            path.display()
        ));
    }
    Ok(data)
}

/// One parsed kubeconfig file and the folder its relative paths start from.
struct File {
    path: PathBuf,
    dir: PathBuf,
    config: RawKubeconfig,
}

fn read_files(paths: &[PathBuf]) -> Result<Vec<File>, String> {
    paths
        .iter()
        .map(|path| {
            let data = read_capped(path).map_err(|e| format!("kubeconfig {e}"))?;
            let text = String::from_utf8(data)
                .map_err(|_| format!("kubeconfig {}: not UTF-8 text", path.display()))?;
            let config = parse(&text).map_err(|e| format!("kubeconfig {}: {e}", path.display()))?;
            let dir = path
                .parent()
                .map(Path::to_path_buf)
                .unwrap_or_else(|| PathBuf::from("."));
            Ok(File {
                path: path.clone(),
                dir,
                config,
            })
        })
        .collect()
}

/// The raw file, as written (only the keys the driver reads).
#[derive(Deserialize, Default)]
struct RawKubeconfig {
    #[serde(default)]
    clusters: Option<Vec<RawNamed<RawCluster>>>,
    #[serde(default)]
    contexts: Option<Vec<RawNamed<RawContext>>>,
    #[serde(default)]
    users: Option<Vec<RawNamed<RawUser>>>,
    #[serde(default, rename = "current-context")]
    current_context: Option<String>,
}

/// `{name: .., cluster|context|user: {..}}`: the entry's body is under whichever key.
#[derive(Deserialize)]
struct RawNamed<T> {
    name: String,
    #[serde(alias = "cluster", alias = "context", alias = "user")]
    body: Option<T>,
}

#[derive(Deserialize, Default, Clone)]
struct RawCluster {
    server: Option<String>,
    #[serde(rename = "certificate-authority")]
    certificate_authority: Option<String>,
    #[serde(rename = "certificate-authority-data")]
    certificate_authority_data: Option<String>,
    #[serde(rename = "insecure-skip-tls-verify")]
    insecure_skip_tls_verify: Option<bool>,
}

#[derive(Deserialize, Default, Clone)]
struct RawContext {
    cluster: Option<String>,
    user: Option<String>,
}

#[derive(Deserialize, Default, Clone)]
struct RawUser {
    #[serde(rename = "client-certificate")]
    client_certificate: Option<String>,
    #[serde(rename = "client-certificate-data")]
    client_certificate_data: Option<String>,
    #[serde(rename = "client-key")]
    client_key: Option<String>,
    #[serde(rename = "client-key-data")]
    client_key_data: Option<String>,
    token: Option<String>,
    #[serde(rename = "tokenFile")]
    token_file: Option<String>,
    username: Option<String>,
    password: Option<String>,
    exec: Option<Value>,
    #[serde(rename = "auth-provider")]
    auth_provider: Option<Value>,
}

/// Parses kubeconfig text (YAML 1.1, as PyYAML reads it).
fn parse(text: &str) -> Result<RawKubeconfig, String> {
    let document = nodepool_config::yaml::parse(text)
        .map_err(|problem| format!("{}: {}", problem.mark, problem.message))?;
    let Some(root) = document.root else {
        return Ok(RawKubeconfig::default());
    };
    let value = root.to_json();
    if value.is_null() {
        return Ok(RawKubeconfig::default());
    }
    serde_json::from_value(value).map_err(|e| format!("not a kubeconfig: {e}"))
}

/// An entry with the folder of the file that defined it.
struct Entry<'a, T> {
    dir: &'a Path,
    path: &'a Path,
    body: T,
}

/// Several files merged: the first definition of each name wins.
struct Merged<'a> {
    clusters: Vec<(String, Entry<'a, RawCluster>)>,
    contexts: Vec<(String, Entry<'a, RawContext>)>,
    users: Vec<(String, Entry<'a, RawUser>)>,
    current_context: Option<String>,
}

impl<'a> Merged<'a> {
    fn from_files(files: &'a [File]) -> Merged<'a> {
        fn add<'a, T: Clone + Default>(
            into: &mut Vec<(String, Entry<'a, T>)>,
            file: &'a File,
            items: &Option<Vec<RawNamed<T>>>,
        ) {
            for item in items.iter().flatten() {
                if !into.iter().any(|(name, _)| *name == item.name) {
                    into.push((
                        item.name.clone(),
                        Entry {
                            dir: &file.dir,
                            path: &file.path,
                            body: item.body.clone().unwrap_or_default(),
                        },
                    ));
                }
            }
        }
        let mut merged = Merged {
            clusters: Vec::new(),
            contexts: Vec::new(),
            users: Vec::new(),
            current_context: None,
        };
        for file in files {
            add(&mut merged.clusters, file, &file.config.clusters);
            add(&mut merged.contexts, file, &file.config.contexts);
            add(&mut merged.users, file, &file.config.users);
            if merged.current_context.is_none() {
                merged.current_context = file
                    .config
                    .current_context
                    .clone()
                    .filter(|c| !c.is_empty());
            }
        }
        merged
    }

    fn is_empty(&self) -> bool {
        self.clusters.is_empty()
            && self.contexts.is_empty()
            && self.users.is_empty()
            && self.current_context.is_none()
    }

    fn resolve(&self, wanted: Option<&str>, files: &str) -> Result<ClusterAccess, String> {
        let name = match wanted.or(self.current_context.as_deref()) {
            Some(name) => name.to_string(),
            None => {
                return Err(format!(
                    "kubeconfig {files}: no context given (the provider has no `context`) and \
                     no current-context set"
                ));
            }
        };
        let Some((_, context)) = self.contexts.iter().find(|(n, _)| *n == name) else {
            let known: Vec<&str> = self.contexts.iter().map(|(n, _)| n.as_str()).collect();
            return Err(format!(
                "kubeconfig {files}: no context named {name} (contexts: {})",
                if known.is_empty() {
                    "none".to_string()
                } else {
                    known.join(", ")
                }
            ));
        };
        let origin = format!("kubeconfig {} (context {name})", context.path.display());
        let Some(cluster_name) = context.body.cluster.as_deref().filter(|c| !c.is_empty()) else {
            return Err(format!("{origin}: the context names no cluster"));
        };
        let Some((_, cluster)) = self.clusters.iter().find(|(n, _)| n == cluster_name) else {
            return Err(format!(
                "{origin}: the context's cluster {cluster_name} is not defined"
            ));
        };
        let at = |what: &str| format!("{origin}: cluster {cluster_name}: {what}");
        let server = cluster
            .body
            .server
            .clone()
            .filter(|s| !s.is_empty())
            .ok_or_else(|| at("no server"))?;
        if reqwest::Url::parse(&server).is_err() {
            return Err(at(&format!("server {server} is not a URL")));
        }
        let ca_pem = file_or_data(
            cluster.dir,
            cluster.body.certificate_authority.as_deref(),
            cluster.body.certificate_authority_data.as_deref(),
        )
        .map_err(|e| at(&format!("certificate-authority: {e}")))?;
        let (identity, credential) = match context.body.user.as_deref().filter(|u| !u.is_empty()) {
            None => (None, Credential::None),
            Some(user_name) => {
                let Some((_, user)) = self.users.iter().find(|(n, _)| n == user_name) else {
                    return Err(format!(
                        "{origin}: the context's user {user_name} is not defined"
                    ));
                };
                user_auth(user).map_err(|e| format!("{origin}: user {user_name}: {e}"))?
            }
        };
        Ok(ClusterAccess {
            server,
            ca_pem,
            insecure_skip_tls_verify: cluster.body.insecure_skip_tls_verify.unwrap_or(false),
            identity,
            credential,
            origin,
        })
    }
}

/// A file (relative to `dir`) or inline base64 data; the file wins, as in the Python client.
fn file_or_data(
    dir: &Path,
    file: Option<&str>,
    data: Option<&str>,
) -> Result<Option<Vec<u8>>, String> {
    if let Some(file) = file.filter(|f| !f.is_empty()) {
        return read_capped(&dir.join(file)).map(Some);
    }
    match data.filter(|d| !d.is_empty()) {
        Some(data) => decode_base64(data)
            .map(Some)
            .map_err(|e| format!("the inline data is not base64: {e}")),
        None => Ok(None),
    }
}

/// Base64 as kubeconfigs carry it (standard alphabet; line breaks tolerated).
pub(crate) fn decode_base64(data: &str) -> Result<Vec<u8>, base64::DecodeError> {
    let compact: String = data.chars().filter(|c| !c.is_whitespace()).collect();
    base64::engine::general_purpose::STANDARD.decode(compact)
}

fn user_auth(user: &Entry<'_, RawUser>) -> Result<(Option<ClientIdentity>, Credential), String> {
    let u = &user.body;
    let certificate = file_or_data(
        user.dir,
        u.client_certificate.as_deref(),
        u.client_certificate_data.as_deref(),
    )
    .map_err(|e| format!("client-certificate: {e}"))?;
    let key = file_or_data(
        user.dir,
        u.client_key.as_deref(),
        u.client_key_data.as_deref(),
    )
    .map_err(|e| format!("client-key: {e}"))?;
    let identity = match (certificate, key) {
        (Some(certificate_pem), Some(key_pem)) => Some(ClientIdentity {
            certificate_pem,
            key_pem: Secret::new(key_pem),
        }),
        (None, None) => None,
        (Some(_), None) => return Err("a client certificate without a client key".to_string()),
        (None, Some(_)) => return Err("a client key without a client certificate".to_string()),
    };
    let credential = if let Some(file) = u.token_file.as_deref().filter(|f| !f.is_empty()) {
        let path = user.dir.join(file);
        if !path.is_file() {
            return Err(format!("tokenFile {}: no such file", path.display()));
        }
        Credential::TokenFile(path)
    } else if let Some(token) = u.token.as_deref().filter(|t| !t.is_empty()) {
        Credential::Token(Secret::new(token.to_string()))
    } else if let Some(username) = u.username.as_deref().filter(|n| !n.is_empty()) {
        Credential::Basic {
            username: username.to_string(),
            password: Secret::new(u.password.clone().unwrap_or_default()),
        }
    } else {
        Credential::None
    };
    if identity.is_none() && credential == Credential::None {
        if u.exec.is_some() {
            return Err(
                "exec credential plugins are not supported by this driver; give the \
                        user a token, tokenFile or client certificate"
                    .to_string(),
            );
        }
        if u.auth_provider.is_some() {
            return Err(
                "auth-provider plugins are not supported by this driver; give the \
                        user a token, tokenFile or client certificate"
                    .to_string(),
            );
        }
    }
    Ok((identity, credential))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).expect("write");
        path
    }

    fn b64(data: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(data)
    }

    fn files(paths: &[&PathBuf]) -> KubeconfigSource {
        KubeconfigSource::Files(paths.iter().map(|p| (*p).clone()).collect())
    }

    #[test]
    fn current_context_with_embedded_certificates() {
        let dir = tempfile::tempdir().expect("tempdir");
        let text = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c1\n  cluster:\n    server: https://127.0.0.1:6443\n    certificate-authority-data: {}\nusers:\n- name: u1\n  user:\n    client-certificate-data: {}\n    client-key-data: {}\ncontexts:\n- name: ctx\n  context: {{cluster: c1, user: u1}}\ncurrent-context: ctx\n",
            b64("CA PEM"),
            b64("CERT PEM"),
            b64("KEY PEM")
        );
        let path = write(dir.path(), "config", &text);
        let access = load(&files(&[&path]), None).expect("loads");
        assert_eq!(access.server, "https://127.0.0.1:6443");
        assert_eq!(access.ca_pem.as_deref(), Some(&b"CA PEM"[..]));
        let identity = access.identity.clone().expect("identity");
        assert_eq!(identity.certificate_pem, b"CERT PEM");
        assert_eq!(identity.key_pem.expose(), b"KEY PEM");
        assert_eq!(access.credential, Credential::None);
        assert!(!access.insecure_skip_tls_verify);
        assert!(access.origin.contains("context ctx"), "{}", access.origin);
        let shown = format!("{access:?}");
        assert!(!shown.contains("75, 69, 89"), "the key is hidden: {shown}");
        assert!(shown.contains("<redacted>"), "{shown}");
    }

    #[test]
    fn named_context_token_and_relative_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        write(dir.path(), "ca.pem", "FILE CA");
        write(dir.path(), "token", "file-token\n");
        let text = "clusters:\n- name: a\n  cluster:\n    server: https://a.example:443/prefix\n    certificate-authority: ca.pem\n    certificate-authority-data: SUdOT1JFRA==\n- name: b\n  cluster:\n    server: http://b.example\n    insecure-skip-tls-verify: yes\nusers:\n- name: tok\n  user:\n    token: s3cret-token\n- name: tokfile\n  user:\n    tokenFile: token\n    token: ignored\n- name: basic\n  user: {username: admin, password: pw}\ncontexts:\n- name: one\n  context: {cluster: a, user: tok}\n- name: two\n  context: {cluster: b, user: tokfile}\n- name: three\n  context: {cluster: b, user: basic}\n- name: anonymous\n  context: {cluster: a}\ncurrent-context: one\n";
        let path = write(dir.path(), "config", text);
        let one = load(&files(&[&path]), None).expect("current context");
        assert_eq!(one.server, "https://a.example:443/prefix");
        assert_eq!(
            one.ca_pem.as_deref(),
            Some(&b"FILE CA"[..]),
            "the file wins over the data, as in the Python client"
        );
        assert_eq!(
            one.credential,
            Credential::Token(Secret::new("s3cret-token".into()))
        );
        assert!(
            !format!("{one:?}").contains("s3cret"),
            "the token is hidden"
        );
        let two = load(&files(&[&path]), Some("two")).expect("context two");
        assert!(two.insecure_skip_tls_verify, "YAML 1.1 `yes` is true");
        assert_eq!(
            two.credential,
            Credential::TokenFile(dir.path().join("token"))
        );
        let three = load(&files(&[&path]), Some("three")).expect("context three");
        assert!(
            matches!(three.credential, Credential::Basic { ref username, .. } if username == "admin")
        );
        let anonymous = load(&files(&[&path]), Some("anonymous")).expect("no user");
        assert_eq!(anonymous.credential, Credential::None);
        assert_eq!(anonymous.identity, None);
    }

    #[test]
    fn the_first_file_wins_when_merging() {
        let dir = tempfile::tempdir().expect("tempdir");
        let first = write(
            dir.path(),
            "first",
            "clusters:\n- name: c\n  cluster: {server: https://first}\ncontexts:\n- name: x\n  context: {cluster: c}\n",
        );
        let second = write(
            dir.path(),
            "second",
            "clusters:\n- name: c\n  cluster: {server: https://second}\n- name: d\n  cluster: {server: https://d}\ncontexts:\n- name: x\n  context: {cluster: d}\n- name: y\n  context: {cluster: d}\ncurrent-context: y\n",
        );
        let access = load(&files(&[&first, &second]), None).expect("merged");
        assert_eq!(
            access.server, "https://d",
            "current-context y from the second file"
        );
        let x = load(&files(&[&first, &second]), Some("x")).expect("x");
        assert_eq!(
            x.server, "https://first",
            "context x and cluster c from the first file"
        );
    }

    #[test]
    fn errors_name_the_file_and_what_is_missing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = write(
            dir.path(),
            "config",
            "clusters:\n- name: c\n  cluster: {server: https://c}\n- name: noserver\n  cluster: {}\nusers:\n- name: plugin\n  user:\n    exec: {command: aws}\n- name: halfcert\n  user: {client-certificate-data: QUJD}\ncontexts:\n- name: a\n  context: {cluster: c}\n- name: b\n  context: {cluster: missing}\n- name: c\n  context: {cluster: noserver}\n- name: d\n  context: {cluster: c, user: nobody}\n- name: e\n  context: {cluster: c, user: plugin}\n- name: f\n  context: {cluster: c, user: halfcert}\n",
        );
        let shown = path.display().to_string();
        let error = |context: Option<&str>| load(&files(&[&path]), context).expect_err("refused");
        let e = error(Some("nope"));
        assert!(
            e.contains(&shown)
                && e.contains("no context named nope")
                && e.contains("contexts: a, b"),
            "{e}"
        );
        let e = error(None);
        assert!(e.contains("no current-context"), "{e}");
        let e = error(Some("b"));
        assert!(e.contains("cluster missing is not defined"), "{e}");
        let e = error(Some("c"));
        assert!(e.contains("cluster noserver: no server"), "{e}");
        let e = error(Some("d"));
        assert!(e.contains("user nobody is not defined"), "{e}");
        let e = error(Some("e"));
        assert!(
            e.contains("exec credential plugins are not supported"),
            "{e}"
        );
        let e = error(Some("f"));
        assert!(e.contains("without a client key"), "{e}");
        let missing = dir.path().join("absent");
        let e = load(&KubeconfigSource::Files(vec![missing.clone()]), None).expect_err("absent");
        assert!(
            e.contains(&missing.display().to_string()) && e.contains("no such file"),
            "{e}"
        );
        let broken = write(dir.path(), "broken", "clusters: [\n");
        let e = load(&files(&[&broken]), None).expect_err("broken");
        assert!(e.contains("broken") && e.contains("YAML"), "{e}");
        let wrong = write(dir.path(), "wrong", "clusters: 3\n");
        let e = load(&files(&[&wrong]), None).expect_err("wrong type");
        assert!(e.contains("not a kubeconfig"), "{e}");
        let bad_data = write(
            dir.path(),
            "baddata",
            "clusters:\n- name: c\n  cluster: {server: https://c, certificate-authority-data: '***'}\ncontexts:\n- name: a\n  context: {cluster: c}\n",
        );
        let e = load(&files(&[&bad_data]), Some("a")).expect_err("bad base64");
        assert!(
            e.contains("certificate-authority") && e.contains("not base64"),
            "{e}"
        );
    }
}
