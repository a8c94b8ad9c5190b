//! `ContainerProvider`: the provider contract over this machine's containers.

use std::collections::BTreeSet;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use nodepool_config::{
    ContainerProvider as ContainerSettings, LabelSettings, LocalLabel, Provider as ProviderConfig,
    ProviderSettings,
};
use nodepool_driver::{
    CreateMachine, CreateSpec, DeleteMachine, DriverError, ImageUploadSpec, Instance, Provider,
    Quota, Resource, run_delete_machine,
};
use nodepool_model::ExternalId;
use tokio::process::Command;

use crate::host::{self, Tools};
use crate::image;
use crate::machines::{ContainerCreateMachine, ContainerDeleteMachine};
use crate::node_dir::{self, NodeDir, NodeRecord};
use crate::runtime::Runtime;
use nodepool_driver::node_network::{Leases, Subnet};

/// The most of a console log handed to the launcher: its end, where a failure shows.
const CONSOLE_LOG_TAIL: u64 = 64 * 1024;
/// How long `delete_resource` lets the delete machine run.
const DELETE_RESOURCE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// What the provider and its machines share.
#[derive(Debug)]
pub(crate) struct Shared {
    /// The provider's name, for messages.
    pub name: String,
    /// The provider section, for pool labels' cores and RAM.
    pub config: ProviderConfig,
    pub settings: ContainerSettings,
    /// The parsed `subnet`, or why it is unusable (reported by the first create).
    pub subnet: Result<Subnet, String>,
    /// The programs the driver runs, or why it cannot run here (not root, tool missing):
    /// reported by every operation rather than at build time, so a configuration naming a
    /// container provider still loads on a machine that cannot run containers.
    pub tools: Result<Tools, DriverError>,
    /// Serialises making the SSH key pair so two first creates do not both generate one.
    /// Tokio's mutex: held across the `ssh-keygen` subprocess.
    pub key_lock: tokio::sync::Mutex<()>,
}

impl Shared {
    pub fn tools(&self) -> Result<&Tools, DriverError> {
        self.tools.as_ref().map_err(Clone::clone)
    }

    /// The provider's runc, with its own state directory.
    pub fn runtime(&self) -> Result<Runtime, DriverError> {
        Ok(Runtime::new(&self.tools()?.runc, &self.settings.state_dir))
    }

    pub fn subnet(&self) -> Result<Subnet, DriverError> {
        self.subnet
            .clone()
            .map_err(|e| DriverError::Fatal(format!("provider {}: {e}", self.name)))
    }

    pub fn node_dir(&self, hostname: &str) -> NodeDir {
        NodeDir::new(&self.settings.state_dir, hostname)
    }

    pub fn public_key_path(&self) -> PathBuf {
        let mut path = self.settings.ssh_key.clone().into_os_string();
        path.push(".pub");
        PathBuf::from(path)
    }

    /// The public key to inject, making the key pair first if `ssh-key` does not exist.
    pub async fn public_key(&self) -> Result<String, DriverError> {
        let _guard = self.key_lock.lock().await;
        let private = &self.settings.ssh_key;
        let public = self.public_key_path();
        if !private.exists() {
            let tools = self.tools()?;
            if let Some(parent) = private.parent() {
                fs::create_dir_all(parent).map_err(|e| {
                    DriverError::Fatal(format!("cannot create {}: {e}", parent.display()))
                })?;
            }
            // Generated under a temporary name and renamed, public half first: a process
            // that sees the private key also finds the public one.
            let mut tmp = private.clone().into_os_string();
            tmp.push(format!(".tmp-{}", std::process::id()));
            let tmp = PathBuf::from(tmp);
            let mut tmp_pub = tmp.clone().into_os_string();
            tmp_pub.push(".pub");
            let tmp_pub = PathBuf::from(tmp_pub);
            let _ = fs::remove_file(&tmp);
            let _ = fs::remove_file(&tmp_pub);
            host::run(
                Command::new(&tools.ssh_keygen)
                    .args(["-q", "-t", "ed25519", "-N", "", "-C", "nodepool", "-f"])
                    .arg(&tmp),
            )
            .await?;
            fs::rename(&tmp_pub, &public)
                .and_then(|()| fs::rename(&tmp, private))
                .map_err(|e| {
                    DriverError::Fatal(format!(
                        "cannot move the new key pair to {}: {e}",
                        private.display()
                    ))
                })?;
            tracing::info!(provider = %self.name, key = %private.display(), "made the SSH key pair injected into containers");
        }
        let text = fs::read_to_string(&public)
            .map_err(|e| DriverError::Fatal(format!("cannot read {}: {e}", public.display())))?;
        let key = text.trim();
        if key.is_empty() {
            return Err(DriverError::Fatal(format!("{} is empty", public.display())));
        }
        Ok(key.to_string())
    }

