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
use nodepool_store::{Changes, Entry, TreeCache, paths, unreadable};

/// A node as the cache last saw it.
#[derive(Debug, Clone)]
pub struct NodeEntry {
    pub id: NodeId,
    /// Shared with the parser's memo: a pass copies pointers, not node records.
    pub node: Arc<Node>,
    /// Someone holds or waits for the node's lock ("probably locked").
    pub locked: bool,
    /// The node's lock directory exists (it has been locked before), so taking the lock
    /// need not check for it.
    pub lock_dir: bool,
    /// The znode's data version the cache holds.
    pub version: i32,
}

#[derive(Debug, Clone)]
pub struct RequestEntry {
    pub id: RequestId,
    /// Shared with the parser's memo: a pass copies pointers, not request records.
    pub request: Arc<NodeRequest>,
    /// The znode's data version the cache holds.
    pub version: i32,
}

/// A READY upload of a diskimage to a provider.
#[derive(Debug, Clone)]
pub struct ReadyUpload {
    /// The upload znode path: what a node's `image_id` holds.
    pub path: String,
    pub upload: ImageUpload,
}

/// Parsed records by id: the `mzxid` parsed and the record, `None` for one that cannot be
/// read (skipped, and not parsed again until it changes).
type Memo<K, V> = HashMap<K, (i64, Option<Arc<V>>)>;

/// Parses node documents only when they changed (by `mzxid`), because a pass reads every node.
#[derive(Debug, Default)]
pub struct NodeParser {
    parsed: Mutex<Memo<NodeId, Node>>,
    /// The last snapshot and the cache generation it was taken at: every loop and every
    /// request task asks for nodes, and between two cache changes the answer is the same.
    last: Mutex<Option<(u64, Arc<Vec<NodeEntry>>)>>,
}

