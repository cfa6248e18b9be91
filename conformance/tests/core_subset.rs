//! Runs a small core subset of the Gateway API conformance suite through the harness:
//! a real `weir serve` on the vendored manifests, real Envoys (one per Gateway, on their
//! own loopback addresses and real ports), echo backends as local processes. Needs
//! `envoy` on PATH and fails (never skips) without it.

use std::process::Command;

const SUBSET: &[&str] = &[
    "HTTPRouteSimpleSameNamespace",
    "HTTPRouteMatching",
    "HTTPRouteHeaderMatching",
    "HTTPRouteExactPathMatching",
    "HTTPRouteInvalidCrossNamespaceParentRef",
];

#[test]
fn core_subset_passes_against_real_envoy() {
    let report = tempfile::NamedTempFile::new().expect("report file");
    let output = Command::new(env!("CARGO_BIN_EXE_weir-conformance"))
        .arg("--report")
        .arg(report.path())
        .args(SUBSET)
        .output()
        .expect("weir-conformance runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "conformance subset failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    for name in SUBSET {
        assert!(
            stdout
                .lines()
                .any(|l| l.starts_with("passed") && l.contains(name)),
            "{name} did not pass:\n{stdout}\n{stderr}"
        );
    }
    let report: serde_json::Value =
        serde_yaml_ng::from_str(&std::fs::read_to_string(report.path()).expect("report written"))
            .expect("report is YAML");
    assert_eq!(report["kind"], "ConformanceReport");
    let core = &report["profiles"][0]["core"];
    assert_eq!(core["result"], "success", "{report:#}");
    assert_eq!(core["statistics"]["Passed"], SUBSET.len());
}

#[test]
fn a_wrong_expectation_fails() {
    // The harness must be able to fail: ask for a test that does not exist.
    let output = Command::new(env!("CARGO_BIN_EXE_weir-conformance"))
        .arg("NoSuchConformanceTest")
        .output()
        .expect("weir-conformance runs");
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("NoSuchConformanceTest"));
}
