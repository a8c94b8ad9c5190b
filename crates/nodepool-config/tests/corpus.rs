//! The hand-written corpus (`tests/corpus/`): every valid file loads with the facts checked
//! below, and every invalid file reports exactly the diagnostics its header announces.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use common::{CorpusFile, as_expectation, corpus_dir, corpus_files, reconcile, stem};
use nodepool_config::*;
use serde_json::json;

/// The valid files, each checked by the test of the same name below.
const VALID: &[&str] = &[
    "aws",
    "builder",
    "container",
    "embedded-default",
    "env-substitution",
    "fake-provider",
    "fake-quota-faults",
    "kubernetes",
    "mixed-drivers",
    "openshiftpods",
    "openstack-anchors",
    "qemu",
    "secure-merge",
    "secure-servers-only",
    "secure-tls-only",
    "static",
    "tenant-limits",
    "webapp",
    "yaml-quirks",
    "zookeeper-tls-chroot",
];

fn load(name: &str) -> Config {
    let path = corpus_dir("valid").join(format!("{name}.yaml"));
    let file = CorpusFile::read(&path);
    match file.load() {
        Ok(loaded) => loaded.config,
        Err(errors) => panic!("{name}: {errors}"),
    }
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

fn pools(items: &[(&str, &str)]) -> Vec<(String, String)> {
    items
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

fn openstack(provider: &Provider) -> &OpenStackProvider {
    match &provider.settings {
        ProviderSettings::OpenStack(settings) => settings,
        other => panic!("{}: not an openstack provider: {other:?}", provider.name),
    }
}

fn openstack_label<'c>(pool: &'c Pool, label: &str) -> &'c OpenStackLabel {
    match &pool.labels[label].settings {
        LabelSettings::OpenStack(settings) => settings,
        other => panic!("{label}: {other:?}"),
    }
}

fn openstack_pool(pool: &Pool) -> &OpenStackPool {
    match &pool.settings {
        PoolSettings::OpenStack(settings) => settings,
        other => panic!("{}: {other:?}", pool.name),
    }
}

#[test]
fn valid_corpus_is_complete() {
    let on_disk: Vec<String> = corpus_files("valid").iter().map(|p| stem(p)).collect();
    assert_eq!(
        on_disk, VALID,
        "every valid corpus file needs a test below (and is listed in VALID)"
    );
    assert!(VALID.len() >= 15);
}

