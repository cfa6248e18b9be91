//! HTTPRoute filters.

use envoy_types::pb::envoy::config::core::v3::header_value_option::HeaderAppendAction;
use envoy_types::pb::envoy::config::listener::v3::filter;
use envoy_types::pb::envoy::config::route::v3::{
    Route, redirect_action, retry_policy, route, route_action,
};
use envoy_types::pb::envoy::extensions::filters::http::cors::v3::CorsPolicy;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::HttpConnectionManager;
use envoy_types::pb::envoy::r#type::matcher::v3::string_matcher::MatchPattern;
use prost::Message;

use super::*;

fn filtered(filters: &str, path: &str) -> String {
    mk_route(
        "infra",
        "f",
        &format!(
            "parentRefs:\n- name: gw\nrules:\n- matches:\n  - path: {{type: PathPrefix, value: {path}}}\n  filters:\n{filters}\n  backendRefs: [{{name: v1, port: 8080}}]"
        ),
    )
}

fn run_filters(filters: &str, path: &str) -> Translation {
    run_yaml(&format!("{}{}", mk_base(), filtered(filters, path)))
}

#[test]
fn request_header_modifier_sets_adds_and_removes() {
    let t = run_filters(
        "  - type: RequestHeaderModifier\n    requestHeaderModifier:\n      set: [{name: X-Set, value: s}]\n      add: [{name: X-Add, value: a}]\n      remove: [X-Remove]",
        "/",
    );
    let r = route_named(&t, "infra_f_rule0_match0");
    let adds: Vec<(String, i32)> = r
        .request_headers_to_add
        .iter()
        .map(|h| (h.header.clone().unwrap().key, h.append_action))
        .collect();
    assert_eq!(
        adds,
        [
            (
                "X-Set".to_string(),
                HeaderAppendAction::OverwriteIfExistsOrAdd as i32
            ),
            (
                "X-Add".to_string(),
                HeaderAppendAction::AppendIfExistsOrAdd as i32
            )
        ]
    );
    assert_eq!(r.request_headers_to_remove, ["X-Remove"]);
}

#[test]
fn response_header_modifier_changes_response_headers() {
    let t = run_filters(
        "  - type: ResponseHeaderModifier\n    responseHeaderModifier:\n      set: [{name: X-Set, value: s}]\n      remove: [X-Gone]",
        "/",
    );
    let r = route_named(&t, "infra_f_rule0_match0");
    assert_eq!(r.response_headers_to_add.len(), 1);
    assert_eq!(r.response_headers_to_remove, ["X-Gone"]);
}

fn redirect(t: &Translation) -> envoy_types::pb::envoy::config::route::v3::RedirectAction {
    match &route_named(t, "infra_f_rule0_match0").action {
        Some(route::Action::Redirect(r)) => r.clone(),
        other => panic!("not a redirect: {other:?}"),
    }
}

#[test]
fn redirect_takes_hostname_status_and_the_listener_port() {
    let t = run_filters(
        "  - type: RequestRedirect\n    requestRedirect:\n      hostname: example.org\n      statusCode: 301",
        "/",
    );
    let r = redirect(&t);
    assert_eq!(r.host_redirect, "example.org");
    assert_eq!(r.port_redirect, 80);
    assert_eq!(
        r.response_code,
        redirect_action::RedirectResponseCode::MovedPermanently as i32
    );
}

#[test]
fn redirect_to_https_without_port_uses_443() {
    let t = run_filters(
        "  - type: RequestRedirect\n    requestRedirect:\n      scheme: https",
        "/",
    );
    let r = redirect(&t);
    assert_eq!(r.port_redirect, 443);
    assert_eq!(
        r.scheme_rewrite_specifier,
        Some(redirect_action::SchemeRewriteSpecifier::SchemeRedirect(
            "https".into()
        ))
    );
}

#[test]
fn redirect_replace_prefix_match_rewrites_the_matched_prefix() {
    let t = run_filters(
        "  - type: RequestRedirect\n    requestRedirect:\n      path: {type: ReplacePrefixMatch, replacePrefixMatch: /replacement-prefix}",
        "/original-prefix",
    );
    assert_eq!(
        redirect(&t).path_rewrite_specifier,
        Some(redirect_action::PathRewriteSpecifier::PrefixRewrite(
            "/replacement-prefix".into()
        ))
    );
}

