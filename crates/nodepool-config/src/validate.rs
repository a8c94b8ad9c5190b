//! Raw structs to [`Config`]: defaults, inheritance, cross-references, and every problem.
//!
//! Checks are those of Nodepool's `config-validate` (spec 4.7), the errors Nodepool only hits
//! at runtime (KeyError on an undefined label or diskimage, AWS label checks), and ones it
//! misses (duplicate names, labels without an image, unknown keys).

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use serde_json::Map;

use crate::config::*;
use crate::decode::{FreeMap, OneOrMany, StrMap, did_you_mean};
use crate::diagnostic::{At, Collector, Severity, Sp};
use crate::raw::*;

/// Defaults from spec 4 (Nodepool 11).
const DEFAULT_WEBAPP_PORT: u16 = 8005;
const DEFAULT_ZOOKEEPER_PORT: u16 = 2281;
const DEFAULT_ZOOKEEPER_TIMEOUT: f64 = 10.0;
const DEFAULT_BUILD_LOG_DIR: &str = "/var/log/nodepool/builds";
const DEFAULT_REBUILD_AGE: u64 = 86_400;
const DEFAULT_BUILD_TIMEOUT: u64 = 8 * 60 * 60;
const DEFAULT_PRIORITY: i64 = 100;

pub(crate) fn required<'r, T>(
    cx: &mut Collector,
    field: &'r Option<Sp<T>>,
    parent: &At,
    key: &str,
) -> Option<&'r Sp<T>> {
    if field.is_none() {
        // A key that is there but could not be read has been reported already; calling it
        // missing as well would only confuse.
        let path = parent.key(key, parent.mark).path;
        let reported = cx
            .diagnostics
            .iter()
            .any(|d| d.severity == Severity::Error && d.key_path == path);
        if !reported {
            cx.error(parent, format!("missing required key `{key}`"));
        }
    }
    field.as_ref()
}

fn non_negative(cx: &mut Collector, field: &Option<Sp<i64>>, default: u64) -> u64 {
    match field {
        None => default,
        Some(v) if v.value < 0 => {
            cx.error(&v.at, format!("must not be negative, found {}", v.value));
            default
        }
        Some(v) => v.value as u64,
    }
}

fn positive(cx: &mut Collector, field: &Option<Sp<i64>>, default: u64) -> u64 {
    match field {
        None => default,
        Some(v) if v.value <= 0 => {
            cx.error(&v.at, format!("must be greater than 0, found {}", v.value));
            default
        }
        Some(v) => v.value as u64,
    }
}

fn port(cx: &mut Collector, field: &Option<Sp<i64>>, default: u16) -> u16 {
    match field {
        None => default,
        Some(v) => match u16::try_from(v.value) {
            Ok(p) if p > 0 => p,
            _ => {
                cx.error(
                    &v.at,
                    format!("a port must be between 1 and 65535, found {}", v.value),
                );
                default
            }
        },
    }
}

fn one_of(
    cx: &mut Collector,
    field: &Option<Sp<String>>,
    allowed: &[&str],
    default: &str,
) -> String {
    match field {
        None => default.to_string(),
        Some(v) if allowed.contains(&v.as_str()) => v.value.clone(),
        Some(v) => {
            let mut message = format!("`{}` is not one of: {}", v.value, allowed.join(", "));
            if let Some(hint) = did_you_mean(&v.value, allowed) {
                message.push_str(&format!("; did you mean `{hint}`?"));
            }
            cx.error(&v.at, message);
            default.to_string()
        }
    }
}

fn string(field: &Option<Sp<String>>) -> Option<String> {
    field.as_ref().map(|v| v.value.clone())
}

fn flag(field: &Option<Sp<bool>>, default: bool) -> bool {
    field.as_ref().map(|v| v.value).unwrap_or(default)
}

fn int(field: &Option<Sp<i64>>) -> Option<i64> {
    field.as_ref().map(|v| v.value)
}

fn strings(field: &Option<Sp<Vec<String>>>) -> Vec<String> {
    field.as_ref().map(|v| v.value.clone()).unwrap_or_default()
}

fn free_map(field: &Option<Sp<FreeMap>>) -> Map<String, serde_json::Value> {
    field
        .as_ref()
        .map(|v| v.value.0.clone())
        .unwrap_or_default()
}

fn str_map<T: Clone>(field: &Option<Sp<StrMap<T>>>) -> BTreeMap<String, T> {
    field
        .as_ref()
        .map(|m| {
            m.value
                .0
                .iter()
                .map(|(k, v)| (k.clone(), v.value.clone()))
                .collect()
        })
        .unwrap_or_default()
}

fn connection_port(cx: &mut Collector, field: &Option<Sp<i64>>, connection_type: &str) -> u16 {
    let default = if connection_type == "winrm" { 5986 } else { 22 };
    port(cx, field, default)
}

/// Reports duplicate names among items (`what` is e.g. "provider").
/// A pool's labels after the checks every driver shares: names unique within the pool,
/// present, and listed in the top-level labels. Labels without a name are dropped.
fn named_pool_labels<'r, L>(
    cx: &mut Collector,
    labels: &'r Option<Sp<Vec<L>>>,
    parts: impl Fn(&'r L) -> (&'r Option<Sp<String>>, &'r At),
    provider: &str,
    known: &KnownNames,
) -> Vec<(&'r L, &'r Sp<String>)> {
    let raw: Vec<&'r L> = labels.iter().flat_map(|l| l.value.iter()).collect();
    check_unique(
        cx,
        raw.iter().filter_map(|l| parts(l).0.as_ref()),
        "pool label",
    );
    let mut named = Vec::with_capacity(raw.len());
    for label in raw {
        let (name, at) = parts(label);
        if let Some(label_name) = required(cx, name, at, "name") {
            known.check_label(cx, label_name, provider);
            named.push((label, label_name));
        }
    }
    named
}

fn check_unique<'i>(cx: &mut Collector, names: impl Iterator<Item = &'i Sp<String>>, what: &str) {
    let mut seen: BTreeMap<&str, &At> = BTreeMap::new();
    for name in names {
        if let Some(first) = seen.get(name.as_str()) {
            cx.error(
                &name.at,
                format!(
                    "{what} `{}` is already defined at line {}",
                    name.value, first.mark.line
                ),
            );
        } else {
            seen.insert(name.as_str(), &name.at);
        }
    }
}

/// What the secure file contributes, and what of the main file it is merged with.
pub(crate) struct SecureParts {
    /// The main file's ZooKeeper settings (its TLS and timeout apply to secure servers).
    pub main_zookeeper: ZooKeeperParts,
    pub zookeeper: ZooKeeperParts,
    pub diskimage_env: Vec<(Sp<String>, BTreeMap<String, String>)>,
    /// Abstract diskimages of the main file (never built, so not valid here).
    pub abstract_diskimages: BTreeSet<String>,
}

pub(crate) fn validate(raw: &RawConfig, cx: &mut Collector) -> Option<Config> {
    let webapp = validate_webapp(raw, cx);
    let zookeeper = zookeeper_parts(
        raw.zookeeper_servers.as_ref(),
        raw.zookeeper_tls.as_ref(),
        raw.zookeeper_timeout.as_ref(),
        cx,
    )
    .into_zookeeper();
    let labels = validate_labels(raw, cx);
    let mut diskimages = validate_diskimages(raw, cx);
    let mut providers = BTreeMap::new();
    let known = KnownNames {
        labels: labels.keys().cloned().collect(),
        all_diskimages: raw
            .diskimages
            .iter()
            .flat_map(|d| d.value.iter())
            .filter_map(|d| {
                d.name
                    .as_ref()
                    .map(|n| (n.value.clone(), flag(&d.abstract_, false)))
            })
            .collect(),
    };
    let raw_providers: Vec<&RawProvider> =
        raw.providers.iter().flat_map(|p| p.value.iter()).collect();
    check_unique(
        cx,
        raw_providers.iter().filter_map(|p| p.name.as_ref()),
        "provider",
    );
    let mut static_nodes: BTreeMap<(String, String, u16), At> = BTreeMap::new();
    // Provider names in the order they are written: a label's pools follow it.
    let mut provider_order = Vec::new();
    for raw_provider in raw_providers {
        if let Some(provider) = validate_provider(raw_provider, &known, &mut static_nodes, cx)
            && !providers.contains_key(&provider.name)
        {
            provider_order.push(provider.name.clone());
            providers.insert(provider.name.clone(), provider);
        }
    }
    // Every image-managing provider's format is built for the images it uploads (spec 4.4).
    for provider in providers.values() {
        let Some(image_type) = &provider.image_type else {
            continue;
        };
        for name in provider.diskimages.keys() {
            if let Some(image) = diskimages.get_mut(name) {
                image.formats.insert(image_type.clone());
            }
        }
    }
    let mut labels = labels;
    for provider in provider_order.iter().filter_map(|name| providers.get(name)) {
        for pool in &provider.pools {
            for label in pool.labels.keys() {
                if let Some(l) = labels.get_mut(label) {
                    l.pools.push((provider.name.clone(), pool.name.clone()));
                }
            }
        }
    }
    for raw_label in raw.labels.iter().flat_map(|l| l.value.iter()) {
        let (Some(name), Some(min_ready)) = (&raw_label.name, &raw_label.min_ready) else {
            continue;
        };
        if min_ready.value > 0
            && labels
                .get(name.as_str())
                .is_some_and(|l| l.pools.is_empty())
        {
            cx.warn(
                &min_ready.at,
                format!(
                    "label `{}` has min-ready {} but no pool provides it",
                    name.value, min_ready.value
                ),
            );
        }
    }
    let tenant_resource_limits = validate_tenant_limits(raw, cx);
    let max_hold_age = raw
        .max_hold_age
        .as_ref()
        .and_then(|v| (v.value > 0).then_some(v.value as u64));
    let build_log_retention = int(&raw.build_log_retention).unwrap_or(7);
    for image in diskimages.values_mut() {
        if image.formats.is_empty() {
            // diskimage-builder's own default; our native back-end produces the same.
            image.formats.insert("qcow2".to_string());
        }
    }
    if cx.has_errors() {
        return None;
    }
    Some(Config {
        zookeeper,
        database: string(&raw.database).map(PathBuf::from),
        webapp,
        elements_dir: string(&raw.elements_dir).map(PathBuf::from),
        images_dir: string(&raw.images_dir).map(PathBuf::from),
        build_log_dir: PathBuf::from(
            string(&raw.build_log_dir).unwrap_or_else(|| DEFAULT_BUILD_LOG_DIR.into()),
        ),
        build_log_retention,
        max_hold_age,
        labels,
        diskimages,
        providers,
        tenant_resource_limits,
    })
}

