//! Per-Gateway snapshots and the cache that publishes them.
//!
//! A [`Snapshot`] is everything one Gateway's proxies are served: for each
//! [`ResourceType`] the encoded resources by name, each versioned by a content hash of
//! its bytes, plus a version per type and one for the whole snapshot. It is built once
//! from the translator's [`GatewayResources`] and then shared, behind an `Arc`, by every
//! stream of that Gateway.
//!
//! The [`SnapshotCache`] holds the latest snapshot per Gateway in one
//! `tokio::sync::watch` channel each. Publishing is a `send_replace`: it wakes the
//! Gateway's streams and returns; each stream then diffs the new snapshot against what
//! its own proxy has, in its own task. No lock is held while any stream is answered, so a
//! slow or stuck proxy cannot delay publishing or other proxies (go-control-plane's
//! `SetSnapshot` answers every open watch under the cache lock, which is where its
//! known latency trap and deadlocks come from).
//!
//! Gateway lifecycle:
//!
//! - a Gateway that was never published is *unknown*: its streams stay open and are
//!   sent nothing (the server logs an error) until it is published;
//! - a Gateway that disappears from a [`SnapshotCache::publish_all`] (or is
//!   [`SnapshotCache::remove`]d) gets an **empty** snapshot, so its proxies drain every
//!   listener and cluster instead of serving stale configuration forever. Its entry is
//!   forgotten once no proxy is connected to it.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use bytes::Bytes;
use envoy_types::pb::google::protobuf::Any;
use prost::Message;
use sha2::{Digest, Sha256};
use tokio::sync::watch;

use crate::model::ObjectKey;
use crate::translate::GatewayResources;
use crate::xds::wire::{self, Framed};

// === ResourceType ===

/// The resource types Weir serves, in make-before-break order: clusters before the
/// endpoints that fill them, both before the listeners and routes that use them, and
/// secrets (requested by listeners) last.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ResourceType {
    /// `envoy.config.cluster.v3.Cluster` (CDS).
    Cluster,
    /// `envoy.config.endpoint.v3.ClusterLoadAssignment` (EDS).
    Endpoint,
    /// `envoy.config.listener.v3.Listener` (LDS).
    Listener,
    /// `envoy.config.route.v3.ScopedRouteConfiguration` (SRDS): which route
    /// configuration serves a host.
    ScopedRoute,
    /// `envoy.config.route.v3.RouteConfiguration` (RDS).
    Route,
    /// `envoy.extensions.transport_sockets.tls.v3.Secret` (SDS).
    Secret,
}

impl ResourceType {
    /// Every type, in the order updates are sent.
    pub const ALL: [ResourceType; 6] = [
        Self::Cluster,
        Self::Endpoint,
        Self::Listener,
        Self::ScopedRoute,
        Self::Route,
        Self::Secret,
    ];

    /// The type URL Envoy uses for this type.
    pub const fn type_url(self) -> &'static str {
        match self {
            Self::Cluster => "type.googleapis.com/envoy.config.cluster.v3.Cluster",
            Self::Endpoint => "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment",
            Self::Listener => "type.googleapis.com/envoy.config.listener.v3.Listener",
            Self::ScopedRoute => {
                "type.googleapis.com/envoy.config.route.v3.ScopedRouteConfiguration"
            }
            Self::Route => "type.googleapis.com/envoy.config.route.v3.RouteConfiguration",
            Self::Secret => "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret",
        }
    }

    /// The type with this type URL, if we serve it.
    pub fn from_type_url(type_url: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.type_url() == type_url)
    }

    /// A short name for logs and metrics (`cds`, `eds`, `lds`, `srds`, `rds`, `sds`).
    pub const fn short_name(self) -> &'static str {
        match self {
            Self::Cluster => "cds",
            Self::Endpoint => "eds",
            Self::Listener => "lds",
            Self::ScopedRoute => "srds",
            Self::Route => "rds",
            Self::Secret => "sds",
        }
    }

    /// The index of this type in [`ResourceType::ALL`].
    pub(crate) const fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for ResourceType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.short_name())
    }
}

