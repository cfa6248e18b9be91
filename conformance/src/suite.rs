//! The conformance tests: each one's manifests, features and what it checks (restated
//! from the upstream Go tests; tests/conformance/VERSION names the commit).

use std::time::Instant;

use serde_json::Value;

use crate::expect::{Case, INFRA, Redirect, get};
use crate::harness::Harness;
use crate::status as st;

/// What a test needs and does.
pub struct ConformanceTest {
    /// The upstream ShortName.
    pub name: &'static str,
    /// The features it lists (besides Gateway).
    pub features: &'static [&'static str],
    /// Its manifest files under `tests/`.
    pub manifests: &'static [&'static str],
    /// Provisional upstream.
    pub provisional: bool,
    /// The test body.
    pub run: fn(&mut Harness) -> Result<(), String>,
}

/// A test of the GATEWAY-HTTP profile this harness does not run, and why.
pub struct NotRun {
    /// The upstream ShortName.
    pub name: &'static str,
    /// Its features.
    pub features: &'static [&'static str],
    /// Provisional upstream.
    pub provisional: bool,
    /// Why it is not run.
    pub reason: &'static str,
}

const fn not_run(
    name: &'static str,
    features: &'static [&'static str],
    provisional: bool,
    reason: &'static str,
) -> NotRun {
    NotRun {
        name,
        features,
        provisional,
        reason,
    }
}

const NO_CLIENT_CERTS: &str = "harness: client-certificate CAs and client certificates are not generated yet (GatewayFrontendClientCertificateValidation not claimed)";
const NO_BACKEND_TLS: &str = "BackendTLSPolicy not claimed (Weir does not translate it yet; harness: the infra tls-backend serves HTTPS with a CA-signed tls-checks-certificate, but the CA ConfigMaps are not generated yet)";
const NO_LISTENERSET: &str = "ListenerSet not claimed (experimental kind; Weir does not read it)";

/// The GATEWAY-HTTP tests (and the HTTPRoute tests of no profile) not run here.
pub const NOT_RUN: &[NotRun] = &[
    not_run(
        "HTTPRouteRequestPercentageMirror",
        &["Gateway", "HTTPRoute", "HTTPRouteRequestPercentageMirror"],
        true,
        "harness: the statistical mirror share check is not written yet",
    ),
    not_run(
        "HTTPRouteHTTPSListenerDetectMisdirectedRequests",
        &[
            "Gateway",
            "HTTPRoute",
            "GatewayHTTPSListenerDetectMisdirectedRequests",
        ],
        false,
        "GatewayHTTPSListenerDetectMisdirectedRequests not claimed (needs 421 for SNI/Host mismatch over HTTP/2)",
    ),
    not_run(
        "HTTPRouteDisallowedKind",
        &["Gateway", "HTTPRoute", "TLSRoute"],
        false,
        "needs TLSRoute (no profile covers HTTPRoute + TLSRoute)",
    ),
    not_run(
        "GatewayStaticAddresses",
        &["Gateway", "GatewayStaticAddresses"],
        false,
        "GatewayStaticAddresses not claimed (address allocation)",
    ),
    not_run(
        "GatewayOptionalAddressValue",
        &["Gateway", "GatewayAddressEmpty"],
        true,
        "GatewayAddressEmpty not claimed (address allocation)",
    ),
    not_run(
        "GatewayInfrastructure",
        &["Gateway", "GatewayInfrastructurePropagation"],
        true,
        "needs Kubernetes objects created by the implementation",
    ),
    not_run(
        "GatewayFrontendClientCertificateValidation",
        &[
            "Gateway",
            "HTTPRoute",
            "GatewayFrontendClientCertificateValidation",
        ],
        false,
        NO_CLIENT_CERTS,
    ),
    not_run(
        "GatewayFrontendClientCertificateValidationInsecureFallback",
        &[
            "Gateway",
            "HTTPRoute",
            "GatewayFrontendClientCertificateValidation",
            "GatewayFrontendClientCertificateValidationInsecureFallback",
        ],
        false,
        NO_CLIENT_CERTS,
    ),
    not_run(
        "GatewayFrontendInvalidDefaultClientCertificateValidation",
        &[
            "Gateway",
            "HTTPRoute",
            "GatewayFrontendClientCertificateValidation",
        ],
        false,
        NO_CLIENT_CERTS,
    ),
    not_run(
        "GatewayInvalidFrontendClientCertificateValidation",
        &[
            "Gateway",
            "HTTPRoute",
            "ReferenceGrant",
            "GatewayFrontendClientCertificateValidation",
        ],
        false,
        NO_CLIENT_CERTS,
    ),
    not_run(
        "GatewayTLSBackendClientCertificate",
        &[
            "Gateway",
            "HTTPRoute",
            "BackendTLSPolicy",
            "GatewayBackendClientCertificate",
        ],
        false,
        NO_BACKEND_TLS,
    ),
    not_run(
        "GatewayInvalidTLSBackendConfiguration",
        &[
            "Gateway",
            "HTTPRoute",
            "BackendTLSPolicy",
            "GatewayBackendClientCertificate",
        ],
        false,
        NO_BACKEND_TLS,
    ),
    not_run(
        "BackendTLSPolicy",
        &["Gateway", "HTTPRoute", "BackendTLSPolicy"],
        false,
        NO_BACKEND_TLS,
    ),
    not_run(
        "BackendTLSPolicyConflictResolution",
        &["Gateway", "HTTPRoute", "BackendTLSPolicy"],
        false,
        NO_BACKEND_TLS,
    ),
    not_run(
        "BackendTLSPolicyInvalidCACertificateRef",
        &["Gateway", "HTTPRoute", "BackendTLSPolicy"],
        false,
        NO_BACKEND_TLS,
    ),
    not_run(
        "BackendTLSPolicyInvalidKind",
        &["Gateway", "HTTPRoute", "BackendTLSPolicy"],
        false,
        NO_BACKEND_TLS,
    ),
    not_run(
        "BackendTLSPolicyObservedGenerationBump",
        &["Gateway", "HTTPRoute", "BackendTLSPolicy"],
        false,
        NO_BACKEND_TLS,
    ),
    not_run(
        "BackendTLSPolicySANValidation",
        &[
            "Gateway",
            "HTTPRoute",
            "BackendTLSPolicy",
            "BackendTLSPolicySANValidation",
        ],
        false,
        NO_BACKEND_TLS,
    ),
    not_run(
        "ListenerSetAllowedNamespaceNone",
        &["Gateway", "ListenerSet"],
        false,
        NO_LISTENERSET,
    ),
    not_run(
        "ListenerSetAllowedNamespaceSame",
        &["Gateway", "ListenerSet"],
        false,
        NO_LISTENERSET,
    ),
    not_run(
        "ListenerSetAllowedNamespaceSelector",
        &["Gateway", "ListenerSet"],
        false,
        NO_LISTENERSET,
    ),
    not_run(
        "ListenerSetAllowedRoutesNamespaces",
        &["Gateway", "HTTPRoute", "ListenerSet", "ReferenceGrant"],
        false,
        NO_LISTENERSET,
    ),
    not_run(
        "ListenerSetDefaultNotAllowed",
        &["Gateway", "ListenerSet"],
        false,
        NO_LISTENERSET,
    ),
    not_run(
        "ListenerSetDualParentRefIndependence",
        &["Gateway", "HTTPRoute", "ListenerSet"],
        false,
        NO_LISTENERSET,
    ),
    not_run(
        "ListenerSetGatewayParentSectionNameNotFound",
        &["Gateway", "HTTPRoute", "ListenerSet"],
        false,
        NO_LISTENERSET,
    ),
    not_run(
        "ListenerSetHTTPRouting",
        &["Gateway", "HTTPRoute", "ListenerSet"],
        false,
        NO_LISTENERSET,
    ),
    not_run(
        "ListenerSetHostnameConflict",
        &["Gateway", "ListenerSet"],
        false,
        NO_LISTENERSET,
    ),
    not_run(
        "ListenerSetProtocolConflict",
        &["Gateway", "ListenerSet"],
        false,
        NO_LISTENERSET,
    ),
    not_run(
        "ListenerSetReferenceGrant",
        &["Gateway", "ListenerSet", "ReferenceGrant"],
        false,
        NO_LISTENERSET,
    ),
    not_run(
        "ListenerSetRouteStatusScopedToParentRef",
        &["Gateway", "HTTPRoute", "ListenerSet"],
        false,
        NO_LISTENERSET,
    ),
];

