//! The APIs the Kubernetes source watches: one per (kind, API group) the model reads.

use kube::core::{ApiResource, GroupVersionKind};

use crate::model::Kind;

/// One watched API: the kind it fills and where it lives in the API server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WatchedApi {
    /// The store kind its objects become.
    pub kind: Kind,
    /// API group (`""` for core).
    pub group: &'static str,
    /// API version.
    pub version: &'static str,
    /// URL plural.
    pub plural: &'static str,
}

impl WatchedApi {
    /// The kube `ApiResource` for dynamic clients.
    pub fn resource(&self) -> ApiResource {
        ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk(self.group, self.version, self.kind.as_str()),
            self.plural,
        )
    }

    /// `group/version` (or `version` for core), as in `apiVersion`.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }
}

/// The URL plural of a kind.
pub fn plural(kind: Kind) -> &'static str {
    match kind {
        Kind::GatewayClass => "gatewayclasses",
        Kind::Gateway => "gateways",
        Kind::HttpRoute => "httproutes",
        Kind::ReferenceGrant => "referencegrants",
        Kind::Upstream => "upstreams",
        Kind::RouteOption => "routeoptions",
        Kind::VirtualHostOption => "virtualhostoptions",
        Kind::ListenerOption => "listeneroptions",
        Kind::HttpListenerOption => "httplisteneroptions",
        Kind::DirectResponse => "directresponses",
        Kind::Namespace => "namespaces",
        Kind::Service => "services",
        Kind::EndpointSlice => "endpointslices",
        Kind::Secret => "secrets",
    }
}

/// The versions watched: Gateway API kinds at their served standard versions
/// (ReferenceGrant at `v1beta1`, served by every release that has it), Weir's kinds under
/// every group the model reads them from (`gateway.weir.dev` and K8sGateway's groups).
fn versions(kind: Kind) -> Vec<&'static str> {
    match kind {
        Kind::ReferenceGrant => vec!["gateway.networking.k8s.io/v1beta1"],
        k if k.is_weir() => k.api_versions().to_vec(),
        k => vec![k.api_versions()[0]],
    }
}

/// Every API watched, Secrets included (they are filtered, not reflected).
pub fn all() -> Vec<WatchedApi> {
    let mut out = Vec::new();
    for kind in Kind::ALL {
        for api_version in versions(kind) {
            let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
            out.push(WatchedApi {
                kind,
                group,
                version,
                plural: plural(kind),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::Resource;
    use kube::core::DynamicObject;

    #[test]
    fn weir_kinds_are_watched_under_both_groups() {
        let apis = all();
        let upstreams: Vec<String> = apis
            .iter()
            .filter(|a| a.kind == Kind::Upstream)
            .map(WatchedApi::api_version)
            .collect();
        assert_eq!(upstreams, ["gateway.weir.dev/v1alpha1", "gloo.solo.io/v1"]);
        let direct: Vec<String> = apis
            .iter()
            .filter(|a| a.kind == Kind::DirectResponse)
            .map(WatchedApi::api_version)
            .collect();
        assert_eq!(
            direct,
            ["gateway.weir.dev/v1alpha1", "gateway.gloo.solo.io/v1alpha1"]
        );
        let ep = apis.iter().find(|a| a.kind == Kind::EndpointSlice).unwrap();
        assert_eq!(
            DynamicObject::url_path(&ep.resource(), Some("a")),
            "/apis/discovery.k8s.io/v1/namespaces/a/endpointslices"
        );
        let svc = apis.iter().find(|a| a.kind == Kind::Service).unwrap();
        assert_eq!(
            DynamicObject::url_path(&svc.resource(), None),
            "/api/v1/services"
        );
        assert_eq!(apis.len(), 20);
    }
}
