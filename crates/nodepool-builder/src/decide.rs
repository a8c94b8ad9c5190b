//! Every builder rule of spec section 3 as a pure function over plain data.
//!
//! The inputs are one image's records as the store holds them ([`Builds`], [`Uploads`]),
//! the validated configuration, and facts the caller read elsewhere (the pause flag, the
//! build request flag, which builds have files on this builder, the clock). The outputs say
//! what to do; the builder's loops apply them under the locks (spec 3.8).
//!
//! "Most recent" is always by `state_time`, as in Nodepool. Nodepool breaks ties by
//! ZooKeeper child order, which is unspecified; we break them by id so that every function
//! is deterministic.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};

use nodepool_config::{Config, DiskImage, Provider};
use nodepool_model::{BuildId, BuildState, ImageBuild, ImageUpload, UploadId, UploadState};

/// The builds of one image by id (`/nodepool/images/<image>/builds/<build_id>`).
pub type Builds = BTreeMap<BuildId, ImageBuild>;

/// The uploads of one image: for each (build, provider) that has a provider znode, the
/// uploads by id (`.../builds/<build_id>/providers/<provider>/images/<upload_id>`).
/// Providers no longer in the configuration appear here too.
pub type Uploads = BTreeMap<(BuildId, String), BTreeMap<UploadId, ImageUpload>>;

/// Names one upload record of an image.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UploadRef {
    pub build_id: BuildId,
    pub provider: String,
    pub upload_id: UploadId,
}

fn newest_first<T: Ord>(a_time: f64, a_id: &T, b_time: f64, b_id: &T) -> Ordering {
    b_time.total_cmp(&a_time).then_with(|| b_id.cmp(a_id))
}

/// READY builds, newest first (Nodepool's `getMostRecentBuilds(count, image, READY)`).
pub fn newest_ready_builds(builds: &Builds) -> Vec<(&BuildId, &ImageBuild)> {
    let mut ready: Vec<(&BuildId, &ImageBuild)> = builds
        .iter()
        .filter(|(_, build)| build.state == BuildState::Ready)
        .collect();
    ready.sort_by(|(a_id, a), (b_id, b)| newest_first(a.state_time, a_id, b.state_time, b_id));
    ready
}

/// The most recent READY build: the one launchers' uploads should come from and the one
/// `rebuild-age` is measured against.
pub fn newest_ready_build(builds: &Builds) -> Option<(&BuildId, &ImageBuild)> {
    newest_ready_builds(builds).into_iter().next()
}

// ---------------------------------------------------------------------------------------
// Builds (spec 3.2, 3.6)
// ---------------------------------------------------------------------------------------

/// Why an image should be built now.
#[derive(Debug, Clone, PartialEq)]
pub enum BuildReason {
    /// `nodepool image-build` left `/nodepool/images/<image>/request-build` (spec 3.2 step 4).
    /// The loop removes the flag only when the new build is READY (spec 8.3 item 13).
    Requested,
    /// The image has no READY build.
    NoReadyBuild,
    /// The newest READY build is at least `rebuild-age` old.
    TooOld { build_id: BuildId, age_seconds: f64 },
    /// The newest READY build lacks formats the configuration now needs (a provider that
    /// takes another format started using the image, or `formats` grew).
    MissingFormats {
        build_id: BuildId,
        missing: BTreeSet<String>,
    },
}

/// Whether builds of the image are paused: config `pause: true` or the store's
/// `/nodepool/images/<image>/pause` flag (`nodepool image-pause`). Either one stops
/// scheduled and manual builds alike (spec 3.6); neither stops uploads or launches.
pub fn builds_paused(image: &DiskImage, paused_in_store: bool) -> bool {
    image.pause || paused_in_store
}

