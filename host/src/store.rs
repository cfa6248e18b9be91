//! The store: the typed inputs of translation, keyed by [`ObjectKey`].
//!
//! Sources (kube watchers, the file source) change the store with Kubernetes verbs —
//! [`Store::apply`], [`Store::delete`] and [`Store::reset`] (a relist) — or hand it their
//! [`SourceEvent`]s through [`Store::handle`]. The translator reads it through per-kind
//! accessors ([`Store::gateways`], [`Store::service`], [`Store::service_endpoints`], …).
//! Everything iterates in key order (kind, namespace, name), so translation sees the same
//! inputs in the same order whatever order they arrived in.
//!
//! Each object carries a [`ContentHash`] computed on apply, which the translator uses to
//! memoise per-object work. The store is plain data: no async, no locks; whoever shares it
//! wraps it.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::hash::{Hash, Hasher};
use std::ops::Bound;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use sha2::{Digest, Sha256};

use crate::model::gateway_api::{
    EndpointSlice, Gateway, GatewayClass, HttpRoute, Namespace, ReferenceGrant, SERVICE_NAME_LABEL,
    Service,
};
use crate::model::{
    DirectResponse, HttpListenerOption, Kind, ListenerOption, Object, ObjectKey, RouteOption,
    SecretObject, Upstream, VirtualHostOption,
};
use crate::source::SourceEvent;

mod endpoints;

pub use endpoints::{Endpoint, ServiceEndpoints};

// === ContentHash ===

/// A stable digest of an object's content, for memoising per-object work.
///
/// It is the first 128 bits of the SHA-256 of the object's canonical JSON: the object
/// serialised with serde, every map's keys sorted (so the order keys arrived in never
/// matters), no whitespace. We leave out what changes without changing meaning:
/// `status` (we compute status, never read it), `metadata.resourceVersion` and
/// `metadata.managedFields` (bumped by the API server, including by our own status
/// writes). `metadata.generation` stays in, because conditions report it. The digest is the
/// same across runs, machines and builds as long as the types serialise the same way.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ContentHash(u128);

impl ContentHash {
    /// The hash of an object's content.
    pub fn of(object: &Object) -> Self {
        match object.to_json_unredacted() {
            Ok(mut value) => {
                if let Some(map) = value.as_object_mut() {
                    map.remove("status");
                    if let Some(meta) = map.get_mut("metadata").and_then(|m| m.as_object_mut()) {
                        meta.remove("resourceVersion");
                        meta.remove("managedFields");
                    }
                }
                Self::of_value(&value)
            }
            // Our types always serialise; should one ever fail, hash its key and the error so
            // the object is still translated (just never memoised against another).
            Err(e) => Self::of_bytes(format!("{}\0{e}", object.key()).as_bytes()),
        }
    }

    /// The hash of a JSON value in canonical form.
    pub fn of_value(value: &serde_json::Value) -> Self {
        let mut hasher = Sha256::new();
        write_canonical(value, &mut hasher);
        Self::from_digest(hasher)
    }

    fn of_bytes(bytes: &[u8]) -> Self {
        let mut hasher = Sha256::new();
        hasher.update(bytes);
        Self::from_digest(hasher)
    }

    fn from_digest(hasher: Sha256) -> Self {
        let digest = hasher.finalize();
        let mut first = [0u8; 16];
        first.copy_from_slice(&digest[..16]);
        Self(u128::from_be_bytes(first))
    }
}

impl fmt::Display for ContentHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

impl fmt::Debug for ContentHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ContentHash({self})")
    }
}

/// Writes `value` as compact JSON with object keys sorted. We sort here rather than trust
/// `serde_json::Map`'s order, which follows insertion if any crate in the build enables
/// serde_json's `preserve_order`.
fn write_canonical(value: &serde_json::Value, out: &mut Sha256) {
    use serde_json::Value;
    match value {
        Value::Object(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
            out.update(b"{");
            for (i, (k, v)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.update(b",");
                }
                write_string(k, out);
                out.update(b":");
                write_canonical(v, out);
            }
            out.update(b"}");
        }
        Value::Array(items) => {
            out.update(b"[");
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.update(b",");
                }
                write_canonical(v, out);
            }
            out.update(b"]");
        }
        Value::String(s) => write_string(s, out),
        // Scalars print the same way every time.
        other => out.update(other.to_string().as_bytes()),
    }
}

