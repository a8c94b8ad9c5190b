//! The store: Nodepool's ZooKeeper data model over a small backend trait.
//!
//! [`Backend`] offers ZooKeeper-shaped primitives; [`SqliteBackend`] implements them in one
//! SQLite file for single-machine use, and the ZooKeeper backend (its own crate) on a real
//! ensemble. The [`Store`] handle builds everything else (paths, JSON, the kazoo lock
//! recipe) on those primitives once. [`testing`] is the conformance suite every backend
//! must pass.

mod backend;
pub mod bench;
mod cache;
mod components;
mod images;
pub mod lock;
mod nodes;
pub mod paths;
mod requests;
mod sqlite;
pub mod staleness;
mod store;
pub mod testing;
pub mod unreadable;
mod versioned;
mod write_through;

pub use backend::{
    Backend, CreateMode, Op, OpResult, SessionState, Stat, StoreError, StoreResult, Watch,
    WatchEvent, join, parent_of, validate_path,
};
pub use cache::{Audit, CacheOptions, Changes, Entry, ExistenceOnly, TreeCache};
pub use components::{Components, Registered, Registration};
pub use images::Images;
pub use lock::{Lock, LockDir, LockParent, LockWait, retry_suspended};
pub use nodes::Nodes;
pub use requests::Requests;
pub use sqlite::{SqliteBackend, SqliteOptions};
pub use store::Store;
pub use versioned::Versioned;
pub use write_through::WriteThrough;
