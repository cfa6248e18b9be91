//! The Envoy bootstrap `weir bootstrap` prints: a pure function from a [`BootstrapConfig`]
//! to Envoy's bootstrap JSON.
//!
//! The bootstrap names the proxy's Gateway in `node.metadata["weir.gateway"]` (the
//! identity [`super::gateway_from_node`] reads), points ADS at Weir over gRPC (HTTP/2
//! cluster `weir_xds`), takes clusters and listeners from ADS (everything else follows
//! from them) and opens the admin interface on loopback only. With a bind address it
//! also names, in `node.metadata["weir.bind_address"]`, the local address the proxy's
//! listeners bind.

use std::fmt;
use std::str::FromStr;

use serde_json::{Value, json};

use super::{BIND_ADDRESS_METADATA_KEY, GATEWAY_METADATA_KEY};

/// The name of the static cluster that reaches Weir's xDS server.
pub const XDS_CLUSTER: &str = "weir_xds";

/// The admin port a bootstrap uses when none is given.
pub const DEFAULT_ADMIN_PORT: u16 = 19000;

/// Where Envoy reaches Weir's xDS server: `HOST:PORT` (an IP address or a DNS name;
/// IPv6 in brackets).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct XdsAddress {
    /// The IP address or DNS name, without brackets.
    pub host: String,
    /// The TCP port.
    pub port: u16,
}

/// Why an xDS address does not parse.
#[derive(Debug, thiserror::Error)]
#[error("`{0}` is not HOST:PORT (for example 127.0.0.1:18000 or weir.weir-system:18000)")]
pub struct BadXdsAddress(String);

impl FromStr for XdsAddress {
    type Err = BadXdsAddress;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || BadXdsAddress(s.to_string());
        let (host, port) = s.rsplit_once(':').ok_or_else(bad)?;
        let host = match host.strip_prefix('[') {
            Some(rest) => rest.strip_suffix(']').ok_or_else(bad)?,
            None if host.contains(':') => return Err(bad()),
            None => host,
        };
        let port: u16 = port.parse().map_err(|_| bad())?;
        if host.is_empty() || port == 0 {
            return Err(bad());
        }
        Ok(Self {
            host: host.to_string(),
            port,
        })
    }
}

impl fmt::Display for XdsAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// Everything a bootstrap depends on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BootstrapConfig {
    /// The Gateway's namespace.
    pub namespace: String,
    /// The Gateway's name.
    pub name: String,
    /// Where Weir's xDS server is.
    pub xds: XdsAddress,
    /// The admin port, bound on 127.0.0.1.
    pub admin_port: u16,
    /// `node.id`; `weir-<namespace>-<name>` when `None`.
    pub node_id: Option<String>,
    /// Delta (incremental) ADS instead of state of the world.
    pub delta: bool,
    /// The local address the proxy's listeners bind; `None`: as translated (0.0.0.0).
    pub bind_address: Option<std::net::IpAddr>,
}

impl BootstrapConfig {
    /// The node id the bootstrap uses.
    pub fn node_id(&self) -> String {
        self.node_id
            .clone()
            .unwrap_or_else(|| format!("weir-{}-{}", self.namespace, self.name))
    }
}

