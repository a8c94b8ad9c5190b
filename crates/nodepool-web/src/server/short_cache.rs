//! Answers kept for a second, for the endpoints that read the whole store (`/api/*`,
//! `/metrics`), as Nodepool keeps its own listings: however many clients ask, the store is
//! read at most once a second per URL. Misses are computed one at a time, and a waiting
//! miss finds the answer the one before it made, so a flood never queues store reads.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;

/// How long an answer is served again.
const EXPIRY: Duration = Duration::from_secs(1);

#[derive(Debug, Clone)]
struct Kept {
    made: Instant,
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Kept {
    fn response(&self) -> Response {
        let mut response = Response::new(Body::from(self.body.clone()));
        *response.status_mut() = self.status;
        *response.headers_mut() = self.headers.clone();
        response
    }
}

#[derive(Debug, Default)]
pub(super) struct ShortCache {
    /// By URL (path and query). A std mutex: nothing awaits while holding it.
    kept: Mutex<HashMap<String, Kept>>,
    /// Held while one miss is computed.
    computing: tokio::sync::Mutex<()>,
}

impl ShortCache {
    fn fresh(&self, key: &str) -> Option<Response> {
        let kept = self.kept.lock().unwrap_or_else(|e| e.into_inner());
        kept.get(key)
            .filter(|k| k.made.elapsed() < EXPIRY)
            .map(Kept::response)
    }

    /// The answer for `key`, from the last second's or made by `make`.
    pub(super) async fn answer<F, Fut>(&self, key: &str, make: F) -> Response
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Response>,
    {
        if let Some(response) = self.fresh(key) {
            return response;
        }
        let _turn = self.computing.lock().await;
        if let Some(response) = self.fresh(key) {
            return response;
        }
        let made = Instant::now();
        let (parts, body) = make().await.into_parts();
        let body = match axum::body::to_bytes(body, usize::MAX).await {
            Ok(body) => body,
            Err(_) => return super::internal_error(),
        };
        if parts.status == StatusCode::OK {
            let mut kept = self.kept.lock().unwrap_or_else(|e| e.into_inner());
            // URLs are the client's to choose: forget stale ones so they cannot pile up.
            kept.retain(|_, k| k.made.elapsed() < EXPIRY);
            kept.insert(
                key.to_string(),
                Kept {
                    made,
                    status: parts.status,
                    headers: parts.headers.clone(),
                    body: body.clone(),
                },
            );
        }
        Response::from_parts(parts, Body::from(body))
    }
}
