//! `nodepool-bench`: plays Zuul against a launcher process with the fake driver and prints
//! one JSON object of figures (issue 8). Speed is measured here, never in tests.
//!
//!     cargo build --release -p nodepool -p nodepool-bench
//!     /var/tmp/nodepool-target/release/nodepool-bench --store zookeeper-tls --requests 500 --concurrency 200
//!     /var/tmp/nodepool-target/release/nodepool-bench --store zookeeper-tls --web-flood
//!     /var/tmp/nodepool-target/release/nodepool-bench --faults kill-storm --seed 1

mod counting;
mod faults;
mod flood;
mod minimal;
mod process;
mod run;

use std::path::PathBuf;

use clap::{Parser, ValueEnum};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StoreKind {
    /// The embedded SQLite file.
    Sqlite,
    /// A ZooKeeper server started by the bench, plaintext.
    Zookeeper,
    /// A ZooKeeper server started by the bench, TLS with client certificates (production).
    ZookeeperTls,
}

#[derive(Debug, Clone, Parser)]
#[command(about = "Launcher throughput, latency, CPU and memory under a Zuul-protocol load")]
pub struct Args {
    #[arg(long, value_enum, default_value = "sqlite")]
    pub store: StoreKind,
    /// Requests to submit.
    #[arg(long, default_value_t = 500)]
    pub requests: usize,
    /// Labels (nodes) per request.
    #[arg(long, default_value_t = 1)]
    pub labels: usize,
    /// Requests outstanding at most.
    #[arg(long, default_value_t = 200)]
    pub concurrency: usize,
    /// `max-servers` of each pool (unset: unlimited).
    #[arg(long)]
    pub max_servers: Option<u32>,
    #[arg(long, default_value_t = 1)]
    pub providers: usize,
    /// Pools per provider.
    #[arg(long, default_value_t = 1)]
    pub pools: usize,
    /// READY nodes in the store before the load starts.
    #[arg(long, default_value_t = 0)]
    pub ready: usize,
    /// Our `nodepool` binary (default: next to this one).
    #[arg(long)]
    pub launcher: Option<PathBuf>,
    /// Also run the same load against Python Nodepool's launcher (the path of its
    /// `nodepool-launcher`, e.g. from a venv with `nodepool==11.0.0`) on the same ZooKeeper,
    /// and print both with ratios.
    #[arg(long)]
    pub python_launcher: Option<PathBuf>,
    /// Measure the ceiling instead: the same load against the protocol's minimum (a
    /// fulfiller inside the bench process; its CPU and memory figures are the bench's own).
    #[arg(long)]
    pub ceiling: bool,
    /// Flood the launcher's webapp while it serves the load (idle half-sent requests and a
    /// stream of `/api/nodes` requests), after the same load undisturbed with the webapp on,
    /// and report both (issue 16).
    #[arg(long)]
    pub web_flood: bool,
    /// With `--web-flood`: idle connections held open.
    #[arg(long, default_value_t = 2000)]
    pub flood_idle: usize,
    /// With `--web-flood`: clients asking for `/api/nodes` back to back.
    #[arg(long, default_value_t = 8)]
    pub flood_clients: usize,
    /// Run a fault scenario instead (issue 17): real launchers, ZooKeeper and fake clouds
    /// under a load while faults are injected, then a checker of what was lost.
    #[arg(long, value_enum)]
    pub faults: Option<faults::Scenario>,
    /// With `--faults`: the seed of every random choice (which launcher dies, cloud faults).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// With `--faults`: the short version CI runs.
    #[arg(long)]
    pub short: bool,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 900)]
    pub timeout: u64,
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("nodepool-bench: cannot start a runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match args.faults {
            Some(scenario) => {
                faults::run(
                    run::launcher_binary(&args)?,
                    scenario,
                    args.seed,
                    args.short,
                )
                .await
            }
            None => run::run(&args).await,
        }
    });
    match result {
        Ok(report) => {
            println!(
                "{}",
                serde_json::to_string_pretty(&report).unwrap_or_default()
            );
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("nodepool-bench: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
