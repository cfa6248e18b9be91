//! `Upstream`: a destination for routed requests, with one type block and common fields.
//!
//! An Upstream's spec holds exactly one *type block* — `static`, `kube`, `aws`, … — owned by
//! the upstream-type plugin that claims that key, plus common fields the host applies to
//! every cluster (TLS, circuit breakers, load balancing, health checks, outlier detection,
//! connection settings, HTTP/2). Any top-level spec key that is not a common field is a type
//! block, kept as JSON for its plugin; the common fields are typed and reject unknown keys.
//! Field names follow K8sGateway's `gloo.solo.io/v1` Upstream, so its manifests read
//! unchanged.
//!
//! [`UpstreamSpec::validate`] (or `Spec::try_from(&Upstream)`) turns the raw spec into the
//! validated [`Spec`] the translator uses, or a list of field errors.

use std::collections::BTreeMap;
use std::fmt;

use kube::CustomResource;
use schemars::JsonSchema;
use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

use super::duration::Duration;
use super::status::WeirStatus;
use super::validation::FieldErrors;

/// Desired state of an Upstream: exactly one type block plus the common fields.
#[derive(CustomResource, Serialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "gateway.weir.dev",
    version = "v1alpha1",
    kind = "Upstream",
    plural = "upstreams",
    shortname = "us",
    namespaced,
    category = "weir",
    doc = "An Upstream: a destination for routed requests (one type block, handled by its plugin, plus common cluster settings)",
    status = "WeirStatus",
    derive = "PartialEq",
    derive = "Default"
)]
pub struct UpstreamSpec {
    /// Settings every Upstream type shares.
    #[serde(flatten)]
    pub common: UpstreamCommon,
    /// The type blocks by key (`static`, `kube`, …); a valid Upstream has exactly one. Each
    /// is handed, as JSON, to the plugin that claims its key.
    #[serde(flatten)]
    pub types: BTreeMap<String, serde_json::Value>,
}

/// The settings every Upstream type shares (K8sGateway's names).
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct UpstreamCommon {
    /// Labels discovery copied from the source of this Upstream (informational).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub discovery_metadata: Option<DiscoveryMetadata>,
    /// Originate TLS to the upstream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssl_config: Option<SslConfig>,
    /// Circuit breaker thresholds; Envoy's defaults when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub circuit_breakers: Option<CircuitBreakers>,
    /// Load-balancing policy and its settings; round robin when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_balancer_config: Option<LoadBalancerConfig>,
    /// Active health checks.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub health_checks: Vec<HealthCheck>,
    /// Passive health checking (ejecting hosts that fail).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outlier_detection: Option<OutlierDetection>,
    /// Connection settings: connect timeout, keepalive, buffer limits, HTTP options.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection_config: Option<ConnectionConfig>,
    /// How Envoy picks the upstream protocol (HTTP/1.1 or HTTP/2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol_selection: Option<ProtocolSelection>,
    /// Speak HTTP/2 to the upstream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub use_http2: Option<bool>,
    /// HTTP/2 initial stream-level flow-control window, 65535..=2147483647 bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initial_stream_window_size: Option<u32>,
    /// HTTP/2 initial connection-level flow-control window, 65535..=2147483647 bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initial_connection_window_size: Option<u32>,
    /// HTTP/2 maximum concurrent streams per connection, 1..=2147483647.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_concurrent_streams: Option<u32>,
    /// On an invalid HTTP/2 message, reset only the offending stream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub override_stream_error_on_invalid_http_message: Option<bool>,
    /// The upstream is an HTTP CONNECT proxy; this is the host:port to CONNECT to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_proxy_hostname: Option<String>,
    /// TLS towards the HTTP CONNECT proxy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_connect_ssl_config: Option<SslConfig>,
    /// Headers sent with the HTTP CONNECT request.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub http_connect_headers: Vec<HeaderValue>,
    /// Remove a host as soon as discovery drops it, whatever its health.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ignore_health_on_host_removal: Option<bool>,
    /// Re-resolve DNS when the record's TTL expires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub respect_dns_ttl: Option<bool>,
    /// DNS refresh interval for DNS-resolved upstreams (at least 1ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns_refresh_rate: Option<Duration>,
    /// Wrap upstream connections in the PROXY protocol.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy_protocol_version: Option<ProxyProtocolVersion>,
    /// Open connections ahead of demand.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preconnect_policy: Option<PreconnectPolicy>,
    /// Accepted for K8sGateway compatibility; Weir has no Istio integration, so it has no effect.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disable_istio_auto_mtls: Option<bool>,
}

/// Labels recorded by discovery.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DiscoveryMetadata {
    /// Labels of the discovered source.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

/// How to originate TLS to an upstream.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SslConfig {
    /// A Secret (type `kubernetes.io/tls`, optionally with `ca.crt`) holding the client
    /// certificate and trust roots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<SecretRef>,
    /// Certificate files on the proxy's filesystem.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssl_files: Option<SslFiles>,
    /// SNI to send.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sni: Option<String>,
    /// Accept the server certificate only if it has one of these subject alternative names.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub verify_subject_alt_name: Vec<String>,
    /// TLS versions, cipher suites and curves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<SslParameters>,
    /// ALPN protocols to offer.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub alpn_protocols: Vec<String>,
    /// Allow the server to renegotiate (TLS 1.2 and below).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_renegotiation: Option<bool>,
    /// Do not present a client certificate even if one is configured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub one_way_tls: Option<bool>,
}

