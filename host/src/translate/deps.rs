//! What memoised work read, so we know when to redo it.
//!
//! Per-object work (an HTTPRoute's translation, a cluster) reads other objects through a
//! [`Recorder`], which notes each lookup as a [`Dep`] — including lookups that found
//! nothing, since an object appearing later must invalidate the work too. The memo keeps
//! each dependency's [`DepValue`] (the content hashes it saw, taken by the very lookup
//! that read the object, so recording costs no second search of the store); the work is
//! reused only if every value is unchanged. [`PassReader`] computes each value it checks
//! at most once per pass.
//!
//! Checking every dependency of every memoised piece each pass costs a store lookup per
//! dependency, which at 10,000 routes dominates a pass where one route changed. So the
//! translator also tells the reader which kinds had no content change since the previous
//! pass ([`crate::store::Store::kind_revision`]): work that was checked in the previous pass
//! need not look again at its dependencies of those kinds.

use std::sync::Arc;

use super::FastMap;
use crate::model::gateway_api::{ReferenceGrant, Service};
use crate::model::{DirectResponse, Kind, Object, ObjectKey, RouteOption, SecretObject, Upstream};
use crate::store::{ContentHash, Endpoint, Store};

/// Something memoised work read.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Dep {
    /// One object, present or not.
    Object(ObjectKey),
    /// Every ReferenceGrant in a namespace.
    GrantsIn(String),
    /// The endpoints of the Service (namespace, name)'s EndpointSlices.
    EndpointsOf(String, String),
}

/// The content hashes a dependency had: none for a missing object, one per object
/// otherwise, in the store's order. One hash, the usual case, is held without allocating.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum DepValue {
    /// No object.
    Absent,
    /// One object's hash.
    One(ContentHash),
    /// Two or more objects' hashes.
    Many(Box<[ContentHash]>),
}

impl DepValue {
    /// The value of a dependency on the objects with these hashes.
    fn of(hashes: impl IntoIterator<Item = ContentHash>) -> Self {
        let mut it = hashes.into_iter();
        let Some(first) = it.next() else {
            return Self::Absent;
        };
        let Some(second) = it.next() else {
            return Self::One(first);
        };
        Self::Many([first, second].into_iter().chain(it).collect())
    }
}

/// Recorded dependencies with the values they had.
pub(crate) type DepSnapshot = Vec<(Dep, DepValue)>;

impl Dep {
    /// The kind of object whose changes can change this dependency's value.
    fn kind(&self) -> Kind {
        match self {
            Dep::Object(key) => key.kind,
            Dep::GrantsIn(_) => Kind::ReferenceGrant,
            Dep::EndpointsOf(..) => Kind::EndpointSlice,
        }
    }
}

/// Whether `snapshot` found some object of `kind`.
pub(crate) fn found(snapshot: &DepSnapshot, kind: Kind) -> bool {
    snapshot.iter().any(|(dep, v)| {
        matches!(dep, Dep::Object(key) if key.kind == kind) && *v != DepValue::Absent
    })
}

/// Numbers the passes of one translator; memoised work records the pass that last checked it.
pub(crate) type PassId = u64;

/// A set of kinds, one bit per [`Kind`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct KindSet(u32);

impl KindSet {
    pub(crate) fn insert(&mut self, kind: Kind) {
        self.0 |= 1 << (kind as u32);
    }

    pub(crate) fn contains(self, kind: Kind) -> bool {
        self.0 & (1 << (kind as u32)) != 0
    }
}

/// The store plus the dependency values computed so far this pass.
pub(crate) struct PassReader<'s> {
    pub(crate) store: &'s Store,
    values: FastMap<Dep, DepValue>,
    /// This pass.
    pass: PassId,
    /// Kinds with no content change since the previous pass (`pass - 1`).
    stable: KindSet,
}

impl<'s> PassReader<'s> {
    /// A reader for a pass with no knowledge of the previous one: every check is full.
    pub(crate) fn new(store: &'s Store) -> Self {
        Self::for_pass(store, 0, KindSet::default())
    }

