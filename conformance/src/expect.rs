//! One conformance request and what must come back, checked with the suite's rules
//! (conformance/utils/http: CompareRoundTrip): status, then for 200/204 the echoed
//! request (path, host, method, headers), namespace and pod; response headers; the
//! redirect target.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::client::{HttpRequest, HttpResponse, send};

/// The infra namespace most backends live in.
pub const INFRA: &str = "gateway-conformance-infra";

/// A redirect target to check in `Location` (unset parts default as the suite says).
#[derive(Clone, Debug, Default)]
pub struct Redirect {
    /// Scheme (default: the request's, `http`).
    pub scheme: Option<String>,
    /// Host (unchecked when unset).
    pub host: Option<String>,
    /// Port (default: empty or the scheme's default).
    pub port: Option<String>,
    /// Path (default: the request path).
    pub path: Option<String>,
}

/// One request and its expectations.
#[derive(Clone, Debug, Default)]
pub struct Case {
    /// The Gateway (`namespace/name`) to send to.
    pub gateway: String,
    /// The Gateway port (default: the Gateway's first HTTP listener).
    pub port: Option<u16>,
    /// Method (GET when empty).
    pub method: String,
    /// Host header (default: the Gateway address).
    pub host: Option<String>,
    /// Request path and query.
    pub path: String,
    /// Request headers.
    pub headers: Vec<(String, String)>,
    /// Expected upstream path (default: the request path).
    pub up_path: Option<String>,
    /// Expected upstream Host (default: the request Host when given).
    pub up_host: Option<String>,
    /// Expected upstream headers (default: the request headers).
    pub up_headers: Option<Vec<(String, String)>>,
    /// Headers that must not reach the backend.
    pub up_absent: Vec<String>,
    /// Headers the echo is asked to set on its response (`X-Echo-Set-Header`).
    pub echo_set: Vec<(String, String)>,
    /// Acceptable statuses (default: 200).
    pub status: Vec<u16>,
    /// The backend (pod name prefix) that must answer.
    pub backend: String,
    /// The namespace the answering echo must report.
    pub namespace: String,
    /// Response headers that must be present with these (joined) values.
    pub response_headers: Vec<(String, String)>,
    /// Response headers that must be absent.
    pub response_absent: Vec<String>,
    /// Redirect target checks.
    pub redirect: Option<Redirect>,
    /// HTTPS, with the Host (without port) as SNI.
    pub https: bool,
    /// Speak cleartext HTTP/2 with prior knowledge.
    pub h2c: bool,
    /// Append a fresh `uuid=` query parameter to every attempt (the retry tests).
    pub fresh_uuid: bool,
    /// Response headers that must have one of several values (spaces ignored).
    pub response_one_of: Vec<(String, Vec<String>)>,
}

/// Starts a GET case on a path.
pub fn get(path: &str) -> Case {
    Case {
        path: path.to_string(),
        ..Default::default()
    }
}

