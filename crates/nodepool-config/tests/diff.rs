//! `nodepool_config::diff`: what a reload has to act on.

mod common;

use std::path::Path;

use common::{CorpusFile, corpus_files};
use nodepool_config::{Changes, Config, ConfigDiff, Env, diff, parse_config};

const BASE: &str = r#"
zookeeper-servers:
  - host: zk1.example.org
    chroot: /nodepool
zookeeper-tls:
  cert: /tls/client.crt
  key: /tls/client.key
  ca: /tls/ca.crt
webapp:
  port: 8005
images-dir: /opt/images
max-hold-age: 3600

labels:
  - name: small
    min-ready: 1
  - name: large
  - name: metal

diskimages:
  - name: ubuntu
    elements: [ubuntu-minimal, vm]
  - name: debian
    elements: [debian-minimal, vm]

providers:
  - name: cloud-a
    cloud: a
    diskimages:
      - name: ubuntu
      - name: debian
    pools:
      - name: main
        max-servers: 10
        labels:
          - name: small
            diskimage: ubuntu
            min-ram: 2048
          - name: large
            diskimage: debian
            min-ram: 16384
      - name: burst
        max-servers: 5
        labels:
          - name: small
            diskimage: ubuntu
            min-ram: 2048
  - name: lab
    driver: static
    pools:
      - name: rack
        nodes:
          - name: host1.example.org
            labels: [metal]

tenant-resource-limits:
  - tenant-name: t1
    max-servers: 10
"#;

fn load(text: &str) -> Config {
    load_with_secure(text, None)
}

fn load_with_secure(text: &str, secure: Option<&str>) -> Config {
    let secure = secure.map(|s| (Path::new("nodepool.secure.yaml"), s));
    match parse_config(Path::new("nodepool.yaml"), text, secure, &Env::new()) {
        Ok(loaded) => loaded.config,
        Err(errors) => panic!("{errors}\n---\n{text}"),
    }
}

/// The base configuration with `from` replaced by `to` (exactly once).
fn edited(from: &str, to: &str) -> String {
    assert_eq!(
        BASE.matches(from).count(),
        1,
        "`{from}` must occur once in BASE"
    );
    BASE.replacen(from, to, 1)
}

fn diff_edit(from: &str, to: &str) -> ConfigDiff {
    diff(&load(BASE), &load(&edited(from, to)))
}

