//! Turns the per-API watcher events into the source's [`SourceEvent`]s. Pure: no I/O.
//!
//! - **Initial sync.** Nothing is emitted until every watched API has finished its first
//!   list; then one [`SourceEvent::Reset`] carries everything, so the first translation
//!   sees a complete cluster, never half of it.
//! - **Relists.** A watcher that relists (after a `410 Gone`, or a restart) reports the
//!   complete set of its objects; whatever it held before and did not list again is
//!   deleted, per API, without touching other kinds.
//! - **Aliases.** A kind watched under two groups (Weir's and K8sGateway's) shares keys; a
//!   delete from one group falls back to the other group's object of the same name.
//! - **Secrets.** Only Secrets a Gateway listener's `certificateRefs` or an Upstream's
//!   `sslConfig.secretRef` names are kept; the rest are dropped as they arrive. When a
//!   reference to a Secret not held appears, [`Output::fetch`] asks the caller to get it.

use std::collections::{BTreeMap, BTreeSet};

use crate::model::{Kind, Object, ObjectKey};
use crate::source::SourceEvent;

/// What a watcher reported, already decoded.
#[derive(Debug)]
pub enum Input {
    /// A (re)list starts.
    Init,
    /// An object of the list in progress.
    InitApply(Object),
    /// The list is complete.
    InitDone,
    /// An object was created or changed.
    Apply(Object),
    /// An object was deleted.
    Delete(ObjectKey),
    /// The API is not served (its CRD is not installed): counts as synced and empty.
    Unavailable,
}

/// What the merger wants done.
#[derive(Debug, Default)]
pub struct Output {
    /// Events for the store, in order.
    pub events: Vec<SourceEvent>,
    /// Secrets newly referenced but not held: get them and hand them to
    /// [`Merger::fetched`].
    pub fetch: Vec<ObjectKey>,
}

/// The merger's state: every API's current objects and the referenced Secrets.
#[derive(Debug)]
pub struct Merger {
    kinds: Vec<Kind>,
    synced: Vec<bool>,
    started: bool,
    relisting: Vec<Option<BTreeMap<ObjectKey, Object>>>,
    known: Vec<BTreeMap<ObjectKey, Object>>,
    /// Every Secret listed before the initial sync finished (dropped at the start).
    early_secrets: BTreeMap<ObjectKey, Object>,
    held: BTreeMap<ObjectKey, Object>,
    refs: BTreeMap<ObjectKey, BTreeSet<ObjectKey>>,
}

impl Merger {
    /// A merger for APIs of these kinds, indexed as given.
    pub fn new(kinds: Vec<Kind>) -> Self {
        let n = kinds.len();
        Self {
            kinds,
            synced: vec![false; n],
            started: false,
            relisting: vec![None; n],
            known: vec![BTreeMap::new(); n],
            early_secrets: BTreeMap::new(),
            held: BTreeMap::new(),
            refs: BTreeMap::new(),
        }
    }

    /// Whether the initial sync finished (the first `Reset` was emitted).
    pub fn started(&self) -> bool {
        self.started
    }

    /// How many Secrets are held (referenced ones only, once started).
    pub fn secrets_held(&self) -> usize {
        self.held.len()
    }

    /// Handles one input from API `api`.
    pub fn handle(&mut self, api: usize, input: Input) -> Output {
        let mut out = Output::default();
        let secret = self.kinds[api] == Kind::Secret;
        match input {
            Input::Init => self.relisting[api] = Some(BTreeMap::new()),
            Input::InitApply(o) => {
                self.relisting[api]
                    .get_or_insert_with(BTreeMap::new)
                    .insert(o.key(), o);
            }
            Input::InitDone => {
                let listed = self.relisting[api].take().unwrap_or_default();
                if secret {
                    self.relist_secrets(listed, &mut out);
                } else {
                    let gone: Vec<ObjectKey> = self.known[api]
                        .keys()
                        .filter(|k| !listed.contains_key(*k))
                        .cloned()
                        .collect();
                    for key in gone {
                        self.delete(api, key, &mut out);
                    }
                    for (_, o) in listed {
                        self.apply(api, o, &mut out);
                    }
                }
                self.synced[api] = true;
                self.maybe_start(&mut out);
            }
            Input::Apply(o) if secret => self.apply_secret(o, &mut out),
            Input::Apply(o) => self.apply(api, o, &mut out),
            Input::Delete(key) if secret => {
                self.early_secrets.remove(&key);
                if self.held.remove(&key).is_some() {
                    out.events.push(SourceEvent::Delete(key));
                }
            }
            Input::Delete(key) => self.delete(api, key, &mut out),
            Input::Unavailable => {
                if !self.synced[api] {
                    self.synced[api] = true;
                    self.maybe_start(&mut out);
                }
            }
        }
        out
    }

