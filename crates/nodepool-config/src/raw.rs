//! Raw structs mirroring `nodepool.yaml` key for key (spec section 4), before validation.
//!
//! Every key Python Nodepool 11 accepts at runtime is listed, including the few its own
//! `config-validate` rejects (spec 8.3 item 19), so real configs load unchanged. Keys that
//! exist only in this implementation are marked "ours".

use crate::decode::{
    CoercedFloat, Decode, FreeList, FreeMap, MapReader, OneOrMany, ScalarText, StrMap, raw_struct,
};
use crate::diagnostic::{At, Collector, Sp};
use crate::yaml::Node;

raw_struct!(
    /// The whole file.
    RawConfig, "the top level" {
    webapp: RawWebapp = "webapp",
    elements_dir: String = "elements-dir",
    images_dir: String = "images-dir",
    build_log_dir: String = "build-log-dir",
    build_log_retention: i64 = "build-log-retention",
    zookeeper_servers: Vec<RawZooKeeperServer> = "zookeeper-servers",
    zookeeper_tls: RawZooKeeperTls = "zookeeper-tls",
    zookeeper_timeout: f64 = "zookeeper-timeout",
    providers: Vec<RawProvider> = "providers",
    labels: Vec<RawLabel> = "labels",
    diskimages: Vec<RawDiskImage> = "diskimages",
    max_hold_age: i64 = "max-hold-age",
    tenant_resource_limits: Vec<RawTenantLimit> = "tenant-resource-limits",
    // ours: where the embedded (SQLite) store keeps its database when there is no ZooKeeper.
    database: String = "database",
});

raw_struct!(RawWebapp, "webapp" {
    port: i64 = "port",
    listen_address: String = "listen_address",
});

raw_struct!(RawZooKeeperServer, "a zookeeper-servers entry" {
    host: String = "host",
    port: i64 = "port",
    chroot: String = "chroot",
});

raw_struct!(RawZooKeeperTls, "zookeeper-tls" {
    cert: String = "cert",
    key: String = "key",
    ca: String = "ca",
});

raw_struct!(RawLabel, "a label" {
    name: String = "name",
    min_ready: i64 = "min-ready",
    max_ready_age: i64 = "max-ready-age",
});

raw_struct!(RawDiskImage, "a diskimage" {
    name: String = "name",
    abstract_: bool = "abstract",
    parent: String = "parent",
    dib_cmd: String = "dib-cmd",
    pause: bool = "pause",
    elements: Vec<String> = "elements",
    formats: Vec<String> = "formats",
    keep_formats: Vec<String> = "keep-formats",
    delete_after_upload: bool = "delete-after-upload",
    release: ScalarText = "release",
    rebuild_age: i64 = "rebuild-age",
    env_vars: StrMap<String> = "env-vars",
    username: String = "username",
    python_path: String = "python-path",
    shell_type: String = "shell-type",
    build_timeout: i64 = "build-timeout",
    metadata: FreeMap = "metadata",
    // ours: `dib` (diskimage-builder, the default) or `native`.
    build_backend: String = "build-backend",
    // ours: options of the native back-end.
    native: RawNativeBuild = "native",
});

raw_struct!(
    /// Options of our native image build (debootstrap, no diskimage-builder).
    RawNativeBuild, "native" {
    distribution: String = "distribution",
    mirror: String = "mirror",
    packages: Vec<String> = "packages",
    disk_size: i64 = "disk-size",
    kernel: String = "kernel",
});

/// `tenant-resource-limits` entries: a few named keys plus any `<resource>: int`.
#[derive(Debug, Clone, Default)]
pub struct RawTenantLimit {
    pub at: At,
    pub tenant_name: Option<Sp<String>>,
    /// Every other key, as written (`max-cores`, `max-servers`, `max-ram`, `gpu`, ...).
    pub limits: Vec<(String, Sp<i64>)>,
}

impl Decode for RawTenantLimit {
    fn decode(node: &Node, at: &At, cx: &mut Collector) -> Option<Self> {
        let map = MapReader::new(node, at, cx)?;
        let tenant_name = map.field::<String>(cx, "tenant-name");
        let mut limits = Vec::new();
        for (key, value) in map.pairs() {
            let Some(name) = key.as_str() else {
                crate::decode::type_error(key, map.at(), cx, "a string key");
                continue;
            };
            if name == "tenant-name" {
                continue;
            }
            let value_at = map.at().key(name, value.mark);
            if let Some(limit) = i64::decode(value, &value_at, cx) {
                limits.push((
                    name.to_string(),
                    Sp {
                        value: limit,
                        at: value_at,
                    },
                ));
            }
        }
        Some(RawTenantLimit {
            at: map.at().clone(),
            tenant_name,
            limits,
        })
    }
}

