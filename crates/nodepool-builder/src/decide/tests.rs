use std::path::Path;

use nodepool_config::{DriverKind, Env, parse_config};

use super::*;

const CONFIG: &str = "
labels:
  - name: label
diskimages:
  - name: img
    formats: [raw]
    rebuild-age: 3600
  - name: dau
    formats: [raw, vhd]
    keep-formats: [vhd]
    delete-after-upload: true
providers:
  - name: cloud-a
    driver: fake
    cloud: fake
    diskimages:
      - name: img
      - name: dau
    pools: []
  - name: cloud-b
    driver: fake
    cloud: fake
    diskimages:
      - name: img
    pools: []
  - name: cloud-paused
    driver: fake
    cloud: fake
    diskimages:
      - name: img
        pause: true
    pools: []
  - name: hosts
    driver: static
    pools: []
";

fn config() -> Config {
    parse_config(Path::new("nodepool.yaml"), CONFIG, None, &Env::new())
        .unwrap()
        .config
}

fn bid(n: u32) -> BuildId {
    BuildId::parse(&format!("{n:032x}")).unwrap()
}

fn build(state: BuildState, time: f64, formats: &[&str]) -> ImageBuild {
    let mut b = ImageBuild::new(state, time);
    b.formats = formats.iter().map(|f| (*f).to_owned()).collect();
    b
}

fn ready(time: f64) -> ImageBuild {
    build(BuildState::Ready, time, &["qcow2", "raw"])
}

fn upload(state: UploadState, time: f64) -> ImageUpload {
    ImageUpload::new(state, time)
}

fn add(uploads: &mut Uploads, b: u32, provider: &str, u: u32, up: ImageUpload) {
    uploads
        .entry((bid(b), provider.to_owned()))
        .or_default()
        .insert(UploadId::new(u), up);
}

fn uref(b: u32, provider: &str, u: u32) -> UploadRef {
    UploadRef {
        build_id: bid(b),
        provider: provider.to_owned(),
        upload_id: UploadId::new(u),
    }
}

fn builds(list: &[(u32, ImageBuild)]) -> Builds {
    list.iter().map(|(n, b)| (bid(*n), b.clone())).collect()
}

fn ids(list: &[u32]) -> BTreeSet<BuildId> {
    list.iter().map(|n| bid(*n)).collect()
}

// ---- build_due ----

#[test]
fn config_adds_provider_formats() {
    let config = config();
    let img = &config.diskimages["img"];
    assert_eq!(
        img.formats.iter().map(String::as_str).collect::<Vec<_>>(),
        ["qcow2", "raw"]
    );
    assert_eq!(img.rebuild_age, 3600);
}

#[test]
fn first_build_when_none_is_ready() {
    let config = config();
    let img = &config.diskimages["img"];
    let b = builds(&[
        (1, build(BuildState::Failed, 10.0, &[])),
        (2, build(BuildState::Deleting, 20.0, &["qcow2", "raw"])),
    ]);
    assert_eq!(
        build_due(img, &b, false, false, 100.0),
        Some(BuildReason::NoReadyBuild)
    );
    assert_eq!(
        build_due(img, &Builds::new(), false, false, 100.0),
        Some(BuildReason::NoReadyBuild)
    );
}

#[test]
fn rebuild_when_newest_ready_build_reaches_rebuild_age() {
    let config = config();
    let img = &config.diskimages["img"];
    let b = builds(&[(1, ready(0.0)), (2, ready(1000.0))]);
    assert_eq!(build_due(img, &b, false, false, 4599.9), None);
    // `int(now) - state_time >= rebuild-age`: the fraction of `now` does not count.
    assert_eq!(
        build_due(img, &b, false, false, 4600.5),
        Some(BuildReason::TooOld {
            build_id: bid(2),
            age_seconds: 3600.0
        })
    );
}

