//! RouteOption attachment (targetRefs, ExtensionRef), precedence, plugin errors in status,
//! the HTTP filters options add to the listener, and incremental re-translation.

use envoy_types::pb::envoy::config::listener::v3::{Listener, filter};
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::HttpConnectionManager;
use envoy_types::pb::google::protobuf::{Any, UInt32Value};
use prost::Message;

use super::*;
use crate::model::Object;
use crate::translate::{
    FilterPlugins, HttpListenerOptionRequest, ListenerOptionRequest, OptionFilter, OptionResult,
    RouteOptionRequest, VirtualHostOptionRequest,
};

/// A fake option host: `faults` records its value in the route's per-filter config and
/// needs the fault filter (stage fault); `cors` the same at stage cors; `faults` with
/// `abort.httpStatus` outside 200..=599 is rejected naming the field; every other key is
/// unclaimed. Upstreams go to [`FakePlugins`].
#[derive(Default)]
struct FakeOptions {
    upstreams: FakePlugins,
    calls: usize,
}

impl UpstreamPlugins for FakeOptions {
    fn translate_upstream(
        &mut self,
        r: &UpstreamRequest<'_>,
    ) -> Result<(Cluster, Option<ClusterLoadAssignment>), String> {
        self.upstreams.translate_upstream(r)
    }

    fn filter_plugins(&mut self) -> Option<&mut dyn FilterPlugins> {
        Some(self)
    }
}

impl FilterPlugins for FakeOptions {
    fn apply_route(
        &mut self,
        r: &RouteOptionRequest<'_>,
    ) -> Result<(Route, Vec<OptionFilter>), String> {
        let mut route = r.target.clone();
        // `mirror` mirrors requests to the cluster its value names.
        if r.key == "mirror" {
            if let Some(envoy_types::pb::envoy::config::route::v3::route::Action::Route(a)) =
                &mut route.action
            {
                a.request_mirror_policies = vec![
                    envoy_types::pb::envoy::config::route::v3::route_action::RequestMirrorPolicy {
                        cluster: r.config.as_str().unwrap().to_string(),
                        ..Default::default()
                    },
                ];
            }
            return Ok((route, Vec::new()));
        }
        let f = self.fake_apply(
            (r.key, r.config, r.source),
            &mut route.typed_per_filter_config,
        )?;
        Ok((route, vec![f]))
    }

    fn apply_virtual_host(
        &mut self,
        r: &VirtualHostOptionRequest<'_>,
    ) -> Result<(VirtualHost, Vec<OptionFilter>), String> {
        let mut vhost = r.target.clone();
        let f = self.fake_apply(
            (r.key, r.config, r.source),
            &mut vhost.typed_per_filter_config,
        )?;
        Ok((vhost, vec![f]))
    }

    /// `serverName` sets the server name (noting the source); `gzip` needs the compressor
    /// filter, enabled; `chain` adds a filter to the chain itself (which the host
    /// refuses); anything else is unclaimed.
    fn apply_http_connection_manager(
        &mut self,
        r: &HttpListenerOptionRequest<'_>,
    ) -> OptionResult<HttpConnectionManager> {
        self.calls += 1;
        let mut hcm = r.target.clone();
        let mut filters = Vec::new();
        match r.key {
            "serverName" => {
                hcm.server_name = format!("{} from {}", r.config.as_str().unwrap(), r.source.name)
            }
            "gzip" => filters.push(OptionFilter {
                name: "envoy.filters.http.compressor".to_string(),
                stage: (6, 1),
                config: Any::default(),
                disabled: false,
            }),
            "chain" => hcm.http_filters.insert(0, Default::default()),
            // Points an ext_authz filter at the cluster the value names.
            "authCluster" => filters.push(OptionFilter {
                name: "envoy.filters.http.ext_authz".to_string(),
                stage: (3, 1),
                config: ext_authz_at(r.config.as_str().unwrap()),
                disabled: false,
            }),
            other => return Err(format!("spec.options.{other}: unclaimed")),
        }
        Ok((hcm, filters))
    }

    /// `perConnectionBufferLimitBytes` sets it; `rename` renames the listener (which the
    /// host refuses); anything else is unclaimed.
    fn apply_listener(&mut self, r: &ListenerOptionRequest<'_>) -> OptionResult<Listener> {
        self.calls += 1;
        let mut listener = r.target.clone();
        match r.key {
            "perConnectionBufferLimitBytes" => {
                listener.per_connection_buffer_limit_bytes =
                    r.config.as_u64().map(|n| UInt32Value { value: n as u32 })
            }
            "rename" => listener.name = "mine".to_string(),
            other => return Err(format!("spec.options.{other}: unclaimed")),
        }
        Ok((listener, Vec::new()))
    }
}

