//! The short fault runs of issue 17, as CI runs them: real launcher processes (the
//! workspace's `nodepool` binary, built beside this one by `cargo test --workspace`), a real
//! ZooKeeper and fake clouds with a shared state file. Each fails on any loss the checker
//! finds: a stuck request, a node handed out twice, a leaked server or znode, a fault the
//! launchers did not recover from.

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

/// One run at a time: each starts ZooKeeper and three launchers under a load.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn run(scenario: &str) -> Value {
    let _turn = ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let bench = PathBuf::from(env!("CARGO_BIN_EXE_nodepool-bench"));
    let nodepool = bench.with_file_name("nodepool");
    assert!(
        nodepool.exists(),
        "{} is missing: build it first (cargo build -p nodepool; `cargo test --workspace` does)",
        nodepool.display()
    );
    let output = Command::new(&bench)
        .args(["--faults", scenario, "--short", "--seed", "1"])
        .output()
        .expect("run nodepool-bench");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "nodepool-bench failed: {stderr}");
    eprintln!("{stderr}");
    serde_json::from_slice(&output.stdout).expect("one JSON object")
}

fn assert_clean(report: &Value) {
    let findings = &report["findings"];
    for key in [
        "stuck",
        "double_allocations",
        "leaked_servers",
        "ready_without_server",
        "leaked_znodes",
    ] {
        assert_eq!(findings[key], 0, "{key}: {report:#}");
    }
    assert_eq!(report["client_errors"], 0, "{report:#}");
    assert_eq!(report["recovery_s"]["unrecovered"], 0, "{report:#}");
    assert!(
        report["settle_s"].is_number(),
        "the run settles: {report:#}"
    );
    assert_eq!(report["clean"], true, "{report:#}");
}

#[test]
fn a_short_launcher_kill_storm_loses_nothing() {
    let report = run("kill-storm");
    assert!(
        report["faults"]["launcher_kills"].as_u64().unwrap_or(0) >= 1,
        "at least one launcher was killed: {report:#}"
    );
    assert_eq!(report["findings"]["fulfilled"], 150, "{report:#}");
    assert_clean(&report);
}

#[test]
fn short_cloud_faults_lose_nothing() {
    let report = run("cloud-faults");
    assert_clean(&report);
}

#[test]
fn a_short_kill_storm_on_the_embedded_store_loses_nothing() {
    let report = run("sqlite");
    assert!(
        report["faults"]["launcher_kills"].as_u64().unwrap_or(0) >= 1,
        "at least one process was killed: {report:#}"
    );
    assert_clean(&report);
}

/// Not in CI yet: about one run in four ends with one node left BUILDING and locked by a
/// live session after the "launcher cut off" fault (its session expired mid-launch), so
/// the run never settles (docs/reliability.md, issue 17). Run it with `--ignored`.
#[test]
#[ignore = "one run in four leaves a node BUILDING after a session expiry (issue 17)"]
fn short_zookeeper_faults_lose_nothing() {
    let report = run("zookeeper");
    assert_eq!(
        report["faults"]["zookeeper_faults"], 4,
        "leader killed, follower restarted, server paused, launcher cut off: {report:#}"
    );
    assert_eq!(report["client_stalls"], serde_json::json!([]), "{report:#}");
    assert_clean(&report);
}

#[test]
fn a_short_soak_stays_flat() {
    let report = run("soak");
    let soak = &report["soak"];
    assert!(
        soak["samples"].as_u64().unwrap_or(0) >= 6,
        "the launchers were sampled through the run: {report:#}"
    );
    for launcher in soak["launchers"].as_array().expect("launchers") {
        for measure in ["rss_mib", "open_fds", "tasks"] {
            assert_eq!(launcher[measure]["flat"], true, "{measure}: {report:#}");
        }
    }
    assert_eq!(soak["zookeeper_watches"]["flat"], true, "{report:#}");
    assert_clean(&report);
}
