//! The aws driver against a real local moto server: instances with tags, listing, delete,
//! quota, leak cleanup and image upload by EBS direct.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use aws_sdk_ec2::types::{
    BlockDeviceMapping, EbsBlockDevice, Filter, ResourceType, Tag, TagSpecification,
};
use nodepool_driver::{
    CreateSpec, DriverError, ImageUploadSpec, Instance, Metadata, Provider, RequestAttributes,
    metadata_keys,
};
use nodepool_driver_aws::testing::{ACCESS_KEY, MotoServer, REGION, SECRET_KEY};
use nodepool_driver_aws::{AwsDriver, AwsProvider, parse_external_id, resource_kinds};

const TIMEOUT: Duration = Duration::from_secs(60);

struct Cloud {
    _moto: MotoServer,
    provider: AwsProvider,
    ec2: aws_sdk_ec2::Client,
    image_id: String,
}

fn config(endpoint: &str, image_id: &str, extra_provider: &str) -> String {
    format!(
        r##"
labels:
  - name: small
  - name: spotty
  - name: fleety
  - name: built
  - name: unknown-type
  - name: on-host
diskimages:
  - name: built-image
  - name: imported-image
providers:
  - name: ec2
    driver: aws
    region-name: {REGION}
    endpoint-url: {endpoint}
    rate: 200
{extra_provider}
    cloud-images:
      - name: test-image
        image-id: {image_id}
        username: zuul
      - name: by-filter
        image-filters:
          - name: name
            values: [nodepool-test-image]
        username: zuul
    diskimages:
      - name: built-image
        import-method: ebs-direct
        volume-type: gp3
        tags:
          team: images
      - name: imported-image
        import-method: snapshot
    pools:
      - name: main
        max-servers: 10
        labels:
          - name: small
            cloud-image: test-image
            instance-type: t3.medium
            key-name: zuul
            volume-type: gp3
            volume-size: 20
            userdata: "#!/bin/sh\necho hi\n"
            tags:
              team: ci
              tenant: fixed
            dynamic-tags:
              tenant: "{{request.tenant_name}}"
              zuul-event: "event-{{request.event_id}}"
              zuul-labels: "{{request.labels}}"
              zuul-requestor-data: "{{request.requestor_data}}"
              broken: "{{request.no_such_attribute}}"
          - name: spotty
            cloud-image: by-filter
            instance-type: t3.large
            key-name: zuul
            use-spot: true
            imdsv2: required
          - name: fleety
            cloud-image: test-image
            key-name: zuul
            fleet:
              instance-types: [t3.medium, t3.large]
              allocation-strategy: prioritized
          - name: built
            diskimage: built-image
            instance-type: t3.micro
            key-name: zuul
          - name: unknown-type
            cloud-image: test-image
            instance-type: zz9.mega
            key-name: zuul
      - name: hosts
        availability-zone: us-east-1b
        labels:
          - name: on-host
            cloud-image: test-image
            instance-type: m5.large
            key-name: zuul
            dedicated-host: true
"##
    )
}

/// A moto server with one registered AMI (named `nodepool-test-image`) and a provider.
async fn cloud(extra_provider: &str) -> Cloud {
    let moto = MotoServer::start().expect("start moto_server (scripts/setup.sh installs it)");
    let driver = AwsDriver::with_static_credentials(ACCESS_KEY, SECRET_KEY);
    // A provider without images first, to reach the EC2 client and register one.
    let bootstrap = provider(
        &driver,
        &config(&moto.endpoint(), "ami-00000000", extra_provider),
    );
    let ec2 = bootstrap.cloud().ec2().await.clone();
    let image_id = register_test_image(&ec2).await;
    let provider = provider(
        &driver,
        &config(&moto.endpoint(), &image_id, extra_provider),
    );
    Cloud {
        _moto: moto,
        provider,
        ec2,
        image_id,
    }
}

fn provider(driver: &AwsDriver, yaml: &str) -> AwsProvider {
    let loaded = nodepool_config::parse_config(
        Path::new("nodepool.yaml"),
        yaml,
        None,
        &nodepool_config::Env::new(),
    )
    .expect("valid config");
    driver
        .build_aws(&loaded.config.providers["ec2"])
        .expect("provider")
}

