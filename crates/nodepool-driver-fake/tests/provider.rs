//! The fake provider built from parsed configuration, driven like the launcher drives it.

use std::path::Path;
use std::sync::Arc;

use nodepool_config::{Config, Env, FakeFaults, parse_config};
use nodepool_driver::{
    CreateMachine, CreateSpec, DeleteMachine, Driver, DriverError, DriverRegistry, ImageUploadSpec,
    Instance, Metadata, Provider, metadata_keys,
};
use nodepool_driver_fake::{FakeCloud, FakeDriver, QUOTA_EXCEEDED, ServerStatus};
use nodepool_model::ExternalId;

/// A configuration with one fake provider called `fake-provider`; `extra` is added to the
/// provider section (indented by four spaces).
fn config(extra: &str) -> Config {
    let text = format!(
        r#"
zookeeper-servers:
  - host: localhost
labels:
  - name: small
  - name: unreal
  - name: huge
  - name: v6
  - name: missing
  - name: by-id
providers:
  - name: fake-provider
    driver: fake
    cloud: fake-cloud
    region-name: fake-region
{extra}
    cloud-images:
      - name: precise
        image-name: Fake Precise
      - name: missing
        image-name: No Such Image
      - name: by-id
        image-id: some-image-id
    pools:
      - name: main
        labels:
          - name: small
            cloud-image: precise
            min-ram: 1024
          - name: unreal
            cloud-image: precise
            flavor-name: Unreal Flavor
          - name: huge
            cloud-image: precise
            flavor-name: Huge Flavor
          - name: missing
            cloud-image: missing
            min-ram: 1024
          - name: by-id
            cloud-image: by-id
            min-ram: 1024
      - name: ipv6
        networks:
          - fake-ipv6-network-name
        labels:
          - name: v6
            cloud-image: precise
            min-ram: 1024
"#
    );
    match parse_config(Path::new("nodepool.yaml"), &text, None, &Env::new()) {
        Ok(loaded) => loaded.config,
        Err(errors) => panic!("{errors}"),
    }
}

fn build(driver: &FakeDriver, config: &Config) -> Arc<dyn Provider> {
    driver
        .build(&config.providers["fake-provider"])
        .expect("provider")
}

fn spec(node_id: &str, pool: &str, label: &str) -> CreateSpec {
    CreateSpec {
        hostname: format!("np{node_id}"),
        pool: pool.into(),
        label: label.into(),
        image_external_id: None,
        metadata: Metadata::from([
            (metadata_keys::NODE_ID.to_string(), node_id.to_string()),
            (metadata_keys::POOL_NAME.to_string(), pool.to_string()),
            (
                metadata_keys::PROVIDER_NAME.to_string(),
                "fake-provider".to_string(),
            ),
        ]),
        az: None,
        request: None,
    }
}

/// Advances until the instance is complete, waiting as long as the machine asks.
async fn create(machine: &mut Box<dyn CreateMachine>) -> Result<Instance, DriverError> {
    loop {
        if let Some(instance) = machine.advance().await? {
            return Ok(instance);
        }
        tokio::time::sleep(machine.poll_after()).await;
    }
}

async fn delete(machine: &mut Box<dyn DeleteMachine>) -> Result<(), DriverError> {
    while !machine.advance().await? {
        tokio::time::sleep(machine.poll_after()).await;
    }
    Ok(())
}

fn id(instance: &Instance) -> ExternalId {
    instance.external_id.clone().expect("external id")
}

