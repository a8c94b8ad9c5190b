//! The image commands (spec 5.2): listings, build requests, pause flags, deletes, export
//! and import of the image records, and `alien-image-list`.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::process::ExitCode;

use anyhow::Context as _;
use nodepool_model::{BuildId, BuildState, UploadId, UploadState};
use nodepool_store::{CreateMode, Store, StoreError, paths};
use nodepool_web::status::{self, Header, Table};
use serde_json::{Map, Value};

use crate::cli::{
    AlienImageListArgs, BuildIdArgs, ImageArgs, ImageDeleteArgs, OutputArgs, PathArgs,
};
use crate::commands::{Context, now, print_json, print_table};
use crate::store;
use nodepool_web::gather;

/// `image-list [--json]`: every image upload.
pub fn image_list(context: &Context, args: &OutputArgs) -> anyhow::Result<ExitCode> {
    let images = store::run(&context.config, async |store| {
        Ok(gather::images(store).await?)
    })?;
    if args.json {
        print_json(&status::records::uploads(&images.uploads));
    } else {
        print_table(&status::image_list(&images.uploads, now()));
    }
    Ok(ExitCode::SUCCESS)
}

/// `dib-image-list [--json]`: every image build.
pub fn dib_image_list(context: &Context, args: &OutputArgs) -> anyhow::Result<ExitCode> {
    let images = store::run(&context.config, async |store| {
        Ok(gather::images(store).await?)
    })?;
    if args.json {
        print_json(&status::records::builds(&images.builds, &images.paused));
    } else {
        print_table(&status::dib_image_list(
            &images.builds,
            &images.paused,
            now(),
        ));
    }
    Ok(ExitCode::SUCCESS)
}

