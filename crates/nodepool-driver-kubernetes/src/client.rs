//! `KubeClient`: the dozen REST calls the driver makes, on `reqwest`, with API errors typed
//! by what the driver does about them.
//!
//! Bodies are `serde_json::Value`s: the driver builds the objects it creates
//! (`objects.rs`) and reads a handful of fields back. Every call has a timeout; redirects are
//! never followed (the API server does not send them, and a bearer token must not follow one).

use std::sync::Mutex;
use std::time::{Duration, Instant};

use nodepool_driver::DriverError;
use reqwest::{Method, StatusCode, Url};
use serde_json::Value;

use crate::kubeconfig::{ClusterAccess, Credential, Secret};

/// How long one API call may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// The largest answer read (a page of 500 namespaces is well under a MiB; 500 pods with
/// long specs a few MiB).
const MAX_BODY_BYTES: usize = 64 * 1024 * 1024;

/// Objects asked for per page when listing.
const LIST_PAGE: &str = "500";

/// How long a token read from a `tokenFile` is used before the file is read again
/// (client-go re-reads it every minute too: projected tokens rotate).
const TOKEN_FILE_REFRESH: Duration = Duration::from_secs(60);

/// What the driver does about a failed call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiErrorKind {
    /// 404: the object does not exist.
    NotFound,
    /// 409: it exists already (or is being deleted under that name).
    AlreadyExists,
    /// 403 from a ResourceQuota (`exceeded quota`).
    QuotaExceeded,
    /// 403 otherwise: RBAC or an admission plugin said no.
    Forbidden,
    /// 401: the credentials are not accepted.
    Unauthorized,
    /// 400, 422: the object is not valid.
    Invalid,
    /// 429, 5xx, timeouts, refused connections: worth trying again.
    Transient,
    /// Anything else, including a request that could not be built.
    Other,
}

/// A failed API call: its kind, the HTTP status (none for a transport failure) and a message
/// that names the server, the call and the API server's own `message`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub kind: ApiErrorKind,
    pub status: Option<u16>,
    pub message: String,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ApiError {}

impl From<ApiError> for DriverError {
    fn from(e: ApiError) -> DriverError {
        match e.kind {
            ApiErrorKind::NotFound => DriverError::NotFound(e.message),
            ApiErrorKind::QuotaExceeded => DriverError::Quota(e.message),
            ApiErrorKind::Transient => DriverError::Transient(e.message),
            ApiErrorKind::AlreadyExists
            | ApiErrorKind::Forbidden
            | ApiErrorKind::Unauthorized
            | ApiErrorKind::Invalid
            | ApiErrorKind::Other => DriverError::Fatal(e.message),
        }
    }
}

/// The kind of a failed answer, from its status and the API server's `message`.
pub fn classify(status: u16, message: &str) -> ApiErrorKind {
    match status {
        404 => ApiErrorKind::NotFound,
        409 => ApiErrorKind::AlreadyExists,
        403 if message.contains("exceeded quota") => ApiErrorKind::QuotaExceeded,
        403 => ApiErrorKind::Forbidden,
        401 => ApiErrorKind::Unauthorized,
        400 | 422 => ApiErrorKind::Invalid,
        408 | 429 | 500..=599 => ApiErrorKind::Transient,
        _ => ApiErrorKind::Other,
    }
}

/// The namespaced object kinds the driver makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    ServiceAccount,
    Secret,
    Role,
    RoleBinding,
    Pod,
}

impl Kind {
    /// The path segments before `namespaces/<ns>`, and the resource after it.
    fn path(self) -> (&'static [&'static str], &'static str) {
        const CORE: &[&str] = &["api", "v1"];
        const RBAC: &[&str] = &["apis", "rbac.authorization.k8s.io", "v1"];
        match self {
            Kind::ServiceAccount => (CORE, "serviceaccounts"),
            Kind::Secret => (CORE, "secrets"),
            Kind::Role => (RBAC, "roles"),
            Kind::RoleBinding => (RBAC, "rolebindings"),
            Kind::Pod => (CORE, "pods"),
        }
    }
}

/// An error's message followed by its causes (reqwest's own says only "error sending
/// request"; the refused certificate or the refused connection is in its sources).
fn with_causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    text
}

