//! [`Object`]: one value for every kind the translator reads, and [`ObjectKey`] to name it.

use std::fmt;
use std::sync::Arc;

use super::direct_response::DirectResponse;
use super::gateway_api::{
    EndpointSlice, Gateway, GatewayClass, HttpRoute, Namespace, ObjectMeta, ReferenceGrant, Service,
};
use super::kind::Kind;
use super::options::{HttpListenerOption, ListenerOption, RouteOption, VirtualHostOption};
use super::secret::SecretObject;
use super::upstream::Upstream;

/// Names an object: kind, namespace (none for cluster-scoped kinds) and name.
///
/// Ordered by kind, then namespace, then name, so a map of keys iterates kind by kind and,
/// within a kind, namespace by namespace.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectKey {
    /// The kind.
    pub kind: Kind,
    /// The namespace; `None` for GatewayClass and Namespace.
    pub namespace: Option<String>,
    /// The name.
    pub name: String,
}

impl ObjectKey {
    /// A key for a namespaced object.
    pub fn namespaced(kind: Kind, namespace: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            kind,
            namespace: Some(namespace.into()),
            name: name.into(),
        }
    }

    /// A key for a cluster-scoped object (GatewayClass, Namespace).
    pub fn cluster(kind: Kind, name: impl Into<String>) -> Self {
        Self {
            kind,
            namespace: None,
            name: name.into(),
        }
    }
}

impl fmt::Display for ObjectKey {
    /// `Kind/namespace/name`, or `Kind/name` for cluster-scoped kinds.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.namespace {
            Some(ns) => write!(f, "{}/{}/{}", self.kind, ns, self.name),
            None => write!(f, "{}/{}", self.kind, self.name),
        }
    }
}

/// The namespace objects of a namespaced kind land in when their manifest names none.
pub const DEFAULT_NAMESPACE: &str = "default";

/// Defines [`Object`] with its per-kind constructors and accessors.
macro_rules! objects {
    ($($variant:ident($ty:ty) => $as:ident;)*) => {
        /// Any object the translator reads. Cheap to clone (each holds an `Arc`).
        ///
        /// K8sGateway's `gloo.solo.io` Upstream and `gateway.solo.io` option kinds arrive
        /// here as the same variants as Weir's own.
        #[derive(Clone, Debug, PartialEq)]
        pub enum Object {
            $(
                #[doc = concat!("A ", stringify!($variant), ".")]
                $variant(Arc<$ty>),
            )*
        }

        impl Object {
            /// The kind of this object.
            pub fn kind(&self) -> Kind {
                match self {
                    $(Object::$variant(_) => Kind::$variant,)*
                }
            }

            /// The object's metadata.
            pub fn metadata(&self) -> &ObjectMeta {
                match self {
                    $(Object::$variant(o) => meta_of!($variant, o),)*
                }
            }

            $(
                #[doc = concat!("The ", stringify!($variant), ", if this is one.")]
                pub fn $as(&self) -> Option<&Arc<$ty>> {
                    match self {
                        Object::$variant(o) => Some(o),
                        #[allow(unreachable_patterns)]
                        _ => None,
                    }
                }
            )*
        }

        $(
            impl From<$ty> for Object {
                fn from(o: $ty) -> Self {
                    Object::$variant(Arc::new(o))
                }
            }

            impl From<Arc<$ty>> for Object {
                fn from(o: Arc<$ty>) -> Self {
                    Object::$variant(o)
                }
            }
        )*
    };
}

macro_rules! meta_of {
    (Secret, $o:expr) => {
        $o.metadata()
    };
    ($variant:ident, $o:expr) => {
        &$o.metadata
    };
}

objects! {
    GatewayClass(GatewayClass) => as_gateway_class;
    Gateway(Gateway) => as_gateway;
    HttpRoute(HttpRoute) => as_http_route;
    ReferenceGrant(ReferenceGrant) => as_reference_grant;
    Upstream(Upstream) => as_upstream;
    RouteOption(RouteOption) => as_route_option;
    VirtualHostOption(VirtualHostOption) => as_virtual_host_option;
    ListenerOption(ListenerOption) => as_listener_option;
    HttpListenerOption(HttpListenerOption) => as_http_listener_option;
    DirectResponse(DirectResponse) => as_direct_response;
    Namespace(Namespace) => as_namespace;
    Service(Service) => as_service;
    EndpointSlice(EndpointSlice) => as_endpoint_slice;
    Secret(SecretObject) => as_secret;
}