/// A provider, read with the schema of its driver.
#[derive(Debug, Clone)]
pub struct RawProvider {
    pub at: At,
    pub name: Option<Sp<String>>,
    /// As written; `None` means the default (`openstack`).
    pub driver: Option<Sp<String>>,
    pub body: RawProviderBody,
}

#[derive(Debug, Clone)]
#[allow(
    clippy::large_enum_variant,
    reason = "one per provider, dropped after validation: boxing buys nothing"
)]
pub enum RawProviderBody {
    OpenStack(RawOpenStackProvider),
    Static(RawStaticProvider),
    Aws(RawAwsProvider),
    Kubernetes(RawKubernetesProvider),
    OpenShiftPods(RawOpenShiftPodsProvider),
    Qemu(RawQemuProvider),
    Container(RawContainerProvider),
    /// A driver we do not know; reported by validation.
    Unknown,
}

/// Drivers whose provider schema is the OpenStack one.
pub const DRIVER_NAMES: &[&str] = &[
    "openstack",
    "fake",
    "static",
    "aws",
    "kubernetes",
    "openshiftpods",
    "qemu",
    "container",
];

impl Decode for RawProvider {
    fn decode(node: &Node, at: &At, cx: &mut Collector) -> Option<Self> {
        let map = MapReader::new(node, at, cx)?;
        let name = map.field::<String>(cx, "name");
        let driver = map.field::<String>(cx, "driver");
        let forced_fake = name.as_ref().is_some_and(|n| n.starts_with("fake"));
        let driver_name = if forced_fake {
            "fake"
        } else {
            driver.as_ref().map(|d| d.as_str()).unwrap_or("openstack")
        };
        let body = match driver_name {
            "openstack" | "fake" => {
                RawProviderBody::OpenStack(RawOpenStackProvider::decode(node, at, cx)?)
            }
            "static" => RawProviderBody::Static(RawStaticProvider::decode(node, at, cx)?),
            "aws" => RawProviderBody::Aws(RawAwsProvider::decode(node, at, cx)?),
            "kubernetes" => {
                RawProviderBody::Kubernetes(RawKubernetesProvider::decode(node, at, cx)?)
            }
            "openshiftpods" => {
                RawProviderBody::OpenShiftPods(RawOpenShiftPodsProvider::decode(node, at, cx)?)
            }
            "qemu" => RawProviderBody::Qemu(RawQemuProvider::decode(node, at, cx)?),
            "container" => RawProviderBody::Container(RawContainerProvider::decode(node, at, cx)?),
            _ => RawProviderBody::Unknown,
        };
        Some(RawProvider {
            at: map.at().clone(),
            name,
            driver,
            body,
        })
    }
}

// ---------------------------------------------------------------------------------------
// openstack (and fake)

raw_struct!(RawOpenStackProvider, "an openstack provider" {
    name: String = "name",
    driver: String = "driver",
    max_concurrency: i64 = "max-concurrency",
    priority: i64 = "priority",
    region_name: String = "region-name",
    cloud: String = "cloud",
    boot_timeout: i64 = "boot-timeout",
    image_upload_timeout: i64 = "image-upload-timeout",
    launch_timeout: i64 = "launch-timeout",
    launch_retries: i64 = "launch-retries",
    nodepool_id: String = "nodepool-id",
    rate: CoercedFloat = "rate",
    image_name_format: String = "image-name-format",
    clean_floating_ips: bool = "clean-floating-ips",
    port_cleanup_interval: i64 = "port-cleanup-interval",
    post_upload_hook: String = "post-upload-hook",
    pools: Vec<RawOpenStackPool> = "pools",
    diskimages: Vec<RawOpenStackDiskImage> = "diskimages",
    cloud_images: Vec<RawOpenStackCloudImage> = "cloud-images",
    // ours (fake driver only): the in-memory cloud's quota, injected faults and the file
    // its servers and images persist in.
    fake_quota: RawFakeQuota = "fake-quota",
    fake_faults: RawFakeFaults = "fake-faults",
    fake_state: String = "fake-state",
});