/// One API server, as one identity. Shared by a provider's machines and listings.
#[derive(Debug)]
pub struct KubeClient {
    access: ClusterAccess,
    /// `access.server` parsed, the base every path is added to.
    base: Url,
    http: reqwest::Client,
    /// A token read from `access.credential`'s file and when; a std mutex, nothing awaits
    /// under it.
    token_file: Mutex<Option<(Instant, Secret<String>)>>,
}

impl KubeClient {
    /// A client for `access`. Makes no request yet.
    pub fn new(access: ClusterAccess) -> Result<KubeClient, DriverError> {
        let fatal = |what: String| DriverError::Fatal(format!("{}: {what}", access.origin));
        let base = Url::parse(&access.server)
            .map_err(|e| fatal(format!("server {} is not a URL: {e}", access.server)))?;
        let mut builder = reqwest::Client::builder()
            .user_agent(concat!("nodepool-rs/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none());
        if access.insecure_skip_tls_verify {
            builder = builder.danger_accept_invalid_certs(true);
        } else if let Some(pem) = &access.ca_pem {
            let certificates = reqwest::Certificate::from_pem_bundle(pem)
                .map_err(|e| fatal(format!("certificate authority: not PEM: {e}")))?;
            if certificates.is_empty() {
                return Err(fatal(
                    "certificate authority: no CERTIFICATE block".to_string(),
                ));
            }
            // As client-go: the cluster's CA only, not the web's roots.
            builder = builder.tls_built_in_root_certs(false);
            for certificate in certificates {
                builder = builder.add_root_certificate(certificate);
            }
        }
        if let Some(identity) = &access.identity {
            let mut pem = identity.certificate_pem.clone();
            pem.push(b'\n');
            pem.extend_from_slice(identity.key_pem.expose());
            let identity = reqwest::Identity::from_pem(&pem)
                .map_err(|e| fatal(format!("client certificate and key: {}", with_causes(&e))))?;
            builder = builder.identity(identity);
        }
        let http = builder
            .build()
            .map_err(|e| fatal(format!("HTTP client: {}", with_causes(&e))))?;
        Ok(KubeClient {
            access,
            base,
            http,
            token_file: Mutex::new(None),
        })
    }

    pub fn access(&self) -> &ClusterAccess {
        &self.access
    }

    fn url(&self, segments: &[&str], query: &[(&str, &str)]) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty();
            path.extend(segments);
        }
        url.set_query(None);
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        url
    }

    /// The bearer token requests carry, if the identity has one (read from its file when
    /// that is due).
    pub(crate) fn bearer_token(&self) -> Result<Option<Secret<String>>, ApiError> {
        match &self.access.credential {
            Credential::Token(token) => Ok(Some(token.clone())),
            Credential::TokenFile(path) => {
                let mut cached = self.token_file.lock().unwrap_or_else(|e| e.into_inner());
                if let Some((at, token)) = cached.as_ref()
                    && at.elapsed() < TOKEN_FILE_REFRESH
                {
                    return Ok(Some(token.clone()));
                }
                let text = std::fs::read_to_string(path).map_err(|e| ApiError {
                    kind: ApiErrorKind::Other,
                    status: None,
                    message: format!(
                        "{}: cannot read the token file {}: {e}",
                        self.access.origin,
                        path.display()
                    ),
                })?;
                let token = Secret::new(text.trim().to_string());
                *cached = Some((Instant::now(), token.clone()));
                Ok(Some(token))
            }
            Credential::None | Credential::Basic { .. } => Ok(None),
        }
    }

