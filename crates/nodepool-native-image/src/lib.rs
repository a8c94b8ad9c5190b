//! The `native` build back-end (DESIGN.md section 7): a bootable Debian disk image made on a
//! plain machine, with no diskimage-builder, loop devices or mounts.
//!
//! 1. [`rootfs`]: debootstrap a root file system with a kernel, openssh-server and the
//!    image's packages into a cache directory keyed by everything that shapes it; later builds
//!    refresh it with `apt-get dist-upgrade` instead of bootstrapping again, so a daily
//!    rebuild takes seconds, not minutes. Then the node set-up is written into it: the login
//!    user, sudo, DHCP networking, a first-boot unit that takes the node's SSH keys and
//!    hostname from the launcher ([`FIRSTBOOT_SCRIPT`]) and makes host keys, GRUB's modules
//!    and configuration.
//! 2. [`disk`]: a raw disk file with an MBR partition table, GRUB's boot sector and core image
//!    written by hand where `grub-install` would put them, and an ext4 file system made from
//!    the directory by `mke2fs -d` at the partition's offset.
//! 3. Conversions with `qemu-img` (`qcow2`, `vhd`), a `tar` of the root file system for the
//!    container driver, and `.md5`/`.sha256` files as `disk-image-create --checksum` writes.
//!
//! Files are written under `.part` names and renamed when complete, so the builder's janitor
//! never sees half an image; a build that is dropped (timeout, shutdown) removes them.

// Tests may unwrap: a panic there is a test failure with a backtrace.
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod disk;
mod log;
pub mod rootfs;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

pub use log::BuildLog;

/// The script each node runs at boot before sshd (installed as
/// `/usr/local/sbin/nodepool-firstboot`).
pub const FIRSTBOOT_SCRIPT: &str = include_str!("firstboot.sh");

/// Bumped whenever what a build writes changes (disk layout, boot set-up), so caches of
/// finished images (the tests') know to rebuild.
pub const LAYOUT_VERSION: u32 = 2;

/// The formats this back-end makes.
pub const FORMATS: &[&str] = &["qcow2", "raw", "vhd", "tar"];

/// One native build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NativeSpec {
    pub image_name: String,
    /// `debian` (the only distribution supported so far).
    pub distribution: String,
    /// The suite, e.g. `bookworm`.
    pub release: String,
    pub mirror: Option<String>,
    /// Extra packages besides the base set.
    pub packages: Vec<String>,
    /// The kernel package (`linux-image-amd64` when unset).
    pub kernel: Option<String>,
    pub disk_size_gib: u64,
    /// The login user made in the image (with passwordless sudo).
    pub username: String,
    /// Output formats, each one of [`FORMATS`].
    pub formats: Vec<String>,
    /// Where root file systems are cached between builds.
    pub cache_dir: PathBuf,
    /// `<images-dir>/<image>-<build id>`: outputs are `<base>.<format>`.
    pub output_base: PathBuf,
    /// A cached root file system older than this is upgraded before use.
    pub refresh_after: Duration,
}

impl NativeSpec {
    /// Checks what can be checked before any work starts.
    pub fn validate(&self) -> anyhow::Result<()> {
        if self.distribution != "debian" {
            bail!(
                "native builds support the `debian` distribution, not `{}`",
                self.distribution
            );
        }
        if self.formats.is_empty() {
            bail!("no output formats requested");
        }
        if let Some(bad) = self.formats.iter().find(|f| !FORMATS.contains(&f.as_str())) {
            bail!(
                "native builds cannot make the `{bad}` format (they make {})",
                FORMATS.join(", ")
            );
        }
        if self.disk_size_gib == 0 {
            bail!("disk size must be at least 1 GiB");
        }
        Ok(())
    }

    pub fn output(&self, format: &str) -> PathBuf {
        with_suffix(&self.output_base, format)
    }
}

/// `path` with `.suffix` appended (not replacing an extension: build ids have no dots, but
/// image names may).
pub fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut text = path.as_os_str().to_owned();
    text.push(".");
    text.push(suffix);
    PathBuf::from(text)
}

/// Removes files that were being written when a build ends early.
#[derive(Debug, Default)]
struct Partial {
    paths: Vec<PathBuf>,
}

impl Partial {
    fn add(&mut self, path: PathBuf) -> PathBuf {
        self.paths.push(path.clone());
        path
    }

    /// Renames a finished `.part` file to its final name.
    fn finish(&mut self, part: &Path, done: &Path) -> anyhow::Result<()> {
        std::fs::rename(part, done)
            .with_context(|| format!("renaming {} to {}", part.display(), done.display()))?;
        self.paths.retain(|p| p != part);
        Ok(())
    }
}