#[tokio::test]
async fn create_and_delete_run_through_their_states() {
    let driver = FakeDriver::new();
    let provider = build(&driver, &config(""));
    let cloud = driver.cloud("fake-provider").expect("cloud");
    assert_eq!(provider.name(), "fake-provider");

    let mut spec = spec("0000000001", "main", "small");
    spec.az = Some("az2".into());
    let mut machine = provider.create_machine(spec.clone());
    assert_eq!(machine.state(), "start");
    assert_eq!(machine.external_id(), None);
    assert_eq!(machine.advance().await, Ok(None));
    assert_eq!(machine.state(), "creating server");
    let Some(ExternalId::Id(server_id)) = machine.external_id() else {
        panic!("the external id is known once the server exists");
    };
    let server = cloud.server(&server_id).expect("the server exists");
    assert_eq!(server.name, "np0000000001");
    for (key, value) in &spec.metadata {
        assert_eq!(server.metadata.get(key), Some(value), "{key}");
    }
    assert_eq!(
        server.metadata.get("groups").map(String::as_str),
        Some("fake-provider,precise,small")
    );

    let instance = create(&mut machine).await.expect("instance");
    assert_eq!(machine.state(), "complete");
    assert_eq!(
        instance.external_id,
        Some(ExternalId::Id(server_id.clone()))
    );
    assert_eq!(instance.interface_ip.as_deref(), Some("fake"));
    assert_eq!(instance.public_ipv4.as_deref(), Some("fake"));
    assert_eq!(instance.private_ipv4.as_deref(), Some("fake"));
    assert_eq!(instance.public_ipv6.as_deref(), Some(""));
    assert_eq!(instance.host_id.as_deref(), Some("fake"));
    assert_eq!(instance.cloud.as_deref(), Some("fake-cloud"));
    assert_eq!(instance.region.as_deref(), Some("fake-region"));
    assert_eq!(instance.az.as_deref(), Some("az2"));
    assert_eq!(instance.node_id(), Some("0000000001"));
    assert_eq!(instance.provider_name(), Some("fake-provider"));
    let resources = instance.resources.clone().expect("resources");
    assert_eq!(
        (
            resources.get("instances"),
            resources.get("cores"),
            resources.get("ram")
        ),
        (1.0, 4.0, 8192.0)
    );
    assert_eq!(cloud.creates(), 1);

    let mut deleter = provider.delete_machine(&id(&instance));
    assert_eq!(deleter.state(), "start");
    delete(&mut deleter).await.expect("deleted");
    assert_eq!(deleter.state(), "complete");
    assert!(cloud.servers().is_empty());
    assert_eq!(cloud.deletes(), 1);

    let mut again = provider.delete_machine(&id(&instance));
    assert!(matches!(
        again.advance().await,
        Err(DriverError::NotFound(_))
    ));
}

#[tokio::test]
async fn delays_are_waited_for() {
    let driver = FakeDriver::new();
    let provider = build(
        &driver,
        &config("    fake-faults:\n      create-delay: 0.05\n      delete-delay: 0.05"),
    );
    let cloud = driver.cloud("fake-provider").expect("cloud");
    let mut machine = provider.create_machine(spec("1", "main", "small"));
    assert_eq!(machine.advance().await, Ok(None));
    assert!(machine.poll_after() > std::time::Duration::from_millis(10));
    let Some(ExternalId::Id(server_id)) = machine.external_id() else {
        panic!("external id");
    };
    assert_eq!(
        cloud.server(&server_id).map(|s| s.status),
        Some(ServerStatus::Build)
    );
    let instance = create(&mut machine).await.expect("active after the delay");

    let mut deleter = provider.delete_machine(&id(&instance));
    assert_eq!(deleter.advance().await, Ok(false));
    assert_eq!(deleter.state(), "deleting server");
    assert_eq!(
        cloud.server(&server_id).map(|s| s.status),
        Some(ServerStatus::Deleting)
    );
    delete(&mut deleter).await.expect("gone after the delay");
    assert!(cloud.servers().is_empty());
}

#[tokio::test]
async fn default_quota_is_twenty_instances() {
    let driver = FakeDriver::new();
    let provider = build(&driver, &config(""));
    let limits = provider.quota_limits().await.expect("limits");
    assert_eq!(
        (
            limits.get("instances"),
            limits.get("cores"),
            limits.get("ram")
        ),
        (20.0, 100.0, 1_000_000.0)
    );
    for n in 0..20 {
        let mut machine = provider.create_machine(spec(&n.to_string(), "main", "small"));
        create(&mut machine).await.expect("within quota");
    }
    let mut machine = provider.create_machine(spec("20", "main", "small"));
    assert_eq!(
        machine.advance().await,
        Err(DriverError::Quota(QUOTA_EXCEEDED.into()))
    );
    assert_eq!(
        driver
            .cloud("fake-provider")
            .expect("cloud")
            .servers()
            .len(),
        20
    );
}

