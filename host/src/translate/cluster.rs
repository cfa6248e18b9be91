//! Clusters: Service ports become EDS clusters fed by EndpointSlices; Upstreams go through
//! the plugin for their type, then the host applies the common fields.
//!
//! Both are memoised in [`ClusterCache`]: a Service cluster by (Service, port) with the
//! Service and its EndpointSlices as dependencies; an Upstream by its content hash, the
//! plugin generation and whatever its translation read (a Service for types that name one,
//! a Secret for `sslConfig.secretRef`).

use std::collections::BTreeMap;
use std::sync::Arc;

use envoy_types::pb::envoy::config::cluster::v3::{
    CircuitBreakers, Cluster, OutlierDetection, UpstreamConnectionOptions, circuit_breakers,
    cluster,
};
use envoy_types::pb::envoy::config::core::v3::{
    self as core, Address, AggregatedConfigSource, ApiVersion, ConfigSource, DataSource,
    HealthCheck, Http2ProtocolOptions, SocketAddress, TcpKeepalive, TransportSocket, config_source,
    data_source, health_check, socket_address, transport_socket,
};
use envoy_types::pb::envoy::config::endpoint::v3::{
    ClusterLoadAssignment, Endpoint, LbEndpoint, LocalityLbEndpoints, lb_endpoint,
};
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{
    CertificateValidationContext, CommonTlsContext, SdsSecretConfig, Secret as TlsSecret,
    TlsCertificate, TlsParameters, UpstreamTlsContext, common_tls_context, secret, tls_parameters,
};
use envoy_types::pb::envoy::extensions::upstreams::http::v3::{
    HttpProtocolOptions, http_protocol_options,
};
use envoy_types::pb::envoy::r#type::matcher::v3::{StringMatcher, string_matcher};
use envoy_types::pb::envoy::r#type::v3::{Int64Range, Percent};
use envoy_types::pb::google::protobuf::{Any, Duration as PbDuration, UInt32Value};
use k8s_openapi::api::core::v1::ServicePort;
use prost::{Message, Name};

use crate::model::upstream::{self, LbPolicy, Spec as UpstreamValidated, UpstreamCommon};
use crate::model::{Kind, ObjectKey};
use crate::store::Endpoint as StoreEndpoint;

use super::FastMap;
use super::conditions::{Problem, R_INVALID_SPEC, R_PLUGIN_FAILED};
use super::deps::{DepSnapshot, PassId, PassReader, Recorder};
use super::parallel;
use super::{
    ClusterName, EncodedCluster, EncodedEndpoints, PassStats, ResolvedEndpoint, UpstreamPlugins,
    UpstreamRequest,
};

/// What a route forwards to: a Service port or an Upstream.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ClusterRef {
    /// Port `port` of Service `namespace/name`.
    Service {
        /// Namespace of the Service.
        namespace: String,
        /// Name of the Service.
        name: String,
        /// The Service port (not the target port).
        port: u16,
    },
    /// The Upstream `namespace/name`.
    Upstream {
        /// Namespace of the Upstream.
        namespace: String,
        /// Name of the Upstream.
        name: String,
    },
}

/// A set of cluster references, kept sorted in a vector: every route IR holds one, and
/// a `BTreeSet`'s first node has room for eleven (~640 B) where a route names one or two.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct ClusterSet(Vec<ClusterRef>);

impl ClusterSet {
    /// Adds `c` unless present.
    pub(crate) fn insert(&mut self, c: ClusterRef) {
        if let Err(i) = self.0.binary_search(&c) {
            self.0.insert(i, c);
        }
    }

    /// How many references there are.
    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }

    /// The references, in order.
    pub(crate) fn iter(&self) -> std::slice::Iter<'_, ClusterRef> {
        self.0.iter()
    }

    /// Removes every reference.
    pub(crate) fn clear(&mut self) {
        self.0 = Vec::new();
    }

    /// Gives back the room no reference uses.
    pub(crate) fn shrink_to_fit(&mut self) {
        self.0.shrink_to_fit();
    }
}

impl ClusterRef {
    /// The Envoy cluster name: `kube_<ns>_<service>_<port>` or `upstream_<ns>_<name>`.
    pub fn cluster_name(&self) -> String {
        match self {
            ClusterRef::Service {
                namespace,
                name,
                port,
            } => {
                // Built without the formatting machinery: a name per backend per pass.
                let mut out = String::with_capacity(namespace.len() + name.len() + 12);
                out.push_str("kube_");
                out.push_str(namespace);
                out.push('_');
                out.push_str(name);
                out.push('_');
                super::push_decimal(&mut out, usize::from(*port));
                out
            }
            ClusterRef::Upstream { namespace, name } => {
                let mut out = String::with_capacity(namespace.len() + name.len() + 10);
                out.push_str("upstream_");
                out.push_str(namespace);
                out.push('_');
                out.push_str(name);
                out
            }
        }
    }
}

