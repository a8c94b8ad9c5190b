//! One `fake-state` file shared by several clouds, as launcher processes share it: each
//! `FakeCloud` here is what one process would have. The last two tests use real processes
//! (this test binary run again as a child, see `child_process`), one of them killed with
//! SIGKILL while it writes.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nodepool_config::FakeCloud as FakeCloudConfig;
use nodepool_driver::{DriverError, Metadata};
use nodepool_driver_fake::{FakeCloud, ServerRequest, ServerStatus};

/// Unlimited quota, no faults, state in `path`.
fn settings(path: &Path) -> FakeCloudConfig {
    let mut settings = FakeCloud::default_settings();
    (settings.instances, settings.cores, settings.ram) = (-1, -1, -1);
    settings.state_file = Some(path.to_path_buf());
    settings
}

fn request(name: &str) -> ServerRequest {
    ServerRequest {
        name: name.into(),
        flavor: "Fake Flavor".into(),
        az: None,
        networks: Vec::new(),
        metadata: Metadata::from([("nodepool_node_id".to_string(), name.to_string())]),
    }
}

fn ids(cloud: &FakeCloud) -> Vec<String> {
    cloud.servers().into_iter().map(|s| s.id).collect()
}

/// The document as another program reads it.
fn document(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).expect("read the state file");
    serde_json::from_str(&text).expect("the state file is whole JSON")
}

fn wait_until(what: &str, deadline: Duration, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn servers_made_by_one_cloud_are_listed_fetched_and_deleted_by_another() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("cloud.json");
    // Both start before either does anything, as two launchers would.
    let a = FakeCloud::new(&settings(&path)).expect("a");
    let b = FakeCloud::new(&settings(&path)).expect("b");

    let made_by_a = a.create_server(&request("np1")).expect("create in a");
    assert_eq!(
        b.list_servers().expect("list in b"),
        vec![made_by_a.clone()],
        "b lists what a made (its leak cleanup sees it)"
    );
    assert_eq!(b.get_server(&made_by_a.id), Ok(Some(made_by_a.clone())));
    b.delete_server(&made_by_a.id)
        .expect("b deletes a's server");
    assert_eq!(a.get_server(&made_by_a.id), Ok(None), "gone for a too");
    assert!(matches!(
        a.delete_server(&made_by_a.id),
        Err(DriverError::NotFound(_))
    ));

    let made_by_b = b.create_server(&request("np2")).expect("create in b");
    let inserted_by_a = a.insert_server("leaked", Metadata::new());
    assert_eq!(ids(&a), vec![made_by_b.id.clone(), inserted_by_a.clone()]);
    assert_eq!(ids(&b), ids(&a));
    let image = a.upload_image("debian", Metadata::new()).expect("upload");
    assert!(b.images().contains(&image));
    b.delete_image(&image.id).expect("b deletes a's image");
    assert!(!a.images().contains(&image));

    // Each counts only its own calls.
    assert_eq!((a.creates(), a.deletes()), (1, 0));
    assert_eq!((b.creates(), b.deletes()), (1, 1));
    // The document is what the black-box tests read.
    let servers = document(&path)["servers"].clone();
    assert_eq!(servers[0]["id"], made_by_b.id.as_str());
    assert_eq!(servers[0]["metadata"]["nodepool_node_id"], "np2");
    assert_eq!(servers[1]["status"], "ACTIVE");
}

