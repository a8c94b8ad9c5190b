//! Nodepool's own endpoints (spec 6), byte for byte: the status tables as text or JSON by
//! the `Accept` header, `fields`, `node_id`, `/ready`, the 1 s response cache, the caching
//! headers and conditional requests, and WebOb's error pages.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, UNIX_EPOCH};

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use nodepool_model::NodeId;

use super::negotiate::acceptable_offers;
use super::{WebState, internal_error, now};
use crate::gather;
use crate::status::{self, Table};

/// How long a rendered answer is reused (and the `max-age=1` clients are told).
pub(super) const CACHE_EXPIRY: f64 = 1.0;

/// Which rendering a request gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) enum Format {
    Pretty,
    Json,
}

impl Format {
    fn name(self) -> &'static str {
        match self {
            Format::Pretty => "pretty",
            Format::Json => "json",
        }
    }
}

/// Nodepool's offers, in its order: JSON only when it is strictly preferred.
/// `None` when the header accepts none of them (Nodepool then fails with a 500).
fn wanted_format(headers: &HeaderMap) -> Option<Format> {
    let accept = headers.get(header::ACCEPT).map(HeaderValue::as_bytes);
    let offers = acceptable_offers(accept, &["text/html", "text/plain", "application/json"]);
    match offers.first() {
        Some(&"application/json") => Some(Format::Json),
        Some(_) => Some(Format::Pretty),
        None => None,
    }
}

/// Nodepool's listings: the paths this module answers (besides `/ready`).
pub(super) const LISTINGS: [&str; 6] = [
    "/image-list",
    "/dib-image-list",
    "/image-status",
    "/node-list",
    "/request-list",
    "/label-list",
];

/// Rendered bodies by (path, query parameters, format), each with the time it was made.
#[derive(Debug, Default)]
pub(super) struct ResponseCache {
    entries: HashMap<String, (f64, String)>,
}

impl ResponseCache {
    fn get(&mut self, key: &str, now: f64) -> Option<(f64, String)> {
        let (made, body) = self.entries.get(key)?;
        if now > made + CACHE_EXPIRY {
            self.entries.remove(key);
            return None;
        }
        Some((*made, body.clone()))
    }

    fn put(&mut self, key: String, made: f64, body: String) {
        // Query strings are the client's to choose: forget stale entries so they cannot
        // pile up.
        self.entries
            .retain(|_, (entry_made, _)| made <= *entry_made + CACHE_EXPIRY);
        self.entries.insert(key, (made, body));
    }
}

/// Query parameters as WebOb's `MultiDict`: every value of every key, in order.
pub(super) type Params = BTreeMap<String, Vec<String>>;

pub(super) fn parse_params(query: Option<&str>) -> Params {
    let mut params = Params::new();
    for (key, value) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        params
            .entry(key.into_owned())
            .or_default()
            .push(value.into_owned());
    }
    params
}

/// `params.get(key)`: the last value given.
fn last<'a>(params: &'a Params, key: &str) -> Option<&'a str> {
    params.get(key)?.last().map(String::as_str)
}

/// Answers a path as Nodepool's webapp does: its listings, `/ready`, or its 404.
pub(super) async fn answer(
    state: &WebState,
    path: &str,
    params: &Params,
    headers: &HeaderMap,
) -> Response {
    // Nodepool negotiates before anything else, so a hopeless Accept header fails every
    // path with paste's bare 500.
    let Some(format) = wanted_format(headers) else {
        return internal_error();
    };
    if path != "/ready" && !LISTINGS.contains(&path) {
        return error_page(
            headers,
            StatusCode::NOT_FOUND,
            "The resource could not be found.",
        );
    }
    let (made, body) = if path == "/ready" {
        if !state.is_ready() {
            return error_page(
                headers,
                StatusCode::SERVICE_UNAVAILABLE,
                "The server is currently unavailable. Please try again at a later time.",
            );
        }
        (now(), "OK".to_owned())
    } else {
        let key = cache_key(path, params, format);
        let cached = state.cache().get(&key, now());
        match cached {
            Some(hit) => hit,
            None => {
                let body = match render(state, path, params, format).await {
                    Ok(body) => body,
                    Err(e) => {
                        tracing::error!(path, error = %e, "webapp cannot read the store");
                        return internal_error();
                    }
                };
                let made = now();
                state.cache().put(key, made, body.clone());
                (made, body)
            }
        }
    };
    respond(headers, format, made, body)
}

/// WebOb's cache index: the path, the parameters as sorted JSON, the format.
fn cache_key(path: &str, params: &Params, format: Format) -> String {
    if params.is_empty() {
        format!("{path}.{}", format.name())
    } else {
        let json = serde_json::to_string(params).unwrap_or_default();
        format!("{path}.{json}.{}", format.name())
    }
}