impl FakeOptions {
    /// Records option `key`'s value (and where it came from) in `per_filter`; the filter
    /// it needs.
    fn fake_apply(
        &mut self,
        (key, config, source): (&str, &serde_json::Value, &ObjectKey),
        per_filter: &mut std::collections::HashMap<String, Any>,
    ) -> Result<OptionFilter, String> {
        self.calls += 1;
        let (filter, stage) = match key {
            "faults" => ("envoy.filters.http.fault", (0, 1)),
            "cors" => ("envoy.filters.http.cors", (1, 1)),
            other => {
                return Err(format!(
                    "spec.options.{other}: no plugin claims option key `{other}`"
                ));
            }
        };
        if let Some(s) = config.pointer("/abort/httpStatus").and_then(|v| v.as_i64())
            && !(200..=599).contains(&s)
        {
            return Err(format!(
                "plugin `faults` rejected the option: spec.options.faults.abort.httpStatus: must be an HTTP status between 200 and 599, got {s}"
            ));
        }
        let value = format!("{} from {}", config, source.name).into_bytes();
        per_filter.insert(
            filter.to_string(),
            Any {
                type_url: "type.googleapis.com/test.Value".to_string(),
                value,
            },
        );
        let f = OptionFilter {
            name: filter.to_string(),
            stage,
            config: Any {
                type_url: "type.googleapis.com/test.Filter".to_string(),
                value: Vec::new(),
            },
            disabled: false,
        };
        Ok(f)
    }
}

fn run_opts(store: &Store) -> Translation {
    translate(store, &mut FakeOptions::default(), Timestamp::UNIX_EPOCH)
}

fn run_opts_with(t: &mut Translator, store: &Store) -> Translation {
    t.translate(store, &mut FakeOptions::default(), Timestamp::UNIX_EPOCH)
}

/// A RouteOption; `created` is its creationTimestamp, `spec` the YAML under `spec`.
fn mk_option(name: &str, created: &str, spec: &str) -> String {
    let spec: String = spec.lines().map(|l| format!("  {l}\n")).collect();
    format!(
        "apiVersion: gateway.solo.io/v1\nkind: RouteOption\nmetadata:\n  name: {name}\n  namespace: infra\n  generation: 2\n  creationTimestamp: \"{created}\"\nspec:\n{spec}---\n"
    )
}

/// Route `infra/r` with two rules: `/a` (with `rule0_filters` if any) and `/b`.
fn mk_two_rules(rule0_filters: &str) -> String {
    mk_route(
        "infra",
        "r",
        &format!(
            "parentRefs:\n- name: gw\nrules:\n- matches: [{{path: {{type: PathPrefix, value: /a}}}}]\n  backendRefs: [{{name: v1, port: 8080}}]\n{rule0_filters}- matches: [{{path: {{type: PathPrefix, value: /b}}}}]\n  backendRefs: [{{name: v1, port: 8080}}]"
        ),
    )
}

fn ext_ref(name: &str) -> String {
    format!(
        "  filters:\n  - type: ExtensionRef\n    extensionRef: {{group: gateway.solo.io, kind: RouteOption, name: {name}}}\n"
    )
}

const TARGET_R: &str =
    "targetRefs:\n- group: gateway.networking.k8s.io\n  kind: HTTPRoute\n  name: r\n";

/// The per-filter config `filter` of a route, as the fake wrote it.
fn per_filter(r: &Route, filter: &str) -> Option<String> {
    r.typed_per_filter_config
        .get(filter)
        .map(|a| String::from_utf8(a.value.clone()).unwrap())
}

/// The HTTP filter names of the port-80 listener of `infra/gw`.
fn http_filters(t: &Translation) -> Vec<String> {
    let res = &t.gateways[&key(Kind::Gateway, "infra", "gw")];
    let l = res
        .listeners
        .iter()
        .find(|l| l.name == "listener_80")
        .unwrap();
    let f = &l.filter_chains[0].filters[0];
    let Some(filter::ConfigType::TypedConfig(any)) = &f.config_type else {
        panic!("no HCM config");
    };
    let hcm = HttpConnectionManager::decode(any.value.as_slice()).unwrap();
    hcm.http_filters.into_iter().map(|f| f.name).collect()
}

fn accepted(t: &Translation, name: &str) -> (String, String, String) {
    csr(cond(
        status(t, Kind::RouteOption, "infra", name),
        "Accepted",
    ))
}

#[test]
fn target_ref_applies_options_to_every_rule_and_adds_their_filters() {
    let yaml = format!(
        "{}{}{}",
        mk_base(),
        mk_two_rules(""),
        mk_option(
            "o",
            "2024-01-01T00:00:00Z",
            &format!(
                "{TARGET_R}options:\n  faults: {{abort: {{httpStatus: 418, percentage: 100}}}}\n  cors: {{allowOrigin: [x]}}"
            )
        )
    );
    let t = run_opts(&mk_store(&yaml));
    for name in ["infra_r_rule0_match0", "infra_r_rule1_match0"] {
        let r = route_named(&t, name);
        let fault = per_filter(r, "envoy.filters.http.fault").expect("fault config");
        assert!(
            fault.contains("418") && fault.ends_with("from o"),
            "{fault}"
        );
        assert!(per_filter(r, "envoy.filters.http.cors").is_some());
    }
    // Ordered by stage (fault before cors), router last.
    assert_eq!(
        http_filters(&t),
        [
            "envoy.filters.http.fault",
            "envoy.filters.http.cors",
            "envoy.filters.http.router"
        ]
    );
    assert_eq!(accepted(&t, "o").0, "True");
}

