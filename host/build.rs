//! Builds the built-in plugins (`plugins/`) and the test fixture plugins
//! (`tests/fixtures/plugins/`) as WebAssembly components, and tells the host
//! crate where they are through `WEIR_PLUGIN_WASM_*` and `WEIR_FIXTURE_WASM_*`.
//!
//! It runs one nested `cargo build --release --target wasm32-wasip2` with its
//! own target directory (`<target dir>/wasm`): sharing the outer build's
//! directory would deadlock on cargo's build lock.

use std::env;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

#[path = "build/descriptors.rs"]
mod descriptors;

/// The wasm target plugins are built for.
const WASM_TARGET: &str = "wasm32-wasip2";

/// Every plugin crate we build, with the variable that carries its path.
const PLUGINS: &[(&str, &str)] = &[
    ("weir-plugin-static", "WEIR_PLUGIN_WASM_STATIC"),
    ("weir-plugin-faults", "WEIR_PLUGIN_WASM_FAULTS"),
    ("weir-plugin-kube", "WEIR_PLUGIN_WASM_KUBE"),
    ("weir-plugin-routing", "WEIR_PLUGIN_WASM_ROUTING"),
    ("weir-plugin-listener", "WEIR_PLUGIN_WASM_LISTENER"),
    ("weir-plugin-traffic", "WEIR_PLUGIN_WASM_TRAFFIC"),
    ("weir-plugin-extauth", "WEIR_PLUGIN_WASM_EXTAUTH"),
    ("weir-plugin-ratelimit", "WEIR_PLUGIN_WASM_RATELIMIT"),
    (
        "weir-fixture-endless-loop",
        "WEIR_FIXTURE_WASM_ENDLESS_LOOP",
    ),
    ("weir-fixture-sleeper", "WEIR_FIXTURE_WASM_SLEEPER"),
    ("weir-fixture-busy", "WEIR_FIXTURE_WASM_BUSY"),
    ("weir-fixture-memory-bomb", "WEIR_FIXTURE_WASM_MEMORY_BOMB"),
    ("weir-fixture-panic", "WEIR_FIXTURE_WASM_PANIC"),
    ("weir-fixture-oversized", "WEIR_FIXTURE_WASM_OVERSIZED"),
    ("weir-fixture-wrong-type", "WEIR_FIXTURE_WASM_WRONG_TYPE"),
    ("weir-fixture-future-api", "WEIR_FIXTURE_WASM_FUTURE_API"),
    (
        "weir-fixture-envoy-rejects",
        "WEIR_FIXTURE_WASM_ENVOY_REJECTS",
    ),
    (
        "weir-example-owner-header",
        "WEIR_EXAMPLE_WASM_OWNER_HEADER",
    ),
    (
        "weir-fixture-owner-header-v2",
        "WEIR_FIXTURE_WASM_OWNER_HEADER_V2",
    ),
];

/// The SDK's example plugins (one per world; the README's walkthrough is one of them),
/// built so the host tests can load them, with the variable that carries each path.
const SDK_EXAMPLES: &[(&str, &str)] = &[
    ("echo", "WEIR_EXAMPLE_WASM_ECHO"),
    ("route_timeout", "WEIR_EXAMPLE_WASM_ROUTE_TIMEOUT"),
    ("openapi_operations", "WEIR_EXAMPLE_WASM_OPENAPI_OPERATIONS"),
];

/// Inputs of the plugin build, relative to the workspace root.
const INPUTS: &[&str] = &[
    "wit",
    "sdk/src",
    "sdk/examples",
    "sdk/build.rs",
    "sdk/proto",
    "sdk/Cargo.toml",
    "plugins",
    "tests/fixtures/plugins",
    "examples/plugins",
    "Cargo.toml",
    "Cargo.lock",
];

/// Variables the outer cargo sets for this build script (or that a wrapper
/// such as clippy sets) which would change what the nested cargo does: its
/// flags, compiler wrapper, target and target directory.
const REMOVED_VARS: &[&str] = &[
    "RUSTFLAGS",
    "RUSTDOCFLAGS",
    "CARGO_ENCODED_RUSTFLAGS",
    "CARGO_ENCODED_RUSTDOCFLAGS",
    "CARGO_BUILD_RUSTFLAGS",
    "RUSTC_WRAPPER",
    "RUSTC_WORKSPACE_WRAPPER",
    "CARGO_BUILD_RUSTC_WRAPPER",
    "CARGO_BUILD_RUSTC_WORKSPACE_WRAPPER",
    "CARGO_BUILD_TARGET",
    "CARGO_BUILD_TARGET_DIR",
    "CARGO_TARGET_DIR",
    "CARGO_BUILD_BUILD_DIR",
    "CARGO_PRIMARY_PACKAGE",
    "CARGO_CRATE_NAME",
    "CARGO_MANIFEST_DIR",
    "CARGO_MANIFEST_PATH",
    "CARGO_MANIFEST_LINKS",
    "OUT_DIR",
    "TARGET",
    "HOST",
    "NUM_JOBS",
    "OPT_LEVEL",
    "DEBUG",
    "PROFILE",
    "RUSTC_LINKER",
    "RUSTDOC",
];

