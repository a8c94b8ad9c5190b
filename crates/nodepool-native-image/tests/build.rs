//! A real native build (debootstrap, GRUB, `mke2fs -d`, qemu-img): the files are what clouds
//! and our local drivers take. Needs root, network access to the Debian mirror (the first
//! time on a machine) and Debian's debootstrap, grub-pc-bin, e2fsprogs and qemu-utils.

#![allow(clippy::unwrap_used)] // tests may unwrap: a panic is a test failure

use std::path::Path;
use std::process::Command;

use nodepool_native_image::{BuildLog, NativeSpec, with_suffix};
use nodepool_testkit::images::{native_test_image, test_spec};

fn qemu_img_info(path: &Path) -> serde_json::Value {
    let out = Command::new("qemu-img")
        .args(["info", "--output=json"])
        .arg(path)
        .output()
        .expect("qemu-img");
    assert!(
        out.status.success(),
        "qemu-img info {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("qemu-img json")
}

fn stdout(command: &mut Command) -> String {
    let out = command.output().expect("run");
    assert!(
        out.status.success(),
        "{command:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn native_build_makes_bootable_disks_in_every_format() {
    let image = native_test_image().await.expect("native build");
    let gib = 2u64 << 30;
    for (format, qemu_format) in [("qcow2", "qcow2"), ("raw", "raw"), ("vhd", "vpc")] {
        let path = image.file(format);
        let info = qemu_img_info(&path);
        assert_eq!(info["format"], qemu_format, "{}", path.display());
        assert_eq!(info["virtual-size"], gib, "{}", path.display());
        // Checksums as `disk-image-create --checksum` writes them.
        for (tool, suffix) in [("md5sum", "md5"), ("sha256sum", "sha256")] {
            let recorded =
                std::fs::read_to_string(with_suffix(&path, suffix)).expect("checksum file");
            let actual = stdout(Command::new(tool).arg(&path));
            assert_eq!(
                recorded.split_whitespace().next(),
                actual.split_whitespace().next(),
                "{tool} of {}",
                path.display()
            );
        }
    }

    // The raw disk: GRUB's boot sector and a bootable partition at 1 MiB holding an ext4
    // root file system labelled for the kernel command line, with the node set-up in it.
    let raw = image.file("raw");
    let mut mbr = [0u8; 512];
    {
        use std::io::Read as _;
        std::fs::File::open(&raw)
            .unwrap()
            .read_exact(&mut mbr)
            .unwrap();
    }
    assert_eq!(&mbr[510..], &[0x55, 0xaa]);
    assert_eq!(mbr[446], 0x80, "bootable partition");
    let fs = format!("{}?offset=1048576", raw.display());
    let label = stdout(Command::new("e2label").arg(&fs));
    assert_eq!(label.trim(), "cloudimg-rootfs");
    let fsck = Command::new("e2fsck").args(["-fn", &fs]).output().unwrap();
    assert!(
        fsck.status.success(),
        "e2fsck: {}",
        String::from_utf8_lossy(&fsck.stdout)
    );
    let cat =
        |file: &str| stdout(Command::new("debugfs").args(["-R", &format!("cat {file}"), &fs]));
    assert_eq!(cat("/etc/nodepool/image-user").trim(), "zuul");
    assert!(cat("/boot/grub/grub.cfg").contains("root=LABEL=cloudimg-rootfs"));
    assert!(cat("/etc/passwd").lines().any(|l| l.starts_with("zuul:")));
    assert!(cat("/usr/local/sbin/nodepool-firstboot").contains("ssh-keygen -A"));
    let ssh_dir = stdout(Command::new("debugfs").args(["-R", "ls /etc/ssh", &fs]));
    assert!(
        !ssh_dir.contains("ssh_host_"),
        "no host keys in the image: {ssh_dir}"
    );

    // The container driver's format: the same tree as a tar.
    let listing = stdout(Command::new("tar").arg("-tf").arg(image.file("tar")));
    for entry in [
        "./etc/nodepool/image-user",
        "./usr/sbin/sshd",
        "./usr/local/sbin/nodepool-firstboot",
    ] {
        assert!(listing.lines().any(|l| l == entry), "{entry} in the tar");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rebuilds_reuse_the_cached_root_file_system() {
    // Make sure the cache exists (shared with the other test; a lock serializes them).
    native_test_image().await.expect("native build");
    let dir = tempfile::tempdir().unwrap();
    let mut spec: NativeSpec = test_spec();
    spec.formats = vec!["qcow2".into()];
    spec.output_base = dir.path().join("test-00ff");
    let log_path = dir.path().join("build.log");
    let made = nodepool_native_image::build(&spec, &BuildLog::new(&log_path))
        .await
        .expect("rebuild");
    assert_eq!(made, vec![dir.path().join("test-00ff.qcow2")]);
    let log = std::fs::read_to_string(&log_path).unwrap();
    assert!(log.contains("using the cached root file system"), "{log}");
    assert!(!log.contains("debootstrap"), "{log}");
    // Only the requested format (and its checksums) is left: no raw, no partial files.
    let mut names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "build.log",
            "test-00ff.qcow2",
            "test-00ff.qcow2.md5",
            "test-00ff.qcow2.sha256"
        ]
    );
}

#[tokio::test]
async fn bad_specs_fail_before_any_work() {
    let dir = tempfile::tempdir().unwrap();
    let mut spec = test_spec();
    spec.cache_dir = dir.path().join("cache");
    spec.output_base = dir.path().join("x-00");
    spec.formats = vec!["vmdk".into()];
    let log = BuildLog::new(&dir.path().join("log"));
    let err = nodepool_native_image::build(&spec, &log).await.unwrap_err();
    assert!(err.to_string().contains("vmdk"), "{err}");
    assert!(!dir.path().join("cache").exists());
}
