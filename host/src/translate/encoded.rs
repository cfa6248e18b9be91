//! Output resources kept protobuf-encoded ([`Encoded`]): a virtual host written straight
//! from its routes' encodings, a cluster, its endpoints (a load assignment). Decoded
//! Envoy messages are large (a `Route` is over 2 KiB, a `Cluster` over 3 KiB, before
//! their strings); their encodings are a few hundred bytes, and the snapshot serves those
//! very bytes.

use std::fmt;
use std::marker::PhantomData;

use bytes::Bytes;
use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use envoy_types::pb::envoy::config::route::v3::VirtualHost;
use prost::Message;

/// An Envoy message served under a name: the name it carries.
pub trait Named: Message + Default {
    /// The name the resource is served under.
    fn resource_name(&self) -> &str;
}

impl Named for VirtualHost {
    fn resource_name(&self) -> &str {
        &self.name
    }
}

impl Named for Cluster {
    fn resource_name(&self) -> &str {
        &self.name
    }
}

impl Named for ClusterLoadAssignment {
    fn resource_name(&self) -> &str {
        &self.cluster_name
    }
}

/// A message `M` kept protobuf-encoded, with its name. [`Encoded::decode`] gives the
/// message where one is needed (printing, tests); the snapshot shares the bytes.
pub struct Encoded<M> {
    name: Box<str>,
    /// The encoded message (without a field tag).
    bytes: Bytes,
    message: PhantomData<fn() -> M>,
}

/// A virtual host kept encoded.
pub type EncodedVirtualHost = Encoded<VirtualHost>;

/// A cluster kept encoded.
pub type EncodedCluster = Encoded<Cluster>;

/// A cluster's endpoints (served over EDS) kept encoded.
pub type EncodedEndpoints = Encoded<ClusterLoadAssignment>;

impl<M: Named> Encoded<M> {
    /// Encodes `message`.
    pub fn encode(message: &M) -> Self {
        Self::from_parts(message.resource_name(), message.encode_to_vec())
    }

    /// The message. Our own encoding of a valid message: decoding cannot fail (a failure
    /// would give the default message).
    pub fn decode(&self) -> M {
        M::decode(&*self.bytes).unwrap_or_default()
    }
}

impl<M> Encoded<M> {
    fn from_parts(name: &str, bytes: Vec<u8>) -> Self {
        Self {
            name: name.into(),
            bytes: Bytes::from(bytes),
            message: PhantomData,
        }
    }

    /// The resource's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The encoded message.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The encoded message, shared (cloning it copies nothing).
    pub fn bytes(&self) -> &Bytes {
        &self.bytes
    }
}

impl<M: Named> From<M> for Encoded<M> {
    fn from(message: M) -> Self {
        Self::encode(&message)
    }
}

impl<M> Clone for Encoded<M> {
    fn clone(&self) -> Self {
        Self {
            name: self.name.clone(),
            bytes: self.bytes.clone(),
            message: PhantomData,
        }
    }
}

/// Equal messages, as decoded: identical bytes, or else the same decoded message, since
/// prost writes a map field (`typed_per_filter_config`, ...) in its `HashMap`'s order,
/// which differs between two maps with the same entries. Equal messages encode to the
/// same length whatever the order, so only equal lengths are decoded.
impl<M: Named + PartialEq> PartialEq for Encoded<M> {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
            && (self.bytes == other.bytes
                || (self.bytes.len() == other.bytes.len() && self.decode() == other.decode()))
    }
}

impl<M> fmt::Debug for Encoded<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Encoded")
            .field("name", &self.name)
            .field("bytes", &self.bytes.len())
            .finish()
    }
}

impl Encoded<VirtualHost> {
    /// The virtual host named `domain` serving `domain` alone, with these encoded routes
    /// in order: exactly what encoding the decoded message would give, since protobuf
    /// lets a repeated field's elements be concatenated.
    pub(crate) fn from_routes<'a>(
        domain: &str,
        routes: impl Iterator<Item = &'a [u8]> + Clone,
    ) -> Self {
        const NAME: u32 = 1;
        const DOMAINS: u32 = 2;
        const ROUTES: u32 = 3;
        // proto3 leaves an empty string out.
        let name_len = match domain.len() {
            0 => 0,
            n => length_delimited_len(NAME, n),
        };
        let len = name_len
            + length_delimited_len(DOMAINS, domain.len())
            + routes
                .clone()
                .map(|r| length_delimited_len(ROUTES, r.len()))
                .sum::<usize>();
        let mut buf = Vec::with_capacity(len);
        if !domain.is_empty() {
            put_length_delimited(NAME, domain.as_bytes(), &mut buf);
        }
        put_length_delimited(DOMAINS, domain.as_bytes(), &mut buf);
        for r in routes {
            put_length_delimited(ROUTES, r, &mut buf);
        }
        Self::from_parts(domain, buf)
    }
}