#[test]
fn without_options_the_chain_is_the_router_alone() {
    let yaml = format!("{}{}", mk_base(), mk_two_rules(""));
    let t = run_opts(&mk_store(&yaml));
    assert_eq!(http_filters(&t), ["envoy.filters.http.router"]);
    assert!(
        route_named(&t, "infra_r_rule0_match0")
            .typed_per_filter_config
            .is_empty()
    );
}

#[test]
fn a_route_option_targeting_another_route_does_not_apply() {
    let yaml = format!(
        "{}{}{}",
        mk_base(),
        mk_two_rules(""),
        mk_option(
            "o",
            "2024-01-01T00:00:00Z",
            "targetRefs:\n- kind: HTTPRoute\n  name: other\noptions:\n  faults: {abort: {httpStatus: 418}}"
        )
    );
    let t = run_opts(&mk_store(&yaml));
    assert_eq!(http_filters(&t), ["envoy.filters.http.router"]);
}

#[test]
fn extension_ref_applies_to_its_rule_and_wins_over_target_ref_key_by_key() {
    let yaml = format!(
        "{}{}{}{}",
        mk_base(),
        mk_two_rules(&ext_ref("rule")),
        // Older, but a targetRef: ExtensionRef still wins for `faults`; `cors` is filled.
        mk_option(
            "whole",
            "2020-01-01T00:00:00Z",
            &format!(
                "{TARGET_R}options:\n  faults: {{abort: {{httpStatus: 503}}}}\n  cors: {{allowOrigin: [x]}}"
            )
        ),
        mk_option(
            "rule",
            "2024-01-01T00:00:00Z",
            "options:\n  faults: {abort: {httpStatus: 418}}"
        ),
    );
    let t = run_opts(&mk_store(&yaml));
    let a = route_named(&t, "infra_r_rule0_match0");
    let fault = per_filter(a, "envoy.filters.http.fault").unwrap();
    assert!(
        fault.contains("418") && fault.ends_with("from rule"),
        "{fault}"
    );
    let cors = per_filter(a, "envoy.filters.http.cors").unwrap();
    assert!(cors.ends_with("from whole"), "{cors}");
    let b = route_named(&t, "infra_r_rule1_match0");
    let fault = per_filter(b, "envoy.filters.http.fault").unwrap();
    assert!(
        fault.contains("503") && fault.ends_with("from whole"),
        "{fault}"
    );
    assert_eq!(route_cond(&t, "infra", "r", 0, "ResolvedRefs").0, "True");
    // The targetRef'd option lost `faults` on rule 0 only: a warning, still accepted.
    assert_eq!(
        warnings(&t, "whole"),
        [
            "spec.options.faults: overridden on HTTPRoute infra/r rule 0 by RouteOption/infra/rule, which takes precedence"
        ]
    );
    assert_eq!(accepted(&t, "whole").0, "True");
    assert!(warnings(&t, "rule").is_empty());
}

/// The warnings in RouteOption `infra/name`'s status.
fn warnings(t: &Translation, name: &str) -> Vec<String> {
    status(t, Kind::RouteOption, "infra", name)["warnings"]
        .as_array()
        .map(|w| w.iter().map(|m| m.as_str().unwrap().to_string()).collect())
        .unwrap_or_default()
}

#[test]
fn older_target_ref_wins_then_name_and_newer_only_fills_unset_keys() {
    let yaml = format!(
        "{}{}{}{}{}",
        mk_base(),
        mk_two_rules(""),
        mk_option(
            "newer",
            "2024-06-01T00:00:00Z",
            &format!(
                "{TARGET_R}options:\n  faults: {{abort: {{httpStatus: 500}}}}\n  cors: {{allowOrigin: [n]}}"
            )
        ),
        mk_option(
            "older-b",
            "2024-01-01T00:00:00Z",
            &format!("{TARGET_R}options:\n  faults: {{abort: {{httpStatus: 502}}}}")
        ),
        mk_option(
            "older-a",
            "2024-01-01T00:00:00Z",
            &format!("{TARGET_R}options:\n  faults: {{abort: {{httpStatus: 501}}}}")
        ),
    );
    let t = run_opts(&mk_store(&yaml));
    let r = route_named(&t, "infra_r_rule0_match0");
    let fault = per_filter(r, "envoy.filters.http.fault").unwrap();
    assert!(
        fault.contains("501") && fault.ends_with("from older-a"),
        "{fault}"
    );
    let cors = per_filter(r, "envoy.filters.http.cors").unwrap();
    assert!(cors.ends_with("from newer"), "{cors}");
    let lost = |winner: &str| {
        vec![format!(
            "spec.options.faults: overridden on HTTPRoute infra/r by RouteOption/infra/{winner}, which takes precedence"
        )]
    };
    assert_eq!(warnings(&t, "newer"), lost("older-a"));
    assert_eq!(warnings(&t, "older-b"), lost("older-a"));
    assert!(warnings(&t, "older-a").is_empty());
}

