//! Build workers (spec 3.2, 3.3): every `build_interval`, build each configured diskimage
//! that [`decide::build_due`] says is due, under the image build lock.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use nodepool_config::{BuildBackend, Config, DiskImage, NativeBuild};
use nodepool_model::{BuildId, BuildState, ImageBuild};
use nodepool_store::LockWait;

use crate::context::{Context, now};
use crate::decide::{self, BuildReason};
use crate::records;

pub async fn run(ctx: Arc<Context>, name: String) {
    while !ctx.is_stopping() {
        ctx.workers.busy(&name);
        if let Err(e) = pass(&ctx).await {
            crate::context::log_failure(&e, &name, "build pass failed");
            ctx.workers.error(&name, &e);
        }
        ctx.workers.idle(&name);
        ctx.pause(ctx.options.timing.build_interval).await;
    }
    ctx.workers.stopped(&name);
}

async fn pass(ctx: &Context) -> anyhow::Result<()> {
    let config = ctx.config();
    for image in config.diskimages.values() {
        if ctx.is_stopping() {
            break;
        }
        if let Err(e) = consider(ctx, &config, image).await {
            crate::context::log_failure(&e, &image.name, "cannot build image");
        }
    }
    Ok(())
}

/// The facts `build_due` takes, read fresh from the store.
async fn due(ctx: &Context, image: &DiskImage) -> anyhow::Result<Option<BuildReason>> {
    let images = ctx.store.images();
    let builds = records::builds(&ctx.store, &image.name).await?;
    let paused = images.is_paused(&image.name).await?;
    let requested = images.build_request(&image.name).await?.is_some();
    Ok(decide::build_due(image, &builds, paused, requested, now()))
}

async fn consider(ctx: &Context, config: &Config, image: &DiskImage) -> anyhow::Result<()> {
    if due(ctx, image).await?.is_none() {
        return Ok(());
    }
    let images = ctx.store.images();
    let Some(lock) = images
        .lock_image_builds(&image.name, LockWait::NonBlocking)
        .await?
    else {
        tracing::debug!(image = %image.name, "another builder is building this image");
        return Ok(());
    };
    // Another builder may have finished a build between our look and the lock.
    let result = match due(ctx, image).await {
        Ok(Some(reason)) => build(ctx, config, image, reason, &lock).await,
        Ok(None) => Ok(()),
        Err(e) => Err(e),
    };
    if let Err(e) = lock.release().await {
        tracing::warn!(image = %image.name, error = %e, "cannot release the image build lock");
    }
    result
}

/// The output base path `<images-dir>/<image>-<build id>`.
pub fn image_base(images_dir: &Path, image: &str, build_id: &BuildId) -> PathBuf {
    images_dir.join(format!("{image}-{build_id}"))
}

/// Quotes a word for `shlex.split` (and `sh`) when it needs it.
fn shell_word(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./=,:+%@".contains(&b));
    if plain {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// Nodepool's command line for `disk-image-create` (spec 3.3 step 3), as one string.
/// Formats are sorted (Nodepool's order is unspecified).
pub fn dib_command_line(image: &DiskImage, base: &Path) -> String {
    let formats: Vec<&str> = image.formats.iter().map(String::as_str).collect();
    let mut line = format!(
        "{} -x -t {} --checksum --no-tmpfs",
        image.dib_cmd,
        formats.join(",")
    );
    if image.formats.contains("qcow2") {
        line.push_str(" --qemu-img-options 'compat=0.10'");
    }
    line.push_str(" -o ");
    line.push_str(&shell_word(&base.to_string_lossy()));
    for element in &image.elements {
        line.push(' ');
        line.push_str(element);
    }
    line
}

fn prune_logs(log_dir: &Path, image: &str, retention: i64) {
    let Ok(entries) = std::fs::read_dir(log_dir) else {
        return;
    };
    let logs: Vec<(String, f64)> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let modified = e.metadata().ok()?.modified().ok()?;
            let mtime = modified.duration_since(UNIX_EPOCH).ok()?.as_secs_f64();
            Some((e.file_name().into_string().ok()?, mtime))
        })
        .collect();
    for name in decide::build_logs_to_prune(image, &logs, retention) {
        records::remove_path(&log_dir.join(name));
    }
}

/// How a build command ended.
enum Outcome {
    Exited(i32),
    TimedOut,
    Stopped,
}

