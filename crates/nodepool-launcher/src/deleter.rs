//! The deleted-node worker (spec 2.13): reclaims READY nodes whose request vanished and
//! deletes unlocked nodes in deletable states, through the provider's delete machine.

use std::collections::HashSet;
use std::sync::Arc;

use nodepool_model::{NodeId, NodeState};
use nodepool_store::{LockDir, LockWait, StoreError, paths};

use crate::clock::now;
use crate::context::Context;
use crate::decide;
use crate::providers::ProviderRuntime;
use crate::static_sync;

const NAME: &str = "deleted-nodes";

pub async fn run(ctx: Arc<Context>) {
    let mut watches = ctx.watches(true, true, false, false);
    watches.follow_progress(false);
    let in_flight: Arc<std::sync::Mutex<HashSet<NodeId>>> = Arc::default();
    loop {
        if ctx.is_stopping() {
            break;
        }
        ctx.workers.busy(NAME);
        match pass(&ctx, &in_flight).await {
            Ok(()) => ctx.workers.idle(NAME),
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), "deleted-node pass failed");
                ctx.workers.error(NAME, &e);
            }
        }
        let timing = &ctx.options.timing;
        ctx.wait_for_change_batched(
            &mut watches,
            timing.deleted_node_interval,
            timing.change_batching,
        )
        .await;
    }
    ctx.workers.stopped(NAME);
}

async fn pass(
    ctx: &Arc<Context>,
    in_flight: &Arc<std::sync::Mutex<HashSet<NodeId>>>,
) -> anyhow::Result<()> {
    let nodes = ctx.nodes_view();
    let mut requests: Option<HashSet<nodepool_model::RequestId>> = None;
    for entry in nodes.iter() {
        let Some(provider) = entry.node.provider.as_deref() else {
            continue;
        };
        if entry.locked {
            continue;
        }
        let node = &entry.node;
        let request_gone = |requests: &mut Option<HashSet<nodepool_model::RequestId>>| {
            node.allocated_to.as_ref().is_some_and(|request| {
                !requests
                    .get_or_insert_with(|| ctx.request_ids())
                    .contains(request)
            })
        };
        let reclaim = node.state == NodeState::Ready && request_gone(&mut requests);
        let orphan = node.state == NodeState::Init
            && decide::orphaned_init(node, !request_gone(&mut requests), now());
        if !reclaim && !orphan && !decide::deletable(&node.state) {
            continue;
        }
        let Some(rt) = ctx.provider(provider) else {
            continue;
        };
        if !in_flight
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(entry.id)
        {
            continue;
        }
        // Each node in its own task: taking its lock and re-reading it are round trips,
        // and a backlog of used nodes should not wait on them one by one.
        let ctx = ctx.clone();
        let in_flight = in_flight.clone();
        let (id, expect) = (entry.id, lock_dir(entry));
        let cached = (entry.node.clone(), entry.version);
        tokio::spawn(async move {
            let handled = if reclaim {
                reclaim_node(&ctx, id, expect).await
            } else {
                take_node(&ctx, &rt, id, expect, cached, orphan).await
            };
            if let Err(e) = handled {
                tracing::warn!(node_id = %id, error = %format!("{e:#}"), "deleted-node worker could not handle node");
            }
            in_flight
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&id);
            ctx.progressed();
        });
    }
    Ok(())
}

/// A READY node allocated to a request that is gone is free again (spec 2.13).
async fn reclaim_node(ctx: &Context, id: NodeId, expect: LockDir) -> anyhow::Result<()> {
    let store = ctx.store.nodes();
    let Some(lock) = store
        .lock_expecting(id, LockWait::NonBlocking, expect)
        .await?
    else {
        return Ok(());
    };
    if let Some(mut current) = store.get(id).await?
        && current.value.state == NodeState::Ready
        && let Some(request) = current.value.allocated_to.clone()
        && ctx.store.requests().get(&request).await?.is_none()
    {
        tracing::info!(node_id = %id, request_id = %request, "request gone; node is free again");
        current.value.allocated_to = None;
        store.store(id, &current.value).await?;
    }
    lock.release().await?;
    Ok(())
}