/// The features of the GATEWAY-HTTP profile's core.
pub const CORE_FEATURES: &[&str] = &["Gateway", "HTTPRoute", "ReferenceGrant"];

/// Whether a test is core for GATEWAY-HTTP.
pub fn is_core(test: &ConformanceTest) -> bool {
    test.features.iter().all(|f| CORE_FEATURES.contains(f))
}

const SAME: &str = "gateway-conformance-infra/same-namespace";
const HTTPS: &str = "gateway-conformance-infra/same-namespace-with-https-listener";
const ALL: &str = "gateway-conformance-infra/all-namespaces";
const BACKEND_NS: &str = "gateway-conformance-infra/backend-namespaces";
const WEB: &str = "gateway-conformance-web-backend";
const APP: &str = "gateway-conformance-app-backend";

/// Sets the Gateway of every case.
pub fn on(gateway: &str, cases: Vec<Case>) -> Vec<Case> {
    cases
        .into_iter()
        .map(|mut c| {
            c.gateway = gateway.to_string();
            c
        })
        .collect()
}

/// Polls Weir's status until `check` passes (or the convergence time is over).
pub fn status_eventually(
    h: &Harness,
    check: impl Fn(&Value) -> Result<(), String>,
) -> Result<(), String> {
    let start = Instant::now();
    loop {
        let result = h
            .status()
            .map_err(|e| format!("{e:#}"))
            .and_then(|s| check(&s));
        match result {
            Ok(()) => return Ok(()),
            Err(e) if start.elapsed() > h.timing().max => return Err(e),
            Err(_) => std::thread::sleep(std::time::Duration::from_millis(200)),
        }
    }
}

/// The suite's precondition: each route Accepted (and ResolvedRefs) by the Gateway.
fn accepted(h: &Harness, gateway: &str, routes: &[&str], resolved: bool) -> Result<(), String> {
    status_eventually(h, |s| {
        st::gateway_condition(s, gateway, "Programmed", ("True", None))?;
        for r in routes {
            let route = format!("{INFRA}/{r}");
            let route = if r.contains('/') {
                r.to_string()
            } else {
                route
            };
            st::route_condition(s, &route, gateway, "Accepted", ("True", None))?;
            if resolved {
                st::route_condition(s, &route, gateway, "ResolvedRefs", ("True", None))?;
            }
        }
        Ok(())
    })
}

/// The suite's precondition for every HTTPRoute of the test's manifests: Accepted by
/// `gateway`.
pub fn accepted_all(h: &Harness, gateway: &str) -> Result<(), String> {
    let routes = h.test_routes(gateway);
    status_eventually(h, |s| {
        st::gateway_condition(s, gateway, "Programmed", ("True", None))?;
        for r in &routes {
            st::route_condition(s, r, gateway, "Accepted", ("True", None))?;
        }
        Ok(())
    })
}

/// Every test this harness knows: core, then extended.
pub fn all() -> Vec<ConformanceTest> {
    let mut tests = core();
    tests.extend(crate::suite_extended::all());
    tests
}

