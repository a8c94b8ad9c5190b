//! A real VM from the native test image: boots under KVM or TCG in a network namespace of its
//! own, answers SSH at that namespace's address with the injected key as the image's user and
//! root, carries its node name, cannot reach this machine or another node but reaches the
//! world through NAT, and is gone with its network after a delete. Needs root, iproute2,
//! nftables, qemu-system-x86 and the native build's tools (see nodepool-testkit).

#![allow(clippy::unwrap_used)] // tests may unwrap: a panic is a test failure

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nodepool_config::{Env, parse_config};
use nodepool_driver::node_network::{NodeKind, host_link_name, namespace_name};
use nodepool_driver::{CreateSpec, Driver, ImageUploadSpec, Provider};
use nodepool_driver_qemu::QemuDriver;
use nodepool_model::ExternalId;
use nodepool_testkit::images::native_test_image;

/// The provider's subnet: away from the defaults (`172.31.224.0/20` for VMs, and the
/// container driver's), so a quickstart or container tests on this machine do not collide.
const SUBNET: &str = "172.31.238.0/24";

fn provider(dir: &Path) -> std::sync::Arc<dyn Provider> {
    let text = format!(
        "labels:\n  - name: debian\ndiskimages:\n  - name: test\n    build-backend: native\nproviders:\n  - name: local\n    driver: qemu\n    image-dir: {d}/images\n    state-dir: {d}/nodes\n    subnet: {SUBNET}\n    diskimages:\n      - name: test\n    pools:\n      - name: main\n        max-servers: 2\n        labels:\n          - name: debian\n            diskimage: test\n            ram: 768\n",
        d = dir.display()
    );
    let loaded = match parse_config(Path::new("nodepool.yaml"), &text, None, &Env::new()) {
        Ok(loaded) => loaded,
        Err(errors) => panic!("{errors}"),
    };
    let config = loaded
        .config
        .providers
        .get("local")
        .expect("provider")
        .clone();
    QemuDriver::new().build(&config).expect("provider")
}

fn ssh_command(key: &Path, host: &str, user: &str, command: &str) -> Command {
    let mut ssh = Command::new("ssh");
    ssh.args([
        "-o",
        "StrictHostKeyChecking=no",
        "-o",
        "UserKnownHostsFile=/dev/null",
    ])
    .args(["-o", "BatchMode=yes", "-o", "ConnectTimeout=10", "-i"])
    .arg(key)
    .args([&format!("{user}@{host}"), command]);
    ssh
}

fn ssh(key: &Path, host: &str, user: &str, command: &str) -> std::process::Output {
    ssh_command(key, host, user, command)
        .stdin(Stdio::null())
        .output()
        .expect("ssh")
}

/// Runs `command` on the node with `input` on its standard input.
fn ssh_with_input(
    key: &Path,
    host: &str,
    user: &str,
    command: &str,
    input: &str,
) -> std::process::Output {
    let mut child = ssh_command(key, host, user, command)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("ssh");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().expect("ssh")
}

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("ip");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A TCP server that greets every client with `hello <client address>`.
const GREETER: &str = "import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(('0.0.0.0', int(sys.argv[1])))
s.listen(16)
print('ready', flush=True)
while True:
    c, a = s.accept()
    c.sendall(('hello %s\\n' % a[0]).encode())
    c.close()
";

/// The port the greeter listens on inside its namespace.
const GREETER_PORT: u16 = 7777;

/// A network namespace joined to this machine by a veth pair (`link` here, `eth0` there,
/// with a default route back through this machine as a node has), running the greeter.
/// Removed on drop.
struct TestNamespace {
    name: String,
    link: String,
    address: Ipv4Addr,
    greeter: Child,
}

impl TestNamespace {
    /// `host` and `address` are the two ends, in one /30.
    fn new(name: &str, link: &str, host: Ipv4Addr, address: Ipv4Addr) -> TestNamespace {
        let _ = Command::new("ip").args(["netns", "del", name]).output();
        let _ = Command::new("ip").args(["link", "del", link]).output();
        ip(&["netns", "add", name]);
        ip(&[
            "link", "add", link, "type", "veth", "peer", "name", "eth0", "netns", name,
        ]);
        ip(&["addr", "add", &format!("{host}/30"), "dev", link]);
        ip(&["link", "set", link, "up"]);
        ip(&["-n", name, "link", "set", "lo", "up"]);
        ip(&[
            "-n",
            name,
            "addr",
            "add",
            &format!("{address}/30"),
            "dev",
            "eth0",
        ]);
        ip(&["-n", name, "link", "set", "eth0", "up"]);
        ip(&[
            "-n",
            name,
            "route",
            "add",
            "default",
            "via",
            &host.to_string(),
        ]);
        let mut greeter = Command::new("ip")
            .args(["netns", "exec", name, "python3", "-c", GREETER])
            .arg(GREETER_PORT.to_string())
            .stdout(Stdio::piped())
            .spawn()
            .expect("greeter");
        let mut line = String::new();
        BufReader::new(greeter.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "ready", "the greeter in {name} started");
        TestNamespace {
            name: name.into(),
            link: link.into(),
            address,
            greeter,
        }
    }

