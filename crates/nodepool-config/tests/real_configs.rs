//! The configurations a large public CI site ran must load as Python Nodepool loads them.

use std::path::PathBuf;

use nodepool_config::{Env, load_config};

fn shared(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/reference/real-configs")
        .join(name)
}

#[test]
fn opendev_launcher_config_loads() {
    let loaded = load_config(&shared("nl01.opendev.org.yaml"), None, &Env::new())
        .unwrap_or_else(|e| panic!("{e}"));
    let config = loaded.config;
    assert_eq!(config.providers.len(), 3);
    assert_eq!(config.labels.len(), 13);
    assert_eq!(config.labels["ubuntu-bionic"].min_ready, 10);
    // The duplicated `labels:` key in rax-ord: the last one (the alias) wins.
    let ord = &config.providers["rax-ord"];
    assert_eq!(ord.pools[0].labels.len(), 13);
    assert_eq!(ord.max_concurrency, Some(5));
    assert_eq!(config.labels["ubuntu-noble"].pools.len(), 3);
    let zk = config.zookeeper.expect("zookeeper");
    assert_eq!(
        zk.hosts(),
        "zk01.example.org:2281,zk02.example.org:2281,zk03.example.org:2281"
    );
    assert!(
        loaded
            .warnings
            .iter()
            .any(|w| w.message.contains("duplicate key `labels`")),
        "{:?}",
        loaded.warnings
    );
}

#[test]
fn opendev_builder_config_loads() {
    let loaded = load_config(&shared("nb04.opendev.org.yaml"), None, &Env::new())
        .unwrap_or_else(|e| panic!("{e}"));
    let config = loaded.config;
    assert!(config.diskimages.len() > 10);
    assert!(
        !config.diskimages.contains_key("base"),
        "abstract images are not buildable"
    );
    let fedora = config
        .diskimages
        .values()
        .find(|d| d.release == "30")
        .expect("numeric release becomes text");
    assert!(
        fedora.elements.contains(&"vm".to_string()),
        "elements are inherited: {:?}",
        fedora.elements
    );
    assert!(fedora.env_vars.contains_key("TMPDIR"));
}
