//! The launcher's main loop (spec 2.1, 2.9): configuration reload, provider reconciliation,
//! pool worker supervision, min-ready.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use nodepool_config::{Config, LabelImage};
use nodepool_model::{
    Component, ComponentRole, ComponentState, NodeRequest, RequestId, RequestState,
    ids::random_uuid_hex, request::MIN_READY_PRECEDENCE,
};
use tokio::task::JoinHandle;

use crate::clock::now;
use crate::context::{Context, config_stamp, load_config};
use crate::providers::ProviderRuntime;
use crate::{cleanup, deleter, pool_worker, static_sync, view};

const NAME: &str = "main";

pub async fn run(ctx: Arc<Context>) {
    let mut workers: BTreeMap<(String, String), JoinHandle<()>> = BTreeMap::new();
    let mut background: Vec<JoinHandle<()>> = Vec::new();
    let mut stamp = config_stamp(&ctx.options);
    let mut min_ready = MinReady::default();
    let mut gauges = Gauges::default();
    let mut registration = None;
    let mut watches = ctx.watches(true, true, false, true);
    watches.follow_progress(false);
    let mut first = true;
    loop {
        if ctx.is_stopping() {
            break;
        }
        ctx.workers.busy(NAME);
        let new_stamp = config_stamp(&ctx.options);
        if new_stamp != stamp {
            stamp = new_stamp;
            match load_config(&ctx.options) {
                Ok(config) => {
                    tracing::info!("configuration changed; applying it");
                    ctx.config.send_replace(Arc::new(config));
                }
                Err(e) => {
                    tracing::error!(error = %format!("{e:#}"), "configuration reload failed; keeping the running one");
                    ctx.workers.error(NAME, &e);
                }
            }
        }
        let config = ctx.config();
        reconcile_providers(&ctx, &config).await;
        if registration.is_none() {
            match register(&ctx).await {
                Ok(r) => registration = Some(r),
                Err(e) => {
                    tracing::warn!(error = %format!("{e:#}"), "cannot register the launcher component");
                    ctx.workers.error(NAME, &e);
                }
            }
        }
        supervise_pool_workers(&ctx, &config, &mut workers);
        if first {
            background.push(tokio::spawn(deleter::run(ctx.clone())));
            background.push(tokio::spawn(cleanup::run(ctx.clone())));
        }
        if ctx.stats.enabled() {
            gauges.pass(&ctx, &config).await;
        }
        if let Err(e) = min_ready.pass(&ctx, &config).await {
            tracing::warn!(error = %format!("{e:#}"), "min-ready pass failed");
            ctx.workers.error(NAME, &e);
        }
        if first {
            if let Some((reg, component)) = registration.as_mut() {
                component.state = ComponentState::Running;
                if let Err(e) = ctx.store.components().update(reg, component).await {
                    tracing::warn!(error = %e, "cannot mark the launcher running");
                }
            }
            ctx.set_ready();
            first = false;
        }
        ctx.workers.idle(NAME);
        // Nodes and requests matter to min-ready only: without it, the loop is about
        // configuration, checked on a timer.
        let min_ready = min_ready.active(&config);
        watches.follow_nodes(min_ready);
        watches.follow_requests(min_ready);
        ctx.wait_for_change_batched(
            &mut watches,
            ctx.options.timing.config_check,
            ctx.options.timing.change_batching,
        )
        .await;
    }
    for (_, handle) in workers {
        let _ = handle.await;
    }
    for handle in background {
        let _ = handle.await;
    }
    if let Some((reg, _)) = registration {
        let _ = ctx.store.components().unregister(&reg).await;
    }
    if let Some(lock) = gauges.leader.take() {
        let _ = lock.release().await;
    }
    ctx.workers.stopped(NAME);
}

async fn register(ctx: &Context) -> anyhow::Result<(nodepool_store::Registration, Component)> {
    let component = Component {
        hostname: ctx.options.hostname.clone(),
        state: ComponentState::Stopped,
        version: Some(env!("CARGO_PKG_VERSION").to_string()),
        model_api: nodepool_model::component::MODEL_API,
        role: ComponentRole::Launcher,
        extra: Default::default(),
    };
    let reg = ctx.store.components().register(&component).await?;
    Ok((reg, component))
}

