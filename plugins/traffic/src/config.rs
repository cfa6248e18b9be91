//! The traffic policy values: serde shapes (K8sGateway's), checks with field paths, and
//! the Envoy per-filter configs and HTTP filters they become.

use serde::Deserialize;
use weir_plugin_sdk::envoy::config::core::v3::RuntimeFractionalPercent;
use weir_plugin_sdk::envoy::extensions::filters::http::buffer::v3::{
    Buffer, BufferPerRoute, buffer_per_route,
};
use weir_plugin_sdk::envoy::extensions::filters::http::cors::v3::{Cors as CorsFilter, CorsPolicy};
use weir_plugin_sdk::envoy::extensions::filters::http::csrf::v3::CsrfPolicy;
use weir_plugin_sdk::envoy::extensions::filters::http::local_ratelimit::v3::LocalRateLimit;
use weir_plugin_sdk::envoy::r#type::matcher::v3::{RegexMatcher, StringMatcher, string_matcher};
use weir_plugin_sdk::envoy::r#type::v3::{FractionalPercent, fractional_percent};
use weir_plugin_sdk::token_bucket::TokenBucketSpec;
use weir_plugin_sdk::{
    FieldError, HttpFilter, PluginError, Stage, StageName, pack, parse_config, prost_types,
};

/// Envoy's CORS filter.
pub const CORS: &str = "envoy.filters.http.cors";
/// Envoy's CSRF filter.
pub const CSRF: &str = "envoy.filters.http.csrf";
/// Envoy's buffer filter.
pub const BUFFER: &str = "envoy.filters.http.buffer";
/// Envoy's local rate limit filter.
pub const LOCAL_RATELIMIT: &str = "envoy.filters.http.local_ratelimit";

/// One traffic policy value, by key.
#[derive(Debug, Clone, PartialEq)]
pub enum Policy {
    /// `cors`.
    Cors(Cors),
    /// `csrf`.
    Csrf(Csrf),
    /// `bufferPerRoute`.
    Buffer(BufferSpec),
    /// `localRatelimit`: a token bucket (K8sGateway's shape) for the route (or virtual
    /// host); over it Envoy answers 429.
    LocalRatelimit(TokenBucketSpec),
}

impl Policy {
    /// Parses option `key`'s JSON value; field paths in errors are relative to it.
    pub fn from_json(key: &str, json: &str) -> Result<Self, PluginError> {
        Ok(match key {
            "cors" => Self::Cors(parse_config(json)?),
            "csrf" => Self::Csrf(parse_config(json)?),
            "bufferPerRoute" => Self::Buffer(parse_config(json)?),
            "localRatelimit" => Self::LocalRatelimit(parse_config(json)?),
            other => {
                return Err(PluginError::invalid(
                    "",
                    format!("`{other}` is not a key of this plugin"),
                ));
            }
        })
    }

    /// The filter name and the per-filter config this value sets on a route or virtual
    /// host; every bad field is reported at once.
    pub fn per_filter(&self) -> Result<(&'static str, prost_types::Any), PluginError> {
        Ok(match self {
            Self::Cors(c) => (CORS, pack(&c.to_policy()?).into()),
            Self::Csrf(c) => (CSRF, pack(&c.to_policy()?).into()),
            Self::Buffer(b) => (BUFFER, pack(&b.to_per_route()?).into()),
            Self::LocalRatelimit(t) => (LOCAL_RATELIMIT, pack(&Self::local_ratelimit(t)?).into()),
        })
    }

    /// The HTTP filter the listener needs for this policy; it does nothing on routes
    /// without a per-filter config.
    pub fn http_filter(&self) -> HttpFilter {
        match self {
            Self::Cors(_) => HttpFilter::new(CORS, Stage::during(StageName::Cors), &CorsFilter {}),
            // Enabled for no request unless a route's policy says otherwise.
            Self::Csrf(_) => HttpFilter::new(
                CSRF,
                Stage::after(StageName::Cors),
                &CsrfPolicy {
                    filter_enabled: Some(percent(0, "csrf_enabled")),
                    ..Default::default()
                },
            ),
            // The listener's buffer limit only matters where a route enables the filter.
            Self::Buffer(_) => HttpFilter::new(
                BUFFER,
                Stage::before(StageName::Route),
                &Buffer {
                    max_request_bytes: Some(1 << 20),
                },
            )
            .disabled(true),
            Self::LocalRatelimit(_) => HttpFilter::new(
                LOCAL_RATELIMIT,
                Stage::during(StageName::RateLimit),
                &LocalRateLimit {
                    stat_prefix: "http_local_rate_limiter".to_owned(),
                    ..Default::default()
                },
            ),
        }
    }
}

/// `numerator`% of requests (runtime key `key`).
fn percent(numerator: u32, key: &str) -> RuntimeFractionalPercent {
    RuntimeFractionalPercent {
        default_value: Some(FractionalPercent {
            numerator,
            denominator: fractional_percent::DenominatorType::Hundred as i32,
        }),
        runtime_key: key.to_owned(),
    }
}

