//! The `fake-state` file: the servers and images of one fake cloud as JSON, shared by every
//! process whose fake cloud names it.
//!
//! It exists so crash tests can kill a launcher with SIGKILL and start it again against the
//! same cloud, and so several launchers can share one cloud as they share a real one. It
//! holds what a real cloud holds: servers and images. A server that is building or being
//! deleted carries the wall-clock time (seconds since the Unix epoch) at which the cloud
//! finishes that, so every process sees it become `ACTIVE` (or disappear) at the same moment,
//! whichever process made it and whichever is alive. Fault counters and injected hangs are
//! the faults of one client process and are not here.
//!
//! The file is the truth; each process keeps a copy of the document it last read. Every
//! operation is one read-modify-write under an exclusive advisory lock (`flock`) on the
//! sibling `<path>.lock`: lock, read the document again when another process changed it,
//! apply the change, save, unlock. The lock is on a file of its own because the state file is
//! replaced by a rename at each save, and a lock on a replaced file excludes nobody. A lock
//! held by a killed process is released by the kernel as its files close.
//!
//! The document carries the id of the cloud (made with the file) and a generation that each
//! save increments under the lock; a process whose copy has the same pair skips parsing the
//! document again. (Size and modification time would do most of the time, but a save can
//! keep the size and land in the same clock tick, and a freed inode number comes back.)
//!
//! The file is replaced atomically and durably (`nodepool_driver::durable`) so a kill or a
//! power cut never leaves half a document, only, at worst, the temporary file of an
//! unfinished save beside it.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::cloud::{FakeImage, FakeServer, ServerStatus};

/// Which document a process's copy is: the cloud's id and the save that wrote it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Version {
    pub cloud_id: String,
    pub generation: u64,
}

impl Version {
    /// The version of a cloud that has no file yet: the first save writes generation 1.
    pub(crate) fn new_cloud() -> Version {
        Version {
            cloud_id: uuid::Uuid::new_v4().simple().to_string(),
            generation: 0,
        }
    }

    pub(crate) fn next(&self) -> Version {
        Version {
            cloud_id: self.cloud_id.clone(),
            generation: self.generation + 1,
        }
    }
}

/// The document in the file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct StateDocument {
    /// Made with the file; a file made again (deleted and started over) is another cloud.
    #[serde(default)]
    pub cloud_id: String,
    /// Incremented by each save.
    #[serde(default)]
    pub generation: u64,
    /// In creation order.
    pub servers: Vec<StoredServer>,
    pub images: Vec<FakeImage>,
}

impl StateDocument {
    pub(crate) fn version(&self) -> Version {
        Version {
            cloud_id: self.cloud_id.clone(),
            generation: self.generation,
        }
    }
}

/// One server in the file: the server as the cloud shows it, and the change the cloud will
/// make to it on its own.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct StoredServer {
    #[serde(flatten)]
    pub server: FakeServer,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending: Option<StoredChange>,
}

/// A change the cloud makes to a server at a wall-clock time, in seconds since the Unix
/// epoch (so that every process agrees on when).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum StoredChange {
    /// A `BUILD` server becomes `status` (`create-delay`).
    Becomes { at: f64, status: ServerStatus },
    /// A `DELETING` server is gone (`delete-delay`).
    Disappears { at: f64 },
}

/// What a read found.
#[derive(Debug, PartialEq)]
pub(crate) enum Loaded {
    /// The document is the version the caller has.
    Unchanged,
    /// Another version.
    Changed(StateDocument),
    /// There is no file (yet, or any more).
    Missing,
}

/// The state file and its lock file.
#[derive(Debug)]
pub(crate) struct SharedStateFile {
    path: PathBuf,
    /// `<path>.lock`, opened once; locked around each operation.
    lock_file: File,
}

/// Proof that this process holds the state file's lock; released when dropped.
#[derive(Debug)]
pub(crate) struct HeldLock<'f> {
    lock_file: &'f File,
}