fn write_string(s: &str, out: &mut Sha256) {
    // serde_json's escaping is deterministic; serialising a &str cannot fail.
    out.update(serde_json::to_string(s).unwrap_or_default().as_bytes());
}

// === Store ===

/// What [`Store::apply`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Applied {
    /// The key was new.
    Created,
    /// The key existed with different content.
    Updated,
    /// The key existed with the same content (the object is still replaced).
    Unchanged,
}

#[derive(Clone, Debug)]
struct Entry {
    object: Object,
    hash: ContentHash,
}

/// A hash map with a fast, seeded hasher, for the store's indexes.
type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// The typed inputs of translation. See the module docs.
#[derive(Clone, Debug, Default)]
pub struct Store {
    objects: BTreeMap<ObjectKey, Entry>,
    /// The same entries hashed, for lookups by key (a search of `objects` compares a key
    /// per level, and lookups were a fifth of a full translation). Kept in step by
    /// `insert`, `remove` and `reset`.
    by_key: FastMap<ObjectKey, Entry>,
    /// EndpointSlices (a copy of their entries, by name) by the namespace and then the
    /// Service name in their `kubernetes.io/service-name` label, so a Service's slices
    /// are one lookup by `&str` (no allocation, no search of `objects` per slice). Kept
    /// in step by `insert` and `remove`.
    /// Hashed: only ever searched, never walked in order.
    slices_by_service: FastMap<String, FastMap<String, ServiceSlices>>,
    /// Per kind, the [`Revision`] of the last content change (create, update, delete) to
    /// an object of that kind; absent for kinds never changed. Bumped by `apply`, `delete`
    /// and `reset`.
    kind_revisions: BTreeMap<Kind, Revision>,
}

/// Identifies one content change to a store. Revisions come from one process-wide
/// counter, so two stores (or clones of one) that report the same revision for a kind
/// hold the same objects of that kind: both descend from the state right after that
/// change and neither changed the kind since. The translator uses this to skip checking
/// the dependencies of memoised work on kinds that did not change between two passes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Revision(u64);

impl Revision {
    fn next() -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        Self(NEXT.fetch_add(1, Ordering::Relaxed))
    }
}

impl Store {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds or replaces one object.
    pub fn apply(&mut self, object: Object) -> Applied {
        let hash = ContentHash::of(&object);
        let key = object.key();
        let applied = match self.remove(&key) {
            None => Applied::Created,
            Some(old) if old.hash == hash => Applied::Unchanged,
            Some(_) => Applied::Updated,
        };
        if applied != Applied::Unchanged {
            self.touch(key.kind);
        }
        self.insert(key, Entry { object, hash });
        applied
    }

    /// Removes one object, returning it if it was there.
    pub fn delete(&mut self, key: &ObjectKey) -> Option<Object> {
        let removed = self.remove(key).map(|e| e.object);
        if removed.is_some() {
            self.touch(key.kind);
        }
        removed
    }

    /// The revision of the last content change to an object of `kind` (the default
    /// revision if there was none). See [`Revision`].
    pub fn kind_revision(&self, kind: Kind) -> Revision {
        self.kind_revisions.get(&kind).copied().unwrap_or_default()
    }

    fn touch(&mut self, kind: Kind) {
        self.kind_revisions.insert(kind, Revision::next());
    }

    /// Replaces everything with `objects` (a relist) and returns the keys that were present
    /// before but are not now, in key order. If two objects share a key, the later wins.
    pub fn reset(&mut self, objects: Vec<Object>) -> Vec<ObjectKey> {
        self.reset_inner(objects).0
    }

    /// Applies one source event and returns the keys whose content changed (created,
    /// updated or removed), in key order.
    pub fn handle(&mut self, event: SourceEvent) -> Vec<ObjectKey> {
        match event {
            SourceEvent::Apply(object) => {
                let key = object.key();
                match self.apply(object) {
                    Applied::Unchanged => Vec::new(),
                    Applied::Created | Applied::Updated => vec![key],
                }
            }
            SourceEvent::Delete(key) => match self.delete(&key) {
                Some(_) => vec![key],
                None => Vec::new(),
            },
            SourceEvent::Reset(objects) => {
                let (removed, mut changed) = self.reset_inner(objects);
                changed.extend(removed);
                changed.sort();
                changed
            }
        }
    }

