//! Synthetic configurations for benchmarks and scale tests (issue 3, "Benchmark").
//!
//! [`Synthetic::store`] builds a [`Store`] shaped like a large cluster behind one Gateway:
//!
//! - GatewayClass `weir` and Gateway `infra/gw` with an HTTP listener on 8080 and an HTTPS
//!   listener on 8443 (`*.example.com`, certificate from Secret `infra/gw-tls`), both
//!   admitting routes from every namespace;
//! - `namespaces` namespaces (`ns-00`, …) holding, round robin, `services` Services (one
//!   port, 80 → 8080) with one EndpointSlice of three ready endpoints each, `upstreams`
//!   `static` Upstreams with a mix of common settings, and `routes` HTTPRoutes;
//! - each HTTPRoute has one hostname (four routes share one) and 1–3 rules; each rule has
//!   1–2 matches mixing path prefix / exact / regular expression with header, query
//!   parameter and method matches, a RequestHeaderModifier, and 1–3 weighted backendRefs:
//!   mostly Services in the route's namespace, some in the next namespace (allowed by a
//!   ReferenceGrant there) and some Upstreams;
//! - one ReferenceGrant per namespace for those cross-namespace references.
//!
//! Everything is derived from [`Synthetic::seed`] and the object's index, so the same
//! settings give the same store, and [`Synthetic::route`] can rebuild one route with a
//! changed path ([`Synthetic::change_route`]) to measure an incremental pass.
//!
//! [`StaticPlugins`] answers the `static` Upstream type natively (no Wasm), so timings
//! measure the translator alone; the bench example also runs the real plugin.
//!
//! ```
//! use weir::translate::synthetic::{StaticPlugins, Synthetic};
//! use weir::translate::Translator;
//!
//! let synthetic = Synthetic { routes: 20, services: 100, ..Synthetic::default() };
//! let mut store = synthetic.store();
//! let mut translator = Translator::new();
//! let now = k8s_openapi::jiff::Timestamp::UNIX_EPOCH;
//! translator.translate(&store, &mut StaticPlugins, now);
//! synthetic.change_route(&mut store, 7, 1);
//! translator.translate(&store, &mut StaticPlugins, now);
//! assert_eq!(translator.last_pass().routes_translated, 1);
//! ```

use std::collections::BTreeMap;

use envoy_types::pb::envoy::config::cluster::v3::{Cluster, cluster};
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use k8s_openapi::ByteString;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::model::gateway_api::{
    EndpointSlice, Gateway, GatewayClass, HttpRoute, Namespace, ObjectMeta, ReferenceGrant, Secret,
    Service,
};
use crate::model::{Object, Upstream};
use crate::store::Store;

use super::{ResolvedEndpoint, UpstreamPlugins, UpstreamRequest};

/// The Gateway's namespace.
pub const GATEWAY_NAMESPACE: &str = "infra";
/// The Gateway's name.
pub const GATEWAY_NAME: &str = "gw";

/// The size and seed of a synthetic configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Synthetic {
    /// HTTPRoutes.
    pub routes: usize,
    /// Services (each with one EndpointSlice of three endpoints).
    pub services: usize,
    /// `static` Upstreams.
    pub upstreams: usize,
    /// Namespaces the routes, Services and Upstreams are spread over.
    pub namespaces: usize,
    /// Seed of every random choice.
    pub seed: u64,
}

impl Default for Synthetic {
    /// 1,000 routes, 10,000 Services, 100 Upstreams over 50 namespaces.
    fn default() -> Self {
        Self {
            routes: 1_000,
            services: 10_000,
            upstreams: 100,
            namespaces: 50,
            seed: 0x5eed,
        }
    }
}

impl Synthetic {
    /// The settings the issue's benchmark uses for `routes` routes: 10,000 Services and one
    /// Upstream per 20 routes (at least one per namespace).
    pub fn with_routes(routes: usize) -> Self {
        let base = Self::default();
        Self {
            routes,
            upstreams: (routes / 20).max(base.namespaces),
            ..base
        }
    }

