//! The janitor (spec 3.5): every `cleanup_interval`, apply [`decide::retention`] and
//! [`decide::build_removal`] to every image in the store, then
//! [`decide::local_build_action`] to this builder's files.

use std::sync::Arc;

use anyhow::Context as _;
use nodepool_config::Config;
use nodepool_driver::DriverError;
use nodepool_model::{BuildId, BuildState, UploadState};
use nodepool_store::{LockWait, StoreError, StoreResult};

use crate::context::{Context, now};
use crate::decide::{self, BuildRemoval, LocalBuildAction, UploadRef};
use crate::records;

pub async fn run(ctx: Arc<Context>, name: String) {
    while !ctx.is_stopping() {
        ctx.workers.busy(&name);
        if let Err(e) = pass(&ctx).await {
            crate::context::log_failure(&e, &name, "cleanup pass failed");
            ctx.workers.error(&name, &e);
        }
        ctx.workers.idle(&name);
        ctx.pause(ctx.options.timing.cleanup_interval).await;
    }
    ctx.workers.stopped(&name);
}

/// One janitor pass; public to the crate so tests and `stop` could run one on demand.
pub async fn pass(ctx: &Context) -> anyhow::Result<()> {
    let config = ctx.config();
    let mut first_error = None;
    for image in ctx.store.images().names().await? {
        if let Err(e) = clean_image(ctx, &config, &image).await {
            tracing::warn!(image = %image, error = %format!("{e:#}"), "image cleanup incomplete; retrying next pass");
            first_error.get_or_insert(e);
        }
    }
    clean_local_files(ctx, &config).await?;
    match first_error {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

async fn clean_image(ctx: &Context, config: &Config, image: &str) -> anyhow::Result<()> {
    let images = ctx.store.images();
    let builds = records::builds(&ctx.store, image).await?;
    let uploads = records::uploads(&ctx.store, image, builds.keys()).await?;
    let plan = decide::retention(config, image, &builds, &uploads);

    for stale in &plan.drop_stale_upload_records {
        let in_progress = !images
            .upload_lock_contenders(image, &stale.build_id, &stale.provider)
            .await?
            .is_empty();
        if in_progress {
            continue;
        }
        let current = images
            .upload(image, &stale.build_id, &stale.provider, stale.upload_id)
            .await?;
        if current.is_some_and(|u| u.value.state == UploadState::Uploading) {
            tracing::info!(image, build_id = %stale.build_id, provider = %stale.provider,
                upload_id = %stale.upload_id, "deleting the record of an abandoned upload");
            unless_contended(
                images
                    .delete_upload(image, &stale.build_id, &stale.provider, stale.upload_id)
                    .await,
            )?;
        }
    }

    let mut first_error = None;
    for upload in &plan.delete_uploads {
        if let Err(e) = delete_upload(ctx, config, image, upload).await {
            tracing::warn!(image, build_id = %upload.build_id, provider = %upload.provider,
                upload_id = %upload.upload_id, error = %format!("{e:#}"), "cannot delete upload yet");
            first_error.get_or_insert(e);
        }
    }

    for build_id in &plan.retire_builds {
        let Some(planned) = builds.get(build_id) else {
            continue;
        };
        retire_build(ctx, image, build_id, &planned.state).await?;
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

async fn delete_upload(
    ctx: &Context,
    config: &Config,
    image: &str,
    upload: &UploadRef,
) -> anyhow::Result<()> {
    let images = ctx.store.images();
    let Some(current) = images
        .upload(image, &upload.build_id, &upload.provider, upload.upload_id)
        .await?
    else {
        return Ok(());
    };
    let mut record = current.value;
    if record.state != UploadState::Deleting {
        if record.state == UploadState::Uploading
            && !images
                .upload_lock_contenders(image, &upload.build_id, &upload.provider)
                .await?
                .is_empty()
        {
            return Ok(());
        }
        let Some(lock) = images
            .lock_upload(
                image,
                &upload.build_id,
                &upload.provider,
                upload.upload_id,
                LockWait::NonBlocking,
            )
            .await?
        else {
            return Ok(());
        };
        record.set_state(UploadState::Deleting, now());
        let stored = images
            .store_upload(
                image,
                &upload.build_id,
                &upload.provider,
                upload.upload_id,
                &record,
            )
            .await;
        lock.release().await?;
        stored?;
    }
    if let Some(external_id) = &record.external_id {
        let provider_config = config
            .providers
            .get(&upload.provider)
            .with_context(|| format!("provider {} is not configured", upload.provider))?;
        let provider = ctx.provider(provider_config)?;
        match provider.delete_image(external_id).await {
            Ok(()) | Err(DriverError::NotFound(_)) => {}
            Err(e) => {
                return Err(anyhow::anyhow!("{e}"))
                    .with_context(|| format!("deleting image {external_id}"));
            }
        }
        tracing::info!(image, provider = %upload.provider, external_id, "deleted the cloud image");
    }
    let Some(lock) = images
        .lock_upload(
            image,
            &upload.build_id,
            &upload.provider,
            upload.upload_id,
            LockWait::NonBlocking,
        )
        .await?
    else {
        return Ok(());
    };
    // The lock lives under the upload's znode, so deleting the record removes it too.
    let deleted = unless_contended(
        images
            .delete_upload(image, &upload.build_id, &upload.provider, upload.upload_id)
            .await,
    );
    lock.release().await?;
    if deleted? {
        tracing::info!(image, build_id = %upload.build_id, provider = %upload.provider,
            upload_id = %upload.upload_id, "deleted upload record");
    }
    Ok(())
}

/// Applies [`decide::build_removal`] to a build the plan retired while it was in `planned`
/// state.
async fn retire_build(
    ctx: &Context,
    image: &str,
    build_id: &BuildId,
    planned: &BuildState,
) -> anyhow::Result<()> {
    let images = ctx.store.images();
    // The lock first, the record second: a build ends by storing its result and only then
    // releasing the image build lock, so a free lock followed by a BUILDING record means
    // nobody is building it any more.
    if *planned == BuildState::Building
        && !images.image_build_lock_contenders(image).await?.is_empty()
    {
        return Ok(());
    }
    let Some(build) = images.build(image, build_id).await? else {
        return Ok(());
    };
    let mut build = build.value;
    // The plan saw an older state (a build that was BUILDING may be READY now and among the
    // builds to keep); the next pass decides with fresh records.
    if build.state != *planned {
        return Ok(());
    }
    let uploads = records::uploads(&ctx.store, image, [build_id]).await?;
    let removal = decide::build_removal(&build, uploads.values().flat_map(|u| u.values()));
    if matches!(removal, BuildRemoval::MarkDeleting | BuildRemoval::Delete)
        && build.state != BuildState::Deleting
    {
        let Some(lock) = images
            .lock_build(image, build_id, LockWait::NonBlocking)
            .await?
        else {
            return Ok(());
        };
        build.set_state(BuildState::Deleting, now());
        let stored = images.store_build(image, build_id, &build).await;
        if removal == BuildRemoval::Delete {
            // The lock is under the build's znode; deleting the build removes it.
            let deleted = match stored {
                Ok(()) => unless_contended(images.delete_build(image, build_id).await),
                Err(e) => Err(e),
            };
            let released = lock.release().await;
            let deleted = deleted?;
            released?;
            if deleted {
                tracing::info!(image, build_id = %build_id, "deleted build");
            }
            return Ok(());
        }
        lock.release().await?;
        stored?;
        tracing::info!(image, build_id = %build_id, "build marked deleting");
    } else if removal == BuildRemoval::Delete
        && unless_contended(images.delete_build(image, build_id).await)?
    {
        tracing::info!(image, build_id = %build_id, "deleted build");
    }
    Ok(())
}

/// The result of deleting a record with everything under it: whether it is gone.
///
/// Several janitors (one per builder) delete the same records. One that tries a lock on a
/// record another is deleting puts a contender under it for a moment (a non-blocking
/// attempt, withdrawn at once), and the deletion then fails as not empty. Nothing is
/// wrong: the record is still there, and the next pass deletes it.
fn unless_contended(result: StoreResult<()>) -> StoreResult<bool> {
    match result {
        Ok(()) => Ok(true),
        Err(StoreError::NotEmpty(path)) => {
            tracing::debug!(
                path,
                "another builder is at this record; deleting it next pass"
            );
            Ok(false)
        }
        Err(e) => Err(e),
    }
}

async fn clean_local_files(ctx: &Context, config: &Config) -> anyhow::Result<()> {
    for ((image, found_id), local) in records::local_builds(&ctx.images_dir) {
        let Ok(build_id) = BuildId::parse(&found_id) else {
            continue;
        };
        let images = ctx.store.images();
        let build = images.build(&image, &build_id).await?.map(|b| b.value);
        let uploads = records::uploads(&ctx.store, &image, [&build_id]).await?;
        let action = decide::local_build_action(
            config,
            &image,
            &build_id,
            build.as_ref(),
            &uploads,
            &local.formats,
        );
        match action {
            LocalBuildAction::Keep => {}
            LocalBuildAction::DeleteAll => {
                tracing::info!(image = %image, build_id = %build_id, "deleting local files of a removed build");
                local.paths.iter().for_each(|p| records::remove_path(p));
            }
            LocalBuildAction::DeleteFormats(formats) => {
                for format in formats {
                    tracing::info!(image = %image, build_id = %build_id, format = %format, "deleting uploaded local file");
                    let file = ctx.images_dir.join(format!("{image}-{build_id}.{format}"));
                    for suffix in ["", ".md5", ".sha256"] {
                        let mut name = file.clone().into_os_string();
                        name.push(suffix);
                        records::remove_path(std::path::Path::new(&name));
                    }
                }
            }
        }
    }
    Ok(())
}