/// A reference to a Secret; the namespace defaults to the referring object's.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SecretRef {
    /// Name of the Secret.
    pub name: String,
    /// Namespace of the Secret; the Upstream's own when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// Certificate files on the proxy's filesystem.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SslFiles {
    /// Client certificate chain (PEM).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_cert: Option<String>,
    /// Client private key (PEM).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_key: Option<String>,
    /// Trusted CA bundle (PEM).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root_ca: Option<String>,
    /// OCSP staple.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ocsp_staple: Option<String>,
}

/// TLS protocol parameters.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SslParameters {
    /// Lowest TLS version to accept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minimum_protocol_version: Option<TlsVersion>,
    /// Highest TLS version to accept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maximum_protocol_version: Option<TlsVersion>,
    /// Cipher suites, in OpenSSL/BoringSSL syntax.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cipher_suites: Vec<String>,
    /// ECDH curves.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ecdh_curves: Vec<String>,
}

/// A TLS protocol version, spelled as Envoy spells it.
#[derive(
    Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord,
)]
pub enum TlsVersion {
    /// Envoy's default choice.
    #[serde(rename = "TLS_AUTO")]
    Auto,
    /// TLS 1.0.
    #[serde(rename = "TLSv1_0")]
    V1_0,
    /// TLS 1.1.
    #[serde(rename = "TLSv1_1")]
    V1_1,
    /// TLS 1.2.
    #[serde(rename = "TLSv1_2")]
    V1_2,
    /// TLS 1.3.
    #[serde(rename = "TLSv1_3")]
    V1_3,
}

/// Circuit breaker thresholds (Envoy's default priority).
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CircuitBreakers {
    /// Maximum connections to the upstream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_connections: Option<u32>,
    /// Maximum requests waiting for a connection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_pending_requests: Option<u32>,
    /// Maximum requests in flight.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_requests: Option<u32>,
    /// Maximum retries in flight.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_retries: Option<u32>,
}

/// Load balancing: at most one policy (`roundRobin`, `leastRequest`, `random`, `ringHash`,
/// `maglev`) and its settings.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LoadBalancerConfig {
    /// Percentage (0–100) of unhealthy hosts above which health is ignored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthy_panic_threshold: Option<f64>,
    /// Batch endpoint updates within this window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update_merge_window: Option<Duration>,
    /// Round robin (the default policy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub round_robin: Option<RoundRobin>,
    /// Least outstanding requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub least_request: Option<LeastRequest>,
    /// Random choice.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub random: Option<Empty>,
    /// Consistent hashing on a ring.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ring_hash: Option<RingHash>,
    /// Maglev consistent hashing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maglev: Option<Empty>,
    /// Weight localities as their endpoints say.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locality_weighted_lb_config: Option<Empty>,
    /// Hash on host names rather than addresses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub use_hostname_for_hashing: Option<bool>,
}

/// The load-balancing policy a validated [`LoadBalancerConfig`] selects.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum LbPolicy<'a> {
    /// Round robin.
    RoundRobin(&'a RoundRobin),
    /// Least request.
    LeastRequest(&'a LeastRequest),
    /// Random.
    Random,
    /// Ring hash.
    RingHash(&'a RingHash),
    /// Maglev.
    Maglev,
}

impl LoadBalancerConfig {
    /// The policy set, if any (a validated config sets at most one).
    pub fn policy(&self) -> Option<LbPolicy<'_>> {
        self.policies().into_iter().next().map(|(_, p)| p)
    }

    fn policies(&self) -> Vec<(&'static str, LbPolicy<'_>)> {
        let mut set = Vec::new();
        if let Some(p) = &self.round_robin {
            set.push(("roundRobin", LbPolicy::RoundRobin(p)));
        }
        if let Some(p) = &self.least_request {
            set.push(("leastRequest", LbPolicy::LeastRequest(p)));
        }
        if self.random.is_some() {
            set.push(("random", LbPolicy::Random));
        }
        if let Some(p) = &self.ring_hash {
            set.push(("ringHash", LbPolicy::RingHash(p)));
        }
        if self.maglev.is_some() {
            set.push(("maglev", LbPolicy::Maglev));
        }
        set
    }
}

/// An empty settings block (`random: {}`).
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Empty {}

/// Round-robin settings.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RoundRobin {
    /// Ramp traffic up to new hosts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slow_start_config: Option<SlowStartConfig>,
}

/// Least-request settings.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LeastRequest {
    /// How many random hosts to compare (default 2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub choice_count: Option<u32>,
    /// Ramp traffic up to new hosts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slow_start_config: Option<SlowStartConfig>,
}

/// Slow start: new hosts get a growing share of traffic over a window.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SlowStartConfig {
    /// How long a new host stays in slow start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slow_start_window: Option<Duration>,
    /// Shape of the ramp (greater than 0; 1.0 is linear).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aggression: Option<f64>,
    /// Minimum percentage of its weight a host in slow start gets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_weight_percent: Option<f64>,
}

/// Ring-hash settings.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RingHash {
    /// Ring sizes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ring_hash_config: Option<RingHashConfig>,
}

