//! Weir's built-in `kube` Upstream type: one port of a Kubernetes Service.
//!
//! The type block uses K8sGateway's field names:
//!
//! ```json
//! {"serviceName": "petstore", "serviceNamespace": "shop", "servicePort": 8080,
//!  "selector": {"app": "petstore"},
//!  "subsetSpec": {"selectors": [{"keys": ["version"]}]}}
//! ```
//!
//! The host, not the plugin, watches the Service: it resolves its endpoints for
//! `servicePort` (keeping only pods that match `selector`, when set) and passes them in
//! [`UpstreamInput::endpoints`]. [`config`] reads and validates the block;
//! [`cluster`] turns it into an `EDS` cluster fed over ADS plus the
//! `ClusterLoadAssignment` the host serves for it, so endpoint churn never changes the
//! cluster itself.

pub mod cluster;
pub mod config;

use weir_plugin_sdk::{ConfigBlock, PluginError, UpstreamInput, UpstreamOutput, UpstreamType};

/// The `kube` Upstream type.
pub struct KubePlugin;

impl UpstreamType for KubePlugin {
    fn validate(_key: &str, config: &str) -> Result<(), PluginError> {
        config::KubeConfig::from_json(config).map(drop)
    }

    fn translate(input: UpstreamInput) -> Result<UpstreamOutput, PluginError> {
        let config = config::KubeConfig::from_json(&input.config)?;
        let name = input.cluster_name.as_str();
        let cluster = cluster::to_cluster(name, &config);
        let load_assignment = cluster::to_load_assignment(name, &config, &input.endpoints);
        Ok(UpstreamOutput::new(&cluster).with_load_assignment(&load_assignment))
    }
}

weir_plugin_sdk::export!(upstream_type: KubePlugin, name: "kube", keys: ["kube"], schema: "schema.json");
