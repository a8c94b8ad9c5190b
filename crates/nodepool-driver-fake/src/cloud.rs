//! The in-memory cloud (spec 7.4): servers, images, flavors, availability zones, a quota,
//! and the faults `fake-faults` asks for.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use nodepool_config::{FakeCloud as FakeCloudConfig, FakeFaults};
use nodepool_driver::{DriverError, Metadata, Quota};
use serde::{Deserialize, Serialize};

use crate::state_file::{self, StateDocument};

/// The image every fake cloud starts with.
pub const FAKE_IMAGE_NAME: &str = "Fake Precise";
pub const FAKE_IMAGE_ID: &str = "fake-image-id";
/// A pool or label network of this name gives servers an IPv6 interface address.
pub const IPV6_NETWORK: &str = "fake-ipv6-network-name";
/// A pool or label network of this name gives servers no public address.
pub const NO_AUTO_IP_NETWORK: &str = "no-auto-ip-network-name";
pub const AVAILABILITY_ZONES: [&str; 2] = ["az1", "az2"];
/// What the cloud says when a create would go over its quota.
pub const QUOTA_EXCEEDED: &str = "Quota exceeded for something";

/// A server flavor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeFlavor {
    pub id: String,
    pub name: String,
    /// MiB.
    pub ram: i64,
    pub vcpus: i64,
}

/// The fake cloud's flavors, ordered by RAM then name as Nodepool sorts them.
fn flavors() -> Vec<FakeFlavor> {
    vec![
        FakeFlavor {
            id: "fake-flavor-id".into(),
            name: "Fake Flavor".into(),
            ram: 8192,
            vcpus: 4,
        },
        FakeFlavor {
            id: "unreal-flavor-id".into(),
            name: "Unreal Flavor".into(),
            ram: 8192,
            vcpus: 4,
        },
    ]
}

/// Nodepool's flavor choice (OpenStack adapter): with `min-ram`, the first flavor (smallest
/// RAM) with at least that much RAM whose name contains `flavor-name` when one is given;
/// without, the flavor whose name or id is exactly `flavor-name`.
pub fn select_flavor<'f>(
    flavors: &'f [FakeFlavor],
    flavor_name: Option<&str>,
    min_ram: Option<i64>,
) -> Option<&'f FakeFlavor> {
    match (min_ram, flavor_name) {
        (Some(min_ram), name) if min_ram > 0 => flavors
            .iter()
            .find(|f| f.ram >= min_ram && name.is_none_or(|n| f.name.contains(n))),
        (_, Some(name)) => flavors.iter().find(|f| f.name == name || f.id == name),
        (_, None) => None,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum ServerStatus {
    /// Created, not active yet (`create-delay`).
    Build,
    Active,
    /// An injected launch failure.
    Error,
    /// Deleted, still listed until `delete-delay` has passed.
    Deleting,
}

/// One server as the cloud shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FakeServer {
    pub id: String,
    pub name: String,
    pub metadata: Metadata,
    pub status: ServerStatus,
    /// The flavor's name.
    pub flavor: String,
    pub az: Option<String>,
    pub interface_ip: String,
    pub public_ipv4: String,
    pub private_ipv4: String,
    pub public_ipv6: String,
    pub host_id: String,
}

/// One image in the cloud.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FakeImage {
    pub id: String,
    pub name: String,
    /// Always `READY`: uploads complete at once.
    pub status: String,
    pub metadata: Metadata,
}

/// What a provider asks the cloud to create.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerRequest {
    pub name: String,
    /// A flavor name (see [`select_flavor`]).
    pub flavor: String,
    pub az: Option<String>,
    pub networks: Vec<String>,
    pub metadata: Metadata,
}

/// How many of each injected fault are still to come.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FaultCounts {
    pub launch_failures: u64,
    pub quota_errors: u64,
    pub delete_failures: u64,
    pub api_errors: u64,
    pub upload_failures: u64,
    pub hung_creates: u64,
    pub hung_deletes: u64,
    pub hung_console_logs: u64,
}