#[test]
fn unclaimed_key_makes_the_route_option_not_accepted_naming_the_key() {
    let yaml = format!(
        "{}{}{}",
        mk_base(),
        mk_two_rules(""),
        mk_option(
            "o",
            "2024-01-01T00:00:00Z",
            &format!(
                "{TARGET_R}options:\n  telepathy: {{on: true}}\n  faults: {{abort: {{httpStatus: 418}}}}"
            )
        )
    );
    let t = run_opts(&mk_store(&yaml));
    let (status, reason, message) = accepted(&t, "o");
    assert_eq!((status.as_str(), reason.as_str()), ("False", "InvalidSpec"));
    assert_eq!(
        message,
        "spec.options.telepathy: no plugin claims option key `telepathy`"
    );
    // The claimed key still applies; the route keeps being served.
    let r = route_named(&t, "infra_r_rule0_match0");
    assert!(per_filter(r, "envoy.filters.http.fault").is_some());
    forward(r);
}

#[test]
fn rejected_value_names_the_field_and_the_route_is_served_without_it() {
    let yaml = format!(
        "{}{}{}",
        mk_base(),
        mk_two_rules(""),
        mk_option(
            "o",
            "2024-01-01T00:00:00Z",
            &format!("{TARGET_R}options:\n  faults: {{abort: {{httpStatus: 42}}}}")
        )
    );
    let t = run_opts(&mk_store(&yaml));
    let (status, _, message) = accepted(&t, "o");
    assert_eq!(status, "False");
    assert!(
        message.contains("spec.options.faults.abort.httpStatus") && message.contains("42"),
        "{message}"
    );
    let r = route_named(&t, "infra_r_rule0_match0");
    assert!(r.typed_per_filter_config.is_empty());
    assert_eq!(http_filters(&t), ["envoy.filters.http.router"]);
}

#[test]
fn without_option_plugins_every_key_is_unclaimed() {
    let yaml = format!(
        "{}{}{}",
        mk_base(),
        mk_two_rules(""),
        mk_option(
            "o",
            "2024-01-01T00:00:00Z",
            &format!("{TARGET_R}options:\n  faults: {{abort: {{httpStatus: 418}}}}")
        )
    );
    // The default fake reaches no option plugins.
    let t = run(&mk_store(&yaml));
    let (status, _, message) = accepted(&t, "o");
    assert_eq!(status, "False");
    assert!(message.contains("`faults`"), "{message}");
}

#[test]
fn target_in_another_namespace_is_not_accepted_and_does_not_attach() {
    let route = mk_route(
        "apps",
        "r",
        "parentRefs:\n- {name: gw, namespace: infra}\nrules:\n- backendRefs: [{name: v1, port: 8080, namespace: infra}]",
    );
    let grant = mk_grant("infra", "HTTPRoute", "apps", "", "Service");
    let yaml = format!(
        "{}{route}{grant}{}",
        mk_base(),
        mk_option(
            "o",
            "2024-01-01T00:00:00Z",
            "targetRefs:\n- kind: HTTPRoute\n  name: r\n  namespace: apps\noptions:\n  faults: {abort: {httpStatus: 418}}"
        )
    );
    let t = run_opts(&mk_store(&yaml));
    let (status, _, message) = accepted(&t, "o");
    assert_eq!(status, "False");
    assert!(
        message.starts_with("spec.targetRefs[0].namespace:"),
        "{message}"
    );
    assert_eq!(http_filters(&t), ["envoy.filters.http.router"]);
}

#[test]
fn route_option_changes_retranslate_the_routes_they_attach_to() {
    let base = format!(
        "{}{}{}",
        mk_base(),
        mk_two_rules(&ext_ref("rule")),
        mk_route(
            "infra",
            "untouched",
            "parentRefs:\n- name: gw\nhostnames: [u.example.com]\nrules:\n- backendRefs: [{name: v2, port: 8080}]"
        )
    );
    let rule_opt = |status: u16| {
        mk_option(
            "rule",
            "2024-01-01T00:00:00Z",
            &format!("options:\n  faults: {{abort: {{httpStatus: {status}}}}}"),
        )
    };
    let whole = mk_option(
        "whole",
        "2024-01-01T00:00:00Z",
        &format!("{TARGET_R}options:\n  cors: {{allowOrigin: [x]}}"),
    );
    let mut translator = Translator::new();
    let steps = [
        format!("{base}{}", rule_opt(418)),
        // The ExtensionRef'd option changes.
        format!("{base}{}", rule_opt(503)),
        // A targetRef option appears.
        format!("{base}{}{whole}", rule_opt(503)),
        // Both go away.
        base.clone(),
    ];
    for (i, yaml) in steps.iter().enumerate() {
        let store = mk_store(yaml);
        let incremental = run_opts_with(&mut translator, &store);
        assert_eq!(incremental, run_opts(&store), "step {i}");
        if i > 0 {
            let p = translator.last_pass();
            assert_eq!(
                (p.routes_translated, p.routes_reused),
                (1, 1),
                "step {i}: only infra/r re-translates"
            );
        }
        let r = route_named(&incremental, "infra_r_rule0_match0");
        let fault = per_filter(r, "envoy.filters.http.fault");
        let cors = per_filter(r, "envoy.filters.http.cors");
        match i {
            0 => assert!(fault.unwrap().contains("418")),
            1 => assert!(fault.unwrap().contains("503") && cors.is_none()),
            2 => assert!(cors.is_some()),
            _ => assert!(fault.is_none() && cors.is_none()),
        }
    }
    // A pass with nothing changed calls no plugin.
    let store = mk_store(&steps[2]);
    run_opts_with(&mut translator, &store);
    let mut plugins = FakeOptions::default();
    translator.translate(&store, &mut plugins, Timestamp::UNIX_EPOCH);
    assert_eq!(plugins.calls, 0);
    assert_eq!(translator.last_pass().routes_translated, 0);
}

