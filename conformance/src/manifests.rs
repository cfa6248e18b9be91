//! The vendored conformance manifests (`tests/conformance/`): reading them, preparing
//! them the way the suite's applier does, and writing them for `weir serve`.

use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Deserialize;
use serde_json::Value;

/// The GatewayClass the harness creates and every Gateway is switched to.
pub const GATEWAY_CLASS: &str = "weir";

/// The controller name Weir answers for.
pub const CONTROLLER_NAME: &str = "gateway.weir.dev/controller";

/// Where the vendored manifests are: `WEIR_CONFORMANCE_MANIFESTS`, else
/// `tests/conformance` of this workspace.
pub fn default_dir() -> PathBuf {
    match std::env::var_os("WEIR_CONFORMANCE_MANIFESTS") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/conformance"),
    }
}

/// Reads one manifest file of the suite, prepared: `{GATEWAY_CLASS_NAME}` replaced,
/// every Gateway's class set to ours, documents as JSON values.
pub fn load(path: &Path) -> anyhow::Result<Vec<Value>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let text = text.replace("{GATEWAY_CLASS_NAME}", GATEWAY_CLASS);
    let mut docs = Vec::new();
    for doc in serde_yaml_ng::Deserializer::from_str(&text) {
        let value = Value::deserialize(doc)
            .with_context(|| format!("invalid YAML in {}", path.display()))?;
        if value.is_null() {
            continue;
        }
        docs.push(prepare(value));
    }
    Ok(docs)
}

fn prepare(mut doc: Value) -> Value {
    // The API server sets metadata.generation; the mutation tests bump it.
    if let Some(meta) = doc.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.entry("generation").or_insert(Value::from(1));
    }
    match kind(&doc) {
        "Gateway" => {
            if let Some(spec) = doc.get_mut("spec").and_then(Value::as_object_mut) {
                spec.insert("gatewayClassName".into(), GATEWAY_CLASS.into());
            }
        }
        "GatewayClass" => {
            if let Some(spec) = doc.get_mut("spec").and_then(Value::as_object_mut) {
                spec.insert("controllerName".into(), CONTROLLER_NAME.into());
            }
        }
        _ => {}
    }
    doc
}

/// The GatewayClass the suite expects to exist.
pub fn gateway_class() -> Value {
    serde_json::json!({
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "GatewayClass",
        "metadata": {"name": GATEWAY_CLASS},
        "spec": {"controllerName": CONTROLLER_NAME},
    })
}

/// A document's `kind`.
pub fn kind(doc: &Value) -> &str {
    doc.get("kind").and_then(Value::as_str).unwrap_or("")
}

/// A document's `metadata.name`.
pub fn name(doc: &Value) -> &str {
    doc.pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// A document's `metadata.namespace` (`default` when unset).
pub fn namespace(doc: &Value) -> &str {
    doc.pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or("default")
}

/// Writes documents as one multi-document YAML file, atomically (a temporary name the
/// file source ignores, then a rename), so Weir never reads half a file.
pub fn write(path: &Path, docs: &[Value]) -> anyhow::Result<()> {
    let mut text = String::new();
    for doc in docs {
        text.push_str("---\n");
        text.push_str(&serde_yaml_ng::to_string(doc)?);
    }
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}
