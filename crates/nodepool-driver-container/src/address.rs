//! Container addresses and the names of their network devices: pure functions.
//!
//! The provider's `subnet` is cut into /30 blocks. Block `n` holds four addresses: the
//! network, `.1` on this machine's end of the node's veth pair, `.2` inside the container, and
//! the broadcast. Which blocks are taken is decided by the caller (leases on disk); this module
//! only does the arithmetic.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

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
    /// This machine's end: the container's default gateway.
    pub host: Ipv4Addr,
    /// The container's end: where its sshd listens.
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

    /// How many /30 blocks (containers) the subnet holds.
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

/// This machine's end of a node's veth pair. Named after the container address, not the
/// hostname: node ids restart at 0 in every test store and launcher installation, while an
/// address in use is unique on this machine (it must be, to be routable). Fits `IFNAMSIZ`.
pub fn host_link_name(container: Ipv4Addr) -> String {
    let name = format!("npc{:08x}", u32::from(container));
    debug_assert!(name.len() <= MAX_INTERFACE_NAME);
    name
}

/// The container's network namespace: the hostname for people reading `ip netns list`, and
/// the address so two installations' `np0000000000` do not collide.
pub fn namespace_name(hostname: &str, container: Ipv4Addr) -> String {
    format!("{hostname}-{:08x}", u32::from(container))
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
        assert_eq!(host_link_name(a), "npcac1ffa02");
        assert!(host_link_name(Ipv4Addr::new(255, 255, 255, 254)).len() <= MAX_INTERFACE_NAME);
        assert_ne!(host_link_name(a), host_link_name(b));
        assert_eq!(namespace_name("np0000000001", a), "np0000000001-ac1ffa02");
        assert_ne!(
            namespace_name("np0000000001", a),
            namespace_name("np0000000001", b)
        );
    }
}
