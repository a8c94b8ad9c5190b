//! The driver's decisions as pure functions: error kinds, flavor choice, addresses, quota,
//! pagination links, token lifetimes.

use std::collections::{BTreeMap, HashSet};
use std::net::IpAddr;

use nodepool_driver::{DriverError, Quota};
use serde_json::Value;

use crate::wire::{Flavor, Server};

/// The message an OpenStack service put in an error body: Nova `{"forbidden": {"message"}}`,
/// Neutron `{"NeutronError": {"message"}}`, Keystone `{"error": {"message"}}`, Glance's
/// plain text; else the body itself, shortened.
pub fn error_message(body: &str) -> String {
    if let Ok(Value::Object(map)) = serde_json::from_str::<Value>(body) {
        if let Some(Value::String(m)) = map.get("message") {
            return m.clone();
        }
        for value in map.values() {
            if let Some(Value::String(m)) = value.get("message") {
                return m.clone();
            }
        }
    }
    let text = body.trim();
    let mut short: String = text.chars().take(300).collect();
    if short.len() < text.len() {
        short.push_str("...");
    }
    short
}

/// Whether a cloud's message says a quota ran out (Nodepool's tests on the text).
pub fn is_quota_message(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    m.contains("quota exceeded")
        || m.contains("number of ports exceeded")
        || (m.contains("exceeds") && m.contains("quota"))
}

/// The error for an HTTP failure of `what` (e.g. `POST compute /servers`).
pub fn classify(cloud: &str, what: &str, status: u16, body: &str) -> DriverError {
    let message = error_message(body);
    let text = format!("cloud {cloud}: {what}: HTTP {status}: {message}");
    if is_quota_message(&message) {
        return DriverError::Quota(text);
    }
    match status {
        404 => DriverError::NotFound(text),
        // 409: the server is busy (task state); 408/429/5xx: try again later.
        408 | 409 | 429 | 500..=599 => DriverError::Transient(text),
        _ => DriverError::Fatal(text),
    }
}

/// Nodepool's flavor choice: with `min-ram`, the smallest flavor (by RAM, then name) with at
/// least that much RAM whose name contains `flavor-name` when given; without, the flavor
/// whose name or id is exactly `flavor-name`.
pub fn select_flavor<'f>(
    flavors: &'f [Flavor],
    flavor_name: Option<&str>,
    min_ram: Option<i64>,
) -> Result<&'f Flavor, DriverError> {
    let mut sorted: Vec<&Flavor> = flavors.iter().collect();
    sorted.sort_by(|a, b| a.ram.cmp(&b.ram).then_with(|| a.name.cmp(&b.name)));
    match (min_ram, flavor_name) {
        (Some(min_ram), name) if min_ram > 0 => sorted
            .into_iter()
            .find(|f| f.ram >= min_ram && name.is_none_or(|n| f.name.contains(n)))
            .ok_or_else(|| {
                DriverError::Fatal(format!("Unable to find flavor with min ram: {min_ram}"))
            }),
        (_, Some(name)) => sorted
            .into_iter()
            .find(|f| f.name == name || f.id == name)
            .ok_or_else(|| DriverError::Fatal(format!("Unable to find flavor: {name}"))),
        (_, None) => Err(DriverError::Fatal(
            "the label names neither flavor-name nor min-ram".into(),
        )),
    }
}

/// What one server of `flavor` needs: one instance, its cores and RAM, and the volume when it
/// boots from one.
pub fn quota_from_flavor(flavor: &Flavor, boot_volume_gb: Option<i64>) -> Quota {
    let mut quota = Quota::one_instance()
        .with("cores", flavor.vcpus as f64)
        .with("ram", flavor.ram as f64);
    if let Some(size) = boot_volume_gb {
        quota.set("volumes", 1.0);
        quota.set("volume-gb", size as f64);
    }
    quota
}

/// `-1` (or a missing value) is unlimited.
fn bound(value: Option<&Value>) -> f64 {
    match value.and_then(Value::as_f64) {
        Some(v) if v >= 0.0 => v,
        _ => f64::INFINITY,
    }
}

