//! The echo backend the conformance tests route to: a Rust re-implementation of the
//! suite's `echo-basic` HTTP mode (tests/conformance/VERSION names the reference).
//!
//! Every request not claimed by a special path is answered with a JSON description of
//! what arrived (path, Host, method, protocol, headers) and of the "pod" that answered
//! (namespace, pod name, service), so a test can tell which backend served it and what
//! the proxy changed on the way.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderName, HeaderValue};
use hyper::{Request, Response, StatusCode, Version};
use serde::Serialize;
use tokio::net::TcpListener;

/// What one echo process is: the downward-API values a pod would get, and its ports.
#[derive(Clone, Debug)]
pub struct EchoConfig {
    /// `POD_NAME`.
    pub pod: String,
    /// `NAMESPACE`.
    pub namespace: String,
    /// `SERVICE_NAME` (normally empty).
    pub service: String,
    /// `INGRESS_NAME` (normally empty).
    pub ingress: String,
    /// `HTTP_PORT`: HTTP/1.1 (and WebSocket upgrades).
    pub http_port: u16,
    /// `H2C_PORT`: cleartext HTTP/2 with prior knowledge.
    pub h2c_port: u16,
    /// `HTTPS_PORT`: HTTP/1.1 and HTTP/2 over TLS, when [`EchoConfig::tls`] is set.
    pub https_port: u16,
    /// `TLS_SERVER_CERT` and `TLS_SERVER_PRIVKEY` (PEM files): HTTPS starts only when
    /// both are set.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// `TLS_CLIENT_CACERTS` (PEM file): client certificates are verified against it if
    /// a client sends one, but not required.
    pub client_cas: Option<PathBuf>,
    /// `BIND_ADDRESS` (a harness extension: the "pod IP" to listen on).
    pub bind: IpAddr,
}

impl EchoConfig {
    /// Reads the configuration from the environment the way echo-basic does.
    pub fn from_env() -> anyhow::Result<Self> {
        let var = |name: &str| std::env::var(name).unwrap_or_default();
        let port = |name: &str, default: u16| -> anyhow::Result<u16> {
            match std::env::var(name) {
                Ok(v) if !v.is_empty() => v
                    .parse()
                    .map_err(|_| anyhow::anyhow!("{name}={v:?} is not a port")),
                _ => Ok(default),
            }
        };
        let path = |name: &str| {
            std::env::var_os(name)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        let bind = match std::env::var("BIND_ADDRESS") {
            Ok(v) if !v.is_empty() => v
                .parse()
                .map_err(|_| anyhow::anyhow!("BIND_ADDRESS={v:?} is not an IP address"))?,
            _ => IpAddr::from([0, 0, 0, 0]),
        };
        Ok(Self {
            pod: var("POD_NAME"),
            namespace: var("NAMESPACE"),
            service: var("SERVICE_NAME"),
            ingress: var("INGRESS_NAME"),
            http_port: port("HTTP_PORT", 3000)?,
            h2c_port: port("H2C_PORT", 3001)?,
            https_port: port("HTTPS_PORT", 8443)?,
            tls: match (path("TLS_SERVER_CERT"), path("TLS_SERVER_PRIVKEY")) {
                (Some(cert), Some(key)) => Some((cert, key)),
                _ => None,
            },
            client_cas: path("TLS_CLIENT_CACERTS"),
            bind,
        })
    }
}

/// The echoed description of a request (field order as echo-basic writes it).
#[derive(Debug, Serialize)]
struct Echo<'a> {
    path: String,
    host: String,
    method: String,
    proto: &'static str,
    headers: BTreeMap<String, Vec<String>>,
    namespace: &'a str,
    ingress: &'a str,
    service: &'a str,
    pod: &'a str,
    #[serde(rename = "httpPort")]
    http_port: String,
    /// Only on TLS connections.
    #[serde(skip_serializing_if = "Option::is_none")]
    tls: Option<&'a TlsInfo>,
}

