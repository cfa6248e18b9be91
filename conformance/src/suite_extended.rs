//! The extended GATEWAY-HTTP tests this harness runs (restated from the upstream Go
//! tests; see tests/conformance/VERSION).

use crate::expect::{Case, INFRA, Redirect, get};
use crate::harness::Harness;
use crate::status as st;
use crate::suite::{ConformanceTest, accepted_all, on, status_eventually};

const SAME: &str = "gateway-conformance-infra/same-namespace";
const HTTPS: &str = "gateway-conformance-infra/same-namespace-with-https-listener";
const GW8080: &str = "gateway-conformance-infra/same-namespace-with-http-listener-on-8080";

fn test(
    name: &'static str,
    features: &'static [&'static str],
    manifests: &'static [&'static str],
    provisional: bool,
    run: fn(&mut Harness) -> Result<(), String>,
) -> ConformanceTest {
    ConformanceTest {
        name,
        features,
        manifests,
        provisional,
        run,
    }
}

fn redirect() -> Redirect {
    Redirect::default()
}

fn path(p: &str) -> Redirect {
    Redirect {
        path: Some(p.into()),
        ..Default::default()
    }
}

fn modified(c: Case) -> Case {
    c.up_header("X-Header-Add", "header-val-1")
        .up_header("X-Header-Add-Append", "append-val-1,header-val-2")
        .up_header("X-Header-Set", "set-overwrites-values")
        .up_absent("X-Header-Remove")
}