/// Prefixes of per-package build-script variables, removed for the same reason.
const REMOVED_PREFIXES: &[&str] = &["CARGO_FEATURE_", "CARGO_CFG_", "CARGO_PKG_"];

fn main() {
    let manifest_dir =
        PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let workspace = manifest_dir
        .parent()
        .expect("the host crate sits inside the workspace")
        .to_path_buf();
    for input in INPUTS {
        println!("cargo:rerun-if-changed={}", workspace.join(input).display());
    }
    println!("cargo:rerun-if-env-changed=CARGO_TARGET_DIR");

    descriptors::write_envoy_descriptors(
        &workspace,
        Path::new(&env::var_os("OUT_DIR").expect("cargo sets OUT_DIR")),
    );

    let wasm_target_dir = target_dir(&workspace).join("wasm");
    build_plugins(&workspace, &wasm_target_dir);

    let release_dir = wasm_target_dir.join(WASM_TARGET).join("release");
    for (package, var) in PLUGINS {
        let wasm = release_dir.join(format!("{}.wasm", package.replace('-', "_")));
        if !wasm.is_file() {
            panic!(
                "the nested cargo build succeeded but did not produce {}; \
                 check that {package} has crate-type = [\"cdylib\"]",
                wasm.display()
            );
        }
        println!("cargo:rustc-env={var}={}", wasm.display());
    }
    for (example, var) in SDK_EXAMPLES {
        let wasm = release_dir.join("examples").join(format!("{example}.wasm"));
        if !wasm.is_file() {
            panic!("the nested cargo build did not produce {}", wasm.display());
        }
        println!("cargo:rustc-env={var}={}", wasm.display());
    }
}

/// The workspace's target directory: the ancestor of `OUT_DIR` that cargo
/// marked with `CACHEDIR.TAG` (this finds it wherever `--target-dir`,
/// `CARGO_TARGET_DIR` or a `--target` triple put it), else an absolute
/// `CARGO_TARGET_DIR`, else `<workspace>/target`.
fn target_dir(workspace: &Path) -> PathBuf {
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    if let Some(dir) = out_dir
        .ancestors()
        .find(|dir| dir.join("CACHEDIR.TAG").is_file())
    {
        return dir.to_path_buf();
    }
    match env::var_os("CARGO_TARGET_DIR").map(PathBuf::from) {
        Some(dir) if dir.is_absolute() => dir,
        _ => workspace.join("target"),
    }
}

/// Runs the one nested cargo build of every plugin, failing the build script
/// with cargo's output and a hint when it fails.
fn build_plugins(workspace: &Path, target_dir: &Path) {
    let cargo = env::var_os("CARGO").unwrap_or_else(|| OsString::from("cargo"));
    let mut command = Command::new(&cargo);
    command
        .current_dir(workspace)
        .arg("build")
        .arg("--release")
        .args(["--target", WASM_TARGET])
        .arg("--target-dir")
        .arg(target_dir)
        .arg("--manifest-path")
        .arg(workspace.join("Cargo.toml"))
        // opt-level 3 rather than "s": the static plugin's calls measured ~25% faster
        // (its code is Cranelift-compiled once, so the ~1% larger file costs little).
        .args(["--config", "profile.release.opt-level=3"]);
    for (package, _) in PLUGINS {
        command.args(["-p", package]);
    }
    // Naming example targets turns off the default target selection, so ask for the
    // plugins' libraries explicitly as well.
    command.args(["-p", "weir-plugin-sdk", "--lib"]);
    for (example, _) in SDK_EXAMPLES {
        command.args(["--example", example]);
    }
    for var in REMOVED_VARS {
        command.env_remove(var);
    }
    for (name, _) in env::vars_os() {
        let Some(name) = name.to_str() else { continue };
        if REMOVED_PREFIXES
            .iter()
            .any(|prefix| name.starts_with(prefix))
        {
            command.env_remove(name);
        }
    }

    let shown = format!(
        "{} {}",
        Path::new(&cargo).display(),
        command
            .get_args()
            .map(|arg| arg.to_string_lossy())
            .collect::<Vec<_>>()
            .join(" ")
    );
    let output = match command.output() {
        Ok(output) => output,
        Err(err) => panic!("could not run `{shown}` to build the plugins: {err}"),
    };
    if output.status.success() {
        return;
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    eprintln!("{}", String::from_utf8_lossy(&output.stdout));
    eprintln!("{stderr}");
    let hint = if stderr.contains("may not be installed")
        || stderr.contains("can't find crate for `core`")
        || stderr.contains("can't find crate for `std`")
    {
        "the wasm32-wasip2 target is missing; install it with `rustup target add wasm32-wasip2`"
    } else {
        "see cargo's output above; running the same command from the workspace root reproduces it"
    };
    panic!(
        "building the plugins for {WASM_TARGET} failed ({}): {hint}. The command was: {shown}",
        output.status
    );
}
