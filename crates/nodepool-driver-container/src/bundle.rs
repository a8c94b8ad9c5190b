//! The OCI runtime configuration (`config.json`) of a container node: pure functions.
//!
//! What a node may do is decided here, and `docs/security.md` explains each choice:
//!
//! * a user namespace mapping the container's ids to [`crate::idmap`]'s unprivileged range;
//! * its own mount, PID, IPC, UTS, cgroup and network namespaces (the network one made by
//!   the runtime inside the user namespace, so the node's `/sys` can be mounted; the driver
//!   joins it to this machine afterwards);
//! * the capability set container engines give by default (Docker's and Podman's), no more:
//!   no `CAP_SYS_ADMIN`, `CAP_NET_ADMIN`, `CAP_SYS_MODULE`, `CAP_SYS_PTRACE`, ...;
//! * `noNewPrivileges` off, because the job user's passwordless `sudo` inside is a set-user-id
//!   program (sudo's root is the container's root, which maps to nobody here);
//! * a seccomp filter refusing the system calls that reach the kernel's shared state or its
//!   least-trodden code: module loading, kexec, `bpf`, `perf_event_open`, `userfaultfd`,
//!   keyrings, clock and swap changes, the mount API, `open_by_handle_at`, new user or other
//!   namespaces, `io_uring`;
//! * the masked and read-only `/proc` and `/sys` paths of the OCI runtimes' defaults;
//! * cgroup limits from the label: CPU quota (`cores`), memory (`ram`) and processes
//!   (`pids-limit`);
//! * only the usual device nodes (`null`, `zero`, `full`, `random`, `urandom`, `tty`, the
//!   node's own pseudo-terminals).

use std::path::Path;

use serde_json::{Value, json};

use crate::idmap::{HOST_ID_BASE, ID_COUNT};

/// Processes a node may have when its label sets no `pids-limit`.
pub const DEFAULT_PIDS_LIMIT: u32 = 4096;
/// The CFS period the CPU quota is a share of (100 ms, the kernel's default).
const CPU_PERIOD_US: u64 = 100_000;

/// What a node's configuration depends on.
#[derive(Debug, Clone)]
pub struct BundlePlan<'a> {
    pub hostname: &'a str,
    /// The overlay's merged directory: the container's `/`.
    pub rootfs: &'a Path,
    /// The container's id, also the leaf of its cgroup (`/nodepool/<id>`).
    pub id: &'a str,
    pub cores: u32,
    /// MiB.
    pub ram: u64,
    pub pids_limit: u32,
}

/// Capabilities of the container's root: container engines' default set.
pub const CAPABILITIES: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// System calls refused with `EPERM` whatever their arguments.
pub const DENIED_SYSCALLS: &[&str] = &[
    // Kernel code and state shared by the whole machine.
    "init_module",
    "finit_module",
    "delete_module",
    "create_module",
    "kexec_load",
    "kexec_file_load",
    "bpf",
    "perf_event_open",
    "userfaultfd",
    "add_key",
    "request_key",
    "keyctl",
    "acct",
    "swapon",
    "swapoff",
    "reboot",
    "syslog",
    "settimeofday",
    "clock_settime",
    "clock_adjtime",
    "adjtimex",
    "stime",
    "quotactl",
    "quotactl_fd",
    "lookup_dcookie",
    "nfsservctl",
    "iopl",
    "ioperm",
    "vm86",
    "vm86old",
    "uselib",
    "ustat",
    "sysfs",
    "_sysctl",
    "bdflush",
    "vhangup",
    "fanotify_init",
    "get_kernel_syms",
    "query_module",
    // File handles bypass path checks (the classic container escape).
    "open_by_handle_at",
    "name_to_handle_at",
    // Mounts and namespaces: the node keeps the ones it was given.
    "mount",
    "umount",
    "umount2",
    "pivot_root",
    "move_mount",
    "open_tree",
    "fsopen",
    "fsconfig",
    "fsmount",
    "fspick",
    "mount_setattr",
    "unshare",
    "setns",
    // A large attack surface with a history of escapes; jobs do not need it.
    "io_uring_setup",
    "io_uring_enter",
    "io_uring_register",
];