raw_struct!(RawFakeQuota, "fake-quota" {
    instances: i64 = "instances",
    cores: i64 = "cores",
    ram: i64 = "ram",
});

raw_struct!(
    /// Fault injection for the fake cloud: counts of operations that fail, rates at which
    /// they fail and the seed of the draws, and delays.
    RawFakeFaults, "fake-faults" {
    launch_failures: i64 = "launch-failures",
    quota_errors: i64 = "quota-errors",
    delete_failures: i64 = "delete-failures",
    api_errors: i64 = "api-errors",
    upload_failures: i64 = "upload-failures",
    hung_creates: i64 = "hung-creates",
    hung_deletes: i64 = "hung-deletes",
    hung_console_logs: i64 = "hung-console-logs",
    api_error_rate: f64 = "api-error-rate",
    quota_error_rate: f64 = "quota-error-rate",
    hung_call_rate: f64 = "hung-call-rate",
    delete_failure_rate: f64 = "delete-failure-rate",
    fault_seed: i64 = "fault-seed",
    create_delay: f64 = "create-delay",
    delete_delay: f64 = "delete-delay",
});

raw_struct!(RawOpenStackDiskImage, "a provider diskimage" {
    name: String = "name",
    pause: bool = "pause",
    meta: FreeMap = "meta",
    config_drive: bool = "config-drive",
    connection_type: String = "connection-type",
    connection_port: i64 = "connection-port",
});

raw_struct!(RawOpenStackCloudImage, "a cloud-image" {
    name: String = "name",
    config_drive: bool = "config-drive",
    connection_type: String = "connection-type",
    connection_port: i64 = "connection-port",
    image_id: String = "image-id",
    image_name: String = "image-name",
    username: String = "username",
    python_path: String = "python-path",
    shell_type: String = "shell-type",
});

raw_struct!(RawOpenStackPool, "an openstack pool" {
    name: String = "name",
    max_servers: i64 = "max-servers",
    node_attributes: FreeMap = "node-attributes",
    priority: i64 = "priority",
    networks: Vec<String> = "networks",
    auto_floating_ip: bool = "auto-floating-ip",
    host_key_checking: bool = "host-key-checking",
    ignore_provider_quota: bool = "ignore-provider-quota",
    max_cores: i64 = "max-cores",
    max_ram: i64 = "max-ram",
    max_volumes: i64 = "max-volumes",
    max_volume_gb: i64 = "max-volume-gb",
    labels: Vec<RawOpenStackLabel> = "labels",
    availability_zones: Vec<String> = "availability-zones",
    security_groups: Vec<String> = "security-groups",
    use_internal_ip: bool = "use-internal-ip",
});

raw_struct!(RawOpenStackLabel, "an openstack pool label" {
    name: String = "name",
    diskimage: String = "diskimage",
    cloud_image: String = "cloud-image",
    min_ram: i64 = "min-ram",
    flavor_name: String = "flavor-name",
    key_name: String = "key-name",
    console_log: bool = "console-log",
    boot_from_volume: bool = "boot-from-volume",
    volume_size: i64 = "volume-size",
    instance_properties: FreeMap = "instance-properties",
    dynamic_instance_properties: StrMap<String> = "dynamic-instance-properties",
    userdata: String = "userdata",
    networks: Vec<String> = "networks",
    host_key_checking: bool = "host-key-checking",
});

// ---------------------------------------------------------------------------------------
// static

raw_struct!(RawStaticProvider, "a static provider" {
    name: String = "name",
    driver: String = "driver",
    max_concurrency: i64 = "max-concurrency",
    priority: i64 = "priority",
    pools: Vec<RawStaticPool> = "pools",
});

raw_struct!(RawStaticPool, "a static pool" {
    name: String = "name",
    max_servers: i64 = "max-servers",
    node_attributes: FreeMap = "node-attributes",
    priority: i64 = "priority",
    nodes: Vec<RawStaticNode> = "nodes",
});

raw_struct!(RawStaticNode, "a static node" {
    name: String = "name",
    labels: OneOrMany = "labels",
    username: String = "username",
    timeout: i64 = "timeout",
    host_key_checking: bool = "host-key-checking",
    host_key: OneOrMany = "host-key",
    connection_port: i64 = "connection-port",
    ssh_port: i64 = "ssh-port",
    connection_type: String = "connection-type",
    shell_type: String = "shell-type",
    max_parallel_jobs: i64 = "max-parallel-jobs",
    python_path: String = "python-path",
});

