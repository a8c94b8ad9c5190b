//! This machine: the tools the driver runs, root, mounts, processes and its size.
//!
//! Everything that changes the system goes through a subprocess (`runc`, `ip`, `nft`,
//! `mount`, ...): the workspace forbids `unsafe`, and these commands are what an operator
//! would type to inspect or repair a node by hand.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nodepool_driver::DriverError;
use nodepool_driver::command::{ToolFinder, require_root};

/// Absolute paths of every program the driver runs, found once per provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tools {
    pub ip: PathBuf,
    pub nft: PathBuf,
    pub runc: PathBuf,
    pub mount: PathBuf,
    pub umount: PathBuf,
    pub tar: PathBuf,
    pub ssh_keygen: PathBuf,
    pub kill: PathBuf,
}

impl Tools {
    /// Checks that this process is root and finds every tool, naming what is missing.
    pub fn find() -> Result<Tools, DriverError> {
        if !cfg!(target_os = "linux") {
            return Err(DriverError::Fatal(
                "the container driver runs only on Linux".into(),
            ));
        }
        require_root("container", "overlay mounts, network namespaces, runc")?;
        let mut finder = ToolFinder::default();
        let tools = Tools {
            ip: finder.find("ip", "iproute2"),
            nft: finder.find("nft", "nftables"),
            runc: finder.find("runc", "runc"),
            mount: finder.find("mount", "mount"),
            umount: finder.find("umount", "mount"),
            tar: finder.find("tar", "tar"),
            ssh_keygen: finder.find("ssh-keygen", "openssh-client"),
            kill: finder.find("kill", "procps"),
        };
        finder.finish("container").map(|()| tools)
    }
}

pub use nodepool_driver::command::run;

/// Decodes the octal escapes (`\040` for a space) `/proc/self/mountinfo` uses in paths.
fn unescape_mount_path(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && i + 3 < bytes.len()
            && bytes[i + 1..i + 4]
                .iter()
                .all(|b| (b'0'..=b'7').contains(b))
        {
            let value = bytes[i + 1..i + 4]
                .iter()
                .fold(0u32, |acc, b| acc * 8 + u32::from(b - b'0'));
            out.push(u8::try_from(value).unwrap_or(b'?'));
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Whether `mountinfo` (the text of `/proc/self/mountinfo`) has a mount at `path`.
pub fn mountinfo_has_mount_point(mountinfo: &str, path: &Path) -> bool {
    let wanted = path.to_string_lossy();
    mountinfo
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .any(|field| unescape_mount_path(field) == wanted)
}

/// Whether something is mounted at `path` in this process's mount namespace.
pub fn is_mount_point(path: &Path) -> Result<bool, DriverError> {
    let mountinfo = fs::read_to_string("/proc/self/mountinfo")
        .map_err(|e| DriverError::Fatal(format!("cannot read /proc/self/mountinfo: {e}")))?;
    // mountinfo shows resolved paths: a state dir reached through a symlink must still be
    // found mounted, or a delete would remove files through the live overlay.
    let resolved = fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    Ok(mountinfo_has_mount_point(&mountinfo, &resolved))
}

/// `MemTotal` of a `/proc/meminfo` text, in MiB.
pub fn parse_mem_total_mib(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    let mut fields = line.split_whitespace().skip(1);
    let amount: u64 = fields.next()?.parse().ok()?;
    match fields.next() {
        Some("kB") | None => Some(amount / 1024),
        Some(_) => None,
    }
}

/// This machine's RAM in MiB.
pub fn mem_total_mib() -> Result<u64, DriverError> {
    let meminfo = fs::read_to_string("/proc/meminfo")
        .map_err(|e| DriverError::Fatal(format!("cannot read /proc/meminfo: {e}")))?;
    parse_mem_total_mib(&meminfo)
        .ok_or_else(|| DriverError::Fatal("/proc/meminfo has no MemTotal line".into()))
}

/// Whether a `/proc/<pid>/cmdline` (NUL-separated arguments) mentions `needle` in an argument.
/// Before killing the pid in a pidfile the driver checks that it is still the container's
/// process and not an unrelated one that got the pid after a reboot.
pub fn cmdline_mentions(cmdline: &[u8], needle: &str) -> bool {
    cmdline
        .split(|b| *b == 0)
        .any(|arg| String::from_utf8_lossy(arg).contains(needle))
}

/// What `/proc` shows of a pidfile's process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProcessLook {
    /// Its command line mentions the node.
    Ours,
    /// No such process, a zombie, or another program.
    Gone,
    /// Running with an empty command line: between the two halves of an `exec` (the
    /// container's outer process execs twice, `sh` -> `ip` -> `unshare`), when the kernel
    /// has dropped the old program's arguments and not yet set the new ones. Seen in about a
    /// third of reads of a process that loops on `exec`.
    Changing,
}

/// Classifies a process from its `/proc/<pid>/cmdline` and the state letter of its `stat`
/// (`None` for files that could not be read).
pub fn look_at_process(cmdline: Option<&[u8]>, state: Option<char>, needle: &str) -> ProcessLook {
    match cmdline {
        Some(c) if cmdline_mentions(c, needle) => ProcessLook::Ours,
        Some([]) if state.is_some_and(|s| !matches!(s, 'Z' | 'X' | 'x')) => ProcessLook::Changing,
        _ => ProcessLook::Gone,
    }
}

/// How long a process may show an empty command line before it counts as not ours: an
/// `exec` takes microseconds, a kernel thread that got the pid after a reboot shows an empty
/// command line for ever.
const EXEC_GRACE: Duration = Duration::from_secs(1);
const EXEC_POLL: Duration = Duration::from_millis(1);

/// Whether process `pid` exists and its command line mentions `needle`, looking again while
/// it is in the middle of an `exec`. A zombie has an empty command line and counts as gone.
pub async fn process_alive(pid: u32, needle: &str) -> bool {
    let began = Instant::now();
    loop {
        let cmdline = fs::read(format!("/proc/{pid}/cmdline")).ok();
        let state = fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|stat| stat_state(&stat));
        match look_at_process(cmdline.as_deref(), state, needle) {
            ProcessLook::Ours => return true,
            ProcessLook::Gone => return false,
            ProcessLook::Changing if began.elapsed() >= EXEC_GRACE => {
                tracing::debug!(pid, "process kept an empty command line; not ours");
                return false;
            }
            ProcessLook::Changing => tokio::time::sleep(EXEC_POLL).await,
        }
    }
}

