//! The protocol's minimum, for the ceiling: a "launcher" in the bench process that fulfils
//! each request with a READY node created on the spot and deletes used nodes, with no
//! quota, no cloud and no bookkeeping. Throughput against it is what the store and the load
//! generator allow on this machine.

use std::collections::HashSet;
use std::sync::Arc;

use nodepool_model::{ConnectionPort, Node, NodeState, RequestState, wire};
use nodepool_store::{LockWait, Store, TreeCache, paths};
use tokio::task::JoinHandle;

pub fn start(store: Store) -> JoinHandle<()> {
    tokio::spawn(async move {
        let Ok(requests) = TreeCache::start(store.backend().clone(), paths::REQUESTS).await else {
            return;
        };
        let Ok(nodes) = TreeCache::start(store.backend().clone(), paths::NODES).await else {
            return;
        };
        let mut request_changes = requests.generation();
        let mut node_changes = nodes.generation();
        let taken: Arc<std::sync::Mutex<HashSet<String>>> = Arc::default();
        loop {
            for name in requests.children(paths::REQUESTS) {
                let Some(entry) = requests.get(&format!("{}/{name}", paths::REQUESTS)) else {
                    continue;
                };
                let Ok(request) = wire::request::from_json(&entry.data) else {
                    continue;
                };
                if request.state != RequestState::Requested
                    || !taken
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .insert(name.clone())
                {
                    continue;
                }
                let store = store.clone();
                tokio::spawn(async move {
                    let Ok(id) = nodepool_model::RequestId::parse(&name) else {
                        return;
                    };
                    let Ok(Some(lock)) = store.requests().lock(&id, LockWait::NonBlocking).await
                    else {
                        return;
                    };
                    let mut request = request;
                    for label in &request.node_types {
                        let mut node = Node::new(NodeState::Ready, 0.0);
                        node.node_type = vec![label.clone()];
                        node.provider = Some("minimal".into());
                        node.allocated_to = Some(id.clone());
                        node.interface_ip = Some("fake".into());
                        node.connection_port = Some(ConnectionPort::Port(22));
                        if let Ok(node_id) = store.nodes().create(&mut node).await {
                            request.nodes.push(node_id);
                        }
                    }
                    request.state = RequestState::Fulfilled;
                    let _ = store.requests().store(&id, &request).await;
                    let _ = lock.release().await;
                });
            }
            for name in nodes.children(paths::NODES) {
                let path = format!("{}/{name}", paths::NODES);
                let Some(entry) = nodes.get(&path) else {
                    continue;
                };
                let Ok(node) = wire::node::from_json(&entry.data) else {
                    continue;
                };
                if node.state != NodeState::Used
                    || !taken
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .insert(path.clone())
                {
                    continue;
                }
                let store = store.clone();
                tokio::spawn(async move {
                    let _ = store.delete_recursive(&path).await;
                });
            }
            tokio::select! {
                _ = request_changes.changed() => {}
                _ = node_changes.changed() => {}
            }
        }
    })
}
