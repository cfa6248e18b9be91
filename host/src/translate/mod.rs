//! The translator: the store's typed inputs in, per-Gateway Envoy resources and per-object
//! status out. A pure function — no I/O, no clock, no wasmtime, no Kubernetes client.
//!
//! ```text
//!  Store ──► gateway ──► ListenerPlans (per Gateway: valid/conflicting listeners, certs)
//!    │                        │
//!    ├──► http_route ──► RouteIr (memoised per HTTPRoute: Envoy routes, clusters needed)
//!    │                        │  attach: parentRefs × listeners × hostnames
//!    ├──► cluster ────► built clusters (memoised per Service port / Upstream; Upstreams
//!    │                  go through their plugin via [`UpstreamPlugins`])
//!    ▼                        ▼
//!  listener (assembly) ──► GatewayResources      status ──► Translation::statuses
//! ```
//!
//! Start at [`Translator::translate`] (or the one-shot [`translate`]). The output is a
//! [`Translation`]: for each of our Gateways its [`GatewayResources`] (listeners, route
//! configurations, clusters, endpoints, SDS secrets, each sorted by name) and for every
//! input object we own the status it should have, in Kubernetes' shape.
//!
//! - **Deterministic.** Everything is read in store key order and every output list is
//!   sorted, so the same inputs give the same output whatever order they arrived in.
//! - **Incremental.** A [`Translator`] memoises per-HTTPRoute translation and per-cluster
//!   building, keyed by the content hashes ([`crate::store::ContentHash`]) of the object
//!   and of everything it read (Services, Upstreams, DirectResponses, ReferenceGrants,
//!   EndpointSlices). Changing one route re-translates that route only and, when nothing
//!   listeners read changed, updates in place only its attachments, the virtual hosts of
//!   the hostnames it serves and its status; everything else is the last pass's.
//! - **Bad input never aborts.** A bad object becomes a condition naming the field; good
//!   objects beside it still translate.
//! - **Time.** Conditions need `lastTransitionTime`, and translation has no clock, so the
//!   caller passes `now`; every condition of a pass carries it. The reporter keeps an
//!   existing condition's `lastTransitionTime` when its status did not change (the usual
//!   `meta.SetStatusCondition` rule), so passing the wall clock here is correct.
//!
//! Names are stable and readable: listeners `listener_<port>`, route configurations
//! `route_<port>`, virtual hosts by hostname (`*` for any), routes
//! `<ns>_<route>_rule<i>_match<j>`, clusters `kube_<ns>_<service>_<port>` and
//! `upstream_<ns>_<name>`, secrets `secret_<ns>_<name>`.

mod assemble;
mod cluster;
mod conditions;
mod deps;
mod encoded;
mod filters;
mod gateway;
mod hostnames;
mod http_route;
mod matches;
mod options;
mod parallel;
mod scoped;
mod status;
pub mod synthetic;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use envoy_types::pb::envoy::config::listener::v3::Listener;
use envoy_types::pb::envoy::config::route::v3::{
    Route, RouteConfiguration, ScopedRouteConfiguration, VirtualHost,
};
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::HttpConnectionManager;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::Secret as TlsSecret;
use envoy_types::pb::google::protobuf::BoolValue;
use k8s_openapi::jiff::Timestamp;

use crate::model::{Kind, ObjectKey};
use crate::store::Store;

pub use cluster::ClusterRef;
pub use encoded::{Encoded, EncodedCluster, EncodedEndpoints, EncodedVirtualHost, Named};

/// The hash map of the translator's memo: seeded (so names cannot be chosen to collide)
/// and much faster than SipHash on the short string keys it holds.
pub(crate) type FastMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

/// Appends `n` in decimal to `out`, as `{n}` would, without the formatting machinery.
pub(crate) fn push_decimal(out: &mut String, mut n: usize) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        // `n % 10` is below 10, so the cast keeps it whole.
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    for d in &digits[at..] {
        out.push(char::from(*d));
    }
}

/// The hash set counterpart of [`FastMap`].
pub(crate) type FastSet<T> = std::collections::HashSet<T, foldhash::fast::RandomState>;