/// The extended tests.
pub fn all() -> Vec<ConformanceTest> {
    vec![
        test(
            "HTTPRouteQueryParamMatching",
            &["Gateway", "HTTPRoute", "HTTPRouteQueryParamMatching"],
            &["httproute-query-param-matching.yaml"],
            false,
            |h| {
                accepted_all(h, SAME)?;
                h.run_cases(&on(
                    SAME,
                    vec![
                        get("/?animal=whale").v(1),
                        get("/?animal=dolphin").v(2),
                        get("/?animal=dolphin&color=blue").v(3),
                        get("/?ANIMAL=Whale").v(3),
                        get("/?animal=whale&otherparam=irrelevant").v(1),
                        get("/?animal=dolphin&color=yellow").v(2),
                        get("/?color=blue").status(404),
                        get("/?animal=dog").status(404),
                        get("/?animal=whaledolphin").status(404),
                        get("/").status(404),
                        get("/path1?animal=whale").v(1),
                        get("/?animal=whale").header("version", "one").v(2),
                        get("/path2?animal=whale").header("version", "two").v(3),
                        get("/path3?animal=shark").v(1),
                        get("/path4?animal=kraken").header("version", "three").v(1),
                        get("/?animal=shark").status(404),
                        get("/path4?animal=kraken").status(404),
                        get("/path5?animal=hydra").v(1),
                        get("/?animal=hydra").header("version", "four").v(3),
                    ],
                ))
            },
        ),
        test(
            "HTTPRouteMethodMatching",
            &["Gateway", "HTTPRoute", "HTTPRouteMethodMatching"],
            &["httproute-method-matching.yaml"],
            false,
            |h| {
                accepted_all(h, SAME)?;
                h.run_cases(&on(
                    SAME,
                    vec![
                        get("/").method("POST").v(1),
                        get("/").v(2),
                        get("/").method("HEAD").status(404),
                        get("/path1").v(1),
                        get("/").method("PUT").header("version", "one").v(2),
                        get("/path2").method("POST").header("version", "two").v(3),
                        get("/path3").method("PATCH").v(1),
                        get("/path4")
                            .method("DELETE")
                            .header("version", "three")
                            .v(1),
                        get("/").method("PUT").status(404),
                        get("/path4").method("DELETE").status(404),
                        get("/path5").method("PATCH").v(1),
                        get("/").method("PATCH").header("version", "four").v(2),
                    ],
                ))
            },
        ),
        test(
            "HTTPRouteBackendRequestHeaderModifier",
            &[
                "Gateway",
                "HTTPRoute",
                "HTTPRouteBackendRequestHeaderModification",
            ],
            &["httproute-request-header-modifier-backend.yaml"],
            false,
            |h| {
                accepted_all(h, SAME)?;
                h.run_cases(&on(SAME, crate::suite::header_modifier_cases()))
            },
        ),
        test(
            "HTTPRouteResponseHeaderModifier",
            &[
                "Gateway",
                "HTTPRoute",
                "HTTPRouteResponseHeaderModification",
            ],
            &["httproute-response-header-modifier.yaml"],
            false,
            |h| {
                accepted_all(h, SAME)?;
                h.run_cases(&on(
                    SAME,
                    vec![
                        get("/set")
                            .echo_set("Some-Other-Header", "val")
                            .response_header("Some-Other-Header", "val")
                            .response_header("X-Header-Set", "set-overwrites-values")
                            .v(1),
                        get("/set")
                            .echo_set("Some-Other-Header", "val")
                            .echo_set("X-Header-Set", "some-other-value")
                            .response_header("Some-Other-Header", "val")
                            .response_header("X-Header-Set", "set-overwrites-values")
                            .v(1),
                        get("/add")
                            .echo_set("Some-Other-Header", "val")
                            .response_header("Some-Other-Header", "val")
                            .response_header("X-Header-Add", "add-appends-values")
                            .v(1),
                        get("/add")
                            .echo_set("Some-Other-Header", "val")
                            .echo_set("X-Header-Add", "some-other-value")
                            .response_header("Some-Other-Header", "val")
                            .response_header("X-Header-Add", "some-other-value,add-appends-values")
                            .v(1),
                        get("/remove")
                            .echo_set("X-Header-Remove", "val")
                            .response_absent("X-Header-Remove")
                            .v(1),
                        get("/multiple")
                            .echo_set("X-Header-Set-2", "set-val-2")
                            .echo_set("X-Header-Add-2", "add-val-2")
                            .echo_set("X-Header-Remove-2", "remove-val-2")
                            .echo_set("Another-Header", "another-header-val")
                            .echo_set("X-Header-Remove-1", "val")
                            .response_header("X-Header-Set-1", "header-set-1")
                            .response_header("X-Header-Set-2", "header-set-2")
                            .response_header("X-Header-Add-1", "header-add-1")
                            .response_header("X-Header-Add-2", "add-val-2,header-add-2")
                            .response_header("X-Header-Add-3", "header-add-3")
                            .response_header("Another-Header", "another-header-val")
                            .response_absent("X-Header-Remove-1")
                            .response_absent("X-Header-Remove-2")
                            .v(1),
                        get("/case-insensitivity")
                            .echo_set("x-header-set", "original-val-set")
                            .echo_set("x-header-add", "original-val-add")
                            .echo_set("x-header-remove", "original-val-remove")
                            .echo_set("Another-Header", "another-header-val")
                            .response_header("X-Header-Set", "header-set")
                            .response_header("X-Header-Add", "original-val-add,header-add")
                            .response_header("X-Lowercase-Add", "lowercase-add")
                            .response_header("X-Mixedcase-Add-1", "mixedcase-add-1")
                            .response_header("X-Mixedcase-Add-2", "mixedcase-add-2")
                            .response_header("X-Uppercase-Add", "uppercase-add")
                            .response_header("Another-Header", "another-header-val")
                            .response_absent("x-header-remove")
                            .v(1),
                        get("/response-and-request-header-modifiers")
                            .header("X-Header-Remove", "remove-val")
                            .header("X-Header-Add-Append", "append-val-1")
                            .header("X-Header-Echo", "echo")
                            .echo_set("X-Header-Set-2", "set-val-2")
                            .echo_set("X-Header-Add-2", "add-val-2")
                            .echo_set("X-Header-Remove-2", "remove-val-2")
                            .echo_set("Another-Header", "another-header-val")
                            .echo_set("X-Header-Remove-1", "remove-val-1")
                            .echo_set("X-Header-Echo", "echo")
                            .up_header("X-Header-Add", "header-val-1")
                            .up_header("X-Header-Set", "set-overwrites-values")
                            .up_header("X-Header-Add-Append", "append-val-1,header-val-2")
                            .up_header("X-Header-Echo", "echo")
                            .up_absent("X-Header-Remove")
                            .response_header("X-Header-Set-1", "header-set-1")
                            .response_header("X-Header-Set-2", "header-set-2")
                            .response_header("X-Header-Add-1", "header-add-1")
                            .response_header("X-Header-Add-2", "add-val-2,header-add-2")
                            .response_header("Another-Header", "another-header-val")
                            .response_header("X-Header-Echo", "echo")
                            .response_absent("X-Header-Remove-1")
                            .response_absent("X-Header-Remove-2")
                            .v(1),
                    ],
                ))
            },
        ),
        test(
            "HTTPRouteRedirectPath",
            &["Gateway", "HTTPRoute", "HTTPRoutePathRedirect"],
            &["httproute-redirect-path.yaml"],
            false,
            |h| {
                accepted_all(h, SAME)?;
                let org = |p: &str| Redirect {
                    host: Some("example.org".into()),
                    path: Some(p.into()),
                    ..Default::default()
                };
                h.run_cases(&on(
                    SAME,
                    vec![
                        get("/original-prefix/lemon")
                            .redirect(302, path("/replacement-prefix/lemon")),
                        get("/full/path/original").redirect(302, path("/full-path-replacement")),
                        get("/path-and-host").redirect(302, org("/replacement-prefix")),
                        get("/path-and-status").redirect(301, path("/replacement-prefix")),
                        get("/full-path-and-host").redirect(302, org("/replacement-full")),
                        get("/full-path-and-status").redirect(301, path("/replacement-full")),
                    ],
                ))
            },
        ),
        test(
            "HTTPRouteRedirectPort",
            &["Gateway", "HTTPRoute", "HTTPRoutePortRedirect"],
            &["httproute-redirect-port.yaml"],
            false,
            |h| {
                accepted_all(h, SAME)?;
                let port = |host: bool| Redirect {
                    port: Some("8083".into()),
                    host: host.then(|| "example.org".into()),
                    ..Default::default()
                };
                h.run_cases(&on(
                    SAME,
                    vec![
                        get("/port").redirect(302, port(false)),
                        get("/port-and-host").redirect(302, port(true)),
                        get("/port-and-status").redirect(301, port(false)),
                        get("/port-and-host-and-status").redirect(302, port(true)),
                    ],
                ))
            },
        ),
        test(
            "HTTPRouteRedirectScheme",
            &["Gateway", "HTTPRoute", "HTTPRouteSchemeRedirect"],
            &["httproute-redirect-scheme.yaml"],
            false,
            |h| {
                accepted_all(h, SAME)?;
                let https = |host: bool| Redirect {
                    scheme: Some("https".into()),
                    host: host.then(|| "example.org".into()),
                    ..Default::default()
                };
                h.run_cases(&on(
                    SAME,
                    vec![
                        get("/scheme").redirect(302, https(false)),
                        get("/scheme-and-host").redirect(302, https(true)),
                        get("/scheme-and-status").redirect(301, https(false)),
                        get("/scheme-and-host-and-status").redirect(302, https(true)),
                    ],
                ))
            },
        ),
        test(
            "HTTPRouteRedirectPortAndScheme",
            &[
                "Gateway",
                "HTTPRoute",
                "HTTPRoutePortRedirect",
                "GatewayPort8080",
            ],
            &["httproute-redirect-port-and-scheme.yaml"],
            false,
            |h| {
                let r = |scheme: &str, port: Option<&str>| Redirect {
                    scheme: Some(scheme.into()),
                    host: Some("example.org".into()),
                    port: port.map(str::to_string),
                    path: None,
                };
                let c = |p: &str, scheme: &str, port: Option<&str>| {
                    get(p).redirect(302, r(scheme, port))
                };
                let mut cases = on(
                    SAME,
                    vec![
                        c("/scheme-nil-and-port-nil", "http", None),
                        c("/scheme-nil-and-port-80", "http", None),
                        c("/scheme-nil-and-port-8080", "http", Some("8080")),
                        c("/scheme-https-and-port-nil", "https", None),
                        c("/scheme-https-and-port-443", "https", None),
                        c("/scheme-https-and-port-8443", "https", Some("8443")),
                    ],
                );
                cases.extend(on(
                    GW8080,
                    vec![
                        c("/scheme-nil-and-port-nil", "http", Some("8080")),
                        c("/scheme-nil-and-port-80", "http", None),
                        c("/scheme-https-and-port-nil", "https", None),
                    ],
                ));
                let s = |p: &str, scheme: &str, port: Option<&str>| {
                    get(p)
                        .host("example.org")
                        .https()
                        .redirect(302, r(scheme, port))
                };
                cases.extend(on(
                    HTTPS,
                    vec![
                        s("/scheme-nil-and-port-nil", "https", None),
                        s("/scheme-nil-and-port-443", "https", None),
                        s("/scheme-nil-and-port-8443", "https", Some("8443")),
                        s("/scheme-http-and-port-nil", "http", None),
                        s("/scheme-http-and-port-80", "http", None),
                        s("/scheme-http-and-port-8080", "http", Some("8080")),
                    ],
                ));
                h.run_cases(&cases)
            },
        ),
        test(
            "HTTPRoute303Redirect",
            &["Gateway", "HTTPRoute", "HTTPRoute303RedirectStatusCode"],
            &["httproute-303-redirect.yaml"],
            true,
            |h| {
                accepted_all(h, SAME)?;
                h.run_cases(&on(
                    SAME,
                    vec![get("/see-other").method("POST").redirect(303, redirect())],
                ))
            },
        ),
        test(
            "HTTPRoute307Redirect",
            &["Gateway", "HTTPRoute", "HTTPRoute307RedirectStatusCode"],
            &["httproute-307-redirect.yaml"],
            true,
            |h| {
                accepted_all(h, SAME)?;
                h.run_cases(&on(SAME, vec![get("/temporary").redirect(307, redirect())]))
            },
        ),
        test(
            "HTTPRoute308Redirect",
            &["Gateway", "HTTPRoute", "HTTPRoute308RedirectStatusCode"],
            &["httproute-308-redirect.yaml"],
            true,
            |h| {
                accepted_all(h, SAME)?;
                h.run_cases(&on(SAME, vec![get("/permanent").redirect(308, redirect())]))
            },
        ),
        test(
            "HTTPRouteRewriteHost",
            &["Gateway", "HTTPRoute", "HTTPRouteHostRewrite"],
            &["httproute-rewrite-host.yaml"],
            false,
            |h| {
                accepted_all(h, SAME)?;
                h.run_cases(&on(
                    SAME,
                    vec![
                        get("/one")
                            .host("rewrite.example")
                            .up_host("one.example.org")
                            .v(1),
                        get("/two")
                            .host("rewrite.example")
                            .up_host("example.org")
                            .v(2),
                        modified(
                            get("/rewrite-host-and-modify-headers")
                                .host("rewrite.example")
                                .header("X-Header-Remove", "remove-val")
                                .header("X-Header-Add-Append", "append-val-1")
                                .up_host("test.example.org"),
                        )
                        .v(2),
                    ],
                ))
            },
        ),
        test(
            "HTTPRouteRewritePath",
            &["Gateway", "HTTPRoute", "HTTPRoutePathRewrite"],
            &["httproute-rewrite-path.yaml"],
            false,
            |h| {
                accepted_all(h, SAME)?;
                let hdrs = |c: Case| {
                    c.header("X-Header-Remove", "remove-val")
                        .header("X-Header-Add-Append", "append-val-1")
                        .header("X-Header-Set", "set-val")
                };
                h.run_cases(&on(
                    SAME,
                    vec![
                        get("/prefix/one/two").up_path("/one/two").v(1),
                        get("/strip-prefix/three").up_path("/three").v(1),
                        get("/strip-prefix").up_path("/").v(1),
                        get("/full/one/two").up_path("/one").v(1),
                        modified(
                            hdrs(get("/full/rewrite-path-and-modify-headers/test"))
                                .up_path("/test"),
                        )
                        .v(1),
                        modified(
                            hdrs(get("/prefix/rewrite-path-and-modify-headers/one"))
                                .up_path("/prefix/one"),
                        )
                        .v(1),
                    ],
                ))
            },
        ),
        test(
            "HTTPRouteTimeoutRequest",
            &["Gateway", "HTTPRoute", "HTTPRouteRequestTimeout"],
            &["httproute-timeout-request.yaml"],
            false,
            |h| {
                accepted_all(h, SAME)?;
                h.run_cases(&on(
                    SAME,
                    vec![
                        get("/request-timeout").to("", INFRA),
                        get("/request-timeout?delay=1s").status(504),
                        get("/disable-request-timeout?delay=1s").to("", INFRA),
                    ],
                ))
            },
        ),
        test(
            "HTTPRouteTimeoutBackendRequest",
            &["Gateway", "HTTPRoute", "HTTPRouteBackendTimeout"],
            &["httproute-timeout-backend-request.yaml"],
            false,
            |h| {
                accepted_all(h, SAME)?;
                h.run_cases(&on(
                    SAME,
                    vec![
                        get("/backend-timeout").to("", INFRA),
                        get("/backend-timeout?delay=1s").status(504),
                        get("/disable-backend-timeout?delay=1s").to("", INFRA),
                    ],
                ))
            },
        ),
        test(
            "HTTPRouteRequestMirror",
            &["Gateway", "HTTPRoute", "HTTPRouteRequestMirror"],
            &["httproute-request-mirror.yaml"],
            false,
            |h| {
                accepted_all(h, SAME)?;
                mirror(h, "/mirror", false, &["infra-backend-v2"])?;
                mirror(h, "/mirror-and-modify-headers", true, &["infra-backend-v2"])
            },
        ),
        test(
            "HTTPRouteRequestMultipleMirrors",
            &[
                "Gateway",
                "HTTPRoute",
                "HTTPRouteRequestMirror",
                "HTTPRouteRequestMultipleMirrors",
            ],
            &["httproute-request-multiple-mirrors.yaml"],
            false,
            |h| {
                accepted_all(h, SAME)?;
                let both = ["infra-backend-v2", "infra-backend-v3"];
                mirror(h, "/multi-mirror", false, &both)?;
                mirror(h, "/multi-mirror-and-modify-request-headers", true, &both)
            },
        ),
        test(
            "HTTPRouteListenerPortMatching",
            &["Gateway", "HTTPRoute", "HTTPRouteParentRefPort"],
            &["httproute-listener-port-matching.yaml"],
            false,
            |h| {
                let gw = "gateway-conformance-infra/httproute-listener-port-matching";
                accepted_all(h, gw)?;
                h.run_cases(&on(
                    gw,
                    vec![
                        get("/").host("foo.com").port(80).v(1),
                        get("/").host("foo.com:8080").port(8080).v(2),
                        get("/").host("bar.com:8080").port(8080).v(2),
                        get("/").host("foo.com:8090").port(8090).v(3),
                        get("/").host("bar.com:8090").port(8090).status(404),
                    ],
                ))
            },
        ),
        test(
            "GatewayWithAttachedRoutesWithPort8080",
            &["Gateway", "HTTPRoute", "GatewayPort8080"],
            &["gateway-with-attached-routes-with-port-8080.yaml"],
            false,
            |h| {
                let gw =
                    "gateway-conformance-infra/gateway-with-two-listeners-and-one-attached-route";
                status_eventually(h, |s| {
                    st::listener_condition(s, gw, "http-unattached", "Accepted", ("True", None))?;
                    st::listener_condition(
                        s,
                        gw,
                        "http-unattached",
                        "ResolvedRefs",
                        ("True", None),
                    )?;
                    st::attached_routes(s, gw, "http-unattached", 0)?;
                    st::attached_routes(s, gw, "http", 1)
                })
            },
        ),
        test(
            "GatewayHTTPListenerIsolation",
            &["Gateway", "HTTPRoute", "GatewayHTTPListenerIsolation"],
            &[
                "gateway-http-listener-isolation.yaml",
                "gateway-http-listener-isolation-with-hostname-intersection.yaml",
            ],
            false,
            |h| {
                let mut cases = Vec::new();
                for gw in [
                    "gateway-conformance-infra/http-listener-isolation",
                    "gateway-conformance-infra/http-listener-isolation-with-hostname-intersection",
                ] {
                    accepted_all(h, gw)?;
                    let hosts = [
                        "bar.com",
                        "bar.example.com",
                        "bar.foo.example.com",
                        "abc.foo.example.com",
                    ];
                    let paths = [
                        "/empty-hostname",
                        "/wildcard-example-com",
                        "/wildcard-foo-example-com",
                        "/abc-foo-example-com",
                    ];
                    for (i, host) in hosts.iter().enumerate() {
                        for (j, p) in paths.iter().enumerate() {
                            let c = get(p).host(host);
                            cases.push(if i == j { c.v(1) } else { c.status(404) });
                        }
                    }
                    cases = cases
                        .into_iter()
                        .map(|mut c| {
                            if c.gateway.is_empty() {
                                c.gateway = gw.into();
                            }
                            c
                        })
                        .collect();
                }
                h.run_cases(&cases)
            },
        ),
        test(
            "HTTPRouteRetry",
            &["Gateway", "HTTPRoute", "HTTPRouteRetry"],
            &["httproute-retry.yaml"],
            false,
            |h| {
                accepted_all(h, SAME)?;
                let r = |p: &str, code: u16, after: u32, expect: u16| {
                    let c = get(&format!(
                        "/retry/{p}?responseCode={code}&succeedAfter={after}"
                    ))
                    .fresh_uuid();
                    if expect == 200 {
                        c.v(3)
                    } else {
                        c.status(expect)
                    }
                };
                h.run_cases(&on(
                    SAME,
                    vec![
                        r("code-500-attempts-3", 500, 2, 200),
                        r("code-500-attempts-3", 500, 4, 500),
                        r("code-500-attempts-3", 503, 2, 503),
                        r("code-all-attempts-2", 500, 1, 200),
                        r("code-all-attempts-2", 500, 3, 500),
                        r("code-all-attempts-2", 502, 1, 200),
                        r("code-all-attempts-2", 502, 3, 502),
                        r("code-all-attempts-2", 503, 1, 200),
                        r("code-all-attempts-2", 503, 3, 503),
                        r("code-all-attempts-2", 504, 1, 200),
                        r("code-all-attempts-2", 504, 3, 504),
                    ],
                ))
            },
        ),
        test(
            "HTTPRouteRetryWithTimeouts",
            &[
                "Gateway",
                "HTTPRoute",
                "HTTPRouteBackendTimeout",
                "HTTPRouteRequestTimeout",
                "HTTPRouteRetry",
                "HTTPRouteRetryBackendTimeout",
            ],
            &["httproute-retry-with-timeouts.yaml"],
            false,
            |h| {
                accepted_all(h, SAME)?;
                let r = |p: &str, delay: Option<&str>, after: u32, expect: u16| {
                    let delay = delay
                        .map(|d| format!("delayRetry={d}&"))
                        .unwrap_or_default();
                    let c = get(&format!(
                        "/retry/{p}?{delay}responseCode=500&succeedAfter={after}"
                    ))
                    .fresh_uuid();
                    if expect == 200 {
                        c.v(3)
                    } else {
                        c.status(expect)
                    }
                };
                h.run_cases(&on(
                    SAME,
                    vec![
                        r("backend-request-timeout-200ms", Some("300ms"), 2, 200),
                        r("backend-request-timeout-200ms", Some("300ms"), 3, 504),
                        r("request-timeout-200ms", None, 1, 200),
                        r("request-timeout-200ms", Some("100ms"), 4, 504),
                    ],
                ))
            },
        ),
        test(
            "HTTPRouteRetryConnectionError",
            &[
                "Gateway",
                "HTTPRoute",
                "HTTPRouteRetry",
                "HTTPRouteRetryConnectionError",
            ],
            &["httproute-retry-connection-error.yaml"],
            false,
            |h| {
                accepted_all(h, SAME)?;
                let p = "/retry/no-status-code-attempts-3";
                h.run_cases(&on(
                    SAME,
                    vec![
                        get(&format!("{p}?succeedAfter=2")).fresh_uuid().v(3),
                        get(&format!("{p}?succeedAfter=4"))
                            .fresh_uuid()
                            .status(500)
                            .status(503),
                    ],
                ))
            },
        ),
        test(
            "HTTPRouteBackendURLRewrite",
            &["Gateway", "HTTPRoute", "HTTPRouteBackendURLRewrite"],
            &["httproute-backend-url-rewrite.yaml"],
            false,
            |h| {
                accepted_all(h, SAME)?;
                h.run_cases(&on(
                    SAME,
                    vec![
                        get("/full/original").up_path("/rewritten-full").v(1),
                        get("/prefix/original")
                            .up_path("/rewritten-prefix/original")
                            .v(1),
                    ],
                ))
            },
        ),
        test(
            "HTTPRouteBackendRequestRedirect",
            &["Gateway", "HTTPRoute", "HTTPRouteBackendRequestRedirect"],
            &["httproute-backend-request-redirect.yaml"],
            false,
            |h| {
                accepted_all(h, SAME)?;
                h.run_cases(&on(
                    SAME,
                    vec![
                        get("/full/original").redirect(302, path("/redirected-full")),
                        get("/prefix/original").redirect(302, path("/redirected-prefix/original")),
                    ],
                ))
            },
        ),
        test(
            "HTTPRouteNamedRule",
            &["Gateway", "HTTPRoute", "HTTPRouteNamedRouteRule"],
            &["httproute-named-rule.yaml"],
            true,
            |h| {
                accepted_all(h, SAME)?;
                h.run_cases(&on(
                    SAME,
                    vec![get("/named").to("", INFRA), get("/unnamed").to("", INFRA)],
                ))
            },
        ),
        test(
            "HTTPRouteRequestHeaderModifierBackendWeights",
            &[
                "Gateway",
                "HTTPRoute",
                "HTTPRouteBackendRequestHeaderModification",
            ],
            &["httproute-request-header-modifier-backend-weights.yaml"],
            false,
            backend_weights,
        ),
        test(
            "HTTPRouteInvalidParentRefSectionNameNotMatchingPort",
            &["Gateway", "HTTPRoute", "HTTPRouteParentRefPort"],
            &["httproute-invalid-parentref-section-name-not-matching-port.yaml"],
            false,
            |h| {
                let gw = "gateway-conformance-infra/gateway-with-one-not-matching-port-and-section-name-route";
                let route = format!("{INFRA}/httproute-listener-section-name-not-matching-port");
                status_eventually(h, |s| {
                    st::route_condition(
                        s,
                        &route,
                        gw,
                        "Accepted",
                        ("False", Some("NoMatchingParent")),
                    )?;
                    st::no_accepted_parent(s, &route)?;
                    st::attached_routes(s, gw, "http", 0)
                })
            },
        ),
        test(
            "HTTPRouteInvalidParentRefNotMatchingListenerPort",
            &["Gateway", "HTTPRoute", "HTTPRouteDestinationPortMatching"],
            &["httproute-invalid-parentref-not-matching-listener-port.yaml"],
            false,
            |h| {
                let route = format!("{INFRA}/httproute-listener-not-matching-route-port");
                status_eventually(h, |s| {
                    st::route_condition(
                        s,
                        &route,
                        SAME,
                        "Accepted",
                        ("False", Some("NoMatchingParent")),
                    )?;
                    st::route_condition(s, &route, SAME, "ResolvedRefs", ("True", None))?;
                    st::no_accepted_parent(s, &route)?;
                    st::attached_routes(s, SAME, "http", 0)
                })
            },
        ),
        test(
            "HTTPRouteBackendProtocolH2C",
            &["Gateway", "HTTPRoute", "HTTPRouteBackendProtocolH2C"],
            &["httproute-backend-protocol-h2c.yaml"],
            false,
            |h| {
                accepted_all(h, SAME)?;
                h.run_cases(&on(SAME, vec![get("/").h2c().v(1)]))
            },
        ),
        test(
            "HTTPRouteBackendProtocolWebSocket",
            &["Gateway", "HTTPRoute", "HTTPRouteBackendProtocolWebSocket"],
            &["httproute-backend-protocol-websocket.yaml"],
            false,
            websocket,
        ),
        test(
            "HTTPRouteCORS",
            &["Gateway", "HTTPRoute", "HTTPRouteCORS"],
            &["httproute-cors.yaml"],
            false,
            cors,
        ),
    ]
}