/// Whether the image should be built now, and why (spec 3.2).
///
/// * Paused (config or store flag) -> never, not even on request. Like Nodepool, the
///   builder honours the store flag for manual requests even though `nodepool image-build`
///   writes the request regardless of it (spec 8.3 item 21); the request waits for
///   `image-unpause`.
/// * No formats to build -> never.
/// * A manual request -> [`BuildReason::Requested`]. Nodepool checks scheduled builds first
///   and manual requests afterwards in the same pass, so an image both due and requested is
///   built twice; we build once and count it as the request (a READY result then clears
///   the flag and resets the age).
/// * Otherwise a scheduled build when there is no READY build, the newest READY build's age
///   (`int(now) - state_time`) is at least `rebuild-age`, or its formats are not a superset
///   of the configured ones.
///
/// BUILDING records do not hold a build back: the image build lock is what keeps one build
/// per image in the cluster. A BUILDING record left by a crashed builder would otherwise
/// delay the next build until the janitor removes it. The loop takes the lock
/// non-blocking and calls this again with fresh records under the lock, which also covers
/// Nodepool's "another builder built it meanwhile" re-check.
pub fn build_due(
    image: &DiskImage,
    builds: &Builds,
    paused_in_store: bool,
    build_request_present: bool,
    now: f64,
) -> Option<BuildReason> {
    if builds_paused(image, paused_in_store) || image.formats.is_empty() {
        return None;
    }
    if build_request_present {
        return Some(BuildReason::Requested);
    }
    let Some((build_id, build)) = newest_ready_build(builds) else {
        return Some(BuildReason::NoReadyBuild);
    };
    // Nodepool compares `int(time.time()) - state_time` with the integer `rebuild-age`.
    let age_seconds = now.floor() - build.state_time;
    if age_seconds >= image.rebuild_age as f64 {
        return Some(BuildReason::TooOld {
            build_id: build_id.clone(),
            age_seconds,
        });
    }
    let built: BTreeSet<&str> = build.formats.iter().map(String::as_str).collect();
    let missing: BTreeSet<String> = image
        .formats
        .iter()
        .filter(|format| !built.contains(format.as_str()))
        .cloned()
        .collect();
    if !missing.is_empty() {
        return Some(BuildReason::MissingFormats {
            build_id: build_id.clone(),
            missing,
        });
    }
    None
}

/// Whether `nodepool dib-image-delete` may mark this build DELETING: not while it is
/// BUILDING (spec 3.7).
pub fn build_deletable_by_cli(build: &ImageBuild) -> bool {
    build.state != BuildState::Building
}

/// Whether `nodepool image-delete` may mark this upload DELETING: not while it is
/// UPLOADING (spec 3.7).
pub fn upload_deletable_by_cli(upload: &ImageUpload) -> bool {
    upload.state != UploadState::Uploading
}

// ---------------------------------------------------------------------------------------
// Uploads (spec 3.4)
// ---------------------------------------------------------------------------------------

/// One upload to start: `<images-dir>/<image>-<build_id>.<format>` to `provider`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct UploadDue {
    pub build_id: BuildId,
    pub provider: String,
    /// The provider's image type; always one of the build's formats.
    pub format: String,
}

/// Whether uploads of `image` to `provider` are paused (provider-diskimage `pause: true`,
/// spec 3.6). Builds and launches from existing uploads go on.
pub fn upload_paused(provider: &Provider, image: &str) -> bool {
    provider.diskimages.get(image).is_some_and(|d| d.pause)
}

/// The uploads this builder should start for `image` (spec 3.4), in provider name order.
///
/// For every provider that manages images and lists `image` without pausing it: the newest
/// READY build B, if this builder holds its files (`local_builds`: only the builder that
/// built an image uploads it, spec 3.8), B has no READY upload to the provider, and the
/// provider's image type is among B's formats. Only B is considered: an older build is
/// never uploaded, even when B cannot be.
///
/// Like Nodepool, only a READY upload counts as "already uploaded": a FAILED upload is
/// retried with a new upload id on the next pass, and an UPLOADING record is left to the
/// upload lock (held while the upload runs; free if its builder died, in which case
/// uploading again is right). The loop takes the lock non-blocking, calls this again with
/// fresh records, and re-reads B to skip it if it is gone or DELETING.
pub fn uploads_due<'c>(
    image: &str,
    providers: impl IntoIterator<Item = &'c Provider>,
    builds: &Builds,
    uploads: &Uploads,
    local_builds: &BTreeSet<BuildId>,
) -> Vec<UploadDue> {
    let Some((build_id, build)) = newest_ready_build(builds) else {
        return Vec::new();
    };
    if !local_builds.contains(build_id) {
        return Vec::new();
    }
    let mut due = Vec::new();
    for provider in providers {
        if !takes_image(provider, image) || upload_paused(provider, image) {
            continue;
        }
        let Some(format) = &provider.image_type else {
            continue;
        };
        if !build.formats.contains(format) {
            continue;
        }
        if has_ready_upload(uploads, build_id, &provider.name) {
            continue;
        }
        due.push(UploadDue {
            build_id: build_id.clone(),
            provider: provider.name.clone(),
            format: format.clone(),
        });
    }
    due.sort();
    due
}

