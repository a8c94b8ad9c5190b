# Run inside a container node as root (through the job user's sudo) by tests/escape.rs.
# Every attempt a hostile job would make to leave its node; prints one JSON object:
# {attempt: {"escaped": bool, "detail": text}}. An attempt "escaped" when the node did what it
# must not be able to do.
import ctypes
import errno
import json
import os
import signal
import socket
import stat
import subprocess
import sys
import threading
import time

args = json.loads(sys.argv[1])
results = {}
libc = ctypes.CDLL(None, use_errno=True)


def attempt(name, action):
    try:
        detail = action()
        results[name] = {"escaped": True, "detail": str(detail)}
    except Exception as e:  # noqa: BLE001 - every failure is the expected outcome
        results[name] = {"escaped": False, "detail": f"{type(e).__name__}: {e}"}


def refused_unless_zero(rc, what):
    if rc == 0:
        return f"{what} succeeded"
    err = ctypes.get_errno()
    raise OSError(err, f"{what}: {os.strerror(err)}")


def mknod_host_disk():
    major, minor = args["host_disk"]
    os.mknod("/tmp/host-disk", 0o600 | stat.S_IFBLK, os.makedev(major, minor))
    with open("/tmp/host-disk", "rb") as disk:
        return "read " + disk.read(512)[:16].hex()


def write(path, text):
    def action():
        with open(path, "w") as f:
            f.write(text)
        return f"wrote {path}"
    return action


def mount_file_systems():
    # A tmpfs, the proc of the host's PID namespace, and a bind of / anywhere.
    for source, fstype, flags in [(b"none", b"tmpfs", 0), (b"proc", b"proc", 0), (b"/", None, 4096)]:
        rc = libc.mount(source, b"/mnt", fstype, flags, None)
        if rc == 0:
            return f"mounted {source!r} ({fstype!r})"
    raise OSError(ctypes.get_errno(), "every mount refused")


def kill_host_process():
    os.kill(args["host_pid"], signal.SIGKILL)
    return f"signalled {args['host_pid']}"


def load_kernel_module():
    image = ctypes.create_string_buffer(b"\x7fELF" + b"\0" * 60)
    rc = libc.syscall(175, image, ctypes.c_ulong(64), b"")  # init_module
    if rc == 0:
        return "init_module succeeded"
    err = ctypes.get_errno()
    if err != errno.EPERM:
        # Anything but "not permitted" means the kernel went on to read the module.
        return f"init_module reached the loader ({os.strerror(err)})"
    with open("/bin/true", "rb") as f:
        rc = libc.syscall(313, f.fileno(), b"", 0)  # finit_module
    if rc == 0 or ctypes.get_errno() != errno.EPERM:
        return f"finit_module: {os.strerror(ctypes.get_errno())}"
    raise OSError(errno.EPERM, "init_module and finit_module not permitted")


def new_user_namespace():
    rc = libc.unshare(0x10000000)  # CLONE_NEWUSER
    return refused_unless_zero(rc, "unshare(CLONE_NEWUSER)")


def read_kcore():
    with open("/proc/kcore", "rb") as f:
        data = f.read(16)
    if not data:
        raise OSError(errno.EPERM, "/proc/kcore is masked (empty)")
    return f"read {data.hex()}"


def read_masked_paths():
    shown = []
    for path in args["masked"]:
        if os.path.isdir(path):
            if os.listdir(path):
                shown.append(path)
        else:
            with open(path, "rb") as f:
                if f.read(64):
                    shown.append(path)
    if shown:
        return "readable: " + ", ".join(shown)
    raise OSError(errno.EPERM, f"{len(args['masked'])} masked paths show nothing")


def connect(address, port):
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.settimeout(3)
        s.connect((address, port))
        return s.recv(64)


def connections():
    # All at once: a dropped SYN waits out the timeout.
    reached = {}

    def one(address, port):
        try:
            connect(address, port)
            reached[f"{address}:{port}"] = True
        except Exception:  # noqa: BLE001
            pass

    threads = [threading.Thread(target=one, args=tuple(t)) for t in args["host_targets"]]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if reached:
        return "reached " + ", ".join(sorted(reached))
    raise OSError(errno.ECONNREFUSED, f"none of {len(threads)} host addresses answered")


def allocate_past_ram():
    # In a child, so the cgroup's OOM killer takes it and not this probe.
    limit = args["ram_mib"] * 2
    code = (
        "chunks = []\n"
        f"for i in range({limit} // 16):\n"
        "    chunks.append(bytearray(16 * 1024 * 1024))\n"
        "print('allocated', flush=True)\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if "allocated" in run.stdout:
        return f"allocated {limit} MiB"
    raise MemoryError(f"stopped by the memory limit (exit {run.returncode})")


def fork_past_pids_limit():
    children = []
    try:
        for _ in range(args["pids_limit"] * 2):
            pid = os.fork()
            if pid == 0:
                time.sleep(30)
                os._exit(0)
            children.append(pid)
    except OSError as e:
        count = len(children)
        if count >= args["pids_limit"]:
            return f"forked {count} before {e}"
        raise OSError(e.errno, f"fork refused after {count} children: {e.strerror}")
    finally:
        for pid in children:
            os.kill(pid, signal.SIGKILL)
        for pid in children:
            os.waitpid(pid, 0)
    return f"forked {len(children)}"


attempt("mknod_host_disk", mknod_host_disk)
attempt("core_pattern", write("/proc/sys/kernel/core_pattern", "|/tmp/escape"))
attempt("sysrq_trigger", write("/proc/sysrq-trigger", "h"))
attempt("mount", mount_file_systems)
attempt("kill_host_process", kill_host_process)
attempt("kernel_module", load_kernel_module)
attempt("user_namespace", new_user_namespace)
attempt("kcore", read_kcore)
attempt("masked_paths", read_masked_paths)
attempt("host_connections", connections)
attempt("memory_past_ram", allocate_past_ram)
attempt("fork_past_pids_limit", fork_past_pids_limit)

outside = {}
try:
    banner = connect(*args["outside"])
    outside = {"reached": True, "detail": banner.decode(errors="replace").strip()}
except Exception as e:  # noqa: BLE001
    outside = {"reached": False, "detail": f"{type(e).__name__}: {e}"}
results["outside"] = outside
with open("/proc/self/uid_map") as f:
    results["uid_map"] = " ".join(f.read().split())
print(json.dumps(results))
