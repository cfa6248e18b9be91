//! The listener options as plain Rust: what each value sets and its problems.

use weir_plugin_sdk::envoy::config::listener::v3::{Filter, FilterChain, Listener, filter};
use weir_plugin_sdk::envoy::extensions::compression::gzip::compressor::v3::Gzip;
use weir_plugin_sdk::envoy::extensions::filters::http::compressor::v3::Compressor;
use weir_plugin_sdk::envoy::extensions::filters::http::router::v3::Router;
use weir_plugin_sdk::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpConnectionManager, HttpFilter as EnvoyHttpFilter, http_filter,
};
use weir_plugin_sdk::prost::Message;
use weir_plugin_sdk::{PluginError, StageName, pack, unpack};

use crate::filters::ROUTER;
use crate::hcm::HttpListenerSetting;
use crate::listener::ListenerSetting;

/// A connection manager with just the router, as the host hands it over.
fn hcm() -> HttpConnectionManager {
    HttpConnectionManager {
        http_filters: vec![EnvoyHttpFilter {
            name: ROUTER.to_owned(),
            config_type: Some(http_filter::ConfigType::TypedConfig(
                pack(&Router::default()).into(),
            )),
            ..Default::default()
        }],
        ..Default::default()
    }
}

fn apply_hcm(
    key: &str,
    json: &str,
) -> (HttpConnectionManager, Option<weir_plugin_sdk::HttpFilter>) {
    let mut target = hcm();
    let filter = HttpListenerSetting::from_json(key, json)
        .and_then(|s| s.apply(&mut target))
        .unwrap();
    (target, filter)
}

fn hcm_problem(key: &str, json: &str) -> PluginError {
    HttpListenerSetting::from_json(key, json)
        .and_then(|s| s.apply(&mut hcm()))
        .unwrap_err()
}

#[test]
fn connection_manager_settings_set_envoy_fields() {
    let (h, filter) = apply_hcm(
        "httpConnectionManagerSettings",
        r#"{"useRemoteAddress": true, "xffNumTrustedHops": 2, "serverName": "edge",
            "serverHeaderTransformation": "OVERWRITE", "idleTimeout": "30s",
            "requestTimeout": "1.5s", "maxRequestHeadersKb": 96, "mergeSlashes": true,
            "normalizePath": true, "codecType": "HTTP1", "acceptHttp10": true,
            "http2ProtocolOptions": {"maxConcurrentStreams": 50}}"#,
    );
    assert!(filter.is_none());
    assert_eq!(h.use_remote_address, Some(true));
    assert_eq!(h.xff_num_trusted_hops, 2);
    assert_eq!(h.server_name, "edge");
    assert_eq!(h.max_request_headers_kb, Some(96));
    assert!(h.merge_slashes);
    assert_eq!(h.normalize_path, Some(true));
    assert_eq!(h.codec_type, 1);
    assert_eq!(h.request_timeout.unwrap().nanos, 500_000_000);
    let common = h.common_http_protocol_options.unwrap();
    assert_eq!(common.idle_timeout.unwrap().seconds, 30);
    assert!(h.http_protocol_options.unwrap().accept_http_10);
    assert_eq!(
        h.http2_protocol_options.unwrap().max_concurrent_streams,
        Some(50)
    );
    // Fields left unset keep Envoy's defaults.
    assert!(!h.skip_xff_append);
    assert_eq!(h.stream_idle_timeout, None);
}

#[test]
fn connection_manager_settings_report_every_bad_field() {
    let err = hcm_problem(
        "httpConnectionManagerSettings",
        r#"{"idleTimeout": "soon", "codecType": "HTTP9", "maxRequestHeadersKb": 0}"#,
    );
    let PluginError::InvalidConfig(fields) = err else {
        panic!("{err:?}")
    };
    let paths: Vec<&str> = fields.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(paths, ["idleTimeout", "codecType", "maxRequestHeadersKb"]);
    assert!(
        fields[1].message.contains("AUTO, HTTP1, HTTP2"),
        "{}",
        fields[1].message
    );
}

