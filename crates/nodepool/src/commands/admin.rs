//! The admin sub-commands (spec 5.2). `image-pause`, `image-unpause` and `image-build` work
//! on the store; the others log what they were asked at DEBUG and report that they are not
//! implemented yet.

use std::process::ExitCode;

use crate::cli::{
    AlienImageListArgs, BuildIdArgs, DeleteArgs, EraseArgs, ImageArgs, ImageDeleteArgs, InfoArgs,
    ListArgs, NodeIdArgs, OutputArgs, PathArgs,
};
use crate::commands::{Context, not_implemented};
use crate::store;

/// `list [--detail] [--json]`: the node table.
pub fn list(context: &Context, args: &ListArgs) -> anyhow::Result<ExitCode> {
    tracing::debug!(detail = args.detail, json = args.output.json, "list nodes");
    not_implemented(context, "list")
}

/// `image-list [--json]`: every image upload.
pub fn image_list(context: &Context, args: &OutputArgs) -> anyhow::Result<ExitCode> {
    tracing::debug!(json = args.json, "list image uploads");
    not_implemented(context, "image-list")
}

/// `dib-image-list [--json]`: every image build.
pub fn dib_image_list(context: &Context, args: &OutputArgs) -> anyhow::Result<ExitCode> {
    tracing::debug!(json = args.json, "list image builds");
    not_implemented(context, "dib-image-list")
}

/// `image-status [--json]`: pause flag and build request per image.
pub fn image_status(context: &Context, args: &OutputArgs) -> anyhow::Result<ExitCode> {
    tracing::debug!(json = args.json, "show image status");
    not_implemented(context, "image-status")
}

/// `image-build IMAGE`: request a build.
pub fn image_build(context: &Context, args: &ImageArgs) -> anyhow::Result<ExitCode> {
    let Some(image) = context.config.diskimages.get(&args.image) else {
        anyhow::bail!(
            "Trying to build a non disk-image-builder image: {}",
            args.image
        );
    };
    if image.pause {
        anyhow::bail!("Skipping build request for image {}; paused", args.image);
    }
    store::run(&context.config, async |store| {
        Ok(store.images().request_build(&args.image).await?)
    })?;
    Ok(ExitCode::SUCCESS)
}

/// `alien-image-list [PROVIDER] [--json]`: cloud images we uploaded but no longer track.
pub fn alien_image_list(context: &Context, args: &AlienImageListArgs) -> anyhow::Result<ExitCode> {
    tracing::debug!(
        provider = args.provider,
        json = args.output.json,
        "list alien images"
    );
    not_implemented(context, "alien-image-list")
}

/// `delete ID [--now]`: mark a node for deletion, or delete it from this process.
pub fn delete(context: &Context, args: &DeleteArgs) -> anyhow::Result<ExitCode> {
    tracing::debug!(node = args.id, now = args.now, "delete a node");
    not_implemented(context, "delete")
}

/// `hold ID`: put a node on hold.
pub fn hold(context: &Context, args: &NodeIdArgs) -> anyhow::Result<ExitCode> {
    tracing::debug!(node = args.id, "hold a node");
    not_implemented(context, "hold")
}

/// `image-delete --provider P --image I --build-id B --upload-id U`: delete one upload.
pub fn image_delete(context: &Context, args: &ImageDeleteArgs) -> anyhow::Result<ExitCode> {
    tracing::debug!(
        provider = args.provider,
        image = args.image,
        build = args.build_id,
        upload = args.upload_id,
        "delete an image upload"
    );
    not_implemented(context, "image-delete")
}

/// `dib-image-delete ID`: delete a build and its uploads.
pub fn dib_image_delete(context: &Context, args: &BuildIdArgs) -> anyhow::Result<ExitCode> {
    tracing::debug!(build = args.id, "delete an image build");
    not_implemented(context, "dib-image-delete")
}

/// `request-list [--json]`: every node request.
pub fn request_list(context: &Context, args: &OutputArgs) -> anyhow::Result<ExitCode> {
    tracing::debug!(json = args.json, "list node requests");
    not_implemented(context, "request-list")
}

/// `info PROVIDER [--json]`: a provider's uploads and nodes in the store.
pub fn info(context: &Context, args: &InfoArgs) -> anyhow::Result<ExitCode> {
    tracing::debug!(
        provider = args.provider,
        json = args.output.json,
        "show provider data"
    );
    not_implemented(context, "info")
}

/// `erase PROVIDER [--force]`: remove a provider's data from the store.
pub fn erase(context: &Context, args: &EraseArgs) -> anyhow::Result<ExitCode> {
    tracing::debug!(
        provider = args.provider,
        force = args.force,
        "erase provider data"
    );
    not_implemented(context, "erase")
}

/// `image-pause IMAGE`.
pub fn image_pause(context: &Context, args: &ImageArgs) -> anyhow::Result<ExitCode> {
    // Like Nodepool, any name is accepted: the flag is what the builder looks at.
    store::run(&context.config, async |store| {
        Ok(store.images().pause(&args.image).await?)
    })?;
    Ok(ExitCode::SUCCESS)
}

/// `image-unpause IMAGE`.
pub fn image_unpause(context: &Context, args: &ImageArgs) -> anyhow::Result<ExitCode> {
    // Like Nodepool, any name is accepted: the flag is what the builder looks at.
    store::run(&context.config, async |store| {
        Ok(store.images().unpause(&args.image).await?)
    })?;
    Ok(ExitCode::SUCCESS)
}

/// `export-image-data PATH`.
pub fn export_image_data(context: &Context, args: &PathArgs) -> anyhow::Result<ExitCode> {
    tracing::debug!(path = %args.path.display(), "export image data");
    not_implemented(context, "export-image-data")
}

/// `import-image-data PATH`.
pub fn import_image_data(context: &Context, args: &PathArgs) -> anyhow::Result<ExitCode> {
    tracing::debug!(path = %args.path.display(), "import image data");
    not_implemented(context, "import-image-data")
}
