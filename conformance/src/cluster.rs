//! The cluster's part: every echo Deployment becomes local `weir-echo` processes (one
//! per replica, each on its own loopback "pod IP", named like a pod, with its namespace
//! in the environment), and every Service gets an EndpointSlice pointing at them.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::{Value, json};

use crate::manifests::{kind, name, namespace};

/// One running echo process standing in for a pod.
pub struct Pod {
    /// The pod name (`<deployment>-<a>-<b>`).
    pub name: String,
    /// The namespace.
    pub namespace: String,
    /// The pod template's labels.
    pub labels: BTreeMap<String, String>,
    /// The "pod IP": a loopback address only this process listens on.
    pub ip: Ipv4Addr,
    /// Container port names → numbers.
    pub ports: BTreeMap<String, u16>,
    /// Where its stdout (the echo log) goes.
    pub log: PathBuf,
    /// The manifest file whose Deployment created it.
    pub owner: String,
    child: Child,
}

impl Pod {
    /// The echo log so far (the mirror tests read it).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Pod {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The second octet of this run's loopback addresses (127.X.0.N for Gateways,
/// 127.X.1.N and up for pods), derived from the process id so that concurrent runs do
/// not share addresses (Envoy binds with SO_REUSEPORT, so a clash would not fail but
/// split the traffic between the runs).
pub fn run_octet() -> u8 {
    2 + (std::process::id() % 250) as u8
}

/// The pods, and what is needed to start more.
pub struct Cluster {
    echo_bin: PathBuf,
    log_dir: PathBuf,
    next_ip: u32,
    /// The running pods.
    pub pods: Vec<Pod>,
    /// The Secrets seen in applied manifests, by (namespace, name): key → text, for the
    /// secret volumes of the pods started after them.
    secrets: BTreeMap<(String, String), BTreeMap<String, String>>,
}

impl Cluster {
    /// A cluster without pods; echo processes run `echo_bin` and log into `log_dir`.
    pub fn new(echo_bin: PathBuf, log_dir: PathBuf) -> Self {
        Self {
            echo_bin,
            log_dir,
            next_ip: u32::from(Ipv4Addr::new(127, run_octet(), 1, 1)),
            pods: Vec::new(),
            secrets: BTreeMap::new(),
        }
    }

    /// Starts the pods of every echo Deployment in `docs` (recorded as owned by
    /// `owner`) and waits until each accepts connections.
    pub fn start_deployments(&mut self, owner: &str, docs: &[Value]) -> anyhow::Result<()> {
        let first_new = self.pods.len();
        for doc in docs.iter().filter(|d| kind(d) == "Secret") {
            self.secrets.insert(
                (namespace(doc).to_string(), name(doc).to_string()),
                secret_text(doc),
            );
        }
        for doc in docs.iter().filter(|d| kind(d) == "Deployment") {
            self.start_deployment(owner, doc)?;
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        for pod in &self.pods[first_new..] {
            let port = pod.ports.values().next().copied().unwrap_or(3000);
            let addr = SocketAddr::from((pod.ip, port));
            while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
                if Instant::now() > deadline {
                    bail!("echo pod {} did not start listening on {addr}", pod.name);
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        Ok(())
    }

    /// Stops the pods a manifest file created.
    pub fn stop_owned_by(&mut self, owner: &str) {
        self.pods.retain(|p| p.owner != owner);
    }

    fn start_deployment(&mut self, owner: &str, doc: &Value) -> anyhow::Result<()> {
        let deployment = name(doc).to_string();
        let ns = namespace(doc).to_string();
        let Some(container) = doc.pointer("/spec/template/spec/containers/0") else {
            return Ok(());
        };
        let env = container_env(container);
        let image = container.get("image").and_then(Value::as_str).unwrap_or("");
        let other_mode = ["GRPC_ECHO_SERVER", "TCP_ECHO_SERVER", "UDP_ECHO_SERVER"]
            .iter()
            .any(|m| env.iter().any(|(k, _)| k == m));
        if !image.contains("echo-basic") || other_mode {
            // Only the HTTP echo is emulated; gRPC/TCP/UDP backends get no pods.
            return Ok(());
        }
        let replicas = doc
            .pointer("/spec/replicas")
            .and_then(Value::as_u64)
            .unwrap_or(1);
        let labels: BTreeMap<String, String> = doc
            .pointer("/spec/template/metadata/labels")
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string()))
                    .collect()
            })
            .unwrap_or_default();
        let lookup = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        let http_port: u16 = lookup("HTTP_PORT")
            .and_then(|v| v.parse().ok())
            .unwrap_or(3000);
        let h2c_port: u16 = lookup("H2C_PORT")
            .and_then(|v| v.parse().ok())
            .unwrap_or(3001);
        let mut ports: BTreeMap<String, u16> = BTreeMap::new();
        ports.insert(String::new(), http_port);
        if let Some(list) = container.get("ports").and_then(Value::as_array) {
            for p in list {
                if let (Some(n), Some(num)) = (
                    p.get("name").and_then(Value::as_str),
                    p.get("containerPort").and_then(Value::as_u64),
                ) {
                    ports.insert(n.to_string(), num as u16);
                }
            }
        }
        for i in 0..replicas {
            let pod_name = format!("{deployment}-weir-{i}");
            let mounts = self.mount_secret_volumes(doc, container, &format!("{ns}_{pod_name}"))?;
            let env = mounted_env(&env, &mounts);
            let ip = Ipv4Addr::from(self.next_ip);
            self.next_ip += 1;
            let log = self.log_dir.join(format!("{ns}_{pod_name}.log"));
            let out = std::fs::File::create(&log)
                .with_context(|| format!("cannot create {}", log.display()))?;
            let mut cmd = Command::new(&self.echo_bin);
            cmd.env_clear()
                .env("PATH", std::env::var_os("PATH").unwrap_or_default());
            for (k, v) in &env {
                // A TLS file of a secret volume whose Secret the harness does not have
                // does not exist here, and the echo would refuse to start on it, so such
                // a pod serves plain HTTP (and h2c) only.
                let tls_file = matches!(
                    k.as_str(),
                    "TLS_SERVER_CERT" | "TLS_SERVER_PRIVKEY" | "TLS_CLIENT_CACERTS"
                );
                if tls_file && !Path::new(v).exists() {
                    continue;
                }
                let v = match v.as_str() {
                    "<metadata.name>" => pod_name.clone(),
                    "<metadata.namespace>" => ns.clone(),
                    other => other.to_string(),
                };
                cmd.env(k, v);
            }
            let child = cmd
                .env("HTTP_PORT", http_port.to_string())
                .env("H2C_PORT", h2c_port.to_string())
                .env("BIND_ADDRESS", ip.to_string())
                .stdin(Stdio::null())
                .stdout(out.try_clone()?)
                .stderr(out)
                .spawn()
                .with_context(|| format!("cannot run {}", self.echo_bin.display()))?;
            self.pods.push(Pod {
                name: pod_name,
                namespace: ns.clone(),
                labels: labels.clone(),
                ip,
                ports: ports.clone(),
                log,
                owner: owner.to_string(),
                child,
            });
        }
        Ok(())
    }

