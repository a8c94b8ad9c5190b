//! A TCP proxy that tests can cut, to play a network partition between one client and the
//! server without touching the server or other clients.
//!
//! A client connected through the proxy sees a lost connection when the proxy is cut and
//! cannot reach the server until it is restored: that is how a test makes a ZooKeeper
//! session expire for real (the server times it out, or another connection takes it over
//! and closes it) without the client winning it back in between.

use std::io;
use std::net::{Ipv4Addr, SocketAddr};

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// Forwards connections from a loopback port to `target` while open. Runs on the tokio
/// runtime it was started on; stops when dropped.
#[derive(Debug)]
pub struct TcpProxy {
    address: SocketAddr,
    /// `true` while traffic passes. Connection tasks end when it turns `false`.
    open: watch::Sender<bool>,
    /// Dropped with the proxy, which ends the accept loop.
    _stop: watch::Sender<()>,
}

impl TcpProxy {
    /// Listens on a free loopback port and forwards to `target` (`host:port`).
    pub async fn start(target: impl Into<String>) -> io::Result<TcpProxy> {
        let target = target.into();
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let address = listener.local_addr()?;
        let (open, _) = watch::channel(true);
        let (stop, mut stopped) = watch::channel(());
        let gate = open.subscribe();
        tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    accepted = listener.accept() => accepted,
                    _ = stopped.changed() => return,
                };
                let Ok((client, _)) = accepted else {
                    continue;
                };
                // While cut, connections are accepted and closed at once, like a refusal.
                if !*gate.borrow() {
                    drop(client);
                    continue;
                }
                tokio::spawn(forward(client, target.clone(), gate.clone()));
            }
        });
        Ok(TcpProxy {
            address,
            open,
            _stop: stop,
        })
    }

    /// `127.0.0.1:<port>` to connect to instead of the target.
    pub fn address(&self) -> String {
        self.address.to_string()
    }

    /// Closes every forwarded connection and refuses new ones until [`TcpProxy::restore`].
    pub fn cut(&self) {
        self.open.send_replace(false);
    }

    /// Lets connections through again.
    pub fn restore(&self) {
        self.open.send_replace(true);
    }
}

async fn forward(mut client: TcpStream, target: String, mut open: watch::Receiver<bool>) {
    let Ok(mut server) = TcpStream::connect(&target).await else {
        return;
    };
    tokio::select! {
        // A cut wins over bytes in flight.
        biased;
        _ = open.wait_for(|open| !*open) => {}
        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
    }
    // Dropping both streams closes them: the client sees its connection lost.
}
