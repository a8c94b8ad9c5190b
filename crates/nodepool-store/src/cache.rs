//! An in-process copy of a subtree kept current by one persistent recursive watch.
//!
//! This is how the launcher and its webapp read nodes, requests and images without a store
//! round trip per look (spec 1.12). The watch is registered before the first full walk, so
//! no change falls between them; a `Resync` (reconnect, new session, pruned change log)
//! re-walks the whole subtree. Readers that act on what they see still re-check under the
//! real lock: the cache may lag by one event.
//!
//! On a [`WriteThrough`](crate::WriteThrough) backend the process's own `set`s go into the
//! cache as soon as the store answers. To skip reading what it already holds, the follower
//! counts each path's change events from the event that created it: the k-th `Changed` event
//! of a znode is the write that made its data version k, so an entry at version k or newer
//! already shows it. (Paths found by a walk have no count and are always read.)

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::ops::Bound;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::backend::{Backend, Stat, StoreError, StoreResult, WatchEvent, join};
use crate::staleness;

/// One cached znode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub data: Vec<u8>,
    pub stat: Stat,
}

pub(crate) type Tree = BTreeMap<String, Entry>;

/// A cached subtree; dropping it stops following changes.
#[derive(Debug)]
pub struct TreeCache {
    root: String,
    /// Written by the follower task (and by a `WriteThrough` backend, with the process's own
    /// writes); readers take short read locks and never await.
    tree: Arc<RwLock<Tree>>,
    /// Counts applied changes so level-triggered loops can wait for "something changed".
    generation: watch::Receiver<u64>,
    /// The paths each recent batch changed, so a reader that keeps derived state can update
    /// what changed instead of walking the whole subtree.
    journal: Arc<Mutex<Journal>>,
    follower: JoinHandle<()>,
    /// The staleness guard ([`staleness`]), if enabled.
    auditor: Option<JoinHandle<()>>,
}

/// How a [`TreeCache`] follows its subtree.
#[derive(Debug, Clone, Copy)]
pub struct CacheOptions {
    /// Znodes followed by existence only (see [`ExistenceOnly`]).
    pub existence_only: ExistenceOnly,
    /// The staleness guard's period and grace; `None` turns it off.
    pub audit: Option<Audit>,
}

impl Default for CacheOptions {
    fn default() -> CacheOptions {
        CacheOptions {
            existence_only: |_| false,
            audit: Some(Audit::default()),
        }
    }
}

/// When the staleness guard compares the cache with the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Audit {
    /// Time between two comparisons.
    pub interval: Duration,
    /// How long a difference may last before the cache counts as stale.
    pub grace: Duration,
}

impl Default for Audit {
    fn default() -> Audit {
        Audit {
            interval: staleness::DEFAULT_AUDIT_INTERVAL,
            grace: staleness::DEFAULT_AUDIT_GRACE,
        }
    }
}

/// The paths changed by the last [`JOURNAL_BATCHES`] batches, by generation.
#[derive(Debug, Default)]
struct Journal {
    /// The generation of the newest batch applied (0: none yet).
    generation: u64,
    /// `(generation, changed paths)`; `None` for a resync, which may have changed anything.
    batches: VecDeque<(u64, Option<Vec<String>>)>,
}

/// How many batches the journal remembers; a reader further behind walks the subtree.
const JOURNAL_BATCHES: usize = 512;

/// What changed in a cache since a generation a reader saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Changes {
    /// The generation now, and every path created, changed or deleted since (each once).
    Paths(u64, BTreeSet<String>),
    /// Too far behind, or a resync happened: walk the subtree again.
    Unknown,
}

impl Drop for TreeCache {
    fn drop(&mut self) {
        self.follower.abort();
        if let Some(auditor) = &self.auditor {
            auditor.abort();
        }
    }
}

async fn walk(backend: &dyn Backend, root: &str) -> StoreResult<Tree> {
    let mut tree = Tree::new();
    let mut pending = vec![root.to_string()];
    while let Some(path) = pending.pop() {
        let Some((data, stat)) = backend.get(&path).await? else {
            continue;
        };
        if stat.num_children > 0 {
            match backend.children(&path).await {
                Ok(children) => pending.extend(children.iter().map(|c| join(&path, c))),
                Err(StoreError::NoNode(_)) => continue,
                Err(e) => return Err(e),
            }
        }
        tree.insert(path, Entry { data, stat });
    }
    Ok(tree)
}

/// Picks the znodes a cache follows by existence only: a change event for one inserts an
/// empty entry instead of reading it (lock contenders, whose data no reader needs, come and
/// go several times per request; each read is a round trip).
pub type ExistenceOnly = fn(&str) -> bool;

