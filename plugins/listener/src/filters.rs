//! The HTTP filters HttpListenerOption keys add: `gzip` (compressor), `healthCheck` and
//! `httpLocalRatelimit`, each enabled for the whole listener.

use serde::Deserialize;
use weir_plugin_sdk::envoy::config::core::v3::{RuntimeFractionalPercent, TypedExtensionConfig};
use weir_plugin_sdk::envoy::config::route::v3::{HeaderMatcher, header_matcher};
use weir_plugin_sdk::envoy::extensions::compression::gzip::compressor::v3::Gzip as GzipLibrary;
use weir_plugin_sdk::envoy::extensions::filters::http::buffer::v3::Buffer;
use weir_plugin_sdk::envoy::extensions::filters::http::compressor::v3::{Compressor, compressor};
use weir_plugin_sdk::envoy::extensions::filters::http::grpc_web::v3::GrpcWeb as GrpcWebFilter;
use weir_plugin_sdk::envoy::extensions::filters::http::health_check::v3::HealthCheck as HealthCheckFilter;
use weir_plugin_sdk::envoy::extensions::filters::http::local_ratelimit::v3::LocalRateLimit;
use weir_plugin_sdk::envoy::r#type::matcher::v3::{StringMatcher, string_matcher};
use weir_plugin_sdk::envoy::r#type::v3::{FractionalPercent, fractional_percent};
use weir_plugin_sdk::token_bucket::TokenBucketSpec;
use weir_plugin_sdk::{FieldError, HttpFilter, PluginError, Stage, StageName, pack};

/// Envoy's name for the router filter, the last of every chain.
pub const ROUTER: &str = "envoy.filters.http.router";

/// `gzip`: K8sGateway's shape (Envoy's v2 gzip filter), built as Envoy's compressor
/// filter with the gzip library.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Gzip {
    /// zlib memory level, 1 to 9.
    pub memory_level: Option<u32>,
    /// `DEFAULT`, `BEST` (smallest output) or `SPEED`.
    pub compression_level: Option<String>,
    /// `DEFAULT`, `FILTERED`, `HUFFMAN` or `RLE`.
    pub compression_strategy: Option<String>,
    /// zlib window bits, 9 to 15.
    pub window_bits: Option<u32>,
    /// Smallest response body compressed, in bytes (Envoy's default 30).
    pub content_length: Option<u32>,
    /// Content types compressed (Envoy's default list of text types when empty).
    #[serde(default)]
    pub content_type: Vec<String>,
    /// Do not compress responses with an `etag` header.
    #[serde(default)]
    pub disable_on_etag_header: bool,
    /// Remove `accept-encoding` before the request goes upstream.
    #[serde(default)]
    pub remove_accept_encoding_header: bool,
}

impl Gzip {
    /// The compressor filter for this value.
    pub fn http_filter(&self) -> Result<HttpFilter, PluginError> {
        let mut errors = Vec::new();
        if self.memory_level.is_some_and(|l| !(1..=9).contains(&l)) {
            errors.push(FieldError::new("memoryLevel", "must be between 1 and 9"));
        }
        if self.window_bits.is_some_and(|b| !(9..=15).contains(&b)) {
            errors.push(FieldError::new("windowBits", "must be between 9 and 15"));
        }
        let level = match self.compression_level.as_deref() {
            None | Some("DEFAULT") => 0,
            Some("SPEED") => 1,
            Some("BEST") => 9,
            Some(other) => {
                errors.push(FieldError::new(
                    "compressionLevel",
                    format!("`{other}` is not one of DEFAULT, BEST, SPEED"),
                ));
                0
            }
        };
        let strategy = match self.compression_strategy.as_deref() {
            None | Some("DEFAULT") => 0,
            Some("FILTERED") => 1,
            Some("HUFFMAN") => 2,
            Some("RLE") => 3,
            Some(other) => {
                errors.push(FieldError::new(
                    "compressionStrategy",
                    format!("`{other}` is not one of DEFAULT, FILTERED, HUFFMAN, RLE"),
                ));
                0
            }
        };
        PluginError::check(errors)?;
        let library = GzipLibrary {
            memory_level: self.memory_level,
            compression_level: level,
            compression_strategy: strategy,
            window_bits: self.window_bits,
            ..Default::default()
        };
        // `content_type` is deprecated in favour of `content_type_matcher`; Envoy still
        // reads it, and it takes K8sGateway's plain list as it is.
        #[allow(deprecated)]
        let compressor = Compressor {
            compressor_library: Some(TypedExtensionConfig {
                name: "envoy.compression.gzip.compressor".to_owned(),
                typed_config: Some(pack(&library).into()),
            }),
            response_direction_config: Some(compressor::ResponseDirectionConfig {
                common_config: Some(compressor::CommonDirectionConfig {
                    min_content_length: self.content_length,
                    content_type: self.content_type.clone(),
                    ..Default::default()
                }),
                disable_on_etag_header: self.disable_on_etag_header,
                remove_accept_encoding_header: self.remove_accept_encoding_header,
                ..Default::default()
            }),
            ..Default::default()
        };
        Ok(HttpFilter::new(
            "envoy.filters.http.compressor",
            Stage::during(StageName::Route),
            &compressor,
        ))
    }
}