    /// Builds the whole store.
    pub fn store(&self) -> Store {
        let mut store = Store::new();
        for object in self.objects() {
            store.apply(object);
        }
        store
    }

    /// Every object of the configuration, in a fixed order.
    pub fn objects(&self) -> impl Iterator<Item = Object> + '_ {
        let fixed = [self.gateway_class(), self.gateway(), self.tls_secret()];
        fixed
            .into_iter()
            .chain((0..self.namespaces).flat_map(|n| [self.namespace(n), self.grant(n)]))
            .chain((0..self.services).flat_map(|s| [self.service(s), self.endpoint_slice(s)]))
            .chain((0..self.upstreams).map(|u| self.upstream(u)))
            .chain((0..self.routes).map(|r| self.route(r, 0)))
    }

    /// Replaces route `index` with `variant` of it (variant 0 is the original): the path
    /// of its first match gains `/v<variant>`.
    pub fn change_route(&self, store: &mut Store, index: usize, variant: u32) {
        store.apply(self.route(index, variant));
    }

    /// The namespace of index `i` (routes, Services and Upstreams go round robin).
    pub fn namespace_name(&self, i: usize) -> String {
        format!("ns-{:02}", i % self.namespaces.max(1))
    }

    /// The namespace and name of route `index`.
    pub fn route_name(&self, index: usize) -> (String, String) {
        (self.namespace_name(index), format!("route-{index:05}"))
    }

    fn rng(&self, what: u64, index: usize) -> Rng {
        Rng::new(self.seed ^ what.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ index as u64)
    }

    fn gateway_class(&self) -> Object {
        decode::<GatewayClass>(json!({
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "GatewayClass",
            "metadata": {"name": "weir", "generation": 1},
            "spec": {"controllerName": super::CONTROLLER_NAME},
        }))
        .into()
    }

    fn gateway(&self) -> Object {
        let all = json!({"namespaces": {"from": "All"}});
        decode::<Gateway>(json!({
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "Gateway",
            "metadata": {"name": GATEWAY_NAME, "namespace": GATEWAY_NAMESPACE, "generation": 1},
            "spec": {
                "gatewayClassName": "weir",
                "listeners": [
                    {"name": "http", "port": 8080, "protocol": "HTTP", "allowedRoutes": all},
                    {
                        "name": "https",
                        "port": 8443,
                        "protocol": "HTTPS",
                        "hostname": "*.example.com",
                        "tls": {"mode": "Terminate", "certificateRefs": [{"name": "gw-tls"}]},
                        "allowedRoutes": all,
                    },
                ],
            },
        }))
        .into()
    }

    fn tls_secret(&self) -> Object {
        let pem = |label: &str| {
            ByteString(
                format!("-----BEGIN {label}-----\nMIIBsynthetic\n-----END {label}-----\n")
                    .into_bytes(),
            )
        };
        Secret {
            metadata: meta(GATEWAY_NAMESPACE, "gw-tls"),
            type_: Some("kubernetes.io/tls".into()),
            data: Some(BTreeMap::from([
                ("tls.crt".to_string(), pem("CERTIFICATE")),
                ("tls.key".to_string(), pem("PRIVATE KEY")),
            ])),
            ..Default::default()
        }
        .into()
    }

    fn namespace(&self, n: usize) -> Object {
        Namespace {
            metadata: ObjectMeta {
                name: Some(self.namespace_name(n)),
                labels: Some(BTreeMap::from([("team".into(), format!("team-{}", n % 7))])),
                ..Default::default()
            },
            ..Default::default()
        }
        .into()
    }

    /// In namespace `n`: HTTPRoutes of the previous namespace may use its Services.
    fn grant(&self, n: usize) -> Object {
        let ns = self.namespace_name(n);
        let from = self.namespace_name(n + self.namespaces - 1);
        decode::<ReferenceGrant>(json!({
            "apiVersion": "gateway.networking.k8s.io/v1beta1",
            "kind": "ReferenceGrant",
            "metadata": {"name": format!("from-{from}"), "namespace": ns},
            "spec": {
                "from": [{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute", "namespace": from}],
                "to": [{"group": "", "kind": "Service"}],
            },
        }))
        .into()
    }

    fn service_name(&self, s: usize) -> String {
        format!("svc-{:04}", s / self.namespaces.max(1))
    }

    fn service(&self, s: usize) -> Object {
        decode::<Service>(json!({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": self.service_name(s), "namespace": self.namespace_name(s)},
            "spec": {"ports": [{"name": "http", "port": 80, "targetPort": 8080}]},
        }))
        .into()
    }

    fn endpoint_slice(&self, s: usize) -> Object {
        let endpoints: Vec<Value> = (0..3)
            .map(|e| {
                let ip = s * 3 + e;
                json!({
                    "addresses": [format!("10.{}.{}.{}", (ip >> 16) & 0xff, (ip >> 8) & 0xff, ip & 0xff)],
                    "conditions": {"ready": true, "serving": true, "terminating": false},
                })
            })
            .collect();
        let name = self.service_name(s);
        decode::<EndpointSlice>(json!({
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {
                "name": format!("{name}-x7k2p"),
                "namespace": self.namespace_name(s),
                "labels": {crate::model::gateway_api::SERVICE_NAME_LABEL: name},
            },
            "addressType": "IPv4",
            "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
            "endpoints": endpoints,
        }))
        .into()
    }

    fn upstream_name(&self, u: usize) -> String {
        format!("upstream-{:03}", u / self.namespaces.max(1))
    }

    fn upstream(&self, u: usize) -> Object {
        let hosts: Vec<Value> = (0..2)
            .map(|h| json!({"addr": format!("10.250.{}.{}", u % 250, h + 1), "port": 8080}))
            .collect();
        let mut spec = json!({"static": {"hosts": hosts}});
        match u % 4 {
            0 => {}
            1 => spec["circuitBreakers"] = json!({"maxConnections": 1024, "maxRequests": 4096}),
            2 => spec["loadBalancerConfig"] = json!({"leastRequest": {"choiceCount": 3}}),
            _ => spec["useHttp2"] = json!(true),
        }
        decode::<Upstream>(json!({
            "apiVersion": "gateway.weir.dev/v1alpha1",
            "kind": "Upstream",
            "metadata": {"name": self.upstream_name(u), "namespace": self.namespace_name(u), "generation": 1},
            "spec": spec,
        }))
        .into()
    }

    /// Route `index`; `variant` changes the path of its first match.
    pub fn route(&self, index: usize, variant: u32) -> Object {
        let mut rng = self.rng(1, index);
        let (ns, name) = self.route_name(index);
        let n_rules = 1 + rng.below(3);
        let rules: Vec<Value> = (0..n_rules)
            .map(|r| self.rule(&mut rng, index, r, (r == 0).then_some(variant)))
            .collect();
        decode::<HttpRoute>(json!({
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "HTTPRoute",
            "metadata": {"name": name, "namespace": ns, "generation": 1 + i64::from(variant)},
            "spec": {
                "parentRefs": [{"name": GATEWAY_NAME, "namespace": GATEWAY_NAMESPACE}],
                "hostnames": [format!("app-{:04}.example.com", index / 4)],
                "rules": rules,
            },
        }))
        .into()
    }

    fn rule(&self, rng: &mut Rng, index: usize, r: usize, variant: Option<u32>) -> Value {
        let n_matches = 1 + rng.below(2);
        let matches: Vec<Value> = (0..n_matches)
            .map(|m| {
                let base = format!("/r{index}/rule{r}/m{m}");
                let mut path = match rng.below(4) {
                    0 => json!({"type": "Exact", "value": base}),
                    1 => json!({"type": "RegularExpression", "value": format!("^{base}/items/[0-9]+$")}),
                    _ => json!({"type": "PathPrefix", "value": base}),
                };
                if let (0, Some(v)) = (m, variant.filter(|v| *v > 0)) {
                    let changed = format!("{}/v{v}", path["value"].as_str().unwrap_or_default());
                    path = json!({"type": "PathPrefix", "value": changed});
                }
                let mut one = json!({"path": path});
                if rng.below(3) == 0 {
                    one["headers"] = json!([{"type": "Exact", "name": "x-tenant", "value": format!("t{}", rng.below(10))}]);
                }
                if rng.below(4) == 0 {
                    one["queryParams"] = json!([{"type": "Exact", "name": "version", "value": format!("v{}", rng.below(3))}]);
                }
                if rng.below(6) == 0 {
                    one["method"] = json!("GET");
                }
                one
            })
            .collect();
        let n_backends = 1 + rng.below(3);
        let backends: Vec<Value> = (0..n_backends)
            .map(|_| self.backend_ref(rng, index))
            .collect();
        json!({
            "matches": matches,
            "filters": [{
                "type": "RequestHeaderModifier",
                "requestHeaderModifier": {
                    "set": [{"name": "x-route", "value": format!("route-{index}")}],
                    "add": [{"name": "x-rule", "value": format!("{r}")}],
                    "remove": ["x-debug"],
                },
            }],
            "backendRefs": backends,
        })
    }

    fn backend_ref(&self, rng: &mut Rng, index: usize) -> Value {
        let nss = self.namespaces.max(1);
        let route_ns = index % nss;
        let weight = 1 + rng.below(100);
        match rng.below(10) {
            // An Upstream in the route's namespace.
            0 if self.upstreams > route_ns => {
                let per_ns = (self.upstreams - route_ns).div_ceil(nss);
                let u = route_ns + nss * rng.below(per_ns);
                json!({
                    "group": crate::model::WEIR_GROUP,
                    "kind": "Upstream",
                    "name": self.upstream_name(u),
                    "weight": weight,
                })
            }
            // A Service in the next namespace (its ReferenceGrant allows it).
            1 => {
                let ns = (route_ns + 1) % nss;
                json!({
                    "name": self.service_name(self.pick_service(rng, ns)),
                    "namespace": self.namespace_name(ns),
                    "port": 80,
                    "weight": weight,
                })
            }
            _ => json!({
                "name": self.service_name(self.pick_service(rng, route_ns)),
                "port": 80,
                "weight": weight,
            }),
        }
    }

    /// The index of a random Service in namespace `ns`.
    fn pick_service(&self, rng: &mut Rng, ns: usize) -> usize {
        let nss = self.namespaces.max(1);
        let in_ns = self.services.saturating_sub(ns).div_ceil(nss).max(1);
        ns + nss * rng.below(in_ns)
    }
}

/// Decodes a generated manifest; our manifests are fixed, so a field the type does not
/// know is a bug here and panics.
fn decode<T: DeserializeOwned>(value: Value) -> T {
    let mut ignored = Vec::new();
    let out: Result<T, _> = serde_ignored::deserialize(value, |path| {
        // Kubernetes' type fields are not fields of the Rust types.
        let path = path.to_string();
        if path != "apiVersion" && path != "kind" {
            ignored.push(path);
        }
    });
    match out {
        Ok(t) if ignored.is_empty() => t,
        Ok(_) => panic!("synthetic manifest has unknown fields: {ignored:?}"),
        Err(e) => panic!("synthetic manifest does not decode: {e}"),
    }
}

fn meta(ns: &str, name: &str) -> ObjectMeta {
    ObjectMeta {
        namespace: Some(ns.to_string()),
        name: Some(name.to_string()),
        ..Default::default()
    }
}

/// SplitMix64: small, fast and the same everywhere.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Self(seed)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n` > 0).
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

// === Manifests on disk ===

impl Synthetic {
    /// The file [`Synthetic::write_yaml_dir`] writes route `index` to, relative to the
    /// directory.
    pub fn route_file(&self, index: usize) -> std::path::PathBuf {
        std::path::Path::new("routes").join(format!("route-{index:05}.yaml"))
    }

    /// Route `index` (`variant` as in [`Synthetic::route`]) as a JSON manifest.
    pub fn route_manifest(&self, index: usize, variant: u32) -> Value {
        self.route(index, variant)
            .to_json_unredacted()
            .expect("an HTTPRoute serializes")
    }

    /// Writes the configuration as YAML manifests into `dir`, for `weir serve
    /// --source file:DIR`: every object but the HTTPRoutes goes into
    /// `base/objects-NNNN.yaml`, 100 documents a file, and each route of `routes`
    /// (variant 0) gets its own [`Synthetic::route_file`]. `edit` sees each manifest as
    /// JSON before it is written (a benchmark points endpoints at local backends there).
    /// The Secret is written in full: this is synthetic data.
    pub fn write_yaml_dir(
        &self,
        dir: &std::path::Path,
        routes: std::ops::Range<usize>,
        edit: &mut dyn FnMut(&mut Value),
    ) -> std::io::Result<()> {
        const PER_FILE: usize = 100;
        std::fs::create_dir_all(dir.join("base"))?;
        std::fs::create_dir_all(dir.join("routes"))?;
        let mut base = String::new();
        let mut written = 0;
        let others = self
            .objects()
            .filter(|o| o.kind() != crate::model::Kind::HttpRoute);
        for (i, object) in others.enumerate() {
            let mut manifest = object.to_json_unredacted().map_err(std::io::Error::other)?;
            edit(&mut manifest);
            base.push_str("---\n");
            base.push_str(&manifest_yaml(&manifest)?);
            if (i + 1) % PER_FILE == 0 {
                let file = dir.join(format!("base/objects-{written:04}.yaml"));
                std::fs::write(file, std::mem::take(&mut base))?;
                written += 1;
            }
        }
        if !base.is_empty() {
            std::fs::write(dir.join(format!("base/objects-{written:04}.yaml")), base)?;
        }
        for index in routes {
            let mut manifest = self.route_manifest(index, 0);
            edit(&mut manifest);
            std::fs::write(dir.join(self.route_file(index)), manifest_yaml(&manifest)?)?;
        }
        Ok(())
    }
}

/// A JSON manifest as a YAML document.
pub fn manifest_yaml(manifest: &Value) -> std::io::Result<String> {
    serde_yaml_ng::to_string(manifest).map_err(std::io::Error::other)
}

// === StaticPlugins ===

/// A native stand-in for the `static` Upstream plugin: a STATIC cluster whose endpoints
/// are the type block's `hosts`. Other types are declined. No Wasm, so benchmarks time the
/// translator alone.
#[derive(Clone, Copy, Debug, Default)]
pub struct StaticPlugins;

impl UpstreamPlugins for StaticPlugins {
    fn translate_upstream(
        &mut self,
        request: &UpstreamRequest<'_>,
    ) -> Result<(Cluster, Option<ClusterLoadAssignment>), String> {
        if request.type_key != "static" {
            return Err(format!(
                "spec.{0}: no plugin claims upstream-type key `{0}`",
                request.type_key
            ));
        }
        let hosts: Vec<ResolvedEndpoint> = request
            .config
            .get("hosts")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(|h| ResolvedEndpoint {
                address: h["addr"].as_str().unwrap_or_default().to_string(),
                port: h["port"]
                    .as_u64()
                    .and_then(|p| u16::try_from(p).ok())
                    .unwrap_or(80),
                weight: 0,
                ready: true,
                labels: Vec::new(),
            })
            .collect();
        if hosts.is_empty() {
            return Err(format!(
                "spec.{}.hosts: must list at least one host",
                request.type_key
            ));
        }
        let name = request.cluster_name.as_str();
        Ok((
            Cluster {
                name: name.to_string(),
                cluster_discovery_type: Some(cluster::ClusterDiscoveryType::Type(
                    cluster::DiscoveryType::Static as i32,
                )),
                load_assignment: Some(super::cluster::load_assignment(name, &hosts)),
                ..Default::default()
            },
            None,
        ))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use k8s_openapi::jiff::Timestamp;

    use super::*;
    use crate::model::{Kind, ObjectKey};
    use crate::translate::Translator;

    fn small() -> Synthetic {
        Synthetic {
            routes: 50,
            services: 200,
            upstreams: 12,
            namespaces: 5,
            seed: 7,
        }
    }

    #[test]
    fn synthetic_store_translates_with_every_route_accepted_and_every_cluster_present() {
        let synthetic = small();
        let store = synthetic.store();
        assert_eq!(store.http_routes().count(), 50);
        let t = Translator::new().translate(&store, &mut StaticPlugins, Timestamp::UNIX_EPOCH);
        let gw =
            &t.gateways[&ObjectKey::namespaced(Kind::Gateway, GATEWAY_NAMESPACE, GATEWAY_NAME)];
        assert_eq!(gw.listeners.len(), 2);
        assert_eq!(gw.secrets.len(), 1);
        for i in 0..synthetic.routes {
            let (ns, name) = synthetic.route_name(i);
            let status = &t.statuses[&ObjectKey::namespaced(Kind::HttpRoute, &ns, &name)];
            let parents = status["parents"].as_array().expect("parents");
            assert_eq!(parents.len(), 1, "{ns}/{name}");
            for c in parents[0]["conditions"].as_array().expect("conditions") {
                assert_eq!(c["status"], "True", "{ns}/{name}: {c}");
            }
        }
        let defined: BTreeSet<&str> = gw.clusters.iter().map(|c| c.name()).collect();
        let mut referenced = BTreeSet::new();
        for rc in &gw.routes {
            for vh in &rc.virtual_hosts {
                for r in &vh.decode().routes {
                    use envoy_types::pb::envoy::config::route::v3::{route, route_action};
                    let Some(route::Action::Route(a)) = &r.action else {
                        panic!("{} does not forward", r.name)
                    };
                    match &a.cluster_specifier {
                        Some(route_action::ClusterSpecifier::Cluster(c)) => {
                            referenced.insert(c.clone());
                        }
                        Some(route_action::ClusterSpecifier::WeightedClusters(w)) => {
                            referenced.extend(w.clusters.iter().map(|c| c.name.clone()));
                        }
                        other => panic!("{}: {other:?}", r.name),
                    }
                }
            }
        }
        assert!(referenced.iter().any(|c| c.starts_with("upstream_")));
        for c in &referenced {
            assert!(defined.contains(c.as_str()), "cluster {c} is not defined");
        }
        let eds: BTreeSet<&str> = gw.endpoints.iter().map(|e| e.name()).collect();
        for c in defined.iter().filter(|c| c.starts_with("kube_")) {
            assert!(eds.contains(c), "no endpoints for {c}");
        }
        for (key, status) in &t.statuses {
            if key.kind == Kind::Upstream {
                assert_eq!(status["conditions"][0]["status"], "True", "{key}: {status}");
            }
        }
    }

    #[test]
    fn synthetic_store_is_deterministic_and_a_change_retranslates_one_route() {
        let synthetic = small();
        let mut store = synthetic.store();
        let again = synthetic.store();
        let hashes = |s: &Store| s.iter().map(|(k, _, h)| (k.clone(), h)).collect::<Vec<_>>();
        assert_eq!(hashes(&store), hashes(&again));
        let mut translator = Translator::new();
        translator.translate(&store, &mut StaticPlugins, Timestamp::UNIX_EPOCH);
        synthetic.change_route(&mut store, 3, 1);
        translator.translate(&store, &mut StaticPlugins, Timestamp::UNIX_EPOCH);
        let pass = translator.last_pass();
        assert_eq!(pass.routes_translated, 1);
        assert_eq!(pass.routes_reused, synthetic.routes - 1);
        assert_eq!(pass.upstreams_translated, 0);
    }

    #[test]
    fn synthetic_yaml_dir_loads_back_as_the_same_objects() {
        let synthetic = small();
        let dir = tempfile::tempdir().expect("temporary directory");
        synthetic
            .write_yaml_dir(dir.path(), 0..synthetic.routes, &mut |_| {})
            .expect("written");
        let loaded = crate::source::file::load(&[dir.path()]).expect("loaded");
        assert!(!loaded.has_errors(), "{:?}", loaded.diagnostics);
        let mut from_disk = Store::new();
        for object in loaded.objects {
            from_disk.apply(object);
        }
        let hashes = |s: &Store| s.iter().map(|(k, _, h)| (k.clone(), h)).collect::<Vec<_>>();
        assert_eq!(hashes(&from_disk), hashes(&synthetic.store()));
    }
}