/// The provider manages images and lists this one in its `diskimages`.
fn takes_image(provider: &Provider, image: &str) -> bool {
    provider.driver.manages_images() && provider.diskimages.contains_key(image)
}

fn uploads_of<'u>(
    uploads: &'u Uploads,
    build_id: &BuildId,
    provider: &str,
) -> impl Iterator<Item = (&'u UploadId, &'u ImageUpload)> {
    uploads
        .get(&(build_id.clone(), provider.to_owned()))
        .into_iter()
        .flatten()
}

fn has_ready_upload(uploads: &Uploads, build_id: &BuildId, provider: &str) -> bool {
    uploads_of(uploads, build_id, provider).any(|(_, u)| u.state == UploadState::Ready)
}

/// The upload launchers use for (image, provider): the most recent READY upload (by its
/// `state_time`) of any READY build (spec 3.7).
///
/// Nodepool's launcher takes the newest READY upload whatever its build's state, so after
/// `dib-image-delete` it keeps launching from the deleted build until the janitor has
/// marked that build's uploads DELETING (up to a minute). Requiring a READY build makes the
/// revert immediate: as soon as the newest build is DELETING, the previous build's upload
/// is current.
pub fn current_upload(
    provider: &str,
    builds: &Builds,
    uploads: &Uploads,
) -> Option<(BuildId, UploadId)> {
    uploads
        .iter()
        .filter(|((build_id, upload_provider), _)| {
            upload_provider == provider
                && builds
                    .get(build_id)
                    .is_some_and(|b| b.state == BuildState::Ready)
        })
        .flat_map(|((build_id, _), by_id)| {
            by_id
                .iter()
                .filter(|(_, u)| u.state == UploadState::Ready)
                .map(move |(upload_id, u)| (build_id, upload_id, u.state_time))
        })
        .min_by(|(a_build, a_id, a_time), (b_build, b_id, b_time)| {
            newest_first(*a_time, &(a_id, a_build), *b_time, &(b_id, b_build))
        })
        .map(|(build_id, upload_id, _)| (build_id.clone(), *upload_id))
}

// ---------------------------------------------------------------------------------------
// Retention (spec 3.5)
// ---------------------------------------------------------------------------------------

/// What the janitor should do with one image's records this pass.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Retention {
    /// The two most recent READY builds of a configured image (none for an image that left
    /// the configuration). Retention never deletes these; only `dib-image-delete` does.
    pub keep_builds: BTreeSet<BuildId>,
    /// Uploads to delete. For each: unless already DELETING, skip it if it is UPLOADING
    /// with its upload lock held, else mark it DELETING under the upload-number lock; then
    /// delete the cloud image when it has an `external_id`, and on success the record.
    pub delete_uploads: BTreeSet<UploadRef>,
    /// UPLOADING records of kept builds that may belong to a dead upload: if the upload
    /// lock is free and the record still says UPLOADING, delete the record only (no cloud
    /// image was recorded).
    pub drop_stale_upload_records: BTreeSet<UploadRef>,
    /// Builds to retire: after `delete_uploads` is applied, re-read their uploads and apply
    /// [`build_removal`]. A BUILDING build among them is skipped while the image build lock
    /// is held (or its state changed meanwhile): it is a build in progress.
    pub retire_builds: BTreeSet<BuildId>,
}