// === Resource ===

/// One encoded resource of a snapshot. Its bytes are shared (by reference count) with
/// every response that carries it.
#[derive(Clone, Debug, PartialEq)]
pub struct Resource {
    /// The resource's name (a cluster's `name`, a load assignment's `cluster_name`, …).
    pub name: String,
    /// A content hash of the encoded bytes: equal versions mean identical resources.
    pub version: String,
    /// The type URL of the encoded message.
    type_url: String,
    /// The encoded message.
    value: Bytes,
    /// The translated message this was encoded from, to recognise it next time.
    origin: Origin,
}

impl Resource {
    /// A resource of type `type_url` from its encoded bytes, versioned by their hash.
    pub fn new(name: String, type_url: &str, value: Vec<u8>) -> Self {
        Self::encode(name, type_url, value, Origin::default())
    }

    fn encode(name: String, type_url: &str, value: impl Into<Bytes>, origin: Origin) -> Self {
        let value = value.into();
        Self {
            name,
            version: hash_hex(&[&value]),
            type_url: type_url.to_string(),
            value,
            origin,
        }
    }

    /// The type URL of the encoded message.
    pub fn type_url(&self) -> &str {
        &self.type_url
    }

    /// The encoded message (shared: cloning it copies nothing).
    pub fn value(&self) -> &Bytes {
        &self.value
    }

    /// The resource as Envoy receives it, as a `google.protobuf.Any` (a copy).
    pub fn body(&self) -> Any {
        Any {
            type_url: self.type_url.clone(),
            value: self.value.to_vec(),
        }
    }
}

/// The shared message a [`Resource`] was encoded from (kept alive, so its address cannot
/// be reused by another message while we remember it): for a route table, its virtual
/// host when it has just one, else none. It takes no part in equality.
#[derive(Clone, Default)]
struct Origin(Option<Arc<dyn std::any::Any + Send + Sync>>);

impl Origin {
    fn of<M: Send + Sync + 'static>(m: &Arc<M>) -> Self {
        Self(Some(m.clone()))
    }

    /// Whether this is the very same message as `m`.
    fn is<M>(&self, m: &Arc<M>) -> bool {
        self.0
            .as_ref()
            .is_some_and(|o| std::ptr::addr_eq(Arc::as_ptr(o), Arc::as_ptr(m)))
    }
}

impl fmt::Debug for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Origin")
    }
}

impl PartialEq for Origin {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

/// The resources of one type in a snapshot, by name.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TypeResources {
    version: String,
    /// In name order, one per name: a list, not a map, so building one costs no key
    /// copies and no node per resource (it is rebuilt for every publish).
    resources: Vec<Arc<Resource>>,
    /// Every resource as delta response elements, encoded once when a stream first
    /// sends them all (see [`TypeResources::delta_entries`]).
    delta_entries: EncodedOnce,
    /// The same as state-of-the-world response elements.
    sotw_entries: EncodedOnce,
}

/// A lazily encoded form of a [`TypeResources`]; equal whatever it holds, since it only
/// ever holds what the resources determine.
#[derive(Clone, Debug, Default)]
struct EncodedOnce(OnceLock<Framed>);

impl PartialEq for EncodedOnce {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl TypeResources {
    /// From resources in any order; of two with one name, the later wins.
    fn new(mut resources: Vec<Arc<Resource>>) -> Self {
        if !resources.is_sorted_by(|a, b| a.name < b.name) {
            resources.sort_by(|a, b| a.name.cmp(&b.name));
            let mut unique: Vec<Arc<Resource>> = Vec::with_capacity(resources.len());
            for r in resources {
                match unique.last_mut() {
                    Some(last) if last.name == r.name => *last = r,
                    _ => unique.push(r),
                }
            }
            resources = unique;
        }
        Self {
            version: list_version(resources.iter().map(|r| (&*r.name, &*r.version))),
            resources,
            delta_entries: EncodedOnce::default(),
            sotw_entries: EncodedOnce::default(),
        }
    }

