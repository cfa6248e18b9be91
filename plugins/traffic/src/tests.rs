//! The traffic policies as plain Rust: the per-filter configs and their problems.

use weir_plugin_sdk::envoy::extensions::filters::http::buffer::v3::{
    BufferPerRoute, buffer_per_route,
};
use weir_plugin_sdk::envoy::extensions::filters::http::cors::v3::CorsPolicy;
use weir_plugin_sdk::envoy::extensions::filters::http::csrf::v3::CsrfPolicy;
use weir_plugin_sdk::envoy::extensions::filters::http::local_ratelimit::v3::LocalRateLimit;
use weir_plugin_sdk::envoy::r#type::matcher::v3::string_matcher::MatchPattern;
use weir_plugin_sdk::prost::Message;
use weir_plugin_sdk::{PluginError, StageName};

use crate::config::{BUFFER, CORS, CSRF, LOCAL_RATELIMIT, Policy};

fn per_filter<M: Message + Default>(key: &str, json: &str, filter: &str) -> M {
    let (name, any) = Policy::from_json(key, json)
        .and_then(|p| p.per_filter())
        .unwrap();
    assert_eq!(name, filter);
    M::decode(any.value.as_slice()).unwrap()
}

fn problem(key: &str, json: &str) -> PluginError {
    Policy::from_json(key, json)
        .and_then(|p| p.per_filter())
        .unwrap_err()
}

fn fields(err: PluginError) -> Vec<String> {
    match err {
        PluginError::InvalidConfig(fields) => fields.into_iter().map(|f| f.path).collect(),
        other => panic!("{other:?}"),
    }
}

#[test]
fn cors_lists_become_envoy_strings_and_origins_matchers() {
    let policy: CorsPolicy = per_filter(
        "cors",
        r#"{"allowOrigin": ["https://a.example", "*"], "allowOriginRegex": ["https://.*\\.b\\.example"],
            "allowMethods": ["GET", "POST"], "allowHeaders": ["x-token"], "exposeHeaders": ["x-trace"],
            "maxAge": "600", "allowCredentials": true}"#,
        CORS,
    );
    let patterns: Vec<_> = policy
        .allow_origin_string_match
        .into_iter()
        .map(|m| m.match_pattern.unwrap())
        .collect();
    assert_eq!(patterns[0], MatchPattern::Exact("https://a.example".into()));
    assert_eq!(patterns[1], MatchPattern::Prefix(String::new()));
    assert!(
        matches!(&patterns[2], MatchPattern::SafeRegex(r) if r.regex == r"https://.*\.b\.example")
    );
    assert_eq!(policy.allow_methods, "GET,POST");
    assert_eq!(policy.expose_headers, "x-trace");
    assert_eq!(policy.max_age, "600");
    assert_eq!(policy.allow_credentials, Some(true));
    assert_eq!(policy.filter_enabled, None, "enabled by default");
}

#[test]
fn cors_needs_an_origin_and_a_numeric_max_age() {
    assert_eq!(
        fields(problem("cors", r#"{"maxAge": "10m"}"#)),
        ["allowOrigin", "maxAge"]
    );
    let off: CorsPolicy = per_filter("cors", r#"{"disableForRoute": true}"#, CORS);
    assert_eq!(
        off.filter_enabled.unwrap().default_value.unwrap().numerator,
        0
    );
}

#[test]
fn csrf_checks_every_request_by_default_and_names_bad_origins() {
    let policy: CsrfPolicy = per_filter(
        "csrf",
        r#"{"additionalOrigins": [{"suffix": ".example.com", "ignoreCase": true}]}"#,
        CSRF,
    );
    assert_eq!(
        policy
            .filter_enabled
            .unwrap()
            .default_value
            .unwrap()
            .numerator,
        100
    );
    assert!(policy.additional_origins[0].ignore_case);
    assert_eq!(
        fields(problem(
            "csrf",
            r#"{"filterEnabled": {"defaultValue": {"numerator": 101}},
                "additionalOrigins": [{"exact": "a", "prefix": "b"}]}"#
        )),
        [
            "filterEnabled.defaultValue.numerator",
            "additionalOrigins[0]"
        ]
    );
}

#[test]
fn buffer_is_either_a_limit_or_off() {
    let limit: BufferPerRoute = per_filter(
        "bufferPerRoute",
        r#"{"buffer": {"maxRequestBytes": 1024}}"#,
        BUFFER,
    );
    assert!(matches!(
        limit.r#override,
        Some(buffer_per_route::Override::Buffer(b)) if b.max_request_bytes == Some(1024)
    ));
    assert_eq!(
        problem(
            "bufferPerRoute",
            r#"{"disabled": true, "buffer": {"maxRequestBytes": 1}}"#
        ),
        PluginError::invalid("", "set exactly one of disabled: true and buffer")
    );
    // The listener's buffer filter is off except where a route turns it on.
    let policy = Policy::from_json("bufferPerRoute", r#"{"disabled": true}"#).unwrap();
    assert!(policy.http_filter().disabled);
}

#[test]
fn local_rate_limit_is_a_token_bucket_for_the_route() {
    let limit: LocalRateLimit = per_filter(
        "localRatelimit",
        r#"{"maxTokens": 2, "tokensPerFill": 1, "fillInterval": "1s"}"#,
        LOCAL_RATELIMIT,
    );
    let bucket = limit.token_bucket.unwrap();
    assert_eq!((bucket.max_tokens, bucket.tokens_per_fill), (2, Some(1)));
    assert_eq!(
        fields(problem(
            "localRatelimit",
            r#"{"maxTokens": 0, "fillInterval": "1ms"}"#
        )),
        ["maxTokens", "fillInterval"]
    );
    let policy = Policy::from_json(
        "localRatelimit",
        r#"{"maxTokens": 1, "fillInterval": "1s"}"#,
    )
    .unwrap();
    assert_eq!(policy.http_filter().stage.name, StageName::RateLimit);
}