/// What echo-basic reports about a TLS connection (Go's names for versions and suites).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct TlsInfo {
    /// `TLSv1.3` or `TLSv1.2`.
    pub version: String,
    /// The client's certificate chain as PEM, when it sent one.
    #[serde(rename = "peerCertificates", skip_serializing_if = "Vec::is_empty")]
    pub peer_certificates: Vec<String>,
    /// The SNI the client sent (empty when none).
    #[serde(rename = "serverName")]
    pub server_name: String,
    /// The ALPN protocol agreed, when there is one.
    #[serde(
        rename = "negotiatedProtocol",
        skip_serializing_if = "String::is_empty"
    )]
    pub negotiated_protocol: String,
    /// The cipher suite, e.g. `TLS_AES_128_GCM_SHA256`.
    #[serde(rename = "cipherSuite")]
    pub cipher_suite: String,
}

impl TlsInfo {
    /// Describes an established server-side connection.
    pub fn of(conn: &rustls::ServerConnection) -> Self {
        let version = match conn.protocol_version() {
            Some(rustls::ProtocolVersion::TLSv1_3) => "TLSv1.3",
            Some(rustls::ProtocolVersion::TLSv1_2) => "TLSv1.2",
            Some(rustls::ProtocolVersion::TLSv1_1) => "TLSv1.1",
            Some(rustls::ProtocolVersion::TLSv1_0) => "TLSv1.0",
            _ => "",
        };
        // rustls writes TLS 1.3 suites as `TLS13_…`; Go, like the IANA registry, `TLS_…`.
        let cipher_suite = conn
            .negotiated_cipher_suite()
            .and_then(|s| s.suite().as_str())
            .map(|s| s.replacen("TLS13_", "TLS_", 1))
            .unwrap_or_default();
        Self {
            version: version.to_string(),
            peer_certificates: conn
                .peer_certificates()
                .unwrap_or_default()
                .iter()
                .map(|c| pem("CERTIFICATE", c.as_ref()))
                .collect(),
            server_name: conn.server_name().unwrap_or_default().to_string(),
            negotiated_protocol: conn
                .alpn_protocol()
                .map(|p| String::from_utf8_lossy(p).into_owned())
                .unwrap_or_default(),
            cipher_suite,
        }
    }
}

