//! What the SotW and delta state machines share: the stream's identity and sinks, the
//! subscription rules, and the make-before-break walk over resource types.

use std::cell::RefCell;
use std::sync::Arc;

use crate::model::ObjectKey;
use crate::xds::bind::View;
use crate::xds::names::{NameSet, Names};
use crate::xds::{NackReport, NackReports, ResourceType, XdsMetrics};

/// The identity of a stream and where it reports.
#[derive(Debug)]
pub(crate) struct StreamCtx {
    /// The Gateway the proxy serves.
    pub gateway: ObjectKey,
    /// The proxy's `node.id`.
    pub node: String,
    pub nacks: NackReports,
    pub metrics: Arc<XdsMetrics>,
    /// Where subscribed names are interned (shared by the server's streams).
    pub names: Names,
    next_nonce: u64,
}

impl StreamCtx {
    pub fn new(
        gateway: ObjectKey,
        node: String,
        nacks: NackReports,
        metrics: Arc<XdsMetrics>,
        names: Names,
    ) -> Self {
        Self {
            gateway,
            node,
            nacks,
            metrics,
            names,
            next_nonce: 0,
        }
    }

    /// A nonce unique within the stream.
    pub fn nonce(&mut self) -> String {
        self.next_nonce += 1;
        self.next_nonce.to_string()
    }

    pub fn ack(&self, ty: ResourceType, version: &str) {
        tracing::debug!(%ty, version, "ACK");
        self.metrics.acked(ty);
        self.nacks.accepted(&self.gateway, ty, version);
    }

    pub fn nack(&self, ty: ResourceType, version: &str, names: Vec<String>, message: String) {
        tracing::warn!(
            %ty,
            version,
            resources = ?names,
            message,
            "proxy rejected configuration (NACK); it keeps its last good configuration"
        );
        self.metrics.nacked(ty);
        self.nacks.record(NackReport {
            gateway: self.gateway.clone(),
            node: self.node.clone(),
            resource_type: ty,
            resource_names: names,
            message,
            version: version.to_string(),
        });
    }
}

/// What a proxy subscribed to for one type.
#[derive(Debug, Default)]
pub(crate) struct Subscription {
    /// Whether the proxy has asked for this type on this stream at all.
    pub requested: bool,
    /// Whether the subscription is to everything (legacy empty list, or `*`).
    pub wildcard: bool,
    /// SotW only: the first request had no names and no named request followed.
    legacy_wildcard: bool,
    /// Explicitly subscribed names (`*` excluded), interned: shared with other streams.
    pub names: NameSet,
}

impl Subscription {
    /// A SotW request replaces the subscription.
    pub fn sotw_update(&mut self, names: &[String], interned: &Names) {
        if !self.requested {
            self.legacy_wildcard = names.is_empty();
        } else if !names.is_empty() {
            self.legacy_wildcard = false;
        }
        self.requested = true;
        self.wildcard =
            names.iter().any(|n| n == "*") || (names.is_empty() && self.legacy_wildcard);
        self.names = interned.set_of(names.iter().map(String::as_str).filter(|n| *n != "*"));
    }

    /// A delta request changes the subscription.
    pub fn delta_update(&mut self, subscribe: &[String], unsubscribe: &[String], interned: &Names) {
        if !self.requested && subscribe.is_empty() {
            self.wildcard = true;
        }
        self.requested = true;
        self.wildcard |= subscribe.iter().any(|n| n == "*");
        if unsubscribe.iter().any(|n| n == "*") {
            self.wildcard = false;
        }
        fn named(names: &[String]) -> impl Iterator<Item = &str> {
            names.iter().map(String::as_str).filter(|n| *n != "*")
        }
        if named(subscribe).next().is_some() || named(unsubscribe).next().is_some() {
            self.names = interned.change_set(&self.names, named(subscribe), named(unsubscribe));
        }
    }

    /// Whether the resource with this name is subscribed to.
    pub fn wants(&self, name: &str) -> bool {
        self.wildcard || self.names.contains(name)
    }
}

