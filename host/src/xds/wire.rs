//! ADS responses as they go on the wire: a gRPC-framed `DiscoveryResponse` or
//! `DeltaDiscoveryResponse` whose resources are the snapshot's encoded bytes, shared by
//! reference count with every other stream rather than copied into each response.
//!
//! A response becomes a list of chunks ([`Framed`]): the stream's own fields (nonce,
//! versions, names) are written into a small buffer, and each large resource body is a
//! clone of the snapshot's [`Bytes`], which h2 writes to the socket without copying. The
//! bytes are exactly what prost would encode for the same message (the tests compare
//! them), so a proxy cannot tell the difference.

use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};
use prost::encoding::{WireType, encode_key, encode_varint, encoded_len_varint, key_len};

use crate::xds::Resource;

/// Resource bodies at least this long go out as their own shared chunk; shorter ones are
/// copied into the response's buffer. Every chunk is an HTTP/2 DATA frame queued on the
/// connection, and h2 keeps the queue's slots for the connection's life: a response of
/// 250 small route configurations as 500 chunks left ~100 KiB per proxy behind.
const SHARE_FROM: usize = 16 * 1024;

/// One response's bytes, gRPC-framed (the 5-byte message prefix included), in order.
pub(crate) type Framed = Vec<Bytes>;

/// A response the stream driver can put on the wire.
pub(crate) trait Frame {
    /// The gRPC-framed message.
    fn frame(&self) -> Framed;
}

/// A `DeltaDiscoveryResponse` whose resources are shared snapshot resources.
#[derive(Debug)]
pub(crate) struct DeltaResponse {
    pub system_version_info: String,
    pub resources: Vec<Arc<Resource>>,
    /// `resources` already encoded (by [`delta_entries`]), shared with other streams.
    pub shared: Option<Framed>,
    pub type_url: &'static str,
    pub removed_resources: Vec<String>,
    pub nonce: String,
}

/// A `DiscoveryResponse` (state of the world) whose resources are shared snapshot
/// resources.
#[derive(Debug)]
pub(crate) struct SotwResponse {
    pub version_info: String,
    pub resources: Vec<Arc<Resource>>,
    /// `resources` already encoded (by [`sotw_entries`]), shared with other streams.
    pub shared: Option<Framed>,
    pub type_url: &'static str,
    pub nonce: String,
}

// Field numbers, from envoy/service/discovery/v3/discovery.proto and google/protobuf/any.proto.
// Fields are written in the order prost writes them (by field number).
const ANY_TYPE_URL: u32 = 1;
const ANY_VALUE: u32 = 2;
const DELTA_RESOURCE_NAME: u32 = 3;
const DELTA_RESOURCE_VERSION: u32 = 1;
const DELTA_RESOURCE_BODY: u32 = 2;
const DELTA_SYSTEM_VERSION_INFO: u32 = 1;
const DELTA_RESOURCES: u32 = 2;
const DELTA_TYPE_URL: u32 = 4;
const DELTA_REMOVED_RESOURCES: u32 = 6;
const DELTA_NONCE: u32 = 5;
const SOTW_VERSION_INFO: u32 = 1;
const SOTW_RESOURCES: u32 = 2;
const SOTW_TYPE_URL: u32 = 4;
const SOTW_NONCE: u32 = 5;

/// The length of a length-delimited field of `len` bytes.
fn delimited_len(tag: u32, len: usize) -> usize {
    key_len(tag) + encoded_len_varint(len as u64) + len
}

/// The length of a proto3 string or bytes field (omitted when empty).
fn scalar_len(tag: u32, len: usize) -> usize {
    if len == 0 { 0 } else { delimited_len(tag, len) }
}

/// The length of a resource encoded as a `google.protobuf.Any`.
fn any_len(r: &Resource) -> usize {
    scalar_len(ANY_TYPE_URL, r.type_url().len()) + scalar_len(ANY_VALUE, r.value().len())
}

/// The length of a resource encoded as a delta `Resource`.
fn delta_resource_len(r: &Resource) -> usize {
    scalar_len(DELTA_RESOURCE_NAME, r.name.len())
        + scalar_len(DELTA_RESOURCE_VERSION, r.version.len())
        + delimited_len(DELTA_RESOURCE_BODY, any_len(r))
}

/// Writes one message as chunks: small pieces into a buffer, large bodies shared.
struct Writer {
    chunks: Framed,
    buf: BytesMut,
    /// Bodies at least this long are shared chunks rather than copied.
    share_from: usize,
}

