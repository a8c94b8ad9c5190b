//! `image-pause`, `image-unpause` and `image-build` against the embedded store, run as an
//! operator would run them, checked in the store afterwards.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use nodepool_store::{SqliteBackend, SqliteOptions, Store};

fn config(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("nodepool.yaml");
    let text = format!(
        "database: {}/np.db\nlabels: []\ndiskimages:\n  - name: debian\n  - name: frozen\n    pause: true\n",
        dir.display()
    );
    std::fs::write(&path, text).expect("write config");
    path
}

fn nodepool(config: &Path, args: &[&str]) -> (i32, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_nodepool"))
        .arg("-c")
        .arg(config)
        .args(args)
        .output()
        .expect("nodepool runs");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn store_flags(dir: &Path, image: &str) -> (bool, bool) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let backend = SqliteBackend::open(SqliteOptions::new(dir.join("np.db")))
            .await
            .expect("open");
        let store = Store::new(Arc::new(backend));
        let paused = store.images().is_paused(image).await.expect("paused");
        let requested = store
            .images()
            .build_request(image)
            .await
            .expect("request")
            .is_some();
        (paused, requested)
    })
}

#[test]
fn pause_unpause_and_build_requests_reach_the_store() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = config(dir.path());
    assert_eq!(nodepool(&config, &["image-pause", "debian"]).0, 0);
    assert_eq!(store_flags(dir.path(), "debian"), (true, false));
    assert_eq!(
        nodepool(&config, &["image-pause", "debian"]).0,
        0,
        "pausing twice is fine"
    );
    assert_eq!(nodepool(&config, &["image-unpause", "debian"]).0, 0);
    assert_eq!(
        nodepool(&config, &["image-unpause", "debian"]).0,
        0,
        "unpausing twice is fine"
    );
    assert_eq!(store_flags(dir.path(), "debian"), (false, false));
    // As in Nodepool, the ZooKeeper pause flag does not stop a manual request.
    assert_eq!(nodepool(&config, &["image-pause", "debian"]).0, 0);
    assert_eq!(nodepool(&config, &["image-build", "debian"]).0, 0);
    assert_eq!(store_flags(dir.path(), "debian"), (true, true));
}

#[test]
fn image_build_refuses_unknown_and_config_paused_images() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = config(dir.path());
    let (code, stderr) = nodepool(&config, &["image-build", "nope"]);
    assert_eq!(code, 1);
    assert!(
        stderr.contains("Trying to build a non disk-image-builder image: nope"),
        "{stderr}"
    );
    let (code, stderr) = nodepool(&config, &["image-build", "frozen"]);
    assert_eq!(code, 1);
    assert!(
        stderr.contains("Skipping build request for image frozen; paused"),
        "{stderr}"
    );
    assert_eq!(store_flags(dir.path(), "frozen"), (false, false));
}
