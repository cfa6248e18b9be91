//! The translator's view of the plugin runtime: [`Session`] implements
//! [`UpstreamPlugins`], so `translate` never sees wasmtime.

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;

use crate::model::WEIR_GROUP;
use crate::translate::{UpstreamPlugins, UpstreamRequest};

use super::bindings::{ObjectRef, PluginError};
use super::error::{CallError, describe};
use super::session::{Endpoint, Session, UpstreamInput};

impl UpstreamPlugins for Session<'_> {
    fn translate_upstream(
        &mut self,
        request: &UpstreamRequest<'_>,
    ) -> Result<(Cluster, Option<ClusterLoadAssignment>), String> {
        let input = UpstreamInput {
            upstream: ObjectRef {
                group: WEIR_GROUP.to_string(),
                kind: "Upstream".to_string(),
                namespace: request.upstream.namespace.clone().unwrap_or_default(),
                name: request.upstream.name.clone(),
            },
            cluster_name: request.cluster_name.0.clone(),
            key: request.type_key.to_string(),
            config: request.config.to_string(),
            endpoints: request
                .endpoints
                .iter()
                .map(|e| Endpoint {
                    address: e.address.clone(),
                    port: e.port,
                    weight: e.weight,
                    ready: e.ready,
                    labels: e.labels.clone(),
                })
                .collect(),
        };
        let key = request.type_key;
        self.translate_upstream(&input)
            .map(|r| (*r.cluster, r.load_assignment))
            .map_err(|e| match e {
                // The plugin's field paths are relative to the type block it received.
                CallError::Declined { plugin, error } => {
                    let detail = match &error {
                        PluginError::InvalidConfig(fields) => fields
                            .iter()
                            .map(|f| format!("spec.{key}.{}: {}", f.path, f.message))
                            .collect::<Vec<_>>()
                            .join("; "),
                        PluginError::Unresolved(f) => {
                            format!("spec.{key}.{}: {}", f.path, f.message)
                        }
                        other => format!("spec.{key}: {}", describe(other)),
                    };
                    format!("{plugin} rejected the Upstream: {detail}")
                }
                other => format!("spec.{key}: {other}"),
            })
    }
}
