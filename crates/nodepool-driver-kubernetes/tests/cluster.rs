//! The kubernetes driver against the real local Kubernetes of `scripts/kubernetes/` (API
//! server, controller-manager with the token controller, scheduler, kwok as the kubelet).
//!
//! Each test uses its own provider and pool names and fresh node ids, so parallel tests and
//! earlier runs never see each other's namespaces. Waits poll with a deadline.

use std::path::Path;
use std::time::{Duration, Instant};

use nodepool_config::{Env, Provider as ProviderConfig, parse_config};
use nodepool_driver::{
    CreateSpec, DriverError, Instance, Metadata, Provider, RequestAttributes, metadata_keys,
    run_delete_machine,
};
use nodepool_driver_kubernetes::testing::{self, unique_node_id};
use nodepool_driver_kubernetes::{
    ApiErrorKind, Kind, KubeClient, KubeconfigSource, KubernetesDriver, KubernetesProvider,
    LEAK_KIND,
};
use nodepool_model::ExternalId;
use serde_json::{Value, json};

/// The local cluster's kubeconfig (started or built on first use).
async fn cluster() -> KubeconfigSource {
    tokio::task::spawn_blocking(testing::kubeconfig_source)
        .await
        .expect("ensure task")
        .unwrap_or_else(|e| panic!("the local Kubernetes does not run:\n{e}"))
}

fn admin() -> KubeClient {
    testing::admin_client().expect("admin client")
}

/// A short name no other test (or run) uses: `<prefix>-<pid>-<counter>`.
fn unique_name(prefix: &str) -> String {
    format!("{prefix}{}", &unique_node_id()[4..])
}

const LABELS: &str = r#"
          - name: ns
            type: namespace
            python-path: /usr/bin/python3
            shell-type: bash
            labels: {team: ci}
            dynamic-labels: {tenant: "{request.tenant_name}"}
          - name: pod-fedora
            type: pod
            image: registry.example/fedora:40
            image-pull: Always
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
            annotations: {note: hello}
            extra-resources: {licenses: 1}
          - name: bad-label-value
            type: namespace
            labels: {bad: "not a valid value!"}
"#;

fn provider_config(provider: &str, pool: &str, context: &str) -> ProviderConfig {
    let text = format!(
        "labels:\n  - name: ns\n  - name: pod-fedora\n  - name: bad-label-value\nproviders:\n  - name: {provider}\n    driver: kubernetes\n    context: {context}\n    pools:\n      - name: {pool}\n        max-servers: 10\n        labels:{LABELS}"
    );
    let loaded = parse_config(Path::new("nodepool.yaml"), &text, None, &Env::new())
        .unwrap_or_else(|e| panic!("config: {e:?}\n{text}"));
    loaded.config.providers[provider].clone()
}

/// A provider with names of its own on the local cluster.
async fn provider(prefix: &str) -> (KubernetesProvider, String) {
    let source = cluster().await;
    let pool = unique_name(prefix);
    let config = provider_config(
        &unique_name(&format!("{prefix}-p")),
        &pool,
        testing::CONTEXT,
    );
    let provider = KubernetesDriver::with_kubeconfig(source)
        .build_kubernetes(&config)
        .expect("provider");
    (provider, pool)
}

