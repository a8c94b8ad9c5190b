//! `OpenStackProvider`: the provider contract over one cloud.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use nodepool_config::{
    CloudImageSource, LabelImage, LabelSettings, OpenStackLabel, OpenStackPool,
    OpenStackProvider as OpenStackSettings, PoolLabel, PoolSettings, Provider as ProviderConfig,
    ProviderSettings,
};
use nodepool_driver::{
    CreateMachine, CreateSpec, DeleteMachine, DriverError, ImageUploadSpec, Instance, Provider,
    Quota, Resource, format_dynamic_entries,
};
use nodepool_model::ExternalId;

use crate::client::{OpenStackClient, Service};
use crate::cloud::{CloudApi, escape};
use crate::clouds::CloudConfig;
use crate::decide;
use crate::machines::{
    ImageRef, OpenStackCreateMachine, OpenStackDeleteMachine, ServerPlan, instance,
};
use crate::upload;

/// Settings that are not in `nodepool.yaml` (tests use them).
#[derive(Debug, Clone, Default)]
pub struct ProviderOptions {
    /// Read this clouds.yaml instead of looking in the usual places.
    pub clouds_file: Option<std::path::PathBuf>,
    /// Ask for server listings in pages of this many.
    pub page_size: Option<u32>,
}

/// One configured OpenStack provider.
#[derive(Debug)]
pub struct OpenStackProvider {
    /// The provider section: pools, labels, images.
    config: ProviderConfig,
    settings: OpenStackSettings,
    /// The cloud, shared with the machines.
    cloud: Arc<CloudApi>,
}

fn settings(config: &ProviderConfig) -> Result<&OpenStackSettings, DriverError> {
    match &config.settings {
        ProviderSettings::OpenStack(s) => Ok(s),
        _ => Err(DriverError::Fatal(format!(
            "provider {}: the openstack driver needs OpenStack provider settings",
            config.name
        ))),
    }
}

impl OpenStackProvider {
    /// A provider for `config`, reading its cloud from clouds.yaml. Makes no API call.
    pub fn new(
        config: &ProviderConfig,
        options: &ProviderOptions,
    ) -> Result<OpenStackProvider, DriverError> {
        let settings = settings(config)?.clone();
        let cloud = crate::clouds::load_cloud(
            &settings.cloud,
            settings.region_name.as_deref(),
            options.clouds_file.as_deref(),
        )
        .map_err(|e| DriverError::Fatal(format!("provider {}: {e}", config.name)))?;
        OpenStackProvider::with_cloud(config, cloud, options)
    }

    /// A provider for `config` talking to `cloud`.
    pub fn with_cloud(
        config: &ProviderConfig,
        cloud: CloudConfig,
        options: &ProviderOptions,
    ) -> Result<OpenStackProvider, DriverError> {
        let settings = settings(config)?.clone();
        let client = OpenStackClient::new(cloud, settings.rate)?;
        Ok(OpenStackProvider {
            config: config.clone(),
            settings,
            cloud: Arc::new(CloudApi::new(client, options.page_size)),
        })
    }

    /// The cloud's API, for tests and tools.
    pub fn api(&self) -> &Arc<CloudApi> {
        &self.cloud
    }

    fn label(
        &self,
        pool: &str,
        label: &str,
    ) -> Result<(&OpenStackPool, &PoolLabel, &OpenStackLabel), DriverError> {
        let pool_config = self.config.pool(pool).ok_or_else(|| {
            DriverError::Fatal(format!("provider {} has no pool {pool}", self.config.name))
        })?;
        let PoolSettings::OpenStack(pool_settings) = &pool_config.settings else {
            return Err(DriverError::Fatal(format!(
                "pool {pool}: not an OpenStack pool"
            )));
        };
        let label_config = pool_config.labels.get(label).ok_or_else(|| {
            DriverError::Fatal(format!(
                "pool {pool} of provider {} has no label {label}",
                self.config.name
            ))
        })?;
        match &label_config.settings {
            LabelSettings::OpenStack(s) => Ok((pool_settings, label_config, s)),
            other => Err(DriverError::Fatal(format!(
                "label {label}: not an OpenStack label: {other:?}"
            ))),
        }
    }

