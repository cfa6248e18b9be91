//! Weir's built-in external authorization (`extauth`), with K8sGateway's shapes.
//!
//! On an **HttpListenerOption** it puts Envoy's `ext_authz` filter on the listener, asking
//! an authorization service (an Upstream) about every request:
//!
//! ```yaml
//! options:
//!   extauth:
//!     extauthzServerRef: {name: auth, namespace: default}   # an Upstream
//!     httpService:                                         # omit for the gRPC protocol
//!       pathPrefix: /check
//!       request: {allowedHeaders: [authorization, x-user]}
//!       response: {allowedUpstreamHeaders: [x-user-id]}
//!     requestTimeout: 0.5s
//!     failureModeAllow: false
//!     statusOnError: 503
//! ```
//!
//! On a **RouteOption** or **VirtualHostOption**, `extauth: {disable: true}` skips the
//! check there, and `extauth: {customAuth: {contextExtensions: {k: v}}}` sends extra
//! context to the service.

pub mod config;

use weir_plugin_sdk::envoy::config::route::v3::{Route, VirtualHost};
use weir_plugin_sdk::envoy::extensions::filters::network::http_connection_manager::v3::HttpConnectionManager;
use weir_plugin_sdk::{FilterPlugin, HookInput, HookOutput, PluginError, pack};

use crate::config::{EXT_AUTHZ, ListenerAuth, RouteAuth};

/// The `extauth` option.
pub struct ExtAuthPlugin;

impl FilterPlugin for ExtAuthPlugin {
    fn validate(_key: &str, config: &str) -> Result<(), PluginError> {
        // The same key has two shapes; one of them must fit.
        match ListenerAuth::from_json(config) {
            Ok(l) => l.http_filter().map(drop),
            Err(listener) => RouteAuth::from_json(config)
                .and_then(|r| r.per_route().map(drop))
                .map_err(|_| listener),
        }
    }

    fn apply_listener(_input: HookInput) -> Result<HookOutput, PluginError> {
        Err(PluginError::invalid(
            "",
            "extauth cannot be set on a ListenerOption; set it on an HttpListenerOption",
        ))
    }

    fn apply_http_connection_manager(input: HookInput) -> Result<HookOutput, PluginError> {
        let filter = ListenerAuth::from_json(&input.config)?.http_filter()?;
        let hcm: HttpConnectionManager = input.decode_target()?;
        Ok(HookOutput::new(&hcm).with_filter(filter))
    }

    fn apply_virtual_host(input: HookInput) -> Result<HookOutput, PluginError> {
        let per_route = RouteAuth::from_json(&input.config)?.per_route()?;
        let mut virtual_host: VirtualHost = input.decode_target()?;
        virtual_host
            .typed_per_filter_config
            .insert(EXT_AUTHZ.to_owned(), pack(&per_route).into());
        Ok(HookOutput::new(&virtual_host))
    }

    fn apply_route(input: HookInput) -> Result<HookOutput, PluginError> {
        let per_route = RouteAuth::from_json(&input.config)?.per_route()?;
        let mut route: Route = input.decode_target()?;
        route
            .typed_per_filter_config
            .insert(EXT_AUTHZ.to_owned(), pack(&per_route).into());
        Ok(HookOutput::new(&route))
    }
}

weir_plugin_sdk::export!(options: ExtAuthPlugin, name: "extauth", keys: ["extauth"], schema: "schema.json");

#[cfg(test)]
mod tests;