#[test]
fn rebuild_when_newest_ready_build_lacks_a_format() {
    let config = config();
    let img = &config.diskimages["img"];
    let b = builds(&[(1, build(BuildState::Ready, 1000.0, &["qcow2"]))]);
    assert_eq!(
        build_due(img, &b, false, false, 1001.0),
        Some(BuildReason::MissingFormats {
            build_id: bid(1),
            missing: ["raw".to_owned()].into()
        })
    );
}

#[test]
fn building_and_failed_records_do_not_matter() {
    let config = config();
    let img = &config.diskimages["img"];
    let b = builds(&[
        (1, ready(1000.0)),
        (2, build(BuildState::Building, 1500.0, &["qcow2", "raw"])),
        (3, build(BuildState::Failed, 1600.0, &[])),
    ]);
    assert_eq!(build_due(img, &b, false, false, 2000.0), None);
    assert!(matches!(
        build_due(img, &b, false, false, 5000.0),
        Some(BuildReason::TooOld { .. })
    ));
}

#[test]
fn manual_request_builds_a_fresh_image() {
    let config = config();
    let img = &config.diskimages["img"];
    let b = builds(&[(1, ready(1000.0))]);
    assert_eq!(
        build_due(img, &b, false, true, 1001.0),
        Some(BuildReason::Requested)
    );
}

#[test]
fn either_pause_stops_scheduled_and_manual_builds() {
    let config = config();
    let mut img = config.diskimages["img"].clone();
    assert_eq!(build_due(&img, &Builds::new(), true, true, 1.0), None);
    assert!(builds_paused(&img, true));
    img.pause = true;
    assert_eq!(build_due(&img, &Builds::new(), false, true, 1.0), None);
    assert_eq!(build_due(&img, &Builds::new(), false, false, 1.0), None);
    assert!(builds_paused(&img, false));
}

#[test]
fn nothing_is_built_without_formats() {
    let config = config();
    let mut img = config.diskimages["img"].clone();
    img.formats.clear();
    assert_eq!(build_due(&img, &Builds::new(), false, true, 1.0), None);
}

#[test]
fn cli_deletes_are_refused_while_in_progress() {
    assert!(!build_deletable_by_cli(&build(
        BuildState::Building,
        1.0,
        &[]
    )));
    assert!(build_deletable_by_cli(&ready(1.0)));
    assert!(!upload_deletable_by_cli(&upload(
        UploadState::Uploading,
        1.0
    )));
    assert!(upload_deletable_by_cli(&upload(UploadState::Failed, 1.0)));
}

// ---- uploads_due ----

#[test]
fn newest_ready_build_goes_to_every_provider_that_takes_it() {
    let config = config();
    let b = builds(&[(1, ready(10.0)), (2, ready(20.0))]);
    let mut u = Uploads::new();
    add(&mut u, 1, "cloud-a", 1, upload(UploadState::Ready, 11.0));
    add(&mut u, 2, "cloud-b", 1, upload(UploadState::Failed, 21.0));
    add(
        &mut u,
        2,
        "cloud-b",
        2,
        upload(UploadState::Uploading, 22.0),
    );
    let due = uploads_due("img", config.providers.values(), &b, &u, &ids(&[1, 2]));
    // cloud-paused is paused for img; hosts (static) does not manage images.
    let expect = |provider: &str| UploadDue {
        build_id: bid(2),
        provider: provider.to_owned(),
        format: "qcow2".to_owned(),
    };
    assert_eq!(due, [expect("cloud-a"), expect("cloud-b")]);

    add(&mut u, 2, "cloud-a", 2, upload(UploadState::Ready, 23.0));
    let due = uploads_due("img", config.providers.values(), &b, &u, &ids(&[2]));
    assert_eq!(due, [expect("cloud-b")]);
}

#[test]
fn only_the_builder_with_the_files_uploads_and_never_an_older_build() {
    let config = config();
    let b = builds(&[(1, ready(10.0)), (2, ready(20.0))]);
    let due = uploads_due(
        "img",
        config.providers.values(),
        &b,
        &Uploads::new(),
        &ids(&[1]),
    );
    assert!(due.is_empty());
}

