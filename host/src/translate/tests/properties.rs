//! Determinism and incrementality, as properties.

use proptest::prelude::*;

use super::*;
use crate::model::Object;
use crate::translate::EncodedVirtualHost;
use std::sync::Arc;

/// A world with several routes, Services and an Upstream, as separate objects.
fn world() -> Vec<Object> {
    let mut yaml = mk_base();
    yaml.push_str(&mk_service("infra", "v3", 9090, &["10.0.0.7", "10.0.0.8"]));
    yaml.push_str("apiVersion: gateway.weir.dev/v1alpha1\nkind: Upstream\nmetadata: {name: ext, namespace: infra}\nspec:\n  static: {hosts: [{addr: 1.2.3.4, port: 80}]}\n---\n");
    for (i, (svc, port)) in [("v1", 8080), ("v2", 8080), ("v3", 9090), ("v1", 8080)]
        .iter()
        .enumerate()
    {
        yaml.push_str(&mk_route(
            "infra",
            format!("r{i}"),
            &format!(
                "parentRefs:\n- name: gw\nhostnames: [h{}.example.com]\nrules:\n- matches: [{{path: {{type: PathPrefix, value: /p{i}}}}}]\n  backendRefs: [{{name: {svc}, port: {port}}}]\n- backendRefs: [{{group: gateway.weir.dev, kind: Upstream, name: ext}}]",
                i % 2
            ),
        ));
    }
    crate::source::file::parse_str(
        std::path::Path::new("w.yaml"),
        &yaml,
        crate::source::file::Format::Yaml,
    )
    .objects
}

