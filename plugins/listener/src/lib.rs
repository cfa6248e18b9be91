//! Weir's built-in listener options, with K8sGateway's field names and shapes.
//!
//! On an **HttpListenerOption** (the HTTP connection manager of the Gateway listeners it
//! targets):
//!
//! ```yaml
//! options:
//!   httpConnectionManagerSettings: {useRemoteAddress: true, serverName: edge, idleTimeout: 30s}
//!   gzip: {compressionLevel: BEST, contentLength: 100, contentType: [text/plain]}
//!   healthCheck: {path: /healthz}           # Envoy answers 200 itself
//!   httpLocalRatelimit: {defaultLimit: {maxTokens: 10, tokensPerFill: 10, fillInterval: 1s}}
//!   router: {suppressEnvoyHeaders: true}
//!   grpcWeb: {}                             # {disable: true} leaves it off
//!   buffer: {maxRequestBytes: 1048576}      # larger requests get 413
//! ```
//!
//! On a **ListenerOption** (the Envoy listener on the targeted listeners' port):
//!
//! ```yaml
//! options:
//!   accessLoggingService:
//!     accessLog: [{fileSink: {path: /var/log/envoy/access.log, stringFormat: "%REQ(:PATH)%\n"}}]
//!   perConnectionBufferLimitBytes: 32768
//!   connectionBalanceConfig: {exactBalance: {}}
//!   socketOptions: [{level: 1, name: 9, intValue: 1, state: STATE_PREBIND}]
//!   proxyProtocol: {allowRequestsWithoutProxyProtocol: false}
//! ```
//!
//! `gzip`, `healthCheck`, `httpLocalRatelimit`, `grpcWeb` and `buffer` add their HTTP filter, enabled, to the
//! connection manager; the others change Envoy's own fields.

pub mod filters;
pub mod hcm;
pub mod listener;

use weir_plugin_sdk::envoy::config::listener::v3::Listener;
use weir_plugin_sdk::envoy::extensions::filters::network::http_connection_manager::v3::HttpConnectionManager;
use weir_plugin_sdk::{FilterPlugin, HookInput, HookOutput, PluginError};

/// The keys an HttpListenerOption may set.
pub const HTTP_LISTENER_KEYS: &[&str] = &[
    "httpConnectionManagerSettings",
    "gzip",
    "healthCheck",
    "httpLocalRatelimit",
    "router",
    "grpcWeb",
    "buffer",
];

/// The listener options.
pub struct ListenerPlugin;

impl FilterPlugin for ListenerPlugin {
    fn validate(key: &str, config: &str) -> Result<(), PluginError> {
        if HTTP_LISTENER_KEYS.contains(&key) {
            hcm::HttpListenerSetting::from_json(key, config).map(drop)
        } else {
            listener::ListenerSetting::from_json(key, config).map(drop)
        }
    }

    fn apply_listener(input: HookInput) -> Result<HookOutput, PluginError> {
        if HTTP_LISTENER_KEYS.contains(&input.key.as_str()) {
            return Err(wrong_level(
                &input.key,
                "ListenerOption",
                "HttpListenerOption",
            ));
        }
        let setting = listener::ListenerSetting::from_json(&input.key, &input.config)?;
        let mut target: Listener = input.decode_target()?;
        setting.apply(&mut target)?;
        Ok(HookOutput::new(&target))
    }

    fn apply_http_connection_manager(input: HookInput) -> Result<HookOutput, PluginError> {
        if !HTTP_LISTENER_KEYS.contains(&input.key.as_str()) {
            return Err(wrong_level(
                &input.key,
                "HttpListenerOption",
                "ListenerOption",
            ));
        }
        let setting = hcm::HttpListenerSetting::from_json(&input.key, &input.config)?;
        let mut target: HttpConnectionManager = input.decode_target()?;
        let filter = setting.apply(&mut target)?;
        let output = HookOutput::new(&target);
        Ok(match filter {
            Some(filter) => output.with_filter(filter),
            None => output,
        })
    }

    fn apply_virtual_host(input: HookInput) -> Result<HookOutput, PluginError> {
        Err(listener_only(&input.key, "VirtualHostOption"))
    }

    fn apply_route(input: HookInput) -> Result<HookOutput, PluginError> {
        Err(listener_only(&input.key, "RouteOption"))
    }
}

/// `key` belongs on the other listener-level kind.
fn wrong_level(key: &str, kind: &str, right: &str) -> PluginError {
    PluginError::invalid(
        "",
        format!("{key} cannot be set on a {kind}; set it on an {right}"),
    )
}

/// These options change listeners; a route-level option cannot.
fn listener_only(key: &str, kind: &str) -> PluginError {
    let right = if HTTP_LISTENER_KEYS.contains(&key) {
        "an HttpListenerOption"
    } else {
        "a ListenerOption"
    };
    PluginError::invalid(
        "",
        format!("{key} cannot be set on a {kind}; set it on {right}"),
    )
}

weir_plugin_sdk::export!(
    options: ListenerPlugin,
    name: "listener",
    keys: [
        "httpConnectionManagerSettings",
        "gzip",
        "healthCheck",
        "httpLocalRatelimit",
        "router",
        "grpcWeb",
        "buffer",
        "accessLoggingService",
        "perConnectionBufferLimitBytes",
        "connectionBalanceConfig",
        "socketOptions",
        "proxyProtocol"
    ],
    schema: "schema.json"
);

#[cfg(test)]
mod tests;
