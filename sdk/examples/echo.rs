//! An Upstream type (key `echo`) that turns any Upstream into an empty
//! cluster with the name the host chose. The smallest complete plugin.
//!
//! Build it as a component: `cargo build --release --target wasm32-wasip2 -p weir-plugin-sdk --example echo`.

use weir_plugin_sdk::envoy::config::cluster::v3::Cluster;
use weir_plugin_sdk::{PluginError, UpstreamInput, UpstreamOutput, UpstreamType};

/// The `echo` Upstream type.
pub struct Echo;

impl UpstreamType for Echo {
    fn validate(_key: &str, config: &str) -> Result<(), PluginError> {
        weir_plugin_sdk::parse_config::<serde_json::Map<String, serde_json::Value>>(config)
            .map(drop)
    }

    fn translate(input: UpstreamInput) -> Result<UpstreamOutput, PluginError> {
        weir_plugin_sdk::log::debug(&format!("echoing {}", input.upstream));
        let cluster = Cluster {
            name: input.cluster_name.to_string(),
            ..Default::default()
        };
        Ok(UpstreamOutput::new(&cluster))
    }
}

weir_plugin_sdk::export!(upstream_type: Echo, name: "echo", keys: ["echo"], schema: "examples/echo.schema.json");
