//! The Kubernetes objects a node is made of, built from the configuration as Nodepool 11
//! builds them (pure: no I/O, unit-tested here).
//!
//! A node is a namespace `<pool>-<node id>` labelled with the label's `labels`, its
//! `dynamic-labels` and the four `nodepool_*` labels; in it a ServiceAccount `zuul-worker`,
//! its token Secret (filled by the token controller), a Role (`zuul`, or `zuul-restricted`
//! for pod labels) and the RoleBinding `zuul-role`. A pod label adds a pod named after the
//! label, built from the label's settings or its `spec`. Zuul receives the credentials dict
//! ([`credentials`]) as the node's `connection_port`.

use std::collections::BTreeMap;

use nodepool_config::{KubernetesLabel, LabelSettings, Provider as ProviderConfig};
use nodepool_driver::{CreateSpec, DriverError, Metadata, Quota, metadata_keys};
use serde_json::{Map, Value, json};

/// The service account (and token secret) Zuul works as, and the `user` it is told.
pub const SERVICE_ACCOUNT: &str = "zuul-worker";
/// The role binding that gives the service account its role.
pub const ROLE_BINDING: &str = "zuul-role";
/// The namespace label naming the node's label (the other three are the `nodepool_*`
/// metadata keys).
pub const NODE_LABEL_KEY: &str = "nodepool_node_label";

/// What a namespace node's pod runs when the label gives no `spec`.
const IDLE_COMMAND: [&str; 2] = ["/bin/sh", "-c"];
const IDLE_ARGS: [&str; 1] = ["while true; do sleep 30; done;"];

/// Every verb the `zuul` role grants.
const ALL_VERBS: [&str; 7] = [
    "create", "delete", "get", "list", "patch", "update", "watch",
];

/// The namespace of a node: `<pool>-<node id>` (its external id).
pub fn namespace_name(pool: &str, node_id: &str) -> String {
    format!("{pool}-{node_id}")
}

/// The node id of a namespace Nodepool manages, by Nodepool's rule: the name starts with
/// `<pool>-` for one of `pools` and its last `-` part is a number. Other namespaces (even
/// with nodepool labels) are not the provider's to report or clean up.
pub fn managed_node_id<'a, 'p>(
    namespace: &'a str,
    mut pools: impl Iterator<Item = &'p str>,
) -> Option<&'a str> {
    let in_pool = pools.any(|pool| {
        namespace
            .strip_prefix(pool)
            .is_some_and(|rest| rest.starts_with('-'))
    });
    let last = namespace.rsplit('-').next()?;
    (in_pool && !last.is_empty() && last.bytes().all(|b| b.is_ascii_digit())).then_some(last)
}

/// The labels of an object as string metadata (values that are not strings are skipped).
pub fn string_labels(labels: Option<&Map<String, Value>>) -> Metadata {
    labels
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_string())))
        .collect()
}

/// Everything a create needs, resolved from the configuration when the machine is made.
#[derive(Debug, Clone, PartialEq)]
pub struct NodePlan {
    pub provider: String,
    pub pool: String,
    pub label: String,
    pub node_id: String,
    pub namespace: String,
    /// The labels of the namespace (and of the pod).
    pub labels: Map<String, Value>,
    /// The pod to run, for pod labels.
    pub pod: Option<Value>,
    pub python_path: String,
    pub shell_type: Option<String>,
    /// What the node counts against quota (its `resources`).
    pub resources: Quota,
    /// The provider's `context`, reported as the node's `cloud`.
    pub context: Option<String>,
}

impl NodePlan {
    /// The pod's name (the label's name), for pod labels.
    pub fn pod_name(&self) -> Option<&str> {
        self.pod.as_ref().map(|_| self.label.as_str())
    }

    /// `namespace` for namespace labels, `kubectl` for pod labels.
    pub fn connection_type(&self) -> &'static str {
        if self.pod.is_some() {
            "kubectl"
        } else {
            "namespace"
        }
    }
}