fn names(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

fn pool_names(items: &[(&str, &str)]) -> Vec<(String, String)> {
    items
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

fn changes(added: &[&str], changed: &[&str], removed: &[&str]) -> Changes<String> {
    Changes {
        added: names(added),
        changed: names(changed),
        removed: names(removed),
    }
}

#[test]
fn identical_reload_is_empty() {
    let d = diff(&load(BASE), &load(BASE));
    assert!(d.is_empty(), "{d:?}");
    assert_eq!(d, ConfigDiff::default());
}

#[test]
fn comments_and_key_order_do_not_count() {
    let reordered = edited(
        "    cloud: a\n    diskimages:\n      - name: ubuntu\n",
        "    # a comment\n    diskimages:\n      - name: ubuntu\n",
    )
    .replacen(
        "  - name: cloud-a\n",
        "  - cloud: a\n    name: cloud-a\n",
        1,
    );
    let d = diff(&load(BASE), &load(&reordered));
    assert!(d.is_empty(), "{d:?}");
}

#[test]
fn every_valid_corpus_file_reloads_to_an_empty_diff() {
    for path in corpus_files("valid") {
        let file = CorpusFile::read(&path);
        let (a, b) = (
            file.load().expect("loads").config,
            file.load().expect("loads").config,
        );
        assert!(diff(&a, &b).is_empty(), "{}", path.display());
    }
}

#[test]
fn provider_added() {
    let d = diff_edit(
        "tenant-resource-limits:",
        "  - name: cloud-b\n    cloud: b\n    cloud-images:\n      - name: img\n    pools:\n      - name: main\n        labels:\n          - name: large\n            cloud-image: img\n            flavor-name: big\n\ntenant-resource-limits:",
    );
    assert_eq!(d.providers, changes(&["cloud-b"], &[], &[]));
    assert_eq!(
        d.pools,
        Changes {
            added: pool_names(&[("cloud-b", "main")]),
            changed: vec![],
            removed: vec![]
        }
    );
    assert_eq!(
        d.labels,
        changes(&[], &["large"], &[]),
        "the label gained a pool"
    );
    assert!(d.diskimages.is_empty());
    assert!(!d.zookeeper_changed && !d.webapp_changed && !d.globals_changed);
}

#[test]
fn provider_removed() {
    let d = diff_edit(
        "  - name: lab\n    driver: static\n    pools:\n      - name: rack\n        nodes:\n          - name: host1.example.org\n            labels: [metal]\n",
        "",
    );
    assert_eq!(d.providers, changes(&[], &[], &["lab"]));
    assert_eq!(
        d.pools,
        Changes {
            added: vec![],
            changed: vec![],
            removed: pool_names(&[("lab", "rack")])
        }
    );
    assert_eq!(
        d.labels,
        changes(&[], &["metal"], &[]),
        "the label lost its pool"
    );
    assert!(d.diskimages.is_empty() && !d.globals_changed);
}

#[test]
fn provider_setting_changed() {
    let d = diff_edit("    cloud: a\n", "    cloud: a\n    rate: 0.5\n");
    assert_eq!(d.providers, changes(&[], &["cloud-a"], &[]));
    assert!(d.pools.is_empty(), "no pool changed: {:?}", d.pools);
    assert!(d.labels.is_empty() && d.diskimages.is_empty());
    assert!(!d.zookeeper_changed && !d.webapp_changed && !d.globals_changed);
}

#[test]
fn pool_added() {
    let d = diff_edit(
        "      - name: burst\n",
        "      - name: spare\n        labels:\n          - name: large\n            diskimage: debian\n            flavor-name: xl\n      - name: burst\n",
    );
    assert_eq!(
        d.providers,
        changes(&[], &["cloud-a"], &[]),
        "a provider changes with its pools"
    );
    assert_eq!(
        d.pools,
        Changes {
            added: pool_names(&[("cloud-a", "spare")]),
            changed: vec![],
            removed: vec![]
        }
    );
    assert_eq!(d.labels, changes(&[], &["large"], &[]));
}

#[test]
fn pool_changed() {
    let d = diff_edit("        max-servers: 5\n", "        max-servers: 6\n");
    assert_eq!(
        d.pools,
        Changes {
            added: vec![],
            changed: pool_names(&[("cloud-a", "burst")]),
            removed: vec![]
        }
    );
    assert_eq!(d.providers, changes(&[], &["cloud-a"], &[]));
    assert!(d.labels.is_empty(), "the labels' pools are the same");
}

#[test]
fn pool_removed() {
    let d = diff_edit(
        "      - name: burst\n        max-servers: 5\n        labels:\n          - name: small\n            diskimage: ubuntu\n            min-ram: 2048\n",
        "",
    );
    assert_eq!(
        d.pools,
        Changes {
            added: vec![],
            changed: vec![],
            removed: pool_names(&[("cloud-a", "burst")])
        }
    );
    assert_eq!(d.providers, changes(&[], &["cloud-a"], &[]));
    assert_eq!(d.labels, changes(&[], &["small"], &[]));
}

#[test]
fn pool_label_changed() {
    let d = diff_edit(
        "            min-ram: 16384\n",
        "            min-ram: 32768\n",
    );
    assert_eq!(
        d.pools,
        Changes {
            added: vec![],
            changed: pool_names(&[("cloud-a", "main")]),
            removed: vec![]
        }
    );
    assert!(d.labels.is_empty(), "the top-level label is unchanged");
}

#[test]
fn label_added_changed_removed() {
    let d = diff_edit(
        "  - name: large\n  - name: metal\n",
        "  - name: large\n    min-ready: 2\n  - name: metal\n  - name: gpu\n",
    );
    assert_eq!(d.labels, changes(&["gpu"], &["large"], &[]));
    assert!(d.providers.is_empty() && d.pools.is_empty() && d.diskimages.is_empty());

    let d = diff_edit("    min-ready: 1\n", "    max-ready-age: 600\n");
    assert_eq!(d.labels, changes(&[], &["small"], &[]));

    // Removing a label means removing its uses too.
    let without_metal = edited("  - name: metal\n", "").replacen(
        "  - name: lab\n    driver: static\n    pools:\n      - name: rack\n        nodes:\n          - name: host1.example.org\n            labels: [metal]\n",
        "",
        1,
    );
    let d = diff(&load(BASE), &load(&without_metal));
    assert_eq!(d.labels, changes(&[], &[], &["metal"]));
    assert_eq!(d.providers, changes(&[], &[], &["lab"]));
}

#[test]
fn diskimage_added_changed_removed() {
    let d = diff_edit(
        "  - name: debian\n    elements: [debian-minimal, vm]\n",
        "  - name: debian\n    elements: [debian-minimal, vm]\n  - name: fedora\n",
    );
    assert_eq!(d.diskimages, changes(&["fedora"], &[], &[]));
    assert!(d.providers.is_empty() && d.labels.is_empty() && !d.globals_changed);

    let d = diff_edit(
        "    elements: [ubuntu-minimal, vm]\n",
        "    elements: [ubuntu-minimal, vm, growroot]\n",
    );
    assert_eq!(d.diskimages, changes(&[], &["ubuntu"], &[]));
    assert!(d.providers.is_empty(), "providers refer to images by name");

    let without_debian = edited("  - name: debian\n    elements: [debian-minimal, vm]\n", "")
        .replacen("      - name: debian\n", "", 1)
        .replacen(
            "          - name: large\n            diskimage: debian\n            min-ram: 16384\n",
            "",
            1,
        );
    let d = diff(&load(BASE), &load(&without_debian));
    assert_eq!(d.diskimages, changes(&[], &[], &["debian"]));
    assert_eq!(d.providers, changes(&[], &["cloud-a"], &[]));
    assert_eq!(d.labels, changes(&[], &["large"], &[]));
}

#[test]
fn diskimage_changed_through_its_parent() {
    let with_parent = edited(
        "  - name: debian\n    elements",
        "  - name: base\n    abstract: true\n    env-vars: {A: '1'}\n  - name: debian\n    parent: base\n    elements",
    );
    let changed_parent = with_parent.replacen("env-vars: {A: '1'}", "env-vars: {A: '2'}", 1);
    let d = diff(&load(&with_parent), &load(&changed_parent));
    assert_eq!(
        d.diskimages,
        changes(&[], &["debian"], &[]),
        "abstract images are not in the diff; their children are"
    );
}

#[test]
fn formats_follow_provider_image_types() {
    // Uploading an image to an AWS provider (vhd) adds a format to build.
    let with_aws = edited(
        "tenant-resource-limits:",
        "  - name: ec2\n    driver: aws\n    region-name: us-east-1\n    image-format: vhd\n    diskimages:\n      - name: ubuntu\n    pools: []\n\ntenant-resource-limits:",
    );
    let d = diff(&load(BASE), &load(&with_aws));
    assert_eq!(d.providers, changes(&["ec2"], &[], &[]));
    assert_eq!(d.diskimages, changes(&[], &["ubuntu"], &[]));
}

#[test]
fn zookeeper_changes() {
    for (from, to) in [
        ("  - host: zk1.example.org\n", "  - host: zk2.example.org\n"),
        ("    chroot: /nodepool\n", "    chroot: /nodepool2\n"),
        ("  ca: /tls/ca.crt\n", "  ca: /tls/other-ca.crt\n"),
        ("webapp:", "zookeeper-timeout: 30\nwebapp:"),
        (
            "    chroot: /nodepool\n",
            "    chroot: /nodepool\n  - host: zk3.example.org\n    chroot: /nodepool\n",
        ),
    ] {
        let d = diff_edit(from, to);
        assert!(d.zookeeper_changed, "{from:?} -> {to:?}");
        assert_eq!(
            d,
            ConfigDiff {
                zookeeper_changed: true,
                ..ConfigDiff::default()
            },
            "only ZooKeeper: {from:?} -> {to:?}"
        );
    }
    // Moving the servers to the secure file (same values) changes nothing.
    let main_only_tls = edited(
        "zookeeper-servers:\n  - host: zk1.example.org\n    chroot: /nodepool\n",
        "",
    );
    let secure = "zookeeper-servers:\n  - host: zk1.example.org\n    chroot: /nodepool\n";
    assert!(diff(&load(BASE), &load_with_secure(&main_only_tls, Some(secure))).is_empty());
    // Dropping the servers switches to the embedded store.
    let d = diff(&load(BASE), &load(&main_only_tls));
    assert!(d.zookeeper_changed);
}

#[test]
fn webapp_changes() {
    let d = diff_edit("  port: 8005\n", "  port: 8006\n");
    assert_eq!(
        d,
        ConfigDiff {
            webapp_changed: true,
            ..ConfigDiff::default()
        }
    );
    let d = diff_edit(
        "  port: 8005\n",
        "  port: 8005\n  listen_address: 127.0.0.1\n",
    );
    assert_eq!(
        d,
        ConfigDiff {
            webapp_changed: true,
            ..ConfigDiff::default()
        }
    );
    // Spelling out the default is no change.
    let d = diff_edit(
        "  port: 8005\n",
        "  port: 8005\n  listen_address: 0.0.0.0\n",
    );
    assert!(d.is_empty(), "{d:?}");
}

#[test]
fn global_changes() {
    for (from, to) in [
        ("max-hold-age: 3600\n", "max-hold-age: 7200\n"),
        ("images-dir: /opt/images\n", "images-dir: /srv/images\n"),
        (
            "images-dir: /opt/images\n",
            "images-dir: /opt/images\nbuild-log-retention: 3\n",
        ),
        (
            "  - tenant-name: t1\n    max-servers: 10\n",
            "  - tenant-name: t1\n    max-servers: 11\n",
        ),
        (
            "tenant-resource-limits:\n",
            "tenant-resource-limits:\n  - tenant-name: t2\n",
        ),
        (
            "images-dir: /opt/images\n",
            "images-dir: /opt/images\ndatabase: /var/lib/np.db\n",
        ),
    ] {
        let d = diff_edit(from, to);
        assert_eq!(
            d,
            ConfigDiff {
                globals_changed: true,
                ..ConfigDiff::default()
            },
            "{from:?} -> {to:?}"
        );
    }
}

#[test]
fn secure_file_changes_show_up() {
    let secure = "diskimages:\n  - name: ubuntu\n    env-vars:\n      TOKEN: one\n";
    let before = load_with_secure(BASE, Some(secure));
    let after = load_with_secure(BASE, Some(&secure.replace("one", "two")));
    assert_eq!(
        diff(&before, &after).diskimages,
        changes(&[], &["ubuntu"], &[])
    );
    assert!(diff(&before, &load_with_secure(BASE, Some(secure))).is_empty());
}

#[test]
fn several_changes_at_once() {
    let text = edited("  port: 8005\n", "  port: 9000\n")
        .replacen("max-hold-age: 3600\n", "", 1)
        .replacen("    min-ready: 1\n", "    min-ready: 3\n", 1)
        .replacen("        max-servers: 5\n", "        max-servers: 50\n", 1);
    let d = diff(&load(BASE), &load(&text));
    assert!(d.webapp_changed && d.globals_changed && !d.zookeeper_changed);
    assert_eq!(d.labels, changes(&[], &["small"], &[]));
    assert_eq!(d.pools.changed, pool_names(&[("cloud-a", "burst")]));
    assert_eq!(d.providers, changes(&[], &["cloud-a"], &[]));
    assert!(!d.is_empty());
}
