//! Compiles the vendored Envoy API protos (`proto/`) into Rust with protox and
//! prost-build, so the SDK needs neither `protoc` nor the `envoy-types` crate
//! (which pulls in tonic's transport and does not build for wasm32).

use std::path::{Path, PathBuf};

/// Every source tree under `proto/` is an include root.
const TREES: &[&str] = &["data-plane-api", "xds", "protoc-gen-validate"];

fn main() {
    let manifest_dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let proto_dir = manifest_dir.join("proto");
    println!("cargo:rerun-if-changed={}", proto_dir.display());

    let includes: Vec<PathBuf> = TREES.iter().map(|tree| proto_dir.join(tree)).collect();
    let mut files = Vec::new();
    for include in &includes {
        collect_protos(include, include, &mut files);
    }
    files.sort();

    let descriptors = match protox::compile(&files, &includes) {
        Ok(descriptors) => descriptors,
        Err(err) => panic!("compiling the vendored Envoy protos failed: {err:?}"),
    };

    let mut config = prost_build::Config::new();
    config
        .include_file("_includes.rs")
        .enable_type_names()
        .type_name_domain(["."], "type.googleapis.com");
    if let Err(err) = config.compile_fds(descriptors) {
        panic!("generating Rust for the vendored Envoy protos failed: {err}");
    }
}

/// Collects every `.proto` file below `dir` as a path relative to `root`.
fn collect_protos(root: &Path, dir: &Path, files: &mut Vec<PathBuf>) {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|err| panic!("reading {}: {err}", dir.display()));
    for entry in entries {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            collect_protos(root, &path, files);
        } else if path.extension().is_some_and(|ext| ext == "proto") {
            files.push(path.strip_prefix(root).expect("below root").to_path_buf());
        }
    }
}
