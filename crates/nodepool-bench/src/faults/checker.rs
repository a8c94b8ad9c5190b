//! The checker: reads what the run left (the store, the clouds' state files) and what the
//! load generator saw, and counts every way the run lost something. It trusts no launcher:
//! it reads the raw store and the clouds' files itself.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::Context as _;
use nodepool_model::{ExternalId, NodeId, NodeState};
use nodepool_store::{Store, paths};
use nodepool_testkit::load::Tally;
use serde_json::{Value, json};

use super::cluster::{Cluster, cloud_servers};

/// What the end state and the history show.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Findings {
    pub fulfilled: usize,
    pub failed: usize,
    /// Requests that never ended: timed out in the load generator, or still in the store.
    pub stuck: usize,
    /// Nodes handed to more than one request.
    pub double_allocations: usize,
    /// Cloud servers that no node names.
    pub leaked_servers: usize,
    /// READY nodes whose server is not in their cloud.
    pub ready_without_server: usize,
    /// Lock contenders still present when nothing works (a dead session's, or a lost
    /// release), and node lock directories of nodes that are gone.
    pub leaked_znodes: usize,
    /// Request lock directories of requests that are gone: Nodepool removes them after 8
    /// hours (`request_lock_age`), so they are reported, not counted as lost.
    pub old_request_lock_dirs: usize,
    /// Nodes still in the store, by state.
    pub nodes_by_state: BTreeMap<String, usize>,
}

impl Findings {
    /// Whether the run lost nothing.
    pub fn clean(&self) -> bool {
        self.stuck == 0
            && self.double_allocations == 0
            && self.leaked_servers == 0
            && self.ready_without_server == 0
            && self.leaked_znodes == 0
    }

    pub fn to_json(&self) -> Value {
        json!({
            "fulfilled": self.fulfilled,
            "failed": self.failed,
            "stuck": self.stuck,
            "double_allocations": self.double_allocations,
            "leaked_servers": self.leaked_servers,
            "ready_without_server": self.ready_without_server,
            "leaked_znodes": self.leaked_znodes,
            "old_request_lock_dirs": self.old_request_lock_dirs,
            "nodes_by_state": self.nodes_by_state,
        })
    }
}

/// Nodes handed to more than one request, from the load generator's history.
pub fn double_allocations(returned: &[NodeId]) -> usize {
    let mut seen = BTreeSet::new();
    returned.iter().filter(|id| !seen.insert(**id)).count()
}

/// Reads the end state. Call it once the run has settled (no request outstanding).
pub async fn check(
    cluster: &Cluster,
    store: &Store,
    tally: &Tally,
    timed_out: usize,
) -> anyhow::Result<Findings> {
    let backend = store.backend();
    let mut findings = Findings {
        fulfilled: tally.completed,
        failed: tally.failed_requests,
        double_allocations: double_allocations(&tally.returned_nodes),
        ..Findings::default()
    };
    let left_requests = store.requests().ids().await.context("listing requests")?;
    findings.stuck = timed_out + left_requests.len();

    // Every cloud's servers, by provider name.
    let mut servers: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for p in 0..cluster.cloud.providers {
        servers.insert(
            format!("fake-{p}"),
            cloud_servers(&cluster.state_file(p))?.into_iter().collect(),
        );
    }
    let mut named: BTreeSet<(String, String)> = BTreeSet::new();
    for id in store.nodes().ids().await.context("listing nodes")? {
        let Some(node) = store.nodes().get(id).await? else {
            continue;
        };
        let node = node.value;
        *findings
            .nodes_by_state
            .entry(node.state.as_str().to_string())
            .or_default() += 1;
        let provider = node.provider.clone().unwrap_or_default();
        if let Some(ExternalId::Id(server)) = &node.external_id {
            named.insert((provider.clone(), server.clone()));
            if node.state == NodeState::Ready
                && !servers.get(&provider).is_some_and(|s| s.contains(server))
            {
                findings.ready_without_server += 1;
            }
        }
        let lock = paths::node_lock(id);
        if backend.exists(&lock).await?.is_some() {
            findings.leaked_znodes += backend.children(&lock).await?.len();
        }
    }
    for (provider, ids) in &servers {
        findings.leaked_servers += ids
            .iter()
            .filter(|id| !named.contains(&(provider.clone(), (*id).clone())))
            .count();
    }
    let live_requests: BTreeSet<String> = left_requests.iter().map(|r| r.to_string()).collect();
    if backend.exists(paths::REQUEST_LOCKS).await?.is_some() {
        for dir in backend.children(paths::REQUEST_LOCKS).await? {
            if live_requests.contains(&dir) {
                continue;
            }
            let contenders = backend
                .children(&format!("{}/{dir}", paths::REQUEST_LOCKS))
                .await
                .unwrap_or_default()
                .len();
            if contenders > 0 {
                findings.leaked_znodes += contenders;
            } else {
                findings.old_request_lock_dirs += 1;
            }
        }
    }
    Ok(findings)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_returned_twice_is_a_double_allocation() {
        let id = |n: u64| NodeId::parse(&format!("{n:010}")).expect("id");
        assert_eq!(double_allocations(&[id(1), id(2), id(3)]), 0);
        assert_eq!(double_allocations(&[id(1), id(2), id(1), id(1)]), 2);
        let clean = Findings::default();
        assert!(clean.clean());
        let lost = Findings {
            leaked_servers: 1,
            ..Findings::default()
        };
        assert!(!lost.clean());
    }
}
