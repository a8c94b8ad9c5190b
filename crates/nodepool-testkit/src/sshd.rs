//! A real OpenSSH server on its own address, as a static host or a booted node looks.
//!
//! Each [`SshdHost`] gets a network namespace `np-t<block>` joined to this machine by a veth
//! pair (`npt<block>h` here, `npt<block>n` inside) carrying a private /30 from
//! `10.231.0.0/16`: `.1` on this machine's side, `.2` (the [`SshdHost::address`]) inside.
//! `sshd` runs inside the namespace listening on port 22 of that address, with freshly
//! generated RSA, ECDSA and Ed25519 host keys and its own config, pid file and log in a
//! temporary directory. Nothing under `/etc/ssh` is used, so a system sshd may run or not.
//!
//! Blocks are claimed by creating the namespace: `ip netns add` fails when the name exists,
//! which makes the choice safe across threads and concurrent test processes; a block whose
//! namespace exists (in use, or left behind by a killed test) is skipped.
//!
//! # Requirements
//!
//! Root (network namespaces and veth devices), `iproute2` (`ip`), `openssh-server`
//! (`/usr/sbin/sshd`) and `openssh-client` (`ssh-keygen`, and `ssh-keyscan` for the code
//! under test). `scripts/setup.sh` installs them. Tests that use it fail (they do not skip)
//! when something is missing.

use std::fs::{self, File};
use std::io;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use tokio::net::TcpStream;
use tokio::time::{Instant, sleep, timeout};

/// The OpenSSH server Debian installs.
const SSHD: &str = "/usr/sbin/sshd";
/// sshd's privilege separation directory; it refuses to start without it.
const PRIVSEP_DIR: &str = "/run/sshd";
/// The /30 blocks of `10.231.0.0/16`.
const BLOCKS: u32 = 1 << 14;
/// Host key types generated, as `ssh-keygen -t` names them.
const KEY_TYPES: &[&str] = &["rsa", "ecdsa", "ed25519"];
/// The port sshd listens on inside the namespace.
const SSH_PORT: u16 = 22;
/// Pause between connect attempts in `wait_ready`.
const READY_POLL: Duration = Duration::from_millis(50);

/// Hosts started by this process, so the next one tries a different block first.
static HOSTS_STARTED: AtomicU32 = AtomicU32::new(0);

/// Why a host could not be started or is not ready.
#[derive(Debug, thiserror::Error)]
pub enum SshdError {
    #[error(
        "sshd is not installed: {SSHD} is missing (install openssh-server, e.g. with scripts/setup.sh)"
    )]
    NotInstalled,
    #[error("cannot {what}: {source}")]
    Io {
        what: String,
        #[source]
        source: io::Error,
    },
    #[error("`{command}` failed ({status}): {stderr}")]
    Command {
        command: String,
        status: String,
        stderr: String,
    },
    #[error("no free address block in 10.231.0.0/16")]
    NoFreeBlock,
    #[error("sshd exited ({status}); its log:\n{log}")]
    Exited { status: String, log: String },
    #[error("sshd on {address} did not answer within {waited:?}; its log:\n{log}")]
    NotReady {
        address: String,
        waited: Duration,
        log: String,
    },
}

fn io_error(what: impl Into<String>) -> impl FnOnce(io::Error) -> SshdError {
    let what = what.into();
    move |source| SshdError::Io { what, source }
}

/// A running (or stopped) sshd in its own network namespace; everything is removed on drop.
#[derive(Debug)]
pub struct SshdHost {
    /// The caller's name for the host, for messages.
    name: String,
    /// Holds the host keys, `sshd_config`, the pid file and `sshd.log`.
    dir: tempfile::TempDir,
    /// `np-t<block>`.
    namespace: String,
    /// This machine's end of the veth pair (deleting it deletes both ends).
    host_link: String,
    /// The namespace side's address: where sshd listens.
    address: Ipv4Addr,
    /// `"<type> <base64>"` from the generated `.pub` files.
    host_keys: Vec<String>,
    /// The sshd process (`ip netns exec` execs it, so this is sshd itself); `None` once
    /// stopped.
    sshd: Option<Child>,
}

