// The plugin itself, kept apart from `lib.rs` (docs and export) so the hot-reload test can
// build the very same code as a newer release (tests/fixtures/plugins/owner-header-v2).

use serde::Deserialize;
use weir_plugin_sdk::envoy::config::core::v3::{HeaderValue, HeaderValueOption};
use weir_plugin_sdk::envoy::config::route::v3::{Route, VirtualHost};
use weir_plugin_sdk::{FilterPlugin, HookInput, HookOutput, PluginError, parse_config};

/// The `ownerHeader` option value.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Owner {
    /// The team that owns the route.
    pub team: String,
    /// The environment; `prod` when unset.
    #[serde(default = "prod")]
    pub env: String,
}

fn prod() -> String {
    "prod".to_owned()
}

impl Owner {
    /// Parses and checks an option value.
    pub fn from_json(config: &str) -> Result<Self, PluginError> {
        let owner: Owner = parse_config(config)?;
        if owner.team.is_empty() {
            return Err(PluginError::invalid("team", "must not be empty"));
        }
        Ok(owner)
    }

    /// The header the option adds: computed from the config, and naming the plugin's
    /// version so a reader can tell which build answered.
    pub fn header(&self) -> HeaderValueOption {
        HeaderValueOption {
            header: Some(HeaderValue {
                key: "x-owner".to_owned(),
                value: format!(
                    "{}@{} (owner-header {})",
                    self.team,
                    self.env,
                    env!("CARGO_PKG_VERSION")
                ),
                ..Default::default()
            }),
            ..Default::default()
        }
    }
}

/// The `ownerHeader` option, on RouteOptions and VirtualHostOptions.
pub struct OwnerHeader;

impl FilterPlugin for OwnerHeader {
    fn validate(_key: &str, config: &str) -> Result<(), PluginError> {
        Owner::from_json(config).map(drop)
    }

    fn apply_route(input: HookInput) -> Result<HookOutput, PluginError> {
        let owner = Owner::from_json(&input.config)?;
        let mut route: Route = input.decode_target()?;
        route.response_headers_to_add.push(owner.header());
        Ok(HookOutput::new(&route))
    }

    fn apply_virtual_host(input: HookInput) -> Result<HookOutput, PluginError> {
        let owner = Owner::from_json(&input.config)?;
        let mut virtual_host: VirtualHost = input.decode_target()?;
        virtual_host.response_headers_to_add.push(owner.header());
        Ok(HookOutput::new(&virtual_host))
    }
}
