//! The name servers a node is given: this machine's upstream ones, never a loopback address
//! (a node cannot reach this machine, and its own loopback has no resolver).

use std::net::IpAddr;

/// This machine's resolver configuration.
pub const RESOLV_CONF: &str = "/etc/resolv.conf";
/// systemd-resolved's list of upstream servers, used when `/etc/resolv.conf` names only its
/// local stub (127.0.0.53).
pub const RESOLVED_UPSTREAM: &str = "/run/systemd/resolve/resolv.conf";

/// The `nameserver` addresses of a resolv.conf text that a node can reach: not loopback.
pub fn reachable_nameservers(resolv_conf: &str) -> Vec<IpAddr> {
    resolv_conf
        .lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            (words.next() == Some("nameserver"))
                .then(|| words.next())
                .flatten()
        })
        // A scoped IPv6 address (`fe80::1%eth0`) names a device of this machine: unusable.
        .filter_map(|address| address.parse::<IpAddr>().ok())
        .filter(|address| !address.is_loopback() && !address.is_unspecified())
        .collect()
}

/// The name servers for nodes, from `/etc/resolv.conf` or else systemd-resolved's upstream
/// list; empty (nodes get no DNS, and the caller warns) when neither names a usable one.
pub fn node_nameservers() -> Vec<IpAddr> {
    [RESOLV_CONF, RESOLVED_UPSTREAM]
        .iter()
        .filter_map(|path| std::fs::read_to_string(path).ok())
        .map(|text| reachable_nameservers(&text))
        .find(|servers| !servers.is_empty())
        .unwrap_or_default()
}

/// A resolv.conf for a node naming `servers` (at most three, as the C library reads).
pub fn resolv_conf(servers: &[IpAddr]) -> String {
    let mut text = String::from("# Written by nodepool: this machine's upstream name servers.\n");
    for server in servers.iter().take(3) {
        text.push_str(&format!("nameserver {server}\n"));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_and_scoped_servers_are_left_out() {
        let text = "# comment\nnameserver 127.0.0.53\nnameserver ::1\nnameserver 10.255.255.53\n\
                    nameserver fe80::1%eth0\nnameserver 2001:db8::53\nsearch example.org\n";
        assert_eq!(
            reachable_nameservers(text),
            vec![
                "10.255.255.53".parse::<IpAddr>().expect("ip"),
                "2001:db8::53".parse::<IpAddr>().expect("ip")
            ]
        );
        assert!(reachable_nameservers("nameserver 127.0.0.53\n").is_empty());
        let servers = reachable_nameservers(text);
        assert_eq!(
            resolv_conf(&servers),
            "# Written by nodepool: this machine's upstream name servers.\n\
             nameserver 10.255.255.53\nnameserver 2001:db8::53\n"
        );
    }
}
