//! Translator benchmarks over the synthetic configuration of issue 3: a full pass with a
//! fresh [`Translator`] and a pass after one HTTPRoute changed, with a warm one. Upstreams
//! go through the native [`StaticPlugins`], so this times the translator alone.
//!
//! Run: `cargo bench -p weir --bench translate`. Set `WEIR_BENCH_LARGE=1` to add the
//! 10,000-route cases (ten samples each; they take minutes). Targets on the 2-core
//! machine: 1,000 routes full ≤ 10 ms; 10,000 routes full ≤ 500 ms; one-route change at
//! 10,000 ≤ 20 ms. `cargo run --release -p weir --example translate_bench` prints the same
//! figures plus the Wasm plugin's cost and peak RSS.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use k8s_openapi::jiff::Timestamp;
use weir::translate::Translator;
use weir::translate::synthetic::{StaticPlugins, Synthetic};

fn bench_size(c: &mut Criterion, routes: usize, samples: usize) {
    let synthetic = Synthetic::with_routes(routes);
    let mut store = synthetic.store();
    let mut group = c.benchmark_group(format!("translate_{routes}_routes"));
    group.sample_size(samples);
    if samples <= 10 {
        group.measurement_time(Duration::from_secs(20));
    }
    group.bench_function("full", |b| {
        b.iter(|| {
            black_box(Translator::new().translate(
                &store,
                &mut StaticPlugins,
                Timestamp::UNIX_EPOCH,
            ))
        })
    });
    let mut translator = Translator::new();
    translator.translate(&store, &mut StaticPlugins, Timestamp::UNIX_EPOCH);
    let mut variant = 0u32;
    group.bench_function("one_route_change", |b| {
        b.iter(|| {
            // Alternate between two versions of one route, so every pass sees a change.
            variant = 1 - variant;
            synthetic.change_route(&mut store, routes / 2, variant);
            black_box(translator.translate(&store, &mut StaticPlugins, Timestamp::UNIX_EPOCH))
        })
    });
    group.finish();
}

fn translate(c: &mut Criterion) {
    bench_size(c, 1_000, 20);
    if std::env::var_os("WEIR_BENCH_LARGE").is_some() {
        bench_size(c, 10_000, 10);
    }
}

criterion_group!(benches, translate);
criterion_main!(benches);
