//! The `upstream-type` world: [`UpstreamType`] turns one Upstream's type
//! block into an Envoy cluster.

use std::fmt;

use crate::envoy::config::cluster::v3::Cluster;
use crate::envoy::config::endpoint::v3::ClusterLoadAssignment;
use crate::{Any, ObjectRef, PluginError, pack};

/// The type URL of [`UpstreamOutput::cluster`].
pub const CLUSTER_TYPE_URL: &str = "type.googleapis.com/envoy.config.cluster.v3.Cluster";

/// An Upstream type: claims one or more Upstream spec keys (`static`, `aws`, ...)
/// and turns an Upstream's type block into an Envoy cluster.
///
/// Both functions are plain Rust, so tests call them directly; [`export!`](crate::export)
/// wires them to the component's exports.
///
/// # What the host accepts back
///
/// * [`UpstreamOutput::cluster`] must be a
///   `type.googleapis.com/envoy.config.cluster.v3.Cluster` named
///   [`UpstreamInput::cluster_name`].
/// * [`UpstreamOutput::load_assignment`], when set, must be a
///   `type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment`;
///   the host serves it over EDS.
///
/// Anything else, or output over the host's size cap, fails the Upstream.
pub trait UpstreamType {
    /// Checks the type block under `key` (JSON text) without translating it.
    ///
    /// Called when an Upstream is admitted, so users see mistakes in status
    /// before anything else; report every bad field with its path.
    fn validate(key: &str, config: &str) -> Result<(), PluginError>;

    /// Translates one Upstream into an Envoy cluster.
    fn translate(input: UpstreamInput) -> Result<UpstreamOutput, PluginError>;
}

/// The Envoy cluster name the host assigned to an Upstream; stable and unique.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClusterName(String);

// === impl ClusterName ===

impl ClusterName {
    /// Wraps a cluster name.
    pub fn new(name: impl Into<String>) -> Self {
        Self(name.into())
    }

    /// The name as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The cluster the host builds for Upstream `namespace/name` (`upstream_<ns>_<name>`),
    /// for an option that points Envoy at it (an authorization service, ...). The host
    /// adds that cluster to the Gateway's snapshot, and rejects the option when no
    /// accepted Upstream has the name.
    pub fn for_upstream(namespace: &str, name: &str) -> Self {
        Self(format!("upstream_{namespace}_{name}"))
    }
}

impl fmt::Display for ClusterName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<String> for ClusterName {
    fn from(name: String) -> Self {
        Self(name)
    }
}

impl From<&str> for ClusterName {
    fn from(name: &str) -> Self {
        Self(name.to_owned())
    }
}

impl From<ClusterName> for String {
    fn from(name: ClusterName) -> Self {
        name.0
    }
}

/// An endpoint the host has already resolved for the Upstream (for example
/// from the EndpointSlices of a Kubernetes Service).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Endpoint {
    /// IP address or hostname.
    pub address: String,
    /// Port number.
    pub port: u16,
    /// Load-balancing weight; 0 means the default weight.
    pub weight: u32,
    /// Whether the endpoint should receive new requests.
    pub ready: bool,
    /// Labels of the workload behind the endpoint (pod labels).
    pub labels: Vec<(String, String)>,
}

/// What the host gives an [`UpstreamType`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UpstreamInput {
    /// The Upstream object being translated.
    pub upstream: ObjectRef,
    /// The Envoy cluster name the output must use.
    pub cluster_name: ClusterName,
    /// The Upstream type key the plugin claimed (for example `static`).
    pub key: String,
    /// The type block of the Upstream spec, as JSON text.
    pub config: String,
    /// Endpoints resolved by the host, when the type needs them.
    pub endpoints: Vec<Endpoint>,
}

/// A callable function an Upstream exposes (REST operation, Lambda, ...).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Function {
    /// Function name, unique within the Upstream.
    pub name: String,
    /// Type-specific description of the function, as JSON text.
    pub spec: String,
}

/// What an [`UpstreamType`] returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamOutput {
    /// The cluster, an encoded `envoy.config.cluster.v3.Cluster`.
    pub cluster: Any,
    /// Optional separate endpoints, an encoded
    /// `envoy.config.endpoint.v3.ClusterLoadAssignment` served over EDS.
    pub load_assignment: Option<Any>,
    /// Functions the Upstream offers, if the type knows them up front.
    pub functions: Vec<Function>,
}

// === impl UpstreamOutput ===

impl UpstreamOutput {
    /// Output holding just `cluster`, encoded.
    pub fn new(cluster: &Cluster) -> Self {
        Self {
            cluster: pack(cluster),
            load_assignment: None,
            functions: Vec::new(),
        }
    }

    /// Output holding just a cluster the plugin encoded itself (the bytes of an
    /// `envoy.config.cluster.v3.Cluster`), for plugins that write the few fields they set
    /// rather than build the whole message.
    pub fn encoded(cluster: Vec<u8>) -> Self {
        Self {
            cluster: Any {
                type_url: CLUSTER_TYPE_URL.to_owned(),
                value: cluster,
            },
            load_assignment: None,
            functions: Vec::new(),
        }
    }

    /// Adds endpoints the host serves over EDS instead of inline.
    pub fn with_load_assignment(mut self, load_assignment: &ClusterLoadAssignment) -> Self {
        self.load_assignment = Some(pack(load_assignment));
        self
    }

    /// Adds functions the Upstream offers.
    pub fn with_functions(mut self, functions: Vec<Function>) -> Self {
        self.functions = functions;
        self
    }
}

#[cfg(test)]
mod tests {
    use prost::Name;

    use super::*;

    #[test]
    fn cluster_type_url_names_the_cluster_message() {
        assert_eq!(CLUSTER_TYPE_URL, Cluster::type_url());
        let output = UpstreamOutput::encoded(vec![10, 1, b'c']);
        assert!(output.cluster.is::<Cluster>());
        assert_eq!(output.cluster.value, [10, 1, b'c']);
    }
}
