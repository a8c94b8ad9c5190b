//! Builder scenarios with the fake driver and a fake `disk-image-create` (a shell script that
//! writes the image files and exits, like Nodepool's own `fake-image-create`).
//!
//! Every scenario runs twice, on the SQLite store and on a real ZooKeeper (one server per
//! test binary, one chroot per test): the [`scenarios!`] macro at the end makes a
//! `sqlite::<name>` and a `zookeeper::<name>` test of each scenario function. Each builder
//! gets a store session of its own, as a separate process would, so locks and ephemerals
//! behave as between real builders.

#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use nodepool_builder::decide::{self, Builds, Uploads};
use nodepool_builder::{Builder, BuilderOptions, Timing};
use nodepool_driver::DriverRegistry;
use nodepool_driver_fake::{FakeCloud, FakeDriver};
use nodepool_model::{
    BuildId, BuildState, ComponentKind, ComponentState, ImageBuild, ImageUpload, UploadState,
};
use nodepool_store::{Backend, SqliteBackend, SqliteOptions, Store, paths};
use nodepool_store_zk::{ZooKeeperBackend, ZooKeeperOptions};
use nodepool_testkit::wait::{wait_for, wait_for_store_change};
use nodepool_testkit::{ServerOptions, ZooKeeperServer, fake_dib, log_errors};

const WAIT: Duration = Duration::from_secs(30);
const IMAGE: &str = "fake-image";
const PROVIDER: &str = "fake-provider";
/// The janitor period of scenarios that watch retention at work.
const FAST_CLEANUP: Duration = Duration::from_millis(200);
/// The janitor period of scenarios that must see records retention would remove.
const NO_CLEANUP: Duration = Duration::from_secs(3600);

/// Appends its arguments to `hook-calls` next to it, waits while `hook-hold` exists and
/// fails while `hook-fail` exists.
const POST_UPLOAD_HOOK: &str = r#"#!/bin/sh
here="$(dirname "$0")"
echo "$@" >> "$here/hook-calls"
while [ -f "$here/hook-hold" ]; do sleep 0.05; done
if [ -f "$here/hook-fail" ]; then
  echo "rejecting $2" >&2
  exit 3
fi
"#;

/// What varies between the scenarios' configurations.
#[derive(Debug, Clone)]
struct Setup {
    pause: bool,
    /// `fake-faults.upload-failures` of the provider.
    upload_failures: u64,
    /// `build-log-retention`; negative keeps every log.
    build_log_retention: i64,
    /// Gives the provider the `post-upload-hook` script [`POST_UPLOAD_HOOK`].
    post_upload_hook: bool,
    /// The diskimage's `delete-after-upload`.
    delete_after_upload: bool,
}

impl Default for Setup {
    fn default() -> Setup {
        Setup {
            pause: false,
            upload_failures: 0,
            build_log_retention: 2,
            post_upload_hook: false,
            delete_after_upload: false,
        }
    }
}

fn config(dir: &Path, setup: &Setup) -> String {
    format!(
        r#"
images-dir: {dir}/images
build-log-dir: {dir}/logs
build-log-retention: {retention}

labels:
  - name: fake-label

providers:
  - name: {PROVIDER}
    cloud: fake
    driver: fake
    fake-faults:
      upload-failures: {upload_failures}
{hook}    diskimages:
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
    delete-after-upload: {delete_after_upload}
    metadata:
      os: linux
"#,
        dir = dir.display(),
        retention = setup.build_log_retention,
        upload_failures = setup.upload_failures,
        pause = setup.pause,
        delete_after_upload = setup.delete_after_upload,
        hook = if setup.post_upload_hook {
            format!("    post-upload-hook: {}/post-upload-hook\n", dir.display())
        } else {
            String::new()
        },
    )
}

/// The configuration after the provider stopped taking the image (`keep_diskimage`), or
/// after the image left the configuration altogether. The pool launches from a cloud image
/// instead.
fn config_without_uploads(dir: &Path, keep_diskimage: bool) -> String {
    let diskimages = if keep_diskimage {
        format!(
            "diskimages:\n  - name: {IMAGE}\n    dib-cmd: {}/fake-image-create\n    rebuild-age: 3600\n",
            dir.display()
        )
    } else {
        String::new()
    };
    format!(
        r#"
images-dir: {dir}/images
build-log-dir: {dir}/logs

labels:
  - name: fake-label

providers:
  - name: {PROVIDER}
    cloud: fake
    driver: fake
    cloud-images:
      - name: base
    pools:
      - name: main
        max-servers: 1
        labels:
          - name: fake-label
            cloud-image: base
            min-ram: 8192
            flavor-name: Fake

{diskimages}"#,
        dir = dir.display(),
    )
}

/// Which store the scenario runs on.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Sqlite,
    ZooKeeper,
}

/// Where the store lives; every [`open`] is a new session on it.
enum Backing {
    Sqlite(PathBuf),
    ZooKeeper(Arc<ZooKeeperServer>, String),
}

/// One ZooKeeper for the whole binary; the testkit's wrapper process kills it when the
/// binary exits.
fn zookeeper_server() -> Arc<ZooKeeperServer> {
    static SERVER: OnceLock<Arc<ZooKeeperServer>> = OnceLock::new();
    SERVER
        .get_or_init(|| {
            Arc::new(
                ZooKeeperServer::start(ServerOptions::default())
                    .unwrap_or_else(|e| panic!("a ZooKeeper server starts: {e}")),
            )
        })
        .clone()
}

async fn open(backing: &Backing) -> Store {
    match backing {
        Backing::Sqlite(path) => {
            let backend = SqliteBackend::open(SqliteOptions::new(path)).await.unwrap();
            Store::new(Arc::new(backend))
        }
        Backing::ZooKeeper(server, chroot) => {
            let mut options = ZooKeeperOptions::new([server.plain_address()]);
            options.chroot = Some(chroot.clone());
            let backend = ZooKeeperBackend::connect(options).await.unwrap();
            Store::new(Arc::new(backend) as Arc<dyn Backend>)
        }
    }
}

