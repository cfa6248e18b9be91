//! The rate limiting values as plain Rust.

use weir_plugin_sdk::envoy::config::core::v3::grpc_service;
use weir_plugin_sdk::envoy::extensions::filters::http::ratelimit::v3::RateLimit;
use weir_plugin_sdk::{PluginError, StageName, unpack};

use crate::config::{DOMAIN, RouteLimits, ServerSettings};

#[test]
fn the_server_is_the_upstream_cluster_over_grpc() {
    let f = ServerSettings::from_json(
        r#"{"ratelimitServerRef": {"name": "rls", "namespace": "infra"}, "denyOnFail": true}"#,
    )
    .and_then(|s| s.http_filter())
    .unwrap();
    assert_eq!(f.stage.name, StageName::RateLimit);
    let filter: RateLimit = unpack(&f.config).unwrap();
    assert_eq!(filter.domain, DOMAIN);
    assert!(filter.failure_mode_deny);
    let service = filter.rate_limit_service.unwrap().grpc_service.unwrap();
    let Some(grpc_service::TargetSpecifier::EnvoyGrpc(g)) = service.target_specifier else {
        panic!("not Envoy gRPC")
    };
    assert_eq!(g.cluster_name, "upstream_infra_rls");
}

#[test]
fn descriptors_come_from_the_actions() {
    let limits = RouteLimits::from_json(
        r#"{"rateLimits": [{"actions": [{"requestHeaders": {"headerName": "x-tier", "descriptorKey": "tier"}},
                                          {"genericKey": {"descriptorValue": "checkout"}}]}]}"#,
    )
    .and_then(|r| r.to_proto())
    .unwrap();
    assert_eq!(limits.len(), 1);
    assert_eq!(limits[0].actions.len(), 2);
}

#[test]
fn bad_actions_are_named() {
    let err = RouteLimits::from_json(
        r#"{"rateLimits": [{"actions": [{"remoteAddress": {}, "destinationCluster": {}}, {"requestHeaders": {"headerName": "", "descriptorKey": "k"}}]}, {"actions": []}]}"#,
    )
    .and_then(|r| r.to_proto())
    .unwrap_err();
    let PluginError::InvalidConfig(fields) = err else {
        panic!("{err:?}")
    };
    let paths: Vec<&str> = fields.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "rateLimits[0].actions[0]",
            "rateLimits[0].actions[1].requestHeaders",
            "rateLimits[1].actions"
        ]
    );
}
