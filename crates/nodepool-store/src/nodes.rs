//! `/nodepool/nodes`: node records and their locks.

use nodepool_model::{Node, NodeId, NodeState, wire};

use crate::backend::{CreateMode, StoreError, StoreResult};
use crate::lock::{Lock, LockWait};
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
        if node.created_time.is_none() {
            node.created_time = Some(node.state_time);
        }
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

    pub async fn lock(&self, id: NodeId, wait: LockWait) -> StoreResult<Option<Lock>> {
        self.store.lock(&paths::node_lock(id), "", wait).await
    }

    /// Names of the node's lock contenders; non-empty means "probably locked".
    pub async fn lock_contenders(&self, id: NodeId) -> StoreResult<Vec<String>> {
        self.store.lock_contenders(&paths::node_lock(id)).await
    }
}