/// The provider's limits from Nova's `/limits` `absolute` section and, when the cloud has a
/// volume service, Cinder's.
pub fn quota_from_limits(compute: &Value, volume: Option<&Value>) -> Quota {
    let mut quota = Quota::unlimited()
        .with("instances", bound(compute.get("maxTotalInstances")))
        .with("cores", bound(compute.get("maxTotalCores")))
        .with("ram", bound(compute.get("maxTotalRAMSize")));
    if let Some(volume) = volume {
        quota.set("volumes", bound(volume.get("maxTotalVolumes")));
        quota.set("volume-gb", bound(volume.get("maxTotalVolumeGigabytes")));
    }
    quota
}

/// A server's addresses as Nodepool reports them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Addresses {
    pub public_v4: Option<String>,
    pub private_v4: Option<String>,
    pub public_v6: Option<String>,
    pub interface_ip: Option<String>,
}

/// How the cloud's addresses are to be read.
#[derive(Debug, Clone, Default)]
pub struct AddressRules {
    /// Names of networks routed outside the cloud (Neutron `router:external`).
    pub external_networks: HashSet<String>,
    /// `private: true` in clouds.yaml: connect on the private address.
    pub private: bool,
    /// Whether an IPv6 address may be the interface address (not `force_ipv4`, and this
    /// host can route IPv6).
    pub prefer_ipv6: bool,
}

fn globally_routable(ip: &IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            !(v4.is_private()
                || v4.is_loopback()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.octets()[0] == 100 && (v4.octets()[1] & 0xc0) == 64)
        }
        IpAddr::V6(v6) => !(v6.is_loopback() || v6.is_unspecified()),
    }
}

/// openstacksdk's address rules: public IPv4 is `accessIPv4`, else a fixed address on an
/// external network, else a floating address, else any globally routable one; private IPv4
/// is a fixed address on an internal network; public IPv6 is the first IPv6 address; the
/// interface address is the private one for private clouds, IPv6 when preferred, else the
/// public IPv4.
pub fn server_addresses(server: &Server, rules: &AddressRules) -> Addresses {
    let mut external_fixed = None;
    let mut floating = None;
    let mut routable = None;
    let mut private = None;
    let mut v6 = None;
    for (network, list) in &server.addresses {
        let external = rules.external_networks.contains(network);
        for address in list {
            let Ok(ip) = address.addr.parse::<IpAddr>() else {
                continue;
            };
            let is_floating = address.kind.as_deref() == Some("floating");
            match ip {
                IpAddr::V4(_) => {
                    if is_floating {
                        floating.get_or_insert_with(|| address.addr.clone());
                    } else if external {
                        external_fixed.get_or_insert_with(|| address.addr.clone());
                    } else {
                        private.get_or_insert_with(|| address.addr.clone());
                        if globally_routable(&ip) {
                            routable.get_or_insert_with(|| address.addr.clone());
                        }
                    }
                }
                IpAddr::V6(_) => {
                    v6.get_or_insert_with(|| address.addr.clone());
                }
            }
        }
    }
    let public_v4 = server
        .access_ipv4
        .clone()
        .filter(|a| !a.is_empty())
        .or(external_fixed)
        .or(floating)
        .or(routable);
    let public_v6 = server.access_ipv6.clone().filter(|a| !a.is_empty()).or(v6);
    let interface_ip = if rules.private && private.is_some() {
        private.clone()
    } else if rules.prefer_ipv6 && public_v6.is_some() {
        public_v6.clone()
    } else {
        public_v4.clone()
    };
    Addresses {
        public_v4,
        private_v4: private,
        public_v6,
        interface_ip,
    }
}

/// Whether an ACTIVE server needs a floating IP to be reachable: the pool wants them, the
/// cloud has Neutron, and the server has a private IPv4 but no public one.
pub fn needs_floating_ip(
    addresses: &Addresses,
    auto_floating_ip: bool,
    has_network: bool,
    private_cloud: bool,
) -> bool {
    auto_floating_ip
        && has_network
        && !private_cloud
        && addresses.public_v4.is_none()
        && addresses.private_v4.is_some()
}

