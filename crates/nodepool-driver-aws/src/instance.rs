//! EC2 instances as the launcher sees them.

use aws_sdk_ec2::types::Instance as Ec2Instance;
use nodepool_driver::{Instance, Quota};
use nodepool_model::ExternalId;
use serde_json::{Map, Value};

use crate::tags::ec2_tag_map;

/// The addresses of an instance, from its description.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Addresses {
    pub public_ipv4: Option<String>,
    pub private_ipv4: Option<String>,
    /// The first IPv6 address of the first network interface (AWS IPv6 addresses are
    /// globally routable, so Nodepool calls it public).
    pub public_ipv6: Option<String>,
}

impl Addresses {
    pub fn of(instance: &Ec2Instance) -> Addresses {
        let public_ipv6 = instance
            .network_interfaces()
            .first()
            .and_then(|nic| nic.ipv6_addresses().first())
            .and_then(|a| a.ipv6_address())
            .map(str::to_string);
        Addresses {
            public_ipv4: instance.public_ip_address().map(str::to_string),
            private_ipv4: instance.private_ip_address().map(str::to_string),
            public_ipv6,
        }
    }

    /// The address nodepool and Zuul connect to: public IPv4, else IPv6, else private IPv4
    /// (the launcher swaps in the private one for `use-internal-ip`).
    pub fn interface_ip(&self) -> Option<String> {
        self.public_ipv4
            .clone()
            .or_else(|| self.public_ipv6.clone())
            .or_else(|| self.private_ipv4.clone())
    }
}

/// `{"instance": id}` (plus `"host"` for a dedicated host), Nodepool's AWS external id.
pub fn external_id(instance_id: &str, host_id: Option<&str>) -> ExternalId {
    let mut fields = Map::new();
    fields.insert("instance".into(), Value::String(instance_id.into()));
    if let Some(host) = host_id {
        fields.insert("host".into(), Value::String(host.into()));
    }
    ExternalId::Fields(fields)
}

/// The instance and dedicated host ids in an external id; a plain string is a legacy
/// instance id.
pub fn parse_external_id(external_id: &ExternalId) -> (Option<String>, Option<String>) {
    match external_id {
        ExternalId::Id(id) => (Some(id.clone()), None),
        ExternalId::Fields(fields) => {
            let get = |key: &str| fields.get(key).and_then(Value::as_str).map(str::to_string);
            (get("instance"), get("host"))
        }
    }
}

/// What the launcher copies onto the node for a described instance.
pub struct InstanceFacts<'a> {
    pub region: &'a str,
    pub host_id: Option<&'a str>,
    pub resources: Option<Quota>,
    /// `node_properties`: whether the fleet API and spot were used (only known for
    /// instances we create).
    pub fleet_and_spot: Option<(bool, bool)>,
}

pub fn instance(ec2: &Ec2Instance, facts: InstanceFacts<'_>) -> Instance {
    let addresses = Addresses::of(ec2);
    let node_properties = facts.fleet_and_spot.map(|(fleet, spot)| {
        let mut props = Map::new();
        props.insert("fleet".into(), Value::Bool(fleet));
        props.insert("spot".into(), Value::Bool(spot));
        props
    });
    Instance {
        external_id: ec2.instance_id().map(|id| external_id(id, facts.host_id)),
        interface_ip: addresses.interface_ip(),
        public_ipv4: addresses.public_ipv4,
        private_ipv4: addresses.private_ipv4,
        public_ipv6: addresses.public_ipv6,
        private_ipv6: None,
        cloud: Some("AWS".into()),
        region: Some(facts.region.to_string()),
        az: ec2
            .placement()
            .and_then(|p| p.availability_zone())
            .map(str::to_string),
        host_id: None,
        driver_data: Value::Null,
        slot: None,
        node_properties,
        metadata: ec2_tag_map(ec2.tags()),
        resources: facts.resources,
        ..Instance::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interface_ip_prefers_public_v4_then_v6_then_private() {
        let mut a = Addresses {
            public_ipv4: Some("203.0.113.5".into()),
            private_ipv4: Some("10.0.0.5".into()),
            public_ipv6: Some("2001:db8::5".into()),
        };
        assert_eq!(a.interface_ip().as_deref(), Some("203.0.113.5"));
        a.public_ipv4 = None;
        assert_eq!(a.interface_ip().as_deref(), Some("2001:db8::5"));
        a.public_ipv6 = None;
        assert_eq!(a.interface_ip().as_deref(), Some("10.0.0.5"));
        a.private_ipv4 = None;
        assert_eq!(a.interface_ip(), None);
    }

    #[test]
    fn external_ids_are_dicts_and_legacy_strings_are_instances() {
        let id = external_id("i-123", Some("h-9"));
        assert_eq!(
            parse_external_id(&id),
            (Some("i-123".into()), Some("h-9".into()))
        );
        assert_eq!(
            parse_external_id(&ExternalId::Id("i-7".into())),
            (Some("i-7".into()), None)
        );
    }
}
