//! ListenerOption keys: their shapes (K8sGateway's) and what each changes on Envoy's
//! listener.

use serde::Deserialize;
use serde_json::Value;
use weir_plugin_sdk::envoy::config::accesslog::v3::{AccessLog, access_log};
use weir_plugin_sdk::envoy::config::core::v3::{
    DataSource, SocketOption, SubstitutionFormatString, data_source, socket_option,
    substitution_format_string,
};
use weir_plugin_sdk::envoy::config::listener::v3::{
    Listener, ListenerFilter, filter, listener, listener_filter,
};
use weir_plugin_sdk::envoy::extensions::access_loggers::file::v3::{
    FileAccessLog, file_access_log,
};
use weir_plugin_sdk::envoy::extensions::filters::listener::proxy_protocol::v3::ProxyProtocol;
use weir_plugin_sdk::envoy::extensions::filters::network::http_connection_manager::v3::HttpConnectionManager;
use weir_plugin_sdk::prost::Message;
use weir_plugin_sdk::prost_types;
use weir_plugin_sdk::{FieldError, PluginError, pack, parse_config};

/// Envoy's name for the HTTP connection manager network filter.
const HCM: &str = "envoy.filters.network.http_connection_manager";

/// One ListenerOption key's value.
#[derive(Debug, Clone, PartialEq)]
pub enum ListenerSetting {
    /// `accessLoggingService`: access logs of every HTTP request on the listener.
    AccessLogs(AccessLogging),
    /// `perConnectionBufferLimitBytes`: the read and write buffer limit per connection.
    BufferLimit(u32),
    /// `connectionBalanceConfig`: how connections spread over Envoy's workers.
    Balance(Balance),
    /// `socketOptions`: options set on the listening socket.
    SocketOptions(Vec<SocketOptionSpec>),
    /// `proxyProtocol`: connections start with a PROXY protocol header naming the client.
    ProxyProtocol(ProxyProtocolSpec),
}

/// `proxyProtocol`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProxyProtocolSpec {
    /// Also accept connections without the header (otherwise they are closed).
    #[serde(default)]
    pub allow_requests_without_proxy_protocol: bool,
}

impl ListenerSetting {
    /// Parses option `key`'s JSON value; field paths in errors are relative to it.
    pub fn from_json(key: &str, json: &str) -> Result<Self, PluginError> {
        Ok(match key {
            "accessLoggingService" => Self::AccessLogs(parse_config(json)?),
            "perConnectionBufferLimitBytes" => Self::BufferLimit(parse_config(json)?),
            "connectionBalanceConfig" => Self::Balance(parse_config(json)?),
            "socketOptions" => Self::SocketOptions(parse_config(json)?),
            "proxyProtocol" => Self::ProxyProtocol(parse_config(json)?),
            other => {
                return Err(PluginError::invalid(
                    "",
                    format!("`{other}` is not a ListenerOption key of this plugin"),
                ));
            }
        })
    }

    /// Applies the setting to `target`.
    pub fn apply(&self, target: &mut Listener) -> Result<(), PluginError> {
        match self {
            Self::AccessLogs(a) => a.apply(target),
            Self::BufferLimit(n) => {
                target.per_connection_buffer_limit_bytes = Some(*n);
                Ok(())
            }
            Self::Balance(_) => {
                target.connection_balance_config = Some(listener::ConnectionBalanceConfig {
                    balance_type: Some(
                        listener::connection_balance_config::BalanceType::ExactBalance(
                            listener::connection_balance_config::ExactBalance {},
                        ),
                    ),
                });
                Ok(())
            }
            Self::ProxyProtocol(p) => {
                let filter = ListenerFilter {
                    name: "envoy.filters.listener.proxy_protocol".to_owned(),
                    config_type: Some(listener_filter::ConfigType::TypedConfig(
                        pack(&ProxyProtocol {
                            allow_requests_without_proxy_protocol: p
                                .allow_requests_without_proxy_protocol,
                            ..Default::default()
                        })
                        .into(),
                    )),
                    ..Default::default()
                };
                // First: the header comes before anything else on the connection (TLS).
                target.listener_filters.insert(0, filter);
                Ok(())
            }
            Self::SocketOptions(list) => {
                let mut errors = Vec::new();
                let mut options = Vec::with_capacity(list.len());
                for (i, o) in list.iter().enumerate() {
                    match o.to_proto() {
                        Ok(p) => options.push(p),
                        Err(e) => errors.push(e.under(&format!("[{i}]"))),
                    }
                }
                PluginError::check(errors)?;
                target.socket_options.extend(options);
                Ok(())
            }
        }
    }
}

/// `connectionBalanceConfig`: only `exactBalance` (Envoy's only portable balancer).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Balance {
    /// Hand each new connection to the worker with the fewest (`{}`).
    pub exact_balance: serde_json::Map<String, Value>,
}

