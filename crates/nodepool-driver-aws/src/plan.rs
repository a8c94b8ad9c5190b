//! What to ask EC2 for one node: derived from the configuration and the create spec only,
//! so it is checked without a cloud.

use std::collections::BTreeMap;

use nodepool_config::{
    AwsIamProfile, AwsInstance, AwsLabel, AwsPool, CloudImageSource, LabelImage, LabelSettings,
    PoolSettings, Provider as ProviderConfig,
};
use nodepool_driver::{CreateSpec, DriverError, format_dynamic_entries};

use crate::quota::Market;
use crate::tags::instance_tags;

/// Where the AMI comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageRef {
    /// A fixed AMI id: a cloud-image's `image-id`, or an upload's external id.
    Id(String),
    /// A cloud-image's `image-filters`: the newest matching AMI.
    Filters(Vec<(String, Vec<String>)>),
    /// A cloud-image known only by name: looked up by the `name` filter.
    Name(String),
}

/// Everything `RunInstances` (or `CreateFleet`) needs for one node.
#[derive(Debug, Clone, PartialEq)]
pub struct LaunchPlan {
    pub hostname: String,
    pub image: ImageRef,
    pub instance: AwsInstance,
    pub key_name: String,
    pub ebs_optimized: bool,
    pub tags: BTreeMap<String, String>,
    pub security_group_id: Option<String>,
    pub subnet_id: Option<String>,
    pub public_ipv4: bool,
    pub public_ipv6: bool,
    pub availability_zone: Option<String>,
    pub volume_type: Option<String>,
    pub volume_size: Option<i64>,
    pub iops: Option<i64>,
    pub throughput: Option<i64>,
    pub userdata: Option<String>,
    pub iam_instance_profile: Option<AwsIamProfile>,
    pub market: Market,
    pub imdsv2: Option<String>,
    pub dedicated_host: bool,
}

impl LaunchPlan {
    pub fn uses_fleet(&self) -> bool {
        matches!(self.instance, AwsInstance::Fleet { .. })
    }

    /// The instance type when there is exactly one (not a fleet).
    pub fn instance_type(&self) -> Option<&str> {
        match &self.instance {
            AwsInstance::Type(t) => Some(t),
            AwsInstance::Fleet { .. } => None,
        }
    }
}

/// The AWS settings of `label` in `pool`, or why there are none.
pub fn label_settings<'a>(
    config: &'a ProviderConfig,
    pool: &str,
    label: &str,
) -> Result<(&'a AwsPool, &'a nodepool_config::PoolLabel, &'a AwsLabel), DriverError> {
    let pool_config = config.pool(pool).ok_or_else(|| {
        DriverError::Fatal(format!("provider {} has no pool {pool}", config.name))
    })?;
    let PoolSettings::Aws(aws_pool) = &pool_config.settings else {
        return Err(DriverError::Fatal(format!(
            "pool {pool} of provider {} is not an aws pool",
            config.name
        )));
    };
    let label_config = pool_config.labels.get(label).ok_or_else(|| {
        DriverError::Fatal(format!(
            "pool {pool} of provider {} has no label {label}",
            config.name
        ))
    })?;
    let LabelSettings::Aws(aws_label) = &label_config.settings else {
        return Err(DriverError::Fatal(format!(
            "label {label} of provider {} is not an aws label",
            config.name
        )));
    };
    Ok((aws_pool, label_config, aws_label))
}

