//! The built-in plugins, compiled from `plugins/` by the build script and embedded in the
//! `weir` binary. They load through exactly the same path as a third-party plugin.

use super::{LoadError, LoadedPlugin, PluginRuntime};
use std::sync::Arc;

/// A plugin shipped inside the binary.
#[derive(Clone, Copy, Debug)]
pub struct Builtin {
    /// File name it is known by in messages.
    pub file: &'static str,
    /// The component bytes.
    pub bytes: &'static [u8],
}

/// Every built-in plugin.
pub const ALL: &[Builtin] = &[
    Builtin {
        file: "builtin:static.wasm",
        bytes: include_bytes!(env!("WEIR_PLUGIN_WASM_STATIC")),
    },
    Builtin {
        file: "builtin:faults.wasm",
        bytes: include_bytes!(env!("WEIR_PLUGIN_WASM_FAULTS")),
    },
    Builtin {
        file: "builtin:kube.wasm",
        bytes: include_bytes!(env!("WEIR_PLUGIN_WASM_KUBE")),
    },
    Builtin {
        file: "builtin:routing.wasm",
        bytes: include_bytes!(env!("WEIR_PLUGIN_WASM_ROUTING")),
    },
    Builtin {
        file: "builtin:listener.wasm",
        bytes: include_bytes!(env!("WEIR_PLUGIN_WASM_LISTENER")),
    },
    Builtin {
        file: "builtin:traffic.wasm",
        bytes: include_bytes!(env!("WEIR_PLUGIN_WASM_TRAFFIC")),
    },
    Builtin {
        file: "builtin:extauth.wasm",
        bytes: include_bytes!(env!("WEIR_PLUGIN_WASM_EXTAUTH")),
    },
    Builtin {
        file: "builtin:ratelimit.wasm",
        bytes: include_bytes!(env!("WEIR_PLUGIN_WASM_RATELIMIT")),
    },
];

/// Loads every built-in plugin into `runtime`.
pub fn load_all(runtime: &mut PluginRuntime) -> Result<Vec<Arc<LoadedPlugin>>, LoadError> {
    ALL.iter()
        .map(|b| runtime.load_bytes(b.bytes, b.file))
        .collect()
}
