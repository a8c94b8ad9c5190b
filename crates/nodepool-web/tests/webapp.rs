//! The webapp over a real embedded store filled with the golden fixture (the records
//! Nodepool 11's own `status.py` printed, `tests/golden`): every Nodepool endpoint in both
//! formats against those goldens, Accept edge cases, `fields`, `node_id`, caching headers,
//! 404s and `/ready`; our `/api/`, `/metrics` (checked to parse as Prometheus text) and the
//! dashboard in headless Chromium.

#![allow(clippy::unwrap_used)] // tests may unwrap: a panic is a test failure

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use nodepool_store::{Backend, Registration, SqliteBackend, SqliteOptions, Store};
use nodepool_testkit::fixture::{self, mask_ages};
use nodepool_testkit::http::{self, HttpResponse};
use nodepool_web::server::{LabelSetting, Limits, WebState, serve_with_limits};
use serde_json::Value;
use tempfile::TempDir;
use tokio::sync::oneshot;

fn golden(path: &str) -> String {
    let full = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(path);
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{}: {e}", full.display()))
}

/// A store filled with the fixture and a webapp serving it on a free port.
struct Site {
    address: String,
    store: Store,
    ready: Arc<AtomicBool>,
    /// Whole seconds the fixture's times were moved by.
    shift: i64,
    stop: Option<oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
    _pools: Vec<Registration>,
    _dir: TempDir,
}

impl Site {
    async fn start() -> Site {
        Site::start_with(Limits::default()).await
    }

    async fn start_with(limits: Limits) -> Site {
        Site::start_on(limits, |backend| backend).await
    }

    /// With the SQLite backend wrapped by `wrap` (to count what the webapp reads).
    async fn start_on(
        limits: Limits,
        wrap: impl FnOnce(Arc<dyn Backend>) -> Arc<dyn Backend>,
    ) -> Site {
        let dir = tempfile::tempdir().unwrap();
        let backend = SqliteBackend::open(SqliteOptions::new(dir.path().join("np.db")))
            .await
            .unwrap();
        let store = Store::new(wrap(Arc::new(backend)));
        let fixture = fixture::load();
        // Whole seconds, so epoch ages are the goldens' plus `shift` exactly.
        let shift = fixture::shift_to_now(&fixture).ceil() as i64;
        fixture::fill(&store, &fixture, shift as f64).await.unwrap();
        let pools = fixture::register_pools(&store, &fixture).await.unwrap();
        let ready = Arc::new(AtomicBool::new(true));
        let labels = vec![
            LabelSetting {
                name: "fake-label".into(),
                min_ready: 2,
            },
            LabelSetting {
                name: "unused-label".into(),
                min_ready: 0,
            },
        ];
        let state = WebState::new(store.clone(), ready.clone(), labels);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let (stop, stopped) = oneshot::channel::<()>();
        let server = tokio::spawn(serve_with_limits(listener, state, limits, async {
            let _ = stopped.await;
        }));
        Site {
            address,
            store,
            ready,
            shift,
            stop: Some(stop),
            server: Some(server),
            _pools: pools,
            _dir: dir,
        }
    }

    async fn get(&self, target: &str, accept: Option<&str>) -> HttpResponse {
        http::get(&self.address, target, accept).await.unwrap()
    }

    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(server) = self.server.take() {
            tokio::time::timeout(Duration::from_secs(10), server)
                .await
                .expect("the server stops")
                .unwrap()
                .unwrap();
        }
        self.store.backend().close().await.unwrap();
    }
}

/// Node-list ages are formatted strings that depend on the clock: blank them. Epoch ages
/// of the image listings must be the golden's plus `shift`; build requests are created
/// now, so only whether there is one counts.
fn normalize_json(view: &str, mut value: Value, shift: i64) -> Value {
    for row in value.as_array_mut().unwrap() {
        let row = row.as_object_mut().unwrap();
        for key in ["age", "build_request_age"] {
            match row.get(key) {
                Some(Value::String(_)) if view == "node-list" => {
                    row.insert(key.into(), Value::from("masked"));
                }
                Some(Value::Number(_)) if key == "build_request_age" => {
                    row.insert(key.into(), Value::from("epoch"));
                }
                Some(Value::Number(n)) => {
                    let shifted = n.as_i64().unwrap() - shift;
                    row.insert(key.into(), Value::from(shifted));
                }
                _ => {}
            }
        }
    }
    value
}