    /// Whether `resources` are exactly these, in order (by identity).
    pub(crate) fn is_all(&self, resources: &[Arc<Resource>]) -> bool {
        resources.len() == self.resources.len()
            && resources
                .iter()
                .zip(&self.resources)
                .all(|(a, b)| Arc::ptr_eq(a, b))
    }

    /// Every resource as `DeltaDiscoveryResponse.resources` elements, encoded by the first
    /// stream that asks and shared by all: a thousand proxies' first responses are then
    /// one copy of the resources, not a thousand.
    pub(crate) fn delta_entries(&self) -> Framed {
        self.delta_entries
            .0
            .get_or_init(|| wire::delta_entries(&self.resources))
            .clone()
    }

    /// Every resource as `DiscoveryResponse.resources` elements, shared the same way.
    pub(crate) fn sotw_entries(&self) -> Framed {
        self.sotw_entries
            .0
            .get_or_init(|| wire::sotw_entries(&self.resources))
            .clone()
    }

    /// A content hash over every resource's name and version.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// The resource with this name.
    pub fn get(&self, name: &str) -> Option<&Arc<Resource>> {
        self.position(name).map(|i| &self.resources[i])
    }

    /// Where the resource with this name is in the list.
    fn position(&self, name: &str) -> Option<usize> {
        self.resources
            .binary_search_by(|r| r.name.as_str().cmp(name))
            .ok()
    }

    /// The resources in name order.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<Resource>> {
        self.resources.iter()
    }

    /// How many resources there are.
    pub fn len(&self) -> usize {
        self.resources.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.resources.is_empty()
    }
}

/// Looks up names in a [`TypeResources`] in ascending order (as the translator lists
/// them), each from where the previous one was found: a step or two, not a search,
/// when the list is much the same as the names asked. Any order is still answered.
struct Cursor<'a> {
    resources: Option<&'a TypeResources>,
    at: usize,
}

impl<'a> Cursor<'a> {
    fn new(resources: Option<&'a TypeResources>) -> Self {
        Self { resources, at: 0 }
    }

    /// The resource named `name`, if the list has it.
    fn find(&mut self, name: &str) -> Option<&'a Arc<Resource>> {
        let resources = self.resources?;
        let list = &resources.resources[..];
        let ahead = list.get(self.at..).unwrap_or(&[]);
        let i = match ahead.iter().take(4).position(|r| r.name.as_str() >= name) {
            Some(step) if ahead[step].name == name => self.at + step,
            Some(step) if self.at == 0 || list[self.at - 1].name.as_str() < name => {
                // Between two neighbours: not in the list.
                self.at += step;
                return None;
            }
            // Further on, or behind (asked out of order): search.
            _ => resources.position(name)?,
        };
        self.at = i + 1;
        Some(&list[i])
    }
}

// === Snapshot ===

/// Everything one Gateway's proxies are served, versioned by content.
#[derive(Clone, Debug, PartialEq)]
pub struct Snapshot {
    version: String,
    types: [TypeResources; 6],
}

impl Default for Snapshot {
    fn default() -> Self {
        Self::empty()
    }
}

impl Snapshot {
    /// A snapshot with no resources: proxies served it drain everything.
    pub fn empty() -> Self {
        Self::from_types(Default::default())
    }

    /// Encodes a Gateway's translated resources. Resources are keyed by name; should two
    /// share a name (the translator never emits that), the last wins.
    pub fn from_resources(resources: &GatewayResources) -> Self {
        Self::from_resources_reusing(resources, None)
    }