/// The `next` link of a paginated listing: Nova/Neutron `<key>_links` with `rel: next`, or
/// Glance's `next` path.
pub fn next_link(body: &Value, key: &str) -> Option<String> {
    if let Some(Value::Array(links)) = body.get(format!("{key}_links")) {
        return links.iter().find_map(|l| {
            (l.get("rel").and_then(Value::as_str) == Some("next"))
                .then(|| l.get("href").and_then(Value::as_str).map(str::to_string))
                .flatten()
        });
    }
    body.get("next").and_then(Value::as_str).map(str::to_string)
}

/// Whether two URLs have the same origin: scheme, host and port (a default port counts as
/// written). Where the token may go: a link or redirect to anywhere else is not followed.
pub fn same_origin(a: &reqwest::Url, b: &reqwest::Url) -> bool {
    a.scheme() == b.scheme()
        && a.host() == b.host()
        && a.port_or_known_default() == b.port_or_known_default()
}

/// The URL of a listing's next page: `link` as the answer gave it, resolved against the
/// `endpoint` the listing started from, and only if it stays on that endpoint's origin.
/// Glance gives paths with the API version (`/v2/images?marker=..`), which go after an
/// endpoint that already ends in `version_suffix` (`http://cloud/image/v2`), as
/// openstacksdk does; other relative links resolve as URLs do.
pub fn next_page_url(
    endpoint: &str,
    version_suffix: Option<&str>,
    link: &str,
) -> Result<String, String> {
    let base = reqwest::Url::parse(endpoint)
        .map_err(|e| format!("the endpoint {endpoint} is not a URL: {e}"))?;
    let resolved = if let Ok(absolute) = reqwest::Url::parse(link) {
        Ok(absolute)
    } else if link.starts_with('/') && !link.starts_with("//") {
        let rest = version_suffix
            .and_then(|suffix| link.strip_prefix(suffix))
            .filter(|rest| rest.is_empty() || rest.starts_with(['/', '?']))
            .unwrap_or(link);
        reqwest::Url::parse(&format!("{}{rest}", endpoint.trim_end_matches('/')))
    } else {
        // Relative to the endpoint as a folder; `//host/..` names another host.
        reqwest::Url::parse(&format!("{}/", endpoint.trim_end_matches('/')))
            .and_then(|dir| dir.join(link))
    };
    let url = resolved.map_err(|e| format!("the next page link {link} is not a URL: {e}"))?;
    if !same_origin(&base, &url) {
        return Err(format!(
            "the next page link {link} leaves the endpoint {endpoint} for another origin, so it \
             was not followed (behind a proxy a service may need its public link prefix set, \
             e.g. Nova's [api] compute_link_prefix)"
        ));
    }
    Ok(url.to_string())
}

/// Seconds since the epoch of a Keystone timestamp (`2026-11-26T05:04:54.000000Z`).
pub fn parse_timestamp(text: &str) -> Option<f64> {
    let text = text.trim().trim_end_matches('Z');
    let (date, time) = text.split_once('T')?;
    let mut d = date.split('-').map(|p| p.parse::<i64>());
    let (year, month, day) = (d.next()?.ok()?, d.next()?.ok()?, d.next()?.ok()?);
    let time = time.split(['+']).next()?;
    let mut t = time.split(':');
    let hour: i64 = t.next()?.parse().ok()?;
    let minute: i64 = t.next()?.parse().ok()?;
    let second: f64 = t.next().unwrap_or("0").parse().ok()?;
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some((days * 86_400 + hour * 3_600 + minute * 60) as f64 + second)
}

/// How long to use a token before getting a new one: until 5 minutes before it expires (or
/// half its life for short ones), measured from its own `issued_at` so clock skew between
/// us and Keystone does not matter.
pub fn token_lifetime(issued_at: Option<f64>, expires_at: Option<f64>) -> std::time::Duration {
    let life = match (issued_at, expires_at) {
        (Some(i), Some(e)) if e > i => e - i,
        _ => 3_600.0,
    };
    let use_for = if life > 600.0 {
        life - 300.0
    } else {
        life / 2.0
    };
    std::time::Duration::from_secs_f64(use_for.max(1.0))
}

