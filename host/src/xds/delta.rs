//! The delta (incremental) state machine of one ADS stream: requests and snapshots in,
//! `DeltaDiscoveryResponse`s out. Synchronous and free of I/O; the server drives it.
//!
//! The stream tracks, per type, the version of every resource the proxy has (seeded
//! from `initial_resource_versions`, updated as responses are sent) and sends only the
//! difference. A sent version counts as held even if NACKed, which is what keeps a
//! rejected version from being re-sent; the next change of that resource is sent.
//!
//! A name the proxy subscribed to that the snapshot does not have is listed once in
//! `removed_resources` (the protocol's "resource does not exist"), so the proxy stops
//! waiting for it; it is sent when it appears.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use envoy_types::pb::envoy::service::discovery::v3::DeltaDiscoveryRequest;

use crate::xds::bind::{Resources, View};
use crate::xds::names::Names;
use crate::xds::stream::{Machine, PlanMemo, StreamCtx, Subscription, walk};
use crate::xds::wire::DeltaResponse;
use crate::xds::{Resource, ResourceType};

/// One delta stream.
#[derive(Debug)]
pub(crate) struct Delta {
    ctx: StreamCtx,
    view: Option<View>,
    types: [TypeState; ResourceType::ALL.len()],
}

#[derive(Debug, Default)]
struct TypeState {
    sub: Subscription,
    /// The response awaiting its ACK or NACK.
    in_flight: Option<InFlight>,
    /// Name → version of every resource the proxy has (as far as we know), unless
    /// `held_view` stands for it (then this is empty).
    held: BTreeMap<String, String>,
    /// The proxy holds exactly the resources of this view that the subscription wants
    /// (which has not changed since), except the names in `unsent`: what `held` would
    /// list, in one pointer. The state of a stream in sync, so a stream keeps no
    /// per-resource list of its own.
    held_view: Option<View>,
    /// With `held_view`: names subscribed since the proxy came to hold it, which it does
    /// not hold yet (a proxy subscribes to a new cluster's endpoints one name at a time;
    /// listing a thousand held names for each would cost more than the rest of a pass).
    unsent: BTreeSet<String>,
    /// Subscribed names the proxy was told do not exist (and does not hold).
    absent: BTreeSet<String>,
    /// Whether anything was sent for this type on this stream.
    sent_once: bool,
    /// The latest response was NACKed.
    rejected_latest: bool,
    /// Whether there was anything to send, per view.
    memo: PlanMemo<bool>,
    /// A view the proxy holds exactly (every subscribed resource at its version, nothing
    /// else, but for `unsent`): the next diff walks it against the new view by pointer
    /// instead of looking up every name.
    synced: RefCell<Option<View>>,
    /// The proxy may hold resources it no longer subscribes to (it dropped a wildcard):
    /// what it holds is then not a view's subscribed set, so `synced` stays unused.
    stray: bool,
}

impl TypeState {
    /// Whether the proxy holds `name` when `held_view` (or the synced view) has it: it is
    /// subscribed and was not subscribed to after the proxy came to hold that view.
    fn holds_if_in_view(&self, name: &str) -> bool {
        self.sub.wants(name) && !self.unsent.contains(name)
    }

    /// The version of `name` the proxy holds, if any.
    fn held_version(&self, ty: ResourceType, name: &str) -> Option<&str> {
        match &self.held_view {
            Some(view) => view
                .resources(ty)
                .get(name)
                .filter(|_| self.holds_if_in_view(name))
                .map(|r| r.version.as_str()),
            None => self.held.get(name).map(String::as_str),
        }
    }