async fn render(
    state: &WebState,
    path: &str,
    params: &Params,
    format: Format,
) -> Result<String, nodepool_store::StoreError> {
    let store = state.store();
    let now = now();
    let table: Table = match path {
        "/image-list" => status::image_list(&gather::images(store).await?.uploads, now),
        "/dib-image-list" => {
            let images = gather::images(store).await?;
            status::dib_image_list(&images.builds, &images.paused, now)
        }
        "/image-status" => status::image_status(&gather::images(store).await?.status, now),
        "/node-list" => {
            let nodes = match last(params, "node_id").filter(|id| !id.is_empty()) {
                // An id that cannot name a node names no node.
                Some(id) => match NodeId::parse(id) {
                    Ok(id) => gather::node(store, id).await?.into_iter().collect(),
                    Err(_) => Vec::new(),
                },
                None => gather::nodes(store).await?,
            };
            status::node_list(&nodes, now)
        }
        "/request-list" => status::request_list(&gather::requests(store).await?),
        _ => {
            let labels = gather::pool_labels(store).await?;
            status::label_list(labels.iter().map(String::as_str))
        }
    };
    Ok(match format {
        Format::Json => status::render_json(&table),
        Format::Pretty => match last(params, "fields").filter(|f| !f.is_empty()) {
            Some(fields) => {
                let keys: Vec<&str> = fields.split(',').collect();
                status::render_text(&table.select(&keys))
            }
            None => status::render_text(&table),
        },
    })
}

fn http_date(epoch: f64) -> HeaderValue {
    let time = UNIX_EPOCH + Duration::from_secs(epoch.max(0.0) as u64);
    HeaderValue::from_str(&httpdate::fmt_http_date(time))
        .unwrap_or_else(|_| HeaderValue::from_static("Thu, 01 Jan 1970 00:00:00 GMT"))
}

/// WebOb's response with Nodepool's headers, then its conditional-response handling: a
/// request whose `If-Modified-Since` is not older than the answer gets 304.
fn respond(request: &HeaderMap, format: Format, made: f64, body: String) -> Response {
    let content_type = match format {
        Format::Json => "application/json",
        Format::Pretty => "text/plain; charset=UTF-8",
    };
    let last_modified = made.trunc();
    let not_modified = request
        .get(header::IF_MODIFIED_SINCE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| httpdate::parse_http_date(value).ok())
        .and_then(|since| since.duration_since(UNIX_EPOCH).ok())
        .is_some_and(|since| last_modified <= since.as_secs_f64());
    let mut builder = Response::builder();
    if not_modified {
        builder = builder.status(StatusCode::NOT_MODIFIED);
    } else {
        builder = builder.header(header::CONTENT_TYPE, content_type);
    }
    let response = builder
        .header(header::CACHE_CONTROL, "max-age=1, public")
        .header(header::LAST_MODIFIED, http_date(made))
        .header(header::EXPIRES, http_date(made + CACHE_EXPIRY))
        .header(header::ACCESS_CONTROL_ALLOW_ORIGIN, "*")
        .body(if not_modified {
            Body::empty()
        } else {
            Body::from(body)
        });
    response.unwrap_or_else(|_| internal_error())
}

/// WebOb's page for an HTTP error, in the form its own negotiation picks (HTML, JSON, or
/// plain text when the request has no `Accept` header or accepts neither).
fn error_page(request: &HeaderMap, status: StatusCode, explanation: &str) -> Response {
    let accept = request
        .get(header::ACCEPT)
        .map(HeaderValue::as_bytes)
        .unwrap_or(b"");
    let offers = acceptable_offers(Some(accept), &["text/html", "application/json"]);
    let code = format!(
        "{} {}",
        status.as_u16(),
        status.canonical_reason().unwrap_or("")
    );
    let title = status.canonical_reason().unwrap_or("");
    let (content_type, body) = match offers.first() {
        Some(&"text/html") => (
            "text/html; charset=UTF-8",
            format!(
                "<html>\n <head>\n  <title>{code}</title>\n </head>\n <body>\n  <h1>{code}</h1>\n  {explanation}<br /><br />\n\n\n\n </body>\n</html>"
            ),
        ),
        Some(_) => (
            "application/json",
            format!(
                "{{\"message\": \"{explanation}<br /><br />\\n\\n\\n\", \"code\": \"{code}\", \"title\": \"{title}\"}}"
            ),
        ),
        None => (
            "text/plain; charset=UTF-8",
            format!("{code}\n\n{explanation}\n\n   "),
        ),
    };
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, content_type)
        .body(Body::from(body))
        .unwrap_or_else(|_| internal_error())
}
