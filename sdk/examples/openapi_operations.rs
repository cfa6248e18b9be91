//! A function-discovery plugin (key `rest`) that lists the operations of an
//! OpenAPI document (JSON) as functions named by their `operationId`.
//!
//! Build it as a component: `cargo build --release --target wasm32-wasip2 -p weir-plugin-sdk --example openapi_operations`.

use serde_json::{Map, Value, json};
use weir_plugin_sdk::{DiscoveryInput, Function, FunctionDiscovery, PluginError};

const METHODS: &[&str] = &[
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// The `rest` discovery plugin.
pub struct OpenApiOperations;

impl FunctionDiscovery for OpenApiOperations {
    fn discover(input: DiscoveryInput) -> Result<Vec<Function>, PluginError> {
        let document: Value = serde_json::from_slice(&input.document.body).map_err(|err| {
            PluginError::bad_input(format!(
                "{} is not a JSON OpenAPI document: {err}",
                input.document.source
            ))
        })?;
        let empty = Map::new();
        let paths = document
            .get("paths")
            .and_then(Value::as_object)
            .unwrap_or(&empty);
        let mut functions = Vec::new();
        for (path, item) in paths {
            for method in METHODS {
                let Some(id) = item
                    .pointer(&format!("/{method}/operationId"))
                    .and_then(Value::as_str)
                else {
                    continue;
                };
                functions.push(Function {
                    name: id.to_owned(),
                    spec: json!({"method": method.to_uppercase(), "path": path}).to_string(),
                });
            }
        }
        Ok(functions)
    }
}

weir_plugin_sdk::export!(function_discovery: OpenApiOperations, name: "openapi-operations", keys: ["rest"], schema: "examples/openapi_operations.schema.json");

#[cfg(test)]
mod tests {
    use super::*;
    use weir_plugin_sdk::Document;

    fn mk_input(body: &str) -> DiscoveryInput {
        DiscoveryInput {
            key: "rest".into(),
            document: Document {
                source: "http://petstore/openapi.json".into(),
                content_type: "application/json".into(),
                body: body.as_bytes().to_vec(),
            },
            ..Default::default()
        }
    }

    #[test]
    fn operations_become_functions() {
        let body = r#"{"paths":{"/pets":{"get":{"operationId":"listPets"},"post":{"operationId":"addPet"}}}}"#;
        let names: Vec<_> = OpenApiOperations::discover(mk_input(body))
            .unwrap()
            .into_iter()
            .map(|f| f.name)
            .collect();
        assert_eq!(names, ["listPets", "addPet"]);
    }

    #[test]
    fn a_document_that_is_not_json_is_bad_input() {
        assert!(matches!(
            OpenApiOperations::discover(mk_input("openapi: 3.0.0")),
            Err(PluginError::BadInput(_))
        ));
    }
}
