//! Typed snapshots of the caches: what the loops decide from.
//!
//! Every pass takes a fresh snapshot, so the loops are level-triggered: a missed event costs
//! latency, never correctness. Anything acted upon is re-read under its lock.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::Mutex;

use nodepool_model::wire;
use nodepool_model::{
    ComponentKind, ComponentRole, ImageUpload, Node, NodeId, NodeRequest, PoolDetails, RequestId,
    UploadState,
};
use nodepool_store::{TreeCache, paths};

/// A node as the cache last saw it.
#[derive(Debug, Clone)]
pub struct NodeEntry {
    pub id: NodeId,
    /// Shared with the parser's memo: a pass copies pointers, not node records.
    pub node: Arc<Node>,
    /// Someone holds or waits for the node's lock ("probably locked").
    pub locked: bool,
}

#[derive(Debug, Clone)]
pub struct RequestEntry {
    pub id: RequestId,
    pub request: NodeRequest,
}

/// A READY upload of a diskimage to a provider.
#[derive(Debug, Clone)]
pub struct ReadyUpload {
    /// The upload znode path: what a node's `image_id` holds.
    pub path: String,
    pub upload: ImageUpload,
}

/// Parses node documents only when they changed (by `mzxid`), because a pass reads every node.
#[derive(Debug, Default)]
pub struct NodeParser {
    parsed: Mutex<HashMap<NodeId, (i64, Arc<Node>)>>,
    /// The last snapshot and the cache generation it was taken at: every loop and every
    /// request task asks for nodes, and between two cache changes the answer is the same.
    last: Mutex<Option<(u64, Arc<Vec<NodeEntry>>)>>,
}

impl NodeParser {
    /// Every readable node in the cache, with whether it has lock contenders. Documents are
    /// parsed only when their `mzxid` changed since the last call.
    /// Every readable node, shared until the cache changes.
    pub fn snapshot(&self, cache: &TreeCache) -> Arc<Vec<NodeEntry>> {
        // Read before walking: if the cache moves during the walk, the next call walks again.
        let generation = *cache.generation().borrow();
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((at, nodes)) = last.as_ref()
            && *at == generation
        {
            return nodes.clone();
        }
        let nodes = Arc::new(self.nodes(cache));
        *last = Some((generation, nodes.clone()));
        nodes
    }

    pub fn nodes(&self, cache: &TreeCache) -> Vec<NodeEntry> {
        let prefix_len = paths::NODES.len() + 1;
        let mut parsed = self.parsed.lock().unwrap_or_else(|e| e.into_inner());
        let mut out: Vec<NodeEntry> = Vec::with_capacity(parsed.len());
        let mut present: Vec<NodeId> = Vec::with_capacity(parsed.len());
        cache.visit_descendants(paths::NODES, |path, entry| {
            let rest = &path[prefix_len..];
            let mut parts = rest.split('/');
            let Some(Ok(id)) = parts.next().map(NodeId::parse) else {
                return;
            };
            match (parts.next(), parts.next()) {
                (None, _) => {
                    present.push(id);
                    if entry.data.is_empty() {
                        return;
                    }
                    let node = match parsed.get(&id) {
                        Some((mzxid, node)) if *mzxid == entry.stat.mzxid => node.clone(),
                        _ => match wire::node::from_json(&entry.data) {
                            Ok(node) => {
                                let node = Arc::new(node);
                                parsed.insert(id, (entry.stat.mzxid, node.clone()));
                                node
                            }
                            Err(e) => {
                                tracing::debug!(node_id = %id, error = %e, "skipping unreadable node");
                                return;
                            }
                        },
                    };
                    out.push(NodeEntry {
                        id,
                        node,
                        locked: false,
                    });
                }
                // Paths sort the node before its lock contenders.
                (Some("lock"), Some(_)) => {
                    if let Some(last) = out.last_mut()
                        && last.id == id
                    {
                        last.locked = true;
                    }
                }
                _ => {}
            }
        });
        if parsed.len() > present.len() {
            let present: std::collections::HashSet<NodeId> = present.into_iter().collect();
            parsed.retain(|id, _| present.contains(id));
        }
        out
    }
}

/// Parses request documents only when they changed.
#[derive(Debug, Default)]
pub struct RequestParser {
    parsed: Mutex<HashMap<RequestId, (i64, NodeRequest)>>,
}

impl RequestParser {
    /// Every readable request in the cache.
    pub fn requests(&self, cache: &TreeCache) -> Vec<RequestEntry> {
        let prefix_len = paths::REQUESTS.len() + 1;
        let mut parsed = self.parsed.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = Vec::with_capacity(parsed.len());
        cache.visit_descendants(paths::REQUESTS, |path, entry| {
            let name = &path[prefix_len..];
            if name.contains('/') || entry.data.is_empty() {
                return;
            }
            let Ok(id) = RequestId::parse(name) else {
                return;
            };
            let request = match parsed.get(&id) {
                Some((mzxid, request)) if *mzxid == entry.stat.mzxid => request.clone(),
                _ => match wire::request::from_json(&entry.data) {
                    Ok(request) => {
                        parsed.insert(id.clone(), (entry.stat.mzxid, request.clone()));
                        request
                    }
                    Err(e) => {
                        tracing::debug!(request_id = %name, error = %e, "skipping unreadable request");
                        return;
                    }
                },
            };
            out.push(RequestEntry { id, request });
        });
        if parsed.len() > out.len() {
            let present: std::collections::HashSet<&RequestId> =
                out.iter().map(|r| &r.id).collect();
            parsed.retain(|id, _| present.contains(id));
        }
        out
    }
}

/// The registered pool components.
pub fn pools(cache: &TreeCache) -> Vec<PoolDetails> {
    let dir = paths::component_dir(ComponentKind::Pool.as_str());
    let mut out = Vec::new();
    for name in cache.children(&dir) {
        let Some(entry) = cache.get(&format!("{dir}/{name}")) else {
            continue;
        };
        if let Ok(component) = wire::component::from_json(ComponentKind::Pool, &name, &entry.data)
            && let ComponentRole::Pool(details) = component.role
        {
            out.push(details);
        }
    }
    out
}

/// The newest READY upload (by `state_time`) of `image` to `provider`.
pub fn latest_ready_upload(cache: &TreeCache, image: &str, provider: &str) -> Option<ReadyUpload> {
    let builds = paths::builds(image);
    let mut best: Option<ReadyUpload> = None;
    for build in cache.children(&builds) {
        if build == "lock" {
            continue;
        }
        let dir = format!("{builds}/{build}/providers/{provider}/images");
        for upload_id in cache.children(&dir) {
            if upload_id == "lock" {
                continue;
            }
            let path = format!("{dir}/{upload_id}");
            let Some(entry) = cache.get(&path) else {
                continue;
            };
            let Ok(upload) = wire::image::upload_from_json(&entry.data) else {
                continue;
            };
            if upload.state != UploadState::Ready {
                continue;
            }
            if best
                .as_ref()
                .is_none_or(|b| upload.state_time > b.upload.state_time)
            {
                best = Some(ReadyUpload { path, upload });
            }
        }
    }
    best
}
