//! `/nodepool/requests` and `/nodepool/requests-lock`: node requests and their locks.

use nodepool_model::{NodeRequest, RequestId, wire};

use crate::backend::{CreateMode, Op, StoreError, StoreResult};
use crate::lock::{Lock, LockDir, LockParent, LockWait};
use crate::paths;
use crate::store::Store;
use crate::versioned::{Versioned, children_or_empty, read};

/// Typed access to node requests; get one with [`Store::requests`].
#[derive(Debug, Clone)]
pub struct Requests {
    store: Store,
}

impl Requests {
    pub(crate) fn new(store: Store) -> Requests {
        Requests { store }
    }

    /// Every well-formed request id, in no particular order. A malformed child (Nodepool
    /// stops processing every request when one exists, spec 8.1) is skipped with a warning.
    pub async fn ids(&self) -> StoreResult<Vec<RequestId>> {
        let children = children_or_empty(self.store.backend().as_ref(), paths::REQUESTS).await?;
        Ok(children
            .iter()
            .filter_map(|c| match RequestId::parse(c) {
                Ok(id) => Some(id),
                Err(e) => {
                    tracing::warn!(znode = %c, error = %e, "ignoring a malformed node request id");
                    None
                }
            })
            .collect())
    }

    pub async fn get(&self, id: &RequestId) -> StoreResult<Option<Versioned<NodeRequest>>> {
        read(
            self.store.backend().as_ref(),
            &paths::request(id),
            wire::request::from_json,
        )
        .await
    }

    /// Submits a request under `<precedence>-<seq10>`. Nodepool's own min-ready requests
    /// are ephemeral (they vanish with the launcher that made them); Zuul's are persistent.
    pub async fn create(
        &self,
        request: &NodeRequest,
        precedence: &str,
        ephemeral: bool,
    ) -> StoreResult<RequestId> {
        let mode = if ephemeral {
            CreateMode::EphemeralSequential
        } else {
            CreateMode::PersistentSequential
        };
        let path = self
            .store
            .backend()
            .create(
                &format!("{}/{precedence}-", paths::REQUESTS),
                &wire::request::to_json(request),
                mode,
                true,
            )
            .await?;
        let name = path.rsplit('/').next().unwrap_or_default();
        RequestId::parse(name).map_err(|e| StoreError::Malformed {
            path: path.clone(),
            reason: e.to_string(),
        })
    }

    /// Writes the whole record (no version check, as Nodepool does).
    pub async fn store(&self, id: &RequestId, request: &NodeRequest) -> StoreResult<()> {
        self.store
            .backend()
            .set(&paths::request(id), &wire::request::to_json(request), None)
            .await
            .map(|_| ())
    }

    /// The operation that writes the whole record (no version check) inside a
    /// [`Store::multi`].
    pub fn store_op(&self, id: &RequestId, request: &NodeRequest) -> Op {
        Op::set(paths::request(id), wire::request::to_json(request), None)
    }

    /// [`Requests::store_op`], only if unchanged since `version` when one is given.
    pub fn store_op_if(&self, id: &RequestId, request: &NodeRequest, version: Option<i32>) -> Op {
        Op::set(paths::request(id), wire::request::to_json(request), version)
    }

    /// Writes only if unchanged since `version` (how Zuul revises `relative_priority`).
    pub async fn store_if(
        &self,
        id: &RequestId,
        request: &NodeRequest,
        version: i32,
    ) -> StoreResult<i32> {
        Ok(self
            .store
            .backend()
            .set(
                &paths::request(id),
                &wire::request::to_json(request),
                Some(version),
            )
            .await?
            .version)
    }

    /// Deletes the request; a request already gone is fine.
    pub async fn delete(&self, id: &RequestId) -> StoreResult<()> {
        match self.store.backend().delete(&paths::request(id), None).await {
            Ok(()) | Err(StoreError::NoNode(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    pub async fn lock(&self, id: &RequestId, wait: LockWait) -> StoreResult<Option<Lock>> {
        self.store.lock(&paths::request_lock(id), "", wait).await
    }

    /// [`Requests::lock`], with what the caller knows of the lock's directory.
    pub async fn lock_expecting(
        &self,
        id: &RequestId,
        wait: LockWait,
        expect: LockDir,
    ) -> StoreResult<Option<Lock>> {
        self.store
            .lock_expecting(
                &paths::request_lock(id),
                "",
                wait,
                expect,
                LockParent::Recreate,
            )
            .await
    }

    /// Names under `/nodepool/requests-lock` (request ids whose lock directory exists).
    pub async fn lock_dirs(&self) -> StoreResult<Vec<String>> {
        children_or_empty(self.store.backend().as_ref(), paths::REQUEST_LOCKS).await
    }

    /// Removes a request's lock directory (stale-lock cleanup, spec 2.14).
    pub async fn delete_lock_dir(&self, name: &str) -> StoreResult<()> {
        self.store
            .delete_recursive(&format!("{}/{name}", paths::REQUEST_LOCKS))
            .await
    }
}
