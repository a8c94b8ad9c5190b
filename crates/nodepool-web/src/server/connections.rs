//! Accepting and serving connections within limits, so web clients (trusted by nobody,
//! DESIGN.md 8a) cannot knock the webapp over or starve the process that hosts it:
//!
//! * at most [`Limits::max_connections`] connections at once. When all are taken, the oldest
//!   one with no request in hand (a kept-alive connection waiting, or a slowloris client
//!   still sending headers) that has had a second to send one is closed to make room, so
//!   idle clients cannot keep working ones out for long; otherwise new ones wait in the
//!   kernel's backlog (accepting them would only spend file descriptors);
//! * a request's headers must arrive within [`Limits::header_read_timeout`], including the
//!   wait for the next request on a kept-alive connection, so idle or slowloris connections
//!   are closed;
//! * no connection lives longer than [`Limits::connection_lifetime`].
//!
//! [`serve_in_thread`] runs all of it on a runtime (and thread) of its own, away from the
//! launcher's runtime and its ZooKeeper session.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::{Notify, Semaphore, watch};
use tokio::task::JoinSet;

/// What one web client may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_connections: usize,
    pub header_read_timeout: Duration,
    pub connection_lifetime: Duration,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_connections: 256,
            header_read_timeout: Duration::from_secs(10),
            connection_lifetime: Duration::from_secs(300),
        }
    }
}

/// How long a stopping server waits for the requests in flight.
const DRAIN_LIMIT: Duration = Duration::from_secs(5);

/// How often a full accept loop looks for an idle connection to close.
const EVICTION_RECHECK: Duration = Duration::from_millis(100);

/// How long a connection is left alone before it may be closed to make room: a client gets
/// this long to send its request, and a flood of reconnecting idle clients can make the
/// webapp close at most `max_connections` connections a second (each close and accept
/// costs CPU that the launcher on the same machine needs).
const EVICTION_MIN_AGE: Duration = Duration::from_secs(1);

/// One live connection, as the accept loop sees it.
#[derive(Debug)]
struct Slot {
    /// When it was accepted.
    since: std::time::Instant,
    /// Requests being answered on it now.
    in_flight: AtomicUsize,
    /// Told to close the connection to make room for a new one.
    evict: Notify,
}

impl Slot {
    fn new() -> Slot {
        Slot {
            since: std::time::Instant::now(),
            in_flight: AtomicUsize::new(0),
            evict: Notify::new(),
        }
    }
}

/// Live connections, oldest first; entries of finished ones are dropped as they are met.
#[derive(Debug, Default)]
struct Slots {
    queue: Mutex<VecDeque<Weak<Slot>>>,
}

impl Slots {
    fn add(&self, slot: &Arc<Slot>) {
        let mut queue = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        queue.push_back(Arc::downgrade(slot));
    }

    /// Closes the oldest connection with no request in hand that has had
    /// [`EVICTION_MIN_AGE`] to send one; whether there was one.
    fn evict_oldest_idle(&self) -> bool {
        let mut queue = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        queue.retain(|slot| slot.strong_count() > 0);
        let position = queue.iter().position(|slot| {
            slot.upgrade().is_some_and(|s| {
                s.in_flight.load(Ordering::SeqCst) == 0 && s.since.elapsed() >= EVICTION_MIN_AGE
            })
        });
        let Some(slot) = position
            .and_then(|i| queue.remove(i))
            .and_then(|w| w.upgrade())
        else {
            return false;
        };
        slot.evict.notify_one();
        true
    }
}

/// The router's service, counting the requests in hand on its connection's [`Slot`].
#[derive(Debug, Clone)]
struct Counted<S> {
    inner: S,
    slot: Arc<Slot>,
}

