//! The openshiftpods create and delete state machines. Each `advance` makes one API call.
//!
//! Create: `creating pod` (the pod is the external id from here on) -> `waiting for pod`
//! (until Running; 300 s, as Nodepool) -> `complete`.
//! Delete: `deleting pod` -> `waiting for pod` (until it is gone) -> `complete`.
//!
//! Transient errors leave the machine on its step, as the kubernetes machines do. A create
//! that finds its pod already there uses it when it is this node's (an earlier try of the
//! same node made it) and fails otherwise, without claiming it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use nodepool_driver::{
    ConnectionCredentials, CreateMachine, DeleteMachine, DriverError, Instance, metadata_keys,
};
use nodepool_model::ExternalId;
use serde_json::Value;

use super::objects::{self, PodPlan};
use crate::client::{ApiError, ApiErrorKind, Kind, KubeClient};
use crate::machines::{
    NEXT_STEP, POD_WAIT, POLL, PodProgress, RETRY, RideOut, TOKEN_WAIT, pod_progress,
    waiting_for_default_service_account,
};
use crate::objects::string_labels;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CreateStep {
    Pod,
    WaitPod,
    Complete,
}

impl CreateStep {
    fn name(self) -> &'static str {
        match self {
            CreateStep::Pod => "creating pod",
            CreateStep::WaitPod => "waiting for pod",
            CreateStep::Complete => "complete",
        }
    }
}

#[derive(Debug)]
pub struct OpenShiftPodsCreateMachine {
    client: Arc<KubeClient>,
    /// The pod to make, or why the label cannot be built (the first `advance` says).
    plan: Result<Arc<PodPlan>, DriverError>,
    step: CreateStep,
    /// Whether the pod exists (made by us, or left by an earlier attempt for this node): from
    /// then on it is the external id.
    pod_made: bool,
    /// Until when the current wait may last: for the namespace's default service account
    /// while creating (a namespace made a moment ago has none yet), then for Running.
    deadline: Instant,
    /// The pod's phase at the last poll, for the logs.
    pod_phase: String,
    ride_out: RideOut,
}

impl OpenShiftPodsCreateMachine {
    pub(crate) fn new(
        client: Arc<KubeClient>,
        plan: Result<PodPlan, DriverError>,
    ) -> OpenShiftPodsCreateMachine {
        OpenShiftPodsCreateMachine {
            client,
            plan: plan.map(Arc::new),
            step: CreateStep::Pod,
            pod_made: false,
            deadline: Instant::now() + TOKEN_WAIT,
            pod_phase: String::new(),
            ride_out: RideOut::default(),
        }
    }

