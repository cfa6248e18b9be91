//! The `kube` type block: serde shape and validation.

use std::collections::BTreeMap;

use serde::Deserialize;
use weir_plugin_sdk::{ConfigBlock, FieldError};

/// The `kube` type block of an Upstream (K8sGateway's `kubernetes` UpstreamSpec).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KubeConfig {
    /// Name of the Service.
    pub service_name: String,
    /// Namespace of the Service; unset means the Upstream's own namespace (the host
    /// resolves it).
    #[serde(default)]
    pub service_namespace: Option<String>,
    /// The Service port, 1..=65535. Read as a wide integer so out-of-range values get
    /// our message rather than serde's.
    pub service_port: i64,
    /// Pod labels an endpoint must carry; the host applies it when resolving.
    #[serde(default)]
    pub selector: BTreeMap<String, String>,
    /// Subset load balancing over pod labels.
    #[serde(default)]
    pub subset_spec: Option<SubsetSpec>,
    /// The API the Service offers (REST or gRPC), kept as is for function plugins.
    #[serde(default)]
    pub service_spec: Option<serde_json::Value>,
}

/// Envoy subset load balancing for a `kube` Upstream.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SubsetSpec {
    /// One Envoy subset selector each; at least one.
    pub selectors: Vec<SubsetSelector>,
}

/// Label keys whose values together define a subset.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SubsetSelector {
    /// Pod label keys; at least one, no repeats.
    pub keys: Vec<String>,
}

// === impl KubeConfig ===

impl ConfigBlock for KubeConfig {
    /// Every problem in an already parsed block, with field paths.
    fn problems(&self) -> Vec<FieldError> {
        let mut problems = Vec::new();
        if self.service_name.is_empty() {
            problems.push(FieldError::new("serviceName", "must not be empty"));
        } else if !is_dns1035_label(&self.service_name) {
            problems.push(FieldError::new(
                "serviceName",
                format!(
                    "{:?} is not a valid Service name: use at most 63 lowercase letters, \
                     digits and '-', starting with a letter and ending with a letter or digit",
                    self.service_name
                ),
            ));
        }
        if let Some(namespace) = &self.service_namespace
            && !is_dns1123_label(namespace)
        {
            problems.push(FieldError::new(
                "serviceNamespace",
                format!(
                    "{namespace:?} is not a valid namespace: use at most 63 lowercase \
                     letters, digits and '-', starting and ending with a letter or digit"
                ),
            ));
        }
        if !(1..=65535).contains(&self.service_port) {
            problems.push(FieldError::new(
                "servicePort",
                format!("must be between 1 and 65535, got {}", self.service_port),
            ));
        }
        for (key, value) in &self.selector {
            let at = format!("selector[{key:?}]");
            if let Err(why) = check_label_key(key) {
                problems.push(FieldError::new(
                    &at,
                    format!("{key:?} is not a valid label key: {why}"),
                ));
            }
            if let Err(why) = check_label_value(value) {
                problems.push(FieldError::new(
                    &at,
                    format!("{value:?} is not a valid label value: {why}"),
                ));
            }
        }
        if let Some(subsets) = &self.subset_spec {
            problems.extend(
                subsets
                    .problems()
                    .into_iter()
                    .map(|p| p.under("subsetSpec")),
            );
        }
        if let Some(spec) = &self.service_spec
            && !spec.is_object()
        {
            problems.push(FieldError::new(
                "serviceSpec",
                "must be an object such as {\"rest\": {...}} or {\"grpc\": {...}}",
            ));
        }
        problems
    }
}

impl KubeConfig {
    /// The Service port, once validated.
    pub fn port(&self) -> u16 {
        u16::try_from(self.service_port).unwrap_or_default()
    }

    /// Every label key some subset selector uses, in order: the endpoint labels the
    /// subset load balancer needs to see.
    pub fn subset_keys(&self) -> Vec<&str> {
        let mut keys: Vec<&str> = self
            .subset_spec
            .iter()
            .flat_map(|spec| &spec.selectors)
            .flat_map(|selector| &selector.keys)
            .map(String::as_str)
            .collect();
        keys.sort_unstable();
        keys.dedup();
        keys
    }
}

// === impl SubsetSpec ===

