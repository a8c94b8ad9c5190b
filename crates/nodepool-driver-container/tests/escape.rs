//! The escape suite (issue 16): a container node's job user, with its passwordless sudo,
//! tries every way out a hostile job would try, and each must fail while the host stays as it
//! was and the world outside the machine stays reachable.
//!
//! Real everything: the native test image, runc, the node firewall, a real ZooKeeper on this
//! machine's loopback, a listener on every address (as the webapp binds), a second node, and
//! an "outside" host in its own network namespace (an sshd from the testkit).

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr};
use std::process::Command;
use std::time::Duration;

use nodepool_testkit::{ServerOptions, SshdHost, ZooKeeperServer};
use serde_json::Value;

mod common;
use common::*;

const PROBE: &str = include_str!("escape/probe.py");
const RAM_MIB: u64 = 256;
const PIDS_LIMIT: u32 = 200;

/// Every IPv4 address of this machine's own network namespace.
fn host_addresses() -> Vec<Ipv4Addr> {
    let output = Command::new("ip")
        .args(["-4", "-o", "addr", "show"])
        .output()
        .expect("ip addr");
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            words.find(|w| *w == "inet")?;
            words.next()?.split('/').next()?.parse().ok()
        })
        .collect()
}

/// (address, port) of every IPv4 TCP socket listening in this machine's namespace, with a
/// wildcard address expanded to each of `addresses`.
fn listening(addresses: &[Ipv4Addr]) -> BTreeSet<(Ipv4Addr, u16)> {
    let table = std::fs::read_to_string("/proc/net/tcp").expect("/proc/net/tcp");
    let mut out = BTreeSet::new();
    for line in table.lines().skip(1) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.len() < 4 || fields[3] != "0A" {
            continue;
        }
        let Some((address, port)) = fields[1].split_once(':') else {
            continue;
        };
        let (Ok(address), Ok(port)) = (
            u32::from_str_radix(address, 16),
            u16::from_str_radix(port, 16),
        ) else {
            continue;
        };
        // /proc shows the address in host byte order of a little-endian word.
        let address = Ipv4Addr::from(address.swap_bytes());
        if address.is_unspecified() {
            out.extend(addresses.iter().map(|a| (*a, port)));
        } else {
            out.insert((address, port));
        }
    }
    out
}