/// DER bytes as a PEM block with this label (base64, 64 columns).
pub fn pem(label: &str, der: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut b64 = Vec::with_capacity(der.len().div_ceil(3) * 4);
    for chunk in der.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..4 {
            b64.push(if i <= chunk.len() {
                ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]
            } else {
                b'='
            });
        }
    }
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// The server TLS configuration: the certificate chain and key from PEM files, client
/// certificates verified against `client_cas` when a client offers one, ALPN h2 and
/// http/1.1.
pub fn tls_server_config(
    cert: &std::path::Path,
    key: &std::path::Path,
    client_cas: Option<&std::path::Path>,
) -> anyhow::Result<rustls::ServerConfig> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let read =
        |p: &std::path::Path| std::fs::read(p).map_err(|e| anyhow::anyhow!("{}: {e}", p.display()));
    let chain = CertificateDer::pem_slice_iter(&read(cert)?)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| anyhow::anyhow!("{}: {e}", cert.display()))?;
    let key_der = PrivateKeyDer::from_pem_slice(&read(key)?)
        .map_err(|e| anyhow::anyhow!("{}: {e}", key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?;
    let builder = match client_cas {
        None => builder.with_no_client_auth(),
        Some(cas) => {
            let mut roots = rustls::RootCertStore::empty();
            for c in CertificateDer::pem_slice_iter(&read(cas)?) {
                roots.add(c.map_err(|e| anyhow::anyhow!("{}: {e}", cas.display()))?)?;
            }
            let verifier =
                rustls::server::WebPkiClientVerifier::builder_with_provider(roots.into(), provider)
                    .allow_unauthenticated()
                    .build()?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder.with_single_cert(chain, key_der)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// Shared state of one echo process.
struct State {
    config: EchoConfig,
    /// Failed attempts so far per retry uuid.
    retries: Mutex<HashMap<String, u32>>,
}

/// Runs the echo servers (HTTP/1.1, h2c, and HTTPS when configured) until the process
/// is killed.
pub async fn run(config: EchoConfig) -> anyhow::Result<()> {
    let http = TcpListener::bind(SocketAddr::new(config.bind, config.http_port)).await?;
    let h2c = TcpListener::bind(SocketAddr::new(config.bind, config.h2c_port)).await?;
    let https = match &config.tls {
        None => None,
        Some((cert, key)) => {
            let tls = tls_server_config(cert, key, config.client_cas.as_deref())?;
            let listener =
                TcpListener::bind(SocketAddr::new(config.bind, config.https_port)).await?;
            Some((listener, tokio_rustls::TlsAcceptor::from(Arc::new(tls))))
        }
    };
    let state = Arc::new(State {
        config,
        retries: Mutex::new(HashMap::new()),
    });
    let first = tokio::spawn(accept_loop(http, state.clone(), false));
    let second = tokio::spawn(accept_loop(h2c, state.clone(), true));
    let third = tokio::spawn(async move {
        match https {
            Some((listener, acceptor)) => tls_accept_loop(listener, acceptor, state).await,
            None => std::future::pending().await,
        }
    });
    tokio::select! {
        r = first => r??,
        r = second => r??,
        r = third => r??,
    }
    Ok(())
}

/// Serves HTTPS: HTTP/1.1 or HTTP/2 (by ALPN) over TLS, each answer carrying the
/// connection's [`TlsInfo`].
async fn tls_accept_loop(
    listener: TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
    state: Arc<State>,
) -> anyhow::Result<()> {
    loop {
        let (stream, remote) = listener.accept().await?;
        let state = state.clone();
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            let Ok(tls) = acceptor.accept(stream).await else {
                return;
            };
            let info = Arc::new(TlsInfo::of(tls.get_ref().1));
            let io = hyper_util::rt::TokioIo::new(tls);
            let service = hyper::service::service_fn(move |req| {
                let state = state.clone();
                let info = info.clone();
                async move { handle(req, remote, &state, Conn::Tls(&info), None).await }
            });
            let builder =
                hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new());
            let _ = builder.serve_connection_with_upgrades(io, service).await;
        });
    }
}

/// The listener a request came in on.
#[derive(Clone, Copy)]
enum Conn<'a> {
    Http,
    H2c,
    Tls(&'a TlsInfo),
}

async fn accept_loop(listener: TcpListener, state: Arc<State>, h2c: bool) -> anyhow::Result<()> {
    loop {
        let (stream, remote) = listener.accept().await?;
        let state = state.clone();
        tokio::spawn(async move {
            // A second handle on the socket, so the retry simulator can set SO_LINGER 0
            // before the connection is dropped (a TCP reset instead of a response).
            let socket = {
                use std::os::fd::AsFd;
                stream
                    .as_fd()
                    .try_clone_to_owned()
                    .ok()
                    .map(|fd| Arc::new(socket2::Socket::from(fd)))
            };
            let io = hyper_util::rt::TokioIo::new(stream);
            let service = hyper::service::service_fn(move |req| {
                let state = state.clone();
                let socket = socket.clone();
                let conn = if h2c { Conn::H2c } else { Conn::Http };
                async move { handle(req, remote, &state, conn, socket.as_deref()).await }
            });
            if h2c {
                let builder = hyper_util::server::conn::auto::Builder::new(
                    hyper_util::rt::TokioExecutor::new(),
                );
                let _ = builder.serve_connection_with_upgrades(io, service).await;
            } else {
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(io, service)
                    .with_upgrades()
                    .await;
            }
        });
    }
}

/// Why a request gets no HTTP answer: the connection is reset.
#[derive(Debug)]
struct Reset;

impl std::fmt::Display for Reset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection reset by the retry simulator")
    }
}

impl std::error::Error for Reset {}

type Answer = Result<Response<Full<Bytes>>, Reset>;

async fn handle(
    req: Request<Incoming>,
    remote: SocketAddr,
    state: &State,
    conn: Conn<'_>,
    socket: Option<&socket2::Socket>,
) -> Answer {
    if matches!(conn, Conn::H2c) && req.version() != Version::HTTP_2 {
        return Ok(text(StatusCode::BAD_REQUEST, "Expected h2c request"));
    }
    let raw_uri = raw_request_uri(&req);
    let route = collapse_slashes(req.uri().path());
    if route == "/health" {
        return Ok(text(StatusCode::OK, "OK"));
    }
    if route.starts_with("/status/") {
        return Ok(status_code(&raw_uri));
    }
    if route == "/ws" && is_websocket(&req) {
        return Ok(crate::websocket::accept(req));
    }
    let tls = match conn {
        Conn::Tls(info) => Some(info),
        _ => None,
    };
    if route.starts_with("/retry/") {
        return retry(req, remote, state, socket, tls).await;
    }
    Ok(echo(req, remote, &state.config, tls).await)
}

