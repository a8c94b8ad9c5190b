//! `AwsProvider`: the provider contract over one AWS account and region.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use async_trait::async_trait;
use nodepool_config::{
    AwsInstance, LabelSettings, Provider as ProviderConfig, ProviderDiskImageSettings,
    ProviderSettings,
};
use nodepool_driver::{
    CreateMachine, CreateSpec, DeleteMachine, DriverError, ImageUploadSpec, Instance, Provider,
    Quota, Resource,
};
use nodepool_model::ExternalId;

use crate::cloud::{AwsCloud, Connection};
use crate::instance::{InstanceFacts, instance, parse_external_id};
use crate::machines::{AwsCreateMachine, AwsDeleteMachine};
use crate::plan::{LaunchPlan, label_settings, launch_plan};
use crate::quota::{
    Market, QuotaCodesInUse, limits_from_service_quotas, quota_for_instance_type, quota_for_volume,
};
use crate::tags::ec2_tag_map;
use crate::upload;

/// Kinds of leakable resources, as statsd words (`leaked.<kind>s`), matching Nodepool's.
pub mod resource_kinds {
    pub const HOST: &str = "host";
    pub const INSTANCE: &str = "instance";
    pub const VOLUME: &str = "volume";
    pub const AMI: &str = "ami";
    pub const SNAPSHOT: &str = "snapshot";
    pub const OBJECT: &str = "object";
}

#[derive(Debug)]
pub struct AwsProvider {
    /// The provider section: pools, labels, cloud images and diskimages.
    config: ProviderConfig,
    /// `object-storage.bucket-name`, for the S3 import methods and their leak cleanup.
    bucket: Option<String>,
    image_import_timeout: Option<u64>,
    /// The clients and caches; shared with the state machines.
    cloud: Arc<AwsCloud>,
}

/// What a node needs of the quota, from its instance type (`None` for a fleet label before
/// the instance exists) and volume settings.
pub(crate) async fn node_quota(
    cloud: &AwsCloud,
    instance_type: Option<&str>,
    plan: &LaunchPlan,
) -> Result<Quota, DriverError> {
    let mut quota = match instance_type {
        // Dedicated hosts: the instance is assumed not to count against the vCPU quota
        // (as Nodepool); only the instance itself is counted.
        _ if plan.dedicated_host => Quota::one_instance(),
        Some(t) => {
            let info = cloud.instance_type(t).await?;
            quota_for_instance_type(t, info, plan.market)
        }
        None => Quota::one_instance(),
    };
    if let Some(volume_type) = &plan.volume_type {
        quota.add_assign(&quota_for_volume(volume_type, plan.volume_size, plan.iops));
    }
    Ok(quota)
}

impl AwsProvider {
    pub fn new(config: &ProviderConfig, cloud: Arc<AwsCloud>) -> Result<AwsProvider, DriverError> {
        let ProviderSettings::Aws(settings) = &config.settings else {
            return Err(DriverError::Fatal(format!(
                "provider {}: the aws driver needs aws provider settings",
                config.name
            )));
        };
        Ok(AwsProvider {
            bucket: settings.object_storage_bucket.clone(),
            image_import_timeout: settings.image_import_timeout,
            config: config.clone(),
            cloud,
        })
    }

    /// The connection settings of an aws provider section.
    pub fn connection(config: &ProviderConfig) -> Result<(Connection, f64), DriverError> {
        let ProviderSettings::Aws(settings) = &config.settings else {
            return Err(DriverError::Fatal(format!(
                "provider {}: the aws driver needs aws provider settings",
                config.name
            )));
        };
        Ok((
            Connection {
                region: settings.region_name.clone(),
                profile: settings.profile_name.clone(),
                endpoint_url: settings.endpoint_url.clone(),
                static_credentials: None,
            },
            settings.rate,
        ))
    }

    pub fn cloud(&self) -> &Arc<AwsCloud> {
        &self.cloud
    }

