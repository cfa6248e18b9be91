//! Weir's built-in global rate limiting, with K8sGateway's shapes.
//!
//! An **HttpListenerOption** puts Envoy's rate limit filter on the listener, asking a
//! rate-limit service (an Upstream speaking Envoy's `RateLimitService` gRPC API, domain
//! `weir`) about requests whose route or virtual host sends descriptors:
//!
//! ```yaml
//! options:
//!   ratelimitServer:
//!     ratelimitServerRef: {name: rls, namespace: default}   # an Upstream (useHttp2: true)
//!     requestTimeout: 100ms
//!     denyOnFail: false
//!     rateLimitBeforeAuth: false
//!     enableXRatelimitHeaders: true
//! ```
//!
//! A **RouteOption** or **VirtualHostOption** says which descriptors to send:
//!
//! ```yaml
//! options:
//!   ratelimit:
//!     rateLimits:
//!       - actions:
//!           - requestHeaders: {headerName: x-tier, descriptorKey: tier}
//!           - genericKey: {descriptorValue: checkout}
//!           - remoteAddress: {}
//! ```

pub mod config;

use weir_plugin_sdk::envoy::config::route::v3::{Route, VirtualHost, route};
use weir_plugin_sdk::envoy::extensions::filters::network::http_connection_manager::v3::HttpConnectionManager;
use weir_plugin_sdk::{FilterPlugin, HookInput, HookOutput, PluginError};

use crate::config::{RouteLimits, ServerSettings};

/// The rate limiting options.
pub struct RateLimitPlugin;

impl FilterPlugin for RateLimitPlugin {
    fn validate(key: &str, config: &str) -> Result<(), PluginError> {
        match key {
            "ratelimitServer" => ServerSettings::from_json(config)?.http_filter().map(drop),
            _ => RouteLimits::from_json(config)?.to_proto().map(drop),
        }
    }

    fn apply_listener(input: HookInput) -> Result<HookOutput, PluginError> {
        Err(PluginError::invalid(
            "",
            format!("{} cannot be set on a ListenerOption", input.key),
        ))
    }

    fn apply_http_connection_manager(input: HookInput) -> Result<HookOutput, PluginError> {
        if input.key != "ratelimitServer" {
            return Err(route_level(&input.key, "HttpListenerOption"));
        }
        let filter = ServerSettings::from_json(&input.config)?.http_filter()?;
        let hcm: HttpConnectionManager = input.decode_target()?;
        Ok(HookOutput::new(&hcm).with_filter(filter))
    }

    fn apply_virtual_host(input: HookInput) -> Result<HookOutput, PluginError> {
        let limits = route_limits(&input)?;
        let mut virtual_host: VirtualHost = input.decode_target()?;
        virtual_host.rate_limits.extend(limits);
        Ok(HookOutput::new(&virtual_host))
    }

    fn apply_route(input: HookInput) -> Result<HookOutput, PluginError> {
        let limits = route_limits(&input)?;
        let mut route: Route = input.decode_target()?;
        match &mut route.action {
            Some(route::Action::Route(action)) => action.rate_limits.extend(limits),
            // Redirects and direct responses never reach a backend.
            _ => return Ok(HookOutput::unchanged(&input)),
        }
        Ok(HookOutput::new(&route))
    }
}

/// The descriptors of a `ratelimit` value (the key must be `ratelimit`).
fn route_limits(
    input: &HookInput,
) -> Result<Vec<weir_plugin_sdk::envoy::config::route::v3::RateLimit>, PluginError> {
    if input.key != "ratelimit" {
        return Err(PluginError::invalid(
            "",
            format!(
                "{} cannot be set on a route or virtual host; set it on an HttpListenerOption",
                input.key
            ),
        ));
    }
    RouteLimits::from_json(&input.config)?.to_proto()
}

/// `key` says what routes send; it belongs on routes.
fn route_level(key: &str, kind: &str) -> PluginError {
    PluginError::invalid(
        "",
        format!("{key} cannot be set on a {kind}; set it on a RouteOption or VirtualHostOption"),
    )
}

weir_plugin_sdk::export!(
    options: RateLimitPlugin,
    name: "ratelimit",
    keys: ["ratelimitServer", "ratelimit"],
    schema: "schema.json"
);

#[cfg(test)]
mod tests;
