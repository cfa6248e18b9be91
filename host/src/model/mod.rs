//! The model: every kind of object Weir reads, as plain data.
//!
//! ```text
//!  Gateway API kinds ─┐                         (gateway_api: re-exported types)
//!  Weir kinds ────────┼──► Object / ObjectKey ──► store ──► translate
//!  core kinds ────────┘                         (object, kind)
//! ```
//!
//! - [`gateway_api`] re-exports the Gateway API and Kubernetes core types we read.
//! - [`upstream`], [`options`] and [`direct_response`] define Weir's own kinds (group
//!   `gateway.weir.dev`, version `v1alpha1`). Each converts, once, into a validated `Spec`
//!   that the translator uses, or into [`FieldErrors`] naming the fields at fault.
//! - [`object`] gathers every kind into [`Object`], keyed by [`ObjectKey`]; [`kind`] maps
//!   `apiVersion` + `kind` to a [`Kind`], including K8sGateway's groups (`gloo.solo.io`,
//!   `gateway.solo.io`), whose manifests read as Weir's kinds unchanged.
//! - [`secret`] wraps Secrets so their values never print.
//! - [`compact`] trims decoded Services and EndpointSlices to the memory they need.
//! - [`crds`] renders the CRDs (`weir crds`).
//!
//! This layer depends on the API types only: no Kubernetes client or runtime, no tonic, no
//! wasmtime.

pub mod compact;
pub mod crds;
pub mod direct_response;
pub mod duration;
pub mod gateway_api;
pub mod kind;
pub mod object;
pub mod options;
pub mod secret;
pub mod status;
pub mod upstream;
pub mod validation;

pub use direct_response::{DirectResponse, DirectResponseSpec};
pub use duration::Duration;
pub use kind::{
    GATEWAY_API_GROUP, GLOO_GATEWAY_ALPHA_GROUP, GLOO_GATEWAY_GROUP, GLOO_GROUP, Kind,
    TypeMetaError, WEIR_GROUP, WEIR_VERSION, weir_ref_kind,
};
pub use object::{DEFAULT_NAMESPACE, Object, ObjectKey};
pub use options::{
    HttpListenerOption, HttpListenerOptionSpec, ListenerOption, ListenerOptionSpec, RouteOption,
    RouteOptionSpec, TargetRef, VirtualHostOption, VirtualHostOptionSpec,
};
pub use secret::SecretObject;
pub use status::WeirStatus;
pub use upstream::{Upstream, UpstreamCommon, UpstreamSpec};
pub use validation::{FieldError, FieldErrors};
