//! `OpenShiftPodsProvider`: the provider contract over the pools' namespaces of one
//! cluster.

use std::sync::Arc;

use async_trait::async_trait;
use nodepool_config::{
    DriverKind, KubernetesProvider as KubernetesSettings, Provider as ProviderConfig,
    ProviderSettings,
};
use nodepool_driver::{
    CreateMachine, CreateSpec, DeleteMachine, DriverError, Instance, Metadata, Provider, Quota,
    Resource, metadata_keys,
};
use nodepool_model::ExternalId;
use serde_json::Value;

use super::machines::{OpenShiftPodsCreateMachine, OpenShiftPodsDeleteMachine, PodTarget};
use super::objects;
use crate::client::{ApiErrorKind, Kind, KubeClient};
use crate::kubeconfig::{self, KubeconfigSource};
use crate::objects::{find_label, quota_need, string_labels};
use crate::provider::LEAK_KIND;

/// One configured openshiftpods provider.
#[derive(Debug)]
pub struct OpenShiftPodsProvider {
    /// The provider section: pools (namespaces) and labels.
    config: ProviderConfig,
    settings: KubernetesSettings,
    /// The cluster, as the launcher's identity; shared with the machines.
    client: Arc<KubeClient>,
}

/// One of the provider's pods, as listed.
struct ManagedPod {
    namespace: String,
    name: String,
    metadata: Metadata,
}

impl ManagedPod {
    fn external_id(&self) -> String {
        objects::external_id(&self.namespace, &self.name)
    }
}

impl OpenShiftPodsProvider {
    /// A provider for `config`, reading the kubeconfig from `source` for the provider's
    /// `context`. Makes no API call.
    pub fn new(
        config: &ProviderConfig,
        source: &KubeconfigSource,
    ) -> Result<OpenShiftPodsProvider, DriverError> {
        let settings = match (&config.driver, &config.settings) {
            (DriverKind::OpenShiftPods, ProviderSettings::Kubernetes(s)) => s.clone(),
            _ => {
                return Err(DriverError::Fatal(format!(
                    "provider {}: the openshiftpods driver needs an openshiftpods provider \
                     (this one is {})",
                    config.name,
                    config.driver.name()
                )));
            }
        };
        let fatal = |e: String| DriverError::Fatal(format!("provider {}: {e}", config.name));
        let access = kubeconfig::load(source, settings.context.as_deref()).map_err(fatal)?;
        if !objects::hands_on_a_token(&access) {
            tracing::warn!(provider = %config.name, origin = %access.origin, "the launcher's Kubernetes identity has no bearer token; openshiftpods nodes hand Zuul the launcher's token, so theirs will be null and Zuul cannot reach the pods");
        }
        let client = KubeClient::new(access).map_err(|e| fatal(e.to_string()))?;
        Ok(OpenShiftPodsProvider {
            config: config.clone(),
            settings,
            client: Arc::new(client),
        })
    }

    /// The cluster's client, for tests and tools.
    pub fn client(&self) -> &Arc<KubeClient> {
        &self.client
    }

    /// Each pool's name and label names, in configuration order.
    fn pools(&self) -> Vec<(&str, Vec<&str>)> {
        self.config
            .pools
            .iter()
            .map(|p| {
                (
                    p.name.as_str(),
                    p.labels.keys().map(String::as_str).collect(),
                )
            })
            .collect()
    }

    /// The namespace and pod an external id names.
    fn locate(&self, external_id: &str, pool_hint: Option<&str>) -> PodTarget {
        objects::locate(external_id, &self.pools(), pool_hint).ok_or_else(|| {
            DriverError::NotFound(format!(
                "provider {}: {external_id} is in none of its pools' namespaces \
                 (was its pool removed?); a pod of that name is left alone",
                self.config.name
            ))
        })
    }