async fn register_test_image(ec2: &aws_sdk_ec2::Client) -> String {
    nodepool_driver_aws::testing::register_test_image(ec2, "nodepool-test-image")
        .await
        .expect("register the test image")
}

fn metadata(node_id: &str) -> Metadata {
    [
        (metadata_keys::NODE_ID.to_string(), node_id.to_string()),
        (metadata_keys::POOL_NAME.to_string(), "main".to_string()),
        (metadata_keys::PROVIDER_NAME.to_string(), "ec2".to_string()),
    ]
    .into()
}

fn spec(node_id: &str, label: &str, image: Option<&str>) -> CreateSpec {
    CreateSpec {
        hostname: format!("np{node_id}"),
        pool: "main".into(),
        label: label.into(),
        image_external_id: image.map(str::to_string),
        metadata: metadata(node_id),
        az: None,
        request: None,
    }
}

/// Drives a create machine to the end, checking the external id appears before completion.
async fn create(provider: &AwsProvider, spec: CreateSpec) -> Result<Instance, DriverError> {
    let mut machine = provider.create_machine(spec);
    let began = Instant::now();
    loop {
        if let Some(instance) = machine.advance().await? {
            assert!(machine.external_id().is_some());
            return Ok(instance);
        }
        assert!(
            began.elapsed() < TIMEOUT,
            "create stuck in {}",
            machine.state()
        );
        tokio::time::sleep(machine.poll_after().min(Duration::from_millis(100))).await;
    }
}

async fn delete(provider: &AwsProvider, instance: &Instance) {
    let external = instance.external_id.clone().expect("external id");
    nodepool_driver::run_delete_machine(provider, &external, TIMEOUT)
        .await
        .expect("delete");
}

fn instance_id(instance: &Instance) -> String {
    parse_external_id(instance.external_id.as_ref().expect("external id"))
        .0
        .expect("instance id")
}

async fn describe(ec2: &aws_sdk_ec2::Client, id: &str) -> aws_sdk_ec2::types::Instance {
    ec2.describe_instances()
        .instance_ids(id)
        .send()
        .await
        .expect("describe")
        .reservations()[0]
        .instances()[0]
        .clone()
}

