//! Builds the EDS cluster and its `ClusterLoadAssignment` for a validated `kube` block.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use weir_plugin_sdk::Endpoint;
use weir_plugin_sdk::duration::to_proto;
use weir_plugin_sdk::envoy::config::cluster::v3::Cluster;
use weir_plugin_sdk::envoy::config::cluster::v3::cluster::{
    self, EdsClusterConfig, LbSubsetConfig, lb_subset_config,
};
use weir_plugin_sdk::envoy::config::core::v3::{
    Address, AggregatedConfigSource, ApiVersion, ConfigSource, HealthStatus, Metadata,
    SocketAddress, address, config_source, socket_address,
};
use weir_plugin_sdk::envoy::config::endpoint::v3::{
    ClusterLoadAssignment, Endpoint as EnvoyEndpoint, LbEndpoint, LocalityLbEndpoints, lb_endpoint,
};
use weir_plugin_sdk::log;
use weir_plugin_sdk::prost_types::{Struct, Value, value};

use crate::config::KubeConfig;

/// How long Envoy waits for a connection to a pod (K8sGateway's default).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The metadata filter Envoy's subset load balancer reads endpoint labels from.
pub const SUBSET_METADATA: &str = "envoy.lb";

/// The cluster `name`: type `EDS`, its endpoints fetched over ADS from the host.
///
/// The endpoints are not inline, so pods coming and going change only the
/// [`to_load_assignment`] output and Envoy never rebuilds the cluster (which would drop
/// its connection pools). With a `subsetSpec`, the cluster balances over subsets of the
/// endpoints by label, falling back to any endpoint when a route's labels match none.
pub fn to_cluster(name: &str, config: &KubeConfig) -> Cluster {
    let lb_subset_config = config.subset_spec.as_ref().map(|spec| LbSubsetConfig {
        fallback_policy: lb_subset_config::LbSubsetFallbackPolicy::AnyEndpoint as i32,
        subset_selectors: spec
            .selectors
            .iter()
            .map(|selector| lb_subset_config::LbSubsetSelector {
                keys: selector.keys.clone(),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    });
    Cluster {
        name: name.to_owned(),
        connect_timeout: Some(to_proto(CONNECT_TIMEOUT)),
        cluster_discovery_type: Some(cluster::ClusterDiscoveryType::Type(
            cluster::DiscoveryType::Eds as i32,
        )),
        // No service_name: the load assignment is named after the cluster.
        eds_cluster_config: Some(EdsClusterConfig {
            eds_config: Some(ConfigSource {
                resource_api_version: ApiVersion::V3 as i32,
                config_source_specifier: Some(config_source::ConfigSourceSpecifier::Ads(
                    AggregatedConfigSource {},
                )),
                ..Default::default()
            }),
            service_name: String::new(),
        }),
        lb_subset_config,
        ..Default::default()
    }
}

/// The endpoints of cluster `name`, for the host to serve over EDS.
///
/// Each distinct IP address and port becomes one endpoint, in address order, so the same
/// endpoints always give the same message whatever order the host found them in. A
/// duplicate (an address listed by two EndpointSlices) keeps its first ready copy.
/// Ready endpoints are `HEALTHY`; the others stay listed as `UNHEALTHY`, so Envoy
/// sends them no new requests but keeps their stats and connections until they go.
/// A weight of 0 means Envoy's default; weights are scaled down if their sum would pass
/// the `u32` limit Envoy enforces per locality. With a `subsetSpec`, each endpoint
/// carries the labels the subset selectors use under `envoy.lb` metadata.
///
/// Envoy cannot resolve names in an EDS cluster, so an endpoint whose address is not an
/// IP is left out, with a warning in the host's log. No endpoints at all (a Service
/// scaled to zero) is valid: Envoy then answers 503 until pods are ready.
pub fn to_load_assignment(
    name: &str,
    config: &KubeConfig,
    endpoints: &[Endpoint],
) -> ClusterLoadAssignment {
    let mut unique: BTreeMap<(IpAddr, u16), &Endpoint> = BTreeMap::new();
    for endpoint in endpoints {
        let Ok(ip) = endpoint.address.parse::<IpAddr>() else {
            log::warn(&format!(
                "cluster {name}: skipping endpoint {:?}: an EDS endpoint needs an IP address",
                endpoint.address
            ));
            continue;
        };
        unique
            .entry((ip, endpoint.port))
            .and_modify(|kept| {
                if endpoint.ready && !kept.ready {
                    *kept = endpoint;
                }
            })
            .or_insert(endpoint);
    }

    let weights = fit_weights(unique.values().map(|endpoint| endpoint.weight));
    let subset_keys = config.subset_keys();
    let lb_endpoints: Vec<LbEndpoint> = unique
        .iter()
        .zip(weights)
        .map(|(((ip, port), endpoint), weight)| LbEndpoint {
            host_identifier: Some(lb_endpoint::HostIdentifier::Endpoint(EnvoyEndpoint {
                address: Some(to_address(*ip, *port)),
                ..Default::default()
            })),
            health_status: health_status(endpoint) as i32,
            load_balancing_weight: weight,
            metadata: to_subset_metadata(endpoint, &subset_keys),
        })
        .collect();

    ClusterLoadAssignment {
        cluster_name: name.to_owned(),
        endpoints: if lb_endpoints.is_empty() {
            Vec::new()
        } else {
            vec![LocalityLbEndpoints {
                lb_endpoints,
                ..Default::default()
            }]
        },
        ..Default::default()
    }
}

fn health_status(endpoint: &Endpoint) -> HealthStatus {
    // The WIT endpoint has only `ready`, so a terminating pod (DRAINING in Envoy's
    // terms) and one that is not ready yet look the same here.
    if endpoint.ready {
        HealthStatus::Healthy
    } else {
        HealthStatus::Unhealthy
    }
}

fn to_address(ip: IpAddr, port: u16) -> Address {
    Address {
        address: Some(address::Address::SocketAddress(SocketAddress {
            address: ip.to_string(),
            port_specifier: Some(socket_address::PortSpecifier::PortValue(u32::from(port))),
            ..Default::default()
        })),
    }
}

/// `envoy.lb` metadata with the endpoint's values for `keys`, or `None` when it has
/// none of them (or there are no subsets).
fn to_subset_metadata(endpoint: &Endpoint, keys: &[&str]) -> Option<Metadata> {
    let labels: BTreeMap<String, Value> = endpoint
        .labels
        .iter()
        .filter(|(key, _)| keys.contains(&key.as_str()))
        .map(|(key, label)| {
            let label = Value {
                kind: Some(value::Kind::StringValue(label.clone())),
            };
            (key.clone(), label)
        })
        .collect();
    if labels.is_empty() {
        return None;
    }
    Some(Metadata {
        filter_metadata: [(SUBSET_METADATA.to_owned(), Struct { fields: labels })].into(),
        ..Default::default()
    })
}

/// Envoy's weights for `weights`: `None` for 0 (Envoy's default, 1), and if the sum
/// would pass `u32::MAX` (Envoy rejects such a locality), every weight scaled down in
/// proportion, none below 1.
fn fit_weights(weights: impl Iterator<Item = u32> + Clone) -> Vec<Option<u32>> {
    let count = weights.clone().count() as u64;
    let total: u64 = weights.clone().map(|w| u64::from(w.max(1))).sum();
    let limit = u64::from(u32::MAX);
    if total <= limit {
        return weights.map(|w| (w > 0).then_some(w)).collect();
    }
    // Leave room for the endpoints rounded up to 1, so the scaled sum stays in range.
    let budget = limit - count.min(limit);
    weights
        .map(|w| {
            let scaled = (u64::from(w.max(1)) * budget / total).max(1);
            Some(u32::try_from(scaled).unwrap_or(u32::MAX))
        })
        .collect()
}

#[cfg(test)]
mod tests;
