//! The conformance suite every backend must pass.
//!
//! A backend's test file implements [`Harness`] and calls [`conformance_tests!`], which
//! expands to one `#[tokio::test]` per case. Every case works under its own random root, so
//! the suite can share one ZooKeeper server with other tests.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::backend::{Backend, CreateMode, Op, OpResult, SessionState, StoreError, WatchEvent};
use crate::lock::{self, Lock, LockWait};
use crate::store::Store;

/// What a backend's tests provide to the suite.
#[async_trait]
pub trait Harness: Send + Sync {
    /// A new client with its own session.
    async fn client(&self) -> Arc<dyn Backend>;
    /// Ends `client`'s session as if it had stalled past its timeout, and returns once the
    /// store has removed its ephemerals.
    async fn expire(&self, client: &Arc<dyn Backend>);
}

fn root() -> String {
    format!("/conformance-{}", uuid::Uuid::new_v4().simple())
}

const WAIT: Duration = Duration::from_secs(20);

/// Waits for the next watch event matching `want`, failing after a generous limit.
async fn next_event(
    watch: &mut crate::backend::Watch,
    want: impl Fn(&WatchEvent) -> bool,
) -> WatchEvent {
    let found = tokio::time::timeout(WAIT, async {
        loop {
            match watch.events.recv().await {
                Some(event) if want(&event) => return event,
                Some(_) => continue,
                None => panic!("watch closed"),
            }
        }
    })
    .await;
    found.expect("watch event did not arrive")
}

pub async fn round_trip(h: &dyn Harness) {
    let c = h.client().await;
    let root = root();
    let path = format!("{root}/a/b");
    assert!(matches!(
        c.create(&path, b"x", CreateMode::Persistent, false).await,
        Err(StoreError::NoNode(_))
    ));
    assert_eq!(
        c.create(&path, b"one", CreateMode::Persistent, true)
            .await
            .expect("create"),
        path
    );
    assert!(matches!(
        c.create(&path, b"", CreateMode::Persistent, true).await,
        Err(StoreError::NodeExists(_))
    ));
    let (data, stat) = c.get(&path).await.expect("get").expect("exists");
    assert_eq!(data, b"one");
    assert_eq!(stat.version, 0);
    assert!(stat.ctime_ms > 0 && stat.czxid > 0 && stat.czxid == stat.mzxid);
    let (parent_data, _) = c
        .get(&format!("{root}/a"))
        .await
        .expect("get")
        .expect("parent made");
    assert!(parent_data.is_empty());
    let stat = c.set(&path, b"two", Some(0)).await.expect("set");
    assert_eq!(stat.version, 1);
    assert!(stat.mzxid > stat.czxid);
    assert!(matches!(
        c.set(&path, b"three", Some(0)).await,
        Err(StoreError::BadVersion(_))
    ));
    c.set(&path, b"three", None)
        .await
        .expect("unconditional set");
    assert_eq!(
        c.get(&path).await.expect("get").expect("exists").0,
        b"three"
    );
    assert!(matches!(
        c.delete(&format!("{root}/a"), None).await,
        Err(StoreError::NotEmpty(_))
    ));
    assert!(matches!(
        c.delete(&path, Some(0)).await,
        Err(StoreError::BadVersion(_))
    ));
    c.delete(&path, Some(2)).await.expect("delete");
    assert!(c.get(&path).await.expect("get").is_none());
    assert!(matches!(
        c.delete(&path, None).await,
        Err(StoreError::NoNode(_))
    ));
    assert!(matches!(
        c.set(&path, b"", None).await,
        Err(StoreError::NoNode(_))
    ));
    assert!(matches!(
        c.children(&path).await,
        Err(StoreError::NoNode(_))
    ));
    assert!(
        c.children(&format!("{root}/a"))
            .await
            .expect("children")
            .is_empty()
    );
    let store = Store::new(c.clone());
    c.create(&format!("{root}/t/x/y"), b"", CreateMode::Persistent, true)
        .await
        .expect("create");
    c.create(&format!("{root}/t/z"), b"", CreateMode::Persistent, true)
        .await
        .expect("create");
    store
        .delete_recursive(&format!("{root}/t"))
        .await
        .expect("recursive delete");
    assert!(
        c.exists(&format!("{root}/t"))
            .await
            .expect("exists")
            .is_none()
    );
    store
        .delete_recursive(&format!("{root}/t"))
        .await
        .expect("missing is fine");
}

pub async fn sequence_ids(h: &dyn Harness) {
    let c = h.client().await;
    let root = root();
    let dir = format!("{root}/requests");
    Store::new(c.clone())
        .ensure_path(&dir)
        .await
        .expect("ensure");
    let first = c
        .create(
            &format!("{dir}/100-"),
            b"",
            CreateMode::PersistentSequential,
            false,
        )
        .await
        .expect("create");
    assert_eq!(first, format!("{dir}/100-0000000000"));
    let second = c
        .create(
            &format!("{dir}/200-"),
            b"",
            CreateMode::PersistentSequential,
            false,
        )
        .await
        .expect("create");
    assert_eq!(second, format!("{dir}/200-0000000001"));
    c.delete(&first, None).await.expect("delete");
    let third = c
        .create(
            &format!("{dir}/"),
            b"",
            CreateMode::PersistentSequential,
            false,
        )
        .await
        .expect("create");
    // The sequence counts children ever created (deletes do not advance it), while the
    // parent's child version counts creates and deletes, as ZooKeeper reports them.
    assert_eq!(third, format!("{dir}/0000000002"));
    let parent = c.exists(&dir).await.expect("exists").expect("parent");
    assert_eq!(parent.cversion, 4);
    let mut children = c.children(&dir).await.expect("children");
    children.sort();
    assert_eq!(
        children,
        vec!["0000000002".to_string(), "200-0000000001".to_string()]
    );
}

pub async fn ephemerals_vanish_with_session(h: &dyn Harness) {
    let a = h.client().await;
    let b = h.client().await;
    let root = root();
    Store::new(a.clone())
        .ensure_path(&root)
        .await
        .expect("ensure");
    let path = a
        .create(
            &format!("{root}/e-"),
            b"mine",
            CreateMode::EphemeralSequential,
            false,
        )
        .await
        .expect("create");
    let stat = b
        .exists(&path)
        .await
        .expect("exists")
        .expect("visible to others");
    assert_eq!(stat.ephemeral_owner, a.session_id());
    assert!(matches!(
        a.create(&format!("{path}/child"), b"", CreateMode::Persistent, false)
            .await,
        Err(StoreError::NoChildrenForEphemerals(_))
    ));
    a.close().await.expect("close");
    assert!(b.exists(&path).await.expect("exists").is_none());
}

