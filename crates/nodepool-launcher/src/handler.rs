//! One request being served by one pool worker (spec 2.5-2.8): accept, fill the node set
//! (reuse or launch), pause at quota, then fulfil or decline.

use std::sync::Arc;

use anyhow::Context as _;
use nodepool_config::{Pool, PoolSettings};
use nodepool_driver::Quota;
use nodepool_model::{Node, NodeId, NodeRequest, NodeState, PoolDetails, RequestId, RequestState};
use nodepool_store::{Lock, LockWait, Op, StoreError};
use tokio::task::JoinHandle;

use crate::clock::now;
use crate::context::Context;
use crate::decide;
use crate::launch::{self, LaunchDone, Outcome};
use crate::providers::{self, ProviderRuntime};
use crate::view::NodeEntry;

/// The first write of a request taken from the cache found it changed or gone.
#[derive(Debug, thiserror::Error)]
#[error("the request changed since the cache showed it")]
struct StaleRequest;

/// What a handler needs from its pool worker for one call.
#[derive(Debug, Clone)]
pub struct Env {
    pub ctx: Arc<Context>,
    pub rt: Arc<ProviderRuntime>,
    pub pool: Pool,
    pub launcher_id: String,
    pub pools: Arc<Vec<PoolDetails>>,
}

#[derive(Debug)]
enum SlotState {
    /// Stored INIT and counted against quota; not locked or launched yet.
    Created(Box<Node>),
    Launching(JoinHandle<LaunchDone>),
    Held {
        node: Box<Node>,
        lock: Option<Lock>,
        outcome: Outcome,
    },
}

/// One node of the request's node set.
#[derive(Debug)]
struct Slot {
    label: String,
    id: NodeId,
    state: SlotState,
}

/// Where a handler stands after `run`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// Nodes are being launched (or all were reused); poll until complete.
    Running,
    /// At quota: re-run later, the request stays locked and pending.
    Paused,
    /// Finished without fulfilment (declined or released).
    Finished,
}

#[derive(Debug)]
pub struct Handler {
    pub id: RequestId,
    pub request: NodeRequest,
    lock: Option<Lock>,
    slots: Vec<Slot>,
    pub paused: bool,
    pub done: bool,
    started: bool,
    /// `pending` is set in memory but not stored yet: it goes out with the first new node
    /// (one transaction), or before anything else this pass writes.
    pending_unstored: bool,
    /// Taken as the cache showed it, not re-read under the lock: the first write is
    /// conditional on this data version, and fails (leaving the request to the next pass)
    /// if the request changed meanwhile.
    unchecked_version: Option<i32>,
    chosen_az: Option<String>,
}

fn random_index(len: usize) -> usize {
    let bytes = uuid::Uuid::new_v4();
    let b = bytes.as_bytes();
    (u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize) % len.max(1)
}

impl Handler {
    pub fn new(id: RequestId, request: NodeRequest, lock: Lock) -> Handler {
        Handler {
            id,
            request,
            lock: Some(lock),
            slots: Vec::new(),
            paused: false,
            done: false,
            started: false,
            pending_unstored: false,
            unchecked_version: None,
            chosen_az: None,
        }
    }

    /// A handler for a request as the cache showed it at `version` (saves re-reading it
    /// under the lock: the first write checks the version instead).
    pub fn from_cache(id: RequestId, request: NodeRequest, version: i32, lock: Lock) -> Handler {
        let mut handler = Handler::new(id, request, lock);
        handler.unchecked_version = Some(version);
        handler
    }

    /// Labels of the nodes in the node set (for the worker's label-quota accounting).
    pub fn labels(&self) -> Vec<String> {
        self.slots.iter().map(|s| s.label.clone()).collect()
    }