/// The controller name Weir answers to in `GatewayClass.spec.controllerName` and writes in
/// `HTTPRoute.status.parents[].controllerName`.
pub const CONTROLLER_NAME: &str = "gateway.weir.dev/controller";

// === Output ===

/// Everything one translation pass produced.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Translation {
    /// Envoy resources per Gateway we own (by the Gateway's key).
    pub gateways: BTreeMap<ObjectKey, GatewayResources>,
    /// The status each object we own should have, in Kubernetes' shape (`{"conditions":
    /// [...]}` for GatewayClass and Weir kinds, a serialised `GatewayStatus` /
    /// `HTTPRouteStatus` for Gateways and HTTPRoutes). Objects we do not own are absent.
    pub statuses: Statuses,
}

/// Statuses by object. Each value is shared with the translator's memo: an object whose
/// status did not change keeps the very same value (and its `lastTransitionTime`s).
pub type Statuses = BTreeMap<ObjectKey, Arc<serde_json::Value>>;

/// The Envoy resources of one Gateway's proxies; each list is sorted by name.
///
/// Every resource sits behind an `Arc` shared with the translator's memo, so a pass that
/// changed one route copies nothing else, and the snapshot can tell an unchanged resource
/// by pointer and skip re-encoding it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct GatewayResources {
    /// One listener per port (`listener_<port>`).
    pub listeners: Vec<Arc<Listener>>,
    /// One route configuration per port (`route_<port>`), served over RDS; ports whose
    /// virtual hosts are identical share the first one's. A port served by scoped routes
    /// has one per hostname instead (`route_<port>/<host>`).
    pub routes: Vec<RouteTable>,
    /// The scopes (SRDS) choosing a route configuration by the request's host, for the
    /// one table per Gateway whose hostnames are all exact (see `translate::scoped`).
    pub scoped_routes: Vec<Arc<ScopedRouteConfiguration>>,
    /// Clusters referenced by routes attached to this Gateway (kept encoded, like the
    /// endpoints and virtual hosts: decoded, 10,000 of each took over 50 MiB).
    pub clusters: Vec<Arc<EncodedCluster>>,
    /// Endpoints of the EDS clusters, by cluster name.
    pub endpoints: Vec<Arc<EncodedEndpoints>>,
    /// TLS certificates served over SDS (`secret_<ns>_<name>`). Contains private keys:
    /// redact before printing.
    pub secrets: Vec<Arc<TlsSecret>>,
}

/// A route configuration whose virtual hosts are shared with the translator's memo.
/// It is Envoy's `RouteConfiguration` with `validate_clusters: false` (unresolved
/// backends name clusters that never exist) and `ignore_port_in_host_matching: true`
/// (`Host: example.com:8080` matches `example.com`); [`RouteTable::to_proto`] builds it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RouteTable {
    /// The configuration's name (`route_<port>`).
    pub name: String,
    /// Virtual hosts, sorted by name, each kept encoded.
    pub virtual_hosts: Vec<Arc<EncodedVirtualHost>>,
}

impl RouteTable {
    /// A table with these virtual hosts.
    pub fn new(name: impl Into<String>, virtual_hosts: Vec<Arc<EncodedVirtualHost>>) -> Self {
        Self {
            name: name.into(),
            virtual_hosts,
        }
    }

    /// Everything but the virtual hosts.
    fn base(&self) -> RouteConfiguration {
        RouteConfiguration {
            name: self.name.clone(),
            validate_clusters: Some(BoolValue { value: false }),
            ignore_port_in_host_matching: true,
            ..Default::default()
        }
    }

    /// The Envoy message (decodes every virtual host).
    pub fn to_proto(&self) -> RouteConfiguration {
        RouteConfiguration {
            virtual_hosts: self.virtual_hosts.iter().map(|v| v.decode()).collect(),
            ..self.base()
        }
    }

