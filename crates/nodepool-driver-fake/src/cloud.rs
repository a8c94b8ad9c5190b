//! The fake cloud (spec 7.4): servers, images, flavors, availability zones, a quota, and
//! the faults `fake-faults` asks for; in memory, or shared through a `fake-state` file.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use nodepool_config::{FakeCloud as FakeCloudConfig, FakeFaults};
use nodepool_driver::{DriverError, Metadata, Quota};
use serde::{Deserialize, Serialize};

use crate::fault_rng::FaultRng;
use crate::state_file::{
    Loaded, SharedStateFile, StateDocument, StoredChange, StoredServer, Version,
};

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

/// Injected faults by kind: how many are still to come ([`FakeCloud::faults_left`], the
/// counted faults) or how many were injected so far ([`FakeCloud::faults_injected`], counted
/// and drawn at a rate alike).
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

    fn of(&mut self, kind: FaultKind) -> &mut u64 {
        match kind {
            FaultKind::LaunchFailure => &mut self.launch_failures,
            FaultKind::QuotaError => &mut self.quota_errors,
            FaultKind::DeleteFailure => &mut self.delete_failures,
            FaultKind::ApiError => &mut self.api_errors,
            FaultKind::UploadFailure => &mut self.upload_failures,
            FaultKind::HungCreate => &mut self.hung_creates,
            FaultKind::HungDelete => &mut self.hung_deletes,
            FaultKind::HungConsoleLog => &mut self.hung_console_logs,
        }
    }
}

/// One kind of injected fault (a field of [`FaultCounts`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FaultKind {
    LaunchFailure,
    QuotaError,
    DeleteFailure,
    ApiError,
    UploadFailure,
    HungCreate,
    HungDelete,
    HungConsoleLog,
}

/// The faults this client injects into its own calls. They belong to the process, not to
/// the cloud: launchers sharing a state file each count and draw their own.
#[derive(Debug)]
struct Faults {
    /// Counted faults still to come (the first N calls of a kind fail).
    left: FaultCounts,
    /// Every fault injected so far, counted or drawn, so a run can report them; kept when a
    /// reload restarts the counters.
    injected: FaultCounts,
    /// The draws for the rates, from `fault-seed` and the process id.
    draws: FaultRng,
}

impl Faults {
    fn new(config: &FakeFaults) -> Faults {
        Faults {
            left: FaultCounts::from_config(config),
            injected: FaultCounts::default(),
            draws: FaultRng::for_this_process(config.fault_seed),
        }
    }

    /// Starts the counters and the draws again for new settings.
    fn restart(&mut self, config: &FakeFaults) {
        self.left = FaultCounts::from_config(config);
        self.draws = FaultRng::for_this_process(config.fault_seed);
    }

    /// True when a counted fault of `kind` is left (and takes it).
    fn take(&mut self, kind: FaultKind) -> bool {
        let left = self.left.of(kind);
        if *left == 0 {
            return false;
        }
        *left -= 1;
        *self.injected.of(kind) += 1;
        true
    }

    /// True when the next draw falls under `rate` (nothing is drawn at rate 0).
    fn draw(&mut self, kind: FaultKind, rate: f64) -> bool {
        if !self.draws.chance(rate) {
            return false;
        }
        *self.injected.of(kind) += 1;
        true
    }

    /// A counted fault of `kind`, or else one drawn at `rate`.
    fn take_or_draw(&mut self, kind: FaultKind, rate: f64) -> bool {
        self.take(kind) || self.draw(kind, rate)
    }
}

/// A status change the cloud makes on its own at a wall-clock time (seconds since the Unix
/// epoch, so every process sharing a state file agrees on it).
#[derive(Debug, Clone, Copy, PartialEq)]
enum Pending {
    Becomes { at: f64, status: ServerStatus },
    Disappears { at: f64 },
}

impl Pending {
    fn at(self) -> f64 {
        match self {
            Pending::Becomes { at, .. } | Pending::Disappears { at } => at,
        }
    }

    fn from_stored(change: StoredChange) -> Pending {
        match change {
            StoredChange::Becomes { at, status } => Pending::Becomes { at, status },
            StoredChange::Disappears { at } => Pending::Disappears { at },
        }
    }