#[tokio::test]
async fn fake_quota_limits_instances() {
    let driver = FakeDriver::new();
    let provider = build(&driver, &config("    fake-quota:\n      instances: 2"));
    assert_eq!(
        provider
            .quota_limits()
            .await
            .expect("limits")
            .get("instances"),
        2.0
    );
    for n in 0..2 {
        let mut machine = provider.create_machine(spec(&n.to_string(), "main", "small"));
        create(&mut machine).await.expect("within quota");
    }
    let mut machine = provider.create_machine(spec("2", "main", "small"));
    assert!(matches!(
        create(&mut machine).await,
        Err(DriverError::Quota(_))
    ));
}

#[tokio::test]
async fn injected_faults_count_down() {
    let driver = FakeDriver::new();
    let provider = build(
        &driver,
        &config(
            "    fake-faults:\n      launch-failures: 2\n      quota-errors: 1\n      \
             delete-failures: 1\n      api-errors: 2\n      upload-failures: 1",
        ),
    );
    let cloud = driver.cloud("fake-provider").expect("cloud");
    assert_eq!(cloud.faults_left().launch_failures, 2);

    let mut machine = provider.create_machine(spec("1", "main", "small"));
    assert!(matches!(
        machine.advance().await,
        Err(DriverError::Quota(_))
    ));
    let mut failed = Vec::new();
    for n in 2..4 {
        let mut machine = provider.create_machine(spec(&n.to_string(), "main", "small"));
        assert_eq!(
            create(&mut machine).await,
            Err(DriverError::Fatal("Server in error state".into()))
        );
        failed.push(machine.external_id().expect("the failed server is known"));
    }
    let mut machine = provider.create_machine(spec("4", "main", "small"));
    create(&mut machine).await.expect("faults are used up");
    assert_eq!(cloud.creates(), 3, "the quota error made no server");
    let errored = cloud
        .servers()
        .iter()
        .filter(|s| s.status == ServerStatus::Error)
        .count();
    assert_eq!(errored, 2);

    let mut deleter = provider.delete_machine(&failed[0]);
    assert!(matches!(
        deleter.advance().await,
        Err(DriverError::Transient(_))
    ));
    assert_eq!(deleter.state(), "start", "a failed delete is retried");
    delete(&mut deleter).await.expect("second try deletes");

    for _ in 0..2 {
        assert!(matches!(
            provider.list_instances().await,
            Err(DriverError::Transient(_))
        ));
    }
    assert_eq!(provider.list_instances().await.expect("listing").len(), 2);

    let upload = ImageUploadSpec {
        image_name: "debian".into(),
        external_name: "debian-0000000001".into(),
        path: "/nonexistent".into(),
        format: "qcow2".into(),
        metadata: Metadata::new(),
        md5: None,
        sha256: None,
    };
    assert!(provider.upload_image(&upload).await.is_err());
    provider.upload_image(&upload).await.expect("second upload");

    let left = cloud.faults_left();
    assert_eq!(
        (
            left.launch_failures,
            left.quota_errors,
            left.delete_failures,
            left.api_errors,
            left.upload_failures
        ),
        (0, 0, 0, 0, 0)
    );
}

#[tokio::test(start_paused = true)]
async fn configured_fault_rates_reach_every_call_and_are_counted() {
    let driver = FakeDriver::new();
    let provider = build(
        &driver,
        &config(
            "    fake-faults:\n      api-error-rate: 1\n      hung-call-rate: 0\n      \
             fault-seed: 9",
        ),
    );
    let cloud = driver.cloud("fake-provider").expect("cloud");
    let leaked = cloud.insert_server("np0000000099", Metadata::new());
    let mut machine = provider.create_machine(spec("1", "main", "small"));
    assert_eq!(
        machine.advance().await,
        Err(DriverError::Transient("injected API error".into()))
    );
    assert_eq!(machine.state(), "start");
    assert!(matches!(
        provider.list_instances().await,
        Err(DriverError::Transient(_))
    ));
    assert!(matches!(
        provider.list_resources().await,
        Err(DriverError::Transient(_))
    ));
    let mut deleter = provider.delete_machine(&ExternalId::Id(leaked.clone()));
    assert!(matches!(
        deleter.advance().await,
        Err(DriverError::Transient(_))
    ));
    assert_eq!(
        provider.console_log(&ExternalId::Id(leaked.clone())).await,
        None
    );
    assert_eq!(cloud.faults_injected().api_errors, 5);
    assert_eq!(cloud.servers().len(), 1, "nothing was created or deleted");

    // A hung-call-rate of 1: every create and delete hangs.
    let provider = build(
        &driver,
        &config("    fake-faults:\n      hung-call-rate: 1"),
    );
    let hour = std::time::Duration::from_secs(3600);
    let mut hung = provider.create_machine(spec("2", "main", "small"));
    assert!(tokio::time::timeout(hour, hung.advance()).await.is_err());
    let mut hung = provider.delete_machine(&ExternalId::Id(leaked));
    assert!(tokio::time::timeout(hour, hung.advance()).await.is_err());
    let injected = cloud.faults_injected();
    assert_eq!(
        (
            injected.hung_creates,
            injected.hung_deletes,
            injected.api_errors
        ),
        (1, 1, 5),
        "the tally outlives the reload"
    );
}

