use weir_plugin_sdk::envoy::config::cluster::v3::cluster::{ClusterDiscoveryType, DiscoveryType};
use weir_plugin_sdk::envoy::config::endpoint::v3::lb_endpoint::HostIdentifier;
use weir_plugin_sdk::prost::Name;
use weir_plugin_sdk::{ClusterName, ObjectRef, PluginError, UpstreamInput, UpstreamType, unpack};

use super::*;
use crate::KubePlugin;

fn mk_endpoint(address: impl ToString, ready: bool) -> Endpoint {
    Endpoint {
        address: address.to_string(),
        port: 8080,
        weight: 0,
        ready,
        labels: Vec::new(),
    }
}

fn mk_labelled(address: impl ToString, labels: &[(&str, &str)]) -> Endpoint {
    Endpoint {
        labels: labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..mk_endpoint(address, true)
    }
}

fn mk_input(config: impl ToString, endpoints: Vec<Endpoint>) -> UpstreamInput {
    UpstreamInput {
        upstream: ObjectRef {
            group: "gateway.weir.dev".into(),
            kind: "Upstream".into(),
            namespace: "shop".into(),
            name: "petstore".into(),
        },
        cluster_name: ClusterName::new("upstream_shop_petstore"),
        key: "kube".into(),
        config: config.to_string(),
        endpoints,
    }
}

const CONFIG: &str = r#"{"serviceName":"petstore","servicePort":8080}"#;

fn translate(config: &str, endpoints: Vec<Endpoint>) -> (Cluster, ClusterLoadAssignment) {
    let output = KubePlugin::translate(mk_input(config, endpoints)).expect("translates");
    assert_eq!(output.cluster.type_url, Cluster::type_url());
    let load_assignment = output.load_assignment.expect("a separate load assignment");
    assert_eq!(load_assignment.type_url, ClusterLoadAssignment::type_url());
    (
        unpack(&output.cluster).expect("a Cluster"),
        unpack(&load_assignment).expect("a ClusterLoadAssignment"),
    )
}

fn lb_endpoints(assignment: &ClusterLoadAssignment) -> Vec<&LbEndpoint> {
    assignment
        .endpoints
        .iter()
        .flat_map(|l| &l.lb_endpoints)
        .collect()
}

fn socket(lb: &LbEndpoint) -> (String, u32) {
    let Some(HostIdentifier::Endpoint(endpoint)) = &lb.host_identifier else {
        panic!("no endpoint")
    };
    let Some(address::Address::SocketAddress(addr)) =
        endpoint.address.as_ref().and_then(|a| a.address.as_ref())
    else {
        panic!("no socket address")
    };
    let Some(socket_address::PortSpecifier::PortValue(port)) = addr.port_specifier else {
        panic!("no port")
    };
    (addr.address.clone(), port)
}

fn health(lb: &LbEndpoint) -> HealthStatus {
    HealthStatus::try_from(lb.health_status).expect("known status")
}

#[test]
fn kube_upstream_becomes_an_eds_cluster_fed_over_ads() {
    let (cluster, assignment) = translate(CONFIG, vec![mk_endpoint("10.0.0.1", true)]);
    assert_eq!(cluster.name, "upstream_shop_petstore");
    assert_eq!(
        cluster.cluster_discovery_type,
        Some(ClusterDiscoveryType::Type(DiscoveryType::Eds as i32))
    );
    let eds = cluster.eds_cluster_config.expect("EDS config");
    let source = eds.eds_config.expect("config source");
    assert_eq!(source.resource_api_version, ApiVersion::V3 as i32);
    assert!(matches!(
        source.config_source_specifier,
        Some(config_source::ConfigSourceSpecifier::Ads(_))
    ));
    assert_eq!(cluster.connect_timeout, Some(to_proto(CONNECT_TIMEOUT)));
    assert!(
        cluster.load_assignment.is_none(),
        "endpoints are not inline"
    );
    assert!(cluster.lb_subset_config.is_none());
    assert_eq!(assignment.cluster_name, "upstream_shop_petstore");
}

#[test]
fn ready_endpoints_are_healthy_and_the_rest_unhealthy() {
    let (_, assignment) = translate(
        CONFIG,
        vec![
            mk_endpoint("10.0.0.2", false),
            mk_endpoint("10.0.0.1", true),
        ],
    );
    let lbs = lb_endpoints(&assignment);
    assert_eq!(socket(lbs[0]), ("10.0.0.1".to_owned(), 8080));
    assert_eq!(health(lbs[0]), HealthStatus::Healthy);
    assert_eq!(socket(lbs[1]), ("10.0.0.2".to_owned(), 8080));
    assert_eq!(health(lbs[1]), HealthStatus::Unhealthy);
}

#[test]
fn endpoints_come_out_in_address_order_whatever_the_input_order() {
    let endpoints = vec![
        mk_endpoint("10.0.0.10", true),
        mk_endpoint("10.0.0.9", true),
        mk_endpoint("fd00::1", true),
    ];
    let mut reversed = endpoints.clone();
    reversed.reverse();
    let (_, a) = translate(CONFIG, endpoints);
    let (_, b) = translate(CONFIG, reversed);
    assert_eq!(a, b);
    let addresses: Vec<_> = lb_endpoints(&a)
        .into_iter()
        .map(|lb| socket(lb).0)
        .collect();
    assert_eq!(addresses, ["10.0.0.9", "10.0.0.10", "fd00::1"]);
}

