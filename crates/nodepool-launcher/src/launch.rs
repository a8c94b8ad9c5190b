//! Launching one node through the provider's create state machine (spec 2.12).

use std::time::{Duration, Instant};

use nodepool_driver::nodescan::{self, ScanTarget};
use nodepool_driver::{
    CreateSpec, DriverError, Instance, Metadata, RequestAttributes, metadata_keys,
};
use nodepool_model::{ConnectionPort, ExternalId, Node, NodeId, NodeState};
use nodepool_store::Lock;

use crate::clock::now;
use crate::handler::Env;
use crate::providers;
use crate::view;

/// How a launch ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Ready,
    /// Cloud quota error: the node is stored `aborted`, the request re-tries.
    Aborted,
    /// Every attempt failed; the node stays BUILDING in the store (as in Nodepool) and is
    /// deleted once unlocked.
    Failed(String),
    /// The launcher is stopping; the node is left BUILDING for cleanup.
    Abandoned,
}

/// A finished launch hands its node and lock back to the handler.
#[derive(Debug)]
pub struct LaunchDone {
    pub node: Node,
    pub lock: Option<Lock>,
    pub outcome: Outcome,
}

/// What the node boots from, decided before it is marked BUILDING.
#[derive(Debug, Clone, PartialEq)]
pub enum Prepared {
    Image {
        external_id: Option<String>,
    },
    /// No READY upload of the label's diskimage (Nodepool's LaunchNodepoolException).
    NoImage(String),
}

/// Sets the image and connection fields and the node's `resources` (spec 2.12 step 1).
pub async fn prepare(env: &Env, label: &str, node: &mut Node) -> Prepared {
    let config = &env.rt.config;
    let mut prepared = Prepared::Image { external_id: None };
    let mut upload_username = None;
    let (username, python_path, shell_type, connection_type, port) =
        match providers::label_diskimage(&env.pool, label) {
            Some(image) => {
                match view::latest_ready_upload(&env.ctx.images, image, &config.name) {
                    Some(upload) => {
                        node.image_id = Some(upload.path.clone());
                        upload_username = upload.upload.username.clone();
                        prepared = Prepared::Image {
                            external_id: upload.upload.external_id.clone(),
                        };
                    }
                    None => {
                        prepared = Prepared::NoImage(format!(
                            "unable to find a ready upload of image {image} in provider {}",
                            config.name
                        ))
                    }
                }
                match config.diskimages.get(image) {
                    Some(d) => (
                        d.username.clone(),
                        Some(d.python_path.clone()),
                        d.shell_type.clone(),
                        Some(d.connection_type.clone()),
                        d.connection_port,
                    ),
                    None => (None, None, None, None, 22),
                }
            }
            None => {
                let cloud_image = match env.pool.labels.get(label).map(|l| &l.image) {
                    Some(nodepool_config::LabelImage::CloudImage(name)) => {
                        node.image_id = Some(name.clone());
                        config.cloud_images.get(name)
                    }
                    _ => None,
                };
                match cloud_image {
                    Some(c) => (
                        c.username.clone(),
                        Some(c.python_path.clone()),
                        c.shell_type.clone(),
                        Some(c.connection_type.clone()),
                        c.connection_port,
                    ),
                    None => (None, None, None, Some("ssh".to_string()), 22),
                }
            }
        };
    // As Nodepool: the image's username, which a cloud image may leave unset (null).
    node.username = username.or(upload_username);
    node.python_path = python_path;
    node.shell_type = shell_type;
    node.connection_type = connection_type;
    node.connection_port = Some(ConnectionPort::Port(port));
    if let Ok(need) = env.rt.quota_for_label(&env.pool.name, label).await {
        node.resources = Some(need.to_json());
    }
    prepared
}

fn external_id_text(id: &ExternalId) -> String {
    match id {
        ExternalId::Id(s) => s.clone(),
        ExternalId::Fields(f) => serde_json::Value::Object(f.clone()).to_string(),
    }
}