/// `clone` flags that make new namespaces, each refused (`unshare` and `setns` are above).
const NAMESPACE_CLONE_FLAGS: &[u64] = &[
    0x0002_0000, // CLONE_NEWNS
    0x0200_0000, // CLONE_NEWCGROUP
    0x0400_0000, // CLONE_NEWUTS
    0x0800_0000, // CLONE_NEWIPC
    0x1000_0000, // CLONE_NEWUSER
    0x2000_0000, // CLONE_NEWPID
    0x4000_0000, // CLONE_NEWNET
];

/// `ENOSYS`: `clone3` passes its flags in memory where seccomp cannot see them, so it is
/// refused as "not implemented" and the C library falls back to `clone`, which is filtered.
const ENOSYS: u32 = 38;

/// The seccomp section: everything allowed but what [`DENIED_SYSCALLS`] and the namespace
/// flags of `clone` name.
pub fn seccomp() -> Value {
    let mut syscalls = vec![
        json!({"names": DENIED_SYSCALLS, "action": "SCMP_ACT_ERRNO"}),
        json!({"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": ENOSYS}),
    ];
    for flag in NAMESPACE_CLONE_FLAGS {
        syscalls.push(json!({
            "names": ["clone"],
            "action": "SCMP_ACT_ERRNO",
            "args": [{"index": 0, "value": flag, "valueTwo": flag, "op": "SCMP_CMP_MASKED_EQ"}],
        }));
    }
    json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32", "SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"],
        "syscalls": syscalls,
    })
}

