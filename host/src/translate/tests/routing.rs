//! Attachment, hostnames, matches and precedence.

use envoy_types::pb::envoy::config::route::v3::{header_matcher, route_match};

use super::*;

fn simple_route(ns: &str, name: &str, extra: &str) -> String {
    mk_route(
        ns,
        name,
        &format!(
            "parentRefs:\n- name: gw\n  namespace: infra\n{extra}rules:\n- backendRefs:\n  - name: v1\n    namespace: infra\n    port: 8080"
        ),
    )
}

#[test]
fn route_attaches_to_gateway_and_forwards_to_service_cluster() {
    let t = run_yaml(&format!(
        "{}{}",
        mk_base(),
        simple_route("infra", "web", "")
    ));
    let res = &t.gateways[&key(Kind::Gateway, "infra", "gw")];
    assert_eq!(res.listeners.len(), 1);
    assert_eq!(res.listeners[0].name, "listener_80");
    assert_eq!(res.routes[0].name, "route_80");
    let r = route_named(&t, "infra_web_rule0_match0");
    assert_eq!(
        forward(r).cluster_specifier,
        Some(
            envoy_types::pb::envoy::config::route::v3::route_action::ClusterSpecifier::Cluster(
                "kube_infra_v1_8080".into()
            )
        )
    );
    assert_eq!(res.clusters.len(), 1);
    assert_eq!(res.clusters[0].name(), "kube_infra_v1_8080");
    assert_eq!(route_cond(&t, "infra", "web", 0, "Accepted").0, "True");
    assert_eq!(route_cond(&t, "infra", "web", 0, "ResolvedRefs").0, "True");
    let s = status(&t, Kind::HttpRoute, "infra", "web");
    assert_eq!(
        s["parents"][0]["controllerName"],
        "gateway.weir.dev/controller"
    );
    assert_eq!(s["parents"][0]["conditions"][0]["observedGeneration"], 3);
    assert_eq!(attached(&t, "infra", "gw", "http"), 1);
}

#[test]
fn unattached_services_produce_no_clusters() {
    let t = run_yaml(&mk_base());
    assert!(
        t.gateways[&key(Kind::Gateway, "infra", "gw")]
            .clusters
            .is_empty()
    );
}

#[test]
fn exact_path_sorts_before_longer_prefix_before_shorter_prefix() {
    let route = mk_route(
        "infra",
        "order",
        "parentRefs:\n- name: gw\nrules:\n\
         - matches:\n  - path: {type: PathPrefix, value: /match}\n  backendRefs: [{name: v1, port: 8080}]\n\
         - matches:\n  - path: {type: PathPrefix, value: /match/prefix/one}\n  backendRefs: [{name: v1, port: 8080}]\n\
         - matches:\n  - path: {type: Exact, value: /match}\n  backendRefs: [{name: v1, port: 8080}]\n\
         - matches:\n  - path: {type: RegularExpression, value: \"/match/[a-z]+\"}\n  backendRefs: [{name: v1, port: 8080}]",
    );
    let t = run_yaml(&format!("{}{route}", mk_base()));
    let v = vhost(&t, "infra", "gw", 80, "*");
    assert_eq!(
        names(v),
        [
            "infra_order_rule2_match0",
            "infra_order_rule3_match0",
            "infra_order_rule1_match0",
            "infra_order_rule0_match0"
        ]
    );
}

#[test]
fn method_then_headers_then_query_params_break_ties_across_routes() {
    let a = mk_route(
        "infra",
        "a-plain",
        "parentRefs:\n- name: gw\nrules:\n- matches:\n  - path: {type: PathPrefix, value: /x}\n  backendRefs: [{name: v1, port: 8080}]",
    );
    let b = mk_route(
        "infra",
        "b-query",
        "parentRefs:\n- name: gw\nrules:\n- matches:\n  - path: {type: PathPrefix, value: /x}\n    queryParams: [{name: q, value: \"1\"}]\n  backendRefs: [{name: v1, port: 8080}]",
    );
    let c = mk_route(
        "infra",
        "c-header",
        "parentRefs:\n- name: gw\nrules:\n- matches:\n  - path: {type: PathPrefix, value: /x}\n    headers: [{name: version, value: two}]\n  backendRefs: [{name: v1, port: 8080}]",
    );
    let d = mk_route(
        "infra",
        "d-method",
        "parentRefs:\n- name: gw\nrules:\n- matches:\n  - path: {type: PathPrefix, value: /x}\n    method: POST\n  backendRefs: [{name: v1, port: 8080}]",
    );
    let t = run_yaml(&format!("{}{a}{b}{c}{d}", mk_base()));
    let v = vhost(&t, "infra", "gw", 80, "*");
    assert_eq!(
        names(v),
        [
            "infra_d-method_rule0_match0",
            "infra_c-header_rule0_match0",
            "infra_b-query_rule0_match0",
            "infra_a-plain_rule0_match0"
        ]
    );
}