/// A world of routes and RouteOptions (by targetRef and ExtensionRef) as separate objects.
fn option_world() -> Vec<Object> {
    let mut yaml = mk_base();
    for i in 0..3 {
        let filters = if i == 1 {
            ext_ref("ext")
        } else {
            String::new()
        };
        yaml.push_str(&mk_route(
            "infra",
            format!("r{i}"),
            &format!(
                "parentRefs:\n- name: gw\nhostnames: [h{i}.example.com]\nrules:\n- backendRefs: [{{name: v1, port: 8080}}]\n{filters}"
            ),
        ));
        yaml.push_str(&mk_option(
            &format!("o{i}"),
            &format!("2024-01-0{}T00:00:00Z", 3 - i),
            &format!(
                "targetRefs:\n- kind: HTTPRoute\n  name: r{}\noptions:\n  faults: {{abort: {{httpStatus: {}}}}}\n  cors: {{allowOrigin: [o{i}]}}",
                i % 2,
                500 + i
            ),
        ));
    }
    yaml.push_str(&mk_option(
        "ext",
        "2024-01-01T00:00:00Z",
        "options:\n  faults: {abort: {httpStatus: 418}}",
    ));
    crate::source::file::parse_str(
        std::path::Path::new("w.yaml"),
        &yaml,
        crate::source::file::Format::Yaml,
    )
    .objects
}

/// Edits one object: deletes it, retargets a RouteOption, changes its status code, or
/// gives it an unclaimed key.
fn edit_option(objects: &mut Vec<Object>, which: usize, how: u8) {
    let i = which % objects.len();
    let mut json = objects[i].to_json_unredacted().unwrap();
    match how % 4 {
        0 => {
            objects.remove(i);
            return;
        }
        1 => {
            if let Some(n) = json.pointer_mut("/spec/targetRefs/0/name") {
                *n = serde_json::json!(format!("r{}", which % 3));
            }
        }
        2 => {
            if let Some(s) = json.pointer_mut("/spec/options/faults/abort/httpStatus") {
                *s = serde_json::json!(if which.is_multiple_of(2) { 42 } else { 404 });
            }
        }
        _ => {
            if let Some(o) = json.pointer_mut("/spec/options") {
                o["unknown"] = serde_json::json!({});
            }
        }
    }
    let yaml = serde_yaml_ng::to_string(&json).unwrap();
    let loaded = crate::source::file::parse_str(
        std::path::Path::new("e.yaml"),
        &yaml,
        crate::source::file::Format::Yaml,
    );
    if let Some(o) = loaded.objects.into_iter().next() {
        objects[i] = o;
    }
}

fn store_of(objects: &[Object]) -> Store {
    let mut s = Store::new();
    for o in objects {
        s.apply(o.clone());
    }
    s
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 24, ..Default::default() })]

    #[test]
    fn incremental_equals_full_after_route_option_edits(
        edits in proptest::collection::vec((0usize..64, proptest::prelude::any::<u8>()), 1..6)
    ) {
        let mut objects = option_world();
        let mut translator = Translator::new();
        run_opts_with(&mut translator, &store_of(&objects));
        for (which, how) in edits {
            edit_option(&mut objects, which, how);
            let store = store_of(&objects);
            let incremental = run_opts_with(&mut translator, &store);
            proptest::prop_assert_eq!(incremental, run_opts(&store));
        }
    }
}

/// A VirtualHostOption `infra/name`; `created` is its creationTimestamp, `spec` the YAML
/// under `spec`.
fn mk_vho(name: &str, created: &str, spec: &str) -> String {
    mk_option(name, created, spec).replacen("kind: RouteOption", "kind: VirtualHostOption", 1)
}

/// The per-filter config `filter` of `infra/gw`'s virtual host for any host on port 80.
fn vhost_filter(t: &Translation, filter: &str) -> Option<String> {
    vhost(t, "infra", "gw", 80, "*")
        .typed_per_filter_config
        .get(filter)
        .map(|a| String::from_utf8(a.value.clone()).unwrap())
}

fn vho_status<'a>(t: &'a Translation, name: &str) -> &'a serde_json::Value {
    status(t, Kind::VirtualHostOption, "infra", name)
}

const TARGET_GW: &str =
    "targetRefs:\n- group: gateway.networking.k8s.io\n  kind: Gateway\n  name: gw\n";

