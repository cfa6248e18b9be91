//! Builds the Envoy cluster for a validated `static` type block.

use std::collections::BTreeSet;
use std::time::Duration;

use weir_plugin_sdk::duration::to_proto;
use weir_plugin_sdk::envoy::config::cluster::v3::{Cluster, cluster};
use weir_plugin_sdk::envoy::config::core::v3::{
    Address, Metadata, SocketAddress, TransportSocket, address, socket_address, transport_socket,
};
use weir_plugin_sdk::envoy::config::endpoint::v3::{
    ClusterLoadAssignment, Endpoint, LbEndpoint, LocalityLbEndpoints, lb_endpoint,
};
use weir_plugin_sdk::envoy::extensions::transport_sockets::tls::v3::UpstreamTlsContext;
use weir_plugin_sdk::pack;
use weir_plugin_sdk::prost_types::{Struct, Value, value};

use crate::config::{Host, StaticConfig};

/// How long Envoy waits for a connection to a host (K8sGateway's default).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Envoy's name for the TLS transport socket.
const TLS_TRANSPORT_SOCKET: &str = "envoy.transport_sockets.tls";

/// Metadata filter Envoy matches `transport_socket_matches` against.
const TRANSPORT_SOCKET_MATCH: &str = "envoy.transport_socket_match";

/// Key of the per-host SNI in [`TRANSPORT_SOCKET_MATCH`] metadata.
const SNI_MATCH_KEY: &str = "sni";

/// The cluster `name` for `config`, with its endpoints inline.
///
/// With TLS, hosts that share one SNI get a cluster-wide transport socket
/// with that SNI. Hosts with different SNIs get one transport socket match
/// per SNI, selected by endpoint metadata, as K8sGateway does.
pub fn to_cluster(name: &str, config: &StaticConfig) -> Cluster {
    // Parse each address once: whether it is an IP decides the discovery type, the
    // endpoint's hostname and (with autoSniRewrite) its SNI.
    let hosts: Vec<(&Host, bool, Option<&str>)> = config
        .hosts
        .iter()
        .map(|host| {
            let is_ip = host.is_ip();
            (host, is_ip, config.sni_for_parsed(host, || is_ip))
        })
        .collect();
    let discovery = if hosts.iter().all(|&(_, is_ip, _)| is_ip) {
        cluster::DiscoveryType::Static
    } else {
        cluster::DiscoveryType::StrictDns
    };
    let tls = config.tls();
    let first_sni = hosts.first().and_then(|&(_, _, sni)| sni);
    let per_host_sni = tls && hosts.iter().any(|&(_, _, sni)| sni != first_sni);

    let lb_endpoints = hosts
        .iter()
        .map(|&(host, is_ip, sni)| to_lb_endpoint(host, is_ip, sni.filter(|_| per_host_sni)))
        .collect();

    // Filled in place rather than with `..Default::default()`: `Cluster` is a 3 KB
    // struct, and the struct-update form builds a default one and then copies it.
    let mut cluster = Cluster::default();
    cluster.name = name.to_owned();
    cluster.connect_timeout = Some(to_proto(CONNECT_TIMEOUT));
    cluster.cluster_discovery_type = Some(cluster::ClusterDiscoveryType::Type(discovery as i32));
    cluster.load_assignment = Some(ClusterLoadAssignment {
        cluster_name: name.to_owned(),
        endpoints: vec![LocalityLbEndpoints {
            lb_endpoints,
            ..Default::default()
        }],
        ..Default::default()
    });
    if discovery == cluster::DiscoveryType::StrictDns {
        // Envoy's default (AUTO) prefers IPv6, which many clusters lack.
        cluster.dns_lookup_family = cluster::DnsLookupFamily::V4Preferred as i32;
    }

    if tls {
        if per_host_sni {
            // Hosts without an SNI fall back to the cluster's own socket. One match
            // per distinct SNI, in name order.
            let snis: BTreeSet<&str> = hosts.iter().filter_map(|&(_, _, sni)| sni).collect();
            cluster.transport_socket = Some(tls_socket(None));
            cluster.transport_socket_matches = snis
                .into_iter()
                .map(|sni| cluster::TransportSocketMatch {
                    name: format!("sni-{sni}"),
                    r#match: Some(sni_match(sni)),
                    transport_socket: Some(tls_socket(Some(sni))),
                })
                .collect();
        } else {
            // Every host has the same SNI (or none).
            cluster.transport_socket = Some(tls_socket(first_sni));
        }
    }
    cluster
}

fn to_lb_endpoint(host: &Host, is_ip: bool, sni_match_value: Option<&str>) -> LbEndpoint {
    let endpoint = Endpoint {
        address: Some(Address {
            address: Some(address::Address::SocketAddress(SocketAddress {
                address: host.addr.clone(),
                port_specifier: Some(socket_address::PortSpecifier::PortValue(host.port())),
                ..Default::default()
            })),
        }),
        // Used for auto host rewrite and in stats.
        hostname: if is_ip {
            String::new()
        } else {
            host.addr.clone()
        },
        ..Default::default()
    };
    LbEndpoint {
        host_identifier: Some(lb_endpoint::HostIdentifier::Endpoint(endpoint)),
        load_balancing_weight: host
            .load_balancing_weight
            .and_then(|w| u32::try_from(w).ok()),
        metadata: sni_match_value.map(|sni| Metadata {
            filter_metadata: [(TRANSPORT_SOCKET_MATCH.to_owned(), sni_match(sni))].into(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn sni_match(sni: &str) -> Struct {
    Struct {
        fields: [(
            SNI_MATCH_KEY.to_owned(),
            Value {
                kind: Some(value::Kind::StringValue(sni.to_owned())),
            },
        )]
        .into(),
    }
}

fn tls_socket(sni: Option<&str>) -> TransportSocket {
    let tls = UpstreamTlsContext {
        sni: sni.unwrap_or_default().to_owned(),
        ..Default::default()
    };
    TransportSocket {
        name: TLS_TRANSPORT_SOCKET.to_owned(),
        config_type: Some(transport_socket::ConfigType::TypedConfig(pack(&tls).into())),
    }
}

#[cfg(test)]
mod tests;