/// Remembers what [`Machine::plan`] found for one type while nothing it depends on
/// changed: the view served (by identity), the type's stream state (a generation bumped
/// by [`PlanMemo::changed`] on every request and response of the type) and
/// `retain_stale`. Every ACK and snapshot walks all types, several plans per walk, and a
/// plan looks at every resource; the memo makes the walks that change nothing cheap.
#[derive(Debug, Default)]
pub(crate) struct PlanMemo<T> {
    generation: u64,
    last: RefCell<Option<(View, u64, bool, T)>>,
}

impl<T: Clone> PlanMemo<T> {
    /// The type's stream state changed: what was remembered no longer holds.
    pub fn changed(&mut self) {
        self.generation += 1;
    }

    /// The remembered value for (`view`, `retain_stale`), else `compute()`'s, remembered.
    pub fn get_or(&self, view: &View, retain_stale: bool, compute: impl FnOnce() -> T) -> T {
        if let Some((v, generation, retain, value)) = &*self.last.borrow()
            && v.same(view)
            && *generation == self.generation
            && *retain == retain_stale
        {
            return value.clone();
        }
        let value = compute();
        *self.last.borrow_mut() =
            Some((view.clone(), self.generation, retain_stale, value.clone()));
        value
    }
}

/// A SotW or delta state machine, as the make-before-break walk sees it.
pub(crate) trait Machine {
    /// What to send for one type.
    type Plan;
    /// The response message.
    type Response;

    /// Whether the proxy subscribed to this type on this stream.
    fn requested(&self, ty: ResourceType) -> bool {
        self.subscription(ty).requested
    }
    /// What the proxy subscribed to for this type.
    fn subscription(&self, ty: ResourceType) -> &Subscription;
    /// Whether the proxy rejected (NACKed) the latest response of this type.
    fn rejected_latest(&self, ty: ResourceType) -> bool;
    /// Whether a response of this type awaits its ACK or NACK.
    fn in_flight(&self, ty: ResourceType) -> bool;
    /// What the proxy lacks of this type, if anything; `retain_stale` keeps resources
    /// that left the snapshot (clusters and endpoints that routes the proxy has not yet
    /// replaced may still use).
    fn plan(&self, ty: ResourceType, view: &View, retain_stale: bool) -> Option<Self::Plan>;
    /// Builds the response and records it as in flight.
    fn send(&mut self, ty: ResourceType, view: &View, plan: Self::Plan) -> Self::Response;
}

/// Types whose pending updates hold back the listeners and routes that may use them.
fn holds_back_later(ty: ResourceType) -> bool {
    matches!(
        ty,
        ResourceType::Cluster | ResourceType::Endpoint | ResourceType::Listener
    )
}

/// Types that wait for earlier types' updates to be acknowledged.
fn waits_for_earlier(ty: ResourceType) -> bool {
    matches!(
        ty,
        ResourceType::Listener | ResourceType::ScopedRoute | ResourceType::Route
    )
}

/// Sends what the proxy lacks, type by type in make-before-break order.
///
/// Listeners and routes wait while a cluster update is unacknowledged (or clusters,
/// endpoints or listeners have more to send after an unacknowledged update), and while
/// the proxy has not yet subscribed to the endpoints of every EDS cluster it took: a new cluster warms until its endpoints arrive, and a route to a warming
/// cluster answers "no cluster" (Envoy asks for a new cluster's endpoints only once it
/// has the cluster, so they cannot go out with it).
pub(crate) fn walk<M: Machine>(machine: &mut M, view: &View) -> Vec<M::Response> {
    let settled =
        |m: &M, ty| !m.requested(ty) || (!m.in_flight(ty) && m.plan(ty, view, false).is_none());
    // Clusters (and their endpoints) that left the snapshot stay until the proxy has
    // acknowledged the listeners and routes that stopped using them.
    let retain_stale = [
        ResourceType::Listener,
        ResourceType::ScopedRoute,
        ResourceType::Route,
    ]
    .into_iter()
    .any(|ty| !settled(machine, ty));
    let mut held_back = false;
    let mut endpoints_subscribed = None;
    let mut out = Vec::new();
    for ty in ResourceType::ALL {
        let retain = retain_stale && matches!(ty, ResourceType::Cluster | ResourceType::Endpoint);
        if machine.in_flight(ty) {
            // Anything more is sent after its ACK arrives, and what depends on it waits
            // too. Clusters hold back even with nothing more to send: the proxy has yet
            // to ask for a new cluster's endpoints. (What was sent of the other types
            // reaches the proxy before anything sent later on the stream.)
            if ty == ResourceType::Cluster || machine.plan(ty, view, retain).is_some() {
                held_back |= holds_back_later(ty);
            }
            continue;
        }
        let Some(plan) = machine.plan(ty, view, retain) else {
            continue;
        };
        if waits_for_earlier(ty)
            && (held_back
                || !*endpoints_subscribed
                    .get_or_insert_with(|| subscribes_endpoints_of_clusters(machine, view)))
        {
            continue;
        }
        out.push(machine.send(ty, view, plan));
        // The proxy asks for a new cluster's endpoints after taking the cluster.
        held_back |= ty == ResourceType::Cluster;
    }
    out
}