/// Locks a node in a deletable state (or an orphaned INIT node, with `orphan`), makes sure
/// it is still as seen, and deletes it.
///
/// `cached` is the node and data version the cache showed. Marking it `deleting` only if
/// that version is still the store's proves it unchanged without re-reading it under the
/// lock (a round trip per node); when the cache was behind, the node is re-read.
async fn take_node(
    ctx: &Context,
    rt: &Arc<ProviderRuntime>,
    id: NodeId,
    expect: LockDir,
    cached: (Arc<nodepool_model::Node>, i32),
    orphan: bool,
) -> anyhow::Result<()> {
    let takeable = |node: &nodepool_model::Node| {
        decide::deletable(&node.state) || (orphan && node.state == NodeState::Init)
    };
    let store = ctx.store.nodes();
    let Some(lock) = store
        .lock_expecting(id, LockWait::NonBlocking, expect)
        .await?
    else {
        return Ok(());
    };
    let (cached, version) = cached;
    if cached.provider.is_some()
        && takeable(&cached)
        && !matches!(cached.state, NodeState::Deleting | NodeState::Deleted)
    {
        let mut node = (*cached).clone();
        node.set_state(NodeState::Deleting, now());
        match store.store_if(id, &node, version).await {
            Ok(_) => {
                delete_node(ctx, rt, id, node, lock).await;
                return Ok(());
            }
            // Changed (or gone) since the cache showed it: read what is there.
            Err(StoreError::BadVersion(_) | StoreError::NoNode(_)) => {}
            Err(e) => {
                let _ = lock.release().await;
                return Err(e.into());
            }
        }
    }
    let current = store.get(id).await?;
    let Some(current) = current.filter(|c| c.value.provider.is_some()) else {
        // Re-created empty by a lock attempt on a vanished node (spec 8.2).
        lock.release().await?;
        ctx.store.delete_recursive(&paths::node(id)).await?;
        return Ok(());
    };
    let mut node = current.value;
    if node.state == NodeState::Deleted {
        store.delete_locked(id, &mut node, lock, now()).await?;
        return Ok(());
    }
    if !takeable(&node) {
        lock.release().await?;
        return Ok(());
    }
    delete_node(ctx, rt, id, node, lock).await;
    Ok(())
}

/// Deletes one locked node: `deleting`, the cloud delete, then the record.
async fn delete_node(
    ctx: &Context,
    rt: &Arc<ProviderRuntime>,
    id: NodeId,
    mut node: nodepool_model::Node,
    lock: nodepool_store::Lock,
) {
    let store = ctx.store.nodes();
    if node.state != NodeState::Deleting {
        node.set_state(NodeState::Deleting, now());
        if let Err(e) = store.store(id, &node).await {
            tracing::warn!(node_id = %id, error = %e, "cannot mark node deleting");
            let _ = lock.release().await;
            return;
        }
    }
    // The delete is bounded by the delete timeout, even a step that never answers, so a hung
    // cloud call fails this attempt (retried on a later pass) instead of holding the node.
    if let (Some(cloud), Some(external)) = (&rt.cloud, &node.external_id) {
        let mut shutdown = ctx.shutdown.clone();
        let deleted = tokio::select! {
            deleted = nodepool_driver::run_delete_machine(
                cloud.as_ref(),
                external,
                ctx.options.timing.delete_timeout,
            ) => Some(deleted),
            _ = shutdown.wait_for(|s| *s) => None,
        };
        let Some(deleted) = deleted else {
            // Stopping: the node stays DELETING and unlocked for the next launcher.
            let _ = lock.release().await;
            return;
        };
        if let Err(e) = deleted {
            tracing::warn!(node_id = %id, error = %e, "instance delete failed; will retry");
            ctx.stats.incr(&format!(
                "nodepool.provider.{}.error.serverdelete",
                rt.name()
            ));
            let _ = lock.release().await;
            return;
        }
    }
    // The record goes with its lock directory (and our contender in it), in one
    // transaction unless someone else contends for the lock meanwhile.
    match store.delete_locked(id, &mut node, lock, now()).await {
        Ok(()) => tracing::info!(node_id = %id, provider = rt.name(), "node deleted"),
        Err(e) => {
            tracing::warn!(node_id = %id, error = %e, "cannot delete node record; next pass finishes it");
        }
    }
    if rt.is_static() {
        static_sync::sync(ctx, rt, false).await;
    }
}

/// What the cache says of a node's lock directory.
fn lock_dir(entry: &crate::view::NodeEntry) -> LockDir {
    if entry.lock_dir {
        LockDir::Exists
    } else {
        LockDir::Unknown
    }
}
