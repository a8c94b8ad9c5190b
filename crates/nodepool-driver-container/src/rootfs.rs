//! What the driver writes into (and reads from) a node's merged root file system: SSH keys
//! for root and the image's user, the hostname, and the generated host keys.
//!
//! The image contract: the root file system has `openssh-server`, no host keys, and may name
//! its login user in `/etc/nodepool/image-user` (a user with a home directory in its
//! `/etc/passwd`).

use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use nodepool_driver::DriverError;

/// Where an image names its login user.
pub const IMAGE_USER_FILE: &str = "etc/nodepool/image-user";
/// Every key injected into the node, for tools inside the image that want them.
pub const NODEPOOL_KEYS_FILE: &str = "etc/nodepool/authorized_keys";

/// One `/etc/passwd` entry, as far as key injection needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswdEntry {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    /// Absolute, inside the container.
    pub home: String,
}

/// The entry for `user` in the text of an `/etc/passwd`; malformed lines are skipped.
pub fn find_passwd_entry(passwd: &str, user: &str) -> Option<PasswdEntry> {
    passwd.lines().find_map(|line| {
        let fields: Vec<&str> = line.split(':').collect();
        if fields.len() < 7 || fields[0] != user {
            return None;
        }
        Some(PasswdEntry {
            name: fields[0].to_string(),
            uid: fields[2].parse().ok()?,
            gid: fields[3].parse().ok()?,
            home: fields[5].to_string(),
        })
    })
}

/// The user named by an `image-user` file's text: its first non-empty line, trimmed.
pub fn parse_image_user(text: &str) -> Option<String> {
    text.lines()
        .map(str::trim)
        .find(|line| !line.is_empty() && !line.starts_with('#'))
        .map(str::to_string)
}

/// `existing` with `key` appended unless a line already holds it: injecting twice (a resumed
/// step) changes nothing, and keys the image brought stay.
pub fn with_authorized_key(existing: &str, key: &str) -> String {
    let key = key.trim();
    let mut out = String::with_capacity(existing.len() + key.len() + 2);
    for line in existing.lines() {
        out.push_str(line);
        out.push('\n');
    }
    if !existing.lines().any(|line| line.trim() == key) {
        out.push_str(key);
        out.push('\n');
    }
    out
}

/// A public key file's text as the node record stores host keys: `"<type> <base64>"`,
/// without the comment.
pub fn host_key_from_pub(text: &str) -> Option<String> {
    let mut fields = text.split_whitespace();
    let kind = fields.next()?;
    let key = fields.next()?;
    Some(format!("{kind} {key}"))
}

/// `/etc/hosts` text with a `127.0.1.1 <hostname>` line (Debian's convention for the
/// machine's own name), replacing any earlier `127.0.1.1` line.
pub fn hosts_with_hostname(existing: &str, hostname: &str) -> String {
    let mut out = String::new();
    for line in existing.lines() {
        if line.split_whitespace().next() == Some("127.0.1.1") {
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    out.push_str(&format!("127.0.1.1\t{hostname}\n"));
    out
}

/// A path inside the root: `root` joined with `inner` stripped of its leading `/`.
pub fn inside(root: &Path, inner: &str) -> PathBuf {
    root.join(inner.trim_start_matches('/'))
}

fn io_fatal(what: String) -> impl FnOnce(io::Error) -> DriverError {
    move |e| DriverError::Fatal(format!("{what}: {e}"))
}

/// Refuses a symlink where the driver is about to write: the image is ours, but an absolute
/// link would make the write land on this machine rather than in the container.
fn refuse_symlink(path: &Path) -> Result<(), DriverError> {
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_symlink() => Err(DriverError::Fatal(format!(
            "{} is a symbolic link; refusing to write through it",
            path.display()
        ))),
        _ => Ok(()),
    }
}

/// Writes `key` into `<home>/.ssh/authorized_keys` (directory 700, file 600) owned by
/// `uid:gid`, keeping keys already there.
fn authorize_key_in(home: &Path, uid: u32, gid: u32, key: &str) -> Result<(), DriverError> {
    refuse_symlink(home)?;
    let ssh_dir = home.join(".ssh");
    refuse_symlink(&ssh_dir)?;
    fs::create_dir_all(&ssh_dir).map_err(io_fatal(format!("create {}", ssh_dir.display())))?;
    fs::set_permissions(&ssh_dir, fs::Permissions::from_mode(0o700))
        .map_err(io_fatal(format!("chmod {}", ssh_dir.display())))?;
    std::os::unix::fs::chown(&ssh_dir, Some(uid), Some(gid))
        .map_err(io_fatal(format!("chown {}", ssh_dir.display())))?;
    let file = ssh_dir.join("authorized_keys");
    refuse_symlink(&file)?;
    let existing = match fs::read_to_string(&file) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(io_fatal(format!("read {}", file.display()))(e)),
    };
    fs::write(&file, with_authorized_key(&existing, key))
        .map_err(io_fatal(format!("write {}", file.display())))?;
    fs::set_permissions(&file, fs::Permissions::from_mode(0o600))
        .map_err(io_fatal(format!("chmod {}", file.display())))?;
    std::os::unix::fs::chown(&file, Some(uid), Some(gid))
        .map_err(io_fatal(format!("chown {}", file.display())))
}

