//! The host firewall that keeps nodes away from this machine (issue 16, DESIGN.md 8a).
//!
//! Every local node (container or VM) reaches the world through its own veth pair, whose
//! host end is named `npc*` (containers) or `npq*` (VMs). Two nftables tables do the rest:
//!
//! * `inet nodepool_nodes` (shared by every provider, identical wherever it is made): a packet
//!   that arrives on a node link and is addressed to this machine (any of its addresses,
//!   IPv4 or IPv6: the input hook sees them all) is dropped unless it answers a connection
//!   this machine opened (the launcher's SSH); packets from one node link to another are
//!   dropped in forwarding. Loopback addresses are never routed from a device (the kernel
//!   drops them as martians), so ZooKeeper, the webapp and anything else on this machine
//!   are out of reach whatever address they listen on.
//! * `ip nodepool_nat_<subnet>` (one per node subnet): what leaves for the world is
//!   masqueraded behind this machine's address, so nodes have outbound NAT.
//!
//! Applying is one `nft -f` transaction that replaces the tables whole, so it is idempotent
//! and concurrent creates cannot leave half a ruleset. It runs on every node's network step:
//! a ruleset flushed by someone else is back before the next node starts.

use std::path::Path;

use tokio::process::Command;

use super::address::{LINK_PREFIXES, Subnet};
use crate::DriverError;
use crate::command::run_with_input;

/// The shared filter table.
pub const FILTER_TABLE: &str = "nodepool_nodes";

/// The NAT table of one subnet: `nodepool_nat_ac1ff000_20` for `172.31.240.0/20`.
pub fn nat_table(subnet: &Subnet) -> String {
    let (network, prefix) = subnet.parts();
    format!("nodepool_nat_{:08x}_{prefix}", u32::from(network))
}

/// The `nft -f` script that (re)makes both tables for `subnet`.
pub fn ruleset(subnet: &Subnet) -> String {
    let mut input = String::new();
    let mut forward = String::new();
    let mut not_a_node = String::new();
    for from in LINK_PREFIXES {
        input.push_str(&format!(
            "    iifname \"{from}*\" ct state established,related accept\n\
             \x20   iifname \"{from}*\" counter drop\n"
        ));
        for to in LINK_PREFIXES {
            forward.push_str(&format!(
                "    iifname \"{from}*\" oifname \"{to}*\" counter drop\n"
            ));
        }
        not_a_node.push_str(&format!("oifname != \"{from}*\" "));
    }
    let nat = nat_table(subnet);
    format!(
        "table inet {FILTER_TABLE} {{}}\n\
         delete table inet {FILTER_TABLE}\n\
         table inet {FILTER_TABLE} {{\n\
         \x20 chain input {{\n\
         \x20   type filter hook input priority filter - 10; policy accept;\n\
         {input}\
         \x20 }}\n\
         \x20 chain forward {{\n\
         \x20   type filter hook forward priority filter - 10; policy accept;\n\
         {forward}\
         \x20 }}\n\
         }}\n\
         table ip {nat} {{}}\n\
         delete table ip {nat}\n\
         table ip {nat} {{\n\
         \x20 chain postrouting {{\n\
         \x20   type nat hook postrouting priority srcnat; policy accept;\n\
         \x20   ip saddr {subnet} {not_a_node}masquerade\n\
         \x20 }}\n\
         }}\n"
    )
}

const IP_FORWARD: &str = "/proc/sys/net/ipv4/ip_forward";

/// Applies [`ruleset`] for `subnet` and turns on IPv4 forwarding (which nodes' outbound
/// traffic needs; logged when this changes it).
pub async fn ensure(nft: &Path, subnet: &Subnet) -> Result<(), DriverError> {
    run_with_input(
        Command::new(nft).arg("-f").arg("-"),
        Some(ruleset(subnet).as_bytes()),
    )
    .await
    .map_err(|e| DriverError::Fatal(format!("cannot install the node firewall: {e}")))?;
    let forwarding = std::fs::read_to_string(IP_FORWARD)
        .map_err(|e| DriverError::Fatal(format!("cannot read {IP_FORWARD}: {e}")))?;
    if forwarding.trim() != "1" {
        std::fs::write(IP_FORWARD, "1")
            .map_err(|e| DriverError::Fatal(format!("cannot write {IP_FORWARD}: {e}")))?;
        tracing::info!("turned on IPv4 forwarding for local nodes' outbound traffic");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ruleset_guards_every_node_link_kind_and_masquerades_the_subnet() {
        let subnet = Subnet::parse("172.31.240.0/20").expect("subnet");
        assert_eq!(nat_table(&subnet), "nodepool_nat_ac1ff000_20");
        let rules = ruleset(&subnet);
        for prefix in ["npc", "npq"] {
            assert!(rules.contains(&format!(
                "iifname \"{prefix}*\" ct state established,related accept\n"
            )));
            assert!(rules.contains(&format!("iifname \"{prefix}*\" counter drop\n")));
        }
        assert!(rules.contains("iifname \"npc*\" oifname \"npq*\" counter drop\n"));
        assert!(rules.contains(
            "ip saddr 172.31.240.0/20 oifname != \"npc*\" oifname != \"npq*\" masquerade\n"
        ));
        // Made, deleted and made again in one transaction: idempotent.
        assert!(
            rules.starts_with("table inet nodepool_nodes {}\ndelete table inet nodepool_nodes\n")
        );
    }
}
