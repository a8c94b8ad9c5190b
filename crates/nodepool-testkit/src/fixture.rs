//! Loads nodepool-web's golden fixture (`crates/nodepool-web/tests/golden/fixture.json`:
//! nodes in every state, requests, images with builds and uploads, pools) into a store, so
//! the CLI's and the webapp's tests read the records Nodepool's own code printed.
//!
//! The fixture is test data: a malformed fixture panics with the reason.

use nodepool_model::{BuildId, Component, ComponentRole, NodeId, PoolDetails, RequestId, UploadId};
use nodepool_store::{Backend, CreateMode, Registration, Store, StoreResult, paths};
use serde_json::Value;

/// The fixture's path, from any crate of the workspace.
pub fn path() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../nodepool-web/tests/golden/fixture.json")
}

/// The parsed fixture.
pub fn load() -> Value {
    let text = std::fs::read_to_string(path()).expect("reading the golden fixture");
    serde_json::from_str(&text).expect("the golden fixture is JSON")
}

fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// How far to move the fixture's times so that its `now` is now.
pub fn shift_to_now(fixture: &Value) -> f64 {
    now() - fixture["now"].as_f64().expect("fixture has `now`")
}

fn text<'a>(value: &'a Value, key: &str) -> &'a str {
    value[key]
        .as_str()
        .unwrap_or_else(|| panic!("fixture: `{key}` is not a string"))
}

fn list<'a>(value: &'a Value, key: &str) -> &'a [Value] {
    value[key]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_else(|| panic!("fixture: `{key}` is not a list"))
}

fn shifted(data: &Value, shift: f64) -> Vec<u8> {
    let mut data = data.clone();
    for key in ["state_time", "created_time"] {
        if let Some(time) = data[key].as_f64() {
            data[key] = Value::from(time + shift);
        }
    }
    serde_json::to_vec(&data).expect("JSON values serialize")
}

async fn create(backend: &dyn Backend, path: &str, data: &[u8]) -> StoreResult<()> {
    backend
        .create(path, data, CreateMode::Persistent, true)
        .await
        .map(|_| ())
}

/// A contender that nobody removes: the lock looks held (by Zuul, say).
async fn hold_lock(backend: &dyn Backend, dir: &str) -> StoreResult<()> {
    create(backend, &format!("{dir}/0123abcd__lock__0000000000"), b"").await
}

/// Writes the fixture's nodes (with their lock state), requests and images, every time
/// moved by `shift` seconds.
pub async fn fill(store: &Store, fixture: &Value, shift: f64) -> StoreResult<()> {
    let backend = store.backend().as_ref();
    for entry in list(fixture, "nodes") {
        let id = NodeId::parse(text(entry, "id")).expect("fixture node id");
        create(backend, &paths::node(id), &shifted(&entry["data"], shift)).await?;
        if entry["locked"].as_bool() == Some(true) {
            hold_lock(backend, &paths::node_lock(id)).await?;
        }
    }
    for entry in list(fixture, "requests") {
        let id = RequestId::parse(text(entry, "id")).expect("fixture request id");
        create(
            backend,
            &paths::request(&id),
            &shifted(&entry["data"], shift),
        )
        .await?;
    }
    for image in list(fixture, "images") {
        let name = text(image, "name");
        store.ensure_path(&paths::image(name)).await?;
        if image["paused"].as_bool() == Some(true) {
            store.images().pause(name).await?;
        }
        if let Some(request) = image["build_request"].as_object() {
            store.images().request_build(name).await?;
            if request["pending"].as_bool() == Some(false) {
                // `building`: a builder holds the image's build lock, taken before the
                // newest build record was written.
                hold_lock(backend, &paths::image_build_lock(name)).await?;
                let taken = backend
                    .exists(&paths::image_build_lock(name))
                    .await?
                    .map(|stat| stat.ctime_ms)
                    .unwrap_or(0);
                while (now() * 1000.0) as i64 <= taken {
                    tokio::task::yield_now().await;
                }
            }
        }
        for build in list(image, "builds") {
            let build_id = BuildId::parse(text(build, "id")).expect("fixture build id");
            create(
                backend,
                &paths::build(name, &build_id),
                &shifted(&build["data"], shift),
            )
            .await?;
            let providers = build["providers"]
                .as_object()
                .expect("fixture: build providers");
            for (provider, uploads) in providers {
                store
                    .ensure_path(&paths::uploads(name, &build_id, provider))
                    .await?;
                for upload in uploads.as_array().map(Vec::as_slice).unwrap_or_default() {
                    let id = UploadId::parse(text(upload, "id")).expect("fixture upload id");
                    create(
                        backend,
                        &paths::upload(name, &build_id, provider, id),
                        &shifted(&upload["data"], shift),
                    )
                    .await?;
                }
            }
        }
    }
    Ok(())
}

/// Registers the fixture's pools as pool components of this store session (they vanish
/// with it), as a launcher would.
pub async fn register_pools(store: &Store, fixture: &Value) -> StoreResult<Vec<Registration>> {
    let mut registrations = Vec::new();
    for (index, pool) in list(fixture, "pools").iter().enumerate() {
        let supported_labels = list(pool, "supported_labels")
            .iter()
            .filter_map(|label| label.as_str().map(str::to_owned))
            .collect();
        let details = PoolDetails {
            id: Some(format!("fixture-PoolWorker.pool-{index}")),
            name: Some(format!("pool-{index}")),
            provider_name: Some("fixture".to_owned()),
            supported_labels,
            ..PoolDetails::default()
        };
        let component = Component::new("fixture", None, ComponentRole::Pool(details));
        registrations.push(store.components().register(&component).await?);
    }
    Ok(registrations)
}

/// Ages (`DD:HH:MM:SS` table cells) depend on when a test runs: keep their shape, hide
/// their digits, so listings compare with goldens printed at another time.
pub fn mask_ages(text: &str) -> String {
    text.lines()
        .map(|line| {
            line.split('|')
                .map(|cell| {
                    let trimmed = cell.trim();
                    let parts: Vec<&str> = trimmed.split(':').collect();
                    let is_age = parts.len() == 4
                        && parts.iter().all(|p| {
                            let digits = p.strip_prefix('-').unwrap_or(p);
                            !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
                        });
                    if is_age {
                        cell.replace(|c: char| c.is_ascii_digit() || c == '-', "X")
                    } else {
                        cell.to_owned()
                    }
                })
                .collect::<Vec<_>>()
                .join("|")
        })
        .collect::<Vec<_>>()
        .join("\n")
}
