//! One configured provider at run time: its driver object and the launcher's bookkeeping
//! about it (quota caches, launches in flight, leak candidates).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use nodepool_config::{DriverKind, LabelImage, Pool, PoolSettings, Provider, ProviderSettings};
use nodepool_driver::{DriverRegistry, Quota};
use nodepool_model::NodeId;

use crate::decide;
use crate::view::{NodeEntry, lock};

/// Usage sums per pool (`None`: all pools) as of one node snapshot. A newer snapshot brings
/// the sums forward by the nodes that changed, so a quota check does not walk every node.
#[derive(Debug)]
struct UsageMemo {
    snapshot: Arc<Vec<NodeEntry>>,
    sums: BTreeMap<Option<String>, Quota>,
    /// `need_version` when the sums were made: a node without `resources` counts its
    /// label's need, so a newly learnt need means summing again.
    need_version: u64,
    /// Snapshots brought forward since the last full sum.
    updates: u32,
}

/// Sum afresh after this many updates, so rounding in odd (fractional) resources cannot
/// build up.
const USAGE_FULL_SUM_EVERY: u32 = 10_000;

/// How long a node created here counts towards quota before the cache shows it.
const RECENT_NODE_AGE: Duration = Duration::from_secs(30);

/// Launch settings of a provider, whatever its driver.
#[derive(Debug, Clone, Copy)]
pub struct LaunchSettings {
    pub boot_timeout: Duration,
    pub launch_timeout: Option<Duration>,
    pub launch_retries: u32,
}

#[derive(Debug)]
pub struct ProviderRuntime {
    pub config: Provider,
    /// The cloud; `None` for static providers, which launch nothing.
    pub cloud: Option<Arc<dyn nodepool_driver::Provider>>,
    /// What one node of (pool, label) needs; errors mark the label unavailable.
    label_quota: Mutex<HashMap<(String, String), Result<Quota, String>>>,
    /// Moves whenever `label_quota` learns an answer.
    need_version: AtomicU64,
    /// Labels of each pool, by pool name.
    pool_labels: BTreeMap<String, BTreeSet<String>>,
    /// The provider's limits minus unmanaged usage, and when they were read.
    limits: tokio::sync::Mutex<Option<(Instant, Quota)>>,
    /// Nodes this process created that the node cache may not show yet, so quota counts
    /// them at once.
    pub recently_created: Mutex<HashMap<NodeId, (String, Quota, Instant)>>,
    /// Usage sums of the last node snapshot, per pool (`None`: all pools). Holding the
    /// snapshot keeps its identity unique while the memo refers to it.
    usage_memo: Mutex<Option<UsageMemo>>,
    /// Launches running now, for `max-concurrency`.
    pub active_launches: AtomicUsize,
    /// Leak candidates seen in the previous cleanup pass: (kind, cloud id).
    pub leak_candidates: Mutex<HashSet<(String, String)>>,
    /// Static providers: one registration pass at a time, so a slot is never filled twice.
    pub static_sync: tokio::sync::Mutex<()>,
    /// Held while a request checks quota and records its new node, so concurrent requests
    /// never both take the last room.
    pub quota_gate: tokio::sync::Mutex<()>,
}

impl ProviderRuntime {
    pub fn build(config: &Provider, drivers: &DriverRegistry) -> anyhow::Result<ProviderRuntime> {
        let cloud = match config.driver {
            DriverKind::Static => None,
            _ => Some(drivers.build(config)?),
        };
        Ok(ProviderRuntime {
            config: config.clone(),
            cloud,
            label_quota: Mutex::new(HashMap::new()),
            need_version: AtomicU64::new(0),
            pool_labels: config
                .pools
                .iter()
                .map(|p| (p.name.clone(), p.labels.keys().cloned().collect()))
                .collect(),
            limits: tokio::sync::Mutex::new(None),
            recently_created: Mutex::new(HashMap::new()),
            usage_memo: Mutex::new(None),
            active_launches: AtomicUsize::new(0),
            leak_candidates: Mutex::new(HashSet::new()),
            static_sync: tokio::sync::Mutex::new(()),
            quota_gate: tokio::sync::Mutex::new(()),
        })
    }

    pub fn name(&self) -> &str {
        &self.config.name
    }

    pub fn is_static(&self) -> bool {
        self.config.driver == DriverKind::Static
    }

    pub fn launch_settings(&self) -> LaunchSettings {
        let (boot, launch, retries) = match &self.config.settings {
            ProviderSettings::OpenStack(s) => {
                (s.boot_timeout, Some(s.launch_timeout), s.launch_retries)
            }
            ProviderSettings::Aws(s) => (s.boot_timeout, Some(s.launch_timeout), s.launch_retries),
            ProviderSettings::Qemu(s) => (s.boot_timeout, Some(s.launch_timeout), s.launch_retries),
            ProviderSettings::Container(s) => (s.boot_timeout, None, s.launch_retries),
            ProviderSettings::Kubernetes(s) => (60, None, s.launch_retries),
            ProviderSettings::Static => (60, None, 1),
        };
        LaunchSettings {
            boot_timeout: Duration::from_secs(boot),
            launch_timeout: launch.filter(|t| *t > 0).map(Duration::from_secs),
            launch_retries: retries.max(1),
        }
    }

