//! Host-side bindings of the `weir:plugin` WIT package, one module per world.
//!
//! The `types` and `log` interfaces are generated once (with the Upstream world) and
//! shared by the other worlds, so every world speaks the same Rust types.

#![allow(missing_docs, clippy::too_many_arguments)]

/// Bindings of the `upstream-type` world.
pub mod upstream {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "weir:plugin/upstream-type",
    });
}

/// Bindings of the `options` world.
pub mod options {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "weir:plugin/options",
        with: {
            "weir:plugin/types": super::upstream::weir::plugin::types,
            "weir:plugin/log": super::upstream::weir::plugin::log,
        },
    });
}

/// Bindings of the `function-discovery` world.
pub mod discovery {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "weir:plugin/function-discovery",
        with: {
            "weir:plugin/types": super::upstream::weir::plugin::types,
            "weir:plugin/log": super::upstream::weir::plugin::log,
        },
    });
}

pub use upstream::weir::plugin::log::Level;
pub use upstream::weir::plugin::types::{Any, FieldError, ObjectRef, PluginError};
