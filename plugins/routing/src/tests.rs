//! The routing options as plain Rust: each value's Envoy fields and its problems.

use weir_plugin_sdk::envoy::config::route::v3::{
    RedirectAction, Route, RouteAction, RouteMatch, route, route_action, route_match,
};
use weir_plugin_sdk::{PluginError, duration};

use crate::config::RouteSettings;

fn forwarding_route() -> Route {
    Route {
        r#match: Some(RouteMatch {
            path_specifier: Some(route_match::PathSpecifier::Prefix("/api".into())),
            ..Default::default()
        }),
        action: Some(route::Action::Route(RouteAction {
            prefix_rewrite: "/from-the-route".into(),
            ..Default::default()
        })),
        ..Default::default()
    }
}

fn applied(key: &str, json: &str) -> Route {
    let mut route = forwarding_route();
    RouteSettings::from_json(key, json)
        .unwrap()
        .apply_to_route(&mut route)
        .unwrap();
    route
}

fn action(route: &Route) -> &RouteAction {
    match &route.action {
        Some(route::Action::Route(a)) => a,
        other => panic!("not forwarding: {other:?}"),
    }
}

fn problems(key: &str, json: &str) -> Vec<String> {
    match RouteSettings::from_json(key, json) {
        Err(PluginError::InvalidConfig(errors)) => errors
            .into_iter()
            .map(|e| format!("{}: {}", e.path, e.message))
            .collect(),
        other => panic!("expected an invalid config, got {other:?}"),
    }
}

