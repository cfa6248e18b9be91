//! The propagation benchmark of issue 4: a file change in `weir serve`'s directory → the
//! changed route answering through a real Envoy, over `--changes` changes (p50, p99).
//!
//! ```text
//! cargo build --release -p weir
//! cargo run --release -p weir --example propagation_bench -- --routes 100
//! cargo run --release -p weir --example propagation_bench -- --routes 1000
//! cargo run --release -p weir --example propagation_bench -- --routes 10000 [--sotw]
//! ```
//!
//! The synthetic world of `weir::translate::synthetic` (one Gateway, 10,000 Services,
//! `--routes` HTTPRoutes, one file each) is written to a directory with every endpoint
//! on a local backend; `weir serve` (the release binary) watches it and an Envoy from
//! `weir bootstrap` (delta ADS, or state of the world with `--sotw`) serves it. Each change
//! rewrites one route's file (through a rename) so its first match is a path prefix no
//! route had; the time runs from the write to the first `200` for that path through
//! Envoy (polled every millisecond; a `404` is checked first). The file watcher
//! translates a file as soon as it is renamed into place (the 50 ms debounce applies only
//! to files still being written), so no debounce is in these figures. Target at 1,000
//! routes: p99 ≤ 100 ms plus the debounce.

#[path = "support/bench.rs"]
mod bench;

use std::time::{Duration, Instant};

use anyhow::bail;
use serde_json::json;
use weir::translate::synthetic::Synthetic;

use bench::{Probe, World, mean, ms, percentile};

struct Args {
    routes: usize,
    changes: usize,
    delta: bool,
    backends: usize,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut args = Args {
        routes: 1_000,
        changes: 100,
        delta: true,
        backends: 4,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--routes" => args.routes = bench::number(&mut it, "--routes")?.max(1),
            "--changes" => args.changes = bench::number(&mut it, "--changes")?.max(1),
            "--backends" => args.backends = bench::number(&mut it, "--backends")?.max(1),
            "--sotw" => args.delta = false,
            other => bail!(
                "unknown argument {other}; usage: propagation_bench [--routes N] [--changes N] [--backends N] [--sotw]"
            ),
        }
    }
    Ok(args)
}

fn main() -> anyhow::Result<()> {
    let args = parse_args()?;
    let synthetic = Synthetic::with_routes(args.routes);
    println!(
        "propagation_bench: {} routes, {} Services, {} Upstreams; {} changes; {} ADS; load average {}",
        synthetic.routes,
        synthetic.services,
        synthetic.upstreams,
        args.changes,
        if args.delta {
            "delta"
        } else {
            "state-of-the-world"
        },
        bench::load_average()
    );
    let routes = synthetic.routes;
    let mut world = World::start(synthetic, 0..routes, args.backends, args.delta)?;
    let port = world.local.http_port;

    // The whole configuration is served once the last route answers.
    let started = Instant::now();
    let last = Probe::for_route(&world.route_manifest(routes - 1))?;
    last.wait_for(port, 200, Duration::from_millis(5), &mut world.envoy)?;
    println!("all routes served:   {}", ms(started.elapsed()));

    let mut times = Vec::new();
    let load_before = bench::load_average();
    for k in 0..args.changes {
        // Distinct routes spread over the whole set (7919 is prime).
        let index = (k * 7919 + 13) % routes;
        let mut manifest = world.route_manifest(index);
        let path = format!("/r{index}/changed/{k}");
        manifest["spec"]["rules"][0]["matches"][0] =
            json!({"path": {"type": "PathPrefix", "value": path}});
        let probe = Probe::for_route(&manifest)?;
        let before = probe.status(port);
        if before != Ok(404) {
            bail!("{probe:?} answered {before:?} before the change");
        }
        let start = Instant::now();
        bench::write_manifest(&world.route_path(index), &manifest)?;
        let answered = probe.wait_for(port, 200, Duration::from_millis(1), &mut world.envoy)?;
        times.push(answered - start);
        // Let the watcher go quiet so the next change is a burst of its own.
        std::thread::sleep(Duration::from_millis(100));
    }
    let load_after = bench::load_average();
    let p99 = percentile(&times, 99.0);
    println!(
        "change → answering: p50 {}, p99 {}, mean {}, max {} over {} changes",
        ms(percentile(&times, 50.0)),
        ms(p99),
        ms(mean(&times)),
        ms(percentile(&times, 100.0)),
        times.len(),
    );
    let pid = world.serve.process.pid();
    println!(
        "weir serve RSS:      VmHWM {:.1} MiB, VmRSS {:.1} MiB; load average before {load_before}, after {load_after}",
        bench::memory_mib(pid, "VmHWM:"),
        bench::memory_mib(pid, "VmRSS:"),
    );
    Ok(())
}