    /// A reader for pass `pass`, where `stable` kinds did not change since pass `pass - 1`.
    pub(crate) fn for_pass(store: &'s Store, pass: PassId, stable: KindSet) -> Self {
        Self {
            store,
            values: FastMap::default(),
            pass,
            stable,
        }
    }

    /// This pass's id, to record in memo entries checked or built now.
    pub(crate) fn pass(&self) -> PassId {
        self.pass
    }

    /// Whether `dep` still has value `v`; its value now is computed once per pass.
    fn still(&mut self, dep: &Dep, v: &DepValue) -> bool {
        if let Some(now) = self.values.get(dep) {
            return now == v;
        }
        let now = Self::compute(self.store, dep);
        let same = now == *v;
        self.values.insert(dep.clone(), now);
        same
    }

    fn compute(store: &Store, dep: &Dep) -> DepValue {
        match dep {
            Dep::Object(key) => DepValue::of(store.hash(key)),
            Dep::GrantsIn(ns) => DepValue::of(
                store
                    .of_kind_in_hashed(Kind::ReferenceGrant, ns)
                    .map(|(_, _, h)| h),
            ),
            Dep::EndpointsOf(ns, svc) => {
                DepValue::of(store.service_endpoints(ns, svc).map(|e| e.hash()))
            }
        }
    }

    /// Whether every recorded dependency of work last checked in pass `checked` still has
    /// the value it had. Work checked in the previous pass skips the kinds that did not
    /// change since.
    pub(crate) fn unchanged(&mut self, checked: PassId, snapshot: &DepSnapshot) -> bool {
        let skip = if checked != 0 && checked + 1 == self.pass {
            self.stable
        } else {
            KindSet::default()
        };
        snapshot
            .iter()
            .filter(|(dep, _)| !skip.contains(dep.kind()))
            .all(|(dep, v)| self.still(dep, v))
    }

    /// A recorder for one piece of work.
    pub(crate) fn recorder(&self) -> Recorder<'s> {
        Recorder::new(self.store)
    }

    /// What `recorder` saw, with the values it saw, once each.
    pub(crate) fn snapshot(&mut self, recorder: Recorder<'s>) -> DepSnapshot {
        recorder.into_snapshot()
    }
}

impl<'s> Recorder<'s> {
    /// A recorder reading `store`, for work done away from the pass's [`PassReader`] (on
    /// another thread).
    pub(crate) fn new(store: &'s Store) -> Self {
        Self::with_capacity(store, 0)
    }

    /// [`Recorder::new`], with room for `reads` lookups.
    pub(crate) fn with_capacity(store: &'s Store, reads: usize) -> Self {
        Self {
            store,
            deps: Vec::with_capacity(reads),
        }
    }

    /// What this recorder saw, with the values it saw, once each.
    pub(crate) fn into_snapshot(self) -> DepSnapshot {
        let mut deps = self.deps;
        // A dependency read twice had the same value both times (the store does not
        // change during a pass). Often they were read in order already.
        if !deps.is_sorted_by(|a, b| a.0 < b.0) {
            deps.sort_unstable_by(|a, b| a.0.cmp(&b.0));
            deps.dedup_by(|a, b| a.0 == b.0);
        }
        // Kept as long as the memo entry: no spare capacity.
        deps.shrink_to_fit();
        deps
    }
}

/// Reads the store on behalf of one piece of memoised work, noting every lookup and the
/// value it found.
pub(crate) struct Recorder<'s> {
    store: &'s Store,
    /// In the order read; [`PassReader::snapshot`] sorts out repeats.
    deps: Vec<(Dep, DepValue)>,
}