#[test]
fn provider_format_must_be_among_the_build_formats() {
    let mut config = config();
    let b = builds(&[(1, ready(10.0))]);
    if let Some(p) = config.providers.get_mut("cloud-b") {
        p.image_type = Some("vhd".to_owned());
    }
    let due = uploads_due(
        "img",
        config.providers.values(),
        &b,
        &Uploads::new(),
        &ids(&[1]),
    );
    assert_eq!(
        due.iter().map(|d| d.provider.as_str()).collect::<Vec<_>>(),
        ["cloud-a"]
    );
}

#[test]
fn nothing_to_upload_without_a_ready_build() {
    let config = config();
    let b = builds(&[(1, build(BuildState::Building, 10.0, &["qcow2"]))]);
    assert!(
        uploads_due(
            "img",
            config.providers.values(),
            &b,
            &Uploads::new(),
            &ids(&[1])
        )
        .is_empty()
    );
}

#[test]
fn upload_pause_is_per_provider_image() {
    let config = config();
    assert!(upload_paused(&config.providers["cloud-paused"], "img"));
    assert!(!upload_paused(&config.providers["cloud-a"], "img"));
    assert!(!upload_paused(&config.providers["cloud-a"], "unknown"));
    assert_eq!(config.providers["hosts"].driver, DriverKind::Static);
}

// ---- current_upload ----

#[test]
fn current_upload_is_the_newest_ready_upload_of_a_ready_build() {
    let b = builds(&[(1, ready(10.0)), (2, ready(20.0))]);
    let mut u = Uploads::new();
    add(&mut u, 1, "cloud-a", 1, upload(UploadState::Ready, 11.0));
    add(&mut u, 2, "cloud-a", 1, upload(UploadState::Ready, 21.0));
    add(
        &mut u,
        2,
        "cloud-a",
        2,
        upload(UploadState::Uploading, 30.0),
    );
    add(&mut u, 2, "cloud-b", 1, upload(UploadState::Ready, 40.0));
    assert_eq!(
        current_upload("cloud-a", &b, &u),
        Some((bid(2), UploadId::new(1)))
    );
    assert_eq!(current_upload("cloud-c", &b, &u), None);
}

#[test]
fn deleting_the_newest_build_reverts_to_the_previous_at_once() {
    let mut b = builds(&[(1, ready(10.0)), (2, ready(20.0))]);
    let mut u = Uploads::new();
    add(&mut u, 1, "cloud-a", 1, upload(UploadState::Ready, 11.0));
    add(&mut u, 2, "cloud-a", 1, upload(UploadState::Ready, 21.0));
    if let Some(newest) = b.get_mut(&bid(2)) {
        newest.set_state(BuildState::Deleting, 30.0);
    }
    // Its upload is still READY: the janitor has not run yet.
    assert_eq!(
        current_upload("cloud-a", &b, &u),
        Some((bid(1), UploadId::new(1)))
    );
}

#[test]
fn deleting_the_current_upload_falls_back_to_the_previous_upload() {
    let b = builds(&[(1, ready(10.0)), (2, ready(20.0))]);
    let mut u = Uploads::new();
    add(&mut u, 1, "cloud-a", 1, upload(UploadState::Ready, 11.0));
    add(&mut u, 2, "cloud-a", 1, upload(UploadState::Deleting, 21.0));
    assert_eq!(
        current_upload("cloud-a", &b, &u),
        Some((bid(1), UploadId::new(1)))
    );
    // And the upload worker re-uploads the newest build (spec 3.7).
    let config = config();
    let due = uploads_due("img", [&config.providers["cloud-a"]], &b, &u, &ids(&[2]));
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].build_id, bid(2));
}

// ---- retention ----

