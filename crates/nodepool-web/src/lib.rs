//! What Nodepool shows people and scripts: the `nodepool` CLI's listings and the webapp.
//!
//! * [`status`]: the shared views, pure functions from records to [`status::Table`]s, and
//!   the renderers that print them exactly as Nodepool 11 does (PrettyTable text, the
//!   webapp's JSON) plus our full-record JSON for `--json` and `/api/`. No I/O.
//! * [`gather`]: reads the store into those records (the CLI and the webapp share it).
//! * [`server`]: the webapp: Nodepool's endpoints byte for byte, our `/api/`, `/metrics`
//!   and the dashboard.

#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod gather;
pub mod server;
pub mod status;
