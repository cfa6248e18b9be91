//! Envoy messages as proto3 JSON, the way Envoy itself prints them.
//!
//! `envoy-types` gives us prost structs without serde support, so this module renders
//! them by reflection. The build script (`host/build/descriptors.rs`) compiles the
//! vendored protos in `sdk/proto/` — the same files the SDK builds plugins' Envoy types
//! from — into a `FileDescriptorSet` that is embedded here. A message is encoded,
//! decoded again as a [`prost_reflect::DynamicMessage`] and serialized with the proto3
//! JSON mapping: enums by name (`"STRICT_DNS"`), `Any` expanded in place with its
//! `"@type"`, durations as `"1.500s"`, wrapper types as bare values, 64-bit integers as
//! strings, and fields at their default value left out.
//!
//! Field names come in two spellings, picked with [`JsonStyle`]; Envoy reads both:
//!
//! | style | names | what prints it |
//! |---|---|---|
//! | [`JsonStyle::Canonical`] | `connectTimeout` | the proto3 JSON mapping (protobuf's `MessageToJson`) |
//! | [`JsonStyle::ConfigDump`] | `connect_timeout` | Envoy's admin `/config_dump` |
//!
//! Start at [`to_json`]. [`any_to_json`] renders an encoded message with its type URL
//! (what plugins hand back), and [`redact_secret`] hides key material before a rendering
//! leaves the process. Object keys come out sorted (a [`Value`] keeps them in a
//! `BTreeMap`), so the same message always prints the same text; Envoy prints fields in
//! field-number order instead, which no JSON reader depends on.
//!
//! Every message is checked before it is rendered: an `Any` whose type the descriptor
//! set lacks, or a field number it does not know (envoy-types upgraded without
//! re-running `sdk/proto/update.py`), is a [`JsonError`] naming the field path, never
//! output with parts silently missing.

use std::sync::LazyLock;

use prost_reflect::{
    DescriptorPool, DynamicMessage, MapKey, MessageDescriptor, ReflectMessage, SerializeOptions,
    Value as ReflectValue,
};
use serde::{Serialize, Serializer};
use serde_json::Value;

/// The encoded `FileDescriptorSet` of `sdk/proto/`, written by the build script.
static DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/envoy_descriptors.bin"));

/// The decoded descriptor set, built on first use. The error is kept as text so every
/// caller can report it; it only happens if the build produced a broken set.
static POOL: LazyLock<Result<DescriptorPool, String>> =
    LazyLock::new(|| DescriptorPool::decode(DESCRIPTOR_SET).map_err(|err| err.to_string()));

/// What [`redact_secret`] puts in place of key material.
pub const REDACTED: &str = "[redacted]";

/// Full name of `google.protobuf.Any`, which the JSON mapping expands in place.
const ANY: &str = "google.protobuf.Any";

/// Fields whose value is key material: the private parts of a
/// `envoy.extensions.transport_sockets.tls.v3.Secret` (and of the TLS contexts that
/// embed the same messages), in both spellings.
const SECRET_FIELDS: &[&str] = &[
    // TlsCertificate
    "private_key",
    "privateKey",
    "password",
    "pkcs12",
    "private_key_provider",
    "privateKeyProvider",
    // Secret.session_ticket_keys, DownstreamTlsContext.session_ticket_keys
    "session_ticket_keys",
    "sessionTicketKeys",
    // Secret.generic_secret
    "generic_secret",
    "genericSecret",
];

/// `envoy.config.core.v3.DataSource` fields that carry data rather than name it.
const INLINE_FIELDS: &[&str] = &[
    "inline_bytes",
    "inlineBytes",
    "inline_string",
    "inlineString",
];

/// How field names are spelled; both are valid proto3 JSON and Envoy reads either.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum JsonStyle {
    /// lowerCamelCase JSON names (`connectTimeout`): the proto3 JSON mapping's own.
    #[default]
    Canonical,
    /// The proto field names (`connect_timeout`), exactly as Envoy's `/config_dump`
    /// prints them.
    ConfigDump,
}

