//! One provider-pool's request loop (spec 2.3, 2.4), registered as a `pool` component.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use nodepool_config::{Config, LabelImage, Pool};
use nodepool_driver::Quota;
use nodepool_model::{
    Component, ComponentRole, ComponentState, NodeRequest, NodeState, PoolDetails, RequestId,
    RequestPriority, RequestState,
};
use nodepool_store::{LockDir, LockWait, Registration};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::context::Context;
use crate::decide::{self, DeclineFacts, PoolIdentity};
use crate::handler::{Env, Handler, Progress};
use crate::providers::{self, ProviderRuntime};
use crate::view::{self, NodeEntry, RequestEntry};

struct Worker {
    ctx: Arc<Context>,
    provider: String,
    pool: String,
    name: String,
    launcher_id: String,
    registration: Option<(Registration, Component)>,
    /// One task per request being served; requests are served concurrently.
    active: HashMap<RequestId, Active>,
    /// Requests this worker has locked before (and so made the lock directory of), among
    /// those still in the cache: the next lock need not guess.
    locked_before: std::collections::HashSet<RequestId>,
    /// Whether the last pass left something that a node change can unblock (a paused
    /// request, a static pool's free nodes, a tenant limit): only then does a node change
    /// wake the worker. Otherwise nodes change many times per request and each wake-up
    /// would walk every waiting request for nothing.
    waits_for_nodes: bool,
}

/// A request task as its worker sees it.
#[derive(Debug)]
struct Active {
    handle: JoinHandle<()>,
    priority: RequestPriority,
    /// Set by the task while it waits for quota.
    paused: Arc<AtomicBool>,
    /// Wakes a paused task to try again.
    wake: Arc<Notify>,
}

pub async fn run(ctx: Arc<Context>, provider: String, pool: String) {
    let launcher_id = format!(
        "{}-PoolWorker.{provider}-{pool}-{}",
        ctx.options.fqdn,
        uuid::Uuid::new_v4().simple()
    );
    let mut worker = Worker {
        name: format!("pool:{provider}-{pool}"),
        ctx: ctx.clone(),
        provider,
        pool,
        launcher_id,
        registration: None,
        active: HashMap::new(),
        locked_before: Default::default(),
        waits_for_nodes: true,
    };
    let mut watches = ctx.watches(true, true, true, true);
    loop {
        if ctx.is_stopping() {
            break;
        }
        let config = ctx.config();
        let (Some(rt), Some(pool_config)) = (
            ctx.provider(&worker.provider),
            config
                .providers
                .get(&worker.provider)
                .and_then(|p| p.pool(&worker.pool))
                .cloned(),
        ) else {
            tracing::info!(provider = %worker.provider, pool = %worker.pool, "pool left the configuration; worker stops");
            break;
        };
        ctx.workers.busy(&worker.name);
        match worker.pass(&config, rt, pool_config).await {
            Ok(()) => {
                ctx.workers.idle(&worker.name);
            }
            Err(e) => {
                tracing::warn!(worker = %worker.name, error = %format!("{e:#}"), "pool worker pass failed");
                ctx.workers.error(&worker.name, &e);
            }
        }
        watches.follow_nodes(worker.waits_for_nodes);
        ctx.wait_for_change(&mut watches, ctx.options.timing.idle_recheck)
            .await;
    }
    // Request tasks see the shutdown and hand their requests back.
    for (_, active) in worker.active.drain() {
        active.wake.notify_one();
        let _ = active.handle.await;
    }
    if let Some((reg, _)) = &worker.registration {
        let _ = ctx.store.components().unregister(reg).await;
    }
    ctx.workers.stopped(&worker.name);
}

impl Worker {
    fn identity(&self, rt: &ProviderRuntime, pool: &Pool) -> PoolIdentity {
        PoolIdentity {
            launcher_id: self.launcher_id.clone(),
            provider: rt.name().to_string(),
            pool: pool.name.clone(),
            priority: pool.priority,
            labels: pool.labels.keys().cloned().collect(),
        }
    }