#[test]
fn virtual_host_options_apply_listener_specific_first_then_whole_gateway() {
    let yaml = format!(
        "{}{}{}{}{}",
        mk_base(),
        mk_two_rules(""),
        // Older but for the whole Gateway: the listener's own option wins `faults`.
        mk_vho(
            "whole",
            "2020-01-01T00:00:00Z",
            &format!(
                "{TARGET_GW}options:\n  faults: {{abort: {{httpStatus: 503}}}}\n  cors: {{allowOrigin: [x]}}"
            )
        ),
        mk_vho(
            "listener",
            "2024-01-01T00:00:00Z",
            &format!(
                "{TARGET_GW}  sectionName: http\noptions:\n  faults: {{abort: {{httpStatus: 418}}}}"
            )
        ),
        mk_vho(
            "elsewhere",
            "2019-01-01T00:00:00Z",
            "targetRefs:\n- {kind: Gateway, name: other}\noptions:\n  faults: {abort: {httpStatus: 500}}"
        ),
    );
    let t = run_opts(&mk_store(&yaml));
    let fault = vhost_filter(&t, "envoy.filters.http.fault").unwrap();
    assert!(
        fault.contains("418") && fault.ends_with("from listener"),
        "{fault}"
    );
    let cors = vhost_filter(&t, "envoy.filters.http.cors").unwrap();
    assert!(cors.ends_with("from whole"), "{cors}");
    assert_eq!(
        http_filters(&t),
        [
            "envoy.filters.http.fault",
            "envoy.filters.http.cors",
            "envoy.filters.http.router"
        ]
    );
    assert_eq!(
        vho_status(&t, "whole")["warnings"],
        serde_json::json!([
            "spec.options.faults: overridden on Gateway/infra/gw listener http by VirtualHostOption/infra/listener, which takes precedence"
        ])
    );
    for name in ["whole", "listener", "elsewhere"] {
        assert_eq!(
            csr(cond(vho_status(&t, name), "Accepted")).0,
            "True",
            "{name}"
        );
    }
}

#[test]
fn virtual_host_option_key_problems_are_in_its_status_and_changes_reapply() {
    let option = |status: u16| {
        mk_vho(
            "vho",
            "2024-01-01T00:00:00Z",
            &format!(
                "{TARGET_GW}options:\n  faults: {{abort: {{httpStatus: {status}}}}}\n  telepathy: {{on: true}}"
            ),
        )
    };
    let base = format!("{}{}", mk_base(), mk_two_rules(""));
    let mut translator = Translator::new();
    let t = run_opts_with(
        &mut translator,
        &mk_store(&format!("{base}{}", option(418))),
    );
    let (status, _, message) = csr(cond(vho_status(&t, "vho"), "Accepted"));
    assert_eq!(status, "False");
    assert!(message.contains("spec.options.telepathy"), "{message}");
    // The claimed key still applies.
    let fault = vhost_filter(&t, "envoy.filters.http.fault").unwrap();
    assert!(fault.contains("418"), "{fault}");

    // A changed value reaches the (memoised) virtual host; removing the option clears it.
    let t = run_opts_with(
        &mut translator,
        &mk_store(&format!("{base}{}", option(429))),
    );
    let fault = vhost_filter(&t, "envoy.filters.http.fault").unwrap();
    assert!(fault.contains("429"), "{fault}");
    let t = run_opts_with(&mut translator, &mk_store(&base));
    assert_eq!(vhost_filter(&t, "envoy.filters.http.fault"), None);
    assert_eq!(http_filters(&t), ["envoy.filters.http.router"]);
}

#[test]
fn virtual_host_option_targeting_another_namespace_is_not_accepted_and_does_not_apply() {
    let yaml = format!(
        "{}{}{}",
        mk_base(),
        mk_two_rules(""),
        mk_vho(
            "far",
            "2024-01-01T00:00:00Z",
            "targetRefs:\n- {kind: Gateway, name: gw, namespace: apps}\noptions:\n  faults: {abort: {httpStatus: 418}}"
        ),
    );
    let t = run_opts(&mk_store(&yaml));
    let (status, _, message) = csr(cond(vho_status(&t, "far"), "Accepted"));
    assert_eq!(status, "False");
    assert_eq!(
        message,
        "spec.targetRefs[0].namespace: a VirtualHostOption attaches only to Gateways in its own namespace (infra), not apps"
    );
    assert_eq!(vhost_filter(&t, "envoy.filters.http.fault"), None);
}

/// An ext_authz filter config asking an HTTP service in `cluster`.
fn ext_authz_at(cluster: &str) -> Any {
    use envoy_types::pb::envoy::config::core::v3::{HttpUri, http_uri};
    use envoy_types::pb::envoy::extensions::filters::http::ext_authz::v3::{
        ExtAuthz, HttpService, ext_authz,
    };
    let filter = ExtAuthz {
        services: Some(ext_authz::Services::HttpService(HttpService {
            server_uri: Some(HttpUri {
                uri: format!("http://{cluster}"),
                http_upstream_type: Some(http_uri::HttpUpstreamType::Cluster(cluster.into())),
                ..Default::default()
            }),
            ..Default::default()
        })),
        ..Default::default()
    };
    Any {
        type_url: "type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthz"
            .to_string(),
        value: filter.encode_to_vec(),
    }
}