/// The kubernetes label `label` of `pool`, or why there is none.
pub fn find_label<'c>(
    config: &'c ProviderConfig,
    pool: &str,
    label: &str,
) -> Result<&'c KubernetesLabel, DriverError> {
    let pool_config = config.pool(pool).ok_or_else(|| {
        DriverError::Fatal(format!("provider {} has no pool {pool}", config.name))
    })?;
    let label_config = pool_config.labels.get(label).ok_or_else(|| {
        DriverError::Fatal(format!(
            "pool {pool} of provider {} has no label {label}",
            config.name
        ))
    })?;
    match &label_config.settings {
        LabelSettings::Kubernetes(settings) => Ok(settings),
        _ => Err(DriverError::Fatal(format!(
            "label {label} of pool {pool}: not a kubernetes label"
        ))),
    }
}

/// What both drivers start a node's plan from: its pool label, its node id (from the
/// create's metadata) and the labels its Kubernetes objects carry.
pub fn node_identity<'c>(
    config: &'c ProviderConfig,
    spec: &CreateSpec,
) -> Result<(&'c KubernetesLabel, String, Map<String, Value>), DriverError> {
    let label = find_label(config, &spec.pool, &spec.label)?;
    let node_id = spec
        .metadata
        .get(metadata_keys::NODE_ID)
        .cloned()
        .ok_or_else(|| {
            DriverError::Fatal(format!(
                "the create of {} has no {} in its metadata",
                spec.hostname,
                metadata_keys::NODE_ID
            ))
        })?;
    let dynamic =
        nodepool_driver::format_dynamic_entries(&label.dynamic_labels, spec, "dynamic-labels");
    let labels = k8s_labels(
        label,
        &dynamic,
        &node_id,
        &config.name,
        &spec.pool,
        &spec.label,
    );
    Ok((label, node_id, labels))
}

/// The plan for the node of `spec`.
pub fn plan(
    config: &ProviderConfig,
    context: Option<&str>,
    spec: &CreateSpec,
) -> Result<NodePlan, DriverError> {
    let (label, node_id, labels) = node_identity(config, spec)?;
    let pod = (label.kind == "pod").then(|| pod_body(&spec.label, &spec.label, label, &labels));
    Ok(NodePlan {
        provider: config.name.clone(),
        pool: spec.pool.clone(),
        label: spec.label.clone(),
        namespace: namespace_name(&spec.pool, &node_id),
        node_id,
        labels,
        pod,
        python_path: label.python_path.clone(),
        shell_type: label.shell_type.clone(),
        resources: quota_need(label),
        context: context.map(str::to_string),
    })
}

/// The labels of a node's namespace and pod: the label's `labels`, then its filled
/// `dynamic-labels`, then the `nodepool_*` labels (which win).
pub fn k8s_labels(
    label: &KubernetesLabel,
    dynamic_labels: &BTreeMap<String, String>,
    node_id: &str,
    provider: &str,
    pool: &str,
    label_name: &str,
) -> Map<String, Value> {
    let mut labels = label.labels.clone();
    for (key, value) in dynamic_labels {
        labels.insert(key.clone(), Value::from(value.clone()));
    }
    for (key, value) in [
        (metadata_keys::NODE_ID, node_id),
        (metadata_keys::PROVIDER_NAME, provider),
        (metadata_keys::POOL_NAME, pool),
        (NODE_LABEL_KEY, label_name),
    ] {
        labels.insert(key.to_string(), Value::from(value));
    }
    labels
}

/// What one node of `label` counts against quota, as Nodepool's `quotaNeededByLabel`:
/// one instance, `cores` and `ram` (0 when unset), `ephemeral-storage`, the GPU resource
/// and the extra resources.
pub fn quota_need(label: &KubernetesLabel) -> Quota {
    let truthy = |v: Option<i64>| v.filter(|n| *n != 0);
    let mut quota = Quota::one_instance()
        .with("cores", truthy(label.cpu).unwrap_or(0) as f64)
        .with("ram", truthy(label.memory).unwrap_or(0) as f64);
    if let Some(storage) = truthy(label.storage) {
        quota.set("ephemeral-storage", storage as f64);
    }
    if let (Some(gpu), Some(resource)) = (
        label.gpu.filter(|g| *g != 0.0),
        label.gpu_resource.as_deref().filter(|r| !r.is_empty()),
    ) {
        quota.set(resource, gpu);
    }
    for (resource, amount) in &label.extra_resources {
        quota.set(resource, *amount as f64);
    }
    quota
}