impl SubsetSpec {
    fn problems(&self) -> Vec<FieldError> {
        let mut problems = Vec::new();
        if self.selectors.is_empty() {
            problems.push(FieldError::new(
                "selectors",
                "must list at least one selector; remove subsetSpec to turn subsets off",
            ));
        }
        for (i, selector) in self.selectors.iter().enumerate() {
            let at = format!("selectors[{i}].keys");
            if selector.keys.is_empty() {
                problems.push(FieldError::new(&at, "must list at least one label key"));
            }
            for (j, key) in selector.keys.iter().enumerate() {
                if let Err(why) = check_label_key(key) {
                    problems.push(FieldError::new(
                        format!("{at}[{j}]"),
                        format!("{key:?} is not a valid label key: {why}"),
                    ));
                } else if selector.keys[..j].contains(key) {
                    problems.push(FieldError::new(
                        format!("{at}[{j}]"),
                        format!("{key:?} is listed twice"),
                    ));
                }
            }
        }
        problems
    }
}

// === Kubernetes name syntax ===

/// A DNS-1035 label (Service names): `[a-z]([-a-z0-9]*[a-z0-9])?`, at most 63 characters.
fn is_dns1035_label(name: &str) -> bool {
    name.starts_with(|c: char| c.is_ascii_lowercase()) && is_dns1123_label(name)
}

/// A DNS-1123 label (namespaces): `[a-z0-9]([-a-z0-9]*[a-z0-9])?`, at most 63 characters.
fn is_dns1123_label(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && !name.starts_with('-')
        && !name.ends_with('-')
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// A DNS-1123 subdomain (label key prefixes): dot-separated DNS-1123 labels, at most
/// 253 characters.
fn is_dns1123_subdomain(name: &str) -> bool {
    !name.is_empty() && name.len() <= 253 && name.split('.').all(is_dns1123_label)
}

/// The name part of a label key, and a non-empty label value: at most 63 letters,
/// digits, `-`, `_` and `.`, starting and ending with a letter or digit.
fn is_label_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// Checks a label key: `[prefix/]name`, with a DNS subdomain as the prefix.
fn check_label_key(key: &str) -> Result<(), &'static str> {
    let (prefix, name) = match key.split_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    if let Some(prefix) = prefix
        && !is_dns1123_subdomain(prefix)
    {
        return Err("the prefix before '/' must be a DNS subdomain such as app.kubernetes.io");
    }
    if !is_label_name(name) {
        return Err(
            "the name must be at most 63 letters, digits, '-', '_' or '.', \
             starting and ending with a letter or digit",
        );
    }
    Ok(())
}