#[test]
fn older_route_wins_a_tie_then_namespace_and_name() {
    let mk = |name: &str, created: &str| {
        mk_route(
            "infra",
            name,
            "parentRefs:\n- name: gw\nrules:\n- backendRefs: [{name: v1, port: 8080}]",
        )
        .replace(
            "  generation: 3\n",
            &format!("  generation: 3\n  creationTimestamp: \"{created}\"\n"),
        )
    };
    let t = run_yaml(&format!(
        "{}{}{}{}",
        mk_base(),
        mk("a-new", "2024-01-02T00:00:00Z"),
        mk("z-old", "2024-01-01T00:00:00Z"),
        mk("b-new", "2024-01-02T00:00:00Z"),
    ));
    assert_eq!(
        names(vhost(&t, "infra", "gw", 80, "*")),
        [
            "infra_z-old_rule0_match0",
            "infra_a-new_rule0_match0",
            "infra_b-new_rule0_match0"
        ]
    );
}

#[test]
fn prefix_matches_whole_segments_and_exact_is_a_path_match() {
    let route = mk_route(
        "infra",
        "m",
        "parentRefs:\n- name: gw\nrules:\n- matches:\n  - path: {type: PathPrefix, value: /v2/}\n  - path: {type: Exact, value: /one}\n  - path: {type: PathPrefix, value: /}\n  backendRefs: [{name: v1, port: 8080}]",
    );
    let t = run_yaml(&format!("{}{route}", mk_base()));
    let spec = |n: &str| {
        route_named(&t, n)
            .r#match
            .clone()
            .unwrap()
            .path_specifier
            .unwrap()
    };
    assert_eq!(
        spec("infra_m_rule0_match0"),
        route_match::PathSpecifier::PathSeparatedPrefix("/v2".into())
    );
    assert_eq!(
        spec("infra_m_rule0_match1"),
        route_match::PathSpecifier::Path("/one".into())
    );
    assert_eq!(
        spec("infra_m_rule0_match2"),
        route_match::PathSpecifier::Prefix("/".into())
    );
}

#[test]
fn header_method_and_query_matches_become_envoy_matchers() {
    let route = mk_route(
        "infra",
        "m",
        "parentRefs:\n- name: gw\nrules:\n- matches:\n  - headers:\n    - {name: version, value: two}\n    - {name: Version, value: ignored-duplicate}\n    - {name: color, type: RegularExpression, value: \"^(red|yellow)$\"}\n    queryParams: [{name: animal, value: whale}]\n    method: PATCH\n  backendRefs: [{name: v1, port: 8080}]",
    );
    let t = run_yaml(&format!("{}{route}", mk_base()));
    let m = route_named(&t, "infra_m_rule0_match0")
        .r#match
        .clone()
        .unwrap();
    let headers: Vec<&str> = m.headers.iter().map(|h| h.name.as_str()).collect();
    assert_eq!(headers, [":method", "version", "color"]);
    assert!(matches!(
        m.headers[2].header_match_specifier,
        Some(header_matcher::HeaderMatchSpecifier::StringMatch(_))
    ));
    assert_eq!(m.query_parameters.len(), 1);
    assert_eq!(m.query_parameters[0].name, "animal");
}