const VIEWS: [&str; 6] = [
    "image-list",
    "dib-image-list",
    "image-status",
    "node-list",
    "request-list",
    "label-list",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodepool_endpoints_match_nodepool_in_both_formats() {
    let site = Site::start().await;
    for view in VIEWS {
        let target = format!("/{view}");
        let text = site.get(&target, None).await;
        assert_eq!(text.status, 200, "{view}");
        assert_eq!(
            text.header("content-type"),
            Some("text/plain; charset=UTF-8")
        );
        assert_eq!(
            mask_ages(&text.text()),
            mask_ages(&golden(&format!("full/web/{view}.txt"))),
            "{view} text"
        );

        let json = site.get(&target, Some("application/json")).await;
        assert_eq!(json.status, 200, "{view}");
        assert_eq!(json.header("content-type"), Some("application/json"));
        assert!(json.body.is_ascii(), "{view}: json.dumps escapes non-ASCII");
        let got: Value = serde_json::from_slice(&json.body).unwrap();
        let want: Value = serde_json::from_str(&golden(&format!("full/web/{view}.json"))).unwrap();
        assert_eq!(
            normalize_json(view, got, site.shift),
            normalize_json(view, want, 0),
            "{view} json"
        );
        if ["request-list", "label-list"].contains(&view) {
            // No clock in these bodies: byte for byte.
            assert_eq!(
                json.text(),
                golden(&format!("full/web/{view}.json")),
                "{view} json bytes"
            );
        }
    }
    site.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accept_header_picks_the_format_as_webob_does() {
    let site = Site::start().await;
    let pretty = golden("full/web/request-list.txt");
    let json = golden("full/web/request-list.json");
    let cases: [(Option<&str>, Option<&str>); 12] = [
        (None, Some(&pretty)),
        (Some("*/*"), Some(&pretty)),
        (Some("text/html"), Some(&pretty)),
        (Some("text/plain"), Some(&pretty)),
        (Some("application/json"), Some(&json)),
        // A tie goes to the first offer (spec 8.3 item 24).
        (Some("application/json, text/plain"), Some(&pretty)),
        (Some("application/json, text/plain;q=0.5"), Some(&json)),
        (Some("text/*;q=0.1, application/*"), Some(&json)),
        // Not a valid Accept header: as if absent.
        (Some("application/json;q=5"), Some(&pretty)),
        // Valid but accepting none of the offers: Nodepool fails.
        (Some("image/png"), None),
        (Some("text/plain;charset=utf-8"), None),
        (Some("application/json;q=0"), None),
    ];
    for (accept, want) in cases {
        let response = site.get("/request-list", accept).await;
        match want {
            Some(body) => {
                assert_eq!(response.status, 200, "{accept:?}");
                assert_eq!(&response.text(), body, "{accept:?}");
            }
            None => {
                assert_eq!(response.status, 500, "{accept:?}");
                assert_eq!(response.text(), "Internal Server Error\n");
                assert_eq!(response.header("content-type"), Some("text/plain"));
            }
        }
    }
    // The failing negotiation comes first, even for unknown paths.
    assert_eq!(site.get("/nowhere", Some("image/png")).await.status, 500);
    site.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fields_and_node_id() {
    let site = Site::start().await;
    let fields = site
        .get(
            "/node-list?fields=locked,id,nonexistent,connection_port",
            None,
        )
        .await;
    assert_eq!(fields.text(), golden("full/web/node-list-fields.txt"));
    // `fields` is ignored for JSON.
    let json = site
        .get("/node-list?fields=id", Some("application/json"))
        .await;
    let rows: Value = serde_json::from_slice(&json.body).unwrap();
    assert_eq!(rows[0].as_object().unwrap().len(), 21);
    // The last value wins; an empty one means all columns.
    let last = site.get("/request-list?fields=state&fields=id", None).await;
    let header = last.text().lines().nth(1).unwrap().to_owned();
    assert_eq!(
        header.trim_end_matches([' ', '|']),
        "| Request ID",
        "{}",
        last.text()
    );
    let empty = site.get("/request-list?fields=", None).await;
    assert_eq!(empty.text(), golden("full/web/request-list.txt"));

    let one = site
        .get("/node-list?node_id=0000000002", Some("application/json"))
        .await;
    let rows: Value = serde_json::from_slice(&one.body).unwrap();
    assert_eq!(rows.as_array().unwrap().len(), 1);
    assert_eq!(rows[0]["id"], "0000000002");
    for missing in ["9999999999", "not-a-node"] {
        let none = site
            .get(
                &format!("/node-list?node_id={missing}"),
                Some("application/json"),
            )
            .await;
        assert_eq!(none.text(), "[]");
        let table = site
            .get(&format!("/node-list?node_id={missing}"), None)
            .await;
        assert_eq!(table.text().lines().count(), 4, "{}", table.text());
    }
    site.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn caching_headers_conditional_requests_and_the_one_second_cache() {
    let site = Site::start().await;
    let first = site.get("/request-list", None).await;
    assert_eq!(first.header("cache-control"), Some("max-age=1, public"));
    assert_eq!(first.header("access-control-allow-origin"), Some("*"));
    let last_modified = first.header("last-modified").unwrap().to_owned();
    let expires = first.header("expires").unwrap();
    let made = httpdate::parse_http_date(&last_modified).unwrap();
    assert_eq!(
        httpdate::parse_http_date(expires).unwrap(),
        made + Duration::from_secs(1)
    );

    // If-Modified-Since at or after Last-Modified: 304 without a body.
    let not_modified = http::request(
        &site.address,
        "GET",
        "/request-list",
        &[("If-Modified-Since", &last_modified)],
    )
    .await
    .unwrap();
    if not_modified.header("last-modified") == Some(last_modified.as_str()) {
        assert_eq!(not_modified.status, 304);
        assert!(not_modified.body.is_empty());
    }
    let old = http::request(
        &site.address,
        "GET",
        "/request-list",
        &[("If-Modified-Since", "Thu, 01 Jan 1970 00:00:00 GMT")],
    )
    .await
    .unwrap();
    assert_eq!(old.status, 200);

    // Every method answers alike; HEAD has no body.
    let post = http::request(&site.address, "POST", "/label-list", &[])
        .await
        .unwrap();
    assert_eq!(post.text(), golden("full/web/label-list.txt"));
    let head = http::request(&site.address, "HEAD", "/label-list", &[])
        .await
        .unwrap();
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());

    // A change shows once the cached answer is older than a second, not before.
    let before = site.get("/node-list", Some("application/json")).await;
    let asked = Instant::now();
    let id = nodepool_model::NodeId::parse("0000000000").unwrap();
    site.store
        .delete_recursive(&nodepool_store::paths::node(id))
        .await
        .unwrap();
    let again = site.get("/node-list", Some("application/json")).await;
    if asked.elapsed() < Duration::from_millis(900) {
        assert_eq!(again.body, before.body, "served from the cache");
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let now = site.get("/node-list", Some("application/json")).await;
        if !now.text().contains("\"0000000000\"") {
            break;
        }
        assert!(Instant::now() < deadline, "the cache never expired");
        tokio::task::yield_now().await;
    }
    site.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn not_found_and_ready() {
    let site = Site::start().await;
    for path in [
        "/",
        "/node-list.json",
        "/healthz",
        "/node-list/",
        "/api/unknown",
    ] {
        let response = site.get(path, None).await;
        assert_eq!(response.status, 404, "{path}");
        assert_eq!(
            response.text(),
            "404 Not Found\n\nThe resource could not be found.\n\n   "
        );
    }
    let html = site.get("/nowhere", Some("text/html")).await;
    assert_eq!(
        html.header("content-type"),
        Some("text/html; charset=UTF-8")
    );
    assert!(html.text().contains("<h1>404 Not Found</h1>"));
    let json = site.get("/nowhere", Some("application/json")).await;
    assert_eq!(
        json.text(),
        "{\"message\": \"The resource could not be found.<br /><br />\\n\\n\\n\", \"code\": \"404 Not Found\", \"title\": \"Not Found\"}"
    );
    // Paths are matched decoded, as WSGI's PATH_INFO.
    assert_eq!(site.get("/node%2Dlist", None).await.status, 200);

    let ready = site.get("/ready", Some("application/json")).await;
    assert_eq!((ready.status, ready.text().as_str()), (200, "OK"));
    assert_eq!(ready.header("content-type"), Some("application/json"));
    site.ready.store(false, Ordering::SeqCst);
    let unready = site.get("/ready", None).await;
    assert_eq!(unready.status, 503);
    assert_eq!(
        unready.text(),
        "503 Service Unavailable\n\nThe server is currently unavailable. Please try again at a later time.\n\n   "
    );
    site.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_serves_full_records() {
    let site = Site::start().await;
    let fixture = fixture::load();
    let get = async |path: &str| -> Value {
        let response = site.get(path, None).await;
        assert_eq!(response.status, 200, "{path}");
        assert_eq!(response.header("content-type"), Some("application/json"));
        serde_json::from_slice(&response.body).unwrap()
    };
    let nodes = get("/api/nodes").await;
    let nodes = nodes.as_array().unwrap();
    assert_eq!(nodes.len(), fixture["nodes"].as_array().unwrap().len());
    assert_eq!(nodes[0]["id"], fixture["nodes"][0]["id"]);
    assert!(nodes[0]["locked"].is_boolean());
    assert!(nodes[0]["state_time"].is_number());

    let requests = get("/api/requests").await;
    assert_eq!(
        requests.as_array().unwrap().len(),
        fixture["requests"].as_array().unwrap().len()
    );

    let labels = get("/api/labels").await;
    let names: Vec<&str> = labels
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "fake-label",
            "unused-label",
            "pod-fedora",
            "static-a",
            "static-b"
        ]
    );
    assert_eq!(labels[0]["min_ready"], 2);
    assert_eq!(labels[0]["registered"], true);
    assert_eq!(labels[1]["registered"], false);
    assert_eq!(labels[2]["min_ready"], Value::Null);

    let builds = get("/api/builds").await;
    let uploads = get("/api/images").await;
    let status = get("/api/image-status").await;
    let fixture_builds: usize = fixture["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["builds"].as_array().unwrap().len())
        .sum();
    assert_eq!(builds.as_array().unwrap().len(), fixture_builds);
    assert!(
        uploads
            .as_array()
            .unwrap()
            .iter()
            .all(|u| u["provider"].is_string())
    );
    assert_eq!(
        status.as_array().unwrap().len(),
        fixture["images"].as_array().unwrap().len()
    );
    site.stop().await;
}

/// One sample: metric name, labels, value.
type Sample = (String, Vec<(String, String)>, f64);

/// Checks the exposition format: `# HELP name text` then `# TYPE name kind` before a
/// family's samples, each sample `name{label="value",...} number`, names and label names
/// valid, label values properly escaped, no family twice. Returns the samples.
fn parse_prometheus(text: &str) -> Vec<Sample> {
    fn is_name(name: &str) -> bool {
        let mut chars = name.chars();
        chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
    }
    assert!(text.ends_with('\n'), "ends with a newline");
    let mut helped: Vec<String> = Vec::new();
    let mut typed: Vec<String> = Vec::new();
    let mut samples = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, _) = rest.split_once(' ').unwrap();
            assert!(is_name(name), "{line}");
            assert!(!helped.contains(&name.to_owned()), "family twice: {line}");
            helped.push(name.to_owned());
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            assert_eq!(helped.last().map(String::as_str), Some(name), "{line}");
            assert!(
                ["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind),
                "{line}"
            );
            typed.push(name.to_owned());
            continue;
        }
        assert!(
            !line.starts_with('#') && !line.is_empty(),
            "stray line {line:?}"
        );
        let (name, rest) = match line.find(['{', ' ']) {
            Some(i) => line.split_at(i),
            None => panic!("no value: {line}"),
        };
        assert!(is_name(name), "{line}");
        assert_eq!(
            typed.last().map(String::as_str),
            Some(name),
            "TYPE first: {line}"
        );
        let mut labels = Vec::new();
        let value_text = if let Some(mut body) = rest.strip_prefix('{') {
            loop {
                if let Some(after) = body.strip_prefix('}') {
                    body = after;
                    break;
                }
                let (label, after) = body.split_once("=\"").unwrap();
                assert!(is_name(label), "label name in {line}");
                let mut value = String::new();
                let mut chars = after.char_indices();
                let end = loop {
                    match chars.next() {
                        Some((_, '\\')) => match chars.next() {
                            Some((_, 'n')) => value.push('\n'),
                            Some((_, c @ ('\\' | '"'))) => value.push(c),
                            other => panic!("bad escape {other:?} in {line}"),
                        },
                        Some((i, '"')) => break i,
                        Some((_, c)) => value.push(c),
                        None => panic!("unterminated label value in {line}"),
                    }
                };
                labels.push((label.to_owned(), value));
                body = &after[end + 1..];
                body = body.strip_prefix(',').unwrap_or(body);
            }
            body
        } else {
            rest
        };
        let value: f64 = value_text
            .strip_prefix(' ')
            .unwrap_or_else(|| panic!("one space before the value: {line}"))
            .parse()
            .unwrap_or_else(|_| panic!("numeric value: {line}"));
        samples.push((name.to_owned(), labels, value));
    }
    samples
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_parse_as_prometheus_text() {
    let site = Site::start().await;
    // A guarded cache in this process, as the launcher's are.
    let _cache = nodepool_store::TreeCache::start(
        site.store.backend().clone(),
        nodepool_store::paths::NODES,
    )
    .await
    .unwrap();
    let response = site.get("/metrics", None).await;
    assert_eq!(response.status, 200);
    assert!(
        response
            .header("content-type")
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    let samples = parse_prometheus(&response.text());
    let value = |name: &str, labels: &[(&str, &str)]| -> Option<f64> {
        samples
            .iter()
            .find(|(n, l, _)| {
                n == name
                    && labels
                        .iter()
                        .all(|(k, v)| l.iter().any(|(lk, lv)| lk == k && lv == v))
            })
            .map(|(_, _, v)| *v)
    };
    assert_eq!(value("nodepool_webapp_ready", &[]), Some(1.0));
    assert_eq!(
        value(
            "nodepool_cache_stale_total",
            &[("cache", "/nodepool/nodes")]
        ),
        Some(0.0),
        "every guarded cache is listed, with how often it was found stale"
    );
    // The process's own size, which a soak run watches for growth.
    for name in [
        "process_resident_memory_bytes",
        "process_open_fds",
        "nodepool_runtime_alive_tasks",
    ] {
        assert!(
            value(name, &[]).is_some_and(|v| v > 0.0),
            "{name} is reported"
        );
    }
    let fixture = fixture::load();
    let nodes: f64 = samples
        .iter()
        .filter(|(n, _, _)| n == "nodepool_nodes")
        .map(|(_, _, v)| v)
        .sum();
    let labelled: usize = fixture["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["data"]["type"].as_array().map_or(1, |t| t.len().max(1)))
        .sum();
    assert_eq!(nodes as usize, labelled);
    let requests: f64 = samples
        .iter()
        .filter(|(n, _, _)| n == "nodepool_node_requests")
        .map(|(_, _, v)| v)
        .sum();
    assert_eq!(
        requests as usize,
        fixture["requests"].as_array().unwrap().len()
    );
    assert_eq!(
        value("nodepool_label_min_ready", &[("label", "fake-label")]),
        Some(2.0)
    );
    assert!(samples.iter().any(|(n, _, _)| n == "nodepool_image_builds"));
    assert!(
        samples
            .iter()
            .any(|(n, _, v)| n == "nodepool_image_upload_age_seconds" && *v >= 0.0)
    );
    site.stop().await;
}

#[test]
fn the_prometheus_check_rejects_bad_text() {
    for bad in [
        "nodepool_x 1\n",
        "# HELP a x\n# TYPE a gauge\na{l=\"v} 1\n",
        "# HELP a x\n# TYPE a gauge\na 1 \n",
        "# HELP a x\n# TYPE a gauge\nb 1\n",
        "# HELP a x\n# TYPE a gauge\na{l=\"\\x\"} 1\n",
    ] {
        let result = std::panic::catch_unwind(|| parse_prometheus(bad));
        assert!(result.is_err(), "accepted {bad:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_shows_live_data_in_headless_chromium() {
    let site = Site::start().await;
    let page = site.get("/dashboard", None).await;
    assert_eq!(page.status, 200);
    assert_eq!(
        page.header("content-type"),
        Some("text/html; charset=utf-8")
    );

    let profile = tempfile::tempdir().unwrap();
    let output = tokio::process::Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--virtual-time-budget=5000",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg("--dump-dom")
        .arg(format!("http://{}/dashboard", site.address))
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(120), output)
        .await
        .expect("chromium finishes")
        .expect("chromium runs (Debian package `chromium`, see scripts/setup.sh)");
    let dom = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let fixture = fixture::load();
    let node_id = fixture["nodes"][0]["id"].as_str().unwrap();
    assert!(
        dom.contains(&format!("<td>{node_id}</td>")),
        "node id missing:\n{dom}"
    );
    assert!(dom.contains("<td>pod-fedora</td>"), "label missing:\n{dom}");
    assert!(dom.contains("<td>fake-label</td>"), "label missing:\n{dom}");
    assert!(
        dom.contains("<div id=\"status\" class=\"\">updated"),
        "{dom}"
    );
    site.stop().await;
}

/// A record nobody can read is left out of every answer; the rest is served (issue 16).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreadable_records_are_left_out_of_every_answer() {
    let site = Site::start().await;
    for (path, data) in [
        (
            "/nodepool/nodes/0000000901",
            &br#"{"state": "ready", "type": 5}"#[..],
        ),
        ("/nodepool/requests/100-0000000901", &b"{\"state\": "[..]),
        ("/nodepool/images/fake-image/builds/0000000901", &b"[]"[..]),
    ] {
        site.store
            .backend()
            .create(path, data, nodepool_store::CreateMode::Persistent, true)
            .await
            .unwrap();
    }
    for target in [
        "/node-list",
        "/request-list",
        "/dib-image-list",
        "/image-list",
        "/api/nodes",
        "/api/requests",
        "/api/builds",
        "/metrics",
    ] {
        let response = site.get(target, None).await;
        assert_eq!(response.status, 200, "{target}: {}", response.text());
    }
    let nodes: Value = serde_json::from_str(&site.get("/api/nodes", None).await.text()).unwrap();
    assert_eq!(
        nodes.as_array().map(Vec::len),
        fixture::load()["nodes"].as_array().map(Vec::len),
        "the readable nodes are all still served"
    );
    site.stop().await;
}

/// Web clients cannot hold the webapp (issue 16): connections that send nothing, or headers
/// a byte at a time and never finish, are closed after the header-read timeout, and a client
/// beyond the connection cap is served once they are gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_and_slow_clients_are_cut_off_and_others_served() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let site = Site::start_with(Limits {
        max_connections: 4,
        header_read_timeout: Duration::from_millis(500),
        connection_lifetime: Duration::from_secs(60),
    })
    .await;
    {
        // With a header timeout far longer than the test: only eviction can make room.
        let patient = Site::start_with(Limits {
            max_connections: 4,
            header_read_timeout: Duration::from_secs(600),
            connection_lifetime: Duration::from_secs(600),
        })
        .await;
        let mut hogs = Vec::new();
        for _ in 0..4 {
            let mut stream = tokio::net::TcpStream::connect(&patient.address)
                .await
                .unwrap();
            stream
                .write_all(b"GET /node-list HTTP/1.1\r\nHost: x\r\n")
                .await
                .unwrap();
            hogs.push(stream);
        }
        for _ in 0..3 {
            let answered =
                tokio::time::timeout(Duration::from_secs(20), patient.get("/ready", None)).await;
            assert_eq!(
                answered.expect("served in place of an idle hog").status,
                200
            );
        }
        // The oldest hog was closed to make room.
        let mut buffer = Vec::new();
        let closed =
            tokio::time::timeout(Duration::from_secs(20), hogs[0].read_to_end(&mut buffer)).await;
        assert!(closed.is_ok(), "the oldest idle connection is closed");
        patient.stop().await;
    }
    let mut hogs = Vec::new();
    for slow in [false, false, true, true] {
        let mut stream = tokio::net::TcpStream::connect(&site.address).await.unwrap();
        if slow {
            stream
                .write_all(b"GET /node-list HTTP/1.1\r\nHost: x\r\n")
                .await
                .unwrap();
        }
        hogs.push(stream);
    }
    // A fifth client, past the cap: served at once, in place of the oldest idle hog (long
    // before the hogs' header timeout would free a slot).
    let answered = tokio::time::timeout(Duration::from_secs(20), site.get("/ready", None)).await;
    assert_eq!(
        answered.expect("the fifth client is served").status,
        200,
        "/ready answers"
    );
    for mut hog in hogs {
        let mut buffer = Vec::new();
        let closed = tokio::time::timeout(Duration::from_secs(20), hog.read_to_end(&mut buffer))
            .await
            .expect("the server closes a connection that sends no complete request");
        // Closed with nothing, or with hyper's 408 for headers that never finished.
        assert!(
            closed.is_err() || buffer.is_empty() || buffer.starts_with(b"HTTP/1.1 408"),
            "{:?}",
            String::from_utf8_lossy(&buffer)
        );
    }
    site.stop().await;
}

/// A flood of `/api/nodes` and `/metrics` requests reads the store about once a second, not
/// once per request (issue 16), and every request is answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_flood_reads_the_store_once_a_second() {
    use nodepool_store::testing::Instrumented;
    let mut counter = None;
    let site = Site::start_on(Limits::default(), |backend| {
        let instrumented = Arc::new(Instrumented::new(backend));
        counter = Some(instrumented.clone());
        instrumented
    })
    .await;
    let counter = counter.unwrap();
    // What one answer of each costs.
    let before = counter.gets();
    for target in ["/api/nodes", "/metrics"] {
        assert_eq!(site.get(target, None).await.status, 200);
    }
    let one_each = counter.gets() - before;
    assert!(one_each > 0, "the listings read the store");
    let before = counter.gets();
    let started = Instant::now();
    let mut flood = tokio::task::JoinSet::new();
    for i in 0..200 {
        let address = site.address.clone();
        let target = if i % 2 == 0 { "/api/nodes" } else { "/metrics" };
        flood.spawn(async move { http::get(&address, target, None).await.unwrap().status });
    }
    while let Some(status) = flood.join_next().await {
        assert_eq!(status.unwrap(), 200);
    }
    // At most one fresh answer of each per second begun (a read per request would be 100
    // times `one_each`).
    let seconds = started.elapsed().as_secs() as usize + 1;
    let reads = counter.gets() - before;
    assert!(
        reads <= (seconds + 1) * one_each,
        "{reads} store reads for 200 requests in {seconds} s; one answer of each reads {one_each}"
    );
    site.stop().await;
}
