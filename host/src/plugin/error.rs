//! Errors of loading and calling plugins.
//!
//! Two layers, as at every plugin boundary: [`CallError`] means the host failed or the
//! guest misbehaved (trap, timeout, memory, bad output); the plugin *declining* an input
//! is [`CallError::Declined`] carrying the plugin's own [`PluginError`] with field paths.
//! Every error names the plugin, its version and a short digest of its file, so an
//! operator knows exactly which build misbehaved. All of them are safe to retry with a
//! fresh instance; none of them affects other plugins.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use super::bindings::PluginError;
use super::metadata::MetadataError;

/// Identifies one loaded plugin build: name, version and content digest.
///
/// Errors hold it in an [`Arc`]: it is shared with the [`LoadedPlugin`](super::LoadedPlugin)
/// rather than copied, and keeps `Result<_, CallError>` small on the call path.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PluginId {
    /// Plugin name from its metadata.
    pub name: String,
    /// Plugin version from its metadata.
    pub version: String,
    /// SHA-256 of the component file, hex.
    pub digest: String,
}

impl fmt::Display for PluginId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let short = self.digest.get(..12).unwrap_or(&self.digest);
        write!(
            f,
            "plugin `{}` {} (sha256:{short})",
            self.name, self.version
        )
    }
}

/// Why a plugin could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file could not be read.
    #[error("cannot read plugin file {path}: {source}")]
    Read {
        /// The path.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The metadata section is missing, malformed or incompatible.
    #[error(transparent)]
    Metadata(#[from] MetadataError),
    /// Another loaded plugin already claims one of this plugin's keys.
    #[error(
        "{plugin} claims {world} key `{key}`, which {owner} already claims; remove one of the two plugins"
    )]
    DuplicateKey {
        /// The plugin being loaded.
        plugin: Arc<PluginId>,
        /// Its world.
        world: super::World,
        /// The contested key.
        key: String,
        /// The plugin that already has it.
        owner: Arc<PluginId>,
    },
    /// A plugin with the same name is already loaded.
    #[error("{plugin} has the same name as the already loaded {owner}")]
    DuplicateName {
        /// The plugin being loaded.
        plugin: Arc<PluginId>,
        /// The plugin that already has the name.
        owner: Arc<PluginId>,
    },
    /// Compiling the component failed.
    #[error("{plugin} cannot be compiled: {reason}")]
    Compile {
        /// The plugin.
        plugin: Arc<PluginId>,
        /// Wasmtime's explanation.
        reason: String,
    },
    /// The component does not fit the world its metadata names, or imports something the
    /// sandbox does not provide (a socket, a file system, ...).
    #[error("{plugin} cannot be linked as a {world} plugin: {reason}")]
    Link {
        /// The plugin.
        plugin: Arc<PluginId>,
        /// The world its metadata names.
        world: super::World,
        /// Wasmtime's explanation.
        reason: String,
    },
}

/// Why a call into a plugin produced no usable output.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// No loaded plugin claims the key.
    #[error("no loaded {world} plugin claims the key `{key}`")]
    UnknownKey {
        /// The world that was searched.
        world: super::World,
        /// The unclaimed key.
        key: String,
    },
    /// The plugin declined the input; the message and field paths are the plugin's own.
    #[error("{plugin} rejected the configuration: {}", describe(.error))]
    Declined {
        /// The plugin.
        plugin: Arc<PluginId>,
        /// Its answer.
        error: PluginError,
    },
    /// The call ran past its deadline and was interrupted.
    #[error("{plugin} did not finish within {limit:?} and was stopped")]
    Timeout {
        /// The plugin.
        plugin: Arc<PluginId>,
        /// The per-call deadline.
        limit: Duration,
    },
    /// The plugin tried to use more memory than its store may have.
    #[error("{plugin} ran out of memory (the limit is {limit} bytes)")]
    OutOfMemory {
        /// The plugin.
        plugin: Arc<PluginId>,
        /// The per-store memory cap.
        limit: usize,
    },
    /// The guest trapped (a panic, an abort, an out-of-bounds access, ...).
    #[error("{plugin} crashed: {message}")]
    Crash {
        /// The plugin.
        plugin: Arc<PluginId>,
        /// The guest's panic message when it left one, else the trap.
        message: String,
    },
    /// An output was larger than allowed.
    #[error("{plugin} returned {what} of {size} bytes, more than the {limit}-byte limit")]
    OutputTooLarge {
        /// The plugin.
        plugin: Arc<PluginId>,
        /// Which output.
        what: &'static str,
        /// Its size.
        size: usize,
        /// The cap.
        limit: usize,
    },
    /// An output had a type URL this hook may not return.
    #[error("{plugin} returned {what} of type `{got}`, but only `{expected}` is allowed there")]
    WrongType {
        /// The plugin.
        plugin: Arc<PluginId>,
        /// Which output.
        what: &'static str,
        /// The allowed type URL.
        expected: String,
        /// The type URL it sent.
        got: String,
    },
    /// An output had the right type URL but its bytes do not decode as that type.
    #[error("{plugin} returned {what} that does not decode as `{type_url}`: {reason}")]
    Undecodable {
        /// The plugin.
        plugin: Arc<PluginId>,
        /// Which output.
        what: &'static str,
        /// The type URL.
        type_url: String,
        /// The decoder's complaint.
        reason: String,
    },
    /// The host could not set up or run the call (not the plugin's fault).
    #[error("{plugin} could not be called: {reason}")]
    Host {
        /// The plugin.
        plugin: Arc<PluginId>,
        /// What went wrong.
        reason: String,
    },
}

impl CallError {
    /// The plugin involved, if the error is about one.
    pub fn plugin(&self) -> Option<&PluginId> {
        match self {
            CallError::UnknownKey { .. } => None,
            CallError::Declined { plugin, .. }
            | CallError::Timeout { plugin, .. }
            | CallError::OutOfMemory { plugin, .. }
            | CallError::Crash { plugin, .. }
            | CallError::OutputTooLarge { plugin, .. }
            | CallError::WrongType { plugin, .. }
            | CallError::Undecodable { plugin, .. }
            | CallError::Host { plugin, .. } => Some(plugin.as_ref()),
        }
    }
}

/// Renders a plugin's own error with its field paths.
pub fn describe(error: &PluginError) -> String {
    match error {
        PluginError::InvalidConfig(fields) => fields
            .iter()
            .map(|f| format!("{}: {}", f.path, f.message))
            .collect::<Vec<_>>()
            .join("; "),
        PluginError::Unresolved(f) => format!("{}: {}", f.path, f.message),
        PluginError::BadInput(m) => format!("bad input: {m}"),
        PluginError::Internal(m) => m.clone(),
    }
}
