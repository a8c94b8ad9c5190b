//! `/nodepool/images`: builds, uploads, the pause flag and manual build requests.

use nodepool_model::{BuildId, ImageBuild, ImageUpload, UploadId, wire};

use crate::backend::{CreateMode, Stat, StoreError, StoreResult};
use crate::lock::{Lock, LockWait};
use crate::paths;
use crate::store::Store;
use crate::versioned::{Versioned, children_or_empty, read};

/// Typed access to image records; get one with [`Store::images`].
#[derive(Debug, Clone)]
pub struct Images {
    store: Store,
}

/// Lock and flag children that are not records (spec 1.2: `lock` is skipped when listing).
fn is_record_name(name: &str) -> bool {
    name != "lock"
}

impl Images {
    pub(crate) fn new(store: Store) -> Images {
        Images { store }
    }

    fn backend(&self) -> &dyn crate::Backend {
        self.store.backend().as_ref()
    }

    /// Every image name that has a znode (built at some point, or paused).
    pub async fn names(&self) -> StoreResult<Vec<String>> {
        children_or_empty(self.backend(), paths::IMAGES).await
    }

    pub async fn build_ids(&self, image: &str) -> StoreResult<Vec<BuildId>> {
        let children = children_or_empty(self.backend(), &paths::builds(image)).await?;
        Ok(children
            .iter()
            .filter(|c| is_record_name(c))
            .filter_map(|c| BuildId::parse(c).ok())
            .collect())
    }

    pub async fn build(
        &self,
        image: &str,
        build: &BuildId,
    ) -> StoreResult<Option<Versioned<ImageBuild>>> {
        read(
            self.backend(),
            &paths::build(image, build),
            wire::image::build_from_json,
        )
        .await
    }

    /// Stores a new build record under its (uuid) id.
    pub async fn create_build(
        &self,
        image: &str,
        build_id: &BuildId,
        build: &ImageBuild,
    ) -> StoreResult<()> {
        let path = paths::build(image, build_id);
        self.backend()
            .create(
                &path,
                &wire::image::build_to_json(build),
                CreateMode::Persistent,
                true,
            )
            .await
            .map(|_| ())
    }

    pub async fn store_build(
        &self,
        image: &str,
        build_id: &BuildId,
        build: &ImageBuild,
    ) -> StoreResult<()> {
        self.backend()
            .set(
                &paths::build(image, build_id),
                &wire::image::build_to_json(build),
                None,
            )
            .await
            .map(|_| ())
    }

    /// Deletes a build with its providers and uploads.
    pub async fn delete_build(&self, image: &str, build_id: &BuildId) -> StoreResult<()> {
        self.store
            .delete_recursive(&paths::build(image, build_id))
            .await
    }

    /// Providers that have an upload directory for this build.
    pub async fn build_providers(&self, image: &str, build: &BuildId) -> StoreResult<Vec<String>> {
        children_or_empty(self.backend(), &paths::build_providers(image, build)).await
    }

    pub async fn upload_ids(
        &self,
        image: &str,
        build: &BuildId,
        provider: &str,
    ) -> StoreResult<Vec<UploadId>> {
        let children =
            children_or_empty(self.backend(), &paths::uploads(image, build, provider)).await?;
        Ok(children
            .iter()
            .filter(|c| is_record_name(c))
            .filter_map(|c| UploadId::parse(c).ok())
            .collect())
    }

    pub async fn upload(
        &self,
        image: &str,
        build: &BuildId,
        provider: &str,
        upload: UploadId,
    ) -> StoreResult<Option<Versioned<ImageUpload>>> {
        read(
            self.backend(),
            &paths::upload(image, build, provider, upload),
            wire::image::upload_from_json,
        )
        .await
    }

    /// Stores a new upload record (sequential id) for a build and provider.
    pub async fn create_upload(
        &self,
        image: &str,
        build: &BuildId,
        provider: &str,
        upload: &ImageUpload,
    ) -> StoreResult<UploadId> {
        let parent = paths::uploads(image, build, provider);
        let path = self
            .backend()
            .create(
                &format!("{parent}/"),
                &wire::image::upload_to_json(upload),
                CreateMode::PersistentSequential,
                true,
            )
            .await?;
        let name = path.rsplit('/').next().unwrap_or_default();
        UploadId::parse(name).map_err(|e| StoreError::Malformed {
            path: path.clone(),
            reason: e.to_string(),
        })
    }

