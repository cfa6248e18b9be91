use weir_plugin_sdk::envoy::config::cluster::v3::cluster::{ClusterDiscoveryType, DiscoveryType};
use weir_plugin_sdk::envoy::config::core::v3::transport_socket::ConfigType;
use weir_plugin_sdk::envoy::config::core::v3::{address, socket_address};
use weir_plugin_sdk::envoy::config::endpoint::v3::lb_endpoint::HostIdentifier;
use weir_plugin_sdk::prost::Name;
use weir_plugin_sdk::{ClusterName, ObjectRef, PluginError, UpstreamInput, UpstreamType, unpack};

use super::*;
use crate::StaticPlugin;

fn mk_input(config: impl ToString) -> UpstreamInput {
    UpstreamInput {
        upstream: ObjectRef {
            group: "gateway.weir.dev".into(),
            kind: "Upstream".into(),
            namespace: "default".into(),
            name: "backend".into(),
        },
        cluster_name: ClusterName::new("default-backend"),
        key: "static".into(),
        config: config.to_string(),
        endpoints: vec![],
    }
}

fn translate(config: impl ToString) -> Cluster {
    let output = StaticPlugin::translate(mk_input(config)).expect("translates");
    assert_eq!(output.cluster.type_url, Cluster::type_url());
    assert!(output.load_assignment.is_none());
    unpack(&output.cluster).expect("decodes")
}

fn discovery_type(cluster: &Cluster) -> DiscoveryType {
    match cluster.cluster_discovery_type {
        Some(ClusterDiscoveryType::Type(t)) => DiscoveryType::try_from(t).expect("known type"),
        ref other => panic!("unexpected discovery type {other:?}"),
    }
}

fn endpoints(cluster: &Cluster) -> Vec<&LbEndpoint> {
    let assignment = cluster.load_assignment.as_ref().expect("inline endpoints");
    assignment
        .endpoints
        .iter()
        .flat_map(|l| &l.lb_endpoints)
        .collect()
}

fn socket_address(lb: &LbEndpoint) -> (&str, u32) {
    let Some(HostIdentifier::Endpoint(endpoint)) = &lb.host_identifier else {
        panic!("no endpoint")
    };
    let Some(address::Address::SocketAddress(addr)) =
        endpoint.address.as_ref().and_then(|a| a.address.as_ref())
    else {
        panic!("no socket address")
    };
    let Some(socket_address::PortSpecifier::PortValue(port)) = addr.port_specifier else {
        panic!("no port")
    };
    (&addr.address, port)
}

fn tls_context(socket: &TransportSocket) -> UpstreamTlsContext {
    assert_eq!(socket.name, "envoy.transport_sockets.tls");
    let Some(ConfigType::TypedConfig(any)) = &socket.config_type else {
        panic!("no typed config")
    };
    unpack(&any.clone().into()).expect("an UpstreamTlsContext")
}

