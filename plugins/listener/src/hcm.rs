//! HttpListenerOption keys: their shapes (K8sGateway's) and what each changes on Envoy's
//! HTTP connection manager.

use serde::Deserialize;
use weir_plugin_sdk::envoy::config::core::v3::{
    Http1ProtocolOptions, Http2ProtocolOptions, HttpProtocolOptions,
};
use weir_plugin_sdk::envoy::extensions::filters::http::router::v3::Router;
use weir_plugin_sdk::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpConnectionManager, http_filter,
};
use weir_plugin_sdk::prost::Message;
use weir_plugin_sdk::prost_types;
use weir_plugin_sdk::{FieldError, HttpFilter, PluginError, duration, parse_config};

use crate::filters::{BufferLimit, GrpcWeb, Gzip, HealthCheck, LocalRatelimit, ROUTER};

/// One HttpListenerOption key's value.
#[derive(Debug, Clone, PartialEq)]
pub enum HttpListenerSetting {
    /// `httpConnectionManagerSettings`: the connection manager's own fields.
    Settings(Box<HcmSettings>),
    /// `gzip`: compress responses.
    Gzip(Gzip),
    /// `healthCheck`: Envoy answers a path itself.
    HealthCheck(HealthCheck),
    /// `httpLocalRatelimit`: a token bucket for the whole listener.
    LocalRatelimit(LocalRatelimit),
    /// `router`: the router filter's settings.
    Router(RouterSettings),
    /// `grpcWeb`: gRPC-Web clients reach gRPC backends.
    GrpcWeb(GrpcWeb),
    /// `buffer`: whole requests buffered up to a size (larger ones get 413).
    Buffer(BufferLimit),
}

impl HttpListenerSetting {
    /// Parses option `key`'s JSON value; field paths in errors are relative to it.
    pub fn from_json(key: &str, json: &str) -> Result<Self, PluginError> {
        Ok(match key {
            "httpConnectionManagerSettings" => Self::Settings(parse_config(json)?),
            "gzip" => Self::Gzip(parse_config(json)?),
            "healthCheck" => Self::HealthCheck(parse_config(json)?),
            "httpLocalRatelimit" => Self::LocalRatelimit(parse_config(json)?),
            "router" => Self::Router(parse_config(json)?),
            "grpcWeb" => Self::GrpcWeb(parse_config(json)?),
            "buffer" => Self::Buffer(parse_config(json)?),
            other => {
                return Err(PluginError::invalid(
                    "",
                    format!("`{other}` is not an HttpListenerOption key of this plugin"),
                ));
            }
        })
    }

    /// Applies the setting to `hcm`; the HTTP filter it needs, if any.
    pub fn apply(
        &self,
        hcm: &mut HttpConnectionManager,
    ) -> Result<Option<HttpFilter>, PluginError> {
        match self {
            Self::Settings(s) => s.apply(hcm).map(|()| None),
            Self::Gzip(g) => g.http_filter().map(Some),
            Self::HealthCheck(h) => h.http_filter().map(Some),
            Self::LocalRatelimit(l) => l.http_filter().map(Some),
            Self::Router(r) => r.apply(hcm).map(|()| None),
            Self::GrpcWeb(g) => Ok(g.http_filter()),
            Self::Buffer(b) => b.http_filter().map(Some),
        }
    }
}