// ---------------------------------------------------------------------------------------
// aws

raw_struct!(RawAwsProvider, "an aws provider" {
    name: String = "name",
    driver: String = "driver",
    max_concurrency: i64 = "max-concurrency",
    priority: i64 = "priority",
    region_name: String = "region-name",
    profile_name: String = "profile-name",
    rate: f64 = "rate",
    boot_timeout: i64 = "boot-timeout",
    launch_timeout: i64 = "launch-timeout",
    launch_retries: i64 = "launch-retries",
    image_format: String = "image-format",
    image_import_timeout: i64 = "image-import-timeout",
    object_storage: RawAwsObjectStorage = "object-storage",
    post_upload_hook: String = "post-upload-hook",
    max_servers: i64 = "max-servers",
    max_cores: i64 = "max-cores",
    max_ram: i64 = "max-ram",
    max_resources: StrMap<i64> = "max-resources",
    use_internal_ip: bool = "use-internal-ip",
    host_key_checking: bool = "host-key-checking",
    public_ipv4: bool = "public-ipv4",
    public_ipv6: bool = "public-ipv6",
    cloud_images: Vec<RawAwsCloudImage> = "cloud-images",
    diskimages: Vec<RawAwsDiskImage> = "diskimages",
    pools: Vec<RawAwsPool> = "pools",
    // ours: a custom EC2/S3 endpoint (a local moto server in tests).
    endpoint_url: String = "endpoint-url",
});

raw_struct!(RawAwsObjectStorage, "object-storage" {
    bucket_name: String = "bucket-name",
});

raw_struct!(RawAwsCloudImage, "an aws cloud-image" {
    name: String = "name",
    username: String = "username",
    image_id: String = "image-id",
    image_filters: Vec<RawAwsImageFilter> = "image-filters",
    connection_type: String = "connection-type",
    connection_port: i64 = "connection-port",
    python_path: String = "python-path",
    shell_type: String = "shell-type",
});

raw_struct!(RawAwsImageFilter, "an image filter" {
    name: String = "name",
    name_capitalized: String = "Name",
    values: Vec<String> = "values",
    values_capitalized: Vec<String> = "Values",
});

raw_struct!(RawAwsDiskImage, "an aws provider diskimage" {
    name: String = "name",
    username: String = "username",
    pause: bool = "pause",
    connection_type: String = "connection-type",
    connection_port: i64 = "connection-port",
    python_path: String = "python-path",
    shell_type: String = "shell-type",
    architecture: String = "architecture",
    ena_support: bool = "ena-support",
    volume_size: i64 = "volume-size",
    volume_type: String = "volume-type",
    import_method: String = "import-method",
    imds_support: String = "imds-support",
    iops: i64 = "iops",
    throughput: i64 = "throughput",
    tags: FreeMap = "tags",
});

raw_struct!(RawAwsPool, "an aws pool" {
    name: String = "name",
    max_servers: i64 = "max-servers",
    node_attributes: FreeMap = "node-attributes",
    priority: i64 = "priority",
    labels: Vec<RawAwsLabel> = "labels",
    security_group_id: String = "security-group-id",
    subnet_id: String = "subnet-id",
    public_ip_address: bool = "public-ip-address",
    public_ipv4: bool = "public-ipv4",
    public_ipv6: bool = "public-ipv6",
    host_key_checking: bool = "host-key-checking",
    max_cores: i64 = "max-cores",
    max_ram: i64 = "max-ram",
    max_resources: StrMap<i64> = "max-resources",
    availability_zone: String = "availability-zone",
    use_internal_ip: bool = "use-internal-ip",
});

raw_struct!(RawAwsLabel, "an aws pool label" {
    name: String = "name",
    cloud_image: String = "cloud-image",
    diskimage: String = "diskimage",
    instance_type: String = "instance-type",
    fleet: RawAwsFleet = "fleet",
    key_name: String = "key-name",
    ebs_optimized: bool = "ebs-optimized",
    volume_type: String = "volume-type",
    volume_size: i64 = "volume-size",
    iops: i64 = "iops",
    throughput: i64 = "throughput",
    userdata: String = "userdata",
    iam_instance_profile: RawAwsIamProfile = "iam-instance-profile",
    tags: FreeMap = "tags",
    dynamic_tags: StrMap<String> = "dynamic-tags",
    use_spot: bool = "use-spot",
    imdsv2: String = "imdsv2",
    dedicated_host: bool = "dedicated-host",
});

