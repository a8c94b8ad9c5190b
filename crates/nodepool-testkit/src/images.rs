//! A real native image for driver tests, built once per machine and reused.
//!
//! The first call on a machine debootstraps Debian (a few minutes); later calls reuse the
//! image files, rebuilt only when the native back-end's cache key changes. Several test
//! processes may ask at once: a file lock makes one of them build.

use std::path::{Path, PathBuf};
use std::time::Duration;

use nodepool_native_image::{BuildLog, NativeSpec, rootfs, with_suffix};

/// Where test images and their root file system cache live (kept between runs).
pub const CACHE: &str = "/var/tmp/nodepool-test-cache/native";

/// The image files of one test build.
#[derive(Debug, Clone)]
pub struct TestImage {
    /// `<dir>/test-<key>`; files are `<base>.<format>`.
    pub base: PathBuf,
    pub username: String,
}

impl TestImage {
    pub fn file(&self, format: &str) -> PathBuf {
        with_suffix(&self.base, format)
    }
}

/// The spec the test image is built from: Debian bookworm, user `zuul`, every format.
pub fn test_spec() -> NativeSpec {
    let cache = Path::new(CACHE);
    let mut spec = NativeSpec {
        image_name: "test".into(),
        distribution: "debian".into(),
        release: "bookworm".into(),
        mirror: None,
        packages: Vec::new(),
        kernel: None,
        disk_size_gib: 2,
        username: "zuul".into(),
        formats: ["qcow2", "raw", "vhd", "tar"].map(String::from).to_vec(),
        cache_dir: cache.join("rootfs"),
        output_base: PathBuf::new(),
        // Tests take the tree as it is; a week-old tree is upgraded.
        refresh_after: Duration::from_secs(7 * 24 * 3600),
    };
    spec.output_base = cache.join("images").join(format!(
        "test-{}-v{}",
        rootfs::cache_key(&spec),
        nodepool_native_image::LAYOUT_VERSION
    ));
    spec
}

/// Builds the test image unless it exists.
pub async fn native_test_image() -> anyhow::Result<TestImage> {
    let spec = test_spec();
    let image = TestImage {
        base: spec.output_base.clone(),
        username: spec.username.clone(),
    };
    let images = Path::new(CACHE).join("images");
    std::fs::create_dir_all(&images)?;
    let lock_path = images.join("lock");
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)?;
    let lock = tokio::task::spawn_blocking(move || lock.lock().map(|()| lock)).await??;
    let complete = spec
        .formats
        .iter()
        .all(|f| with_suffix(&spec.output(f), "sha256").exists());
    if !complete {
        let log = BuildLog::new(&with_suffix(&spec.output_base, "log"));
        nodepool_native_image::build(&spec, &log).await?;
    }
    drop(lock);
    Ok(image)
}