impl TreeCache {
    /// Loads the subtree under `root` (which may not exist yet) and follows it.
    pub async fn start(backend: Arc<dyn Backend>, root: &str) -> StoreResult<TreeCache> {
        TreeCache::start_with(backend, root, |_| false).await
    }

    /// As [`TreeCache::start`]; znodes `existence_only` picks are cached with empty data
    /// and a zero `Stat` when an event names them (a full walk still reads them).
    pub async fn start_with(
        backend: Arc<dyn Backend>,
        root: &str,
        existence_only: ExistenceOnly,
    ) -> StoreResult<TreeCache> {
        let options = CacheOptions {
            existence_only,
            ..CacheOptions::default()
        };
        TreeCache::start_with_options(backend, root, options).await
    }

    /// As [`TreeCache::start`], with every option spelled out.
    pub async fn start_with_options(
        backend: Arc<dyn Backend>,
        root: &str,
        options: CacheOptions,
    ) -> StoreResult<TreeCache> {
        let existence_only = options.existence_only;
        let mut watch = backend.watch(root).await?;
        let tree = Arc::new(RwLock::new(walk(backend.as_ref(), root).await?));
        if let Some(write_through) = backend.write_through() {
            write_through.follow(root, Arc::downgrade(&tree));
        }
        let (generation_tx, generation) = watch::channel(0u64);
        let journal = Arc::new(Mutex::new(Journal::default()));
        // The guard asks the follower to start over (new watch, full walk) through this.
        let (resync_tx, mut resync_rx) = mpsc::unbounded_channel::<()>();
        let applying = Arc::new(AtomicBool::new(false));
        let auditor = options.audit.map(|audit| {
            staleness::track(root);
            tokio::spawn(audit_loop(
                backend.clone(),
                root.to_string(),
                Arc::downgrade(&tree),
                applying.clone(),
                audit,
                resync_tx,
            ))
        });
        let follower = {
            let tree = tree.clone();
            let journal = journal.clone();
            let root = root.to_string();
            tokio::spawn(async move {
                let mut counts = ChangeCounts::new();
                loop {
                    let event = tokio::select! {
                        event = watch.events.recv() => match event {
                            Some(event) => event,
                            None => break,
                        },
                        Some(()) = resync_rx.recv() => {
                            // The watch may be dead: a new one first, so no change falls
                            // between it and the walk (the old one goes when replaced).
                            match backend.watch(&root).await {
                                Ok(renewed) => watch = renewed,
                                Err(e) => tracing::warn!(
                                    root,
                                    error = %e,
                                    "cannot register the cache's watch again; re-reading anyway"
                                ),
                            }
                            WatchEvent::Resync
                        }
                    };
                    applying.store(true, Ordering::SeqCst);
                    // Everything already queued is applied as one batch: one read per
                    // changed path, issued together, so a busy subtree does not make the
                    // cache fall further and further behind one round trip at a time.
                    let mut batch = vec![event];
                    while batch.len() < MAX_BATCH
                        && let Ok(event) = watch.events.try_recv()
                    {
                        batch.push(event);
                    }
                    let changed = match apply_batch(
                        &backend,
                        &root,
                        &tree,
                        batch,
                        existence_only,
                        &mut counts,
                    )
                    .await
                    {
                        Ok(changed) => changed,
                        Err(e) => {
                            tracing::warn!(root, error = %e, "cache update failed; re-reading the subtree");
                            if let Err(e) = apply_batch(
                                &backend,
                                &root,
                                &tree,
                                vec![WatchEvent::Resync],
                                existence_only,
                                &mut counts,
                            )
                            .await
                            {
                                tracing::warn!(root, error = %e, "cache resync failed");
                            }
                            None
                        }
                    };
                    // The journal is written before the generation moves, so whoever wakes
                    // on the new generation finds its changes.
                    let generation = {
                        let mut journal = journal.lock().unwrap_or_else(|e| e.into_inner());
                        journal.generation += 1;
                        let generation = journal.generation;
                        journal.batches.push_back((generation, changed));
                        if journal.batches.len() > JOURNAL_BATCHES {
                            journal.batches.pop_front();
                        }
                        generation
                    };
                    applying.store(false, Ordering::SeqCst);
                    generation_tx.send_replace(generation);
                }
            })
        };
        Ok(TreeCache {
            root: root.to_string(),
            tree,
            generation,
            journal,
            follower,
            auditor,
        })
    }

