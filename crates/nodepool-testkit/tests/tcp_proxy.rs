//! The proxy passes bytes, cuts connections on request and lets new ones in again.

use std::time::Duration;

use nodepool_testkit::TcpProxy;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// An echo server on a free port.
async fn echo_server() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address").to_string();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut reader, mut writer) = stream.split();
                let _ = tokio::io::copy(&mut reader, &mut writer).await;
            });
        }
    });
    address
}

async fn round_trip(stream: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    stream.write_all(b"ping").await?;
    let mut answer = [0u8; 4];
    tokio::time::timeout(Duration::from_secs(5), stream.read_exact(&mut answer))
        .await
        .map_err(|_| std::io::Error::other("no answer"))??;
    Ok(answer.to_vec())
}

#[tokio::test]
async fn proxy_forwards_cuts_and_restores() {
    let proxy = TcpProxy::start(echo_server().await)
        .await
        .expect("proxy starts");
    let mut first = TcpStream::connect(proxy.address()).await.expect("connect");
    assert_eq!(
        round_trip(&mut first)
            .await
            .expect("echo through the proxy"),
        b"ping",
        "bytes pass through the proxy"
    );

    proxy.cut();
    assert!(
        round_trip(&mut first).await.is_err(),
        "a cut closes existing connections"
    );
    let mut refused = TcpStream::connect(proxy.address())
        .await
        .expect("the port still accepts");
    assert!(
        round_trip(&mut refused).await.is_err(),
        "connections made while cut are closed at once"
    );

    proxy.restore();
    let mut second = TcpStream::connect(proxy.address()).await.expect("connect");
    assert_eq!(
        round_trip(&mut second).await.expect("echo after restore"),
        b"ping",
        "a restored proxy forwards again"
    );
}
