//! The fake driver (spec 7.4): Nodepool's in-memory OpenStack-like cloud, used by tests and
//! scenario runs instead of a real cloud.
//!
//! * [`FakeCloud`] is the cloud: servers, images, two flavors, two availability zones, a
//!   quota, counters and injected faults (`fake-faults`: the first N calls of a kind, or a
//!   rate drawn from a seeded generator). With `fake-state` its servers and images live in a
//!   JSON file that several processes share under a file lock, as launchers share a real
//!   cloud, and that outlives a killed launcher.
//! * [`FakeProvider`] is the [`nodepool_driver::Provider`] over one cloud: the create and
//!   delete state machines, listings for leak cleanup, quota and image uploads.
//! * [`FakeDriver`] builds providers and keeps each provider's cloud by name, so a reloaded
//!   provider talks to the same cloud and tests can reach it with [`FakeDriver::cloud`].
//!
//! Every address is the literal `fake`, which `nodescan` recognises, so no network is used.

mod cloud;
mod driver;
mod fault_rng;
mod machines;
mod provider;
mod state_file;

pub use cloud::{
    AVAILABILITY_ZONES, FAKE_IMAGE_ID, FAKE_IMAGE_NAME, FakeCloud, FakeFlavor, FakeImage,
    FakeServer, FaultCounts, IPV6_NETWORK, NO_AUTO_IP_NETWORK, QUOTA_EXCEEDED, ServerRequest,
    ServerStatus, select_flavor,
};
pub use driver::FakeDriver;
pub use machines::{FakeCreateMachine, FakeDeleteMachine};
pub use provider::FakeProvider;