    /// Like [`Snapshot::from_resources`], but a resource that is the very same `Arc` as
    /// one `previous` was built from is reused without encoding or hashing it again: after
    /// a one-route change most of a Gateway's resources are.
    pub fn from_resources_reusing(
        resources: &GatewayResources,
        previous: Option<&Snapshot>,
    ) -> Self {
        fn collect<M: Send + Sync + 'static>(
            ty: ResourceType,
            previous: Option<&Snapshot>,
            items: &[Arc<M>],
            name: impl Fn(&M) -> &str,
            encode: impl Fn(&M) -> Bytes,
        ) -> TypeResources {
            let mut previous = Cursor::new(previous.map(|p| p.resources(ty)));
            TypeResources::new(
                items
                    .iter()
                    .map(|m| {
                        let name = name(m);
                        let reused = previous.find(name).filter(|r| r.origin.is(m));
                        match reused {
                            Some(r) => r.clone(),
                            None => Arc::new(Resource::encode(
                                name.to_string(),
                                ty.type_url(),
                                encode(m),
                                Origin::of(m),
                            )),
                        }
                    })
                    .collect(),
            )
        }
        // A route table is written from its virtual hosts' own encodings. A table of one
        // virtual host (a scoped route's) is reused while it is the very same one.
        let mut previous_routes = Cursor::new(previous.map(|p| p.resources(ResourceType::Route)));
        let routes = resources
            .routes
            .iter()
            .map(|t| {
                let only = match t.virtual_hosts.as_slice() {
                    [v] => Some(v),
                    _ => None,
                };
                if let Some(v) = only
                    && let Some(r) = previous_routes.find(&t.name).filter(|r| r.origin.is(v))
                {
                    return r.clone();
                }
                Arc::new(Resource::encode(
                    t.name.clone(),
                    ResourceType::Route.type_url(),
                    t.encode_to_vec(),
                    only.map(Origin::of).unwrap_or_default(),
                ))
            })
            .collect();
        // Clusters and endpoints are kept encoded by the translator: their bytes are shared.
        Self::from_types([
            collect(
                ResourceType::Cluster,
                previous,
                &resources.clusters,
                |c| c.name(),
                |c| c.bytes().clone(),
            ),
            collect(
                ResourceType::Endpoint,
                previous,
                &resources.endpoints,
                |e| e.name(),
                |e| e.bytes().clone(),
            ),
            collect(
                ResourceType::Listener,
                previous,
                &resources.listeners,
                |l| &l.name,
                |l| Bytes::from(l.encode_to_vec()),
            ),
            collect(
                ResourceType::ScopedRoute,
                previous,
                &resources.scoped_routes,
                |s| &s.name,
                |s| Bytes::from(s.encode_to_vec()),
            ),
            TypeResources::new(routes),
            collect(
                ResourceType::Secret,
                previous,
                &resources.secrets,
                |s| &s.name,
                |s| Bytes::from(s.encode_to_vec()),
            ),
        ])
    }

    fn from_types(types: [TypeResources; 6]) -> Self {
        let mut hasher = Sha256::new();
        for t in &types {
            hasher.update(t.version.as_bytes());
            hasher.update([0]);
        }
        Self {
            version: hex16(&hasher.finalize()),
            types,
        }
    }

    /// A content hash of the whole snapshot.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// The resources of one type.
    pub fn resources(&self, ty: ResourceType) -> &TypeResources {
        &self.types[ty.index()]
    }

    /// Whether the snapshot holds no resource at all.
    pub fn is_empty(&self) -> bool {
        self.types.iter().all(TypeResources::is_empty)
    }
}

/// The version of a list of `(name, version)` pairs (SotW responses, type versions).
pub(crate) fn list_version<'a>(items: impl Iterator<Item = (&'a str, &'a str)>) -> String {
    let mut hasher = Sha256::new();
    for (name, version) in items {
        hasher.update(name.as_bytes());
        hasher.update([0]);
        hasher.update(version.as_bytes());
        hasher.update([0]);
    }
    hex16(&hasher.finalize())
}

