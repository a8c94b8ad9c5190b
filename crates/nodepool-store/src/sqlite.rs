//! The embedded store: ZooKeeper's data model in one SQLite file.
//!
//! Used when the configuration has no `zookeeper-servers`. Several processes on one machine
//! (a daemon and CLI commands) share the file: WAL mode lets readers run beside one writer,
//! and every write is one `BEGIN IMMEDIATE` transaction. ZooKeeper's semantics are kept:
//!
//! * znodes with data, versions, `cversion`-based 10-digit sequence suffixes, ephemerals;
//! * sessions with heartbeats: a session whose heartbeat is older than its timeout is reaped
//!   by any live process, deleting its ephemerals (and so its locks);
//! * a change log with increasing ids (zxids) that watchers poll, so a watch sees changes
//!   made by other processes; changes made here wake the poller at once.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use tokio::sync::{Notify, mpsc, watch};

use crate::backend::{
    Backend, CreateMode, Op, OpResult, SessionState, Stat, StoreError, StoreResult, Watch,
    WatchEvent, covers, parent_of, validate_path,
};

const KIND_CREATED: i64 = 1;
const KIND_CHANGED: i64 = 2;
const KIND_DELETED: i64 = 3;

/// How often watchers look for changes made by other processes.
const POLL_INTERVAL: Duration = Duration::from_millis(20);
/// Change-log entries older than this are pruned; a watcher further behind re-lists.
const CHANGE_RETENTION_MS: i64 = 10 * 60 * 1000;

/// Options for opening the embedded store.
#[derive(Debug, Clone)]
pub struct SqliteOptions {
    pub path: PathBuf,
    /// Session timeout: a process silent for this long loses its ephemerals and locks.
    pub session_timeout: Duration,
}

impl SqliteOptions {
    pub fn new(path: impl Into<PathBuf>) -> SqliteOptions {
        SqliteOptions {
            path: path.into(),
            session_timeout: Duration::from_secs(10),
        }
    }
}

/// The embedded SQLite backend. Cheap to share: clone the `Arc`.
#[derive(Debug)]
pub struct SqliteBackend {
    shared: Arc<Shared>,
}

/// State shared with the background heartbeat and watch tasks.
#[derive(Debug)]
struct Shared {
    /// One connection; SQLite serialises writers anyway and every call is short. A std
    /// mutex because nothing awaits while holding it (calls run on blocking threads).
    conn: Mutex<Connection>,
    /// The current session; replaced when the session is found reaped (a new epoch).
    session: Mutex<i64>,
    session_timeout: Duration,
    state_tx: watch::Sender<SessionState>,
    /// Registered watches by id; the poller delivers matching events to them.
    watchers: Mutex<Watchers>,
    /// Woken after local writes so watchers see them without waiting for the poll.
    changed: Notify,
    /// Set by `close` so background tasks end.
    closed: watch::Sender<bool>,
}

