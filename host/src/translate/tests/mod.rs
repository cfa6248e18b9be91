//! Translator tests, one file per topic. Inputs are YAML manifests read through the file
//! source's parser (the real path), built with the `mk_*` helpers below.

mod backends;
mod bad_inputs;
mod clusters;
mod filters;
mod gateways;
mod options;
mod properties;
mod routing;

use std::path::Path;

use envoy_types::pb::envoy::config::cluster::v3::{Cluster, cluster};
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use envoy_types::pb::envoy::config::route::v3::{Route, RouteAction, VirtualHost, route};
use k8s_openapi::jiff::Timestamp;
use serde_json::Value;

use super::{Translation, Translator, UpstreamPlugins, UpstreamRequest, translate};
use crate::model::{Kind, ObjectKey};
use crate::source::file::{Format, parse_str};
use crate::store::Store;

/// A store holding every object in `yaml` (multi-document); panics on a parse error.
pub(super) fn mk_store(yaml: &str) -> Store {
    let loaded = parse_str(Path::new("test.yaml"), yaml, Format::Yaml);
    assert!(!loaded.has_errors(), "{:?}", loaded.diagnostics);
    let mut store = Store::new();
    store.reset(loaded.objects);
    store
}

/// Our GatewayClass `weir`.
pub(super) fn mk_class() -> String {
    "apiVersion: gateway.networking.k8s.io/v1\nkind: GatewayClass\nmetadata:\n  name: weir\nspec:\n  controllerName: gateway.weir.dev/controller\n---\n".to_string()
}

/// A Gateway of class `weir`; `listeners` is the YAML list under `spec.listeners`.
pub(super) fn mk_gateway(ns: impl ToString, name: impl ToString, listeners: &str) -> String {
    format!(
        "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata:\n  name: {}\n  namespace: {}\n  generation: 1\nspec:\n  gatewayClassName: weir\n  listeners:\n{}\n---\n",
        name.to_string(),
        ns.to_string(),
        indent(listeners, 2)
    )
}

/// An HTTP :80 listener named `http` admitting routes from every namespace.
pub(super) fn http_listener() -> &'static str {
    "- name: http\n  port: 80\n  protocol: HTTP\n  allowedRoutes:\n    namespaces:\n      from: All"
}

/// A Service with one port (`port` → `target`) and an EndpointSlice with `ips` ready.
pub(super) fn mk_service(
    ns: impl ToString,
    name: impl ToString,
    port: u16,
    ips: &[&str],
) -> String {
    let (ns, name) = (ns.to_string(), name.to_string());
    let endpoints: String = ips
        .iter()
        .map(|ip| format!("- addresses: [\"{ip}\"]\n  conditions:\n    ready: true\n"))
        .collect();
    format!(
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: {name}\n  namespace: {ns}\nspec:\n  ports:\n  - name: http\n    port: {port}\n    targetPort: 3000\n---\n\
         apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: {name}-abc\n  namespace: {ns}\n  labels:\n    kubernetes.io/service-name: {name}\naddressType: IPv4\nports:\n- name: http\n  port: 3000\nendpoints:\n{}---\n",
        if endpoints.is_empty() {
            "[]\n".to_string()
        } else {
            endpoints
        }
    )
}

/// An HTTPRoute; `spec` is the YAML under `spec`.
pub(super) fn mk_route(ns: impl ToString, name: impl ToString, spec: &str) -> String {
    format!(
        "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata:\n  name: {}\n  namespace: {}\n  generation: 3\nspec:\n{}\n---\n",
        name.to_string(),
        ns.to_string(),
        indent(spec, 2)
    )
}

/// A ReferenceGrant in `to_ns` letting `from_kind`s in `from_ns` refer to `to_kind`s.
pub(super) fn mk_grant(
    to_ns: &str,
    from_kind: &str,
    from_ns: &str,
    to_group: &str,
    to_kind: &str,
) -> String {
    format!(
        "apiVersion: gateway.networking.k8s.io/v1beta1\nkind: ReferenceGrant\nmetadata:\n  name: grant-{from_ns}\n  namespace: {to_ns}\nspec:\n  from:\n  - group: gateway.networking.k8s.io\n    kind: {from_kind}\n    namespace: {from_ns}\n  to:\n  - group: \"{to_group}\"\n    kind: {to_kind}\n---\n"
    )
}