/// An option object of `kind` (`HttpListenerOption`, `ListenerOption`) named `infra/name`.
fn mk_gateway_option(kind: &str, name: &str, created: &str, spec: &str) -> String {
    mk_option(name, created, spec).replacen("kind: RouteOption", &format!("kind: {kind}"), 1)
}

/// The HTTP connection manager of the port-80 listener of `infra/gw`.
fn port_80_hcm(t: &Translation) -> HttpConnectionManager {
    let l = port_80(t);
    let Some(filter::ConfigType::TypedConfig(any)) = &l.filter_chains[0].filters[0].config_type
    else {
        panic!("no HCM config");
    };
    HttpConnectionManager::decode(any.value.as_slice()).unwrap()
}

fn port_80(t: &Translation) -> &Listener {
    t.gateways[&key(Kind::Gateway, "infra", "gw")]
        .listeners
        .iter()
        .find(|l| l.name == "listener_80")
        .unwrap()
}

#[test]
fn http_listener_options_change_the_connection_manager_and_add_enabled_filters_before_the_router() {
    let yaml = format!(
        "{}{}{}{}{}",
        mk_base(),
        mk_two_rules(""),
        mk_option(
            "o",
            "2024-01-01T00:00:00Z",
            &format!("{TARGET_R}options:\n  faults: {{abort: {{httpStatus: 418}}}}")
        ),
        mk_gateway_option(
            "HttpListenerOption",
            "whole",
            "2020-01-01T00:00:00Z",
            &format!("{TARGET_GW}options:\n  serverName: old\n  gzip: {{}}")
        ),
        mk_gateway_option(
            "HttpListenerOption",
            "listener",
            "2024-01-01T00:00:00Z",
            &format!("{TARGET_GW}  sectionName: http\noptions:\n  serverName: new")
        ),
    );
    let t = run_opts(&mk_store(&yaml));
    let hcm = port_80_hcm(&t);
    // The listener's own option wins the key it shares with the whole-Gateway one.
    assert_eq!(hcm.server_name, "new from listener");
    let names: Vec<_> = hcm.http_filters.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "envoy.filters.http.fault",
            "envoy.filters.http.compressor",
            "envoy.filters.http.router"
        ]
    );
    assert!(!hcm.http_filters[1].disabled, "a listener's filter is on");
    let whole = status(&t, Kind::HttpListenerOption, "infra", "whole");
    assert_eq!(csr(cond(whole, "Accepted")).0, "True");
    assert_eq!(
        whole["warnings"],
        serde_json::json!([
            "spec.options.serverName: overridden on Gateway/infra/gw listener http by HttpListenerOption/infra/listener, which takes precedence"
        ])
    );
}

#[test]
fn an_http_listener_option_that_edits_the_filter_chain_is_refused_and_the_rest_applies() {
    let yaml = format!(
        "{}{}{}",
        mk_base(),
        mk_two_rules(""),
        mk_gateway_option(
            "HttpListenerOption",
            "h",
            "2024-01-01T00:00:00Z",
            &format!("{TARGET_GW}options:\n  chain: {{}}\n  serverName: s\n  telepathy: 1")
        ),
    );
    let t = run_opts(&mk_store(&yaml));
    let hcm = port_80_hcm(&t);
    assert_eq!(hcm.server_name, "s from h");
    assert_eq!(hcm.http_filters.len(), 1, "only the router");
    let (accepted, _, message) = csr(cond(
        status(&t, Kind::HttpListenerOption, "infra", "h"),
        "Accepted",
    ));
    assert_eq!(accepted, "False");
    assert!(
        message.contains("spec.options.chain: the plugin changed the HTTP filter chain"),
        "{message}"
    );
    assert!(message.contains("spec.options.telepathy"), "{message}");
}

#[test]
fn listener_options_change_the_envoy_listener_but_not_its_name() {
    let yaml = format!(
        "{}{}{}",
        mk_base(),
        mk_two_rules(""),
        mk_gateway_option(
            "ListenerOption",
            "l",
            "2024-01-01T00:00:00Z",
            &format!("{TARGET_GW}options:\n  perConnectionBufferLimitBytes: 4096\n  rename: {{}}")
        ),
    );
    let mut translator = Translator::new();
    let t = run_opts_with(&mut translator, &mk_store(&yaml));
    let l = port_80(&t);
    assert_eq!(
        l.per_connection_buffer_limit_bytes,
        Some(UInt32Value { value: 4096 })
    );
    let (accepted, _, message) = csr(cond(
        status(&t, Kind::ListenerOption, "infra", "l"),
        "Accepted",
    ));
    assert_eq!(accepted, "False");
    assert_eq!(
        message,
        "spec.options.rename: the plugin changed the listener's name or address, which Weir owns"
    );
    // Removing the option restores the plain listener.
    let t = run_opts_with(
        &mut translator,
        &mk_store(&format!("{}{}", mk_base(), mk_two_rules(""))),
    );
    assert_eq!(port_80(&t).per_connection_buffer_limit_bytes, None);
}