    /// The server to create for `spec`, from the configuration.
    fn plan(&self, spec: &CreateSpec) -> Result<ServerPlan, DriverError> {
        let (pool, label, settings) = self.label(&spec.pool, &spec.label)?;
        let (image, image_name, config_drive) = match (&label.image, &spec.image_external_id) {
            (LabelImage::Diskimage(name), Some(id)) => (
                ImageRef::Id(id.clone()),
                name.clone(),
                self.config
                    .diskimages
                    .get(name)
                    .and_then(|d| d.config_drive),
            ),
            (LabelImage::Diskimage(name), None) => {
                return Err(DriverError::Fatal(format!(
                    "label {}: no upload of diskimage {name} was given",
                    label.name
                )));
            }
            (LabelImage::CloudImage(name), _) => {
                let cloud_image = self.config.cloud_images.get(name).ok_or_else(|| {
                    DriverError::Fatal(format!("label {}: no cloud-image {name}", label.name))
                })?;
                let image = match &cloud_image.source {
                    CloudImageSource::Id(id) => ImageRef::Id(id.clone()),
                    CloudImageSource::Name(n) => ImageRef::Name(n.clone()),
                    other => {
                        return Err(DriverError::Fatal(format!(
                            "cloud-image {name}: {other:?} is not an OpenStack image"
                        )));
                    }
                };
                (image, name.clone(), cloud_image.config_drive)
            }
            (LabelImage::None, _) => {
                return Err(DriverError::Fatal(format!(
                    "label {} names no image",
                    label.name
                )));
            }
        };
        let dynamic_properties = format_dynamic_entries(
            &settings.dynamic_instance_properties,
            spec,
            "dynamic-instance-properties",
        );
        let metadata = decide::server_metadata(
            &self.config.name,
            &image_name,
            &label.name,
            &settings.instance_properties,
            &dynamic_properties,
            &spec.metadata,
        );
        let networks = if settings.networks.is_empty() {
            pool.networks.clone()
        } else {
            settings.networks.clone()
        };
        Ok(ServerPlan {
            name: spec.hostname.clone(),
            image,
            flavor_name: settings.flavor_name.clone(),
            min_ram: settings.min_ram,
            key_name: settings.key_name.clone(),
            az: spec.az.clone(),
            config_drive,
            networks,
            security_groups: pool.security_groups.clone(),
            userdata: settings.userdata.clone(),
            metadata,
            boot_volume_gb: settings.boot_from_volume.then_some(settings.volume_size),
            auto_floating_ip: pool.auto_floating_ip,
        })
    }

    async fn server_instances(&self) -> Result<Vec<Instance>, DriverError> {
        let servers = self.cloud.servers_since(Instant::now()).await?;
        let mut out = Vec::new();
        for server in servers.iter() {
            if server.status.eq_ignore_ascii_case("deleted") {
                continue;
            }
            let quota = self.cloud.server_quota(server).await;
            out.push(
                instance(
                    &self.cloud,
                    server,
                    self.settings.region_name.as_deref(),
                    quota,
                )
                .await?,
            );
        }
        Ok(out)
    }
}

#[async_trait]
impl Provider for OpenStackProvider {
    fn name(&self) -> &str {
        &self.config.name
    }

    fn create_machine(&self, spec: CreateSpec) -> Box<dyn CreateMachine> {
        let plan = self.plan(&spec);
        Box::new(OpenStackCreateMachine::new(
            self.cloud.clone(),
            plan,
            self.settings.region_name.clone(),
        ))
    }

    fn delete_machine(&self, external_id: &ExternalId) -> Box<dyn DeleteMachine> {
        Box::new(OpenStackDeleteMachine::new(self.cloud.clone(), external_id))
    }

    async fn list_instances(&self) -> Result<Vec<Instance>, DriverError> {
        self.server_instances().await
    }

