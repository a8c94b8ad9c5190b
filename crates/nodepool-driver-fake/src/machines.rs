//! The create and delete state machines of the fake provider.
//!
//! Create: `start` (submit the server) -> `creating server` (the server exists with its
//! metadata and the external id is known; wait for `ACTIVE`) -> `complete`.
//! Delete: `start` (submit the delete) -> `deleting server` (wait until it is gone) ->
//! `complete`.
//! `hung-creates`, `hung-deletes` and `hung-call-rate` make a `start` step that never
//! returns. An injected API error (`api-error-rate`) fails the step it hits, the status
//! polls included, as a real cloud's error would; the machine stays in its state.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use nodepool_driver::{CreateMachine, DeleteMachine, DriverError, Instance, Quota};
use nodepool_model::ExternalId;

use crate::cloud::{FakeCloud, ServerRequest, ServerStatus};
use crate::provider::instance;

/// How soon to look again when nothing is known to be pending: short, so tests are fast.
const POLL: Duration = Duration::from_millis(10);

const START: &str = "start";
const CREATING: &str = "creating server";
const DELETING: &str = "deleting server";
const COMPLETE: &str = "complete";

/// Time left until `deadline`, at least [`POLL`].
fn until(deadline: Option<Instant>) -> Duration {
    deadline
        .map(|d| d.saturating_duration_since(Instant::now()))
        .unwrap_or_default()
        .max(POLL)
}

#[derive(Debug)]
pub struct FakeCreateMachine {
    cloud: Arc<FakeCloud>,
    /// The server to ask for and the node's resources, or why the label cannot be built
    /// (reported by the first `advance`).
    plan: Result<(ServerRequest, Quota), DriverError>,
    cloud_name: String,
    region: Option<String>,
    state: &'static str,
    server_id: Option<String>,
    /// When the cloud should have finished building the server.
    ready_at: Option<Instant>,
    /// The finished instance, handed out again if `advance` is called after completion.
    instance: Option<Instance>,
}

impl FakeCreateMachine {
    pub(crate) fn new(
        cloud: Arc<FakeCloud>,
        plan: Result<(ServerRequest, Quota), DriverError>,
        cloud_name: String,
        region: Option<String>,
    ) -> FakeCreateMachine {
        FakeCreateMachine {
            cloud,
            plan,
            cloud_name,
            region,
            state: START,
            server_id: None,
            ready_at: None,
            instance: None,
        }
    }
}

#[async_trait]
impl CreateMachine for FakeCreateMachine {
    async fn advance(&mut self) -> Result<Option<Instance>, DriverError> {
        match self.state {
            START => {
                let (request, _) = self.plan.as_ref().map_err(Clone::clone)?;
                if self.cloud.create_hangs() {
                    return std::future::pending().await;
                }
                let delay = self.cloud.create_delay();
                let server = self.cloud.create_server(request)?;
                self.server_id = Some(server.id);
                self.ready_at = Some(Instant::now() + delay);
                self.state = CREATING;
                Ok(None)
            }
            CREATING => {
                let id = self.server_id.clone().unwrap_or_default();
                let Some(server) = self.cloud.get_server(&id)? else {
                    return Err(DriverError::Fatal(format!("server {id} disappeared")));
                };
                match server.status {
                    ServerStatus::Build => Ok(None),
                    ServerStatus::Error => Err(DriverError::Fatal("Server in error state".into())),
                    ServerStatus::Deleting => {
                        Err(DriverError::Fatal(format!("server {id} is being deleted")))
                    }
                    ServerStatus::Active => {
                        let resources = self.plan.as_ref().ok().map(|(_, quota)| quota.clone());
                        let instance =
                            instance(&server, &self.cloud_name, self.region.as_deref(), resources);
                        self.instance = Some(instance.clone());
                        self.state = COMPLETE;
                        Ok(Some(instance))
                    }
                }
            }
            _ => Ok(self.instance.clone()),
        }
    }

    fn state(&self) -> &str {
        self.state
    }

    fn external_id(&self) -> Option<ExternalId> {
        self.server_id.clone().map(ExternalId::Id)
    }

    fn poll_after(&self) -> Duration {
        if self.state == CREATING {
            until(self.ready_at)
        } else {
            POLL
        }
    }
}

#[derive(Debug)]
pub struct FakeDeleteMachine {
    cloud: Arc<FakeCloud>,
    /// `None` for an external id the fake cloud cannot have made (AWS-style fields).
    server_id: Option<String>,
    state: &'static str,
    /// When the cloud should have finished deleting the server.
    gone_at: Option<Instant>,
}

impl FakeDeleteMachine {
    pub(crate) fn new(cloud: Arc<FakeCloud>, server_id: Option<String>) -> FakeDeleteMachine {
        FakeDeleteMachine {
            cloud,
            server_id,
            state: START,
            gone_at: None,
        }
    }
}

#[async_trait]
impl DeleteMachine for FakeDeleteMachine {
    async fn advance(&mut self) -> Result<bool, DriverError> {
        let Some(id) = self.server_id.clone() else {
            return Err(DriverError::NotFound(
                "the fake cloud has no server with a structured external id".into(),
            ));
        };
        if self.state == START {
            if self.cloud.delete_hangs() {
                return std::future::pending().await;
            }
            let delay = self.cloud.delete_delay();
            self.cloud.delete_server(&id)?;
            self.gone_at = Some(Instant::now() + delay);
            self.state = DELETING;
        }
        if self.state == DELETING {
            if self.cloud.get_server(&id)?.is_some() {
                return Ok(false);
            }
            self.state = COMPLETE;
        }
        Ok(true)
    }

    fn state(&self) -> &str {
        self.state
    }

    fn poll_after(&self) -> Duration {
        if self.state == DELETING {
            until(self.gone_at)
        } else {
            POLL
        }
    }
}
