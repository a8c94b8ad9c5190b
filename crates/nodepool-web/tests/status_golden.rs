//! The status views against output of Nodepool 11's own `status.py` and `nodepoolcmd.py`
//! for the same records (see tests/golden/generate.py): every CLI table and webapp body,
//! byte for byte, for a store with nodes in every state, odd values, requests, builds and
//! uploads (`full`), and for an empty store (`empty`).

#![allow(clippy::unwrap_used)] // tests may unwrap: a panic is a test failure

use std::path::{Path, PathBuf};

use nodepool_model::wire;
use nodepool_model::{BuildId, Node, NodeId, NodeRequest, RequestId, UploadId};
use nodepool_web::status::{
    self, BuildRecord, BuildRequest, ImageStatusRecord, NODE_LIST_BRIEF_KEYS, ProviderBuild,
    UploadRecord,
};
use serde_json::Value;

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

fn golden(path: &str) -> String {
    let full = golden_dir().join(path);
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{}: {e}", full.display()))
}

fn bytes(value: &Value) -> Vec<u8> {
    serde_json::to_vec(value).unwrap()
}

/// The fixture as our records, the way the CLI gathers them from the store.
struct Store {
    now: f64,
    nodes: Vec<(NodeId, Node, bool)>,
    requests: Vec<(RequestId, NodeRequest)>,
    builds: Vec<BuildRecord>,
    uploads: Vec<UploadRecord>,
    paused: Vec<String>,
    images: Vec<ImageStatusRecord>,
    provider_builds: Vec<(String, ProviderBuild)>,
    labels: Vec<String>,
    info_providers: Vec<String>,
}

fn load(fixture: &Value) -> Store {
    let list = |key: &str| fixture[key].as_array().cloned().unwrap_or_default();
    let nodes = list("nodes")
        .iter()
        .map(|entry| {
            (
                NodeId::parse(entry["id"].as_str().unwrap()).unwrap(),
                wire::node::from_json(&bytes(&entry["data"])).unwrap(),
                entry["locked"].as_bool().unwrap(),
            )
        })
        .collect();
    let requests = list("requests")
        .iter()
        .map(|entry| {
            (
                RequestId::parse(entry["id"].as_str().unwrap()).unwrap(),
                wire::request::from_json(&bytes(&entry["data"])).unwrap(),
            )
        })
        .collect();
    let mut store = Store {
        now: fixture["now"].as_f64().unwrap(),
        nodes,
        requests,
        builds: Vec::new(),
        uploads: Vec::new(),
        paused: Vec::new(),
        images: Vec::new(),
        provider_builds: Vec::new(),
        labels: Vec::new(),
        info_providers: list("info_providers")
            .iter()
            .map(|p| p.as_str().unwrap().to_owned())
            .collect(),
    };
    for image in list("images") {
        let name = image["name"].as_str().unwrap().to_owned();
        let paused = image["paused"].as_bool().unwrap();
        if paused {
            store.paused.push(name.clone());
        }
        let build_request = image["build_request"]
            .as_object()
            .map(|request| BuildRequest {
                pending: request["pending"].as_bool().unwrap(),
                created: request["created"].as_f64().unwrap(),
            });
        store.images.push(ImageStatusRecord {
            image: name.clone(),
            paused,
            build_request,
        });
        for build in image["builds"].as_array().unwrap() {
            let build_id = BuildId::parse(build["id"].as_str().unwrap()).unwrap();
            store.builds.push(BuildRecord {
                image: name.clone(),
                id: build_id.clone(),
                build: wire::image::build_from_json(&bytes(&build["data"])).unwrap(),
            });
            // Providers in ZooKeeper order (the fixture's); the views sort them.
            for (provider, uploads) in build["providers"].as_object().unwrap() {
                let mut upload_ids = Vec::new();
                for upload in uploads.as_array().unwrap() {
                    let id = UploadId::parse(upload["id"].as_str().unwrap()).unwrap();
                    upload_ids.push(id);
                    store.uploads.push(UploadRecord {
                        image: name.clone(),
                        build_id: build_id.clone(),
                        provider: provider.clone(),
                        id,
                        upload: wire::image::upload_from_json(&bytes(&upload["data"])).unwrap(),
                    });
                }
                store.provider_builds.push((
                    provider.clone(),
                    ProviderBuild {
                        image: name.clone(),
                        build_id: build_id.clone(),
                        upload_ids,
                    },
                ));
            }
        }
    }
    for pool in list("pools") {
        for label in pool["supported_labels"].as_array().unwrap() {
            store.labels.push(label.as_str().unwrap().to_owned());
        }
    }
    store
}

fn full() -> Store {
    load(&serde_json::from_str(&golden("fixture.json")).unwrap())
}

fn empty() -> Store {
    let mut store = full();
    store.nodes.clear();
    store.requests.clear();
    store.builds.clear();
    store.uploads.clear();
    store.paused.clear();
    store.images.clear();
    store.provider_builds.clear();
    store.labels.clear();
    store.info_providers = vec!["fake-provider".to_owned()];
    store
}

