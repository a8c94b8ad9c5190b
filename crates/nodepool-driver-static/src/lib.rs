//! The static driver (spec 7.5): hosts listed in the configuration, each offered as
//! `max-parallel-jobs` READY nodes ("slots").
//!
//! Drivers never see the store, so this crate only decides and checks; the launcher applies:
//!
//! * [`plan_slots`] (pure) maps a pool's configured hosts and the provider's existing node
//!   records to a [`SlotPlan`]: slots to register, nodes to deregister, nodes to update in
//!   place at start.
//! * [`check_host`] is Nodepool's `checkHost`: reachability and host keys before a slot is
//!   registered; [`check_reusable`] is the cheaper check before a READY node is handed out.
//! * [`registration_node`] builds the READY record for a slot, [`update_from_config`] rewrites
//!   a READY record in place, and [`resolve_public_address`] fills `public_ipv4`/`public_ipv6`.

mod check;
mod plan;
mod registration;

pub use check::{StaticHostError, check_host, check_reusable, node_tuple_text};
pub use plan::{NodeTuple, SlotPlan, SlotRegistration, SlotUpdate, plan_slots};
pub use registration::{
    LAUNCHER_NAME, PublicAddress, differs_from_config, registration_node, resolve_public_address,
    update_from_config,
};
