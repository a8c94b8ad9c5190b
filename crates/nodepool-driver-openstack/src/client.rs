//! `OpenStackClient`: Keystone v3 tokens (renewed before they expire and once on a 401), the
//! service catalog, the `rate` limit between calls, and HTTP errors typed as `DriverError`.

use std::time::{Duration, Instant};

use nodepool_driver::DriverError;
use reqwest::{Method, StatusCode};
use serde_json::Value;
use tokio::sync::{Mutex, OnceCell};

use crate::clouds::{CloudConfig, Credentials, TlsVerify};
use crate::decide;

/// How long one API call may take (uploads have their own timeout).
const CALL_TIMEOUT: Duration = Duration::from_secs(60);

/// The largest answer read from a cloud API (a detailed listing of ten thousand servers is
/// a few tens of MiB); a bigger one is an error, not a process out of memory.
const MAX_BODY_BYTES: usize = 256 * 1024 * 1024;

/// The largest error answer read (only its message is used).
const MAX_ERROR_BODY_BYTES: usize = 1024 * 1024;

/// Why a body was not read.
#[derive(Debug)]
enum BodyError {
    Transport(reqwest::Error),
    TooLarge(usize),
}

/// Reads `response`'s body as text, refusing one longer than `limit` bytes as it arrives.
async fn capped_text(mut response: reqwest::Response, limit: usize) -> Result<String, BodyError> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(BodyError::Transport)? {
        if body.len() + chunk.len() > limit {
            return Err(BodyError::TooLarge(limit));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(String::from_utf8_lossy(&body).into_owned())
}

/// The compute microversion we ask for: 2.47 embeds the flavor's size in servers (quota of
/// unmanaged servers without a flavor lookup) and lets a server have no network (`none`).
const COMPUTE_MICROVERSION: (u32, u32) = (2, 47);

/// The services the driver talks to, with the catalog types each goes by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    Compute,
    Image,
    Network,
    Volume,
    Identity,
}

impl Service {
    fn catalog_types(self) -> &'static [&'static str] {
        match self {
            Service::Compute => &["compute"],
            Service::Image => &["image"],
            Service::Network => &["network"],
            Service::Volume => &["block-storage", "volumev3", "volume"],
            Service::Identity => &["identity"],
        }
    }

    fn name(self) -> &'static str {
        match self {
            Service::Compute => "compute",
            Service::Image => "image",
            Service::Network => "network",
            Service::Volume => "volume",
            Service::Identity => "identity",
        }
    }

    /// The API version path the driver speaks, added when the catalog's URL has none.
    fn version_suffix(self) -> Option<&'static str> {
        match self {
            Service::Image => Some("/v2"),
            Service::Network => Some("/v2.0"),
            _ => None,
        }
    }
}

/// A token and what came with it.
#[derive(Clone)]
struct Token {
    value: String,
    /// When we stop using it (see `decide::token_lifetime`).
    renew_at: Instant,
    catalog: Value,
    project_id: Option<String>,
    user_id: Option<String>,
}

/// The endpoint URL for `types` in a Keystone v3 catalog, for `interface` and (if given)
/// `region`.
pub fn catalog_endpoint(
    catalog: &Value,
    types: &[&str],
    interface: &str,
    region: Option<&str>,
) -> Option<String> {
    let services = catalog.as_array()?;
    for wanted in types {
        for service in services {
            if service.get("type").and_then(Value::as_str) != Some(*wanted) {
                continue;
            }
            let Some(endpoints) = service.get("endpoints").and_then(Value::as_array) else {
                continue;
            };
            let found = endpoints.iter().find(|e| {
                e.get("interface").and_then(Value::as_str) == Some(interface)
                    && region.is_none_or(|r| {
                        e.get("region_id").and_then(Value::as_str) == Some(r)
                            || e.get("region").and_then(Value::as_str) == Some(r)
                    })
            });
            if let Some(url) = found.and_then(|e| e.get("url")).and_then(Value::as_str) {
                return Some(url.trim_end_matches('/').to_string());
            }
        }
    }
    None
}