#[test]
fn redirect_replace_full_path_sets_the_path() {
    let t = run_filters(
        "  - type: RequestRedirect\n    requestRedirect:\n      path: {type: ReplaceFullPath, replaceFullPath: /full}\n      statusCode: 308",
        "/x",
    );
    let r = redirect(&t);
    assert_eq!(
        r.path_rewrite_specifier,
        Some(redirect_action::PathRewriteSpecifier::PathRedirect(
            "/full".into()
        ))
    );
    assert_eq!(
        r.response_code,
        redirect_action::RedirectResponseCode::PermanentRedirect as i32
    );
}

#[test]
fn url_rewrite_prefix_to_slash_strips_the_prefix_with_a_regex() {
    let t = run_filters(
        "  - type: URLRewrite\n    urlRewrite:\n      hostname: rewritten.example\n      path: {type: ReplacePrefixMatch, replacePrefixMatch: /}",
        "/strip-prefix",
    );
    let a = forward(route_named(&t, "infra_f_rule0_match0"));
    let re = a.regex_rewrite.clone().unwrap();
    assert_eq!(re.pattern.unwrap().regex, "^/strip\\-prefix/*");
    assert_eq!(re.substitution, "/");
    assert_eq!(
        a.host_rewrite_specifier,
        Some(route_action::HostRewriteSpecifier::HostRewriteLiteral(
            "rewritten.example".into()
        ))
    );
}

#[test]
fn url_rewrite_full_path_replaces_the_whole_path() {
    let t = run_filters(
        "  - type: URLRewrite\n    urlRewrite:\n      path: {type: ReplaceFullPath, replaceFullPath: /one}",
        "/full",
    );
    let a = forward(route_named(&t, "infra_f_rule0_match0"));
    assert_eq!(a.regex_rewrite.clone().unwrap().substitution, "/one");
}

#[test]
fn request_mirror_adds_a_mirror_policy_with_its_fraction_and_cluster() {
    let t = run_filters(
        "  - type: RequestMirror\n    requestMirror:\n      backendRef: {name: v2, port: 8080}\n      fraction: {numerator: 25, denominator: 50}",
        "/",
    );
    let a = forward(route_named(&t, "infra_f_rule0_match0"));
    assert_eq!(a.request_mirror_policies[0].cluster, "kube_infra_v2_8080");
    let f = a.request_mirror_policies[0]
        .runtime_fraction
        .clone()
        .unwrap()
        .default_value
        .unwrap();
    assert_eq!(f.numerator, 500_000);
    let names: Vec<String> = t.gateways[&key(Kind::Gateway, "infra", "gw")]
        .clusters
        .iter()
        .map(|c| c.name().to_string())
        .collect();
    assert_eq!(names, ["kube_infra_v1_8080", "kube_infra_v2_8080"]);
}

#[test]
fn extension_ref_to_direct_response_answers_directly() {
    let dr = "apiVersion: gateway.weir.dev/v1alpha1\nkind: DirectResponse\nmetadata:\n  name: teapot\n  namespace: infra\nspec:\n  status: 418\n  body: short and stout\n---\n";
    let route = filtered(
        "  - type: ExtensionRef\n    extensionRef: {group: gateway.gloo.solo.io, kind: DirectResponse, name: teapot}",
        "/",
    );
    let t = run_yaml(&format!("{}{dr}{route}", mk_base()));
    assert_eq!(
        direct_status(route_named(&t, "infra_f_rule0_match0")),
        Some(418)
    );
    assert_eq!(
        csr(cond(
            status(&t, Kind::DirectResponse, "infra", "teapot"),
            "Accepted"
        ))
        .0,
        "True"
    );
}

