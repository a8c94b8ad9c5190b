//! The `Store` handle: one backend, and the operations every view is built from.

use std::sync::Arc;

use crate::backend::{Backend, Op, OpResult, StoreError, StoreResult, join};
use crate::components::Components;
use crate::images::Images;
use crate::lock::{self, Lock, LockWait};
use crate::nodes::Nodes;
use crate::requests::Requests;
use crate::write_through::WriteThrough;

/// A handle on the store; cheap to clone and share between tasks.
#[derive(Debug, Clone)]
pub struct Store {
    backend: Arc<dyn Backend>,
}

impl Store {
    /// A store on `backend`, behind a [`WriteThrough`] layer (unless it is one already), so
    /// the caches started on [`Store::backend`] see this process's writes without reading
    /// them back.
    pub fn new(backend: Arc<dyn Backend>) -> Store {
        let backend: Arc<dyn Backend> = if backend.write_through().is_some() {
            backend
        } else {
            Arc::new(WriteThrough::new(backend))
        };
        Store { backend }
    }

    pub fn backend(&self) -> &Arc<dyn Backend> {
        &self.backend
    }

    /// Runs `ops` as one transaction (see [`Backend::multi`]).
    pub async fn multi(&self, ops: Vec<Op>) -> StoreResult<Vec<OpResult>> {
        self.backend.multi(ops).await
    }

    /// kazoo `ensure_path`: creates missing ancestors and `path` as empty persistent znodes.
    pub async fn ensure_path(&self, path: &str) -> StoreResult<()> {
        lock::ensure_path(self.backend.as_ref(), path).await
    }

    /// Deletes `path` and everything under it, children first (kazoo `delete(recursive)`).
    /// A missing path is not an error.
    pub async fn delete_recursive(&self, path: &str) -> StoreResult<()> {
        let mut stack = vec![(path.to_string(), false)];
        while let Some((current, expanded)) = stack.pop() {
            if expanded {
                match self.backend.delete(&current, None).await {
                    Ok(()) | Err(StoreError::NoNode(_)) => {}
                    Err(e) => return Err(e),
                }
                continue;
            }
            let children = match self.backend.children(&current).await {
                Ok(children) => children,
                Err(StoreError::NoNode(_)) => continue,
                Err(e) => return Err(e),
            };
            stack.push((current.clone(), true));
            for child in children {
                stack.push((join(&current, &child), false));
            }
        }
        Ok(())
    }

    /// Takes the kazoo lock on `dir` (see [`lock::acquire`]).
    pub async fn lock(
        &self,
        dir: &str,
        identifier: &str,
        wait: LockWait,
    ) -> StoreResult<Option<Lock>> {
        lock::acquire(self.backend.clone(), dir, identifier, wait).await
    }

    /// [`Store::lock`], with what the caller knows of the lock's directory and whether
    /// its parent may be re-created (see [`lock::acquire_expecting`]).
    pub async fn lock_expecting(
        &self,
        dir: &str,
        identifier: &str,
        wait: LockWait,
        expect: lock::LockDir,
        parent: lock::LockParent,
    ) -> StoreResult<Option<Lock>> {
        lock::acquire_expecting(self.backend.clone(), dir, identifier, wait, expect, parent).await
    }

    pub fn nodes(&self) -> Nodes {
        Nodes::new(self.clone())
    }

    pub fn requests(&self) -> Requests {
        Requests::new(self.clone())
    }

    pub fn images(&self) -> Images {
        Images::new(self.clone())
    }

    pub fn components(&self) -> Components {
        Components::new(self.clone())
    }

    /// Joins the stats leader election (a kazoo Election is a kazoo Lock with identifier
    /// `<hostname>-<pid>`); the winner holds the returned lock until it stops.
    pub async fn stats_election(
        &self,
        identifier: &str,
        wait: LockWait,
    ) -> StoreResult<Option<Lock>> {
        self.lock(crate::paths::STATS_ELECTION, identifier, wait)
            .await
    }

    /// Contender names of the lock on `dir`, holder first.
    pub async fn lock_contenders(&self, dir: &str) -> StoreResult<Vec<String>> {
        lock::contenders(self.backend.as_ref(), dir).await
    }
}
