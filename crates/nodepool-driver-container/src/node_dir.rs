//! One node's directory under the state dir, its `metadata.json`, address leases and the
//! scripts that start its container.
//!
//! ```text
//! <state-dir>/
//!   .leases/<container address>     one per node, holding its hostname (atomic claims)
//!   np0000000001/
//!     metadata.json                 NodeRecord: label, pool, image, addresses, tags
//!     upper/ work/ merged/          the overlay (merged = what the container sees as /)
//!     start.sh init.sh              how the container was started (kept for debugging)
//!     pid                           the container's outer process (`unshare`)
//!     console.log                   sshd's and the scripts' output
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
/// Where address claims live: a dot keeps it out of the node listing.
const LEASES_DIR: &str = ".leases";

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
    pub fn start_script(&self) -> PathBuf {
        self.dir.join("start.sh")
    }
    pub fn init_script(&self) -> PathBuf {
        self.dir.join("init.sh")
    }

    /// Text the container's outer process has in its command line at every stage (`sh
    /// start.sh`, `ip netns exec`, `unshare`): the node directory's path with a trailing
    /// slash, so a pid is only killed while it is still this node's.
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

    /// Writes the record through a temporary file and a rename: a reader never sees half.
    pub fn write_record(&self, record: &NodeRecord) -> Result<(), DriverError> {
        let path = self.metadata();
        let tmp = self.dir.join("metadata.json.tmp");
        let bytes = serde_json::to_vec_pretty(record)
            .map_err(|e| DriverError::Fatal(format!("cannot encode {}: {e}", path.display())))?;
        fs::write(&tmp, bytes)
            .and_then(|()| fs::rename(&tmp, &path))
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

/// Address claims: `<state-dir>/.leases/<address>` files created with `create_new`, so two
/// creates (threads, or two launchers on one state dir) never get the same address.
#[derive(Debug, Clone)]
pub struct Leases {
    dir: PathBuf,
}

impl Leases {
    pub fn new(state_dir: &Path) -> Leases {
        Leases {
            dir: state_dir.join(LEASES_DIR),
        }
    }

    /// Every claimed address with the hostname holding it.
    pub fn list(&self) -> Result<Vec<(Ipv4Addr, String)>, DriverError> {
        let entries = match fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => {
                return Err(DriverError::Fatal(format!(
                    "cannot list {}: {e}",
                    self.dir.display()
                )));
            }
        };
        let mut out = Vec::new();
        for entry in entries.filter_map(Result::ok) {
            let Some(address) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<Ipv4Addr>().ok())
            else {
                continue;
            };
            let holder = fs::read_to_string(entry.path()).unwrap_or_default();
            out.push((address, holder.trim().to_string()));
        }
        Ok(out)
    }

    /// Claims `address` for `hostname`; `Ok(false)` when someone else holds it.
    pub fn claim(&self, address: Ipv4Addr, hostname: &str) -> Result<bool, DriverError> {
        fs::create_dir_all(&self.dir).map_err(|e| {
            DriverError::Fatal(format!("cannot create {}: {e}", self.dir.display()))
        })?;
        let path = self.dir.join(address.to_string());
        let file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path);
        match file {
            Ok(mut file) => {
                use std::io::Write;
                file.write_all(hostname.as_bytes()).map_err(|e| {
                    DriverError::Fatal(format!("cannot write {}: {e}", path.display()))
                })?;
                Ok(true)
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(DriverError::Fatal(format!(
                "cannot create {}: {e}",
                path.display()
            ))),
        }
    }

    /// Releases every address `hostname` holds.
    pub fn release(&self, hostname: &str) -> Result<(), DriverError> {
        for (address, holder) in self.list()? {
            if holder == hostname {
                let path = self.dir.join(address.to_string());
                match fs::remove_file(&path) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => {
                        return Err(DriverError::Fatal(format!(
                            "cannot remove {}: {e}",
                            path.display()
                        )));
                    }
                }
            }
        }
        Ok(())
    }
}

/// Quotes `text` for a POSIX shell.
pub fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// What `start.sh` needs to know.
#[derive(Debug, Clone)]
pub struct StartPlan<'a> {
    pub node: &'a NodeDir,
    pub namespace: &'a str,
    pub ip: &'a Path,
    pub unshare: &'a Path,
    pub sh: &'a Path,
}

/// `start.sh`, run under `setsid --fork` so the container is not the launcher's child: it
/// records its pid, enters the network namespace and execs `unshare`, which forks the
/// container's PID 1 in new mount, PID and UTS namespaces. `--kill-child` ties that PID 1 to
/// `unshare`, so killing the recorded pid ends the whole container.
pub fn start_script(plan: &StartPlan<'_>) -> String {
    let node = plan.node;
    format!(
        "#!/bin/sh\n\
         # Written by nodepool's container driver: starts {hostname}'s container.\n\
         echo $$ > {pidfile}\n\
         exec {ip} netns exec {namespace} {unshare} --mount --pid --uts --fork --kill-child \
         --mount-proc={proc} {sh} {init}\n",
        hostname = node.hostname,
        pidfile = shell_quote(&node.pidfile().to_string_lossy()),
        ip = shell_quote(&plan.ip.to_string_lossy()),
        namespace = shell_quote(plan.namespace),
        unshare = shell_quote(&plan.unshare.to_string_lossy()),
        proc = shell_quote(&node.merged().join("proc").to_string_lossy()),
        sh = shell_quote(&plan.sh.to_string_lossy()),
        init = shell_quote(&node.init_script().to_string_lossy()),
    )
}