    pub async fn store_upload(
        &self,
        image: &str,
        build: &BuildId,
        provider: &str,
        upload_id: UploadId,
        upload: &ImageUpload,
    ) -> StoreResult<()> {
        let path = paths::upload(image, build, provider, upload_id);
        self.backend()
            .set(&path, &wire::image::upload_to_json(upload), None)
            .await
            .map(|_| ())
    }

    pub async fn delete_upload(
        &self,
        image: &str,
        build: &BuildId,
        provider: &str,
        upload: UploadId,
    ) -> StoreResult<()> {
        self.store
            .delete_recursive(&paths::upload(image, build, provider, upload))
            .await
    }

    /// Removes every record of a provider under every build (`nodepool erase`).
    pub async fn erase_provider(&self, provider: &str) -> StoreResult<()> {
        for image in self.names().await? {
            for build in self.build_ids(&image).await? {
                self.store
                    .delete_recursive(&format!(
                        "{}/{provider}",
                        paths::build_providers(&image, &build)
                    ))
                    .await?;
            }
        }
        Ok(())
    }

    pub async fn is_paused(&self, image: &str) -> StoreResult<bool> {
        Ok(self
            .backend()
            .exists(&paths::image_pause(image))
            .await?
            .is_some())
    }

    /// `nodepool image-pause`: idempotent.
    pub async fn pause(&self, image: &str) -> StoreResult<()> {
        self.store.ensure_path(&paths::image_pause(image)).await
    }

    /// `nodepool image-unpause`: idempotent.
    pub async fn unpause(&self, image: &str) -> StoreResult<()> {
        match self
            .backend()
            .delete(&paths::image_pause(image), None)
            .await
        {
            Ok(()) | Err(StoreError::NoNode(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// The manual build request flag, with its creation time, if set.
    pub async fn build_request(&self, image: &str) -> StoreResult<Option<Stat>> {
        self.backend()
            .exists(&paths::image_build_request(image))
            .await
    }

    /// `nodepool image-build`: idempotent.
    pub async fn request_build(&self, image: &str) -> StoreResult<()> {
        self.store
            .ensure_path(&paths::image_build_request(image))
            .await
    }

    pub async fn clear_build_request(&self, image: &str) -> StoreResult<()> {
        match self
            .backend()
            .delete(&paths::image_build_request(image), None)
            .await
        {
            Ok(()) | Err(StoreError::NoNode(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// The image build lock, held for a whole build (one build per image cluster-wide).
    pub async fn lock_image_builds(
        &self,
        image: &str,
        wait: LockWait,
    ) -> StoreResult<Option<Lock>> {
        self.store
            .lock(&paths::image_build_lock(image), "", wait)
            .await
    }

    /// Contenders of the image build lock (is someone building it?).
    pub async fn image_build_lock_contenders(&self, image: &str) -> StoreResult<Vec<String>> {
        self.store
            .lock_contenders(&paths::image_build_lock(image))
            .await
    }

    /// The build-id lock, for state changes of one build.
    pub async fn lock_build(
        &self,
        image: &str,
        build: &BuildId,
        wait: LockWait,
    ) -> StoreResult<Option<Lock>> {
        self.store
            .lock(&paths::build_lock(image, build), "", wait)
            .await
    }

    /// The upload lock, held during an upload of a build to a provider.
    pub async fn lock_uploads(
        &self,
        image: &str,
        build: &BuildId,
        provider: &str,
        wait: LockWait,
    ) -> StoreResult<Option<Lock>> {
        self.store
            .lock(&paths::upload_lock(image, build, provider), "", wait)
            .await
    }

    pub async fn upload_lock_contenders(
        &self,
        image: &str,
        build: &BuildId,
        provider: &str,
    ) -> StoreResult<Vec<String>> {
        self.store
            .lock_contenders(&paths::upload_lock(image, build, provider))
            .await
    }

    /// The upload-number lock, for state changes of one upload.
    pub async fn lock_upload(
        &self,
        image: &str,
        build: &BuildId,
        provider: &str,
        upload: UploadId,
        wait: LockWait,
    ) -> StoreResult<Option<Lock>> {
        self.store
            .lock(
                &paths::upload_number_lock(image, build, provider, upload),
                "",
                wait,
            )
            .await
    }
}