fn tags_of(tags: &[Tag]) -> BTreeMap<String, String> {
    tags.iter()
        .map(|t| {
            (
                t.key().unwrap_or("").to_string(),
                t.value().unwrap_or("").to_string(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_list_and_delete_an_instance_with_tags() {
    let c = cloud("").await;
    let request = RequestAttributes {
        id: "200-0000000005".into(),
        labels: vec!["small".into(), "spotty".into()],
        requestor: Some("zuul-scheduler".into()),
        requestor_data: serde_json::json!({"job": "tox"}),
        relative_priority: 0,
        event_id: Some("c0ffee".into()),
        created_time: Some(1_732_550_000.5),
        tenant_name: Some("example-tenant".into()),
    };
    let for_request = CreateSpec {
        request: Some(request),
        ..spec("0000000001", "small", None)
    };
    let instance = create(&c.provider, for_request).await.expect("create");
    let id = instance_id(&instance);
    assert_eq!(instance.cloud.as_deref(), Some("AWS"));
    assert_eq!(instance.region.as_deref(), Some(REGION));
    assert!(instance.private_ipv4.is_some(), "{instance:?}");
    assert!(instance.interface_ip.is_some());
    assert!(
        instance
            .az
            .as_deref()
            .is_some_and(|az| az.starts_with(REGION))
    );
    assert_eq!(instance.node_id(), Some("0000000001"));
    let props = instance.node_properties.clone().expect("node properties");
    assert_eq!(props["fleet"], serde_json::Value::Bool(false));
    assert_eq!(props["spot"], serde_json::Value::Bool(false));
    let resources = instance.resources.clone().expect("resources");
    assert_eq!(resources.get("cores"), 1.0);
    assert_eq!(resources.get("ram"), 4096.0);

    let described = describe(&c.ec2, &id).await;
    assert_eq!(
        described.instance_type().map(|t| t.as_str()),
        Some("t3.medium")
    );
    assert_eq!(described.image_id(), Some(c.image_id.as_str()));
    assert_eq!(described.key_name(), Some("zuul"));
    let tags = tags_of(described.tags());
    assert_eq!(tags["Name"], "np0000000001");
    assert_eq!(tags["team"], "ci");
    assert_eq!(tags[metadata_keys::NODE_ID], "0000000001");
    assert_eq!(tags[metadata_keys::POOL_NAME], "main");
    assert_eq!(tags[metadata_keys::PROVIDER_NAME], "ec2");
    // Dynamic tags are filled from the request and win over a label tag; one that cannot
    // be filled is left out.
    assert_eq!(tags["tenant"], "example-tenant");
    assert_eq!(tags["zuul-event"], "event-c0ffee");
    assert_eq!(tags["zuul-labels"], "['small', 'spotty']");
    assert_eq!(tags["zuul-requestor-data"], "{'job': 'tox'}");
    assert!(!tags.contains_key("broken"), "{tags:?}");
    // The root volume: the label's type and size, tagged like the instance.
    let volumes = c
        .ec2
        .describe_volumes()
        .filters(
            Filter::builder()
                .name("attachment.instance-id")
                .values(&id)
                .build(),
        )
        .send()
        .await
        .expect("volumes");
    let volume = &volumes.volumes()[0];
    assert_eq!(volume.volume_type().map(|t| t.as_str()), Some("gp3"));
    assert_eq!(volume.size(), Some(20));
    assert_eq!(tags_of(volume.tags())["Name"], "np0000000001");
    assert_eq!(tags_of(volume.tags())["tenant"], "example-tenant");

    let listed = c.provider.list_instances().await.expect("list");
    let mine = listed
        .iter()
        .find(|i| i.external_id == instance.external_id)
        .expect("listed");
    assert_eq!(mine.node_id(), Some("0000000001"));
    assert_eq!(mine.provider_name(), Some("ec2"));
    let used = mine.resources.clone().expect("resources");
    assert_eq!(used.get("instances"), 1.0);
    assert_eq!(used.get("L-1216C47A"), 2.0);
    assert_eq!(used.get("L-7A658B76"), 20.0);

    delete(&c.provider, &instance).await;
    let listed = c.provider.list_instances().await.expect("list");
    assert!(listed.iter().all(|i| i.external_id != instance.external_id));
    // Deleting again: the instance is gone, which counts as done.
    delete(&c.provider, &instance).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_launch_attempt_terminates_what_an_earlier_attempt_of_its_node_made() {
    let c = cloud("").await;
    let other_node = create(&c.provider, spec("0000000020", "small", None))
        .await
        .expect("another node's instance");
    // An attempt whose RunInstances answer never reached the launcher: the instance exists,
    // tagged with the node, but no node record names it.
    let mut lost = c.provider.create_machine(spec("0000000021", "small", None));
    let began = Instant::now();
    let lost_id = loop {
        lost.advance().await.expect("advance");
        if let Some(external) = lost.external_id() {
            break parse_external_id(&external).0.expect("instance id");
        }
        assert!(began.elapsed() < TIMEOUT, "stuck in {}", lost.state());
    };
    drop(lost);
    let retried = create(&c.provider, spec("0000000021", "small", None))
        .await
        .expect("the next attempt");
    assert_ne!(instance_id(&retried), lost_id);
    let state = |i: aws_sdk_ec2::types::Instance| {
        i.state()
            .and_then(|s| s.name())
            .map(|n| n.as_str().to_string())
            .unwrap_or_default()
    };
    let lost_state = state(describe(&c.ec2, &lost_id).await);
    assert!(
        lost_state == "terminated" || lost_state == "shutting-down",
        "the earlier attempt's instance is {lost_state}"
    );
    assert_eq!(
        state(describe(&c.ec2, &instance_id(&retried)).await),
        "running"
    );
    assert_eq!(
        state(describe(&c.ec2, &instance_id(&other_node)).await),
        "running",
        "other nodes' instances are left alone"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spot_with_image_filters_and_fleet() {
    let c = cloud("").await;
    let spot = create(&c.provider, spec("0000000002", "spotty", None))
        .await
        .expect("spot");
    let described = describe(&c.ec2, &instance_id(&spot)).await;
    assert_eq!(described.image_id(), Some(c.image_id.as_str()));
    assert_eq!(
        described.instance_type().map(|t| t.as_str()),
        Some("t3.large")
    );
    assert_eq!(spot.node_properties.as_ref().expect("props")["spot"], true);
    assert_eq!(
        spot.resources
            .as_ref()
            .expect("resources")
            .get("L-34B43A08"),
        2.0
    );

    let fleet = create(&c.provider, spec("0000000003", "fleety", None))
        .await
        .expect("fleet");
    let described = describe(&c.ec2, &instance_id(&fleet)).await;
    assert_eq!(tags_of(described.tags())["Name"], "np0000000003");
    assert_eq!(
        fleet.node_properties.as_ref().expect("props")["fleet"],
        true
    );
    // The launch template is reused by the next fleet node.
    let again = create(&c.provider, spec("0000000004", "fleety", None))
        .await
        .expect("fleet again");
    for i in [&spot, &fleet, &again] {
        delete(&c.provider, i).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quota_for_labels_and_limits() {
    let c = cloud("").await;
    let small = c
        .provider
        .quota_for_label("main", "small")
        .await
        .expect("small");
    assert_eq!(small.get("instances"), 1.0);
    assert_eq!(small.get("cores"), 1.0);
    assert_eq!(small.get("ram"), 4096.0);
    assert_eq!(small.get("L-1216C47A"), 2.0);
    assert_eq!(small.get("L-7A658B76"), 20.0);
    let spotty = c
        .provider
        .quota_for_label("main", "spotty")
        .await
        .expect("spotty");
    assert_eq!(spotty.get("L-34B43A08"), 2.0);
    assert_eq!(spotty.get("L-1216C47A"), 0.0);
    let fleety = c
        .provider
        .quota_for_label("main", "fleety")
        .await
        .expect("fleety");
    assert_eq!(fleety, nodepool_driver::Quota::one_instance());
    // An instance type EC2 does not know makes the label unavailable.
    assert!(
        c.provider
            .quota_for_label("main", "unknown-type")
            .await
            .is_err()
    );
    // moto serves no service quotas: the account is taken as unlimited.
    let limits = c.provider.quota_limits().await.expect("limits");
    assert!(limits.get("L-1216C47A").is_infinite());
    assert!(limits.get("instances").is_infinite());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leaked_instances_volumes_snapshots_and_images_are_listed_and_deleted() {
    let c = cloud("").await;
    // A leaked instance: made by nodepool, its node record gone.
    let leaked = create(&c.provider, spec("0000000009", "small", None))
        .await
        .expect("create");
    let leaked_id = instance_id(&leaked);
    // A leaked volume, snapshot and AMI of an upload.
    let tags: Vec<Tag> = [
        (metadata_keys::PROVIDER_NAME, "ec2"),
        (metadata_keys::BUILD_ID, "0000000001"),
        (metadata_keys::UPLOAD_ID, "0000000001"),
    ]
    .iter()
    .map(|(k, v)| Tag::builder().key(*k).value(*v).build())
    .collect();
    let volume = c
        .ec2
        .create_volume()
        .availability_zone("us-east-1a")
        .size(1)
        .tag_specifications(
            TagSpecification::builder()
                .resource_type(ResourceType::Volume)
                .set_tags(Some(tags.clone()))
                .build(),
        )
        .send()
        .await
        .expect("volume");
    let volume_id = volume.volume_id().expect("id").to_string();
    let snapshot = c
        .ec2
        .create_snapshot()
        .volume_id(&volume_id)
        .tag_specifications(
            TagSpecification::builder()
                .resource_type(ResourceType::Snapshot)
                .set_tags(Some(tags.clone()))
                .build(),
        )
        .send()
        .await
        .expect("snapshot");
    let snapshot_id = snapshot.snapshot_id().expect("id").to_string();
    let image = c
        .ec2
        .register_image()
        .name("leaked-upload")
        .root_device_name("/dev/sda1")
        .block_device_mappings(
            BlockDeviceMapping::builder()
                .device_name("/dev/sda1")
                .ebs(EbsBlockDevice::builder().snapshot_id(&snapshot_id).build())
                .build(),
        )
        .tag_specifications(
            TagSpecification::builder()
                .resource_type(ResourceType::Image)
                .set_tags(Some(tags.clone()))
                .build(),
        )
        .send()
        .await
        .expect("image");
    let image_id = image.image_id().expect("id").to_string();
    // moto ignores RegisterImage's tag specifications.
    c.ec2
        .create_tags()
        .resources(&image_id)
        .set_tags(Some(tags.clone()))
        .send()
        .await
        .expect("tag image");

    let resources = c.provider.list_resources().await.expect("list");
    let find = |kind: &str, id: &str| {
        resources
            .iter()
            .find(|r| r.kind == kind && r.id == id)
            .cloned()
            .unwrap_or_else(|| panic!("{kind} {id} not listed in {resources:?}"))
    };
    let instance = find(resource_kinds::INSTANCE, &leaked_id);
    assert_eq!(instance.metadata[metadata_keys::NODE_ID], "0000000009");
    let root_volume = resources
        .iter()
        .find(|r| {
            r.kind == resource_kinds::VOLUME
                && r.metadata.get(metadata_keys::NODE_ID).map(String::as_str) == Some("0000000009")
        })
        .cloned()
        .expect("the instance's root volume is tagged");
    let volume = find(resource_kinds::VOLUME, &volume_id);
    let snapshot = find(resource_kinds::SNAPSHOT, &snapshot_id);
    let ami = find(resource_kinds::AMI, &image_id);
    assert_eq!(ami.metadata[metadata_keys::UPLOAD_ID], "0000000001");
    assert_eq!(snapshot.metadata[metadata_keys::BUILD_ID], "0000000001");
    // The test image is not ours: no nodepool tags.
    let test_image = find(resource_kinds::AMI, &c.image_id);
    assert!(
        !test_image
            .metadata
            .contains_key(metadata_keys::PROVIDER_NAME)
    );

    for resource in [&instance, &volume, &ami, &snapshot] {
        c.provider.delete_resource(resource).await.expect("delete");
    }
    let resources = c.provider.list_resources().await.expect("list");
    for gone in [&instance, &volume, &ami, &snapshot] {
        assert!(
            !resources
                .iter()
                .any(|r| r.kind == gone.kind && r.id == gone.id),
            "{gone:?} still listed"
        );
    }
    // The root volume goes with its instance (delete-on-termination).
    let _ = root_volume;
    // Deleting what is gone is NotFound.
    assert!(matches!(
        c.provider.delete_resource(&volume).await,
        Err(DriverError::NotFound(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_by_ebs_direct_launch_and_delete_the_image() {
    let c = cloud("").await;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("built-image-0000000001.raw");
    // Three blocks: data, zeros (skipped), a short tail.
    let block = nodepool_driver_aws::EBS_BLOCK_SIZE;
    let mut data = vec![7u8; block];
    data.extend(vec![0u8; block]);
    data.extend(vec![9u8; 1000]);
    std::fs::write(&path, &data).expect("write image");
    let mut metadata = Metadata::new();
    metadata.insert(metadata_keys::PROVIDER_NAME.into(), "ec2".into());
    metadata.insert(metadata_keys::BUILD_ID.into(), "0000000001".into());
    metadata.insert(metadata_keys::UPLOAD_ID.into(), "0000000002".into());
    metadata.insert("team".into(), "images".into());
    let upload = ImageUploadSpec {
        image_name: "built-image".into(),
        external_name: "built-image-1700000000".into(),
        path: path.clone(),
        format: "raw".into(),
        metadata: metadata.clone(),
        md5: None,
        sha256: None,
    };
    let image_id = c.provider.upload_image(&upload).await.expect("upload");
    let images = c
        .ec2
        .describe_images()
        .image_ids(&image_id)
        .send()
        .await
        .expect("describe image");
    let image = &images.images()[0];
    assert_eq!(image.name(), Some("built-image-1700000000"));
    assert_eq!(image.root_device_name(), Some("/dev/sda1"));
    assert_eq!(
        tags_of(image.tags())[metadata_keys::UPLOAD_ID],
        "0000000002"
    );
    assert_eq!(tags_of(image.tags())["team"], "images");
    // The snapshot written by EBS direct: 1 GiB, tagged as the upload. (moto registers
    // the AMI over a copy of its own, so it is found by its tags, not the AMI's mapping.)
    let uploaded_snapshot = |resources: &[nodepool_driver::Resource]| {
        resources
            .iter()
            .find(|r| {
                r.kind == resource_kinds::SNAPSHOT
                    && r.metadata.get(metadata_keys::UPLOAD_ID).map(String::as_str)
                        == Some("0000000002")
            })
            .map(|r| r.id.clone())
    };
    let resources = c.provider.list_resources().await.expect("list");
    let snapshot_id = uploaded_snapshot(&resources).expect("the uploaded snapshot is tagged");
    let snapshots = c
        .ec2
        .describe_snapshots()
        .snapshot_ids(&snapshot_id)
        .send()
        .await
        .expect("describe snapshot");
    let snapshot = &snapshots.snapshots()[0];
    assert_eq!(snapshot.volume_size(), Some(1));
    assert_eq!(
        tags_of(snapshot.tags())[metadata_keys::BUILD_ID],
        "0000000001"
    );
    assert_eq!(tags_of(snapshot.tags())["team"], "images");

    // A diskimage label boots from the upload.
    let instance = create(&c.provider, spec("0000000005", "built", Some(&image_id)))
        .await
        .expect("create from upload");
    assert_eq!(
        describe(&c.ec2, &instance_id(&instance)).await.image_id(),
        Some(image_id.as_str())
    );
    delete(&c.provider, &instance).await;

    c.provider
        .delete_image(&image_id)
        .await
        .expect("delete image");
    let resources = c.provider.list_resources().await.expect("list");
    assert!(!resources.iter().any(|r| r.id == image_id));
    assert_eq!(uploaded_snapshot(&resources), None);
    assert!(matches!(
        c.provider.delete_image(&image_id).await,
        Err(DriverError::NotFound(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn launching_from_a_missing_ami_fails_naming_the_call() {
    let c = cloud("").await;
    // RunInstances with an AMI that does not exist fails naming the call.
    let error = create(
        &c.provider,
        spec("0000000006", "built", Some("ami-12345678")),
    )
    .await
    .expect_err("no such AMI");
    assert!(error.to_string().contains("DescribeImages"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imdsv2_and_userdata_reach_the_instance() {
    let c = cloud("").await;
    let spot = create(&c.provider, spec("0000000010", "spotty", None))
        .await
        .expect("spot");
    let described = describe(&c.ec2, &instance_id(&spot)).await;
    assert_eq!(
        described
            .metadata_options()
            .and_then(|m| m.http_tokens())
            .map(|t| t.as_str()),
        Some("required")
    );
    let small = create(&c.provider, spec("0000000011", "small", None))
        .await
        .expect("small");
    let attribute = c
        .ec2
        .describe_instance_attribute()
        .instance_id(instance_id(&small))
        .attribute(aws_sdk_ec2::types::InstanceAttributeName::UserData)
        .send()
        .await
        .expect("user data");
    use base64::Engine;
    let encoded = attribute
        .user_data()
        .and_then(|u| u.value())
        .expect("user data set");
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .expect("base64");
    assert_eq!(decoded, b"#!/bin/sh\necho hi\n");
    for i in [&spot, &small] {
        delete(&c.provider, i).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dedicated_host_is_allocated_and_released_with_its_instance() {
    let c = cloud("").await;
    let mut s = spec("0000000012", "on-host", None);
    s.pool = "hosts".into();
    let instance = create(&c.provider, s).await.expect("on host");
    let (instance_id, host_id) =
        parse_external_id(instance.external_id.as_ref().expect("external id"));
    let host_id = host_id.expect("the external id names the host");
    let described = describe(&c.ec2, &instance_id.expect("instance")).await;
    assert_eq!(
        described.placement().and_then(|p| p.host_id()),
        Some(host_id.as_str())
    );
    assert_eq!(
        described.placement().and_then(|p| p.availability_zone()),
        Some("us-east-1b")
    );
    let resources = c.provider.list_resources().await.expect("list");
    let host = resources
        .iter()
        .find(|r| r.kind == resource_kinds::HOST && r.id == host_id)
        .expect("the host is listed");
    assert_eq!(host.metadata[metadata_keys::NODE_ID], "0000000012");
    delete(&c.provider, &instance).await;
    let resources = c.provider.list_resources().await.expect("list");
    assert!(!resources.iter().any(|r| r.id == host_id));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_legacy_string_external_id_is_deleted() {
    let c = cloud("").await;
    let instance = create(&c.provider, spec("0000000013", "small", None))
        .await
        .expect("create");
    let legacy = nodepool_model::ExternalId::Id(instance_id(&instance));
    nodepool_driver::run_delete_machine(&c.provider, &legacy, TIMEOUT)
        .await
        .expect("delete");
    let listed = c.provider.list_instances().await.expect("list");
    assert!(listed.iter().all(|i| i.external_id != instance.external_id));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_import_goes_through_s3_and_cleans_up_when_aws_refuses() {
    let c = cloud("    object-storage:\n      bucket-name: nodepool-images\n").await;
    let s3 = c.provider.cloud().clients().await.s3.clone();
    s3.create_bucket()
        .bucket("nodepool-images")
        .send()
        .await
        .expect("bucket");
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("imported-image-0000000001.vmdk");
    std::fs::write(&path, b"not really a disk").expect("write image");
    let mut metadata = Metadata::new();
    metadata.insert(metadata_keys::PROVIDER_NAME.into(), "ec2".into());
    metadata.insert(metadata_keys::BUILD_ID.into(), "0000000001".into());
    metadata.insert(metadata_keys::UPLOAD_ID.into(), "0000000003".into());
    let upload = ImageUploadSpec {
        image_name: "imported-image".into(),
        external_name: "imported-image-1700000000".into(),
        path,
        format: "vmdk".into(),
        metadata,
        md5: None,
        sha256: None,
    };
    // moto has no ImportSnapshot: the error names the call, and the S3 object the import
    // would have read is gone again.
    let error = c
        .provider
        .upload_image(&upload)
        .await
        .expect_err("moto cannot import");
    assert!(error.to_string().contains("ImportSnapshot"), "{error}");
    let objects = s3
        .list_objects_v2()
        .bucket("nodepool-images")
        .send()
        .await
        .expect("list objects");
    assert!(objects.contents().is_empty(), "{objects:?}");
    // A leaked object (tagged) is listed and deleted like any other resource.
    s3.put_object()
        .bucket("nodepool-images")
        .key("leaked.raw")
        .tagging("nodepool_provider_name=ec2&nodepool_build_id=1&nodepool_upload_id=2")
        .body(aws_sdk_s3::primitives::ByteStream::from_static(b"x"))
        .send()
        .await
        .expect("put");
    let resources = c.provider.list_resources().await.expect("list");
    let object = resources
        .iter()
        .find(|r| r.kind == resource_kinds::OBJECT)
        .expect("object listed")
        .clone();
    assert_eq!(object.id, "leaked.raw");
    assert_eq!(object.metadata[metadata_keys::UPLOAD_ID], "2");
    c.provider.delete_resource(&object).await.expect("delete");
    let objects = s3
        .list_objects_v2()
        .bucket("nodepool-images")
        .send()
        .await
        .expect("list objects");
    assert!(objects.contents().is_empty());
}