/// Ring sizes for ring hashing.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RingHashConfig {
    /// Minimum ring size (default 1024).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minimum_ring_size: Option<u64>,
    /// Maximum ring size (default and limit 8M).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maximum_ring_size: Option<u64>,
}

/// One active health check: timing, thresholds and exactly one checker.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HealthCheck {
    /// How long to wait for a check to answer (required).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Duration>,
    /// Time between checks (required).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<Duration>,
    /// Random delay before the first check.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initial_jitter: Option<Duration>,
    /// Random delay added to every interval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval_jitter: Option<Duration>,
    /// Random delay added to every interval, as a percentage of it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval_jitter_percent: Option<u32>,
    /// Failed checks before a host is unhealthy (required).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unhealthy_threshold: Option<u32>,
    /// Passed checks before a host is healthy again (required).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthy_threshold: Option<u32>,
    /// Reuse the connection between checks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reuse_connection: Option<bool>,
    /// Interval while the cluster has seen no traffic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub no_traffic_interval: Option<Duration>,
    /// Interval for hosts marked unhealthy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unhealthy_interval: Option<Duration>,
    /// Interval right after a host turns unhealthy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unhealthy_edge_interval: Option<Duration>,
    /// Interval right after a host turns healthy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthy_edge_interval: Option<Duration>,
    /// Log every failed check, not only the first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub always_log_health_check_failures: Option<bool>,
    /// Check with an HTTP request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_health_check: Option<HttpHealthCheck>,
    /// Check by connecting (and optionally exchanging bytes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp_health_check: Option<TcpHealthCheck>,
    /// Check with the gRPC health-checking protocol.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grpc_health_check: Option<GrpcHealthCheck>,
}

/// An HTTP health check.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpHealthCheck {
    /// Host header to send; the cluster name when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// Path to request (required).
    #[serde(default)]
    pub path: String,
    /// HTTP method (default GET).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// Headers to add to the check request.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub request_headers_to_add: Vec<HeaderValueOption>,
    /// Headers to remove from the check request.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub request_headers_to_remove: Vec<String>,
    /// Status ranges `[start, end)` that count as healthy (default 200 only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub expected_statuses: Vec<Int64Range>,
    /// Check over HTTP/2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub use_http2: Option<bool>,
}

/// A TCP health check: connect, optionally send bytes and expect bytes back.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TcpHealthCheck {
    /// Bytes to send.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub send: Option<Payload>,
    /// Bytes expected back, matched in order anywhere in the response.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub receive: Vec<Payload>,
}

/// Bytes for a TCP health check: hex `text` or base64 `binary`.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Payload {
    /// Hex-encoded bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// Base64-encoded bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub binary: Option<String>,
}

/// A gRPC health check.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GrpcHealthCheck {
    /// Service name to ask about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_name: Option<String>,
    /// `:authority` to send.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authority: Option<String>,
}

/// A half-open integer range `[start, end)`.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Int64Range {
    /// First value in the range.
    pub start: i64,
    /// First value past the range.
    pub end: i64,
}

/// A header name and value.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HeaderValue {
    /// Header name.
    pub key: String,
    /// Header value.
    #[serde(default)]
    pub value: String,
}

/// A header to add, and whether to append to an existing value.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HeaderValueOption {
    /// The header.
    pub header: HeaderValue,
    /// Append to an existing header instead of replacing it (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub append: Option<bool>,
}

/// Passive health checking: eject hosts that keep failing (Envoy's outlier detection).
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OutlierDetection {
    /// Consecutive 5xx responses before ejection (default 5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consecutive_5xx: Option<u32>,
    /// Time between ejection sweeps (default 10s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<Duration>,
    /// Base ejection time, multiplied by the number of ejections (default 30s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_ejection_time: Option<Duration>,
    /// Longest a host stays ejected (default 300s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_ejection_time: Option<Duration>,
    /// Most hosts that may be ejected, in percent (default 10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_ejection_percent: Option<u32>,
    /// Percent chance a consecutive-5xx detection ejects (default 100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enforcing_consecutive_5xx: Option<u32>,
    /// Percent chance a success-rate detection ejects (default 100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enforcing_success_rate: Option<u32>,
    /// Hosts needed for success-rate detection (default 5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub success_rate_minimum_hosts: Option<u32>,
    /// Requests per interval a host needs for success-rate detection (default 100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub success_rate_request_volume: Option<u32>,
    /// Success-rate ejection threshold, in thousandths of a standard deviation (default 1900).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub success_rate_stdev_factor: Option<u32>,
    /// Consecutive gateway failures (502, 503, 504) before ejection (default 5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consecutive_gateway_failure: Option<u32>,
    /// Percent chance a consecutive-gateway-failure detection ejects (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enforcing_consecutive_gateway_failure: Option<u32>,
    /// Count local-origin failures (timeouts, resets) separately from HTTP status codes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub split_external_local_origin_errors: Option<bool>,
    /// Consecutive local-origin failures before ejection (default 5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consecutive_local_origin_failure: Option<u32>,
    /// Percent chance a consecutive-local-origin detection ejects (default 100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enforcing_consecutive_local_origin_failure: Option<u32>,
    /// Percent chance a local-origin success-rate detection ejects (default 100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enforcing_local_origin_success_rate: Option<u32>,
    /// Failure percentage above which a host is ejected (default 85).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_percentage_threshold: Option<u32>,
    /// Percent chance a failure-percentage detection ejects (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enforcing_failure_percentage: Option<u32>,
    /// Percent chance a local-origin failure-percentage detection ejects (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enforcing_failure_percentage_local_origin: Option<u32>,
    /// Hosts needed for failure-percentage detection (default 5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_percentage_minimum_hosts: Option<u32>,
    /// Requests per interval a host needs for failure-percentage detection (default 50).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_percentage_request_volume: Option<u32>,
}