fn validate_webapp(raw: &RawConfig, cx: &mut Collector) -> Webapp {
    let Some(webapp) = &raw.webapp else {
        return Webapp {
            port: DEFAULT_WEBAPP_PORT,
            listen_address: "0.0.0.0".into(),
        };
    };
    let port = match &webapp.port {
        None => DEFAULT_WEBAPP_PORT,
        // Port 0 asks the OS for a free port, which tests use.
        Some(v) => u16::try_from(v.value).unwrap_or_else(|_| {
            cx.error(
                &v.at,
                format!("a port must be between 0 and 65535, found {}", v.value),
            );
            DEFAULT_WEBAPP_PORT
        }),
    };
    let listen_address = string(&webapp.listen_address).unwrap_or_else(|| "0.0.0.0".into());
    if let Some(addr) = &webapp.listen_address
        && addr.parse::<std::net::IpAddr>().is_err()
        && addr.is_empty()
    {
        cx.error(&addr.at, "listen_address must not be empty");
    }
    Webapp {
        port,
        listen_address,
    }
}

/// The ZooKeeper settings one file writes, each checked; no servers means none written.
#[derive(Debug, Clone)]
pub(crate) struct ZooKeeperParts {
    pub servers: Vec<ZooKeeperServer>,
    pub chroot: Option<String>,
    pub tls: Option<ZooKeeperTls>,
    pub timeout: f64,
}

impl ZooKeeperParts {
    /// ZooKeeper when servers are configured, else `None` (the embedded store).
    pub fn into_zookeeper(self) -> Option<ZooKeeper> {
        (!self.servers.is_empty()).then_some(ZooKeeper {
            servers: self.servers,
            chroot: self.chroot,
            tls: self.tls,
            timeout: self.timeout,
        })
    }
}

pub(crate) fn zookeeper_parts(
    servers: Option<&Sp<Vec<RawZooKeeperServer>>>,
    tls: Option<&Sp<RawZooKeeperTls>>,
    timeout: Option<&Sp<f64>>,
    cx: &mut Collector,
) -> ZooKeeperParts {
    let tls = tls.map(|t| {
        let cert = required(cx, &t.cert, &t.at, "cert").map(|v| PathBuf::from(&v.value));
        let key = required(cx, &t.key, &t.at, "key").map(|v| PathBuf::from(&v.value));
        let ca = required(cx, &t.ca, &t.at, "ca").map(|v| PathBuf::from(&v.value));
        (cert, key, ca)
    });
    let mut out = Vec::new();
    let mut chroot: Option<Sp<String>> = None;
    for server in servers.iter().flat_map(|s| s.value.iter()) {
        let host = required(cx, &server.host, &server.at, "host").map(|h| h.value.clone());
        let port = port(cx, &server.port, DEFAULT_ZOOKEEPER_PORT);
        if let Some(c) = &server.chroot {
            if !c.starts_with('/') {
                cx.error(
                    &c.at,
                    format!("a chroot must start with `/`, found `{}`", c.value),
                );
            }
            match &chroot {
                Some(first) if first.value != c.value => cx.error(
                    &c.at,
                    format!(
                        "every server must use the same chroot; line {} uses `{}`",
                        first.at.mark.line, first.value
                    ),
                ),
                Some(_) => {}
                None => chroot = Some(c.clone()),
            }
        }
        if let Some(host) = host {
            out.push(ZooKeeperServer { host, port });
        }
    }
    let timeout = match timeout {
        None => DEFAULT_ZOOKEEPER_TIMEOUT,
        Some(t) if t.value > 0.0 => t.value,
        Some(t) => {
            cx.error(&t.at, format!("must be greater than 0, found {}", t.value));
            DEFAULT_ZOOKEEPER_TIMEOUT
        }
    };
    let tls = match tls {
        Some((Some(cert), Some(key), Some(ca))) => Some(ZooKeeperTls { cert, key, ca }),
        _ => None,
    };
    ZooKeeperParts {
        servers: out,
        chroot: chroot
            .map(|c| c.value.trim_end_matches('/').to_string())
            .filter(|c| !c.is_empty()),
        tls,
        timeout,
    }
}

fn validate_labels(raw: &RawConfig, cx: &mut Collector) -> BTreeMap<String, Label> {
    let mut labels = BTreeMap::new();
    let raw_labels: Vec<&RawLabel> = raw.labels.iter().flat_map(|l| l.value.iter()).collect();
    check_unique(
        cx,
        raw_labels.iter().filter_map(|l| l.name.as_ref()),
        "label",
    );
    for label in raw_labels {
        let Some(name) = required(cx, &label.name, &label.at, "name") else {
            continue;
        };
        // Nodepool treats a value <= 0 as "none" (`min-ready: -1` was once the documented way
        // to disable a label) and a max-ready-age <= 0 as "never": both load unchanged.
        let min_ready = match &label.min_ready {
            None => 0,
            Some(v) if v.value <= 0 => 0,
            Some(v) => u32::try_from(v.value).unwrap_or_else(|_| {
                cx.error(
                    &v.at,
                    format!("min-ready must be at most {}, found {}", u32::MAX, v.value),
                );
                0
            }),
        };
        let max_ready_age = label
            .max_ready_age
            .as_ref()
            .map_or(0, |v| v.value.max(0) as u64);
        labels.entry(name.value.clone()).or_insert(Label {
            name: name.value.clone(),
            min_ready,
            max_ready_age,
            pools: Vec::new(),
        });
    }
    labels
}

/// Accumulates a diskimage along its parent chain as Nodepool's `setFromConfig` does:
/// elements append, env-vars merge, and other values apply only when truthy.
fn apply_diskimage(image: &mut DiskImage, raw: &RawDiskImage, cx: &mut Collector) {
    if let Some(v) = raw.build_timeout.as_ref().filter(|v| v.value != 0) {
        image.build_timeout = positive(cx, &Some(v.clone()), DEFAULT_BUILD_TIMEOUT);
    }
    if let Some(v) = raw.dib_cmd.as_ref().filter(|v| !v.is_empty()) {
        image.dib_cmd = v.value.clone();
    }
    image.elements.extend(strings(&raw.elements));
    image.env_vars.extend(str_map(&raw.env_vars));
    if let Some(v) = raw.formats.as_ref().filter(|v| !v.is_empty()) {
        image.formats = v.iter().cloned().collect();
    }
    if let Some(v) = raw.keep_formats.as_ref().filter(|v| !v.is_empty()) {
        image.keep_formats = v.iter().cloned().collect();
    }
    if let Some(v) = &raw.delete_after_upload {
        image.delete_after_upload = v.value;
    }
    if raw.pause.as_ref().is_some_and(|v| v.value) {
        image.pause = true;
    }
    if let Some(v) = raw.python_path.as_ref().filter(|v| !v.is_empty()) {
        image.python_path = v.value.clone();
    }
    if let Some(v) = raw.shell_type.as_ref().filter(|v| !v.is_empty()) {
        image.shell_type = Some(v.value.clone());
    }
    if let Some(v) = raw.rebuild_age.as_ref().filter(|v| v.value != 0) {
        image.rebuild_age = positive(cx, &Some(v.clone()), DEFAULT_REBUILD_AGE);
    }
    if let Some(v) = raw.release.as_ref().filter(|v| !v.0.is_empty()) {
        image.release = v.0.clone();
    }
    if let Some(v) = raw.username.as_ref().filter(|v| !v.is_empty()) {
        image.username = v.value.clone();
    }
    // Nodepool does not inherit metadata: each level replaces it, absent means empty.
    image.metadata = free_map(&raw.metadata);
    if let Some(backend) = &raw.build_backend {
        match backend.as_str() {
            "dib" => image.backend = BuildBackend::Dib,
            "native" => image.backend = BuildBackend::Native(native_defaults()),
            _ => {
                one_of(cx, &raw.build_backend, &["dib", "native"], "dib");
            }
        }
    }
    if let Some(native) = &raw.native {
        let BuildBackend::Native(settings) = &mut image.backend else {
            cx.error(&native.at, "`native` options need `build-backend: native`");
            return;
        };
        if let Some(d) = &native.distribution {
            settings.distribution = d.value.clone();
        }
        if let Some(m) = &native.mirror {
            settings.mirror = Some(m.value.clone());
        }
        settings.packages.extend(strings(&native.packages));
        if native.disk_size.is_some() {
            settings.disk_size = positive(cx, &native.disk_size, settings.disk_size);
        }
        if let Some(k) = &native.kernel {
            settings.kernel = Some(k.value.clone());
        }
    }
}

fn native_defaults() -> NativeBuild {
    NativeBuild {
        distribution: "debian".into(),
        mirror: None,
        packages: Vec::new(),
        disk_size: 2,
        kernel: None,
    }
}

fn validate_diskimages(raw: &RawConfig, cx: &mut Collector) -> BTreeMap<String, DiskImage> {
    let raw_images: Vec<&RawDiskImage> =
        raw.diskimages.iter().flat_map(|d| d.value.iter()).collect();
    check_unique(
        cx,
        raw_images.iter().filter_map(|d| d.name.as_ref()),
        "diskimage",
    );
    let by_name: BTreeMap<&str, &RawDiskImage> = raw_images
        .iter()
        .rev()
        .filter_map(|d| d.name.as_ref().map(|n| (n.as_str(), *d)))
        .collect();
    for image in &raw_images {
        required(cx, &image.name, &image.at, "name");
        if let Some(parent) = &image.parent
            && !by_name.contains_key(parent.as_str())
        {
            let own_name = image.name.as_ref().map(|n| n.as_str());
            let known: Vec<&str> = by_name
                .keys()
                .copied()
                .filter(|k| Some(*k) != own_name)
                .collect();
            let mut message = format!("parent diskimage `{}` is not defined", parent.value);
            if let Some(hint) = did_you_mean(&parent.value, &known) {
                message.push_str(&format!("; did you mean `{hint}`?"));
            }
            cx.error(&parent.at, message);
        }
    }
    let mut images = BTreeMap::new();
    for raw_image in &raw_images {
        let Some(name) = &raw_image.name else {
            continue;
        };
        if flag(&raw_image.abstract_, false) || images.contains_key(name.as_str()) {
            continue;
        }
        // Walk up the parent chain, then apply root first.
        let mut chain = vec![*raw_image];
        let mut current = *raw_image;
        let mut cyclic = false;
        while let Some(parent) = &current.parent {
            let Some(next) = by_name.get(parent.as_str()) else {
                break;
            };
            if chain.iter().any(|c| std::ptr::eq(*c, *next)) {
                cx.error(
                    &parent.at,
                    format!(
                        "diskimage `{}` inherits from itself through `parent`",
                        name.value
                    ),
                );
                cyclic = true;
                break;
            }
            chain.push(next);
            current = next;
        }
        if cyclic {
            continue;
        }
        let mut image = DiskImage {
            name: name.value.clone(),
            elements: Vec::new(),
            env_vars: EnvVars::default(),
            formats: BTreeSet::new(),
            keep_formats: BTreeSet::new(),
            delete_after_upload: false,
            release: String::new(),
            dib_cmd: "disk-image-create".into(),
            rebuild_age: DEFAULT_REBUILD_AGE,
            build_timeout: DEFAULT_BUILD_TIMEOUT,
            pause: false,
            username: "zuul".into(),
            python_path: "auto".into(),
            shell_type: None,
            metadata: Map::new(),
            backend: BuildBackend::Dib,
        };
        for level in chain.iter().rev() {
            apply_diskimage(&mut image, level, cx);
        }
        images.insert(image.name.clone(), image);
    }
    images
}