/// A server's metadata from the label: ansible-style `groups`, then the instance properties
/// (JSON values other than strings as their JSON text), then the filled dynamic instance
/// properties, then the nodepool tags; a later source wins a key, as in Nodepool.
pub fn server_metadata(
    provider: &str,
    image_name: &str,
    label: &str,
    instance_properties: &serde_json::Map<String, Value>,
    dynamic_properties: &BTreeMap<String, String>,
    nodepool: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    let mut meta = BTreeMap::new();
    meta.insert(
        "groups".to_string(),
        [provider, image_name, label].join(","),
    );
    for (key, value) in instance_properties {
        let text = match value {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        meta.insert(key.clone(), text);
    }
    meta.extend(dynamic_properties.clone());
    meta.extend(nodepool.clone());
    meta
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::Address;

    fn flavor(id: &str, name: &str, ram: i64, vcpus: i64) -> Flavor {
        Flavor {
            id: id.into(),
            name: name.into(),
            ram,
            vcpus,
            disk: 1,
        }
    }

    #[test]
    fn flavor_by_min_ram_takes_the_smallest_fitting_then_by_name() {
        let flavors = [
            flavor("3", "m1.large", 8192, 4),
            flavor("2", "m1.small", 2048, 1),
            flavor("1", "m1.tiny", 512, 1),
            flavor("4", "b1.small", 2048, 2),
        ];
        assert_eq!(
            select_flavor(&flavors, None, Some(1024)).expect("f").id,
            "4"
        );
        assert_eq!(
            select_flavor(&flavors, Some("m1"), Some(1024))
                .expect("f")
                .id,
            "2"
        );
        assert_eq!(
            select_flavor(&flavors, Some("m1.tiny"), None)
                .expect("f")
                .id,
            "1"
        );
        assert_eq!(select_flavor(&flavors, Some("3"), None).expect("f").id, "3");
        assert!(matches!(
            select_flavor(&flavors, None, Some(100_000)),
            Err(DriverError::Fatal(m)) if m.contains("min ram: 100000")
        ));
        assert!(select_flavor(&flavors, Some("nope"), None).is_err());
    }

    #[test]
    fn errors_are_typed_by_status_and_message() {
        let quota = r#"{"forbidden": {"code": 403, "message": "Quota exceeded for instances: Requested 1, but already used 10 of 10 instances"}}"#;
        assert!(
            matches!(classify("c", "POST compute /servers", 403, quota), DriverError::Quota(m) if m.contains("already used 10") && m.contains("POST compute /servers"))
        );
        assert!(matches!(
            classify("c", "x", 404, r#"{"itemNotFound": {"message": "Instance x could not be found."}}"#),
            DriverError::NotFound(m) if m.contains("could not be found")
        ));
        assert!(matches!(
            classify("c", "x", 503, "busy"),
            DriverError::Transient(_)
        ));
        assert!(matches!(
            classify("c", "x", 409, "{}"),
            DriverError::Transient(_)
        ));
        assert!(matches!(
            classify("c", "x", 400, r#"{"NeutronError": {"type": "X", "message": "bad net"}}"#),
            DriverError::Fatal(m) if m.contains("bad net")
        ));
        assert!(is_quota_message("Build of instance exceeds quota"));
        assert!(is_quota_message("Maximum number of ports exceeded"));
    }

    fn server(addresses: &[(&str, &str, &str)]) -> Server {
        let mut map: BTreeMap<String, Vec<Address>> = BTreeMap::new();
        for (net, addr, kind) in addresses {
            map.entry(net.to_string()).or_default().push(Address {
                addr: addr.to_string(),
                version: if addr.contains(':') { 6 } else { 4 },
                kind: Some(kind.to_string()),
            });
        }
        Server {
            id: "s".into(),
            name: "n".into(),
            status: "ACTIVE".into(),
            addresses: map,
            ..Server::default()
        }
    }

    #[test]
    fn addresses_follow_openstacksdk() {
        let rules = AddressRules {
            external_networks: HashSet::from(["public".to_string()]),
            ..AddressRules::default()
        };
        // A server on the external network: that address is public, nothing private.
        let a = server_addresses(&server(&[("public", "127.43.0.5", "fixed")]), &rules);
        assert_eq!(a.public_v4.as_deref(), Some("127.43.0.5"));
        assert_eq!(a.private_v4, None);
        assert_eq!(a.interface_ip.as_deref(), Some("127.43.0.5"));
        // Private fixed plus floating.
        let s = server(&[
            ("private", "10.0.0.4", "fixed"),
            ("private", "203.0.113.9", "floating"),
            ("private", "2001:db8::4", "fixed"),
        ]);
        let a = server_addresses(&s, &rules);
        assert_eq!(a.public_v4.as_deref(), Some("203.0.113.9"));
        assert_eq!(a.private_v4.as_deref(), Some("10.0.0.4"));
        assert_eq!(a.public_v6.as_deref(), Some("2001:db8::4"));
        assert_eq!(a.interface_ip.as_deref(), Some("203.0.113.9"));
        let v6 = AddressRules {
            prefer_ipv6: true,
            ..rules.clone()
        };
        assert_eq!(
            server_addresses(&s, &v6).interface_ip.as_deref(),
            Some("2001:db8::4")
        );
        let private = AddressRules {
            private: true,
            ..rules.clone()
        };
        assert_eq!(
            server_addresses(&s, &private).interface_ip.as_deref(),
            Some("10.0.0.4")
        );
        // Only a private address: no interface address, and a floating IP is needed.
        let a = server_addresses(&server(&[("private", "127.42.0.7", "fixed")]), &rules);
        assert_eq!(a.public_v4, None);
        assert_eq!(a.interface_ip, None);
        assert!(needs_floating_ip(&a, true, true, false));
        assert!(!needs_floating_ip(&a, false, true, false));
        // A globally routable fixed address on a network not marked external is public.
        let a = server_addresses(&server(&[("provider", "198.51.100.3", "fixed")]), &rules);
        assert_eq!(a.public_v4.as_deref(), Some("198.51.100.3"));
    }

    #[test]
    fn limits_minus_one_is_unlimited_and_volumes_only_with_cinder() {
        let compute = serde_json::json!({"maxTotalInstances": 10, "maxTotalCores": -1, "maxTotalRAMSize": 51200});
        let q = quota_from_limits(&compute, None);
        assert_eq!(q.get("instances"), 10.0);
        assert!(q.get("cores").is_infinite());
        assert_eq!(q.get("ram"), 51200.0);
        assert!(q.get("volumes").is_infinite());
        let volume = serde_json::json!({"maxTotalVolumes": 5, "maxTotalVolumeGigabytes": 100});
        let q = quota_from_limits(&compute, Some(&volume));
        assert_eq!(q.get("volumes"), 5.0);
        assert_eq!(q.get("volume-gb"), 100.0);
        let f = flavor("1", "m1.tiny", 512, 1);
        let need = quota_from_flavor(&f, Some(50));
        assert_eq!(need.get("instances"), 1.0);
        assert_eq!(need.get("cores"), 1.0);
        assert_eq!(need.get("ram"), 512.0);
        assert_eq!(need.get("volume-gb"), 50.0);
    }

    #[test]
    fn pagination_links() {
        let nova = serde_json::json!({"servers": [], "servers_links": [{"rel": "next", "href": "http://n/v2.1/servers/detail?limit=2&marker=abc"}]});
        assert_eq!(
            next_link(&nova, "servers").as_deref(),
            Some("http://n/v2.1/servers/detail?limit=2&marker=abc")
        );
        let glance = serde_json::json!({"images": [], "next": "/v2/images?marker=x"});
        assert_eq!(
            next_link(&glance, "images").as_deref(),
            Some("/v2/images?marker=x")
        );
        assert_eq!(
            next_link(&serde_json::json!({"servers": []}), "servers"),
            None
        );
    }

    #[test]
    fn next_pages_stay_on_the_endpoint_origin() {
        let nova = "http://nova.example:8774/v2.1";
        assert_eq!(
            next_page_url(
                nova,
                None,
                "http://nova.example:8774/v2.1/servers/detail?marker=a"
            )
            .as_deref(),
            Ok("http://nova.example:8774/v2.1/servers/detail?marker=a")
        );
        // Case in the host and a written default port do not make another origin.
        assert!(next_page_url("https://cloud/compute/v2.1", None, "https://CLOUD:443/x").is_ok());
        // Glance's versioned paths go after a prefixed endpoint; other paths as written.
        assert_eq!(
            next_page_url("http://cloud/image/v2", Some("/v2"), "/v2/images?marker=x").as_deref(),
            Ok("http://cloud/image/v2/images?marker=x")
        );
        assert_eq!(
            next_page_url("http://g:9292/v2", Some("/v2"), "/images?marker=x").as_deref(),
            Ok("http://g:9292/v2/images?marker=x")
        );
        assert_eq!(
            next_page_url(nova, None, "servers/detail?marker=b").as_deref(),
            Ok("http://nova.example:8774/v2.1/servers/detail?marker=b")
        );
        for foreign in [
            "http://evil.example:8774/v2.1/servers/detail?marker=a",
            "http://nova.example:8775/v2.1/servers/detail",
            "https://nova.example:8774/v2.1/servers/detail",
            "http://nova.example:8774@evil.example/v2.1/servers",
            "//evil.example/v2.1/servers",
            "file:///etc/passwd",
        ] {
            let err = next_page_url(nova, None, foreign)
                .err()
                .unwrap_or_else(|| panic!("{foreign} was followed"));
            assert!(err.contains(foreign) && err.contains(nova), "{err}");
        }
        // A relative link cannot turn the endpoint's host into a user name.
        assert_eq!(
            next_page_url("http://nova:8774", None, "@evil.example/x").as_deref(),
            Ok("http://nova:8774/@evil.example/x")
        );
    }

    #[test]
    fn keystone_timestamps_and_token_lifetime() {
        assert_eq!(parse_timestamp("1970-01-02T00:00:00Z"), Some(86_400.0));
        assert_eq!(
            parse_timestamp("2026-11-26T05:04:54.500000Z"),
            Some(1_795_669_494.5)
        );
        let life = token_lifetime(Some(0.0), Some(3_600.0));
        assert_eq!(life.as_secs(), 3_300);
        assert_eq!(token_lifetime(Some(0.0), Some(100.0)).as_secs(), 50);
        assert_eq!(token_lifetime(None, None).as_secs(), 3_300);
    }

    #[test]
    fn metadata_puts_dynamic_properties_after_static_and_nodepool_tags_last() {
        let props =
            serde_json::json!({"team": "ci", "nodepool_node_id": "spoof", "n": 3, "zone": "a"});
        let dynamic = BTreeMap::from([
            ("zone".to_string(), "from-request".to_string()),
            ("tenant".to_string(), "t1".to_string()),
            ("nodepool_pool_name".to_string(), "spoof".to_string()),
        ]);
        let tags = BTreeMap::from([
            ("nodepool_node_id".to_string(), "0000000001".to_string()),
            ("nodepool_pool_name".to_string(), "main".to_string()),
        ]);
        let meta = server_metadata(
            "p",
            "img",
            "small",
            props.as_object().expect("map"),
            &dynamic,
            &tags,
        );
        assert_eq!(meta["groups"], "p,img,small");
        assert_eq!(meta["team"], "ci");
        assert_eq!(meta["n"], "3");
        assert_eq!(meta["zone"], "from-request");
        assert_eq!(meta["tenant"], "t1");
        assert_eq!(meta["nodepool_node_id"], "0000000001");
        assert_eq!(meta["nodepool_pool_name"], "main");
    }
}