/// The launch plan for `spec`.
pub fn launch_plan(config: &ProviderConfig, spec: &CreateSpec) -> Result<LaunchPlan, DriverError> {
    let (pool, label_config, label) = label_settings(config, &spec.pool, &spec.label)?;
    let image = match (&spec.image_external_id, &label_config.image) {
        (Some(id), _) => ImageRef::Id(id.clone()),
        (None, LabelImage::CloudImage(name)) => {
            let cloud_image = config.cloud_images.get(name).ok_or_else(|| {
                DriverError::Fatal(format!(
                    "provider {} has no cloud-image {name}",
                    config.name
                ))
            })?;
            match &cloud_image.source {
                CloudImageSource::Id(id) => ImageRef::Id(id.clone()),
                CloudImageSource::Filters(filters) => ImageRef::Filters(filters.clone()),
                CloudImageSource::Name(name) => ImageRef::Name(name.clone()),
                CloudImageSource::Path(path) => {
                    return Err(DriverError::Fatal(format!(
                        "cloud-image {name}: a local path ({}) cannot be launched on AWS",
                        path.display()
                    )));
                }
            }
        }
        (None, LabelImage::Diskimage(name)) => {
            return Err(DriverError::Fatal(format!(
                "label {}: no upload of diskimage {name} was given",
                spec.label
            )));
        }
        (None, LabelImage::None) => {
            return Err(DriverError::Fatal(format!(
                "label {} has no image",
                spec.label
            )));
        }
    };
    let dynamic_tags = format_dynamic_entries(&label.dynamic_tags, spec, "dynamic-tags");
    let tags = instance_tags(&label.tags, &dynamic_tags, &spec.metadata, &spec.hostname);
    Ok(LaunchPlan {
        hostname: spec.hostname.clone(),
        image,
        instance: label.instance.clone(),
        key_name: label.key_name.clone(),
        ebs_optimized: label.ebs_optimized,
        tags,
        security_group_id: pool.security_group_id.clone(),
        subnet_id: pool.subnet_id.clone(),
        public_ipv4: pool.public_ipv4,
        public_ipv6: pool.public_ipv6,
        availability_zone: pool.availability_zone.clone().or_else(|| spec.az.clone()),
        volume_type: label.volume_type.clone(),
        volume_size: label.volume_size,
        iops: label.iops,
        throughput: label.throughput,
        userdata: label.userdata.clone(),
        iam_instance_profile: label.iam_instance_profile.clone(),
        market: if label.use_spot {
            Market::Spot
        } else {
            Market::OnDemand
        },
        imdsv2: label.imdsv2.clone(),
        dedicated_host: label.dedicated_host,
    })
}

