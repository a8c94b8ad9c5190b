//! Image build and upload JSON against golden files written by Nodepool 11's
//! own `ImageBuild` and `ImageUpload` classes (see tests/golden/README.md).

#![allow(clippy::unwrap_used)] // tests may unwrap: a panic is a test failure

use nodepool_model::wire::image::{
    build_from_json, build_to_json, upload_from_json, upload_to_json,
};
use nodepool_model::{BuildState, DocumentKind, ImageBuild, ImageUpload, UploadState, WireError};

const STATE_TIME: f64 = 1732550000.123456;

const BUILD_READY: &[u8] = include_bytes!("golden/build_ready.json");
const BUILD_FAILED: &[u8] = include_bytes!("golden/build_failed.json");
const BUILD_LEGACY: &[u8] = include_bytes!("golden/input/build_legacy.json");
const BUILD_LEGACY_REWRITTEN: &[u8] = include_bytes!("golden/input/build_legacy.rewritten.json");
const UPLOAD_READY: &[u8] = include_bytes!("golden/upload_ready.json");
const UPLOAD_UPLOADING: &[u8] = include_bytes!("golden/upload_uploading.json");
const UPLOAD_LEGACY: &[u8] = include_bytes!("golden/input/upload_legacy.json");
const UPLOAD_LEGACY_REWRITTEN: &[u8] = include_bytes!("golden/input/upload_legacy.rewritten.json");

fn text(bytes: &[u8]) -> &str {
    std::str::from_utf8(bytes).unwrap()
}

fn s(value: &str) -> Option<String> {
    Some(value.to_owned())
}

fn ready_build() -> ImageBuild {
    let mut build = ImageBuild::new(BuildState::Building, 1.0);
    build.set_state(BuildState::Ready, STATE_TIME);
    build.builder = s("nb01.example.com");
    build.builder_id = s("f7a9c2e4-1b3d-4f5a-8c6e-0d2b4a6c8e0f");
    // Unsorted on purpose: Nodepool writes them sorted.
    build.formats = ["raw", "qcow2", "vhd"].map(str::to_owned).to_vec();
    build.username = s("ubuntu");
    build.python_path = s("/usr/bin/python3");
    build.shell_type = s("sh");
    build
}

fn failed_build() -> ImageBuild {
    let mut build = ImageBuild::new(BuildState::Failed, 1732550100.0);
    build.username = s("zuul");
    build.python_path = s("auto");
    build
}

fn ready_upload() -> ImageUpload {
    let mut upload = ImageUpload::new(UploadState::Ready, STATE_TIME);
    upload.external_id = s("9d8c7b6a-5f4e-3d2c-1b0a-f9e8d7c6b5a4");
    upload.external_name = s("ubuntu-jammy-1732550000");
    upload.format = s("vhd");
    upload.username = s("ubuntu");
    upload.python_path = s("/usr/bin/python3");
    upload.shell_type = s("bash");
    upload
}

#[test]
fn build_with_every_key_serializes_to_golden_bytes() {
    assert_eq!(text(&build_to_json(&ready_build())), text(BUILD_READY));
}

#[test]
fn build_with_every_key_reads_every_field() {
    let build = build_from_json(BUILD_READY).unwrap();
    let mut expected = ready_build();
    expected.formats.sort();
    assert_eq!(build, expected);
}

#[test]
fn failed_build_omits_builder_builder_id_and_formats() {
    let written = build_to_json(&failed_build());
    assert_eq!(text(&written), text(BUILD_FAILED));
    assert!(!text(&written).contains("builder"));
    assert!(!text(&written).contains("formats"));
    let build = build_from_json(BUILD_FAILED).unwrap();
    assert_eq!(build, failed_build());
}

#[test]
fn legacy_build_takes_reader_defaults() {
    let build = build_from_json(BUILD_LEGACY).unwrap();
    assert_eq!(build.formats, ["qcow2"]);
    assert_eq!(build.username.as_deref(), Some("zuul"));
    assert_eq!(build.python_path.as_deref(), Some("/usr/bin/python2"));
    assert_eq!(build.builder_id, None);
    assert_eq!(text(&build_to_json(&build)), text(BUILD_LEGACY_REWRITTEN));
}