/// Connection settings towards the upstream.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConnectionConfig {
    /// Requests per connection before it is closed (unset or 0: no limit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_requests_per_connection: Option<u32>,
    /// Timeout for establishing a connection (Envoy's default 5s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect_timeout: Option<Duration>,
    /// TCP keepalive probes on upstream connections.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp_keepalive: Option<TcpKeepalive>,
    /// Soft limit on each connection's read and write buffers, in bytes (default 1MiB).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_connection_buffer_limit_bytes: Option<u32>,
    /// HTTP options shared by HTTP/1 and HTTP/2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub common_http_protocol_options: Option<HttpProtocolOptions>,
}

/// TCP keepalive settings.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TcpKeepalive {
    /// Unanswered probes before the connection is dead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keepalive_probes: Option<u32>,
    /// Idle time before the first probe (rounded up to seconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keepalive_time: Option<Duration>,
    /// Time between probes (rounded up to seconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keepalive_interval: Option<Duration>,
}

/// HTTP protocol options for upstream connections.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpProtocolOptions {
    /// Close connections idle this long (default 1h; 0 disables).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_timeout: Option<Duration>,
    /// Most headers a response may carry (default 100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_headers_count: Option<u32>,
    /// Longest a stream may last.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_stream_duration: Option<Duration>,
    /// What to do with header names containing underscores.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headers_with_underscores_action: Option<HeadersWithUnderscoresAction>,
}

/// What to do with header names containing underscores.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum HeadersWithUnderscoresAction {
    /// Allow them (Envoy's default).
    Allow,
    /// Reject the request.
    RejectRequest,
    /// Drop the header.
    DropHeader,
}

/// How Envoy picks the upstream protocol.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ProtocolSelection {
    /// HTTP/2 if configured (`useHttp2`), otherwise HTTP/1.1.
    UseConfiguredProtocol,
    /// The protocol the downstream connection uses.
    UseDownstreamProtocol,
}

/// PROXY protocol version.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProxyProtocolVersion {
    /// Human-readable version 1.
    V1,
    /// Binary version 2.
    V2,
}

/// Preconnect ratios (each 1.0..=3.0).
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PreconnectPolicy {
    /// Connections per expected stream, per host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_upstream_preconnect_ratio: Option<f64>,
    /// Connections per expected stream, across the cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub predictive_preconnect_ratio: Option<f64>,
}

// === Deserialize UpstreamSpec ===
//
// We deserialize by hand rather than with two `#[serde(flatten)]`s: flatten buffers the
// whole spec first, so an error inside a common field loses its line number and path. Here
// each common field is read straight from the source, and everything else is a type block.

macro_rules! common_fields {
    ($($field:ident => $json:literal,)*) => {
        /// The spec keys that are common fields; every other key is a type block.
        pub const COMMON_FIELDS: &[&str] = &[$($json),*];

        fn read_common_field<'de, A: MapAccess<'de>>(
            common: &mut UpstreamCommon,
            key: &str,
            map: &mut A,
        ) -> Result<bool, A::Error> {
            match key {
                $($json => common.$field = map.next_value()?,)*
                _ => return Ok(false),
            }
            Ok(true)
        }
    };
}

common_fields! {
    discovery_metadata => "discoveryMetadata",
    ssl_config => "sslConfig",
    circuit_breakers => "circuitBreakers",
    load_balancer_config => "loadBalancerConfig",
    health_checks => "healthChecks",
    outlier_detection => "outlierDetection",
    connection_config => "connectionConfig",
    protocol_selection => "protocolSelection",
    use_http2 => "useHttp2",
    initial_stream_window_size => "initialStreamWindowSize",
    initial_connection_window_size => "initialConnectionWindowSize",
    max_concurrent_streams => "maxConcurrentStreams",
    override_stream_error_on_invalid_http_message => "overrideStreamErrorOnInvalidHttpMessage",
    http_proxy_hostname => "httpProxyHostname",
    http_connect_ssl_config => "httpConnectSslConfig",
    http_connect_headers => "httpConnectHeaders",
    ignore_health_on_host_removal => "ignoreHealthOnHostRemoval",
    respect_dns_ttl => "respectDnsTtl",
    dns_refresh_rate => "dnsRefreshRate",
    proxy_protocol_version => "proxyProtocolVersion",
    preconnect_policy => "preconnectPolicy",
    disable_istio_auto_mtls => "disableIstioAutoMtls",
}

/// K8sGateway common fields Weir does not implement; naming them beats calling them a
/// second type block.
const UNSUPPORTED_COMMON_FIELDS: &[&str] = &["failover"];

