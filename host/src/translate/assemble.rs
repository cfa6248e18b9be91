//! Assembly: one Gateway's listeners, route configurations, clusters, endpoints and
//! secrets from its programmed listeners and the routes attached to them.
//!
//! Per port there is one Envoy listener and one route configuration (or, for one table
//! per Gateway whose hostnames are all exact, one per hostname chosen by scoped routes:
//! see [`super::scoped`]). HTTP listeners on a
//! port share one filter chain; HTTPS listeners get one filter chain each, matched by SNI
//! (none for a listener without a hostname). Virtual hosts are keyed by hostname. A
//! request for host `D` is served by the routes of the most specific Gateway listener
//! matching `D` (listener isolation), and among those by every route whose hostname covers
//! `D` (`D` itself, a wildcard over it, or any host). Routes within a virtual host are
//! ordered by Gateway API precedence across all routes.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use envoy_types::pb::envoy::config::core::v3::{TransportSocket, transport_socket};
use envoy_types::pb::envoy::config::listener::v3::{
    Filter, FilterChain, FilterChainMatch, Listener, ListenerFilter, filter, listener_filter,
};
use envoy_types::pb::envoy::config::route::v3::{Route, VirtualHost, route};
use envoy_types::pb::envoy::extensions::filters::http::router::v3::Router;
use envoy_types::pb::envoy::extensions::filters::listener::tls_inspector::v3::TlsInspector;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpConnectionManager, HttpFilter, http_connection_manager, http_filter,
};
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{
    CommonTlsContext, DownstreamTlsContext, SdsSecretConfig, Secret as TlsSecret,
};
use prost::Message as _;

use crate::model::ObjectKey;

use super::cluster::{
    Built, ClusterCache, ClusterRef, Upstreams, ads, secret_name, socket, tls_certificate_secret,
    to_any,
};
use super::deps::{PassId, PassReader};
use super::gateway::{AttachDelta, Attachments, GatewayPlan, ListenerPlan, Protocol};
use super::hostnames;
use super::http_route::RouteIr;
use super::options::{self, Attached, GatewayOptionIndexes, OptionError};
use super::scoped;
use super::{
    EncodedCluster, EncodedEndpoints, EncodedVirtualHost, GatewayResources, PassStats, RouteTable,
};
use super::{FastMap, FastSet, FilterPlugins, OptionFilter, OptionRequest, OptionResult};

/// The virtual-host memo, per (Gateway, port): the port's hostname index and virtual
/// hosts, and one entry per domain, reused while the same route IRs (by pointer) make it
/// up. A pass that changed some routes (and nothing listeners or options read) updates
/// the index for those routes and rebuilds only the virtual hosts of the domains they
/// serve; any other pass walks every domain, still reusing unchanged entries.
#[derive(Default)]
pub(crate) struct VhostCache {
    ports: FastMap<(ObjectKey, u16), PortCache>,
}

/// One port's slice of the [`VhostCache`].
#[derive(Default)]
struct PortCache {
    /// Route hostname → (position of the listener among the port's, route), ordered by
    /// listener, then route key.
    by_host: FastMap<String, Vec<(usize, Arc<RouteIr>)>>,
    /// The Gateway listener indexes the port was built for.
    listeners: Vec<usize>,
    /// Whether VirtualHostOptions applied to the port's listeners.
    with_options: bool,
    /// The virtual hosts built, sorted by name (the domain).
    table: Vec<Arc<EncodedVirtualHost>>,
    /// The entries by domain (looked up by `&str`, no allocation).
    entries: FastMap<String, VhostEntry>,
    /// The pass that last built the port.
    used: PassId,
}

struct VhostEntry {
    /// The routes the virtual host was built from, in precedence input order.
    chosen: Vec<Arc<RouteIr>>,
    /// The VirtualHostOptions applied (object and content), and the plugin generation.
    options: OptionsUsed,
    vhost: Arc<EncodedVirtualHost>,
    /// What applying the options produced besides the virtual host.
    applied: Applied,
    /// The pass that last used this entry.
    used: PassId,
}

impl VhostCache {
    /// Drops the ports no Gateway assembled in pass `pass`.
    pub(crate) fn retain_used(&mut self, pass: PassId) {
        self.ports.retain(|_, p| p.used == pass);
    }
}

/// The VirtualHostOptions a virtual host was built with and the plugin generation.
type OptionsUsed = (Vec<(ObjectKey, crate::store::ContentHash)>, u64);

/// What applying VirtualHostOptions to one virtual host produced besides it.
#[derive(Clone, Default)]
struct Applied {
    filters: Vec<OptionFilter>,
    errors: Vec<OptionError>,
    warnings: Vec<OptionError>,
}

/// What assembly needs to apply VirtualHostOptions, HttpListenerOptions and
/// ListenerOptions, and what it reports back.
pub(crate) struct GatewayOptions<'t, 'p> {
    /// The options by Gateway and listener.
    pub(crate) targets: &'t GatewayOptionIndexes,
    /// The Upstreams, for the clusters listener filters name.
    pub(crate) upstreams: &'t Upstreams,
    /// The option plugins; without them every key is unclaimed.
    pub(crate) plugins: Option<&'p mut dyn FilterPlugins>,
    /// The plugins' generation (memoised virtual hosts built with others are rebuilt).
    pub(crate) generation: u64,
    /// Keys that could not be applied, by option object.
    pub(crate) errors: Vec<OptionError>,
    /// Keys a higher-precedence option overrode, by the one that lost.
    pub(crate) warnings: Vec<OptionError>,
    /// The port-independent virtual hosts of this pass so far.
    pub(crate) portless: PortlessHosts,
}

