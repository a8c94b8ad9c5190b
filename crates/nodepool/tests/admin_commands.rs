//! Black-box tests of the admin commands (spec 5.2) on the embedded store: the store is
//! filled directly through `nodepool_store` with the records of nodepool-web's golden
//! fixture (times shifted to now), the binary runs as an operator runs it, and its output
//! is compared with what Nodepool 11 printed for the same records
//! (`crates/nodepool-web/tests/golden`, made by Nodepool's own code).

#![allow(clippy::unwrap_used)] // tests may unwrap: a panic is a test failure

mod common;

use std::path::PathBuf;
use std::sync::Arc;

use common::{Run, assert_output, golden, now, one_node_table};
use nodepool_model::{BuildId, BuildState, NodeId, NodeState, UploadId, UploadState};
use nodepool_store::{SqliteBackend, SqliteOptions, Store};
use nodepool_testkit::fixture;
use serde_json::Value;
use tempfile::TempDir;

/// A temporary Nodepool installation: a configuration with a fake provider and the
/// embedded store in the same directory.
struct Site {
    dir: TempDir,
    config: PathBuf,
}

impl Site {
    fn new() -> Site {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("nodepool.yaml");
        let text = format!(
            "database: {}/np.db
labels:
  - name: fake-label
providers:
  - name: fake-provider
    driver: fake
    cloud: fake
    cloud-images:
      - name: img
        image-id: fake-image-id
    pools:
      - name: main
        labels:
          - name: fake-label
            cloud-image: img
            min-ram: 8192
",
            dir.path().display()
        );
        std::fs::write(&config, text).unwrap();
        Site { dir, config }
    }

    fn store<T>(&self, work: impl AsyncFnOnce(&Store) -> T) -> T {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let backend = SqliteBackend::open(SqliteOptions::new(self.dir.path().join("np.db")))
                .await
                .unwrap();
            let store = Store::new(Arc::new(backend));
            let result = work(&store).await;
            store.backend().close().await.unwrap();
            result
        })
    }

    fn run(&self, args: &[&str]) -> Run {
        self.run_with_input(args, "")
    }

    fn run_with_input(&self, args: &[&str], input: &str) -> Run {
        common::run(&self.config, args, input)
    }

    /// Writes the golden fixture's records, their times moved so that the fixture's `now`
    /// is now.
    fn fill(&self) {
        let fixture = fixture::load();
        let shift = fixture::shift_to_now(&fixture);
        self.store(async |store| fixture::fill(store, &fixture, shift).await.unwrap());
    }

    fn node_state(&self, id: &str) -> Option<NodeState> {
        let id = NodeId::parse(id).unwrap();
        self.store(async |store| store.nodes().get(id).await.unwrap())
            .map(|node| node.value.state)
    }
}

#[test]
fn listings_match_nodepool() {
    let site = Site::new();
    site.fill();
    for &(args, golden_path, any_order) in common::FULL_LISTINGS {
        let run = site.run(args).ok();
        assert_output(&run.stdout, golden_path, any_order);
    }
}

#[test]
fn listings_of_an_empty_store_match_nodepool() {
    let site = Site::new();
    for &(args, golden_path) in common::EMPTY_LISTINGS {
        assert_eq!(site.run(args).ok().stdout, golden(golden_path), "{args:?}");
    }
    for &args in common::JSON_LISTINGS {
        assert_eq!(site.run(args).ok().stdout, "[]\n", "{args:?}");
    }
}

#[test]
fn json_prints_full_records() {
    let site = Site::new();
    site.fill();
    common::check_full_json(|args| site.run(args));
}

