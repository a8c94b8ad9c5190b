//! The soak: a moderate load for a fixed time with each launcher's resident memory, open
//! file descriptors and async tasks, and ZooKeeper's watch count, sampled at intervals. A
//! leak shows as growth between the start and the end of the steady part of the run.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::cluster::Cluster;
use crate::flood;
use crate::process::{open_fds, rss_mib};

/// One look at every launcher and at ZooKeeper.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Seconds since the load started.
    pub at: f64,
    /// Per launcher: resident MiB, open fds, alive tasks (`None` when unreadable).
    pub launchers: Vec<LauncherSample>,
    /// ZooKeeper's total watch count (`wchs`).
    pub watches: Option<f64>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LauncherSample {
    pub rss_mib: Option<f64>,
    pub fds: Option<f64>,
    pub tasks: Option<f64>,
}

/// How much a measure may grow from the start of the steady part to its end and still be
/// flat: `absolute + relative * start`. The load itself makes tasks, fds and watches go up
/// and down by a few dozen (launches and lock waits in flight); a leak grows without bound.
#[derive(Debug, Clone, Copy)]
pub struct Tolerance {
    pub absolute: f64,
    pub relative: f64,
}

pub const RSS_TOLERANCE: Tolerance = Tolerance {
    absolute: 8.0,
    relative: 0.10,
};
pub const FD_TOLERANCE: Tolerance = Tolerance {
    absolute: 8.0,
    relative: 0.10,
};
pub const TASK_TOLERANCE: Tolerance = Tolerance {
    absolute: 30.0,
    relative: 0.25,
};
pub const WATCH_TOLERANCE: Tolerance = Tolerance {
    absolute: 30.0,
    relative: 0.25,
};

