//! `KubernetesProvider`: the provider contract over one cluster.

use std::sync::Arc;

use async_trait::async_trait;
use nodepool_config::{
    KubernetesProvider as KubernetesSettings, Provider as ProviderConfig, ProviderSettings,
};
use nodepool_driver::{
    CreateMachine, CreateSpec, DeleteMachine, DriverError, Instance, Metadata, Provider, Quota,
    Resource, metadata_keys,
};
use nodepool_model::ExternalId;
use serde_json::Value;

use crate::client::{ApiErrorKind, KubeClient};
use crate::kubeconfig::{self, KubeconfigSource};
use crate::machines::{KubernetesCreateMachine, KubernetesDeleteMachine};
use crate::objects;

/// The kind of resource leak cleanup reports: a node's namespace. Nodepool counts these as
/// `nodepool.provider.<p>.leaked.nodes`, which the launcher derives from this word.
pub const LEAK_KIND: &str = "node";

/// One configured kubernetes provider.
#[derive(Debug)]
pub struct KubernetesProvider {
    /// The provider section: pools and labels.
    config: ProviderConfig,
    settings: KubernetesSettings,
    /// The cluster, shared with the machines.
    client: Arc<KubeClient>,
}

fn settings(config: &ProviderConfig) -> Result<&KubernetesSettings, DriverError> {
    match &config.settings {
        ProviderSettings::Kubernetes(s) => Ok(s),
        _ => Err(DriverError::Fatal(format!(
            "provider {}: the kubernetes driver needs kubernetes provider settings",
            config.name
        ))),
    }
}

impl KubernetesProvider {
    /// A provider for `config`, reading the kubeconfig from `source` for the provider's
    /// `context`. Makes no API call.
    pub fn new(
        config: &ProviderConfig,
        source: &KubeconfigSource,
    ) -> Result<KubernetesProvider, DriverError> {
        let settings = settings(config)?.clone();
        let access = kubeconfig::load(source, settings.context.as_deref())
            .map_err(|e| DriverError::Fatal(format!("provider {}: {e}", config.name)))?;
        let client = KubeClient::new(access)
            .map_err(|e| DriverError::Fatal(format!("provider {}: {e}", config.name)))?;
        Ok(KubernetesProvider {
            config: config.clone(),
            settings,
            client: Arc::new(client),
        })
    }

    /// The cluster's client, for tests and tools.
    pub fn client(&self) -> &Arc<KubeClient> {
        &self.client
    }

    /// The namespaces this provider manages: labelled with its name, named
    /// `<pool>-<number>` for one of its pools (Nodepool's rule), with their labels.
    async fn managed_namespaces(&self) -> Result<Vec<(String, Metadata)>, DriverError> {
        let items = self
            .client
            .list_namespaces(metadata_keys::PROVIDER_NAME)
            .await?;
        let pools = || self.config.pools.iter().map(|p| p.name.as_str());
        Ok(items
            .iter()
            .filter_map(|namespace| {
                // Being deleted already: neither a leak to delete again nor quota in use.
                if namespace.pointer("/metadata/deletionTimestamp").is_some() {
                    return None;
                }
                let name = namespace.pointer("/metadata/name")?.as_str()?;
                let labels = objects::string_labels(
                    namespace
                        .pointer("/metadata/labels")
                        .and_then(Value::as_object),
                );
                let ours = labels.get(metadata_keys::PROVIDER_NAME).map(String::as_str)
                    == Some(self.config.name.as_str());
                (ours && objects::managed_node_id(name, pools()).is_some())
                    .then(|| (name.to_string(), labels))
            })
            .collect())
    }
}

#[async_trait]
impl Provider for KubernetesProvider {
    fn name(&self) -> &str {
        &self.config.name
    }

    fn create_machine(&self, spec: CreateSpec) -> Box<dyn CreateMachine> {
        let plan = objects::plan(&self.config, self.settings.context.as_deref(), &spec);
        Box::new(KubernetesCreateMachine::new(self.client.clone(), plan))
    }

    fn delete_machine(&self, external_id: &ExternalId) -> Box<dyn DeleteMachine> {
        Box::new(KubernetesDeleteMachine::new(
            self.client.clone(),
            external_id,
        ))
    }

    /// The provider's namespaces. They carry no `resources`: Nodepool counts nothing of the
    /// cluster as unmanaged quota.
    async fn list_instances(&self) -> Result<Vec<Instance>, DriverError> {
        Ok(self
            .managed_namespaces()
            .await?
            .into_iter()
            .map(|(name, metadata)| Instance {
                external_id: Some(ExternalId::Id(name)),
                cloud: self.settings.context.clone(),
                metadata,
                ..Instance::default()
            })
            .collect())
    }

    async fn list_resources(&self) -> Result<Vec<Resource>, DriverError> {
        Ok(self
            .managed_namespaces()
            .await?
            .into_iter()
            .map(|(id, metadata)| Resource {
                kind: LEAK_KIND.to_string(),
                id,
                metadata,
            })
            .collect())
    }

    /// Starts deleting a leaked namespace (the namespace controller finishes it).
    async fn delete_resource(&self, resource: &Resource) -> Result<(), DriverError> {
        if resource.kind != LEAK_KIND {
            return Err(DriverError::Fatal(format!(
                "provider {}: no {} resources to delete",
                self.config.name, resource.kind
            )));
        }
        match self.client.delete_namespace(&resource.id).await {
            Ok(_) => Ok(()),
            Err(e) if e.kind == ApiErrorKind::NotFound => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// As Nodepool: one instance, the label's cpu as `cores`, memory as `ram`, storage,
    /// GPU and extra resources. The launcher applies the pool's `max-*` limits; the
    /// cluster's own limits are not read (unlimited).
    async fn quota_for_label(&self, pool: &str, label: &str) -> Result<Quota, DriverError> {
        objects::find_label(&self.config, pool, label).map(objects::quota_need)
    }
}
