//! One provider-pool's request loop (spec 2.3, 2.4), registered as a `pool` component.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use nodepool_config::{Config, LabelImage, Pool};
use nodepool_driver::Quota;
use nodepool_model::{
    Component, ComponentRole, ComponentState, NodeState, PoolDetails, RequestState,
};
use nodepool_store::{LockWait, Registration};

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
    handlers: Vec<Handler>,
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
        handlers: Vec::new(),
    };
    let mut watches = ctx.watches(true, true, true, true);
    let mut last_env: Option<Env> = None;
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
            Ok(env) => {
                last_env = Some(env);
                ctx.workers.idle(&worker.name);
            }
            Err(e) => {
                tracing::warn!(worker = %worker.name, error = %format!("{e:#}"), "pool worker pass failed");
                ctx.workers.error(&worker.name, &e);
            }
        }
        ctx.wait_for_change(&mut watches, ctx.options.timing.idle_recheck)
            .await;
    }
    if let Some(env) = last_env {
        for handler in &mut worker.handlers {
            handler.abandon(&env).await;
        }
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
        let visible = view::pools(&self.ctx.components)
            .iter()
            .any(|p| p.id.as_deref() == Some(&self.launcher_id));
        if !visible {
            // Nodepool waits for its own registration before processing requests.
            let deadline = Instant::now() + Duration::from_secs(5);
            let mut generation = self.ctx.components.generation();
            while Instant::now() < deadline {
                if view::pools(&self.ctx.components)
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
    ) -> anyhow::Result<Env> {
        let paused = self.handlers.iter().any(|h| h.paused);
        let env = Env {
            ctx: self.ctx.clone(),
            rt: rt.clone(),
            pool: pool.clone(),
            launcher_id: self.launcher_id.clone(),
            pools: view::pools(&self.ctx.components),
        };
        if !self.publish(&pool, paused).await? {
            return Ok(env);
        }
        self.ctx.stats.gauge_max_servers(&self.provider, &rt.config);
        self.run_paused(&env).await;
        self.assign(config, &env).await?;
        self.poll(&env).await;
        let paused_now = self.handlers.iter().any(|h| h.paused);
        if paused_now != paused {
            self.publish(&pool, paused_now).await?;
        }
        Ok(env)
    }

    async fn run_paused(&mut self, env: &Env) {
        let mut order: Vec<usize> = (0..self.handlers.len())
            .filter(|i| self.handlers[*i].paused)
            .collect();
        order.sort_by_key(|i| self.handlers[*i].request.priority(&self.handlers[*i].id));
        for i in order {
            let _ = self.handlers[i].run(env).await;
        }
    }

    async fn poll(&mut self, env: &Env) {
        for handler in &mut self.handlers {
            handler.poll(env).await;
        }
        self.handlers.retain(|h| !h.done);
    }

    async fn assign(&mut self, config: &Config, env: &Env) -> anyhow::Result<()> {
        let rt = &env.rt;
        if rt.config.max_concurrency == Some(0) {
            return Ok(());
        }
        let me = self.identity(rt, &env.pool);
        let nodes = self.ctx.nodes_view();
        let mut label_quota = label_quota(rt, &env.pool, &nodes);
        let mut requests: Vec<RequestEntry> = view::requests(&self.ctx.requests);
        decide::request_order(&mut requests, &me.labels);
        let mut tenant_cache: BTreeMap<String, Quota> = BTreeMap::new();
        for entry in requests {
            if self.handlers.iter().any(|h| h.id == entry.id) {
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
                continue;
            }
            if !self
                .within_tenant_limits(config, env, &nodes, &entry, &mut tenant_cache)
                .await
            {
                continue;
            }
            let reason = self.decline_reason(env, &nodes, &entry).await;
            let has_paused = self.handlers.iter().any(|h| h.paused);
            if reason.is_none() && has_paused {
                continue;
            }
            if reason.is_none()
                && let Some(max) = rt.config.max_concurrency
                && rt.active_launches() >= max as usize
            {
                continue;
            }
            let Ok(Some(lock)) = self
                .ctx
                .store
                .requests()
                .lock(&entry.id, LockWait::NonBlocking)
                .await
            else {
                continue;
            };
            let current = match self.ctx.store.requests().get(&entry.id).await {
                Ok(Some(current)) => current.value,
                _ => {
                    let _ = lock.release().await;
                    continue;
                }
            };
            if current.state != RequestState::Requested
                || current.declined_by.contains(&self.launcher_id)
            {
                let _ = lock.release().await;
                continue;
            }
            let mut handler = Handler::new(entry.id.clone(), current, lock);
            match reason {
                Some(reason) => {
                    handler.decline(env, &reason).await;
                    continue;
                }
                None => {
                    let progress = handler.run(env).await;
                    if let Some(quota) = &mut label_quota {
                        for label in handler.labels() {
                            if let Some(n) = quota.get_mut(&label) {
                                *n -= 1;
                            }
                        }
                    }
                    if progress != Progress::Finished || !handler.done {
                        self.handlers.push(handler);
                    }
                }
            }
        }
        Ok(())
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
