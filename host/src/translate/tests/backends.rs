//! Backends: weights, unresolved references and ReferenceGrants.

use envoy_types::pb::envoy::config::route::v3::route_action::{
    ClusterNotFoundResponseCode, ClusterSpecifier,
};

use super::*;
use crate::translate::http_route::UNRESOLVED_CLUSTER;

fn weights(t: &Translation, name: &str) -> Vec<(String, u32)> {
    match &forward(route_named(t, name)).cluster_specifier {
        Some(ClusterSpecifier::WeightedClusters(w)) => w
            .clusters
            .iter()
            .map(|c| (c.name.clone(), c.weight.unwrap().value))
            .collect(),
        other => panic!("not weighted: {other:?}"),
    }
}

#[test]
fn weighted_backends_become_weighted_clusters_and_weight_zero_is_dropped() {
    let route = mk_route(
        "infra",
        "w",
        "parentRefs:\n- name: gw\nrules:\n- backendRefs:\n  - {name: v1, port: 8080, weight: 70}\n  - {name: v2, port: 8080, weight: 30}\n  - {name: v1, port: 8080, weight: 0}",
    );
    let t = run_yaml(&format!("{}{route}", mk_base()));
    assert_eq!(
        weights(&t, "infra_w_rule0_match0"),
        [
            ("kube_infra_v1_8080".to_string(), 70),
            ("kube_infra_v2_8080".to_string(), 30)
        ]
    );
}

#[test]
fn missing_backend_keeps_its_share_as_500_and_reports_backend_not_found() {
    let route = mk_route(
        "infra",
        "partial",
        "parentRefs:\n- name: gw\nrules:\n- backendRefs:\n  - {name: v1, port: 8080}\n  - {name: nope, port: 8080}",
    );
    let t = run_yaml(&format!("{}{route}", mk_base()));
    assert_eq!(
        weights(&t, "infra_partial_rule0_match0"),
        [
            ("kube_infra_v1_8080".to_string(), 1),
            (UNRESOLVED_CLUSTER.to_string(), 1)
        ]
    );
    let a = forward(route_named(&t, "infra_partial_rule0_match0"));
    assert_eq!(
        a.cluster_not_found_response_code,
        ClusterNotFoundResponseCode::InternalServerError as i32
    );
    let (s, reason, msg) = route_cond(&t, "infra", "partial", 0, "ResolvedRefs");
    assert_eq!((s.as_str(), reason.as_str()), ("False", "BackendNotFound"));
    assert!(msg.starts_with("spec.rules[0].backendRefs[1]"), "{msg}");
    // Still accepted: only the unresolved share fails.
    assert_eq!(route_cond(&t, "infra", "partial", 0, "Accepted").0, "True");
    let rc = &t.gateways[&key(Kind::Gateway, "infra", "gw")].routes[0];
    assert!(!rc.to_proto().validate_clusters.unwrap().value);
}

#[test]
fn rule_without_backends_answers_500() {
    let route = mk_route(
        "infra",
        "none",
        "parentRefs:\n- name: gw\nrules:\n- matches: [{path: {type: PathPrefix, value: /omitted}}]\n- matches: [{path: {type: PathPrefix, value: /empty}}]\n  backendRefs: []",
    );
    let t = run_yaml(&format!("{}{route}", mk_base()));
    assert_eq!(
        direct_status(route_named(&t, "infra_none_rule0_match0")),
        Some(500)
    );
    assert_eq!(
        direct_status(route_named(&t, "infra_none_rule1_match0")),
        Some(500)
    );
}

#[test]
fn cross_namespace_backend_needs_a_reference_grant() {
    let web = mk_service("web", "web", 8080, &["10.1.0.1"]);
    let route = mk_route(
        "infra",
        "cross",
        "parentRefs:\n- name: gw\nrules:\n- backendRefs: [{name: web, namespace: web, port: 8080}]",
    );
    let t = run_yaml(&format!("{}{web}{route}", mk_base()));
    assert_eq!(
        route_cond(&t, "infra", "cross", 0, "ResolvedRefs").1,
        "RefNotPermitted"
    );
    assert_eq!(
        direct_status(route_named(&t, "infra_cross_rule0_match0")),
        Some(500)
    );

    let grant = mk_grant("web", "HTTPRoute", "infra", "", "Service");
    let t = run_yaml(&format!("{}{web}{route}{grant}", mk_base()));
    assert_eq!(
        route_cond(&t, "infra", "cross", 0, "ResolvedRefs").0,
        "True"
    );
    assert_eq!(
        forward(route_named(&t, "infra_cross_rule0_match0")).cluster_specifier,
        Some(ClusterSpecifier::Cluster("kube_web_web_8080".into()))
    );
}

#[test]
fn grant_for_the_wrong_kind_does_not_permit() {
    let web = mk_service("web", "web", 8080, &["10.1.0.1"]);
    let grant = mk_grant("web", "Gateway", "infra", "", "Service");
    let route = mk_route(
        "infra",
        "cross",
        "parentRefs:\n- name: gw\nrules:\n- backendRefs: [{name: web, namespace: web, port: 8080}]",
    );
    let t = run_yaml(&format!("{}{web}{grant}{route}", mk_base()));
    assert_eq!(
        route_cond(&t, "infra", "cross", 0, "ResolvedRefs").1,
        "RefNotPermitted"
    );
}

#[test]
fn backend_level_header_filters_apply_per_weighted_cluster() {
    let route = mk_route(
        "infra",
        "per",
        "parentRefs:\n- name: gw\nrules:\n- backendRefs:\n  - name: v1\n    port: 8080\n    filters:\n    - type: RequestHeaderModifier\n      requestHeaderModifier: {set: [{name: Backend, value: v1}]}\n  - name: v2\n    port: 8080\n    filters:\n    - type: RequestHeaderModifier\n      requestHeaderModifier: {set: [{name: Backend, value: v2}]}",
    );
    let t = run_yaml(&format!("{}{route}", mk_base()));
    let Some(ClusterSpecifier::WeightedClusters(w)) =
        &forward(route_named(&t, "infra_per_rule0_match0")).cluster_specifier
    else {
        panic!("not weighted")
    };
    assert_eq!(
        w.clusters[1].request_headers_to_add[0]
            .header
            .clone()
            .unwrap()
            .value,
        "v2"
    );
}

#[test]
fn backend_ref_to_an_upstream_uses_its_cluster() {
    let up = "apiVersion: gloo.solo.io/v1\nkind: Upstream\nmetadata:\n  name: ext\n  namespace: infra\nspec:\n  static:\n    hosts: [{addr: 1.2.3.4, port: 80}]\n---\n";
    let route = mk_route(
        "infra",
        "up",
        "parentRefs:\n- name: gw\nrules:\n- backendRefs: [{group: gloo.solo.io, kind: Upstream, name: ext}]",
    );
    let t = run_yaml(&format!("{}{up}{route}", mk_base()));
    assert_eq!(
        forward(route_named(&t, "infra_up_rule0_match0")).cluster_specifier,
        Some(ClusterSpecifier::Cluster("upstream_infra_ext".into()))
    );
    let res = &t.gateways[&key(Kind::Gateway, "infra", "gw")];
    assert_eq!(res.clusters[0].name(), "upstream_infra_ext");
    assert_eq!(
        csr(cond(status(&t, Kind::Upstream, "infra", "ext"), "Accepted")).0,
        "True"
    );
}