/// Locks a std mutex, taking the data of a poisoned one (nothing here leaves it half-done).
pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl NodeParser {
    /// Every readable node in the cache (in id order), with whether it has lock contenders;
    /// shared until the cache changes. A new snapshot copies the last one and re-reads only
    /// the nodes the cache's journal names, so its cost does not grow with the nodes that
    /// did not change (a pointer copy each).
    pub fn snapshot(&self, cache: &TreeCache) -> Arc<Vec<NodeEntry>> {
        let mut last = lock(&self.last);
        if let Some((at, nodes)) = last.as_ref() {
            match cache.changes_since(*at) {
                Changes::Paths(now, paths) if paths.is_empty() => {
                    let nodes = nodes.clone();
                    *last = Some((now, nodes.clone()));
                    return nodes;
                }
                Changes::Paths(now, paths) => {
                    let nodes = Arc::new(self.apply(cache, nodes, &paths));
                    *last = Some((now, nodes.clone()));
                    return nodes;
                }
                Changes::Unknown => {}
            }
        }
        // Read before walking: if the cache moves during the walk, the next call re-reads
        // what moved.
        let generation = *cache.generation().borrow();
        let nodes = Arc::new(self.nodes(cache));
        *last = Some((generation, nodes.clone()));
        nodes
    }

    /// `previous` with the nodes under `paths` re-read from the cache.
    fn apply(
        &self,
        cache: &TreeCache,
        previous: &[NodeEntry],
        paths: &std::collections::BTreeSet<String>,
    ) -> Vec<NodeEntry> {
        let prefix_len = paths::NODES.len() + 1;
        let mut ids: Vec<NodeId> = paths
            .iter()
            .filter(|p| p.len() > prefix_len && p.starts_with(paths::NODES))
            .filter_map(|p| p[prefix_len..].split('/').next())
            .filter_map(|id| NodeId::parse(id).ok())
            .collect();
        ids.dedup();
        let mut next = previous.to_vec();
        let mut parsed = lock(&self.parsed);
        for id in ids {
            let path = paths::node(id);
            let fresh = cache.with(&path, |entry| {
                let entry = entry.filter(|e| !e.data.is_empty())?;
                Some((parse_node(&mut parsed, id, entry)?, entry.stat.version))
            });
            let lock_dir = paths::node_lock(id);
            let fresh = fresh.map(|(node, version)| NodeEntry {
                id,
                node,
                locked: cache.has_descendants(&lock_dir),
                lock_dir: cache.with(&lock_dir, |entry| entry.is_some()),
                version,
            });
            match (next.binary_search_by_key(&id, |e| e.id), fresh) {
                (Ok(at), Some(entry)) => next[at] = entry,
                (Err(at), Some(entry)) => next.insert(at, entry),
                (found, None) => {
                    if let Ok(at) = found {
                        next.remove(at);
                    }
                    parsed.remove(&id);
                }
            }
        }
        next
    }

    /// Every readable node, walking the whole cached subtree.
    pub fn nodes(&self, cache: &TreeCache) -> Vec<NodeEntry> {
        let prefix_len = paths::NODES.len() + 1;
        let mut parsed = lock(&self.parsed);
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
                    let Some(node) = parse_node(&mut parsed, id, entry) else {
                        return;
                    };
                    out.push(NodeEntry {
                        id,
                        node,
                        locked: false,
                        lock_dir: false,
                        version: entry.stat.version,
                    });
                }
                // Paths sort the node before its lock directory and contenders.
                (Some("lock"), contender) => {
                    if let Some(last) = out.last_mut()
                        && last.id == id
                    {
                        last.lock_dir = true;
                        last.locked |= contender.is_some();
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

/// The node in `entry`, parsed only if its `mzxid` moved since the memo's copy; `None` for
/// a record that cannot be read (skipped with one WARNING).
fn parse_node(parsed: &mut Memo<NodeId, Node>, id: NodeId, entry: &Entry) -> Option<Arc<Node>> {
    if let Some((mzxid, node)) = parsed.get(&id)
        && *mzxid == entry.stat.mzxid
    {
        return node.clone();
    }
    let node = match wire::node::from_json(&entry.data) {
        Ok(node) => Some(Arc::new(node)),
        Err(e) => {
            unreadable::skipped(&paths::node(id), &e);
            None
        }
    };
    parsed.insert(id, (entry.stat.mzxid, node.clone()));
    node
}

/// Calls `changed(before, after)` for every node whose record differs between two snapshots
/// (matched by id; `None` where a snapshot lacks the node). Snapshots share the records of
/// unchanged nodes, so an unchanged node costs a pointer comparison.
pub fn changed_nodes(
    before: &[NodeEntry],
    after: &[NodeEntry],
    mut changed: impl FnMut(Option<&Node>, Option<&Node>),
) {
    let (mut i, mut j) = (0, 0);
    while i < before.len() || j < after.len() {
        match (before.get(i), after.get(j)) {
            (Some(b), Some(a)) if b.id == a.id => {
                if !Arc::ptr_eq(&b.node, &a.node) {
                    changed(Some(&b.node), Some(&a.node));
                }
                i += 1;
                j += 1;
            }
            (Some(b), Some(a)) if b.id < a.id => {
                changed(Some(&b.node), None);
                i += 1;
            }
            (Some(b), None) => {
                changed(Some(&b.node), None);
                i += 1;
            }
            (_, Some(a)) => {
                changed(None, Some(&a.node));
                j += 1;
            }
            (None, None) => break,
        }
    }
}

/// Parses request documents only when they changed.
#[derive(Debug, Default)]
pub struct RequestParser {
    parsed: Mutex<Memo<RequestId, NodeRequest>>,
}

impl RequestParser {
    /// Every readable request in the cache.
    pub fn requests(&self, cache: &TreeCache) -> Vec<RequestEntry> {
        let prefix_len = paths::REQUESTS.len() + 1;
        let mut parsed = self.parsed.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = Vec::with_capacity(parsed.len());
        let mut unreadable = Vec::new();
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
                _ => {
                    let request = match wire::request::from_json(&entry.data) {
                        Ok(request) => Some(Arc::new(request)),
                        Err(e) => {
                            unreadable::skipped(path, &e);
                            None
                        }
                    };
                    parsed.insert(id.clone(), (entry.stat.mzxid, request.clone()));
                    request
                }
            };
            match request {
                Some(request) => out.push(RequestEntry {
                    id,
                    request,
                    version: entry.stat.version,
                }),
                None => unreadable.push(id),
            }
        });
        if parsed.len() > out.len() + unreadable.len() {
            let present: std::collections::HashSet<&RequestId> =
                out.iter().map(|r| &r.id).chain(&unreadable).collect();
            parsed.retain(|id, _| present.contains(id));
        }
        out
    }
}

/// The registered pool components, parsed again only when the components cache changes
/// (every pool worker's pass reads them, and they change only when a pool registers, pauses
/// or goes).
#[derive(Debug, Default)]
pub struct PoolsParser {
    last: Mutex<Option<(u64, Arc<Vec<PoolDetails>>)>>,
}