fn core() -> Vec<ConformanceTest> {
    vec![
        ConformanceTest {
            name: "HTTPRouteSimpleSameNamespace",
            features: &["Gateway", "HTTPRoute"],
            manifests: &["httproute-simple-same-namespace.yaml"],
            provisional: false,
            run: |h| {
                accepted(h, SAME, &["gateway-conformance-infra-test"], true)?;
                h.run_cases(&on(SAME, vec![get("/").v(1)]))
            },
        },
        ConformanceTest {
            name: "HTTPRouteCrossNamespace",
            features: &["Gateway", "HTTPRoute"],
            manifests: &["httproute-cross-namespace.yaml"],
            provisional: false,
            run: |h| {
                accepted(h, BACKEND_NS, &[&format!("{WEB}/cross-namespace")], true)?;
                h.run_cases(&on(BACKEND_NS, vec![get("/").to("web-backend", WEB)]))
            },
        },
        ConformanceTest {
            name: "HTTPRouteMatching",
            features: &["Gateway", "HTTPRoute"],
            manifests: &["httproute-matching.yaml"],
            provisional: false,
            run: |h| {
                accepted(h, SAME, &["matching"], true)?;
                h.run_cases(&on(
                    SAME,
                    vec![
                        get("/").v(1),
                        get("/example").v(1),
                        get("/").header("Version", "one").v(1),
                        get("/v2").v(2),
                        get("/v2/example").v(2),
                        get("/").header("Version", "two").v(2),
                        get("/v2/").v(2),
                        get("/v2example").v(1),
                        get("/foo/v2/example").v(1),
                    ],
                ))
            },
        },
        ConformanceTest {
            name: "HTTPRouteExactPathMatching",
            features: &["Gateway", "HTTPRoute"],
            manifests: &["httproute-exact-path-matching.yaml"],
            provisional: false,
            run: |h| {
                accepted(h, SAME, &["exact-matching"], true)?;
                h.run_cases(&on(
                    SAME,
                    vec![
                        get("/one").v(1),
                        get("/two").v(2),
                        get("/").status(404),
                        get("/one/example").status(404),
                        get("/two/").status(404),
                        get("/Two").status(404),
                    ],
                ))
            },
        },
        ConformanceTest {
            name: "HTTPRouteHeaderMatching",
            features: &["Gateway", "HTTPRoute"],
            manifests: &["httproute-header-matching.yaml"],
            provisional: false,
            run: |h| {
                accepted(h, SAME, &["header-matching"], true)?;
                h.run_cases(&on(
                    SAME,
                    vec![
                        get("/").header("Version", "one").v(1),
                        get("/").header("Version", "two").v(2),
                        get("/")
                            .header("Version", "two")
                            .header("Color", "orange")
                            .v(1),
                        get("/")
                            .header("Version", "two")
                            .header("Color", "blue")
                            .v(2),
                        get("/").header("Color", "orange").status(404),
                        get("/").header("Some-Other-Header", "one").status(404),
                        get("/").header("Color", "blue").v(1),
                        get("/").header("Color", "green").v(1),
                        get("/").header("Color", "red").v(2),
                        get("/").header("Color", "yellow").v(2),
                        get("/").header("Color", "purple").status(404),
                    ],
                ))
            },
        },
        ConformanceTest {
            name: "HTTPRoutePathMatchOrder",
            features: &["Gateway", "HTTPRoute"],
            manifests: &["httproute-path-match-order.yaml"],
            provisional: false,
            run: |h| {
                accepted(h, SAME, &["path-matching-order"], true)?;
                h.run_cases(&on(
                    SAME,
                    vec![
                        get("/match/exact/one").v(3),
                        get("/match/exact").v(2),
                        get("/match").v(1),
                        get("/match/prefix/one/any").v(2),
                        get("/match/prefix/any").v(1),
                        get("/match/any").v(3),
                    ],
                ))
            },
        },
        ConformanceTest {
            name: "HTTPRouteMatchingAcrossRoutes",
            features: &["Gateway", "HTTPRoute"],
            manifests: &["httproute-matching-across-routes.yaml"],
            provisional: false,
            run: |h| {
                accepted(h, SAME, &["matching-part1", "matching-part2"], true)?;
                h.run_cases(&on(
                    SAME,
                    vec![
                        get("/").host("example.com").v(1),
                        get("/example").host("example.com").v(1),
                        get("/example").host("example.net").v(1),
                        get("/example")
                            .host("example.com")
                            .header("Version", "one")
                            .v(1),
                        get("/v2").host("example.com").v(2),
                        get("/v2").host("example.net").v(1),
                        get("/v2/example").host("example.com").v(2),
                        get("/").host("example.com").header("Version", "two").v(2),
                    ],
                ))
            },
        },
        ConformanceTest {
            name: "HTTPRouteHostnameIntersection",
            features: &["Gateway", "HTTPRoute"],
            manifests: &["httproute-hostname-intersection.yaml"],
            provisional: false,
            run: hostname_intersection,
        },
        ConformanceTest {
            name: "HTTPRouteListenerHostnameMatching",
            features: &["Gateway", "HTTPRoute"],
            manifests: &["httproute-listener-hostname-matching.yaml"],
            provisional: false,
            run: |h| {
                let gw = "gateway-conformance-infra/httproute-listener-hostname-matching";
                accepted(h, gw, &["backend-v1", "backend-v2", "backend-v3"], true)?;
                h.run_cases(&on(
                    gw,
                    vec![
                        get("/").host("bar.com").v(1),
                        get("/").host("foo.bar.com").v(2),
                        get("/").host("baz.bar.com").v(3),
                        get("/").host("boo.bar.com").v(3),
                        get("/").host("multiple.prefixes.bar.com").v(3),
                        get("/").host("multiple.prefixes.foo.com").v(3),
                        get("/").host("foo.com").status(404),
                        get("/").host("no.matching.host").status(404),
                    ],
                ))
            },
        },
        ConformanceTest {
            name: "HTTPRouteMultipleGateways",
            features: &["Gateway", "HTTPRoute"],
            manifests: &["httproute-multiple-gateways.yaml"],
            provisional: false,
            run: |h| {
                if !h.per_gateway_addresses() {
                    return Err(
                        "skip: needs one address per Gateway (weir bootstrap --bind-address)"
                            .into(),
                    );
                }
                accepted(
                    h,
                    SAME,
                    &[
                        "multiple-gateways-shared-route",
                        "same-namespace-dedicated-route",
                    ],
                    true,
                )?;
                accepted(
                    h,
                    ALL,
                    &[
                        "multiple-gateways-shared-route",
                        "all-namespaces-dedicated-route",
                    ],
                    true,
                )?;
                let mut cases = on(SAME, vec![get("/shared").v(1), get("/").v(2)]);
                cases.extend(on(ALL, vec![get("/shared").v(1), get("/").v(3)]));
                h.run_cases(&cases)
            },
        },
        ConformanceTest {
            name: "HTTPRouteRequestHeaderModifier",
            features: &["Gateway", "HTTPRoute"],
            manifests: &["httproute-request-header-modifier.yaml"],
            provisional: false,
            run: |h| {
                accepted(h, SAME, &["request-header-modifier"], true)?;
                h.run_cases(&on(SAME, header_modifier_cases()))
            },
        },
        ConformanceTest {
            name: "HTTPRouteRedirectHostAndStatus",
            features: &["Gateway", "HTTPRoute"],
            manifests: &["httproute-redirect-host-and-status.yaml"],
            provisional: false,
            run: |h| {
                accepted(h, SAME, &["redirect-host-and-status"], true)?;
                let to_org = || Redirect {
                    host: Some("example.org".into()),
                    ..Default::default()
                };
                h.run_cases(&on(
                    SAME,
                    vec![
                        get("/hostname-redirect").redirect(302, to_org()),
                        get("/host-and-status").redirect(301, to_org()),
                    ],
                ))
            },
        },
        ConformanceTest {
            name: "HTTPRouteNoBackendRefs",
            features: &["Gateway", "HTTPRoute"],
            manifests: &["httproute-omitted-backendrefs.yaml"],
            provisional: false,
            run: |h| {
                accepted(h, SAME, &["omitted-backendrefs"], false)?;
                h.run_cases(&on(
                    SAME,
                    vec![
                        get("/forward").v(1),
                        get("/omitted-no-forward").status(500),
                        get("/empty-no-forward").status(500),
                    ],
                ))
            },
        },
        ConformanceTest {
            name: "HTTPRouteWeight",
            features: &["Gateway", "HTTPRoute"],
            manifests: &["httproute-weight.yaml"],
            provisional: false,
            run: weight,
        },
        ConformanceTest {
            name: "HTTPRouteServiceTypes",
            features: &["Gateway", "HTTPRoute"],
            manifests: &["httproute-service-types.yaml"],
            provisional: false,
            run: |h| {
                accepted(h, SAME, &["service-types"], true)?;
                h.run_cases(&on(
                    SAME,
                    vec![
                        get("/manual-endpointslices").v(1),
                        get("/headless-manual-endpointslices").v(1),
                        get("/headless").v(1),
                    ],
                ))
            },
        },
        ConformanceTest {
            name: "HTTPRouteInvalidNonExistentBackendRef",
            features: &["Gateway", "HTTPRoute"],
            manifests: &["httproute-invalid-nonexistent-backendref.yaml"],
            provisional: false,
            run: |h| {
                invalid_ref(h, "invalid-nonexistent-backend-ref", "BackendNotFound")?;
                h.run_cases(&on(SAME, vec![get("/").status(500)]))
            },
        },
        ConformanceTest {
            name: "HTTPRouteInvalidBackendRefUnknownKind",
            features: &["Gateway", "HTTPRoute"],
            manifests: &["httproute-invalid-backendref-unknown-kind.yaml"],
            provisional: false,
            run: |h| {
                invalid_ref(h, "invalid-backend-ref-unknown-kind", "InvalidKind")?;
                h.run_cases(&on(SAME, vec![get("/v2").status(500)]))
            },
        },
        ConformanceTest {
            name: "HTTPRouteInvalidCrossNamespaceBackendRef",
            features: &["Gateway", "HTTPRoute", "ReferenceGrant"],
            manifests: &["httproute-invalid-cross-namespace-backend-ref.yaml"],
            provisional: false,
            run: |h| {
                invalid_ref(h, "invalid-cross-namespace-backend-ref", "RefNotPermitted")?;
                h.run_cases(&on(SAME, vec![get("/").status(500)]))
            },
        },
        ConformanceTest {
            name: "HTTPRouteInvalidReferenceGrant",
            features: &["Gateway", "HTTPRoute", "ReferenceGrant"],
            manifests: &["httproute-invalid-reference-grant.yaml"],
            provisional: false,
            run: |h| {
                invalid_ref(h, "reference-grant", "RefNotPermitted")?;
                h.run_cases(&on(SAME, vec![get("/").status(500)]))
            },
        },
        ConformanceTest {
            name: "HTTPRoutePartiallyInvalidViaInvalidReferenceGrant",
            features: &["Gateway", "HTTPRoute", "ReferenceGrant"],
            manifests: &["httproute-partially-invalid-via-invalid-reference-grant.yaml"],
            provisional: false,
            run: |h| {
                invalid_ref(h, "invalid-reference-grant", "RefNotPermitted")?;
                h.run_cases(&on(
                    SAME,
                    vec![get("/v2").status(500), get("/").to("app-backend-v1", APP)],
                ))
            },
        },
        ConformanceTest {
            name: "HTTPRouteReferenceGrant",
            features: &["Gateway", "HTTPRoute", "ReferenceGrant"],
            manifests: &["httproute-reference-grant.yaml"],
            provisional: false,
            run: |h| {
                accepted(h, SAME, &["reference-grant"], true)?;
                h.run_cases(&on(SAME, vec![get("/").to("web-backend", WEB)]))?;
                h.test_docs_mut().retain(|d| {
                    !(crate::manifests::kind(d) == "ReferenceGrant"
                        && crate::manifests::name(d) == "reference-grant")
                });
                h.write_test_docs().map_err(|e| format!("{e:#}"))?;
                h.run_cases(&on(SAME, vec![get("/").status(500)]))
            },
        },
        ConformanceTest {
            name: "HTTPRouteInvalidCrossNamespaceParentRef",
            features: &["Gateway", "HTTPRoute"],
            manifests: &["httproute-invalid-cross-namespace-parent-ref.yaml"],
            provisional: false,
            run: |h| {
                let route = format!("{WEB}/invalid-cross-namespace-parent-ref");
                status_eventually(h, |s| {
                    st::route_condition(
                        s,
                        &route,
                        SAME,
                        "Accepted",
                        ("False", Some("NotAllowedByListeners")),
                    )?;
                    st::no_accepted_parent(s, &route)?;
                    st::attached_routes(s, SAME, "http", 0)
                })
            },
        },
        ConformanceTest {
            name: "HTTPRouteInvalidParentRefNotMatchingSectionName",
            features: &["Gateway", "HTTPRoute"],
            manifests: &["httproute-invalid-parentref-not-matching-section-name.yaml"],
            provisional: false,
            run: |h| {
                let route = format!("{INFRA}/httproute-listener-not-matching-section-name");
                status_eventually(h, |s| {
                    st::route_condition(
                        s,
                        &route,
                        SAME,
                        "Accepted",
                        ("False", Some("NoMatchingParent")),
                    )?;
                    st::no_accepted_parent(s, &route)?;
                    st::attached_routes(s, SAME, "http", 0)
                })
            },
        },
        ConformanceTest {
            name: "GatewayWithAttachedRoutes",
            features: &["Gateway", "HTTPRoute"],
            manifests: &["gateway-with-attached-routes.yaml"],
            provisional: false,
            run: |h| {
                status_eventually(h, |s| {
                    let one = "gateway-conformance-infra/gateway-with-one-attached-route";
                    let two = "gateway-conformance-infra/gateway-with-two-attached-routes";
                    let unresolved = "gateway-conformance-infra/unresolved-gateway-with-one-attached-unresolved-route";
                    st::listener_condition(s, one, "http", "Accepted", ("True", None))?;
                    st::listener_condition(s, one, "http", "ResolvedRefs", ("True", None))?;
                    st::supported_kinds(s, one, "http", &["HTTPRoute"])?;
                    st::attached_routes(s, one, "http", 1)?;
                    st::attached_routes(s, two, "http", 2)?;
                    st::route_condition(
                        s,
                        &format!("{INFRA}/http-route-not-accepted"),
                        two,
                        "Accepted",
                        ("False", Some("NoMatchingListenerHostname")),
                    )?;
                    st::listener_condition(s, unresolved, "tls", "Programmed", ("False", None))?;
                    st::listener_condition(s, unresolved, "tls", "ResolvedRefs", ("False", None))?;
                    st::attached_routes(s, unresolved, "tls", 1)?;
                    st::route_condition(
                        s,
                        &format!("{INFRA}/http-route-4"),
                        unresolved,
                        "ResolvedRefs",
                        ("False", None),
                    )
                })
            },
        },
        ConformanceTest {
            name: "HTTPRouteHTTPSListener",
            features: &["Gateway", "HTTPRoute"],
            manifests: &["httproute-https-listener.yaml"],
            provisional: false,
            run: |h| {
                accepted(
                    h,
                    HTTPS,
                    &["httproute-https-test", "httproute-https-test-no-hostname"],
                    true,
                )?;
                h.run_cases(&on(
                    HTTPS,
                    vec![
                        get("/").host("example.org").https().v(1),
                        get("/").host("unknown-example.org").https().status(404),
                        get("/").host("second-example.org").https().v(2),
                    ],
                ))
            },
        },
        ConformanceTest {
            name: "HTTPRouteObservedGenerationBump",
            features: &["Gateway", "HTTPRoute"],
            manifests: &["httproute-observed-generation-bump.yaml"],
            provisional: false,
            run: |h| {
                let route = format!("{INFRA}/observed-generation-bump");
                accepted(h, SAME, &["observed-generation-bump"], true)?;
                h.mutate("HTTPRoute", "observed-generation-bump", |d| {
                    d["spec"]["rules"][0]["backendRefs"][0]["name"] = "infra-backend-v2".into();
                })
                .map_err(|e| format!("{e:#}"))?;
                status_eventually(h, |s| {
                    st::route_condition(s, &route, SAME, "Accepted", ("True", None))?;
                    st::route_condition(s, &route, SAME, "ResolvedRefs", ("True", None))?;
                    let parent = st::route_parent(s, "HTTPRoute", &route, SAME)?;
                    st::generation_current(parent.get("conditions"), 2, &route)
                })
            },
        },
        ConformanceTest {
            name: "GatewayClassObservedGenerationBump",
            features: &["Gateway"],
            manifests: &["gatewayclass-observed-generation-bump.yaml"],
            provisional: false,
            run: |h| {
                let key = "GatewayClass/gatewayclass-observed-generation-bump";
                status_eventually(h, |s| {
                    let o = st::object(s, key)?;
                    st::condition(o.get("conditions"), "Accepted")
                        .map(|_| ())
                        .ok_or_else(|| format!("{key}: no Accepted condition"))
                })?;
                h.mutate(
                    "GatewayClass",
                    "gatewayclass-observed-generation-bump",
                    |d| {
                        d["spec"]["description"] = "new".into();
                    },
                )
                .map_err(|e| format!("{e:#}"))?;
                status_eventually(h, |s| {
                    st::generation_current(st::object(s, key)?.get("conditions"), 2, key)
                })
            },
        },
        ConformanceTest {
            name: "GatewayObservedGenerationBump",
            features: &["Gateway"],
            manifests: &["gateway-observed-generation-bump.yaml"],
            provisional: false,
            run: |h| {
                let gw = "gateway-conformance-infra/gateway-observed-generation-bump";
                let key = format!("Gateway/{gw}");
                status_eventually(h, |s| {
                    st::gateway_condition(s, gw, "Accepted", ("True", None))
                })?;
                h.mutate("Gateway", "gateway-observed-generation-bump", |d| {
                    if let Some(l) = d["spec"]["listeners"].as_array_mut() {
                        l.push(serde_json::json!({
                            "name": "alternate", "port": 80, "protocol": "HTTP", "hostname": "foo.com",
                            "allowedRoutes": {"namespaces": {"from": "All"}},
                        }));
                    }
                })
                .map_err(|e| format!("{e:#}"))?;
                status_eventually(h, |s| {
                    let o = st::object(s, &key)?;
                    st::generation_current(o.get("conditions"), 2, &key)?;
                    for l in ["http", "alternate"] {
                        let ls = st::listener(s, gw, l)?;
                        st::generation_current(
                            ls.get("conditions"),
                            2,
                            &format!("{key} listener {l}"),
                        )?;
                    }
                    Ok(())
                })
            },
        },
        ConformanceTest {
            name: "GatewayInvalidParametersRef",
            features: &["Gateway"],
            manifests: &["gateway-invalid-parameters-ref.yaml"],
            provisional: false,
            run: |h| {
                let gw = "gateway-conformance-infra/gateway-invalid-parameters-ref";
                status_eventually(h, |s| {
                    st::gateway_condition(s, gw, "Accepted", ("False", Some("InvalidParameters")))
                })
            },
        },
        ConformanceTest {
            name: "GatewayInvalidRouteKind",
            features: &["Gateway"],
            manifests: &["gateway-invalid-route-kind.yaml"],
            provisional: false,
            run: |h| {
                let only = "gateway-conformance-infra/gateway-only-invalid-route-kind";
                let both = "gateway-conformance-infra/gateway-supported-and-invalid-route-kind";
                status_eventually(h, |s| {
                    for (gw, kinds) in [(only, &[][..]), (both, &["HTTPRoute"][..])] {
                        st::listener_condition(
                            s,
                            gw,
                            "http",
                            "ResolvedRefs",
                            ("False", Some("InvalidRouteKinds")),
                        )?;
                        st::supported_kinds(s, gw, "http", kinds)?;
                        st::attached_routes(s, gw, "http", 0)?;
                    }
                    Ok(())
                })
            },
        },
        ConformanceTest {
            name: "GatewayInvalidTLSConfiguration",
            features: &["Gateway"],
            manifests: &["gateway-invalid-tls-configuration.yaml"],
            provisional: false,
            run: |h| {
                status_eventually(h, |s| {
                    for name in [
                        "gateway-certificate-nonexistent-secret",
                        "gateway-certificate-unsupported-group",
                        "gateway-certificate-unsupported-kind",
                        "gateway-certificate-malformed-secret",
                    ] {
                        let gw = format!("{INFRA}/{name}");
                        st::listener_condition(
                            s,
                            &gw,
                            "https",
                            "ResolvedRefs",
                            ("False", Some("InvalidCertificateRef")),
                        )?;
                        st::supported_kinds(s, &gw, "https", &["HTTPRoute"])?;
                        st::attached_routes(s, &gw, "https", 0)?;
                    }
                    Ok(())
                })
            },
        },
        ConformanceTest {
            name: "GatewayListenerUnsupportedProtocol",
            features: &["Gateway"],
            manifests: &["gateway-invalid-listeners-unsupported-protocol.yaml"],
            provisional: false,
            run: |h| {
                let only = "gateway-conformance-infra/gateway-only-unsupported-protocols";
                let mixed = "gateway-conformance-infra/gateway-supported-and-unsupported-protocols";
                status_eventually(h, |s| {
                    st::gateway_condition(
                        s,
                        only,
                        "Accepted",
                        ("False", Some("ListenersNotValid")),
                    )?;
                    st::gateway_condition(
                        s,
                        mixed,
                        "Accepted",
                        ("True", Some("ListenersNotValid")),
                    )?;
                    st::listener_condition(
                        s,
                        mixed,
                        "http",
                        "Accepted",
                        ("True", Some("Accepted")),
                    )?;
                    st::supported_kinds(s, mixed, "http", &["HTTPRoute"])?;
                    for gw in [only, mixed] {
                        st::listener_condition(
                            s,
                            gw,
                            "invalid",
                            "Accepted",
                            ("False", Some("UnsupportedProtocol")),
                        )?;
                        st::supported_kinds(s, gw, "invalid", &[])?;
                        st::attached_routes(s, gw, "invalid", 0)?;
                    }
                    Ok(())
                })
            },
        },
        ConformanceTest {
            name: "GatewayModifyListeners",
            features: &["Gateway"],
            manifests: &["gateway-modify-listeners.yaml"],
            provisional: false,
            run: |h| {
                let add = "gateway-conformance-infra/gateway-add-listener";
                let remove = "gateway-conformance-infra/gateway-remove-listener";
                status_eventually(h, |s| {
                    st::gateway_condition(s, add, "Accepted", ("True", None))
                })?;
                h.mutate("Gateway", "gateway-add-listener", |d| {
                    if let Some(l) = d["spec"]["listeners"].as_array_mut() {
                        l.push(serde_json::json!({
                            "name": "http", "port": 80, "protocol": "HTTP", "hostname": "data.test.com",
                            "allowedRoutes": {"namespaces": {"from": "All"}},
                        }));
                    }
                })
                .map_err(|e| format!("{e:#}"))?;
                status_eventually(h, |s| {
                    let key = format!("Gateway/{add}");
                    st::generation_current(st::object(s, &key)?.get("conditions"), 2, &key)?;
                    for l in ["https", "http"] {
                        st::listener_condition(s, add, l, "Accepted", ("True", None))?;
                        st::listener_condition(s, add, l, "ResolvedRefs", ("True", None))?;
                        st::attached_routes(s, add, l, 1)?;
                    }
                    Ok(())
                })?;
                h.mutate("Gateway", "gateway-remove-listener", |d| {
                    if let Some(l) = d["spec"]["listeners"].as_array_mut() {
                        l.retain(|l| l["name"] != "https");
                    }
                })
                .map_err(|e| format!("{e:#}"))?;
                status_eventually(h, |s| {
                    let key = format!("Gateway/{remove}");
                    st::generation_current(st::object(s, &key)?.get("conditions"), 2, &key)?;
                    let listeners = st::object(s, &key)?["listeners"]
                        .as_array()
                        .map_or(0, Vec::len);
                    if listeners != 1 {
                        return Err(format!(
                            "{key} reports {listeners} listeners (wanted only http)"
                        ));
                    }
                    st::listener_condition(s, remove, "http", "Accepted", ("True", None))?;
                    st::attached_routes(s, remove, "http", 1)
                })
            },
        },
        ConformanceTest {
            name: "GatewayNameMaximumLength",
            features: &["Gateway"],
            manifests: &["gateway-name-maximum-length.yaml"],
            provisional: false,
            run: |h| {
                let name = h
                    .gateway_names()
                    .into_iter()
                    .find(|n| n.contains("gateway-name-maximum-length"))
                    .ok_or("no Gateway in the manifest")?;
                status_eventually(h, |s| {
                    let key = format!("Gateway/{name}");
                    st::generation_current(st::object(s, &key)?.get("conditions"), 1, &key)
                })
            },
        },
        ConformanceTest {
            name: "GatewaySecretMissingReferenceGrant",
            features: &["Gateway", "ReferenceGrant"],
            manifests: &["gateway-secret-missing-reference-grant.yaml"],
            provisional: false,
            run: |h| secret_listener(h, "gateway-secret-missing-reference-grant", false),
        },
        ConformanceTest {
            name: "GatewaySecretInvalidReferenceGrant",
            features: &["Gateway", "ReferenceGrant"],
            manifests: &["gateway-secret-invalid-reference-grant.yaml"],
            provisional: false,
            run: |h| secret_listener(h, "gateway-secret-invalid-reference-grant", false),
        },
        ConformanceTest {
            name: "GatewaySecretReferenceGrantAllInNamespace",
            features: &["Gateway", "ReferenceGrant"],
            manifests: &["gateway-secret-reference-grant-all-in-namespace.yaml"],
            provisional: false,
            run: |h| secret_listener(h, "gateway-secret-reference-grant-all-in-namespace", true),
        },
        ConformanceTest {
            name: "GatewaySecretReferenceGrantSpecific",
            features: &["Gateway", "ReferenceGrant"],
            manifests: &["gateway-secret-reference-grant-specific.yaml"],
            provisional: false,
            run: |h| secret_listener(h, "gateway-secret-reference-grant-specific", true),
        },
    ]
}

