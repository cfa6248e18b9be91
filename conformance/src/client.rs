//! A minimal HTTP/1.1 client for the conformance requests: one TCP connection per
//! request (`Connection: close`, the suite disables keep-alives), the exact Host and
//! method the case asks for, redirects never followed.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// One request as a case describes it.
#[derive(Clone, Debug, Default)]
pub struct HttpRequest {
    /// The method (`GET` when empty).
    pub method: String,
    /// The Host header.
    pub host: String,
    /// The request target: path and query.
    pub path: String,
    /// Extra headers, in order.
    pub headers: Vec<(String, String)>,
    /// Send over TLS with this SNI (the server certificate is not verified: the tests
    /// check routing by SNI and Host, not the generated certificates).
    pub tls_sni: Option<String>,
}

/// A response: status, headers (names lowercased, in order received) and body.
#[derive(Clone, Debug, Default)]
pub struct HttpResponse {
    /// The status code.
    pub status: u16,
    /// Header lines, names lowercased.
    pub headers: Vec<(String, String)>,
    /// The body (de-chunked).
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// All values of a header (name compared case-insensitively).
    pub fn header_values(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The values of a header joined by `,` (how the suite compares them), if present.
    pub fn header(&self, name: &str) -> Option<String> {
        let values = self.header_values(name);
        (!values.is_empty()).then(|| values.join(","))
    }
}

/// Sends `req` to `addr` and reads the whole response (10 s timeout, as the suite).
pub fn send(addr: SocketAddr, req: &HttpRequest) -> Result<HttpResponse, String> {
    let timeout = Duration::from_secs(10);
    let stream =
        TcpStream::connect_timeout(&addr, timeout).map_err(|e| format!("connect {addr}: {e}"))?;
    let _ = stream.set_read_timeout(Some(timeout));
    let _ = stream.set_write_timeout(Some(timeout));
    match &req.tls_sni {
        None => exchange(stream, addr, req),
        Some(sni) => {
            let name = rustls::pki_types::ServerName::try_from(sni.clone())
                .map_err(|e| format!("SNI {sni:?}: {e}"))?;
            let conn = rustls::ClientConnection::new(tls_config(), name)
                .map_err(|e| format!("TLS to {addr}: {e}"))?;
            exchange(rustls::StreamOwned::new(conn, stream), addr, req)
        }
    }
}

fn exchange(
    mut stream: impl Read + Write,
    addr: SocketAddr,
    req: &HttpRequest,
) -> Result<HttpResponse, String> {
    let method = if req.method.is_empty() {
        "GET"
    } else {
        &req.method
    };
    let mut head = format!("{method} {} HTTP/1.1\r\nHost: {}\r\n", req.path, req.host);
    for (name, value) in &req.headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("User-Agent: weir-conformance\r\nConnection: close\r\n");
    if matches!(method, "POST" | "PUT" | "PATCH") {
        head.push_str("Content-Length: 0\r\n");
    }
    head.push_str("\r\n");
    stream
        .write_all(head.as_bytes())
        .and_then(|()| stream.flush())
        .map_err(|e| format!("send to {addr}: {e}"))?;
    let raw = read_response(&mut stream, method == "HEAD")
        .map_err(|e| format!("read from {addr}: {e}"))?;
    parse_response(&raw, method == "HEAD")
}

fn tls_config() -> std::sync::Arc<rustls::ClientConfig> {
    use std::sync::{Arc, OnceLock};
    static CONFIG: OnceLock<Arc<rustls::ClientConfig>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let config = rustls::ClientConfig::builder_with_provider(provider.clone())
                .with_safe_default_protocol_versions()
                .expect("ring supports the default TLS versions")
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate(provider)))
                .with_no_client_auth();
            Arc::new(config)
        })
        .clone()
}

