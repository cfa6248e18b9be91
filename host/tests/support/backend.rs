//! Tiny HTTP/1.1 backends for end-to-end tests: one answers every request with a fixed
//! body, the other echoes the request it got.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// Serves every connection on a free loopback port on its own thread: `answer` gets the
/// request head (request line and headers) and returns the whole response. Returns the
/// port; the backend lives as long as the test process.
fn serve(answer: impl Fn(&str) -> String + Send + Sync + 'static) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind backend");
    let port = listener.local_addr().unwrap().port();
    let answer = Arc::new(answer);
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let answer = answer.clone();
            std::thread::spawn(move || {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 1024];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    match conn.read(&mut chunk) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                let _ = conn.write_all(answer(&String::from_utf8_lossy(&buf)).as_bytes());
            });
        }
    });
    port
}

/// A response with `status` (`"200 OK"`) and `body` that closes the connection.
fn response(status: &str, body: &str) -> String {
    format!(
        "HTTP/1.1 {status}\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
}

/// Starts a backend on a free loopback port answering every request with `body`; returns
/// the port. The backend lives as long as the test process.
#[allow(dead_code)]
pub fn start_backend(body: &'static str) -> u16 {
    serve(move |_| response("200 OK", body))
}

/// Starts a backend that answers `200` with the request it received (request line and
/// headers, as sent) as the body; a path containing `slow` is answered after 2 s, and
/// every other request whose path contains `flaky` gets `503`. Returns the port.
#[allow(dead_code)]
pub fn start_echo_backend() -> u16 {
    let flaky = AtomicUsize::new(0);
    serve(move |head| {
        let path = head.split(' ').nth(1).unwrap_or_default();
        if path.contains("slow") {
            std::thread::sleep(Duration::from_secs(2));
        }
        if path.contains("flaky") && flaky.fetch_add(1, Ordering::SeqCst).is_multiple_of(2) {
            response("503 Service Unavailable", head)
        } else {
            response("200 OK", head)
        }
    })
}

/// Starts a tiny authorization service: `200` when the request carries `x-allow: yes`,
/// `403` otherwise. Returns the port.
#[allow(dead_code)]
pub fn start_auth_backend() -> u16 {
    serve(|head| {
        if head.to_ascii_lowercase().contains("\r\nx-allow: yes\r\n") {
            response("200 OK", "allowed")
        } else {
            response("403 Forbidden", "denied")
        }
    })
}

/// Starts a backend that answers `200` and remembers each request line it got (in the
/// returned list). Returns the port and the list.
#[allow(dead_code)]
pub fn start_recording_backend() -> (u16, Arc<std::sync::Mutex<Vec<String>>>) {
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = seen.clone();
    let port = serve(move |head| {
        let line = head.lines().next().unwrap_or_default().to_string();
        log.lock().unwrap().push(line);
        response("200 OK", "recorded")
    });
    (port, seen)
}
