//! `/nodepool/nodes`: node records and their locks.

use nodepool_model::{Node, NodeId, NodeState, wire};

use crate::backend::{CreateMode, Op, OpResult, StoreError, StoreResult};
use crate::lock::{self, Lock, LockDir, LockParent, LockWait};
use crate::paths;
use crate::store::Store;
use crate::versioned::{Versioned, children_or_empty, read};

/// Typed access to nodes; get one with [`Store::nodes`].
#[derive(Debug, Clone)]
pub struct Nodes {
    store: Store,
}

impl Nodes {
    pub(crate) fn new(store: Store) -> Nodes {
        Nodes { store }
    }

    /// Every node id, in no particular order; children that are not node ids are skipped.
    pub async fn ids(&self) -> StoreResult<Vec<NodeId>> {
        let children = children_or_empty(self.store.backend().as_ref(), paths::NODES).await?;
        Ok(children
            .iter()
            .filter_map(|c| NodeId::parse(c).ok())
            .collect())
    }

    pub async fn get(&self, id: NodeId) -> StoreResult<Option<Versioned<Node>>> {
        read(
            self.store.backend().as_ref(),
            &paths::node(id),
            wire::node::from_json,
        )
        .await
    }

    /// Stores a new node (sequential id) and sets its `created_time` if unset.
    pub async fn create(&self, node: &mut Node) -> StoreResult<NodeId> {
        self.create_after(Vec::new(), node).await
    }

    /// Runs `before` and stores a new node (as [`Nodes::create`]) in one transaction, so
    /// others see both at the same instant or neither.
    pub async fn create_after(&self, before: Vec<Op>, node: &mut Node) -> StoreResult<NodeId> {
        if node.created_time.is_none() {
            node.created_time = Some(node.state_time);
        }
        if before.is_empty() {
            return self.create_one(node).await;
        }
        let backend = self.store.backend();
        let mut ops = before;
        ops.push(Op::create(
            format!("{}/", paths::NODES),
            wire::node::to_json(node),
            CreateMode::PersistentSequential,
        ));
        let results = match backend.multi(ops.clone()).await {
            // The first node ever: make its parent as `create` would, and try again.
            Err(StoreError::NoNode(path)) if path == paths::NODES => {
                self.store.ensure_path(paths::NODES).await?;
                backend.multi(ops).await?
            }
            other => other?,
        };
        let path = results
            .last()
            .and_then(OpResult::created_path)
            .unwrap_or_default();
        let name = path.rsplit('/').next().unwrap_or_default();
        NodeId::parse(name).map_err(|e| StoreError::Malformed {
            path: path.to_string(),
            reason: e.to_string(),
        })
    }

    async fn create_one(&self, node: &Node) -> StoreResult<NodeId> {
        let path = self
            .store
            .backend()
            .create(
                &format!("{}/", paths::NODES),
                &wire::node::to_json(node),
                CreateMode::PersistentSequential,
                true,
            )
            .await?;
        let name = path.rsplit('/').next().unwrap_or_default();
        NodeId::parse(name).map_err(|e| StoreError::Malformed {
            path: path.clone(),
            reason: e.to_string(),
        })
    }

    /// Writes the whole record, as Nodepool does (no version check).
    pub async fn store(&self, id: NodeId, node: &Node) -> StoreResult<()> {
        self.store
            .backend()
            .set(&paths::node(id), &wire::node::to_json(node), None)
            .await
            .map(|_| ())
    }

    /// The operation that writes the whole record (no version check) inside a
    /// [`Store::multi`].
    pub fn store_op(&self, id: NodeId, node: &Node) -> Op {
        Op::set(paths::node(id), wire::node::to_json(node), None)
    }