/// Counts a request out when its answer is done (or the request is dropped).
struct InFlight(Arc<Slot>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

impl<S, R> hyper::service::Service<R> for Counted<S>
where
    S: hyper::service::Service<R>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn call(&self, request: R) -> Self::Future {
        self.slot.in_flight.fetch_add(1, Ordering::SeqCst);
        let guard = InFlight(self.slot.clone());
        let answer = self.inner.call(request);
        Box::pin(async move {
            let result = answer.await;
            drop(guard);
            result
        })
    }
}

/// Serves `router` on `listener` within `limits` until `shutdown` completes, then lets the
/// requests in flight finish (for at most a few seconds).
pub(super) async fn serve_router(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let slots = Slots::default();
    let (stopping_tx, stopping) = watch::channel(false);
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        // All taken: make room by closing the oldest idle connection, if there is one; its
        // permit comes back as its task ends.
        if permits.available_permits() == 0 && slots.evict_oldest_idle() {
            tracing::debug!("webapp at its connection limit; closed the oldest idle connection");
        }
        let permit = tokio::select! {
            permit = permits.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
            // Every connection was busy: look again for one that has gone idle.
            () = tokio::time::sleep(EVICTION_RECHECK) => continue,
            () = &mut shutdown => break,
        };
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                // Out of file descriptors, or the peer gave up before we accepted: not the
                // listener's end. Pause a moment instead of spinning.
                Err(e) => {
                    tracing::warn!(error = %e, "webapp cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let slot = Arc::new(Slot::new());
        slots.add(&slot);
        let service = Counted {
            inner: TowerToHyperService::new(router.clone()),
            slot: slot.clone(),
        };
        let mut stopping = stopping.clone();
        connections.spawn(async move {
            let _permit = permit;
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_read_timeout)
                .keep_alive(true);
            let connection = builder.serve_connection(TokioIo::new(stream), service);
            tokio::pin!(connection);
            let lifetime = tokio::time::sleep(limits.connection_lifetime);
            tokio::pin!(lifetime);
            tokio::select! {
                _ = connection.as_mut() => return,
                _ = &mut lifetime => {}
                _ = stopping.wait_for(|stop| *stop) => {}
                () = slot.evict.notified() => {
                    // Idle when chosen; a request that arrived since is finished below.
                    if slot.in_flight.load(Ordering::SeqCst) == 0 {
                        return;
                    }
                }
            }
            // Finish the request in hand, then close.
            connection.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(DRAIN_LIMIT, connection).await;
        });
        // Reap finished connections as we go, so the set stays as small as the live ones.
        while connections.try_join_next().is_some() {}
    }
    stopping_tx.send_replace(true);
    drop(listener);
    let _ = tokio::time::timeout(DRAIN_LIMIT, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    Ok(())
}

/// A webapp running on a thread and runtime of its own.
#[derive(Debug)]
pub struct ServerThread {
    stop: watch::Sender<bool>,
    thread: std::thread::JoinHandle<std::io::Result<()>>,
}

/// Starts `serve` on its own single-threaded runtime, on a thread named `nodepool-web`.
pub fn serve_in_thread(
    listener: std::net::TcpListener,
    state: super::WebState,
    limits: Limits,
) -> std::io::Result<ServerThread> {
    listener.set_nonblocking(true)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (stop, mut stopped) = watch::channel(false);
    let thread = std::thread::Builder::new()
        .name("nodepool-web".to_string())
        .spawn(move || {
            runtime.block_on(async move {
                let listener = TcpListener::from_std(listener)?;
                super::serve_with_limits(listener, state, limits, async move {
                    let _ = stopped.wait_for(|stop| *stop).await;
                })
                .await
            })
        })?;
    Ok(ServerThread { stop, thread })
}

impl ServerThread {
    /// Stops accepting, lets the requests in flight finish, and waits for the thread.
    pub fn stop(self) -> std::io::Result<()> {
        self.stop.send_replace(true);
        self.thread
            .join()
            .unwrap_or_else(|_| Err(std::io::Error::other("the webapp thread panicked")))
    }
}
