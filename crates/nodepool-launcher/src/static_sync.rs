//! Static providers (spec 7.5): configured hosts registered as READY nodes, one per
//! `max-parallel-jobs` slot; re-registered after use, deregistered when dropped from the
//! configuration. The static driver crate decides; this module applies under node locks.

use nodepool_config::{PoolSettings, StaticNode};
use nodepool_driver_static as driver;
use nodepool_model::{Node, NodeId, NodeState};
use nodepool_store::LockWait;

use crate::clock::now;
use crate::context::Context;
use crate::providers::ProviderRuntime;

/// A pool's `node-attributes`.
type Attributes = serde_json::Map<String, serde_json::Value>;

/// Brings the provider's nodes in line with its configuration. `at_start` (after the
/// provider started or its configuration changed) also retires hosts no longer configured
/// and rewrites changed records.
pub async fn sync(ctx: &Context, rt: &ProviderRuntime, at_start: bool) {
    let _one_at_a_time = rt.static_sync.lock().await;
    if let Err(e) = sync_locked(ctx, rt, at_start).await {
        tracing::warn!(provider = rt.name(), error = %format!("{e:#}"), "static node registration failed");
    }
}

/// The provider's node records, read from the store (not the cache) so a slot registered a
/// moment ago is never registered twice.
async fn provider_nodes(ctx: &Context, provider: &str) -> anyhow::Result<Vec<(NodeId, Node)>> {
    let store = ctx.store.nodes();
    let mut out = Vec::new();
    for id in store.ids().await? {
        if let Some(node) = store.get(id).await?
            && node.value.provider.as_deref() == Some(provider)
        {
            out.push((id, node.value));
        }
    }
    Ok(out)
}

async fn sync_locked(ctx: &Context, rt: &ProviderRuntime, at_start: bool) -> anyhow::Result<()> {
    let existing = provider_nodes(ctx, rt.name()).await?;
    let mut pools: Vec<(String, Vec<StaticNode>, Option<Attributes>)> = rt
        .config
        .pools
        .iter()
        .map(|p| {
            let nodes = match &p.settings {
                PoolSettings::Static(s) => s.nodes.clone(),
                _ => Vec::new(),
            };
            (p.name.clone(), nodes, p.node_attributes.clone())
        })
        .collect();
    if at_start {
        // Pools that left the configuration retire their hosts too.
        for (_, node) in &existing {
            if let Some(pool) = &node.pool
                && !pools.iter().any(|(name, _, _)| name == pool)
            {
                pools.push((pool.clone(), Vec::new(), None));
            }
        }
    }
    for (pool, configured, attributes) in pools {
        let plan = driver::plan_slots(&configured, rt.name(), &pool, &existing, at_start);
        for id in plan.deregister {
            deregister(
                ctx,
                id,
                "host no longer configured or slot beyond max-parallel-jobs",
            )
            .await?;
        }
        for update in plan.update {
            let static_node = &configured[update.node_index];
            let keys = match driver::check_host(static_node).await {
                Ok(keys) => keys,
                Err(e) => {
                    tracing::warn!(provider = rt.name(), host = %static_node.name, error = %e, "static host check failed");
                    continue;
                }
            };
            let nodes = ctx.store.nodes();
            let Some(lock) = nodes.lock(update.node_id, LockWait::NonBlocking).await? else {
                continue;
            };
            if let Some(mut current) = nodes.get(update.node_id).await?
                && current.value.state == NodeState::Ready
                && current.value.allocated_to.is_none()
            {
                driver::update_from_config(&mut current.value, static_node, keys);
                nodes.store(update.node_id, &current.value).await?;
                tracing::info!(node_id = %update.node_id, host = %static_node.name, "static node updated from the configuration");
            }
            lock.release().await?;
        }
        for registration in plan.register {
            let static_node = &configured[registration.node_index];
            let keys = match driver::check_host(static_node).await {
                Ok(keys) => keys,
                Err(e) => {
                    tracing::warn!(provider = rt.name(), host = %static_node.name, error = %e, "static host not registered");
                    continue;
                }
            };
            let address = match driver::resolve_public_address(static_node).await {
                Ok(address) => address,
                Err(e) => {
                    tracing::warn!(provider = rt.name(), host = %static_node.name, error = %e, "static host not registered");
                    continue;
                }
            };
            let mut node = driver::registration_node(
                rt.name(),
                &pool,
                attributes.as_ref(),
                static_node,
                registration.slot,
                keys,
                now(),
            );
            address.apply_to(&mut node);
            let id = ctx.store.nodes().create(&mut node).await?;
            tracing::info!(node_id = %id, host = %static_node.name, slot = registration.slot, "static node registered");
        }
    }
    Ok(())
}

/// Lock non-blocking and, only if still READY, mark the node `deleting`.
async fn deregister(ctx: &Context, id: NodeId, why: &str) -> anyhow::Result<()> {
    let nodes = ctx.store.nodes();
    let Some(lock) = nodes.lock(id, LockWait::NonBlocking).await? else {
        return Ok(());
    };
    if let Some(mut current) = nodes.get(id).await?
        && current.value.state == NodeState::Ready
    {
        current.value.set_state(NodeState::Deleting, now());
        nodes.store(id, &current.value).await?;
        tracing::info!(node_id = %id, reason = why, "static node deregistered");
    }
    lock.release().await?;
    Ok(())
}

/// Whether a static node may be handed out again: its host must still be configured and,
/// when host keys are checked, answer on its port. A node failing this is deregistered.
pub async fn check_reusable(ctx: &Context, rt: &ProviderRuntime, id: NodeId, node: &Node) -> bool {
    let Some(tuple) = driver::NodeTuple::of_node(node) else {
        return false;
    };
    let configured = rt.config.pools.iter().find_map(|p| match &p.settings {
        PoolSettings::Static(s) if Some(p.name.as_str()) == node.pool.as_deref() => s
            .nodes
            .iter()
            .find(|n| driver::NodeTuple::of_static(n) == tuple)
            .cloned(),
        _ => None,
    });
    let Some(static_node) = configured else {
        return false;
    };
    if driver::check_reusable(&static_node).await {
        return true;
    }
    tracing::warn!(host = %static_node.name, "static host unreachable; deregistering its node");
    if let Err(e) = deregister(ctx, id, "host unreachable").await {
        tracing::warn!(node_id = %id, error = %format!("{e:#}"), "cannot deregister static node");
    }
    false
}
