//! Facts about this machine: the tools the driver runs, acceleration, cores, memory, and
//! the node SSH key.

use std::path::{Path, PathBuf};

use nodepool_config::QemuAccel;
use nodepool_driver::DriverError;
use nodepool_driver::command::{ToolFinder, require_root};

/// Absolute paths of the programs that make a VM's network, found once per provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tools {
    pub ip: PathBuf,
    pub nft: PathBuf,
}

impl Tools {
    /// Checks that this process is root and finds every tool, naming what is missing.
    pub fn find() -> Result<Tools, DriverError> {
        require_root("qemu", "a network namespace per VM, the node firewall")?;
        let mut finder = ToolFinder::default();
        let tools = Tools {
            ip: finder.find("ip", "iproute2"),
            nft: finder.find("nft", "nftables"),
        };
        finder.finish("qemu").map(|()| tools)
    }
}

/// KVM when asked for, or on `auto` when `/dev/kvm` opens and the CPU shows virtualization
/// extensions (some sandboxes expose a `/dev/kvm` whose guests hang at boot: no `vmx`/`svm`
/// flag is the tell); TCG otherwise.
pub fn use_kvm(accel: QemuAccel) -> bool {
    match accel {
        QemuAccel::Kvm => true,
        QemuAccel::Tcg => false,
        QemuAccel::Auto => {
            let opens = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open("/dev/kvm")
                .is_ok();
            opens
                && std::fs::read_to_string("/proc/cpuinfo")
                    .is_ok_and(|info| cpu_has_virtualization(&info))
        }
    }
}

pub fn cpu_has_virtualization(cpuinfo: &str) -> bool {
    cpuinfo
        .lines()
        .filter(|l| l.starts_with("flags"))
        .any(|l| l.split_whitespace().any(|f| f == "vmx" || f == "svm"))
}

pub fn host_cores() -> u32 {
    std::thread::available_parallelism()
        .map(|n| n.get() as u32)
        .unwrap_or(1)
}

/// MemTotal in MiB.
pub fn host_ram_mib() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| mem_total_mib(&m))
        .unwrap_or(1024)
}

pub fn mem_total_mib(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024)
}

/// The public half of the node key, making an ed25519 pair when the private key is missing.
pub async fn public_key(private: &Path) -> Result<String, DriverError> {
    let public = public_key_path(private);
    if !private.exists() {
        if let Some(parent) = private.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| DriverError::Fatal(format!("creating {}: {e}", parent.display())))?;
        }
        let output = tokio::process::Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", "nodepool", "-f"])
            .arg(private)
            .output()
            .await
            .map_err(|e| DriverError::Fatal(format!("running ssh-keygen: {e}")))?;
        // Two launches may race to make the key: the loser's ssh-keygen refuses to overwrite.
        if !output.status.success() && !public.exists() {
            return Err(DriverError::Fatal(format!(
                "ssh-keygen could not make {}: {}",
                private.display(),
                nodepool_driver::stderr_tail(&output.stderr)
            )));
        }
        tracing::info!(key = %private.display(), "made the node SSH key");
    }
    std::fs::read_to_string(&public)
        .map_err(|e| DriverError::Fatal(format!("reading {}: {e}", public.display())))
}

fn public_key_path(private: &Path) -> PathBuf {
    let mut text = private.as_os_str().to_owned();
    text.push(".pub");
    text.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn virtualization_flags() {
        assert!(cpu_has_virtualization(
            "processor : 0\nflags : fpu vme vmx sse\n"
        ));
        assert!(cpu_has_virtualization("flags\t\t: svm lm\n"));
        assert!(!cpu_has_virtualization("flags : fpu vme sse vmxnet\n"));
        assert!(!cpu_has_virtualization(""));
    }

    #[test]
    fn meminfo() {
        assert_eq!(
            mem_total_mib("MemTotal:       24576000 kB\nMemFree: 1 kB\n"),
            Some(24000)
        );
        assert_eq!(mem_total_mib("MemFree: 1 kB\n"), None);
    }

    #[tokio::test]
    async fn key_is_made_once() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("keys/id_ed25519");
        let first = public_key(&key).await.unwrap();
        assert!(first.starts_with("ssh-ed25519 "), "{first}");
        assert_eq!(public_key(&key).await.unwrap(), first);
    }
}