#[derive(Debug, Default)]
struct Watchers {
    next_id: u64,
    /// Highest change id delivered.
    position: i64,
    /// Prefix, channel, and the last change id before the watch began.
    entries: HashMap<u64, (String, mpsc::UnboundedSender<WatchEvent>, i64)>,
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn db_error(e: rusqlite::Error) -> StoreError {
    StoreError::Backend(e.to_string())
}

fn stat_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Stat> {
    Ok(Stat {
        czxid: row.get("czxid")?,
        mzxid: row.get("mzxid")?,
        ctime_ms: row.get("ctime")?,
        mtime_ms: row.get("mtime")?,
        version: row.get("version")?,
        cversion: row.get("cversion")?,
        ephemeral_owner: row.get("ephemeral_owner")?,
        num_children: row.get("num_children")?,
        data_length: row.get("data_length")?,
    })
}

const STAT_COLUMNS: &str = "czxid, mzxid, ctime, mtime, version, cversion, ephemeral_owner, \
     (SELECT COUNT(*) FROM znodes c WHERE c.parent = znodes.path) AS num_children, \
     length(data) AS data_length";

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS znodes (
    path TEXT PRIMARY KEY,
    parent TEXT NOT NULL,
    data BLOB NOT NULL,
    czxid INTEGER NOT NULL,
    mzxid INTEGER NOT NULL,
    ctime INTEGER NOT NULL,
    mtime INTEGER NOT NULL,
    version INTEGER NOT NULL DEFAULT 0,
    cversion INTEGER NOT NULL DEFAULT 0,
    -- Children ever created: ZooKeeper's sequence counter (deletes do not advance it).
    creates INTEGER NOT NULL DEFAULT 0,
    ephemeral_owner INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS znodes_parent ON znodes(parent);
CREATE INDEX IF NOT EXISTS znodes_owner ON znodes(ephemeral_owner) WHERE ephemeral_owner != 0;
CREATE TABLE IF NOT EXISTS sessions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    heartbeat INTEGER NOT NULL,
    timeout_ms INTEGER NOT NULL,
    pid INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS changes (
    zxid INTEGER PRIMARY KEY AUTOINCREMENT,
    path TEXT NOT NULL,
    kind INTEGER NOT NULL,
    at INTEGER NOT NULL
);
INSERT OR IGNORE INTO znodes (path, parent, data, czxid, mzxid, ctime, mtime) VALUES ('/', '', x'', 0, 0, 0, 0);
";

/// Records a change and returns its zxid.
fn log_change(
    tx: &rusqlite::Transaction<'_>,
    path: &str,
    kind: i64,
    at: i64,
) -> rusqlite::Result<i64> {
    tx.exec(
        "INSERT INTO changes (path, kind, at) VALUES (?1, ?2, ?3)",
        params![path, kind, at],
    )?;
    Ok(tx.last_insert_rowid())
}

fn node_exists(tx: &rusqlite::Transaction<'_>, path: &str) -> rusqlite::Result<Option<(i32, i64)>> {
    tx.row(
        "SELECT creates, ephemeral_owner FROM znodes WHERE path = ?1",
        [path],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
    .optional()
}

/// Inserts one znode under an existing parent, bumping the parent's cversion.
fn insert_node(
    tx: &rusqlite::Transaction<'_>,
    path: &str,
    data: &[u8],
    owner: i64,
    sequential: bool,
    now: i64,
) -> StoreResult<String> {
    let parent = parent_of(path);
    let (parent_creates, parent_owner) = node_exists(tx, parent)
        .map_err(db_error)?
        .ok_or_else(|| StoreError::NoNode(parent.to_string()))?;
    if parent_owner != 0 {
        return Err(StoreError::NoChildrenForEphemerals(parent.to_string()));
    }
    let actual = if sequential {
        format!("{path}{parent_creates:010}")
    } else {
        path.to_string()
    };
    if node_exists(tx, &actual).map_err(db_error)?.is_some() {
        return Err(StoreError::NodeExists(actual));
    }
    let zxid = log_change(tx, &actual, KIND_CREATED, now).map_err(db_error)?;
    tx.exec(
        "INSERT INTO znodes (path, parent, data, czxid, mzxid, ctime, mtime, ephemeral_owner) \
         VALUES (?1, ?2, ?3, ?4, ?4, ?5, ?5, ?6)",
        params![actual, parent, data, zxid, now, owner],
    )
    .map_err(db_error)?;
    tx.exec(
        "UPDATE znodes SET cversion = cversion + 1, creates = creates + 1 WHERE path = ?1",
        [parent],
    )
    .map_err(db_error)?;
    Ok(actual)
}

/// Deletes one znode (which must have no children), bumping the parent's cversion.
fn remove_node(tx: &rusqlite::Transaction<'_>, path: &str, now: i64) -> rusqlite::Result<()> {
    tx.exec("DELETE FROM znodes WHERE path = ?1", [path])?;
    tx.exec(
        "UPDATE znodes SET cversion = cversion + 1 WHERE path = ?1",
        [parent_of(path)],
    )?;
    log_change(tx, path, KIND_DELETED, now)?;
    Ok(())
}

/// Deletes every ephemeral of a dead session, deepest first, and the session itself.
fn reap_session(tx: &rusqlite::Transaction<'_>, session: i64, now: i64) -> rusqlite::Result<usize> {
    let mut paths: Vec<String> = {
        let mut stmt = tx.prepare_cached("SELECT path FROM znodes WHERE ephemeral_owner = ?1")?;
        stmt.query_map([session], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?
    };
    paths.sort_by_key(|p| std::cmp::Reverse(p.len()));
    for path in &paths {
        remove_node(tx, path, now)?;
    }
    tx.exec("DELETE FROM sessions WHERE id = ?1", [session])?;
    Ok(paths.len())
}

/// `create` inside a write transaction.
fn create_node(
    tx: &rusqlite::Transaction<'_>,
    path: &str,
    data: &[u8],
    mode: CreateMode,
    make_parents: bool,
    session: i64,
    now: i64,
) -> StoreResult<String> {
    if make_parents {
        let mut missing = Vec::new();
        let mut current = parent_of(path);
        while current != "/" && node_exists(tx, current).map_err(db_error)?.is_none() {
            missing.push(current.to_string());
            current = parent_of(current);
        }
        for ancestor in missing.iter().rev() {
            insert_node(tx, ancestor, b"", 0, false, now)?;
        }
    }
    let owner = if mode.is_ephemeral() { session } else { 0 };
    insert_node(tx, path, data, owner, mode.is_sequential(), now)
}

/// The data version of `path`, checked against `version` if given.
fn current_version(
    tx: &rusqlite::Transaction<'_>,
    path: &str,
    version: Option<i32>,
) -> StoreResult<i32> {
    let current: Option<i32> = tx
        .row("SELECT version FROM znodes WHERE path = ?1", [path], |r| {
            r.get(0)
        })
        .optional()
        .map_err(db_error)?;
    let current = current.ok_or_else(|| StoreError::NoNode(path.to_string()))?;
    if version.is_some_and(|v| v != current) {
        return Err(StoreError::BadVersion(path.to_string()));
    }
    Ok(current)
}

/// `set` inside a write transaction.
fn set_node(
    tx: &rusqlite::Transaction<'_>,
    path: &str,
    data: &[u8],
    version: Option<i32>,
    now: i64,
) -> StoreResult<Stat> {
    current_version(tx, path, version)?;
    let zxid = log_change(tx, path, KIND_CHANGED, now).map_err(db_error)?;
    tx.exec(
        "UPDATE znodes SET data = ?1, version = version + 1, mzxid = ?2, mtime = ?3 WHERE path = ?4",
        params![data, zxid, now, path],
    )
    .map_err(db_error)?;
    let sql = format!("SELECT {STAT_COLUMNS} FROM znodes WHERE path = ?1");
    tx.row(&sql, [path], stat_from_row).map_err(db_error)
}

/// `delete` inside a write transaction.
fn delete_node(
    tx: &rusqlite::Transaction<'_>,
    path: &str,
    version: Option<i32>,
    now: i64,
) -> StoreResult<()> {
    current_version(tx, path, version)?;
    let has_children: bool = tx
        .row(
            "SELECT EXISTS(SELECT 1 FROM znodes WHERE parent = ?1)",
            [path],
            |r| r.get(0),
        )
        .map_err(db_error)?;
    if has_children {
        return Err(StoreError::NotEmpty(path.to_string()));
    }
    remove_node(tx, path, now).map_err(db_error)
}

impl SqliteBackend {
    /// Opens (creating if needed) the database and starts a session.
    pub async fn open(options: SqliteOptions) -> StoreResult<SqliteBackend> {
        let path = options.path.clone();
        let timeout = options.session_timeout;
        let (conn, session) = tokio::task::spawn_blocking(move || open_connection(&path, timeout))
            .await
            .map_err(|e| StoreError::Backend(e.to_string()))??;
        let (state_tx, _) = watch::channel(SessionState::Connected);
        let (closed, _) = watch::channel(false);
        let position: i64 = conn
            .row("SELECT COALESCE(MAX(zxid), 0) FROM changes", [], |r| {
                r.get(0)
            })
            .map_err(db_error)?;
        let shared = Arc::new(Shared {
            conn: Mutex::new(conn),
            session: Mutex::new(session),
            session_timeout: timeout,
            state_tx,
            watchers: Mutex::new(Watchers {
                position,
                ..Watchers::default()
            }),
            changed: Notify::new(),
            closed,
        });
        tokio::spawn(heartbeat_task(Arc::downgrade(&shared)));
        tokio::spawn(poll_task(Arc::downgrade(&shared)));
        tracing::debug!(session, path = %options.path.display(), "opened the embedded store");
        Ok(SqliteBackend { shared })
    }

    /// Ends another session as a live process does when that session's heartbeat is too
    /// old: deletes its ephemerals (so its locks) and the session. Its owner finds out at
    /// its next heartbeat and starts a new session. Tests use this to simulate a stall.
    pub async fn expire_session(&self, session: i64) -> StoreResult<()> {
        self.write(move |tx, _, now| reap_session(tx, session, now).map(|_| ()).map_err(db_error))
            .await
    }

    /// Runs `f` with the connection on a blocking thread.
    async fn with_conn<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection, i64) -> StoreResult<T> + Send + 'static,
    ) -> StoreResult<T> {
        let shared = self.shared.clone();
        tokio::task::spawn_blocking(move || {
            let session = *shared.session.lock().unwrap_or_else(|e| e.into_inner());
            let mut conn = shared.conn.lock().unwrap_or_else(|e| e.into_inner());
            f(&mut conn, session)
        })
        .await
        .map_err(|e| StoreError::Backend(e.to_string()))?
    }

    /// Runs a write transaction and wakes the watchers.
    async fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&rusqlite::Transaction<'_>, i64, i64) -> StoreResult<T> + Send + 'static,
    ) -> StoreResult<T> {
        let result = self
            .with_conn(move |conn, session| {
                let tx = conn
                    .transaction_with_behavior(TransactionBehavior::Immediate)
                    .map_err(db_error)?;
                let value = f(&tx, session, now_ms())?;
                tx.commit().map_err(db_error)?;
                Ok(value)
            })
            .await;
        self.shared.changed.notify_one();
        result
    }
}

fn open_connection(path: &Path, timeout: Duration) -> StoreResult<(Connection, i64)> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| StoreError::Backend(format!("cannot create {}: {e}", dir.display())))?;
    }
    let conn = Connection::open(path)
        .map_err(|e| StoreError::Backend(format!("cannot open {}: {e}", path.display())))?;
    conn.busy_timeout(Duration::from_secs(30))
        .map_err(db_error)?;
    // Every statement the backend uses stays prepared (rusqlite's default keeps 16).
    conn.set_prepared_statement_cache_capacity(64);
    conn.pragma_update(None, "journal_mode", "WAL")
        .map_err(db_error)?;
    conn.pragma_update(None, "synchronous", "NORMAL")
        .map_err(db_error)?;
    conn.execute_batch(SCHEMA).map_err(db_error)?;
    conn.exec(
        "INSERT INTO sessions (heartbeat, timeout_ms, pid) VALUES (?1, ?2, ?3)",
        params![now_ms(), timeout.as_millis() as i64, std::process::id()],
    )
    .map_err(db_error)?;
    let session = conn.last_insert_rowid();
    Ok((conn, session))
}