/// `httpConnectionManagerSettings`, K8sGateway's names; durations are strings (`"30s"`).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HcmSettings {
    /// Do not append the client address to `x-forwarded-for`.
    pub skip_xff_append: Option<bool>,
    /// The `via` header value to add.
    pub via: Option<String>,
    /// Trusted hops in `x-forwarded-for` when finding the client address.
    pub xff_num_trusted_hops: Option<u32>,
    /// Use the connection's remote address as the client address.
    pub use_remote_address: Option<bool>,
    /// Generate `x-request-id` when missing.
    pub generate_request_id: Option<bool>,
    /// Answer `Expect: 100-continue` itself.
    pub proxy100_continue: Option<bool>,
    /// Idle timeout of a stream.
    pub stream_idle_timeout: Option<String>,
    /// Idle timeout of a connection.
    pub idle_timeout: Option<String>,
    /// Largest request headers, in KiB.
    pub max_request_headers_kb: Option<u32>,
    /// Timeout for the whole request to arrive.
    pub request_timeout: Option<String>,
    /// Timeout for the request headers to arrive.
    pub request_headers_timeout: Option<String>,
    /// Drain time on shutdown.
    pub drain_timeout: Option<String>,
    /// Delay before closing a connection after a response.
    pub delayed_close_timeout: Option<String>,
    /// The `server` header value.
    pub server_name: Option<String>,
    /// `OVERWRITE`, `APPEND_IF_ABSENT` or `PASS_THROUGH` for the `server` header.
    pub server_header_transformation: Option<String>,
    /// Accept HTTP/1.0 requests.
    pub accept_http10: Option<bool>,
    /// Host for HTTP/1.0 requests without one.
    pub default_host_for_http10: Option<String>,
    /// Keep an incoming `x-request-id`.
    pub preserve_external_request_id: Option<bool>,
    /// Longest life of a connection.
    pub max_connection_duration: Option<String>,
    /// Longest life of a stream.
    pub max_stream_duration: Option<String>,
    /// Most headers in a request.
    pub max_headers_count: Option<u32>,
    /// Most requests on one connection.
    pub max_requests_per_connection: Option<u32>,
    /// `ALLOW`, `REJECT_CLIENT_REQUEST` or `DROP_HEADER` for header names with `_`.
    pub headers_with_underscores_action: Option<String>,
    /// `SANITIZE`, `FORWARD_ONLY`, `APPEND_FORWARD`, `SANITIZE_SET` or
    /// `ALWAYS_FORWARD_ONLY` for `x-forwarded-client-cert`.
    pub forward_client_cert_details: Option<String>,
    /// `AUTO`, `HTTP1` or `HTTP2`.
    pub codec_type: Option<String>,
    /// Merge adjacent slashes in the path.
    pub merge_slashes: Option<bool>,
    /// Normalise the path (RFC 3986).
    pub normalize_path: Option<bool>,
    /// What to do with `%2F` and `%5C` in the path.
    pub path_with_escaped_slashes_action: Option<String>,
    /// HTTP/2 settings.
    pub http2_protocol_options: Option<Http2Settings>,
}

/// `httpConnectionManagerSettings.http2ProtocolOptions`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Http2Settings {
    /// Most concurrent streams on a connection.
    pub max_concurrent_streams: Option<u32>,
    /// Initial stream window size.
    pub initial_stream_window_size: Option<u32>,
    /// Initial connection window size.
    pub initial_connection_window_size: Option<u32>,
    /// Reset only the stream, not the connection, on an invalid message.
    pub override_stream_error_on_invalid_http_message: Option<bool>,
}

/// Reads the problems of one field while converting, so one pass reports them all.
#[derive(Default)]
struct Fields {
    errors: Vec<FieldError>,
}

impl Fields {
    /// A duration field, or `None` (and a problem) when it does not parse.
    fn duration(&mut self, field: &str, value: &Option<String>) -> Option<prost_types::Duration> {
        let text = value.as_deref()?;
        match duration::parse(text) {
            Ok(d) => Some(duration::to_proto(d)),
            Err(e) => {
                self.errors.push(FieldError::new(field, e.to_string()));
                None
            }
        }
    }

    /// An enum field by name, or `None` (and a problem naming the choices).
    fn choice(
        &mut self,
        field: &str,
        value: &Option<String>,
        names: &[(&str, i32)],
    ) -> Option<i32> {
        let text = value.as_deref()?;
        match names.iter().find(|(n, _)| *n == text) {
            Some((_, v)) => Some(*v),
            None => {
                let choices: Vec<&str> = names.iter().map(|(n, _)| *n).collect();
                self.errors.push(FieldError::new(
                    field,
                    format!("`{text}` is not one of {}", choices.join(", ")),
                ));
                None
            }
        }
    }