    /// Accepts the request (first call) and fills the node set; re-entrant for paused
    /// handlers. Errors decline the request.
    pub async fn run(&mut self, env: &Env) -> Progress {
        match self.fill(env).await {
            Ok(progress) => progress,
            Err(e) if e.downcast_ref::<StaleRequest>().is_some() => {
                tracing::debug!(request_id = %self.id, "request changed since the cache showed it; leaving it to the next pass");
                self.finish_lock().await;
                self.done = true;
                Progress::Finished
            }
            Err(e) => {
                tracing::warn!(request_id = %self.id, error = %format!("{e:#}"), "request handling failed; declining");
                self.decline(env, "error while handling").await;
                Progress::Finished
            }
        }
    }

    async fn fill(&mut self, env: &Env) -> anyhow::Result<Progress> {
        let progress = self.fill_node_set(env).await;
        if !self.done {
            self.flush_pending(env).await?;
        }
        progress
    }

    /// Stores `pending` if accepting the request has not stored it yet.
    async fn flush_pending(&mut self, env: &Env) -> anyhow::Result<()> {
        if self.pending_unstored {
            let op = env.ctx.store.requests().store_op_if(
                &self.id,
                &self.request,
                self.unchecked_version,
            );
            let stored = env.ctx.store.multi(vec![op]).await;
            self.checked(stored)
                .context("marking the request pending")?;
            self.pending_unstored = false;
        }
        Ok(())
    }

    /// Passes on the outcome of the first write of a request taken from the cache: a
    /// version conflict or a vanished request means the cache was behind ([`StaleRequest`]).
    fn checked<T>(&mut self, written: Result<T, StoreError>) -> anyhow::Result<T> {
        match written {
            Ok(value) => {
                self.unchecked_version = None;
                Ok(value)
            }
            Err(StoreError::BadVersion(_) | StoreError::NoNode(_))
                if self.unchecked_version.is_some() =>
            {
                Err(StaleRequest.into())
            }
            Err(e) => Err(e.into()),
        }
    }

    async fn fill_node_set(&mut self, env: &Env) -> anyhow::Result<Progress> {
        let ctx = &env.ctx;
        if !self.started {
            self.request.set_state(RequestState::Pending, now());
            self.pending_unstored = true;
            self.started = true;
            tracing::info!(request_id = %self.id, launcher = %env.launcher_id, labels = ?self.request.node_types, "request accepted");
        } else if self.paused && ctx.store.requests().get(&self.id).await?.is_none() {
            // Zuul cancelled while we waited for quota (Nodepool only notices once it can
            // launch, spec 8.3 item 6).
            tracing::info!(request_id = %self.id, "paused request was withdrawn");
            self.release_all(env, true).await;
            self.finish_lock().await;
            self.done = true;
            return Ok(Progress::Finished);
        }
        let assigned: Vec<String> = self.labels();
        let needed = decide::needed_labels(&self.request.node_types, &assigned);
        if needed.is_empty() {
            self.paused = false;
            return Ok(Progress::Running);
        }
        for label in needed {
            if self.request.reuse {
                let nodes = ctx.nodes_view();
                if self.try_reuse(env, &nodes, &label).await? {
                    continue;
                }
            }
            // Requests of a provider are served concurrently: checking quota and recording
            // the new node happen under the provider's gate, so two never take the same room.
            let gate = env.rt.quota_gate.lock().await;
            let nodes = ctx.nodes_view();
            if !self.has_remaining_quota(env, &nodes, &label).await {
                drop(gate);
                self.flush_pending(env).await?;
                if self.request.is_min_ready() {
                    self.decline(env, "at quota (min-ready)").await;
                    return Ok(Progress::Finished);
                }
                self.delete_oldest_unused_node(env, &nodes).await;
                if env.rt.config.driver.pauses_at_quota() {
                    if !self.paused {
                        tracing::info!(request_id = %self.id, label = %label, "pausing at quota");
                    }
                    self.paused = true;
                    return Ok(Progress::Paused);
                }
                self.release(env).await;
                return Ok(Progress::Finished);
            }
            let (id, node) = self.create_node(env, &label).await?;
            drop(gate);
            self.slots.push(Slot {
                label: label.clone(),
                id,
                state: SlotState::Created(Box::new(node)),
            });
        }
        self.paused = false;
        Ok(Progress::Running)
    }