#[test]
fn two_newest_ready_builds_are_kept_older_and_failed_ones_retired() {
    let config = config();
    let b = builds(&[
        (1, ready(10.0)),
        (2, ready(20.0)),
        (3, ready(30.0)),
        (4, build(BuildState::Failed, 40.0, &[])),
        (5, build(BuildState::Building, 50.0, &["qcow2", "raw"])),
    ]);
    let mut u = Uploads::new();
    for n in 1..=3 {
        add(
            &mut u,
            n,
            "cloud-a",
            1,
            upload(UploadState::Ready, n as f64 * 10.0 + 1.0),
        );
    }
    let plan = retention(&config, "img", &b, &u);
    assert_eq!(plan.keep_builds, ids(&[2, 3]));
    assert_eq!(plan.retire_builds, ids(&[1, 4, 5]));
    assert_eq!(plan.delete_uploads, [uref(1, "cloud-a", 1)].into());
    assert!(plan.drop_stale_upload_records.is_empty());
}

#[test]
fn uploads_of_a_build_seen_building_are_left_for_a_fresh_look() {
    // The janitor read the builds while 3 was BUILDING and its uploads after it became
    // READY and got uploaded: deleting them would remove the newest image.
    let mut config = config();
    if let Some(p) = config.providers.get_mut("cloud-b") {
        p.diskimages.clear();
    }
    let b = builds(&[
        (1, ready(10.0)),
        (2, ready(20.0)),
        (3, build(BuildState::Building, 30.0, &["qcow2", "raw"])),
    ]);
    let mut u = Uploads::new();
    add(&mut u, 3, "cloud-a", 1, upload(UploadState::Ready, 41.0));
    add(&mut u, 3, "cloud-b", 1, upload(UploadState::Ready, 41.0));
    let plan = retention(&config, "img", &b, &u);
    assert_eq!(plan.keep_builds, ids(&[1, 2]));
    assert_eq!(plan.retire_builds, ids(&[3]));
    assert!(plan.delete_uploads.is_empty());
    assert!(plan.drop_stale_upload_records.is_empty());
}

#[test]
fn recency_keeps_an_older_builds_upload_when_newer_ones_failed() {
    let config = config();
    let b = builds(&[(1, ready(10.0)), (2, ready(20.0)), (3, ready(30.0))]);
    let mut u = Uploads::new();
    add(&mut u, 1, "cloud-a", 1, upload(UploadState::Ready, 11.0));
    add(&mut u, 2, "cloud-a", 1, upload(UploadState::Failed, 21.0));
    add(&mut u, 3, "cloud-a", 1, upload(UploadState::Ready, 31.0));
    let plan = retention(&config, "img", &b, &u);
    // Build 1 is retired but its upload is one of cloud-a's two newest READY uploads.
    assert!(plan.retire_builds.contains(&bid(1)));
    assert!(!plan.delete_uploads.contains(&uref(1, "cloud-a", 1)));
    // Kept build 2's failed upload is cruft.
    assert!(plan.delete_uploads.contains(&uref(2, "cloud-a", 1)));
    assert_eq!(
        recent_uploads(&b, &u),
        [uref(1, "cloud-a", 1), uref(3, "cloud-a", 1)].into()
    );
}

#[test]
fn recency_table_keeps_two_per_build_then_two_per_provider() {
    let b = builds(&[(1, ready(10.0)), (2, ready(20.0))]);
    let mut u = Uploads::new();
    for (n, t) in [(1, 11.0), (2, 12.0), (3, 13.0)] {
        add(&mut u, 2, "cloud-a", n, upload(UploadState::Ready, t));
    }
    add(&mut u, 1, "cloud-a", 1, upload(UploadState::Ready, 50.0));
    add(&mut u, 2, "gone", 1, upload(UploadState::Ready, 14.0));
    assert_eq!(
        recent_uploads(&b, &u),
        [
            uref(1, "cloud-a", 1),
            uref(2, "cloud-a", 3),
            uref(2, "gone", 1)
        ]
        .into()
    );
}