    fn to_stored(self) -> StoredChange {
        match self {
            Pending::Becomes { at, status } => StoredChange::Becomes { at, status },
            Pending::Disappears { at } => StoredChange::Disappears { at },
        }
    }
}

/// Wall-clock seconds since the Unix epoch: the clock of the delays.
fn epoch_seconds_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|since| since.as_secs_f64())
        .unwrap_or(0.0)
}

/// What the cloud holds, the same for every client: servers, images and the changes the
/// cloud will make on its own. With a state file this is this process's copy of the
/// document at [`CloudState::version`].
#[derive(Debug)]
struct CloudContents {
    /// In creation order.
    servers: Vec<FakeServer>,
    /// What `servers` use of the quota, kept as servers come and go (a create checks quota,
    /// and summing a big cloud's servers on each create would cost more than the create);
    /// `None` when it must be summed again.
    used: Option<Quota>,
    images: Vec<FakeImage>,
    /// Server id -> the change the cloud will make to it.
    pending: HashMap<String, Pending>,
    /// Set by every change, so a file-backed cloud knows to save; only read with a file.
    changed: bool,
}

impl CloudContents {
    /// A new cloud: no servers, the default image.
    fn new() -> CloudContents {
        CloudContents {
            servers: Vec::new(),
            used: None,
            images: default_images(),
            pending: HashMap::new(),
            changed: false,
        }
    }

    fn from_document(document: StateDocument) -> CloudContents {
        let mut pending = HashMap::new();
        let mut servers = Vec::with_capacity(document.servers.len());
        for stored in document.servers {
            if let Some(change) = stored.pending {
                pending.insert(stored.server.id.clone(), Pending::from_stored(change));
            }
            servers.push(stored.server);
        }
        CloudContents {
            servers,
            used: None,
            images: document.images,
            pending,
            changed: false,
        }
    }

    fn to_document(&self, version: &Version) -> StateDocument {
        StateDocument {
            cloud_id: version.cloud_id.clone(),
            generation: version.generation,
            servers: self
                .servers
                .iter()
                .map(|server| StoredServer {
                    server: server.clone(),
                    pending: self.pending.get(&server.id).map(|p| p.to_stored()),
                })
                .collect(),
            images: self.images.clone(),
        }
    }

    /// Applies the pending changes that are due at `now`.
    fn settle(&mut self, now: f64) {
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
            self.changed = true;
        }
    }

    fn server(&self, id: &str) -> Option<&FakeServer> {
        self.servers.iter().find(|s| s.id == id)
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

    fn add_server(&mut self, server: FakeServer, pending: Option<Pending>) {
        if let Some(used) = &mut self.used {
            used.add_assign(&server_quota(&server.flavor));
        }
        if let Some(pending) = pending {
            self.pending.insert(server.id.clone(), pending);
        }
        self.servers.push(server);
        self.changed = true;
    }

    /// Removes a server at once; false if there was none.
    fn remove_server(&mut self, id: &str) -> bool {
        self.pending.remove(id);
        let Some(position) = self.servers.iter().position(|s| s.id == id) else {
            return false;
        };
        let server = self.servers.remove(position);
        if let Some(used) = &mut self.used {
            used.add_scaled(&server_quota(&server.flavor), -1.0);
        }
        self.changed = true;
        true
    }

    /// Sets a server's status, replacing any pending change with `pending`; false if there
    /// is no such server.
    fn set_status(&mut self, id: &str, status: ServerStatus, pending: Option<Pending>) -> bool {
        let Some(server) = self.servers.iter_mut().find(|s| s.id == id) else {
            return false;
        };
        server.status = status;
        match pending {
            Some(pending) => self.pending.insert(id.to_string(), pending),
            None => self.pending.remove(id),
        };
        self.changed = true;
        true
    }

    fn add_image(&mut self, image: FakeImage) {
        self.images.push(image);
        self.changed = true;
    }

    /// False if there is no such image.
    fn remove_image(&mut self, id: &str) -> bool {
        let before = self.images.len();
        self.images.retain(|i| i.id != id);
        let removed = self.images.len() != before;
        self.changed |= removed;
        removed
    }
}

