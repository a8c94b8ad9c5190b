//! `CloudApi`: the calls the provider and its machines make, over one
//! [`OpenStackClient`], with the caches that keep the call count down (flavors, networks,
//! image names, availability zones, and a shared server list at most a second old).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use nodepool_driver::{DriverError, Quota};
use serde_json::Value;

use crate::client::{OpenStackClient, Service};
use crate::decide::{self, AddressRules};
use crate::wire::{self, Flavor, FloatingIp, Image, Network, Port, Server};

/// How old a shared server list may be before a caller fetches a new one.
const SERVER_LIST_TTL: Duration = Duration::from_secs(1);
/// How long "no such image" is believed before the cloud is asked again (Nodepool's
/// `IMAGE_CHECK_TIMEOUT`).
const IMAGE_MISS_TTL: Duration = Duration::from_secs(300);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A server list and when its fetch started.
#[derive(Debug)]
struct ServerList {
    started: Instant,
    servers: Arc<Vec<Server>>,
}

/// What DOWN-port cleanup remembers between passes.
#[derive(Debug, Default)]
struct PortCleanup {
    last_check: Option<Instant>,
    down: HashSet<String>,
}

/// The cloud as the driver uses it. Shared (`Arc`) by the provider and its machines.
#[derive(Debug)]
pub struct CloudApi {
    pub client: OpenStackClient,
    /// Page size for server listings; `None` lets the cloud choose.
    page_size: Option<u32>,
    /// Whether an IPv6 address may be the interface address.
    prefer_ipv6: bool,
    /// The last server list. A tokio mutex held across the fetch, so concurrent pollers wait
    /// for one listing instead of each making their own.
    servers: tokio::sync::Mutex<Option<ServerList>>,
    /// Flavors, networks: read once, dropped when Nova answers 400 (a stale cache is the
    /// likely cause). std mutexes: never held across an await.
    flavors: Mutex<Option<Arc<Vec<Flavor>>>>,
    networks: Mutex<Option<Arc<Vec<Network>>>>,
    /// Image name -> id (`None`: not found, at that time).
    images: Mutex<HashMap<String, (Option<String>, Instant)>>,
    /// Availability zone names, once read.
    azs: Mutex<Option<Vec<String>>>,
    port_cleanup: Mutex<PortCleanup>,
}

/// Whether this host has an IPv6 default route (openstacksdk only prefers IPv6 addresses
/// when it can reach them).
fn host_routes_ipv6() -> bool {
    std::fs::read_to_string("/proc/net/ipv6_route").is_ok_and(|routes| {
        routes
            .lines()
            .any(|l| l.starts_with("00000000000000000000000000000000 00 ") && !l.ends_with(" lo"))
    })
}