/// Keeps providers whose configuration is unchanged; rebuilds changed ones; drops removed ones.
async fn reconcile_providers(ctx: &Context, config: &Config) {
    let current: BTreeMap<String, Arc<ProviderRuntime>> = ctx
        .providers
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    let mut next = BTreeMap::new();
    let mut started = Vec::new();
    for (name, provider) in &config.providers {
        match current.get(name) {
            Some(rt) if rt.config == *provider => {
                next.insert(name.clone(), rt.clone());
            }
            _ => match ProviderRuntime::build(provider, &ctx.drivers) {
                Ok(rt) => {
                    tracing::info!(provider = %name, driver = provider.driver.name(), "provider started");
                    let rt = Arc::new(rt);
                    started.push(rt.clone());
                    next.insert(name.clone(), rt);
                }
                Err(e) => {
                    tracing::error!(provider = %name, error = %format!("{e:#}"), "provider failed to start; it is left out");
                }
            },
        }
    }
    for name in current.keys().filter(|n| !next.contains_key(*n)) {
        tracing::info!(provider = %name, "provider removed from the configuration");
    }
    *ctx.providers.write().unwrap_or_else(|e| e.into_inner()) = next;
    for rt in started {
        if rt.is_static() {
            static_sync::sync(ctx, &rt, true).await;
        }
    }
}

fn supervise_pool_workers(
    ctx: &Arc<Context>,
    config: &Config,
    workers: &mut BTreeMap<(String, String), JoinHandle<()>>,
) {
    let mut wanted = Vec::new();
    for provider in config.providers.values() {
        if ctx.provider(&provider.name).is_none() {
            continue;
        }
        for pool in &provider.pools {
            wanted.push((provider.name.clone(), pool.name.clone()));
        }
    }
    // Workers stop by themselves when their pool leaves the configuration.
    workers.retain(|_, handle| !handle.is_finished());
    for key in wanted {
        workers.entry(key).or_insert_with_key(|key| {
            tokio::spawn(pool_worker::run(ctx.clone(), key.0.clone(), key.1.clone()))
        });
    }
}

/// Min-ready bookkeeping: the requests this process made, per label (spec 2.9).
#[derive(Debug, Default)]
struct MinReady {
    submitted: HashMap<String, Vec<RequestId>>,
    /// Fulfilled min-ready requests whose nodes we un-allocated; until the cache shows
    /// that, nodes still allocated to them count as free (else the deficit is counted twice).
    released: HashSet<RequestId>,
}

impl MinReady {
    /// Whether some label wants ready nodes, or requests we made are still out.
    fn active(&self, config: &Config) -> bool {
        config.labels.values().any(|l| l.min_ready > 0)
            || self.submitted.values().any(|ids| !ids.is_empty())
    }

    async fn pass(&mut self, ctx: &Context, config: &Config) -> anyhow::Result<()> {
        self.remove_completed(ctx).await?;
        if config.labels.values().all(|l| l.min_ready == 0) {
            return Ok(());
        }
        let mut nodes: Vec<_> = ctx.nodes_view().as_ref().clone();
        self.released.retain(|r| {
            nodes
                .iter()
                .any(|e| e.node.allocated_to.as_ref() == Some(r))
        });
        for entry in &mut nodes {
            if entry
                .node
                .allocated_to
                .as_ref()
                .is_some_and(|r| self.released.contains(r))
            {
                Arc::make_mut(&mut entry.node).allocated_to = None;
            }
        }
        for (name, label) in &config.labels {
            if label.min_ready == 0 {
                continue;
            }
            if self.submitted.get(name).is_some_and(|r| !r.is_empty()) {
                continue;
            }
            let deficit = crate::decide::min_ready_deficit(&nodes, name, label.min_ready);
            if deficit == 0 || !label_image_available(ctx, config, name).await {
                continue;
            }
            for _ in 0..deficit {
                let request = NodeRequest::min_ready(name, random_uuid_hex(), now());
                let id = ctx
                    .store
                    .requests()
                    .create(&request, MIN_READY_PRECEDENCE, true)
                    .await?;
                tracing::info!(request_id = %id, label = %name, "min-ready request submitted");
                self.submitted.entry(name.clone()).or_default().push(id);
            }
        }
        Ok(())
    }

