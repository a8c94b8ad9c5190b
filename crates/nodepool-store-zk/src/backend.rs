//! [`ZooKeeperBackend`]: the `Backend` operations on the current session's client.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use nodepool_store::{
    Backend, CreateMode, Op, OpResult, SessionState, Stat, StoreError, StoreResult, Watch,
    WatchEvent, parent_of, validate_path,
};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use zookeeper_client as zk;

use crate::epochs;
use crate::options::{ConnectError, Prepared, ZooKeeperOptions};

/// A connection to a ZooKeeper ensemble. Cheap to share behind an `Arc`; dropping the last
/// handle ends the session (ephemerals go) in the background, [`Backend::close`] does it
/// and waits.
#[derive(Debug)]
pub struct ZooKeeperBackend {
    pub(crate) shared: Arc<Shared>,
}

/// State shared with the session supervisor and the watch forwarders (which hold it weakly,
/// so dropping the backend ends them).
#[derive(Debug)]
pub(crate) struct Shared {
    pub prepared: Prepared,
    /// The live session's client. Replaced by the supervisor when a session expires; `None`
    /// after `close`. A std mutex: callers clone the client out and never await under it.
    pub current: Mutex<Current>,
    /// What `session_state()` reports.
    pub state_tx: watch::Sender<SessionState>,
    /// The epoch (one per session), bumped after a new session is installed, so calls that
    /// were cut off by an expiry can wait for the next session.
    pub epoch_tx: watch::Sender<u64>,
    /// The caller-facing persistent watches, re-registered on every new session. A tokio
    /// mutex held across registration round trips, so a `watch()` racing with a session
    /// change lands either before the supervisor re-registers everything or on the new
    /// session, never in between.
    pub watches: tokio::sync::Mutex<Watches>,
    /// Set by `close` and by dropping the backend; background tasks end when they see it.
    pub shutdown: watch::Sender<bool>,
}

#[derive(Debug)]
pub(crate) struct Current {
    pub client: Option<zk::Client>,
    pub epoch: u64,
    /// The session id of `client` (kept after `close` for callers that still ask).
    pub session_id: i64,
}

#[derive(Debug, Default)]
pub(crate) struct Watches {
    pub next_id: u64,
    pub entries: HashMap<u64, WatchEntry>,
}

#[derive(Debug)]
pub(crate) struct WatchEntry {
    pub prefix: String,
    pub events: mpsc::UnboundedSender<WatchEvent>,
}

impl Shared {
    pub fn current(&self) -> MutexGuard<'_, Current> {
        self.current.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn acl_options(mode: CreateMode) -> zk::CreateOptions<'static> {
    let mode = match mode {
        CreateMode::Persistent => zk::CreateMode::Persistent,
        CreateMode::Ephemeral => zk::CreateMode::Ephemeral,
        CreateMode::PersistentSequential => zk::CreateMode::PersistentSequential,
        CreateMode::EphemeralSequential => zk::CreateMode::EphemeralSequential,
    };
    // Nodepool sets no ACLs: everything is world-readable and writable.
    mode.with_acls(zk::Acls::anyone_all())
}

fn stat_from(stat: &zk::Stat) -> Stat {
    Stat {
        czxid: stat.czxid,
        mzxid: stat.mzxid,
        ctime_ms: stat.ctime,
        mtime_ms: stat.mtime,
        version: stat.version,
        cversion: stat.cversion,
        ephemeral_owner: stat.ephemeral_owner,
        num_children: stat.num_children,
        data_length: stat.data_length,
    }
}

/// Maps a client error to the store's, naming `path` (the znode the error is about).
pub(crate) fn store_error(error: zk::Error, path: &str) -> StoreError {
    let path = path.to_string();
    match error {
        zk::Error::NoNode => StoreError::NoNode(path),
        zk::Error::NodeExists => StoreError::NodeExists(path),
        zk::Error::BadVersion => StoreError::BadVersion(path),
        zk::Error::NotEmpty => StoreError::NotEmpty(path),
        zk::Error::NoChildrenForEphemerals => StoreError::NoChildrenForEphemerals(path),
        zk::Error::SessionExpired
        | zk::Error::SessionMoved
        | zk::Error::ClientClosed
        | zk::Error::AuthFailed => StoreError::SessionLost,
        zk::Error::ConnectionLoss => StoreError::Suspended,
        zk::Error::Timeout => StoreError::Timeout,
        other => StoreError::Backend(format!("ZooKeeper error at {path}: {other}")),
    }
}