impl Writer {
    /// A writer for a message of `len` bytes, its gRPC prefix written.
    fn new(len: usize) -> Self {
        let mut w = Self::bare(len.min(SHARE_FROM * 2) + 5);
        w.buf.put_u8(0); // not compressed
        w.buf.put_u32(u32::try_from(len).unwrap_or(u32::MAX));
        w
    }

    /// A writer of part of a message, its buffer sized for `capacity` bytes.
    fn bare(capacity: usize) -> Self {
        Self {
            chunks: Vec::new(),
            buf: BytesMut::with_capacity(capacity),
            share_from: SHARE_FROM,
        }
    }

    /// A writer copying everything into one buffer of `len` bytes: one chunk.
    fn contiguous(len: usize) -> Self {
        Self {
            share_from: usize::MAX,
            ..Self::bare(len)
        }
    }

    /// One resource as a `DeltaDiscoveryResponse.resources` element.
    fn delta_entry(&mut self, r: &Resource) {
        self.header(DELTA_RESOURCES, delta_resource_len(r));
        self.string(DELTA_RESOURCE_VERSION, &r.version);
        self.any(DELTA_RESOURCE_BODY, r);
        self.string(DELTA_RESOURCE_NAME, &r.name);
    }

    /// Chunks written elsewhere, as they are.
    fn chunks(&mut self, chunks: &Framed) {
        self.flush();
        self.chunks.extend(chunks.iter().cloned());
    }

    fn header(&mut self, tag: u32, len: usize) {
        encode_key(tag, WireType::LengthDelimited, &mut self.buf);
        encode_varint(len as u64, &mut self.buf);
    }

    /// A proto3 string field (omitted when empty).
    fn string(&mut self, tag: u32, s: &str) {
        if !s.is_empty() {
            self.header(tag, s.len());
            self.buf.put_slice(s.as_bytes());
        }
    }

    /// A repeated string element (written even when empty).
    fn element(&mut self, tag: u32, s: &str) {
        self.header(tag, s.len());
        self.buf.put_slice(s.as_bytes());
    }

    /// A proto3 bytes field (omitted when empty), shared when large.
    fn bytes(&mut self, tag: u32, bytes: &Bytes) {
        if bytes.is_empty() {
            return;
        }
        self.header(tag, bytes.len());
        if bytes.len() < self.share_from {
            self.buf.put_slice(bytes);
        } else {
            self.flush();
            self.chunks.push(bytes.clone());
        }
    }

    /// A resource as a `google.protobuf.Any` message field.
    fn any(&mut self, tag: u32, r: &Resource) {
        self.header(tag, any_len(r));
        self.string(ANY_TYPE_URL, r.type_url());
        self.bytes(ANY_VALUE, r.value());
    }

    fn flush(&mut self) {
        if !self.buf.is_empty() {
            self.chunks.push(self.buf.split().freeze());
        }
    }

    fn finish(mut self) -> Framed {
        self.flush();
        self.chunks
    }
}

/// How one kind of response writes its resources: the length of one element and the
/// writing of it.
struct Elements {
    len: fn(&Resource) -> usize,
    write: fn(&mut Writer, &Resource),
}

const DELTA_ELEMENTS: Elements = Elements {
    len: |r| delimited_len(DELTA_RESOURCES, delta_resource_len(r)),
    write: Writer::delta_entry,
};

const SOTW_ELEMENTS: Elements = Elements {
    len: |r| delimited_len(SOTW_RESOURCES, any_len(r)),
    write: |w, r| w.any(SOTW_RESOURCES, r),
};

impl Elements {
    /// The length of `resources` as elements, or of their shared encoding.
    fn len(&self, resources: &[Arc<Resource>], shared: Option<&Framed>) -> usize {
        match shared {
            Some(chunks) => chunks.iter().map(Bytes::len).sum(),
            None => resources.iter().map(|r| (self.len)(r)).sum(),
        }
    }

    /// Writes `resources` as elements, or their shared encoding.
    fn write(&self, w: &mut Writer, resources: &[Arc<Resource>], shared: Option<&Framed>) {
        match shared {
            Some(chunks) => w.chunks(chunks),
            None => resources.iter().for_each(|r| (self.write)(w, r)),
        }
    }