impl Encoded<Cluster> {
    /// The encoding of a cluster named `name` whose encoding without its name is
    /// `unnamed`: the name field written in front of the rest. This is the message's own
    /// encoding when every field prost writes before the name is empty (a test pins it
    /// for the Service cluster template); a Service cluster differs from the next only
    /// by name, so the template is encoded once, not once per cluster.
    pub(crate) fn with_name(name: &str, unnamed: &[u8]) -> Self {
        const NAME: u32 = 1;
        let mut buf = Vec::with_capacity(length_delimited_len(NAME, name.len()) + unnamed.len());
        if !name.is_empty() {
            put_length_delimited(NAME, name.as_bytes(), &mut buf);
        }
        buf.extend_from_slice(unnamed);
        Self::from_parts(name, buf)
    }
}

impl Encoded<ClusterLoadAssignment> {
    /// The encoding of [`super::cluster::load_assignment`]`(cluster, endpoints)`, written
    /// directly: prost computes each nested message's length again at every level above
    /// it (five here), which made encoding a Service's endpoints cost more than finding
    /// them.
    pub(crate) fn from_endpoints(cluster: &str, endpoints: &[crate::store::Endpoint]) -> Self {
        use prost::encoding::{self, WireType};
        // ClusterLoadAssignment { cluster_name = 1, endpoints = 2 } of one
        // LocalityLbEndpoints { lb_endpoints = 2 } of LbEndpoint { endpoint = 1 } of
        // Endpoint { address = 1 } of Address { socket_address = 1 } of
        // SocketAddress { address = 2, port_value = 3 }.
        const CLUSTER_NAME: u32 = 1;
        const ENDPOINTS: u32 = 2;
        const LB_ENDPOINTS: u32 = 2;
        const ONE: u32 = 1;
        const SOCKET_ADDRESS: u32 = 2;
        const PORT_VALUE: u32 = 3;
        let string_len = |tag: u32, s: &str| match s.len() {
            0 => 0,
            n => length_delimited_len(tag, n),
        };
        // (socket, address, endpoint, lb endpoint) content lengths.
        let lens = |e: &crate::store::Endpoint| {
            let socket = string_len(SOCKET_ADDRESS, &e.address)
                + encoding::key_len(PORT_VALUE)
                + encoding::encoded_len_varint(u64::from(e.port));
            let address = length_delimited_len(ONE, socket);
            let endpoint = length_delimited_len(ONE, address);
            let lb = length_delimited_len(ONE, endpoint);
            (socket, address, endpoint, lb)
        };
        let locality: usize = endpoints
            .iter()
            .map(|e| length_delimited_len(LB_ENDPOINTS, lens(e).3))
            .sum();
        let len = string_len(CLUSTER_NAME, cluster)
            + if endpoints.is_empty() {
                0
            } else {
                length_delimited_len(ENDPOINTS, locality)
            };
        let mut buf = Vec::with_capacity(len);
        if !cluster.is_empty() {
            put_length_delimited(CLUSTER_NAME, cluster.as_bytes(), &mut buf);
        }
        if !endpoints.is_empty() {
            put_header(ENDPOINTS, locality, &mut buf);
            for e in endpoints {
                let (socket, address, endpoint, lb) = lens(e);
                put_header(LB_ENDPOINTS, lb, &mut buf);
                put_header(ONE, endpoint, &mut buf);
                put_header(ONE, address, &mut buf);
                put_header(ONE, socket, &mut buf);
                if !e.address.is_empty() {
                    put_length_delimited(SOCKET_ADDRESS, e.address.as_bytes(), &mut buf);
                }
                // A oneof member is written even when zero.
                put_varint(
                    u64::from(PORT_VALUE << 3 | WireType::Varint as u32),
                    &mut buf,
                );
                put_varint(u64::from(e.port), &mut buf);
            }
        }
        Self::from_parts(cluster, buf)
    }
}

/// The encoded length of a length-delimited field `tag` of `len` bytes.
pub(crate) fn length_delimited_len(tag: u32, len: usize) -> usize {
    prost::encoding::key_len(tag) + prost::encoding::encoded_len_varint(len as u64) + len
}

/// Appends a length-delimited field `tag` holding `bytes`.
pub(crate) fn put_length_delimited(tag: u32, bytes: &[u8], buf: &mut Vec<u8>) {
    put_header(tag, bytes.len(), buf);
    buf.extend_from_slice(bytes);
}

