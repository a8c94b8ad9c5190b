//! `--web-flood` (issue 16): the webapp of a launcher under load is flooded with idle
//! half-sent requests and a stream of `/api/nodes` requests, and the bench reports what that
//! costs the launcher: its throughput against an undisturbed run, its ZooKeeper session, its
//! file descriptors, and how soon the webapp answers once the flood stops.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinSet;

use crate::process::open_fds;

/// A request line and one header, never finished: a slowloris client.
const HALF_REQUEST: &[u8] = b"GET /api/nodes HTTP/1.1\r\nHost: bench\r\n";
const FULL_REQUEST: &[u8] =
    b"GET /api/nodes HTTP/1.1\r\nHost: bench\r\nConnection: close\r\nAccept: application/json\r\n\r\n";
/// One connect attempt; a full accept queue drops SYNs, which would otherwise wait minutes.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// What the flood did.
#[derive(Debug, Default)]
pub struct FloodCounts {
    /// Idle connections open now.
    pub idle_open: AtomicUsize,
    /// The most idle connections open at once.
    pub idle_peak: AtomicUsize,
    /// Idle connections the server closed (its header timeout) or refused.
    pub idle_closed: AtomicU64,
    pub requests_ok: AtomicU64,
    pub requests_failed: AtomicU64,
}

pub struct Flood {
    /// Idle connections asked for.
    idle: usize,
    stop: Arc<AtomicBool>,
    tasks: JoinSet<()>,
    pub counts: Arc<FloodCounts>,
}

impl Flood {
    /// `idle` slowloris connections kept open (reopened when the server closes them) and
    /// `flooders` clients asking for `/api/nodes` as fast as they are answered.
    pub fn start(address: SocketAddr, idle: usize, flooders: usize) -> Flood {
        let stop = Arc::new(AtomicBool::new(false));
        let counts = Arc::new(FloodCounts::default());
        let mut tasks = JoinSet::new();
        for _ in 0..idle {
            let (stop, counts) = (stop.clone(), counts.clone());
            tasks.spawn(async move { hold_idle(address, &stop, &counts).await });
        }
        for _ in 0..flooders {
            let (stop, counts) = (stop.clone(), counts.clone());
            tasks.spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let counter = match get(address).await {
                        Some(200) => &counts.requests_ok,
                        _ => &counts.requests_failed,
                    };
                    counter.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
        Flood {
            idle,
            stop,
            tasks,
            counts,
        }
    }

    /// Ends the flood, closes every connection, and reports what the flood did (since
    /// `began`) and how soon the webapp at `address` answers again.
    pub async fn finish(mut self, address: SocketAddr, began: Instant) -> serde_json::Value {
        let count = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let counts = self.counts.clone();
        self.stop.store(true, Ordering::Relaxed);
        self.tasks.abort_all();
        while self.tasks.join_next().await.is_some() {}
        let recovery = recovery(address, Duration::from_secs(30)).await;
        let ok = count(&counts.requests_ok);
        serde_json::json!({
            "idle_connections": self.idle,
            "idle_open_peak": counts.idle_peak.load(Ordering::Relaxed),
            "idle_closed_by_server": count(&counts.idle_closed),
            "api_requests_ok": ok,
            "api_requests_failed": count(&counts.requests_failed),
            "api_requests_per_second": crate::run::round(ok as f64 / began.elapsed().as_secs_f64()),
            "webapp_answers_after_flood_ms": recovery.map(|d| crate::run::round(d.as_secs_f64() * 1000.0)),
        })
    }
}

async fn hold_idle(address: SocketAddr, stop: &AtomicBool, counts: &FloodCounts) {
    while !stop.load(Ordering::Relaxed) {
        let Ok(Ok(mut stream)) =
            tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(address)).await
        else {
            counts.idle_closed.fetch_add(1, Ordering::Relaxed);
            continue;
        };
        if stream.write_all(HALF_REQUEST).await.is_err() {
            counts.idle_closed.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        let open = counts.idle_open.fetch_add(1, Ordering::Relaxed) + 1;
        counts.idle_peak.fetch_max(open, Ordering::Relaxed);
        // Until the server gives up on us.
        let mut sink = [0u8; 1024];
        while matches!(stream.read(&mut sink).await, Ok(n) if n > 0) {}
        counts.idle_open.fetch_sub(1, Ordering::Relaxed);
        counts.idle_closed.fetch_add(1, Ordering::Relaxed);
    }
}

/// One `GET /api/nodes`; the status code, or `None` when there was no answer.
pub async fn get(address: SocketAddr) -> Option<u16> {
    request(address, FULL_REQUEST)
        .await
        .map(|(status, _)| status)
}

/// One `GET path` (HTTP/1.1, connection closed after); the status code and the body.
pub async fn fetch(address: SocketAddr, path: &str) -> Option<(u16, String)> {
    let request_text = format!("GET {path} HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n");
    request(address, request_text.as_bytes()).await
}

async fn request(address: SocketAddr, request_bytes: &[u8]) -> Option<(u16, String)> {
    let mut stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(address))
        .await
        .ok()?
        .ok()?;
    stream.write_all(request_bytes).await.ok()?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.ok()?;
    let text = String::from_utf8_lossy(&answer);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .lines()
        .next()?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some((status, body.to_string()))
}

/// How long after `began` the webapp answers `/api/nodes` with 200 again.
pub async fn recovery(address: SocketAddr, limit: Duration) -> Option<Duration> {
    let began = Instant::now();
    while began.elapsed() < limit {
        if get(address).await == Some(200) {
            return Some(began.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    None
}

/// The soft `Max open files` limit of `pid`.
pub fn fd_limit(pid: u32) -> Option<u64> {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

/// Samples `open_fds(pid)` until stopped; the peak.
pub fn sample_fds(pid: u32, stop: Arc<AtomicBool>) -> tokio::task::JoinHandle<usize> {
    tokio::spawn(async move {
        let mut peak = 0;
        while !stop.load(Ordering::Relaxed) {
            peak = peak.max(open_fds(pid).unwrap_or(0));
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        peak
    })
}

/// Lines of a launcher log that say its ZooKeeper session was suspended or lost.
pub fn session_troubles(log: &str) -> usize {
    log.lines()
        .filter(|l| l.contains("the session is suspended") || l.contains("ZooKeeper session lost"))
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_troubles_are_counted_from_the_log() {
        let log = "INFO launcher ready\n\
                   WARN ZooKeeper connection lost; the session is suspended\n\
                   WARN ZooKeeper session lost; opening a new session\n";
        assert_eq!(session_troubles(log), 2);
        assert_eq!(session_troubles("INFO all fine\n"), 0);
    }
}
