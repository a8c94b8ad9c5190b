//! The create and delete state machines. Each `advance` makes at most a few API calls.
//!
//! Create: `start` (resolve flavor, image, networks; `POST /servers`; the server id is the
//! external id from here on) -> `creating server` (poll the shared server list until ACTIVE)
//! -> [`creating floating ip` -> `attaching floating ip` (until the address shows on the
//! server)] -> `complete`.
//! Delete: `start` (look the server up, delete its floating IPs) -> `submit delete server`
//! -> `deleting server` (until it is gone from the list) -> `complete`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use nodepool_driver::{CreateMachine, DeleteMachine, DriverError, Instance, Quota};
use nodepool_model::ExternalId;
use serde_json::Value;

use crate::client::Service;
use crate::cloud::CloudApi;
use crate::decide;
use crate::wire::Server;

/// Between polls of a server that is building or going away (Nodepool: about once a second).
const POLL: Duration = Duration::from_secs(1);
/// Between steps that have nothing to wait for.
const NEXT_STEP: Duration = Duration::from_millis(100);
/// Transient errors in a row a polling step rides out before failing the machine (a
/// flaky listing should not fail a launch whose server is fine).
const TRANSIENT_POLLS: u32 = 30;

/// A polling step's result, with transient errors counted and (up to a limit) turned into
/// "not yet".
fn ride_out<T>(
    result: Result<T, DriverError>,
    failures: &mut u32,
    not_yet: T,
    what: &str,
) -> Result<T, DriverError> {
    match result {
        Err(DriverError::Transient(message)) if *failures < TRANSIENT_POLLS => {
            *failures += 1;
            tracing::warn!(what, failures = *failures, error = %message, "transient error while polling; trying again");
            Ok(not_yet)
        }
        Ok(v) => {
            *failures = 0;
            Ok(v)
        }
        Err(e) => Err(e),
    }
}

const START: &str = "start";
const CREATING: &str = "creating server";
const FIP_CREATING: &str = "creating floating ip";
const FIP_ATTACHING: &str = "attaching floating ip";
const DELETE_SUBMIT: &str = "submit delete server";
const DELETING: &str = "deleting server";
const COMPLETE: &str = "complete";

/// Which image a server boots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageRef {
    Id(String),
    /// Looked up by name (or id) in Glance.
    Name(String),
}

/// Everything a create needs from the configuration, resolved when the machine is made.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerPlan {
    pub name: String,
    pub image: ImageRef,
    pub flavor_name: Option<String>,
    pub min_ram: Option<i64>,
    pub key_name: Option<String>,
    pub az: Option<String>,
    pub config_drive: Option<bool>,
    pub networks: Vec<String>,
    pub security_groups: Vec<String>,
    pub userdata: Option<String>,
    pub metadata: BTreeMap<String, String>,
    /// GB of the boot volume when booting from a volume.
    pub boot_volume_gb: Option<i64>,
    pub auto_floating_ip: bool,
}

