//! Weir's built-in `faults` option: fault injection on routes.
//!
//! The option value uses K8sGateway's shape:
//!
//! ```json
//! {"abort": {"percentage": 50.0, "httpStatus": 503},
//!  "delay": {"percentage": 100.0, "fixedDelay": "2s"}}
//! ```
//!
//! On a RouteOption (or VirtualHostOption) it sets the route's (or virtual
//! host's) per-filter config for `envoy.filters.http.fault` to an `HTTPFault`
//! built by [`config::FaultsConfig::to_http_fault`], and asks for the fault
//! filter in the listener's chain at stage `fault`/`during`. That listener
//! filter carries an empty `HTTPFault`, which injects nothing on its own, so it
//! is left enabled: routes without the option pass through untouched.

pub mod config;

use weir_plugin_sdk::envoy::config::route::v3::{Route, VirtualHost};
use weir_plugin_sdk::envoy::extensions::filters::http::fault::v3::HttpFault;
use weir_plugin_sdk::{
    FilterPlugin, HookInput, HookOutput, HttpFilter, PluginError, Stage, StageName, pack,
};

use crate::config::FaultsConfig;

/// Envoy's name for the fault injection HTTP filter.
pub const FAULT_FILTER: &str = "envoy.filters.http.fault";

/// The `faults` option.
pub struct FaultsPlugin;

impl FaultsPlugin {
    /// The fault filter every listener with a `faults` option needs.
    pub fn http_filter() -> HttpFilter {
        HttpFilter::new(
            FAULT_FILTER,
            Stage::during(StageName::Fault),
            &HttpFault::default(),
        )
    }
}

impl FilterPlugin for FaultsPlugin {
    fn validate(_key: &str, config: &str) -> Result<(), PluginError> {
        FaultsConfig::from_json(config).map(drop)
    }

    fn apply_listener(_input: HookInput) -> Result<HookOutput, PluginError> {
        Err(wrong_level("ListenerOption"))
    }

    fn apply_http_connection_manager(_input: HookInput) -> Result<HookOutput, PluginError> {
        Err(wrong_level("HttpListenerOption"))
    }

    fn apply_virtual_host(input: HookInput) -> Result<HookOutput, PluginError> {
        let fault = FaultsConfig::from_json(&input.config)?.to_http_fault();
        let mut virtual_host: VirtualHost = input.decode_target()?;
        virtual_host
            .typed_per_filter_config
            .insert(FAULT_FILTER.to_owned(), pack(&fault).into());
        Ok(HookOutput::new(&virtual_host).with_filter(Self::http_filter()))
    }

    fn apply_route(input: HookInput) -> Result<HookOutput, PluginError> {
        let fault = FaultsConfig::from_json(&input.config)?.to_http_fault();
        let mut route: Route = input.decode_target()?;
        route
            .typed_per_filter_config
            .insert(FAULT_FILTER.to_owned(), pack(&fault).into());
        Ok(HookOutput::new(&route).with_filter(Self::http_filter()))
    }
}

/// Faults are injected per route; a listener-level option cannot say where.
fn wrong_level(kind: &str) -> PluginError {
    PluginError::invalid(
        "",
        format!("faults cannot be set on a {kind}; set it on a RouteOption or VirtualHostOption"),
    )
}

weir_plugin_sdk::export!(options: FaultsPlugin, name: "faults", keys: ["faults"], schema: "schema.json");

#[cfg(test)]
mod tests;
