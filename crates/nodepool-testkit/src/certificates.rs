//! Throwaway TLS material made with the `openssl` command line tool.
//!
//! One CA signs a server certificate (SAN `localhost` and `127.0.0.1`, so clients verifying
//! the host name accept either address) and a client certificate. Keys are unencrypted
//! P-256 keys in PKCS#8 PEM, which both rustls and ZooKeeper's PEM loader read. The files
//! are the ones a `nodepool.yaml` `zookeeper-tls` section names: `ca`, `cert`, `key`.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::zookeeper::StartError;

/// The client side of the TLS setup: what `zookeeper-tls` in `nodepool.yaml` points at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientTls {
    /// The CA certificate that signed the server's certificate (`zookeeper-tls.ca`).
    pub ca: PathBuf,
    /// The client certificate, signed by the same CA (`zookeeper-tls.cert`).
    pub cert: PathBuf,
    /// The client certificate's private key (`zookeeper-tls.key`).
    pub key: PathBuf,
}

/// The server side: ZooKeeper reads its key and certificate from one PEM file.
#[derive(Debug, Clone)]
pub(crate) struct ServerTls {
    /// Server private key followed by its certificate (`ssl.keyStore.location`).
    pub keystore: PathBuf,
    /// The CA certificate that client certificates must chain to (`ssl.trustStore.location`).
    pub truststore: PathBuf,
}

const CURVE: &str = "ec_paramgen_curve:prime256v1";
const DAYS: &str = "3650";

const SERVER_EXTENSIONS: &str = "basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth,clientAuth
subjectAltName=DNS:localhost,IP:127.0.0.1
";

const CLIENT_EXTENSIONS: &str = "basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=clientAuth
";

/// Creates `dir` and writes a CA, a server and a client certificate into it.
pub(crate) fn generate(dir: &Path) -> Result<(ClientTls, ServerTls), StartError> {
    fs::create_dir_all(dir).map_err(|e| StartError::io(format!("create {}", dir.display()), e))?;
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            CURVE,
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            DAYS,
            "-subj",
            "/CN=nodepool-testkit CA",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ],
    )?;
    signed_certificate(dir, "server", "/CN=localhost", SERVER_EXTENSIONS)?;
    signed_certificate(
        dir,
        "client",
        "/CN=nodepool-testkit client",
        CLIENT_EXTENSIONS,
    )?;

    let keystore = dir.join("server-keystore.pem");
    let mut combined = read(&dir.join("server.key"))?;
    combined.push_str(&read(&dir.join("server.pem"))?);
    fs::write(&keystore, combined)
        .map_err(|e| StartError::io(format!("write {}", keystore.display()), e))?;

    Ok((
        ClientTls {
            ca: dir.join("ca.pem"),
            cert: dir.join("client.pem"),
            key: dir.join("client.key"),
        },
        ServerTls {
            keystore,
            truststore: dir.join("ca.pem"),
        },
    ))
}

/// Makes `<name>.key` and `<name>.pem`, signed by `ca.pem`, with the given extensions.
fn signed_certificate(
    dir: &Path,
    name: &str,
    subject: &str,
    extensions: &str,
) -> Result<(), StartError> {
    let (key, request, cert, ext) = (
        format!("{name}.key"),
        format!("{name}.csr"),
        format!("{name}.pem"),
        format!("{name}.ext"),
    );
    fs::write(dir.join(&ext), extensions).map_err(|e| StartError::io(format!("write {ext}"), e))?;
    openssl(
        dir,
        &[
            "req", "-new", "-newkey", "ec", "-pkeyopt", CURVE, "-nodes", "-keyout", &key, "-out",
            &request, "-subj", subject,
        ],
    )?;
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &request,
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            DAYS,
            "-extfile",
            &ext,
            "-out",
            &cert,
        ],
    )
}

fn openssl(dir: &Path, args: &[&str]) -> Result<(), StartError> {
    let command = format!("openssl {}", args.join(" "));
    let output = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .map_err(|e| StartError::io(format!("run `{command}` (is openssl installed?)"), e))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(StartError::Openssl {
            command,
            output: String::from_utf8_lossy(&output.stderr).into_owned(),
        })
    }
}

fn read(path: &Path) -> Result<String, StartError> {
    fs::read_to_string(path).map_err(|e| StartError::io(format!("read {}", path.display()), e))
}
