//! The `function-discovery` world: [`FunctionDiscovery`] finds the functions
//! an Upstream offers in a document the host fetched.

use crate::{Function, ObjectRef, PluginError};

/// A function-discovery plugin: reads a document the host fetched on its
/// behalf (an OpenAPI spec, a Lambda function list, ...) and lists the
/// functions it describes. It does no I/O itself.
pub trait FunctionDiscovery {
    /// Lists the functions described by `input.document`.
    fn discover(input: DiscoveryInput) -> Result<Vec<Function>, PluginError>;
}

/// A document the host fetched on the plugin's behalf.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Document {
    /// Where it came from (URL or object path).
    pub source: String,
    /// Its media type, for example `application/json`.
    pub content_type: String,
    /// The raw bytes.
    pub body: Vec<u8>,
}

/// What the host gives a [`FunctionDiscovery`] plugin.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DiscoveryInput {
    /// The Upstream whose functions are being discovered.
    pub upstream: ObjectRef,
    /// The Upstream type key (for example `aws` or `kube`).
    pub key: String,
    /// The Upstream's type block, as JSON text.
    pub config: String,
    /// The fetched document.
    pub document: Document,
}