#[test]
fn unknown_setting_field_is_named() {
    let err = hcm_problem("httpConnectionManagerSettings", r#"{"serverNmae": "x"}"#);
    let PluginError::InvalidConfig(fields) = err else {
        panic!("{err:?}")
    };
    assert!(
        fields[0].message.contains("serverNmae"),
        "{}",
        fields[0].message
    );
}

#[test]
fn gzip_adds_an_enabled_compressor_with_the_gzip_library() {
    let (h, filter) = apply_hcm(
        "gzip",
        r#"{"compressionLevel": "BEST", "memoryLevel": 5, "contentLength": 10,
            "contentType": ["text/plain"], "disableOnEtagHeader": true}"#,
    );
    assert_eq!(h, hcm(), "the connection manager itself is unchanged");
    let filter = filter.unwrap();
    assert_eq!(filter.name, "envoy.filters.http.compressor");
    assert!(!filter.disabled);
    let compressor: Compressor = unpack(&filter.config).unwrap();
    let library = compressor.compressor_library.unwrap();
    assert_eq!(library.name, "envoy.compression.gzip.compressor");
    let gzip = Gzip::decode(library.typed_config.unwrap().value.as_slice()).unwrap();
    assert_eq!((gzip.compression_level, gzip.memory_level), (9, Some(5)));
    let response = compressor.response_direction_config.unwrap();
    assert!(response.disable_on_etag_header);
    let common = response.common_config.unwrap();
    assert_eq!(common.min_content_length, Some(10));
    #[allow(deprecated)]
    let content_type = common.content_type;
    assert_eq!(content_type, ["text/plain"]);
}

