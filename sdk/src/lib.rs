//! proto
#[doc(hidden)]
pub mod __private {
    pub use wit_bindgen;
    pub mod upstream_type {
        wit_bindgen::generate!({
            path: "../wit",
            world: "upstream-type",
            pub_export_macro: true,
            export_macro_name: "__export_upstream_type",
            default_bindings_module: "weir_plugin_sdk::__private::upstream_type",
            debug: true,
        });
    }
    pub mod options {
        wit_bindgen::generate!({
            path: "../wit",
            world: "options",
            pub_export_macro: true,
            export_macro_name: "__export_options",
            default_bindings_module: "weir_plugin_sdk::__private::options",
        });
    }
    pub mod function_discovery {
        wit_bindgen::generate!({
            path: "../wit",
            world: "function-discovery",
            pub_export_macro: true,
            export_macro_name: "__export_function_discovery",
            default_bindings_module: "weir_plugin_sdk::__private::function_discovery",
        });
    }
}
#[allow(missing_docs, clippy::all, rustdoc::all)]
pub mod envoy;