impl FaultCounts {
    fn from_config(faults: &FakeFaults) -> FaultCounts {
        FaultCounts {
            launch_failures: faults.launch_failures,
            quota_errors: faults.quota_errors,
            delete_failures: faults.delete_failures,
            api_errors: faults.api_errors,
            upload_failures: faults.upload_failures,
            hung_creates: faults.hung_creates,
            hung_deletes: faults.hung_deletes,
            hung_console_logs: faults.hung_console_logs,
        }
    }
}

/// Takes one from a fault counter; true when the fault fires.
fn take(counter: &mut u64) -> bool {
    if *counter > 0 {
        *counter -= 1;
        true
    } else {
        false
    }
}

/// A status change the cloud makes on its own after a delay.
#[derive(Debug, Clone, Copy)]
enum Pending {
    Becomes { at: Instant, status: ServerStatus },
    Disappears { at: Instant },
}

impl Pending {
    fn at(self) -> Instant {
        match self {
            Pending::Becomes { at, .. } | Pending::Disappears { at } => at,
        }
    }
}

/// Everything about the cloud that changes.
#[derive(Debug)]
struct CloudState {
    /// Quota, faults and delays as last configured.
    settings: FakeCloudConfig,
    faults_left: FaultCounts,
    /// In creation order.
    servers: Vec<FakeServer>,
    /// What `servers` use of the quota, kept as servers come and go (a create checks quota,
    /// and summing a big cloud's servers on each create would cost more than the create);
    /// `None` when it must be summed again.
    used: Option<Quota>,
    images: Vec<FakeImage>,
    /// Server id -> the change the cloud will make to it.
    pending: HashMap<String, Pending>,
    creates: u64,
    deletes: u64,
}

impl CloudState {
    /// Applies the pending changes that are due; true when something changed.
    fn settle(&mut self, now: Instant) -> bool {
        let due: Vec<(String, Pending)> = self
            .pending
            .iter()
            .filter(|(_, p)| p.at() <= now)
            .map(|(id, p)| (id.clone(), *p))
            .collect();
        for (id, change) in &due {
            self.pending.remove(id);
            match change {
                Pending::Becomes { status, .. } => {
                    if let Some(server) = self.servers.iter_mut().find(|s| &s.id == id) {
                        server.status = *status;
                    }
                }
                Pending::Disappears { .. } => {
                    self.servers.retain(|s| &s.id != id);
                    self.used = None;
                }
            }
        }
        !due.is_empty()
    }

    fn document(&self) -> StateDocument {
        StateDocument {
            servers: self.servers.clone(),
            images: self.images.clone(),
        }
    }

    /// What the servers use of the quota.
    fn usage(&mut self) -> Quota {
        if let Some(used) = &self.used {
            return used.clone();
        }
        // Counted per flavor first: a big cloud has many servers and few flavors.
        let mut per_flavor: std::collections::BTreeMap<&str, f64> = Default::default();
        for server in &self.servers {
            *per_flavor.entry(server.flavor.as_str()).or_default() += 1.0;
        }
        let mut used = Quota::zero();
        for (flavor, count) in per_flavor {
            used.add_scaled(&server_quota(flavor), count);
        }
        self.used = Some(used.clone());
        used
    }

    fn add_server(&mut self, server: FakeServer) {
        if let Some(used) = &mut self.used {
            used.add_assign(&server_quota(&server.flavor));
        }
        self.servers.push(server);
    }

    fn remove_server_at(&mut self, position: usize) {
        let server = self.servers.remove(position);
        if let Some(used) = &mut self.used {
            used.add_scaled(&server_quota(&server.flavor), -1.0);
        }
    }
}

/// What a server of this flavor uses: one instance plus the flavor's cores and RAM.
pub(crate) fn server_quota(flavor_name: &str) -> Quota {
    let mut quota = Quota::one_instance();
    if let Some(flavor) = flavors().iter().find(|f| f.name == flavor_name) {
        quota.set("cores", flavor.vcpus as f64);
        quota.set("ram", flavor.ram as f64);
    }
    quota
}