/// Everything about the cloud that changes, for this client.
#[derive(Debug)]
struct CloudState {
    /// Quota, faults and delays as last configured.
    settings: FakeCloudConfig,
    /// This process's injected faults.
    faults: Faults,
    /// The servers and images (with a state file, as last read or written).
    contents: CloudContents,
    /// With a state file: the version of the document `contents` copies; `None` before the
    /// first read and after a failed read or save, so the next operation reads the file.
    version: Option<Version>,
    /// Creates and deletes accepted from this client.
    creates: u64,
    deletes: u64,
}

impl CloudState {
    fn new(settings: &FakeCloudConfig) -> CloudState {
        CloudState {
            settings: settings.clone(),
            faults: Faults::new(&settings.faults),
            contents: CloudContents::new(),
            version: None,
            creates: 0,
            deletes: 0,
        }
    }

    /// Fails the call with a transient API error at `api-error-rate`; for listings, the
    /// counted `api-errors` come first.
    fn inject_api_error(&mut self, counted: bool) -> Result<(), DriverError> {
        let rate = self.settings.faults.api_error_rate;
        if (counted && self.faults.take(FaultKind::ApiError))
            || self.faults.draw(FaultKind::ApiError, rate)
        {
            return Err(DriverError::Transient("injected API error".into()));
        }
        Ok(())
    }

    fn create_server(
        &mut self,
        request: &ServerRequest,
        now: f64,
    ) -> Result<FakeServer, DriverError> {
        self.inject_api_error(false)?;
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
        let quota_error_rate = self.settings.faults.quota_error_rate;
        if self
            .faults
            .take_or_draw(FaultKind::QuotaError, quota_error_rate)
        {
            return Err(DriverError::Quota(QUOTA_EXCEEDED.into()));
        }
        let limits = Quota::unlimited()
            .with("instances", limit(self.settings.instances))
            .with("cores", limit(self.settings.cores))
            .with("ram", limit(self.settings.ram));
        // Summing every server's use is skipped when nothing is limited.
        let limited = limits.resources().any(|(_, limit)| limit.is_finite());
        if limited
            && !limits
                .subtract(&self.contents.usage().add(&server_quota(&request.flavor)))
                .non_negative()
        {
            return Err(DriverError::Quota(QUOTA_EXCEEDED.into()));
        }
        let end_status = if self.faults.take(FaultKind::LaunchFailure) {
            ServerStatus::Error
        } else {
            ServerStatus::Active
        };
        let delay = seconds(self.settings.faults.create_delay);
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
        let pending = (!delay.is_zero()).then_some(Pending::Becomes {
            at: now + delay.as_secs_f64(),
            status: end_status,
        });
        self.contents.add_server(server.clone(), pending);
        self.creates += 1;
        Ok(server)
    }

    fn delete_server(&mut self, id: &str, now: f64) -> Result<(), DriverError> {
        self.inject_api_error(false)?;
        let Some(server) = self.contents.server(id) else {
            return Err(DriverError::NotFound(format!("server {id}")));
        };
        if server.status == ServerStatus::Deleting {
            return Ok(());
        }
        let delete_failure_rate = self.settings.faults.delete_failure_rate;
        if self
            .faults
            .take_or_draw(FaultKind::DeleteFailure, delete_failure_rate)
        {
            return Err(DriverError::Transient(format!(
                "injected failure deleting server {id}"
            )));
        }
        let delay = seconds(self.settings.faults.delete_delay);
        if delay.is_zero() {
            self.contents.remove_server(id);
        } else {
            self.contents.set_status(
                id,
                ServerStatus::Deleting,
                Some(Pending::Disappears {
                    at: now + delay.as_secs_f64(),
                }),
            );
        }
        self.deletes += 1;
        Ok(())
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

/// One fake cloud, as one client (process) sees it. Shared as `Arc<FakeCloud>` by the
/// providers built for it (a reloaded provider gets the same cloud) and by tests.
///
/// Without a state file the cloud lives in this value. With one, the file is the cloud and
/// this value a client of it: several processes (or several `FakeCloud`s) on one file see
/// the same servers and images (see `state_file.rs` for the locking).
#[derive(Debug)]
pub struct FakeCloud {
    /// The shared state file and its lock, fixed when the cloud is made; `None`: memory only.
    state_file: Option<SharedStateFile>,
    /// All mutable state. A std mutex: nothing awaits while holding it. With a state file
    /// the file's lock is taken while holding it (always in that order), so the threads of
    /// this process take turns before they contend with other processes.
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
            state: Mutex::new(CloudState::new(&FakeCloud::default_settings())),
        }
    }