/// Copies what the cloud reported onto the node (spec 2.12 step 3).
fn apply_instance(node: &mut Node, instance: &Instance, use_internal_ip: bool) {
    if instance.external_id.is_some() {
        node.external_id = instance.external_id.clone();
    }
    let private = instance
        .private_ipv4
        .clone()
        .or(instance.private_ipv6.clone());
    node.interface_ip = if use_internal_ip && private.is_some() {
        private
    } else {
        instance.interface_ip.clone()
    };
    node.public_ipv4 = instance.public_ipv4.clone();
    node.private_ipv4 = instance.private_ipv4.clone();
    node.public_ipv6 = instance.public_ipv6.clone();
    node.host_id = instance.host_id.clone();
    node.cloud = instance.cloud.clone();
    node.region = instance.region.clone();
    node.az = instance.az.clone();
    node.driver_data = instance.driver_data.clone();
    node.slot = instance.slot;
    // Nodepool keeps the constructor's `{}` unless the cloud reports properties.
    if instance.node_properties.is_some() {
        node.node_properties = instance.node_properties.clone();
    }
    if let Some(resources) = &instance.resources {
        node.resources = Some(resources.to_json());
    }
    if let Some(v) = &instance.username {
        node.username = Some(v.clone());
    }
    if let Some(v) = &instance.python_path {
        node.python_path = Some(v.clone());
    }
    if let Some(v) = &instance.shell_type {
        node.shell_type = Some(v.clone());
    }
    if let Some(v) = instance.connection_port {
        node.connection_port = Some(ConnectionPort::Port(v));
    }
    if let Some(credentials) = &instance.connection_credentials {
        node.connection_port = Some(ConnectionPort::Credentials(credentials.0.clone()));
    }
    if let Some(v) = &instance.connection_type {
        node.connection_type = Some(v.clone());
    }
}

enum AttemptError {
    Driver(DriverError),
    Timeout,
    Keyscan(String),
    Stopping,
    Store(String),
}

impl AttemptError {
    fn result(&self) -> &'static str {
        match self {
            AttemptError::Driver(e) => e.launch_result(),
            AttemptError::Timeout => "error.servercreatetimeout",
            AttemptError::Keyscan(_) => "error.keyscan",
            AttemptError::Stopping | AttemptError::Store(_) => "error.unknown",
        }
    }

    fn text(&self) -> String {
        match self {
            AttemptError::Driver(e) => e.to_string(),
            AttemptError::Timeout => "timeout waiting for the instance to be created".into(),
            AttemptError::Keyscan(e) => e.clone(),
            AttemptError::Stopping => "launcher stopping".into(),
            AttemptError::Store(e) => e.clone(),
        }
    }
}

/// What a node is launched as, and for which request.
#[derive(Debug, Clone)]
pub struct Target {
    pub label: String,
    pub az: Option<String>,
    /// What the label's dynamic properties and tags are filled from.
    pub request: RequestAttributes,
}

/// Runs the launch to READY, ABORTED or failure; owns the node and its lock meanwhile.
pub async fn run(
    env: Env,
    id: NodeId,
    mut node: Node,
    lock: Lock,
    target: Target,
    prepared: Prepared,
) -> LaunchDone {
    // Counted as started by the handler before spawning, so max-concurrency sees it at once.
    let started = Instant::now();
    let outcome = match prepared {
        Prepared::NoImage(reason) => {
            tracing::warn!(node_id = %id, reason, "launch failed");
            env.ctx
                .stats
                .launch(&node, "error.nodepool", started.elapsed());
            Outcome::Failed(reason)
        }
        Prepared::Image { external_id } => {
            attempts(&env, id, &mut node, &target, external_id, started).await
        }
    };
    env.rt.launch_ended();
    env.ctx.progressed();
    LaunchDone {
        node,
        lock: Some(lock),
        outcome,
    }
}