/// The uploads worth keeping for an image (Nodepool's recency table): for every READY
/// build and every provider it has uploads in, that build's two newest READY uploads; then
/// per provider only the two newest of those overall.
pub fn recent_uploads(builds: &Builds, uploads: &Uploads) -> BTreeSet<UploadRef> {
    let mut per_provider: BTreeMap<&str, Vec<(f64, UploadRef)>> = BTreeMap::new();
    for ((build_id, provider), by_id) in uploads {
        if !builds
            .get(build_id)
            .is_some_and(|b| b.state == BuildState::Ready)
        {
            continue;
        }
        let mut ready: Vec<(&UploadId, &ImageUpload)> = by_id
            .iter()
            .filter(|(_, u)| u.state == UploadState::Ready)
            .collect();
        ready.sort_by(|(a_id, a), (b_id, b)| newest_first(a.state_time, a_id, b.state_time, b_id));
        let entries = per_provider.entry(provider.as_str()).or_default();
        for (upload_id, upload) in ready.into_iter().take(2) {
            entries.push((
                upload.state_time,
                UploadRef {
                    build_id: build_id.clone(),
                    provider: provider.clone(),
                    upload_id: *upload_id,
                },
            ));
        }
    }
    let mut recent = BTreeSet::new();
    for (_, mut entries) in per_provider {
        entries.sort_by(|(a_time, a), (b_time, b)| newest_first(*a_time, a, *b_time, b));
        recent.extend(entries.into_iter().take(2).map(|(_, r)| r));
    }
    recent
}

/// The janitor's decisions for one image found in the store (spec 3.5).
///
/// * Kept builds: the two most recent READY builds if the image is in the configuration;
///   none if it is not (removing an image from the configuration deletes all of it, as in
///   Nodepool; the "current and previous build are never deleted" invariant is about
///   configured images).
/// * For every build, in any state, and every image-managing provider in the
///   configuration: if the provider no longer lists the image, all the build's uploads
///   there are deleted ("obsolete"). Otherwise, for a kept build, FAILED and DELETING
///   uploads are deleted and UPLOADING ones are stale-record candidates.
/// * A build that is DELETING (`dib-image-delete`), or neither kept nor in progress, is
///   retired: its uploads to image-managing providers that are not in
///   [`recent_uploads`] are deleted, and it goes once its uploads are gone.
///
/// * A BUILDING build is retired without touching its uploads: it can only have some when
///   it became READY while the records were read, and those are the newest uploads.
///
/// Uploads to providers that left the configuration (or do not manage images) are never
/// touched, so they keep their build alive until `nodepool erase` (as in Nodepool).
pub fn retention(config: &Config, image: &str, builds: &Builds, uploads: &Uploads) -> Retention {
    let keep_builds: BTreeSet<BuildId> = if config.diskimages.contains_key(image) {
        newest_ready_builds(builds)
            .into_iter()
            .take(2)
            .map(|(id, _)| id.clone())
            .collect()
    } else {
        BTreeSet::new()
    };
    let recent = recent_uploads(builds, uploads);
    let managing: Vec<&Provider> = config
        .providers
        .values()
        .filter(|p| p.driver.manages_images())
        .collect();
    let upload_ref = |build_id: &BuildId, provider: &str, upload_id: &UploadId| UploadRef {
        build_id: build_id.clone(),
        provider: provider.to_owned(),
        upload_id: *upload_id,
    };

    let mut plan = Retention {
        keep_builds,
        ..Retention::default()
    };
    for (build_id, build) in builds {
        let kept = plan.keep_builds.contains(build_id);
        if build.state == BuildState::Building {
            // Only READY builds get uploads, so uploads of a build seen BUILDING mean it
            // finished while the records were being read (builds first, uploads after):
            // they are the newest build's and must not go on this stale view. The build
            // itself is retired; the loop skips it while the build lock is held or its
            // state changed.
            plan.retire_builds.insert(build_id.clone());
            continue;
        }
        for provider in &managing {
            let name = provider.name.as_str();
            if !provider.diskimages.contains_key(image) {
                for (upload_id, _) in uploads_of(uploads, build_id, name) {
                    plan.delete_uploads
                        .insert(upload_ref(build_id, name, upload_id));
                }
            } else if kept {
                for (upload_id, upload) in uploads_of(uploads, build_id, name) {
                    match upload.state {
                        UploadState::Uploading => {
                            plan.drop_stale_upload_records
                                .insert(upload_ref(build_id, name, upload_id));
                        }
                        UploadState::Deleting | UploadState::Failed => {
                            plan.delete_uploads
                                .insert(upload_ref(build_id, name, upload_id));
                        }
                        UploadState::Ready | UploadState::Other(_) => {}
                    }
                }
            }
        }
        if build.state != BuildState::Deleting && kept {
            continue;
        }
        for provider in &managing {
            let name = provider.name.as_str();
            for (upload_id, _) in uploads_of(uploads, build_id, name) {
                let upload = upload_ref(build_id, name, upload_id);
                if !recent.contains(&upload) {
                    plan.delete_uploads.insert(upload);
                }
            }
        }
        plan.retire_builds.insert(build_id.clone());
    }
    plan
}

