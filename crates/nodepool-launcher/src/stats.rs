//! statsd metrics with Nodepool's names (spec 2.16), sent when `STATSD_HOST` or
//! `STATSD_PORT` is set. Fire-and-forget UDP: a missing collector never slows the launcher.

use std::net::UdpSocket;
use std::time::Duration;

use nodepool_config::Provider;
use nodepool_model::Node;

#[derive(Debug)]
pub struct Stats {
    /// `None` when statsd is not configured.
    socket: Option<UdpSocket>,
    /// Launch results kept in process for `/metrics`: (provider, result) -> (count, seconds).
    /// A std mutex: nothing awaits while holding it.
    tally: std::sync::Mutex<std::collections::BTreeMap<(String, String), (u64, f64)>>,
}

/// Launches that ended with one result at one provider, since the launcher started.
#[derive(Debug, Clone, PartialEq)]
pub struct LaunchTally {
    pub provider: String,
    pub result: String,
    pub count: u64,
    pub seconds: f64,
}

impl Stats {
    /// statsd from the environment, as Nodepool reads it (host default `localhost`, port
    /// default 8125; disabled when neither is set).
    pub fn from_env() -> Stats {
        let host = std::env::var("STATSD_HOST").ok();
        let port = std::env::var("STATSD_PORT").ok();
        if host.is_none() && port.is_none() {
            return Stats {
                socket: None,
                tally: Default::default(),
            };
        }
        let host = host.unwrap_or_else(|| "localhost".to_string());
        let port: u16 = port.and_then(|p| p.parse().ok()).unwrap_or(8125);
        Stats::to(&host, port)
    }

    /// statsd to an explicit address (tests).
    pub fn to(host: &str, port: u16) -> Stats {
        let socket = UdpSocket::bind(("0.0.0.0", 0))
            .and_then(|s| s.connect((host, port)).map(|()| s))
            .and_then(|s| s.set_nonblocking(true).map(|()| s));
        match socket {
            Ok(socket) => Stats {
                socket: Some(socket),
                tally: Default::default(),
            },
            Err(e) => {
                tracing::warn!(host, port, error = %e, "statsd disabled: cannot reach the collector");
                Stats {
                    socket: None,
                    tally: Default::default(),
                }
            }
        }
    }

    pub fn disabled() -> Stats {
        Stats {
            socket: None,
            tally: Default::default(),
        }
    }

    fn send(&self, line: &str) {
        if let Some(socket) = &self.socket {
            let _ = socket.send(line.as_bytes());
        }
    }

    pub fn incr(&self, key: &str) {
        self.send(&format!("{key}:1|c"));
    }

    pub fn timing(&self, key: &str, elapsed: Duration) {
        self.send(&format!("{key}:{}|ms", elapsed.as_millis()));
    }

    pub fn gauge(&self, key: &str, value: f64) {
        let text = if value.is_infinite() {
            "inf".to_string()
        } else if value.fract() == 0.0 {
            format!("{}", value as i64)
        } else {
            value.to_string()
        };
        self.send(&format!("{key}:{text}|g"));
    }

    /// A launch completion: timer and counter under each of Nodepool's keys.
    pub fn launch(&self, node: &Node, result: &str, elapsed: Duration) {
        {
            let mut tally = self.tally.lock().unwrap_or_else(|e| e.into_inner());
            let entry = tally
                .entry((
                    node.provider.clone().unwrap_or_default(),
                    result.to_string(),
                ))
                .or_default();
            entry.0 += 1;
            entry.1 += elapsed.as_secs_f64();
        }
        if self.socket.is_none() {
            return;
        }
        let mut keys = vec![format!("nodepool.launch.{result}")];
        if let Some(provider) = &node.provider {
            keys.push(format!("nodepool.launch.provider.{provider}.{result}"));
            if let Some(az) = &node.az {
                keys.push(format!("nodepool.launch.provider.{provider}.{az}.{result}"));
            }
        }
        if let Some(requestor) = &node.requestor {
            let requestor = requestor.replace(['.', ':'], "_");
            keys.push(format!("nodepool.launch.requestor.{requestor}.{result}"));
        }
        for key in keys {
            self.timing(&key, elapsed);
            self.incr(&key);
        }
    }

    /// `nodepool.provider.<p>.max_servers`: the sum over the provider's pools.
    pub fn gauge_max_servers(&self, provider: &str, config: &Provider) {
        if self.socket.is_none() {
            return;
        }
        let total: f64 = config
            .pools
            .iter()
            .map(|p| p.max_servers.map_or(f64::INFINITY, |m| m as f64))
            .filter(|m| *m != 0.0)
            .sum();
        self.gauge(&format!("nodepool.provider.{provider}.max_servers"), total);
    }

    /// Launch results so far.
    pub fn launches(&self) -> Vec<LaunchTally> {
        self.tally
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|((provider, result), (count, seconds))| LaunchTally {
                provider: provider.clone(),
                result: result.clone(),
                count: *count,
                seconds: *seconds,
            })
            .collect()
    }

    pub fn enabled(&self) -> bool {
        self.socket.is_some()
    }
}

/// The node gauges the stats leader sends (spec 2.16): counts per state overall, per
/// provider and per label, every known state initialized to 0 so a gauge returns to zero.
pub fn node_gauges(
    nodes: &[crate::view::NodeEntry],
    providers: &[String],
    labels: &[String],
) -> std::collections::BTreeMap<String, f64> {
    use nodepool_model::NodeState;
    let mut gauges = std::collections::BTreeMap::new();
    let states: Vec<String> = NodeState::KNOWN
        .iter()
        .map(|s| s.as_str().to_string())
        .collect();
    let mut providers: Vec<String> = providers.to_vec();
    let mut labels: Vec<String> = labels.to_vec();
    for e in nodes {
        if let Some(p) = &e.node.provider
            && !providers.contains(p)
        {
            providers.push(p.clone());
        }
        for l in &e.node.node_type {
            if !labels.contains(l) {
                labels.push(l.clone());
            }
        }
    }
    for state in &states {
        gauges.insert(format!("nodepool.nodes.{state}"), 0.0);
        for p in &providers {
            gauges.insert(format!("nodepool.provider.{p}.nodes.{state}"), 0.0);
        }
        for l in &labels {
            gauges.insert(format!("nodepool.label.{l}.nodes.{state}"), 0.0);
        }
    }
    for e in nodes {
        let state = e.node.state.as_str();
        *gauges.entry(format!("nodepool.nodes.{state}")).or_default() += 1.0;
        if let Some(p) = &e.node.provider {
            *gauges
                .entry(format!("nodepool.provider.{p}.nodes.{state}"))
                .or_default() += 1.0;
        }
        for l in &e.node.node_type {
            *gauges
                .entry(format!("nodepool.label.{l}.nodes.{state}"))
                .or_default() += 1.0;
        }
    }
    gauges
}
