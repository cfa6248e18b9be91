//! `weir::envoy_json` against the real Envoy: resources rendered as JSON, put into a
//! bootstrap's `static_resources`, must be accepted by `envoy --mode validate`, in both
//! field-name styles. These tests fail, never skip, when Envoy is not on PATH.

#[path = "support/envoy.rs"]
mod envoy;

use envoy_types::pb::envoy::config::cluster::v3::{Cluster, cluster};
use envoy_types::pb::envoy::config::core::v3::{
    Address, DataSource, SocketAddress, TransportSocket, address, data_source, socket_address,
    transport_socket,
};
use envoy_types::pb::envoy::config::endpoint::v3::{
    ClusterLoadAssignment, Endpoint, LbEndpoint, LocalityLbEndpoints, lb_endpoint,
};
use envoy_types::pb::envoy::config::listener::v3::{Filter, FilterChain, Listener, filter};
use envoy_types::pb::envoy::config::route::v3::{
    Route, RouteAction, RouteConfiguration, RouteMatch, VirtualHost, route, route_action,
    route_match,
};
use envoy_types::pb::envoy::extensions::filters::http::router::v3::Router;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpConnectionManager, HttpFilter, http_connection_manager, http_filter,
};
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{
    GenericSecret, Secret, UpstreamTlsContext, secret,
};
use envoy_types::pb::google::protobuf::{Any, Duration, UInt32Value};
use prost::{Message, Name};
use serde_json::{Value, json};
use weir::envoy_json::{JsonStyle, to_json_with};

use envoy::{assert_envoy_accepts, envoy_validate};

fn pack<M: Message + Name>(msg: &M) -> Any {
    Any {
        type_url: M::type_url(),
        value: msg.encode_to_vec(),
    }
}

fn mk_address(address: impl ToString, port: u32) -> Address {
    Address {
        address: Some(address::Address::SocketAddress(SocketAddress {
            address: address.to_string(),
            port_specifier: Some(socket_address::PortSpecifier::PortValue(port)),
            ..Default::default()
        })),
    }
}

