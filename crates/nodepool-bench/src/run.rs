//! One benchmark run: store, configuration, launcher process, load, figures.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use nodepool_model::{ComponentKind, ConnectionPort, ExternalId, Node, NodeState};
use nodepool_store::{Backend, CreateMode, SqliteBackend, SqliteOptions, Store};
use nodepool_store_zk::{ZooKeeperBackend, ZooKeeperOptions, ZooKeeperTls};
use nodepool_testkit::load::{Load, LoadOptions};
use nodepool_testkit::{ServerOptions, ZooKeeperServer, ZuulClient};
use serde_json::{Value, json};

use crate::counting::Counting;
use crate::process::{cpu_seconds, peak_rss_mib, percentile};
use crate::{Args, StoreKind};

struct Setup {
    dir: tempfile::TempDir,
    zookeeper: Option<ZooKeeperServer>,
}

/// Runs Python Nodepool's launcher with its fake cloud's quota lifted.
const PYTHON_UNBOUND_QUOTA: &str = "import sys\n\
import nodepool.driver.fake.adapter as fake\n\
fake.FakeOpenStackCloud._get_quota = staticmethod(lambda: (100000000, 1000000, 100000000000))\n\
from nodepool.cmd.launcher import main\n\
sys.argv[0] = 'nodepool-launcher'\n\
sys.exit(main())\n";

/// Whether a run serves the webapp, and floods it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Web {
    Off,
    Quiet,
    Flooded,
}

/// Which launcher a run measures.
#[derive(Debug, Clone)]
pub enum Implementation {
    Ours(PathBuf),
    /// The protocol's minimum in the bench process (`crate::minimal`): the ceiling.
    Minimal,
    /// Python Nodepool's `nodepool-launcher` executable.
    Python(PathBuf),
}

impl Implementation {
    fn name(&self) -> &'static str {
        match self {
            Implementation::Ours(_) => "nodepool-rs",
            Implementation::Minimal => "protocol-minimum",
            Implementation::Python(_) => "nodepool-python",
        }
    }
}

fn config_text(args: &Args, store_section: &str) -> String {
    let mut text = store_section.to_string();
    text.push_str("labels:\n");
    for l in 0..args.labels {
        text.push_str(&format!("  - name: label-{l}\n"));
    }
    text.push_str("providers:\n");
    for p in 0..args.providers {
        text.push_str(&format!(
            "  - name: fake-{p}\n    driver: fake\n    cloud: fake\n    fake-quota:\n      instances: 1000000\n      cores: 100000000\n      ram: 100000000000\n    cloud-images:\n      - name: fake-image\n        image-id: fake-image-id\n    pools:\n"
        ));
        for q in 0..args.pools {
            text.push_str(&format!("      - name: pool-{q}\n"));
            if let Some(max) = args.max_servers {
                text.push_str(&format!("        max-servers: {max}\n"));
            }
            text.push_str("        labels:\n");
            for l in 0..args.labels {
                text.push_str(&format!(
                    "          - name: label-{l}\n            cloud-image: fake-image\n            min-ram: 8192\n"
                ));
            }
        }
    }
    text
}

async fn open_store(args: &Args, setup: &Setup, chroot: &str) -> anyhow::Result<Arc<dyn Backend>> {
    Ok(match args.store {
        StoreKind::Sqlite => Arc::new(
            SqliteBackend::open(SqliteOptions::new(
                setup
                    .dir
                    .path()
                    .join(format!("{}.db", chroot.trim_start_matches('/'))),
            ))
            .await?,
        ),
        StoreKind::Zookeeper | StoreKind::ZookeeperTls => {
            let zk = setup.zookeeper.as_ref().context("no zookeeper")?;
            let mut options = if args.store == StoreKind::ZookeeperTls {
                let mut o = ZooKeeperOptions::new([zk.tls_address().context("no TLS port")?]);
                let tls = zk.client_tls().context("no client certificate")?;
                o.tls = Some(ZooKeeperTls {
                    cert: tls.cert.clone(),
                    key: tls.key.clone(),
                    ca: tls.ca.clone(),
                });
                o
            } else {
                ZooKeeperOptions::new([zk.plain_address()])
            };
            options.chroot = Some(chroot.to_string());
            Arc::new(ZooKeeperBackend::connect(options).await?)
        }
    })
}

fn prepare(args: &Args) -> anyhow::Result<Setup> {
    let dir = tempfile::tempdir()?;
    let zookeeper = match args.store {
        StoreKind::Sqlite => None,
        StoreKind::Zookeeper => Some(ZooKeeperServer::start(ServerOptions::default())?),
        StoreKind::ZookeeperTls => Some(ZooKeeperServer::start(ServerOptions::with_tls())?),
    };
    Ok(Setup { dir, zookeeper })
}

