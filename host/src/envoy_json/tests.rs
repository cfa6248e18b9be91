//! Renderings compared field for field with what Envoy prints, plus the failure modes
//! and secret redaction.

use envoy_types::pb::envoy::admin::v3::{SecretsConfigDump, secrets_config_dump};
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
    CertificateValidationContext, GenericSecret, Secret, TlsCertificate, TlsSessionTicketKeys,
    UpstreamTlsContext, secret,
};
use envoy_types::pb::google::protobuf::{Any, Duration, UInt32Value};
use prost::{Message, Name};
use serde_json::json;

use super::*;

fn pack<M: Message + Name>(msg: &M) -> Any {
    Any {
        type_url: M::type_url(),
        value: msg.encode_to_vec(),
    }
}

fn mk_socket_address(address: impl ToString, port: u32) -> Address {
    Address {
        address: Some(address::Address::SocketAddress(SocketAddress {
            address: address.to_string(),
            port_specifier: Some(socket_address::PortSpecifier::PortValue(port)),
            ..Default::default()
        })),
    }
}

fn mk_load_assignment(
    cluster: impl ToString,
    host: impl ToString,
    port: u32,
) -> ClusterLoadAssignment {
    ClusterLoadAssignment {
        cluster_name: cluster.to_string(),
        endpoints: vec![LocalityLbEndpoints {
            lb_endpoints: vec![LbEndpoint {
                host_identifier: Some(lb_endpoint::HostIdentifier::Endpoint(Endpoint {
                    address: Some(mk_socket_address(host, port)),
                    ..Default::default()
                })),
                ..Default::default()
            }],
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// The cluster whose `/config_dump` entry Envoy 1.40 printed (see
/// `cluster_matches_envoys_config_dump`).
fn mk_dns_cluster() -> Cluster {
    Cluster {
        name: "c1".into(),
        cluster_discovery_type: Some(cluster::ClusterDiscoveryType::Type(
            cluster::DiscoveryType::StrictDns as i32,
        )),
        connect_timeout: Some(Duration {
            seconds: 5,
            nanos: 0,
        }),
        per_connection_buffer_limit_bytes: Some(UInt32Value { value: 1000 }),
        load_assignment: Some(mk_load_assignment("c1", "example.com", 443)),
        ..Default::default()
    }
}

fn mk_tls_cluster() -> Cluster {
    let tls = UpstreamTlsContext {
        sni: "api.example.com".into(),
        ..Default::default()
    };
    Cluster {
        transport_socket: Some(TransportSocket {
            name: "envoy.transport_sockets.tls".into(),
            config_type: Some(transport_socket::ConfigType::TypedConfig(pack(&tls))),
        }),
        dns_lookup_family: cluster::DnsLookupFamily::V4Preferred as i32,
        ..mk_dns_cluster()
    }
}

fn mk_route_config() -> RouteConfiguration {
    RouteConfiguration {
        name: "http".into(),
        virtual_hosts: vec![VirtualHost {
            name: "example".into(),
            domains: vec!["example.com".into(), "*.example.com".into()],
            routes: vec![Route {
                name: "route_0".into(),
                r#match: Some(RouteMatch {
                    path_specifier: Some(route_match::PathSpecifier::Prefix("/api".into())),
                    ..Default::default()
                }),
                action: Some(route::Action::Route(RouteAction {
                    cluster_specifier: Some(route_action::ClusterSpecifier::Cluster("c1".into())),
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
    }
}

fn mk_listener() -> Listener {
    let hcm = HttpConnectionManager {
        stat_prefix: "http".into(),
        codec_type: http_connection_manager::CodecType::Http1 as i32,
        route_specifier: Some(http_connection_manager::RouteSpecifier::RouteConfig(
            mk_route_config(),
        )),
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
        address: Some(mk_socket_address("0.0.0.0", 8080)),
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

fn inline_string(text: impl ToString) -> DataSource {
    DataSource {
        specifier: Some(data_source::Specifier::InlineString(text.to_string())),
        ..Default::default()
    }
}

fn inline_bytes(bytes: &[u8]) -> DataSource {
    DataSource {
        specifier: Some(data_source::Specifier::InlineBytes(bytes.to_vec())),
        ..Default::default()
    }
}

fn filename(path: impl ToString) -> DataSource {
    DataSource {
        specifier: Some(data_source::Specifier::Filename(path.to_string())),
        ..Default::default()
    }
}

// === rendering ===

#[test]
fn cluster_renders_duration_enum_wrapper_and_any() {
    let json = to_json(&mk_tls_cluster()).unwrap();
    assert_eq!(
        json,
        json!({
            "name": "c1",
            "type": "STRICT_DNS",
            "connectTimeout": "5s",
            "perConnectionBufferLimitBytes": 1000,
            "dnsLookupFamily": "V4_PREFERRED",
            "transportSocket": {
                "name": "envoy.transport_sockets.tls",
                "typedConfig": {
                    "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
                    "sni": "api.example.com"
                }
            },
            "loadAssignment": {
                "clusterName": "c1",
                "endpoints": [{"lbEndpoints": [{"endpoint": {"address": {"socketAddress": {
                    "address": "example.com",
                    "portValue": 443
                }}}}]}]
            }
        })
    );
}

/// The expected value is the `cluster` of `GET /config_dump?resource=static_clusters`
/// from Envoy 1.40 running this cluster, with the `@type` its `Any` adds.
#[test]
fn cluster_matches_envoys_config_dump() {
    let json = to_json_with(&mk_dns_cluster(), JsonStyle::ConfigDump).unwrap();
    let envoy: Value = serde_json::from_str(
        r#"{
    "name": "c1",
    "type": "STRICT_DNS",
    "connect_timeout": "5s",
    "per_connection_buffer_limit_bytes": 1000,
    "load_assignment": {
     "cluster_name": "c1",
     "endpoints": [
      {
       "lb_endpoints": [
        {
         "endpoint": {
          "address": {
           "socket_address": {
            "address": "example.com",
            "port_value": 443
           }
          }
         }
        }
       ]
      }
     ]
    }
   }"#,
    )
    .unwrap();
    assert_eq!(json, envoy);
}

#[test]
fn listener_renders_the_http_connection_manager_inside_its_any() {
    let json = to_json(&mk_listener()).unwrap();
    assert_eq!(
        json,
        json!({
            "name": "http",
            "address": {"socketAddress": {"address": "0.0.0.0", "portValue": 8080}},
            "filterChains": [{"filters": [{
                "name": "envoy.filters.network.http_connection_manager",
                "typedConfig": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                    "codecType": "HTTP1",
                    "statPrefix": "http",
                    "routeConfig": to_json(&mk_route_config()).unwrap(),
                    "httpFilters": [{
                        "name": "envoy.filters.http.router",
                        "typedConfig": {
                            "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"
                        }
                    }]
                }
            }]}]
        })
    );
}

#[test]
fn route_configuration_renders_oneofs_by_their_field_names() {
    let json = to_json(&mk_route_config()).unwrap();
    assert_eq!(
        json,
        json!({
            "name": "http",
            "virtualHosts": [{
                "name": "example",
                "domains": ["example.com", "*.example.com"],
                "routes": [{
                    "name": "route_0",
                    "match": {"prefix": "/api"},
                    "route": {"cluster": "c1", "timeout": "1.500s"}
                }]
            }]
        })
    );
}

#[test]
fn config_dump_style_uses_proto_field_names_throughout() {
    let json = to_json_with(&mk_listener(), JsonStyle::ConfigDump).unwrap();
    let hcm = &json["filter_chains"][0]["filters"][0]["typed_config"];
    assert_eq!(hcm["stat_prefix"], "http");
    assert_eq!(hcm["route_config"]["virtual_hosts"][0]["name"], "example");
    assert_eq!(hcm["http_filters"][0]["name"], "envoy.filters.http.router");
}

#[test]
fn sixty_four_bit_integers_are_strings() {
    use envoy_types::pb::envoy::config::route::v3::RetryPolicy;
    let retry = RetryPolicy {
        host_selection_retry_max_attempts: 3,
        retriable_status_codes: vec![503],
        ..Default::default()
    };
    assert_eq!(
        to_json(&retry).unwrap(),
        json!({"hostSelectionRetryMaxAttempts": "3", "retriableStatusCodes": [503]})
    );
}

#[test]
fn any_to_json_starts_with_its_type() {
    let any = pack(&mk_dns_cluster());
    let json = any_to_json(&any.type_url, &any.value, JsonStyle::ConfigDump).unwrap();
    assert_eq!(
        json["@type"],
        "type.googleapis.com/envoy.config.cluster.v3.Cluster"
    );
    assert_eq!(json["connect_timeout"], "5s");
    assert_eq!(
        serde_json::to_string(&json).unwrap().find("\"@type\""),
        Some(1),
        "@type comes first"
    );
}

#[test]
fn every_type_the_host_emits_is_in_the_descriptor_set() {
    let pool = descriptor_pool().unwrap();
    for name in [
        Cluster::full_name(),
        ClusterLoadAssignment::full_name(),
        Listener::full_name(),
        HttpConnectionManager::full_name(),
        RouteConfiguration::full_name(),
        VirtualHost::full_name(),
        Route::full_name(),
        Secret::full_name(),
        UpstreamTlsContext::full_name(),
        Router::full_name(),
        envoy_types::pb::envoy::admin::v3::ClustersConfigDump::full_name(),
        envoy_types::pb::envoy::admin::v3::ListenersConfigDump::full_name(),
        envoy_types::pb::envoy::admin::v3::RoutesConfigDump::full_name(),
        envoy_types::pb::envoy::admin::v3::EndpointsConfigDump::full_name(),
        SecretsConfigDump::full_name(),
        envoy_types::pb::envoy::config::bootstrap::v3::Bootstrap::full_name(),
    ] {
        assert!(
            pool.get_message_by_name(&name).is_some(),
            "{name} is missing"
        );
    }
}

// === failures ===

#[test]
fn any_of_an_unknown_type_is_an_error_naming_the_type_and_field() {
    let mut cluster = mk_tls_cluster();
    cluster.transport_socket = Some(TransportSocket {
        name: "envoy.transport_sockets.quic".into(),
        config_type: Some(transport_socket::ConfigType::TypedConfig(Any {
            type_url: "type.googleapis.com/envoy.extensions.transport_sockets.quic.v3.QuicUpstreamTransport"
                .into(),
            value: vec![],
        })),
    });
    let err = to_json(&cluster).unwrap_err();
    let JsonError::UnknownType { type_name, path } = &err else {
        panic!("unexpected error {err:?}");
    };
    assert_eq!(
        type_name,
        "envoy.extensions.transport_sockets.quic.v3.QuicUpstreamTransport"
    );
    assert_eq!(path, "transport_socket.typed_config");
    assert!(err.to_string().contains("sdk/proto/update.py"), "{err}");
}

#[test]
fn unknown_top_level_type_is_an_error() {
    // RBAC is in envoy-types but not vendored in sdk/proto.
    let rbac = envoy_types::pb::envoy::config::rbac::v3::Rbac::default();
    let err = to_json(&rbac).unwrap_err();
    assert!(
        matches!(&err, JsonError::UnknownType { type_name, path } if type_name == "envoy.config.rbac.v3.RBAC" && path.is_empty()),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "unknown Envoy message type `envoy.config.rbac.v3.RBAC`; add its proto to the roots in \
         sdk/proto/update.py and re-run it"
    );
}

#[test]
fn malformed_type_url_is_an_error() {
    let err =
        any_to_json("envoy.config.cluster.v3.Cluster", &[], JsonStyle::Canonical).unwrap_err();
    assert!(matches!(err, JsonError::BadTypeUrl { .. }), "{err:?}");
}

#[test]
fn undecodable_any_payload_is_an_error_at_its_path() {
    let mut listener = mk_listener();
    listener.filter_chains[0].filters[0].config_type = Some(filter::ConfigType::TypedConfig(Any {
        type_url: HttpConnectionManager::type_url(),
        value: vec![0xff, 0xff, 0xff],
    }));
    let err = to_json(&listener).unwrap_err();
    let JsonError::Decode { path, .. } = &err else {
        panic!("unexpected error {err:?}");
    };
    assert_eq!(path, "filter_chains[0].filters[0].typed_config");
}

#[test]
fn field_the_descriptors_lack_is_an_error_not_dropped() {
    let mut bytes = mk_dns_cluster().encode_to_vec();
    // Field 9999, varint 1: a field from an API newer than sdk/proto.
    prost::encoding::encode_key(9999, prost::encoding::WireType::Varint, &mut bytes);
    prost::encoding::encode_varint(1, &mut bytes);
    let err = any_to_json(&Cluster::type_url(), &bytes, JsonStyle::Canonical).unwrap_err();
    assert!(
        matches!(err, JsonError::UnknownField { number: 9999, .. }),
        "{err:?}"
    );
}

#[test]
fn out_of_range_duration_is_an_error_not_a_panic() {
    let mut cluster = mk_dns_cluster();
    cluster.connect_timeout = Some(Duration {
        seconds: i64::MAX,
        nanos: 0,
    });
    let err = to_json(&cluster).unwrap_err();
    assert!(matches!(err, JsonError::Serialize { .. }), "{err:?}");
}

// === secrets ===

fn mk_secret(name: &str, kind: secret::Type) -> Secret {
    Secret {
        name: name.into(),
        r#type: Some(kind),
    }
}

fn render_redacted(secret: &Secret, style: JsonStyle) -> Value {
    let mut json = to_json_with(secret, style).unwrap();
    redact_secret(&mut json);
    json
}

#[test]
fn tls_certificate_keeps_its_chain_and_loses_its_key_and_password() {
    let secret = mk_secret(
        "server-cert",
        secret::Type::TlsCertificate(TlsCertificate {
            certificate_chain: Some(inline_string("-----BEGIN CERTIFICATE-----")),
            private_key: Some(inline_string("-----BEGIN PRIVATE KEY-----")),
            password: Some(inline_bytes(b"hunter2")),
            pkcs12: Some(inline_bytes(b"pkcs12 bundle")),
            ..Default::default()
        }),
    );
    assert_eq!(
        render_redacted(&secret, JsonStyle::Canonical),
        json!({
            "name": "server-cert",
            "tlsCertificate": {
                "certificateChain": {"inlineString": "-----BEGIN CERTIFICATE-----"},
                "privateKey": {"inlineString": "[redacted]"},
                "password": {"inlineBytes": "[redacted]"},
                "pkcs12": {"inlineBytes": "[redacted]"}
            }
        })
    );
    assert_eq!(
        render_redacted(&secret, JsonStyle::ConfigDump)["tls_certificate"],
        json!({
            "certificate_chain": {"inline_string": "-----BEGIN CERTIFICATE-----"},
            "private_key": {"inline_string": "[redacted]"},
            "password": {"inline_bytes": "[redacted]"},
            "pkcs12": {"inline_bytes": "[redacted]"}
        })
    );
}

#[test]
fn session_ticket_keys_are_redacted_but_file_names_kept() {
    let secret = mk_secret(
        "tickets",
        secret::Type::SessionTicketKeys(TlsSessionTicketKeys {
            keys: vec![inline_bytes(&[7; 80]), filename("/etc/envoy/ticket.key")],
        }),
    );
    assert_eq!(
        render_redacted(&secret, JsonStyle::Canonical)["sessionTicketKeys"],
        json!({"keys": [{"inlineBytes": "[redacted]"}, {"filename": "/etc/envoy/ticket.key"}]})
    );
}

#[test]
fn generic_secret_and_its_map_are_redacted() {
    let secret = mk_secret(
        "hmac",
        secret::Type::GenericSecret(GenericSecret {
            secret: Some(inline_string("s3cr3t")),
            secrets: [("client-secret".to_owned(), inline_bytes(b"xyz"))].into(),
        }),
    );
    assert_eq!(
        render_redacted(&secret, JsonStyle::ConfigDump)["generic_secret"],
        json!({
            "secret": {"inline_string": "[redacted]"},
            "secrets": {"client-secret": {"inline_bytes": "[redacted]"}}
        })
    );
}

#[test]
fn validation_context_is_public_and_left_alone() {
    let secret = mk_secret(
        "ca",
        secret::Type::ValidationContext(CertificateValidationContext {
            trusted_ca: Some(inline_string("-----BEGIN CERTIFICATE-----")),
            ..Default::default()
        }),
    );
    let rendered = to_json(&secret).unwrap();
    assert_eq!(render_redacted(&secret, JsonStyle::Canonical), rendered);
}

#[test]
fn bare_secret_strings_and_key_provider_configs_are_redacted() {
    let mut json = json!({"tlsCertificate": {
        "password": "plain",
        "privateKeyProvider": {
            "providerName": "cryptomb",
            "typedConfig": {
                "@type": "type.googleapis.com/envoy.extensions.private_key_providers.cryptomb.v3alpha.CryptoMbPrivateKeyMethodConfig",
                "privateKey": {"inlineString": "-----BEGIN PRIVATE KEY-----"},
                "pollDelay": "0.020s"
            }
        }
    }});
    redact_secret(&mut json);
    assert_eq!(json["tlsCertificate"]["password"], REDACTED);
    let provider = &json["tlsCertificate"]["privateKeyProvider"];
    assert_eq!(provider["providerName"], "cryptomb");
    assert_eq!(
        provider["typedConfig"]["privateKey"]["inlineString"],
        REDACTED
    );
    assert_eq!(provider["typedConfig"]["pollDelay"], "0.020s");
}

#[test]
fn secrets_inside_a_config_dump_are_redacted() {
    let secret = mk_secret(
        "server-cert",
        secret::Type::TlsCertificate(TlsCertificate {
            private_key: Some(inline_string("-----BEGIN PRIVATE KEY-----")),
            ..Default::default()
        }),
    );
    let dump = SecretsConfigDump {
        static_secrets: vec![secrets_config_dump::StaticSecret {
            name: "server-cert".into(),
            secret: Some(pack(&secret)),
            ..Default::default()
        }],
        ..Default::default()
    };
    let mut json = to_json_with(&dump, JsonStyle::ConfigDump).unwrap();
    redact_secret(&mut json);
    assert_eq!(
        json["static_secrets"][0]["secret"],
        json!({
            "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret",
            "name": "server-cert",
            "tls_certificate": {"private_key": {"inline_string": "[redacted]"}}
        })
    );
}