/// Why a message could not be rendered. None of these is worth retrying: the same
/// message fails the same way.
#[derive(Debug, thiserror::Error)]
pub enum JsonError {
    /// The embedded descriptor set does not decode: a build problem, not an input one.
    #[error("the Envoy descriptor set built into weir is unusable: {0}")]
    Descriptors(String),
    /// A message type (top level or inside an `Any`) that `sdk/proto/` does not have.
    #[error(
        "unknown Envoy message type `{type_name}`{}; add its proto to the roots in \
         sdk/proto/update.py and re-run it",
        at(.path)
    )]
    UnknownType {
        /// Full name of the type, such as `envoy.config.cluster.v3.Cluster`.
        type_name: String,
        /// Where it was met, as proto field names (`filter_chains[0].filters[0].typed_config`).
        path: String,
    },
    /// An `Any` whose type URL names no message.
    #[error("malformed type URL {type_url:?}{}: expected `<prefix>/<message name>`", at(.path))]
    BadTypeUrl {
        /// The type URL as found.
        type_url: String,
        /// Where it was met.
        path: String,
    },
    /// Bytes that do not decode as the message type they claim to be.
    #[error("cannot decode `{type_name}`{}: {source}", at(.path))]
    Decode {
        /// The type the bytes were decoded as.
        type_name: String,
        /// Where they were met.
        path: String,
        /// prost's reason.
        #[source]
        source: prost::DecodeError,
    },
    /// A field number the descriptor set lacks, which would vanish from the output:
    /// envoy-types knows a newer API than `sdk/proto/` holds.
    #[error(
        "`{type_name}`{} has field number {number}, which sdk/proto does not know; re-run \
         sdk/proto/update.py for the envoy-types version the host uses",
        at(.path)
    )]
    UnknownField {
        /// The message holding the field.
        type_name: String,
        /// Where the message was met.
        path: String,
        /// The unknown field's number.
        number: u32,
    },
    /// The JSON mapping refused a value, such as a duration beyond ±10,000 years.
    #[error("cannot render `{type_name}` as JSON: {source}")]
    Serialize {
        /// The top-level message being rendered.
        type_name: String,
        /// serde_json's reason.
        #[source]
        source: serde_json::Error,
    },
}

/// ` at <path>` for a non-empty path, for error messages.
fn at(path: &str) -> String {
    if path.is_empty() {
        String::new()
    } else {
        format!(" at {path}")
    }
}

/// The descriptors of every Envoy message in `sdk/proto/` (plus the well-known types),
/// decoded once.
pub fn descriptor_pool() -> Result<&'static DescriptorPool, JsonError> {
    POOL.as_ref()
        .map_err(|err| JsonError::Descriptors(err.clone()))
}

/// Renders `msg` as canonical proto3 JSON (lowerCamelCase names).
///
/// ```
/// use envoy_types::pb::envoy::config::cluster::v3::{Cluster, cluster};
/// use envoy_types::pb::google::protobuf::Duration;
///
/// let cluster = Cluster {
///     name: "backend".into(),
///     connect_timeout: Some(Duration { seconds: 1, nanos: 500_000_000 }),
///     cluster_discovery_type: Some(cluster::ClusterDiscoveryType::Type(
///         cluster::DiscoveryType::StrictDns as i32,
///     )),
///     ..Default::default()
/// };
/// let json = weir::envoy_json::to_json(&cluster)?;
/// assert_eq!(
///     json,
///     serde_json::json!({"name": "backend", "type": "STRICT_DNS", "connectTimeout": "1.500s"})
/// );
/// # Ok::<(), weir::envoy_json::JsonError>(())
/// ```
pub fn to_json<M: prost::Message + prost::Name>(msg: &M) -> Result<Value, JsonError> {
    to_json_with(msg, JsonStyle::Canonical)
}