    async fn create_pod(&mut self, plan: &PodPlan) -> Result<(), DriverError> {
        let made = self
            .client
            .create_in(&plan.namespace, Kind::Pod, &plan.pod)
            .await;
        match made {
            Ok(_) => {
                tracing::info!(namespace = %plan.namespace, pod = %plan.pod_name, node_id = %plan.node_id, "pod created");
                self.pod_made = true;
                self.wait_for_running();
                Ok(())
            }
            Err(e) if e.kind == ApiErrorKind::AlreadyExists => self.adopt(plan, e).await,
            // The namespace is not there: openshiftpods makes none.
            Err(e) if e.kind == ApiErrorKind::NotFound => Err(DriverError::Fatal(format!(
                "pool {}: namespace {} does not exist (openshiftpods makes its pods in the \
                 existing namespace or project named by the pool): {e}",
                plan.pool, plan.namespace
            ))),
            Err(e) if waiting_for_default_service_account(&e) && Instant::now() < self.deadline => {
                tracing::debug!(namespace = %plan.namespace, "the namespace has no default service account yet");
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }

    /// The pod exists already. This node's (its labels say so): an earlier try made it, and it
    /// is used as it is; while it is still being deleted the step waits. Anyone else's is an
    /// error.
    async fn adopt(&mut self, plan: &PodPlan, exists: ApiError) -> Result<(), DriverError> {
        let pod = self
            .client
            .get_in(&plan.namespace, Kind::Pod, &plan.pod_name)
            .await?;
        let labels = string_labels(pod.pointer("/metadata/labels").and_then(Value::as_object));
        let ours = labels.get(metadata_keys::NODE_ID) == Some(&plan.node_id)
            && labels.get(metadata_keys::PROVIDER_NAME) == Some(&plan.provider);
        if !ours {
            return Err(DriverError::Fatal(format!(
                "{exists} (it is not labelled as this node's pod)"
            )));
        }
        self.pod_made = true;
        if pod.pointer("/metadata/deletionTimestamp").is_some() {
            return Err(DriverError::Transient(format!(
                "namespace {}: pod {} of an earlier attempt for this node is still being deleted",
                plan.namespace, plan.pod_name
            )));
        }
        tracing::info!(namespace = %plan.namespace, pod = %plan.pod_name, node_id = %plan.node_id, "the pod exists from an earlier attempt for this node; using it");
        self.wait_for_running();
        Ok(())
    }

    fn wait_for_running(&mut self) {
        self.deadline = Instant::now() + POD_WAIT;
        self.step = CreateStep::WaitPod;
    }

    /// Polls the pod; returns the node's instance once it runs.
    async fn wait_for_pod(&mut self, plan: &PodPlan) -> Result<Option<Instance>, DriverError> {
        let pod = match self
            .client
            .get_in(&plan.namespace, Kind::Pod, &plan.pod_name)
            .await
        {
            Ok(pod) => pod,
            Err(e) if e.kind == ApiErrorKind::NotFound => {
                return Err(DriverError::Fatal(format!(
                    "namespace {}: pod {} was deleted before it ran",
                    plan.namespace, plan.pod_name
                )));
            }
            Err(e) => return Err(e.into()),
        };
        let progress = pod_progress(
            &pod,
            &plan.namespace,
            &plan.pod_name,
            self.deadline,
            &mut self.pod_phase,
        )?;
        match progress {
            PodProgress::Running { node } => {
                let instance = self.instance(plan, node)?;
                self.step = CreateStep::Complete;
                Ok(Some(instance))
            }
            PodProgress::NotYet => Ok(None),
        }
    }

    /// What the launcher writes to the node record: Zuul reaches the pod with the launcher's
    /// own credentials.
    fn instance(&self, plan: &PodPlan, host_id: Option<String>) -> Result<Instance, DriverError> {
        let access = self.client.access();
        let token = self.client.bearer_token()?;
        let ca_crt = objects::ca_crt(access);
        let credentials = objects::credentials(
            &plan.pod_name,
            &plan.namespace,
            &access.server,
            ca_crt.as_deref(),
            access.insecure_skip_tls_verify,
            token.as_ref().map(|t| t.expose().as_str()),
        );
        Ok(Instance {
            external_id: Some(ExternalId::Id(plan.external_id())),
            // Nodepool: a pod node's interface_ip is the pod's name.
            interface_ip: Some(plan.pod_name.clone()),
            host_id,
            cloud: plan.context.clone(),
            metadata: plan.metadata(),
            resources: Some(plan.resources.clone()),
            python_path: Some(plan.python_path.clone()),
            shell_type: plan.shell_type.clone(),
            connection_type: Some("kubectl".to_string()),
            connection_credentials: Some(ConnectionCredentials(credentials)),
            // Nothing to scan: Zuul reaches the pod through the API server. Known (empty)
            // host keys make the launcher skip the nodescan; the record's `host_keys` is `[]`.
            host_keys: Some(Vec::new()),
            ..Instance::default()
        })
    }

    async fn step(&mut self, plan: &PodPlan) -> Result<Option<Instance>, DriverError> {
        match self.step {
            CreateStep::Pod => self.create_pod(plan).await.map(|()| None),
            CreateStep::WaitPod => self.wait_for_pod(plan).await,
            CreateStep::Complete => Err(DriverError::Fatal(format!(
                "namespace {}: the create of pod {} is complete already",
                plan.namespace, plan.pod_name
            ))),
        }
    }
}

#[async_trait]
impl CreateMachine for OpenShiftPodsCreateMachine {
    async fn advance(&mut self) -> Result<Option<Instance>, DriverError> {
        let plan = self.plan.clone()?;
        let step = self.step.name();
        let result = self.step(&plan).await;
        self.ride_out.apply(result, None, step, &plan.external_id())
    }

    fn state(&self) -> &str {
        self.step.name()
    }

    fn external_id(&self) -> Option<ExternalId> {
        match &self.plan {
            Ok(plan) if self.pod_made => Some(ExternalId::Id(plan.external_id())),
            _ => None,
        }
    }

    fn poll_after(&self) -> Duration {
        if self.ride_out.retrying() {
            return RETRY;
        }
        match self.step {
            CreateStep::WaitPod => POLL,
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
            DeleteStep::Delete => "deleting pod",
            DeleteStep::Wait => "waiting for pod",
            DeleteStep::Complete => "complete",
        }
    }
}

/// Where a delete points: the namespace and pod of an external id, or why it names none.
pub(crate) type PodTarget = Result<(String, String), DriverError>;

#[derive(Debug)]
pub struct OpenShiftPodsDeleteMachine {
    client: Arc<KubeClient>,
    /// The namespace and pod to delete, or why the external id names none.
    target: PodTarget,
    step: DeleteStep,
    /// The uid of the pod the delete was sent for: a new pod of the same name (a later
    /// create of this node) is not waited for.
    uid: Option<String>,
    ride_out: RideOut,
}

impl OpenShiftPodsDeleteMachine {
    pub(crate) fn new(client: Arc<KubeClient>, target: PodTarget) -> OpenShiftPodsDeleteMachine {
        OpenShiftPodsDeleteMachine {
            client,
            target,
            step: DeleteStep::Delete,
            uid: None,
            ride_out: RideOut::default(),
        }
    }

    async fn step(&mut self, namespace: &str, pod: &str) -> Result<bool, DriverError> {
        match self.step {
            DeleteStep::Delete => match self.client.delete_in(namespace, Kind::Pod, pod).await {
                Ok(deleted) => {
                    self.uid = uid(&deleted);
                    tracing::info!(namespace, pod, "pod deletion started");
                    self.step = DeleteStep::Wait;
                    Ok(false)
                }
                Err(e) if e.kind == ApiErrorKind::NotFound => {
                    self.step = DeleteStep::Complete;
                    Ok(true)
                }
                Err(e) => Err(e.into()),
            },
            DeleteStep::Wait => match self.client.get_in(namespace, Kind::Pod, pod).await {
                Ok(found) if self.uid.is_none() || uid(&found) == self.uid => Ok(false),
                Ok(_) => {
                    tracing::info!(namespace, pod, "pod deleted (a new pod has its name)");
                    self.step = DeleteStep::Complete;
                    Ok(true)
                }
                Err(e) if e.kind == ApiErrorKind::NotFound => {
                    tracing::info!(namespace, pod, "pod deleted");
                    self.step = DeleteStep::Complete;
                    Ok(true)
                }
                Err(e) => Err(e.into()),
            },
            DeleteStep::Complete => Ok(true),
        }
    }
}

fn uid(object: &Value) -> Option<String> {
    object
        .pointer("/metadata/uid")
        .and_then(Value::as_str)
        .map(str::to_string)
}

#[async_trait]
impl DeleteMachine for OpenShiftPodsDeleteMachine {
    async fn advance(&mut self) -> Result<bool, DriverError> {
        let (namespace, pod) = self.target.clone()?;
        let step = self.step.name();
        let result = self.step(&namespace, &pod).await;
        self.ride_out
            .apply(result, false, step, &objects::external_id(&namespace, &pod))
    }

    fn state(&self) -> &str {
        self.step.name()
    }

    fn poll_after(&self) -> Duration {
        if self.ride_out.retrying() {
            return RETRY;
        }
        match self.step {
            DeleteStep::Wait => POLL,
            _ => NEXT_STEP,
        }
    }
}
