//! The ZooKeeper-shaped primitives every backend provides.
//!
//! Backends know nothing of Nodepool: paths, JSON and locks are built on these primitives
//! once, in this crate, so the embedded SQLite store and ZooKeeper behave alike.

use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::{mpsc, watch};

use crate::write_through::WriteThrough;

/// Metadata of one znode, as ZooKeeper reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Stat {
    /// Transaction id that created the znode.
    pub czxid: i64,
    /// Transaction id of the last data change.
    pub mzxid: i64,
    /// Creation time, milliseconds since the epoch.
    pub ctime_ms: i64,
    /// Last modification time, milliseconds since the epoch.
    pub mtime_ms: i64,
    /// Data version, incremented by every `set`.
    pub version: i32,
    /// Child version, incremented by every child create and delete. (Sequence suffixes
    /// count creates only.)
    pub cversion: i32,
    /// Session id of the owner for ephemeral znodes, 0 otherwise.
    pub ephemeral_owner: i64,
    pub num_children: i32,
    pub data_length: i32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CreateMode {
    Persistent,
    Ephemeral,
    PersistentSequential,
    EphemeralSequential,
}

impl CreateMode {
    pub fn is_ephemeral(self) -> bool {
        matches!(
            self,
            CreateMode::Ephemeral | CreateMode::EphemeralSequential
        )
    }

    pub fn is_sequential(self) -> bool {
        matches!(
            self,
            CreateMode::PersistentSequential | CreateMode::EphemeralSequential
        )
    }
}

/// Errors callers branch on, named as ZooKeeper names them.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum StoreError {
    #[error("no node at {0}")]
    NoNode(String),
    #[error("node already exists at {0}")]
    NodeExists(String),
    #[error("version conflict at {0}")]
    BadVersion(String),
    #[error("node at {0} has children")]
    NotEmpty(String),
    #[error("ephemeral node at {0} cannot have children")]
    NoChildrenForEphemerals(String),
    #[error("invalid path {0:?}")]
    BadPath(String),
    /// The session ended: its ephemerals and locks are gone. Callers start a new epoch.
    #[error("session lost")]
    SessionLost,
    #[error("connection to the store is suspended")]
    Suspended,
    #[error("timed out")]
    Timeout,
    /// A znode holds data we cannot read (another writer's bug, or a newer format).
    #[error("malformed data at {path}: {reason}")]
    Malformed { path: String, reason: String },
    /// Anything else the backend reports (I/O, corruption, protocol errors).
    #[error("store backend error: {0}")]
    Backend(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// The state of this client's session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionState {
    Connected,
    /// Disconnected, but the session may still be alive (ZooKeeper SUSPENDED).
    Suspended,
    /// The session expired: ephemerals and locks are gone. A new session follows.
    Lost,
}

/// A change under a watched prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WatchEvent {
    Created(String),
    Changed(String),
    Deleted(String),
    /// Events may have been missed (reconnect, overflow): re-list everything under the prefix.
    Resync,
}

impl WatchEvent {
    pub fn path(&self) -> Option<&str> {
        match self {
            WatchEvent::Created(p) | WatchEvent::Changed(p) | WatchEvent::Deleted(p) => Some(p),
            WatchEvent::Resync => None,
        }
    }
}

/// One operation of a [`Backend::multi`] transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// Creates a znode (its parent must exist, or be created earlier in the same
    /// transaction). A sequential path may end in `/`, as for [`Backend::create`].
    Create {
        path: String,
        data: Vec<u8>,
        mode: CreateMode,
    },
    /// Sets data; with `version`, only if the current data version matches.
    Set {
        path: String,
        data: Vec<u8>,
        version: Option<i32>,
    },
    /// Deletes a znode without children; with `version`, only if it matches.
    Delete { path: String, version: Option<i32> },
    /// Fails the transaction unless the znode exists (and, with `version`, has that data
    /// version).
    Check { path: String, version: Option<i32> },
}

impl Op {
    pub fn create(path: impl Into<String>, data: impl Into<Vec<u8>>, mode: CreateMode) -> Op {
        Op::Create {
            path: path.into(),
            data: data.into(),
            mode,
        }
    }

    pub fn set(path: impl Into<String>, data: impl Into<Vec<u8>>, version: Option<i32>) -> Op {
        Op::Set {
            path: path.into(),
            data: data.into(),
            version,
        }
    }

    pub fn delete(path: impl Into<String>, version: Option<i32>) -> Op {
        Op::Delete {
            path: path.into(),
            version,
        }
    }

    pub fn check(path: impl Into<String>, version: Option<i32>) -> Op {
        Op::Check {
            path: path.into(),
            version,
        }
    }

    /// The path the operation names.
    pub fn path(&self) -> &str {
        match self {
            Op::Create { path, .. }
            | Op::Set { path, .. }
            | Op::Delete { path, .. }
            | Op::Check { path, .. } => path,
        }
    }