async fn run_command(
    ctx: &Context,
    config: &Config,
    image: &DiskImage,
    base: &Path,
    log_path: &Path,
) -> anyhow::Result<Outcome> {
    let log = std::fs::File::create(log_path)
        .with_context(|| format!("creating {}", log_path.display()))?;
    let timeout = Duration::from_secs(image.build_timeout);
    let mut shutdown = ctx.shutdown.clone();
    if let BuildBackend::Native(native) = &image.backend {
        drop(log);
        let spec = native_spec(ctx, image, native, base);
        tracing::info!(image = %image.name, log = %log_path.display(), "running a native build");
        let build_log = nodepool_native_image::BuildLog::new(log_path);
        // Dropping the build (timeout, shutdown) kills its tools and removes partial files.
        let outcome = tokio::select! {
            result = nodepool_native_image::build(&spec, &build_log) => match result {
                Ok(_) => Outcome::Exited(0),
                Err(e) => {
                    build_log.line(&format!("native build failed: {e:#}"));
                    tracing::warn!(image = %image.name, error = %format!("{e:#}"), "native build failed");
                    Outcome::Exited(1)
                }
            },
            _ = tokio::time::sleep(timeout) => Outcome::TimedOut,
            _ = shutdown.wait_for(|s| *s) => Outcome::Stopped,
        };
        if let Outcome::Exited(rc) = outcome {
            build_log.line(&format!("Exit code: {rc}"));
        }
        return Ok(outcome);
    }
    let line = dib_command_line(image, base);
    tracing::info!(image = %image.name, command = %line, log = %log_path.display(), "running the build command");
    // Split as Nodepool does (`shlex.split`), and run without a shell.
    let argv = crate::shlex::split(&line)
        .with_context(|| format!("cannot split the build command line {line:?}"))?;
    let Some((program, args)) = argv.split_first() else {
        anyhow::bail!("the build command line is empty");
    };
    let mut command = tokio::process::Command::new(program);
    command
        .args(args)
        .env("DIB_RELEASE", &image.release)
        .env("DIB_IMAGE_NAME", &image.name)
        .env("DIB_IMAGE_FILENAME", base)
        .stdin(Stdio::null())
        .stdout(Stdio::from(log.try_clone()?))
        .stderr(Stdio::from(log))
        .kill_on_drop(true);
    if let Some(elements) = &config.elements_dir {
        command.env("ELEMENTS_PATH", elements);
    }
    command.envs(image.env_vars.iter());
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(e) => {
            // Into the build log too, where an operator looks for why a build failed.
            let said = format!("cannot run {program:?}: {e}\n");
            let _ = std::fs::OpenOptions::new()
                .append(true)
                .open(log_path)
                .and_then(|mut log| std::io::Write::write_all(&mut log, said.as_bytes()));
            return Err(e).with_context(|| format!("starting the build command {program:?}"));
        }
    };
    let outcome = tokio::select! {
        status = child.wait() => Outcome::Exited(status?.code().unwrap_or(1)),
        _ = tokio::time::sleep(timeout) => Outcome::TimedOut,
        _ = shutdown.wait_for(|s| *s) => Outcome::Stopped,
    };
    if !matches!(outcome, Outcome::Exited(_)) {
        let _ = child.kill().await;
    }
    if let Outcome::Exited(rc) = outcome {
        use std::io::Write as _;
        let mut log = std::fs::OpenOptions::new().append(true).open(log_path)?;
        writeln!(log, "Exit code: {rc}")?;
    }
    Ok(outcome)
}

/// The default suite when a native diskimage names no `release`.
pub const NATIVE_DEFAULT_RELEASE: &str = "bookworm";

/// How long a cached native root file system is used before `apt-get dist-upgrade`: a bit
/// under a day, so the daily rebuild (`rebuild-age` 24 h) gets the day's updates.
const NATIVE_REFRESH: Duration = Duration::from_secs(20 * 3600);

