//! `OpenStackDriver`: builds OpenStack providers from their configuration.

use std::sync::Arc;

use nodepool_config::{DriverKind, Provider as ProviderConfig};
use nodepool_driver::{Driver, DriverError, Provider};

use crate::provider::{OpenStackProvider, ProviderOptions};

/// The openstack driver. Stateless: a reload builds new providers, which find their servers
/// in the cloud.
#[derive(Debug, Default)]
pub struct OpenStackDriver {
    options: ProviderOptions,
}

impl OpenStackDriver {
    pub fn new() -> OpenStackDriver {
        OpenStackDriver::default()
    }

    /// A driver whose providers use `options` (a clouds.yaml path, a page size).
    pub fn with_options(options: ProviderOptions) -> OpenStackDriver {
        OpenStackDriver { options }
    }
}

impl Driver for OpenStackDriver {
    fn kind(&self) -> DriverKind {
        DriverKind::OpenStack
    }

    fn build(&self, config: &ProviderConfig) -> Result<Arc<dyn Provider>, DriverError> {
        Ok(Arc::new(OpenStackProvider::new(config, &self.options)?))
    }
}