    /// Returns (removed keys, created or updated keys), each in key order.
    fn reset_inner(&mut self, objects: Vec<Object>) -> (Vec<ObjectKey>, Vec<ObjectKey>) {
        let old = std::mem::take(&mut self.objects);
        self.by_key.clear();
        self.slices_by_service.clear();
        for object in objects {
            let hash = ContentHash::of(&object);
            let key = object.key();
            // A duplicate within the relist replaces the earlier one (and its index entry).
            self.remove(&key);
            self.insert(key, Entry { object, hash });
        }
        let changed: Vec<ObjectKey> = self
            .objects
            .iter()
            .filter(|(k, e)| old.get(*k).map(|o| o.hash) != Some(e.hash))
            .map(|(k, _)| k.clone())
            .collect();
        let removed: Vec<ObjectKey> = old
            .into_keys()
            .filter(|k| !self.by_key.contains_key(k))
            .collect();
        let kinds: BTreeSet<Kind> = changed.iter().chain(&removed).map(|k| k.kind).collect();
        for kind in kinds {
            self.touch(kind);
        }
        (removed, changed)
    }

    fn insert(&mut self, key: ObjectKey, entry: Entry) {
        if let Some((ns, svc)) = slice_service(&entry.object) {
            self.slices_by_service
                .entry(ns)
                .or_default()
                .entry(svc)
                .or_insert_with(ServiceSlices::new)
                .insert(&key.name, entry.clone());
        }
        self.by_key.insert(key.clone(), entry.clone());
        self.objects.insert(key, entry);
    }

    fn remove(&mut self, key: &ObjectKey) -> Option<Entry> {
        self.by_key.remove(key);
        let entry = self.objects.remove(key)?;
        if let Some((ns, svc)) = slice_service(&entry.object)
            && let Some(services) = self.slices_by_service.get_mut(&ns)
            && let Some(names) = services.get_mut(&svc)
        {
            names.remove(&key.name);
            if names.slices.is_empty() {
                services.remove(&svc);
                if services.is_empty() {
                    self.slices_by_service.remove(&ns);
                }
            }
        }
        Some(entry)
    }

    // --- generic reads ---

    /// The object under `key`.
    pub fn get(&self, key: &ObjectKey) -> Option<&Object> {
        self.by_key.get(key).map(|e| &e.object)
    }

    /// The content hash of the object under `key`.
    pub fn hash(&self, key: &ObjectKey) -> Option<ContentHash> {
        self.by_key.get(key).map(|e| e.hash)
    }

    /// How many objects the store holds.
    pub fn len(&self) -> usize {
        self.objects.len()
    }

    /// Whether the store is empty.
    pub fn is_empty(&self) -> bool {
        self.objects.is_empty()
    }

    /// Every object with its key and hash, in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&ObjectKey, &Object, ContentHash)> + '_ {
        self.objects.iter().map(|(k, e)| (k, &e.object, e.hash))
    }

    /// Every object of one kind, in key order.
    pub fn of_kind(&self, kind: Kind) -> impl Iterator<Item = &Object> + '_ {
        self.of_kind_hashed(kind).map(|(_, o, _)| o)
    }

    /// Every object of one kind with its key and hash, in key order.
    pub fn of_kind_hashed(
        &self,
        kind: Kind,
    ) -> impl Iterator<Item = (&ObjectKey, &Object, ContentHash)> + '_ {
        let start = ObjectKey {
            kind,
            namespace: None,
            name: String::new(),
        };
        self.objects
            .range(start..)
            .take_while(move |(k, _)| k.kind == kind)
            .map(|(k, e)| (k, &e.object, e.hash))
    }

    /// Every object of one kind in one namespace, in name order.
    pub fn of_kind_in<'a, 'n>(
        &'a self,
        kind: Kind,
        namespace: &'n str,
    ) -> impl Iterator<Item = &'a Object> + use<'a, 'n> {
        self.of_kind_in_hashed(kind, namespace).map(|(_, o, _)| o)
    }

    /// Every object of one kind in one namespace with its key and hash, in name order.
    pub fn of_kind_in_hashed<'a, 'n>(
        &'a self,
        kind: Kind,
        namespace: &'n str,
    ) -> impl Iterator<Item = (&'a ObjectKey, &'a Object, ContentHash)> + use<'a, 'n> {
        let start = ObjectKey::namespaced(kind, namespace, "");
        self.objects
            .range((Bound::Included(start), Bound::Unbounded))
            .take_while(move |(k, _)| k.kind == kind && k.namespace.as_deref() == Some(namespace))
            .map(|(k, e)| (k, &e.object, e.hash))
    }

    /// The object `kind` `namespace/name`, found without building an [`ObjectKey`].
    fn lookup(&self, kind: Kind, namespace: Option<&str>, name: &str) -> Option<&Object> {
        self.lookup_hashed(kind, namespace, name).map(|(o, _)| o)
    }

    /// The object `kind` `namespace/name` with its content hash, found in one search
    /// without building an [`ObjectKey`].
    pub fn lookup_hashed(
        &self,
        kind: Kind,
        namespace: Option<&str>,
        name: &str,
    ) -> Option<(&Object, ContentHash)> {
        let key: &dyn KeyView = &(kind, namespace, name);
        self.by_key.get(key).map(|e| (&e.object, e.hash))
    }
}

