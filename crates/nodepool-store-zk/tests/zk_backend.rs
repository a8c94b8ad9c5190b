//! ZooKeeper-specific behaviour beyond the conformance suite: connection errors, chroot,
//! sequence numbering, partitions (Suspended) and stalls past the session timeout (Lost),
//! server restarts, close and drop.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use nodepool_store::{Backend, CreateMode, SessionState, StoreError, WatchEvent};
use nodepool_store_zk::{ConnectError, ZooKeeperBackend, ZooKeeperOptions, ZooKeeperTls};
use nodepool_testkit::{ServerOptions, TcpProxy, ZooKeeperServer};
use tokio::sync::watch;

/// Generous limit for things that normally take milliseconds.
const WAIT: Duration = Duration::from_secs(20);

fn server() -> &'static ZooKeeperServer {
    static SERVER: OnceLock<ZooKeeperServer> = OnceLock::new();
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    SERVER.get_or_init(|| {
        ZooKeeperServer::start(ServerOptions::default())
            .unwrap_or_else(|e| panic!("a ZooKeeper server starts: {e}"))
    })
}

fn root() -> String {
    format!("/zk-backend-{}", uuid::Uuid::new_v4().simple())
}

async fn connect(options: ZooKeeperOptions) -> Arc<ZooKeeperBackend> {
    Arc::new(
        ZooKeeperBackend::connect(options)
            .await
            .unwrap_or_else(|e| panic!("a client connects to the test server: {e}")),
    )
}

async fn direct_client() -> Arc<ZooKeeperBackend> {
    connect(ZooKeeperOptions::new([server().plain_address()])).await
}

/// A client behind its own proxy, so the test can cut it off alone.
async fn proxied_client(session_timeout: Duration) -> (Arc<ZooKeeperBackend>, TcpProxy) {
    let proxy = TcpProxy::start(server().plain_address())
        .await
        .unwrap_or_else(|e| panic!("a proxy to the test server starts: {e}"));
    let mut options = ZooKeeperOptions::new([proxy.address()]);
    options.session_timeout = session_timeout;
    (connect(options).await, proxy)
}

async fn wait_for_state(states: &mut watch::Receiver<SessionState>, want: SessionState) {
    tokio::time::timeout(WAIT, states.wait_for(|state| *state == want))
        .await
        .unwrap_or_else(|_| panic!("the session state becomes {want:?} within {WAIT:?}"))
        .unwrap_or_else(|_| panic!("the backend is alive while waiting for {want:?}"));
}

