//! Reading the store into the plain records [`crate::status`] renders, the way Nodepool's
//! uncached `ZooKeeper` methods read them (spec 5.2). The CLI and the webapp both read
//! through here.

use crate::status::{BuildRecord, BuildRequest, ImageStatusRecord, ProviderBuild, UploadRecord};
use nodepool_model::{ComponentKind, Node, NodeId, NodeRequest, RequestId};
use nodepool_store::{Store, StoreError, StoreResult, Versioned, paths};

/// Every node in the store's child order, with whether its lock has contenders.
/// (Nodepool's `Lock.contenders()` also creates the lock directory, spec 8.3 item 29;
/// we only look.)
pub async fn nodes(store: &Store) -> StoreResult<Vec<(NodeId, Node, bool)>> {
    let mut nodes = Vec::new();
    for id in store.nodes().ids().await? {
        if let Some(node) = node(store, id).await? {
            nodes.push(node);
        }
    }
    Ok(nodes)
}

/// One node with its lock state, if it exists and can be read.
pub async fn node(store: &Store, id: NodeId) -> StoreResult<Option<(NodeId, Node, bool)>> {
    let view = store.nodes();
    let Some(node) = readable(paths::node(id), view.get(id).await)? else {
        return Ok(None);
    };
    let locked = !view.lock_contenders(id).await?.is_empty();
    Ok(Some((id, node, locked)))
}

/// Every readable node request (the view sorts them).
pub async fn requests(store: &Store) -> StoreResult<Vec<(RequestId, NodeRequest)>> {
    let view = store.requests();
    let mut requests = Vec::new();
    for id in view.ids().await? {
        let path = paths::request(&id);
        if let Some(request) = readable(path, view.get(&id).await)? {
            requests.push((id, request));
        }
    }
    Ok(requests)
}

/// The `supported_labels` of every registered pool, in registration order (the webapp's
/// `/label-list` reads these, not the configuration).
pub async fn pool_labels(store: &Store) -> StoreResult<Vec<String>> {
    let mut labels = Vec::new();
    for registered in store.components().list(ComponentKind::Pool).await? {
        if let Some(pool) = registered.component.value.pool() {
            labels.extend(pool.supported_labels.iter().cloned());
        }
    }
    Ok(labels)
}

/// A record that cannot be read is left out, with one WARNING (as Nodepool logs an
/// unreadable record and carries on without it).
fn readable<T>(path: String, result: StoreResult<Option<Versioned<T>>>) -> StoreResult<Option<T>> {
    match result {
        Ok(found) => Ok(found.map(|v| v.value)),
        Err(StoreError::Malformed { reason, .. }) => {
            nodepool_store::unreadable::skipped(&path, &reason);
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// Everything under `/nodepool/images`, in Nodepool's reading order: image names sorted,
/// builds in child order, providers sorted, uploads in child order.
#[derive(Debug, Default)]
pub struct Images {
    pub builds: Vec<BuildRecord>,
    pub uploads: Vec<UploadRecord>,
    /// Names of images paused in the store.
    pub paused: Vec<String>,
    pub status: Vec<ImageStatusRecord>,
    /// `(provider, build)` for every build that has that provider's upload directory.
    pub provider_builds: Vec<(String, ProviderBuild)>,
}

pub async fn images(store: &Store) -> StoreResult<Images> {
    let view = store.images();
    let mut images = Images::default();
    let mut names = view.names().await?;
    names.sort();
    for name in names {
        let paused = view.is_paused(&name).await?;
        if paused {
            images.paused.push(name.clone());
        }
        let build_ids = view.build_ids(&name).await?;
        images.status.push(ImageStatusRecord {
            image: name.clone(),
            paused,
            build_request: build_request(store, &name, &build_ids).await?,
        });
        for build_id in build_ids {
            let path = paths::build(&name, &build_id);
            // Uploads are listed whether or not the build record itself is readable, as
            // Nodepool walks the paths without reading builds.
            if let Some(build) = readable(path, view.build(&name, &build_id).await)? {
                images.builds.push(BuildRecord {
                    image: name.clone(),
                    id: build_id.clone(),
                    build,
                });
            }
            let mut providers = view.build_providers(&name, &build_id).await?;
            providers.sort();
            for provider in providers {
                let mut upload_ids = Vec::new();
                for upload_id in view.upload_ids(&name, &build_id, &provider).await? {
                    let path = paths::upload(&name, &build_id, &provider, upload_id);
                    let result = view.upload(&name, &build_id, &provider, upload_id).await;
                    let Some(upload) = readable(path, result)? else {
                        continue;
                    };
                    upload_ids.push(upload_id);
                    images.uploads.push(UploadRecord {
                        image: name.clone(),
                        build_id: build_id.clone(),
                        provider: provider.clone(),
                        id: upload_id,
                        upload,
                    });
                }
                images.provider_builds.push((
                    provider,
                    ProviderBuild {
                        image: name.clone(),
                        build_id: build_id.clone(),
                        upload_ids,
                    },
                ));
            }
        }
    }
    Ok(images)
}

/// Nodepool's `getBuildRequest`: the request is `building` when someone holds the image's
/// build lock and the first listed build is younger than that lock (spec 8.3 item 14).
async fn build_request(
    store: &Store,
    image: &str,
    build_ids: &[nodepool_model::BuildId],
) -> StoreResult<Option<BuildRequest>> {
    let Some(request) = store.images().build_request(image).await? else {
        return Ok(None);
    };
    let mut pending = true;
    let backend = store.backend();
    if let Some(lock) = backend.exists(&paths::image_build_lock(image)).await?
        && lock.num_children > 0
    {
        let latest = match build_ids.first() {
            Some(id) => backend.exists(&paths::build(image, id)).await?,
            None => None,
        };
        pending = latest.is_none_or(|build| build.ctime_ms < lock.ctime_ms);
    }
    Ok(Some(BuildRequest {
        pending,
        created: request.ctime_ms as f64 / 1000.0,
    }))
}