/// Keeps our session alive, reaps dead sessions, prunes the change log, and notices when
/// our own session was reaped (we stalled longer than the timeout): that is a lost session.
async fn heartbeat_task(shared: std::sync::Weak<Shared>) {
    let Some(first) = shared.upgrade() else {
        return;
    };
    let interval = first.session_timeout / 3;
    let mut closed = first.closed.subscribe();
    drop(first);
    loop {
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = closed.changed() => return,
        }
        let Some(shared) = shared.upgrade() else {
            return;
        };
        let worker = shared.clone();
        let outcome = tokio::task::spawn_blocking(move || heartbeat_once(&worker)).await;
        match outcome {
            Ok(Ok(true)) => {}
            Ok(Ok(false)) => {
                tracing::warn!("embedded store session expired; starting a new session");
                shared.state_tx.send_replace(SessionState::Lost);
                let worker = shared.clone();
                let renewed = tokio::task::spawn_blocking(move || new_session(&worker)).await;
                if matches!(renewed, Ok(Ok(()))) {
                    shared.state_tx.send_replace(SessionState::Connected);
                    shared.changed.notify_one();
                }
            }
            Ok(Err(e)) => tracing::warn!(error = %e, "embedded store heartbeat failed"),
            Err(e) => tracing::warn!(error = %e, "embedded store heartbeat task failed"),
        }
    }
}

