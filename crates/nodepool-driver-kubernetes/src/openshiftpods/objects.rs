//! The pod of an openshiftpods node, how its external id reads, which pods are a provider's,
//! and the credentials Zuul receives, as Nodepool 11 does them (pure: unit-tested here).
//!
//! A node is the pod `<label>-<node id>` in the namespace named by its pool; its external id
//! is `<pool>-<pod>`. The pod carries the label's `labels`, its filled `dynamic-labels` and
//! the four `nodepool_*` labels, and is built from the label's settings (or its `spec`) by
//! the kubernetes driver's [`pod_body`].

use base64::Engine as _;
use nodepool_config::Provider as ProviderConfig;
use nodepool_driver::{CreateSpec, DriverError, Metadata, Quota};
use serde_json::{Map, Value};

use crate::kubeconfig::{ClusterAccess, Credential};
use crate::objects::{
    SERVICE_ACCOUNT, api_host, node_identity, pod_body, quota_need, string_labels,
};

/// The pod of a node: `<label>-<node id>`.
pub fn pod_name(label: &str, node_id: &str) -> String {
    format!("{label}-{node_id}")
}

/// A node's external id: `<pool>-<pod>` (the pool is the namespace).
pub fn external_id(namespace: &str, pod: &str) -> String {
    format!("{namespace}-{pod}")
}

/// The node id of a pod the provider manages, by Nodepool's rule: the name starts with
/// `<label>-` for one of the provider's labels (of any pool) and its last `-` part is a
/// number.
pub fn managed_node_id<'a, 'l>(
    pod: &'a str,
    mut labels: impl Iterator<Item = &'l str>,
) -> Option<&'a str> {
    let named = labels.any(|label| {
        pod.strip_prefix(label)
            .is_some_and(|rest| rest.starts_with('-'))
    });
    let last = pod.rsplit('-').next()?;
    (named && !last.is_empty() && last.bytes().all(|b| b.is_ascii_digit())).then_some(last)
}

/// The namespace and pod an external id (`<pool>-<pod>`) names, among `pools` (each pool's
/// name and labels, in configuration order). `pool_hint` (a leaked pod's
/// `nodepool_pool_name`) is taken when it fits. Otherwise a pool whose label the pod is
/// named after wins over one whose name merely prefixes the id (pool `a` and `a-b` both
/// prefix `a-b-pod-1`); among equals the first, as Nodepool's `getProjectPodName`. `None`
/// when no configured pool prefixes the id.
pub fn locate(
    external_id: &str,
    pools: &[(&str, Vec<&str>)],
    pool_hint: Option<&str>,
) -> Option<(String, String)> {
    let candidates: Vec<(&str, &str, &Vec<&str>)> = pools
        .iter()
        .filter_map(|(pool, labels)| {
            let pod = external_id.strip_prefix(pool)?.strip_prefix('-')?;
            (!pod.is_empty()).then_some((*pool, pod, labels))
        })
        .collect();
    let chosen = candidates
        .iter()
        .find(|(pool, _, _)| Some(*pool) == pool_hint)
        .or_else(|| {
            candidates
                .iter()
                .find(|(_, pod, labels)| managed_node_id(pod, labels.iter().copied()).is_some())
        })
        .or_else(|| candidates.first())?;
    Some((chosen.0.to_string(), chosen.1.to_string()))
}

/// Everything a create needs, resolved from the configuration when the machine is made.
#[derive(Debug, Clone, PartialEq)]
pub struct PodPlan {
    pub provider: String,
    pub pool: String,
    pub label: String,
    pub node_id: String,
    /// The pool's namespace (its name).
    pub namespace: String,
    /// `<label>-<node id>`.
    pub pod_name: String,
    /// The pod's labels.
    pub labels: Map<String, Value>,
    pub pod: Value,
    pub python_path: String,
    pub shell_type: Option<String>,
    /// What the node counts against quota (its `resources`).
    pub resources: Quota,
    /// The provider's `context`, reported as the node's `cloud`.
    pub context: Option<String>,
}

impl PodPlan {
    /// `<pool>-<pod>`.
    pub fn external_id(&self) -> String {
        external_id(&self.namespace, &self.pod_name)
    }

    /// The pod's labels as metadata.
    pub fn metadata(&self) -> Metadata {
        string_labels(Some(&self.labels))
    }
}

/// The plan for the node of `spec`.
pub fn plan(
    config: &ProviderConfig,
    context: Option<&str>,
    spec: &CreateSpec,
) -> Result<PodPlan, DriverError> {
    let (label, node_id, labels) = node_identity(config, spec)?;
    let pod_name = pod_name(&spec.label, &node_id);
    let pod = pod_body(&pod_name, &spec.label, label, &labels);
    Ok(PodPlan {
        provider: config.name.clone(),
        pool: spec.pool.clone(),
        label: spec.label.clone(),
        namespace: spec.pool.clone(),
        pod_name,
        node_id,
        labels,
        pod,
        python_path: label.python_path.clone(),
        shell_type: label.shell_type.clone(),
        resources: quota_need(label),
        context: context.map(str::to_string),
    })
}