pub async fn lock_exclusion(h: &dyn Harness) {
    let a = Store::new(h.client().await);
    let b = Store::new(h.client().await);
    let dir = format!("{}/nodes/0000000001/lock", root());
    let held = a
        .lock(&dir, "", LockWait::NonBlocking)
        .await
        .expect("lock")
        .expect("free lock is acquired");
    assert!(
        b.lock(&dir, "", LockWait::NonBlocking)
            .await
            .expect("try")
            .is_none()
    );
    assert!(matches!(
        b.lock(&dir, "", LockWait::Timeout(Duration::from_millis(300)))
            .await,
        Err(StoreError::Timeout)
    ));
    // Failed attempts leave no contender behind.
    assert_eq!(a.lock_contenders(&dir).await.expect("contenders").len(), 1);
    held.release().await.expect("release");
    let second = b
        .lock(&dir, "", LockWait::Timeout(WAIT))
        .await
        .expect("lock")
        .expect("acquired");
    assert!(
        a.lock(&dir, "", LockWait::NonBlocking)
            .await
            .expect("try")
            .is_none()
    );
    second.release().await.expect("release");
}

/// A wrong guess about a lock's directory costs a round trip, never the lock's exclusion.
pub async fn lock_with_guessed_directory(h: &dyn Harness) {
    use crate::lock::{LockDir, LockParent};
    let a = Store::new(h.client().await);
    let b = Store::new(h.client().await);
    let dir = format!("{}/nodes/0000000002/lock", root());
    // Guessed missing, and it is: one transaction makes it and takes the lock.
    let held = a
        .lock_expecting(
            &dir,
            "",
            LockWait::NonBlocking,
            LockDir::Missing,
            LockParent::Recreate,
        )
        .await
        .expect("lock")
        .expect("free lock is acquired");
    // Guessed missing, but it is there and held: not acquired, nothing left behind.
    for guess in [LockDir::Missing, LockDir::Exists, LockDir::Unknown] {
        assert!(
            b.lock_expecting(&dir, "", LockWait::NonBlocking, guess, LockParent::Recreate)
                .await
                .expect("try")
                .is_none(),
            "{guess:?}: a held lock is not acquired"
        );
    }
    assert_eq!(a.lock_contenders(&dir).await.expect("contenders").len(), 1);
    held.release().await.expect("release");
    b.lock_expecting(
        &dir,
        "",
        LockWait::NonBlocking,
        LockDir::Missing,
        LockParent::Recreate,
    )
    .await
    .expect("lock")
    .expect("a free lock in an existing directory is acquired")
    .release()
    .await
    .expect("release");
    // Guessed there, but it is not: made as the recipe makes it.
    let fresh = format!("{}/nodes/0000000003/lock", root());
    b.lock_expecting(
        &fresh,
        "",
        LockWait::NonBlocking,
        LockDir::Exists,
        LockParent::Recreate,
    )
    .await
    .expect("lock")
    .expect("acquired in a new directory")
    .release()
    .await
    .expect("release");
}

/// A lock whose parent must exist (how our launchers lock nodes) fails with `NoNode` on a
/// node that is gone and re-creates nothing, whatever the guess about its directory; kazoo's
/// way brings the node back empty (spec 8.2).
pub async fn lock_without_recreating_a_deleted_parent(h: &dyn Harness) {
    use crate::lock::{LockDir, LockParent};
    let store = Store::new(h.client().await);
    let node = format!("{}/nodes/0000000004", root());
    let dir = format!("{node}/lock");
    store
        .ensure_path(&dir)
        .await
        .expect("make the lock directory");
    store
        .delete_recursive(&node)
        .await
        .expect("delete the node");
    for guess in [LockDir::Missing, LockDir::Exists, LockDir::Unknown] {
        let result = store
            .lock_expecting(
                &dir,
                "",
                LockWait::NonBlocking,
                guess,
                LockParent::MustExist,
            )
            .await;
        assert!(
            matches!(result, Err(StoreError::NoNode(_))),
            "{guess:?}: locking a deleted node fails with NoNode, got {:?}",
            result.as_ref().err()
        );
        assert!(
            store
                .backend()
                .exists(&node)
                .await
                .expect("exists")
                .is_none(),
            "{guess:?}: the deleted node is not re-created"
        );
    }
    // The lock directory of a node that exists is still made when missing.
    store.ensure_path(&node).await.expect("make the node");
    store
        .lock_expecting(
            &dir,
            "",
            LockWait::NonBlocking,
            LockDir::Missing,
            LockParent::MustExist,
        )
        .await
        .expect("lock")
        .expect("acquired")
        .release()
        .await
        .expect("release");
    // kazoo's way re-creates the deleted node.
    store
        .delete_recursive(&node)
        .await
        .expect("delete the node");
    store
        .lock_expecting(
            &dir,
            "",
            LockWait::NonBlocking,
            LockDir::Unknown,
            LockParent::Recreate,
        )
        .await
        .expect("lock")
        .expect("acquired")
        .release()
        .await
        .expect("release");
    assert!(
        store
            .backend()
            .exists(&node)
            .await
            .expect("exists")
            .is_some(),
        "kazoo's way brings the node back"
    );
}

pub async fn lock_fairness(h: &dyn Harness) {
    let a = Store::new(h.client().await);
    let b = Store::new(h.client().await);
    let c = Store::new(h.client().await);
    let dir = format!("{}/lock", root());
    let held = a
        .lock(&dir, "a", LockWait::NonBlocking)
        .await
        .expect("lock")
        .expect("acquired");
    let (order_tx, mut order_rx) = tokio::sync::mpsc::unbounded_channel();
    let wait_b = {
        let (dir, order) = (dir.clone(), order_tx.clone());
        tokio::spawn(async move {
            let lock = b
                .lock(&dir, "b", LockWait::Forever)
                .await
                .expect("lock")
                .expect("acquired");
            order.send("b").expect("send");
            tokio::time::sleep(Duration::from_millis(100)).await;
            lock.release().await.expect("release");
        })
    };
    // C queues after B.
    wait_for_contenders(&a, &dir, 2).await;
    let wait_c = {
        let (dir, order) = (dir.clone(), order_tx.clone());
        tokio::spawn(async move {
            let lock = c
                .lock(&dir, "c", LockWait::Forever)
                .await
                .expect("lock")
                .expect("acquired");
            order.send("c").expect("send");
            lock.release().await.expect("release");
        })
    };
    wait_for_contenders(&a, &dir, 3).await;
    held.release().await.expect("release");
    wait_b.await.expect("b");
    wait_c.await.expect("c");
    assert_eq!(order_rx.recv().await, Some("b"));
    assert_eq!(order_rx.recv().await, Some("c"));
}

