//! The `extauth` values (K8sGateway's shapes) and the Envoy `ext_authz` configs they
//! become.

use std::collections::BTreeMap;

use serde::Deserialize;
use weir_plugin_sdk::envoy::config::core::v3::{
    GrpcService, HeaderValue, HttpUri, grpc_service, http_uri,
};
use weir_plugin_sdk::envoy::extensions::filters::http::ext_authz::v3::{
    AuthorizationRequest, AuthorizationResponse, BufferSettings, CheckSettings, ExtAuthz,
    ExtAuthzPerRoute, HttpService, ext_authz, ext_authz_per_route,
};
use weir_plugin_sdk::envoy::r#type::matcher::v3::{
    ListStringMatcher, StringMatcher, string_matcher,
};
use weir_plugin_sdk::envoy::r#type::v3::HttpStatus;
use weir_plugin_sdk::{
    ClusterName, FieldError, HttpFilter, PluginError, Stage, StageName, duration, parse_config,
};

/// Envoy's external authorization filter.
pub const EXT_AUTHZ: &str = "envoy.filters.http.ext_authz";

/// `extauth` on an HttpListenerOption.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ListenerAuth {
    /// The Upstream of the authorization service.
    pub extauthz_server_ref: Ref,
    /// Speak plain HTTP to it (the gRPC protocol when absent).
    pub http_service: Option<HttpServiceSpec>,
    /// gRPC settings.
    pub grpc_service: Option<GrpcServiceSpec>,
    /// How long to wait for the answer (default 200ms).
    pub request_timeout: Option<String>,
    /// Let requests through when the service cannot be reached.
    #[serde(default)]
    pub failure_mode_allow: bool,
    /// Send the request body too.
    pub request_body: Option<RequestBody>,
    /// Re-pick the route after the service added headers.
    #[serde(default)]
    pub clear_route_cache: bool,
    /// The status answered when the service fails (default 403).
    pub status_on_error: Option<u32>,
    /// A prefix for the filter's stats.
    #[serde(default)]
    pub stat_prefix: String,
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

/// `httpService`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpServiceSpec {
    /// Put in front of the request's path when asking the service.
    #[serde(default)]
    pub path_prefix: String,
    /// What of the request the service sees.
    pub request: Option<HttpRequestSpec>,
    /// What of the service's answer is passed on.
    pub response: Option<HttpResponseSpec>,
}

/// `httpService.request`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpRequestSpec {
    /// Request headers sent to the service (besides Envoy's defaults).
    #[serde(default)]
    pub allowed_headers: Vec<String>,
    /// Headers added to the check request.
    #[serde(default)]
    pub headers_to_add: BTreeMap<String, String>,
}

/// `httpService.response`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpResponseSpec {
    /// Headers of an OK answer copied to the upstream request.
    #[serde(default)]
    pub allowed_upstream_headers: Vec<String>,
    /// Headers of a denial copied to the client's response.
    #[serde(default)]
    pub allowed_client_headers: Vec<String>,
}

/// `grpcService`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GrpcServiceSpec {
    /// The `:authority` of the calls.
    #[serde(default)]
    pub authority: String,
}

/// `requestBody`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RequestBody {
    /// Largest body sent, in bytes.
    pub max_request_bytes: u32,
    /// Send the first `maxRequestBytes` of a larger body instead of answering 413.
    #[serde(default)]
    pub allow_partial_message: bool,
    /// Send the body as bytes rather than text (gRPC).
    #[serde(default)]
    pub pack_as_bytes: bool,
}

impl ListenerAuth {
    /// Parses the value.
    pub fn from_json(json: &str) -> Result<Self, PluginError> {
        parse_config(json)
    }