/// The cluster CA Zuul is told to trust, as Nodepool reads it: the PEM of the kubeconfig's
/// certificate authority, base64-encoded, for `https` servers that name one (whether or not
/// TLS is checked); `None` otherwise.
pub fn ca_crt(access: &ClusterAccess) -> Option<String> {
    let pem = access.ca_pem.as_ref()?;
    access
        .server
        .starts_with("https")
        .then(|| base64::engine::general_purpose::STANDARD.encode(pem))
}

/// Whether the launcher's identity has a bearer token to hand on. A client certificate (or
/// basic authentication) has none: the nodes' `token` is then null, and Zuul cannot use them.
pub fn hands_on_a_token(access: &ClusterAccess) -> bool {
    matches!(
        access.credential,
        Credential::Token(_) | Credential::TokenFile(_)
    )
}

/// The dict Zuul connects with (the node's `connection_port`), in Nodepool's key order:
/// the pod, its namespace, the API server, the cluster CA (base64 PEM, or null), whether
/// TLS is unchecked, the launcher's token (or null), and the user name Nodepool writes
/// (`zuul-worker`, though the token is the launcher's).
pub fn credentials(
    pod: &str,
    namespace: &str,
    server: &str,
    ca_crt: Option<&str>,
    skip_tls: bool,
    token: Option<&str>,
) -> Map<String, Value> {
    let mut dict = Map::new();
    dict.insert("pod".into(), Value::from(pod));
    dict.insert("namespace".into(), Value::from(namespace));
    dict.insert("host".into(), Value::from(api_host(server)));
    dict.insert("ca_crt".into(), ca_crt.map_or(Value::Null, Value::from));
    dict.insert("skiptls".into(), Value::from(skip_tls));
    dict.insert("token".into(), token.map_or(Value::Null, Value::from));
    dict.insert("user".into(), Value::from(SERVICE_ACCOUNT));
    dict
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kubeconfig::Secret;
    use nodepool_config::{Env, parse_config};
    use nodepool_driver::metadata_keys;
    use serde_json::json;
    use std::path::Path;

    const CONFIG: &str = r#"
labels:
  - name: fedora
  - name: custom
providers:
  - name: os
    driver: openshiftpods
    context: ctx
    pools:
      - name: ci
        labels:
          - name: fedora
            image: quay.io/fedora/fedora:40
            image-pull-secrets: [{name: quay-pull}]
            cpu: 2
            memory: 512
            env: [{name: A, value: b}]
            labels: {team: ci}
            dynamic-labels: {tenant: "{request.tenant_name}"}
            annotations: {note: hi}
          - name: custom
            spec:
              containers: [{name: c, image: busybox}]
"#;

    fn provider() -> ProviderConfig {
        let loaded = parse_config(Path::new("nodepool.yaml"), CONFIG, None, &Env::new())
            .unwrap_or_else(|e| panic!("config: {e:?}"));
        loaded.config.providers["os"].clone()
    }

    fn spec(label: &str) -> CreateSpec {
        CreateSpec {
            hostname: "np0000000042".into(),
            pool: "ci".into(),
            label: label.into(),
            image_external_id: None,
            metadata: Metadata::from([(
                metadata_keys::NODE_ID.to_string(),
                "0000000042".to_string(),
            )]),
            az: None,
            request: None,
        }
    }

    #[test]
    fn the_pod_is_named_after_label_and_node_in_the_pools_namespace() {
        let plan = plan(&provider(), Some("ctx"), &spec("fedora")).expect("plan");
        assert_eq!(plan.namespace, "ci");
        assert_eq!(plan.pod_name, "fedora-0000000042");
        assert_eq!(plan.external_id(), "ci-fedora-0000000042");
        assert_eq!(plan.context.as_deref(), Some("ctx"));
        assert_eq!(
            plan.pod,
            json!({
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {
                    "name": "fedora-0000000042",
                    "labels": {
                        "team": "ci",
                        "nodepool_node_id": "0000000042",
                        "nodepool_provider_name": "os",
                        "nodepool_pool_name": "ci",
                        "nodepool_node_label": "fedora",
                    },
                    "annotations": {"note": "hi"},
                },
                "spec": {
                    "containers": [{
                        "name": "fedora",
                        "image": "quay.io/fedora/fedora:40",
                        "imagePullPolicy": "IfNotPresent",
                        "command": ["/bin/sh", "-c"],
                        "args": ["while true; do sleep 30; done;"],
                        "env": [{"name": "A", "value": "b"}],
                        "resources": {
                            "requests": {"cpu": 2, "memory": "512Mi"},
                            "limits": {"cpu": 2, "memory": "512Mi"},
                        },
                    }],
                    "imagePullSecrets": [{"name": "quay-pull"}],
                },
            }),
            "the container is named after the label, the pod after label and node; no \
             `tenant` label: the create names no request"
        );
        assert_eq!(
            Value::Object(plan.resources.to_json()),
            json!({"cores": 2, "instances": 1, "ram": 512})
        );
        assert_eq!(plan.metadata()["nodepool_node_label"], "fedora");
    }

    #[test]
    fn a_user_spec_pod_is_named_the_same_way() {
        let plan = plan(&provider(), Some("ctx"), &spec("custom")).expect("plan");
        assert_eq!(plan.pod["metadata"]["name"], "custom-0000000042");
        assert_eq!(
            plan.pod["spec"],
            json!({"containers": [{"name": "c", "image": "busybox"}]})
        );
    }

    #[test]
    fn a_label_the_pool_does_not_have_is_an_error() {
        let mut wrong = spec("fedora");
        wrong.pool = "elsewhere".into();
        let e = plan(&provider(), None, &wrong).expect_err("no pool");
        assert!(e.to_string().contains("has no pool elsewhere"), "{e}");
        let e = plan(&provider(), None, &spec("nope")).expect_err("no label");
        assert!(e.to_string().contains("has no label nope"), "{e}");
    }

    #[test]
    fn managed_pods_are_named_label_dash_number() {
        let labels = ["fedora", "pod-gpu"];
        let id = |name| managed_node_id(name, labels.iter().copied());
        assert_eq!(id("fedora-0000000042"), Some("0000000042"));
        assert_eq!(id("pod-gpu-7"), Some("7"));
        for other in ["fedora-x", "fedorax-1", "other-1", "fedora-", "fedora"] {
            assert_eq!(id(other), None, "{other}");
        }
    }

    #[test]
    fn external_ids_are_split_at_the_pool_that_fits_best() {
        let pools = vec![
            ("a", vec!["b-pod"]),
            ("a-b", vec!["pod"]),
            ("ci", vec!["x"]),
        ];
        let at = |id, hint| locate(id, &pools, hint);
        let pair = |ns: &str, pod: &str| Some((ns.to_string(), pod.to_string()));
        assert_eq!(at("ci-x-0000000001", None), pair("ci", "x-0000000001"));
        // `a-b-pod-1` is pod `b-pod-1` of pool `a` and pod `pod-1` of pool `a-b`; both
        // labels exist, so the first pool wins, as in Nodepool, unless the pod's own
        // `nodepool_pool_name` says otherwise.
        assert_eq!(at("a-b-pod-1", None), pair("a", "b-pod-1"));
        assert_eq!(at("a-b-pod-1", Some("a-b")), pair("a-b", "pod-1"));
        // Neither pool has a label `gone`: the first pool that prefixes the id wins.
        assert_eq!(at("a-b-gone-1", None), pair("a", "b-gone-1"));
        let pools = vec![("a", vec!["x"]), ("a-b", vec!["pod"])];
        assert_eq!(
            locate("a-b-pod-1", &pools, None),
            pair("a-b", "pod-1"),
            "the pool whose label names the pod"
        );
        assert_eq!(locate("zz-pod-1", &pools, None), None);
        assert_eq!(locate("a-", &pools, None), None);
        assert_eq!(
            locate("a-b-pod-1", &pools, Some("nope")),
            pair("a-b", "pod-1"),
            "a hint that fits no pool is ignored"
        );
    }

    fn access(server: &str, credential: Credential) -> ClusterAccess {
        ClusterAccess {
            server: server.into(),
            ca_pem: Some(b"-----BEGIN CERTIFICATE-----\n".to_vec()),
            insecure_skip_tls_verify: false,
            identity: None,
            credential,
            origin: "test".into(),
        }
    }

    #[test]
    fn the_ca_is_the_pem_base64_encoded_for_https_servers() {
        let https = access("https://k:6443/", Credential::None);
        assert_eq!(
            ca_crt(&https).as_deref(),
            Some("LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCg==")
        );
        assert_eq!(ca_crt(&access("http://k:8080", Credential::None)), None);
        let mut none = https.clone();
        none.ca_pem = None;
        assert_eq!(ca_crt(&none), None);
        assert!(!hands_on_a_token(&https));
        assert!(hands_on_a_token(&access(
            "https://k",
            Credential::Token(Secret::new("t".into()))
        )));
    }

    #[test]
    fn credentials_are_nodepools_dict_in_its_order() {
        let dict = credentials(
            "fedora-0000000042",
            "ci",
            "https://k:6443/",
            Some("Q0E="),
            false,
            Some("tok"),
        );
        let keys: Vec<&str> = dict.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "pod",
                "namespace",
                "host",
                "ca_crt",
                "skiptls",
                "token",
                "user"
            ]
        );
        assert_eq!(
            Value::Object(dict),
            json!({
                "pod": "fedora-0000000042", "namespace": "ci", "host": "https://k:6443",
                "ca_crt": "Q0E=", "skiptls": false, "token": "tok", "user": "zuul-worker",
            })
        );
        let bare = credentials("p", "ci", "https://k", None, true, None);
        assert_eq!(bare["ca_crt"], Value::Null);
        assert_eq!(bare["token"], Value::Null);
        assert_eq!(bare["skiptls"], json!(true));
    }
}