/// Accepts any server certificate (signatures are still checked).
#[derive(Debug)]
struct AcceptAnyCertificate(std::sync::Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Sends `req` as cleartext HTTP/2 with prior knowledge (h2c), one connection.
pub fn send_h2c(addr: SocketAddr, req: &HttpRequest) -> Result<HttpResponse, String> {
    use http_body_util::BodyExt;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("runtime: {e}"))?;
    runtime.block_on(async {
        let exchange = async {
            let stream = tokio::net::TcpStream::connect(addr)
                .await
                .map_err(|e| format!("connect {addr}: {e}"))?;
            let (mut sender, conn) = hyper::client::conn::http2::handshake(
                hyper_util::rt::TokioExecutor::new(),
                hyper_util::rt::TokioIo::new(stream),
            )
            .await
            .map_err(|e| format!("h2c handshake with {addr}: {e}"))?;
            tokio::spawn(conn);
            let method = if req.method.is_empty() {
                "GET"
            } else {
                &req.method
            };
            let mut builder = hyper::Request::builder()
                .method(method)
                .uri(format!("http://{}{}", req.host, req.path));
            for (name, value) in &req.headers {
                builder = builder.header(name, value);
            }
            let request = builder
                .body(http_body_util::Empty::<bytes::Bytes>::new())
                .map_err(|e| format!("request: {e}"))?;
            let response = sender
                .send_request(request)
                .await
                .map_err(|e| format!("h2c request to {addr}: {e}"))?;
            let status = response.status().as_u16();
            let headers = response
                .headers()
                .iter()
                .map(|(n, v)| {
                    (
                        n.as_str().to_string(),
                        String::from_utf8_lossy(v.as_bytes()).into_owned(),
                    )
                })
                .collect();
            let body = response
                .into_body()
                .collect()
                .await
                .map_err(|e| format!("h2c body from {addr}: {e}"))?
                .to_bytes()
                .to_vec();
            Ok(HttpResponse {
                status,
                headers,
                body,
            })
        };
        tokio::time::timeout(Duration::from_secs(10), exchange)
            .await
            .map_err(|_| format!("h2c request to {addr} timed out"))?
    })
}

/// Reads one response: the head, then the body by Content-Length, chunked framing or
/// until the connection closes. (Not waiting for the close matters: Envoy delays closing
/// after its own replies by up to a second.)
fn read_response(stream: &mut impl Read, head_only: bool) -> std::io::Result<Vec<u8>> {
    let mut raw = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        if let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&raw[..end]).to_ascii_lowercase();
            let body_start = end + 4;
            let length = head.lines().find_map(|l| {
                l.strip_prefix("content-length:")
                    .and_then(|v| v.trim().parse::<usize>().ok())
            });
            let chunked = head
                .lines()
                .any(|l| l.starts_with("transfer-encoding:") && l.contains("chunked"));
            let status_no_body = head
                .split_whitespace()
                .nth(1)
                .is_some_and(|c| c == "204" || c == "304" || c.starts_with('1'));
            let complete = if head_only || status_no_body {
                true
            } else if let Some(n) = length {
                raw.len() >= body_start + n
            } else if chunked {
                raw[body_start..].windows(5).any(|w| w == b"0\r\n\r\n")
            } else {
                false
            };
            if complete {
                return Ok(raw);
            }
        }
        let n = match stream.read(&mut buf) {
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !raw.is_empty() => 0,
            other => other?,
        };
        if n == 0 {
            return Ok(raw);
        }
        raw.extend_from_slice(&buf[..n]);
    }
}

fn parse_response(raw: &[u8], head_only: bool) -> Result<HttpResponse, String> {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| format!("incomplete response ({} bytes)", raw.len()))?;
    let head = String::from_utf8_lossy(&raw[..end]);
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("bad status line {status_line:?}"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let rest = &raw[end + 4..];
    let chunked = headers
        .iter()
        .any(|(n, v)| n == "transfer-encoding" && v.eq_ignore_ascii_case("chunked"));
    let body = if head_only {
        Vec::new()
    } else if chunked {
        dechunk(rest)
    } else {
        rest.to_vec()
    };
    Ok(HttpResponse {
        status,
        headers,
        body,
    })
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(line_end) = data.windows(2).position(|w| w == b"\r\n") {
        let size_text = String::from_utf8_lossy(&data[..line_end]);
        let size_text = size_text.split(';').next().unwrap_or("").trim();
        let Ok(size) = usize::from_str_radix(size_text, 16) else {
            break;
        };
        data = &data[line_end + 2..];
        if size == 0 || data.len() < size {
            out.extend_from_slice(&data[..size.min(data.len())]);
            break;
        }
        out.extend_from_slice(&data[..size]);
        data = data.get(size + 2..).unwrap_or(&[]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_chunked_response() {
        let raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-A: 1\r\nx-a: 2\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n";
        let r = parse_response(raw, false).unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(r.body, b"abcde");
        assert_eq!(r.header("X-A").as_deref(), Some("1,2"));
    }
}
