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
use weir_plugin_sdk::prost::encoding::{self, WireType};
use weir_plugin_sdk::prost_types::{Duration as ProtoDuration, Struct, Value, value};

use crate::config::StaticConfig;

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
    let parts = Parts::new(config);
    // Filled in place rather than with `..Default::default()`: `Cluster` is a 3 KB
    // struct, and the struct-update form builds a default one and then copies it.
    let mut cluster = Cluster::default();
    cluster.name = name.to_owned();
    cluster.load_assignment = Some(parts.load_assignment(name));
    cluster.connect_timeout = Some(to_proto(CONNECT_TIMEOUT));
    cluster.cluster_discovery_type =
        Some(cluster::ClusterDiscoveryType::Type(parts.discovery as i32));
    cluster.dns_lookup_family = parts.dns_lookup_family as i32;
    cluster.transport_socket = parts.transport_socket;
    cluster.transport_socket_matches = parts.transport_socket_matches;
    cluster
}

/// [`to_cluster`], encoded: the same bytes as `to_cluster(name, config).encode_to_vec()`.
///
/// Written field by field, because building the 3 KB `Cluster` struct, walking its
/// ~50 fields to size and encode it and dropping it again is most of the cost of
/// encoding the handful of fields a static cluster sets.
pub fn encode_cluster(name: &str, config: &StaticConfig) -> Vec<u8> {
    Parts::new(config).encode(name)
}

/// Field numbers of `envoy.config.cluster.v3.Cluster` that a static cluster sets.
mod field {
    pub const NAME: u32 = 1;
    /// `type`, in the `cluster_discovery_type` oneof.
    pub const TYPE: u32 = 2;
    pub const CONNECT_TIMEOUT: u32 = 4;
    pub const DNS_LOOKUP_FAMILY: u32 = 17;
    pub const TRANSPORT_SOCKET: u32 = 24;
    pub const LOAD_ASSIGNMENT: u32 = 33;
    pub const TRANSPORT_SOCKET_MATCHES: u32 = 43;
}

/// The fields of a static cluster that depend on its configuration.
struct Parts<'a> {
    discovery: cluster::DiscoveryType,
    dns_lookup_family: cluster::DnsLookupFamily,
    /// The inline endpoints, in host order.
    endpoints: Vec<EndpointParts<'a>>,
    /// Encoded length of the one `LocalityLbEndpoints` holding them.
    locality_len: usize,
    transport_socket: Option<TransportSocket>,
    transport_socket_matches: Vec<cluster::TransportSocketMatch>,
}

/// What one host's `LbEndpoint` holds.
struct EndpointParts<'a> {
    addr: &'a str,
    port: u32,
    /// The hostname Envoy uses for auto host rewrite and stats (empty for an IP).
    hostname: &'a str,
    /// Whether the address is an IP.
    is_ip: bool,
    /// The SNI to send to the host, if any.
    sni: Option<&'a str>,
    weight: Option<u32>,
    /// The transport socket match metadata, when hosts have different SNIs.
    metadata: Option<Metadata>,
    /// Encoded lengths of its `SocketAddress`, `Endpoint` and `LbEndpoint`, measured
    /// once ([`EndpointParts::measure`]) rather than at each of their uses.
    socket_address_len: usize,
    endpoint_len: usize,
    lb_endpoint_len: usize,
}

