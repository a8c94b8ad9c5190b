//! Socket and timers on tokio's own reactor (nodepool's patch of zookeeper-client 0.11.2).
//!
//! Upstream uses `async-net` and `async-io`, whose reactor runs on a thread of its own: every
//! packet and every tick then wakes the session task across threads. Nodepool runs the client
//! on tokio, so the socket and the timers are registered with tokio's driver instead, which
//! the runtime's worker polls itself.

use std::future::Future;
use std::io::{IoSlice, Result};
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::{Duration, Instant};

use futures::io::{AsyncRead, AsyncWrite};
use tokio::io::{AsyncRead as TokioRead, AsyncWrite as TokioWrite, ReadBuf};
use tokio::net::ToSocketAddrs;

/// A TCP connection with the `futures` I/O traits that the session and rustls use.
#[derive(Debug)]
pub struct TcpStream(tokio::net::TcpStream);

impl TcpStream {
    pub async fn connect(addr: impl ToSocketAddrs) -> Result<TcpStream> {
        let stream = tokio::net::TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(TcpStream(stream))
    }
}

impl AsyncRead for TcpStream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<Result<usize>> {
        let mut read = ReadBuf::new(buf);
        ready!(Pin::new(&mut self.get_mut().0).poll_read(cx, &mut read))?;
        Poll::Ready(Ok(read.filled().len()))
    }
}

impl AsyncWrite for TcpStream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<Result<usize>> {
        Pin::new(&mut self.get_mut().0).poll_write(cx, buf)
    }

    fn poll_write_vectored(self: Pin<&mut Self>, cx: &mut Context<'_>, bufs: &[IoSlice<'_>]) -> Poll<Result<usize>> {
        Pin::new(&mut self.get_mut().0).poll_write_vectored(cx, bufs)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_flush(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_shutdown(cx)
    }
}

/// Sleeps for `duration`.
pub async fn sleep(duration: Duration) {
    tokio::time::sleep(duration).await
}

/// A future that is ready at `deadline`, or never.
#[derive(Debug)]
pub struct Timer(Option<Pin<Box<tokio::time::Sleep>>>);

impl Timer {
    pub fn at(deadline: Instant) -> Timer {
        Timer(Some(Box::pin(tokio::time::sleep_until(deadline.into()))))
    }

    pub fn after(duration: Duration) -> Timer {
        Timer(Some(Box::pin(tokio::time::sleep(duration))))
    }

    pub fn never() -> Timer {
        Timer(None)
    }
}

impl Future for Timer {
    type Output = Instant;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Instant> {
        match self.get_mut().0.as_mut() {
            None => Poll::Pending,
            Some(sleep) => sleep.as_mut().poll(cx).map(|()| Instant::now()),
        }
    }
}

/// A future that is ready every `period` (first after one period), yielding the time.
#[derive(Debug)]
pub struct Interval(tokio::time::Interval);

impl Interval {
    pub fn new(period: Duration) -> Interval {
        let mut interval = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        Interval(interval)
    }
}

impl Future for Interval {
    type Output = Instant;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Instant> {
        self.get_mut().0.poll_tick(cx).map(|_| Instant::now())
    }
}
