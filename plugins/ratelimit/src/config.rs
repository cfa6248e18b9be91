//! The rate limiting values (K8sGateway's shapes) and the Envoy configs they become.

use serde::Deserialize;
use weir_plugin_sdk::envoy::config::core::v3::{GrpcService, grpc_service};
use weir_plugin_sdk::envoy::config::ratelimit::v3::RateLimitServiceConfig;
use weir_plugin_sdk::envoy::config::route::v3::{RateLimit as RouteRateLimit, rate_limit};
use weir_plugin_sdk::envoy::extensions::filters::http::ratelimit::v3::RateLimit;
use weir_plugin_sdk::{
    ClusterName, FieldError, HttpFilter, PluginError, Stage, StageName, duration, parse_config,
};

/// The domain Weir's rate limit filter asks the service about.
pub const DOMAIN: &str = "weir";

/// `ratelimitServer` on an HttpListenerOption.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServerSettings {
    /// The Upstream of the rate-limit service (gRPC, so `useHttp2: true`).
    pub ratelimit_server_ref: Ref,
    /// How long to wait for the service (default 100ms).
    pub request_timeout: Option<String>,
    /// Refuse requests when the service cannot answer (default: let them through).
    #[serde(default)]
    pub deny_on_fail: bool,
    /// Ask before external authorization rather than after.
    #[serde(default)]
    pub rate_limit_before_auth: bool,
    /// Add the `x-ratelimit-*` headers to responses.
    #[serde(default)]
    pub enable_x_ratelimit_headers: bool,
}

/// A namespaced object reference.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ref {
    /// Its name.
    pub name: String,
    /// Its namespace.
    pub namespace: String,
}

impl ServerSettings {
    /// Parses the value.
    pub fn from_json(json: &str) -> Result<Self, PluginError> {
        parse_config(json)
    }

    /// The rate limit filter for the listener.
    pub fn http_filter(&self) -> Result<HttpFilter, PluginError> {
        let mut errors = Vec::new();
        let server = &self.ratelimit_server_ref;
        if server.name.is_empty() || server.namespace.is_empty() {
            errors.push(FieldError::new(
                "ratelimitServerRef",
                "needs the name and namespace of an Upstream",
            ));
        }
        let timeout = match duration::parse(self.request_timeout.as_deref().unwrap_or("100ms")) {
            Ok(d) => Some(duration::to_proto(d)),
            Err(e) => {
                errors.push(FieldError::new("requestTimeout", e.to_string()));
                None
            }
        };
        PluginError::check(errors)?;
        let cluster = ClusterName::for_upstream(&server.namespace, &server.name);
        let filter = RateLimit {
            domain: DOMAIN.to_owned(),
            timeout,
            failure_mode_deny: self.deny_on_fail,
            // DRAFT_VERSION_03.
            enable_x_ratelimit_headers: i32::from(self.enable_x_ratelimit_headers),
            rate_limit_service: Some(RateLimitServiceConfig {
                grpc_service: Some(GrpcService {
                    target_specifier: Some(grpc_service::TargetSpecifier::EnvoyGrpc(
                        grpc_service::EnvoyGrpc {
                            cluster_name: cluster.as_str().to_owned(),
                            ..Default::default()
                        },
                    )),
                    ..Default::default()
                }),
                // V3.
                transport_api_version: 2,
            }),
            ..Default::default()
        };
        let stage = if self.rate_limit_before_auth {
            Stage::before(StageName::Authn)
        } else {
            Stage::during(StageName::RateLimit)
        };
        Ok(HttpFilter::new(
            "envoy.filters.http.ratelimit",
            stage,
            &filter,
        ))
    }
}

/// `ratelimit` on a RouteOption or VirtualHostOption.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RouteLimits {
    /// Each entry sends one descriptor built from its actions.
    pub rate_limits: Vec<Descriptor>,
}

/// `rateLimits[]`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Descriptor {
    /// The descriptor's entries, in order.
    pub actions: Vec<Action>,
}

/// `rateLimits[].actions[]`: exactly one of the fields.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Action {
    /// A fixed entry (`generic_key`, or `descriptorKey`).
    pub generic_key: Option<GenericKey>,
    /// An entry from a request header (none sent when the header is missing).
    pub request_headers: Option<RequestHeaders>,
    /// The client's address (`remote_address`).
    pub remote_address: Option<Empty>,
    /// The route's cluster (`destination_cluster`).
    pub destination_cluster: Option<Empty>,
}

/// `genericKey`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GenericKey {
    /// The value.
    pub descriptor_value: String,
    /// The key (default `generic_key`).
    #[serde(default)]
    pub descriptor_key: String,
}

/// `requestHeaders`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RequestHeaders {
    /// The header read.
    pub header_name: String,
    /// The entry's key.
    pub descriptor_key: String,
    /// Send the descriptor without this entry when the header is missing.
    #[serde(default)]
    pub skip_if_absent: bool,
}

/// `{}`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Empty {}

impl RouteLimits {
    /// Parses the value.
    pub fn from_json(json: &str) -> Result<Self, PluginError> {
        parse_config(json)
    }

    /// Envoy's rate limit descriptors, or every bad action named.
    pub fn to_proto(&self) -> Result<Vec<RouteRateLimit>, PluginError> {
        use rate_limit::action::{
            ActionSpecifier, DestinationCluster, GenericKey as EnvoyGenericKey, RemoteAddress,
            RequestHeaders as EnvoyRequestHeaders,
        };
        let mut errors = Vec::new();
        let mut out = Vec::new();
        for (i, d) in self.rate_limits.iter().enumerate() {
            if d.actions.is_empty() {
                errors.push(FieldError::new(
                    format!("rateLimits[{i}].actions"),
                    "needs at least one action",
                ));
            }
            let mut actions = Vec::new();
            for (j, a) in d.actions.iter().enumerate() {
                let path = format!("rateLimits[{i}].actions[{j}]");
                let set = [
                    a.generic_key.is_some(),
                    a.request_headers.is_some(),
                    a.remote_address.is_some(),
                    a.destination_cluster.is_some(),
                ];
                if set.iter().filter(|s| **s).count() != 1 {
                    errors.push(FieldError::new(
                        path,
                        "set exactly one of genericKey, requestHeaders, remoteAddress, destinationCluster",
                    ));
                    continue;
                }
                let specifier = if let Some(g) = &a.generic_key {
                    ActionSpecifier::GenericKey(EnvoyGenericKey {
                        descriptor_value: g.descriptor_value.clone(),
                        descriptor_key: g.descriptor_key.clone(),
                        ..Default::default()
                    })
                } else if let Some(h) = &a.request_headers {
                    if h.header_name.is_empty() || h.descriptor_key.is_empty() {
                        errors.push(FieldError::new(
                            format!("{path}.requestHeaders"),
                            "needs headerName and descriptorKey",
                        ));
                        continue;
                    }
                    ActionSpecifier::RequestHeaders(EnvoyRequestHeaders {
                        header_name: h.header_name.clone(),
                        descriptor_key: h.descriptor_key.clone(),
                        skip_if_absent: h.skip_if_absent,
                    })
                } else if a.remote_address.is_some() {
                    ActionSpecifier::RemoteAddress(RemoteAddress {})
                } else {
                    ActionSpecifier::DestinationCluster(DestinationCluster {})
                };
                actions.push(rate_limit::Action {
                    action_specifier: Some(specifier),
                });
            }
            out.push(RouteRateLimit {
                actions,
                ..Default::default()
            });
        }
        PluginError::check(errors)?;
        Ok(out)
    }
}
