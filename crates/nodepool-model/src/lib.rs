//! The Nodepool data model: ids, states, records, and their ZooKeeper JSON.
//!
//! A drop-in replacement for Nodepool 11 shares ZooKeeper with Zuul and with
//! Python Nodepool processes, so the JSON it writes must be the JSON they
//! write, and it must read whatever they write. This crate holds:
//!
//! * plain domain types with no serde derives: [`Node`], [`NodeRequest`],
//!   [`ImageBuild`], [`ImageUpload`], [`Component`], their state enums
//!   ([`states`]) and the ids found in znode paths ([`ids`], [`lock`]);
//! * the wire format in [`wire`]: one module per znode document with
//!   `from_json`/`to_json`, tolerant readers and byte-exact writers;
//! * [`python_json`]: JSON printed exactly like Python's `json.dumps`.
//!
//! Architecture invariant: no I/O here. The store reads and writes bytes;
//! this crate only converts them. Ids are not stored inside documents
//! (Nodepool takes them from the path), so domain values carry no id.

// Tests may unwrap: a panic there is a test failure with a backtrace.
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod component;
pub mod ids;
pub mod image;
pub mod lock;
pub mod node;
pub mod python_json;
pub mod request;
pub mod states;
pub mod unicode;
mod unicode_tables;
pub mod wire;
pub mod workers;

pub use component::{Component, ComponentRole, PoolDetails};
pub use ids::{BuildId, ComponentName, IdError, NodeId, RequestId, UploadId};
pub use image::{ImageBuild, ImageUpload};
pub use lock::LockContender;
pub use node::{ConnectionPort, ExternalId, Node};
pub use request::{NodeRequest, RequestPriority};
pub use states::{BuildState, ComponentKind, ComponentState, NodeState, RequestState, UploadState};
pub use wire::{DocumentKind, WireError};
