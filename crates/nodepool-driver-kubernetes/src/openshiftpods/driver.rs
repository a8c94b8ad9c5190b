//! `OpenShiftPodsDriver`: builds openshiftpods providers from their configuration.

use std::sync::Arc;

use nodepool_config::{DriverKind, Provider as ProviderConfig};
use nodepool_driver::{Driver, DriverError, Provider};

use super::provider::OpenShiftPodsProvider;
use crate::kubeconfig::KubeconfigSource;

/// The openshiftpods driver. Stateless: a reload builds new providers (reading the
/// kubeconfig again), which find their pods in the pools' namespaces.
#[derive(Debug, Default)]
pub struct OpenShiftPodsDriver {
    kubeconfig: KubeconfigSource,
}

impl OpenShiftPodsDriver {
    /// A driver reading `KUBECONFIG` (or `~/.kube/config`, or the in-cluster configuration).
    pub fn new() -> OpenShiftPodsDriver {
        OpenShiftPodsDriver::default()
    }

    /// A driver whose providers read their contexts from these kubeconfig files.
    pub fn with_kubeconfig(source: KubeconfigSource) -> OpenShiftPodsDriver {
        OpenShiftPodsDriver { kubeconfig: source }
    }

    /// The concrete provider (tests reach its client).
    pub fn build_openshiftpods(
        &self,
        config: &ProviderConfig,
    ) -> Result<OpenShiftPodsProvider, DriverError> {
        OpenShiftPodsProvider::new(config, &self.kubeconfig)
    }
}

impl Driver for OpenShiftPodsDriver {
    fn kind(&self) -> DriverKind {
        DriverKind::OpenShiftPods
    }

    /// Builds the provider: reads the kubeconfig, makes no API call.
    fn build(&self, config: &ProviderConfig) -> Result<Arc<dyn Provider>, DriverError> {
        Ok(Arc::new(self.build_openshiftpods(config)?))
    }
}
