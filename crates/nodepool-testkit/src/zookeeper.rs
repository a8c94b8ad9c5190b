//! A real ZooKeeper 3.8 server as a child process.
//!
//! The server runs as `java ... ZooKeeperServerMain zoo.cfg` under a tiny `sh` wrapper whose
//! stdin is a pipe from this process. The wrapper kills java when a line arrives (`stop`)
//! and also when the pipe closes, which happens when this process exits for any reason.
//! That matters because tests often keep one server in a `static`, and statics are never
//! dropped: without the wrapper every test binary would leave a JVM behind. On the
//! closed-pipe path the wrapper also removes the server's directory.
//!
//! Readiness is polled: the `ruok` four-letter word on the plain port must answer `imok`
//! (an ensemble member's `srvr` must name its mode), and the TLS port (bound last) must
//! accept connections. [`ZooKeeperEnsemble`] runs several servers as one ensemble.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use crate::certificates::{self, ClientTls, ServerTls};

/// Where Debian's packages put the jars.
const JAVA_DIR: &str = "/usr/share/java";

/// The jars on the classpath. `zookeeper.jar`'s manifest names most of its dependencies
/// (jute, netty handler/transport/buffer/common/epoll, slf4j-api, metrics, jetty, ...), but
/// Debian's manifest misses the netty jars that the TLS transport (`NettyServerCnxnFactory`)
/// needs and any slf4j binding; those are listed here.
const CLASSPATH_JARS: &[&str] = &[
    "zookeeper.jar",
    "zookeeper-jute.jar",
    "netty-codec.jar",
    "netty-resolver.jar",
    "netty-transport-native-unix-common.jar",
    "slf4j-simple.jar",
];

/// Small heap, quick start: a test server holds a few thousand znodes at most.
const JVM_OPTIONS: &[&str] = &[
    "-Xmx256m",
    "-XX:+UseSerialGC",
    "-XX:TieredStopAtLevel=1",
    "-Djava.awt.headless=true",
    "-Dzookeeper.jmx.log4j.disable=true",
    "-Dorg.slf4j.simpleLogger.showDateTime=true",
    "-Dorg.slf4j.simpleLogger.defaultLogLevel=info",
];

/// See the module documentation. `$@` is the java command line; `NODEPOOL_TESTKIT_DIR` is
/// the server's directory. Background jobs of a non-interactive shell get /dev/null as
/// stdin, hence the copy of the pipe to fd 3.
const WRAPPER: &str = r#"
exec 3<&0
"$@" </dev/null &
server=$!
(
  if read -r _command <&3; then
    kill -9 "$server" 2>/dev/null
  else
    kill -9 "$server" 2>/dev/null
    while kill -0 "$server" 2>/dev/null; do sleep 0.05; done
    rm -rf "${NODEPOOL_TESTKIT_DIR:?}"
  fi
) &
wait "$server"
"#;

/// How often readiness is checked while the JVM starts.
const POLL_INTERVAL: Duration = Duration::from_millis(50);
/// How long to wait for the wrapper to exit after asking it to stop the server.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a server could not be started.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(
        "ZooKeeper is not installed: {0} is missing (install Debian's `zookeeper` package, \
         e.g. with scripts/setup.sh)"
    )]
    NotInstalled(PathBuf),
    #[error("cannot {what}: {source}")]
    Io {
        what: String,
        #[source]
        source: io::Error,
    },
    #[error("`{command}` failed:\n{output}")]
    Openssl { command: String, output: String },
    #[error("the ZooKeeper process exited during startup ({status}); its log:\n{log}")]
    Exited { status: String, log: String },
    #[error("ZooKeeper was not ready after {waited:?}; its log:\n{log}")]
    NotReady { waited: Duration, log: String },
}

impl StartError {
    pub(crate) fn io(what: impl Into<String>, source: io::Error) -> StartError {
        StartError::Io {
            what: what.into(),
            source,
        }
    }
}

/// How to run the server.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// Also listen on a TLS port that requires a client certificate signed by the
    /// generated CA, as Nodepool's production setup does.
    pub tls: bool,
    /// How long the JVM may take to come up (it takes a few seconds on a small machine).
    pub startup_timeout: Duration,
}