    /// The container label settings of `label` in `pool`.
    pub fn label(&self, pool: &str, label: &str) -> Result<&LocalLabel, DriverError> {
        let pool_config = self.config.pool(pool).ok_or_else(|| {
            DriverError::Fatal(format!("provider {} has no pool {pool}", self.name))
        })?;
        let label_config = pool_config.labels.get(label).ok_or_else(|| {
            DriverError::Fatal(format!(
                "pool {pool} of provider {} has no label {label}",
                self.name
            ))
        })?;
        match &label_config.settings {
            LabelSettings::Container(settings) => Ok(settings),
            other => Err(DriverError::Fatal(format!(
                "label {label}: not a container label: {other:?}"
            ))),
        }
    }

    /// What one node of a label uses of this machine.
    pub fn label_quota(settings: &LocalLabel) -> Quota {
        Quota::one_instance()
            .with("cores", f64::from(settings.cores))
            .with("ram", settings.ram as f64)
    }

    /// The instance a node's record describes.
    pub fn instance(&self, record: &NodeRecord) -> Instance {
        let address = record.address.to_string();
        Instance {
            external_id: Some(ExternalId::Id(record.hostname.clone())),
            interface_ip: Some(address.clone()),
            public_ipv4: Some(address.clone()),
            private_ipv4: Some(address),
            metadata: record.tags(),
            connection_port: Some(22),
            connection_type: Some("ssh".into()),
            ..Instance::default()
        }
    }

    /// Every node's record; a node directory without a readable one is listed with no tags
    /// (still a leak candidate for a person to look at, never matched to a node id).
    fn records(&self) -> Result<Vec<(String, Option<NodeRecord>)>, DriverError> {
        let mut out = Vec::new();
        for hostname in node_dir::node_hostnames(&self.settings.state_dir)? {
            let record = match self.node_dir(&hostname).read_record() {
                Ok(record) => record,
                Err(e) => {
                    tracing::warn!(provider = %self.name, hostname, error = %e, "unreadable node record");
                    None
                }
            };
            out.push((hostname, record));
        }
        Ok(out)
    }

    /// Removes containers of this provider's runtime that no node directory names, and
    /// address leases no node directory holds. Every
    /// node's record is written before its container is created and removed after it is
    /// deleted, so such a container belongs to no node, live or being made: a leak (a node
    /// directory removed by hand, a state dir restored from a backup). Nodes need no store
    /// record to be found this way, so the provider cleans them itself.
    pub async fn remove_orphan_containers(&self) -> Result<(), DriverError> {
        let runtime = self.runtime()?;
        // By hostname (a container's id is `<hostname>-<address>`), so a node whose record
        // cannot be read keeps its container for a person to look at.
        let hostnames: BTreeSet<String> = node_dir::node_hostnames(&self.settings.state_dir)?
            .into_iter()
            .collect();
        for id in runtime.list().await? {
            let hostname = id.rsplit_once('-').map_or(id.as_str(), |(h, _)| h);
            if hostnames.contains(hostname) {
                continue;
            }
            tracing::warn!(provider = %self.name, id, "removing a container that no node directory names");
            runtime.kill(&id).await?;
            runtime.delete(&id).await?;
        }
        // Address leases the same way: a create makes its directory before it claims an
        // address, and a delete removes the directory before the lease.
        let leases = Leases::new(&self.settings.state_dir);
        for (address, holder) in leases.list()? {
            if !hostnames.contains(&holder) {
                tracing::warn!(provider = %self.name, %address, holder, "releasing an address no node directory holds");
                leases.release(&holder)?;
            }
        }
        Ok(())
    }

    /// The images that nodes are running from.
    pub fn images_in_use(&self) -> Result<BTreeSet<String>, DriverError> {
        Ok(self
            .records()?
            .into_iter()
            .filter_map(|(_, record)| record.map(|r| r.image))
            .collect())
    }
}

/// One configured container provider.
#[derive(Debug)]
pub struct ContainerProvider {
    shared: Arc<Shared>,
}

