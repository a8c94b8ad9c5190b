//! A node's network namespace joined to this machine by a veth pair.

use std::net::Ipv4Addr;
use std::path::Path;

use tokio::process::Command;

use super::address::{AddressPair, VETH_PREFIX, link_address};
use crate::DriverError;
use crate::command::run;

/// Whether a named network namespace (`/run/netns/<name>`) exists.
pub fn netns_exists(namespace: &str) -> bool {
    Path::new("/run/netns").join(namespace).exists()
}

/// Whether a network device of that name exists in this machine's namespace.
pub fn link_exists(link: &str) -> bool {
    Path::new("/sys/class/net").join(link).exists()
}

/// The node addresses whose host links exist on this machine, whichever provider, state
/// directory or driver made them: an address with a link is in use even without a lease
/// here.
pub fn node_link_addresses() -> Vec<Ipv4Addr> {
    std::fs::read_dir("/sys/class/net")
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter_map(|entry| entry.file_name().to_str().and_then(link_address))
                .collect()
        })
        .unwrap_or_default()
}

/// Joins the named namespace `namespace` (which must exist) to this machine: a veth pair
/// with `link` here holding `pair.host`, and `eth0` there holding `pair.container` with a
/// default route through this machine. Whatever device named `link` exists is stale (an
/// earlier failed try) and is removed first.
pub async fn join(
    ip: &Path,
    namespace: &str,
    link: &str,
    pair: AddressPair,
) -> Result<(), DriverError> {
    remove_link(ip, link).await?;
    let command = |args: &[&str]| {
        let mut command = Command::new(ip);
        command.args(args);
        command
    };
    let cidr = |address: Ipv4Addr| format!("{address}/{VETH_PREFIX}");
    let host_address = pair.host.to_string();
    let steps: [&[&str]; 7] = [
        &[
            "link", "add", link, "type", "veth", "peer", "name", "eth0", "netns", namespace,
        ],
        &["addr", "add", &cidr(pair.host), "dev", link],
        &["link", "set", link, "up"],
        &["-n", namespace, "link", "set", "lo", "up"],
        &[
            "-n",
            namespace,
            "addr",
            "add",
            &cidr(pair.container),
            "dev",
            "eth0",
        ],
        &["-n", namespace, "link", "set", "eth0", "up"],
        &[
            "-n",
            namespace,
            "route",
            "add",
            "default",
            "via",
            &host_address,
        ],
    ];
    for args in steps {
        run(&mut command(args)).await?;
    }
    Ok(())
}

/// Removes this machine's end of a veth pair if it exists (its peer goes with it).
pub async fn remove_link(ip: &Path, link: &str) -> Result<(), DriverError> {
    if link_exists(link)
        && let Err(e) = run(Command::new(ip).args(["link", "del", link])).await
        && link_exists(link)
    {
        return Err(e);
    }
    Ok(())
}

/// Removes a named namespace and this machine's end of a veth pair, whichever exist.
pub async fn remove(ip: &Path, namespace: &str, link: &str) -> Result<(), DriverError> {
    if netns_exists(namespace) {
        run(Command::new(ip).args(["netns", "del", namespace])).await?;
    }
    // Deleting the namespace usually takes the pair with it; the link can also outlive a
    // namespace that was never made or is still held by a dying process.
    remove_link(ip, link).await
}
