//! The Wasm overhead of option plugins (issue 6): full translation of the synthetic
//! configuration where every HTTPRoute carries a RouteOption with three options
//! (`faults`, `timeout`, `headerManipulation`), once with the built-in Wasm plugins and
//! once with the same plugin crates compiled natively into this harness. Both paths do
//! the same host work around each call (JSON config text, encoding the target, decoding
//! and checking the answer); the difference is the Wasm boundary and the Wasm code.
//!
//! ```text
//! cargo run --release -p weir --example options_bench -- --routes 10000
//! ```
//!
//! Target: Wasm ≤ 1.5 × native.

#[path = "support/bench.rs"]
mod bench;

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use envoy_types::pb::envoy::config::route::v3::Route;
use k8s_openapi::jiff::Timestamp;
use prost::{Message, Name};
use serde_json::json;
use weir::model::{Object, RouteOption};
use weir::plugin::{PluginRuntime, RuntimeConfig, builtin};
use weir::translate::synthetic::Synthetic;
use weir::translate::{
    FilterPlugins, OptionFilter, OptionResult, RouteOptionRequest, Translator, UpstreamPlugins,
    UpstreamRequest,
};
use weir_plugin_sdk::{FilterPlugin, HookInput, HookOutput, PluginError, UpstreamType};

/// The plugin crates the configuration uses, called as plain Rust.
struct NativePlugins;

impl UpstreamPlugins for NativePlugins {
    fn translate_upstream(
        &mut self,
        request: &UpstreamRequest<'_>,
    ) -> Result<(Cluster, Option<ClusterLoadAssignment>), String> {
        let input = weir_plugin_sdk::UpstreamInput {
            upstream: Default::default(),
            cluster_name: weir_plugin_sdk::ClusterName::new(request.cluster_name.as_str()),
            key: request.type_key.to_string(),
            config: request.config.to_string(),
            endpoints: Vec::new(),
        };
        let output = match request.type_key {
            "static" => weir_plugin_static::StaticPlugin::translate(input),
            other => return Err(format!("no native plugin for `{other}`")),
        }
        .map_err(|e| format!("{e:?}"))?;
        let cluster =
            Cluster::decode(output.cluster.value.as_slice()).map_err(|e| e.to_string())?;
        let endpoints = output
            .load_assignment
            .map(|a| ClusterLoadAssignment::decode(a.value.as_slice()))
            .transpose()
            .map_err(|e| e.to_string())?;
        Ok((cluster, endpoints))
    }

    fn filter_plugins(&mut self) -> Option<&mut dyn FilterPlugins> {
        Some(self)
    }
}

impl FilterPlugins for NativePlugins {
    fn apply_route(&mut self, request: &RouteOptionRequest<'_>) -> OptionResult<Route> {
        let input = HookInput {
            key: request.key.to_string(),
            config: request.config.to_string(),
            source: Default::default(),
            target: weir_plugin_sdk::Any {
                type_url: Route::type_url(),
                value: request.target.encode_to_vec(),
            },
        };
        let output: Result<HookOutput, PluginError> = match request.key {
            "faults" => weir_plugin_faults::FaultsPlugin::apply_route(input),
            "timeout" | "headerManipulation" => {
                weir_plugin_routing::RoutingPlugin::apply_route(input)
            }
            other => return Err(format!("no native plugin claims `{other}`")),
        };
        let output = output.map_err(|e| format!("{e:?}"))?;
        let route = Route::decode(output.target.value.as_slice()).map_err(|e| e.to_string())?;
        let filters = output
            .http_filters
            .into_iter()
            .map(|f| OptionFilter {
                name: f.name,
                stage: (f.stage.name as u8, f.stage.position as u8),
                config: envoy_types::pb::google::protobuf::Any {
                    type_url: f.config.type_url,
                    value: f.config.value,
                },
                disabled: f.disabled,
            })
            .collect();
        Ok((route, filters))
    }
}

/// A RouteOption with three options targeting route `index` of `synthetic`.
fn route_option(synthetic: &Synthetic, index: usize) -> Object {
    let (namespace, route) = synthetic.route_name(index);
    let option: RouteOption = serde_json::from_value(json!({
        "apiVersion": "gateway.solo.io/v1",
        "kind": "RouteOption",
        "metadata": {"name": format!("opt-{index:05}"), "namespace": namespace},
        "spec": {
            "targetRefs": [{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute", "name": route}],
            "options": {
                "faults": {"abort": {"httpStatus": 503, "percentage": 0.1}},
                "timeout": "5s",
                "headerManipulation": {
                    "requestHeadersToAdd": [{"header": {"key": "x-route", "value": route}}]
                }
            }
        }
    }))
    .expect("a valid RouteOption");
    option.into()
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// Median full translation with a fresh translator per run; checks every route got
/// its options (the fault filter's per-route config).
fn full<'r>(
    store: &weir::store::Store,
    runs: usize,
    plugins: &mut dyn FnMut() -> Box<dyn UpstreamPlugins + 'r>,
) -> anyhow::Result<Duration> {
    let mut times = Vec::new();
    for _ in 0..runs {
        let mut p = plugins();
        let mut translator = Translator::new();
        let start = Instant::now();
        let t = translator.translate(store, &mut *p, Timestamp::UNIX_EPOCH);
        times.push(start.elapsed());
        let g = t.gateways.values().next().context("no Gateway")?;
        let (with, all) = g
            .routes
            .iter()
            .flat_map(|r| &r.virtual_hosts)
            .flat_map(|v| v.decode().routes)
            .fold((0, 0), |(w, a), r| {
                let has = r
                    .typed_per_filter_config
                    .contains_key("envoy.filters.http.fault");
                (w + usize::from(has), a + 1)
            });
        if with != all {
            bail!("{with} of {all} Envoy routes got the options");
        }
    }
    Ok(median(times))
}

fn main() -> anyhow::Result<()> {
    let mut routes = 10_000;
    let mut runs = 5;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--routes" => routes = bench::number(&mut args, "--routes")?,
            "--runs" => runs = bench::number(&mut args, "--runs")?.max(1),
            other => {
                bail!("unknown argument {other}; usage: options_bench [--routes N] [--runs N]")
            }
        }
    }
    let synthetic = Synthetic::with_routes(routes);
    let mut store = synthetic.store();
    for i in 0..routes {
        store.apply(route_option(&synthetic, i));
    }
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "options_bench: {routes} routes, each with a RouteOption of 3 options; {runs} runs; load average {}",
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );

    let native = full(&store, runs, &mut || Box::new(NativePlugins))?;
    println!(
        "full (native plugins):  {:.1} ms",
        native.as_secs_f64() * 1e3
    );
    let mut runtime = PluginRuntime::new(RuntimeConfig::default())?;
    builtin::load_all(&mut runtime)?;
    let wasm = full(&store, runs, &mut || Box::new(runtime.session()))?;
    println!("full (Wasm plugins):    {:.1} ms", wasm.as_secs_f64() * 1e3);
    println!(
        "Wasm / native:          {:.2}x (target <= 1.5x)",
        wasm.as_secs_f64() / native.as_secs_f64()
    );
    Ok(())
}