/// Negative limits are unlimited, as OpenStack's `-1`.
fn limit(value: i64) -> f64 {
    if value < 0 {
        f64::INFINITY
    } else {
        value as f64
    }
}

fn seconds(value: f64) -> Duration {
    Duration::try_from_secs_f64(value.max(0.0)).unwrap_or(Duration::MAX)
}

/// Addresses as the fake cloud hands them out, by the networks asked for.
struct Addresses {
    interface_ip: String,
    public_ipv4: String,
    private_ipv4: String,
    public_ipv6: String,
    host_id: String,
}

fn addresses(networks: &[String]) -> Addresses {
    if networks.iter().any(|n| n == IPV6_NETWORK) {
        Addresses {
            interface_ip: "fake_v6".into(),
            public_ipv4: "fake".into(),
            private_ipv4: "fake".into(),
            public_ipv6: "fake_v6".into(),
            host_id: "fake_host_id".into(),
        }
    } else if networks.iter().any(|n| n == NO_AUTO_IP_NETWORK) {
        Addresses {
            interface_ip: "fake".into(),
            public_ipv4: String::new(),
            private_ipv4: "fake".into(),
            public_ipv6: String::new(),
            host_id: "fake".into(),
        }
    } else {
        Addresses {
            interface_ip: "fake".into(),
            public_ipv4: "fake".into(),
            private_ipv4: "fake".into(),
            public_ipv6: String::new(),
            host_id: "fake".into(),
        }
    }
}

fn new_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

fn default_images() -> Vec<FakeImage> {
    vec![FakeImage {
        id: FAKE_IMAGE_ID.into(),
        name: FAKE_IMAGE_NAME.into(),
        status: "READY".into(),
        metadata: Metadata::new(),
    }]
}

/// One fake cloud. Shared as `Arc<FakeCloud>` by the providers built for it (a reloaded
/// provider gets the same cloud) and by tests.
#[derive(Debug)]
pub struct FakeCloud {
    /// Where servers and images persist, fixed when the cloud is made; `None`: memory only.
    state_file: Option<PathBuf>,
    /// All mutable state. A std mutex: nothing awaits while holding it. The state file is
    /// written under it so the file never goes back to an older state.
    state: Mutex<CloudState>,
}

impl FakeCloud {
    /// The settings of a provider without `fake-quota`, `fake-faults` or `fake-state`.
    pub fn default_settings() -> FakeCloudConfig {
        FakeCloudConfig {
            instances: 20,
            cores: 100,
            ram: 1_000_000,
            faults: FakeFaults::default(),
            state_file: None,
        }
    }

    /// A cloud with the default quota, no faults, in memory.
    pub fn in_memory() -> FakeCloud {
        FakeCloud {
            state_file: None,
            state: Mutex::new(CloudState {
                settings: FakeCloud::default_settings(),
                faults_left: FaultCounts::default(),
                servers: Vec::new(),
                used: None,
                images: default_images(),
                pending: HashMap::new(),
                creates: 0,
                deletes: 0,
            }),
        }
    }

    /// A cloud as configured; with a state file, its servers and images are read from it
    /// (a server still building comes back active, one being deleted comes back gone).
    pub fn new(settings: &FakeCloudConfig) -> Result<FakeCloud, DriverError> {
        let (servers, images) = match &settings.state_file {
            None => (Vec::new(), default_images()),
            Some(path) => match state_file::load(path).map_err(DriverError::Fatal)? {
                None => (Vec::new(), default_images()),
                Some(document) => {
                    let servers = document
                        .servers
                        .into_iter()
                        .filter(|s| s.status != ServerStatus::Deleting)
                        .map(|mut s| {
                            if s.status == ServerStatus::Build {
                                s.status = ServerStatus::Active;
                            }
                            s
                        })
                        .collect();
                    (servers, document.images)
                }
            },
        };
        let cloud = FakeCloud {
            state_file: settings.state_file.clone(),
            state: Mutex::new(CloudState {
                settings: settings.clone(),
                faults_left: FaultCounts::from_config(&settings.faults),
                servers,
                used: None,
                images,
                pending: HashMap::new(),
                creates: 0,
                deletes: 0,
            }),
        };
        // Write at once so the file exists (and is known writable) from the start.
        let state = cloud.lock();
        cloud.save(&state);
        drop(state);
        Ok(cloud)
    }