async fn wait_for_contenders(store: &Store, dir: &str, count: usize) {
    tokio::time::timeout(WAIT, async {
        while store.lock_contenders(dir).await.expect("contenders").len() < count {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("contenders appear");
}

pub async fn watch_delivery(h: &dyn Harness) {
    let a = h.client().await;
    let b = h.client().await;
    let root = root();
    Store::new(a.clone())
        .ensure_path(&root)
        .await
        .expect("ensure");
    let mut watch = a.watch(&root).await.expect("watch");
    let path = format!("{root}/x");
    b.create(&path, b"1", CreateMode::Persistent, false)
        .await
        .expect("create");
    b.set(&path, b"2", None).await.expect("set");
    b.create(&format!("{path}/deep"), b"", CreateMode::Persistent, false)
        .await
        .expect("create");
    b.delete(&format!("{path}/deep"), None)
        .await
        .expect("delete");
    b.create(
        &format!("{root}-sibling"),
        b"",
        CreateMode::Persistent,
        false,
    )
    .await
    .expect("outside");
    let mut seen = Vec::new();
    for _ in 0..4 {
        seen.push(next_event(&mut watch, |e| !matches!(e, WatchEvent::Resync)).await);
    }
    assert_eq!(
        seen,
        vec![
            WatchEvent::Created(path.clone()),
            WatchEvent::Changed(path.clone()),
            WatchEvent::Created(format!("{path}/deep")),
            WatchEvent::Deleted(format!("{path}/deep")),
        ]
    );
}

pub async fn session_expiry_mid_lock(h: &dyn Harness) {
    let a = h.client().await;
    let b = Store::new(h.client().await);
    let dir = format!("{}/lock", root());
    let mut state = a.session_state();
    let held = Store::new(a.clone())
        .lock(&dir, "", LockWait::NonBlocking)
        .await
        .expect("lock")
        .expect("acquired");
    assert!(
        b.lock(&dir, "", LockWait::NonBlocking)
            .await
            .expect("try")
            .is_none()
    );
    let waiter = {
        let b = b.clone();
        let dir = dir.clone();
        tokio::spawn(async move { b.lock(&dir, "", LockWait::Timeout(WAIT)).await })
    };
    h.expire(&a).await;
    let taken = waiter
        .await
        .expect("join")
        .expect("lock")
        .expect("the waiter gets the expired holder's lock");
    assert!(
        !held.is_held().await.expect("check"),
        "the expired session's lock is gone"
    );
    tokio::time::timeout(WAIT, async {
        while *state.borrow_and_update() != SessionState::Connected {
            state.changed().await.expect("state");
        }
    })
    .await
    .expect("the client reconnects with a new session");
    // The old client works again with a new session.
    let c = Store::new(a.clone());
    assert!(
        c.lock(&dir, "", LockWait::NonBlocking)
            .await
            .expect("try")
            .is_none()
    );
    taken.release().await.expect("release");
}

pub async fn watch_after_reconnect(h: &dyn Harness) {
    let a = h.client().await;
    let b = h.client().await;
    let root = root();
    Store::new(a.clone())
        .ensure_path(&root)
        .await
        .expect("ensure");
    let mut watch = a.watch(&root).await.expect("watch");
    h.expire(&a).await;
    let path = format!("{root}/after");
    b.create(&path, b"", CreateMode::Persistent, false)
        .await
        .expect("create");
    let event = next_event(&mut watch, |e| {
        e.path() == Some(path.as_str()) || matches!(e, WatchEvent::Resync)
    })
    .await;
    if event == WatchEvent::Resync {
        // A resync means "re-list": the new node must be there.
        assert!(a.exists(&path).await.expect("exists").is_some());
    } else {
        assert_eq!(event, WatchEvent::Created(path));
    }
}

pub async fn concurrent_compare_and_set(h: &dyn Harness) {
    let root = root();
    let path = format!("{root}/counter");
    let first = h.client().await;
    first
        .create(&path, b"0", CreateMode::Persistent, true)
        .await
        .expect("create");
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let client = h.client().await;
        let path = path.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..10 {
                loop {
                    let (data, stat) = client.get(&path).await.expect("get").expect("exists");
                    let value: u64 = String::from_utf8_lossy(&data).parse().expect("number");
                    match client
                        .set(
                            &path,
                            (value + 1).to_string().as_bytes(),
                            Some(stat.version),
                        )
                        .await
                    {
                        Ok(_) => break,
                        Err(StoreError::BadVersion(_)) => continue,
                        Err(e) => panic!("set failed: {e}"),
                    }
                }
            }
        }));
    }
    for task in tasks {
        task.await.expect("task");
    }
    let (data, stat) = first.get(&path).await.expect("get").expect("exists");
    assert_eq!(data, b"40");
    assert_eq!(stat.version, 40);
}

/// Waits until `check` holds for the cache, failing after a generous limit.
async fn cache_until(
    cache: &crate::cache::TreeCache,
    what: &str,
    check: impl Fn(&crate::cache::TreeCache) -> bool,
) {
    let mut generation = cache.generation();
    let reached = tokio::time::timeout(WAIT, async {
        while !check(cache) {
            if generation.changed().await.is_err() {
                return;
            }
        }
    })
    .await;
    assert!(reached.is_ok() && check(cache), "the cache shows {what}");
}