/// The virtual hosts built or reused so far in a pass that read nothing of their port
/// (no VirtualHostOptions, no redirect waiting for the listener's port), each with the
/// route IRs it was built from. A later port's virtual host for the same domain from the
/// very same IRs (held here, so a pointer cannot be reused within the pass) is then
/// that `Arc` (its twin) as it is: neither built nor compared deeply, which halves the
/// virtual-host work of a Gateway whose HTTP and HTTPS ports serve the same routes.
#[derive(Default)]
pub(crate) struct PortlessHosts(
    FastMap<*const EncodedVirtualHost, (Arc<EncodedVirtualHost>, Vec<Arc<RouteIr>>)>,
);

impl PortlessHosts {
    /// Whether `vhost` was built from exactly `chosen`, in order, without reading a port.
    fn built_from(&self, vhost: &Arc<EncodedVirtualHost>, chosen: &[&Arc<RouteIr>]) -> bool {
        self.0.get(&Arc::as_ptr(vhost)).is_some_and(|(_, irs)| {
            irs.len() == chosen.len() && irs.iter().zip(chosen).all(|(a, b)| Arc::ptr_eq(a, b))
        })
    }

    /// Records that `vhost` was built from `chosen` without reading a port.
    fn record(&mut self, vhost: &Arc<EncodedVirtualHost>, chosen: &[&Arc<RouteIr>]) {
        self.0.insert(
            Arc::as_ptr(vhost),
            (
                vhost.clone(),
                chosen.iter().map(|ir| Arc::clone(ir)).collect(),
            ),
        );
    }
}

impl GatewayOptions<'_, '_> {
    /// Records the errors and warnings of applying options; the filters they need.
    fn report(&mut self, applied: Applied) -> Vec<OptionFilter> {
        for e in applied.errors {
            if !self.errors.contains(&e) {
                self.errors.push(e);
            }
        }
        self.warnings.extend(applied.warnings);
        applied.filters
    }
}

/// The virtual host for one domain and the listener serving it.
struct VhostSpec<'a, 'b> {
    port: u16,
    domain: &'a str,
    /// The Gateway and the listener serving the domain (its `sectionName`).
    listener: (&'a ObjectKey, &'a str),
    chosen: Vec<&'a Arc<RouteIr>>,
    options: Vec<&'b Attached>,
}

/// The virtual host `spec` describes, from one port's slice of the [`VhostCache`] or
/// built afresh. A freshly built one equal to `twin` (the same domain's virtual host on
/// an earlier port of the Gateway) is stored as `twin` itself, so ports serving the same
/// virtual hosts hold the same pointers and [`same_hosts`] never compares them deeply
/// again while they stay unchanged.
fn get_or_build(
    entries: &mut FastMap<String, VhostEntry>,
    spec: VhostSpec<'_, '_>,
    twin: Option<&Arc<EncodedVirtualHost>>,
    ctx: &mut GatewayOptions<'_, '_>,
    port_filters: &mut Vec<OptionFilter>,
    (pass, stats): (PassId, &mut PassStats),
) -> Arc<EncodedVirtualHost> {
    let chosen = &spec.chosen;
    let used: OptionsUsed = (
        spec.options
            .iter()
            .map(|a| (a.key.clone(), a.hash))
            .collect(),
        ctx.generation,
    );
    let same = |e: &VhostEntry| {
        e.chosen.len() == chosen.len()
            && e.chosen.iter().zip(chosen).all(|(a, b)| Arc::ptr_eq(a, b))
            && e.options == used
    };
    let report = |applied: &Applied,
                  ctx: &mut GatewayOptions<'_, '_>,
                  port_filters: &mut Vec<OptionFilter>| {
        for f in &applied.filters {
            if !port_filters.iter().any(|g| g.name == f.name) {
                port_filters.push(f.clone());
            }
        }
        ctx.errors.extend(applied.errors.iter().cloned());
        ctx.warnings.extend(applied.warnings.iter().cloned());
    };
    // Neither options nor a redirect's port: the virtual host is the same on every port.
    let portless = spec.options.is_empty()
        && chosen
            .iter()
            .all(|ir| ir.entries.iter().all(|e| e.redirect.is_none()));
    if let Some(e) = entries.get_mut(spec.domain)
        && same(e)
    {
        e.used = pass;
        report(&e.applied, ctx, port_filters);
        if portless {
            ctx.portless.record(&e.vhost, chosen);
        }
        return e.vhost.clone();
    }
    let (vhost, applied) = match twin {
        Some(t) if portless && ctx.portless.built_from(t, chosen) => {
            (t.clone(), Applied::default())
        }
        _ => {
            stats.virtual_hosts_built += 1;
            let built = virtual_host(spec.port, spec.domain, chosen);
            let (vhost, applied) = if spec.options.is_empty() {
                (built, Applied::default())
            } else {
                let (vhost, applied) =
                    apply_vhost_options(built.decode(), &spec.options, spec.listener, ctx);
                (EncodedVirtualHost::encode(&vhost), applied)
            };
            report(&applied, ctx, port_filters);
            let vhost = match twin {
                Some(t) if **t == vhost => t.clone(),
                _ => Arc::new(vhost),
            };
            if portless {
                ctx.portless.record(&vhost, chosen);
            }
            (vhost, applied)
        }
    };
    entries.insert(
        spec.domain.to_string(),
        VhostEntry {
            chosen: spec.chosen.into_iter().cloned().collect(),
            options: used,
            vhost: vhost.clone(),
            applied,
            used: pass,
        },
    );
    vhost
}

/// Applies the merged keys of `sources` (highest precedence first) to `vhost` through the
/// option plugins; a key that fails is left out and reported.
fn apply_vhost_options(
    vhost: VirtualHost,
    sources: &[&Attached],
    (gateway, section): (&ObjectKey, &str),
    ctx: &mut GatewayOptions<'_, '_>,
) -> (VirtualHost, Applied) {
    let label = format!("{gateway} listener {section}");
    apply_options(
        vhost,
        sources,
        &label,
        &mut ctx.plugins,
        |p, r| p.apply_virtual_host(r),
        |_, _, _| None,
    )
}