#[test]
fn rules_of_routes_with_shared_hostnames_merge_into_one_virtual_host() {
    let p1 = mk_route(
        "infra",
        "part1",
        "parentRefs:\n- name: gw\nhostnames: [example.com, example.net]\nrules:\n- backendRefs: [{name: v1, port: 8080}]",
    );
    let p2 = mk_route(
        "infra",
        "part2",
        "parentRefs:\n- name: gw\nhostnames: [example.com]\nrules:\n- matches:\n  - path: {type: PathPrefix, value: /v2}\n  backendRefs: [{name: v2, port: 8080}]",
    );
    let t = run_yaml(&format!("{}{p1}{p2}", mk_base()));
    assert_eq!(
        names(vhost(&t, "infra", "gw", 80, "example.com")),
        ["infra_part2_rule0_match0", "infra_part1_rule0_match0"]
    );
    assert_eq!(
        names(vhost(&t, "infra", "gw", 80, "example.net")),
        ["infra_part1_rule0_match0"]
    );
}

#[test]
fn wildcard_route_hostname_also_serves_more_specific_virtual_hosts() {
    let wild = mk_route(
        "infra",
        "wild",
        "parentRefs:\n- name: gw\nhostnames: [\"*.example.com\"]\nrules:\n- backendRefs: [{name: v1, port: 8080}]",
    );
    let exact = mk_route(
        "infra",
        "exact",
        "parentRefs:\n- name: gw\nhostnames: [foo.example.com]\nrules:\n- matches:\n  - path: {type: PathPrefix, value: /foo}\n  backendRefs: [{name: v2, port: 8080}]",
    );
    let t = run_yaml(&format!("{}{wild}{exact}", mk_base()));
    assert_eq!(
        names(vhost(&t, "infra", "gw", 80, "foo.example.com")),
        ["infra_exact_rule0_match0", "infra_wild_rule0_match0"]
    );
}

#[test]
fn hostname_intersection_picks_listeners_and_most_specific_listener_wins() {
    let gw = mk_gateway(
        "infra",
        "hosts",
        "- {name: l1, port: 80, protocol: HTTP, hostname: bar.com}\n- {name: l2, port: 80, protocol: HTTP, hostname: foo.bar.com}\n- {name: l3, port: 80, protocol: HTTP, hostname: \"*.bar.com\"}",
    );
    let r = |name: &str, section: &str, svc: &str| {
        mk_route(
            "infra",
            name,
            &format!(
                "parentRefs:\n- name: hosts\n  sectionName: {section}\nrules:\n- backendRefs: [{{name: {svc}, port: 8080}}]"
            ),
        )
    };
    let t = run_yaml(&format!(
        "{}{gw}{}{}{}",
        mk_base(),
        r("r1", "l1", "v1"),
        r("r2", "l2", "v2"),
        r("r3", "l3", "v1")
    ));
    assert_eq!(
        names(vhost(&t, "infra", "hosts", 80, "bar.com")),
        ["infra_r1_rule0_match0"]
    );
    // foo.bar.com is served by listener l2 only, not by the *.bar.com listener's route.
    assert_eq!(
        names(vhost(&t, "infra", "hosts", 80, "foo.bar.com")),
        ["infra_r2_rule0_match0"]
    );
    assert_eq!(
        names(vhost(&t, "infra", "hosts", 80, "*.bar.com")),
        ["infra_r3_rule0_match0"]
    );
    let rc = &t.gateways[&key(Kind::Gateway, "infra", "hosts")].routes[0];
    assert!(rc.to_proto().ignore_port_in_host_matching);
}

#[test]
fn route_without_intersecting_hostname_is_not_accepted() {
    let gw = mk_gateway(
        "infra",
        "hosts",
        "- {name: l1, port: 80, protocol: HTTP, hostname: very.specific.com}",
    );
    let route = mk_route(
        "infra",
        "nope",
        "parentRefs:\n- name: hosts\nhostnames: [specific.but.wrong.com]\nrules:\n- backendRefs: [{name: v1, port: 8080}]",
    );
    let t = run_yaml(&format!("{}{gw}{route}", mk_base()));
    let (s, reason, msg) = route_cond(&t, "infra", "nope", 0, "Accepted");
    assert_eq!(
        (s.as_str(), reason.as_str()),
        ("False", "NoMatchingListenerHostname")
    );
    assert!(msg.contains("spec.hostnames"), "{msg}");
    assert_eq!(attached(&t, "infra", "hosts", "l1"), 0);
}

