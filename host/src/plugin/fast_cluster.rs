//! A quick decoder for the plain clusters Upstream plugins usually return: a name, a
//! discovery type, a connect timeout, a DNS lookup family and inline endpoints.
//!
//! prost's generic decoder spends most of its time moving default messages around
//! (`Cluster` alone is 3 KB) rather than reading the few fields such a cluster sets.
//! [`decode`] reads exactly those fields, and only in the canonical form an encoder
//! writes (field numbers ascending, each singular field once, the expected wire type).
//! Anything else — another field, another order, a truncated or invalid value — makes it
//! give up without deciding anything, and the caller decodes with prost. So a message
//! it accepts is one prost accepts, decoded to an equal `Cluster`, and a message prost
//! rejects is never accepted here (the differential tests below check both on mutated
//! encodings).

use envoy_types::pb::envoy::config::cluster::v3::{Cluster, cluster};
use envoy_types::pb::envoy::config::core::v3::{Address, SocketAddress, address, socket_address};
use envoy_types::pb::envoy::config::endpoint::v3::{
    ClusterLoadAssignment, Endpoint, LbEndpoint, LocalityLbEndpoints, lb_endpoint,
};
use envoy_types::pb::google::protobuf::{Duration, UInt32Value};

/// Wire type of a varint field.
const VARINT: u8 = 0;
/// Wire type of a length-delimited field.
const LEN: u8 = 2;

/// Decodes `bytes` into `cluster` (a default one) when they are a plain cluster in
/// canonical form. `false` means "not decided": `cluster` may be partly filled and the
/// caller must start again from a default one with prost.
///
/// Every message is filled in place (`Option::insert`, `Vec::push` then `last_mut`)
/// rather than built and moved into its parent: moving the big messages was as much of
/// prost's cost as reading the fields.
pub(super) fn decode(bytes: &[u8], cluster: &mut Cluster) -> bool {
    decode_cluster(bytes, cluster).is_some()
}

fn decode_cluster(bytes: &[u8], c: &mut Cluster) -> Option<()> {
    let mut r = Reader::new(bytes);
    while let Some((field, wire)) = r.next_key(false)? {
        match (field, wire) {
            (1, LEN) => c.name = r.string()?,
            (2, VARINT) => {
                c.cluster_discovery_type =
                    Some(cluster::ClusterDiscoveryType::Type(r.varint()? as i32));
            }
            (4, LEN) => duration(r.bytes()?, c.connect_timeout.insert(Duration::default()))?,
            (17, VARINT) => c.dns_lookup_family = r.varint()? as i32,
            (33, LEN) => load_assignment(
                r.bytes()?,
                c.load_assignment.insert(ClusterLoadAssignment::default()),
            )?,
            _ => return None,
        }
    }
    Some(())
}

fn duration(bytes: &[u8], d: &mut Duration) -> Option<()> {
    let mut r = Reader::new(bytes);
    while let Some((field, wire)) = r.next_key(false)? {
        match (field, wire) {
            (1, VARINT) => d.seconds = r.varint()? as i64,
            (2, VARINT) => d.nanos = r.varint()? as i32,
            _ => return None,
        }
    }
    Some(())
}

fn load_assignment(bytes: &[u8], cla: &mut ClusterLoadAssignment) -> Option<()> {
    let mut r = Reader::new(bytes);
    // `endpoints` (2) is repeated: it may follow itself.
    while let Some((field, wire)) = r.next_key(true)? {
        match (field, wire) {
            (1, LEN) if r.last_repeats == 0 => cla.cluster_name = r.string()?,
            (2, LEN) => {
                cla.endpoints.push(LocalityLbEndpoints::default());
                locality(r.bytes()?, cla.endpoints.last_mut()?)?;
            }
            _ => return None,
        }
    }
    Some(())
}

fn locality(bytes: &[u8], locality: &mut LocalityLbEndpoints) -> Option<()> {
    let mut r = Reader::new(bytes);
    // `lb_endpoints` (2) is repeated, and the only field read.
    while let Some((field, wire)) = r.next_key(true)? {
        match (field, wire) {
            (2, LEN) => {
                locality.lb_endpoints.push(LbEndpoint::default());
                lb_endpoint(r.bytes()?, locality.lb_endpoints.last_mut()?)?;
            }
            _ => return None,
        }
    }
    Some(())
}

