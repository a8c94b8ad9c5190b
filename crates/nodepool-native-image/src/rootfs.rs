//! The cached root file system: debootstrap once, upgrade later, then the node set-up.

use std::fs;
use std::os::unix::fs::{PermissionsExt as _, symlink};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::{Context as _, bail};

use crate::{BuildLog, FIRSTBOOT_SCRIPT, NativeSpec};

/// Packages every native image has; the image's `packages` come on top.
pub const BASE_PACKAGES: &[&str] = &[
    "systemd-sysv",
    "udev",
    "openssh-server",
    "sudo",
    "iproute2",
    "e2fsprogs",
    "python3",
];

pub const DEFAULT_KERNEL: &str = "linux-image-amd64";
pub const DEFAULT_MIRROR: &str = "http://deb.debian.org/debian";
/// The file system label the kernel command line and fstab mount as root.
pub const ROOT_LABEL: &str = "cloudimg-rootfs";
/// Where GRUB's BIOS modules come from (Debian's `grub-pc-bin`).
pub const GRUB_MODULES: &str = "/usr/lib/grub/i386-pc";

/// A prepared root file system, locked against other builds changing it until dropped.
#[derive(Debug)]
pub struct Rootfs {
    path: PathBuf,
    _lock: fs::File,
}

impl Rootfs {
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Everything installed into the root file system, in a stable order.
pub fn packages(spec: &NativeSpec) -> Vec<String> {
    let mut all: Vec<String> = BASE_PACKAGES.iter().map(|p| p.to_string()).collect();
    all.push(
        spec.kernel
            .clone()
            .unwrap_or_else(|| DEFAULT_KERNEL.to_string()),
    );
    for p in &spec.packages {
        if !all.contains(p) {
            all.push(p.clone());
        }
    }
    all
}

/// The cache directory's name: distribution, release and a hash of everything else that
/// shapes the bootstrapped tree, so a changed package list starts a new tree.
pub fn cache_key(spec: &NativeSpec) -> String {
    let mut sorted = packages(spec);
    sorted.sort();
    let text = format!(
        "{}\0{}\0{}\0{}\0{}",
        spec.distribution,
        spec.release,
        spec.mirror.as_deref().unwrap_or(DEFAULT_MIRROR),
        spec.username,
        sorted.join(",")
    );
    // FNV-1a: stable across builds and Rust versions, unlike `DefaultHasher`.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in text.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{}-{}-{hash:016x}", spec.distribution, spec.release)
}

/// Bootstraps or refreshes the cached tree for `spec` and applies the node set-up.
pub async fn prepare(spec: &NativeSpec, log: &BuildLog) -> anyhow::Result<Rootfs> {
    let dir = spec.cache_dir.join(cache_key(spec));
    fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let lock = lock(&dir.join("lock")).await?;
    let root = dir.join("rootfs");
    let stamp = dir.join("refreshed");
    if !root.join("etc/os-release").exists() {
        bootstrap(spec, &dir, &root, log).await?;
    } else if age(&stamp).is_none_or(|age| age >= spec.refresh_after) {
        refresh(spec, &root, log).await?;
    } else {
        log.step(
            &spec.image_name,
            "using the cached root file system as it is",
        );
    }
    fs::write(&stamp, b"").with_context(|| format!("writing {}", stamp.display()))?;
    log.step(&spec.image_name, "setting up the node's first boot");
    customize(spec, &root, log).await?;
    Ok(Rootfs {
        path: root,
        _lock: lock,
    })
}

async fn lock(path: &Path) -> anyhow::Result<fs::File> {
    let file = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .with_context(|| format!("opening {}", path.display()))?;
    let shown = path.display().to_string();
    tokio::task::spawn_blocking(move || file.lock().map(|()| file))
        .await
        .context("waiting for the root file system lock")?
        .with_context(|| format!("locking {shown}"))
}

fn age(path: &Path) -> Option<std::time::Duration> {
    let modified = fs::metadata(path).ok()?.modified().ok()?;
    SystemTime::now().duration_since(modified).ok()
}

async fn bootstrap(
    spec: &NativeSpec,
    dir: &Path,
    root: &Path,
    log: &BuildLog,
) -> anyhow::Result<()> {
    let fresh = dir.join("rootfs.new");
    remove_tree(&fresh)?;
    remove_tree(root)?;
    log.step(
        &spec.image_name,
        &format!(
            "debootstrap {} with {} (minutes the first time; later builds reuse it)",
            spec.release,
            packages(spec).join(",")
        ),
    );
    log.run(
        tokio::process::Command::new("debootstrap")
            .arg("--variant=minbase")
            .arg(format!("--include={}", packages(spec).join(",")))
            .arg(&spec.release)
            .arg(&fresh)
            .arg(spec.mirror.as_deref().unwrap_or(DEFAULT_MIRROR))
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )
    .await
    .context(
        "debootstrap failed (is the `debootstrap` package installed and the mirror reachable?)",
    )?;
    clean_apt(&fresh)?;
    fs::rename(&fresh, root)
        .with_context(|| format!("renaming {} to {}", fresh.display(), root.display()))
}

async fn refresh(spec: &NativeSpec, root: &Path, log: &BuildLog) -> anyhow::Result<()> {
    log.step(&spec.image_name, "upgrading the cached root file system");
    // Package scripts must not start services inside the build's chroot.
    let policy = root.join("usr/sbin/policy-rc.d");
    fs::write(&policy, "#!/bin/sh\nexit 101\n")
        .with_context(|| format!("writing {}", policy.display()))?;
    fs::set_permissions(&policy, fs::Permissions::from_mode(0o755))?;
    let result = async {
        log.run(chroot(root).args(["apt-get", "-q", "update"]))
            .await?;
        log.run(chroot(root).args([
            "apt-get",
            "-q",
            "-y",
            "-o",
            "Dpkg::Options::=--force-confold",
            "dist-upgrade",
        ]))
        .await
    }
    .await;
    let _ = fs::remove_file(&policy);
    result?;
    clean_apt(root)
}

fn chroot(root: &Path) -> tokio::process::Command {
    let mut command = tokio::process::Command::new("chroot");
    command
        .arg(root)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin");
    command
}

/// Downloaded packages are not part of an image.
fn clean_apt(root: &Path) -> anyhow::Result<()> {
    let archives = root.join("var/cache/apt/archives");
    if let Ok(entries) = fs::read_dir(&archives) {
        for entry in entries.flatten() {
            if entry.path().extension().is_some_and(|e| e == "deb") {
                fs::remove_file(entry.path())
                    .with_context(|| format!("removing {}", entry.path().display()))?;
            }
        }
    }
    Ok(())
}

fn remove_tree(path: &Path) -> anyhow::Result<()> {
    match fs::remove_dir_all(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(e).with_context(|| format!("removing {}", path.display()))
        }
        _ => Ok(()),
    }
}

