//! Envoy's API as prost messages, generated at build time from `sdk/proto/`.
mod generated {
    include!(concat!(env!("OUT_DIR"), "/_includes.rs"));
}
pub use generated::envoy::*;
pub use generated::{udpa, validate, xds};