/// The usual world: class, Gateway `infra/gw` (HTTP :80, all namespaces), Services
/// `infra/v1` and `infra/v2` on port 8080.
pub(super) fn mk_base() -> String {
    format!(
        "{}{}{}{}",
        mk_class(),
        mk_gateway("infra", "gw", http_listener()),
        mk_service("infra", "v1", 8080, &["10.0.0.1", "10.0.0.2"]),
        mk_service("infra", "v2", 8080, &["10.0.0.3"]),
    )
}

fn indent(s: &str, n: usize) -> String {
    let pad = " ".repeat(n);
    s.lines().map(|l| format!("{pad}{l}\n")).collect()
}

/// A fake plugin host: type `static` answers with a STATIC cluster, type `broken` declines
/// naming a field, anything else is unknown.
#[derive(Default)]
pub(super) struct FakePlugins {
    pub(super) calls: usize,
}

impl UpstreamPlugins for FakePlugins {
    fn translate_upstream(
        &mut self,
        r: &UpstreamRequest<'_>,
    ) -> Result<(Cluster, Option<ClusterLoadAssignment>), String> {
        self.calls += 1;
        match r.type_key {
            "static" => Ok((
                Cluster {
                    name: r.cluster_name.0.clone(),
                    cluster_discovery_type: Some(cluster::ClusterDiscoveryType::Type(
                        cluster::DiscoveryType::Static as i32,
                    )),
                    ..Default::default()
                },
                None,
            )),
            "kube" => Ok((
                Cluster {
                    name: r.cluster_name.0.clone(),
                    ..Default::default()
                },
                Some(super::cluster::load_assignment(
                    r.cluster_name.as_str(),
                    r.endpoints,
                )),
            )),
            "broken" => Err(
                "plugin `fake` rejected the Upstream: spec.broken.hosts[0].port: must not be 0"
                    .to_string(),
            ),
            other => Err(format!(
                "spec.{other}: no plugin claims upstream-type key `{other}`"
            )),
        }
    }
}

/// Translates with the fake plugins at the Unix epoch.
pub(super) fn run(store: &Store) -> Translation {
    translate(store, &mut FakePlugins::default(), Timestamp::UNIX_EPOCH)
}

/// Translates `yaml`.
pub(super) fn run_yaml(yaml: &str) -> Translation {
    run(&mk_store(yaml))
}

/// A translator run for incremental tests.
pub(super) fn run_with(t: &mut Translator, store: &Store) -> Translation {
    t.translate(store, &mut FakePlugins::default(), Timestamp::UNIX_EPOCH)
}

pub(super) fn key(kind: Kind, ns: &str, name: &str) -> ObjectKey {
    ObjectKey::namespaced(kind, ns, name)
}

/// The status of one object.
pub(super) fn status<'a>(t: &'a Translation, kind: Kind, ns: &str, name: &str) -> &'a Value {
    t.statuses
        .get(&key(kind, ns, name))
        .unwrap_or_else(|| panic!("no status for {kind}/{ns}/{name}: {:?}", t.statuses.keys()))
}

/// The condition `type_` in a `conditions` list.
pub(super) fn cond<'a>(v: &'a Value, type_: &str) -> &'a Value {
    v["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == type_))
        .unwrap_or_else(|| panic!("no {type_} condition in {v}"))
}

/// `(status, reason, message)` of a condition.
pub(super) fn csr(c: &Value) -> (String, String, String) {
    (
        c["status"].as_str().unwrap_or_default().to_string(),
        c["reason"].as_str().unwrap_or_default().to_string(),
        c["message"].as_str().unwrap_or_default().to_string(),
    )
}