/// The image's login user, if it names one, with its passwd entry.
pub fn image_user(root: &Path) -> Result<Option<PasswdEntry>, DriverError> {
    let user_file = inside(root, IMAGE_USER_FILE);
    let user = match fs::read_to_string(&user_file) {
        Ok(text) => parse_image_user(&text),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => return Err(io_fatal(format!("read {}", user_file.display()))(e)),
    };
    let Some(user) = user else { return Ok(None) };
    let passwd_path = inside(root, "etc/passwd");
    let passwd = fs::read_to_string(&passwd_path)
        .map_err(io_fatal(format!("read {}", passwd_path.display())))?;
    find_passwd_entry(&passwd, &user).map(Some).ok_or_else(|| {
        DriverError::Fatal(format!(
            "{} names user {user}, who is not in {}",
            user_file.display(),
            passwd_path.display()
        ))
    })
}

/// Injects `public_key` for root, for the image's user (if any) and into
/// `/etc/nodepool/authorized_keys`. Returns the image user's name.
pub fn inject_keys(root: &Path, public_key: &str) -> Result<Option<String>, DriverError> {
    authorize_key_in(&inside(root, "root"), 0, 0, public_key)?;
    let user = image_user(root)?;
    if let Some(entry) = &user {
        authorize_key_in(&inside(root, &entry.home), entry.uid, entry.gid, public_key)?;
    }
    let keys_file = inside(root, NODEPOOL_KEYS_FILE);
    refuse_symlink(&keys_file)?;
    if let Some(dir) = keys_file.parent() {
        fs::create_dir_all(dir).map_err(io_fatal(format!("create {}", dir.display())))?;
    }
    fs::write(&keys_file, format!("{}\n", public_key.trim()))
        .map_err(io_fatal(format!("write {}", keys_file.display())))?;
    Ok(user.map(|entry| entry.name))
}

/// Writes `/etc/hostname` and the `/etc/hosts` line for `hostname`.
pub fn set_hostname(root: &Path, hostname: &str) -> Result<(), DriverError> {
    let hostname_file = inside(root, "etc/hostname");
    refuse_symlink(&hostname_file)?;
    fs::write(&hostname_file, format!("{hostname}\n"))
        .map_err(io_fatal(format!("write {}", hostname_file.display())))?;
    let hosts_file = inside(root, "etc/hosts");
    refuse_symlink(&hosts_file)?;
    let existing = match fs::read_to_string(&hosts_file) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => "127.0.0.1\tlocalhost\n".to_string(),
        Err(e) => return Err(io_fatal(format!("read {}", hosts_file.display()))(e)),
    };
    fs::write(&hosts_file, hosts_with_hostname(&existing, hostname))
        .map_err(io_fatal(format!("write {}", hosts_file.display())))
}

/// Writes the node's `/etc/resolv.conf`. An image's may be a symlink (to a resolver's stub
/// file); the link itself is replaced, never followed, since it would resolve against this
/// machine's root while the driver writes.
pub fn set_resolv_conf(root: &Path, text: &str) -> Result<(), DriverError> {
    let path = inside(root, "etc/resolv.conf");
    if fs::symlink_metadata(&path).is_ok_and(|m| m.file_type().is_symlink()) {
        fs::remove_file(&path).map_err(io_fatal(format!("remove {}", path.display())))?;
    }
    fs::write(&path, text).map_err(io_fatal(format!("write {}", path.display())))
}

