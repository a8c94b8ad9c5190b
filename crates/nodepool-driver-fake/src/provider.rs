//! `FakeProvider`: the provider contract over one [`FakeCloud`].

use std::sync::Arc;

use async_trait::async_trait;
use nodepool_config::{
    CloudImageSource, LabelImage, LabelSettings, OpenStackLabel, PoolLabel,
    Provider as ProviderConfig, ProviderSettings,
};
use nodepool_driver::{
    CreateMachine, CreateSpec, DeleteMachine, DriverError, ImageUploadSpec, Instance, Metadata,
    Provider, Quota, Resource,
};
use nodepool_model::ExternalId;
use serde_json::Value;

use crate::cloud::{FAKE_IMAGE_NAME, FakeCloud, FakeServer, ServerRequest, select_flavor};
use crate::machines::{FakeCreateMachine, FakeDeleteMachine};

/// One configured fake provider.
#[derive(Debug)]
pub struct FakeProvider {
    /// The provider section, for pools, labels and cloud images.
    config: ProviderConfig,
    /// The `cloud` setting, reported on every instance.
    cloud_name: String,
    /// The `region-name` setting, reported on every instance.
    region: Option<String>,
    /// The cloud; it outlives this provider across reloads.
    cloud: Arc<FakeCloud>,
}

impl FakeProvider {
    /// A provider for `config` (an OpenStack-schema provider) talking to `cloud`.
    pub fn new(
        config: &ProviderConfig,
        cloud: Arc<FakeCloud>,
    ) -> Result<FakeProvider, DriverError> {
        let ProviderSettings::OpenStack(settings) = &config.settings else {
            return Err(DriverError::Fatal(format!(
                "provider {}: the fake driver needs OpenStack provider settings",
                config.name
            )));
        };
        Ok(FakeProvider {
            cloud_name: settings.cloud.clone(),
            region: settings.region_name.clone(),
            config: config.clone(),
            cloud,
        })
    }

    pub fn cloud(&self) -> &Arc<FakeCloud> {
        &self.cloud
    }

    fn label(&self, pool: &str, label: &str) -> Result<(&PoolLabel, &OpenStackLabel), DriverError> {
        let pool_config = self.config.pool(pool).ok_or_else(|| {
            DriverError::Fatal(format!("provider {} has no pool {pool}", self.config.name))
        })?;
        let label_config = pool_config.labels.get(label).ok_or_else(|| {
            DriverError::Fatal(format!(
                "pool {pool} of provider {} has no label {label}",
                self.config.name
            ))
        })?;
        match &label_config.settings {
            LabelSettings::OpenStack(settings) => Ok((label_config, settings)),
            other => Err(DriverError::Fatal(format!(
                "label {label}: not an OpenStack label: {other:?}"
            ))),
        }
    }

    /// The flavor a label's servers get and what one of them needs of the quota.
    fn flavor_and_quota(&self, settings: &OpenStackLabel) -> Result<(String, Quota), DriverError> {
        let flavors = self.cloud.flavors();
        let flavor = select_flavor(&flavors, settings.flavor_name.as_deref(), settings.min_ram)
            .ok_or_else(|| match (settings.min_ram, &settings.flavor_name) {
                (Some(min_ram), _) if min_ram > 0 => {
                    DriverError::Fatal(format!("Unable to find flavor with min ram: {min_ram}"))
                }
                (_, name) => DriverError::Fatal(format!(
                    "Unable to find flavor: {}",
                    name.as_deref().unwrap_or("(none)")
                )),
            })?;
        let mut quota = Quota::one_instance()
            .with("cores", flavor.vcpus as f64)
            .with("ram", flavor.ram as f64);
        if settings.boot_from_volume {
            quota.set("volumes", 1.0);
            quota.set("volume-gb", settings.volume_size as f64);
        }
        Ok((flavor.name.clone(), quota))
    }

