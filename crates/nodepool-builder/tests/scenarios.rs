//! Builder scenarios on the SQLite store with the fake driver and a fake `disk-image-create`
//! (a shell script that writes the image files and exits, like Nodepool's own
//! `fake-image-create`).

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use nodepool_builder::decide::{self, Builds, Uploads};
use nodepool_builder::{Builder, BuilderOptions, Timing};
use nodepool_driver::DriverRegistry;
use nodepool_driver_fake::{FakeCloud, FakeDriver};
use nodepool_model::{BuildId, BuildState, UploadState};
use nodepool_store::{SqliteBackend, SqliteOptions, Store, paths};
use nodepool_testkit::wait::{wait_for, wait_for_store_change};

const WAIT: Duration = Duration::from_secs(30);
const IMAGE: &str = "fake-image";
const PROVIDER: &str = "fake-provider";

const FAKE_DIB: &str = r#"#!/bin/sh
out=""
formats=""
while [ $# -gt 0 ]; do
  case "$1" in
    -o) out="$2"; shift 2 ;;
    -t) formats="$2"; shift 2 ;;
    --qemu-img-options) shift 2 ;;
    *) shift ;;
  esac
done
echo "fake-image-create: image $DIB_IMAGE_NAME release $DIB_RELEASE into $out"
if [ -f "$(dirname "$0")/fail" ]; then
  echo "failing as asked"
  exit 1
fi
for f in $(echo "$formats" | tr , ' '); do
  echo "fake $DIB_IMAGE_NAME" > "$out.$f"
  md5sum "$out.$f" | cut -c1-32 > "$out.$f.md5"
done
mkdir -p "$out.d"
"#;

fn config(dir: &std::path::Path, pause: bool) -> String {
    format!(
        r#"
images-dir: {dir}/images
build-log-dir: {dir}/logs
build-log-retention: 2

labels:
  - name: fake-label

providers:
  - name: {PROVIDER}
    cloud: fake
    driver: fake
    diskimages:
      - name: {IMAGE}
        meta:
          key: value
    pools:
      - name: main
        max-servers: 1
        labels:
          - name: fake-label
            diskimage: {IMAGE}
            min-ram: 8192
            flavor-name: Fake

diskimages:
  - name: {IMAGE}
    elements: [fedora, vm]
    release: 21
    dib-cmd: {dir}/fake-image-create
    rebuild-age: 3600
    pause: {pause}
    metadata:
      os: linux
"#,
        dir = dir.display()
    )
}

struct Harness {
    dir: tempfile::TempDir,
    config_path: PathBuf,
    store: Store,
    fake: Arc<FakeDriver>,
}