impl<'s> Recorder<'s> {
    /// Looks up the namespaced object `kind` `ns/name` and notes it (found or not).
    fn read(&mut self, kind: Kind, ns: &str, name: &str) -> Option<&'s Object> {
        let found = self.store.lookup_hashed(kind, Some(ns), name);
        self.deps.push((
            Dep::Object(ObjectKey::namespaced(kind, ns, name)),
            DepValue::of(found.map(|(_, h)| h)),
        ));
        found.map(|(o, _)| o)
    }

    /// The Service `ns/name`.
    pub(crate) fn service(&mut self, ns: &str, name: &str) -> Option<&'s Arc<Service>> {
        self.read(Kind::Service, ns, name)
            .and_then(Object::as_service)
    }

    /// The Upstream `ns/name`.
    pub(crate) fn upstream(&mut self, ns: &str, name: &str) -> Option<&'s Arc<Upstream>> {
        self.read(Kind::Upstream, ns, name)
            .and_then(Object::as_upstream)
    }

    /// The DirectResponse `ns/name`.
    pub(crate) fn direct_response(
        &mut self,
        ns: &str,
        name: &str,
    ) -> Option<&'s Arc<DirectResponse>> {
        self.read(Kind::DirectResponse, ns, name)
            .and_then(Object::as_direct_response)
    }

    /// Whether the RouteOption `ns/name` exists.
    pub(crate) fn route_option_exists(&mut self, ns: &str, name: &str) -> bool {
        self.read(Kind::RouteOption, ns, name)
            .and_then(Object::as_route_option)
            .is_some()
    }

    /// The RouteOption `ns/name`, with its content hash.
    pub(crate) fn route_option(
        &mut self,
        ns: &str,
        name: &str,
    ) -> Option<(&'s Arc<RouteOption>, ContentHash)> {
        let found = self.store.lookup_hashed(Kind::RouteOption, Some(ns), name);
        self.deps.push((
            Dep::Object(ObjectKey::namespaced(Kind::RouteOption, ns, name)),
            DepValue::of(found.map(|(_, h)| h)),
        ));
        let (object, hash) = found?;
        Some((object.as_route_option()?, hash))
    }

    /// The Secret `ns/name`.
    pub(crate) fn secret(&mut self, ns: &str, name: &str) -> Option<&'s Arc<SecretObject>> {
        self.read(Kind::Secret, ns, name)
            .and_then(Object::as_secret)
    }

    /// The endpoints of the Service `ns/name`'s EndpointSlices behind slice port
    /// `port_name`.
    pub(crate) fn endpoints(&mut self, ns: &str, name: &str, port_name: &str) -> &'s [Endpoint] {
        let found = self.store.service_endpoints(ns, name);
        self.deps.push((
            Dep::EndpointsOf(ns.to_string(), name.to_string()),
            DepValue::of(found.map(|e| e.hash())),
        ));
        found.map_or(&[], |e| e.port(port_name))
    }

    /// The ReferenceGrants in `ns`.
    pub(crate) fn grants_in(&mut self, ns: &str) -> Vec<&'s Arc<ReferenceGrant>> {
        let mut hashes = Vec::new();
        let mut grants = Vec::new();
        for (_, object, hash) in self.store.of_kind_in_hashed(Kind::ReferenceGrant, ns) {
            hashes.push(hash);
            grants.extend(object.as_reference_grant());
        }
        self.deps
            .push((Dep::GrantsIn(ns.to_string()), DepValue::of(hashes)));
        grants
    }
}

/// One side of a reference: group, kind and namespace.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RefFrom<'a> {
    pub(crate) group: &'a str,
    pub(crate) kind: &'a str,
    pub(crate) namespace: &'a str,
}

/// The target of a reference: group, kind, namespace and name.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RefTo<'a> {
    pub(crate) group: &'a str,
    pub(crate) kind: &'a str,
    pub(crate) namespace: &'a str,
    pub(crate) name: &'a str,
}

/// Whether a reference is allowed: same namespace, or a ReferenceGrant in the target's
/// namespace lets `from` refer to `to` (Gateway API ReferenceGrant semantics).
pub(crate) fn reference_permitted(recorder: &mut Recorder<'_>, from: RefFrom, to: RefTo) -> bool {
    if from.namespace == to.namespace {
        return true;
    }
    recorder.grants_in(to.namespace).iter().any(|grant| {
        let from_ok =
            grant.spec.from.iter().any(|f| {
                f.group == from.group && f.kind == from.kind && f.namespace == from.namespace
            });
        let to_ok = grant.spec.to.iter().any(|t| {
            t.group == to.group
                && t.kind == to.kind
                && t.name.as_deref().is_none_or(|n| n == to.name)
        });
        from_ok && to_ok
    })
}
