//! What memoised work read, so we know when to redo it.
//!
//! Per-object work (an HTTPRoute's translation, a cluster) reads other objects through a
//! [`Recorder`], which notes each lookup as a [`Dep`] — including lookups that found
//! nothing, since an object appearing later must invalidate the work too. The memo keeps
//! each dependency's [`DepValue`] (the content hashes it saw); the work is reused only if
//! every value is unchanged. [`PassReader`] computes each value at most once per pass.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use crate::model::gateway_api::{EndpointSlice, ReferenceGrant, Service};
use crate::model::{DirectResponse, Kind, ObjectKey, SecretObject, Upstream};
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

/// The store plus the dependency values computed so far this pass.
pub(crate) struct PassReader<'s> {
    pub(crate) store: &'s Store,
    values: HashMap<Dep, DepValue>,
}

impl<'s> PassReader<'s> {
    pub(crate) fn new(store: &'s Store) -> Self {
        Self {
            store,
            values: HashMap::new(),
        }
    }

    fn value(&mut self, dep: &Dep) -> DepValue {
        if let Some(v) = self.values.get(dep) {
            return v.clone();
        }
        let store = self.store;
        let v: DepValue = match dep {
            Dep::Object(key) => store.hash(key).into_iter().collect(),
            Dep::GrantsIn(ns) => store
                .of_kind_in(Kind::ReferenceGrant, ns)
                .filter_map(|o| store.hash(&o.key()))
                .collect(),
            Dep::SlicesOf(ns, svc) => store
                .endpoint_slices_for(ns, svc)
                .filter_map(|s| {
                    let name = s.metadata.name.as_deref().unwrap_or_default();
                    store.hash(&ObjectKey::namespaced(Kind::EndpointSlice, ns, name))
                })
                .collect(),
        };
        self.values.insert(dep.clone(), v.clone());
        v
    }

    /// Whether every recorded dependency still has the value it had.
    pub(crate) fn unchanged(&mut self, snapshot: &DepSnapshot) -> bool {
        snapshot.iter().all(|(dep, v)| &self.value(dep) == v)
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
                let v = self.value(&d);
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

    /// The Secret `ns/name`.
    pub(crate) fn secret(&mut self, ns: &str, name: &str) -> Option<&'s Arc<SecretObject>> {
        self.note(Kind::Secret, ns, name);
        self.store.secret(ns, name)
    }

    /// The EndpointSlices of Service `ns/name`.
    pub(crate) fn slices_for(&mut self, ns: &str, name: &str) -> Vec<&'s Arc<EndpointSlice>> {
        self.deps
            .insert(Dep::SlicesOf(ns.to_string(), name.to_string()));
        let store = self.store;
        let names: Vec<String> = store
            .endpoint_slices_for(ns, name)
            .filter_map(|s| s.metadata.name.clone())
            .collect();
        names
            .iter()
            .filter_map(|n| store.endpoint_slice(ns, n))
            .collect()
    }

    /// The ReferenceGrants in `ns`.
    pub(crate) fn grants_in(&mut self, ns: &str) -> Vec<&'s Arc<ReferenceGrant>> {
        self.deps.insert(Dep::GrantsIn(ns.to_string()));
        let store = self.store;
        let names: Vec<String> = store
            .reference_grants_in(ns)
            .filter_map(|g| g.metadata.name.clone())
            .collect();
        names
            .iter()
            .filter_map(|n| store.reference_grant(ns, n))
            .collect()
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
