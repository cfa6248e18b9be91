//! Plugin runtime benchmarks: loading the `static` plugin cold and from the precompiled
//! cache, and calling it on a typical Upstream with a fresh instance and a reused one.
//!
//! Run: `cargo bench -p weir --bench plugins`. Targets on the 2-core CI machine:
//! cached load ≤ 10 ms, reused-instance call ≤ 3 µs, fresh instance + call ≤ 60 µs.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
#[path = "../examples/support/typical_upstream.rs"]
mod typical_upstream;

use typical_upstream::typical_upstream;
use weir::plugin::{PluginRuntime, RuntimeConfig, builtin};

fn static_bytes() -> &'static [u8] {
    builtin::ALL
        .iter()
        .find(|b| b.file.contains("static"))
        .expect("static is built in")
        .bytes
}

fn runtime(cache: Option<&std::path::Path>) -> PluginRuntime {
    PluginRuntime::new(RuntimeConfig {
        cache_dir: cache.map(Into::into),
        ..RuntimeConfig::default()
    })
    .expect("engine")
}

fn load(c: &mut Criterion) {
    let bytes = static_bytes();
    let mut group = c.benchmark_group("load");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(10));
    let cold = runtime(None);
    group.bench_function("cold", |b| {
        b.iter(|| black_box(cold.prepare(bytes, "static.wasm").unwrap()))
    });
    let dir = tempfile::tempdir().unwrap();
    let cached = runtime(Some(dir.path()));
    cached.prepare(bytes, "static.wasm").unwrap();
    group.bench_function("cached", |b| {
        b.iter(|| {
            let plugin = cached.prepare(bytes, "static.wasm").unwrap();
            assert!(plugin.from_cache);
            black_box(plugin)
        })
    });
    group.finish();
}

fn call(c: &mut Criterion) {
    let mut runtime = runtime(None);
    builtin::load_all(&mut runtime).unwrap();
    let input = typical_upstream();
    let mut group = c.benchmark_group("call");
    group.bench_function("fresh_instance", |b| {
        b.iter(|| {
            let mut session = runtime.session();
            black_box(session.translate_upstream(&input).unwrap())
        })
    });
    let mut session = runtime.session();
    group.bench_function("reused_instance", |b| {
        b.iter(|| black_box(session.translate_upstream(&input).unwrap()))
    });
    group.finish();
}

criterion_group!(benches, load, call);
criterion_main!(benches);