#[test]
fn hold_and_delete() {
    let site = Site::new();
    site.fill();
    let run = site.run(&["hold", "0000000000"]).ok();
    one_node_table(&run.stdout, "0000000000", "hold");
    assert_eq!(site.node_state("0000000000"), Some(NodeState::Hold));

    let run = site.run(&["delete", "0000000000"]).ok();
    one_node_table(&run.stdout, "0000000000", "deleting");
    assert_eq!(site.node_state("0000000000"), Some(NodeState::Deleting));

    for command in ["hold", "delete"] {
        for id in ["0000000099", "not-an-id"] {
            let run = site.run(&[command, id]).ok();
            assert_eq!(run.stdout, format!("Node id {id} not found\n"));
        }
    }

    // A provider this configuration does not define.
    let run = site.run(&["delete", "--now", "0000000004"]).ok();
    assert_eq!(
        run.stdout,
        "Provider aws for node 0000000004 not defined on this launcher\n"
    );
    assert_eq!(site.node_state("0000000004"), Some(NodeState::Used));

    // The fake provider is built into the binary: the instance and the record go now.
    let run = site.run(&["delete", "--now", "0000000006"]).ok();
    assert_eq!(
        run.stdout,
        golden("full/cli/list-9999999999.txt"),
        "{}",
        run.stderr
    );
    assert_eq!(site.node_state("0000000006"), None);
}

#[test]
fn hold_and_delete_give_up_on_a_locked_node() {
    let site = Site::new();
    site.fill();
    for command in [&["hold", "0000000001"][..], &["delete", "0000000001"]] {
        let run = site.run(command).failed();
        assert!(
            run.stderr
                .contains("Timeout trying to acquire lock /nodepool/nodes/0000000001/lock"),
            "{}",
            run.stderr
        );
        assert_eq!(run.stdout, "");
    }
    assert_eq!(site.node_state("0000000001"), Some(NodeState::InUse));
}

#[test]
fn image_delete() {
    let site = Site::new();
    site.fill();
    let upload = |build: &str, provider: &str, id: &str| {
        vec![
            "image-delete".to_owned(),
            "--provider".to_owned(),
            provider.to_owned(),
            "--image".to_owned(),
            "debian".to_owned(),
            "--build-id".to_owned(),
            build.to_owned(),
            "--upload-id".to_owned(),
            id.to_owned(),
        ]
    };
    let b1 = "6e1f0b1c7d7b4e9c8a1e2b3c4d5e6f70";
    let run_args = |args: Vec<String>| {
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        site.run(&refs).ok()
    };
    assert_eq!(
        run_args(upload(b1, "fake-provider", "0000000009")).stdout,
        "Image upload not found\n"
    );
    assert_eq!(
        run_args(upload("nope", "fake-provider", "x")).stdout,
        "Image upload not found\n"
    );
    assert_eq!(
        run_args(upload(b1, "fake-provider", "0000000002")).stdout,
        "Cannot delete because image upload in progress\n"
    );
    assert_eq!(
        run_args(upload(b1, "fake-provider", "0000000001")).stdout,
        ""
    );
    let state = site.store(async |store| {
        let build = BuildId::parse(b1).unwrap();
        store
            .images()
            .upload(
                "debian",
                &build,
                "fake-provider",
                UploadId::parse("0000000001").unwrap(),
            )
            .await
            .unwrap()
            .unwrap()
            .value
            .state
    });
    assert_eq!(state, UploadState::Deleting);
}

#[test]
fn dib_image_delete() {
    let site = Site::new();
    site.fill();
    let run = site.run(&["dib-image-delete", "debian-0000000009"]).ok();
    assert_eq!(run.stdout, "Build debian-0000000009 not found\n");
    let run = site.run(&["dib-image-delete", "debian-0000000001"]).ok();
    assert_eq!(run.stdout, "Cannot delete a build in progress\n");
    let id = "aa11bb22cc33dd44ee55ff6677889900";
    let run = site
        .run(&["dib-image-delete", &format!("centos-{id}")])
        .ok();
    assert_eq!(run.stdout, "");
    let state = site.store(async |store| {
        store
            .images()
            .build("centos", &BuildId::parse(id).unwrap())
            .await
            .unwrap()
            .unwrap()
            .value
            .state
    });
    assert_eq!(state, BuildState::Deleting);
    // Nodepool splits at the last '-' and fails when there is none.
    let run = site.run(&["dib-image-delete", "nodash"]).failed();
    assert!(
        run.stderr.contains("not enough values to unpack"),
        "{}",
        run.stderr
    );
}

