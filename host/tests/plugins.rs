//! The plugin runtime against real components: the built-in plugins and the adversarial
//! fixtures in `tests/fixtures/plugins/`, all compiled for wasm32-wasip2 by the build
//! script. Every misbehaving plugin must fail with its own typed error, the host must
//! survive, and well-behaved plugins must keep working in the same session.

use std::time::{Duration, Instant};

use envoy_types::pb::envoy::config::cluster::v3::cluster::{DiscoveryType, LbPolicy};
use envoy_types::pb::envoy::config::route::v3::Route;
use envoy_types::pb::envoy::extensions::filters::http::fault::v3::HttpFault;
use prost::Message;
use weir::plugin::{
    CallError, HookLevel, LoadError, ObjectRef, PluginRuntime, RuntimeConfig, Session,
    UpstreamInput, World, builtin,
};

const ENDLESS_LOOP: &str = env!("WEIR_FIXTURE_WASM_ENDLESS_LOOP");
const SLEEPER: &str = env!("WEIR_FIXTURE_WASM_SLEEPER");
const BUSY: &str = env!("WEIR_FIXTURE_WASM_BUSY");
const MEMORY_BOMB: &str = env!("WEIR_FIXTURE_WASM_MEMORY_BOMB");
const PANIC: &str = env!("WEIR_FIXTURE_WASM_PANIC");
const OVERSIZED: &str = env!("WEIR_FIXTURE_WASM_OVERSIZED");
const WRONG_TYPE: &str = env!("WEIR_FIXTURE_WASM_WRONG_TYPE");
const FUTURE_API: &str = env!("WEIR_FIXTURE_WASM_FUTURE_API");

/// A runtime with the built-in plugins, caching compiled plugins in `cache` (by default
/// one directory shared by the tests, so each plugin is compiled once per test run).
fn mk_runtime(cache: Option<&std::path::Path>) -> PluginRuntime {
    let config = RuntimeConfig {
        cache_dir: Some(cache.map_or_else(shared_cache, Into::into)),
        ..RuntimeConfig::default()
    };
    let mut runtime = PluginRuntime::new(config).expect("engine");
    builtin::load_all(&mut runtime).expect("built-in plugins load");
    runtime
}

fn shared_cache() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("plugin-cache")
}

fn mk_ref(kind: &str, name: impl ToString) -> ObjectRef {
    ObjectRef {
        group: "gateway.weir.dev".into(),
        kind: kind.into(),
        namespace: "default".into(),
        name: name.to_string(),
    }
}

fn mk_upstream(key: &str, config: &str) -> UpstreamInput {
    UpstreamInput {
        upstream: mk_ref("Upstream", "backend"),
        cluster_name: "upstream_default_backend".into(),
        key: key.into(),
        config: config.into(),
        endpoints: Vec::new(),
    }
}

const STATIC_CONFIG: &str = r#"{"hosts":[{"addr":"127.0.0.1","port":8080},{"addr":"127.0.0.2","port":8081,"loadBalancingWeight":3}]}"#;

/// A well-behaved call, used to show a session still works after a bad plugin failed.
fn assert_static_still_works(session: &mut Session<'_>) {
    let result = session
        .translate_upstream(&mk_upstream("static", STATIC_CONFIG))
        .expect("static plugin keeps working");
    assert_eq!(result.cluster.name, "upstream_default_backend");
}

#[test]
fn static_upstream_becomes_a_cluster_with_inline_endpoints() {
    let runtime = mk_runtime(None);
    let mut session = runtime.session();
    let result = session
        .translate_upstream(&mk_upstream("static", STATIC_CONFIG))
        .unwrap();
    let cluster = result.cluster;
    assert_eq!(cluster.name, "upstream_default_backend");
    assert_eq!(
        cluster.cluster_discovery_type,
        Some(
            envoy_types::pb::envoy::config::cluster::v3::cluster::ClusterDiscoveryType::Type(
                DiscoveryType::Static as i32
            )
        )
    );
    assert_eq!(cluster.lb_policy, LbPolicy::RoundRobin as i32);
    let endpoints = cluster.load_assignment.expect("inline endpoints");
    let lb: Vec<_> = endpoints
        .endpoints
        .iter()
        .flat_map(|l| &l.lb_endpoints)
        .collect();
    assert_eq!(lb.len(), 2);
    assert_eq!(
        lb[1].load_balancing_weight.as_ref().map(|w| w.value),
        Some(3)
    );
}