impl<'de> Deserialize<'de> for UpstreamSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct SpecVisitor;

        impl<'de> Visitor<'de> for SpecVisitor {
            type Value = UpstreamSpec;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an Upstream spec (a mapping)")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<UpstreamSpec, A::Error> {
                let mut spec = UpstreamSpec::default();
                while let Some(key) = map.next_key::<String>()? {
                    if read_common_field(&mut spec.common, &key, &mut map)? {
                        continue;
                    }
                    let block: serde_json::Value = map.next_value()?;
                    if spec.types.insert(key.clone(), block).is_some() {
                        return Err(serde::de::Error::custom(format_args!(
                            "duplicate field `{key}`"
                        )));
                    }
                }
                Ok(spec)
            }
        }

        d.deserialize_map(SpecVisitor)
    }
}

// === Validation ===

/// A validated Upstream: its one type block and the common fields.
#[derive(Clone, Debug, PartialEq)]
pub struct Spec {
    /// The type block's key (`static`, `kube`, …), which picks the plugin.
    pub type_name: String,
    /// The type block as written, for the plugin that claims `type_name`.
    pub type_block: serde_json::Value,
    /// The common fields, checked.
    pub common: UpstreamCommon,
}

impl TryFrom<&Upstream> for Spec {
    type Error = FieldErrors;

    fn try_from(upstream: &Upstream) -> Result<Self, Self::Error> {
        upstream.spec.validate()
    }
}

impl UpstreamSpec {
    /// Checks the spec: exactly one type block, and the common fields' ranges and
    /// exclusive choices. Paths in errors start at `spec`.
    pub fn validate(&self) -> Result<Spec, FieldErrors> {
        self.check()?;
        let (type_name, type_block) = match self.type_blocks().next() {
            Some((k, v)) => (k.clone(), v.clone()),
            None => (String::new(), serde_json::Value::Null),
        };
        Ok(Spec {
            type_name,
            type_block,
            common: self.common.clone(),
        })
    }

    /// The checks of [`UpstreamSpec::validate`], without building the [`Spec`] (for a
    /// reference that only needs to know the Upstream is valid).
    pub fn check(&self) -> Result<(), FieldErrors> {
        let mut errors = FieldErrors::new();
        for key in self.types.keys() {
            if UNSUPPORTED_COMMON_FIELDS.contains(&key.as_str()) {
                errors.push(format!("spec.{key}"), "is not supported by Weir");
            }
        }
        let blocks: Vec<(&String, &serde_json::Value)> = self.type_blocks().collect();
        match blocks.as_slice() {
            [] => errors.push(
                "spec",
                "needs exactly one Upstream type block (such as `static` or `kube`); found none",
            ),
            [(key, block)] => {
                if !block.is_object() {
                    errors.push(
                        format!("spec.{key}"),
                        "an Upstream type block must be a mapping",
                    );
                }
            }
            [_, rest @ ..] => {
                let names: Vec<String> = blocks.iter().map(|(k, _)| format!("`{k}`")).collect();
                for (key, _) in rest {
                    errors.push(
                        format!("spec.{key}"),
                        format!(
                            "an Upstream has exactly one type block, but this one has {} ({}); \
                             if `{key}` is meant to be a common field, it is misspelled",
                            names.len(),
                            names.join(", ")
                        ),
                    );
                }
            }
        }
        self.common.check(&mut errors);
        errors.into_result(())
    }

    /// The type blocks: the keys beside the common fields, less those Weir does not
    /// support.
    fn type_blocks(&self) -> impl Iterator<Item = (&String, &serde_json::Value)> {
        self.types
            .iter()
            .filter(|(k, _)| !UNSUPPORTED_COMMON_FIELDS.contains(&k.as_str()))
    }
}

const WINDOW_MIN: u32 = 65_535;
const WINDOW_MAX: u32 = 2_147_483_647;

fn check_range<T: PartialOrd + fmt::Display>(
    errors: &mut FieldErrors,
    path: &str,
    value: Option<T>,
    min: T,
    max: T,
) {
    if let Some(v) = value
        && !(v >= min && v <= max)
    {
        errors.push(path, format!("must be between {min} and {max}, not {v}"));
    }
}