/// The next step in removing a retired build, given all its uploads in the store (every
/// provider znode, configured or not) after this pass's upload deletions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BuildRemoval {
    /// Some upload is not DELETING yet: the build stays as it is.
    Wait,
    /// Every upload is DELETING: mark the build DELETING (under the build-id lock), which
    /// lets its builder delete the local files while clouds are still deleting images.
    MarkDeleting,
    /// Every upload is DELETING and so is the build: wait for the clouds.
    WaitForUploads,
    /// No uploads left: mark the build DELETING if it is not, then delete its znode
    /// recursively.
    Delete,
}

/// Decides [`BuildRemoval`] for a retired build (spec 3.5, last step per build).
pub fn build_removal<'u>(
    build: &ImageBuild,
    uploads_of_build: impl IntoIterator<Item = &'u ImageUpload>,
) -> BuildRemoval {
    let mut any = false;
    for upload in uploads_of_build {
        any = true;
        if upload.state != UploadState::Deleting {
            return BuildRemoval::Wait;
        }
    }
    if !any {
        BuildRemoval::Delete
    } else if build.state == BuildState::Deleting {
        BuildRemoval::WaitForUploads
    } else {
        BuildRemoval::MarkDeleting
    }
}

// ---------------------------------------------------------------------------------------
// Local files (spec 3.3 "local file discovery", 3.5 "local files")
// ---------------------------------------------------------------------------------------

/// An image file name in the images directory split as Nodepool's
/// `^(.*)-([abcdef\d]+)\.(?:\w+)$` splits it: `<image>-<build id>.<extension>`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct LocalBuildName {
    pub image: String,
    /// As found: hex digits of any length (Nodepool does not check the id's shape).
    pub build_id: String,
}

/// Splits a file name of the images directory into image and build id (spec 3.3).
///
/// The extension is the part after the last dot and must be word characters, so checksum
/// files (`<base>.qcow2.md5`) do not match; the build id is the hex after the last dash.
/// The manifest directory `<base>.d` matches, naming the same build.
pub fn parse_local_build_name(file_name: &str) -> Option<LocalBuildName> {
    let (stem, extension) = file_name.rsplit_once('.')?;
    if extension.is_empty() || !extension.chars().all(|c| c.is_alphanumeric() || c == '_') {
        return None;
    }
    let (image, build_id) = stem.rsplit_once('-')?;
    if build_id.is_empty()
        || !build_id
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    {
        return None;
    }
    Some(LocalBuildName {
        image: image.to_owned(),
        build_id: build_id.to_owned(),
    })
}

/// The format of an image file if it belongs to build `<image>-<build_id>`: its name minus
/// the last suffix is exactly the base name (spec 3.3). `<base>.qcow2.md5` does not belong
/// (it is a checksum file, deleted along with its image file).
pub fn local_file_format<'f>(file_name: &'f str, image: &str, build_id: &str) -> Option<&'f str> {
    let (stem, extension) = file_name.rsplit_once('.')?;
    let belongs = stem
        .strip_prefix(image)
        .and_then(|rest| rest.strip_prefix('-'))
        .is_some_and(|rest| rest == build_id);
    belongs.then_some(extension)
}