/// A stable name for the launch template of a fleet label: the same settings give the same
/// template, so restarts and several launchers share it.
pub fn launch_template_name(plan: &LaunchPlan) -> String {
    use sha2::{Digest, Sha256};
    let mut hasher = Sha256::new();
    let key = format!(
        "{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}",
        plan.key_name,
        plan.security_group_id,
        plan.volume_size,
        plan.volume_type,
        plan.iops,
        plan.throughput,
        plan.imdsv2,
        plan.userdata
    );
    hasher.update(key.as_bytes());
    let digest = hasher.finalize();
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("nodepool-launch-template-{hex}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use nodepool_driver::metadata_keys;

    const CONFIG: &str = r#"
labels:
  - name: small
  - name: fleety
  - name: built
diskimages:
  - name: built-image
providers:
  - name: ec2
    driver: aws
    region-name: us-east-1
    cloud-images:
      - name: by-id
        image-id: ami-1234
        username: zuul
      - name: by-filter
        image-filters:
          - name: name
            values: [ubuntu-*]
        username: zuul
    diskimages:
      - name: built-image
    pools:
      - name: main
        subnet-id: subnet-1
        security-group-id: sg-1
        availability-zone: us-east-1c
        labels:
          - name: small
            cloud-image: by-id
            instance-type: t3.medium
            key-name: zuul
            use-spot: true
            iam-instance-profile:
              name: ci
            tags:
              team: ci
            dynamic-tags:
              tenant: "t-{request.tenant_name}"
              requestor: "{request.requestor}"
              broken: "{request.no_such_attribute}"
          - name: fleety
            cloud-image: by-filter
            key-name: zuul
            fleet:
              instance-types: [t3.medium, t3.large]
              allocation-strategy: prioritized
          - name: built
            diskimage: built-image
            instance-type: t3.micro
            key-name: zuul
"#;

    fn provider() -> ProviderConfig {
        let loaded = nodepool_config::parse_config(
            std::path::Path::new("nodepool.yaml"),
            CONFIG,
            None,
            &nodepool_config::Env::new(),
        )
        .expect("valid config");
        loaded.config.providers["ec2"].clone()
    }

    fn spec(label: &str, image: Option<&str>) -> CreateSpec {
        CreateSpec {
            hostname: "np0000000042".into(),
            pool: "main".into(),
            label: label.into(),
            image_external_id: image.map(str::to_string),
            metadata: [(metadata_keys::NODE_ID.to_string(), "0000000042".to_string())].into(),
            az: None,
            request: None,
        }
    }

    #[test]
    fn a_cloud_image_label_plans_a_spot_instance_in_the_pool_network() {
        let plan = launch_plan(&provider(), &spec("small", None)).expect("plan");
        assert_eq!(plan.image, ImageRef::Id("ami-1234".into()));
        assert_eq!(plan.instance_type(), Some("t3.medium"));
        assert_eq!(plan.market, Market::Spot);
        assert_eq!(plan.subnet_id.as_deref(), Some("subnet-1"));
        assert_eq!(plan.security_group_id.as_deref(), Some("sg-1"));
        assert_eq!(plan.availability_zone.as_deref(), Some("us-east-1c"));
        assert_eq!(
            plan.iam_instance_profile,
            Some(AwsIamProfile::Name("ci".into()))
        );
        assert_eq!(plan.tags["Name"], "np0000000042");
        assert_eq!(plan.tags["team"], "ci");
        assert_eq!(plan.tags[metadata_keys::NODE_ID], "0000000042");
        assert!(!plan.uses_fleet());
    }

    #[test]
    fn dynamic_tags_are_filled_from_the_request_and_unfillable_ones_left_out() {
        let request = nodepool_driver::RequestAttributes {
            id: "100-0000000007".into(),
            labels: vec!["small".into()],
            requestor: Some("zuul-scheduler".into()),
            requestor_data: serde_json::Value::Null,
            relative_priority: 0,
            event_id: Some("e1".into()),
            created_time: None,
            tenant_name: Some("openstack".into()),
        };
        let plan = launch_plan(
            &provider(),
            &CreateSpec {
                request: Some(request),
                ..spec("small", None)
            },
        )
        .expect("plan");
        assert_eq!(plan.tags["tenant"], "t-openstack");
        assert_eq!(plan.tags["requestor"], "zuul-scheduler");
        assert!(!plan.tags.contains_key("broken"));
        assert_eq!(plan.tags["team"], "ci");
        // Without a request only the templates that do not name it could be filled.
        let plan = launch_plan(&provider(), &spec("small", None)).expect("plan");
        assert!(!plan.tags.contains_key("tenant"));
        assert_eq!(plan.tags["Name"], "np0000000042");
    }

    #[test]
    fn fleets_filters_and_uploads() {
        let config = provider();
        let fleet = launch_plan(&config, &spec("fleety", None)).expect("plan");
        assert!(fleet.uses_fleet());
        assert_eq!(fleet.instance_type(), None);
        assert_eq!(
            fleet.image,
            ImageRef::Filters(vec![("name".into(), vec!["ubuntu-*".into()])])
        );
        // The template name depends on the settings only, not on the node.
        let other = launch_plan(
            &config,
            &CreateSpec {
                hostname: "np0000000043".into(),
                ..spec("fleety", None)
            },
        )
        .expect("plan");
        assert_eq!(launch_template_name(&fleet), launch_template_name(&other));
        assert!(launch_template_name(&fleet).starts_with("nodepool-launch-template-"));

        let built = launch_plan(&config, &spec("built", Some("ami-built"))).expect("plan");
        assert_eq!(built.image, ImageRef::Id("ami-built".into()));
        assert!(launch_plan(&config, &spec("built", None)).is_err());
        assert!(launch_plan(&config, &spec("nope", None)).is_err());
    }
}