    /// What one node of `label` needs (cached per label, as Nodepool does).
    pub async fn quota_for_label(&self, pool: &str, label: &str) -> Result<Quota, String> {
        let key = (pool.to_string(), label.to_string());
        if let Some(cached) = lock(&self.label_quota).get(&key) {
            return cached.clone();
        }
        let result = match &self.cloud {
            None => Ok(Quota::one_instance().with("cores", 0.0).with("ram", 0.0)),
            Some(cloud) => cloud
                .quota_for_label(pool, label)
                .await
                .map_err(|e| e.to_string()),
        };
        // Transient lookups are retried next time; answers (and configuration errors) stay.
        lock(&self.label_quota).insert(key, result.clone());
        self.need_version.fetch_add(1, Ordering::SeqCst);
        result
    }

    /// The cached need, or one instance when not looked up yet (for usage sums).
    pub fn cached_need(&self, pool: &str, label: &str) -> Quota {
        lock(&self.label_quota)
            .get(&(pool.to_string(), label.to_string()))
            .and_then(|r| r.clone().ok())
            .unwrap_or_else(Quota::one_instance)
    }

    /// The provider's limits as last read, without waiting for a read in progress.
    pub fn cached_limits(&self) -> Option<Quota> {
        self.limits
            .try_lock()
            .ok()
            .and_then(|l| l.as_ref().map(|(_, q)| q.clone()))
    }

    pub fn invalidate_quota(&self) {
        if let Ok(mut limits) = self.limits.try_lock() {
            *limits = None;
        }
    }

    /// The provider's limits minus what others use in the account (spec 2.10), cached for
    /// `max_age`; on a cloud error the stale value (or no limit) is used.
    pub async fn provider_limits(&self, nodes: &[NodeEntry], max_age: Duration) -> Quota {
        let Some(cloud) = &self.cloud else {
            return Quota::unlimited();
        };
        let mut cached = self.limits.lock().await;
        if let Some((at, quota)) = cached.as_ref()
            && at.elapsed() < max_age
        {
            return quota.clone();
        }
        let limits = match cloud.quota_limits().await {
            Ok(limits) => limits,
            Err(e) => {
                tracing::warn!(provider = self.name(), error = %e, "cannot read quota limits");
                return cached
                    .as_ref()
                    .map_or_else(Quota::unlimited, |(_, q)| q.clone());
            }
        };
        let known: HashSet<String> = nodes.iter().map(|e| e.id.to_string()).collect();
        let unmanaged = match cloud.list_instances().await {
            Ok(instances) => instances
                .iter()
                .filter(|i| {
                    !(i.provider_name() == Some(self.name())
                        && i.node_id().is_some_and(|id| known.contains(id)))
                })
                .filter_map(|i| i.resources.clone())
                .fold(Quota::zero(), |acc, q| acc.add(&q)),
            Err(e) => {
                tracing::warn!(provider = self.name(), error = %e, "cannot list instances for quota");
                Quota::zero()
            }
        };
        let estimate = limits.subtract(&unmanaged);
        *cached = Some((Instant::now(), estimate.clone()));
        estimate
    }

    /// Nodepool's usage of this provider (and pool), including nodes just created.
    pub fn usage(&self, nodes: &Arc<Vec<NodeEntry>>, pool: Option<&str>) -> Quota {
        let mut used = self.base_usage(nodes, pool);
        let mut recent = lock(&self.recently_created);
        // Seen in the cache (snapshots are in id order), or old enough that the cache must
        // have shown it (and its deletion) by now.
        recent.retain(|id, (_, _, at)| {
            nodes.binary_search_by_key(id, |e| e.id).is_err() && at.elapsed() < RECENT_NODE_AGE
        });
        for (node_pool, q, _) in recent.values() {
            if pool.is_none_or(|p| p == node_pool) {
                used.add_assign(q);
            }
        }
        used
    }