    /// Registers or updates our pool component; true once it is visible in our own view.
    async fn publish(&mut self, pool: &Pool, paused: bool) -> anyhow::Result<bool> {
        let details = PoolDetails {
            id: Some(self.launcher_id.clone()),
            name: Some(pool.name.clone()),
            provider_name: Some(self.provider.clone()),
            supported_labels: pool.labels.keys().cloned().collect(),
            priority: pool.priority,
            paused,
        };
        match &mut self.registration {
            None => {
                let component = Component {
                    hostname: self.ctx.options.hostname.clone(),
                    state: ComponentState::Running,
                    version: Some(env!("CARGO_PKG_VERSION").to_string()),
                    model_api: nodepool_model::component::MODEL_API,
                    role: ComponentRole::Pool(details),
                    extra: Default::default(),
                };
                let reg = self.ctx.store.components().register(&component).await?;
                self.registration = Some((reg, component));
            }
            Some((reg, component)) => {
                if component.role != ComponentRole::Pool(details.clone()) {
                    component.role = ComponentRole::Pool(details);
                    self.ctx.store.components().update(reg, component).await?;
                }
            }
        }
        let visible = self
            .ctx
            .pools_view()
            .iter()
            .any(|p| p.id.as_deref() == Some(&self.launcher_id));
        if !visible {
            // Nodepool waits for its own registration before processing requests.
            let deadline = Instant::now() + Duration::from_secs(5);
            let mut generation = self.ctx.components.generation();
            while Instant::now() < deadline {
                if self
                    .ctx
                    .pools_view()
                    .iter()
                    .any(|p| p.id.as_deref() == Some(&self.launcher_id))
                {
                    return Ok(true);
                }
                let _ = tokio::time::timeout_at(deadline.into(), generation.changed()).await;
            }
            return Ok(false);
        }
        Ok(true)
    }

    async fn pass(
        &mut self,
        config: &Config,
        rt: Arc<ProviderRuntime>,
        pool: Pool,
    ) -> anyhow::Result<()> {
        self.active.retain(|_, a| !a.handle.is_finished());
        self.waits_for_nodes = true;
        let paused = self.paused();
        let env = Env {
            ctx: self.ctx.clone(),
            rt: rt.clone(),
            pool: pool.clone(),
            launcher_id: self.launcher_id.clone(),
            pools: self.ctx.pools_view(),
        };
        if !self.publish(&pool, paused).await? {
            return Ok(());
        }
        self.ctx.stats.gauge_max_servers(&self.provider, &rt.config);
        // Paused requests retry in priority order, one at a time.
        if let Some(first) = self
            .active
            .values()
            .filter(|a| a.paused.load(Ordering::SeqCst))
            .min_by(|a, b| a.priority.cmp(&b.priority))
        {
            first.wake.notify_one();
        }
        let left_waiting = self.assign(config, &env).await?;
        self.waits_for_nodes = left_waiting || rt.is_static() || self.paused();
        Ok(())
    }

    fn paused(&self) -> bool {
        self.active
            .values()
            .any(|a| a.paused.load(Ordering::SeqCst) && !a.handle.is_finished())
    }