    /// Applies a reloaded configuration: the quota and delays follow it at once; the fault
    /// counters start again only when the configured faults changed, so a reload that keeps
    /// them does not inject the same faults twice. The state file stays the one the cloud
    /// was made with.
    pub fn configure(&self, settings: &FakeCloudConfig) {
        let mut state = self.lock();
        if state.settings.faults != settings.faults {
            state.faults_left = FaultCounts::from_config(&settings.faults);
        }
        if settings.state_file != self.state_file {
            tracing::warn!(
                configured = ?settings.state_file,
                used = ?self.state_file,
                "the fake cloud keeps the state file it was made with until restart"
            );
        }
        state.settings = settings.clone();
    }

    pub fn state_file(&self) -> Option<&Path> {
        self.state_file.as_deref()
    }

    pub fn flavors(&self) -> Vec<FakeFlavor> {
        flavors()
    }

    pub fn availability_zones(&self) -> Vec<String> {
        AVAILABILITY_ZONES.iter().map(|az| az.to_string()).collect()
    }

    /// The account's limits: `instances`, `cores`, `ram` (negative = unlimited).
    pub fn quota_limits(&self) -> Quota {
        let state = self.lock();
        let settings = &state.settings;
        Quota::unlimited()
            .with("instances", limit(settings.instances))
            .with("cores", limit(settings.cores))
            .with("ram", limit(settings.ram))
    }

    pub fn create_delay(&self) -> Duration {
        seconds(self.lock().settings.faults.create_delay)
    }

    pub fn delete_delay(&self) -> Duration {
        seconds(self.lock().settings.faults.delete_delay)
    }

    /// Creates a server. It is `BUILD` until `create-delay` has passed, then `ACTIVE`, or
    /// `ERROR` while launch failures are being injected. Fails with a quota error while
    /// quota errors are injected or when the server would not fit the quota, and with a
    /// fatal error for an unknown availability zone or flavor.
    pub fn create_server(&self, request: &ServerRequest) -> Result<FakeServer, DriverError> {
        let now = Instant::now();
        let mut state = self.lock();
        let mut changed = state.settle(now);
        let result = (|| {
            if let Some(az) = &request.az
                && !AVAILABILITY_ZONES.contains(&az.as_str())
            {
                return Err(DriverError::Fatal(format!(
                    "The requested availability zone {az} is not available"
                )));
            }
            if !flavors().iter().any(|f| f.name == request.flavor) {
                return Err(DriverError::Fatal(format!(
                    "Unable to find flavor: {}",
                    request.flavor
                )));
            }
            if take(&mut state.faults_left.quota_errors) {
                return Err(DriverError::Quota(QUOTA_EXCEEDED.into()));
            }
            let limits = Quota::unlimited()
                .with("instances", limit(state.settings.instances))
                .with("cores", limit(state.settings.cores))
                .with("ram", limit(state.settings.ram));
            // Summing every server's use is skipped when nothing is limited.
            let limited = limits.resources().any(|(_, limit)| limit.is_finite());
            if limited
                && !limits
                    .subtract(&state.usage().add(&server_quota(&request.flavor)))
                    .non_negative()
            {
                return Err(DriverError::Quota(QUOTA_EXCEEDED.into()));
            }
            let end_status = if take(&mut state.faults_left.launch_failures) {
                ServerStatus::Error
            } else {
                ServerStatus::Active
            };
            let delay = seconds(state.settings.faults.create_delay);
            let addresses = addresses(&request.networks);
            let server = FakeServer {
                id: new_id(),
                name: request.name.clone(),
                metadata: request.metadata.clone(),
                status: if delay.is_zero() {
                    end_status
                } else {
                    ServerStatus::Build
                },
                flavor: request.flavor.clone(),
                az: request.az.clone(),
                interface_ip: addresses.interface_ip,
                public_ipv4: addresses.public_ipv4,
                private_ipv4: addresses.private_ipv4,
                public_ipv6: addresses.public_ipv6,
                host_id: addresses.host_id,
            };
            if !delay.is_zero() {
                state.pending.insert(
                    server.id.clone(),
                    Pending::Becomes {
                        at: now + delay,
                        status: end_status,
                    },
                );
            }
            state.add_server(server.clone());
            state.creates += 1;
            Ok(server)
        })();
        changed |= result.is_ok();
        if changed {
            self.save(&state);
        }
        result
    }