struct Harness {
    dir: tempfile::TempDir,
    config_path: PathBuf,
    backing: Backing,
    /// The test's own session (what the CLI would use).
    store: Store,
    /// Shared by every builder of the test, so they upload to one fake cloud.
    fake: Arc<FakeDriver>,
}

/// A started builder with its own store session.
struct Running {
    builder: Builder,
    store: Store,
    images_dir: PathBuf,
}

impl Running {
    /// Stops the builder, ends its session (its locks go, as when the process exits) and
    /// checks that nothing logged an ERROR meanwhile.
    async fn stop(self) {
        self.builder.stop().await;
        self.store.backend().close().await.unwrap();
        log_errors::assert_none();
    }

    fn builder_id(&self) -> &str {
        self.builder.builder_id()
    }

    /// Passes the named worker has completed.
    fn passes(&self, worker: &str) -> u64 {
        self.builder
            .workers()
            .iter()
            .find(|w| w.name == worker)
            .map(|w| w.passes)
            .unwrap_or(0)
    }

    /// Waits until the named worker has made `passes` more passes.
    async fn wait_passes(&self, worker: &str, passes: u64) {
        let start = self.passes(worker);
        wait_for(WAIT, Duration::from_millis(20), || async {
            (self.passes(worker) >= start + passes).then_some(())
        })
        .await
        .unwrap_or_else(|e| panic!("{worker} made no {passes} passes: {e}"));
    }

    /// The builds whose files are in this builder's images directory.
    fn local_builds(&self) -> BTreeSet<String> {
        local_build_ids(&self.images_dir)
    }
}

impl Harness {
    async fn new(kind: Kind, setup: Setup) -> Harness {
        log_errors::install();
        let dir = tempfile::tempdir().unwrap();
        fake_dib::install(dir.path()).unwrap();
        fake_dib::write_executable(&dir.path().join("post-upload-hook"), POST_UPLOAD_HOOK).unwrap();
        let config_path = dir.path().join("nodepool.yaml");
        std::fs::write(&config_path, config(dir.path(), &setup)).unwrap();
        let backing = match kind {
            Kind::Sqlite => Backing::Sqlite(dir.path().join("nodepool.db")),
            Kind::ZooKeeper => {
                // Starting the JVM blocks; keep it off the runtime's workers.
                let server = tokio::task::spawn_blocking(zookeeper_server).await.unwrap();
                let chroot = format!("/builder-{}", nodepool_model::ids::random_uuid_hex());
                Backing::ZooKeeper(server, chroot)
            }
        };
        let store = open(&backing).await;
        store.ensure_path(paths::IMAGES).await.unwrap();
        Harness {
            dir,
            config_path,
            backing,
            store,
            fake: Arc::new(FakeDriver::new()),
        }
    }