impl Drop for HeldLock<'_> {
    fn drop(&mut self) {
        // Closing the file would release it too; unlocking fails only on a bad descriptor.
        let _ = self.lock_file.unlock();
    }
}

impl SharedStateFile {
    /// Opens (making it if needed) the lock file beside `path`; the state file itself is
    /// read at the first operation.
    pub(crate) fn open(path: &Path) -> Result<SharedStateFile, String> {
        let mut lock_path = path.as_os_str().to_owned();
        lock_path.push(".lock");
        let lock_path = PathBuf::from(lock_path);
        let lock_file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock_path)
            .map_err(|e| format!("cannot open {}: {e}", lock_path.display()))?;
        Ok(SharedStateFile {
            path: path.to_path_buf(),
            lock_file,
        })
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Takes the exclusive lock, waiting for other processes to release it (each holds it
    /// for one read-modify-write of a small local file).
    pub(crate) fn lock(&self) -> Result<HeldLock<'_>, String> {
        self.lock_file
            .lock()
            .map_err(|e| format!("cannot lock {}.lock: {e}", self.path.display()))?;
        Ok(HeldLock {
            lock_file: &self.lock_file,
        })
    }

    /// Reads the document unless it is still `known`.
    pub(crate) fn load_if_changed(
        &self,
        _held: &HeldLock<'_>,
        known: Option<&Version>,
    ) -> Result<Loaded, String> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Loaded::Missing),
            Err(e) => return Err(format!("cannot read {}: {e}", self.path.display())),
        };
        if let Some(known) = known {
            /// The document's version alone; the rest is skipped without being built.
            #[derive(Deserialize)]
            struct Header {
                #[serde(default)]
                cloud_id: String,
                #[serde(default)]
                generation: u64,
            }
            let header: Header = serde_json::from_str(&text)
                .map_err(|e| format!("cannot parse {}: {e}", self.path.display()))?;
            if header.cloud_id == known.cloud_id && header.generation == known.generation {
                return Ok(Loaded::Unchanged);
            }
        }
        serde_json::from_str(&text)
            .map(Loaded::Changed)
            .map_err(|e| format!("cannot parse {}: {e}", self.path.display()))
    }

    /// Replaces the file with `document`.
    pub(crate) fn save(
        &self,
        _held: &HeldLock<'_>,
        document: &StateDocument,
    ) -> Result<(), String> {
        let text = serde_json::to_string_pretty(document)
            .map_err(|e| format!("cannot encode the fake cloud state: {e}"))?;
        nodepool_driver::durable::replace_file(&self.path, text.as_bytes())
            .map_err(|e| format!("cannot write {}: {e}", self.path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nodepool_driver::Metadata;

    fn server(id: &str, status: ServerStatus) -> FakeServer {
        FakeServer {
            id: id.into(),
            name: format!("np-{id}"),
            metadata: Metadata::from([("k".to_string(), "v".to_string())]),
            status,
            flavor: "Fake Flavor".into(),
            az: None,
            interface_ip: "fake".into(),
            public_ipv4: "fake".into(),
            private_ipv4: "fake".into(),
            public_ipv6: String::new(),
            host_id: "fake".into(),
        }
    }

    fn document() -> StateDocument {
        StateDocument {
            cloud_id: "c1".into(),
            generation: 7,
            servers: vec![
                StoredServer {
                    server: server("s-1", ServerStatus::Active),
                    pending: None,
                },
                StoredServer {
                    server: server("s-2", ServerStatus::Build),
                    pending: Some(StoredChange::Becomes {
                        at: 1_700_000_000.25,
                        status: ServerStatus::Error,
                    }),
                },
                StoredServer {
                    server: server("s-3", ServerStatus::Deleting),
                    pending: Some(StoredChange::Disappears {
                        at: 1_700_000_001.5,
                    }),
                },
            ],
            images: vec![FakeImage {
                id: "i-1".into(),
                name: "image".into(),
                status: "READY".into(),
                metadata: [("k".to_string(), "v".to_string())].into(),
            }],
        }
    }

    #[test]
    fn a_missing_file_is_an_empty_start() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = SharedStateFile::open(&dir.path().join("absent.json")).expect("open");
        let held = file.lock().expect("lock");
        assert_eq!(file.load_if_changed(&held, None), Ok(Loaded::Missing));
    }

    #[test]
    fn save_then_load_round_trips_and_leaves_only_the_lock_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = SharedStateFile::open(&dir.path().join("cloud.json")).expect("open");
        let held = file.lock().expect("lock");
        file.save(&held, &document()).expect("save");
        assert_eq!(
            file.load_if_changed(&held, None),
            Ok(Loaded::Changed(document()))
        );
        let mut names: Vec<_> = std::fs::read_dir(dir.path())
            .expect("list")
            .filter_map(Result::ok)
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(
            names,
            vec!["cloud.json", "cloud.json.lock"],
            "no temporary file is left"
        );
    }

    #[test]
    fn the_same_version_is_not_read_again_and_another_one_is() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = SharedStateFile::open(&dir.path().join("cloud.json")).expect("open");
        let held = file.lock().expect("lock");
        file.save(&held, &document()).expect("save");
        let known = document().version();
        assert_eq!(
            file.load_if_changed(&held, Some(&known)),
            Ok(Loaded::Unchanged)
        );
        assert_eq!(
            file.load_if_changed(&held, Some(&known.next())),
            Ok(Loaded::Changed(document())),
            "any other generation is read"
        );
        let other_cloud = Version {
            cloud_id: "c2".into(),
            generation: 7,
        };
        assert_eq!(
            file.load_if_changed(&held, Some(&other_cloud)),
            Ok(Loaded::Changed(document())),
            "the same generation of a file made again is read"
        );
    }

    #[test]
    fn the_document_is_plain_json_with_servers_and_their_pending_changes() {
        let value = serde_json::to_value(document()).expect("encode");
        assert_eq!(value["generation"], 7);
        assert_eq!(value["servers"][0]["id"], "s-1");
        assert_eq!(value["servers"][0]["status"], "ACTIVE");
        assert!(value["servers"][0].get("pending").is_none());
        assert_eq!(
            value["servers"][1]["pending"],
            serde_json::json!({"becomes": {"at": 1_700_000_000.25, "status": "ERROR"}})
        );
        assert_eq!(
            value["servers"][2]["pending"],
            serde_json::json!({"disappears": {"at": 1_700_000_001.5}})
        );
        // A document written before versions and pending changes still reads.
        let old = r#"{"servers": [], "images": []}"#;
        let parsed: StateDocument = serde_json::from_str(old).expect("old document");
        assert_eq!(
            parsed.version(),
            Version {
                cloud_id: String::new(),
                generation: 0
            }
        );
    }

    #[test]
    fn a_corrupt_file_is_an_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("cloud.json");
        std::fs::write(&path, "{not json").expect("write");
        let file = SharedStateFile::open(&path).expect("open");
        let held = file.lock().expect("lock");
        assert!(file.load_if_changed(&held, None).is_err());
        assert!(
            file.load_if_changed(&held, Some(&document().version()))
                .is_err()
        );
    }

    #[test]
    fn the_lock_excludes_another_handle_until_released() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("cloud.json");
        let first = SharedStateFile::open(&path).expect("first");
        let second = SharedStateFile::open(&path).expect("second");
        let held = first.lock().expect("lock");
        assert!(
            matches!(
                second.lock_file.try_lock(),
                Err(std::fs::TryLockError::WouldBlock)
            ),
            "another open file (as another process has) must wait"
        );
        drop(held);
        second.lock_file.try_lock().expect("free once released");
    }
}