    /// The pods this provider manages in its pools' namespaces: labelled with its name, named
    /// `<label>-<number>` for one of its labels (Nodepool's rule), with their labels. A pool
    /// whose namespace does not exist has none.
    async fn managed_pods(&self) -> Result<Vec<ManagedPod>, DriverError> {
        let all_labels: Vec<&str> = self
            .config
            .pools
            .iter()
            .flat_map(|p| p.labels.keys().map(String::as_str))
            .collect();
        let mut pods = Vec::new();
        for pool in &self.config.pools {
            let items = match self
                .client
                .list_selected_in(&pool.name, Kind::Pod, metadata_keys::PROVIDER_NAME)
                .await
            {
                Ok(items) => items,
                Err(e) if e.kind == ApiErrorKind::NotFound => {
                    tracing::debug!(provider = %self.config.name, namespace = %pool.name, "the pool's namespace does not exist; no pods to list");
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            for pod in &items {
                let Some(name) = pod.pointer("/metadata/name").and_then(Value::as_str) else {
                    continue;
                };
                let mut metadata =
                    string_labels(pod.pointer("/metadata/labels").and_then(Value::as_object));
                let ours = metadata
                    .get(metadata_keys::PROVIDER_NAME)
                    .map(String::as_str)
                    == Some(self.config.name.as_str());
                let Some(node_id) = objects::managed_node_id(name, all_labels.iter().copied())
                else {
                    continue;
                };
                if !ours {
                    continue;
                }
                metadata
                    .entry(metadata_keys::NODE_ID.to_string())
                    .or_insert_with(|| node_id.to_string());
                pods.push(ManagedPod {
                    namespace: pool.name.clone(),
                    name: name.to_string(),
                    metadata,
                });
            }
        }
        Ok(pods)
    }
}

#[async_trait]
impl Provider for OpenShiftPodsProvider {
    fn name(&self) -> &str {
        &self.config.name
    }

    fn create_machine(&self, spec: CreateSpec) -> Box<dyn CreateMachine> {
        let plan = objects::plan(&self.config, self.settings.context.as_deref(), &spec);
        Box::new(OpenShiftPodsCreateMachine::new(self.client.clone(), plan))
    }

    fn delete_machine(&self, external_id: &ExternalId) -> Box<dyn DeleteMachine> {
        let target = match external_id {
            ExternalId::Id(id) if !id.is_empty() => self.locate(id, None),
            other => Err(DriverError::Fatal(format!(
                "provider {}: external id {other:?} is not `<pool>-<pod>`",
                self.config.name
            ))),
        };
        if let Err(DriverError::NotFound(message)) = &target {
            tracing::warn!(provider = %self.config.name, "{message}");
        }
        Box::new(OpenShiftPodsDeleteMachine::new(self.client.clone(), target))
    }

    /// The provider's pods. They carry no `resources`: Nodepool counts nothing of the
    /// cluster as unmanaged quota.
    async fn list_instances(&self) -> Result<Vec<Instance>, DriverError> {
        Ok(self
            .managed_pods()
            .await?
            .into_iter()
            .map(|pod| Instance {
                external_id: Some(ExternalId::Id(pod.external_id())),
                cloud: self.settings.context.clone(),
                metadata: pod.metadata,
                ..Instance::default()
            })
            .collect())
    }

    /// The provider's pods, as leak candidates (`leaked.nodes`), named by their external id.
    async fn list_resources(&self) -> Result<Vec<Resource>, DriverError> {
        Ok(self
            .managed_pods()
            .await?
            .into_iter()
            .map(|pod| Resource {
                kind: LEAK_KIND.to_string(),
                id: pod.external_id(),
                metadata: pod.metadata,
            })
            .collect())
    }

    /// Starts deleting a leaked pod.
    async fn delete_resource(&self, resource: &Resource) -> Result<(), DriverError> {
        if resource.kind != LEAK_KIND {
            return Err(DriverError::Fatal(format!(
                "provider {}: no {} resources to delete",
                self.config.name, resource.kind
            )));
        }
        let pool_hint = resource
            .metadata
            .get(metadata_keys::POOL_NAME)
            .map(String::as_str);
        let (namespace, pod) = self.locate(&resource.id, pool_hint)?;
        match self.client.delete_in(&namespace, Kind::Pod, &pod).await {
            Ok(_) => Ok(()),
            Err(e) if e.kind == ApiErrorKind::NotFound => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// As Nodepool: one instance, the label's cpu as `cores`, memory as `ram`, storage,
    /// GPU and extra resources. The launcher applies the pool's `max-*` limits; the
    /// cluster's own limits are not read (unlimited).
    async fn quota_for_label(&self, pool: &str, label: &str) -> Result<Quota, DriverError> {
        find_label(&self.config, pool, label).map(quota_need)
    }
}
