//! Nodepool's `driver: openstack` (spec 4.5, 7.2, 7.3) over the OpenStack HTTP APIs, with no
//! SDK: Keystone v3 (password or application credential) and its catalog, Nova servers,
//! Neutron networks, ports and floating IPs, Glance images.
//!
//! * `clouds.rs`: clouds.yaml lookup as openstacksdk does it.
//! * `client.rs`: tokens, catalog, `rate`, errors typed as `DriverError`, pagination.
//! * `cloud.rs`: the calls the driver makes, with caches (flavors, networks, images, a shared
//!   server list at most a second old so many machines cost one listing).
//! * `machines.rs`: the create and delete state machines.
//! * `provider.rs`, `driver.rs`: the provider contract.
//! * `upload.rs`: Glance uploads.
//! * `decide.rs`: the pure decisions (flavor, addresses, quota, errors).
//! * `wire.rs`: the API JSON the driver reads.

mod client;
mod cloud;
pub mod clouds;
pub mod decide;
mod driver;
mod machines;
mod provider;
pub mod testing;
mod upload;
pub mod wire;

pub use client::{OpenStackClient, Reply, Service};
pub use cloud::CloudApi;
pub use driver::OpenStackDriver;
pub use machines::{ImageRef, ServerPlan};
pub use provider::{OpenStackProvider, ProviderOptions};
pub use upload::file_checksums;
