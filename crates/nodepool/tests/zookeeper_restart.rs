//! Black-box tests of daemons living through ZooKeeper server restarts (issue 15): the
//! ZooKeeper server (TLS, as production runs it) is SIGKILLed under a Zuul-protocol load and
//! started again on its data a few seconds later, well inside the session timeout, as a
//! rolling upgrade does to each server. Sessions survive; the daemons must then go on
//! seeing every change: requests submitted afterwards are fulfilled, used nodes deleted,
//! build requests built and uploaded. Their caches must keep up on their own: the staleness
//! guard's ERROR ("cache is behind the store") must never appear.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use common::launcher::{DaemonProcess, tls_store};
use nodepool_model::{BuildState, NodeId, UploadState};
use nodepool_store::{Store, paths};
use nodepool_testkit::load::{Load, LoadOptions, Tally};
use nodepool_testkit::wait::wait_for_store_change;
use nodepool_testkit::{RequestOptions, ServerOptions, ZooKeeperServer, ZuulClient};
use tempfile::TempDir;

/// Generous: a JVM restart, reconnects and a backlog of requests on a loaded machine.
const WAIT: Duration = Duration::from_secs(90);

/// How long the server stays down: long enough for every client to notice, well inside the
/// session timeout (Nodepool's 10 s default).
const OUTAGE: Duration = Duration::from_secs(3);

/// Jobs that must complete before a restart and after each one.
const JOBS_PER_PHASE: usize = 8;

/// A ZooKeeper server of the test's own (it gets restarted) and a working directory.
struct Site {
    dir: TempDir,
    zookeeper: ZooKeeperServer,
    chroot: String,
    daemons: Vec<(String, DaemonProcess)>,
}

impl Site {
    fn new() -> Site {
        let zookeeper = tokio::task::block_in_place(|| {
            ZooKeeperServer::start(ServerOptions::with_tls())
                .unwrap_or_else(|e| panic!("a ZooKeeper server starts: {e}"))
        });
        let dir = tempfile::tempdir().expect("tempdir");
        nodepool_testkit::fake_dib::install(dir.path()).expect("write the fake dib-cmd");
        Site {
            dir,
            zookeeper,
            chroot: format!("/zookeeper-restart-{}", std::process::id()),
            daemons: Vec::new(),
        }
    }

    /// Writes `<name>.yaml`: label `small` (served from the image `image` when `built`,
    /// else from a cloud image) in the fake `providers`, each with `max-servers` servers.
    fn config(&self, name: &str, providers: &[&str], built: bool, max_servers: usize) -> PathBuf {
        let tls = self.zookeeper.client_tls().expect("client certificate");
        let address = self.zookeeper.tls_address().expect("TLS port");
        let (host, port) = address.rsplit_once(':').expect("host:port");
        let d = self.dir.path().display();
        let mut text = format!(
            "zookeeper-servers:\n  - host: {host}\n    port: {port}\n    chroot: {chroot}\n\
             zookeeper-tls:\n  cert: {cert}\n  key: {key}\n  ca: {ca}\n\
             images-dir: {d}/images\nbuild-log-dir: {d}/logs\n\
             labels:\n  - name: small\n    min-ready: 0\n\
             diskimages:\n  - name: image\n    dib-cmd: {d}/fake-image-create\n\
             providers:\n",
            chroot = self.chroot,
            cert = tls.cert.display(),
            key = tls.key.display(),
            ca = tls.ca.display(),
        );
        for provider in providers {
            let (images, source) = if built {
                ("    diskimages:\n      - name: image\n", "diskimage: image")
            } else {
                (
                    "    cloud-images:\n      - name: cloud-image\n        image-id: fake-image-id\n",
                    "cloud-image: cloud-image",
                )
            };
            text.push_str(&format!(
                "  - name: {provider}\n    driver: fake\n    cloud: fake\n{images}\
                 \x20   pools:\n      - name: main\n        max-servers: {max_servers}\n\
                 \x20       labels:\n          - name: small\n            {source}\n\
                 \x20           min-ram: 8192\n"
            ));
        }
        let path = self.dir.path().join(format!("{name}.yaml"));
        std::fs::write(&path, text).expect("write the configuration");
        path
    }