/// The device numbers of the file system holding this machine's `/`.
fn root_device() -> (u32, u32) {
    use std::os::unix::fs::MetadataExt;
    let dev = std::fs::metadata("/").expect("stat /").dev();
    let major = ((dev >> 32) & 0xffff_f000) | ((dev >> 8) & 0xfff);
    let minor = ((dev >> 12) & 0xffff_ff00) | (dev & 0xff);
    (major as u32, minor as u32)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_with_sudo_cannot_leave_its_container() {
    let cloud = cloud_with_label(
        "172.31.247.0/24",
        &format!("cores: 1\n            ram: {RAM_MIB}\n            pids-limit: {PIDS_LIMIT}\n"),
    );
    let image = upload(&cloud).await;
    let provider = cloud.provider.as_ref();

    // What the node will aim at: ZooKeeper on loopback, a listener on every address (as the
    // webapp binds), a host process, and the outside world.
    let zookeeper = ZooKeeperServer::start(ServerOptions::default()).expect("zookeeper");
    let zookeeper_address: std::net::SocketAddr = zookeeper
        .plain_address()
        .parse()
        .expect("zookeeper address");
    let everywhere = std::net::TcpListener::bind("0.0.0.0:0").expect("listener");
    let everywhere_port = everywhere.local_addr().expect("addr").port();
    let mut sleeper = Command::new("sleep").arg("600").spawn().expect("sleep");
    let mut outside = SshdHost::start("escape-outside").expect("outside host");
    outside
        .wait_ready(Duration::from_secs(30))
        .await
        .expect("outside sshd");

    let node = create(provider, spec("0000000021", &image))
        .await
        .expect("node");
    let other = create(provider, spec("0000000022", &image))
        .await
        .expect("other node");
    let node_ip = node.interface_ip.clone().expect("node ip");
    let other_ip: Ipv4Addr = other
        .interface_ip
        .as_deref()
        .expect("other ip")
        .parse()
        .expect("ipv4");

    let addresses = host_addresses();
    let mut targets = listening(&addresses);
    let std::net::SocketAddr::V4(zookeeper_v4) = zookeeper_address else {
        panic!("zookeeper listens on IPv4 loopback");
    };
    targets.insert((*zookeeper_v4.ip(), zookeeper_v4.port()));
    for address in &addresses {
        targets.insert((*address, everywhere_port));
    }
    // The other node's sshd, and the node's own gateway (this machine's end of its veth).
    targets.insert((other_ip, 22));
    let gateway = addresses
        .iter()
        .find(|a| {
            let node: Ipv4Addr = node_ip.parse().expect("ipv4");
            u32::from(**a) ^ u32::from(node) < 4
        })
        .copied()
        .expect("the node's gateway is an address of this machine");
    targets.insert((gateway, 22));
    assert!(
        targets.iter().any(|(a, _)| a.is_loopback()),
        "loopback listeners are among the targets"
    );
    let host_targets: Vec<Value> = targets
        .iter()
        .map(|(a, p)| serde_json::json!([a.to_string(), p]))
        .collect();
    let (major, minor) = root_device();
    // The masked paths this machine's kernel has (it may lack some, such as /proc/kcore).
    let masked: Vec<&str> = nodepool_driver_container::bundle::MASKED_PATHS
        .iter()
        .copied()
        .filter(|path| std::path::Path::new(path).exists())
        .collect();
    assert!(!masked.is_empty(), "some masked path exists here");
    let arguments = serde_json::json!({
        "host_disk": [major, minor],
        "host_pid": sleeper.id(),
        "host_targets": host_targets,
        "outside": [outside.address().to_string(), 22],
        "masked": masked,
        "ram_mib": RAM_MIB,
        "pids_limit": PIDS_LIMIT,
    });
    let core_pattern_before =
        std::fs::read_to_string("/proc/sys/kernel/core_pattern").expect("core_pattern");

    let command = format!(
        "cat > /tmp/probe.py && sudo python3 /tmp/probe.py '{}'",
        arguments.to_string().replace('\'', "")
    );
    let output = ssh_with_input(&cloud, &node, TEST_IMAGE_USER, &command, PROBE);
    let results: Value = serde_json::from_str(&output).expect("probe answers JSON");
    eprintln!("{}", serde_json::to_string_pretty(&results).expect("json"));

    for attempt in [
        "mknod_host_disk",
        "core_pattern",
        "sysrq_trigger",
        "mount",
        "kill_host_process",
        "kernel_module",
        "user_namespace",
        "kcore",
        "masked_paths",
        "host_connections",
        "memory_past_ram",
        "fork_past_pids_limit",
    ] {
        let result = &results[attempt];
        assert_eq!(
            result["escaped"],
            Value::Bool(false),
            "{attempt} escaped: {}",
            result["detail"]
        );
    }
    assert_eq!(
        results["outside"]["reached"],
        Value::Bool(true),
        "the outside world is reachable: {}",
        results["outside"]["detail"]
    );
    assert!(
        results["outside"]["detail"]
            .as_str()
            .is_some_and(|banner| banner.starts_with("SSH-2.0-")),
        "{}",
        results["outside"]
    );
    assert_eq!(
        results["uid_map"].as_str(),
        Some("0 1000000000 65536"),
        "root in the node is an unprivileged user here"
    );

    // The host is unchanged.
    assert_eq!(
        std::fs::read_to_string("/proc/sys/kernel/core_pattern").expect("core_pattern"),
        core_pattern_before
    );
    assert!(
        sleeper.try_wait().expect("sleeper").is_none(),
        "host process alive"
    );
    assert!(zookeeper.is_running(), "ZooKeeper still serves");

    // The node's name servers are this machine's upstream ones.
    let resolv = ssh(&cloud, &node, TEST_IMAGE_USER, "cat /etc/resolv.conf");
    let expected: Vec<IpAddr> = nodepool_driver::node_network::dns::node_nameservers();
    for server in &expected {
        assert!(resolv.contains(&format!("nameserver {server}")), "{resolv}");
    }

    sleeper.kill().expect("kill sleeper");
    let _ = sleeper.wait();
    delete(provider, "np0000000021").await.expect("delete");
    delete(provider, "np0000000022").await.expect("delete");
    provider.delete_image(&image).await.expect("delete image");
}