impl UpstreamCommon {
    fn check(&self, errors: &mut FieldErrors) {
        for (path, ssl) in [
            ("spec.sslConfig", &self.ssl_config),
            ("spec.httpConnectSslConfig", &self.http_connect_ssl_config),
        ] {
            if let Some(ssl) = ssl {
                ssl.check(path, errors);
            }
        }
        if let Some(lb) = &self.load_balancer_config {
            lb.check("spec.loadBalancerConfig", errors);
        }
        for (i, hc) in self.health_checks.iter().enumerate() {
            hc.check(&format!("spec.healthChecks[{i}]"), errors);
        }
        if let Some(od) = &self.outlier_detection {
            od.check("spec.outlierDetection", errors);
        }
        check_range(
            errors,
            "spec.initialStreamWindowSize",
            self.initial_stream_window_size,
            WINDOW_MIN,
            WINDOW_MAX,
        );
        check_range(
            errors,
            "spec.initialConnectionWindowSize",
            self.initial_connection_window_size,
            WINDOW_MIN,
            WINDOW_MAX,
        );
        check_range(
            errors,
            "spec.maxConcurrentStreams",
            self.max_concurrent_streams,
            1,
            WINDOW_MAX,
        );
        if let Some(rate) = self.dns_refresh_rate
            && rate.get() < std::time::Duration::from_millis(1)
        {
            errors.push("spec.dnsRefreshRate", "must be at least 1ms");
        }
        for (i, h) in self.http_connect_headers.iter().enumerate() {
            if h.key.is_empty() {
                errors.push(
                    format!("spec.httpConnectHeaders[{i}].key"),
                    "must not be empty",
                );
            }
        }
        if !self.http_connect_headers.is_empty() && self.http_proxy_hostname.is_none() {
            errors.push(
                "spec.httpConnectHeaders",
                "needs `httpProxyHostname` (the headers go with the CONNECT request)",
            );
        }
        if self.http_connect_ssl_config.is_some() && self.http_proxy_hostname.is_none() {
            errors.push("spec.httpConnectSslConfig", "needs `httpProxyHostname`");
        }
        if let Some(p) = &self.preconnect_policy {
            check_range(
                errors,
                "spec.preconnectPolicy.perUpstreamPreconnectRatio",
                p.per_upstream_preconnect_ratio,
                1.0,
                3.0,
            );
            check_range(
                errors,
                "spec.preconnectPolicy.predictivePreconnectRatio",
                p.predictive_preconnect_ratio,
                1.0,
                3.0,
            );
        }
    }
}

impl SslConfig {
    fn check(&self, path: &str, errors: &mut FieldErrors) {
        if self.secret_ref.is_some() && self.ssl_files.is_some() {
            errors.push(path, "set `secretRef` or `sslFiles`, not both");
        }
        if let Some(r) = &self.secret_ref
            && r.name.is_empty()
        {
            errors.push(format!("{path}.secretRef.name"), "must not be empty");
        }
        if let Some(files) = &self.ssl_files
            && files.tls_cert.is_some() != files.tls_key.is_some()
        {
            errors.push(
                format!("{path}.sslFiles"),
                "`tlsCert` and `tlsKey` go together",
            );
        }
        if let Some(p) = &self.parameters
            && let (Some(min), Some(max)) = (p.minimum_protocol_version, p.maximum_protocol_version)
            && min != TlsVersion::Auto
            && max != TlsVersion::Auto
            && min > max
        {
            errors.push(
                format!("{path}.parameters"),
                "`minimumProtocolVersion` is above `maximumProtocolVersion`",
            );
        }
    }
}

impl LoadBalancerConfig {
    fn check(&self, path: &str, errors: &mut FieldErrors) {
        let set = self.policies();
        if set.len() > 1 {
            let names: Vec<String> = set.iter().map(|(n, _)| format!("`{n}`")).collect();
            errors.push(
                path,
                format!(
                    "set at most one load-balancing policy, not {}",
                    names.join(", ")
                ),
            );
        }
        check_range(
            errors,
            &format!("{path}.healthyPanicThreshold"),
            self.healthy_panic_threshold,
            0.0,
            100.0,
        );
        let slow_starts = [
            (
                "roundRobin",
                self.round_robin
                    .as_ref()
                    .and_then(|p| p.slow_start_config.as_ref()),
            ),
            (
                "leastRequest",
                self.least_request
                    .as_ref()
                    .and_then(|p| p.slow_start_config.as_ref()),
            ),
        ];
        for (policy, slow) in slow_starts {
            let Some(slow) = slow else { continue };
            if let Some(a) = slow.aggression
                && (a.is_nan() || a <= 0.0)
            {
                errors.push(
                    format!("{path}.{policy}.slowStartConfig.aggression"),
                    "must be greater than 0",
                );
            }
            check_range(
                errors,
                &format!("{path}.{policy}.slowStartConfig.minWeightPercent"),
                slow.min_weight_percent,
                0.0,
                100.0,
            );
        }
        if let Some(lr) = &self.least_request
            && lr.choice_count.is_some_and(|c| c < 2)
        {
            errors.push(
                format!("{path}.leastRequest.choiceCount"),
                "must be at least 2",
            );
        }
        if let Some(cfg) = self
            .ring_hash
            .as_ref()
            .and_then(|r| r.ring_hash_config.as_ref())
        {
            const RING_MAX: u64 = 8_388_608;
            let p = format!("{path}.ringHash.ringHashConfig");
            check_range(
                errors,
                &format!("{p}.minimumRingSize"),
                cfg.minimum_ring_size,
                1,
                RING_MAX,
            );
            check_range(
                errors,
                &format!("{p}.maximumRingSize"),
                cfg.maximum_ring_size,
                1,
                RING_MAX,
            );
            if let (Some(min), Some(max)) = (cfg.minimum_ring_size, cfg.maximum_ring_size)
                && min > max
            {
                errors.push(p, "`minimumRingSize` is above `maximumRingSize`");
            }
        }
    }
}

