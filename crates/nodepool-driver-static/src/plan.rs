//! Which slots to register, which nodes to deregister or update (spec 7.5 "Registration").
//!
//! Pure: the launcher passes a snapshot of the provider's node records and applies the
//! [`SlotPlan`] (checking each host, locking each node, re-reading states under the lock).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use nodepool_config::StaticNode;
use nodepool_model::node::DEFAULT_USERNAME;
use nodepool_model::{Node, NodeId, NodeState};

use crate::registration::differs_from_config;

/// A static host's identity: (`name`, `username`, `connection-port`). Unique across the
/// provider's pools.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeTuple {
    pub hostname: String,
    pub username: String,
    pub port: u16,
}

impl NodeTuple {
    pub fn of_static(node: &StaticNode) -> NodeTuple {
        NodeTuple {
            hostname: node.name.clone(),
            username: node.username.clone(),
            port: node.connection_port,
        }
    }

    /// The tuple of a node record; `None` when it has no hostname or TCP port (not a static
    /// node, or a foreign writer's record).
    pub fn of_node(node: &Node) -> Option<NodeTuple> {
        Some(NodeTuple {
            hostname: node.hostname.clone()?,
            username: node
                .username
                .clone()
                .unwrap_or_else(|| DEFAULT_USERNAME.to_string()),
            port: node.port()?,
        })
    }
}

/// Nodepool's namedtuple repr, which its log lines and error messages show.
impl fmt::Display for NodeTuple {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Node(hostname='{}', username='{}', port={})",
            self.hostname, self.username, self.port
        )
    }
}

/// An empty slot to fill: `check_host`, then store `registration_node(.., slot, ..)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct SlotRegistration {
    /// Index into the pool's configured nodes.
    pub node_index: usize,
    pub slot: u32,
}

/// A READY node whose record no longer matches its configured host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct SlotUpdate {
    pub node_id: NodeId,
    /// Index into the pool's configured nodes.
    pub node_index: usize,
}

/// What one registration pass of one pool should do.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SlotPlan {
    /// Empty slots, by configured node then slot.
    pub register: Vec<SlotRegistration>,
    /// READY nodes to retire: lock non-blocking, and only if still READY set `deleting`.
    /// Ascending ids.
    pub deregister: Vec<NodeId>,
    /// At start only: READY, unallocated nodes whose labels, username, port, shell type,
    /// connection type or python path differ from the configuration. Lock non-blocking,
    /// then [`crate::update_from_config`] with the host's `check_host` keys. (Host-key
    /// changes need those keys: compare with [`crate::differs_from_config`] after
    /// `check_host` to catch them too.)
    pub update: Vec<SlotUpdate>,
}

impl SlotPlan {
    pub fn is_empty(&self) -> bool {
        self.register.is_empty() && self.deregister.is_empty() && self.update.is_empty()
    }
}

