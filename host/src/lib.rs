//! Weir: a Kubernetes Gateway API control plane for Envoy whose translation plugins are
//! sandboxed WebAssembly components.
//!
//! The data flows one way — sources → store → translate → publish → serve, with the
//! reporter beside translate (see `docs/architecture.md`). This crate is being built up
//! in that order; today it holds:
//!
//! - [`plugin`]: the WebAssembly plugin runtime (load, sandbox, call, check outputs);
//! - [`cli`]: the `weir` command line.

pub mod cli;
pub mod model;
pub mod plugin;
pub mod source;
pub mod store;