    /// The server as it is now, if it exists.
    pub fn server(&self, id: &str) -> Option<FakeServer> {
        let state = self.settled();
        state.servers.iter().find(|s| s.id == id).cloned()
    }

    /// Deletes a server: gone at once, or `DELETING` for `delete-delay`. Fails (transient)
    /// while delete failures are injected; `NotFound` when there is no such server.
    pub fn delete_server(&self, id: &str) -> Result<(), DriverError> {
        let now = Instant::now();
        let mut state = self.lock();
        let mut changed = state.settle(now);
        let result = (|| {
            let Some(position) = state.servers.iter().position(|s| s.id == id) else {
                return Err(DriverError::NotFound(format!("server {id}")));
            };
            if state.servers[position].status == ServerStatus::Deleting {
                return Ok(());
            }
            if take(&mut state.faults_left.delete_failures) {
                return Err(DriverError::Transient(format!(
                    "injected failure deleting server {id}"
                )));
            }
            let delay = seconds(state.settings.faults.delete_delay);
            if delay.is_zero() {
                state.remove_server_at(position);
                state.pending.remove(id);
            } else {
                state.servers[position].status = ServerStatus::Deleting;
                state
                    .pending
                    .insert(id.to_string(), Pending::Disappears { at: now + delay });
            }
            state.deletes += 1;
            Ok(())
        })();
        changed |= result.is_ok();
        if changed {
            self.save(&state);
        }
        result
    }

    /// The server list as the API gives it: fails (transient) while API errors are injected.
    pub fn list_servers(&self) -> Result<Vec<FakeServer>, DriverError> {
        let mut state = self.settled();
        if take(&mut state.faults_left.api_errors) {
            return Err(DriverError::Transient("injected API error".into()));
        }
        Ok(state.servers.clone())
    }

    /// Every server, without faults (for tests).
    pub fn servers(&self) -> Vec<FakeServer> {
        self.settled().servers.clone()
    }

    /// Adds an active server behind nodepool's back (an unmanaged or leaked instance) of
    /// flavor `Fake Flavor`; returns its id. Not counted by [`FakeCloud::creates`] and
    /// not subject to quota or faults.
    pub fn insert_server(&self, name: &str, metadata: Metadata) -> String {
        let mut state = self.settled();
        let addresses = addresses(&[]);
        let id = new_id();
        state.add_server(FakeServer {
            id: id.clone(),
            name: name.to_string(),
            metadata,
            status: ServerStatus::Active,
            flavor: "Fake Flavor".into(),
            az: None,
            interface_ip: addresses.interface_ip,
            public_ipv4: addresses.public_ipv4,
            private_ipv4: addresses.private_ipv4,
            public_ipv6: addresses.public_ipv6,
            host_id: addresses.host_id,
        });
        self.save(&state);
        id
    }

    /// Removes a server behind nodepool's back; false if there was none.
    pub fn remove_server(&self, id: &str) -> bool {
        let mut state = self.settled();
        let before = state.servers.len();
        state.servers.retain(|s| s.id != id);
        state.used = None;
        state.pending.remove(id);
        let removed = state.servers.len() != before;
        if removed {
            self.save(&state);
        }
        removed
    }

    /// Sets a server's status behind nodepool's back (e.g. `ERROR`); false if there is no
    /// such server.
    pub fn set_server_status(&self, id: &str, status: ServerStatus) -> bool {
        let mut state = self.settled();
        state.pending.remove(id);
        let Some(server) = state.servers.iter_mut().find(|s| s.id == id) else {
            return false;
        };
        server.status = status;
        self.save(&state);
        true
    }