/// Returns whether our session is still alive.
fn heartbeat_once(shared: &Shared) -> StoreResult<bool> {
    let session = *shared.session.lock().unwrap_or_else(|e| e.into_inner());
    let mut conn = shared.conn.lock().unwrap_or_else(|e| e.into_inner());
    let now = now_ms();
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(db_error)?;
    let alive = tx
        .exec(
            "UPDATE sessions SET heartbeat = ?1 WHERE id = ?2",
            params![now, session],
        )
        .map_err(db_error)?
        == 1;
    let dead: Vec<i64> = {
        let mut stmt = tx
            .prepare_cached("SELECT id FROM sessions WHERE heartbeat + timeout_ms < ?1")
            .map_err(db_error)?;
        stmt.query_map([now], |r| r.get(0))
            .map_err(db_error)?
            .collect::<rusqlite::Result<_>>()
            .map_err(db_error)?
    };
    for id in dead {
        let removed = reap_session(&tx, id, now).map_err(db_error)?;
        tracing::info!(
            session = id,
            ephemerals = removed,
            "reaped an expired embedded-store session"
        );
    }
    tx.exec(
        "DELETE FROM changes WHERE at < ?1 AND zxid < (SELECT MAX(zxid) FROM changes)",
        [now - CHANGE_RETENTION_MS],
    )
    .map_err(db_error)?;
    tx.commit().map_err(db_error)?;
    if !alive {
        // Our ephemerals may still be there if nobody reaped them: remove them ourselves.
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(db_error)?;
        reap_session(&tx, session, now).map_err(db_error)?;
        tx.commit().map_err(db_error)?;
    }
    Ok(alive)
}