/// Applies the merged keys of `sources` (highest precedence first; `label` names what
/// they were merged for) to `target`, one `hook` call per key in key order. A key whose
/// plugin fails, or whose result `check` (before, after, filters) rejects with a reason,
/// is left out and reported as an error on the option object it came from.
fn apply_options<T>(
    mut target: T,
    sources: &[&Attached],
    label: &str,
    plugins: &mut Option<&mut dyn FilterPlugins>,
    hook: impl Fn(&mut dyn FilterPlugins, &OptionRequest<'_, T>) -> OptionResult<T>,
    check: impl Fn(&T, &T, &[OptionFilter]) -> Option<String>,
) -> (T, Applied) {
    let mut applied = Applied::default();
    if sources.is_empty() {
        return (target, applied);
    }
    let merged = options::merge(sources.iter().copied(), label, &mut applied.warnings);
    for (key, (config, source)) in merged {
        let result = match plugins.as_deref_mut() {
            None => Err(options::unclaimed(key)),
            Some(p) => hook(
                p,
                &OptionRequest {
                    source,
                    key,
                    config,
                    target: &target,
                },
            ),
        };
        let result =
            result.and_then(
                |(modified, filters)| match check(&target, &modified, &filters) {
                    Some(reason) => Err(format!("spec.options.{key}: {reason}")),
                    None => Ok((modified, filters)),
                },
            );
        match result {
            Ok((modified, filters)) => {
                target = modified;
                for f in filters {
                    if !applied.filters.iter().any(|g| g.name == f.name) {
                        applied.filters.push(f);
                    }
                }
            }
            Err(message) => applied.errors.push(OptionError {
                option: source.clone(),
                message,
            }),
        }
    }
    (target, applied)
}

/// Builds Gateway `gi`'s resources.
#[allow(clippy::too_many_arguments)]
pub(crate) fn gateway_resources(
    gi: usize,
    plan: &GatewayPlan,
    (attachments, delta): (&Attachments, Option<&AttachDelta>),
    (clusters, lists): (&mut ClusterCache, &mut ClusterLists),
    vhosts: &mut VhostCache,
    gateway_options: &mut GatewayOptions<'_, '_>,
    upstreams: &Upstreams,
    reader: &mut PassReader<'_>,
    stats: &mut PassStats,
) -> GatewayResources {
    let mut out = GatewayResources::default();
    if plan.problem.is_some() {
        return out;
    }
    let mut ports: PortListeners<'_> = BTreeMap::new();
    for (li, l) in plan.listeners.iter().enumerate() {
        if l.programmed() {
            ports.entry(l.port).or_default().push((li, l));
        }
    }
    let pass = reader.pass();
    // Every attached route's IR, listener by listener: what the cluster lists come from.
    let attached: Vec<Arc<RouteIr>> = ports
        .values()
        .flatten()
        .flat_map(|(li, _)| attachments.on(gi, *li).iter().map(|a| a.ir.clone()))
        .collect();
    let mut assemble = |stats: &mut PassStats| {
        assemble_ports(
            (gi, plan, &ports),
            (attachments, delta),
            vhosts,
            gateway_options,
            (pass, stats),
        )
    };
    // When the cluster lists will be gathered afresh (a full pass), the routes' Service
    // clusters are built on the other cores while this thread assembles the ports.
    let (early, mut assembled) = if lists.gathers(&plan.key, pass) {
        let needed = needed_clusters(&attached);
        let (services, built, assembled) =
            clusters.services_beside(reader, needed.iter().copied(), || assemble(&mut *stats));
        stats.service_clusters_built += built;
        (Some((needed, services)), assembled)
    } else {
        (None, assemble(&mut *stats))
    };
    let referenced = std::mem::take(&mut assembled.referenced);
    let used = match lists.reuse(&plan.key, &attached, &referenced, pass) {
        Some(e) => {
            e.pass = pass;
            e.routes = attached;
            e.used.clone()
        }
        None => {
            // The Services left to look up: the listeners' references, or all.
            let (mut needed, mut services, left) = match early {
                Some((needed, services)) => (needed, services, referenced.iter().collect()),
                None => {
                    let needed = needed_clusters(&attached);
                    let all: Vec<&ClusterRef> = needed.iter().copied().chain(&referenced).collect();
                    (needed, Vec::new(), all)
                }
            };
            let (more, built, ()) = clusters.services_beside(reader, left, || ());
            stats.service_clusters_built += built;
            services.extend(more);
            needed.extend(referenced.iter());
            let used = gather_clusters(&needed, services, upstreams);
            lists.entries.insert(
                plan.key.clone(),
                GatewayClusters {
                    routes: attached,
                    referenced,
                    pass,
                    used: used.clone(),
                },
            );
            used
        }
    };
    let Ports {
        listeners,
        routes,
        mut secrets,
        scoped_table,
        ..
    } = assembled;
    for s in &used.secrets {
        secrets.insert(s.name.clone(), s.clone());
    }
    out.listeners = listeners;
    out.routes = routes;
    out.clusters = used.clusters;
    out.endpoints = used.endpoints;
    out.secrets = secrets.into_values().collect();
    if let Some(name) = scoped_table
        && let Some(at) = out.routes.iter().position(|t| t.name == name)
    {
        let (tables, scopes) = scoped::split(&out.routes.swap_remove(at));
        out.routes.extend(tables);
        out.scoped_routes = scopes;
    }
    out.listeners.sort_by(|a, b| a.name.cmp(&b.name));
    out.routes.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// A Gateway's programmed listeners (index, plan) by port.
type PortListeners<'p> = BTreeMap<u16, Vec<(usize, &'p ListenerPlan)>>;

/// A Gateway's ports, assembled: everything of its resources but the clusters.
struct Ports {
    listeners: Vec<Arc<Listener>>,
    routes: Vec<RouteTable>,
    /// Clusters the listeners' own HTTP filters name (an authorization service, ...).
    referenced: Vec<ClusterRef>,
    /// The listeners' SDS secrets, by name.
    secrets: BTreeMap<String, Arc<TlsSecret>>,
    /// The one route table of the Gateway served as scoped routes, if any.
    scoped_table: Option<String>,
}

/// The listeners and route tables of the ports of Gateway `gi`.
fn assemble_ports(
    (gi, plan, ports): (usize, &GatewayPlan, &PortListeners<'_>),
    (attachments, delta): (&Attachments, Option<&AttachDelta>),
    vhosts: &mut VhostCache,
    gateway_options: &mut GatewayOptions<'_, '_>,
    (pass, stats): (PassId, &mut PassStats),
) -> Ports {
    let mut out = Ports {
        listeners: Vec::new(),
        routes: Vec::new(),
        referenced: Vec::new(),
        secrets: BTreeMap::new(),
        scoped_table: None,
    };
    // Every port's table so far, shared or not: where a new virtual host finds its twin.
    let mut earlier: Vec<RouteTable> = Vec::new();
    for (port, listeners) in ports {
        let mut port_filters = Vec::new();
        let table = route_table(
            (gi, &plan.key, *port),
            &format!("route_{port}"),
            listeners,
            (attachments, delta, &earlier),
            (vhosts, &mut *gateway_options, &mut port_filters),
            (pass, &mut *stats),
        );
        // Ports serving the very same virtual hosts (an HTTP and an HTTPS listener with
        // the same routes, the usual case) share one route configuration, so Envoy
        // parses it once per change instead of once per listener.
        let route_name = match out.routes.iter().find(|t| same_hosts(t, &table)) {
            Some(shared) => shared.name.clone(),
            None => {
                out.routes.push(table.clone());
                table.name.clone()
            }
        };
        // The first table whose hostnames are all exact is served as scoped routes.
        if out.scoped_table.is_none() && scoped::qualifies(&table) {
            out.scoped_table = Some(route_name.clone());
        }
        let scoped = out.scoped_table.as_ref() == Some(&route_name);
        earlier.push(table);
        let https = listeners[0].1.protocol == Some(Protocol::Https);
        let filters = option_filters(gi, listeners, attachments, port_filters);
        let mut hcm = |sections: &[&str]| {
            hcm_filter(
                (&plan.key, *port, &route_name, scoped),
                sections,
                &filters,
                &mut *gateway_options,
                &mut out.referenced,
            )
        };
        let built = listener(*port, listeners, https, &mut hcm, &mut out.secrets);
        let sections: Vec<&str> = listeners.iter().map(|(_, l)| l.name.as_str()).collect();
        let built = apply_listener_options(built, &plan.key, &sections, &mut *gateway_options);
        out.listeners.push(Arc::new(built));
    }
    out
}

/// A Gateway's clusters (sorted by name), their endpoints (sorted by cluster name) and
/// the SDS secrets the clusters' TLS settings name (in cluster order).
#[derive(Clone, Default)]
struct UsedClusters {
    clusters: Vec<Arc<EncodedCluster>>,
    endpoints: Vec<Arc<EncodedEndpoints>>,
    secrets: Vec<Arc<TlsSecret>>,
}

/// One Gateway's cluster lists and what they were gathered from.
struct GatewayClusters {
    /// The attached routes' IRs, listener by listener.
    routes: Vec<Arc<RouteIr>>,
    /// The clusters the listeners' own HTTP filters name.
    referenced: Vec<ClusterRef>,
    /// The pass that gathered or reused the lists.
    pass: PassId,
    used: UsedClusters,
}

/// The cluster-list memo, per Gateway. Gathering a Gateway's clusters hashes, looks up and
/// sorts every cluster reference of every attached route; when the attached routes name
/// the same clusters as in the previous pass and nothing a cluster is built from changed,
/// the previous lists are the answer. At 10,000 routes this was a fifth of a
/// one-route-change pass.
#[derive(Default)]
pub(crate) struct ClusterLists {
    entries: FastMap<ObjectKey, GatewayClusters>,
    /// Whether the kinds clusters are built from (Services, EndpointSlices, Upstreams,
    /// Secrets, ReferenceGrants, Namespaces) and the plugins are unchanged since the
    /// previous pass.
    inputs_stable: bool,
}

impl ClusterLists {
    /// Starts a pass; `inputs_stable`: the cluster inputs and plugins did not change since
    /// the previous pass.
    pub(crate) fn begin_pass(&mut self, inputs_stable: bool) {
        self.inputs_stable = inputs_stable;
    }

    /// Drops the entries of Gateways not assembled in pass `pass`.
    pub(crate) fn retain_used(&mut self, pass: PassId) {
        self.entries.retain(|_, e| e.pass == pass);
    }

    /// Whether `gateway`'s lists will surely be gathered afresh in pass `pass`: there are
    /// none from the previous pass, or what clusters are built from changed.
    fn gathers(&self, gateway: &ObjectKey, pass: PassId) -> bool {
        !self.inputs_stable || self.entries.get(gateway).is_none_or(|e| e.pass + 1 != pass)
    }

    /// The previous pass's lists of `gateway`, if they still hold: the cluster inputs did
    /// not change and the attached routes (`routes`, pairwise) name the same clusters.
    fn reuse(
        &mut self,
        gateway: &ObjectKey,
        routes: &[Arc<RouteIr>],
        referenced: &[ClusterRef],
        pass: PassId,
    ) -> Option<&mut GatewayClusters> {
        if !self.inputs_stable {
            return None;
        }
        let e = self.entries.get_mut(gateway)?;
        let same = e.pass + 1 == pass
            && e.referenced == referenced
            && e.routes.len() == routes.len()
            && e.routes
                .iter()
                .zip(routes)
                .all(|(a, b)| Arc::ptr_eq(a, b) || a.clusters == b.clusters);
        same.then_some(e)
    }
}

/// Every cluster the attached routes name, once each (a route attached to several
/// listeners is seen once).
fn needed_clusters(attached: &[Arc<RouteIr>]) -> FastSet<&ClusterRef> {
    // Sized up front: growing rehashes every element at each doubling.
    let refs = attached.iter().map(|ir| ir.clusters.len()).sum();
    let mut seen: FastSet<*const RouteIr> =
        FastSet::with_capacity_and_hasher(attached.len(), Default::default());
    let mut needed: FastSet<&ClusterRef> =
        FastSet::with_capacity_and_hasher(refs, Default::default());
    for ir in attached {
        if seen.insert(Arc::as_ptr(ir)) {
            needed.extend(ir.clusters.iter());
        }
    }
    needed
}

/// The cluster lists from `services` (the Service clusters of `needed`) and the
/// Upstream clusters `needed` names.
fn gather_clusters(
    needed: &FastSet<&ClusterRef>,
    mut built_clusters: Vec<Arc<Built>>,
    upstreams: &Upstreams,
) -> UsedClusters {
    for c in needed {
        let ClusterRef::Upstream { namespace, name } = c else {
            continue;
        };
        let key = ObjectKey::namespaced(crate::model::Kind::Upstream, namespace, name);
        // A failed Upstream has no cluster; routes to it answer 500 (cluster not found).
        if let Some(built) = upstreams.get(&key).and_then(|o| o.result.as_ref().ok()) {
            built_clusters.push(built.clone());
        }
    }
    // Names are unique (one per reference), so an unstable sort is deterministic.
    built_clusters.sort_unstable_by(|a, b| a.cluster.name().cmp(b.cluster.name()));
    built_clusters.dedup_by(|a, b| a.cluster.name() == b.cluster.name());
    // A cluster's endpoints carry its name, so they are in name order too.
    let endpoints: Vec<Arc<EncodedEndpoints>> = built_clusters
        .iter()
        .filter_map(|b| b.endpoints.clone())
        .collect();
    debug_assert!(endpoints.is_sorted_by(|a, b| a.name() < b.name()));
    UsedClusters {
        endpoints,
        clusters: built_clusters.iter().map(|b| b.cluster.clone()).collect(),
        secrets: built_clusters
            .iter()
            .flat_map(|b| b.secrets.iter().cloned())
            .collect(),
    }
}

/// Whether two route tables hold the same virtual hosts.
fn same_hosts(a: &RouteTable, b: &RouteTable) -> bool {
    a.virtual_hosts.len() == b.virtual_hosts.len()
        && a.virtual_hosts
            .iter()
            .zip(&b.virtual_hosts)
            .all(|(x, y)| Arc::ptr_eq(x, y) || x == y)
}

/// The route table of one port of Gateway `gi` (whose key is `gateway`): updated for
/// the routes `delta` names when the port's memo allows it, else walked domain by domain.
#[allow(clippy::too_many_arguments)]
fn route_table(
    (gi, gateway, port): (usize, &ObjectKey, u16),
    name: &str,
    listeners: &[(usize, &ListenerPlan)],
    (attachments, delta, earlier): (&Attachments, Option<&AttachDelta>, &[RouteTable]),
    (vhosts, ctx, port_filters): (
        &mut VhostCache,
        &mut GatewayOptions<'_, '_>,
        &mut Vec<OptionFilter>,
    ),
    (pass, stats): (PassId, &mut PassStats),
) -> RouteTable {
    let targets = ctx.targets;
    let listener_options: Vec<Vec<&Attached>> = listeners
        .iter()
        .map(|(_, l)| targets.virtual_hosts.for_listener(gateway, &l.name))
        .collect();
    let with_options = listener_options.iter().any(|o| !o.is_empty());
    let ids: Vec<usize> = listeners.iter().map(|(li, _)| *li).collect();
    let cache = vhosts.ports.entry((gateway.clone(), port)).or_default();
    let follows = cache.used != 0 && cache.used + 1 == pass;
    let spec = PortSpec {
        gateway,
        port,
        listeners,
        listener_options,
        earlier,
    };
    let mut run = (ctx, port_filters, pass, stats);
    match delta {
        Some(d) if follows && cache.listeners == ids && !with_options && !cache.with_options => {
            update_port(cache, &spec, gi, d, &mut run);
        }
        _ => rebuild_port(cache, &spec, gi, attachments, &mut run),
    }
    cache.listeners = ids;
    cache.with_options = with_options;
    cache.used = pass;
    RouteTable::new(name, cache.table.clone())
}

/// What building one port's virtual hosts reads besides its memo.
struct PortSpec<'a, 'b> {
    gateway: &'a ObjectKey,
    port: u16,
    listeners: &'a [(usize, &'a ListenerPlan)],
    /// Per listener of the port, the VirtualHostOptions that apply to it.
    listener_options: Vec<Vec<&'b Attached>>,
    /// The Gateway's earlier ports' tables this pass (where twins are found).
    earlier: &'a [RouteTable],
}