fn native_spec(
    ctx: &Context,
    image: &DiskImage,
    native: &NativeBuild,
    base: &Path,
) -> nodepool_native_image::NativeSpec {
    nodepool_native_image::NativeSpec {
        image_name: image.name.clone(),
        distribution: native.distribution.clone(),
        release: if image.release.is_empty() {
            NATIVE_DEFAULT_RELEASE.to_string()
        } else {
            image.release.clone()
        },
        mirror: native.mirror.clone(),
        packages: native.packages.clone(),
        kernel: native.kernel.clone(),
        disk_size_gib: native.disk_size,
        username: image.username.clone(),
        formats: image.formats.iter().cloned().collect(),
        // A dot name: never taken for a build's files by the janitor.
        cache_dir: ctx.images_dir.join(".native-cache"),
        output_base: base.to_path_buf(),
        refresh_after: NATIVE_REFRESH,
    }
}

async fn build(
    ctx: &Context,
    config: &Config,
    image: &DiskImage,
    reason: BuildReason,
    lock: &nodepool_store::Lock,
) -> anyhow::Result<()> {
    let images = ctx.store.images();
    let build_id = BuildId::new_random();
    let mut record = ImageBuild::new(BuildState::Building, now());
    record.builder = Some(ctx.options.hostname.clone());
    record.builder_id = Some(ctx.builder_id.clone());
    record.formats = image.formats.iter().cloned().collect();
    images
        .create_build(&image.name, &build_id, &record)
        .await
        .context("creating the build record")?;
    tracing::info!(image = %image.name, build_id = %build_id, ?reason, "building image");

    std::fs::create_dir_all(&config.build_log_dir)
        .with_context(|| format!("creating {}", config.build_log_dir.display()))?;
    prune_logs(
        &config.build_log_dir,
        &image.name,
        config.build_log_retention,
    );
    let base = image_base(&ctx.images_dir, &image.name, &build_id);
    let log_path = config
        .build_log_dir
        .join(format!("{}-{build_id}.log", image.name));
    let started = SystemTime::now();
    let outcome = run_command(ctx, config, image, &base, &log_path).await;
    // Spec 3.3 step 7: a build during which the session was lost is FAILED. The lock's
    // contender is ephemeral, so a lost session (or anyone removing it) shows as a lock no
    // longer held; another builder may have built the image meanwhile.
    let lock_held = match lock.is_held().await {
        Ok(held) => held,
        Err(e) => {
            tracing::warn!(image = %image.name, build_id = %build_id, error = %e, "cannot check the image build lock");
            false
        }
    };
    if !lock_held {
        tracing::warn!(image = %image.name, build_id = %build_id, "the image build lock was lost during the build");
    }
    let ready = lock_held && matches!(outcome, Ok(Outcome::Exited(0)));
    match &outcome {
        Ok(Outcome::Exited(0)) => {}
        Ok(Outcome::Exited(rc)) => {
            tracing::warn!(image = %image.name, build_id = %build_id, rc, log = %log_path.display(), "build failed")
        }
        Ok(Outcome::TimedOut) => {
            tracing::warn!(image = %image.name, build_id = %build_id, timeout = image.build_timeout, "build timed out")
        }
        Ok(Outcome::Stopped) => {
            tracing::info!(image = %image.name, build_id = %build_id, "build interrupted by shutdown")
        }
        Err(e) => {
            tracing::warn!(image = %image.name, build_id = %build_id, error = %format!("{e:#}"), "build could not run")
        }
    }

    let mut result = ImageBuild::new(
        if ready {
            BuildState::Ready
        } else {
            BuildState::Failed
        },
        now(),
    );
    result.builder = Some(ctx.options.hostname.clone());
    result.builder_id = Some(ctx.builder_id.clone());
    result.username = Some(image.username.clone());
    result.python_path = Some(image.python_path.clone());
    result.shell_type = image.shell_type.clone();
    if ready {
        result.formats = image.formats.iter().cloned().collect();
    }
    if let Err(e) = images.store_build(&image.name, &build_id, &result).await {
        // Files nobody knows about would only wait for the janitor; remove them now.
        for build in records::local_builds(&ctx.images_dir)
            .into_iter()
            .filter(|((i, id), _)| i == &image.name && id == build_id.as_str())
            .map(|(_, b)| b)
        {
            build.paths.iter().for_each(|p| records::remove_path(p));
        }
        return Err(e).context("storing the build result");
    }
    let seconds = started.elapsed().map(|d| d.as_secs_f64()).unwrap_or(0.0);
    if ready {
        tracing::info!(image = %image.name, build_id = %build_id, seconds, "build ready");
        if reason == BuildReason::Requested {
            images.clear_build_request(&image.name).await?;
        }
    }
    Ok(())
}