/// Adds the API version to an unversioned endpoint (`http://glance:9292` -> `.../v2`).
fn versioned(url: &str, service: Service) -> String {
    match service.version_suffix() {
        Some(suffix) if !url.contains(suffix) => format!("{url}{suffix}"),
        _ => url.to_string(),
    }
}

/// Waits so that calls are at least `interval` apart (the provider's `rate`).
/// The token itself stays out of logs and panics (the client's `Debug` shows this one).
impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Token")
            .field("value", &"<redacted>")
            .field("renew_at", &self.renew_at)
            .field("project_id", &self.project_id)
            .field("user_id", &self.user_id)
            .finish_non_exhaustive()
    }
}

#[derive(Debug)]
struct RateLimiter {
    interval: Duration,
    /// The earliest time the next call may start. A tokio mutex: callers queue on it while
    /// they sleep, which is the point.
    next: Mutex<Instant>,
}

impl RateLimiter {
    async fn wait(&self) {
        if self.interval.is_zero() {
            return;
        }
        let mut next = self.next.lock().await;
        let now = Instant::now();
        if *next > now {
            tokio::time::sleep(*next - now).await;
        }
        *next = Instant::now().max(*next) + self.interval;
    }
}

/// The largest CA bundle read (Mozilla's whole bundle is about 250 KiB).
const MAX_CA_BUNDLE_BYTES: u64 = 16 * 1024 * 1024;

/// Clouds already warned about for having TLS checks off: one WARNING per cloud per
/// process, not one per provider or reload. A std mutex: nothing awaits under it.
static TLS_OFF_WARNED: std::sync::Mutex<std::collections::BTreeSet<String>> =
    std::sync::Mutex::new(std::collections::BTreeSet::new());

/// `builder` set up to check certificates as `cloud.tls` says.
fn with_tls(
    builder: reqwest::ClientBuilder,
    cloud: &CloudConfig,
) -> Result<reqwest::ClientBuilder, DriverError> {
    match &cloud.tls {
        TlsVerify::System => Ok(builder),
        TlsVerify::Off { ignored_cacert } => {
            let first = TLS_OFF_WARNED
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(cloud.name.clone());
            if first {
                let ignored = ignored_cacert
                    .as_ref()
                    .map(|p| format!(" (its cacert {} is not used)", p.display()))
                    .unwrap_or_default();
                tracing::warn!(
                    cloud = %cloud.name,
                    "TLS certificate checks are off for cloud {}{ignored}: anyone on the path can read its password and tokens",
                    cloud.name
                );
            }
            Ok(builder.danger_accept_invalid_certs(true))
        }
        TlsVerify::Bundle { path, key } => {
            let certificates = read_ca_bundle(path).map_err(|e| {
                let hint = if matches!(
                    path.to_str().map(str::to_ascii_lowercase).as_deref(),
                    Some("true" | "false" | "yes" | "no" | "on" | "off")
                ) {
                    " (a quoted boolean is a path: write it without quotes)"
                } else {
                    ""
                };
                DriverError::Fatal(format!(
                    "cloud {}: {key} {}: {e}{hint}",
                    cloud.name,
                    path.display()
                ))
            })?;
            // requests' `verify=<path>` trusts that bundle only, not the built-in roots.
            let mut builder = builder.tls_built_in_root_certs(false);
            for certificate in certificates {
                builder = builder.add_root_certificate(certificate);
            }
            Ok(builder)
        }
    }
}

/// The certificates of a PEM CA bundle (one or more `CERTIFICATE` blocks).
fn read_ca_bundle(path: &std::path::Path) -> Result<Vec<reqwest::Certificate>, String> {
    use std::io::Read as _;
    let file = std::fs::File::open(path).map_err(|e| format!("cannot open the CA bundle: {e}"))?;
    let mut pem = Vec::new();
    file.take(MAX_CA_BUNDLE_BYTES + 1)
        .read_to_end(&mut pem)
        .map_err(|e| format!("cannot read the CA bundle: {e}"))?;
    if pem.len() as u64 > MAX_CA_BUNDLE_BYTES {
        return Err(format!(
            "the CA bundle is larger than {MAX_CA_BUNDLE_BYTES} bytes"
        ));
    }
    let certificates = reqwest::Certificate::from_pem_bundle(&pem)
        .map_err(|e| format!("not a PEM CA bundle: {e}"))?;
    if certificates.is_empty() {
        return Err("not a PEM CA bundle: it holds no CERTIFICATE block".to_string());
    }
    Ok(certificates)
}

