//! A table of bad inputs and the condition each must produce. Bad input never aborts
//! translation: every case also checks that a good route beside it still translates.

use super::*;

struct Case {
    name: &'static str,
    /// Extra objects added to the base world.
    yaml: String,
    /// Which object's condition to check: (kind, ns, name).
    object: (Kind, &'static str, &'static str),
    /// For routes: the parent index; for Gateways: the listener name; else unused.
    at: &'static str,
    condition: &'static str,
    status: &'static str,
    reason: &'static str,
    /// The message must contain this (the field at fault).
    field: &'static str,
}

fn route(name: &str, rules: &str) -> String {
    mk_route(
        "infra",
        name,
        &format!("parentRefs:\n- name: gw\nrules:\n{rules}"),
    )
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "dangling backendRef",
            yaml: route("r", "- backendRefs: [{name: missing, port: 8080}]"),
            object: (Kind::HttpRoute, "infra", "r"),
            at: "0",
            condition: "ResolvedRefs",
            status: "False",
            reason: "BackendNotFound",
            field: "spec.rules[0].backendRefs[0]",
        },
        Case {
            name: "backendRef of an unknown kind",
            yaml: route("r", "- backendRefs: [{group: example.com, kind: Bucket, name: b}]"),
            object: (Kind::HttpRoute, "infra", "r"),
            at: "0",
            condition: "ResolvedRefs",
            status: "False",
            reason: "InvalidKind",
            field: "spec.rules[0].backendRefs[0]",
        },
        Case {
            name: "Service backendRef without a port",
            yaml: route("r", "- backendRefs: [{name: v1}]"),
            object: (Kind::HttpRoute, "infra", "r"),
            at: "0",
            condition: "ResolvedRefs",
            status: "False",
            reason: "UnsupportedValue",
            field: "spec.rules[0].backendRefs[0].port",
        },
        Case {
            name: "cross-namespace backendRef without a grant",
            yaml: format!(
                "{}{}",
                mk_service("web", "web", 8080, &["10.9.0.1"]),
                route("r", "- backendRefs: [{name: web, namespace: web, port: 8080}]")
            ),
            object: (Kind::HttpRoute, "infra", "r"),
            at: "0",
            condition: "ResolvedRefs",
            status: "False",
            reason: "RefNotPermitted",
            field: "spec.rules[0].backendRefs[0]",
        },
        Case {
            name: "dangling DirectResponse ExtensionRef",
            yaml: route(
                "r",
                "- filters:\n  - type: ExtensionRef\n    extensionRef: {group: gateway.weir.dev, kind: DirectResponse, name: gone}",
            ),
            object: (Kind::HttpRoute, "infra", "r"),
            at: "0",
            condition: "ResolvedRefs",
            status: "False",
            reason: "BackendNotFound",
            field: "spec.rules[0].filters[0].extensionRef",
        },
        Case {
            name: "bad path regex",
            yaml: route(
                "r",
                "- matches: [{path: {type: RegularExpression, value: \"/(unclosed\"}}]\n  backendRefs: [{name: v1, port: 8080}]",
            ),
            object: (Kind::HttpRoute, "infra", "r"),
            at: "0",
            condition: "Accepted",
            status: "False",
            reason: "UnsupportedValue",
            field: "spec.rules[0].matches[0].path.value",
        },
        Case {
            name: "bad header regex",
            yaml: route(
                "r",
                "- matches: [{headers: [{name: a, type: RegularExpression, value: \"[z-a]\"}]}]\n  backendRefs: [{name: v1, port: 8080}]",
            ),
            object: (Kind::HttpRoute, "infra", "r"),
            at: "0",
            condition: "Accepted",
            status: "False",
            reason: "UnsupportedValue",
            field: "spec.rules[0].matches[0].headers[0].value",
        },
        Case {
            name: "unparseable timeout",
            yaml: route("r", "- timeouts: {request: soon}\n  backendRefs: [{name: v1, port: 8080}]"),
            object: (Kind::HttpRoute, "infra", "r"),
            at: "0",
            condition: "Accepted",
            status: "False",
            reason: "UnsupportedValue",
            field: "spec.rules[0].timeouts.request",
        },
        Case {
            name: "filter type without its settings",
            yaml: route("r", "- filters: [{type: RequestHeaderModifier}]\n  backendRefs: [{name: v1, port: 8080}]"),
            object: (Kind::HttpRoute, "infra", "r"),
            at: "0",
            condition: "Accepted",
            status: "False",
            reason: "UnsupportedValue",
            field: "spec.rules[0].filters[0].requestHeaderModifier",
        },
        Case {
            name: "CORS origin with a path",
            yaml: route(
                "r",
                "- filters: [{type: CORS, cors: {allowOrigins: [\"https://a.example\", \"https://b.example/app\"]}}]\n  backendRefs: [{name: v1, port: 8080}]",
            ),
            object: (Kind::HttpRoute, "infra", "r"),
            at: "0",
            condition: "Accepted",
            status: "False",
            reason: "UnsupportedValue",
            field: "spec.rules[0].filters[0].cors.allowOrigins[1]",
        },
        Case {
            name: "CORS origin with a wildcard inside the host",
            yaml: route(
                "r",
                "- filters: [{type: CORS, cors: {allowOrigins: [\"https://a.*.example\"]}}]\n  backendRefs: [{name: v1, port: 8080}]",
            ),
            object: (Kind::HttpRoute, "infra", "r"),
            at: "0",
            condition: "Accepted",
            status: "False",
            reason: "UnsupportedValue",
            field: "spec.rules[0].filters[0].cors.allowOrigins[0]",
        },
        Case {
            name: "CORS method that is not a token",
            yaml: route(
                "r",
                "- filters: [{type: CORS, cors: {allowOrigins: [\"*\"], allowMethods: [GET, \"PO ST\"]}}]\n  backendRefs: [{name: v1, port: 8080}]",
            ),
            object: (Kind::HttpRoute, "infra", "r"),
            at: "0",
            condition: "Accepted",
            status: "False",
            reason: "UnsupportedValue",
            field: "spec.rules[0].filters[0].cors.allowMethods[1]",
        },
        Case {
            name: "retry code that is not an error status",
            yaml: route("r", "- retry: {codes: [500, 200]}\n  backendRefs: [{name: v1, port: 8080}]"),
            object: (Kind::HttpRoute, "infra", "r"),
            at: "0",
            condition: "Accepted",
            status: "False",
            reason: "UnsupportedValue",
            field: "spec.rules[0].retry.codes[1]",
        },
        Case {
            name: "unparseable retry backoff",
            yaml: route("r", "- retry: {attempts: 2, backoff: often}\n  backendRefs: [{name: v1, port: 8080}]"),
            object: (Kind::HttpRoute, "infra", "r"),
            at: "0",
            condition: "Accepted",
            status: "False",
            reason: "UnsupportedValue",
            field: "spec.rules[0].retry.backoff",
        },
        Case {
            name: "negative retry attempts",
            yaml: route("r", "- retry: {attempts: -1}\n  backendRefs: [{name: v1, port: 8080}]"),
            object: (Kind::HttpRoute, "infra", "r"),
            at: "0",
            condition: "Accepted",
            status: "False",
            reason: "UnsupportedValue",
            field: "spec.rules[0].retry.attempts",
        },
        Case {
            name: "conflicting listeners",
            yaml: mk_gateway("infra", "clash", "- {name: a, port: 80, protocol: HTTP}\n- {name: b, port: 80, protocol: HTTP}"),
            object: (Kind::Gateway, "infra", "clash"),
            at: "b",
            condition: "Conflicted",
            status: "True",
            reason: "HostnameConflict",
            field: "listener b",
        },
        Case {
            name: "certificateRef to a missing Secret",
            yaml: mk_gateway(
                "infra",
                "tls",
                "- name: tls\n  port: 443\n  protocol: HTTPS\n  tls: {certificateRefs: [{name: does-not-exist}]}",
            ),
            object: (Kind::Gateway, "infra", "tls"),
            at: "tls",
            condition: "ResolvedRefs",
            status: "False",
            reason: "InvalidCertificateRef",
            field: "spec.listeners[0].tls.certificateRefs[0]",
        },
        Case {
            name: "unknown Upstream type",
            yaml: "apiVersion: gateway.weir.dev/v1alpha1\nkind: Upstream\nmetadata: {name: u, namespace: infra}\nspec:\n  martian: {}\n---\n".to_string(),
            object: (Kind::Upstream, "infra", "u"),
            at: "",
            condition: "Accepted",
            status: "False",
            reason: "PluginFailed",
            field: "spec.martian",
        },
        Case {
            name: "malformed Upstream spec",
            yaml: "apiVersion: gateway.weir.dev/v1alpha1\nkind: Upstream\nmetadata: {name: u, namespace: infra}\nspec:\n  static: {}\n  kube: {}\n---\n".to_string(),
            object: (Kind::Upstream, "infra", "u"),
            at: "",
            condition: "Accepted",
            status: "False",
            reason: "InvalidSpec",
            field: "spec.static",
        },
        Case {
            name: "malformed DirectResponse",
            yaml: "apiVersion: gateway.weir.dev/v1alpha1\nkind: DirectResponse\nmetadata: {name: d, namespace: infra}\nspec:\n  status: 99\n---\n".to_string(),
            object: (Kind::DirectResponse, "infra", "d"),
            at: "",
            condition: "Accepted",
            status: "False",
            reason: "InvalidSpec",
            field: "spec.status",
        },
        Case {
            name: "GatewayClass with parameters",
            yaml: "apiVersion: gateway.networking.k8s.io/v1\nkind: GatewayClass\nmetadata: {name: params}\nspec:\n  controllerName: gateway.weir.dev/controller\n  parametersRef: {group: example.com, kind: Params, name: p}\n---\n".to_string(),
            object: (Kind::GatewayClass, "", "params"),
            at: "",
            condition: "Accepted",
            status: "False",
            reason: "InvalidParameters",
            field: "spec.parametersRef",
        },
    ]
}

