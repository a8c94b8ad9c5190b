//! The aws driver (spec 4.5, 7.7): EC2 instances for nodepool labels.
//!
//! * [`AwsDriver`] builds an [`AwsProvider`] per `driver: aws` provider; no AWS call is made
//!   until the provider is used (credentials load on first use).
//! * `plan.rs` turns a label and a create spec into a [`plan::LaunchPlan`] (pure);
//!   `machines.rs` drives it through `RunInstances` (or `CreateFleet`, or a dedicated host
//!   first) one call per step; `cloud.rs` holds the SDK clients, rate limits and caches and
//!   makes every call; `errors.rs` maps AWS errors to `DriverError` kinds.
//! * `quota.rs`: vCPU service-quota codes per instance family, EBS codes per volume type,
//!   and the provider's limits from the account's service quotas (pure).
//! * `upload.rs`: image import by EBS direct, `ImportSnapshot` or `ImportImage`.
//! * Everything made is tagged with the nodepool metadata (`Name=np<id>` on instances), so
//!   `list_resources` finds hosts, instances, volumes, AMIs, snapshots and S3 objects that
//!   leaked.

mod cloud;
mod driver;
pub mod errors;
mod instance;
mod machines;
pub mod plan;
mod provider;
pub mod quota;
pub mod tags;
mod upload;

#[cfg(feature = "testing")]
pub mod testing;

pub use cloud::{AwsCloud, Clients, Connection};
pub use driver::AwsDriver;
pub use instance::{Addresses, external_id, parse_external_id};
pub use machines::{AwsCreateMachine, AwsDeleteMachine};
pub use provider::{AwsProvider, resource_kinds};
pub use upload::{EBS_BLOCK_SIZE, ebs_block, size_in_gib};
