//! Our `--json` forms (and the webapp's `/api/` data): each object's full stored record,
//! every key exactly as Nodepool writes it, plus the ids that live in its znode path, so
//! scripts never scrape tables.

use nodepool_model::wire;
use nodepool_model::{Node, NodeId, NodeRequest, RequestId};
use serde_json::{Map, Value};

use super::views::{BuildRecord, ImageStatusRecord, InfoView, UploadRecord, ordered_uploads};

/// The stored document as a JSON object (the wire writers always produce one).
fn document(bytes: &[u8]) -> Map<String, Value> {
    match serde_json::from_slice(bytes) {
        Ok(Value::Object(object)) => object,
        _ => Map::new(),
    }
}

/// `leading` keys first, then the document's keys in their stored order.
fn with_leading(leading: Vec<(&str, Value)>, document: Map<String, Value>) -> Map<String, Value> {
    let mut object: Map<String, Value> = leading
        .into_iter()
        .map(|(key, value)| (key.to_owned(), value))
        .collect();
    for (key, value) in document {
        object.insert(key, value);
    }
    object
}

/// The keys of a node record that may hold a credentials object (the Kubernetes drivers
/// store the service account's token there).
const PORT_KEYS: [&str; 2] = ["connection_port", "ssh_port"];

/// One node: `id`, every key of its record, then `locked`.
pub fn node(id: NodeId, node: &Node, locked: Option<bool>) -> Value {
    let mut object = with_leading(
        vec![("id", Value::String(id.to_string()))],
        document(&wire::node::to_json(node)),
    );
    if let Some(locked) = locked {
        object.insert("locked".to_owned(), Value::Bool(locked));
    }
    Value::Object(object)
}

/// `node` for web clients: a port that is not a number is shown as `"redacted"`, as
/// Nodepool's own node tables show it. It is the credentials object of a Kubernetes node,
/// and web clients are not trusted with it (docs/security.md); the CLI, run by the operator
/// who can read the store anyway, prints the whole record.
pub fn redacted(mut node: Value) -> Value {
    for key in PORT_KEYS {
        if let Some(value) = node.get_mut(key)
            && value.is_object()
        {
            *value = Value::String("redacted".to_owned());
        }
    }
    node
}

/// `nodepool list --json`: nodes in the order given.
pub fn nodes(nodes: &[(NodeId, Node, bool)]) -> Value {
    Value::Array(
        nodes
            .iter()
            .map(|(id, n, locked)| node(*id, n, Some(*locked)))
            .collect(),
    )
}

/// `/api/nodes`: [`nodes`] with credentials redacted.
pub fn nodes_for_web(nodes: &[(NodeId, Node, bool)]) -> Value {
    Value::Array(
        nodes
            .iter()
            .map(|(id, n, locked)| redacted(node(*id, n, Some(*locked))))
            .collect(),
    )
}

/// `nodepool request-list --json`: `id` then every key, sorted by id like the table.
pub fn requests(requests: &[(RequestId, NodeRequest)]) -> Value {
    let mut sorted: Vec<&(RequestId, NodeRequest)> = requests.iter().collect();
    sorted.sort_by_key(|(id, _)| id.to_string());
    Value::Array(
        sorted
            .into_iter()
            .map(|(id, request)| {
                Value::Object(with_leading(
                    vec![("id", Value::String(id.to_string()))],
                    document(&wire::request::to_json(request)),
                ))
            })
            .collect(),
    )
}

/// `nodepool dib-image-list --json`: `image`, `id` (the build id), every key of the build
/// record, and `paused` (the image's pause flag in the store). Images sorted by name.
pub fn builds(builds: &[BuildRecord], paused_images: &[String]) -> Value {
    let mut sorted: Vec<&BuildRecord> = builds.iter().collect();
    sorted.sort_by(|a, b| a.image.cmp(&b.image));
    Value::Array(
        sorted
            .into_iter()
            .map(|record| {
                let mut object = with_leading(
                    vec![
                        ("image", Value::String(record.image.clone())),
                        ("id", Value::String(record.id.to_string())),
                    ],
                    document(&wire::image::build_to_json(&record.build)),
                );
                object.insert(
                    "paused".to_owned(),
                    Value::Bool(paused_images.contains(&record.image)),
                );
                Value::Object(object)
            })
            .collect(),
    )
}

