//! Runs `weir serve` and `weir bootstrap` as a user does, for end-to-end tests with the
//! real Envoy, and speaks plain HTTP/1.1 to what Envoy serves. Every wait polls against
//! a deadline (never a fixed sleep), so the tests hold on a loaded machine.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::envoy::{self, RunningEnvoy};
use super::http::{LOOPBACK, get, request};

/// The `weir` binary under test.
pub const WEIR: &str = env!("CARGO_BIN_EXE_weir");

/// How long any one expectation may take to come true.
pub const DEADLINE: Duration = Duration::from_secs(60);

/// A free TCP port on loopback (free when asked; tests bind it soon after).
///
/// Ports are handed out in turn from 20000–31999, below the kernel's ephemeral range
/// (32768–60999 by default), each at most once per test process: a port taken with
/// `bind(0)` and released could be handed out again, to a parallel test's next
/// `bind(0)` or Envoy, before its first taker binds it. A process starts at an offset
/// from its pid; should the whole range be busy, the kernel picks.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    const LOW: u32 = 20_000;
    const SPAN: u32 = 12_000;
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let start = std::process::id() % SPAN;
    for _ in 0..SPAN {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = u16::try_from(LOW + (start + n) % SPAN).unwrap_or_default();
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn cache_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("serve-cache")
}

/// `weir bootstrap ARGS` as JSON.
pub fn bootstrap(args: &[&str]) -> serde_json::Value {
    let out = Command::new(WEIR)
        .arg("bootstrap")
        .args(args)
        .env("XDG_CACHE_HOME", cache_dir())
        .output()
        .expect("weir runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("weir bootstrap prints JSON")
}

/// A `weir serve` process on a directory of manifests, with its own ports; killed when
/// dropped.
pub struct Weir {
    /// The watched directory.
    pub manifests: PathBuf,
    /// The xDS port.
    pub xds_port: u16,
    /// The admin port.
    pub admin_port: u16,
    plugin_dir: Option<PathBuf>,
    log: PathBuf,
    child: Option<Child>,
    _dir: tempfile::TempDir,
}

impl Weir {
    /// Starts `weir serve` on an empty directory and waits until it is ready.
    pub fn start(plugin_dir: Option<&Path>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let manifests = dir.path().join("manifests");
        std::fs::create_dir(&manifests).unwrap();
        let mut weir = Self {
            manifests,
            xds_port: free_port(),
            admin_port: free_port(),
            plugin_dir: plugin_dir.map(Path::to_path_buf),
            log: dir.path().join("weir.log"),
            child: None,
            _dir: dir,
        };
        weir.spawn();
        weir
    }

    /// (Re)starts the process on the same ports and directory and waits until ready.
    pub fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let mut command = Command::new(WEIR);
        command
            .args([
                "serve",
                &format!("--source=file:{}", self.manifests.display()),
                &format!("--xds-addr=127.0.0.1:{}", self.xds_port),
                &format!("--admin-addr=127.0.0.1:{}", self.admin_port),
            ])
            .env("XDG_CACHE_HOME", cache_dir())
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        if let Some(dir) = &self.plugin_dir {
            command.arg(format!("--plugin-dir={}", dir.display()));
        }
        self.child = Some(command.spawn().expect("weir serve starts"));
        self.wait_ready();
    }

    /// SIGKILL: no drain, no goodbye to the proxies.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }

    /// The process's log so far (every run of it).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Writes one manifest file (through a rename, as editors do).
    pub fn write(&self, name: &str, yaml: &str) {
        let tmp = self.manifests.with_extension("tmp");
        std::fs::write(&tmp, yaml).unwrap();
        std::fs::rename(&tmp, self.manifests.join(name)).unwrap();
    }

    /// The xDS address, as `weir bootstrap --xds` takes it.
    pub fn xds(&self) -> String {
        format!("127.0.0.1:{}", self.xds_port)
    }

    /// Starts an Envoy for `gateway` from `weir bootstrap` (with `extra` arguments).
    pub fn envoy(&self, gateway: &str, extra: &[&str]) -> RunningEnvoy {
        let admin = free_port().to_string();
        let xds = self.xds();
        let mut args = vec!["--gateway", gateway, "--xds", &xds, "--admin-port", &admin];
        args.extend_from_slice(extra);
        envoy::start_envoy(&bootstrap(&args))
    }

    fn wait_ready(&mut self) {
        let started = Instant::now();
        let mut last = Err("no request yet".to_string());
        while started.elapsed() < DEADLINE {
            if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                panic!("weir serve exited ({status}):\n{}", self.log());
            }
            last = get(self.admin_port, "/readyz");
            if matches!(last, Ok((200, _))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "weir serve never became ready (last: {last:?}):\n{}",
            self.log()
        );
    }

    /// The `Accepted` condition (status, message) of object `key` (`Kind/ns/name`) in
    /// `/debug/status`.
    pub fn accepted(&self, key: &str) -> Result<(String, String), String> {
        let (code, body) = get(self.admin_port, "/debug/status")?;
        let status: serde_json::Value =
            serde_json::from_str(&body).map_err(|e| format!("{code} {e}: {body}"))?;
        let c = status[key]["conditions"]
            .as_array()
            .and_then(|cs| cs.iter().find(|c| c["type"] == "Accepted").cloned())
            .ok_or(format!("no Accepted condition for {key} in {body}"))?;
        Ok((
            c["status"].as_str().unwrap_or_default().to_string(),
            c["message"].as_str().unwrap_or_default().to_string(),
        ))
    }

    /// Waits until object `key` (`Kind/ns/name`) is `Accepted=False`; its message.
    pub fn until_rejected(&self, envoy: &mut RunningEnvoy, key: &str) -> String {
        self.until(
            &format!("{key} is rejected in status"),
            envoy,
            || match self.accepted(key)? {
                (s, m) if s == "False" => Ok(m),
                other => Err(format!("{other:?}")),
            },
        )
    }

    /// Polls `check` until it returns `Some`, failing with both logs at the deadline.
    pub fn until<T>(
        &self,
        what: &str,
        envoy: &mut RunningEnvoy,
        mut check: impl FnMut() -> Result<T, String>,
    ) -> T {
        let started = Instant::now();
        let mut last = String::from("not tried");
        while started.elapsed() < DEADLINE {
            assert!(envoy.is_running(), "Envoy exited:\n{}", envoy.log());
            match check() {
                Ok(value) => return value,
                Err(why) => last = why,
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "{what}: not within {DEADLINE:?} (last: {last});\nEnvoy log:\n{}\nweir log:\n{}",
            envoy.log(),
            self.log()
        );
    }

    /// Waits until `GET path` with `host` on `port` answers `status` (and `body`).
    pub fn wait_for(
        &self,
        envoy: &mut RunningEnvoy,
        port: u16,
        host: &str,
        path: &str,
        status: u16,
        body: Option<&str>,
    ) {
        let what = format!("GET {host}{path} on port {port} answering {status} {body:?}");
        self.until(&what, envoy, || {
            let got = request(LOOPBACK, port, host, path)?;
            if got.0 == status && body.is_none_or(|b| b == got.1) {
                Ok(())
            } else {
                Err(format!("{got:?}"))
            }
        });
    }
}

impl Drop for Weir {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