impl Default for ServerOptions {
    fn default() -> ServerOptions {
        ServerOptions {
            tls: false,
            startup_timeout: Duration::from_secs(90),
        }
    }
}

impl ServerOptions {
    /// Plain port and TLS port with client certificates.
    pub fn with_tls() -> ServerOptions {
        ServerOptions {
            tls: true,
            ..ServerOptions::default()
        }
    }
}

/// A running (or deliberately stopped) ZooKeeper server; killed and deleted on drop.
#[derive(Debug)]
pub struct ZooKeeperServer {
    /// Holds `zoo.cfg`, `data/`, `zookeeper.log` and `tls/`; removed on drop.
    dir: tempfile::TempDir,
    /// Plaintext client port on 127.0.0.1 (always open: readiness checks use it).
    plain_port: u16,
    /// TLS client port on 127.0.0.1, if TLS was asked for.
    tls_port: Option<u16>,
    client_tls: Option<ClientTls>,
    startup_timeout: Duration,
    /// Set for a member of a [`ZooKeeperEnsemble`]; `None` for a standalone server.
    quorum: Option<Quorum>,
    /// The wrapper process while the server runs; `None` after [`ZooKeeperServer::stop`].
    process: Option<ServerProcess>,
}

/// A server's place in an ensemble: its id and every member's quorum and election ports.
#[derive(Debug, Clone)]
struct Quorum {
    myid: usize,
    /// `server.<id>=127.0.0.1:<quorum port>:<election port>` for every member, this one too.
    members: String,
}

#[derive(Debug)]
struct ServerProcess {
    wrapper: Child,
    /// Writing a line stops the server; closing it stops the server and removes its files.
    control: ChildStdin,
}