/// The public host keys under the root's `/etc/ssh`, sorted by file name.
pub fn host_keys(root: &Path) -> Result<Vec<String>, DriverError> {
    let ssh_dir = inside(root, "etc/ssh");
    let entries =
        fs::read_dir(&ssh_dir).map_err(io_fatal(format!("list {}", ssh_dir.display())))?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| {
            path.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("ssh_host_") && n.ends_with("_key.pub"))
        })
        .collect();
    files.sort();
    let mut keys = Vec::new();
    for file in files {
        let text =
            fs::read_to_string(&file).map_err(io_fatal(format!("read {}", file.display())))?;
        if let Some(key) = host_key_from_pub(&text) {
            keys.push(key);
        }
    }
    if keys.is_empty() {
        return Err(DriverError::Fatal(format!(
            "no host keys in {}",
            ssh_dir.display()
        )));
    }
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/bash\n\
        broken line\n\
        daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n\
        zuul:x:1000:1001::/home/zuul:/bin/sh\n";

    #[test]
    fn passwd_entries_are_found_by_name() {
        assert_eq!(
            find_passwd_entry(PASSWD, "zuul"),
            Some(PasswdEntry {
                name: "zuul".into(),
                uid: 1000,
                gid: 1001,
                home: "/home/zuul".into(),
            })
        );
        assert_eq!(find_passwd_entry(PASSWD, "root").map(|e| e.uid), Some(0));
        assert_eq!(find_passwd_entry(PASSWD, "zu"), None);
        assert_eq!(
            find_passwd_entry("zuul:x:notanumber:1::/h:/s", "zuul"),
            None
        );
    }

    #[test]
    fn image_user_is_the_first_meaningful_line() {
        assert_eq!(parse_image_user("zuul\n"), Some("zuul".into()));
        assert_eq!(
            parse_image_user("# who logs in\n\n  ubuntu \n"),
            Some("ubuntu".into())
        );
        assert_eq!(parse_image_user("\n \n"), None);
    }

    #[test]
    fn keys_are_added_once() {
        let key = "ssh-ed25519 AAAA nodepool";
        let once = with_authorized_key("", key);
        assert_eq!(once, "ssh-ed25519 AAAA nodepool\n");
        assert_eq!(with_authorized_key(&once, key), once);
        let kept = with_authorized_key("ssh-rsa BBBB image", key);
        assert_eq!(kept, "ssh-rsa BBBB image\nssh-ed25519 AAAA nodepool\n");
    }

    #[test]
    fn host_keys_drop_the_comment() {
        assert_eq!(
            host_key_from_pub("ssh-ed25519 AAAAC3Nza root@builder\n"),
            Some("ssh-ed25519 AAAAC3Nza".into())
        );
        assert_eq!(host_key_from_pub("garbage"), None);
    }

    #[test]
    fn hosts_file_gets_one_line_for_the_hostname() {
        let hosts = "127.0.0.1\tlocalhost\n127.0.1.1\tbuilder\n::1\tlocalhost\n";
        let updated = hosts_with_hostname(hosts, "np0000000001");
        assert_eq!(
            updated,
            "127.0.0.1\tlocalhost\n::1\tlocalhost\n127.0.1.1\tnp0000000001\n"
        );
        assert_eq!(hosts_with_hostname(&updated, "np0000000001"), updated);
    }

    #[test]
    fn injection_writes_root_user_and_nodepool_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        fs::create_dir_all(root.join("etc/nodepool")).expect("mkdir");
        fs::create_dir_all(root.join("home/zuul")).expect("mkdir");
        fs::write(root.join("etc/passwd"), PASSWD).expect("passwd");
        fs::write(root.join(IMAGE_USER_FILE), "zuul\n").expect("image-user");
        let key = "ssh-ed25519 AAAA test";
        let user = inject_keys(root, key).expect("inject");
        assert_eq!(user.as_deref(), Some("zuul"));
        inject_keys(root, key).expect("injecting again is harmless");
        for file in [
            "root/.ssh/authorized_keys",
            "home/zuul/.ssh/authorized_keys",
        ] {
            let path = root.join(file);
            assert_eq!(fs::read_to_string(&path).expect("read"), format!("{key}\n"));
            let mode = fs::metadata(&path).expect("meta").permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "{file}");
        }
        use std::os::unix::fs::MetadataExt;
        let dir_meta = fs::metadata(root.join("home/zuul/.ssh")).expect("meta");
        assert_eq!((dir_meta.uid(), dir_meta.gid()), (1000, 1001));
        assert_eq!(dir_meta.permissions().mode() & 0o777, 0o700);
        assert_eq!(
            fs::read_to_string(root.join(NODEPOOL_KEYS_FILE)).expect("read"),
            format!("{key}\n")
        );
    }

    #[test]
    fn an_image_user_missing_from_passwd_is_an_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        fs::create_dir_all(root.join("etc/nodepool")).expect("mkdir");
        fs::write(root.join("etc/passwd"), PASSWD).expect("passwd");
        fs::write(root.join(IMAGE_USER_FILE), "ubuntu\n").expect("image-user");
        let error = inject_keys(root, "ssh-ed25519 AAAA").expect_err("unknown user");
        assert!(error.to_string().contains("ubuntu"), "{error}");
    }

    #[test]
    fn without_an_image_user_only_root_gets_the_key() {
        let dir = tempfile::tempdir().expect("tempdir");
        let user = inject_keys(dir.path(), "ssh-ed25519 AAAA").expect("inject");
        assert_eq!(user, None);
        assert!(dir.path().join("root/.ssh/authorized_keys").exists());
    }
}