#[tokio::test(start_paused = true)]
async fn hung_creates_and_deletes_never_answer_and_change_nothing() {
    let driver = FakeDriver::new();
    let provider = build(
        &driver,
        &config("    fake-faults:\n      hung-creates: 1\n      hung-deletes: 1"),
    );
    let cloud = driver.cloud("fake-provider").expect("cloud");
    let hour = std::time::Duration::from_secs(3600);

    let mut hung = provider.create_machine(spec("1", "main", "small"));
    assert!(
        tokio::time::timeout(hour, hung.advance()).await.is_err(),
        "the first create never answers"
    );
    assert_eq!((hung.external_id(), cloud.creates()), (None, 0));
    let mut machine = provider.create_machine(spec("2", "main", "small"));
    let instance = create(&mut machine).await.expect("the next create answers");

    let mut hung = provider.delete_machine(&id(&instance));
    assert!(
        tokio::time::timeout(hour, hung.advance()).await.is_err(),
        "the first delete never answers"
    );
    assert_eq!(cloud.servers().len(), 1, "the hung delete deleted nothing");
    let mut deleter = provider.delete_machine(&id(&instance));
    delete(&mut deleter).await.expect("the next delete answers");
    assert!(cloud.servers().is_empty());
    let left = cloud.faults_left();
    assert_eq!((left.hung_creates, left.hung_deletes), (0, 0));
}

#[tokio::test]
async fn flavors_follow_the_label() {
    let driver = FakeDriver::new();
    let provider = build(&driver, &config(""));
    let small = provider
        .quota_for_label("main", "small")
        .await
        .expect("small");
    assert_eq!((small.get("cores"), small.get("ram")), (4.0, 8192.0));
    let unreal = provider
        .quota_for_label("main", "unreal")
        .await
        .expect("unreal");
    assert_eq!(
        (
            unreal.get("instances"),
            unreal.get("cores"),
            unreal.get("ram")
        ),
        (1.0, 4.0, 8192.0)
    );
    assert!(matches!(
        provider.quota_for_label("main", "huge").await,
        Err(DriverError::Fatal(_))
    ));
    let mut machine = provider.create_machine(spec("1", "main", "unreal"));
    create(&mut machine).await.expect("unreal");
    let cloud = driver.cloud("fake-provider").expect("cloud");
    assert_eq!(cloud.servers()[0].flavor, "Unreal Flavor");
    let mut machine = provider.create_machine(spec("2", "main", "huge"));
    assert!(matches!(
        machine.advance().await,
        Err(DriverError::Fatal(_))
    ));
}

#[tokio::test]
async fn availability_zones_and_addresses() {
    let driver = FakeDriver::new();
    let provider = build(&driver, &config(""));
    assert_eq!(provider.availability_zones(), vec!["az1", "az2"]);
    let mut spec_az3 = spec("1", "main", "small");
    spec_az3.az = Some("az3".into());
    let mut machine = provider.create_machine(spec_az3);
    assert!(matches!(
        machine.advance().await,
        Err(DriverError::Fatal(_))
    ));

    let mut machine = provider.create_machine(spec("2", "ipv6", "v6"));
    let instance = create(&mut machine).await.expect("instance");
    assert_eq!(instance.interface_ip.as_deref(), Some("fake_v6"));
}