    /// Locks a node this process has just created and stores `node` (its next state), in
    /// one transaction: the lock directory, our kazoo contender in it, and the record.
    /// The directory did not exist, so ours is its only contender and we hold the lock,
    /// as kazoo's recipe concludes too. If someone made the directory first, the recipe
    /// decides as usual (`Ok(None)`: someone else holds it) and the record is stored
    /// only under the lock.
    pub async fn lock_new(&self, id: NodeId, node: &Node) -> StoreResult<Option<Lock>> {
        let backend = self.store.backend();
        let dir = paths::node_lock(id);
        let created = backend
            .multi(vec![
                Op::create(dir.clone(), Vec::new(), CreateMode::Persistent),
                Op::create(
                    lock::contender_prefix(&dir),
                    Vec::new(),
                    CreateMode::EphemeralSequential,
                ),
                self.store_op(id, node),
            ])
            .await;
        match created {
            Ok(results) => {
                let contender = results
                    .get(1)
                    .and_then(OpResult::created_path)
                    .ok_or_else(|| StoreError::Backend(format!("no contender created in {dir}")))?;
                Ok(Some(Lock::from_created(
                    backend.clone(),
                    contender.to_string(),
                    &dir,
                )))
            }
            Err(StoreError::NodeExists(_)) => {
                let Some(lock) = self.lock(id, LockWait::NonBlocking).await? else {
                    return Ok(None);
                };
                if let Err(e) = self.store(id, node).await {
                    let _ = lock.release().await;
                    return Err(e);
                }
                Ok(Some(lock))
            }
            Err(e) => Err(e),
        }
    }

    /// Writes the record only if nobody changed it since `version`.
    pub async fn store_if(&self, id: NodeId, node: &Node, version: i32) -> StoreResult<i32> {
        Ok(self
            .store
            .backend()
            .set(&paths::node(id), &wire::node::to_json(node), Some(version))
            .await?
            .version)
    }

    /// Nodepool's `deleteNode`: mark the record `deleted` first (so a racing locker leaves a
    /// marker the next pass finishes), then delete it with its lock directory.
    pub async fn delete(&self, id: NodeId, node: &mut Node, now: f64) -> StoreResult<()> {
        node.set_state(NodeState::Deleted, now);
        match self.store(id, node).await {
            Ok(()) | Err(StoreError::NoNode(_)) => {}
            Err(e) => return Err(e),
        }
        self.store.delete_recursive(&paths::node(id)).await
    }

    /// [`Nodes::delete`] for a node whose `lock` we hold, in one transaction when nobody
    /// else contends for the lock: mark it `deleted`, drop our contender, the lock
    /// directory and the record. Otherwise (another contender arrived, spec 8.2) the
    /// two-step `delete` runs, which leaves the `deleted` marker for whoever finishes.
    /// The lock is gone afterwards, whatever the outcome.
    pub async fn delete_locked(
        &self,
        id: NodeId,
        node: &mut Node,
        lock: Lock,
        now: f64,
    ) -> StoreResult<()> {
        node.set_state(NodeState::Deleted, now);
        let dir = paths::node_lock(id);
        if lock.dir() == dir {
            let ops = vec![
                self.store_op(id, node),
                lock.release_op(),
                Op::delete(dir, None),
                Op::delete(paths::node(id), None),
            ];
            match self.store.backend().multi(ops).await {
                Ok(_) => {
                    lock.released();
                    return Ok(());
                }
                Err(e) => {
                    tracing::debug!(node_id = %id, error = %e, "one-step node delete failed; deleting in two steps");
                }
            }
        }
        match self.delete(id, node, now).await {
            // The recursive delete took our contender with it.
            Ok(()) => {
                lock.released();
                Ok(())
            }
            Err(e) => {
                let _ = lock.release().await;
                Err(e)
            }
        }
    }

    /// Locks a node; `None` when someone else holds the lock or the node is gone. Unlike
    /// kazoo's lock (and so Zuul's and Python Nodepool's), this never re-creates a deleted
    /// node's znode empty (spec 8.2): several launchers reacting to one deletion would keep
    /// bringing it back while one of them deletes it.
    pub async fn lock(&self, id: NodeId, wait: LockWait) -> StoreResult<Option<Lock>> {
        self.lock_expecting(id, wait, LockDir::Unknown).await
    }

    /// [`Nodes::lock`], with what the caller knows of the lock's directory.
    pub async fn lock_expecting(
        &self,
        id: NodeId,
        wait: LockWait,
        expect: LockDir,
    ) -> StoreResult<Option<Lock>> {
        let locked = self
            .store
            .lock_expecting(
                &paths::node_lock(id),
                "",
                wait,
                expect,
                LockParent::MustExist,
            )
            .await;
        match locked {
            Err(StoreError::NoNode(_)) => Ok(None),
            other => other,
        }
    }

    /// Names of the node's lock contenders; non-empty means "probably locked".
    pub async fn lock_contenders(&self, id: NodeId) -> StoreResult<Vec<String>> {
        self.store.lock_contenders(&paths::node_lock(id)).await
    }
}