/// A cluster ready for a snapshot.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Built {
    /// Kept encoded, like the endpoints: a service cluster differs from the next only by
    /// name, and decoded each is over 3 KiB.
    pub(crate) cluster: Arc<EncodedCluster>,
    pub(crate) endpoints: Option<Arc<EncodedEndpoints>>,
    /// SDS secrets the cluster's TLS settings refer to.
    pub(crate) secrets: Vec<Arc<TlsSecret>>,
}

/// How one Upstream fared.
#[derive(Clone, Debug)]
pub(crate) struct UpstreamOutcome {
    pub(crate) generation: Option<i64>,
    pub(crate) result: Result<Arc<Built>, Problem>,
    /// Fields set that Weir accepts but does not apply yet.
    pub(crate) ignored: Vec<&'static str>,
}

/// Every Upstream's outcome this pass.
pub(crate) type Upstreams = BTreeMap<ObjectKey, UpstreamOutcome>;

struct ServiceEntry {
    deps: DepSnapshot,
    /// The pass that last built or checked this entry.
    checked: PassId,
    built: Arc<Built>,
}

struct UpstreamEntry {
    hash: crate::store::ContentHash,
    plugins: u64,
    deps: DepSnapshot,
    /// The pass that last built or checked this entry.
    checked: PassId,
    outcome: UpstreamOutcome,
}

/// The cluster memo.
#[derive(Default)]
pub(crate) struct ClusterCache {
    /// By the Service port's [`ClusterRef`] (looked up by the routes' own, no allocation).
    services: FastMap<ClusterRef, ServiceEntry>,
    upstreams: FastMap<ObjectKey, UpstreamEntry>,
}

impl ClusterCache {
    /// Drops entries for objects that are gone; `pass` is the pass that just ran.
    pub(crate) fn retain_present(&mut self, store: &crate::store::Store, pass: PassId) {
        self.services.retain(|c, e| match c {
            // An entry built or checked in this pass that found its Service needs no
            // second search of the store: it does not change during a pass.
            ClusterRef::Service {
                namespace, name, ..
            } => {
                (e.checked == pass && super::deps::found(&e.deps, Kind::Service))
                    || store.service(namespace, name).is_some()
            }
            ClusterRef::Upstream { .. } => false,
        });
        self.upstreams.retain(|k, _| store.get(k).is_some());
    }

    /// The Service clusters among `keys` (each once; other references are skipped),
    /// from the memo or built, in no particular order, and how many were built. Many to
    /// build (a full pass) are built on the other cores while the calling thread runs
    /// `beside` (other work of the pass).
    pub(crate) fn services_beside<'k, O>(
        &mut self,
        reader: &mut PassReader<'_>,
        keys: impl IntoIterator<Item = &'k ClusterRef>,
        beside: impl FnOnce() -> O,
    ) -> (Vec<Arc<Built>>, usize, O) {
        let pass = reader.pass();
        let mut found = Vec::new();
        let mut todo: Vec<&ClusterRef> = Vec::new();
        for key in keys {
            if !matches!(key, ClusterRef::Service { .. }) {
                continue;
            }
            match self.services.get_mut(key) {
                // Built or checked this pass: the store does not change during a pass.
                Some(e) if e.checked == pass || reader.unchanged(e.checked, &e.deps) => {
                    e.checked = pass;
                    found.push(e.built.clone());
                }
                _ => todo.push(key),
            }
        }
        let store = reader.store;
        let (built, other) = parallel::map_beside(
            &todo,
            |key| {
                let ClusterRef::Service {
                    namespace,
                    name,
                    port,
                } = key
                else {
                    return None;
                };
                // A Service cluster reads its Service and its endpoints.
                let mut rec = Recorder::with_capacity(store, 2);
                let built = build_service_cluster(&mut rec, namespace, name, *port, key);
                // The key is copied here too, off the calling thread.
                Some(((*key).clone(), Arc::new(built), rec.into_snapshot()))
            },
            beside,
        );
        self.services.reserve(built.len());
        found.reserve(built.len());
        let mut count = 0;
        for (key, built, deps) in built.into_iter().flatten() {
            count += 1;
            found.push(built.clone());
            self.services.insert(
                key,
                ServiceEntry {
                    deps,
                    checked: pass,
                    built,
                },
            );
        }
        (found, count, other)
    }

    /// Translates every Upstream in the store (or reuses the memo).
    pub(crate) fn translate_upstreams(
        &mut self,
        reader: &mut PassReader<'_>,
        plugins: &mut dyn UpstreamPlugins,
        stats: &mut PassStats,
    ) -> Upstreams {
        let store = reader.store;
        let pass = reader.pass();
        let generation = plugins.generation();
        let mut out = Vec::new();
        for (key, object, hash) in store.of_kind_hashed(Kind::Upstream) {
            let Some(up) = object.as_upstream() else {
                continue;
            };
            let key = key.clone();
            let (ns, name) = (key.namespace.clone().unwrap_or_default(), key.name.clone());
            if let Some(e) = self.upstreams.get_mut(&key)
                && e.hash == hash
                && e.plugins == generation
                && reader.unchanged(e.checked, &e.deps)
            {
                e.checked = pass;
                out.push((key, e.outcome.clone()));
                continue;
            }
            stats.upstreams_translated += 1;
            let mut rec = reader.recorder();
            let outcome = translate_upstream(&mut rec, plugins, &key, &ns, &name, up);
            let deps = reader.snapshot(rec);
            self.upstreams.insert(
                key.clone(),
                UpstreamEntry {
                    hash,
                    plugins: generation,
                    deps,
                    checked: pass,
                    outcome: outcome.clone(),
                },
            );
            out.push((key, outcome));
        }
        out.into_iter().collect()
    }
}