/// The `zookeeper-servers`/`database` part of the configuration for one run.
fn store_section(args: &Args, setup: &Setup, chroot: &str) -> anyhow::Result<String> {
    Ok(match args.store {
        StoreKind::Sqlite => format!(
            "database: {}\n",
            setup
                .dir
                .path()
                .join(format!("{}.db", chroot.trim_start_matches('/')))
                .display()
        ),
        StoreKind::Zookeeper => {
            let zk = setup.zookeeper.as_ref().context("no zookeeper")?;
            let address = zk.plain_address();
            let (host, port) = address.rsplit_once(':').context("address")?;
            format!(
                "zookeeper-servers:\n  - host: {host}\n    port: {port}\n    chroot: {chroot}\n"
            )
        }
        StoreKind::ZookeeperTls => {
            let zk = setup.zookeeper.as_ref().context("no zookeeper")?;
            let address = zk.tls_address().context("no TLS port")?;
            let (host, port) = address.rsplit_once(':').context("address")?;
            let tls = zk.client_tls().context("no client certificate")?;
            format!(
                "zookeeper-servers:\n  - host: {host}\n    port: {port}\n    chroot: {chroot}\nzookeeper-tls:\n  cert: {}\n  key: {}\n  ca: {}\n",
                tls.cert.display(),
                tls.key.display(),
                tls.ca.display()
            )
        }
    })
}

pub(crate) fn launcher_binary(args: &Args) -> anyhow::Result<PathBuf> {
    if let Some(path) = &args.launcher {
        return Ok(path.clone());
    }
    let me = std::env::current_exe()?;
    let sibling = me.with_file_name("nodepool");
    if sibling.exists() {
        Ok(sibling)
    } else {
        bail!(
            "no nodepool binary next to {}; build it (cargo build --release -p nodepool) or pass --launcher",
            me.display()
        )
    }
}

/// The store's current transaction id, read off a probe znode.
async fn zxid(backend: &dyn Backend) -> anyhow::Result<i64> {
    let path = backend
        .create("/bench-probe-", b"", CreateMode::EphemeralSequential, true)
        .await?;
    let stat = backend.exists(&path).await?.context("probe vanished")?;
    backend.delete(&path, None).await?;
    Ok(stat.czxid)
}

async fn seed_ready_nodes(store: &Store, count: usize) -> anyhow::Result<()> {
    for _ in 0..count {
        let mut node = Node::new(NodeState::Ready, 0.0);
        node.provider = Some("fake-0".into());
        node.pool = Some("pool-0".into());
        node.node_type = vec!["label-0".into()];
        node.interface_ip = Some("fake".into());
        node.connection_port = Some(ConnectionPort::Port(22));
        node.external_id = Some(ExternalId::Id("seeded".into()));
        node.host_keys = vec!["ssh-rsa FAKEKEY".into()];
        node.state_time = now();
        store.nodes().create(&mut node).await?;
    }
    Ok(())
}

fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

