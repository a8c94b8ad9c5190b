//! A backend wrapper that shows this process's own writes to the caches following the store.
//!
//! A [`TreeCache`](crate::TreeCache) learns of a change from a watch event that names only the
//! path, and reads the znode to see what changed: one round trip per change. For the changes
//! this process made itself the data is already known, so the wrapper puts each successful
//! `set` (alone or in a transaction) into every cache that covers the path, as soon as the
//! store answers. The cache then counts the path's change events and skips the read for each
//! event its entry's data version already covers (see `cache.rs`).
//!
//! ZooKeeper sends a change's watch event before the answer to the write that made it, so
//! the cache usually hears of an own write before the writer does: it asks [`WriteThrough::settle`]
//! to wait (briefly) for the writes to those paths still in flight before deciding to read.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::watch;

use crate::backend::{
    Backend, CreateMode, Op, OpResult, SessionState, Stat, StoreResult, Watch, covers,
};
use crate::cache::{Tree, note_write};

/// Forwards every call to the wrapped backend; see the module documentation.
#[derive(Debug)]
pub struct WriteThrough {
    inner: Arc<dyn Backend>,
    /// `(root, tree)` of each cache started on this backend; dropped caches are pruned.
    caches: Mutex<Vec<(String, Weak<RwLock<Tree>>)>>,
    /// Paths with a `set` sent and not answered yet, and how many.
    in_flight: Mutex<HashMap<String, usize>>,
    /// Bumped whenever a write is answered (or abandoned).
    settled: watch::Sender<u64>,
}

/// Marks paths in flight for as long as it lives (a cancelled write clears them too).
struct InFlight<'a> {
    layer: &'a WriteThrough,
    paths: Vec<String>,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        if self.paths.is_empty() {
            return;
        }
        {
            let mut in_flight = self
                .layer
                .in_flight
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            for path in &self.paths {
                if let Some(count) = in_flight.get_mut(path) {
                    *count -= 1;
                    if *count == 0 {
                        in_flight.remove(path);
                    }
                }
            }
        }
        self.layer.settled.send_modify(|n| *n = n.wrapping_add(1));
    }
}

impl WriteThrough {
    pub fn new(inner: Arc<dyn Backend>) -> WriteThrough {
        WriteThrough {
            inner,
            caches: Mutex::new(Vec::new()),
            in_flight: Mutex::new(HashMap::new()),
            settled: watch::channel(0).0,
        }
    }

    fn begin(&self, paths: Vec<String>) -> InFlight<'_> {
        let mut in_flight = self.in_flight.lock().unwrap_or_else(|e| e.into_inner());
        for path in &paths {
            *in_flight.entry(path.clone()).or_default() += 1;
        }
        InFlight { layer: self, paths }
    }

    /// Whether this process has a write to `path` sent and not answered.
    pub(crate) fn in_flight(&self, path: &str) -> bool {
        let in_flight = self.in_flight.lock().unwrap_or_else(|e| e.into_inner());
        in_flight.contains_key(path)
    }

    /// Waits while `waiting()` holds, re-checking whenever one of this process's writes is
    /// answered, for at most `limit`.
    pub(crate) async fn settle(&self, mut waiting: impl FnMut() -> bool, limit: Duration) {
        let mut settled = self.settled.subscribe();
        let _ = tokio::time::timeout(limit, async {
            while waiting() {
                if settled.changed().await.is_err() {
                    return;
                }
            }
        })
        .await;
    }

    /// Called by a cache starting on this backend.
    pub(crate) fn follow(&self, root: &str, tree: Weak<RwLock<Tree>>) {
        let mut caches = self.caches.lock().unwrap_or_else(|e| e.into_inner());
        caches.retain(|(_, tree)| tree.strong_count() > 0);
        caches.push((root.to_string(), tree));
    }

    fn wrote(&self, path: &str, data: &[u8], stat: &Stat) {
        let caches = self.caches.lock().unwrap_or_else(|e| e.into_inner());
        for (root, tree) in caches.iter() {
            if covers(root, path)
                && let Some(tree) = tree.upgrade()
            {
                note_write(&tree, path, data, stat);
            }
        }
    }
}

#[async_trait]
impl Backend for WriteThrough {
    async fn get(&self, path: &str) -> StoreResult<Option<(Vec<u8>, Stat)>> {
        self.inner.get(path).await
    }

    async fn exists(&self, path: &str) -> StoreResult<Option<Stat>> {
        self.inner.exists(path).await
    }

    async fn create(
        &self,
        path: &str,
        data: &[u8],
        mode: CreateMode,
        make_parents: bool,
    ) -> StoreResult<String> {
        self.inner.create(path, data, mode, make_parents).await
    }

    async fn set(&self, path: &str, data: &[u8], version: Option<i32>) -> StoreResult<Stat> {
        let _in_flight = self.begin(vec![path.to_string()]);
        let stat = self.inner.set(path, data, version).await?;
        self.wrote(path, data, &stat);
        Ok(stat)
    }

    async fn delete(&self, path: &str, version: Option<i32>) -> StoreResult<()> {
        self.inner.delete(path, version).await
    }

    async fn multi(&self, ops: Vec<Op>) -> StoreResult<Vec<OpResult>> {
        // The data of each `set` is needed after the call; only those are kept.
        let sets: Vec<Option<(String, Vec<u8>)>> = ops
            .iter()
            .map(|op| match op {
                Op::Set { path, data, .. } => Some((path.clone(), data.clone())),
                _ => None,
            })
            .collect();
        let _in_flight = self.begin(sets.iter().flatten().map(|(p, _)| p.clone()).collect());
        let results = self.inner.multi(ops).await?;
        for (set, result) in sets.iter().zip(&results) {
            if let (Some((path, data)), OpResult::Set(stat)) = (set, result) {
                self.wrote(path, data, stat);
            }
        }
        Ok(results)
    }

    async fn children(&self, path: &str) -> StoreResult<Vec<String>> {
        self.inner.children(path).await
    }

    async fn watch(&self, prefix: &str) -> StoreResult<Watch> {
        self.inner.watch(prefix).await
    }

    async fn wait_deleted(&self, path: &str, timeout: Option<Duration>) -> StoreResult<bool> {
        self.inner.wait_deleted(path, timeout).await
    }

    fn session_state(&self) -> watch::Receiver<SessionState> {
        self.inner.session_state()
    }

    fn session_id(&self) -> i64 {
        self.inner.session_id()
    }

    async fn close(&self) -> StoreResult<()> {
        self.inner.close().await
    }

    fn write_through(&self) -> Option<&WriteThrough> {
        Some(self)
    }
}
