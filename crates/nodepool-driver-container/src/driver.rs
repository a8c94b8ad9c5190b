//! `ContainerDriver`: builds container providers.

use std::sync::Arc;

use nodepool_config::{DriverKind, Provider as ProviderConfig};
use nodepool_driver::{Driver, DriverError, Provider};

use crate::provider::ContainerProvider;

/// The container driver. Stateless: everything a provider knows is on disk under its
/// state and image dirs, so a rebuilt (reloaded) provider finds its nodes and images.
#[derive(Debug, Default)]
pub struct ContainerDriver;

impl ContainerDriver {
    pub fn new() -> ContainerDriver {
        ContainerDriver
    }
}

impl Driver for ContainerDriver {
    fn kind(&self) -> DriverKind {
        DriverKind::Container
    }

    fn build(&self, config: &ProviderConfig) -> Result<Arc<dyn Provider>, DriverError> {
        Ok(Arc::new(ContainerProvider::new(config)?))
    }
}
