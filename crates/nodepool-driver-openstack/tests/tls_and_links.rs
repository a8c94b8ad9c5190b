//! The client against a fake Keystone and Nova on loopback (no local OpenStack needed):
//! how `verify`/`cacert` decide which TLS servers it talks to, and that a listing's next
//! link or a redirect never takes the token to another origin (issue 16, "every input a
//! suspect").

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use nodepool_driver::DriverError;
use nodepool_driver_openstack::clouds::{self, CloudConfig, Credentials, TlsVerify};
use nodepool_driver_openstack::{OpenStackClient, Service};
use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};

const TOKEN: &str = "gAAAA-fake-token";

/// One request the fake saw.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    token: Option<String>,
}

/// What the fake answers.
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Answer {
    fn json(status: u16, body: Value) -> Answer {
        Answer {
            status,
            headers: Vec::new(),
            body: body.to_string(),
        }
    }
}

/// `(method, path, the server's own base URL)` to an answer.
type Handler = Arc<dyn Fn(&str, &str, &str) -> Answer + Send + Sync>;

/// An HTTP/1.1 server on a port of its own, one request per connection, optionally TLS.
struct FakeServer {
    base: String,
    /// TCP connections accepted, whether or not a request followed.
    connections: Arc<AtomicUsize>,
    requests: Arc<Mutex<Vec<Seen>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeServer {
    async fn start(handler: Handler, tls: Option<tokio_rustls::TlsAcceptor>) -> FakeServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("address").port();
        let scheme = if tls.is_some() { "https" } else { "http" };
        let base = format!("{scheme}://127.0.0.1:{port}");
        let connections = Arc::new(AtomicUsize::new(0));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let task = tokio::spawn({
            let (base, connections, requests) =
                (base.clone(), connections.clone(), requests.clone());
            async move {
                while let Ok((stream, _)) = listener.accept().await {
                    connections.fetch_add(1, Ordering::SeqCst);
                    let (handler, base, requests, tls) =
                        (handler.clone(), base.clone(), requests.clone(), tls.clone());
                    tokio::spawn(async move {
                        match tls {
                            Some(acceptor) => {
                                if let Ok(stream) = acceptor.accept(stream).await {
                                    serve(stream, &handler, &base, &requests).await;
                                }
                            }
                            None => serve(stream, &handler, &base, &requests).await,
                        }
                    });
                }
            }
        });
        FakeServer {
            base,
            connections,
            requests,
            task,
        }
    }

    fn requests(&self) -> Vec<Seen> {
        self.requests.lock().expect("requests").clone()
    }
}

async fn serve<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    handler: &Handler,
    base: &str,
    requests: &Mutex<Vec<Seen>>,
) {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte).await {
            Ok(1) => head.push(byte[0]),
            _ => return,
        }
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let mut lines = head.split("\r\n");
    let mut request_line = lines.next().unwrap_or_default().split(' ');
    let method = request_line.next().unwrap_or_default().to_string();
    let path = request_line.next().unwrap_or_default().to_string();
    let mut length = 0;
    let mut token = None;
    for line in lines {
        if let Some((name, value)) = line.split_once(':') {
            match name.trim().to_ascii_lowercase().as_str() {
                "content-length" => length = value.trim().parse().unwrap_or(0),
                "x-auth-token" => token = Some(value.trim().to_string()),
                _ => {}
            }
        }
    }
    let mut body = vec![0u8; length];
    if stream.read_exact(&mut body).await.is_err() {
        return;
    }
    requests.lock().expect("requests").push(Seen {
        method: method.clone(),
        path: path.clone(),
        token,
    });
    let answer = handler(&method, &path, base);
    let mut out = format!(
        "HTTP/1.1 {} Fake\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n",
        answer.status,
        answer.body.len()
    );
    for (name, value) in &answer.headers {
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    out.push_str("\r\n");
    out.push_str(&answer.body);
    let _ = stream.write_all(out.as_bytes()).await;
    let _ = stream.shutdown().await;
}