    /// The encoded `RouteConfiguration`, written from the virtual hosts' encodings:
    /// protobuf lets a repeated field's elements follow the other fields.
    pub fn encode_to_vec(&self) -> Vec<u8> {
        use prost::Message;
        const VIRTUAL_HOSTS: u32 = 2;
        let base = self.base();
        let len = base.encoded_len()
            + self
                .virtual_hosts
                .iter()
                .map(|v| encoded::length_delimited_len(VIRTUAL_HOSTS, v.as_bytes().len()))
                .sum::<usize>();
        let mut buf = Vec::with_capacity(len);
        base.encode_raw(&mut buf);
        for v in &self.virtual_hosts {
            encoded::put_length_delimited(VIRTUAL_HOSTS, v.as_bytes(), &mut buf);
        }
        buf
    }
}

// === Plugins ===

/// The name of an Envoy cluster the host hands to a plugin; the plugin's cluster must use it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ClusterName(pub String);

impl ClusterName {
    /// The name as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ClusterName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An endpoint the host resolved for an Upstream (from EndpointSlices).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ResolvedEndpoint {
    /// IP address.
    pub address: String,
    /// Port.
    pub port: u16,
    /// Load-balancing weight; 0 means the default.
    pub weight: u32,
    /// Whether the endpoint is ready for new requests.
    pub ready: bool,
    /// Labels of the workload behind the endpoint, when known.
    pub labels: Vec<(String, String)>,
}

/// What the translator asks an Upstream-type plugin to translate.
#[derive(Clone, Copy, Debug)]
pub struct UpstreamRequest<'a> {
    /// The Upstream object.
    pub upstream: &'a ObjectKey,
    /// The cluster name the plugin must use.
    pub cluster_name: &'a ClusterName,
    /// The type key (`static`, `kube`, …) whose plugin must answer.
    pub type_key: &'a str,
    /// The Upstream's type block.
    pub config: &'a serde_json::Value,
    /// Endpoints the host resolved (for types that name a Service), else empty.
    pub endpoints: &'a [ResolvedEndpoint],
}

/// How the translator reaches Upstream-type plugins. The plugin runtime's
/// [`Session`](crate::plugin::Session) implements it; tests use a fake.
pub trait UpstreamPlugins {
    /// Translates one Upstream into a cluster (and optionally its endpoints). An error is
    /// a sentence naming the plugin and the field at fault; it becomes the Upstream's
    /// `Accepted=False` condition.
    fn translate_upstream(
        &mut self,
        request: &UpstreamRequest<'_>,
    ) -> Result<(Cluster, Option<ClusterLoadAssignment>), String>;

    /// Changes whenever the set of loaded plugins changes, so memoised plugin output is
    /// dropped. A fixed set of plugins may keep the default.
    fn generation(&self) -> u64 {
        0
    }

    /// The option (filter) plugins reached through the same host, if any; without them
    /// every option key is unclaimed.
    fn filter_plugins(&mut self) -> Option<&mut dyn FilterPlugins> {
        None
    }
}

/// An HTTP filter an option needs in the HTTP connection manager's chain.
#[derive(Clone, Debug, PartialEq)]
pub struct OptionFilter {
    /// Envoy filter name (`envoy.filters.http.fault`); one filter per name per chain.
    pub name: String,
    /// Where it goes: `(stage, position)`, stage 0 = fault … 8 = route, position
    /// 0 = before, 1 = during, 2 = after (the WIT `stage` record as a sort key).
    pub stage: (u8, u8),
    /// The filter's typed config.
    pub config: envoy_types::pb::google::protobuf::Any,
    /// Disabled unless a route enables it through per-route config.
    pub disabled: bool,
}

/// One option key the translator asks an option plugin to apply to one Envoy message `T`:
/// a route (RouteOption), virtual host (VirtualHostOption), HTTP connection manager
/// (HttpListenerOption) or listener (ListenerOption).
#[derive(Debug)]
pub struct OptionRequest<'a, T> {
    /// The option object the value came from.
    pub source: &'a ObjectKey,
    /// The option key (`faults`, …) whose plugin must answer.
    pub key: &'a str,
    /// The option's value.
    pub config: &'a serde_json::Value,
    /// The Envoy message to modify.
    pub target: &'a T,
}

impl<T> Clone for OptionRequest<'_, T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for OptionRequest<'_, T> {}