/// Plans one pass for the pool `pool` of static provider `provider`.
///
/// `configured` is the pool's `nodes`; `existing` is every node record of the provider
/// (records of other providers are ignored, so passing all nodes is fine). `at_start` is
/// true for the pass after the provider (re)starts, i.e. after a configuration change.
///
/// * Each configured host has `max-parallel-jobs` slots. Existing records (except BUILDING
///   and DELETING ones) of the host, from any pool, take the slot in their `slot` field;
///   those without a usable slot (none, negative, or taken) fill free slots, lowest first,
///   and beyond that count as extra slots.
/// * Empty slots below `max-parallel-jobs` are registered; READY records in slots at or above
///   it are deregistered, on every pass.
/// * At start only: READY records of this pool whose host is no longer configured here are
///   deregistered, and READY unallocated records of configured hosts that differ from the
///   configuration are updated. (A host moved to another pool is thus deregistered by its
///   old pool and registered by its new one; for a pool removed from the configuration,
///   plan it with no configured nodes.)
pub fn plan_slots(
    configured: &[StaticNode],
    provider: &str,
    pool: &str,
    existing: &[(NodeId, Node)],
    at_start: bool,
) -> SlotPlan {
    let mut relevant: Vec<&(NodeId, Node)> = existing
        .iter()
        .filter(|(_, node)| node.provider.as_deref() == Some(provider))
        .filter(|(_, node)| !matches!(node.state, NodeState::Building | NodeState::Deleting))
        .collect();
    relevant.sort_by_key(|(id, _)| *id);

    // Configured host -> its index (the first, should the configuration repeat a host).
    let mut index_of: BTreeMap<NodeTuple, usize> = BTreeMap::new();
    for (index, static_node) in configured.iter().enumerate() {
        index_of
            .entry(NodeTuple::of_static(static_node))
            .or_insert(index);
    }

    // Per configured node index: slot -> occupant.
    let mut slots: Vec<Vec<Option<&(NodeId, Node)>>> = configured
        .iter()
        .map(|static_node| vec![None; static_node.max_parallel_jobs as usize])
        .collect();
    let mut unslotted: Vec<(usize, &(NodeId, Node))> = Vec::new();
    let mut unconfigured: Vec<&(NodeId, Node)> = Vec::new();
    for entry in &relevant {
        let node = &entry.1;
        let Some(index) = NodeTuple::of_node(node).and_then(|tuple| index_of.get(&tuple).copied())
        else {
            unconfigured.push(entry);
            continue;
        };
        let host_slots = &mut slots[index];
        match node.slot.and_then(|slot| usize::try_from(slot).ok()) {
            Some(slot) => {
                if slot >= host_slots.len() {
                    host_slots.resize(slot + 1, None);
                }
                if host_slots[slot].is_none() {
                    host_slots[slot] = Some(entry);
                } else {
                    unslotted.push((index, entry));
                }
            }
            None => unslotted.push((index, entry)),
        }
    }
    for (index, entry) in unslotted {
        let host_slots = &mut slots[index];
        match host_slots.iter().position(Option::is_none) {
            Some(free) => host_slots[free] = Some(entry),
            None => host_slots.push(Some(entry)),
        }
    }

    let mut plan = SlotPlan::default();
    let mut deregister: BTreeSet<NodeId> = BTreeSet::new();
    for (index, host_slots) in slots.iter().enumerate() {
        let max = configured[index].max_parallel_jobs as usize;
        for (slot, occupant) in host_slots.iter().enumerate() {
            match occupant {
                None if slot < max => plan.register.push(SlotRegistration {
                    node_index: index,
                    slot: slot as u32,
                }),
                Some((id, node)) if slot >= max && node.state == NodeState::Ready => {
                    deregister.insert(*id);
                }
                _ => {}
            }
        }
    }

    if at_start {
        for (id, node) in unconfigured {
            if node.pool.as_deref() == Some(pool) && node.state == NodeState::Ready {
                deregister.insert(*id);
            }
        }
        for (index, host_slots) in slots.iter().enumerate() {
            for (id, node) in host_slots.iter().flatten() {
                if node.state == NodeState::Ready
                    && node.allocated_to.is_none()
                    && !deregister.contains(id)
                    && differs_from_config(node, &configured[index], None)
                {
                    plan.update.push(SlotUpdate {
                        node_id: *id,
                        node_index: index,
                    });
                }
            }
        }
        plan.update.sort();
    }
    plan.deregister = deregister.into_iter().collect();
    plan
}

#[cfg(test)]
mod tests {
    use super::*;
    use nodepool_model::RequestId;

    use crate::registration::registration_node;

    const PROVIDER: &str = "static-provider";
    const POOL: &str = "main";

    fn host(name: &str, max_parallel_jobs: u32) -> StaticNode {
        StaticNode {
            name: name.to_string(),
            labels: vec!["static-label".to_string()],
            username: "zuul".to_string(),
            timeout: 5,
            host_key_checking: true,
            host_keys: Vec::new(),
            connection_port: 22,
            connection_type: "ssh".to_string(),
            shell_type: None,
            max_parallel_jobs,
            python_path: "auto".to_string(),
        }
    }

    /// A record as registration made it, in `state`.
    fn record(
        id: u32,
        static_node: &StaticNode,
        slot: Option<i64>,
        state: NodeState,
    ) -> (NodeId, Node) {
        let mut node = registration_node(PROVIDER, POOL, None, static_node, 0, Vec::new(), 1.0);
        node.slot = slot;
        node.state = state;
        (NodeId::new(id), node)
    }

    fn registrations(pairs: &[(usize, u32)]) -> Vec<SlotRegistration> {
        pairs
            .iter()
            .map(|&(node_index, slot)| SlotRegistration { node_index, slot })
            .collect()
    }

    fn ids(ids: &[u32]) -> Vec<NodeId> {
        ids.iter().copied().map(NodeId::new).collect()
    }

    #[test]
    fn every_slot_of_every_host_is_registered_at_first() {
        let configured = [host("a", 2), host("b", 1), host("c", 0)];
        let plan = plan_slots(&configured, PROVIDER, POOL, &[], true);
        assert_eq!(plan.register, registrations(&[(0, 0), (0, 1), (1, 0)]));
        assert!(plan.deregister.is_empty());
        assert!(plan.update.is_empty());
    }

    #[test]
    fn occupied_slots_stay_and_building_or_deleting_records_free_theirs() {
        let a = host("a", 4);
        let existing = [
            record(1, &a, Some(0), NodeState::Ready),
            record(2, &a, Some(1), NodeState::InUse),
            record(3, &a, Some(2), NodeState::Deleting),
            record(4, &a, Some(3), NodeState::Building),
            record(5, &a, Some(3), NodeState::Used),
        ];
        let plan = plan_slots(&[a], PROVIDER, POOL, &existing, false);
        assert_eq!(plan.register, registrations(&[(0, 2)]));
        assert!(plan.deregister.is_empty());
    }

