//! The built-in `kube` Upstream type through the real plugin runtime: the component the
//! build script compiled is loaded with the other built-ins, translates a kube Upstream
//! whose endpoints the host resolved, and what it returns is an EDS cluster and a load
//! assignment that Envoy accepts.

#[path = "support/envoy.rs"]
mod envoy;

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::cluster::v3::cluster::{ClusterDiscoveryType, DiscoveryType};
use envoy_types::pb::envoy::config::core::v3::{HealthStatus, config_source};
use envoy_types::pb::envoy::config::endpoint::v3::{ClusterLoadAssignment, LbEndpoint};
use serde_json::json;
use weir::envoy_json::{JsonStyle, to_json_with};
use weir::plugin::{
    CallError, Endpoint, ObjectRef, PluginRuntime, RuntimeConfig, UpstreamInput, World, builtin,
};

/// A runtime with the built-in plugins, sharing the compiled-plugin cache of the other
/// runtime tests.
fn mk_runtime() -> PluginRuntime {
    let config = RuntimeConfig {
        cache_dir: Some(std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("plugin-cache")),
        ..RuntimeConfig::default()
    };
    let mut runtime = PluginRuntime::new(config).expect("engine");
    builtin::load_all(&mut runtime).expect("built-in plugins load");
    runtime
}

fn mk_endpoint(address: impl ToString, ready: bool) -> Endpoint {
    Endpoint {
        address: address.to_string(),
        port: 8080,
        weight: 0,
        ready,
        labels: vec![("version".into(), "v1".into())],
    }
}

fn mk_upstream(config: impl ToString, endpoints: Vec<Endpoint>) -> UpstreamInput {
    UpstreamInput {
        upstream: ObjectRef {
            group: "gloo.solo.io".into(),
            kind: "Upstream".into(),
            namespace: "shop".into(),
            name: "petstore".into(),
        },
        cluster_name: "upstream_shop_petstore".into(),
        key: "kube".into(),
        config: config.to_string(),
        endpoints,
    }
}

const CONFIG: &str = r#"{"serviceName":"petstore","serviceNamespace":"shop","servicePort":8080,
    "selector":{"app":"petstore"},"subsetSpec":{"selectors":[{"keys":["version"]}]}}"#;

fn translate(endpoints: Vec<Endpoint>) -> (Cluster, ClusterLoadAssignment) {
    let runtime = mk_runtime();
    let mut session = runtime.session();
    let result = session
        .translate_upstream(&mk_upstream(CONFIG, endpoints))
        .expect("kube plugin translates");
    let load_assignment = result.load_assignment.expect("endpoints served over EDS");
    (*result.cluster, load_assignment)
}

fn lb_endpoints(assignment: &ClusterLoadAssignment) -> Vec<&LbEndpoint> {
    assignment
        .endpoints
        .iter()
        .flat_map(|l| &l.lb_endpoints)
        .collect()
}

#[test]
fn kube_is_a_builtin_upstream_type() {
    let runtime = mk_runtime();
    let (_, plugin) = runtime
        .claimant(World::UpstreamType, "kube")
        .expect("a plugin claims `kube`");
    assert_eq!(plugin.metadata.name, "kube");
}

#[test]
fn kube_upstream_becomes_an_eds_cluster_and_a_load_assignment() {
    let (cluster, assignment) = translate(vec![
        mk_endpoint("10.0.0.2", false),
        mk_endpoint("10.0.0.1", true),
    ]);
    assert_eq!(cluster.name, "upstream_shop_petstore");
    assert_eq!(
        cluster.cluster_discovery_type,
        Some(ClusterDiscoveryType::Type(DiscoveryType::Eds as i32))
    );
    let source = cluster
        .eds_cluster_config
        .and_then(|eds| eds.eds_config)
        .expect("EDS config source");
    assert!(matches!(
        source.config_source_specifier,
        Some(config_source::ConfigSourceSpecifier::Ads(_))
    ));
    assert!(cluster.lb_subset_config.is_some(), "subsetSpec is honoured");

    assert_eq!(assignment.cluster_name, "upstream_shop_petstore");
    let health: Vec<_> = lb_endpoints(&assignment)
        .into_iter()
        .map(|lb| HealthStatus::try_from(lb.health_status).unwrap())
        .collect();
    assert_eq!(health, [HealthStatus::Healthy, HealthStatus::Unhealthy]);
}

#[test]
fn invalid_kube_block_is_declined_with_field_paths() {
    let runtime = mk_runtime();
    let mut session = runtime.session();
    let err = session
        .translate_upstream(&mk_upstream(
            r#"{"serviceName":"petstore","servicePort":0}"#,
            vec![],
        ))
        .unwrap_err();
    assert!(matches!(err, CallError::Declined { .. }), "{err}");
    assert!(err.to_string().contains("servicePort"), "{err}");
    assert!(err.to_string().contains("plugin `kube`"), "{err}");

    let err = session
        .validate(World::UpstreamType, "kube", r#"{"servicePort":80}"#)
        .unwrap_err();
    assert!(err.to_string().contains("serviceName"), "{err}");
    session
        .validate(World::UpstreamType, "kube", CONFIG)
        .expect("a valid block validates");
}

/// The EDS cluster needs an ADS source in the bootstrap; the load assignment Envoy would
/// receive over EDS is checked by inlining it into a static cluster.
#[test]
fn envoy_accepts_the_kube_cluster_and_its_endpoints() {
    let (cluster, mut assignment) = translate(vec![
        mk_endpoint("10.0.0.1", true),
        mk_endpoint("10.0.0.2", false),
    ]);
    assignment.cluster_name = "inline".into();
    let inline = Cluster {
        name: "inline".into(),
        load_assignment: Some(assignment),
        lb_subset_config: cluster.lb_subset_config.clone(),
        ..Default::default()
    };
    let style = JsonStyle::ConfigDump;
    let bootstrap = json!({
        "node": {"id": "gateway-0", "cluster": "gateway"},
        "dynamic_resources": {"ads_config": {
            "api_type": "GRPC",
            "transport_api_version": "V3",
            "grpc_services": [{"envoy_grpc": {"cluster_name": "xds"}}]
        }},
        "static_resources": {"clusters": [
            to_json_with(&cluster, style).unwrap(),
            to_json_with(&inline, style).unwrap(),
            {
                "name": "xds",
                "type": "STATIC",
                "typed_extension_protocol_options": {
                    "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                        "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                        "explicit_http_config": {"http2_protocol_options": {}}
                    }
                },
                "load_assignment": {"cluster_name": "xds", "endpoints": [{"lb_endpoints": [
                    {"endpoint": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 18000}}}}
                ]}]}
            }
        ]}
    });
    envoy::assert_envoy_accepts(&bootstrap);
}
