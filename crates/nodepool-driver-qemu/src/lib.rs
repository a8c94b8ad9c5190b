//! The `qemu` driver (DESIGN.md section 8): nodes are virtual machines on this machine.
//!
//! Uploading an image copies it into the provider's `image-dir`. A node is
//! `qemu-system-x86_64` (KVM when it works, TCG otherwise) on a qcow2 overlay of the image,
//! and a small config disk carrying its hostname and the provider's SSH key for the image's
//! first-boot step (`nodepool-native-image`). QEMU runs inside a network namespace of the
//! node's own, joined to this machine by a veth pair with a /30 from the provider's `subnet`
//! (`nodepool_driver::node_network`); its user-mode network forwards port 22 of the
//! namespace's address to the guest's SSH, and the node firewall lets the guest reach the
//! world through NAT but no address of this machine and no other node (see `machines`).
//! VMs are daemons tracked by pidfile in a node directory named after the node
//! (`<state-dir>/np<id>`), so they outlive a launcher restart and leak cleanup finds them by
//! node id. Quota is the host's cores and memory (or `host-cores` / `host-ram`).
//!
//! The driver runs only as root, with `ip` (iproute2) and `nft` (nftables).

// Tests may unwrap: a panic there is a test failure with a backtrace.
#![cfg_attr(test, allow(clippy::unwrap_used))]

mod host;
mod machines;
mod node_dir;

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use nodepool_config::{
    CloudImageSource, DriverKind, LabelImage, LabelSettings, LocalLabel,
    Provider as ProviderConfig, ProviderSettings, QemuAccel,
};
use nodepool_driver::node_network::Subnet;
use nodepool_driver::{
    CreateMachine, CreateSpec, DeleteMachine, Driver, DriverError, ImageUploadSpec, Instance,
    Provider, Quota, Resource,
};
use nodepool_model::ExternalId;

pub use host::{Tools, cpu_has_virtualization, use_kvm};
pub use machines::tail;
pub use node_dir::{NodeDir, NodeRecord};

/// The provider settings the machines need.
#[derive(Debug, Clone)]
pub struct Settings {
    pub provider: String,
    pub image_dir: PathBuf,
    pub state_dir: PathBuf,
    pub qemu_binary: String,
    pub accel: QemuAccel,
    pub boot_timeout: u64,
    /// Where each node's /30 comes from.
    pub subnet: Subnet,
    pub ssh_key: PathBuf,
    pub host_cores: Option<u32>,
    pub host_ram: Option<u64>,
    /// `ip` and `nft`, or why they cannot be used (not root, not installed): found when
    /// the provider is made, reported by the first create or delete that needs them.
    pub tools: Result<Tools, DriverError>,
}

impl Settings {
    pub fn tools(&self) -> Result<&Tools, DriverError> {
        self.tools.as_ref().map_err(Clone::clone)
    }
}

#[derive(Debug, Default)]
pub struct QemuDriver;

impl QemuDriver {
    pub fn new() -> QemuDriver {
        QemuDriver
    }
}

impl Driver for QemuDriver {
    fn kind(&self) -> DriverKind {
        DriverKind::Qemu
    }

    fn build(&self, config: &ProviderConfig) -> Result<Arc<dyn Provider>, DriverError> {
        Ok(Arc::new(QemuProvider::new(config)?))
    }
}

#[derive(Debug)]
pub struct QemuProvider {
    config: ProviderConfig,
    settings: Arc<Settings>,
}