pub fn namespace_body(plan: &NodePlan) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": plan.namespace, "labels": plan.labels},
    })
}

pub fn service_account_body() -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {"name": SERVICE_ACCOUNT},
    })
}

/// A legacy service-account token Secret, which the token controller fills with `token`
/// and `ca.crt`.
pub fn token_secret_body() -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "kubernetes.io/service-account-token",
        "metadata": {
            "name": SERVICE_ACCOUNT,
            "annotations": {"kubernetes.io/service-account.name": SERVICE_ACCOUNT},
        },
    })
}

/// The role's name: `zuul-restricted` for pod labels (Zuul only execs into the pod),
/// `zuul` for namespace labels.
pub fn role_name(restricted: bool) -> &'static str {
    if restricted {
        "zuul-restricted"
    } else {
        "zuul"
    }
}

/// The role, with Nodepool's rules (`pods/logs` in the restricted role is Nodepool's
/// spelling, kept).
pub fn role_body(restricted: bool) -> Value {
    let rules = if restricted {
        json!([
            {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]},
            {"apiGroups": [""], "resources": ["pods/exec"], "verbs": ALL_VERBS},
            {"apiGroups": [""], "resources": ["pods/logs"], "verbs": ALL_VERBS},
            {"apiGroups": [""], "resources": ["pods/portforward"], "verbs": ALL_VERBS},
        ])
    } else {
        json!([{
            "apiGroups": [""],
            "resources": [
                "pods", "pods/exec", "pods/log", "pods/portforward", "services",
                "endpoints", "crontabs", "jobs", "deployments", "replicasets",
                "configmaps", "secrets",
            ],
            "verbs": ALL_VERBS,
        }])
    };
    json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": {"name": role_name(restricted)},
        "rules": rules,
    })
}

pub fn role_binding_body(namespace: &str, restricted: bool) -> Value {
    json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": ROLE_BINDING},
        "roleRef": {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "Role",
            "name": role_name(restricted),
        },
        "subjects": [{
            "kind": "ServiceAccount",
            "name": SERVICE_ACCOUNT,
            "namespace": namespace,
        }],
    })
}

/// The pod `pod_name` of a pod label: the label's `spec` as given, or one container named
/// after the label (`label_name`) that idles, with the label's image, resources,
/// environment, volumes and scheduling settings. (The kubernetes driver names the pod after
/// the label; openshiftpods `<label>-<node id>`.)
pub fn pod_body(
    pod_name: &str,
    label_name: &str,
    label: &KubernetesLabel,
    labels: &Map<String, Value>,
) -> Value {
    let spec = match &label.spec {
        Some(spec) => Value::Object(spec.clone()),
        None => nodepool_pod_spec(label_name, label),
    };
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": pod_name,
            "labels": labels,
            "annotations": label.annotations,
        },
        "spec": spec,
    })
}

