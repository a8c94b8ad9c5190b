//! The admin commands (spec 5.2) on a real ZooKeeper over TLS, as Nodepool runs them in
//! production: one server for this test binary, a chroot per test. The store is filled
//! with nodepool-web's golden fixture, as `admin_commands.rs` does on the embedded store,
//! and the output must be the same as there (Nodepool 11's goldens); the commands that
//! change data are checked by reading the records back through `nodepool_store`, and
//! against the same commands run on a SQLite store filled with the same records.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use common::{
    CENTOS_BUILD, DEBIAN_BUILD, Run, assert_output, erase_prompt, golden, image_delete_args,
    one_node_table,
};
use nodepool_model::{BuildId, BuildState, NodeId, NodeState, UploadId, UploadState};
use nodepool_store::{Backend, SqliteBackend, SqliteOptions, Store};
use nodepool_store_zk::{ZooKeeperBackend, ZooKeeperOptions, ZooKeeperTls};
use nodepool_testkit::{ServerOptions, ZooKeeperServer, fixture};
use serde_json::Value;
use tempfile::TempDir;

/// The server of this test binary (killed when the binary exits, see `ZooKeeperServer`).
fn server() -> &'static ZooKeeperServer {
    static SERVER: OnceLock<ZooKeeperServer> = OnceLock::new();
    SERVER.get_or_init(|| ZooKeeperServer::start(ServerOptions::with_tls()).expect("zookeeper"))
}

const PROVIDERS: &str = "labels:
  - name: fake-label
providers:
  - name: fake-provider
    driver: fake
    cloud: fake
    cloud-images:
      - name: img
        image-id: fake-image-id
    pools:
      - name: main
        labels:
          - name: fake-label
            cloud-image: img
            min-ram: 8192
";

/// Where a site keeps its records.
enum Kind {
    /// A chroot of the shared ZooKeeper server, over TLS.
    ZooKeeper { chroot: String },
    /// The embedded store, for comparisons.
    Sqlite,
}

/// A temporary Nodepool installation: the same configuration as `admin_commands.rs`, with
/// a ZooKeeper chroot of its own (or a SQLite file) as the store.
struct Site {
    dir: TempDir,
    config: PathBuf,
    kind: Kind,
}

impl Site {
    fn zookeeper() -> Site {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let chroot = format!(
            "/admin-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let server = server();
        let address = server.tls_address().expect("TLS port");
        let (host, port) = address.rsplit_once(':').expect("host:port");
        let tls = server.client_tls().expect("client certificate");
        let header = format!(
            "zookeeper-servers:
  - host: {host}
    port: {port}
    chroot: {chroot}
zookeeper-tls:
  cert: {}
  key: {}
  ca: {}
",
            tls.cert.display(),
            tls.key.display(),
            tls.ca.display()
        );
        Site::with(header, Kind::ZooKeeper { chroot })
    }

    fn sqlite() -> Site {
        Site::with(String::new(), Kind::Sqlite)
    }

    fn with(header: String, kind: Kind) -> Site {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = dir.path().join("nodepool.yaml");
        let header = match kind {
            Kind::Sqlite => format!("database: {}/np.db\n", dir.path().display()),
            Kind::ZooKeeper { .. } => header,
        };
        std::fs::write(&config, header + PROVIDERS).expect("write nodepool.yaml");
        Site { dir, config, kind }
    }

    async fn connect(&self) -> Store {
        let backend: Arc<dyn Backend> = match &self.kind {
            Kind::ZooKeeper { chroot } => {
                let server = server();
                let tls = server.client_tls().expect("client certificate");
                let mut options = ZooKeeperOptions::new([server.tls_address().expect("TLS")]);
                options.chroot = Some(chroot.clone());
                options.tls = Some(ZooKeeperTls {
                    cert: tls.cert.clone(),
                    key: tls.key.clone(),
                    ca: tls.ca.clone(),
                });
                Arc::new(
                    ZooKeeperBackend::connect(options)
                        .await
                        .expect("connect to ZooKeeper"),
                )
            }
            Kind::Sqlite => Arc::new(
                SqliteBackend::open(SqliteOptions::new(self.dir.path().join("np.db")))
                    .await
                    .expect("open SQLite"),
            ),
        };
        Store::new(backend)
    }

    fn store<T>(&self, work: impl AsyncFnOnce(&Store) -> T) -> T {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async {
            let store = self.connect().await;
            let result = work(&store).await;
            store.backend().close().await.expect("close the store");
            result
        })
    }