fn new_session(shared: &Shared) -> StoreResult<()> {
    let conn = shared.conn.lock().unwrap_or_else(|e| e.into_inner());
    conn.exec(
        "INSERT INTO sessions (heartbeat, timeout_ms, pid) VALUES (?1, ?2, ?3)",
        params![
            now_ms(),
            shared.session_timeout.as_millis() as i64,
            std::process::id()
        ],
    )
    .map_err(db_error)?;
    *shared.session.lock().unwrap_or_else(|e| e.into_inner()) = conn.last_insert_rowid();
    Ok(())
}

/// Delivers change-log entries to watchers, polling for other processes' changes.
async fn poll_task(shared: std::sync::Weak<Shared>) {
    let Some(first) = shared.upgrade() else {
        return;
    };
    let mut closed = first.closed.subscribe();
    drop(first);
    loop {
        let Some(strong) = shared.upgrade() else {
            return;
        };
        {
            let notified = strong.changed.notified();
            tokio::select! {
                _ = notified => {}
                _ = tokio::time::sleep(POLL_INTERVAL) => {}
                _ = closed.changed() => return,
            }
        }
        let worker = strong.clone();
        if let Err(e) = tokio::task::spawn_blocking(move || deliver_changes(&worker)).await {
            tracing::warn!(error = %e, "embedded store watch task failed");
        }
    }
}

/// One change-log entry: zxid, path, kind.
type ChangeRow = (i64, String, i64);

fn deliver_changes(shared: &Shared) {
    // Only the poll task calls this, so the position cannot move underneath it.
    let position = shared
        .watchers
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .position;
    let rows: rusqlite::Result<(i64, Vec<ChangeRow>)> = (|| {
        let conn = shared.conn.lock().unwrap_or_else(|e| e.into_inner());
        let oldest: i64 = conn.row("SELECT COALESCE(MIN(zxid), 0) FROM changes", [], |r| {
            r.get(0)
        })?;
        let mut stmt = conn.prepare_cached(
            "SELECT zxid, path, kind FROM changes WHERE zxid > ?1 ORDER BY zxid LIMIT 10000",
        )?;
        let rows = stmt
            .query_map([position], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
            .collect::<rusqlite::Result<_>>()?;
        Ok((oldest, rows))
    })();
    let (oldest, rows) = match rows {
        Ok(rows) => rows,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the embedded store's change log");
            return;
        }
    };
    let mut watchers = shared.watchers.lock().unwrap_or_else(|e| e.into_inner());
    watchers.entries.retain(|_, (_, tx, _)| !tx.is_closed());
    // Entries were pruned before we saw them: watchers must re-list.
    if position > 0 && oldest > position + 1 {
        for (_, tx, _) in watchers.entries.values() {
            let _ = tx.send(WatchEvent::Resync);
        }
    }
    for (zxid, path, kind) in rows {
        watchers.position = zxid;
        let event = match kind {
            KIND_CREATED => WatchEvent::Created(path),
            KIND_CHANGED => WatchEvent::Changed(path),
            _ => WatchEvent::Deleted(path),
        };
        let Some(path) = event.path() else { continue };
        for (prefix, tx, since) in watchers.entries.values() {
            if zxid > *since && covers(prefix, path) {
                let _ = tx.send(event.clone());
            }
        }
    }
}