/// A RouteOption key to apply to one Envoy route.
pub type RouteOptionRequest<'a> = OptionRequest<'a, Route>;

/// A VirtualHostOption key to apply to one virtual host.
pub type VirtualHostOptionRequest<'a> = OptionRequest<'a, VirtualHost>;

/// An HttpListenerOption key to apply to one HTTP connection manager.
pub type HttpListenerOptionRequest<'a> = OptionRequest<'a, HttpConnectionManager>;

/// A ListenerOption key to apply to one Envoy listener.
pub type ListenerOptionRequest<'a> = OptionRequest<'a, Listener>;

/// What an option hook answers: the modified message and the HTTP filters it needs, or a
/// sentence naming the field at fault (`spec.options.<key>…`), which becomes the option
/// object's `Accepted=False` condition.
pub type OptionResult<T> = Result<(T, Vec<OptionFilter>), String>;

/// How the translator reaches option (filter) plugins. The plugin runtime's
/// [`Session`](crate::plugin::Session) implements it; tests use a fake. Every level but
/// routes defaults to "no plugin claims the key".
pub trait FilterPlugins {
    /// Applies one RouteOption key to a route.
    fn apply_route(&mut self, request: &RouteOptionRequest<'_>) -> OptionResult<Route>;

    /// Applies one VirtualHostOption key to a virtual host.
    fn apply_virtual_host(
        &mut self,
        request: &VirtualHostOptionRequest<'_>,
    ) -> OptionResult<VirtualHost> {
        Err(options::unclaimed(request.key))
    }

    /// Applies one HttpListenerOption key to an HTTP connection manager.
    fn apply_http_connection_manager(
        &mut self,
        request: &HttpListenerOptionRequest<'_>,
    ) -> OptionResult<HttpConnectionManager> {
        Err(options::unclaimed(request.key))
    }

    /// Applies one ListenerOption key to a listener.
    fn apply_listener(&mut self, request: &ListenerOptionRequest<'_>) -> OptionResult<Listener> {
        Err(options::unclaimed(request.key))
    }
}

/// No plugins at all: every Upstream is rejected as having an unknown type.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoPlugins;

impl UpstreamPlugins for NoPlugins {
    fn translate_upstream(
        &mut self,
        request: &UpstreamRequest<'_>,
    ) -> Result<(Cluster, Option<ClusterLoadAssignment>), String> {
        Err(format!(
            "spec.{}: no plugin handles Upstream type `{}`",
            request.type_key, request.type_key
        ))
    }
}

// === Translator ===

/// How much work the last pass did afresh (the rest came from the memo).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PassStats {
    /// HTTPRoutes translated afresh.
    pub routes_translated: usize,
    /// HTTPRoutes reused from the memo.
    pub routes_reused: usize,
    /// Service clusters built afresh.
    pub service_clusters_built: usize,
    /// Upstreams translated afresh (plugin calls).
    pub upstreams_translated: usize,
    /// Virtual hosts built afresh (the rest were shared with the previous pass or with
    /// the same domain's on an earlier port).
    pub virtual_hosts_built: usize,
}

/// The translator with its memo. Keep one across passes to translate incrementally.
#[derive(Default)]
pub struct Translator {
    routes: http_route::RouteCache,
    clusters: cluster::ClusterCache,
    bindings: gateway::BindingCache,
    vhosts: assemble::VhostCache,
    /// Each Gateway's cluster, endpoint and cluster-secret lists.
    cluster_lists: assemble::ClusterLists,
    route_statuses: status::RouteStatusCache,
    /// RouteOptions by the HTTPRoute their targetRefs name.
    route_options: options::TargetIndex,
    /// VirtualHostOptions, HttpListenerOptions and ListenerOptions by the Gateway (and
    /// listener) they target.
    gateway_options: options::GatewayOptionIndexes,
    stats: PassStats,
    /// The number of the last pass (0: none yet).
    pass: deps::PassId,
    /// Each kind's store revision as of the last pass.
    revisions: Vec<crate::store::Revision>,
    /// The plugins' generation in the last pass.
    generation: Option<u64>,
}