impl Case {
    /// Sets the Host header.
    pub fn host(mut self, host: &str) -> Self {
        self.host = Some(host.to_string());
        self
    }
    /// Sets the method.
    pub fn method(mut self, method: &str) -> Self {
        self.method = method.to_string();
        self
    }
    /// Adds a request header.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }
    /// Expects this status (one of several when called again).
    pub fn status(mut self, code: u16) -> Self {
        self.status.push(code);
        self
    }
    /// Expects the answer from `backend` in `namespace`.
    pub fn to(mut self, backend: &str, namespace: &str) -> Self {
        self.backend = backend.into();
        self.namespace = namespace.into();
        self
    }
    /// Expects the answer from infra-backend-vN.
    pub fn v(self, n: u8) -> Self {
        self.to(&format!("infra-backend-v{n}"), INFRA)
    }
    /// Expects this upstream path.
    pub fn up_path(mut self, path: &str) -> Self {
        self.up_path = Some(path.into());
        self
    }
    /// Expects this upstream Host.
    pub fn up_host(mut self, host: &str) -> Self {
        self.up_host = Some(host.into());
        self
    }
    /// Expects this upstream header.
    pub fn up_header(mut self, name: &str, value: &str) -> Self {
        self.up_headers
            .get_or_insert_with(Vec::new)
            .push((name.into(), value.into()));
        self
    }
    /// Expects this header not to reach the backend.
    pub fn up_absent(mut self, name: &str) -> Self {
        self.up_absent.push(name.into());
        self
    }
    /// Asks the echo to set a response header.
    pub fn echo_set(mut self, name: &str, value: &str) -> Self {
        self.echo_set.push((name.into(), value.into()));
        self
    }
    /// Expects a response header.
    pub fn response_header(mut self, name: &str, value: &str) -> Self {
        self.response_headers.push((name.into(), value.into()));
        self
    }
    /// Expects a response header to be absent.
    pub fn response_absent(mut self, name: &str) -> Self {
        self.response_absent.push(name.into());
        self
    }
    /// Expects a redirect with this status and target.
    pub fn redirect(mut self, code: u16, target: Redirect) -> Self {
        self.status = vec![code];
        self.redirect = Some(target);
        self
    }
    /// Sends over HTTPS (SNI = Host).
    pub fn https(mut self) -> Self {
        self.https = true;
        self
    }
    /// Sends as cleartext HTTP/2 (prior knowledge).
    pub fn h2c(mut self) -> Self {
        self.h2c = true;
        self
    }
    /// Appends a fresh `uuid` to each attempt's query.
    pub fn fresh_uuid(mut self) -> Self {
        self.fresh_uuid = true;
        self
    }
    /// Expects a response header with one of these values (spaces ignored).
    pub fn response_one_of(mut self, name: &str, values: &[&str]) -> Self {
        self.response_one_of
            .push((name.into(), values.iter().map(|v| v.to_string()).collect()));
        self
    }
    /// Expects an answer from the proxy itself, not the echo (a CORS preflight).
    pub fn not_echo(mut self) -> Self {
        self.up_path = Some(String::new());
        self.namespace = String::new();
        self
    }
    /// Sends to this Gateway port.
    pub fn port(mut self, port: u16) -> Self {
        self.port = Some(port);
        self
    }

    /// A one-line description for failure messages.
    pub fn describe(&self) -> String {
        let mut s = format!(
            "{} {}{}",
            if self.method.is_empty() {
                "GET"
            } else {
                &self.method
            },
            self.host
                .as_deref()
                .map(|h| format!("//{h}"))
                .unwrap_or_default(),
            self.path
        );
        if !self.headers.is_empty() {
            let hs: Vec<String> = self
                .headers
                .iter()
                .map(|(k, v)| format!("{k}: {v}"))
                .collect();
            s.push_str(&format!(" [{}]", hs.join("; ")));
        }
        s
    }

    /// The request this case sends to a Gateway at `addr` (port 80 left out of Host).
    pub fn request(&self, addr: SocketAddr) -> HttpRequest {
        let default_port = if self.https { 443 } else { 80 };
        let default_host = if addr.port() == default_port {
            addr.ip().to_string()
        } else {
            addr.to_string()
        };
        let mut headers = self.headers.clone();
        let echo: Vec<String> = self
            .echo_set
            .iter()
            .map(|(k, v)| format!("{k}:{v}"))
            .collect();
        headers.push(("X-Echo-Set-Header".into(), echo.join(",")));
        let host = self.host.clone().unwrap_or(default_host);
        let tls_sni = self.https.then(|| {
            host.rsplit_once(':')
                .map_or(host.as_str(), |(h, _)| h)
                .to_string()
        });
        HttpRequest {
            method: self.method.clone(),
            host,
            path: self.path.clone(),
            headers,
            tls_sni,
        }
    }

    /// Checks one response against the expectations; `Err` says what differs.
    pub fn check(&self, res: &HttpResponse) -> Result<(), String> {
        let wanted = if self.status.is_empty() {
            vec![200]
        } else {
            self.status.clone()
        };
        let timeouts = |c: u16| c == 408 || c == 504;
        let status_ok = wanted.contains(&res.status)
            || (timeouts(res.status) && wanted.iter().any(|c| timeouts(*c)));
        if !status_ok {
            return Err(format!("status {} (wanted {wanted:?})", res.status));
        }
        if res.status == 200 || res.status == 204 {
            self.check_echo(res)?;
            self.check_response_headers(res)?;
        }
        if matches!(res.status, 301 | 302 | 303 | 307 | 308)
            && let Some(redirect) = &self.redirect
        {
            self.check_redirect(res, redirect)?;
        }
        Ok(())
    }

