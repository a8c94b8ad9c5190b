//! The network of local nodes (the `container` and `qemu` drivers): addresses, the veth pair
//! that joins each node's namespace to this machine, and the firewall that keeps nodes from
//! reaching this machine or each other while they reach the world through NAT.

pub mod address;
pub mod dns;
pub mod firewall;
pub mod links;

pub use address::{
    AddressPair, Leases, NodeKind, Subnet, VETH_PREFIX, first_free_block, host_link_name,
    link_address, namespace_name,
};