    fn launcher(&mut self, name: &str, config: &Path) {
        let log = self.dir.path().join(format!("{name}.log"));
        self.daemons
            .push((name.to_string(), DaemonProcess::start(config, log, &[])));
    }

    fn builder(&mut self, config: &Path) {
        let log = self.dir.path().join("builder.log");
        self.daemons
            .push(("builder".to_string(), DaemonProcess::builder(config, log)));
    }

    /// Every daemon's log, for failure messages.
    fn logs(&self) -> String {
        self.daemons
            .iter()
            .map(|(name, daemon)| format!("--- {name}:\n{}", daemon.log()))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// A store session of our own, like Zuul's.
    async fn connect(&self) -> Store {
        tls_store(&self.zookeeper, &self.chroot).await
    }

    /// SIGKILLs the server, leaves it down for [`OUTAGE`], starts it again on its data.
    async fn restart_zookeeper(&mut self) {
        tokio::task::block_in_place(|| self.zookeeper.stop()).expect("kill ZooKeeper");
        // The outage's length is the fault itself, not a wait for a condition.
        tokio::time::sleep(OUTAGE).await;
        tokio::task::block_in_place(|| self.zookeeper.start_again())
            .unwrap_or_else(|e| panic!("ZooKeeper starts again: {e}"));
    }

    /// No daemon found a cache of its behind the store, and none logged any other ERROR.
    fn assert_no_errors(&self) {
        let errors: Vec<String> = self
            .daemons
            .iter()
            .flat_map(|(name, daemon)| {
                daemon
                    .error_lines()
                    .into_iter()
                    .map(move |line| format!("{name}: {line}"))
            })
            .collect();
        assert!(
            errors.is_empty(),
            "ERROR lines in the daemons' logs:\n{}\n{}",
            errors.join("\n"),
            self.logs()
        );
    }
}

/// Waits until the load has completed `count` more jobs than `since`.
async fn completes(site: &Site, load: &Load, since: &Tally, count: usize, when: &str) -> Tally {
    let target = since.completed + count;
    load.wait_until(WAIT, |t| t.completed >= target)
        .await
        .unwrap_or_else(|tally| {
            panic!(
                "{when}: the load completed {} of {target} jobs within {WAIT:?} ({tally:?});\n{}",
                tally.completed,
                site.logs()
            )
        })
}

/// A Zuul of its own submits one request and runs a job on it.
async fn fresh_job(site: &Site, when: &str) {
    let zuul = ZuulClient::new(site.connect().await, "fresh-zuul");
    zuul.run_job(&["small"], RequestOptions::default(), WAIT)
        .await
        .unwrap_or_else(|e| {
            panic!(
                "{when}: a request submitted now is served: {e};\n{}",
                site.logs()
            )
        });
}

/// Waits until every node in `nodes` (returned by their jobs) is deleted.
async fn used_nodes_deleted(site: &Site, store: &Store, nodes: &[NodeId]) {
    let nodes: BTreeSet<NodeId> = nodes.iter().copied().collect();
    let left = wait_for_store_change(store.backend().as_ref(), paths::NODES, WAIT, || async {
        let ids: BTreeSet<NodeId> = store.nodes().ids().await.ok()?.into_iter().collect();
        ids.is_disjoint(&nodes).then_some(())
    })
    .await;
    if let Err(e) = left {
        panic!("used nodes were not deleted ({e});\n{}", site.logs());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn launcher_keeps_serving_across_zookeeper_restarts() {
    let mut site = Site::new();
    let config = site.config("launcher", &["cloud"], false, 20);
    site.launcher("launcher", &config);
    let store = site.connect().await;
    let load = Load::start(
        Arc::new(ZuulClient::new(store.clone(), "zuul")),
        LoadOptions::continuous(4, "small"),
    );
    let mut tally = completes(&site, &load, &Tally::default(), JOBS_PER_PHASE, "at first").await;
    for restart in 1..=2 {
        site.restart_zookeeper().await;
        let when = format!("after restart {restart}");
        tally = completes(&site, &load, &tally, JOBS_PER_PHASE, &when).await;
        fresh_job(&site, &when).await;
    }
    let tally = load.stop().await.expect("the load ends");
    eprintln!(
        "load: {} jobs, {} errors {:?}, {} retries after a suspended connection",
        tally.completed, tally.errors, tally.first_errors, tally.retries
    );
    used_nodes_deleted(&site, &store, &tally.returned_nodes).await;
    site.assert_no_errors();
}

/// Two launchers (one provider each, as a site splits its clouds) and a builder on one
/// ZooKeeper: after the restart both launchers keep serving and the builder builds and
/// uploads on request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_launchers_and_a_builder_keep_working_across_a_zookeeper_restart() {
    let mut site = Site::new();
    let providers = ["cloud-a", "cloud-b"];
    let builder = site.config("builder", &providers, true, 4);
    site.builder(&builder);
    // Four servers each and six jobs at once: neither launcher can serve the load alone.
    for provider in providers {
        let config = site.config(provider, &[provider], true, 4);
        site.launcher(provider, &config);
    }
    let store = site.connect().await;
    let load = Load::start(
        Arc::new(ZuulClient::new(store.clone(), "zuul")),
        LoadOptions::continuous(6, "small"),
    );
    let before = completes(&site, &load, &Tally::default(), JOBS_PER_PHASE, "at first").await;
    let builds_before = ready_builds(&store, &providers).await;

    site.restart_zookeeper().await;
    store
        .images()
        .request_build("image")
        .await
        .expect("request a build after the restart");
    let after = completes(
        &site,
        &load,
        &before,
        2 * JOBS_PER_PHASE,
        "after the restart",
    )
    .await;
    for provider in providers {
        let served = after.nodes_by_provider.get(provider).copied().unwrap_or(0)
            - before.nodes_by_provider.get(provider).copied().unwrap_or(0);
        assert!(
            served > 0,
            "launcher {provider} served no job after the restart: {after:?};\n{}",
            site.logs()
        );
    }
    let built = wait_for_store_change(store.backend().as_ref(), paths::IMAGES, WAIT, || async {
        let builds = ready_builds(&store, &providers).await;
        (builds.difference(&builds_before).count() > 0).then_some(builds)
    })
    .await;
    if let Err(e) = built {
        panic!(
            "the build requested after the restart is not built and uploaded ({e});\n{}",
            site.logs()
        );
    }
    let tally = load.stop().await.expect("the load ends");
    used_nodes_deleted(&site, &store, &tally.returned_nodes).await;
    site.assert_no_errors();
}

/// Builds of `image` that are READY with a READY upload in every one of `providers`.
async fn ready_builds(store: &Store, providers: &[&str]) -> BTreeSet<String> {
    let images = store.images();
    let mut ready = BTreeSet::new();
    for build in images.build_ids("image").await.unwrap_or_default() {
        let Ok(Some(record)) = images.build("image", &build).await else {
            continue;
        };
        if record.value.state != BuildState::Ready {
            continue;
        }
        let mut uploaded = true;
        for provider in providers {
            let mut any = false;
            for upload in images
                .upload_ids("image", &build, provider)
                .await
                .unwrap_or_default()
            {
                if let Ok(Some(u)) = images.upload("image", &build, provider, upload).await {
                    any |= u.value.state == UploadState::Ready;
                }
            }
            uploaded &= any;
        }
        if uploaded {
            ready.insert(build.to_string());
        }
    }
    ready
}
