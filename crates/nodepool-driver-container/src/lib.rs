//! The container driver (`driver: container`): a fast local cloud on this machine.
//!
//! A node is a container made from an image the builder uploaded as a `tar` of a Debian root
//! file system:
//!
//! * [`image`]: uploads are unpacked once into `<image-dir>/<name>/rootfs`, the read-only
//!   lower layer all nodes of the image share.
//! * `machines`: a node is an overlayfs mount (`<state-dir>/np<id>/merged`) with the
//!   provider's SSH key injected and fresh host keys, run by `runc` ([`runtime`]) from an OCI
//!   bundle ([`bundle`]): sshd as PID 1 of its own user, mount, PID, IPC, UTS, cgroup and
//!   network namespaces, root mapped to an unprivileged range of this machine ([`idmap`]),
//!   default capabilities, a seccomp filter and cgroup limits. Its network namespace is
//!   joined to this machine by a veth pair with a /30 from `subnet` and guarded by the node
//!   firewall (`nodepool_driver::node_network`). Containers are detached from the launcher
//!   and survive a restart. The instance reports the host keys, so the launcher needs no key
//!   scan.
//! * [`ContainerProvider`]: listings (every node directory with its `metadata.json`, so the
//!   launcher finds leaks by node id), quota (the host's CPUs and RAM; labels' `cores` and
//!   `ram`) and console logs.
//!
//! The driver runs only as root on Linux, with `runc`, `nftables`, `iproute2`, `mount`,
//! `openssh-client` and `tar`; otherwise every operation fails with a `Fatal` error naming
//! what is missing.

pub mod bundle;
mod driver;
pub mod host;
pub mod idmap;
pub mod image;
mod machines;
pub mod node_dir;
mod provider;
pub mod rootfs;
pub mod runtime;

pub use driver::ContainerDriver;
pub use machines::{ContainerCreateMachine, ContainerDeleteMachine};
/// Addresses and link names, shared with the qemu driver.
pub use nodepool_driver::node_network::address;
pub use provider::ContainerProvider;