    /// Accepts (or declines) what this pool can take now. True when a request was left
    /// waiting on a limit that a node change can lift.
    async fn assign(&mut self, config: &Config, env: &Env) -> anyhow::Result<bool> {
        let rt = &env.rt;
        if rt.config.max_concurrency == Some(0) {
            return Ok(false);
        }
        let mut waits_for_nodes = false;
        let me = self.identity(rt, &env.pool);
        let nodes = self.ctx.nodes_view();
        let mut label_quota = label_quota(rt, &env.pool, &nodes);
        let mut requests: Vec<RequestEntry> = self.ctx.requests_view();
        if !self.locked_before.is_empty() {
            let present: std::collections::HashSet<&RequestId> =
                requests.iter().map(|r| &r.id).collect();
            self.locked_before.retain(|id| present.contains(id));
        }
        decide::request_order(&mut requests, &me.labels);
        let mut tenant_cache: BTreeMap<String, Quota> = BTreeMap::new();
        let mut candidates: Vec<(RequestEntry, Option<String>)> = Vec::new();
        for entry in requests {
            if self.active.contains_key(&entry.id) {
                continue;
            }
            if decide::pre_check(&entry.request, &me, &env.pools).is_some() {
                continue;
            }
            let served: Vec<&String> = entry
                .request
                .node_types
                .iter()
                .filter(|l| me.labels.contains(*l))
                .collect();
            if let Some(quota) = &label_quota
                && served
                    .iter()
                    .any(|l| quota.get(*l).copied().unwrap_or(0) <= 0)
            {
                waits_for_nodes = true;
                continue;
            }
            if !self
                .within_tenant_limits(config, env, &nodes, &entry, &mut tenant_cache)
                .await
            {
                waits_for_nodes = true;
                continue;
            }
            let reason = self.decline_reason(env, &nodes, &entry).await;
            if reason.is_none() && self.paused() {
                continue;
            }
            if reason.is_none()
                && let Some(max) = rt.config.max_concurrency
                && rt.active_launches() + candidates.len() >= max as usize
            {
                continue;
            }
            if let Some(quota) = &mut label_quota {
                for label in &served {
                    if let Some(n) = quota.get_mut(*label) {
                        *n -= 1;
                    }
                }
            }
            candidates.push((entry, reason));
        }
        if candidates.is_empty() {
            return Ok(waits_for_nodes);
        }
        // Taking request locks costs round trips: take them all at once, then accept in
        // priority order. Quota and node creation stay in this order; the launches and the
        // waiting run in one task per request.
        let mut locking = tokio::task::JoinSet::new();
        for (index, (entry, reason)) in candidates.iter().enumerate() {
            let store = self.ctx.store.clone();
            let id = entry.id.clone();
            let launcher_id = self.launcher_id.clone();
            let expect = if self.locked_before.contains(&entry.id) {
                LockDir::Exists
            } else {
                request_lock_dir(&entry.request, &env.pools)
            };
            // A request to accept is taken as the cache shows it (its first write checks
            // the version); one to decline is re-read, as a decline rewrites it whole.
            let cached = reason.is_none().then(|| entry.clone());
            locking.spawn(async move {
                let handler = lock_request(&store, &id, &launcher_id, expect, cached).await;
                (index, handler)
            });
        }
        self.locked_before
            .extend(candidates.iter().map(|(entry, _)| entry.id.clone()));
        let mut locked: Vec<Option<Handler>> = (0..candidates.len()).map(|_| None).collect();
        while let Some(joined) = locking.join_next().await {
            if let Ok((index, Some(handler))) = joined {
                locked[index] = Some(handler);
            }
        }
        let mut stop_accepting = false;
        for ((entry, reason), handler) in candidates.into_iter().zip(locked) {
            let Some(mut handler) = handler else { continue };
            let progress = match reason {
                Some(reason) => {
                    let env = env.clone();
                    tokio::spawn(async move { handler.decline(&env, &reason).await });
                    continue;
                }
                None if stop_accepting => {
                    // A request before it had to wait for quota: leave this one for later.
                    handler.unlock().await;
                    continue;
                }
                None => handler.run(env).await,
            };
            if progress == Progress::Paused {
                stop_accepting = true;
            }
            if progress == Progress::Finished {
                // Released at quota by a driver that does not pause: try again when nodes
                // free room.
                waits_for_nodes = true;
                continue;
            }
            let paused = Arc::new(AtomicBool::new(progress == Progress::Paused));
            let wake = Arc::new(Notify::new());
            let handle = tokio::spawn(serve(
                env.clone(),
                handler,
                progress,
                paused.clone(),
                wake.clone(),
            ));
            self.active.insert(
                entry.id.clone(),
                Active {
                    handle,
                    priority: entry.request.priority(&entry.id),
                    paused,
                    wake,
                },
            );
        }
        Ok(waits_for_nodes)
    }

