//! A stand-in for diskimage-builder's `disk-image-create`, for builder tests that need
//! builds but not real images (like Nodepool's own `fake-image-create`).

use std::io;
use std::path::{Path, PathBuf};

/// Writes the image files of every `-t` format (with an md5 file) and the manifest dir.
/// A `fail` file next to the script makes it fail; while a `hold` file exists it waits, so
/// a test can look at a build in progress.
pub const SCRIPT: &str = r#"#!/bin/sh
here="$(dirname "$0")"
out=""
formats=""
while [ $# -gt 0 ]; do
  case "$1" in
    -o) out="$2"; shift 2 ;;
    -t) formats="$2"; shift 2 ;;
    --qemu-img-options) shift 2 ;;
    *) shift ;;
  esac
done
echo "fake-image-create: image $DIB_IMAGE_NAME release $DIB_RELEASE into $out"
while [ -f "$here/hold" ]; do sleep 0.05; done
if [ -f "$here/fail" ]; then
  echo "failing as asked"
  exit 1
fi
for f in $(echo "$formats" | tr , ' '); do
  echo "fake $DIB_IMAGE_NAME" > "$out.$f"
  md5sum "$out.$f" | cut -c1-32 > "$out.$f.md5"
done
mkdir -p "$out.d"
"#;

/// The script's name in the directory [`install`] puts it in.
pub const NAME: &str = "fake-image-create";

/// Writes the script as `dir/fake-image-create`, executable, and returns its path (the
/// `dib-cmd` to configure).
pub fn install(dir: &Path) -> io::Result<PathBuf> {
    write_executable(&dir.join(NAME), SCRIPT)
}

/// Writes `text` to `path` with mode 0755.
pub fn write_executable(path: &Path, text: &str) -> io::Result<PathBuf> {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::write(path, text)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))?;
    Ok(path.to_path_buf())
}