    fn done(self) -> Result<(), PluginError> {
        PluginError::check(self.errors)
    }
}

impl HcmSettings {
    /// Sets the fields given on `hcm`; every bad field is reported at once.
    pub fn apply(&self, hcm: &mut HttpConnectionManager) -> Result<(), PluginError> {
        let mut f = Fields::default();
        let stream_idle = f.duration("streamIdleTimeout", &self.stream_idle_timeout);
        let idle = f.duration("idleTimeout", &self.idle_timeout);
        let request = f.duration("requestTimeout", &self.request_timeout);
        let request_headers = f.duration("requestHeadersTimeout", &self.request_headers_timeout);
        let drain = f.duration("drainTimeout", &self.drain_timeout);
        let delayed_close = f.duration("delayedCloseTimeout", &self.delayed_close_timeout);
        let max_connection = f.duration("maxConnectionDuration", &self.max_connection_duration);
        let max_stream = f.duration("maxStreamDuration", &self.max_stream_duration);
        let server_header = f.choice(
            "serverHeaderTransformation",
            &self.server_header_transformation,
            &[
                ("OVERWRITE", 0),
                ("APPEND_IF_ABSENT", 1),
                ("PASS_THROUGH", 2),
            ],
        );
        let underscores = f.choice(
            "headersWithUnderscoresAction",
            &self.headers_with_underscores_action,
            &[
                ("ALLOW", 0),
                ("REJECT_CLIENT_REQUEST", 1),
                ("DROP_HEADER", 2),
            ],
        );
        let client_cert = f.choice(
            "forwardClientCertDetails",
            &self.forward_client_cert_details,
            &[
                ("SANITIZE", 0),
                ("FORWARD_ONLY", 1),
                ("APPEND_FORWARD", 2),
                ("SANITIZE_SET", 3),
                ("ALWAYS_FORWARD_ONLY", 4),
            ],
        );
        let codec = f.choice(
            "codecType",
            &self.codec_type,
            &[("AUTO", 0), ("HTTP1", 1), ("HTTP2", 2)],
        );
        let escaped_slashes = f.choice(
            "pathWithEscapedSlashesAction",
            &self.path_with_escaped_slashes_action,
            &[
                ("IMPLEMENTATION_SPECIFIC_DEFAULT", 0),
                ("KEEP_UNCHANGED", 1),
                ("REJECT_REQUEST", 2),
                ("UNESCAPE_AND_REDIRECT", 3),
                ("UNESCAPE_AND_FORWARD", 4),
            ],
        );
        if self
            .max_request_headers_kb
            .is_some_and(|kb| !(1..=8192).contains(&kb))
        {
            f.errors.push(FieldError::new(
                "maxRequestHeadersKb",
                "must be between 1 and 8192",
            ));
        }
        f.done()?;

        set(&mut hcm.skip_xff_append, self.skip_xff_append);
        set(&mut hcm.via, self.via.clone());
        set(&mut hcm.xff_num_trusted_hops, self.xff_num_trusted_hops);
        set_some(&mut hcm.use_remote_address, self.use_remote_address);
        set_some(&mut hcm.generate_request_id, self.generate_request_id);
        set(&mut hcm.proxy_100_continue, self.proxy100_continue);
        set_some(&mut hcm.stream_idle_timeout, stream_idle);
        set_some(&mut hcm.max_request_headers_kb, self.max_request_headers_kb);
        set_some(&mut hcm.request_timeout, request);
        set_some(&mut hcm.request_headers_timeout, request_headers);
        set_some(&mut hcm.drain_timeout, drain);
        set_some(&mut hcm.delayed_close_timeout, delayed_close);
        set(&mut hcm.server_name, self.server_name.clone());
        set(&mut hcm.server_header_transformation, server_header);
        set(
            &mut hcm.preserve_external_request_id,
            self.preserve_external_request_id,
        );
        set(&mut hcm.forward_client_cert_details, client_cert);
        set(&mut hcm.codec_type, codec);
        set(&mut hcm.merge_slashes, self.merge_slashes);
        set_some(&mut hcm.normalize_path, self.normalize_path);
        set(&mut hcm.path_with_escaped_slashes_action, escaped_slashes);

        if idle.is_some()
            || max_connection.is_some()
            || max_stream.is_some()
            || self.max_headers_count.is_some()
            || self.max_requests_per_connection.is_some()
            || underscores.is_some()
        {
            let common = hcm
                .common_http_protocol_options
                .get_or_insert_with(HttpProtocolOptions::default);
            set_some(&mut common.idle_timeout, idle);
            set_some(&mut common.max_connection_duration, max_connection);
            set_some(&mut common.max_stream_duration, max_stream);
            set_some(&mut common.max_headers_count, self.max_headers_count);
            set_some(
                &mut common.max_requests_per_connection,
                self.max_requests_per_connection,
            );
            set(&mut common.headers_with_underscores_action, underscores);
        }
        if self.accept_http10.is_some() || self.default_host_for_http10.is_some() {
            let http1 = hcm
                .http_protocol_options
                .get_or_insert_with(Http1ProtocolOptions::default);
            set(&mut http1.accept_http_10, self.accept_http10);
            set(
                &mut http1.default_host_for_http_10,
                self.default_host_for_http10.clone(),
            );
        }
        if let Some(h2) = &self.http2_protocol_options {
            let http2 = hcm
                .http2_protocol_options
                .get_or_insert_with(Http2ProtocolOptions::default);
            set_some(&mut http2.max_concurrent_streams, h2.max_concurrent_streams);
            set_some(
                &mut http2.initial_stream_window_size,
                h2.initial_stream_window_size,
            );
            set_some(
                &mut http2.initial_connection_window_size,
                h2.initial_connection_window_size,
            );
            set_some(
                &mut http2.override_stream_error_on_invalid_http_message,
                h2.override_stream_error_on_invalid_http_message,
            );
        }
        Ok(())
    }
}