impl QemuProvider {
    pub fn new(config: &ProviderConfig) -> Result<QemuProvider, DriverError> {
        let ProviderSettings::Qemu(s) = &config.settings else {
            return Err(DriverError::Fatal(format!(
                "provider {}: the qemu driver needs qemu provider settings",
                config.name
            )));
        };
        let subnet = Subnet::parse(&s.subnet)
            .map_err(|e| DriverError::Fatal(format!("provider {}: {e}", config.name)))?;
        Ok(QemuProvider {
            settings: Arc::new(Settings {
                provider: config.name.clone(),
                image_dir: s.image_dir.clone(),
                state_dir: s.state_dir.clone(),
                qemu_binary: s.qemu_binary.clone(),
                accel: s.accel,
                boot_timeout: s.boot_timeout,
                subnet,
                ssh_key: s.ssh_key.clone(),
                host_cores: s.host_cores,
                host_ram: s.host_ram,
                tools: Tools::find(),
            }),
            config: config.clone(),
        })
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    fn label(&self, pool: &str, label: &str) -> Result<(&LabelImage, &LocalLabel), DriverError> {
        let found = self
            .config
            .pool(pool)
            .and_then(|p| p.labels.get(label))
            .ok_or_else(|| {
                DriverError::Fatal(format!(
                    "provider {} has no label {label} in pool {pool}",
                    self.config.name
                ))
            })?;
        match &found.settings {
            LabelSettings::Qemu(settings) => Ok((&found.image, settings)),
            other => Err(DriverError::Fatal(format!(
                "label {label}: not a qemu label: {other:?}"
            ))),
        }
    }

    /// The image file a label's nodes start from, with the cloud image's user.
    fn image_for(
        &self,
        image: &LabelImage,
        upload_id: Option<&str>,
    ) -> Result<(PathBuf, Option<String>), DriverError> {
        match (image, upload_id) {
            (_, Some(id)) => Ok((self.upload_path(id)?, None)),
            (LabelImage::CloudImage(name), None) => {
                let cloud = self.config.cloud_images.get(name).ok_or_else(|| {
                    DriverError::Fatal(format!(
                        "provider {} has no cloud-image {name}",
                        self.config.name
                    ))
                })?;
                match &cloud.source {
                    CloudImageSource::Path(path) => Ok((path.clone(), cloud.username.clone())),
                    other => Err(DriverError::Fatal(format!(
                        "cloud-image {name}: the qemu driver needs a `path`, not {other:?}"
                    ))),
                }
            }
            (other, None) => Err(DriverError::Fatal(format!(
                "no uploaded image for {other:?} in provider {}",
                self.config.name
            ))),
        }
    }

    /// An upload id is a file name in `image-dir`; nothing else is accepted.
    fn upload_path(&self, id: &str) -> Result<PathBuf, DriverError> {
        if id.is_empty() || id.contains('/') || id.starts_with('.') {
            return Err(DriverError::NotFound(format!("no image {id:?}")));
        }
        Ok(self.settings.image_dir.join(id))
    }
}

/// What the launcher is told about a node: its SSH is port 22 at its namespace's address
/// (or, for a node made before VMs had namespaces, a port on 127.0.0.1).
pub(crate) fn instance_of(record: &NodeRecord, username: Option<String>) -> Instance {
    let ssh = record.ssh_address();
    let ip = ssh.ip().to_string();
    Instance {
        external_id: Some(ExternalId::Id(record.hostname.clone())),
        interface_ip: Some(ip.clone()),
        public_ipv4: Some(ip.clone()),
        private_ipv4: record.address.map(|_| ip),
        public_ipv6: None,
        private_ipv6: None,
        cloud: None,
        region: None,
        az: None,
        host_id: None,
        driver_data: serde_json::Value::Null,
        slot: None,
        node_properties: None,
        metadata: record.metadata.clone(),
        resources: Some(
            Quota::one_instance()
                .with("cores", f64::from(record.cores))
                .with("ram", record.ram as f64),
        ),
        username,
        python_path: None,
        shell_type: None,
        connection_port: Some(ssh.port()),
        connection_type: Some("ssh".into()),
        connection_credentials: None,
        host_keys: None,
    }
}

/// A create that fails at its first step (the launcher records the error and retries).
#[derive(Debug)]
struct FailedCreate(Option<DriverError>);

#[async_trait]
impl CreateMachine for FailedCreate {
    async fn advance(&mut self) -> Result<Option<Instance>, DriverError> {
        Err(self
            .0
            .take()
            .unwrap_or_else(|| DriverError::Fatal("create failed".into())))
    }
    fn state(&self) -> &str {
        "failed"
    }
    fn external_id(&self) -> Option<ExternalId> {
        None
    }
}

#[async_trait]
impl Provider for QemuProvider {
    fn name(&self) -> &str {
        &self.config.name
    }

    fn create_machine(&self, spec: CreateSpec) -> Box<dyn CreateMachine> {
        let prepared = self
            .label(&spec.pool, &spec.label)
            .and_then(|(image, label)| {
                let (path, username) = self.image_for(image, spec.image_external_id.as_deref())?;
                Ok(machines::Launch {
                    settings: self.settings.clone(),
                    hostname: spec.hostname.clone(),
                    pool: spec.pool.clone(),
                    label: spec.label.clone(),
                    image: path,
                    cores: label.cores,
                    ram: label.ram,
                    disk_size: label.disk_size,
                    metadata: spec.metadata.clone(),
                    username,
                })
            });
        match prepared {
            Ok(launch) => Box::new(machines::QemuCreate::new(launch)),
            Err(e) => Box::new(FailedCreate(Some(e))),
        }
    }