/// The pass state building virtual hosts reports to.
type PortRun<'r, 't, 'p> = (
    &'r mut GatewayOptions<'t, 'p>,
    &'r mut Vec<OptionFilter>,
    PassId,
    &'r mut PassStats,
);

/// Rebuilds a port's hostname index from every attached route and walks every domain.
fn rebuild_port(
    cache: &mut PortCache,
    spec: &PortSpec<'_, '_>,
    gi: usize,
    attachments: &Attachments,
    run: &mut PortRun<'_, '_, '_>,
) {
    cache.by_host.clear();
    for (at, (li, _)) in spec.listeners.iter().enumerate() {
        for a in attachments.on(gi, *li) {
            for h in a.hostnames.iter() {
                match cache.by_host.get_mut(h.as_str()) {
                    Some(list) => list.push((at, a.ir.clone())),
                    None => {
                        cache.by_host.insert(h.clone(), vec![(at, a.ir.clone())]);
                    }
                }
            }
        }
    }
    let mut domains: Vec<&str> = cache.by_host.keys().map(String::as_str).collect();
    domains.sort_unstable();
    cache.table = domains
        .into_iter()
        .map(|d| spec.virtual_host(&cache.by_host, &mut cache.entries, d, run))
        .collect();
    let pass = run.2;
    cache.entries.retain(|_, e| e.used == pass);
}

