//! The route-by-route benchmark of issue 4, after the method of the public
//! gateway-api-bench: add `--routes` HTTPRoutes one at a time, each a new file in `weir
//! serve`'s directory, and wait for each to answer through a real Envoy before adding the
//! next.
//!
//! ```text
//! cargo build --release -p weir
//! cargo run --release -p weir --example route_by_route_bench -- --routes 1000 [--sotw]
//! ```
//!
//! The synthetic world of `weir::translate::synthetic` (one Gateway, 10,000 Services, the
//! Upstreams of a `--routes` world) starts with no HTTPRoute; endpoints are local
//! backends. Route `i` is then written (through a rename) and a request matching its
//! first rule's first match (hostname, path, headers, query) is polled every millisecond
//! until it answers `200`. A file renamed into place is translated at once (the 50 ms
//! debounce applies only to files still being written). Target ≤ 10 ms per route
//! (gateway-api-bench: kgateway ≈ 77 ms, Istio ≈ 213 ms).
//!
//! Where the time goes: `WEIR_BENCH_LOG=info` (each pass's read, translate and publish
//! times, from `weir serve`'s log) and `WEIR_BENCH_ENVOY_LOG=config:debug` (how long Envoy
//! took to apply each xDS type, from its log) print a breakdown per 100 routes;
//! `WEIR_BENCH_ENVOY_STATS=REGEX` prints the Envoy stats that match.

#[path = "support/bench.rs"]
mod bench;

use std::time::{Duration, Instant};

use anyhow::bail;
use weir::translate::synthetic::Synthetic;

use bench::{Probe, World, mean, ms, percentile};

fn main() -> anyhow::Result<()> {
    let mut routes = 1_000;
    let mut delta = true;
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--routes" => routes = bench::number(&mut it, "--routes")?.max(1),
            "--sotw" => delta = false,
            other => {
                bail!("unknown argument {other}; usage: route_by_route_bench [--routes N] [--sotw]")
            }
        }
    }
    let synthetic = Synthetic::with_routes(routes);
    println!(
        "route_by_route_bench: {} routes added one by one over {} Services, {} Upstreams; {} ADS; load average {}",
        routes,
        synthetic.services,
        synthetic.upstreams,
        if delta { "delta" } else { "state-of-the-world" },
        bench::load_average()
    );
    let mut world = World::start(synthetic, 0..0, 4, delta)?;
    let port = world.local.http_port;

    let mut times = Vec::new();
    let load_before = bench::load_average();
    let all = Instant::now();
    for index in 0..routes {
        let manifest = world.route_manifest(index);
        let probe = Probe::for_route(&manifest)?;
        let start = Instant::now();
        bench::write_manifest(&world.route_path(index), &manifest)?;
        let answered = probe.wait_for(port, 200, Duration::from_millis(1), &mut world.envoy)?;
        times.push(answered - start);
        if (index + 1) % 100 == 0 {
            println!(
                "  {:>5} routes: mean {} over the last 100",
                index + 1,
                ms(mean(&times[index + 1 - 100..]))
            );
        }
    }
    let total = all.elapsed();
    let load_after = bench::load_average();
    println!(
        "per route: mean {}, p50 {}, p99 {}, max {}; {} routes in {}",
        ms(mean(&times)),
        ms(percentile(&times, 50.0)),
        ms(percentile(&times, 99.0)),
        ms(percentile(&times, 100.0)),
        routes,
        ms(total),
    );
    if let Ok(filter) = std::env::var("WEIR_BENCH_ENVOY_STATS") {
        // e.g. `rds|cds|lds|listener_manager|update_duration`: Envoy's own account.
        let stats = bench::admin_get(
            world.envoy_admin,
            &format!("/stats?usedonly&filter={filter}"),
        )?;
        println!("Envoy stats matching {filter}:\n{stats}");
    }
    print_breakdown(&world, routes);
    let pid = world.serve.process.pid();
    println!(
        "weir serve RSS:      VmHWM {:.1} MiB, VmRSS {:.1} MiB; load average before {load_before}, after {load_after}",
        bench::memory_mib(pid, "VmHWM:"),
        bench::memory_mib(pid, "VmRSS:"),
    );
    Ok(())
}

/// Where the time goes, from the logs, per 100 routes: `weir serve`'s passes (with
/// `WEIR_BENCH_LOG=info`) and Envoy applying each xDS type (with
/// `WEIR_BENCH_ENVOY_LOG=config:debug`).
fn print_breakdown(world: &World, routes: usize) {
    let per_100 = |values: &[f64]| -> String {
        values
            .chunks(values.len().div_ceil(routes.div_ceil(100)).max(1))
            .map(|c| format!("{:.1}", c.iter().sum::<f64>() / c.len() as f64))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let weir = world.serve.process.log_text();
    // The first pass and the first response of each type are the start, not a route.
    for field in ["read", "translate", "publish", "elapsed"] {
        let values: Vec<f64> =
            bench::log_field(&weir, "translated and published", &format!("{field}_us"))
                .into_iter()
                .skip(1)
                .map(|us| us / 1e3)
                .collect();
        if !values.is_empty() {
            println!(
                "weir pass: {field:<9} ms, mean per 100 routes: {}",
                per_100(&values)
            );
        }
    }
    for (ty, times) in bench::envoy_apply_times(&world.envoy.log_text()) {
        if times.len() > 1 {
            println!(
                "Envoy applies {ty:<21} ms, mean per 100 routes: {}",
                per_100(&times[1..])
            );
        }
    }
}