/// The pids of `pid`'s children (all its threads'), empty if it is gone.
pub fn children(pid: u32) -> Vec<u32> {
    let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for task in tasks.filter_map(Result::ok) {
        if let Ok(text) = fs::read_to_string(task.path().join("children")) {
            out.extend(
                text.split_whitespace()
                    .filter_map(|p| p.parse::<u32>().ok()),
            );
        }
    }
    out
}

/// The state letter of a `/proc/<pid>/stat` text (`R`, `S`, `Z`, ...): the field after the
/// command name, which is in parentheses and may itself hold spaces and parentheses.
pub fn stat_state(stat: &str) -> Option<char> {
    let (_, rest) = stat.rsplit_once(')')?;
    rest.split_whitespace().next()?.chars().next()
}

/// Whether process `pid` exists and is not a zombie (a killed process whose parent has not
/// reaped it yet is as good as gone).
pub fn pid_running(pid: u32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| stat_state(&stat))
        .is_some_and(|state| !matches!(state, 'Z' | 'X' | 'x'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_mount_points_are_matched_exactly_and_unescaped() {
        let mountinfo = "22 27 0:21 / /proc rw,relatime - proc proc rw\n\
            101 27 0:50 / /var/lib/np/nodes/np1/merged rw,relatime - overlay overlay rw,lowerdir=/x\n\
            102 27 0:51 / /tmp/with\\040space rw - tmpfs tmpfs rw\n";
        assert!(mountinfo_has_mount_point(
            mountinfo,
            Path::new("/var/lib/np/nodes/np1/merged")
        ));
        assert!(!mountinfo_has_mount_point(
            mountinfo,
            Path::new("/var/lib/np/nodes/np1")
        ));
        assert!(mountinfo_has_mount_point(
            mountinfo,
            Path::new("/tmp/with space")
        ));
    }

    #[test]
    fn mem_total_is_read_in_mib() {
        let meminfo = "MemTotal:       16314884 kB\nMemFree:         1000 kB\n";
        assert_eq!(parse_mem_total_mib(meminfo), Some(15932));
        assert_eq!(parse_mem_total_mib("MemFree: 1 kB\n"), None);
        assert_eq!(parse_mem_total_mib("MemTotal: lots kB\n"), None);
    }

    #[test]
    fn cmdline_matches_whole_arguments_by_substring() {
        let cmdline =
            b"unshare\0--mount-proc=/state/np1/merged/proc\0/bin/sh\0/state/np1/init.sh\0";
        assert!(cmdline_mentions(cmdline, "/state/np1/init.sh"));
        assert!(!cmdline_mentions(cmdline, "/state/np2/"));
        assert!(!cmdline_mentions(b"", "/state/np1/"));
    }

    #[test]
    fn an_empty_command_line_of_a_live_process_is_an_exec_in_progress() {
        let ours = b"sh\0/state/np1/start.sh\0".as_slice();
        let look = |cmdline, state| look_at_process(cmdline, state, "/state/np1/");
        assert_eq!(look(Some(ours), Some('S')), ProcessLook::Ours);
        assert_eq!(look(Some(b"".as_slice()), Some('R')), ProcessLook::Changing);
        assert_eq!(look(Some(b"".as_slice()), Some('Z')), ProcessLook::Gone);
        assert_eq!(look(Some(b"".as_slice()), None), ProcessLook::Gone);
        assert_eq!(
            look(Some(b"vim\0".as_slice()), Some('S')),
            ProcessLook::Gone
        );
        assert_eq!(look(None, None), ProcessLook::Gone);
    }

    /// A process that execs itself in a loop shows an empty command line often (a third of
    /// reads on this machine); it must never look gone.
    #[tokio::test]
    async fn a_process_that_keeps_execing_stays_alive() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let script = dir.path().join("loop.sh");
        fs::write(&script, format!("exec /bin/sh {}\n", script.display())).expect("script");
        let mut child = std::process::Command::new("/bin/sh")
            .arg(&script)
            .spawn()
            .expect("sh starts");
        let marker = format!("{}/", dir.path().display());
        let mut alive = 0;
        for _ in 0..2000 {
            alive += usize::from(process_alive(child.id(), &marker).await);
        }
        child.kill().expect("kill");
        child.wait().expect("wait");
        assert_eq!(alive, 2000);
        assert!(!process_alive(child.id(), &marker).await);
    }

    #[test]
    fn stat_state_skips_odd_command_names() {
        assert_eq!(stat_state("42 (sshd) S 1 42 42 0"), Some('S'));
        assert_eq!(stat_state("42 (a) b) Z 1 42"), Some('Z'));
        assert_eq!(stat_state("garbage"), None);
        assert!(pid_running(std::process::id()));
    }
}
