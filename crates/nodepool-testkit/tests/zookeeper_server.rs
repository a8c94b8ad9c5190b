//! The testkit's ZooKeeper server: starts, answers, survives a restart, cleans up.

use std::net::TcpStream;

use nodepool_testkit::{ServerOptions, ZooKeeperServer};

#[test]
fn plain_and_tls_server_start_restart_and_clean_up() {
    let mut server = ZooKeeperServer::start(ServerOptions::with_tls()).expect("ZooKeeper starts");
    assert_eq!(
        server.four_letter_word("ruok").expect("ruok answers"),
        "imok",
        "a started server answers ruok with imok"
    );
    let srvr = server.four_letter_word("srvr").expect("srvr answers");
    assert!(
        srvr.contains("Zookeeper version: 3."),
        "srvr reports a ZooKeeper 3.x version, got {srvr:?}"
    );
    let tls = server
        .client_tls()
        .expect("a TLS server has client files")
        .clone();
    for file in [&tls.ca, &tls.cert, &tls.key] {
        assert!(file.exists(), "{} exists", file.display());
    }
    let tls_address = server.tls_address().expect("a TLS server has a TLS port");
    TcpStream::connect(&tls_address).expect("the TLS port accepts connections");

    server.stop().expect("stop");
    assert!(!server.is_running(), "a stopped server is not running");
    assert!(
        server.four_letter_word("ruok").is_err(),
        "a stopped server does not answer"
    );
    server.start_again().expect("start again");
    assert_eq!(
        server
            .four_letter_word("ruok")
            .expect("ruok answers after restart"),
        "imok",
        "the restarted server answers on the same port"
    );
    assert_eq!(
        server.tls_address().as_deref(),
        Some(tls_address.as_str()),
        "the TLS port is kept across restarts"
    );

    let dir = tls
        .ca
        .parent()
        .and_then(|p| p.parent())
        .expect("server dir")
        .to_path_buf();
    drop(server);
    assert!(
        !dir.exists(),
        "dropping the server removes {}",
        dir.display()
    );
    assert!(
        TcpStream::connect(&tls_address).is_err(),
        "dropping the server stops it"
    );
}

/// A paused server keeps connections but answers nothing; resumed, it answers again.
#[test]
fn a_paused_server_answers_nothing_until_resumed() {
    let server = ZooKeeperServer::start(ServerOptions::default()).expect("ZooKeeper starts");
    server.pause().expect("pause");
    assert!(
        server
            .four_letter_word("ruok")
            .map_or(true, |answer| answer.is_empty()),
        "a paused server does not answer"
    );
    server.resume().expect("resume");
    let began = std::time::Instant::now();
    let answer = loop {
        match server.four_letter_word("ruok") {
            Ok(answer) if answer == "imok" => break answer,
            _ if began.elapsed() < std::time::Duration::from_secs(30) => {
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            other => panic!("no answer after resume: {other:?}"),
        }
    };
    assert_eq!(answer, "imok");
}