async fn wait_pools(store: &Store, count: usize, deadline: Instant) -> anyhow::Result<()> {
    loop {
        if store.components().list(ComponentKind::Pool).await?.len() >= count {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("the launcher did not register its {count} pools in time");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn busy_nodes(store: &Store) -> anyhow::Result<usize> {
    let mut busy = 0;
    for id in store.nodes().ids().await? {
        if let Some(n) = store.nodes().get(id).await?
            && !matches!(n.value.state, NodeState::Ready)
        {
            busy += 1;
        }
    }
    Ok(busy)
}

/// Runs the load against our launcher and, with `--python-launcher`, against Python
/// Nodepool's on the same ZooKeeper, and reports both with their ratios.
pub async fn run(args: &Args) -> anyhow::Result<Value> {
    let setup = prepare(args)?;
    if args.ceiling {
        return run_one(
            args,
            &setup,
            &Implementation::Minimal,
            "/bench-min",
            Web::Off,
        )
        .await;
    }
    let implementation = Implementation::Ours(launcher_binary(args)?);
    if args.web_flood {
        let quiet = run_one(args, &setup, &implementation, "/bench-quiet", Web::Quiet).await?;
        let flooded = run_one(args, &setup, &implementation, "/bench-flood", Web::Flooded).await?;
        let throughput = |v: &Value| v["throughput_per_second"].as_f64().unwrap_or(0.0);
        return Ok(json!({
            "undisturbed": quiet,
            "flooded": flooded,
            "flooded_over_undisturbed_throughput": if throughput(&quiet) > 0.0 {
                json!(round(throughput(&flooded) / throughput(&quiet)))
            } else {
                Value::Null
            },
        }));
    }
    let ours = run_one(args, &setup, &implementation, "/bench-rs", Web::Off).await?;
    let Some(python) = &args.python_launcher else {
        return Ok(ours);
    };
    if args.store == StoreKind::Sqlite {
        bail!("--python-launcher needs a ZooKeeper store (--store zookeeper-tls)");
    }
    let theirs = run_one(
        args,
        &setup,
        &Implementation::Python(python.clone()),
        "/bench-py",
        Web::Off,
    )
    .await?;
    let ratio = |key: &str, sub: Option<&str>| {
        let get = |v: &Value| match sub {
            Some(s) => v[key][s].as_f64(),
            None => v[key].as_f64(),
        };
        match (get(&ours), get(&theirs)) {
            (Some(a), Some(b)) if a > 0.0 => json!(round(b / a)),
            _ => Value::Null,
        }
    };
    Ok(json!({
        "ours": ours,
        "python": theirs,
        "python_over_ours": {
            "throughput": match (ours["throughput_per_second"].as_f64(), theirs["throughput_per_second"].as_f64()) {
                (Some(a), Some(b)) if b > 0.0 => json!(round(a / b)),
                _ => Value::Null,
            },
            "latency_p50": ratio("latency_ms", Some("p50")),
            "latency_p99": ratio("latency_ms", Some("p99")),
            "cpu_per_request": ratio("launcher_cpu_ms_per_request", None),
            "peak_rss": ratio("launcher_peak_rss_mib", None),
            "writes_per_request": ratio("launcher_writes_per_request", None),
        },
    }))
}

async fn run_one(
    args: &Args,
    setup: &Setup,
    implementation: &Implementation,
    chroot: &str,
    web: Web,
) -> anyhow::Result<Value> {
    let config = setup
        .dir
        .path()
        .join(format!("{}.yaml", chroot.trim_start_matches('/')));
    let web_address = match web {
        Web::Off => None,
        Web::Quiet | Web::Flooded => {
            // A free port, released for the launcher to bind.
            let probe = std::net::TcpListener::bind("127.0.0.1:0")?;
            Some(probe.local_addr()?)
        }
    };
    let mut text = store_section(args, setup, chroot)?;
    if let Some(address) = web_address {
        text.push_str(&format!(
            "webapp:\n  port: {}\n  listen_address: 127.0.0.1\n",
            address.port()
        ));
    }
    std::fs::write(&config, config_text(args, &text))?;
    let backend = open_store(args, setup, chroot).await?;
    let counting = Arc::new(Counting::new(backend.clone()));
    let store = Store::new(counting.clone());
    for p in ["/nodepool/nodes", "/nodepool/requests"] {
        store.ensure_path(p).await?;
    }
    seed_ready_nodes(&store, args.ready).await?;
    let log_path = setup
        .dir
        .path()
        .join(format!("{}.log", implementation.name()));
    let log = std::fs::File::create(&log_path)?;
    let command = match implementation {
        Implementation::Minimal => None,
        Implementation::Ours(binary) => {
            let mut c = tokio::process::Command::new(binary);
            c.arg("launcher").arg("-c").arg(&config);
            if web == Web::Off {
                c.arg("--no-webapp");
            }
            Some(c)
        }
        Implementation::Python(binary) => {
            let clouds = setup.dir.path().join("clouds.yaml");
            std::fs::write(
                &clouds,
                "clouds:\n  fake:\n    auth:\n      username: fake\n      password: fake\n      project_id: fake\n      auth_url: http://fake\n",
            )?;
            // Nodepool's fake cloud has a fixed quota of 20 instances; lift it (as our
            // provider's fake-quota does) so both launchers run with quota that does not
            // bind, then run its launcher's own entry point.
            let python = binary.with_file_name("python3");
            let mut c = tokio::process::Command::new(&python);
            c.arg("-c")
                .arg(PYTHON_UNBOUND_QUOTA)
                .arg("-c")
                .arg(&config)
                .args(["-f", "--no-webapp", "-p"])
                .arg(setup.dir.path().join("python.pid"))
                .env("OS_CLIENT_CONFIG_FILE", &clouds);
            Some(c)
        }
    };
    let deadline = Instant::now() + Duration::from_secs(args.timeout);
    let (mut child, minimal) = match command {
        Some(mut command) => {
            let child = command
                .stdout(log.try_clone()?)
                .stderr(log)
                .kill_on_drop(true)
                .spawn()
                .with_context(|| format!("starting the {} launcher", implementation.name()))?;
            wait_pools(&store, args.providers * args.pools, deadline).await?;
            (Some(child), None)
        }
        None => {
            let minimal_store = Store::new(open_store(args, setup, chroot).await?);
            (None, Some(crate::minimal::start(minimal_store)))
        }
    };
    let pid = match &child {
        Some(child) => child.id().context("launcher exited")?,
        None => std::process::id(),
    };

    let cpu_before = cpu_seconds(pid).unwrap_or(0.0);
    let writes_before = counting.writes();
    let zxid_before = zxid(backend.as_ref()).await?;
    let zuul = Arc::new(ZuulClient::new(store.clone(), "bench-zuul"));
    let labels: Vec<String> = (0..args.labels).map(|l| format!("label-{l}")).collect();
    let flood = match (web, web_address) {
        (Web::Flooded, Some(address)) => Some(crate::flood::Flood::start(
            address,
            args.flood_idle,
            args.flood_clients,
        )),
        _ => None,
    };
    let fd_limit = crate::flood::fd_limit(pid);
    let fd_stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let fd_peak = crate::flood::sample_fds(pid, fd_stop.clone());
    let started = Instant::now();
    let load = Load::start(
        zuul,
        LoadOptions {
            workers: args.concurrency,
            label_sets: vec![labels],
            jobs: Some(args.requests),
            request_timeout: Duration::from_secs(600),
            stop_on_error: true,
            project: "bench/project".to_string(),
        },
    );
    let tally = load.finish().await?;
    let web_figures = match (flood, web_address) {
        (Some(flood), Some(address)) => flood.finish(address, started).await,
        _ => Value::Null,
    };
    fd_stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let fd_peak = fd_peak.await.unwrap_or(0);
    let mut latencies = tally.latencies_ms;
    let failed = tally.failed_requests;
    let wall = started.elapsed().as_secs_f64();
    let drain_started = Instant::now();
    while busy_nodes(&store).await? > 0 {
        if Instant::now() > deadline {
            bail!("used nodes were not deleted in time");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let drain = drain_started.elapsed().as_secs_f64();
    let cpu = cpu_seconds(pid).unwrap_or(0.0) - cpu_before;
    let rss = peak_rss_mib(pid).unwrap_or(0.0);
    let zxid_after = zxid(backend.as_ref()).await?;
    let client_writes = counting.writes() - writes_before;
    // Between the two reads: the first probe's delete, the client's and the launcher's
    // writes, and the second probe's create (whose czxid is the reading).
    let launcher_writes = (zxid_after - zxid_before - 2) as f64 - client_writes as f64;
    if let Some(child) = &mut child {
        let _ = child.start_kill();
        let _ = child.wait().await;
    }
    if let Some(minimal) = minimal {
        minimal.abort();
    }
    latencies.sort_by(f64::total_cmp);
    let fulfilled = latencies.len();
    Ok(json!({
        "implementation": implementation.name(),
        "store": format!("{:?}", args.store).to_lowercase(),
        "requests": args.requests,
        "labels_per_request": args.labels,
        "concurrency": args.concurrency,
        "max_servers": args.max_servers,
        "providers": args.providers,
        "pools_per_provider": args.pools,
        "preexisting_ready": args.ready,
        "fulfilled": fulfilled,
        "failed": failed,
        "wall_seconds": round(wall),
        "throughput_per_second": round(fulfilled as f64 / wall),
        "latency_ms": {
            "p50": round(percentile(&latencies, 50.0)),
            "p90": round(percentile(&latencies, 90.0)),
            "p99": round(percentile(&latencies, 99.0)),
            "max": round(latencies.last().copied().unwrap_or(0.0)),
        },
        "drain_seconds": round(drain),
        "launcher_cpu_seconds": round(cpu),
        "launcher_cpu_ms_per_request": round(cpu * 1000.0 / fulfilled.max(1) as f64),
        "launcher_peak_rss_mib": round(rss),
        "launcher_writes": launcher_writes,
        "launcher_writes_per_request": round(launcher_writes / fulfilled.max(1) as f64),
        "client_writes_per_request": round(client_writes as f64 / fulfilled.max(1) as f64),
        "launcher_open_fds_peak": fd_peak,
        "launcher_fd_limit": fd_limit,
        "launcher_session_troubles": crate::flood::session_troubles(
            &std::fs::read_to_string(&log_path).unwrap_or_default()
        ),
        "web": web_figures,
        "launcher_log": log_tail(&log_path),
    }))
}

/// Rounded to three decimals, as every figure the bench prints is.
pub(crate) fn round(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

fn log_tail(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let errors: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("ERROR") || l.contains("WARN"))
        .take(5)
        .collect();
    json!(errors)
}