/// Condition `type_` of the route's parent entry `i`.
pub(super) fn route_cond(
    t: &Translation,
    ns: &str,
    name: &str,
    i: usize,
    type_: &str,
) -> (String, String, String) {
    csr(cond(
        &status(t, Kind::HttpRoute, ns, name)["parents"][i],
        type_,
    ))
}

/// Condition `type_` of listener `listener` of Gateway `ns/name`.
pub(super) fn listener_cond(
    t: &Translation,
    ns: &str,
    name: &str,
    listener: &str,
    type_: &str,
) -> (String, String, String) {
    let s = status(t, Kind::Gateway, ns, name);
    let l = s["listeners"]
        .as_array()
        .and_then(|ls| ls.iter().find(|l| l["name"] == listener))
        .unwrap_or_else(|| panic!("no listener {listener} in {s}"));
    csr(cond(l, type_))
}

/// Attached routes of a listener.
pub(super) fn attached(t: &Translation, ns: &str, name: &str, listener: &str) -> i64 {
    let s = status(t, Kind::Gateway, ns, name);
    s["listeners"]
        .as_array()
        .and_then(|ls| ls.iter().find(|l| l["name"] == listener))
        .and_then(|l| l["attachedRoutes"].as_i64())
        .unwrap_or(-1)
}

/// The route tables serving `port` of a Gateway: `route_<port>`, or its scoped
/// per-host tables `route_<port>/<host>`.
pub(super) fn port_tables(
    res: &crate::translate::GatewayResources,
    port: u16,
) -> Vec<&crate::translate::RouteTable> {
    let name = format!("route_{port}");
    let scoped = format!("{name}/");
    res.routes
        .iter()
        .filter(|r| r.name == name || r.name.starts_with(&scoped))
        .collect()
}

/// The virtual host names serving `port` of a Gateway, in table order.
pub(super) fn port_hosts(res: &crate::translate::GatewayResources, port: u16) -> Vec<String> {
    port_tables(res, port)
        .iter()
        .flat_map(|r| r.virtual_hosts.iter().map(|v| v.name().to_string()))
        .collect()
}

/// The virtual host for `domain` serving `port` of Gateway `ns/name` (in `route_<port>`
/// or, for scoped routes, `route_<port>/<domain>`).
pub(super) fn vhost<'a>(
    t: &'a Translation,
    ns: &str,
    name: &str,
    port: u16,
    domain: &str,
) -> &'a VirtualHost {
    let res = &t.gateways[&key(Kind::Gateway, ns, name)];
    let tables = port_tables(res, port);
    assert!(!tables.is_empty(), "no route_{port}");
    let found = tables
        .iter()
        .flat_map(|r| r.virtual_hosts.iter())
        .find(|v| v.name() == domain)
        .unwrap_or_else(|| panic!("no virtual host {domain} in {:?}", port_hosts(res, port)));
    // Virtual hosts are kept encoded; a test's few decoded copies may live until it ends.
    Box::leak(Box::new(found.decode()))
}

/// Route names of a virtual host, in order.
pub(super) fn names(v: &VirtualHost) -> Vec<&str> {
    v.routes.iter().map(|r| r.name.as_str()).collect()
}

/// The forwarding action of a route.
pub(super) fn forward(r: &Route) -> &RouteAction {
    match &r.action {
        Some(route::Action::Route(a)) => a,
        other => panic!("route {} does not forward: {other:?}", r.name),
    }
}

/// The direct-response status of a route, if it answers directly.
pub(super) fn direct_status(r: &Route) -> Option<u32> {
    match &r.action {
        Some(route::Action::DirectResponse(d)) => Some(d.status),
        _ => None,
    }
}

/// The one route named `name` in the Gateway's port-80 catch-all virtual host.
pub(super) fn route_named<'a>(t: &'a Translation, name: &str) -> &'a Route {
    let v = vhost(t, "infra", "gw", 80, "*");
    v.routes
        .iter()
        .find(|r| r.name == name)
        .unwrap_or_else(|| panic!("no route {name} in {:?}", names(v)))
}