raw_struct!(RawAwsFleet, "fleet" {
    instance_types: Vec<String> = "instance-types",
    allocation_strategy: String = "allocation-strategy",
});

raw_struct!(RawAwsIamProfile, "iam-instance-profile" {
    name: String = "name",
    arn: String = "arn",
});

// ---------------------------------------------------------------------------------------
// kubernetes

raw_struct!(RawKubernetesProvider, "a kubernetes provider" {
    name: String = "name",
    driver: String = "driver",
    max_concurrency: i64 = "max-concurrency",
    priority: i64 = "priority",
    context: String = "context",
    launch_retries: i64 = "launch-retries",
    max_servers: i64 = "max-servers",
    max_cores: i64 = "max-cores",
    max_ram: i64 = "max-ram",
    max_resources: StrMap<i64> = "max-resources",
    pools: Vec<RawKubernetesPool> = "pools",
});

raw_struct!(RawKubernetesPool, "a kubernetes pool" {
    name: String = "name",
    max_servers: i64 = "max-servers",
    node_attributes: FreeMap = "node-attributes",
    priority: i64 = "priority",
    labels: Vec<RawKubernetesLabel> = "labels",
    max_cores: i64 = "max-cores",
    max_ram: i64 = "max-ram",
    max_resources: StrMap<i64> = "max-resources",
    default_label_cpu: i64 = "default-label-cpu",
    default_label_memory: i64 = "default-label-memory",
    default_label_storage: i64 = "default-label-storage",
    default_label_cpu_limit: i64 = "default-label-cpu-limit",
    default_label_memory_limit: i64 = "default-label-memory-limit",
    default_label_storage_limit: i64 = "default-label-storage-limit",
    default_label_extra_resources: StrMap<i64> = "default-label-extra-resources",
});

raw_struct!(RawKubernetesLabel, "a kubernetes pool label" {
    name: String = "name",
    type_: String = "type",
    image: String = "image",
    image_pull: String = "image-pull",
    python_path: String = "python-path",
    shell_type: String = "shell-type",
    cpu: i64 = "cpu",
    memory: i64 = "memory",
    storage: i64 = "storage",
    cpu_limit: i64 = "cpu-limit",
    memory_limit: i64 = "memory-limit",
    storage_limit: i64 = "storage-limit",
    gpu: f64 = "gpu",
    gpu_resource: String = "gpu-resource",
    env: Vec<RawKubernetesEnv> = "env",
    node_selector: FreeMap = "node-selector",
    privileged: bool = "privileged",
    scheduler_name: String = "scheduler-name",
    volumes: FreeList = "volumes",
    volume_mounts: FreeList = "volume-mounts",
    labels: FreeMap = "labels",
    dynamic_labels: StrMap<String> = "dynamic-labels",
    annotations: FreeMap = "annotations",
    extra_resources: StrMap<i64> = "extra-resources",
    spec: FreeMap = "spec",
});

raw_struct!(RawKubernetesEnv, "an env entry" {
    name: String = "name",
    value: String = "value",
});

// ---------------------------------------------------------------------------------------
// openshiftpods: pods in existing projects named by the pools. Pools have the kubernetes
// keys; labels those of kubernetes pod labels without `type`, with `image-pull-secrets`.
// The provider's `max-projects` and `max-servers` are not in Nodepool's schema, but its
// runtime reads them (as the pools' default `max-servers`), so they are accepted.

raw_struct!(RawOpenShiftPodsProvider, "an openshiftpods provider" {
    name: String = "name",
    driver: String = "driver",
    max_concurrency: i64 = "max-concurrency",
    priority: i64 = "priority",
    context: String = "context",
    launch_retries: i64 = "launch-retries",
    max_pods: i64 = "max-pods",
    max_projects: i64 = "max-projects",
    max_servers: i64 = "max-servers",
    max_cores: i64 = "max-cores",
    max_ram: i64 = "max-ram",
    max_resources: StrMap<i64> = "max-resources",
    pools: Vec<RawOpenShiftPodsPool> = "pools",
});