/// Appends the key of length-delimited field `tag` and the length `len`.
pub(crate) fn put_header(tag: u32, len: usize, buf: &mut Vec<u8>) {
    put_varint(u64::from(tag << 3 | 2), buf);
    put_varint(len as u64, buf);
}

/// Appends `v` as a varint: prost's `encode_varint`, with the one-byte case (every key
/// and most lengths here) first.
pub(crate) fn put_varint(v: u64, buf: &mut Vec<u8>) {
    match u8::try_from(v) {
        Ok(b) if b < 0x80 => buf.push(b),
        _ => prost::encoding::encode_varint(v, buf),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use envoy_types::pb::envoy::config::route::v3::Route;

    #[test]
    fn endpoints_written_directly_are_their_encoding() {
        use crate::translate::ResolvedEndpoint;
        use crate::translate::cluster::load_assignment;
        let ep = |address: &str, port: u16| ResolvedEndpoint {
            address: address.to_string(),
            port,
            weight: 0,
            ready: true,
            labels: Vec::new(),
        };
        let sets = [
            vec![],
            vec![ep("10.0.0.1", 8080)],
            vec![ep("10.0.0.1", 8080), ep("10.0.0.2", 0), ep("", 65535)],
            vec![ep("fd00::1", 443); 40],
        ];
        let plain = |eps: &[ResolvedEndpoint]| -> Vec<crate::store::Endpoint> {
            eps.iter()
                .map(|e| crate::store::Endpoint {
                    address: e.address.clone(),
                    port: e.port,
                    ready: e.ready,
                })
                .collect()
        };
        for (cluster, endpoints) in ["kube_a_web_80", ""].iter().zip(sets.iter().cycle()) {
            let direct = EncodedEndpoints::from_endpoints(cluster, &plain(endpoints));
            let via_prost = EncodedEndpoints::encode(&load_assignment(cluster, endpoints));
            assert_eq!(direct.as_bytes(), via_prost.as_bytes(), "{endpoints:?}");
            assert_eq!(direct.name(), *cluster);
        }
        for endpoints in &sets {
            let direct = EncodedEndpoints::from_endpoints("c", &plain(endpoints));
            let via_prost = EncodedEndpoints::encode(&load_assignment("c", endpoints));
            assert_eq!(direct.as_bytes(), via_prost.as_bytes(), "{endpoints:?}");
        }
    }

    #[test]
    fn a_virtual_host_from_encoded_routes_is_its_encoding() {
        let routes: Vec<Route> = (0..3)
            .map(|i| Route {
                name: format!("r{i}"),
                ..Default::default()
            })
            .collect();
        let vhost = VirtualHost {
            name: "example.com".into(),
            domains: vec!["example.com".into()],
            routes: routes.clone(),
            ..Default::default()
        };
        let encoded: Vec<Vec<u8>> = routes.iter().map(|r| r.encode_to_vec()).collect();
        let built = Encoded::from_routes("example.com", encoded.iter().map(Vec::as_slice));
        assert_eq!(built, Encoded::encode(&vhost));
        assert_eq!(built.decode(), vhost);
        assert_eq!(built.name(), "example.com");
    }

    #[test]
    fn equal_messages_are_equal_whatever_order_their_maps_were_written_in() {
        use envoy_types::pb::google::protobuf::Any;
        use std::collections::HashMap;
        const TYPED_PER_FILTER_CONFIG: u32 = 13;
        let entry = |i: u8| {
            let mut buf = Vec::new();
            prost::encoding::hash_map::encode(
                prost::encoding::string::encode,
                prost::encoding::string::encoded_len,
                prost::encoding::message::encode,
                prost::encoding::message::encoded_len,
                TYPED_PER_FILTER_CONFIG,
                &HashMap::from([(
                    format!("f{i}"),
                    Any {
                        type_url: "t".into(),
                        value: vec![i],
                    },
                )]),
                &mut buf,
            );
            buf
        };
        // A virtual host `v` with one route whose map entries come in `order`.
        let vhost = |order: &[u8]| {
            let route: Vec<u8> = order.iter().flat_map(|i| entry(*i)).collect();
            let mut bytes = Vec::new();
            put_length_delimited(1, b"v", &mut bytes);
            put_length_delimited(3, &route, &mut bytes);
            Encoded::<VirtualHost>::from_parts("v", bytes)
        };
        let (a, b) = (vhost(&[0, 1, 2]), vhost(&[2, 0, 1]));
        assert_ne!(a.as_bytes(), b.as_bytes());
        assert_eq!(a, b);
        assert_eq!(a.decode().routes[0].typed_per_filter_config.len(), 3);
        assert_ne!(a, vhost(&[0, 1, 3]), "same length, other content");
        assert_ne!(a, vhost(&[0, 1]));
    }
}