impl PoolsParser {
    pub fn pools(&self, cache: &TreeCache) -> Arc<Vec<PoolDetails>> {
        // Read before walking: if the cache moves during the walk, the next call re-reads.
        let generation = *cache.generation().borrow();
        let mut last = lock(&self.last);
        if let Some((at, pools)) = last.as_ref()
            && *at == generation
        {
            return pools.clone();
        }
        let pools = Arc::new(pools(cache));
        *last = Some((generation, pools.clone()));
        pools
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
        match wire::component::from_json(ComponentKind::Pool, &name, &entry.data) {
            Ok(component) => {
                if let ComponentRole::Pool(details) = component.role {
                    out.push(details);
                }
            }
            Err(e) if !e.is_empty_data() => unreadable::skipped(&format!("{dir}/{name}"), &e),
            Err(_) => {}
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
            if entry.data.is_empty() {
                continue;
            }
            let upload = match wire::image::upload_from_json(&entry.data) {
                Ok(upload) => upload,
                Err(e) => {
                    unreadable::skipped(&path, &e);
                    continue;
                }
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::time::Duration;

    use nodepool_model::NodeState;
    use nodepool_store::{Backend, CreateMode, SqliteBackend, SqliteOptions};

    use super::*;

    /// What the parser should show: node id -> (cores, locked).
    type Model = BTreeMap<u32, (u64, bool)>;

    fn shows(nodes: &[NodeEntry], model: &Model) -> bool {
        nodes.len() == model.len()
            && nodes.iter().all(|e| {
                let cores = e
                    .node
                    .resources
                    .as_ref()
                    .and_then(|r| r.get("cores"))
                    .and_then(|c| c.as_u64());
                model
                    .get(&e.id.sequence())
                    .is_some_and(|(c, locked)| Some(*c) == cores && *locked == e.locked)
            })
    }

    /// The snapshot built change by change from the journal ends where a full walk does,
    /// through creates, updates, lock contenders coming and going, and deletes.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn incremental_snapshots_follow_every_kind_of_change() {
        let dir = tempfile::tempdir().expect("tempdir");
        let backend: Arc<dyn Backend> = Arc::new(
            SqliteBackend::open(SqliteOptions::new(dir.path().join("nodepool.db")))
                .await
                .expect("open"),
        );
        let cache = TreeCache::start(backend.clone(), paths::NODES)
            .await
            .expect("cache");
        let parser = NodeParser::default();
        let mut model = Model::new();
        let mut generation = cache.generation();
        // A fixed pseudo-random walk over a few ids, so every kind of change meets every
        // other kind.
        let mut seed: u64 = 7;
        for round in 0..40 {
            for _ in 0..6 {
                seed = seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let id = NodeId::new(((seed >> 33) % 12) as u32 + 1);
                let path = paths::node(id);
                let contender = format!("{}/x__lock__0000000000", paths::node_lock(id));
                let cores = (seed >> 40) % 64;
                match ((seed >> 20) % 4, model.get(&id.sequence()).copied()) {
                    (0 | 1, current) => {
                        let mut node = Node::new(NodeState::Ready, 1.0);
                        node.resources = Some(serde_json::Map::from_iter([(
                            "cores".to_string(),
                            serde_json::Value::from(cores),
                        )]));
                        let data = wire::node::to_json(&node);
                        match current {
                            Some(_) => backend.set(&path, &data, None).await.map(|_| ()),
                            None => backend
                                .create(&path, &data, CreateMode::Persistent, true)
                                .await
                                .map(|_| ()),
                        }
                        .expect("write node");
                        let locked = current.is_some_and(|(_, l)| l);
                        model.insert(id.sequence(), (cores, locked));
                    }
                    (2, Some((c, false))) => {
                        backend
                            .create(&contender, b"", CreateMode::Persistent, true)
                            .await
                            .expect("lock");
                        model.insert(id.sequence(), (c, true));
                    }
                    (2, Some((c, true))) => {
                        backend.delete(&contender, None).await.expect("unlock");
                        model.insert(id.sequence(), (c, false));
                    }
                    (3, Some((_, locked))) => {
                        if locked {
                            backend.delete(&contender, None).await.expect("unlock");
                        }
                        let lock_dir = paths::node_lock(id);
                        if backend.get(&lock_dir).await.expect("get").is_some() {
                            backend.delete(&lock_dir, None).await.expect("lock dir");
                        }
                        backend.delete(&path, None).await.expect("delete");
                        model.remove(&id.sequence());
                    }
                    _ => {}
                }
            }
            let caught_up = tokio::time::timeout(Duration::from_secs(20), async {
                while !shows(&parser.snapshot(&cache), &model) {
                    generation.changed().await.expect("cache running");
                }
            })
            .await;
            assert!(
                caught_up.is_ok(),
                "round {round}: snapshot {:?} never showed {model:?}",
                parser
                    .snapshot(&cache)
                    .iter()
                    .map(|e| (e.id, e.locked))
                    .collect::<Vec<_>>()
            );
            assert!(shows(&NodeParser::default().nodes(&cache), &model));
        }
        assert!(!model.is_empty() && lock(&parser.parsed).len() == model.len());
    }
}