#[test]
fn gzip_levels_out_of_range_are_named() {
    let err = hcm_problem("gzip", r#"{"memoryLevel": 12, "compressionLevel": "FAST"}"#);
    let PluginError::InvalidConfig(fields) = err else {
        panic!("{err:?}")
    };
    let paths: Vec<&str> = fields.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(paths, ["memoryLevel", "compressionLevel"]);
}

#[test]
fn health_check_answers_its_path_before_everything_else() {
    let (_, filter) = apply_hcm("healthCheck", r#"{"path": "/healthz"}"#);
    let filter = filter.unwrap();
    assert_eq!(filter.name, "envoy.filters.http.health_check");
    assert_eq!(filter.stage.name, StageName::Fault);
    assert_eq!(
        hcm_problem("healthCheck", r#"{"path": "healthz"}"#),
        PluginError::invalid("path", "must start with /")
    );
}

#[test]
fn local_rate_limit_needs_a_sane_bucket() {
    let (_, filter) = apply_hcm(
        "httpLocalRatelimit",
        r#"{"defaultLimit": {"maxTokens": 2, "tokensPerFill": 2, "fillInterval": "1s"}}"#,
    );
    assert_eq!(filter.unwrap().stage.name, StageName::RateLimit);
    let err = hcm_problem(
        "httpLocalRatelimit",
        r#"{"defaultLimit": {"maxTokens": 0, "fillInterval": "10ms"}}"#,
    );
    let PluginError::InvalidConfig(fields) = err else {
        panic!("{err:?}")
    };
    let paths: Vec<&str> = fields.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(
        paths,
        ["defaultLimit.maxTokens", "defaultLimit.fillInterval"]
    );
}

#[test]
fn router_settings_change_the_router_filter_in_place() {
    let (h, filter) = apply_hcm("router", r#"{"suppressEnvoyHeaders": true}"#);
    assert!(filter.is_none());
    assert_eq!(h.http_filters.len(), 1);
    let Some(http_filter::ConfigType::TypedConfig(any)) = &h.http_filters[0].config_type else {
        panic!("no router config")
    };
    assert!(
        Router::decode(any.value.as_slice())
            .unwrap()
            .suppress_envoy_headers
    );
}

/// A listener with two filter chains, each with a connection manager.
fn listener() -> Listener {
    let chain = |name: &str| FilterChain {
        name: name.to_owned(),
        filters: vec![Filter {
            name: "envoy.filters.network.http_connection_manager".to_owned(),
            config_type: Some(filter::ConfigType::TypedConfig(pack(&hcm()).into())),
        }],
        ..Default::default()
    };
    Listener {
        name: "listener_443".to_owned(),
        filter_chains: vec![chain("a"), chain("b")],
        ..Default::default()
    }
}

fn apply_listener(key: &str, json: &str) -> Result<Listener, PluginError> {
    let mut target = listener();
    ListenerSetting::from_json(key, json)?.apply(&mut target)?;
    Ok(target)
}

#[test]
fn access_logs_go_to_every_connection_manager() {
    let l = apply_listener(
        "accessLoggingService",
        r#"{"accessLog": [{"fileSink": {"path": "/tmp/a.log", "stringFormat": "%REQ(:PATH)%\n"}},
                          {"fileSink": {"path": "/tmp/b.log", "jsonFormat": {"path": "%REQ(:PATH)%"}}}]}"#,
    )
    .unwrap();
    for chain in &l.filter_chains {
        let Some(filter::ConfigType::TypedConfig(any)) = &chain.filters[0].config_type else {
            panic!("no HCM")
        };
        let h = HttpConnectionManager::decode(any.value.as_slice()).unwrap();
        let names: Vec<&str> = h.access_log.iter().map(|a| a.name.as_str()).collect();
        assert_eq!(
            names,
            ["envoy.access_loggers.file", "envoy.access_loggers.file"]
        );
    }
}

#[test]
fn access_log_problems_name_the_entry() {
    let err = apply_listener(
        "accessLoggingService",
        r#"{"accessLog": [{"fileSink": {"path": ""}}]}"#,
    )
    .unwrap_err();
    assert_eq!(
        err,
        PluginError::invalid("accessLog[0].fileSink.path", "must not be empty")
    );
    let err = apply_listener(
        "accessLoggingService",
        r#"{"accessLog": [{"grpcService": {}}]}"#,
    )
    .unwrap_err();
    assert!(format!("{err:?}").contains("grpcService"), "{err:?}");
}

#[test]
fn listener_socket_settings() {
    let l = apply_listener("perConnectionBufferLimitBytes", "32768").unwrap();
    assert_eq!(l.per_connection_buffer_limit_bytes, Some(32768));
    let l = apply_listener("connectionBalanceConfig", r#"{"exactBalance": {}}"#).unwrap();
    assert!(l.connection_balance_config.is_some());
    let l = apply_listener(
        "socketOptions",
        r#"[{"level": 1, "name": 9, "intValue": 1, "state": "STATE_LISTENING"}]"#,
    )
    .unwrap();
    assert_eq!(
        (l.socket_options[0].name, l.socket_options[0].state),
        (9, 2)
    );
    assert_eq!(
        apply_listener(
            "socketOptions",
            r#"[{"level": 1, "name": 9, "intValue": 1, "state": "LATER"}]"#
        )
        .unwrap_err(),
        PluginError::invalid(
            "[0].state",
            "`LATER` is not one of STATE_PREBIND, STATE_BOUND, STATE_LISTENING"
        )
    );
}

#[test]
fn grpc_web_and_buffer_add_their_filters() {
    let (_, filter) = apply_hcm("grpcWeb", "{}");
    assert_eq!(filter.unwrap().name, "envoy.filters.http.grpc_web");
    let (_, filter) = apply_hcm("grpcWeb", r#"{"disable": true}"#);
    assert!(filter.is_none());
    let (_, filter) = apply_hcm("buffer", r#"{"maxRequestBytes": 1024}"#);
    assert_eq!(filter.unwrap().name, "envoy.filters.http.buffer");
    assert_eq!(
        hcm_problem("buffer", r#"{"maxRequestBytes": 0}"#),
        PluginError::invalid("maxRequestBytes", "must be at least 1")
    );
}

#[test]
fn proxy_protocol_goes_first_among_listener_filters() {
    let mut target = listener();
    target.listener_filters.push(Default::default());
    ListenerSetting::from_json("proxyProtocol", "{}")
        .unwrap()
        .apply(&mut target)
        .unwrap();
    assert_eq!(
        target.listener_filters[0].name,
        "envoy.filters.listener.proxy_protocol"
    );
    assert!(ListenerSetting::from_json("proxyProtocol", r#"{"rules": []}"#).is_err());
}