fn spec(provider: &KubernetesProvider, pool: &str, node_id: &str, label: &str) -> CreateSpec {
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
    provider: &KubernetesProvider,
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

/// Polls `check` every 200 ms until it gives a value or `limit` passes.
async fn eventually<T, F, Fut>(what: &str, limit: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let began = Instant::now();
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(began.elapsed() < limit, "{what}: not after {limit:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Starts deleting a namespace a test made (not waiting: the namespace controller takes
/// about 10 s).
async fn forget(namespace: &str) {
    let _ = admin().delete_namespace(namespace).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_namespace_node_gets_a_token_that_works_only_in_its_namespace() {
    let (provider, pool) = provider("ns").await;
    let node_id = unique_node_id();
    let namespace = format!("{pool}-{node_id}");
    let (instance, external, states) = create(
        &provider,
        spec(&provider, &pool, &node_id, "ns"),
        Duration::from_secs(90),
    )
    .await;
    let instance = instance.unwrap_or_else(|e| panic!("create failed: {e} (states {states:?})"));
    assert_eq!(external, Some(ExternalId::Id(namespace.clone())));
    assert_eq!(
        states,
        [
            "creating namespace",
            "creating service account",
            "creating token secret",
            "waiting for token",
            "creating role",
            "creating role binding",
        ]
    );

    // What the launcher writes to the node record.
    assert_eq!(
        instance.external_id,
        Some(ExternalId::Id(namespace.clone()))
    );
    assert_eq!(instance.connection_type.as_deref(), Some("namespace"));
    assert_eq!(instance.interface_ip, None);
    assert_eq!(instance.python_path.as_deref(), Some("/usr/bin/python3"));
    assert_eq!(instance.shell_type.as_deref(), Some("bash"));
    assert_eq!(instance.cloud.as_deref(), Some(testing::CONTEXT));
    assert_eq!(
        instance.username, None,
        "Nodepool leaves a kubernetes node's username null"
    );
    assert_eq!(
        instance.host_keys,
        Some(Vec::new()),
        "no nodescan, host_keys []"
    );
    assert_eq!(instance.connection_port, None);
    assert_eq!(instance.node_id(), Some(node_id.as_str()));
    assert_eq!(instance.provider_name(), Some(provider.name()));
    let resources = instance.resources.clone().expect("resources");
    assert_eq!(
        Value::Object(resources.to_json()),
        json!({"cores": 0, "instances": 1, "ram": 0})
    );
    let credentials = instance
        .connection_credentials
        .clone()
        .expect("credentials")
        .0;
    let keys: Vec<&str> = credentials.keys().map(String::as_str).collect();
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
    assert_eq!(credentials["name"], json!(namespace));
    assert_eq!(credentials["namespace"], json!(namespace));
    assert_eq!(credentials["host"], json!("https://127.0.0.1:16443"));
    assert_eq!(credentials["skiptls"], json!(false));
    assert_eq!(credentials["user"], json!("zuul-worker"));

    // The namespace carries Nodepool's labels, the label's and the dynamic ones.
    let admin = admin();
    let ns = admin.get_namespace(&namespace).await.expect("namespace");
    assert_eq!(
        ns["metadata"]["labels"],
        json!({
            "kubernetes.io/metadata.name": namespace,
            "nodepool_node_id": node_id,
            "nodepool_provider_name": provider.name(),
            "nodepool_pool_name": pool,
            "nodepool_node_label": "ns",
            "team": "ci",
            "tenant": "openstack",
        })
    );
    let role = admin
        .get_in(&namespace, Kind::Role, "zuul")
        .await
        .expect("role zuul");
    assert!(
        role["rules"][0]["resources"]
            .as_array()
            .is_some_and(|r| r.contains(&json!("pods/exec")))
    );

    // Zuul's view: the token and CA reach the API server; inside the namespace it may work,
    // outside it may not.
    let zuul = testing::client_from_credentials(&credentials).expect("client from credentials");
    let pods = zuul.list_in(&namespace, Kind::Pod).await;
    assert!(pods.is_ok(), "listing pods in its namespace: {pods:?}");
    let made = zuul
        .create_in(
            &namespace,
            Kind::Pod,
            &json!({
                "apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": "job"},
                "spec": {"containers": [{"name": "job", "image": "example.invalid/job"}]},
            }),
        )
        .await;
    // The namespace's default service account may lag a moment; anything but RBAC is fine.
    if let Err(e) = &made {
        assert!(
            e.message.contains("error looking up service account"),
            "the token may create pods in its namespace: {e}"
        );
    }
    let elsewhere = zuul
        .list_in("default", Kind::Pod)
        .await
        .expect_err("listing pods in another namespace is refused");
    assert_eq!(elsewhere.kind, ApiErrorKind::Forbidden, "{elsewhere}");
    assert!(
        elsewhere
            .message
            .contains(&format!("system:serviceaccount:{namespace}:zuul-worker")),
        "the API server's message names the service account: {elsewhere}"
    );
    let secrets = zuul.list_in("kube-system", Kind::Secret).await;
    assert!(
        matches!(&secrets, Err(e) if e.kind == ApiErrorKind::Forbidden),
        "{secrets:?}"
    );

    forget(&namespace).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_node_runs_with_the_labels_resources_and_environment() {
    let (provider, pool) = provider("pod").await;
    let node_id = unique_node_id();
    let namespace = format!("{pool}-{node_id}");
    let (instance, _, states) = create(
        &provider,
        spec(&provider, &pool, &node_id, "pod-fedora"),
        Duration::from_secs(120),
    )
    .await;
    let instance = instance.unwrap_or_else(|e| panic!("create failed: {e} (states {states:?})"));
    assert_eq!(
        states.last().map(String::as_str),
        Some("waiting for pod"),
        "{states:?}"
    );
    assert_eq!(instance.connection_type.as_deref(), Some("kubectl"));
    assert_eq!(
        instance.interface_ip.as_deref(),
        Some("pod-fedora"),
        "Nodepool's interface_ip of a pod node is the pod's name"
    );
    assert_eq!(instance.host_id.as_deref(), Some("nodepool-kwok-0"));
    assert_eq!(instance.python_path.as_deref(), Some("auto"));
    let credentials = instance
        .connection_credentials
        .clone()
        .expect("credentials")
        .0;
    assert_eq!(credentials["pod"], json!("pod-fedora"));
    assert_eq!(credentials["namespace"], json!(namespace));
    assert_eq!(
        Value::Object(instance.resources.clone().expect("resources").to_json()),
        json!({"cores": 1, "ephemeral-storage": 100, "instances": 1, "licenses": 1, "ram": 256})
    );
    let need = provider
        .quota_for_label(&pool, "pod-fedora")
        .await
        .expect("quota");
    assert_eq!(Some(need), instance.resources);

    let admin = admin();
    let pod = admin
        .get_in(&namespace, Kind::Pod, "pod-fedora")
        .await
        .expect("pod");
    assert_eq!(pod["status"]["phase"], "Running");
    assert_eq!(pod["spec"]["nodeName"], "nodepool-kwok-0");
    assert_eq!(pod["spec"]["nodeSelector"], json!({"type": "kwok"}));
    assert_eq!(pod["metadata"]["labels"]["team"], "ci");
    assert_eq!(
        pod["metadata"]["labels"]["nodepool_node_id"],
        json!(node_id)
    );
    assert_eq!(
        pod["metadata"]["labels"]["nodepool_node_label"],
        "pod-fedora"
    );
    assert_eq!(pod["metadata"]["annotations"]["note"], "hello");
    let container = &pod["spec"]["containers"][0];
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
    assert_eq!(pod["spec"]["volumes"][0]["emptyDir"], json!({}));

    // The pod's restricted role: Zuul may exec, not create pods.
    let role = admin
        .get_in(&namespace, Kind::Role, "zuul-restricted")
        .await
        .expect("role zuul-restricted");
    assert_eq!(role["rules"][0]["verbs"], json!(["get", "list"]));
    let zuul = testing::client_from_credentials(&credentials).expect("client");
    let pods = zuul
        .list_in(&namespace, Kind::Pod)
        .await
        .expect("list pods");
    assert_eq!(pods.len(), 1);
    let refused = zuul
        .create_in(
            &namespace,
            Kind::Pod,
            &json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "x"},
                    "spec": {"containers": [{"name": "x", "image": "x"}]}}),
        )
        .await
        .expect_err("the restricted role makes no pods");
    assert_eq!(refused.kind, ApiErrorKind::Forbidden, "{refused}");

    forget(&namespace).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_removes_the_namespace_and_a_second_delete_is_done_at_once() {
    let (provider, pool) = provider("del").await;
    let node_id = unique_node_id();
    let (instance, _, _) = create(
        &provider,
        spec(&provider, &pool, &node_id, "ns"),
        Duration::from_secs(90),
    )
    .await;
    let instance = instance.expect("create");
    let external = instance.external_id.clone().expect("external id");
    let ExternalId::Id(namespace) = &external else {
        panic!("a namespace name: {external:?}");
    };
    let began = Instant::now();
    run_delete_machine(&provider, &external, Duration::from_secs(120))
        .await
        .expect("delete");
    eprintln!(
        "namespace deleted in {:.1} s",
        began.elapsed().as_secs_f64()
    );
    let gone = admin()
        .get_namespace(namespace)
        .await
        .expect_err("the namespace is gone");
    assert_eq!(gone.kind, ApiErrorKind::NotFound, "{gone}");
    let mut again = provider.delete_machine(&external);
    assert_eq!(
        again.advance().await,
        Ok(true),
        "deleting a gone namespace is done"
    );
    assert_eq!(again.state(), "complete");
    let listed = provider.list_instances().await.expect("list");
    assert!(
        listed
            .iter()
            .all(|i| i.external_id.as_ref() != Some(&external)),
        "{listed:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leak_listing_finds_the_providers_namespaces_only() {
    let (provider, pool) = provider("leak").await;
    let admin = admin();
    let leaked_id = unique_node_id();
    let leaked = format!("{pool}-{leaked_id}");
    let labelled = |name: &str, provider_name: &str, node_id: &str| {
        json!({
            "apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": name, "labels": {
                "nodepool_node_id": node_id,
                "nodepool_provider_name": provider_name,
                "nodepool_pool_name": pool,
                "nodepool_node_label": "ns",
            }},
        })
    };
    // A node namespace whose node is gone; another provider's; one not named `<pool>-<id>`.
    let other_provider = format!("{pool}-{}", unique_node_id());
    let not_a_node = format!("{pool}-scratch");
    for body in [
        labelled(&leaked, provider.name(), &leaked_id),
        labelled(&other_provider, "someone-else", "0000000001"),
        labelled(&not_a_node, provider.name(), "0000000002"),
    ] {
        admin.create_namespace(&body).await.expect("namespace");
    }

    let resources = provider.list_resources().await.expect("list resources");
    assert_eq!(resources.len(), 1, "{resources:?}");
    let resource = &resources[0];
    assert_eq!(resource.kind, LEAK_KIND);
    assert_eq!(resource.kind, "node", "Nodepool counts leaked.nodes");
    assert_eq!(resource.id, leaked);
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
        Some(ExternalId::Id(leaked.clone()))
    );
    assert_eq!(
        instances[0].resources, None,
        "no unmanaged quota, as Nodepool"
    );

    provider.delete_resource(resource).await.expect("delete");
    // Deleting goes on in the background: the namespace is terminating or gone.
    let state = eventually(
        "the leaked namespace is being deleted",
        Duration::from_secs(30),
        || {
            let admin = &admin;
            let leaked = &leaked;
            async move {
                match admin.get_namespace(leaked).await {
                    Err(e) if e.kind == ApiErrorKind::NotFound => Some("gone".to_string()),
                    Ok(ns) if ns["status"]["phase"] == "Terminating" => Some("terminating".into()),
                    _ => None,
                }
            }
        },
    )
    .await;
    eprintln!("leaked namespace {state}");
    provider
        .delete_resource(resource)
        .await
        .expect("deleting it again is fine");
    forget(&other_provider).await;
    forget(&not_a_node).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_label_value_fails_with_the_api_servers_message() {
    let (provider, pool) = provider("bad").await;
    let node_id = unique_node_id();
    let (result, external, _) = create(
        &provider,
        spec(&provider, &pool, &node_id, "bad-label-value"),
        Duration::from_secs(30),
    )
    .await;
    let error = result.expect_err("the API server refuses the namespace");
    let DriverError::Fatal(message) = &error else {
        panic!("a fatal error: {error:?}");
    };
    assert!(
        message.contains("metadata.labels") && message.contains("not a valid value!"),
        "the server's message is in the error: {message}"
    );
    assert!(message.contains("HTTP 422"), "{message}");
    assert_eq!(external, None, "no namespace was made");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_kubeconfig_or_unknown_context_is_a_clear_error() {
    let source = cluster().await;
    let config = provider_config("k8s-ctx", "main", "no-such-context");
    let error = KubernetesDriver::with_kubeconfig(source)
        .build_kubernetes(&config)
        .expect_err("unknown context");
    let text = error.to_string();
    assert!(
        text.contains("provider k8s-ctx")
            && text.contains("no context named no-such-context")
            && text.contains("nodepool-test")
            && text.contains("kubeconfig"),
        "{text}"
    );

    let dir = tempfile::tempdir().expect("tempdir");
    let broken = dir.path().join("kubeconfig");
    std::fs::write(
        &broken,
        "clusters: [{name: c, cluster: {server: https://127.0.0.1:1}}\n",
    )
    .expect("write");
    let error = KubernetesDriver::with_kubeconfig(KubeconfigSource::Files(vec![broken.clone()]))
        .build_kubernetes(&provider_config("k8s-broken", "main", "c"))
        .expect_err("broken YAML");
    let text = error.to_string();
    assert!(
        text.contains(&broken.display().to_string()) && text.contains("YAML"),
        "{text}"
    );

    // A server nobody listens on: calls fail as transient errors naming the server.
    std::fs::write(
        &broken,
        "clusters: [{name: c, cluster: {server: 'https://127.0.0.1:1', insecure-skip-tls-verify: true}}]\ncontexts: [{name: c, context: {cluster: c}}]\n",
    )
    .expect("write");
    let provider = KubernetesDriver::with_kubeconfig(KubeconfigSource::Files(vec![broken]))
        .build_kubernetes(&provider_config("k8s-down", "main", "c"))
        .expect("builds without a call");
    let error = provider.list_resources().await.expect_err("nobody listens");
    assert!(
        matches!(&error, DriverError::Transient(m) if m.contains("https://127.0.0.1:1")),
        "{error:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_after_a_partial_attempt_uses_the_left_namespace() {
    let (provider, pool) = provider("again").await;
    let node_id = unique_node_id();
    let namespace = format!("{pool}-{node_id}");
    // An earlier attempt that got as far as the service account, then lost its launcher.
    let mut first = provider.create_machine(spec(&provider, &pool, &node_id, "ns"));
    while first.state() != "creating token secret" {
        assert_eq!(first.advance().await, Ok(None));
    }
    drop(first);
    let (instance, external, states) = create(
        &provider,
        spec(&provider, &pool, &node_id, "ns"),
        Duration::from_secs(90),
    )
    .await;
    let instance = instance.unwrap_or_else(|e| panic!("second attempt: {e} ({states:?})"));
    assert_eq!(external, Some(ExternalId::Id(namespace.clone())));
    assert!(instance.connection_credentials.is_some());

    // Another provider's namespace of the same name (same pool name) is not taken over.
    let other_config = provider_config(&unique_name("again-o"), &pool, testing::CONTEXT);
    let other = KubernetesDriver::with_kubeconfig(cluster().await)
        .build_kubernetes(&other_config)
        .expect("provider");
    let foreign = spec(&other, &pool, &node_id, "ns");
    let (result, external, _) = create(&other, foreign, Duration::from_secs(30)).await;
    let error = result.expect_err("not this provider's namespace");
    assert!(
        error.to_string().contains("already exists")
            && error
                .to_string()
                .contains("not labelled as this node's namespace"),
        "{error}"
    );
    assert_eq!(
        external, None,
        "the launcher must not delete someone else's namespace"
    );
    forget(&namespace).await;
}