/// Follows a redirect only to the origin the request went to: the `X-Auth-Token` header
/// goes with every request (reqwest drops only `Authorization` and cookies on a change of
/// host), so a cloud must not be able to send it elsewhere.
fn same_origin_redirects() -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(|attempt| {
        let Some(first) = attempt.previous().first().cloned() else {
            return attempt.follow();
        };
        if !decide::same_origin(&first, attempt.url()) {
            let message = format!(
                "{first} redirects to {}, another origin: not followed",
                attempt.url()
            );
            attempt.error(message)
        } else if attempt.previous().len() > 10 {
            attempt.error(format!("more than 10 redirects from {first}"))
        } else {
            attempt.follow()
        }
    })
}

/// An error's message followed by its causes: reqwest's own says only "error sending
/// request for url (..)" or "builder error"; what went wrong (a refused certificate, a
/// redirect elsewhere, a bad CA certificate) is in its sources.
fn with_causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    text
}

/// A response body and the headers the driver reads.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub body: Value,
}

/// One cloud's API client, shared by a provider's machines and listings.
#[derive(Debug)]
pub struct OpenStackClient {
    cloud: CloudConfig,
    http: reqwest::Client,
    rate: RateLimiter,
    /// The current token; a tokio mutex because getting a new one awaits Keystone, and
    /// concurrent callers should wait for that one request rather than make their own.
    token: Mutex<Option<Token>>,
    /// The compute microversion header value, found once from the compute endpoint.
    compute_version: OnceCell<Option<String>>,
}