#[test]
fn valid_corpus_loads_without_unexpected_warnings() {
    let mut failures = Vec::new();
    for path in corpus_files("valid") {
        let file = CorpusFile::read(&path);
        assert!(
            file.expected_errors().next().is_none(),
            "{}: a valid file expects no errors",
            path.display()
        );
        match file.load() {
            Err(errors) => failures.push(format!(
                "{}:\n{}",
                path.display(),
                errors
                    .0
                    .iter()
                    .map(|d| as_expectation(d, &path))
                    .collect::<Vec<_>>()
                    .join("\n")
            )),
            Ok(loaded) => {
                let (missing, extra) = reconcile(file.expected_warnings(), &loaded.warnings, &path);
                if !missing.is_empty() || !extra.is_empty() {
                    failures.push(format!(
                        "{}: missing warnings {:?}; unexpected:\n{}",
                        path.display(),
                        missing.iter().map(|e| e.to_string()).collect::<Vec<_>>(),
                        extra
                            .iter()
                            .map(|d| as_expectation(d, &path))
                            .collect::<Vec<_>>()
                            .join("\n")
                    ));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn invalid_corpus_reports_exactly_the_expected_errors() {
    let files = corpus_files("invalid");
    assert!(files.len() >= 25, "only {} invalid files", files.len());
    let mut failures = Vec::new();
    for path in &files {
        let file = CorpusFile::read(path);
        if file.expected_errors().next().is_none() {
            failures.push(format!(
                "{}: the header announces no `# expect:` error",
                path.display()
            ));
            continue;
        }
        let diagnostics = match file.load() {
            Ok(_) => {
                failures.push(format!("{}: loaded without errors", path.display()));
                continue;
            }
            Err(errors) => errors.0,
        };
        let errors: Vec<Diagnostic> = diagnostics
            .iter()
            .filter(|d| d.severity == Severity::Error)
            .cloned()
            .collect();
        let warnings: Vec<Diagnostic> = diagnostics
            .iter()
            .filter(|d| d.severity == Severity::Warning)
            .cloned()
            .collect();
        let (missing, extra) = reconcile(file.expected_errors(), &errors, path);
        let (missing_warnings, _) = reconcile(file.expected_warnings(), &warnings, path);
        if !missing.is_empty() || !extra.is_empty() || !missing_warnings.is_empty() {
            failures.push(format!(
                "{}:\n  missing: {:#?}\n  missing warnings: {:#?}\n  unexpected:\n{}\n  everything reported:\n{}",
                path.display(),
                missing.iter().map(|e| e.to_string()).collect::<Vec<_>>(),
                missing_warnings.iter().map(|e| e.to_string()).collect::<Vec<_>>(),
                extra.iter().map(|d| as_expectation(d, path)).collect::<Vec<_>>().join("\n"),
                diagnostics.iter().map(|d| as_expectation(d, path)).collect::<Vec<_>>().join("\n"),
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} invalid files misbehave:\n\n{}",
        failures.len(),
        files.len(),
        failures.join("\n\n")
    );
}

#[test]
fn invalid_corpus_counts() {
    let expectations: usize = corpus_files("invalid")
        .iter()
        .map(|p| CorpusFile::read(p).expected_errors().count())
        .sum();
    assert!(
        expectations >= 60,
        "only {expectations} expected errors in the invalid corpus"
    );
}

#[test]
fn many_errors_are_all_reported_in_one_run() {
    let path = corpus_dir("invalid").join("many-errors.yaml");
    let file = CorpusFile::read(&path);
    let errors = file.load().expect_err("broken");
    let count = errors.errors().count();
    assert!(count >= 15, "{count} errors: {errors}");
    assert_eq!(count, file.expected_errors().count());
    // The Display form lists them all, one per line, with file, position and key path.
    let text = errors.to_string();
    assert!(
        text.starts_with(&format!("configuration has {count} errors")),
        "{text}"
    );
    assert_eq!(text.lines().count(), count + 1);
}

// ---------------------------------------------------------------------------------------
// Facts about each valid file.

#[test]
fn aws() {
    let config = load("aws");
    let provider = &config.providers["ec2-us-west-2"];
    assert_eq!(provider.driver, DriverKind::Aws);
    assert_eq!(provider.image_type.as_deref(), Some("vmdk"));
    let ProviderSettings::Aws(settings) = &provider.settings else {
        panic!("aws settings")
    };
    assert_eq!(settings.region_name, "us-west-2");
    assert_eq!(settings.profile_name.as_deref(), Some("nodepool"));
    assert_eq!(settings.rate, 5.0);
    assert_eq!(
        (
            settings.boot_timeout,
            settings.launch_timeout,
            settings.launch_retries
        ),
        (300, 1800, 2)
    );
    assert_eq!(settings.image_import_timeout, Some(3600));
    assert_eq!(
        settings.object_storage_bucket.as_deref(),
        Some("nodepool-image-import")
    );
    assert_eq!(
        settings.endpoint_url.as_deref(),
        Some("http://127.0.0.1:5000")
    );
    assert_eq!(
        settings.post_upload_hook,
        Some(PathBuf::from("/usr/local/bin/tag-ami"))
    );

    // Cloud images by id and by filters (both spellings of the filter keys).
    let x86 = &provider.cloud_images["ubuntu-jammy-x86"];
    assert_eq!(
        x86.source,
        CloudImageSource::Id("ami-0123456789abcdef0".into())
    );
    assert_eq!(x86.username.as_deref(), Some("ubuntu"));
    assert_eq!(x86.connection_port, 22);
    let arm = &provider.cloud_images["ubuntu-jammy-arm"];
    assert_eq!(
        arm.source,
        CloudImageSource::Filters(vec![
            (
                "name".into(),
                strings(&["ubuntu/images/hvm-ssd/ubuntu-jammy-22.04-arm64-server-*"])
            ),
            ("owner-id".into(), strings(&["099720109477"])),
        ])
    );
    assert_eq!(arm.python_path, "/usr/bin/python3");
    assert_eq!(
        provider.cloud_images["windows"].connection_port, 5986,
        "winrm's default port"
    );

    // Built images with their import options.
    let debian = &provider.diskimages["debian-bookworm"];
    assert_eq!(debian.username.as_deref(), Some("admin"));
    assert_eq!(
        debian.meta,
        json!({"team": "infra"}).as_object().cloned().expect("map")
    );
    let ProviderDiskImageSettings::Aws(import) = &debian.driver else {
        panic!("aws image")
    };
    assert_eq!(import.architecture, "arm64");
    assert!(!import.ena_support);
    assert_eq!(
        (import.volume_size, import.volume_type.as_str()),
        (Some(20), "gp2")
    );
    assert_eq!(
        (
            import.import_method.as_str(),
            import.imds_support.as_deref()
        ),
        ("image", None)
    );
    assert_eq!((import.iops, import.throughput), (Some(3000), Some(125)));
    let ProviderDiskImageSettings::Aws(snap) = &provider.diskimages["debian-bookworm-snap"].driver
    else {
        panic!("aws image")
    };
    assert_eq!(
        (snap.import_method.as_str(), snap.imds_support.as_deref()),
        ("snapshot", Some("v2.0"))
    );
    assert_eq!(
        (
            snap.architecture.as_str(),
            snap.ena_support,
            snap.volume_type.as_str()
        ),
        ("x86_64", true, "gp3")
    );
    // The provider's image format joins the formats built for the image it uploads.
    assert_eq!(
        config.diskimages["debian-bookworm"].formats,
        set(&["raw", "vmdk"])
    );

    // Pools inherit provider limits and switches.
    let main = provider.pool("main").expect("main");
    assert_eq!(
        main.max_servers,
        Some(50),
        "provider max-servers is the pools' default"
    );
    assert_eq!(
        main.max_resources,
        BTreeMap::from([
            ("cores".into(), 512),
            ("ram".into(), 1_048_576),
            ("L-1216C47A".into(), 320),
            ("L-43DA4232".into(), 64)
        ])
    );
    let PoolSettings::Aws(main_settings) = &main.settings else {
        panic!("aws pool")
    };
    assert_eq!(
        (
            main_settings.public_ipv4,
            main_settings.public_ipv6,
            main_settings.use_internal_ip,
            main_settings.host_key_checking
        ),
        (false, true, true, false)
    );
    assert_eq!(main_settings.subnet_id.as_deref(), Some("subnet-0a1b2c3d"));
    assert_eq!(main_settings.availability_zone, None);
    let dedicated = provider.pool("dedicated").expect("dedicated");
    assert_eq!(dedicated.max_servers, Some(2));
    assert_eq!(dedicated.max_resources["cores"], 64);
    assert_eq!(dedicated.max_resources["L-1216C47A"], 640);
    let PoolSettings::Aws(dedicated_settings) = &dedicated.settings else {
        panic!("aws pool")
    };
    assert!(
        dedicated_settings.public_ipv4,
        "the deprecated public-ip-address wins"
    );
    assert!(!dedicated_settings.public_ipv6);
    assert_eq!(
        dedicated_settings.availability_zone.as_deref(),
        Some("us-west-2a")
    );

    let aws_label = |pool: &Pool, name: &str| match &pool.labels[name].settings {
        LabelSettings::Aws(label) => label.clone(),
        other => panic!("{other:?}"),
    };
    let x86_label = aws_label(main, "ubuntu-x86");
    assert_eq!(x86_label.instance, AwsInstance::Type("t3.medium".into()));
    assert_eq!(
        x86_label.iam_instance_profile,
        Some(AwsIamProfile::Name("nodepool-worker".into()))
    );
    assert_eq!(x86_label.imdsv2.as_deref(), Some("required"));
    assert_eq!(x86_label.dynamic_tags["tenant"], "{request.tenant_name}");
    assert!(x86_label.ebs_optimized && !x86_label.use_spot && !x86_label.host_key_checking);
    assert_eq!(
        x86_label.userdata.as_deref(),
        Some("#cloud-config\npackage_upgrade: false\n")
    );
    assert_eq!(
        aws_label(main, "ubuntu-arm").iam_instance_profile,
        Some(AwsIamProfile::Arn(
            "arn:aws:iam::123456789012:instance-profile/np".into()
        ))
    );
    assert_eq!(
        main.labels["debian-built"].image,
        LabelImage::Diskimage("debian-bookworm".into())
    );
    assert_eq!(
        aws_label(main, "fleet-worker").instance,
        AwsInstance::Fleet {
            instance_types: strings(&["m5.large", "m5a.large", "m6i.large"]),
            allocation_strategy: "price-capacity-optimized".into()
        }
    );
    assert!(aws_label(dedicated, "metal").dedicated_host);
    assert!(aws_label(dedicated, "spot-worker").use_spot);
    assert_eq!(
        config.labels["metal"].pools,
        pools(&[("ec2-us-west-2", "dedicated")])
    );
}

#[test]
fn builder() {
    let config = load("builder");
    assert_eq!(
        config.elements_dir,
        Some(PathBuf::from("/etc/nodepool/elements"))
    );
    assert_eq!(
        config.images_dir,
        Some(PathBuf::from("/opt/nodepool/images"))
    );
    assert_eq!(
        config.build_log_dir,
        PathBuf::from("/var/log/nodepool/image-builds")
    );
    assert_eq!(config.build_log_retention, 14);
    assert_eq!(
        config.diskimages.keys().collect::<Vec<_>>(),
        ["fedora-40", "rocky-9", "ubuntu-noble"],
        "abstract images are not built"
    );

    let noble = &config.diskimages["ubuntu-noble"];
    assert_eq!(
        noble.elements,
        strings(&[
            "vm",
            "simple-init",
            "nodepool-base",
            "growroot",
            "ubuntu-minimal"
        ]),
        "elements append root first"
    );
    assert_eq!(
        noble.env_vars,
        BTreeMap::from([
            ("TMPDIR".to_string(), "/opt/dib_tmp".to_string()),
            ("DIB_CHECKSUM".to_string(), "0".to_string()),
            ("DIB_IMAGE_CACHE".to_string(), "/opt/dib_cache".to_string()),
            (
                "DIB_DISTRIBUTION_MIRROR".to_string(),
                "http://mirror.example.org/ubuntu".to_string()
            ),
        ]),
        "env-vars merge, child wins"
    );
    assert!(
        noble.pause,
        "`pause: false` cannot override an inherited `pause: true` (Nodepool quirk)"
    );
    assert_eq!(
        noble.formats,
        set(&["qcow2", "raw", "vhd"]),
        "a child's formats replace the parent's"
    );
    assert_eq!(noble.keep_formats, set(&["qcow2"]));
    assert!(noble.delete_after_upload);
    assert_eq!(noble.release, "noble");
    assert_eq!(noble.dib_cmd, "/opt/dib/bin/disk-image-create");
    assert_eq!(
        (noble.rebuild_age, noble.build_timeout),
        (43_200, 10_800),
        "inherited"
    );
    assert_eq!(noble.python_path, "/usr/bin/python3");
    assert_eq!(noble.shell_type.as_deref(), Some("bash"));
    assert!(noble.metadata.is_empty(), "metadata is not inherited");
    assert_eq!(noble.backend, BuildBackend::Dib);

    let rocky = &config.diskimages["rocky-9"];
    assert_eq!(rocky.release, "9", "a numeric release becomes text");
    assert_eq!(
        rocky.rebuild_age, 43_200,
        "`rebuild-age: 0` cannot override the parent's"
    );
    assert_eq!(
        rocky.metadata,
        json!({"family": "rhel"}).as_object().cloned().expect("map")
    );
    assert_eq!(
        rocky.formats,
        set(&["qcow2", "vhd"]),
        "united with the AWS provider's vhd"
    );
    assert!(!rocky.delete_after_upload);

    let fedora = &config.diskimages["fedora-40"];
    assert_eq!(
        (fedora.release.as_str(), fedora.username.as_str()),
        ("40", "fedora")
    );
    assert_eq!(fedora.env_vars["DIB_CHECKSUM"], "sha256");
    assert_eq!(fedora.formats, set(&["qcow2"]));
    assert_eq!(fedora.dib_cmd, "disk-image-create");

    let aws = &config.providers["aws-us-east"];
    assert!(aws.pools.is_empty());
    let ProviderDiskImageSettings::Aws(import) = &aws.diskimages["rocky-9"].driver else {
        panic!("aws image")
    };
    assert_eq!(import.import_method, "ebs-direct");
    assert_eq!(
        config.providers["cloud-qcow2"].image_type.as_deref(),
        Some("qcow2")
    );
}

#[test]
fn container() {
    let config = load("container");
    let provider = &config.providers["containers"];
    assert_eq!(provider.driver, DriverKind::Container);
    let ProviderSettings::Container(settings) = &provider.settings else {
        panic!("container settings")
    };
    assert_eq!(settings.subnet, "10.254.0.0/16");
    assert_eq!(settings.image_dir, PathBuf::from("/srv/np/ct-images"));
    assert_eq!(settings.state_dir, PathBuf::from("/srv/np/ct-nodes"));
    assert_eq!((settings.boot_timeout, settings.launch_retries), (10, 1));

    let ubuntu = &config.diskimages["ubuntu-ct"];
    let BuildBackend::Native(native) = &ubuntu.backend else {
        panic!("native back-end inherited: {:?}", ubuntu.backend)
    };
    assert_eq!(native.distribution, "noble");
    assert_eq!(
        native.mirror.as_deref(),
        Some("http://archive.ubuntu.com/ubuntu")
    );
    assert_eq!(
        native.packages,
        strings(&["openssh-server", "python3", "git"]),
        "packages append along the chain"
    );
    assert_eq!(native.disk_size, 2);
    assert_eq!(
        ubuntu.formats,
        set(&["tar"]),
        "containers take a root file system tarball"
    );
    assert_eq!(
        config.diskimages["debian-ct"].formats,
        set(&["qcow2", "tar"])
    );
    let BuildBackend::Native(debian) = &config.diskimages["debian-ct"].backend else {
        panic!("native")
    };
    assert_eq!(debian.distribution, "debian");

    let pool = provider.pool("local").expect("pool");
    let LabelSettings::Container(small) = &pool.labels["debian-ct"].settings else {
        panic!("container label")
    };
    assert_eq!(
        (small.cores, small.ram, small.host_key_checking),
        (1, 1024, false),
        "defaults, and the pool's host-key-checking"
    );
    let LabelSettings::Container(big) = &pool.labels["ubuntu-ct"].settings else {
        panic!("container label")
    };
    assert_eq!((big.cores, big.ram), (2, 2048));
    assert_eq!(config.labels["ubuntu-ct"].min_ready, 2);
}

#[test]
fn embedded_default() {
    let config = load("embedded-default");
    assert_eq!(
        config.zookeeper, None,
        "no zookeeper-servers: the embedded store"
    );
    assert_eq!(
        config.database,
        Some(PathBuf::from("/var/lib/nodepool/nodepool.sqlite"))
    );
    assert_eq!(
        config.webapp,
        Webapp {
            port: 8005,
            listen_address: "0.0.0.0".into()
        }
    );
    assert_eq!(
        config.build_log_dir,
        PathBuf::from("/var/log/nodepool/builds")
    );
    assert_eq!(config.build_log_retention, 7);
    assert_eq!(
        (
            config.max_hold_age,
            config.elements_dir.as_ref(),
            config.images_dir.as_ref()
        ),
        (None, None, None)
    );
    assert!(config.diskimages.is_empty() && config.tenant_resource_limits.is_empty());

    let provider = &config.providers["fake-provider"];
    assert_eq!(
        provider.driver,
        DriverKind::Fake,
        "a provider named fake* is the fake driver"
    );
    assert_eq!((provider.max_concurrency, provider.priority), (None, None));
    let settings = openstack(provider);
    assert_eq!(settings.cloud, "fake");
    assert_eq!(settings.rate, 1.0);
    assert_eq!(
        (
            settings.boot_timeout,
            settings.launch_timeout,
            settings.launch_retries
        ),
        (60, 3600, 3)
    );
    assert_eq!(settings.image_name_format, "{image_name}-{timestamp}");
    assert_eq!(settings.port_cleanup_interval, 600);
    let fake = settings.fake.as_ref().expect("fake cloud");
    assert_eq!(
        (fake.instances, fake.cores, fake.ram),
        (20, 100, 1_000_000),
        "the fake cloud's default quota"
    );
    assert_eq!(fake.faults, FakeFaults::default());

    let pool = &provider.pools[0];
    assert_eq!(
        (
            pool.max_servers,
            pool.priority,
            pool.node_attributes.as_ref()
        ),
        (None, 100, None)
    );
    assert!(pool.max_resources.is_empty());
    let os_pool = openstack_pool(pool);
    assert!(
        os_pool.auto_floating_ip && os_pool.host_key_checking && !os_pool.ignore_provider_quota
    );
    let label = openstack_label(pool, "fake-label");
    assert_eq!(
        (label.volume_size, label.console_log, label.boot_from_volume),
        (50, false, false)
    );
    assert_eq!(
        pool.labels["fake-label"].image,
        LabelImage::CloudImage("fake-image".into())
    );
    let image = &provider.cloud_images["fake-image"];
    assert_eq!(
        image.source,
        CloudImageSource::Name("fake-image".into()),
        "looked up by its own name"
    );
    assert_eq!(
        (
            image.python_path.as_str(),
            image.connection_type.as_str(),
            image.connection_port
        ),
        ("auto", "ssh", 22)
    );
    assert_eq!(
        config.labels["fake-label"],
        Label {
            name: "fake-label".into(),
            min_ready: 0,
            max_ready_age: 0,
            pools: pools(&[("fake-provider", "main")])
        }
    );
}

#[test]
fn env_substitution() {
    let config = load("env-substitution");
    let zk = config.zookeeper.expect("zookeeper");
    assert_eq!(
        zk.hosts(),
        "zk-from-env.example.org:2999",
        "the port was substituted before parsing, so it is a number"
    );
    assert_eq!(config.labels["env-label"].min_ready, 4);
    assert_eq!(
        openstack(&config.providers["env-cloud"]).cloud,
        "cloud-from-env"
    );
    assert_eq!(
        config.build_log_dir,
        PathBuf::from("%(HOME)/logs/%(NODEPOOL_UNSET)"),
        "only set NODEPOOL_* variables are replaced"
    );
}

#[test]
fn fake_provider() {
    let config = load("fake-provider");
    let provider = &config.providers["fake-provider"];
    assert_eq!(provider.driver, DriverKind::Fake);
    let settings = openstack(provider);
    assert_eq!(
        (
            settings.cloud.as_str(),
            settings.region_name.as_deref(),
            settings.rate
        ),
        ("fake", Some("fake-region"), 0.0001)
    );
    let zk = config.zookeeper.as_ref().expect("zookeeper");
    assert_eq!(zk.hosts(), "localhost:2281/nodepool-test-1234");
    assert_eq!(zk.tls, None);
    let pool = provider.pool("main").expect("pool");
    assert_eq!(pool.max_servers, Some(96));
    assert_eq!(openstack_pool(pool).availability_zones, strings(&["az1"]));
    let label = openstack_label(pool, "fake-label");
    assert_eq!(
        (
            label.min_ram,
            label.flavor_name.as_deref(),
            label.console_log
        ),
        (Some(8192), Some("Fake"), true)
    );
    assert_eq!(
        label.networks,
        strings(&["net-name"]),
        "a label takes its pool's networks"
    );
    assert_eq!(
        provider.diskimages["fake-image"].meta,
        json!({"key": "value", "key2": "value"})
            .as_object()
            .cloned()
            .expect("map")
    );
    let image = &config.diskimages["fake-image"];
    assert_eq!(image.release, "21");
    assert_eq!(image.dib_cmd, "nodepool/tests/fake-image-create");
    assert_eq!(image.formats, set(&["qcow2"]));
    assert_eq!(image.env_vars.len(), 4);
    assert_eq!(config.labels["fake-label"].min_ready, 1);
    assert_eq!(
        config.labels["fake-label2"].pools,
        pools(&[("fake-provider", "main")])
    );
}

#[test]
fn fake_quota_faults() {
    let config = load("fake-quota-faults");
    let simulated = &config.providers["simulated-cloud"];
    assert_eq!(simulated.driver, DriverKind::Fake);
    assert_eq!(
        simulated.max_concurrency,
        Some(0),
        "0 processes no requests"
    );
    let fake = openstack(simulated).fake.clone().expect("fake cloud");
    assert_eq!((fake.instances, fake.cores, fake.ram), (4, 16, 32768));
    assert_eq!(
        fake.faults,
        FakeFaults {
            launch_failures: 2,
            quota_errors: 1,
            delete_failures: 3,
            api_errors: 0,
            upload_failures: 1,
            hung_creates: 1,
            hung_deletes: 0,
            hung_console_logs: 0,
            api_error_rate: 0.15,
            quota_error_rate: 0.0,
            hung_call_rate: 1.0,
            delete_failure_rate: 0.2,
            fault_seed: 42,
            create_delay: 0.5,
            delete_delay: 2.0
        }
    );
    assert_eq!(
        fake.state_file,
        Some(PathBuf::from("/var/lib/nodepool/simulated-cloud.json"))
    );
    let second = &config.providers["fake-second"];
    assert_eq!(second.driver, DriverKind::Fake);
    let fake = openstack(second).fake.clone().expect("fake cloud");
    assert_eq!(
        (fake.instances, fake.cores, fake.ram),
        (20, 2, 1_000_000),
        "unset quota keys keep the defaults"
    );
    assert_eq!(
        fake.state_file, None,
        "in memory unless `fake-state` is set"
    );
    assert_eq!(
        second.cloud_images["fake-image"].source,
        CloudImageSource::Id("fake-image-id".into())
    );
    assert_eq!(
        openstack_label(&second.pools[0], "flaky")
            .flavor_name
            .as_deref(),
        Some("Fake Flavor")
    );
}

#[test]
fn kubernetes() {
    let config = load("kubernetes");
    let provider = &config.providers["kube-cluster"];
    assert_eq!(provider.driver, DriverKind::Kubernetes);
    assert_eq!(provider.image_type, None, "kubernetes manages no images");
    let ProviderSettings::Kubernetes(settings) = &provider.settings else {
        panic!("k8s settings")
    };
    assert_eq!(
        (settings.context.as_deref(), settings.launch_retries),
        (Some("admin-cluster.local"), 5)
    );
    let main = provider.pool("main").expect("main");
    assert_eq!(
        main.max_resources,
        BTreeMap::from([
            ("cores".into(), 32),
            ("ram".into(), 131_072),
            ("nvidia.com/gpu".into(), 8)
        ])
    );
    let custom = provider.pool("custom").expect("custom");
    assert_eq!(
        custom.max_resources["cores"], 64,
        "provider limits are the pools' defaults"
    );
    let k8s = |pool: &Pool, name: &str| match &pool.labels[name].settings {
        LabelSettings::Kubernetes(label) => label.clone(),
        other => panic!("{other:?}"),
    };
    let namespace = k8s(main, "k8s-namespace");
    assert_eq!(namespace.kind, "namespace");
    assert_eq!(
        (namespace.cpu, namespace.memory, namespace.storage),
        (Some(2), Some(2048), Some(10240)),
        "pool defaults"
    );
    assert_eq!(
        (
            namespace.cpu_limit,
            namespace.memory_limit,
            namespace.storage_limit
        ),
        (Some(4), Some(4096), Some(20480))
    );
    let fedora = k8s(main, "pod-fedora");
    assert_eq!(
        (
            fedora.kind.as_str(),
            fedora.image.as_deref(),
            fedora.image_pull.as_str()
        ),
        ("pod", Some("docker.io/fedora:40"), "Always")
    );
    assert_eq!(
        (fedora.cpu, fedora.memory, fedora.storage),
        (Some(1), Some(1024), Some(10240)),
        "own values win over pool defaults"
    );
    assert_eq!(
        fedora.env,
        vec![(
            "http_proxy".to_string(),
            "http://proxy.example.org:3128".to_string()
        )]
    );
    assert_eq!(
        fedora.node_selector,
        json!({"kubernetes.io/arch": "amd64"}).as_object().cloned()
    );
    assert_eq!(fedora.privileged, Some(false));
    assert_eq!(
        fedora.volumes,
        vec![json!({"name": "cache", "emptyDir": {}})]
    );
    assert_eq!(
        fedora.volume_mounts,
        vec![json!({"name": "cache", "mountPath": "/cache"})]
    );
    assert_eq!(fedora.dynamic_labels["tenant"], "{request.tenant_name}");
    assert_eq!(fedora.annotations["example.org/owner"], json!("zuul"));
    assert_eq!(
        fedora.extra_resources,
        BTreeMap::from([
            ("example.com/fpga".into(), 0),
            ("example.com/license".into(), 1)
        ])
    );
    let gpu = k8s(main, "pod-gpu");
    assert_eq!(
        (gpu.gpu, gpu.gpu_resource.as_deref()),
        (Some(1.0), Some("nvidia.com/gpu"))
    );
    assert_eq!(
        gpu.extra_resources,
        BTreeMap::from([
            ("example.com/fpga".into(), 2),
            ("example.com/license".into(), 1)
        ]),
        "label extra resources override the pool's"
    );
    assert_eq!(gpu.image_pull, "IfNotPresent");
    let user = k8s(custom, "pod-custom");
    let spec = user.spec.expect("spec");
    assert_eq!(
        spec["containers"][0]["image"],
        json!("docker.io/library/alpine:3.20")
    );
    assert_eq!(user.labels["custom"], json!("true"));
    assert_eq!((user.cpu, user.image), (None, None));
    assert_eq!(
        config.tenant_resource_limits["ml"],
        BTreeMap::from([("instances".into(), 10), ("nvidia.com/gpu".into(), 4)])
    );
    assert_eq!(
        config.labels["pod-custom"].pools,
        pools(&[("kube-cluster", "custom")])
    );
}

#[test]
fn mixed_drivers() {
    let config = load("mixed-drivers");
    let drivers: BTreeMap<&str, DriverKind> = config
        .providers
        .values()
        .map(|p| (p.name.as_str(), p.driver))
        .collect();
    assert_eq!(
        drivers,
        BTreeMap::from([
            ("aws-a", DriverKind::Aws),
            ("ct", DriverKind::Container),
            ("fake-provider", DriverKind::Fake),
            ("k8s", DriverKind::Kubernetes),
            ("openstack-b", DriverKind::OpenStack),
            ("vm", DriverKind::Qemu),
            ("zz-static", DriverKind::Static),
        ])
    );
    assert_eq!(
        config.labels["linux"].pools,
        pools(&[
            ("zz-static", "hosts"),
            ("openstack-b", "p1"),
            ("openstack-b", "p2"),
            ("aws-a", "main"),
            ("k8s", "main"),
            ("vm", "main"),
            ("ct", "main"),
            ("fake-provider", "main"),
        ]),
        "in config order"
    );
    assert_eq!(
        config.labels["only-static"].pools,
        pools(&[("zz-static", "hosts")])
    );
    assert_eq!(config.pools_for_label("linux").count(), 8);
    let subnet = |name: &str| match &config.providers[name].settings {
        ProviderSettings::Qemu(q) => q.subnet.clone(),
        ProviderSettings::Container(c) => c.subnet.clone(),
        other => panic!("{other:?}"),
    };
    assert_eq!(
        (subnet("vm"), subnet("ct")),
        ("172.31.224.0/20".to_string(), "172.31.240.0/20".to_string()),
        "the local drivers' default subnets do not overlap"
    );
    assert_eq!(
        config.diskimages["linux-image"].formats,
        set(&["qcow2", "raw", "tar"]),
        "openstack/fake qcow2, aws raw, qemu qcow2, container tar"
    );
    let static_pool = &config.providers["zz-static"].pools[0];
    assert_eq!(
        static_pool.labels.keys().collect::<Vec<_>>(),
        ["linux", "only-static"]
    );
    assert_eq!(static_pool.labels["linux"].image, LabelImage::None);
    assert_eq!(
        config.providers["openstack-b"]
            .pool("p2")
            .expect("p2")
            .priority,
        200
    );
    for provider in config.providers.values() {
        assert_eq!(
            provider.driver.manages_images(),
            provider.image_type.is_some(),
            "{}",
            provider.name
        );
    }
}

#[test]
fn openshiftpods() {
    let config = load("openshiftpods");
    let provider = &config.providers["openshift-ci"];
    assert_eq!(provider.driver, DriverKind::OpenShiftPods);
    assert_eq!(provider.driver.name(), "openshiftpods");
    assert!(
        !provider.driver.manages_images(),
        "openshiftpods uploads no images"
    );
    assert_eq!(provider.image_type, None);
    let ProviderSettings::Kubernetes(settings) = &provider.settings else {
        panic!("openshiftpods providers have the kubernetes settings")
    };
    assert_eq!(
        (settings.context.as_deref(), settings.launch_retries),
        (Some("ci/api-openshift-example-org:6443/nodepool"), 2)
    );
    let ci = provider.pool("zuul-ci").expect("zuul-ci");
    assert_eq!(
        (ci.max_servers, ci.priority),
        (Some(20), 50),
        "max-pods is not a pool limit, as in Nodepool 11"
    );
    assert_eq!(
        ci.node_attributes,
        json!({"cluster": "ci"}).as_object().cloned()
    );
    assert_eq!(
        ci.max_resources,
        BTreeMap::from([
            ("cores".into(), 64),
            ("nvidia.com/gpu".into(), 2),
            ("ram".into(), 65_536)
        ]),
        "provider limits are the pools' defaults"
    );
    let custom_pool = provider.pool("zuul-custom").expect("zuul-custom");
    assert_eq!(
        custom_pool.max_servers,
        Some(15),
        "max-projects, then max-servers, is the pools' default"
    );
    let k8s = |pool: &Pool, name: &str| match &pool.labels[name].settings {
        LabelSettings::Kubernetes(label) => label.clone(),
        other => panic!("{other:?}"),
    };
    let fedora = k8s(ci, "pod-fedora");
    assert_eq!(fedora.kind, "pod", "every openshiftpods label is a pod");
    assert_eq!(
        (fedora.image.as_deref(), fedora.image_pull.as_str()),
        (Some("quay.io/fedora/fedora:40"), "Always")
    );
    assert_eq!(
        fedora.image_pull_secrets,
        Some(vec![json!({"name": "quay-pull"})])
    );
    assert_eq!(
        (
            fedora.cpu,
            fedora.memory,
            fedora.cpu_limit,
            fedora.memory_limit
        ),
        (Some(1), Some(2048), None, Some(4096)),
        "own values win over pool defaults; limits default later, to the requests"
    );
    assert_eq!(
        (fedora.python_path.as_str(), fedora.shell_type.as_deref()),
        ("/usr/bin/python3", Some("bash"))
    );
    assert_eq!(
        fedora.env,
        vec![("LANG".to_string(), "C.UTF-8".to_string())]
    );
    assert_eq!(fedora.privileged, Some(false));
    assert_eq!(fedora.scheduler_name.as_deref(), Some("default-scheduler"));
    assert_eq!(
        fedora.volume_mounts,
        vec![json!({"name": "cache", "mountPath": "/cache"})]
    );
    assert_eq!(fedora.labels["team"], json!("ci"));
    assert_eq!(fedora.dynamic_labels["tenant"], "{request.tenant_name}");
    assert_eq!(fedora.annotations["openshift.io/scc"], json!("restricted"));
    assert_eq!(
        (fedora.gpu, fedora.gpu_resource.as_deref()),
        (Some(0.5), Some("nvidia.com/gpu"))
    );
    assert_eq!(
        fedora.extra_resources,
        BTreeMap::from([("example.com/license".into(), 2)])
    );
    let small = k8s(ci, "pod-small");
    assert_eq!(
        (
            small.image_pull.as_str(),
            small.python_path.as_str(),
            small.cpu,
            small.memory_limit
        ),
        ("IfNotPresent", "auto", Some(2), Some(4096)),
        "defaults"
    );
    assert_eq!(
        small.image_pull_secrets,
        Some(Vec::new()),
        "openshiftpods pods always get imagePullSecrets, [] by default"
    );
    let user = k8s(custom_pool, "pod-custom");
    assert_eq!(user.kind, "pod");
    assert_eq!(user.image, None);
    let spec = user.spec.expect("spec");
    assert_eq!(
        spec["containers"][0]["image"],
        json!("quay.io/centos/centos:stream9")
    );
    assert_eq!(user.annotations["note"], json!("user spec"));
    assert_eq!(
        config.labels["pod-custom"].pools,
        pools(&[("openshift-ci", "zuul-custom")])
    );
    assert_eq!(config.labels["pod-fedora"].min_ready, 1);
}

#[test]
fn openstack_anchors() {
    let config = load("openstack-anchors");
    let zk = config.zookeeper.as_ref().expect("zookeeper");
    assert_eq!(
        zk.hosts(),
        "zk1.ci.example.net:2281,zk2.ci.example.net:2181",
        "port defaults to 2281"
    );
    assert_eq!(
        zk.tls,
        Some(ZooKeeperTls {
            cert: "/etc/nodepool/zk/client.pem".into(),
            key: "/etc/nodepool/zk/client.key".into(),
            ca: "/etc/nodepool/zk/ca.pem".into()
        })
    );
    assert_eq!(zk.timeout, 10.0);

    let ams = &config.providers["vexx-ams"];
    assert_eq!(ams.driver, DriverKind::OpenStack);
    assert_eq!((ams.max_concurrency, ams.priority), (Some(10), Some(50)));
    let settings = openstack(ams);
    assert_eq!(
        (
            settings.cloud.as_str(),
            settings.region_name.as_deref(),
            settings.rate
        ),
        ("vexxhost", Some("ams1"), 0.25)
    );
    assert_eq!(
        (
            settings.boot_timeout,
            settings.launch_timeout,
            settings.launch_retries,
            settings.image_upload_timeout
        ),
        (120, 900, 5, 7200)
    );
    assert_eq!(
        settings.image_name_format,
        "np-{image_name}-{upload_id}-{timestamp}"
    );
    assert!(settings.clean_floating_ips);
    assert_eq!(settings.port_cleanup_interval, 0);
    assert_eq!(
        settings.post_upload_hook,
        Some(PathBuf::from("/usr/local/bin/np-post-upload"))
    );
    assert_eq!(settings.fake, None);
    assert_eq!(ams.diskimages["ubuntu-jammy"].config_drive, Some(true));
    assert_eq!(
        ams.diskimages["ubuntu-jammy"].meta["hw_disk_bus"],
        json!("scsi")
    );
    assert!(ams.diskimages["debian-bookworm"].pause);
    let windows = &ams.cloud_images["windows-server-2022"];
    assert_eq!(
        windows.source,
        CloudImageSource::Id("6f0c0e0a-8d3c-4f7e-9a63-ae1b3b1b9c51".into())
    );
    assert_eq!(
        (windows.connection_type.as_str(), windows.connection_port),
        ("winrm", 5986)
    );
    assert_eq!(windows.python_path, "C:\\Python311\\python.exe");
    assert_eq!(
        ams.cloud_images["ubuntu-upstream"].source,
        CloudImageSource::Name("Ubuntu 22.04 LTS (Jammy)".into())
    );

    let main = ams.pool("main").expect("main");
    assert_eq!(main.priority, 50, "pools inherit the provider priority");
    assert_eq!(main.max_servers, Some(40));
    assert_eq!(
        main.max_resources,
        BTreeMap::from([
            ("cores".into(), 400),
            ("ram".into(), 819_200),
            ("volumes".into(), 20),
            ("volume-gb".into(), 2000)
        ])
    );
    assert_eq!(
        main.node_attributes,
        json!({"executor-zone": "eu", "nested-virt": true})
            .as_object()
            .cloned()
    );
    let jammy = openstack_label(main, "ubuntu-jammy");
    assert_eq!(
        (
            jammy.min_ram,
            jammy.flavor_name.as_deref(),
            jammy.key_name.as_deref()
        ),
        (Some(8000), Some("v3-standard"), Some("infra-root"))
    );
    assert_eq!(
        jammy.dynamic_instance_properties["zuul-tenant"],
        "{request.tenant_name}"
    );
    assert_eq!(jammy.networks, strings(&["public"]));
    // The merge key copies every setting of the anchored label; explicit keys win.
    let large = openstack_label(main, "ubuntu-jammy-large");
    assert_eq!(
        (
            large.min_ram,
            large.flavor_name.as_deref(),
            large.key_name.as_deref()
        ),
        (Some(32000), Some("v3-standard"), Some("infra-root"))
    );
    assert!(large.boot_from_volume && large.console_log);
    assert_eq!(large.volume_size, 80);
    assert_eq!(large.instance_properties, jammy.instance_properties);
    assert_eq!(
        main.labels["ubuntu-jammy-large"].image,
        LabelImage::Diskimage("ubuntu-jammy".into())
    );
    let bookworm = openstack_label(main, "debian-bookworm");
    assert_eq!(
        (bookworm.networks.clone(), bookworm.host_key_checking),
        (strings(&["private"]), false)
    );
    assert_eq!(
        main.labels["windows-2022"].image,
        LabelImage::CloudImage("windows-server-2022".into())
    );

    let sjc = &config.providers["vexx-sjc"];
    assert_eq!(
        openstack(sjc).region_name.as_deref(),
        Some("sjc1"),
        "from the flow-mapping merge"
    );
    assert_eq!(sjc.diskimages, ams.diskimages, "the aliased list");
    let sjc_main = sjc.pool("main").expect("main");
    assert_eq!((sjc_main.max_servers, sjc_main.priority), (Some(10), 10));
    assert_eq!(
        sjc_main.labels, main.labels,
        "merged from the anchored pool"
    );
    let sjc_settings = openstack_pool(sjc_main);
    assert!(!sjc_settings.auto_floating_ip && sjc_settings.ignore_provider_quota);
    assert_eq!(sjc_settings.security_groups, strings(&["nodepool"]));

    let osuosl = &config.providers["osuosl"];
    assert_eq!(
        openstack(osuosl).rate,
        2.0,
        "a numeric string is accepted for rate"
    );
    assert_eq!(osuosl.max_concurrency, None, "-1 is unlimited");
    assert_eq!(
        config.labels["ubuntu-jammy"].pools,
        pools(&[
            ("vexx-ams", "main"),
            ("vexx-sjc", "main"),
            ("osuosl", "arm64")
        ])
    );
    assert_eq!(config.labels["debian-bookworm"].max_ready_age, 3600);
    let windows = &config.labels["windows-2022"];
    assert_eq!(
        (windows.min_ready, windows.max_ready_age),
        (0, 0),
        "negative values mean none, as in Nodepool"
    );
    assert_eq!(config.diskimages["ubuntu-jammy"].formats, set(&["qcow2"]));
}

#[test]
fn qemu() {
    let config = load("qemu");
    assert_eq!(config.zookeeper, None);
    assert_eq!(
        config.database,
        Some(PathBuf::from("/var/lib/nodepool/state.sqlite"))
    );
    let provider = &config.providers["local-qemu"];
    assert_eq!(
        (
            provider.driver,
            provider.image_type.as_deref(),
            provider.max_concurrency
        ),
        (DriverKind::Qemu, Some("raw"), Some(2))
    );
    let ProviderSettings::Qemu(settings) = &provider.settings else {
        panic!("qemu settings")
    };
    assert_eq!(settings.accel, QemuAccel::Tcg);
    assert_eq!(settings.ssh_port_range, (43000, 43099));
    assert_eq!(settings.subnet, "10.253.0.0/22");
    assert_eq!(
        (settings.host_cores, settings.host_ram),
        (Some(8), Some(16384))
    );
    assert_eq!(
        (
            settings.boot_timeout,
            settings.launch_timeout,
            settings.launch_retries
        ),
        (600, 900, 2)
    );
    assert_eq!(settings.qemu_binary, "/usr/bin/qemu-system-x86_64");
    assert_eq!(settings.state_dir, PathBuf::from("/run/nodepool/qemu"));

    let alpine = &provider.cloud_images["alpine"];
    assert_eq!(
        alpine.source,
        CloudImageSource::Path("/srv/images/alpine-3.20.qcow2".into())
    );
    assert_eq!(
        (alpine.username.as_deref(), alpine.shell_type.as_deref()),
        (Some("alpine"), Some("ash"))
    );
    assert_eq!(provider.diskimages["debian-dib"].connection_port, 2022);

    let native = &config.diskimages["debian-native"];
    assert_eq!(
        native.backend,
        BuildBackend::Native(NativeBuild {
            distribution: "bookworm".into(),
            mirror: Some("http://deb.debian.org/debian".into()),
            packages: strings(&["openssh-server", "python3", "sudo"]),
            disk_size: 8,
            kernel: Some("linux-image-cloud-amd64".into()),
        })
    );
    assert_eq!(
        native.formats,
        set(&["raw"]),
        "the provider's raw format is all that is built"
    );
    assert_eq!(config.diskimages["debian-dib"].release, "bookworm");

    let pool = provider.pool("vms").expect("vms");
    assert_eq!(
        pool.max_resources,
        BTreeMap::from([("cores".into(), 8), ("ram".into(), 16384)])
    );
    let local = |name: &str| match &pool.labels[name].settings {
        LabelSettings::Qemu(label) => label.clone(),
        other => panic!("{other:?}"),
    };
    assert_eq!(
        local("debian-vm"),
        LocalLabel {
            cores: 1,
            ram: 1024,
            disk_size: None,
            console_log: true,
            host_key_checking: false,
            pids_limit: None
        }
    );
    assert_eq!(
        local("alpine-vm"),
        LocalLabel {
            cores: 1,
            ram: 512,
            disk_size: None,
            console_log: false,
            host_key_checking: false,
            pids_limit: None
        }
    );
    assert_eq!(
        local("big-vm"),
        LocalLabel {
            cores: 4,
            ram: 8192,
            disk_size: Some(40),
            console_log: true,
            host_key_checking: true,
            pids_limit: None
        }
    );
    assert_eq!(
        pool.labels["alpine-vm"].image,
        LabelImage::CloudImage("alpine".into())
    );
}

#[test]
fn secure_merge() {
    let config = load("secure-merge");
    let zk = config.zookeeper.as_ref().expect("zookeeper");
    assert_eq!(
        zk.hosts(),
        "zk1.internal.example.org:2281,zk2.internal.example.org:2281/np",
        "the secure servers replace the main ones"
    );
    assert_eq!(
        zk.tls.as_ref().map(|t| t.ca.clone()),
        Some(PathBuf::from("/etc/nodepool/secure/ca.crt"))
    );
    assert_eq!(zk.timeout, 20.0, "the timeout stays the main file's");
    let noble = &config.diskimages["ubuntu-noble"];
    assert_eq!(
        noble.env_vars["REG_USER"], "builder",
        "secure values win over inherited ones"
    );
    assert_eq!(noble.env_vars["REG_PASSWORD"], "s3cret");
    assert_eq!(noble.env_vars["DIB_MIRROR"], "http://mirror.example.org");
    assert_eq!(noble.env_vars["DIB_RELEASE_EXTRA"], "1");
    let rhel = &config.diskimages["rhel-9"];
    assert_eq!(
        rhel.env_vars.keys().collect::<Vec<_>>(),
        ["DIB_LOCAL_IMAGE", "REG_AUTH"]
    );

    // Without the secure file the placeholder server stays, and the credentials are absent.
    let path = corpus_dir("valid").join("secure-merge.yaml");
    let text = std::fs::read_to_string(&path).expect("read");
    let plain = parse_config(&path, &text, None, &Env::new())
        .expect("loads")
        .config;
    assert_eq!(
        plain.zookeeper.as_ref().map(|z| z.hosts()),
        Some("placeholder.invalid:2281".to_string())
    );
    assert!(
        !plain.diskimages["ubuntu-noble"]
            .env_vars
            .contains_key("REG_PASSWORD")
    );
    assert_eq!(
        plain.diskimages["ubuntu-noble"].env_vars["REG_USER"],
        "nobody"
    );
}

#[test]
fn secure_servers_only() {
    let config = load("secure-servers-only");
    let zk = config
        .zookeeper
        .expect("the secure servers turn ZooKeeper on");
    assert_eq!(zk.hosts(), "zk-a.internal:2281,zk-b.internal:3281");
    assert_eq!(zk.timeout, 45.0, "the main file's timeout");
    assert_eq!(
        zk.tls.map(|t| t.cert),
        Some(PathBuf::from("/etc/nodepool/tls/client.crt")),
        "the main file's TLS"
    );

    // Without the secure file there are no servers: the embedded store.
    let path = corpus_dir("valid").join("secure-servers-only.yaml");
    let text = std::fs::read_to_string(&path).expect("read");
    assert_eq!(
        parse_config(&path, &text, None, &Env::new())
            .expect("loads")
            .config
            .zookeeper,
        None
    );
}

#[test]
fn secure_tls_only() {
    let config = load("secure-tls-only");
    let zk = config.zookeeper.expect("zookeeper");
    assert_eq!(
        zk.hosts(),
        "zk.example.org:2281/nodepool",
        "servers and chroot stay the main file's"
    );
    assert_eq!(
        zk.tls,
        Some(ZooKeeperTls {
            cert: "/secure/client.crt".into(),
            key: "/secure/client.key".into(),
            ca: "/secure/ca.crt".into()
        })
    );
}

#[test]
fn r#static() {
    let config = load("static");
    let lab = &config.providers["lab"];
    assert_eq!(
        (lab.driver, lab.image_type.as_ref(), lab.priority),
        (DriverKind::Static, None, Some(5))
    );
    let nodes = |pool: &Pool| match &pool.settings {
        PoolSettings::Static(s) => s.nodes.clone(),
        other => panic!("{other:?}"),
    };
    let rack = lab.pool("rack-1").expect("rack-1");
    assert_eq!(rack.priority, 5);
    assert_eq!(
        rack.node_attributes,
        json!({"rack": 1}).as_object().cloned()
    );
    let rack_nodes = nodes(rack);
    assert_eq!(
        rack_nodes[0],
        StaticNode {
            name: "bm01.lab.example.org".into(),
            labels: strings(&["bare-metal"]),
            username: "zuul".into(),
            timeout: 30,
            host_key_checking: true,
            host_keys: strings(&[
                "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIH4J0k1BJ2o7hIWw5bWW3z1d2eBQ6Ur8jRiXXUaYh9rZ"
            ]),
            connection_port: 22,
            connection_type: "ssh".into(),
            shell_type: None,
            max_parallel_jobs: 4,
            python_path: "auto".into(),
        }
    );
    let bm02 = &rack_nodes[1];
    assert_eq!(
        bm02.connection_port, 2222,
        "the legacy ssh-port is honoured"
    );
    assert_eq!(bm02.host_keys.len(), 2);
    assert_eq!(
        (bm02.username.as_str(), bm02.timeout, bm02.max_parallel_jobs),
        ("ci", 5, 1)
    );
    assert_eq!(
        rack.labels.keys().collect::<Vec<_>>(),
        ["bare-metal", "gpu"]
    );

    let network = lab.pool("network").expect("network");
    assert_eq!((network.max_servers, network.priority), (Some(2), 1));
    let network_nodes = nodes(network);
    assert_eq!(
        (
            network_nodes[0].connection_type.as_str(),
            network_nodes[0].connection_port
        ),
        ("network_cli", 8022)
    );
    assert!(!network_nodes[0].host_key_checking);
    assert_eq!(network_nodes[0].shell_type.as_deref(), Some("sh"));
    assert_eq!(
        (
            network_nodes[1].connection_type.as_str(),
            network_nodes[1].connection_port
        ),
        ("winrm", 5986)
    );

    assert_eq!(
        config.labels["bare-metal"].pools,
        pools(&[("lab", "rack-1"), ("lab-overflow", "rack-2")])
    );
    // A whitespace-separated string gives several labels (with a warning: Nodepool's node
    // record would carry the whole string as one label).
    assert_eq!(
        config.labels["gpu"].pools,
        pools(&[("lab", "rack-1"), ("lab-overflow", "rack-2")])
    );
    assert_eq!(
        nodes(&config.providers["lab-overflow"].pools[0])[1].labels,
        strings(&["bare-metal", "gpu"])
    );
    assert_eq!(config.labels["router"].pools, pools(&[("lab", "network")]));
    assert_eq!(
        nodes(&config.providers["lab-overflow"].pools[0])[0].username,
        "ci2"
    );
}

#[test]
fn tenant_limits() {
    let config = load("tenant-limits");
    assert_eq!(config.max_hold_age, Some(86_400));
    let limits = &config.tenant_resource_limits;
    assert_eq!(
        limits["openstack"],
        BTreeMap::from([
            ("instances".into(), 100),
            ("cores".into(), 800),
            ("ram".into(), 1_638_400)
        ])
    );
    assert_eq!(
        limits["starlingx"],
        BTreeMap::from([
            ("instances".into(), 10),
            ("volumes".into(), 5),
            ("volume-gb".into(), 500),
            ("nvidia.com/gpu".into(), 2),
            ("example.com/license".into(), 0),
        ])
    );
    assert!(limits["unlimited"].is_empty(), "no keys: no limits");
    assert_eq!(limits.len(), 3);
}

#[test]
fn webapp() {
    let config = load("webapp");
    assert_eq!(
        config.webapp,
        Webapp {
            port: 9005,
            listen_address: "::".into()
        }
    );
    assert_eq!(config.max_hold_age, None, "0 means no limit");
    assert!(config.providers.is_empty() && config.labels.is_empty());
}

#[test]
fn yaml_quirks() {
    let config = load("yaml-quirks");
    let zk = config.zookeeper.as_ref().expect("zookeeper");
    assert_eq!(zk.servers[0].port, 1473, "02701 is octal in YAML 1.1");
    assert_eq!(config.labels["quirky"].min_ready, 2, "0x2 is hexadecimal");
    assert!(
        config.labels.contains_key("1234"),
        "a quoted number is a name"
    );
    let image = &config.diskimages["quirky-image"];
    assert_eq!(
        image.release, "8.1",
        "release 8.10 is the float 8.1, as str() prints it"
    );
    assert!(!image.pause);
    assert!(image.delete_after_upload, "yes is true");
    assert!(image.elements.is_empty(), "an empty value is no value");
    let provider = &config.providers["quirk-cloud"];
    assert!(openstack(provider).clean_floating_ips, "on is true");
    let pool = &provider.pools[0];
    assert_eq!(pool.labels.len(), 2, "the later `labels` key wins");
    let quirky = openstack_label(pool, "quirky");
    assert_eq!((quirky.min_ram, quirky.console_log), (Some(1024), false));
    assert_eq!(
        openstack_label(pool, "1234").flavor_name.as_deref(),
        Some("4096")
    );
}

#[test]
fn zookeeper_tls_chroot() {
    let config = load("zookeeper-tls-chroot");
    let zk = config.zookeeper.expect("zookeeper");
    assert_eq!(
        zk.hosts(),
        "zk01.example.com:2281,zk02.example.com:2281,[2001:db8::53]:2282/nodepool/production",
        "a trailing slash is dropped"
    );
    assert_eq!(zk.chroot.as_deref(), Some("/nodepool/production"));
    assert_eq!(zk.timeout, 30.5);
    assert_eq!(
        zk.tls.expect("tls").key,
        PathBuf::from("/etc/nodepool/certs/client.key")
    );
}