/// `healthCheck`: Envoy answers `path` with 200 itself (503 while draining), without
/// passing the request on.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HealthCheck {
    /// The exact path answered.
    pub path: String,
}

impl HealthCheck {
    /// The health check filter for this value.
    pub fn http_filter(&self) -> Result<HttpFilter, PluginError> {
        if !self.path.starts_with('/') {
            return Err(PluginError::invalid("path", "must start with /"));
        }
        let filter = HealthCheckFilter {
            pass_through_mode: Some(false),
            headers: vec![HeaderMatcher {
                name: ":path".to_owned(),
                header_match_specifier: Some(header_matcher::HeaderMatchSpecifier::StringMatch(
                    StringMatcher {
                        match_pattern: Some(string_matcher::MatchPattern::Exact(self.path.clone())),
                        ..Default::default()
                    },
                )),
                ..Default::default()
            }],
            ..Default::default()
        };
        Ok(HttpFilter::new(
            "envoy.filters.http.health_check",
            Stage::before(StageName::Fault),
            &filter,
        ))
    }
}

/// `httpLocalRatelimit`: one token bucket for the listener (or per connection).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LocalRatelimit {
    /// The bucket.
    pub default_limit: Option<TokenBucketSpec>,
    /// One bucket per connection instead of one per Envoy worker set.
    #[serde(default)]
    pub local_rate_limit_per_downstream_connection: bool,
    /// Add the `x-ratelimit-*` headers to responses.
    #[serde(default)]
    pub enable_x_ratelimit_headers: bool,
}

impl LocalRatelimit {
    /// The local rate limit filter for this value; over the limit Envoy answers 429.
    pub fn http_filter(&self) -> Result<HttpFilter, PluginError> {
        let Some(limit) = &self.default_limit else {
            return Err(PluginError::invalid(
                "defaultLimit",
                "is required on an HttpListenerOption",
            ));
        };
        let bucket = limit.to_proto().map_err(|errors| {
            PluginError::InvalidConfig(
                errors
                    .into_iter()
                    .map(|e| e.under("defaultLimit"))
                    .collect(),
            )
        })?;
        let always = |runtime_key: &str| RuntimeFractionalPercent {
            default_value: Some(FractionalPercent {
                numerator: 100,
                denominator: fractional_percent::DenominatorType::Hundred as i32,
            }),
            runtime_key: runtime_key.to_owned(),
        };
        let filter = LocalRateLimit {
            stat_prefix: "http_local_rate_limiter".to_owned(),
            token_bucket: Some(bucket),
            filter_enabled: Some(always("local_rate_limit_enabled")),
            filter_enforced: Some(always("local_rate_limit_enforced")),
            local_rate_limit_per_downstream_connection: self
                .local_rate_limit_per_downstream_connection,
            // DRAFT_VERSION_03: x-ratelimit-limit, -remaining and -reset.
            enable_x_ratelimit_headers: i32::from(self.enable_x_ratelimit_headers),
            ..Default::default()
        };
        Ok(HttpFilter::new(
            "envoy.filters.http.local_ratelimit",
            Stage::during(StageName::RateLimit),
            &filter,
        ))
    }
}

/// `grpcWeb`: translate gRPC-Web requests for gRPC backends (on unless `disable`).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GrpcWeb {
    /// Leave gRPC-Web off.
    #[serde(default)]
    pub disable: bool,
}

impl GrpcWeb {
    /// The gRPC-Web filter, unless disabled.
    pub fn http_filter(&self) -> Option<HttpFilter> {
        (!self.disable).then(|| {
            HttpFilter::new(
                "envoy.filters.http.grpc_web",
                Stage::after(StageName::Cors),
                &GrpcWebFilter::default(),
            )
        })
    }
}

/// `buffer`: buffer whole requests up to `maxRequestBytes`; larger ones get 413.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BufferLimit {
    /// Largest request body, in bytes.
    pub max_request_bytes: u32,
}

impl BufferLimit {
    /// The buffer filter for the whole listener (a route's `bufferPerRoute` overrides it).
    pub fn http_filter(&self) -> Result<HttpFilter, PluginError> {
        if self.max_request_bytes == 0 {
            return Err(PluginError::invalid(
                "maxRequestBytes",
                "must be at least 1",
            ));
        }
        Ok(HttpFilter::new(
            "envoy.filters.http.buffer",
            Stage::before(StageName::Route),
            &Buffer {
                max_request_bytes: Some(self.max_request_bytes),
            },
        ))
    }
}
