//! The openshiftpods driver against the real local Kubernetes of `scripts/kubernetes/` (API
//! server, controller-manager, scheduler, kwok as the kubelet).
//!
//! Each test makes its own pool namespace first (openshiftpods makes none) and, where the
//! launcher's token matters, a service account there with the `edit` role whose token the
//! provider's kubeconfig carries: a launcher that may only work in its projects, as on
//! OpenShift. Names are fresh per test and run. Waits poll with a deadline.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use base64::Engine as _;
use nodepool_config::{Env, Provider as ProviderConfig, parse_config};
use nodepool_driver::{
    CreateSpec, DriverError, Instance, Metadata, Provider, RequestAttributes, metadata_keys,
    run_delete_machine,
};
use nodepool_driver_kubernetes::testing::{self, unique_node_id};
use nodepool_driver_kubernetes::{
    ApiErrorKind, Kind, KubeClient, KubeconfigSource, LEAK_KIND, OpenShiftPodsDriver,
    OpenShiftPodsProvider,
};
use nodepool_model::ExternalId;
use reqwest::Method;
use serde_json::{Value, json};

async fn cluster() -> KubeconfigSource {
    tokio::task::spawn_blocking(testing::kubeconfig_source)
        .await
        .expect("ensure task")
        .unwrap_or_else(|e| panic!("the local Kubernetes does not run:\n{e}"))
}

fn admin() -> KubeClient {
    testing::admin_client().expect("admin client")
}

/// A short name no other test (or run) uses.
fn unique_name(prefix: &str) -> String {
    format!("{prefix}{}", &unique_node_id()[4..])
}

/// The context of the kubeconfigs [`Project::launcher_kubeconfig`] writes.
const LAUNCHER_CONTEXT: &str = "nodepool-launcher";

/// A pool's namespace, made by the test (by "the cluster's administrators"), deleted when
/// the test ends.
struct Project {
    namespace: String,
    /// Holds the launcher's kubeconfig.
    dir: tempfile::TempDir,
}