/// Edits one object of the world: bumps a route's path, drops an endpoint, renames a
/// backend, or deletes it.
fn edit(objects: &mut Vec<Object>, which: usize, how: u8) {
    let i = which % objects.len();
    let mut json = objects[i].to_json_unredacted().unwrap();
    match how % 4 {
        0 => {
            objects.remove(i);
            return;
        }
        1 => {
            if let Some(rules) = json.pointer_mut("/spec/rules/0/matches/0/path/value") {
                *rules = serde_json::json!(format!("/edited{which}"));
            }
        }
        2 => {
            if let Some(eps) = json.pointer_mut("/endpoints") {
                *eps = serde_json::json!([]);
            }
        }
        _ => {
            if let Some(b) = json.pointer_mut("/spec/rules/0/backendRefs/0/name") {
                *b = serde_json::json!("v2");
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

/// Brings `store` to hold exactly `objects`, changing only what differs (so kinds with no
/// change keep their revision, as in a running controller).
fn sync(store: &mut Store, objects: &[Object]) {
    let keys: std::collections::BTreeSet<_> = objects.iter().map(Object::key).collect();
    let gone: Vec<_> = store
        .iter()
        .map(|(k, _, _)| k.clone())
        .filter(|k| !keys.contains(k))
        .collect();
    for k in gone {
        store.delete(&k);
    }
    for o in objects {
        store.apply(o.clone());
    }
}

/// Hostname lists a route may have: exact names, wildcards over them, none (any host).
const HOSTNAMES: [&str; 6] = [
    "[a.example.com]",
    "[b.a.example.com]",
    "['*.example.com']",
    "['*.a.example.com']",
    "[]",
    "[a.example.com, '*.a.example.com']",
];

/// Route `h<i>` with hostname list `HOSTNAMES[hosts]`.
fn hostname_route(i: usize, hosts: usize) -> Object {
    let yaml = mk_route(
        "infra",
        format!("h{i}"),
        &format!(
            "parentRefs:\n- name: gw\nhostnames: {}\nrules:\n- matches: [{{path: {{type: PathPrefix, value: /h{i}}}}}]\n  backendRefs: [{{name: v1, port: 8080}}]",
            HOSTNAMES[hosts]
        ),
    );
    let mut objects = crate::source::file::parse_str(
        std::path::Path::new("h.yaml"),
        &yaml,
        crate::source::file::Format::Yaml,
    )
    .objects;
    objects.remove(0)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn incremental_equals_full_when_routes_move_between_hostnames(
        edits in proptest::collection::vec((0..5usize, 0..=HOSTNAMES.len()), 1..8)
    ) {
        // Route i has hostnames HOSTNAMES[hosts[i]]; an index past the end deletes it.
        let mut hosts: Vec<usize> = (0..5).collect();
        let base = mk_store(&mk_base());
        let objects_for = |hosts: &[usize]| -> Vec<Object> {
            let routes = hosts
                .iter()
                .enumerate()
                .filter(|(_, h)| **h < HOSTNAMES.len())
                .map(|(i, h)| hostname_route(i, *h));
            base.iter().map(|(_, o, _)| o.clone()).chain(routes).collect()
        };
        let mut store = store_of(&objects_for(&hosts));
        let mut translator = Translator::new();
        run_with(&mut translator, &store);
        for (route, to) in edits {
            hosts[route] = to;
            sync(&mut store, &objects_for(&hosts));
            let incremental = run_with(&mut translator, &store);
            prop_assert_eq!(incremental, run(&store));
        }
    }

    #[test]
    fn output_is_the_same_whatever_order_inputs_arrive_in(seed in any::<u64>()) {
        let objects = world();
        let mut shuffled = objects.clone();
        // A deterministic shuffle from the seed.
        let mut state = seed | 1;
        for i in (1..shuffled.len()).rev() {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            shuffled.swap(i, (state % (i as u64 + 1)) as usize);
        }
        prop_assert_eq!(run(&store_of(&objects)), run(&store_of(&shuffled)));
    }

    #[test]
    fn incremental_translation_equals_full_translation_after_edits(
        edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..6)
    ) {
        let mut objects = world();
        let mut translator = Translator::new();
        let mut store = store_of(&objects);
        run_with(&mut translator, &store);
        for (which, how) in edits {
            edit(&mut objects, which, how);
            sync(&mut store, &objects);
            let incremental = run_with(&mut translator, &store);
            prop_assert_eq!(incremental, run(&store));
        }
    }
}

#[test]
fn changing_one_route_retranslates_only_that_route() {
    let mut objects = world();
    let mut translator = Translator::new();
    run_with(&mut translator, &store_of(&objects));
    assert_eq!(translator.last_pass().routes_translated, 4);
    run_with(&mut translator, &store_of(&objects));
    let p = translator.last_pass();
    assert_eq!(
        (
            p.routes_translated,
            p.routes_reused,
            p.upstreams_translated,
            p.service_clusters_built
        ),
        (0, 4, 0, 0)
    );
    assert_eq!(p.virtual_hosts_built, 0, "nothing changed: {p:?}");
    let before = run_with(&mut translator, &store_of(&objects));
    let i = objects.iter().position(|o| o.name() == "r2").unwrap();
    edit(&mut objects, i, 1);
    let after = run_with(&mut translator, &store_of(&objects));
    let p = translator.last_pass();
    assert_eq!((p.routes_translated, p.routes_reused), (1, 3));
    // Only the virtual hosts r2 serves were rebuilt; the others are the same `Arc`s.
    let vhosts = |t: &crate::translate::Translation| -> Vec<Arc<EncodedVirtualHost>> {
        let g = t.gateways.values().next().unwrap();
        g.routes
            .iter()
            .flat_map(|r| r.virtual_hosts.clone())
            .collect()
    };
    let (old, new) = (vhosts(&before), vhosts(&after));
    let shared = new
        .iter()
        .filter(|v| old.iter().any(|o| Arc::ptr_eq(o, v)))
        .count();
    assert!(p.virtual_hosts_built >= 1, "{p:?}");
    assert_eq!(shared + p.virtual_hosts_built, new.len(), "{p:?}");
    assert!(shared >= 1, "some virtual host must be shared: {p:?}");
}

#[test]
fn new_reference_grant_invalidates_routes_that_read_grants_in_its_namespace() {
    let web = mk_service("web", "web", 8080, &["10.1.0.1"]);
    let route = mk_route(
        "infra",
        "cross",
        "parentRefs:\n- name: gw\nrules:\n- backendRefs: [{name: web, namespace: web, port: 8080}]",
    );
    let mut store = mk_store(&format!("{}{web}{route}", mk_base()));
    let mut translator = Translator::new();
    let before = run_with(&mut translator, &store);
    assert_eq!(
        route_cond(&before, "infra", "cross", 0, "ResolvedRefs").1,
        "RefNotPermitted"
    );
    for o in mk_store(&mk_grant("web", "HTTPRoute", "infra", "", "Service")).iter() {
        store.apply(o.1.clone());
    }
    let after = run_with(&mut translator, &store);
    assert_eq!(
        route_cond(&after, "infra", "cross", 0, "ResolvedRefs").0,
        "True"
    );
    assert_eq!(after, run(&store));
}

/// A pass with many routes and clusters spreads them over threads: its output and what
/// it did afresh are those of the same pass on one thread, and incremental passes after
/// it still equal full ones.
#[test]
fn a_pass_spread_over_threads_equals_one_on_one_thread() {
    use crate::translate::parallel;
    use crate::translate::synthetic::{StaticPlugins, Synthetic};
    let synthetic = Synthetic {
        routes: 2 * parallel::MIN_PARALLEL,
        services: 1_200,
        upstreams: 20,
        namespaces: 10,
        ..Synthetic::default()
    };
    let mut store = synthetic.store();
    let now = Timestamp::UNIX_EPOCH;
    let mut wide = Translator::new();
    let spread = wide.translate(&store, &mut StaticPlugins, now);
    let mut narrow = Translator::new();
    let alone = parallel::serially(|| narrow.translate(&store, &mut StaticPlugins, now));
    assert_eq!(spread, alone);
    assert_eq!(wide.last_pass(), narrow.last_pass());
    synthetic.change_route(&mut store, 7, 1);
    let incremental = wide.translate(&store, &mut StaticPlugins, now);
    assert_eq!(wide.last_pass().routes_translated, 1);
    let full = parallel::serially(|| translate(&store, &mut StaticPlugins, now));
    assert_eq!(incremental, full);
}
