//! The state-of-the-world state machine of one ADS stream: requests and snapshots in,
//! `DiscoveryResponse`s out. Synchronous and free of I/O; the server drives it.

use std::sync::Arc;

use envoy_types::pb::envoy::service::discovery::v3::DiscoveryRequest;

use crate::xds::bind::{Resources, View};
use crate::xds::snapshot::list_version;
use crate::xds::stream::{Machine, PlanMemo, StreamCtx, Subscription, walk};
use crate::xds::wire::SotwResponse;
use crate::xds::{Resource, ResourceType};

/// One SotW stream.
#[derive(Debug)]
pub(crate) struct Sotw {
    ctx: StreamCtx,
    view: Option<View>,
    types: [TypeState; ResourceType::ALL.len()],
}

#[derive(Debug, Default)]
struct TypeState {
    sub: Subscription,
    /// The latest response awaits its ACK or NACK.
    in_flight: bool,
    /// The latest response sent.
    last: Option<Sent>,
    /// The latest version the proxy NACKed: never sent again on this stream.
    rejected: Option<String>,
    /// The list version and size of what the proxy should have, per view.
    memo: PlanMemo<(String, usize)>,
}

impl TypeState {
    /// What the proxy should have of this type: the subscribed resources of `view`, and
    /// with `retain_stale` those of the last response that left it.
    fn select(&self, ty: ResourceType, view: &View, retain_stale: bool) -> Vec<Arc<Resource>> {
        let fresh = view
            .resources(ty)
            .iter()
            .filter(|r| self.sub.wants(&r.name))
            .cloned();
        let Some(last) = self.last.as_ref().filter(|_| retain_stale) else {
            return fresh.collect();
        };
        // Both lists are in name order: merge them, the view's resource winning a name.
        let mut stale = last
            .resources
            .iter()
            .filter(|r| self.sub.wants(&r.name))
            .peekable();
        let mut resources = Vec::new();
        for r in fresh {
            while let Some(old) = stale.next_if(|old| old.name < r.name) {
                resources.push(old.clone());
            }
            stale.next_if(|old| old.name == r.name);
            resources.push(r);
        }
        resources.extend(stale.cloned());
        resources
    }
}

#[derive(Debug)]
struct Sent {
    version: String,
    nonce: String,
    /// In name order; shared, not copied (a proxy's clusters and endpoints are thousands).
    resources: Vec<Arc<Resource>>,
}

/// The list version of one response; its resources are gathered when it is sent.
#[derive(Debug)]
pub(crate) struct Plan {
    version: String,
    retain_stale: bool,
}

impl Sotw {
    pub fn new(ctx: StreamCtx) -> Self {
        Self {
            ctx,
            view: None,
            types: Default::default(),
        }
    }

    /// Handles one request from the proxy.
    pub fn on_request(&mut self, req: DiscoveryRequest) -> Vec<SotwResponse> {
        let Some(ty) = ResourceType::from_type_url(&req.type_url) else {
            tracing::warn!(
                type_url = req.type_url,
                "ignoring a request for a type Weir does not serve"
            );
            return Vec::new();
        };
        let state = &mut self.types[ty.index()];
        if !req.response_nonce.is_empty() {
            let Some(last) = state
                .last
                .as_ref()
                .filter(|last| last.nonce == req.response_nonce)
            else {
                tracing::debug!(%ty, nonce = req.response_nonce, "ignoring a stale request");
                return Vec::new();
            };
            match &req.error_detail {
                Some(error) => {
                    let version = last.version.clone();
                    let names = last.resources.iter().map(|r| r.name.clone()).collect();
                    state.rejected = Some(version.clone());
                    self.ctx.nack(ty, &version, names, error.message.clone());
                }
                None => self.ctx.ack(ty, &last.version),
            }
        }
        let state = &mut self.types[ty.index()];
        state.in_flight = false;
        state.sub.sotw_update(&req.resource_names, &self.ctx.names);
        state.memo.changed();
        self.respond()
    }

    /// Takes a new snapshot (`None`: the Gateway is unknown) and sends what changed.
    #[cfg(test)]
    pub fn on_snapshot(
        &mut self,
        snapshot: Option<Arc<crate::xds::Snapshot>>,
    ) -> Vec<SotwResponse> {
        self.on_view(snapshot.map(View::shared))
    }

    /// Takes what the stream now serves (`None`: the Gateway is unknown) and sends what
    /// changed.
    pub fn on_view(&mut self, view: Option<View>) -> Vec<SotwResponse> {
        self.view = view;
        self.respond()
    }

    fn respond(&mut self) -> Vec<SotwResponse> {
        match self.view.clone() {
            Some(view) => walk(self, &view),
            None => Vec::new(),
        }
    }
}

impl Machine for Sotw {
    type Plan = Plan;
    type Response = SotwResponse;

    fn subscription(&self, ty: ResourceType) -> &Subscription {
        &self.types[ty.index()].sub
    }

    fn rejected_latest(&self, ty: ResourceType) -> bool {
        let state = &self.types[ty.index()];
        state
            .last
            .as_ref()
            .is_some_and(|last| state.rejected.as_deref() == Some(last.version.as_str()))
    }

    fn in_flight(&self, ty: ResourceType) -> bool {
        self.types[ty.index()].in_flight
    }

    fn plan(&self, ty: ResourceType, view: &View, retain_stale: bool) -> Option<Plan> {
        let state = &self.types[ty.index()];
        if !state.sub.requested {
            return None;
        }
        let (version, count) = state.memo.get_or(view, retain_stale, || {
            let resources = state.select(ty, view, retain_stale);
            let version = list_version(resources.iter().map(|r| (&*r.name, &*r.version)));
            (version, resources.len())
        });
        if state.rejected.as_deref() == Some(version.as_str()) {
            return None;
        }
        match &state.last {
            Some(last) if last.version == version => None,
            // Named resources that do not exist yet: the proxy waits for them.
            None if count == 0 && !state.sub.wildcard => None,
            _ => Some(Plan {
                version,
                retain_stale,
            }),
        }
    }

    fn send(&mut self, ty: ResourceType, view: &View, plan: Plan) -> SotwResponse {
        let resources = self.types[ty.index()].select(ty, view, plan.retain_stale);
        let nonce = self.ctx.nonce();
        tracing::debug!(
            %ty,
            version = plan.version,
            nonce,
            resources = resources.len(),
            "sending"
        );
        self.ctx.metrics.pushed(ty);
        // Every resource of the type (a wildcard type, typically) shares one encoding of
        // them with every other stream sending the same.
        let shared = match view.resources(ty) {
            Resources::Shared(all) if all.is_all(&resources) => Some(all.sotw_entries()),
            _ => None,
        };
        let response = SotwResponse {
            version_info: plan.version.clone(),
            resources: resources.clone(),
            shared,
            type_url: ty.type_url(),
            nonce: nonce.clone(),
        };
        let state = &mut self.types[ty.index()];
        state.in_flight = true;
        state.memo.changed();
        state.last = Some(Sent {
            version: plan.version,
            nonce,
            resources,
        });
        response
    }
}
