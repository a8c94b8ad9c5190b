//! For tests (this crate's and the launcher's): an image that follows the image contract,
//! built once per machine with `debootstrap` and kept under `/var/tmp/nodepool-test-cache`.
//!
//! The contract, which the native builder's images also follow: a Debian root file system
//! with `openssh-server`, no SSH host keys, and a login user named in
//! `/etc/nodepool/image-user` (here `zuul`, with a home directory).

use std::path::PathBuf;
use std::process::Command;

/// The unpacked reference root file system; bump the version when the recipe changes.
pub const TEST_ROOTFS: &str = "/var/tmp/nodepool-test-cache/container-rootfs-v1";
/// The login user of the reference image.
pub const TEST_IMAGE_USER: &str = "zuul";

/// Builds the root file system unless present, then its tar. Runs under `flock` so parallel
/// test processes wait for one build instead of racing; every step lands by rename.
const BUILD_SCRIPT: &str = r#"
set -eu
root="$1"
tar_file="$1.tar"
if [ ! -d "$root" ]; then
  rm -rf "$root.tmp"
  debootstrap --variant=minbase --include=openssh-server bookworm "$root.tmp" http://deb.debian.org/debian
  rm -f "$root.tmp"/etc/ssh/ssh_host_*
  chroot "$root.tmp" useradd --create-home --shell /bin/bash zuul
  mkdir -p "$root.tmp/etc/nodepool"
  echo zuul > "$root.tmp/etc/nodepool/image-user"
  chroot "$root.tmp" apt-get clean
  rm -rf "$root.tmp"/var/lib/apt/lists/*
  mv "$root.tmp" "$root"
fi
if [ ! -f "$tar_file" ]; then
  tar -C "$root" --numeric-owner --xattrs -cf "$tar_file.tmp" .
  mv "$tar_file.tmp" "$tar_file"
fi
"#;

/// The reference image as an uncompressed tar (what the builder hands to `upload_image`),
/// built on first use (about a minute; needs root, `debootstrap` and the Debian mirror).
/// Blocking: call it from `spawn_blocking` in async tests.
pub fn test_image_tar() -> Result<PathBuf, String> {
    let root = PathBuf::from(TEST_ROOTFS);
    if let Some(parent) = root.parent() {
        std::fs::create_dir_all(parent)
            .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
    }
    let lock = format!("{TEST_ROOTFS}.lock");
    let output = Command::new("flock")
        .arg(&lock)
        .args(["sh", "-c", BUILD_SCRIPT, "build-test-rootfs", TEST_ROOTFS])
        .output()
        .map_err(|e| format!("cannot run flock/sh to build {TEST_ROOTFS}: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "building {TEST_ROOTFS} failed ({}):\n{}\n{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    Ok(PathBuf::from(format!("{TEST_ROOTFS}.tar")))
}
