//! A Zuul client on the wire: what Zuul 14.3 does to node requests and nodes when it falls
//! back to Nodepool (spec 1.10), over any [`Store`] backend.
//!
//! Tests use it to drive a launcher the way production does: [`ZuulClient::submit`] a
//! request, [`ZuulClient::wait`] for it, [`ZuulClient::accept`] the nodes (lock them and
//! delete the request), [`ZuulClient::use_nodes`] and [`ZuulClient::return_nodes`] them, or
//! [`ZuulClient::autohold`] them and later [`ZuulClient::release_hold`].
//!
//! The documents are Zuul's, not ours, which is why this module builds JSON itself rather
//! than going through `nodepool_model::wire` (which writes Nodepool's):
//!
//! * a submitted request has exactly Zuul's keys in Zuul's order (`NodeRequest.toDict`): no
//!   `declined_by`, `nodes` or `reuse`, so the launcher's tolerant reader is exercised;
//! * a node is written as Zuul's `Node.toDict` does: `id`, `state`, `hold_job`, `comment`,
//!   `user_data`, `tenant_name`, `requestor`, then every other key as it was read, with
//!   `state_time` stamped by every state change. The extra `id` key is Zuul's;
//! * revising a priority rewrites the request as read, changing only `relative_priority`,
//!   with a version check.
//!
//! All JSON is printed like Python's `json.dumps`. Locks are the kazoo recipe through the
//! store, with an empty identifier, as Zuul takes them.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use nodepool_model::ids::random_uuid_hex;
use nodepool_model::python_json::to_python_json;
use nodepool_model::{Node, NodeId, NodeRequest, NodeState, RequestId, RequestState, wire};
use nodepool_store::{CreateMode, Lock, LockWait, Stat, Store, StoreError, paths, retry_suspended};
use serde_json::{Map, Value, json};

use crate::wait::{ChangeWaitError, wait_for_store_change};

/// How long Zuul's executor waits for each node lock when accepting a node set.
pub const NODE_LOCK_TIMEOUT: Duration = Duration::from_secs(30);

/// The canonical project name [`ZuulClient::run_job`] records in `user_data`.
pub const DEFAULT_PROJECT_NAME: &str = "review.example.org/org/project";

/// What went wrong in a Zuul operation.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ZuulError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Nodepool failed the request (Zuul reports NODE_FAILURE).
    #[error("node request {0} failed")]
    Failed(RequestId),
    #[error("node request {request} was not fulfilled or failed within {after:?}")]
    Timeout { request: RequestId, after: Duration },
    /// The request znode disappeared while we waited for it or before we accepted it.
    #[error("node request {0} vanished")]
    Vanished(RequestId),
    /// `accept` was given a request that is not fulfilled.
    #[error("node request {request} is {state}, not fulfilled")]
    NotFulfilled {
        request: RequestId,
        state: RequestState,
    },
    /// A fulfilled request whose `nodes` do not pair up with its `node_types`.
    #[error("node request {request} has {nodes} nodes for {labels} labels")]
    NodeCountMismatch {
        request: RequestId,
        nodes: usize,
        labels: usize,
    },
    /// A node of the request is gone (or empty).
    #[error("node {0} does not exist")]
    NodeMissing(NodeId),
    /// A node is not (or no longer) allocated to the request being accepted.
    #[error("node {node} is allocated to {allocated_to:?}, not {request}")]
    NotAllocated {
        node: NodeId,
        request: RequestId,
        allocated_to: Option<RequestId>,
    },
    /// Someone else held a node's lock for longer than [`NODE_LOCK_TIMEOUT`].
    #[error("timed out locking node {0}")]
    NodeLockTimeout(NodeId),
}

pub type ZuulResult<T> = Result<T, ZuulError>;

/// Per-request settings; [`RequestOptions::default`] is a check-pipeline job with no
/// tenant and no preferred provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestOptions {
    /// The pipeline's precedence, the request id prefix, zero-padded to three digits
    /// (Zuul: high 100, normal 200, low 300).
    pub priority: u32,
    /// Lower is more urgent within the same priority.
    pub relative_priority: i64,
    /// Preferred provider (Zuul: the provider of a paused parent job's nodes).
    pub provider: Option<String>,
    pub tenant_name: Option<String>,
    /// Goes into `requestor_data` only.
    pub pipeline_name: String,
    /// Goes into `requestor_data` only.
    pub job_name: String,
    /// Zuul never writes `reuse` (Nodepool reads it as true). `false` adds `"reuse": false`
    /// to the document, which Zuul cannot do; it is here for min-ready-like tests.
    pub reuse: bool,
}