/// Keystone's token answer with a catalog whose compute endpoint is `base/compute/v2.1`.
fn keystone(base: &str) -> Answer {
    let mut answer = Answer::json(
        201,
        json!({"token": {
            "issued_at": "2030-01-01T00:00:00.000000Z",
            "expires_at": "2030-01-01T01:00:00.000000Z",
            "project": {"id": "fake-project"},
            "user": {"id": "fake-user"},
            "catalog": [{"type": "compute", "endpoints": [
                {"interface": "public", "region_id": "RegionOne",
                 "url": format!("{base}/compute/v2.1")}]}]
        }}),
    );
    answer
        .headers
        .push(("X-Subject-Token".to_string(), TOKEN.to_string()));
    answer
}

/// Keystone plus `nova` for everything under `/compute/v2.1`; the version document is
/// answered here (the client reads it before its first compute call).
fn cloud_handler(nova: impl Fn(&str, &str) -> Answer + Send + Sync + 'static) -> Handler {
    Arc::new(move |method, path, base| {
        if method == "POST" && path == "/v3/auth/tokens" {
            return keystone(base);
        }
        match path.strip_prefix("/compute/v2.1") {
            Some("") => Answer::json(200, json!({"version": {"version": "2.90"}})),
            Some(rest) => nova(rest, base),
            None => Answer::json(404, json!({"error": {"message": "no such path"}})),
        }
    })
}

fn cloud_config(name: &str, base: &str, tls: TlsVerify) -> CloudConfig {
    CloudConfig {
        name: name.to_string(),
        auth_url: format!("{base}/v3"),
        credentials: Credentials::Password {
            user: json!({"name": "np", "domain": {"id": "default"}}),
            password: "fake-password".to_string(),
            project: Some(json!({"name": "np", "domain": {"id": "default"}})),
        },
        region: Some("RegionOne".to_string()),
        interface: "public".to_string(),
        image_format: "qcow2".to_string(),
        private: false,
        force_ipv4: false,
        tls,
    }
}

fn fatal_text(result: Result<impl std::fmt::Debug, DriverError>) -> String {
    match result {
        Err(DriverError::Fatal(text)) => text,
        other => panic!("expected a fatal error, got {other:?}"),
    }
}

// ---- next links and redirects ----