/// Updates a port's hostname index for the attachments `delta` removed and added, then
/// rebuilds the virtual hosts of the domains those routes' hostnames serve.
fn update_port(
    cache: &mut PortCache,
    spec: &PortSpec<'_, '_>,
    gi: usize,
    delta: &AttachDelta,
    run: &mut PortRun<'_, '_, '_>,
) {
    let position = |g: usize, li: usize| {
        (g == gi)
            .then(|| spec.listeners.iter().position(|(l, _)| *l == li))
            .flatten()
    };
    let mut touched: BTreeSet<String> = BTreeSet::new();
    for (g, li, a) in &delta.removed {
        let Some(at) = position(*g, *li) else {
            continue;
        };
        for h in a.hostnames.iter() {
            if let Some(list) = cache.by_host.get_mut(h.as_str()) {
                list.retain(|(p, ir)| !(*p == at && Arc::ptr_eq(ir, &a.ir)));
                if list.is_empty() {
                    cache.by_host.remove(h.as_str());
                }
            }
            touched.insert(h.clone());
        }
    }
    for (g, li, a) in &delta.added {
        let Some(at) = position(*g, *li) else {
            continue;
        };
        for h in a.hostnames.iter() {
            let list = cache.by_host.entry(h.clone()).or_default();
            let key = (at, a.ir.namespace.as_str(), a.ir.name.as_str());
            let i = list
                .binary_search_by(|(p, ir)| (*p, ir.namespace.as_str(), ir.name.as_str()).cmp(&key))
                .unwrap_or_else(|i| i);
            list.insert(i, (at, a.ir.clone()));
            touched.insert(h.clone());
        }
    }
    for domain in served_domains(cache, touched) {
        let found = cache
            .table
            .binary_search_by(|v| v.name().cmp(domain.as_str()));
        if !cache.by_host.contains_key(domain.as_str()) {
            if let Ok(i) = found {
                cache.table.remove(i);
            }
            cache.entries.remove(domain.as_str());
            continue;
        }
        let vhost = spec.virtual_host(&cache.by_host, &mut cache.entries, &domain, run);
        match found {
            Ok(i) => cache.table[i] = vhost,
            Err(i) => cache.table.insert(i, vhost),
        }
    }
}

