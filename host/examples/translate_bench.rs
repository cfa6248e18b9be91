//! The translation benchmark of issue 3: full and one-route-change translation over a
//! synthetic cluster, with a native `static` plugin and with the real Wasm one, plus the
//! process's peak RSS.
//!
//! ```text
//! cargo run --release -p weir --example translate_bench -- --routes 1000
//! cargo run --release -p weir --example translate_bench -- --routes 10000
//! ```
//!
//! Run one size per process so the peak RSS belongs to that size. Targets on the 2-core
//! machine: 1,000 routes full ≤ 10 ms; 10,000 routes full ≤ 500 ms; one-route change at
//! 10,000 ≤ 20 ms; peak RSS at 10,000 ≤ 300 MiB.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use k8s_openapi::jiff::Timestamp;
use weir::plugin::{PluginRuntime, RuntimeConfig, builtin};
use weir::translate::synthetic::{StaticPlugins, Synthetic};
use weir::translate::{Translation, Translator, UpstreamPlugins};

struct Args {
    routes: usize,
    services: Option<usize>,
    runs: usize,
    wasm: bool,
    /// Run only `full` or only `change` (for profiling).
    only: Option<String>,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut args = Args {
        routes: 1_000,
        services: None,
        runs: 7,
        wasm: true,
        only: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut value = |name: &str| -> anyhow::Result<usize> {
            it.next()
                .with_context(|| format!("{name} needs a value"))?
                .parse()
                .with_context(|| format!("{name} takes a number"))
        };
        match a.as_str() {
            "--routes" => args.routes = value("--routes")?,
            "--services" => args.services = Some(value("--services")?),
            "--runs" => args.runs = value("--runs")?.max(1),
            "--no-wasm" => args.wasm = false,
            "--only" => {
                args.only = it.next();
                args.wasm = false;
            }
            other => bail!(
                "unknown argument {other}; usage: translate_bench [--routes N] [--services N] [--runs N] [--no-wasm] [--only full|change]"
            ),
        }
    }
    Ok(args)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

/// `VmHWM` and `VmRSS` from /proc/self/status, in KiB.
fn memory_kib(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn summary(t: &Translation) -> String {
    let g = t.gateways.values().next();
    let vhosts: usize = g.map_or(0, |g| g.routes.iter().map(|r| r.virtual_hosts.len()).sum());
    let routes: usize = g.map_or(0, |g| {
        g.routes
            .iter()
            .flat_map(|r| &r.virtual_hosts)
            .map(|v| v.decode().routes.len())
            .sum()
    });
    format!(
        "{} virtual hosts, {} Envoy routes, {} clusters, {} endpoint sets, {} statuses",
        vhosts,
        routes,
        g.map_or(0, |g| g.clusters.len()),
        g.map_or(0, |g| g.endpoints.len()),
        t.statuses.len()
    )
}

/// Median full-translation time with a fresh translator per run.
fn full<'r>(
    store: &weir::store::Store,
    runs: usize,
    plugins: &mut dyn FnMut() -> Box<dyn UpstreamPlugins + 'r>,
) -> (Duration, String) {
    let mut times = Vec::new();
    let mut last = String::new();
    for _ in 0..runs {
        let mut p = plugins();
        let mut translator = Translator::new();
        let start = Instant::now();
        let t = translator.translate(store, &mut *p, Timestamp::UNIX_EPOCH);
        times.push(start.elapsed());
        // Keep one translator and one output alive at a time, as a controller does, so
        // the peak RSS is that of the steady state.
        last = summary(&t);
        drop(t);
        drop(translator);
    }
    (median(times), last)
}

/// Median time of a pass after changing one route's path, with a warm translator.
fn one_change<'r>(
    synthetic: &Synthetic,
    store: &mut weir::store::Store,
    runs: usize,
    plugins: &mut dyn FnMut() -> Box<dyn UpstreamPlugins + 'r>,
) -> Duration {
    let mut translator = Translator::new();
    translator.translate(store, &mut *plugins(), Timestamp::UNIX_EPOCH);
    let mut times = Vec::new();
    for run in 0..runs {
        // Spread the changes over the routes; each variant differs from the last.
        let index = (run * 7919) % synthetic.routes.max(1);
        synthetic.change_route(store, index, u32::try_from(run + 1).unwrap_or(u32::MAX));
        let mut p = plugins();
        let start = Instant::now();
        let t = translator.translate(store, &mut *p, Timestamp::UNIX_EPOCH);
        times.push(start.elapsed());
        drop(t);
        let pass = translator.last_pass();
        assert_eq!(pass.routes_translated, 1, "{pass:?}");
        synthetic.change_route(store, index, 0);
        translator.translate(store, &mut *p, Timestamp::UNIX_EPOCH);
    }
    median(times)
}

fn main() -> anyhow::Result<()> {
    let args = parse_args()?;
    let mut synthetic = Synthetic::with_routes(args.routes);
    if let Some(s) = args.services {
        synthetic.services = s;
    }
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "translate_bench: {} routes, {} Services (3 endpoints each), {} Upstreams, {} namespaces; {} runs; load average {}",
        synthetic.routes,
        synthetic.services,
        synthetic.upstreams,
        synthetic.namespaces,
        args.runs,
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );

    let start = Instant::now();
    let mut store = synthetic.store();
    println!(
        "store built:              {} ({} objects; VmRSS {:.1} MiB)",
        ms(start.elapsed()),
        store.len(),
        memory_kib("VmRSS:").unwrap_or(0) as f64 / 1024.0
    );

    let only = args.only.as_deref();
    if only.is_none_or(|o| o == "full") {
        let (t, last) = full(&store, args.runs, &mut || Box::new(StaticPlugins));
        println!("full (native static):     {}   [{last}]", ms(t));
    }
    if only.is_none_or(|o| o == "change") {
        let t = one_change(&synthetic, &mut store, args.runs, &mut || {
            Box::new(StaticPlugins)
        });
        println!("one-route change:         {}", ms(t));
    }

    if args.wasm {
        let mut runtime = PluginRuntime::new(RuntimeConfig::default())?;
        builtin::load_all(&mut runtime)?;
        let (t, last) = full(&store, args.runs, &mut || Box::new(runtime.session()));
        println!("full (Wasm static):       {}   [{last}]", ms(t));
        let t = one_change(&synthetic, &mut store, args.runs, &mut || {
            Box::new(runtime.session())
        });
        println!("one-route change (Wasm):  {}", ms(t));
    }

    println!(
        "peak RSS (VmHWM):         {:.1} MiB (VmRSS now {:.1} MiB)",
        memory_kib("VmHWM:").unwrap_or(0) as f64 / 1024.0,
        memory_kib("VmRSS:").unwrap_or(0) as f64 / 1024.0
    );
    Ok(())
}