/// Sets `field` to `value` when one is given.
fn set<T>(field: &mut T, value: Option<T>) {
    if let Some(v) = value {
        *field = v;
    }
}

/// Sets an optional `field` to `value` when one is given.
fn set_some<T>(field: &mut Option<T>, value: Option<T>) {
    if value.is_some() {
        *field = value;
    }
}

/// `router`: the router filter's settings.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RouterSettings {
    /// Leave out the `x-envoy-*` headers Envoy adds (`x-envoy-upstream-service-time`, …).
    pub suppress_envoy_headers: Option<bool>,
    /// Per-cluster dynamic stats.
    pub dynamic_stats: Option<bool>,
}

impl RouterSettings {
    /// Changes the router filter's config in `hcm`'s chain.
    pub fn apply(&self, hcm: &mut HttpConnectionManager) -> Result<(), PluginError> {
        let Some(filter) = hcm.http_filters.iter_mut().find(|f| f.name == ROUTER) else {
            return Err(PluginError::bad_input(
                "the HTTP connection manager has no router filter",
            ));
        };
        let mut router = match &filter.config_type {
            Some(http_filter::ConfigType::TypedConfig(any)) => Router::decode(any.value.as_slice())
                .map_err(|e| PluginError::bad_input(format!("the router config: {e}")))?,
            _ => Router::default(),
        };
        set(
            &mut router.suppress_envoy_headers,
            self.suppress_envoy_headers,
        );
        set_some(&mut router.dynamic_stats, self.dynamic_stats);
        filter.config_type = Some(http_filter::ConfigType::TypedConfig(
            weir_plugin_sdk::pack(&router).into(),
        ));
        Ok(())
    }
}
