//! Write Weir plugins in Rust.
//!
//! A Weir plugin is a WebAssembly component that the Weir control plane calls
//! while it translates Gateway API and Weir objects into Envoy configuration.
//! Each plugin targets one world of the `weir:plugin@1.0.0` WIT package
//! ([`API_VERSION`]); this crate hides the component plumbing behind one trait
//! per world and one macro:
//!
//! | world | trait | claims | gets | returns |
//! |---|---|---|---|---|
//! | `upstream-type` | [`UpstreamType`] | Upstream spec keys (`static`, `aws`) | [`UpstreamInput`] | [`UpstreamOutput`]: a `Cluster`, optional `ClusterLoadAssignment`, functions |
//! | `options` | [`FilterPlugin`] | option keys (`faults`, `cors`) | [`HookInput`]: the Envoy message at one level | [`HookOutput`]: that message changed, plus [`HttpFilter`]s |
//! | `function-discovery` | [`FunctionDiscovery`] | Upstream type keys | [`DiscoveryInput`]: a fetched document | [`Function`]s |
//!
//! Start with the trait of your world and [`export!`]. The trait functions are
//! plain Rust: unit tests call them directly on the native target.
//!
//! # Working with Envoy messages
//!
//! [`envoy`] holds Envoy's API as prost messages (`envoy::config::cluster::v3::Cluster`,
//! ...), built for every target including wasm32. Messages cross the boundary
//! as [`Any`]: [`pack`] encodes one, [`unpack`] decodes one and checks its type.
//! User configuration arrives as JSON text: [`parse_config`] reads it into your
//! serde type and reports mistakes with their field path, [`ConfigBlock`] adds your
//! own checks, and [`duration`]
//! reads `"1.5s"`-style durations.
//!
//! # Errors
//!
//! Return [`PluginError`]: [`PluginError::invalid`] for a bad field, with its
//! path (`hosts[1].port`). The host shows it in the status of the object that
//! carried the configuration and keeps serving everything else. Never panic on
//! user input: a panic traps the plugin and fails every object it handles.

#![deny(missing_docs)]

mod any;
pub mod arena;
mod config;
mod discovery;
pub mod duration;
#[allow(missing_docs, clippy::all, clippy::pedantic, rustdoc::all)]
pub mod envoy;
mod error;
mod export;
mod filters;
pub mod log;
mod object;
pub mod token_bucket;
mod upstream;

#[doc(hidden)]
#[path = "private/mod.rs"]
pub mod __private;

pub use any::{Any, pack, unpack};
pub use config::{ConfigBlock, parse_config};
pub use discovery::{DiscoveryInput, Document, FunctionDiscovery};
pub use error::{FieldError, PluginError};
pub use filters::{
    FilterPlugin, HookInput, HookOutput, HttpFilter, Stage, StageName, StagePosition,
};
pub use object::ObjectRef;
pub use upstream::{ClusterName, Endpoint, Function, UpstreamInput, UpstreamOutput, UpstreamType};

/// Plugins built for wasm32 allocate from a per-call [`arena::Arena`] (see there).
#[cfg(all(
    target_arch = "wasm32",
    not(target_feature = "atomics"),
    feature = "arena-allocator"
))]
#[global_allocator]
static ALLOCATOR: arena::Arena<{ arena::ARENA_BYTES }> = arena::Arena::new();

/// The prost runtime the [`envoy`] messages are built on.
pub use prost;
/// Protobuf well-known types (`Duration`, `Any`, wrappers) used inside [`envoy`] messages.
pub use prost_types;

/// Version of the `weir:plugin` WIT package this SDK implements; written into
/// every plugin's metadata so the host can refuse an incompatible plugin.
pub const API_VERSION: &str = "1.0.0";

/// Name of the custom section holding a plugin's metadata JSON.
pub const METADATA_SECTION: &str = "weir-plugin-metadata";

#[cfg(test)]
mod tests {
    #[test]
    fn api_version_matches_the_wit_package() {
        let wit = include_str!("../../wit/plugin.wit");
        let package = format!("package weir:plugin@{};", super::API_VERSION);
        assert!(
            wit.contains(&package),
            "wit/plugin.wit does not declare `{package}`"
        );
    }
}