fn secret_listener(h: &Harness, name: &str, permitted: bool) -> Result<(), String> {
    let gw = format!("{INFRA}/{name}");
    status_eventually(h, |s| {
        if permitted {
            st::listener_condition(s, &gw, "https", "Programmed", ("True", Some("Programmed")))?;
            st::listener_condition(s, &gw, "https", "ResolvedRefs", ("True", None))?;
            st::attached_routes(s, &gw, "https", 0)
        } else {
            st::listener_condition(
                s,
                &gw,
                "https",
                "ResolvedRefs",
                ("False", Some("RefNotPermitted")),
            )
        }
    })
}

fn invalid_ref(h: &Harness, route: &str, reason: &str) -> Result<(), String> {
    let route = format!("{INFRA}/{route}");
    status_eventually(h, |s| {
        st::route_condition(s, &route, SAME, "Accepted", ("True", None))?;
        st::route_condition(s, &route, SAME, "ResolvedRefs", ("False", Some(reason)))
    })
}

/// HTTPRouteRequestHeaderModifier's cases (also used with backend filters).
pub fn header_modifier_cases() -> Vec<Case> {
    vec![
        get("/set")
            .header("Some-Other-Header", "val")
            .up_header("Some-Other-Header", "val")
            .up_header("X-Header-Set", "set-overwrites-values")
            .v(1),
        get("/set")
            .header("Some-Other-Header", "val")
            .header("X-Header-Set", "some-other-value")
            .up_header("Some-Other-Header", "val")
            .up_header("X-Header-Set", "set-overwrites-values")
            .v(1),
        get("/add")
            .header("Some-Other-Header", "val")
            .up_header("Some-Other-Header", "val")
            .up_header("X-Header-Add", "add-appends-values")
            .v(1),
        get("/add")
            .header("Some-Other-Header", "val")
            .header("X-Header-Add", "some-other-value")
            .up_header("Some-Other-Header", "val")
            .up_header("X-Header-Add", "some-other-value,add-appends-values")
            .v(1),
        get("/remove")
            .header("X-Header-Remove", "val")
            .up_absent("X-Header-Remove")
            .v(1),
        get("/multiple")
            .header("X-Header-Set-2", "set-val-2")
            .header("X-Header-Add-2", "add-val-2")
            .header("X-Header-Remove-2", "remove-val-2")
            .header("Another-Header", "another-header-val")
            .up_header("X-Header-Set-1", "header-set-1")
            .up_header("X-Header-Set-2", "header-set-2")
            .up_header("X-Header-Add-1", "header-add-1")
            .up_header("X-Header-Add-2", "add-val-2,header-add-2")
            .up_header("X-Header-Add-3", "header-add-3")
            .up_header("Another-Header", "another-header-val")
            .up_absent("X-Header-Remove-1")
            .up_absent("X-Header-Remove-2")
            .v(1),
        get("/case-insensitivity")
            .header("x-header-set", "original-val-set")
            .header("x-header-add", "original-val-add")
            .header("x-header-remove", "original-val-remove")
            .header("Another-Header", "another-header-val")
            .up_header("X-Header-Set", "header-set")
            .up_header("X-Header-Add", "original-val-add,header-add")
            .up_header("Another-Header", "another-header-val")
            .up_absent("x-header-remove")
            .up_absent("X-Header-Remove")
            .v(1),
    ]
}

