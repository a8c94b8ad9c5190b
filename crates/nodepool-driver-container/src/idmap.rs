//! The user namespace of container nodes: root in a container is an unprivileged user here.
//!
//! Every container maps its ids `0..ID_COUNT` to `HOST_ID_BASE..HOST_ID_BASE + ID_COUNT` on
//! this machine, so a process that escaped would be a nobody with no file of this machine's
//! to write. The files a container sees must be owned by mapped ids, so the image's root file
//! system is shifted once ([`ensure_image_shifted`]: each id below `ID_COUNT` moves up by
//! `HOST_ID_BASE`), and what the driver writes into a node before it starts (keys, hostname)
//! is shifted through the node's overlay ([`shift_through`]).
//!
//! One range for every node keeps images shared between nodes (a range per node would need
//! a copy of the image per range, or idmapped mounts, which Debian 12's runc does not
//! make). Nodes stay apart by their namespaces: each has its own mount, PID, IPC, UTS,
//! network and user namespace, and a file of one node is never mounted into another.
//!
//! Shifting is idempotent (ids already in the range are left alone), so concurrent creates
//! may shift the same image and a shift cut short by a crash is finished by the next one.

use std::fs;
use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt, lchown};
use std::path::Path;

use nodepool_driver::DriverError;

/// The first id on this machine that containers' ids map to: far above any login or system
/// user and above the ranges `/etc/subuid` hands out by default (100000 + 65536 * n).
pub const HOST_ID_BASE: u32 = 1_000_000_000;
/// How many ids a container has (0 to 65535, `nobody` included).
pub const ID_COUNT: u32 = 65_536;
/// Written next to an image's root file system once it is fully shifted.
const SHIFTED_MARKER: &str = "ids-shifted";

/// An id as this machine sees it: container ids move up by the base, others stay.
pub fn host_id(id: u32) -> u32 {
    if id < ID_COUNT { id + HOST_ID_BASE } else { id }
}

/// Moves the owner of one file (not following symlinks) into the container range. `chown`
/// clears the set-user-id and set-group-id bits, which `sudo` and friends need, so they are
/// put back. Returns whether anything changed.
fn shift_one(meta: &fs::Metadata, through: &Path) -> io::Result<bool> {
    let (uid, gid) = (meta.uid(), meta.gid());
    if uid >= ID_COUNT && gid >= ID_COUNT {
        return Ok(false);
    }
    lchown(through, Some(host_id(uid)), Some(host_id(gid)))?;
    let mode = meta.mode() & 0o7777;
    if !meta.file_type().is_symlink() && mode & 0o6000 != 0 {
        fs::set_permissions(through, fs::Permissions::from_mode(mode))?;
    }
    Ok(true)
}

/// Walks `root` (not following symlinks) and shifts every entry found there, applying the
/// change to the same relative path under `target` (the same tree, or the overlay above it).
fn walk(root: &Path, target: &Path, changed: &mut u64) -> io::Result<()> {
    let meta = fs::symlink_metadata(root)?;
    if shift_one(&meta, target)? {
        *changed += 1;
    }
    if meta.is_dir() {
        for entry in fs::read_dir(root)? {
            let entry = entry?;
            walk(&entry.path(), &target.join(entry.file_name()), changed)?;
        }
    }
    Ok(())
}

fn fatal(what: String) -> impl FnOnce(io::Error) -> DriverError {
    move |e| DriverError::Fatal(format!("{what}: {e}"))
}

/// Shifts the ids of every file under `tree` in place; returns how many changed.
pub fn shift_tree(tree: &Path) -> Result<u64, DriverError> {
    let mut changed = 0;
    walk(tree, tree, &mut changed)
        .map_err(fatal(format!("cannot shift the ids of {}", tree.display())))?;
    Ok(changed)
}

/// Shifts what the driver wrote into a node: every entry of the overlay's `upper` layer,
/// changed through `merged` (a change made under the overlay's feet would not be seen by the
/// overlay's cached inodes, and the container would be refused its own files).
pub fn shift_through(upper: &Path, merged: &Path) -> Result<u64, DriverError> {
    let mut changed = 0;
    walk(upper, merged, &mut changed).map_err(fatal(format!(
        "cannot shift the ids of {}",
        merged.display()
    )))?;
    Ok(changed)
}

/// Shifts an image's root file system unless its marker says it is done. `image_dir` is the
/// image's directory; its `rootfs` is what nodes see.
pub fn ensure_image_shifted(image_dir: &Path, rootfs: &Path) -> Result<(), DriverError> {
    let marker = image_dir.join(SHIFTED_MARKER);
    let wanted = format!("{HOST_ID_BASE}:{ID_COUNT}\n");
    if fs::read_to_string(&marker).is_ok_and(|text| text == wanted) {
        return Ok(());
    }
    let changed = shift_tree(rootfs)?;
    fs::write(&marker, wanted).map_err(fatal(format!("cannot write {}", marker.display())))?;
    tracing::info!(image = %image_dir.display(), changed, "image ids moved into the containers' range");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn ids_below_the_count_move_up_and_others_stay() {
        assert_eq!(host_id(0), HOST_ID_BASE);
        assert_eq!(host_id(65_534), HOST_ID_BASE + 65_534);
        assert_eq!(host_id(ID_COUNT), ID_COUNT);
        assert_eq!(host_id(HOST_ID_BASE + 5), HOST_ID_BASE + 5);
    }

    /// Needs root (chown); the driver's tests all do.
    #[test]
    fn a_tree_is_shifted_once_keeping_setuid_bits_and_symlinks() {
        if !fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0) {
            eprintln!("skipped: needs root");
            return;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().join("rootfs");
        fs::create_dir_all(root.join("usr/bin")).expect("mkdir");
        let sudo = root.join("usr/bin/sudo");
        fs::write(&sudo, "#!/bin/true\n").expect("write");
        lchown(&sudo, Some(0), Some(0)).expect("chown");
        fs::set_permissions(&sudo, fs::Permissions::from_mode(0o4755)).expect("chmod");
        let home = root.join("home");
        fs::create_dir(&home).expect("mkdir");
        lchown(&home, Some(1000), Some(1000)).expect("chown");
        // A symlink pointing out of the tree: its own owner changes, its target is untouched.
        let outside = dir.path().join("outside");
        fs::write(&outside, "host file").expect("write");
        symlink(&outside, root.join("link")).expect("symlink");

        assert_eq!(
            shift_tree(&root).expect("shift"),
            6,
            "root, usr, bin, sudo, home, link"
        );
        let meta = fs::metadata(&sudo).expect("stat");
        assert_eq!((meta.uid(), meta.gid()), (HOST_ID_BASE, HOST_ID_BASE));
        assert_eq!(meta.mode() & 0o7777, 0o4755, "setuid kept");
        assert_eq!(
            fs::metadata(&home).expect("stat").uid(),
            HOST_ID_BASE + 1000
        );
        let link = fs::symlink_metadata(root.join("link")).expect("stat");
        assert_eq!(link.uid(), HOST_ID_BASE);
        assert_eq!(
            fs::metadata(&outside).expect("stat").uid(),
            0,
            "target untouched"
        );
        assert_eq!(shift_tree(&root).expect("again"), 0, "idempotent");

        ensure_image_shifted(dir.path(), &root).expect("marker");
        lchown(&sudo, Some(0), Some(0)).expect("chown");
        ensure_image_shifted(dir.path(), &root).expect("marked: no walk");
        assert_eq!(fs::metadata(&sudo).expect("stat").uid(), 0);
    }
}
