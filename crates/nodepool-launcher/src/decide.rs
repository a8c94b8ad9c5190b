//! The launcher's decisions as pure functions over plain data (spec 2.4-2.15), so each rule
//! has a unit test and the loops only gather facts and apply results.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use nodepool_driver::Quota;
use nodepool_model::{Node, NodeId, NodeRequest, NodeState, PoolDetails};

use crate::view::{NodeEntry, RequestEntry};

/// Who is deciding: one provider-pool worker.
#[derive(Debug, Clone, PartialEq)]
pub struct PoolIdentity {
    /// The pool worker id written into `declined_by`.
    pub launcher_id: String,
    pub provider: String,
    pub pool: String,
    pub priority: i64,
    pub labels: BTreeSet<String>,
}

/// Why a worker leaves a request alone this pass (spec 2.4 steps 1-5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skip {
    NotRequested,
    AlreadyDeclined,
    /// The request names another provider that can serve it.
    PreferredProvider,
    /// A better (lower priority number), unpaused pool can serve it.
    HigherPriorityPool,
    /// Another pool can serve labels this one lacks.
    OthersCanServe,
}

/// The order a pool worker looks at requests: those it can serve fully first, then by
/// priority (precedence string, relative priority, sequence).
pub fn request_order(requests: &mut [RequestEntry], labels: &BTreeSet<String>) {
    requests.sort_by_cached_key(|r| {
        let missing = r
            .request
            .node_types
            .iter()
            .filter(|l| !labels.contains(*l))
            .count();
        (missing, r.request.priority(&r.id))
    });
}

/// Whether the pool supports every label the request asks for.
pub fn supports_all(pool: &PoolDetails, request: &NodeRequest) -> bool {
    request
        .node_types
        .iter()
        .all(|l| pool.supported_labels.contains(l))
}

/// Steps 1-5 of spec 2.4: whether to consider `request` at all.
pub fn pre_check(request: &NodeRequest, me: &PoolIdentity, pools: &[PoolDetails]) -> Option<Skip> {
    if request.state != nodepool_model::RequestState::Requested {
        return Some(Skip::NotRequested);
    }
    if request.declined_by.contains(&me.launcher_id) {
        return Some(Skip::AlreadyDeclined);
    }
    let candidates: Vec<&PoolDetails> = pools
        .iter()
        .filter(|p| {
            supports_all(p, request)
                && p.id
                    .as_ref()
                    .is_none_or(|id| !request.declined_by.contains(id))
        })
        .collect();
    if let Some(wanted) = &request.provider
        && *wanted != me.provider
        && candidates
            .iter()
            .any(|p| p.provider_name.as_deref() == Some(wanted.as_str()))
    {
        return Some(Skip::PreferredProvider);
    }
    // Nodepool 11 also yields here to better pools of *other* providers when the request
    // names ours, so nobody serves it; we yield only within the named provider.
    let named_us = request.provider.as_deref() == Some(me.provider.as_str());
    if candidates.iter().any(|p| {
        p.priority < me.priority
            && !p.paused
            && (!named_us || p.provider_name.as_deref() == Some(me.provider.as_str()))
    }) {
        return Some(Skip::HigherPriorityPool);
    }
    let lacks_label = request.node_types.iter().any(|l| !me.labels.contains(l));
    if lacks_label && !candidates.is_empty() {
        return Some(Skip::OthersCanServe);
    }
    None
}

/// Facts behind a decline (spec 2.5), gathered by the worker.
#[derive(Debug, Clone, PartialEq)]
pub struct DeclineFacts {
    pub max_servers: Option<i64>,
    /// Requested labels the pool lacks or whose quota lookup failed, in request order.
    pub unavailable_labels: Vec<String>,
    pub images_available: bool,
    /// The request fits an empty provider and pool.
    pub fits_empty_provider: bool,
}

/// The first decline reason that applies, in Nodepool's order and wording.
pub fn decline_reason(facts: &DeclineFacts) -> Option<String> {
    if facts.max_servers.is_some_and(|m| m <= 0) {
        return Some("pool is disabled by max_servers".to_string());
    }
    if !facts.unavailable_labels.is_empty() {
        return Some(format!(
            "node type(s) [{}] not available",
            facts.unavailable_labels.join(",")
        ));
    }
    if !facts.images_available {
        return Some("images are not available".to_string());
    }
    if !facts.fits_empty_provider {
        return Some("it would exceed quota".to_string());
    }
    None
}