#[test]
fn concurrent_creates_from_two_clouds_all_survive() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("cloud.json");
    let clouds = [
        FakeCloud::new(&settings(&path)).expect("a"),
        FakeCloud::new(&settings(&path)).expect("b"),
    ];
    // 2 clouds x 2 threads x 25 creates: the threads of one cloud take turns on its mutex,
    // the two clouds on the file lock.
    std::thread::scope(|scope| {
        for (c, cloud) in clouds.iter().enumerate() {
            for t in 0..2 {
                scope.spawn(move || {
                    for n in 0..25 {
                        cloud
                            .create_server(&request(&format!("np-{c}-{t}-{n}")))
                            .expect("create");
                    }
                });
            }
        }
    });
    for cloud in &clouds {
        let mut names: Vec<String> = cloud.servers().into_iter().map(|s| s.name).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), 100, "no create was lost");
    }
    assert_eq!(
        document(&path)["servers"].as_array().map(Vec::len),
        Some(100)
    );
    assert_eq!(clouds[0].creates() + clouds[1].creates(), 100);

    // Deletes from both at once, each of half the servers, leave nothing.
    let all = ids(&clouds[0]);
    std::thread::scope(|scope| {
        for (cloud, half) in clouds.iter().zip(all.chunks(50)) {
            scope.spawn(move || {
                for id in half {
                    cloud.delete_server(id).expect("delete");
                }
            });
        }
    });
    assert!(clouds[0].servers().is_empty() && clouds[1].servers().is_empty());
}

#[test]
fn delays_are_kept_in_the_file_so_every_cloud_sees_them_end() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("cloud.json");
    let mut slow = settings(&path);
    slow.faults.create_delay = 0.3;
    slow.faults.delete_delay = 0.3;
    slow.faults.launch_failures = 1;
    let a = FakeCloud::new(&slow).expect("a");
    // b has no delays of its own: what matters is what the server records.
    let b = FakeCloud::new(&settings(&path)).expect("b");

    let failing = a.create_server(&request("np1")).expect("create");
    let server = a.create_server(&request("np2")).expect("create");
    let status = |cloud: &FakeCloud, id: &str| cloud.server(id).map(|s| s.status);
    assert_eq!(status(&b, &server.id), Some(ServerStatus::Build));
    // A cloud made afterwards (a restarted launcher) sees it building too.
    let restarted = FakeCloud::new(&settings(&path)).expect("restarted");
    assert_eq!(status(&restarted, &server.id), Some(ServerStatus::Build));
    wait_until(
        "the server to become active",
        Duration::from_secs(10),
        || status(&b, &server.id) == Some(ServerStatus::Active),
    );
    assert_eq!(
        status(&b, &failing.id),
        Some(ServerStatus::Error),
        "the injected launch failure shows when the build ends"
    );
    assert_eq!(status(&a, &server.id), Some(ServerStatus::Active));

    a.delete_server(&server.id).expect("delete");
    assert_eq!(status(&b, &server.id), Some(ServerStatus::Deleting));
    drop(a);
    wait_until("the server to disappear", Duration::from_secs(10), || {
        status(&b, &server.id).is_none()
    });
    assert_eq!(status(&restarted, &server.id), None);
}

#[test]
fn a_corrupt_state_file_is_an_error_when_the_cloud_is_made_and_at_each_call() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("cloud.json");
    let cloud = FakeCloud::new(&settings(&path)).expect("cloud");
    std::fs::write(&path, "{\"servers\": [").expect("break the file");
    assert!(matches!(
        FakeCloud::new(&settings(&path)),
        Err(DriverError::Fatal(_))
    ));
    assert!(matches!(
        cloud.create_server(&request("np1")),
        Err(DriverError::Transient(_))
    ));
    assert!(matches!(
        cloud.list_servers(),
        Err(DriverError::Transient(_))
    ));
    // A file that is gone is a new, empty cloud.
    std::fs::remove_file(&path).expect("remove");
    assert_eq!(cloud.list_servers(), Ok(Vec::new()));
    assert!(path.exists());
}

// ---------------------------------------------------------------------------------------
// Real processes.

/// The child's job (`FAKE_CLOUD_CHILD`): `create:<n>` makes n servers and exits; `churn`
/// creates and deletes servers until it is killed. It waits for `<state>.go` first, so that
/// children started together run together.
const CHILD_JOB: &str = "FAKE_CLOUD_CHILD";
const CHILD_STATE: &str = "FAKE_CLOUD_CHILD_STATE";