/// Paths of `/proc` and `/sys` hidden from the node (OCI runtimes' defaults).
pub const MASKED_PATHS: &[&str] = &[
    "/proc/acpi",
    "/proc/asound",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

/// Paths of `/proc` the node may read but not write.
pub const READONLY_PATHS: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

fn device(kind: &str, major: u32, minor: Option<u32>) -> Value {
    let mut rule = json!({"allow": true, "type": kind, "major": major, "access": "rwm"});
    if let Some(minor) = minor {
        rule["minor"] = json!(minor);
    }
    rule
}

/// The container's cgroup, under one parent for every node of every provider here.
pub fn cgroup_path(id: &str) -> String {
    format!("/nodepool/{id}")
}

/// The node's `config.json`.
pub fn config(plan: &BundlePlan<'_>) -> Value {
    let mapping = json!([{"containerID": 0, "hostID": HOST_ID_BASE, "size": ID_COUNT}]);
    let capabilities = json!(CAPABILITIES);
    let namespaces: Vec<Value> = ["pid", "network", "ipc", "uts", "mount", "user", "cgroup"]
        .iter()
        .map(|kind| json!({"type": kind}))
        .collect();
    let ram_bytes = plan.ram.saturating_mul(1024 * 1024);
    json!({
        "ociVersion": "1.0.2",
        "process": {
            "terminal": false,
            "user": {"uid": 0, "gid": 0},
            // sshd in the foreground, logging to the console, is the node's PID 1.
            "args": ["/usr/sbin/sshd", "-D", "-e"],
            "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
            "cwd": "/",
            "capabilities": {
                "bounding": capabilities,
                "effective": capabilities,
                "permitted": capabilities,
            },
            "noNewPrivileges": false,
        },
        "root": {"path": plan.rootfs, "readonly": false},
        "hostname": plan.hostname,
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc",
             "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
             "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
             "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
             "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs",
             "options": ["nosuid", "noexec", "nodev", "ro"]},
        ],
        "linux": {
            "uidMappings": mapping,
            "gidMappings": mapping,
            "namespaces": namespaces,
            "cgroupsPath": cgroup_path(plan.id),
            "resources": {
                "devices": [
                    {"allow": false, "access": "rwm"},
                    device("c", 1, Some(3)),  // null
                    device("c", 1, Some(5)),  // zero
                    device("c", 1, Some(7)),  // full
                    device("c", 1, Some(8)),  // random
                    device("c", 1, Some(9)),  // urandom
                    device("c", 5, Some(0)),  // tty
                    device("c", 5, Some(2)),  // ptmx
                    device("c", 136, None),   // the node's pseudo-terminals
                ],
                "memory": {"limit": ram_bytes},
                "cpu": {"quota": u64::from(plan.cores) * CPU_PERIOD_US, "period": CPU_PERIOD_US},
                "pids": {"limit": plan.pids_limit},
            },
            "seccomp": seccomp(),
            "maskedPaths": MASKED_PATHS,
            "readonlyPaths": READONLY_PATHS,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan() -> BundlePlan<'static> {
        BundlePlan {
            hostname: "np0000000001",
            rootfs: Path::new("/state/np0000000001/merged"),
            id: "np0000000001-ac1ff002",
            cores: 2,
            ram: 512,
            pids_limit: 300,
        }
    }

    #[test]
    fn the_node_is_root_only_in_its_own_user_namespace() {
        let config = config(&plan());
        let linux = &config["linux"];
        assert_eq!(
            linux["uidMappings"],
            json!([{"containerID": 0, "hostID": 1_000_000_000u32, "size": 65536}])
        );
        assert_eq!(linux["gidMappings"], linux["uidMappings"]);
        let namespaces: Vec<&str> = linux["namespaces"]
            .as_array()
            .expect("namespaces")
            .iter()
            .filter_map(|n| n["type"].as_str())
            .collect();
        for kind in ["user", "network", "pid", "mount", "ipc", "uts", "cgroup"] {
            assert!(namespaces.contains(&kind), "{kind}");
        }
        let caps = config["process"]["capabilities"]["bounding"]
            .as_array()
            .expect("caps");
        for forbidden in [
            "CAP_SYS_ADMIN",
            "CAP_NET_ADMIN",
            "CAP_SYS_MODULE",
            "CAP_SYS_PTRACE",
        ] {
            assert!(!caps.iter().any(|c| c == forbidden), "{forbidden}");
        }
        assert_eq!(config["process"]["noNewPrivileges"], json!(false));
        assert_eq!(config["hostname"], "np0000000001");
        assert_eq!(config["root"]["path"], "/state/np0000000001/merged");
    }

    #[test]
    fn limits_follow_the_label() {
        let config = config(&plan());
        let resources = &config["linux"]["resources"];
        assert_eq!(resources["memory"]["limit"], json!(512u64 * 1024 * 1024));
        assert_eq!(
            resources["cpu"],
            json!({"quota": 200_000, "period": 100_000})
        );
        assert_eq!(resources["pids"]["limit"], json!(300));
        assert_eq!(
            config["linux"]["cgroupsPath"],
            "/nodepool/np0000000001-ac1ff002"
        );
        assert_eq!(
            resources["devices"][0],
            json!({"allow": false, "access": "rwm"})
        );
    }

    #[test]
    fn seccomp_refuses_modules_mounts_and_new_namespaces() {
        let filter = seccomp();
        assert_eq!(filter["defaultAction"], "SCMP_ACT_ALLOW");
        let denied = filter["syscalls"][0]["names"].as_array().expect("names");
        for call in [
            "init_module",
            "finit_module",
            "mount",
            "unshare",
            "setns",
            "bpf",
            "open_by_handle_at",
        ] {
            assert!(denied.iter().any(|c| c == call), "{call}");
        }
        let clone_rules = filter["syscalls"]
            .as_array()
            .expect("rules")
            .iter()
            .filter(|r| r["names"] == json!(["clone"]))
            .count();
        assert_eq!(clone_rules, NAMESPACE_CLONE_FLAGS.len());
        let linux = &config(&plan())["linux"];
        assert!(
            linux["maskedPaths"]
                .as_array()
                .expect("masked")
                .iter()
                .any(|p| p == "/proc/kcore")
        );
        for read_only in ["/proc/sys", "/proc/sysrq-trigger"] {
            assert!(
                linux["readonlyPaths"]
                    .as_array()
                    .expect("read-only")
                    .iter()
                    .any(|p| p == read_only)
            );
        }
    }
}