/// `image-status [--json]`: pause flag and build request per image.
pub fn image_status(context: &Context, args: &OutputArgs) -> anyhow::Result<ExitCode> {
    let images = store::run(&context.config, async |store| {
        Ok(gather::images(store).await?)
    })?;
    if args.json {
        print_json(&status::records::image_status(&images.status));
    } else {
        print_table(&status::image_status(&images.status, now()));
    }
    Ok(ExitCode::SUCCESS)
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

/// `image-delete --provider P --image I --build-id B --upload-id U`: mark one upload
/// `deleting` for the builder (no lock, as in Nodepool).
pub fn image_delete(context: &Context, args: &ImageDeleteArgs) -> anyhow::Result<ExitCode> {
    store::run(&context.config, async |store| {
        let ids = BuildId::parse(&args.build_id)
            .ok()
            .zip(UploadId::parse(&args.upload_id).ok());
        let found = match &ids {
            Some((build, upload)) => {
                store
                    .images()
                    .upload(&args.image, build, &args.provider, *upload)
                    .await?
            }
            None => None,
        };
        let (Some((build, upload_id)), Some(found)) = (ids, found) else {
            println!("Image upload not found");
            return Ok(());
        };
        let mut upload = found.value;
        if upload.state == UploadState::Uploading {
            println!("Cannot delete because image upload in progress");
            return Ok(());
        }
        upload.set_state(UploadState::Deleting, now());
        store
            .images()
            .store_upload(&args.image, &build, &args.provider, upload_id, &upload)
            .await?;
        Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}

/// `dib-image-delete <image>-<build id>`: mark a build `deleting`; the builder deletes it
/// and its uploads.
pub fn dib_image_delete(context: &Context, args: &BuildIdArgs) -> anyhow::Result<ExitCode> {
    let Some((image, build_text)) = args.id.rsplit_once('-') else {
        // Nodepool's `rsplit('-', 1)` unpacking fails the same way.
        anyhow::bail!("not enough values to unpack (expected 2, got 1)");
    };
    store::run(&context.config, async |store| {
        let found = match BuildId::parse(build_text) {
            Ok(build_id) => store
                .images()
                .build(image, &build_id)
                .await?
                .map(|b| (build_id, b.value)),
            Err(_) => None,
        };
        let Some((build_id, mut build)) = found else {
            println!("Build {} not found", args.id);
            return Ok(());
        };
        if build.state == BuildState::Building {
            println!("Cannot delete a build in progress");
            return Ok(());
        }
        build.set_state(BuildState::Deleting, now());
        store.images().store_build(image, &build_id, &build).await?;
        Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}

/// `alien-image-list [PROVIDER] [--json]`: cloud images tagged `nodepool_build_id` that no
/// READY upload accounts for.
///
/// None of the drivers built into this binary can list cloud images yet, so every provider
/// reports that, as Nodepool warns for providers whose listing fails, and the table is
/// empty.
pub fn alien_image_list(context: &Context, args: &AlienImageListArgs) -> anyhow::Result<ExitCode> {
    for provider in context.config.providers.values() {
        if args.provider.as_ref().is_some_and(|p| *p != provider.name) {
            continue;
        }
        tracing::warn!(
            "Exception listing alien images for {}: the {} driver cannot list images",
            provider.name,
            provider.driver.name()
        );
    }
    let table = Table::new(&[
        Header::new("provider", "Provider"),
        Header::new("name", "Name"),
        Header::new("id", "Image ID"),
    ]);
    if args.output.json {
        print_json(&Value::Array(table.json_rows()));
    } else {
        print_table(&table);
    }
    Ok(ExitCode::SUCCESS)
}

/// Nodepool's `exportImageData`: `{znode path: data}` for every pause flag (`""`), build and
/// upload, in reading order.
async fn export(store: &Store) -> anyhow::Result<Map<String, Value>> {
    let view = store.images();
    let backend = store.backend();
    let mut data = Map::new();
    let mut names = view.names().await?;
    names.sort();
    for name in names {
        if view.is_paused(&name).await? {
            data.insert(paths::image_pause(&name), Value::String(String::new()));
        }
        for build in view.build_ids(&name).await? {
            let build_path = paths::build(&name, &build);
            let Some((bytes, _)) = backend.get(&build_path).await? else {
                continue;
            };
            data.insert(build_path, Value::String(text(&bytes)?));
            let mut providers = view.build_providers(&name, &build).await?;
            providers.sort();
            for provider in providers {
                for upload in view.upload_ids(&name, &build, &provider).await? {
                    let upload_path = paths::upload(&name, &build, &provider, upload);
                    let Some((bytes, _)) = backend.get(&upload_path).await? else {
                        continue;
                    };
                    data.insert(upload_path, Value::String(text(&bytes)?));
                }
            }
        }
    }
    Ok(data)
}

fn text(bytes: &[u8]) -> anyhow::Result<String> {
    Ok(std::str::from_utf8(bytes)
        .context("a record is not UTF-8")?
        .to_owned())
}

/// `export-image-data PATH`: the file is created with mode 0600. Unlike Nodepool (spec 8.3
/// item 16) an existing file is truncated, so a shorter export cannot leave stale bytes.
pub fn export_image_data(context: &Context, args: &PathArgs) -> anyhow::Result<ExitCode> {
    let data = store::run(&context.config, async |store| export(store).await)?;
    let json = status::to_python_json_text(&Value::Object(data));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(&args.path)
        .with_context(|| format!("cannot open {}", args.path.display()))?;
    file.write_all(json.as_bytes())
        .with_context(|| format!("cannot write {}", args.path.display()))?;
    Ok(ExitCode::SUCCESS)
}

/// The upload parents of the imported paths and the highest upload number under each:
/// `/nodepool/images/<i>/builds/<b>/providers/<p>/images/<n>` has ten `/`-separated parts.
fn highest_upload_numbers(data: &Map<String, Value>) -> anyhow::Result<BTreeMap<String, u64>> {
    let mut highest = BTreeMap::new();
    for path in data.keys() {
        let parts: Vec<&str> = path.split('/').collect();
        if parts.len() == 10 {
            let number: u64 = parts[9].trim().parse().with_context(|| {
                format!("invalid literal for int() with base 10: '{}'", parts[9])
            })?;
            let parent = parts[..9].join("/");
            let entry = highest.entry(parent).or_insert(number);
            *entry = (*entry).max(number);
        }
    }
    Ok(highest)
}

/// Nodepool's `importImageData`: first move each upload directory's sequence counter past
/// the highest imported number (creating sequential children and deleting those not in the
/// data), then write every record, creating missing paths.
async fn import(store: &Store, data: &Map<String, Value>) -> anyhow::Result<()> {
    let backend = store.backend();
    for (parent, number) in highest_upload_numbers(data)? {
        for _ in 0..number {
            let created = backend
                .create(
                    &format!("{parent}/"),
                    b"",
                    CreateMode::PersistentSequential,
                    true,
                )
                .await?;
            if !data.contains_key(&created) {
                backend.delete(&created, None).await?;
            }
        }
    }
    for (path, value) in data {
        let Some(text) = value.as_str() else {
            anyhow::bail!("{path}: the value is not a string");
        };
        if backend.exists(path).await?.is_some() {
            backend.set(path, text.as_bytes(), None).await?;
        } else {
            match backend
                .create(path, text.as_bytes(), CreateMode::Persistent, true)
                .await
            {
                Ok(_) => {}
                Err(StoreError::NodeExists(_)) => {
                    backend.set(path, text.as_bytes(), None).await?;
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok(())
}

/// `import-image-data PATH`: meant for a quiet system (no locks are taken).
pub fn import_image_data(context: &Context, args: &PathArgs) -> anyhow::Result<ExitCode> {
    let text = std::fs::read_to_string(&args.path)
        .with_context(|| format!("cannot read {}", args.path.display()))?;
    let data: Map<String, Value> = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a JSON object", args.path.display()))?;
    store::run(&context.config, async |store| import(store, &data).await)?;
    Ok(ExitCode::SUCCESS)
}