impl Object {
    /// Mutable metadata, for defaulting at the edge (copies the object if it is shared).
    pub fn metadata_mut(&mut self) -> &mut ObjectMeta {
        match self {
            Object::GatewayClass(o) => &mut Arc::make_mut(o).metadata,
            Object::Gateway(o) => &mut Arc::make_mut(o).metadata,
            Object::HttpRoute(o) => &mut Arc::make_mut(o).metadata,
            Object::ReferenceGrant(o) => &mut Arc::make_mut(o).metadata,
            Object::Upstream(o) => &mut Arc::make_mut(o).metadata,
            Object::RouteOption(o) => &mut Arc::make_mut(o).metadata,
            Object::VirtualHostOption(o) => &mut Arc::make_mut(o).metadata,
            Object::ListenerOption(o) => &mut Arc::make_mut(o).metadata,
            Object::HttpListenerOption(o) => &mut Arc::make_mut(o).metadata,
            Object::DirectResponse(o) => &mut Arc::make_mut(o).metadata,
            Object::Namespace(o) => &mut Arc::make_mut(o).metadata,
            Object::Service(o) => &mut Arc::make_mut(o).metadata,
            Object::EndpointSlice(o) => &mut Arc::make_mut(o).metadata,
            Object::Secret(o) => Arc::make_mut(o).metadata_mut(),
        }
    }

    /// The object's name (empty if the metadata has none).
    pub fn name(&self) -> &str {
        self.metadata().name.as_deref().unwrap_or_default()
    }

    /// The object's namespace: `None` for cluster-scoped kinds, [`DEFAULT_NAMESPACE`] for a
    /// namespaced object whose metadata names none.
    pub fn namespace(&self) -> Option<&str> {
        self.kind().is_namespaced().then(|| {
            self.metadata()
                .namespace
                .as_deref()
                .unwrap_or(DEFAULT_NAMESPACE)
        })
    }

    /// The key the store files this object under.
    pub fn key(&self) -> ObjectKey {
        ObjectKey {
            kind: self.kind(),
            namespace: self.namespace().map(str::to_string),
            name: self.name().to_string(),
        }
    }

    /// The object as JSON, for hashing. Secrets included: do not print the result.
    pub(crate) fn to_json_unredacted(&self) -> Result<serde_json::Value, serde_json::Error> {
        match self {
            Object::GatewayClass(o) => serde_json::to_value(&**o),
            Object::Gateway(o) => serde_json::to_value(&**o),
            Object::HttpRoute(o) => serde_json::to_value(&**o),
            Object::ReferenceGrant(o) => serde_json::to_value(&**o),
            Object::Upstream(o) => serde_json::to_value(&**o),
            Object::RouteOption(o) => serde_json::to_value(&**o),
            Object::VirtualHostOption(o) => serde_json::to_value(&**o),
            Object::ListenerOption(o) => serde_json::to_value(&**o),
            Object::HttpListenerOption(o) => serde_json::to_value(&**o),
            Object::DirectResponse(o) => serde_json::to_value(&**o),
            Object::Namespace(o) => serde_json::to_value(&**o),
            Object::Service(o) => serde_json::to_value(&**o),
            Object::EndpointSlice(o) => serde_json::to_value(&**o),
            Object::Secret(o) => serde_json::to_value(o.expose()),
        }
    }
}

impl From<k8s_openapi::api::core::v1::Secret> for Object {
    fn from(s: k8s_openapi::api::core::v1::Secret) -> Self {
        Object::Secret(Arc::new(SecretObject::new(s)))
    }
}

impl fmt::Display for Object {
    /// The object's key (`Kind/namespace/name`); never its contents.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.key().fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::direct_response::DirectResponseSpec;

    #[test]
    fn object_key_displays_kind_namespace_and_name() {
        let k = ObjectKey::namespaced(Kind::HttpRoute, "apps", "web");
        assert_eq!(k.to_string(), "HTTPRoute/apps/web");
        let c = ObjectKey::cluster(Kind::GatewayClass, "weir");
        assert_eq!(c.to_string(), "GatewayClass/weir");
    }

    #[test]
    fn object_keys_order_by_kind_then_namespace_then_name() {
        let mut keys = [
            ObjectKey::namespaced(Kind::Service, "a", "z"),
            ObjectKey::namespaced(Kind::Gateway, "b", "a"),
            ObjectKey::namespaced(Kind::Gateway, "a", "b"),
            ObjectKey::cluster(Kind::GatewayClass, "c"),
        ];
        keys.sort();
        let shown: Vec<String> = keys.iter().map(ToString::to_string).collect();
        assert_eq!(
            shown,
            [
                "GatewayClass/c",
                "Gateway/a/b",
                "Gateway/b/a",
                "Service/a/z"
            ]
        );
    }

    #[test]
    fn namespaced_object_without_namespace_is_keyed_in_default() {
        let o = Object::from(DirectResponse::new(
            "dr",
            DirectResponseSpec {
                status: 200,
                body: None,
            },
        ));
        assert_eq!(
            o.key(),
            ObjectKey::namespaced(Kind::DirectResponse, "default", "dr")
        );
        assert_eq!(o.to_string(), "DirectResponse/default/dr");
        assert!(o.as_direct_response().is_some());
        assert!(o.as_gateway().is_none());
    }
}