fn translate_upstream(
    rec: &mut Recorder<'_>,
    plugins: &mut dyn UpstreamPlugins,
    key: &ObjectKey,
    ns: &str,
    name: &str,
    up: &crate::model::Upstream,
) -> UpstreamOutcome {
    let generation = up.metadata.generation;
    let spec = match UpstreamValidated::try_from(up) {
        Ok(s) => s,
        Err(errors) => {
            return UpstreamOutcome {
                generation,
                result: Err(Problem::new(R_INVALID_SPEC, errors.to_string())),
                ignored: Vec::new(),
            };
        }
    };
    let cluster_name = ClusterName(
        ClusterRef::Upstream {
            namespace: ns.to_string(),
            name: name.to_string(),
        }
        .cluster_name(),
    );
    // Types that name a Service (K8sGateway's `kube` block) get its endpoints resolved here.
    let endpoints = kube_service(&spec.type_block, ns)
        .map(|(svc_ns, svc, port)| service_endpoints(rec, &svc_ns, &svc, port))
        .unwrap_or_default();
    let request = UpstreamRequest {
        upstream: key,
        cluster_name: &cluster_name,
        type_key: &spec.type_name,
        config: &spec.type_block,
        endpoints: &endpoints,
    };
    let result = plugins
        .translate_upstream(&request)
        .map_err(|m| Problem::new(R_PLUGIN_FAILED, m))
        .and_then(|(mut cluster, mut endpoints)| {
            if cluster.name != cluster_name.0 {
                return Err(Problem::new(
                    R_PLUGIN_FAILED,
                    format!(
                        "the `{}` plugin named its cluster {:?}, not {:?} as asked",
                        spec.type_name, cluster.name, cluster_name.0
                    ),
                ));
            }
            if let Some(cla) = endpoints.as_mut() {
                cla.cluster_name = cluster_name.0.clone();
            }
            let secrets = apply_common(&mut cluster, &spec.common, rec, ns)?;
            // A plugin that returned endpoints separately serves them over EDS.
            if endpoints.is_some() {
                cluster.load_assignment = None;
                cluster.cluster_discovery_type = Some(cluster::ClusterDiscoveryType::Type(
                    cluster::DiscoveryType::Eds as i32,
                ));
                cluster.eds_cluster_config = Some(cluster::EdsClusterConfig {
                    eds_config: Some(ads()),
                    service_name: String::new(),
                });
            }
            Ok(Arc::new(Built {
                cluster: Arc::new(EncodedCluster::encode(&cluster)),
                endpoints: endpoints.map(|e| Arc::new(EncodedEndpoints::encode(&e))),
                secrets: secrets.into_iter().map(Arc::new).collect(),
            }))
        });
    UpstreamOutcome {
        generation,
        result,
        ignored: ignored_fields(&spec.common),
    }
}

/// `(namespace, service, port)` when a type block names a Service (`serviceName`,
/// `serviceNamespace`, `servicePort`).
fn kube_service(block: &serde_json::Value, ns: &str) -> Option<(String, String, u16)> {
    let name = block.get("serviceName")?.as_str()?;
    let port = u16::try_from(block.get("servicePort")?.as_u64()?).ok()?;
    let svc_ns = block
        .get("serviceNamespace")
        .and_then(|v| v.as_str())
        .unwrap_or(ns);
    Some((svc_ns.to_string(), name.to_string(), port))
}

