//! What changed between two configurations, so a reload restarts only what it must.

use std::collections::BTreeMap;

use crate::config::{Config, Pool};

/// Names added, changed and removed in one kind of section.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changes<K> {
    pub added: Vec<K>,
    pub changed: Vec<K>,
    pub removed: Vec<K>,
}

impl<K> Changes<K> {
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.changed.is_empty() && self.removed.is_empty()
    }
}

/// The difference between an old and a new configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfigDiff {
    pub providers: Changes<String>,
    /// `(provider, pool)`.
    pub pools: Changes<(String, String)>,
    pub labels: Changes<String>,
    pub diskimages: Changes<String>,
    /// ZooKeeper servers, TLS, chroot or timeout changed (reconnect needed).
    pub zookeeper_changed: bool,
    /// Webapp address or port changed (re-bind needed).
    pub webapp_changed: bool,
    /// Anything else at the top level (directories, hold age, tenant limits).
    pub globals_changed: bool,
}

impl ConfigDiff {
    pub fn is_empty(&self) -> bool {
        *self == ConfigDiff::default()
    }
}

fn compare<K: Ord + Clone, V: PartialEq>(old: &BTreeMap<K, V>, new: &BTreeMap<K, V>) -> Changes<K> {
    let mut changes = Changes {
        added: Vec::new(),
        changed: Vec::new(),
        removed: Vec::new(),
    };
    for (key, value) in new {
        match old.get(key) {
            None => changes.added.push(key.clone()),
            Some(previous) if previous != value => changes.changed.push(key.clone()),
            Some(_) => {}
        }
    }
    changes.removed = old
        .keys()
        .filter(|k| !new.contains_key(*k))
        .cloned()
        .collect();
    changes
}

fn pools(config: &Config) -> BTreeMap<(String, String), &Pool> {
    config
        .providers
        .values()
        .flat_map(|p| {
            p.pools
                .iter()
                .map(move |pool| ((p.name.clone(), pool.name.clone()), pool))
        })
        .collect()
}

/// Computes what a reload from `old` to `new` must act on.
pub fn diff(old: &Config, new: &Config) -> ConfigDiff {
    ConfigDiff {
        providers: compare(&old.providers, &new.providers),
        pools: compare(&pools(old), &pools(new)),
        labels: compare(&old.labels, &new.labels),
        diskimages: compare(&old.diskimages, &new.diskimages),
        zookeeper_changed: old.zookeeper != new.zookeeper,
        webapp_changed: old.webapp != new.webapp,
        globals_changed: old.database != new.database
            || old.elements_dir != new.elements_dir
            || old.images_dir != new.images_dir
            || old.build_log_dir != new.build_log_dir
            || old.build_log_retention != new.build_log_retention
            || old.max_hold_age != new.max_hold_age
            || old.tenant_resource_limits != new.tenant_resource_limits,
    }
}