    pub fn images(&self) -> Vec<FakeImage> {
        self.lock().images.clone()
    }

    /// Stores an image (`READY` at once) and returns it; fails (fatal) while upload failures
    /// are injected.
    pub fn upload_image(&self, name: &str, metadata: Metadata) -> Result<FakeImage, DriverError> {
        let mut state = self.lock();
        if take(&mut state.faults_left.upload_failures) {
            return Err(DriverError::Fatal(format!(
                "injected failure uploading image {name}"
            )));
        }
        let image = FakeImage {
            id: new_id(),
            name: name.to_string(),
            status: "READY".into(),
            metadata,
        };
        state.images.push(image.clone());
        self.save(&state);
        Ok(image)
    }

    /// Deletes an image by id; `NotFound` if there is none.
    pub fn delete_image(&self, id: &str) -> Result<(), DriverError> {
        let mut state = self.lock();
        let before = state.images.len();
        state.images.retain(|i| i.id != id);
        if state.images.len() == before {
            return Err(DriverError::NotFound(format!("image {id}")));
        }
        self.save(&state);
        Ok(())
    }

    /// Servers created through [`FakeCloud::create_server`] (including those that end in
    /// `ERROR`).
    pub fn creates(&self) -> u64 {
        self.lock().creates
    }

    /// Deletes accepted by [`FakeCloud::delete_server`].
    pub fn deletes(&self) -> u64 {
        self.lock().deletes
    }

    /// True when this server create is to hang (`hung-creates`): the caller then never
    /// answers and creates nothing.
    pub fn create_hangs(&self) -> bool {
        take(&mut self.lock().faults_left.hung_creates)
    }

    /// True when this server delete is to hang (`hung-deletes`): the caller then never
    /// answers and deletes nothing.
    pub fn delete_hangs(&self) -> bool {
        take(&mut self.lock().faults_left.hung_deletes)
    }

    /// True when this console log fetch is to hang (`hung-console-logs`).
    pub fn console_log_hangs(&self) -> bool {
        take(&mut self.lock().faults_left.hung_console_logs)
    }

    /// The injected faults still to come.
    pub fn faults_left(&self) -> FaultCounts {
        self.lock().faults_left
    }