fn write(root: &Path, rel: &str, text: &str, mode: u32) -> anyhow::Result<()> {
    let path = root.join(rel);
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    }
    fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    fs::set_permissions(&path, fs::Permissions::from_mode(mode))
        .with_context(|| format!("setting the mode of {}", path.display()))
}

/// `<root>/etc/systemd/system/multi-user.target.wants/<unit>` -> `target`, as
/// `systemctl enable` would make it.
fn enable(root: &Path, unit: &str, target: &str) -> anyhow::Result<()> {
    let wants = root.join("etc/systemd/system/multi-user.target.wants");
    fs::create_dir_all(&wants)?;
    let link = wants.join(unit);
    if fs::symlink_metadata(&link).is_err() {
        symlink(target, &link).with_context(|| format!("linking {}", link.display()))?;
    }
    Ok(())
}

/// The newest kernel version among `/boot/vmlinuz-<version>` names.
pub fn newest_kernel(names: &[String]) -> Option<String> {
    names
        .iter()
        .filter_map(|n| n.strip_prefix("vmlinuz-"))
        .max_by(|a, b| version_cmp(a, b))
        .map(str::to_string)
}

/// Compares version strings number by number (`6.1.0-10` > `6.1.0-9`).
fn version_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    let parts = |s: &str| -> Vec<(u64, String)> {
        s.split(['.', '-', '+', '~'])
            .map(|p| {
                let digits: String = p.chars().take_while(char::is_ascii_digit).collect();
                (digits.parse().unwrap_or(0), p[digits.len()..].to_string())
            })
            .collect()
    };
    parts(a).cmp(&parts(b))
}

/// GRUB's configuration: boot the newest kernel from the root file system's label, console
/// on the serial port too (what `console_log` shows).
pub fn grub_config(kernel_version: &str) -> String {
    format!(
        "serial --unit=0 --speed=115200\n\
         terminal_input serial console\n\
         terminal_output serial console\n\
         set timeout=0\n\
         set default=0\n\
         menuentry 'Debian' {{\n\
         \x20 linux /boot/vmlinuz-{kernel_version} root=LABEL={ROOT_LABEL} ro console=tty0 console=ttyS0,115200n8\n\
         \x20 initrd /boot/initrd.img-{kernel_version}\n\
         }}\n"
    )
}

const FIRSTBOOT_UNIT: &str = "[Unit]\n\
Description=Nodepool node set-up (SSH keys, hostname, host keys)\n\
Before=ssh.service\n\
After=local-fs.target\n\
\n\
[Service]\n\
Type=oneshot\n\
ExecStart=/usr/local/sbin/nodepool-firstboot\n\
RemainAfterExit=yes\n\
\n\
[Install]\n\
WantedBy=multi-user.target\n";

const DHCP_NETWORK: &str = "[Match]\nName=en* eth*\n\n[Network]\nDHCP=yes\n";

