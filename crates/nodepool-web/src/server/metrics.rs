//! `/metrics`: what the store says, in Prometheus text format 0.0.4. Gauges and counters; every
//! family has `# HELP` and `# TYPE` before its samples, labels are escaped.
//!
//! Launch results and durations, worker states and quota use come from the launcher running
//! in this process, when there is one.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use axum::body::Body;
use axum::http::header;
use axum::response::Response;

use super::{WebState, internal_error, now};
use crate::gather;

/// Builds the exposition text, one family at a time.
#[derive(Debug, Default)]
pub(super) struct Exposition {
    text: String,
}

impl Exposition {
    fn family(&mut self, name: &str, help: &str) {
        self.typed_family(name, help, "gauge");
    }

    fn typed_family(&mut self, name: &str, help: &str, kind: &str) {
        let _ = writeln!(self.text, "# HELP {name} {help}");
        let _ = writeln!(self.text, "# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.text.push_str(name);
        if !labels.is_empty() {
            self.text.push('{');
            for (i, (key, value)) in labels.iter().enumerate() {
                if i > 0 {
                    self.text.push(',');
                }
                let _ = write!(self.text, "{key}=\"{}\"", escape(value));
            }
            self.text.push('}');
        }
        let _ = writeln!(self.text, " {value}");
    }

    /// A family of counts, one sample per distinct label tuple.
    fn counts<const N: usize>(
        &mut self,
        name: &str,
        help: &str,
        keys: [&str; N],
        counts: &BTreeMap<[String; N], usize>,
    ) {
        self.family(name, help);
        for (values, count) in counts {
            let labels: Vec<(&str, &str)> = keys
                .iter()
                .copied()
                .zip(values.iter().map(String::as_str))
                .collect();
            self.sample(name, &labels, *count as f64);
        }
    }
}

fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

pub(super) async fn answer(state: &WebState) -> Response {
    match render(state).await {
        Ok(text) => Response::builder()
            .header(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )
            .header(header::CACHE_CONTROL, "no-cache")
            .body(Body::from(text))
            .unwrap_or_else(|_| internal_error()),
        Err(e) => {
            tracing::error!(error = %e, "webapp cannot read the store for /metrics");
            internal_error()
        }
    }
}

async fn render(state: &WebState) -> Result<String, nodepool_store::StoreError> {
    let store = state.store();
    let nodes = gather::nodes(store).await?;
    let requests = gather::requests(store).await?;
    let images = gather::images(store).await?;
    let now = now();
    let mut out = Exposition::default();

    out.family(
        "nodepool_webapp_ready",
        "1 once the launcher finished its first pass (what /ready reports).",
    );
    out.sample(
        "nodepool_webapp_ready",
        &[],
        if state.is_ready() { 1.0 } else { 0.0 },
    );

    let mut node_counts: BTreeMap<[String; 3], usize> = BTreeMap::new();
    for (_, node, _) in &nodes {
        let provider = node.provider.clone().unwrap_or_default();
        let labels: Vec<String> = if node.node_type.is_empty() {
            vec![String::new()]
        } else {
            node.node_type.clone()
        };
        for label in labels {
            *node_counts
                .entry([provider.clone(), label, node.state.as_str().to_owned()])
                .or_default() += 1;
        }
    }
    out.counts(
        "nodepool_nodes",
        "Nodes in the store by provider, label and state (a node counts once per label).",
        ["provider", "label", "state"],
        &node_counts,
    );

    let mut request_counts: BTreeMap<[String; 1], usize> = BTreeMap::new();
    for (_, request) in &requests {
        *request_counts
            .entry([request.state.as_str().to_owned()])
            .or_default() += 1;
    }
    out.counts(
        "nodepool_node_requests",
        "Node requests in the store by state.",
        ["state"],
        &request_counts,
    );

    out.family(
        "nodepool_label_min_ready",
        "The configured min-ready of each label.",
    );
    for label in state.labels() {
        out.sample(
            "nodepool_label_min_ready",
            &[("label", &label.name)],
            f64::from(label.min_ready),
        );
    }

    let mut build_counts: BTreeMap<[String; 2], usize> = BTreeMap::new();
    for record in &images.builds {
        *build_counts
            .entry([record.image.clone(), record.build.state.as_str().to_owned()])
            .or_default() += 1;
    }
    out.counts(
        "nodepool_image_builds",
        "Image builds by image and state.",
        ["image", "state"],
        &build_counts,
    );
    out.family(
        "nodepool_image_build_age_seconds",
        "Seconds since each image build entered its state.",
    );
    for record in &images.builds {
        let id = record.id.to_string();
        out.sample(
            "nodepool_image_build_age_seconds",
            &[
                ("image", &record.image),
                ("build_id", &id),
                ("state", record.build.state.as_str()),
            ],
            (now - record.build.state_time).max(0.0).trunc(),
        );
    }

    let mut upload_counts: BTreeMap<[String; 3], usize> = BTreeMap::new();
    for record in &images.uploads {
        *upload_counts
            .entry([
                record.image.clone(),
                record.provider.clone(),
                record.upload.state.as_str().to_owned(),
            ])
            .or_default() += 1;
    }
    out.counts(
        "nodepool_image_uploads",
        "Image uploads by image, provider and state.",
        ["image", "provider", "state"],
        &upload_counts,
    );
    out.family(
        "nodepool_image_upload_age_seconds",
        "Seconds since each image upload entered its state.",
    );
    for record in &images.uploads {
        let build_id = record.build_id.to_string();
        let id = record.id.to_string();
        out.sample(
            "nodepool_image_upload_age_seconds",
            &[
                ("image", &record.image),
                ("build_id", &build_id),
                ("provider", &record.provider),
                ("upload_id", &id),
                ("state", record.upload.state.as_str()),
            ],
            (now - record.upload.state_time).max(0.0).trunc(),
        );
    }
    out.typed_family(
        "nodepool_cache_stale_total",
        "Times a cache of this process was found behind the store, and re-read, by its root.",
        "counter",
    );
    for (root, count) in nodepool_store::staleness::stale_counts() {
        out.sample(
            "nodepool_cache_stale_total",
            &[("cache", &root)],
            count as f64,
        );
    }
    if let Some(observed) = state.launcher() {
        launcher_families(&mut out, &observed);
    }
    process_families(&mut out);
    Ok(out.text)
}

/// The process itself, under the names Prometheus client libraries use, and its tasks: what
/// a soak run watches for growth.
fn process_families(out: &mut Exposition) {
    if let Some(bytes) = resident_bytes() {
        out.family(
            "process_resident_memory_bytes",
            "Resident memory size in bytes.",
        );
        out.sample("process_resident_memory_bytes", &[], bytes as f64);
    }
    if let Ok(fds) = std::fs::read_dir("/proc/self/fd") {
        out.family("process_open_fds", "Number of open file descriptors.");
        out.sample("process_open_fds", &[], fds.count() as f64);
    }
    if let Ok(runtime) = tokio::runtime::Handle::try_current() {
        out.family(
            "nodepool_runtime_alive_tasks",
            "Tasks alive on this process's async runtime.",
        );
        out.sample(
            "nodepool_runtime_alive_tasks",
            &[],
            runtime.metrics().num_alive_tasks() as f64,
        );
    }
}

/// `VmRSS` of this process, in bytes.
fn resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// What the in-process launcher knows: launch results and durations, worker states, quota.
fn launcher_families(out: &mut Exposition, observed: &nodepool_launcher::Observations) {
    out.typed_family(
        "nodepool_launches_total",
        "Launches finished since the launcher started, by provider and result (ready, error.*).",
        "counter",
    );
    for l in &observed.launches {
        out.sample(
            "nodepool_launches_total",
            &[("provider", &l.provider), ("result", &l.result)],
            l.count as f64,
        );
    }
    out.typed_family(
        "nodepool_launch_seconds_total",
        "Seconds spent in launches finished since the launcher started, by provider and result.",
        "counter",
    );
    for l in &observed.launches {
        out.sample(
            "nodepool_launch_seconds_total",
            &[("provider", &l.provider), ("result", &l.result)],
            l.seconds,
        );
    }
    out.family(
        "nodepool_worker_busy",
        "1 while a launcher loop is in a pass, 0 when idle or stopped.",
    );
    for w in &observed.workers {
        let busy = matches!(w.state, nodepool_launcher::WorkerState::Busy);
        out.sample(
            "nodepool_worker_busy",
            &[("worker", &w.name)],
            if busy { 1.0 } else { 0.0 },
        );
    }
    out.typed_family(
        "nodepool_worker_errors_total",
        "Failed passes of each launcher loop.",
        "counter",
    );
    for w in &observed.workers {
        out.sample(
            "nodepool_worker_errors_total",
            &[("worker", &w.name)],
            w.errors as f64,
        );
    }
    out.family(
        "nodepool_pool_quota_limit",
        "A pool's finite limits (instances from max-servers, max-* resources).",
    );
    for p in &observed.providers {
        for pool in &p.pools {
            for (resource, value) in &pool.limits {
                out.sample(
                    "nodepool_pool_quota_limit",
                    &[
                        ("provider", &p.name),
                        ("pool", &pool.name),
                        ("resource", resource),
                    ],
                    *value,
                );
            }
        }
    }
    out.family(
        "nodepool_pool_quota_used",
        "What nodepool's nodes use of a pool, by resource.",
    );
    for p in &observed.providers {
        for pool in &p.pools {
            for (resource, value) in &pool.used {
                out.sample(
                    "nodepool_pool_quota_used",
                    &[
                        ("provider", &p.name),
                        ("pool", &pool.name),
                        ("resource", resource),
                    ],
                    *value,
                );
            }
        }
    }
}
