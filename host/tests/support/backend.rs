//! Tiny HTTP/1.1 backends for end-to-end tests: one answers every request with a fixed
//! body, the other echoes the request it got.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// Starts a backend on a free loopback port answering every request with `body`; returns
/// the port. The backend lives as long as the test process.
pub fn start_backend(body: &'static str) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind backend");
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            std::thread::spawn(move || {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 1024];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    match conn.read(&mut chunk) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                let _ = write!(
                    conn,
                    "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
            });
        }
    });
    port
}

/// Starts a backend that answers `200` with the request it received (request line and
/// headers, as sent) as the body; a path containing `slow` is answered after 2 s, and
/// every other request whose path contains `flaky` gets `503`. Returns the port.
#[allow(dead_code)]
pub fn start_echo_backend() -> u16 {
    static FLAKY: AtomicUsize = AtomicUsize::new(0);
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind backend");
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            std::thread::spawn(move || {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 1024];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    match conn.read(&mut chunk) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                let head = String::from_utf8_lossy(&buf).into_owned();
                let path = head.split(' ').nth(1).unwrap_or_default().to_string();
                if path.contains("slow") {
                    std::thread::sleep(Duration::from_secs(2));
                }
                let status = if path.contains("flaky")
                    && FLAKY.fetch_add(1, Ordering::SeqCst).is_multiple_of(2)
                {
                    "503 Service Unavailable"
                } else {
                    "200 OK"
                };
                let _ = write!(
                    conn,
                    "HTTP/1.1 {status}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{head}",
                    head.len()
                );
            });
        }
    });
    port
}
