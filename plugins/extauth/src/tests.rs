//! The `extauth` values as plain Rust.

use weir_plugin_sdk::envoy::config::core::v3::http_uri;
use weir_plugin_sdk::envoy::extensions::filters::http::ext_authz::v3::{
    ExtAuthz, ext_authz, ext_authz_per_route,
};
use weir_plugin_sdk::{PluginError, StageName, unpack};

use crate::config::{ListenerAuth, RouteAuth};

fn filter(json: &str) -> ExtAuthz {
    let f = ListenerAuth::from_json(json)
        .and_then(|l| l.http_filter())
        .unwrap();
    assert_eq!(f.stage.name, StageName::Authn);
    assert!(!f.disabled);
    unpack(&f.config).unwrap()
}

#[test]
fn an_http_service_points_at_the_upstream_cluster() {
    let f = filter(
        r#"{"extauthzServerRef": {"name": "auth", "namespace": "infra"},
            "httpService": {"pathPrefix": "/check", "request": {"allowedHeaders": ["x-user"]}},
            "requestTimeout": "1s", "statusOnError": 503}"#,
    );
    let Some(ext_authz::Services::HttpService(http)) = f.services else {
        panic!("not HTTP")
    };
    let uri = http.server_uri.unwrap();
    assert_eq!(
        uri.http_upstream_type,
        Some(http_uri::HttpUpstreamType::Cluster(
            "upstream_infra_auth".into()
        ))
    );
    assert_eq!(uri.timeout.unwrap().seconds, 1);
    assert_eq!(http.path_prefix, "/check");
    assert_eq!(f.allowed_headers.unwrap().patterns.len(), 1);
    assert_eq!(f.status_on_error.unwrap().code, 503);
}

#[test]
fn without_an_http_service_it_speaks_grpc() {
    let f = filter(r#"{"extauthzServerRef": {"name": "auth", "namespace": "infra"}}"#);
    assert!(matches!(
        f.services,
        Some(ext_authz::Services::GrpcService(_))
    ));
}

#[test]
fn bad_listener_values_are_named() {
    let err = ListenerAuth::from_json(
        r#"{"extauthzServerRef": {"name": "", "namespace": "x"}, "requestTimeout": "soon"}"#,
    )
    .and_then(|l| l.http_filter())
    .unwrap_err();
    let PluginError::InvalidConfig(fields) = err else {
        panic!("{err:?}")
    };
    let paths: Vec<&str> = fields.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(paths, ["extauthzServerRef", "requestTimeout"]);
}

#[test]
fn routes_disable_the_check_or_add_context() {
    let off = RouteAuth::from_json(r#"{"disable": true}"#)
        .and_then(|r| r.per_route())
        .unwrap();
    assert_eq!(
        off.r#override,
        Some(ext_authz_per_route::Override::Disabled(true))
    );
    let context = RouteAuth::from_json(r#"{"customAuth": {"contextExtensions": {"team": "a"}}}"#)
        .and_then(|r| r.per_route())
        .unwrap();
    let Some(ext_authz_per_route::Override::CheckSettings(c)) = context.r#override else {
        panic!("no check settings")
    };
    assert_eq!(c.context_extensions["team"], "a");
    assert!(
        RouteAuth::from_json("{}")
            .and_then(|r| r.per_route())
            .is_err()
    );
}
