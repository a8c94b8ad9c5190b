//! Helpers for tests that need real services, starting with a real ZooKeeper server.
//!
//! [`ZooKeeperServer`] runs Apache ZooKeeper 3.8 from Debian's packages as a child `java`
//! process with its own temporary directory (config, data, log, certificates) on free
//! loopback ports, optionally with a TLS port that requires client certificates, as
//! Nodepool's production setup does. Tests that use it fail (they do not skip) when
//! ZooKeeper is missing.
//!
//! # Requirements
//!
//! On Debian 12: `apt-get install zookeeper openssl` (`scripts/setup.sh` does it).
//! `zookeeper` pulls in `libzookeeper-java` (the jars), `libnetty-java` (the TLS transport),
//! `libslf4j-java` (logging) and `default-jre`; `openssl` generates the throwaway
//! certificates. Nothing is read from `/etc/zookeeper`: each server gets its own `zoo.cfg`.
//!
//! [`TcpProxy`] sits between one client and a server so a test can cut that client off
//! (a network partition) and let it back in.

mod certificates;
mod proxy;
mod zookeeper;

pub use certificates::ClientTls;
pub use proxy::TcpProxy;
pub use zookeeper::{ServerOptions, StartError, ZooKeeperServer};