impl ZooKeeperBackend {
    /// Opens a session, retrying for `options.connect_timeout`, and starts the session
    /// supervisor. Must run inside a tokio runtime (the client's tasks run on it).
    pub async fn connect(options: ZooKeeperOptions) -> Result<ZooKeeperBackend, ConnectError> {
        let prepared = Prepared::new(options)?;
        let deadline = Instant::now() + prepared.options.connect_timeout;
        let client = prepared.open_session(deadline).await?;
        let session_id = client.session_id().0;
        let states = client.state_watcher();
        tracing::info!(
            session = format_args!("{:#x}", session_id),
            servers = %prepared.options.hosts(),
            tls = prepared.tls.is_some(),
            "connected to ZooKeeper"
        );
        let (state_tx, _) = watch::channel(SessionState::Connected);
        let (epoch_tx, _) = watch::channel(0);
        let (shutdown, _) = watch::channel(false);
        let shared = Arc::new(Shared {
            prepared,
            current: Mutex::new(Current {
                client: Some(client),
                epoch: 0,
                session_id,
            }),
            state_tx,
            epoch_tx,
            watches: tokio::sync::Mutex::new(Watches::default()),
            shutdown,
        });
        tokio::spawn(epochs::supervise(Arc::downgrade(&shared), states));
        Ok(ZooKeeperBackend { shared })
    }

    /// The current session's client, or `SessionLost` after `close`.
    fn client(&self) -> StoreResult<zk::Client> {
        self.shared
            .current()
            .client
            .clone()
            .ok_or(StoreError::SessionLost)
    }

    /// Ends the current session from the server's side, as a stall past the session
    /// timeout would: a second connection, made with `takeover` (servers and TLS; the
    /// chroot does not matter), takes the session over with its id and password and closes
    /// it. Returns once the server has closed it, so its ephemerals are gone; this backend
    /// then sees `Lost` when it next reaches the server, and opens a new session.
    ///
    /// For tests of session loss. This backend must be cut off from the servers meanwhile
    /// (e.g. through a proxy): otherwise it reconnects at once and wins its session back.
    pub async fn force_expire_session(&self, takeover: ZooKeeperOptions) -> StoreResult<()> {
        let session = self.client()?.session().clone();
        let takeover = Prepared::new(takeover).map_err(|e| StoreError::Backend(e.to_string()))?;
        let thief = takeover
            .connect_with(takeover.connector().with_session(session))
            .await
            .map_err(|e| store_error(e, "/"))?;
        let mut states = thief.state_watcher();
        // Dropping the only handle makes the client send CloseSession.
        drop(thief);
        let limit = takeover.options.session_timeout;
        tokio::time::timeout(limit, async {
            while !states.state().is_terminated() {
                states.changed().await;
            }
        })
        .await
        .map_err(|_| StoreError::Timeout)
    }

    /// Waits until a session newer than `epoch` is installed. `Ok(false)` when `deadline`
    /// passes first, `SessionLost` when the backend is closed.
    async fn wait_for_new_epoch(&self, epoch: u64, deadline: Option<Instant>) -> StoreResult<bool> {
        let mut epochs = self.shared.epoch_tx.subscribe();
        let mut shutdown = self.shared.shutdown.subscribe();
        let newer = async {
            tokio::select! {
                newer = epochs::newer_epoch(&mut epochs, epoch) => newer,
                _ = epochs::shut_down(&mut shutdown) => false,
            }
        };
        let newer = match deadline {
            Some(deadline) => match tokio::time::timeout_at(deadline, newer).await {
                Ok(newer) => newer,
                Err(_) => return Ok(false),
            },
            None => newer.await,
        };
        if newer {
            Ok(true)
        } else {
            Err(StoreError::SessionLost)
        }
    }
}

impl Drop for ZooKeeperBackend {
    fn drop(&mut self) {
        self.shared.shutdown.send_replace(true);
    }
}

#[async_trait]
impl Backend for ZooKeeperBackend {
    async fn get(&self, path: &str) -> StoreResult<Option<(Vec<u8>, Stat)>> {
        validate_path(path)?;
        match self.client()?.get_data(path).await {
            Ok((data, stat)) => Ok(Some((data, stat_from(&stat)))),
            Err(zk::Error::NoNode) => Ok(None),
            Err(e) => Err(store_error(e, path)),
        }
    }

    async fn exists(&self, path: &str) -> StoreResult<Option<Stat>> {
        validate_path(path)?;
        match self.client()?.check_stat(path).await {
            Ok(stat) => Ok(stat.as_ref().map(stat_from)),
            Err(e) => Err(store_error(e, path)),
        }
    }

