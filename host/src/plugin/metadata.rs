//! Reading a plugin's metadata custom section before anything is compiled or linked.
//!
//! The SDK's `export!` macro writes a `weir-plugin-metadata` custom section into the
//! plugin's core module. We find it by walking the component's payloads (nested modules
//! included), so an incompatible or malformed plugin is refused with a sentence instead
//! of a linker error.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use wasmparser::{Encoding, Parser, Payload};

/// Name of the custom section the SDK writes.
pub const SECTION: &str = "weir-plugin-metadata";

/// The plugin API version this host implements (the `weir:plugin` WIT package).
pub const HOST_API_VERSION: semver::Version = semver::Version::new(1, 0, 0);

/// The kind of plugin, one per WIT world.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum World {
    /// Implements Upstream types (`weir:plugin/upstream`).
    UpstreamType,
    /// Implements option keys of the option kinds (`weir:plugin/filters`).
    Options,
    /// Discovers functions of Upstreams (`weir:plugin/discovery`).
    FunctionDiscovery,
}

impl fmt::Display for World {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            World::UpstreamType => "upstream-type",
            World::Options => "options",
            World::FunctionDiscovery => "function-discovery",
        })
    }
}

/// What a plugin says about itself in its metadata section.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PluginMetadata {
    /// The plugin's name, unique among loaded plugins (for example `static`).
    pub name: String,
    /// The plugin's own version.
    pub version: String,
    /// The `weir:plugin` API version it was built against.
    pub api_version: String,
    /// Which world it implements.
    pub world: World,
    /// The keys it claims (Upstream type keys or option keys).
    pub keys: Vec<String>,
    /// JSON schema of each claimed key's configuration block.
    #[serde(default)]
    pub config_schema: BTreeMap<String, serde_json::Value>,
}

/// Why a file's metadata could not be read or accepted.
#[derive(Debug, thiserror::Error)]
pub enum MetadataError {
    /// The bytes are not a WebAssembly file at all, or are truncated.
    #[error("{origin} is not a valid WebAssembly component: {source}")]
    Malformed {
        /// Where the bytes came from.
        origin: String,
        /// The parser's complaint.
        source: wasmparser::BinaryReaderError,
    },
    /// The file is a core module, not a component.
    #[error(
        "{origin} is a core WebAssembly module, not a component; build it for wasm32-wasip2 with the weir-plugin-sdk"
    )]
    NotAComponent {
        /// Where the bytes came from.
        origin: String,
    },
    /// No `weir-plugin-metadata` section was found.
    #[error(
        "{origin} has no `{SECTION}` section; it was not built with weir-plugin-sdk's export! macro"
    )]
    Missing {
        /// Where the bytes came from.
        origin: String,
    },
    /// The section is there but is not the JSON we expect.
    #[error("{origin} has an unreadable `{SECTION}` section: {source}")]
    Invalid {
        /// Where the bytes came from.
        origin: String,
        /// The JSON error.
        source: serde_json::Error,
    },
    /// The plugin needs a plugin API this host does not implement.
    #[error(
        "plugin `{name}` {version} needs plugin API {wanted}, but this Weir implements {HOST_API_VERSION}; {hint}"
    )]
    IncompatibleApi {
        /// Plugin name.
        name: String,
        /// Plugin version.
        version: String,
        /// The API version the plugin declares.
        wanted: String,
        /// What the user can do about it.
        hint: &'static str,
    },
    /// The metadata is internally inconsistent.
    #[error("plugin `{name}`: {problem}")]
    Inconsistent {
        /// Plugin name.
        name: String,
        /// What is wrong.
        problem: String,
    },
}

