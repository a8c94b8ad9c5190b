//! The provider contract: state machines, listings, quota and the image capability.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use nodepool_config::{DriverKind, Provider as ProviderConfig};
use nodepool_model::ExternalId;

use crate::error::DriverError;
use crate::instance::{Instance, Metadata, Resource};
use crate::quota::Quota;
use crate::request_format::RequestAttributes;

/// What the launcher asks a provider to create for one node.
#[derive(Debug, Clone, PartialEq)]
pub struct CreateSpec {
    /// `np<node id>`: the name given to the cloud.
    pub hostname: String,
    pub pool: String,
    /// The pool label the node is for.
    pub label: String,
    /// The upload's cloud id for diskimage labels, `None` for cloud images.
    pub image_external_id: Option<String>,
    /// The `nodepool_*` tags (and driver extras) to store on every resource made.
    pub metadata: Metadata,
    pub az: Option<String>,
    /// The node request the node is launched for, which `{request.<attr>}` templates of
    /// `dynamic-instance-properties` and `dynamic-tags` are filled from
    /// ([`crate::format_dynamic_entries`]). `None` when a node is made outside a request
    /// (tools, tests): templates that name the request are then left out.
    pub request: Option<RequestAttributes>,
}

/// A create in progress. `advance` does one short step and returns `Ok(Some(instance))` once
/// the instance is complete; the launcher calls it again until then (about once a second,
/// sooner when the machine says so via `poll_after`).
#[async_trait]
pub trait CreateMachine: Send + Debug {
    async fn advance(&mut self) -> Result<Option<Instance>, DriverError>;
    /// The machine's current step, for logs and the node record.
    fn state(&self) -> &str;
    /// The cloud's id, as soon as it is known, so a restarted launcher can delete it.
    fn external_id(&self) -> Option<ExternalId>;
    /// How long to wait before the next `advance`.
    fn poll_after(&self) -> std::time::Duration {
        std::time::Duration::from_secs(1)
    }
}

/// A delete in progress: `advance` until it returns `Ok(true)`. `NotFound` means gone.
#[async_trait]
pub trait DeleteMachine: Send + Debug {
    async fn advance(&mut self) -> Result<bool, DriverError>;
    fn state(&self) -> &str;
    fn poll_after(&self) -> std::time::Duration {
        std::time::Duration::from_secs(1)
    }
}

/// An image file the builder hands to a provider.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageUploadSpec {
    /// The provider's diskimage name.
    pub image_name: String,
    /// The name to give the image in the cloud (`image-name-format`).
    pub external_name: String,
    pub path: PathBuf,
    /// File format (`qcow2`, `raw`, `vhd`).
    pub format: String,
    /// `nodepool_*` tags plus the diskimage's `meta`.
    pub metadata: Metadata,
    pub md5: Option<String>,
    pub sha256: Option<String>,
}

/// One configured provider's cloud. Shared as `Arc<dyn Provider>`; calls may run
/// concurrently.
#[async_trait]
pub trait Provider: Send + Sync + Debug {
    fn name(&self) -> &str;

    fn create_machine(&self, spec: CreateSpec) -> Box<dyn CreateMachine>;

    fn delete_machine(&self, external_id: &ExternalId) -> Box<dyn DeleteMachine>;

    /// Every instance visible to this provider's account (for unmanaged quota).
    async fn list_instances(&self) -> Result<Vec<Instance>, DriverError>;

    /// Every resource that can leak, with its metadata.
    async fn list_resources(&self) -> Result<Vec<Resource>, DriverError>;

    async fn delete_resource(&self, resource: &Resource) -> Result<(), DriverError>;

    /// The account's limits; unlimited by default.
    async fn quota_limits(&self) -> Result<Quota, DriverError> {
        Ok(Quota::unlimited())
    }

    /// What one node of `label` in `pool` needs. An error marks the label unavailable.
    async fn quota_for_label(&self, _pool: &str, _label: &str) -> Result<Quota, DriverError> {
        Ok(Quota::one_instance())
    }

    /// Availability zones to choose from when the pool names none; empty means "no AZ".
    fn availability_zones(&self) -> Vec<String> {
        Vec::new()
    }

    /// Whether a cloud-image label's image exists.
    async fn label_ready(&self, _pool: &str, _label: &str) -> bool {
        true
    }

    /// The console output of a failed instance, when the label asks for it.
    async fn console_log(&self, _external_id: &ExternalId) -> Option<String> {
        None
    }

    /// Uploads an image and returns its cloud id. Providers that do not manage images
    /// refuse.
    async fn upload_image(&self, _upload: &ImageUploadSpec) -> Result<String, DriverError> {
        Err(DriverError::Fatal(format!(
            "provider {} does not manage images",
            self.name()
        )))
    }