#[test]
fn static_with_ips_uses_static_discovery() {
    let cluster =
        translate(r#"{"hosts":[{"addr":"10.0.0.1","port":8080},{"addr":"10.0.0.2","port":8081}]}"#);
    assert_eq!(cluster.name, "default-backend");
    assert_eq!(discovery_type(&cluster), DiscoveryType::Static);
    let addrs: Vec<_> = endpoints(&cluster)
        .into_iter()
        .map(socket_address)
        .collect();
    assert_eq!(addrs, [("10.0.0.1", 8080), ("10.0.0.2", 8081)]);
    assert_eq!(
        cluster.load_assignment.as_ref().unwrap().cluster_name,
        "default-backend"
    );
    assert!(cluster.transport_socket.is_none());
}

#[test]
fn static_with_hostname_uses_strict_dns() {
    let cluster = translate(
        r#"{"hosts":[{"addr":"10.0.0.1","port":80},{"addr":"api.example.com","port":80}]}"#,
    );
    assert_eq!(discovery_type(&cluster), DiscoveryType::StrictDns);
    assert_eq!(
        cluster.dns_lookup_family,
        cluster::DnsLookupFamily::V4Preferred as i32
    );
}

#[test]
fn connect_timeout_defaults_to_five_seconds() {
    let cluster = translate(r#"{"hosts":[{"addr":"10.0.0.1","port":80}]}"#);
    let timeout = cluster.connect_timeout.expect("connect timeout");
    assert_eq!((timeout.seconds, timeout.nanos), (5, 0));
}

#[test]
fn weights_become_endpoint_load_balancing_weights() {
    let cluster = translate(
        r#"{"hosts":[{"addr":"10.0.0.1","port":80,"loadBalancingWeight":2},{"addr":"10.0.0.2","port":80}]}"#,
    );
    let weights: Vec<_> = endpoints(&cluster)
        .iter()
        .map(|e| e.load_balancing_weight)
        .collect();
    assert_eq!(weights, [Some(2), None]);
}

#[test]
fn use_tls_adds_a_tls_transport_socket_without_sni_for_ips() {
    let cluster = translate(r#"{"useTls":true,"hosts":[{"addr":"10.0.0.1","port":8443}]}"#);
    let tls = tls_context(cluster.transport_socket.as_ref().expect("transport socket"));
    assert_eq!(tls.sni, "");
}

#[test]
fn use_tls_with_a_hostname_sends_it_as_sni() {
    let cluster = translate(r#"{"useTls":true,"hosts":[{"addr":"api.example.com","port":8443}]}"#);
    let tls = tls_context(cluster.transport_socket.as_ref().unwrap());
    assert_eq!(tls.sni, "api.example.com");
}

#[test]
fn sni_addr_turns_tls_on_and_sets_sni() {
    let cluster =
        translate(r#"{"hosts":[{"addr":"10.0.0.1","port":8443,"sniAddr":"api.example.com"}]}"#);
    let tls = tls_context(cluster.transport_socket.as_ref().expect("tls from sniAddr"));
    assert_eq!(tls.sni, "api.example.com");
}

#[test]
fn hosts_with_different_snis_get_transport_socket_matches() {
    let cluster = translate(
        r#"{"useTls":true,"hosts":[{"addr":"a.example.com","port":443},{"addr":"b.example.com","port":443}]}"#,
    );
    let matches: Vec<_> = cluster
        .transport_socket_matches
        .iter()
        .map(|m| {
            (
                m.name.as_str(),
                tls_context(m.transport_socket.as_ref().unwrap()).sni,
            )
        })
        .collect();
    assert_eq!(
        matches,
        [
            ("sni-a.example.com", "a.example.com".to_owned()),
            ("sni-b.example.com", "b.example.com".to_owned())
        ]
    );
    let metadata = endpoints(&cluster)[1]
        .metadata
        .as_ref()
        .expect("match metadata");
    assert_eq!(
        metadata.filter_metadata["envoy.transport_socket_match"],
        sni_match("b.example.com")
    );
    // Hosts that match nothing still use TLS.
    assert_eq!(
        tls_context(cluster.transport_socket.as_ref().unwrap()).sni,
        ""
    );
}

#[test]
fn use_tls_false_overrides_port_443() {
    let cluster = translate(r#"{"useTls":false,"hosts":[{"addr":"api.example.com","port":443}]}"#);
    assert!(cluster.transport_socket.is_none());
}

#[test]
fn invalid_config_is_an_error_not_a_panic() {
    let err = StaticPlugin::translate(mk_input(r#"{"hosts":[{"addr":"10.0.0.1","port":70000}]}"#))
        .unwrap_err();
    assert_eq!(
        err,
        PluginError::invalid("hosts[0].port", "must be between 1 and 65535, got 70000")
    );
    assert!(StaticPlugin::translate(mk_input("not json")).is_err());
}

#[test]
fn validate_agrees_with_translate() {
    assert_eq!(
        StaticPlugin::validate("static", r#"{"hosts":[{"addr":"10.0.0.1","port":80}]}"#),
        Ok(())
    );
    assert!(StaticPlugin::validate("static", r#"{"hosts":[]}"#).is_err());
}

#[test]
fn encoded_cluster_is_the_prost_encoding_of_the_built_one() {
    use weir_plugin_sdk::ConfigBlock;
    use weir_plugin_sdk::prost::Message;

    let configs = [
        r#"{"hosts":[{"addr":"10.0.0.1","port":8080},{"addr":"10.0.0.2","port":8080,"loadBalancingWeight":2}]}"#,
        r#"{"hosts":[{"addr":"10.0.0.1","port":80},{"addr":"api.example.com","port":80}]}"#,
        r#"{"useTls":true,"hosts":[{"addr":"10.0.0.1","port":8443}]}"#,
        r#"{"hosts":[{"addr":"api.example.com","port":443}]}"#,
        r#"{"hosts":[{"addr":"10.0.0.1","port":8443,"sniAddr":"api.example.com"}]}"#,
        r#"{"useTls":true,"hosts":[{"addr":"a.example.com","port":443},{"addr":"b.example.com","port":443,"loadBalancingWeight":3},{"addr":"10.0.0.9","port":443}]}"#,
        r#"{"autoSniRewrite":false,"useTls":false,"hosts":[{"addr":"::1","port":9000}]}"#,
        r#"{"hosts":[{"addr":"10.0.0.1","port":65535,"loadBalancingWeight":4294967295},{"addr":"10.0.0.2","port":1,"loadBalancingWeight":1}]}"#,
    ];
    for json in configs {
        let config = StaticConfig::from_json(json).unwrap();
        for name in ["default-backend", ""] {
            assert_eq!(
                encode_cluster(name, &config),
                to_cluster(name, &config).encode_to_vec(),
                "{json} named {name:?}"
            );
        }
    }
}