    fn run(&self, args: &[&str]) -> Run {
        common::run(&self.config, args, "")
    }

    fn run_with_input(&self, args: &[&str], input: &str) -> Run {
        common::run(&self.config, args, input)
    }

    /// Writes the golden fixture's records, their times moved by `shift` seconds.
    fn fill_shifted(&self, shift: f64) {
        let fixture = fixture::load();
        self.store(async |store| {
            fixture::fill(store, &fixture, shift)
                .await
                .expect("fill the store")
        });
    }

    /// Writes the golden fixture's records, their times moved so that the fixture's `now`
    /// is now.
    fn fill(&self) {
        self.fill_shifted(fixture::shift_to_now(&fixture::load()));
    }

    fn node_state(&self, id: &str) -> Option<NodeState> {
        let id = NodeId::parse(id).expect("node id");
        self.store(async |store| store.nodes().get(id).await.expect("read node"))
            .map(|node| node.value.state)
    }

    fn upload_state(&self, build: &str, provider: &str, id: &str) -> Option<UploadState> {
        let build = BuildId::parse(build).expect("build id");
        let id = UploadId::parse(id).expect("upload id");
        self.store(async |store| {
            store
                .images()
                .upload("debian", &build, provider, id)
                .await
                .expect("read upload")
        })
        .map(|upload| upload.value.state)
    }

    fn build_state(&self, image: &str, build: &str) -> Option<BuildState> {
        let build = BuildId::parse(build).expect("build id");
        self.store(async |store| {
            store
                .images()
                .build(image, &build)
                .await
                .expect("read build")
        })
        .map(|build| build.value.state)
    }

    fn is_paused(&self, image: &str) -> bool {
        self.store(async |store| store.images().is_paused(image).await.expect("read pause"))
    }

    /// `export-image-data` into a file of the site's directory; its text.
    fn export(&self, name: &str) -> String {
        let path = self.dir.path().join(name);
        self.run(&["export-image-data", path_str(&path)]).ok();
        std::fs::read_to_string(&path).expect("read the export")
    }
}

/// An export's records, whatever their order: builds come in store child order, which is
/// ZooKeeper's (unsorted, as in Nodepool) on one store and sorted on the other.
fn records(export: &str) -> BTreeMap<String, String> {
    serde_json::from_str(export).expect("an export is a JSON object of strings")
}

/// An export's records as JSON, with the times set since `since` (by the commands under
/// test, on each store at its own moment) replaced by `"recent"`.
fn records_set_since(export: &str, since: f64) -> BTreeMap<String, Value> {
    records(export)
        .into_iter()
        .map(|(path, text)| {
            let mut value: Value = if text.is_empty() {
                Value::Null
            } else {
                serde_json::from_str(&text).expect("a record is JSON")
            };
            if value["state_time"].as_f64().is_some_and(|t| t >= since) {
                value["state_time"] = Value::from("recent");
            }
            (path, value)
        })
        .collect()
}

fn path_str(path: &Path) -> &str {
    path.to_str().expect("UTF-8 temporary path")
}

fn run_strings(site: &Site, args: &[String]) -> Run {
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    site.run(&refs)
}

#[test]
fn listings_match_nodepool() {
    let site = Site::zookeeper();
    site.fill();
    for &(args, golden_path, any_order) in common::FULL_LISTINGS {
        let run = site.run(args).ok();
        assert_output(&run.stdout, golden_path, any_order);
    }
    common::check_full_json(|args| site.run(args));
}

