//! Upload workers (spec 3.4): every `upload_interval`, upload the newest READY build this
//! builder holds to each provider that lacks a READY upload of it.

use std::sync::Arc;

use anyhow::Context as _;
use nodepool_config::{Config, DiskImage, Provider as ProviderConfig, ProviderSettings};
use nodepool_driver::{ImageUploadSpec, Metadata, metadata_keys};
use nodepool_model::{BuildState, ImageUpload, UploadId, UploadState};
use nodepool_store::LockWait;
use serde_json::Value as Json;

use crate::context::{Context, now};
use crate::decide::{self, UploadDue};
use crate::records;

pub async fn run(ctx: Arc<Context>, name: String) {
    let mut shutdown = ctx.shutdown.clone();
    while !ctx.is_stopping() {
        ctx.workers.busy(&name);
        // Stopping does not wait for an upload in flight (spec 3.1): it is dropped with its
        // UPLOADING record, whose upload lock goes with our session, so the janitor of any
        // builder removes the record and the next upload worker starts again.
        let result = tokio::select! {
            result = pass(&ctx) => result,
            _ = shutdown.wait_for(|s| *s) => {
                tracing::info!(worker = %name, "upload abandoned by shutdown");
                Ok(())
            }
        };
        if let Err(e) = result {
            crate::context::log_failure(&e, &name, "upload pass failed");
            ctx.workers.error(&name, &e);
        }
        ctx.workers.idle(&name);
        ctx.pause(ctx.options.timing.upload_interval).await;
    }
    ctx.workers.stopped(&name);
}

async fn due(ctx: &Context, config: &Config, image: &str) -> anyhow::Result<Vec<UploadDue>> {
    let builds = records::builds(&ctx.store, image).await?;
    let newest: Vec<_> = decide::newest_ready_build(&builds)
        .map(|(id, _)| id.clone())
        .into_iter()
        .collect();
    let uploads = records::uploads(&ctx.store, image, &newest).await?;
    let local = records::local_build_ids(&ctx.images_dir, image);
    Ok(decide::uploads_due(
        image,
        config.providers.values(),
        &builds,
        &uploads,
        &local,
    ))
}

async fn pass(ctx: &Context) -> anyhow::Result<()> {
    let config = ctx.config();
    for image in config.diskimages.values() {
        for upload in due(ctx, &config, &image.name).await? {
            if ctx.is_stopping() {
                return Ok(());
            }
            let Some(provider) = config.providers.get(&upload.provider) else {
                continue;
            };
            if let Err(e) = upload_locked(ctx, &config, image, provider, &upload).await {
                // Handled: the upload is recorded FAILED and the next pass uploads again
                // with a new upload id (spec 3.4 step 7); the janitor removes the record.
                tracing::warn!(
                    image = %image.name, build_id = %upload.build_id, provider = %upload.provider,
                    error = %format!("{e:#}"), "upload failed; retrying next pass"
                );
            }
        }
    }
    Ok(())
}

async fn upload_locked(
    ctx: &Context,
    config: &Config,
    image: &DiskImage,
    provider: &ProviderConfig,
    upload: &UploadDue,
) -> anyhow::Result<()> {
    let images = ctx.store.images();
    let Some(lock) = images
        .lock_uploads(
            &image.name,
            &upload.build_id,
            &upload.provider,
            LockWait::NonBlocking,
        )
        .await?
    else {
        return Ok(());
    };
    let result = async {
        // Re-check under the lock: another worker may have uploaded it meanwhile.
        if !due(ctx, config, &image.name).await?.contains(upload) {
            return Ok(());
        }
        upload_one(ctx, image, provider, upload).await
    }
    .await;
    if let Err(e) = lock.release().await {
        tracing::warn!(image = %image.name, error = %e, "cannot release the upload lock");
    }
    result
}