    /// The pods a Service selects.
    pub fn selected<'a>(
        &'a self,
        ns: &'a str,
        selector: &'a Value,
    ) -> impl Iterator<Item = &'a Pod> {
        self.pods.iter().filter(move |p| {
            p.namespace == ns
                && selector.as_object().is_some_and(|sel| {
                    !sel.is_empty()
                        && sel
                            .iter()
                            .all(|(k, v)| p.labels.get(k).map(String::as_str) == v.as_str())
                })
        })
    }

    /// EndpointSlices for every Service in `docs` that has a selector: one slice per
    /// Service, its ports resolved through the pods' container ports.
    pub fn endpoint_slices(&self, docs: &[Value]) -> Vec<Value> {
        let mut slices = Vec::new();
        for svc in docs.iter().filter(|d| kind(d) == "Service") {
            let ns = namespace(svc);
            let Some(selector) = svc.pointer("/spec/selector") else {
                continue;
            };
            let pods: Vec<&Pod> = self.selected(ns, selector).collect();
            let Some(first) = pods.first() else {
                continue;
            };
            let ports: Vec<Value> = svc
                .pointer("/spec/ports")
                .and_then(Value::as_array)
                .map(|list| {
                    list.iter()
                        .map(|p| {
                            let port = p.get("port").and_then(Value::as_u64).unwrap_or(0);
                            let target = match p.get("targetPort") {
                                Some(Value::Number(n)) => n.as_u64().unwrap_or(port),
                                Some(Value::String(s)) => {
                                    first.ports.get(s).copied().map_or(port, u64::from)
                                }
                                _ => port,
                            };
                            let mut out = json!({"port": target, "protocol": "TCP"});
                            if let Some(n) = p.get("name") {
                                out["name"] = n.clone();
                            }
                            if let Some(a) = p.get("appProtocol") {
                                out["appProtocol"] = a.clone();
                            }
                            out
                        })
                        .collect()
                })
                .unwrap_or_default();
            slices.push(slice(
                name(svc),
                ns,
                &format!("{}-weir", name(svc)),
                ports,
                &pods,
            ));
        }
        slices
    }
}

