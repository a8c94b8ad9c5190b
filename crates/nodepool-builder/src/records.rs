//! Reading one image's records from the store and this builder's files from the images
//! directory, in the shapes [`crate::decide`] takes.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use nodepool_model::BuildId;
use nodepool_store::{Store, StoreResult};

use crate::decide::{self, Builds, Uploads};

/// Every build of `image` in the store.
pub async fn builds(store: &Store, image: &str) -> StoreResult<Builds> {
    let images = store.images();
    let mut builds = Builds::new();
    for id in images.build_ids(image).await? {
        if let Some(build) = images.build(image, &id).await? {
            builds.insert(id, build.value);
        }
    }
    Ok(builds)
}

/// Every upload of the given builds of `image`, under every provider znode.
pub async fn uploads<'b>(
    store: &Store,
    image: &str,
    build_ids: impl IntoIterator<Item = &'b BuildId>,
) -> StoreResult<Uploads> {
    let images = store.images();
    let mut uploads = Uploads::new();
    for build_id in build_ids {
        for provider in images.build_providers(image, build_id).await? {
            let mut by_id = BTreeMap::new();
            for upload_id in images.upload_ids(image, build_id, &provider).await? {
                if let Some(upload) = images.upload(image, build_id, &provider, upload_id).await? {
                    by_id.insert(upload_id, upload.value);
                }
            }
            uploads.insert((build_id.clone(), provider), by_id);
        }
    }
    Ok(uploads)
}

/// One build whose files are in the images directory, with the formats found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LocalBuild {
    pub formats: BTreeSet<String>,
    /// Every file or directory of the build (`<base>.<ext>`, checksums, `<base>.d`).
    pub paths: Vec<PathBuf>,
}

/// The builds in the images directory by (image, build id as found), spec 3.3.
pub fn local_builds(images_dir: &Path) -> BTreeMap<(String, String), LocalBuild> {
    let mut found: BTreeMap<(String, String), LocalBuild> = BTreeMap::new();
    let Ok(entries) = std::fs::read_dir(images_dir) else {
        return found;
    };
    let names: Vec<String> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    for name in &names {
        if let Some(build) = decide::parse_local_build_name(name) {
            found.entry((build.image, build.build_id)).or_default();
        }
    }
    for ((image, build_id), build) in &mut found {
        let base = format!("{image}-{build_id}.");
        for name in names.iter().filter(|n| n.starts_with(&base)) {
            build.paths.push(images_dir.join(name));
            if let Some(format) = decide::local_file_format(name, image, build_id)
                && format != "d"
            {
                build.formats.insert(format.to_string());
            }
        }
    }
    found
}

/// The ids of `image`'s builds that have files here (only those are uploaded from here).
pub fn local_build_ids(images_dir: &Path, image: &str) -> BTreeSet<BuildId> {
    local_builds(images_dir)
        .into_keys()
        .filter(|(i, _)| i == image)
        .filter_map(|(_, id)| BuildId::parse(&id).ok())
        .collect()
}

/// Removes a file or directory; a missing one is fine.
pub fn remove_path(path: &Path) {
    let result = if path.is_dir() {
        std::fs::remove_dir_all(path)
    } else {
        std::fs::remove_file(path)
    };
    match result {
        Ok(()) => tracing::debug!(path = %path.display(), "deleted local image file"),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "cannot delete local image file")
        }
    }
}

/// The first `len` characters of a checksum file, when present.
pub fn read_checksum(path: &Path, len: usize) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    let sum: String = text.chars().take(len).collect();
    (sum.len() == len).then_some(sum)
}
