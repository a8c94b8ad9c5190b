//! The kazoo lock recipe (kazoo 2.9 `Lock`), exactly, so our processes, Python Nodepool and
//! Zuul exclude each other on the same node, request or image (spec 1.4).
//!
//! A contender is an ephemeral sequential child `<uuid4 hex>__lock__<seq10>` of the lock
//! directory; the lowest sequence holds the lock; the others wait for the contender just
//! before them to go away.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::backend::{
    Backend, CreateMode, Op, OpResult, SessionState, StoreError, StoreResult, join,
};

const LOCK_MARKER: &str = "__lock__";

/// How long to wait for a lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockWait {
    /// Fail at once if someone else holds it.
    NonBlocking,
    Timeout(Duration),
    Forever,
}

/// A held lock; released by [`Lock::release`] (or by the session ending).
#[derive(Debug)]
pub struct Lock {
    backend: Arc<dyn Backend>,
    /// Full path of our contender znode.
    node: String,
    dir: String,
}

impl Lock {
    /// A lock taken by creating `dir` and our contender `node` in it in one transaction
    /// (see [`contender_prefix`]): being the only contender of a directory that did not
    /// exist before, we hold the lock, as kazoo's recipe would conclude.
    pub fn from_created(backend: Arc<dyn Backend>, node: String, dir: &str) -> Lock {
        Lock {
            backend,
            node,
            dir: dir.to_string(),
        }
    }

    /// The operation that releases the lock inside a [`Backend::multi`]; after the
    /// transaction commits, the lock is gone (drop it with [`Lock::released`]).
    pub fn release_op(&self) -> Op {
        Op::delete(self.node.clone(), None)
    }

    /// Forgets a lock released by a committed [`Lock::release_op`].
    pub fn released(self) {}

    pub fn dir(&self) -> &str {
        &self.dir
    }

    /// Full path of our contender znode.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// Whether our contender still exists (it vanishes if the session is lost).
    pub async fn is_held(&self) -> StoreResult<bool> {
        Ok(self.backend.exists(&self.node).await?.is_some())
    }