/// Checks a label value: empty, or a label name.
fn check_label_value(value: &str) -> Result<(), &'static str> {
    if value.is_empty() || is_label_name(value) {
        Ok(())
    } else {
        Err(
            "use at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit",
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use weir_plugin_sdk::PluginError;

    fn problems(json: &str) -> Vec<FieldError> {
        match KubeConfig::from_json(json) {
            Err(PluginError::InvalidConfig(problems)) => problems,
            other => panic!("expected invalid config, got {other:?}"),
        }
    }

    fn paths(json: &str) -> Vec<String> {
        problems(json).into_iter().map(|p| p.path).collect()
    }

    #[test]
    fn minimal_config_is_valid() {
        let config =
            KubeConfig::from_json(r#"{"serviceName":"petstore","servicePort":8080}"#).unwrap();
        assert_eq!(config.service_name, "petstore");
        assert_eq!(config.port(), 8080);
        assert_eq!(config.service_namespace, None);
        assert!(config.selector.is_empty());
    }

    #[test]
    fn full_k8sgateway_block_is_valid() {
        let config = KubeConfig::from_json(
            r#"{"serviceName":"petstore","serviceNamespace":"shop","servicePort":443,
                "selector":{"app":"petstore","app.kubernetes.io/version":"v1.2"},
                "subsetSpec":{"selectors":[{"keys":["version"]},{"keys":["version","zone"]}]},
                "serviceSpec":{"rest":{"transformations":{}}}}"#,
        )
        .unwrap();
        assert_eq!(config.service_namespace.as_deref(), Some("shop"));
        assert_eq!(config.selector["app.kubernetes.io/version"], "v1.2");
        assert_eq!(config.subset_keys(), ["version", "zone"]);
    }

    #[test]
    fn missing_service_name_is_named() {
        let problems = problems(r#"{"servicePort":80}"#);
        assert_eq!(problems[0].path, "");
        assert_eq!(problems[0].message, "missing field `serviceName`");
    }

    #[test]
    fn missing_service_port_is_named() {
        let problems = problems(r#"{"serviceName":"a"}"#);
        assert_eq!(problems[0].message, "missing field `servicePort`");
    }

    #[test]
    fn empty_service_name_is_rejected() {
        let problems = problems(r#"{"serviceName":"","servicePort":80}"#);
        assert_eq!(
            problems,
            [FieldError::new("serviceName", "must not be empty")]
        );
    }

    #[test]
    fn service_name_must_be_a_dns_1035_label() {
        for name in [
            "Petstore",
            "1petstore",
            "pet_store",
            "petstore-",
            &"a".repeat(64),
        ] {
            let json = format!(r#"{{"serviceName":"{name}","servicePort":80}}"#);
            assert_eq!(paths(&json), ["serviceName"], "{name}");
        }
    }

    #[test]
    fn service_port_out_of_range_is_rejected() {
        for port in [0, -1, 65536] {
            let json = format!(r#"{{"serviceName":"a","servicePort":{port}}}"#);
            let problems = problems(&json);
            assert_eq!(problems.len(), 1);
            assert_eq!(problems[0].path, "servicePort");
            assert_eq!(
                problems[0].message,
                format!("must be between 1 and 65535, got {port}")
            );
        }
    }

    #[test]
    fn service_port_of_the_wrong_type_is_reported_at_its_field() {
        let problems = problems(r#"{"serviceName":"a","servicePort":"http"}"#);
        assert_eq!(problems[0].path, "servicePort");
    }

    #[test]
    fn unknown_field_is_rejected_by_name() {
        let problems = problems(r#"{"serviceName":"a","servicePort":80,"servicePrt":81}"#);
        assert!(
            problems[0].message.contains("unknown field `servicePrt`"),
            "{:?}",
            problems[0]
        );
    }

    #[test]
    fn unknown_field_in_a_subset_selector_is_rejected_at_its_path() {
        let problems = problems(
            r#"{"serviceName":"a","servicePort":80,"subsetSpec":{"selectors":[{"keys":["v"],"singleHost":true}]}}"#,
        );
        assert_eq!(problems[0].path, "subsetSpec.selectors[0].singleHost");
    }

    #[test]
    fn bad_namespace_is_rejected() {
        assert_eq!(
            paths(r#"{"serviceName":"a","serviceNamespace":"Shop","servicePort":80}"#),
            ["serviceNamespace"]
        );
    }

    #[test]
    fn bad_selector_labels_are_reported_per_key() {
        let problems = problems(
            r#"{"serviceName":"a","servicePort":80,"selector":{"-app":"x","ok":"bad value","Bad_Prefix/x":"y"}}"#,
        );
        let paths: Vec<_> = problems.iter().map(|p| p.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                r#"selector["-app"]"#,
                r#"selector["Bad_Prefix/x"]"#,
                r#"selector["ok"]"#
            ]
        );
        assert!(problems[2].message.contains("not a valid label value"));
    }

    #[test]
    fn empty_label_value_is_allowed() {
        KubeConfig::from_json(r#"{"serviceName":"a","servicePort":80,"selector":{"canary":""}}"#)
            .unwrap();
    }

    #[test]
    fn subset_spec_needs_selectors_with_keys() {
        assert_eq!(
            paths(r#"{"serviceName":"a","servicePort":80,"subsetSpec":{"selectors":[]}}"#),
            ["subsetSpec.selectors"]
        );
        assert_eq!(
            paths(
                r#"{"serviceName":"a","servicePort":80,"subsetSpec":{"selectors":[{"keys":["v"]},{"keys":[]}]}}"#
            ),
            ["subsetSpec.selectors[1].keys"]
        );
        assert_eq!(
            paths(
                r#"{"serviceName":"a","servicePort":80,"subsetSpec":{"selectors":[{"keys":["v","v","bad key"]}]}}"#
            ),
            [
                "subsetSpec.selectors[0].keys[1]",
                "subsetSpec.selectors[0].keys[2]"
            ]
        );
    }

    #[test]
    fn service_spec_must_be_an_object() {
        assert_eq!(
            paths(r#"{"serviceName":"a","servicePort":80,"serviceSpec":"rest"}"#),
            ["serviceSpec"]
        );
    }

    #[test]
    fn every_bad_field_is_reported_at_once() {
        assert_eq!(
            paths(r#"{"serviceName":"A","serviceNamespace":"-","servicePort":0}"#),
            ["serviceName", "serviceNamespace", "servicePort"]
        );
    }
}