    /// The first decline reason for this request in this pool (spec 2.5).
    async fn decline_reason(
        &self,
        env: &Env,
        nodes: &[NodeEntry],
        entry: &RequestEntry,
    ) -> Option<String> {
        let rt = &env.rt;
        let pool = &env.pool;
        let mut unavailable = Vec::new();
        let mut needs = Quota::zero();
        for label in &entry.request.node_types {
            if !pool.labels.contains_key(label) {
                unavailable.push(label.clone());
                continue;
            }
            match rt.quota_for_label(&pool.name, label).await {
                Ok(need) => needs = needs.add(&need),
                Err(_) => unavailable.push(label.clone()),
            }
        }
        let images_available = if unavailable.is_empty() {
            self.images_available(env, &entry.request.node_types).await
        } else {
            true
        };
        let fits = if rt.is_static() || !unavailable.is_empty() {
            true
        } else {
            let provider_ok = providers::ignores_provider_quota(pool)
                || rt
                    .provider_limits(nodes, self.ctx.options.timing.quota_cache_age)
                    .await
                    .subtract(&needs)
                    .non_negative();
            provider_ok && providers::pool_limits(pool).subtract(&needs).non_negative()
        };
        decide::decline_reason(&DeclineFacts {
            max_servers: pool.max_servers,
            unavailable_labels: unavailable,
            images_available,
            fits_empty_provider: fits,
        })
    }

    async fn images_available(&self, env: &Env, labels: &[String]) -> bool {
        if !env.rt.config.driver.manages_images() {
            return true;
        }
        for label in labels {
            match env.pool.labels.get(label).map(|l| &l.image) {
                Some(LabelImage::Diskimage(image))
                    if view::latest_ready_upload(&self.ctx.images, image, env.rt.name())
                        .is_none() =>
                {
                    return false;
                }
                Some(LabelImage::CloudImage(_)) => {
                    if let Some(cloud) = &env.rt.cloud
                        && !cloud.label_ready(&env.pool.name, label).await
                    {
                        return false;
                    }
                }
                _ => {}
            }
        }
        true
    }

    /// Tenant resource limits (spec 2.11): defer requests that would exceed them.
    async fn within_tenant_limits(
        &self,
        config: &Config,
        env: &Env,
        nodes: &[NodeEntry],
        entry: &RequestEntry,
        cache: &mut BTreeMap<String, Quota>,
    ) -> bool {
        let Some(tenant) = &entry.request.tenant_name else {
            return true;
        };
        let Some(limits) = config.tenant_resource_limits.get(tenant) else {
            return true;
        };
        let mut limit = Quota::unlimited();
        for (resource, amount) in limits {
            limit.set(resource, *amount as f64);
        }
        let used = cache
            .entry(tenant.clone())
            .or_insert_with(|| decide::tenant_usage(nodes, tenant))
            .clone();
        let mut needed = Quota::zero();
        for label in &entry.request.node_types {
            if env.pool.labels.contains_key(label) {
                match env.rt.quota_for_label(&env.pool.name, label).await {
                    Ok(q) => needed = needed.add(&q),
                    Err(_) => return false,
                }
            }
        }
        let fits = limit.subtract(&used).subtract(&needed).non_negative();
        if fits {
            // Count it now: later requests of this pass must see this one's share.
            cache.insert(tenant.clone(), used.add(&needed));
        }
        fits
    }
}