impl Drop for Partial {
    fn drop(&mut self) {
        for path in &self.paths {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Runs one native build, appending every step and its tools' output to `log`. Returns the
/// files made, one per format (checksum files beside them).
pub async fn build(spec: &NativeSpec, log: &BuildLog) -> anyhow::Result<Vec<PathBuf>> {
    spec.validate()?;
    let started = Instant::now();
    let mut partial = Partial::default();

    let rootfs = rootfs::prepare(spec, log).await?;

    let wants = |f: &str| spec.formats.iter().any(|x| x == f);
    let mut made = Vec::new();
    let needs_disk = ["qcow2", "raw", "vhd"].iter().any(|f| wants(f));
    if wants("tar") {
        log.step(&spec.image_name, "packing the root file system (tar)");
        let part = partial.add(with_suffix(&spec.output("tar"), "part"));
        log.run(
            tokio::process::Command::new("tar")
                .arg("--numeric-owner")
                .arg("--xattrs")
                .arg("--xattrs-include=*")
                .arg("-cf")
                .arg(&part)
                .arg("-C")
                .arg(rootfs.path())
                .arg("."),
        )
        .await?;
        partial.finish(&part, &spec.output("tar"))?;
        made.push(spec.output("tar"));
    }
    if needs_disk {
        let raw_part = partial.add(with_suffix(&spec.output("raw"), "part"));
        disk::make(spec, rootfs.path(), &raw_part, log).await?;
        // The root file system is in the disk now; other builds may use the cache.
        drop(rootfs);
        for (format, args) in [
            ("qcow2", &["-O", "qcow2", "-o", "compat=0.10"][..]),
            // A dynamic VHD as clouds that take VHD (Rackspace, Azure) expect, made by
            // stock qemu-img; `force_size` keeps the exact virtual size.
            (
                "vhd",
                &["-O", "vpc", "-o", "subformat=dynamic,force_size=on"][..],
            ),
        ] {
            if !wants(format) {
                continue;
            }
            log.step(&spec.image_name, &format!("converting to {format}"));
            let part = partial.add(with_suffix(&spec.output(format), "part"));
            log.run(
                tokio::process::Command::new("qemu-img")
                    .args(["convert", "-f", "raw"])
                    .args(args)
                    .arg(&raw_part)
                    .arg(&part),
            )
            .await?;
            partial.finish(&part, &spec.output(format))?;
            made.push(spec.output(format));
        }
        if wants("raw") {
            partial.finish(&raw_part, &spec.output("raw"))?;
            made.push(spec.output("raw"));
        } else {
            std::fs::remove_file(&raw_part)
                .with_context(|| format!("removing {}", raw_part.display()))?;
        }
    }

    log.step(&spec.image_name, "writing checksums");
    for file in &made {
        for (tool, suffix) in [("md5sum", "md5"), ("sha256sum", "sha256")] {
            write_checksum(tool, file, &with_suffix(file, suffix)).await?;
        }
    }
    log.line(&format!(
        "native build of {} finished in {:.0} s: {}",
        spec.image_name,
        started.elapsed().as_secs_f64(),
        made.iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    ));
    Ok(made)
}

/// `<sum>  <file name>` as `md5sum`/`sha256sum` print it (and as dib writes them).
async fn write_checksum(tool: &str, file: &Path, out: &Path) -> anyhow::Result<()> {
    let dir = file.parent().unwrap_or(Path::new("."));
    let name = file
        .file_name()
        .with_context(|| format!("{} has no file name", file.display()))?;
    let output = tokio::process::Command::new(tool)
        .arg(name)
        .current_dir(dir)
        .kill_on_drop(true)
        .output()
        .await
        .with_context(|| format!("running {tool}"))?;
    if !output.status.success() {
        bail!(
            "{tool} {} failed: {}",
            file.display(),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    tokio::fs::write(out, &output.stdout)
        .await
        .with_context(|| format!("writing {}", out.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> NativeSpec {
        NativeSpec {
            image_name: "debian".into(),
            distribution: "debian".into(),
            release: "bookworm".into(),
            mirror: None,
            packages: vec![],
            kernel: None,
            disk_size_gib: 2,
            username: "zuul".into(),
            formats: vec!["qcow2".into()],
            cache_dir: "/tmp/cache".into(),
            output_base: "/tmp/images/debian-0123abcd".into(),
            refresh_after: Duration::from_secs(3600),
        }
    }

    #[test]
    fn outputs_append_the_format() {
        let mut s = spec();
        s.output_base = "/i/ubuntu-22.04-00ff".into();
        assert_eq!(
            s.output("qcow2"),
            PathBuf::from("/i/ubuntu-22.04-00ff.qcow2")
        );
    }

    #[test]
    fn validation_names_the_problem() {
        let mut s = spec();
        s.formats = vec!["qcow2".into(), "vmdk".into()];
        let e = s.validate().unwrap_err().to_string();
        assert!(e.contains("`vmdk`"), "{e}");
        let mut s = spec();
        s.distribution = "fedora".into();
        assert!(s.validate().unwrap_err().to_string().contains("fedora"));
        assert!(spec().validate().is_ok());
    }
}