impl Harness {
    async fn new(pause: bool) -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("fake-image-create");
        std::fs::write(&script, FAKE_DIB).unwrap();
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        let config_path = dir.path().join("nodepool.yaml");
        std::fs::write(&config_path, config(dir.path(), pause)).unwrap();
        let backend = SqliteBackend::open(SqliteOptions::new(dir.path().join("nodepool.db")))
            .await
            .unwrap();
        let store = Store::new(Arc::new(backend));
        store.ensure_path(paths::IMAGES).await.unwrap();
        Harness {
            dir,
            config_path,
            store,
            fake: Arc::new(FakeDriver::new()),
        }
    }

    fn images_dir(&self) -> PathBuf {
        self.dir.path().join("images")
    }

    fn log_dir(&self) -> PathBuf {
        self.dir.path().join("logs")
    }

    async fn start(&self, cleanup_interval: Duration) -> Builder {
        let mut registry = DriverRegistry::new();
        registry.register(self.fake.clone());
        let mut options = BuilderOptions::new(self.config_path.clone(), None);
        options.hostname = "builder.example.org".into();
        options.timing = Timing {
            build_interval: Duration::from_millis(100),
            upload_interval: Duration::from_millis(100),
            cleanup_interval,
        };
        options.upload_workers = 2;
        Builder::start(self.store.clone(), registry, options)
            .await
            .unwrap()
    }

    fn cloud(&self) -> Arc<FakeCloud> {
        self.fake.cloud(PROVIDER).expect("fake cloud exists")
    }

    /// The images the builder uploaded (the fake cloud starts with one of its own).
    fn uploaded_images(&self) -> Vec<nodepool_driver_fake::FakeImage> {
        let Some(cloud) = self.fake.cloud(PROVIDER) else {
            return Vec::new();
        };
        cloud
            .images()
            .into_iter()
            .filter(|i| i.metadata.contains_key("nodepool_build_id"))
            .collect()
    }

    async fn snapshot(&self) -> (Builds, Uploads) {
        snapshot(&self.store).await
    }

    /// Waits until `condition` holds for the image's records, re-checking on every change.
    async fn wait<T>(&self, what: &str, condition: impl Fn(&Builds, &Uploads) -> Option<T>) -> T {
        let store = self.store.clone();
        let condition = &condition;
        wait_for_store_change(self.store.backend().as_ref(), paths::IMAGES, WAIT, || {
            let store = store.clone();
            async move {
                let (builds, uploads) = snapshot(&store).await;
                condition(&builds, &uploads)
            }
        })
        .await
        .unwrap_or_else(|e| panic!("timed out waiting for {what}: {e}"))
    }

    /// Waits for a READY build other than `known` with a READY upload to the provider.
    async fn wait_uploaded_build(&self, known: &[BuildId]) -> BuildId {
        self.wait("a new uploaded build", |builds, uploads| {
            builds
                .iter()
                .filter(|(id, b)| b.state == BuildState::Ready && !known.contains(id))
                .map(|(id, _)| id)
                .find(|id| ready_upload(uploads, id).is_some())
                .cloned()
        })
        .await
    }

    /// Waits until the build worker has made `passes` more passes.
    async fn wait_build_passes(&self, builder: &Builder, passes: u64) {
        let start = build_passes(builder);
        wait_for(WAIT, Duration::from_millis(20), || async {
            (build_passes(builder) >= start + passes).then_some(())
        })
        .await
        .unwrap();
    }
}

fn build_passes(builder: &Builder) -> u64 {
    builder
        .workers()
        .iter()
        .find(|w| w.name == "build-worker-0")
        .map(|w| w.passes)
        .unwrap_or(0)
}

async fn snapshot(store: &Store) -> (Builds, Uploads) {
    let images = store.images();
    let mut builds = Builds::new();
    let mut uploads = Uploads::new();
    for id in images.build_ids(IMAGE).await.unwrap_or_default() {
        let Ok(Some(build)) = images.build(IMAGE, &id).await else {
            continue;
        };
        builds.insert(id.clone(), build.value);
        for provider in images.build_providers(IMAGE, &id).await.unwrap_or_default() {
            let mut by_id = BTreeMap::new();
            for upload_id in images
                .upload_ids(IMAGE, &id, &provider)
                .await
                .unwrap_or_default()
            {
                if let Ok(Some(u)) = images.upload(IMAGE, &id, &provider, upload_id).await {
                    by_id.insert(upload_id, u.value);
                }
            }
            uploads.insert((id.clone(), provider), by_id);
        }
    }
    (builds, uploads)
}

fn ready_upload(uploads: &Uploads, build: &BuildId) -> Option<nodepool_model::ImageUpload> {
    uploads
        .get(&(build.clone(), PROVIDER.to_string()))?
        .values()
        .find(|u| u.state == UploadState::Ready)
        .cloned()
}