#[test]
fn listings_of_an_empty_store_match_nodepool() {
    let site = Site::zookeeper();
    for &(args, golden_path) in common::EMPTY_LISTINGS {
        assert_eq!(site.run(args).ok().stdout, golden(golden_path), "{args:?}");
    }
    for &args in common::JSON_LISTINGS {
        assert_eq!(site.run(args).ok().stdout, "[]\n", "{args:?}");
    }
}

#[test]
fn hold_and_delete() {
    let site = Site::zookeeper();
    site.fill();
    let run = site.run(&["hold", "0000000000"]).ok();
    one_node_table(&run.stdout, "0000000000", "hold");
    assert_eq!(site.node_state("0000000000"), Some(NodeState::Hold));

    let run = site.run(&["delete", "0000000000"]).ok();
    one_node_table(&run.stdout, "0000000000", "deleting");
    assert_eq!(site.node_state("0000000000"), Some(NodeState::Deleting));

    for command in ["hold", "delete"] {
        for id in ["0000000099", "not-an-id"] {
            let run = site.run(&[command, id]).ok();
            assert_eq!(run.stdout, format!("Node id {id} not found\n"));
        }
    }

    let run = site.run(&["delete", "--now", "0000000004"]).ok();
    assert_eq!(
        run.stdout,
        "Provider aws for node 0000000004 not defined on this launcher\n"
    );
    assert_eq!(site.node_state("0000000004"), Some(NodeState::Used));

    let run = site.run(&["delete", "--now", "0000000006"]).ok();
    assert_eq!(
        run.stdout,
        golden("full/cli/list-9999999999.txt"),
        "{}",
        run.stderr
    );
    assert_eq!(site.node_state("0000000006"), None);
    // The node's lock directory went with it.
    let lock = site.store(async |store| {
        store
            .backend()
            .exists(&nodepool_store::paths::node_lock(
                NodeId::parse("0000000006").expect("node id"),
            ))
            .await
            .expect("exists")
    });
    assert!(lock.is_none());
}

#[test]
fn hold_and_delete_give_up_on_a_locked_node() {
    let site = Site::zookeeper();
    site.fill();
    for command in [&["hold", "0000000001"][..], &["delete", "0000000001"]] {
        let run = site.run(command).failed();
        // The path inside the chroot, as kazoo reports it.
        assert!(
            run.stderr
                .contains("Timeout trying to acquire lock /nodepool/nodes/0000000001/lock"),
            "{}",
            run.stderr
        );
        assert_eq!(run.stdout, "");
    }
    assert_eq!(site.node_state("0000000001"), Some(NodeState::InUse));
}

#[test]
fn image_delete() {
    let site = Site::zookeeper();
    site.fill();
    let cases = [
        (
            DEBIAN_BUILD,
            "fake-provider",
            "0000000009",
            "Image upload not found\n",
        ),
        ("nope", "fake-provider", "x", "Image upload not found\n"),
        (
            DEBIAN_BUILD,
            "fake-provider",
            "0000000002",
            "Cannot delete because image upload in progress\n",
        ),
        (DEBIAN_BUILD, "fake-provider", "0000000001", ""),
    ];
    for (build, provider, id, expected) in cases {
        let run = run_strings(&site, &image_delete_args(build, provider, id)).ok();
        assert_eq!(run.stdout, expected, "{build} {provider} {id}");
    }
    assert_eq!(
        site.upload_state(DEBIAN_BUILD, "fake-provider", "0000000001"),
        Some(UploadState::Deleting)
    );
    assert_eq!(
        site.upload_state(DEBIAN_BUILD, "fake-provider", "0000000002"),
        Some(UploadState::Uploading)
    );
}