    async fn try_reuse(
        &mut self,
        env: &Env,
        nodes: &[NodeEntry],
        label: &str,
    ) -> anyhow::Result<bool> {
        let ctx = &env.ctx;
        let taken: Vec<NodeId> = self.slots.iter().map(|s| s.id).collect();
        for candidate in decide::reusable_nodes(
            nodes,
            env.rt.name(),
            &env.pool.name,
            label,
            self.chosen_az.as_deref(),
        ) {
            if taken.contains(&candidate.id) {
                continue;
            }
            self.flush_pending(env).await?;
            if env.rt.is_static()
                && !crate::static_sync::check_reusable(ctx, &env.rt, candidate.id, &candidate.node)
                    .await
            {
                continue;
            }
            let Some(lock) = ctx
                .store
                .nodes()
                .lock(candidate.id, LockWait::NonBlocking)
                .await?
            else {
                continue;
            };
            let Some(current) = ctx.store.nodes().get(candidate.id).await? else {
                let _ = lock.release().await;
                continue;
            };
            let mut node = current.value;
            if node.state != NodeState::Ready || node.allocated_to.is_some() {
                let _ = lock.release().await;
                continue;
            }
            node.allocated_to = Some(self.id.clone());
            node.tenant_name = self.request.tenant_name.clone();
            node.requestor = self.request.requestor.clone();
            ctx.store.nodes().store(candidate.id, &node).await?;
            if self.chosen_az.is_none() {
                self.chosen_az = node.az.clone();
            }
            tracing::info!(request_id = %self.id, node_id = %candidate.id, label, "reusing ready node");
            self.slots.push(Slot {
                label: label.to_string(),
                id: candidate.id,
                state: SlotState::Held {
                    node: Box::new(node),
                    lock: Some(lock),
                    outcome: Outcome::Ready,
                },
            });
            return Ok(true);
        }
        Ok(false)
    }

    /// Whether one more node of `label` fits the provider and the pool now (spec 2.10).
    async fn has_remaining_quota(
        &self,
        env: &Env,
        nodes: &Arc<Vec<NodeEntry>>,
        label: &str,
    ) -> bool {
        if env.rt.is_static() {
            return false;
        }
        let Ok(need) = env.rt.quota_for_label(&env.pool.name, label).await else {
            return false;
        };
        if !providers::ignores_provider_quota(&env.pool) {
            let limits = env
                .rt
                .provider_limits(nodes, env.ctx.options.timing.quota_cache_age)
                .await;
            if !limits
                .subtract(&env.rt.usage(nodes, None))
                .subtract(&need)
                .non_negative()
            {
                return false;
            }
        }
        providers::pool_limits(&env.pool)
            .subtract(&env.rt.usage(nodes, Some(&env.pool.name)))
            .subtract(&need)
            .non_negative()
    }

    async fn delete_oldest_unused_node(&self, env: &Env, nodes: &[NodeEntry]) {
        let recent = env.ctx.options.timing.recent_delete_guard.as_secs_f64();
        let Some(id) =
            decide::oldest_unused_node(nodes, env.rt.name(), &env.pool.name, now(), recent)
        else {
            return;
        };
        let store = env.ctx.store.nodes();
        let Ok(Some(lock)) = store.lock(id, LockWait::NonBlocking).await else {
            return;
        };
        if let Ok(Some(current)) = store.get(id).await {
            let mut node = current.value;
            if node.state == NodeState::Ready && node.allocated_to.is_none() {
                node.set_state(NodeState::Deleting, now());
                if store.store(id, &node).await.is_ok() {
                    tracing::info!(node_id = %id, request_id = %self.id, "deleting an unused ready node to make room");
                }
            }
        }
        let _ = lock.release().await;
    }

