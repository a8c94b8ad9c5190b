//! One node's directory under the provider's `state-dir`: what the driver knows of a VM
//! lives here, so a restarted launcher (or another provider object after a reload) finds it.
//!
//! `<state-dir>/<hostname>/` holds `node.json` ([`NodeRecord`]), `overlay.qcow2` (the VM's
//! disk on top of the uploaded image), `config.img` (hostname and SSH keys for the first-boot
//! step), `qemu.pid` and `console.log`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use nodepool_driver::{DriverError, Metadata};
use serde::{Deserialize, Serialize};

/// What the driver records about a node when it starts making it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeRecord {
    pub hostname: String,
    pub pool: String,
    pub label: String,
    /// The image file the overlay is based on.
    pub image: PathBuf,
    /// The host port forwarded to the VM's SSH.
    pub port: u16,
    pub cores: u32,
    /// MiB.
    pub ram: u64,
    pub metadata: Metadata,
    /// Seconds since the epoch.
    pub created: f64,
}

#[derive(Debug, Clone)]
pub struct NodeDir {
    pub path: PathBuf,
}

impl NodeDir {
    pub fn new(state_dir: &Path, hostname: &str) -> NodeDir {
        NodeDir {
            path: state_dir.join(hostname),
        }
    }

    pub fn record_path(&self) -> PathBuf {
        self.path.join("node.json")
    }
    pub fn overlay(&self) -> PathBuf {
        self.path.join("overlay.qcow2")
    }
    pub fn config_disk(&self) -> PathBuf {
        self.path.join("config.img")
    }
    pub fn pidfile(&self) -> PathBuf {
        self.path.join("qemu.pid")
    }
    pub fn console(&self) -> PathBuf {
        self.path.join("console.log")
    }

    pub fn exists(&self) -> bool {
        self.path.exists()
    }

    pub fn read_record(&self) -> Option<NodeRecord> {
        let text = std::fs::read(self.record_path()).ok()?;
        serde_json::from_slice(&text).ok()
    }

    pub fn write_record(&self, record: &NodeRecord) -> Result<(), DriverError> {
        std::fs::create_dir_all(&self.path).map_err(|e| io_error("creating", &self.path, e))?;
        let text = serde_json::to_vec_pretty(record)
            .map_err(|e| DriverError::Fatal(format!("encoding the node record: {e}")))?;
        let tmp = self.path.join("node.json.tmp");
        std::fs::write(&tmp, text).map_err(|e| io_error("writing", &tmp, e))?;
        std::fs::rename(&tmp, self.record_path())
            .map_err(|e| io_error("renaming", &self.record_path(), e))
    }

    /// The VM's process id, if its pidfile names a live process that is this node's qemu.
    pub fn live_pid(&self, hostname: &str) -> Option<u32> {
        let pid: u32 = std::fs::read_to_string(self.pidfile())
            .ok()?
            .trim()
            .parse()
            .ok()?;
        // A pid may be reused after the VM died: only ours carries the node's name.
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
        let cmdline = String::from_utf8_lossy(&cmdline);
        cmdline
            .split('\0')
            .any(|arg| arg.starts_with(&format!("{hostname},")) || arg == hostname)
            .then_some(pid)
    }
}

/// Every node directory with a readable record, by hostname.
pub fn all_records(state_dir: &Path) -> BTreeMap<String, NodeRecord> {
    let mut records = BTreeMap::new();
    let Ok(entries) = std::fs::read_dir(state_dir) else {
        return records;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !entry.path().is_dir() {
            continue;
        }
        if let Some(record) = NodeDir::new(state_dir, &name).read_record() {
            records.insert(name, record);
        }
    }
    records
}

/// The hostnames of node directories (with or without a record: a create that died before
/// writing one still leaves a directory to clean).
pub fn all_dirs(state_dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(state_dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

/// The first port of `range` not in `used`, starting after `hint` so ports rotate and a
/// just-freed port is not handed out again at once.
pub fn choose_port(range: (u16, u16), used: &BTreeSet<u16>, hint: u16) -> Option<u16> {
    let (low, high) = range;
    let span = u32::from(high - low) + 1;
    let start = if hint >= low && hint <= high {
        u32::from(hint - low) + 1
    } else {
        0
    };
    (0..span)
        .map(|i| low + ((start + i) % span) as u16)
        .find(|p| !used.contains(p))
}

/// The config disk's contents: `key=value` lines the first-boot step reads, padded with NULs
/// to whole sectors.
pub fn config_disk(hostname: &str, authorized_keys: &str) -> Vec<u8> {
    let mut text = format!("# nodepool node configuration\nhostname={hostname}\n");
    for key in authorized_keys
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
    {
        text.push_str("authorized_key=");
        text.push_str(key);
        text.push('\n');
    }
    let mut bytes = text.into_bytes();
    let padded = bytes.len().div_ceil(512).max(8) * 512;
    bytes.resize(padded, 0);
    bytes
}

pub fn io_error(what: &str, path: &Path, e: std::io::Error) -> DriverError {
    DriverError::Fatal(format!("{what} {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_rotate_and_skip_used_ones() {
        let used: BTreeSet<u16> = [42000, 42001].into();
        assert_eq!(choose_port((42000, 42003), &used, 0), Some(42002));
        assert_eq!(choose_port((42000, 42003), &used, 42002), Some(42003));
        assert_eq!(choose_port((42000, 42003), &used, 42003), Some(42002));
        let full: BTreeSet<u16> = (42000..=42003).collect();
        assert_eq!(choose_port((42000, 42003), &full, 0), None);
        assert_eq!(choose_port((5, 5), &BTreeSet::new(), 5), Some(5));
    }

    #[test]
    fn config_disk_holds_hostname_and_keys() {
        let disk = config_disk("np0000000001", "ssh-ed25519 AAAA one\n\nssh-rsa BBBB two\n");
        assert_eq!(disk.len() % 512, 0);
        let text = String::from_utf8(disk.into_iter().take_while(|b| *b != 0).collect()).unwrap();
        assert!(text.contains("hostname=np0000000001\n"));
        assert!(text.contains("authorized_key=ssh-ed25519 AAAA one\n"));
        assert!(text.contains("authorized_key=ssh-rsa BBBB two\n"));
    }

    #[test]
    fn records_round_trip_in_the_state_dir() {
        let dir = tempfile::tempdir().unwrap();
        let node = NodeDir::new(dir.path(), "np1");
        let record = NodeRecord {
            hostname: "np1".into(),
            pool: "main".into(),
            label: "debian".into(),
            image: "/images/debian.qcow2".into(),
            port: 42001,
            cores: 1,
            ram: 1024,
            metadata: [("nodepool_node_id".to_string(), "1".to_string())].into(),
            created: 1.0,
        };
        node.write_record(&record).unwrap();
        std::fs::create_dir(dir.path().join("np2")).unwrap();
        let all = all_records(dir.path());
        assert_eq!(all.len(), 1);
        assert_eq!(all["np1"], record);
        let mut dirs = all_dirs(dir.path());
        dirs.sort();
        assert_eq!(dirs, ["np1", "np2"]);
        assert_eq!(node.live_pid("np1"), None);
    }
}