fn json_text(value: &Json) -> String {
    match value {
        Json::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// `image-name-format` (default `{image_name}-{timestamp}`).
fn external_name(provider: &ProviderConfig, image: &str, upload_id: UploadId, now: f64) -> String {
    let format = match &provider.settings {
        ProviderSettings::OpenStack(settings) => settings.image_name_format.as_str(),
        _ => "{image_name}-{timestamp}",
    };
    format
        .replace("{image_name}", image)
        .replace("{upload_id}", &upload_id.to_string())
        .replace("{timestamp}", &(now as i64).to_string())
}

async fn upload_one(
    ctx: &Context,
    image: &DiskImage,
    provider: &ProviderConfig,
    due: &UploadDue,
) -> anyhow::Result<()> {
    let images = ctx.store.images();
    let Some(build) = images.build(&image.name, &due.build_id).await? else {
        return Ok(());
    };
    let build = build.value;
    if build.state != BuildState::Ready {
        return Ok(());
    }
    let mut record = ImageUpload::new(UploadState::Uploading, now());
    record.username = build.username.clone();
    record.python_path = build.python_path.clone();
    record.shell_type = build.shell_type.clone();
    let upload_id = images
        .create_upload(&image.name, &due.build_id, &due.provider, &record)
        .await
        .context("creating the upload record")?;

    let started = now();
    let name = external_name(provider, &image.name, upload_id, started);
    let mut metadata: Metadata = image
        .metadata
        .iter()
        .map(|(k, v)| (k.clone(), json_text(v)))
        .collect();
    if let Some(provider_image) = provider.diskimages.get(&image.name) {
        metadata.extend(
            provider_image
                .meta
                .iter()
                .map(|(k, v)| (k.clone(), json_text(v))),
        );
    }
    metadata.insert(metadata_keys::BUILD_ID.into(), due.build_id.to_string());
    metadata.insert(metadata_keys::UPLOAD_ID.into(), upload_id.to_string());
    metadata.insert(metadata_keys::PROVIDER_NAME.into(), provider.name.clone());
    let path = ctx
        .images_dir
        .join(format!("{}-{}.{}", image.name, due.build_id, due.format));
    let spec = ImageUploadSpec {
        image_name: image.name.clone(),
        external_name: name.clone(),
        md5: records::read_checksum(&path.with_extension(format!("{}.md5", due.format)), 32),
        sha256: records::read_checksum(&path.with_extension(format!("{}.sha256", due.format)), 64),
        path,
        format: due.format.clone(),
        metadata,
    };
    tracing::info!(
        image = %image.name, build_id = %due.build_id, provider = %provider.name,
        upload_id = %upload_id, external_name = %name, "uploading image"
    );
    let cloud = match ctx.provider(provider) {
        Ok(cloud) => cloud,
        Err(e) => {
            record.set_state(UploadState::Failed, now());
            images
                .store_upload(
                    &image.name,
                    &due.build_id,
                    &due.provider,
                    upload_id,
                    &record,
                )
                .await?;
            return Err(e.context(format!("uploading to {}", provider.name)));
        }
    };
    let mut result = cloud
        .upload_image(&spec)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"));
    if let (Ok(external_id), Some(hook)) = (result.as_ref().cloned(), post_upload_hook(provider))
        && let Err(e) = run_post_upload_hook(hook, &provider.name, &external_id, &spec.path).await
    {
        // Nodepool means to delete the image here (its call is broken, spec 8.3 item 12).
        // When the delete fails, the FAILED record keeps the id so the janitor retries it.
        match cloud.delete_image(&external_id).await {
            Ok(()) | Err(nodepool_driver::DriverError::NotFound(_)) => {}
            Err(delete_error) => {
                tracing::warn!(
                    image = %image.name, provider = %provider.name, external_id,
                    error = %delete_error, "cannot delete the image the hook rejected; the janitor will"
                );
                record.external_id = Some(external_id);
            }
        }
        result = Err(e);
    }
    match result {
        Ok(external_id) => {
            record.set_state(UploadState::Ready, now());
            record.external_id = Some(external_id.clone());
            record.external_name = Some(name);
            record.format = Some(due.format.clone());
            images
                .store_upload(
                    &image.name,
                    &due.build_id,
                    &due.provider,
                    upload_id,
                    &record,
                )
                .await?;
            tracing::info!(
                image = %image.name, build_id = %due.build_id, provider = %provider.name,
                upload_id = %upload_id, external_id, "image uploaded"
            );
            Ok(())
        }
        Err(e) => {
            record.set_state(UploadState::Failed, now());
            images
                .store_upload(
                    &image.name,
                    &due.build_id,
                    &due.provider,
                    upload_id,
                    &record,
                )
                .await?;
            Err(e.context(format!("uploading to {}", provider.name)))
        }
    }
}

/// The provider's `post-upload-hook`, if it has one (OpenStack and fake, AWS).
fn post_upload_hook(provider: &ProviderConfig) -> Option<&std::path::Path> {
    match &provider.settings {
        ProviderSettings::OpenStack(settings) => settings.post_upload_hook.as_deref(),
        ProviderSettings::Aws(settings) => settings.post_upload_hook.as_deref(),
        _ => None,
    }
}

/// Runs `<hook> <provider name> <external id> <local file>` (spec 3.4 step 8); a non-zero
/// exit rejects the upload.
async fn run_post_upload_hook(
    hook: &std::path::Path,
    provider: &str,
    external_id: &str,
    file: &std::path::Path,
) -> anyhow::Result<()> {
    let output = tokio::process::Command::new(hook)
        .arg(provider)
        .arg(external_id)
        .arg(file)
        .stdin(std::process::Stdio::null())
        // An upload abandoned at shutdown takes its hook with it.
        .kill_on_drop(true)
        .output()
        .await
        .with_context(|| format!("running the post-upload hook {}", hook.display()))?;
    if output.status.success() {
        return Ok(());
    }
    let said: Vec<String> = [&output.stdout, &output.stderr]
        .into_iter()
        .map(|text| String::from_utf8_lossy(text).trim().to_string())
        .filter(|text| !text.is_empty())
        .collect();
    anyhow::bail!(
        "the post-upload hook {} failed ({}): {}",
        hook.display(),
        output.status,
        said.join("; ")
    )
}