/// `cors`: K8sGateway's CorsPolicy.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Cors {
    /// Origins allowed, exactly (`*` for any).
    #[serde(default)]
    pub allow_origin: Vec<String>,
    /// Origins allowed, by RE2 regular expression.
    #[serde(default)]
    pub allow_origin_regex: Vec<String>,
    /// Methods allowed (`access-control-allow-methods`).
    #[serde(default)]
    pub allow_methods: Vec<String>,
    /// Request headers allowed.
    #[serde(default)]
    pub allow_headers: Vec<String>,
    /// Response headers exposed to the page.
    #[serde(default)]
    pub expose_headers: Vec<String>,
    /// How long a preflight answer may be cached, in seconds.
    pub max_age: Option<String>,
    /// Whether the page may send credentials.
    pub allow_credentials: Option<bool>,
    /// Turn CORS off for this route (overriding its virtual host).
    #[serde(default)]
    pub disable_for_route: bool,
}

impl Cors {
    /// Envoy's per-route CORS policy.
    pub fn to_policy(&self) -> Result<CorsPolicy, PluginError> {
        let mut errors = Vec::new();
        if !self.disable_for_route
            && self.allow_origin.is_empty()
            && self.allow_origin_regex.is_empty()
        {
            errors.push(FieldError::new(
                "allowOrigin",
                "set allowOrigin or allowOriginRegex (or disableForRoute)",
            ));
        }
        if let Some(age) = &self.max_age
            && (age.is_empty() || !age.bytes().all(|b| b.is_ascii_digit()))
        {
            errors.push(FieldError::new("maxAge", "must be a number of seconds"));
        }
        for (i, origin) in self.allow_origin_regex.iter().enumerate() {
            if origin.is_empty() {
                errors.push(FieldError::new(
                    format!("allowOriginRegex[{i}]"),
                    "must not be empty",
                ));
            }
        }
        PluginError::check(errors)?;
        let exact = self.allow_origin.iter().map(|o| match o.as_str() {
            // `*` means any origin: a prefix of nothing matches everything.
            "*" => string_matcher::MatchPattern::Prefix(String::new()),
            o => string_matcher::MatchPattern::Exact(o.to_owned()),
        });
        let regex = self.allow_origin_regex.iter().map(|r| {
            string_matcher::MatchPattern::SafeRegex(RegexMatcher {
                regex: r.clone(),
                ..Default::default()
            })
        });
        Ok(CorsPolicy {
            allow_origin_string_match: exact
                .chain(regex)
                .map(|p| StringMatcher {
                    match_pattern: Some(p),
                    ..Default::default()
                })
                .collect(),
            allow_methods: self.allow_methods.join(","),
            allow_headers: self.allow_headers.join(","),
            expose_headers: self.expose_headers.join(","),
            max_age: self.max_age.clone().unwrap_or_default(),
            allow_credentials: self.allow_credentials,
            filter_enabled: self.disable_for_route.then(|| percent(0, "cors_enabled")),
            ..Default::default()
        })
    }
}

/// `csrf`: K8sGateway's CsrfPolicy.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Csrf {
    /// Share of requests checked and rejected on a bad origin (default: all).
    pub filter_enabled: Option<RuntimePercent>,
    /// Share of requests checked without rejecting (counted in stats only).
    pub shadow_enabled: Option<RuntimePercent>,
    /// Origin hosts (without the scheme: `app.example.com`) allowed besides the
    /// request's own host.
    #[serde(default)]
    pub additional_origins: Vec<Origin>,
}

/// `{defaultValue: {numerator, denominator}}`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RuntimePercent {
    /// The share.
    pub default_value: Percent,
    /// A runtime key that can override it.
    #[serde(default)]
    pub runtime_key: String,
}

/// `{numerator, denominator}`, denominator `HUNDRED` (default), `TEN_THOUSAND` or
/// `MILLION`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Percent {
    /// The numerator.
    pub numerator: u32,
    /// The denominator's name.
    pub denominator: Option<String>,
}

/// An origin matcher: exactly one of `exact`, `prefix`, `suffix`, `safeRegex`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Origin {
    /// The whole origin.
    pub exact: Option<String>,
    /// Its start.
    pub prefix: Option<String>,
    /// Its end.
    pub suffix: Option<String>,
    /// An RE2 regular expression (`{regex: …}`).
    pub safe_regex: Option<Regex>,
    /// Compare without case.
    #[serde(default)]
    pub ignore_case: bool,
}

/// `{regex: …}`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Regex {
    /// The expression.
    pub regex: String,
}

