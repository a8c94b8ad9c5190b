//! The listings of spec 5.3, one function each, in Nodepool's column order and row order.

use std::collections::{BTreeMap, HashSet};

use nodepool_model::node::{ConnectionPort, ExternalId};
use nodepool_model::{
    BuildId, ImageBuild, ImageUpload, Node, NodeId, NodeRequest, RequestId, UploadId,
};
use serde_json::Value;

use super::python::age;
use super::text::render_text;
use super::{Cell, Header, Table};

/// One image build with the ids from its path.
#[derive(Debug, Clone, PartialEq)]
pub struct BuildRecord {
    pub image: String,
    pub id: BuildId,
    pub build: ImageBuild,
}

/// One image upload with the ids from its path.
#[derive(Debug, Clone, PartialEq)]
pub struct UploadRecord {
    pub image: String,
    pub build_id: BuildId,
    pub provider: String,
    pub id: UploadId,
    pub upload: ImageUpload,
}

/// A manual build request (`/nodepool/images/<image>/request-build`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BuildRequest {
    /// Nodepool's heuristic: no builder holds the image build lock, or the newest-looking
    /// build is older than the lock (spec 8.3 item 14). `false` shows as `building`.
    pub pending: bool,
    /// Creation time of the request znode, epoch seconds.
    pub created: f64,
}

/// One image znode for `image-status`.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageStatusRecord {
    pub image: String,
    pub paused: bool,
    pub build_request: Option<BuildRequest>,
}

/// A build that has an upload directory for the provider `info` is about.
#[derive(Debug, Clone, PartialEq)]
pub struct ProviderBuild {
    pub image: String,
    pub build_id: BuildId,
    /// Ids of the readable uploads under it (may be empty).
    pub upload_ids: Vec<UploadId>,
}

/// `info PROVIDER`: its two tables.
#[derive(Debug, Clone, PartialEq)]
pub struct InfoView {
    pub provider: String,
    /// `Image Name | Build ID | Upload IDs`.
    pub images: Table,
    /// `ID | Server ID`.
    pub nodes: Table,
}

const NODE_HEADERS: [Header; 21] = [
    Header::new("id", "ID"),
    Header::new("provider", "Provider"),
    Header::new("label", "Label"),
    Header::new("server_id", "Server ID"),
    Header::new("public_ipv4", "Public IPv4"),
    Header::new("ipv6", "IPv6"),
    Header::new("state", "State"),
    Header::new("age", "Age"),
    Header::new("locked", "Locked"),
    Header::new("pool", "Pool"),
    Header::new("hostname", "Hostname"),
    Header::new("private_ipv4", "Private IPv4"),
    Header::new("AZ", "AZ"),
    Header::new("username", "Username"),
    Header::new("connection_port", "Port"),
    Header::new("launcher", "Launcher"),
    Header::new("allocated_to", "Allocated To"),
    Header::new("hold_job", "Hold Job"),
    Header::new("comment", "Comment"),
    Header::new("user_data", "User Data"),
    Header::new("driver_data", "Driver Data"),
];

/// The columns of `nodepool list` without `--detail`.
pub const NODE_LIST_BRIEF_KEYS: [&str; 9] = [
    "id",
    "provider",
    "label",
    "server_id",
    "public_ipv4",
    "ipv6",
    "state",
    "age",
    "locked",
];

fn external_id_cell(external_id: &Option<ExternalId>) -> Cell {
    match external_id {
        None => Cell::Null,
        Some(ExternalId::Id(id)) => Cell::Text(id.clone()),
        Some(ExternalId::Fields(fields)) => Cell::Value(Value::Object(fields.clone())),
    }
}

fn value_cell(value: &Value) -> Cell {
    match value {
        Value::Null => Cell::Null,
        other => Cell::Value(other.clone()),
    }
}

