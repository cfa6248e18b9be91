//! The [`export!`](crate::export) macro, which turns a crate into a plugin.

/// Exports a plugin: wires one world's component exports to your trait
/// implementation and embeds the plugin's metadata.
///
/// ```text
/// weir_plugin_sdk::export!(WORLD: TYPE, name: "NAME", keys: ["KEY", ...], schema: "FILE");
/// ```
///
/// * `WORLD` is `upstream_type` (TYPE implements [`UpstreamType`](crate::UpstreamType)),
///   `options` ([`FilterPlugin`](crate::FilterPlugin)) or `function_discovery`
///   ([`FunctionDiscovery`](crate::FunctionDiscovery)).
/// * `name` names the plugin in logs and status; `keys` are the Upstream type
///   keys or option keys it claims. Both may use ASCII letters, digits, `-`,
///   `_` and `.`.
/// * `schema` is a file, relative to the crate's `Cargo.toml`, holding a JSON
///   object that maps every claimed key to the JSON Schema of its block:
///   `{"static": {"type": "object", ...}}`.
///
/// Invoke it once, at the crate root of a `cdylib` built for `wasm32-wasip2`.
/// It expands to:
///
/// * on wasm32, the component exports of the world, which call your trait's
///   functions after converting the WIT types to this crate's types;
/// * a `weir-plugin-metadata` custom section, UTF-8 JSON the host reads before
///   instantiating the plugin:
///   `{"name":…,"version":<CARGO_PKG_VERSION>,"apiVersion":<API_VERSION>,"world":…,"keys":[…],"configSchema":<schema file>}`;
/// * a unit test, `weir_plugin_metadata::metadata_section_is_valid`, that
///   checks the section parses and has a schema for exactly the claimed keys.
///
/// Names, keys and the schema file's outer braces are checked at compile time.
///
/// # Example
///
/// ```
/// use weir_plugin_sdk::envoy::config::cluster::v3::Cluster;
/// use weir_plugin_sdk::{PluginError, UpstreamInput, UpstreamOutput, UpstreamType};
///
/// pub struct Echo;
///
/// impl UpstreamType for Echo {
///     fn validate(_key: &str, config: &str) -> Result<(), PluginError> {
///         weir_plugin_sdk::parse_config::<serde_json::Value>(config).map(drop)
///     }
///
///     fn translate(input: UpstreamInput) -> Result<UpstreamOutput, PluginError> {
///         let cluster = Cluster {
///             name: input.cluster_name.to_string(),
///             ..Default::default()
///         };
///         Ok(UpstreamOutput::new(&cluster))
///     }
/// }
///
/// weir_plugin_sdk::export!(upstream_type: Echo, name: "echo", keys: ["echo"], schema: "examples/echo.schema.json");
/// # fn main() {}
/// ```
#[macro_export]
macro_rules! export {
    (
        $world:ident : $plugin:ty,
        name: $name:literal,
        keys: [$first_key:literal $(, $key:literal)* $(,)?],
        schema: $schema:literal $(,)?
    ) => {
        $crate::__export_plugin!(
            $world: $plugin,
            name: $name,
            keys: [$first_key $(, $key)*],
            schema: $schema,
            api_version: $crate::API_VERSION
        );
    };
}

