//! What a cloud reports about the things nodepool made in it.

use std::collections::BTreeMap;

use nodepool_model::ExternalId;
use serde_json::Value;

use crate::quota::Quota;

/// Tags every cloud resource carries so leak cleanup can find it (spec 7.2).
pub type Metadata = BTreeMap<String, String>;

/// The `nodepool_*` metadata keys.
pub mod metadata_keys {
    pub const NODE_ID: &str = "nodepool_node_id";
    pub const POOL_NAME: &str = "nodepool_pool_name";
    pub const PROVIDER_NAME: &str = "nodepool_provider_name";
    pub const BUILD_ID: &str = "nodepool_build_id";
    pub const UPLOAD_ID: &str = "nodepool_upload_id";
}

/// One server/VM/container as the cloud sees it. When a create machine completes, the
/// launcher copies these fields onto the node; the optional connection fields override the
/// image's settings when present.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Instance {
    pub external_id: Option<ExternalId>,
    pub interface_ip: Option<String>,
    pub public_ipv4: Option<String>,
    pub private_ipv4: Option<String>,
    pub public_ipv6: Option<String>,
    pub private_ipv6: Option<String>,
    pub cloud: Option<String>,
    pub region: Option<String>,
    pub az: Option<String>,
    pub host_id: Option<String>,
    pub driver_data: Value,
    pub slot: Option<i64>,
    pub node_properties: Option<serde_json::Map<String, Value>>,
    pub metadata: Metadata,
    /// What the instance consumes of the provider's quota, when the cloud knows.
    pub resources: Option<Quota>,
    pub username: Option<String>,
    pub python_path: Option<String>,
    pub shell_type: Option<String>,
    pub connection_port: Option<u16>,
    /// A dict `connection_port`: the credentials Zuul connects with (kubernetes writes the
    /// namespace's service-account token, CA, server and names here). The launcher writes it
    /// as the node's `connection_port` in place of a port number.
    pub connection_credentials: Option<ConnectionCredentials>,
    pub connection_type: Option<String>,
    /// Host keys the driver already knows (skips the scan's key gathering).
    pub host_keys: Option<Vec<String>>,
}

impl Instance {
    /// The node id in the instance's metadata, if nodepool made it.
    pub fn node_id(&self) -> Option<&str> {
        self.metadata
            .get(metadata_keys::NODE_ID)
            .map(String::as_str)
    }

    pub fn provider_name(&self) -> Option<&str> {
        self.metadata
            .get(metadata_keys::PROVIDER_NAME)
            .map(String::as_str)
    }
}

/// A dict `connection_port`. Its `Debug` names the keys only: it holds a token.
#[derive(Clone, PartialEq, Default)]
pub struct ConnectionCredentials(pub serde_json::Map<String, Value>);

impl std::fmt::Debug for ConnectionCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map()
            .entries(self.0.keys().map(|key| (key, "<hidden>")))
            .finish()
    }
}

/// Anything in a cloud that can leak: an instance, a volume, an image, a port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resource {
    /// A statsd-safe singular word (`instance`, `volume`, `image`); the leak counter is
    /// `nodepool.provider.<p>.leaked.<kind>s`.
    pub kind: String,
    /// The cloud's id for it.
    pub id: String,
    pub metadata: Metadata,
}