fn hostname_intersection(h: &mut Harness) -> Result<(), String> {
    let gw = "gateway-conformance-infra/httproute-hostname-intersection";
    let all = "gateway-conformance-infra/httproute-hostname-intersection-all";
    accepted(
        h,
        gw,
        &[
            "specific-host-matches-listener-specific-host",
            "specific-host-matches-listener-wildcard-host",
            "wildcard-host-matches-listener-specific-host",
            "wildcard-host-matches-listener-wildcard-host",
        ],
        true,
    )?;
    status_eventually(h, |s| {
        st::route_condition(
            s,
            &format!("{INFRA}/no-intersecting-hosts"),
            gw,
            "Accepted",
            ("False", Some("NoMatchingListenerHostname")),
        )?;
        st::attached_routes(s, gw, "listener-1", 2)?;
        st::attached_routes(s, gw, "listener-2", 1)?;
        st::attached_routes(s, gw, "listener-3", 1)?;
        for l in ["listener-1", "listener-2", "listener-3"] {
            st::listener_condition(s, gw, l, "Accepted", ("True", None))?;
            st::listener_condition(s, gw, l, "ResolvedRefs", ("True", None))?;
            st::supported_kinds(s, gw, l, &["HTTPRoute"])?;
        }
        Ok(())
    })?;
    let rows: &[(&str, &str, u8)] = &[
        ("very.specific.com", "/s1", 1),
        ("very.specific.com:1234", "/s1", 1),
        ("non.matching.com", "/s1", 0),
        ("foo.nonmatchingwildcard.io", "/s1", 0),
        ("foo.wildcard.io", "/s1", 0),
        ("very.specific.com", "/non-matching-prefix", 0),
        ("foo.wildcard.io", "/s2", 2),
        ("bar.wildcard.io", "/s2", 2),
        ("foo.bar.wildcard.io", "/s2", 2),
        ("non.matching.com", "/s2", 0),
        ("wildcard.io", "/s2", 0),
        ("very.specific.com", "/s2", 0),
        ("foo.wildcard.io", "/non-matching-prefix", 0),
        ("very.specific.com", "/s3", 3),
        ("non.matching.com", "/s3", 0),
        ("foo.specific.com", "/s3", 0),
        ("foo.wildcard.io", "/s3", 0),
        ("foo.anotherwildcard.io", "/s4", 1),
        ("bar.anotherwildcard.io", "/s4", 1),
        ("foo.bar.anotherwildcard.io", "/s4", 1),
        ("anotherwildcard.io", "/s4", 0),
        ("foo.wildcard.io", "/s4", 0),
        ("very.specific.com", "/s4", 0),
        ("foo.anotherwildcard.io", "/non-matching-prefix", 0),
        ("specific.but.wrong.com", "/s5", 0),
        ("wildcard.io", "/s5", 0),
    ];
    let row = |host: &str, path: &str, v: u8| {
        let c = get(path).host(host);
        if v == 0 { c.status(404) } else { c.v(v) }
    };
    let mut cases = on(
        gw,
        rows.iter()
            .map(|(host, path, v)| row(host, path, *v))
            .collect(),
    );
    if h.per_gateway_addresses() {
        let rows_all: &[(&str, u8)] = &[
            ("first.com", 2),
            ("sub.first.com", 2),
            ("second.com", 2),
            ("sub.second.com", 2),
            ("third.com", 0),
            ("sub.third.com", 0),
        ];
        cases.extend(on(
            all,
            rows_all
                .iter()
                .map(|(host, v)| row(host, "/", *v))
                .collect(),
        ));
    }
    h.run_cases(&cases)?;
    if !h.per_gateway_addresses() {
        accepted(h, all, &["httproute-hostname-intersection-all"], true)?;
        let rows_all: &[(&str, u8)] = &[
            ("first.com", 2),
            ("sub.first.com", 2),
            ("second.com", 2),
            ("sub.second.com", 2),
            ("third.com", 0),
            ("sub.third.com", 0),
        ];
        h.run_cases(&on(
            all,
            rows_all
                .iter()
                .map(|(host, v)| row(host, "/", *v))
                .collect(),
        ))?;
    }
    Ok(())
}