    fn marker(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Makes the fake `disk-image-create` fail (or succeed again).
    fn set_failing(&self, failing: bool) {
        set_marker(&self.marker("fail"), failing);
    }

    /// Makes the fake `disk-image-create` wait (or go on).
    fn set_holding(&self, holding: bool) {
        set_marker(&self.marker("hold"), holding);
    }

    /// Replaces the configuration file at once, as an editor's rename would: a builder
    /// reading a half-written file would rightly log an error.
    fn rewrite_config(&self, setup: &Setup) {
        self.replace_config(&config(self.dir.path(), setup));
    }

    fn replace_config(&self, text: &str) {
        let next = self.config_path.with_extension("yaml.new");
        std::fs::write(&next, text).unwrap();
        std::fs::rename(&next, &self.config_path).unwrap();
    }

    /// The images directory of the configuration (the first builder's).
    fn images_dir(&self) -> PathBuf {
        self.dir.path().join("images")
    }

    fn log_dir(&self) -> PathBuf {
        self.dir.path().join("logs")
    }

    /// Starts a builder on the configuration's images directory.
    async fn start(&self, cleanup_interval: Duration) -> Running {
        self.start_builder(self.images_dir(), "builder.example.org", cleanup_interval)
            .await
    }

    /// Starts a builder with its own images directory and store session.
    async fn start_builder(
        &self,
        images_dir: PathBuf,
        hostname: &str,
        cleanup_interval: Duration,
    ) -> Running {
        let mut registry = DriverRegistry::new();
        registry.register(self.fake.clone());
        let mut options = BuilderOptions::new(self.config_path.clone(), None);
        options.hostname = hostname.into();
        options.images_dir = Some(images_dir.clone());
        options.timing = Timing {
            build_interval: Duration::from_millis(100),
            upload_interval: Duration::from_millis(100),
            cleanup_interval,
        };
        options.upload_workers = 2;
        let store = open(&self.backing).await;
        let builder = Builder::start(store.clone(), registry, options)
            .await
            .unwrap();
        Running {
            builder,
            store,
            images_dir,
        }
    }

    fn cloud(&self) -> Arc<FakeCloud> {
        self.fake.cloud(PROVIDER).expect("fake cloud exists")
    }

    /// The images the builders uploaded (the fake cloud starts with one of its own).
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

    /// Waits until the image has no build request (a READY requested build clears it).
    async fn wait_request_cleared(&self) {
        let store = self.store.clone();
        wait_for_store_change(self.store.backend().as_ref(), paths::IMAGES, WAIT, || {
            let store = store.clone();
            async move {
                let request = store.images().build_request(IMAGE).await.ok()?;
                request.is_none().then_some(())
            }
        })
        .await
        .expect("the build request is cleared");
    }

    /// Rewrites a build record as `change` says (what the CLI or another process would do).
    async fn edit_build(&self, build_id: &BuildId, change: impl FnOnce(&mut ImageBuild)) {
        let images = self.store.images();
        let mut record = images.build(IMAGE, build_id).await.unwrap().unwrap().value;
        change(&mut record);
        images.store_build(IMAGE, build_id, &record).await.unwrap();
    }
}

fn set_marker(path: &Path, present: bool) {
    if present {
        std::fs::write(path, "").unwrap();
    } else {
        match std::fs::remove_file(path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => panic!("removing {}: {e}", path.display()),
        }
    }
}

/// The build ids with an image file in `images_dir`.
fn local_build_ids(images_dir: &Path) -> BTreeSet<String> {
    let prefix = format!("{IMAGE}-");
    std::fs::read_dir(images_dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .filter_map(|e| e.file_name().into_string().ok())
                .filter_map(|name| {
                    let id = name.strip_prefix(&prefix)?.strip_suffix(".qcow2")?;
                    Some(id.to_string())
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Whether any file or directory of the build is left in `images_dir`.
fn has_local_files(images_dir: &Path, build_id: &BuildId) -> bool {
    let prefix = format!("{IMAGE}-{build_id}.");
    std::fs::read_dir(images_dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .any(|e| e.file_name().to_string_lossy().starts_with(&prefix))
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

fn ready_upload(uploads: &Uploads, build: &BuildId) -> Option<ImageUpload> {
    uploads_of(uploads, build)
        .into_iter()
        .find(|u| u.state == UploadState::Ready)
}

fn uploads_of(uploads: &Uploads, build: &BuildId) -> Vec<ImageUpload> {
    uploads
        .get(&(build.clone(), PROVIDER.to_string()))
        .map(|by_id| by_id.values().cloned().collect())
        .unwrap_or_default()
}

fn ready_builds(builds: &Builds) -> Vec<BuildId> {
    builds
        .iter()
        .filter(|(_, b)| b.state == BuildState::Ready)
        .map(|(id, _)| id.clone())
        .collect()
}

fn failed_builds(builds: &Builds) -> BTreeSet<BuildId> {
    builds
        .iter()
        .filter(|(_, b)| b.state == BuildState::Failed)
        .map(|(id, _)| id.clone())
        .collect()
}

fn current_build(builds: &Builds, uploads: &Uploads) -> Option<BuildId> {
    decide::current_upload(PROVIDER, builds, uploads).map(|(b, _)| b)
}

// ---------------------------------------------------------------------------------------
// Scenarios
// ---------------------------------------------------------------------------------------

async fn scheduled_build_is_uploaded_with_its_metadata(kind: Kind) {
    let h = Harness::new(kind, Setup::default()).await;
    let builder = h.start(FAST_CLEANUP).await;
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
    assert_eq!(current_build(&builds, &uploads), Some(build_id));

    // Registered as a `builder` component that stays `stopped` (spec 1.9).
    let components = h.store.components();
    let registered = components.list(ComponentKind::Builder).await.unwrap();
    assert_eq!(registered.len(), 1, "{registered:?}");
    let component = &registered[0].component.value;
    assert_eq!(component.hostname, "builder.example.org");
    assert_eq!(component.state, ComponentState::Stopped);
    builder.builder.stop().await;
    let registered = components.list(ComponentKind::Builder).await.unwrap();
    assert!(registered.is_empty(), "{registered:?}");
    builder.store.backend().close().await.unwrap();
    log_errors::assert_none();
}

/// A READY build younger than `rebuild-age` is left alone however many passes run; once it
/// is older (its `state_time` moved back past the age), the next pass rebuilds without any
/// request, and the new build then counts as fresh.
async fn build_older_than_rebuild_age_is_rebuilt(kind: Kind) {
    let h = Harness::new(kind, Setup::default()).await;
    let builder = h.start(NO_CLEANUP).await;
    let first = h.wait_uploaded_build(&[]).await;
    builder.wait_passes("build-worker-0", 5).await;
    assert_eq!(
        h.snapshot().await.0.len(),
        1,
        "a fresh build is not rebuilt"
    );

    // `rebuild-age` is 3600 s; a build that ended 3601 s ago is due.
    let aged = h.snapshot().await.0[&first].state_time - 3601.0;
    h.edit_build(&first, |b| b.state_time = aged).await;
    let second = h.wait_uploaded_build(std::slice::from_ref(&first)).await;
    let (builds, uploads) = h.snapshot().await;
    assert!(builds[&second].state_time > aged + 3600.0);
    assert_eq!(current_build(&builds, &uploads), Some(second.clone()));

    builder.wait_passes("build-worker-0", 5).await;
    let (builds, _) = h.snapshot().await;
    assert_eq!(
        builds.keys().cloned().collect::<BTreeSet<_>>(),
        BTreeSet::from([first, second]),
        "the new build is fresh: no third build"
    );
    builder.stop().await;
}

async fn manual_build_request_rebuilds_and_is_cleared(kind: Kind) {
    let h = Harness::new(kind, Setup::default()).await;
    let builder = h.start(FAST_CLEANUP).await;
    let first = h.wait_uploaded_build(&[]).await;
    h.store.images().request_build(IMAGE).await.unwrap();
    let second = h.wait_uploaded_build(std::slice::from_ref(&first)).await;
    assert_ne!(first, second);
    h.wait_request_cleared().await;
    // One request, one build.
    builder.wait_passes("build-worker-0", 5).await;
    assert_eq!(ready_builds(&h.snapshot().await.0).len(), 2);
    builder.stop().await;
}

/// A manual request whose build fails stays, and is retried every pass until a build is
/// READY (spec 3.2 step 4).
async fn failed_manual_build_keeps_the_request(kind: Kind) {
    let h = Harness::new(kind, Setup::default()).await;
    let builder = h.start(NO_CLEANUP).await;
    let first = h.wait_uploaded_build(&[]).await;
    h.set_failing(true);
    h.store.images().request_build(IMAGE).await.unwrap();
    h.wait("two failed requested builds", |builds, _| {
        (failed_builds(builds).len() >= 2).then_some(())
    })
    .await;
    assert!(
        h.store
            .images()
            .build_request(IMAGE)
            .await
            .unwrap()
            .is_some()
    );
    h.set_failing(false);
    h.wait_uploaded_build(std::slice::from_ref(&first)).await;
    h.wait_request_cleared().await;
    builder.stop().await;
}

async fn pause_in_config_stops_builds(kind: Kind) {
    let paused = Setup {
        pause: true,
        ..Setup::default()
    };
    let h = Harness::new(kind, paused).await;
    let builder = h.start(FAST_CLEANUP).await;
    h.store.images().request_build(IMAGE).await.unwrap();
    builder.wait_passes("build-worker-0", 3).await;
    assert!(h.snapshot().await.0.is_empty());
    // Unpausing in the configuration lets the waiting request through.
    h.rewrite_config(&Setup::default());
    h.wait_uploaded_build(&[]).await;
    h.wait_request_cleared().await;
    builder.stop().await;
}

async fn pause_flag_in_store_stops_builds(kind: Kind) {
    let h = Harness::new(kind, Setup::default()).await;
    h.store.images().pause(IMAGE).await.unwrap();
    let builder = h.start(FAST_CLEANUP).await;
    builder.wait_passes("build-worker-0", 3).await;
    assert!(h.snapshot().await.0.is_empty());
    h.store.images().unpause(IMAGE).await.unwrap();
    let first = h.wait_uploaded_build(&[]).await;

    // Pausing again holds back a manual request too, but not uploads of existing builds.
    h.store.images().pause(IMAGE).await.unwrap();
    h.store.images().request_build(IMAGE).await.unwrap();
    builder.wait_passes("build-worker-0", 3).await;
    assert_eq!(
        h.snapshot().await.0.keys().cloned().collect::<Vec<_>>(),
        vec![first.clone()]
    );
    h.store.images().unpause(IMAGE).await.unwrap();
    h.wait_uploaded_build(std::slice::from_ref(&first)).await;
    h.wait_request_cleared().await;
    builder.stop().await;
}

/// A failing build command gives a FAILED build without formats or upload, and the next
/// pass tries again.
async fn failing_build_command_gives_failed_builds_retried_each_pass(kind: Kind) {
    let h = Harness::new(kind, Setup::default()).await;
    h.set_failing(true);
    // No janitor passes: retention would remove the FAILED records.
    let builder = h.start(NO_CLEANUP).await;
    let failed = h
        .wait("two failed builds", |builds, _| {
            let failed = failed_builds(builds);
            (failed.len() >= 2).then_some(failed)
        })
        .await;
    let (builds, uploads) = h.snapshot().await;
    for id in &failed {
        assert!(builds[id].formats.is_empty());
        assert!(uploads_of(&uploads, id).is_empty());
        let log = std::fs::read_to_string(h.log_dir().join(format!("{IMAGE}-{id}.log"))).unwrap();
        assert!(log.contains("failing as asked"), "{log}");
        assert!(log.ends_with("Exit code: 1\n"), "{log}");
    }
    assert!(ready_builds(&builds).is_empty());
    assert!(h.uploaded_images().is_empty());
    builder.stop().await;
}

async fn failed_builds_are_removed_and_retried(kind: Kind) {
    let h = Harness::new(kind, Setup::default()).await;
    h.set_failing(true);
    let builder = h.start(FAST_CLEANUP).await;
    h.wait("a failed build", |builds, _| {
        (!failed_builds(builds).is_empty()).then_some(())
    })
    .await;
    h.set_failing(false);
    h.wait_uploaded_build(&[]).await;
    h.wait("failed builds removed", |builds, _| {
        failed_builds(builds).is_empty().then_some(())
    })
    .await;
    builder.stop().await;
}

/// The janitor keeps the two newest READY builds: over several rebuilds each older build
/// goes with its cloud image, its upload records and its local files.
async fn retention_keeps_two_builds_over_several_rebuilds(kind: Kind) {
    let h = Harness::new(kind, Setup::default()).await;
    let builder = h.start(FAST_CLEANUP).await;
    let mut built = vec![h.wait_uploaded_build(&[]).await];
    for _ in 0..3 {
        h.store.images().request_build(IMAGE).await.unwrap();
        built.push(h.wait_uploaded_build(&built).await);
    }
    let kept = &built[2..];
    let retired = &built[..2];
    h.wait("only the two newest builds left", |builds, _| {
        (builds.len() == 2 && kept.iter().all(|id| builds.contains_key(id))).then_some(())
    })
    .await;
    let (builds, uploads) = h.snapshot().await;
    let mut ready = ready_builds(&builds);
    ready.sort();
    let mut expected = kept.to_vec();
    expected.sort();
    assert_eq!(ready, expected);
    for id in retired {
        assert!(uploads_of(&uploads, id).is_empty());
    }
    let cloud_images = h.uploaded_images();
    let cloud_builds: BTreeSet<String> = cloud_images
        .iter()
        .map(|i| i.metadata["nodepool_build_id"].clone())
        .collect();
    assert_eq!(
        cloud_builds,
        kept.iter().map(|id| id.to_string()).collect(),
        "{cloud_images:?}"
    );
    assert_eq!(cloud_images.len(), 2, "{cloud_images:?}");
    assert_eq!(current_build(&builds, &uploads), Some(built[3].clone()));
    // The builder that made them deletes the retired builds' files once they are DELETING
    // or gone.
    let images_dir = h.images_dir();
    wait_for(WAIT, Duration::from_millis(20), || async {
        (!retired.iter().any(|id| has_local_files(&images_dir, id))).then_some(())
    })
    .await
    .expect("local files of retired builds are deleted");
    for id in kept {
        assert!(has_local_files(&images_dir, id));
    }
    // Build logs are pruned to `build-log-retention` before each build: at most 3 remain.
    let logs = std::fs::read_dir(h.log_dir()).unwrap().count();
    assert!(logs <= 3, "{logs} logs");
    builder.stop().await;
}

async fn deleting_the_newest_build_reverts_to_the_previous_upload(kind: Kind) {
    let h = Harness::new(kind, Setup::default()).await;
    let builder = h.start(FAST_CLEANUP).await;
    let previous = h.wait_uploaded_build(&[]).await;
    h.store.images().request_build(IMAGE).await.unwrap();
    let newest = h.wait_uploaded_build(std::slice::from_ref(&previous)).await;
    let (builds, uploads) = h.snapshot().await;
    assert_eq!(current_build(&builds, &uploads), Some(newest.clone()));

    // What `nodepool dib-image-delete` does: mark the build DELETING.
    let record = h.snapshot().await.0[&newest].clone();
    assert!(decide::build_deletable_by_cli(&record));
    h.edit_build(&newest, |b| b.set_state(BuildState::Deleting, 0.0))
        .await;
    let (builds, uploads) = h.snapshot().await;
    assert_eq!(
        current_build(&builds, &uploads),
        Some(previous.clone()),
        "launches fall back to the previous build at once"
    );

    h.wait("the deleted build is gone", |builds, _| {
        (!builds.contains_key(&newest)).then_some(())
    })
    .await;
    let (builds, uploads) = h.snapshot().await;
    assert_eq!(current_build(&builds, &uploads), Some(previous.clone()));
    let cloud_images = h.uploaded_images();
    assert_eq!(cloud_images.len(), 1, "{cloud_images:?}");
    assert_eq!(
        cloud_images[0].metadata["nodepool_build_id"],
        previous.to_string()
    );
    let images_dir = h.images_dir();
    wait_for(WAIT, Duration::from_millis(20), || async {
        (!has_local_files(&images_dir, &newest)).then_some(())
    })
    .await
    .expect("the deleted build's files are deleted");
    assert!(has_local_files(&images_dir, &previous));
    builder.stop().await;
}

/// Upload failures are retried with a new upload each pass until one is READY; the FAILED
/// records are then removed by the janitor (spec 3.4 step 7, 3.5).
async fn failed_uploads_are_retried_and_cleaned_up(kind: Kind) {
    let setup = Setup {
        upload_failures: 3,
        ..Setup::default()
    };
    let h = Harness::new(kind, setup).await;
    let builder = h.start(NO_CLEANUP).await;
    let build_id = h.wait_uploaded_build(&[]).await;
    let (builds, uploads) = h.snapshot().await;
    let records = &uploads[&(build_id.clone(), PROVIDER.to_string())];
    let failed: Vec<_> = records
        .iter()
        .filter(|(_, u)| u.state == UploadState::Failed)
        .collect();
    assert_eq!(failed.len(), 3, "{records:?}");
    for (_, upload) in &failed {
        assert!(upload.external_id.is_none());
    }
    let ready: Vec<_> = records
        .iter()
        .filter(|(_, u)| u.state == UploadState::Ready)
        .collect();
    assert_eq!(ready.len(), 1, "{records:?}");
    // Each attempt is a new upload, after the failed ones.
    assert!(failed.iter().all(|(id, _)| id < &ready[0].0));
    assert_eq!(h.cloud().faults_left().upload_failures, 0);
    assert_eq!(h.uploaded_images().len(), 1);
    assert_eq!(current_build(&builds, &uploads), Some(build_id.clone()));
    builder.stop().await;

    // A builder with a running janitor removes the FAILED records of the kept build.
    let builder = h.start(FAST_CLEANUP).await;
    h.wait("failed upload records removed", |_, uploads| {
        let left = uploads_of(uploads, &build_id);
        (left.len() == 1 && left[0].state == UploadState::Ready).then_some(())
    })
    .await;
    assert_eq!(h.uploaded_images().len(), 1);
    builder.stop().await;
}

/// The provider's `post-upload-hook` runs after each upload with the provider name, the
/// cloud image id and the local file; while it fails, each upload is deleted from the
/// cloud and recorded FAILED, and the next pass uploads again (spec 3.4 step 8).
async fn post_upload_hook_rejects_uploads_until_it_succeeds(kind: Kind) {
    let setup = Setup {
        post_upload_hook: true,
        ..Setup::default()
    };
    let h = Harness::new(kind, setup).await;
    set_marker(&h.marker("hook-fail"), true);
    let builder = h.start(NO_CLEANUP).await;
    h.wait("two rejected uploads", |_, uploads| {
        uploads
            .values()
            .any(|by_id| {
                by_id
                    .values()
                    .filter(|u| u.state == UploadState::Failed)
                    .count()
                    >= 2
            })
            .then_some(())
    })
    .await;
    set_marker(&h.marker("hook-fail"), false);
    let build_id = h.wait_uploaded_build(&[]).await;
    let (_, uploads) = h.snapshot().await;
    let records = uploads_of(&uploads, &build_id);
    let ready = ready_upload(&uploads, &build_id).unwrap();
    let external_id = ready.external_id.clone().unwrap();
    let failed: Vec<_> = records
        .iter()
        .filter(|u| u.state == UploadState::Failed)
        .collect();
    assert!(failed.len() >= 2, "{records:?}");
    assert!(
        failed.iter().all(|u| u.external_id.is_none()),
        "{records:?}"
    );
    // Rejected images were deleted from the cloud at once.
    let cloud_images = h.uploaded_images();
    assert_eq!(cloud_images.len(), 1, "{cloud_images:?}");
    assert_eq!(cloud_images[0].id, external_id);

    let calls = std::fs::read_to_string(h.marker("hook-calls")).unwrap();
    let calls: Vec<&str> = calls.lines().collect();
    assert_eq!(calls.len(), failed.len() + 1, "{calls:?}");
    let file = h.images_dir().join(format!("{IMAGE}-{build_id}.qcow2"));
    assert_eq!(
        calls.last().copied(),
        Some(format!("{PROVIDER} {external_id} {}", file.display()).as_str())
    );
    builder.stop().await;
}

/// With `delete-after-upload`, the janitor deletes a READY build's image file and its
/// checksum once every provider has it, and keeps the build's record and upload.
async fn delete_after_upload_removes_uploaded_files(kind: Kind) {
    let setup = Setup {
        delete_after_upload: true,
        ..Setup::default()
    };
    let h = Harness::new(kind, setup).await;
    let builder = h.start(FAST_CLEANUP).await;
    let build_id = h.wait_uploaded_build(&[]).await;
    let file = h.images_dir().join(format!("{IMAGE}-{build_id}.qcow2"));
    let checksum = h.images_dir().join(format!("{IMAGE}-{build_id}.qcow2.md5"));
    wait_for(WAIT, Duration::from_millis(20), || async {
        (!file.exists() && !checksum.exists()).then_some(())
    })
    .await
    .expect("the uploaded image file is deleted");
    let (builds, uploads) = h.snapshot().await;
    assert_eq!(builds[&build_id].state, BuildState::Ready);
    assert!(ready_upload(&uploads, &build_id).is_some());
    assert_eq!(current_build(&builds, &uploads), Some(build_id));
    builder.stop().await;
}

/// An UPLOADING record nobody works on (its upload lock is free: the builder died during
/// the upload) is dropped by the janitor without touching the cloud (spec 3.5).
async fn abandoned_upload_record_is_dropped(kind: Kind) {
    let h = Harness::new(kind, Setup::default()).await;
    let builder = h.start(FAST_CLEANUP).await;
    let build_id = h.wait_uploaded_build(&[]).await;
    let abandoned = h
        .store
        .images()
        .create_upload(
            IMAGE,
            &build_id,
            PROVIDER,
            &ImageUpload::new(UploadState::Uploading, 1.0),
        )
        .await
        .unwrap();
    h.wait("the abandoned upload is dropped", |_, uploads| {
        let by_id = uploads.get(&(build_id.clone(), PROVIDER.to_string()))?;
        (!by_id.contains_key(&abandoned)).then_some(())
    })
    .await;
    let (_, uploads) = h.snapshot().await;
    assert_eq!(uploads_of(&uploads, &build_id).len(), 1);
    assert!(ready_upload(&uploads, &build_id).is_some());
    assert_eq!(h.uploaded_images().len(), 1);
    builder.stop().await;
}

/// Stopping a builder does not wait for an upload in flight (spec 3.1): the UPLOADING
/// record stays without a lock holder, and the next builder drops it and uploads again.
async fn upload_in_flight_is_abandoned_at_stop_and_redone(kind: Kind) {
    let setup = Setup {
        post_upload_hook: true,
        ..Setup::default()
    };
    let h = Harness::new(kind, setup).await;
    set_marker(&h.marker("hook-hold"), true);
    let builder = h.start(NO_CLEANUP).await;
    let (build_id, abandoned) = h
        .wait("an upload in flight", |_, uploads| {
            uploads.iter().find_map(|((build_id, _), by_id)| {
                by_id
                    .iter()
                    .find(|(_, u)| u.state == UploadState::Uploading)
                    .map(|(id, _)| (build_id.clone(), *id))
            })
        })
        .await;
    let hook_calls = h.marker("hook-calls");
    wait_for(WAIT, Duration::from_millis(20), || async {
        hook_calls.exists().then_some(())
    })
    .await
    .expect("the upload reaches its hook");
    tokio::time::timeout(WAIT, builder.stop())
        .await
        .expect("stop does not wait for the upload");
    let (_, uploads) = h.snapshot().await;
    let records = &uploads[&(build_id.clone(), PROVIDER.to_string())];
    assert_eq!(records[&abandoned].state, UploadState::Uploading);

    set_marker(&h.marker("hook-hold"), false);
    let builder = h.start(FAST_CLEANUP).await;
    assert_eq!(h.wait_uploaded_build(&[]).await, build_id);
    h.wait("the abandoned upload record is dropped", |_, uploads| {
        let by_id = uploads.get(&(build_id.clone(), PROVIDER.to_string()))?;
        (!by_id.contains_key(&abandoned)).then_some(())
    })
    .await;
    builder.stop().await;
}

/// A provider that no longer lists the image loses every upload of it, in the cloud and
/// in the store; the builds stay (spec 3.5, "obsolete" uploads).
async fn provider_that_drops_the_image_loses_its_uploads(kind: Kind) {
    let h = Harness::new(kind, Setup::default()).await;
    let builder = h.start(FAST_CLEANUP).await;
    let build_id = h.wait_uploaded_build(&[]).await;
    h.replace_config(&config_without_uploads(h.dir.path(), true));
    h.wait("the provider's uploads are deleted", |_, uploads| {
        uploads_of(uploads, &build_id).is_empty().then_some(())
    })
    .await;
    assert!(h.uploaded_images().is_empty());
    let (builds, _) = h.snapshot().await;
    assert_eq!(builds[&build_id].state, BuildState::Ready);
    assert!(has_local_files(&h.images_dir(), &build_id));
    builder.stop().await;
}

/// An image removed from the configuration is deleted entirely: every build, upload,
/// cloud image and local file (spec 3.5, `keep` is empty).
async fn image_removed_from_the_config_is_deleted_entirely(kind: Kind) {
    let h = Harness::new(kind, Setup::default()).await;
    let builder = h.start(FAST_CLEANUP).await;
    let first = h.wait_uploaded_build(&[]).await;
    h.store.images().request_build(IMAGE).await.unwrap();
    let second = h.wait_uploaded_build(std::slice::from_ref(&first)).await;
    h.replace_config(&config_without_uploads(h.dir.path(), false));
    h.wait("every build is deleted", |builds, _| {
        builds.is_empty().then_some(())
    })
    .await;
    assert!(h.uploaded_images().is_empty());
    let images_dir = h.images_dir();
    wait_for(WAIT, Duration::from_millis(20), || async {
        (!has_local_files(&images_dir, &first) && !has_local_files(&images_dir, &second))
            .then_some(())
    })
    .await
    .expect("the local files are deleted");
    builder.stop().await;
}

/// A BUILDING record whose builder died (nobody holds the image build lock) is removed by
/// the janitor; the build in progress, whose builder holds the lock, is left alone.
async fn orphaned_building_record_is_removed_but_not_a_build_in_progress(kind: Kind) {
    let h = Harness::new(kind, Setup::default()).await;
    h.set_holding(true);
    let builder = h.start(FAST_CLEANUP).await;
    let in_progress = h
        .wait("a build in progress", |builds, _| {
            builds
                .iter()
                .find(|(_, b)| b.state == BuildState::Building)
                .map(|(id, _)| id.clone())
        })
        .await;
    // What a builder that died in the middle of a build leaves behind.
    let mut record = ImageBuild::new(BuildState::Building, 1.0);
    record.builder = Some("dead.example.org".into());
    record.builder_id = Some("dead-builder".into());
    record.formats = vec!["qcow2".into()];
    let orphan = BuildId::new_random();
    h.store
        .images()
        .create_build(IMAGE, &orphan, &record)
        .await
        .unwrap();
    builder.wait_passes("janitor", 3).await;
    let (builds, _) = h.snapshot().await;
    assert_eq!(builds[&in_progress].state, BuildState::Building);
    // While the image build lock is held, Nodepool cannot tell an orphan from the build in
    // progress, so the orphan stays too.
    assert!(builds.contains_key(&orphan));

    h.set_holding(false);
    let built = h.wait_uploaded_build(&[]).await;
    assert_eq!(built, in_progress);
    h.wait("the orphaned build is removed", |builds, _| {
        (!builds.contains_key(&orphan)).then_some(())
    })
    .await;
    builder.stop().await;
}

/// Stopping a builder in the middle of a build records it FAILED; the files it started are
/// removed later and a builder started afterwards builds again.
async fn build_interrupted_by_stop_is_failed_and_redone(kind: Kind) {
    let h = Harness::new(kind, Setup::default()).await;
    h.set_holding(true);
    let builder = h.start(NO_CLEANUP).await;
    let interrupted = h
        .wait("a build in progress", |builds, _| {
            builds
                .iter()
                .find(|(_, b)| b.state == BuildState::Building)
                .map(|(id, _)| id.clone())
        })
        .await;
    builder.stop().await;
    let (builds, _) = h.snapshot().await;
    assert_eq!(builds[&interrupted].state, BuildState::Failed);

    h.set_holding(false);
    let builder = h.start(FAST_CLEANUP).await;
    let rebuilt = h.wait_uploaded_build(&[]).await;
    assert_ne!(rebuilt, interrupted);
    h.wait("the interrupted build is removed", |builds, _| {
        (!builds.contains_key(&interrupted)).then_some(())
    })
    .await;
    builder.stop().await;
}

/// A build whose image build lock vanished, as when its builder's session is lost, is
/// recorded FAILED although the command succeeded (spec 3.3 step 7): another builder may
/// have built the image meanwhile. The next pass builds again.
async fn build_that_lost_its_lock_is_failed(kind: Kind) {
    let h = Harness::new(kind, Setup::default()).await;
    h.set_holding(true);
    let builder = h.start(NO_CLEANUP).await;
    let in_progress = h
        .wait("a build in progress", |builds, _| {
            builds
                .iter()
                .find(|(_, b)| b.state == BuildState::Building)
                .map(|(id, _)| id.clone())
        })
        .await;
    // What the end of the builder's session does to its ephemeral lock contender.
    let lock_dir = paths::image_build_lock(IMAGE);
    let contenders = h
        .store
        .images()
        .image_build_lock_contenders(IMAGE)
        .await
        .unwrap();
    assert_eq!(contenders.len(), 1, "{contenders:?}");
    h.store
        .backend()
        .delete(&format!("{lock_dir}/{}", contenders[0]), None)
        .await
        .unwrap();
    h.set_holding(false);
    h.wait("the build to fail", |builds, _| {
        (builds.get(&in_progress)?.state == BuildState::Failed).then_some(())
    })
    .await;
    let rebuilt = h.wait_uploaded_build(&[]).await;
    assert_ne!(rebuilt, in_progress);
    let (_, uploads) = h.snapshot().await;
    assert!(uploads_of(&uploads, &in_progress).is_empty());
    builder.stop().await;
}

/// Two builders on one store, each with its own images directory (spec 3.8): one build per
/// image in the cluster, each build uploaded once and only by the builder holding its
/// files, and each janitor deletes only its own files.
async fn two_builders_share_the_work_without_duplicates(kind: Kind) {
    let setup = Setup {
        build_log_retention: -1,
        ..Setup::default()
    };
    let h = Harness::new(kind, setup).await;
    let dir_a = h.dir.path().join("images-a");
    let dir_b = h.dir.path().join("images-b");
    let a = h
        .start_builder(dir_a.clone(), "a.example.org", FAST_CLEANUP)
        .await;
    let b = h
        .start_builder(dir_b.clone(), "b.example.org", FAST_CLEANUP)
        .await;
    let mut built = vec![h.wait_uploaded_build(&[]).await];
    for _ in 0..3 {
        h.store.images().request_build(IMAGE).await.unwrap();
        built.push(h.wait_uploaded_build(&built).await);
        h.wait_request_cleared().await;
    }
    a.wait_passes("build-worker-0", 3).await;
    b.wait_passes("build-worker-0", 3).await;

    // One build per request: every build there ever was left a log (retention is off).
    let logs: BTreeSet<String> = std::fs::read_dir(h.log_dir())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    let expected: BTreeSet<String> = built.iter().map(|id| format!("{IMAGE}-{id}.log")).collect();
    assert_eq!(logs, expected);

    // Retention leaves the two newest, each uploaded exactly once, by its own builder.
    let kept = &built[2..];
    h.wait("only the two newest builds left", |builds, _| {
        (builds.len() == 2 && kept.iter().all(|id| builds.contains_key(id))).then_some(())
    })
    .await;
    let (builds, uploads) = h.snapshot().await;
    for id in kept {
        assert_eq!(uploads_of(&uploads, id).len(), 1, "{uploads:?}");
        let holder = if builds[id].builder_id.as_deref() == Some(a.builder_id()) {
            &a
        } else {
            assert_eq!(builds[id].builder_id.as_deref(), Some(b.builder_id()));
            &b
        };
        assert!(holder.local_builds().contains(&id.to_string()));
    }
    let cloud_images = h.uploaded_images();
    assert_eq!(cloud_images.len(), 2, "{cloud_images:?}");

    // Each builder holds only files of builds it made, and none of retired builds.
    let wanted = |running: &Running| -> BTreeSet<String> {
        kept.iter()
            .filter(|id| builds[*id].builder_id.as_deref() == Some(running.builder_id()))
            .map(|id| id.to_string())
            .collect()
    };
    for running in [&a, &b] {
        let wanted = wanted(running);
        wait_for(WAIT, Duration::from_millis(20), || async {
            (running.local_builds() == wanted).then_some(())
        })
        .await
        .unwrap_or_else(|_| {
            panic!(
                "{} holds {:?}, expected {wanted:?}",
                running.images_dir.display(),
                running.local_builds()
            )
        });
    }
    a.stop().await;
    b.stop().await;
}

/// The second builder builds when the first is held up: it neither builds the image while
/// the first holds the build lock nor uploads the first one's build, and when it builds the
/// next one, the first builder's janitor keeps the first build's files.
async fn second_builder_waits_for_the_build_lock_and_uploads_only_its_builds(kind: Kind) {
    let h = Harness::new(kind, Setup::default()).await;
    let dir_a = h.dir.path().join("images-a");
    let dir_b = h.dir.path().join("images-b");
    h.set_holding(true);
    let a = h
        .start_builder(dir_a.clone(), "a.example.org", FAST_CLEANUP)
        .await;
    let first = h
        .wait("a build in progress", |builds, _| {
            builds.keys().next().cloned()
        })
        .await;
    let b = h
        .start_builder(dir_b.clone(), "b.example.org", FAST_CLEANUP)
        .await;
    b.wait_passes("build-worker-0", 3).await;
    assert_eq!(h.snapshot().await.0.len(), 1, "one build under the lock");
    h.set_holding(false);
    assert_eq!(h.wait_uploaded_build(&[]).await, first);

    // Builder A stops; B takes the next request and uploads its own build only.
    a.stop().await;
    h.store.images().request_build(IMAGE).await.unwrap();
    let second = h.wait_uploaded_build(std::slice::from_ref(&first)).await;
    let (builds, uploads) = h.snapshot().await;
    assert_eq!(builds[&second].builder.as_deref(), Some("b.example.org"));
    assert_eq!(uploads_of(&uploads, &first).len(), 1);
    assert!(local_build_ids(&dir_a).contains(&first.to_string()));
    assert!(!local_build_ids(&dir_b).contains(&first.to_string()));

    // A comes back: its janitor keeps its (kept) build's files, and B's are left alone.
    let a = h
        .start_builder(dir_a.clone(), "a.example.org", FAST_CLEANUP)
        .await;
    a.wait_passes("janitor", 3).await;
    b.wait_passes("janitor", 3).await;
    assert!(has_local_files(&dir_a, &first));
    assert!(has_local_files(&dir_b, &second));
    let (_, uploads) = h.snapshot().await;
    assert_eq!(uploads_of(&uploads, &first).len(), 1);
    assert_eq!(uploads_of(&uploads, &second).len(), 1);

    // A third build retires the first: whichever janitor deletes the records, only A
    // deletes A's files.
    h.store.images().request_build(IMAGE).await.unwrap();
    let third = h
        .wait_uploaded_build(&[first.clone(), second.clone()])
        .await;
    h.wait("the first build is gone", |builds, _| {
        (!builds.contains_key(&first)).then_some(())
    })
    .await;
    wait_for(WAIT, Duration::from_millis(20), || async {
        (!has_local_files(&dir_a, &first)).then_some(())
    })
    .await
    .expect("builder A deletes the first build's files");
    assert!(has_local_files(&dir_b, &second));
    let holder = if h.snapshot().await.0[&third].builder.as_deref() == Some("a.example.org") {
        &dir_a
    } else {
        &dir_b
    };
    assert!(has_local_files(holder, &third));
    a.stop().await;
    b.stop().await;
}

/// Makes a `sqlite::<name>` and a `zookeeper::<name>` test of each scenario function.
macro_rules! scenarios {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::Kind::Sqlite).await;
                }
            )*
        }
        mod zookeeper {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::Kind::ZooKeeper).await;
                }
            )*
        }
    };
}

scenarios!(
    scheduled_build_is_uploaded_with_its_metadata,
    build_older_than_rebuild_age_is_rebuilt,
    manual_build_request_rebuilds_and_is_cleared,
    failed_manual_build_keeps_the_request,
    pause_in_config_stops_builds,
    pause_flag_in_store_stops_builds,
    failing_build_command_gives_failed_builds_retried_each_pass,
    failed_builds_are_removed_and_retried,
    retention_keeps_two_builds_over_several_rebuilds,
    deleting_the_newest_build_reverts_to_the_previous_upload,
    failed_uploads_are_retried_and_cleaned_up,
    post_upload_hook_rejects_uploads_until_it_succeeds,
    delete_after_upload_removes_uploaded_files,
    abandoned_upload_record_is_dropped,
    upload_in_flight_is_abandoned_at_stop_and_redone,
    provider_that_drops_the_image_loses_its_uploads,
    image_removed_from_the_config_is_deleted_entirely,
    orphaned_building_record_is_removed_but_not_a_build_in_progress,
    build_interrupted_by_stop_is_failed_and_redone,
    build_that_lost_its_lock_is_failed,
    two_builders_share_the_work_without_duplicates,
    second_builder_waits_for_the_build_lock_and_uploads_only_its_builds,
);