impl HealthCheck {
    fn check(&self, path: &str, errors: &mut FieldErrors) {
        // Envoy refuses a health check without these, so say so here rather than as a NACK.
        for (field, missing) in [
            ("timeout", self.timeout.is_none()),
            ("interval", self.interval.is_none()),
            ("unhealthyThreshold", self.unhealthy_threshold.is_none()),
            ("healthyThreshold", self.healthy_threshold.is_none()),
        ] {
            if missing {
                errors.push(format!("{path}.{field}"), "is required");
            }
        }
        let checkers: Vec<&str> = [
            ("httpHealthCheck", self.http_health_check.is_some()),
            ("tcpHealthCheck", self.tcp_health_check.is_some()),
            ("grpcHealthCheck", self.grpc_health_check.is_some()),
        ]
        .into_iter()
        .filter_map(|(n, set)| set.then_some(n))
        .collect();
        match checkers.len() {
            0 => errors.push(
                path,
                "needs one of `httpHealthCheck`, `tcpHealthCheck` or `grpcHealthCheck`",
            ),
            1 => {}
            _ => errors.push(
                path,
                format!("set only one checker, not `{}`", checkers.join("`, `")),
            ),
        }
        if let Some(timeout) = self.timeout
            && timeout.get().is_zero()
        {
            errors.push(format!("{path}.timeout"), "must be greater than 0");
        }
        if let Some(interval) = self.interval
            && interval.get().is_zero()
        {
            errors.push(format!("{path}.interval"), "must be greater than 0");
        }
        if let Some(http) = &self.http_health_check {
            let p = format!("{path}.httpHealthCheck");
            if !http.path.starts_with('/') {
                errors.push(format!("{p}.path"), "is required and must start with `/`");
            }
            for (i, r) in http.expected_statuses.iter().enumerate() {
                if !(100..=600).contains(&r.start)
                    || !(100..=600).contains(&r.end)
                    || r.start >= r.end
                {
                    errors.push(
                        format!("{p}.expectedStatuses[{i}]"),
                        "must be a range `[start, end)` of status codes with 100 <= start < end <= 600",
                    );
                }
            }
        }
        if let Some(tcp) = &self.tcp_health_check {
            let p = format!("{path}.tcpHealthCheck");
            let payloads = tcp.send.iter().map(|s| (format!("{p}.send"), s)).chain(
                tcp.receive
                    .iter()
                    .enumerate()
                    .map(|(i, r)| (format!("{p}.receive[{i}]"), r)),
            );
            for (pp, payload) in payloads {
                if payload.text.is_some() == payload.binary.is_some() {
                    errors.push(pp, "set exactly one of `text` (hex) or `binary` (base64)");
                }
            }
        }
    }
}