    #[test]
    fn records_without_a_usable_slot_fill_free_slots() {
        let a = host("a", 3);
        let existing = [
            record(1, &a, Some(1), NodeState::Ready),
            record(2, &a, None, NodeState::Ready),
            record(3, &a, Some(1), NodeState::Ready),
            record(4, &a, Some(-1), NodeState::Ready),
        ];
        let plan = plan_slots(std::slice::from_ref(&a), PROVIDER, POOL, &existing, false);
        // 1 keeps slot 1; 2 and 3 fill slots 0 and 2; 4 is an extra slot beyond the maximum.
        assert!(plan.register.is_empty());
        assert_eq!(plan.deregister, ids(&[4]));
    }

    #[test]
    fn max_parallel_jobs_shrink_deregisters_ready_nodes_above_it_on_every_pass() {
        let a = host("a", 1);
        let existing = [
            record(1, &a, Some(0), NodeState::Ready),
            record(2, &a, Some(1), NodeState::Ready),
            record(3, &a, Some(2), NodeState::InUse),
            record(4, &a, Some(3), NodeState::Ready),
        ];
        for at_start in [true, false] {
            let plan = plan_slots(
                std::slice::from_ref(&a),
                PROVIDER,
                POOL,
                &existing,
                at_start,
            );
            assert!(plan.register.is_empty());
            // The in-use node is left to finish its job; it is not re-registered afterwards.
            assert_eq!(plan.deregister, ids(&[2, 4]), "at_start={at_start}");
        }
    }

    #[test]
    fn removed_hosts_are_deregistered_only_at_start() {
        let a = host("a", 1);
        let gone = host("gone", 2);
        let mut other_pool = record(4, &host("elsewhere", 1), Some(0), NodeState::Ready);
        other_pool.1.pool = Some("other".to_string());
        let mut other_provider = record(5, &gone, Some(0), NodeState::Ready);
        other_provider.1.provider = Some("another-provider".to_string());
        let existing = [
            record(1, &a, Some(0), NodeState::Ready),
            record(2, &gone, Some(0), NodeState::Ready),
            record(3, &gone, Some(1), NodeState::InUse),
            other_pool,
            other_provider,
        ];
        let configured = [a];

        let at_start = plan_slots(&configured, PROVIDER, POOL, &existing, true);
        assert_eq!(at_start.deregister, ids(&[2]));
        assert!(at_start.register.is_empty());

        let later = plan_slots(&configured, PROVIDER, POOL, &existing, false);
        assert!(later.is_empty(), "{later:?}");
    }

    #[test]
    fn changed_attributes_are_updated_in_place_at_start() {
        let old = host("a", 2);
        let mut new = old.clone();
        new.labels = vec!["static-label".to_string(), "second-label".to_string()];
        new.shell_type = Some("csh".to_string());
        let mut allocated = record(3, &old, Some(1), NodeState::Ready);
        allocated.1.allocated_to = Some(RequestId::new("200", 1).expect("request id"));
        let existing = [record(1, &old, Some(0), NodeState::Ready), allocated];

        let at_start = plan_slots(std::slice::from_ref(&new), PROVIDER, POOL, &existing, true);
        assert_eq!(
            at_start.update,
            vec![SlotUpdate {
                node_id: NodeId::new(1),
                node_index: 0
            }]
        );
        assert!(at_start.register.is_empty());
        assert!(at_start.deregister.is_empty());

        let later = plan_slots(std::slice::from_ref(&new), PROVIDER, POOL, &existing, false);
        assert!(later.is_empty(), "{later:?}");
    }

    #[test]
    fn changed_username_is_a_new_host() {
        // The username is part of the node tuple (spec 7.5), so a changed username is a
        // different host: the old records are retired at start and new slots registered.
        let old = host("a", 1);
        let mut new = old.clone();
        new.username = "admin".to_string();
        let existing = [record(1, &old, Some(0), NodeState::Ready)];

        let at_start = plan_slots(std::slice::from_ref(&new), PROVIDER, POOL, &existing, true);
        assert_eq!(at_start.register, registrations(&[(0, 0)]));
        assert_eq!(at_start.deregister, ids(&[1]));
        assert!(at_start.update.is_empty());

        let later = plan_slots(std::slice::from_ref(&new), PROVIDER, POOL, &existing, false);
        assert_eq!(later.register, registrations(&[(0, 0)]));
        assert!(later.deregister.is_empty());
    }

    #[test]
    fn tuples_read_from_records() {
        let a = host("a", 1);
        let (_, mut node) = record(1, &a, Some(0), NodeState::Ready);
        assert_eq!(NodeTuple::of_node(&node), Some(NodeTuple::of_static(&a)));
        node.username = None;
        assert_eq!(
            NodeTuple::of_node(&node).map(|t| t.username),
            Some(DEFAULT_USERNAME.to_string())
        );
        node.hostname = None;
        assert_eq!(NodeTuple::of_node(&node), None);
    }
}
