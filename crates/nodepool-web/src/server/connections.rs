//! Accepting and serving connections within limits, so web clients (trusted by nobody,
//! DESIGN.md 8a) cannot knock the webapp over or starve the process that hosts it:
//!
//! * at most [`Limits::max_connections`] connections at once: past it, new ones wait in the
//!   kernel's backlog (accepting them would only spend file descriptors);
//! * a request's headers must arrive within [`Limits::header_read_timeout`], including the
//!   wait for the next request on a kept-alive connection, so idle or slowloris connections
//!   are closed;
//! * no connection lives longer than [`Limits::connection_lifetime`].
//!
//! [`serve_in_thread`] runs all of it on a runtime (and thread) of its own, away from the
//! launcher's runtime and its ZooKeeper session.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
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

/// Serves `router` on `listener` within `limits` until `shutdown` completes, then lets the
/// requests in flight finish (for at most a few seconds).
pub(super) async fn serve_router(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let (stopping_tx, stopping) = watch::channel(false);
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            permit = permits.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
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
        let service = TowerToHyperService::new(router.clone());
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
