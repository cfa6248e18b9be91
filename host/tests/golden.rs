//! Golden-file tests of `weir translate`: each folder under `tests/golden/` holds an
//! `input.yaml` and the expected output, `expected.yaml` (stdout) and, when the
//! translation reports problems with the input files, `expected.stderr`.
//!
//! On a difference the test prints a unified diff per case. To accept new output after
//! reviewing it, run with `WEIR_BLESS=1` and review the diff of the expected files.
//! `lastTransitionTime` values are replaced by `<time>` and plugin digests by `<digest>`,
//! so the files depend neither on when the test ran nor on the plugin build.

use std::path::{Path, PathBuf};
use std::process::Command;

const WEIR: &str = env!("CARGO_BIN_EXE_weir");

fn cases() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let mut cases: Vec<PathBuf> = std::fs::read_dir(&root)
        .expect("tests/golden exists")
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("input.yaml").is_file())
        .collect();
    cases.sort();
    cases
}

/// Runs `weir translate` in the case's folder; returns (stdout, stderr).
fn translate(case: &Path) -> (String, String) {
    let cache = Path::new(env!("CARGO_TARGET_TMPDIR")).join("golden-cache");
    let output = Command::new(WEIR)
        .current_dir(case)
        .args(["translate", "-f", "input.yaml", "-o", "yaml"])
        .env("XDG_CACHE_HOME", cache)
        .env_remove("RUST_LOG")
        .output()
        .expect("weir runs");
    assert!(
        output.status.success(),
        "{}: weir translate failed: {}",
        case.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    (
        normalize(&String::from_utf8_lossy(&output.stdout)),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Replaces what changes from run to run or build to build: condition timestamps, and
/// plugin digests (any rebuild of a plugin changes them).
fn normalize(text: &str) -> String {
    text.lines()
        .map(|line| match line.find("lastTransitionTime: ") {
            Some(at) => format!("{}lastTransitionTime: <time>", &line[..at]),
            None => mask_digests(line),
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

fn mask_digests(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut rest = line;
    while let Some(at) = rest.find("sha256:") {
        let (head, tail) = rest.split_at(at + "sha256:".len());
        out.push_str(head);
        let hex = tail.chars().take_while(|c| c.is_ascii_hexdigit()).count();
        if hex > 0 {
            out.push_str("<digest>");
        }
        rest = &tail[hex..];
    }
    out.push_str(rest);
    out
}

/// Compares `actual` with the file at `path` (absent means empty); returns a diff.
fn check(path: &Path, actual: &str, bless: bool) -> Option<String> {
    let expected = std::fs::read_to_string(path).unwrap_or_default();
    if expected == actual {
        return None;
    }
    if bless {
        if actual.is_empty() {
            let _ = std::fs::remove_file(path);
        } else {
            std::fs::write(path, actual).unwrap();
        }
        return None;
    }
    let diff = similar::TextDiff::from_lines(expected.as_str(), actual)
        .unified_diff()
        .context_radius(3)
        .header(&path.display().to_string(), "actual")
        .to_string();
    Some(diff)
}

#[test]
fn translate_output_matches_golden_files() {
    let bless = std::env::var_os("WEIR_BLESS").is_some();
    let cases = cases();
    assert!(cases.len() >= 5, "golden cases found: {cases:?}");
    let mut failures = Vec::new();
    for case in &cases {
        let (stdout, stderr) = translate(case);
        failures.extend(check(&case.join("expected.yaml"), &stdout, bless));
        failures.extend(check(&case.join("expected.stderr"), &stderr, bless));
    }
    assert!(
        failures.is_empty(),
        "{} golden file(s) differ (run with WEIR_BLESS=1 to accept after review):\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn translate_redacts_private_keys_and_never_prints_secret_data() {
    for case in cases() {
        let (stdout, stderr) = translate(&case);
        for text in [&stdout, &stderr] {
            // A key shows up either decoded or, as proto3 JSON renders bytes, in base64
            // (the base64 of "-----BEGIN PRIVATE KEY-----" at the start of a value).
            for marker in ["PRIVATE KEY", "LS0tLS1CRUdJTiBQUklWQVRFIEtFWS0tLS0t"] {
                assert!(
                    !text.contains(marker),
                    "{}: a private key leaked",
                    case.display()
                );
            }
        }
    }
}

#[test]
fn translate_fails_with_a_message_on_an_unreadable_path() {
    let output = Command::new(WEIR)
        .args(["translate", "-f", "/nonexistent/manifests"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("/nonexistent/manifests"), "{stderr}");
}