    fn target(&self) -> String {
        format!("{}:{GREETER_PORT}", self.address)
    }
}

impl Drop for TestNamespace {
    fn drop(&mut self) {
        let _ = self.greeter.kill();
        let _ = self.greeter.wait();
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
        let _ = Command::new("ip")
            .args(["link", "del", &self.link])
            .output();
    }
}

/// Removes what a node left if the test fails before its delete: the VM, its namespace and
/// link (which would otherwise hold its address on this machine) and its `/etc/netns` files.
struct NodeLeftovers {
    pidfile: std::path::PathBuf,
    namespace: String,
    link: String,
}

impl Drop for NodeLeftovers {
    fn drop(&mut self) {
        if let Ok(pid) = std::fs::read_to_string(&self.pidfile) {
            let _ = Command::new("kill").args(["-KILL", pid.trim()]).output();
        }
        let _ = Command::new("ip")
            .args(["netns", "del", &self.namespace])
            .output();
        let _ = Command::new("ip")
            .args(["link", "del", &self.link])
            .output();
        let _ = std::fs::remove_dir_all(Path::new("/etc/netns").join(&self.namespace));
    }
}

/// What this machine (not a node) reads from `address:port`: the greeting.
fn greeting_from_here(target: &str) -> String {
    let mut stream = TcpStream::connect_timeout(&target.parse().unwrap(), Duration::from_secs(3))
        .unwrap_or_else(|e| panic!("{target} from this machine: {e}"));
    stream
        .set_read_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap();
    text.trim().to_string()
}

/// Every IPv4 address of this machine's network namespace but loopback ones (which a guest
/// can only try through `10.0.2.2`, checked on its own).
fn host_ipv4_addresses() -> Vec<Ipv4Addr> {
    let out = Command::new("ip")
        .args(["-4", "-o", "addr"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            words.find(|w| *w == "inet")?;
            words.next()?.split('/').next()?.parse::<Ipv4Addr>().ok()
        })
        .filter(|address| !address.is_loopback())
        .collect()
}

/// Run in the guest: tries a TCP connection to every `host:port` argument at once, and
/// prints `host:port open <first line>`, `refused`, `timeout` or `error <errno>`.
const PROBE: &str = "import socket, sys, concurrent.futures
def probe(target):
    host, port = target.rsplit(':', 1)
    try:
        s = socket.create_connection((host, int(port)), timeout=3)
    except socket.timeout:
        return target + ' timeout'
    except ConnectionRefusedError:
        return target + ' refused'
    except OSError as e:
        return '%s error %s' % (target, e.errno)
    s.settimeout(3)
    try:
        data = s.recv(200).decode(errors='replace').strip()
    except OSError:
        data = ''
    return target + ' open ' + data
with concurrent.futures.ThreadPoolExecutor(32) as pool:
    for line in pool.map(probe, sys.argv[1:]):
        print(line, flush=True)
";

/// Run in the guest: one DNS query for `argv[1]` to user-mode networking's resolver
/// (10.0.2.3, which forwards to the name servers of the namespace's resolv.conf); prints
/// `rcode <code> answers <count>`.
const DNS_QUERY: &str = "import socket, struct, sys
labels = b''.join(bytes([len(p)]) + p.encode() for p in sys.argv[1].split('.'))
query = struct.pack('>HHHHHH', 0x5151, 0x0100, 1, 0, 0, 0) + labels + b'\\0' + struct.pack('>HH', 1, 1)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(5)
for attempt in range(3):
    s.sendto(query, ('10.0.2.3', 53))
    try:
        reply = s.recv(512)
        break
    except socket.timeout:
        reply = None
if reply is None:
    print('timeout')
else:
    print('rcode %d answers %d' % (reply[3] & 15, struct.unpack('>H', reply[6:8])[0]))
";