pub async fn cache_follows_changes(h: &dyn Harness) {
    let a = h.client().await;
    let b = h.client().await;
    let root = root();
    let nodes = format!("{root}/nodes");
    b.create(
        &format!("{nodes}/0000000001"),
        b"before",
        CreateMode::Persistent,
        true,
    )
    .await
    .expect("seed");
    let cache = crate::cache::TreeCache::start(a.clone(), &nodes)
        .await
        .expect("cache");
    assert_eq!(
        cache
            .get(&format!("{nodes}/0000000001"))
            .expect("loaded")
            .data,
        b"before"
    );
    b.set(&format!("{nodes}/0000000001"), b"after", None)
        .await
        .expect("set");
    b.create(
        &format!("{nodes}/0000000002/lock/x__lock__0000000000"),
        b"",
        CreateMode::Persistent,
        true,
    )
    .await
    .expect("deep");
    cache_until(&cache, "the update and the new lock contender", |c| {
        c.get(&format!("{nodes}/0000000001"))
            .is_some_and(|e| e.data == b"after")
            && c.children(&format!("{nodes}/0000000002/lock"))
                == vec!["x__lock__0000000000".to_string()]
    })
    .await;
    let mut listed = cache.children(&nodes);
    listed.sort();
    assert_eq!(
        listed,
        vec!["0000000001".to_string(), "0000000002".to_string()]
    );
    b.delete(&format!("{nodes}/0000000001"), None)
        .await
        .expect("delete");
    cache_until(&cache, "the deletion", |c| {
        c.get(&format!("{nodes}/0000000001")).is_none()
    })
    .await;
    h.expire(&a).await;
    b.create(
        &format!("{nodes}/0000000003"),
        b"later",
        CreateMode::Persistent,
        false,
    )
    .await
    .expect("create");
    cache_until(&cache, "changes made after the session was renewed", |c| {
        c.get(&format!("{nodes}/0000000003")).is_some()
    })
    .await;
}

/// The cache's journal names every path a change touched since a generation, so readers
/// can update derived state instead of walking the subtree.
pub async fn cache_journal_names_changes(h: &dyn Harness) {
    use crate::cache::Changes;
    let a = h.client().await;
    let b = h.client().await;
    let nodes = format!("{}/nodes", root());
    let one = format!("{nodes}/0000000001");
    let two = format!("{nodes}/0000000002");
    let contender = format!("{two}/lock/x__lock__0000000000");
    b.create(&one, b"before", CreateMode::Persistent, true)
        .await
        .expect("seed");
    let cache = crate::cache::TreeCache::start(a.clone(), &nodes)
        .await
        .expect("cache");
    let start = *cache.generation().borrow();
    assert_eq!(
        cache.changes_since(start),
        Changes::Paths(start, Default::default())
    );
    assert_eq!(cache.changes_since(start + 1), Changes::Unknown);
    b.set(&one, b"after", None).await.expect("set");
    b.create(&contender, b"", CreateMode::Persistent, true)
        .await
        .expect("contender");
    b.delete(&one, None).await.expect("delete");
    // The journal is written just after the tree, so wait for both.
    cache_until(&cache, "the changes, named in the journal", |c| {
        c.get(&one).is_none()
            && c.has_descendants(&format!("{two}/lock"))
            && matches!(c.changes_since(start),
                Changes::Paths(_, p) if p.contains(&one) && p.contains(&contender))
    })
    .await;
    let Changes::Paths(now, paths) = cache.changes_since(start) else {
        panic!("the journal reaches back to the start");
    };
    assert!(now > start);
    for path in [&one, &contender] {
        assert!(paths.contains(path), "{path} is named in {paths:?}");
    }
    assert!(
        paths.iter().all(|p| p.starts_with(&nodes)),
        "only paths under the cache's root: {paths:?}"
    );
    assert_eq!(
        cache.changes_since(now),
        Changes::Paths(now, Default::default())
    );
}

/// Znodes a cache follows by existence only show up (empty) and go, unread.
pub async fn cache_follows_existence_only(h: &dyn Harness) {
    let a = h.client().await;
    let b = h.client().await;
    let nodes = format!("{}/nodes", root());
    b.create(
        &format!("{nodes}/0000000001"),
        b"node",
        CreateMode::Persistent,
        true,
    )
    .await
    .expect("seed");
    let cache = crate::cache::TreeCache::start_with(a.clone(), &nodes, |p| p.contains("/lock"))
        .await
        .expect("cache");
    let contender = format!("{nodes}/0000000001/lock/x__lock__0000000000");
    b.create(&contender, b"holder", CreateMode::Persistent, true)
        .await
        .expect("contender");
    b.set(&format!("{nodes}/0000000001"), b"node2", None)
        .await
        .expect("set");
    cache_until(&cache, "the contender and the node's new data", |c| {
        c.get(&contender).is_some()
            && c.get(&format!("{nodes}/0000000001"))
                .is_some_and(|e| e.data == b"node2")
    })
    .await;
    assert!(cache.get(&contender).expect("cached").data.is_empty());
    b.delete(&contender, None).await.expect("delete");
    cache_until(&cache, "the contender gone", |c| {
        c.get(&contender).is_none()
    })
    .await;
}

/// A backend that counts reads (`get`), to show which changes a cache did not read back,
/// and that can make the watches registered so far deaf (they deliver nothing more), as a
/// client that fails to register its watches again after a reconnect would.
#[derive(Debug)]
pub struct Instrumented {
    inner: Arc<dyn Backend>,
    gets: std::sync::atomic::AtomicUsize,
    /// Numbers the watches registered through this backend.
    watches: Arc<std::sync::atomic::AtomicU64>,
    /// Watches numbered below this deliver nothing.
    deaf_below: Arc<std::sync::atomic::AtomicU64>,
}

impl Instrumented {
    pub fn new(inner: Arc<dyn Backend>) -> Instrumented {
        Instrumented {
            inner,
            gets: Default::default(),
            watches: Default::default(),
            deaf_below: Default::default(),
        }
    }

    /// How many `get` calls went through so far.
    pub fn gets(&self) -> usize {
        self.gets.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Every watch registered so far goes deaf; later ones work.
    pub fn deafen(&self) {
        let registered = self.watches.load(std::sync::atomic::Ordering::SeqCst);
        self.deaf_below
            .store(registered, std::sync::atomic::Ordering::SeqCst);
    }
}

#[async_trait]
impl Backend for Instrumented {
    async fn get(&self, path: &str) -> crate::StoreResult<Option<(Vec<u8>, crate::Stat)>> {
        self.gets.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.inner.get(path).await
    }
    async fn exists(&self, path: &str) -> crate::StoreResult<Option<crate::Stat>> {
        self.inner.exists(path).await
    }
    async fn create(
        &self,
        path: &str,
        data: &[u8],
        mode: CreateMode,
        make_parents: bool,
    ) -> crate::StoreResult<String> {
        self.inner.create(path, data, mode, make_parents).await
    }
    async fn set(
        &self,
        path: &str,
        data: &[u8],
        version: Option<i32>,
    ) -> crate::StoreResult<crate::Stat> {
        self.inner.set(path, data, version).await
    }
    async fn delete(&self, path: &str, version: Option<i32>) -> crate::StoreResult<()> {
        self.inner.delete(path, version).await
    }
    async fn multi(&self, ops: Vec<Op>) -> crate::StoreResult<Vec<OpResult>> {
        self.inner.multi(ops).await
    }
    async fn children(&self, path: &str) -> crate::StoreResult<Vec<String>> {
        self.inner.children(path).await
    }
    async fn watch(&self, prefix: &str) -> crate::StoreResult<crate::Watch> {
        let mut inner = self.inner.watch(prefix).await?;
        let number = self
            .watches
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let deaf_below = self.deaf_below.clone();
        let (events, receiver) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Some(event) = inner.events.recv().await {
                if number < deaf_below.load(std::sync::atomic::Ordering::SeqCst) {
                    continue;
                }
                if events.send(event).is_err() {
                    return;
                }
            }
        });
        Ok(crate::Watch { events: receiver })
    }
    async fn wait_deleted(
        &self,
        path: &str,
        timeout: Option<Duration>,
    ) -> crate::StoreResult<bool> {
        self.inner.wait_deleted(path, timeout).await
    }
    fn session_state(&self) -> tokio::sync::watch::Receiver<SessionState> {
        self.inner.session_state()
    }
    fn session_id(&self) -> i64 {
        self.inner.session_id()
    }
    async fn close(&self) -> crate::StoreResult<()> {
        self.inner.close().await
    }
}