    async fn delete_image(&self, _external_id: &str) -> Result<(), DriverError> {
        Err(DriverError::Fatal(format!(
            "provider {} does not manage images",
            self.name()
        )))
    }
}

/// Builds providers of one driver kind from their configuration.
pub trait Driver: Send + Sync + Debug {
    fn kind(&self) -> DriverKind;
    fn build(&self, config: &ProviderConfig) -> Result<Arc<dyn Provider>, DriverError>;
}

/// The drivers compiled into this binary.
#[derive(Debug, Default, Clone)]
pub struct DriverRegistry {
    drivers: BTreeMap<DriverKind, Arc<dyn Driver>>,
}

impl DriverRegistry {
    pub fn new() -> DriverRegistry {
        DriverRegistry::default()
    }

    pub fn register(&mut self, driver: Arc<dyn Driver>) {
        self.drivers.insert(driver.kind(), driver);
    }

    pub fn get(&self, kind: DriverKind) -> Option<&Arc<dyn Driver>> {
        self.drivers.get(&kind)
    }

    /// Builds the provider for `config`, or says which driver is missing.
    pub fn build(&self, config: &ProviderConfig) -> Result<Arc<dyn Provider>, DriverError> {
        match self.drivers.get(&config.driver) {
            Some(driver) => driver.build(config),
            None => Err(DriverError::Fatal(format!(
                "provider {}: driver {} is not built into this binary",
                config.name,
                config.driver.name()
            ))),
        }
    }
}

/// Drives a delete machine until the instance is gone (`NotFound` counts as gone), it fails,
/// or `timeout` passes, including while a step is still waiting for the cloud (a step that
/// never answers fails the delete rather than holding it). Shared by the launcher's deleter,
/// the CLI's `delete --now` and retries that clean up a partial instance.
pub async fn run_delete_machine(
    provider: &dyn Provider,
    external_id: &ExternalId,
    timeout: std::time::Duration,
) -> Result<(), DriverError> {
    let mut machine = provider.delete_machine(external_id);
    let began = tokio::time::Instant::now();
    let deadline = began + timeout;
    let timed_out = |step: &str| {
        DriverError::Transient(format!(
            "still deleting after {} s (step: {step})",
            timeout.as_secs()
        ))
    };
    loop {
        let step = match tokio::time::timeout_at(deadline, machine.advance()).await {
            Ok(step) => step,
            Err(_) => return Err(timed_out(machine.state())),
        };
        match step {
            Ok(true) | Err(DriverError::NotFound(_)) => return Ok(()),
            Ok(false) => {}
            Err(e) => return Err(e),
        }
        if began.elapsed() >= timeout {
            return Err(timed_out(machine.state()));
        }
        tokio::time::sleep(machine.poll_after()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A provider whose delete steps never answer, or answer "done" at once.
    #[derive(Debug)]
    struct DeleteOnly {
        hang: bool,
    }

    #[derive(Debug)]
    struct Deleting {
        hang: bool,
    }

    #[async_trait]
    impl DeleteMachine for Deleting {
        async fn advance(&mut self) -> Result<bool, DriverError> {
            if self.hang {
                std::future::pending::<()>().await;
            }
            Ok(true)
        }

        fn state(&self) -> &str {
            "terminating"
        }
    }

    #[async_trait]
    impl Provider for DeleteOnly {
        fn name(&self) -> &str {
            "delete-only"
        }

        fn create_machine(&self, _spec: CreateSpec) -> Box<dyn CreateMachine> {
            unimplemented!("this test provider only deletes")
        }

        fn delete_machine(&self, _external_id: &ExternalId) -> Box<dyn DeleteMachine> {
            Box::new(Deleting { hang: self.hang })
        }

        async fn list_instances(&self) -> Result<Vec<Instance>, DriverError> {
            Ok(Vec::new())
        }

        async fn list_resources(&self) -> Result<Vec<Resource>, DriverError> {
            Ok(Vec::new())
        }

        async fn delete_resource(&self, _resource: &Resource) -> Result<(), DriverError> {
            Ok(())
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_delete_step_that_never_answers_fails_at_the_timeout() {
        let external = ExternalId::Id("i-1".into());
        let timeout = std::time::Duration::from_secs(30);
        let began = tokio::time::Instant::now();
        let result = run_delete_machine(&DeleteOnly { hang: true }, &external, timeout).await;
        match result {
            Err(DriverError::Transient(message)) => {
                assert!(message.contains("terminating"), "{message}")
            }
            other => panic!("expected a transient error, got {other:?}"),
        }
        assert_eq!(began.elapsed(), timeout);
        run_delete_machine(&DeleteOnly { hang: false }, &external, timeout)
            .await
            .expect("an answering delete finishes");
    }
}