/// One upload: `image`, `build_id`, `provider`, `id` (the upload id), every key.
pub fn upload(record: &UploadRecord) -> Value {
    Value::Object(with_leading(
        vec![
            ("image", Value::String(record.image.clone())),
            ("build_id", Value::String(record.build_id.to_string())),
            ("provider", Value::String(record.provider.clone())),
            ("id", Value::String(record.id.to_string())),
        ],
        document(&wire::image::upload_to_json(&record.upload)),
    ))
}

/// `nodepool image-list --json`: uploads in the table's order.
pub fn uploads(uploads: &[UploadRecord]) -> Value {
    Value::Array(ordered_uploads(uploads).into_iter().map(upload).collect())
}

/// `nodepool image-status --json`: the webapp's row objects (`image`, `paused`,
/// `build_request`, `build_request_age`) plus `build_request_time`, the request's exact
/// creation time. Sorted by image.
pub fn image_status(images: &[ImageStatusRecord]) -> Value {
    let mut sorted: Vec<&ImageStatusRecord> = images.iter().collect();
    sorted.sort_by(|a, b| a.image.cmp(&b.image));
    Value::Array(
        sorted
            .into_iter()
            .map(|record| {
                let (state, seconds, time) = match &record.build_request {
                    Some(request) => (
                        Value::from(if request.pending {
                            "pending"
                        } else {
                            "building"
                        }),
                        Value::from(request.created.trunc() as i64),
                        Value::from(request.created),
                    ),
                    None => (Value::Null, Value::Null, Value::Null),
                };
                let mut object = Map::new();
                object.insert("image".to_owned(), Value::String(record.image.clone()));
                object.insert("paused".to_owned(), Value::Bool(record.paused));
                object.insert("build_request".to_owned(), state);
                object.insert("build_request_age".to_owned(), seconds);
                object.insert("build_request_time".to_owned(), time);
                Value::Object(object)
            })
            .collect(),
    )
}

/// `nodepool info PROVIDER --json`: `{"provider", "builds": [{"image", "build_id",
/// "upload_ids"}], "nodes": [full node records]}`.
pub fn info(view: &InfoView, nodes: &[(NodeId, Node)]) -> Value {
    let builds: Vec<Value> = view
        .images
        .rows
        .iter()
        .map(|row| {
            let text = |i: usize| row.get(i).map(super::Cell::to_text).unwrap_or_default();
            let upload_ids: Vec<Value> = text(2)
                .split(',')
                .filter(|id| !id.is_empty())
                .map(|id| Value::String(id.to_owned()))
                .collect();
            let mut object = Map::new();
            object.insert("image".to_owned(), Value::String(text(0)));
            object.insert("build_id".to_owned(), Value::String(text(1)));
            object.insert("upload_ids".to_owned(), Value::Array(upload_ids));
            Value::Object(object)
        })
        .collect();
    let node_records: Vec<Value> = nodes
        .iter()
        .filter(|(_, n)| n.provider.as_deref() == Some(view.provider.as_str()))
        .map(|(id, n)| node(*id, n, None))
        .collect();
    let mut object = Map::new();
    object.insert("provider".to_owned(), Value::String(view.provider.clone()));
    object.insert("builds".to_owned(), Value::Array(builds));
    object.insert("nodes".to_owned(), Value::Array(node_records));
    Value::Object(object)
}

#[cfg(test)]
mod tests {
    use super::*;
    use nodepool_model::{ConnectionPort, NodeState};
    use serde_json::json;

    #[test]
    fn credentials_in_a_port_are_redacted_and_numbers_kept() {
        let mut credentials = Node::new(NodeState::Ready, 1.0);
        let secret = json!({"token": "s3cret", "host": "https://k8s", "namespace": "ns"});
        credentials.connection_port = Some(ConnectionPort::Credentials(
            secret.as_object().cloned().expect("object"),
        ));
        let id = NodeId::parse("0000000001").expect("id");
        let full = node(id, &credentials, Some(false));
        assert_eq!(
            full["connection_port"]["token"], "s3cret",
            "the CLI's full record"
        );
        let shown = redacted(full);
        assert_eq!(shown["connection_port"], "redacted");
        assert_eq!(shown["ssh_port"], "redacted");
        assert!(!shown.to_string().contains("s3cret"));

        let mut plain = Node::new(NodeState::Ready, 1.0);
        plain.connection_port = Some(ConnectionPort::Port(2222));
        let shown = redacted(node(id, &plain, None));
        assert_eq!(shown["connection_port"], 2222);
        assert_eq!(shown["ssh_port"], 2222);
    }
}