#[test]
fn parent_ref_to_missing_section_or_port_is_no_matching_parent() {
    let a = mk_route(
        "infra",
        "bad-section",
        "parentRefs:\n- name: gw\n  sectionName: http1\nrules:\n- backendRefs: [{name: v1, port: 8080}]",
    );
    let b = mk_route(
        "infra",
        "bad-port",
        "parentRefs:\n- name: gw\n  port: 81\nrules:\n- backendRefs: [{name: v1, port: 8080}]",
    );
    let t = run_yaml(&format!("{}{a}{b}", mk_base()));
    assert_eq!(
        route_cond(&t, "infra", "bad-section", 0, "Accepted").1,
        "NoMatchingParent"
    );
    let (_, reason, msg) = route_cond(&t, "infra", "bad-port", 0, "Accepted");
    assert_eq!(reason, "NoMatchingParent");
    assert!(msg.contains("port 81"), "{msg}");
    assert_eq!(
        route_cond(&t, "infra", "bad-port", 0, "ResolvedRefs").0,
        "True"
    );
    assert_eq!(attached(&t, "infra", "gw", "http"), 0);
}

#[test]
fn route_from_another_namespace_needs_the_listener_to_allow_it() {
    let gw = mk_gateway("infra", "same", "- {name: http, port: 80, protocol: HTTP}");
    let route = mk_route(
        "web",
        "cross",
        "parentRefs:\n- name: same\n  namespace: infra\nrules:\n- backendRefs: [{name: v1, namespace: infra, port: 8080}]",
    );
    let t = run_yaml(&format!("{}{gw}{route}", mk_base()));
    assert_eq!(
        route_cond(&t, "web", "cross", 0, "Accepted").1,
        "NotAllowedByListeners"
    );
    assert_eq!(attached(&t, "infra", "same", "http"), 0);
}

#[test]
fn namespace_selector_admits_routes_from_labelled_namespaces() {
    let gw = mk_gateway(
        "infra",
        "sel",
        "- name: http\n  port: 80\n  protocol: HTTP\n  allowedRoutes:\n    namespaces:\n      from: Selector\n      selector:\n        matchLabels: {team: web}",
    );
    let ns = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: web\n  labels: {team: web}\n---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: other\n---\n";
    let r = |ns: &str| {
        mk_route(
            ns,
            "r",
            "parentRefs:\n- name: sel\n  namespace: infra\nrules:\n- backendRefs: [{name: v1, port: 8080}]",
        )
    };
    let t = run_yaml(&format!("{}{gw}{ns}{}{}", mk_base(), r("web"), r("other")));
    assert_eq!(route_cond(&t, "web", "r", 0, "Accepted").0, "True");
    assert_eq!(
        route_cond(&t, "other", "r", 0, "Accepted").1,
        "NotAllowedByListeners"
    );
    assert_eq!(attached(&t, "infra", "sel", "http"), 1);
}

#[test]
fn routes_for_other_controllers_gateways_get_no_status() {
    let other = "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata:\n  name: theirs\n  namespace: infra\nspec:\n  gatewayClassName: not-ours\n  listeners:\n  - {name: http, port: 80, protocol: HTTP}\n---\n";
    let route = mk_route(
        "infra",
        "r",
        "parentRefs:\n- name: theirs\nrules:\n- backendRefs: [{name: v1, port: 8080}]",
    );
    let t = run_yaml(&format!("{}{other}{route}", mk_base()));
    assert!(!t.statuses.contains_key(&key(Kind::HttpRoute, "infra", "r")));
    assert!(
        !t.statuses
            .contains_key(&key(Kind::Gateway, "infra", "theirs"))
    );
    assert!(
        !t.gateways
            .contains_key(&key(Kind::Gateway, "infra", "theirs"))
    );
}

#[test]
fn one_route_on_two_gateways_gets_a_parent_entry_for_each() {
    let gw2 = mk_gateway("infra", "gw2", http_listener());
    let route = mk_route(
        "infra",
        "shared",
        "parentRefs:\n- name: gw\n- name: gw2\nrules:\n- backendRefs: [{name: v1, port: 8080}]",
    );
    let t = run_yaml(&format!("{}{gw2}{route}", mk_base()));
    let s = status(&t, Kind::HttpRoute, "infra", "shared");
    assert_eq!(s["parents"].as_array().unwrap().len(), 2);
    assert_eq!(s["parents"][1]["parentRef"]["name"], "gw2");
    assert_eq!(
        t.gateways[&key(Kind::Gateway, "infra", "gw2")]
            .clusters
            .len(),
        1
    );
}