/// [`export!`] with an explicit API version in the metadata. Only for test
/// fixtures that play a plugin built against another API version.
#[doc(hidden)]
#[macro_export]
macro_rules! __export_plugin {
    (
        upstream_type: $plugin:ty,
        name: $name:literal,
        keys: [$first_key:literal $(, $key:literal)* $(,)?],
        schema: $schema:literal,
        api_version: $api_version:expr $(,)?
    ) => {
        $crate::__export_metadata!("upstream-type", $name, [$first_key $(, $key)*], $schema, $api_version);
        const _: fn() = $crate::__private::assert_upstream_type::<$plugin>;
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            type WeirGlue = $crate::__private::UpstreamGlue<$plugin>;
            $crate::__private::bindings::upstream_type::__export_upstream_type!(
                WeirGlue with_types_in $crate::__private::bindings::upstream_type
            );
        };
    };
    (
        options: $plugin:ty,
        name: $name:literal,
        keys: [$first_key:literal $(, $key:literal)* $(,)?],
        schema: $schema:literal,
        api_version: $api_version:expr $(,)?
    ) => {
        $crate::__export_metadata!("options", $name, [$first_key $(, $key)*], $schema, $api_version);
        const _: fn() = $crate::__private::assert_filter_plugin::<$plugin>;
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            type WeirGlue = $crate::__private::OptionsGlue<$plugin>;
            $crate::__private::bindings::options::__export_options!(
                WeirGlue with_types_in $crate::__private::bindings::options
            );
        };
    };
    (
        function_discovery: $plugin:ty,
        name: $name:literal,
        keys: [$first_key:literal $(, $key:literal)* $(,)?],
        schema: $schema:literal,
        api_version: $api_version:expr $(,)?
    ) => {
        $crate::__export_metadata!("function-discovery", $name, [$first_key $(, $key)*], $schema, $api_version);
        const _: fn() = $crate::__private::assert_function_discovery::<$plugin>;
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            type WeirGlue = $crate::__private::DiscoveryGlue<$plugin>;
            $crate::__private::bindings::function_discovery::__export_function_discovery!(
                WeirGlue with_types_in $crate::__private::bindings::function_discovery
            );
        };
    };
    ($world:ident : $($rest:tt)*) => {
        ::core::compile_error!(::core::concat!(
            "unknown plugin world `",
            ::core::stringify!($world),
            "`; use upstream_type, options or function_discovery"
        ));
    };
}

/// Emits the `weir-plugin-metadata` custom section and its unit test.
#[doc(hidden)]
#[macro_export]
macro_rules! __export_metadata {
    ($world:literal, $name:literal, [$first_key:literal $(, $key:literal)*], $schema:literal, $api_version:expr) => {
        /// The `weir-plugin-metadata` custom section of this plugin.
        #[doc(hidden)]
        pub mod weir_plugin_metadata {
            const SCHEMA: &str =
                ::core::include_str!(::core::concat!(::core::env!("CARGO_MANIFEST_DIR"), "/", $schema));

            const PARTS: &[&str] = &[
                ::core::concat!(
                    "{\"name\":\"", $name,
                    "\",\"version\":\"", ::core::env!("CARGO_PKG_VERSION"),
                    "\",\"apiVersion\":\""
                ),
                $api_version,
                ::core::concat!(
                    "\",\"world\":\"", $world,
                    "\",\"keys\":[\"", $first_key, "\"" $(, ",\"", $key, "\"")*,
                    "],\"configSchema\":"
                ),
                SCHEMA,
                "}",
            ];

            const _: () = {
                ::core::assert!(
                    $crate::__private::metadata::is_valid_name($name),
                    "plugin names may only use ASCII letters, digits, `-`, `_` and `.`"
                );
                ::core::assert!(
                    $crate::__private::metadata::is_valid_name($first_key)
                        $(&& $crate::__private::metadata::is_valid_name($key))*,
                    "keys may only use ASCII letters, digits, `-`, `_` and `.`"
                );
                ::core::assert!(
                    $crate::__private::metadata::is_valid_name($api_version),
                    "the API version must be a plain version string"
                );
                ::core::assert!(
                    $crate::__private::metadata::looks_like_object(SCHEMA),
                    "the schema file must hold one JSON object mapping each key to its schema"
                );
            };

            /// The section's bytes: UTF-8 JSON the host reads before instantiating the plugin.
            #[cfg_attr(target_arch = "wasm32", unsafe(link_section = "weir-plugin-metadata"))]
            #[used]
            pub static SECTION: [u8; $crate::__private::metadata::total_len(PARTS)] =
                $crate::__private::metadata::concat(PARTS);

            #[cfg(test)]
            mod tests {
                #[test]
                fn metadata_section_is_valid() {
                    if let Err(problem) = $crate::__private::metadata::check(&super::SECTION) {
                        ::core::panic!("the weir-plugin-metadata section is invalid: {problem}");
                    }
                }
            }
        }
    };
}