fn validate_tenant_limits(raw: &RawConfig, cx: &mut Collector) -> BTreeMap<String, ResourceLimits> {
    let mut out = BTreeMap::new();
    let entries: Vec<&RawTenantLimit> = raw
        .tenant_resource_limits
        .iter()
        .flat_map(|t| t.value.iter())
        .collect();
    check_unique(
        cx,
        entries.iter().filter_map(|t| t.tenant_name.as_ref()),
        "tenant",
    );
    for entry in entries {
        let Some(tenant) = required(cx, &entry.tenant_name, &entry.at, "tenant-name") else {
            continue;
        };
        let mut limits = ResourceLimits::new();
        for (key, value) in &entry.limits {
            let resource = match key.as_str() {
                "max-cores" => "cores",
                "max-servers" => "instances",
                "max-ram" => "ram",
                "max-volumes" => "volumes",
                "max-volume-gb" => "volume-gb",
                other => other,
            };
            if value.value < 0 {
                cx.error(
                    &value.at,
                    format!("must not be negative, found {}", value.value),
                );
            }
            limits.insert(resource.to_string(), value.value);
        }
        out.entry(tenant.value.clone()).or_insert(limits);
    }
    out
}

struct KnownNames {
    labels: BTreeSet<String>,
    /// Every diskimage name with whether it is abstract.
    all_diskimages: BTreeMap<String, bool>,
}

impl KnownNames {
    fn check_label(&self, cx: &mut Collector, name: &Sp<String>, provider: &str) {
        if !self.labels.contains(name.as_str()) {
            let known: Vec<&str> = self.labels.iter().map(String::as_str).collect();
            let mut message = format!(
                "label `{}` in provider `{provider}` is not in the top-level labels",
                name.value
            );
            if let Some(hint) = did_you_mean(&name.value, &known) {
                message.push_str(&format!("; did you mean `{hint}`?"));
            }
            cx.error(&name.at, message);
        }
    }

    fn check_diskimage(&self, cx: &mut Collector, name: &Sp<String>, provider: &str) {
        match self.all_diskimages.get(name.as_str()) {
            None => {
                let known: Vec<&str> = self.all_diskimages.keys().map(String::as_str).collect();
                let mut message = format!(
                    "diskimage `{}` in provider `{provider}` is not defined in the top-level diskimages",
                    name.value
                );
                if let Some(hint) = did_you_mean(&name.value, &known) {
                    message.push_str(&format!("; did you mean `{hint}`?"));
                }
                cx.error(&name.at, message)
            }
            Some(true) => cx.error(
                &name.at,
                format!("diskimage `{}` is abstract: it is never built, so provider `{provider}` cannot use it", name.value),
            ),
            Some(false) => {}
        }
    }
}

/// The common parts every driver's provider has.
struct Common {
    name: String,
    max_concurrency: Option<u32>,
    priority: Option<i64>,
}

fn common(
    cx: &mut Collector,
    at: &At,
    name: &Option<Sp<String>>,
    max_concurrency: &Option<Sp<i64>>,
    priority: &Option<Sp<i64>>,
) -> Option<Common> {
    let name = required(cx, name, at, "name")?.value.clone();
    let max_concurrency = match max_concurrency {
        None => None,
        Some(v) if v.value == -1 => None,
        Some(v) => match u32::try_from(v.value) {
            Ok(n) => Some(n),
            Err(_) => {
                cx.error(
                    &v.at,
                    format!(
                        "max-concurrency must be -1 (unlimited) or at least 0, found {}",
                        v.value
                    ),
                );
                None
            }
        },
    };
    Some(Common {
        name,
        max_concurrency,
        priority: int(priority),
    })
}

fn validate_provider(
    raw: &RawProvider,
    known: &KnownNames,
    static_nodes: &mut BTreeMap<(String, String, u16), At>,
    cx: &mut Collector,
) -> Option<Provider> {
    let forced_fake = raw.name.as_ref().is_some_and(|n| n.starts_with("fake"));
    if forced_fake
        && let Some(driver) = &raw.driver
        && driver.as_str() != "fake"
    {
        cx.warn(
            &driver.at,
            format!("providers whose name starts with `fake` always use the fake driver (as in Nodepool); `driver: {}` is ignored", driver.value),
        );
    }
    match &raw.body {
        RawProviderBody::OpenStack(p) => validate_openstack(
            p,
            forced_fake || raw.driver.as_ref().is_some_and(|d| d.as_str() == "fake"),
            known,
            cx,
        ),
        RawProviderBody::Static(p) => validate_static(p, known, static_nodes, cx),
        RawProviderBody::Aws(p) => validate_aws(p, known, cx),
        RawProviderBody::Kubernetes(p) => validate_kubernetes(p, known, cx),
        RawProviderBody::OpenShiftPods(p) => validate_openshiftpods(p, known, cx),
        RawProviderBody::Qemu(p) => validate_qemu(p, known, cx),
        RawProviderBody::Container(p) => validate_container(p, known, cx),
        RawProviderBody::Unknown => {
            if let Some(driver) = &raw.driver {
                if NODEPOOL_ONLY_DRIVERS.contains(&driver.as_str()) {
                    cx.error(
                        &driver.at,
                        format!("driver `{}` is a Nodepool driver this implementation does not support; supported drivers: {}", driver.value, DRIVER_NAMES.join(", ")),
                    );
                    return None;
                }
                let mut message = format!(
                    "unknown driver `{}`; known drivers: {}",
                    driver.value,
                    DRIVER_NAMES.join(", ")
                );
                if let Some(hint) = did_you_mean(&driver.value, DRIVER_NAMES) {
                    message.push_str(&format!("; did you mean `{hint}`?"));
                }
                cx.error(&driver.at, message);
            }
            None
        }
    }
}

/// Drivers of Python Nodepool 11 that this implementation does not provide.
const NODEPOOL_ONLY_DRIVERS: &[&str] = &[
    "azure",
    "example",
    "gce",
    "ibmvpc",
    "metastatic",
    "openshift",
    "test",
];

fn pool_priority(pool: &Option<Sp<i64>>, provider: Option<i64>) -> i64 {
    int(pool).or(provider).unwrap_or(DEFAULT_PRIORITY)
}

fn max_servers(cx: &mut Collector, field: &Option<Sp<i64>>, default: Option<i64>) -> Option<i64> {
    let _ = cx;
    field.as_ref().map(|v| v.value).or(default)
}

fn limit(out: &mut ResourceLimits, key: &str, field: &Option<Sp<i64>>, cx: &mut Collector) {
    if let Some(v) = field {
        if v.value < 0 {
            cx.error(&v.at, format!("must not be negative, found {}", v.value));
        }
        out.insert(key.to_string(), v.value);
    }
}

/// The images a pool label of one provider may use.
struct ImageScope<'s> {
    provider: &'s str,
    diskimages: &'s BTreeMap<String, ProviderDiskImage>,
    cloud_images: &'s BTreeMap<String, CloudImage>,
    known: &'s KnownNames,
}

/// Checks a pool label's image reference against the provider's images.
fn label_image(
    cx: &mut Collector,
    scope: &ImageScope,
    label_at: &At,
    label_name: &str,
    diskimage: &Option<Sp<String>>,
    cloud_image: &Option<Sp<String>>,
) -> LabelImage {
    let ImageScope {
        provider,
        diskimages: provider_diskimages,
        cloud_images: provider_cloud_images,
        known,
    } = *scope;
    match (diskimage, cloud_image) {
        (Some(d), Some(c)) => {
            cx.error(
                &c.at,
                format!(
                    "label `{label_name}` sets both `diskimage` (`{}`) and `cloud-image`; use one",
                    d.value
                ),
            );
            LabelImage::None
        }
        (None, None) => {
            cx.error(
                label_at,
                format!("label `{label_name}` needs either `diskimage` or `cloud-image`"),
            );
            LabelImage::None
        }
        (Some(d), None) => {
            if known.all_diskimages.contains_key(d.as_str()) {
                if !provider_diskimages.contains_key(d.as_str()) {
                    cx.error(
                        &d.at,
                        format!("label `{label_name}` uses diskimage `{}`, which provider `{provider}` does not list in its `diskimages`", d.value),
                    );
                }
                known.check_diskimage(cx, d, provider);
            } else {
                let known_names: Vec<&str> =
                    known.all_diskimages.keys().map(String::as_str).collect();
                let mut message = format!(
                    "label `{label_name}` in provider `{provider}` uses diskimage `{}`, which is not defined in the top-level diskimages",
                    d.value
                );
                if let Some(hint) = did_you_mean(&d.value, &known_names) {
                    message.push_str(&format!("; did you mean `{hint}`?"));
                }
                cx.error(&d.at, message);
            }
            LabelImage::Diskimage(d.value.clone())
        }
        (None, Some(c)) => {
            if !provider_cloud_images.contains_key(c.as_str()) {
                let known_names: Vec<&str> =
                    provider_cloud_images.keys().map(String::as_str).collect();
                let mut message = format!(
                    "cloud-image `{}` does not exist in provider `{provider}` but is referenced in label `{label_name}`",
                    c.value
                );
                if let Some(hint) = did_you_mean(&c.value, &known_names) {
                    message.push_str(&format!("; did you mean `{hint}`?"));
                }
                cx.error(&c.at, message);
            }
            LabelImage::CloudImage(c.value.clone())
        }
    }
}

fn check_pools_unique<'p, P: 'p>(
    cx: &mut Collector,
    pools: impl Iterator<Item = &'p P>,
    name: impl Fn(&P) -> &Option<Sp<String>>,
) {
    let names: Vec<&Sp<String>> = pools.filter_map(|p| name(p).as_ref()).collect();
    check_unique(cx, names.into_iter(), "pool");
}

/// The keys every image-managing driver's provider diskimage entries have.
struct ProviderImageKeys<'r> {
    at: &'r At,
    name: &'r Option<Sp<String>>,
    pause: &'r Option<Sp<bool>>,
    connection_type: &'r Option<Sp<String>>,
    connection_port: &'r Option<Sp<i64>>,
}