/// The domains whose virtual hosts routes with hostnames `touched` serve: each hostname
/// itself and, for a wildcard, every domain (present or past) it covers.
fn served_domains(cache: &PortCache, touched: BTreeSet<String>) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for h in touched {
        if h == "*" || h.starts_with("*.") {
            let known = cache
                .by_host
                .keys()
                .map(String::as_str)
                .chain(cache.table.iter().map(|v| v.name()));
            for d in known {
                if hostnames::covering(d).contains(&h) {
                    out.insert(d.to_string());
                }
            }
        }
        out.insert(h);
    }
    out
}

/// Up to this many routes in a virtual host, a route already chosen is found by a scan.
const FEW_ROUTES: usize = 16;

impl PortSpec<'_, '_> {
    /// The virtual host for `domain`, from the memo or built afresh.
    fn virtual_host(
        &self,
        by_host: &FastMap<String, Vec<(usize, Arc<RouteIr>)>>,
        entries: &mut FastMap<String, VhostEntry>,
        domain: &str,
        (ctx, port_filters, pass, stats): &mut PortRun<'_, '_, '_>,
    ) -> Arc<EncodedVirtualHost> {
        let hosts = || self.listeners.iter().map(|(_, l)| l.hostname.as_deref());
        let best = hostnames::most_specific(hosts(), domain);
        // One IR per route key this pass, so the pointer identifies the route. A few
        // routes (the usual virtual host) are checked against `chosen` itself; the set
        // is filled once there are more.
        let mut seen: FastSet<*const RouteIr> = FastSet::default();
        let mut chosen: Vec<&Arc<RouteIr>> = Vec::new();
        hostnames::for_each_covering(domain, |c| {
            for (at, ir) in by_host.get(c).into_iter().flatten() {
                let lh = self.listeners[*at].1.hostname.as_deref();
                if Some(lh) != best {
                    continue;
                }
                let new = if chosen.len() < FEW_ROUTES {
                    !chosen.iter().any(|c| Arc::ptr_eq(c, ir))
                } else {
                    if seen.is_empty() {
                        seen.extend(chosen.iter().map(|c| Arc::as_ptr(c)));
                    }
                    seen.insert(Arc::as_ptr(ir))
                };
                if new {
                    chosen.push(ir);
                }
            }
        });
        // The listener serving this domain, whose VirtualHostOptions apply.
        let serving = hosts().position(|h| Some(h) == best).unwrap_or_default();
        let vhost_spec = VhostSpec {
            port: self.port,
            domain,
            listener: (self.gateway, self.listeners[serving].1.name.as_str()),
            chosen,
            options: self.listener_options[serving].clone(),
        };
        let twin = self.earlier.iter().find_map(|t| {
            t.virtual_hosts
                .binary_search_by(|v| v.name().cmp(domain))
                .ok()
                .map(|i| &t.virtual_hosts[i])
        });
        get_or_build(
            entries,
            vhost_spec,
            twin,
            ctx,
            port_filters,
            (*pass, &mut **stats),
        )
    }
}

