//! GatewayClass and Gateway: listeners, TLS, conflicts, status.

use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::secret;
use std::sync::Arc;

use super::*;

const CERT: &str = "-----BEGIN CERTIFICATE-----\\nMIIB\\n-----END CERTIFICATE-----\\n";
const KEY: &str = "-----BEGIN PRIVATE KEY-----\\nMIIE\\n-----END PRIVATE KEY-----\\n";

fn mk_tls_secret(ns: &str, name: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: {name}\n  namespace: {ns}\ntype: kubernetes.io/tls\nstringData:\n  tls.crt: \"{CERT}\"\n  tls.key: \"{KEY}\"\n---\n"
    )
}

fn https_gateway(cert_ns: Option<&str>) -> String {
    let ns = cert_ns
        .map(|n| format!(", namespace: {n}"))
        .unwrap_or_default();
    mk_gateway(
        "infra",
        "tls",
        &format!(
            "- name: https\n  port: 443\n  protocol: HTTPS\n  tls:\n    certificateRefs: [{{name: cert{ns}}}]\n- name: https-second\n  port: 443\n  protocol: HTTPS\n  hostname: second.example.org\n  tls:\n    certificateRefs: [{{name: cert{ns}}}]"
        ),
    )
}

#[test]
fn our_gateway_class_is_accepted_and_others_are_left_alone() {
    let other = "apiVersion: gateway.networking.k8s.io/v1\nkind: GatewayClass\nmetadata:\n  name: other\nspec:\n  controllerName: example.com/other\n---\n";
    let t = run_yaml(&format!("{}{other}", mk_class()));
    let c = cond(
        &t.statuses[&ObjectKey::cluster(Kind::GatewayClass, "weir")],
        "Accepted",
    );
    assert_eq!(csr(c).0, "True");
    assert_eq!(c["lastTransitionTime"], "1970-01-01T00:00:00Z");
    assert!(
        !t.statuses
            .contains_key(&ObjectKey::cluster(Kind::GatewayClass, "other"))
    );
}

#[test]
fn gateway_is_accepted_and_programmed_with_listener_conditions() {
    let t = run_yaml(&mk_base());
    let s = status(&t, Kind::Gateway, "infra", "gw");
    assert_eq!(csr(cond(s, "Accepted")).0, "True");
    assert_eq!(csr(cond(s, "Programmed")).0, "True");
    assert_eq!(cond(s, "Accepted")["observedGeneration"], 1);
    for (ty, st, reason) in [
        ("Accepted", "True", "Accepted"),
        ("Conflicted", "False", "NoConflicts"),
        ("ResolvedRefs", "True", "ResolvedRefs"),
        ("Programmed", "True", "Programmed"),
    ] {
        let (s, r, _) = listener_cond(&t, "infra", "gw", "http", ty);
        assert_eq!((s.as_str(), r.as_str()), (st, reason), "{ty}");
    }
    assert_eq!(s["listeners"][0]["supportedKinds"][0]["kind"], "HTTPRoute");
}