/// Provider diskimage entries common to every image-managing driver.
fn provider_diskimage(
    cx: &mut Collector,
    known: &KnownNames,
    provider: &str,
    keys: ProviderImageKeys,
) -> Option<ProviderDiskImage> {
    let ProviderImageKeys {
        at,
        name,
        pause,
        connection_type,
        connection_port: connection_port_field,
    } = keys;
    let name = required(cx, name, at, "name")?;
    known.check_diskimage(cx, name, provider);
    let connection_type = string(connection_type).unwrap_or_else(|| "ssh".into());
    let connection_port = connection_port(cx, connection_port_field, &connection_type);
    Some(ProviderDiskImage {
        name: name.value.clone(),
        pause: flag(pause, false),
        connection_type,
        connection_port,
        username: None,
        python_path: "auto".into(),
        shell_type: None,
        config_drive: None,
        meta: Map::new(),
        driver: ProviderDiskImageSettings::None,
    })
}

fn collect_unique<T>(
    cx: &mut Collector,
    items: Vec<(Sp<String>, T)>,
    what: &str,
) -> BTreeMap<String, T> {
    check_unique(cx, items.iter().map(|(n, _)| n), what);
    let mut out = BTreeMap::new();
    for (name, item) in items {
        out.entry(name.value).or_insert(item);
    }
    out
}

/// A fault rate of `fake-faults`: a probability from 0 to 1; 0 when unset.
fn probability(cx: &mut Collector, field: &Option<Sp<f64>>) -> f64 {
    match field {
        None => 0.0,
        Some(v) if (0.0..=1.0).contains(&v.value) => v.value,
        Some(v) => {
            cx.error(
                &v.at,
                format!("must be a probability from 0 to 1, found {}", v.value),
            );
            0.0
        }
    }
}

fn validate_openstack(
    p: &RawOpenStackProvider,
    fake: bool,
    known: &KnownNames,
    cx: &mut Collector,
) -> Option<Provider> {
    let common = common(cx, &p.at, &p.name, &p.max_concurrency, &p.priority)?;
    let name = common.name.clone();
    let cloud = if fake {
        string(&p.cloud).unwrap_or_else(|| "fake".into())
    } else {
        required(cx, &p.cloud, &p.at, "cloud")
            .map(|c| c.value.clone())
            .unwrap_or_default()
    };
    let fake_cloud = if fake {
        let quota = p.fake_quota.as_ref();
        let faults = p.fake_faults.as_ref();
        Some(FakeCloud {
            instances: quota.and_then(|q| int(&q.instances)).unwrap_or(20),
            cores: quota.and_then(|q| int(&q.cores)).unwrap_or(100),
            ram: quota.and_then(|q| int(&q.ram)).unwrap_or(1_000_000),
            faults: faults
                .map(|f| FakeFaults {
                    launch_failures: non_negative(cx, &f.launch_failures, 0),
                    quota_errors: non_negative(cx, &f.quota_errors, 0),
                    delete_failures: non_negative(cx, &f.delete_failures, 0),
                    api_errors: non_negative(cx, &f.api_errors, 0),
                    upload_failures: non_negative(cx, &f.upload_failures, 0),
                    hung_creates: non_negative(cx, &f.hung_creates, 0),
                    hung_deletes: non_negative(cx, &f.hung_deletes, 0),
                    hung_console_logs: non_negative(cx, &f.hung_console_logs, 0),
                    api_error_rate: probability(cx, &f.api_error_rate),
                    quota_error_rate: probability(cx, &f.quota_error_rate),
                    hung_call_rate: probability(cx, &f.hung_call_rate),
                    delete_failure_rate: probability(cx, &f.delete_failure_rate),
                    fault_seed: non_negative(cx, &f.fault_seed, 0),
                    create_delay: f
                        .create_delay
                        .as_ref()
                        .map(|d| d.value.max(0.0))
                        .unwrap_or(0.0),
                    delete_delay: f
                        .delete_delay
                        .as_ref()
                        .map(|d| d.value.max(0.0))
                        .unwrap_or(0.0),
                })
                .unwrap_or_default(),
            state_file: string(&p.fake_state).map(PathBuf::from),
        })
    } else {
        if let Some(state) = &p.fake_state {
            cx.error(
                &state.at,
                "only providers of the fake driver take `fake-state`",
            );
        }
        for field in [
            p.fake_quota.as_ref().map(|q| &q.at),
            p.fake_faults.as_ref().map(|f| &f.at),
        ]
        .into_iter()
        .flatten()
        {
            cx.error(
                field,
                "only providers of the fake driver take `fake-quota` and `fake-faults`",
            );
        }
        None
    };
    let rate = match &p.rate {
        None => 1.0,
        Some(r) if r.0 >= 0.0 => r.0,
        Some(r) => {
            cx.error(&r.at, format!("rate must not be negative, found {}", r.0));
            1.0
        }
    };
    let diskimages = p
        .diskimages
        .iter()
        .flat_map(|d| d.value.iter())
        .filter_map(|d| {
            let mut image = provider_diskimage(
                cx,
                known,
                &name,
                ProviderImageKeys {
                    at: &d.at,
                    name: &d.name,
                    pause: &d.pause,
                    connection_type: &d.connection_type,
                    connection_port: &d.connection_port,
                },
            )?;
            image.config_drive = d.config_drive.as_ref().map(|v| v.value);
            image.meta = free_map(&d.meta);
            Some((d.name.clone()?, image))
        })
        .collect();
    let diskimages = collect_unique(cx, diskimages, "diskimage");
    let cloud_images = p
        .cloud_images
        .iter()
        .flat_map(|c| c.value.iter())
        .filter_map(|c| {
            let image_name = required(cx, &c.name, &c.at, "name")?;
            let source = match (&c.image_id, &c.image_name) {
                (Some(id), Some(other)) => {
                    cx.error(&other.at, format!("cloud-image `{}` sets both `image-id` (`{}`) and `image-name`; use one", image_name.value, id.value));
                    CloudImageSource::Id(id.value.clone())
                }
                (Some(id), None) => CloudImageSource::Id(id.value.clone()),
                (None, Some(n)) => CloudImageSource::Name(n.value.clone()),
                (None, None) => CloudImageSource::Name(image_name.value.clone()),
            };
            let connection_type = string(&c.connection_type).unwrap_or_else(|| "ssh".into());
            let connection_port = connection_port(cx, &c.connection_port, &connection_type);
            Some((
                image_name.clone(),
                CloudImage {
                    name: image_name.value.clone(),
                    source,
                    username: string(&c.username),
                    python_path: string(&c.python_path).unwrap_or_else(|| "auto".into()),
                    shell_type: string(&c.shell_type),
                    connection_type,
                    connection_port,
                    config_drive: c.config_drive.as_ref().map(|v| v.value),
                },
            ))
        })
        .collect();
    let cloud_images = collect_unique(cx, cloud_images, "cloud-image");
    let raw_pools: Vec<&RawOpenStackPool> = p.pools.iter().flat_map(|v| v.value.iter()).collect();
    check_pools_unique(cx, raw_pools.iter().copied(), |p| &p.name);
    let mut pools = Vec::new();
    for pool in raw_pools {
        let Some(pool_name) = required(cx, &pool.name, &pool.at, "name") else {
            continue;
        };
        let host_key_checking = flag(&pool.host_key_checking, true);
        let networks = strings(&pool.networks);
        let mut labels = BTreeMap::new();
        for (label, label_name) in
            named_pool_labels(cx, &pool.labels, |l| (&l.name, &l.at), &name, known)
        {
            let image = label_image(
                cx,
                &ImageScope {
                    provider: &name,
                    diskimages: &diskimages,
                    cloud_images: &cloud_images,
                    known,
                },
                &label.at,
                label_name,
                &label.diskimage,
                &label.cloud_image,
            );
            if label.min_ram.is_none() && label.flavor_name.is_none() {
                cx.error(
                    &label.at,
                    format!(
                        "label `{}` needs `min-ram` or `flavor-name` to choose a flavor",
                        label_name.value
                    ),
                );
            }
            let settings = OpenStackLabel {
                min_ram: int(&label.min_ram),
                flavor_name: string(&label.flavor_name),
                key_name: string(&label.key_name),
                console_log: flag(&label.console_log, false),
                boot_from_volume: flag(&label.boot_from_volume, false),
                volume_size: int(&label.volume_size).unwrap_or(50),
                instance_properties: free_map(&label.instance_properties),
                dynamic_instance_properties: str_map(&label.dynamic_instance_properties),
                userdata: string(&label.userdata),
                networks: label
                    .networks
                    .as_ref()
                    .map(|n| n.value.clone())
                    .unwrap_or_else(|| networks.clone()),
                host_key_checking: flag(&label.host_key_checking, host_key_checking),
            };
            labels.entry(label_name.value.clone()).or_insert(PoolLabel {
                name: label_name.value.clone(),
                image,
                settings: LabelSettings::OpenStack(settings),
            });
        }
        let mut max_resources = ResourceLimits::new();
        limit(&mut max_resources, "cores", &pool.max_cores, cx);
        limit(&mut max_resources, "ram", &pool.max_ram, cx);
        limit(&mut max_resources, "volumes", &pool.max_volumes, cx);
        limit(&mut max_resources, "volume-gb", &pool.max_volume_gb, cx);
        pools.push(Pool {
            name: pool_name.value.clone(),
            max_servers: max_servers(cx, &pool.max_servers, None),
            priority: pool_priority(&pool.priority, common.priority),
            node_attributes: pool.node_attributes.as_ref().map(|a| a.value.0.clone()),
            labels,
            max_resources,
            settings: PoolSettings::OpenStack(OpenStackPool {
                networks,
                security_groups: strings(&pool.security_groups),
                availability_zones: strings(&pool.availability_zones),
                auto_floating_ip: flag(&pool.auto_floating_ip, true),
                host_key_checking,
                ignore_provider_quota: flag(&pool.ignore_provider_quota, false),
                use_internal_ip: flag(&pool.use_internal_ip, false),
            }),
        });
    }
    let settings = OpenStackProvider {
        cloud,
        region_name: string(&p.region_name),
        rate,
        boot_timeout: positive(cx, &p.boot_timeout, 60),
        launch_timeout: positive(cx, &p.launch_timeout, 3600),
        launch_retries: positive(cx, &p.launch_retries, 3) as u32,
        image_upload_timeout: positive(cx, &p.image_upload_timeout, 3600),
        image_name_format: string(&p.image_name_format)
            .unwrap_or_else(|| "{image_name}-{timestamp}".into()),
        clean_floating_ips: flag(&p.clean_floating_ips, false),
        port_cleanup_interval: non_negative(cx, &p.port_cleanup_interval, 600),
        post_upload_hook: string(&p.post_upload_hook).map(PathBuf::from),
        fake: fake_cloud,
    };
    if let Some(format) = &p.image_name_format {
        check_image_name_format(cx, format);
    }
    Some(Provider {
        name,
        driver: if fake {
            DriverKind::Fake
        } else {
            DriverKind::OpenStack
        },
        max_concurrency: common.max_concurrency,
        priority: common.priority,
        pools,
        diskimages,
        cloud_images,
        // From clouds.yaml `image_format` at runtime; qcow2 is openstacksdk's default.
        image_type: Some("qcow2".into()),
        settings: ProviderSettings::OpenStack(settings),
    })
}