#[test]
fn erase_asks_first() {
    let site = Site::new();
    site.fill();
    let prompt = "\nWARNING! This action is not reversible!\nErase ZooKeeper data for provider fake-provider? [N/y] ";
    for answer in ["\n", "n\n", "yes\n"] {
        let run = site
            .run_with_input(&["erase", "fake-provider"], answer)
            .ok();
        assert_eq!(run.stdout, format!("{prompt}Aborting. No data erased.\n"));
    }
    assert_eq!(site.node_state("0000000000"), Some(NodeState::Ready));
    // End of input is Python's EOFError.
    site.run_with_input(&["erase", "fake-provider"], "")
        .failed();

    let run = site.run_with_input(&["erase", "fake-provider"], "Y\n").ok();
    assert_eq!(
        run.stdout,
        format!(
            "{prompt}Erasing build data for fake-provider...\nErasing node data for fake-provider...\n"
        )
    );
    assert_eq!(site.node_state("0000000000"), None);
    assert_eq!(site.node_state("0000000004"), Some(NodeState::Used));
    assert_output(
        &site.run(&["info", "fake-provider"]).ok().stdout,
        "empty/cli/info-fake-provider.txt",
        false,
    );

    let run = site.run(&["erase", "aws", "--force"]).ok();
    assert_eq!(
        run.stdout,
        "Erasing build data for aws...\nErasing node data for aws...\n"
    );
    assert_eq!(site.node_state("0000000004"), None);
    // Other providers' data stays.
    assert_eq!(site.node_state("0000000005"), Some(NodeState::Ready));
}

#[test]
fn export_and_import_image_data() {
    let site = Site::new();
    site.fill();
    let export = site.dir.path().join("export.json");
    std::fs::write(&export, "x".repeat(100_000)).unwrap();
    site.run(&["export-image-data", export.to_str().unwrap()])
        .ok();
    let text = std::fs::read_to_string(&export).unwrap();
    let data: serde_json::Map<String, Value> = serde_json::from_str(&text).unwrap();
    // Pause flags, builds and uploads; no build requests and no locks.
    assert_eq!(data["/nodepool/images/centos/pause"], "");
    assert_eq!(
        data.len(),
        2 + 5 + 4,
        "{:?}",
        data.keys().collect::<Vec<_>>()
    );
    assert!(
        data.keys()
            .all(|k| !k.contains("lock") && !k.contains("request-build"))
    );

    let other = Site::new();
    other
        .run(&["import-image-data", export.to_str().unwrap()])
        .ok();
    let second = other.dir.path().join("second.json");
    other
        .run(&["export-image-data", second.to_str().unwrap()])
        .ok();
    assert_eq!(std::fs::read_to_string(&second).unwrap(), text);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&second).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    // The upload sequence is past the imported numbers: a new upload does not collide.
    let created = other.store(async |store| {
        let build = BuildId::parse("6e1f0b1c7d7b4e9c8a1e2b3c4d5e6f70").unwrap();
        let upload = nodepool_model::ImageUpload::new(UploadState::Uploading, now());
        store
            .images()
            .create_upload("debian", &build, "fake-provider", &upload)
            .await
            .unwrap()
    });
    assert!(created.sequence() > 2, "{created}");
}

#[test]
fn alien_image_list_is_empty_without_image_listing_drivers() {
    let site = Site::new();
    let run = site.run(&["alien-image-list"]).ok();
    assert_eq!(
        run.stdout,
        "+----------+------+----------+\n| Provider | Name | Image ID |\n+----------+------+----------+\n+----------+------+----------+\n"
    );
    assert!(
        run.stderr
            .contains("Exception listing alien images for fake-provider")
    );
    assert_eq!(
        site.run(&["alien-image-list", "--json"]).ok().stdout,
        "[]\n"
    );
}
