//! `weir crds`: the CustomResourceDefinitions of Weir's own kinds, generated from the Rust
//! types so the schema the API server enforces is the one we parse.
//!
//! Only the `gateway.weir.dev` CRDs are rendered; K8sGateway's own CRDs are installed by
//! K8sGateway, and we read its objects without owning their definitions.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

use super::direct_response::DirectResponse;
use super::options::{HttpListenerOption, ListenerOption, RouteOption, VirtualHostOption};
use super::upstream::Upstream;

/// The CRDs of every Weir kind, in a fixed order (the order of [`super::Kind::WEIR`]).
pub fn all() -> Vec<CustomResourceDefinition> {
    vec![
        Upstream::crd(),
        RouteOption::crd(),
        VirtualHostOption::crd(),
        ListenerOption::crd(),
        HttpListenerOption::crd(),
        DirectResponse::crd(),
    ]
}

/// Every Weir CRD as one multi-document YAML stream; the same bytes on every run.
pub fn render() -> String {
    let mut out = String::new();
    for crd in all() {
        out.push_str("---\n");
        // Serialising a CRD built from our own types cannot fail: every map key is a string.
        match serde_yaml_ng::to_string(&crd) {
            Ok(doc) => out.push_str(&doc),
            Err(e) => out.push_str(&format!("# cannot render {:?}: {e}\n", crd.metadata.name)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::kind::{Kind, WEIR_GROUP};
    use serde::Deserialize;

    fn parsed() -> Vec<CustomResourceDefinition> {
        let text = render();
        serde_yaml_ng::Deserializer::from_str(&text)
            .map(|doc| CustomResourceDefinition::deserialize(doc).expect("CRD parses back"))
            .collect()
    }

    #[test]
    fn crds_parse_back_and_cover_every_weir_kind() {
        let crds = parsed();
        let kinds: Vec<&str> = crds.iter().map(|c| c.spec.names.kind.as_str()).collect();
        let expected: Vec<&str> = Kind::WEIR.iter().map(|k| k.as_str()).collect();
        assert_eq!(kinds, expected);
        for crd in &crds {
            assert_eq!(crd.spec.group, WEIR_GROUP);
            assert_eq!(crd.spec.scope, "Namespaced");
            assert_eq!(crd.spec.versions.len(), 1);
            let v = &crd.spec.versions[0];
            assert_eq!(v.name, "v1alpha1");
            assert!(v.served && v.storage);
            assert!(
                v.schema
                    .as_ref()
                    .and_then(|s| s.open_api_v3_schema.as_ref())
                    .is_some()
            );
        }
    }

    #[test]
    fn crds_render_identically_every_time() {
        assert_eq!(render(), render());
    }

    /// A CRD schema must be structural: no object may have both `properties` and
    /// `additionalProperties`, and free-form JSON must say `x-kubernetes-preserve-unknown-fields`.
    #[test]
    fn crd_schemas_are_structural() {
        fn walk(path: &str, v: &serde_json::Value, problems: &mut Vec<String>) {
            let Some(obj) = v.as_object() else { return };
            if obj.contains_key("properties") && obj.contains_key("additionalProperties") {
                problems.push(format!("{path}: properties and additionalProperties"));
            }
            for key in ["anyOf", "oneOf", "allOf"] {
                if let Some(items) = obj.get(key).and_then(|i| i.as_array()) {
                    for (i, item) in items.iter().enumerate() {
                        if item.get("type").is_some() && key != "allOf" {
                            problems.push(format!("{path}.{key}[{i}]: type inside {key}"));
                        }
                    }
                }
            }
            for (k, child) in obj {
                walk(&format!("{path}.{k}"), child, problems);
            }
        }
        let mut problems = Vec::new();
        for crd in all() {
            let schema = serde_json::to_value(&crd.spec.versions[0].schema).unwrap();
            walk(&crd.spec.names.kind, &schema, &mut problems);
        }
        assert!(problems.is_empty(), "{problems:#?}");
    }

    #[test]
    fn upstream_crd_keeps_type_blocks_and_options_keep_every_key() {
        let up = serde_json::to_value(Upstream::crd()).unwrap();
        let spec = &up["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"];
        assert_eq!(
            spec["x-kubernetes-preserve-unknown-fields"], true,
            "{spec:#}"
        );
        assert!(spec["properties"]["connectionConfig"].is_object());
        let ro = serde_json::to_value(RouteOption::crd()).unwrap();
        let options = &ro["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
            ["properties"]["options"];
        assert_eq!(
            options["x-kubernetes-preserve-unknown-fields"], true,
            "{options:#}"
        );
    }
}