/// Common fields we accept but do not apply yet; they are named in the Accepted message.
fn ignored_fields(c: &UpstreamCommon) -> Vec<&'static str> {
    let mut out = Vec::new();
    let mut note = |set: bool, name: &'static str| {
        if set {
            out.push(name);
        }
    };
    note(c.http_proxy_hostname.is_some(), "spec.httpProxyHostname");
    note(
        c.http_connect_ssl_config.is_some(),
        "spec.httpConnectSslConfig",
    );
    note(
        !c.http_connect_headers.is_empty(),
        "spec.httpConnectHeaders",
    );
    note(
        c.proxy_protocol_version.is_some(),
        "spec.proxyProtocolVersion",
    );
    note(c.preconnect_policy.is_some(), "spec.preconnectPolicy");
    if let Some(lb) = &c.load_balancer_config {
        note(
            lb.update_merge_window.is_some(),
            "spec.loadBalancerConfig.updateMergeWindow",
        );
        note(
            lb.locality_weighted_lb_config.is_some(),
            "spec.loadBalancerConfig.localityWeightedLbConfig",
        );
        note(
            lb.use_hostname_for_hashing.is_some(),
            "spec.loadBalancerConfig.useHostnameForHashing",
        );
        note(
            lb.round_robin
                .as_ref()
                .is_some_and(|r| r.slow_start_config.is_some())
                || lb
                    .least_request
                    .as_ref()
                    .is_some_and(|r| r.slow_start_config.is_some()),
            "spec.loadBalancerConfig.*.slowStartConfig",
        );
    }
    out
}

// === Endpoints ===

/// The EDS cluster (and its endpoints) of port `port` of Service `ns/name`, whose
/// reference is `key`.
fn build_service_cluster(
    rec: &mut Recorder<'_>,
    ns: &str,
    name: &str,
    port: u16,
    key: &ClusterRef,
) -> Built {
    let cluster_name = key.cluster_name();
    let svc_port = service_port(rec, ns, name, port);
    let app_protocol = svc_port.and_then(|p| p.app_protocol.as_deref());
    let endpoints = svc_port
        .map(|p| port_endpoints(rec, ns, name, p))
        .unwrap_or_default();
    let cluster = if app_protocol == Some("kubernetes.io/h2c") {
        let mut cluster = eds_cluster(&cluster_name);
        set_http2(&mut cluster, Http2ProtocolOptions::default());
        EncodedCluster::encode(&cluster)
    } else {
        EncodedCluster::with_name(&cluster_name, unnamed_eds_cluster())
    };
    Built {
        endpoints: Some(Arc::new(EncodedEndpoints::from_endpoints(
            &cluster_name,
            endpoints,
        ))),
        cluster: Arc::new(cluster),
        secrets: Vec::new(),
    }
}

/// The encoding of a plain Service cluster without its name, made once.
fn unnamed_eds_cluster() -> &'static [u8] {
    static UNNAMED: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    UNNAMED.get_or_init(|| eds_cluster("").encode_to_vec())
}

/// The endpoints of Service `ns/name` port `port` from its EndpointSlices: the ready ones,
/// or — only when none is ready — the serving ones (terminating endpoints that still
/// serve, per EndpointSlice semantics). The slice port is found by the Service port's name.
pub(crate) fn service_endpoints(
    rec: &mut Recorder<'_>,
    ns: &str,
    name: &str,
    port: u16,
) -> Vec<ResolvedEndpoint> {
    let Some(svc_port) = service_port(rec, ns, name, port) else {
        return Vec::new();
    };
    port_endpoints(rec, ns, name, svc_port)
        .iter()
        .map(|e| ResolvedEndpoint {
            address: e.address.clone(),
            port: e.port,
            weight: 0,
            ready: e.ready,
            labels: Vec::new(),
        })
        .collect()
}

/// Port `port` of Service `ns/name`, if both exist.
fn service_port<'s>(
    rec: &mut Recorder<'s>,
    ns: &str,
    name: &str,
    port: u16,
) -> Option<&'s ServicePort> {
    rec.service(ns, name)
        .and_then(|s| s.spec.as_ref())
        .and_then(|s| s.ports.as_ref())
        .and_then(|ps| ps.iter().find(|p| p.port == i32::from(port)))
}

/// The endpoints of `svc_port` of Service `ns/name`, from the store's endpoint discovery
/// (see [`crate::store::ServiceEndpoints`]); the slice port is found by the Service
/// port's name.
fn port_endpoints<'s>(
    rec: &mut Recorder<'s>,
    ns: &str,
    name: &str,
    svc_port: &ServicePort,
) -> &'s [StoreEndpoint] {
    rec.endpoints(ns, name, svc_port.name.as_deref().unwrap_or_default())
}

/// A ClusterLoadAssignment for `endpoints`.
pub(crate) fn load_assignment(
    cluster: &str,
    endpoints: &[ResolvedEndpoint],
) -> ClusterLoadAssignment {
    let lb_endpoints: Vec<LbEndpoint> = endpoints
        .iter()
        .map(|e| LbEndpoint {
            host_identifier: Some(lb_endpoint::HostIdentifier::Endpoint(Endpoint {
                address: Some(socket(&e.address, e.port)),
                ..Default::default()
            })),
            ..Default::default()
        })
        .collect();
    ClusterLoadAssignment {
        cluster_name: cluster.to_string(),
        endpoints: if lb_endpoints.is_empty() {
            Vec::new()
        } else {
            vec![LocalityLbEndpoints {
                lb_endpoints,
                ..Default::default()
            }]
        },
        ..Default::default()
    }
}

