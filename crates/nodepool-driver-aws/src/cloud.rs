//! `AwsCloud`: the SDK clients of one provider, its rate limits and small caches, and one
//! method per AWS call the driver makes (errors mapped to [`DriverError`] naming the call).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use aws_sdk_ec2::types::{
    BlockDeviceMapping, EbsBlockDevice, Filter, Host, IamInstanceProfileSpecification, Image,
    Instance as Ec2Instance, InstanceMarketOptionsRequest, InstanceMetadataEndpointState,
    InstanceMetadataOptionsRequest, InstanceNetworkInterfaceSpecification, InstanceType,
    MarketType, Placement, ResourceType, Snapshot, SpotInstanceType, SpotMarketOptions,
    TagSpecification, Volume, VolumeType,
};
use base64::Engine;
use nodepool_driver::DriverError;
use tokio::sync::OnceCell;

use crate::errors::sdk_error;
use crate::plan::{ImageRef, LaunchPlan};
use crate::quota::{InstanceTypeInfo, Market};
use crate::tags::ec2_tags;

/// How to reach AWS: the provider's region, profile and endpoint, and (for tests and local
/// emulators) fixed credentials instead of the default chain.
#[derive(Clone, PartialEq)]
pub struct Connection {
    pub region: String,
    pub profile: Option<String>,
    pub endpoint_url: Option<String>,
    /// (access key id, secret access key).
    pub static_credentials: Option<(String, String)>,
}

/// The access key id is shown (it names the key, as AWS's own tools show it); the secret is
/// never shown.
impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("region", &self.region)
            .field("profile", &self.profile)
            .field("endpoint_url", &self.endpoint_url)
            .field(
                "static_credentials",
                &self
                    .static_credentials
                    .as_ref()
                    .map(|(id, _)| (id.as_str(), "<hidden>")),
            )
            .finish()
    }
}

/// The SDK clients, made on first use (loading credentials is async; building a provider
/// is not).
#[derive(Debug, Clone)]
pub struct Clients {
    pub ec2: aws_sdk_ec2::Client,
    pub ebs: aws_sdk_ebs::Client,
    pub s3: aws_sdk_s3::Client,
    pub quotas: aws_sdk_servicequotas::Client,
}

/// Spaces calls evenly: at most one per `interval`.
#[derive(Debug)]
pub struct RateLimiter {
    interval: Duration,
    /// When the next call may start. A std mutex: held only to read and bump it.
    next: Mutex<tokio::time::Instant>,
}

impl RateLimiter {
    /// `per_second` calls a second; zero or less means no limit.
    pub fn new(per_second: f64) -> RateLimiter {
        let interval = if per_second > 0.0 {
            Duration::from_secs_f64(1.0 / per_second)
        } else {
            Duration::ZERO
        };
        RateLimiter {
            interval,
            next: Mutex::new(tokio::time::Instant::now()),
        }
    }

    pub async fn wait(&self) {
        let start = {
            let mut next = self.next.lock().unwrap_or_else(PoisonError::into_inner);
            let now = tokio::time::Instant::now();
            let start = (*next).max(now);
            *next = start + self.interval;
            start
        };
        tokio::time::sleep_until(start).await;
    }
}

/// How long an image-filter lookup is reused (Nodepool: 5 minutes).
const IMAGE_FILTER_TTL: Duration = Duration::from_secs(300);

#[derive(Debug)]
pub struct AwsCloud {
    pub connection: Connection,
    clients: OnceCell<Clients>,
    /// Creating and deleting calls, at the provider's `rate`.
    mutating: RateLimiter,
    /// Describe and list calls, at ten times the rate (as Nodepool).
    reading: RateLimiter,
    /// Instance type -> vCPUs, cores and memory; they never change.
    instance_types: Mutex<HashMap<String, InstanceTypeInfo>>,
    /// AMI id -> its description (block device mappings for `RunInstances`).
    images: Mutex<HashMap<String, Image>>,
    /// Image filters (as text) -> the newest matching AMI and when it was looked up.
    filtered_images: Mutex<HashMap<String, (Instant, String)>>,
    /// The account's instances as last listed, shared by every state machine: one
    /// `DescribeInstances` serves all launches and deletes in flight instead of one call
    /// per instance per second (as Nodepool's listing cache). A tokio mutex: held across
    /// the refresh so concurrent machines wait for one listing rather than each making
    /// their own.
    instance_listing: tokio::sync::Mutex<Option<(Instant, Arc<InstancesById>)>>,
}

