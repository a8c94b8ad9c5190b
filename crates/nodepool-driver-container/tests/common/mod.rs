//! What the container driver's tests share: a provider on a temporary state dir, the native
//! test image uploaded to it, and create, delete and SSH helpers.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use nodepool_driver::{
    CreateSpec, DriverError, ImageUploadSpec, Instance, Metadata, Provider, metadata_keys,
};
use nodepool_driver_container::ContainerDriver;
use nodepool_model::ExternalId;

/// The login user of the native test image (`nodepool_testkit::images`).
pub const TEST_IMAGE_USER: &str = "zuul";
pub const CREATE_TIMEOUT: Duration = Duration::from_secs(60);
pub const IMAGE: &str = "ct-image-0000000001";

pub struct Cloud {
    pub dir: tempfile::TempDir,
    pub provider: Arc<dyn Provider>,
}

impl Cloud {
    pub fn state_dir(&self) -> PathBuf {
        self.dir.path().join("nodes")
    }

    pub fn key(&self) -> PathBuf {
        self.dir.path().join("keys/id_ed25519")
    }
}

pub fn cloud(subnet: &str) -> Cloud {
    cloud_with_label(subnet, "cores: 2\n            ram: 512\n")
}

/// A provider whose one label `ct` has the settings in `label_settings` (YAML lines, each
/// indented by 12 spaces but the first).
pub fn cloud_with_label(subnet: &str, label_settings: &str) -> Cloud {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().display();
    let text = format!(
        "labels:\n  - name: ct\ndiskimages:\n  - name: ct-image\nproviders:\n  - name: ct\n    driver: container\n    image-dir: {root}/images\n    state-dir: {root}/nodes\n    subnet: {subnet}\n    boot-timeout: 30\n    ssh-key: {root}/keys/id_ed25519\n    diskimages:\n      - name: ct-image\n    pools:\n      - name: main\n        labels:\n          - name: ct\n            diskimage: ct-image\n            {label_settings}"
    );
    let loaded = nodepool_config::parse_config(
        Path::new("nodepool.yaml"),
        &text,
        None,
        &nodepool_config::Env::new(),
    )
    .expect("valid configuration");
    let config = loaded.config.providers.get("ct").expect("provider ct");
    let provider =
        nodepool_driver::Driver::build(&ContainerDriver::new(), config).expect("provider builds");
    Cloud { dir, provider }
}

pub async fn upload(cloud: &Cloud) -> String {
    // The native builder's own image, as the builder would upload it.
    let tar = nodepool_testkit::images::native_test_image()
        .await
        .expect("native test image")
        .file("tar");
    let began = Instant::now();
    let id = cloud
        .provider
        .upload_image(&ImageUploadSpec {
            image_name: "ct-image".into(),
            external_name: IMAGE.into(),
            path: tar,
            format: "tar".into(),
            metadata: Metadata::new(),
            md5: None,
            sha256: None,
        })
        .await
        .expect("upload");
    eprintln!("image unpacked in {:.2} s", began.elapsed().as_secs_f64());
    assert_eq!(id, IMAGE);
    id
}

pub fn spec(node_id: &str, image: &str) -> CreateSpec {
    let mut metadata = Metadata::new();
    metadata.insert(metadata_keys::NODE_ID.into(), node_id.into());
    metadata.insert(metadata_keys::POOL_NAME.into(), "main".into());
    metadata.insert(metadata_keys::PROVIDER_NAME.into(), "ct".into());
    CreateSpec {
        hostname: format!("np{node_id}"),
        pool: "main".into(),
        label: "ct".into(),
        image_external_id: Some(image.into()),
        metadata,
        az: None,
        request: None,
    }
}

/// Runs a create machine to the end, as the launcher does.
pub async fn create(provider: &dyn Provider, spec: CreateSpec) -> Result<Instance, DriverError> {
    create_timed(provider, spec, false).await
}

/// `create`, optionally printing how long each step took.
pub async fn create_timed(
    provider: &dyn Provider,
    spec: CreateSpec,
    print_steps: bool,
) -> Result<Instance, DriverError> {
    let mut machine = provider.create_machine(spec);
    let began = Instant::now();
    let mut step_began = began;
    let mut state = machine.state().to_string();
    loop {
        let step = machine.advance().await?;
        if print_steps && (machine.state() != state || step.is_some()) {
            eprintln!(
                "  step {state:?}: {:.3} s",
                step_began.elapsed().as_secs_f64()
            );
            state = machine.state().to_string();
            step_began = Instant::now();
        }
        if let Some(instance) = step {
            return Ok(instance);
        }
        assert!(
            began.elapsed() < CREATE_TIMEOUT,
            "create stuck in {}",
            machine.state()
        );
        tokio::time::sleep(machine.poll_after()).await;
    }
}

pub async fn delete(provider: &dyn Provider, hostname: &str) -> Result<(), DriverError> {
    nodepool_driver::run_delete_machine(
        provider,
        &ExternalId::Id(hostname.into()),
        Duration::from_secs(60),
    )
    .await
}

/// `ssh <user>@<instance> <command>` with the provider's key, trusting only the host keys
/// the instance reported. Returns stdout.
pub fn ssh(cloud: &Cloud, instance: &Instance, user: &str, command: &str) -> String {
    ssh_with_input(cloud, instance, user, command, "")
}

/// [`ssh`] with `input` on the command's standard input.
pub fn ssh_with_input(
    cloud: &Cloud,
    instance: &Instance,
    user: &str,
    command: &str,
    input: &str,
) -> String {
    use std::io::Write as _;
    let ip = instance.interface_ip.clone().expect("interface ip");
    let known_hosts = cloud.dir.path().join(format!("known_hosts-{ip}"));
    let lines: String = instance
        .host_keys
        .as_ref()
        .expect("host keys")
        .iter()
        .map(|key| format!("{ip} {key}\n"))
        .collect();
    std::fs::write(&known_hosts, lines).expect("known_hosts");
    let mut child = Command::new("ssh")
        .arg("-i")
        .arg(cloud.key())
        .args(["-o", "StrictHostKeyChecking=yes", "-o"])
        .arg(format!("UserKnownHostsFile={}", known_hosts.display()))
        .args([
            "-o",
            "BatchMode=yes",
            "-o",
            "ConnectTimeout=10",
            "-o",
            "LogLevel=ERROR",
        ])
        .arg(format!("{user}@{ip}"))
        .arg(command)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run ssh");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
        .expect("write stdin");
    let output = child.wait_with_output().expect("ssh");
    assert!(
        output.status.success(),
        "ssh {user}@{ip} {command} failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

pub fn address_of(instance: &Instance) -> std::net::Ipv4Addr {
    instance
        .interface_ip
        .as_deref()
        .expect("interface ip")
        .parse()
        .expect("an IPv4 address")
}