impl fmt::Debug for Translator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Translator")
            .field("memoised_routes", &self.routes.len())
            .field("stats", &self.stats)
            .finish()
    }
}

impl Translator {
    /// A translator with an empty memo.
    pub fn new() -> Self {
        Self::default()
    }

    /// Translates the whole store; `now` stamps every condition's `lastTransitionTime`.
    pub fn translate(
        &mut self,
        store: &Store,
        plugins: &mut dyn UpstreamPlugins,
        now: Timestamp,
    ) -> Translation {
        self.stats = PassStats::default();
        self.pass += 1;
        let revisions: Vec<_> = Kind::ALL.iter().map(|k| store.kind_revision(*k)).collect();
        let mut stable = deps::KindSet::default();
        for (i, kind) in Kind::ALL.iter().enumerate() {
            if self.revisions.get(i) == Some(&revisions[i]) {
                stable.insert(*kind);
            }
        }
        self.revisions = revisions;
        let mut reader = deps::PassReader::for_pass(store, self.pass, stable);
        let mut out = Translation::default();
        let conds = conditions::Stamp::new(now);

        // Upstreams first: every Upstream gets a status, referenced or not.
        let upstreams = self
            .clusters
            .translate_upstreams(&mut reader, plugins, &mut self.stats);
        let classes = gateway::our_classes(store);
        let plans = gateway::plan_gateways(store, &classes);
        self.route_options
            .refresh(store, stable.contains(Kind::RouteOption));
        let changed =
            self.routes
                .translate_all(&mut reader, plugins, &self.route_options, &mut self.stats);
        let routes = self.routes.current();
        let attach_stable = gateway::ATTACHMENT_INPUTS
            .iter()
            .all(|k| stable.contains(*k));
        let (attachments, delta) = gateway::attach_routes(
            store,
            &plans,
            routes,
            &changed,
            (&mut self.bindings, self.pass, attach_stable),
        );

        self.gateway_options.refresh(store, &stable);
        let generation = plugins.generation();
        let cluster_inputs = [
            Kind::Upstream,
            Kind::Service,
            Kind::EndpointSlice,
            Kind::Secret,
            Kind::ReferenceGrant,
            Kind::Namespace,
        ];
        self.cluster_lists.begin_pass(
            cluster_inputs.iter().all(|k| stable.contains(*k))
                && self.generation == Some(generation),
        );
        self.generation = Some(generation);
        let mut gateway_options = assemble::GatewayOptions {
            targets: &self.gateway_options,
            upstreams: &upstreams,
            plugins: plugins.filter_plugins(),
            generation,
            errors: Vec::new(),
            warnings: Vec::new(),
            portless: assemble::PortlessHosts::default(),
        };
        for (gi, plan) in plans.iter().enumerate() {
            let resources = assemble::gateway_resources(
                gi,
                plan,
                (attachments, delta.as_ref()),
                (&mut self.clusters, &mut self.cluster_lists),
                &mut self.vhosts,
                &mut gateway_options,
                &upstreams,
                &mut reader,
                &mut self.stats,
            );
            out.gateways.insert(plan.key.clone(), resources);
        }
        status::write_all(
            store,
            &conds,
            &classes,
            &plans,
            routes,
            attachments,
            &upstreams,
            (&gateway_options.errors, &gateway_options.warnings),
            (&mut self.route_statuses, delta.as_ref()),
            &mut out.statuses,
        );
        // Forgetting deleted objects is a lookup per memo entry: skip it for kinds that
        // did not change.
        if !(stable.contains(Kind::Service) && stable.contains(Kind::Upstream)) {
            self.clusters.retain_present(store, self.pass);
        }
        self.vhosts.retain_used(self.pass);
        self.cluster_lists.retain_used(self.pass);
        out
    }

    /// How much work the last pass did afresh.
    pub fn last_pass(&self) -> PassStats {
        self.stats
    }
}

/// Translates the store once, without keeping a memo.
pub fn translate(store: &Store, plugins: &mut dyn UpstreamPlugins, now: Timestamp) -> Translation {
    Translator::new().translate(store, plugins, now)
}
