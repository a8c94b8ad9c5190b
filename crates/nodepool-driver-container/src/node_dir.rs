//! One node's directory under the state dir and its `metadata.json`.
//!
//! ```text
//! <state-dir>/
//!   .leases/<container address>     one per node, holding its hostname (atomic claims)
//!   .runc/                          the runtime's state: every container of the provider
//!   np0000000001/                   the node's OCI bundle
//!     metadata.json                 NodeRecord: label, pool, image, addresses, tags
//!     config.json                   the OCI runtime configuration (`bundle.rs`)
//!     upper/ work/ merged/          the overlay (merged = what the container sees as /)
//!     pid                           the container's init as this machine sees it
//!     console.log                   the runtime's and sshd's output
//! ```

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use nodepool_driver::{DriverError, Metadata};
use serde::{Deserialize, Serialize};

/// Node directories (and only they) start with this, like the hostnames the launcher gives.
pub const NODE_DIR_PREFIX: &str = "np";

/// Paths of one node's files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeDir {
    pub hostname: String,
    pub dir: PathBuf,
}

impl NodeDir {
    pub fn new(state_dir: &Path, hostname: &str) -> NodeDir {
        NodeDir {
            hostname: hostname.to_string(),
            dir: state_dir.join(hostname),
        }
    }

    pub fn upper(&self) -> PathBuf {
        self.dir.join("upper")
    }
    pub fn work(&self) -> PathBuf {
        self.dir.join("work")
    }
    pub fn merged(&self) -> PathBuf {
        self.dir.join("merged")
    }
    pub fn metadata(&self) -> PathBuf {
        self.dir.join("metadata.json")
    }
    pub fn pidfile(&self) -> PathBuf {
        self.dir.join("pid")
    }
    pub fn console_log(&self) -> PathBuf {
        self.dir.join("console.log")
    }
    pub fn config(&self) -> PathBuf {
        self.dir.join("config.json")
    }

    /// Text the outer process of a node started before runc has in its command line at
    /// every stage (`sh start.sh`, `ip netns exec`, `unshare`): the node directory's path
    /// with a trailing slash, so a pid is only killed while it is still this node's.
    pub fn process_marker(&self) -> String {
        format!("{}/", self.dir.to_string_lossy())
    }

    /// The node's record, `None` when the file does not exist yet.
    pub fn read_record(&self) -> Result<Option<NodeRecord>, DriverError> {
        let path = self.metadata();
        match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
                DriverError::Fatal(format!("{} is not a node record: {e}", path.display()))
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(DriverError::Fatal(format!(
                "cannot read {}: {e}",
                path.display()
            ))),
        }
    }

    /// Writes the record atomically and durably: a reader, or the launcher after a crash or
    /// a power cut, never sees half of it.
    pub fn write_record(&self, record: &NodeRecord) -> Result<(), DriverError> {
        let path = self.metadata();
        let bytes = serde_json::to_vec_pretty(record)
            .map_err(|e| DriverError::Fatal(format!("cannot encode {}: {e}", path.display())))?;
        nodepool_driver::durable::replace_file(&path, &bytes)
            .map_err(|e| DriverError::Fatal(format!("cannot write {}: {e}", path.display())))
    }

    /// The pid in the pidfile, if there is a readable one.
    pub fn read_pid(&self) -> Option<u32> {
        fs::read_to_string(self.pidfile())
            .ok()
            .and_then(|text| text.trim().parse().ok())
    }
}

/// `metadata.json`: what the driver knows about a node, written when its address is claimed.
/// The driver's own file format, read back by listings and deletes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeRecord {
    pub hostname: String,
    #[serde(default)]
    pub label: String,
    #[serde(default)]
    pub pool: String,
    /// The image's external id (its directory under the image dir).
    #[serde(default)]
    pub image: String,
    /// The container's address.
    pub address: Ipv4Addr,
    /// This machine's end of the veth pair.
    pub host_address: Ipv4Addr,
    /// Seconds since the epoch.
    #[serde(default)]
    pub created: f64,
    /// The `nodepool_*` tags, for leak cleanup.
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
}

impl NodeRecord {
    pub fn tags(&self) -> Metadata {
        self.metadata.clone()
    }
}

/// Whether `name` can be a node's (or an image's) directory: one plain path component.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name != "."
        && name != ".."
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// The hostnames of every node directory in `state_dir` (missing dir: none).
pub fn node_hostnames(state_dir: &Path) -> Result<Vec<String>, DriverError> {
    let entries = match fs::read_dir(state_dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => {
            return Err(DriverError::Fatal(format!(
                "cannot list {}: {e}",
                state_dir.display()
            )));
        }
    };
    let mut names: Vec<String> = entries
        .filter_map(Result::ok)
        .filter(|entry| entry.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|entry| entry.file_name().into_string().ok())
        .filter(|name| name.starts_with(NODE_DIR_PREFIX) && valid_name(name))
        .collect();
    names.sort();
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_single_safe_components() {
        for good in ["np0000000001", "debian-ct-0000000001", "img_1.0"] {
            assert!(valid_name(good), "{good}");
        }
        for bad in ["", ".", "..", ".leases", "a/b", "a b", "np$(x)"] {
            assert!(!valid_name(bad), "{bad:?}");
        }
    }

    #[test]
    fn records_round_trip() {
        let dir = tempfile::tempdir().expect("tempdir");
        let node = NodeDir::new(dir.path(), "np0000000001");
        fs::create_dir_all(&node.dir).expect("mkdir");
        assert_eq!(node.read_record().expect("read"), None);
        let record = NodeRecord {
            hostname: node.hostname.clone(),
            label: "debian".into(),
            pool: "main".into(),
            image: "debian-0000000001".into(),
            address: Ipv4Addr::new(10, 0, 0, 2),
            host_address: Ipv4Addr::new(10, 0, 0, 1),
            created: 1.5,
            metadata: BTreeMap::from([("nodepool_node_id".into(), "0000000001".into())]),
        };
        node.write_record(&record).expect("write");
        assert_eq!(node.read_record().expect("read"), Some(record));
        assert_eq!(
            node_hostnames(dir.path()).expect("list"),
            vec!["np0000000001"]
        );
    }
}