/// Instances by id, from one listing.
type InstancesById = HashMap<String, Ec2Instance>;

/// How old the shared instance listing may be before a state machine refreshes it.
const INSTANCE_LISTING_TTL: Duration = Duration::from_secs(2);

/// EC2 calls are small: one whose answer has not started within this long is given up
/// (and retried by the SDK), as boto3's read timeout does, so a lost answer cannot hold a
/// launch or delete step forever. Not for S3 and EBS, whose uploads take what they take.
const EC2_READ_TIMEOUT: Duration = Duration::from_secs(60);
const EC2_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl AwsCloud {
    pub fn new(connection: Connection, rate: f64) -> AwsCloud {
        AwsCloud {
            connection,
            clients: OnceCell::new(),
            mutating: RateLimiter::new(rate),
            reading: RateLimiter::new(rate * 10.0),
            instance_types: Mutex::new(HashMap::new()),
            images: Mutex::new(HashMap::new()),
            filtered_images: Mutex::new(HashMap::new()),
            instance_listing: tokio::sync::Mutex::new(None),
        }
    }

    pub async fn clients(&self) -> &Clients {
        self.clients
            .get_or_init(|| async {
                let c = &self.connection;
                let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
                    .region(aws_config::Region::new(c.region.clone()));
                if let Some(profile) = &c.profile {
                    loader = loader.profile_name(profile);
                }
                if let Some(url) = &c.endpoint_url {
                    loader = loader.endpoint_url(url);
                }
                if let Some((key, secret)) = &c.static_credentials {
                    loader = loader.credentials_provider(aws_credential_types::Credentials::new(
                        key,
                        secret,
                        None,
                        None,
                        "nodepool-static",
                    ));
                }
                let sdk = loader.load().await;
                // A custom endpoint (an emulator, a private S3) serves buckets by path.
                let s3_config = aws_sdk_s3::config::Builder::from(&sdk)
                    .force_path_style(c.endpoint_url.is_some())
                    .build();
                let ec2_config = aws_sdk_ec2::config::Builder::from(&sdk)
                    .timeout_config(
                        aws_sdk_ec2::config::timeout::TimeoutConfig::builder()
                            .connect_timeout(EC2_CONNECT_TIMEOUT)
                            .read_timeout(EC2_READ_TIMEOUT)
                            .build(),
                    )
                    .build();
                Clients {
                    ec2: aws_sdk_ec2::Client::from_conf(ec2_config),
                    ebs: aws_sdk_ebs::Client::new(&sdk),
                    s3: aws_sdk_s3::Client::from_conf(s3_config),
                    quotas: aws_sdk_servicequotas::Client::new(&sdk),
                }
            })
            .await
    }

    pub async fn ec2(&self) -> &aws_sdk_ec2::Client {
        &self.clients().await.ec2
    }

    pub async fn mutating(&self) {
        self.mutating.wait().await
    }

    pub async fn reading(&self) {
        self.reading.wait().await
    }

    // ---- instances ----

    /// `RunInstances` for `plan` with `image_id`; returns the new instance's id. The same
    /// `client_token` makes EC2 answer a repeated call with the instance it already made.
    pub async fn run_instance(
        &self,
        plan: &LaunchPlan,
        image_id: &str,
        instance_type: &str,
        host_id: Option<&str>,
        client_token: &str,
    ) -> Result<String, DriverError> {
        let image = self.image(image_id).await?;
        let ec2 = self.ec2().await;
        let mut nic = InstanceNetworkInterfaceSpecification::builder()
            .associate_public_ip_address(plan.public_ipv4)
            .device_index(0);
        if let Some(group) = &plan.security_group_id {
            nic = nic.groups(group);
        }
        if let Some(subnet) = &plan.subnet_id {
            nic = nic.subnet_id(subnet);
        }
        if plan.public_ipv6 {
            nic = nic.ipv6_address_count(1);
        }
        let tags = ec2_tags(&plan.tags);
        let mut request = ec2
            .run_instances()
            .client_token(client_token)
            .image_id(image_id)
            .min_count(1)
            .max_count(1)
            .key_name(&plan.key_name)
            .ebs_optimized(plan.ebs_optimized)
            .instance_type(InstanceType::from(instance_type))
            .network_interfaces(nic.build())
            .tag_specifications(
                TagSpecification::builder()
                    .resource_type(ResourceType::Instance)
                    .set_tags(Some(tags.clone()))
                    .build(),
            )
            .tag_specifications(
                TagSpecification::builder()
                    .resource_type(ResourceType::Volume)
                    .set_tags(Some(tags))
                    .build(),
            );
        if let Some(userdata) = &plan.userdata {
            // The API takes user data base64-encoded (boto3 encodes it for Nodepool).
            request = request.user_data(base64::engine::general_purpose::STANDARD.encode(userdata));
        }
        match &plan.iam_instance_profile {
            Some(nodepool_config::AwsIamProfile::Name(name)) => {
                request = request.iam_instance_profile(
                    IamInstanceProfileSpecification::builder()
                        .name(name)
                        .build(),
                );
            }
            Some(nodepool_config::AwsIamProfile::Arn(arn)) => {
                request = request.iam_instance_profile(
                    IamInstanceProfileSpecification::builder().arn(arn).build(),
                );
            }
            None => {}
        }
        if let Some(mapping) = root_volume_mapping(&image, plan) {
            request = request.block_device_mappings(mapping);
        }
        if plan.market == Market::Spot {
            request = request.instance_market_options(
                InstanceMarketOptionsRequest::builder()
                    .market_type(MarketType::Spot)
                    .spot_options(
                        SpotMarketOptions::builder()
                            .spot_instance_type(SpotInstanceType::OneTime)
                            .instance_interruption_behavior(
                                aws_sdk_ec2::types::InstanceInterruptionBehavior::Terminate,
                            )
                            .build(),
                    )
                    .build(),
            );
        }
        if let Some(options) = metadata_options(plan.imdsv2.as_deref()) {
            request = request.metadata_options(options);
        }
        let mut placement = Placement::builder();
        let mut placed = false;
        if let Some(host) = host_id {
            placement = placement
                .tenancy(aws_sdk_ec2::types::Tenancy::Host)
                .host_id(host)
                .affinity("host");
            placed = true;
        }
        if let Some(az) = &plan.availability_zone {
            placement = placement.availability_zone(az);
            placed = true;
        }
        if placed {
            request = request.placement(placement.build());
        }
        self.mutating().await;
        let output = request
            .send()
            .await
            .map_err(|e| sdk_error("RunInstances", e))?;
        output
            .instances()
            .first()
            .and_then(|i| i.instance_id())
            .map(str::to_string)
            .ok_or_else(|| DriverError::Fatal("RunInstances: no instance in the reply".into()))
    }

    /// One instance, or `None` if EC2 does not (yet, or any more) know it.
    pub async fn describe_instance(&self, id: &str) -> Result<Option<Ec2Instance>, DriverError> {
        let ec2 = self.ec2().await;
        self.reading().await;
        match ec2.describe_instances().instance_ids(id).send().await {
            Ok(out) => Ok(out
                .reservations()
                .iter()
                .flat_map(|r| r.instances())
                .find(|i| i.instance_id() == Some(id))
                .cloned()),
            Err(e) => match sdk_error("DescribeInstances", e) {
                DriverError::NotFound(_) => Ok(None),
                other => Err(other),
            },
        }
    }

    /// Instance `id` from the shared listing (at most [`INSTANCE_LISTING_TTL`] old), or
    /// `None` if the listing does not have it (not yet visible, or gone).
    pub async fn listed_instance(&self, id: &str) -> Result<Option<Ec2Instance>, DriverError> {
        let mut listing = self.instance_listing.lock().await;
        let fresh = listing
            .as_ref()
            .is_some_and(|(at, _)| at.elapsed() < INSTANCE_LISTING_TTL);
        if !fresh {
            let started = Instant::now();
            let all = self
                .list_instances()
                .await?
                .into_iter()
                .filter_map(|i| Some((i.instance_id()?.to_string(), i)))
                .collect();
            *listing = Some((started, Arc::new(all)));
        }
        Ok(listing.as_ref().and_then(|(_, all)| all.get(id).cloned()))
    }

    /// The instances not terminated (or terminating) that carry `provider`'s and `node_id`'s
    /// tags, read fresh from EC2 (not the shared listing).
    pub async fn live_instances_of_node(
        &self,
        provider: &str,
        node_id: &str,
    ) -> Result<Vec<String>, DriverError> {
        let filter = |name: &str, values: &[&str]| {
            Filter::builder()
                .name(name)
                .set_values(Some(values.iter().map(|v| v.to_string()).collect()))
                .build()
        };
        let ec2 = self.ec2().await;
        let mut pages = ec2
            .describe_instances()
            .filters(filter(
                &format!("tag:{}", nodepool_driver::metadata_keys::NODE_ID),
                &[node_id],
            ))
            .filters(filter(
                &format!("tag:{}", nodepool_driver::metadata_keys::PROVIDER_NAME),
                &[provider],
            ))
            .filters(filter(
                "instance-state-name",
                &["pending", "running", "stopping", "stopped"],
            ))
            .into_paginator()
            .send();
        let mut ids = Vec::new();
        loop {
            self.reading().await;
            match pages.next().await {
                None => break,
                Some(page) => {
                    let page = page.map_err(|e| sdk_error("DescribeInstances", e))?;
                    ids.extend(
                        page.reservations()
                            .iter()
                            .flat_map(|r| r.instances())
                            .filter_map(|i| i.instance_id().map(str::to_string)),
                    );
                }
            }
        }
        Ok(ids)
    }

    pub async fn terminate_instance(&self, id: &str) -> Result<(), DriverError> {
        let ec2 = self.ec2().await;
        self.mutating().await;
        ec2.terminate_instances()
            .instance_ids(id)
            .send()
            .await
            .map_err(|e| sdk_error("TerminateInstances", e))?;
        Ok(())
    }

    pub async fn list_instances(&self) -> Result<Vec<Ec2Instance>, DriverError> {
        let ec2 = self.ec2().await;
        let mut pages = ec2.describe_instances().into_paginator().send();
        let mut all = Vec::new();
        loop {
            self.reading().await;
            match pages.next().await {
                None => break,
                Some(page) => {
                    let page = page.map_err(|e| sdk_error("DescribeInstances", e))?;
                    for reservation in page.reservations() {
                        all.extend(reservation.instances().iter().cloned());
                    }
                }
            }
        }
        Ok(all)
    }

    // ---- fleets and dedicated hosts ----

    /// Makes the launch template a fleet label uses, if it does not exist yet.
    pub async fn ensure_launch_template(
        &self,
        name: &str,
        plan: &LaunchPlan,
        provider_name: &str,
    ) -> Result<(), DriverError> {
        use aws_sdk_ec2::types::{
            LaunchTemplateBlockDeviceMappingRequest, LaunchTemplateEbsBlockDeviceRequest,
            LaunchTemplateHttpTokensState, LaunchTemplateInstanceMetadataEndpointState,
            LaunchTemplateInstanceMetadataOptionsRequest, RequestLaunchTemplateData,
        };
        let ec2 = self.ec2().await;
        self.reading().await;
        let existing = ec2
            .describe_launch_templates()
            .launch_template_names(name)
            .send()
            .await;
        match existing {
            Ok(out) if !out.launch_templates().is_empty() => return Ok(()),
            Ok(_) => {}
            Err(e) => match sdk_error("DescribeLaunchTemplates", e) {
                DriverError::NotFound(_) | DriverError::Fatal(_) => {}
                other => return Err(other),
            },
        }
        let mut ebs = LaunchTemplateEbsBlockDeviceRequest::builder().delete_on_termination(true);
        if let Some(size) = plan.volume_size {
            ebs = ebs.volume_size(size as i32);
        }
        if let Some(t) = &plan.volume_type {
            ebs = ebs.volume_type(VolumeType::from(t.as_str()));
        }
        if let Some(iops) = plan.iops {
            ebs = ebs.iops(iops as i32);
        }
        if let Some(throughput) = plan.throughput {
            ebs = ebs.throughput(throughput as i32);
        }
        let mut data = RequestLaunchTemplateData::builder()
            .key_name(&plan.key_name)
            .block_device_mappings(
                LaunchTemplateBlockDeviceMappingRequest::builder()
                    .device_name("/dev/sda1")
                    .ebs(ebs.build())
                    .build(),
            );
        if let Some(group) = &plan.security_group_id {
            data = data.security_group_ids(group);
        }
        if let Some(tokens) = plan.imdsv2.as_deref() {
            data = data.metadata_options(
                LaunchTemplateInstanceMetadataOptionsRequest::builder()
                    .http_tokens(LaunchTemplateHttpTokensState::from(tokens))
                    .http_endpoint(LaunchTemplateInstanceMetadataEndpointState::Enabled)
                    .build(),
            );
        }
        if let Some(userdata) = &plan.userdata {
            data = data.user_data(base64::engine::general_purpose::STANDARD.encode(userdata));
        }
        let tags = BTreeMap::from([
            ("nodepool_managed".to_string(), "True".to_string()),
            (
                "nodepool_provider_name".to_string(),
                provider_name.to_string(),
            ),
        ]);
        self.mutating().await;
        match ec2
            .create_launch_template()
            .launch_template_name(name)
            .launch_template_data(data.build())
            .tag_specifications(
                TagSpecification::builder()
                    .resource_type(ResourceType::LaunchTemplate)
                    .set_tags(Some(ec2_tags(&tags)))
                    .build(),
            )
            .send()
            .await
        {
            Ok(_) => Ok(()),
            // Another launcher made it meanwhile.
            Err(e)
                if aws_sdk_ec2::error::ProvideErrorMetadata::code(&e)
                    == Some("InvalidLaunchTemplateName.AlreadyExistsException") =>
            {
                Ok(())
            }
            Err(e) => Err(sdk_error("CreateLaunchTemplate", e)),
        }
    }

    /// `CreateFleet` (type `instant`) for one instance; returns its id. `client_token` as
    /// for [`AwsCloud::run_instance`].
    pub async fn create_fleet_instance(
        &self,
        plan: &LaunchPlan,
        image_id: &str,
        template: &str,
        instance_types: &[String],
        allocation_strategy: &str,
        client_token: &str,
    ) -> Result<String, DriverError> {
        use aws_sdk_ec2::types::{
            DefaultTargetCapacityType, FleetLaunchTemplateConfigRequest,
            FleetLaunchTemplateOverridesRequest, FleetLaunchTemplateSpecificationRequest,
            FleetType, OnDemandOptionsRequest, SpotOptionsRequest,
            TargetCapacitySpecificationRequest,
        };
        let ec2 = self.ec2().await;
        let overrides = instance_types
            .iter()
            .map(|t| {
                FleetLaunchTemplateOverridesRequest::builder()
                    .image_id(image_id)
                    .instance_type(InstanceType::from(t.as_str()))
                    .set_subnet_id(plan.subnet_id.clone())
                    .build()
            })
            .collect::<Vec<_>>();
        let tags = ec2_tags(&plan.tags);
        let mut request = ec2
            .create_fleet()
            .client_token(client_token)
            .r#type(FleetType::Instant)
            .launch_template_configs(
                FleetLaunchTemplateConfigRequest::builder()
                    .launch_template_specification(
                        FleetLaunchTemplateSpecificationRequest::builder()
                            .launch_template_name(template)
                            .version("$Latest")
                            .build(),
                    )
                    .set_overrides(Some(overrides))
                    .build(),
            )
            .tag_specifications(
                TagSpecification::builder()
                    .resource_type(ResourceType::Instance)
                    .set_tags(Some(tags.clone()))
                    .build(),
            )
            .tag_specifications(
                TagSpecification::builder()
                    .resource_type(ResourceType::Volume)
                    .set_tags(Some(tags))
                    .build(),
            );
        let capacity = TargetCapacitySpecificationRequest::builder().total_target_capacity(1);
        request = if plan.market == Market::Spot {
            request
                .spot_options(
                    SpotOptionsRequest::builder()
                        .allocation_strategy(allocation_strategy.into())
                        .build(),
                )
                .target_capacity_specification(
                    capacity
                        .default_target_capacity_type(DefaultTargetCapacityType::Spot)
                        .build(),
                )
        } else {
            request
                .on_demand_options(
                    OnDemandOptionsRequest::builder()
                        .allocation_strategy(allocation_strategy.into())
                        .build(),
                )
                .target_capacity_specification(
                    capacity
                        .default_target_capacity_type(DefaultTargetCapacityType::OnDemand)
                        .build(),
                )
        };
        self.mutating().await;
        let out = request
            .send()
            .await
            .map_err(|e| sdk_error("CreateFleet", e))?;
        if let Some(id) = out
            .instances()
            .first()
            .and_then(|i| i.instance_ids().first())
        {
            return Ok(id.clone());
        }
        match out.errors().first() {
            Some(error) => Err(crate::errors::classify(
                "CreateFleet",
                &crate::errors::CallFailure {
                    code: error.error_code().map(str::to_string),
                    message: error.error_message().map(str::to_string),
                    status: None,
                    no_response: false,
                },
            )),
            None => Err(DriverError::Fatal(
                "CreateFleet: no instance and no error in the reply".into(),
            )),
        }
    }

    /// `AllocateHosts` for one dedicated host of `instance_type`; returns its id.
    pub async fn allocate_host(
        &self,
        plan: &LaunchPlan,
        instance_type: &str,
    ) -> Result<String, DriverError> {
        let ec2 = self.ec2().await;
        let mut request = ec2
            .allocate_hosts()
            .quantity(1)
            .instance_type(instance_type)
            .auto_placement(aws_sdk_ec2::types::AutoPlacement::Off)
            .tag_specifications(
                TagSpecification::builder()
                    .resource_type(ResourceType::DedicatedHost)
                    .set_tags(Some(ec2_tags(&plan.tags)))
                    .build(),
            );
        if let Some(az) = &plan.availability_zone {
            request = request.availability_zone(az);
        }
        self.mutating().await;
        let out = request
            .send()
            .await
            .map_err(|e| sdk_error("AllocateHosts", e))?;
        out.host_ids()
            .first()
            .cloned()
            .ok_or_else(|| DriverError::Fatal("AllocateHosts: no host in the reply".into()))
    }

    pub async fn describe_host(&self, id: &str) -> Result<Option<Host>, DriverError> {
        let ec2 = self.ec2().await;
        self.reading().await;
        match ec2.describe_hosts().host_ids(id).send().await {
            Ok(out) => Ok(out
                .hosts()
                .iter()
                .find(|h| h.host_id() == Some(id))
                .cloned()),
            Err(e) => match sdk_error("DescribeHosts", e) {
                DriverError::NotFound(_) => Ok(None),
                other => Err(other),
            },
        }
    }

    pub async fn release_host(&self, id: &str) -> Result<(), DriverError> {
        let ec2 = self.ec2().await;
        self.mutating().await;
        ec2.release_hosts()
            .host_ids(id)
            .send()
            .await
            .map_err(|e| sdk_error("ReleaseHosts", e))?;
        Ok(())
    }

    pub async fn list_hosts(&self) -> Result<Vec<Host>, DriverError> {
        let ec2 = self.ec2().await;
        self.reading().await;
        let out = ec2
            .describe_hosts()
            .send()
            .await
            .map_err(|e| sdk_error("DescribeHosts", e))?;
        Ok(out.hosts().to_vec())
    }

    // ---- images ----

    /// An AMI's description, cached (AMIs do not change).
    pub async fn image(&self, id: &str) -> Result<Image, DriverError> {
        if let Some(image) = lock(&self.images).get(id) {
            return Ok(image.clone());
        }
        let ec2 = self.ec2().await;
        self.reading().await;
        let out = ec2
            .describe_images()
            .image_ids(id)
            .send()
            .await
            .map_err(|e| sdk_error("DescribeImages", e))?;
        let image = out
            .images()
            .iter()
            .find(|i| i.image_id() == Some(id))
            .cloned()
            .ok_or_else(|| DriverError::NotFound(format!("DescribeImages: no image {id}")))?;
        lock(&self.images).insert(id.to_string(), image.clone());
        Ok(image)
    }

    /// The AMI id for a label's image.
    pub async fn resolve_image(&self, image: &ImageRef) -> Result<String, DriverError> {
        let filters = match image {
            ImageRef::Id(id) => return Ok(id.clone()),
            ImageRef::Filters(filters) => filters.clone(),
            ImageRef::Name(name) => vec![("name".to_string(), vec![name.clone()])],
        };
        let key = format!("{filters:?}");
        if let Some((when, id)) = lock(&self.filtered_images).get(&key)
            && when.elapsed() < IMAGE_FILTER_TTL
        {
            return Ok(id.clone());
        }
        let ec2 = self.ec2().await;
        let sdk_filters = filters
            .iter()
            .map(|(name, values)| {
                Filter::builder()
                    .name(name)
                    .set_values(Some(values.clone()))
                    .build()
            })
            .collect::<Vec<_>>();
        self.reading().await;
        let out = ec2
            .describe_images()
            .set_filters(Some(sdk_filters))
            .send()
            .await
            .map_err(|e| sdk_error("DescribeImages", e))?;
        let newest = newest_image(out.images()).ok_or_else(|| {
            DriverError::Fatal("No cloud-image (AMI) matches supplied image filters".into())
        })?;
        lock(&self.filtered_images).insert(key, (Instant::now(), newest.clone()));
        Ok(newest)
    }

    /// AMIs this account owns.
    pub async fn list_images(&self) -> Result<Vec<Image>, DriverError> {
        let ec2 = self.ec2().await;
        let mut pages = ec2.describe_images().owners("self").into_paginator().send();
        let mut all = Vec::new();
        loop {
            self.reading().await;
            match pages.next().await {
                None => break,
                Some(page) => {
                    let page = page.map_err(|e| sdk_error("DescribeImages", e))?;
                    all.extend(page.images().iter().cloned());
                }
            }
        }
        Ok(all)
    }

    pub async fn deregister_image(&self, id: &str) -> Result<(), DriverError> {
        let ec2 = self.ec2().await;
        self.mutating().await;
        ec2.deregister_image()
            .image_id(id)
            .send()
            .await
            .map_err(|e| sdk_error("DeregisterImage", e))?;
        lock(&self.images).remove(id);
        Ok(())
    }

    // ---- volumes and snapshots ----

    pub async fn list_volumes(&self) -> Result<Vec<Volume>, DriverError> {
        let ec2 = self.ec2().await;
        let mut pages = ec2.describe_volumes().into_paginator().send();
        let mut all = Vec::new();
        loop {
            self.reading().await;
            match pages.next().await {
                None => break,
                Some(page) => {
                    let page = page.map_err(|e| sdk_error("DescribeVolumes", e))?;
                    all.extend(page.volumes().iter().cloned());
                }
            }
        }
        Ok(all)
    }

    pub async fn delete_volume(&self, id: &str) -> Result<(), DriverError> {
        let ec2 = self.ec2().await;
        self.mutating().await;
        ec2.delete_volume()
            .volume_id(id)
            .send()
            .await
            .map_err(|e| sdk_error("DeleteVolume", e))?;
        Ok(())
    }

    pub async fn list_snapshots(&self) -> Result<Vec<Snapshot>, DriverError> {
        let ec2 = self.ec2().await;
        let mut pages = ec2
            .describe_snapshots()
            .owner_ids("self")
            .into_paginator()
            .send();
        let mut all = Vec::new();
        loop {
            self.reading().await;
            match pages.next().await {
                None => break,
                Some(page) => {
                    let page = page.map_err(|e| sdk_error("DescribeSnapshots", e))?;
                    all.extend(page.snapshots().iter().cloned());
                }
            }
        }
        Ok(all)
    }

    /// One snapshot, or `None` if it does not exist.
    pub async fn list_snapshot(&self, id: &str) -> Result<Option<Snapshot>, DriverError> {
        let ec2 = self.ec2().await;
        self.reading().await;
        match ec2.describe_snapshots().snapshot_ids(id).send().await {
            Ok(out) => Ok(out
                .snapshots()
                .iter()
                .find(|s| s.snapshot_id() == Some(id))
                .cloned()),
            Err(e) => match sdk_error("DescribeSnapshots", e) {
                DriverError::NotFound(_) => Ok(None),
                other => Err(other),
            },
        }
    }

    pub async fn delete_snapshot(&self, id: &str) -> Result<(), DriverError> {
        let ec2 = self.ec2().await;
        self.mutating().await;
        ec2.delete_snapshot()
            .snapshot_id(id)
            .send()
            .await
            .map_err(|e| sdk_error("DeleteSnapshot", e))?;
        Ok(())
    }

    // ---- quota ----

    /// vCPUs, cores and memory of an instance type (cached; they never change).
    pub async fn instance_type(&self, name: &str) -> Result<InstanceTypeInfo, DriverError> {
        if let Some(info) = lock(&self.instance_types).get(name) {
            return Ok(*info);
        }
        let ec2 = self.ec2().await;
        self.reading().await;
        let out = ec2
            .describe_instance_types()
            .instance_types(InstanceType::from(name))
            .send()
            .await
            .map_err(|e| sdk_error("DescribeInstanceTypes", e))?;
        let described = out.instance_types().first().ok_or_else(|| {
            DriverError::Fatal(format!(
                "DescribeInstanceTypes: unknown instance type {name}"
            ))
        })?;
        let vcpu = described.v_cpu_info();
        let info = InstanceTypeInfo {
            vcpus: vcpu.and_then(|v| v.default_v_cpus()).unwrap_or(0) as i64,
            cores: vcpu.and_then(|v| v.default_cores()).unwrap_or(0) as i64,
            memory_mib: described
                .memory_info()
                .and_then(|m| m.size_in_mib())
                .unwrap_or(0),
        };
        lock(&self.instance_types).insert(name.to_string(), info);
        Ok(info)
    }

    /// The account's applied service quotas of `service` (`ec2`, `ebs`): code -> value.
    pub async fn service_quotas(
        &self,
        service: &str,
    ) -> Result<BTreeMap<String, f64>, DriverError> {
        let quotas = &self.clients().await.quotas;
        let mut pages = quotas
            .list_service_quotas()
            .service_code(service)
            .into_paginator()
            .send();
        let mut all = BTreeMap::new();
        loop {
            self.mutating().await;
            match pages.next().await {
                None => break,
                Some(page) => {
                    let page = page.map_err(|e| sdk_error("ListServiceQuotas", e))?;
                    for quota in page.quotas() {
                        if let (Some(code), Some(value)) = (quota.quota_code(), quota.value()) {
                            all.insert(code.to_string(), value);
                        }
                    }
                }
            }
        }
        Ok(all)
    }
}