/// Renders `msg` as proto3 JSON with the field names of `style`.
pub fn to_json_with<M: prost::Message + prost::Name>(
    msg: &M,
    style: JsonStyle,
) -> Result<Value, JsonError> {
    let message = to_dynamic(&M::full_name(), &msg.encode_to_vec())?;
    to_value(&message, style)
}

/// Renders an encoded message named by its type URL (the parts of a
/// `google.protobuf.Any`, as plugins return them) as a JSON object that starts with its
/// `"@type"`, the way Envoy prints an `Any`.
pub fn any_to_json(type_url: &str, value: &[u8], style: JsonStyle) -> Result<Value, JsonError> {
    let any = envoy_types::pb::google::protobuf::Any {
        type_url: type_url.to_owned(),
        value: value.to_vec(),
    };
    let message = to_dynamic(ANY, &prost::Message::encode_to_vec(&any))?;
    to_value(&message, style)
}

/// Replaces the key material in a rendered `envoy.extensions.transport_sockets.tls.v3.Secret`
/// with `"[redacted]"`, so it can be shown or logged.
///
/// Under `tls_certificate` that is `private_key`, `password`, `pkcs12` and the private
/// key provider's config; then every `session_ticket_keys` key and the
/// `generic_secret`. Where those are `DataSource`s, their `inline_bytes` and
/// `inline_string` are replaced and a `filename` or `environment_variable` is kept (it
/// names the material, it is not the material). Certificate chains, OCSP staples and
/// validation contexts are public and stay.
///
/// The walk goes by field name through the whole value, in either [`JsonStyle`], so it
/// also covers Secrets inside a config dump (`SecretsConfigDump`) and the same fields in
/// TLS contexts inlined into listeners and clusters. The result is for display: Envoy
/// would reject `"[redacted]"` as `inline_bytes`.
pub fn redact_secret(value: &mut Value) {
    match value {
        Value::Object(fields) => {
            for (name, field) in fields.iter_mut() {
                if SECRET_FIELDS.contains(&name.as_str()) {
                    redact_material(field);
                } else {
                    redact_secret(field);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(redact_secret),
        _ => {}
    }
}

/// Redacts the value of a secret field: the field itself when it is a bare string, else
/// the inline parts of every `DataSource` within it.
fn redact_material(value: &mut Value) {
    match value {
        Value::String(_) | Value::Number(_) => *value = Value::String(REDACTED.to_owned()),
        _ => redact_inline(value),
    }
}

/// Replaces every `inline_bytes` and `inline_string` below `value`.
fn redact_inline(value: &mut Value) {
    match value {
        Value::Object(fields) => {
            for (name, field) in fields.iter_mut() {
                if INLINE_FIELDS.contains(&name.as_str()) {
                    *field = Value::String(REDACTED.to_owned());
                } else {
                    redact_inline(field);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(redact_inline),
        _ => {}
    }
}

// === rendering ===

/// A dynamic message together with the options to serialize it with.
struct Rendered<'a> {
    message: &'a DynamicMessage,
    options: SerializeOptions,
}

impl<'a> Rendered<'a> {
    fn new(message: &'a DynamicMessage, style: JsonStyle) -> Self {
        // The defaults are the proto3 JSON mapping: enum names, 64-bit integers as
        // strings, default values skipped.
        let options = SerializeOptions::new().use_proto_field_name(style == JsonStyle::ConfigDump);
        Self { message, options }
    }
}

impl Serialize for Rendered<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.message
            .serialize_with_options(serializer, &self.options)
    }
}

fn to_value(message: &DynamicMessage, style: JsonStyle) -> Result<Value, JsonError> {
    serde_json::to_value(Rendered::new(message, style)).map_err(|source| JsonError::Serialize {
        type_name: message.descriptor().full_name().to_owned(),
        source,
    })
}

/// Decodes `bytes` as the message `type_name` and checks it can be rendered whole.
fn to_dynamic(type_name: &str, bytes: &[u8]) -> Result<DynamicMessage, JsonError> {
    let pool = descriptor_pool()?;
    let message = decode(pool, type_name, bytes, "")?;
    check_message(pool, &message, "")?;
    Ok(message)
}

fn message_descriptor(
    pool: &DescriptorPool,
    type_name: &str,
    path: &str,
) -> Result<MessageDescriptor, JsonError> {
    pool.get_message_by_name(type_name)
        .ok_or_else(|| JsonError::UnknownType {
            type_name: type_name.to_owned(),
            path: path.to_owned(),
        })
}

fn decode(
    pool: &DescriptorPool,
    type_name: &str,
    bytes: &[u8],
    path: &str,
) -> Result<DynamicMessage, JsonError> {
    let descriptor = message_descriptor(pool, type_name, path)?;
    DynamicMessage::decode(descriptor, bytes).map_err(|source| JsonError::Decode {
        type_name: type_name.to_owned(),
        path: path.to_owned(),
        source,
    })
}

// === checking ===

/// Walks `message` the way the serializer will, so that what would make it fail midway
/// or drop data fails here, with the path of the offending field.
fn check_message(
    pool: &DescriptorPool,
    message: &DynamicMessage,
    path: &str,
) -> Result<(), JsonError> {
    let descriptor = message.descriptor();
    if let Some(unknown) = message.unknown_fields().next() {
        return Err(JsonError::UnknownField {
            type_name: descriptor.full_name().to_owned(),
            path: path.to_owned(),
            number: unknown.number(),
        });
    }
    if descriptor.full_name() == ANY {
        let type_url = message
            .get_field_by_name("type_url")
            .and_then(|value| value.as_str().map(str::to_owned))
            .unwrap_or_default();
        let value = message
            .get_field_by_name("value")
            .and_then(|value| value.as_bytes().cloned())
            .unwrap_or_default();
        let type_name = type_url_name(&type_url).ok_or_else(|| JsonError::BadTypeUrl {
            type_url: type_url.clone(),
            path: path.to_owned(),
        })?;
        // The JSON mapping flattens the payload into the Any's own object, so its
        // fields sit at the same path.
        let payload = decode(pool, type_name, &value, path)?;
        return check_message(pool, &payload, path);
    }
    for (field, value) in message.fields() {
        let field_path = if path.is_empty() {
            field.name().to_owned()
        } else {
            format!("{path}.{}", field.name())
        };
        check_value(pool, value, &field_path)?;
    }
    Ok(())
}

fn check_value(pool: &DescriptorPool, value: &ReflectValue, path: &str) -> Result<(), JsonError> {
    match value {
        ReflectValue::Message(message) => check_message(pool, message, path),
        ReflectValue::List(items) => items
            .iter()
            .enumerate()
            .try_for_each(|(i, item)| check_value(pool, item, &format!("{path}[{i}]"))),
        ReflectValue::Map(entries) => entries.iter().try_for_each(|(key, item)| {
            check_value(pool, item, &format!("{path}[{}]", map_key(key)))
        }),
        _ => Ok(()),
    }
}

fn map_key(key: &MapKey) -> String {
    match key {
        MapKey::String(key) => format!("{key:?}"),
        MapKey::Bool(key) => key.to_string(),
        MapKey::I32(key) => key.to_string(),
        MapKey::I64(key) => key.to_string(),
        MapKey::U32(key) => key.to_string(),
        MapKey::U64(key) => key.to_string(),
    }
}

/// The message name in a type URL: what follows the last `/`, which must be there.
fn type_url_name(type_url: &str) -> Option<&str> {
    type_url
        .rsplit_once('/')
        .map(|(_, name)| name)
        .filter(|name| !name.is_empty())
}

#[cfg(test)]
mod tests;
