//! The create and delete state machines. Each `advance` makes one or two API calls.
//!
//! Create: `creating namespace` (the namespace is the external id from here on) ->
//! `creating service account` -> `creating token secret` -> `waiting for token` (until the
//! token controller fills it; 30 s, as Nodepool) -> `creating role` -> `creating role
//! binding` -> [pod labels: `creating pod` -> `waiting for pod` (until Running; 300 s, as
//! Nodepool)] -> `complete`.
//! Delete: `deleting namespace` -> `waiting for namespace` (until it is gone) -> `complete`.
//!
//! Transient errors (5xx, timeouts, refused connections) leave the machine on its step, to be
//! tried again at the next `advance`, up to [`TRANSIENT_STEPS`] in a row. A step that finds
//! its object already there (409) goes on: the object is the one an earlier try of the same
//! step made.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use nodepool_driver::{CreateMachine, DeleteMachine, DriverError, Instance};
use nodepool_model::ExternalId;
use serde_json::Value;

use crate::client::{ApiError, ApiErrorKind, Kind, KubeClient};
use crate::kubeconfig::{Secret, decode_base64};
use crate::objects::{self, NodePlan};

/// How long the token controller has to fill the token secret (Nodepool: 30 tries a second
/// apart).
pub const TOKEN_WAIT: Duration = Duration::from_secs(30);
/// How long a pod has to reach Running (Nodepool: 300 tries a second apart).
pub const POD_WAIT: Duration = Duration::from_secs(300);
/// Between steps that have nothing to wait for.
pub(crate) const NEXT_STEP: Duration = Duration::from_millis(100);
/// Between polls of a token, a pod or a namespace going away.
pub(crate) const POLL: Duration = Duration::from_millis(500);
/// After a transient error.
pub(crate) const RETRY: Duration = Duration::from_secs(1);
/// Transient errors in a row a step rides out before the machine fails.
pub const TRANSIENT_STEPS: u32 = 30;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CreateStep {
    Namespace,
    ServiceAccount,
    TokenSecret,
    WaitToken,
    Role,
    RoleBinding,
    Pod,
    WaitPod,
    Complete,
}

impl CreateStep {
    fn name(self) -> &'static str {
        match self {
            CreateStep::Namespace => "creating namespace",
            CreateStep::ServiceAccount => "creating service account",
            CreateStep::TokenSecret => "creating token secret",
            CreateStep::WaitToken => "waiting for token",
            CreateStep::Role => "creating role",
            CreateStep::RoleBinding => "creating role binding",
            CreateStep::Pod => "creating pod",
            CreateStep::WaitPod => "waiting for pod",
            CreateStep::Complete => "complete",
        }
    }
}

/// Counts transient errors in a row: below the limit one becomes "not yet".
#[derive(Debug, Default)]
pub(crate) struct RideOut {
    in_a_row: u32,
}

impl RideOut {
    pub(crate) fn apply<T>(
        &mut self,
        result: Result<T, DriverError>,
        not_yet: T,
        step: &str,
        object: &str,
    ) -> Result<T, DriverError> {
        match result {
            Ok(value) => {
                self.in_a_row = 0;
                Ok(value)
            }
            Err(DriverError::Transient(message)) if self.in_a_row < TRANSIENT_STEPS => {
                self.in_a_row += 1;
                tracing::warn!(step, object, failures = self.in_a_row, error = %message, "transient Kubernetes error; trying the step again");
                Ok(not_yet)
            }
            Err(e) => Err(e),
        }
    }

    pub(crate) fn retrying(&self) -> bool {
        self.in_a_row > 0
    }
}