    /// What the cloud is asked for `spec`, and the node's resources.
    fn server_request(&self, spec: &CreateSpec) -> Result<(ServerRequest, Quota), DriverError> {
        let (label, settings) = self.label(&spec.pool, &spec.label)?;
        let (flavor, quota) = self.flavor_and_quota(settings)?;
        let image_name = match &label.image {
            LabelImage::Diskimage(name) | LabelImage::CloudImage(name) => name.as_str(),
            LabelImage::None => "",
        };
        // As Nodepool: ansible-style groups, then the label's instance properties, then the
        // nodepool tags.
        let mut metadata = Metadata::new();
        metadata.insert(
            "groups".into(),
            [self.config.name.as_str(), image_name, label.name.as_str()].join(","),
        );
        for (key, value) in &settings.instance_properties {
            let text = match value {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            metadata.insert(key.clone(), text);
        }
        metadata.extend(spec.metadata.clone());
        Ok((
            ServerRequest {
                name: spec.hostname.clone(),
                flavor,
                az: spec.az.clone(),
                networks: settings.networks.clone(),
                metadata,
            },
            quota,
        ))
    }

    pub(crate) fn instance(&self, server: &FakeServer, resources: Option<Quota>) -> Instance {
        instance(server, &self.cloud_name, self.region.as_deref(), resources)
    }
}

/// The instance a server is, as the launcher sees it.
pub(crate) fn instance(
    server: &FakeServer,
    cloud_name: &str,
    region: Option<&str>,
    resources: Option<Quota>,
) -> Instance {
    let public_ipv4 = Some(server.public_ipv4.clone()).filter(|ip| !ip.is_empty());
    Instance {
        external_id: Some(ExternalId::Id(server.id.clone())),
        interface_ip: Some(server.interface_ip.clone()),
        // Nodepool reports the public address as the private one when there is none.
        private_ipv4: Some(server.private_ipv4.clone())
            .filter(|ip| !ip.is_empty())
            .or_else(|| public_ipv4.clone()),
        public_ipv4: Some(server.public_ipv4.clone()),
        public_ipv6: Some(server.public_ipv6.clone()),
        private_ipv6: None,
        cloud: Some(cloud_name.to_string()),
        region: region.map(str::to_string),
        az: server.az.clone(),
        host_id: Some(server.host_id.clone()),
        metadata: server.metadata.clone(),
        resources: Some(resources.unwrap_or_else(|| crate::cloud::server_quota(&server.flavor))),
        ..Instance::default()
    }
}

fn external_id_text(external_id: &ExternalId) -> Option<&str> {
    match external_id {
        ExternalId::Id(id) => Some(id),
        ExternalId::Fields(_) => None,
    }
}

#[async_trait]
impl Provider for FakeProvider {
    fn name(&self) -> &str {
        &self.config.name
    }

    fn create_machine(&self, spec: CreateSpec) -> Box<dyn CreateMachine> {
        let plan = self.server_request(&spec);
        Box::new(FakeCreateMachine::new(
            self.cloud.clone(),
            plan,
            self.cloud_name.clone(),
            self.region.clone(),
        ))
    }

    fn delete_machine(&self, external_id: &ExternalId) -> Box<dyn DeleteMachine> {
        Box::new(FakeDeleteMachine::new(
            self.cloud.clone(),
            external_id_text(external_id).map(str::to_string),
        ))
    }

    /// A few lines naming the server, as a cloud's console would show its boot.
    async fn console_log(&self, external_id: &ExternalId) -> Option<String> {
        if self.cloud.console_log_hangs() {
            std::future::pending::<()>().await;
        }
        let server = self
            .cloud
            .get_server(external_id_text(external_id)?)
            .ok()
            .flatten()?;
        Some(format!(
            "fake console of {} ({})\nstatus: {:?}\n",
            server.name, server.id, server.status
        ))
    }

    async fn list_instances(&self) -> Result<Vec<Instance>, DriverError> {
        Ok(self
            .cloud
            .list_servers()?
            .iter()
            .map(|server| self.instance(server, None))
            .collect())
    }

    async fn list_resources(&self) -> Result<Vec<Resource>, DriverError> {
        let servers = self.cloud.list_servers()?;
        let instances = servers.into_iter().map(|server| Resource {
            kind: "instance".into(),
            id: server.id,
            metadata: server.metadata,
        });
        let images = self.cloud.images().into_iter().map(|image| Resource {
            kind: "image".into(),
            id: image.id,
            metadata: image.metadata,
        });
        Ok(instances.chain(images).collect())
    }

    async fn delete_resource(&self, resource: &Resource) -> Result<(), DriverError> {
        match resource.kind.as_str() {
            "instance" => self.cloud.delete_server(&resource.id),
            "image" => self.cloud.delete_image(&resource.id),
            other => Err(DriverError::Fatal(format!(
                "the fake cloud has no {other} resources"
            ))),
        }
    }

    async fn quota_limits(&self) -> Result<Quota, DriverError> {
        Ok(self.cloud.quota_limits())
    }

    async fn quota_for_label(&self, pool: &str, label: &str) -> Result<Quota, DriverError> {
        let (_, settings) = self.label(pool, label)?;
        Ok(self.flavor_and_quota(settings)?.1)
    }

    fn availability_zones(&self) -> Vec<String> {
        self.cloud.availability_zones()
    }

    async fn label_ready(&self, pool: &str, label: &str) -> bool {
        let Ok((label, _)) = self.label(pool, label) else {
            return false;
        };
        let LabelImage::CloudImage(cloud_image) = &label.image else {
            // Diskimage labels are ready when an upload is; the launcher checks that.
            return true;
        };
        let Some(cloud_image) = self.config.cloud_images.get(cloud_image) else {
            return false;
        };
        match &cloud_image.source {
            CloudImageSource::Id(_) => true,
            CloudImageSource::Name(name) => {
                name == FAKE_IMAGE_NAME || self.cloud.images().iter().any(|i| &i.name == name)
            }
            CloudImageSource::Filters(_) | CloudImageSource::Path(_) => false,
        }
    }

    async fn upload_image(&self, upload: &ImageUploadSpec) -> Result<String, DriverError> {
        let image = self
            .cloud
            .upload_image(&upload.external_name, upload.metadata.clone())?;
        Ok(image.id)
    }

    async fn delete_image(&self, external_id: &str) -> Result<(), DriverError> {
        self.cloud.delete_image(external_id)
    }
}
