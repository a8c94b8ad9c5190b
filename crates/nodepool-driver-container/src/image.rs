//! Images: a `tar` of a root file system unpacked to `<image-dir>/<external name>/rootfs`,
//! the read-only lower layer every node of that image shares.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use nodepool_driver::{DriverError, ImageUploadSpec};
use tokio::process::Command;

use crate::host;
use crate::node_dir::valid_name;
use crate::provider::Shared;

/// The only format this driver takes.
pub const IMAGE_FORMAT: &str = "tar";

/// The directory of an image (its external id).
pub fn image_path(image_dir: &Path, external_id: &str) -> PathBuf {
    image_dir.join(external_id)
}

/// The root file system nodes of the image start from.
pub fn rootfs_path(image_dir: &Path, external_id: &str) -> PathBuf {
    image_path(image_dir, external_id).join("rootfs")
}

fn fatal(what: String) -> impl FnOnce(io::Error) -> DriverError {
    move |e| DriverError::Fatal(format!("{what}: {e}"))
}

/// Removes a directory tree off the async threads; a missing one is fine.
pub(crate) async fn remove_tree(path: PathBuf) -> Result<(), DriverError> {
    let shown = path.display().to_string();
    tokio::task::spawn_blocking(move || match fs::remove_dir_all(&path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    })
    .await
    .map_err(|e| DriverError::Fatal(format!("removing {shown} stopped: {e}")))?
    .map_err(fatal(format!("cannot remove {shown}")))
}

/// Unpacks the upload into a temporary directory and renames it into place, so a node never
/// starts from half an image. Uploading a name that exists keeps the existing image.
pub(crate) async fn upload(
    shared: &Shared,
    upload: &ImageUploadSpec,
) -> Result<String, DriverError> {
    let tools = shared.tools()?;
    let name = &upload.external_name;
    if upload.format != IMAGE_FORMAT {
        return Err(DriverError::Fatal(format!(
            "provider {} takes {IMAGE_FORMAT} images, not {} ({})",
            shared.name,
            upload.format,
            upload.path.display()
        )));
    }
    if !valid_name(name) {
        return Err(DriverError::Fatal(format!(
            "image name {name:?} cannot be a directory name"
        )));
    }
    let image_dir = &shared.settings.image_dir;
    let target = image_path(image_dir, name);
    if rootfs_path(image_dir, name).is_dir() {
        tracing::info!(provider = %shared.name, image = %name, "image already unpacked");
        return Ok(name.clone());
    }
    fs::create_dir_all(image_dir)
        .map_err(fatal(format!("cannot create {}", image_dir.display())))?;
    let staging = image_dir.join(format!(".{name}.tmp-{}", uuid::Uuid::new_v4().simple()));
    let rootfs = staging.join("rootfs");
    fs::create_dir_all(&rootfs).map_err(fatal(format!("cannot create {}", rootfs.display())))?;
    tracing::info!(provider = %shared.name, image = %name, file = %upload.path.display(), "unpacking image");
    let unpacked = host::run(
        Command::new(&tools.tar)
            .args([
                "-x",
                "--numeric-owner",
                "-p",
                "--xattrs",
                "--xattrs-include=*",
                "-f",
            ])
            .arg(&upload.path)
            .arg("-C")
            .arg(&rootfs),
    )
    .await;
    let placed = unpacked.and_then(|_| {
        fs::rename(&staging, &target).map_err(fatal(format!(
            "cannot move {} to {}",
            staging.display(),
            target.display()
        )))
    });
    if let Err(e) = placed {
        if let Err(cleanup) = remove_tree(staging).await {
            tracing::warn!(provider = %shared.name, image = %name, error = %cleanup, "cannot remove a failed unpack");
        }
        return Err(e);
    }
    tracing::info!(provider = %shared.name, image = %name, "image ready");
    Ok(name.clone())
}

/// Removes an image no node runs from: running nodes use it as their lower layer, so a delete
/// while one does is refused (the builder retries later).
pub(crate) async fn delete(shared: &Shared, external_id: &str) -> Result<(), DriverError> {
    if !valid_name(external_id) {
        return Err(DriverError::NotFound(format!(
            "no image {external_id:?} in provider {}",
            shared.name
        )));
    }
    let image_dir = &shared.settings.image_dir;
    let path = image_path(image_dir, external_id);
    if !path.exists() {
        return Err(DriverError::NotFound(format!(
            "no image {external_id} in {}",
            image_dir.display()
        )));
    }
    if shared.images_in_use()?.contains(external_id) {
        return Err(DriverError::Transient(format!(
            "image {external_id} of provider {} is in use by nodes",
            shared.name
        )));
    }
    // Renamed out of the way first so a half-removed image is never started from.
    let doomed = image_dir.join(format!(
        ".{external_id}.deleting-{}",
        uuid::Uuid::new_v4().simple()
    ));
    fs::rename(&path, &doomed).map_err(fatal(format!("cannot move {}", path.display())))?;
    remove_tree(doomed).await?;
    tracing::info!(provider = %shared.name, image = %external_id, "image deleted");
    Ok(())
}