#[test]
fn timeout_sets_the_route_timeout() {
    let route = applied("timeout", r#""1.5s""#);
    assert_eq!(
        action(&route).timeout,
        Some(duration::to_proto(std::time::Duration::from_millis(1500)))
    );
    assert_eq!(problems("timeout", r#""soon""#).len(), 1);
}

#[test]
fn retries_become_the_retry_policy() {
    let route = applied(
        "retries",
        r#"{"retryOn": "5xx,connect-failure", "numRetries": 3, "perTryTimeout": "200ms",
            "retryBackOff": {"baseInterval": "10ms", "maxInterval": "50ms"}}"#,
    );
    let policy = action(&route).retry_policy.clone().unwrap();
    assert_eq!(policy.retry_on, "5xx,connect-failure");
    assert_eq!(policy.num_retries, Some(3));
    assert_eq!(
        policy.per_try_timeout,
        Some(duration::to_proto(std::time::Duration::from_millis(200)))
    );
    assert!(policy.retry_back_off.unwrap().max_interval.is_some());
}

#[test]
fn retries_report_every_bad_field_by_path() {
    let found = problems(
        "retries",
        r#"{"numRetries": -1, "perTryTimeout": "x", "retryBackOff": {"baseInterval": "y"}}"#,
    );
    assert_eq!(found.len(), 3, "{found:?}");
    assert!(found[0].starts_with("numRetries"), "{found:?}");
    assert!(found[1].starts_with("perTryTimeout"), "{found:?}");
    assert!(
        found[2].starts_with("retryBackOff.baseInterval"),
        "{found:?}"
    );
    let unknown = problems("retries", r#"{"attempts": 3}"#);
    assert!(unknown[0].contains("attempts"), "{unknown:?}");
}

#[test]
fn prefix_rewrite_replaces_the_routes_own_rewrite() {
    let route = applied("prefixRewrite", r#""/v2""#);
    assert_eq!(action(&route).prefix_rewrite, "/v2");
    assert_eq!(
        problems("prefixRewrite", r#""v2""#),
        [": must start with /"]
    );
}

#[test]
fn prefix_rewrite_on_a_regex_route_asks_for_regex_rewrite() {
    let mut route = forwarding_route();
    route.r#match = Some(RouteMatch {
        path_specifier: Some(route_match::PathSpecifier::SafeRegex(Default::default())),
        ..Default::default()
    });
    let err = RouteSettings::from_json("prefixRewrite", r#""/v2""#)
        .unwrap()
        .apply_to_route(&mut route)
        .unwrap_err();
    assert!(format!("{err:?}").contains("regexRewrite"), "{err:?}");
}

#[test]
fn regex_rewrite_clears_the_prefix_rewrite() {
    let route = applied(
        "regexRewrite",
        r#"{"pattern": {"regex": "^/api/(.*)"}, "substitution": "/\\1"}"#,
    );
    let a = action(&route);
    assert!(a.prefix_rewrite.is_empty());
    let rewrite = a.regex_rewrite.clone().unwrap();
    assert_eq!(rewrite.pattern.unwrap().regex, "^/api/(.*)");
    assert_eq!(rewrite.substitution, "/\\1");
    assert_eq!(
        problems(
            "regexRewrite",
            r#"{"pattern": {"regex": ""}, "substitution": "/"}"#
        ),
        ["pattern.regex: must not be empty"]
    );
}

#[test]
fn host_rewrites_set_one_host_rewrite_each() {
    use route_action::HostRewriteSpecifier as H;
    assert_eq!(
        action(&applied("hostRewrite", r#""internal.example""#)).host_rewrite_specifier,
        Some(H::HostRewriteLiteral("internal.example".into()))
    );
    assert_eq!(
        action(&applied("autoHostRewrite", "true")).host_rewrite_specifier,
        Some(H::AutoHostRewrite(true))
    );
    assert_eq!(
        action(&applied("hostRewriteHeader", r#""x-host""#)).host_rewrite_specifier,
        Some(H::HostRewriteHeader("x-host".into()))
    );
}

#[test]
fn header_manipulation_adds_and_removes_on_both_directions() {
    let route = applied(
        "headerManipulation",
        r#"{"requestHeadersToAdd": [{"header": {"key": "x-team", "value": "a"}, "append": false}],
            "requestHeadersToRemove": ["x-debug"],
            "responseHeadersToAdd": [{"header": {"key": "x-served-by", "value": "weir"}}],
            "responseHeadersToRemove": ["server"]}"#,
    );
    let added = &route.request_headers_to_add[0];
    assert_eq!(added.header.as_ref().unwrap().key, "x-team");
    assert_eq!(added.append_action, 2, "append: false overwrites");
    assert_eq!(
        route.response_headers_to_add[0].append_action, 0,
        "appends by default"
    );
    assert_eq!(route.request_headers_to_remove, ["x-debug"]);
    assert_eq!(route.response_headers_to_remove, ["server"]);
}

#[test]
fn header_manipulation_refuses_names_envoy_would_reject() {
    let found = problems(
        "headerManipulation",
        r#"{"requestHeadersToAdd": [{"header": {"key": ":path", "value": "/"}}],
            "responseHeadersToRemove": ["", "bad header"]}"#,
    );
    assert_eq!(found.len(), 3, "{found:?}");
    assert!(
        found[0].starts_with("requestHeadersToAdd[0].header.key"),
        "{found:?}"
    );
    assert!(
        found[1].starts_with("responseHeadersToRemove[0]"),
        "{found:?}"
    );
    assert!(
        found[2].starts_with("responseHeadersToRemove[1]"),
        "{found:?}"
    );
}

#[test]
fn a_redirect_keeps_its_action_but_gets_headers() {
    let mut route = Route {
        action: Some(route::Action::Redirect(RedirectAction::default())),
        ..Default::default()
    };
    RouteSettings::from_json("timeout", r#""1s""#)
        .unwrap()
        .apply_to_route(&mut route)
        .unwrap();
    assert_eq!(
        route.action,
        Some(route::Action::Redirect(RedirectAction::default()))
    );
    RouteSettings::from_json(
        "headerManipulation",
        r#"{"responseHeadersToAdd": [{"header": {"key": "x-a", "value": "b"}}]}"#,
    )
    .unwrap()
    .apply_to_route(&mut route)
    .unwrap();
    assert_eq!(route.response_headers_to_add.len(), 1);
}

#[test]
fn idle_timeout_hash_policies_and_upgrades_go_on_the_route_action() {
    let route = applied("idleTimeout", r#""60s""#);
    assert_eq!(action(&route).idle_timeout.unwrap().seconds, 60);
    let route = applied(
        "lbHash",
        r#"{"hashPolicies": [{"header": "x-user", "terminal": true}, {"cookie": {"name": "s", "ttl": "1h"}}, {"sourceIp": true}]}"#,
    );
    let policies = &action(&route).hash_policy;
    assert_eq!(policies.len(), 3);
    assert!(policies[0].terminal);
    let route = applied("upgrades", r#"[{"websocket": {"enabled": false}}]"#);
    let upgrade = &action(&route).upgrade_configs[0];
    assert_eq!(
        (upgrade.upgrade_type.as_str(), upgrade.enabled),
        ("websocket", Some(false))
    );
}

#[test]
fn hash_policies_name_their_bad_entries() {
    let paths: Vec<String> = problems(
        "lbHash",
        r#"{"hashPolicies": [{"header": "a", "sourceIp": true}, {"cookie": {"name": "s", "ttl": "soon"}}]}"#,
    )
    .into_iter()
    .map(|p| p.split(':').next().unwrap_or_default().to_string())
    .collect();
    assert_eq!(paths, ["hashPolicies[0]", "hashPolicies[1].cookie.ttl"]);
}

#[test]
fn attempt_counts_are_for_virtual_hosts_only() {
    let mut route = forwarding_route();
    let err = RouteSettings::from_json("includeRequestAttemptCount", "true")
        .unwrap()
        .apply_to_route(&mut route)
        .unwrap_err();
    assert_eq!(
        err,
        PluginError::invalid(
            "",
            "applies to virtual hosts only; set it on a VirtualHostOption"
        )
    );
}

#[test]
fn shadowing_mirrors_a_share_to_the_upstream_cluster() {
    let route = applied(
        "shadowing",
        r#"{"upstream": {"name": "canary", "namespace": "apps"}, "percentage": 12.5}"#,
    );
    let mirror = &action(&route).request_mirror_policies[0];
    assert_eq!(mirror.cluster, "upstream_apps_canary");
    let share = mirror
        .runtime_fraction
        .as_ref()
        .unwrap()
        .default_value
        .unwrap();
    assert_eq!(share.numerator, 125_000);
    assert_eq!(
        problems(
            "shadowing",
            r#"{"upstream": {"name": "a", "namespace": "b"}, "percentage": 101}"#
        )
        .len(),
        1
    );
}
