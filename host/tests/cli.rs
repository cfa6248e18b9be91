//! The `weir` binary's plugin commands, run as a user would run them.

use std::process::{Command, Output};

const WEIR: &str = env!("CARGO_BIN_EXE_weir");
const STATIC: &str = env!("WEIR_PLUGIN_WASM_STATIC");
const PANIC: &str = env!("WEIR_FIXTURE_WASM_PANIC");
const FUTURE_API: &str = env!("WEIR_FIXTURE_WASM_FUTURE_API");

fn weir(args: &[&str]) -> Output {
    let cache = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("cli-cache");
    Command::new(WEIR)
        .args(args)
        .env("XDG_CACHE_HOME", cache)
        .output()
        .expect("weir runs")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn inspect_prints_metadata_keys_and_config_schema() {
    let out = weir(&["plugin", "inspect", STATIC]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("plugin:      static"), "{text}");
    assert!(text.contains("api version: 1.0.0"), "{text}");
    assert!(text.contains("world:       upstream-type"), "{text}");
    assert!(text.contains("keys:        static"), "{text}");
    assert!(text.contains("config schema of `static`"), "{text}");
    assert!(
        text.contains("\"hosts\""),
        "the schema describes hosts: {text}"
    );
}

#[test]
fn inspect_json_is_the_metadata_document() {
    let out = weir(&["plugin", "inspect", "--json", PANIC]);
    assert!(out.status.success(), "{}", stderr(&out));
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(meta["name"], "panic");
    assert_eq!(meta["apiVersion"], "1.0.0");
    assert_eq!(meta["keys"], serde_json::json!(["panics"]));
}

#[test]
fn check_accepts_a_compatible_plugin() {
    let out = weir(&["plugin", "check", PANIC]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.starts_with("ok: plugin `panic` 0.1.0 (sha256:"),
        "{text}"
    );
    assert!(
        text.contains("upstream-type plugin for API 1.0.0, claims panics"),
        "{text}"
    );
}

#[test]
fn check_refuses_a_future_api_version_with_the_reason() {
    let out = weir(&["plugin", "check", FUTURE_API]);
    assert!(!out.status.success());
    let text = stderr(&out);
    assert!(text.contains("needs plugin API 2.0.0"), "{text}");
    assert!(text.contains("this Weir implements 1.0.0"), "{text}");
}

#[test]
fn check_refuses_a_key_a_built_in_plugin_already_claims() {
    let out = weir(&["plugin", "check", STATIC]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("same name as the already loaded plugin `static`"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn check_and_inspect_refuse_a_file_that_is_not_a_plugin() {
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.wasm");
    std::fs::write(&junk, b"definitely not wasm").unwrap();
    for command in ["check", "inspect"] {
        let out = weir(&["plugin", command, junk.to_str().unwrap()]);
        assert!(!out.status.success(), "{command} must fail");
        let text = stderr(&out);
        assert!(
            text.contains("junk.wasm is not a valid WebAssembly component"),
            "{text}"
        );
    }
    let out = weir(&["plugin", "check", "/nonexistent/plugin.wasm"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("cannot read plugin file /nonexistent/plugin.wasm"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn list_shows_built_ins_and_a_plugin_directory_skipping_bad_files() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(PANIC, dir.path().join("panic.wasm")).unwrap();
    std::fs::copy(FUTURE_API, dir.path().join("future.wasm")).unwrap();
    let out = weir(&[
        "plugin",
        "list",
        "--plugin-dir",
        dir.path().to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    for line in ["static", "faults", "panic"] {
        assert!(
            text.lines().any(|l| l.starts_with(line)),
            "{line} listed: {text}"
        );
    }
    assert!(
        stderr(&out).contains("skipped: plugin `future-api` 0.1.0 needs plugin API 2.0.0"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn crds_prints_one_definition_per_weir_kind() {
    let out = weir(&["crds"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let mut kinds = Vec::new();
    for doc in text.split("\n---\n") {
        let crd: serde_json::Value = serde_yaml_ng::from_str(doc).expect("each document is YAML");
        assert_eq!(crd["kind"], "CustomResourceDefinition");
        assert_eq!(crd["spec"]["group"], "gateway.weir.dev");
        kinds.push(crd["spec"]["names"]["kind"].as_str().unwrap().to_owned());
    }
    kinds.sort();
    assert_eq!(
        kinds,
        [
            "DirectResponse",
            "HttpListenerOption",
            "ListenerOption",
            "RouteOption",
            "Upstream",
            "VirtualHostOption"
        ]
    );
}

#[test]
fn translate_json_output_of_the_quickstart_routes_echo_to_its_service() {
    let quickstart = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/quickstart");
    let out = weir(&["translate", "-f", quickstart, "-o", "json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let gateway = &doc["gateways"]["default/quickstart"];
    let route = &gateway["routes"][0]["virtual_hosts"][0]["routes"][0];
    assert_eq!(route["match"]["path_separated_prefix"], "/echo");
    assert_eq!(route["route"]["cluster"], "kube_default_echo_80");
    let endpoint = &gateway["endpoints"][0]["endpoints"][0]["lb_endpoints"][0]["endpoint"];
    assert_eq!(endpoint["address"]["socket_address"]["port_value"], 9001);
    let accepted = &doc["status"]["HTTPRoute/default/echo"]["parents"][0]["conditions"][0];
    assert_eq!(accepted["type"], "Accepted");
    assert_eq!(accepted["status"], "True");
}