#[tokio::test]
async fn a_next_link_to_another_origin_is_never_requested() {
    let elsewhere =
        FakeServer::start(cloud_handler(|_, _| Answer::json(200, json!({}))), None).await;
    let foreign = format!("{}/compute/v2.1/servers/detail?marker=a", elsewhere.base);
    let nova = FakeServer::start(
        cloud_handler({
            let foreign = foreign.clone();
            move |_, _| {
                Answer::json(
                    200,
                    json!({"servers": [{"id": "a"}],
                        "servers_links": [{"rel": "next", "href": foreign}]}),
                )
            }
        }),
        None,
    )
    .await;
    let client = OpenStackClient::new(cloud_config("links", &nova.base, TlsVerify::System), 0.0)
        .expect("client");
    let err = fatal_text(
        client
            .list_all(Service::Compute, "/servers/detail", "servers")
            .await,
    );
    assert!(err.contains(&foreign), "{err}");
    assert!(
        err.contains(&format!("{}/compute/v2.1", nova.base)),
        "{err}"
    );
    assert!(err.contains("cloud links"), "{err}");
    assert_eq!(elsewhere.connections.load(Ordering::SeqCst), 0);
    // The first page was asked for with the token, from the endpoint the catalog named.
    let seen = nova.requests();
    assert!(
        seen.iter().any(|s| s.method == "GET"
            && s.path == "/compute/v2.1/servers/detail"
            && s.token.as_deref() == Some(TOKEN)),
        "{seen:?}"
    );
    // And a full URL handed to `request` directly is refused the same way.
    let err = fatal_text(client.get(Service::Compute, &foreign).await);
    assert!(err.contains("not requested"), "{err}");
    assert_eq!(elsewhere.connections.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn next_links_on_the_same_origin_are_followed_absolute_or_relative() {
    let nova = FakeServer::start(
        cloud_handler(|rest, base| match rest {
            "/servers/detail" => Answer::json(
                200,
                json!({"servers": [{"id": "a"}], "servers_links": [{"rel": "next",
                    "href": format!("{base}/compute/v2.1/servers/detail?marker=a")}]}),
            ),
            "/servers/detail?marker=a" => Answer::json(
                200,
                json!({"servers": [{"id": "b"}], "servers_links": [{"rel": "next",
                    "href": "servers/detail?marker=b"}]}),
            ),
            _ => Answer::json(200, json!({"servers": []})),
        }),
        None,
    )
    .await;
    let client = OpenStackClient::new(
        cloud_config("same-origin", &nova.base, TlsVerify::System),
        0.0,
    )
    .expect("client");
    let servers = client
        .list_all(Service::Compute, "/servers/detail", "servers")
        .await
        .expect("listing");
    let ids: Vec<&str> = servers
        .iter()
        .filter_map(|s| s.get("id").and_then(Value::as_str))
        .collect();
    assert_eq!(ids, ["a", "b"]);
    let paths: Vec<String> = nova
        .requests()
        .into_iter()
        .filter(|s| s.path.contains("/servers/"))
        .map(|s| s.path)
        .collect();
    assert_eq!(
        paths,
        [
            "/compute/v2.1/servers/detail",
            "/compute/v2.1/servers/detail?marker=a",
            "/compute/v2.1/servers/detail?marker=b",
        ]
    );
}

#[tokio::test]
async fn a_redirect_to_another_origin_is_not_followed() {
    let elsewhere =
        FakeServer::start(cloud_handler(|_, _| Answer::json(200, json!({}))), None).await;
    let target = format!("{}/compute/v2.1/flavors/detail", elsewhere.base);
    let nova = FakeServer::start(
        cloud_handler({
            let target = target.clone();
            move |rest, base| {
                let location = match rest {
                    "/flavors/detail" => target.clone(),
                    "/flavors" => format!("{base}/compute/v2.1/flavors/moved"),
                    _ => return Answer::json(200, json!({"flavors": [{"id": "1"}]})),
                };
                Answer {
                    status: 302,
                    headers: vec![("Location".to_string(), location)],
                    body: String::new(),
                }
            }
        }),
        None,
    )
    .await;
    let client = OpenStackClient::new(
        cloud_config("redirects", &nova.base, TlsVerify::System),
        0.0,
    )
    .expect("client");
    let err = fatal_text(client.get(Service::Compute, "/flavors/detail").await);
    assert!(err.contains("another origin"), "{err}");
    assert_eq!(elsewhere.connections.load(Ordering::SeqCst), 0);
    // A redirect on the same origin is still followed.
    let body = client
        .get(Service::Compute, "/flavors")
        .await
        .expect("same-origin redirect");
    assert_eq!(body.pointer("/flavors/0/id"), Some(&json!("1")));
}

// ---- TLS ----

/// Runs `openssl` in `dir`.
fn openssl(dir: &Path, args: &[&str]) {
    let output = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run openssl");
    assert!(
        output.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A throwaway CA `<name>.pem` in `dir`.
fn make_ca(dir: &Path, name: &str) -> PathBuf {
    let (key, pem) = (format!("{name}.key"), format!("{name}.pem"));
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            &key,
            "-out",
            &pem,
            "-days",
            "2",
            "-subj",
            &format!("/CN={name}"),
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ],
    );
    dir.join(pem)
}

/// A server certificate for 127.0.0.1 signed by the CA `ca`: (`server.pem`, `server.key`).
fn make_server_cert(dir: &Path, ca: &str) -> (PathBuf, PathBuf) {
    std::fs::write(
        dir.join("server.ext"),
        "basicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\nsubjectAltName=DNS:localhost,IP:127.0.0.1\n",
    )
    .expect("ext");
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=localhost",
        ],
    );
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            &format!("{ca}.pem"),
            "-CAkey",
            &format!("{ca}.key"),
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "2",
            "-extfile",
            "server.ext",
        ],
    );
    (dir.join("server.pem"), dir.join("server.key"))
}

fn acceptor(cert: &Path, key: &Path) -> tokio_rustls::TlsAcceptor {
    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs = CertificateDer::pem_file_iter(cert)
        .expect("cert file")
        .collect::<Result<Vec<_>, _>>()
        .expect("certs");
    let key = PrivateKeyDer::from_pem_file(key).expect("key");
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("protocols")
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .expect("server config");
    tokio_rustls::TlsAcceptor::from(Arc::new(config))
}