/// A 409 counts as done: the object is there.
fn created(result: Result<Value, ApiError>) -> Result<(), DriverError> {
    match result {
        Ok(_) => Ok(()),
        Err(e) if e.kind == ApiErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Whether a pod create was refused because the pod's service account is not there yet:
/// the service-account controller makes the namespace's `default` a moment after the
/// namespace, and the ServiceAccount admission plugin refuses pods until then.
pub(crate) fn waiting_for_default_service_account(e: &ApiError) -> bool {
    e.kind == ApiErrorKind::Forbidden
        && e.message.contains("error looking up service account")
        && e.message.contains("not found")
}

/// Where a pod a create waits for stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PodProgress {
    /// It runs, on this Kubernetes node (the node record's `host_id`).
    Running {
        node: Option<String>,
    },
    NotYet,
}

/// Reads the phase of `pod` (in `namespace`, named `name`) for a create that waits until it
/// runs: a pod that ended, or one still not running at `deadline`, fails the create (as
/// Nodepool's "pod failed to initialize"). `last_phase` is the phase logged last.
pub(crate) fn pod_progress(
    pod: &Value,
    namespace: &str,
    name: &str,
    deadline: Instant,
    last_phase: &mut String,
) -> Result<PodProgress, DriverError> {
    let phase = pod
        .pointer("/status/phase")
        .and_then(Value::as_str)
        .unwrap_or("");
    match phase {
        "Running" => {
            let node = pod
                .pointer("/spec/nodeName")
                .and_then(Value::as_str)
                .map(str::to_string);
            tracing::info!(
                namespace,
                pod = name,
                node = node.as_deref().unwrap_or(""),
                "pod running"
            );
            Ok(PodProgress::Running { node })
        }
        // It will never run (a `spec` with `restartPolicy: Never` whose command ended).
        "Succeeded" | "Failed" => Err(DriverError::Fatal(format!(
            "namespace {namespace}: pod {name} ended ({phase}) before it was seen running"
        ))),
        _ => {
            if Instant::now() >= deadline {
                return Err(DriverError::Fatal(format!(
                    "namespace {namespace}: pod {name} failed to initialize ({}) within {} s",
                    if phase.is_empty() { "no phase" } else { phase },
                    POD_WAIT.as_secs()
                )));
            }
            if phase != last_phase.as_str() {
                tracing::debug!(namespace, pod = name, phase, "pod not running yet");
                *last_phase = phase.to_string();
            }
            Ok(PodProgress::NotYet)
        }
    }
}

#[derive(Debug)]
pub struct KubernetesCreateMachine {
    client: Arc<KubeClient>,
    /// The objects to make, or why the label cannot be built (the first `advance` says).
    plan: Result<Arc<NodePlan>, DriverError>,
    step: CreateStep,
    /// Whether the namespace exists (made by us, or left by an earlier attempt for this
    /// node): from then on it is the external id.
    namespace_made: bool,
    /// The service account's token and the cluster CA (base64, as the secret has it).
    token: Option<Secret<String>>,
    ca_crt: Option<String>,
    /// Until when the current wait (token, pod) may last.
    deadline: Instant,
    /// The pod's phase at the last poll, for the timeout's message.
    pod_phase: String,
    ride_out: RideOut,
}

impl KubernetesCreateMachine {
    pub(crate) fn new(
        client: Arc<KubeClient>,
        plan: Result<NodePlan, DriverError>,
    ) -> KubernetesCreateMachine {
        KubernetesCreateMachine {
            client,
            plan: plan.map(Arc::new),
            step: CreateStep::Namespace,
            namespace_made: false,
            token: None,
            ca_crt: None,
            deadline: Instant::now(),
            pod_phase: String::new(),
            ride_out: RideOut::default(),
        }
    }

    async fn create_namespace(&mut self, plan: &NodePlan) -> Result<(), DriverError> {
        match self
            .client
            .create_namespace(&objects::namespace_body(plan))
            .await
        {
            Ok(_) => {
                self.namespace_made = true;
                tracing::info!(namespace = %plan.namespace, node_id = %plan.node_id, label = %plan.label, "namespace created");
                self.step = CreateStep::ServiceAccount;
                Ok(())
            }
            Err(e) if e.kind == ApiErrorKind::AlreadyExists => self.adopt(plan, e).await,
            Err(e) => Err(e.into()),
        }
    }

    /// The namespace exists already. Ours (this node's labels): an earlier try made it, and
    /// it is used as it is; while it is still being deleted the step waits. Anyone else's is
    /// an error.
    async fn adopt(&mut self, plan: &NodePlan, exists: ApiError) -> Result<(), DriverError> {
        let namespace = self.client.get_namespace(&plan.namespace).await?;
        let labels = objects::string_labels(
            namespace
                .pointer("/metadata/labels")
                .and_then(Value::as_object),
        );
        let ours = labels.get(nodepool_driver::metadata_keys::NODE_ID) == Some(&plan.node_id)
            && labels.get(nodepool_driver::metadata_keys::PROVIDER_NAME) == Some(&plan.provider);
        if !ours {
            return Err(DriverError::Fatal(format!(
                "{exists} (it is not labelled as this node's namespace)"
            )));
        }
        self.namespace_made = true;
        if namespace.pointer("/status/phase").and_then(Value::as_str) == Some("Terminating") {
            return Err(DriverError::Transient(format!(
                "namespace {} of an earlier attempt for this node is still being deleted",
                plan.namespace
            )));
        }
        tracing::info!(namespace = %plan.namespace, node_id = %plan.node_id, "the namespace exists from an earlier attempt for this node; using it");
        self.step = CreateStep::ServiceAccount;
        Ok(())
    }

    /// Reads the token secret; moves on once the token controller has filled it.
    async fn wait_for_token(&mut self, plan: &NodePlan) -> Result<(), DriverError> {
        let secret = self
            .client
            .get_in(&plan.namespace, Kind::Secret, objects::SERVICE_ACCOUNT)
            .await;
        let secret = match secret {
            Ok(secret) => secret,
            // The token controller deletes a token secret whose service account it has not
            // seen yet; it is made again.
            Err(e) if e.kind == ApiErrorKind::NotFound => {
                tracing::info!(namespace = %plan.namespace, "the token secret is gone; making it again");
                self.step = CreateStep::TokenSecret;
                return Ok(());
            }
            Err(e) => return Err(e.into()),
        };
        let field = |name: &str| {
            secret
                .pointer(&format!("/data/{name}"))
                .and_then(Value::as_str)
                .filter(|v| !v.is_empty())
                .map(str::to_string)
        };
        if let (Some(token), Some(ca_crt)) = (field("token"), field("ca.crt")) {
            let token = decode_base64(&token)
                .ok()
                .and_then(|t| String::from_utf8(t).ok())
                .ok_or_else(|| {
                    DriverError::Fatal(format!(
                        "namespace {}: the token in secret {} is not base64 text",
                        plan.namespace,
                        objects::SERVICE_ACCOUNT
                    ))
                })?;
            self.token = Some(Secret::new(token));
            self.ca_crt = Some(ca_crt);
            self.step = CreateStep::Role;
            return Ok(());
        }
        if Instant::now() >= self.deadline {
            return Err(DriverError::Fatal(format!(
                "namespace {}: the token controller did not fill secret {} within {} s \
                 (is the controller-manager running with a service-account key?)",
                plan.namespace,
                objects::SERVICE_ACCOUNT,
                TOKEN_WAIT.as_secs()
            )));
        }
        Ok(())
    }

    async fn create_pod(&mut self, plan: &NodePlan) -> Result<(), DriverError> {
        let Some(pod) = &plan.pod else {
            self.step = CreateStep::Complete;
            return Ok(());
        };
        match self.client.create_in(&plan.namespace, Kind::Pod, pod).await {
            Ok(_) => {}
            Err(e) if e.kind == ApiErrorKind::AlreadyExists => {}
            Err(e) if waiting_for_default_service_account(&e) && Instant::now() < self.deadline => {
                tracing::debug!(namespace = %plan.namespace, "the namespace has no default service account yet");
                return Ok(());
            }
            Err(e) => return Err(e.into()),
        }
        tracing::info!(namespace = %plan.namespace, pod = %plan.label, "pod created");
        self.deadline = Instant::now() + POD_WAIT;
        self.step = CreateStep::WaitPod;
        Ok(())
    }

    /// Polls the pod; returns the node's instance once it runs.
    async fn wait_for_pod(&mut self, plan: &NodePlan) -> Result<Option<Instance>, DriverError> {
        let pod = self
            .client
            .get_in(&plan.namespace, Kind::Pod, &plan.label)
            .await?;
        let progress = pod_progress(
            &pod,
            &plan.namespace,
            &plan.label,
            self.deadline,
            &mut self.pod_phase,
        )?;
        match progress {
            PodProgress::Running { node } => {
                self.step = CreateStep::Complete;
                Ok(Some(self.instance(plan, node)?))
            }
            PodProgress::NotYet => Ok(None),
        }
    }

    /// What the launcher writes to the node record.
    fn instance(&self, plan: &NodePlan, host_id: Option<String>) -> Result<Instance, DriverError> {
        let (Some(token), Some(ca_crt)) = (&self.token, &self.ca_crt) else {
            return Err(DriverError::Fatal(format!(
                "namespace {}: completed without a service account token",
                plan.namespace
            )));
        };
        let access = self.client.access();
        let credentials = objects::credentials(
            &plan.namespace,
            &access.server,
            access.insecure_skip_tls_verify,
            token.expose(),
            ca_crt,
            plan.pod_name(),
        );
        Ok(Instance {
            external_id: Some(ExternalId::Id(plan.namespace.clone())),
            // Nodepool: a pod node's interface_ip is the pod's name.
            interface_ip: plan.pod_name().map(str::to_string),
            host_id,
            cloud: plan.context.clone(),
            metadata: objects::string_labels(Some(&plan.labels)),
            resources: Some(plan.resources.clone()),
            python_path: Some(plan.python_path.clone()),
            shell_type: plan.shell_type.clone(),
            connection_type: Some(plan.connection_type().to_string()),
            connection_credentials: Some(nodepool_driver::ConnectionCredentials(credentials)),
            // Nothing to scan: Zuul reaches the node through the API server. Known (empty)
            // host keys make the launcher skip the nodescan, and the record's `host_keys`
            // is `[]`, as Nodepool's.
            host_keys: Some(Vec::new()),
            ..Instance::default()
        })
    }

    async fn step(&mut self, plan: &NodePlan) -> Result<Option<Instance>, DriverError> {
        let namespace = plan.namespace.as_str();
        match self.step {
            CreateStep::Namespace => self.create_namespace(plan).await?,
            CreateStep::ServiceAccount => {
                let body = objects::service_account_body();
                created(
                    self.client
                        .create_in(namespace, Kind::ServiceAccount, &body)
                        .await,
                )?;
                self.step = CreateStep::TokenSecret;
            }
            CreateStep::TokenSecret => {
                let body = objects::token_secret_body();
                created(self.client.create_in(namespace, Kind::Secret, &body).await)?;
                self.deadline = Instant::now() + TOKEN_WAIT;
                self.step = CreateStep::WaitToken;
            }
            CreateStep::WaitToken => self.wait_for_token(plan).await?,
            CreateStep::Role => {
                let body = objects::role_body(plan.pod.is_some());
                created(self.client.create_in(namespace, Kind::Role, &body).await)?;
                self.step = CreateStep::RoleBinding;
            }
            CreateStep::RoleBinding => {
                let body = objects::role_binding_body(namespace, plan.pod.is_some());
                created(
                    self.client
                        .create_in(namespace, Kind::RoleBinding, &body)
                        .await,
                )?;
                if plan.pod.is_none() {
                    tracing::info!(namespace, node_id = %plan.node_id, "namespace ready");
                    self.step = CreateStep::Complete;
                    return self.instance(plan, None).map(Some);
                }
                // The pod step may wait for the namespace's default service account.
                self.deadline = Instant::now() + TOKEN_WAIT;
                self.step = CreateStep::Pod;
            }
            CreateStep::Pod => self.create_pod(plan).await?,
            CreateStep::WaitPod => return self.wait_for_pod(plan).await,
            CreateStep::Complete => {
                return Err(DriverError::Fatal(format!(
                    "namespace {namespace}: the create is complete already"
                )));
            }
        }
        Ok(None)
    }
}

#[async_trait]
impl CreateMachine for KubernetesCreateMachine {
    async fn advance(&mut self) -> Result<Option<Instance>, DriverError> {
        let plan = self.plan.clone()?;
        let step = self.step.name();
        let result = self.step(&plan).await;
        self.ride_out.apply(result, None, step, &plan.namespace)
    }

    fn state(&self) -> &str {
        self.step.name()
    }

    fn external_id(&self) -> Option<ExternalId> {
        match &self.plan {
            Ok(plan) if self.namespace_made => Some(ExternalId::Id(plan.namespace.clone())),
            _ => None,
        }
    }

    fn poll_after(&self) -> Duration {
        if self.ride_out.retrying() {
            return RETRY;
        }
        match self.step {
            CreateStep::WaitToken | CreateStep::WaitPod => POLL,
            _ => NEXT_STEP,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DeleteStep {
    Delete,
    Wait,
    Complete,
}

impl DeleteStep {
    fn name(self) -> &'static str {
        match self {
            DeleteStep::Delete => "deleting namespace",
            DeleteStep::Wait => "waiting for namespace",
            DeleteStep::Complete => "complete",
        }
    }
}

#[derive(Debug)]
pub struct KubernetesDeleteMachine {
    client: Arc<KubeClient>,
    /// The namespace to delete, or why the external id names none.
    namespace: Result<String, DriverError>,
    step: DeleteStep,
    ride_out: RideOut,
}

impl KubernetesDeleteMachine {
    pub(crate) fn new(
        client: Arc<KubeClient>,
        external_id: &ExternalId,
    ) -> KubernetesDeleteMachine {
        let namespace = match external_id {
            ExternalId::Id(name) if !name.is_empty() => Ok(name.clone()),
            other => Err(DriverError::Fatal(format!(
                "external id {other:?} is not a namespace name"
            ))),
        };
        KubernetesDeleteMachine {
            client,
            namespace,
            step: DeleteStep::Delete,
            ride_out: RideOut::default(),
        }
    }

    async fn step(&mut self, namespace: &str) -> Result<bool, DriverError> {
        match self.step {
            DeleteStep::Delete => match self.client.delete_namespace(namespace).await {
                Ok(_) => {
                    tracing::info!(namespace, "namespace deletion started");
                    self.step = DeleteStep::Wait;
                    Ok(false)
                }
                Err(e) if e.kind == ApiErrorKind::NotFound => {
                    self.step = DeleteStep::Complete;
                    Ok(true)
                }
                Err(e) => Err(e.into()),
            },
            DeleteStep::Wait => match self.client.get_namespace(namespace).await {
                Ok(_) => Ok(false),
                Err(e) if e.kind == ApiErrorKind::NotFound => {
                    tracing::info!(namespace, "namespace deleted");
                    self.step = DeleteStep::Complete;
                    Ok(true)
                }
                Err(e) => Err(e.into()),
            },
            DeleteStep::Complete => Ok(true),
        }
    }
}

#[async_trait]
impl DeleteMachine for KubernetesDeleteMachine {
    async fn advance(&mut self) -> Result<bool, DriverError> {
        let namespace = self.namespace.clone()?;
        let step = self.step.name();
        let result = self.step(&namespace).await;
        self.ride_out.apply(result, false, step, &namespace)
    }

    fn state(&self) -> &str {
        self.step.name()
    }

    fn poll_after(&self) -> Duration {
        if self.ride_out.retrying() {
            return RETRY;
        }
        match self.step {
            DeleteStep::Wait => Duration::from_secs(1),
            _ => NEXT_STEP,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_service_account_race_is_recognised() {
        let e = ApiError {
            kind: ApiErrorKind::Forbidden,
            status: Some(403),
            message: "kubernetes https://k: POST /api/v1/namespaces/main-1/pods: HTTP 403: pods \"p\" is forbidden: error looking up service account main-1/default: serviceaccount \"default\" not found".into(),
        };
        assert!(waiting_for_default_service_account(&e));
        let rbac = ApiError {
            message: "pods is forbidden: User \"x\" cannot create resource \"pods\"".into(),
            ..e
        };
        assert!(!waiting_for_default_service_account(&rbac));
    }

    #[test]
    fn transient_errors_are_ridden_out_up_to_the_limit() {
        let mut ride_out = RideOut::default();
        for _ in 0..TRANSIENT_STEPS {
            let r = ride_out.apply(Err(DriverError::Transient("503".into())), false, "s", "o");
            assert_eq!(r, Ok(false));
        }
        assert!(ride_out.retrying());
        let r = ride_out.apply(Err(DriverError::Transient("503".into())), false, "s", "o");
        assert_eq!(r, Err(DriverError::Transient("503".into())));
        let mut ride_out = RideOut::default();
        assert_eq!(ride_out.apply(Ok(true), false, "s", "o"), Ok(true));
        assert_eq!(
            ride_out.apply(Err(DriverError::Fatal("no".into())), false, "s", "o"),
            Err(DriverError::Fatal("no".into()))
        );
    }
}