fn nodepool_pod_spec(label_name: &str, label: &KubernetesLabel) -> Value {
    let truthy = |v: Option<i64>| v.filter(|n| *n != 0);
    let env: Vec<Value> = label
        .env
        .iter()
        .map(|(name, value)| json!({"name": name, "value": value}))
        .collect();
    let mut container = Map::new();
    container.insert("name".into(), Value::from(label_name));
    container.insert("image".into(), Value::from(label.image.clone()));
    container.insert(
        "imagePullPolicy".into(),
        Value::from(label.image_pull.clone()),
    );
    container.insert("command".into(), json!(IDLE_COMMAND));
    container.insert("args".into(), json!(IDLE_ARGS));
    container.insert("env".into(), Value::Array(env));

    // Limits default to the requests (the configuration has applied the pool defaults).
    let mut requests = Map::new();
    let mut limits = Map::new();
    if let Some(cpu) = truthy(label.cpu) {
        requests.insert("cpu".into(), Value::from(cpu));
    }
    if let Some(memory) = truthy(label.memory) {
        requests.insert("memory".into(), Value::from(format!("{memory}Mi")));
    }
    if let Some(storage) = truthy(label.storage) {
        requests.insert(
            "ephemeral-storage".into(),
            Value::from(format!("{storage}M")),
        );
    }
    if let Some(cpu) = truthy(label.cpu_limit).or(truthy(label.cpu)) {
        limits.insert("cpu".into(), Value::from(cpu));
    }
    if let Some(memory) = truthy(label.memory_limit).or(truthy(label.memory)) {
        limits.insert("memory".into(), Value::from(format!("{memory}Mi")));
    }
    if let Some(storage) = truthy(label.storage_limit).or(truthy(label.storage)) {
        limits.insert(
            "ephemeral-storage".into(),
            Value::from(format!("{storage}M")),
        );
    }
    if let (Some(gpu), Some(resource)) = (
        label.gpu.filter(|g| *g != 0.0),
        label.gpu_resource.as_deref().filter(|r| !r.is_empty()),
    ) {
        requests.insert(resource.into(), Value::from(format!("{gpu:.2}")));
        limits.insert(resource.into(), Value::from(format!("{gpu:.2}")));
    }
    let mut resources = Map::new();
    if !requests.is_empty() {
        resources.insert("requests".into(), Value::Object(requests));
    }
    if !limits.is_empty() {
        resources.insert("limits".into(), Value::Object(limits));
    }
    if !resources.is_empty() {
        container.insert("resources".into(), Value::Object(resources));
    }
    if !label.volume_mounts.is_empty() {
        container.insert(
            "volumeMounts".into(),
            Value::Array(label.volume_mounts.clone()),
        );
    }
    if let Some(privileged) = label.privileged {
        container.insert("securityContext".into(), json!({"privileged": privileged}));
    }

    let mut spec = Map::new();
    spec.insert("containers".into(), json!([Value::Object(container)]));
    // openshiftpods always sets it (`[]` by default); kubernetes pods have no such key.
    if let Some(secrets) = &label.image_pull_secrets {
        spec.insert("imagePullSecrets".into(), Value::Array(secrets.clone()));
    }
    if let Some(selector) = label.node_selector.as_ref().filter(|s| !s.is_empty()) {
        spec.insert("nodeSelector".into(), Value::Object(selector.clone()));
    }
    if let Some(scheduler) = label.scheduler_name.as_deref().filter(|s| !s.is_empty()) {
        spec.insert("schedulerName".into(), Value::from(scheduler));
    }
    if !label.volumes.is_empty() {
        spec.insert("volumes".into(), Value::Array(label.volumes.clone()));
    }
    Value::Object(spec)
}

/// The API server as Nodepool hands it to Zuul (`host`): the Python client's
/// `configuration.host`, the kubeconfig's `server` without trailing slashes.
pub fn api_host(server: &str) -> &str {
    server.trim_end_matches('/')
}

/// The dict Zuul connects with (the node's `connection_port`), in Nodepool's key order:
/// the namespace, the API server, whether TLS is checked, the service account's token and
/// name, the cluster CA as the secret carries it (base64; only when TLS is checked) and,
/// for pod labels, the pod's name.
pub fn credentials(
    namespace: &str,
    server: &str,
    skip_tls: bool,
    token: &str,
    ca_crt_base64: &str,
    pod: Option<&str>,
) -> Map<String, Value> {
    let mut dict = Map::new();
    dict.insert("name".into(), Value::from(namespace));
    dict.insert("namespace".into(), Value::from(namespace));
    dict.insert("host".into(), Value::from(api_host(server)));
    dict.insert("skiptls".into(), Value::from(skip_tls));
    dict.insert("token".into(), Value::from(token));
    dict.insert("user".into(), Value::from(SERVICE_ACCOUNT));
    if !skip_tls {
        dict.insert("ca_crt".into(), Value::from(ca_crt_base64));
    }
    if let Some(pod) = pod {
        dict.insert("pod".into(), Value::from(pod));
    }
    dict
}

#[cfg(test)]
mod tests {
    use super::*;