/// What the janitor does with a build whose files are in this builder's images directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LocalBuildAction {
    /// Keep every file.
    Keep,
    /// The build is gone from the store or DELETING: delete `<base>.<ext>` with its `.md5`
    /// and `.sha256` for every extension, and the `<base>.d` directory.
    DeleteAll,
    /// `delete-after-upload`: delete these formats' files and checksums.
    DeleteFormats(BTreeSet<String>),
}

/// Decides [`LocalBuildAction`] for one local build (spec 3.5, local files).
///
/// With `delete-after-upload`, a READY build's format file is deleted unless the format is
/// in `keep-formats` or some image-managing provider that lists the image still lacks a
/// READY upload of this build (its image type is then kept for the upload). An image that
/// left the configuration keeps its READY build's files until retention deletes the build
/// (Nodepool fails on the missing config entry here and does the same by accident).
pub fn local_build_action(
    config: &Config,
    image: &str,
    build_id: &BuildId,
    build: Option<&ImageBuild>,
    uploads: &Uploads,
    local_formats: &BTreeSet<String>,
) -> LocalBuildAction {
    let Some(build) = build else {
        return LocalBuildAction::DeleteAll;
    };
    match build.state {
        BuildState::Deleting => return LocalBuildAction::DeleteAll,
        BuildState::Ready => {}
        _ => return LocalBuildAction::Keep,
    }
    let Some(diskimage) = config.diskimages.get(image) else {
        return LocalBuildAction::Keep;
    };
    if !diskimage.delete_after_upload {
        return LocalBuildAction::Keep;
    }
    let mut needed: BTreeSet<&str> = diskimage.keep_formats.iter().map(String::as_str).collect();
    for provider in config.providers.values() {
        if !takes_image(provider, image) || has_ready_upload(uploads, build_id, &provider.name) {
            continue;
        }
        if let Some(format) = &provider.image_type {
            needed.insert(format);
        }
    }
    let delete: BTreeSet<String> = local_formats
        .iter()
        .filter(|format| !needed.contains(format.as_str()))
        .cloned()
        .collect();
    if delete.is_empty() {
        LocalBuildAction::Keep
    } else {
        LocalBuildAction::DeleteFormats(delete)
    }
}

// ---------------------------------------------------------------------------------------
// Build logs (spec 3.3 step 5)
// ---------------------------------------------------------------------------------------

/// The build logs to delete before a new build of `image` starts.
///
/// `logs` are the file names in the build log directory with their modification times.
/// The newest `max(build-log-retention, 1)` logs of the image are kept (so retention + 1
/// exist after the new build); a negative retention keeps everything.
///
/// Nodepool prunes every file whose name starts with the image name, so building `img`
/// also prunes the logs of `img2` (spec 8.3 item 15). We count only `<image>-<build
/// id>.log` files, with a build id of either shape [`BuildId`] accepts.
pub fn build_logs_to_prune(image: &str, logs: &[(String, f64)], retention: i64) -> Vec<String> {
    if retention < 0 {
        return Vec::new();
    }
    let keep = retention.max(1) as usize;
    let mut own: Vec<&(String, f64)> = logs
        .iter()
        .filter(|(name, _)| {
            name.strip_prefix(image)
                .and_then(|rest| rest.strip_prefix('-'))
                .and_then(|rest| rest.strip_suffix(".log"))
                .is_some_and(|id| BuildId::parse(id).is_ok())
        })
        .collect();
    // Oldest first; ties by name so the result is deterministic.
    own.sort_by(|(a_name, a_time), (b_name, b_time)| {
        a_time.total_cmp(b_time).then_with(|| a_name.cmp(b_name))
    });
    let excess = own.len().saturating_sub(keep);
    own.into_iter()
        .take(excess)
        .map(|(name, _)| name.clone())
        .collect()
}

#[cfg(test)]
mod tests;