impl SshdHost {
    /// Creates the namespace and veth pair, generates host keys and starts sshd. Returns
    /// before sshd listens; call [`SshdHost::wait_ready`].
    pub fn start(name: &str) -> Result<SshdHost, SshdError> {
        if !Path::new(SSHD).exists() {
            return Err(SshdError::NotInstalled);
        }
        fs::create_dir_all(PRIVSEP_DIR).map_err(io_error(format!("create {PRIVSEP_DIR}")))?;
        let dir = tempfile::Builder::new()
            .prefix(&format!("np-sshd-{}-", sanitized(name)))
            .tempdir()
            .map_err(io_error("create a temporary directory"))?;
        let block = claim_block()?;
        let namespace = namespace_name(block);
        let host_link = format!("npt{block}h");
        let (host_address, address) = block_addresses(block);
        // From here on the namespace exists: build the value now so drop cleans up after
        // any failure below.
        let mut host = SshdHost {
            name: name.to_string(),
            dir,
            namespace,
            host_link,
            address,
            host_keys: Vec::new(),
            sshd: None,
        };
        host.create_link(block, host_address)?;
        host.host_keys = host.generate_keys()?;
        host.write_config()?;
        host.launch()?;
        Ok(host)
    }

    /// The caller's name for this host.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The address sshd listens on, reachable from this machine.
    pub fn address(&self) -> String {
        self.address.to_string()
    }

    pub fn port(&self) -> u16 {
        SSH_PORT
    }

    /// The host's public keys as `"<type> <base64>"` (RSA, ECDSA, Ed25519).
    pub fn host_keys(&self) -> Vec<String> {
        self.host_keys.clone()
    }

    /// What sshd has logged so far.
    pub fn log(&self) -> String {
        fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Waits until a TCP connection to sshd succeeds.
    pub async fn wait_ready(&mut self, within: Duration) -> Result<(), SshdError> {
        let deadline = Instant::now() + within;
        let address = (self.address, SSH_PORT);
        loop {
            if let Some(child) = self.sshd.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                self.sshd = None;
                return Err(SshdError::Exited {
                    status: status.to_string(),
                    log: self.log(),
                });
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(SshdError::NotReady {
                    address: self.address(),
                    waited: within,
                    log: self.log(),
                });
            }
            if let Ok(Ok(_stream)) = timeout(left, TcpStream::connect(address)).await {
                return Ok(());
            }
            sleep(READY_POLL.min(deadline.saturating_duration_since(Instant::now()))).await;
        }
    }

    /// Kills sshd: the address stays up, connections are refused.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.sshd.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts sshd again after [`SshdHost::stop`] (same address and keys).
    pub fn start_again(&mut self) -> Result<(), SshdError> {
        self.stop();
        self.launch()
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("sshd.log")
    }

    fn config_path(&self) -> PathBuf {
        self.dir.path().join("sshd_config")
    }

    fn key_path(&self, key_type: &str) -> PathBuf {
        self.dir.path().join(format!("ssh_host_{key_type}_key"))
    }

    fn create_link(&self, block: u32, host_address: Ipv4Addr) -> Result<(), SshdError> {
        let inner_link = format!("npt{block}n");
        let host_cidr = format!("{host_address}/30");
        let inner_cidr = format!("{}/30", self.address);
        let ns = self.namespace.as_str();
        run(
            "ip",
            &[
                "link",
                "add",
                &self.host_link,
                "type",
                "veth",
                "peer",
                "name",
                &inner_link,
            ],
        )?;
        run("ip", &["link", "set", &inner_link, "netns", ns])?;
        run("ip", &["addr", "add", &host_cidr, "dev", &self.host_link])?;
        run("ip", &["link", "set", &self.host_link, "up"])?;
        run(
            "ip",
            &[
                "netns",
                "exec",
                ns,
                "ip",
                "addr",
                "add",
                &inner_cidr,
                "dev",
                &inner_link,
            ],
        )?;
        run(
            "ip",
            &["netns", "exec", ns, "ip", "link", "set", &inner_link, "up"],
        )?;
        run(
            "ip",
            &["netns", "exec", ns, "ip", "link", "set", "lo", "up"],
        )?;
        Ok(())
    }

    fn generate_keys(&self) -> Result<Vec<String>, SshdError> {
        let mut keys = Vec::new();
        for key_type in KEY_TYPES {
            let path = self.key_path(key_type);
            let path_text = path.to_string_lossy().into_owned();
            run(
                "ssh-keygen",
                &["-q", "-t", key_type, "-N", "", "-C", "", "-f", &path_text],
            )?;
            let public = fs::read_to_string(path.with_extension("pub"))
                .map_err(io_error(format!("read {path_text}.pub")))?;
            let fields: Vec<&str> = public.split_whitespace().take(2).collect();
            keys.push(fields.join(" "));
        }
        Ok(keys)
    }

