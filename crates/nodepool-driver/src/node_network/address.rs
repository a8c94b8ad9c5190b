//! Node addresses, their claims on disk, and the names of their network devices.
//!
//! The provider's `subnet` is cut into /30 blocks. Block `n` holds four addresses: the
//! network, `.1` on this machine's end of the node's veth pair, `.2` inside the node's network
//! namespace, and the broadcast. [`Leases`] records which blocks are taken.

use std::collections::BTreeSet;
use std::fs;
use std::io;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use crate::DriverError;

/// Addresses per block: a /30.
const BLOCK_SIZE: u32 = 4;
/// Linux's limit on interface names (`IFNAMSIZ` - 1).
const MAX_INTERFACE_NAME: usize = 15;

/// An IPv4 network in CIDR form, host bits cleared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subnet {
    network: u32,
    prefix: u8,
}

/// The two ends of one node's veth pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddressPair {
    /// This machine's end: the node's default gateway.
    pub host: Ipv4Addr,
    /// The node's end (the container itself, or the namespace a VM's network runs in):
    /// where its SSH port is reached.
    pub container: Ipv4Addr,
}

impl Subnet {
    /// Parses `a.b.c.d/n`. Host bits are ignored (cleared) so `10.0.0.1/24` means
    /// `10.0.0.0/24`; a prefix longer than 30 leaves no room for a block and is refused.
    pub fn parse(text: &str) -> Result<Subnet, String> {
        let (address, prefix) = text
            .trim()
            .split_once('/')
            .ok_or_else(|| format!("subnet {text:?} is not in CIDR form (a.b.c.d/n)"))?;
        let address: Ipv4Addr = address
            .parse()
            .map_err(|_| format!("subnet {text:?}: {address:?} is not an IPv4 address"))?;
        let prefix: u8 = prefix
            .parse()
            .map_err(|_| format!("subnet {text:?}: {prefix:?} is not a prefix length"))?;
        if prefix > 30 {
            return Err(format!(
                "subnet {text:?}: a /{prefix} has no room for a /30 per container"
            ));
        }
        let mask = if prefix == 0 {
            0
        } else {
            u32::MAX << (32 - prefix)
        };
        Ok(Subnet {
            network: u32::from(address) & mask,
            prefix,
        })
    }

    /// The network address and prefix length.
    pub fn parts(&self) -> (Ipv4Addr, u8) {
        (Ipv4Addr::from(self.network), self.prefix)
    }

    /// How many /30 blocks (nodes) the subnet holds.
    pub fn blocks(&self) -> u32 {
        // 2^(32 - prefix) / 4, written to stay within u32 for a /0.
        1u32 << (30 - u32::from(self.prefix))
    }

    /// The addresses of block `block`, if the subnet has it.
    pub fn block_addresses(&self, block: u32) -> Option<AddressPair> {
        if block >= self.blocks() {
            return None;
        }
        let base = self.network + block * BLOCK_SIZE;
        Some(AddressPair {
            host: Ipv4Addr::from(base + 1),
            container: Ipv4Addr::from(base + 2),
        })
    }

    /// The block a container address belongs to, if it is a container address of this subnet.
    pub fn block_of(&self, container: Ipv4Addr) -> Option<u32> {
        let offset = u32::from(container).checked_sub(self.network)?;
        let block = offset / BLOCK_SIZE;
        (offset % BLOCK_SIZE == 2 && block < self.blocks()).then_some(block)
    }
}

impl std::fmt::Display for Subnet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", Ipv4Addr::from(self.network), self.prefix)
    }
}

/// The lowest block of `subnet` not in `used`, or `None` when the subnet is full.
pub fn first_free_block(subnet: &Subnet, used: &BTreeSet<u32>) -> Option<u32> {
    // `used` is sorted: the first gap is the answer, found without scanning the subnet.
    let mut candidate = 0u32;
    for &block in used.range(0..) {
        if block > candidate {
            break;
        }
        if block == candidate {
            candidate = candidate.checked_add(1)?;
        }
    }
    (candidate < subnet.blocks()).then_some(candidate)
}

/// The prefix length of every veth address (one /30 per node).
pub const VETH_PREFIX: u8 = 30;

/// Which local driver a node's network belongs to: the first letters of its host link, which
/// the firewall matches (`npc*` containers, `npq*` virtual machines).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeKind {
    Container,
    Vm,
}

impl NodeKind {
    /// The prefix of every host link of this kind.
    pub fn link_prefix(self) -> &'static str {
        match self {
            NodeKind::Container => "npc",
            NodeKind::Vm => "npq",
        }
    }
}

/// Every node link prefix, for the firewall.
pub const LINK_PREFIXES: [&str; 2] = ["npc", "npq"];

/// This machine's end of a node's veth pair. Named after the node address, not the
/// hostname: node ids restart at 0 in every test store and launcher installation, while an
/// address in use is unique on this machine (it must be, to be routable). Fits `IFNAMSIZ`.
pub fn host_link_name(kind: NodeKind, container: Ipv4Addr) -> String {
    let name = format!("{}{:08x}", kind.link_prefix(), u32::from(container));
    debug_assert!(name.len() <= MAX_INTERFACE_NAME);
    name
}