fn lb_endpoint(bytes: &[u8], lb: &mut LbEndpoint) -> Option<()> {
    let mut r = Reader::new(bytes);
    while let Some((field, wire)) = r.next_key(false)? {
        match (field, wire) {
            (1, LEN) => {
                let bytes = r.bytes()?;
                match lb
                    .host_identifier
                    .insert(lb_endpoint::HostIdentifier::Endpoint(Endpoint::default()))
                {
                    lb_endpoint::HostIdentifier::Endpoint(e) => endpoint(bytes, e)?,
                    lb_endpoint::HostIdentifier::EndpointName(_) => return None,
                }
            }
            (4, LEN) => uint32_value(
                r.bytes()?,
                lb.load_balancing_weight.insert(UInt32Value::default()),
            )?,
            _ => return None,
        }
    }
    Some(())
}

fn endpoint(bytes: &[u8], endpoint: &mut Endpoint) -> Option<()> {
    let mut r = Reader::new(bytes);
    while let Some((field, wire)) = r.next_key(false)? {
        match (field, wire) {
            (1, LEN) => socket_address(r.bytes()?, endpoint.address.insert(Address::default()))?,
            (3, LEN) => endpoint.hostname = r.string()?,
            _ => return None,
        }
    }
    Some(())
}

/// An `Address` holding a `SocketAddress` with an address and a port value.
fn socket_address(bytes: &[u8], address: &mut Address) -> Option<()> {
    let mut r = Reader::new(bytes);
    while let Some((field, wire)) = r.next_key(false)? {
        match (field, wire) {
            (1, LEN) => {
                let bytes = r.bytes()?;
                match address
                    .address
                    .insert(address::Address::SocketAddress(SocketAddress::default()))
                {
                    address::Address::SocketAddress(socket) => {
                        socket_address_fields(bytes, socket)?
                    }
                    _ => return None,
                }
            }
            _ => return None,
        }
    }
    Some(())
}

fn socket_address_fields(bytes: &[u8], socket: &mut SocketAddress) -> Option<()> {
    let mut r = Reader::new(bytes);
    while let Some((field, wire)) = r.next_key(false)? {
        match (field, wire) {
            (2, LEN) => socket.address = r.string()?,
            (3, VARINT) => {
                socket.port_specifier =
                    Some(socket_address::PortSpecifier::PortValue(r.varint()? as u32));
            }
            _ => return None,
        }
    }
    Some(())
}

fn uint32_value(bytes: &[u8], value: &mut UInt32Value) -> Option<()> {
    let mut r = Reader::new(bytes);
    while let Some((field, wire)) = r.next_key(false)? {
        match (field, wire) {
            (1, VARINT) => value.value = r.varint()? as u32,
            _ => return None,
        }
    }
    Some(())
}

/// Reads one message's fields in canonical order.
struct Reader<'a> {
    buf: &'a [u8],
    /// The previous field number (0 before the first).
    last: u32,
    /// How many times in a row the previous field number has repeated.
    last_repeats: u32,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Reader {
            buf,
            last: 0,
            last_repeats: 0,
        }
    }

    /// The next field's number and wire type; `Some(None)` at the end; `None` when the
    /// key is malformed or out of order. With `repeats`, a field may follow itself (the
    /// caller only lets repeated fields do so).
    #[inline(always)]
    fn next_key(&mut self, repeats: bool) -> Option<Option<(u32, u8)>> {
        if self.buf.is_empty() {
            return Some(None);
        }
        let key = self.varint()?;
        let field = u32::try_from(key >> 3).ok()?;
        let wire = (key & 7) as u8;
        if field == self.last && repeats {
            self.last_repeats += 1;
        } else if field > self.last {
            self.last = field;
            self.last_repeats = 0;
        } else {
            return None;
        }
        Some(Some((field, wire)))
    }

    /// A varint: one byte inline (every key and most values here), longer ones by prost.
    /// Forced inline: a cluster has ~40 varints, and as a call each cost more than
    /// reading it.
    #[inline(always)]
    fn varint(&mut self) -> Option<u64> {
        match self.buf {
            [byte @ 0..0x80, rest @ ..] => {
                self.buf = rest;
                Some(u64::from(*byte))
            }
            _ => self.long_varint(),
        }
    }

    #[inline(never)]
    fn long_varint(&mut self) -> Option<u64> {
        prost::encoding::decode_varint(&mut self.buf).ok()
    }

    fn bytes(&mut self) -> Option<&'a [u8]> {
        let len = usize::try_from(self.varint()?).ok()?;
        if len > self.buf.len() {
            return None;
        }
        let (bytes, rest) = self.buf.split_at(len);
        self.buf = rest;
        Some(bytes)
    }

    fn string(&mut self) -> Option<String> {
        let bytes = self.bytes()?;
        // Names and addresses are ASCII: checking that word by word is several times
        // quicker than `from_utf8` on such short strings, which it falls back to.
        if is_ascii(bytes) {
            // SAFETY: ASCII is valid UTF-8.
            return Some(unsafe { std::str::from_utf8_unchecked(bytes) }.to_owned());
        }
        std::str::from_utf8(bytes).ok().map(str::to_owned)
    }
}

