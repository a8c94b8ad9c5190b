//! Files a driver keeps its state in (node records, a fake cloud's state), replaced so that a
//! crash of the process or of the machine leaves either the old content or the new one.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Temporary files of this process, numbered so concurrent writers never share one.
static TEMPORARIES: AtomicU64 = AtomicU64::new(0);

/// `<path>.<pid>.<n>.tmp`, beside the file so the rename stays on one file system.
fn temporary_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(
        ".{}.{}.tmp",
        std::process::id(),
        TEMPORARIES.fetch_add(1, Ordering::Relaxed)
    ));
    PathBuf::from(name)
}

/// Replaces `path` with `bytes`: writes a temporary file beside it and syncs it, renames it
/// over `path`, then syncs the directory so the rename itself survives a power cut. A
/// failure removes the temporary file and leaves `path` as it was.
pub fn replace_file(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let temporary = temporary_path(path);
    let written = (|| {
        let mut file = File::create(&temporary)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&temporary, path)
    })();
    if let Err(e) = written {
        let _ = fs::remove_file(&temporary);
        return Err(e);
    }
    let directory = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    File::open(directory)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_is_replaced_whole_and_no_temporary_is_left() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("state.json");
        replace_file(&path, b"one").expect("first");
        replace_file(&path, b"two").expect("second");
        assert_eq!(fs::read(&path).expect("read"), b"two");
        let names: Vec<_> = fs::read_dir(dir.path())
            .expect("list")
            .filter_map(Result::ok)
            .map(|e| e.file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("state.json")]);
        // A directory in the way: an error, and the temporary is gone too.
        let blocked = dir.path().join("blocked");
        fs::create_dir_all(blocked.join("inside")).expect("mkdir");
        assert!(replace_file(&blocked, b"x").is_err());
        assert_eq!(fs::read_dir(dir.path()).expect("list").count(), 2);
    }
}
