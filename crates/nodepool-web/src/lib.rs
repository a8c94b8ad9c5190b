//! What Nodepool shows people and scripts, for the `nodepool` CLI and (later) the webapp.
//!
//! [`status`] holds the shared views: pure functions from records to [`status::Table`]s,
//! and the renderers that print them exactly as Nodepool 11 does (PrettyTable text, the
//! webapp's JSON) plus our full-record JSON for `--json`. No I/O here: callers read the
//! store and pass plain data in.

#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod status;
