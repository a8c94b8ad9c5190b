//! Waiting for a condition with a deadline, instead of sleeping a fixed time and hoping.
//!
//! Prefer the event-driven helpers: [`wait_for_store_change`] re-checks on every change a
//! store watch reports, [`wait_for_cache_change`] on every change a [`TreeCache`] applies.
//! [`wait_for`] polls and is only for conditions that no watch can see (a process's
//! output, a file, a port).
//!
//! Conditions are closures returning a future (`|| async { .. }`) that yields `Some(value)`
//! when satisfied and `None` to keep waiting. A condition that wants to stop with a failure
//! returns `Some(Err(..))`. (Plain closures rather than `AsyncFnMut`, so the waiting future
//! stays `Send` and can run in a spawned task.)

use std::future::Future;
use std::time::Duration;

use nodepool_store::{Backend, StoreError, TreeCache};
use tokio::time::Instant;

/// The condition did not hold within the given time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("condition not met within {0:?}")]
pub struct Timeout(pub Duration);

/// Why [`wait_for_store_change`] or [`wait_for_cache_change`] gave up.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChangeWaitError {
    #[error(transparent)]
    Timeout(#[from] Timeout),
    /// The watch could not be registered.
    #[error("could not watch the store: {0}")]
    Store(#[from] StoreError),
    /// The backend (or cache) stopped reporting changes, so waiting longer is pointless.
    #[error("the change feed on {0} ended")]
    FeedEnded(String),
}

/// Polls `condition` every `poll_interval` until it returns `Some`, for at most `timeout`.
///
/// Polling: use this only when nothing can tell us the condition changed. The condition is
/// checked once more at the deadline before giving up.
pub async fn wait_for<T, F, Fut>(
    timeout: Duration,
    poll_interval: Duration,
    mut condition: F,
) -> Result<T, Timeout>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = condition().await {
            return Ok(value);
        }
        let now = Instant::now();
        if now >= deadline {
            return Err(Timeout(timeout));
        }
        tokio::time::sleep_until((now + poll_interval).min(deadline)).await;
    }
}

/// Checks `condition` now and again after every change at or under `prefix`, for at most
/// `timeout` in all (registering the watch and the checks included: a store call that
/// hangs ends in `Timeout` too).
///
/// The watch is registered before the first check, so a change between the check and the
/// wait is not missed. Events that arrive together are coalesced into one re-check.
pub async fn wait_for_store_change<T, F, Fut>(
    backend: &dyn Backend,
    prefix: &str,
    timeout: Duration,
    mut condition: F,
) -> Result<T, ChangeWaitError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let waiting = async {
        let mut watch = backend.watch(prefix).await?;
        loop {
            if let Some(value) = condition().await {
                return Ok(value);
            }
            match watch.events.recv().await {
                None => return Err(ChangeWaitError::FeedEnded(prefix.to_string())),
                Some(_) => while watch.events.try_recv().is_ok() {},
            }
        }
    };
    match tokio::time::timeout(timeout, waiting).await {
        Ok(outcome) => outcome,
        Err(_) => Err(Timeout(timeout).into()),
    }
}

/// Checks `condition` now and again each time `cache` applies a change, for at most
/// `timeout`. The condition usually reads the cache itself.
pub async fn wait_for_cache_change<T, F, Fut>(
    cache: &TreeCache,
    timeout: Duration,
    mut condition: F,
) -> Result<T, ChangeWaitError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    let mut generation = cache.generation();
    loop {
        generation.borrow_and_update();
        if let Some(value) = condition().await {
            return Ok(value);
        }
        match tokio::time::timeout_at(deadline, generation.changed()).await {
            Err(_) => return Err(Timeout(timeout).into()),
            Ok(Err(_)) => return Err(ChangeWaitError::FeedEnded(cache.root().to_string())),
            Ok(Ok(())) => {}
        }
    }
}