    /// A cloud as configured. With a state file, the file is read at once (and made, with
    /// the default image, when it does not exist), so a broken file or an unwritable
    /// directory is an error here rather than at the first create.
    pub fn new(settings: &FakeCloudConfig) -> Result<FakeCloud, DriverError> {
        let state_file = settings
            .state_file
            .as_deref()
            .map(SharedStateFile::open)
            .transpose()
            .map_err(DriverError::Fatal)?;
        let cloud = FakeCloud {
            state_file,
            state: Mutex::new(CloudState::new(settings)),
        };
        cloud.transact(|_, _| Ok(())).map_err(|error| match error {
            DriverError::Transient(message) => DriverError::Fatal(message),
            other => other,
        })?;
        Ok(cloud)
    }

    /// Applies a reloaded configuration: the quota and delays follow it at once; the fault
    /// counters and draws start again only when the configured faults changed, so a reload
    /// that keeps them does not inject the same faults twice. The state file stays the one
    /// the cloud was made with.
    pub fn configure(&self, settings: &FakeCloudConfig) {
        let mut state = self.lock();
        if state.settings.faults != settings.faults {
            state.faults.restart(&settings.faults);
        }
        if settings.state_file.as_deref() != self.state_file() {
            tracing::warn!(
                configured = ?settings.state_file,
                used = ?self.state_file(),
                "the fake cloud keeps the state file it was made with until restart"
            );
        }
        state.settings = settings.clone();
    }