/// Compares with a readable diff of the first differing line.
fn assert_same(actual: &str, golden_path: &str) {
    let expected = golden(golden_path);
    if actual != expected {
        let first = actual
            .lines()
            .zip(expected.lines())
            .position(|(a, e)| a != e)
            .unwrap_or(0);
        panic!(
            "{golden_path} differs at line {}:\n  ours:     {:?}\n  nodepool: {:?}\n--- ours:\n{actual}\n--- nodepool:\n{expected}",
            first + 1,
            actual.lines().nth(first),
            expected.lines().nth(first)
        );
    }
}

/// What the CLI prints: the table and Python's `print` newline.
fn printed(table: &status::Table) -> String {
    format!("{}\n", status::render_text(table))
}

fn check_all(name: &str, store: &Store) {
    let now = store.now;
    let nodes = status::node_list(&store.nodes, now);
    assert_same(
        &printed(&nodes.select(&NODE_LIST_BRIEF_KEYS)),
        &format!("{name}/cli/list.txt"),
    );
    assert_same(&printed(&nodes), &format!("{name}/cli/list-detail.txt"));
    for id in ["0000000002", "9999999999"] {
        let one: Vec<(NodeId, Node, bool)> = store
            .nodes
            .iter()
            .filter(|(node_id, _, _)| node_id.to_string() == id)
            .cloned()
            .collect();
        assert_same(
            &printed(&status::node_list(&one, now).select(&NODE_LIST_BRIEF_KEYS)),
            &format!("{name}/cli/list-{id}.txt"),
        );
    }
    let requests = status::request_list(&store.requests);
    let uploads = status::image_list(&store.uploads, now);
    let builds = status::dib_image_list(&store.builds, &store.paused, now);
    let images = status::image_status(&store.images, now);
    let labels = status::label_list(store.labels.iter().map(String::as_str));
    assert_same(&printed(&requests), &format!("{name}/cli/request-list.txt"));
    assert_same(&printed(&uploads), &format!("{name}/cli/image-list.txt"));
    assert_same(&printed(&builds), &format!("{name}/cli/dib-image-list.txt"));
    assert_same(&printed(&images), &format!("{name}/cli/image-status.txt"));
    for provider in &store.info_providers {
        let builds: Vec<ProviderBuild> = store
            .provider_builds
            .iter()
            .filter(|(p, _)| p == provider)
            .map(|(_, build)| build.clone())
            .collect();
        let nodes: Vec<(NodeId, Node)> = store
            .nodes
            .iter()
            .map(|(id, node, _)| (*id, node.clone()))
            .collect();
        let view = status::info(provider, &builds, &nodes);
        assert_same(
            &status::render_info(&view),
            &format!("{name}/cli/info-{provider}.txt"),
        );
    }
    for (view, table) in [
        ("node-list", &nodes),
        ("request-list", &requests),
        ("image-list", &uploads),
        ("dib-image-list", &builds),
        ("image-status", &images),
        ("label-list", &labels),
    ] {
        assert_same(
            &status::render_text(table),
            &format!("{name}/web/{view}.txt"),
        );
        assert_same(
            &status::render_json(table),
            &format!("{name}/web/{view}.json"),
        );
    }
    assert_same(
        &status::render_text(&nodes.select(&["locked", "id", "nonexistent", "connection_port"])),
        &format!("{name}/web/node-list-fields.txt"),
    );
}

#[test]
fn full_store_matches_nodepool() {
    check_all("full", &full());
}

#[test]
fn empty_store_matches_nodepool() {
    check_all("empty", &empty());
}

#[test]
fn full_records_carry_every_stored_key() {
    let store = full();
    let records = status::records::nodes(&store.nodes);
    let first = &records[0];
    let keys: Vec<&str> = first
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys.first(), Some(&"id"));
    assert_eq!(keys.last(), Some(&"locked"));
    // 37 stored keys, plus id and locked.
    assert_eq!(keys.len(), 39, "{keys:?}");
    assert_eq!(first["state_time"], store.nodes[0].1.state_time);
    let k8s = &records[1];
    assert_eq!(k8s["connection_port"]["token"], "s3cr3t");
    // Web clients never see a credentials object (docs/security.md).
    let web = status::records::nodes_for_web(&store.nodes);
    assert_eq!(web[1]["connection_port"], "redacted");
    assert_eq!(web[1]["ssh_port"], "redacted");
    assert!(!web.to_string().contains("s3cr3t"));
    assert_eq!(records[2]["locked"], true);

    let requests = status::records::requests(&store.requests);
    let ids: Vec<&str> = requests
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        [
            "100-0000000003",
            "100-0000000010",
            "200-0000000001",
            "900-0000000002"
        ]
    );
    assert_eq!(requests[2]["requestor_data"]["job_name"], "tox");

    let uploads = status::records::uploads(&store.uploads);
    assert_eq!(uploads[0]["provider"], "aws");
    assert_eq!(uploads[0]["external_name"], "débian-ünïcode");
    let builds = status::records::builds(&store.builds, &store.paused);
    assert_eq!(builds[0]["image"], "centos");
    assert_eq!(builds[0]["paused"], true);
    assert_eq!(builds[0]["formats"], "qcow2");
    let text = status::to_python_json_text(&uploads);
    assert!(text.contains("d\\u00e9bian"), "{text}");
}