/// The state a declined request is stored in: `failed` once every registered pool declined.
pub fn declined_state(
    request: &NodeRequest,
    pools: &[PoolDetails],
) -> nodepool_model::RequestState {
    let declined: HashSet<&str> = request.declined_by.iter().map(String::as_str).collect();
    let all = pools
        .iter()
        .filter_map(|p| p.id.as_deref())
        .all(|id| declined.contains(id));
    if all {
        nodepool_model::RequestState::Failed
    } else {
        nodepool_model::RequestState::Requested
    }
}

/// Quota used by nodepool's nodes of `provider` (and `pool` when given): every node in any
/// state counts, with its recorded `resources`, else what its first label needs.
pub fn usage(
    nodes: &[NodeEntry],
    provider: &str,
    pool: Option<&str>,
    pools: &BTreeMap<String, BTreeSet<String>>,
    need: impl Fn(&str, &str) -> Quota,
) -> Quota {
    let mut used = Quota::zero();
    for entry in nodes {
        add_node_usage(&mut used, &entry.node, provider, pool, pools, &need, 1.0);
    }
    used
}

/// Adds `factor` times what one node counts in [`usage`] (nothing when it does not count);
/// -1 takes a node out of a sum, so a sum can follow the nodes that changed.
pub fn add_node_usage(
    used: &mut Quota,
    node: &Node,
    provider: &str,
    pool: Option<&str>,
    pools: &BTreeMap<String, BTreeSet<String>>,
    need: impl Fn(&str, &str) -> Quota,
    factor: f64,
) {
    if node.provider.as_deref() != Some(provider) {
        return;
    }
    let Some(node_pool) = node.pool.as_deref() else {
        return;
    };
    if pool.is_some_and(|p| p != node_pool) {
        return;
    }
    let Some(labels) = pools.get(node_pool) else {
        return;
    };
    let Some(first) = node.node_type.first() else {
        return;
    };
    if !labels.contains(first) {
        return;
    }
    match &node.resources {
        Some(resources) => used.add_json_scaled(resources, factor),
        None => used.add_scaled(&need(node_pool, first), factor),
    }
}

/// Usage of a tenant: the `resources` of every node with that tenant, any provider or state.
pub fn tenant_usage(nodes: &[NodeEntry], tenant: &str) -> Quota {
    nodes
        .iter()
        .filter(|e| e.node.tenant_name.as_deref() == Some(tenant))
        .filter_map(|e| e.node.resources.as_ref())
        .fold(Quota::zero(), |mut acc, r| {
            acc.add_json(r);
            acc
        })
}

/// A READY, unallocated, unlocked node of this provider-pool carrying `label`, for reuse.
pub fn reusable_nodes<'a>(
    nodes: &'a [NodeEntry],
    provider: &str,
    pool: &str,
    label: &str,
    az: Option<&str>,
) -> Vec<&'a NodeEntry> {
    nodes
        .iter()
        .filter(|e| {
            let n = &e.node;
            n.state == NodeState::Ready
                && n.allocated_to.is_none()
                && !e.locked
                && n.provider.as_deref() == Some(provider)
                && n.pool.as_deref() == Some(pool)
                && n.node_type.iter().any(|t| t == label)
                && (az.is_none() || n.az.is_none() || n.az.as_deref() == az)
        })
        .collect()
}

/// At quota, Nodepool frees room by deleting the oldest READY unallocated node of the
/// provider-pool, but only when none of the pool's nodes started deleting in the last
/// `recent` seconds. (Nodepool 11 meant this guard but compares seconds with milliseconds,
/// so it deletes one more node on every pass; spec 8.3 item 1. We keep the guard working.)
pub fn oldest_unused_node(
    nodes: &[NodeEntry],
    provider: &str,
    pool: &str,
    now: f64,
    recent: f64,
) -> Option<NodeId> {
    let mine =
        |n: &Node| n.provider.as_deref() == Some(provider) && n.pool.as_deref() == Some(pool);
    if nodes.iter().any(|e| {
        mine(&e.node) && e.node.state == NodeState::Deleting && now - e.node.state_time < recent
    }) {
        return None;
    }
    nodes
        .iter()
        .filter(|e| {
            mine(&e.node)
                && e.node.state == NodeState::Ready
                && e.node.allocated_to.is_none()
                && !e.locked
        })
        .min_by(|a, b| a.node.state_time.total_cmp(&b.node.state_time))
        .map(|e| e.id)
}