impl RuntimePercent {
    fn to_proto(&self, field: &str) -> Result<RuntimeFractionalPercent, FieldError> {
        let (denominator, most) = match self.default_value.denominator.as_deref() {
            None | Some("HUNDRED") => (fractional_percent::DenominatorType::Hundred, 100),
            Some("TEN_THOUSAND") => (fractional_percent::DenominatorType::TenThousand, 10_000),
            Some("MILLION") => (fractional_percent::DenominatorType::Million, 1_000_000),
            Some(other) => {
                return Err(FieldError::new(
                    format!("{field}.defaultValue.denominator"),
                    format!("`{other}` is not one of HUNDRED, TEN_THOUSAND, MILLION"),
                ));
            }
        };
        if self.default_value.numerator > most {
            return Err(FieldError::new(
                format!("{field}.defaultValue.numerator"),
                format!("must be at most the denominator ({most})"),
            ));
        }
        Ok(RuntimeFractionalPercent {
            default_value: Some(FractionalPercent {
                numerator: self.default_value.numerator,
                denominator: denominator as i32,
            }),
            runtime_key: self.runtime_key.clone(),
        })
    }
}

impl Origin {
    fn to_proto(&self) -> Result<StringMatcher, String> {
        let mut set = Vec::new();
        if let Some(e) = &self.exact {
            set.push(string_matcher::MatchPattern::Exact(e.clone()));
        }
        if let Some(p) = &self.prefix {
            set.push(string_matcher::MatchPattern::Prefix(p.clone()));
        }
        if let Some(s) = &self.suffix {
            set.push(string_matcher::MatchPattern::Suffix(s.clone()));
        }
        if let Some(r) = &self.safe_regex {
            set.push(string_matcher::MatchPattern::SafeRegex(RegexMatcher {
                regex: r.regex.clone(),
                ..Default::default()
            }));
        }
        match set.len() {
            1 => Ok(StringMatcher {
                ignore_case: self.ignore_case,
                match_pattern: set.pop(),
            }),
            _ => Err("set exactly one of exact, prefix, suffix, safeRegex".to_owned()),
        }
    }
}

impl Csrf {
    /// Envoy's per-route CSRF policy.
    pub fn to_policy(&self) -> Result<CsrfPolicy, PluginError> {
        let mut errors = Vec::new();
        let enabled = match &self.filter_enabled {
            Some(p) => p.to_proto("filterEnabled").map_err(|e| errors.push(e)).ok(),
            None => Some(percent(100, "csrf_enabled")),
        };
        let shadow = match &self.shadow_enabled {
            Some(p) => p.to_proto("shadowEnabled").map_err(|e| errors.push(e)).ok(),
            None => None,
        };
        let mut origins = Vec::new();
        for (i, o) in self.additional_origins.iter().enumerate() {
            match o.to_proto() {
                Ok(m) => origins.push(m),
                Err(message) => {
                    errors.push(FieldError::new(format!("additionalOrigins[{i}]"), message))
                }
            }
        }
        PluginError::check(errors)?;
        Ok(CsrfPolicy {
            filter_enabled: enabled,
            shadow_enabled: shadow,
            additional_origins: origins,
        })
    }
}

/// `bufferPerRoute`: buffer whole requests up to a size (larger ones get 413), or turn
/// buffering off for the route.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BufferSpec {
    /// Turn buffering off here.
    #[serde(default)]
    pub disabled: bool,
    /// The limit.
    pub buffer: Option<BufferLimit>,
}

/// `bufferPerRoute.buffer`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BufferLimit {
    /// Largest request body buffered, in bytes.
    pub max_request_bytes: u32,
}

impl BufferSpec {
    /// Envoy's per-route buffer config.
    pub fn to_per_route(&self) -> Result<BufferPerRoute, PluginError> {
        let choice = match (self.disabled, &self.buffer) {
            (true, None) => buffer_per_route::Override::Disabled(true),
            (false, Some(b)) if b.max_request_bytes > 0 => {
                buffer_per_route::Override::Buffer(Buffer {
                    max_request_bytes: Some(b.max_request_bytes),
                })
            }
            (false, Some(_)) => {
                return Err(PluginError::invalid(
                    "buffer.maxRequestBytes",
                    "must be at least 1",
                ));
            }
            _ => {
                return Err(PluginError::invalid(
                    "",
                    "set exactly one of disabled: true and buffer",
                ));
            }
        };
        Ok(BufferPerRoute {
            r#override: Some(choice),
        })
    }
}

impl Policy {
    /// Envoy's per-route local rate limit for a `localRatelimit` bucket.
    fn local_ratelimit(bucket: &TokenBucketSpec) -> Result<LocalRateLimit, PluginError> {
        let bucket = bucket.to_proto().map_err(PluginError::InvalidConfig)?;
        Ok(LocalRateLimit {
            stat_prefix: "http_local_rate_limiter".to_owned(),
            token_bucket: Some(bucket),
            filter_enabled: Some(percent(100, "local_rate_limit_enabled")),
            filter_enforced: Some(percent(100, "local_rate_limit_enforced")),
            ..Default::default()
        })
    }
}
