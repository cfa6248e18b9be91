//! What memoised work read, so we know when to redo it.
//!
//! Per-object work (an HTTPRoute's translation, a cluster) reads other objects through a
//! [`Recorder`], which notes each lookup as a [`Dep`] — including lookups that found
//! nothing, since an object appearing later must invalidate the work too. The memo keeps
//! each dependency's [`DepValue`] (the content hashes it saw); the work is reused only if
//! every value is unchanged. [`PassReader`] computes each value at most once per pass.
//!
//! Checking every dependency of every memoised piece each pass costs a store lookup per
//! dependency, which at 10,000 routes dominates a pass where one route changed. So the
//! translator also tells the reader which kinds had no content change since the previous
//! pass ([`crate::store::Store::kind_revision`]): work that was checked in the previous pass
//! need not look again at its dependencies of those kinds.

use std::collections::BTreeSet;
use std::sync::Arc;

use super::FastMap;
use crate::model::gateway_api::{EndpointSlice, ReferenceGrant, Service};
use crate::model::{DirectResponse, Kind, ObjectKey, RouteOption, SecretObject, Upstream};
use crate::store::{ContentHash, Store};

/// Something memoised work read.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Dep {
    /// One object, present or not.
    Object(ObjectKey),
    /// Every ReferenceGrant in a namespace.
    GrantsIn(String),
    /// Every EndpointSlice of the Service (namespace, name).
    SlicesOf(String, String),
}

/// The content hashes a dependency had: none for a missing object, one per object otherwise.
pub(crate) type DepValue = Vec<ContentHash>;

/// Recorded dependencies with the values they had.
pub(crate) type DepSnapshot = Vec<(Dep, DepValue)>;

impl Dep {
    /// The kind of object whose changes can change this dependency's value.
    fn kind(&self) -> Kind {
        match self {
            Dep::Object(key) => key.kind,
            Dep::GrantsIn(_) => Kind::ReferenceGrant,
            Dep::SlicesOf(..) => Kind::EndpointSlice,
        }
    }
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

    fn value(&mut self, dep: &Dep) -> &DepValue {
        if !self.values.contains_key(dep) {
            let v = Self::compute(self.store, dep);
            self.values.insert(dep.clone(), v);
        }
        &self.values[dep]
    }

    fn compute(store: &Store, dep: &Dep) -> DepValue {
        match dep {
            Dep::Object(key) => store.hash(key).into_iter().collect(),
            Dep::GrantsIn(ns) => store
                .of_kind_in_hashed(Kind::ReferenceGrant, ns)
                .map(|(_, _, h)| h)
                .collect(),
            Dep::SlicesOf(ns, svc) => store.endpoint_slice_hashes_for(ns, svc).collect(),
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
            .all(|(dep, v)| self.value(dep) == v)
    }

    /// A recorder for one piece of work.
    pub(crate) fn recorder(&self) -> Recorder<'s> {
        Recorder {
            store: self.store,
            deps: BTreeSet::new(),
        }
    }

    /// The values of what `recorder` saw.
    pub(crate) fn snapshot(&mut self, recorder: Recorder<'s>) -> DepSnapshot {
        recorder
            .deps
            .into_iter()
            .map(|d| {
                let v = self.value(&d).clone();
                (d, v)
            })
            .collect()
    }
}

/// Reads the store on behalf of one piece of memoised work, noting every lookup.
pub(crate) struct Recorder<'s> {
    store: &'s Store,
    deps: BTreeSet<Dep>,
}

impl<'s> Recorder<'s> {
    fn note(&mut self, kind: Kind, ns: &str, name: &str) {
        self.deps
            .insert(Dep::Object(ObjectKey::namespaced(kind, ns, name)));
    }

    /// The Service `ns/name`.
    pub(crate) fn service(&mut self, ns: &str, name: &str) -> Option<&'s Arc<Service>> {
        self.note(Kind::Service, ns, name);
        self.store.service(ns, name)
    }

    /// The Upstream `ns/name`.
    pub(crate) fn upstream(&mut self, ns: &str, name: &str) -> Option<&'s Arc<Upstream>> {
        self.note(Kind::Upstream, ns, name);
        self.store.upstream(ns, name)
    }

    /// The DirectResponse `ns/name`.
    pub(crate) fn direct_response(
        &mut self,
        ns: &str,
        name: &str,
    ) -> Option<&'s Arc<DirectResponse>> {
        self.note(Kind::DirectResponse, ns, name);
        self.store.direct_response(ns, name)
    }

    /// Whether the RouteOption `ns/name` exists.
    pub(crate) fn route_option_exists(&mut self, ns: &str, name: &str) -> bool {
        self.note(Kind::RouteOption, ns, name);
        self.store.route_option(ns, name).is_some()
    }

    /// The RouteOption `ns/name`, with its content hash.
    pub(crate) fn route_option(
        &mut self,
        ns: &str,
        name: &str,
    ) -> Option<(&'s Arc<RouteOption>, ContentHash)> {
        self.note(Kind::RouteOption, ns, name);
        let option = self.store.route_option(ns, name)?;
        let hash = self
            .store
            .hash(&ObjectKey::namespaced(Kind::RouteOption, ns, name))?;
        Some((option, hash))
    }

    /// The Secret `ns/name`.
    pub(crate) fn secret(&mut self, ns: &str, name: &str) -> Option<&'s Arc<SecretObject>> {
        self.note(Kind::Secret, ns, name);
        self.store.secret(ns, name)
    }

    /// The EndpointSlices of Service `ns/name`.
    pub(crate) fn slices_for(&mut self, ns: &str, name: &str) -> Vec<&'s Arc<EndpointSlice>> {
        self.deps
            .insert(Dep::SlicesOf(ns.to_string(), name.to_string()));
        self.store.endpoint_slices_for(ns, name).collect()
    }

    /// The ReferenceGrants in `ns`.
    pub(crate) fn grants_in(&mut self, ns: &str) -> Vec<&'s Arc<ReferenceGrant>> {
        self.deps.insert(Dep::GrantsIn(ns.to_string()));
        self.store.reference_grants_in(ns).collect()
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
