//! The cleanup worker (spec 2.14, 2.15): stale request locks, leaked cloud resources, lost
//! requests, max-ready-age, hold expiry, empty node znodes, static re-registration.
//! Each task is isolated: one failing does not stop the others.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use nodepool_driver::metadata_keys;
use nodepool_model::{NodeState, RequestId, RequestState};
use nodepool_store::{LockWait, paths};

use crate::clock::now;
use crate::context::Context;
use crate::decide;
use crate::static_sync;

const NAME: &str = "cleanup";

pub async fn run(ctx: Arc<Context>) {
    let mut shutdown = ctx.shutdown.clone();
    loop {
        if ctx.is_stopping() {
            break;
        }
        ctx.workers.busy(NAME);
        pass(&ctx).await;
        ctx.workers.idle(NAME);
        tokio::select! {
            _ = tokio::time::sleep(ctx.options.timing.cleanup_interval) => {}
            _ = shutdown.wait_for(|s| *s) => {}
        }
    }
    ctx.workers.stopped(NAME);
}

/// One cleanup pass; public to the crate so tests and the main loop can force one.
pub async fn pass(ctx: &Context) {
    let tasks: [(&str, _); 6] = [
        ("request locks", Task::RequestLocks),
        ("leaked resources", Task::Leaks),
        ("lost requests", Task::LostRequests),
        ("max-ready-age", Task::MaxReadyAge),
        ("held nodes", Task::HoldExpiry),
        ("empty nodes", Task::EmptyNodes),
    ];
    for (name, task) in tasks {
        let result = match task {
            Task::RequestLocks => request_locks(ctx).await,
            Task::Leaks => leaks(ctx).await,
            Task::LostRequests => lost_requests(ctx).await,
            Task::MaxReadyAge => max_ready_age(ctx).await,
            Task::HoldExpiry => hold_expiry(ctx).await,
            Task::EmptyNodes => empty_nodes(ctx).await,
        };
        if let Err(e) = result {
            tracing::warn!(task = name, error = %format!("{e:#}"), "cleanup task failed");
            ctx.workers.error(NAME, &e);
        }
    }
    for rt in ctx.providers() {
        if rt.is_static() {
            static_sync::sync(ctx, &rt, false).await;
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Task {
    RequestLocks,
    Leaks,
    LostRequests,
    MaxReadyAge,
    HoldExpiry,
    EmptyNodes,
}

async fn request_locks(ctx: &Context) -> anyhow::Result<()> {
    let requests = ctx.store.requests();
    let max_age = ctx.options.timing.request_lock_age;
    let now_ms = (now() * 1000.0) as i64;
    for name in requests.lock_dirs().await? {
        if let Ok(id) = RequestId::parse(&name)
            && requests.get(&id).await?.is_some()
        {
            continue;
        }
        let path = format!("{}/{name}", paths::REQUEST_LOCKS);
        let Some((_, stat)) = ctx.store.backend().get(&path).await? else {
            continue;
        };
        if Duration::from_millis((now_ms - stat.mtime_ms).max(0) as u64) >= max_age {
            tracing::info!(request_id = %name, "removing stale request lock");
            requests.delete_lock_dir(&name).await?;
        }
    }
    Ok(())
}

async fn leaks(ctx: &Context) -> anyhow::Result<()> {
    let nodes = ctx.nodes_view();
    // Uploads known per provider: "<build>-<upload>".
    let mut uploads: HashSet<(String, String)> = HashSet::new();
    for (path, _) in ctx.images.descendants(paths::IMAGES) {
        let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        // nodepool/images/<img>/builds/<b>/providers/<p>/images/<u>
        if parts.len() == 9
            && parts[3] == "builds"
            && parts[5] == "providers"
            && parts[7] == "images"
        {
            uploads.insert((parts[6].to_string(), format!("{}-{}", parts[4], parts[8])));
        }
    }
    for rt in ctx.providers() {
        let Some(cloud) = &rt.cloud else { continue };
        let resources = match cloud.list_resources().await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(provider = rt.name(), error = %e, "cannot list resources for leak cleanup");
                continue;
            }
        };
        let known: HashSet<String> = nodes
            .iter()
            .filter(|e| e.node.provider.as_deref() == Some(rt.name()))
            .map(|e| e.id.to_string())
            .collect();
        let mut unknown = Vec::new();
        for r in &resources {
            if r.metadata
                .get(metadata_keys::PROVIDER_NAME)
                .map(String::as_str)
                != Some(rt.name())
            {
                continue;
            }
            let leaked_node = r
                .metadata
                .get(metadata_keys::NODE_ID)
                .is_some_and(|id| !known.contains(id));
            let leaked_upload = match (
                r.metadata.get(metadata_keys::BUILD_ID),
                r.metadata.get(metadata_keys::UPLOAD_ID),
            ) {
                (Some(b), Some(u)) => {
                    !uploads.contains(&(rt.name().to_string(), format!("{b}-{u}")))
                }
                _ => false,
            };
            if leaked_node || leaked_upload {
                unknown.push((r.kind.clone(), r.id.clone()));
            }
        }
        let delete = {
            let mut previous = rt.leak_candidates.lock().unwrap_or_else(|e| e.into_inner());
            let (delete, next) = decide::leaks(unknown, &previous);
            *previous = next;
            delete
        };
        for (kind, id) in delete {
            let Some(resource) = resources.iter().find(|r| r.kind == kind && r.id == id) else {
                continue;
            };
            // The node cache may lag behind a busy store: confirm the node is really gone
            // before destroying what may be a live node's instance (an unreadable one counts
            // as present).
            if let Some(node_id) = resource.metadata.get(metadata_keys::NODE_ID)
                && let Ok(node_id) = nodepool_model::NodeId::parse(node_id)
                && !matches!(ctx.store.nodes().get(node_id).await, Ok(None))
            {
                continue;
            }
            match cloud.delete_resource(resource).await {
                Ok(()) => {
                    tracing::info!(provider = rt.name(), kind = %kind, id = %id, metadata = ?resource.metadata, "deleted leaked resource");
                    ctx.stats
                        .incr(&format!("nodepool.provider.{}.leaked.{kind}s", rt.name()));
                }
                Err(e) => {
                    tracing::warn!(provider = rt.name(), kind = %kind, id = %id, error = %e, "cannot delete leaked resource")
                }
            }
        }
    }
    Ok(())
}

/// Pending requests whose launcher is gone (we can take their lock) go back to `requested`.
async fn lost_requests(ctx: &Context) -> anyhow::Result<()> {
    let requests = ctx.store.requests();
    for entry in ctx.requests_view() {
        if entry.request.state != RequestState::Pending {
            continue;
        }
        let Some(lock) = requests.lock(&entry.id, LockWait::NonBlocking).await? else {
            continue;
        };
        let result = reset_lost(ctx, &entry.id).await;
        lock.release().await?;
        result?;
    }
    Ok(())
}

async fn reset_lost(ctx: &Context, id: &RequestId) -> anyhow::Result<()> {
    let Some(current) = ctx.store.requests().get(id).await? else {
        return Ok(());
    };
    let mut request = current.value;
    if request.state != RequestState::Pending {
        return Ok(());
    }
    let nodes = ctx.store.nodes();
    for entry in ctx.nodes_view().iter() {
        if entry.node.allocated_to.as_ref() != Some(id) {
            continue;
        }
        let Some(lock) = nodes
            .lock(entry.id, LockWait::Timeout(Duration::from_secs(10)))
            .await?
        else {
            continue;
        };
        if let Some(mut node) = nodes.get(entry.id).await? {
            if node.value.state == NodeState::Init {
                node.value.set_state(NodeState::Deleting, now());
            }
            node.value.allocated_to = None;
            nodes.store(entry.id, &node.value).await?;
        }
        lock.release().await?;
    }
    tracing::info!(request_id = %id, "resetting lost request");
    request.set_state(RequestState::Requested, now());
    request.nodes.clear();
    ctx.store.requests().store(id, &request).await?;
    Ok(())
}

/// Locks a node, re-checks `still` on the fresh copy and marks it `deleting`.
async fn mark_deleting(
    ctx: &Context,
    id: nodepool_model::NodeId,
    still: impl Fn(&nodepool_model::Node) -> bool,
    why: &str,
) -> anyhow::Result<()> {
    let nodes = ctx.store.nodes();
    let Some(lock) = nodes.lock(id, LockWait::NonBlocking).await? else {
        return Ok(());
    };
    if let Some(mut node) = nodes.get(id).await?
        && still(&node.value)
    {
        node.value.set_state(NodeState::Deleting, now());
        nodes.store(id, &node.value).await?;
        tracing::info!(node_id = %id, reason = why, "node marked for deletion");
    }
    lock.release().await?;
    Ok(())
}

async fn max_ready_age(ctx: &Context) -> anyhow::Result<()> {
    let config = ctx.config();
    let t = now();
    for entry in ctx.nodes_view().iter() {
        if entry.locked || !configured(ctx, &entry.node) {
            continue;
        }
        for label in &entry.node.node_type {
            let Some(age) = config.labels.get(label).map(|l| l.max_ready_age) else {
                continue;
            };
            if decide::ready_too_old(&entry.node, age, t) {
                mark_deleting(
                    ctx,
                    entry.id,
                    |n| decide::ready_too_old(n, age, now()),
                    "max-ready-age",
                )
                .await?;
                break;
            }
        }
    }
    Ok(())
}

async fn hold_expiry(ctx: &Context) -> anyhow::Result<()> {
    let max_hold_age = ctx.config().max_hold_age;
    let t = now();
    for entry in ctx.nodes_view().iter() {
        if !configured(ctx, &entry.node) {
            continue;
        }
        if decide::hold_expired(&entry.node, max_hold_age, t) {
            mark_deleting(
                ctx,
                entry.id,
                |n| decide::hold_expired(n, max_hold_age, now()),
                "hold expired",
            )
            .await?;
        }
    }
    Ok(())
}

async fn empty_nodes(ctx: &Context) -> anyhow::Result<()> {
    for name in ctx.nodes.children(paths::NODES) {
        let path = format!("{}/{name}", paths::NODES);
        if let Some(entry) = ctx.nodes.get(&path)
            && entry.data.is_empty()
        {
            // Re-check against the store: the cache may be behind a create.
            if let Some((data, _)) = ctx.store.backend().get(&path).await?
                && data.is_empty()
            {
                tracing::info!(path, "removing empty node znode");
                ctx.store.delete_recursive(&path).await?;
            }
        }
    }
    Ok(())
}

/// Only nodes of providers in our configuration are ours to clean (spec 8.1 item 9).
fn configured(ctx: &Context, node: &nodepool_model::Node) -> bool {
    node.provider
        .as_deref()
        .is_some_and(|p| ctx.provider(p).is_some())
}
