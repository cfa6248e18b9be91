//! The Gateway API and Kubernetes core types Weir reads, re-exported in one place.
//!
//! The Gateway API types come from the `gateway-api` crate's standard channel (generated
//! by kopium, hence names like `HttpRouteRulesBackendRefs`), except HTTPRoute, read from
//! the experimental channel for its `retry` field; the modules are re-exported
//! whole so the translator can reach every nested type. Core types come from `k8s-openapi`.

pub use gateway_api::gatewayclasses::{self, GatewayClass, GatewayClassSpec};
pub use gateway_api::gateways::{self, Gateway, GatewaySpec};
// HTTPRoute from the experimental channel: a superset of the standard one (same group,
// version and kind) that also carries `spec.rules[].retry`.
pub use gateway_api::experimental::httproutes::{self, HttpRoute, HttpRouteSpec};
pub use gateway_api::referencegrants::{self, ReferenceGrant, ReferenceGrantSpec};

pub use k8s_openapi::api::core::v1::{Namespace, Secret, Service};
pub use k8s_openapi::api::discovery::v1::EndpointSlice;
pub use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, ObjectMeta};

/// The label an EndpointSlice carries naming the Service it belongs to.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