/// The start and end of a series' steady part (the median of its first and last thirds,
/// after the first `warm_up` samples) and whether the growth between them is within
/// `tolerance`. `None` with fewer than three steady samples.
pub fn drift(series: &[f64], warm_up: usize, tolerance: Tolerance) -> Option<Drift> {
    let steady = series.get(warm_up..)?;
    if steady.len() < 3 {
        return None;
    }
    let third = steady.len().div_ceil(3);
    let start = median(&steady[..third]);
    let end = median(&steady[steady.len() - third..]);
    let allowed = tolerance.absolute + tolerance.relative * start;
    Some(Drift {
        start,
        end,
        flat: end - start <= allowed,
    })
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Drift {
    pub start: f64,
    pub end: f64,
    pub flat: bool,
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted.get(sorted.len() / 2).copied().unwrap_or(0.0)
}

/// Takes one sample of every launcher (through its pid and its webapp's `/metrics`) and of
/// ZooKeeper.
pub async fn sample(cluster: &Cluster, began: Instant) -> Sample {
    let mut launchers = Vec::new();
    for (index, slot) in cluster.launchers.iter().enumerate() {
        let pid = slot.child.as_ref().and_then(tokio::process::Child::id);
        let tasks = match cluster.webapp_address(index) {
            Some(address) => metric(address, "nodepool_runtime_alive_tasks").await,
            None => None,
        };
        launchers.push(LauncherSample {
            rss_mib: pid.and_then(rss_mib),
            fds: pid.and_then(open_fds).map(|n| n as f64),
            tasks,
        });
    }
    let watches = cluster
        .zookeeper
        .as_ref()
        .and_then(|zk| zk.four_letter_word("wchs").ok())
        .and_then(|answer| total_watches(&answer));
    Sample {
        at: began.elapsed().as_secs_f64(),
        launchers,
        watches,
    }
}

/// One unlabelled sample of `name` from a Prometheus text exposition at `address`.
async fn metric(address: SocketAddr, name: &str) -> Option<f64> {
    let (status, body) = flood::fetch(address, "/metrics").await?;
    if status != 200 {
        return None;
    }
    body.lines()
        .filter(|line| !line.starts_with('#'))
        .find_map(|line| {
            line.strip_prefix(name)?
                .strip_prefix(' ')?
                .trim()
                .parse()
                .ok()
        })
}

/// `Total watches:N` of a `wchs` answer.
fn total_watches(answer: &str) -> Option<f64> {
    answer
        .lines()
        .find_map(|line| line.trim().strip_prefix("Total watches:"))
        .and_then(|n| n.trim().parse().ok())
}

/// The report's `soak` object: the samples and each measure's drift.
pub fn report(samples: &[Sample], warm_up: usize) -> (Value, bool) {
    let launchers = samples.first().map_or(0, |s| s.launchers.len());
    let mut flat = true;
    let mut per_launcher = Vec::new();
    let mut judge = |series: Vec<f64>, tolerance: Tolerance| -> Value {
        match drift(&series, warm_up, tolerance) {
            Some(d) => {
                flat &= d.flat;
                json!({ "start": round(d.start), "end": round(d.end), "flat": d.flat })
            }
            None => {
                flat = false;
                json!({ "start": null, "end": null, "flat": false })
            }
        }
    };
    for index in 0..launchers {
        let series = |pick: fn(&LauncherSample) -> Option<f64>| -> Vec<f64> {
            samples
                .iter()
                .filter_map(|s| s.launchers.get(index).and_then(pick))
                .collect()
        };
        per_launcher.push(json!({
            "rss_mib": judge(series(|l| l.rss_mib), RSS_TOLERANCE),
            "open_fds": judge(series(|l| l.fds), FD_TOLERANCE),
            "tasks": judge(series(|l| l.tasks), TASK_TOLERANCE),
        }));
    }
    let watches = judge(
        samples.iter().filter_map(|s| s.watches).collect(),
        WATCH_TOLERANCE,
    );
    let series: Vec<Value> = samples
        .iter()
        .map(|s| {
            json!({
                "at_s": round(s.at),
                "launchers": s.launchers.iter().map(|l| json!([l.rss_mib.map(round), l.fds, l.tasks])).collect::<Vec<_>>(),
                "zookeeper_watches": s.watches,
            })
        })
        .collect();
    (
        json!({
            "samples": samples.len(),
            "warm_up_samples": warm_up,
            "launchers": per_launcher,
            "zookeeper_watches": watches,
            "flat": flat,
            "series": series,
        }),
        flat,
    )
}

fn round(value: f64) -> f64 {
    (value * 10.0).round() / 10.0
}

/// How long to run and how often to look.
pub fn timing(short: bool) -> (Duration, Duration) {
    if short {
        (Duration::from_secs(120), Duration::from_secs(10))
    } else {
        (Duration::from_secs(30 * 60), Duration::from_secs(30))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn growth_within_the_tolerance_is_flat_and_a_steady_climb_is_not() {
        let tolerance = Tolerance {
            absolute: 5.0,
            relative: 0.1,
        };
        // Noisy but level after a warm-up climb.
        let level = [10.0, 60.0, 100.0, 104.0, 98.0, 103.0, 101.0, 99.0, 105.0];
        let d = drift(&level, 2, tolerance).expect("enough samples");
        assert!(d.flat, "{d:?}");
        // A leak: a little more at every look.
        let climbing: Vec<f64> = (0..12).map(|i| 100.0 + 4.0 * f64::from(i)).collect();
        let d = drift(&climbing, 2, tolerance).expect("enough samples");
        assert!(!d.flat, "{d:?}");
        assert!(
            drift(&level, 8, tolerance).is_none(),
            "too few steady samples"
        );
    }

    #[test]
    fn zookeeper_watch_totals_and_metrics_are_read() {
        let answer = "3 connections watching 5 paths\nTotal watches:12\n";
        assert_eq!(total_watches(answer), Some(12.0));
        assert_eq!(total_watches("nothing"), None);
    }
}