    async fn create(
        &self,
        path: &str,
        data: &[u8],
        mode: CreateMode,
        make_parents: bool,
    ) -> StoreResult<String> {
        // A sequential path may end in '/' (`/nodepool/nodes/`): the suffix is the name.
        let checked = if mode.is_sequential() && path.len() > 1 {
            path.strip_suffix('/').unwrap_or(path)
        } else {
            path
        };
        validate_path(checked)?;
        if path == "/" {
            return Err(StoreError::NodeExists("/".into()));
        }
        let client = self.client()?;
        let options = acl_options(mode);
        // For `/nodepool/nodes/` that is `/nodepool/nodes`, where the new znode goes.
        let parent = parent_of(path);
        let mut created = client.create(path, data, &options).await;
        if make_parents && matches!(created, Err(zk::Error::NoNode)) && parent != "/" {
            // kazoo makepath: create the missing ancestors empty and persistent, then retry.
            let directory = acl_options(CreateMode::Persistent);
            client
                .mkdir(parent, &directory)
                .await
                .map_err(|e| store_error(e, parent))?;
            created = client.create(path, data, &options).await;
        }
        match created {
            Ok((_, sequence)) if mode.is_sequential() => Ok(format!("{path}{sequence}")),
            Ok(_) => Ok(path.to_string()),
            Err(e @ zk::Error::NodeExists) => Err(store_error(e, path)),
            Err(e) => Err(store_error(e, parent)),
        }
    }

    async fn set(&self, path: &str, data: &[u8], version: Option<i32>) -> StoreResult<Stat> {
        validate_path(path)?;
        match self.client()?.set_data(path, data, version).await {
            Ok(stat) => Ok(stat_from(&stat)),
            Err(e) => Err(store_error(e, path)),
        }
    }

    async fn delete(&self, path: &str, version: Option<i32>) -> StoreResult<()> {
        validate_path(path)?;
        if path == "/" {
            return Err(StoreError::BadPath("/".into()));
        }
        self.client()?
            .delete(path, version)
            .await
            .map_err(|e| store_error(e, path))
    }

    async fn multi(&self, ops: Vec<Op>) -> StoreResult<Vec<OpResult>> {
        for op in &ops {
            op.validate()?;
        }
        if ops.is_empty() {
            return Ok(Vec::new());
        }
        let client = self.client()?;
        let mut writer = client.new_multi_writer();
        for op in &ops {
            let added = match op {
                Op::Create { path, data, mode } => {
                    writer.add_create(path, data, &acl_options(*mode))
                }
                Op::Set {
                    path,
                    data,
                    version,
                } => writer.add_set_data(path, data, *version),
                Op::Delete { path, version } => writer.add_delete(path, *version),
                Op::Check { path, version } => {
                    writer.add_check_version(path, version.unwrap_or(-1))
                }
            };
            added.map_err(|e| store_error(e, op.path()))?;
        }
        let results = match writer.commit().await {
            Ok(results) => results,
            Err(zk::MultiWriteError::OperationFailed { index, source }) => {
                let op = ops.get(index);
                return Err(match (op, source) {
                    // As `create` reports it: a missing parent names the parent.
                    (Some(Op::Create { path, .. }), e @ zk::Error::NoNode) => {
                        store_error(e, parent_of(path))
                    }
                    (Some(op), e) => store_error(e, op.path()),
                    (None, e) => store_error(e, "/"),
                });
            }
            Err(zk::MultiWriteError::RequestFailed { source }) => {
                return Err(store_error(
                    source,
                    ops.first().map(Op::path).unwrap_or("/"),
                ));
            }
        };
        if results.len() != ops.len() {
            return Err(StoreError::Backend(format!(
                "ZooKeeper answered {} results to a multi of {} operations",
                results.len(),
                ops.len()
            )));
        }
        results
            .into_iter()
            .map(|result| match result {
                zk::MultiWriteResult::Create { path, .. } => Ok(OpResult::Created(path)),
                zk::MultiWriteResult::SetData { stat } => Ok(OpResult::Set(stat_from(&stat))),
                zk::MultiWriteResult::Delete => Ok(OpResult::Deleted),
                zk::MultiWriteResult::Check => Ok(OpResult::Checked),
                other => Err(StoreError::Backend(format!(
                    "unexpected multi result {other:?}"
                ))),
            })
            .collect()
    }

    async fn children(&self, path: &str) -> StoreResult<Vec<String>> {
        validate_path(path)?;
        self.client()?
            .list_children(path)
            .await
            .map_err(|e| store_error(e, path))
    }