/// What `init.sh` needs to know.
#[derive(Debug, Clone)]
pub struct InitPlan<'a> {
    pub node: &'a NodeDir,
    pub hostname_tool: &'a Path,
    pub mount: &'a Path,
    pub chroot: &'a Path,
}

/// Device nodes bound from this machine into the container's private `/dev`.
const DEVICES: &[&str] = &["null", "zero", "full", "random", "urandom", "tty"];

/// `init.sh`: runs as PID 1 of the container's namespaces (still on this machine's root),
/// sets the hostname, gives the root a private `/dev` (a tmpfs with a few bound devices and
/// its own devpts) and execs sshd in the chroot, which stays PID 1. The mounts live in the
/// container's mount namespace only and vanish with it.
pub fn init_script(plan: &InitPlan<'_>) -> String {
    let merged = shell_quote(&plan.node.merged().to_string_lossy());
    let mount = shell_quote(&plan.mount.to_string_lossy());
    let mut script = format!(
        "#!/bin/sh\n\
         # Written by nodepool's container driver: PID 1 of {hostname}'s container.\n\
         set -e\n\
         M={merged}\n\
         {hostname_tool} {hostname_quoted}\n\
         {mount} -t tmpfs -o mode=755,nosuid tmpfs \"$M/dev\"\n",
        hostname = plan.node.hostname,
        hostname_tool = shell_quote(&plan.hostname_tool.to_string_lossy()),
        hostname_quoted = shell_quote(&plan.node.hostname),
    );
    for device in DEVICES {
        script.push_str(&format!(
            ": > \"$M/dev/{device}\"\n{mount} --bind /dev/{device} \"$M/dev/{device}\"\n"
        ));
    }
    script.push_str(&format!(
        "mkdir -p \"$M/dev/pts\" \"$M/dev/shm\"\n\
         {mount} -t devpts -o newinstance,ptmxmode=0666,mode=0620,gid=5 devpts \"$M/dev/pts\"\n\
         ln -s pts/ptmx \"$M/dev/ptmx\"\n\
         ln -s /proc/self/fd \"$M/dev/fd\"\n\
         ln -s /proc/self/fd/0 \"$M/dev/stdin\"\n\
         ln -s /proc/self/fd/1 \"$M/dev/stdout\"\n\
         ln -s /proc/self/fd/2 \"$M/dev/stderr\"\n\
         {mount} -t tmpfs -o nosuid,nodev tmpfs \"$M/dev/shm\"\n\
         exec {chroot} \"$M\" /usr/sbin/sshd -D -e\n",
        chroot = shell_quote(&plan.chroot.to_string_lossy()),
    ));
    script
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
    fn shell_quoting_survives_quotes() {
        assert_eq!(shell_quote("/a b"), "'/a b'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
    }

    #[test]
    fn scripts_name_the_node_paths() {
        let node = NodeDir::new(Path::new("/state"), "np0000000007");
        let start = start_script(&StartPlan {
            node: &node,
            namespace: "np0000000007-ac1ffa02",
            ip: Path::new("/usr/sbin/ip"),
            unshare: Path::new("/usr/bin/unshare"),
            sh: Path::new("/bin/sh"),
        });
        assert!(start.contains("echo $$ > '/state/np0000000007/pid'\n"));
        assert!(start.contains(
            "exec '/usr/sbin/ip' netns exec 'np0000000007-ac1ffa02' '/usr/bin/unshare' \
             --mount --pid --uts --fork --kill-child \
             --mount-proc='/state/np0000000007/merged/proc' '/bin/sh' '/state/np0000000007/init.sh'"
        ));
        let init = init_script(&InitPlan {
            node: &node,
            hostname_tool: Path::new("/bin/hostname"),
            mount: Path::new("/bin/mount"),
            chroot: Path::new("/usr/sbin/chroot"),
        });
        assert!(init.contains("M='/state/np0000000007/merged'\n"));
        assert!(init.contains("'/bin/hostname' 'np0000000007'\n"));
        assert!(init.ends_with("exec '/usr/sbin/chroot' \"$M\" /usr/sbin/sshd -D -e\n"));
    }

    #[test]
    fn records_round_trip_and_leases_are_exclusive() {
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

        let leases = Leases::new(dir.path());
        let address = Ipv4Addr::new(10, 0, 0, 2);
        assert!(leases.claim(address, "np0000000001").expect("claim"));
        assert!(!leases.claim(address, "np0000000002").expect("claim"));
        assert_eq!(
            leases.list().expect("list"),
            vec![(address, "np0000000001".to_string())]
        );
        assert_eq!(
            node_hostnames(dir.path()).expect("list"),
            vec!["np0000000001"],
            "the leases directory is not a node"
        );
        leases.release("np0000000002").expect("release");
        assert_eq!(leases.list().expect("list").len(), 1);
        leases.release("np0000000001").expect("release");
        assert!(leases.list().expect("list").is_empty());
    }
}