/// WARNING events of the whole test binary, as text.
fn warnings() -> Vec<String> {
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;

    static WARNINGS: Mutex<Vec<String>> = Mutex::new(Vec::new());
    static INSTALLED: OnceLock<()> = OnceLock::new();

    struct Collect;
    struct Text(String);
    impl tracing::field::Visit for Text {
        fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
            self.0.push_str(&format!(" {}={value:?}", field.name()));
        }
    }
    impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Collect {
        fn on_event(
            &self,
            event: &tracing::Event<'_>,
            _: tracing_subscriber::layer::Context<'_, S>,
        ) {
            if *event.metadata().level() == tracing::Level::WARN {
                let mut text = Text(String::new());
                event.record(&mut text);
                WARNINGS.lock().expect("warnings").push(text.0);
            }
        }
    }
    INSTALLED.get_or_init(|| {
        let _ = tracing_subscriber::registry().with(Collect).try_init();
    });
    WARNINGS.lock().expect("warnings").clone()
}

/// A clouds.yaml for cloud `name` at `base` with the extra `tls` lines, loaded as the
/// provider loads it (secure.yaml next to it merged when `secure` is given).
fn load(
    dir: &Path,
    name: &str,
    base: &str,
    tls: &str,
    secure: Option<&str>,
) -> Result<CloudConfig, String> {
    let clouds_dir = dir.join(name);
    std::fs::create_dir_all(&clouds_dir).expect("dir");
    let clouds = clouds_dir.join("clouds.yaml");
    std::fs::write(
        &clouds,
        format!(
            "clouds:\n  {name}:\n    region_name: RegionOne\n{tls}    auth:\n      auth_url: {base}/v3\n      username: np\n      password: fake-password\n      project_name: np\n"
        ),
    )
    .expect("clouds.yaml");
    if let Some(secure) = secure {
        std::fs::write(
            clouds_dir.join("secure.yaml"),
            format!("clouds:\n  {name}:\n{secure}"),
        )
        .expect("secure.yaml");
    }
    clouds::load_cloud(name, None, Some(&clouds))
}

async fn logs_in(cloud: CloudConfig) -> Result<Option<String>, DriverError> {
    OpenStackClient::new(cloud, 0.0)?.project_id().await
}

