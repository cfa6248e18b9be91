//! The SDK's example plugins — one per world, and the code the README's "write your own
//! plugin" walks through — loaded into the real runtime and called. If these pass, a
//! newcomer following the README gets a plugin Weir loads.

use envoy_types::pb::envoy::config::route::v3::{Route, RouteAction, route};
use weir::plugin::{
    CallError, DiscoveryInput, Document, HookLevel, ObjectRef, PluginRuntime, RuntimeConfig,
    UpstreamInput, World,
};

const ECHO: &str = env!("WEIR_EXAMPLE_WASM_ECHO");
const ROUTE_TIMEOUT: &str = env!("WEIR_EXAMPLE_WASM_ROUTE_TIMEOUT");
const OPENAPI_OPERATIONS: &str = env!("WEIR_EXAMPLE_WASM_OPENAPI_OPERATIONS");

fn mk_runtime() -> PluginRuntime {
    let mut runtime = PluginRuntime::new(RuntimeConfig {
        cache_dir: Some(std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("plugin-cache")),
        ..RuntimeConfig::default()
    })
    .unwrap();
    for file in [ECHO, ROUTE_TIMEOUT, OPENAPI_OPERATIONS] {
        runtime.load_file(file.as_ref()).unwrap();
    }
    runtime
}

fn mk_ref(kind: &str, name: &str) -> ObjectRef {
    ObjectRef {
        group: "gateway.weir.dev".into(),
        kind: kind.into(),
        namespace: "default".into(),
        name: name.into(),
    }
}

#[test]
fn readme_route_timeout_plugin_sets_the_route_timeout() {
    let runtime = mk_runtime();
    let (_, plugin) = runtime.claimant(World::Options, "requestTimeout").unwrap();
    assert_eq!(plugin.id.name, "route-timeout");
    let route = Route {
        action: Some(route::Action::Route(RouteAction::default())),
        ..Route::default()
    };
    let mut session = runtime.session();
    let result = session
        .apply(
            HookLevel::Route,
            "requestTimeout",
            r#"{"request":"15s"}"#,
            &mk_ref("RouteOption", "slow"),
            &route,
        )
        .unwrap();
    let Some(route::Action::Route(action)) = result.target.action else {
        panic!("still a forwarding route");
    };
    assert_eq!(action.timeout.unwrap().seconds, 15);
    assert!(result.http_filters.is_empty());

    let err = session
        .validate(World::Options, "requestTimeout", r#"{"request":"soon"}"#)
        .unwrap_err();
    assert!(matches!(err, CallError::Declined { .. }), "{err}");
    assert!(err.to_string().contains("request"), "{err}");
}

#[test]
fn echo_upstream_type_returns_a_cluster_with_the_given_name() {
    let runtime = mk_runtime();
    let mut session = runtime.session();
    let result = session
        .translate_upstream(&UpstreamInput {
            upstream: mk_ref("Upstream", "echo"),
            cluster_name: "upstream_default_echo".into(),
            key: "echo".into(),
            config: "{}".into(),
            endpoints: Vec::new(),
        })
        .unwrap();
    assert_eq!(result.cluster.name, "upstream_default_echo");
}

#[test]
fn openapi_discovery_lists_operations_and_rejects_non_json() {
    let runtime = mk_runtime();
    let mut session = runtime.session();
    let mk_input = |body: &str| DiscoveryInput {
        upstream: mk_ref("Upstream", "petstore"),
        key: "rest".into(),
        config: "{}".into(),
        document: Document {
            source: "http://petstore/openapi.json".into(),
            content_type: "application/json".into(),
            body: body.as_bytes().to_vec(),
        },
    };
    let functions = session
        .discover(&mk_input(
            r#"{"paths":{"/pets":{"get":{"operationId":"listPets"},"post":{"operationId":"addPet"}}}}"#,
        ))
        .unwrap();
    let names: Vec<_> = functions.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["listPets", "addPet"]);
    let err = session.discover(&mk_input("openapi: 3.0.0")).unwrap_err();
    assert!(
        err.to_string().contains("is not a JSON OpenAPI document"),
        "{err}"
    );
}
