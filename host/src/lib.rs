//! Weir: a Kubernetes Gateway API control plane for Envoy whose translation plugins are
//! sandboxed WebAssembly components.
//!
//! The data flows one way — sources → store → translate → publish → serve, with the
//! reporter beside translate (see `docs/architecture.md`). This crate is being built up
//! in that order; today it holds:
//!
//! - [`source`]: where objects come from (today: a directory of YAML/JSON manifests);
//! - [`model`]: the typed inputs — Gateway API kinds, Weir's own kinds (also read under
//!   K8sGateway's API groups), core kinds — validated once, at the edge;
//! - [`store`]: the inputs keyed by kind/namespace/name, with content hashes;
//! - [`translate`]: the pure translator (store + plugins → Envoy resources and status);
//! - [`xds`]: per-Gateway snapshots and the ADS server (state of the world and delta);
//! - [`plugin`]: the WebAssembly plugin runtime (load, sandbox, call, check outputs);
//! - [`envoy_json`]: Envoy messages printed as proto3 JSON, as Envoy prints them;
//! - [`discovery`]: Upstreams of type `kube` for Services (Kubernetes mode);
//! - [`leader`]: Lease-based leader election (only the leader writes);
//! - [`reporter`]: writes translated statuses to the Kubernetes status subresource;
//! - [`app`]: the `weir serve` runtime (watch and translate loop, ADS server, admin HTTP);
//! - [`admin`]: the admin HTTP endpoints (health, readiness, metrics, debug views);
//! - [`cli`]: the `weir` command line.

pub mod admin;
mod alloc;
pub mod app;
pub mod cli;
pub mod discovery;
pub mod envoy_json;
pub mod leader;
pub mod model;
pub mod plugin;
pub mod reporter;
pub mod source;
pub mod store;
pub mod translate;
pub mod xds;
