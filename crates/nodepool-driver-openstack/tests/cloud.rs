//! The driver against the real local OpenStack of `scripts/openstack/` (started here when it
//! is not running). Each test works in a project of its own.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use nodepool_config::{Env, Provider as ProviderConfig, parse_config};
use nodepool_driver::{
    CreateSpec, DriverError, ImageUploadSpec, Instance, Provider, RequestAttributes, metadata_keys,
    run_delete_machine,
};
use nodepool_driver_openstack::testing::{self, TestProject};
use nodepool_driver_openstack::{
    OpenStackClient, OpenStackProvider, ProviderOptions, Service, clouds,
};
use nodepool_model::ExternalId;
use serde_json::{Value, json};

const CLOUD: &str = "np-test";

async fn setup(prefix: &str) -> TestProject {
    tokio::task::spawn_blocking(testing::ensure_cloud)
        .await
        .expect("ensure task")
        .expect("the local OpenStack runs");
    testing::ensure_test_image().await.expect("test image");
    TestProject::create(prefix).await.expect("test project")
}

fn provider_config(extra_provider: &str, pool: &str, labels: &str) -> ProviderConfig {
    let text = format!(
        "labels:\n  - name: tiny\n  - name: by-ram\n  - name: fip\nproviders:\n  - name: os\n    cloud: {CLOUD}\n    rate: 0.001\n{extra_provider}    cloud-images:\n      - name: test-image\n        image-name: {}\n        username: cirros\n    pools:\n      - name: main\n        host-key-checking: false\n{pool}        labels:\n{labels}",
        testing::TEST_IMAGE
    );
    let loaded = parse_config(Path::new("nodepool.yaml"), &text, None, &Env::new())
        .unwrap_or_else(|e| panic!("config: {e:?}\n{text}"));
    loaded.config.providers["os"].clone()
}

fn default_config() -> ProviderConfig {
    provider_config(
        "",
        "        networks: [public]\n        auto-floating-ip: false\n",
        "          - name: tiny\n            cloud-image: test-image\n            flavor-name: m1.tiny\n            instance-properties:\n              team: np\n              count: 3\n            dynamic-instance-properties:\n              count: \"{request.relative_priority}\"\n              zuul-tenant: \"{request.tenant_name}\"\n              zuul-event: \"event-{request.event_id}\"\n              broken: \"{request.no_such_attribute}\"\n          - name: by-ram\n            cloud-image: test-image\n            min-ram: 1024\n",
    )
}

fn provider(
    project: &TestProject,
    config: &ProviderConfig,
    page_size: Option<u32>,
) -> OpenStackProvider {
    let options = ProviderOptions {
        clouds_file: None,
        page_size,
    };
    OpenStackProvider::with_cloud(config, project.cloud(CLOUD), &options).expect("provider")
}

fn spec(id: &str, label: &str) -> CreateSpec {
    CreateSpec {
        hostname: format!("np{id}"),
        pool: "main".into(),
        label: label.into(),
        image_external_id: None,
        metadata: BTreeMap::from([
            (metadata_keys::NODE_ID.to_string(), id.to_string()),
            (metadata_keys::POOL_NAME.to_string(), "main".to_string()),
            (metadata_keys::PROVIDER_NAME.to_string(), "os".to_string()),
        ]),
        az: None,
        request: None,
    }
}

/// Drives a create machine to its instance, as the launcher does.
async fn create(provider: &OpenStackProvider, spec: CreateSpec) -> Result<Instance, DriverError> {
    let mut machine = provider.create_machine(spec);
    let began = Instant::now();
    loop {
        if let Some(instance) = machine.advance().await? {
            assert_eq!(machine.state(), "complete");
            return Ok(instance);
        }
        assert!(machine.external_id().is_some() || machine.state() == "start");
        assert!(
            began.elapsed() < Duration::from_secs(120),
            "create still in {} after 120 s",
            machine.state()
        );
        tokio::time::sleep(machine.poll_after()).await;
    }
}