async fn customize(spec: &NativeSpec, root: &Path, log: &BuildLog) -> anyhow::Result<()> {
    let user = spec.username.as_str();
    if user != "root" {
        let passwd = fs::read_to_string(root.join("etc/passwd")).context("reading etc/passwd")?;
        if !passwd.lines().any(|l| l.split(':').next() == Some(user)) {
            log.run(chroot(root).args(["useradd", "-m", "-s", "/bin/bash", "-U", user]))
                .await
                .with_context(|| format!("creating the image user `{user}`"))?;
        }
        write(
            root,
            "etc/sudoers.d/nodepool-user",
            &format!("{user} ALL=(ALL) NOPASSWD:ALL\n"),
            0o440,
        )?;
    }
    write(root, "etc/nodepool/image-user", &format!("{user}\n"), 0o644)?;
    write(
        root,
        "usr/local/sbin/nodepool-firstboot",
        FIRSTBOOT_SCRIPT,
        0o755,
    )?;
    write(
        root,
        "etc/systemd/system/nodepool-firstboot.service",
        FIRSTBOOT_UNIT,
        0o644,
    )?;
    enable(
        root,
        "nodepool-firstboot.service",
        "/etc/systemd/system/nodepool-firstboot.service",
    )?;
    write(
        root,
        "etc/systemd/network/80-nodepool-dhcp.network",
        DHCP_NETWORK,
        0o644,
    )?;
    enable(
        root,
        "systemd-networkd.service",
        "/lib/systemd/system/systemd-networkd.service",
    )?;
    write(
        root,
        "etc/fstab",
        &format!("LABEL={ROOT_LABEL} / ext4 errors=remount-ro 0 1\n"),
        0o644,
    )?;
    write(root, "etc/hostname", "localhost\n", 0o644)?;
    // Every node makes its own machine id and host keys.
    write(root, "etc/machine-id", "", 0o444)?;
    for entry in fs::read_dir(root.join("etc/ssh"))
        .context("reading etc/ssh")?
        .flatten()
    {
        if entry.file_name().to_string_lossy().starts_with("ssh_host_") {
            fs::remove_file(entry.path())?;
        }
    }

    // GRUB: its modules where the core image's prefix points, and the menu.
    let modules = root.join("boot/grub/i386-pc");
    fs::create_dir_all(&modules)?;
    let host_modules = fs::read_dir(GRUB_MODULES).with_context(|| {
        format!("reading {GRUB_MODULES} (install Debian's `grub-pc-bin` for native builds)")
    })?;
    for entry in host_modules.flatten() {
        if entry.path().is_file() {
            fs::copy(entry.path(), modules.join(entry.file_name()))?;
        }
    }
    let kernels: Vec<String> = fs::read_dir(root.join("boot"))
        .context("reading boot")?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    let Some(version) = newest_kernel(&kernels) else {
        bail!("no kernel in {}/boot", root.display());
    };
    if !root.join(format!("boot/initrd.img-{version}")).exists() {
        bail!("kernel {version} has no initrd in {}/boot", root.display());
    }
    write(root, "boot/grub/grub.cfg", &grub_config(&version), 0o644)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn spec() -> NativeSpec {
        NativeSpec {
            image_name: "debian".into(),
            distribution: "debian".into(),
            release: "bookworm".into(),
            mirror: None,
            packages: vec!["git".into(), "python3".into()],
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
    fn packages_add_the_kernel_and_extras_once() {
        let p = packages(&spec());
        assert!(p.contains(&"linux-image-amd64".to_string()));
        assert_eq!(p.iter().filter(|x| *x == "python3").count(), 1);
        assert_eq!(p.last().map(String::as_str), Some("git"));
    }

    #[test]
    fn cache_key_follows_what_shapes_the_tree() {
        let a = cache_key(&spec());
        assert!(a.starts_with("debian-bookworm-"), "{a}");
        let mut reordered = spec();
        reordered.packages = vec!["python3".into(), "git".into()];
        assert_eq!(cache_key(&reordered), a, "package order does not matter");
        let mut more = spec();
        more.packages.push("curl".into());
        assert_ne!(cache_key(&more), a);
        let mut other_user = spec();
        other_user.username = "ci".into();
        assert_ne!(cache_key(&other_user), a);
        let mut other_build = spec();
        other_build.output_base = "/elsewhere/debian-ff".into();
        other_build.disk_size_gib = 8;
        assert_eq!(cache_key(&other_build), a, "outputs do not shape the tree");
    }

    #[test]
    fn newest_kernel_compares_numbers() {
        let names: Vec<String> = [
            "config-6.1.0-9-amd64",
            "vmlinuz-6.1.0-9-amd64",
            "vmlinuz-6.1.0-10-amd64",
            "initrd.img-6.1.0-10-amd64",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert_eq!(newest_kernel(&names).as_deref(), Some("6.1.0-10-amd64"));
        assert_eq!(newest_kernel(&[]), None);
    }

    #[test]
    fn grub_boots_by_label_with_a_serial_console() {
        let cfg = grub_config("6.1.0-10-amd64");
        assert!(cfg.contains("linux /boot/vmlinuz-6.1.0-10-amd64 root=LABEL=cloudimg-rootfs"));
        assert!(cfg.contains("console=ttyS0"));
        assert!(cfg.contains("initrd /boot/initrd.img-6.1.0-10-amd64"));
    }
}