    /// The instance types (with market) and volume types the labels use, for limits.
    fn codes_in_use(&self) -> QuotaCodesInUse {
        let mut in_use = QuotaCodesInUse::default();
        for pool in &self.config.pools {
            for label in pool.labels.values() {
                let LabelSettings::Aws(aws) = &label.settings else {
                    continue;
                };
                let market = if aws.use_spot {
                    Market::Spot
                } else {
                    Market::OnDemand
                };
                if !aws.dedicated_host {
                    let types = match &aws.instance {
                        AwsInstance::Type(t) => vec![t.clone()],
                        AwsInstance::Fleet { instance_types, .. } => instance_types.clone(),
                    };
                    for t in types {
                        if !in_use.instance_types.contains(&(t.clone(), market)) {
                            in_use.instance_types.push((t, market));
                        }
                    }
                }
                if let Some(v) = &aws.volume_type
                    && !in_use.volume_types.contains(v)
                {
                    in_use.volume_types.push(v.clone());
                }
            }
        }
        in_use
    }

    async fn list_objects(&self, bucket: &str) -> Result<Vec<Resource>, DriverError> {
        let s3 = &self.cloud.clients().await.s3;
        let mut resources = Vec::new();
        let mut pages = s3.list_objects_v2().bucket(bucket).into_paginator().send();
        loop {
            self.cloud.reading().await;
            let Some(page) = pages.next().await else {
                break;
            };
            let page = page.map_err(|e| crate::errors::sdk_error("ListObjectsV2", e))?;
            for object in page.contents() {
                let Some(key) = object.key() else { continue };
                self.cloud.reading().await;
                let Ok(tagging) = s3.get_object_tagging().bucket(bucket).key(key).send().await
                else {
                    continue;
                };
                let metadata = tagging
                    .tag_set()
                    .iter()
                    .map(|t| (t.key().to_string(), t.value().to_string()))
                    .collect();
                resources.push(Resource {
                    kind: resource_kinds::OBJECT.into(),
                    id: key.to_string(),
                    metadata,
                });
            }
        }
        Ok(resources)
    }
}

fn state_is(state: Option<&str>, names: &[&str]) -> bool {
    state.is_some_and(|s| names.iter().any(|n| s.eq_ignore_ascii_case(n)))
}

#[async_trait]
impl Provider for AwsProvider {
    fn name(&self) -> &str {
        &self.config.name
    }

    fn create_machine(&self, spec: CreateSpec) -> Box<dyn CreateMachine> {
        let plan = launch_plan(&self.config, &spec);
        Box::new(AwsCreateMachine::new(
            self.cloud.clone(),
            self.config.name.clone(),
            plan,
        ))
    }

    fn delete_machine(&self, external_id: &ExternalId) -> Box<dyn DeleteMachine> {
        let (instance_id, host_id) = parse_external_id(external_id);
        Box::new(AwsDeleteMachine::new(
            self.cloud.clone(),
            instance_id,
            host_id,
        ))
    }

    /// Every instance that is not terminated, with what it uses: its type's cores, RAM and
    /// family vCPUs (dedicated hosts: the instance only) and its volumes' EBS usage.
    async fn list_instances(&self) -> Result<Vec<Instance>, DriverError> {
        let instances = self.cloud.list_instances().await?;
        let volumes: HashMap<String, aws_sdk_ec2::types::Volume> = self
            .cloud
            .list_volumes()
            .await?
            .into_iter()
            .filter_map(|v| Some((v.volume_id()?.to_string(), v)))
            .collect();
        let mut out = Vec::new();
        for ec2 in &instances {
            let state = ec2.state().and_then(|s| s.name()).map(|n| n.as_str());
            if state_is(state, &["terminated"]) {
                continue;
            }
            let on_host = ec2.placement().and_then(|p| p.host_id()).is_some();
            let market = if ec2.instance_lifecycle().map(|l| l.as_str()) == Some("spot") {
                Market::Spot
            } else {
                Market::OnDemand
            };
            let mut quota = match ec2.instance_type().map(|t| t.as_str()) {
                Some(_) if on_host => Quota::one_instance(),
                Some(t) => match self.cloud.instance_type(t).await {
                    Ok(info) => quota_for_instance_type(t, info, market),
                    Err(e) => {
                        tracing::warn!(provider = %self.config.name, instance_type = t, error = %e, "cannot describe instance type; counting the instance only");
                        Quota::one_instance()
                    }
                },
                None => Quota::one_instance(),
            };
            for mapping in ec2.block_device_mappings() {
                let Some(volume_id) = mapping.ebs().and_then(|e| e.volume_id()) else {
                    continue;
                };
                let Some(volume) = volumes.get(volume_id) else {
                    continue;
                };
                if let Some(volume_type) = volume.volume_type() {
                    quota.add_assign(&quota_for_volume(
                        volume_type.as_str(),
                        volume.size().map(i64::from),
                        volume.iops().map(i64::from),
                    ));
                }
            }
            out.push(instance(
                ec2,
                InstanceFacts {
                    region: &self.cloud.connection.region,
                    host_id: ec2.placement().and_then(|p| p.host_id()),
                    resources: Some(quota),
                    fleet_and_spot: None,
                },
            ));
        }
        Ok(out)
    }

