//! Compiles the vendored Envoy API protos (`sdk/proto/`) into one encoded
//! `FileDescriptorSet`, `$OUT_DIR/envoy_descriptors.bin`, which
//! `weir::envoy_json` embeds to print Envoy messages as proto3 JSON.
//!
//! These are the same files the SDK compiles into Rust, so the host can render
//! every message a plugin can build. Source info is left out: the set is
//! embedded in the binary and JSON needs no comments.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use prost::Message;

/// The include roots under `sdk/proto/`, as in `sdk/build.rs`.
const TREES: &[&str] = &["data-plane-api", "xds", "protoc-gen-validate"];

/// File name of the encoded descriptor set inside `OUT_DIR`.
const OUTPUT: &str = "envoy_descriptors.bin";

/// Writes `$OUT_DIR/envoy_descriptors.bin` from `<workspace>/sdk/proto`.
/// `host/build.rs` already reruns when `sdk/proto` changes.
pub fn write_envoy_descriptors(workspace: &Path, out_dir: &Path) {
    let proto_dir = workspace.join("sdk").join("proto");
    let includes: Vec<PathBuf> = TREES.iter().map(|tree| proto_dir.join(tree)).collect();
    let mut files = Vec::new();
    for include in &includes {
        collect_protos(include, include, &mut files);
    }
    files.sort();

    // One file at a time, merged, for the reason `sdk/build.rs` gives: compiled
    // together, protox resolves relative type names against every loaded
    // package, which resolves some Envoy references to the wrong message.
    // Each compile lists a file's imports before it, so the merged set stays
    // in dependency order.
    let mut set = prost_types::FileDescriptorSet::default();
    let mut seen = BTreeSet::new();
    for file in &files {
        let compiled = protox::Compiler::new(&includes)
            .and_then(|mut compiler| {
                compiler.include_source_info(false).include_imports(true);
                compiler.open_file(file)?;
                Ok(compiler.file_descriptor_set())
            })
            .unwrap_or_else(|err| {
                panic!(
                    "compiling {} into the host's Envoy descriptor set failed: {err:?}",
                    file.display()
                )
            });
        for descriptor in compiled.file {
            if seen.insert(descriptor.name().to_owned()) {
                set.file.push(descriptor);
            }
        }
    }

    let path = out_dir.join(OUTPUT);
    if let Err(err) = std::fs::write(&path, set.encode_to_vec()) {
        panic!("writing {}: {err}", path.display());
    }
}

/// Collects every `.proto` file below `dir` as a path relative to `root`.
fn collect_protos(root: &Path, dir: &Path, files: &mut Vec<PathBuf>) {
    let entries =
        std::fs::read_dir(dir).unwrap_or_else(|err| panic!("reading {}: {err}", dir.display()));
    for entry in entries {
        let path = entry
            .unwrap_or_else(|err| panic!("reading {}: {err}", dir.display()))
            .path();
        if path.is_dir() {
            collect_protos(root, &path, files);
        } else if path.extension().is_some_and(|ext| ext == "proto") {
            let relative = path.strip_prefix(root).unwrap_or(&path);
            files.push(relative.to_path_buf());
        }
    }
}