async fn attempts(
    env: &Env,
    id: NodeId,
    node: &mut Node,
    target: &Target,
    image_external_id: Option<String>,
    started: Instant,
) -> Outcome {
    let label = target.label.as_str();
    let settings = env.rt.launch_settings();
    let Some(cloud) = env.rt.cloud.clone() else {
        return Outcome::Failed("static providers launch nothing".into());
    };
    let mut metadata = Metadata::new();
    metadata.insert(metadata_keys::NODE_ID.into(), id.to_string());
    metadata.insert(metadata_keys::POOL_NAME.into(), env.pool.name.clone());
    metadata.insert(
        metadata_keys::PROVIDER_NAME.into(),
        env.rt.name().to_string(),
    );
    for attempt in 1..=settings.launch_retries {
        let spec = CreateSpec {
            hostname: format!("np{id}"),
            pool: env.pool.name.clone(),
            label: label.to_string(),
            image_external_id: image_external_id.clone(),
            metadata: metadata.clone(),
            az: target.az.clone(),
            request: Some(target.request.clone()),
        };
        let error = match attempt_once(env, id, node, label, spec, settings).await {
            Ok(()) => {
                env.ctx.stats.launch(node, "ready", started.elapsed());
                tracing::info!(node_id = %id, label, provider = env.rt.name(), seconds = started.elapsed().as_secs_f64(), "node ready");
                return Outcome::Ready;
            }
            Err(e) => e,
        };
        if matches!(error, AttemptError::Stopping) {
            return Outcome::Abandoned;
        }
        env.ctx
            .stats
            .launch(node, error.result(), started.elapsed());
        if let AttemptError::Driver(DriverError::Quota(reason)) = &error {
            tracing::info!(node_id = %id, reason, "cloud quota exceeded; node aborted");
            env.rt.invalidate_quota();
            node.set_state(NodeState::Aborted, now());
            if let Err(e) = env.ctx.store.nodes().store(id, node).await {
                tracing::warn!(node_id = %id, error = %e, "cannot store aborted node");
            }
            return Outcome::Aborted;
        }
        tracing::warn!(node_id = %id, attempt, attempts = settings.launch_retries, error = %error.text(), "launch attempt failed");
        if providers::console_log(&env.pool, label)
            && let Some(external) = &node.external_id
        {
            let limit = env.ctx.options.timing.console_log_timeout;
            match bounded(env, Some(limit), cloud.console_log(external)).await {
                Bounded::Done(Some(log)) => {
                    tracing::info!(node_id = %id, console = %log, "console log of the failed node");
                }
                Bounded::Done(None) => {}
                Bounded::TimedOut => {
                    tracing::warn!(node_id = %id, seconds = limit.as_secs_f64(), "the console log of the failed node did not come in time; going on without it");
                }
                // The node keeps its external id, so whoever deletes the node deletes the
                // instance.
                Bounded::Stopping => return Outcome::Abandoned,
            }
        }
        if attempt == settings.launch_retries {
            return Outcome::Failed(error.text());
        }
        // Clean up the partial instance before the next attempt on the same node id.
        if let Some(external) = node.external_id.clone() {
            if !delete_instance(env, id, &external).await {
                // Stopping: the node keeps its external id, so whoever deletes the node
                // deletes the instance.
                return Outcome::Abandoned;
            }
            node.external_id = None;
            if let Err(e) = env.ctx.store.nodes().store(id, node).await {
                tracing::warn!(node_id = %id, error = %e, "cannot store node");
            }
        }
    }
    Outcome::Failed("no launch attempts".into())
}

async fn attempt_once(
    env: &Env,
    id: NodeId,
    node: &mut Node,
    label: &str,
    spec: CreateSpec,
    settings: providers::LaunchSettings,
) -> Result<(), AttemptError> {
    let Some(cloud) = env.rt.cloud.clone() else {
        return Err(AttemptError::Store("no cloud".into()));
    };
    let store = env.ctx.store.nodes();
    let mut machine = cloud.create_machine(spec);
    let began = Instant::now();
    // The external id is known but not stored yet: the machine said it would finish at
    // once, so the READY store carries it (leak cleanup covers a crash meanwhile).
    let mut external_unstored = false;
    let instance = loop {
        if env.ctx.is_stopping() {
            store_external_id(env, id, node, &mut external_unstored).await;
            return Err(AttemptError::Stopping);
        }
        // A step that never answers must not hold the launch: it is bounded by what is
        // left of launch-timeout and interrupted by a stop, as the wait between steps is.
        let left = settings
            .launch_timeout
            .map(|t| t.saturating_sub(began.elapsed()));
        let step = match bounded(env, left, machine.advance()).await {
            Bounded::Done(step) => step,
            interrupted => {
                // The interrupted step may have learnt the cloud's id already.
                if node.external_id.is_none()
                    && let Some(external) = machine.external_id()
                {
                    node.external_id = Some(external);
                    external_unstored = true;
                }
                store_external_id(env, id, node, &mut external_unstored).await;
                return Err(match interrupted {
                    Bounded::Stopping => AttemptError::Stopping,
                    _ => AttemptError::Timeout,
                });
            }
        };
        if node.external_id.is_none()
            && let Some(external) = machine.external_id()
        {
            node.external_id = Some(external);
            // Stored at once so a restarted launcher can delete what we made, unless the
            // very next step finishes the create.
            if !matches!(step, Ok(Some(_))) {
                if machine.poll_after() < QUICK_CREATE_STEP {
                    external_unstored = true;
                } else {
                    store
                        .store(id, node)
                        .await
                        .map_err(|e| AttemptError::Store(e.to_string()))?;
                }
            }
        } else if external_unstored {
            match &step {
                Ok(Some(_)) => {}
                // The create took longer after all.
                Ok(None) => {
                    store
                        .store(id, node)
                        .await
                        .map_err(|e| AttemptError::Store(e.to_string()))?;
                    external_unstored = false;
                }
                Err(_) => store_external_id(env, id, node, &mut external_unstored).await,
            }
        }
        match step {
            Ok(Some(instance)) => break instance,
            Ok(None) => {}
            Err(e) => return Err(AttemptError::Driver(e)),
        }
        if settings
            .launch_timeout
            .is_some_and(|t| began.elapsed() >= t)
        {
            store_external_id(env, id, node, &mut external_unstored).await;
            return Err(AttemptError::Timeout);
        }
        let mut shutdown = env.ctx.shutdown.clone();
        tokio::select! {
            _ = tokio::time::sleep(machine.poll_after()) => {}
            _ = shutdown.wait_for(|s| *s) => {}
        }
    };
    let use_internal_ip = matches!(&env.pool.settings, nodepool_config::PoolSettings::OpenStack(p) if p.use_internal_ip)
        || matches!(&env.pool.settings, nodepool_config::PoolSettings::Aws(p) if p.use_internal_ip);
    apply_instance(node, &instance, use_internal_ip);
    tracing::debug!(node_id = %id, external_id = ?node.external_id.as_ref().map(external_id_text), "instance created; scanning");
    let keys = match &instance.host_keys {
        Some(keys) => keys.clone(),
        None if !providers::host_key_checking(&env.pool, label) => Vec::new(),
        None => {
            // A scan can take long: make what we created findable first.
            store_external_id(env, id, node, &mut external_unstored).await;
            let host = node.interface_ip.clone().unwrap_or_default();
            let port = match &node.connection_port {
                Some(ConnectionPort::Port(p)) => *p,
                _ => 22,
            };
            let target = ScanTarget {
                host,
                port,
                connection_type: node.connection_type.clone().unwrap_or_else(|| "ssh".into()),
                gather_keys: true,
                timeout: settings.boot_timeout,
            };
            let mut shutdown = env.ctx.shutdown.clone();
            tokio::select! {
                scanned = nodescan::scan(&target) => scanned.map_err(|e| AttemptError::Keyscan(e.to_string()))?,
                _ = shutdown.wait_for(|s| *s) => return Err(AttemptError::Stopping),
            }
        }
    };
    node.host_keys = keys;
    node.set_state(NodeState::Ready, now());
    store
        .store(id, node)
        .await
        .map_err(|e| AttemptError::Store(e.to_string()))
}