/// Nodes in the order given (Nodepool lists them in ZooKeeper child order), all 21 columns
/// of the webapp's `/node-list`; `select(&NODE_LIST_BRIEF_KEYS)` gives `nodepool list`.
/// `locked` says whether the node's lock has contenders.
pub fn node_list(nodes: &[(NodeId, Node, bool)], now: f64) -> Table {
    let mut table = Table::new(&NODE_HEADERS);
    for (id, node, locked) in nodes {
        // A port that Python's int() rejects (a credentials dict, null) may carry secrets.
        let port = match &node.connection_port {
            Some(ConnectionPort::Port(port)) => Cell::Int(i64::from(*port)),
            _ => Cell::Text("redacted".to_owned()),
        };
        table.rows.push(vec![
            Cell::Text(id.to_string()),
            Cell::text(node.provider.as_deref()),
            Cell::List(node.node_type.clone()),
            external_id_cell(&node.external_id),
            Cell::text(node.public_ipv4.as_deref()),
            Cell::text(node.public_ipv6.as_deref()),
            Cell::Text(node.state.as_str().to_owned()),
            Cell::Text(age(now, node.state_time)),
            Cell::Text(if *locked { "locked" } else { "unlocked" }.to_owned()),
            Cell::text(node.pool.as_deref()),
            Cell::text(node.hostname.as_deref()),
            Cell::text(node.private_ipv4.as_deref()),
            Cell::text(node.az.as_deref()),
            Cell::text(node.username.as_deref()),
            port,
            Cell::text(node.launcher.as_deref()),
            Cell::text(
                node.allocated_to
                    .as_ref()
                    .map(ToString::to_string)
                    .as_deref(),
            ),
            Cell::text(node.hold_job.as_deref()),
            Cell::text(node.comment.as_deref()),
            value_cell(&node.user_data),
            value_cell(&node.driver_data),
        ]);
    }
    table
}

/// Requests sorted by id (as text, like `sorted()` of the znode names).
pub fn request_list(requests: &[(RequestId, NodeRequest)]) -> Table {
    let mut table = Table::new(&[
        Header::new("id", "Request ID"),
        Header::new("relative_priority", "Priority"),
        Header::new("state", "State"),
        Header::new("requestor", "Requestor"),
        Header::new("node_types", "Node Types"),
        Header::new("nodes", "Nodes"),
        Header::new("declined_by", "Declined By"),
        Header::new("event_id", "Event ID"),
    ]);
    let mut sorted: Vec<(String, &NodeRequest)> = requests
        .iter()
        .map(|(id, request)| (id.to_string(), request))
        .collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    for (id, request) in sorted {
        table.rows.push(vec![
            Cell::Text(id),
            Cell::Int(request.relative_priority),
            Cell::Text(request.state.as_str().to_owned()),
            Cell::text(request.requestor.as_deref()),
            Cell::List(request.node_types.clone()),
            Cell::List(request.nodes.iter().map(ToString::to_string).collect()),
            Cell::List(request.declined_by.clone()),
            Cell::text(request.event_id.as_deref()),
        ]);
    }
    table
}

/// The union of the registered pools' `supported_labels`, each once, in first-seen order
/// (Nodepool's order is a Python set's, i.e. arbitrary).
pub fn label_list<'a>(labels: impl IntoIterator<Item = &'a str>) -> Table {
    let mut table = Table::new(&[Header::new("label", "Label")]);
    let mut seen = HashSet::new();
    for label in labels {
        if seen.insert(label) {
            table.rows.push(vec![Cell::Text(label.to_owned())]);
        }
    }
    table
}

fn epoch(now: f64, time: f64) -> Cell {
    // Nodepool stores int(state_time) and formats the age of that integer.
    let seconds = time.trunc() as i64;
    Cell::Epoch {
        seconds,
        age: age(now, seconds as f64),
    }
}

/// Uploads in Nodepool's listing order: images sorted by name, builds in the order given
/// (ZooKeeper's), providers sorted, uploads in the order given.
pub(crate) fn ordered_uploads(uploads: &[UploadRecord]) -> Vec<&UploadRecord> {
    let mut build_position: BTreeMap<(&str, &BuildId), usize> = BTreeMap::new();
    for record in uploads {
        let next = build_position.len();
        build_position
            .entry((record.image.as_str(), &record.build_id))
            .or_insert(next);
    }
    let mut ordered: Vec<&UploadRecord> = uploads.iter().collect();
    ordered.sort_by_key(|r| {
        (
            r.image.as_str(),
            build_position
                .get(&(r.image.as_str(), &r.build_id))
                .copied()
                .unwrap_or(0),
            r.provider.as_str(),
        )
    });
    ordered
}

/// Every upload: images sorted by name, builds in the order given (ZooKeeper's), providers
/// sorted, uploads in the order given.
pub fn image_list(uploads: &[UploadRecord], now: f64) -> Table {
    let mut table = Table::new(&[
        Header::new("id", "Build ID"),
        Header::new("upload_id", "Upload ID"),
        Header::new("provider", "Provider"),
        Header::new("image", "Image"),
        Header::new("external_name", "Provider Image Name"),
        Header::new("external_id", "Provider Image ID"),
        Header::new("state", "State"),
        Header::new("age", "Age"),
    ]);
    for record in ordered_uploads(uploads) {
        let upload = &record.upload;
        table.rows.push(vec![
            Cell::Text(record.build_id.to_string()),
            Cell::Text(record.id.to_string()),
            Cell::Text(record.provider.clone()),
            Cell::Text(record.image.clone()),
            Cell::text(upload.external_name.as_deref()),
            Cell::text(upload.external_id.as_deref()),
            Cell::Text(upload.state.as_str().to_owned()),
            epoch(now, upload.state_time),
        ]);
    }
    table
}