/// A TCP socket address.
pub(crate) fn socket(address: &str, port: u16) -> Address {
    Address {
        address: Some(core::address::Address::SocketAddress(SocketAddress {
            address: address.to_string(),
            port_specifier: Some(socket_address::PortSpecifier::PortValue(u32::from(port))),
            ..Default::default()
        })),
    }
}

/// The ADS config source (everything comes over the one aggregated stream).
pub(crate) fn ads() -> ConfigSource {
    ConfigSource {
        resource_api_version: ApiVersion::V3 as i32,
        config_source_specifier: Some(config_source::ConfigSourceSpecifier::Ads(
            AggregatedConfigSource {},
        )),
        ..Default::default()
    }
}

/// Packs a message into an `Any`.
pub(crate) fn to_any<M: Message + Name>(m: &M) -> Any {
    Any {
        type_url: M::type_url(),
        value: m.encode_to_vec(),
    }
}

fn duration(d: crate::model::Duration) -> PbDuration {
    let d = d.get();
    PbDuration {
        seconds: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        nanos: i32::try_from(d.subsec_nanos()).unwrap_or(0),
    }
}

fn u32v(v: u32) -> UInt32Value {
    UInt32Value { value: v }
}

/// An EDS cluster with Envoy's usual defaults and a 5s connect timeout.
fn eds_cluster(name: &str) -> Cluster {
    Cluster {
        name: name.to_string(),
        cluster_discovery_type: Some(cluster::ClusterDiscoveryType::Type(
            cluster::DiscoveryType::Eds as i32,
        )),
        eds_cluster_config: Some(cluster::EdsClusterConfig {
            eds_config: Some(ads()),
            service_name: String::new(),
        }),
        connect_timeout: Some(PbDuration {
            seconds: 5,
            nanos: 0,
        }),
        ..Default::default()
    }
}

const HTTP_PROTOCOL_OPTIONS: &str = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions";

fn protocol_options(c: &Cluster) -> HttpProtocolOptions {
    c.typed_extension_protocol_options
        .get(HTTP_PROTOCOL_OPTIONS)
        .and_then(|any| HttpProtocolOptions::decode(any.value.as_slice()).ok())
        .unwrap_or_default()
}

fn set_protocol_options(c: &mut Cluster, o: &HttpProtocolOptions) {
    c.typed_extension_protocol_options
        .insert(HTTP_PROTOCOL_OPTIONS.to_string(), to_any(o));
}

fn set_http2(c: &mut Cluster, h2: Http2ProtocolOptions) {
    let mut o = protocol_options(c);
    o.upstream_protocol_options = Some(
        http_protocol_options::UpstreamProtocolOptions::ExplicitHttpConfig(
            http_protocol_options::ExplicitHttpConfig {
                protocol_config: Some(
                    http_protocol_options::explicit_http_config::ProtocolConfig::Http2ProtocolOptions(h2),
                ),
            },
        ),
    );
    set_protocol_options(c, &o);
}

// === Upstream common fields ===