impl<'a> Parts<'a> {
    fn new(config: &'a StaticConfig) -> Self {
        // Parse each address once: whether it is an IP decides the discovery type, the
        // endpoint's hostname and (with autoSniRewrite) its SNI. One vector holds the
        // endpoints from the start; they are measured once their metadata is known.
        let mut endpoints: Vec<EndpointParts> = config
            .hosts
            .iter()
            .map(|host| {
                let is_ip = host.is_ip();
                EndpointParts {
                    addr: &host.addr,
                    port: host.port(),
                    hostname: if is_ip { "" } else { &host.addr },
                    is_ip,
                    sni: config.sni_for_parsed(host, || is_ip),
                    weight: host
                        .load_balancing_weight
                        .and_then(|w| u32::try_from(w).ok()),
                    metadata: None,
                    socket_address_len: 0,
                    endpoint_len: 0,
                    lb_endpoint_len: 0,
                }
            })
            .collect();
        let discovery = if endpoints.iter().all(|e| e.is_ip) {
            cluster::DiscoveryType::Static
        } else {
            cluster::DiscoveryType::StrictDns
        };
        let tls = config.tls();
        let first_sni = endpoints.first().and_then(|e| e.sni);
        let per_host_sni = tls && endpoints.iter().any(|e| e.sni != first_sni);
        for endpoint in &mut endpoints {
            if per_host_sni {
                endpoint.metadata = endpoint.sni.map(sni_metadata);
            }
            endpoint.measure();
        }
        let locality_len = endpoints
            .iter()
            .map(|e| nested_len(endpoint_field::LB_ENDPOINTS, e.lb_endpoint_len))
            .sum();
        let dns_lookup_family = if discovery == cluster::DiscoveryType::StrictDns {
            // Envoy's default (AUTO) prefers IPv6, which many clusters lack.
            cluster::DnsLookupFamily::V4Preferred
        } else {
            cluster::DnsLookupFamily::Auto
        };

        let (transport_socket, transport_socket_matches) = match (tls, per_host_sni) {
            (false, _) => (None, Vec::new()),
            // Hosts without an SNI fall back to the cluster's own socket. One match per
            // distinct SNI, in name order.
            (true, true) => {
                let snis: BTreeSet<&str> = endpoints.iter().filter_map(|e| e.sni).collect();
                let matches = snis
                    .into_iter()
                    .map(|sni| cluster::TransportSocketMatch {
                        name: format!("sni-{sni}"),
                        r#match: Some(sni_match(sni)),
                        transport_socket: Some(tls_socket(Some(sni))),
                    })
                    .collect();
                (Some(tls_socket(None)), matches)
            }
            // Every host has the same SNI (or none).
            (true, false) => (Some(tls_socket(first_sni)), Vec::new()),
        };
        Parts {
            discovery,
            dns_lookup_family,
            endpoints,
            locality_len,
            transport_socket,
            transport_socket_matches,
        }
    }

    /// The encoded cluster, fields in number order as prost writes them, skipping the
    /// ones at their default value as proto3 does.
    fn encode(&self, name: &str) -> Vec<u8> {
        let timeout = to_proto(CONNECT_TIMEOUT);
        let discovery = self.discovery as i32;
        let dns_lookup_family = self.dns_lookup_family as i32;
        let name_len = string_len(field::NAME, name);
        let load_assignment_len = self.load_assignment_len(name);
        let dns_len = match dns_lookup_family {
            0 => 0,
            family => encoding::int32::encoded_len(field::DNS_LOOKUP_FAMILY, &family),
        };
        let len = name_len
            + encoding::int32::encoded_len(field::TYPE, &discovery)
            + encoding::message::encoded_len(field::CONNECT_TIMEOUT, &timeout)
            + dns_len
            + self.transport_socket.as_ref().map_or(0, |socket| {
                encoding::message::encoded_len(field::TRANSPORT_SOCKET, socket)
            })
            + nested_len(field::LOAD_ASSIGNMENT, load_assignment_len)
            + encoding::message::encoded_len_repeated(
                field::TRANSPORT_SOCKET_MATCHES,
                &self.transport_socket_matches,
            );
        let mut buf = Vec::with_capacity(len);
        put_string(field::NAME, name, &mut buf);
        put_int32(field::TYPE, discovery, &mut buf);
        put_duration(field::CONNECT_TIMEOUT, &timeout, &mut buf);
        if dns_lookup_family != 0 {
            put_int32(field::DNS_LOOKUP_FAMILY, dns_lookup_family, &mut buf);
        }
        if let Some(socket) = &self.transport_socket {
            encoding::message::encode(field::TRANSPORT_SOCKET, socket, &mut buf);
        }
        put_header(field::LOAD_ASSIGNMENT, load_assignment_len, &mut buf);
        self.encode_load_assignment(name, &mut buf);
        for socket_match in &self.transport_socket_matches {
            encoding::message::encode(field::TRANSPORT_SOCKET_MATCHES, socket_match, &mut buf);
        }
        debug_assert_eq!(buf.len(), len);
        buf
    }
}