/// The newest of `images` by creation date (ISO 8601 text sorts by time).
pub fn newest_image(images: &[Image]) -> Option<String> {
    images
        .iter()
        .filter(|i| i.image_id().is_some())
        .max_by(|a, b| a.creation_date().cmp(&b.creation_date()))
        .and_then(|i| i.image_id())
        .map(str::to_string)
}

/// The root volume mapping to send: the AMI's first mapping with delete-on-termination
/// forced (so terminating an instance never leaves a volume) and the label's volume
/// settings; `Encrypted` is dropped because it cannot be given for a snapshot-backed AMI.
pub fn root_volume_mapping(image: &Image, plan: &LaunchPlan) -> Option<BlockDeviceMapping> {
    let first = image.block_device_mappings().first()?;
    let ebs = first.ebs()?;
    let mut out = EbsBlockDevice::builder()
        .delete_on_termination(true)
        .set_snapshot_id(ebs.snapshot_id().map(str::to_string))
        .set_volume_size(ebs.volume_size())
        .set_volume_type(ebs.volume_type().cloned())
        .set_iops(ebs.iops())
        .set_throughput(ebs.throughput())
        .set_kms_key_id(ebs.kms_key_id().map(str::to_string));
    if let Some(size) = plan.volume_size {
        out = out.volume_size(size as i32);
    }
    if let Some(t) = &plan.volume_type {
        out = out.volume_type(VolumeType::from(t.as_str()));
    }
    if let Some(iops) = plan.iops {
        out = out.iops(iops as i32);
    }
    if let Some(throughput) = plan.throughput {
        out = out.throughput(throughput as i32);
    }
    Some(
        BlockDeviceMapping::builder()
            .set_device_name(first.device_name().map(str::to_string))
            .ebs(out.build())
            .build(),
    )
}