/// How many times the staleness guard re-read the cache rooted at `root`.
fn stale_count(root: &str) -> u64 {
    crate::staleness::stale_counts()
        .into_iter()
        .find(|(r, _)| r == root)
        .map_or(0, |(_, n)| n)
}

/// A cache whose watch goes deaf (the failure of issue 15) is found behind the store by
/// its staleness guard, counted, and repaired with a new watch: first by a child it lacks,
/// then by a changed znode it holds at an old version.
pub async fn cache_guard_repairs_a_deaf_watch(h: &dyn Harness) {
    use crate::cache::{Audit, CacheOptions, TreeCache};
    let b = h.client().await;
    let probe = Arc::new(Instrumented::new(h.client().await));
    let nodes = format!("{}/nodes", root());
    let one = format!("{nodes}/0000000001");
    let two = format!("{nodes}/0000000002");
    b.create(&one, b"0", CreateMode::Persistent, true)
        .await
        .expect("seed");
    let options = CacheOptions {
        audit: Some(Audit {
            interval: Duration::from_millis(100),
            grace: Duration::from_millis(300),
        }),
        ..CacheOptions::default()
    };
    let cache = TreeCache::start_with_options(probe.clone(), &nodes, options)
        .await
        .expect("cache");

    probe.deafen();
    b.create(&two, b"", CreateMode::Persistent, false)
        .await
        .expect("create");
    cache_until(&cache, "the child the deaf watch missed", |c| {
        c.get(&two).is_some()
    })
    .await;
    assert_eq!(stale_count(&nodes), 1, "the guard counted one stale cache");
    // The repaired cache follows changes on its own again.
    b.set(&one, b"1", None).await.expect("set");
    cache_until(&cache, "a change after the repair", |c| {
        c.get(&one).is_some_and(|e| e.data == b"1")
    })
    .await;

    probe.deafen();
    b.set(&one, b"2", None).await.expect("set");
    cache_until(&cache, "the data the deaf watch missed", |c| {
        c.get(&one).is_some_and(|e| e.data == b"2")
    })
    .await;
    assert_eq!(
        stale_count(&nodes),
        2,
        "a stale znode (no child missing) is found too"
    );
}

/// The staleness guard never calls a live cache stale, however busy its subtree.
pub async fn cache_guard_is_quiet_on_a_busy_subtree(h: &dyn Harness) {
    use crate::cache::{Audit, CacheOptions, TreeCache};
    let a = h.client().await;
    let b = h.client().await;
    let nodes = format!("{}/nodes", root());
    Store::new(b.clone())
        .ensure_path(&nodes)
        .await
        .expect("root");
    let options = CacheOptions {
        audit: Some(Audit {
            interval: Duration::from_millis(10),
            grace: Duration::from_secs(1),
        }),
        ..CacheOptions::default()
    };
    let cache = TreeCache::start_with_options(a, &nodes, options)
        .await
        .expect("cache");
    for i in 0..100 {
        let path = format!("{nodes}/{i:010}");
        b.create(&path, b"0", CreateMode::Persistent, false)
            .await
            .expect("create");
        b.set(&path, b"1", None).await.expect("set");
        if i % 3 == 0 {
            b.delete(&path, None).await.expect("delete");
        }
    }
    let last = format!("{nodes}/last");
    b.create(&last, b"", CreateMode::Persistent, false)
        .await
        .expect("create");
    cache_until(&cache, "the last change", |c| c.get(&last).is_some()).await;
    // Judgements started during the churn end within their grace.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(stale_count(&nodes), 0, "a live cache is never called stale");
}

/// A cache started on a [`Store`]'s backend shows the process's own writes as soon as they
/// are answered and does not read them back when their events arrive; another client's
/// write after them is read.
pub async fn cache_takes_own_writes_without_reading_them(h: &dyn Harness) {
    use crate::cache::Changes;
    let a = h.client().await;
    let b = h.client().await;
    let counter = Arc::new(Instrumented::new(a));
    let store = Store::new(counter.clone());
    let nodes = format!("{}/nodes", root());
    let one = format!("{nodes}/0000000001");
    store.ensure_path(&nodes).await.expect("root");
    let cache = crate::cache::TreeCache::start(store.backend().clone(), &nodes)
        .await
        .expect("cache");
    // Created after the cache started, so the cache counts its changes.
    b.create(&one, b"theirs 0", CreateMode::Persistent, false)
        .await
        .expect("create");
    cache_until(&cache, "the new znode", |c| {
        c.get(&one).is_some_and(|e| e.data == b"theirs 0")
    })
    .await;

    let reads = counter.gets();
    let generation = *cache.generation().borrow();
    let stat = store
        .backend()
        .set(&one, b"mine 1", Some(0))
        .await
        .expect("set");
    let entry = cache.get(&one).expect("cached");
    assert_eq!(
        (entry.data.as_slice(), entry.stat.version),
        (&b"mine 1"[..], 1)
    );
    assert_eq!(entry.stat, stat);
    store
        .multi(vec![Op::set(&one, b"mine 2".to_vec(), Some(1))])
        .await
        .expect("multi");
    assert_eq!(cache.get(&one).expect("cached").data, b"mine 2");
    cache_until(&cache, "both events applied", |c| {
        matches!(c.changes_since(generation), Changes::Paths(_, p) if p.contains(&one))
            && c.get(&one).is_some_and(|e| e.data == b"mine 2")
    })
    .await;
    // Let the second event through too: a write by the other client comes after both.
    b.set(&one, b"theirs 3", Some(2)).await.expect("their set");
    cache_until(&cache, "the other client's write", |c| {
        c.get(&one).is_some_and(|e| e.data == b"theirs 3")
    })
    .await;
    assert_eq!(
        counter.gets() - reads,
        1,
        "only the other client's write was read back"
    );
}

