//! An in-process copy of a subtree kept current by one persistent recursive watch.
//!
//! This is how the launcher and its webapp read nodes, requests and images without a store
//! round trip per look (spec 1.12). The watch is registered before the first full walk, so
//! no change falls between them; a `Resync` (reconnect, new session, pruned change log)
//! re-walks the whole subtree. Readers that act on what they see still re-check under the
//! real lock: the cache may lag by one event.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::backend::{Backend, Stat, StoreError, StoreResult, WatchEvent, join};

/// One cached znode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub data: Vec<u8>,
    pub stat: Stat,
}

type Tree = BTreeMap<String, Entry>;

/// A cached subtree; dropping it stops following changes.
#[derive(Debug)]
pub struct TreeCache {
    root: String,
    /// Written only by the follower task; readers take short read locks and never await.
    tree: Arc<RwLock<Tree>>,
    /// Counts applied changes so level-triggered loops can wait for "something changed".
    generation: watch::Receiver<u64>,
    follower: JoinHandle<()>,
}

impl Drop for TreeCache {
    fn drop(&mut self) {
        self.follower.abort();
    }
}

async fn walk(backend: &dyn Backend, root: &str) -> StoreResult<Tree> {
    let mut tree = Tree::new();
    let mut pending = vec![root.to_string()];
    while let Some(path) = pending.pop() {
        let Some((data, stat)) = backend.get(&path).await? else {
            continue;
        };
        if stat.num_children > 0 {
            match backend.children(&path).await {
                Ok(children) => pending.extend(children.iter().map(|c| join(&path, c))),
                Err(StoreError::NoNode(_)) => continue,
                Err(e) => return Err(e),
            }
        }
        tree.insert(path, Entry { data, stat });
    }
    Ok(tree)
}

impl TreeCache {
    /// Loads the subtree under `root` (which may not exist yet) and follows it.
    pub async fn start(backend: Arc<dyn Backend>, root: &str) -> StoreResult<TreeCache> {
        let mut watch = backend.watch(root).await?;
        let tree = Arc::new(RwLock::new(walk(backend.as_ref(), root).await?));
        let (generation_tx, generation) = watch::channel(0u64);
        let follower = {
            let tree = tree.clone();
            let root = root.to_string();
            tokio::spawn(async move {
                while let Some(event) = watch.events.recv().await {
                    // Everything already queued is applied as one batch: one read per
                    // changed path, issued together, so a busy subtree does not make the
                    // cache fall further and further behind one round trip at a time.
                    let mut batch = vec![event];
                    while batch.len() < MAX_BATCH
                        && let Ok(event) = watch.events.try_recv()
                    {
                        batch.push(event);
                    }
                    if let Err(e) = apply_batch(&backend, &root, &tree, batch).await {
                        tracing::warn!(root, error = %e, "cache update failed; re-reading the subtree");
                        if let Err(e) =
                            apply_batch(&backend, &root, &tree, vec![WatchEvent::Resync]).await
                        {
                            tracing::warn!(root, error = %e, "cache resync failed");
                        }
                    }
                    generation_tx.send_modify(|g| *g += 1);
                }
            })
        };
        Ok(TreeCache {
            root: root.to_string(),
            tree,
            generation,
            follower,
        })
    }

    pub fn root(&self) -> &str {
        &self.root
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Tree> {
        self.tree.read().unwrap_or_else(|e| e.into_inner())
    }

    pub fn get(&self, path: &str) -> Option<Entry> {
        self.read().get(path).cloned()
    }

    /// Names of the cached direct children of `path`.
    pub fn children(&self, path: &str) -> Vec<String> {
        let prefix = if path == "/" {
            "/".to_string()
        } else {
            format!("{path}/")
        };
        self.read()
            .range(prefix.clone()..)
            .take_while(|(p, _)| p.starts_with(&prefix))
            .filter_map(|(p, _)| {
                let rest = &p[prefix.len()..];
                (!rest.is_empty() && !rest.contains('/')).then(|| rest.to_string())
            })
            .collect()
    }

    /// Every cached znode strictly under `path`, with its path.
    pub fn descendants(&self, path: &str) -> Vec<(String, Entry)> {
        let prefix = format!("{path}/");
        self.read()
            .range(prefix.clone()..)
            .take_while(|(p, _)| p.starts_with(&prefix))
            .map(|(p, e)| (p.clone(), e.clone()))
            .collect()
    }

    /// Calls `visit` for every cached znode strictly under `path`, in path order, without
    /// copying: for readers that only parse what changed. `visit` runs under the cache's read
    /// lock, so it must be quick and must not block.
    pub fn visit_descendants(&self, path: &str, mut visit: impl FnMut(&str, &Entry)) {
        let prefix = format!("{path}/");
        for (p, e) in self
            .read()
            .range(prefix.clone()..)
            .take_while(|(p, _)| p.starts_with(&prefix))
        {
            visit(p, e);
        }
    }

    /// Changes whenever the cache applied an event; `changed().await` to wait for one.
    pub fn generation(&self) -> watch::Receiver<u64> {
        self.generation.clone()
    }
}

/// The most events applied as one batch (and so the most reads in flight at once).
const MAX_BATCH: usize = 256;

/// Applies a batch of events in order of arrival. A `Resync` anywhere re-walks the subtree,
/// which covers every event before it (and after it: the walk starts once all arrived). Otherwise
/// each path's last event decides: deleted paths are removed, created or changed ones are
/// read once, all reads in flight together. A read returns the current state, which is at
/// least as new as the event that caused it, so coalescing loses nothing.
async fn apply_batch(
    backend: &Arc<dyn Backend>,
    root: &str,
    tree: &RwLock<Tree>,
    batch: Vec<WatchEvent>,
) -> StoreResult<()> {
    if batch.iter().any(|e| matches!(e, WatchEvent::Resync)) {
        let fresh = walk(backend.as_ref(), root).await?;
        *tree.write().unwrap_or_else(|e| e.into_inner()) = fresh;
        return Ok(());
    }
    let mut last: BTreeMap<String, bool> = BTreeMap::new();
    for event in batch {
        match event {
            WatchEvent::Created(path) | WatchEvent::Changed(path) => {
                last.insert(path, true);
            }
            WatchEvent::Deleted(path) => {
                last.insert(path, false);
            }
            WatchEvent::Resync => {}
        }
    }
    let mut reads = tokio::task::JoinSet::new();
    for (path, exists) in &last {
        if *exists {
            let backend = backend.clone();
            let path = path.clone();
            reads.spawn(async move {
                let current = backend.get(&path).await;
                (path, current)
            });
        }
    }
    let mut read = Vec::with_capacity(reads.len());
    while let Some(joined) = reads.join_next().await {
        let (path, current) = joined.map_err(|e| StoreError::Backend(e.to_string()))?;
        read.push((path, current?));
    }
    let mut tree = tree.write().unwrap_or_else(|e| e.into_inner());
    for (path, exists) in last {
        if !exists {
            tree.remove(&path);
        }
    }
    for (path, current) in read {
        match current {
            // Ignore what is older than what we hold (events and reads can cross).
            Some((data, stat)) => {
                if tree
                    .get(&path)
                    .is_none_or(|old| old.stat.mzxid <= stat.mzxid)
                {
                    tree.insert(path, Entry { data, stat });
                }
            }
            None => {
                tree.remove(&path);
            }
        }
    }
    Ok(())
}