/// An object key's parts, borrowed: lets the store's maps be searched by `&str`s (a
/// lookup per reference, per route, per pass) without allocating an [`ObjectKey`].
trait KeyView {
    /// Kind, namespace and name, in [`ObjectKey`]'s order.
    fn parts(&self) -> (Kind, Option<&str>, &str);
}

impl KeyView for ObjectKey {
    fn parts(&self) -> (Kind, Option<&str>, &str) {
        (self.kind, self.namespace.as_deref(), &self.name)
    }
}

impl KeyView for (Kind, Option<&str>, &str) {
    fn parts(&self) -> (Kind, Option<&str>, &str) {
        *self
    }
}

impl<'a> std::borrow::Borrow<dyn KeyView + 'a> for ObjectKey {
    fn borrow(&self) -> &(dyn KeyView + 'a) {
        self
    }
}

impl PartialEq for dyn KeyView + '_ {
    fn eq(&self, other: &Self) -> bool {
        self.parts() == other.parts()
    }
}

impl Eq for dyn KeyView + '_ {}

/// The same hash as [`ObjectKey`]'s derived one (kind, namespace, name in turn), as
/// `Borrow` requires: `Option<&str>` and `&str` hash as `Option<String>` and `String` do.
impl Hash for dyn KeyView + '_ {
    fn hash<H: Hasher>(&self, state: &mut H) {
        let (kind, namespace, name) = self.parts();
        kind.hash(state);
        namespace.hash(state);
        name.hash(state);
    }
}

impl PartialOrd for dyn KeyView + '_ {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

/// The same order as [`ObjectKey`]'s derived one (kind, namespace, name), as `Borrow`
/// requires.
impl Ord for dyn KeyView + '_ {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.parts().cmp(&other.parts())
    }
}

/// Defines the typed accessors for one kind: all of them, and one by name.
macro_rules! accessors {
    ($($all:ident, $one:ident, $as:ident, $kind:ident, $ty:ty, namespaced = $ns:tt;)*) => {
        impl Store {
            $(
                #[doc = concat!("Every ", stringify!($kind), ", in key order.")]
                pub fn $all(&self) -> impl Iterator<Item = &Arc<$ty>> + '_ {
                    self.of_kind(Kind::$kind).filter_map(Object::$as)
                }

                accessors!(@one $one, $as, $kind, $ty, $ns);
            )*
        }
    };
    (@one $one:ident, $as:ident, $kind:ident, $ty:ty, true) => {
        #[doc = concat!("The ", stringify!($kind), " `namespace/name`.")]
        pub fn $one(&self, namespace: &str, name: &str) -> Option<&Arc<$ty>> {
            self.lookup(Kind::$kind, Some(namespace), name).and_then(Object::$as)
        }
    };
    (@one $one:ident, $as:ident, $kind:ident, $ty:ty, false) => {
        #[doc = concat!("The ", stringify!($kind), " `name` (cluster-scoped).")]
        pub fn $one(&self, name: &str) -> Option<&Arc<$ty>> {
            self.lookup(Kind::$kind, None, name).and_then(Object::$as)
        }
    };
}