    /// Hosts, instances, volumes, AMIs, snapshots and (with object storage) S3 objects,
    /// with their tags; those gone already (terminated, released, deleted) are left out.
    async fn list_resources(&self) -> Result<Vec<Resource>, DriverError> {
        let mut resources = Vec::new();
        for host in self.cloud.list_hosts().await.unwrap_or_else(|e| {
            // Accounts (and emulators) without dedicated hosts may refuse the call.
            tracing::debug!(provider = %self.config.name, error = %e, "cannot list dedicated hosts");
            Vec::new()
        }) {
            let state = host.state().map(|s| s.as_str());
            if state_is(state, &["released", "released-permanent-failure"]) {
                continue;
            }
            let Some(id) = host.host_id() else { continue };
            resources.push(Resource {
                kind: resource_kinds::HOST.into(),
                id: id.into(),
                metadata: ec2_tag_map(host.tags()),
            });
        }
        for ec2 in self.cloud.list_instances().await? {
            let state = ec2.state().and_then(|s| s.name()).map(|n| n.as_str());
            if state_is(state, &["terminated"]) {
                continue;
            }
            let Some(id) = ec2.instance_id() else {
                continue;
            };
            resources.push(Resource {
                kind: resource_kinds::INSTANCE.into(),
                id: id.into(),
                metadata: ec2_tag_map(ec2.tags()),
            });
        }
        for volume in self.cloud.list_volumes().await? {
            if state_is(volume.state().map(|s| s.as_str()), &["deleted"]) {
                continue;
            }
            let Some(id) = volume.volume_id() else {
                continue;
            };
            resources.push(Resource {
                kind: resource_kinds::VOLUME.into(),
                id: id.into(),
                metadata: ec2_tag_map(volume.tags()),
            });
        }
        for image in self.cloud.list_images().await? {
            if state_is(image.state().map(|s| s.as_str()), &["deregistered"]) {
                continue;
            }
            let Some(id) = image.image_id() else { continue };
            resources.push(Resource {
                kind: resource_kinds::AMI.into(),
                id: id.into(),
                metadata: ec2_tag_map(image.tags()),
            });
        }
        for snapshot in self.cloud.list_snapshots().await? {
            let Some(id) = snapshot.snapshot_id() else {
                continue;
            };
            resources.push(Resource {
                kind: resource_kinds::SNAPSHOT.into(),
                id: id.into(),
                metadata: ec2_tag_map(snapshot.tags()),
            });
        }
        if let Some(bucket) = &self.bucket {
            resources.extend(self.list_objects(bucket).await?);
        }
        Ok(resources)
    }

    async fn delete_resource(&self, resource: &Resource) -> Result<(), DriverError> {
        tracing::info!(provider = %self.config.name, kind = %resource.kind, id = %resource.id, "deleting leaked resource");
        match resource.kind.as_str() {
            resource_kinds::HOST => self.cloud.release_host(&resource.id).await,
            resource_kinds::INSTANCE => self.cloud.terminate_instance(&resource.id).await,
            resource_kinds::VOLUME => self.cloud.delete_volume(&resource.id).await,
            resource_kinds::AMI => self.cloud.deregister_image(&resource.id).await,
            resource_kinds::SNAPSHOT => self.cloud.delete_snapshot(&resource.id).await,
            resource_kinds::OBJECT => {
                let Some(bucket) = &self.bucket else {
                    return Err(DriverError::Fatal(
                        "cannot delete an object without object-storage".into(),
                    ));
                };
                let s3 = &self.cloud.clients().await.s3;
                self.cloud.mutating().await;
                s3.delete_object()
                    .bucket(bucket)
                    .key(&resource.id)
                    .send()
                    .await
                    .map_err(|e| crate::errors::sdk_error("DeleteObject", e))?;
                Ok(())
            }
            other => Err(DriverError::Fatal(format!(
                "unknown aws resource kind {other}"
            ))),
        }
    }

