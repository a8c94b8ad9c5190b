//! The validated configuration: every default applied, every reference checked.
//!
//! Types here cannot be half-checked: a `Config` exists only when validation found no
//! errors. Drivers read their own section (`ProviderSettings`), everything else is shared.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use serde_json::{Map, Value as Json};

/// The whole `nodepool.yaml` after validation.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// `None` means the embedded store (no `zookeeper-servers`).
    pub zookeeper: Option<ZooKeeper>,
    /// Ours: the embedded store's database file, when there is no ZooKeeper.
    pub database: Option<PathBuf>,
    pub webapp: Webapp,
    pub elements_dir: Option<PathBuf>,
    pub images_dir: Option<PathBuf>,
    pub build_log_dir: PathBuf,
    /// Logs kept per image; negative keeps all.
    pub build_log_retention: i64,
    /// Seconds; `None` is no limit.
    pub max_hold_age: Option<u64>,
    pub labels: BTreeMap<String, Label>,
    /// Buildable (non-abstract) diskimages with inheritance applied.
    pub diskimages: BTreeMap<String, DiskImage>,
    pub providers: BTreeMap<String, Provider>,
    pub tenant_resource_limits: BTreeMap<String, ResourceLimits>,
}

impl Config {
    /// Pools (provider name, pool) that offer a label, in provider order.
    pub fn pools_for_label<'c>(
        &'c self,
        label: &'c str,
    ) -> impl Iterator<Item = (&'c Provider, &'c Pool)> + 'c {
        self.providers
            .values()
            .flat_map(|p| p.pools.iter().map(move |pool| (p, pool)))
            .filter(move |(_, pool)| pool.labels.contains_key(label))
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ZooKeeper {
    pub servers: Vec<ZooKeeperServer>,
    /// One chroot for the whole ensemble (spec 1.1: Nodepool's per-host chroots only work
    /// for a single server; we apply one consistently).
    pub chroot: Option<String>,
    /// `None` only for development; Python Nodepool refuses to start without it.
    pub tls: Option<ZooKeeperTls>,
    /// Session timeout in seconds.
    pub timeout: f64,
}

