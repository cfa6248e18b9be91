//! The option kinds: `RouteOption`, `VirtualHostOption`, `ListenerOption` and
//! `HttpListenerOption`.
//!
//! All four have the same shape: `targetRefs` naming what they attach to, and an `options`
//! block whose keys (`cors`, `faults`, `retries`, …) belong to the filter plugins that
//! claim them, so each option stays JSON here. K8sGateway also accepts a single `targetRef`;
//! so do we. [`Spec`] is the validated form: targets normalised (group and namespace
//! filled in) and checked against what the kind may attach to.

use std::collections::BTreeMap;

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::kind::{GATEWAY_API_GROUP, Kind};
use super::status::WeirStatus;
use super::validation::FieldErrors;

/// A reference to the object an option attaches to.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TargetRef {
    /// API group of the target; `gateway.networking.k8s.io` when empty.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub group: String,
    /// Kind of the target (`HTTPRoute` for RouteOption, `Gateway` for the others).
    pub kind: String,
    /// Name of the target.
    pub name: String,
    /// Namespace of the target; the option's own when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// A listener of the target Gateway, by name (not for RouteOption).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub section_name: Option<String>,
}

/// Generates the option kinds: each spec struct (the resource comes from kube's derive),
/// its `validate` and its conversion to [`Spec`].
macro_rules! option_kinds {
    ($($(#[$doc:meta])* $spec:ident => $root:ident, $kind:literal, $plural:literal, $rootdoc:literal;)*) => {
        $(
            $(#[$doc])*
            #[derive(CustomResource, Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
            #[kube(
                group = "gateway.weir.dev",
                version = "v1alpha1",
                kind = $kind,
                plural = $plural,
                namespaced,
                category = "weir",
                doc = $rootdoc,
                status = "WeirStatus",
                derive = "PartialEq",
                derive = "Default"
            )]
            #[serde(rename_all = "camelCase", deny_unknown_fields)]
            pub struct $spec {
                /// The objects these options attach to.
                #[serde(default, skip_serializing_if = "Vec::is_empty")]
                pub target_refs: Vec<TargetRef>,
                /// A single target (K8sGateway's older form); use `targetRefs` or this, not both.
                #[serde(default, skip_serializing_if = "Option::is_none")]
                pub target_ref: Option<TargetRef>,
                /// The options by key; each key belongs to the plugin that claims it.
                #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
                #[schemars(schema_with = "any_object")]
                pub options: BTreeMap<String, serde_json::Value>,
            }

            impl $spec {
                /// Checks targets and options; `namespace` is the option object's own.
                pub fn validate(&self, namespace: &str) -> Result<Spec, FieldErrors> {
                    validate(
                        Kind::$root,
                        namespace,
                        &self.target_refs,
                        self.target_ref.as_ref(),
                        &self.options,
                    )
                }
            }

            impl TryFrom<&$root> for Spec {
                type Error = FieldErrors;

                fn try_from(o: &$root) -> Result<Self, Self::Error> {
                    let ns = o.metadata.namespace.as_deref().unwrap_or("default");
                    o.spec.validate(ns)
                }
            }
        )*
    };
}

option_kinds! {
    /// Options for the routes of an HTTPRoute (K8sGateway's RouteOption).
    RouteOptionSpec => RouteOption, "RouteOption", "routeoptions",
        "A RouteOption: options for the routes of an HTTPRoute, each key handled by its plugin";
    /// Options for the virtual hosts of a Gateway or one of its listeners (K8sGateway's
    /// VirtualHostOption).
    VirtualHostOptionSpec => VirtualHostOption, "VirtualHostOption", "virtualhostoptions",
        "A VirtualHostOption: options for the virtual hosts of a Gateway or listener, each key handled by its plugin";
    /// Options for the listeners of a Gateway (K8sGateway's ListenerOption).
    ListenerOptionSpec => ListenerOption, "ListenerOption", "listeneroptions",
        "A ListenerOption: options for the listeners of a Gateway, each key handled by its plugin";
    /// Options for the HTTP connection managers of a Gateway's listeners (K8sGateway's
    /// HttpListenerOption).
    HttpListenerOptionSpec => HttpListenerOption, "HttpListenerOption", "httplisteneroptions",
        "An HttpListenerOption: options for the HTTP connection managers of a Gateway's listeners, each key handled by its plugin";
}

/// `options` holds arbitrary JSON per key: a structural schema that keeps every field.
fn any_object(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": true,
        "description": "Options by key; each key's shape is defined by the plugin that claims it."
    })
}

