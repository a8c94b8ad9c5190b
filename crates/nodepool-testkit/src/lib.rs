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
//!
//! [`zuul::ZuulClient`] plays Zuul on the wire (spec 1.10) over any store backend: it
//! submits node requests, waits for them, accepts, uses, returns and autoholds nodes.
//! [`wait`] holds deadline-bounded waits on store watches, cache changes or (only when
//! nothing can be watched) polling.
//!
//! [`load`] runs Zuul-protocol jobs from many workers at once and tallies them (benchmarks,
//! fault tests).
//!
//! [`fixture`] loads nodepool-web's golden fixture into a store; [`http`] is a tiny HTTP/1.1
//! client that shows responses byte for byte (webapp tests).
//!
//! [`SshdHost`] runs a real OpenSSH server in its own network namespace with fresh host keys,
//! standing in for a static host or a booted node (root, `iproute2` and `openssh-server`
//! needed; see the `sshd` module).

mod certificates;
pub mod fake_dib;
pub mod fixture;
pub mod http;
pub mod images;
pub mod load;
pub mod log_errors;
mod proxy;
mod sshd;
pub mod wait;
mod zookeeper;
pub mod zuul;

pub use certificates::ClientTls;
pub use proxy::TcpProxy;
pub use sshd::{SshdError, SshdHost};
pub use zookeeper::{ServerOptions, StartError, ZooKeeperEnsemble, ZooKeeperServer};
pub use zuul::{NodeSet, RequestOptions, ZuulClient, ZuulError};
