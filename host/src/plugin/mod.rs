//! The plugin runtime: loads Weir plugins (WebAssembly components) and calls them in a
//! sandbox.
//!
//! Start at [`PluginRuntime`]. It owns the one wasmtime engine and loads plugins from
//! bytes or files ([`PluginRuntime::load_bytes`], [`PluginRuntime::load_file`]): the
//! metadata section is read first ([`metadata`]), so an incompatible API version, a key
//! another plugin already claims, or a file that is not a plugin at all is refused with a
//! sentence naming the plugin; then the component is compiled (or loaded from the
//! precompiled [`cache`]) and linked against the sandbox's imports.
//!
//! Each translation pass opens a [`Session`], which instantiates each plugin at most once
//! and reuses the instance for every call in that pass. Every call runs under a deadline
//! (epoch interruption), every store under a memory cap, every output under a size cap,
//! and every returned proto is decoded as the type the hook may return before the caller
//! sees it ([`outputs`]). Failures are [`CallError`]s naming the plugin, its version and
//! digest; the host process never dies because of a plugin.
//!
//! ```text
//! bytes ─► metadata::read ─► CompileCache ─► Linker::instantiate_pre ─► LoadedPlugin
//!                                                                        │
//!            Session (one per pass) ─► instance per plugin ─► call ─► outputs::check
//! ```

mod bindings;
pub mod builtin;
pub mod cache;
mod deadline;
mod error;
mod fast_cluster;
pub mod metadata;
mod outputs;
mod runtime;
mod sandbox;
mod session;
mod translate_impl;

pub use bindings::{Any, FieldError, ObjectRef, PluginError};
pub use error::{CallError, LoadError, PluginId, describe};
pub use metadata::{PluginMetadata, World};
pub use outputs::{HookLevel, HookResult, UpstreamResult};
pub use runtime::{LoadedPlugin, PluginRuntime, RuntimeConfig};
pub use session::{
    DiscoveryInput, Document, Endpoint, Function, HookInput, HttpFilter, Session, Stage, StageName,
    StagePosition, UpstreamInput,
};
pub use translate_impl::{CallObserver, ObservedSession, error_kind};