/// A query value with the characters URLs reserve escaped.
pub fn escape(value: &str) -> String {
    let mut out = String::new();
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl CloudApi {
    pub fn new(client: OpenStackClient, page_size: Option<u32>) -> CloudApi {
        let prefer_ipv6 = !client.cloud().force_ipv4 && host_routes_ipv6();
        CloudApi {
            client,
            page_size,
            prefer_ipv6,
            servers: tokio::sync::Mutex::new(None),
            flavors: Mutex::new(None),
            networks: Mutex::new(None),
            images: Mutex::new(HashMap::new()),
            azs: Mutex::new(None),
            port_cleanup: Mutex::new(PortCleanup::default()),
        }
    }

    pub fn cloud_name(&self) -> &str {
        &self.client.cloud().name
    }

    /// Forgets what a 400 from Nova suggests is stale.
    pub fn clear_caches(&self) {
        tracing::info!(
            cloud = self.cloud_name(),
            "clearing the flavor, network, image and AZ caches after a 400 from nova"
        );
        *lock(&self.flavors) = None;
        *lock(&self.networks) = None;
        lock(&self.images).clear();
        *lock(&self.azs) = None;
    }

    /// Every server of the project, page by page.
    pub async fn list_servers(&self) -> Result<Vec<Server>, DriverError> {
        let first = match self.page_size {
            Some(n) => format!("/servers/detail?limit={n}"),
            None => "/servers/detail".to_string(),
        };
        let items = self
            .client
            .list_all(Service::Compute, &first, "servers")
            .await?;
        Ok(wire::items(&items))
    }

    /// A server list whose fetch started after `since` and is at most a second old.
    pub async fn servers_since(&self, since: Instant) -> Result<Arc<Vec<Server>>, DriverError> {
        let mut slot = self.servers.lock().await;
        if let Some(list) = slot.as_ref()
            && list.started >= since
            && list.started.elapsed() < SERVER_LIST_TTL
        {
            return Ok(list.servers.clone());
        }
        let started = Instant::now();
        let servers = Arc::new(self.list_servers().await?);
        *slot = Some(ServerList {
            started,
            servers: servers.clone(),
        });
        Ok(servers)
    }

    pub async fn server(&self, id: &str) -> Result<Server, DriverError> {
        let body = self
            .client
            .get(Service::Compute, &format!("/servers/{}", escape(id)))
            .await?;
        serde_json::from_value(body.get("server").cloned().unwrap_or(Value::Null)).map_err(|e| {
            DriverError::Transient(format!(
                "cloud {}: unreadable server {id}: {e}",
                self.cloud_name()
            ))
        })
    }

    pub async fn flavors(&self) -> Result<Arc<Vec<Flavor>>, DriverError> {
        if let Some(f) = lock(&self.flavors).clone() {
            return Ok(f);
        }
        let items = self
            .client
            .list_all(Service::Compute, "/flavors/detail", "flavors")
            .await?;
        let flavors = Arc::new(wire::items::<Flavor>(&items));
        *lock(&self.flavors) = Some(flavors.clone());
        Ok(flavors)
    }

    pub async fn has_network_service(&self) -> Result<bool, DriverError> {
        Ok(self.client.endpoint(Service::Network).await?.is_some())
    }

    /// Neutron's networks (empty without Neutron).
    pub async fn networks(&self) -> Result<Arc<Vec<Network>>, DriverError> {
        if let Some(n) = lock(&self.networks).clone() {
            return Ok(n);
        }
        let networks = if self.has_network_service().await? {
            let items = self
                .client
                .list_all(Service::Network, "/networks", "networks")
                .await?;
            wire::items::<Network>(&items)
        } else {
            Vec::new()
        };
        let networks = Arc::new(networks);
        *lock(&self.networks) = Some(networks.clone());
        Ok(networks)
    }

    /// The id of the network called (or with the id) `name`.
    pub async fn network_id(&self, name: &str) -> Result<String, DriverError> {
        let networks = self.networks().await?;
        networks
            .iter()
            .find(|n| n.name == name)
            .or_else(|| networks.iter().find(|n| n.id == name))
            .map(|n| n.id.clone())
            .ok_or_else(|| {
                DriverError::Fatal(format!(
                    "Unable to find network {name} in cloud {}",
                    self.cloud_name()
                ))
            })
    }

    pub async fn address_rules(&self) -> Result<AddressRules, DriverError> {
        let networks = self.networks().await?;
        Ok(AddressRules {
            external_networks: networks
                .iter()
                .filter(|n| n.external)
                .map(|n| n.name.clone())
                .collect(),
            private: self.client.cloud().private,
            prefer_ipv6: self.prefer_ipv6,
        })
    }

    /// The id of the active image called (or with the id) `name`, if there is one.
    pub async fn find_image(&self, name: &str) -> Result<Option<String>, DriverError> {
        if let Some((found, at)) = lock(&self.images).get(name).cloned()
            && (found.is_some() || at.elapsed() < IMAGE_MISS_TTL)
        {
            return Ok(found);
        }
        let body = self
            .client
            .get(
                Service::Image,
                &format!("/images?name={}&status=active", escape(name)),
            )
            .await?;
        let mut found = wire::list::<Image>(&body, "images")
            .into_iter()
            .next()
            .map(|i| i.id);
        if found.is_none() {
            // Maybe it is an id.
            match self
                .client
                .get(Service::Image, &format!("/images/{}", escape(name)))
                .await
            {
                Ok(body) if body.get("status").and_then(Value::as_str) == Some("active") => {
                    found = body.get("id").and_then(Value::as_str).map(str::to_string);
                }
                Ok(_) | Err(DriverError::NotFound(_)) | Err(DriverError::Fatal(_)) => {}
                Err(e) => return Err(e),
            }
        }
        lock(&self.images).insert(name.to_string(), (found.clone(), Instant::now()));
        Ok(found)
    }

    /// Availability zones known so far (read by `refresh_azs`).
    pub fn cached_azs(&self) -> Vec<String> {
        lock(&self.azs).clone().unwrap_or_default()
    }

    /// Reads the available zones once (or again after a cache clear).
    pub async fn refresh_azs(&self) {
        if lock(&self.azs).is_some() {
            return;
        }
        match self
            .client
            .get(Service::Compute, "/os-availability-zone")
            .await
        {
            Ok(body) => {
                let zones: Vec<String> = body
                    .get("availabilityZoneInfo")
                    .and_then(Value::as_array)
                    .map(|zones| {
                        zones
                            .iter()
                            .filter(|z| {
                                z.pointer("/zoneState/available").and_then(Value::as_bool)
                                    != Some(false)
                            })
                            .filter_map(|z| z.get("zoneName").and_then(Value::as_str))
                            .map(str::to_string)
                            .collect()
                    })
                    .unwrap_or_default();
                *lock(&self.azs) = Some(zones);
            }
            Err(e) => {
                tracing::warn!(cloud = self.cloud_name(), error = %e, "cannot list availability zones")
            }
        }
    }

    /// Compute (and, with Cinder, volume) limits.
    pub async fn quota_limits(&self) -> Result<Quota, DriverError> {
        let compute = self.client.get(Service::Compute, "/limits").await?;
        let compute = compute
            .pointer("/limits/absolute")
            .cloned()
            .unwrap_or(Value::Null);
        let volume = match self.client.endpoint(Service::Volume).await? {
            Some(_) => Some(
                self.client
                    .get(Service::Volume, "/limits")
                    .await?
                    .pointer("/limits/absolute")
                    .cloned()
                    .unwrap_or(Value::Null),
            ),
            None => None,
        };
        Ok(decide::quota_from_limits(&compute, volume.as_ref()))
    }

    /// What an existing server uses of the quota: its flavor (embedded from microversion
    /// 2.47, else looked up by id).
    pub async fn server_quota(&self, server: &Server) -> Quota {
        let embedded = |k: &str| server.flavor.get(k).and_then(Value::as_i64);
        if let (Some(vcpus), Some(ram)) = (embedded("vcpus"), embedded("ram")) {
            return Quota::one_instance()
                .with("cores", vcpus as f64)
                .with("ram", ram as f64);
        }
        let id = server.flavor.get("id").and_then(Value::as_str);
        match (id, self.flavors().await) {
            (Some(id), Ok(flavors)) => match flavors.iter().find(|f| f.id == id) {
                Some(f) => decide::quota_from_flavor(f, None),
                None => Quota::one_instance(),
            },
            _ => Quota::one_instance(),
        }
    }

    pub async fn ports_of(&self, server_id: &str) -> Result<Vec<Port>, DriverError> {
        let body = self
            .client
            .get(
                Service::Network,
                &format!("/ports?device_id={}", escape(server_id)),
            )
            .await?;
        Ok(wire::list(&body, "ports"))
    }

    /// Creates a floating IP on the first external network for the server's port.
    pub async fn create_floating_ip(&self, server_id: &str) -> Result<FloatingIp, DriverError> {
        let networks = self.networks().await?;
        let Some(external) = networks.iter().find(|n| n.external) else {
            return Err(DriverError::Fatal(format!(
                "cloud {}: no external network for a floating IP",
                self.cloud_name()
            )));
        };
        let ports = self.ports_of(server_id).await?;
        let Some(port) = ports
            .iter()
            .find(|p| p.network_id != external.id)
            .or_else(|| ports.first())
        else {
            return Err(DriverError::Transient(format!(
                "cloud {}: server {server_id} has no port yet",
                self.cloud_name()
            )));
        };
        let body = self
            .client
            .post(
                Service::Network,
                "/floatingips",
                &serde_json::json!({"floatingip": {
                    "floating_network_id": external.id,
                    "port_id": port.id,
                }}),
            )
            .await?;
        serde_json::from_value(body.get("floatingip").cloned().unwrap_or(Value::Null)).map_err(
            |e| {
                DriverError::Fatal(format!(
                    "cloud {}: unreadable floating IP: {e}",
                    self.cloud_name()
                ))
            },
        )
    }

    /// Deletes the floating IPs a server shows in its addresses.
    pub async fn delete_floating_ips_of(&self, server: &Server) -> Result<usize, DriverError> {
        let mut deleted = 0;
        for address in server.addresses.values().flatten() {
            if address.kind.as_deref() != Some("floating") {
                continue;
            }
            let body = self
                .client
                .get(
                    Service::Network,
                    &format!("/floatingips?floating_ip_address={}", escape(&address.addr)),
                )
                .await?;
            for fip in wire::list::<FloatingIp>(&body, "floatingips") {
                match self
                    .client
                    .delete(Service::Network, &format!("/floatingips/{}", fip.id))
                    .await
                {
                    Ok(()) | Err(DriverError::NotFound(_)) => deleted += 1,
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(deleted)
    }

    /// Images this provider uploaded: Glance filters on the `nodepool_provider_name`
    /// property and on our project as the owner (an admin account sees every project's
    /// images, and another project's are never ours to clean up).
    pub async fn provider_images(&self, provider: &str) -> Result<Vec<Image>, DriverError> {
        let mut query = format!("/images?nodepool_provider_name={}", escape(provider));
        if let Some(project) = self.client.project_id().await? {
            query.push_str(&format!("&owner={}", escape(&project)));
        }
        let items = self
            .client
            .list_all(Service::Image, &query, "images")
            .await?;
        Ok(wire::items(&items))
    }

    pub async fn image(&self, id: &str) -> Result<Image, DriverError> {
        let body = self
            .client
            .get(Service::Image, &format!("/images/{}", escape(id)))
            .await?;
        serde_json::from_value(body).map_err(|e| {
            DriverError::Transient(format!(
                "cloud {}: unreadable image {id}: {e}",
                self.cloud_name()
            ))
        })
    }

    /// Nodepool's DOWN-port cleanup: compute (or ownerless) ports seen DOWN in two checks at
    /// least `interval` apart are deleted. Returns how many were.
    pub async fn clean_down_ports(&self, interval: Duration) -> Result<usize, DriverError> {
        if !self.has_network_service().await? {
            return Ok(0);
        }
        let due = {
            let state = lock(&self.port_cleanup);
            state.last_check.is_none_or(|t| t.elapsed() > interval)
        };
        if !due {
            return Ok(0);
        }
        let down = self.down_compute_ports().await?;
        let first = lock(&self.port_cleanup).last_check.is_none();
        let mut removed = 0;
        if !first {
            let previous = std::mem::take(&mut lock(&self.port_cleanup).down);
            for id in down.intersection(&previous) {
                match self
                    .client
                    .delete(Service::Network, &format!("/ports/{id}"))
                    .await
                {
                    Ok(()) => {
                        removed += 1;
                        tracing::info!(cloud = self.cloud_name(), port = %id, "deleted a leaked DOWN port");
                    }
                    Err(DriverError::NotFound(_)) => {}
                    Err(e) => {
                        tracing::warn!(cloud = self.cloud_name(), port = %id, error = %e, "cannot delete DOWN port")
                    }
                }
            }
        }
        // Rely on the cloud for what is DOWN now, as Nodepool does.
        let down = if removed > 0 {
            self.down_compute_ports().await?
        } else {
            down
        };
        let mut state = lock(&self.port_cleanup);
        state.down = down;
        state.last_check = Some(Instant::now());
        Ok(removed)
    }

    async fn down_compute_ports(&self) -> Result<HashSet<String>, DriverError> {
        let items = self
            .client
            .list_all(Service::Network, "/ports?status=DOWN", "ports")
            .await?;
        let ports: Vec<Port> = wire::items(&items);
        Ok(ports
            .into_iter()
            .filter(|p| p.device_owner.is_empty() || p.device_owner.starts_with("compute:"))
            .map(|p| p.id)
            .collect())
    }

    /// `clean-floating-ips`: deletes floating IPs attached to nothing.
    pub async fn clean_unattached_floating_ips(&self) -> Result<usize, DriverError> {
        if !self.has_network_service().await? {
            return Ok(0);
        }
        let items = self
            .client
            .list_all(Service::Network, "/floatingips", "floatingips")
            .await?;
        let fips: Vec<FloatingIp> = wire::items(&items);
        let mut removed = 0;
        for fip in fips.iter().filter(|f| f.port_id.is_none()) {
            match self
                .client
                .delete(Service::Network, &format!("/floatingips/{}", fip.id))
                .await
            {
                Ok(()) => {
                    removed += 1;
                    tracing::info!(cloud = self.cloud_name(), floating_ip = %fip.floating_ip_address, "deleted an unattached floating IP");
                }
                Err(DriverError::NotFound(_)) => {}
                Err(e) => {
                    tracing::warn!(cloud = self.cloud_name(), floating_ip = %fip.floating_ip_address, error = %e, "cannot delete floating IP")
                }
            }
        }
        Ok(removed)
    }

    /// The console output of a server.
    pub async fn console_log(&self, server_id: &str) -> Result<String, DriverError> {
        let body = self
            .client
            .post(
                Service::Compute,
                &format!("/servers/{}/action", escape(server_id)),
                &serde_json::json!({"os-getConsoleOutput": {}}),
            )
            .await?;
        Ok(body
            .get("output")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string())
    }
}
