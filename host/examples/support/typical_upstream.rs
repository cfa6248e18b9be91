//! The typical Upstream the plugin benchmarks call the `static` plugin with (shared by
//! `benches/plugins.rs` and `examples/plugin_call_cpu.rs`).

use weir::plugin::{ObjectRef, UpstreamInput};

/// A `static` Upstream with two hosts, one weighted.
pub fn typical_upstream() -> UpstreamInput {
    UpstreamInput {
        upstream: ObjectRef {
            group: "gateway.weir.dev".into(),
            kind: "Upstream".into(),
            namespace: "shop".into(),
            name: "payments".into(),
        },
        cluster_name: "upstream_shop_payments".into(),
        key: "static".into(),
        config: r#"{"hosts":[{"addr":"10.0.0.1","port":8080},{"addr":"10.0.0.2","port":8080,"loadBalancingWeight":2}]}"#.into(),
        endpoints: Vec::new(),
    }
}
