//! Bad data is skipped, never fatal (issue 16): malformed node, request, build and upload
//! records (a wrong type, truncated JSON, not an object, a record larger than any may be)
//! are left out with one WARNING naming each path, by the launcher (which goes on serving
//! requests) and by every listing of the CLI, on the embedded store and on ZooKeeper.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use common::launcher::{DaemonProcess, ZooKeeperChroot};
use common::run;
use nodepool_model::RequestState;
use nodepool_store::{CreateMode, SqliteBackend, SqliteOptions, Store};
use nodepool_testkit::{RequestOptions, ZuulClient};

const WAIT: Duration = Duration::from_secs(60);

/// What every launcher log and CLI run must warn about once per path: `(path, data)`.
fn bad_records(embedded: bool) -> Vec<(String, Vec<u8>)> {
    let mut records = vec![
        (
            "/nodepool/nodes/0000000901".to_string(),
            br#"{"state": "ready", "state_time": 1.0, "type": 5}"#.to_vec(),
        ),
        (
            "/nodepool/nodes/0000000902".to_string(),
            br#"{"state": "rea"#.to_vec(),
        ),
        (
            "/nodepool/requests/100-0000000901".to_string(),
            br#"{"state": "requested", "state_time": 1.0, "node_types": 5}"#.to_vec(),
        ),
        (
            "/nodepool/images/image/builds/0000000001".to_string(),
            b"[1, 2]".to_vec(),
        ),
        (
            "/nodepool/images/image/builds/0000000001/providers/fake-provider/images/0000000001"
                .to_string(),
            br#"{"state": 5, "state_time": 1.0}"#.to_vec(),
        ),
    ];
    if embedded {
        // ZooKeeper refuses a znode this large; the embedded store holds it.
        let labels = vec!["small"; 1_500_000].join("\", \"");
        records.push((
            "/nodepool/requests/100-0000000902".to_string(),
            format!(r#"{{"state": "requested", "state_time": 1.0, "node_types": ["{labels}"]}}"#)
                .into_bytes(),
        ));
    }
    records
}

fn write_config(dir: &Path, store_section: &str) -> PathBuf {
    let text = format!(
        "{store_section}\
         labels:\n  - name: small\n    min-ready: 0\n\
         providers:\n  - name: fake-provider\n    driver: fake\n    cloud: fake\n\
         \x20   cloud-images:\n      - name: fake-image\n        image-id: fake-image-id\n\
         \x20   pools:\n      - name: main\n        max-servers: 5\n        labels:\n\
         \x20         - name: small\n            cloud-image: fake-image\n            min-ram: 8192\n"
    );
    let path = dir.join("nodepool.yaml");
    std::fs::write(&path, text).expect("write config");
    path
}

/// The lines of `log` that warn about skipping the record at `path`.
fn warnings_about(log: &str, path: &str) -> usize {
    log.lines()
        .filter(|line| line.contains(" WARNING ") && line.contains("unreadable"))
        .filter(|line| line.contains(&format!("znode=\"{path}\"")))
        .count()
}

async fn bad_data_is_skipped(store: Store, config: &Path, dir: &Path, embedded: bool) {
    let records = bad_records(embedded);
    for (path, data) in &records {
        store
            .backend()
            .create(path, data, CreateMode::Persistent, true)
            .await
            .unwrap_or_else(|e| panic!("write the bad record {path}: {e}"));
    }
    let mut launcher = DaemonProcess::start(config, dir.join("launcher.log"), &[]);
    let zuul = ZuulClient::new(store.clone(), "zuul");
    let id = zuul
        .submit(&["small"], RequestOptions::default())
        .await
        .expect("submit");
    let request = zuul.wait(&id, WAIT).await.unwrap_or_else(|e| {
        panic!(
            "the launcher serves a good request beside bad records: {e}\n{}",
            launcher.log()
        )
    });
    assert_eq!(request.state, RequestState::Fulfilled, "{}", launcher.log());
    let node = request.nodes[0];

    let config = config.to_path_buf();
    let runs = tokio::task::spawn_blocking(move || {
        ["list", "request-list", "dib-image-list", "image-list"]
            .map(|command| (command, run(&config, &[command], "").ok()))
    })
    .await
    .expect("run the CLI");
    for (command, output) in &runs {
        for (path, _) in &records {
            let listed = match *command {
                "list" => path.starts_with("/nodepool/nodes/"),
                "request-list" => path.starts_with("/nodepool/requests/"),
                "dib-image-list" => path.ends_with("/builds/0000000001"),
                _ => path.contains("/providers/"),
            };
            if listed {
                assert_eq!(
                    warnings_about(&output.stderr, path),
                    1,
                    "`nodepool {command}` warns once about {path}:\n{}",
                    output.stderr
                );
            }
        }
    }
    let (_, list) = &runs[0];
    assert!(
        list.stdout.contains(&node.to_string()),
        "`nodepool list` shows the good node {node} beside the bad ones:\n{}",
        list.stdout
    );

    // The launcher said it once per bad node and request, however many passes it made.
    launcher.interrupt();
    launcher.wait_exit(WAIT).await;
    let log = launcher.log();
    for (path, _) in &records {
        if path.starts_with("/nodepool/nodes/") || path.starts_with("/nodepool/requests/") {
            assert_eq!(
                warnings_about(&log, path),
                1,
                "the launcher warns once about {path}:\n{log}"
            );
        }
    }
    assert!(
        launcher.error_lines().is_empty(),
        "no ERROR in the launcher's log:\n{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_records_are_skipped_on_the_embedded_store() {
    let dir = tempfile::tempdir().expect("tempdir");
    let database = dir.path().join("np.db");
    let config = write_config(dir.path(), &format!("database: {}\n", database.display()));
    let backend = SqliteBackend::open(SqliteOptions::new(&database))
        .await
        .expect("open the embedded store");
    let store = Store::new(Arc::new(backend));
    bad_data_is_skipped(store, &config, dir.path(), true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_records_are_skipped_on_zookeeper() {
    let dir = tempfile::tempdir().expect("tempdir");
    let chroot = tokio::task::block_in_place(|| ZooKeeperChroot::new("malformed"));
    let config = write_config(dir.path(), &chroot.config_section());
    bad_data_is_skipped(chroot.connect().await, &config, dir.path(), false).await;
}