/// Applies the Upstream's common fields to the plugin's cluster; returns the SDS secrets
/// they need.
fn apply_common(
    c: &mut Cluster,
    common: &UpstreamCommon,
    rec: &mut Recorder<'_>,
    ns: &str,
) -> Result<Vec<TlsSecret>, Problem> {
    if let Some(cc) = &common.connection_config {
        if let Some(t) = cc.connect_timeout {
            c.connect_timeout = Some(duration(t));
        }
        if let Some(b) = cc.per_connection_buffer_limit_bytes {
            c.per_connection_buffer_limit_bytes = Some(u32v(b));
        }
        if let Some(k) = &cc.tcp_keepalive {
            let secs = |d: Option<crate::model::Duration>| {
                d.map(|d| u32v(u32::try_from(d.get().as_secs()).unwrap_or(u32::MAX)))
            };
            c.upstream_connection_options = Some(UpstreamConnectionOptions {
                tcp_keepalive: Some(TcpKeepalive {
                    keepalive_probes: k.keepalive_probes.map(u32v),
                    keepalive_time: secs(k.keepalive_time),
                    keepalive_interval: secs(k.keepalive_interval),
                }),
                ..Default::default()
            });
        }
        let http = cc.common_http_protocol_options.as_ref();
        if cc.max_requests_per_connection.is_some() || http.is_some() {
            let mut o = protocol_options(c);
            let mut common_opts = o.common_http_protocol_options.unwrap_or_default();
            if let Some(m) = cc.max_requests_per_connection {
                common_opts.max_requests_per_connection = Some(u32v(m));
            }
            if let Some(h) = http {
                common_opts.idle_timeout = h.idle_timeout.map(duration);
                common_opts.max_headers_count = h.max_headers_count.map(u32v);
                common_opts.max_stream_duration = h.max_stream_duration.map(duration);
                if let Some(a) = h.headers_with_underscores_action {
                    use core::http_protocol_options::HeadersWithUnderscoresAction as E;
                    common_opts.headers_with_underscores_action = match a {
                        upstream::HeadersWithUnderscoresAction::Allow => E::Allow,
                        upstream::HeadersWithUnderscoresAction::RejectRequest => E::RejectRequest,
                        upstream::HeadersWithUnderscoresAction::DropHeader => E::DropHeader,
                    } as i32;
                }
            }
            o.common_http_protocol_options = Some(common_opts);
            set_protocol_options(c, &o);
        }
    }
    if let Some(cb) = &common.circuit_breakers {
        c.circuit_breakers = Some(CircuitBreakers {
            thresholds: vec![circuit_breakers::Thresholds {
                max_connections: cb.max_connections.map(u32v),
                max_pending_requests: cb.max_pending_requests.map(u32v),
                max_requests: cb.max_requests.map(u32v),
                max_retries: cb.max_retries.map(u32v),
                ..Default::default()
            }],
            ..Default::default()
        });
    }
    if let Some(lb) = &common.load_balancer_config {
        match lb.policy() {
            None | Some(LbPolicy::RoundRobin(_)) => {}
            Some(LbPolicy::LeastRequest(p)) => {
                c.lb_policy = cluster::LbPolicy::LeastRequest as i32;
                if let Some(n) = p.choice_count {
                    c.lb_config = Some(cluster::LbConfig::LeastRequestLbConfig(
                        cluster::LeastRequestLbConfig {
                            choice_count: Some(u32v(n)),
                            ..Default::default()
                        },
                    ));
                }
            }
            Some(LbPolicy::Random) => c.lb_policy = cluster::LbPolicy::Random as i32,
            Some(LbPolicy::RingHash(r)) => {
                c.lb_policy = cluster::LbPolicy::RingHash as i32;
                if let Some(cfg) = &r.ring_hash_config {
                    c.lb_config = Some(cluster::LbConfig::RingHashLbConfig(
                        cluster::RingHashLbConfig {
                            minimum_ring_size: cfg.minimum_ring_size.map(|v| {
                                envoy_types::pb::google::protobuf::UInt64Value { value: v }
                            }),
                            maximum_ring_size: cfg.maximum_ring_size.map(|v| {
                                envoy_types::pb::google::protobuf::UInt64Value { value: v }
                            }),
                            ..Default::default()
                        },
                    ));
                }
            }
            Some(LbPolicy::Maglev) => c.lb_policy = cluster::LbPolicy::Maglev as i32,
        }
        if let Some(t) = lb.healthy_panic_threshold {
            let mut clb = c.common_lb_config.take().unwrap_or_default();
            clb.healthy_panic_threshold = Some(Percent { value: t });
            c.common_lb_config = Some(clb);
        }
    }
    for hc in &common.health_checks {
        c.health_checks.push(health_check(hc));
    }
    if let Some(od) = &common.outlier_detection {
        c.outlier_detection = Some(OutlierDetection {
            consecutive_5xx: od.consecutive_5xx.map(u32v),
            interval: od.interval.map(duration),
            base_ejection_time: od.base_ejection_time.map(duration),
            max_ejection_time: od.max_ejection_time.map(duration),
            max_ejection_percent: od.max_ejection_percent.map(u32v),
            enforcing_consecutive_5xx: od.enforcing_consecutive_5xx.map(u32v),
            enforcing_success_rate: od.enforcing_success_rate.map(u32v),
            success_rate_minimum_hosts: od.success_rate_minimum_hosts.map(u32v),
            success_rate_request_volume: od.success_rate_request_volume.map(u32v),
            success_rate_stdev_factor: od.success_rate_stdev_factor.map(u32v),
            consecutive_gateway_failure: od.consecutive_gateway_failure.map(u32v),
            enforcing_consecutive_gateway_failure: od
                .enforcing_consecutive_gateway_failure
                .map(u32v),
            split_external_local_origin_errors: od
                .split_external_local_origin_errors
                .unwrap_or(false),
            consecutive_local_origin_failure: od.consecutive_local_origin_failure.map(u32v),
            enforcing_consecutive_local_origin_failure: od
                .enforcing_consecutive_local_origin_failure
                .map(u32v),
            enforcing_local_origin_success_rate: od.enforcing_local_origin_success_rate.map(u32v),
            failure_percentage_threshold: od.failure_percentage_threshold.map(u32v),
            enforcing_failure_percentage: od.enforcing_failure_percentage.map(u32v),
            enforcing_failure_percentage_local_origin: od
                .enforcing_failure_percentage_local_origin
                .map(u32v),
            failure_percentage_minimum_hosts: od.failure_percentage_minimum_hosts.map(u32v),
            failure_percentage_request_volume: od.failure_percentage_request_volume.map(u32v),
            ..Default::default()
        });
    }
    let wants_h2 = common.use_http2 == Some(true)
        || common.initial_stream_window_size.is_some()
        || common.initial_connection_window_size.is_some()
        || common.max_concurrent_streams.is_some();
    if wants_h2 {
        set_http2(
            c,
            Http2ProtocolOptions {
                initial_stream_window_size: common.initial_stream_window_size.map(u32v),
                initial_connection_window_size: common.initial_connection_window_size.map(u32v),
                max_concurrent_streams: common.max_concurrent_streams.map(u32v),
                override_stream_error_on_invalid_http_message: common
                    .override_stream_error_on_invalid_http_message
                    .map(|v| envoy_types::pb::google::protobuf::BoolValue { value: v }),
                ..Default::default()
            },
        );
    }
    apply_deprecated(c, common);
    let mut secrets = Vec::new();
    if let Some(ssl) = &common.ssl_config {
        let tls = upstream_tls(ssl, rec, ns, &mut secrets)?;
        c.transport_socket = Some(TransportSocket {
            name: "envoy.transport_sockets.tls".to_string(),
            config_type: Some(transport_socket::ConfigType::TypedConfig(to_any(&tls))),
        });
    }
    Ok(secrets)
}