#[test]
fn static_upstream_with_hostname_uses_dns_and_tls_sni() {
    let runtime = mk_runtime(None);
    let mut session = runtime.session();
    let config = r#"{"hosts":[{"addr":"example.internal","port":443}],"useTls":true}"#;
    let cluster = session
        .translate_upstream(&mk_upstream("static", config))
        .unwrap()
        .cluster;
    assert_eq!(
        cluster.cluster_discovery_type,
        Some(
            envoy_types::pb::envoy::config::cluster::v3::cluster::ClusterDiscoveryType::Type(
                DiscoveryType::StrictDns as i32
            )
        )
    );
    let socket = cluster.transport_socket.expect("TLS transport socket");
    assert_eq!(socket.name, "envoy.transport_sockets.tls");
    let Some(envoy_types::pb::envoy::config::core::v3::transport_socket::ConfigType::TypedConfig(
        any,
    )) = socket.config_type
    else {
        panic!("typed TLS config expected");
    };
    let tls =
        envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::UpstreamTlsContext::decode(
            any.value.as_slice(),
        )
        .unwrap();
    assert_eq!(tls.sni, "example.internal");
}

#[test]
fn invalid_static_config_is_declined_with_the_field_path() {
    let runtime = mk_runtime(None);
    let mut session = runtime.session();
    let config =
        r#"{"hosts":[{"addr":"127.0.0.1","port":8080},{"addr":"127.0.0.1","port":70000}]}"#;
    let err = session
        .translate_upstream(&mk_upstream("static", config))
        .unwrap_err();
    assert!(matches!(err, CallError::Declined { .. }), "{err}");
    assert!(err.to_string().contains("hosts[1].port"), "{err}");
    assert!(err.to_string().contains("plugin `static`"), "{err}");

    let err = session
        .validate(World::UpstreamType, "static", r#"{"hosts":[]}"#)
        .unwrap_err();
    assert!(err.to_string().contains("hosts"), "{err}");
    assert_static_still_works(&mut session);
}

#[test]
fn faults_option_adds_per_route_config_and_the_fault_filter() {
    let runtime = mk_runtime(None);
    let mut session = runtime.session();
    let route = Route {
        name: "route_0".into(),
        ..Route::default()
    };
    let config = r#"{"abort":{"percentage":50,"httpStatus":503},"delay":{"percentage":100,"fixedDelay":"1.5s"}}"#;
    let result = session
        .apply(
            HookLevel::Route,
            "faults",
            config,
            &mk_ref("RouteOption", "chaos"),
            &route,
        )
        .unwrap();
    assert_eq!(
        result.target.name, "route_0",
        "the rest of the route is kept"
    );
    let per_route = &result.target.typed_per_filter_config["envoy.filters.http.fault"];
    let fault = HttpFault::decode(per_route.value.as_slice()).unwrap();
    let abort = fault.abort.expect("abort");
    assert_eq!(
        abort.error_type,
        Some(envoy_types::pb::envoy::extensions::filters::http::fault::v3::fault_abort::ErrorType::HttpStatus(503))
    );
    let delay = fault.delay.expect("delay");
    assert_eq!(
        delay.fault_delay_secifier,
        Some(envoy_types::pb::envoy::extensions::filters::common::fault::v3::fault_delay::FaultDelaySecifier::FixedDelay(
            envoy_types::pb::google::protobuf::Duration { seconds: 1, nanos: 500_000_000 }
        ))
    );
    assert_eq!(result.http_filters.len(), 1);
    assert_eq!(result.http_filters[0].name, "envoy.filters.http.fault");
}

#[test]
fn faults_with_bad_status_names_the_field() {
    let runtime = mk_runtime(None);
    let mut session = runtime.session();
    let err = session
        .apply(
            HookLevel::Route,
            "faults",
            r#"{"abort":{"percentage":50,"httpStatus":99}}"#,
            &mk_ref("RouteOption", "chaos"),
            &Route::default(),
        )
        .unwrap_err();
    assert!(err.to_string().contains("abort.httpStatus"), "{err}");
}

#[test]
fn a_plugin_that_sleeps_is_stopped_at_once_and_others_keep_working() {
    let mut runtime = mk_runtime(None);
    runtime.load_file(SLEEPER.as_ref()).unwrap();
    let mut session = runtime.session();
    let started = Instant::now();
    let err = session
        .translate_upstream(&mk_upstream("sleep", "{}"))
        .unwrap_err();
    // The guest asked to sleep for a minute; a sleeping guest never reaches an epoch
    // check, so only refusing the wait stops it.
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(10),
        "stopped instead of sleeping, took {took:?}"
    );
    assert!(matches!(err, CallError::Crash { .. }), "{err}");
    let text = err.to_string();
    assert!(text.contains("sleeper"), "names the plugin: {text}");
    assert!(text.contains("wait"), "says what it did: {text}");
    assert_static_still_works(&mut session);
}