/// `/status/NNN`: that status, when the request-URI is exactly `/status/` and 3 digits.
fn status_code(raw_uri: &str) -> Response<Full<Bytes>> {
    let code = raw_uri
        .strip_prefix("/status/")
        .filter(|c| c.len() == 3 && c.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|c| c.parse::<u16>().ok())
        .and_then(|c| StatusCode::from_u16(c).ok());
    match code {
        Some(code) => text(code, ""),
        None => text(StatusCode::BAD_REQUEST, "invalid status code"),
    }
}

/// The retry simulator: fails the first `succeedAfter` attempts of each `uuid` with
/// `responseCode` (or a TCP reset when there is none), then echoes.
async fn retry(
    req: Request<Incoming>,
    remote: SocketAddr,
    state: &State,
    socket: Option<&socket2::Socket>,
    tls: Option<&TlsInfo>,
) -> Answer {
    let query = query_pairs(req.uri().query().unwrap_or(""));
    let get = |k: &str| query.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let (Some(uuid), Some(succeed_after)) = (get("uuid"), get("succeedAfter")) else {
        return Ok(text(
            StatusCode::BAD_REQUEST,
            "uuid and succeedAfter query parameters are required",
        ));
    };
    let Ok(succeed_after) = succeed_after.parse::<u32>() else {
        return Ok(text(
            StatusCode::BAD_REQUEST,
            "succeedAfter is not a number",
        ));
    };
    let fail = {
        let mut retries = state.retries.lock().unwrap_or_else(|e| e.into_inner());
        let count = retries.entry(uuid).or_insert(0);
        if *count < succeed_after {
            *count += 1;
            true
        } else {
            false
        }
    };
    if !fail {
        return Ok(echo(req, remote, &state.config, tls).await);
    }
    if let Some(delay) = get("delayRetry").and_then(|d| parse_go_duration(&d)) {
        tokio::time::sleep(delay).await;
    }
    match get("responseCode")
        .and_then(|c| c.parse::<u16>().ok())
        .and_then(|c| StatusCode::from_u16(c).ok())
    {
        Some(code) => Ok(text(code, "")),
        None => {
            if let Some(socket) = socket {
                let _ = socket.set_linger(Some(Duration::ZERO));
            }
            Err(Reset)
        }
    }
}

/// The echo handler.
async fn echo(
    req: Request<Incoming>,
    remote: SocketAddr,
    config: &EchoConfig,
    tls: Option<&TlsInfo>,
) -> Response<Full<Bytes>> {
    let raw_uri = raw_request_uri(&req);
    let query = query_pairs(req.uri().query().unwrap_or(""));
    if let Some((_, delay)) = query.iter().find(|(k, _)| k == "delay") {
        match parse_go_duration(delay) {
            Some(d) => tokio::time::sleep(d).await,
            None => {
                let body = serde_json::json!({ "message": format!("invalid delay {delay:?}") });
                return json(StatusCode::INTERNAL_SERVER_ERROR, body.to_string());
            }
        }
    }
    println!("Echoing back request made to {raw_uri} to client ({remote})");

    let host = req
        .headers()
        .get(hyper::header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_string)
        .or_else(|| req.uri().authority().map(|a| a.to_string()))
        .unwrap_or_default();
    let mut headers: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, value) in req.headers() {
        if name == hyper::header::HOST {
            continue;
        }
        headers
            .entry(canonical_header_name(name.as_str()))
            .or_default()
            .push(String::from_utf8_lossy(value.as_bytes()).into_owned());
    }
    let proto = match req.version() {
        Version::HTTP_2 => "HTTP/2.0",
        Version::HTTP_10 => "HTTP/1.0",
        _ => "HTTP/1.1",
    };
    let echo = Echo {
        path: raw_uri,
        host,
        method: req.method().to_string(),
        proto,
        headers,
        namespace: &config.namespace,
        ingress: &config.ingress,
        service: &config.service,
        pod: &config.pod,
        http_port: config.http_port.to_string(),
        tls,
    };
    let mut response = json(StatusCode::OK, pretty(&echo));
    for value in req.headers().get_all("x-echo-set-header") {
        for item in String::from_utf8_lossy(value.as_bytes()).split(',') {
            let Some((name, value)) = item.trim().split_once(':') else {
                continue;
            };
            let (Ok(name), value) = (HeaderName::from_bytes(name.trim().as_bytes()), value.trim())
            else {
                continue;
            };
            let combined = match response.headers().get(&name) {
                Some(existing) => {
                    format!("{},{value}", String::from_utf8_lossy(existing.as_bytes()))
                }
                None => value.to_string(),
            };
            if let Ok(v) = HeaderValue::from_str(&combined) {
                response.headers_mut().insert(name, v);
            }
        }
    }
    response
}

