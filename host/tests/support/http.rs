//! Plain HTTP/1.1 to a local port (Envoy's listeners, `weir serve`'s admin address), for
//! end-to-end tests: one request per connection, the status code and body back.

use std::io::{Read, Write};
use std::net::{IpAddr, TcpStream};
use std::time::Duration;

/// 127.0.0.1.
pub const LOOPBACK: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

/// `GET path` on 127.0.0.1:`port` with host `example.com`.
pub fn get(port: u16, path: &str) -> Result<(u16, String), String> {
    request(LOOPBACK, port, "example.com", path)
}

/// `GET path` with `host` on `ip`:`port`: the status code and body, or why it failed.
pub fn request(ip: IpAddr, port: u16, host: &str, path: &str) -> Result<(u16, String), String> {
    parse_response(&request_raw(ip, port, host, path)?)
}

/// `GET path` with `host` on `ip`:`port`: the whole response as text (status line,
/// headers and body), or why it failed.
#[allow(dead_code)]
pub fn request_raw(ip: IpAddr, port: u16, host: &str, path: &str) -> Result<String, String> {
    request_raw_with(ip, port, host, path, "")
}

/// [`request_raw`] with extra request header lines (`"accept-encoding: gzip\r\n"`); a
/// body that is not UTF-8 (a compressed one) comes back with replacement characters.
#[allow(dead_code)]
pub fn request_raw_with(
    ip: IpAddr,
    port: u16,
    host: &str,
    path: &str,
    headers: &str,
) -> Result<String, String> {
    exchange(
        ip,
        port,
        &format!("GET {path} HTTP/1.1\r\nhost: {host}\r\nconnection: close\r\n{headers}\r\n"),
    )
}

/// Sends `request` (a whole HTTP/1.1 request, which should ask to close the connection)
/// to `ip`:`port`; the whole response as text, non-UTF-8 bytes replaced.
#[allow(dead_code)]
pub fn exchange(ip: IpAddr, port: u16, request: &str) -> Result<String, String> {
    let mut conn = TcpStream::connect((ip, port)).map_err(|e| e.to_string())?;
    conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    conn.write_all(request.as_bytes())
        .map_err(|e| e.to_string())?;
    let mut response = Vec::new();
    conn.read_to_end(&mut response).map_err(|e| e.to_string())?;
    Ok(String::from_utf8_lossy(&response).into_owned())
}

/// The status code and body of an HTTP/1.1 response (read to its end).
pub fn parse_response(response: &str) -> Result<(u16, String), String> {
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("not HTTP: {response:?}"))?;
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok((status, body))
}

/// `method path` with host `example.com`, `headers` (lines ending in CRLF) and `body`
/// on 127.0.0.1:`port`: the status and the lower-cased head.
#[allow(dead_code)]
pub fn send(port: u16, method: &str, path: &str, headers: &str, body: &str) -> (u16, String) {
    let raw = exchange(
        LOOPBACK,
        port,
        &format!(
            "{method} {path} HTTP/1.1\r\nhost: example.com\r\nconnection: close\r\ncontent-length: {}\r\n{headers}\r\n{body}",
            body.len()
        ),
    )
    .unwrap();
    let (status, _) = parse_response(&raw).unwrap();
    let head = raw.split("\r\n\r\n").next().unwrap_or_default();
    (status, head.to_ascii_lowercase())
}
