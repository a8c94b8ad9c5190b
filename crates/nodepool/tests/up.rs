//! Black-box test of `nodepool up`: one process builds the image (a fake `dib-cmd`), uploads
//! it (fake cloud), brings up the label's `min-ready` node, prints how to reach it, serves the
//! webapp, stops on SIGINT with exit 0, and a rerun reuses the build and the node.

#![allow(clippy::unwrap_used)] // tests may unwrap: a panic is a test failure

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

const BINARY: &str = env!("CARGO_BIN_EXE_nodepool");
const WAIT: Duration = Duration::from_secs(60);

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

fn write_site(dir: &Path, port: u16) {
    nodepool_testkit::fake_dib::install(dir).unwrap();
    let config = format!(
        "database: {d}/np.db\nimages-dir: {d}/images\nbuild-log-dir: {d}/logs\n\
         webapp:\n  port: {port}\n  listen_address: 127.0.0.1\n\
         labels:\n  - name: small\n    min-ready: 1\n\
         diskimages:\n  - name: image\n    dib-cmd: {d}/fake-image-create\n\
         providers:\n  - name: cloud\n    driver: fake\n    fake-state: {d}/cloud.json\n\
         \x20   diskimages:\n      - name: image\n\
         \x20   pools:\n      - name: main\n        max-servers: 2\n        labels:\n\
         \x20         - name: small\n            diskimage: image\n            min-ram: 8192\n",
        d = dir.display()
    );
    std::fs::write(dir.join("nodepool.yaml"), config).unwrap();
}

/// Starts `nodepool up`; its stdout lines arrive on the channel.
fn start(dir: &Path) -> (Child, mpsc::Receiver<String>) {
    let mut child = Command::new(BINARY)
        .arg("-c")
        .arg(dir.join("nodepool.yaml"))
        .arg("up")
        .env("NODEPOOL_TEST_FAST_TIMING", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(dir.join("up.log"))
                .unwrap(),
        ))
        .spawn()
        .expect("start nodepool up");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    (child, rx)
}

fn wait_line(rx: &mpsc::Receiver<String>, dir: &Path, needle: &str) -> String {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) if line.contains(needle) => return line,
            Ok(_) => {}
            Err(_) => panic!(
                "no line with {needle:?}; log:\n{}",
                std::fs::read_to_string(dir.join("up.log")).unwrap_or_default()
            ),
        }
    }
}

fn interrupt_and_wait(mut child: Child) {
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "nodepool up exits 0 on SIGINT: {status}");
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "nodepool up did not stop"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn http_get(port: u16, path: &str) -> String {
    use std::io::{Read as _, Write as _};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(stream, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").unwrap();
    let mut body = String::new();
    stream.read_to_string(&mut body).unwrap();
    body
}

#[test]
fn up_builds_uploads_launches_reports_and_restarts_reusing_everything() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    write_site(dir.path(), port);

    let (child, rx) = start(dir.path());
    wait_line(&rx, dir.path(), "dashboard at");
    let ready = wait_line(&rx, dir.path(), "is ready: ssh");
    assert!(
        ready.starts_with("node 0000000000 (small on cloud) is ready: ssh "),
        "{ready}"
    );
    // The webapp runs in the same process.
    let listing = http_get(port, "/node-list");
    assert!(listing.contains("0000000000"), "{listing}");
    interrupt_and_wait(child);

    let builds = std::fs::read_dir(dir.path().join("logs")).unwrap().count();
    assert_eq!(builds, 1, "one build log");

    // A rerun reuses the build and the ready node.
    let (child, rx) = start(dir.path());
    let again = wait_line(&rx, dir.path(), "is ready: ssh");
    assert!(again.starts_with("node 0000000000 "), "{again}");
    interrupt_and_wait(child);
    assert_eq!(
        std::fs::read_dir(dir.path().join("logs")).unwrap().count(),
        1,
        "no second build"
    );
}