impl Default for RequestOptions {
    fn default() -> RequestOptions {
        RequestOptions {
            priority: 100,
            relative_priority: 0,
            provider: None,
            tenant_name: None,
            pipeline_name: "check".to_string(),
            job_name: "job".to_string(),
            reuse: true,
        }
    }
}

/// One locked node of an accepted [`NodeSet`].
#[derive(Debug)]
pub struct HeldNode {
    pub id: NodeId,
    /// The label this node was requested for (`node_types[i]` for `nodes[i]`).
    pub label: String,
    /// The node as last read or written by us.
    pub node: Node,
    /// The document exactly as last read or written: Zuul writes back every key it read.
    document: Map<String, Value>,
    /// Held from accept until return, autohold or the node set is dropped (then released
    /// only when the session ends; return or hold it instead).
    lock: Lock,
}

impl HeldNode {
    pub fn lock(&self) -> &Lock {
        &self.lock
    }
}

/// The nodes of an accepted request, each locked by us, in `node_types` order.
#[derive(Debug)]
pub struct NodeSet {
    request: RequestId,
    nodes: Vec<HeldNode>,
}

impl NodeSet {
    /// The (now deleted) request the nodes were granted for.
    pub fn request_id(&self) -> &RequestId {
        &self.request
    }

    pub fn ids(&self) -> Vec<NodeId> {
        self.nodes.iter().map(|held| held.id).collect()
    }

    pub fn nodes(&self) -> &[HeldNode] {
        &self.nodes
    }
}

/// Plays one Zuul system (one `requestor`) against a store.
#[derive(Debug, Clone)]
pub struct ZuulClient {
    store: Store,
    /// Zuul's system id: the `requestor` of our requests and `user_data.zuul_system`.
    system_id: String,
    /// How long to wait for each node lock when accepting.
    node_lock_timeout: Duration,
}

impl ZuulClient {
    pub fn new(store: Store, system_id: &str) -> ZuulClient {
        ZuulClient {
            store,
            system_id: system_id.to_string(),
            node_lock_timeout: NODE_LOCK_TIMEOUT,
        }
    }

    /// Waits `timeout` instead of [`NODE_LOCK_TIMEOUT`] for each node lock in `accept`.
    pub fn with_node_lock_timeout(mut self, timeout: Duration) -> ZuulClient {
        self.node_lock_timeout = timeout;
        self
    }