    /// Deletes our contender, through a reconnect as kazoo's release retries: a contender
    /// left behind on a surviving session would hold the lock for the session's life. A
    /// session lost meanwhile took the contender with it.
    pub async fn release(self) -> StoreResult<()> {
        let deadline = Some(Instant::now() + RELEASE_RIDE_OUT);
        let deleted = retry_suspended(self.backend.as_ref(), deadline, || {
            self.backend.delete(&self.node, None)
        })
        .await;
        match deleted {
            Ok(()) | Err(StoreError::NoNode(_) | StoreError::SessionLost) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

/// The path to create (ephemeral sequential) for a new contender in `dir`:
/// `<dir>/<uuid4 hex>__lock__`, as kazoo names it.
pub fn contender_prefix(dir: &str) -> String {
    join(
        dir,
        &format!("{}{LOCK_MARKER}", uuid::Uuid::new_v4().simple()),
    )
}

/// The 10-digit sequence of a contender name, if it is one (kazoo's `(?:__lock__)(-?\d{10})$`).
pub fn contender_sequence(name: &str) -> Option<&str> {
    let at = name.rfind(LOCK_MARKER)?;
    let sequence = &name[at + LOCK_MARKER.len()..];
    let digits = sequence.strip_prefix('-').unwrap_or(sequence);
    (digits.len() == 10 && digits.bytes().all(|b| b.is_ascii_digit())).then_some(sequence)
}

/// Contender names in the lock directory, lowest sequence (the holder) first.
pub async fn contenders(backend: &dyn Backend, dir: &str) -> StoreResult<Vec<String>> {
    let children = match backend.children(dir).await {
        Ok(children) => children,
        Err(StoreError::NoNode(_)) => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut contenders: Vec<(String, String)> = children
        .into_iter()
        .filter_map(|name| contender_sequence(&name).map(|s| (s.to_string(), name.clone())))
        .collect();
    // kazoo compares the sequence strings.
    contenders.sort();
    Ok(contenders.into_iter().map(|(_, name)| name).collect())
}

/// Creates `path` and its ancestors as empty persistent znodes if missing (kazoo `ensure_path`).
pub async fn ensure_path(backend: &dyn Backend, path: &str) -> StoreResult<()> {
    if backend.exists(path).await?.is_some() {
        return Ok(());
    }
    match backend
        .create(path, b"", CreateMode::Persistent, true)
        .await
    {
        Ok(_) | Err(StoreError::NodeExists(_)) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Whether taking a lock may re-create what its directory lives under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockParent {
    /// kazoo's way (`ensure_path`): every missing ancestor is made. Zuul and Python
    /// Nodepool lock this way, so locking a node that was just deleted brings its znode back
    /// empty (spec 8.2).
    Recreate,
    /// The directory's parent must exist: locking something already deleted fails with
    /// `NoNode` instead of re-creating it. Our launchers lock nodes this way, so several of
    /// them reacting to one deletion do not keep re-creating the node (and its lock
    /// directory) that one of them is deleting.
    MustExist,
}

/// Makes the lock directory `dir` as `parent` allows.
async fn make_dir(backend: &dyn Backend, dir: &str, parent: LockParent) -> StoreResult<()> {
    match parent {
        LockParent::Recreate => ensure_path(backend, dir).await,
        LockParent::MustExist => match backend
            .create(dir, b"", CreateMode::Persistent, false)
            .await
        {
            Ok(_) | Err(StoreError::NodeExists(_)) => Ok(()),
            Err(e) => Err(e),
        },
    }
}

/// What the caller knows of a lock's directory. A right guess saves the round trip that
/// checks for it; a wrong one costs that round trip (a failed transaction, or a create that
/// finds no directory) and stays correct.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockDir {
    /// Check first (kazoo's way).
    Unknown,
    /// Probably there (a cache shows it).
    Exists,
    /// Probably not made yet (the first lock on something new).
    Missing,
}

/// Takes the lock on `dir`. Returns `Ok(None)` when a non-blocking attempt finds it held
/// and `Err(StoreError::Timeout)` when a timed wait runs out.
pub async fn acquire(
    backend: Arc<dyn Backend>,
    dir: &str,
    identifier: &str,
    wait: LockWait,
) -> StoreResult<Option<Lock>> {
    acquire_expecting(
        backend,
        dir,
        identifier,
        wait,
        LockDir::Unknown,
        LockParent::Recreate,
    )
    .await
}

/// [`acquire`], with what the caller knows of the directory and whether its parent may be
/// re-created. With [`LockParent::MustExist`], a missing parent is `Err(NoNode)`.
pub async fn acquire_expecting(
    backend: Arc<dyn Backend>,
    dir: &str,
    identifier: &str,
    wait: LockWait,
    expect: LockDir,
    parent: LockParent,
) -> StoreResult<Option<Lock>> {
    let deadline = match wait {
        LockWait::Timeout(limit) => Some(Instant::now() + limit),
        _ => None,
    };
    let prefix = contender_prefix(dir);
    let missing = match expect {
        LockDir::Missing => true,
        LockDir::Exists => false,
        LockDir::Unknown => retry_suspended(backend.as_ref(), deadline, || backend.exists(dir))
            .await?
            .is_none(),
    };
    // Whether a contender of ours may exist though no answer said so: a create whose answer
    // was cut off by a lost connection may have been applied.
    let mut maybe_created = false;
    if missing {
        // kazoo's `ensure_path` and contender create, as one transaction: in a directory
        // that did not exist, ours is the only contender and holds the lock.
        let created = backend
            .multi(vec![
                Op::create(dir, Vec::new(), CreateMode::Persistent),
                Op::create(
                    prefix.clone(),
                    identifier.as_bytes().to_vec(),
                    CreateMode::EphemeralSequential,
                ),
            ])
            .await;
        match created.as_deref() {
            Ok([_, OpResult::Created(node)]) => {
                return Ok(Some(Lock::from_created(backend.clone(), node.clone(), dir)));
            }
            // Someone made the directory meanwhile (or the guess was wrong).
            Err(StoreError::NodeExists(_)) => {}
            Err(StoreError::Suspended) => {
                await_connection(backend.as_ref(), deadline).await?;
                maybe_created = true;
            }
            // Its parent is missing, or the backend has no transactions: the recipe's
            // own steps.
            _ => {
                retry_suspended(backend.as_ref(), deadline, || {
                    make_dir(backend.as_ref(), dir, parent)
                })
                .await?
            }
        }
    }
    loop {
        let found = if maybe_created {
            maybe_created = false;
            own_contender(backend.as_ref(), dir, &prefix, deadline).await?
        } else {
            None
        };
        let node = match found {
            Some(node) => node,
            None => match backend
                .create(
                    &prefix,
                    identifier.as_bytes(),
                    CreateMode::EphemeralSequential,
                    false,
                )
                .await
            {
                Ok(node) => node,
                // The directory vanished (a node deleted meanwhile): recreate it as kazoo
                // does, or fail if its parent went too and may not come back.
                Err(StoreError::NoNode(_)) => {
                    retry_suspended(backend.as_ref(), deadline, || {
                        make_dir(backend.as_ref(), dir, parent)
                    })
                    .await?;
                    continue;
                }
                // kazoo retries the create and then looks for its own contender by name.
                Err(StoreError::Suspended) => {
                    await_connection(backend.as_ref(), deadline).await?;
                    maybe_created = true;
                    continue;
                }
                Err(e) => return Err(e),
            },
        };
        match wait_in_line(&backend, dir, &node, wait, deadline).await {
            Ok(Some(true)) => {
                return Ok(Some(Lock {
                    backend,
                    node,
                    dir: dir.to_string(),
                }));
            }
            // Our contender vanished (session lost): start again.
            Ok(Some(false)) => continue,
            Ok(None) => {
                remove_contender(&backend, &node).await;
                return Ok(None);
            }
            // A contender left behind would keep everyone after it waiting for as long as
            // the session lives.
            Err(e) => {
                remove_contender(&backend, &node).await;
                return Err(e);
            }
        }
    }
}

/// Waits until our contender `node` is the lowest in `dir`: `Some(true)` then, `Some(false)`
/// if it vanished (the session was lost), `None` when a non-blocking attempt finds the lock
/// held, `Err(Timeout)` when the deadline passes. A suspended connection is waited out.
async fn wait_in_line(
    backend: &Arc<dyn Backend>,
    dir: &str,
    node: &str,
    wait: LockWait,
    deadline: Option<Instant>,
) -> StoreResult<Option<bool>> {
    let own_name = node.rsplit('/').next().unwrap_or_default().to_string();
    let own_sequence = contender_sequence(&own_name)
        .unwrap_or_default()
        .to_string();
    loop {
        let names = retry_suspended(backend.as_ref(), deadline, || {
            contenders(backend.as_ref(), dir)
        })
        .await?;
        if !names.contains(&own_name) {
            return Ok(Some(false));
        }
        let predecessor = names
            .iter()
            .rfind(|n| contender_sequence(n).is_some_and(|s| s < own_sequence.as_str()))
            .cloned();
        let Some(predecessor) = predecessor else {
            return Ok(Some(true));
        };
        if wait == LockWait::NonBlocking {
            return Ok(None);
        }
        let remaining = remaining(deadline)?;
        let predecessor = join(dir, &predecessor);
        retry_suspended(backend.as_ref(), deadline, || {
            backend.wait_deleted(&predecessor, remaining)
        })
        .await?;
    }
}

/// Time left before `deadline` (`None`: no deadline); `Err(Timeout)` once it has passed.
fn remaining(deadline: Option<Instant>) -> StoreResult<Option<Duration>> {
    match deadline {
        None => Ok(None),
        Some(deadline) => match deadline.checked_duration_since(Instant::now()) {
            Some(left) if !left.is_zero() => Ok(Some(left)),
            _ => Err(StoreError::Timeout),
        },
    }
}

/// The shortest pause between attempts while the connection is suspended: a call can fail
/// a moment before the session state says so.
const SUSPENDED_RETRY_PAUSE: Duration = Duration::from_millis(100);

/// Waits until the connection is no longer suspended (connected again, or the session lost,
/// which the next call reports), for at most until `deadline`.
async fn await_connection(backend: &dyn Backend, deadline: Option<Instant>) -> StoreResult<()> {
    let mut states = backend.session_state();
    let wait = async {
        tokio::time::sleep(SUSPENDED_RETRY_PAUSE).await;
        states
            .wait_for(|state| *state != SessionState::Suspended)
            .await
            .map(|_| ())
            .map_err(|_| StoreError::SessionLost)
    };
    match remaining(deadline)? {
        Some(left) => tokio::time::timeout(left, wait)
            .await
            .map_err(|_| StoreError::Timeout)?,
        None => wait.await,
    }
}

/// How long a release waits for a suspended connection to come back.
const RELEASE_RIDE_OUT: Duration = Duration::from_secs(60);

/// Runs `step` again each time it fails because the connection is suspended, as kazoo's
/// retry does through a reconnect: the session (and our ephemerals) may well survive. Gives
/// up with `Timeout` at `deadline`, or `SessionLost` when the session ends.
pub async fn retry_suspended<T, F, Fut>(
    backend: &dyn Backend,
    deadline: Option<Instant>,
    mut step: F,
) -> StoreResult<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = StoreResult<T>>,
{
    loop {
        match step().await {
            Err(StoreError::Suspended) => await_connection(backend, deadline).await?,
            other => return other,
        }
    }
}

/// Our contender in `dir` (its name starts with our `prefix`'s unique part), if a create
/// whose answer was lost made one.
async fn own_contender(
    backend: &dyn Backend,
    dir: &str,
    prefix: &str,
    deadline: Option<Instant>,
) -> StoreResult<Option<String>> {
    let own = prefix.rsplit('/').next().unwrap_or_default();
    let names = retry_suspended(backend, deadline, || contenders(backend, dir)).await?;
    Ok(names
        .into_iter()
        .find(|name| name.starts_with(own))
        .map(|name| join(dir, &name)))
}

/// How long removing a contender waits for a suspended connection to come back.
const REMOVE_LIMIT: Duration = Duration::from_secs(60);

/// Removes a contender we give up on. When the connection is suspended, a background task
/// waits it out (for a while) and removes it then, rather than leaving it behind.
async fn remove_contender(backend: &Arc<dyn Backend>, node: &str) {
    match backend.delete(node, None).await {
        Ok(()) | Err(StoreError::NoNode(_)) => {}
        Err(StoreError::Suspended) => {
            let backend = backend.clone();
            let node = node.to_string();
            tokio::spawn(async move {
                let deadline = Some(Instant::now() + REMOVE_LIMIT);
                let removed =
                    retry_suspended(backend.as_ref(), deadline, || backend.delete(&node, None))
                        .await;
                if let Err(e) = removed
                    && !matches!(e, StoreError::NoNode(_))
                {
                    tracing::warn!(node, error = %e, "could not remove a lock contender");
                }
            });
        }
        Err(e) => tracing::warn!(node, error = %e, "could not remove a lock contender"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contender_names() {
        assert_eq!(
            contender_sequence("3f2a9c__lock__0000000004"),
            Some("0000000004")
        );
        assert_eq!(contender_sequence("abc__lock__-000000004"), None);
        assert_eq!(
            contender_sequence("abc__lock__-0000000004"),
            Some("-0000000004")
        );
        assert_eq!(contender_sequence("lock"), None);
        assert_eq!(contender_sequence("abc__lock__000000004"), None);
    }
}