/// Fields whose Envoy counterparts are deprecated (moved into extension configs) but still
/// honoured by Envoy 1.40; K8sGateway sets them the same way.
#[allow(deprecated)]
fn apply_deprecated(c: &mut Cluster, common: &UpstreamCommon) {
    if let Some(p) = common.protocol_selection {
        c.protocol_selection = match p {
            upstream::ProtocolSelection::UseConfiguredProtocol => {
                cluster::ClusterProtocolSelection::UseConfiguredProtocol
            }
            upstream::ProtocolSelection::UseDownstreamProtocol => {
                cluster::ClusterProtocolSelection::UseDownstreamProtocol
            }
        } as i32;
    }
    if let Some(v) = common.ignore_health_on_host_removal {
        c.ignore_health_on_host_removal = v;
    }
    if let Some(v) = common.respect_dns_ttl {
        c.respect_dns_ttl = v;
    }
    if let Some(d) = common.dns_refresh_rate {
        c.dns_refresh_rate = Some(duration(d));
    }
}

fn health_check(hc: &upstream::HealthCheck) -> HealthCheck {
    let checker = if let Some(h) = &hc.http_health_check {
        Some(health_check::HealthChecker::HttpHealthCheck(
            health_check::HttpHealthCheck {
                host: h.host.clone().unwrap_or_default(),
                path: h.path.clone(),
                expected_statuses: h
                    .expected_statuses
                    .iter()
                    .map(|r| Int64Range {
                        start: r.start,
                        end: r.end,
                    })
                    .collect(),
                ..Default::default()
            },
        ))
    } else if let Some(t) = &hc.tcp_health_check {
        let payload = |p: &upstream::Payload| health_check::Payload {
            payload: match (&p.text, &p.binary) {
                (Some(t), _) => Some(health_check::payload::Payload::Text(t.clone())),
                (None, Some(b)) => Some(health_check::payload::Payload::Binary(
                    b.clone().into_bytes(),
                )),
                (None, None) => None,
            },
        };
        Some(health_check::HealthChecker::TcpHealthCheck(
            health_check::TcpHealthCheck {
                send: t.send.as_ref().map(payload),
                receive: t.receive.iter().map(payload).collect(),
                ..Default::default()
            },
        ))
    } else {
        hc.grpc_health_check.as_ref().map(|g| {
            health_check::HealthChecker::GrpcHealthCheck(health_check::GrpcHealthCheck {
                service_name: g.service_name.clone().unwrap_or_default(),
                authority: g.authority.clone().unwrap_or_default(),
                ..Default::default()
            })
        })
    };
    HealthCheck {
        timeout: hc.timeout.map(duration),
        interval: hc.interval.map(duration),
        unhealthy_threshold: hc.unhealthy_threshold.map(u32v),
        healthy_threshold: hc.healthy_threshold.map(u32v),
        no_traffic_interval: hc.no_traffic_interval.map(duration),
        unhealthy_interval: hc.unhealthy_interval.map(duration),
        unhealthy_edge_interval: hc.unhealthy_edge_interval.map(duration),
        healthy_edge_interval: hc.healthy_edge_interval.map(duration),
        always_log_health_check_failures: hc.always_log_health_check_failures.unwrap_or(false),
        health_checker: checker,
        ..Default::default()
    }
}

