//! A tiny HTTP/1.1 client for webapp tests: one request per connection
//! (`Connection: close`), the response read to the end and split into status, headers (in
//! the order sent, names lowercased) and the exact body bytes, so byte-compatibility can
//! be asserted without a client library rewriting anything.

use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// One response, as received.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    pub status: u16,
    /// `(lowercased name, value)` in the order received.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// The first header with this (lowercase) name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("connecting or talking to {address}: {source}")]
    Io {
        address: String,
        source: std::io::Error,
    },
    #[error("no answer from {0} in time")]
    Timeout(String),
    #[error("malformed response: {0}")]
    Malformed(String),
}

/// Sends `method target` with extra `headers` to `address` (`host:port`) and reads the
/// whole response (10 s at most).
pub async fn request(
    address: &str,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
) -> Result<HttpResponse, HttpError> {
    let io = |source| HttpError::Io {
        address: address.to_owned(),
        source,
    };
    let exchange = async {
        let mut stream = TcpStream::connect(address).await.map_err(io)?;
        let mut head =
            format!("{method} {target} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n");
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("\r\n");
        stream.write_all(head.as_bytes()).await.map_err(io)?;
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await.map_err(io)?;
        Ok(raw)
    };
    let raw = tokio::time::timeout(Duration::from_secs(10), exchange)
        .await
        .map_err(|_| HttpError::Timeout(address.to_owned()))??;
    parse(&raw, method == "HEAD")
}

/// `GET target` with an optional `Accept` header.
pub async fn get(
    address: &str,
    target: &str,
    accept: Option<&str>,
) -> Result<HttpResponse, HttpError> {
    match accept {
        Some(accept) => request(address, "GET", target, &[("Accept", accept)]).await,
        None => request(address, "GET", target, &[]).await,
    }
}

fn parse(raw: &[u8], head_only: bool) -> Result<HttpResponse, HttpError> {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| HttpError::Malformed("no end of headers".into()))?;
    let head = String::from_utf8_lossy(&raw[..split]);
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| HttpError::Malformed(format!("status line {status_line:?}")))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_owned()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    let chunked = headers
        .iter()
        .any(|(n, v)| n == "transfer-encoding" && v.eq_ignore_ascii_case("chunked"));
    if chunked && !head_only {
        body = dechunk(&body)?;
    }
    Ok(HttpResponse {
        status,
        headers,
        body,
    })
}

fn dechunk(mut data: &[u8]) -> Result<Vec<u8>, HttpError> {
    let mut body = Vec::new();
    loop {
        let line_end = data
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or_else(|| HttpError::Malformed("chunk size".into()))?;
        let size_text = String::from_utf8_lossy(&data[..line_end]);
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            .map_err(|_| HttpError::Malformed(format!("chunk size {size_text:?}")))?;
        data = &data[line_end + 2..];
        if size == 0 {
            return Ok(body);
        }
        if data.len() < size + 2 {
            return Err(HttpError::Malformed("short chunk".into()));
        }
        body.extend_from_slice(&data[..size]);
        data = &data[size + 2..];
    }
}