/// Whether every byte of `bytes` is ASCII, eight at a time.
#[inline]
fn is_ascii(bytes: &[u8]) -> bool {
    const TOPS: u64 = u64::from_le_bytes([0x80; 8]);
    let mut chunks = bytes.chunks_exact(8);
    let mut seen = 0;
    for chunk in &mut chunks {
        seen |= u64::from_le_bytes(chunk.try_into().unwrap_or_default());
    }
    let mut tail = [0; 8];
    tail[..chunks.remainder().len()].copy_from_slice(chunks.remainder());
    (seen | u64::from_le_bytes(tail)) & TOPS == 0
}

#[cfg(test)]
mod tests {
    use envoy_types::pb::envoy::config::core::v3::TransportSocket;
    use prost::Message;

    use super::*;

    /// Clusters shaped like the `static` plugin's, and a few it never writes.
    fn samples() -> Vec<Cluster> {
        let lb = |addr: &str, port: u32, hostname: &str, weight: Option<u32>| LbEndpoint {
            host_identifier: Some(lb_endpoint::HostIdentifier::Endpoint(Endpoint {
                address: Some(Address {
                    address: Some(address::Address::SocketAddress(SocketAddress {
                        address: addr.into(),
                        port_specifier: Some(socket_address::PortSpecifier::PortValue(port)),
                        ..Default::default()
                    })),
                }),
                hostname: hostname.into(),
                ..Default::default()
            })),
            load_balancing_weight: weight.map(|value| UInt32Value { value }),
            ..Default::default()
        };
        let plain = Cluster {
            name: "upstream_shop_payments".into(),
            cluster_discovery_type: Some(cluster::ClusterDiscoveryType::Type(
                cluster::DiscoveryType::Static as i32,
            )),
            connect_timeout: Some(Duration {
                seconds: 5,
                nanos: 0,
            }),
            load_assignment: Some(ClusterLoadAssignment {
                cluster_name: "upstream_shop_payments".into(),
                endpoints: vec![LocalityLbEndpoints {
                    lb_endpoints: vec![
                        lb("10.0.0.1", 8080, "", None),
                        lb("10.0.0.2", 8080, "", Some(2)),
                    ],
                    ..Default::default()
                }],
                ..Default::default()
            }),
            ..Default::default()
        };
        let dns = Cluster {
            cluster_discovery_type: Some(cluster::ClusterDiscoveryType::Type(
                cluster::DiscoveryType::StrictDns as i32,
            )),
            dns_lookup_family: cluster::DnsLookupFamily::V4Preferred as i32,
            connect_timeout: Some(Duration {
                seconds: 1,
                nanos: 500_000_000,
            }),
            load_assignment: Some(ClusterLoadAssignment {
                cluster_name: "c".into(),
                endpoints: vec![
                    LocalityLbEndpoints {
                        lb_endpoints: vec![lb("example.com", 443, "example.com", Some(0))],
                        ..Default::default()
                    },
                    LocalityLbEndpoints::default(),
                ],
                ..Default::default()
            }),
            name: "ünïcode".into(),
            ..Default::default()
        };
        let tls = Cluster {
            transport_socket: Some(TransportSocket {
                name: "envoy.transport_sockets.tls".into(),
                config_type: None,
            }),
            ..plain.clone()
        };
        let mut priority = plain.clone();
        priority.load_assignment.as_mut().unwrap().endpoints[0].priority = 1;
        vec![plain, dns, tls, priority, Cluster::default()]
    }

