//! The real processes of a fault run: a ZooKeeper server, launcher processes that can be
//! SIGKILLed and started again, and the fake clouds' state files they share.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use nodepool_model::ComponentKind;
use nodepool_store::{SqliteBackend, SqliteOptions, Store};
use nodepool_store_zk::{ZooKeeperBackend, ZooKeeperOptions};
use nodepool_testkit::{ServerOptions, TcpProxy, ZooKeeperEnsemble, ZooKeeperServer};
use tokio::process::{Child, Command};

/// The label every request asks for.
pub const LABEL: &str = "label-0";
/// The store's root for the run.
const CHROOT: &str = "/faults";

/// How the clouds behave.
#[derive(Debug, Clone)]
pub struct CloudSettings {
    pub providers: usize,
    /// Seconds a server takes to become active.
    pub create_delay: f64,
    pub delete_delay: f64,
    /// `fake-faults` lines (already indented for a provider), e.g. rates.
    pub faults: String,
    /// Seconds a launch may take before it is abandoned (a hung create).
    pub launch_timeout: u64,
}

/// One launcher process slot: the process when it runs, and its log (kept across restarts).
#[derive(Debug)]
pub struct LauncherSlot {
    pub child: Option<Child>,
    pub log: PathBuf,
    pub starts: usize,
}

/// Where the launchers keep their data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreKind {
    /// A ZooKeeper server the run starts.
    ZooKeeper,
    /// One embedded SQLite file: launcher 0 runs `nodepool up` (builder, launcher and web in
    /// one process, as the quickstart runs), the others `nodepool launcher`, all on the file.
    Sqlite,
    /// A 3-server ensemble. Launcher 0 reaches each server through a [`TcpProxy`] of its
    /// own, so it alone can be cut off.
    Ensemble,
}

/// ZooKeeper, the configuration and the launchers.
#[derive(Debug)]
pub struct Cluster {
    pub dir: tempfile::TempDir,
    pub zookeeper: Option<ZooKeeperServer>,
    pub ensemble: Option<ZooKeeperEnsemble>,
    /// Launcher 0's way to each ensemble member.
    pub proxies: Vec<TcpProxy>,
    pub kind: StoreKind,
    /// Each launcher's configuration (they differ only in how they reach ZooKeeper).
    pub configs: Vec<PathBuf>,
    pub binary: PathBuf,
    pub launchers: Vec<LauncherSlot>,
    pub cloud: CloudSettings,
    /// Each launcher's webapp port, when they serve one (the soak reads `/metrics`).
    pub webapp_ports: Vec<Option<u16>>,
}

impl Cluster {
    /// Starts ZooKeeper (for a ZooKeeper store) and writes the configuration; no launcher
    /// runs yet.
    pub async fn prepare(
        binary: PathBuf,
        kind: StoreKind,
        launchers: usize,
        cloud: CloudSettings,
        webapps: bool,
    ) -> anyhow::Result<Cluster> {
        let dir = tempfile::tempdir()?;
        let zookeeper = match kind {
            StoreKind::ZooKeeper => Some(ZooKeeperServer::start(ServerOptions::default())?),
            StoreKind::Sqlite | StoreKind::Ensemble => None,
        };
        let (ensemble, proxies) = match kind {
            StoreKind::Ensemble => {
                let ensemble = ZooKeeperEnsemble::start(3, ServerOptions::default())?;
                ensemble.wait_for_quorum(Duration::from_secs(60))?;
                let mut proxies = Vec::new();
                for address in ensemble.plain_addresses() {
                    proxies.push(TcpProxy::start(address).await?);
                }
                (Some(ensemble), proxies)
            }
            StoreKind::ZooKeeper | StoreKind::Sqlite => (None, Vec::new()),
        };
        let configs = (0..launchers)
            .map(|i| dir.path().join(format!("nodepool-{i}.yaml")))
            .collect();
        let mut webapp_ports = Vec::new();
        for _ in 0..launchers {
            webapp_ports.push(match webapps {
                true => Some(free_port()?),
                false => None,
            });
        }
        let launchers = (0..launchers)
            .map(|i| LauncherSlot {
                child: None,
                log: dir.path().join(format!("launcher-{i}.log")),
                starts: 0,
            })
            .collect();
        let cluster = Cluster {
            dir,
            zookeeper,
            ensemble,
            proxies,
            kind,
            configs,
            binary,
            launchers,
            cloud,
            webapp_ports,
        };
        std::fs::create_dir_all(cluster.dir.path().join("images"))?;
        for index in 0..cluster.configs.len() {
            std::fs::write(&cluster.configs[index], cluster.config_text(index)?)?;
        }
        Ok(cluster)
    }

    /// The fake cloud state file of provider `p`.
    pub fn state_file(&self, provider: usize) -> PathBuf {
        self.dir.path().join(format!("cloud-{provider}.json"))
    }

    fn database(&self) -> PathBuf {
        self.dir.path().join("nodepool.db")
    }

    /// How launcher `index` reaches ZooKeeper: `host:port` of each server.
    fn zookeeper_addresses(&self, index: usize) -> Vec<String> {
        match (&self.zookeeper, &self.ensemble) {
            (Some(zookeeper), _) => vec![zookeeper.plain_address()],
            (None, Some(_)) if index == 0 => self.proxies.iter().map(TcpProxy::address).collect(),
            (None, Some(ensemble)) => ensemble.plain_addresses(),
            (None, None) => Vec::new(),
        }
    }