accessors! {
    gateway_classes, gateway_class, as_gateway_class, GatewayClass, GatewayClass, namespaced = false;
    gateways, gateway, as_gateway, Gateway, Gateway, namespaced = true;
    http_routes, http_route, as_http_route, HttpRoute, HttpRoute, namespaced = true;
    reference_grants, reference_grant, as_reference_grant, ReferenceGrant, ReferenceGrant, namespaced = true;
    upstreams, upstream, as_upstream, Upstream, Upstream, namespaced = true;
    route_options, route_option, as_route_option, RouteOption, RouteOption, namespaced = true;
    virtual_host_options, virtual_host_option, as_virtual_host_option, VirtualHostOption, VirtualHostOption, namespaced = true;
    listener_options, listener_option, as_listener_option, ListenerOption, ListenerOption, namespaced = true;
    http_listener_options, http_listener_option, as_http_listener_option, HttpListenerOption, HttpListenerOption, namespaced = true;
    direct_responses, direct_response, as_direct_response, DirectResponse, DirectResponse, namespaced = true;
    namespaces, namespace, as_namespace, Namespace, Namespace, namespaced = false;
    services, service, as_service, Service, Service, namespaced = true;
    endpoint_slices, endpoint_slice, as_endpoint_slice, EndpointSlice, EndpointSlice, namespaced = true;
    secrets, secret, as_secret, Secret, SecretObject, namespaced = true;
}

impl Store {
    /// The ReferenceGrants in `namespace` (the namespace a grant lets others refer into).
    pub fn reference_grants_in<'a, 'n>(
        &'a self,
        namespace: &'n str,
    ) -> impl Iterator<Item = &'a Arc<ReferenceGrant>> + use<'a, 'n> {
        self.of_kind_in(Kind::ReferenceGrant, namespace)
            .filter_map(Object::as_reference_grant)
    }

    /// The HTTPRoutes in `namespace`.
    pub fn http_routes_in<'a>(
        &'a self,
        namespace: &'a str,
    ) -> impl Iterator<Item = &'a Arc<HttpRoute>> + 'a {
        self.of_kind_in(Kind::HttpRoute, namespace)
            .filter_map(Object::as_http_route)
    }

    /// The EndpointSlices of the Service `namespace/service` (by their
    /// `kubernetes.io/service-name` label), in name order.
    pub fn endpoint_slices_for<'a, 'n>(
        &'a self,
        namespace: &'n str,
        service: &str,
    ) -> impl Iterator<Item = &'a Arc<EndpointSlice>> + use<'a, 'n> {
        self.slice_entries_for(namespace, service)
            .filter_map(|e| e.object.as_endpoint_slice())
    }

    /// The endpoints of the Service `namespace/service`'s EndpointSlices, by slice port
    /// name; `None` when it has no slices.
    pub fn service_endpoints(
        &self,
        namespace: &str,
        service: &str,
    ) -> Option<&Arc<ServiceEndpoints>> {
        self.slices_by_service
            .get(namespace)
            .and_then(|services| services.get(service))
            .map(|slices| &slices.endpoints)
    }

    fn slice_entries_for<'a, 'n>(
        &'a self,
        namespace: &'n str,
        service: &str,
    ) -> impl Iterator<Item = &'a Entry> + use<'a, 'n> {
        self.slices_by_service
            .get(namespace)
            .and_then(|services| services.get(service))
            .into_iter()
            .flat_map(|slices| slices.slices.iter().map(|(_, entry)| entry))
    }
}

/// The EndpointSlices of one Service, ordered by name, and the endpoints they give
/// (refolded whenever a slice comes, changes or goes). Almost every Service has one to
/// three slices, so a sorted `Vec` (one small allocation) stands in for a map, whose
/// smallest node would hold room for eleven.
#[derive(Clone, Debug)]
struct ServiceSlices {
    slices: Vec<(String, Entry)>,
    endpoints: Arc<ServiceEndpoints>,
}

impl ServiceSlices {
    fn new() -> Self {
        Self {
            slices: Vec::new(),
            endpoints: Arc::new(ServiceEndpoints::of(&[])),
        }
    }

    /// Adds or replaces the slice `name`.
    fn insert(&mut self, name: &str, entry: Entry) {
        match self.slices.binary_search_by(|(n, _)| n.as_str().cmp(name)) {
            Ok(i) => self.slices[i].1 = entry,
            Err(i) => {
                self.slices.reserve_exact(1);
                self.slices.insert(i, (name.to_string(), entry));
            }
        }
        self.endpoints = Arc::new(ServiceEndpoints::of(&self.slices));
    }

    /// Removes the slice `name`, if present.
    fn remove(&mut self, name: &str) {
        if let Ok(i) = self.slices.binary_search_by(|(n, _)| n.as_str().cmp(name)) {
            self.slices.remove(i);
            self.slices.shrink_to_fit();
            self.endpoints = Arc::new(ServiceEndpoints::of(&self.slices));
        }
    }
}

