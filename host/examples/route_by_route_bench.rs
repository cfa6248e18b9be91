//! The route-by-route benchmark of issue 4, after the method of the public
//! gateway-api-bench: add `--routes` HTTPRoutes one at a time, each a new file in `weir
//! serve`'s directory, and wait for each to answer through a real Envoy before adding the
//! next.
//!
//! ```text
//! cargo build --release -p weir
//! cargo run --release -p weir --example route_by_route_bench -- --routes 1000 [--delta]
//! ```
//!
//! The synthetic world of `weir::translate::synthetic` (one Gateway, 10,000 Services, the
//! Upstreams of a `--routes` world) starts with no HTTPRoute; endpoints are local
//! backends. Route `i` is then written (through a rename) and a request matching its
//! first rule's first match (hostname, path, headers, query) is polled every millisecond
//! until it answers `200`. A file renamed into place is translated at once (the 50 ms
//! debounce applies only to files still being written). Target ≤ 10 ms per route
//! (gateway-api-bench: kgateway ≈ 77 ms, Istio ≈ 213 ms).

#[path = "support/bench.rs"]
mod bench;

use std::time::{Duration, Instant};

use anyhow::bail;
use weir::translate::synthetic::Synthetic;

use bench::{Probe, World, mean, ms, percentile};

fn main() -> anyhow::Result<()> {
    let mut routes = 1_000;
    let mut delta = false;
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--routes" => routes = bench::number(&mut it, "--routes")?.max(1),
            "--delta" => delta = true,
            other => {
                bail!(
                    "unknown argument {other}; usage: route_by_route_bench [--routes N] [--delta]"
                )
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
    let pid = world.serve.process.pid();
    println!(
        "weir serve RSS:      VmHWM {:.1} MiB, VmRSS {:.1} MiB; load average before {load_before}, after {load_after}",
        bench::memory_mib(pid, "VmHWM:"),
        bench::memory_mib(pid, "VmRSS:"),
    );
    Ok(())
}
