//! [`parse_config`]: typed, field-path-aware parsing of a user's JSON block, and
//! [`ConfigBlock`]: parsing plus the plugin's own checks, reporting every problem.

use serde::de::DeserializeOwned;
use serde_path_to_error::Segment;

use crate::{FieldError, PluginError};

/// Parses a configuration block (JSON text) into `T`.
///
/// Every serde failure becomes [`PluginError::InvalidConfig`] with one
/// [`FieldError`] whose path says where in the block it happened
/// (`hosts[1].port`), so users see the offending field in status. Put
/// `#[serde(deny_unknown_fields)]` on `T` to reject typos by name.
///
/// ```
/// #[derive(Debug, serde::Deserialize)]
/// #[serde(rename_all = "camelCase", deny_unknown_fields)]
/// struct Host { addr: String, port: u16 }
///
/// let err = weir_plugin_sdk::parse_config::<Vec<Host>>(r#"[{"addr":"a","port":70000}]"#)
///     .unwrap_err();
/// assert_eq!(
///     err,
///     weir_plugin_sdk::PluginError::invalid(
///         "[0].port",
///         "invalid value: integer `70000`, expected u16",
///     )
/// );
/// ```
pub fn parse_config<T: DeserializeOwned>(json: &str) -> Result<T, PluginError> {
    // Fast path: most blocks are valid, and tracking the path of every field costs
    // about as much as the parse itself. Parsing is deterministic, so on failure the
    // slow path below fails the same way and tells us where.
    if let Ok(value) = serde_json::from_str(json) {
        return Ok(value);
    }
    let mut deserializer = serde_json::Deserializer::from_str(json);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(to_field_error)?;
    // Trailing garbage after the value (`{} x`) is an error too.
    deserializer
        .end()
        .map_err(|err| FieldError::new("", message(&err)))?;
    Ok(value)
}

/// A configuration block that checks itself once parsed.
///
/// Implement [`ConfigBlock::problems`] with the checks serde cannot express (ranges,
/// formats, fields that contradict each other) and call [`ConfigBlock::from_json`] from
/// both `validate` and `translate`, so the two always agree.
///
/// ```
/// use weir_plugin_sdk::{ConfigBlock, FieldError, PluginError};
///
/// #[derive(serde::Deserialize)]
/// struct Block { port: i64 }
///
/// impl ConfigBlock for Block {
///     fn problems(&self) -> Vec<FieldError> {
///         match self.port {
///             1..=65535 => Vec::new(),
///             port => vec![FieldError::new("port", format!("must be 1..=65535, got {port}"))],
///         }
///     }
/// }
///
/// assert!(Block::from_json(r#"{"port": 80}"#).is_ok());
/// assert_eq!(
///     Block::from_json(r#"{"port": 0}"#).err(),
///     Some(PluginError::invalid("port", "must be 1..=65535, got 0")),
/// );
/// ```
pub trait ConfigBlock: DeserializeOwned {
    /// Every problem in the parsed block, with field paths; empty when it is valid.
    fn problems(&self) -> Vec<FieldError>;

    /// Parses a block with [`parse_config`], then fails with every one of
    /// [`ConfigBlock::problems`] at once, if there are any.
    fn from_json(json: &str) -> Result<Self, PluginError> {
        let config: Self = parse_config(json)?;
        PluginError::check(config.problems())?;
        Ok(config)
    }
}

fn to_field_error(err: serde_path_to_error::Error<serde_json::Error>) -> PluginError {
    let path = format_path(err.path());
    FieldError::new(path, message(err.inner())).into()
}

/// Formats a path the way users write it: `hosts[1].port`, empty for the root.
fn format_path(path: &serde_path_to_error::Path) -> String {
    let mut out = String::new();
    for segment in path.iter() {
        match segment {
            Segment::Seq { index } => out.push_str(&format!("[{index}]")),
            Segment::Map { key } | Segment::Enum { variant: key } => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(key);
            }
            Segment::Unknown => {}
        }
    }
    out
}

/// The serde_json message; the line/column suffix is kept only for syntax
/// errors, where the field path alone cannot say where the problem is.
fn message(err: &serde_json::Error) -> String {
    let text = err.to_string();
    if err.is_syntax() || err.is_eof() {
        return text;
    }
    match text.rfind(" at line ") {
        Some(at) => text[..at].to_owned(),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    #[allow(dead_code)]
    struct Config {
        hosts: Vec<Host>,
        #[serde(default)]
        use_tls: bool,
    }

    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    #[allow(dead_code)]
    struct Host {
        addr: String,
        port: u16,
    }

    fn field_error(json: &str) -> FieldError {
        match parse_config::<Config>(json).unwrap_err() {
            PluginError::InvalidConfig(mut errors) if errors.len() == 1 => errors.remove(0),
            other => panic!("unexpected error {other:?}"),
        }
    }

    #[test]
    fn parse_config_accepts_a_valid_block() {
        let config: Config =
            parse_config(r#"{"hosts":[{"addr":"a","port":1}],"useTls":true}"#).unwrap();
        assert!(config.use_tls);
    }

    #[test]
    fn out_of_range_value_names_its_index_and_field() {
        let err = field_error(r#"{"hosts":[{"addr":"a","port":1},{"addr":"b","port":70000}]}"#);
        assert_eq!(err.path, "hosts[1].port");
        assert_eq!(err.message, "invalid value: integer `70000`, expected u16");
    }

    #[test]
    fn missing_field_names_its_parent() {
        let err = field_error(r#"{"hosts":[{"port":1}]}"#);
        assert_eq!(err.path, "hosts[0]");
        assert_eq!(err.message, "missing field `addr`");
    }

    #[test]
    fn unknown_field_is_named() {
        let err = field_error(r#"{"hosts":[],"useTSL":true}"#);
        assert!(err.message.contains("unknown field `useTSL`"), "{err}");
    }

    #[test]
    fn syntax_error_keeps_its_position() {
        let err = field_error(r#"{"hosts":[}"#);
        assert!(err.message.contains("line 1 column"), "{err}");
    }

    #[test]
    fn trailing_characters_are_rejected() {
        let err = field_error(r#"{"hosts":[]} x"#);
        assert!(err.message.contains("trailing characters"), "{err}");
    }
}