pub async fn multi_is_atomic(h: &dyn Harness) {
    let c = h.client().await;
    let root = root();
    let kept = format!("{root}/kept");
    c.create(&kept, b"before", CreateMode::Persistent, true)
        .await
        .expect("create");
    assert_eq!(c.multi(Vec::new()).await.expect("empty multi"), Vec::new());
    let fresh = format!("{root}/fresh");
    let missing = format!("{root}/missing");
    let failures = [
        (
            vec![
                Op::create(fresh.clone(), b"x".to_vec(), CreateMode::Persistent),
                Op::set(kept.clone(), b"after".to_vec(), None),
                Op::delete(missing.clone(), None),
            ],
            StoreError::NoNode(missing.clone()),
        ),
        (
            vec![
                Op::create(fresh.clone(), b"x".to_vec(), CreateMode::Persistent),
                Op::set(kept.clone(), b"after".to_vec(), Some(7)),
            ],
            StoreError::BadVersion(kept.clone()),
        ),
        (
            vec![
                Op::set(kept.clone(), b"after".to_vec(), None),
                Op::check(kept.clone(), Some(0)),
            ],
            StoreError::BadVersion(kept.clone()),
        ),
        (
            vec![
                Op::create(fresh.clone(), b"x".to_vec(), CreateMode::Persistent),
                Op::create(kept.clone(), b"x".to_vec(), CreateMode::Persistent),
            ],
            StoreError::NodeExists(kept.clone()),
        ),
        (
            vec![
                Op::create(
                    format!("{fresh}/child"),
                    b"".to_vec(),
                    CreateMode::Persistent,
                ),
                Op::create(fresh.clone(), b"x".to_vec(), CreateMode::Persistent),
            ],
            // A missing parent names the parent, as `create` does.
            StoreError::NoNode(fresh.clone()),
        ),
        (
            vec![
                Op::create(
                    format!("{kept}/child"),
                    b"".to_vec(),
                    CreateMode::Persistent,
                ),
                Op::delete(kept.clone(), None),
            ],
            StoreError::NotEmpty(kept.clone()),
        ),
        (
            vec![
                Op::set(kept.clone(), b"after".to_vec(), None),
                Op::check(missing.clone(), None),
            ],
            StoreError::NoNode(missing.clone()),
        ),
        (
            // The first failing operation's error.
            vec![
                Op::delete(missing.clone(), None),
                Op::create(kept.clone(), b"x".to_vec(), CreateMode::Persistent),
            ],
            StoreError::NoNode(missing.clone()),
        ),
    ];
    for (ops, expected) in failures {
        let described = format!("{ops:?}");
        assert_eq!(
            c.multi(ops).await,
            Err(expected),
            "the first failing operation's error for {described}"
        );
        // No trace of the operations before the failing one.
        assert!(
            c.exists(&fresh).await.expect("exists").is_none(),
            "{described}"
        );
        let (data, stat) = c.get(&kept).await.expect("get").expect("kept");
        assert_eq!(
            (data.as_slice(), stat.version),
            (&b"before"[..], 0),
            "{described}"
        );
        assert!(
            c.children(&kept).await.expect("children").is_empty(),
            "{described}"
        );
    }
    assert!(matches!(
        c.multi(vec![Op::create(
            "relative",
            b"".to_vec(),
            CreateMode::Persistent
        )])
        .await,
        Err(StoreError::BadPath(_))
    ));
    // Operations see the effects of those before them.
    let results = c
        .multi(vec![
            Op::create(fresh.clone(), b"1".to_vec(), CreateMode::Persistent),
            Op::set(fresh.clone(), b"2".to_vec(), Some(0)),
            Op::check(fresh.clone(), Some(1)),
            Op::create(
                format!("{fresh}/child"),
                b"".to_vec(),
                CreateMode::Persistent,
            ),
            Op::delete(format!("{fresh}/child"), Some(0)),
            Op::set(kept.clone(), b"after".to_vec(), Some(0)),
            Op::delete(kept.clone(), Some(1)),
        ])
        .await
        .expect("multi");
    assert_eq!(results.len(), 7);
    assert_eq!(results[0], OpResult::Created(fresh.clone()));
    assert!(matches!(&results[1], OpResult::Set(stat) if stat.version == 1));
    assert_eq!(results[2], OpResult::Checked);
    assert_eq!(results[3], OpResult::Created(format!("{fresh}/child")));
    assert_eq!(results[4], OpResult::Deleted);
    assert!(matches!(&results[5], OpResult::Set(stat) if stat.version == 1));
    assert_eq!(results[6], OpResult::Deleted);
    let (data, stat) = c.get(&fresh).await.expect("get").expect("created");
    assert_eq!((data.as_slice(), stat.version), (&b"2"[..], 1));
    assert!(c.children(&fresh).await.expect("children").is_empty());
    assert!(c.exists(&kept).await.expect("exists").is_none());
}

