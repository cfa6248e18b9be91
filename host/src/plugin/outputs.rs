//! Checking what plugins return: sizes, type URLs, and that every proto decodes as the
//! type the hook may return. Nothing a plugin returns reaches a snapshot unchecked.

use std::sync::Arc;

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use prost::{Message, Name};

use super::bindings::{Any, options, upstream};
use super::error::{CallError, PluginId};
use super::fast_cluster;
use super::session::{Function, HttpFilter};

/// The level an option hook works at; each level has one Envoy message type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum HookLevel {
    /// `envoy.config.listener.v3.Listener` (ListenerOption).
    Listener,
    /// The HTTP connection manager (HttpListenerOption).
    HttpConnectionManager,
    /// `envoy.config.route.v3.VirtualHost` (VirtualHostOption).
    VirtualHost,
    /// `envoy.config.route.v3.Route` (RouteOption).
    Route,
}

impl HookLevel {
    /// The type URL of the message this level's hook receives and returns.
    pub fn type_url(self) -> &'static str {
        match self {
            HookLevel::Listener => "type.googleapis.com/envoy.config.listener.v3.Listener",
            HookLevel::HttpConnectionManager => {
                "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
            }
            HookLevel::VirtualHost => "type.googleapis.com/envoy.config.route.v3.VirtualHost",
            HookLevel::Route => "type.googleapis.com/envoy.config.route.v3.Route",
        }
    }
}

/// A checked Upstream translation.
#[derive(Clone, Debug)]
pub struct UpstreamResult {
    /// The Envoy cluster, boxed: `Cluster` is a 3 KB struct, and decoding it straight
    /// into the heap saves copying it on every move.
    pub cluster: Box<Cluster>,
    /// Endpoints to serve over EDS, when the plugin returned them separately.
    pub load_assignment: Option<ClusterLoadAssignment>,
    /// Functions the Upstream offers.
    pub functions: Vec<Function>,
}

/// A checked hook result: the modified message and the HTTP filters it needs.
#[derive(Clone, Debug)]
pub struct HookResult<M> {
    /// The modified Envoy message.
    pub target: M,
    /// HTTP filters the option needs on the listener.
    pub http_filters: Vec<HttpFilter>,
}

/// `Cluster::type_url()`, without building it on every call.
const CLUSTER_TYPE_URL: &str = "type.googleapis.com/envoy.config.cluster.v3.Cluster";

pub(super) fn upstream(
    plugin: &Arc<PluginId>,
    output: upstream::exports::weir::plugin::upstream::UpstreamOutput,
    limit: usize,
) -> Result<UpstreamResult, CallError> {
    // The type URL compared with a constant: `Cluster::type_url()` builds a `String`.
    if output.cluster.type_url != CLUSTER_TYPE_URL {
        check_any::<Cluster>(plugin, "the cluster", &output.cluster, limit)?;
    }
    check_size(plugin, "the cluster", output.cluster.value.len(), limit)?;
    let mut cluster = Box::<Cluster>::default();
    // Most plugins return a plain cluster, which the quick decoder reads in a fraction
    // of prost's time; it gives up (deciding nothing) on anything else.
    if !fast_cluster::decode(&output.cluster.value, &mut cluster) {
        *cluster = Cluster::default();
        merge(plugin, "the cluster", &output.cluster, &mut *cluster)?;
    }
    let load_assignment = output
        .load_assignment
        .as_ref()
        .map(|any| decode::<ClusterLoadAssignment>(plugin, "the endpoints", any, limit))
        .transpose()?;
    functions(plugin, &output.functions, limit)?;
    Ok(UpstreamResult {
        cluster,
        load_assignment,
        functions: output.functions,
    })
}

pub(super) fn hook<M: Message + Name + Default>(
    plugin: &Arc<PluginId>,
    output: options::exports::weir::plugin::filters::HookOutput,
    limit: usize,
) -> Result<HookResult<M>, CallError> {
    let target = decode::<M>(plugin, "the modified message", &output.target, limit)?;
    let mut total = 0;
    for filter in &output.http_filters {
        total += filter.name.len() + filter.config.value.len();
        check_size(plugin, "HTTP filters", total, limit)?;
        if filter.name.trim().is_empty() {
            return Err(CallError::Undecodable {
                plugin: plugin.clone(),
                what: "an HTTP filter",
                type_url: filter.config.type_url.clone(),
                reason: "the filter has no name".into(),
            });
        }
        if !filter.config.type_url.starts_with("type.googleapis.com/") {
            return Err(CallError::Undecodable {
                plugin: plugin.clone(),
                what: "an HTTP filter config",
                type_url: filter.config.type_url.clone(),
                reason: "a type URL must start with `type.googleapis.com/`".into(),
            });
        }
    }
    Ok(HookResult {
        target,
        http_filters: output.http_filters,
    })
}

pub(super) fn functions(
    plugin: &Arc<PluginId>,
    functions: &[Function],
    limit: usize,
) -> Result<(), CallError> {
    let size = functions.iter().map(|f| f.name.len() + f.spec.len()).sum();
    check_size(plugin, "its functions", size, limit)
}

fn decode<M: Message + Name + Default>(
    plugin: &Arc<PluginId>,
    what: &'static str,
    any: &Any,
    limit: usize,
) -> Result<M, CallError> {
    let mut message = M::default();
    decode_into(plugin, what, any, limit, &mut message)?;
    Ok(message)
}

/// [`decode`] into a default `message` the caller placed (on the heap, for a big one).
fn decode_into<M: Message + Name>(
    plugin: &Arc<PluginId>,
    what: &'static str,
    any: &Any,
    limit: usize,
    message: &mut M,
) -> Result<(), CallError> {
    check_any::<M>(plugin, what, any, limit)?;
    merge(plugin, what, any, message)
}

/// Checks an output's size and that its type URL is `M`'s.
fn check_any<M: Name>(
    plugin: &Arc<PluginId>,
    what: &'static str,
    any: &Any,
    limit: usize,
) -> Result<(), CallError> {
    check_size(plugin, what, any.value.len(), limit)?;
    let expected = M::type_url();
    if any.type_url != expected {
        return Err(CallError::WrongType {
            plugin: plugin.clone(),
            what,
            expected,
            got: any.type_url.clone(),
        });
    }
    Ok(())
}

/// Decodes an output (already checked by [`check_any`]) into `message` with prost.
fn merge<M: Message + Name>(
    plugin: &Arc<PluginId>,
    what: &'static str,
    any: &Any,
    message: &mut M,
) -> Result<(), CallError> {
    let expected = M::type_url();
    message
        .merge(any.value.as_slice())
        .map_err(|err| CallError::Undecodable {
            plugin: plugin.clone(),
            what,
            type_url: expected,
            reason: err.to_string(),
        })
}

fn check_size(
    plugin: &Arc<PluginId>,
    what: &'static str,
    size: usize,
    limit: usize,
) -> Result<(), CallError> {
    if size > limit {
        return Err(CallError::OutputTooLarge {
            plugin: plugin.clone(),
            what,
            size,
            limit,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cluster_type_url_constant_is_the_clusters() {
        assert_eq!(CLUSTER_TYPE_URL, Cluster::type_url());
    }
}
