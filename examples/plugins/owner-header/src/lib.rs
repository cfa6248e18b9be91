//! An example third-party option plugin, built against the SDK alone: the option
//! `ownerHeader: {team: payments, env: prod}` on a RouteOption or VirtualHostOption adds
//! the response header `x-owner: payments@prod (owner-header 0.1.0)`.
//!
//! Build it (from the repository root) and drop it into a running Weir's plugin
//! directory; see `README.md`:
//!
//! ```sh
//! cargo build --release --target wasm32-wasip2 -p weir-example-owner-header
//! cp target/wasm32-wasip2/release/weir_example_owner_header.wasm /path/to/plugins/
//! ```

include!("plugin.rs");

weir_plugin_sdk::export!(options: OwnerHeader, name: "owner-header", keys: ["ownerHeader"], schema: "schema.json");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_header_is_computed_from_the_config() {
        let owner = Owner::from_json(r#"{"team": "payments"}"#).unwrap();
        let header = owner.header().header.unwrap();
        assert_eq!(header.key, "x-owner");
        assert_eq!(header.value, "payments@prod (owner-header 0.1.0)");
    }

    #[test]
    fn an_empty_team_is_named() {
        assert_eq!(
            Owner::from_json(r#"{"team": ""}"#).unwrap_err(),
            PluginError::invalid("team", "must not be empty")
        );
    }
}