    /// Checks the path as the single-operation call would.
    pub fn validate(&self) -> StoreResult<()> {
        match self {
            Op::Create { path, mode, .. } => {
                let checked = if mode.is_sequential() && path.len() > 1 {
                    path.strip_suffix('/').unwrap_or(path)
                } else {
                    path
                };
                validate_path(checked)?;
                if path == "/" {
                    return Err(StoreError::NodeExists("/".into()));
                }
                Ok(())
            }
            Op::Delete { path, .. } => {
                validate_path(path)?;
                if path == "/" {
                    return Err(StoreError::BadPath("/".into()));
                }
                Ok(())
            }
            Op::Set { path, .. } | Op::Check { path, .. } => validate_path(path),
        }
    }
}

/// The result of one operation of a successful [`Backend::multi`], in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpResult {
    /// The created znode's actual path (with the sequence suffix for sequential modes).
    Created(String),
    /// The stat after the set.
    Set(Stat),
    Deleted,
    Checked,
}

impl OpResult {
    /// The created path, for a `Create` result.
    pub fn created_path(&self) -> Option<&str> {
        match self {
            OpResult::Created(path) => Some(path),
            _ => None,
        }
    }
}

/// A persistent recursive watch: every change at or under a prefix, in order.
#[derive(Debug)]
pub struct Watch {
    pub events: mpsc::UnboundedReceiver<WatchEvent>,
}

/// ZooKeeper-shaped operations. Paths are absolute (`/nodepool/nodes/0000000001`) and
/// relative to the backend's chroot.
#[async_trait]
pub trait Backend: Send + Sync + std::fmt::Debug {
    async fn get(&self, path: &str) -> StoreResult<Option<(Vec<u8>, Stat)>>;

    async fn exists(&self, path: &str) -> StoreResult<Option<Stat>>;

    /// Creates a znode and returns its actual path (with the sequence suffix for sequential
    /// modes). With `make_parents`, missing ancestors are created persistent and empty.
    async fn create(
        &self,
        path: &str,
        data: &[u8],
        mode: CreateMode,
        make_parents: bool,
    ) -> StoreResult<String>;

    /// Sets data; with `version`, only if the current data version matches.
    async fn set(&self, path: &str, data: &[u8], version: Option<i32>) -> StoreResult<Stat>;

    /// Deletes a znode without children; with `version`, only if it matches.
    async fn delete(&self, path: &str, version: Option<i32>) -> StoreResult<()>;

    /// Runs `ops` as one transaction (ZooKeeper `multi`: one request, one zxid): either every operation takes effect, in order, or none does and
    /// the first failing operation's error is returned (named as the single-operation call
    /// names it). Each operation sees the effects of the ones before it. Watchers see one
    /// event per operation. An empty list does nothing.
    ///
    /// The default refuses, so a wrapper that does not forward it fails loudly rather than
    /// losing atomicity.
    async fn multi(&self, ops: Vec<Op>) -> StoreResult<Vec<OpResult>> {
        let _ = ops;
        Err(StoreError::Backend(
            "this backend does not support multi-operation transactions".into(),
        ))
    }

    /// Child names (not paths), in no particular order.
    async fn children(&self, path: &str) -> StoreResult<Vec<String>>;

    /// Every change at or under `prefix` from now on.
    async fn watch(&self, prefix: &str) -> StoreResult<Watch>;

    /// Resolves when the znode at `path` is deleted (or already absent), or after `timeout`.
    /// Returns whether it is gone.
    async fn wait_deleted(&self, path: &str, timeout: Option<Duration>) -> StoreResult<bool>;

    fn session_state(&self) -> watch::Receiver<SessionState>;

    /// The current session id (owner of our ephemerals).
    fn session_id(&self) -> i64;

    /// Ends the session: our ephemerals disappear at once.
    async fn close(&self) -> StoreResult<()>;

    /// The [`WriteThrough`] layer, when this backend is one: caches started on it register
    /// to see this process's own writes.
    fn write_through(&self) -> Option<&WriteThrough> {
        None
    }
}

/// Whether a recursive watch on `prefix` sees a change at `path`.
pub(crate) fn covers(prefix: &str, path: &str) -> bool {
    prefix == "/"
        || path == prefix
        || (path.starts_with(prefix) && path.as_bytes().get(prefix.len()) == Some(&b'/'))
}

/// Checks a path the way ZooKeeper does: absolute, no empty or relative components.
pub fn validate_path(path: &str) -> StoreResult<()> {
    let ok = path == "/"
        || (path.starts_with('/')
            && !path.ends_with('/')
            && path[1..].split('/').all(|part| {
                !part.is_empty() && part != "." && part != ".." && !part.contains('\0')
            }));
    if ok {
        Ok(())
    } else {
        Err(StoreError::BadPath(path.to_string()))
    }
}

/// The parent of an absolute path (`/` for top-level znodes).
pub fn parent_of(path: &str) -> &str {
    match path.rfind('/') {
        Some(0) | None => "/",
        Some(i) => &path[..i],
    }
}

/// Joins a parent and a child name.
pub fn join(parent: &str, child: &str) -> String {
    if parent == "/" {
        format!("/{child}")
    } else {
        format!("{parent}/{child}")
    }
}