    /// What the host does: the quick decoder, else prost.
    fn decode_either(bytes: &[u8]) -> Result<Cluster, prost::DecodeError> {
        let mut cluster = Cluster::default();
        if decode(bytes, &mut cluster) {
            return Ok(cluster);
        }
        Cluster::decode(bytes)
    }

    #[test]
    fn decodes_plain_clusters_like_prost() {
        let samples = samples();
        for (i, sample) in samples.iter().enumerate() {
            let bytes = sample.encode_to_vec();
            let mut quick = Cluster::default();
            let decided = decode(&bytes, &mut quick);
            // The TLS and priority samples have fields the quick decoder does not read.
            assert_eq!(decided, i != 2 && i != 3, "sample {i}");
            if decided {
                assert_eq!(&quick, sample, "sample {i}");
            }
            assert_eq!(decode_either(&bytes).as_ref(), Ok(sample), "sample {i}");
        }
    }

    #[test]
    fn gives_up_on_repeated_singular_fields_and_disorder() {
        let bytes = samples()[0].encode_to_vec();
        // The name twice: prost keeps the last one; the quick decoder leaves it to prost.
        let mut twice = bytes.clone();
        twice.extend_from_slice(&[0x0a, 1, b'x']);
        assert!(!decode(&twice, &mut Cluster::default()));
        assert_eq!(decode_either(&twice).unwrap().name, "x");
        // A field before the name.
        let mut disorder = vec![0x10, 1];
        disorder.extend_from_slice(&bytes);
        assert!(!decode(&disorder, &mut Cluster::default()));
        assert_eq!(decode_either(&disorder), Cluster::decode(&disorder[..]));
    }

    /// A small deterministic generator (xorshift), so failures reproduce.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    /// Flips, overwrites, inserts, deletes and truncates bytes of the samples'
    /// encodings: whatever the quick decoder accepts, prost accepts as the same
    /// cluster, and whatever prost rejects, the host rejects.
    #[test]
    fn agrees_with_prost_on_mutated_encodings() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let encodings: Vec<Vec<u8>> = samples().iter().map(Message::encode_to_vec).collect();
        let mut accepted = 0;
        for round in 0..200_000 {
            let mut bytes = encodings[round % encodings.len()].clone();
            for _ in 0..=rng.below(3) {
                let len = bytes.len().max(1);
                match rng.below(6) {
                    0 if !bytes.is_empty() => {
                        let i = rng.below(len);
                        bytes[i] ^= 1 << rng.below(8);
                    }
                    1 if !bytes.is_empty() => {
                        let i = rng.below(len);
                        bytes[i] = rng.next() as u8;
                    }
                    2 => {
                        let i = rng.below(len + 1).min(bytes.len());
                        bytes.insert(i, rng.next() as u8);
                    }
                    3 if !bytes.is_empty() => {
                        bytes.remove(rng.below(len));
                    }
                    4 => bytes.truncate(rng.below(len + 1)),
                    _ => {
                        // A small field key with a short value, somewhere.
                        let i = rng.below(len + 1).min(bytes.len());
                        let key = (rng.below(40) << 3 | rng.below(6)) as u8;
                        bytes.splice(i..i, [key, rng.below(4) as u8, rng.next() as u8]);
                    }
                }
            }
            let prost = Cluster::decode(&bytes[..]);
            let mut quick = Cluster::default();
            if decode(&bytes, &mut quick) {
                accepted += 1;
                assert_eq!(prost.as_ref(), Ok(&quick), "bytes {bytes:?}");
            }
            assert_eq!(
                decode_either(&bytes).is_ok(),
                prost.is_ok(),
                "bytes {bytes:?}"
            );
        }
        // The mutations must leave some messages the quick decoder reads, or the test
        // would not test it.
        assert!(
            accepted > 1_000,
            "only {accepted} mutated messages decoded quickly"
        );
    }
}