/// The virtual host for `domain` on `port`, from the routes that serve it, ordered by
/// Gateway API precedence across all of them. It is written from the routes' encodings;
/// only a redirect, finished with the port, is decoded and encoded again.
fn virtual_host(port: u16, domain: &str, chosen: &[&Arc<RouteIr>]) -> EncodedVirtualHost {
    let mut entries: Vec<_> = chosen
        .iter()
        .flat_map(|ir| ir.entries.iter().map(move |e| (ir.precedence(e), e)))
        .collect();
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    let redirects: Vec<Option<Vec<u8>>> = entries
        .iter()
        .map(|(_, e)| {
            let redirect = e.redirect.as_ref()?;
            // Our own encoding of a valid message: decoding it cannot fail.
            let mut r = Route::decode(&*e.route).unwrap_or_default();
            r.action = Some(route::Action::Redirect(redirect.to_action(port)));
            Some(r.encode_to_vec())
        })
        .collect();
    EncodedVirtualHost::from_routes(
        domain,
        entries
            .iter()
            .zip(&redirects)
            .map(|((_, e), r)| r.as_deref().unwrap_or(&e.route)),
    )
}

/// The HTTP filters the options of the routes attached to these listeners need, one per
/// name, ordered by stage then name.
fn option_filters(
    gi: usize,
    listeners: &[(usize, &ListenerPlan)],
    attachments: &Attachments,
    virtual_host_filters: Vec<OptionFilter>,
) -> Vec<OptionFilter> {
    let mut by_name: BTreeMap<String, OptionFilter> = virtual_host_filters
        .into_iter()
        .map(|f| (f.name.clone(), f))
        .collect();
    for (li, _) in listeners {
        for a in attachments.on(gi, *li) {
            for f in &a.ir.http_filters {
                by_name.entry(f.name.clone()).or_insert_with(|| f.clone());
            }
        }
    }
    let mut filters: Vec<OptionFilter> = by_name.into_values().collect();
    filters.sort_by(|a, b| (a.stage, &a.name).cmp(&(b.stage, &b.name)));
    filters
}

/// The clusters an HTTP filter's config names — ext_authz's authorization service, the
/// rate limit service — which the Gateway's snapshot must then carry.
fn filter_clusters(f: &OptionFilter) -> Vec<String> {
    use envoy_types::pb::envoy::config::core::v3::{grpc_service, http_uri};
    use envoy_types::pb::envoy::extensions::filters::http::ext_authz::v3::{ExtAuthz, ext_authz};
    use envoy_types::pb::envoy::extensions::filters::http::ratelimit::v3::RateLimit;
    use prost::Message;
    let grpc = |g: &envoy_types::pb::envoy::config::core::v3::GrpcService| match &g.target_specifier
    {
        Some(grpc_service::TargetSpecifier::EnvoyGrpc(e)) => Some(e.cluster_name.clone()),
        _ => None,
    };
    let bytes = f.config.value.as_slice();
    match f.config.type_url.rsplit('/').next().unwrap_or_default() {
        "envoy.extensions.filters.http.ext_authz.v3.ExtAuthz" => {
            match ExtAuthz::decode(bytes).ok().and_then(|e| e.services) {
                Some(ext_authz::Services::GrpcService(g)) => grpc(&g).into_iter().collect(),
                Some(ext_authz::Services::HttpService(h)) => h
                    .server_uri
                    .and_then(|u| u.http_upstream_type)
                    .map(|http_uri::HttpUpstreamType::Cluster(c)| c)
                    .into_iter()
                    .collect(),
                None => Vec::new(),
            }
        }
        "envoy.extensions.filters.http.ratelimit.v3.RateLimit" => RateLimit::decode(bytes)
            .ok()
            .and_then(|r| r.rate_limit_service)
            .and_then(|s| s.grpc_service)
            .and_then(|g| grpc(&g))
            .into_iter()
            .collect(),
        _ => Vec::new(),
    }
}

/// The accepted Upstream whose cluster is named `cluster`.
fn upstream_cluster(upstreams: &Upstreams, cluster: &str) -> Option<ClusterRef> {
    let rest = cluster.strip_prefix("upstream_")?;
    let (namespace, name) = rest.split_once('_')?;
    let key = ObjectKey::namespaced(crate::model::Kind::Upstream, namespace, name);
    upstreams
        .get(&key)
        .filter(|o| o.result.is_ok())
        .map(|_| ClusterRef::Upstream {
            namespace: namespace.to_string(),
            name: name.to_string(),
        })
}

/// The HTTP filter every chain ends with.
const ROUTER: &str = "envoy.filters.http.router";