raw_struct!(RawOpenShiftPodsPool, "an openshiftpods pool" {
    name: String = "name",
    max_servers: i64 = "max-servers",
    node_attributes: FreeMap = "node-attributes",
    priority: i64 = "priority",
    labels: Vec<RawOpenShiftPodsLabel> = "labels",
    max_cores: i64 = "max-cores",
    max_ram: i64 = "max-ram",
    max_resources: StrMap<i64> = "max-resources",
    default_label_cpu: i64 = "default-label-cpu",
    default_label_memory: i64 = "default-label-memory",
    default_label_storage: i64 = "default-label-storage",
    default_label_cpu_limit: i64 = "default-label-cpu-limit",
    default_label_memory_limit: i64 = "default-label-memory-limit",
    default_label_storage_limit: i64 = "default-label-storage-limit",
    default_label_extra_resources: StrMap<i64> = "default-label-extra-resources",
});

raw_struct!(RawOpenShiftPodsLabel, "an openshiftpods pool label" {
    name: String = "name",
    image: String = "image",
    image_pull: String = "image-pull",
    image_pull_secrets: FreeList = "image-pull-secrets",
    python_path: String = "python-path",
    shell_type: String = "shell-type",
    cpu: i64 = "cpu",
    memory: i64 = "memory",
    storage: i64 = "storage",
    cpu_limit: i64 = "cpu-limit",
    memory_limit: i64 = "memory-limit",
    storage_limit: i64 = "storage-limit",
    gpu: f64 = "gpu",
    gpu_resource: String = "gpu-resource",
    env: Vec<RawKubernetesEnv> = "env",
    node_selector: FreeMap = "node-selector",
    privileged: bool = "privileged",
    scheduler_name: String = "scheduler-name",
    volumes: FreeList = "volumes",
    volume_mounts: FreeList = "volume-mounts",
    labels: FreeMap = "labels",
    dynamic_labels: StrMap<String> = "dynamic-labels",
    annotations: FreeMap = "annotations",
    extra_resources: StrMap<i64> = "extra-resources",
    spec: FreeMap = "spec",
});

impl RawOpenShiftPodsPool {
    /// The pool's keys as a kubernetes pool's, without its labels (validation reads those
    /// through [`RawOpenShiftPodsLabel::as_kubernetes`]): the two drivers' pools are one
    /// schema.
    pub fn as_kubernetes(&self) -> RawKubernetesPool {
        RawKubernetesPool {
            at: self.at.clone(),
            name: self.name.clone(),
            max_servers: self.max_servers.clone(),
            node_attributes: self.node_attributes.clone(),
            priority: self.priority.clone(),
            labels: None,
            max_cores: self.max_cores.clone(),
            max_ram: self.max_ram.clone(),
            max_resources: self.max_resources.clone(),
            default_label_cpu: self.default_label_cpu.clone(),
            default_label_memory: self.default_label_memory.clone(),
            default_label_storage: self.default_label_storage.clone(),
            default_label_cpu_limit: self.default_label_cpu_limit.clone(),
            default_label_memory_limit: self.default_label_memory_limit.clone(),
            default_label_storage_limit: self.default_label_storage_limit.clone(),
            default_label_extra_resources: self.default_label_extra_resources.clone(),
        }
    }
}

impl RawOpenShiftPodsLabel {
    /// The label as a kubernetes pod label: every label is `type: pod` (Nodepool sets it
    /// when it loads the pool). `image-pull-secrets` is read separately.
    pub fn as_kubernetes(&self) -> RawKubernetesLabel {
        RawKubernetesLabel {
            at: self.at.clone(),
            name: self.name.clone(),
            type_: Some(Sp {
                value: "pod".to_string(),
                at: self.at.clone(),
            }),
            image: self.image.clone(),
            image_pull: self.image_pull.clone(),
            python_path: self.python_path.clone(),
            shell_type: self.shell_type.clone(),
            cpu: self.cpu.clone(),
            memory: self.memory.clone(),
            storage: self.storage.clone(),
            cpu_limit: self.cpu_limit.clone(),
            memory_limit: self.memory_limit.clone(),
            storage_limit: self.storage_limit.clone(),
            gpu: self.gpu.clone(),
            gpu_resource: self.gpu_resource.clone(),
            env: self.env.clone(),
            node_selector: self.node_selector.clone(),
            privileged: self.privileged.clone(),
            scheduler_name: self.scheduler_name.clone(),
            volumes: self.volumes.clone(),
            volume_mounts: self.volume_mounts.clone(),
            labels: self.labels.clone(),
            dynamic_labels: self.dynamic_labels.clone(),
            annotations: self.annotations.clone(),
            extra_resources: self.extra_resources.clone(),
            spec: self.spec.clone(),
        }
    }
}

