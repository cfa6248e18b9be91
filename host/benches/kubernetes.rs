//! Kubernetes mode at scale: `cargo bench -p weir --bench kubernetes`.
//!
//! Fills the in-process fake API server (`tests/support/fake_apiserver.rs`) with
//! `WEIR_BENCH_OBJECTS` (default 10,000) HTTPRoutes and as many Services, runs the real
//! `weir serve --source kubernetes` against it and prints:
//!
//! - the time from start to the first snapshot served (`/readyz` turning 200);
//! - the initial round of status writes (how many, how long) and RSS after it;
//! - the status writes in a steady state: after an EndpointSlice change retranslates
//!   everything and after idling (target: 0).
//!
//! Status writes are paced by `--status-qps` (set high here to measure the round itself).

#[path = "../tests/support/fake_apiserver.rs"]
#[allow(dead_code)]
mod fake_apiserver;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use fake_apiserver::FakeApiServer;
use serde_json::json;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn ready(admin_port: u16) -> bool {
    use std::io::{Read, Write};
    let Ok(mut conn) = std::net::TcpStream::connect(("127.0.0.1", admin_port)) else {
        return false;
    };
    let _ = write!(
        conn,
        "GET /readyz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n"
    );
    let mut response = String::new();
    let _ = conn.read_to_string(&mut response);
    response.starts_with("HTTP/1.1 200")
}

fn rss_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0)
}

fn status_writes(fake: &FakeApiServer) -> usize {
    fake.writes()
        .iter()
        .filter(|w| w.path.ends_with("/status") && w.code == 200)
        .count()
}

/// Waits until no status write arrived for `quiet`; returns the count.
fn settle(fake: &FakeApiServer, quiet: Duration) -> usize {
    let mut last = status_writes(fake);
    let mut since = Instant::now();
    while since.elapsed() < quiet {
        std::thread::sleep(Duration::from_millis(100));
        let now = status_writes(fake);
        if now != last {
            last = now;
            since = Instant::now();
        }
    }
    last
}

fn main() {
    // `cargo bench` passes `--bench`; there is nothing to filter.
    let n: usize = std::env::var("WEIR_BENCH_OBJECTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let discovery = std::env::var("WEIR_BENCH_DISCOVERY").map_or(true, |v| v != "false");
    let fake = FakeApiServer::start();
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = fake.write_kubeconfig(dir.path());
    let gw = "gateway.networking.k8s.io/v1";
    fake.apply(
        "gatewayclasses",
        json!({"apiVersion": gw, "kind": "GatewayClass", "metadata": {"name": "weir"},
            "spec": {"controllerName": "gateway.weir.dev/controller"}}),
    );
    fake.apply(
        "gateways",
        json!({"apiVersion": gw, "kind": "Gateway",
            "metadata": {"namespace": "bench", "name": "gw"},
            "spec": {"gatewayClassName": "weir", "listeners": [
                {"name": "http", "protocol": "HTTP", "port": 8080,
                 "allowedRoutes": {"namespaces": {"from": "All"}}}]}}),
    );
    for i in 0..n {
        fake.apply(
            "services",
            json!({"apiVersion": "v1", "kind": "Service",
                "metadata": {"namespace": "bench", "name": format!("svc-{i}")},
                "spec": {"ports": [{"name": "http", "port": 80}]}}),
        );
        fake.apply(
            "httproutes",
            json!({"apiVersion": gw, "kind": "HTTPRoute",
                "metadata": {"namespace": "bench", "name": format!("route-{i}")},
                "spec": {"parentRefs": [{"name": "gw"}],
                         "hostnames": [format!("r{i}.example.com")],
                         "rules": [{"backendRefs": [{"name": format!("svc-{i}"), "port": 80}]}]}}),
        );
    }
    let admin_port = free_port();
    let started = Instant::now();
    let mut weir = Command::new(env!("CARGO_BIN_EXE_weir"))
        .args([
            "serve",
            "--source=kubernetes",
            &format!("--kubeconfig={}", kubeconfig.display()),
            &format!("--xds-addr=127.0.0.1:{}", free_port()),
            &format!("--admin-addr=127.0.0.1:{admin_port}"),
            "--status-qps=100000",
            &format!("--discovery={discovery}"),
        ])
        // A lasting plugin cache, so the figure is a warm start (plugins precompiled).
        .env(
            "XDG_CACHE_HOME",
            std::env::temp_dir().join("weir-bench-kubernetes-cache"),
        )
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("weir serve starts");
    while !ready(admin_port) {
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "weir never became ready"
        );
        assert!(weir.try_wait().unwrap().is_none(), "weir serve exited");
        std::thread::sleep(Duration::from_millis(20));
    }
    let first_snapshot = started.elapsed();
    let pid = weir.id();
    let rss_ready = rss_kib(pid, "VmRSS:");
    let initial = settle(&fake, Duration::from_secs(5));
    let initial_done = started.elapsed();
    let rss_settled = rss_kib(pid, "VmRSS:");
    let peak = rss_kib(pid, "VmHWM:");

    // Steady state: a change that retranslates without changing any status.
    fake.apply(
        "endpointslices",
        json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"namespace": "bench", "name": "svc-0-a",
                         "labels": {"kubernetes.io/service-name": "svc-0"}},
            "addressType": "IPv4", "ports": [{"name": "http", "port": 9000}],
            "endpoints": [{"addresses": ["127.0.0.1"], "conditions": {"ready": true}}]}),
    );
    let after_change = settle(&fake, Duration::from_secs(5));
    std::thread::sleep(Duration::from_secs(5));
    let steady = status_writes(&fake) - initial;
    let _ = weir.kill();
    let _ = weir.wait();

    println!("kubernetes mode, {n} HTTPRoutes + {n} Services (discovery: {discovery}):");
    println!(
        "  start -> first snapshot served: {:.2} s",
        first_snapshot.as_secs_f64()
    );
    println!(
        "  initial status round: {initial} writes, done {:.2} s after start",
        initial_done.as_secs_f64()
    );
    println!(
        "  RSS: {} MiB when ready, {} MiB after the status round, peak {} MiB",
        rss_ready / 1024,
        rss_settled / 1024,
        peak / 1024
    );
    println!(
        "  steady state status writes (after a retranslation and 5 s idle): {steady} (after the change: {})",
        after_change - initial
    );
}