/// Not a test of its own: the body of the child processes below. Without the environment
/// variable it does nothing.
#[test]
fn child_process() {
    let (Ok(job), Ok(state)) = (std::env::var(CHILD_JOB), std::env::var(CHILD_STATE)) else {
        return;
    };
    let state = PathBuf::from(state);
    let go = go_file(&state);
    wait_until("the go file", Duration::from_secs(30), || go.exists());
    let mut churn = settings(&state);
    churn.faults.create_delay = 0.01;
    let cloud = FakeCloud::new(&churn).expect("child cloud");
    let pid = std::process::id();
    if let Some(count) = job.strip_prefix("create:") {
        let count: usize = count.parse().expect("a count");
        for n in 0..count {
            cloud
                .create_server(&request(&format!("np-{pid}-{n}")))
                .expect("create");
        }
        return;
    }
    assert_eq!(job, "churn");
    let mut made = std::collections::VecDeque::new();
    for n in 0.. {
        made.push_back(
            cloud
                .create_server(&request(&format!("np-{pid}-{n}")))
                .expect("create")
                .id,
        );
        if made.len() > 5
            && let Some(oldest) = made.pop_front()
        {
            cloud.delete_server(&oldest).expect("delete");
        }
    }
}

fn go_file(state: &Path) -> PathBuf {
    let mut go = state.as_os_str().to_owned();
    go.push(".go");
    PathBuf::from(go)
}

/// A child process running `job` on `state`; killed when dropped.
struct ChildCloud(Child);

impl ChildCloud {
    fn start(state: &Path, job: &str) -> ChildCloud {
        let child = Command::new(std::env::current_exe().expect("this test binary"))
            .args([
                "--exact",
                "child_process",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_JOB, job)
            .env(CHILD_STATE, state)
            .stdout(Stdio::null())
            .spawn()
            .expect("start a child");
        ChildCloud(child)
    }
}

impl Drop for ChildCloud {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn creates_from_two_processes_at_once_all_survive() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("cloud.json");
    let mut children = [
        ChildCloud::start(&path, "create:50"),
        ChildCloud::start(&path, "create:50"),
    ];
    std::fs::write(go_file(&path), "").expect("go");
    for child in &mut children {
        let status = child.0.wait().expect("wait");
        assert!(status.success(), "a child failed: {status}");
    }
    let cloud = FakeCloud::new(&settings(&path)).expect("cloud");
    let servers = cloud.servers();
    assert_eq!(servers.len(), 100, "no create was lost");
    let makers: std::collections::BTreeSet<&str> = servers
        .iter()
        .filter_map(|s| s.name.split('-').nth(1))
        .collect();
    assert_eq!(makers.len(), 2, "both processes made servers: {makers:?}");
}

/// SIGKILL (`Child::kill`) lands at varied moments of a child that does nothing but
/// read-modify-write the file; after each kill the file must be whole JSON, its lock free,
/// and another cloud must carry on with it. The temporary files the kills leave beside it
/// show that some kills landed inside a save.
#[test]
fn a_process_killed_while_it_writes_never_leaves_a_broken_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("cloud.json");
    std::fs::write(go_file(&path), "").expect("go");
    let generation = || {
        std::fs::read_to_string(&path)
            .ok()
            .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
            .and_then(|document| document["generation"].as_u64())
            .unwrap_or(0)
    };
    let rounds = 12;
    for round in 0..rounds {
        let before = generation();
        let mut child = ChildCloud::start(&path, "churn");
        wait_until("the child to save", Duration::from_secs(30), || {
            generation() >= before + 3
        });
        std::thread::sleep(Duration::from_millis(round * 7 % 23));
        child.0.kill().expect("SIGKILL");
        child.0.wait().expect("reap");

        let whole = document(&path);
        assert!(whole["servers"].is_array(), "round {round}: {whole}");
        let lock = std::fs::File::open(dir.path().join("cloud.json.lock")).expect("lock file");
        lock.try_lock()
            .expect("the killed process's lock is released");
        lock.unlock().expect("unlock");
        let survivor = FakeCloud::new(&settings(&path)).expect("the file still loads");
        let server = survivor.create_server(&request("after")).expect("create");
        survivor.delete_server(&server.id).expect("delete");
    }
    let temporaries = std::fs::read_dir(dir.path())
        .expect("list")
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
        .count();
    eprintln!(
        "{rounds} kills; {temporaries} left an unfinished save's temporary file; final generation {}",
        generation()
    );
}