/// The HTTP connection manager of one filter chain of `gateway`'s listener on `port`,
/// serving the Gateway listeners `sections`: their HttpListenerOptions applied, then the
/// HTTP filters — those the HttpListenerOptions need, then those the routes and virtual
/// hosts need (`route_filters`), one per name — by stage then name, router last.
fn hcm_filter(
    (gateway, port, route_name, scoped): (&ObjectKey, u16, &str, bool),
    sections: &[&str],
    route_filters: &[OptionFilter],
    ctx: &mut GatewayOptions<'_, '_>,
    referenced: &mut Vec<ClusterRef>,
) -> Filter {
    let base = HttpConnectionManager {
        stat_prefix: format!("http_{port}"),
        codec_type: http_connection_manager::CodecType::Auto as i32,
        route_specifier: Some(scoped::route_specifier(route_name, scoped)),
        http_filters: vec![HttpFilter {
            name: ROUTER.to_string(),
            config_type: Some(http_filter::ConfigType::TypedConfig(to_any(
                &Router::default(),
            ))),
            ..Default::default()
        }],
        upgrade_configs: vec![http_connection_manager::UpgradeConfig {
            upgrade_type: "websocket".to_string(),
            ..Default::default()
        }],
        ..Default::default()
    };
    let sources = ctx.targets.http_listeners.for_listeners(gateway, sections);
    let label = format!("{gateway} listener {}", sections.join(", "));
    let upstreams = ctx.upstreams;
    let (mut hcm, applied) = apply_options(
        base,
        &sources,
        &label,
        &mut ctx.plugins,
        |p, r| p.apply_http_connection_manager(r),
        |before, after, filters| {
            let chain_kept = after.http_filters.len() == 1 && after.http_filters[0].name == ROUTER;
            let routes_kept = after.route_specifier == before.route_specifier;
            if !(chain_kept && routes_kept) {
                return Some(
                    "the plugin changed the HTTP filter chain or the route configuration, \
                     which Weir owns; a plugin adds HTTP filters by returning them"
                        .to_string(),
                );
            }
            filters
                .iter()
                .flat_map(filter_clusters)
                .find(|c| upstream_cluster(upstreams, c).is_none())
                .map(|c| {
                    format!(
                        "its filter names cluster {c}, which no accepted Upstream provides \
                         (an Upstream ns/name is cluster upstream_<ns>_<name>)"
                    )
                })
        },
    );
    let mut filters = ctx.report(applied);
    referenced.extend(
        filters
            .iter()
            .flat_map(filter_clusters)
            .filter_map(|c| upstream_cluster(upstreams, &c)),
    );
    for f in route_filters {
        if !filters.iter().any(|g| g.name == f.name) {
            filters.push(f.clone());
        }
    }
    options::sort_filters(&mut filters);
    let router = hcm.http_filters.pop();
    hcm.http_filters = filters
        .into_iter()
        .map(|f| HttpFilter {
            name: f.name,
            config_type: Some(http_filter::ConfigType::TypedConfig(f.config)),
            disabled: f.disabled,
            ..Default::default()
        })
        .chain(router)
        .collect();
    Filter {
        name: "envoy.filters.network.http_connection_manager".to_string(),
        config_type: Some(filter::ConfigType::TypedConfig(to_any(&hcm))),
    }
}

/// `built` (the Envoy listener serving Gateway listeners `sections` of `gateway`) with
/// their ListenerOptions applied.
fn apply_listener_options(
    built: Listener,
    gateway: &ObjectKey,
    sections: &[&str],
    ctx: &mut GatewayOptions<'_, '_>,
) -> Listener {
    let sources = ctx.targets.listeners.for_listeners(gateway, sections);
    let label = format!("{gateway} listener {}", sections.join(", "));
    let (built, applied) = apply_options(
        built,
        &sources,
        &label,
        &mut ctx.plugins,
        |p, r| p.apply_listener(r),
        |before, after, filters| {
            if after.name != before.name || after.address != before.address {
                Some("the plugin changed the listener's name or address, which Weir owns".into())
            } else if !filters.is_empty() {
                Some(
                    "a ListenerOption cannot add HTTP filters; set this key on an HttpListenerOption"
                        .into(),
                )
            } else {
                None
            }
        },
    );
    ctx.report(applied);
    built
}

/// The Envoy listener on `port` for Gateway listeners `listeners`: one filter chain per
/// HTTPS listener (by SNI), or one shared by every HTTP listener; `hcm` builds the HTTP
/// connection manager of a chain from the Gateway listeners it serves.
fn listener(
    port: u16,
    listeners: &[(usize, &ListenerPlan)],
    https: bool,
    hcm: &mut dyn FnMut(&[&str]) -> Filter,
    secrets: &mut BTreeMap<String, Arc<TlsSecret>>,
) -> Listener {
    let mut filter_chains = Vec::new();
    let mut listener_filters = Vec::new();
    if https {
        listener_filters.push(ListenerFilter {
            name: "envoy.filters.listener.tls_inspector".to_string(),
            config_type: Some(listener_filter::ConfigType::TypedConfig(to_any(
                &TlsInspector::default(),
            ))),
            ..Default::default()
        });
        for (_, l) in listeners {
            let mut sds = Vec::new();
            for cert in &l.certs {
                let name = secret_name(&cert.namespace, &cert.name);
                if let (Some(crt), Some(key)) =
                    (cert.secret.value("tls.crt"), cert.secret.value("tls.key"))
                {
                    secrets.insert(
                        name.clone(),
                        Arc::new(tls_certificate_secret(name.clone(), crt, key)),
                    );
                }
                sds.push(SdsSecretConfig {
                    name,
                    sds_config: Some(ads()),
                });
            }
            let tls = DownstreamTlsContext {
                common_tls_context: Some(CommonTlsContext {
                    tls_certificate_sds_secret_configs: sds,
                    alpn_protocols: vec!["h2".to_string(), "http/1.1".to_string()],
                    ..Default::default()
                }),
                ..Default::default()
            };
            filter_chains.push(FilterChain {
                name: l.name.clone(),
                filter_chain_match: l.hostname.as_ref().map(|h| FilterChainMatch {
                    server_names: vec![h.clone()],
                    ..Default::default()
                }),
                transport_socket: Some(TransportSocket {
                    name: "envoy.transport_sockets.tls".to_string(),
                    config_type: Some(transport_socket::ConfigType::TypedConfig(to_any(&tls))),
                }),
                filters: vec![hcm(&[l.name.as_str()])],
                ..Default::default()
            });
        }
        filter_chains.sort_by(|a, b| a.name.cmp(&b.name));
    } else {
        filter_chains.push(FilterChain {
            name: "http".to_string(),
            filters: vec![hcm(&listeners
                .iter()
                .map(|(_, l)| l.name.as_str())
                .collect::<Vec<_>>())],
            ..Default::default()
        });
    }
    Listener {
        name: format!("listener_{port}"),
        address: Some(socket("0.0.0.0", port)),
        filter_chains,
        listener_filters,
        ..Default::default()
    }
}