pub async fn multi_sequential_and_ephemeral(h: &dyn Harness) {
    let a = h.client().await;
    let b = h.client().await;
    let root = root();
    let record = format!("{root}/nodes/0000000001");
    a.create(&record, b"init", CreateMode::Persistent, true)
        .await
        .expect("create");
    let dir = format!("{record}/lock");
    let results = a
        .multi(vec![
            Op::create(dir.clone(), b"".to_vec(), CreateMode::Persistent),
            Op::create(
                lock::contender_prefix(&dir),
                b"".to_vec(),
                CreateMode::EphemeralSequential,
            ),
            Op::create(
                format!("{dir}/other-"),
                b"".to_vec(),
                CreateMode::PersistentSequential,
            ),
            Op::set(record.clone(), b"building".to_vec(), None),
        ])
        .await
        .expect("multi");
    let contender = results[1].created_path().expect("created").to_string();
    assert!(
        contender.starts_with(&format!("{dir}/")) && contender.ends_with("__lock__0000000000"),
        "{contender}"
    );
    assert_eq!(
        results[2].created_path(),
        Some(format!("{dir}/other-0000000001").as_str())
    );
    let stat = b
        .exists(&contender)
        .await
        .expect("exists")
        .expect("visible");
    assert_eq!(stat.ephemeral_owner, a.session_id());
    assert_eq!(
        b.get(&record).await.expect("get").expect("record").0,
        b"building"
    );
    // The contender of a directory made in the same transaction holds the lock.
    let held = Lock::from_created(a.clone(), contender.clone(), &dir);
    assert!(held.is_held().await.expect("held"));
    let other = Store::new(b.clone());
    assert!(
        other
            .lock(&dir, "", LockWait::NonBlocking)
            .await
            .expect("try")
            .is_none(),
        "another client sees the lock held"
    );
    // Released inside a transaction, with the directory.
    a.multi(vec![
        held.release_op(),
        Op::delete(format!("{dir}/other-0000000001"), None),
        Op::delete(dir.clone(), None),
        Op::delete(record.clone(), None),
    ])
    .await
    .expect("release and delete");
    held.released();
    assert!(b.exists(&record).await.expect("exists").is_none());
    // Ephemerals created in a transaction vanish with the session.
    let scratch = format!("{root}/scratch");
    let results = a
        .multi(vec![
            Op::create(scratch.clone(), b"".to_vec(), CreateMode::Persistent),
            Op::create(format!("{scratch}/e"), b"".to_vec(), CreateMode::Ephemeral),
        ])
        .await
        .expect("multi");
    assert_eq!(results[1], OpResult::Created(format!("{scratch}/e")));
    assert!(matches!(
        a.multi(vec![Op::create(
            format!("{scratch}/e/child"),
            b"".to_vec(),
            CreateMode::Persistent
        )])
        .await,
        Err(StoreError::NoChildrenForEphemerals(_))
    ));
    a.close().await.expect("close");
    assert!(
        b.exists(&format!("{scratch}/e"))
            .await
            .expect("exists")
            .is_none()
    );
    assert!(b.exists(&scratch).await.expect("exists").is_some());
}

pub async fn multi_watch_events(h: &dyn Harness) {
    let a = h.client().await;
    let b = h.client().await;
    let root = root();
    Store::new(a.clone())
        .ensure_path(&root)
        .await
        .expect("ensure");
    let mut watch = a.watch(&root).await.expect("watch");
    let path = format!("{root}/x");
    // A failed transaction leaves no events.
    assert!(
        b.multi(vec![
            Op::create(
                format!("{root}/ghost"),
                b"".to_vec(),
                CreateMode::Persistent
            ),
            Op::delete(format!("{root}/missing"), None),
        ])
        .await
        .is_err()
    );
    b.multi(vec![
        Op::create(path.clone(), b"1".to_vec(), CreateMode::Persistent),
        Op::set(path.clone(), b"2".to_vec(), None),
        Op::create(format!("{path}/deep"), b"".to_vec(), CreateMode::Persistent),
        Op::check(path.clone(), Some(1)),
        Op::delete(format!("{path}/deep"), None),
    ])
    .await
    .expect("multi");
    b.set(&path, b"3", None).await.expect("set");
    let mut seen = Vec::new();
    for _ in 0..5 {
        seen.push(next_event(&mut watch, |e| !matches!(e, WatchEvent::Resync)).await);
    }
    assert_eq!(
        seen,
        vec![
            WatchEvent::Created(path.clone()),
            WatchEvent::Changed(path.clone()),
            WatchEvent::Created(format!("{path}/deep")),
            WatchEvent::Deleted(format!("{path}/deep")),
            WatchEvent::Changed(path.clone()),
        ]
    );
}

pub async fn node_lock_and_delete_in_one_transaction(h: &dyn Harness) {
    use nodepool_model::{Node, NodeState};
    let a = Store::new(h.client().await);
    let b = Store::new(h.client().await);
    let mut node = Node::new(NodeState::Init, 1.0);
    node.provider = Some("fake".into());
    let id = a.nodes().create(&mut node).await.expect("create");
    node.set_state(NodeState::Building, 2.0);
    let held = a
        .nodes()
        .lock_new(id, &node)
        .await
        .expect("lock")
        .expect("the only contender holds the lock");
    let stored = b.nodes().get(id).await.expect("get").expect("stored");
    assert_eq!(stored.value.state, NodeState::Building);
    assert_eq!(
        b.nodes().lock_contenders(id).await.expect("contenders"),
        vec![held.node().rsplit('/').next().expect("name").to_string()]
    );
    assert!(
        b.nodes()
            .lock(id, LockWait::NonBlocking)
            .await
            .expect("try")
            .is_none()
    );
    // The directory exists now: a second attempt goes through the recipe and loses.
    assert!(b.nodes().lock_new(id, &node).await.expect("try").is_none());
    assert_eq!(
        b.nodes()
            .lock_contenders(id)
            .await
            .expect("contenders")
            .len(),
        1
    );
    // Nobody else contends: record, lock directory and contender go in one step.
    let mut current = b.nodes().get(id).await.expect("get").expect("stored").value;
    a.nodes()
        .delete_locked(id, &mut current, held, 3.0)
        .await
        .expect("delete");
    assert!(b.nodes().get(id).await.expect("get").is_none());
    assert!(
        b.backend()
            .exists(&crate::paths::node_lock(id))
            .await
            .expect("exists")
            .is_none()
    );
    // Another contender waits: the two-step delete runs and still removes the record.
    let id = a.nodes().create(&mut node).await.expect("create");
    let held = a
        .nodes()
        .lock_new(id, &node)
        .await
        .expect("lock")
        .expect("held");
    let contender = b
        .backend()
        .create(
            &lock::contender_prefix(&crate::paths::node_lock(id)),
            b"",
            CreateMode::EphemeralSequential,
            false,
        )
        .await
        .expect("contend");
    let mut current = b.nodes().get(id).await.expect("get").expect("stored").value;
    a.nodes()
        .delete_locked(id, &mut current, held, 4.0)
        .await
        .expect("delete");
    assert!(b.nodes().get(id).await.expect("get").is_none());
    assert!(
        b.backend()
            .exists(&contender)
            .await
            .expect("exists")
            .is_none()
    );
}