/// A create machine that asks to be polled again sooner than this is about to finish: its
/// external id is stored with the finished instance rather than on its own.
const QUICK_CREATE_STEP: Duration = Duration::from_millis(50);

/// How an awaited driver call ended.
enum Bounded<T> {
    Done(T),
    TimedOut,
    Stopping,
}

/// Awaits one driver call for at most `limit` (no limit when `None`), giving up at once
/// when the launcher stops. The call's future is dropped when it is given up.
async fn bounded<T>(
    env: &Env,
    limit: Option<Duration>,
    call: impl Future<Output = T>,
) -> Bounded<T> {
    let mut shutdown = env.ctx.shutdown.clone();
    let expired = async {
        match limit {
            Some(limit) => tokio::time::sleep(limit).await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        // An answer that is ready counts even if the time is up or a stop came meanwhile.
        biased;
        done = call => Bounded::Done(done),
        _ = shutdown.wait_for(|s| *s) => Bounded::Stopping,
        _ = expired => Bounded::TimedOut,
    }
}

/// Stores a deferred external id on an early exit, so what we made can be found.
async fn store_external_id(env: &Env, id: NodeId, node: &Node, unstored: &mut bool) {
    if std::mem::take(unstored)
        && let Err(e) = env.ctx.store.nodes().store(id, node).await
    {
        tracing::warn!(node_id = %id, error = %e, "cannot store the external id; leak cleanup will find the instance");
    }
}

/// Runs a delete state machine to the end (NotFound counts as done), for at most the delete
/// timeout. False when the launcher stopped first (the instance may still exist).
pub async fn delete_instance(env: &Env, id: NodeId, external: &ExternalId) -> bool {
    let Some(cloud) = env.rt.cloud.clone() else {
        return true;
    };
    let delete = nodepool_driver::run_delete_machine(
        cloud.as_ref(),
        external,
        env.ctx.options.timing.delete_timeout,
    );
    match bounded(env, None, delete).await {
        Bounded::Done(Ok(())) => true,
        Bounded::Done(Err(e)) => {
            tracing::warn!(node_id = %id, error = %e, "cannot delete the partial instance; leak cleanup will");
            true
        }
        Bounded::Stopping | Bounded::TimedOut => false,
    }
}