/// Base64 (standard alphabet, padded), for Nova's `user_data`.
fn base64(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The `POST /servers` body.
pub fn server_body(
    plan: &ServerPlan,
    image_id: &str,
    flavor_id: &str,
    network_ids: &[String],
    microversion_networks: bool,
) -> Value {
    let mut server = serde_json::Map::new();
    server.insert("name".into(), Value::from(plan.name.clone()));
    server.insert("flavorRef".into(), Value::from(flavor_id));
    match plan.boot_volume_gb {
        Some(size) => {
            server.insert("imageRef".into(), Value::from(""));
            server.insert(
                "block_device_mapping_v2".into(),
                serde_json::json!([{
                    "boot_index": 0, "uuid": image_id, "source_type": "image",
                    "destination_type": "volume", "volume_size": size,
                    "delete_on_termination": true,
                }]),
            );
        }
        None => {
            server.insert("imageRef".into(), Value::from(image_id));
        }
    }
    server.insert(
        "metadata".into(),
        Value::Object(
            plan.metadata
                .iter()
                .map(|(k, v)| (k.clone(), Value::from(v.clone())))
                .collect(),
        ),
    );
    if let Some(key) = &plan.key_name {
        server.insert("key_name".into(), Value::from(key.clone()));
    }
    if let Some(az) = &plan.az {
        server.insert("availability_zone".into(), Value::from(az.clone()));
    }
    if let Some(drive) = plan.config_drive {
        server.insert("config_drive".into(), Value::from(drive));
    }
    if let Some(data) = &plan.userdata {
        server.insert("user_data".into(), Value::from(base64(data.as_bytes())));
    }
    if !plan.security_groups.is_empty() {
        server.insert(
            "security_groups".into(),
            Value::Array(
                plan.security_groups
                    .iter()
                    .map(|g| serde_json::json!({ "name": g }))
                    .collect(),
            ),
        );
    }
    if !network_ids.is_empty() {
        server.insert(
            "networks".into(),
            Value::Array(
                network_ids
                    .iter()
                    .map(|id| serde_json::json!({ "uuid": id }))
                    .collect(),
            ),
        );
    } else if microversion_networks {
        // From 2.37 a server must say; openstacksdk asks for "auto" when given none.
        server.insert("networks".into(), Value::from("auto"));
    }
    serde_json::json!({ "server": Value::Object(server) })
}

/// The instance a finished server is.
pub(crate) async fn instance(
    cloud: &CloudApi,
    server: &Server,
    region: Option<&str>,
    resources: Quota,
) -> Result<Instance, DriverError> {
    let rules = cloud.address_rules().await?;
    let a = decide::server_addresses(server, &rules);
    Ok(Instance {
        external_id: Some(ExternalId::Id(server.id.clone())),
        interface_ip: a.interface_ip,
        // Nodepool reports the public address as the private one when there is none.
        private_ipv4: a.private_v4.or_else(|| a.public_v4.clone()),
        public_ipv4: a.public_v4,
        public_ipv6: a.public_v6,
        private_ipv6: None,
        cloud: Some(cloud.cloud_name().to_string()),
        region: region.map(str::to_string),
        az: server.availability_zone.clone().filter(|z| !z.is_empty()),
        host_id: Some(server.host_id.clone()).filter(|h| !h.is_empty()),
        metadata: server.metadata.clone(),
        resources: Some(resources),
        ..Instance::default()
    })
}

#[derive(Debug)]
pub struct OpenStackCreateMachine {
    cloud: Arc<CloudApi>,
    /// The server to make, or why the label cannot be built (reported by the first
    /// `advance`).
    plan: Result<ServerPlan, DriverError>,
    region: Option<String>,
    state: &'static str,
    server_id: Option<String>,
    /// When the last change was asked of the cloud: polls want a server list newer than that.
    changed_at: Instant,
    /// Whether the server has shown up in a listing yet.
    seen: bool,
    resources: Quota,
    floating_ip: Option<String>,
    instance: Option<Instance>,
    /// Transient polling errors in a row.
    transient_failures: u32,
}

impl OpenStackCreateMachine {
    pub(crate) fn new(
        cloud: Arc<CloudApi>,
        plan: Result<ServerPlan, DriverError>,
        region: Option<String>,
    ) -> OpenStackCreateMachine {
        OpenStackCreateMachine {
            cloud,
            plan,
            region,
            state: START,
            server_id: None,
            changed_at: Instant::now(),
            seen: false,
            resources: Quota::one_instance(),
            floating_ip: None,
            instance: None,
            transient_failures: 0,
        }
    }

    async fn submit(&mut self) -> Result<(), DriverError> {
        let plan = self.plan.as_ref().map_err(Clone::clone)?;
        let flavors = self.cloud.flavors().await?;
        let flavor =
            decide::select_flavor(&flavors, plan.flavor_name.as_deref(), plan.min_ram)?.clone();
        self.resources = decide::quota_from_flavor(&flavor, plan.boot_volume_gb);
        let image_id = match &plan.image {
            ImageRef::Id(id) => id.clone(),
            ImageRef::Name(name) => self.cloud.find_image(name).await?.ok_or_else(|| {
                DriverError::Fatal(format!(
                    "Unable to find image {name} in cloud {}",
                    self.cloud.cloud_name()
                ))
            })?,
        };
        let mut network_ids = Vec::new();
        for network in &plan.networks {
            network_ids.push(self.cloud.network_id(network).await?);
        }
        let microversion = self.cloud.client.compute_version().await?.is_some();
        let body = server_body(plan, &image_id, &flavor.id, &network_ids, microversion);
        let reply = self
            .cloud
            .client
            .post(Service::Compute, "/servers", &body)
            .await;
        let reply = match reply {
            Ok(reply) => reply,
            Err(DriverError::Fatal(message)) if message.contains("HTTP 400") => {
                self.cloud.clear_caches();
                return Err(DriverError::Fatal(message));
            }
            Err(e) => return Err(e),
        };
        let Some(id) = reply.pointer("/server/id").and_then(Value::as_str) else {
            return Err(DriverError::Fatal(format!(
                "cloud {}: POST compute /servers: no server id in the answer",
                self.cloud.cloud_name()
            )));
        };
        tracing::info!(server = %plan.name, server_id = id, flavor = %flavor.name, "server submitted");
        self.server_id = Some(id.to_string());
        self.changed_at = Instant::now();
        self.state = CREATING;
        Ok(())
    }

    /// The server in a listing newer than our last change, if listed.
    async fn current(&mut self) -> Result<Option<Server>, DriverError> {
        let id = self.server_id.clone().unwrap_or_default();
        let servers = self.cloud.servers_since(self.changed_at).await?;
        let server = servers.iter().find(|s| s.id == id).cloned();
        match server {
            Some(s) => {
                self.seen = true;
                Ok(Some(s))
            }
            None if self.seen => Err(DriverError::Fatal(format!(
                "server {id} disappeared while it was being created"
            ))),
            None => Ok(None),
        }
    }

    async fn creating(&mut self) -> Result<Option<Instance>, DriverError> {
        let Some(server) = self.current().await? else {
            return Ok(None);
        };
        match server.status.as_str() {
            "ACTIVE" => {
                let auto_fip = self.plan.as_ref().is_ok_and(|p| p.auto_floating_ip);
                let rules = self.cloud.address_rules().await?;
                let addresses = decide::server_addresses(&server, &rules);
                let has_network = self.cloud.has_network_service().await?;
                if decide::needs_floating_ip(&addresses, auto_fip, has_network, rules.private) {
                    self.state = FIP_CREATING;
                    return Ok(None);
                }
                self.complete(&server).await.map(Some)
            }
            "ERROR" => {
                let fault = match &server.fault {
                    Some(f) => f.message.clone(),
                    None => self
                        .cloud
                        .server(&server.id)
                        .await
                        .ok()
                        .and_then(|s| s.fault)
                        .map(|f| f.message)
                        .unwrap_or_default(),
                };
                tracing::warn!(server_id = %server.id, fault, "the compute service reports a fault");
                let lower = fault.to_ascii_lowercase();
                if lower.contains("exceeds") && lower.contains("quota") {
                    return Err(DriverError::Quota(format!("Quota exceeded: {fault}")));
                }
                Err(DriverError::Fatal(format!(
                    "Server in error state: {fault}"
                )))
            }
            _ => Ok(None),
        }
    }

    async fn complete(&mut self, server: &Server) -> Result<Instance, DriverError> {
        let instance = instance(
            &self.cloud,
            server,
            self.region.as_deref(),
            self.resources.clone(),
        )
        .await?;
        self.instance = Some(instance.clone());
        self.state = COMPLETE;
        Ok(instance)
    }
}

#[async_trait]
impl CreateMachine for OpenStackCreateMachine {
    async fn advance(&mut self) -> Result<Option<Instance>, DriverError> {
        match self.state {
            START => {
                self.submit().await?;
                Ok(None)
            }
            CREATING => {
                let result = self.creating().await;
                let id = self.server_id.clone().unwrap_or_default();
                ride_out(result, &mut self.transient_failures, None, &id)
            }
            FIP_CREATING => {
                let id = self.server_id.clone().unwrap_or_default();
                let fip = self.cloud.create_floating_ip(&id).await?;
                tracing::info!(server_id = %id, floating_ip = %fip.floating_ip_address, "floating IP created");
                self.floating_ip = Some(fip.floating_ip_address);
                self.changed_at = Instant::now();
                self.state = FIP_ATTACHING;
                Ok(None)
            }
            FIP_ATTACHING => {
                let id = self.server_id.clone().unwrap_or_default();
                let current = self.current().await;
                let Some(server) = ride_out(current, &mut self.transient_failures, None, &id)?
                else {
                    return Ok(None);
                };
                let wanted = self.floating_ip.clone().unwrap_or_default();
                if server
                    .addresses
                    .values()
                    .flatten()
                    .any(|a| a.addr == wanted)
                {
                    self.complete(&server).await.map(Some)
                } else {
                    Ok(None)
                }
            }
            _ => Ok(self.instance.clone()),
        }
    }

    fn state(&self) -> &str {
        self.state
    }

    fn external_id(&self) -> Option<ExternalId> {
        self.server_id.clone().map(ExternalId::Id)
    }

    fn poll_after(&self) -> Duration {
        match self.state {
            CREATING | FIP_ATTACHING => POLL,
            _ => NEXT_STEP,
        }
    }
}

#[derive(Debug)]
pub struct OpenStackDeleteMachine {
    cloud: Arc<CloudApi>,
    /// `None` for an external id that cannot be a Nova server (structured fields).
    server_id: Option<String>,
    state: &'static str,
    submitted_at: Instant,
    /// Transient polling errors in a row.
    transient_failures: u32,
}

impl OpenStackDeleteMachine {
    pub(crate) fn new(cloud: Arc<CloudApi>, external_id: &ExternalId) -> OpenStackDeleteMachine {
        let server_id = match external_id {
            ExternalId::Id(id) => Some(id.clone()),
            ExternalId::Fields(_) => None,
        };
        OpenStackDeleteMachine {
            cloud,
            server_id,
            state: START,
            submitted_at: Instant::now(),
            transient_failures: 0,
        }
    }
}

#[async_trait]
impl DeleteMachine for OpenStackDeleteMachine {
    async fn advance(&mut self) -> Result<bool, DriverError> {
        let Some(id) = self.server_id.clone() else {
            return Err(DriverError::NotFound(
                "an OpenStack server id is a string, not fields".into(),
            ));
        };
        match self.state {
            START => {
                // NotFound here ends the delete: the server is gone. Nova shows a deleted
                // server as DELETED for a while before it answers 404; that is gone too.
                let server = self.cloud.server(&id).await?;
                if server.status.eq_ignore_ascii_case("deleted") {
                    return Err(DriverError::NotFound(format!("server {id} (deleted)")));
                }
                if self.cloud.has_network_service().await? {
                    let deleted = self.cloud.delete_floating_ips_of(&server).await?;
                    if deleted > 0 {
                        tracing::info!(server_id = %id, count = deleted, "floating IPs deleted");
                    }
                }
                self.state = DELETE_SUBMIT;
                Ok(false)
            }
            DELETE_SUBMIT => {
                self.cloud
                    .client
                    .delete(Service::Compute, &format!("/servers/{id}"))
                    .await?;
                tracing::info!(server_id = %id, "server delete submitted");
                self.submitted_at = Instant::now();
                self.state = DELETING;
                Ok(false)
            }
            DELETING => {
                let listed = self.cloud.servers_since(self.submitted_at).await.map(Some);
                let Some(servers) = ride_out(listed, &mut self.transient_failures, None, &id)?
                else {
                    return Ok(false);
                };
                let gone = servers
                    .iter()
                    .find(|s| s.id == id)
                    .is_none_or(|s| s.status.eq_ignore_ascii_case("deleted"));
                if gone {
                    self.state = COMPLETE;
                }
                Ok(gone)
            }
            _ => Ok(true),
        }
    }

    fn state(&self) -> &str {
        self.state
    }

    fn poll_after(&self) -> Duration {
        if self.state == DELETING {
            POLL
        } else {
            NEXT_STEP
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan() -> ServerPlan {
        ServerPlan {
            name: "np0000000001".into(),
            image: ImageRef::Id("img".into()),
            flavor_name: Some("m1.tiny".into()),
            min_ram: None,
            key_name: Some("k".into()),
            az: Some("nova".into()),
            config_drive: Some(true),
            networks: vec!["public".into()],
            security_groups: vec!["default".into()],
            userdata: Some("#cloud-config\n".into()),
            metadata: BTreeMap::from([("nodepool_node_id".into(), "0000000001".into())]),
            boot_volume_gb: None,
            auto_floating_ip: false,
        }
    }

    #[test]
    fn server_body_carries_every_setting() {
        let body = server_body(&plan(), "img", "f1", &["net1".into()], true);
        assert_eq!(
            body,
            serde_json::json!({"server": {
                "name": "np0000000001", "flavorRef": "f1", "imageRef": "img",
                "metadata": {"nodepool_node_id": "0000000001"},
                "key_name": "k", "availability_zone": "nova", "config_drive": true,
                "user_data": "I2Nsb3VkLWNvbmZpZwo=",
                "security_groups": [{"name": "default"}],
                "networks": [{"uuid": "net1"}],
            }})
        );
        let mut p = plan();
        p.boot_volume_gb = Some(20);
        p.networks.clear();
        let body = server_body(&p, "img", "f1", &[], true);
        assert_eq!(body["server"]["imageRef"], "");
        assert_eq!(
            body["server"]["block_device_mapping_v2"][0]["volume_size"],
            20
        );
        assert_eq!(body["server"]["networks"], "auto");
    }

    #[test]
    fn base64_pads() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
    }
}