/// HTTPRouteWeight: 500 requests over 10 connections at a time; v1 ≈ 70 %, v2 ≈ 30 %,
/// v3 never, each within ±5 %; up to 10 attempts.
fn weight(h: &mut Harness) -> Result<(), String> {
    accepted(h, SAME, &["weighted-backends"], true)?;
    h.run_cases(&on(SAME, vec![get("/").to("", INFRA)]))?;
    let addr = h.address(SAME, None).map_err(|e| format!("{e:#}"))?;
    let mut last = String::new();
    for _ in 0..10 {
        let counts = std::sync::Mutex::new(std::collections::BTreeMap::<String, u32>::new());
        let errors = std::sync::atomic::AtomicU32::new(0);
        std::thread::scope(|s| {
            for worker in 0..10u32 {
                let counts = &counts;
                let errors = &errors;
                s.spawn(move || {
                    for i in 0..50u32 {
                        let mut case = get("/");
                        if (worker + i) % 2 == 0 {
                            case = case.header("X-Jitter", &format!("{}", worker * 1000 + i));
                        }
                        let res = crate::client::send(addr, &case.request(addr));
                        let pod = res
                            .ok()
                            .filter(|r| r.status == 200)
                            .and_then(|r| serde_json::from_slice::<Value>(&r.body).ok())
                            .and_then(|v| v.get("pod").and_then(Value::as_str).map(str::to_string));
                        match pod {
                            Some(pod) => {
                                let parts: Vec<&str> = pod.split('-').collect();
                                let backend = parts[..parts.len().saturating_sub(2)].join("-");
                                *counts
                                    .lock()
                                    .unwrap_or_else(|e| e.into_inner())
                                    .entry(backend)
                                    .or_default() += 1;
                            }
                            None => {
                                errors.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            }
                        }
                    }
                });
            }
        });
        let counts = counts.into_inner().unwrap_or_else(|e| e.into_inner());
        let share = |b: &str| f64::from(counts.get(b).copied().unwrap_or(0)) / 500.0;
        let ok = errors.into_inner() == 0
            && counts.len() == 2
            && (share("infra-backend-v1") - 0.7).abs() <= 0.05
            && (share("infra-backend-v2") - 0.3).abs() <= 0.05
            && share("infra-backend-v3") == 0.0;
        if ok {
            return Ok(());
        }
        last = format!("500 × GET / split {counts:?} (wanted v1 70 %, v2 30 %, v3 none, ±5 %)");
    }
    Err(last)
}