    /// The names of what the proxy holds.
    fn held_names(&self, ty: ResourceType) -> Box<dyn Iterator<Item = &str> + '_> {
        match &self.held_view {
            Some(view) => Box::new(
                view.resources(ty)
                    .iter()
                    .filter(|r| self.holds_if_in_view(&r.name))
                    .map(|r| r.name.as_str()),
            ),
            None => Box::new(self.held.keys().map(String::as_str)),
        }
    }

    /// Once the proxy is known to hold exactly a view (`synced`), keeps that one pointer
    /// instead of a name → version list: a list built while stale resources were
    /// retained (a stream's first sync, while its listeners and routes are still
    /// unacknowledged) would otherwise stay for the stream's life, ~170 bytes a name.
    fn compact(&mut self) {
        if self.held_view.is_some() || self.stray {
            return;
        }
        if let Some(view) = self.synced.get_mut().clone() {
            self.held = BTreeMap::new();
            self.held_view = Some(view);
        }
    }

    /// Lists what `held_view` stands for in `held`, before the held resources change
    /// one by one.
    fn list_held(&mut self, ty: ResourceType) {
        if let Some(view) = self.held_view.take() {
            self.held = view
                .resources(ty)
                .iter()
                .filter(|r| self.holds_if_in_view(&r.name))
                .map(|r| (r.name.clone(), r.version.clone()))
                .collect();
        }
        self.unsent.clear();
    }

    /// Changes the subscription. A proxy holding a view keeps it, with the names it
    /// newly subscribed to marked as not held (`unsent`); otherwise what it holds is
    /// listed first.
    fn resubscribe(&mut self, ty: ResourceType, req: &DeltaDiscoveryRequest, interned: &Names) {
        let drops_wildcard =
            self.sub.wildcard && req.resource_names_unsubscribe.iter().any(|n| n == "*");
        if self.held_view.is_some() && !self.stray && !drops_wildcard {
            for name in &req.resource_names_subscribe {
                if name != "*" && !self.sub.wants(name) {
                    self.unsent.insert(name.clone());
                }
            }
        } else {
            self.synced.replace(None);
            self.list_held(ty);
        }
        let was_wildcard = self.sub.wildcard;
        self.sub.delta_update(
            &req.resource_names_subscribe,
            &req.resource_names_unsubscribe,
            interned,
        );
        // It may hold what it no longer subscribes to: not a view's subscribed set.
        self.stray |= was_wildcard && !self.sub.wildcard;
        self.forget_unsubscribed(req);
    }

    /// Forgets what the proxy holds, or was told is absent, of names it unsubscribed.
    fn forget_unsubscribed(&mut self, req: &DeltaDiscoveryRequest) {
        for name in &req.resource_names_unsubscribe {
            if !self.sub.wants(name) {
                self.held.remove(name);
                self.absent.remove(name);
                self.unsent.remove(name);
            }
        }
    }

    /// What the proxy lacks of this type in `view`, if anything; `retain_stale` keeps
    /// what it holds that left the view.
    fn diff(&self, ty: ResourceType, view: &View, retain_stale: bool) -> Option<Plan> {
        let synced = self.synced.borrow().clone().filter(|_| !self.stray);
        let (plan, kept_stale) = match synced {
            Some(from) => {
                let (fast, kept_stale) = self.diff_from(ty, &from, view, retain_stale);
                let fast = self.add_unsent(ty, view, fast);
                debug_assert_eq!(
                    (fast.as_ref().map(Plan::summary), kept_stale),
                    {
                        let (full, kept) = self.full_diff(ty, view, retain_stale);
                        (full.as_ref().map(Plan::summary), kept)
                    },
                    "the walk from the synced view and the full diff disagree"
                );
                (fast, kept_stale)
            }
            _ => self.full_diff(ty, view, retain_stale),
        };
        // With nothing stale kept, the proxy will hold exactly this view's subscribed
        // resources (also when stale ones could have been kept, but there were none).
        let exact = !kept_stale && !self.stray;
        if plan.is_none() && exact {
            // Nothing to send: the proxy holds exactly this view.
            self.synced.replace(Some(view.clone()));
        }
        plan.map(|p| Plan {
            complete: exact.then(|| view.clone()),
            ..p
        })
    }

    /// Adds to `plan` the names subscribed since the proxy came to hold a view
    /// (`unsent`, left out of `diff_from`'s walk): each is sent if `view` has it, else
    /// reported as not existing (once).
    fn add_unsent(&self, ty: ResourceType, view: &View, plan: Option<Plan>) -> Option<Plan> {
        let current = view.resources(ty);
        let mut updated = Vec::new();
        let mut removed = Vec::new();
        for name in &self.unsent {
            match current.get(name) {
                Some(r) => updated.push(r.clone()),
                None if !self.absent.contains(name) => removed.push(name.clone()),
                None => {}
            }
        }
        if updated.is_empty() && removed.is_empty() {
            return plan;
        }
        let mut plan = plan.unwrap_or(Plan {
            updated: Vec::new(),
            removed: Vec::new(),
            complete: None,
        });
        plan.updated.append(&mut updated);
        plan.removed.append(&mut removed);
        Some(plan)
    }

    /// What changed between `from` (which the proxy holds exactly, but for `unsent`)
    /// and `to`, among the subscribed resources: a walk of both name-ordered lists,
    /// equal resources told by pointer. With `retain_stale`, what left is kept (not
    /// removed), and the second value says whether anything was.
    fn diff_from(
        &self,
        ty: ResourceType,
        from: &View,
        to: &View,
        retain_stale: bool,
    ) -> (Option<Plan>, bool) {
        let wants = |name: &str| self.holds_if_in_view(name);
        let mut updated = Vec::new();
        let mut removed = Vec::new();
        let mut kept_stale = false;
        let mut old = from.resources(ty).iter().peekable();
        let mut new = to.resources(ty).iter().peekable();
        loop {
            match (old.peek(), new.peek()) {
                (None, None) => break,
                (Some(o), Some(n)) if Arc::ptr_eq(o, n) => {
                    old.next();
                    new.next();
                }
                (Some(o), Some(n)) if o.name == n.name => {
                    if o.version != n.version && wants(&n.name) {
                        updated.push((*n).clone());
                    }
                    old.next();
                    new.next();
                }
                (Some(o), n) if n.is_none_or(|n| o.name < n.name) => {
                    if wants(&o.name) {
                        if retain_stale {
                            kept_stale = true;
                        } else {
                            removed.push(o.name.clone());
                        }
                    }
                    old.next();
                }
                (_, Some(n)) => {
                    if wants(&n.name) {
                        updated.push((*n).clone());
                    }
                    new.next();
                }
                (Some(_), None) => unreachable!("handled above"),
            }
        }
        let first_wildcard = self.sub.wildcard && !self.sent_once;
        let plan = (!updated.is_empty() || !removed.is_empty() || first_wildcard).then_some(Plan {
            updated,
            removed,
            complete: None,
        });
        (plan, kept_stale)
    }

    /// What the proxy lacks, looked up name by name against what it holds; the second
    /// value says whether `retain_stale` kept anything.
    fn full_diff(&self, ty: ResourceType, view: &View, retain_stale: bool) -> (Option<Plan>, bool) {
        let current = view.resources(ty);
        let updated: Vec<Arc<Resource>> = current
            .iter()
            .filter(|r| {
                self.sub.wants(&r.name)
                    && self.held_version(ty, &r.name) != Some(r.version.as_str())
            })
            .cloned()
            .collect();
        let mut stale = self
            .held_names(ty)
            .filter(|name| current.get(name).is_none());
        let (mut removed, kept_stale): (Vec<String>, bool) = if retain_stale {
            (Vec::new(), stale.next().is_some())
        } else {
            (stale.map(str::to_string).collect(), false)
        };
        // Subscribed by name, never held, not in the snapshot: "does not exist".
        removed.extend(
            self.sub
                .names
                .iter()
                .map(|name| &**name)
                .filter(|name| {
                    current.get(name).is_none()
                        && self.held_version(ty, name).is_none()
                        && !self.absent.contains(*name)
                })
                .map(str::to_string),
        );
        // A wildcard subscription is always answered once, even with nothing.
        let first_wildcard = self.sub.wildcard && !self.sent_once;
        let plan = (!updated.is_empty() || !removed.is_empty() || first_wildcard).then_some(Plan {
            updated,
            removed,
            complete: None,
        });
        (plan, kept_stale)
    }
}