    /// Stores the INIT node and counts it against quota at once.
    async fn create_node(&mut self, env: &Env, label: &str) -> anyhow::Result<(NodeId, Node)> {
        let ctx = &env.ctx;
        let mut node = Node::new(NodeState::Init, now());
        node.node_type = vec![label.to_string()];
        node.provider = Some(env.rt.name().to_string());
        node.pool = Some(env.pool.name.clone());
        node.launcher = Some(env.launcher_id.clone());
        node.allocated_to = Some(self.id.clone());
        node.tenant_name = self.request.tenant_name.clone();
        node.requestor = self.request.requestor.clone();
        node.attributes = env.pool.node_attributes.clone();
        if self.chosen_az.is_none() {
            let zones = match &env.pool.settings {
                PoolSettings::OpenStack(p) if !p.availability_zones.is_empty() => {
                    p.availability_zones.clone()
                }
                PoolSettings::Aws(p) if p.availability_zone.is_some() => {
                    p.availability_zone.iter().cloned().collect()
                }
                _ => env
                    .rt
                    .cloud
                    .as_ref()
                    .map(|c| c.availability_zones())
                    .unwrap_or_default(),
            };
            if !zones.is_empty() {
                self.chosen_az = Some(zones[random_index(zones.len())].clone());
            }
        }
        // The first new node goes out with the request's `pending`, in one transaction.
        let before = if self.pending_unstored {
            vec![
                ctx.store
                    .requests()
                    .store_op_if(&self.id, &self.request, self.unchecked_version),
            ]
        } else {
            Vec::new()
        };
        let created = ctx.store.nodes().create_after(before, &mut node).await;
        let id = self.checked(created).context("creating a node")?;
        self.pending_unstored = false;
        let need = env
            .rt
            .quota_for_label(&env.pool.name, label)
            .await
            .unwrap_or_else(|_| Quota::one_instance());
        env.rt.created(id, &env.pool.name, need);
        // A launch counts for max-concurrency from its INIT record on.
        env.rt.launch_started();
        Ok((id, node))
    }

    /// Locks, marks BUILDING and launches every node created by `run` (the slow part, done
    /// in the request's own task). A node that cannot be started counts as failed.
    pub async fn start_launches(&mut self, env: &Env) {
        for i in 0..self.slots.len() {
            if !matches!(self.slots[i].state, SlotState::Created(_)) {
                continue;
            }
            let slot = &mut self.slots[i];
            let SlotState::Created(node) = std::mem::replace(
                &mut slot.state,
                SlotState::Held {
                    node: Box::new(Node::new(NodeState::Building, now())),
                    lock: None,
                    outcome: Outcome::Failed("not started".into()),
                },
            ) else {
                continue;
            };
            let (label, id) = (slot.label.clone(), slot.id);
            match self.launch_node(env, &label, id, (*node).clone()).await {
                Ok(handle) => self.slots[i].state = SlotState::Launching(handle),
                Err(e) => {
                    env.rt.launch_ended();
                    tracing::warn!(request_id = %self.id, node_id = %id, error = %format!("{e:#}"), "cannot start the launch");
                    self.slots[i].state = SlotState::Held {
                        node,
                        lock: None,
                        outcome: Outcome::Failed(format!("{e:#}")),
                    };
                }
            }
        }
    }

