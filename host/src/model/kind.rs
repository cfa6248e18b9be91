//! The kinds Weir reads, the API groups they come from, and the K8sGateway aliases.
//!
//! Each [`Kind`] lists the `apiVersion`s it is read from. Weir's own kinds live in
//! [`WEIR_GROUP`]; manifests written for K8sGateway (Gloo Gateway) use the same spec
//! shapes under `gloo.solo.io/v1` (Upstream), `gateway.solo.io/v1` (the option kinds) and
//! `gateway.gloo.solo.io/v1alpha1` (DirectResponse), and are read as the same kinds.
//! [`weir_ref_kind`] answers the same question for references inside HTTPRoutes.

use std::fmt;

/// The API group of Weir's own kinds.
pub const WEIR_GROUP: &str = "gateway.weir.dev";
/// The API version of Weir's own kinds.
pub const WEIR_VERSION: &str = "v1alpha1";
/// The Kubernetes Gateway API group.
pub const GATEWAY_API_GROUP: &str = "gateway.networking.k8s.io";
/// K8sGateway's group for Upstream (`gloo.solo.io/v1`).
pub const GLOO_GROUP: &str = "gloo.solo.io";
/// K8sGateway's group for RouteOption, VirtualHostOption, ListenerOption and HttpListenerOption.
pub const GLOO_GATEWAY_GROUP: &str = "gateway.solo.io";
/// Gloo Gateway's group for DirectResponse (`gateway.gloo.solo.io/v1alpha1`).
pub const GLOO_GATEWAY_ALPHA_GROUP: &str = "gateway.gloo.solo.io";

/// Every kind of object the translator reads.
///
/// The order of the variants is the iteration order of the store.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// `gateway.networking.k8s.io` GatewayClass (cluster-scoped).
    GatewayClass,
    /// `gateway.networking.k8s.io` Gateway.
    Gateway,
    /// `gateway.networking.k8s.io` HTTPRoute.
    HttpRoute,
    /// `gateway.networking.k8s.io` ReferenceGrant.
    ReferenceGrant,
    /// Weir (or `gloo.solo.io`) Upstream.
    Upstream,
    /// Weir (or `gateway.solo.io`) RouteOption.
    RouteOption,
    /// Weir (or `gateway.solo.io`) VirtualHostOption.
    VirtualHostOption,
    /// Weir (or `gateway.solo.io`) ListenerOption.
    ListenerOption,
    /// Weir (or `gateway.solo.io`) HttpListenerOption.
    HttpListenerOption,
    /// Weir (or `gateway.gloo.solo.io`) DirectResponse.
    DirectResponse,
    /// Core Namespace (cluster-scoped).
    Namespace,
    /// Core Service.
    Service,
    /// `discovery.k8s.io` EndpointSlice.
    EndpointSlice,
    /// Core Secret.
    Secret,
}

/// Why an `apiVersion` + `kind` pair does not name a kind Weir reads.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TypeMetaError {
    /// Weir does not read this kind at all; callers report it and move on.
    #[error("{api_version} {kind} is not a kind Weir reads; ignored")]
    UnknownKind {
        /// The `apiVersion` as written.
        api_version: String,
        /// The `kind` as written.
        kind: String,
    },
    /// Weir reads this kind, but not from this `apiVersion`.
    #[error("{kind} is read from apiVersion {}, not {api_version}", supported.join(" or "))]
    UnsupportedVersion {
        /// The kind that was recognised.
        kind: Kind,
        /// The `apiVersion` as written.
        api_version: String,
        /// The `apiVersion`s this kind is read from.
        supported: &'static [&'static str],
    },
}

impl Kind {
    /// Every kind, in store order.
    pub const ALL: [Kind; 14] = [
        Kind::GatewayClass,
        Kind::Gateway,
        Kind::HttpRoute,
        Kind::ReferenceGrant,
        Kind::Upstream,
        Kind::RouteOption,
        Kind::VirtualHostOption,
        Kind::ListenerOption,
        Kind::HttpListenerOption,
        Kind::DirectResponse,
        Kind::Namespace,
        Kind::Service,
        Kind::EndpointSlice,
        Kind::Secret,
    ];

