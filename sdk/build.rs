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

    // Each file is compiled on its own and the results merged. protox resolves
    // relative names against every package it has loaded, while protoc only
    // looks at a file's imports; compiled together, `common.ratelimit.v3` in
    // the local_ratelimit filter would wrongly resolve under the
    // `envoy.extensions.filters.common` package that the fault filter brings in.
    let mut descriptors = prost_types::FileDescriptorSet::default();
    let mut seen = std::collections::BTreeSet::new();
    for file in &files {
        let set = match protox::compile([file], &includes) {
            Ok(set) => set,
            Err(err) => panic!("compiling the vendored Envoy protos failed: {err:?}"),
        };
        for descriptor in set.file {
            if seen.insert(descriptor.name().to_owned()) {
                descriptors.file.push(descriptor);
            }
        }
    }

    let mut config = prost_build::Config::new();
    config
        .include_file("_includes.rs")
        // BTreeMap keeps map fields (typed_per_filter_config, ...) in key order,
        // so the same message always encodes to the same bytes.
        .btree_map(["."])
        .enable_type_names()
        .type_name_domain(["."], "type.googleapis.com");
    if let Err(err) = config.compile_fds(descriptors) {
        panic!("generating Rust for the vendored Envoy protos failed: {err}");
    }

    let out_dir = PathBuf::from(std::env::var_os("OUT_DIR").expect("set by cargo"));
    for entry in std::fs::read_dir(&out_dir).expect("reading OUT_DIR") {
        let path = entry.expect("directory entry").path();
        if path.extension().is_some_and(|ext| ext == "rs") {
            let text = std::fs::read_to_string(&path).expect("reading generated code");
            std::fs::write(&path, fence_indented_docs(&text)).expect("writing generated code");
        }
    }
}

/// Wraps indented blocks in proto comments (RST notes and examples that
/// prost copies into doc comments) in ```` ```text ```` fences. Markdown reads
/// an indented block as code, and rustdoc would compile it as a Rust doctest.
fn fence_indented_docs(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + text.len() / 16);
    // Indentation of the open fence, if any, and blank doc lines held back
    // so the fence closes right after the block's last line.
    let mut open: Option<String> = None;
    let mut held_blanks: Vec<&str> = Vec::new();
    for line in text.lines() {
        let trimmed = line.trim_start();
        let indent = &line[..line.len() - trimmed.len()];
        let doc = trimmed.strip_prefix("///");
        match doc {
            Some(content) if content.trim().is_empty() && open.is_some() => {
                held_blanks.push(line);
                continue;
            }
            // "/// " plus at least four spaces: an indented code block.
            Some(content) if content.starts_with("     ") || content.starts_with(" \t") => {
                if open.is_none() {
                    out.push_str(&format!("{indent}/// ```text\n"));
                    open = Some(indent.to_owned());
                }
            }
            _ => {
                if let Some(fence_indent) = open.take() {
                    out.push_str(&format!("{fence_indent}/// ```\n"));
                }
            }
        }
        for blank in held_blanks.drain(..) {
            out.push_str(blank);
            out.push('\n');
        }
        out.push_str(line);
        out.push('\n');
    }
    if let Some(fence_indent) = open {
        out.push_str(&format!("{fence_indent}/// ```\n"));
    }
    for blank in held_blanks {
        out.push_str(blank);
        out.push('\n');
    }
    out
}

/// Collects every `.proto` file below `dir` as a path relative to `root`.
fn collect_protos(root: &Path, dir: &Path, files: &mut Vec<PathBuf>) {
    let entries =
        std::fs::read_dir(dir).unwrap_or_else(|err| panic!("reading {}: {err}", dir.display()));
    for entry in entries {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            collect_protos(root, &path, files);
        } else if path.extension().is_some_and(|ext| ext == "proto") {
            files.push(path.strip_prefix(root).expect("below root").to_path_buf());
        }
    }
}
