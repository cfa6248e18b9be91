//! The debug views: `/debug/config` (what a Gateway's proxies are served) and
//! `/debug/status` (the status of every input object).

use serde_json::{Value, json};

use crate::envoy_json::{self, JsonStyle};
use crate::model::{Kind, ObjectKey};
use crate::translate::Statuses;
use crate::xds::{Resource, ResourceType, Snapshot};

/// Why `/debug/config` has no answer, as an HTTP status and a sentence.
#[derive(Debug, PartialEq, Eq)]
pub enum ConfigError {
    /// No `gateway=NS/NAME` query parameter, or a malformed one (400).
    BadRequest(String),
    /// No snapshot for that Gateway (404).
    UnknownGateway(String),
    /// A resource could not be rendered (500).
    Render(String),
}

/// The Gateway named by the query string `gateway=NAMESPACE/NAME`.
pub fn gateway_from_query(query: Option<&str>) -> Result<ObjectKey, ConfigError> {
    let value = query
        .unwrap_or_default()
        .split('&')
        .find_map(|pair| pair.strip_prefix("gateway="))
        .ok_or_else(|| {
            ConfigError::BadRequest("name the Gateway: /debug/config?gateway=NAMESPACE/NAME".into())
        })?;
    // `%2F` is how some clients send the slash.
    let value = value.replace("%2F", "/").replace("%2f", "/");
    match value.split_once('/') {
        Some((ns, name)) if !ns.is_empty() && !name.is_empty() && !name.contains('/') => {
            Ok(ObjectKey::namespaced(Kind::Gateway, ns, name))
        }
        _ => Err(ConfigError::BadRequest(format!(
            "gateway={value:?} is not NAMESPACE/NAME"
        ))),
    }
}

/// The message for a Gateway with no snapshot, listing those that have one.
pub fn unknown_gateway(gateway: &ObjectKey, known: &[ObjectKey]) -> ConfigError {
    let known: Vec<String> = known.iter().map(namespaced_name).collect();
    ConfigError::UnknownGateway(format!(
        "Gateway {} is not served (known Gateways: {})",
        namespaced_name(gateway),
        if known.is_empty() {
            "none".to_string()
        } else {
            known.join(", ")
        }
    ))
}

/// A snapshot as Envoy's `/config_dump` would print its resources (proto field names),
/// grouped as `weir translate` groups them, with every private key redacted.
pub fn render_config(gateway: &ObjectKey, snapshot: &Snapshot) -> Result<Value, ConfigError> {
    let resources = ResourceType::ALL
        .into_iter()
        .flat_map(|ty| snapshot.resources(ty).iter().map(move |r| (ty, r.as_ref())));
    render_resources(gateway, snapshot.version(), resources)
}

/// Renders `resources` (in type order) under their group names.
fn render_resources<'a>(
    gateway: &ObjectKey,
    version: &str,
    resources: impl Iterator<Item = (ResourceType, &'a Resource)>,
) -> Result<Value, ConfigError> {
    let mut out = serde_json::Map::new();
    out.insert("gateway".into(), json!(namespaced_name(gateway)));
    out.insert("version".into(), json!(version));
    for ty in ResourceType::ALL {
        out.insert(group_name(ty).into(), Value::Array(Vec::new()));
    }
    for (ty, resource) in resources {
        let mut value =
            envoy_json::any_to_json(resource.type_url(), resource.value(), JsonStyle::ConfigDump)
                .map_err(|e| ConfigError::Render(format!("{ty} {}: {e}", resource.name)))?;
        // Secrets, and TLS material inlined anywhere else, never leave the process.
        envoy_json::redact_secret(&mut value);
        if let Some(Value::Array(items)) = out.get_mut(group_name(ty)) {
            items.push(value);
        }
    }
    Ok(Value::Object(out))
}

/// Every object's status keyed `Kind/namespace/name`, as `weir translate` prints it.
pub fn render_status(statuses: &Statuses) -> Value {
    Value::Object(
        statuses
            .iter()
            .map(|(key, status)| (key.to_string(), (**status).clone()))
            .collect(),
    )
}

/// The key a type's resources are listed under (the same as `weir translate`).
fn group_name(ty: ResourceType) -> &'static str {
    match ty {
        ResourceType::Cluster => "clusters",
        ResourceType::Endpoint => "endpoints",
        ResourceType::Listener => "listeners",
        ResourceType::ScopedRoute => "scopedRoutes",
        ResourceType::Route => "routes",
        ResourceType::Secret => "secrets",
    }
}

/// `NAMESPACE/NAME`.
fn namespaced_name(key: &ObjectKey) -> String {
    format!(
        "{}/{}",
        key.namespace.as_deref().unwrap_or_default(),
        key.name
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use envoy_types::pb::envoy::config::core::v3::{DataSource, data_source};
    use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{
        Secret, TlsCertificate, secret,
    };

    #[test]
    fn the_gateway_comes_from_the_query() {
        assert_eq!(
            gateway_from_query(Some("gateway=default/gw")),
            Ok(ObjectKey::namespaced(Kind::Gateway, "default", "gw"))
        );
        assert_eq!(
            gateway_from_query(Some("x=1&gateway=infra%2Fedge")),
            Ok(ObjectKey::namespaced(Kind::Gateway, "infra", "edge"))
        );
        for bad in [
            None,
            Some("gateway=gw"),
            Some("gateway=a/b/c"),
            Some("g=a/b"),
        ] {
            assert!(
                matches!(gateway_from_query(bad), Err(ConfigError::BadRequest(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn secrets_are_rendered_with_the_private_key_redacted() {
        let inline = |s: &str| DataSource {
            specifier: Some(data_source::Specifier::InlineBytes(s.as_bytes().to_vec())),
            ..Default::default()
        };
        let secret = Secret {
            name: "secret_default_tls".into(),
            r#type: Some(secret::Type::TlsCertificate(TlsCertificate {
                certificate_chain: Some(inline("PUBLIC CHAIN")),
                private_key: Some(inline("TOP SECRET KEY")),
                ..Default::default()
            })),
        };
        let resource = Resource::new(
            secret.name.clone(),
            ResourceType::Secret.type_url(),
            prost::Message::encode_to_vec(&secret),
        );
        let gateway = ObjectKey::namespaced(Kind::Gateway, "default", "gw");
        let rendered = render_resources(
            &gateway,
            "v1",
            [(ResourceType::Secret, &resource)].into_iter(),
        )
        .unwrap();
        let text = rendered.to_string();
        assert_eq!(rendered["gateway"], "default/gw");
        let secret = &rendered["secrets"][0];
        assert_eq!(secret["name"], "secret_default_tls");
        assert_eq!(
            secret["tls_certificate"]["private_key"]["inline_bytes"],
            envoy_json::REDACTED
        );
        // The chain is public and stays (base64, as proto3 JSON prints bytes).
        assert!(text.contains("UFVCTElDIENIQUlO"), "{text}");
        assert!(!text.contains("VE9QIFNFQ1JFVCBLRVk"), "{text}");
        assert_eq!(rendered["listeners"], json!([]));
    }

    #[test]
    fn an_unknown_gateway_lists_the_known_ones() {
        let gw = |n: &str| ObjectKey::namespaced(Kind::Gateway, "default", n);
        assert_eq!(
            unknown_gateway(&gw("nope"), &[gw("a"), gw("b")]),
            ConfigError::UnknownGateway(
                "Gateway default/nope is not served (known Gateways: default/a, default/b)".into()
            )
        );
    }
}