/// Expands to one test per conformance case; `$harness` is an async expression giving a
/// value implementing [`Harness`].
#[macro_export]
macro_rules! conformance_tests {
    ($harness:expr) => {
        $crate::conformance_tests!(@cases $harness;
            round_trip, sequence_ids, ephemerals_vanish_with_session, lock_exclusion,
            lock_with_guessed_directory, lock_without_recreating_a_deleted_parent,
            lock_fairness, watch_delivery, session_expiry_mid_lock, watch_after_reconnect,
            concurrent_compare_and_set, cache_follows_changes, cache_journal_names_changes,
            cache_follows_existence_only, cache_takes_own_writes_without_reading_them,
            cache_guard_repairs_a_deaf_watch, cache_guard_is_quiet_on_a_busy_subtree,
            multi_is_atomic,
            multi_sequential_and_ephemeral, multi_watch_events,
            node_lock_and_delete_in_one_transaction);
    };
    (@cases $harness:expr; $($case:ident),*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let harness = $harness;
                $crate::testing::$case(&harness).await;
            }
        )*
    };
}

/// What a backend whose service can be interrupted while sessions live provides to the
/// outage cases ([`outage_tests!`]): a ZooKeeper server killed and started again on its
/// data, an ensemble's leader killed. Sessions survive such an outage; what the cases check
/// is that everything a client had registered (persistent and one-shot watches, caches, lock
/// waiters) works again afterwards on the same session.
#[async_trait]
pub trait OutageHarness: Send + Sync {
    /// A new client with its own session.
    async fn client(&self) -> Arc<dyn Backend>;
    /// Interrupts the service every client of this harness uses, without expiring sessions,
    /// and returns once it serves again (clients may still be reconnecting).
    async fn outage(&self);
}

/// Waits until `client` is connected again after an outage, then makes one round trip on
/// it: requests on one connection are answered in order, so whatever the client re-sent on
/// reconnecting (its watches) has reached the server when this returns.
async fn reconnected(client: &Arc<dyn Backend>, session: i64) {
    let mut states = client.session_state();
    tokio::time::timeout(WAIT, states.wait_for(|s| *s == SessionState::Connected))
        .await
        .expect("the client reconnects after the outage")
        .expect("the backend is alive");
    tokio::time::timeout(WAIT, async {
        // A connection can drop again while an ensemble settles: retry until one answers.
        while client.exists("/").await.is_err() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the client answers after reconnecting");
    assert_eq!(
        client.session_id(),
        session,
        "the session survives the outage (it must not have expired)"
    );
}

/// A client connected after the outage, to make changes with.
async fn fresh_client(h: &dyn OutageHarness) -> Arc<dyn Backend> {
    let client = h.client().await;
    let session = client.session_id();
    reconnected(&client, session).await;
    client
}

pub async fn watch_sees_changes_after_outage(h: &dyn OutageHarness) {
    let a = h.client().await;
    let root = root();
    let old = format!("{root}/old");
    a.create(&old, b"1", CreateMode::Persistent, true)
        .await
        .expect("seed");
    let mut watch = a.watch(&root).await.expect("watch");
    let session = a.session_id();

    h.outage().await;
    reconnected(&a, session).await;
    let b = fresh_client(h).await;
    let new = format!("{root}/new");
    b.create(&new, b"", CreateMode::Persistent, false)
        .await
        .expect("create");
    assert_eq!(
        next_event(&mut watch, |e| !matches!(e, WatchEvent::Resync)).await,
        WatchEvent::Created(new),
        "a create after the outage is seen"
    );
    b.set(&old, b"2", None).await.expect("set");
    assert_eq!(
        next_event(&mut watch, |e| !matches!(e, WatchEvent::Resync)).await,
        WatchEvent::Changed(old.clone()),
        "a set after the outage is seen"
    );
    b.delete(&old, None).await.expect("delete");
    assert_eq!(
        next_event(&mut watch, |e| !matches!(e, WatchEvent::Resync)).await,
        WatchEvent::Deleted(old),
        "a delete after the outage is seen"
    );
}

pub async fn cache_follows_changes_after_outage(h: &dyn OutageHarness) {
    let a = h.client().await;
    let root = root();
    let nodes = format!("{root}/nodes");
    let old = format!("{nodes}/0000000001");
    a.create(&old, b"before", CreateMode::Persistent, true)
        .await
        .expect("seed");
    let cache = crate::cache::TreeCache::start(a.clone(), &nodes)
        .await
        .expect("cache");
    let session = a.session_id();

    h.outage().await;
    reconnected(&a, session).await;
    let b = fresh_client(h).await;
    let new = format!("{nodes}/0000000002");
    b.create(&new, b"new", CreateMode::Persistent, false)
        .await
        .expect("create");
    cache_until(&cache, "the node created after the outage", |c| {
        c.get(&new).is_some_and(|e| e.data == b"new")
    })
    .await;
    b.set(&old, b"after", None).await.expect("set");
    cache_until(&cache, "the data set after the outage", |c| {
        c.get(&old).is_some_and(|e| e.data == b"after")
    })
    .await;
    b.delete(&old, None).await.expect("delete");
    cache_until(&cache, "the node deleted after the outage gone", |c| {
        c.get(&old).is_none()
    })
    .await;
}

pub async fn lock_waiter_after_outage(h: &dyn OutageHarness) {
    let a = h.client().await;
    let b = h.client().await;
    let dir = format!("{}/images/debian/lock", root());
    let held = Store::new(a.clone())
        .lock(&dir, "", LockWait::NonBlocking)
        .await
        .expect("lock")
        .expect("free lock is acquired");
    let (a_session, b_session) = (a.session_id(), b.session_id());
    // The waiter watches its predecessor with a one-shot watch.
    let waiter = {
        let b = Store::new(b.clone());
        let dir = dir.clone();
        tokio::spawn(async move { b.lock(&dir, "", LockWait::Timeout(WAIT * 2)).await })
    };
    wait_for_contenders(&Store::new(a.clone()), &dir, 2).await;

    h.outage().await;
    reconnected(&a, a_session).await;
    reconnected(&b, b_session).await;
    held.release().await.expect("release after the outage");
    let taken = waiter
        .await
        .expect("waiter task")
        .expect("the waiter's lock call succeeds")
        .expect("the waiter gets the lock once it is released after the outage");
    taken.release().await.expect("release");
}

/// Expands to one test per outage case; `$harness` is an async expression giving a value
/// implementing [`OutageHarness`].
#[macro_export]
macro_rules! outage_tests {
    ($harness:expr) => {
        $crate::outage_tests!(@cases $harness;
            watch_sees_changes_after_outage, cache_follows_changes_after_outage,
            lock_waiter_after_outage);
    };
    (@cases $harness:expr; $($case:ident),*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let harness = $harness;
                $crate::testing::$case(&harness).await;
            }
        )*
    };
}