impl Plan {
    /// Names and versions updated and names removed, sorted (to compare plans).
    fn summary(&self) -> (Vec<(String, String)>, Vec<String>) {
        let mut updated: Vec<(String, String)> = self
            .updated
            .iter()
            .map(|r| (r.name.clone(), r.version.clone()))
            .collect();
        updated.sort();
        let mut removed = self.removed.clone();
        removed.sort();
        (updated, removed)
    }
}

#[derive(Debug)]
struct InFlight {
    nonce: String,
    version: String,
    /// What the response carried, for a NACK to name (shared, not copied: a first
    /// response carries every resource of its type).
    updated: Vec<Arc<Resource>>,
    removed: Vec<String>,
}

impl InFlight {
    /// The names of the resources the response carried or removed.
    fn names(&self) -> Vec<String> {
        self.updated
            .iter()
            .map(|r| r.name.clone())
            .chain(self.removed.iter().cloned())
            .collect()
    }
}

/// What one response carries.
#[derive(Debug)]
pub(crate) struct Plan {
    updated: Vec<Arc<Resource>>,
    removed: Vec<String>,
    /// The plan brings the proxy exactly to this view (nothing stale kept).
    complete: Option<View>,
}

impl Delta {
    pub fn new(ctx: StreamCtx) -> Self {
        Self {
            ctx,
            view: None,
            types: Default::default(),
        }
    }

