//! A backend wrapper that counts writes, so the bench can tell the load generator's writes
//! from the launcher's.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use nodepool_store::{Backend, CreateMode, Op, OpResult, SessionState, Stat, StoreResult, Watch};
use tokio::sync::watch;

#[derive(Debug)]
pub struct Counting {
    inner: Arc<dyn Backend>,
    pub writes: AtomicU64,
}

impl Counting {
    pub fn new(inner: Arc<dyn Backend>) -> Counting {
        Counting {
            inner,
            writes: AtomicU64::new(0),
        }
    }

    pub fn writes(&self) -> u64 {
        self.writes.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl Backend for Counting {
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
        self.writes.fetch_add(1, Ordering::SeqCst);
        self.inner.create(path, data, mode, make_parents).await
    }

    async fn set(&self, path: &str, data: &[u8], version: Option<i32>) -> StoreResult<Stat> {
        self.writes.fetch_add(1, Ordering::SeqCst);
        self.inner.set(path, data, version).await
    }

    async fn delete(&self, path: &str, version: Option<i32>) -> StoreResult<()> {
        self.writes.fetch_add(1, Ordering::SeqCst);
        self.inner.delete(path, version).await
    }

    /// One transaction, one write (one zxid), however many operations it holds.
    async fn multi(&self, ops: Vec<Op>) -> StoreResult<Vec<OpResult>> {
        self.writes.fetch_add(1, Ordering::SeqCst);
        self.inner.multi(ops).await
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
}
