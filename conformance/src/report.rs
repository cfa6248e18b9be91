//! The run's report, in the shape of upstream's ConformanceReport
//! (apis/v1 ConformanceReport): implementation, profiles with core and extended
//! results and statistics, supported features; plus each test's outcome and reason.

use serde_json::{Value, json};

/// One test's outcome.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// The test's ShortName.
    pub name: String,
    /// Core for GATEWAY-HTTP.
    pub core: bool,
    /// Provisional upstream.
    pub provisional: bool,
    /// `passed`, `failed` or `skipped`.
    pub result: &'static str,
    /// Why it failed or was skipped.
    pub reason: String,
    /// Seconds it took.
    pub seconds: f64,
}

/// The report as YAML-ready JSON.
pub fn render(outcomes: &[Outcome], supported: &[&str], unsupported: &[&str]) -> Value {
    let level = |core: bool| {
        let tests: Vec<&Outcome> = outcomes
            .iter()
            .filter(|o| o.core == core && !o.provisional)
            .collect();
        let count = |r: &str| tests.iter().filter(|o| o.result == r).count();
        let names = |r: &str| -> Vec<String> {
            tests
                .iter()
                .filter(|o| o.result == r)
                .map(|o| o.name.clone())
                .collect()
        };
        let result = if count("failed") > 0 {
            "failure"
        } else if count("skipped") > 0 || tests.is_empty() {
            "partial"
        } else {
            "success"
        };
        let mut out = json!({
            "result": result,
            "statistics": {
                "Passed": count("passed"),
                "Failed": count("failed"),
                "Skipped": count("skipped"),
            },
        });
        if count("failed") > 0 {
            out["failedTests"] = json!(names("failed"));
        }
        if count("skipped") > 0 {
            out["skippedTests"] = json!(names("skipped"));
        }
        out
    };
    let mut extended = level(false);
    extended["supportedFeatures"] = json!(supported);
    extended["unsupportedFeatures"] = json!(unsupported);
    let provisional: Vec<&str> = outcomes
        .iter()
        .filter(|o| o.provisional && o.result == "passed")
        .map(|o| o.name.as_str())
        .collect();
    let details: Vec<Value> = outcomes
        .iter()
        .map(|o| {
            let mut t = json!({
                "name": o.name,
                "level": if o.core { "core" } else { "extended" },
                "result": o.result,
                "seconds": (o.seconds * 10.0).round() / 10.0,
            });
            if o.provisional {
                t["provisional"] = json!(true);
            }
            if !o.reason.is_empty() {
                t["reason"] = json!(o.reason);
            }
            t
        })
        .collect();
    let version = std::fs::read_to_string(crate::manifests::default_dir().join("VERSION"))
        .ok()
        .and_then(|v| {
            v.lines()
                .find_map(|l| l.strip_prefix("commit:").map(|c| c.trim().to_string()))
        })
        .unwrap_or_default();
    json!({
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "ConformanceReport",
        "gatewayAPIVersion": format!("main@{version}"),
        // HTTPRoute's `retry` (HTTPRouteRetry*) exists only in the experimental channel.
        "gatewayAPIChannel": "experimental",
        "implementation": {
            "organization": "weir",
            "project": "weir",
            "url": "https://github.com/weir-dev/weir",
            "version": env!("CARGO_PKG_VERSION"),
            "contact": [],
        },
        "mode": "default",
        "profiles": [{
            "name": "GATEWAY-HTTP",
            "core": level(true),
            "extended": extended,
        }],
        "succeededProvisionalTests": provisional,
        "tests": details,
    })
}