    /// Usage of the nodes in one snapshot: summed once per pool, then brought forward from
    /// snapshot to snapshot by the nodes that changed (many requests check quota between
    /// two cache changes, and between two changes few nodes move).
    fn base_usage(&self, nodes: &Arc<Vec<NodeEntry>>, pool: Option<&str>) -> Quota {
        let key = pool.map(str::to_string);
        let need = |p: &str, l: &str| self.cached_need(p, l);
        let need_version = self.need_version.load(Ordering::SeqCst);
        let mut memo = lock(&self.usage_memo);
        if let Some(m) = memo.as_mut()
            && m.need_version == need_version
            && m.updates < USAGE_FULL_SUM_EVERY
        {
            if !Arc::ptr_eq(&m.snapshot, nodes) {
                let before = std::mem::replace(&mut m.snapshot, nodes.clone());
                let sums = &mut m.sums;
                crate::view::changed_nodes(&before, nodes, |old, new| {
                    for (sum_pool, sum) in sums.iter_mut() {
                        for (node, factor) in [(old, -1.0), (new, 1.0)] {
                            if let Some(node) = node {
                                decide::add_node_usage(
                                    sum,
                                    node,
                                    self.name(),
                                    sum_pool.as_deref(),
                                    &self.pool_labels,
                                    need,
                                    factor,
                                );
                            }
                        }
                    }
                });
                m.updates += 1;
            }
            if let Some(sum) = m.sums.get(&key) {
                #[cfg(debug_assertions)]
                self.check_brought_forward(nodes, pool, sum);
                return sum.clone();
            }
            let sum = decide::usage(nodes, self.name(), pool, &self.pool_labels, need);
            m.sums.insert(key, sum.clone());
            return sum;
        }
        let sum = decide::usage(nodes, self.name(), pool, &self.pool_labels, need);
        *memo = Some(UsageMemo {
            snapshot: nodes.clone(),
            sums: BTreeMap::from([(key, sum.clone())]),
            need_version,
            updates: 0,
        });
        sum
    }

    /// Debug builds (every test) check each sum brought forward against a fresh one.
    #[cfg(debug_assertions)]
    fn check_brought_forward(&self, nodes: &[NodeEntry], pool: Option<&str>, sum: &Quota) {
        let fresh = decide::usage(nodes, self.name(), pool, &self.pool_labels, |p, l| {
            self.cached_need(p, l)
        });
        let resources: BTreeSet<&str> = sum
            .resources()
            .chain(fresh.resources())
            .map(|(k, _)| k)
            .collect();
        assert!(
            resources.iter().all(|r| sum.get(r) == fresh.get(r)),
            "usage brought forward {sum:?} differs from a fresh sum {fresh:?}"
        );
    }

    /// Counts a node this process just created until the cache shows it.
    pub fn created(&self, id: NodeId, pool: &str, need: Quota) {
        lock(&self.recently_created).insert(id, (pool.to_string(), need, Instant::now()));
    }

    pub fn launch_started(&self) {
        self.active_launches.fetch_add(1, Ordering::SeqCst);
    }

    pub fn launch_ended(&self) {
        self.active_launches.fetch_sub(1, Ordering::SeqCst);
    }

    pub fn active_launches(&self) -> usize {
        self.active_launches.load(Ordering::SeqCst)
    }
}

/// Pool limits from `max-servers` and `max-*` (spec 2.10).
pub fn pool_limits(pool: &Pool) -> Quota {
    Quota::limits(pool.max_servers, &pool.max_resources)
}

/// Whether the pool ignores the provider's (cloud) quota.
pub fn ignores_provider_quota(pool: &Pool) -> bool {
    matches!(&pool.settings, PoolSettings::OpenStack(p) if p.ignore_provider_quota)
}

/// Whether nodescan gathers host keys for a label.
pub fn host_key_checking(pool: &Pool, label: &str) -> bool {
    use nodepool_config::LabelSettings;
    let pool_setting = match &pool.settings {
        PoolSettings::OpenStack(p) => p.host_key_checking,
        PoolSettings::Aws(p) => p.host_key_checking,
        PoolSettings::Qemu(p) | PoolSettings::Container(p) => p.host_key_checking,
        PoolSettings::Static(_) | PoolSettings::Kubernetes(_) => true,
    };
    let label_setting = pool.labels.get(label).map(|l| match &l.settings {
        LabelSettings::OpenStack(s) => s.host_key_checking,
        LabelSettings::Aws(s) => s.host_key_checking,
        LabelSettings::Qemu(s) | LabelSettings::Container(s) => s.host_key_checking,
        _ => true,
    });
    pool_setting && label_setting.unwrap_or(true)
}

/// Whether the label's console log is fetched on a failed boot.
pub fn console_log(pool: &Pool, label: &str) -> bool {
    use nodepool_config::LabelSettings;
    pool.labels.get(label).is_some_and(|l| match &l.settings {
        LabelSettings::OpenStack(s) => s.console_log,
        LabelSettings::Qemu(s) | LabelSettings::Container(s) => s.console_log,
        _ => false,
    })
}

/// The diskimage a label boots from, if any.
pub fn label_diskimage<'a>(pool: &'a Pool, label: &str) -> Option<&'a str> {
    match pool.labels.get(label).map(|l| &l.image) {
        Some(LabelImage::Diskimage(name)) => Some(name),
        _ => None,
    }
}
