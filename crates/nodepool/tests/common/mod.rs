//! What the admin command tests share, whatever store they run on: running the binary,
//! reading Nodepool's goldens and comparing output with them. `launcher` holds what the
//! launcher process tests share.

#![allow(dead_code)] // each test binary uses its own part of this module

pub mod launcher;

use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::Value;

pub const BINARY: &str = env!("CARGO_BIN_EXE_nodepool");

pub fn golden(path: &str) -> String {
    let full = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../nodepool-web/tests/golden")
        .join(path);
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{}: {e}", full.display()))
}

pub fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("the clock is after 1970")
        .as_secs_f64()
}

/// Runs `nodepool -c CONFIG ARGS...` with `input` on its standard input.
pub fn run(config: &Path, args: &[&str], input: &str) -> Run {
    let mut child = Command::new(BINARY)
        .env_remove("RUST_LOG")
        .arg("-c")
        .arg(config)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn nodepool");
    child
        .stdin
        .take()
        .expect("stdin is piped")
        .write_all(input.as_bytes())
        .expect("write stdin");
    let output = child.wait_with_output().expect("wait for nodepool");
    Run {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn ok(self) -> Run {
        assert_eq!(
            self.code,
            Some(0),
            "exit code\n--- stdout:\n{}\n--- stderr:\n{}",
            self.stdout,
            self.stderr
        );
        self
    }

    pub fn failed(self) -> Run {
        assert_eq!(
            self.code,
            Some(1),
            "--- stdout:\n{}\n--- stderr:\n{}",
            self.stdout,
            self.stderr
        );
        self
    }
}

pub use nodepool_testkit::fixture::mask_ages;

/// Compares after masking ages; `any_row_order` for listings in store child order, which
/// is unsorted in ZooKeeper (Nodepool's own order is not reproducible either).
pub fn assert_output(actual: &str, golden_path: &str, any_row_order: bool) {
    let mut actual = mask_ages(actual);
    let mut expected = mask_ages(&golden(golden_path));
    if any_row_order {
        let sort = |text: &str| {
            let mut lines: Vec<&str> = text.lines().collect();
            lines.sort();
            lines.join("\n")
        };
        actual = sort(&actual);
        expected = sort(&expected);
    }
    assert_eq!(actual, expected, "{golden_path}");
}

/// The listings of the full fixture: arguments, golden, whether rows may come in any order.
pub const FULL_LISTINGS: &[(&[&str], &str, bool)] = &[
    (&["list"], "full/cli/list.txt", true),
    (&["list", "--detail"], "full/cli/list-detail.txt", true),
    (&["request-list"], "full/cli/request-list.txt", false),
    (&["image-list"], "full/cli/image-list.txt", true),
    (&["dib-image-list"], "full/cli/dib-image-list.txt", true),
    (&["image-status"], "full/cli/image-status.txt", false),
    (
        &["info", "fake-provider"],
        "full/cli/info-fake-provider.txt",
        true,
    ),
    (&["info", "aws"], "full/cli/info-aws.txt", false),
    (&["info", "nowhere"], "full/cli/info-nowhere.txt", false),
];

/// The listings of an empty store and their goldens.
pub const EMPTY_LISTINGS: &[(&[&str], &str)] = &[
    (&["list"], "empty/cli/list.txt"),
    (&["list", "--detail"], "empty/cli/list-detail.txt"),
    (&["request-list"], "empty/cli/request-list.txt"),
    (&["image-list"], "empty/cli/image-list.txt"),
    (&["dib-image-list"], "empty/cli/dib-image-list.txt"),
    (&["image-status"], "empty/cli/image-status.txt"),
    (
        &["info", "fake-provider"],
        "empty/cli/info-fake-provider.txt",
    ),
];

/// The `--json` listings, which print `[]` on an empty store.
pub const JSON_LISTINGS: &[&[&str]] = &[
    &["list", "--json"],
    &["request-list", "--json"],
    &["image-list", "--json"],
    &["dib-image-list", "--json"],
    &["image-status", "--json"],
];

pub fn json(run: Run) -> Value {
    let run = run.ok();
    assert!(run.stdout.ends_with("]\n") || run.stdout.ends_with("}\n"));
    serde_json::from_str(&run.stdout).expect("--json prints JSON")
}

/// What `--json` prints for the full fixture, checked on a few telling records. `run` runs
/// the binary on the filled store.
pub fn check_full_json(run: impl Fn(&[&str]) -> Run) {
    let nodes = json(run(&["list", "--json"]));
    let nodes = nodes.as_array().expect("a list");
    assert_eq!(nodes.len(), 13);
    let k8s = nodes
        .iter()
        .find(|n| n["id"] == "0000000005")
        .expect("node 5");
    // Every stored key, the credentials dict included (scripts asked for the record).
    assert_eq!(k8s["connection_port"]["namespace"], "zuul-ci-abc123");
    assert_eq!(k8s["locked"], false);
    assert_eq!(k8s.as_object().expect("an object").len(), 39);
    let in_use = nodes
        .iter()
        .find(|n| n["id"] == "0000000001")
        .expect("node 1");
    assert_eq!(in_use["locked"], true);
    assert_eq!(in_use["user_data"]["zuul_system"], "9f1c2d3e");

    let requests = json(run(&["request-list", "--json"]));
    assert_eq!(requests[0]["id"], "100-0000000003");
    assert_eq!(requests[3]["requestor"], "NodePool:min-ready");
    let uploads = json(run(&["image-list", "--json"]));
    assert_eq!(uploads.as_array().expect("a list").len(), 4);
    assert_eq!(uploads[0]["provider"], "aws");
    assert_eq!(uploads[0]["external_name"], "débian-ünïcode");
    let builds = json(run(&["dib-image-list", "--json"]));
    assert_eq!(builds[0]["image"], "centos");
    assert_eq!(builds[0]["paused"], true);
    let status = json(run(&["image-status", "--json"]));
    assert_eq!(status[1]["build_request"], "pending");
    assert_eq!(status[2]["build_request"], "building");
    let info = json(run(&["info", "fake-provider", "--json"]));
    assert_eq!(info["builds"].as_array().expect("a list").len(), 3);
    assert_eq!(info["nodes"].as_array().expect("a list").len(), 10);
}

/// The short list of one node, as `hold` and `delete` print it.
pub fn one_node_table(stdout: &str, id: &str, state: &str) {
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 5, "{stdout}");
    assert!(lines[1].starts_with("| ID "), "{stdout}");
    assert!(lines[3].starts_with(&format!("| {id} ")), "{stdout}");
    assert!(lines[3].contains(&format!("| {state} ")), "{stdout}");
    assert!(lines[3].contains("| unlocked |"), "{stdout}");
}

/// The `image-delete` arguments for one upload of the `debian` image.
pub fn image_delete_args(build: &str, provider: &str, id: &str) -> Vec<String> {
    [
        "image-delete",
        "--provider",
        provider,
        "--image",
        "debian",
        "--build-id",
        build,
        "--upload-id",
        id,
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect()
}

/// The `erase` confirmation prompt for a provider.
pub fn erase_prompt(provider: &str) -> String {
    format!(
        "\nWARNING! This action is not reversible!\nErase ZooKeeper data for provider {provider}? [N/y] "
    )
}

/// The fixture's debian build with uploads to fake-provider (one ready, one uploading).
pub const DEBIAN_BUILD: &str = "6e1f0b1c7d7b4e9c8a1e2b3c4d5e6f70";
/// The fixture's centos build that is ready (and may be deleted).
pub const CENTOS_BUILD: &str = "aa11bb22cc33dd44ee55ff6677889900";
