//! What the launcher and builder ask of a cloud (DESIGN.md section 5, spec section 7).
//!
//! A [`Driver`] turns a provider section of the configuration into a [`Provider`]. A provider
//! creates and deletes instances through explicit state machines ([`CreateMachine`],
//! [`DeleteMachine`]) whose `advance` does one short step, lists what exists in the cloud with
//! the `nodepool_*` metadata so leaks can be found, and tells the launcher its quota. Drivers
//! never see the store: the launcher owns every node record and writes what a step returns.
//!
//! [`nodescan`] is the shared "is the node reachable, and what are its host keys" step.

pub mod command;
pub mod durable;
mod error;
mod instance;
pub mod node_network;
pub mod nodescan;
mod provider;
mod quota;
mod request_format;
mod stderr_tail;

pub use error::DriverError;
pub use instance::{ConnectionCredentials, Instance, Metadata, Resource, metadata_keys};
pub use provider::{
    CreateMachine, CreateSpec, DeleteMachine, Driver, DriverRegistry, ImageUploadSpec, Provider,
    run_delete_machine,
};
pub use quota::Quota;
pub use request_format::{
    FormatError, RequestAttributes, format_dynamic_entries, format_request_template,
};
pub use stderr_tail::stderr_tail;
