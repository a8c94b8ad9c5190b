//! `KubernetesDriver`: builds kubernetes providers from their configuration.

use std::sync::Arc;

use nodepool_config::{DriverKind, Provider as ProviderConfig};
use nodepool_driver::{Driver, DriverError, Provider};

use crate::kubeconfig::KubeconfigSource;
use crate::provider::KubernetesProvider;

/// The kubernetes driver. Stateless: a reload builds new providers (reading the kubeconfig
/// again), which find their namespaces in the cluster.
#[derive(Debug, Default)]
pub struct KubernetesDriver {
    kubeconfig: KubeconfigSource,
}

impl KubernetesDriver {
    /// A driver reading `KUBECONFIG` (or `~/.kube/config`, or the in-cluster configuration).
    pub fn new() -> KubernetesDriver {
        KubernetesDriver::default()
    }

    /// A driver whose providers read their contexts from these kubeconfig files.
    pub fn with_kubeconfig(source: KubeconfigSource) -> KubernetesDriver {
        KubernetesDriver { kubeconfig: source }
    }

    /// The concrete provider (tests reach its client).
    pub fn build_kubernetes(
        &self,
        config: &ProviderConfig,
    ) -> Result<KubernetesProvider, DriverError> {
        KubernetesProvider::new(config, &self.kubeconfig)
    }
}

impl Driver for KubernetesDriver {
    fn kind(&self) -> DriverKind {
        DriverKind::Kubernetes
    }

    /// Builds the provider: reads the kubeconfig, makes no API call.
    fn build(&self, config: &ProviderConfig) -> Result<Arc<dyn Provider>, DriverError> {
        Ok(Arc::new(self.build_kubernetes(config)?))
    }
}