/// The (namespace, Service name) an EndpointSlice belongs to.
fn slice_service(object: &Object) -> Option<(String, String)> {
    let slice = object.as_endpoint_slice()?;
    let svc = slice.metadata.labels.as_ref()?.get(SERVICE_NAME_LABEL)?;
    Some((object.namespace()?.to_string(), svc.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::gateway_api::ObjectMeta;
    use crate::model::{DirectResponseSpec, UpstreamSpec};
    use k8s_openapi::api::discovery::v1::Endpoint;
    use std::collections::BTreeMap;

    fn mk_meta(ns: impl ToString, name: impl ToString) -> ObjectMeta {
        ObjectMeta {
            namespace: Some(ns.to_string()),
            name: Some(name.to_string()),
            ..Default::default()
        }
    }

    fn mk_service(ns: impl ToString, name: impl ToString) -> Object {
        Service {
            metadata: mk_meta(ns, name),
            ..Default::default()
        }
        .into()
    }

    fn mk_slice(ns: impl ToString, name: impl ToString, svc: impl ToString, ip: &str) -> Object {
        let mut metadata = mk_meta(ns, name);
        metadata.labels = Some(BTreeMap::from([(
            SERVICE_NAME_LABEL.to_string(),
            svc.to_string(),
        )]));
        EndpointSlice {
            metadata,
            address_type: "IPv4".into(),
            endpoints: vec![Endpoint {
                addresses: vec![ip.to_string()],
                ..Default::default()
            }],
            ports: None,
        }
        .into()
    }

    fn mk_direct_response(ns: impl ToString, name: impl ToString, status: u16) -> Object {
        DirectResponse {
            metadata: mk_meta(ns, name),
            spec: DirectResponseSpec { status, body: None },
            status: None,
        }
        .into()
    }

    fn mk_upstream(ns: impl ToString, name: impl ToString, block: serde_json::Value) -> Object {
        Upstream {
            metadata: mk_meta(ns, name),
            spec: UpstreamSpec {
                types: BTreeMap::from([("static".to_string(), block)]),
                ..Default::default()
            },
            status: None,
        }
        .into()
    }

    fn keys(store: &Store) -> Vec<String> {
        store.iter().map(|(k, _, _)| k.to_string()).collect()
    }

    #[test]
    fn apply_reports_created_updated_and_unchanged() {
        let mut store = Store::new();
        assert_eq!(
            store.apply(mk_direct_response("a", "dr", 200)),
            Applied::Created
        );
        assert_eq!(
            store.apply(mk_direct_response("a", "dr", 200)),
            Applied::Unchanged
        );
        assert_eq!(
            store.apply(mk_direct_response("a", "dr", 404)),
            Applied::Updated
        );
        assert_eq!(store.len(), 1);
        assert_eq!(store.direct_response("a", "dr").unwrap().spec.status, 404);
    }

    #[test]
    fn delete_removes_the_object_and_returns_it() {
        let mut store = Store::new();
        store.apply(mk_service("a", "web"));
        let key = ObjectKey::namespaced(Kind::Service, "a", "web");
        assert!(store.delete(&key).is_some());
        assert!(store.delete(&key).is_none());
        assert!(store.service("a", "web").is_none());
        assert!(store.is_empty());
    }

    #[test]
    fn reset_replaces_everything_and_reports_removed_keys() {
        let mut store = Store::new();
        store.apply(mk_service("a", "keep"));
        store.apply(mk_service("a", "gone"));
        store.apply(mk_direct_response("b", "gone-too", 200));
        let removed = store.reset(vec![mk_service("a", "keep"), mk_service("c", "new")]);
        let removed: Vec<String> = removed.iter().map(ToString::to_string).collect();
        assert_eq!(removed, ["DirectResponse/b/gone-too", "Service/a/gone"]);
        assert_eq!(keys(&store), ["Service/a/keep", "Service/c/new"]);
    }

    #[test]
    fn handle_reports_only_keys_whose_content_changed() {
        let mut store = Store::new();
        store.apply(mk_service("a", "same"));
        store.apply(mk_direct_response("a", "changes", 200));
        store.apply(mk_service("a", "gone"));
        let changed = store.handle(SourceEvent::Reset(vec![
            mk_service("a", "same"),
            mk_direct_response("a", "changes", 500),
            mk_service("a", "new"),
        ]));
        let changed: Vec<String> = changed.iter().map(ToString::to_string).collect();
        assert_eq!(
            changed,
            [
                "DirectResponse/a/changes",
                "Service/a/gone",
                "Service/a/new"
            ]
        );
        assert!(
            store
                .handle(SourceEvent::Apply(mk_service("a", "same")))
                .is_empty()
        );
        let key = ObjectKey::namespaced(Kind::Service, "a", "new");
        assert_eq!(
            store.handle(SourceEvent::Delete(key.clone())),
            std::slice::from_ref(&key)
        );
        assert!(store.handle(SourceEvent::Delete(key)).is_empty());
    }

    #[test]
    fn later_duplicate_in_a_reset_wins() {
        let mut store = Store::new();
        store.reset(vec![
            mk_direct_response("a", "dr", 200),
            mk_direct_response("a", "dr", 503),
        ]);
        assert_eq!(store.len(), 1);
        assert_eq!(store.direct_response("a", "dr").unwrap().spec.status, 503);
    }

    #[test]
    fn iteration_is_in_key_order_whatever_the_apply_order() {
        let objects = vec![
            mk_service("b", "x"),
            mk_direct_response("a", "z", 200),
            mk_service("a", "y"),
            mk_service("a", "x"),
        ];
        let mut forward = Store::new();
        let mut backward = Store::new();
        for o in objects.iter().cloned() {
            forward.apply(o);
        }
        for o in objects.into_iter().rev() {
            backward.apply(o);
        }
        assert_eq!(keys(&forward), keys(&backward));
        assert_eq!(
            keys(&forward),
            [
                "DirectResponse/a/z",
                "Service/a/x",
                "Service/a/y",
                "Service/b/x"
            ]
        );
        let in_a: Vec<&str> = forward
            .of_kind_in(Kind::Service, "a")
            .map(Object::name)
            .collect();
        assert_eq!(in_a, ["x", "y"]);
    }

    #[test]
    fn endpoint_slices_are_found_by_their_service() {
        let mut store = Store::new();
        store.apply(mk_service("a", "web"));
        store.apply(mk_slice("a", "web-1", "web", "10.0.0.1"));
        store.apply(mk_slice("a", "web-2", "web", "10.0.0.2"));
        store.apply(mk_slice("a", "db-1", "db", "10.0.0.3"));
        store.apply(mk_slice("b", "web-1", "web", "10.0.0.4"));
        let names = |store: &Store| -> Vec<String> {
            store
                .endpoint_slices_for("a", "web")
                .map(|s| s.metadata.name.clone().unwrap())
                .collect()
        };
        assert_eq!(names(&store), ["web-1", "web-2"]);
        // A slice relabelled to another Service moves with it.
        store.apply(mk_slice("a", "web-2", "db", "10.0.0.2"));
        assert_eq!(names(&store), ["web-1"]);
        store.delete(&ObjectKey::namespaced(Kind::EndpointSlice, "a", "web-1"));
        assert!(names(&store).is_empty());
        store.reset(vec![mk_slice("a", "web-9", "web", "10.0.0.9")]);
        assert_eq!(names(&store), ["web-9"]);
    }

    #[test]
    fn service_endpoints_follow_their_slices() {
        let with_port = |name: &str, svc: &str, ip: &str| {
            let mut object = mk_slice("a", name, svc, ip);
            if let Object::EndpointSlice(s) = &mut object {
                Arc::make_mut(s).ports = Some(vec![Default::default()]);
                Arc::make_mut(s).ports.as_mut().unwrap()[0].port = Some(80);
            }
            object
        };
        let addresses = |store: &Store| -> Vec<String> {
            store
                .service_endpoints("a", "web")
                .map(|e| e.port("").iter().map(|e| e.address.clone()).collect())
                .unwrap_or_default()
        };
        let mut store = Store::new();
        store.apply(with_port("web-1", "web", "10.0.0.2"));
        store.apply(with_port("web-2", "web", "10.0.0.1"));
        assert_eq!(addresses(&store), ["10.0.0.1", "10.0.0.2"]);
        let before = store.service_endpoints("a", "web").unwrap().hash();
        store.apply(with_port("web-2", "web", "10.0.0.3"));
        assert_eq!(addresses(&store), ["10.0.0.2", "10.0.0.3"]);
        assert_ne!(store.service_endpoints("a", "web").unwrap().hash(), before);
        // Relabelled to another Service, a slice's endpoints move with it.
        store.apply(with_port("web-1", "db", "10.0.0.2"));
        assert_eq!(addresses(&store), ["10.0.0.3"]);
        store.delete(&ObjectKey::namespaced(Kind::EndpointSlice, "a", "web-2"));
        assert!(store.service_endpoints("a", "web").is_none());
        store.reset(vec![with_port("web-9", "web", "10.0.0.9")]);
        assert_eq!(addresses(&store), ["10.0.0.9"]);
    }

    #[test]
    fn content_hash_is_stable_and_ignores_map_order() {
        let a = mk_upstream(
            "a",
            "u",
            serde_json::json!({"hosts": [{"addr": "h", "port": 1}], "useTls": true}),
        );
        let mut block = serde_json::Map::new();
        block.insert("useTls".into(), true.into());
        block.insert(
            "hosts".into(),
            serde_json::json!([{"port": 1, "addr": "h"}]),
        );
        let b = mk_upstream("a", "u", serde_json::Value::Object(block));
        assert_eq!(ContentHash::of(&a), ContentHash::of(&b));
        // Pinned: the hash must not change between runs or builds.
        assert_eq!(
            ContentHash::of_value(&serde_json::json!({"b": 1, "a": [true, null, "x"]})).to_string(),
            ContentHash::of_value(&serde_json::json!({"a": [true, null, "x"], "b": 1})).to_string(),
        );
        let pinned = ContentHash::of_value(&serde_json::json!({"a": 1}));
        // sha256(`{"a":1}`) = 015abd7f5cc57a2dd94b7590f04ad8084273905ee33ec5cebeae62276a97f862
        assert_eq!(pinned.to_string(), "015abd7f5cc57a2dd94b7590f04ad808");
        let c = mk_upstream(
            "a",
            "u",
            serde_json::json!({"hosts": [{"addr": "h", "port": 2}]}),
        );
        assert_ne!(ContentHash::of(&a), ContentHash::of(&c));
    }

    #[test]
    fn content_hash_ignores_status_and_resource_version() {
        let mut dr = DirectResponse {
            metadata: mk_meta("a", "dr"),
            spec: DirectResponseSpec {
                status: 200,
                body: None,
            },
            status: None,
        };
        let before = ContentHash::of(&dr.clone().into());
        dr.metadata.resource_version = Some("42".into());
        dr.status = Some(Default::default());
        assert_eq!(ContentHash::of(&dr.clone().into()), before);
        dr.metadata.generation = Some(2);
        assert_ne!(ContentHash::of(&dr.into()), before);
    }

    #[test]
    fn kind_revision_moves_only_when_content_of_that_kind_changes() {
        let mut store = Store::new();
        let start = store.kind_revision(Kind::Service);
        store.apply(mk_service("a", "web"));
        let created = store.kind_revision(Kind::Service);
        assert_ne!(created, start);
        store.apply(mk_service("a", "web"));
        assert_eq!(store.kind_revision(Kind::Service), created);
        store.apply(mk_direct_response("a", "dr", 200));
        assert_eq!(store.kind_revision(Kind::Service), created);
        // A clone that changes the kind gets a revision the original never has.
        let mut clone = store.clone();
        clone.delete(&ObjectKey::namespaced(Kind::Service, "a", "web"));
        assert_ne!(clone.kind_revision(Kind::Service), created);
        store.reset(vec![
            mk_service("a", "web"),
            mk_direct_response("a", "dr", 200),
        ]);
        assert_eq!(store.kind_revision(Kind::Service), created);
        store.reset(vec![mk_service("a", "web")]);
        assert_eq!(store.kind_revision(Kind::Service), created);
        assert_ne!(store.kind_revision(Kind::DirectResponse), start);
    }

    #[test]
    fn borrowed_key_parts_hash_as_the_key_does() {
        use std::hash::BuildHasher;
        let state = foldhash::fast::RandomState::default();
        for key in [
            ObjectKey::namespaced(Kind::Service, "a", "web"),
            ObjectKey::cluster(Kind::Namespace, "apps"),
        ] {
            let parts: &dyn KeyView = &(key.kind, key.namespace.as_deref(), key.name.as_str());
            assert_eq!(state.hash_one(&key), state.hash_one(parts));
        }
    }

    #[test]
    fn cluster_scoped_lookups_ignore_namespace() {
        let mut store = Store::new();
        store.apply(
            Namespace {
                metadata: ObjectMeta {
                    name: Some("apps".into()),
                    ..Default::default()
                },
                ..Default::default()
            }
            .into(),
        );
        assert!(store.namespace("apps").is_some());
        assert_eq!(keys(&store), ["Namespace/apps"]);
    }
}