#[test]
fn duplicate_endpoints_are_merged_keeping_the_ready_copy() {
    let (_, assignment) = translate(
        CONFIG,
        vec![
            mk_endpoint("10.0.0.1", false),
            mk_endpoint("10.0.0.1", true),
            mk_endpoint("10.0.0.1", false),
        ],
    );
    let lbs = lb_endpoints(&assignment);
    assert_eq!(lbs.len(), 1);
    assert_eq!(health(lbs[0]), HealthStatus::Healthy);
}

#[test]
fn weights_pass_through_and_zero_means_the_default() {
    let mut heavy = mk_endpoint("10.0.0.1", true);
    heavy.weight = 3;
    let (_, assignment) = translate(CONFIG, vec![heavy, mk_endpoint("10.0.0.2", true)]);
    let weights: Vec<_> = lb_endpoints(&assignment)
        .into_iter()
        .map(|lb| lb.load_balancing_weight)
        .collect();
    assert_eq!(weights, [Some(3), None]);
}

#[test]
fn weights_summing_past_u32_max_are_scaled_down() {
    let weights = fit_weights([u32::MAX, u32::MAX, 0, 1].into_iter());
    let sum: u64 = weights.iter().map(|w| u64::from(w.unwrap_or(1))).sum();
    assert!(sum <= u64::from(u32::MAX), "{weights:?}");
    assert!(weights.iter().all(|w| w.is_some_and(|w| w >= 1)));
    assert_eq!(weights[0], weights[1], "proportions are kept");
}

#[test]
fn endpoints_that_are_not_ip_addresses_are_left_out() {
    let (_, assignment) = translate(
        CONFIG,
        vec![
            mk_endpoint("petstore.shop.svc", true),
            mk_endpoint("10.0.0.1", true),
        ],
    );
    let addresses: Vec<_> = lb_endpoints(&assignment)
        .into_iter()
        .map(|lb| socket(lb).0)
        .collect();
    assert_eq!(addresses, ["10.0.0.1"]);
}

#[test]
fn no_endpoints_gives_an_empty_load_assignment() {
    let (_, assignment) = translate(CONFIG, vec![]);
    assert_eq!(assignment.cluster_name, "upstream_shop_petstore");
    assert!(assignment.endpoints.is_empty());
}

#[test]
fn subset_spec_configures_subsets_and_labels_endpoints() {
    let config = r#"{"serviceName":"petstore","servicePort":8080,
        "subsetSpec":{"selectors":[{"keys":["version"]},{"keys":["version","zone"]}]}}"#;
    let (cluster, assignment) = translate(
        config,
        vec![
            mk_labelled("10.0.0.1", &[("app", "petstore"), ("version", "v1")]),
            mk_labelled("10.0.0.2", &[("version", "v2"), ("zone", "a")]),
            mk_labelled("10.0.0.3", &[("app", "petstore")]),
        ],
    );
    let subsets = cluster.lb_subset_config.expect("subset config");
    assert_eq!(
        subsets.fallback_policy,
        lb_subset_config::LbSubsetFallbackPolicy::AnyEndpoint as i32
    );
    let keys: Vec<_> = subsets
        .subset_selectors
        .iter()
        .map(|s| s.keys.clone())
        .collect();
    assert_eq!(keys, [vec!["version"], vec!["version", "zone"]]);

    let labels: Vec<Vec<(String, String)>> = lb_endpoints(&assignment)
        .into_iter()
        .map(|lb| {
            let Some(metadata) = &lb.metadata else {
                return Vec::new();
            };
            metadata.filter_metadata[SUBSET_METADATA]
                .fields
                .iter()
                .map(|(k, v)| match &v.kind {
                    Some(value::Kind::StringValue(s)) => (k.clone(), s.clone()),
                    other => panic!("unexpected value {other:?}"),
                })
                .collect()
        })
        .collect();
    assert_eq!(
        labels,
        [
            vec![("version".to_owned(), "v1".to_owned())],
            vec![
                ("version".to_owned(), "v2".to_owned()),
                ("zone".to_owned(), "a".to_owned())
            ],
            vec![],
        ],
        "only the labels subsets use, and no metadata without them"
    );
}

#[test]
fn without_subsets_endpoints_carry_no_metadata() {
    let (_, assignment) = translate(CONFIG, vec![mk_labelled("10.0.0.1", &[("version", "v1")])]);
    assert!(lb_endpoints(&assignment)[0].metadata.is_none());
}

#[test]
fn invalid_block_is_declined_with_field_paths() {
    let err = KubePlugin::translate(mk_input(
        r#"{"serviceName":"Petstore","servicePort":70000}"#,
        vec![],
    ))
    .unwrap_err();
    let PluginError::InvalidConfig(problems) = err else {
        panic!("expected invalid config, got {err:?}");
    };
    let paths: Vec<_> = problems.iter().map(|p| p.path.as_str()).collect();
    assert_eq!(paths, ["serviceName", "servicePort"]);
}

#[test]
fn validate_accepts_what_translate_accepts() {
    assert_eq!(KubePlugin::validate("kube", CONFIG), Ok(()));
    assert!(KubePlugin::validate("kube", r#"{"servicePort":80}"#).is_err());
}