/// A mirrored request: the primary answer from v1, and within 10 s the log line
/// `Echoing back request made to <path> to client` in every pod of each mirror.
fn mirror(h: &mut Harness, path: &str, modify: bool, mirrors: &[&str]) -> Result<(), String> {
    let id = format!(
        "{:x}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
    );
    let full = format!("{path}?gateway-api-conformance-request-id={id}");
    let mut case = get(&full);
    if modify {
        case = modified(
            case.header("X-Header-Remove", "remove-val")
                .header("X-Header-Add-Append", "append-val-1"),
        );
    }
    h.run_cases(&on(SAME, vec![case.v(1)]))?;
    let needle = format!("Echoing back request made to {full} to client");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let missing: Vec<String> = mirrors
            .iter()
            .flat_map(|m| h.pods(&format!("{m}-")))
            .filter(|p| !p.log().contains(&needle))
            .map(|p| p.name.clone())
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        if std::time::Instant::now() > deadline {
            return Err(format!("{path}: not mirrored to {}", missing.join(", ")));
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// HTTPRouteRequestHeaderModifierBackendWeights: each backendRef sets `Backend: <its
/// service>`; over 100 requests the header always names the pod that answered.
fn backend_weights(h: &mut Harness) -> Result<(), String> {
    accepted_all(h, SAME)?;
    h.run_cases(&on(SAME, vec![get("/").to("", INFRA)]))?;
    let addr = h.address(SAME, None).map_err(|e| format!("{e:#}"))?;
    for _ in 0..100 {
        let case = get("/");
        let res = crate::client::send(addr, &case.request(addr))?;
        let echo: serde_json::Value =
            serde_json::from_slice(&res.body).map_err(|e| format!("status {}: {e}", res.status))?;
        let values: Vec<&str> = echo["headers"]["Backend"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(serde_json::Value::as_str)
            .collect();
        let pod = echo["pod"].as_str().unwrap_or("");
        if values.len() != 1 || !pod.starts_with(values[0]) {
            return Err(format!("pod {pod} received Backend: {values:?}"));
        }
    }
    Ok(())
}

/// HTTPRouteCORS: preflights answered by the proxy, simple requests by the echo, with
/// the access-control headers of each route's policy.
fn cors(h: &mut Harness) -> Result<(), String> {
    accepted_all(h, SAME)?;
    let acao = "access-control-allow-origin";
    let acam = "access-control-allow-methods";
    let acah = "access-control-allow-headers";
    let aceh = "access-control-expose-headers";
    let acma = "access-control-max-age";
    let acac = "access-control-allow-credentials";
    let pre = |p: &str, origin: &str, method: &str| {
        get(p)
            .method("OPTIONS")
            .header("Origin", origin)
            .header("access-control-request-method", method)
            .status(200)
            .status(204)
            .not_echo()
    };
    let cors1 = |origin: &str| {
        pre("/cors-1", origin, "GET")
            .header("access-control-request-headers", "x-header-1, x-header-2")
            .response_header(acao, origin)
            .response_one_of(acam, &["GET, OPTIONS", "OPTIONS, GET"])
            .response_one_of(acah, &["x-header-1, x-header-2", "x-header-2, x-header-1"])
            .response_one_of(aceh, &["x-header-3, x-header-4", "x-header-4, x-header-3"])
            .response_header(acma, "3600")
            .response_one_of(acac, &["true"])
    };
    let simple = |method: &str, p: &str, origin: &str| {
        get(p).method(method).header("Origin", origin).to("", INFRA)
    };
    let hdrs = ["x-header-1, x-header-2", "x-header-2, x-header-1"];
    h.run_cases(&on(
        SAME,
        vec![
            cors1("https://www.foo.com"),
            cors1("https://www.bar.com"),
            cors1("https://xpto.www.bar.com"),
            pre("/cors-1", "https://foobar.com", "GET")
                .status(403)
                .response_absent(acao),
            simple("GET", "/cors-1", "https://www.foo.com")
                .header("access-control-request-method", "GET")
                .header("access-control-request-headers", "x-header-1, x-header-2")
                .response_header(acao, "https://www.foo.com"),
            simple("GET", "/cors-1", "https://www.bar.com")
                .header("access-control-request-method", "GET")
                .header("access-control-request-headers", "x-header-1, x-header-2")
                .response_header(acao, "https://www.bar.com"),
            simple("GET", "/cors-1", "https://foobar.com")
                .header("access-control-request-method", "GET")
                .response_absent(acao),
            pre("/cors-2", "https://www.foo.com", "POST")
                .response_one_of(acam, &["POST", "*"])
                .response_header(acao, "https://www.foo.com")
                .response_absent(acac),
            pre("/cors-wildcard-origin", "https://foobar.com", "PUT")
                .response_one_of(acao, &["https://foobar.com", "*"])
                .response_header(acam, "PUT")
                .response_absent(acac),
            pre("/cors-wildcard-origin", "https://foobar.com:12345", "PUT")
                .response_one_of(acao, &["https://foobar.com:12345", "*"])
                .response_header(acam, "PUT")
                .response_absent(acac),
            simple("PUT", "/cors-wildcard-origin", "https://foobar.com:12345")
                .response_one_of(acao, &["https://foobar.com:12345", "*"]),
            simple("PUT", "/cors-wildcard-origin", "https://foobar.com")
                .response_one_of(acao, &["https://foobar.com", "*"])
                .response_absent(acac),
            pre(
                "/cors-wildcard-methods-headers",
                "https://other.foo.com",
                "PUT",
            )
            .header("access-control-request-headers", "x-header-1, x-header-2")
            .response_header(acao, "https://other.foo.com")
            .response_header(acam, "PUT")
            .response_one_of(acah, &hdrs)
            .response_one_of(acac, &["true"]),
            pre(
                "/cors-wildcard-methods-headers-unauth",
                "https://other.foo.com",
                "PUT",
            )
            .header("access-control-request-headers", "x-header-1, x-header-2")
            .response_one_of(acao, &["https://other.foo.com", "*"])
            .response_one_of(acam, &["PUT", "*"])
            .response_one_of(acah, &[hdrs[0], hdrs[1], "*"])
            .response_absent(acac),
            simple(
                "GET",
                "/cors-wildcard-methods-headers",
                "https://other.foo.com",
            )
            .response_header(acao, "https://other.foo.com")
            .response_header(acac, "true"),
            simple(
                "GET",
                "/cors-wildcard-methods-headers-unauth",
                "https://other.foo.com",
            )
            .response_one_of(acao, &["https://other.foo.com", "*"])
            .response_absent(acac),
        ],
    ))
}

/// HTTPRouteBackendProtocolWebSocket: a text and a binary message echoed through the
/// Gateway to the backend's WebSocket port (appProtocol kubernetes.io/ws).
fn websocket(h: &mut Harness) -> Result<(), String> {
    use crate::websocket::{BINARY, Client, TEXT};
    accepted_all(h, SAME)?;
    let addr = h.address(SAME, None).map_err(|e| format!("{e:#}"))?;
    let once = || -> Result<(), String> {
        let stream =
            std::net::TcpStream::connect_timeout(&addr, std::time::Duration::from_secs(10))
                .map_err(|e| format!("connect {addr}: {e}"))?;
        let _ = stream.set_read_timeout(Some(std::time::Duration::from_secs(10)));
        let origin = "ws://gateway/HTTPRouteBackendProtocolWebSocket";
        let mut ws = Client::connect(stream, &addr.ip().to_string(), "/ws", origin)?;
        let text = b"Websocket Support!";
        let got = ws.round_trip(TEXT, text)?;
        if got != (TEXT, text.to_vec()) {
            return Err(format!("text message came back as {got:?}"));
        }
        let bytes = [1u8, 2, 3, 4, 5, 6, 7];
        let got = ws.round_trip(BINARY, &bytes)?;
        if got != (BINARY, bytes.to_vec()) {
            return Err(format!("binary message came back as {got:?}"));
        }
        Ok(())
    };
    let start = std::time::Instant::now();
    let mut streak = 0;
    loop {
        match once() {
            Ok(()) => {
                streak += 1;
                if streak >= h.timing().threshold {
                    return Ok(());
                }
            }
            Err(e) if start.elapsed() > h.timing().max => {
                return Err(format!("ws://{addr}/ws: {e}"));
            }
            Err(_) => streak = 0,
        }
        std::thread::sleep(h.timing().interval);
    }
}