    /// A Secret the caller fetched after [`Output::fetch`] asked for it.
    pub fn fetched(&mut self, secret: Object) -> Output {
        let mut out = Output::default();
        let key = secret.key();
        if self.started && self.is_referenced(&key) && !self.held.contains_key(&key) {
            self.held.insert(key, secret.clone());
            out.events.push(SourceEvent::Apply(secret));
        }
        out
    }

    fn maybe_start(&mut self, out: &mut Output) {
        if self.started || !self.synced.iter().all(|s| *s) {
            return;
        }
        self.started = true;
        let early = std::mem::take(&mut self.early_secrets);
        self.held = early
            .into_iter()
            .filter(|(k, _)| self.is_referenced(k))
            .collect();
        let mut all: BTreeMap<ObjectKey, Object> = BTreeMap::new();
        for objects in &self.known {
            for (k, o) in objects {
                all.entry(k.clone()).or_insert_with(|| o.clone());
            }
        }
        all.extend(self.held.iter().map(|(k, o)| (k.clone(), o.clone())));
        out.events
            .push(SourceEvent::Reset(all.into_values().collect()));
    }

    fn apply(&mut self, api: usize, object: Object, out: &mut Output) {
        let key = object.key();
        if self.known[api].get(&key) == Some(&object) {
            return;
        }
        self.known[api].insert(key.clone(), object.clone());
        let refs = secret_refs(&object);
        if self.started {
            out.events.push(SourceEvent::Apply(object));
        }
        self.set_refs(key, refs, out);
    }

    fn delete(&mut self, api: usize, key: ObjectKey, out: &mut Output) {
        if self.known[api].remove(&key).is_none() {
            return;
        }
        // The same kind and name under the other group (Weir's or K8sGateway's) stays.
        let alias = self
            .known
            .iter()
            .enumerate()
            .find(|(i, m)| *i != api && self.kinds[*i] == key.kind && m.contains_key(&key))
            .map(|(_, m)| m[&key].clone());
        match alias {
            Some(other) => {
                let refs = secret_refs(&other);
                if self.started {
                    out.events.push(SourceEvent::Apply(other));
                }
                self.set_refs(key, refs, out);
            }
            None => {
                if self.started {
                    out.events.push(SourceEvent::Delete(key.clone()));
                }
                self.set_refs(key, BTreeSet::new(), out);
            }
        }
    }

    fn apply_secret(&mut self, secret: Object, out: &mut Output) {
        let key = secret.key();
        if !self.started {
            self.early_secrets.insert(key, secret);
        } else if self.is_referenced(&key) {
            if self.held.get(&key) != Some(&secret) {
                self.held.insert(key, secret.clone());
                out.events.push(SourceEvent::Apply(secret));
            }
        } else if self.held.remove(&key).is_some() {
            out.events.push(SourceEvent::Delete(key));
        }
    }

    fn relist_secrets(&mut self, listed: BTreeMap<ObjectKey, Object>, out: &mut Output) {
        if !self.started {
            self.early_secrets = listed;
            return;
        }
        let gone: Vec<ObjectKey> = self
            .held
            .keys()
            .filter(|k| !listed.contains_key(*k))
            .cloned()
            .collect();
        for key in gone {
            self.held.remove(&key);
            out.events.push(SourceEvent::Delete(key));
        }
        for (_, s) in listed {
            if self.is_referenced(&s.key()) {
                self.apply_secret(s, out);
            }
        }
    }