    /// The `ext_authz` filter for the listener, enabled for every request.
    pub fn http_filter(&self) -> Result<HttpFilter, PluginError> {
        let mut errors = Vec::new();
        let server = &self.extauthz_server_ref;
        if server.name.is_empty() || server.namespace.is_empty() {
            errors.push(FieldError::new(
                "extauthzServerRef",
                "needs the name and namespace of an Upstream",
            ));
        }
        let timeout = match duration::parse(self.request_timeout.as_deref().unwrap_or("200ms")) {
            Ok(d) => Some(duration::to_proto(d)),
            Err(e) => {
                errors.push(FieldError::new("requestTimeout", e.to_string()));
                None
            }
        };
        if self
            .status_on_error
            .is_some_and(|c| !(200..=599).contains(&c))
        {
            errors.push(FieldError::new(
                "statusOnError",
                "must be an HTTP status between 200 and 599",
            ));
        }
        if self.http_service.is_some() && self.grpc_service.is_some() {
            errors.push(FieldError::new(
                "grpcService",
                "set httpService or grpcService, not both",
            ));
        }
        PluginError::check(errors)?;
        let cluster = ClusterName::for_upstream(&server.namespace, &server.name);
        let mut filter = ExtAuthz {
            // V3.
            transport_api_version: 2,
            failure_mode_allow: self.failure_mode_allow,
            clear_route_cache: self.clear_route_cache,
            status_on_error: self
                .status_on_error
                .map(|code| HttpStatus { code: code as i32 }),
            stat_prefix: self.stat_prefix.clone(),
            with_request_body: self.request_body.as_ref().map(|b| BufferSettings {
                max_request_bytes: b.max_request_bytes,
                allow_partial_message: b.allow_partial_message,
                pack_as_bytes: b.pack_as_bytes,
            }),
            ..Default::default()
        };
        filter.services = Some(match &self.http_service {
            Some(http) => {
                let request = http.request.clone().unwrap_or_default();
                let response = http.response.clone().unwrap_or_default();
                filter.allowed_headers = matchers(&request.allowed_headers);
                ext_authz::Services::HttpService(HttpService {
                    server_uri: Some(HttpUri {
                        uri: format!("http://{}", cluster.as_str()),
                        timeout,
                        http_upstream_type: Some(http_uri::HttpUpstreamType::Cluster(
                            cluster.as_str().to_owned(),
                        )),
                    }),
                    path_prefix: http.path_prefix.clone(),
                    #[allow(deprecated)]
                    authorization_request: Some(AuthorizationRequest {
                        headers_to_add: request
                            .headers_to_add
                            .iter()
                            .map(|(key, value)| HeaderValue {
                                key: key.clone(),
                                value: value.clone(),
                                ..Default::default()
                            })
                            .collect(),
                        ..Default::default()
                    }),
                    authorization_response: Some(AuthorizationResponse {
                        allowed_upstream_headers: matchers(&response.allowed_upstream_headers),
                        allowed_client_headers: matchers(&response.allowed_client_headers),
                        ..Default::default()
                    }),
                    ..Default::default()
                })
            }
            None => ext_authz::Services::GrpcService(GrpcService {
                timeout,
                target_specifier: Some(grpc_service::TargetSpecifier::EnvoyGrpc(
                    grpc_service::EnvoyGrpc {
                        cluster_name: cluster.as_str().to_owned(),
                        authority: self
                            .grpc_service
                            .as_ref()
                            .map(|g| g.authority.clone())
                            .unwrap_or_default(),
                        ..Default::default()
                    },
                )),
                ..Default::default()
            }),
        });
        Ok(HttpFilter::new(
            EXT_AUTHZ,
            Stage::during(StageName::Authn),
            &filter,
        ))
    }
}

/// Exact, case-insensitive header name matchers (`None` for none).
fn matchers(names: &[String]) -> Option<ListStringMatcher> {
    (!names.is_empty()).then(|| ListStringMatcher {
        patterns: names
            .iter()
            .map(|n| StringMatcher {
                ignore_case: true,
                match_pattern: Some(string_matcher::MatchPattern::Exact(n.clone())),
            })
            .collect(),
    })
}

/// `extauth` on a RouteOption or VirtualHostOption.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RouteAuth {
    /// Skip the check here.
    #[serde(default)]
    pub disable: bool,
    /// Extra context for the service.
    pub custom_auth: Option<CustomAuth>,
}

/// `extauth.customAuth`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CustomAuth {
    /// Key-value pairs sent with each check from here.
    #[serde(default)]
    pub context_extensions: BTreeMap<String, String>,
}

impl RouteAuth {
    /// Parses the value.
    pub fn from_json(json: &str) -> Result<Self, PluginError> {
        parse_config(json)
    }

    /// Envoy's per-route `ext_authz` config.
    pub fn per_route(&self) -> Result<ExtAuthzPerRoute, PluginError> {
        let choice = match (self.disable, &self.custom_auth) {
            (true, None) => ext_authz_per_route::Override::Disabled(true),
            (false, Some(custom)) => ext_authz_per_route::Override::CheckSettings(CheckSettings {
                context_extensions: custom.context_extensions.clone(),
                ..Default::default()
            }),
            _ => {
                return Err(PluginError::invalid(
                    "",
                    "set exactly one of disable: true and customAuth",
                ));
            }
        };
        Ok(ExtAuthzPerRoute {
            r#override: Some(choice),
        })
    }
}