    async fn remove_completed(&mut self, ctx: &Context) -> anyhow::Result<()> {
        for ids in self.submitted.values_mut() {
            let mut keep = Vec::new();
            for id in ids.drain(..) {
                let Some(found) = ctx.store.requests().get(&id).await? else {
                    continue;
                };
                match found.value.state {
                    RequestState::Fulfilled => {
                        for node_id in &found.value.nodes {
                            if let Some(mut node) = ctx.store.nodes().get(*node_id).await? {
                                node.value.allocated_to = None;
                                ctx.store.nodes().store(*node_id, &node.value).await?;
                            }
                        }
                        ctx.store.requests().delete(&id).await?;
                        self.released.insert(id);
                    }
                    RequestState::Failed => ctx.store.requests().delete(&id).await?,
                    _ => keep.push(id),
                }
            }
            *ids = keep;
        }
        Ok(())
    }
}

/// Whether some pool of this launcher can boot `label` now: providers without images
/// always can; otherwise the label's diskimage needs a READY upload to that provider, or its
/// cloud image must exist.
async fn label_image_available(ctx: &Context, config: &Config, label: &str) -> bool {
    for provider in config.providers.values() {
        let Some(rt) = ctx.provider(&provider.name) else {
            continue;
        };
        for pool in &provider.pools {
            let Some(pool_label) = pool.labels.get(label) else {
                continue;
            };
            if !provider.driver.manages_images() {
                return true;
            }
            match &pool_label.image {
                LabelImage::Diskimage(image) => {
                    if view::latest_ready_upload(&ctx.images, image, &provider.name).is_some() {
                        return true;
                    }
                }
                LabelImage::CloudImage(_) | LabelImage::None => {
                    let ready = match &rt.cloud {
                        Some(cloud) => cloud.label_ready(&pool.name, label).await,
                        None => true,
                    };
                    if ready {
                        return true;
                    }
                }
            }
        }
    }
    false
}

/// Node gauges, sent by the one launcher holding the stats election (spec 2.16), at most
/// once a second.
#[derive(Debug, Default)]
struct Gauges {
    leader: Option<nodepool_store::Lock>,
    last: Option<std::time::Instant>,
}

impl Gauges {
    async fn pass(&mut self, ctx: &Context, config: &Config) {
        if self
            .last
            .is_some_and(|t| t.elapsed() < std::time::Duration::from_secs(1))
        {
            return;
        }
        if let Some(lock) = &self.leader
            && !lock.is_held().await.unwrap_or(false)
        {
            self.leader = None;
        }
        if self.leader.is_none() {
            match ctx
                .store
                .stats_election(&ctx.options.hostname, nodepool_store::LockWait::NonBlocking)
                .await
            {
                Ok(Some(lock)) => self.leader = Some(lock),
                Ok(None) => return,
                Err(e) => {
                    tracing::debug!(error = %e, "stats election failed");
                    return;
                }
            }
        }
        self.last = Some(std::time::Instant::now());
        let nodes = ctx.nodes_view();
        let providers: Vec<String> = config.providers.keys().cloned().collect();
        let labels: Vec<String> = config.labels.keys().cloned().collect();
        for (key, value) in crate::stats::node_gauges(&nodes, &providers, &labels) {
            ctx.stats.gauge(&key, value);
        }
        let requests = ctx.requests_view();
        for pool in ctx.pools_view().iter() {
            let (Some(provider), Some(name)) = (&pool.provider_name, &pool.name) else {
                continue;
            };
            let addressable = requests
                .iter()
                .filter(|r| {
                    r.request
                        .node_types
                        .iter()
                        .all(|l| pool.supported_labels.contains(l))
                })
                .count();
            ctx.stats.gauge(
                &format!("nodepool.provider.{provider}.pool.{name}.addressable_requests"),
                addressable as f64,
            );
        }
    }
}