    /// Locks the new node, marks it BUILDING and starts its launch task.
    async fn launch_node(
        &mut self,
        env: &Env,
        label: &str,
        id: NodeId,
        mut node: Node,
    ) -> anyhow::Result<JoinHandle<LaunchDone>> {
        let ctx = &env.ctx;
        let prepared = launch::prepare(env, label, &mut node).await;
        node.set_state(NodeState::Building, now());
        // Lock directory, contender and BUILDING in one transaction.
        let Some(lock) = ctx
            .store
            .nodes()
            .lock_new(id, &node)
            .await
            .context("locking the node and marking it building")?
        else {
            // Someone grabbed a brand-new INIT node: leave it and try another next pass.
            anyhow::bail!("node {id} was locked by someone else right after creation");
        };
        tracing::info!(request_id = %self.id, node_id = %id, label, provider = env.rt.name(), "launching node");
        Ok(tokio::spawn(launch::run(
            env.clone(),
            id,
            node,
            lock,
            launch::Target {
                label: label.to_string(),
                az: self.chosen_az.clone(),
                request: nodepool_driver::RequestAttributes::new(&self.id, &self.request),
            },
            prepared,
        )))
    }

    /// Collects finished launches. Returns false while any is still running.
    async fn collect(&mut self) -> bool {
        let mut all = true;
        for slot in &mut self.slots {
            if let SlotState::Launching(handle) = &mut slot.state {
                if !handle.is_finished() {
                    all = false;
                    continue;
                }
                let done = match handle.await {
                    Ok(done) => done,
                    Err(e) => {
                        tracing::error!(node_id = %slot.id, error = %e, "launch task died");
                        LaunchDone {
                            node: Node::new(NodeState::Building, now()),
                            lock: None,
                            outcome: Outcome::Failed("launch task died".into()),
                        }
                    }
                };
                slot.state = SlotState::Held {
                    node: Box::new(done.node),
                    lock: done.lock,
                    outcome: done.outcome,
                };
            }
        }
        all
    }

    /// Completes the request once every launch finished (spec 2.7). True when the handler
    /// is done.
    pub async fn poll(&mut self, env: &Env) -> bool {
        if self.done {
            return true;
        }
        if self.paused {
            return false;
        }
        if !self.collect().await
            || self
                .slots
                .iter()
                .any(|s| matches!(s.state, SlotState::Created(_)))
        {
            return false;
        }
        // Whether the request still exists is checked by the fulfilment itself (its
        // transaction fails if the request is gone), not by a read first.
        let mut failed = false;
        let mut aborted = Vec::new();
        for (i, slot) in self.slots.iter().enumerate() {
            if let SlotState::Held { outcome, .. } = &slot.state {
                match outcome {
                    Outcome::Ready => {}
                    Outcome::Aborted => aborted.push(i),
                    Outcome::Failed(_) | Outcome::Abandoned => failed = true,
                }
            }
        }
        if failed {
            self.decline_with(env, "node launch failed", false).await;
            return true;
        }
        if !aborted.is_empty() {
            for i in aborted.into_iter().rev() {
                let slot = self.slots.remove(i);
                if let SlotState::Held {
                    lock: Some(lock), ..
                } = slot.state
                {
                    let _ = lock.release().await;
                }
            }
            self.paused = true;
            return false;
        }
        self.fulfil(env).await;
        true
    }

