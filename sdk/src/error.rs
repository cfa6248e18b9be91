//! Errors a plugin returns to the host: [`PluginError`] and [`FieldError`].

use std::fmt;

/// One problem found in a user's configuration, at a JSON-style field path.
///
/// The path is relative to the block the plugin received, for example
/// `abort.httpStatus` or `hosts[2].port`; an empty path means the whole block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// Path of the offending field (`hosts[2].port`), empty for the whole block.
    pub path: String,
    /// What is wrong and, where possible, what would be right.
    pub message: String,
}

// === impl FieldError ===

impl FieldError {
    /// Creates a field error at `path`.
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            message: message.into(),
        }
    }

    /// Returns the error with `parent` put in front of its path, so a helper
    /// that checks one host can report `hosts[1].port` while knowing only `port`.
    pub fn under(mut self, parent: &str) -> Self {
        self.path = join_path(parent, &self.path);
        self
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

impl std::error::Error for FieldError {}

/// Joins a parent path and a child path the way users write them:
/// `hosts[1]` + `port` is `hosts[1].port`, `hosts` + `[1]` is `hosts[1]`.
fn join_path(parent: &str, child: &str) -> String {
    match (parent.is_empty(), child.is_empty()) {
        (true, _) => child.to_owned(),
        (false, true) => parent.to_owned(),
        (false, false) if child.starts_with('[') => format!("{parent}{child}"),
        (false, false) => format!("{parent}.{child}"),
    }
}

/// Why a plugin declined to produce output.
///
/// The host turns it into a status condition on the object that carried the
/// configuration; the rest of the configuration keeps being served. It mirrors
/// the WIT `plugin-error` variant one to one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PluginError {
    /// The configuration block is invalid; one entry per bad field.
    #[error("invalid configuration: {}", join(.0))]
    InvalidConfig(Vec<FieldError>),
    /// The configuration refers to something that does not exist or cannot be used.
    #[error("unresolved reference: {0}")]
    Unresolved(FieldError),
    /// The input from the host could not be decoded or has an unexpected type.
    #[error("bad input: {0}")]
    BadInput(String),
    /// Any other failure inside the plugin.
    #[error("internal plugin error: {0}")]
    Internal(String),
}

fn join(errors: &[FieldError]) -> String {
    let parts: Vec<String> = errors.iter().map(ToString::to_string).collect();
    parts.join("; ")
}

// === impl PluginError ===

impl PluginError {
    /// One invalid field: `PluginError::invalid("abort.httpStatus", "must be 200..=599")`.
    pub fn invalid(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self::InvalidConfig(vec![FieldError::new(path, message)])
    }

    /// A reference at `path` that cannot be resolved.
    pub fn unresolved(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Unresolved(FieldError::new(path, message))
    }

    /// Input from the host that the plugin cannot use.
    pub fn bad_input(message: impl Into<String>) -> Self {
        Self::BadInput(message.into())
    }

    /// A failure inside the plugin.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::Internal(message.into())
    }

    /// `Ok(())` when `errors` is empty, otherwise [`PluginError::InvalidConfig`]
    /// with all of them, so validation can collect every problem before failing.
    pub fn check(errors: Vec<FieldError>) -> Result<(), Self> {
        if errors.is_empty() {
            Ok(())
        } else {
            Err(Self::InvalidConfig(errors))
        }
    }
}

impl From<FieldError> for PluginError {
    fn from(error: FieldError) -> Self {
        Self::InvalidConfig(vec![error])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_builds_one_field_error() {
        let err = PluginError::invalid("abort.httpStatus", "must be 200..=599");
        assert_eq!(
            err,
            PluginError::InvalidConfig(vec![FieldError::new(
                "abort.httpStatus",
                "must be 200..=599"
            )])
        );
        assert_eq!(
            err.to_string(),
            "invalid configuration: abort.httpStatus: must be 200..=599"
        );
    }

    #[test]
    fn under_joins_fields_and_indices() {
        assert_eq!(
            FieldError::new("port", "x").under("hosts[1]").path,
            "hosts[1].port"
        );
        assert_eq!(FieldError::new("[1]", "x").under("hosts").path, "hosts[1]");
        assert_eq!(FieldError::new("", "x").under("hosts").path, "hosts");
        assert_eq!(FieldError::new("port", "x").under("").path, "port");
    }

    #[test]
    fn check_passes_only_without_errors() {
        assert_eq!(PluginError::check(vec![]), Ok(()));
        let errors = vec![FieldError::new("a", "x"), FieldError::new("b", "y")];
        assert_eq!(
            PluginError::check(errors.clone()),
            Err(PluginError::InvalidConfig(errors))
        );
    }
}
