//! Builds and checks the `weir-plugin-metadata` custom section at compile time.
//!
//! The section is UTF-8 JSON:
//! `{"name":…,"version":…,"apiVersion":…,"world":…,"keys":[…],"configSchema":{<key>:<schema>,…}}`.
//! [`export!`](crate::export) assembles it from string pieces with [`concat`],
//! because `API_VERSION` is a constant and not a literal `concat!` could take.

use serde_json::Value;

/// Total length of `parts`.
pub const fn total_len(parts: &[&str]) -> usize {
    let mut len = 0;
    let mut i = 0;
    while i < parts.len() {
        len += parts[i].len();
        i += 1;
    }
    len
}

/// `parts` concatenated into an array of exactly `N` bytes.
pub const fn concat<const N: usize>(parts: &[&str]) -> [u8; N] {
    let mut out = [0u8; N];
    let mut at = 0;
    let mut i = 0;
    while i < parts.len() {
        let bytes = parts[i].as_bytes();
        let mut j = 0;
        while j < bytes.len() {
            out[at] = bytes[j];
            at += 1;
            j += 1;
        }
        i += 1;
    }
    assert!(at == N, "metadata length mismatch");
    out
}

/// Whether `name` can go into the JSON unescaped and reads well in status:
/// non-empty ASCII letters, digits, `-`, `_` and `.`.
pub const fn is_valid_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    if bytes.is_empty() {
        return false;
    }
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if !(b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.') {
            return false;
        }
        i += 1;
    }
    true
}

/// Whether `text`, ignoring surrounding whitespace, starts with `{` and ends
/// with `}`: a cheap compile-time guard that the schema file is a JSON object.
pub const fn looks_like_object(text: &str) -> bool {
    let bytes = text.as_bytes();
    let mut start = 0;
    while start < bytes.len() && bytes[start].is_ascii_whitespace() {
        start += 1;
    }
    let mut end = bytes.len();
    while end > start && bytes[end - 1].is_ascii_whitespace() {
        end -= 1;
    }
    end > start + 1 && bytes[start] == b'{' && bytes[end - 1] == b'}'
}

/// The worlds a plugin can target, as the metadata names them.
const WORLDS: &[&str] = &["upstream-type", "options", "function-discovery"];

/// Checks a built metadata section fully: valid JSON with every field, and a
/// JSON Schema object in `configSchema` for exactly the claimed keys. The test
/// [`export!`](crate::export) generates in each plugin crate calls this.
pub fn check(section: &[u8]) -> Result<(), String> {
    let text = std::str::from_utf8(section).map_err(|err| format!("not UTF-8: {err}"))?;
    let value: Value = serde_json::from_str(text).map_err(|err| format!("not JSON: {err}"))?;
    for field in ["name", "version", "apiVersion", "world"] {
        match value.get(field) {
            Some(Value::String(s)) if !s.is_empty() => {}
            _ => return Err(format!("`{field}` must be a non-empty string")),
        }
    }
    let world = value["world"].as_str().unwrap_or_default();
    if !WORLDS.contains(&world) {
        return Err(format!("unknown world `{world}`"));
    }
    let keys: Vec<&str> = match value.get("keys").and_then(Value::as_array) {
        Some(keys) if !keys.is_empty() => keys.iter().filter_map(Value::as_str).collect(),
        _ => return Err("`keys` must be a non-empty array".into()),
    };
    let schemas = value
        .get("configSchema")
        .and_then(Value::as_object)
        .ok_or("`configSchema` must be an object mapping each key to its JSON schema")?;
    for key in &keys {
        match schemas.get(*key) {
            Some(Value::Object(_)) => {}
            Some(_) => return Err(format!("the schema of key `{key}` must be a JSON object")),
            None => {
                return Err(format!(
                    "the schema file has no schema for claimed key `{key}`"
                ));
            }
        }
    }
    if let Some(extra) = schemas.keys().find(|k| !keys.contains(&k.as_str())) {
        return Err(format!(
            "the schema file describes `{extra}`, which the plugin does not claim"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const PARTS: &[&str] = &["{\"a\":", "1", "}"];

    #[test]
    fn concat_joins_parts_into_an_exact_array() {
        const BYTES: [u8; total_len(PARTS)] = concat(PARTS);
        assert_eq!(&BYTES, b"{\"a\":1}");
    }

    #[test]
    fn names_are_restricted_to_safe_characters() {
        assert!(is_valid_name("static"));
        assert!(is_valid_name("future-api_2.0"));
        assert!(!is_valid_name(""));
        assert!(!is_valid_name("a\"b"));
        assert!(!is_valid_name("a b"));
    }

    #[test]
    fn schema_guard_wants_an_object() {
        assert!(looks_like_object(" {\"static\": {}}\n"));
        assert!(!looks_like_object("[]"));
        assert!(!looks_like_object("{"));
    }

    fn mk_section(keys: &str, schema: &str) -> String {
        format!(
            r#"{{"name":"static","version":"0.1.0","apiVersion":"1.0.0","world":"upstream-type","keys":{keys},"configSchema":{schema}}}"#
        )
    }

    #[test]
    fn check_accepts_a_complete_section() {
        assert_eq!(
            check(mk_section(r#"["static"]"#, r#"{"static":{"type":"object"}}"#).as_bytes()),
            Ok(())
        );
    }

    #[test]
    fn check_wants_a_schema_for_every_claimed_key() {
        let err =
            check(mk_section(r#"["static","dns"]"#, r#"{"static":{}}"#).as_bytes()).unwrap_err();
        assert!(err.contains("`dns`"), "{err}");
    }

    #[test]
    fn check_rejects_schemas_for_unclaimed_keys() {
        let err = check(mk_section(r#"["static"]"#, r#"{"static":{},"other":{}}"#).as_bytes())
            .unwrap_err();
        assert!(err.contains("`other`"), "{err}");
    }

    #[test]
    fn check_rejects_invalid_json() {
        assert!(check(b"{").unwrap_err().starts_with("not JSON"));
    }
}