/// `image-name-format` is a Python format string with `image_name`, `upload_id`, `timestamp`.
fn check_image_name_format(cx: &mut Collector, format: &Sp<String>) {
    let mut rest = format.as_str();
    while let Some(start) = rest.find('{') {
        if rest[start..].starts_with("{{") {
            rest = &rest[start + 2..];
            continue;
        }
        let Some(end) = rest[start..].find('}') else {
            cx.error(&format.at, "unbalanced `{` in image-name-format");
            return;
        };
        let field = &rest[start + 1..start + end];
        let field_name = field.split([':', '!']).next().unwrap_or_default();
        if !["image_name", "upload_id", "timestamp"].contains(&field_name) {
            cx.error(
                &format.at,
                format!("image-name-format uses `{{{field}}}`; the fields are image_name, upload_id and timestamp"),
            );
        }
        rest = &rest[start + end + 1..];
    }
}

fn validate_static(
    p: &RawStaticProvider,
    known: &KnownNames,
    static_nodes: &mut BTreeMap<(String, String, u16), At>,
    cx: &mut Collector,
) -> Option<Provider> {
    let common = common(cx, &p.at, &p.name, &p.max_concurrency, &p.priority)?;
    let raw_pools: Vec<&RawStaticPool> = p.pools.iter().flat_map(|v| v.value.iter()).collect();
    check_pools_unique(cx, raw_pools.iter().copied(), |p| &p.name);
    let mut pools = Vec::new();
    for pool in raw_pools {
        let Some(pool_name) = required(cx, &pool.name, &pool.at, "name") else {
            continue;
        };
        let mut nodes = Vec::new();
        let mut labels = BTreeMap::new();
        for node in pool.nodes.iter().flat_map(|n| n.value.iter()) {
            let host = required(cx, &node.name, &node.at, "name");
            let node_labels = required(cx, &node.labels, &node.at, "labels");
            let (Some(host), Some(node_labels)) = (host, node_labels) else {
                continue;
            };
            let label_names: Vec<Sp<String>> = match &node_labels.value {
                OneOrMany::One(s) => {
                    let split: Vec<String> = s.split_whitespace().map(String::from).collect();
                    if split.len() > 1 {
                        cx.warn(
                            &node_labels.at,
                            format!("`labels: \"{s}\"` is read as the list {split:?}; Python Nodepool would give the node the single label `{s}` (its bug), so write a YAML list"),
                        );
                    }
                    split
                        .into_iter()
                        .map(|value| Sp {
                            value,
                            at: node_labels.at.clone(),
                        })
                        .collect()
                }
                OneOrMany::Many(v) => v.clone(),
            };
            for label in &label_names {
                known.check_label(cx, label, &common.name);
                labels.entry(label.value.clone()).or_insert(PoolLabel {
                    name: label.value.clone(),
                    image: LabelImage::None,
                    settings: LabelSettings::Static,
                });
            }
            let label_names: Vec<String> = label_names.into_iter().map(|l| l.value).collect();
            let connection_type = string(&node.connection_type).unwrap_or_else(|| "ssh".into());
            let port_field = if node.connection_port.is_some() {
                &node.connection_port
            } else {
                &node.ssh_port
            };
            let connection_port = port(cx, port_field, 22);
            let username = string(&node.username).unwrap_or_else(|| "zuul".into());
            let identity = (host.value.clone(), username.clone(), connection_port);
            if let Some(first) = static_nodes.get(&identity) {
                cx.error(
                    &host.at,
                    format!(
                        "static node `{}` (user `{}`, port {}) is already defined at line {}; a host may appear in one pool only",
                        host.value, username, connection_port, first.mark.line
                    ),
                );
            } else {
                static_nodes.insert(identity, host.at.clone());
            }
            let max_parallel_jobs = positive(cx, &node.max_parallel_jobs, 1);
            let host_keys = match &node.host_key {
                None => Vec::new(),
                Some(k) => match &k.value {
                    OneOrMany::One(s) => vec![s.clone()],
                    OneOrMany::Many(v) => v.iter().map(|k| k.value.clone()).collect(),
                },
            };
            nodes.push(StaticNode {
                name: host.value.clone(),
                labels: label_names,
                username,
                timeout: positive(cx, &node.timeout, 5),
                host_key_checking: flag(&node.host_key_checking, true),
                host_keys,
                connection_port,
                connection_type,
                shell_type: string(&node.shell_type),
                max_parallel_jobs: u32::try_from(max_parallel_jobs).unwrap_or(u32::MAX),
                python_path: string(&node.python_path).unwrap_or_else(|| "auto".into()),
            });
        }
        pools.push(Pool {
            name: pool_name.value.clone(),
            max_servers: int(&pool.max_servers),
            priority: pool_priority(&pool.priority, common.priority),
            node_attributes: pool.node_attributes.as_ref().map(|a| a.value.0.clone()),
            labels,
            max_resources: ResourceLimits::new(),
            settings: PoolSettings::Static(StaticPool { nodes }),
        });
    }
    Some(Provider {
        name: common.name,
        driver: DriverKind::Static,
        max_concurrency: common.max_concurrency,
        priority: common.priority,
        pools,
        diskimages: BTreeMap::new(),
        cloud_images: BTreeMap::new(),
        image_type: None,
        settings: ProviderSettings::Static,
    })
}