impl OutlierDetection {
    fn check(&self, path: &str, errors: &mut FieldErrors) {
        for (field, value) in [
            ("maxEjectionPercent", self.max_ejection_percent),
            ("enforcingConsecutive5xx", self.enforcing_consecutive_5xx),
            ("enforcingSuccessRate", self.enforcing_success_rate),
            (
                "enforcingConsecutiveGatewayFailure",
                self.enforcing_consecutive_gateway_failure,
            ),
            (
                "enforcingConsecutiveLocalOriginFailure",
                self.enforcing_consecutive_local_origin_failure,
            ),
            (
                "enforcingLocalOriginSuccessRate",
                self.enforcing_local_origin_success_rate,
            ),
            (
                "failurePercentageThreshold",
                self.failure_percentage_threshold,
            ),
            (
                "enforcingFailurePercentage",
                self.enforcing_failure_percentage,
            ),
            (
                "enforcingFailurePercentageLocalOrigin",
                self.enforcing_failure_percentage_local_origin,
            ),
        ] {
            check_range(errors, &format!("{path}.{field}"), value, 0, 100);
        }
        if let Some(interval) = self.interval
            && interval.get().is_zero()
        {
            errors.push(format!("{path}.interval"), "must be greater than 0");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mk_upstream(spec_yaml: impl ToString) -> Upstream {
        let yaml = format!(
            "apiVersion: gateway.weir.dev/v1alpha1\nkind: Upstream\nmetadata:\n  name: u\n  namespace: default\nspec:\n{}",
            spec_yaml
                .to_string()
                .lines()
                .map(|l| format!("  {l}\n"))
                .collect::<String>()
        );
        serde_yaml_ng::from_str(&yaml).expect("test Upstream parses")
    }

    fn paths(errors: &FieldErrors) -> Vec<&str> {
        errors.errors().iter().map(|e| e.path.as_str()).collect()
    }

    #[test]
    fn static_upstream_with_common_fields_validates() {
        let u = mk_upstream(
            "static:\n  hosts:\n  - addr: 10.0.0.1\n    port: 8080\n\
             connectionConfig:\n  connectTimeout: 2s\n  maxRequestsPerConnection: 10\n  \
             tcpKeepalive:\n    keepaliveProbes: 3\n    keepaliveTime: 10s\n  \
             perConnectionBufferLimitBytes: 32768\n\
             useHttp2: true\ninitialStreamWindowSize: 65536\n\
             circuitBreakers:\n  maxConnections: 100\n\
             loadBalancerConfig:\n  leastRequest:\n    choiceCount: 3\n\
             outlierDetection:\n  consecutive5xx: 3\n  interval: 5s\n",
        );
        let spec = Spec::try_from(&u).expect("valid");
        assert_eq!(spec.type_name, "static");
        assert_eq!(spec.type_block["hosts"][0]["port"], 8080);
        let cc = spec.common.connection_config.unwrap();
        assert_eq!(
            cc.connect_timeout.unwrap().get(),
            std::time::Duration::from_secs(2)
        );
        assert_eq!(
            spec.common.outlier_detection.unwrap().consecutive_5xx,
            Some(3)
        );
        assert!(matches!(
            spec.common.load_balancer_config.unwrap().policy(),
            Some(LbPolicy::LeastRequest(_))
        ));
    }

    #[test]
    fn upstream_with_two_type_blocks_is_rejected_naming_the_second() {
        let u = mk_upstream("static:\n  hosts: []\nkube:\n  serviceName: a\n");
        let errors = u.spec.validate().unwrap_err();
        assert_eq!(paths(&errors), ["spec.static"]);
        let msg = &errors.errors()[0].message;
        assert!(msg.contains("`kube`") && msg.contains("`static`"), "{msg}");
    }

    #[test]
    fn upstream_with_no_type_block_is_rejected() {
        let u = mk_upstream("useHttp2: true\n");
        let errors = u.spec.validate().unwrap_err();
        assert_eq!(paths(&errors), ["spec"]);
        assert!(errors.errors()[0].message.contains("found none"));
    }

    #[test]
    fn misspelled_common_field_counts_as_a_type_block_and_says_so() {
        let u = mk_upstream("static:\n  hosts: []\nuseHttp3: true\n");
        let errors = u.spec.validate().unwrap_err();
        assert_eq!(paths(&errors), ["spec.useHttp3"]);
        assert!(errors.errors()[0].message.contains("misspelled"));
    }

    #[test]
    fn unsupported_k8sgateway_field_is_named() {
        let u = mk_upstream("static:\n  hosts: []\nfailover:\n  prioritizedLocalities: []\n");
        let errors = u.spec.validate().unwrap_err();
        assert_eq!(paths(&errors), ["spec.failover"]);
    }

    #[test]
    fn type_block_must_be_a_mapping() {
        let u = mk_upstream("static: yes\n");
        let errors = u.spec.validate().unwrap_err();
        assert_eq!(paths(&errors), ["spec.static"]);
    }

    #[test]
    fn unknown_field_inside_a_common_field_is_a_parse_error_naming_it() {
        let yaml = "apiVersion: gateway.weir.dev/v1alpha1\nkind: Upstream\nmetadata:\n  name: u\nspec:\n  static: {}\n  connectionConfig:\n    connectTimeot: 1s\n";
        let err = serde_yaml_ng::from_str::<Upstream>(yaml).unwrap_err();
        assert!(err.to_string().contains("connectTimeot"), "{err}");
        assert_eq!(err.location().map(|l| l.line()), Some(8));
    }

    #[test]
    fn bad_duration_is_a_parse_error() {
        let yaml = "apiVersion: gateway.weir.dev/v1alpha1\nkind: Upstream\nmetadata:\n  name: u\nspec:\n  static: {}\n  connectionConfig:\n    connectTimeout: soon\n";
        let err = serde_yaml_ng::from_str::<Upstream>(yaml).unwrap_err();
        assert!(err.to_string().contains("invalid duration"), "{err}");
        assert!(
            err.to_string()
                .starts_with("spec.connectionConfig.connectTimeout: "),
            "{err}"
        );
        assert_eq!(err.location().map(|l| l.line()), Some(8));
    }

    #[test]
    fn common_field_ranges_and_choices_are_checked() {
        let u = mk_upstream(
            "static: {}\ninitialStreamWindowSize: 10\n\
             loadBalancerConfig:\n  random: {}\n  maglev: {}\n  healthyPanicThreshold: 150\n\
             healthChecks:\n- httpHealthCheck:\n    path: /healthz\n  tcpHealthCheck: {}\n\
             outlierDetection:\n  maxEjectionPercent: 101\n\
             sslConfig:\n  secretRef:\n    name: s\n  sslFiles:\n    rootCa: /ca.pem\n",
        );
        let errors = u.spec.validate().unwrap_err();
        assert_eq!(
            paths(&errors),
            [
                "spec.sslConfig",
                "spec.loadBalancerConfig",
                "spec.loadBalancerConfig.healthyPanicThreshold",
                "spec.healthChecks[0].timeout",
                "spec.healthChecks[0].interval",
                "spec.healthChecks[0].unhealthyThreshold",
                "spec.healthChecks[0].healthyThreshold",
                "spec.healthChecks[0]",
                "spec.outlierDetection.maxEjectionPercent",
                "spec.initialStreamWindowSize",
            ]
        );
    }

    #[test]
    fn common_fields_list_matches_the_struct() {
        let schema = schemars::schema_for!(UpstreamCommon);
        let props = schema
            .get("properties")
            .and_then(|p| p.as_object())
            .expect("properties");
        let mut from_schema: Vec<&str> = props.keys().map(String::as_str).collect();
        let mut listed = COMMON_FIELDS.to_vec();
        from_schema.sort_unstable();
        listed.sort_unstable();
        assert_eq!(from_schema, listed);
    }

    #[test]
    fn upstream_round_trips_through_json() {
        let u =
            mk_upstream("kube:\n  serviceName: petstore\n  servicePort: 8080\nuseHttp2: false\n");
        let json = serde_json::to_value(&u).unwrap();
        assert_eq!(json["spec"]["kube"]["serviceName"], "petstore");
        assert_eq!(json["spec"]["useHttp2"], false);
        let back: Upstream = serde_json::from_value(json).unwrap();
        assert_eq!(back, u);
    }
}