/// `socketOptions[]`: one socket option with an integer value.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SocketOptionSpec {
    /// What it is for (free text).
    #[serde(default)]
    pub description: String,
    /// `setsockopt` level (`SOL_SOCKET` is 1 on Linux).
    pub level: i64,
    /// `setsockopt` option name (`SO_KEEPALIVE` is 9 on Linux).
    pub name: i64,
    /// The integer value.
    pub int_value: i64,
    /// `STATE_PREBIND` (default), `STATE_BOUND` or `STATE_LISTENING`.
    pub state: Option<String>,
}

impl SocketOptionSpec {
    fn to_proto(&self) -> Result<SocketOption, FieldError> {
        let state = match self.state.as_deref() {
            None | Some("STATE_PREBIND") => 0,
            Some("STATE_BOUND") => 1,
            Some("STATE_LISTENING") => 2,
            Some(other) => {
                return Err(FieldError::new(
                    "state",
                    format!("`{other}` is not one of STATE_PREBIND, STATE_BOUND, STATE_LISTENING"),
                ));
            }
        };
        Ok(SocketOption {
            description: self.description.clone(),
            level: self.level,
            name: self.name,
            state,
            value: Some(socket_option::Value::IntValue(self.int_value)),
            ..Default::default()
        })
    }
}

/// `accessLoggingService`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AccessLogging {
    /// The logs to write.
    pub access_log: Vec<AccessLogSpec>,
}

/// `accessLoggingService.accessLog[]`: only file sinks.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AccessLogSpec {
    /// A file (or `/dev/stdout`) Envoy appends one line per request to.
    pub file_sink: FileSink,
}

/// `accessLog[].fileSink`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FileSink {
    /// The file.
    pub path: String,
    /// An Envoy format string (`%REQ(:PATH)% %RESPONSE_CODE%\n`).
    pub string_format: Option<String>,
    /// A JSON object whose values are Envoy format strings.
    pub json_format: Option<serde_json::Map<String, Value>>,
}

impl AccessLogging {
    /// Adds the file access logs to every HTTP connection manager on `target`.
    pub fn apply(&self, target: &mut Listener) -> Result<(), PluginError> {
        let mut errors = Vec::new();
        let mut logs = Vec::new();
        for (i, log) in self.access_log.iter().enumerate() {
            match log.file_sink.to_proto() {
                Ok(l) => logs.push(l),
                Err(e) => errors.push(e.under(&format!("accessLog[{i}].fileSink"))),
            }
        }
        PluginError::check(errors)?;
        for chain in &mut target.filter_chains {
            for f in chain.filters.iter_mut().filter(|f| f.name == HCM) {
                let Some(filter::ConfigType::TypedConfig(any)) = &mut f.config_type else {
                    continue;
                };
                let mut hcm = HttpConnectionManager::decode(any.value.as_slice()).map_err(|e| {
                    PluginError::bad_input(format!("the HTTP connection manager: {e}"))
                })?;
                hcm.access_log.extend(logs.iter().cloned());
                any.value = hcm.encode_to_vec();
            }
        }
        Ok(())
    }
}

impl FileSink {
    fn to_proto(&self) -> Result<AccessLog, FieldError> {
        if self.path.is_empty() {
            return Err(FieldError::new("path", "must not be empty"));
        }
        let format = match (&self.string_format, &self.json_format) {
            (Some(_), Some(_)) => {
                return Err(FieldError::new(
                    "jsonFormat",
                    "set stringFormat or jsonFormat, not both",
                ));
            }
            (Some(text), None) => Some(substitution_format_string::Format::TextFormatSource(
                DataSource {
                    specifier: Some(data_source::Specifier::InlineString(text.clone())),
                    ..Default::default()
                },
            )),
            (None, Some(fields)) => Some(substitution_format_string::Format::JsonFormat(
                to_struct(fields),
            )),
            (None, None) => None,
        };
        let file = FileAccessLog {
            path: self.path.clone(),
            access_log_format: format.map(|format| {
                file_access_log::AccessLogFormat::LogFormat(SubstitutionFormatString {
                    format: Some(format),
                    ..Default::default()
                })
            }),
        };
        Ok(AccessLog {
            name: "envoy.access_loggers.file".to_owned(),
            config_type: Some(access_log::ConfigType::TypedConfig(pack(&file).into())),
            ..Default::default()
        })
    }
}

/// A JSON object as a `google.protobuf.Struct`.
fn to_struct(fields: &serde_json::Map<String, Value>) -> prost_types::Struct {
    prost_types::Struct {
        fields: fields
            .iter()
            .map(|(k, v)| (k.clone(), to_value(v)))
            .collect(),
    }
}

fn to_value(v: &Value) -> prost_types::Value {
    use prost_types::value::Kind;
    let kind = match v {
        Value::Null => Kind::NullValue(0),
        Value::Bool(b) => Kind::BoolValue(*b),
        Value::Number(n) => Kind::NumberValue(n.as_f64().unwrap_or_default()),
        Value::String(s) => Kind::StringValue(s.clone()),
        Value::Array(a) => Kind::ListValue(prost_types::ListValue {
            values: a.iter().map(to_value).collect(),
        }),
        Value::Object(o) => Kind::StructValue(to_struct(o)),
    };
    prost_types::Value { kind: Some(kind) }
}