fn validate_aws(p: &RawAwsProvider, known: &KnownNames, cx: &mut Collector) -> Option<Provider> {
    let common = common(cx, &p.at, &p.name, &p.max_concurrency, &p.priority)?;
    let name = common.name.clone();
    let region_name = required(cx, &p.region_name, &p.at, "region-name")
        .map(|r| r.value.clone())
        .unwrap_or_default();
    required(cx, &p.pools, &p.at, "pools");
    let image_type = one_of(
        cx,
        &p.image_format,
        &["ova", "vhd", "vhdx", "vmdk", "raw"],
        "raw",
    );
    let diskimages = p
        .diskimages
        .iter()
        .flat_map(|d| d.value.iter())
        .filter_map(|d| {
            let mut image = provider_diskimage(cx, known, &name, ProviderImageKeys { at: &d.at, name: &d.name, pause: &d.pause, connection_type: &d.connection_type, connection_port: &d.connection_port })?;
            image.username = string(&d.username);
            image.python_path = string(&d.python_path).unwrap_or_else(|| "auto".into());
            image.shell_type = string(&d.shell_type);
            image.meta = free_map(&d.tags);
            let import_method = one_of(cx, &d.import_method, &["snapshot", "ebs-direct", "image"], "snapshot");
            let imds_support = d.imds_support.as_ref().map(|_| one_of(cx, &d.imds_support, &["v2.0"], "v2.0"));
            if imds_support.is_some() && import_method == "image"
                && let Some(m) = &d.import_method
            {
                cx.error(&m.at, "IMDSv2 (`imds-support: v2.0`) requires the `snapshot` or `ebs-direct` import method");
            }
            image.driver = ProviderDiskImageSettings::Aws(AwsDiskImage {
                architecture: string(&d.architecture).unwrap_or_else(|| "x86_64".into()),
                ena_support: flag(&d.ena_support, true),
                volume_size: int(&d.volume_size),
                volume_type: string(&d.volume_type).unwrap_or_else(|| "gp3".into()),
                import_method,
                imds_support,
                iops: int(&d.iops),
                throughput: int(&d.throughput),
            });
            Some((d.name.clone()?, image))
        })
        .collect();
    let diskimages = collect_unique(cx, diskimages, "diskimage");
    let cloud_images = p
        .cloud_images
        .iter()
        .flat_map(|c| c.value.iter())
        .filter_map(|c| {
            let image_name = required(cx, &c.name, &c.at, "name")?;
            let username = required(cx, &c.username, &c.at, "username").map(|u| u.value.clone());
            let source = match (&c.image_id, &c.image_filters) {
                (Some(id), Some(f)) => {
                    cx.error(&f.at, "use either `image-id` or `image-filters`, not both");
                    CloudImageSource::Id(id.value.clone())
                }
                (Some(id), None) => CloudImageSource::Id(id.value.clone()),
                (None, Some(filters)) => {
                    let mut out = Vec::new();
                    for filter in filters.iter() {
                        let name = filter.name.as_ref().or(filter.name_capitalized.as_ref());
                        let values = filter
                            .values
                            .as_ref()
                            .or(filter.values_capitalized.as_ref());
                        match (name, values) {
                            (Some(n), Some(v)) => out.push((n.value.clone(), v.value.clone())),
                            _ => cx.error(&filter.at, "an image filter needs `name` and `values`"),
                        }
                    }
                    CloudImageSource::Filters(out)
                }
                (None, None) => {
                    cx.error(
                        &c.at,
                        "provide either \"image-filters\", or \"image-id\" keys",
                    );
                    // Kept (the configuration is rejected anyway) so labels using it are not
                    // also told it does not exist.
                    CloudImageSource::Filters(Vec::new())
                }
            };
            let connection_type = string(&c.connection_type).unwrap_or_else(|| "ssh".into());
            let connection_port = connection_port(cx, &c.connection_port, &connection_type);
            Some((
                image_name.clone(),
                CloudImage {
                    name: image_name.value.clone(),
                    source,
                    username,
                    python_path: string(&c.python_path).unwrap_or_else(|| "auto".into()),
                    shell_type: string(&c.shell_type),
                    connection_type,
                    connection_port,
                    config_drive: None,
                },
            ))
        })
        .collect();
    let cloud_images = collect_unique(cx, cloud_images, "cloud-image");
    let provider_public_ipv4 = flag(&p.public_ipv4, true);
    let provider_public_ipv6 = flag(&p.public_ipv6, false);
    let provider_hkc = flag(&p.host_key_checking, true);
    let provider_internal = flag(&p.use_internal_ip, false);
    let mut provider_limits = ResourceLimits::new();
    limit(&mut provider_limits, "cores", &p.max_cores, cx);
    limit(&mut provider_limits, "ram", &p.max_ram, cx);
    for (k, v) in str_map(&p.max_resources) {
        provider_limits.insert(k, v);
    }
    let raw_pools: Vec<&RawAwsPool> = p.pools.iter().flat_map(|v| v.value.iter()).collect();
    check_pools_unique(cx, raw_pools.iter().copied(), |p| &p.name);
    let mut pools = Vec::new();
    for pool in raw_pools {
        let Some(pool_name) = required(cx, &pool.name, &pool.at, "name") else {
            continue;
        };
        required(cx, &pool.labels, &pool.at, "labels");
        let host_key_checking = flag(&pool.host_key_checking, provider_hkc);
        let availability_zone = string(&pool.availability_zone);
        let mut labels = BTreeMap::new();
        for (label, label_name) in
            named_pool_labels(cx, &pool.labels, |l| (&l.name, &l.at), &name, known)
        {
            let image = label_image(
                cx,
                &ImageScope {
                    provider: &name,
                    diskimages: &diskimages,
                    cloud_images: &cloud_images,
                    known,
                },
                &label.at,
                label_name,
                &label.diskimage,
                &label.cloud_image,
            );
            let key_name = required(cx, &label.key_name, &label.at, "key-name")
                .map(|k| k.value.clone())
                .unwrap_or_default();
            let instance = match (&label.instance_type, &label.fleet) {
                (Some(_), Some(f)) => {
                    cx.error(&f.at, "use either `instance-type` or `fleet`, not both");
                    None
                }
                (Some(t), None) => Some(AwsInstance::Type(t.value.clone())),
                (None, Some(f)) => {
                    let types = required(cx, &f.instance_types, &f.at, "instance-types")
                        .map(|t| t.value.clone());
                    required(cx, &f.allocation_strategy, &f.at, "allocation-strategy");
                    let strategy = one_of(
                        cx,
                        &f.allocation_strategy,
                        &[
                            "prioritized",
                            "price-capacity-optimized",
                            "capacity-optimized",
                            "diversified",
                            "lowest-price",
                        ],
                        "prioritized",
                    );
                    types.map(|instance_types| AwsInstance::Fleet {
                        instance_types,
                        allocation_strategy: strategy,
                    })
                }
                (None, None) => {
                    cx.error(
                        &label.at,
                        format!(
                            "label `{}` needs `instance-type` or `fleet`",
                            label_name.value
                        ),
                    );
                    None
                }
            };
            let use_spot = flag(&label.use_spot, false);
            let dedicated_host = flag(&label.dedicated_host, false);
            if let Some(dedicated) = label.dedicated_host.as_ref().filter(|d| d.value) {
                if let Some(spot) = label.use_spot.as_ref().filter(|s| s.value) {
                    cx.error(
                        &spot.at,
                        "spot instances can not be used on dedicated hosts",
                    );
                }
                if availability_zone.is_none() {
                    cx.error(
                        &dedicated.at,
                        "dedicated hosts need the pool's `availability-zone`",
                    );
                }
            }
            let iam_instance_profile =
                label
                    .iam_instance_profile
                    .as_ref()
                    .and_then(|iam| match (&iam.name, &iam.arn) {
                        (Some(n), None) => Some(AwsIamProfile::Name(n.value.clone())),
                        (None, Some(a)) => Some(AwsIamProfile::Arn(a.value.clone())),
                        _ => {
                            cx.error(
                                &iam.at,
                                "iam-instance-profile needs exactly one of `name` and `arn`",
                            );
                            None
                        }
                    });
            let imdsv2 = label
                .imdsv2
                .as_ref()
                .map(|_| one_of(cx, &label.imdsv2, &["required", "optional"], "optional"));
            let Some(instance) = instance else { continue };
            labels.entry(label_name.value.clone()).or_insert(PoolLabel {
                name: label_name.value.clone(),
                image,
                settings: LabelSettings::Aws(AwsLabel {
                    instance,
                    key_name,
                    ebs_optimized: flag(&label.ebs_optimized, false),
                    volume_type: string(&label.volume_type),
                    volume_size: int(&label.volume_size),
                    iops: int(&label.iops),
                    throughput: int(&label.throughput),
                    userdata: string(&label.userdata),
                    iam_instance_profile,
                    tags: free_map(&label.tags),
                    dynamic_tags: str_map(&label.dynamic_tags),
                    use_spot,
                    imdsv2,
                    dedicated_host,
                    host_key_checking,
                }),
            });
        }
        let mut max_resources = provider_limits.clone();
        limit(&mut max_resources, "cores", &pool.max_cores, cx);
        limit(&mut max_resources, "ram", &pool.max_ram, cx);
        for (k, v) in str_map(&pool.max_resources) {
            max_resources.insert(k, v);
        }
        let public_ipv4 = flag(&pool.public_ipv4, provider_public_ipv4);
        pools.push(Pool {
            name: pool_name.value.clone(),
            max_servers: max_servers(cx, &pool.max_servers, int(&p.max_servers)),
            priority: pool_priority(&pool.priority, common.priority),
            node_attributes: pool.node_attributes.as_ref().map(|a| a.value.0.clone()),
            labels,
            max_resources,
            settings: PoolSettings::Aws(AwsPool {
                security_group_id: string(&pool.security_group_id),
                subnet_id: string(&pool.subnet_id),
                // The deprecated `public-ip-address` wins when given, as in Nodepool.
                public_ipv4: flag(&pool.public_ip_address, public_ipv4),
                public_ipv6: flag(&pool.public_ipv6, provider_public_ipv6),
                use_internal_ip: flag(&pool.use_internal_ip, provider_internal),
                host_key_checking,
                availability_zone,
            }),
        });
    }
    let rate = match &p.rate {
        None => 2.0,
        Some(r) if r.value > 0.0 => r.value,
        Some(r) => {
            cx.error(
                &r.at,
                format!(
                    "rate (requests per second) must be greater than 0, found {}",
                    r.value
                ),
            );
            2.0
        }
    };
    Some(Provider {
        name,
        driver: DriverKind::Aws,
        max_concurrency: common.max_concurrency,
        priority: common.priority,
        pools,
        diskimages,
        cloud_images,
        image_type: Some(image_type),
        settings: ProviderSettings::Aws(AwsProvider {
            region_name,
            profile_name: string(&p.profile_name),
            rate,
            boot_timeout: positive(cx, &p.boot_timeout, 180),
            launch_timeout: positive(cx, &p.launch_timeout, 3600),
            launch_retries: positive(cx, &p.launch_retries, 3) as u32,
            image_import_timeout: p
                .image_import_timeout
                .as_ref()
                .map(|_| positive(cx, &p.image_import_timeout, 0)),
            object_storage_bucket: p.object_storage.as_ref().and_then(|o| {
                required(cx, &o.bucket_name, &o.at, "bucket-name").map(|b| b.value.clone())
            }),
            post_upload_hook: string(&p.post_upload_hook).map(PathBuf::from),
            endpoint_url: string(&p.endpoint_url),
        }),
    })
}

fn validate_kubernetes(
    p: &RawKubernetesProvider,
    known: &KnownNames,
    cx: &mut Collector,
) -> Option<Provider> {
    let common = common(cx, &p.at, &p.name, &p.max_concurrency, &p.priority)?;
    let name = common.name.clone();
    required(cx, &p.pools, &p.at, "pools");
    if let Some(m) = &p.max_servers {
        cx.warn(&m.at, "provider-level max-servers is not used by kubernetes providers (as in Nodepool); set it on each pool");
    }
    let limits = pod_provider_limits(cx, &p.max_cores, &p.max_ram, &p.max_resources);
    let raw_pools: Vec<PodDriverPool<RawKubernetesLabel>> = p
        .pools
        .iter()
        .flat_map(|v| v.value.iter())
        .map(|pool| PodDriverPool {
            keys: Cow::Borrowed(pool),
            labels: &pool.labels,
        })
        .collect();
    let pools = pod_driver_pools(cx, &raw_pools, &name, &limits, None, common.priority, known);
    Some(Provider {
        name,
        driver: DriverKind::Kubernetes,
        max_concurrency: common.max_concurrency,
        priority: common.priority,
        pools,
        diskimages: BTreeMap::new(),
        cloud_images: BTreeMap::new(),
        image_type: None,
        settings: ProviderSettings::Kubernetes(KubernetesProvider {
            context: string(&p.context),
            launch_retries: positive(cx, &p.launch_retries, 3) as u32,
        }),
    })
}

/// `driver: openshiftpods`: the kubernetes pools and pod labels, each pool's pods going into
/// the existing project (namespace) the pool names. `context` is required.
fn validate_openshiftpods(
    p: &RawOpenShiftPodsProvider,
    known: &KnownNames,
    cx: &mut Collector,
) -> Option<Provider> {
    let common = common(cx, &p.at, &p.name, &p.max_concurrency, &p.priority)?;
    let name = common.name.clone();
    required(cx, &p.pools, &p.at, "pools");
    let context = required(cx, &p.context, &p.at, "context").map(|c| c.value.clone());
    if let Some(m) = &p.max_pods {
        cx.warn(&m.at, "max-pods is accepted but not used by openshiftpods providers (as in Nodepool 11); set max-servers on each pool");
    }
    // Nodepool's runtime: `max-projects`, else `max-servers`, is the pools' default.
    let default_max_servers = int(&p.max_projects).or(int(&p.max_servers));
    let limits = pod_provider_limits(cx, &p.max_cores, &p.max_ram, &p.max_resources);
    let raw_pools: Vec<PodDriverPool<RawOpenShiftPodsLabel>> = p
        .pools
        .iter()
        .flat_map(|v| v.value.iter())
        .map(|pool| PodDriverPool {
            keys: Cow::Owned(pool.as_kubernetes()),
            labels: &pool.labels,
        })
        .collect();
    let pools = pod_driver_pools(
        cx,
        &raw_pools,
        &name,
        &limits,
        default_max_servers,
        common.priority,
        known,
    );
    Some(Provider {
        name,
        driver: DriverKind::OpenShiftPods,
        max_concurrency: common.max_concurrency,
        priority: common.priority,
        pools,
        diskimages: BTreeMap::new(),
        cloud_images: BTreeMap::new(),
        image_type: None,
        settings: ProviderSettings::Kubernetes(KubernetesProvider {
            context,
            launch_retries: positive(cx, &p.launch_retries, 3) as u32,
        }),
    })
}

/// The provider-level limits of a kubernetes or openshiftpods provider, the defaults of its
/// pools' limits.
fn pod_provider_limits(
    cx: &mut Collector,
    max_cores: &Option<Sp<i64>>,
    max_ram: &Option<Sp<i64>>,
    max_resources: &Option<Sp<StrMap<i64>>>,
) -> ResourceLimits {
    let mut limits = ResourceLimits::new();
    limit(&mut limits, "cores", max_cores, cx);
    limit(&mut limits, "ram", max_ram, cx);
    for (k, v) in str_map(max_resources) {
        limits.insert(k, v);
    }
    limits
}