#[test]
fn extension_ref_to_route_option_is_accepted_as_a_hook() {
    let ro = "apiVersion: gateway.solo.io/v1\nkind: RouteOption\nmetadata:\n  name: opts\n  namespace: infra\nspec:\n  options: {}\n---\n";
    let route = filtered(
        "  - type: ExtensionRef\n    extensionRef: {group: gateway.solo.io, kind: RouteOption, name: opts}",
        "/",
    );
    let t = run_yaml(&format!("{}{ro}{route}", mk_base()));
    assert_eq!(route_cond(&t, "infra", "f", 0, "ResolvedRefs").0, "True");
    forward(route_named(&t, "infra_f_rule0_match0"));
}

#[test]
fn timeouts_set_route_timeout_and_per_try_timeout() {
    let route = mk_route(
        "infra",
        "f",
        "parentRefs:\n- name: gw\nrules:\n- timeouts: {request: 500ms, backendRequest: 200ms}\n  backendRefs: [{name: v1, port: 8080}]\n- matches: [{path: {type: PathPrefix, value: /off}}]\n  timeouts: {request: 0s}\n  backendRefs: [{name: v1, port: 8080}]",
    );
    let t = run_yaml(&format!("{}{route}", mk_base()));
    let a = forward(route_named(&t, "infra_f_rule0_match0"));
    assert_eq!(a.timeout.unwrap().nanos, 500_000_000);
    assert_eq!(
        a.retry_policy
            .clone()
            .unwrap()
            .per_try_timeout
            .unwrap()
            .nanos,
        200_000_000
    );
    let off = forward(route_named(&t, "infra_f_rule1_match0"));
    assert_eq!(off.timeout.unwrap().seconds, 0);
}

/// The CORS policy on a route, decoded from its per-filter config.
fn cors_of(r: &Route) -> CorsPolicy {
    let any = r
        .typed_per_filter_config
        .get("envoy.filters.http.cors")
        .unwrap_or_else(|| panic!("route {} has no CORS policy", r.name));
    assert_eq!(
        any.type_url,
        "type.googleapis.com/envoy.extensions.filters.http.cors.v3.CorsPolicy"
    );
    CorsPolicy::decode(any.value.as_slice()).unwrap()
}

/// The HTTP filter names of the port-80 listener of `infra/gw`.
fn http_filter_names(t: &Translation) -> Vec<String> {
    let res = &t.gateways[&key(Kind::Gateway, "infra", "gw")];
    let l = res
        .listeners
        .iter()
        .find(|l| l.name == "listener_80")
        .unwrap();
    let Some(filter::ConfigType::TypedConfig(any)) = &l.filter_chains[0].filters[0].config_type
    else {
        panic!("no HCM config");
    };
    let hcm = HttpConnectionManager::decode(any.value.as_slice()).unwrap();
    hcm.http_filters.into_iter().map(|f| f.name).collect()
}

/// The origin regexes of a policy.
fn origin_regexes(c: &CorsPolicy) -> Vec<String> {
    c.allow_origin_string_match
        .iter()
        .map(|m| match &m.match_pattern {
            Some(MatchPattern::SafeRegex(r)) => r.regex.clone(),
            other => panic!("not a regex: {other:?}"),
        })
        .collect()
}