    async fn fulfil(&mut self, env: &Env) {
        let ctx = &env.ctx;
        let assigned: Vec<(String, NodeId)> =
            self.slots.iter().map(|s| (s.label.clone(), s.id)).collect();
        let Some(order) = decide::fulfilment_order(&self.request.node_types, &assigned) else {
            self.decline(env, "node set does not match the request")
                .await;
            return;
        };
        self.request.nodes = order;
        self.request.set_state(RequestState::Fulfilled, now());
        // Nodes are unlocked no later than the request says fulfilled (Zuul locks them
        // next): in one transaction with the request and its unlock, at the same instant.
        let mut ops: Vec<Op> = self
            .slots
            .iter()
            .filter_map(|slot| match &slot.state {
                SlotState::Held {
                    lock: Some(lock), ..
                } => Some(lock.release_op()),
                _ => None,
            })
            .collect();
        ops.push(ctx.store.requests().store_op(&self.id, &self.request));
        if let Some(lock) = &self.lock {
            ops.push(lock.release_op());
        }
        let outcome = ctx.store.multi(ops).await;
        if outcome.is_err() && matches!(ctx.store.requests().get(&self.id).await, Ok(None)) {
            // The request is gone (Zuul withdrew it): the transaction failed for that.
            tracing::info!(request_id = %self.id, "request disappeared; releasing its nodes");
            self.release_all(env, true).await;
            self.finish_lock().await;
            self.done = true;
            return;
        }
        let node_locks: Vec<Lock> = self
            .slots
            .iter_mut()
            .filter_map(|slot| match &mut slot.state {
                SlotState::Held { lock, .. } => lock.take(),
                _ => None,
            })
            .collect();
        match outcome {
            Ok(_) => {
                node_locks.into_iter().for_each(Lock::released);
                if let Some(lock) = self.lock.take() {
                    lock.released();
                }
                tracing::info!(request_id = %self.id, nodes = ?self.request.nodes, "request fulfilled");
            }
            Err(e) => {
                // Something moved (a lock lost, the request gone): step by step instead.
                tracing::debug!(request_id = %self.id, error = %e, "one-step fulfilment failed; fulfilling step by step");
                for lock in node_locks {
                    let _ = lock.release().await;
                }
                match ctx.store.requests().store(&self.id, &self.request).await {
                    Ok(()) => {
                        tracing::info!(request_id = %self.id, nodes = ?self.request.nodes, "request fulfilled")
                    }
                    Err(e) => {
                        tracing::warn!(request_id = %self.id, error = %e, "cannot store fulfilled request")
                    }
                }
                self.finish_lock().await;
            }
        }
        self.done = true;
    }

    /// Declines (spec 2.5): adds us to `declined_by`, fails the request if every registered
    /// pool declined, unlocks the node set. Ready nodes of a partly failed set keep their
    /// allocation until the request is gone (spec 2.7).
    pub async fn decline(&mut self, env: &Env, reason: &str) {
        self.decline_with(env, reason, true).await;
    }

    async fn decline_with(&mut self, env: &Env, reason: &str, clear: bool) {
        if !self.request.declined_by.contains(&env.launcher_id) {
            self.request.declined_by.push(env.launcher_id.clone());
        }
        // Failing a request is final, so count the registered pools in the store, not in a
        // cache that may not show a pool registered a moment ago.
        let pools = match env
            .ctx
            .store
            .components()
            .list(nodepool_model::ComponentKind::Pool)
            .await
        {
            Ok(registered) => registered
                .into_iter()
                .filter_map(|r| match r.component.value.role {
                    nodepool_model::ComponentRole::Pool(details) => Some(details),
                    _ => None,
                })
                .collect(),
            Err(_) => env.pools.as_ref().clone(),
        };
        let state = decide::declined_state(&self.request, &pools);
        self.request.set_state(state.clone(), now());
        self.release_all(env, clear).await;
        // Never written since it was taken from the cache: only if it is still as seen.
        let op =
            env.ctx
                .store
                .requests()
                .store_op_if(&self.id, &self.request, self.unchecked_version);
        match env.ctx.store.multi(vec![op]).await.map(|_| ()) {
            Ok(()) | Err(StoreError::NoNode(_)) => {}
            Err(StoreError::BadVersion(_)) if self.unchecked_version.is_some() => {
                tracing::debug!(request_id = %self.id, "request changed since the cache showed it; not declining it");
            }
            Err(e) => {
                tracing::warn!(request_id = %self.id, error = %e, "cannot store declined request")
            }
        }
        tracing::info!(request_id = %self.id, launcher = %env.launcher_id, reason, state = state.as_str(), "request declined");
        self.finish_lock().await;
        self.done = true;
    }