fn hash_hex(parts: &[&[u8]]) -> String {
    let mut hasher = Sha256::new();
    for p in parts {
        hasher.update(p);
    }
    hex16(&hasher.finalize())
}

/// The first 64 bits of a digest in hex: short in logs, ample against collisions among
/// the versions of one resource.
fn hex16(digest: &[u8]) -> String {
    digest[..8].iter().map(|b| format!("{b:02x}")).collect()
}

// === SnapshotCache ===

/// What a Gateway's channel carries: `None` while the Gateway is unknown.
pub type SnapshotSlot = Option<Arc<Snapshot>>;

/// The latest snapshot of every Gateway, one watch channel each. Cheap to clone; all
/// clones share the same state.
#[derive(Clone, Default)]
pub struct SnapshotCache {
    // The lock only guards the map of channels: it is held to find or create a channel
    // and to `send_replace` on it (which wakes receivers but never runs them), never
    // across an await and never while a stream builds a response.
    gateways: Arc<Mutex<HashMap<ObjectKey, watch::Sender<SnapshotSlot>>>>,
}

impl fmt::Debug for SnapshotCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SnapshotCache")
            .field("gateways", &self.gateways().len())
            .finish()
    }
}

impl SnapshotCache {
    /// An empty cache: every Gateway is unknown.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<ObjectKey, watch::Sender<SnapshotSlot>>> {
        // A panic elsewhere while holding this lock cannot leave the map inconsistent
        // (every update is a single insert or send), so poisoning is ignored.
        self.gateways.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Publishes one Gateway's snapshot. Streams wake only if its version changed.
    /// Returns whether it did.
    pub fn publish(&self, gateway: ObjectKey, snapshot: Snapshot) -> bool {
        let snapshot = Arc::new(snapshot);
        let mut map = self.lock();
        match map.get(&gateway) {
            Some(tx) => tx.send_if_modified(|slot| replace_if_new(slot, snapshot)),
            None => {
                map.insert(gateway, watch::Sender::new(Some(snapshot)));
                true
            }
        }
    }

    /// Publishes a whole translation: each Gateway's snapshot, and an empty snapshot for
    /// every previously published Gateway that is no longer present. Encoding happens
    /// before the lock is taken. Returns how many Gateways' snapshots changed.
    pub fn publish_all(&self, gateways: &BTreeMap<ObjectKey, GatewayResources>) -> usize {
        let snapshots: Vec<(ObjectKey, Arc<Snapshot>)> = gateways
            .iter()
            .map(|(key, res)| {
                let previous = self.get(key);
                let snapshot = Snapshot::from_resources_reusing(res, previous.as_deref());
                (key.clone(), Arc::new(snapshot))
            })
            .collect();
        let empty = Arc::new(Snapshot::empty());
        let mut changed = 0;
        let mut map = self.lock();
        map.retain(|key, tx| {
            if gateways.contains_key(key) {
                return true;
            }
            if tx.receiver_count() == 0 {
                // Nobody is connected: forget it (it is unknown again).
                return false;
            }
            if tx.borrow().is_some()
                && tx.send_if_modified(|slot| replace_if_new(slot, empty.clone()))
            {
                changed += 1;
            }
            true
        });
        for (key, snapshot) in snapshots {
            let modified = match map.get(&key) {
                Some(tx) => tx.send_if_modified(|slot| replace_if_new(slot, snapshot)),
                None => {
                    map.insert(key, watch::Sender::new(Some(snapshot)));
                    true
                }
            };
            changed += usize::from(modified);
        }
        changed
    }

    /// Replaces a Gateway's snapshot by an empty one, so its proxies drain.
    pub fn remove(&self, gateway: &ObjectKey) {
        let map = self.lock();
        if let Some(tx) = map.get(gateway) {
            let empty = Arc::new(Snapshot::empty());
            tx.send_if_modified(|slot| slot.is_some() && replace_if_new(slot, empty));
        }
    }

