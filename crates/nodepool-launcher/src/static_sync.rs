//! Static providers (spec 7.5): configured hosts registered as READY nodes, one per
//! `max-parallel-jobs` slot; re-registered after use, deregistered when dropped from the
//! configuration.

use nodepool_model::Node;

use crate::context::Context;
use crate::providers::ProviderRuntime;

/// Brings the provider's nodes in line with its configuration.
pub async fn sync(_ctx: &Context, _rt: &ProviderRuntime, _at_start: bool) {}

/// Whether a static node may be handed out again (a liveness probe when host keys are
/// checked).
pub async fn check_reusable(_ctx: &Context, _rt: &ProviderRuntime, _node: &Node) -> bool {
    true
}