/// How many more READY nodes of `label` min-ready wants: READY unallocated nodes of any
/// provider count.
pub fn min_ready_deficit(nodes: &[NodeEntry], label: &str, min_ready: u32) -> u32 {
    let have = nodes
        .iter()
        .filter(|e| {
            e.node.state == NodeState::Ready
                && e.node.allocated_to.is_none()
                && e.node.node_type.iter().any(|t| t == label)
        })
        .count() as u32;
    min_ready.saturating_sub(have)
}

/// Whether a held node's time is up (spec 1.11): its own `hold_expiration` and the global
/// `max-hold-age`, whichever is shorter, counted from when it entered HOLD.
pub fn hold_expired(node: &Node, max_hold_age: Option<u64>, now: f64) -> bool {
    if node.state != NodeState::Hold {
        return false;
    }
    let own = node
        .hold_expiration
        .filter(|e| *e > 0)
        .map_or(f64::INFINITY, |e| e as f64);
    let global = max_hold_age
        .filter(|a| *a > 0)
        .map_or(f64::INFINITY, |a| a as f64);
    let limit = own.min(global);
    limit.is_finite() && now - node.state_time >= limit
}

/// How long an unlocked INIT node may wait for its launcher before it counts as orphaned.
/// A launcher locks the node it creates at once (in the same transaction, or one round trip
/// later); a minute is far beyond that.
pub const INIT_ORPHAN_AGE: f64 = 60.0;

/// Whether an unlocked INIT node is orphaned: its launcher never took it further and the
/// request it was made for is gone (or it has none). Nodepool 11 never cleans these up (INIT
/// is not a deletable state; spec known bug 7); they would count against quota forever.
/// `request_exists` says whether its `allocated_to` request is still in the store.
pub fn orphaned_init(node: &Node, request_exists: bool, now: f64) -> bool {
    node.state == NodeState::Init
        && (node.allocated_to.is_none() || !request_exists)
        && now - node.state_time >= INIT_ORPHAN_AGE
}

/// Whether a READY unallocated node has outlived its label's `max-ready-age`.
pub fn ready_too_old(node: &Node, max_ready_age: u64, now: f64) -> bool {
    max_ready_age > 0
        && node.state == NodeState::Ready
        && node.allocated_to.is_none()
        && now.floor() - node.state_time >= max_ready_age as f64
}

/// States the deleted-node worker cleans up when the node is unlocked (spec 2.13).
pub fn deletable(state: &NodeState) -> bool {
    matches!(
        state,
        NodeState::Used
            | NodeState::InUse
            | NodeState::Building
            | NodeState::Failed
            | NodeState::Deleting
            | NodeState::Deleted
            | NodeState::Aborted
    )
}

/// Leak cleanup (spec 2.15): what to delete now (seen unknown in this pass and the previous
/// one), and the candidates to remember for the next pass.
pub fn leaks<K: Clone + Eq + std::hash::Hash>(
    unknown_now: Vec<K>,
    previous: &HashSet<K>,
) -> (Vec<K>, HashSet<K>) {
    let delete = unknown_now
        .iter()
        .filter(|k| previous.contains(*k))
        .cloned()
        .collect();
    (delete, unknown_now.into_iter().collect())
}

/// The node ids of a fulfilled request, one per requested label in request order.
pub fn fulfilment_order(
    node_types: &[String],
    assigned: &[(String, NodeId)],
) -> Option<Vec<NodeId>> {
    let mut left: Vec<(String, NodeId)> = assigned.to_vec();
    let mut out = Vec::with_capacity(node_types.len());
    for label in node_types {
        let pos = left.iter().position(|(l, _)| l == label)?;
        out.push(left.remove(pos).1);
    }
    Some(out)
}

/// The labels still to be provided: the request's labels minus those already assigned.
pub fn needed_labels(node_types: &[String], assigned: &[String]) -> Vec<String> {
    let mut have: Vec<&String> = assigned.iter().collect();
    let mut out = Vec::new();
    for label in node_types {
        if let Some(pos) = have.iter().position(|l| *l == label) {
            have.remove(pos);
        } else {
            out.push(label.clone());
        }
    }
    out
}

#[cfg(test)]
mod tests;