    /// The service-quota values of the vCPU and EBS codes the labels use. When the
    /// account's quotas cannot be read (no permission, or an emulator without the
    /// service), the provider is treated as unlimited and the pools' `max-*` still apply.
    async fn quota_limits(&self) -> Result<Quota, DriverError> {
        let in_use = self.codes_in_use();
        let ec2 = if in_use.instance_types.is_empty() {
            BTreeMap::new()
        } else {
            match self.cloud.service_quotas("ec2").await {
                Ok(q) => q,
                Err(e) => {
                    tracing::warn!(provider = %self.config.name, error = %e, "cannot read EC2 service quotas; assuming no account vCPU limits");
                    return Ok(Quota::unlimited());
                }
            }
        };
        let ebs = if in_use.volume_types.is_empty() {
            BTreeMap::new()
        } else {
            match self.cloud.service_quotas("ebs").await {
                Ok(q) => q,
                Err(e) => {
                    tracing::warn!(provider = %self.config.name, error = %e, "cannot read EBS service quotas; assuming no account EBS limits");
                    BTreeMap::new()
                }
            }
        };
        let (limits, unknown) = limits_from_service_quotas(&in_use, &ec2, &ebs);
        for code in unknown {
            tracing::warn!(provider = %self.config.name, code, "AWS quota code not known to the account; not limited");
        }
        Ok(limits)
    }

    /// `instances: 1`, the instance type's cores, RAM and family vCPUs, and the volume's
    /// EBS usage. A fleet label counts one instance until its instance type is known. An
    /// unknown instance type is an error, which marks the label unavailable.
    async fn quota_for_label(&self, pool: &str, label: &str) -> Result<Quota, DriverError> {
        let (_, _, aws) = label_settings(&self.config, pool, label)?;
        let plan = LaunchPlan {
            hostname: String::new(),
            image: crate::plan::ImageRef::Id(String::new()),
            instance: aws.instance.clone(),
            key_name: aws.key_name.clone(),
            ebs_optimized: aws.ebs_optimized,
            tags: BTreeMap::new(),
            security_group_id: None,
            subnet_id: None,
            public_ipv4: false,
            public_ipv6: false,
            availability_zone: None,
            volume_type: aws.volume_type.clone(),
            volume_size: aws.volume_size,
            iops: aws.iops,
            throughput: aws.throughput,
            userdata: None,
            iam_instance_profile: None,
            market: if aws.use_spot {
                Market::Spot
            } else {
                Market::OnDemand
            },
            imdsv2: None,
            dedicated_host: aws.dedicated_host,
        };
        node_quota(&self.cloud, plan.instance_type(), &plan).await
    }

    async fn console_log(&self, external_id: &ExternalId) -> Option<String> {
        use base64::Engine;
        let (instance_id, _) = parse_external_id(external_id);
        let instance_id = instance_id?;
        let ec2 = self.cloud.ec2().await;
        self.cloud.reading().await;
        let output = ec2
            .get_console_output()
            .instance_id(instance_id)
            .send()
            .await
            .ok()?;
        let encoded = output.output()?;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .ok()?;
        Some(String::from_utf8_lossy(&bytes).into_owned())
    }

    async fn upload_image(&self, spec: &ImageUploadSpec) -> Result<String, DriverError> {
        let image = self
            .config
            .diskimages
            .get(&spec.image_name)
            .ok_or_else(|| {
                DriverError::Fatal(format!(
                    "provider {} has no diskimage {}",
                    self.config.name, spec.image_name
                ))
            })?;
        let ProviderDiskImageSettings::Aws(settings) = &image.driver else {
            return Err(DriverError::Fatal(format!(
                "diskimage {} of provider {} has no aws settings",
                spec.image_name, self.config.name
            )));
        };
        upload::upload_image(
            &self.cloud,
            settings,
            self.bucket.as_deref(),
            self.image_import_timeout,
            spec,
        )
        .await
    }

    async fn delete_image(&self, external_id: &str) -> Result<(), DriverError> {
        upload::delete_image(&self.cloud, external_id).await
    }
}