/// Field numbers of the endpoint messages a static cluster sets.
mod endpoint_field {
    /// `ClusterLoadAssignment.cluster_name`.
    pub const CLUSTER_NAME: u32 = 1;
    /// `ClusterLoadAssignment.endpoints`.
    pub const LOCALITY_ENDPOINTS: u32 = 2;
    /// `LocalityLbEndpoints.lb_endpoints`.
    pub const LB_ENDPOINTS: u32 = 2;
    /// `LbEndpoint.endpoint`, in the `host_identifier` oneof.
    pub const ENDPOINT: u32 = 1;
    /// `LbEndpoint.metadata`.
    pub const METADATA: u32 = 3;
    /// `LbEndpoint.load_balancing_weight` (a `UInt32Value`, whose `value` is field 1).
    pub const WEIGHT: u32 = 4;
    /// `Endpoint.address`.
    pub const ADDRESS: u32 = 1;
    /// `Endpoint.hostname`.
    pub const HOSTNAME: u32 = 3;
    /// `Address.socket_address`, in the `address` oneof.
    pub const SOCKET_ADDRESS: u32 = 1;
    /// `SocketAddress.address`.
    pub const SOCKET_ADDRESS_ADDRESS: u32 = 2;
    /// `SocketAddress.port_value`, in the `port_specifier` oneof.
    pub const PORT_VALUE: u32 = 3;
}