/// A pool label of a kubernetes or openshiftpods pool, as their one validation reads it.
trait PodPoolLabel {
    fn name_and_at(&self) -> (&Option<Sp<String>>, &At);
    /// The label's keys as a kubernetes label's (openshiftpods labels are `type: pod`).
    fn kubernetes_keys(&self) -> Cow<'_, RawKubernetesLabel>;
    /// The pod's `imagePullSecrets`: openshiftpods' `image-pull-secrets` (default `[]`);
    /// kubernetes pods have none.
    fn image_pull_secrets(&self) -> Option<Vec<serde_json::Value>>;
}

impl PodPoolLabel for RawKubernetesLabel {
    fn name_and_at(&self) -> (&Option<Sp<String>>, &At) {
        (&self.name, &self.at)
    }

    fn kubernetes_keys(&self) -> Cow<'_, RawKubernetesLabel> {
        Cow::Borrowed(self)
    }

    fn image_pull_secrets(&self) -> Option<Vec<serde_json::Value>> {
        None
    }
}

impl PodPoolLabel for RawOpenShiftPodsLabel {
    fn name_and_at(&self) -> (&Option<Sp<String>>, &At) {
        (&self.name, &self.at)
    }

    fn kubernetes_keys(&self) -> Cow<'_, RawKubernetesLabel> {
        Cow::Owned(self.as_kubernetes())
    }

    fn image_pull_secrets(&self) -> Option<Vec<serde_json::Value>> {
        Some(
            self.image_pull_secrets
                .as_ref()
                .map(|s| s.value.0.clone())
                .unwrap_or_default(),
        )
    }
}

/// One pool of a kubernetes or openshiftpods provider (one schema).
struct PodDriverPool<'r, L> {
    /// The pool's keys, as a kubernetes pool's (its `labels` are not read).
    keys: Cow<'r, RawKubernetesPool>,
    labels: &'r Option<Sp<Vec<L>>>,
}

/// The pools of a kubernetes or openshiftpods provider; `default_max_servers` applies to
/// pools without `max-servers`.
fn pod_driver_pools<L: PodPoolLabel>(
    cx: &mut Collector,
    raw_pools: &[PodDriverPool<L>],
    provider: &str,
    provider_limits: &ResourceLimits,
    default_max_servers: Option<i64>,
    provider_priority: Option<i64>,
    known: &KnownNames,
) -> Vec<Pool> {
    check_pools_unique(cx, raw_pools.iter().map(|p| p.keys.as_ref()), |p| &p.name);
    let mut pools = Vec::new();
    for PodDriverPool {
        keys: pool,
        labels: raw_labels,
    } in raw_pools
    {
        let Some(pool_name) = required(cx, &pool.name, &pool.at, "name") else {
            continue;
        };
        required(cx, raw_labels, &pool.at, "labels");
        let mut labels = BTreeMap::new();
        for (label, label_name) in
            named_pool_labels(cx, raw_labels, |l| l.name_and_at(), provider, known)
        {
            let settings = kubernetes_label(
                cx,
                &label.kubernetes_keys(),
                label_name,
                pool,
                label.image_pull_secrets(),
            );
            labels.entry(label_name.value.clone()).or_insert(PoolLabel {
                name: label_name.value.clone(),
                image: LabelImage::None,
                settings: LabelSettings::Kubernetes(Box::new(settings)),
            });
        }
        let mut max_resources = provider_limits.clone();
        limit(&mut max_resources, "cores", &pool.max_cores, cx);
        limit(&mut max_resources, "ram", &pool.max_ram, cx);
        for (k, v) in str_map(&pool.max_resources) {
            max_resources.insert(k, v);
        }
        pools.push(Pool {
            name: pool_name.value.clone(),
            max_servers: int(&pool.max_servers).or(default_max_servers),
            priority: pool_priority(&pool.priority, provider_priority),
            node_attributes: pool.node_attributes.as_ref().map(|a| a.value.0.clone()),
            labels,
            max_resources,
            settings: PoolSettings::Kubernetes(KubernetesPool {
                default_label_cpu: int(&pool.default_label_cpu),
                default_label_memory: int(&pool.default_label_memory),
                default_label_storage: int(&pool.default_label_storage),
                default_label_cpu_limit: int(&pool.default_label_cpu_limit),
                default_label_memory_limit: int(&pool.default_label_memory_limit),
                default_label_storage_limit: int(&pool.default_label_storage_limit),
                default_label_extra_resources: str_map(&pool.default_label_extra_resources),
            }),
        });
    }
    pools
}

/// One kubernetes (or openshiftpods) label, the pool's `default-label-*` applied.
fn kubernetes_label(
    cx: &mut Collector,
    label: &RawKubernetesLabel,
    label_name: &Sp<String>,
    pool: &RawKubernetesPool,
    image_pull_secrets: Option<Vec<serde_json::Value>>,
) -> KubernetesLabel {
    let kind = required(cx, &label.type_, &label.at, "type").and_then(|t| {
        let valid = ["namespace", "pod"].contains(&t.as_str());
        let kind = one_of(cx, &label.type_, &["namespace", "pod"], "pod");
        valid.then_some(kind)
    });
    let spec = label.spec.as_ref().map(|s| s.value.0.clone());
    if spec.is_some() {
        let nodepool_built = [
            label.image.as_ref().map(|v| &v.at),
            label.cpu.as_ref().map(|v| &v.at),
            label.memory.as_ref().map(|v| &v.at),
            label.storage.as_ref().map(|v| &v.at),
            label.env.as_ref().map(|v| &v.at),
            label.volumes.as_ref().map(|v| &v.at),
        ];
        for at in nodepool_built.into_iter().flatten() {
            cx.error(at, "a label with a pod `spec` takes only `labels`, `dynamic-labels` and `annotations` besides it");
        }
    } else if kind.as_deref() == Some("pod") && label.image.is_none() {
        cx.error(
            &label.at,
            format!(
                "pod label `{}` needs an `image` (or a `spec`)",
                label_name.value
            ),
        );
    }
    let env = label
        .env
        .iter()
        .flat_map(|e| e.value.iter())
        .filter_map(|e| {
            let n = required(cx, &e.name, &e.at, "name")?;
            let v = required(cx, &e.value, &e.at, "value")?;
            Some((n.value.clone(), v.value.clone()))
        })
        .collect();
    KubernetesLabel {
        kind: kind.unwrap_or_else(|| "pod".into()),
        image: string(&label.image),
        image_pull: string(&label.image_pull).unwrap_or_else(|| "IfNotPresent".into()),
        image_pull_secrets,
        python_path: string(&label.python_path).unwrap_or_else(|| "auto".into()),
        shell_type: string(&label.shell_type),
        cpu: int(&label.cpu).or(int(&pool.default_label_cpu)),
        memory: int(&label.memory).or(int(&pool.default_label_memory)),
        storage: int(&label.storage).or(int(&pool.default_label_storage)),
        cpu_limit: int(&label.cpu_limit).or(int(&pool.default_label_cpu_limit)),
        memory_limit: int(&label.memory_limit).or(int(&pool.default_label_memory_limit)),
        storage_limit: int(&label.storage_limit).or(int(&pool.default_label_storage_limit)),
        gpu: label.gpu.as_ref().map(|g| g.value),
        gpu_resource: string(&label.gpu_resource),
        env,
        node_selector: label.node_selector.as_ref().map(|n| n.value.0.clone()),
        privileged: label.privileged.as_ref().map(|p| p.value),
        scheduler_name: string(&label.scheduler_name),
        volumes: label
            .volumes
            .as_ref()
            .map(|v| v.value.0.clone())
            .unwrap_or_default(),
        volume_mounts: label
            .volume_mounts
            .as_ref()
            .map(|v| v.value.0.clone())
            .unwrap_or_default(),
        labels: free_map(&label.labels),
        dynamic_labels: str_map(&label.dynamic_labels),
        annotations: free_map(&label.annotations),
        extra_resources: {
            let mut extra = str_map(&pool.default_label_extra_resources);
            extra.extend(str_map(&label.extra_resources));
            extra
        },
        spec,
    }
}

fn local_diskimages(
    cx: &mut Collector,
    known: &KnownNames,
    provider: &str,
    images: &Option<Sp<Vec<RawLocalDiskImage>>>,
) -> BTreeMap<String, ProviderDiskImage> {
    let list = images
        .iter()
        .flat_map(|d| d.value.iter())
        .filter_map(|d| {
            let image = provider_diskimage(
                cx,
                known,
                provider,
                ProviderImageKeys {
                    at: &d.at,
                    name: &d.name,
                    pause: &d.pause,
                    connection_type: &d.connection_type,
                    connection_port: &d.connection_port,
                },
            )?;
            Some((d.name.clone()?, image))
        })
        .collect();
    collect_unique(cx, list, "diskimage")
}

fn local_label(
    cx: &mut Collector,
    cores: &Option<Sp<i64>>,
    ram: &Option<Sp<i64>>,
    disk_size: &Option<Sp<i64>>,
    console_log: bool,
    host_key_checking: bool,
) -> LocalLabel {
    LocalLabel {
        cores: u32::try_from(positive(cx, cores, 1)).unwrap_or(u32::MAX),
        ram: positive(cx, ram, 1024),
        disk_size: disk_size.as_ref().map(|_| positive(cx, disk_size, 1)),
        console_log,
        host_key_checking,
        pids_limit: None,
    }
}

fn path_or(field: &Option<Sp<String>>, default: &str) -> PathBuf {
    PathBuf::from(string(field).unwrap_or_else(|| default.into()))
}

