//! What [`export!`](crate::export) expands to needs; not part of the API.
//!
//! Everything here may change in any release.

pub mod bindings;
pub mod glue;
pub mod metadata;

pub use glue::{DiscoveryGlue, OptionsGlue, UpstreamGlue};
pub use serde_json;

use crate::{FilterPlugin, FunctionDiscovery, UpstreamType};

/// Compile-time check that a type implements [`UpstreamType`].
pub const fn assert_upstream_type<T: UpstreamType>() {}

/// Compile-time check that a type implements [`FilterPlugin`].
pub const fn assert_filter_plugin<T: FilterPlugin>() {}

/// Compile-time check that a type implements [`FunctionDiscovery`].
pub const fn assert_function_discovery<T: FunctionDiscovery>() {}