#[tokio::test]
async fn cloud_images_are_ready_when_the_cloud_has_them() {
    let driver = FakeDriver::new();
    let provider = build(&driver, &config(""));
    assert!(provider.label_ready("main", "small").await);
    assert!(provider.label_ready("main", "by-id").await);
    assert!(!provider.label_ready("main", "missing").await);
    assert!(!provider.label_ready("main", "no-such-label").await);
    let cloud = driver.cloud("fake-provider").expect("cloud");
    let image = cloud
        .upload_image("No Such Image", Metadata::new())
        .expect("upload");
    assert!(provider.label_ready("main", "missing").await);
    provider.delete_image(&image.id).await.expect("delete");
    assert!(!provider.label_ready("main", "missing").await);
    assert!(matches!(
        provider.delete_image(&image.id).await,
        Err(DriverError::NotFound(_))
    ));
}

#[tokio::test]
async fn resources_carry_metadata_for_leak_cleanup() {
    let driver = FakeDriver::new();
    let provider = build(&driver, &config(""));
    let cloud = driver.cloud("fake-provider").expect("cloud");
    let mut machine = provider.create_machine(spec("1", "main", "small"));
    let instance = create(&mut machine).await.expect("instance");
    let leaked = cloud.insert_server(
        "np0000000099",
        Metadata::from([
            (metadata_keys::NODE_ID.to_string(), "0000000099".to_string()),
            (
                metadata_keys::PROVIDER_NAME.to_string(),
                "fake-provider".to_string(),
            ),
        ]),
    );
    let upload = ImageUploadSpec {
        image_name: "debian".into(),
        external_name: "debian-0000000001".into(),
        path: "/nonexistent".into(),
        format: "qcow2".into(),
        metadata: Metadata::from([
            (
                metadata_keys::BUILD_ID.to_string(),
                "0000000001".to_string(),
            ),
            (
                metadata_keys::UPLOAD_ID.to_string(),
                "0000000002".to_string(),
            ),
            (
                metadata_keys::PROVIDER_NAME.to_string(),
                "fake-provider".to_string(),
            ),
        ]),
        md5: None,
        sha256: None,
    };
    let image_id = provider.upload_image(&upload).await.expect("upload");

    let resources = provider.list_resources().await.expect("resources");
    let kinds: Vec<(&str, &str)> = resources
        .iter()
        .map(|r| (r.kind.as_str(), r.id.as_str()))
        .collect();
    let Some(ExternalId::Id(created)) = instance.external_id.clone() else {
        panic!("id");
    };
    assert_eq!(
        kinds,
        vec![
            ("instance", created.as_str()),
            ("instance", leaked.as_str()),
            ("image", "fake-image-id"),
            ("image", image_id.as_str()),
        ]
    );
    let leaked_resource = &resources[1];
    assert_eq!(
        leaked_resource
            .metadata
            .get(metadata_keys::NODE_ID)
            .map(String::as_str),
        Some("0000000099")
    );
    assert_eq!(resources[3].metadata, upload.metadata);

    let instances = provider.list_instances().await.expect("instances");
    assert_eq!(instances.len(), 2);
    assert_eq!(instances[1].node_id(), Some("0000000099"));
    assert_eq!(
        instances[1].resources.as_ref().map(|q| q.get("cores")),
        Some(4.0),
        "unmanaged instances count their flavor"
    );

    provider
        .delete_resource(leaked_resource)
        .await
        .expect("delete leaked instance");
    provider
        .delete_resource(&resources[3])
        .await
        .expect("delete leaked image");
    let left: Vec<String> = provider
        .list_resources()
        .await
        .expect("resources")
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(left, vec![created, "fake-image-id".to_string()]);
}

#[tokio::test]
async fn a_reloaded_provider_keeps_its_cloud() {
    let driver = FakeDriver::new();
    let first = build(
        &driver,
        &config("    fake-faults:\n      delete-failures: 1"),
    );
    let cloud = driver.cloud("fake-provider").expect("cloud");
    let mut machine = first.create_machine(spec("1", "main", "small"));
    let instance = create(&mut machine).await.expect("instance");
    let mut deleter = first.delete_machine(&id(&instance));
    assert!(deleter.advance().await.is_err(), "the one delete failure");

    let second = build(
        &driver,
        &config("    fake-quota:\n      instances: 1\n    fake-faults:\n      delete-failures: 1"),
    );
    let reloaded = driver.cloud("fake-provider").expect("cloud");
    assert!(Arc::ptr_eq(&cloud, &reloaded), "the same cloud");
    assert_eq!(
        second
            .quota_limits()
            .await
            .expect("limits")
            .get("instances"),
        1.0,
        "quota follows the new config"
    );
    assert_eq!(
        reloaded.faults_left(),
        nodepool_driver_fake::FaultCounts::default(),
        "unchanged faults are not injected again"
    );
    assert_eq!(second.list_instances().await.expect("list").len(), 1);
    let mut deleter = second.delete_machine(&id(&instance));
    delete(&mut deleter)
        .await
        .expect("deleted through the new provider");
    assert!(driver.cloud("other").is_none());
}

