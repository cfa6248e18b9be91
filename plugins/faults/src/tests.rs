use weir_plugin_sdk::envoy::config::listener::v3::Listener;
use weir_plugin_sdk::envoy::config::route::v3::{Route, VirtualHost};
use weir_plugin_sdk::envoy::extensions::filters::common::fault::v3::fault_delay::FaultDelaySecifier;
use weir_plugin_sdk::envoy::extensions::filters::http::fault::v3::HttpFault;
use weir_plugin_sdk::envoy::extensions::filters::http::fault::v3::fault_abort::ErrorType;
use weir_plugin_sdk::envoy::r#type::v3::fractional_percent::DenominatorType;
use weir_plugin_sdk::prost::Name;
use weir_plugin_sdk::{
    FieldError, FilterPlugin, HookInput, ObjectRef, PluginError, StageName, StagePosition, pack,
    unpack,
};

use crate::FaultsPlugin;
use crate::config::to_fractional_percent;

fn mk_input(config: impl ToString, target: weir_plugin_sdk::Any) -> HookInput {
    HookInput {
        key: "faults".into(),
        config: config.to_string(),
        source: ObjectRef {
            group: "gateway.weir.dev".into(),
            kind: "RouteOption".into(),
            namespace: "default".into(),
            name: "chaos".into(),
        },
        target,
    }
}

fn mk_route() -> Route {
    Route {
        name: "default/web/rule-0".into(),
        ..Default::default()
    }
}

fn route_fault(route: &Route) -> HttpFault {
    let any = route
        .typed_per_filter_config
        .get("envoy.filters.http.fault")
        .expect("per-route fault config");
    unpack(&any.clone().into()).expect("an HTTPFault")
}

fn problems(config: &str) -> Vec<FieldError> {
    match FaultsPlugin::validate("faults", config) {
        Err(PluginError::InvalidConfig(problems)) => problems,
        other => panic!("expected invalid config, got {other:?}"),
    }
}

fn paths(config: &str) -> Vec<String> {
    problems(config).into_iter().map(|p| p.path).collect()
}

const ABORT_AND_DELAY: &str = r#"{"abort":{"percentage":50.0,"httpStatus":503},"delay":{"percentage":100.0,"fixedDelay":"2s"}}"#;

#[test]
fn apply_route_sets_per_route_fault_config() {
    let output = FaultsPlugin::apply_route(mk_input(ABORT_AND_DELAY, pack(&mk_route()))).unwrap();
    assert_eq!(output.target.type_url, Route::type_url());
    let route: Route = unpack(&output.target).unwrap();
    assert_eq!(route.name, "default/web/rule-0");

    let fault = route_fault(&route);
    let abort = fault.abort.expect("abort");
    assert_eq!(abort.error_type, Some(ErrorType::HttpStatus(503)));
    let abort_percentage = abort.percentage.expect("abort percentage");
    assert_eq!(abort_percentage.numerator, 500_000);
    assert_eq!(
        abort_percentage.denominator,
        DenominatorType::Million as i32
    );

    let delay = fault.delay.expect("delay");
    let Some(FaultDelaySecifier::FixedDelay(fixed)) = delay.fault_delay_secifier else {
        panic!("no fixed delay")
    };
    assert_eq!((fixed.seconds, fixed.nanos), (2, 0));
    assert_eq!(delay.percentage.unwrap().numerator, 1_000_000);
}

#[test]
fn apply_route_asks_for_the_fault_filter_at_the_fault_stage() {
    let output = FaultsPlugin::apply_route(mk_input(ABORT_AND_DELAY, pack(&mk_route()))).unwrap();
    assert_eq!(output.http_filters.len(), 1);
    let filter = &output.http_filters[0];
    assert_eq!(filter.name, "envoy.filters.http.fault");
    assert_eq!(
        (filter.stage.name, filter.stage.position),
        (StageName::Fault, StagePosition::During)
    );
    assert_eq!(
        unpack::<HttpFault>(&filter.config).unwrap(),
        HttpFault::default()
    );
    assert!(!filter.disabled);
}

#[test]
fn apply_route_keeps_other_per_filter_config() {
    let mut route = mk_route();
    route.typed_per_filter_config.insert(
        "envoy.filters.http.cors".into(),
        pack(&Route::default()).into(),
    );
    let output = FaultsPlugin::apply_route(mk_input(ABORT_AND_DELAY, pack(&route))).unwrap();
    let route: Route = unpack(&output.target).unwrap();
    assert_eq!(route.typed_per_filter_config.len(), 2);
}