async fn next_event(watch: &mut nodepool_store::Watch) -> WatchEvent {
    tokio::time::timeout(WAIT, watch.events.recv())
        .await
        .unwrap_or_else(|_| panic!("a watch event arrives within {WAIT:?}"))
        .unwrap_or_else(|| panic!("the watch stays open"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sequence_numbers_count_creates_not_deletes() {
    let client = direct_client().await;
    let dir = format!("{}/requests", root());
    client
        .create(&dir, b"", CreateMode::Persistent, true)
        .await
        .expect("create the parent");
    let first = client
        .create(
            &format!("{dir}/100-"),
            b"",
            CreateMode::PersistentSequential,
            false,
        )
        .await
        .expect("first sequential create");
    let second = client
        .create(
            &format!("{dir}/200-"),
            b"",
            CreateMode::EphemeralSequential,
            false,
        )
        .await
        .expect("second sequential create");
    assert_eq!(
        first,
        format!("{dir}/100-0000000000"),
        "the first suffix is 0"
    );
    assert_eq!(
        second,
        format!("{dir}/200-0000000001"),
        "the second suffix is 1"
    );
    client.delete(&first, None).await.expect("delete the first");
    let third = client
        .create(
            &format!("{dir}/"),
            b"",
            CreateMode::PersistentSequential,
            false,
        )
        .await
        .expect("third sequential create");
    assert_eq!(
        third,
        format!("{dir}/0000000002"),
        "ZooKeeper's suffix counts child creations only, not deletions"
    );
    let stat = client
        .exists(&dir)
        .await
        .expect("exists")
        .expect("the parent exists");
    assert_eq!(
        stat.cversion, 4,
        "the reported cversion counts creations and deletions (3 + 1)"
    );
    assert_eq!(stat.num_children, 2, "two children are left");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_gives_up_with_a_clear_error() {
    // A port nobody listens on: bind one, then free it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let mut options = ZooKeeperOptions::new([format!("127.0.0.1:{port}")]);
    options.connect_timeout = Duration::from_secs(2);
    let started = std::time::Instant::now();
    let error = ZooKeeperBackend::connect(options)
        .await
        .expect_err("connecting to a closed port fails");
    assert!(
        matches!(error, ConnectError::Unreachable { .. }),
        "an unreachable server is reported as Unreachable, got {error:?}"
    );
    assert!(
        error.to_string().contains(&format!("127.0.0.1:{port}")),
        "the error names the servers: {error}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "connect gives up near its deadline, took {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn configuration_errors_are_reported_before_connecting() {
    let mut options = ZooKeeperOptions::new(["127.0.0.1:1"]);
    options.tls = Some(ZooKeeperTls {
        cert: "/nonexistent/client.pem".into(),
        key: "/nonexistent/client.key".into(),
        ca: "/nonexistent/ca.pem".into(),
    });
    let error = ZooKeeperBackend::connect(options)
        .await
        .expect_err("missing TLS files fail");
    assert!(
        matches!(&error, ConnectError::TlsFile { what: "cert", path, .. }
            if path.to_str() == Some("/nonexistent/client.pem")),
        "a missing TLS file is named, got {error:?}"
    );

    let no_servers = ZooKeeperBackend::connect(ZooKeeperOptions::new(Vec::<String>::new()))
        .await
        .expect_err("no servers fail");
    assert!(
        matches!(no_servers, ConnectError::NoServers),
        "an empty server list is NoServers, got {no_servers:?}"
    );

    let mut bad_chroot = ZooKeeperOptions::new(["127.0.0.1:1"]);
    bad_chroot.chroot = Some("relative/path".into());
    let error = ZooKeeperBackend::connect(bad_chroot)
        .await
        .expect_err("a relative chroot fails");
    assert!(
        matches!(error, ConnectError::BadChroot(_)),
        "a relative chroot is BadChroot, got {error:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chroot_is_created_and_applied_to_every_path() {
    let chroot = format!("{}/deeper", root());
    let mut options = ZooKeeperOptions::new([server().plain_address()]);
    options.chroot = Some(chroot.clone());
    let rooted = connect(options).await;
    let direct = direct_client().await;
    assert!(
        direct.exists(&chroot).await.expect("exists").is_some(),
        "connecting creates the chroot and its ancestors"
    );

    let mut watch = rooted.watch("/nodepool").await.expect("watch");
    let node = rooted
        .create(
            "/nodepool/nodes/",
            b"{}",
            CreateMode::PersistentSequential,
            true,
        )
        .await
        .expect("create under the chroot");
    assert_eq!(
        node, "/nodepool/nodes/0000000000",
        "paths returned are relative to the chroot"
    );
    assert_eq!(
        direct
            .get(&format!("{chroot}{node}"))
            .await
            .expect("get")
            .map(|(data, _)| data),
        Some(b"{}".to_vec()),
        "the znode lives under the chroot"
    );
    // The watched path did not exist: its creation is reported too.
    for parent in ["/nodepool", "/nodepool/nodes"] {
        assert_eq!(
            next_event(&mut watch).await,
            WatchEvent::Created(parent.into()),
            "watch events name chroot-relative paths, ancestors first"
        );
    }
    assert_eq!(
        next_event(&mut watch).await,
        WatchEvent::Created(node.clone()),
        "then the node itself"
    );
    assert_eq!(
        rooted.children("/").await.expect("children of the chroot"),
        vec!["nodepool".to_string()],
        "`/` is the chroot"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_deleted_sees_deletion_and_times_out() {
    let waiter = direct_client().await;
    let owner = direct_client().await;
    let path = format!("{}/gone-soon", root());
    owner
        .create(&path, b"", CreateMode::Ephemeral, true)
        .await
        .expect("create");
    assert!(
        !waiter
            .wait_deleted(&path, Some(Duration::from_millis(200)))
            .await
            .expect("wait"),
        "an existing znode is not reported gone after the timeout"
    );
    let waiting = {
        let waiter = waiter.clone();
        let path = path.clone();
        tokio::spawn(async move { waiter.wait_deleted(&path, Some(WAIT)).await })
    };
    // A data change is not a deletion.
    owner.set(&path, b"changed", None).await.expect("set");
    owner.delete(&path, None).await.expect("delete");
    assert!(
        waiting.await.expect("join").expect("wait"),
        "the deletion is seen"
    );
    assert!(
        waiter.wait_deleted(&path, None).await.expect("wait"),
        "an absent znode is gone at once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partition_suspends_and_keeps_the_session() {
    let (client, proxy) = proxied_client(Duration::from_secs(10)).await;
    let other = direct_client().await;
    let root = root();
    let ephemeral = format!("{root}/mine");
    client
        .create(&ephemeral, b"", CreateMode::Ephemeral, true)
        .await
        .expect("create");
    let session = client.session_id();
    let mut states = client.session_state();
    let mut watch = client.watch(&root).await.expect("watch");

    proxy.cut();
    wait_for_state(&mut states, SessionState::Suspended).await;
    // A change the partitioned client cannot see as it happens.
    let made_meanwhile = format!("{root}/made-meanwhile");
    other
        .create(&made_meanwhile, b"", CreateMode::Persistent, false)
        .await
        .expect("create while partitioned");
    proxy.restore();
    wait_for_state(&mut states, SessionState::Connected).await;

    assert_eq!(client.session_id(), session, "the session survives");
    assert!(
        other.exists(&ephemeral).await.expect("exists").is_some(),
        "its ephemerals survive"
    );
    let event = next_event(&mut watch).await;
    assert!(
        event == WatchEvent::Resync || event == WatchEvent::Created(made_meanwhile.clone()),
        "after a reconnect the watcher is told to re-list (or sees the change), got {event:?}"
    );
    assert!(
        client
            .exists(&made_meanwhile)
            .await
            .expect("exists")
            .is_some(),
        "re-listing finds the change made meanwhile"
    );
    // The watch itself is registered again on the reconnected session.
    let made_after = format!("{root}/made-after");
    other
        .create(&made_after, b"", CreateMode::Persistent, false)
        .await
        .expect("create after the partition");
    loop {
        match next_event(&mut watch).await {
            WatchEvent::Created(path) if path == made_after => break,
            WatchEvent::Resync => continue,
            WatchEvent::Created(path) if path == made_meanwhile => continue,
            other => panic!("unexpected event after the partition: {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stall_past_the_timeout_loses_the_session_and_starts_a_new_one() {
    // The server's minimum is 400 ms; one second keeps this test short.
    let (client, proxy) = proxied_client(Duration::from_secs(1)).await;
    let other = direct_client().await;
    let root = root();
    let ephemeral = format!("{root}/mine");
    client
        .create(&ephemeral, b"", CreateMode::Ephemeral, true)
        .await
        .expect("create");
    let old = client.session_id();
    let mut states = client.session_state();
    let mut watch = client.watch(&root).await.expect("watch");

    proxy.cut();
    assert!(
        other
            .wait_deleted(&ephemeral, Some(WAIT))
            .await
            .expect("wait"),
        "the server expires the stalled session and deletes its ephemerals"
    );
    wait_for_state(&mut states, SessionState::Lost).await;
    assert!(
        matches!(
            client.get(&ephemeral).await,
            Err(StoreError::SessionLost | StoreError::Suspended)
        ),
        "calls fail while the session is lost"
    );
    proxy.restore();
    wait_for_state(&mut states, SessionState::Connected).await;
    assert_ne!(client.session_id(), old, "a new session was opened");
    assert_eq!(
        next_event(&mut watch).await,
        WatchEvent::Resync,
        "the watch continues on the new session, starting with a resync"
    );
    let after = format!("{root}/after");
    other
        .create(&after, b"", CreateMode::Persistent, false)
        .await
        .expect("create");
    assert_eq!(
        next_event(&mut watch).await,
        WatchEvent::Created(after),
        "the watch is registered on the new session"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_restart_suspends_and_resumes_the_session() {
    let mut own_server =
        ZooKeeperServer::start(ServerOptions::default()).unwrap_or_else(|e| panic!("start: {e}"));
    let client = connect(ZooKeeperOptions::new([own_server.plain_address()])).await;
    let path = client
        .create("/restart/e-", b"", CreateMode::EphemeralSequential, true)
        .await
        .expect("create");
    let session = client.session_id();
    let mut states = client.session_state();

    own_server.stop().expect("stop the server");
    wait_for_state(&mut states, SessionState::Suspended).await;
    own_server
        .start_again()
        .unwrap_or_else(|e| panic!("the server starts again: {e}"));
    wait_for_state(&mut states, SessionState::Connected).await;
    assert_eq!(
        client.session_id(),
        session,
        "the session survives a quick server restart"
    );
    assert!(
        client.exists(&path).await.expect("exists").is_some(),
        "so do its ephemerals"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_and_drop_end_the_session() {
    let observer = direct_client().await;
    let root = root();

    let closed = direct_client().await;
    let closed_path = format!("{root}/closed");
    closed
        .create(&closed_path, b"", CreateMode::Ephemeral, true)
        .await
        .expect("create");
    let mut watch = closed.watch(&root).await.expect("watch");
    closed.close().await.expect("close");
    assert!(
        observer
            .exists(&closed_path)
            .await
            .expect("exists")
            .is_none(),
        "close removes the ephemerals before it returns"
    );
    assert_eq!(
        *closed.session_state().borrow(),
        SessionState::Lost,
        "a closed backend reports Lost"
    );
    assert!(
        matches!(closed.get(&closed_path).await, Err(StoreError::SessionLost)),
        "calls after close fail with SessionLost"
    );
    let ended = tokio::time::timeout(WAIT, watch.events.recv()).await;
    assert!(
        matches!(ended, Ok(None)),
        "watches end with the backend, got {ended:?}"
    );
    closed.close().await.expect("closing twice is fine");

    let dropped = direct_client().await;
    let dropped_path = format!("{root}/dropped");
    dropped
        .create(&dropped_path, b"", CreateMode::Ephemeral, true)
        .await
        .expect("create");
    drop(dropped);
    assert!(
        observer
            .wait_deleted(&dropped_path, Some(WAIT))
            .await
            .expect("wait"),
        "dropping the backend ends its session"
    );
}