#[async_trait]
impl Backend for SqliteBackend {
    async fn get(&self, path: &str) -> StoreResult<Option<(Vec<u8>, Stat)>> {
        validate_path(path)?;
        let path = path.to_string();
        self.with_conn(move |conn, _| {
            let sql = format!("SELECT data, {STAT_COLUMNS} FROM znodes WHERE path = ?1");
            let mut stmt = conn.prepare_cached(&sql).map_err(db_error)?;
            stmt.query_row([&path], |r| {
                Ok((r.get::<_, Vec<u8>>("data")?, stat_from_row(r)?))
            })
            .optional()
            .map_err(db_error)
        })
        .await
    }

    async fn exists(&self, path: &str) -> StoreResult<Option<Stat>> {
        validate_path(path)?;
        let path = path.to_string();
        self.with_conn(move |conn, _| {
            let sql = format!("SELECT {STAT_COLUMNS} FROM znodes WHERE path = ?1");
            let mut stmt = conn.prepare_cached(&sql).map_err(db_error)?;
            stmt.query_row([&path], stat_from_row)
                .optional()
                .map_err(db_error)
        })
        .await
    }

    async fn create(
        &self,
        path: &str,
        data: &[u8],
        mode: CreateMode,
        make_parents: bool,
    ) -> StoreResult<String> {
        // A sequential path may end in '/' (`/nodepool/nodes/`): the suffix is the name.
        let check = if mode.is_sequential() {
            path.trim_end_matches('/')
        } else {
            path
        };
        if mode.is_sequential() && path.ends_with('/') {
            validate_path(check)?;
        } else {
            validate_path(path)?;
        }
        if path == "/" {
            return Err(StoreError::NodeExists("/".into()));
        }
        let path = path.to_string();
        let data = data.to_vec();
        self.write(move |tx, session, now| {
            create_node(tx, &path, &data, mode, make_parents, session, now)
        })
        .await
    }

    async fn set(&self, path: &str, data: &[u8], version: Option<i32>) -> StoreResult<Stat> {
        validate_path(path)?;
        let path = path.to_string();
        let data = data.to_vec();
        self.write(move |tx, _, now| set_node(tx, &path, &data, version, now))
            .await
    }

    async fn delete(&self, path: &str, version: Option<i32>) -> StoreResult<()> {
        validate_path(path)?;
        if path == "/" {
            return Err(StoreError::BadPath("/".into()));
        }
        let path = path.to_string();
        self.write(move |tx, _, now| delete_node(tx, &path, version, now))
            .await
    }

    async fn multi(&self, ops: Vec<Op>) -> StoreResult<Vec<OpResult>> {
        for op in &ops {
            op.validate()?;
        }
        if ops.is_empty() {
            return Ok(Vec::new());
        }
        // One SQLite transaction: the first failing operation's error rolls back the rest.
        self.write(move |tx, session, now| {
            ops.iter()
                .map(|op| match op {
                    Op::Create { path, data, mode } => {
                        create_node(tx, path, data, *mode, false, session, now)
                            .map(OpResult::Created)
                    }
                    Op::Set {
                        path,
                        data,
                        version,
                    } => set_node(tx, path, data, *version, now).map(OpResult::Set),
                    Op::Delete { path, version } => {
                        delete_node(tx, path, *version, now).map(|()| OpResult::Deleted)
                    }
                    Op::Check { path, version } => {
                        current_version(tx, path, *version).map(|_| OpResult::Checked)
                    }
                })
                .collect()
        })
        .await
    }