    fn label(kind: &str) -> KubernetesLabel {
        KubernetesLabel {
            kind: kind.into(),
            image: Some("docker.io/fedora:40".into()),
            image_pull: "IfNotPresent".into(),
            image_pull_secrets: None,
            python_path: "auto".into(),
            shell_type: None,
            cpu: None,
            memory: None,
            storage: None,
            cpu_limit: None,
            memory_limit: None,
            storage_limit: None,
            gpu: None,
            gpu_resource: None,
            env: Vec::new(),
            node_selector: None,
            privileged: None,
            scheduler_name: None,
            volumes: Vec::new(),
            volume_mounts: Vec::new(),
            labels: Map::new(),
            dynamic_labels: BTreeMap::new(),
            annotations: Map::new(),
            extra_resources: BTreeMap::new(),
            spec: None,
        }
    }

    #[test]
    fn namespace_names_and_nodepools_ownership_rule() {
        assert_eq!(namespace_name("main", "0000000042"), "main-0000000042");
        let pools = ["main", "gpu-pool"];
        assert_eq!(
            managed_node_id("main-0000000042", pools.iter().copied()),
            Some("0000000042")
        );
        assert_eq!(
            managed_node_id("gpu-pool-0000000007", pools.iter().copied()),
            Some("0000000007")
        );
        for other in [
            "main-abc",
            "mainx-0000000001",
            "other-0000000001",
            "main-",
            "main",
        ] {
            assert_eq!(
                managed_node_id(other, pools.iter().copied()),
                None,
                "{other}"
            );
        }
    }

    #[test]
    fn a_nodepool_built_pod_has_the_labels_settings() {
        let mut l = label("pod");
        l.cpu = Some(2);
        l.memory = Some(1024);
        l.storage = Some(100);
        l.memory_limit = Some(2048);
        l.gpu = Some(1.0);
        l.gpu_resource = Some("nvidia.com/gpu".into());
        l.env = vec![("FOO".into(), "bar".into())];
        l.node_selector = Some(Map::from_iter([("type".into(), Value::from("kwok"))]));
        l.privileged = Some(false);
        l.scheduler_name = Some("my-scheduler".into());
        l.volumes = vec![json!({"name": "scratch", "emptyDir": {}})];
        l.volume_mounts = vec![json!({"name": "scratch", "mountPath": "/scratch"})];
        l.annotations = Map::from_iter([("team".into(), Value::from("ci"))]);
        let labels = k8s_labels(
            &l,
            &BTreeMap::new(),
            "0000000001",
            "k8s",
            "main",
            "pod-fedora",
        );
        let pod = pod_body("pod-fedora", "pod-fedora", &l, &labels);
        assert_eq!(
            pod,
            json!({
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {
                    "name": "pod-fedora",
                    "labels": {
                        "nodepool_node_id": "0000000001",
                        "nodepool_provider_name": "k8s",
                        "nodepool_pool_name": "main",
                        "nodepool_node_label": "pod-fedora",
                    },
                    "annotations": {"team": "ci"},
                },
                "spec": {
                    "containers": [{
                        "name": "pod-fedora",
                        "image": "docker.io/fedora:40",
                        "imagePullPolicy": "IfNotPresent",
                        "command": ["/bin/sh", "-c"],
                        "args": ["while true; do sleep 30; done;"],
                        "env": [{"name": "FOO", "value": "bar"}],
                        "resources": {
                            "requests": {
                                "cpu": 2, "memory": "1024Mi", "ephemeral-storage": "100M",
                                "nvidia.com/gpu": "1.00",
                            },
                            "limits": {
                                "cpu": 2, "memory": "2048Mi", "ephemeral-storage": "100M",
                                "nvidia.com/gpu": "1.00",
                            },
                        },
                        "volumeMounts": [{"name": "scratch", "mountPath": "/scratch"}],
                        "securityContext": {"privileged": false},
                    }],
                    "nodeSelector": {"type": "kwok"},
                    "schedulerName": "my-scheduler",
                    "volumes": [{"name": "scratch", "emptyDir": {}}],
                },
            })
        );
    }

    #[test]
    fn a_bare_pod_has_no_resources_and_empty_env() {
        let l = label("pod");
        let pod = pod_body("p", "p", &l, &Map::new());
        let container = &pod["spec"]["containers"][0];
        assert_eq!(container["env"], json!([]));
        assert!(container.get("resources").is_none());
        assert!(container.get("securityContext").is_none());
        assert_eq!(pod["metadata"]["annotations"], json!({}));
        assert_eq!(pod["spec"].as_object().map(Map::len), Some(1));
    }