    fn config_text(&self, index: usize) -> anyhow::Result<String> {
        let addresses = self.zookeeper_addresses(index);
        let mut text = match addresses.is_empty() {
            false => {
                let mut text = String::from("zookeeper-servers:\n");
                for address in &addresses {
                    let (host, port) = address.rsplit_once(':').context("zookeeper address")?;
                    text.push_str(&format!(
                        "  - host: {host}\n    port: {port}\n    chroot: {CHROOT}\n"
                    ));
                }
                text
            }
            true => {
                // `up` serves the webapp.
                let port = free_port()?;
                format!(
                    "database: {}\nimages-dir: {}\nwebapp:\n  port: {port}\n  listen_address: 127.0.0.1\n",
                    self.database().display(),
                    self.dir.path().join("images").display()
                )
            }
        };
        if let Some(port) = self.webapp_ports.get(index).copied().flatten()
            && !addresses.is_empty()
        {
            text.push_str(&format!(
                "webapp:\n  port: {port}\n  listen_address: 127.0.0.1\n"
            ));
        }
        text.push_str(&format!("labels:\n  - name: {LABEL}\nproviders:\n"));
        for p in 0..self.cloud.providers {
            text.push_str(&format!(
                "  - name: fake-{p}\n    driver: fake\n    cloud: fake\n    launch-retries: 3\n    launch-timeout: {}\n    fake-state: {}\n    fake-quota:\n      instances: 1000000\n      cores: 100000000\n      ram: 100000000000\n    fake-faults:\n      create-delay: {}\n      delete-delay: {}\n{}    cloud-images:\n      - name: fake-image\n        image-id: fake-image-id\n    pools:\n      - name: main\n        labels:\n          - name: {LABEL}\n            cloud-image: fake-image\n            min-ram: 8192\n",
                self.cloud.launch_timeout,
                self.state_file(p).display(),
                self.cloud.create_delay,
                self.cloud.delete_delay,
                self.cloud.faults,
            ));
        }
        Ok(text)
    }

    /// A store client of the run's own (the load generator's and the checker's).
    pub async fn store(&self) -> anyhow::Result<Store> {
        let direct = match (&self.zookeeper, &self.ensemble) {
            (Some(zookeeper), _) => vec![zookeeper.plain_address()],
            (None, Some(ensemble)) => ensemble.plain_addresses(),
            (None, None) => Vec::new(),
        };
        let store = if direct.is_empty() {
            Store::new(std::sync::Arc::new(
                SqliteBackend::open(SqliteOptions::new(self.database())).await?,
            ))
        } else {
            let mut options = ZooKeeperOptions::new(direct);
            options.chroot = Some(CHROOT.to_string());
            Store::new(std::sync::Arc::new(
                ZooKeeperBackend::connect(options).await?,
            ))
        };
        for path in ["/nodepool/nodes", "/nodepool/requests"] {
            store.ensure_path(path).await?;
        }
        Ok(store)
    }

    /// Starts launcher `index` (again). Its cleanup and deleted-node workers run every
    /// second (the test timing hook), so leaks are found within the run.
    pub fn start(&mut self, index: usize) -> anyhow::Result<()> {
        let slot = &mut self.launchers[index];
        let log = File::options().create(true).append(true).open(&slot.log)?;
        let mut command = Command::new(&self.binary);
        let config = &self.configs[index];
        if self.kind == StoreKind::Sqlite && index == 0 {
            command.arg("up").arg("-c").arg(config);
        } else {
            command.arg("launcher").arg("-c").arg(config);
            if self.webapp_ports.get(index).copied().flatten().is_none() {
                command.arg("--no-webapp");
            }
        }
        let child = command
            .env("NODEPOOL_TEST_FAST_TIMING", "1")
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting launcher {index}"))?;
        slot.child = Some(child);
        slot.starts += 1;
        Ok(())
    }

    /// Where launcher `index` serves its webapp, if it does.
    pub fn webapp_address(&self, index: usize) -> Option<std::net::SocketAddr> {
        let port = self.webapp_ports.get(index).copied().flatten()?;
        Some(std::net::SocketAddr::from(([127, 0, 0, 1], port)))
    }

    /// SIGKILLs launcher `index` and reaps it.
    pub async fn kill(&mut self, index: usize) {
        if let Some(mut child) = self.launchers[index].child.take() {
            let _ = child.start_kill();
            let _ = child.wait().await;
        }
    }

    /// Waits until `count` pools are registered (every launcher up).
    pub async fn wait_pools(
        &self,
        store: &Store,
        count: usize,
        limit: Duration,
    ) -> anyhow::Result<()> {
        let began = Instant::now();
        loop {
            let seen = store.components().list(ComponentKind::Pool).await?.len();
            if seen >= count {
                return Ok(());
            }
            anyhow::ensure!(
                began.elapsed() < limit,
                "the launchers did not register {count} pools within {limit:?} ({seen} seen)"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Stops every launcher (SIGKILL: the run is over).
    pub async fn stop_all(&mut self) {
        for index in 0..self.launchers.len() {
            self.kill(index).await;
        }
    }

    /// ERROR lines across every launcher's log.
    pub fn error_lines(&self) -> Vec<String> {
        self.launchers
            .iter()
            .filter_map(|slot| std::fs::read_to_string(&slot.log).ok())
            .flat_map(|text| {
                text.lines()
                    .filter(|l| l.contains("ERROR"))
                    .map(String::from)
                    .collect::<Vec<_>>()
            })
            .collect()
    }
}

/// A port free now, released for a launcher to bind.
fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Server ids in a fake cloud's state file (tolerant of the document's other fields).
pub fn cloud_servers(path: &Path) -> anyhow::Result<Vec<String>> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let document: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    Ok(document["servers"]
        .as_array()
        .map(|servers| {
            servers
                .iter()
                .filter_map(|s| s["id"].as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default())
}