#[test]
fn kept_builds_lose_only_their_cruft() {
    let config = config();
    let b = builds(&[(1, ready(10.0)), (2, ready(20.0))]);
    let mut u = Uploads::new();
    add(&mut u, 2, "cloud-a", 1, upload(UploadState::Ready, 21.0));
    add(&mut u, 2, "cloud-a", 2, upload(UploadState::Ready, 22.0));
    add(&mut u, 2, "cloud-a", 3, upload(UploadState::Ready, 23.0));
    add(
        &mut u,
        2,
        "cloud-b",
        1,
        upload(UploadState::Uploading, 21.0),
    );
    add(&mut u, 2, "cloud-b", 2, upload(UploadState::Deleting, 22.0));
    add(&mut u, 1, "cloud-b", 1, upload(UploadState::Failed, 11.0));
    let plan = retention(&config, "img", &b, &u);
    assert!(plan.retire_builds.is_empty());
    // A third READY upload of a kept build stays, as in Nodepool.
    assert_eq!(
        plan.delete_uploads,
        [uref(1, "cloud-b", 1), uref(2, "cloud-b", 2)].into()
    );
    assert_eq!(
        plan.drop_stale_upload_records,
        [uref(2, "cloud-b", 1)].into()
    );
}

#[test]
fn uploads_to_a_provider_that_dropped_the_image_are_deleted() {
    let mut config = config();
    if let Some(p) = config.providers.get_mut("cloud-b") {
        p.diskimages.clear();
    }
    let b = builds(&[(1, ready(10.0))]);
    let mut u = Uploads::new();
    add(&mut u, 1, "cloud-a", 1, upload(UploadState::Ready, 11.0));
    add(&mut u, 1, "cloud-b", 1, upload(UploadState::Ready, 11.0));
    add(
        &mut u,
        1,
        "cloud-b",
        2,
        upload(UploadState::Uploading, 12.0),
    );
    let plan = retention(&config, "img", &b, &u);
    assert_eq!(
        plan.delete_uploads,
        [uref(1, "cloud-b", 1), uref(1, "cloud-b", 2)].into()
    );
    assert!(plan.drop_stale_upload_records.is_empty());
    assert!(plan.retire_builds.is_empty());
}

#[test]
fn an_image_removed_from_the_config_is_deleted_entirely() {
    let config = config();
    let b = builds(&[(1, ready(10.0)), (2, ready(20.0))]);
    let mut u = Uploads::new();
    add(&mut u, 2, "cloud-a", 1, upload(UploadState::Ready, 21.0));
    let plan = retention(&config, "gone-image", &b, &u);
    assert!(plan.keep_builds.is_empty());
    assert_eq!(plan.retire_builds, ids(&[1, 2]));
    // cloud-a no longer lists `gone-image`: obsolete.
    assert_eq!(plan.delete_uploads, [uref(2, "cloud-a", 1)].into());
}

#[test]
fn uploads_to_unconfigured_providers_are_left_alone() {
    let config = config();
    let b = builds(&[(1, ready(10.0)), (2, ready(20.0)), (3, ready(30.0))]);
    let mut u = Uploads::new();
    add(
        &mut u,
        1,
        "removed-cloud",
        1,
        upload(UploadState::Ready, 11.0),
    );
    add(&mut u, 1, "hosts", 1, upload(UploadState::Failed, 11.0));
    let plan = retention(&config, "img", &b, &u);
    assert!(plan.retire_builds.contains(&bid(1)));
    assert!(plan.delete_uploads.is_empty());
    // ...which keeps build 1 from going (until `nodepool erase`).
    let left: Vec<&ImageUpload> = u.values().flat_map(|m| m.values()).collect();
    assert_eq!(build_removal(&b[&bid(1)], left), BuildRemoval::Wait);
}

