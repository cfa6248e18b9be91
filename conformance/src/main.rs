//! `weir-conformance [--report FILE] [TEST...]`: runs the Gateway API conformance tests
//! (all known, or the named ones) against a real `weir serve` and real Envoys, prints
//! each outcome and writes the report. Exits non-zero when a test fails.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Parser;
use weir_conformance::expect::Timing;
use weir_conformance::harness::{Harness, Options};
use weir_conformance::report::{Outcome, render};
use weir_conformance::suite;

/// Runs Gateway API conformance tests against Weir and Envoy.
#[derive(Debug, Parser)]
#[command(name = "weir-conformance")]
struct Args {
    /// Write the ConformanceReport (YAML) here.
    #[arg(long)]
    report: Option<PathBuf>,
    /// The vendored manifests [default: tests/conformance of this workspace].
    #[arg(long)]
    manifests: Option<PathBuf>,
    /// Seconds a case may take to converge (the suite's MaxTimeToConsistency).
    #[arg(long, default_value_t = 30)]
    timeout: u64,
    /// Keep the working directory (manifests, Weir/Envoy/echo logs) and print it.
    #[arg(long)]
    keep: bool,
    /// Only these tests (ShortNames); all when none.
    tests: Vec<String>,
}

/// The features Weir claims; tests needing others are skipped.
const SUPPORTED: &[&str] = &[
    "Gateway",
    "HTTPRoute",
    "ReferenceGrant",
    "GatewayPort8080",
    "GatewayHTTPListenerIsolation",
    "HTTPRouteQueryParamMatching",
    "HTTPRouteMethodMatching",
    "HTTPRouteResponseHeaderModification",
    "HTTPRouteBackendRequestHeaderModification",
    "HTTPRoutePathRedirect",
    "HTTPRoutePortRedirect",
    "HTTPRouteSchemeRedirect",
    "HTTPRoute303RedirectStatusCode",
    "HTTPRoute307RedirectStatusCode",
    "HTTPRoute308RedirectStatusCode",
    "HTTPRouteHostRewrite",
    "HTTPRoutePathRewrite",
    "HTTPRouteRequestTimeout",
    "HTTPRouteBackendTimeout",
    "HTTPRouteRequestMirror",
    "HTTPRouteRequestMultipleMirrors",
    "HTTPRouteParentRefPort",
    "HTTPRouteDestinationPortMatching",
    "HTTPRouteBackendURLRewrite",
    "HTTPRouteBackendRequestRedirect",
    "HTTPRouteNamedRouteRule",
    "HTTPRouteBackendProtocolH2C",
    "HTTPRouteBackendProtocolWebSocket",
    "HTTPRouteCORS",
    "HTTPRouteRetry",
    "HTTPRouteRetryBackendTimeout",
    "HTTPRouteRetryConnectionError",
];

/// Features of the HTTP profile Weir does not support, and why.
const UNSUPPORTED: &[(&str, &str)] = &[(
    "BackendTLSPolicy",
    "Weir does not read BackendTLSPolicy yet: connections to backends are plain TCP",
)];

fn main() -> ExitCode {
    if std::env::var_os(weir_conformance::processes::RUN_AS_WEIR).is_some() {
        return weir::cli::run();
    }
    let args = Args::parse();
    match run(args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> anyhow::Result<bool> {
    let all = suite::all();
    for name in &args.tests {
        if !all.iter().any(|t| t.name == name) {
            anyhow::bail!("no conformance test named {name}");
        }
    }
    let selected: Vec<&suite::ConformanceTest> = all
        .iter()
        .filter(|t| args.tests.is_empty() || args.tests.iter().any(|n| n == t.name))
        .collect();
    let opts = Options {
        manifests: args
            .manifests
            .unwrap_or_else(weir_conformance::manifests::default_dir),
        timing: Timing {
            max: Duration::from_secs(args.timeout),
            ..Timing::default()
        },
        keep: args.keep,
    };
    let mut harness = Harness::start(opts)?;
    if !harness.per_gateway_addresses() {
        eprintln!("note: weir bootstrap has no --bind-address; one Envoy at a time on 0.0.0.0");
    }
    let mut outcomes = Vec::new();
    for test in selected {
        let start = Instant::now();
        let missing: Vec<&str> = test
            .features
            .iter()
            .filter(|f| !SUPPORTED.contains(f))
            .copied()
            .collect();
        let (result, reason) = if !missing.is_empty() {
            (
                "skipped",
                format!("unsupported features: {}", missing.join(", ")),
            )
        } else {
            let outcome = harness
                .apply(test.manifests)
                .map_err(|e| format!("{e:#}"))
                .and_then(|()| (test.run)(&mut harness));
            if let Err(e) = harness.cleanup() {
                eprintln!("cleanup after {}: {e:#}", test.name);
            }
            match outcome {
                Ok(()) => ("passed", String::new()),
                Err(e) if e.starts_with("skip: ") => ("skipped", e["skip: ".len()..].to_string()),
                Err(e) => ("failed", e),
            }
        };
        let seconds = start.elapsed().as_secs_f64();
        println!(
            "{result:7} {} ({seconds:.1} s){}",
            test.name,
            if reason.is_empty() {
                String::new()
            } else {
                format!("\n        {}", reason.replace('\n', "\n        "))
            }
        );
        outcomes.push(Outcome {
            name: test.name.to_string(),
            core: suite::is_core(test),
            provisional: test.provisional,
            result,
            reason,
            seconds,
        });
    }
    if args.tests.is_empty() {
        for t in suite::NOT_RUN {
            println!("skipped {}\n        {}", t.name, t.reason);
            outcomes.push(Outcome {
                name: t.name.to_string(),
                core: t.features.iter().all(|f| suite::CORE_FEATURES.contains(f)),
                provisional: t.provisional,
                result: "skipped",
                reason: t.reason.to_string(),
                seconds: 0.0,
            });
        }
    }
    if let Some(dir) = harness.finish() {
        eprintln!("kept the working directory {}", dir.display());
    }
    if let Some(path) = &args.report {
        let unsupported: Vec<&str> = UNSUPPORTED.iter().map(|(f, _)| *f).collect();
        let report = render(&outcomes, SUPPORTED, &unsupported);
        std::fs::write(path, serde_yaml_ng::to_string(&report)?)?;
    }
    Ok(outcomes.iter().all(|o| o.result != "failed"))
}