    fn delete_machine(&self, external_id: &ExternalId) -> Box<dyn DeleteMachine> {
        let hostname = match external_id {
            ExternalId::Id(id) => id.clone(),
            ExternalId::Fields(_) => String::new(),
        };
        Box::new(machines::QemuDelete::new(self.settings.clone(), &hostname))
    }

    async fn list_instances(&self) -> Result<Vec<Instance>, DriverError> {
        Ok(node_dir::all_records(&self.settings.state_dir)
            .values()
            .map(|r| instance_of(r, None))
            .collect())
    }

    async fn list_resources(&self) -> Result<Vec<Resource>, DriverError> {
        let records = node_dir::all_records(&self.settings.state_dir);
        Ok(node_dir::all_dirs(&self.settings.state_dir)
            .into_iter()
            .map(|hostname| Resource {
                kind: "instance".into(),
                metadata: records
                    .get(&hostname)
                    .map(|r| r.metadata.clone())
                    .unwrap_or_default(),
                id: hostname,
            })
            .collect())
    }

    async fn delete_resource(&self, resource: &Resource) -> Result<(), DriverError> {
        nodepool_driver::run_delete_machine(
            self,
            &ExternalId::Id(resource.id.clone()),
            std::time::Duration::from_secs(60),
        )
        .await
    }

    async fn quota_limits(&self) -> Result<Quota, DriverError> {
        let cores = self.settings.host_cores.unwrap_or_else(host::host_cores);
        let ram = self.settings.host_ram.unwrap_or_else(host::host_ram_mib);
        Ok(Quota::unlimited()
            .with("cores", f64::from(cores))
            .with("ram", ram as f64))
    }

    async fn quota_for_label(&self, pool: &str, label: &str) -> Result<Quota, DriverError> {
        let (_, settings) = self.label(pool, label)?;
        Ok(Quota::one_instance()
            .with("cores", f64::from(settings.cores))
            .with("ram", settings.ram as f64))
    }

    async fn label_ready(&self, pool: &str, label: &str) -> bool {
        match self.label(pool, label) {
            Ok((image @ LabelImage::CloudImage(_), _)) => self
                .image_for(image, None)
                .is_ok_and(|(path, _)| path.is_file()),
            Ok(_) => true,
            Err(_) => false,
        }
    }

    async fn console_log(&self, external_id: &ExternalId) -> Option<String> {
        let ExternalId::Id(hostname) = external_id else {
            return None;
        };
        if hostname.contains(['/', '.']) {
            return None;
        }
        let console = NodeDir::new(&self.settings.state_dir, hostname).console();
        console.exists().then(|| tail(&console, 64 * 1024))
    }

    /// Copies the image into `image-dir` (under a temporary name, renamed when complete);
    /// the file name is the image's id.
    async fn upload_image(&self, upload: &ImageUploadSpec) -> Result<String, DriverError> {
        let id = format!("{}.{}", upload.external_name, upload.format);
        let target = self.upload_path(&id)?;
        let dir = &self.settings.image_dir;
        tokio::fs::create_dir_all(dir)
            .await
            .map_err(|e| node_dir::io_error("creating", dir, e))?;
        let part = dir.join(format!(".{id}.part"));
        tokio::fs::copy(&upload.path, &part)
            .await
            .map_err(|e| node_dir::io_error("copying the image to", &part, e))?;
        tokio::fs::rename(&part, &target)
            .await
            .map_err(|e| node_dir::io_error("renaming", &target, e))?;
        tracing::info!(provider = %self.config.name, image = %id, "image placed in the image directory");
        Ok(id)
    }

    /// Running VMs keep their overlay's backing file open, so deleting an image under them
    /// is safe; new nodes can no longer use it.
    async fn delete_image(&self, external_id: &str) -> Result<(), DriverError> {
        let path = self.upload_path(external_id)?;
        match tokio::fs::remove_file(&path).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Err(DriverError::NotFound(format!("image {external_id}")))
            }
            Err(e) => Err(node_dir::io_error("removing", &path, e)),
        }
    }
}