    /// The latest snapshot of a Gateway, if it is known.
    pub fn get(&self, gateway: &ObjectKey) -> Option<Arc<Snapshot>> {
        self.lock().get(gateway).and_then(|tx| tx.borrow().clone())
    }

    /// The Gateways that have a snapshot (possibly empty), sorted.
    pub fn gateways(&self) -> Vec<ObjectKey> {
        let mut keys: Vec<ObjectKey> = self
            .lock()
            .iter()
            .filter(|(_, tx)| tx.borrow().is_some())
            .map(|(k, _)| k.clone())
            .collect();
        keys.sort();
        keys
    }

    /// A receiver of a Gateway's snapshots; the Gateway need not be known yet (its
    /// value is then `None` until it is published).
    pub fn subscribe(&self, gateway: &ObjectKey) -> watch::Receiver<SnapshotSlot> {
        let mut map = self.lock();
        match map.get(gateway) {
            Some(tx) => tx.subscribe(),
            None => {
                let (tx, rx) = watch::channel(None);
                map.insert(gateway.clone(), tx);
                rx
            }
        }
    }
}

fn replace_if_new(slot: &mut SnapshotSlot, snapshot: Arc<Snapshot>) -> bool {
    if slot.as_ref().is_some_and(|s| s.version == snapshot.version) {
        return false;
    }
    *slot = Some(snapshot);
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Kind;
    use crate::translate::EncodedCluster;
    use envoy_types::pb::envoy::config::cluster::v3::Cluster;
    use prost::Name;

    #[test]
    fn type_resources_are_in_name_order_and_the_later_of_two_names_wins() {
        let r = |name: &str, body: u8| Arc::new(Resource::new(name.into(), "t", vec![body]));
        let list = TypeResources::new(vec![r("b", 1), r("a", 1), r("b", 2), r("c", 1)]);
        let names: Vec<&str> = list.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["a", "b", "c"]);
        assert_eq!(list.get("b").map(|r| r.value().to_vec()), Some(vec![2]));
        assert!(list.get("d").is_none());
    }

    #[test]
    fn a_cursor_finds_what_a_search_finds_whatever_the_order_asked() {
        let list = TypeResources::new(
            (0..200)
                .filter(|i| i % 3 != 0)
                .map(|i| Arc::new(Resource::new(format!("n{i:03}"), "t", Vec::new())))
                .collect(),
        );
        // Ascending with gaps, runs, repeats, jumps back and names past the end.
        let mut state = 7u32;
        let mut asks: Vec<u32> = (0..210).collect();
        for _ in 0..400 {
            state = state.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            asks.push((state >> 8) % 215);
        }
        let mut cursor = Cursor::new(Some(&list));
        for i in asks {
            let name = format!("n{i:03}");
            assert_eq!(
                cursor.find(&name).map(|r| r.name.as_str()),
                list.get(&name).map(|r| r.name.as_str()),
                "{name}"
            );
        }
        assert!(Cursor::new(None).find("n001").is_none());
    }

    fn mk_gateway(name: impl ToString) -> ObjectKey {
        ObjectKey::namespaced(Kind::Gateway, "default", name.to_string())
    }

    fn mk_resources(clusters: &[&str]) -> GatewayResources {
        GatewayResources {
            clusters: clusters
                .iter()
                .map(|n| {
                    Arc::new(EncodedCluster::from(Cluster {
                        name: n.to_string(),
                        ..Default::default()
                    }))
                })
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn type_urls_match_the_protos() {
        use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
        use envoy_types::pb::envoy::config::listener::v3::Listener;
        use envoy_types::pb::envoy::config::route::v3::RouteConfiguration;
        use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::Secret;
        assert_eq!(ResourceType::Cluster.type_url(), Cluster::type_url());
        assert_eq!(
            ResourceType::Endpoint.type_url(),
            ClusterLoadAssignment::type_url()
        );
        assert_eq!(ResourceType::Listener.type_url(), Listener::type_url());
        assert_eq!(
            ResourceType::Route.type_url(),
            RouteConfiguration::type_url()
        );
        assert_eq!(ResourceType::Secret.type_url(), Secret::type_url());
    }

    #[test]
    fn versions_are_content_hashes() {
        let a = Snapshot::from_resources(&mk_resources(&["a", "b"]));
        let b = Snapshot::from_resources(&mk_resources(&["a", "b"]));
        let c = Snapshot::from_resources(&mk_resources(&["a", "c"]));
        assert_eq!(a, b);
        assert_ne!(a.version(), c.version());
        let ca = a.resources(ResourceType::Cluster);
        let cc = c.resources(ResourceType::Cluster);
        assert_eq!(ca.get("a").unwrap().version, cc.get("a").unwrap().version);
        assert_ne!(ca.version(), cc.version());
        assert_eq!(
            a.resources(ResourceType::Listener).version(),
            c.resources(ResourceType::Listener).version()
        );
    }

    #[test]
    fn shared_resources_are_not_encoded_again() {
        let first = mk_resources(&["a", "b"]);
        let one = Snapshot::from_resources(&first);
        // `a` is the same Arc; `b` is a new message with new content.
        let mut second = first.clone();
        second.clusters[1] = Arc::new(EncodedCluster::from(Cluster {
            name: "b".into(),
            alt_stat_name: "changed".into(),
            ..Default::default()
        }));
        let two = Snapshot::from_resources_reusing(&second, Some(&one));
        let (c1, c2) = (
            one.resources(ResourceType::Cluster),
            two.resources(ResourceType::Cluster),
        );
        assert!(Arc::ptr_eq(c1.get("a").unwrap(), c2.get("a").unwrap()));
        assert!(!Arc::ptr_eq(c1.get("b").unwrap(), c2.get("b").unwrap()));
        assert_ne!(c1.get("b").unwrap().version, c2.get("b").unwrap().version);
        // Reusing gives exactly what encoding afresh gives.
        assert_eq!(two, Snapshot::from_resources(&second));
    }

    #[test]
    fn route_tables_encode_as_route_configurations() {
        use crate::translate::{EncodedVirtualHost, RouteTable};
        use envoy_types::pb::envoy::config::route::v3::{RouteConfiguration, VirtualHost};
        let vh = |n: &str| {
            Arc::new(EncodedVirtualHost::from(VirtualHost {
                name: n.into(),
                domains: vec![n.into()],
                ..Default::default()
            }))
        };
        let table = RouteTable::new("route_80", vec![vh("a.example"), vh("b.example")]);
        let decoded = RouteConfiguration::decode(table.encode_to_vec().as_slice()).unwrap();
        assert_eq!(decoded, table.to_proto());
        assert_eq!(decoded.virtual_hosts[1].name, "b.example");
        assert!(decoded.ignore_port_in_host_matching);
    }

    #[test]
    fn a_route_table_reencoded_after_a_change_matches_a_fresh_encoding() {
        use crate::translate::{EncodedVirtualHost, GatewayResources, RouteTable};
        use envoy_types::pb::envoy::config::route::v3::{RouteConfiguration, VirtualHost};
        let vh = |n: &str, domain: &str| {
            Arc::new(EncodedVirtualHost::from(VirtualHost {
                name: n.into(),
                domains: vec![domain.into()],
                ..Default::default()
            }))
        };
        let (a, b, c) = (
            vh("a", "a.example"),
            vh("b", "b.example"),
            vh("c", "c.example"),
        );
        let with = |hosts: Vec<Arc<EncodedVirtualHost>>| GatewayResources {
            routes: vec![RouteTable::new("route_80", hosts)],
            ..Default::default()
        };
        let first = Snapshot::from_resources_reusing(&with(vec![a.clone(), b.clone()]), None);
        // `b` changed (a new Arc with a longer domain), `c` is new, `a` is reused.
        let changed = vec![a, vh("b", "b-is-longer-now.example"), c];
        let second = Snapshot::from_resources_reusing(&with(changed.clone()), Some(&first));
        let served = second
            .resources(ResourceType::Route)
            .get("route_80")
            .unwrap();
        let decoded = RouteConfiguration::decode(served.value().as_ref()).unwrap();
        assert_eq!(
            decoded,
            RouteTable::new("route_80", changed.clone()).to_proto()
        );
        assert_eq!(second, Snapshot::from_resources(&with(changed)));
    }

    #[test]
    fn scoped_route_tables_of_the_same_virtual_host_are_reused_and_changed_ones_encoded() {
        use crate::translate::{EncodedVirtualHost, GatewayResources, RouteTable};
        use envoy_types::pb::envoy::config::route::v3::VirtualHost;
        let vh = |domain: &str| {
            Arc::new(EncodedVirtualHost::from(VirtualHost {
                name: domain.into(),
                domains: vec![domain.into()],
                ..Default::default()
            }))
        };
        let with = |hosts: &[&Arc<EncodedVirtualHost>]| GatewayResources {
            routes: hosts
                .iter()
                .map(|v| RouteTable::new(format!("route_80/{}", v.name()), vec![(*v).clone()]))
                .collect(),
            ..Default::default()
        };
        let (a, b) = (vh("a.example"), vh("b.example"));
        let first = Snapshot::from_resources_reusing(&with(&[&a, &b]), None);
        // `b` rebuilt with other content, under the same table name.
        let b2 = Arc::new(EncodedVirtualHost::from(VirtualHost {
            name: "b.example".into(),
            domains: vec!["b.example".into(), "other".into()],
            ..Default::default()
        }));
        let second = Snapshot::from_resources_reusing(&with(&[&a, &b2]), Some(&first));
        let (r1, r2) = (
            first.resources(ResourceType::Route),
            second.resources(ResourceType::Route),
        );
        let same = |name: &str| Arc::ptr_eq(r1.get(name).unwrap(), r2.get(name).unwrap());
        assert!(same("route_80/a.example"));
        assert!(!same("route_80/b.example"));
        assert_eq!(second, Snapshot::from_resources(&with(&[&a, &b2])));
    }

    #[test]
    fn publishing_the_same_content_does_not_wake_streams() {
        let cache = SnapshotCache::new();
        let mut rx = cache.subscribe(&mk_gateway("gw"));
        assert!(rx.borrow_and_update().is_none());
        assert!(cache.publish(
            mk_gateway("gw"),
            Snapshot::from_resources(&mk_resources(&["a"]))
        ));
        assert!(rx.has_changed().unwrap());
        rx.borrow_and_update();
        assert!(!cache.publish(
            mk_gateway("gw"),
            Snapshot::from_resources(&mk_resources(&["a"]))
        ));
        assert!(!rx.has_changed().unwrap());
    }

    #[test]
    fn gateways_missing_from_publish_all_get_an_empty_snapshot() {
        let cache = SnapshotCache::new();
        let one: BTreeMap<_, _> = [
            (mk_gateway("kept"), mk_resources(&["a"])),
            (mk_gateway("gone"), mk_resources(&["b"])),
            (mk_gateway("unwatched"), mk_resources(&["c"])),
        ]
        .into();
        assert_eq!(cache.publish_all(&one), 3);
        let rx = cache.subscribe(&mk_gateway("gone"));
        let two: BTreeMap<_, _> = [(mk_gateway("kept"), mk_resources(&["a"]))].into();
        assert_eq!(cache.publish_all(&two), 1, "only `gone` changed");
        assert!(rx.borrow().as_ref().unwrap().is_empty());
        assert!(!cache.get(&mk_gateway("kept")).unwrap().is_empty());
        // Nobody watched it, so it is forgotten.
        assert_eq!(cache.get(&mk_gateway("unwatched")), None);
        assert_eq!(
            cache.gateways(),
            vec![mk_gateway("gone"), mk_gateway("kept")]
        );
    }
}