fn tls_version(v: upstream::TlsVersion) -> i32 {
    use tls_parameters::TlsProtocol as P;
    (match v {
        upstream::TlsVersion::Auto => P::TlsAuto,
        upstream::TlsVersion::V1_0 => P::TlSv10,
        upstream::TlsVersion::V1_1 => P::TlSv11,
        upstream::TlsVersion::V1_2 => P::TlSv12,
        upstream::TlsVersion::V1_3 => P::TlSv13,
    }) as i32
}

fn sds(name: &str) -> SdsSecretConfig {
    SdsSecretConfig {
        name: name.to_string(),
        sds_config: Some(ads()),
    }
}

fn inline(bytes: &[u8]) -> DataSource {
    DataSource {
        specifier: Some(data_source::Specifier::InlineBytes(bytes.to_vec())),
        ..Default::default()
    }
}

fn file(path: &str) -> DataSource {
    DataSource {
        specifier: Some(data_source::Specifier::Filename(path.to_string())),
        ..Default::default()
    }
}

/// The SDS name of a Secret's certificate: `secret_<ns>_<name>`.
pub(crate) fn secret_name(ns: &str, name: &str) -> String {
    format!("secret_{ns}_{name}")
}

/// An SDS TLS-certificate secret from a Secret's `tls.crt` and `tls.key`.
pub(crate) fn tls_certificate_secret(name: String, crt: &[u8], key: &[u8]) -> TlsSecret {
    TlsSecret {
        name,
        r#type: Some(secret::Type::TlsCertificate(TlsCertificate {
            certificate_chain: Some(inline(crt)),
            private_key: Some(inline(key)),
            ..Default::default()
        })),
    }
}

fn upstream_tls(
    ssl: &upstream::SslConfig,
    rec: &mut Recorder<'_>,
    ns: &str,
    secrets: &mut Vec<TlsSecret>,
) -> Result<UpstreamTlsContext, Problem> {
    let mut common = CommonTlsContext {
        alpn_protocols: ssl.alpn_protocols.clone(),
        ..Default::default()
    };
    if let Some(p) = &ssl.parameters {
        common.tls_params = Some(TlsParameters {
            tls_minimum_protocol_version: p.minimum_protocol_version.map_or(0, tls_version),
            tls_maximum_protocol_version: p.maximum_protocol_version.map_or(0, tls_version),
            cipher_suites: p.cipher_suites.clone(),
            ecdh_curves: p.ecdh_curves.clone(),
            ..Default::default()
        });
    }
    let mut validation = CertificateValidationContext {
        match_typed_subject_alt_names: Vec::new(),
        ..Default::default()
    };
    #[allow(deprecated)]
    {
        validation.match_subject_alt_names = ssl
            .verify_subject_alt_name
            .iter()
            .map(|s| StringMatcher {
                match_pattern: Some(string_matcher::MatchPattern::Exact(s.clone())),
                ..Default::default()
            })
            .collect();
    }
    if let Some(r) = &ssl.secret_ref {
        let sns = r.namespace.as_deref().unwrap_or(ns);
        let Some(secret) = rec.secret(sns, &r.name) else {
            return Err(Problem::new(
                R_INVALID_SPEC,
                format!(
                    "spec.sslConfig.secretRef: Secret {sns}/{} not found",
                    r.name
                ),
            ));
        };
        let name = secret_name(sns, &r.name);
        if let (Some(crt), Some(key)) = (secret.value("tls.crt"), secret.value("tls.key"))
            && ssl.one_way_tls != Some(true)
        {
            secrets.push(tls_certificate_secret(name.clone(), crt, key));
            common.tls_certificate_sds_secret_configs.push(sds(&name));
        }
        if let Some(ca) = secret.value("ca.crt") {
            validation.trusted_ca = Some(inline(ca));
        }
    }
    if let Some(f) = &ssl.ssl_files {
        if let (Some(crt), Some(key)) = (&f.tls_cert, &f.tls_key)
            && ssl.one_way_tls != Some(true)
        {
            common.tls_certificates.push(TlsCertificate {
                certificate_chain: Some(file(crt)),
                private_key: Some(file(key)),
                ..Default::default()
            });
        }
        if let Some(ca) = &f.root_ca {
            validation.trusted_ca = Some(file(ca));
        }
    }
    if validation != CertificateValidationContext::default() {
        common.validation_context_type =
            Some(common_tls_context::ValidationContextType::ValidationContext(validation));
    }
    Ok(UpstreamTlsContext {
        common_tls_context: Some(common),
        sni: ssl.sni.clone().unwrap_or_default(),
        allow_renegotiation: ssl.allow_renegotiation.unwrap_or(false),
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_service_cluster_is_the_template_with_its_name_in_front() {
        for name in ["kube_a_web_80", "x", ""] {
            let named = EncodedCluster::with_name(name, unnamed_eds_cluster());
            assert_eq!(named.as_bytes(), eds_cluster(name).encode_to_vec());
            assert_eq!(named.name(), name);
        }
    }
}
