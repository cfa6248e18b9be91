//! Weir's built-in `static` Upstream type: a fixed list of hosts.
//!
//! The type block uses K8sGateway's field names:
//!
//! ```json
//! {"hosts": [{"addr": "10.0.0.1", "port": 8080, "loadBalancingWeight": 2}],
//!  "useTls": true, "autoSniRewrite": true}
//! ```
//!
//! [`config`] reads and validates it (plain blocks through a quick reader, the rest
//! through serde); [`cluster`] turns it into an Envoy
//! cluster with inline endpoints (`STATIC` when every address is an IP,
//! `STRICT_DNS` otherwise) and, when TLS is on, an upstream TLS transport
//! socket with SNI.

pub mod cluster;
pub mod config;
mod plain_json;

use weir_plugin_sdk::{ConfigBlock, PluginError, UpstreamInput, UpstreamOutput, UpstreamType};

/// The `static` Upstream type.
pub struct StaticPlugin;

impl UpstreamType for StaticPlugin {
    fn validate(_key: &str, config: &str) -> Result<(), PluginError> {
        config::StaticConfig::from_json(config).map(drop)
    }

    fn translate(input: UpstreamInput) -> Result<UpstreamOutput, PluginError> {
        let config = config::StaticConfig::from_json(&input.config)?;
        let cluster = cluster::encode_cluster(input.cluster_name.as_str(), &config);
        Ok(UpstreamOutput::encoded(cluster))
    }
}

weir_plugin_sdk::export!(upstream_type: StaticPlugin, name: "static", keys: ["static"], schema: "schema.json");