/// The node address a host link of any node kind is named after (the inverse of
/// [`host_link_name`]); `None` for any other device name.
pub fn link_address(link: &str) -> Option<Ipv4Addr> {
    let hex = LINK_PREFIXES
        .iter()
        .find_map(|prefix| link.strip_prefix(prefix))?;
    (hex.len() == 8 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| u32::from_str_radix(hex, 16).ok())
        .flatten()
        .map(Ipv4Addr::from)
}

/// The node's network namespace: the hostname for people reading `ip netns list`, and
/// the address so two installations' `np0000000000` do not collide.
pub fn namespace_name(hostname: &str, container: Ipv4Addr) -> String {
    format!("{hostname}-{:08x}", u32::from(container))
}

/// Where address claims live under a state dir: a dot keeps it out of node listings.
const LEASES_DIR: &str = ".leases";

/// Address claims: `<state-dir>/.leases/<address>` files created with `create_new`, so two
/// creates (threads, or two launchers on one state dir) never get the same address.
#[derive(Debug, Clone)]
pub struct Leases {
    dir: PathBuf,
}

impl Leases {
    pub fn new(state_dir: &Path) -> Leases {
        Leases {
            dir: state_dir.join(LEASES_DIR),
        }
    }

    /// Every claimed address with the hostname holding it.
    pub fn list(&self) -> Result<Vec<(Ipv4Addr, String)>, DriverError> {
        let entries = match fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => {
                return Err(DriverError::Fatal(format!(
                    "cannot list {}: {e}",
                    self.dir.display()
                )));
            }
        };
        let mut out = Vec::new();
        for entry in entries.filter_map(Result::ok) {
            let Some(address) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<Ipv4Addr>().ok())
            else {
                continue;
            };
            let holder = fs::read_to_string(entry.path()).unwrap_or_default();
            out.push((address, holder.trim().to_string()));
        }
        Ok(out)
    }

    /// Claims `address` for `hostname`; `Ok(false)` when someone else holds it.
    pub fn claim(&self, address: Ipv4Addr, hostname: &str) -> Result<bool, DriverError> {
        fs::create_dir_all(&self.dir).map_err(|e| {
            DriverError::Fatal(format!("cannot create {}: {e}", self.dir.display()))
        })?;
        let path = self.dir.join(address.to_string());
        let file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path);
        match file {
            Ok(mut file) => {
                use std::io::Write;
                file.write_all(hostname.as_bytes()).map_err(|e| {
                    DriverError::Fatal(format!("cannot write {}: {e}", path.display()))
                })?;
                Ok(true)
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(DriverError::Fatal(format!(
                "cannot create {}: {e}",
                path.display()
            ))),
        }
    }

    /// Releases every address `hostname` holds.
    pub fn release(&self, hostname: &str) -> Result<(), DriverError> {
        for (address, holder) in self.list()? {
            if holder == hostname {
                let path = self.dir.join(address.to_string());
                match fs::remove_file(&path) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => {
                        return Err(DriverError::Fatal(format!(
                            "cannot remove {}: {e}",
                            path.display()
                        )));
                    }
                }
            }
        }
        Ok(())
    }

    /// The address `hostname` holds, or a new one claimed for it: the lowest free block of
    /// `subnet` not taken by a lease or by `also_used` (addresses of nodes whose lease was
    /// lost). `Capacity` when the subnet is full.
    pub fn claim_for(
        &self,
        subnet: &Subnet,
        hostname: &str,
        also_used: &[Ipv4Addr],
    ) -> Result<AddressPair, DriverError> {
        let held = self.list()?;
        if let Some(pair) = held
            .iter()
            .find(|(_, holder)| holder == hostname)
            .and_then(|(address, _)| subnet.block_of(*address))
            .and_then(|block| subnet.block_addresses(block))
        {
            return Ok(pair);
        }
        let mut used: BTreeSet<u32> = held
            .iter()
            .map(|(address, _)| *address)
            .chain(also_used.iter().copied())
            .filter_map(|address| subnet.block_of(address))
            .collect();
        loop {
            let block = first_free_block(subnet, &used).ok_or_else(|| {
                DriverError::Capacity(format!(
                    "subnet {subnet} has no free address for {hostname}"
                ))
            })?;
            let pair = subnet.block_addresses(block).ok_or_else(|| {
                DriverError::Fatal(format!("block {block} is outside subnet {subnet}"))
            })?;
            if self.claim(pair.container, hostname)? {
                return Ok(pair);
            }
            // Claimed by a concurrent create since the listing: try the next one.
            used.insert(block);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subnet(text: &str) -> Subnet {
        Subnet::parse(text).expect("valid subnet")
    }

    #[test]
    fn parse_clears_host_bits_and_rejects_nonsense() {
        assert_eq!(subnet("172.31.250.7/24"), subnet("172.31.250.0/24"));
        assert_eq!(subnet("10.0.0.0/8").blocks(), 1 << 22);
        assert_eq!(subnet("0.0.0.0/0").blocks(), 1 << 30);
        assert_eq!(subnet("10.0.0.0/30").blocks(), 1);
        for bad in [
            "10.0.0.0",
            "10.0.0/24",
            "10.0.0.0/33",
            "10.0.0.0/31",
            "x/8",
            "",
        ] {
            assert!(Subnet::parse(bad).is_err(), "{bad:?} must be refused");
        }
    }

    #[test]
    fn blocks_are_slash_30s_with_host_first() {
        let s = subnet("172.31.250.0/24");
        assert_eq!(s.blocks(), 64);
        let first = s.block_addresses(0).expect("block 0");
        assert_eq!(first.host, Ipv4Addr::new(172, 31, 250, 1));
        assert_eq!(first.container, Ipv4Addr::new(172, 31, 250, 2));
        let last = s.block_addresses(63).expect("block 63");
        assert_eq!(last.container, Ipv4Addr::new(172, 31, 250, 254));
        assert_eq!(s.block_addresses(64), None);
    }

    #[test]
    fn block_of_inverts_block_addresses() {
        let s = subnet("172.31.240.0/20");
        for block in [0, 1, 17, s.blocks() - 1] {
            let pair = s.block_addresses(block).expect("block");
            assert_eq!(s.block_of(pair.container), Some(block));
            assert_eq!(s.block_of(pair.host), None, "a host end is not a container");
        }
        assert_eq!(s.block_of(Ipv4Addr::new(172, 31, 239, 254)), None);
        assert_eq!(s.block_of(Ipv4Addr::new(172, 32, 0, 2)), None);
    }

    #[test]
    fn first_free_block_fills_gaps_then_extends() {
        let s = subnet("10.0.0.0/28"); // four blocks
        assert_eq!(first_free_block(&s, &BTreeSet::new()), Some(0));
        assert_eq!(first_free_block(&s, &BTreeSet::from([0, 1, 3])), Some(2));
        assert_eq!(first_free_block(&s, &BTreeSet::from([1, 2])), Some(0));
        assert_eq!(first_free_block(&s, &BTreeSet::from([0, 1, 2])), Some(3));
        assert_eq!(first_free_block(&s, &BTreeSet::from([0, 1, 2, 3])), None);
        // Blocks outside the subnet (from a changed configuration) do not matter.
        assert_eq!(first_free_block(&s, &BTreeSet::from([0, 9])), Some(1));
    }

    #[test]
    fn device_names_fit_the_kernel_limit_and_differ_by_address() {
        let a = Ipv4Addr::new(172, 31, 250, 2);
        let b = Ipv4Addr::new(172, 31, 251, 2);
        let c = NodeKind::Container;
        assert_eq!(host_link_name(c, a), "npcac1ffa02");
        assert_eq!(host_link_name(NodeKind::Vm, a), "npqac1ffa02");
        assert!(host_link_name(c, Ipv4Addr::new(255, 255, 255, 254)).len() <= MAX_INTERFACE_NAME);
        assert_ne!(host_link_name(c, a), host_link_name(c, b));
        assert_eq!(link_address(&host_link_name(c, a)), Some(a));
        assert_eq!(link_address(&host_link_name(NodeKind::Vm, b)), Some(b));
        for other in [
            "eth0",
            "npcxyz",
            "npc0000000",
            "npcac1ffa02x",
            "npxac1ffa02",
        ] {
            assert_eq!(link_address(other), None, "{other}");
        }
        assert_eq!(namespace_name("np0000000001", a), "np0000000001-ac1ffa02");
        assert_ne!(
            namespace_name("np0000000001", a),
            namespace_name("np0000000001", b)
        );
    }

    #[test]
    fn leases_are_exclusive_and_claim_for_reuses_or_takes_the_lowest_free_block() {
        let dir = tempfile::tempdir().expect("tempdir");
        let leases = Leases::new(dir.path());
        let address = Ipv4Addr::new(10, 0, 0, 2);
        assert!(leases.claim(address, "np0000000001").expect("claim"));
        assert!(!leases.claim(address, "np0000000002").expect("claim"));
        assert_eq!(
            leases.list().expect("list"),
            vec![(address, "np0000000001".to_string())]
        );
        let s = subnet("10.0.0.0/28");
        assert_eq!(
            leases.claim_for(&s, "np0000000001", &[]).expect("held"),
            s.block_addresses(0).expect("block 0")
        );
        // Block 1 is used by a node whose lease was lost: the next one is 2.
        let used = [Ipv4Addr::new(10, 0, 0, 6)];
        let second = leases.claim_for(&s, "np0000000002", &used).expect("new");
        assert_eq!(second.container, Ipv4Addr::new(10, 0, 0, 10));
        leases.claim_for(&s, "np0000000003", &used).expect("new");
        assert!(matches!(
            leases.claim_for(&s, "np0000000004", &used),
            Err(DriverError::Capacity(_))
        ));
        leases.release("np0000000002").expect("release");
        leases.release("np0000000001").expect("release");
        assert_eq!(leases.list().expect("list").len(), 1);
        assert_eq!(s.to_string(), "10.0.0.0/28");
    }
}