    #[test]
    fn a_user_spec_is_used_as_given() {
        let mut l = label("pod");
        l.spec = Some(Map::from_iter([(
            "containers".into(),
            json!([{"name": "x", "image": "busybox"}]),
        )]));
        l.annotations = Map::from_iter([("a".into(), Value::from("b"))]);
        let pod = pod_body("custom", "custom", &l, &Map::new());
        assert_eq!(
            pod["spec"],
            json!({"containers": [{"name": "x", "image": "busybox"}]})
        );
        assert_eq!(pod["metadata"]["name"], "custom");
        assert_eq!(pod["metadata"]["annotations"], json!({"a": "b"}));
    }

    #[test]
    fn nodepool_labels_win_over_configured_ones() {
        let mut l = label("namespace");
        l.labels = Map::from_iter([
            ("team".into(), Value::from("ci")),
            ("nodepool_node_id".into(), Value::from("spoofed")),
        ]);
        let dynamic = BTreeMap::from([("tenant".to_string(), "openstack".to_string())]);
        let labels = k8s_labels(&l, &dynamic, "0000000009", "k8s", "main", "ns");
        assert_eq!(
            Value::Object(labels),
            json!({
                "team": "ci",
                "nodepool_node_id": "0000000009",
                "tenant": "openstack",
                "nodepool_provider_name": "k8s",
                "nodepool_pool_name": "main",
                "nodepool_node_label": "ns",
            })
        );
    }

    #[test]
    fn quota_is_nodepools_quota_needed_by_label() {
        let l = label("namespace");
        let need = quota_need(&l);
        assert_eq!(
            Value::Object(need.to_json()),
            json!({"cores": 0, "instances": 1, "ram": 0})
        );
        let mut l = label("pod");
        l.cpu = Some(2);
        l.memory = Some(512);
        l.storage = Some(10);
        l.gpu = Some(0.5);
        l.gpu_resource = Some("gpu.example/x".into());
        l.extra_resources = BTreeMap::from([("licenses".to_string(), 1)]);
        let need = quota_need(&l);
        assert_eq!(
            Value::Object(need.to_json()),
            json!({
                "cores": 2, "ephemeral-storage": 10, "gpu.example/x": 0.5,
                "instances": 1, "licenses": 1, "ram": 512,
            })
        );
    }

    #[test]
    fn credentials_carry_the_ca_only_when_tls_is_checked() {
        let checked = credentials("main-1", "https://k:6443", false, "tok", "Q0E=", None);
        assert_eq!(
            Value::Object(checked.clone()),
            json!({
                "name": "main-1", "namespace": "main-1", "host": "https://k:6443",
                "skiptls": false, "token": "tok", "user": "zuul-worker", "ca_crt": "Q0E=",
            })
        );
        let keys: Vec<&str> = checked.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "name",
                "namespace",
                "host",
                "skiptls",
                "token",
                "user",
                "ca_crt"
            ]
        );
        let skipped = credentials("main-1", "https://k//", true, "tok", "Q0E=", Some("pod-x"));
        assert_eq!(
            skipped["host"], "https://k",
            "trailing slashes go, as in Python"
        );
        assert!(skipped.get("ca_crt").is_none());
        assert_eq!(skipped["pod"], "pod-x");
    }

    #[test]
    fn roles_are_nodepools() {
        let full = role_body(false);
        assert_eq!(full["metadata"]["name"], "zuul");
        assert_eq!(full["rules"][0]["verbs"].as_array().map(Vec::len), Some(7));
        let restricted = role_body(true);
        assert_eq!(restricted["metadata"]["name"], "zuul-restricted");
        assert_eq!(restricted["rules"][0]["verbs"], json!(["get", "list"]));
        let binding = role_binding_body("main-1", true);
        assert_eq!(binding["roleRef"]["name"], "zuul-restricted");
        assert_eq!(binding["subjects"][0]["namespace"], "main-1");
    }
}