    fn lock(&self) -> MutexGuard<'_, CloudState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The state with the due changes applied (and saved).
    fn settled(&self) -> MutexGuard<'_, CloudState> {
        let mut state = self.lock();
        if state.settle(Instant::now()) {
            self.save(&state);
        }
        state
    }

    /// Writes the state file, if any. A failure is logged, not returned: the cloud in memory
    /// is the truth and the operation did happen.
    fn save(&self, state: &CloudState) {
        if let Some(path) = &self.state_file
            && let Err(error) = state_file::save(path, &state.document())
        {
            tracing::error!(%error, "cannot save the fake cloud's state");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(name: &str) -> ServerRequest {
        ServerRequest {
            name: name.into(),
            flavor: "Fake Flavor".into(),
            az: None,
            networks: Vec::new(),
            metadata: Metadata::new(),
        }
    }

    #[test]
    fn flavor_by_exact_name_or_by_ram() {
        let flavors = flavors();
        let name = |f: Option<&FakeFlavor>| f.map(|f| f.name.clone());
        assert_eq!(
            name(select_flavor(&flavors, Some("Unreal Flavor"), None)),
            Some("Unreal Flavor".into())
        );
        assert_eq!(name(select_flavor(&flavors, Some("Unreal"), None)), None);
        assert_eq!(
            name(select_flavor(&flavors, Some("unreal-flavor-id"), None)),
            Some("Unreal Flavor".into())
        );
        assert_eq!(
            name(select_flavor(&flavors, None, Some(1024))),
            Some("Fake Flavor".into()),
            "the smallest flavor with enough RAM"
        );
        assert_eq!(
            name(select_flavor(&flavors, Some("Unreal"), Some(8192))),
            Some("Unreal Flavor".into()),
            "with min-ram the name is a substring"
        );
        assert_eq!(name(select_flavor(&flavors, None, Some(8193))), None);
        assert_eq!(name(select_flavor(&flavors, None, None)), None);
    }

    #[test]
    fn default_quota_stops_at_twenty_instances() {
        let cloud = FakeCloud::in_memory();
        for i in 0..20 {
            cloud
                .create_server(&request(&format!("np{i}")))
                .expect("fits");
        }
        assert_eq!(
            cloud.create_server(&request("np20")),
            Err(DriverError::Quota(QUOTA_EXCEEDED.into()))
        );
        assert_eq!(cloud.creates(), 20);
    }

    #[test]
    fn cores_quota_counts_flavors() {
        let mut settings = FakeCloud::default_settings();
        settings.cores = 10;
        let cloud = FakeCloud::new(&settings).expect("cloud");
        cloud.create_server(&request("a")).expect("4 cores");
        cloud.create_server(&request("b")).expect("8 cores");
        assert!(matches!(
            cloud.create_server(&request("c")),
            Err(DriverError::Quota(_))
        ));
        settings.cores = -1;
        cloud.configure(&settings);
        cloud.create_server(&request("c")).expect("unlimited");
    }

    #[test]
    fn unknown_availability_zone_is_refused() {
        let cloud = FakeCloud::in_memory();
        let mut asked = request("np1");
        asked.az = Some("az3".into());
        assert!(matches!(
            cloud.create_server(&asked),
            Err(DriverError::Fatal(_))
        ));
        asked.az = Some("az2".into());
        assert_eq!(
            cloud.create_server(&asked).expect("az2").az.as_deref(),
            Some("az2")
        );
    }

    #[test]
    fn ipv6_network_changes_the_interface_address() {
        let cloud = FakeCloud::in_memory();
        let mut asked = request("np1");
        asked.networks = vec![IPV6_NETWORK.into()];
        let server = cloud.create_server(&asked).expect("server");
        assert_eq!(server.interface_ip, "fake_v6");
        let plain = cloud.create_server(&request("np2")).expect("server");
        assert_eq!(
            (
                plain.interface_ip.as_str(),
                plain.public_ipv4.as_str(),
                plain.private_ipv4.as_str(),
                plain.public_ipv6.as_str(),
                plain.host_id.as_str()
            ),
            ("fake", "fake", "fake", "", "fake")
        );
    }

    #[test]
    fn reconfiguring_keeps_counters_unless_the_faults_change() {
        let mut settings = FakeCloud::default_settings();
        settings.faults.delete_failures = 2;
        let cloud = FakeCloud::new(&settings).expect("cloud");
        let id = cloud.create_server(&request("np1")).expect("server").id;
        assert!(matches!(
            cloud.delete_server(&id),
            Err(DriverError::Transient(_))
        ));
        cloud.configure(&settings);
        assert_eq!(cloud.faults_left().delete_failures, 1, "same faults: kept");
        settings.faults.delete_failures = 3;
        cloud.configure(&settings);
        assert_eq!(
            cloud.faults_left().delete_failures,
            3,
            "new faults: restarted"
        );
    }

    #[test]
    fn delays_hold_the_status_until_they_pass() {
        let mut settings = FakeCloud::default_settings();
        settings.faults.create_delay = 3600.0;
        settings.faults.delete_delay = 3600.0;
        let cloud = FakeCloud::new(&settings).expect("cloud");
        let server = cloud.create_server(&request("np1")).expect("server");
        assert_eq!(server.status, ServerStatus::Build);
        cloud.delete_server(&server.id).expect("delete");
        assert_eq!(
            cloud.server(&server.id).map(|s| s.status),
            Some(ServerStatus::Deleting)
        );
        // Due changes are applied when they are due.
        let mut state = cloud.lock();
        assert!(state.settle(Instant::now() + Duration::from_secs(3601)));
        assert!(state.servers.is_empty());
    }
}