fn ready_builds(builds: &Builds) -> Vec<BuildId> {
    builds
        .iter()
        .filter(|(_, b)| b.state == BuildState::Ready)
        .map(|(id, _)| id.clone())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduled_build_is_uploaded_with_its_metadata() {
    let h = Harness::new(false).await;
    let builder = h.start(Duration::from_millis(200)).await;
    let build_id = h.wait_uploaded_build(&[]).await;

    let (builds, uploads) = h.snapshot().await;
    let build = &builds[&build_id];
    assert_eq!(build.builder.as_deref(), Some("builder.example.org"));
    assert_eq!(build.builder_id.as_deref(), Some(builder.builder_id()));
    assert_eq!(build.formats, vec!["qcow2".to_string()]);
    assert_eq!(build.username.as_deref(), Some("zuul"));
    let builder_id_file = std::fs::read_to_string(h.images_dir().join("builder_id.txt")).unwrap();
    assert_eq!(builder_id_file.trim(), builder.builder_id());

    let upload = ready_upload(&uploads, &build_id).unwrap();
    assert_eq!(upload.format.as_deref(), Some("qcow2"));
    let external_id = upload.external_id.clone().unwrap();
    let images = h.cloud().images();
    let image = images.iter().find(|i| i.id == external_id).unwrap();
    assert_eq!(Some(&image.name), upload.external_name.as_ref());
    assert!(image.name.starts_with("fake-image-"), "{}", image.name);
    let meta = &image.metadata;
    assert_eq!(meta["nodepool_build_id"], build_id.to_string());
    assert_eq!(meta["nodepool_provider_name"], PROVIDER);
    assert_eq!(meta["key"], "value");
    assert_eq!(meta["os"], "linux");
    assert!(meta.contains_key("nodepool_upload_id"));

    let file = h.images_dir().join(format!("{IMAGE}-{build_id}.qcow2"));
    assert!(file.exists());
    let log = std::fs::read_to_string(h.log_dir().join(format!("{IMAGE}-{build_id}.log"))).unwrap();
    assert!(log.contains("release 21"), "{log}");
    assert!(log.ends_with("Exit code: 0\n"), "{log}");
    assert_eq!(
        decide::current_upload(PROVIDER, &builds, &uploads).map(|(b, _)| b),
        Some(build_id)
    );
    builder.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manual_build_request_rebuilds_and_is_cleared() {
    let h = Harness::new(false).await;
    let builder = h.start(Duration::from_millis(200)).await;
    let first = h.wait_uploaded_build(&[]).await;
    h.store.images().request_build(IMAGE).await.unwrap();
    let second = h.wait_uploaded_build(std::slice::from_ref(&first)).await;
    assert_ne!(first, second);
    let store = h.store.clone();
    wait_for_store_change(h.store.backend().as_ref(), paths::IMAGES, WAIT, || {
        let store = store.clone();
        async move {
            let request = store.images().build_request(IMAGE).await.ok()?;
            request.is_none().then_some(())
        }
    })
    .await
    .expect("the build request is cleared");
    builder.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_in_config_stops_builds() {
    let h = Harness::new(true).await;
    let builder = h.start(Duration::from_millis(200)).await;
    h.store.images().request_build(IMAGE).await.unwrap();
    h.wait_build_passes(&builder, 3).await;
    assert!(h.snapshot().await.0.is_empty());
    // Unpausing in the configuration lets the waiting request through.
    std::fs::write(&h.config_path, config(h.dir.path(), false)).unwrap();
    h.wait_uploaded_build(&[]).await;
    builder.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_flag_in_store_stops_builds() {
    let h = Harness::new(false).await;
    h.store.images().pause(IMAGE).await.unwrap();
    let builder = h.start(Duration::from_millis(200)).await;
    h.wait_build_passes(&builder, 3).await;
    assert!(h.snapshot().await.0.is_empty());
    h.store.images().unpause(IMAGE).await.unwrap();
    h.wait_uploaded_build(&[]).await;
    builder.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_build_command_gives_a_failed_build() {
    let h = Harness::new(false).await;
    std::fs::write(h.dir.path().join("fail"), "").unwrap();
    // A long janitor period keeps the FAILED record in sight (retention removes it).
    let builder = h.start(Duration::from_secs(3600)).await;
    let failed = h
        .wait("a failed build", |builds, _| {
            builds
                .iter()
                .find(|(_, b)| b.state == BuildState::Failed)
                .map(|(id, b)| (id.clone(), b.clone()))
        })
        .await;
    assert!(failed.1.formats.is_empty());
    let log =
        std::fs::read_to_string(h.log_dir().join(format!("{IMAGE}-{}.log", failed.0))).unwrap();
    assert!(log.contains("failing as asked"), "{log}");
    assert!(log.ends_with("Exit code: 1\n"), "{log}");
    assert!(h.uploaded_images().is_empty());
    builder.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_builds_are_removed_and_retried() {
    let h = Harness::new(false).await;
    let marker = h.dir.path().join("fail");
    std::fs::write(&marker, "").unwrap();
    let builder = h.start(Duration::from_millis(200)).await;
    h.wait("a failed build", |builds, _| {
        builds
            .values()
            .any(|b| b.state == BuildState::Failed)
            .then_some(())
    })
    .await;
    std::fs::remove_file(&marker).unwrap();
    h.wait_uploaded_build(&[]).await;
    h.wait("failed builds removed", |builds, _| {
        builds
            .values()
            .all(|b| b.state != BuildState::Failed)
            .then_some(())
    })
    .await;
    builder.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_keeps_two_builds_and_deletes_the_oldest_upload() {
    let h = Harness::new(false).await;
    let builder = h.start(Duration::from_millis(200)).await;
    let mut built = vec![h.wait_uploaded_build(&[]).await];
    for _ in 0..2 {
        h.store.images().request_build(IMAGE).await.unwrap();
        built.push(h.wait_uploaded_build(&built).await);
    }
    let oldest = built[0].clone();
    let (builds, uploads) = h.snapshot().await;
    let oldest_external = ready_upload(&uploads, &oldest)
        .and_then(|u| u.external_id)
        .or_else(|| {
            // The janitor may already have marked it DELETING.
            uploads
                .get(&(oldest.clone(), PROVIDER.to_string()))
                .and_then(|u| u.values().find_map(|u| u.external_id.clone()))
        });
    drop(builds);
    h.wait("the oldest build is gone", |builds, _| {
        (!builds.contains_key(&oldest)).then_some(())
    })
    .await;
    let (builds, uploads) = h.snapshot().await;
    let mut ready = ready_builds(&builds);
    ready.sort();
    let mut expected = built[1..].to_vec();
    expected.sort();
    assert_eq!(ready, expected);
    assert_eq!(builds.len(), 2);
    let cloud_images = h.uploaded_images();
    assert_eq!(cloud_images.len(), 2, "{cloud_images:?}");
    if let Some(external) = oldest_external {
        assert!(cloud_images.iter().all(|i| i.id != external));
    }
    assert!(
        cloud_images
            .iter()
            .all(|i| i.metadata["nodepool_build_id"] != oldest.to_string())
    );
    assert_eq!(
        decide::current_upload(PROVIDER, &builds, &uploads).map(|(b, _)| b),
        Some(built[2].clone())
    );
    // The builder that made it deletes the oldest build's files once the record is gone.
    let images_dir = h.images_dir();
    let prefix = format!("{IMAGE}-{oldest}.");
    wait_for(WAIT, Duration::from_millis(20), || async {
        let left = std::fs::read_dir(&images_dir)
            .unwrap()
            .filter_map(|e| e.ok())
            .any(|e| e.file_name().to_string_lossy().starts_with(&prefix));
        (!left).then_some(())
    })
    .await
    .expect("local files of the oldest build are deleted");
    // Build logs are pruned to `build-log-retention` before each build: at most 3 remain.
    let logs = std::fs::read_dir(h.log_dir()).unwrap().count();
    assert!(logs <= 3, "{logs} logs");
    builder.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_the_newest_build_reverts_to_the_previous_upload() {
    let h = Harness::new(false).await;
    let builder = h.start(Duration::from_millis(200)).await;
    let previous = h.wait_uploaded_build(&[]).await;
    h.store.images().request_build(IMAGE).await.unwrap();
    let newest = h.wait_uploaded_build(std::slice::from_ref(&previous)).await;
    let (builds, uploads) = h.snapshot().await;
    assert_eq!(
        decide::current_upload(PROVIDER, &builds, &uploads).map(|(b, _)| b),
        Some(newest.clone())
    );

    // What `nodepool dib-image-delete` does: mark the build DELETING.
    let images = h.store.images();
    let mut record = images.build(IMAGE, &newest).await.unwrap().unwrap().value;
    assert!(decide::build_deletable_by_cli(&record));
    record.set_state(BuildState::Deleting, 0.0);
    images.store_build(IMAGE, &newest, &record).await.unwrap();
    let (builds, uploads) = h.snapshot().await;
    assert_eq!(
        decide::current_upload(PROVIDER, &builds, &uploads).map(|(b, _)| b),
        Some(previous.clone()),
        "launches fall back to the previous build at once"
    );

    h.wait("the deleted build is gone", |builds, _| {
        (!builds.contains_key(&newest)).then_some(())
    })
    .await;
    let (builds, uploads) = h.snapshot().await;
    assert_eq!(
        decide::current_upload(PROVIDER, &builds, &uploads).map(|(b, _)| b),
        Some(previous.clone())
    );
    let cloud_images = h.uploaded_images();
    assert_eq!(cloud_images.len(), 1, "{cloud_images:?}");
    assert_eq!(
        cloud_images[0].metadata["nodepool_build_id"],
        previous.to_string()
    );
    builder.stop().await;
}
