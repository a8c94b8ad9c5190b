//! The parts of the OpenStack APIs' JSON the driver reads. Readers are tolerant: unknown
//! keys are ignored and missing optional ones default.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

/// A Nova server (`GET /servers/detail`, `GET /servers/{id}`).
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
pub struct Server {
    pub id: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub status: String,
    #[serde(default, deserialize_with = "string_map")]
    pub metadata: BTreeMap<String, String>,
    #[serde(default, deserialize_with = "null_default")]
    pub addresses: BTreeMap<String, Vec<Address>>,
    #[serde(default, rename = "hostId")]
    pub host_id: String,
    #[serde(default, rename = "OS-EXT-AZ:availability_zone")]
    pub availability_zone: Option<String>,
    /// `{"id"}` before microversion 2.47, the flavor's fields (`vcpus`, `ram`,
    /// `original_name`) from 2.47 on.
    #[serde(default)]
    pub flavor: Value,
    #[serde(default)]
    pub fault: Option<Fault>,
    #[serde(default, rename = "accessIPv4")]
    pub access_ipv4: Option<String>,
    #[serde(default, rename = "accessIPv6")]
    pub access_ipv6: Option<String>,
    #[serde(default, rename = "os-extended-volumes:volumes_attached")]
    pub volumes_attached: Vec<Value>,
}

/// One address of a server on one network.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
pub struct Address {
    pub addr: String,
    #[serde(default)]
    pub version: u8,
    /// `fixed` or `floating`.
    #[serde(default, rename = "OS-EXT-IPS:type")]
    pub kind: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
pub struct Fault {
    #[serde(default)]
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
pub struct Flavor {
    pub id: String,
    pub name: String,
    /// MiB.
    pub ram: i64,
    pub vcpus: i64,
    /// GB.
    #[serde(default)]
    pub disk: i64,
}

/// A Glance v2 image; custom properties are top-level keys of the image.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
pub struct Image {
    pub id: String,
    #[serde(default, deserialize_with = "null_default")]
    pub name: String,
    #[serde(default)]
    pub status: String,
    /// Glance's MD5 of the data.
    #[serde(default)]
    pub checksum: Option<String>,
    #[serde(flatten)]
    pub properties: BTreeMap<String, Value>,
}

impl Image {
    /// The string-valued properties (nodepool tags and `meta`).
    pub fn metadata(&self) -> BTreeMap<String, String> {
        self.properties
            .iter()
            .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string())))
            .collect()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
pub struct Network {
    pub id: String,
    #[serde(default, deserialize_with = "null_default")]
    pub name: String,
    #[serde(default, rename = "router:external")]
    pub external: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
pub struct Port {
    pub id: String,
    #[serde(default)]
    pub network_id: String,
    #[serde(default)]
    pub status: String,
    #[serde(default, deserialize_with = "null_default")]
    pub device_owner: String,
    #[serde(default, deserialize_with = "null_default")]
    pub device_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
pub struct FloatingIp {
    pub id: String,
    #[serde(default)]
    pub floating_ip_address: String,
    #[serde(default)]
    pub port_id: Option<String>,
    #[serde(default)]
    pub status: String,
}

fn null_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// Nova metadata values are strings; anything else is kept as its JSON text.
fn string_map<'de, D>(d: D) -> Result<BTreeMap<String, String>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    let raw = Option::<BTreeMap<String, Value>>::deserialize(d)?.unwrap_or_default();
    Ok(raw
        .into_iter()
        .map(|(k, v)| match v {
            Value::String(s) => (k, s),
            other => (k, other.to_string()),
        })
        .collect())
}

/// Parses a list under `key` of a response body, skipping entries that do not parse (one
/// odd server must not hide the others).
pub fn list<T: for<'de> Deserialize<'de>>(body: &Value, key: &str) -> Vec<T> {
    match body.get(key) {
        Some(Value::Array(items)) => self::items(items),
        _ => Vec::new(),
    }
}

/// Parses listed items, skipping those that do not parse.
pub fn items<T: for<'de> Deserialize<'de>>(items: &[Value]) -> Vec<T> {
    items
        .iter()
        .filter_map(|item| match T::deserialize(item) {
            Ok(v) => Some(v),
            Err(e) => {
                tracing::warn!(error = %e, "skipping an entry the driver cannot read");
                None
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_detail_parses_with_nulls_and_microversion_flavor() {
        let body = serde_json::json!({"servers": [{
            "id": "abc", "name": "np0000000001", "status": "ACTIVE",
            "metadata": {"nodepool_node_id": "0000000001"},
            "addresses": {"public": [{"addr": "127.43.0.5", "version": 4, "OS-EXT-IPS:type": "fixed"}]},
            "hostId": "h", "OS-EXT-AZ:availability_zone": "nova",
            "flavor": {"vcpus": 1, "ram": 512, "original_name": "m1.tiny"},
            "accessIPv4": "", "fault": null
        }, {"id": "def", "addresses": null, "metadata": null}, {"no": "id"}]});
        let servers: Vec<Server> = list(&body, "servers");
        assert_eq!(servers.len(), 2);
        assert_eq!(servers[0].metadata["nodepool_node_id"], "0000000001");
        assert_eq!(
            servers[0].addresses["public"][0].kind.as_deref(),
            Some("fixed")
        );
        assert_eq!(servers[0].availability_zone.as_deref(), Some("nova"));
        assert_eq!(servers[0].flavor["ram"], 512);
        assert!(servers[1].addresses.is_empty());
    }

    #[test]
    fn image_properties_are_metadata() {
        let body = serde_json::json!({"images": [{"id": "i", "name": "n", "status": "active",
            "checksum": "c", "nodepool_build_id": "0000000001", "tags": [], "size": 5}]});
        let images: Vec<Image> = list(&body, "images");
        assert_eq!(images[0].metadata()["nodepool_build_id"], "0000000001");
        assert!(!images[0].metadata().contains_key("size"));
    }
}