#[test]
fn cors_filter_becomes_the_routes_cors_policy_and_adds_the_cors_filter() {
    let t = run_filters(
        "  - type: CORS\n    cors:\n      allowOrigins: [\"https://www.foo.com\", \"https://*.bar.com\", \"http://x.org:8080\"]\n      allowMethods: [GET, OPTIONS]\n      allowHeaders: [x-header-1, x-header-2]\n      exposeHeaders: [x-header-3]\n      allowCredentials: true\n      maxAge: 3600",
        "/cors",
    );
    assert_eq!(route_cond(&t, "infra", "f", 0, "Accepted").0, "True");
    let c = cors_of(route_named(&t, "infra_f_rule0_match0"));
    assert_eq!(c.allow_methods, "GET, OPTIONS");
    assert_eq!(c.allow_headers, "x-header-1, x-header-2");
    assert_eq!(c.expose_headers, "x-header-3");
    assert_eq!(c.max_age, "3600");
    assert_eq!(c.allow_credentials.map(|b| b.value), Some(true));
    // The proxy answers every preflight itself, allowed or not.
    assert_eq!(
        c.forward_not_matching_preflights.map(|b| b.value),
        Some(false)
    );
    let res = origin_regexes(&c);
    let matches = |origin: &str| {
        res.iter().any(|r| {
            regex::Regex::new(&format!("^(?:{r})$"))
                .unwrap()
                .is_match(origin)
        })
    };
    for ok in [
        "https://www.foo.com",
        "HTTPS://WWW.FOO.COM",
        "https://www.foo.com:443",
        "https://xpto.www.bar.com",
        "https://a.bar.com",
        "http://x.org:8080",
    ] {
        assert!(matches(ok), "{ok} should match {res:?}");
    }
    for no in [
        "https://foobar.com",
        "http://www.foo.com",
        "https://www.foo.com:8443",
        "https://bar.com",
        "https://evil.com/.bar.com",
        "http://x.org",
        "https://www.foo.com.evil.org",
    ] {
        assert!(!matches(no), "{no} should not match {res:?}");
    }
    // The CORS filter joins the chain at its stage, before the router.
    assert_eq!(
        http_filter_names(&t),
        ["envoy.filters.http.cors", "envoy.filters.http.router"]
    );
}

#[test]
fn cors_wildcards_and_defaults() {
    let t = run_filters(
        "  - type: CORS\n    cors:\n      allowOrigins: [\"*\"]\n      allowMethods: [GET, \"*\"]\n      allowHeaders: [\"*\"]",
        "/",
    );
    let c = cors_of(route_named(&t, "infra_f_rule0_match0"));
    assert_eq!(origin_regexes(&c), [".*"]);
    assert_eq!(c.allow_methods, "*");
    assert_eq!(c.allow_headers, "*");
    assert_eq!(c.expose_headers, "");
    // Gateway API's default max age; no credentials unless asked for.
    assert_eq!(c.max_age, "5");
    assert_eq!(c.allow_credentials, None);
}

#[test]
fn without_a_cors_filter_the_chain_has_no_cors_filter() {
    let t = run_filters(
        "  - type: ResponseHeaderModifier\n    responseHeaderModifier:\n      set: [{name: X-Set, value: s}]",
        "/",
    );
    assert!(
        route_named(&t, "infra_f_rule0_match0")
            .typed_per_filter_config
            .is_empty()
    );
    assert_eq!(http_filter_names(&t), ["envoy.filters.http.router"]);
}

#[test]
fn retry_sets_codes_attempts_backoff_and_connection_errors() {
    let route = mk_route(
        "infra",
        "f",
        "parentRefs:\n- name: gw\nrules:\n- retry: {codes: [500, 502], attempts: 3, backoff: 100ms}\n  backendRefs: [{name: v1, port: 8080}]\n- matches: [{path: {type: PathPrefix, value: /conn}}]\n  retry: {attempts: 2}\n  timeouts: {backendRequest: 200ms}\n  backendRefs: [{name: v1, port: 8080}]\n- matches: [{path: {type: PathPrefix, value: /both}}]\n  retry: {codes: [503]}\n  timeouts: {request: 400ms, backendRequest: 200ms}\n  backendRefs: [{name: v1, port: 8080}]",
    );
    let t = run_yaml(&format!("{}{route}", mk_base()));
    assert_eq!(route_cond(&t, "infra", "f", 0, "Accepted").0, "True");
    let codes = forward(route_named(&t, "infra_f_rule0_match0"))
        .retry_policy
        .clone()
        .unwrap();
    assert_eq!(
        codes.retry_on,
        "connect-failure,refused-stream,reset,retriable-status-codes"
    );
    assert_eq!(codes.retriable_status_codes, [500, 502]);
    assert_eq!(codes.num_retries.map(|n| n.value), Some(3));
    assert_eq!(
        codes.retry_back_off,
        Some(retry_policy::RetryBackOff {
            base_interval: Some(envoy_types::pb::google::protobuf::Duration {
                seconds: 0,
                nanos: 100_000_000
            }),
            max_interval: None,
        })
    );
    assert_eq!(codes.per_try_timeout, None);

    // No codes: connection errors and per-try timeouts only; backendRequest bounds each
    // attempt, not the whole exchange.
    let conn = forward(route_named(&t, "infra_f_rule1_match0"));
    assert_eq!(conn.timeout, None);
    let p = conn.retry_policy.clone().unwrap();
    assert_eq!(p.retry_on, "connect-failure,refused-stream,reset");
    assert!(p.retriable_status_codes.is_empty());
    assert_eq!(p.num_retries.map(|n| n.value), Some(2));
    assert_eq!(p.per_try_timeout.unwrap().nanos, 200_000_000);

    // Both timeouts: request bounds the whole exchange; attempts default to Envoy's.
    let both = forward(route_named(&t, "infra_f_rule2_match0"));
    assert_eq!(both.timeout.unwrap().nanos, 400_000_000);
    let p = both.retry_policy.clone().unwrap();
    assert_eq!(p.retriable_status_codes, [503]);
    assert_eq!(p.num_retries, None);
    assert_eq!(p.per_try_timeout.unwrap().nanos, 200_000_000);
}