/// `imdsv2: required|optional` as the instance metadata options.
fn metadata_options(imdsv2: Option<&str>) -> Option<InstanceMetadataOptionsRequest> {
    let tokens = match imdsv2? {
        "required" => aws_sdk_ec2::types::HttpTokensState::Required,
        "optional" => aws_sdk_ec2::types::HttpTokensState::Optional,
        _ => return None,
    };
    Some(
        InstanceMetadataOptionsRequest::builder()
            .http_tokens(tokens)
            .http_endpoint(InstanceMetadataEndpointState::Enabled)
            .build(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_secret_key() {
        let connection = Connection {
            region: "us-east-1".into(),
            profile: None,
            endpoint_url: None,
            static_credentials: Some(("AKIAEXAMPLE".into(), "wJalrXUtnFEMI".into())),
        };
        let shown = format!("{connection:?}");
        assert!(shown.contains("AKIAEXAMPLE"), "{shown}");
        assert!(!shown.contains("wJalrXUtnFEMI"), "{shown}");
    }

    #[test]
    fn newest_image_sorts_by_creation_date() {
        let image =
            |id: &str, date: &str| Image::builder().image_id(id).creation_date(date).build();
        let images = [
            image("ami-1", "2024-01-01T00:00:00.000Z"),
            image("ami-3", "2024-03-01T00:00:00.000Z"),
            image("ami-2", "2024-02-01T00:00:00.000Z"),
        ];
        assert_eq!(newest_image(&images).as_deref(), Some("ami-3"));
        assert_eq!(newest_image(&[]), None);
    }

    #[tokio::test(start_paused = true)]
    async fn rate_limiter_spaces_calls() {
        let limiter = RateLimiter::new(2.0);
        let start = tokio::time::Instant::now();
        for _ in 0..3 {
            limiter.wait().await;
        }
        // Calls at 0, 0.5 and 1.0 s.
        assert!(start.elapsed() >= Duration::from_millis(1000));
    }
}
