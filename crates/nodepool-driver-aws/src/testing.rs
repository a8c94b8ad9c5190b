//! Test support: a local moto server (a Python AWS emulator) as a child process.
//!
//! Only built with the `testing` feature; the driver's own tests and the launcher's aws
//! scenarios use it.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The access key tests sign with; moto accepts anything.
pub const ACCESS_KEY: &str = "testing";
pub const SECRET_KEY: &str = "testing";
pub const REGION: &str = "us-east-1";

/// A moto server on a free port of 127.0.0.1, killed on drop.
#[derive(Debug)]
pub struct MotoServer {
    child: Child,
    pub port: u16,
}

impl MotoServer {
    /// `moto_server` from `$NODEPOOL_TEST_VENV` (default `/var/tmp/nodepool-venv`).
    pub fn binary() -> PathBuf {
        let venv = std::env::var_os("NODEPOOL_TEST_VENV")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/var/tmp/nodepool-venv"));
        venv.join("bin/moto_server")
    }

    /// Starts moto and waits until it answers. Moto's ~1300 default AMIs are not loaded
    /// (listing them on every leak pass is slow); tests register their own.
    pub fn start() -> std::io::Result<MotoServer> {
        let port = {
            let listener = TcpListener::bind("127.0.0.1:0")?;
            listener.local_addr()?.port()
        };
        let child = Command::new(Self::binary())
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .env("MOTO_EC2_LOAD_DEFAULT_AMIS", "false")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        let server = MotoServer { child, port };
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Ok(server);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Err(std::io::Error::other("moto_server did not start in 60 s"))
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for MotoServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An EC2 client for test set-up against `endpoint`.
pub async fn ec2_client(endpoint: &str) -> aws_sdk_ec2::Client {
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(REGION))
        .endpoint_url(endpoint)
        .credentials_provider(aws_credential_types::Credentials::new(
            ACCESS_KEY, SECRET_KEY, None, None, "test",
        ))
        .load()
        .await;
    aws_sdk_ec2::Client::new(&sdk)
}

/// Registers an AMI named `name` backed by a fresh 8 GiB snapshot; returns its id.
pub async fn register_test_image(
    ec2: &aws_sdk_ec2::Client,
    name: &str,
) -> Result<String, aws_sdk_ec2::Error> {
    use aws_sdk_ec2::types::{ArchitectureValues, BlockDeviceMapping, EbsBlockDevice};
    let volume = ec2
        .create_volume()
        .availability_zone(format!("{REGION}a"))
        .size(8)
        .send()
        .await?;
    let volume_id = volume.volume_id().unwrap_or_default().to_string();
    let snapshot = ec2.create_snapshot().volume_id(&volume_id).send().await?;
    ec2.delete_volume().volume_id(&volume_id).send().await?;
    let image = ec2
        .register_image()
        .name(name)
        .root_device_name("/dev/sda1")
        .virtualization_type("hvm")
        .architecture(ArchitectureValues::X8664)
        .block_device_mappings(
            BlockDeviceMapping::builder()
                .device_name("/dev/sda1")
                .ebs(
                    EbsBlockDevice::builder()
                        .set_snapshot_id(snapshot.snapshot_id().map(str::to_string))
                        .volume_size(8)
                        .build(),
                )
                .build(),
        )
        .send()
        .await?;
    Ok(image.image_id().unwrap_or_default().to_string())
}

/// Runs an instance of `image_id` with `tags`, as a launcher that died after
/// `RunInstances` would have left it; returns its id.
pub async fn run_tagged_instance(
    ec2: &aws_sdk_ec2::Client,
    image_id: &str,
    tags: &[(&str, &str)],
) -> Result<String, aws_sdk_ec2::Error> {
    use aws_sdk_ec2::types::{InstanceType, ResourceType, Tag, TagSpecification};
    let tags = tags
        .iter()
        .map(|(k, v)| Tag::builder().key(*k).value(*v).build())
        .collect::<Vec<_>>();
    let out = ec2
        .run_instances()
        .image_id(image_id)
        .min_count(1)
        .max_count(1)
        .instance_type(InstanceType::T3Micro)
        .tag_specifications(
            TagSpecification::builder()
                .resource_type(ResourceType::Instance)
                .set_tags(Some(tags))
                .build(),
        )
        .send()
        .await?;
    Ok(out
        .instances()
        .first()
        .and_then(|i| i.instance_id())
        .unwrap_or_default()
        .to_string())
}

/// Ids and states of every instance moto knows, with their tags.
pub async fn instances(
    ec2: &aws_sdk_ec2::Client,
) -> Result<Vec<(String, String, std::collections::BTreeMap<String, String>)>, aws_sdk_ec2::Error> {
    let out = ec2.describe_instances().send().await?;
    Ok(out
        .reservations()
        .iter()
        .flat_map(|r| r.instances())
        .map(|i| {
            (
                i.instance_id().unwrap_or_default().to_string(),
                i.state()
                    .and_then(|s| s.name())
                    .map(|n| n.as_str().to_string())
                    .unwrap_or_default(),
                crate::tags::ec2_tag_map(i.tags()),
            )
        })
        .collect())
}