    /// One call: `method` on the path made of `segments` (each escaped), with `query` and an
    /// optional JSON body. Returns the answer's JSON.
    pub async fn call(
        &self,
        method: Method,
        segments: &[&str],
        query: &[(&str, &str)],
        body: Option<&Value>,
    ) -> Result<Value, ApiError> {
        let url = self.url(segments, query);
        let what = format!("{method} {}", url.path());
        let fail = |kind, status, detail: String| ApiError {
            kind,
            status,
            message: format!("kubernetes {}: {what}: {detail}", self.access.server),
        };
        let mut request = self
            .http
            .request(method.clone(), url.clone())
            .timeout(CALL_TIMEOUT)
            .header(reqwest::header::ACCEPT, "application/json");
        if let Some(token) = self.bearer_token()? {
            request = request.bearer_auth(token.expose());
        } else if let Credential::Basic { username, password } = &self.access.credential {
            request = request.basic_auth(username, Some(password.expose()));
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.map_err(|e| {
            let kind = if e.is_builder() {
                ApiErrorKind::Other
            } else {
                ApiErrorKind::Transient
            };
            fail(kind, None, with_causes(&e))
        })?;
        let status = response.status();
        let text = capped_text(response, MAX_BODY_BYTES)
            .await
            .map_err(|e| fail(ApiErrorKind::Transient, Some(status.as_u16()), e))?;
        if status.is_success() {
            if text.trim().is_empty() {
                return Ok(Value::Null);
            }
            return serde_json::from_str(&text).map_err(|e| {
                fail(
                    ApiErrorKind::Other,
                    Some(status.as_u16()),
                    format!("the answer is not JSON: {e}"),
                )
            });
        }
        let message = server_message(status, &text);
        Err(fail(
            classify(status.as_u16(), &message),
            Some(status.as_u16()),
            format!("HTTP {}: {message}", status.as_u16()),
        ))
    }

    pub async fn create_namespace(&self, body: &Value) -> Result<Value, ApiError> {
        self.call(Method::POST, &["api", "v1", "namespaces"], &[], Some(body))
            .await
    }

    pub async fn get_namespace(&self, name: &str) -> Result<Value, ApiError> {
        self.call(Method::GET, &["api", "v1", "namespaces", name], &[], None)
            .await
    }

    /// Starts deleting a namespace and everything in it (background propagation, as
    /// Nodepool asks); the namespace controller finishes the job.
    pub async fn delete_namespace(&self, name: &str) -> Result<Value, ApiError> {
        let options = serde_json::json!({
            "apiVersion": "v1",
            "kind": "DeleteOptions",
            "propagationPolicy": "Background",
        });
        self.call(
            Method::DELETE,
            &["api", "v1", "namespaces", name],
            &[],
            Some(&options),
        )
        .await
    }

    /// Every namespace matching `label_selector`, page by page.
    pub async fn list_namespaces(&self, label_selector: &str) -> Result<Vec<Value>, ApiError> {
        self.list_all(&["api", "v1", "namespaces"], label_selector)
            .await
    }

    /// Every object of the list at `segments` matching `label_selector` (empty: all), page
    /// by page.
    async fn list_all(
        &self,
        segments: &[&str],
        label_selector: &str,
    ) -> Result<Vec<Value>, ApiError> {
        let mut items = Vec::new();
        let mut next = String::new();
        loop {
            let mut query = vec![("limit", LIST_PAGE)];
            if !label_selector.is_empty() {
                query.push(("labelSelector", label_selector));
            }
            if !next.is_empty() {
                query.push(("continue", next.as_str()));
            }
            let page = self.call(Method::GET, segments, &query, None).await?;
            if let Some(list) = page.get("items").and_then(Value::as_array) {
                items.extend(list.iter().cloned());
            }
            match page.pointer("/metadata/continue").and_then(Value::as_str) {
                Some(token) if !token.is_empty() => next = token.to_string(),
                _ => return Ok(items),
            }
        }
    }

    fn namespaced<'a>(kind: Kind, namespace: &'a str, name: Option<&'a str>) -> Vec<&'a str> {
        let (prefix, resource) = kind.path();
        let mut segments: Vec<&str> = prefix.to_vec();
        segments.extend(["namespaces", namespace, resource]);
        segments.extend(name);
        segments
    }

    pub async fn create_in(
        &self,
        namespace: &str,
        kind: Kind,
        body: &Value,
    ) -> Result<Value, ApiError> {
        let segments = KubeClient::namespaced(kind, namespace, None);
        self.call(Method::POST, &segments, &[], Some(body)).await
    }

    pub async fn get_in(&self, namespace: &str, kind: Kind, name: &str) -> Result<Value, ApiError> {
        let segments = KubeClient::namespaced(kind, namespace, Some(name));
        self.call(Method::GET, &segments, &[], None).await
    }

    /// Every object of `kind` in `namespace` matching `label_selector` (empty: all), page by
    /// page.
    pub async fn list_selected_in(
        &self,
        namespace: &str,
        kind: Kind,
        label_selector: &str,
    ) -> Result<Vec<Value>, ApiError> {
        let segments = KubeClient::namespaced(kind, namespace, None);
        self.list_all(&segments, label_selector).await
    }

    /// Deletes the object (the API server's default grace period and propagation).
    pub async fn delete_in(
        &self,
        namespace: &str,
        kind: Kind,
        name: &str,
    ) -> Result<Value, ApiError> {
        let segments = KubeClient::namespaced(kind, namespace, Some(name));
        self.call(Method::DELETE, &segments, &[], None).await
    }

    /// The objects of `kind` in `namespace` (one page: tests and tools).
    pub async fn list_in(&self, namespace: &str, kind: Kind) -> Result<Vec<Value>, ApiError> {
        let segments = KubeClient::namespaced(kind, namespace, None);
        let list = self.call(Method::GET, &segments, &[], None).await?;
        Ok(list
            .get("items")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default())
    }
}

/// The API server's `message` from a `Status` answer, else the body (shortened) or the
/// status's reason phrase.
fn server_message(status: StatusCode, body: &str) -> String {
    if let Ok(value) = serde_json::from_str::<Value>(body)
        && let Some(message) = value.get("message").and_then(Value::as_str)
        && !message.is_empty()
    {
        return message.to_string();
    }
    let trimmed = body.trim();
    if trimmed.is_empty() {
        return status
            .canonical_reason()
            .unwrap_or("no message")
            .to_string();
    }
    let mut short: String = trimmed.chars().take(500).collect();
    if short.len() < trimmed.len() {
        short.push_str("...");
    }
    short
}

/// Reads `response`'s body as text, refusing one longer than `limit` bytes as it arrives.
async fn capped_text(mut response: reqwest::Response, limit: usize) -> Result<String, String> {
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| format!("reading the answer: {}", with_causes(&e)))?
    {
        if body.len() + chunk.len() > limit {
            return Err(format!("the answer is larger than {limit} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(String::from_utf8_lossy(&body).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_typed_by_what_the_driver_does() {
        assert_eq!(
            classify(404, "namespaces \"x\" not found"),
            ApiErrorKind::NotFound
        );
        assert_eq!(classify(409, "already exists"), ApiErrorKind::AlreadyExists);
        assert_eq!(
            classify(
                403,
                "pods \"p\" is forbidden: exceeded quota: compute, requested: cpu=2, used: cpu=0, limited: cpu=1"
            ),
            ApiErrorKind::QuotaExceeded
        );
        assert_eq!(classify(403, "forbidden"), ApiErrorKind::Forbidden);
        assert_eq!(classify(401, "Unauthorized"), ApiErrorKind::Unauthorized);
        assert_eq!(classify(422, "is invalid"), ApiErrorKind::Invalid);
        for status in [429, 500, 503, 504] {
            assert_eq!(classify(status, ""), ApiErrorKind::Transient, "{status}");
        }
        assert_eq!(classify(418, ""), ApiErrorKind::Other);
        let quota: DriverError = ApiError {
            kind: ApiErrorKind::QuotaExceeded,
            status: Some(403),
            message: "m".into(),
        }
        .into();
        assert_eq!(quota, DriverError::Quota("m".into()));
    }

    #[test]
    fn the_server_message_is_taken_from_a_status_answer() {
        let body = r#"{"kind":"Status","apiVersion":"v1","status":"Failure","message":"Namespace \"x\" is invalid: metadata.labels: Invalid value","reason":"Invalid","code":422}"#;
        assert_eq!(
            server_message(StatusCode::UNPROCESSABLE_ENTITY, body),
            "Namespace \"x\" is invalid: metadata.labels: Invalid value"
        );
        assert_eq!(server_message(StatusCode::BAD_GATEWAY, ""), "Bad Gateway");
        assert_eq!(
            server_message(StatusCode::BAD_GATEWAY, "<html>no</html>"),
            "<html>no</html>"
        );
    }

    #[test]
    fn paths_are_escaped_segments_under_the_server_prefix() {
        let access = ClusterAccess {
            server: "https://k8s.example:6443/k8s/clusters/c-1/".into(),
            ca_pem: None,
            insecure_skip_tls_verify: false,
            identity: None,
            credential: Credential::None,
            origin: "test".into(),
        };
        let client = KubeClient::new(access).expect("client");
        let url = client.url(
            &KubeClient::namespaced(Kind::Role, "ns-1", Some("a/b")),
            &[("labelSelector", "a=b,c")],
        );
        assert_eq!(
            url.as_str(),
            "https://k8s.example:6443/k8s/clusters/c-1/apis/rbac.authorization.k8s.io/v1/namespaces/ns-1/roles/a%2Fb?labelSelector=a%3Db%2Cc"
        );
    }
}