fn validate_qemu(p: &RawQemuProvider, known: &KnownNames, cx: &mut Collector) -> Option<Provider> {
    let common = common(cx, &p.at, &p.name, &p.max_concurrency, &p.priority)?;
    let name = common.name.clone();
    let diskimages = local_diskimages(cx, known, &name, &p.diskimages);
    let cloud_images = p
        .cloud_images
        .iter()
        .flat_map(|c| c.value.iter())
        .filter_map(|c| {
            let image_name = required(cx, &c.name, &c.at, "name")?;
            // Without a path the image is still defined (and the configuration rejected), so
            // labels using it are not also told it does not exist.
            let path = required(cx, &c.path, &c.at, "path")
                .map(|p| p.value.clone())
                .unwrap_or_default();
            let connection_type = string(&c.connection_type).unwrap_or_else(|| "ssh".into());
            let connection_port = connection_port(cx, &c.connection_port, &connection_type);
            Some((
                image_name.clone(),
                CloudImage {
                    name: image_name.value.clone(),
                    source: CloudImageSource::Path(PathBuf::from(path)),
                    username: string(&c.username),
                    python_path: string(&c.python_path).unwrap_or_else(|| "auto".into()),
                    shell_type: string(&c.shell_type),
                    connection_type,
                    connection_port,
                    config_drive: None,
                },
            ))
        })
        .collect();
    let cloud_images = collect_unique(cx, cloud_images, "cloud-image");
    let state_dir = path_or(&p.state_dir, "/var/lib/nodepool/qemu/nodes");
    let accel = match one_of(cx, &p.accel, &["auto", "kvm", "tcg"], "auto").as_str() {
        "kvm" => QemuAccel::Kvm,
        "tcg" => QemuAccel::Tcg,
        _ => QemuAccel::Auto,
    };
    let image_format = one_of(cx, &p.image_format, &["qcow2", "raw"], "qcow2");
    // Unused since each VM's SSH is port 22 at its own address; still read, so older
    // configurations load and a malformed value is reported.
    let ssh_port_range = match &p.ssh_port_range {
        None => (42000, 42999),
        Some(r) => parse_port_range(&r.value).unwrap_or_else(|| {
            cx.error(
                &r.at,
                format!(
                    "expected a port range like `42000-42999`, found `{}`",
                    r.value
                ),
            );
            (42000, 42999)
        }),
    };
    let subnet = local_subnet(cx, &p.subnet, DEFAULT_QEMU_SUBNET);
    let raw_pools: Vec<&RawQemuPool> = p.pools.iter().flat_map(|v| v.value.iter()).collect();
    check_pools_unique(cx, raw_pools.iter().copied(), |p| &p.name);
    let mut pools = Vec::new();
    for pool in raw_pools {
        let Some(pool_name) = required(cx, &pool.name, &pool.at, "name") else {
            continue;
        };
        let host_key_checking = flag(&pool.host_key_checking, true);
        let mut labels = BTreeMap::new();
        for (label, label_name) in
            named_pool_labels(cx, &pool.labels, |l| (&l.name, &l.at), &name, known)
        {
            let image = label_image(
                cx,
                &ImageScope {
                    provider: &name,
                    diskimages: &diskimages,
                    cloud_images: &cloud_images,
                    known,
                },
                &label.at,
                label_name,
                &label.diskimage,
                &label.cloud_image,
            );
            let settings = local_label(
                cx,
                &label.cores,
                &label.ram,
                &label.disk_size,
                flag(&label.console_log, true),
                flag(&label.host_key_checking, host_key_checking),
            );
            labels.entry(label_name.value.clone()).or_insert(PoolLabel {
                name: label_name.value.clone(),
                image,
                settings: LabelSettings::Qemu(settings),
            });
        }
        let mut max_resources = ResourceLimits::new();
        limit(&mut max_resources, "cores", &pool.max_cores, cx);
        limit(&mut max_resources, "ram", &pool.max_ram, cx);
        pools.push(Pool {
            name: pool_name.value.clone(),
            max_servers: int(&pool.max_servers),
            priority: pool_priority(&pool.priority, common.priority),
            node_attributes: pool.node_attributes.as_ref().map(|a| a.value.0.clone()),
            labels,
            max_resources,
            settings: PoolSettings::Qemu(LocalPool { host_key_checking }),
        });
    }
    Some(Provider {
        name,
        driver: DriverKind::Qemu,
        max_concurrency: common.max_concurrency,
        priority: common.priority,
        pools,
        diskimages,
        cloud_images,
        image_type: Some(image_format),
        settings: ProviderSettings::Qemu(QemuProvider {
            image_dir: path_or(&p.image_dir, "/var/lib/nodepool/qemu/images"),
            ssh_key: ssh_key_path(&p.ssh_key, &state_dir),
            state_dir,
            qemu_binary: string(&p.qemu_binary).unwrap_or_else(|| "qemu-system-x86_64".into()),
            accel,
            // Software emulation boots slowly; give it time.
            boot_timeout: positive(cx, &p.boot_timeout, 300),
            launch_timeout: positive(cx, &p.launch_timeout, 600),
            launch_retries: positive(cx, &p.launch_retries, 3) as u32,
            host_cores: p
                .host_cores
                .as_ref()
                .map(|_| positive(cx, &p.host_cores, 1) as u32),
            host_ram: p.host_ram.as_ref().map(|_| positive(cx, &p.host_ram, 1)),
            ssh_port_range,
            subnet,
        }),
    })
}

/// `ssh-key`, or `id_ed25519` in the provider's state directory.
fn ssh_key_path(raw: &Option<Sp<String>>, state_dir: &std::path::Path) -> PathBuf {
    string(raw)
        .map(PathBuf::from)
        .unwrap_or_else(|| state_dir.join("id_ed25519"))
}

fn parse_port_range(text: &str) -> Option<(u16, u16)> {
    let (low, high) = text.split_once('-')?;
    let low: u16 = low.trim().parse().ok()?;
    let high: u16 = high.trim().parse().ok()?;
    (low > 0 && low <= high).then_some((low, high))
}

fn validate_container(
    p: &RawContainerProvider,
    known: &KnownNames,
    cx: &mut Collector,
) -> Option<Provider> {
    let common = common(cx, &p.at, &p.name, &p.max_concurrency, &p.priority)?;
    let name = common.name.clone();
    let diskimages = local_diskimages(cx, known, &name, &p.diskimages);
    let state_dir = path_or(&p.state_dir, "/var/lib/nodepool/container/nodes");
    let subnet = local_subnet(cx, &p.subnet, DEFAULT_CONTAINER_SUBNET);
    let raw_pools: Vec<&RawContainerPool> = p.pools.iter().flat_map(|v| v.value.iter()).collect();
    check_pools_unique(cx, raw_pools.iter().copied(), |p| &p.name);
    let mut pools = Vec::new();
    let no_cloud_images = BTreeMap::new();
    for pool in raw_pools {
        let Some(pool_name) = required(cx, &pool.name, &pool.at, "name") else {
            continue;
        };
        let host_key_checking = flag(&pool.host_key_checking, true);
        let mut labels = BTreeMap::new();
        for (label, label_name) in
            named_pool_labels(cx, &pool.labels, |l| (&l.name, &l.at), &name, known)
        {
            let image = if label.diskimage.is_none() {
                // Containers start only from images we build: there is no `cloud-image`.
                cx.error(
                    &label.at,
                    format!("label `{}` needs a `diskimage`", label_name.value),
                );
                LabelImage::None
            } else {
                label_image(
                    cx,
                    &ImageScope {
                        provider: &name,
                        diskimages: &diskimages,
                        cloud_images: &no_cloud_images,
                        known,
                    },
                    &label.at,
                    label_name,
                    &label.diskimage,
                    &None,
                )
            };
            let mut settings = local_label(
                cx,
                &label.cores,
                &label.ram,
                &None,
                false,
                host_key_checking,
            );
            settings.pids_limit = label
                .pids_limit
                .as_ref()
                .map(|_| u32::try_from(positive(cx, &label.pids_limit, 1)).unwrap_or(u32::MAX));
            labels.entry(label_name.value.clone()).or_insert(PoolLabel {
                name: label_name.value.clone(),
                image,
                settings: LabelSettings::Container(settings),
            });
        }
        pools.push(Pool {
            name: pool_name.value.clone(),
            max_servers: int(&pool.max_servers),
            priority: pool_priority(&pool.priority, common.priority),
            node_attributes: pool.node_attributes.as_ref().map(|a| a.value.0.clone()),
            labels,
            max_resources: ResourceLimits::new(),
            settings: PoolSettings::Container(LocalPool { host_key_checking }),
        });
    }
    Some(Provider {
        name,
        driver: DriverKind::Container,
        max_concurrency: common.max_concurrency,
        priority: common.priority,
        pools,
        diskimages,
        cloud_images: BTreeMap::new(),
        // Containers start from the image's root file system, shipped as a tarball.
        image_type: Some("tar".into()),
        settings: ProviderSettings::Container(ContainerProvider {
            image_dir: path_or(&p.image_dir, "/var/lib/nodepool/container/images"),
            ssh_key: ssh_key_path(&p.ssh_key, &state_dir),
            state_dir,
            subnet,
            boot_timeout: positive(cx, &p.boot_timeout, 30),
            launch_retries: positive(cx, &p.launch_retries, 3) as u32,
        }),
    })
}

/// Where container addresses come from when `subnet` is not set.
const DEFAULT_CONTAINER_SUBNET: &str = "172.31.240.0/20";
/// Where VM namespaces' addresses come from when `subnet` is not set: next to the container
/// default, not overlapping it.
const DEFAULT_QEMU_SUBNET: &str = "172.31.224.0/20";

/// A local driver's `subnet` (the /30 per node comes from it), or `default`.
fn local_subnet(cx: &mut Collector, raw: &Option<Sp<String>>, default: &str) -> String {
    if let Some(s) = raw
        && !is_ipv4_cidr(&s.value)
    {
        cx.error(
            &s.at,
            format!(
                "expected an IPv4 network like `{default}`, found `{}`",
                s.value
            ),
        );
    }
    string(raw).unwrap_or_else(|| default.into())
}

fn is_ipv4_cidr(text: &str) -> bool {
    let Some((addr, bits)) = text.split_once('/') else {
        return false;
    };
    addr.parse::<std::net::Ipv4Addr>().is_ok()
        && bits.parse::<u8>().is_ok_and(|b| (8..=30).contains(&b))
}

/// Applies the secure file: its ZooKeeper settings replace the main ones, and its diskimage
/// env-vars merge into the named diskimages.
pub(crate) fn apply_secure(config: &mut Config, secure: SecureParts, cx: &mut Collector) {
    // As Nodepool: secure servers replace the main ones, secure TLS replaces the main TLS,
    // and the timeout is always the main file's.
    let (main, from_secure) = (secure.main_zookeeper, secure.zookeeper);
    let (servers, chroot) = if from_secure.servers.is_empty() {
        (main.servers, main.chroot)
    } else {
        (from_secure.servers, from_secure.chroot)
    };
    config.zookeeper = ZooKeeperParts {
        servers,
        chroot,
        tls: from_secure.tls.or(main.tls),
        timeout: main.timeout,
    }
    .into_zookeeper();
    for (name, env) in secure.diskimage_env {
        match config.diskimages.get_mut(name.as_str()) {
            Some(image) => image.env_vars.extend(env),
            None => {
                let mut message = format!("unknown diskimage `{}`", name.value);
                if secure.abstract_diskimages.contains(name.as_str()) {
                    message.push_str(": it is abstract, so never built; give the env-vars to the images inheriting from it");
                } else {
                    let known: Vec<&str> = config.diskimages.keys().map(String::as_str).collect();
                    if let Some(hint) = did_you_mean(&name.value, &known) {
                        message.push_str(&format!("; did you mean `{hint}`?"));
                    }
                }
                cx.error(&name.at, message);
            }
        }
    }
}