/// An EndpointSlice for Service `service` with the given ports and pods.
pub fn slice(service: &str, ns: &str, slice_name: &str, ports: Vec<Value>, pods: &[&Pod]) -> Value {
    let endpoints: Vec<Value> = pods
        .iter()
        .map(|p| {
            json!({
                "addresses": [p.ip.to_string()],
                "conditions": {"ready": true},
                "targetRef": {"kind": "Pod", "name": p.name, "namespace": p.namespace},
            })
        })
        .collect();
    json!({
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": slice_name,
            "namespace": ns,
            "labels": {"kubernetes.io/service-name": service},
        },
        "addressType": "IPv4",
        "ports": ports,
        "endpoints": endpoints,
    })
}

impl Cluster {
    /// Writes the files of the pod's secret volumes that the container mounts (from the
    /// Secrets seen so far; `items` select and rename keys) under the log directory;
    /// returns (mount path, local directory) pairs. Volumes of unknown Secrets are left
    /// out.
    fn mount_secret_volumes(
        &self,
        deployment: &Value,
        container: &Value,
        pod: &str,
    ) -> anyhow::Result<Vec<(String, PathBuf)>> {
        let ns = namespace(deployment);
        let volumes = deployment
            .pointer("/spec/template/spec/volumes")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let mut out = Vec::new();
        for m in container
            .get("volumeMounts")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let (Some(vol), Some(path)) = (
                m.get("name").and_then(Value::as_str),
                m.get("mountPath").and_then(Value::as_str),
            ) else {
                continue;
            };
            let Some(secret) = volumes
                .iter()
                .find(|v| v.get("name").and_then(Value::as_str) == Some(vol))
                .and_then(|v| v.get("secret"))
            else {
                continue;
            };
            let secret_name = secret
                .get("secretName")
                .and_then(Value::as_str)
                .unwrap_or("");
            let Some(data) = self.secrets.get(&(ns.to_string(), secret_name.to_string())) else {
                continue;
            };
            let files: Vec<(String, String)> = match secret.get("items").and_then(Value::as_array) {
                Some(items) => items
                    .iter()
                    .filter_map(|it| {
                        let key = it.get("key")?.as_str()?;
                        let to = it.get("path")?.as_str()?;
                        Some((to.to_string(), data.get(key)?.clone()))
                    })
                    .collect(),
                None => data.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            };
            let dir = self.log_dir.join("volumes").join(pod).join(vol);
            std::fs::create_dir_all(&dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            for (file, text) in files {
                std::fs::write(dir.join(&file), text)
                    .with_context(|| format!("cannot write {}", dir.join(&file).display()))?;
            }
            out.push((path.trim_end_matches('/').to_string(), dir));
        }
        Ok(out)
    }
}

/// The environment with paths under a mounted volume pointing at its local directory.
fn mounted_env(env: &[(String, String)], mounts: &[(String, PathBuf)]) -> Vec<(String, String)> {
    env.iter()
        .map(|(k, v)| {
            let local = mounts.iter().find_map(|(path, dir)| {
                let rest = v.strip_prefix(path.as_str())?.strip_prefix('/')?;
                Some(dir.join(rest).display().to_string())
            });
            (k.clone(), local.unwrap_or_else(|| v.clone()))
        })
        .collect()
}

/// A Secret's data as text: `stringData` as is, `data` base64-decoded (entries that are
/// not valid base64 or UTF-8 are left out).
fn secret_text(doc: &Value) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for (k, v) in doc
        .get("data")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        if let Some(text) = v
            .as_str()
            .and_then(base64_decode)
            .and_then(|b| String::from_utf8(b).ok())
        {
            out.insert(k.clone(), text);
        }
    }
    for (k, v) in doc
        .get("stringData")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        if let Some(text) = v.as_str() {
            out.insert(k.clone(), text.to_string());
        }
    }
    out
}

/// Standard base64 (padding optional); `None` on any other character.
fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in s.bytes().filter(|c| !c.is_ascii_whitespace() && *c != b'=') {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

/// A container's environment; downward-API values become `<metadata.name>` and
/// `<metadata.namespace>` placeholders filled per pod.
fn container_env(container: &Value) -> Vec<(String, String)> {
    container
        .get("env")
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .filter_map(|e| {
                    let n = e.get("name")?.as_str()?.to_string();
                    if let Some(v) = e.get("value").and_then(Value::as_str) {
                        return Some((n, v.to_string()));
                    }
                    let field = e.pointer("/valueFrom/fieldRef/fieldPath")?.as_str()?;
                    Some((n, format!("<{field}>")))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Where the harness's sibling binaries are: next to the running executable, or one
/// directory up (test binaries run from `target/debug/deps/`).
pub fn sibling_binary(name: &str) -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("cannot find the running executable")?;
    let dirs = exe.ancestors().skip(1).take(2);
    for dir in dirs {
        let candidate = dir.join(name);
        if candidate.is_file() {
            return Ok(candidate);
        }
    }
    bail!(
        "cannot find the `{name}` binary next to {}; build it with `cargo build -p weir-conformance`",
        exe.display()
    )
}