#[test]
fn build_formats_edge_cases() {
    let read = |formats: &str| {
        let document = format!(r#"{{"state": "ready", "state_time": 1.0, "formats": {formats}}}"#);
        build_from_json(document.as_bytes()).map(|build| build.formats)
    };
    assert_eq!(read(r#""""#).unwrap(), Vec::<String>::new());
    assert_eq!(read("null").unwrap(), Vec::<String>::new());
    assert_eq!(read(r#""raw,qcow2""#).unwrap(), ["raw", "qcow2"]);
    assert!(matches!(
        read(r#"["raw"]"#),
        Err(WireError::WrongType { key: "formats", .. })
    ));
    // Explicit nulls stay null where the reader has an absent-key default.
    let build = build_from_json(
        br#"{"state": "building", "state_time": 1.0, "username": null, "python_path": null}"#,
    )
    .unwrap();
    assert_eq!((build.username, build.python_path), (None, None));
}

#[test]
fn upload_serializes_to_golden_bytes() {
    assert_eq!(text(&upload_to_json(&ready_upload())), text(UPLOAD_READY));
    assert_eq!(upload_from_json(UPLOAD_READY).unwrap(), ready_upload());

    let uploading = ImageUpload::new(UploadState::Uploading, 1732550200.0);
    assert_eq!(text(&upload_to_json(&uploading)), text(UPLOAD_UPLOADING));
}

#[test]
fn legacy_upload_takes_reader_defaults_and_drops_unknown_keys() {
    let upload = upload_from_json(UPLOAD_LEGACY).unwrap();
    assert_eq!(upload.state, UploadState::Deleting);
    assert_eq!(upload.external_id.as_deref(), Some("ami-0123"));
    assert_eq!(upload.username.as_deref(), Some("zuul"));
    assert_eq!(upload.python_path.as_deref(), Some("/usr/bin/python2"));
    assert_eq!(
        text(&upload_to_json(&upload)),
        text(UPLOAD_LEGACY_REWRITTEN)
    );
}

#[test]
fn golden_images_round_trip_byte_for_byte() {
    for golden in [BUILD_READY, BUILD_FAILED] {
        assert_eq!(
            text(&build_to_json(&build_from_json(golden).unwrap())),
            text(golden)
        );
    }
    for golden in [UPLOAD_READY, UPLOAD_UPLOADING] {
        assert_eq!(
            text(&upload_to_json(&upload_from_json(golden).unwrap())),
            text(golden)
        );
    }
}

#[test]
fn unknown_image_states_are_kept() {
    let build = build_from_json(br#"{"state": "pending", "state_time": 1.0}"#).unwrap();
    assert_eq!(build.state, BuildState::Other("pending".to_owned()));
    let upload = upload_from_json(br#"{"state": "importing", "state_time": 1.0}"#).unwrap();
    assert_eq!(upload.state, UploadState::Other("importing".to_owned()));
    assert!(text(&upload_to_json(&upload)).starts_with(r#"{"state": "importing", "#));
}

#[test]
fn empty_and_malformed_image_records() {
    let error = build_from_json(b"").unwrap_err();
    assert!(error.is_empty_data());
    assert_eq!(error.document(), DocumentKind::ImageBuild);
    let error = upload_from_json(b"").unwrap_err();
    assert_eq!(error.document(), DocumentKind::ImageUpload);
    assert!(matches!(
        build_from_json(b"{]"),
        Err(WireError::InvalidJson { .. })
    ));
    assert!(matches!(
        upload_from_json(br#"{"state": "ready"}"#),
        Err(WireError::MissingKey {
            key: "state_time",
            ..
        })
    ));
    assert!(matches!(
        upload_from_json(br#"{"state": "ready", "state_time": 1.0, "external_id": {"a": 1}}"#),
        Err(WireError::WrongType {
            key: "external_id",
            ..
        })
    ));
    assert!(matches!(
        build_from_json(br#"{"state": "ready", "state_time": 1.0, "builder": 3}"#),
        Err(WireError::WrongType { key: "builder", .. })
    ));
}