    fn write_config(&self) -> Result<(), SshdError> {
        let mut config = format!("ListenAddress {}\nPort {SSH_PORT}\n", self.address);
        for key_type in KEY_TYPES {
            config.push_str(&format!("HostKey {}\n", self.key_path(key_type).display()));
        }
        config.push_str(&format!(
            "PidFile {}\nUsePAM no\nStrictModes no\n",
            self.dir.path().join("sshd.pid").display()
        ));
        fs::write(self.config_path(), config).map_err(io_error("write sshd_config"))
    }

    fn launch(&mut self) -> Result<(), SshdError> {
        let log = File::options()
            .create(true)
            .append(true)
            .open(self.log_path())
            .map_err(io_error("open sshd.log"))?;
        let child = Command::new("ip")
            .args(["netns", "exec", &self.namespace, SSHD, "-D", "-e", "-f"])
            .arg(self.config_path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(io_error("run sshd"))?;
        self.sshd = Some(child);
        Ok(())
    }
}

impl Drop for SshdHost {
    fn drop(&mut self) {
        self.stop();
        let _ = run("ip", &["link", "del", &self.host_link]);
        let _ = run("ip", &["netns", "del", &self.namespace]);
    }
}

/// Claims a free /30 by creating its namespace; returns the block number.
fn claim_block() -> Result<u32, SshdError> {
    let started = HOSTS_STARTED.fetch_add(1, Ordering::Relaxed);
    // Spread processes apart (pid) and hosts of one process apart (counter).
    let first = std::process::id().wrapping_mul(257).wrapping_add(started) % BLOCKS;
    for offset in 0..BLOCKS {
        let block = (first + offset) % BLOCKS;
        let namespace = namespace_name(block);
        let output = Command::new("ip")
            .args(["netns", "add", &namespace])
            .output()
            .map_err(io_error("run ip (install iproute2)"))?;
        if output.status.success() {
            return Ok(block);
        }
        let stderr = String::from_utf8_lossy(&output.stderr);
        if !stderr.contains("exists") {
            return Err(SshdError::Command {
                command: format!("ip netns add {namespace}"),
                status: output.status.to_string(),
                stderr: stderr.trim().to_string(),
            });
        }
    }
    Err(SshdError::NoFreeBlock)
}

fn namespace_name(block: u32) -> String {
    format!("np-t{block}")
}

/// (this machine's side, the namespace's side) of block `block`.
fn block_addresses(block: u32) -> (Ipv4Addr, Ipv4Addr) {
    let base = u32::from(Ipv4Addr::new(10, 231, 0, 0)) + block * 4;
    (Ipv4Addr::from(base + 1), Ipv4Addr::from(base + 2))
}

fn sanitized(name: &str) -> String {
    name.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .take(32)
        .collect()
}

/// Runs a command to completion; a non-zero exit is an error carrying its stderr.
fn run(program: &str, args: &[&str]) -> Result<(), SshdError> {
    let output = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(io_error(format!("run {program}")))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(SshdError::Command {
            command: format!("{program} {}", args.join(" ")),
            status: output.status.to_string(),
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_are_disjoint_slash_30s() {
        assert_eq!(
            block_addresses(0),
            (Ipv4Addr::new(10, 231, 0, 1), Ipv4Addr::new(10, 231, 0, 2))
        );
        assert_eq!(
            block_addresses(BLOCKS - 1),
            (
                Ipv4Addr::new(10, 231, 255, 253),
                Ipv4Addr::new(10, 231, 255, 254)
            )
        );
    }

    #[tokio::test]
    async fn sshd_host_answers_and_goes_away() {
        let mut host = SshdHost::start("testkit").expect("start sshd host");
        host.wait_ready(Duration::from_secs(30))
            .await
            .expect("sshd ready");
        assert_eq!(host.host_keys().len(), 3);
        let address = (host.address, host.port());
        TcpStream::connect(address).await.expect("connect to sshd");
        host.stop();
        assert!(TcpStream::connect(address).await.is_err());
        let namespace = host.namespace.clone();
        drop(host);
        let list = Command::new("ip")
            .args(["netns", "list"])
            .output()
            .expect("ip netns list");
        let names = String::from_utf8_lossy(&list.stdout).into_owned();
        assert!(!names.split_whitespace().any(|n| n == namespace), "{names}");
    }
}
