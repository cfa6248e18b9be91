//! An option (key `timeout`) that sets a route's request timeout:
//! `{"request": "15s"}` on a RouteOption. It needs no HTTP filter, so it
//! returns none; the other hooks keep their defaults.
//!
//! Build it as a component: `cargo build --release --target wasm32-wasip2 -p weir-plugin-sdk --example route_timeout`.

use std::time::Duration;

use serde::Deserialize;
use weir_plugin_sdk::envoy::config::route::v3::{Route, route};
use weir_plugin_sdk::{FilterPlugin, HookInput, HookOutput, PluginError, duration, parse_config};

/// The `timeout` option value.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Timeout {
    /// How long the whole request may take.
    #[serde(deserialize_with = "duration::deserialize")]
    request: Duration,
}

/// The `timeout` option.
pub struct RouteTimeout;

impl FilterPlugin for RouteTimeout {
    fn validate(_key: &str, config: &str) -> Result<(), PluginError> {
        parse_config::<Timeout>(config).map(drop)
    }

    fn apply_route(input: HookInput) -> Result<HookOutput, PluginError> {
        let timeout: Timeout = parse_config(&input.config)?;
        let mut route: Route = input.decode_target()?;
        match &mut route.action {
            Some(route::Action::Route(action)) => {
                action.timeout = Some(duration::to_proto(timeout.request))
            }
            // Redirects and direct responses never reach an upstream.
            _ => return Ok(HookOutput::unchanged(&input)),
        }
        Ok(HookOutput::new(&route))
    }
}

weir_plugin_sdk::export!(options: RouteTimeout, name: "route-timeout", keys: ["requestTimeout"], schema: "examples/route_timeout.schema.json");

#[cfg(test)]
mod tests {
    use super::*;
    use weir_plugin_sdk::envoy::config::route::v3::RouteAction;
    use weir_plugin_sdk::{ObjectRef, pack, unpack};

    #[test]
    fn timeout_is_set_on_forwarding_routes() {
        let route = Route {
            action: Some(route::Action::Route(RouteAction::default())),
            ..Default::default()
        };
        let input = HookInput {
            key: "requestTimeout".into(),
            config: r#"{"request":"1.5s"}"#.into(),
            source: ObjectRef::default(),
            target: pack(&route),
        };
        let route: Route = unpack(&RouteTimeout::apply_route(input).unwrap().target).unwrap();
        let Some(route::Action::Route(action)) = route.action else {
            panic!("not a route action")
        };
        let timeout = action.timeout.unwrap();
        assert_eq!((timeout.seconds, timeout.nanos), (1, 500_000_000));
    }
}
