//! The create and delete state machines. Each `advance` makes at most one or two AWS calls
//! and returns; the instance id becomes the external id the moment `RunInstances` (or
//! `CreateFleet`) answers, so a launcher killed later leaves a node record a restart can
//! delete.
//!
//! Create: `start` -> (dedicated host: `allocating host` -> `waiting for host`) ->
//! `creating instance` (submit) -> `waiting for instance` (until `running`) -> `complete`.
//!
//! No retry multiplies instances. Each create machine sends one client token with every
//! `RunInstances`/`CreateFleet` (the SDK's own retries resend the same request), so EC2
//! answers a repeated call with the instance it made. An earlier attempt for the same node
//! whose answer was lost (or given up at launch-timeout) left an instance tagged with the
//! node that the launcher never learnt about: `start` terminates such instances before
//! this attempt creates its own.
//! Delete: `start` -> `terminating instance` -> `waiting for termination` -> (host:
//! `releasing host` -> `waiting for host release`) -> `complete`.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use nodepool_config::AwsInstance;
use nodepool_driver::{CreateMachine, DeleteMachine, DriverError, Instance, metadata_keys};
use nodepool_model::ExternalId;

use crate::cloud::AwsCloud;
use crate::instance::{InstanceFacts, external_id, instance};
use crate::plan::{LaunchPlan, launch_template_name};
use crate::provider::node_quota;

const START: &str = "start";
const ALLOCATING_HOST: &str = "allocating host";
const WAITING_FOR_HOST: &str = "waiting for host";
const CREATING: &str = "creating instance";
const WAITING: &str = "waiting for instance";
const COMPLETE: &str = "complete";
const TERMINATING: &str = "terminating instance";
const WAITING_TERMINATION: &str = "waiting for termination";
const RELEASING_HOST: &str = "releasing host";
const WAITING_HOST_RELEASE: &str = "waiting for host release";

/// Between two steps that need no waiting.
const NEXT_STEP: Duration = Duration::from_millis(10);
/// While AWS is working (an instance boots in tens of seconds).
const POLL: Duration = Duration::from_secs(1);

#[derive(Debug)]
pub struct AwsCreateMachine {
    cloud: Arc<AwsCloud>,
    provider_name: String,
    /// What to create, or why the label cannot be created (reported by `advance`).
    plan: Result<LaunchPlan, DriverError>,
    state: &'static str,
    host_id: Option<String>,
    instance_id: Option<String>,
    /// Sent with every create call of this machine (and only this one): at most 64 ASCII
    /// characters, unique per attempt.
    client_token: String,
    /// The finished instance, handed out again if `advance` is called after completion.
    done: Option<Instance>,
}

impl AwsCreateMachine {
    pub(crate) fn new(
        cloud: Arc<AwsCloud>,
        provider_name: String,
        plan: Result<LaunchPlan, DriverError>,
    ) -> AwsCreateMachine {
        AwsCreateMachine {
            cloud,
            provider_name,
            plan,
            state: START,
            host_id: None,
            instance_id: None,
            client_token: nodepool_model::ids::random_uuid_hex(),
            done: None,
        }
    }