    pub fn state_file(&self) -> Option<&Path> {
        self.state_file.as_ref().map(SharedStateFile::path)
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
    /// quota errors are injected (counted or at `quota-error-rate`) or when the server would
    /// not fit the quota, with a transient error at `api-error-rate`, and with a fatal error
    /// for an unknown availability zone or flavor.
    pub fn create_server(&self, request: &ServerRequest) -> Result<FakeServer, DriverError> {
        self.transact(|state, now| state.create_server(request, now))
    }

    /// The server as it is now, if it exists, without faults (for tests; a provider asks
    /// [`FakeCloud::get_server`]).
    pub fn server(&self, id: &str) -> Option<FakeServer> {
        self.transact(|state, _| Ok(state.contents.server(id).cloned()))
            .unwrap_or_else(|error| self.last_known(error, |c| c.server(id).cloned()))
    }

    /// The server as the API shows it, `None` when there is no such server; fails
    /// (transient) at `api-error-rate`.
    pub fn get_server(&self, id: &str) -> Result<Option<FakeServer>, DriverError> {
        self.transact(|state, _| {
            state.inject_api_error(false)?;
            Ok(state.contents.server(id).cloned())
        })
    }

    /// Deletes a server: gone at once, or `DELETING` for `delete-delay`. Fails (transient)
    /// while delete failures are injected (counted or at `delete-failure-rate`) and at
    /// `api-error-rate`; `NotFound` when there is no such server.
    pub fn delete_server(&self, id: &str) -> Result<(), DriverError> {
        self.transact(|state, now| state.delete_server(id, now))
    }

    /// The server list as the API gives it: fails (transient) while API errors are injected
    /// (the counted `api-errors` first, then at `api-error-rate`).
    pub fn list_servers(&self) -> Result<Vec<FakeServer>, DriverError> {
        self.transact(|state, _| {
            state.inject_api_error(true)?;
            Ok(state.contents.servers.clone())
        })
    }

    /// Every server, without faults (for tests).
    pub fn servers(&self) -> Vec<FakeServer> {
        self.transact(|state, _| Ok(state.contents.servers.clone()))
            .unwrap_or_else(|error| self.last_known(error, |c| c.servers.clone()))
    }

    /// Adds an active server behind nodepool's back (an unmanaged or leaked instance) of
    /// flavor `Fake Flavor`; returns its id. Not counted by [`FakeCloud::creates`] and
    /// not subject to quota or faults.
    pub fn insert_server(&self, name: &str, metadata: Metadata) -> String {
        let addresses = addresses(&[]);
        let server = FakeServer {
            id: new_id(),
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
        };
        let id = server.id.clone();
        if let Err(error) = self.transact(|state, _| {
            state.contents.add_server(server, None);
            Ok(())
        }) {
            tracing::error!(%error, "cannot add a server to the fake cloud");
        }
        id
    }

    /// Removes a server behind nodepool's back; false if there was none.
    pub fn remove_server(&self, id: &str) -> bool {
        self.transact(|state, _| Ok(state.contents.remove_server(id)))
            .unwrap_or_else(|error| self.last_known(error, |_| false))
    }

    /// Sets a server's status behind nodepool's back (e.g. `ERROR`); false if there is no
    /// such server.
    pub fn set_server_status(&self, id: &str, status: ServerStatus) -> bool {
        self.transact(|state, _| Ok(state.contents.set_status(id, status, None)))
            .unwrap_or_else(|error| self.last_known(error, |_| false))
    }

    pub fn images(&self) -> Vec<FakeImage> {
        self.transact(|state, _| Ok(state.contents.images.clone()))
            .unwrap_or_else(|error| self.last_known(error, |c| c.images.clone()))
    }

    /// Stores an image (`READY` at once) and returns it; fails (fatal) while upload failures
    /// are injected.
    pub fn upload_image(&self, name: &str, metadata: Metadata) -> Result<FakeImage, DriverError> {
        self.transact(|state, _| {
            if state.faults.take(FaultKind::UploadFailure) {
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
            state.contents.add_image(image.clone());
            Ok(image)
        })
    }

    /// Deletes an image by id; `NotFound` if there is none.
    pub fn delete_image(&self, id: &str) -> Result<(), DriverError> {
        self.transact(|state, _| {
            if state.contents.remove_image(id) {
                Ok(())
            } else {
                Err(DriverError::NotFound(format!("image {id}")))
            }
        })
    }

    /// Servers created through [`FakeCloud::create_server`] of this cloud value (including
    /// those that end in `ERROR`).
    pub fn creates(&self) -> u64 {
        self.lock().creates
    }

    /// Deletes accepted by [`FakeCloud::delete_server`] of this cloud value.
    pub fn deletes(&self) -> u64 {
        self.lock().deletes
    }

    /// True when this server create is to hang (`hung-creates`, then `hung-call-rate`):
    /// the caller then never answers and creates nothing.
    pub fn create_hangs(&self) -> bool {
        let mut state = self.lock();
        let rate = state.settings.faults.hung_call_rate;
        state.faults.take_or_draw(FaultKind::HungCreate, rate)
    }

    /// True when this server delete is to hang (`hung-deletes`, then `hung-call-rate`):
    /// the caller then never answers and deletes nothing.
    pub fn delete_hangs(&self) -> bool {
        let mut state = self.lock();
        let rate = state.settings.faults.hung_call_rate;
        state.faults.take_or_draw(FaultKind::HungDelete, rate)
    }

    /// True when this console log fetch is to hang (`hung-console-logs`).
    pub fn console_log_hangs(&self) -> bool {
        self.lock().faults.take(FaultKind::HungConsoleLog)
    }

    /// The counted faults still to come.
    pub fn faults_left(&self) -> FaultCounts {
        self.lock().faults.left
    }

    /// The faults this cloud value has injected so far, counted or drawn at a rate, by kind
    /// (`hung_creates` and `hung_deletes` include those of `hung-call-rate`). Kept across
    /// reloads.
    pub fn faults_injected(&self) -> FaultCounts {
        self.lock().faults.injected
    }

    fn lock(&self) -> MutexGuard<'_, CloudState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `operation` on the cloud as it is now (due changes applied) with the time in
    /// epoch seconds, for this client.
    ///
    /// In memory that is all. With a state file it is one read-modify-write of the file under
    /// its lock: take the lock (waiting for other processes), read the document again when
    /// another process saved since this one read it, apply the due changes and the
    /// operation, save when anything changed (the file is made if missing), release. The
    /// section is synchronous and short (a small local file: one read, and for a change one
    /// write with two fsyncs); it runs on the caller's thread, and since every caller is a
    /// plain function, no lock is ever held across an await. A failed read or save is a
    /// transient error, and the copy is read again by the next operation (a failed save
    /// loses the operation's change, as it would be lost in the cloud).
    fn transact<T>(
        &self,
        operation: impl FnOnce(&mut CloudState, f64) -> Result<T, DriverError>,
    ) -> Result<T, DriverError> {
        let now = epoch_seconds_now();
        let mut guard = self.lock();
        let state = &mut *guard;
        let Some(file) = &self.state_file else {
            state.contents.settle(now);
            return operation(state, now);
        };
        let held = file.lock().map_err(DriverError::Transient)?;
        let loaded = file.load_if_changed(&held, state.version.as_ref());
        let mut must_save = false;
        match loaded {
            Ok(Loaded::Unchanged) => {}
            Ok(Loaded::Changed(document)) => {
                state.version = Some(document.version());
                state.contents = CloudContents::from_document(document);
            }
            Ok(Loaded::Missing) => {
                state.version = Some(Version::new_cloud());
                state.contents = CloudContents::new();
                must_save = true;
            }
            Err(message) => {
                state.version = None;
                return Err(DriverError::Transient(message));
            }
        }
        state.contents.changed = false;
        state.contents.settle(now);
        let accepted = (state.creates, state.deletes);
        let answer = operation(state, now);
        if must_save || state.contents.changed {
            let next = state
                .version
                .as_ref()
                .map(Version::next)
                .unwrap_or_else(Version::new_cloud);
            let saved = file.save(&held, &state.contents.to_document(&next));
            state.contents.changed = false;
            match saved {
                Ok(()) => state.version = Some(next),
                Err(message) => {
                    state.version = None;
                    (state.creates, state.deletes) = accepted;
                    return Err(DriverError::Transient(message));
                }
            }
        }
        drop(held);
        answer
    }

    /// The answer from this process's last copy of the cloud, when the state file cannot be
    /// read or written (for the helpers that cannot return an error; logged).
    fn last_known<T>(&self, error: DriverError, read: impl FnOnce(&CloudContents) -> T) -> T {
        tracing::error!(%error, "the fake cloud's state file failed; answering from the last state read");
        read(&self.lock().contents)
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
        state.contents.settle(epoch_seconds_now() + 3601.0);
        assert!(state.contents.servers.is_empty());
    }

    fn cloud_with_faults(faults: FakeFaults) -> FakeCloud {
        let mut settings = FakeCloud::default_settings();
        (settings.instances, settings.cores, settings.ram) = (-1, -1, -1);
        settings.faults = faults;
        FakeCloud::new(&settings).expect("cloud")
    }

    fn transient(result: Result<impl std::fmt::Debug, DriverError>) -> bool {
        matches!(result, Err(DriverError::Transient(_)))
    }

    #[test]
    fn an_api_error_rate_of_one_fails_every_server_call_and_zero_none() {
        let cloud = cloud_with_faults(FakeFaults {
            api_error_rate: 1.0,
            ..FakeFaults::default()
        });
        let id = cloud.insert_server("unmanaged", Metadata::new());
        for _ in 0..10 {
            assert!(transient(cloud.create_server(&request("np"))));
            assert!(transient(cloud.get_server(&id)));
            assert!(transient(cloud.list_servers()));
            assert!(transient(cloud.delete_server(&id)));
        }
        assert_eq!(cloud.faults_injected().api_errors, 40);
        assert_eq!(cloud.servers().len(), 1, "nothing was created or deleted");
        assert_eq!((cloud.creates(), cloud.deletes()), (0, 0));

        let cloud = cloud_with_faults(FakeFaults::default());
        let id = cloud.insert_server("unmanaged", Metadata::new());
        for n in 0..100 {
            cloud
                .create_server(&request(&format!("np{n}")))
                .expect("create");
            cloud.get_server(&id).expect("get").expect("exists");
            cloud.list_servers().expect("list");
        }
        cloud.delete_server(&id).expect("delete");
        assert_eq!(cloud.faults_injected(), FaultCounts::default());
    }

    #[test]
    fn quota_delete_and_hang_rates_of_one_always_fire_and_are_counted() {
        let cloud = cloud_with_faults(FakeFaults {
            quota_error_rate: 1.0,
            delete_failure_rate: 1.0,
            hung_call_rate: 1.0,
            ..FakeFaults::default()
        });
        let id = cloud.insert_server("unmanaged", Metadata::new());
        for _ in 0..5 {
            assert_eq!(
                cloud.create_server(&request("np")),
                Err(DriverError::Quota(QUOTA_EXCEEDED.into()))
            );
            assert!(transient(cloud.delete_server(&id)));
            assert!(cloud.create_hangs());
            assert!(cloud.delete_hangs());
        }
        assert!(
            !cloud.console_log_hangs(),
            "hung-call-rate is for creates and deletes"
        );
        let injected = cloud.faults_injected();
        assert_eq!(
            (
                injected.quota_errors,
                injected.delete_failures,
                injected.hung_creates,
                injected.hung_deletes,
                injected.api_errors
            ),
            (5, 5, 5, 5, 0)
        );
        assert_eq!(cloud.faults_left(), FaultCounts::default());
    }

    #[test]
    fn counted_faults_come_first_then_the_rate() {
        let cloud = cloud_with_faults(FakeFaults {
            api_errors: 2,
            delete_failures: 1,
            ..FakeFaults::default()
        });
        assert!(transient(cloud.list_servers()));
        assert!(transient(cloud.list_servers()));
        cloud
            .list_servers()
            .expect("the counted errors are used up");
        cloud
            .get_server("none")
            .expect("counted api-errors are for listings only");
        let id = cloud.create_server(&request("np")).expect("create").id;
        assert!(transient(cloud.delete_server(&id)));
        cloud.delete_server(&id).expect("deleted");
        let injected = cloud.faults_injected();
        assert_eq!((injected.api_errors, injected.delete_failures), (2, 1));
    }

    /// Which of `calls` listings fail.
    fn failures(cloud: &FakeCloud, calls: usize) -> Vec<bool> {
        (0..calls).map(|_| cloud.list_servers().is_err()).collect()
    }

    #[test]
    fn the_same_seed_gives_the_same_faults_in_one_process() {
        let faults = |seed| FakeFaults {
            api_error_rate: 0.5,
            fault_seed: seed,
            ..FakeFaults::default()
        };
        let first = failures(&cloud_with_faults(faults(11)), 200);
        assert_eq!(first, failures(&cloud_with_faults(faults(11)), 200));
        assert_ne!(first, failures(&cloud_with_faults(faults(12)), 200));
        let fired = first.iter().filter(|f| **f).count();
        assert!((60..=140).contains(&fired), "{fired} of 200 at rate 0.5");
    }

    #[test]
    fn a_reload_with_new_faults_restarts_the_draws_and_keeps_the_tally() {
        let mut settings = FakeCloud::default_settings();
        settings.faults.api_error_rate = 0.5;
        settings.faults.fault_seed = 5;
        let cloud = FakeCloud::new(&settings).expect("cloud");
        let before = failures(&cloud, 50);
        let injected = cloud.faults_injected().api_errors;
        assert_eq!(injected, before.iter().filter(|f| **f).count() as u64);
        cloud.configure(&settings);
        assert_ne!(failures(&cloud, 50), before, "same faults: the draws go on");
        settings.faults.fault_seed = 6;
        cloud.configure(&settings);
        settings.faults.fault_seed = 5;
        cloud.configure(&settings);
        assert_eq!(
            failures(&cloud, 50),
            before,
            "new faults: the draws start again"
        );
        assert!(
            cloud.faults_injected().api_errors > injected,
            "the tally is kept"
        );
    }
}