#[tokio::test]
async fn tls_checks_follow_verify_and_cacert() {
    warnings();
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let ca = make_ca(d, "ca");
    let other_ca = make_ca(d, "other-ca");
    let (cert, key) = make_server_cert(d, "ca");
    let server = FakeServer::start(
        cloud_handler(|_, _| Answer::json(200, json!({}))),
        Some(acceptor(&cert, &key)),
    )
    .await;
    let base = server.base.clone();
    let ca_text = ca.display().to_string();

    // The built-in roots do not know a self-signed CA: refused before any request.
    match logs_in(load(d, "system", &base, "", None).expect("cloud")).await {
        Err(DriverError::Transient(text)) => {
            assert!(text.contains("cloud system"), "{text}")
        }
        other => panic!("a self-signed server was accepted: {other:?}"),
    }
    assert!(server.connections.load(Ordering::SeqCst) >= 1);
    assert!(server.requests().is_empty(), "{:?}", server.requests());

    // `cacert` (here from secure.yaml) naming the CA: accepted.
    let cloud = load(
        d,
        "with-cacert",
        &base,
        "",
        Some(&format!("    cacert: {ca_text}\n")),
    )
    .expect("cloud");
    assert_eq!(
        cloud.tls,
        TlsVerify::Bundle {
            path: ca.clone(),
            key: "cacert"
        }
    );
    assert_eq!(
        logs_in(cloud).await.expect("login").as_deref(),
        Some("fake-project")
    );

    // A string `verify` is a CA bundle too; one with several certificates is read whole.
    let bundle = d.join("bundle.pem");
    std::fs::write(
        &bundle,
        [
            std::fs::read(&other_ca).expect("other ca"),
            std::fs::read(&ca).expect("ca"),
        ]
        .concat(),
    )
    .expect("bundle");
    let cloud = load(
        d,
        "with-verify-path",
        &base,
        &format!("    verify: {}\n", bundle.display()),
        None,
    )
    .expect("cloud");
    assert_eq!(
        logs_in(cloud).await.expect("login").as_deref(),
        Some("fake-project")
    );

    // A bundle without the server's CA: refused (the bundle replaces the built-in roots).
    let cloud = load(
        d,
        "wrong-ca",
        &base,
        &format!("    cacert: {}\n", other_ca.display()),
        None,
    )
    .expect("cloud");
    assert!(matches!(
        logs_in(cloud).await,
        Err(DriverError::Transient(_))
    ));

    // `verify: no` (YAML 1.1, as PyYAML reads it) wins over cacert: accepted, with one
    // WARNING naming the cloud however many clients are made for it.
    let cloud = load(
        d,
        "unchecked",
        &base,
        &format!("    verify: no\n    cacert: {ca_text}\n"),
        None,
    )
    .expect("cloud");
    assert_eq!(
        cloud.tls,
        TlsVerify::Off {
            ignored_cacert: Some(ca.clone())
        }
    );
    assert_eq!(
        logs_in(cloud.clone()).await.expect("login").as_deref(),
        Some("fake-project")
    );
    logs_in(cloud).await.expect("login again");
    let about_it: Vec<String> = warnings()
        .into_iter()
        .filter(|w| w.contains("cloud unchecked"))
        .collect();
    assert_eq!(about_it.len(), 1, "{about_it:?}");
    assert!(
        about_it[0].contains("TLS certificate checks are off for cloud unchecked"),
        "{about_it:?}"
    );
    assert!(about_it[0].contains(&ca_text), "{about_it:?}");
    // Only the cloud with checks off was warned about.
    assert!(
        !warnings().iter().any(|w| w.contains("with-cacert")),
        "{:?}",
        warnings()
    );
}

#[tokio::test]
async fn bad_ca_bundles_and_verify_values_are_errors_naming_cloud_and_path() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let base = "https://127.0.0.1:9";
    let not_pem = d.join("not-pem.txt");
    std::fs::write(&not_pem, "just some text\n").expect("file");
    let key_only = d.join("key-only.pem");
    openssl(
        d,
        &[
            "genpkey",
            "-algorithm",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-out",
            "key-only.pem",
        ],
    );
    let broken = d.join("broken.pem");
    std::fs::write(
        &broken,
        "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n",
    )
    .expect("file");
    let missing = d.join("missing.pem");
    for (name, path) in [
        ("missing", missing.display().to_string()),
        ("not-pem", not_pem.display().to_string()),
        ("key-only", key_only.display().to_string()),
        ("broken", broken.display().to_string()),
        ("a-directory", d.display().to_string()),
    ] {
        let cloud = load(d, name, base, &format!("    cacert: {path}\n"), None).expect("cloud");
        let err = fatal_text(OpenStackClient::new(cloud, 0.0));
        assert!(
            err.contains(&format!("cloud {name}")) && err.contains(&path),
            "{name}: {err}"
        );
    }
    // Any other string `verify` is a path that must exist; a quoted boolean gets a hint.
    let cloud = load(d, "maybe", base, "    verify: maybe\n", None).expect("cloud");
    let err = fatal_text(OpenStackClient::new(cloud, 0.0));
    assert!(
        err.contains("cloud maybe") && err.contains("verify maybe"),
        "{err}"
    );
    let cloud = load(d, "quoted", base, "    verify: \"false\"\n", None).expect("cloud");
    let err = fatal_text(OpenStackClient::new(cloud, 0.0));
    assert!(err.contains("quoted boolean"), "{err}");
    // Values that are neither: refused when clouds.yaml is read, never "checks off".
    for (name, value) in [
        ("number", "0"),
        ("list", "[a]"),
        ("empty", "\"\""),
        ("nothing", ""),
    ] {
        let err = load(d, name, base, &format!("    verify: {value}\n"), None).expect_err(value);
        assert!(
            err.contains(&format!("cloud {name}")) && err.contains("verify must be"),
            "{value}: {err}"
        );
    }
}