#[test]
fn dib_image_delete() {
    let site = Site::zookeeper();
    site.fill();
    let run = site.run(&["dib-image-delete", "debian-0000000009"]).ok();
    assert_eq!(run.stdout, "Build debian-0000000009 not found\n");
    let run = site.run(&["dib-image-delete", "debian-0000000001"]).ok();
    assert_eq!(run.stdout, "Cannot delete a build in progress\n");
    let run = site
        .run(&["dib-image-delete", &format!("centos-{CENTOS_BUILD}")])
        .ok();
    assert_eq!(run.stdout, "");
    assert_eq!(
        site.build_state("centos", CENTOS_BUILD),
        Some(BuildState::Deleting)
    );
    let run = site.run(&["dib-image-delete", "nodash"]).failed();
    assert!(
        run.stderr.contains("not enough values to unpack"),
        "{}",
        run.stderr
    );
}

#[test]
fn image_pause_and_unpause() {
    let site = Site::zookeeper();
    site.fill();
    assert!(site.is_paused("centos"));
    assert!(!site.is_paused("debian"));
    site.run(&["image-pause", "debian"]).ok();
    assert!(site.is_paused("debian"));
    // Pausing twice is fine, as in Nodepool.
    site.run(&["image-pause", "debian"]).ok();
    site.run(&["image-unpause", "centos"]).ok();
    assert!(!site.is_paused("centos"));
    site.run(&["image-unpause", "centos"]).ok();
    // Any name is accepted.
    site.run(&["image-pause", "no-such-image"]).ok();
    assert!(site.is_paused("no-such-image"));

    let builds = common::json(site.run(&["dib-image-list", "--json"]));
    for build in builds.as_array().expect("a list") {
        let paused = build["image"] == "debian";
        if build["image"] == "debian" || build["image"] == "centos" {
            assert_eq!(build["paused"], paused, "{build}");
        }
    }
}

#[test]
fn erase_asks_first() {
    let site = Site::zookeeper();
    site.fill();
    let prompt = erase_prompt("fake-provider");
    for answer in ["\n", "n\n", "yes\n"] {
        let run = site
            .run_with_input(&["erase", "fake-provider"], answer)
            .ok();
        assert_eq!(run.stdout, format!("{prompt}Aborting. No data erased.\n"));
    }
    assert_eq!(site.node_state("0000000000"), Some(NodeState::Ready));
    site.run_with_input(&["erase", "fake-provider"], "")
        .failed();

    let run = site.run_with_input(&["erase", "fake-provider"], "Y\n").ok();
    assert_eq!(
        run.stdout,
        format!(
            "{prompt}Erasing build data for fake-provider...\nErasing node data for fake-provider...\n"
        )
    );
    assert_eq!(site.node_state("0000000000"), None);
    assert_eq!(site.node_state("0000000004"), Some(NodeState::Used));
    assert_output(
        &site.run(&["info", "fake-provider"]).ok().stdout,
        "empty/cli/info-fake-provider.txt",
        false,
    );

    let run = site.run(&["erase", "aws", "--force"]).ok();
    assert_eq!(
        run.stdout,
        "Erasing build data for aws...\nErasing node data for aws...\n"
    );
    assert_eq!(site.node_state("0000000004"), None);
    assert_eq!(site.node_state("0000000005"), Some(NodeState::Ready));
}

