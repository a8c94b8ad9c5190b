//! Our locks and kazoo's (the client Python Nodepool and Zuul use) on one real ZooKeeper
//! over TLS: each side sees the other's contender and neither acquires while the other
//! holds the lock. The Python side is `kazoo_lock.py` in the venv `scripts/setup.sh` makes.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use nodepool_model::{NodeId, RequestId};
use nodepool_store::{LockWait, Store};
use nodepool_store_zk::{ZooKeeperBackend, ZooKeeperOptions, ZooKeeperTls};
use nodepool_testkit::{ServerOptions, ZooKeeperServer};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};

const LINE_WAIT: Duration = Duration::from_secs(60);

fn server() -> &'static ZooKeeperServer {
    static SERVER: OnceLock<ZooKeeperServer> = OnceLock::new();
    SERVER.get_or_init(|| {
        ZooKeeperServer::start(ServerOptions::with_tls())
            .unwrap_or_else(|e| panic!("a ZooKeeper server with a TLS port starts: {e}"))
    })
}

fn python() -> PathBuf {
    let venv =
        std::env::var("NODEPOOL_TEST_VENV").unwrap_or_else(|_| "/var/tmp/nodepool-venv".into());
    let python = PathBuf::from(venv).join("bin/python");
    assert!(
        python.exists(),
        "{} exists: run scripts/setup.sh to create the kazoo venv",
        python.display()
    );
    python
}

async fn our_store() -> Store {
    let server = server();
    let files = server.client_tls().expect("TLS files");
    let mut options = ZooKeeperOptions::new([server.tls_address().expect("TLS port")]);
    options.tls = Some(ZooKeeperTls {
        cert: files.cert.clone(),
        key: files.key.clone(),
        ca: files.ca.clone(),
    });
    let backend = ZooKeeperBackend::connect(options)
        .await
        .unwrap_or_else(|e| panic!("we connect over TLS: {e}"));
    Store::new(Arc::new(backend))
}

/// A kazoo process working on the lock at `path`.
struct Kazoo {
    child: Child,
    lines: Lines<BufReader<ChildStdout>>,
}

impl Kazoo {
    fn start(path: &str, mode: &str) -> Kazoo {
        let server = server();
        let files = server.client_tls().expect("TLS files");
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/kazoo_lock.py");
        let mut child = Command::new(python())
            .arg(script)
            .arg(server.tls_address().expect("TLS port"))
            .arg(path)
            .arg(mode)
            .arg("--tls")
            .args([&files.ca, &files.cert, &files.key])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("the kazoo script starts");
        let stdout = child.stdout.take().expect("stdout");
        Kazoo {
            child,
            lines: BufReader::new(stdout).lines(),
        }
    }

    async fn line(&mut self) -> String {
        tokio::time::timeout(LINE_WAIT, self.lines.next_line())
            .await
            .expect("kazoo answers in time")
            .expect("kazoo's output is readable")
            .expect("kazoo printed a line before exiting")
    }

    /// Lets a `hold` process release its lock.
    async fn release(&mut self) {
        let stdin = self.child.stdin.as_mut().expect("stdin");
        stdin.write_all(b"\n").await.expect("write to kazoo");
        stdin.flush().await.expect("flush");
        assert_eq!(self.line().await, "RELEASED");
    }

    async fn finish(mut self) {
        let status = tokio::time::timeout(LINE_WAIT, self.child.wait())
            .await
            .expect("kazoo exits")
            .expect("wait");
        assert!(status.success(), "kazoo exited with {status}");
    }
}

/// One non-blocking kazoo attempt: `ACQUIRED` or `BUSY`.
async fn kazoo_try(path: &str) -> String {
    let mut kazoo = Kazoo::start(path, "try");
    let answer = kazoo.line().await;
    kazoo.finish().await;
    answer
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_lock_held_by_kazoo_excludes_us_until_released() {
    let store = our_store().await;
    let id = NodeId::new(41);
    let path = "/nodepool/nodes/0000000041/lock";
    let mut kazoo = Kazoo::start(path, "hold");
    assert_eq!(kazoo.line().await, "ACQUIRED");
    assert!(
        store
            .nodes()
            .lock(id, LockWait::NonBlocking)
            .await
            .expect("try")
            .is_none(),
        "kazoo's lock excludes us"
    );
    assert_eq!(
        store
            .nodes()
            .lock_contenders(id)
            .await
            .expect("contenders")
            .len(),
        1,
        "we see kazoo's contender"
    );
    let waiter = {
        let store = store.clone();
        tokio::spawn(async move { store.nodes().lock(id, LockWait::Timeout(LINE_WAIT)).await })
    };
    kazoo.release().await;
    kazoo.finish().await;
    let ours = waiter
        .await
        .expect("join")
        .expect("lock")
        .expect("we get the lock once kazoo releases it");
    assert_eq!(kazoo_try(path).await, "BUSY", "our lock excludes kazoo");
    ours.release().await.expect("release");
    assert_eq!(kazoo_try(path).await, "ACQUIRED");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_lock_held_by_us_excludes_kazoo_until_released() {
    let store = our_store().await;
    let id = RequestId::parse("200-0000000007").expect("id");
    let path = "/nodepool/requests-lock/200-0000000007";
    let ours = store
        .requests()
        .lock(&id, LockWait::NonBlocking)
        .await
        .expect("lock")
        .expect("free");
    assert_eq!(kazoo_try(path).await, "BUSY", "our lock excludes kazoo");
    let mut contenders = Kazoo::start(path, "contenders");
    assert_eq!(
        contenders.line().await,
        "",
        "kazoo sees our contender (identifier empty, as Nodepool's)"
    );
    assert_eq!(contenders.line().await, "END");
    contenders.finish().await;
    // kazoo queues behind us and gets the lock when we release it.
    let mut kazoo = Kazoo::start(path, "hold");
    let queued = async {
        while store
            .backend()
            .children(path)
            .await
            .expect("children")
            .len()
            < 2
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(LINE_WAIT, queued)
        .await
        .expect("kazoo's contender appears");
    ours.release().await.expect("release");
    assert_eq!(kazoo.line().await, "ACQUIRED");
    assert!(
        store
            .requests()
            .lock(&id, LockWait::NonBlocking)
            .await
            .expect("try")
            .is_none(),
        "kazoo's lock excludes us"
    );
    kazoo.release().await;
    kazoo.finish().await;
    let again = store
        .requests()
        .lock(&id, LockWait::NonBlocking)
        .await
        .expect("lock")
        .expect("free again");
    again.release().await.expect("release");
}
