//! CPU time of one reused-instance call of the `static` Upstream plugin, counted from
//! the thread's own run time (`/proc/thread-self/schedstat`), so other processes on a
//! busy machine inflate it far less than the wall-clock figure `cargo bench` reports.
//!
//! Run: `cargo run --release -p weir --example plugin_call_cpu [-- PLUGIN.wasm]`. With a
//! path it loads that build of a `static` plugin instead of the built-in one, so two
//! builds can be compared back to back in one process.

use std::time::Duration;

#[path = "support/typical_upstream.rs"]
mod typical_upstream;

use typical_upstream::typical_upstream;
use weir::plugin::{PluginRuntime, RuntimeConfig, builtin};

/// Calls per round, and rounds (the median round is reported).
const CALLS: u32 = 100_000;
const ROUNDS: usize = 7;

fn main() -> anyhow::Result<()> {
    let mut runtime = PluginRuntime::new(RuntimeConfig {
        cache_dir: None,
        ..RuntimeConfig::default()
    })?;
    let paths: Vec<String> = std::env::args().skip(1).collect();
    if paths.is_empty() {
        let static_plugin = builtin::ALL
            .iter()
            .find(|b| b.file.contains("static"))
            .expect("static is built in");
        runtime.load_bytes(static_plugin.bytes, static_plugin.file)?;
        report("built-in static", &runtime)?;
    }
    for path in paths {
        let mut runtime = PluginRuntime::new(RuntimeConfig {
            cache_dir: None,
            ..RuntimeConfig::default()
        })?;
        runtime.load_file(path.as_ref())?;
        report(&path, &runtime)?;
    }
    Ok(())
}

/// Prints the median CPU time per reused-instance call over [`ROUNDS`] rounds.
fn report(what: &str, runtime: &PluginRuntime) -> anyhow::Result<()> {
    let input = typical_upstream();
    let mut session = runtime.session();
    for _ in 0..CALLS {
        std::hint::black_box(session.translate_upstream(&input)?);
    }
    let mut rounds = Vec::with_capacity(ROUNDS);
    for _ in 0..ROUNDS {
        let start = thread_cpu_time()?;
        for _ in 0..CALLS {
            std::hint::black_box(session.translate_upstream(&input)?);
        }
        rounds.push((thread_cpu_time()? - start) / CALLS);
    }
    rounds.sort();
    let median = rounds[ROUNDS / 2];
    println!(
        "{what}: reused-instance call {:.2} µs CPU (median of {ROUNDS} rounds of {CALLS}; min {:.2}, max {:.2})",
        micros(median),
        micros(rounds[0]),
        micros(rounds[ROUNDS - 1]),
    );
    Ok(())
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// Time this thread has spent on a CPU (Linux).
fn thread_cpu_time() -> anyhow::Result<Duration> {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat")?;
    let nanos: u64 = stat
        .split_whitespace()
        .next()
        .ok_or_else(|| anyhow::anyhow!("empty schedstat"))?
        .parse()?;
    Ok(Duration::from_nanos(nanos))
}