/// Static pools accept requests only while a matching node is free (spec 7.5):
/// READY unallocated nodes per label. Other providers: no per-label limit.
fn label_quota(
    rt: &ProviderRuntime,
    pool: &Pool,
    nodes: &[NodeEntry],
) -> Option<BTreeMap<String, i64>> {
    if !rt.is_static() {
        return None;
    }
    let mut quota: BTreeMap<String, i64> = pool.labels.keys().map(|l| (l.clone(), 0)).collect();
    for e in nodes {
        let n = &e.node;
        if n.state == NodeState::Ready
            && n.allocated_to.is_none()
            && n.provider.as_deref() == Some(rt.name())
            && n.pool.as_deref() == Some(pool.name.as_str())
        {
            for label in &n.node_type {
                if let Some(count) = quota.get_mut(label) {
                    *count += 1;
                }
            }
        }
    }
    Some(quota)
}

/// A request no pool has declined, that only this pool can serve, was probably never
/// locked: its lock directory is not there yet. (Guessing wrong costs a failed
/// transaction, so with other pools able to serve it, check instead.)
fn request_lock_dir(request: &NodeRequest, pools: &[PoolDetails]) -> LockDir {
    let able = pools
        .iter()
        .filter(|p| decide::supports_all(p, request))
        .count();
    if request.declined_by.is_empty() && able <= 1 {
        LockDir::Missing
    } else {
        LockDir::Unknown
    }
}

/// Takes a request's lock and re-reads it (or, given the cache's copy, trusts that until
/// its first write checks the version); `None` when someone else has it or it is no
/// longer ours to take (spec 2.4 step 11).
async fn lock_request(
    store: &nodepool_store::Store,
    id: &RequestId,
    launcher_id: &str,
    expect: LockDir,
    cached: Option<RequestEntry>,
) -> Option<Handler> {
    let requests = store.requests();
    let lock = requests
        .lock_expecting(id, LockWait::NonBlocking, expect)
        .await
        .ok()??;
    if let Some(entry) = cached {
        let request = entry.request.as_ref().clone();
        return Some(Handler::from_cache(
            id.clone(),
            request,
            entry.version,
            lock,
        ));
    }
    match requests.get(id).await {
        Ok(Some(current))
            if current.value.state == RequestState::Requested
                && !current.value.declined_by.iter().any(|d| d == launcher_id) =>
        {
            Some(Handler::new(id.clone(), current.value, lock))
        }
        _ => {
            let _ = lock.release().await;
            None
        }
    }
}

/// Serves an accepted request to the end: launches the nodes `run` created, waits for them,
/// fulfils or declines; while paused at quota, waits to be woken by its worker and tries
/// again.
async fn serve(
    env: Env,
    mut handler: Handler,
    mut progress: Progress,
    paused: Arc<AtomicBool>,
    wake: Arc<Notify>,
) {
    let ctx = env.ctx.clone();
    let mut shutdown = ctx.shutdown.clone();
    loop {
        match progress {
            Progress::Finished => return,
            Progress::Running => {
                handler.start_launches(&env).await;
                handler.wait_launches().await;
                if ctx.is_stopping() {
                    handler.abandon(&env).await;
                    return;
                }
                if handler.poll(&env).await {
                    return;
                }
                // Aborted nodes: replacements are launched once the worker wakes us.
                progress = Progress::Paused;
            }
            Progress::Paused => {
                paused.store(true, Ordering::SeqCst);
                ctx.progressed();
                tokio::select! {
                    _ = wake.notified() => {}
                    _ = shutdown.wait_for(|s| *s) => {}
                }
                if ctx.is_stopping() {
                    paused.store(false, Ordering::SeqCst);
                    handler.abandon(&env).await;
                    return;
                }
                // Still paused while it retries, so the worker accepts nothing new that
                // could take the room this (higher-priority) request is waiting for.
                progress = handler.run(&env).await;
                paused.store(progress == Progress::Paused, Ordering::SeqCst);
            }
        }
        if ctx.is_stopping() {
            handler.abandon(&env).await;
            return;
        }
    }
}