#[test]
fn a_rules_matches_share_its_filters_and_backends_and_encode_as_whole_routes() {
    let route = mk_route(
        "infra",
        "m",
        "parentRefs:\n- name: gw\nrules:\n- matches:\n  - path: {type: PathPrefix, value: /a}\n  - path: {type: Exact, value: /b}\n    headers: [{name: x-t, value: one}]\n  - method: POST\n  filters:\n  - type: RequestHeaderModifier\n    requestHeaderModifier:\n      set: [{name: X-Set, value: s}]\n  - type: RequestMirror\n    requestMirror:\n      backendRef: {name: v2, port: 8080}\n  - type: CORS\n    cors:\n      allowOrigins: [\"https://a.example\"]\n  backendRefs: [{name: v1, port: 8080, weight: 3}, {name: v2, port: 8080, weight: 1}]\n- matches:\n  - path: {type: PathPrefix, value: /gone}\n  - path: {type: PathPrefix, value: /gone-too}\n  backendRefs: [{name: missing, port: 8080}]",
    );
    let t = run_yaml(&format!("{}{route}", mk_base()));
    // Each route's bytes are those of the whole route encoded at once.
    let res = &t.gateways[&key(Kind::Gateway, "infra", "gw")];
    for v in port_tables(res, 80).iter().flat_map(|r| &r.virtual_hosts) {
        assert_eq!(v.as_bytes(), v.decode().encode_to_vec(), "{}", v.name());
    }
    let routes: Vec<&Route> = (0..3)
        .map(|m| route_named(&t, &format!("infra_m_rule0_match{m}")))
        .collect();
    let rest = |r: &Route| Route {
        name: String::new(),
        r#match: None,
        ..r.clone()
    };
    assert_ne!(routes[0].r#match, routes[1].r#match);
    assert_ne!(routes[1].r#match, routes[2].r#match);
    assert_eq!(rest(routes[0]), rest(routes[1]));
    assert_eq!(rest(routes[0]), rest(routes[2]));
    // A rule whose backend is missing answers 500 on each of its matches.
    for m in 0..2 {
        let r = route_named(&t, &format!("infra_m_rule1_match{m}"));
        match &r.action {
            Some(route::Action::DirectResponse(d)) => assert_eq!(d.status, 500),
            other => panic!("{}: {other:?}", r.name),
        }
    }
    // What they share is the rule's: headers, mirror, CORS and both weighted backends.
    let r = routes[2];
    assert_eq!(r.request_headers_to_add.len(), 1);
    assert!(
        r.typed_per_filter_config
            .contains_key("envoy.filters.http.cors")
    );
    let a = forward(r);
    assert_eq!(a.request_mirror_policies[0].cluster, "kube_infra_v2_8080");
    match &a.cluster_specifier {
        Some(route_action::ClusterSpecifier::WeightedClusters(w)) => {
            let names: Vec<&str> = w.clusters.iter().map(|c| c.name.as_str()).collect();
            assert_eq!(names, ["kube_infra_v1_8080", "kube_infra_v2_8080"]);
        }
        other => panic!("not weighted: {other:?}"),
    }
}