#[test]
fn dib_image_delete_of_the_newest_build_retires_it_and_keeps_the_next_two() {
    let config = config();
    let mut b = builds(&[(1, ready(10.0)), (2, ready(20.0)), (3, ready(30.0))]);
    if let Some(newest) = b.get_mut(&bid(3)) {
        newest.set_state(BuildState::Deleting, 40.0);
    }
    let mut u = Uploads::new();
    add(&mut u, 2, "cloud-a", 1, upload(UploadState::Ready, 21.0));
    add(&mut u, 3, "cloud-a", 1, upload(UploadState::Ready, 31.0));
    let plan = retention(&config, "img", &b, &u);
    assert_eq!(plan.keep_builds, ids(&[1, 2]));
    assert_eq!(plan.retire_builds, ids(&[3]));
    assert_eq!(plan.delete_uploads, [uref(3, "cloud-a", 1)].into());
    assert_eq!(
        current_upload("cloud-a", &b, &u),
        Some((bid(2), UploadId::new(1)))
    );
}

#[test]
fn retention_never_retires_the_current_or_previous_ready_build() {
    let config = config();
    let states = [
        BuildState::Ready,
        BuildState::Failed,
        BuildState::Building,
        BuildState::Deleting,
    ];
    // Every assignment of states to four builds, with two orders of times.
    for code in 0..(4u32.pow(4) * 2) {
        let mut list = Vec::new();
        for n in 0..4u32 {
            let state = states[((code >> (2 * n)) & 3) as usize].clone();
            let time = if code >= 256 {
                100.0 - n as f64
            } else {
                n as f64
            };
            list.push((n + 1, build(state, time, &["qcow2", "raw"])));
        }
        let b = builds(&list);
        let mut u = Uploads::new();
        for n in 1..=4 {
            add(
                &mut u,
                n,
                "cloud-a",
                1,
                upload(UploadState::Ready, n as f64),
            );
        }
        let plan = retention(&config, "img", &b, &u);
        let newest: BTreeSet<BuildId> = newest_ready_builds(&b)
            .into_iter()
            .take(2)
            .map(|(id, _)| id.clone())
            .collect();
        assert_eq!(plan.keep_builds, newest, "case {code}");
        for id in &newest {
            assert!(!plan.retire_builds.contains(id), "case {code}");
            assert!(
                !plan.delete_uploads.iter().any(|r| &r.build_id == id),
                "case {code}"
            );
        }
    }
}

#[test]
fn build_removal_waits_for_uploads_then_deletes() {
    let b = ready(1.0);
    let deleting = upload(UploadState::Deleting, 1.0);
    let ready_upload = upload(UploadState::Ready, 1.0);
    assert_eq!(build_removal(&b, []), BuildRemoval::Delete);
    assert_eq!(
        build_removal(&b, [&deleting, &ready_upload]),
        BuildRemoval::Wait
    );
    assert_eq!(build_removal(&b, [&deleting]), BuildRemoval::MarkDeleting);
    let gone = build(BuildState::Deleting, 2.0, &[]);
    assert_eq!(
        build_removal(&gone, [&deleting]),
        BuildRemoval::WaitForUploads
    );
    assert_eq!(build_removal(&gone, []), BuildRemoval::Delete);
}

// ---- local files ----

#[test]
fn local_build_names_split_like_nodepool() {
    let name = |image: &str, id: &str| {
        Some(LocalBuildName {
            image: image.to_owned(),
            build_id: id.to_owned(),
        })
    };
    assert_eq!(
        parse_local_build_name("ubuntu-noble-0123abcd.qcow2"),
        name("ubuntu-noble", "0123abcd")
    );
    assert_eq!(parse_local_build_name("img-abc.d"), name("img", "abc"));
    assert_eq!(parse_local_build_name("img-abc.qcow2.md5"), None);
    assert_eq!(parse_local_build_name("img-xyz.qcow2"), None);
    assert_eq!(parse_local_build_name("img-abc."), None);
    assert_eq!(parse_local_build_name("builder_id.txt"), None);
    assert_eq!(parse_local_build_name("-abc.raw"), name("", "abc"));
}

