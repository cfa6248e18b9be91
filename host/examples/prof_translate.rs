//! A profiling harness for the translator: builds the synthetic store, warms a translator
//! with one full pass, pauses, then runs only the measured passes, so a profiler started
//! with a delay (`perf record -D`) sees those passes alone.
//!
//! ```text
//! cargo build --release -p weir --example prof_translate
//! perf record -D 4000 -g target/release/examples/prof_translate --routes 10000 --passes 100
//! target/release/examples/prof_translate --routes 10000 --full 5
//! ```
//!
//! `--passes N` runs N one-route-change passes (each change is reverted by a second pass,
//! also counted); `--full N` runs N full passes with a fresh translator each. It prints
//! the median pass time; use `translate_bench` for the figures of record.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use k8s_openapi::jiff::Timestamp;
use weir::translate::Translator;
use weir::translate::synthetic::{StaticPlugins, Synthetic};

fn main() -> anyhow::Result<()> {
    let (mut routes, mut passes, mut full, mut pause_ms) = (10_000, 50, 0, 2_000);
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let v: usize = it
            .next()
            .with_context(|| format!("{a} needs a value"))?
            .parse()
            .with_context(|| format!("{a} takes a number"))?;
        match a.as_str() {
            "--routes" => routes = v,
            "--passes" => passes = v,
            "--full" => full = v,
            "--pause-ms" => pause_ms = v,
            other => bail!(
                "unknown argument {other}; usage: prof_translate [--routes N] [--passes N] [--full N] [--pause-ms MS]"
            ),
        }
    }
    let synthetic = Synthetic::with_routes(routes);
    let mut store = synthetic.store();
    let now = Timestamp::UNIX_EPOCH;
    let mut translator = Translator::new();
    drop(translator.translate(&store, &mut StaticPlugins, now));
    eprintln!("warm; pausing {pause_ms} ms");
    std::thread::sleep(Duration::from_millis(pause_ms as u64));

    let mut times = Vec::new();
    for _ in 0..full {
        let mut fresh = Translator::new();
        let start = Instant::now();
        drop(fresh.translate(&store, &mut StaticPlugins, now));
        times.push(start.elapsed());
    }
    for run in 0..passes {
        let index = (run * 7919) % routes.max(1);
        for variant in [u32::try_from(run + 1).unwrap_or(u32::MAX), 0] {
            synthetic.change_route(&mut store, index, variant);
            let start = Instant::now();
            drop(translator.translate(&store, &mut StaticPlugins, now));
            times.push(start.elapsed());
        }
    }
    times.sort();
    if let Some(median) = times.get(times.len() / 2) {
        println!(
            "{} passes, median {:.2} ms",
            times.len(),
            median.as_secs_f64() * 1e3
        );
    }
    Ok(())
}