/// Envoy's bootstrap (v3, JSON) for one Gateway's proxies.
pub fn to_bootstrap(config: &BootstrapConfig) -> Value {
    let gateway = format!("{}/{}", config.namespace, config.name);
    // An IP address needs no resolution; a name is resolved (and re-resolved) by Envoy.
    let discovery = if config.xds.host.parse::<std::net::IpAddr>().is_ok() {
        "STATIC"
    } else {
        "STRICT_DNS"
    };
    let ads = json!({ "ads": {}, "resource_api_version": "V3" });
    let mut metadata = json!({ GATEWAY_METADATA_KEY: gateway });
    if let Some(addr) = config.bind_address {
        metadata[BIND_ADDRESS_METADATA_KEY] = json!(addr.to_string());
    }
    json!({
        "node": {
            "id": config.node_id(),
            "cluster": gateway,
            "metadata": metadata,
        },
        "dynamic_resources": {
            "ads_config": {
                "api_type": if config.delta { "DELTA_GRPC" } else { "GRPC" },
                "transport_api_version": "V3",
                "grpc_services": [{ "envoy_grpc": { "cluster_name": XDS_CLUSTER } }],
                "set_node_on_first_message_only": true,
            },
            "cds_config": ads,
            "lds_config": ads,
        },
        "static_resources": {
            "clusters": [{
                "name": XDS_CLUSTER,
                "type": discovery,
                "connect_timeout": "1s",
                "typed_extension_protocol_options": {
                    "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                        "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                        "explicit_http_config": {
                            "http2_protocol_options": {
                                // Notice a dead control plane and reconnect.
                                "connection_keepalive": { "interval": "30s", "timeout": "10s" },
                            },
                        },
                    },
                },
                "load_assignment": {
                    "cluster_name": XDS_CLUSTER,
                    "endpoints": [{ "lb_endpoints": [{ "endpoint": { "address": {
                        "socket_address": {
                            "address": config.xds.host,
                            "port_value": config.xds.port,
                        },
                    } } }] }],
                },
            }],
        },
        "admin": {
            "address": { "socket_address": { "address": "127.0.0.1", "port_value": config.admin_port } },
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mk_config(xds: &str) -> BootstrapConfig {
        BootstrapConfig {
            namespace: "default".into(),
            name: "gw".into(),
            xds: xds.parse().unwrap(),
            admin_port: DEFAULT_ADMIN_PORT,
            node_id: None,
            delta: false,
            bind_address: None,
        }
    }

    #[test]
    fn xds_address_parses_ip_name_and_bracketed_ipv6() {
        assert_eq!(
            "127.0.0.1:18000".parse::<XdsAddress>().unwrap().to_string(),
            "127.0.0.1:18000"
        );
        assert_eq!("weir.svc:1".parse::<XdsAddress>().unwrap().host, "weir.svc");
        assert_eq!("[::1]:18000".parse::<XdsAddress>().unwrap().host, "::1");
        for bad in [
            "",
            "host",
            "host:",
            ":1",
            "h:0",
            "h:70000",
            "::1:18000",
            "[::1:1",
        ] {
            assert!(bad.parse::<XdsAddress>().is_err(), "{bad}");
        }
    }

    #[test]
    fn bootstrap_names_the_gateway_and_defaults_the_node_id() {
        let bootstrap = to_bootstrap(&mk_config("127.0.0.1:18000"));
        assert_eq!(bootstrap["node"]["id"], "weir-default-gw");
        assert_eq!(bootstrap["node"]["metadata"]["weir.gateway"], "default/gw");
        assert!(bootstrap["node"]["metadata"]["weir.bind_address"].is_null());
        assert_eq!(
            bootstrap["static_resources"]["clusters"][0]["type"],
            "STATIC"
        );
        assert_eq!(
            bootstrap["admin"]["address"]["socket_address"]["port_value"],
            19000
        );
    }

    #[test]
    fn bootstrap_resolves_a_dns_name() {
        let bootstrap = to_bootstrap(&mk_config("weir.weir-system:18000"));
        assert_eq!(
            bootstrap["static_resources"]["clusters"][0]["type"],
            "STRICT_DNS"
        );
    }

    #[test]
    fn bootstrap_names_the_bind_address() {
        let mut config = mk_config("127.0.0.1:18000");
        config.bind_address = Some("127.0.0.2".parse().unwrap());
        let bootstrap = to_bootstrap(&config);
        assert_eq!(
            bootstrap["node"]["metadata"]["weir.bind_address"],
            "127.0.0.2"
        );
        assert_eq!(bootstrap["node"]["metadata"]["weir.gateway"], "default/gw");
    }
}