    /// Static providers at "quota": give the request back for another pass.
    async fn release(&mut self, env: &Env) {
        self.release_all(env, true).await;
        self.request.set_state(RequestState::Requested, now());
        self.request.nodes.clear();
        // Never written since it was taken from the cache: only if it is still as seen.
        let op =
            env.ctx
                .store
                .requests()
                .store_op_if(&self.id, &self.request, self.unchecked_version);
        match env.ctx.store.multi(vec![op]).await.map(|_| ()) {
            Ok(()) | Err(StoreError::NoNode(_)) => {}
            Err(StoreError::BadVersion(_)) if self.unchecked_version.is_some() => {
                tracing::debug!(request_id = %self.id, "request changed since the cache showed it; not declining it");
            }
            Err(e) => {
                tracing::warn!(request_id = %self.id, error = %e, "cannot store released request")
            }
        }
        self.finish_lock().await;
        self.done = true;
    }

    /// On shutdown: paused and running requests go back to `requested` for another launcher.
    pub async fn abandon(&mut self, env: &Env) {
        self.collect_all().await;
        self.release_all(env, true).await;
        if self.started {
            self.request.set_state(RequestState::Requested, now());
            self.request.nodes.clear();
            let _ = env
                .ctx
                .store
                .requests()
                .store(&self.id, &self.request)
                .await;
        }
        self.finish_lock().await;
        self.done = true;
    }

    /// Waits for every launch (they stop early once the launcher is stopping).
    pub async fn wait_launches(&mut self) {
        self.collect_all().await;
    }

    async fn collect_all(&mut self) {
        for slot in &mut self.slots {
            if let SlotState::Launching(handle) = &mut slot.state {
                let done = match handle.await {
                    Ok(done) => done,
                    Err(_) => LaunchDone {
                        node: Node::new(NodeState::Building, now()),
                        lock: None,
                        outcome: Outcome::Abandoned,
                    },
                };
                slot.state = SlotState::Held {
                    node: Box::new(done.node),
                    lock: done.lock,
                    outcome: done.outcome,
                };
            }
        }
    }

    /// Unlocks every node of the set; `clear` also drops their allocation to this request.
    async fn release_all(&mut self, env: &Env, clear: bool) {
        let store = env.ctx.store.nodes();
        for slot in self.slots.drain(..) {
            match slot.state {
                SlotState::Held { mut node, lock, .. } => {
                    if clear && node.allocated_to.as_ref() == Some(&self.id) && lock.is_some() {
                        node.allocated_to = None;
                        if let Err(e) = store.store(slot.id, &node).await {
                            tracing::warn!(node_id = %slot.id, error = %e, "cannot clear allocation");
                        }
                    }
                    if let Some(lock) = lock {
                        let _ = lock.release().await;
                    }
                }
                SlotState::Created(mut node) => {
                    // Never launched: retire the INIT record (Nodepool leaves such nodes
                    // forever, spec 8.3 item 7).
                    env.rt.launch_ended();
                    if let Ok(Some(lock)) = store.lock(slot.id, LockWait::NonBlocking).await {
                        node.allocated_to = None;
                        node.set_state(NodeState::Deleting, now());
                        if let Err(e) = store.store(slot.id, &node).await {
                            tracing::warn!(node_id = %slot.id, error = %e, "cannot retire unlaunched node");
                        }
                        let _ = lock.release().await;
                    }
                }
                SlotState::Launching(handle) => {
                    // Only on errors paths before completion; the node stays BUILDING and
                    // its lock goes with the task.
                    handle.abort();
                }
            }
        }
    }

    /// Lets go of a request we locked but will not serve now.
    pub async fn unlock(mut self) {
        self.finish_lock().await;
    }

    async fn finish_lock(&mut self) {
        if let Some(lock) = self.lock.take()
            && let Err(e) = lock.release().await
        {
            tracing::warn!(request_id = %self.id, error = %e, "cannot unlock request");
        }
    }
}