impl ContainerProvider {
    /// A provider for `config`, which must be a container provider section.
    pub fn new(config: &ProviderConfig) -> Result<ContainerProvider, DriverError> {
        let ProviderSettings::Container(settings) = &config.settings else {
            return Err(DriverError::Fatal(format!(
                "provider {}: the container driver needs container provider settings",
                config.name
            )));
        };
        for (key, path) in [
            ("image-dir", &settings.image_dir),
            ("state-dir", &settings.state_dir),
        ] {
            // Both end up in overlayfs mount options, where these characters are separators.
            if path.to_string_lossy().contains([',', ':']) || !path.is_absolute() {
                return Err(DriverError::Fatal(format!(
                    "provider {}: {key} {} must be an absolute path without ',' or ':'",
                    config.name,
                    path.display()
                )));
            }
        }
        Ok(ContainerProvider {
            shared: Arc::new(Shared {
                name: config.name.clone(),
                config: config.clone(),
                settings: settings.clone(),
                subnet: Subnet::parse(&settings.subnet),
                tools: Tools::find(),
                key_lock: tokio::sync::Mutex::new(()),
            }),
        })
    }

    /// Where the node with this hostname keeps its files.
    pub fn node_path(&self, hostname: &str) -> PathBuf {
        self.shared.node_dir(hostname).dir
    }

    /// The public half of the injected key pair (made on the first create when missing).
    pub fn public_key_path(&self) -> PathBuf {
        self.shared.public_key_path()
    }
}

fn hostname_of(external_id: &ExternalId) -> Option<&str> {
    match external_id {
        ExternalId::Id(id) => Some(id),
        ExternalId::Fields(_) => None,
    }
}

/// The last `limit` bytes of a file, as text.
fn tail(path: &Path, limit: u64) -> io::Result<String> {
    use std::io::{Read, Seek, SeekFrom};
    let mut file = fs::File::open(path)?;
    let len = file.metadata()?.len();
    if len > limit {
        file.seek(SeekFrom::Start(len - limit))?;
    }
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

pub(crate) fn console_tail(path: &Path) -> String {
    tail(path, CONSOLE_LOG_TAIL).unwrap_or_default()
}

#[async_trait]
impl Provider for ContainerProvider {
    fn name(&self) -> &str {
        &self.shared.name
    }

    fn create_machine(&self, spec: CreateSpec) -> Box<dyn CreateMachine> {
        Box::new(ContainerCreateMachine::new(self.shared.clone(), spec))
    }

    fn delete_machine(&self, external_id: &ExternalId) -> Box<dyn DeleteMachine> {
        Box::new(ContainerDeleteMachine::new(
            self.shared.clone(),
            hostname_of(external_id).map(str::to_string),
        ))
    }

    async fn list_instances(&self) -> Result<Vec<Instance>, DriverError> {
        Ok(self
            .shared
            .records()?
            .into_iter()
            .map(|(hostname, record)| match record {
                Some(record) => self.shared.instance(&record),
                None => Instance {
                    external_id: Some(ExternalId::Id(hostname)),
                    ..Instance::default()
                },
            })
            .collect())
    }

    async fn list_resources(&self) -> Result<Vec<Resource>, DriverError> {
        self.shared.remove_orphan_containers().await?;
        Ok(self
            .shared
            .records()?
            .into_iter()
            .map(|(hostname, record)| Resource {
                kind: "instance".into(),
                id: hostname,
                metadata: record.map(|r| r.tags()).unwrap_or_default(),
            })
            .collect())
    }

    async fn delete_resource(&self, resource: &Resource) -> Result<(), DriverError> {
        if resource.kind != "instance" {
            return Err(DriverError::Fatal(format!(
                "provider {} has no {} resources",
                self.shared.name, resource.kind
            )));
        }
        run_delete_machine(
            self,
            &ExternalId::Id(resource.id.clone()),
            DELETE_RESOURCE_TIMEOUT,
        )
        .await
    }

    async fn quota_limits(&self) -> Result<Quota, DriverError> {
        let cores = std::thread::available_parallelism()
            .map(|n| n.get())
            .map_err(|e| DriverError::Fatal(format!("cannot count this machine's CPUs: {e}")))?;
        Ok(Quota::unlimited()
            .with("cores", cores as f64)
            .with("ram", host::mem_total_mib()? as f64))
    }

    async fn quota_for_label(&self, pool: &str, label: &str) -> Result<Quota, DriverError> {
        Ok(Shared::label_quota(self.shared.label(pool, label)?))
    }

    async fn console_log(&self, external_id: &ExternalId) -> Option<String> {
        let hostname = hostname_of(external_id)?;
        if !node_dir::valid_name(hostname) {
            return None;
        }
        tail(
            &self.shared.node_dir(hostname).console_log(),
            CONSOLE_LOG_TAIL,
        )
        .ok()
    }

    async fn upload_image(&self, upload: &ImageUploadSpec) -> Result<String, DriverError> {
        image::upload(&self.shared, upload).await
    }

    async fn delete_image(&self, external_id: &str) -> Result<(), DriverError> {
        image::delete(&self.shared, external_id).await
    }
}