fn server_id(instance: &Instance) -> String {
    match &instance.external_id {
        Some(ExternalId::Id(id)) => id.clone(),
        other => panic!("external id {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_and_application_credential_auth_reach_the_catalog() {
    let project = setup("np-auth").await;
    let client = project.client().expect("client");
    assert_eq!(
        client.project_id().await.expect("token").as_deref(),
        Some(project.project_id.as_str())
    );
    for service in [Service::Compute, Service::Image, Service::Network] {
        assert!(client.endpoint(service).await.expect("catalog").is_some());
    }
    assert_eq!(
        client.endpoint(Service::Volume).await.expect("catalog"),
        None
    );
    let flavors = client
        .get(Service::Compute, "/flavors")
        .await
        .expect("flavors");
    assert!(flavors["flavors"].as_array().is_some_and(|f| !f.is_empty()));

    // An application credential of the project's user, read through clouds.yaml.
    let user = client.user_id().await.expect("user").expect("user id");
    let created = client
        .post(
            Service::Identity,
            &format!("/users/{user}/application_credentials"),
            &json!({"application_credential": {"name": "np-test-ac"}}),
        )
        .await
        .expect("application credential");
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("clouds.yaml");
    std::fs::write(
        &path,
        format!(
            "clouds:\n  ac:\n    auth_type: v3applicationcredential\n    region_name: RegionOne\n    auth:\n      auth_url: {}\n      application_credential_id: {}\n      application_credential_secret: {}\n",
            testing::AUTH_URL,
            created["application_credential"]["id"].as_str().expect("id"),
            created["application_credential"]["secret"].as_str().expect("secret"),
        ),
    )
    .expect("write clouds.yaml");
    let cloud = clouds::load_cloud("ac", None, Some(&path)).expect("cloud");
    let ac = OpenStackClient::new(cloud, 0.0).expect("client");
    assert_eq!(
        ac.project_id().await.expect("token").as_deref(),
        Some(project.project_id.as_str())
    );
    let servers = ac.get(Service::Compute, "/servers").await.expect("servers");
    assert!(servers["servers"].is_array());

    // A wrong password is a fatal error naming the request.
    let mut bad = project.cloud("bad");
    if let clouds::Credentials::Password { password, .. } = &mut bad.credentials {
        *password = "wrong".into();
    }
    let err = OpenStackClient::new(bad, 0.0)
        .expect("client")
        .get(Service::Compute, "/servers")
        .await
        .expect_err("refused");
    assert!(
        matches!(&err, DriverError::Fatal(m) if m.contains("POST identity /auth/tokens") && m.contains("401")),
        "{err:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn servers_are_created_listed_in_pages_and_deleted() {
    let project = setup("np-servers").await;
    let config = default_config();
    let p = provider(&project, &config, Some(1));

    // Quota and per-label needs.
    let limits = p.quota_limits().await.expect("limits");
    assert_eq!(limits.get("instances"), 10.0);
    assert_eq!(limits.get("cores"), 20.0);
    assert_eq!(limits.get("ram"), 51200.0);
    assert!(
        limits.get("volumes").is_infinite(),
        "no cinder, no volume limit"
    );
    let tiny = p.quota_for_label("main", "tiny").await.expect("tiny");
    assert_eq!((tiny.get("cores"), tiny.get("ram")), (1.0, 512.0));
    let by_ram = p.quota_for_label("main", "by-ram").await.expect("by-ram");
    assert_eq!(by_ram.get("ram"), 2048.0, "min-ram 1024 takes m1.small");
    assert!(p.label_ready("main", "tiny").await);
    assert_eq!(p.availability_zones(), vec!["nova".to_string()]);

    let request = RequestAttributes {
        id: "100-0000000009".into(),
        labels: vec!["tiny".into()],
        requestor: Some("zuul-scheduler".into()),
        requestor_data: Value::Null,
        relative_priority: -2,
        event_id: Some("abc123".into()),
        created_time: Some(1_732_550_000.25),
        tenant_name: Some("example-tenant".into()),
    };
    let tiny_for_request = CreateSpec {
        request: Some(request),
        ..spec("0000000001", "tiny")
    };
    let (a, b) = tokio::join!(
        create(&p, tiny_for_request),
        create(&p, spec("0000000002", "by-ram"))
    );
    let (a, b) = (a.expect("tiny server"), b.expect("by-ram server"));
    for (instance, node_id) in [(&a, "0000000001"), (&b, "0000000002")] {
        let ip = instance.interface_ip.clone().expect("interface ip");
        assert!(ip.starts_with("127.43.0."), "public network address: {ip}");
        assert_eq!(instance.public_ipv4.as_deref(), Some(ip.as_str()));
        assert_eq!(instance.private_ipv4.as_deref(), Some(ip.as_str()));
        assert_eq!(instance.cloud.as_deref(), Some(CLOUD));
        assert_eq!(instance.region, None);
        assert_eq!(instance.az.as_deref(), Some("nova"));
        assert!(instance.host_id.is_some());
        assert_eq!(instance.metadata[metadata_keys::NODE_ID], node_id);
        assert_eq!(instance.metadata[metadata_keys::PROVIDER_NAME], "os");
    }
    assert_eq!(a.metadata["groups"], "os,test-image,tiny");
    assert_eq!(a.metadata["team"], "np");
    // Dynamic properties are filled from the request and win over the static ones; one
    // that cannot be filled is left out.
    assert_eq!(a.metadata["count"], "-2");
    assert_eq!(a.metadata["zuul-tenant"], "example-tenant");
    assert_eq!(a.metadata["zuul-event"], "event-abc123");
    assert!(!a.metadata.contains_key("broken"), "{:?}", a.metadata);
    assert_eq!(a.resources.as_ref().map(|q| q.get("ram")), Some(512.0));
    assert_eq!(b.resources.as_ref().map(|q| q.get("ram")), Some(2048.0));

    // Nova's view: names, flavors.
    let client = project.client().expect("client");
    let server = client
        .get(Service::Compute, &format!("/servers/{}", server_id(&a)))
        .await
        .expect("server");
    assert_eq!(server["server"]["name"], "np0000000001");
    assert_eq!(
        server["server"]["metadata"]["zuul-tenant"],
        "example-tenant"
    );
    assert_eq!(
        server["server"]["metadata"][metadata_keys::NODE_ID],
        "0000000001"
    );

    // Listing in pages of one finds both, with their quota from the embedded flavor.
    let listed = p.list_instances().await.expect("list");
    assert_eq!(listed.len(), 2);
    let ram: Vec<f64> = {
        let mut r: Vec<f64> = listed
            .iter()
            .map(|i| {
                i.resources
                    .as_ref()
                    .map(|q| q.get("ram"))
                    .unwrap_or_default()
            })
            .collect();
        r.sort_by(f64::total_cmp);
        r
    };
    assert_eq!(ram, vec![512.0, 2048.0]);
    let resources = p.list_resources().await.expect("resources");
    assert_eq!(resources.iter().filter(|r| r.kind == "instance").count(), 2);

    let limits = client
        .get(Service::Compute, "/limits")
        .await
        .expect("limits");
    assert_eq!(limits["limits"]["absolute"]["totalInstancesUsed"], 2);

    // Delete through the delete machine; a second delete finds nothing.
    for instance in [&a, &b] {
        let external = instance.external_id.clone().expect("id");
        run_delete_machine(&p, &external, Duration::from_secs(120))
            .await
            .expect("deleted");
    }
    assert!(p.list_instances().await.expect("list").is_empty());
    let mut again = p.delete_machine(&ExternalId::Id(server_id(&a)));
    assert!(matches!(
        again.advance().await,
        Err(DriverError::NotFound(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_floating_ip_is_attached_on_a_private_network_and_deleted_with_the_server() {
    let project = setup("np-fip").await;
    let config = provider_config(
        "",
        "        networks: [private]\n",
        "          - name: fip\n            cloud-image: test-image\n            flavor-name: m1.tiny\n",
    );
    let p = provider(&project, &config, None);
    let instance = create(&p, spec("0000000003", "fip")).await.expect("server");
    let private = instance.private_ipv4.clone().expect("private");
    let public = instance.public_ipv4.clone().expect("public");
    assert!(private.starts_with("127.42.0."), "{private}");
    assert!(public.starts_with("127.43.0."), "{public}");
    assert_eq!(instance.interface_ip.as_deref(), Some(public.as_str()));
    let client = project.client().expect("client");
    let fips = client
        .get(
            Service::Network,
            &format!("/floatingips?floating_ip_address={public}"),
        )
        .await
        .expect("fips");
    assert_eq!(fips["floatingips"].as_array().map(Vec::len), Some(1));

    let external = instance.external_id.clone().expect("id");
    run_delete_machine(&p, &external, Duration::from_secs(120))
        .await
        .expect("deleted");
    let fips = client
        .get(
            Service::Network,
            &format!("/floatingips?floating_ip_address={public}"),
        )
        .await
        .expect("fips");
    assert_eq!(fips["floatingips"].as_array().map(Vec::len), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_made_behind_nodepools_back_is_listed_and_removed() {
    let project = setup("np-leak").await;
    let config = default_config();
    let p = provider(&project, &config, None);
    let client = project.client().expect("client");
    let image = testing::ensure_test_image().await.expect("image");
    let flavors = client
        .get(Service::Compute, "/flavors")
        .await
        .expect("flavors");
    let flavor = flavors["flavors"]
        .as_array()
        .and_then(|f| f.iter().find(|f| f["name"] == testing::TINY))
        .and_then(|f| f["id"].as_str())
        .expect("m1.tiny")
        .to_string();
    let networks = client
        .get(Service::Network, "/networks?name=public")
        .await
        .expect("nets");
    let network = networks["networks"][0]["id"]
        .as_str()
        .expect("public")
        .to_string();
    let created = client
        .post(
            Service::Compute,
            "/servers",
            &json!({"server": {"name": "leaked", "imageRef": image, "flavorRef": flavor,
                "networks": [{"uuid": network}],
                "metadata": {"nodepool_node_id": "0000009999", "nodepool_provider_name": "os",
                    "nodepool_pool_name": "main"}}}),
        )
        .await
        .expect("server");
    let id = created["server"]["id"].as_str().expect("id").to_string();

    let resources = p.list_resources().await.expect("resources");
    let leaked = resources
        .iter()
        .find(|r| r.id == id)
        .expect("the leaked server is listed");
    assert_eq!(leaked.kind, "instance");
    assert_eq!(leaked.metadata[metadata_keys::NODE_ID], "0000009999");
    p.delete_resource(leaked).await.expect("deleted");
    let began = Instant::now();
    loop {
        match client
            .get(Service::Compute, &format!("/servers/{id}"))
            .await
        {
            Err(DriverError::NotFound(_)) => break,
            Ok(s) if s["server"]["status"] == "DELETED" => break,
            _ => {}
        }
        assert!(
            began.elapsed() < Duration::from_secs(60),
            "server still there"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // Deleting what is gone is fine.
    p.delete_resource(leaked).await.expect("already gone");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn images_are_uploaded_with_properties_and_checksums_and_deleted() {
    let project = setup("np-glance").await;
    let config = default_config();
    let p = provider(&project, &config, None);
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("image.qcow2");
    testing::make_qcow2(&file, "16M").expect("qcow2");
    let (md5, sha256) = nodepool_driver_openstack::file_checksums(&file).expect("sums");
    let spec = ImageUploadSpec {
        image_name: "ubuntu".into(),
        external_name: "ubuntu-1700000000".into(),
        path: file.clone(),
        format: "qcow2".into(),
        metadata: BTreeMap::from([
            (
                metadata_keys::BUILD_ID.to_string(),
                "0000000007".to_string(),
            ),
            (
                metadata_keys::UPLOAD_ID.to_string(),
                "0000000001".to_string(),
            ),
            (metadata_keys::PROVIDER_NAME.to_string(), "os".to_string()),
            ("distro".to_string(), "ubuntu".to_string()),
        ]),
        md5: None,
        sha256: None,
    };
    let id = p.upload_image(&spec).await.expect("uploaded");
    let client = project.client().expect("client");
    let image = client
        .get(Service::Image, &format!("/images/{id}"))
        .await
        .expect("image");
    assert_eq!(image["status"], "active");
    assert_eq!(image["name"], "ubuntu-1700000000");
    assert_eq!(image["disk_format"], "qcow2");
    assert_eq!(image["visibility"], "private");
    assert_eq!(image["checksum"], Value::from(md5.clone()));
    assert_eq!(
        image["owner_specified.openstack.sha256"],
        Value::from(sha256)
    );
    assert_eq!(image["distro"], "ubuntu");
    assert_eq!(image["nodepool_build_id"], "0000000007");
    assert_eq!(image["size"], std::fs::metadata(&file).expect("size").len());

    // Listed as this provider's image with its tags, so leak cleanup can judge it.
    let resources = p.list_resources().await.expect("resources");
    let listed = resources.iter().find(|r| r.id == id).expect("image listed");
    assert_eq!(listed.kind, "image");
    assert_eq!(listed.metadata[metadata_keys::UPLOAD_ID], "0000000001");

    // A wrong checksum fails the upload and leaves no image.
    let bad = ImageUploadSpec {
        external_name: "ubuntu-bad".into(),
        md5: Some("0".repeat(32)),
        sha256: Some("0".repeat(64)),
        ..spec.clone()
    };
    let err = p.upload_image(&bad).await.expect_err("checksum mismatch");
    assert!(
        matches!(&err, DriverError::Fatal(m) if m.contains("checksum")),
        "{err:?}"
    );
    let named = client
        .get(Service::Image, "/images?name=ubuntu-bad")
        .await
        .expect("list");
    assert_eq!(named["images"].as_array().map(Vec::len), Some(0));

    p.delete_image(&id).await.expect("deleted");
    assert!(matches!(
        client.get(Service::Image, &format!("/images/{id}")).await,
        Err(DriverError::NotFound(_))
    ));
    p.delete_image(&id).await.expect("deleting twice is fine");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quota_errors_and_server_faults_are_typed() {
    let project = setup("np-quota").await;
    project
        .set_compute_quota(&json!({"instances": 1}))
        .await
        .expect("quota");
    let config = default_config();
    let p = provider(&project, &config, None);
    let limits = p.quota_limits().await.expect("limits");
    assert_eq!(limits.get("instances"), 1.0);
    let first = create(&p, spec("0000000011", "tiny"))
        .await
        .expect("first fits");
    let err = create(&p, spec("0000000012", "tiny"))
        .await
        .expect_err("over quota");
    assert!(
        matches!(&err, DriverError::Quota(m) if m.contains("POST compute /servers")),
        "{err:?}"
    );

    // Console log of a server (the fake virt driver's canned output).
    let log = p
        .console_log(first.external_id.as_ref().expect("id"))
        .await
        .expect("console");
    assert!(log.contains("FAKE CONSOLE OUTPUT"), "{log}");

    // A label whose flavor does not exist fails at the first step, before any server.
    let bad = provider_config(
        "",
        "        networks: [public]\n",
        "          - name: tiny\n            cloud-image: test-image\n            flavor-name: m9.huge\n",
    );
    let pb = provider(&project, &bad, None);
    assert!(pb.quota_for_label("main", "tiny").await.is_err());
    let mut machine = pb.create_machine(spec("0000000013", "tiny"));
    assert!(matches!(machine.advance().await, Err(DriverError::Fatal(m)) if m.contains("m9.huge")));
    assert_eq!(machine.external_id(), None);
    project.delete_servers().await.expect("cleanup");
}