#[test]
fn export_and_import_image_data() {
    let site = Site::zookeeper();
    site.fill();
    let path = site.dir.path().join("export.json");
    std::fs::write(&path, "x".repeat(100_000)).expect("write");
    site.run(&["export-image-data", path_str(&path)]).ok();
    let text = std::fs::read_to_string(&path).expect("read the export");
    let data: serde_json::Map<String, Value> = serde_json::from_str(&text).expect("JSON");
    assert_eq!(data["/nodepool/images/centos/pause"], "");
    assert_eq!(
        data.len(),
        2 + 5 + 4,
        "{:?}",
        data.keys().collect::<Vec<_>>()
    );
    assert!(
        data.keys()
            .all(|k| !k.contains("lock") && !k.contains("request-build"))
    );

    // Into another chroot, and out again.
    let other = Site::zookeeper();
    other.run(&["import-image-data", path_str(&path)]).ok();
    assert_eq!(other.export("second.json"), text);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(other.dir.path().join("second.json"))
            .expect("metadata")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    // The upload sequence is past the imported numbers: a new upload does not collide.
    let created = other.store(async |store| {
        let build = BuildId::parse(DEBIAN_BUILD).expect("build id");
        let upload = nodepool_model::ImageUpload::new(UploadState::Uploading, common::now());
        store
            .images()
            .create_upload("debian", &build, "fake-provider", &upload)
            .await
            .expect("create upload")
    });
    assert!(created.sequence() > 2, "{created}");

    // ZooKeeper's export is SQLite's, and each imports the other's.
    let sqlite = Site::sqlite();
    sqlite.run(&["import-image-data", path_str(&path)]).ok();
    let from_sqlite = sqlite.export("from-sqlite.json");
    assert_eq!(records(&from_sqlite), records(&text));
    let back = Site::zookeeper();
    back.run(&[
        "import-image-data",
        path_str(&sqlite.dir.path().join("from-sqlite.json")),
    ])
    .ok();
    assert_eq!(records(&back.export("back.json")), records(&text));
}

/// The same changes on ZooKeeper and on SQLite, filled with the same records at the same
/// times, leave the same image data and the same node listing.
#[test]
fn changes_match_sqlite() {
    let zookeeper = Site::zookeeper();
    let sqlite = Site::sqlite();
    let shift = fixture::shift_to_now(&fixture::load());
    zookeeper.fill_shifted(shift);
    sqlite.fill_shifted(shift);
    assert_eq!(
        records(&zookeeper.export("before.json")),
        records(&sqlite.export("before.json"))
    );

    let started = common::now();
    let commands: Vec<Vec<String>> = vec![
        vec!["hold".into(), "0000000000".into()],
        vec!["delete".into(), "0000000002".into()],
        vec!["hold".into(), "0000000012".into()],
        vec!["hold".into(), "0000000099".into()],
        vec!["delete".into(), "--now".into(), "0000000006".into()],
        image_delete_args(DEBIAN_BUILD, "fake-provider", "0000000001"),
        vec!["dib-image-delete".into(), format!("centos-{CENTOS_BUILD}")],
        vec!["image-pause".into(), "debian".into()],
        vec!["image-unpause".into(), "centos".into()],
        vec!["erase".into(), "aws".into(), "--force".into()],
    ];
    for args in &commands {
        let on_zookeeper = run_strings(&zookeeper, args);
        let on_sqlite = run_strings(&sqlite, args);
        assert_eq!(on_zookeeper.code, on_sqlite.code, "{args:?}");
        assert_eq!(
            common::mask_ages(&on_zookeeper.stdout),
            common::mask_ages(&on_sqlite.stdout),
            "{args:?}"
        );
    }
    let after = records_set_since(&zookeeper.export("after.json"), started);
    assert_eq!(
        after,
        records_set_since(&sqlite.export("after.json"), started)
    );
    assert!(
        after.contains_key("/nodepool/images/debian/pause"),
        "{after:?}"
    );
    assert!(
        !after.contains_key("/nodepool/images/centos/pause"),
        "{after:?}"
    );

    // Node records: the same, but for the times the commands set.
    let nodes = |site: &Site| {
        let mut nodes = common::json(site.run(&["list", "--json"]));
        let list = nodes.as_array_mut().expect("a list");
        for node in list.iter_mut() {
            let map = node.as_object_mut().expect("an object");
            map.remove("state_time");
            map.remove("created_time");
        }
        list.sort_by_key(|node| node["id"].as_str().unwrap_or_default().to_owned());
        nodes
    };
    assert_eq!(nodes(&zookeeper), nodes(&sqlite));
}