impl ZooKeeper {
    /// The connection string as Nodepool builds it: `host:port,host:port/chroot`, IPv6
    /// literals in brackets.
    pub fn hosts(&self) -> String {
        let hosts: Vec<String> = self.servers.iter().map(ZooKeeperServer::address).collect();
        format!(
            "{}{}",
            hosts.join(","),
            self.chroot.as_deref().unwrap_or("")
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZooKeeperServer {
    pub host: String,
    pub port: u16,
}

impl ZooKeeperServer {
    /// `host:port`, with IPv6 literals in brackets.
    pub fn address(&self) -> String {
        if self.host.parse::<std::net::Ipv6Addr>().is_ok() {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZooKeeperTls {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub ca: PathBuf,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Webapp {
    pub port: u16,
    pub listen_address: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Label {
    pub name: String,
    pub min_ready: u32,
    /// Seconds; 0 means READY nodes never expire.
    pub max_ready_age: u64,
    /// `(provider, pool)` pairs offering this label, in config order.
    pub pools: Vec<(String, String)>,
}

/// Resource limits by resource name (`cores`, `instances`, `ram`, `volumes`, `volume-gb`,
/// or any driver resource); a missing resource is unlimited.
pub type ResourceLimits = BTreeMap<String, i64>;

/// A diskimage's `env-vars`. The secure file's values (registry passwords, tokens) are
/// merged in, so `Debug` shows the names only.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct EnvVars(pub BTreeMap<String, String>);

impl std::fmt::Debug for EnvVars {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map()
            .entries(self.0.keys().map(|name| (name, "<hidden>")))
            .finish()
    }
}

impl std::ops::Deref for EnvVars {
    type Target = BTreeMap<String, String>;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl std::ops::DerefMut for EnvVars {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

impl PartialEq<BTreeMap<String, String>> for EnvVars {
    fn eq(&self, other: &BTreeMap<String, String>) -> bool {
        self.0 == *other
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct DiskImage {
    pub name: String,
    pub elements: Vec<String>,
    pub env_vars: EnvVars,
    /// Configured formats united with the image type of every provider that uploads it.
    pub formats: BTreeSet<String>,
    pub keep_formats: BTreeSet<String>,
    pub delete_after_upload: bool,
    pub release: String,
    pub dib_cmd: String,
    /// Seconds.
    pub rebuild_age: u64,
    /// Seconds.
    pub build_timeout: u64,
    pub pause: bool,
    pub username: String,
    pub python_path: String,
    pub shell_type: Option<String>,
    pub metadata: Map<String, Json>,
    pub backend: BuildBackend,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BuildBackend {
    /// diskimage-builder's `disk-image-create`, as Nodepool runs it.
    Dib,
    /// Ours: debootstrap + `mke2fs -d` + `qemu-img`, no loop devices or mounts.
    Native(NativeBuild),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NativeBuild {
    pub distribution: String,
    pub mirror: Option<String>,
    pub packages: Vec<String>,
    /// GiB.
    pub disk_size: u64,
    pub kernel: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DriverKind {
    OpenStack,
    Fake,
    Static,
    Aws,
    Kubernetes,
    /// Pods in existing projects (namespaces) named by the pools, made with the launcher's
    /// own credentials. Its settings are the kubernetes ones (`ProviderSettings::Kubernetes`,
    /// `PoolSettings::Kubernetes`, `LabelSettings::Kubernetes` with `kind` `pod`).
    OpenShiftPods,
    Qemu,
    Container,
}

impl DriverKind {
    pub fn name(self) -> &'static str {
        match self {
            DriverKind::OpenStack => "openstack",
            DriverKind::Fake => "fake",
            DriverKind::Static => "static",
            DriverKind::Aws => "aws",
            DriverKind::Kubernetes => "kubernetes",
            DriverKind::OpenShiftPods => "openshiftpods",
            DriverKind::Qemu => "qemu",
            DriverKind::Container => "container",
        }
    }

    pub fn from_name(name: &str) -> Option<DriverKind> {
        Some(match name {
            "openstack" => DriverKind::OpenStack,
            "fake" => DriverKind::Fake,
            "static" => DriverKind::Static,
            "aws" => DriverKind::Aws,
            "kubernetes" => DriverKind::Kubernetes,
            "openshiftpods" => DriverKind::OpenShiftPods,
            "qemu" => DriverKind::Qemu,
            "container" => DriverKind::Container,
            _ => return None,
        })
    }

    /// Whether the builder uploads images to providers of this driver.
    pub fn manages_images(self) -> bool {
        !matches!(
            self,
            DriverKind::Static | DriverKind::Kubernetes | DriverKind::OpenShiftPods
        )
    }

    /// Whether a request waits (pauses) at quota rather than being released (spec 2.6).
    pub fn pauses_at_quota(self) -> bool {
        self != DriverKind::Static
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Provider {
    pub name: String,
    pub driver: DriverKind,
    /// `None` is unlimited (Nodepool's -1); `Some(0)` processes no requests.
    pub max_concurrency: Option<u32>,
    pub priority: Option<i64>,
    pub pools: Vec<Pool>,
    /// Diskimages uploaded to this provider, by name.
    pub diskimages: BTreeMap<String, ProviderDiskImage>,
    pub cloud_images: BTreeMap<String, CloudImage>,
    /// The image format this provider takes (`qcow2`, `raw`, `vhd`...), if it manages images.
    pub image_type: Option<String>,
    pub settings: ProviderSettings,
}

impl Provider {
    pub fn pool(&self, name: &str) -> Option<&Pool> {
        self.pools.iter().find(|p| p.name == name)
    }
}

/// How a provider treats one diskimage.
#[derive(Debug, Clone, PartialEq)]
pub struct ProviderDiskImage {
    pub name: String,
    /// Uploads of this image to this provider are paused.
    pub pause: bool,
    pub connection_type: String,
    pub connection_port: u16,
    pub username: Option<String>,
    pub python_path: String,
    pub shell_type: Option<String>,
    pub config_drive: Option<bool>,
    /// Cloud image metadata (OpenStack `meta`, AWS `tags`).
    pub meta: Map<String, Json>,
    pub driver: ProviderDiskImageSettings,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ProviderDiskImageSettings {
    None,
    Aws(AwsDiskImage),
}

#[derive(Debug, Clone, PartialEq)]
pub struct AwsDiskImage {
    pub architecture: String,
    pub ena_support: bool,
    pub volume_size: Option<i64>,
    pub volume_type: String,
    pub import_method: String,
    pub imds_support: Option<String>,
    pub iops: Option<i64>,
    pub throughput: Option<i64>,
}

/// An image that exists in the cloud already (not built by us).
#[derive(Debug, Clone, PartialEq)]
pub struct CloudImage {
    pub name: String,
    pub source: CloudImageSource,
    pub username: Option<String>,
    pub python_path: String,
    pub shell_type: Option<String>,
    pub connection_type: String,
    pub connection_port: u16,
    pub config_drive: Option<bool>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum CloudImageSource {
    /// Looked up by the cloud-image's own name.
    Name(String),
    Id(String),
    /// AWS `image-filters`: (name, values).
    Filters(Vec<(String, Vec<String>)>),
    /// Qemu: an image file on this machine.
    Path(PathBuf),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Pool {
    pub name: String,
    /// `None` is unlimited; `<= 0` declines every request.
    pub max_servers: Option<i64>,
    /// Pool priority, else provider priority, else 100 (lower is preferred).
    pub priority: i64,
    pub node_attributes: Option<Map<String, Json>>,
    pub labels: BTreeMap<String, PoolLabel>,
    /// Resource limits beyond `max-servers` (`cores`, `ram`, `volumes`, `volume-gb`, ...).
    pub max_resources: ResourceLimits,
    pub settings: PoolSettings,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PoolLabel {
    pub name: String,
    pub image: LabelImage,
    pub settings: LabelSettings,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LabelImage {
    Diskimage(String),
    CloudImage(String),
    /// Static hosts and kubernetes pods need no image from us.
    None,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ProviderSettings {
    OpenStack(OpenStackProvider),
    Static,
    Aws(AwsProvider),
    /// Kubernetes and openshiftpods providers (the same keys; `Provider::driver` tells them
    /// apart).
    Kubernetes(KubernetesProvider),
    Qemu(QemuProvider),
    Container(ContainerProvider),
}

#[derive(Debug, Clone, PartialEq)]
pub struct OpenStackProvider {
    pub cloud: String,
    pub region_name: Option<String>,
    /// Seconds between API calls.
    pub rate: f64,
    pub boot_timeout: u64,
    pub launch_timeout: u64,
    pub launch_retries: u32,
    pub image_upload_timeout: u64,
    pub image_name_format: String,
    pub clean_floating_ips: bool,
    pub port_cleanup_interval: u64,
    pub post_upload_hook: Option<PathBuf>,
    /// Only for `driver: fake`.
    pub fake: Option<FakeCloud>,
}

/// Ours: the fake cloud's quota, injected faults and state file (`fake-quota`, `fake-faults`,
/// `fake-state`).
#[derive(Debug, Clone, PartialEq)]
pub struct FakeCloud {
    pub instances: i64,
    pub cores: i64,
    pub ram: i64,
    pub faults: FakeFaults,
    /// Where the cloud keeps its servers and images so they survive a killed launcher;
    /// `None` keeps them in memory only.
    pub state_file: Option<PathBuf>,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct FakeFaults {
    pub launch_failures: u64,
    pub quota_errors: u64,
    pub delete_failures: u64,
    pub api_errors: u64,
    pub upload_failures: u64,
    /// Server creates (deletes) that never answer: the call hangs and changes nothing.
    pub hung_creates: u64,
    pub hung_deletes: u64,
    /// Console log fetches that never answer.
    pub hung_console_logs: u64,
    /// Probabilities (0 to 1) of a fault at each call, after the counted faults above, drawn
    /// by each process from `fault_seed` and its process id: any server API call (create,
    /// delete, list, get) failing with a transient error;
    pub api_error_rate: f64,
    /// a server create failing with the quota error;
    pub quota_error_rate: f64,
    /// a server create or delete that never answers;
    pub hung_call_rate: f64,
    /// a server delete failing.
    pub delete_failure_rate: f64,
    /// Seeds the draws: given it, a process's faults follow from the order of its calls.
    pub fault_seed: u64,
    /// Seconds.
    pub create_delay: f64,
    pub delete_delay: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AwsProvider {
    pub region_name: String,
    pub profile_name: Option<String>,
    /// Requests per second.
    pub rate: f64,
    pub boot_timeout: u64,
    pub launch_timeout: u64,
    pub launch_retries: u32,
    pub image_import_timeout: Option<u64>,
    pub object_storage_bucket: Option<String>,
    pub post_upload_hook: Option<PathBuf>,
    pub endpoint_url: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct KubernetesProvider {
    /// The kubeconfig context; `None` is the current context (kubernetes only: openshiftpods
    /// requires it).
    pub context: Option<String>,
    pub launch_retries: u32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct QemuProvider {
    pub image_dir: PathBuf,
    pub state_dir: PathBuf,
    pub qemu_binary: String,
    pub accel: QemuAccel,
    pub boot_timeout: u64,
    pub launch_timeout: u64,
    pub launch_retries: u32,
    /// Cores and MiB of RAM the provider may use; `None` means "what the host has".
    pub host_cores: Option<u32>,
    pub host_ram: Option<u64>,
    /// `ssh-port-range`: accepted so configurations written for earlier versions (which
    /// forwarded a port on 127.0.0.1 to each VM's SSH) still load; unused, since each VM's
    /// SSH is port 22 at its own address in `subnet`.
    pub ssh_port_range: (u16, u16),
    /// The network the VMs' network namespaces take their veth addresses from, e.g.
    /// `172.31.224.0/20`.
    pub subnet: String,
    /// The private key whose `.pub` is injected into every node (made when missing).
    pub ssh_key: PathBuf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QemuAccel {
    /// KVM when `/dev/kvm` works, TCG otherwise.
    Auto,
    Kvm,
    Tcg,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ContainerProvider {
    pub image_dir: PathBuf,
    pub state_dir: PathBuf,
    /// The network the containers' veth addresses come from, e.g. `172.31.240.0/20`.
    pub subnet: String,
    pub boot_timeout: u64,
    pub launch_retries: u32,
    /// The private key whose `.pub` is injected into every node (made when missing).
    pub ssh_key: PathBuf,
}

#[derive(Debug, Clone, PartialEq)]
pub enum PoolSettings {
    OpenStack(OpenStackPool),
    Static(StaticPool),
    Aws(AwsPool),
    /// Kubernetes and openshiftpods pools.
    Kubernetes(KubernetesPool),
    Qemu(LocalPool),
    Container(LocalPool),
}

#[derive(Debug, Clone, PartialEq)]
pub struct OpenStackPool {
    pub networks: Vec<String>,
    pub security_groups: Vec<String>,
    pub availability_zones: Vec<String>,
    pub auto_floating_ip: bool,
    pub host_key_checking: bool,
    pub ignore_provider_quota: bool,
    pub use_internal_ip: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct StaticPool {
    pub nodes: Vec<StaticNode>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct StaticNode {
    pub name: String,
    pub labels: Vec<String>,
    pub username: String,
    /// Nodescan timeout, seconds.
    pub timeout: u64,
    pub host_key_checking: bool,
    pub host_keys: Vec<String>,
    pub connection_port: u16,
    pub connection_type: String,
    pub shell_type: Option<String>,
    pub max_parallel_jobs: u32,
    pub python_path: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AwsPool {
    pub security_group_id: Option<String>,
    pub subnet_id: Option<String>,
    pub public_ipv4: bool,
    pub public_ipv6: bool,
    pub use_internal_ip: bool,
    pub host_key_checking: bool,
    pub availability_zone: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct KubernetesPool {
    pub default_label_cpu: Option<i64>,
    pub default_label_memory: Option<i64>,
    pub default_label_storage: Option<i64>,
    pub default_label_cpu_limit: Option<i64>,
    pub default_label_memory_limit: Option<i64>,
    pub default_label_storage_limit: Option<i64>,
    pub default_label_extra_resources: BTreeMap<String, i64>,
}

/// Pools of our local drivers (qemu, container).
#[derive(Debug, Clone, PartialEq)]
pub struct LocalPool {
    pub host_key_checking: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub enum LabelSettings {
    OpenStack(OpenStackLabel),
    /// Static labels come from the pool's nodes.
    Static,
    Aws(AwsLabel),
    /// Kubernetes and openshiftpods labels. Boxed: by far the largest variant.
    Kubernetes(Box<KubernetesLabel>),
    Qemu(LocalLabel),
    Container(LocalLabel),
}

#[derive(Debug, Clone, PartialEq)]
pub struct OpenStackLabel {
    pub min_ram: Option<i64>,
    pub flavor_name: Option<String>,
    pub key_name: Option<String>,
    pub console_log: bool,
    pub boot_from_volume: bool,
    /// GB.
    pub volume_size: i64,
    pub instance_properties: Map<String, Json>,
    pub dynamic_instance_properties: BTreeMap<String, String>,
    pub userdata: Option<String>,
    pub networks: Vec<String>,
    pub host_key_checking: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AwsLabel {
    pub instance: AwsInstance,
    pub key_name: String,
    pub ebs_optimized: bool,
    pub volume_type: Option<String>,
    pub volume_size: Option<i64>,
    pub iops: Option<i64>,
    pub throughput: Option<i64>,
    pub userdata: Option<String>,
    pub iam_instance_profile: Option<AwsIamProfile>,
    pub tags: Map<String, Json>,
    pub dynamic_tags: BTreeMap<String, String>,
    pub use_spot: bool,
    pub imdsv2: Option<String>,
    pub dedicated_host: bool,
    pub host_key_checking: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub enum AwsInstance {
    Type(String),
    Fleet {
        instance_types: Vec<String>,
        allocation_strategy: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AwsIamProfile {
    Name(String),
    Arn(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct KubernetesLabel {
    /// `namespace` or `pod` (always `pod` for openshiftpods).
    pub kind: String,
    pub image: Option<String>,
    pub image_pull: String,
    /// openshiftpods' `image-pull-secrets` (default `[]`), given to the pod as its
    /// `imagePullSecrets`; `None` for kubernetes labels, whose pods have no such key.
    pub image_pull_secrets: Option<Vec<Json>>,
    pub python_path: String,
    pub shell_type: Option<String>,
    pub cpu: Option<i64>,
    pub memory: Option<i64>,
    pub storage: Option<i64>,
    pub cpu_limit: Option<i64>,
    pub memory_limit: Option<i64>,
    pub storage_limit: Option<i64>,
    pub gpu: Option<f64>,
    pub gpu_resource: Option<String>,
    pub env: Vec<(String, String)>,
    pub node_selector: Option<Map<String, Json>>,
    pub privileged: Option<bool>,
    pub scheduler_name: Option<String>,
    pub volumes: Vec<Json>,
    pub volume_mounts: Vec<Json>,
    pub labels: Map<String, Json>,
    pub dynamic_labels: BTreeMap<String, String>,
    pub annotations: Map<String, Json>,
    pub extra_resources: BTreeMap<String, i64>,
    /// A user-supplied pod spec replaces everything above but labels and annotations.
    pub spec: Option<Map<String, Json>>,
}

/// Labels of our local drivers.
#[derive(Debug, Clone, PartialEq)]
pub struct LocalLabel {
    pub cores: u32,
    /// MiB.
    pub ram: u64,
    /// GiB; `None` keeps the image's size.
    pub disk_size: Option<u64>,
    pub console_log: bool,
    pub host_key_checking: bool,
    /// Containers only: the most processes (and threads) a node may have; `None` is the
    /// driver's default.
    pub pids_limit: Option<u32>,
}

#[cfg(test)]
mod env_vars_tests {
    use super::*;

    #[test]
    fn debug_shows_names_not_values() {
        let vars = EnvVars(BTreeMap::from([(
            "REG_PASSWORD".to_string(),
            "s3cret".to_string(),
        )]));
        let shown = format!("{vars:?}");
        assert_eq!(shown, r#"{"REG_PASSWORD": "<hidden>"}"#);
        assert_eq!(vars["REG_PASSWORD"], "s3cret");
    }
}