/// Whether the proxy subscribes to the endpoints of every EDS cluster of `view` it took
/// (an EDS cluster is one the view has endpoints for, under the cluster's name). A proxy
/// that rejected its latest clusters keeps its old ones, so it is not waited for; nor is
/// one that subscribes to clusters by name (it asks for what its routes use).
fn subscribes_endpoints_of_clusters<M: Machine>(machine: &M, view: &View) -> bool {
    let clusters = machine.subscription(ResourceType::Cluster);
    let endpoints = machine.subscription(ResourceType::Endpoint);
    // Not `!endpoints.requested`: a proxy that started with no EDS cluster has not
    // asked for endpoints yet when its first one arrives.
    if !clusters.requested || endpoints.wildcard || machine.rejected_latest(ResourceType::Cluster) {
        return true;
    }
    // All three lists are in name order: one merge walk, no lookups.
    let mut cluster_names = view
        .resources(ResourceType::Cluster)
        .iter()
        .map(|r| &r.name)
        .peekable();
    let mut subscribed = endpoints.names.iter().map(|s| &**s).peekable();
    view.resources(ResourceType::Endpoint).iter().all(|e| {
        while cluster_names.next_if(|c| **c < e.name).is_some() {}
        if cluster_names.peek() != Some(&&e.name) || !clusters.wants(&e.name) {
            return true;
        }
        while subscribed.next_if(|s| *s < e.name.as_str()).is_some() {}
        subscribed.peek() == Some(&e.name.as_str())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(n: &[&str]) -> Vec<String> {
        n.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn sotw_legacy_wildcard_lasts_until_names_are_requested() {
        let mut sub = Subscription::default();
        sub.sotw_update(&[], &Names::default());
        assert!(sub.wildcard);
        sub.sotw_update(&[], &Names::default());
        assert!(sub.wildcard);
        sub.sotw_update(&names(&["a"]), &Names::default());
        assert!(!sub.wildcard && sub.wants("a") && !sub.wants("b"));
        sub.sotw_update(&[], &Names::default());
        assert!(!sub.wildcard && !sub.wants("a"));
        sub.sotw_update(&names(&["*", "a"]), &Names::default());
        assert!(sub.wildcard);
    }

    #[test]
    fn sotw_named_first_request_is_not_a_wildcard() {
        let mut sub = Subscription::default();
        sub.sotw_update(&names(&["a"]), &Names::default());
        sub.sotw_update(&[], &Names::default());
        assert!(!sub.wildcard);
    }

    #[test]
    fn delta_wildcard_rules() {
        let mut sub = Subscription::default();
        sub.delta_update(&[], &[], &Names::default());
        assert!(sub.wildcard);
        sub.delta_update(&names(&["a"]), &[], &Names::default());
        assert!(sub.wildcard);
        sub.delta_update(&[], &names(&["*"]), &Names::default());
        assert!(!sub.wildcard && sub.wants("a"));

        let mut sub = Subscription::default();
        sub.delta_update(&names(&["a"]), &[], &Names::default());
        assert!(!sub.wildcard);
        sub.delta_update(&names(&["*"]), &names(&["a"]), &Names::default());
        assert!(sub.wildcard);
    }
}
