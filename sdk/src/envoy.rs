//! Envoy's API as prost messages, generated at build time from `sdk/proto/`.
//!
//! Modules mirror the proto packages: `envoy.config.cluster.v3.Cluster` is
//! [`config::cluster::v3::Cluster`]. Every message implements [`prost::Name`],
//! so [`pack`](crate::pack) gives it its `type.googleapis.com/...` type URL.
//! `google.protobuf` types come from [`prost_types`]; the cncf/xds (`xds`,
//! `udpa`) and protoc-gen-validate (`validate`) packages that Envoy messages
//! refer to sit beside Envoy's own here.
//!
//! Only the part of the API plugins need is vendored (clusters, endpoints,
//! listeners, routes, the HTTP connection manager, TLS, access logs, a set of
//! HTTP filters and the admin config dump); `sdk/proto/README.md` lists it and
//! how to extend it.

mod generated {
    include!(concat!(env!("OUT_DIR"), "/_includes.rs"));
}

pub use generated::envoy::*;
pub use generated::{udpa, validate, xds};