    /// `resources` as elements on their own, for responses to share: one chunk (copied
    /// once, for every stream), so a response of them is a few DATA frames, not one per
    /// resource.
    fn encode(&self, resources: &[Arc<Resource>]) -> Framed {
        let mut w = Writer::contiguous(self.len(resources, None));
        self.write(&mut w, resources, None);
        w.finish()
    }
}

/// Every one of `resources` as a `DeltaDiscoveryResponse.resources` element, in order:
/// the part of a response that is the same for every stream sending those resources,
/// in one buffer.
pub(crate) fn delta_entries(resources: &[Arc<Resource>]) -> Framed {
    DELTA_ELEMENTS.encode(resources)
}

/// Every one of `resources` as a `DiscoveryResponse.resources` element, in order (see
/// [`delta_entries`]).
pub(crate) fn sotw_entries(resources: &[Arc<Resource>]) -> Framed {
    SOTW_ELEMENTS.encode(resources)
}

impl Frame for DeltaResponse {
    fn frame(&self) -> Framed {
        let len = scalar_len(DELTA_SYSTEM_VERSION_INFO, self.system_version_info.len())
            + DELTA_ELEMENTS.len(&self.resources, self.shared.as_ref())
            + scalar_len(DELTA_TYPE_URL, self.type_url.len())
            + self
                .removed_resources
                .iter()
                .map(|n| delimited_len(DELTA_REMOVED_RESOURCES, n.len()))
                .sum::<usize>()
            + scalar_len(DELTA_NONCE, self.nonce.len());
        let mut w = Writer::new(len);
        w.string(DELTA_SYSTEM_VERSION_INFO, &self.system_version_info);
        DELTA_ELEMENTS.write(&mut w, &self.resources, self.shared.as_ref());
        w.string(DELTA_TYPE_URL, self.type_url);
        w.string(DELTA_NONCE, &self.nonce);
        for name in &self.removed_resources {
            w.element(DELTA_REMOVED_RESOURCES, name);
        }
        w.finish()
    }
}

impl Frame for SotwResponse {
    fn frame(&self) -> Framed {
        let len = scalar_len(SOTW_VERSION_INFO, self.version_info.len())
            + SOTW_ELEMENTS.len(&self.resources, self.shared.as_ref())
            + scalar_len(SOTW_TYPE_URL, self.type_url.len())
            + scalar_len(SOTW_NONCE, self.nonce.len());
        let mut w = Writer::new(len);
        w.string(SOTW_VERSION_INFO, &self.version_info);
        SOTW_ELEMENTS.write(&mut w, &self.resources, self.shared.as_ref());
        w.string(SOTW_TYPE_URL, self.type_url);
        w.string(SOTW_NONCE, &self.nonce);
        w.finish()
    }
}

#[cfg(test)]
impl DeltaResponse {
    /// The same response as the generated message (what the wire bytes decode to).
    pub fn to_proto(
        &self,
    ) -> envoy_types::pb::envoy::service::discovery::v3::DeltaDiscoveryResponse {
        use envoy_types::pb::envoy::service::discovery::v3::{
            DeltaDiscoveryResponse, Resource as DeltaResource,
        };
        DeltaDiscoveryResponse {
            system_version_info: self.system_version_info.clone(),
            resources: self
                .resources
                .iter()
                .map(|r| DeltaResource {
                    name: r.name.clone(),
                    version: r.version.clone(),
                    resource: Some(r.body()),
                    ..Default::default()
                })
                .collect(),
            type_url: self.type_url.to_string(),
            removed_resources: self.removed_resources.clone(),
            nonce: self.nonce.clone(),
            ..Default::default()
        }
    }
}