/// Every build: images sorted by name, builds in the order given. The state of every build
/// of an image paused in the store shows as `paused`.
pub fn dib_image_list(builds: &[BuildRecord], paused_images: &[String], now: f64) -> Table {
    let mut table = Table::new(&[
        Header::new("id", "ID"),
        Header::new("image", "Image"),
        Header::new("builder", "Builder"),
        Header::new("formats", "Formats"),
        Header::new("state", "State"),
        Header::new("age", "Age"),
    ]);
    let mut ordered: Vec<&BuildRecord> = builds.iter().collect();
    ordered.sort_by(|a, b| a.image.cmp(&b.image));
    for record in ordered {
        let build = &record.build;
        let state = if paused_images.contains(&record.image) {
            "paused".to_owned()
        } else {
            build.state.as_str().to_owned()
        };
        table.rows.push(vec![
            Cell::Text(format!("{}-{}", record.image, record.id)),
            Cell::Text(record.image.clone()),
            Cell::text(build.builder.as_deref()),
            Cell::List(build.formats.clone()),
            Cell::Text(state),
            epoch(now, build.state_time),
        ]);
    }
    table
}

/// One row per image znode, sorted by name.
pub fn image_status(images: &[ImageStatusRecord], now: f64) -> Table {
    let mut table = Table::new(&[
        Header::new("image", "Image"),
        Header::new("paused", "Paused"),
        Header::new("build_request", "Build Request"),
        Header::new("build_request_age", "Build Request Age"),
    ]);
    let mut ordered: Vec<&ImageStatusRecord> = images.iter().collect();
    ordered.sort_by(|a, b| a.image.cmp(&b.image));
    for record in ordered {
        let (request, request_age) = match &record.build_request {
            Some(request) => (
                Cell::Text(
                    if request.pending {
                        "pending"
                    } else {
                        "building"
                    }
                    .to_owned(),
                ),
                epoch(now, request.created),
            ),
            None => (Cell::Null, Cell::Null),
        };
        table.rows.push(vec![
            Cell::Text(record.image.clone()),
            Cell::Bool(record.paused),
            request,
            request_age,
        ]);
    }
    table
}

/// `info PROVIDER`: builds with an upload directory for the provider (images and build ids
/// sorted, upload ids sorted and comma-joined) and the provider's nodes in the order given.
pub fn info(provider: &str, builds: &[ProviderBuild], nodes: &[(NodeId, Node)]) -> InfoView {
    let mut images = Table::new(&[
        Header::new("image", "Image Name"),
        Header::new("build_id", "Build ID"),
        Header::new("upload_ids", "Upload IDs"),
    ]);
    let mut ordered: Vec<&ProviderBuild> = builds.iter().collect();
    ordered.sort_by(|a, b| {
        (a.image.as_str(), a.build_id.as_str()).cmp(&(b.image.as_str(), b.build_id.as_str()))
    });
    for build in ordered {
        let mut ids: Vec<String> = build.upload_ids.iter().map(ToString::to_string).collect();
        ids.sort();
        images.rows.push(vec![
            Cell::Text(build.image.clone()),
            Cell::Text(build.build_id.to_string()),
            Cell::Text(ids.join(",")),
        ]);
    }
    let mut node_table = Table::new(&[
        Header::new("id", "ID"),
        Header::new("server_id", "Server ID"),
    ]);
    for (id, node) in nodes {
        if node.provider.as_deref() == Some(provider) {
            // This table prints raw values: a missing id shows as Python's `None`.
            let server_id = match &node.external_id {
                None => Cell::Text("None".to_owned()),
                Some(_) => external_id_cell(&node.external_id),
            };
            node_table
                .rows
                .push(vec![Cell::Text(id.to_string()), server_id]);
        }
    }
    InfoView {
        provider: provider.to_owned(),
        images,
        nodes: node_table,
    }
}

/// What `nodepool info` prints (with its final newline).
pub fn render_info(view: &InfoView) -> String {
    format!(
        "ZooKeeper data for provider {}\n\nImage data:\n{}\n\nNodes:\n{}\n",
        view.provider,
        render_text(&view.images),
        render_text(&view.nodes)
    )
}