impl ZooKeeperServer {
    /// Starts a server and waits until it serves clients.
    pub fn start(options: ServerOptions) -> Result<ZooKeeperServer, StartError> {
        check_installed()?;
        let dir = server_directory()?;
        let tls = tls_material(&dir, options.tls)?;
        let mut server = ZooKeeperServer {
            dir,
            plain_port: 0,
            tls_port: None,
            client_tls: tls.as_ref().map(|(client, _)| client.clone()),
            startup_timeout: options.startup_timeout,
            quorum: None,
            process: None,
        };
        // Free ports are found by binding port 0 and releasing it, so another process may
        // take one before java binds it; that is rare, and worth a second try.
        let mut attempts = 0;
        loop {
            attempts += 1;
            server.plain_port = free_port()?;
            server.tls_port = match tls {
                Some(_) => Some(free_port()?),
                None => None,
            };
            server.write_config(tls.as_ref().map(|(_, server)| server))?;
            match server.launch() {
                Ok(()) => return Ok(server),
                Err(StartError::Exited { log, .. })
                    if attempts < 3 && log.contains("Address already in use") =>
                {
                    continue;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// `127.0.0.1:<port>` of the plaintext client port.
    pub fn plain_address(&self) -> String {
        format!("127.0.0.1:{}", self.plain_port)
    }

    /// `127.0.0.1:<port>` of the TLS client port (the server certificate is valid for
    /// `127.0.0.1` and `localhost`), if the server was started with TLS.
    pub fn tls_address(&self) -> Option<String> {
        self.tls_port.map(|port| format!("127.0.0.1:{port}"))
    }

    /// The CA, client certificate and key for the TLS port, if the server has one.
    pub fn client_tls(&self) -> Option<&ClientTls> {
        self.client_tls.as_ref()
    }

    /// The server's log so far (startup, sessions opened and expired, errors).
    pub fn log(&self) -> String {
        fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    pub fn is_running(&self) -> bool {
        self.process.is_some()
    }

    /// Sends a four-letter-word command (`ruok`, `srvr`, `cons`, `dump`, ...) to the plain
    /// port and returns the answer.
    pub fn four_letter_word(&self, word: &str) -> io::Result<String> {
        let address = SocketAddr::from((Ipv4Addr::LOCALHOST, self.plain_port));
        let mut stream = TcpStream::connect_timeout(&address, Duration::from_secs(2))?;
        stream.set_read_timeout(Some(Duration::from_secs(5)))?;
        stream.write_all(word.as_bytes())?;
        let mut answer = String::new();
        stream.read_to_string(&mut answer)?;
        Ok(answer)
    }

    /// `leader`, `follower` or `standalone` while the server serves clients (`srvr`'s
    /// `Mode:` line); `None` while it is down or not in a quorum.
    pub fn mode(&self) -> Option<String> {
        let answer = self.four_letter_word("srvr").ok()?;
        answer
            .lines()
            .find_map(|line| line.strip_prefix("Mode: "))
            .map(|mode| mode.trim().to_string())
    }

    /// Kills the server (SIGKILL, like a crash) and keeps its data, so
    /// [`ZooKeeperServer::start_again`] brings back the same znodes and sessions on the same
    /// ports. Clients see a lost connection (Suspended), not an expired session.
    pub fn stop(&mut self) -> io::Result<()> {
        match self.process.take() {
            Some(process) => process.stop(),
            None => Ok(()),
        }
    }

    /// Starts the server again after [`ZooKeeperServer::stop`], on the same ports and data.
    pub fn start_again(&mut self) -> Result<(), StartError> {
        if self.process.is_some() {
            return Ok(());
        }
        self.launch()
    }

    /// Freezes the server (SIGSTOP to its java process): it keeps its connections open but
    /// answers nothing, as a machine that hangs does, so clients wait out their timeouts
    /// instead of seeing a closed connection. [`ZooKeeperServer::resume`] lets it go on.
    pub fn pause(&self) -> io::Result<()> {
        self.signal_java("-STOP")
    }

    /// Lets a paused server go on (SIGCONT).
    pub fn resume(&self) -> io::Result<()> {
        self.signal_java("-CONT")
    }

    /// Sends `signal` (as `kill` spells it) to the server's java process, the wrapper's child.
    fn signal_java(&self, signal: &str) -> io::Result<()> {
        let process = self
            .process
            .as_ref()
            .ok_or_else(|| io::Error::other("the ZooKeeper server is not running"))?;
        let wrapper = process.wrapper.id();
        let java = fs::read_dir(format!("/proc/{wrapper}/task"))?
            .filter_map(Result::ok)
            .filter_map(|task| fs::read_to_string(task.path().join("children")).ok())
            .flat_map(|text| {
                text.split_whitespace()
                    .filter_map(|pid| pid.parse::<u32>().ok())
                    .collect::<Vec<_>>()
            })
            .find(|pid| {
                fs::read_to_string(format!("/proc/{pid}/comm"))
                    .is_ok_and(|comm| comm.trim() == "java")
            })
            .ok_or_else(|| io::Error::other("the ZooKeeper server's java process is gone"))?;
        let status = Command::new("kill")
            .arg(signal)
            .arg(java.to_string())
            .status()?;
        if status.success() {
            Ok(())
        } else {
            Err(io::Error::other(format!(
                "kill {signal} {java} failed ({status})"
            )))
        }
    }

    /// Stops and starts the server.
    pub fn restart(&mut self) -> Result<(), StartError> {
        self.stop()
            .map_err(|e| StartError::io("stop the ZooKeeper server", e))?;
        self.start_again()
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("zookeeper.log")
    }

    fn config_path(&self) -> PathBuf {
        self.dir.path().join("zoo.cfg")
    }

    fn write_config(&self, tls: Option<&ServerTls>) -> Result<(), StartError> {
        let data = self.dir.path().join("data");
        // Short ticks let tests use short session timeouts (2 ticks minimum) and make expiry
        // prompt; forceSync=no is safe against process kills (data reaches the page cache).
        let mut config = format!(
            "tickTime=200\n\
             minSessionTimeout=400\n\
             maxSessionTimeout=60000\n\
             dataDir={}\n\
             clientPort={}\n\
             clientPortAddress=127.0.0.1\n\
             admin.enableServer=false\n\
             4lw.commands.whitelist=*\n\
             forceSync=no\n",
            data.display(),
            self.plain_port,
        );
        if let (Some(tls), Some(port)) = (tls, self.tls_port) {
            config.push_str(&format!(
                "secureClientPort={port}\n\
                 secureClientPortAddress=127.0.0.1\n\
                 serverCnxnFactory=org.apache.zookeeper.server.NettyServerCnxnFactory\n\
                 ssl.keyStore.location={}\n\
                 ssl.keyStore.type=PEM\n\
                 ssl.trustStore.location={}\n\
                 ssl.trustStore.type=PEM\n\
                 ssl.clientAuth=need\n",
                tls.keystore.display(),
                tls.truststore.display(),
            ));
        }
        if let Some(quorum) = &self.quorum {
            // Short limits so a lost leader is replaced within a few seconds.
            config.push_str("initLimit=10\nsyncLimit=5\n");
            config.push_str(&quorum.members);
            fs::create_dir_all(&data)
                .map_err(|e| StartError::io(format!("create {}", data.display()), e))?;
            let myid = data.join("myid");
            fs::write(&myid, format!("{}\n", quorum.myid))
                .map_err(|e| StartError::io(format!("write {}", myid.display()), e))?;
        }
        let path = self.config_path();
        fs::write(&path, config).map_err(|e| StartError::io(format!("write {}", path.display()), e))
    }

    /// Starts the wrapper and java, and waits for readiness; on failure nothing is left
    /// running.
    fn launch(&mut self) -> Result<(), StartError> {
        let log_start = self.spawn()?;
        self.await_ready(log_start)
    }

    /// Starts the wrapper and java without waiting; returns the log's length before, for
    /// [`ZooKeeperServer::await_ready`]'s error.
    fn spawn(&mut self) -> Result<u64, StartError> {
        let log_path = self.log_path();
        let log_start = fs::metadata(&log_path).map(|m| m.len()).unwrap_or(0);
        let log = File::options()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(|e| StartError::io(format!("open {}", log_path.display()), e))?;
        let log_for_stderr = log
            .try_clone()
            .map_err(|e| StartError::io("duplicate the log file handle", e))?;
        let classpath = CLASSPATH_JARS
            .iter()
            .map(|jar| format!("{JAVA_DIR}/{jar}"))
            .collect::<Vec<_>>()
            .join(":");
        let mut wrapper = Command::new("sh")
            .arg("-c")
            .arg(WRAPPER)
            .arg("sh")
            .arg(java())
            .args(JVM_OPTIONS)
            .arg("-cp")
            .arg(classpath)
            .arg(if self.quorum.is_some() {
                // ZooKeeperServerMain ignores `server.N` lines and runs standalone.
                "org.apache.zookeeper.server.quorum.QuorumPeerMain"
            } else {
                "org.apache.zookeeper.server.ZooKeeperServerMain"
            })
            .arg(self.config_path())
            .env("NODEPOOL_TESTKIT_DIR", self.dir.path())
            .current_dir(self.dir.path())
            .stdin(Stdio::piped())
            .stdout(log)
            .stderr(log_for_stderr)
            .spawn()
            .map_err(|e| StartError::io("run sh to start java", e))?;
        let Some(control) = wrapper.stdin.take() else {
            let _ = wrapper.kill();
            return Err(StartError::io(
                "talk to the server wrapper",
                io::Error::other("no stdin pipe"),
            ));
        };
        self.process = Some(ServerProcess { wrapper, control });
        Ok(log_start)
    }

    /// Waits until the spawned server serves; on failure it is stopped and the error carries
    /// its log since `log_start`.
    fn await_ready(&mut self, log_start: u64) -> Result<(), StartError> {
        match self.wait_until_ready() {
            Ok(()) => Ok(()),
            Err(e) => {
                if let Some(process) = self.process.take() {
                    let _ = process.stop();
                }
                Err(match e {
                    StartError::Exited { status, .. } => StartError::Exited {
                        status,
                        log: self.log_since(log_start),
                    },
                    StartError::NotReady { waited, .. } => StartError::NotReady {
                        waited,
                        log: self.log_since(log_start),
                    },
                    other => other,
                })
            }
        }
    }

    fn wait_until_ready(&mut self) -> Result<(), StartError> {
        let started = Instant::now();
        loop {
            if let Some(process) = self.process.as_mut() {
                let exited = process
                    .wrapper
                    .try_wait()
                    .map_err(|e| StartError::io("check the ZooKeeper process", e))?;
                if let Some(status) = exited {
                    return Err(StartError::Exited {
                        status: status.to_string(),
                        log: String::new(),
                    });
                }
            }
            if self.is_ready() {
                return Ok(());
            }
            if started.elapsed() > self.startup_timeout {
                return Err(StartError::NotReady {
                    waited: started.elapsed(),
                    log: String::new(),
                });
            }
            std::thread::sleep(POLL_INTERVAL);
        }
    }

    fn is_ready(&self) -> bool {
        // An ensemble member answers `ruok` before it has joined a quorum; `srvr` names its
        // mode only once it serves.
        let serving = if self.quorum.is_some() {
            self.mode().is_some()
        } else {
            self.four_letter_word("ruok")
                .is_ok_and(|answer| answer == "imok")
        };
        let tls_bound = self.tls_port.is_none_or(|port| {
            let address = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
            TcpStream::connect_timeout(&address, Duration::from_secs(1)).is_ok()
        });
        serving && tls_bound
    }

    fn log_since(&self, offset: u64) -> String {
        let log = self.log();
        let start = usize::try_from(offset).unwrap_or(0).min(log.len());
        log.get(start..).unwrap_or(&log).to_string()
    }
}

impl ServerProcess {
    /// Asks the wrapper to kill java and keep the files, and waits for it to exit.
    fn stop(mut self) -> io::Result<()> {
        let asked = writeln!(self.control, "stop");
        drop(self.control);
        wait_or_kill(&mut self.wrapper)?;
        asked.or(Ok(()))
    }
}

impl Drop for ZooKeeperServer {
    fn drop(&mut self) {
        if let Some(mut process) = self.process.take() {
            // Closing the pipe makes the wrapper kill java and remove the directory.
            drop(process.control);
            let _ = wait_or_kill(&mut process.wrapper);
        }
    }
}

/// Waits for the wrapper to exit, killing it if it hangs.
fn wait_or_kill(wrapper: &mut Child) -> io::Result<()> {
    let started = Instant::now();
    while wrapper.try_wait()?.is_none() {
        if started.elapsed() > STOP_TIMEOUT {
            wrapper.kill()?;
            wrapper.wait()?;
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(())
}

fn check_installed() -> Result<(), StartError> {
    for jar in CLASSPATH_JARS {
        let path = Path::new(JAVA_DIR).join(jar);
        if !path.exists() {
            return Err(StartError::NotInstalled(path));
        }
    }
    Ok(())
}

fn server_directory() -> Result<tempfile::TempDir, StartError> {
    tempfile::Builder::new()
        .prefix("nodepool-zookeeper-")
        .tempdir()
        .map_err(|e| StartError::io("create a temporary directory", e))
}

/// The CA, server and client certificates under `dir/tls`, when `wanted`.
fn tls_material(
    dir: &tempfile::TempDir,
    wanted: bool,
) -> Result<Option<(ClientTls, ServerTls)>, StartError> {
    if wanted {
        certificates::generate(&dir.path().join("tls")).map(Some)
    } else {
        Ok(None)
    }
}

/// Several ZooKeeper servers forming one ensemble on loopback (each a [`ZooKeeperServer`]
/// with its own directory and ports), for tests of leader loss and of sessions moving between
/// servers. With TLS, every member serves the same certificate and trusts the same CA.
#[derive(Debug)]
pub struct ZooKeeperEnsemble {
    /// Holds the shared TLS material; each member's own directory holds the rest.
    _dir: tempfile::TempDir,
    servers: Vec<ZooKeeperServer>,
}

impl ZooKeeperEnsemble {
    /// Starts `size` servers and waits until each serves as leader or follower.
    pub fn start(size: usize, options: ServerOptions) -> Result<ZooKeeperEnsemble, StartError> {
        check_installed()?;
        let dir = server_directory()?;
        let tls = tls_material(&dir, options.tls)?;
        let mut attempts = 0;
        loop {
            attempts += 1;
            let mut members = String::new();
            for myid in 1..=size {
                let (quorum_port, election_port) = (free_port()?, free_port()?);
                members.push_str(&format!(
                    "server.{myid}=127.0.0.1:{quorum_port}:{election_port}\n"
                ));
            }
            let mut servers = Vec::with_capacity(size);
            let mut log_starts = Vec::with_capacity(size);
            for myid in 1..=size {
                let mut server = ZooKeeperServer {
                    dir: server_directory()?,
                    plain_port: free_port()?,
                    tls_port: match tls {
                        Some(_) => Some(free_port()?),
                        None => None,
                    },
                    client_tls: tls.as_ref().map(|(client, _)| client.clone()),
                    startup_timeout: options.startup_timeout,
                    quorum: Some(Quorum {
                        myid,
                        members: members.clone(),
                    }),
                    process: None,
                };
                server.write_config(tls.as_ref().map(|(_, server)| server))?;
                log_starts.push(server.spawn()?);
                servers.push(server);
            }
            // Dropping the others on an error stops them too.
            let ready = servers
                .iter_mut()
                .zip(log_starts)
                .try_for_each(|(server, log_start)| server.await_ready(log_start));
            match ready {
                Ok(()) => return Ok(ZooKeeperEnsemble { _dir: dir, servers }),
                Err(StartError::Exited { log, .. })
                    if attempts < 3 && log.contains("Address already in use") =>
                {
                    continue;
                }
                Err(e) => return Err(e),
            }
        }
    }

    pub fn servers(&self) -> &[ZooKeeperServer] {
        &self.servers
    }

    pub fn server_mut(&mut self, index: usize) -> &mut ZooKeeperServer {
        &mut self.servers[index]
    }

    /// Every member's plaintext client address.
    pub fn plain_addresses(&self) -> Vec<String> {
        self.servers
            .iter()
            .map(ZooKeeperServer::plain_address)
            .collect()
    }

    /// Every member's TLS client address, if the ensemble was started with TLS.
    pub fn tls_addresses(&self) -> Option<Vec<String>> {
        self.servers
            .iter()
            .map(ZooKeeperServer::tls_address)
            .collect()
    }

    /// The CA, client certificate and key every member's TLS port accepts.
    pub fn client_tls(&self) -> Option<&ClientTls> {
        self.servers.first().and_then(ZooKeeperServer::client_tls)
    }

    /// The index of the member that is leader now, if one is.
    pub fn leader(&self) -> Option<usize> {
        self.servers
            .iter()
            .position(|server| server.is_running() && server.mode().as_deref() == Some("leader"))
    }

    /// Waits (polling `srvr`, nothing else tells) until a running member leads and every
    /// other running member follows it, for at most `timeout`; returns the leader's index.
    pub fn wait_for_quorum(&self, timeout: Duration) -> Result<usize, StartError> {
        let started = Instant::now();
        loop {
            let modes: Vec<Option<String>> = self
                .servers
                .iter()
                .filter(|server| server.is_running())
                .map(ZooKeeperServer::mode)
                .collect();
            let leaders = modes
                .iter()
                .filter(|m| m.as_deref() == Some("leader"))
                .count();
            let followers = modes
                .iter()
                .filter(|m| m.as_deref() == Some("follower"))
                .count();
            if leaders == 1
                && leaders + followers == modes.len()
                && let Some(leader) = self.leader()
            {
                return Ok(leader);
            }
            if started.elapsed() > timeout {
                return Err(StartError::NotReady {
                    waited: started.elapsed(),
                    log: format!("no quorum; members' modes: {modes:?}"),
                });
            }
            std::thread::sleep(POLL_INTERVAL);
        }
    }
}

fn free_port() -> Result<u16, StartError> {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .map_err(|e| StartError::io("find a free loopback port", e))
}

/// `$JAVA_HOME/bin/java` when set, else `java` from `PATH`.
fn java() -> PathBuf {
    match std::env::var_os("JAVA_HOME") {
        Some(home) if !home.is_empty() => Path::new(&home).join("bin").join("java"),
        _ => PathBuf::from("java"),
    }
}