#[tokio::test]
async fn servers_survive_in_the_state_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("fake-cloud.json");
    let extra = format!("    fake-state: {}", path.display());

    // A launcher makes a server, then is killed (its driver dropped without cleanup).
    let created = {
        let driver = FakeDriver::new();
        let provider = build(&driver, &config(&extra));
        let mut machine = provider.create_machine(spec("1", "main", "small"));
        machine.advance().await.expect("submitted");
        machine.external_id().expect("external id")
    };
    assert!(path.exists());

    // The restarted launcher sees it, finished, and can delete it.
    let driver = FakeDriver::new();
    let provider = build(&driver, &config(&extra));
    let cloud = driver.cloud("fake-provider").expect("cloud");
    assert_eq!(cloud.state_file(), Some(path.as_path()));
    let servers = cloud.servers();
    assert_eq!(servers.len(), 1);
    assert_eq!(
        Some(ExternalId::Id(servers[0].id.clone())),
        Some(created.clone())
    );
    assert_eq!(servers[0].status, ServerStatus::Active);
    assert_eq!(
        servers[0]
            .metadata
            .get(metadata_keys::NODE_ID)
            .map(String::as_str),
        Some("1")
    );
    let mut deleter = provider.delete_machine(&created);
    delete(&mut deleter).await.expect("deleted");
    drop(driver);

    let driver = FakeDriver::new();
    build(&driver, &config(&extra));
    assert!(
        driver
            .cloud("fake-provider")
            .expect("cloud")
            .servers()
            .is_empty()
    );
}

#[test]
fn two_clouds_on_one_state_file_see_the_same_servers_and_images() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut settings = FakeCloud::default_settings();
    settings.state_file = Some(dir.path().join("cloud.json"));
    settings.faults = FakeFaults::default();

    let first = FakeCloud::new(&settings).expect("first");
    let server = first.insert_server("np1", Metadata::new());
    let image = first
        .upload_image(
            "debian",
            Metadata::from([("k".to_string(), "v".to_string())]),
        )
        .expect("upload");
    drop(first);

    let second = FakeCloud::new(&settings).expect("second");
    assert_eq!(
        second.servers().iter().map(|s| &s.id).collect::<Vec<_>>(),
        vec![&server]
    );
    assert_eq!(second.images().len(), 2);
    assert_eq!(second.images()[1], image);
    assert!(second.remove_server(&server));
    second.delete_image(&image.id).expect("delete image");

    let third = FakeCloud::new(&settings).expect("third");
    assert!(third.servers().is_empty());
    assert_eq!(
        third
            .images()
            .iter()
            .map(|i| i.name.as_str())
            .collect::<Vec<_>>(),
        vec!["Fake Precise"]
    );
}

#[test]
fn the_registry_builds_fake_providers() {
    let mut registry = DriverRegistry::new();
    let driver = Arc::new(FakeDriver::new());
    registry.register(driver.clone());
    let config = config("");
    let provider = registry
        .build(&config.providers["fake-provider"])
        .expect("provider");
    assert_eq!(provider.name(), "fake-provider");
    assert!(driver.cloud("fake-provider").is_some());
}

#[tokio::test]
async fn the_corpus_file_builds_a_provider() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../nodepool-config/tests/corpus/valid/fake-provider.yaml");
    let loaded = nodepool_config::load_config(&path, None, &Env::new()).expect("valid");
    let driver = FakeDriver::new();
    let provider = driver
        .build(&loaded.config.providers["fake-provider"])
        .expect("provider");
    let quota = provider.quota_for_label("main", "fake-label").await;
    assert_eq!(
        quota
            .expect("min-ram 8192 with a name containing `Fake`")
            .get("ram"),
        8192.0
    );
}