#[test]
fn https_listeners_get_sni_filter_chains_and_sds_secrets() {
    let route = mk_route(
        "infra",
        "r",
        "parentRefs:\n- name: tls\nrules:\n- backendRefs: [{name: v1, port: 8080}]",
    );
    let t = run_yaml(&format!(
        "{}{}{}{route}",
        mk_base(),
        https_gateway(None),
        mk_tls_secret("infra", "cert")
    ));
    let res = &t.gateways[&key(Kind::Gateway, "infra", "tls")];
    let l = &res.listeners[0];
    assert_eq!(l.name, "listener_443");
    let chains: Vec<(&str, Vec<String>)> = l
        .filter_chains
        .iter()
        .map(|c| {
            (
                c.name.as_str(),
                c.filter_chain_match
                    .clone()
                    .map(|m| m.server_names)
                    .unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        chains,
        [
            ("https", vec![]),
            ("https-second", vec!["second.example.org".to_string()])
        ]
    );
    assert_eq!(
        l.listener_filters[0].name,
        "envoy.filters.listener.tls_inspector"
    );
    assert_eq!(res.secrets.len(), 1);
    assert_eq!(res.secrets[0].name, "secret_infra_cert");
    assert!(matches!(
        res.secrets[0].r#type,
        Some(secret::Type::TlsCertificate(_))
    ));
    assert_eq!(attached(&t, "infra", "tls", "https"), 1);
}

#[test]
fn missing_certificate_leaves_listener_unprogrammed_but_routes_still_count() {
    let route = mk_route(
        "infra",
        "r",
        "parentRefs:\n- name: tls\n  sectionName: https\nrules:\n- backendRefs: [{name: v1, port: 8080}]",
    );
    let t = run_yaml(&format!("{}{}{route}", mk_base(), https_gateway(None)));
    let (s, reason, msg) = listener_cond(&t, "infra", "tls", "https", "ResolvedRefs");
    assert_eq!(
        (s.as_str(), reason.as_str()),
        ("False", "InvalidCertificateRef")
    );
    assert!(
        msg.starts_with("spec.listeners[0].tls.certificateRefs[0]"),
        "{msg}"
    );
    assert_eq!(
        listener_cond(&t, "infra", "tls", "https", "Programmed").0,
        "False"
    );
    assert_eq!(attached(&t, "infra", "tls", "https"), 1);
    assert!(
        t.gateways[&key(Kind::Gateway, "infra", "tls")]
            .listeners
            .is_empty()
    );
}

#[test]
fn cross_namespace_certificate_needs_a_grant() {
    let base = format!(
        "{}{}{}",
        mk_base(),
        https_gateway(Some("certs")),
        mk_tls_secret("certs", "cert")
    );
    let t = run_yaml(&base);
    assert_eq!(
        listener_cond(&t, "infra", "tls", "https", "ResolvedRefs").1,
        "RefNotPermitted"
    );
    let grant = mk_grant("certs", "Gateway", "infra", "", "Secret");
    let t = run_yaml(&format!("{base}{grant}"));
    assert_eq!(
        listener_cond(&t, "infra", "tls", "https", "ResolvedRefs").0,
        "True"
    );
    assert_eq!(
        listener_cond(&t, "infra", "tls", "https", "Programmed").0,
        "True"
    );
}

#[test]
fn http_listeners_on_one_port_share_a_route_configuration() {
    let gw = mk_gateway(
        "infra",
        "multi",
        "- {name: a, port: 8080, protocol: HTTP, hostname: a.example.com}\n- {name: b, port: 8080, protocol: HTTP, hostname: b.example.com}\n- {name: c, port: 9090, protocol: HTTP}",
    );
    let route = mk_route(
        "infra",
        "r",
        "parentRefs:\n- name: multi\nrules:\n- backendRefs: [{name: v1, port: 8080}]",
    );
    let t = run_yaml(&format!("{}{gw}{route}", mk_base()));
    let res = &t.gateways[&key(Kind::Gateway, "infra", "multi")];
    let ls: Vec<&str> = res.listeners.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(ls, ["listener_8080", "listener_9090"]);
    assert_eq!(port_hosts(res, 8080), ["a.example.com", "b.example.com"]);
}

#[test]
fn conflicting_listeners_report_hostname_and_protocol_conflicts() {
    let gw = mk_gateway(
        "infra",
        "clash",
        "- {name: first, port: 80, protocol: HTTP}\n- {name: same-host, port: 80, protocol: HTTP}\n- name: other-proto\n  port: 80\n  protocol: HTTPS\n  hostname: x.example.com\n  tls: {certificateRefs: [{name: cert}]}",
    );
    let t = run_yaml(&format!("{}{gw}", mk_class()));
    assert_eq!(
        listener_cond(&t, "infra", "clash", "first", "Conflicted").0,
        "False"
    );
    let (s, reason, _) = listener_cond(&t, "infra", "clash", "same-host", "Conflicted");
    assert_eq!((s.as_str(), reason.as_str()), ("True", "HostnameConflict"));
    assert_eq!(
        listener_cond(&t, "infra", "clash", "same-host", "Accepted").1,
        "HostnameConflict"
    );
    assert_eq!(
        listener_cond(&t, "infra", "clash", "other-proto", "Conflicted").1,
        "ProtocolConflict"
    );
    let s = status(&t, Kind::Gateway, "infra", "clash");
    assert_eq!(csr(cond(s, "Accepted")).1, "ListenersNotValid");
    assert_eq!(csr(cond(s, "Accepted")).0, "True");
}

#[test]
fn unsupported_protocol_and_invalid_route_kinds_are_reported() {
    let gw = mk_gateway(
        "infra",
        "odd",
        "- {name: invalid, port: 1111, protocol: INVALID}\n- name: kinds\n  port: 80\n  protocol: HTTP\n  allowedRoutes:\n    kinds: [{kind: TCPRoute}]",
    );
    let t = run_yaml(&format!("{}{gw}", mk_class()));
    let (s, reason, msg) = listener_cond(&t, "infra", "odd", "invalid", "Accepted");
    assert_eq!(
        (s.as_str(), reason.as_str()),
        ("False", "UnsupportedProtocol")
    );
    assert!(msg.starts_with("spec.listeners[0].protocol"), "{msg}");
    let (_, reason, msg) = listener_cond(&t, "infra", "odd", "kinds", "ResolvedRefs");
    assert_eq!(reason, "InvalidRouteKinds");
    assert!(
        msg.starts_with("spec.listeners[1].allowedRoutes.kinds[0]"),
        "{msg}"
    );
    let st = status(&t, Kind::Gateway, "infra", "odd");
    assert_eq!(
        st["listeners"][1]["supportedKinds"]
            .as_array()
            .unwrap()
            .len(),
        0
    );
}

#[test]
fn gateway_with_only_invalid_listeners_is_not_accepted() {
    let gw = mk_gateway(
        "infra",
        "bad",
        "- {name: invalid, port: 1111, protocol: UDP}",
    );
    let t = run_yaml(&format!("{}{gw}", mk_class()));
    let (s, reason, _) = csr(cond(status(&t, Kind::Gateway, "infra", "bad"), "Accepted"));
    assert_eq!(
        (s.as_str(), reason.as_str()),
        ("False", "ListenersNotValid")
    );
}

/// The route configuration each listener's connection manager names, by listener name.
fn rds_names(res: &crate::translate::GatewayResources) -> Vec<(String, String)> {
    use envoy_types::pb::envoy::config::listener::v3::filter;
    use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
        HttpConnectionManager, http_connection_manager::RouteSpecifier,
    };
    use prost::Message;
    let mut out = Vec::new();
    for l in &res.listeners {
        for chain in &l.filter_chains {
            for f in &chain.filters {
                if let Some(filter::ConfigType::TypedConfig(any)) = &f.config_type
                    && let Ok(hcm) = HttpConnectionManager::decode(any.value.as_slice())
                {
                    match hcm.route_specifier {
                        Some(RouteSpecifier::Rds(rds)) => {
                            out.push((l.name.clone(), rds.route_config_name))
                        }
                        Some(RouteSpecifier::ScopedRoutes(s)) => {
                            out.push((l.name.clone(), format!("scoped {}", s.name)))
                        }
                        _ => {}
                    }
                }
            }
        }
    }
    out.dedup();
    out
}

#[test]
fn ports_with_the_same_virtual_hosts_share_one_route_configuration() {
    let gw = mk_gateway(
        "infra",
        "both",
        "- {name: http, port: 80, protocol: HTTP}\n- name: https\n  port: 443\n  protocol: HTTPS\n  tls:\n    certificateRefs: [{name: cert}]",
    );
    let everywhere = mk_route(
        "infra",
        "r",
        "parentRefs:\n- name: both\nhostnames: [\"*.a.example.com\"]\nrules:\n- backendRefs: [{name: v1, port: 8080}]",
    );
    let base = format!(
        "{}{gw}{}{everywhere}",
        mk_base(),
        mk_tls_secret("infra", "cert")
    );
    let t = run_yaml(&base);
    let res = &t.gateways[&key(Kind::Gateway, "infra", "both")];
    let tables: Vec<&str> = res.routes.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(tables, ["route_80"]);
    assert_eq!(
        rds_names(res),
        [
            ("listener_443".to_string(), "route_80".to_string()),
            ("listener_80".to_string(), "route_80".to_string())
        ]
    );

    // A route on the HTTP listener only: the ports differ, each gets its own table.
    let http_only = mk_route(
        "infra",
        "plain",
        "parentRefs:\n- {name: both, sectionName: http}\nhostnames: [\"*.b.example.com\"]\nrules:\n- backendRefs: [{name: v1, port: 8080}]",
    );
    let t = run_yaml(&format!("{base}{http_only}"));
    let res = &t.gateways[&key(Kind::Gateway, "infra", "both")];
    let hosts = |name: &str| -> Vec<String> {
        res.routes
            .iter()
            .find(|r| r.name == name)
            .unwrap()
            .virtual_hosts
            .iter()
            .map(|v| v.name().to_string())
            .collect()
    };
    assert_eq!(hosts("route_80"), ["*.a.example.com", "*.b.example.com"]);
    assert_eq!(hosts("route_443"), ["*.a.example.com"]);
    assert_eq!(
        rds_names(res),
        [
            ("listener_443".to_string(), "route_443".to_string()),
            ("listener_80".to_string(), "route_80".to_string())
        ]
    );
}

#[test]
fn ports_sharing_virtual_hosts_stay_shared_and_follow_changes_incrementally() {
    let gw = mk_gateway(
        "infra",
        "both",
        "- {name: http, port: 80, protocol: HTTP}\n- name: https\n  port: 443\n  protocol: HTTPS\n  tls:\n    certificateRefs: [{name: cert}]",
    );
    let route = |path: &str| {
        mk_route(
            "infra",
            "r",
            &format!(
                "parentRefs:\n- name: both\nhostnames: [\"*.a.example.com\"]\nrules:\n- matches: [{{path: {{type: PathPrefix, value: {path}}}}}]\n  backendRefs: [{{name: v1, port: 8080}}]"
            ),
        )
    };
    let base = format!("{}{gw}{}", mk_base(), mk_tls_secret("infra", "cert"));
    let gateway = key(Kind::Gateway, "infra", "both");
    let mut translator = Translator::new();
    let tables = |t: &Translation| -> Vec<String> {
        t.gateways[&gateway]
            .routes
            .iter()
            .map(|r| r.name.clone())
            .collect()
    };
    let prefix = |t: &Translation, table: &str| -> String {
        let table = t.gateways[&gateway]
            .routes
            .iter()
            .find(|r| r.name == table)
            .unwrap();
        format!("{:?}", table.virtual_hosts[0].decode().routes[0].r#match)
    };
    let first = run_with(
        &mut translator,
        &mk_store(&format!("{base}{}", route("/one"))),
    );
    assert_eq!(tables(&first), ["route_80"]);

    // A change to the route on both ports: the table stays shared and shows the change,
    // exactly as a fresh translation does.
    let store = mk_store(&format!("{base}{}", route("/two")));
    let second = run_with(&mut translator, &store);
    assert_eq!(second, run(&store));
    assert_eq!(tables(&second), ["route_80"]);
    assert!(prefix(&second, "route_80").contains("/two"));

    // A route on one port only: the tables part, and the virtual host both ports still
    // serve alike is one value (the same pointer) in both.
    let plain = mk_route(
        "infra",
        "plain",
        "parentRefs:\n- {name: both, sectionName: http}\nhostnames: [\"*.b.example.com\"]\nrules:\n- backendRefs: [{name: v1, port: 8080}]",
    );
    let store = mk_store(&format!("{base}{}{plain}", route("/three")));
    let third = run_with(&mut translator, &store);
    assert_eq!(third, run(&store));
    assert_eq!(tables(&third), ["route_443", "route_80"]);
    assert!(prefix(&third, "route_443").contains("/three"));
    let res = &third.gateways[&gateway];
    assert!(Arc::ptr_eq(
        &res.routes[0].virtual_hosts[0],
        &res.routes[1].virtual_hosts[0]
    ));
}

/// The scopes of a Gateway's scoped routes: (scope, route configuration, key).
fn scopes(res: &crate::translate::GatewayResources) -> Vec<(String, String, String)> {
    use envoy_types::pb::envoy::config::route::v3::scoped_route_configuration::key::fragment;
    res.scoped_routes
        .iter()
        .map(|s| {
            let keys: Vec<String> = s
                .key
                .iter()
                .flat_map(|k| &k.fragments)
                .filter_map(|f| {
                    f.r#type
                        .as_ref()
                        .map(|fragment::Type::StringKey(k)| k.clone())
                })
                .collect();
            (
                s.name.clone(),
                s.route_configuration_name.clone(),
                keys.join(","),
            )
        })
        .collect()
}

/// A Gateway `infra/both` with an HTTP listener on 80 and an HTTPS one on 443, its
/// certificate, and nothing attached.
fn two_port_base() -> String {
    let gw = mk_gateway(
        "infra",
        "both",
        "- {name: http, port: 80, protocol: HTTP}\n- name: https\n  port: 443\n  protocol: HTTPS\n  tls:\n    certificateRefs: [{name: cert}]",
    );
    format!("{}{gw}{}", mk_base(), mk_tls_secret("infra", "cert"))
}

/// HTTPRoute `infra/<name>` on `parent` (a parentRef) for `hostnames` (YAML, or empty
/// for none) to Service `backend`.
fn host_route(name: &str, parent: &str, hostnames: &str, backend: &str) -> String {
    let hostnames = if hostnames.is_empty() {
        String::new()
    } else {
        format!("hostnames: {hostnames}\n")
    };
    mk_route(
        "infra",
        name,
        &format!(
            "parentRefs:\n- {parent}\n{hostnames}rules:\n- backendRefs: [{{name: {backend}, port: 8080}}]"
        ),
    )
}

/// The resources of Gateway `infra/both` in a translation.
fn both(t: &Translation) -> &crate::translate::GatewayResources {
    &t.gateways[&key(Kind::Gateway, "infra", "both")]
}

/// The names of a Gateway's route tables, in order.
fn table_names(res: &crate::translate::GatewayResources) -> Vec<&str> {
    res.routes.iter().map(|r| r.name.as_str()).collect()
}

/// (listener, route source) pairs, `source` as [`rds_names`] gives them.
fn sources(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(l, s)| (l.to_string(), s.to_string()))
        .collect()
}

#[test]
fn a_port_whose_hostnames_are_all_exact_is_served_by_scoped_routes_one_table_per_host() {
    let routes = format!(
        "{}{}",
        host_route("a", "name: both", "[a.example.com]", "v1"),
        host_route("b", "name: both", "[b.example.com]", "v2"),
    );
    let t = run_yaml(&format!("{}{routes}", two_port_base()));
    let res = both(&t);
    // Both ports serve the same hosts, so both listeners use the one set of scopes.
    assert_eq!(
        rds_names(res),
        sources(&[
            ("listener_443", "scoped route_80"),
            ("listener_80", "scoped route_80")
        ])
    );
    assert_eq!(
        table_names(res),
        ["route_80/a.example.com", "route_80/b.example.com"]
    );
    let scope = |host: &str| {
        let name = format!("route_80/{host}");
        (name.clone(), name, host.to_string())
    };
    assert_eq!(
        scopes(res),
        [scope("a.example.com"), scope("b.example.com")]
    );
    // Each host's table holds that host's routes, as the one table did.
    assert_eq!(
        names(vhost(&t, "infra", "both", 80, "b.example.com")),
        ["infra_b_rule0_match0"]
    );
    // A translator that served the port over RDS first (a catch-all route) and then
    // scoped agrees with a fresh translation.
    let mut translator = Translator::new();
    let base = format!("{}{routes}", two_port_base());
    let wild = host_route("w", "name: both", "", "v1");
    let with_wild = run_with(&mut translator, &mk_store(&format!("{base}{wild}")));
    assert!(both(&with_wild).scoped_routes.is_empty());
    let store = mk_store(&base);
    assert_eq!(run_with(&mut translator, &store), run(&store));
}

#[test]
fn a_wildcard_or_catch_all_host_keeps_the_port_on_one_route_configuration() {
    for other in ["[\"*.example.com\"]", ""] {
        let t = run_yaml(&format!(
            "{}{}{}",
            two_port_base(),
            host_route("a", "name: both", "[a.example.com]", "v1"),
            host_route("other", "name: both", other, "v2"),
        ));
        let res = both(&t);
        assert!(res.scoped_routes.is_empty(), "{other}");
        assert_eq!(table_names(res), ["route_80"], "{other}");
        assert_eq!(
            rds_names(res),
            sources(&[("listener_443", "route_80"), ("listener_80", "route_80")])
        );
    }
}

#[test]
fn only_the_first_port_with_exact_hostnames_is_scoped_so_ports_never_see_each_others_hosts() {
    let t = run_yaml(&format!(
        "{}{}{}",
        two_port_base(),
        host_route("a", "name: both", "[a.example.com]", "v1"),
        host_route(
            "b",
            "{name: both, sectionName: http}",
            "[b.example.com]",
            "v2"
        ),
    ));
    let res = both(&t);
    // Port 443 comes after 80 and serves other hosts: it stays on RDS.
    assert_eq!(
        rds_names(res),
        sources(&[
            ("listener_443", "route_443"),
            ("listener_80", "scoped route_80")
        ])
    );
    assert_eq!(
        table_names(res),
        [
            "route_443",
            "route_80/a.example.com",
            "route_80/b.example.com"
        ]
    );
    assert_eq!(port_hosts(res, 443), ["a.example.com"]);
    let keys: Vec<String> = scopes(res).into_iter().map(|s| s.2).collect();
    assert_eq!(keys, ["a.example.com", "b.example.com"]);
}