#[test]
fn local_files_belong_to_a_build_by_their_base_name() {
    assert_eq!(
        local_file_format("img-abc.qcow2", "img", "abc"),
        Some("qcow2")
    );
    assert_eq!(local_file_format("img-abc.qcow2.md5", "img", "abc"), None);
    assert_eq!(local_file_format("img-abcd.raw", "img", "abc"), None);
    assert_eq!(local_file_format("img2-abc.raw", "img", "abc"), None);
}

#[test]
fn local_files_of_gone_or_deleting_builds_are_deleted() {
    let config = config();
    let formats: BTreeSet<String> = ["qcow2".to_owned()].into();
    let u = Uploads::new();
    assert_eq!(
        local_build_action(&config, "img", &bid(1), None, &u, &formats),
        LocalBuildAction::DeleteAll
    );
    let deleting = build(BuildState::Deleting, 1.0, &[]);
    assert_eq!(
        local_build_action(&config, "img", &bid(1), Some(&deleting), &u, &formats),
        LocalBuildAction::DeleteAll
    );
    let building = build(BuildState::Building, 1.0, &[]);
    assert_eq!(
        local_build_action(&config, "img", &bid(1), Some(&building), &u, &formats),
        LocalBuildAction::Keep
    );
    // Without delete-after-upload a READY build keeps its files.
    assert_eq!(
        local_build_action(&config, "img", &bid(1), Some(&ready(1.0)), &u, &formats),
        LocalBuildAction::Keep
    );
}

#[test]
fn delete_after_upload_keeps_kept_formats_and_those_still_to_upload() {
    let config = config();
    let formats: BTreeSet<String> = ["qcow2", "raw", "vhd"].map(str::to_owned).into();
    let b = build(BuildState::Ready, 1.0, &["qcow2", "raw", "vhd"]);
    let mut u = Uploads::new();
    // cloud-a (qcow2) has not uploaded yet: qcow2 stays, vhd is in keep-formats.
    assert_eq!(
        local_build_action(&config, "dau", &bid(1), Some(&b), &u, &formats),
        LocalBuildAction::DeleteFormats(["raw".to_owned()].into())
    );
    add(&mut u, 1, "cloud-a", 1, upload(UploadState::Ready, 2.0));
    assert_eq!(
        local_build_action(&config, "dau", &bid(1), Some(&b), &u, &formats),
        LocalBuildAction::DeleteFormats(["qcow2".to_owned(), "raw".to_owned()].into())
    );
    let only_vhd: BTreeSet<String> = ["vhd".to_owned()].into();
    assert_eq!(
        local_build_action(&config, "dau", &bid(1), Some(&b), &u, &only_vhd),
        LocalBuildAction::Keep
    );
    // An image no longer configured keeps its READY build's files.
    assert_eq!(
        local_build_action(&config, "gone", &bid(1), Some(&b), &u, &formats),
        LocalBuildAction::Keep
    );
}

// ---- build logs ----

#[test]
fn build_logs_keep_the_newest_per_image() {
    let logs: Vec<(String, f64)> = vec![
        (format!("img-{}.log", bid(1)), 1.0),
        (format!("img-{}.log", bid(2)), 3.0),
        (format!("img-{}.log", bid(3)), 2.0),
        ("img-0000000007.log".to_owned(), 0.5),
        (format!("img2-{}.log", bid(4)), 0.1),
        (format!("img-2-{}.log", bid(5)), 0.1),
        ("img-notes.txt".to_owned(), 0.0),
    ];
    assert_eq!(
        build_logs_to_prune("img", &logs, 2),
        [
            "img-0000000007.log".to_owned(),
            format!("img-{}.log", bid(1))
        ]
    );
    // Retention 0 still keeps one; negative keeps all.
    assert_eq!(build_logs_to_prune("img", &logs, 0).len(), 3);
    assert!(build_logs_to_prune("img", &logs, -1).is_empty());
    assert!(build_logs_to_prune("img", &logs, 7).is_empty());
}
