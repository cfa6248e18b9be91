//! The echo backend the conformance tests route to: a Rust re-implementation of the
//! suite's `echo-basic` HTTP mode (tests/conformance/VERSION names the reference).
//!
//! Every request not claimed by a special path is answered with a JSON description of
//! what arrived (path, Host, method, protocol, headers) and of the "pod" that answered
//! (namespace, pod name, service), so a test can tell which backend served it and what
//! the proxy changed on the way.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
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
}

/// Shared state of one echo process.
struct State {
    config: EchoConfig,
    /// Failed attempts so far per retry uuid.
    retries: Mutex<HashMap<String, u32>>,
}

/// Runs the echo servers (HTTP/1.1 and h2c) until the process is killed.
pub async fn run(config: EchoConfig) -> anyhow::Result<()> {
    let http = TcpListener::bind(SocketAddr::new(config.bind, config.http_port)).await?;
    let h2c = TcpListener::bind(SocketAddr::new(config.bind, config.h2c_port)).await?;
    let state = Arc::new(State {
        config,
        retries: Mutex::new(HashMap::new()),
    });
    let first = tokio::spawn(accept_loop(http, state.clone(), false));
    let second = tokio::spawn(accept_loop(h2c, state, true));
    tokio::select! {
        r = first => r??,
        r = second => r??,
    }
    Ok(())
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
                async move { handle(req, remote, &state, h2c, socket.as_deref()).await }
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
    h2c_port: bool,
    socket: Option<&socket2::Socket>,
) -> Answer {
    if h2c_port && req.version() != Version::HTTP_2 {
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
    if route.starts_with("/retry/") {
        return retry(req, remote, state, socket).await;
    }
    Ok(echo(req, remote, &state.config).await)
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
        return Ok(echo(req, remote, &state.config).await);
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
    fn query_is_decoded() {
        assert_eq!(
            query_pairs("a=b%20c&d"),
            vec![("a".into(), "b c".into()), ("d".into(), String::new())]
        );
    }
}