    async fn watch(&self, prefix: &str) -> StoreResult<Watch> {
        validate_path(prefix)?;
        let (events, receiver) = mpsc::unbounded_channel();
        let mut watches = self.shared.watches.lock().await;
        if *self.shared.shutdown.borrow() {
            return Err(StoreError::SessionLost);
        }
        let client = self.client()?;
        let id = watches.next_id;
        watches.next_id += 1;
        match client
            .watch(prefix, zk::AddWatchMode::PersistentRecursive)
            .await
        {
            Ok(watcher) => {
                epochs::spawn_forwarder(&self.shared, id, watcher, events.clone(), false);
            }
            // The session just expired: the supervisor registers this watch on the next
            // session and sends Resync first, as for every other watch.
            Err(zk::Error::SessionExpired) => {}
            Err(e) => return Err(store_error(e, prefix)),
        }
        watches.entries.insert(
            id,
            WatchEntry {
                prefix: prefix.to_string(),
                events,
            },
        );
        Ok(Watch { events: receiver })
    }

    async fn wait_deleted(&self, path: &str, timeout: Option<Duration>) -> StoreResult<bool> {
        validate_path(path)?;
        let deadline = timeout.map(|limit| Instant::now() + limit);
        loop {
            let (client, epoch) = {
                let current = self.shared.current();
                let client = current.client.clone().ok_or(StoreError::SessionLost)?;
                (client, current.epoch)
            };
            let watched = client.check_and_watch_stat(path).await;
            // Holding no client while waiting lets `close` end the session meanwhile.
            drop(client);
            let watcher = match watched {
                Ok((None, _)) => return Ok(true),
                Ok((Some(_), watcher)) => watcher,
                Err(zk::Error::SessionExpired) => {
                    if !self.wait_for_new_epoch(epoch, deadline).await? {
                        return Ok(false);
                    }
                    continue;
                }
                Err(e) => return Err(store_error(e, path)),
            };
            let event = match deadline {
                Some(deadline) => {
                    match tokio::time::timeout_at(deadline, watcher.changed()).await {
                        Ok(event) => event,
                        Err(_) => return Ok(false),
                    }
                }
                None => watcher.changed().await,
            };
            // Other events (data changed) mean the znode is still there: watch again.
            let session_ended = match event.event_type {
                zk::EventType::NodeDeleted => return Ok(true),
                zk::EventType::Session => true,
                _ => false,
            };
            // The watch fires with the terminal state when the session ends: look again
            // on the next session.
            if session_ended && !self.wait_for_new_epoch(epoch, deadline).await? {
                return Ok(false);
            }
        }
    }

    fn session_state(&self) -> watch::Receiver<SessionState> {
        self.shared.state_tx.subscribe()
    }

    fn session_id(&self) -> i64 {
        self.shared.current().session_id
    }

    async fn close(&self) -> StoreResult<()> {
        // First stop the supervisor, so it does not open a new session behind our back.
        self.shared.shutdown.send_replace(true);
        // Watchers see their channel end (the forwarders end with the shutdown).
        self.shared.watches.lock().await.entries.clear();
        let client = self.shared.current().client.take();
        let Some(client) = client else {
            return Ok(());
        };
        let mut states = client.state_watcher();
        let already_over = client.state().is_terminated();
        // The client closes the session when its last handle is dropped; calls still in
        // flight hold handles for a moment.
        drop(client);
        let ended = if already_over {
            Ok(())
        } else {
            let limit = self.shared.prepared.options.session_timeout;
            tokio::time::timeout(limit, async {
                while !states.state().is_terminated() {
                    states.changed().await;
                }
            })
            .await
            .map_err(|_| StoreError::Timeout)
        };
        self.shared.state_tx.send_replace(SessionState::Lost);
        ended
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_errors_map_to_what_callers_branch_on() {
        let cases = [
            (zk::Error::NoNode, StoreError::NoNode("/a".into())),
            (zk::Error::NodeExists, StoreError::NodeExists("/a".into())),
            (zk::Error::BadVersion, StoreError::BadVersion("/a".into())),
            (zk::Error::NotEmpty, StoreError::NotEmpty("/a".into())),
            (
                zk::Error::NoChildrenForEphemerals,
                StoreError::NoChildrenForEphemerals("/a".into()),
            ),
            (zk::Error::SessionExpired, StoreError::SessionLost),
            (zk::Error::ClientClosed, StoreError::SessionLost),
            (zk::Error::ConnectionLoss, StoreError::Suspended),
            (zk::Error::Timeout, StoreError::Timeout),
        ];
        for (error, expected) in cases {
            assert_eq!(store_error(error, "/a"), expected);
        }
        assert!(
            matches!(store_error(zk::Error::NoAuth, "/a"), StoreError::Backend(m) if m.contains("/a")),
            "other errors are backend errors naming the path"
        );
    }
}