    fn check_echo(&self, res: &HttpResponse) -> Result<(), String> {
        let echo: Value = if res.header("content-type").as_deref() == Some("application/json") {
            serde_json::from_slice(&res.body).map_err(|e| format!("echo JSON: {e}"))?
        } else {
            Value::Null
        };
        let field = |k: &str| {
            echo.get(k)
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string()
        };
        let path = self.up_path.as_deref().unwrap_or(&self.path);
        if field("path") != path {
            return Err(format!(
                "upstream path {:?} (wanted {path:?})",
                field("path")
            ));
        }
        // Without an explicit expected request, the request itself is expected (its
        // Host and headers too); with one, only what it lists.
        let explicit = self.up_path.is_some()
            || self.up_host.is_some()
            || self.up_headers.is_some()
            || !self.up_absent.is_empty();
        let host = if explicit {
            self.up_host.as_ref()
        } else {
            self.host.as_ref()
        };
        if let Some(host) = host
            && !echo.is_null()
            && &field("host") != host
        {
            return Err(format!(
                "upstream host {:?} (wanted {host:?})",
                field("host")
            ));
        }
        let method = if self.method.is_empty() {
            "GET"
        } else {
            &self.method
        };
        if !echo.is_null() && field("method") != method {
            return Err(format!(
                "upstream method {:?} (wanted {method})",
                field("method")
            ));
        }
        if field("namespace") != self.namespace {
            return Err(format!(
                "answered from namespace {:?} (wanted {:?})",
                field("namespace"),
                self.namespace
            ));
        }
        if !self.backend.is_empty() && !field("pod").starts_with(&self.backend) {
            return Err(format!(
                "answered by pod {:?} (wanted {})",
                field("pod"),
                self.backend
            ));
        }
        let received = |name: &str| -> Option<String> {
            let headers = echo.get("headers")?.as_object()?;
            let (_, values) = headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name))?;
            let values: Vec<&str> = values
                .as_array()?
                .iter()
                .filter_map(Value::as_str)
                .collect();
            Some(values.join(","))
        };
        let no_headers = Vec::new();
        let expected_headers = match &self.up_headers {
            Some(h) => h,
            None if explicit => &no_headers,
            None => &self.headers,
        };
        for (name, value) in expected_headers {
            match received(name) {
                Some(got) if &got == value => {}
                Some(got) => {
                    return Err(format!(
                        "upstream header {name}: {got:?} (wanted {value:?})"
                    ));
                }
                None => return Err(format!("upstream header {name} missing (wanted {value:?})")),
            }
        }
        for name in &self.up_absent {
            if let Some(got) = received(name) {
                return Err(format!("upstream header {name}: {got:?} should be absent"));
            }
        }
        Ok(())
    }

    fn check_response_headers(&self, res: &HttpResponse) -> Result<(), String> {
        for (name, value) in &self.response_headers {
            match res.header(name) {
                Some(got) if &got == value => {}
                got => {
                    return Err(format!(
                        "response header {name}: {got:?} (wanted {value:?})"
                    ));
                }
            }
        }
        let squash = |v: &str| v.chars().filter(|c| !c.is_whitespace()).collect::<String>();
        for (name, values) in &self.response_one_of {
            match res.header(name) {
                Some(got) if values.iter().any(|v| squash(v) == squash(&got)) => {}
                got => {
                    return Err(format!(
                        "response header {name}: {got:?} (wanted one of {values:?})"
                    ));
                }
            }
        }
        for name in &self.response_absent {
            if let Some(got) = res.header(name) {
                return Err(format!("response header {name}: {got:?} should be absent"));
            }
        }
        Ok(())
    }

    fn check_redirect(&self, res: &HttpResponse, want: &Redirect) -> Result<(), String> {
        let location = res
            .header("location")
            .ok_or_else(|| "redirect without Location".to_string())?;
        let (scheme, rest) = location
            .split_once("://")
            .ok_or_else(|| format!("Location {location:?} is not absolute"))?;
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        let path = path.split('?').next().unwrap_or("");
        let (host, port) = authority.rsplit_once(':').unwrap_or((authority, ""));
        let want_scheme =
            want.scheme
                .as_deref()
                .unwrap_or(if self.https { "https" } else { "http" });
        if scheme != want_scheme {
            return Err(format!(
                "Location {location:?}: scheme (wanted {want_scheme})"
            ));
        }
        if let Some(h) = &want.host
            && host != h
        {
            return Err(format!("Location {location:?}: host (wanted {h})"));
        }
        let default_port = if want_scheme == "https" { "443" } else { "80" };
        match &want.port {
            Some(p) if port != p => {
                return Err(format!("Location {location:?}: port (wanted {p})"));
            }
            None if !port.is_empty() && port != default_port => {
                return Err(format!(
                    "Location {location:?}: port (wanted none or {default_port})"
                ));
            }
            _ => {}
        }
        let want_path = want.path.as_deref().unwrap_or(&self.path);
        let want_path = want_path.split('?').next().unwrap_or("");
        if path != want_path {
            return Err(format!("Location {location:?}: path (wanted {want_path})"));
        }
        Ok(())
    }
}