    pub fn system_id(&self) -> &str {
        &self.system_id
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Submits a request for `labels` as a persistent sequential znode
    /// `/nodepool/requests/<priority:03>-<seq10>` with Zuul's document (spec 1.10 step 1).
    ///
    /// Zuul never submits an empty node set ([`ZuulClient::run_job`] fulfils one locally);
    /// this still writes one if asked, to test how a launcher copes.
    pub async fn submit(&self, labels: &[&str], options: RequestOptions) -> ZuulResult<RequestId> {
        let now = now();
        let mut document = Map::new();
        document.insert(
            "requestor_data".to_string(),
            json!({
                "build_set_uuid": random_uuid_hex(),
                "tenant_name": options.tenant_name,
                "pipeline_name": options.pipeline_name,
                "job_uuid": random_uuid_hex(),
                "job_name": options.job_name,
                // Zuul's tracing span; opaque to Nodepool.
                "span_info": null,
            }),
        );
        document.insert("node_types".to_string(), json!(labels));
        document.insert("requestor".to_string(), json!(self.system_id));
        document.insert("created_time".to_string(), json!(now));
        document.insert("provider".to_string(), json!(options.provider));
        document.insert("state".to_string(), json!(RequestState::Requested.as_str()));
        document.insert("state_time".to_string(), json!(now));
        document.insert(
            "relative_priority".to_string(),
            json!(options.relative_priority),
        );
        document.insert("event_id".to_string(), json!(random_uuid_hex()));
        document.insert("tenant_name".to_string(), json!(options.tenant_name));
        if !options.reuse {
            document.insert("reuse".to_string(), json!(false));
        }
        let path = self
            .store
            .backend()
            .create(
                &format!("{}/{:0>3}-", paths::REQUESTS, options.priority),
                &to_python_json(&document),
                CreateMode::PersistentSequential,
                true,
            )
            .await?;
        let name = path.rsplit('/').next().unwrap_or_default();
        Ok(RequestId::parse(name).map_err(|e| StoreError::Malformed {
            path: path.clone(),
            reason: e.to_string(),
        })?)
    }

    /// Waits until the request is `fulfilled` or `failed` and returns it in that state
    /// (spec 1.10 step 2), re-reading it on every change under `/nodepool/requests`.
    /// A failed request is returned, not an error: Zuul deletes it ([`ZuulClient::cancel`])
    /// and reports NODE_FAILURE.
    pub async fn wait(&self, id: &RequestId, timeout: Duration) -> ZuulResult<NodeRequest> {
        let requests = self.store.requests();
        let outcome = wait_for_store_change(
            self.store.backend().as_ref(),
            paths::REQUESTS,
            timeout,
            || async {
                match requests.get(id).await {
                    Ok(Some(request)) => {
                        let state = &request.value.state;
                        (*state == RequestState::Fulfilled || *state == RequestState::Failed)
                            .then_some(Ok(request.value))
                    }
                    Ok(None) => Some(Err(ZuulError::Vanished(id.clone()))),
                    Err(e) => Some(Err(e.into())),
                }
            },
        )
        .await;
        match outcome {
            Ok(result) => result,
            Err(ChangeWaitError::Timeout(_)) => Err(ZuulError::Timeout {
                request: id.clone(),
                after: timeout,
            }),
            Err(ChangeWaitError::Store(e)) => Err(e.into()),
            Err(ChangeWaitError::FeedEnded(_)) => Err(StoreError::SessionLost.into()),
        }
    }

    /// The executor's accept (spec 1.10 step 5): for each node of the fulfilled `request`,
    /// read it, require `allocated_to == id`, lock it (waiting up to 30 s), re-read and
    /// re-check. On any failure the locks taken so far are released. The request znode is
    /// deleted in every case.
    pub async fn accept(&self, id: &RequestId, request: &NodeRequest) -> ZuulResult<NodeSet> {
        let locked = self.lock_nodes(id, request).await;
        // Through a reconnect, as kazoo's retry: a delete whose answer was lost may have been
        // applied, which a second try finds as NoNode.
        let requests = self.store.requests();
        let deleted = retry_suspended(
            self.store.backend().as_ref(),
            Some(ride_out_deadline()),
            || requests.delete(id),
        )
        .await;
        let node_set = locked?;
        if let Err(e) = deleted {
            log_release_failure(release_all(node_set.nodes).await);
            return Err(e.into());
        }
        Ok(node_set)
    }

    async fn lock_nodes(&self, id: &RequestId, request: &NodeRequest) -> ZuulResult<NodeSet> {
        if request.state != RequestState::Fulfilled {
            return Err(ZuulError::NotFulfilled {
                request: id.clone(),
                state: request.state.clone(),
            });
        }
        if request.nodes.len() != request.node_types.len() {
            return Err(ZuulError::NodeCountMismatch {
                request: id.clone(),
                nodes: request.nodes.len(),
                labels: request.node_types.len(),
            });
        }
        if self.store.requests().get(id).await?.is_none() {
            return Err(ZuulError::Vanished(id.clone()));
        }
        let mut held = Vec::with_capacity(request.nodes.len());
        for (node_id, label) in request.nodes.iter().zip(&request.node_types) {
            match self.lock_node(id, *node_id, label).await {
                Ok(node) => held.push(node),
                Err(e) => {
                    log_release_failure(release_all(held).await);
                    return Err(e);
                }
            }
        }
        Ok(NodeSet {
            request: id.clone(),
            nodes: held,
        })
    }

    async fn lock_node(
        &self,
        request: &RequestId,
        id: NodeId,
        label: &str,
    ) -> ZuulResult<HeldNode> {
        let (_, node) = self.read_node(id).await?;
        check_allocation(request, id, &node)?;
        let lock = match self
            .kazoo_lock_node(id, LockWait::Timeout(self.node_lock_timeout))
            .await
        {
            Ok(Some(lock)) => lock,
            Ok(None) | Err(StoreError::Timeout) => return Err(ZuulError::NodeLockTimeout(id)),
            Err(e) => return Err(e.into()),
        };
        // Nodepool may have re-allocated the node while we waited for the lock.
        let fresh = self.read_node(id).await.and_then(|(document, node)| {
            check_allocation(request, id, &node).map(|()| (document, node))
        });
        match fresh {
            Ok((document, node)) => Ok(HeldNode {
                id,
                label: label.to_string(),
                node,
                document,
                lock,
            }),
            Err(e) => {
                release(lock).await;
                Err(e)
            }
        }
    }

    /// The node's document and its parsed form; a missing or empty znode is
    /// [`ZuulError::NodeMissing`] (Zuul treats empty data as "no node").
    async fn read_node(&self, id: NodeId) -> ZuulResult<(Map<String, Value>, Node)> {
        let path = paths::node(id);
        match self.store.backend().get(&path).await? {
            Some((data, _)) if !data.is_empty() => Ok(parse_node(&path, &data)?),
            _ => Err(ZuulError::NodeMissing(id)),
        }
    }

    /// Starts the build (spec 1.10 step 6): every node `in-use` with
    /// `user_data = {"zuul_system", "project_name"}`, stored without a version check. The
    /// locks stay held.
    pub async fn use_nodes(&self, node_set: &mut NodeSet, project_name: &str) -> ZuulResult<()> {
        let user_data = json!({"zuul_system": self.system_id, "project_name": project_name});
        for held in &mut node_set.nodes {
            set_state(&mut held.document, &NodeState::InUse);
            held.document
                .insert("user_data".to_string(), user_data.clone());
            self.store_node(held).await?;
        }
        Ok(())
    }

    /// Ends the build (spec 1.10 step 7): nodes `in-use` become `used` (others, such as
    /// nodes still `ready` or held, are left as they are), then every lock is released.
    /// Every node is attempted; the first error is returned.
    pub async fn return_nodes(&self, node_set: NodeSet) -> ZuulResult<()> {
        let mut first_error = None;
        let mut nodes = node_set.nodes;
        for held in &mut nodes {
            if held.document.get("state").and_then(Value::as_str) == Some(NodeState::InUse.as_str())
            {
                set_state(&mut held.document, &NodeState::Used);
                if let Err(e) = self.store_node(held).await {
                    first_error.get_or_insert(e);
                }
            }
        }
        if let Some(e) = release_all(nodes).await {
            first_error.get_or_insert(e.into());
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Autoholds a failed build's nodes (spec 1.10 step 8): each node `hold` with
    /// `hold_job` (`"<tenant> <project> <job> <ref_filter>"`), `comment` and, when given
    /// and non-zero, `hold_expiration`; then returns the node set as step 7 (unlocking).
    pub async fn autohold(
        &self,
        mut node_set: NodeSet,
        hold_job: &str,
        comment: &str,
        hold_expiration: Option<i64>,
    ) -> ZuulResult<()> {
        let mut first_error = None;
        for held in &mut node_set.nodes {
            set_state(&mut held.document, &NodeState::Hold);
            held.document
                .insert("hold_job".to_string(), json!(hold_job));
            held.document.insert("comment".to_string(), json!(comment));
            if let Some(expiration) = hold_expiration.filter(|e| *e != 0) {
                held.document
                    .insert("hold_expiration".to_string(), json!(expiration));
            }
            if let Err(e) = self.store_node(held).await {
                first_error = Some(e);
                break;
            }
        }
        let returned = self.return_nodes(node_set).await;
        match first_error {
            Some(e) => Err(e),
            None => returned,
        }
    }

    /// Deleting an autohold request (spec 1.10 step 9): each node is locked non-blocking,
    /// set `used`, stored and unlocked. Nodes that are gone or locked by someone else are
    /// skipped, as Zuul skips them. Returns the nodes released.
    pub async fn release_hold(&self, node_ids: &[NodeId]) -> ZuulResult<Vec<NodeId>> {
        let mut released = Vec::new();
        for &id in node_ids {
            // Zuul reads the node first; locking a missing node would re-create its znode.
            match self.read_node(id).await {
                Ok(_) => {}
                Err(ZuulError::NodeMissing(_)) => continue,
                Err(e) => return Err(e),
            }
            let Some(lock) = self.kazoo_lock_node(id, LockWait::NonBlocking).await? else {
                continue;
            };
            let outcome = match self.read_node(id).await {
                Ok((mut document, _)) => {
                    set_state(&mut document, &NodeState::Used);
                    self.write_node(id, &document).await.map(|_| true)
                }
                Err(ZuulError::NodeMissing(_)) => Ok(false),
                Err(e) => Err(e),
            };
            release(lock).await;
            if outcome? {
                released.push(id);
            }
        }
        Ok(released)
    }

    /// Cancels a request: deletes its znode, whatever its state (spec 1.10 step 4).
    pub async fn cancel(&self, id: &RequestId) -> ZuulResult<()> {
        Ok(self.store.requests().delete(id).await?)
    }

    /// Revises `relative_priority` (spec 1.10 step 3): takes the request lock
    /// non-blocking; if obtained, rewrites the request with the new value only if it is
    /// unchanged since read; unlocks. Returns `false`, changing nothing, when someone (a
    /// launcher working on it) holds the lock.
    pub async fn revise_priority(
        &self,
        id: &RequestId,
        relative_priority: i64,
    ) -> ZuulResult<bool> {
        let Some(lock) = self
            .store
            .requests()
            .lock(id, LockWait::NonBlocking)
            .await?
        else {
            return Ok(false);
        };
        let outcome = self.rewrite_priority(id, relative_priority).await;
        release(lock).await;
        outcome.map(|()| true)
    }

    async fn rewrite_priority(&self, id: &RequestId, relative_priority: i64) -> ZuulResult<()> {
        let path = paths::request(id);
        let (mut document, stat): (Map<String, Value>, Stat) =
            match self.store.backend().get(&path).await? {
                Some((data, stat)) if !data.is_empty() => (parse_object(&path, &data)?, stat),
                _ => return Err(ZuulError::Vanished(id.clone())),
            };
        document.insert("relative_priority".to_string(), json!(relative_priority));
        self.store
            .backend()
            .set(&path, &to_python_json(&document), Some(stat.version))
            .await?;
        Ok(())
    }

    /// A whole job: submit, wait (a failed request is deleted and reported as
    /// [`ZuulError::Failed`]; on timeout the request is cancelled), accept, use (for
    /// [`DEFAULT_PROJECT_NAME`]) and return. Returns the nodes the job ran on. An empty
    /// label list is fulfilled locally, as Zuul does, without a request.
    pub async fn run_job(
        &self,
        labels: &[&str],
        options: RequestOptions,
        timeout: Duration,
    ) -> ZuulResult<Vec<NodeId>> {
        if labels.is_empty() {
            return Ok(Vec::new());
        }
        let id = self.submit(labels, options).await?;
        let request = match self.wait(&id, timeout).await {
            Ok(request) => request,
            Err(e) => {
                if matches!(e, ZuulError::Timeout { .. }) {
                    self.cancel(&id).await?;
                }
                return Err(e);
            }
        };
        if request.state == RequestState::Failed {
            self.cancel(&id).await?;
            return Err(ZuulError::Failed(id));
        }
        let mut node_set = self.accept(&id, &request).await?;
        let ids = node_set.ids();
        let used = self.use_nodes(&mut node_set, DEFAULT_PROJECT_NAME).await;
        let returned = self.return_nodes(node_set).await;
        used?;
        returned?;
        Ok(ids)
    }

    /// Locks a node as Zuul's kazoo lock does: a node deleted meanwhile comes back empty
    /// (spec 8.2), which Nodepool's launchers must cope with.
    async fn kazoo_lock_node(
        &self,
        id: NodeId,
        wait: LockWait,
    ) -> Result<Option<Lock>, StoreError> {
        self.store.lock(&paths::node_lock(id), "", wait).await
    }

    /// Writes a held node as Zuul's `storeNode` does and keeps our copy current.
    async fn store_node(&self, held: &mut HeldNode) -> ZuulResult<()> {
        let written = self.write_node(held.id, &held.document).await?;
        let path = paths::node(held.id);
        let (document, node) = parse_node(&path, &written)?;
        held.document = document;
        held.node = node;
        Ok(())
    }

    /// Stores `document` in Zuul's `Node.toDict` shape without a version check; returns the
    /// bytes written.
    async fn write_node(&self, id: NodeId, document: &Map<String, Value>) -> ZuulResult<Vec<u8>> {
        let data = to_python_json(&zuul_node_document(id, document));
        let backend = self.store.backend().as_ref();
        let path = paths::node(id);
        retry_suspended(backend, Some(ride_out_deadline()), || {
            backend.set(&path, &data, None)
        })
        .await?;
        Ok(data)
    }
}

/// Zuul's `Node.toDict`: `id`, `state`, `hold_job`, `comment`, `user_data`, `tenant_name`,
/// `requestor` first, then every key read (except `state`) in read order, with current
/// values.
fn zuul_node_document(id: NodeId, read: &Map<String, Value>) -> Map<String, Value> {
    let mut document = Map::new();
    document.insert("id".to_string(), json!(id.to_string()));
    for key in [
        "state",
        "hold_job",
        "comment",
        "user_data",
        "tenant_name",
        "requestor",
    ] {
        document.insert(
            key.to_string(),
            read.get(key).cloned().unwrap_or(Value::Null),
        );
    }
    for (key, value) in read {
        if key != "state" {
            document.insert(key.clone(), value.clone());
        }
    }
    document
}

/// Zuul's state setter: every assignment also stamps `state_time`.
fn set_state(document: &mut Map<String, Value>, state: &NodeState) {
    document.insert("state".to_string(), json!(state.as_str()));
    document.insert("state_time".to_string(), json!(now()));
}

fn check_allocation(request: &RequestId, id: NodeId, node: &Node) -> ZuulResult<()> {
    if node.is_allocated_to(request) {
        Ok(())
    } else {
        Err(ZuulError::NotAllocated {
            node: id,
            request: request.clone(),
            allocated_to: node.allocated_to.clone(),
        })
    }
}

fn parse_object(path: &str, data: &[u8]) -> Result<Map<String, Value>, StoreError> {
    match serde_json::from_slice(data) {
        Ok(Value::Object(document)) => Ok(document),
        Ok(_) => Err(StoreError::Malformed {
            path: path.to_string(),
            reason: "not a JSON object".to_string(),
        }),
        Err(e) => Err(StoreError::Malformed {
            path: path.to_string(),
            reason: e.to_string(),
        }),
    }
}

fn parse_node(path: &str, data: &[u8]) -> Result<(Map<String, Value>, Node), StoreError> {
    let document = parse_object(path, data)?;
    let node = wire::node::from_json(data).map_err(|e| StoreError::Malformed {
        path: path.to_string(),
        reason: e.to_string(),
    })?;
    Ok((document, node))
}

/// Releases a lock on a path where another error is already being reported; a failure
/// only means the contender outlives us until the session ends, so it is logged.
async fn release(lock: Lock) {
    let contender = lock.node().to_string();
    if let Err(e) = lock.release().await {
        tracing::warn!(contender, error = %e, "Zuul client could not release a lock");
    }
}

/// How long a step waits for a suspended connection to come back before it fails.
fn ride_out_deadline() -> std::time::Instant {
    std::time::Instant::now() + Duration::from_secs(60)
}

/// Releases every held lock; returns the first failure.
async fn release_all(nodes: Vec<HeldNode>) -> Option<StoreError> {
    let mut first_error = None;
    for held in nodes {
        if let Err(e) = held.lock.release().await {
            first_error.get_or_insert(e);
        }
    }
    first_error
}

fn log_release_failure(failure: Option<StoreError>) {
    if let Some(e) = failure {
        tracing::warn!(error = %e, "Zuul client could not release a node lock");
    }
}

/// Seconds since the epoch, as Python's `time.time()`.
fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_secs_f64())
        .unwrap_or_default()
}