    async fn children(&self, path: &str) -> StoreResult<Vec<String>> {
        validate_path(path)?;
        let path = path.to_string();
        self.with_conn(move |conn, _| {
            let exists: bool = conn
                .row(
                    "SELECT EXISTS(SELECT 1 FROM znodes WHERE path = ?1)",
                    [&path],
                    |r| r.get(0),
                )
                .map_err(db_error)?;
            if !exists {
                return Err(StoreError::NoNode(path.clone()));
            }
            let mut stmt = conn
                .prepare_cached("SELECT path FROM znodes WHERE parent = ?1")
                .map_err(db_error)?;
            let children = stmt
                .query_map([&path], |r| r.get::<_, String>(0))
                .map_err(db_error)?
                .collect::<rusqlite::Result<Vec<String>>>()
                .map_err(db_error)?;
            let skip = if path == "/" { 1 } else { path.len() + 1 };
            Ok(children
                .into_iter()
                .map(|c| c[skip..].to_string())
                .collect())
        })
        .await
    }

    async fn watch(&self, prefix: &str) -> StoreResult<Watch> {
        validate_path(prefix)?;
        let (tx, rx) = mpsc::unbounded_channel();
        // The watch starts now: changes already committed are not replayed.
        let since: i64 = self
            .with_conn(|conn, _| {
                conn.row("SELECT COALESCE(MAX(zxid), 0) FROM changes", [], |r| {
                    r.get(0)
                })
                .map_err(db_error)
            })
            .await?;
        let mut watchers = self
            .shared
            .watchers
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let id = watchers.next_id;
        watchers.next_id += 1;
        watchers.entries.insert(id, (prefix.to_string(), tx, since));
        Ok(Watch { events: rx })
    }

    async fn wait_deleted(&self, path: &str, timeout: Option<Duration>) -> StoreResult<bool> {
        let mut watch = self.watch(path).await?;
        if self.exists(path).await?.is_none() {
            return Ok(true);
        }
        let wait = async {
            while let Some(event) = watch.events.recv().await {
                match event {
                    WatchEvent::Deleted(p) if p == path => return true,
                    WatchEvent::Resync if self.exists(path).await.ok().flatten().is_none() => {
                        return true;
                    }
                    _ => {}
                }
            }
            false
        };
        match timeout {
            Some(limit) => Ok(tokio::time::timeout(limit, wait).await.unwrap_or(false)),
            None => Ok(wait.await),
        }
    }

    fn session_state(&self) -> watch::Receiver<SessionState> {
        self.shared.state_tx.subscribe()
    }

    fn session_id(&self) -> i64 {
        *self
            .shared
            .session
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    async fn close(&self) -> StoreResult<()> {
        self.shared.closed.send_replace(true);
        self.write(|tx, session, now| reap_session(tx, session, now).map(|_| ()).map_err(db_error))
            .await?;
        self.shared.state_tx.send_replace(SessionState::Lost);
        Ok(())
    }
}

impl Drop for SqliteBackend {
    fn drop(&mut self) {
        self.shared.closed.send_replace(true);
    }
}

/// Statements through the connection's prepared-statement cache: parsing SQL was a third of
/// the embedded store's instructions under load when every call prepared afresh.
trait Cached {
    fn exec<P: rusqlite::Params>(&self, sql: &str, params: P) -> rusqlite::Result<usize>;
    fn row<T, P, F>(&self, sql: &str, params: P, f: F) -> rusqlite::Result<T>
    where
        P: rusqlite::Params,
        F: FnOnce(&rusqlite::Row<'_>) -> rusqlite::Result<T>;
}

impl Cached for Connection {
    fn exec<P: rusqlite::Params>(&self, sql: &str, params: P) -> rusqlite::Result<usize> {
        self.prepare_cached(sql)?.execute(params)
    }

    fn row<T, P, F>(&self, sql: &str, params: P, f: F) -> rusqlite::Result<T>
    where
        P: rusqlite::Params,
        F: FnOnce(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    {
        self.prepare_cached(sql)?.query_row(params, f)
    }
}