    /// Terminates the live instances tagged with this machine's node: what an earlier
    /// launch attempt made without learning its id.
    async fn terminate_earlier_attempts(&self, plan: &LaunchPlan) -> Result<(), DriverError> {
        let Some(node_id) = plan.tags.get(metadata_keys::NODE_ID) else {
            return Ok(());
        };
        let earlier = self
            .cloud
            .live_instances_of_node(&self.provider_name, node_id)
            .await?;
        for id in earlier {
            tracing::warn!(hostname = %plan.hostname, instance_id = %id, "terminating an instance an earlier launch attempt of this node made");
            match self.cloud.terminate_instance(&id).await {
                Ok(()) | Err(DriverError::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    async fn submit(&mut self, plan: &LaunchPlan) -> Result<String, DriverError> {
        let image_id = self.cloud.resolve_image(&plan.image).await?;
        match &plan.instance {
            AwsInstance::Type(instance_type) => {
                self.cloud
                    .run_instance(
                        plan,
                        &image_id,
                        instance_type,
                        self.host_id.as_deref(),
                        &self.client_token,
                    )
                    .await
            }
            AwsInstance::Fleet {
                instance_types,
                allocation_strategy,
            } => {
                let template = launch_template_name(plan);
                self.cloud
                    .ensure_launch_template(&template, plan, &self.provider_name)
                    .await?;
                self.cloud
                    .create_fleet_instance(
                        plan,
                        &image_id,
                        &template,
                        instance_types,
                        allocation_strategy,
                        &self.client_token,
                    )
                    .await
            }
        }
    }
}

#[async_trait]
impl CreateMachine for AwsCreateMachine {
    async fn advance(&mut self) -> Result<Option<Instance>, DriverError> {
        let plan = self.plan.clone()?;
        match self.state {
            START => {
                self.terminate_earlier_attempts(&plan).await?;
                self.state = if plan.dedicated_host {
                    ALLOCATING_HOST
                } else {
                    CREATING
                };
                Ok(None)
            }
            ALLOCATING_HOST => {
                let instance_type = plan.instance_type().ok_or_else(|| {
                    DriverError::Fatal("a dedicated host needs one instance-type".into())
                })?;
                let host = self.cloud.allocate_host(&plan, instance_type).await?;
                tracing::debug!(hostname = %plan.hostname, host_id = %host, "allocated dedicated host");
                self.host_id = Some(host);
                self.state = WAITING_FOR_HOST;
                Ok(None)
            }
            WAITING_FOR_HOST => {
                let id = self.host_id.clone().unwrap_or_default();
                let host = self.cloud.describe_host(&id).await?;
                let state = host
                    .as_ref()
                    .and_then(|h| h.state())
                    .map(|s| s.as_str().to_ascii_lowercase())
                    .unwrap_or_default();
                match state.as_str() {
                    "available" => self.state = CREATING,
                    "permanent-failure" | "released" | "released-permanent-failure" => {
                        return Err(DriverError::Fatal(format!("Host in {state} state")));
                    }
                    _ => {}
                }
                Ok(None)
            }
            CREATING => {
                let id = self.submit(&plan).await?;
                tracing::debug!(hostname = %plan.hostname, instance_id = %id, "created instance");
                self.instance_id = Some(id);
                self.state = WAITING;
                Ok(None)
            }
            WAITING => {
                let id = self.instance_id.clone().unwrap_or_default();
                // Not found yet is normal just after RunInstances (eventual consistency);
                // the launcher's launch-timeout bounds the wait.
                let Some(described) = self.cloud.listed_instance(&id).await? else {
                    return Ok(None);
                };
                let state = described
                    .state()
                    .and_then(|s| s.name())
                    .map(|n| n.as_str().to_ascii_lowercase())
                    .unwrap_or_default();
                match state.as_str() {
                    "running" => {
                        let instance_type = described
                            .instance_type()
                            .map(|t| t.as_str().to_string())
                            .or_else(|| plan.instance_type().map(str::to_string));
                        let resources = node_quota(&self.cloud, instance_type.as_deref(), &plan)
                            .await
                            .ok();
                        let done = instance(
                            &described,
                            InstanceFacts {
                                region: &self.cloud.connection.region,
                                host_id: self.host_id.as_deref(),
                                resources,
                                fleet_and_spot: Some((
                                    plan.uses_fleet(),
                                    plan.market == crate::quota::Market::Spot,
                                )),
                            },
                        );
                        self.done = Some(done.clone());
                        self.state = COMPLETE;
                        Ok(Some(done))
                    }
                    "terminated" | "shutting-down" => Err(DriverError::Fatal(format!(
                        "Instance {id} in {state} state"
                    ))),
                    _ => Ok(None),
                }
            }
            _ => Ok(self.done.clone()),
        }
    }

    fn state(&self) -> &str {
        self.state
    }

    fn external_id(&self) -> Option<ExternalId> {
        match (&self.instance_id, &self.host_id) {
            (Some(instance), host) => Some(external_id(instance, host.as_deref())),
            (None, Some(host)) => {
                let mut fields = serde_json::Map::new();
                fields.insert("host".into(), serde_json::Value::String(host.clone()));
                Some(ExternalId::Fields(fields))
            }
            (None, None) => None,
        }
    }

    fn poll_after(&self) -> Duration {
        match self.state {
            WAITING | WAITING_FOR_HOST => POLL,
            _ => NEXT_STEP,
        }
    }
}

#[derive(Debug)]
pub struct AwsDeleteMachine {
    cloud: Arc<AwsCloud>,
    instance_id: Option<String>,
    host_id: Option<String>,
    state: &'static str,
}

impl AwsDeleteMachine {
    pub(crate) fn new(
        cloud: Arc<AwsCloud>,
        instance_id: Option<String>,
        host_id: Option<String>,
    ) -> AwsDeleteMachine {
        AwsDeleteMachine {
            cloud,
            instance_id,
            host_id,
            state: START,
        }
    }

    fn after_instance(&self) -> &'static str {
        if self.host_id.is_some() {
            RELEASING_HOST
        } else {
            COMPLETE
        }
    }
}

#[async_trait]
impl DeleteMachine for AwsDeleteMachine {
    async fn advance(&mut self) -> Result<bool, DriverError> {
        match self.state {
            START => {
                self.state = if self.instance_id.is_some() {
                    TERMINATING
                } else if self.host_id.is_some() {
                    RELEASING_HOST
                } else {
                    COMPLETE
                };
            }
            TERMINATING => {
                let id = self.instance_id.clone().unwrap_or_default();
                match self.cloud.terminate_instance(&id).await {
                    Ok(()) => self.state = WAITING_TERMINATION,
                    // Gone already: nothing to wait for.
                    Err(DriverError::NotFound(message)) => {
                        if self.host_id.is_none() {
                            return Err(DriverError::NotFound(message));
                        }
                        self.state = RELEASING_HOST;
                    }
                    Err(e) => return Err(e),
                }
            }
            WAITING_TERMINATION => {
                let id = self.instance_id.clone().unwrap_or_default();
                let gone = match self.cloud.listed_instance(&id).await? {
                    None => true,
                    Some(i) => i
                        .state()
                        .and_then(|s| s.name())
                        .is_some_and(|n| n.as_str().eq_ignore_ascii_case("terminated")),
                };
                if gone {
                    self.state = self.after_instance();
                }
            }
            RELEASING_HOST => {
                let id = self.host_id.clone().unwrap_or_default();
                match self.cloud.release_host(&id).await {
                    Ok(()) | Err(DriverError::NotFound(_)) => self.state = WAITING_HOST_RELEASE,
                    Err(e) => return Err(e),
                }
            }
            WAITING_HOST_RELEASE => {
                let id = self.host_id.clone().unwrap_or_default();
                let released = match self.cloud.describe_host(&id).await? {
                    None => true,
                    Some(h) => h.state().is_some_and(|s| {
                        let s = s.as_str().to_ascii_lowercase();
                        s == "released" || s == "released-permanent-failure"
                    }),
                };
                if released {
                    self.state = COMPLETE;
                }
            }
            _ => {}
        }
        Ok(self.state == COMPLETE)
    }

    fn state(&self) -> &str {
        self.state
    }

    fn poll_after(&self) -> Duration {
        match self.state {
            WAITING_TERMINATION | WAITING_HOST_RELEASE => POLL,
            _ => NEXT_STEP,
        }
    }
}