/// Reads and checks the metadata section of a component.
pub fn read(bytes: &[u8], origin: &str) -> Result<PluginMetadata, MetadataError> {
    let malformed = |source| MetadataError::Malformed {
        origin: origin.to_owned(),
        source,
    };
    let mut section = None;
    for (i, payload) in Parser::new(0).parse_all(bytes).enumerate() {
        match payload.map_err(malformed)? {
            Payload::Version { encoding, .. } if i == 0 && encoding != Encoding::Component => {
                return Err(MetadataError::NotAComponent {
                    origin: origin.to_owned(),
                });
            }
            Payload::CustomSection(reader) if reader.name() == SECTION && section.is_none() => {
                section = Some(reader.data());
            }
            _ => {}
        }
    }
    let data = section.ok_or_else(|| MetadataError::Missing {
        origin: origin.to_owned(),
    })?;
    let meta: PluginMetadata =
        serde_json::from_slice(data).map_err(|source| MetadataError::Invalid {
            origin: origin.to_owned(),
            source,
        })?;
    meta.check()?;
    Ok(meta)
}

impl PluginMetadata {
    /// Checks API compatibility and internal consistency.
    pub fn check(&self) -> Result<(), MetadataError> {
        let incompatible = |hint| MetadataError::IncompatibleApi {
            name: self.name.clone(),
            version: self.version.clone(),
            wanted: self.api_version.clone(),
            hint,
        };
        let wanted = semver::Version::parse(&self.api_version)
            .map_err(|_| incompatible("the apiVersion is not a semantic version"))?;
        if wanted.major != HOST_API_VERSION.major {
            return Err(incompatible(
                "a plugin must be built with an SDK of the same major version as Weir",
            ));
        }
        if wanted.minor > HOST_API_VERSION.minor {
            return Err(incompatible(
                "upgrade Weir, or rebuild the plugin with an older weir-plugin-sdk",
            ));
        }
        let inconsistent = |problem: String| MetadataError::Inconsistent {
            name: self.name.clone(),
            problem,
        };
        if self.name.trim().is_empty() {
            return Err(inconsistent("the plugin name is empty".into()));
        }
        if self.keys.is_empty() {
            return Err(inconsistent("it claims no keys".into()));
        }
        if let Some(key) = self.keys.iter().find(|k| k.trim().is_empty()) {
            return Err(inconsistent(format!("it claims an empty key `{key}`")));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mk_meta(api: &str) -> PluginMetadata {
        PluginMetadata {
            name: "demo".into(),
            version: "0.1.0".into(),
            api_version: api.into(),
            world: World::Options,
            keys: vec!["demo".into()],
            config_schema: BTreeMap::new(),
        }
    }

    #[test]
    fn same_major_older_or_equal_minor_is_compatible() {
        assert!(mk_meta("1.0.0").check().is_ok());
        assert!(mk_meta("1.0.7").check().is_ok());
    }

    #[test]
    fn newer_minor_or_other_major_is_refused_with_a_sentence() {
        let err = mk_meta("1.1.0").check().unwrap_err().to_string();
        assert!(
            err.contains("plugin `demo` 0.1.0 needs plugin API 1.1.0"),
            "{err}"
        );
        assert!(err.contains("upgrade Weir"), "{err}");
        let err = mk_meta("2.0.0").check().unwrap_err().to_string();
        assert!(err.contains("same major version"), "{err}");
        let err = mk_meta("one").check().unwrap_err().to_string();
        assert!(err.contains("not a semantic version"), "{err}");
    }

    #[test]
    fn garbage_bytes_are_malformed() {
        let err = read(b"not wasm at all", "junk.wasm").unwrap_err();
        assert!(matches!(err, MetadataError::Malformed { .. }), "{err}");
        assert!(err.to_string().starts_with("junk.wasm is not a valid"));
    }

    #[test]
    fn core_module_is_not_a_component() {
        let module = b"\0asm\x01\0\0\0";
        let err = read(module, "core.wasm").unwrap_err();
        assert!(matches!(err, MetadataError::NotAComponent { .. }), "{err}");
    }

    #[test]
    fn component_without_section_is_refused() {
        // An empty component: magic, then version 0x0d with layer 1.
        let component = b"\0asm\x0d\0\x01\0";
        let err = read(component, "empty.wasm").unwrap_err();
        assert!(matches!(err, MetadataError::Missing { .. }), "{err}");
    }
}