#[test]
fn every_bad_input_produces_its_condition_naming_the_field() {
    let good = mk_route(
        "infra",
        "good",
        "parentRefs:\n- name: gw\nrules:\n- backendRefs: [{name: v1, port: 8080}]",
    );
    for case in cases() {
        let t = run_yaml(&format!("{}{good}{}", mk_base(), case.yaml));
        let (kind, ns, name) = case.object;
        let (s, reason, msg) = match kind {
            Kind::HttpRoute => route_cond(&t, ns, name, case.at.parse().unwrap(), case.condition),
            Kind::Gateway => listener_cond(&t, ns, name, case.at, case.condition),
            Kind::GatewayClass => csr(cond(
                &t.statuses[&ObjectKey::cluster(kind, name)],
                case.condition,
            )),
            _ => csr(cond(status(&t, kind, ns, name), case.condition)),
        };
        assert_eq!(
            (s.as_str(), reason.as_str()),
            (case.status, case.reason),
            "case {:?}: {msg}",
            case.name
        );
        assert!(
            msg.contains(case.field),
            "case {:?}: message {msg:?} does not name {}",
            case.name,
            case.field
        );
        // The good route beside it is untouched.
        assert_eq!(
            route_cond(&t, "infra", "good", 0, "Accepted").0,
            "True",
            "case {:?}",
            case.name
        );
        route_named(&t, "infra_good_rule0_match0");
    }
}

#[test]
fn invalid_route_programs_nothing() {
    let bad = route(
        "bad",
        "- matches: [{path: {type: RegularExpression, value: \"(\"}}]\n  backendRefs: [{name: v1, port: 8080}]\n- backendRefs: [{name: v2, port: 8080}]",
    );
    let t = run_yaml(&format!("{}{bad}", mk_base()));
    let res = &t.gateways[&key(Kind::Gateway, "infra", "gw")];
    assert!(res.routes[0].virtual_hosts.is_empty());
    assert!(res.clusters.is_empty());
    assert_eq!(attached(&t, "infra", "gw", "http"), 0);
}
