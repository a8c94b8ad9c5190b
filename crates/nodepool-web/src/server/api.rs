//! Our JSON API under `/api/`: the same data as Nodepool's endpoints, as full records (the
//! CLI's `--json` forms, [`crate::status::records`]) rather than table rows, never cached.
//!
//! | Path | Body |
//! |---|---|
//! | `/api/nodes` | every node's record with `id` and `locked` (`nodepool list --json`) |
//! | `/api/requests` | every request with `id`, sorted (`request-list --json`) |
//! | `/api/labels` | each label: `name`, `min_ready`, node counts, `registered` |
//! | `/api/images` | every upload with its path ids (`image-list --json`) |
//! | `/api/builds` | every build with its path ids and `paused` (`dib-image-list --json`) |
//! | `/api/image-status` | pause flags and build requests (`image-status --json`) |

use axum::body::Body;
use axum::http::{StatusCode, header};
use axum::response::Response;
use nodepool_model::{Node, NodeId, NodeState};
use serde_json::{Map, Value, json};

use super::{LabelSetting, WebState, internal_error};
use crate::gather;
use crate::status::{records, to_python_json_text};

/// The answer for `/api/<rest>`, `None` for an unknown `rest`.
pub(super) async fn answer(state: &WebState, rest: &str) -> Option<Response> {
    let store = state.store();
    let result = match rest {
        "nodes" => gather::nodes(store)
            .await
            .map(|n| records::nodes_for_web(&n)),
        "requests" => gather::requests(store).await.map(|r| records::requests(&r)),
        "labels" => match (gather::nodes(store).await, gather::pool_labels(store).await) {
            (Ok(nodes), Ok(pool_labels)) => Ok(labels(state.labels(), &pool_labels, &nodes)),
            (Err(e), _) | (_, Err(e)) => Err(e),
        },
        "images" => gather::images(store)
            .await
            .map(|i| records::uploads(&i.uploads)),
        "builds" => gather::images(store)
            .await
            .map(|i| records::builds(&i.builds, &i.paused)),
        "image-status" => gather::images(store)
            .await
            .map(|i| records::image_status(&i.status)),
        "providers" => Ok(providers(state.launcher())),
        "workers" => Ok(workers(state.launcher())),
        _ => return None,
    };
    Some(match result {
        Ok(value) => json_response(StatusCode::OK, &value),
        Err(e) => {
            tracing::error!(path = rest, error = %e, "webapp cannot read the store");
            internal_error()
        }
    })
}

fn json_response(status: StatusCode, value: &Value) -> Response {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::CACHE_CONTROL, "no-cache")
        .header(header::ACCESS_CONTROL_ALLOW_ORIGIN, "*")
        .body(Body::from(to_python_json_text(value)))
        .unwrap_or_else(|_| internal_error())
}

/// Labels of the configuration (in its order), then labels only registered pools offer.
/// Counts are of nodes carrying the label: `ready` (unallocated and unlocked READY nodes, the
/// ones min-ready counts), `building`, `in_use`, `total`.
pub(super) fn labels(
    configured: &[LabelSetting],
    pool_labels: &[String],
    nodes: &[(NodeId, Node, bool)],
) -> Value {
    let mut names: Vec<(&str, Option<u32>)> = configured
        .iter()
        .map(|label| (label.name.as_str(), Some(label.min_ready)))
        .collect();
    for label in pool_labels {
        if !names.iter().any(|(name, _)| name == label) {
            names.push((label.as_str(), None));
        }
    }
    let rows = names
        .into_iter()
        .map(|(name, min_ready)| {
            let carrying = || {
                nodes
                    .iter()
                    .filter(move |(_, node, _)| node.node_type.iter().any(|t| t == name))
            };
            let count = |state: NodeState| carrying().filter(|(_, n, _)| n.state == state).count();
            let ready = carrying()
                .filter(|(_, n, locked)| {
                    n.state == NodeState::Ready && n.allocated_to.is_none() && !locked
                })
                .count();
            let mut object = Map::new();
            object.insert("name".to_owned(), Value::from(name));
            object.insert(
                "min_ready".to_owned(),
                min_ready.map_or(Value::Null, Value::from),
            );
            object.insert("ready".to_owned(), Value::from(ready));
            object.insert(
                "building".to_owned(),
                Value::from(count(NodeState::Building)),
            );
            object.insert("in_use".to_owned(), Value::from(count(NodeState::InUse)));
            object.insert("total".to_owned(), Value::from(carrying().count()));
            object.insert(
                "registered".to_owned(),
                Value::Bool(pool_labels.iter().any(|l| l == name)),
            );
            Value::Object(object)
        })
        .collect();
    Value::Array(rows)
}

/// Quota use per provider and pool, from the launcher in this process (empty without one).
fn providers(observed: Option<nodepool_launcher::Observations>) -> Value {
    let Some(observed) = observed else {
        return json!([]);
    };
    Value::Array(
        observed
            .providers
            .iter()
            .map(|p| {
                json!({
                    "name": p.name,
                    "driver": p.driver,
                    "cloud_limits": p.cloud_limits,
                    "pools": p.pools.iter().map(|pool| json!({
                        "name": pool.name,
                        "limits": pool.limits,
                        "used": pool.used,
                    })).collect::<Vec<_>>(),
                })
            })
            .collect(),
    )
}

/// Each launcher loop's state, passes and last error.
fn workers(observed: Option<nodepool_launcher::Observations>) -> Value {
    let Some(observed) = observed else {
        return json!([]);
    };
    Value::Array(
        observed
            .workers
            .iter()
            .map(|w| {
                json!({
                    "name": w.name,
                    "state": format!("{:?}", w.state).to_lowercase(),
                    "passes": w.passes,
                    "errors": w.errors,
                    "last_error": w.last_error,
                })
            })
            .collect(),
    )
}