    /// Weir's own kinds, which have CRDs in [`WEIR_GROUP`].
    pub const WEIR: [Kind; 6] = [
        Kind::Upstream,
        Kind::RouteOption,
        Kind::VirtualHostOption,
        Kind::ListenerOption,
        Kind::HttpListenerOption,
        Kind::DirectResponse,
    ];

    /// The Kubernetes `kind` string, e.g. `HTTPRoute`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Kind::GatewayClass => "GatewayClass",
            Kind::Gateway => "Gateway",
            Kind::HttpRoute => "HTTPRoute",
            Kind::ReferenceGrant => "ReferenceGrant",
            Kind::Upstream => "Upstream",
            Kind::RouteOption => "RouteOption",
            Kind::VirtualHostOption => "VirtualHostOption",
            Kind::ListenerOption => "ListenerOption",
            Kind::HttpListenerOption => "HttpListenerOption",
            Kind::DirectResponse => "DirectResponse",
            Kind::Namespace => "Namespace",
            Kind::Service => "Service",
            Kind::EndpointSlice => "EndpointSlice",
            Kind::Secret => "Secret",
        }
    }

    /// Whether objects of this kind live in a namespace.
    pub const fn is_namespaced(self) -> bool {
        !matches!(self, Kind::GatewayClass | Kind::Namespace)
    }

    /// Whether this is one of Weir's own kinds (a CRD of [`WEIR_GROUP`] or its K8sGateway alias).
    pub const fn is_weir(self) -> bool {
        matches!(
            self,
            Kind::Upstream
                | Kind::RouteOption
                | Kind::VirtualHostOption
                | Kind::ListenerOption
                | Kind::HttpListenerOption
                | Kind::DirectResponse
        )
    }

    /// The `apiVersion`s this kind is read from; the first is the one Weir writes.
    pub const fn api_versions(self) -> &'static [&'static str] {
        match self {
            Kind::GatewayClass | Kind::Gateway | Kind::HttpRoute => &[
                "gateway.networking.k8s.io/v1",
                "gateway.networking.k8s.io/v1beta1",
            ],
            Kind::ReferenceGrant => &[
                "gateway.networking.k8s.io/v1",
                "gateway.networking.k8s.io/v1beta1",
                "gateway.networking.k8s.io/v1alpha2",
            ],
            Kind::Upstream => &["gateway.weir.dev/v1alpha1", "gloo.solo.io/v1"],
            Kind::RouteOption
            | Kind::VirtualHostOption
            | Kind::ListenerOption
            | Kind::HttpListenerOption => &["gateway.weir.dev/v1alpha1", "gateway.solo.io/v1"],
            Kind::DirectResponse => &["gateway.weir.dev/v1alpha1", "gateway.gloo.solo.io/v1alpha1"],
            Kind::Namespace | Kind::Service | Kind::Secret => &["v1"],
            Kind::EndpointSlice => &["discovery.k8s.io/v1"],
        }
    }

    /// The kind a manifest's `apiVersion` and `kind` name.
    ///
    /// A kind Weir does not read at all is [`TypeMetaError::UnknownKind`] (report it and move
    /// on); a kind it reads under an unexpected version is [`TypeMetaError::UnsupportedVersion`].
    pub fn from_type_meta(api_version: &str, kind: &str) -> Result<Kind, TypeMetaError> {
        let group = api_version.rsplit_once('/').map_or("", |(g, _)| g);
        let found = Kind::ALL.into_iter().find(|k| {
            k.as_str() == kind
                && k.api_versions()
                    .iter()
                    .any(|v| v.rsplit_once('/').map_or("", |(g, _)| g) == group)
        });
        match found {
            Some(k) if k.api_versions().contains(&api_version) => Ok(k),
            Some(k) => Err(TypeMetaError::UnsupportedVersion {
                kind: k,
                api_version: api_version.to_string(),
                supported: k.api_versions(),
            }),
            None => Err(TypeMetaError::UnknownKind {
                api_version: api_version.to_string(),
                kind: kind.to_string(),
            }),
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which Weir kind, if any, a reference from an HTTPRoute names (a `backendRef` or an
/// `ExtensionRef` filter, by `group` and `kind`).
///
/// Upstream is named by group `gateway.weir.dev` or `gloo.solo.io`; the option kinds by
/// `gateway.weir.dev` or `gateway.solo.io`; DirectResponse by `gateway.weir.dev`,
/// `gateway.solo.io` or `gateway.gloo.solo.io`. Anything else is `None` (a Service, or a
/// kind the translator must report as unsupported).
pub fn weir_ref_kind(group: &str, kind: &str) -> Option<Kind> {
    let k = Kind::WEIR.into_iter().find(|k| k.as_str() == kind)?;
    let groups: &[&str] = match k {
        Kind::Upstream => &[WEIR_GROUP, GLOO_GROUP],
        Kind::DirectResponse => &[WEIR_GROUP, GLOO_GATEWAY_GROUP, GLOO_GATEWAY_ALPHA_GROUP],
        _ => &[WEIR_GROUP, GLOO_GATEWAY_GROUP],
    };
    groups.contains(&group).then_some(k)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn k8sgateway_api_versions_read_as_weir_kinds() {
        assert_eq!(
            Kind::from_type_meta("gloo.solo.io/v1", "Upstream"),
            Ok(Kind::Upstream)
        );
        assert_eq!(
            Kind::from_type_meta("gateway.solo.io/v1", "RouteOption"),
            Ok(Kind::RouteOption)
        );
        assert_eq!(
            Kind::from_type_meta("gateway.weir.dev/v1alpha1", "HttpListenerOption"),
            Ok(Kind::HttpListenerOption)
        );
        assert_eq!(
            Kind::from_type_meta("gateway.networking.k8s.io/v1beta1", "ReferenceGrant"),
            Ok(Kind::ReferenceGrant)
        );
        assert_eq!(Kind::from_type_meta("v1", "Secret"), Ok(Kind::Secret));
    }

    #[test]
    fn known_kind_with_wrong_version_is_not_unknown() {
        let err = Kind::from_type_meta("gateway.weir.dev/v9", "Upstream").unwrap_err();
        assert!(matches!(
            err,
            TypeMetaError::UnsupportedVersion {
                kind: Kind::Upstream,
                ..
            }
        ));
        assert!(err.to_string().contains("gateway.weir.dev/v1alpha1"));
    }

    #[test]
    fn other_kinds_are_unknown() {
        for (v, k) in [
            ("v1", "ConfigMap"),
            ("networking.k8s.io/v1", "Ingress"),
            ("gateway.weir.dev/v1alpha1", "Service"),
            ("gateway.networking.k8s.io/v1", "Upstream"),
        ] {
            assert!(matches!(
                Kind::from_type_meta(v, k),
                Err(TypeMetaError::UnknownKind { .. })
            ));
        }
    }

    #[test]
    fn references_to_weir_kinds_accept_k8sgateway_groups() {
        assert_eq!(
            weir_ref_kind("gloo.solo.io", "Upstream"),
            Some(Kind::Upstream)
        );
        assert_eq!(
            weir_ref_kind("gateway.weir.dev", "Upstream"),
            Some(Kind::Upstream)
        );
        assert_eq!(weir_ref_kind("gateway.solo.io", "Upstream"), None);
        assert_eq!(
            weir_ref_kind("gateway.solo.io", "RouteOption"),
            Some(Kind::RouteOption)
        );
        assert_eq!(
            weir_ref_kind("gateway.solo.io", "DirectResponse"),
            Some(Kind::DirectResponse)
        );
        assert_eq!(
            weir_ref_kind("gateway.gloo.solo.io", "DirectResponse"),
            Some(Kind::DirectResponse)
        );
        assert_eq!(weir_ref_kind("", "Service"), None);
        assert_eq!(weir_ref_kind("gateway.weir.dev", "Gateway"), None);
    }

    #[test]
    fn cluster_scoped_kinds_are_gateway_class_and_namespace() {
        let cluster: Vec<_> = Kind::ALL
            .into_iter()
            .filter(|k| !k.is_namespaced())
            .collect();
        assert_eq!(cluster, [Kind::GatewayClass, Kind::Namespace]);
    }
}
