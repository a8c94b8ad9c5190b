//! `nodepool-bench --faults SCENARIO` (issue 17): real launcher processes, a real ZooKeeper
//! and fake clouds whose state outlives a killed launcher, a Zuul-protocol load that keeps
//! running while faults are injected, and an independent checker of what is left at the end.
//! Prints one JSON object (and a table on stderr).
//!
//! Scenarios:
//! * `kill-storm`: launchers share the providers; every few seconds one (picked by the seeded
//!   generator) is SIGKILLed mid-whatever and started again, while hundreds of slow creates
//!   are in flight. Recovery after a kill: until every node that was BUILDING at the kill has
//!   left BUILDING (made, or found dead and deleted).
//! * `cloud-faults`: the fake clouds fail 30 % of API calls (errors, quota errors, hung calls)
//!   and deletes intermittently, from a seeded generator.
//! * `sqlite`: the kill storm on the embedded store: `nodepool up` and a second launcher
//!   process on one SQLite file, each SIGKILLed in turn.
//! * `zookeeper`: a 3-server ensemble: leader killed, follower restarted, a server paused
//!   past the session timeout, one launcher cut off until its session expires; recovery is
//!   measured from each fault's start.
//! * `soak`: no faults; a moderate load for 30 minutes (2 in the short run) while each
//!   launcher's memory, file descriptors and tasks, and ZooKeeper's watches, are sampled:
//!   they must stay flat.

mod checker;
mod cluster;
mod soak;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::ValueEnum;
use nodepool_model::{NodeId, NodeState};
use nodepool_store::Store;
use nodepool_testkit::ZuulClient;
use nodepool_testkit::load::{Load, LoadOptions};
use serde_json::{Value, json};
use tokio::sync::watch;

use self::checker::Findings;
use self::cluster::{CloudSettings, Cluster, LABEL, StoreKind};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Scenario {
    KillStorm,
    CloudFaults,
    /// The kill storm on the embedded SQLite store: `nodepool up` and a second launcher
    /// process on one file, killed in turns.
    Sqlite,
    /// A 3-server ensemble under a continuous load: the leader SIGKILLed and started again,
    /// a follower restarted, a server paused (SIGSTOP) past the session timeout, and one
    /// launcher cut off by its proxies until its session expires, then healed.
    Zookeeper,
    /// No faults: a moderate load for a fixed time, the launchers' resident memory, open
    /// file descriptors and tasks, and ZooKeeper's watches sampled; they must stay flat.
    Soak,
}

/// The size of a run.
#[derive(Debug, Clone)]
struct Plan {
    requests: usize,
    concurrency: usize,
    launchers: usize,
    providers: usize,
    create_delay: f64,
    delete_delay: f64,
    /// Seconds between kills (kill storm).
    kill_every: f64,
    /// How long one request may wait before it counts as stuck.
    request_timeout: Duration,
    /// How long the run may take to settle after the load.
    settle_limit: Duration,
}

impl Plan {
    fn new(scenario: Scenario, short: bool) -> Plan {
        let full = Plan {
            requests: 1000,
            concurrency: 300,
            launchers: 3,
            providers: 2,
            create_delay: 3.0,
            delete_delay: 0.5,
            kill_every: 5.0,
            request_timeout: Duration::from_secs(300),
            settle_limit: Duration::from_secs(180),
        };
        let plan = if short {
            Plan {
                requests: 150,
                concurrency: 60,
                create_delay: 1.0,
                kill_every: 3.0,
                request_timeout: Duration::from_secs(180),
                settle_limit: Duration::from_secs(120),
                ..full
            }
        } else {
            full
        };
        match scenario {
            Scenario::KillStorm => plan,
            Scenario::CloudFaults => Plan {
                create_delay: plan.create_delay / 3.0,
                ..plan
            },
            Scenario::Zookeeper => plan,
            // Steady, not heavy: what a site runs all day.
            Scenario::Soak => Plan {
                concurrency: 20,
                launchers: 2,
                create_delay: 0.5,
                delete_delay: 0.2,
                ..plan
            },
            // One writer at a time: a smaller load, two processes.
            Scenario::Sqlite => Plan {
                requests: plan.requests / 2,
                concurrency: plan.concurrency / 3,
                launchers: 2,
                ..plan
            },
        }
    }
}

/// A small deterministic generator (splitmix64), so a seed fixes which launcher dies when.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }
}