    /// Handles one request from the proxy.
    pub fn on_request(&mut self, mut req: DeltaDiscoveryRequest) -> Vec<DeltaResponse> {
        let Some(ty) = ResourceType::from_type_url(&req.type_url) else {
            tracing::warn!(
                type_url = req.type_url,
                "ignoring a request for a type Weir does not serve"
            );
            return Vec::new();
        };
        let state = &mut self.types[ty.index()];
        if !state.sub.requested {
            // Only the first request of a type on a stream carries what the proxy has.
            state.held = std::mem::take(&mut req.initial_resource_versions)
                .into_iter()
                .collect();
            state.held_view = None;
            state.synced.replace(None);
        }
        if !req.response_nonce.is_empty() {
            if state
                .in_flight
                .as_ref()
                .is_some_and(|f| f.nonce == req.response_nonce)
            {
                let answered = state.in_flight.take();
                if let Some(answered) = answered {
                    state.rejected_latest = req.error_detail.is_some();
                    match &req.error_detail {
                        Some(error) => self.ctx.nack(
                            ty,
                            &answered.version,
                            answered.names(),
                            error.message.clone(),
                        ),
                        None => self.ctx.ack(ty, &answered.version),
                    }
                }
            } else {
                // Stale: it acknowledges nothing, but its subscription changes count.
                tracing::debug!(%ty, nonce = req.response_nonce, "stale nonce");
            }
        }
        let state = &mut self.types[ty.index()];
        let first = !state.sub.requested;
        if first {
            state.sub.delta_update(
                &req.resource_names_subscribe,
                &req.resource_names_unsubscribe,
                &self.ctx.names,
            );
            // Reported versions of resources it does not subscribe to: what it holds is
            // not a view's subscribed set.
            state.stray |= state.held.keys().any(|name| !state.sub.wants(name));
            state.forget_unsubscribed(&req);
        } else if !req.resource_names_subscribe.is_empty()
            || !req.resource_names_unsubscribe.is_empty()
        {
            state.resubscribe(ty, &req, &self.ctx.names);
        }
        state.memo.changed();
        self.respond()
    }

    /// Takes a new snapshot (`None`: the Gateway is unknown) and sends what changed.
    #[cfg(test)]
    pub fn on_snapshot(
        &mut self,
        snapshot: Option<Arc<crate::xds::Snapshot>>,
    ) -> Vec<DeltaResponse> {
        self.on_view(snapshot.map(View::shared))
    }

    /// Takes what the stream now serves (`None`: the Gateway is unknown) and sends what
    /// changed.
    pub fn on_view(&mut self, view: Option<View>) -> Vec<DeltaResponse> {
        self.view = view;
        self.respond()
    }

    fn respond(&mut self) -> Vec<DeltaResponse> {
        let out = match self.view.clone() {
            Some(view) => walk(self, &view),
            None => Vec::new(),
        };
        for state in &mut self.types {
            state.compact();
        }
        out
    }
}

impl Machine for Delta {
    type Plan = Plan;
    type Response = DeltaResponse;

    fn subscription(&self, ty: ResourceType) -> &Subscription {
        &self.types[ty.index()].sub
    }

    fn rejected_latest(&self, ty: ResourceType) -> bool {
        self.types[ty.index()].rejected_latest
    }

    fn in_flight(&self, ty: ResourceType) -> bool {
        self.types[ty.index()].in_flight.is_some()
    }

    fn plan(&self, ty: ResourceType, view: &View, retain_stale: bool) -> Option<Plan> {
        let state = &self.types[ty.index()];
        if !state.sub.requested {
            return None;
        }
        let mut plan = None;
        let any = state.memo.get_or(view, retain_stale, || {
            plan = state.diff(ty, view, retain_stale);
            plan.is_some()
        });
        match plan {
            Some(plan) => Some(plan),
            None if any => state.diff(ty, view, retain_stale),
            None => None,
        }
    }

    fn send(&mut self, ty: ResourceType, view: &View, plan: Plan) -> DeltaResponse {
        let nonce = self.ctx.nonce();
        tracing::debug!(
            %ty,
            version = view.version(),
            nonce,
            updated = plan.updated.len(),
            removed = plan.removed.len(),
            "sending"
        );
        self.ctx.metrics.pushed(ty);
        let state = &mut self.types[ty.index()];
        if plan.complete.is_some() {
            // The proxy will hold exactly the view's subscribed resources.
            state.held.clear();
            state.unsent.clear();
            state.held_view = plan.complete.clone();
        } else {
            state.list_held(ty);
            for r in &plan.updated {
                state.held.insert(r.name.clone(), r.version.clone());
            }
            for name in &plan.removed {
                state.held.remove(name);
            }
        }
        for r in &plan.updated {
            state.absent.remove(&r.name);
        }
        for name in &plan.removed {
            if state.sub.names.contains(name.as_str()) {
                state.absent.insert(name.clone());
            }
        }
        state.sent_once = true;
        state.synced.replace(plan.complete.clone());
        state.memo.changed();
        // A response of every resource of the type (a proxy's first, typically) shares
        // one encoding of them with every other stream sending the same.
        let shared = match view.resources(ty) {
            Resources::Shared(all) if all.is_all(&plan.updated) => Some(all.delta_entries()),
            _ => None,
        };
        state.in_flight = Some(InFlight {
            nonce: nonce.clone(),
            version: view.version().to_string(),
            updated: plan.updated.clone(),
            removed: plan.removed.clone(),
        });
        DeltaResponse {
            system_version_info: view.version().to_string(),
            resources: plan.updated,
            shared,
            type_url: ty.type_url(),
            removed_resources: plan.removed,
            nonce,
        }
    }
}