    pub fn root(&self) -> &str {
        &self.root
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Tree> {
        self.tree.read().unwrap_or_else(|e| e.into_inner())
    }

    pub fn get(&self, path: &str) -> Option<Entry> {
        self.read().get(path).cloned()
    }

    /// Calls `f` with the cached znode at `path`, without copying it; `f` runs under the
    /// cache's read lock, so it must be quick and must not block.
    pub fn with<R>(&self, path: &str, f: impl FnOnce(Option<&Entry>) -> R) -> R {
        f(self.read().get(path))
    }

    /// Names of the cached direct children of `path`.
    pub fn children(&self, path: &str) -> Vec<String> {
        child_names(&self.read(), path)
            .map(str::to_string)
            .collect()
    }

    /// Every cached znode strictly under `path`, with its path.
    pub fn descendants(&self, path: &str) -> Vec<(String, Entry)> {
        let prefix = format!("{path}/");
        self.read()
            .range(prefix.clone()..)
            .take_while(|(p, _)| p.starts_with(&prefix))
            .map(|(p, e)| (p.clone(), e.clone()))
            .collect()
    }

    /// Calls `visit` for every cached znode strictly under `path`, in path order, without
    /// copying: for readers that only parse what changed. `visit` runs under the cache's read
    /// lock, so it must be quick and must not block.
    pub fn visit_descendants(&self, path: &str, mut visit: impl FnMut(&str, &Entry)) {
        let prefix = format!("{path}/");
        for (p, e) in self
            .read()
            .range(prefix.clone()..)
            .take_while(|(p, _)| p.starts_with(&prefix))
        {
            visit(p, e);
        }
    }

    /// Whether any znode is cached strictly under `path`.
    pub fn has_descendants(&self, path: &str) -> bool {
        let prefix = format!("{path}/");
        self.read()
            .range(prefix.clone()..)
            .next()
            .is_some_and(|(p, _)| p.starts_with(&prefix))
    }

    /// Changes whenever the cache applied an event; `changed().await` to wait for one.
    pub fn generation(&self) -> watch::Receiver<u64> {
        self.generation.clone()
    }

    /// The paths changed after generation `since` (a value [`TreeCache::generation`] or an
    /// earlier `Changes::Paths` gave), up to the newest batch applied. The tree may already
    /// hold changes of a batch not in the journal yet; those come with the next call.
    pub fn changes_since(&self, since: u64) -> Changes {
        let journal = self.journal.lock().unwrap_or_else(|e| e.into_inner());
        if since == journal.generation {
            return Changes::Paths(since, BTreeSet::new());
        }
        // The batch right after `since` must still be remembered.
        if since > journal.generation || journal.batches.front().is_none_or(|(g, _)| *g > since + 1)
        {
            return Changes::Unknown;
        }
        let mut paths = BTreeSet::new();
        for (generation, changed) in &journal.batches {
            if *generation <= since {
                continue;
            }
            match changed {
                Some(changed) => paths.extend(changed.iter().cloned()),
                None => return Changes::Unknown,
            }
        }
        Changes::Paths(journal.generation, paths)
    }
}

/// The staleness guard's loop: every `audit.interval`, one comparison ([`audit_once`]); a
/// stale cache is logged as an ERROR, counted, and sent back to a new watch and a full walk.
/// Ends with the cache.
async fn audit_loop(
    backend: Arc<dyn Backend>,
    root: String,
    tree: Weak<RwLock<Tree>>,
    applying: Arc<AtomicBool>,
    audit: Audit,
    resync: mpsc::UnboundedSender<()>,
) {
    let mut cursor: Option<String> = None;
    loop {
        tokio::time::sleep(audit.interval).await;
        let stale =
            match audit_once(&backend, &root, &tree, &applying, audit.grace, &mut cursor).await {
                Ok(stale) => stale,
                // Cannot compare now (suspended, or the cache is gone): next round.
                Err(e) => {
                    tracing::debug!(root, error = %e, "cache audit skipped");
                    continue;
                }
            };
        let Some(finding) = stale else {
            continue;
        };
        tracing::error!(
            cache = root,
            finding,
            "cache is behind the store; registering its watch again and re-reading the subtree"
        );
        staleness::count_stale(&root);
        if resync.send(()).is_err() {
            return;
        }
    }
}

/// One comparison of the cache with the store: `Some(what is behind)` when the cache still
/// fails to show, `grace` later, what the store showed (see [`staleness`]).
async fn audit_once(
    backend: &Arc<dyn Backend>,
    root: &str,
    tree: &Weak<RwLock<Tree>>,
    applying: &AtomicBool,
    grace: Duration,
    cursor: &mut Option<String>,
) -> StoreResult<Option<String>> {
    let gone = || StoreError::Backend("the cache was dropped".to_string());
    let (sample, cached_children) = {
        let tree = tree.upgrade().ok_or_else(gone)?;
        let tree = tree.read().unwrap_or_else(|e| e.into_inner());
        (
            next_sample(&tree, root, cursor),
            direct_children(&tree, root),
        )
    };
    let root_before = backend.exists(root).await?;
    let stored_sample = match &sample {
        Some(path) => Some(backend.exists(path).await?),
        None => None,
    };
    let sample_behind = |tree: &Tree| {
        sample
            .as_ref()
            .zip(stored_sample.as_ref())
            .filter(|(path, stored)| {
                staleness::entry_behind(stored.as_ref(), tree.get(*path).map(|e| &e.stat))
            })
    };
    let suspicious = {
        let tree = tree.upgrade().ok_or_else(gone)?;
        let tree = tree.read().unwrap_or_else(|e| e.into_inner());
        sample_behind(&tree).is_some()
            || root_before.is_some_and(|stat| {
                usize::try_from(stat.num_children).ok() != Some(cached_children)
            })
    };
    if !suspicious {
        return Ok(None);
    }
    tokio::time::sleep(grace).await;
    let root_after = backend.exists(root).await?;
    // A follower busy applying (a long walk) is not stale, only slow.
    if applying.load(Ordering::SeqCst) {
        return Ok(None);
    }
    let tree = tree.upgrade().ok_or_else(gone)?;
    let tree = tree.read().unwrap_or_else(|e| e.into_inner());
    if let Some((path, stored)) = sample_behind(&tree) {
        let cached = tree.get(path).map(|e| e.stat);
        return Ok(Some(format!(
            "{path}: the store had {} {grace:?} ago, the cache still has {}",
            describe(stored.as_ref()),
            describe(cached.as_ref())
        )));
    }
    if let (Some(before), Some(after)) = (root_before, root_after) {
        let cached_children = direct_children(&tree, root);
        if staleness::children_behind(&before, &after, cached_children) {
            return Ok(Some(format!(
                "{root}: the store has {} children, the cache {cached_children}",
                before.num_children
            )));
        }
    }
    Ok(None)
}

fn describe(stat: Option<&Stat>) -> String {
    match stat {
        Some(stat) => format!("version {} (created at zxid {})", stat.version, stat.czxid),
        None => "no such znode".to_string(),
    }
}

/// The next cached znode after `cursor` (wrapping around) with a real `Stat`: existence-only
/// entries carry none to compare.
fn next_sample(tree: &Tree, root: &str, cursor: &mut Option<String>) -> Option<String> {
    let real = |(path, entry): &(&String, &Entry)| path.as_str() != root && entry.stat.czxid != 0;
    let after = match cursor.as_deref() {
        Some(after) => tree
            .range::<str, _>((Bound::Excluded(after), Bound::Unbounded))
            .find(real),
        None => None,
    };
    let found = after
        .or_else(|| tree.iter().find(real))
        .map(|(p, _)| p.clone());
    cursor.clone_from(&found);
    found
}

/// How many direct children of `root` the cache holds.
fn direct_children(tree: &Tree, root: &str) -> usize {
    child_names(tree, root).count()
}

/// Names of the direct children of `path` in `tree`.
fn child_names<'a>(tree: &'a Tree, path: &str) -> impl Iterator<Item = &'a str> {
    let prefix = if path == "/" {
        "/".to_string()
    } else {
        format!("{path}/")
    };
    let skip = prefix.len();
    tree.range(prefix.clone()..)
        .take_while(move |(p, _)| p.starts_with(&prefix))
        .map(move |(p, _)| &p[skip..])
        .filter(|rest| !rest.is_empty() && !rest.contains('/'))
}