/// A name the guest resolves, when this machine can resolve it too.
const DNS_NAME: &str = "deb.debian.org";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vm_boots_from_the_native_image_and_answers_ssh_with_the_injected_key() {
    let image = native_test_image().await.expect("native test image");
    let dir = tempfile::tempdir().unwrap();
    let provider = provider(dir.path());

    let id = provider
        .upload_image(&ImageUploadSpec {
            image_name: "test".into(),
            external_name: "test-0000000001".into(),
            path: image.file("qcow2"),
            format: "qcow2".into(),
            metadata: Default::default(),
            md5: None,
            sha256: None,
        })
        .await
        .expect("upload");
    assert!(dir.path().join("images").join(&id).is_file());

    let hostname = "np0000000042";
    let mut create = provider.create_machine(CreateSpec {
        hostname: hostname.into(),
        pool: "main".into(),
        label: "debian".into(),
        image_external_id: Some(id.clone()),
        metadata: [("nodepool_node_id".to_string(), "0000000042".to_string())].into(),
        az: None,
        request: None,
    });
    assert_eq!(create.external_id(), Some(ExternalId::Id(hostname.into())));
    // SSH is port 22 at the node's own address (the first /30 of the subnet), not a port
    // on this machine's loopback.
    let address: Ipv4Addr = "172.31.238.2".parse().unwrap();
    let namespace = namespace_name(hostname, address);
    let link = host_link_name(NodeKind::Vm, address);
    let _leftovers = NodeLeftovers {
        pidfile: dir.path().join("nodes").join(hostname).join("qemu.pid"),
        namespace: namespace.clone(),
        link: link.clone(),
    };
    let started = Instant::now();
    // Wall time spent in each create state, for docs/benchmarks.md.
    let mut steps: Vec<(String, Duration)> = Vec::new();
    let mut state = create.state().to_string();
    let mut state_since = Instant::now();
    let instance = loop {
        let done = create.advance().await.expect("create step");
        if done.is_some() || create.state() != state {
            steps.push((state, state_since.elapsed()));
            state = create.state().to_string();
            state_since = Instant::now();
        }
        if let Some(instance) = done {
            break instance;
        }
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "still {}",
            create.state()
        );
        tokio::time::sleep(create.poll_after()).await;
    };
    let steps: Vec<String> = steps
        .iter()
        .map(|(state, spent)| format!("{state} {:.2} s", spent.as_secs_f64()))
        .collect();
    eprintln!(
        "VM answered SSH after {:.1} s (time in steps: {})",
        started.elapsed().as_secs_f64(),
        steps.join(", ")
    );

    assert_eq!(instance.interface_ip.as_deref(), Some("172.31.238.2"));
    assert_eq!(instance.private_ipv4.as_deref(), Some("172.31.238.2"));
    assert_eq!(instance.connection_port, Some(22));
    let host = address.to_string();
    assert!(Path::new("/run/netns").join(&namespace).exists());
    assert!(Path::new("/sys/class/net").join(&link).exists());
    let resolv = std::fs::read_to_string(format!("/etc/netns/{namespace}/resolv.conf"))
        .expect("the namespace's resolv.conf");
    for server in nodepool_driver::node_network::dns::node_nameservers() {
        assert!(
            resolv.contains(&format!("nameserver {server}\n")),
            "{resolv}"
        );
    }

    // The provider's key (made on first use) logs in as the image's user and as root.
    let key = dir.path().join("nodes/id_ed25519");
    let out = ssh(&key, &host, &image.username, "hostname; sudo -n id -u");
    assert!(
        out.status.success(),
        "ssh: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("{hostname}\n0\n")
    );
    let out = ssh(&key, &host, "root", "cat /etc/ssh/ssh_host_ed25519_key.pub");
    assert!(
        out.status.success(),
        "ssh root: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let host_key = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .nth(1)
        .unwrap_or_default()
        .to_string();
    // What a scan of the node's address sees is the node's own host key.
    let scan = Command::new("ssh-keyscan")
        .args(["-t", "ed25519", &host])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&scan.stdout).contains(&host_key),
        "scan shows the node's key"
    );

    // Escape attempts, run by job code with root in the guest. Listening on this machine:
    // a port on its loopback (where user-mode networking's 10.0.2.2 used to lead), a port
    // on all its addresses, "another node" (a namespace joined by an `npq` link like a VM's,
    // with a server), and "the world" (a namespace on a plain veth with a server).
    let loopback = TcpListener::bind("127.0.0.1:0").unwrap();
    let everywhere = TcpListener::bind("0.0.0.0:0").unwrap();
    let loopback_port = loopback.local_addr().unwrap().port();
    let everywhere_port = everywhere.local_addr().unwrap().port();
    let pid = std::process::id();
    let other_node_address = Ipv4Addr::new(172, 31, 238, 254);
    let other_node = TestNamespace::new(
        &format!("xn-{pid}"),
        &host_link_name(NodeKind::Vm, other_node_address),
        Ipv4Addr::new(172, 31, 238, 253),
        other_node_address,
    );
    let octet = (pid % 250) as u8;
    let world = TestNamespace::new(
        &format!("xo-{pid}"),
        &format!("xo{pid}"),
        Ipv4Addr::new(198, 18, octet, 1),
        Ipv4Addr::new(198, 18, octet, 2),
    );
    // All of them answer this machine, so a failure from the guest is the node's network.
    for target in [
        format!("127.0.0.1:{loopback_port}"),
        format!("127.0.0.1:{everywhere_port}"),
    ] {
        TcpStream::connect_timeout(&target.parse().unwrap(), Duration::from_secs(3))
            .unwrap_or_else(|e| panic!("{target} from this machine: {e}"));
    }
    assert!(greeting_from_here(&other_node.target()).starts_with("hello "));
    assert!(greeting_from_here(&world.target()).starts_with("hello "));

    let host_addresses = host_ipv4_addresses();
    assert!(
        host_addresses.contains(&Ipv4Addr::new(172, 31, 238, 1)),
        "the host end of the node's veth is one of this machine's addresses: {host_addresses:?}"
    );
    let mut blocked = vec![
        format!("10.0.2.2:{loopback_port}"),
        format!("10.0.2.2:{everywhere_port}"),
        "10.0.2.2:22".to_string(),
        other_node.target(),
    ];
    for address in &host_addresses {
        blocked.push(format!("{address}:{everywhere_port}"));
        blocked.push(format!("{address}:22"));
    }
    let mut targets = blocked.clone();
    targets.push(world.target());
    let probe_started = Instant::now();
    let out = ssh_with_input(
        &key,
        &host,
        &image.username,
        &format!("sudo -n python3 - {}", targets.join(" ")),
        PROBE,
    );
    let report = String::from_utf8_lossy(&out.stdout).into_owned();
    eprintln!(
        "escape probes from the guest ({:.1} s):\n{report}",
        probe_started.elapsed().as_secs_f64()
    );
    assert!(
        out.status.success(),
        "probe: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let outcome = |target: &str| -> String {
        report
            .lines()
            .find_map(|line| line.strip_prefix(&format!("{target} ")))
            .unwrap_or_else(|| panic!("no result for {target} in:\n{report}"))
            .to_string()
    };
    for target in &blocked {
        let result = outcome(target);
        assert!(
            result == "refused" || result == "timeout",
            "the guest reached {target}: {result}"
        );
    }
    // The world answers, and sees this machine's address on its link: NAT.
    assert_eq!(
        outcome(&world.target()),
        format!("open hello {}", Ipv4Addr::new(198, 18, octet, 1)),
        "the guest reaches the world through NAT"
    );
    drop((loopback, everywhere, other_node, world));

    // DNS: the guest's resolver address answers from this machine's upstream servers (only
    // checked where this machine can resolve the name itself).
    let resolvable_here = Command::new("getent")
        .args(["hosts", DNS_NAME])
        .output()
        .is_ok_and(|out| out.status.success());
    if resolvable_here {
        let out = ssh_with_input(
            &key,
            &host,
            &image.username,
            &format!("python3 - {DNS_NAME}"),
            DNS_QUERY,
        );
        let answer = String::from_utf8_lossy(&out.stdout).trim().to_string();
        assert!(
            answer.starts_with("rcode 0 answers ") && !answer.ends_with(" 0"),
            "the guest resolves {DNS_NAME} through 10.0.2.3: {answer} {}",
            String::from_utf8_lossy(&out.stderr)
        );
    } else {
        eprintln!("this machine cannot resolve {DNS_NAME}: the guest's DNS is not checked");
    }

    // Listed by node id for leak cleanup; the console log is kept.
    let resources = provider.list_resources().await.unwrap();
    assert_eq!(resources.len(), 1, "{resources:?}");
    assert_eq!(resources[0].id, hostname);
    assert_eq!(resources[0].metadata["nodepool_node_id"], "0000000042");
    let console = provider
        .console_log(&ExternalId::Id(hostname.into()))
        .await
        .unwrap_or_default();
    assert!(
        console.contains("Linux version"),
        "console log has the boot"
    );

    nodepool_driver::run_delete_machine(
        &*provider,
        &ExternalId::Id(hostname.into()),
        Duration::from_secs(60),
    )
    .await
    .expect("delete");
    assert!(!dir.path().join("nodes").join(hostname).exists());
    assert!(provider.list_instances().await.unwrap().is_empty());
    let ps = Command::new("pgrep")
        .args(["-f", &format!("-name {hostname},")])
        .output()
        .unwrap();
    assert!(ps.stdout.is_empty(), "no VM process left");
    assert!(!Path::new("/run/netns").join(&namespace).exists());
    assert!(!Path::new("/sys/class/net").join(&link).exists());
    assert!(!Path::new("/etc/netns").join(&namespace).exists());
    assert_eq!(
        std::fs::read_dir(dir.path().join("nodes/.leases"))
            .unwrap()
            .count(),
        0,
        "the address lease is released"
    );

    provider.delete_image(&id).await.expect("delete image");
    assert!(!dir.path().join("images").join(&id).exists());
}