#[test]
fn abort_only_leaves_delay_unset() {
    let output = FaultsPlugin::apply_route(mk_input(
        r#"{"abort":{"httpStatus":418}}"#,
        pack(&mk_route()),
    ))
    .unwrap();
    let fault = route_fault(&unpack(&output.target).unwrap());
    assert!(fault.delay.is_none());
    // K8sGateway's default percentage is 0.
    assert_eq!(fault.abort.unwrap().percentage.unwrap().numerator, 0);
}

#[test]
fn apply_virtual_host_sets_per_virtual_host_fault_config() {
    let vhost = VirtualHost {
        name: "web".into(),
        ..Default::default()
    };
    let output = FaultsPlugin::apply_virtual_host(mk_input(ABORT_AND_DELAY, pack(&vhost))).unwrap();
    let vhost: VirtualHost = unpack(&output.target).unwrap();
    assert!(
        vhost
            .typed_per_filter_config
            .contains_key("envoy.filters.http.fault")
    );
    assert_eq!(output.http_filters.len(), 1);
}

#[test]
fn faults_on_a_listener_are_rejected() {
    let err = FaultsPlugin::apply_listener(mk_input(ABORT_AND_DELAY, pack(&Listener::default())))
        .unwrap_err();
    assert!(err.to_string().contains("ListenerOption"), "{err}");
}

#[test]
fn apply_route_rejects_a_target_of_another_type() {
    let err = FaultsPlugin::apply_route(mk_input(ABORT_AND_DELAY, pack(&Listener::default())))
        .unwrap_err();
    assert!(matches!(err, PluginError::BadInput(_)), "{err}");
}

#[test]
fn apply_route_with_invalid_config_is_an_error_not_a_panic() {
    let err = FaultsPlugin::apply_route(mk_input(
        r#"{"abort":{"httpStatus":1000}}"#,
        pack(&mk_route()),
    ))
    .unwrap_err();
    assert_eq!(
        err,
        PluginError::invalid(
            "abort.httpStatus",
            "must be an HTTP status between 200 and 599, got 1000"
        )
    );
}

#[test]
fn valid_config_passes_validation() {
    assert_eq!(FaultsPlugin::validate("faults", ABORT_AND_DELAY), Ok(()));
}

#[test]
fn http_status_outside_200_to_599_is_rejected() {
    assert_eq!(
        paths(r#"{"abort":{"httpStatus":199}}"#),
        ["abort.httpStatus"]
    );
    assert_eq!(
        paths(r#"{"abort":{"httpStatus":600}}"#),
        ["abort.httpStatus"]
    );
}

#[test]
fn percentages_outside_0_to_100_are_rejected() {
    let config = r#"{"abort":{"percentage":-1,"httpStatus":503},"delay":{"percentage":100.5,"fixedDelay":"1s"}}"#;
    assert_eq!(paths(config), ["abort.percentage", "delay.percentage"]);
}

#[test]
fn bad_duration_syntax_is_reported_at_fixed_delay() {
    let problems = problems(r#"{"delay":{"percentage":10,"fixedDelay":"2 seconds"}}"#);
    assert_eq!(problems[0].path, "delay.fixedDelay");
    assert!(
        problems[0].message.contains("unknown unit"),
        "{:?}",
        problems[0]
    );
    assert_eq!(
        paths(r#"{"delay":{"fixedDelay":"5"}}"#),
        ["delay.fixedDelay"]
    );
    assert_eq!(
        paths(r#"{"delay":{"fixedDelay":"0s"}}"#),
        ["delay.fixedDelay"]
    );
}

#[test]
fn empty_faults_are_rejected() {
    let problems = problems("{}");
    assert_eq!(
        problems,
        [FieldError::new("", "set at least one of abort and delay")]
    );
}

#[test]
fn missing_http_status_is_named() {
    let problems = problems(r#"{"abort":{"percentage":5}}"#);
    assert_eq!(problems[0].path, "abort");
    assert_eq!(problems[0].message, "missing field `httpStatus`");
}

#[test]
fn unknown_fields_are_rejected_by_name() {
    let problems = problems(r#"{"abort":{"httpStatus":503,"status":503}}"#);
    assert!(
        problems[0].message.contains("unknown field `status`"),
        "{:?}",
        problems[0]
    );
}

#[test]
fn fractional_percentages_keep_their_precision() {
    assert_eq!(to_fractional_percent(0.5).numerator, 5_000);
    assert_eq!(to_fractional_percent(33.3333).numerator, 333_333);
    assert_eq!(to_fractional_percent(100.0).numerator, 1_000_000);
}