/// How long a batch waits for this process's writes to the paths it changed to be answered
/// (ZooKeeper sends the event just before the answer; a write stuck longer is read instead).
const SETTLE_LIMIT: Duration = Duration::from_millis(100);

/// The most events applied as one batch (and so the most reads in flight at once).
const MAX_BATCH: usize = 256;

/// For each path whose creation the follower saw, how many `Changed` events came since: the
/// data version the newest of them made.
type ChangeCounts = HashMap<String, i32>;

/// What a batch does to one path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Deleted,
    /// Created in this batch (read it).
    Created,
    /// Only changed in this batch (read it unless the entry already shows the change).
    Changed,
}

/// Puts a write this process made into `tree`, when it is newer than the entry for the same
/// znode (same creation). A znode not cached yet is left to its creation event, which reads it.
pub(crate) fn note_write(tree: &RwLock<Tree>, path: &str, data: &[u8], stat: &Stat) {
    let mut tree = tree.write().unwrap_or_else(|e| e.into_inner());
    if let Some(entry) = tree.get_mut(path)
        && entry.stat.czxid == stat.czxid
        && entry.stat.version < stat.version
    {
        *entry = Entry {
            data: data.to_vec(),
            stat: *stat,
        };
    }
}

/// Applies a batch of events in order of arrival. A `Resync` anywhere re-walks the subtree,
/// which covers every event before it (and after it: the walk starts once all arrived). Otherwise
/// each path's last event decides: deleted paths are removed, created or changed ones are
/// read once, all reads in flight together. A read returns the current state, which is at
/// least as new as the event that caused it, so coalescing loses nothing. A changed path whose
/// entry's data version already covers its change count is not read. Returns the paths the
/// batch named, or `None` after a resync.
async fn apply_batch(
    backend: &Arc<dyn Backend>,
    root: &str,
    tree: &RwLock<Tree>,
    batch: Vec<WatchEvent>,
    existence_only: ExistenceOnly,
    counts: &mut ChangeCounts,
) -> StoreResult<Option<Vec<String>>> {
    if batch.iter().any(|e| matches!(e, WatchEvent::Resync)) {
        counts.clear();
        let fresh = walk(backend.as_ref(), root).await?;
        *tree.write().unwrap_or_else(|e| e.into_inner()) = fresh;
        return Ok(None);
    }
    let mut last: BTreeMap<String, Outcome> = BTreeMap::new();
    for event in batch {
        match event {
            WatchEvent::Created(path) => {
                counts.insert(path.clone(), 0);
                last.insert(path, Outcome::Created);
            }
            WatchEvent::Changed(path) => {
                if let Some(count) = counts.get_mut(&path) {
                    *count += 1;
                }
                last.entry(path)
                    .and_modify(|o| {
                        if *o == Outcome::Deleted {
                            *o = Outcome::Changed;
                        }
                    })
                    .or_insert(Outcome::Changed);
            }
            WatchEvent::Deleted(path) => {
                counts.remove(&path);
                last.insert(path, Outcome::Deleted);
            }
            WatchEvent::Resync => {}
        }
    }
    // Changed paths the cache already holds at the version their last event made.
    let is_current = |path: &String| {
        counts.get(path).is_some_and(|count| {
            let tree = tree.read().unwrap_or_else(|e| e.into_inner());
            tree.get(path).is_some_and(|e| e.stat.version >= *count)
        })
    };
    let counted: Vec<&String> = last
        .iter()
        .filter(|(path, outcome)| **outcome == Outcome::Changed && counts.contains_key(*path))
        .map(|(path, _)| path)
        .collect();
    // A counted path not current yet may wait for the answer to this process's own write.
    if let Some(write_through) = backend.write_through()
        && !counted.is_empty()
    {
        write_through
            .settle(
                || {
                    counted
                        .iter()
                        .any(|path| write_through.in_flight(path) && !is_current(path))
                },
                SETTLE_LIMIT,
            )
            .await;
    }
    let current: BTreeSet<&String> = counted.into_iter().filter(|p| is_current(p)).collect();
    let mut reads = tokio::task::JoinSet::new();
    for (path, outcome) in &last {
        if *outcome != Outcome::Deleted && !existence_only(path) && !current.contains(path) {
            let backend = backend.clone();
            let path = path.clone();
            reads.spawn(async move {
                let current = backend.get(&path).await;
                (path, current)
            });
        }
    }
    let mut read = Vec::with_capacity(reads.len());
    while let Some(joined) = reads.join_next().await {
        let (path, current) = joined.map_err(|e| StoreError::Backend(e.to_string()))?;
        read.push((path, current?));
    }
    let mut tree = tree.write().unwrap_or_else(|e| e.into_inner());
    for (path, outcome) in &last {
        if *outcome == Outcome::Deleted {
            tree.remove(path);
        } else if existence_only(path) && !tree.contains_key(path) {
            tree.insert(
                path.clone(),
                Entry {
                    data: Vec::new(),
                    stat: Stat::default(),
                },
            );
        }
    }
    for (path, current) in read {
        match current {
            // Ignore what is older than what we hold (events and reads can cross).
            Some((data, stat)) => {
                if tree
                    .get(&path)
                    .is_none_or(|old| old.stat.mzxid <= stat.mzxid)
                {
                    tree.insert(path, Entry { data, stat });
                }
            }
            None => {
                tree.remove(&path);
            }
        }
    }
    Ok(Some(last.into_keys().collect()))
}