fn pretty<T: Serialize>(value: &T) -> String {
    let mut out = Vec::new();
    let formatter = serde_json::ser::PrettyFormatter::with_indent(b" ");
    let mut ser = serde_json::Serializer::with_formatter(&mut out, formatter);
    // Serializing plain strings and maps cannot fail.
    let _ = value.serialize(&mut ser);
    String::from_utf8(out).unwrap_or_default()
}

fn json(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert("content-type", HeaderValue::from_static("application/json"));
    headers.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    response
}

fn text(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        "content-type",
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

fn is_websocket<B>(req: &Request<B>) -> bool {
    req.headers()
        .get(hyper::header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
}

/// The request-URI as received: path and query, undecoded.
fn raw_request_uri<B>(req: &Request<B>) -> String {
    req.uri()
        .path_and_query()
        .map(|pq| pq.as_str().to_string())
        .unwrap_or_else(|| "/".to_string())
}

/// The path with runs of `/` collapsed, which is what echo-basic routes on.
fn collapse_slashes(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for c in path.chars() {
        if c == '/' && out.ends_with('/') {
            continue;
        }
        out.push(c);
    }
    out
}

/// Query parameters, percent-decoded (`+` as space).
pub fn query_pairs(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                match std::str::from_utf8(&bytes[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A header name in Go's canonical form (`x-header-set` → `X-Header-Set`); names with
/// characters Go would not canonicalise are returned as they are.
pub fn canonical_header_name(name: &str) -> String {
    if name
        .bytes()
        .any(|b| b == b' ' || b == b'_' || !b.is_ascii_graphic())
    {
        return name.to_string();
    }
    let mut upper = true;
    name.chars()
        .map(|c| {
            let out = if upper {
                c.to_ascii_uppercase()
            } else {
                c.to_ascii_lowercase()
            };
            upper = c == '-';
            out
        })
        .collect()
}

/// A Go duration (`1s`, `300ms`, `1.5s`, `2m`, `100us`); `None` when it does not parse.
pub fn parse_go_duration(s: &str) -> Option<Duration> {
    if s == "0" {
        return Some(Duration::ZERO);
    }
    let mut rest = s;
    let mut total = 0f64;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let number: f64 = rest[..num_len].parse().ok()?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total += number * scale;
    }
    Some(Duration::from_secs_f64(total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_names_follow_go() {
        assert_eq!(canonical_header_name("x-header-set"), "X-Header-Set");
        assert_eq!(canonical_header_name("BACKEND"), "Backend");
        assert_eq!(canonical_header_name("content-type"), "Content-Type");
    }

    #[test]
    fn go_durations_parse() {
        assert_eq!(parse_go_duration("1s"), Some(Duration::from_secs(1)));
        assert_eq!(parse_go_duration("300ms"), Some(Duration::from_millis(300)));
        assert_eq!(parse_go_duration("1m30s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_go_duration("soon"), None);
    }

    #[test]
    fn pem_wraps_base64_at_64_columns() {
        assert_eq!(
            pem("X", b"Man"),
            "-----BEGIN X-----\nTWFu\n-----END X-----\n"
        );
        assert_eq!(
            pem("X", b"Ma"),
            "-----BEGIN X-----\nTWE=\n-----END X-----\n"
        );
        assert_eq!(pem("X", b"M"), "-----BEGIN X-----\nTQ==\n-----END X-----\n");
        let long = pem("X", &[0u8; 60]);
        let lines: Vec<&str> = long.lines().collect();
        assert_eq!(lines.len(), 4);
        assert_eq!(lines[1].len(), 64);
        assert_eq!(lines[2], "A".repeat(16));
    }

    #[test]
    fn query_is_decoded() {
        assert_eq!(
            query_pairs("a=b%20c&d"),
            vec![("a".into(), "b c".into()), ("d".into(), String::new())]
        );
    }
}
