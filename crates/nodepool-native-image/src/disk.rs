//! A bootable raw disk without loop devices: the partition table and GRUB's boot code are
//! written into the file directly, the file system by `mke2fs -d` at the partition's offset.
//!
//! Layout (what `grub-install` makes on a BIOS/MBR disk): sector 0 holds GRUB's `boot.img`
//! code and the partition table; GRUB's core image follows from sector 1 in the gap before
//! the first partition, which starts at 1 MiB. `boot.img` loads sector 1 by default and the
//! core image's first sector loads the rest from sector 2 on, so nothing needs patching.

use std::io::{Seek as _, SeekFrom, Write as _};
use std::path::Path;

use anyhow::{Context as _, bail};

use crate::rootfs::{GRUB_MODULES, ROOT_LABEL};
use crate::{BuildLog, NativeSpec, with_suffix};

pub const SECTOR: u64 = 512;
/// The first partition starts at 1 MiB, leaving room for GRUB's core image.
pub const PARTITION_START: u64 = 2048;
/// GRUB modules built into the core image: enough to read `/boot/grub` on the ext4 root
/// partition of an MBR disk through the BIOS, then everything else loads from there.
pub const CORE_MODULES: &[&str] = &[
    "biosdisk",
    "part_msdos",
    "ext2",
    "search",
    "search_label",
    "normal",
    "linux",
];

/// Built into the core image: find the root file system by its label, so the disk boots
/// whatever BIOS drive number it gets (a VM with a second disk, a cloud's extra volumes).
pub const EARLY_CONFIG: &str =
    "search --no-floppy --label --set=root cloudimg-rootfs\nset prefix=($root)/boot/grub\n";

/// Sector 0: `boot.img`'s code (its first 440 bytes; the rest of the sector is the disk
/// signature and the partition table) and one bootable Linux partition from
/// [`PARTITION_START`] to the end of the disk, addressed by LBA only.
pub fn master_boot_record(boot_img: &[u8], disk_bytes: u64) -> anyhow::Result<[u8; 512]> {
    if boot_img.len() < 440 {
        bail!("GRUB's boot.img is {} bytes, expected 512", boot_img.len());
    }
    let total = disk_bytes / SECTOR;
    if total <= PARTITION_START {
        bail!("a disk of {disk_bytes} bytes has no room for a partition");
    }
    let sectors = u32::try_from(total - PARTITION_START)
        .context("the disk is too large for an MBR partition table (2 TiB)")?;
    let mut mbr = [0u8; 512];
    mbr[..440].copy_from_slice(&boot_img[..440]);
    let entry = &mut mbr[446..462];
    entry[0] = 0x80; // bootable
    entry[1..4].copy_from_slice(&[0xfe, 0xff, 0xff]); // CHS unused: "use LBA"
    entry[4] = 0x83; // Linux
    entry[5..8].copy_from_slice(&[0xfe, 0xff, 0xff]);
    entry[8..12].copy_from_slice(&(PARTITION_START as u32).to_le_bytes());
    entry[12..16].copy_from_slice(&sectors.to_le_bytes());
    mbr[510] = 0x55;
    mbr[511] = 0xaa;
    Ok(mbr)
}

/// Makes the raw disk at `out` from the root file system at `root`.
pub async fn make(
    spec: &NativeSpec,
    root: &Path,
    out: &Path,
    log: &BuildLog,
) -> anyhow::Result<()> {
    let bytes = spec.disk_size_gib * 1024 * 1024 * 1024;
    log.step(
        &spec.image_name,
        &format!(
            "making a {} GiB disk (GRUB, ext4 by mke2fs -d)",
            spec.disk_size_gib
        ),
    );
    let core = with_suffix(out, "core");
    let early = with_suffix(out, "grub.cfg");
    let result = async {
        std::fs::write(&early, EARLY_CONFIG)
            .with_context(|| format!("writing {}", early.display()))?;
        log.run(
            tokio::process::Command::new("grub-mkimage")
                .args(["-O", "i386-pc", "-p", "/boot/grub", "-c"])
                .arg(&early)
                .arg("-o")
                .arg(&core)
                .args(CORE_MODULES),
        )
        .await
        .context("grub-mkimage failed (install Debian's `grub-pc-bin` for native builds)")?;
        let core_img =
            std::fs::read(&core).with_context(|| format!("reading {}", core.display()))?;
        if core_img.len() as u64 > (PARTITION_START - 1) * SECTOR {
            bail!(
                "GRUB's core image is {} bytes, more than the {} before the partition",
                core_img.len(),
                (PARTITION_START - 1) * SECTOR
            );
        }
        let boot_img = std::fs::read(Path::new(GRUB_MODULES).join("boot.img"))
            .with_context(|| format!("reading {GRUB_MODULES}/boot.img"))?;
        let mbr = master_boot_record(&boot_img, bytes)?;
        let mut file =
            std::fs::File::create(out).with_context(|| format!("creating {}", out.display()))?;
        file.set_len(bytes)?;
        file.write_all(&mbr)?;
        file.seek(SeekFrom::Start(SECTOR))?;
        file.write_all(&core_img)?;
        file.sync_all()?;
        drop(file);

        let fs_kib = (bytes - PARTITION_START * SECTOR) / 1024;
        log.run(
            tokio::process::Command::new("mke2fs")
                .args(["-q", "-F", "-t", "ext4", "-L", ROOT_LABEL, "-d"])
                .arg(root)
                .arg("-E")
                .arg(format!("offset={}", PARTITION_START * SECTOR))
                .arg(out)
                .arg(format!("{fs_kib}k")),
        )
        .await
        .with_context(|| {
            format!(
                "mke2fs could not make the file system (is `disk-size` {} GiB big enough?)",
                spec.disk_size_gib
            )
        })
    }
    .await;
    let _ = std::fs::remove_file(&core);
    let _ = std::fs::remove_file(&early);
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mbr_has_boot_code_one_partition_and_the_signature() {
        let boot: Vec<u8> = (0..512u32).map(|i| (i % 251) as u8).collect();
        let mbr = master_boot_record(&boot, 2 * 1024 * 1024 * 1024).unwrap();
        assert_eq!(&mbr[..440], &boot[..440]);
        assert_eq!(&mbr[440..446], &[0; 6], "no disk signature");
        assert_eq!(mbr[446], 0x80);
        assert_eq!(mbr[450], 0x83);
        assert_eq!(u32::from_le_bytes(mbr[454..458].try_into().unwrap()), 2048);
        let sectors = u32::from_le_bytes(mbr[458..462].try_into().unwrap());
        assert_eq!(u64::from(sectors), 2 * 1024 * 1024 * 2 - 2048);
        assert_eq!(&mbr[462..510], &[0; 48], "other entries empty");
        assert_eq!(&mbr[510..], &[0x55, 0xaa]);
    }

    #[test]
    fn mbr_refuses_what_does_not_fit() {
        assert!(master_boot_record(&[0; 100], 1 << 30).is_err());
        assert!(master_boot_record(&[0; 512], 1024 * 1024).is_err());
        assert!(master_boot_record(&[0; 512], 3 << 40).is_err());
    }
}