/// How long a case may take to converge, and how often it is polled.
#[derive(Clone, Copy, Debug)]
pub struct Timing {
    /// The suite's MaxTimeToConsistency (30 s).
    pub max: Duration,
    /// The poll interval (100 ms).
    pub interval: Duration,
    /// Consecutive matching answers required (3).
    pub threshold: u32,
}

impl Default for Timing {
    fn default() -> Self {
        Self {
            max: Duration::from_secs(30),
            interval: Duration::from_millis(100),
            threshold: 3,
        }
    }
}

/// Polls `case` against `addr` until `threshold` consecutive answers match, or fails
/// with the last mismatch once `max` has passed.
pub fn eventually(addr: SocketAddr, case: &Case, timing: Timing) -> Result<(), String> {
    static UUIDS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let start = Instant::now();
    let mut streak = 0;
    loop {
        let mut attempt = case.clone();
        if case.fresh_uuid {
            let n = UUIDS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos());
            let sep = if case.path.contains('?') { '&' } else { '?' };
            attempt.path = format!("{}{sep}uuid={nanos:x}-{n}", case.path);
        }
        let request = attempt.request(addr);
        let sent = if case.h2c {
            crate::client::send_h2c(addr, &request)
        } else {
            send(addr, &request)
        };
        let outcome = sent.and_then(|res| attempt.check(&res));
        match outcome {
            Ok(()) => {
                streak += 1;
                if streak >= timing.threshold {
                    return Ok(());
                }
            }
            Err(why) => {
                streak = 0;
                if start.elapsed() > timing.max {
                    return Err(format!("{}: {why}", case.describe()));
                }
            }
        }
        std::thread::sleep(timing.interval);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn echo(pod: &str, path: &str, headers: serde_json::Value) -> HttpResponse {
        let body = serde_json::json!({
            "path": path, "host": "example.com", "method": "GET", "proto": "HTTP/1.1",
            "headers": headers, "namespace": INFRA, "pod": pod,
        });
        HttpResponse {
            status: 200,
            headers: vec![("content-type".into(), "application/json".into())],
            body: body.to_string().into_bytes(),
        }
    }

    #[test]
    fn the_right_backend_passes_and_another_fails() {
        let res = echo("infra-backend-v1-weir-0", "/", serde_json::json!({}));
        assert!(get("/").v(1).check(&res).is_ok());
        let err = get("/").v(2).check(&res).unwrap_err();
        assert!(err.contains("infra-backend-v1-weir-0"), "{err}");
    }

    #[test]
    fn status_path_and_headers_are_compared() {
        let res = echo(
            "infra-backend-v1-weir-0",
            "/x",
            serde_json::json!({"X-A": ["1", "2"]}),
        );
        assert!(
            get("/")
                .v(1)
                .check(&res)
                .unwrap_err()
                .contains("upstream path")
        );
        assert!(
            get("/x")
                .status(404)
                .check(&res)
                .unwrap_err()
                .contains("status 200")
        );
        assert!(get("/x").header("x-a", "1,2").v(1).check(&res).is_ok());
        assert!(get("/x").header("x-a", "1").v(1).check(&res).is_err());
        assert!(get("/x").up_absent("X-A").v(1).check(&res).is_err());
        // A 200 that is not the echo (no JSON) fails a row expecting a backend.
        let plain = HttpResponse {
            status: 200,
            ..Default::default()
        };
        assert!(get("/x").v(1).check(&plain).is_err());
    }

    #[test]
    fn redirects_check_location() {
        let res = HttpResponse {
            status: 302,
            headers: vec![("location".into(), "http://example.org:8080/a".into())],
            body: Vec::new(),
        };
        let to = |port: Option<&str>| Redirect {
            host: Some("example.org".into()),
            port: port.map(str::to_string),
            ..Default::default()
        };
        assert!(
            get("/a")
                .redirect(302, to(Some("8080")))
                .check(&res)
                .is_ok()
        );
        assert!(get("/a").redirect(302, to(None)).check(&res).is_err());
        assert!(
            get("/b")
                .redirect(302, to(Some("8080")))
                .check(&res)
                .is_err()
        );
        assert!(
            get("/a")
                .redirect(301, to(Some("8080")))
                .check(&res)
                .is_err()
        );
    }
}
