//! Weir's built-in routing options: what a RouteOption (or VirtualHostOption) changes
//! on Envoy's route itself, with K8sGateway's field names and shapes:
//!
//! ```yaml
//! options:
//!   timeout: 5s
//!   retries: {retryOn: "5xx", numRetries: 3, perTryTimeout: 1s}
//!   prefixRewrite: /v2
//!   regexRewrite: {pattern: {regex: "^/old/(.*)"}, substitution: "/new/\\1"}
//!   hostRewrite: internal.example.com        # or autoHostRewrite: true, hostRewriteHeader: x-host
//!   headerManipulation:
//!     requestHeadersToAdd: [{header: {key: x-team, value: a}, append: false}]
//!     requestHeadersToRemove: [x-debug]
//!     responseHeadersToAdd: [{header: {key: x-served-by, value: weir}}]
//!     responseHeadersToRemove: [server]
//!   idleTimeout: 60s
//!   lbHash: {hashPolicies: [{header: x-user}, {cookie: {name: session, ttl: 1h}}, {sourceIp: true}]}
//!   upgrades: [{websocket: {enabled: false}}]
//!   shadowing: {upstream: {name: canary, namespace: apps}, percentage: 10}
//!   includeRequestAttemptCount: true      # VirtualHostOption only
//!   includeAttemptCountInResponse: true   # VirtualHostOption only
//! ```
//!
//! None of them needs an HTTP filter. `retries` and `headerManipulation` also apply to a
//! whole virtual host, the attempt counts only to one; the others only to routes. Timeouts, retries and rewrites act on
//! routes that forward to a backend and leave redirects and direct responses alone.

pub mod config;

use weir_plugin_sdk::envoy::config::route::v3::{Route, VirtualHost, route};
use weir_plugin_sdk::{FilterPlugin, HookInput, HookOutput, PluginError};

use crate::config::{HeaderLists, RouteSettings};

/// The routing options.
pub struct RoutingPlugin;

impl FilterPlugin for RoutingPlugin {
    fn validate(key: &str, config: &str) -> Result<(), PluginError> {
        RouteSettings::from_json(key, config).map(drop)
    }

    fn apply_listener(input: HookInput) -> Result<HookOutput, PluginError> {
        Err(wrong_level(&input.key, "ListenerOption"))
    }

    fn apply_http_connection_manager(input: HookInput) -> Result<HookOutput, PluginError> {
        Err(wrong_level(&input.key, "HttpListenerOption"))
    }

    fn apply_virtual_host(input: HookInput) -> Result<HookOutput, PluginError> {
        let mut virtual_host: VirtualHost = input.decode_target()?;
        match RouteSettings::from_json(&input.key, &input.config)? {
            RouteSettings::Retries(retries) => virtual_host.retry_policy = Some(retries.to_proto()),
            RouteSettings::Headers(headers) => headers.add_to(HeaderLists {
                request_add: &mut virtual_host.request_headers_to_add,
                request_remove: &mut virtual_host.request_headers_to_remove,
                response_add: &mut virtual_host.response_headers_to_add,
                response_remove: &mut virtual_host.response_headers_to_remove,
            }),
            RouteSettings::IncludeRequestAttemptCount(on) => {
                virtual_host.include_request_attempt_count = on
            }
            RouteSettings::IncludeAttemptCountInResponse(on) => {
                virtual_host.include_attempt_count_in_response = on
            }
            _ => {
                return Err(PluginError::invalid(
                    "",
                    format!(
                        "{} applies to routes only; set it on a RouteOption",
                        input.key
                    ),
                ));
            }
        }
        Ok(HookOutput::new(&virtual_host))
    }

    fn apply_route(input: HookInput) -> Result<HookOutput, PluginError> {
        let settings = RouteSettings::from_json(&input.key, &input.config)?;
        let mut route: Route = input.decode_target()?;
        settings.apply_to_route(&mut route)?;
        Ok(HookOutput::new(&route))
    }
}

/// Whether `route` forwards to a backend (the only kind timeouts and rewrites act on).
pub fn forwards(route: &Route) -> bool {
    matches!(route.action, Some(route::Action::Route(_)))
}

/// These options change routes; a listener-level option cannot say which.
fn wrong_level(key: &str, kind: &str) -> PluginError {
    PluginError::invalid(
        "",
        format!("{key} cannot be set on a {kind}; set it on a RouteOption or VirtualHostOption"),
    )
}

weir_plugin_sdk::export!(
    options: RoutingPlugin,
    name: "routing",
    keys: [
        "timeout",
        "retries",
        "prefixRewrite",
        "regexRewrite",
        "hostRewrite",
        "autoHostRewrite",
        "hostRewriteHeader",
        "headerManipulation",
        "idleTimeout",
        "lbHash",
        "upgrades",
        "includeRequestAttemptCount",
        "includeAttemptCountInResponse",
        "shadowing"
    ],
    schema: "schema.json"
);

#[cfg(test)]
mod tests;
