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
//! - [`app`]: the `weir serve` runtime (translation loop, ADS server, admin HTTP);
//! - [`cli`]: the `weir` command line.

pub mod app;
pub mod cli;
pub mod envoy_json;
pub mod model;
pub mod plugin;
pub mod source;
pub mod store;
pub mod translate;
pub mod xds;
