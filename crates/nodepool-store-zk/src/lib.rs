//! The store's ZooKeeper backend: [`nodepool_store::Backend`] on a real ensemble, so our
//! daemons share state (nodes, requests, images, locks) with Zuul and Python Nodepool.
//!
//! Built on the async `zookeeper-client` crate. Needs ZooKeeper >= 3.6 (persistent recursive
//! watches, as Nodepool's own caches use).
//!
//! * [`ZooKeeperOptions`] mirrors `nodepool.yaml`: servers, one chroot, `zookeeper-tls`
//!   (client certificate, key and CA as PEM files) and `zookeeper-timeout`.
//! * [`ZooKeeperBackend::connect`] retries until a deadline and then fails with a
//!   [`ConnectError`]; daemons loop on it as Nodepool retries forever.
//! * Sessions are epochs. ZooKeeper's "disconnected" is [`nodepool_store::SessionState::Suspended`]
//!   (the session, its ephemerals and locks may survive); "expired" is `Lost`, after which a
//!   supervisor task opens a new session, re-registers every live watch on it and sends each
//!   watcher a `Resync`, since changes in between were not seen.
//!
//! Architecture Invariant: this is the only crate that knows ZooKeeper's client API.

mod backend;
mod epochs;
mod options;

pub use backend::ZooKeeperBackend;
pub use options::{ConnectError, ZooKeeperOptions, ZooKeeperTls};