#[test]
fn listener_options_targeting_another_namespace_are_not_accepted_and_do_not_apply() {
    let far = "targetRefs:\n- {kind: Gateway, name: gw, namespace: apps}\noptions:\n  perConnectionBufferLimitBytes: 1";
    let yaml = format!(
        "{}{}{}{}",
        mk_base(),
        mk_two_rules(""),
        mk_gateway_option("ListenerOption", "l", "2024-01-01T00:00:00Z", far),
        mk_gateway_option(
            "HttpListenerOption",
            "h",
            "2024-01-01T00:00:00Z",
            &far.replace("perConnectionBufferLimitBytes: 1", "serverName: x")
        ),
    );
    let t = run_opts(&mk_store(&yaml));
    assert_eq!(port_80(&t).per_connection_buffer_limit_bytes, None);
    assert_eq!(port_80_hcm(&t).server_name, "");
    for kind in [Kind::ListenerOption, Kind::HttpListenerOption] {
        let name = if kind == Kind::ListenerOption {
            "l"
        } else {
            "h"
        };
        let (accepted, _, message) = csr(cond(status(&t, kind, "infra", name), "Accepted"));
        assert_eq!(accepted, "False");
        assert_eq!(
            message,
            format!(
                "spec.targetRefs[0].namespace: a {kind} attaches only to Gateways in its own namespace (infra), not apps"
            )
        );
    }
}

#[test]
fn a_cluster_a_listener_filter_names_is_served_when_an_upstream_provides_it() {
    let upstream = "apiVersion: gloo.solo.io/v1\nkind: Upstream\nmetadata: {name: auth, namespace: infra}\nspec:\n  static:\n    hosts: [{addr: 1.2.3.4, port: 9000}]\n---\n";
    let option = |cluster: &str| {
        mk_gateway_option(
            "HttpListenerOption",
            "h",
            "2024-01-01T00:00:00Z",
            &format!("{TARGET_GW}options:\n  authCluster: {cluster}"),
        )
    };
    let base = format!("{}{}{upstream}", mk_base(), mk_two_rules(""));
    let clusters = |t: &Translation| -> Vec<String> {
        t.gateways[&key(Kind::Gateway, "infra", "gw")]
            .clusters
            .iter()
            .map(|c| c.name().to_string())
            .collect()
    };
    // Unreferenced, the Upstream's cluster is not served.
    let t = run_opts(&mk_store(&base));
    assert!(!clusters(&t).contains(&"upstream_infra_auth".to_string()));
    let t = run_opts(&mk_store(&format!(
        "{base}{}",
        option("upstream_infra_auth")
    )));
    assert!(clusters(&t).contains(&"upstream_infra_auth".to_string()));
    let names: Vec<_> = port_80_hcm(&t)
        .http_filters
        .into_iter()
        .map(|f| f.name)
        .collect();
    assert_eq!(
        names,
        ["envoy.filters.http.ext_authz", "envoy.filters.http.router"]
    );
    // A cluster no Upstream provides: refused by name, the filter left out.
    let t = run_opts(&mk_store(&format!(
        "{base}{}",
        option("upstream_infra_nowhere")
    )));
    let (accepted, _, message) = csr(cond(
        status(&t, Kind::HttpListenerOption, "infra", "h"),
        "Accepted",
    ));
    assert_eq!(accepted, "False");
    assert!(
        message.starts_with(
            "spec.options.authCluster: its filter names cluster upstream_infra_nowhere"
        ),
        "{message}"
    );
    assert_eq!(port_80_hcm(&t).http_filters.len(), 1);
}

#[test]
fn a_mirror_to_an_upstream_serves_its_cluster_and_follows_the_upstream_coming_and_going() {
    let upstream = "apiVersion: gloo.solo.io/v1\nkind: Upstream\nmetadata: {name: copy, namespace: infra}\nspec:\n  static:\n    hosts: [{addr: 1.2.3.4, port: 9000}]\n---\n";
    let base = format!(
        "{}{}{}",
        mk_base(),
        mk_two_rules(""),
        mk_option(
            "m",
            "2024-01-01T00:00:00Z",
            &format!("{TARGET_R}options:\n  mirror: upstream_infra_copy")
        )
    );
    let clusters = |t: &Translation| -> Vec<String> {
        t.gateways[&key(Kind::Gateway, "infra", "gw")]
            .clusters
            .iter()
            .map(|c| c.name().to_string())
            .collect()
    };
    let mut translator = Translator::new();
    // No such Upstream yet: refused by name, the route served without the mirror.
    let t = run_opts_with(&mut translator, &mk_store(&base));
    let (status, _, message) = accepted(&t, "m");
    assert_eq!(status, "False");
    assert!(
        message.contains("spec.options.mirror: mirrors requests to cluster upstream_infra_copy"),
        "{message}"
    );
    assert!(!clusters(&t).contains(&"upstream_infra_copy".to_string()));
    // The Upstream appears: the (memoised) route is translated again and mirrors.
    let t = run_opts_with(&mut translator, &mk_store(&format!("{base}{upstream}")));
    assert_eq!(accepted(&t, "m").0, "True");
    assert!(clusters(&t).contains(&"upstream_infra_copy".to_string()));
}