/// The CPU time the calling thread has used.
#[cfg(target_os = "linux")]
fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `clock_gettime` writes only the `timespec` we own.
    assert_eq!(
        unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) },
        0
    );
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// Pins the calling thread to `cpu`.
#[cfg(target_os = "linux")]
fn pin_to(cpu: usize) {
    // SAFETY: a zeroed `cpu_set_t` is the empty set; the calls read and write only it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        assert_eq!(
            libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set),
            0,
            "pin to CPU {cpu}"
        );
    }
}

/// A call needing ~20 ms of CPU finishes even when the machine is so busy that it takes
/// far longer than the 100 ms deadline in wall time: a deadline counts the CPU time the
/// call used, so a healthy plugin is not failed for the machine's load.
#[cfg(target_os = "linux")]
#[test]
fn a_call_slowed_by_a_busy_machine_is_not_timed_out() {
    // On its own thread: the pinning and the low priority must not outlive the test
    // (with `--test-threads=1` tests run on the harness's thread).
    std::thread::spawn(busy_call_on_a_crowded_cpu)
        .join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
}

#[cfg(target_os = "linux")]
fn busy_call_on_a_crowded_cpu() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    let mut runtime = mk_runtime(None);
    runtime.load_file(BUSY.as_ref()).unwrap();
    let mut session = runtime.session();
    // How many spins make ~20 ms of CPU on this machine.
    let probe = 2_000_000u64;
    let cpu = thread_cpu();
    session
        .translate_upstream(&mk_upstream("busy", &format!(r#"{{"spins":{probe}}}"#)))
        .expect("a short busy call");
    let per_spin = (thread_cpu() - cpu).as_secs_f64() / probe as f64;
    let spins = (0.020 / per_spin.max(1e-12)) as u64;

    // Share one CPU with three spinning threads, at the lowest priority.
    // SAFETY: `sched_getcpu` and `setpriority` take no pointers.
    let cpu_index = usize::try_from(unsafe { libc::sched_getcpu() }).unwrap_or(0);
    let stop = Arc::new(AtomicBool::new(false));
    let spinners: Vec<_> = (0..3)
        .map(|_| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                pin_to(cpu_index);
                while !stop.load(Ordering::Relaxed) {
                    std::hint::spin_loop();
                }
            })
        })
        .collect();
    pin_to(cpu_index);
    // SAFETY: as above; `gettid` names this thread.
    unsafe { libc::setpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t, 19) };

    let (cpu, wall) = (thread_cpu(), Instant::now());
    let result =
        session.translate_upstream(&mk_upstream("busy", &format!(r#"{{"spins":{spins}}}"#)));
    let (used, took) = (thread_cpu() - cpu, wall.elapsed());
    stop.store(true, Ordering::Relaxed);
    for spinner in spinners {
        spinner.join().unwrap();
    }

    assert!(
        took > Duration::from_millis(100),
        "the machine was busy enough to matter: took {took:?} for {used:?} of CPU"
    );
    let result = result.unwrap_or_else(|err| {
        panic!("took {took:?} in wall time for {used:?} of CPU, and failed: {err}")
    });
    assert_eq!(result.cluster.name, "upstream_default_backend");
}

#[test]
fn unclaimed_key_is_an_unknown_key_error() {
    let runtime = mk_runtime(None);
    let mut session = runtime.session();
    let err = session
        .translate_upstream(&mk_upstream("aws", "{}"))
        .unwrap_err();
    assert!(matches!(err, CallError::UnknownKey { .. }), "{err}");
    assert_eq!(
        err.to_string(),
        "no loaded upstream-type plugin claims the key `aws`"
    );
}

#[test]
fn endless_loop_times_out_and_other_plugins_keep_working() {
    let mut runtime = mk_runtime(None);
    runtime.load_file(ENDLESS_LOOP.as_ref()).unwrap();
    let mut session = runtime.session();
    let started = Instant::now();
    let err = session
        .translate_upstream(&mk_upstream("loop", "{}"))
        .unwrap_err();
    let took = started.elapsed();
    assert!(matches!(err, CallError::Timeout { .. }), "{err}");
    assert!(
        took < Duration::from_secs(2),
        "stopped promptly, took {took:?}"
    );
    assert!(
        err.to_string().contains("did not finish within 100ms"),
        "{err}"
    );
    assert!(
        err.to_string().contains("sha256:"),
        "names the build: {err}"
    );
    assert_static_still_works(&mut session);
    // The looping plugin gets a fresh instance and fails the same way again.
    let again = session
        .translate_upstream(&mk_upstream("loop", "{}"))
        .unwrap_err();
    assert!(matches!(again, CallError::Timeout { .. }), "{again}");
}

#[test]
fn memory_bomb_runs_out_of_memory_at_the_cap() {
    let mut runtime = PluginRuntime::new(RuntimeConfig {
        cache_dir: Some(shared_cache()),
        memory_limit: 16 << 20,
        call_timeout: Duration::from_secs(5),
        ..RuntimeConfig::default()
    })
    .unwrap();
    builtin::load_all(&mut runtime).unwrap();
    runtime.load_file(MEMORY_BOMB.as_ref()).unwrap();
    let mut session = runtime.session();
    let err = session
        .translate_upstream(&mk_upstream("membomb", "{}"))
        .unwrap_err();
    assert!(
        matches!(err, CallError::OutOfMemory { limit, .. } if limit == 16 << 20),
        "{err}"
    );
    assert_static_still_works(&mut session);
}

#[test]
fn panic_is_a_crash_quoting_the_panic_message() {
    let mut runtime = mk_runtime(None);
    runtime.load_file(PANIC.as_ref()).unwrap();
    let mut session = runtime.session();
    let err = session
        .translate_upstream(&mk_upstream("panics", "{}"))
        .unwrap_err();
    assert!(matches!(err, CallError::Crash { .. }), "{err}");
    assert!(
        err.to_string().contains("plugin exploded on purpose"),
        "{err}"
    );
    assert!(err.to_string().starts_with("plugin `panic`"), "{err}");
    assert_static_still_works(&mut session);
}

#[test]
fn oversized_output_is_refused() {
    // Building a 1 MiB answer can outlast the default 100 ms deadline on a loaded machine;
    // this test is about the size cap, so it gets a deadline it cannot hit by accident.
    let mut runtime = PluginRuntime::new(RuntimeConfig {
        cache_dir: Some(shared_cache()),
        call_timeout: std::time::Duration::from_secs(10),
        ..RuntimeConfig::default()
    })
    .expect("engine");
    builtin::load_all(&mut runtime).expect("built-in plugins load");
    runtime.load_file(OVERSIZED.as_ref()).unwrap();
    let mut session = runtime.session();
    let err = session
        .translate_upstream(&mk_upstream("oversized", "{}"))
        .unwrap_err();
    assert!(
        matches!(err, CallError::OutputTooLarge { size, limit, .. } if size > limit && limit == 1 << 20),
        "{err}"
    );
    assert_static_still_works(&mut session);
}

#[test]
fn wrong_type_url_is_refused() {
    let mut runtime = mk_runtime(None);
    runtime.load_file(WRONG_TYPE.as_ref()).unwrap();
    let mut session = runtime.session();
    let err = session
        .translate_upstream(&mk_upstream("wrongtype", "{}"))
        .unwrap_err();
    let CallError::WrongType { expected, got, .. } = &err else {
        panic!("expected a wrong-type error, got {err}");
    };
    assert_eq!(
        expected,
        "type.googleapis.com/envoy.config.cluster.v3.Cluster"
    );
    assert_eq!(got, "type.googleapis.com/envoy.config.listener.v3.Listener");
    assert_static_still_works(&mut session);
}

#[test]
fn future_api_version_is_refused_before_linking() {
    let mut runtime = mk_runtime(None);
    let err = runtime
        .load_file(FUTURE_API.as_ref())
        .err()
        .expect("refused");
    assert!(matches!(err, LoadError::Metadata(_)), "{err}");
    let text = err.to_string();
    assert!(text.contains("needs plugin API 2.0.0"), "{text}");
    assert!(text.contains("this Weir implements 1.0.0"), "{text}");
    assert!(runtime.claimant(World::UpstreamType, "future").is_none());
}

#[test]
fn malformed_file_is_refused_with_its_name() {
    let mut runtime = mk_runtime(None);
    let err = runtime
        .load_bytes(
            b"\0asm\x0d\0\x01\0garbage that is not a section",
            "broken.wasm",
        )
        .err()
        .expect("refused");
    assert!(
        err.to_string()
            .starts_with("broken.wasm is not a valid WebAssembly component"),
        "{err}"
    );
    let err = runtime
        .load_bytes(b"just text", "notes.wasm")
        .err()
        .expect("refused");
    assert!(err.to_string().contains("notes.wasm"), "{err}");
}

#[test]
fn duplicate_name_or_claimed_key_is_refused_naming_both_plugins() {
    let mut runtime = mk_runtime(None);
    let err = runtime
        .load_bytes(builtin::ALL[0].bytes, "copy-of-static.wasm")
        .err()
        .expect("refused");
    assert!(matches!(err, LoadError::DuplicateName { .. }), "{err}");

    // The panic fixture renamed in its metadata (same length, so the file stays valid):
    // a different plugin that claims the same key.
    let original = std::fs::read(PANIC).unwrap();
    runtime.load_bytes(&original, "panic.wasm").unwrap();
    let renamed = replace_all(&original, br#""name":"panic""#, br#""name":"panik""#);
    let err = runtime
        .load_bytes(&renamed, "panik.wasm")
        .err()
        .expect("refused");
    assert!(matches!(err, LoadError::DuplicateKey { .. }), "{err}");
    let text = err.to_string();
    assert!(
        text.contains("plugin `panik`") && text.contains("plugin `panic`"),
        "{text}"
    );
    assert!(text.contains("key `panics`"), "{text}");
}

fn replace_all(haystack: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    assert_eq!(from.len(), to.len(), "same length keeps the file valid");
    let mut out = haystack.to_vec();
    let mut found = false;
    let mut at = 0;
    while let Some(pos) = out[at..].windows(from.len()).position(|w| w == from) {
        out[at + pos..at + pos + from.len()].copy_from_slice(to);
        at += pos + from.len();
        found = true;
    }
    assert!(found, "pattern present");
    out
}

#[test]
fn precompiled_cache_is_used_on_second_load_and_survives_corruption() {
    let dir = tempfile::tempdir().unwrap();
    let first = mk_runtime(Some(dir.path()));
    assert!(
        first.plugins().iter().all(|p| !p.from_cache),
        "cold load compiles"
    );
    drop(first);
    let second = mk_runtime(Some(dir.path()));
    assert!(
        second.plugins().iter().all(|p| p.from_cache),
        "warm load uses the cache"
    );
    drop(second);

    // Truncate every entry: loading must fall back to compiling, and still work.
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let path = entry.unwrap().path();
        std::fs::write(&path, b"corrupt").unwrap();
    }
    let third = mk_runtime(Some(dir.path()));
    assert!(third.plugins().iter().all(|p| !p.from_cache));
    let mut session = third.session();
    assert_static_still_works(&mut session);
}

#[test]
fn instance_is_reused_within_a_session_and_replaced_after_a_trap() {
    let mut runtime = mk_runtime(None);
    runtime.load_file(PANIC.as_ref()).unwrap();
    let mut session = runtime.session();
    for _ in 0..50 {
        assert_static_still_works(&mut session);
    }
    assert_eq!(
        session.instance_count(),
        1,
        "one instance serves every call of the pass"
    );
    session
        .translate_upstream(&mk_upstream("panics", "{}"))
        .unwrap_err();
    assert_eq!(
        session.instance_count(),
        1,
        "the crashed instance is dropped"
    );
    drop(session);
    assert_eq!(
        runtime.session().instance_count(),
        0,
        "a new pass starts with no instances"
    );
}