// ---------------------------------------------------------------------------------------
// qemu (ours): local virtual machines

raw_struct!(RawQemuProvider, "a qemu provider" {
    name: String = "name",
    driver: String = "driver",
    max_concurrency: i64 = "max-concurrency",
    priority: i64 = "priority",
    image_dir: String = "image-dir",
    state_dir: String = "state-dir",
    qemu_binary: String = "qemu-binary",
    accel: String = "accel",
    image_format: String = "image-format",
    boot_timeout: i64 = "boot-timeout",
    launch_timeout: i64 = "launch-timeout",
    launch_retries: i64 = "launch-retries",
    host_cores: i64 = "host-cores",
    host_ram: i64 = "host-ram",
    ssh_port_range: String = "ssh-port-range",
    subnet: String = "subnet",
    ssh_key: String = "ssh-key",
    diskimages: Vec<RawLocalDiskImage> = "diskimages",
    cloud_images: Vec<RawLocalCloudImage> = "cloud-images",
    pools: Vec<RawQemuPool> = "pools",
});

raw_struct!(RawLocalDiskImage, "a provider diskimage" {
    name: String = "name",
    pause: bool = "pause",
    connection_type: String = "connection-type",
    connection_port: i64 = "connection-port",
});

raw_struct!(RawLocalCloudImage, "a cloud-image" {
    name: String = "name",
    path: String = "path",
    username: String = "username",
    python_path: String = "python-path",
    shell_type: String = "shell-type",
    connection_type: String = "connection-type",
    connection_port: i64 = "connection-port",
});

raw_struct!(RawQemuPool, "a qemu pool" {
    name: String = "name",
    max_servers: i64 = "max-servers",
    node_attributes: FreeMap = "node-attributes",
    priority: i64 = "priority",
    max_cores: i64 = "max-cores",
    max_ram: i64 = "max-ram",
    host_key_checking: bool = "host-key-checking",
    labels: Vec<RawQemuLabel> = "labels",
});

raw_struct!(RawQemuLabel, "a qemu pool label" {
    name: String = "name",
    diskimage: String = "diskimage",
    cloud_image: String = "cloud-image",
    cores: i64 = "cores",
    ram: i64 = "ram",
    disk_size: i64 = "disk-size",
    console_log: bool = "console-log",
    host_key_checking: bool = "host-key-checking",
});

// ---------------------------------------------------------------------------------------
// container (ours): local containers sharing the host kernel

raw_struct!(RawContainerProvider, "a container provider" {
    name: String = "name",
    driver: String = "driver",
    max_concurrency: i64 = "max-concurrency",
    priority: i64 = "priority",
    image_dir: String = "image-dir",
    state_dir: String = "state-dir",
    subnet: String = "subnet",
    boot_timeout: i64 = "boot-timeout",
    launch_retries: i64 = "launch-retries",
    ssh_key: String = "ssh-key",
    diskimages: Vec<RawLocalDiskImage> = "diskimages",
    pools: Vec<RawContainerPool> = "pools",
});

raw_struct!(RawContainerPool, "a container pool" {
    name: String = "name",
    max_servers: i64 = "max-servers",
    node_attributes: FreeMap = "node-attributes",
    priority: i64 = "priority",
    host_key_checking: bool = "host-key-checking",
    labels: Vec<RawContainerLabel> = "labels",
});

raw_struct!(RawContainerLabel, "a container pool label" {
    name: String = "name",
    diskimage: String = "diskimage",
    cores: i64 = "cores",
    ram: i64 = "ram",
    pids_limit: i64 = "pids-limit",
});

// ---------------------------------------------------------------------------------------
// the secure file

raw_struct!(
    /// The secure file (`-s`): credentials kept out of the main config.
    RawSecure, "the secure file" {
    zookeeper_servers: Vec<RawZooKeeperServer> = "zookeeper-servers",
    zookeeper_tls: RawZooKeeperTls = "zookeeper-tls",
    diskimages: Vec<RawSecureDiskImage> = "diskimages",
});

raw_struct!(RawSecureDiskImage, "a secure diskimage" {
    name: String = "name",
    env_vars: StrMap<String> = "env-vars",
});
