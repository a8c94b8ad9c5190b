//! One node's directory under the provider's `state-dir`: what the driver knows of a VM
//! lives here, so a restarted launcher (or another provider object after a reload) finds it.
//!
//! `<state-dir>/<hostname>/` holds `node.json` ([`NodeRecord`]), `overlay.qcow2` (the VM's
//! disk on top of the uploaded image), `config.img` (hostname and SSH keys for the first-boot
//! step), `qemu.pid` and `console.log`. Address leases live in `<state-dir>/.leases`
//! (`nodepool_driver::node_network::Leases`), which is not a node.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use nodepool_driver::node_network::{NodeKind, host_link_name, namespace_name};
use nodepool_driver::{DriverError, Metadata};
use serde::{Deserialize, Serialize};

/// Where a node's SSH listens in its namespace: slirp forwards it to the guest's port 22.
pub const SSH_PORT: u16 = 22;

/// What the driver records about a node when it starts making it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeRecord {
    pub hostname: String,
    pub pool: String,
    pub label: String,
    /// The image file the overlay is based on.
    pub image: PathBuf,
    /// The port the VM's SSH is reached on: [`SSH_PORT`] at `address`; or, in records made
    /// before VMs had network namespaces, a port on 127.0.0.1.
    pub port: u16,
    /// The node's end of its veth pair: the address of its network namespace, where QEMU
    /// forwards SSH to the guest. Names the namespace and the host link, so a delete (in
    /// any later launcher) finds them. `None` in records made before VMs had network
    /// namespaces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<Ipv4Addr>,
    pub cores: u32,
    /// MiB.
    pub ram: u64,
    pub metadata: Metadata,
    /// Seconds since the epoch.
    pub created: f64,
}

impl NodeRecord {
    /// Where the VM's SSH answers.
    pub fn ssh_address(&self) -> SocketAddr {
        let ip = self.address.unwrap_or(Ipv4Addr::LOCALHOST);
        SocketAddr::from((ip, self.port))
    }

    /// The network namespace and host end of the veth pair of node `hostname` at `address`.
    pub fn network_names_of(hostname: &str, address: Ipv4Addr) -> (String, String) {
        (
            namespace_name(hostname, address),
            host_link_name(NodeKind::Vm, address),
        )
    }
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
        // Durable: a delete after a crash or power cut finds the node's network from it.
        nodepool_driver::durable::replace_file(&self.record_path(), &text)
            .map_err(|e| io_error("writing", &self.record_path(), e))
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
    all_dirs(state_dir)
        .into_iter()
        .filter_map(|name| {
            let record = NodeDir::new(state_dir, &name).read_record()?;
            Some((name, record))
        })
        .collect()
}

/// The hostnames of node directories (with or without a record: a create that died before
/// writing one still leaves a directory to clean). Dot names (`.leases`) are not nodes.
pub fn all_dirs(state_dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(state_dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| !name.starts_with('.'))
        .collect()
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
            port: SSH_PORT,
            address: Some(Ipv4Addr::new(172, 31, 224, 6)),
            cores: 1,
            ram: 1024,
            metadata: [("nodepool_node_id".to_string(), "1".to_string())].into(),
            created: 1.0,
        };
        node.write_record(&record).unwrap();
        std::fs::create_dir(dir.path().join("np2")).unwrap();
        std::fs::create_dir(dir.path().join(".leases")).unwrap();
        let all = all_records(dir.path());
        assert_eq!(all.len(), 1);
        assert_eq!(all["np1"], record);
        let mut dirs = all_dirs(dir.path());
        dirs.sort();
        assert_eq!(dirs, ["np1", "np2"], "the leases are not a node");
        assert_eq!(node.live_pid("np1"), None);
        assert_eq!(record.ssh_address().to_string(), "172.31.224.6:22");
        assert_eq!(
            NodeRecord::network_names_of("np1", Ipv4Addr::new(172, 31, 224, 6)),
            ("np1-ac1fe006".to_string(), "npqac1fe006".to_string())
        );
    }

    #[test]
    fn a_record_from_before_network_namespaces_is_reached_on_the_loopback_port() {
        let old = r#"{"hostname": "np3", "pool": "main", "label": "debian",
            "image": "/i/debian.qcow2", "port": 42003, "cores": 1, "ram": 1024,
            "metadata": {}, "created": 1.0}"#;
        let record: NodeRecord = serde_json::from_str(old).unwrap();
        assert_eq!(record.address, None);
        assert_eq!(record.ssh_address().to_string(), "127.0.0.1:42003");
    }
}