/// A normalised target: group and namespace filled in.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct PolicyTarget {
    /// API group (`gateway.networking.k8s.io`).
    pub group: String,
    /// Kind (`HTTPRoute` or `Gateway`).
    pub kind: String,
    /// Name.
    pub name: String,
    /// Namespace (the option's own unless the reference said otherwise).
    pub namespace: String,
    /// Listener name, for Gateway targets.
    pub section_name: Option<String>,
}

/// A validated option object of any of the four kinds.
#[derive(Clone, Debug, PartialEq)]
pub struct Spec {
    /// Which option kind this is.
    pub kind: Kind,
    /// What the options attach to; never empty.
    pub targets: Vec<PolicyTarget>,
    /// The options by key, for the plugins that claim them.
    pub options: BTreeMap<String, serde_json::Value>,
}

fn validate(
    kind: Kind,
    namespace: &str,
    target_refs: &[TargetRef],
    target_ref: Option<&TargetRef>,
    options: &BTreeMap<String, serde_json::Value>,
) -> Result<Spec, FieldErrors> {
    let mut errors = FieldErrors::new();
    let refs: Vec<(String, &TargetRef)> = match (target_refs, target_ref) {
        // A RouteOption may have no targets: HTTPRoute rules attach it by ExtensionRef.
        ([], None) if kind == Kind::RouteOption => Vec::new(),
        ([], None) => {
            errors.push("spec.targetRefs", "must name at least one target");
            Vec::new()
        }
        ([_, ..], Some(_)) => {
            errors.push(
                "spec.targetRef",
                "set `targetRefs` or `targetRef`, not both",
            );
            Vec::new()
        }
        ([], Some(r)) => vec![("spec.targetRef".to_string(), r)],
        (refs, None) => refs
            .iter()
            .enumerate()
            .map(|(i, r)| (format!("spec.targetRefs[{i}]"), r))
            .collect(),
    };
    let allowed_kind = if kind == Kind::RouteOption {
        "HTTPRoute"
    } else {
        "Gateway"
    };
    let mut targets = Vec::with_capacity(refs.len());
    for (path, r) in refs {
        let group = if r.group.is_empty() {
            GATEWAY_API_GROUP
        } else {
            r.group.as_str()
        };
        if group != GATEWAY_API_GROUP || r.kind != allowed_kind {
            errors.push(
                path.clone(),
                format!(
                    "a {kind} attaches to a {GATEWAY_API_GROUP} {allowed_kind}, not {group} {}",
                    r.kind
                ),
            );
        }
        if r.name.is_empty() {
            errors.push(format!("{path}.name"), "must not be empty");
        }
        if kind == Kind::RouteOption && r.section_name.is_some() {
            errors.push(
                format!("{path}.sectionName"),
                "is not supported for a RouteOption (it attaches to a whole HTTPRoute)",
            );
        }
        targets.push(PolicyTarget {
            group: group.to_string(),
            kind: r.kind.clone(),
            name: r.name.clone(),
            namespace: r.namespace.clone().unwrap_or_else(|| namespace.to_string()),
            section_name: r.section_name.clone(),
        });
    }
    for key in options.keys() {
        if key.is_empty() {
            errors.push("spec.options", "option keys must not be empty");
        }
    }
    errors.into_result(Spec {
        kind,
        targets,
        options: options.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mk_route_option(spec_yaml: &str) -> RouteOption {
        let yaml = format!(
            "apiVersion: gateway.solo.io/v1\nkind: RouteOption\nmetadata:\n  name: o\n  namespace: apps\nspec:\n{}",
            spec_yaml
                .lines()
                .map(|l| format!("  {l}\n"))
                .collect::<String>()
        );
        serde_yaml_ng::from_str(&yaml).expect("test RouteOption parses")
    }

    #[test]
    fn route_option_targets_are_normalised() {
        let o = mk_route_option(
            "targetRefs:\n- group: gateway.networking.k8s.io\n  kind: HTTPRoute\n  name: r\n\
             options:\n  faults:\n    abort:\n      percentage: 50\n      httpStatus: 503\n",
        );
        let spec = Spec::try_from(&o).unwrap();
        assert_eq!(spec.kind, Kind::RouteOption);
        assert_eq!(spec.targets[0].namespace, "apps");
        assert_eq!(spec.targets[0].group, GATEWAY_API_GROUP);
        assert_eq!(spec.options["faults"]["abort"]["httpStatus"], 503);
    }

    #[test]
    fn singular_target_ref_is_accepted() {
        let o = mk_route_option("targetRef:\n  kind: HTTPRoute\n  name: r\n");
        let spec = Spec::try_from(&o).unwrap();
        assert_eq!(spec.targets.len(), 1);
        assert_eq!(spec.targets[0].group, GATEWAY_API_GROUP);
    }

    #[test]
    fn both_target_forms_at_once_are_rejected() {
        let o = mk_route_option(
            "targetRef:\n  kind: HTTPRoute\n  name: r\ntargetRefs:\n- kind: HTTPRoute\n  name: s\n",
        );
        let errors = Spec::try_from(&o).unwrap_err();
        assert_eq!(errors.errors()[0].path, "spec.targetRef");
    }

    #[test]
    fn virtual_host_option_without_targets_is_rejected() {
        let o: VirtualHostOption = serde_yaml_ng::from_str(
            "apiVersion: gateway.solo.io/v1\nkind: VirtualHostOption\nmetadata: {name: o, namespace: apps}\nspec:\n  options: {}\n",
        )
        .unwrap();
        let errors = Spec::try_from(&o).unwrap_err();
        assert_eq!(errors.errors()[0].path, "spec.targetRefs");
    }

    #[test]
    fn route_option_without_targets_is_accepted_for_extension_refs() {
        let o = mk_route_option("options: {faults: {}}\n");
        let spec = Spec::try_from(&o).expect("rules attach it by ExtensionRef");
        assert!(spec.targets.is_empty());
    }

    #[test]
    fn route_option_cannot_target_a_gateway() {
        let o = mk_route_option("targetRefs:\n- kind: Gateway\n  name: gw\n  sectionName: http\n");
        let errors = Spec::try_from(&o).unwrap_err();
        let paths: Vec<_> = errors.errors().iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            paths,
            ["spec.targetRefs[0]", "spec.targetRefs[0].sectionName"]
        );
    }

    #[test]
    fn listener_options_target_gateway_listeners() {
        let yaml = "apiVersion: gateway.weir.dev/v1alpha1\nkind: HttpListenerOption\nmetadata:\n  name: o\n  namespace: gw\nspec:\n  targetRefs:\n  - kind: Gateway\n    name: gw\n    sectionName: http\n  options:\n    httpConnectionManagerSettings:\n      useRemoteAddress: true\n";
        let o: HttpListenerOption = serde_yaml_ng::from_str(yaml).unwrap();
        let spec = Spec::try_from(&o).unwrap();
        assert_eq!(spec.kind, Kind::HttpListenerOption);
        assert_eq!(spec.targets[0].section_name.as_deref(), Some("http"));
    }

    #[test]
    fn unknown_spec_field_is_a_parse_error_naming_it() {
        let yaml = "apiVersion: gateway.weir.dev/v1alpha1\nkind: VirtualHostOption\nmetadata:\n  name: o\nspec:\n  targetRefs: []\n  option: {}\n";
        let err = serde_yaml_ng::from_str::<VirtualHostOption>(yaml).unwrap_err();
        assert!(err.to_string().contains("unknown field `option`"), "{err}");
    }
}