/// Nodes in BUILDING now.
async fn building(store: &Store) -> anyhow::Result<BTreeSet<NodeId>> {
    let mut out = BTreeSet::new();
    for id in store.nodes().ids().await? {
        if let Ok(Some(node)) = store.nodes().get(id).await
            && node.value.state == NodeState::Building
        {
            out.insert(id);
        }
    }
    Ok(out)
}

/// Waits until none of `nodes` is BUILDING any more; how long that took.
async fn recovered(
    store: Store,
    nodes: BTreeSet<NodeId>,
    began: Instant,
    limit: Duration,
) -> Option<Duration> {
    while began.elapsed() < limit {
        let still = building(&store).await.unwrap_or_default();
        if nodes.is_disjoint(&still) {
            return Some(began.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    None
}

/// What the kill storm did.
#[derive(Debug, Default)]
struct Storm {
    kills: usize,
    recoveries: Vec<Option<Duration>>,
}

/// Kills a launcher every `plan.kill_every` seconds (with jitter) until `done`, starting it
/// again at once; measures each recovery.
async fn kill_storm(
    cluster: &mut Cluster,
    store: &Store,
    plan: &Plan,
    rng: &mut Rng,
    mut done: watch::Receiver<bool>,
) -> anyhow::Result<Storm> {
    let mut storm = Storm::default();
    let mut watchers = tokio::task::JoinSet::new();
    let recovery_limit = plan.settle_limit;
    loop {
        let pause = Duration::from_secs_f64(plan.kill_every * (0.5 + rng.unit()));
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = done.wait_for(|d| *d) => break,
        }
        let victim = rng.below(cluster.launchers.len());
        let in_flight = building(store).await?;
        let began = Instant::now();
        cluster.kill(victim).await;
        storm.kills += 1;
        cluster.start(victim)?;
        watchers.spawn(recovered(store.clone(), in_flight, began, recovery_limit));
    }
    while let Some(result) = watchers.join_next().await {
        storm
            .recoveries
            .push(result.context("a recovery watcher failed")?);
    }
    Ok(storm)
}

/// The ZooKeeper faults, one after another, each `plan.kill_every` seconds after the last
/// has healed; each held past the 10 s session timeout where it holds.
async fn zookeeper_faults(
    cluster: &mut Cluster,
    store: &Store,
    plan: &Plan,
) -> anyhow::Result<Storm> {
    const HOLD: Duration = Duration::from_secs(15);
    let gap = Duration::from_secs_f64(plan.kill_every);
    let mut storm = Storm::default();
    let mut watchers = tokio::task::JoinSet::new();
    for fault in [
        "leader killed",
        "follower restarted",
        "server paused",
        "launcher cut off",
    ] {
        tokio::time::sleep(gap).await;
        let in_flight = building(store).await?;
        let began = Instant::now();
        let ensemble = cluster.ensemble.as_mut().context("no ensemble")?;
        let leader = ensemble.leader().context("the ensemble has no leader")?;
        let follower = (leader + 1) % ensemble.servers().len();
        match fault {
            "leader killed" => {
                ensemble.server_mut(leader).stop()?;
                tokio::time::sleep(Duration::from_secs(3)).await;
                let server = ensemble.server_mut(leader);
                tokio::task::block_in_place(|| server.start_again())?;
            }
            "follower restarted" => {
                let server = ensemble.server_mut(follower);
                tokio::task::block_in_place(|| server.restart())?;
            }
            "server paused" => {
                ensemble.servers()[follower].pause()?;
                tokio::time::sleep(HOLD).await;
                ensemble.servers()[follower].resume()?;
            }
            _ => {
                for proxy in &cluster.proxies {
                    proxy.cut();
                }
                tokio::time::sleep(HOLD).await;
                for proxy in &cluster.proxies {
                    proxy.restore();
                }
            }
        }
        tracing_note(fault, began.elapsed());
        storm.kills += 1;
        watchers.spawn(recovered(
            store.clone(),
            in_flight,
            began,
            plan.settle_limit,
        ));
    }
    tokio::time::sleep(gap).await;
    while let Some(result) = watchers.join_next().await {
        storm
            .recoveries
            .push(result.context("a recovery watcher failed")?);
    }
    Ok(storm)
}

/// One line on stderr per fault, so a person watching the run sees where it is.
fn tracing_note(fault: &str, took: Duration) {
    eprintln!("fault: {fault} ({:.1} s)", took.as_secs_f64());
}

/// Waits until nothing is left to do: no request, no node but READY ones, no server
/// without a node. Returns how long it took, or `None` at the limit.
async fn settle(
    cluster: &Cluster,
    store: &Store,
    tally: &nodepool_testkit::load::Tally,
    limit: Duration,
) -> anyhow::Result<Option<Duration>> {
    let began = Instant::now();
    while began.elapsed() < limit {
        let findings = checker::check(cluster, store, tally, 0).await?;
        let busy: usize = findings
            .nodes_by_state
            .iter()
            .filter(|(state, _)| state.as_str() != "ready")
            .map(|(_, n)| *n)
            .sum();
        if findings.stuck == 0
            && busy == 0
            && findings.leaked_servers == 0
            && findings.leaked_znodes == 0
        {
            return Ok(Some(began.elapsed()));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    Ok(None)
}

fn seconds(d: Option<Duration>) -> Value {
    d.map_or(Value::Null, |d| {
        json!((d.as_secs_f64() * 1000.0).round() / 1000.0)
    })
}

/// Runs one scenario and returns its report.
pub async fn run(
    binary: std::path::PathBuf,
    scenario: Scenario,
    seed: u64,
    short: bool,
) -> anyhow::Result<Value> {
    let plan = Plan::new(scenario, short);
    let faults = match scenario {
        Scenario::KillStorm | Scenario::Sqlite | Scenario::Zookeeper | Scenario::Soak => {
            String::new()
        }
        Scenario::CloudFaults => format!(
            "      api-error-rate: 0.15\n      quota-error-rate: 0.1\n      hung-call-rate: 0.05\n      delete-failure-rate: 0.2\n      fault-seed: {seed}\n"
        ),
    };
    let kind = match scenario {
        Scenario::Sqlite => StoreKind::Sqlite,
        Scenario::Zookeeper => StoreKind::Ensemble,
        Scenario::KillStorm | Scenario::CloudFaults | Scenario::Soak => StoreKind::ZooKeeper,
    };
    let mut cluster = Cluster::prepare(
        binary,
        kind,
        plan.launchers,
        CloudSettings {
            providers: plan.providers,
            create_delay: plan.create_delay,
            delete_delay: plan.delete_delay,
            faults,
            launch_timeout: 20,
        },
        scenario == Scenario::Soak,
    )
    .await?;
    let store = cluster.store().await?;
    for index in 0..plan.launchers {
        cluster.start(index)?;
    }
    if let Err(e) = cluster
        .wait_pools(
            &store,
            plan.launchers * plan.providers,
            Duration::from_secs(60),
        )
        .await
    {
        let logs: Vec<String> = cluster
            .launchers
            .iter()
            .map(|slot| {
                let text = std::fs::read_to_string(&slot.log).unwrap_or_default();
                let lines: Vec<&str> = text.lines().collect();
                lines[lines.len().saturating_sub(5)..].join("\n")
            })
            .collect();
        anyhow::bail!("{e}; the launchers' logs end:\n{}", logs.join("\n---\n"));
    }

    let zuul = Arc::new(ZuulClient::new(store.clone(), "faults-zuul"));
    let began = Instant::now();
    let load = Load::start(
        zuul,
        LoadOptions {
            workers: plan.concurrency,
            label_sets: vec![vec![LABEL.to_string()]],
            // Under ZooKeeper faults the load runs until the last fault has healed; the
            // soak runs for its time.
            jobs: (!matches!(scenario, Scenario::Zookeeper | Scenario::Soak))
                .then_some(plan.requests),
            request_timeout: plan.request_timeout,
            stop_on_error: false,
            project: "faults/project".to_string(),
        },
    );
    let (done_tx, done) = watch::channel(false);
    let mut rng = Rng::new(seed);
    // Workers still busy a minute past their own request timeout hang in a store call.
    let stop_limit = plan.request_timeout + Duration::from_secs(60);
    let mut stalls = Vec::new();
    let mut soak_report = Value::Null;
    let mut soak_flat = true;
    let (storm, tally) = match scenario {
        Scenario::KillStorm | Scenario::Sqlite => {
            let finish = async {
                let tally = load.finish().await;
                done_tx.send_replace(true);
                tally
            };
            let (storm, tally) = tokio::join!(
                kill_storm(&mut cluster, &store, &plan, &mut rng, done),
                finish
            );
            (storm?, tally?)
        }
        Scenario::CloudFaults => (Storm::default(), load.finish().await?),
        Scenario::Zookeeper => {
            let storm = zookeeper_faults(&mut cluster, &store, &plan).await?;
            let (tally, stalled) = load.stop_within(stop_limit).await?;
            stalls = stalled;
            (storm, tally)
        }
        Scenario::Soak => {
            let (duration, interval) = soak::timing(short);
            let mut samples = Vec::new();
            while began.elapsed() < duration {
                samples.push(soak::sample(&cluster, began).await);
                tokio::time::sleep(interval.min(duration.saturating_sub(began.elapsed()))).await;
            }
            samples.push(soak::sample(&cluster, began).await);
            // The first sixth of the run fills caches and pools: not part of the steady state.
            let warm_up = samples
                .iter()
                .filter(|s| s.at < duration.as_secs_f64() / 6.0)
                .count();
            (soak_report, soak_flat) = soak::report(&samples, warm_up);
            let (tally, stalled) = load.stop_within(stop_limit).await?;
            stalls = stalled;
            (Storm::default(), tally)
        }
    };
    let load_seconds = began.elapsed().as_secs_f64();
    let settled = settle(&cluster, &store, &tally, plan.settle_limit).await?;
    let findings: Findings = checker::check(&cluster, &store, &tally, tally.errors).await?;
    let errors = cluster.error_lines();
    cluster.stop_all().await;

    let mut recoveries: Vec<f64> = storm
        .recoveries
        .iter()
        .flatten()
        .map(Duration::as_secs_f64)
        .collect();
    recoveries.sort_by(f64::total_cmp);
    let unrecovered = storm.recoveries.iter().filter(|r| r.is_none()).count();
    let report = json!({
        "scenario": format!("{scenario:?}"),
        "seed": seed,
        "short": short,
        "load": {
            "requests": tally.completed + tally.failed_requests + tally.errors,
            "concurrency": plan.concurrency,
            "launchers": plan.launchers,
            "providers": plan.providers,
            "create_delay_s": plan.create_delay,
            "seconds": (load_seconds * 1000.0).round() / 1000.0,
        },
        "faults": {
            "launcher_kills": if scenario == Scenario::Zookeeper { 0 } else { storm.kills },
            "zookeeper_faults": if scenario == Scenario::Zookeeper { storm.kills } else { 0 },
            "launcher_starts": cluster.launchers.iter().map(|l| l.starts).sum::<usize>(),
            "cloud_fault_rates": matches!(scenario, Scenario::CloudFaults),
        },
        "client_errors": tally.errors,
        "client_first_errors": tally.first_errors,
        "client_stalls": stalls.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "findings": findings.to_json(),
        "recovery_s": {
            "worst": recoveries.last().copied(),
            "median": recoveries.get(recoveries.len() / 2).copied(),
            "unrecovered": unrecovered,
        },
        "settle_s": seconds(settled),
        "launcher_error_lines": errors.len(),
        "launcher_first_errors": errors.iter().take(5).collect::<Vec<_>>(),
        "soak": soak_report,
        "clean": findings.clean()
            && settled.is_some()
            && unrecovered == 0
            && tally.errors == 0
            && stalls.is_empty()
            && soak_flat,
    });
    eprintln!("{}", table(&report));
    Ok(report)
}

/// The report as a one-row table for people.
fn table(report: &Value) -> String {
    let f = &report["findings"];
    format!(
        "scenario     requests  fulfilled  failed  stuck  double  leaked-servers  leaked-znodes  kills  worst-recovery-s  clean\n\
         {:<12} {:>8}  {:>9}  {:>6}  {:>5}  {:>6}  {:>14}  {:>13}  {:>5}  {:>16}  {}",
        report["scenario"].as_str().unwrap_or(""),
        report["load"]["requests"],
        f["fulfilled"],
        f["failed"],
        f["stuck"],
        f["double_allocations"],
        f["leaked_servers"],
        f["leaked_znodes"],
        report["faults"]["launcher_kills"],
        report["recovery_s"]["worst"],
        report["clean"],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_generator_is_fixed_by_its_seed() {
        let mut a = Rng::new(7);
        let mut b = Rng::new(7);
        let first: Vec<u64> = (0..5).map(|_| a.next_u64()).collect();
        let second: Vec<u64> = (0..5).map(|_| b.next_u64()).collect();
        assert_eq!(first, second);
        assert_ne!(Rng::new(8).next_u64(), first[0]);
        let mut c = Rng::new(1);
        assert!((0..1000).all(|_| c.below(3) < 3));
        assert!((0..1000).all(|_| (0.0..1.0).contains(&c.unit())));
    }
}