/// A DNS cluster with a duration, an enum, a wrapper and a TLS transport socket `Any`.
fn mk_cluster(name: impl ToString) -> Cluster {
    let name = name.to_string();
    let tls = UpstreamTlsContext {
        sni: "api.example.com".into(),
        ..Default::default()
    };
    Cluster {
        name: name.clone(),
        cluster_discovery_type: Some(cluster::ClusterDiscoveryType::Type(
            cluster::DiscoveryType::StrictDns as i32,
        )),
        connect_timeout: Some(Duration {
            seconds: 5,
            nanos: 0,
        }),
        per_connection_buffer_limit_bytes: Some(UInt32Value { value: 32_768 }),
        dns_lookup_family: cluster::DnsLookupFamily::V4Preferred as i32,
        transport_socket: Some(TransportSocket {
            name: "envoy.transport_sockets.tls".into(),
            config_type: Some(transport_socket::ConfigType::TypedConfig(pack(&tls))),
        }),
        load_assignment: Some(ClusterLoadAssignment {
            cluster_name: name,
            endpoints: vec![LocalityLbEndpoints {
                lb_endpoints: vec![LbEndpoint {
                    host_identifier: Some(lb_endpoint::HostIdentifier::Endpoint(Endpoint {
                        address: Some(mk_address("api.example.com", 443)),
                        ..Default::default()
                    })),
                    load_balancing_weight: Some(UInt32Value { value: 2 }),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// A listener whose HTTP connection manager routes `/api` to `cluster` with a timeout.
fn mk_listener(cluster: impl ToString) -> Listener {
    let routes = RouteConfiguration {
        name: "http".into(),
        virtual_hosts: vec![VirtualHost {
            name: "example".into(),
            domains: vec!["*".into()],
            routes: vec![Route {
                r#match: Some(RouteMatch {
                    path_specifier: Some(route_match::PathSpecifier::Prefix("/api".into())),
                    ..Default::default()
                }),
                action: Some(route::Action::Route(RouteAction {
                    cluster_specifier: Some(route_action::ClusterSpecifier::Cluster(
                        cluster.to_string(),
                    )),
                    timeout: Some(Duration {
                        seconds: 1,
                        nanos: 500_000_000,
                    }),
                    ..Default::default()
                })),
                ..Default::default()
            }],
            ..Default::default()
        }],
        ..Default::default()
    };
    let hcm = HttpConnectionManager {
        stat_prefix: "http".into(),
        codec_type: http_connection_manager::CodecType::Auto as i32,
        route_specifier: Some(http_connection_manager::RouteSpecifier::RouteConfig(routes)),
        http_filters: vec![HttpFilter {
            name: "envoy.filters.http.router".into(),
            config_type: Some(http_filter::ConfigType::TypedConfig(pack(
                &Router::default(),
            ))),
            ..Default::default()
        }],
        ..Default::default()
    };
    Listener {
        name: "http".into(),
        address: Some(mk_address("0.0.0.0", 8080)),
        filter_chains: vec![FilterChain {
            filters: vec![Filter {
                name: "envoy.filters.network.http_connection_manager".into(),
                config_type: Some(filter::ConfigType::TypedConfig(pack(&hcm))),
            }],
            ..Default::default()
        }],
        ..Default::default()
    }
}

fn mk_secret() -> Secret {
    Secret {
        name: "hmac".into(),
        r#type: Some(secret::Type::GenericSecret(GenericSecret {
            secret: Some(DataSource {
                specifier: Some(data_source::Specifier::InlineString("s3cr3t".into())),
                ..Default::default()
            }),
            ..Default::default()
        })),
    }
}

/// A bootstrap holding the rendered resources, its keys spelled in `style` too.
fn mk_bootstrap(style: JsonStyle) -> Value {
    let cluster = to_json_with(&mk_cluster("backend"), style).unwrap();
    let listener = to_json_with(&mk_listener("backend"), style).unwrap();
    let secret = to_json_with(&mk_secret(), style).unwrap();
    match style {
        JsonStyle::Canonical => json!({"staticResources": {
            "clusters": [cluster], "listeners": [listener], "secrets": [secret]
        }}),
        JsonStyle::ConfigDump => json!({"static_resources": {
            "clusters": [cluster], "listeners": [listener], "secrets": [secret]
        }}),
    }
}

#[test]
fn envoy_accepts_rendered_resources_in_canonical_json() {
    let bootstrap = mk_bootstrap(JsonStyle::Canonical);
    let cluster = &bootstrap["staticResources"]["clusters"][0];
    assert_eq!(cluster["connectTimeout"], "5s");
    assert_eq!(cluster["type"], "STRICT_DNS");
    assert_eq!(
        cluster["transportSocket"]["typedConfig"]["@type"],
        "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext"
    );
    assert_envoy_accepts(&bootstrap);
}

#[test]
fn envoy_accepts_rendered_resources_in_config_dump_json() {
    let bootstrap = mk_bootstrap(JsonStyle::ConfigDump);
    assert_eq!(
        bootstrap["static_resources"]["clusters"][0]["connect_timeout"],
        "5s"
    );
    assert_envoy_accepts(&bootstrap);
}

/// Guards the two tests above against passing vacuously: a rendering Envoy cannot
/// read must be reported as rejected.
#[test]
fn envoy_rejects_a_damaged_rendering() {
    let mut bootstrap = mk_bootstrap(JsonStyle::Canonical);
    bootstrap["staticResources"]["clusters"][0]["type"] = json!("NOT_A_DISCOVERY_TYPE");
    let rejection = envoy_validate(&bootstrap).unwrap_err();
    assert!(rejection.contains("NOT_A_DISCOVERY_TYPE"), "{rejection}");
}