    fn is_referenced(&self, secret: &ObjectKey) -> bool {
        self.refs.values().any(|r| r.contains(secret))
    }

    /// Records what `referrer` references now; fetches newly referenced Secrets and drops
    /// ones nothing references any more.
    fn set_refs(&mut self, referrer: ObjectKey, refs: BTreeSet<ObjectKey>, out: &mut Output) {
        let before = if refs.is_empty() {
            self.refs.remove(&referrer).unwrap_or_default()
        } else {
            self.refs.insert(referrer, refs.clone()).unwrap_or_default()
        };
        if !self.started {
            return;
        }
        for added in refs.difference(&before) {
            if !self.held.contains_key(added) && !out.fetch.contains(added) {
                out.fetch.push(added.clone());
            }
        }
        for removed in before.difference(&refs) {
            if !self.is_referenced(removed) && self.held.remove(removed).is_some() {
                out.events.push(SourceEvent::Delete(removed.clone()));
            }
        }
    }
}

/// The Secrets an object references: a Gateway's listener `certificateRefs` (core
/// Secrets only), an Upstream's `sslConfig.secretRef`. Namespaces default to the object's.
pub fn secret_refs(object: &Object) -> BTreeSet<ObjectKey> {
    let own_ns = object.namespace().unwrap_or_default().to_string();
    let mut out = BTreeSet::new();
    let key = |ns: Option<&str>, name: &str| {
        ObjectKey::namespaced(Kind::Secret, ns.unwrap_or(&own_ns), name)
    };
    match object {
        Object::Gateway(g) => {
            for listener in &g.spec.listeners {
                let refs = listener
                    .tls
                    .as_ref()
                    .and_then(|t| t.certificate_refs.as_ref());
                for r in refs.into_iter().flatten() {
                    let group = r.group.as_deref().unwrap_or("");
                    let kind = r.kind.as_deref().unwrap_or("Secret");
                    if group.is_empty() && kind == "Secret" {
                        out.insert(key(r.namespace.as_deref(), &r.name));
                    }
                }
            }
        }
        Object::Upstream(u) => {
            if let Some(r) = u
                .spec
                .common
                .ssl_config
                .as_ref()
                .and_then(|s| s.secret_ref.as_ref())
            {
                out.insert(key(r.namespace.as_deref(), &r.name));
            }
        }
        _ => {}
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::gateway_api::{Gateway, ObjectMeta, Service};

    fn meta(ns: &str, name: &str) -> ObjectMeta {
        ObjectMeta {
            namespace: Some(ns.into()),
            name: Some(name.into()),
            ..Default::default()
        }
    }

    fn service(ns: &str, name: &str) -> Object {
        Service {
            metadata: meta(ns, name),
            ..Default::default()
        }
        .into()
    }

    fn secret(ns: &str, name: &str) -> Object {
        k8s_openapi::api::core::v1::Secret {
            metadata: meta(ns, name),
            ..Default::default()
        }
        .into()
    }

    fn gateway(ns: &str, name: &str, cert: Option<&str>) -> Object {
        let mut value = serde_json::json!({
            "apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
            "metadata": {"namespace": ns, "name": name},
            "spec": {"gatewayClassName": "weir", "listeners": [
                {"name": "http", "port": 80, "protocol": "HTTP"}]},
        });
        if let Some(cert) = cert {
            value["spec"]["listeners"][0]["tls"] =
                serde_json::json!({"certificateRefs": [{"name": cert}]});
        }
        serde_json::from_value::<Gateway>(value).unwrap().into()
    }

    fn keys(event: &SourceEvent) -> Vec<String> {
        match event {
            SourceEvent::Reset(all) => all.iter().map(|o| o.key().to_string()).collect(),
            SourceEvent::Apply(o) => vec![format!("+{}", o.key())],
            SourceEvent::Delete(k) => vec![format!("-{k}")],
        }
    }

    fn all_keys(out: &Output) -> Vec<String> {
        out.events.iter().flat_map(keys).collect()
    }

    #[test]
    fn nothing_is_emitted_until_every_api_has_listed() {
        let mut m = Merger::new(vec![Kind::Service, Kind::Gateway]);
        assert!(m.handle(0, Input::Init).events.is_empty());
        assert!(
            m.handle(0, Input::InitApply(service("a", "web")))
                .events
                .is_empty()
        );
        assert!(m.handle(0, Input::InitDone).events.is_empty());
        assert!(
            m.handle(0, Input::Apply(service("a", "db")))
                .events
                .is_empty()
        );
        let out = m.handle(1, Input::Unavailable);
        assert_eq!(all_keys(&out), ["Service/a/db", "Service/a/web"]);
        assert!(m.started());
        let out = m.handle(0, Input::Delete(service("a", "db").key()));
        assert_eq!(all_keys(&out), ["-Service/a/db"]);
    }

    #[test]
    fn a_relist_deletes_what_it_no_longer_lists_and_only_for_its_api() {
        let mut m = Merger::new(vec![Kind::Service, Kind::Gateway]);
        m.handle(0, Input::InitApply(service("a", "keep")));
        m.handle(0, Input::InitApply(service("a", "gone")));
        m.handle(0, Input::InitDone);
        m.handle(1, Input::InitApply(gateway("a", "gw", None)));
        m.handle(1, Input::InitDone);
        m.handle(0, Input::Init);
        m.handle(0, Input::InitApply(service("a", "keep")));
        m.handle(0, Input::InitApply(service("a", "new")));
        let out = m.handle(0, Input::InitDone);
        // Unchanged objects are not re-emitted.
        assert_eq!(all_keys(&out), ["-Service/a/gone", "+Service/a/new"]);
    }

    #[test]
    fn an_alias_survives_the_other_groups_delete() {
        let mut m = Merger::new(vec![Kind::Service, Kind::Service]);
        m.handle(0, Input::InitDone);
        m.handle(1, Input::InitDone);
        m.handle(0, Input::Apply(service("a", "x")));
        m.handle(1, Input::Apply(service("a", "x")));
        let out = m.handle(0, Input::Delete(service("a", "x").key()));
        assert_eq!(all_keys(&out), ["+Service/a/x"]);
        let out = m.handle(1, Input::Delete(service("a", "x").key()));
        assert_eq!(all_keys(&out), ["-Service/a/x"]);
    }

    #[test]
    fn only_referenced_secrets_are_kept() {
        let mut m = Merger::new(vec![Kind::Gateway, Kind::Secret]);
        m.handle(1, Input::InitApply(secret("a", "cert")));
        m.handle(1, Input::InitApply(secret("a", "other")));
        m.handle(1, Input::InitDone);
        m.handle(0, Input::InitApply(gateway("a", "gw", Some("cert"))));
        let out = m.handle(0, Input::InitDone);
        assert_eq!(all_keys(&out), ["Gateway/a/gw", "Secret/a/cert"]);
        assert_eq!(m.secrets_held(), 1);
        // An unreferenced Secret is dropped as it arrives.
        assert!(
            m.handle(1, Input::Apply(secret("a", "third")))
                .events
                .is_empty()
        );
        // A new reference to a Secret not held asks for it to be fetched.
        let out = m.handle(0, Input::Apply(gateway("a", "gw", Some("other"))));
        assert_eq!(out.fetch, [secret("a", "other").key()]);
        // The old one is no longer referenced: deleted.
        assert_eq!(all_keys(&out), ["+Gateway/a/gw", "-Secret/a/cert"]);
        let out = m.fetched(secret("a", "other"));
        assert_eq!(all_keys(&out), ["+Secret/a/other"]);
        let out = m.handle(0, Input::Delete(gateway("a", "gw", None).key()));
        assert_eq!(all_keys(&out), ["-Gateway/a/gw", "-Secret/a/other"]);
        assert_eq!(m.secrets_held(), 0);
    }
}