#[cfg(test)]
impl SotwResponse {
    /// The same response as the generated message (what the wire bytes decode to).
    pub fn to_proto(&self) -> envoy_types::pb::envoy::service::discovery::v3::DiscoveryResponse {
        envoy_types::pb::envoy::service::discovery::v3::DiscoveryResponse {
            version_info: self.version_info.clone(),
            resources: self.resources.iter().map(|r| r.body()).collect(),
            type_url: self.type_url.to_string(),
            nonce: self.nonce.clone(),
            ..Default::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xds::ResourceType;
    use prost::Message;

    /// The message bytes of a framed response, checked against its gRPC prefix.
    fn unframe(framed: &Framed) -> Vec<u8> {
        let all: Vec<u8> = framed.iter().flat_map(|c| c.iter().copied()).collect();
        assert_eq!(all[0], 0, "not compressed");
        let len = u32::from_be_bytes(all[1..5].try_into().unwrap()) as usize;
        assert_eq!(len, all.len() - 5, "the prefix gives the message length");
        all[5..].to_vec()
    }

    fn resource(name: &str, ty: ResourceType, len: usize) -> Arc<Resource> {
        let value: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
        Arc::new(Resource::new(name.into(), ty.type_url(), value))
    }

    fn resources() -> Vec<Arc<Resource>> {
        vec![
            resource("small", ResourceType::Route, 10),
            resource("empty", ResourceType::Route, 0),
            resource("large", ResourceType::Route, 300_000),
            resource("", ResourceType::Route, SHARE_FROM),
        ]
    }

    #[test]
    fn a_delta_response_is_the_bytes_prost_encodes() {
        for (resources, removed, version) in [
            (resources(), vec!["gone".to_string(), String::new()], "v1"),
            (Vec::new(), vec!["gone".to_string()], ""),
            (Vec::new(), Vec::new(), "v2"),
        ] {
            let mut response = DeltaResponse {
                system_version_info: version.into(),
                resources,
                shared: None,
                type_url: ResourceType::Route.type_url(),
                removed_resources: removed,
                nonce: "17".into(),
            };
            let wire = unframe(&response.frame());
            assert_eq!(wire, response.to_proto().encode_to_vec());
            response.shared = Some(delta_entries(&response.resources));
            assert_eq!(
                unframe(&response.frame()),
                wire,
                "the shared encoding of the resources is the same bytes"
            );
            let decoded =
                envoy_types::pb::envoy::service::discovery::v3::DeltaDiscoveryResponse::decode(
                    wire.as_slice(),
                )
                .unwrap();
            assert_eq!(decoded, response.to_proto());
        }
    }

    #[test]
    fn a_sotw_response_is_the_bytes_prost_encodes() {
        for resources in [resources(), Vec::new()] {
            let mut response = SotwResponse {
                version_info: "abc".into(),
                resources,
                shared: None,
                type_url: ResourceType::Route.type_url(),
                nonce: "3".into(),
            };
            let wire = unframe(&response.frame());
            assert_eq!(wire, response.to_proto().encode_to_vec());
            response.shared = Some(sotw_entries(&response.resources));
            assert_eq!(
                unframe(&response.frame()),
                wire,
                "the shared encoding of the resources is the same bytes"
            );
            let decoded =
                envoy_types::pb::envoy::service::discovery::v3::DiscoveryResponse::decode(
                    wire.as_slice(),
                )
                .unwrap();
            assert_eq!(decoded, response.to_proto());
        }
    }

    #[test]
    fn large_bodies_are_shared_not_copied() {
        let large = resource("large", ResourceType::Route, 300_000);
        let response = DeltaResponse {
            system_version_info: "v".into(),
            resources: vec![large.clone()],
            shared: None,
            type_url: ResourceType::Route.type_url(),
            removed_resources: Vec::new(),
            nonce: "1".into(),
        };
        let framed = response.frame();
        assert!(
            framed
                .iter()
                .any(|c| c.as_ptr() == large.value().as_ptr() && c.len() == large.value().len()),
            "the resource body is the snapshot's own bytes"
        );
    }

    #[test]
    fn responses_with_shared_entries_reference_one_copy_of_them() {
        let resources: Vec<_> = (0..100)
            .map(|i| resource(&format!("c{i:03}"), ResourceType::Cluster, 40))
            .collect();
        let shared = delta_entries(&resources);
        let response = |nonce: &str| DeltaResponse {
            system_version_info: "v".into(),
            resources: resources.clone(),
            shared: Some(shared.clone()),
            type_url: ResourceType::Cluster.type_url(),
            removed_resources: Vec::new(),
            nonce: nonce.into(),
        };
        let (a, b) = (response("1").frame(), response("2").frame());
        assert_ne!(unframe(&a), unframe(&b), "each has its own nonce");
        assert_eq!(shared.len(), 1, "the entries are one chunk");
        assert!(
            a.len() <= 3,
            "a response is its fields, the entries, its nonce"
        );
        let entries = &shared[0];
        for framed in [&a, &b] {
            assert!(
                framed
                    .iter()
                    .any(|c| c.as_ptr() == entries.as_ptr() && c.len() == entries.len()),
                "the entries are the shared bytes, not a copy"
            );
        }
    }
}