impl Project {
    async fn new(prefix: &str) -> Project {
        cluster().await;
        let namespace = unique_name(prefix);
        admin()
            .create_namespace(&json!({
                "apiVersion": "v1", "kind": "Namespace",
                "metadata": {"name": namespace},
            }))
            .await
            .expect("namespace");
        Project {
            namespace,
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    /// A kubeconfig for a service account `nodepool` with the `edit` role in this namespace
    /// only, authenticating with a bearer token (from the TokenRequest API), and the token.
    async fn launcher_kubeconfig(&self) -> (PathBuf, String) {
        let admin = admin();
        let ns = self.namespace.as_str();
        admin
            .create_in(
                ns,
                Kind::ServiceAccount,
                &json!({"apiVersion": "v1", "kind": "ServiceAccount",
                        "metadata": {"name": "nodepool"}}),
            )
            .await
            .expect("service account");
        admin
            .create_in(
                ns,
                Kind::RoleBinding,
                &json!({
                    "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                    "metadata": {"name": "nodepool-edit"},
                    "roleRef": {"apiGroup": "rbac.authorization.k8s.io",
                                "kind": "ClusterRole", "name": "edit"},
                    "subjects": [{"kind": "ServiceAccount", "name": "nodepool", "namespace": ns}],
                }),
            )
            .await
            .expect("role binding");
        let answer = admin
            .call(
                Method::POST,
                &[
                    "api",
                    "v1",
                    "namespaces",
                    ns,
                    "serviceaccounts",
                    "nodepool",
                    "token",
                ],
                &[],
                Some(&json!({
                    "apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                    "spec": {"expirationSeconds": 3600},
                })),
            )
            .await
            .expect("token request");
        let token = answer["status"]["token"]
            .as_str()
            .expect("a token")
            .to_string();
        let ca = admin.access().ca_pem.clone().expect("the cluster's CA");
        let ca_path = self.dir.path().join("ca.crt");
        std::fs::write(&ca_path, &ca).expect("write CA");
        let path = self.dir.path().join("kubeconfig");
        std::fs::write(
            &path,
            format!(
                "apiVersion: v1\nkind: Config\nclusters:\n- name: local\n  cluster:\n    server: {}/\n    certificate-authority: {}\nusers:\n- name: nodepool\n  user:\n    token: {token}\ncontexts:\n- name: {LAUNCHER_CONTEXT}\n  context: {{cluster: local, user: nodepool, namespace: {ns}}}\ncurrent-context: {LAUNCHER_CONTEXT}\n",
                admin.access().server,
                ca_path.display()
            ),
        )
        .expect("write kubeconfig");
        (path, token)
    }

    async fn delete(self) {
        let _ = admin().delete_namespace(&self.namespace).await;
    }
}

const LABELS: &str = r#"
          - name: pod-fedora
            image: registry.example/fedora:40
            image-pull: Always
            image-pull-secrets: [{name: registry-pull}]
            python-path: /usr/bin/python3
            shell-type: bash
            cpu: 1
            memory: 256
            memory-limit: 512
            storage: 100
            env:
              - {name: FOO, value: bar}
              - {name: ZUUL, value: "yes"}
            node-selector: {type: kwok}
            privileged: true
            volumes: [{name: scratch, emptyDir: {}}]
            volume-mounts: [{name: scratch, mountPath: /scratch}]
            labels: {team: ci}
            dynamic-labels: {tenant: "{request.tenant_name}"}
            annotations: {note: hello}
            extra-resources: {licenses: 1}
          - name: pod-custom
            labels: {custom: "yes"}
            spec:
              containers:
                - name: main
                  image: registry.example/custom:1
"#;

/// An openshiftpods provider whose pools are `pools` (namespaces), each with [`LABELS`].
fn provider_config(provider: &str, pools: &[&str], context: &str) -> ProviderConfig {
    let pools: String = pools
        .iter()
        .map(|pool| {
            format!("      - name: {pool}\n        max-servers: 10\n        labels:{LABELS}")
        })
        .collect();
    let text = format!(
        "labels:\n  - name: pod-fedora\n  - name: pod-custom\nproviders:\n  - name: {provider}\n    driver: openshiftpods\n    context: {context}\n    pools:\n{pools}"
    );
    let loaded = parse_config(Path::new("nodepool.yaml"), &text, None, &Env::new())
        .unwrap_or_else(|e| panic!("config: {e:?}\n{text}"));
    loaded.config.providers[provider].clone()
}

/// A provider using the local cluster's admin (a client certificate: no token to hand on).
async fn admin_provider(prefix: &str, pools: &[&str]) -> OpenShiftPodsProvider {
    let config = provider_config(&unique_name(prefix), pools, testing::CONTEXT);
    OpenShiftPodsDriver::with_kubeconfig(cluster().await)
        .build_openshiftpods(&config)
        .expect("provider")
}

/// A provider using the project's own service account (a bearer token).
async fn launcher_provider(prefix: &str, project: &Project) -> (OpenShiftPodsProvider, String) {
    let (kubeconfig, token) = project.launcher_kubeconfig().await;
    let config = provider_config(
        &unique_name(prefix),
        &[project.namespace.as_str()],
        LAUNCHER_CONTEXT,
    );
    let provider = OpenShiftPodsDriver::with_kubeconfig(KubeconfigSource::Files(vec![kubeconfig]))
        .build_openshiftpods(&config)
        .expect("provider");
    (provider, token)
}

fn spec(provider: &dyn Provider, pool: &str, node_id: &str, label: &str) -> CreateSpec {
    let metadata = Metadata::from([
        (metadata_keys::NODE_ID.to_string(), node_id.to_string()),
        (metadata_keys::POOL_NAME.to_string(), pool.to_string()),
        (
            metadata_keys::PROVIDER_NAME.to_string(),
            provider.name().to_string(),
        ),
    ]);
    CreateSpec {
        hostname: format!("np{node_id}"),
        pool: pool.to_string(),
        label: label.to_string(),
        image_external_id: None,
        metadata,
        az: None,
        request: Some(RequestAttributes {
            id: "200-0000000001".into(),
            labels: vec![label.to_string()],
            requestor: Some("zuul".into()),
            requestor_data: Value::Null,
            relative_priority: 0,
            event_id: None,
            created_time: None,
            tenant_name: Some("openstack".into()),
        }),
    }
}

/// Drives a create machine to its end as the launcher does (one step, then `poll_after`),
/// within `limit`.
async fn create(
    provider: &dyn Provider,
    spec: CreateSpec,
    limit: Duration,
) -> (
    Result<Instance, DriverError>,
    Option<ExternalId>,
    Vec<String>,
) {
    let mut machine = provider.create_machine(spec);
    let began = Instant::now();
    let mut states = Vec::new();
    loop {
        let state = machine.state().to_string();
        if states.last() != Some(&state) {
            states.push(state);
        }
        match machine.advance().await {
            Ok(Some(instance)) => return (Ok(instance), machine.external_id(), states),
            Ok(None) => {}
            Err(e) => return (Err(e), machine.external_id(), states),
        }
        assert!(
            began.elapsed() < limit,
            "the create is still at {} after {limit:?}",
            machine.state()
        );
        tokio::time::sleep(machine.poll_after()).await;
    }
}

fn credentials(instance: &Instance) -> serde_json::Map<String, Value> {
    instance
        .connection_credentials
        .clone()
        .expect("credentials")
        .0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_node_runs_in_the_pools_namespace_and_zuul_gets_the_launchers_token() {
    let project = Project::new("osp").await;
    let ns = project.namespace.clone();
    let (provider, token) = launcher_provider("osp-p", &project).await;
    let node_id = unique_node_id();
    let pod_name = format!("pod-fedora-{node_id}");
    let (instance, external, states) = create(
        &provider,
        spec(&provider, &ns, &node_id, "pod-fedora"),
        Duration::from_secs(120),
    )
    .await;
    let instance = instance.unwrap_or_else(|e| panic!("create failed: {e} (states {states:?})"));
    assert_eq!(states, ["creating pod", "waiting for pod"]);
    let expected_id = ExternalId::Id(format!("{ns}-{pod_name}"));
    assert_eq!(external, Some(expected_id.clone()));

    // What the launcher writes to the node record.
    assert_eq!(instance.external_id, Some(expected_id));
    assert_eq!(instance.connection_type.as_deref(), Some("kubectl"));
    assert_eq!(
        instance.interface_ip.as_deref(),
        Some(pod_name.as_str()),
        "Nodepool's interface_ip of a pod node is the pod's name"
    );
    assert_eq!(instance.host_id.as_deref(), Some("nodepool-kwok-0"));
    assert_eq!(instance.cloud.as_deref(), Some(LAUNCHER_CONTEXT));
    assert_eq!(instance.python_path.as_deref(), Some("/usr/bin/python3"));
    assert_eq!(instance.shell_type.as_deref(), Some("bash"));
    assert_eq!(instance.username, None);
    assert_eq!(instance.connection_port, None);
    assert_eq!(instance.host_keys, Some(Vec::new()), "no nodescan");
    assert_eq!(instance.node_id(), Some(node_id.as_str()));
    assert_eq!(instance.provider_name(), Some(provider.name()));
    assert_eq!(
        Value::Object(instance.resources.clone().expect("resources").to_json()),
        json!({"cores": 1, "ephemeral-storage": 100, "instances": 1, "licenses": 1, "ram": 256})
    );
    let need = provider
        .quota_for_label(&ns, "pod-fedora")
        .await
        .expect("quota");
    assert_eq!(Some(need), instance.resources);

    // The credentials dict, as Nodepool writes it: the launcher's own server, CA and token.
    let credentials = credentials(&instance);
    let keys: Vec<&str> = credentials.keys().map(String::as_str).collect();
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
    let ca = admin().access().ca_pem.clone().expect("CA");
    assert_eq!(
        Value::Object(credentials.clone()),
        json!({
            "pod": pod_name,
            "namespace": ns,
            "host": "https://127.0.0.1:16443",
            "ca_crt": base64::engine::general_purpose::STANDARD.encode(&ca),
            "skiptls": false,
            "token": token,
            "user": "zuul-worker",
        }),
        "the server without the kubeconfig's trailing slash, the CA PEM in base64"
    );

    // The pod, as the API server has it.
    let admin = admin();
    let pod = admin.get_in(&ns, Kind::Pod, &pod_name).await.expect("pod");
    assert_eq!(pod["status"]["phase"], "Running");
    assert_eq!(pod["spec"]["nodeSelector"], json!({"type": "kwok"}));
    assert_eq!(
        pod["spec"]["imagePullSecrets"],
        json!([{"name": "registry-pull"}])
    );
    assert_eq!(
        pod["metadata"]["labels"],
        json!({
            "team": "ci",
            "tenant": "openstack",
            "nodepool_node_id": node_id,
            "nodepool_provider_name": provider.name(),
            "nodepool_pool_name": ns,
            "nodepool_node_label": "pod-fedora",
        })
    );
    assert_eq!(pod["metadata"]["annotations"]["note"], "hello");
    let container = &pod["spec"]["containers"][0];
    assert_eq!(container["name"], "pod-fedora", "named after the label");
    assert_eq!(container["image"], "registry.example/fedora:40");
    assert_eq!(container["imagePullPolicy"], "Always");
    assert_eq!(container["command"], json!(["/bin/sh", "-c"]));
    assert_eq!(
        container["env"],
        json!([{"name": "FOO", "value": "bar"}, {"name": "ZUUL", "value": "yes"}])
    );
    assert_eq!(
        container["resources"],
        json!({
            "requests": {"cpu": "1", "memory": "256Mi", "ephemeral-storage": "100M"},
            "limits": {"cpu": "1", "memory": "512Mi", "ephemeral-storage": "100M"},
        })
    );
    assert_eq!(container["securityContext"], json!({"privileged": true}));
    assert_eq!(
        container["volumeMounts"][0],
        json!({"name": "scratch", "mountPath": "/scratch"})
    );

    // Zuul's view: the dict's server, CA and token reach the pod.
    let zuul = testing::client_from_credentials(&credentials).expect("client from credentials");
    let seen = zuul
        .get_in(&ns, Kind::Pod, &pod_name)
        .await
        .expect("Zuul reads the pod");
    assert_eq!(seen["metadata"]["name"], json!(pod_name));

    // The provider lists it as its own.
    let listed = provider.list_instances().await.expect("list");
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0].external_id, instance.external_id);
    assert_eq!(listed[0].resources, None, "no unmanaged quota, as Nodepool");

    project.delete().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_spec_label_runs_as_given_under_the_nodes_name() {
    let project = Project::new("ospc").await;
    let ns = project.namespace.clone();
    let provider = admin_provider("ospc-p", &[&ns]).await;
    let node_id = unique_node_id();
    let (instance, _, states) = create(
        &provider,
        spec(&provider, &ns, &node_id, "pod-custom"),
        Duration::from_secs(120),
    )
    .await;
    let instance = instance.unwrap_or_else(|e| panic!("create failed: {e} ({states:?})"));
    let pod_name = format!("pod-custom-{node_id}");
    let pod = admin()
        .get_in(&ns, Kind::Pod, &pod_name)
        .await
        .expect("pod");
    assert_eq!(pod["spec"]["containers"][0]["name"], "main");
    assert_eq!(
        pod["spec"]["containers"][0]["image"],
        "registry.example/custom:1"
    );
    assert_eq!(pod["metadata"]["labels"]["custom"], "yes");
    assert_eq!(
        Value::Object(instance.resources.clone().expect("resources").to_json()),
        json!({"cores": 0, "instances": 1, "ram": 0})
    );
    // The admin's kubeconfig authenticates with a client certificate: there is no token to
    // hand on (Nodepool writes null as well), while the CA is there.
    let credentials = credentials(&instance);
    assert_eq!(credentials["token"], Value::Null);
    assert!(credentials["ca_crt"].is_string());
    assert_eq!(credentials["pod"], json!(pod_name));
    project.delete().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_removes_the_pod_and_a_second_delete_is_done_at_once() {
    let project = Project::new("ospd").await;
    let ns = project.namespace.clone();
    let (provider, _) = launcher_provider("ospd-p", &project).await;
    let node_id = unique_node_id();
    let (instance, _, _) = create(
        &provider,
        spec(&provider, &ns, &node_id, "pod-fedora"),
        Duration::from_secs(120),
    )
    .await;
    let external = instance.expect("create").external_id.expect("external id");
    let began = Instant::now();
    run_delete_machine(&provider, &external, Duration::from_secs(120))
        .await
        .expect("delete");
    eprintln!("pod deleted in {:.1} s", began.elapsed().as_secs_f64());
    let gone = admin()
        .get_in(&ns, Kind::Pod, &format!("pod-fedora-{node_id}"))
        .await
        .expect_err("the pod is gone");
    assert_eq!(gone.kind, ApiErrorKind::NotFound, "{gone}");
    let mut again = provider.delete_machine(&external);
    assert_eq!(
        again.advance().await,
        Ok(true),
        "deleting a gone pod is done"
    );
    assert_eq!(again.state(), "complete");
    assert!(provider.list_instances().await.expect("list").is_empty());

    // An external id in no pool's namespace (its pool was removed) is not an error to the
    // deleter: there is nothing this provider can delete.
    let mut stray = provider.delete_machine(&ExternalId::Id("elsewhere-pod-fedora-1".into()));
    let result = stray.advance().await;
    assert!(
        matches!(&result, Err(DriverError::NotFound(m)) if m.contains("none of its pools")),
        "{result:?}"
    );
    project.delete().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leak_listing_finds_the_providers_pods_in_its_pools_only() {
    let project = Project::new("ospl").await;
    let ns = project.namespace.clone();
    // The second pool's namespace does not exist: listing skips it.
    let missing = unique_name("ospl-missing");
    let provider = admin_provider("ospl-p", &[&ns, &missing]).await;
    let admin = admin();
    let leaked_id = unique_node_id();
    let pod = |name: &str, provider_name: &str, node_id: &str| {
        json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "labels": {
                "nodepool_node_id": node_id,
                "nodepool_provider_name": provider_name,
                "nodepool_pool_name": ns,
                "nodepool_node_label": "pod-fedora",
            }},
            "spec": {"containers": [{"name": "c", "image": "registry.example/x"}]},
        })
    };
    let leaked = format!("pod-fedora-{leaked_id}");
    // A node pod whose node is gone; another provider's; ours by label but not named
    // `<label>-<number>`; one without labels.
    for body in [
        pod(&leaked, provider.name(), &leaked_id),
        pod(
            &format!("pod-fedora-{}", unique_node_id()),
            "someone-else",
            "0000000001",
        ),
        pod("scratch-0000000002", provider.name(), "0000000002"),
        pod("pod-fedora-abc", provider.name(), "0000000003"),
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "pod-fedora-0000000004"},
               "spec": {"containers": [{"name": "c", "image": "registry.example/x"}]}}),
    ] {
        let mut tries = 0;
        loop {
            // A namespace made a moment ago may not have its default service account yet.
            match admin.create_in(&ns, Kind::Pod, &body).await {
                Ok(_) => break,
                Err(e) if tries < 60 && e.message.contains("error looking up service account") => {
                    tries += 1;
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                Err(e) => panic!("pod: {e}"),
            }
        }
    }

    let resources = provider.list_resources().await.expect("list resources");
    assert_eq!(resources.len(), 1, "{resources:?}");
    let resource = &resources[0];
    assert_eq!(resource.kind, LEAK_KIND);
    assert_eq!(resource.kind, "node", "Nodepool counts leaked.nodes");
    assert_eq!(
        resource.id,
        format!("{ns}-{leaked}"),
        "Nodepool's server id"
    );
    assert_eq!(
        resource.metadata.get(metadata_keys::NODE_ID),
        Some(&leaked_id)
    );
    assert_eq!(
        resource
            .metadata
            .get(metadata_keys::PROVIDER_NAME)
            .map(String::as_str),
        Some(provider.name())
    );
    let instances = provider.list_instances().await.expect("list instances");
    assert_eq!(instances.len(), 1);
    assert_eq!(
        instances[0].external_id,
        Some(ExternalId::Id(resource.id.clone()))
    );

    provider.delete_resource(resource).await.expect("delete");
    let began = Instant::now();
    loop {
        match admin.get_in(&ns, Kind::Pod, &leaked).await {
            Err(e) if e.kind == ApiErrorKind::NotFound => break,
            Ok(pod) if pod["metadata"]["deletionTimestamp"].is_string() => break,
            other => assert!(
                began.elapsed() < Duration::from_secs(30),
                "the leaked pod is still there: {other:?}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    provider
        .delete_resource(resource)
        .await
        .expect("deleting it again is fine");
    project.delete().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pool_whose_namespace_does_not_exist_fails_with_a_clear_error() {
    let pool = unique_name("ospn");
    let provider = admin_provider("ospn-p", &[&pool]).await;
    let node_id = unique_node_id();
    let (result, external, states) = create(
        &provider,
        spec(&provider, &pool, &node_id, "pod-fedora"),
        Duration::from_secs(30),
    )
    .await;
    let error = result.expect_err("no namespace");
    let DriverError::Fatal(message) = &error else {
        panic!("a fatal error: {error:?}");
    };
    assert!(
        message.contains(&format!("pool {pool}: namespace {pool} does not exist"))
            && message.contains("HTTP 404"),
        "{message}"
    );
    assert_eq!(states, ["creating pod"]);
    assert_eq!(external, None, "nothing was made");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_after_a_partial_attempt_uses_its_pod_and_not_another_providers() {
    let project = Project::new("ospa").await;
    let ns = project.namespace.clone();
    let provider = admin_provider("ospa-p", &[&ns]).await;
    let node_id = unique_node_id();
    // An earlier attempt that made the pod, then lost its launcher.
    let mut first = provider.create_machine(spec(&provider, &ns, &node_id, "pod-fedora"));
    let began = Instant::now();
    while first.state() != "waiting for pod" {
        assert_eq!(first.advance().await, Ok(None));
        assert!(began.elapsed() < Duration::from_secs(60), "no pod made");
        tokio::time::sleep(first.poll_after()).await;
    }
    drop(first);
    let (instance, external, states) = create(
        &provider,
        spec(&provider, &ns, &node_id, "pod-fedora"),
        Duration::from_secs(120),
    )
    .await;
    let instance = instance.unwrap_or_else(|e| panic!("second attempt: {e} ({states:?})"));
    let expected = ExternalId::Id(format!("{ns}-pod-fedora-{node_id}"));
    assert_eq!(external, Some(expected.clone()));
    assert_eq!(instance.external_id, Some(expected));

    // Another provider with the same pool and label, and the same node id: the pod is not
    // its own, and it does not claim it (so its launcher never deletes it).
    let other = admin_provider("ospa-o", &[&ns]).await;
    let (result, external, _) = create(
        &other,
        spec(&other, &ns, &node_id, "pod-fedora"),
        Duration::from_secs(30),
    )
    .await;
    let error = result.expect_err("not this provider's pod");
    assert!(
        error.to_string().contains("already exists")
            && error
                .to_string()
                .contains("not labelled as this node's pod"),
        "{error}"
    );
    assert_eq!(external, None);
    project.delete().await;
}