impl OpenStackClient {
    /// A client for `cloud` with `rate` seconds between calls. Makes no request yet.
    pub fn new(cloud: CloudConfig, rate: f64) -> Result<OpenStackClient, DriverError> {
        let builder = reqwest::Client::builder()
            .user_agent(concat!("nodepool-rs/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(20))
            // Keystone under uwsgi closes connections; idle ones are not worth keeping long.
            .pool_idle_timeout(Duration::from_secs(10));
        let builder = builder.redirect(same_origin_redirects());
        let http = with_tls(builder, &cloud)?.build().map_err(|e| {
            let bundle = match &cloud.tls {
                TlsVerify::Bundle { path, key } => format!(" with {key} {}", path.display()),
                _ => String::new(),
            };
            DriverError::Fatal(format!(
                "cloud {}: HTTP client{bundle}: {}",
                cloud.name,
                with_causes(&e)
            ))
        })?;
        let interval = Duration::try_from_secs_f64(rate.max(0.0)).unwrap_or(Duration::ZERO);
        Ok(OpenStackClient {
            cloud,
            http,
            rate: RateLimiter {
                interval,
                next: Mutex::new(Instant::now()),
            },
            token: Mutex::new(None),
            compute_version: OnceCell::new(),
        })
    }

    pub fn cloud(&self) -> &CloudConfig {
        &self.cloud
    }

    /// `capped_text` with the error said as the driver says it.
    async fn body(
        &self,
        what: &str,
        response: reqwest::Response,
        limit: usize,
    ) -> Result<String, DriverError> {
        capped_text(response, limit).await.map_err(|e| match e {
            BodyError::Transport(e) => self.transport_error(what, &e),
            BodyError::TooLarge(limit) => DriverError::Transient(format!(
                "cloud {}: {what}: the answer is larger than {limit} bytes",
                self.cloud.name
            )),
        })
    }

    fn transport_error(&self, what: &str, e: &reqwest::Error) -> DriverError {
        // Connection failures and timeouts are worth retrying; a request we could not even
        // build, or a redirect to another origin, is not.
        let text = format!("cloud {}: {what}: {}", self.cloud.name, with_causes(e));
        if e.is_builder() || e.is_redirect() {
            DriverError::Fatal(text)
        } else {
            DriverError::Transient(text)
        }
    }

    /// Gets a new token from Keystone.
    async fn authenticate(&self) -> Result<Token, DriverError> {
        let identity = match &self.cloud.credentials {
            Credentials::Password {
                user,
                password,
                project,
            } => {
                let mut user = user.clone();
                if let Some(obj) = user.as_object_mut() {
                    obj.insert("password".into(), Value::String(password.clone()));
                }
                let mut auth = serde_json::json!({
                    "identity": {"methods": ["password"], "password": {"user": user}}
                });
                if let (Some(project), Some(obj)) = (project, auth.as_object_mut()) {
                    obj.insert("scope".into(), serde_json::json!({ "project": project }));
                }
                auth
            }
            Credentials::ApplicationCredential { credential } => serde_json::json!({
                "identity": {
                    "methods": ["application_credential"],
                    "application_credential": credential,
                }
            }),
        };
        let url = format!("{}/auth/tokens", self.cloud.auth_url);
        let what = "POST identity /auth/tokens";
        self.rate.wait().await;
        let started = Instant::now();
        let response = self
            .http
            .post(&url)
            .timeout(CALL_TIMEOUT)
            .json(&serde_json::json!({ "auth": identity }))
            .send()
            .await
            .map_err(|e| self.transport_error(what, &e))?;
        let status = response.status();
        let subject = response
            .headers()
            .get("X-Subject-Token")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let text = self.body(what, response, MAX_BODY_BYTES).await?;
        if !status.is_success() {
            // A refused login is not worth retrying quickly; Keystone being down is.
            return Err(match status.as_u16() {
                401 | 403 => DriverError::Fatal(format!(
                    "cloud {}: {what}: HTTP {status}: {}",
                    self.cloud.name,
                    decide::error_message(&text)
                )),
                code => decide::classify(&self.cloud.name, what, code, &text),
            });
        }
        let Some(value) = subject else {
            return Err(DriverError::Fatal(format!(
                "cloud {}: {what}: no X-Subject-Token in the answer",
                self.cloud.name
            )));
        };
        let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        let token = body.get("token").cloned().unwrap_or(Value::Null);
        let field = |k: &str| {
            token
                .get(k)
                .and_then(Value::as_str)
                .and_then(decide::parse_timestamp)
        };
        let lifetime = decide::token_lifetime(field("issued_at"), field("expires_at"));
        tracing::debug!(cloud = %self.cloud.name, seconds = lifetime.as_secs(), "got a keystone token");
        Ok(Token {
            value,
            renew_at: started + lifetime,
            catalog: token.get("catalog").cloned().unwrap_or(Value::Null),
            project_id: token
                .pointer("/project/id")
                .and_then(Value::as_str)
                .map(str::to_string),
            user_id: token
                .pointer("/user/id")
                .and_then(Value::as_str)
                .map(str::to_string),
        })
    }

    /// The current token, renewed when it is due.
    async fn token(&self) -> Result<Token, DriverError> {
        let mut slot = self.token.lock().await;
        if let Some(token) = slot.as_ref()
            && Instant::now() < token.renew_at
        {
            return Ok(token.clone());
        }
        let token = self.authenticate().await?;
        *slot = Some(token.clone());
        Ok(token)
    }

    /// Drops a token the cloud refused, unless another caller already replaced it.
    async fn forget_token(&self, value: &str) {
        let mut slot = self.token.lock().await;
        if slot.as_ref().is_some_and(|t| t.value == value) {
            *slot = None;
        }
    }

    /// The project the token is scoped to.
    pub async fn project_id(&self) -> Result<Option<String>, DriverError> {
        Ok(self.token().await?.project_id)
    }

    /// The user the token belongs to.
    pub async fn user_id(&self) -> Result<Option<String>, DriverError> {
        Ok(self.token().await?.user_id)
    }

    /// The base URL of `service`, or `None` when the catalog has none (no Cinder, no Neutron).
    pub async fn endpoint(&self, service: Service) -> Result<Option<String>, DriverError> {
        if service == Service::Identity {
            return Ok(Some(self.cloud.auth_url.clone()));
        }
        let token = self.token().await?;
        Ok(catalog_endpoint(
            &token.catalog,
            service.catalog_types(),
            &self.cloud.interface,
            self.cloud.region.as_deref(),
        )
        .map(|url| versioned(&url, service)))
    }

    async fn require_endpoint(&self, service: Service) -> Result<String, DriverError> {
        self.endpoint(service).await?.ok_or_else(|| {
            DriverError::Fatal(format!(
                "cloud {}: no {} endpoint ({} interface, region {}) in the catalog",
                self.cloud.name,
                service.name(),
                self.cloud.interface,
                self.cloud.region.as_deref().unwrap_or("any")
            ))
        })
    }

    /// The microversion header for compute: 2.47 when the cloud has it, else none.
    pub async fn compute_version(&self) -> Result<Option<String>, DriverError> {
        let base = self.require_endpoint(Service::Compute).await?;
        let version = self
            .compute_version
            .get_or_init(|| async {
                let what = "GET compute (version)".to_string();
                let max = match self.send(&base, &what, Method::GET, None, None).await {
                    Ok(reply) => reply
                        .body
                        .pointer("/version/version")
                        .and_then(Value::as_str)
                        .map(str::to_string),
                    Err(e) => {
                        tracing::warn!(cloud = %self.cloud.name, error = %e, "cannot read the compute API version; using no microversion");
                        None
                    }
                };
                let parse = |v: &str| {
                    let (a, b) = v.split_once('.')?;
                    Some((a.parse::<u32>().ok()?, b.parse::<u32>().ok()?))
                };
                match max.as_deref().and_then(parse) {
                    Some(max) if max >= COMPUTE_MICROVERSION => Some(format!(
                        "{}.{}",
                        COMPUTE_MICROVERSION.0, COMPUTE_MICROVERSION.1
                    )),
                    _ => None,
                }
            })
            .await;
        Ok(version.clone())
    }

    /// One API call; `path` is relative to the service's endpoint, or a full URL (next
    /// links).
    pub async fn request(
        &self,
        service: Service,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Reply, DriverError> {
        let base = self.require_endpoint(service).await?;
        let url = if path.starts_with("http://") || path.starts_with("https://") {
            // Full URLs come from answers (next links); the token goes only where the
            // catalog said this service is.
            let same_origin = match (reqwest::Url::parse(&base), reqwest::Url::parse(path)) {
                (Ok(base), Ok(url)) => decide::same_origin(&base, &url),
                _ => false,
            };
            if !same_origin {
                return Err(DriverError::Fatal(format!(
                    "cloud {}: {method} {} {path}: not on the origin of the endpoint {base}, \
                     so not requested",
                    self.cloud.name,
                    service.name()
                )));
            }
            path.to_string()
        } else {
            format!("{base}{path}")
        };
        let short_path = url.strip_prefix(&base).unwrap_or(&url);
        let what = format!("{method} {} {short_path}", service.name());
        let version = if service == Service::Compute {
            self.compute_version().await?
        } else {
            None
        };
        self.send(&url, &what, method, body, version.as_deref())
            .await
    }

    /// Sends one request. Retries once with a new token on 401, and once on a connection
    /// failure for reads (Keystone and friends may close a pooled connection under us).
    async fn send(
        &self,
        url: &str,
        what: &str,
        method: Method,
        body: Option<&Value>,
        microversion: Option<&str>,
    ) -> Result<Reply, DriverError> {
        let idempotent = matches!(method, Method::GET | Method::HEAD | Method::DELETE);
        let mut tries = 0;
        loop {
            tries += 1;
            let token = self.token().await?;
            let mut request = self
                .http
                .request(method.clone(), url)
                .timeout(CALL_TIMEOUT)
                .header("X-Auth-Token", &token.value)
                .header("Accept", "application/json");
            if let Some(v) = microversion {
                request = request
                    .header("X-OpenStack-Nova-API-Version", v)
                    .header("OpenStack-API-Version", format!("compute {v}"));
            }
            if let Some(body) = body {
                request = request.json(body);
            }
            self.rate.wait().await;
            let response = match request.send().await {
                Ok(r) => r,
                Err(e) if idempotent && tries < 2 && (e.is_connect() || e.is_request()) => {
                    tracing::debug!(cloud = %self.cloud.name, what, error = %e, "retrying after a connection error");
                    continue;
                }
                Err(e) => return Err(self.transport_error(what, &e)),
            };
            let status = response.status();
            let text = self.body(what, response, MAX_BODY_BYTES).await?;
            if status == StatusCode::UNAUTHORIZED && tries < 2 {
                self.forget_token(&token.value).await;
                continue;
            }
            if !status.is_success() {
                return Err(decide::classify(
                    &self.cloud.name,
                    what,
                    status.as_u16(),
                    &text,
                ));
            }
            let body = if text.trim().is_empty() {
                Value::Null
            } else {
                serde_json::from_str(&text).map_err(|e| {
                    DriverError::Transient(format!(
                        "cloud {}: {what}: unreadable answer: {e}",
                        self.cloud.name
                    ))
                })?
            };
            return Ok(Reply {
                status: status.as_u16(),
                body,
            });
        }
    }

    pub async fn get(&self, service: Service, path: &str) -> Result<Value, DriverError> {
        Ok(self.request(service, Method::GET, path, None).await?.body)
    }

    pub async fn post(
        &self,
        service: Service,
        path: &str,
        body: &Value,
    ) -> Result<Value, DriverError> {
        Ok(self
            .request(service, Method::POST, path, Some(body))
            .await?
            .body)
    }

    pub async fn put(
        &self,
        service: Service,
        path: &str,
        body: &Value,
    ) -> Result<Value, DriverError> {
        Ok(self
            .request(service, Method::PUT, path, Some(body))
            .await?
            .body)
    }

    pub async fn delete(&self, service: Service, path: &str) -> Result<(), DriverError> {
        self.request(service, Method::DELETE, path, None)
            .await
            .map(|_| ())
    }

    /// Every item under `key` of a paginated listing, following the `next` links that stay
    /// on the endpoint's origin (a link elsewhere would get our token; it ends the listing
    /// with an error and is never requested).
    pub async fn list_all(
        &self,
        service: Service,
        first: &str,
        key: &str,
    ) -> Result<Vec<Value>, DriverError> {
        let endpoint = self.require_endpoint(service).await?;
        let mut items = Vec::new();
        let mut next = Some(format!("{endpoint}{first}"));
        let mut seen = std::collections::HashSet::new();
        while let Some(url) = next.take() {
            if !seen.insert(url.clone()) {
                return Err(DriverError::Transient(format!(
                    "cloud {}: endless pagination at {url}",
                    self.cloud.name
                )));
            }
            let body = self.get(service, &url).await?;
            let page = match body.get(key) {
                Some(Value::Array(page)) => page.clone(),
                _ => Vec::new(),
            };
            let empty = page.is_empty();
            items.extend(page);
            if empty {
                break;
            }
            next = match decide::next_link(&body, key) {
                Some(link) => Some(
                    decide::next_page_url(&endpoint, service.version_suffix(), &link).map_err(
                        |e| {
                            DriverError::Fatal(format!(
                                "cloud {}: listing {} {first}: {e}",
                                self.cloud.name,
                                service.name()
                            ))
                        },
                    )?,
                ),
                None => None,
            };
        }
        Ok(items)
    }

    /// Streams a file as the body of a PUT (Glance image data).
    pub async fn put_file(
        &self,
        service: Service,
        path: &str,
        file: &std::path::Path,
        timeout: Duration,
    ) -> Result<(), DriverError> {
        let base = self.require_endpoint(service).await?;
        let what = format!("PUT {} {path}", service.name());
        let token = self.token().await?;
        let handle = tokio::fs::File::open(file).await.map_err(|e| {
            DriverError::Fatal(format!("{what}: cannot open {}: {e}", file.display()))
        })?;
        let length = handle
            .metadata()
            .await
            .map_err(|e| DriverError::Fatal(format!("{what}: {}: {e}", file.display())))?
            .len();
        self.rate.wait().await;
        let response = self
            .http
            .put(format!("{base}{path}"))
            .timeout(timeout)
            .header("X-Auth-Token", &token.value)
            .header("Content-Type", "application/octet-stream")
            .header("Content-Length", length)
            .body(reqwest::Body::from(handle))
            .send()
            .await
            .map_err(|e| self.transport_error(&what, &e))?;
        let status = response.status();
        if !status.is_success() {
            let text = capped_text(response, MAX_ERROR_BODY_BYTES)
                .await
                .unwrap_or_default();
            return Err(decide::classify(
                &self.cloud.name,
                &what,
                status.as_u16(),
                &text,
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Serves one HTTP answer whose body is `length` bytes of `x`, sent in pieces.
    async fn big_answer(length: usize) -> String {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let address = listener.local_addr().expect("address");
        tokio::spawn(async move {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            let mut request = [0u8; 1024];
            let _ = stream.read(&mut request).await;
            let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {length}\r\n\r\n");
            if stream.write_all(head.as_bytes()).await.is_err() {
                return;
            }
            let piece = vec![b'x'; 64 * 1024];
            let mut left = length;
            while left > 0 {
                let n = left.min(piece.len());
                if stream.write_all(&piece[..n]).await.is_err() {
                    return;
                }
                left -= n;
            }
        });
        format!("http://{address}/")
    }

    #[tokio::test]
    async fn bodies_are_read_within_a_cap() {
        let url = big_answer(300 * 1024).await;
        let response = reqwest::get(&url).await.expect("get");
        assert!(matches!(
            capped_text(response, 256 * 1024).await,
            Err(BodyError::TooLarge(_))
        ));
        let url = big_answer(100 * 1024).await;
        let response = reqwest::get(&url).await.expect("get");
        assert_eq!(
            capped_text(response, 256 * 1024).await.expect("read").len(),
            100 * 1024
        );
    }

    #[test]
    fn a_token_never_shows_in_debug_output() {
        let token = Token {
            value: "gAAAAABsecret-token".to_string(),
            renew_at: Instant::now(),
            catalog: serde_json::json!([]),
            project_id: Some("p".to_string()),
            user_id: None,
        };
        let shown = format!("{token:?} {:?}", Some(token.clone()));
        assert!(!shown.contains("secret-token"), "{shown}");
        assert!(shown.contains("<redacted>"));
    }

    #[test]
    fn catalog_lookup_by_type_interface_and_region() {
        let catalog = serde_json::json!([
            {"type": "compute", "endpoints": [
                {"interface": "internal", "region_id": "R1", "url": "http://int/v2.1"},
                {"interface": "public", "region_id": "R2", "url": "http://r2/v2.1/"},
                {"interface": "public", "region_id": "R1", "url": "http://r1/v2.1"}]},
            {"type": "volumev3", "endpoints": [
                {"interface": "public", "region": "R1", "url": "http://cinder/v3/p"}]}
        ]);
        assert_eq!(
            catalog_endpoint(&catalog, &["compute"], "public", Some("R1")).as_deref(),
            Some("http://r1/v2.1")
        );
        assert_eq!(
            catalog_endpoint(&catalog, &["compute"], "public", Some("R2")).as_deref(),
            Some("http://r2/v2.1")
        );
        assert_eq!(
            catalog_endpoint(
                &catalog,
                &["block-storage", "volumev3"],
                "public",
                Some("R1")
            )
            .as_deref(),
            Some("http://cinder/v3/p")
        );
        assert_eq!(catalog_endpoint(&catalog, &["image"], "public", None), None);
        assert_eq!(
            versioned("http://g:9292", Service::Image),
            "http://g:9292/v2"
        );
        assert_eq!(
            versioned("http://g:9292/v2", Service::Image),
            "http://g:9292/v2"
        );
        assert_eq!(
            versioned("http://n:9696", Service::Network),
            "http://n:9696/v2.0"
        );
    }
}
