//! The webapp (spec 6, DESIGN.md section 9): one HTTP server for Nodepool's endpoints
//! (byte-compatible, [`nodepool`]), our JSON API under `/api/` ([`api`]), `/metrics` in
//! Prometheus text format ([`metrics`]) and a dashboard page at `/dashboard`.
//!
//! Every method is answered alike (GET, HEAD, POST...), as Nodepool does; HEAD answers carry
//! no body. Paths are matched after percent-decoding, like WSGI's `PATH_INFO`. Anything
//! else is WebOb's 404 page; `/` stays a 404 as in Nodepool, which is why the dashboard
//! lives at `/dashboard`.
//!
//! [`serve`] takes a bound listener and a shutdown signal (tests bind port 0); the state
//! reads the store on each uncached request, so the webapp shows what any process wrote.

mod api;
mod connections;
mod metrics;
mod negotiate;
mod nodepool;
mod short_cache;

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::response::Response;
use nodepool_store::Store;
use tokio::net::TcpListener;

pub use connections::{Limits, ServerThread, serve_in_thread};
pub use negotiate::acceptable_offers;

/// The dashboard: one page, its script and style inline, reading `/api/`.
const DASHBOARD: &str = include_str!("dashboard.html");

/// A configured label, for `/api/labels`, `/metrics` and the dashboard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelSetting {
    pub name: String,
    pub min_ready: u32,
}

/// What every request handler shares. Cheap to clone.
#[derive(Debug, Clone)]
pub struct WebState {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// Where every answer comes from (Nodepool's webapp reads the launcher's ZooKeeper).
    store: Store,
    /// Set by the launcher once its first main-loop pass is done: `/ready` says 200 after.
    ready: Arc<AtomicBool>,
    /// The configuration's labels and their `min-ready`, which the store does not hold.
    labels: Vec<LabelSetting>,
    /// Nodepool's 1 s response cache. A std mutex: nothing awaits while holding it.
    cache: Mutex<nodepool::ResponseCache>,
    /// The same second's cache for `/api/*` and `/metrics`, each of which reads the whole
    /// store: a flood of them costs one read of the store a second.
    short_cache: short_cache::ShortCache,
    /// The launcher running in this process, for what only it knows (launch results,
    /// worker states, quota use); `None` when the webapp serves the store alone.
    launcher: Option<nodepool_launcher::Observer>,
}

impl WebState {
    pub fn new(store: Store, ready: Arc<AtomicBool>, labels: Vec<LabelSetting>) -> WebState {
        WebState {
            inner: Arc::new(Inner {
                store,
                ready,
                labels,
                cache: Mutex::new(nodepool::ResponseCache::default()),
                short_cache: short_cache::ShortCache::default(),
                launcher: None,
            }),
        }
    }

    /// Adds the in-process launcher's view to `/metrics`, `/api/providers`, `/api/workers`
    /// and the dashboard.
    pub fn with_launcher(
        store: Store,
        ready: Arc<AtomicBool>,
        labels: Vec<LabelSetting>,
        launcher: nodepool_launcher::Observer,
    ) -> WebState {
        WebState {
            inner: Arc::new(Inner {
                store,
                ready,
                labels,
                cache: Mutex::new(nodepool::ResponseCache::default()),
                short_cache: short_cache::ShortCache::default(),
                launcher: Some(launcher),
            }),
        }
    }

    fn launcher(&self) -> Option<nodepool_launcher::Observations> {
        self.inner.launcher.as_ref().map(|l| l.observe())
    }

    fn store(&self) -> &Store {
        &self.inner.store
    }

    fn is_ready(&self) -> bool {
        self.inner.ready.load(Ordering::SeqCst)
    }

    fn labels(&self) -> &[LabelSetting] {
        &self.inner.labels
    }

    fn cache(&self) -> MutexGuard<'_, nodepool::ResponseCache> {
        // A panic while holding the lock leaves at worst a stale entry; keep serving.
        self.inner
            .cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Serves within the default [`Limits`] until `shutdown` completes, then finishes the
/// requests in flight and returns.
pub async fn serve(
    listener: TcpListener,
    state: WebState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_with_limits(listener, state, Limits::default(), shutdown).await
}

/// As [`serve`], within `limits`.
pub async fn serve_with_limits(
    listener: TcpListener,
    state: WebState,
    limits: Limits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let router = Router::new().fallback(handle).with_state(state);
    connections::serve_router(listener, router, limits, shutdown).await
}

async fn handle(State(state): State<WebState>, request: Request) -> Response {
    let raw_path = request.uri().path();
    let path = percent_encoding::percent_decode_str(raw_path)
        .decode_utf8_lossy()
        .into_owned();
    let params = nodepool::parse_params(request.uri().query());
    let headers = request.headers();
    if path == "/metrics" || path.starts_with("/api/") {
        let key = request.uri().to_string();
        return state
            .inner
            .short_cache
            .answer(&key, || async {
                if path == "/metrics" {
                    return metrics::answer(&state).await;
                }
                match api::answer(&state, &path["/api/".len()..]).await {
                    Some(response) => response,
                    None => nodepool::answer(&state, &path, &params, headers).await,
                }
            })
            .await;
    }
    if path == "/dashboard" {
        return Response::builder()
            .header(header::CONTENT_TYPE, "text/html; charset=utf-8")
            .header(header::CACHE_CONTROL, "no-cache")
            .body(Body::from(DASHBOARD))
            .unwrap_or_else(|_| internal_error());
    }
    // Everything else is Nodepool's, including its 404s.
    nodepool::answer(&state, &path, &params, headers).await
}

/// What paste's server sends when the application fails.
fn internal_error() -> Response {
    let mut response = Response::new(Body::from("Internal Server Error\n"));
    *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain"),
    );
    response
}

/// Wall-clock seconds since the epoch, as Nodepool's `time.time()`.
fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}
