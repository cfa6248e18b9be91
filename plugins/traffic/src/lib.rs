//! Weir's built-in traffic policies for routes and virtual hosts, with K8sGateway's field
//! names and shapes. On a RouteOption or VirtualHostOption:
//!
//! ```yaml
//! options:
//!   cors:
//!     allowOrigin: [https://app.example.com]
//!     allowOriginRegex: ["https://.*\\.example\\.com"]
//!     allowMethods: [GET, POST]
//!     allowHeaders: [x-token]
//!     exposeHeaders: [x-trace]
//!     maxAge: "600"
//!     allowCredentials: true
//!   csrf:
//!     filterEnabled: {defaultValue: {numerator: 100, denominator: HUNDRED}}
//!     additionalOrigins: [{suffix: .example.com}]   # hosts, without the scheme
//!   bufferPerRoute: {buffer: {maxRequestBytes: 65536}}   # or {disabled: true}
//!   localRatelimit: {maxTokens: 10, tokensPerFill: 10, fillInterval: 1s}
//! ```
//!
//! Each sets the per-filter config of its Envoy HTTP filter on the route (or virtual
//! host) and asks for the filter in the listener's chain; the filters do nothing on
//! routes without the option (the buffer filter is disabled there outright).

pub mod config;

use weir_plugin_sdk::envoy::config::route::v3::{Route, VirtualHost};
use weir_plugin_sdk::{FilterPlugin, HookInput, HookOutput, PluginError};

use crate::config::Policy;

/// The traffic policies.
pub struct TrafficPlugin;

impl FilterPlugin for TrafficPlugin {
    fn validate(key: &str, config: &str) -> Result<(), PluginError> {
        Policy::from_json(key, config)?.per_filter().map(drop)
    }

    fn apply_listener(input: HookInput) -> Result<HookOutput, PluginError> {
        Err(wrong_level(&input.key, "ListenerOption"))
    }

    fn apply_http_connection_manager(input: HookInput) -> Result<HookOutput, PluginError> {
        Err(wrong_level(&input.key, "HttpListenerOption"))
    }

    fn apply_virtual_host(input: HookInput) -> Result<HookOutput, PluginError> {
        let policy = Policy::from_json(&input.key, &input.config)?;
        let (name, per_filter) = policy.per_filter()?;
        let mut virtual_host: VirtualHost = input.decode_target()?;
        virtual_host
            .typed_per_filter_config
            .insert(name.to_owned(), per_filter);
        Ok(HookOutput::new(&virtual_host).with_filter(policy.http_filter()))
    }

    fn apply_route(input: HookInput) -> Result<HookOutput, PluginError> {
        let policy = Policy::from_json(&input.key, &input.config)?;
        let (name, per_filter) = policy.per_filter()?;
        let mut route: Route = input.decode_target()?;
        route
            .typed_per_filter_config
            .insert(name.to_owned(), per_filter);
        Ok(HookOutput::new(&route).with_filter(policy.http_filter()))
    }
}

/// These policies are set per route or virtual host.
fn wrong_level(key: &str, kind: &str) -> PluginError {
    PluginError::invalid(
        "",
        format!("{key} cannot be set on a {kind}; set it on a RouteOption or VirtualHostOption"),
    )
}

weir_plugin_sdk::export!(
    options: TrafficPlugin,
    name: "traffic",
    keys: ["cors", "csrf", "bufferPerRoute", "localRatelimit"],
    schema: "schema.json"
);

#[cfg(test)]
mod tests;