    /// Servers and this provider's images, with their metadata. Ports and floating IPs carry
    /// no metadata, so (as Nodepool) their cleanup happens here, on the cleanup worker's
    /// schedule.
    async fn list_resources(&self) -> Result<Vec<Resource>, DriverError> {
        let servers = self.cloud.servers_since(Instant::now()).await?;
        let mut out: Vec<Resource> = servers
            .iter()
            .filter(|s| !s.status.eq_ignore_ascii_case("deleted"))
            .map(|s| Resource {
                kind: "instance".into(),
                id: s.id.clone(),
                metadata: s.metadata.clone(),
            })
            .collect();
        for image in self.cloud.provider_images(&self.config.name).await? {
            out.push(Resource {
                kind: "image".into(),
                id: image.id.clone(),
                metadata: image.metadata(),
            });
        }
        if self.settings.port_cleanup_interval > 0 {
            let interval = Duration::from_secs(self.settings.port_cleanup_interval);
            if let Err(e) = self.cloud.clean_down_ports(interval).await {
                tracing::warn!(provider = %self.config.name, error = %e, "DOWN port cleanup failed");
            }
        }
        if self.settings.clean_floating_ips
            && let Err(e) = self.cloud.clean_unattached_floating_ips().await
        {
            tracing::warn!(provider = %self.config.name, error = %e, "floating IP cleanup failed");
        }
        Ok(out)
    }

    async fn delete_resource(&self, resource: &Resource) -> Result<(), DriverError> {
        tracing::info!(provider = %self.config.name, kind = %resource.kind, id = %resource.id, "deleting leaked resource");
        let result = match resource.kind.as_str() {
            "instance" => {
                self.cloud
                    .client
                    .delete(
                        Service::Compute,
                        &format!("/servers/{}", escape(&resource.id)),
                    )
                    .await
            }
            "image" => {
                self.cloud
                    .client
                    .delete(Service::Image, &format!("/images/{}", escape(&resource.id)))
                    .await
            }
            other => Err(DriverError::Fatal(format!(
                "the openstack driver has no {other} resources"
            ))),
        };
        match result {
            Err(DriverError::NotFound(_)) => Ok(()),
            other => other,
        }
    }

    async fn quota_limits(&self) -> Result<Quota, DriverError> {
        self.cloud.refresh_azs().await;
        self.cloud.quota_limits().await
    }

    async fn quota_for_label(&self, pool: &str, label: &str) -> Result<Quota, DriverError> {
        let (_, _, settings) = self.label(pool, label)?;
        let flavors = self.cloud.flavors().await?;
        let flavor =
            decide::select_flavor(&flavors, settings.flavor_name.as_deref(), settings.min_ram)?;
        Ok(decide::quota_from_flavor(
            flavor,
            settings.boot_from_volume.then_some(settings.volume_size),
        ))
    }

    fn availability_zones(&self) -> Vec<String> {
        self.cloud.cached_azs()
    }

    async fn label_ready(&self, pool: &str, label: &str) -> bool {
        self.cloud.refresh_azs().await;
        let Ok((_, label_config, _)) = self.label(pool, label) else {
            return false;
        };
        let LabelImage::CloudImage(name) = &label_config.image else {
            // Diskimage labels are ready when an upload is; the launcher checks that.
            return true;
        };
        let Some(cloud_image) = self.config.cloud_images.get(name) else {
            return false;
        };
        match &cloud_image.source {
            CloudImageSource::Id(_) => true,
            CloudImageSource::Name(image) => match self.cloud.find_image(image).await {
                Ok(Some(_)) => true,
                Ok(None) => {
                    tracing::warn!(provider = %self.config.name, image, label, "the cloud-image of this label is not in the cloud");
                    false
                }
                Err(e) => {
                    tracing::warn!(provider = %self.config.name, image, error = %e, "cannot look up the cloud-image");
                    false
                }
            },
            CloudImageSource::Filters(_) | CloudImageSource::Path(_) => false,
        }
    }

    async fn console_log(&self, external_id: &ExternalId) -> Option<String> {
        let ExternalId::Id(id) = external_id else {
            return None;
        };
        match self.cloud.console_log(id).await {
            Ok(log) => Some(log),
            Err(e) => {
                tracing::info!(server_id = %id, error = %e, "no console log");
                None
            }
        }
    }

    async fn upload_image(&self, spec: &ImageUploadSpec) -> Result<String, DriverError> {
        upload::upload_image(
            &self.cloud,
            spec,
            Duration::from_secs(self.settings.image_upload_timeout),
        )
        .await
    }

    async fn delete_image(&self, external_id: &str) -> Result<(), DriverError> {
        tracing::info!(provider = %self.config.name, image_id = external_id, "deleting image");
        match self
            .cloud
            .client
            .delete(Service::Image, &format!("/images/{}", escape(external_id)))
            .await
        {
            Ok(()) | Err(DriverError::NotFound(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }
}