impl Parts<'_> {
    /// The endpoints as a `ClusterLoadAssignment` message (for [`to_cluster`]).
    fn load_assignment(&self, name: &str) -> ClusterLoadAssignment {
        let lb_endpoints = self
            .endpoints
            .iter()
            .map(EndpointParts::to_lb_endpoint)
            .collect();
        ClusterLoadAssignment {
            cluster_name: name.to_owned(),
            endpoints: vec![LocalityLbEndpoints {
                lb_endpoints,
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    /// Length of the encoded `ClusterLoadAssignment`: the cluster name and one
    /// `LocalityLbEndpoints` holding every endpoint.
    fn load_assignment_len(&self, name: &str) -> usize {
        string_len(endpoint_field::CLUSTER_NAME, name)
            + nested_len(endpoint_field::LOCALITY_ENDPOINTS, self.locality_len)
    }

    /// Writes the `ClusterLoadAssignment` (without its own key and length) exactly as
    /// prost encodes [`Parts::load_assignment`].
    fn encode_load_assignment(&self, name: &str, buf: &mut Vec<u8>) {
        put_string(endpoint_field::CLUSTER_NAME, name, buf);
        put_header(endpoint_field::LOCALITY_ENDPOINTS, self.locality_len, buf);
        for endpoint in &self.endpoints {
            put_header(endpoint_field::LB_ENDPOINTS, endpoint.lb_endpoint_len, buf);
            endpoint.encode(buf);
        }
    }
}

impl EndpointParts<'_> {
    fn to_lb_endpoint(&self) -> LbEndpoint {
        let endpoint = Endpoint {
            address: Some(Address {
                address: Some(address::Address::SocketAddress(SocketAddress {
                    address: self.addr.to_owned(),
                    port_specifier: Some(socket_address::PortSpecifier::PortValue(self.port)),
                    ..Default::default()
                })),
            }),
            // Used for auto host rewrite and in stats.
            hostname: self.hostname.to_owned(),
            ..Default::default()
        };
        LbEndpoint {
            host_identifier: Some(lb_endpoint::HostIdentifier::Endpoint(endpoint)),
            load_balancing_weight: self.weight,
            metadata: self.metadata.clone(),
            ..Default::default()
        }
    }

    /// Fills in the encoded lengths of the endpoint's messages.
    fn measure(&mut self) {
        self.socket_address_len = string_len(endpoint_field::SOCKET_ADDRESS_ADDRESS, self.addr)
            + encoding::uint32::encoded_len(endpoint_field::PORT_VALUE, &self.port);
        self.endpoint_len = nested_len(
            endpoint_field::ADDRESS,
            nested_len(endpoint_field::SOCKET_ADDRESS, self.socket_address_len),
        ) + string_len(endpoint_field::HOSTNAME, self.hostname);
        self.lb_endpoint_len = nested_len(endpoint_field::ENDPOINT, self.endpoint_len)
            + self.metadata.as_ref().map_or(0, |metadata| {
                encoding::message::encoded_len(endpoint_field::METADATA, metadata)
            })
            + self.weight.map_or(0, |weight| {
                encoding::message::encoded_len(endpoint_field::WEIGHT, &weight)
            });
    }

    /// Writes the `LbEndpoint` (without its own key and length), fields in number order.
    fn encode(&self, buf: &mut Vec<u8>) {
        put_header(endpoint_field::ENDPOINT, self.endpoint_len, buf);
        let socket_address_len = self.socket_address_len;
        put_header(
            endpoint_field::ADDRESS,
            nested_len(endpoint_field::SOCKET_ADDRESS, socket_address_len),
            buf,
        );
        put_header(endpoint_field::SOCKET_ADDRESS, socket_address_len, buf);
        put_string(endpoint_field::SOCKET_ADDRESS_ADDRESS, self.addr, buf);
        put_uint32(endpoint_field::PORT_VALUE, self.port, buf);
        put_string(endpoint_field::HOSTNAME, self.hostname, buf);
        if let Some(metadata) = &self.metadata {
            encoding::message::encode(endpoint_field::METADATA, metadata, buf);
        }
        if let Some(weight) = self.weight {
            // A `UInt32Value`: its one field, skipped when zero as proto3 does.
            let len = match weight {
                0 => 0,
                w => encoding::uint32::encoded_len(1, &w),
            };
            put_header(endpoint_field::WEIGHT, len, buf);
            if weight != 0 {
                put_uint32(1, weight, buf);
            }
        }
    }
}

/// Encoded length of string field `tag` holding `value` (nothing when empty, as proto3).
fn string_len(tag: u32, value: &str) -> usize {
    match value.len() {
        0 => 0,
        n => nested_len(tag, n),
    }
}

/// Encoded length of a length-delimited field `tag` whose payload is `len` bytes.
fn nested_len(tag: u32, len: usize) -> usize {
    encoding::key_len(tag) + encoding::encoded_len_varint(len as u64) + len
}

/// Writes the key and length of length-delimited field `tag`.
fn put_header(tag: u32, len: usize, buf: &mut Vec<u8>) {
    put_varint(u64::from(tag << 3 | WireType::LengthDelimited as u32), buf);
    put_varint(len as u64, buf);
}

/// Writes `value` as a varint, inline: prost's `encode_varint` goes through `BufMut`
/// byte by byte, several times the cost for the one- and two-byte varints written here.
#[inline]
fn put_varint(mut value: u64, buf: &mut Vec<u8>) {
    while value >= 0x80 {
        buf.push(value as u8 | 0x80);
        value >>= 7;
    }
    buf.push(value as u8);
}

/// Writes the key of varint field `tag`.
fn put_varint_key(tag: u32, buf: &mut Vec<u8>) {
    put_varint(u64::from(tag << 3 | WireType::Varint as u32), buf);
}

/// Writes `int32` field `tag` as prost does (negative values sign-extended to 64 bits).
fn put_int32(tag: u32, value: i32, buf: &mut Vec<u8>) {
    put_varint_key(tag, buf);
    put_varint(i64::from(value) as u64, buf);
}

/// Writes `uint32` field `tag`.
fn put_uint32(tag: u32, value: u32, buf: &mut Vec<u8>) {
    put_varint_key(tag, buf);
    put_varint(u64::from(value), buf);
}

/// Writes `google.protobuf.Duration` field `tag` as prost does (zero fields skipped).
fn put_duration(tag: u32, duration: &ProtoDuration, buf: &mut Vec<u8>) {
    let seconds = duration.seconds as u64;
    let nanos = i64::from(duration.nanos) as u64;
    let field_len = |value: u64| match value {
        0 => 0,
        v => 1 + encoding::encoded_len_varint(v),
    };
    put_header(tag, field_len(seconds) + field_len(nanos), buf);
    if duration.seconds != 0 {
        put_varint_key(1, buf);
        put_varint(duration.seconds as u64, buf);
    }
    if duration.nanos != 0 {
        put_int32(2, duration.nanos, buf);
    }
}

/// Writes string field `tag` unless `value` is empty (proto3 skips defaults).
fn put_string(tag: u32, value: &str, buf: &mut Vec<u8>) {
    if !value.is_empty() {
        put_header(tag, value.len(), buf);
        buf.extend_from_slice(value.as_bytes());
    }
}

fn sni_metadata(sni: &str) -> Metadata {
    Metadata {
        filter_metadata: [(TRANSPORT_SOCKET_MATCH.to_owned(), sni_match(sni))].into(),
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
