//! Kubernetes mode against an in-process fake of the Kubernetes API server.
//!
//! No kube-apiserver can run here, so `support/fake_apiserver.rs` is a faithful fake of
//! its HTTP API (list/watch with resourceVersions and bookmarks, 410 Gone, the status
//! subresource with conflicts, Leases). Weir's real code reaches it through an ordinary
//! kubeconfig, exactly as it would reach a cluster.

#[path = "support/backend.rs"]
mod backend;
#[path = "support/envoy.rs"]
#[allow(dead_code)]
mod envoy;
#[path = "support/fake_apiserver.rs"]
#[allow(dead_code)]
mod fake_apiserver;
#[path = "support/http.rs"]
mod http;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fake_apiserver::{FakeApiServer, Resource};
use serde_json::{Value, json};
use weir::model::{Kind, ObjectKey};
use weir::source::SourceEvent;
use weir::source::kubernetes::{self, KubeSource, Reflectors};
use weir::store::Store;

const DEADLINE: Duration = Duration::from_secs(30);

/// The fake server, a kubeconfig for it and a client runtime.
struct Env {
    fake: FakeApiServer,
    _dir: tempfile::TempDir,
    kubeconfig: std::path::PathBuf,
    rt: tokio::runtime::Runtime,
}

impl Env {
    fn new() -> Self {
        let fake = FakeApiServer::start();
        let dir = tempfile::tempdir().unwrap();
        let kubeconfig = fake.write_kubeconfig(dir.path());
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        Self {
            fake,
            _dir: dir,
            kubeconfig,
            rt,
        }
    }

    fn client(&self) -> kube::Client {
        self.rt
            .block_on(kubernetes::client(Some(&self.kubeconfig)))
            .expect("client from kubeconfig")
    }

    /// Starts the Kubernetes source and applies its events to a shared store.
    fn follow(&self) -> Follower {
        let client = self.client();
        let _guard = self.rt.enter();
        let (reflectors, mut events) = KubeSource::start(client).into_parts();
        let store = Arc::new(Mutex::new(Store::new()));
        let log = Arc::new(Mutex::new(Vec::new()));
        let (s, l) = (store.clone(), log.clone());
        self.rt.spawn(async move {
            while let Some(event) = events.recv().await {
                l.lock().unwrap().push(describe(&event));
                s.lock().unwrap().handle(event);
            }
        });
        Follower {
            store,
            log,
            reflectors,
        }
    }
}

fn describe(event: &SourceEvent) -> String {
    match event {
        SourceEvent::Reset(all) => format!("reset({})", all.len()),
        SourceEvent::Apply(o) => format!("apply {o}"),
        SourceEvent::Delete(k) => format!("delete {k}"),
    }
}

struct Follower {
    store: Arc<Mutex<Store>>,
    log: Arc<Mutex<Vec<String>>>,
    #[allow(dead_code)]
    reflectors: Reflectors,
}

impl Follower {
    fn wait(&self, what: &str, mut cond: impl FnMut(&Store) -> bool) {
        let start = Instant::now();
        while start.elapsed() < DEADLINE {
            if cond(&self.store.lock().unwrap()) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!(
            "timed out waiting for {what}; events: {:?}",
            self.log.lock().unwrap()
        );
    }

    fn label(&self, key: &ObjectKey, label: &str) -> Option<String> {
        let store = self.store.lock().unwrap();
        store
            .get(key)?
            .metadata()
            .labels
            .as_ref()?
            .get(label)
            .cloned()
    }
}

/// Every document of the all-kinds fixture as JSON.
fn all_kinds() -> Vec<Value> {
    let text = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/model/all-kinds.yaml"),
    )
    .unwrap();
    serde_yaml_ng::Deserializer::from_str(&text)
        .map(|d| {
            let v: serde_yaml_ng::Value = serde::Deserialize::deserialize(d).unwrap();
            serde_json::to_value(v).unwrap()
        })
        .filter(|v: &Value| v.is_object())
        .collect()
}

fn kind_of(v: &Value) -> Kind {
    Kind::from_type_meta(
        v["apiVersion"].as_str().unwrap(),
        v["kind"].as_str().unwrap(),
    )
    .unwrap()
}

fn key_of(v: &Value) -> ObjectKey {
    let kind = kind_of(v);
    let name = v["metadata"]["name"].as_str().unwrap();
    match v["metadata"]["namespace"].as_str() {
        Some(ns) => ObjectKey::namespaced(kind, ns, name),
        None => ObjectKey::cluster(kind, name),
    }
}

fn resource_of(v: &Value) -> Resource {
    let api_version = v["apiVersion"].as_str().unwrap();
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    Resource::new(group, version, kubernetes::apis::plural(kind_of(v)))
}

fn apply(fake: &FakeApiServer, v: &Value) -> Value {
    fake.apply(kubernetes::apis::plural(kind_of(v)), v.clone())
}

fn labelled(mut v: Value, value: &str) -> Value {
    v["metadata"]["labels"]["step"] = json!(value);
    v
}

// === The fake itself, through kube-rs ===

#[test]
fn fake_apiserver_lists_watches_and_expires_like_the_real_one() {
    use kube::api::{Api, ListParams, PostParams, WatchEvent, WatchParams};
    use tokio_stream::StreamExt;
    let env = Env::new();
    let client = env.client();
    env.rt.block_on(async {
        let cms: Api<k8s_openapi::api::core::v1::ConfigMap> = Api::namespaced(client.clone(), "a");
        let mut cm = k8s_openapi::api::core::v1::ConfigMap::default();
        cm.metadata.name = Some("one".into());
        let created = cms.create(&PostParams::default(), &cm).await.unwrap();
        let rv = created.metadata.resource_version.clone().unwrap();
        let err = cms.create(&PostParams::default(), &cm).await.unwrap_err();
        assert!(matches!(err, kube::Error::Api(s) if s.code == 409));
        let list = cms.list(&ListParams::default()).await.unwrap();
        assert_eq!(list.items.len(), 1);
        // Paging.
        cm.metadata.name = Some("two".into());
        cms.create(&PostParams::default(), &cm).await.unwrap();
        let page = cms.list(&ListParams::default().limit(1)).await.unwrap();
        assert_eq!(page.items.len(), 1);
        let token = page.metadata.continue_.clone().unwrap();
        let rest = cms
            .list(&ListParams::default().limit(1).continue_token(&token))
            .await
            .unwrap();
        assert_eq!(rest.items[0].metadata.name.as_deref(), Some("two"));
        // A watch from the first version replays the second create.
        let stream = cms.watch(&WatchParams::default(), &rv).await.unwrap();
        let mut stream = std::pin::pin!(stream);
        match stream.next().await.unwrap().unwrap() {
            WatchEvent::Added(o) => assert_eq!(o.metadata.name.as_deref(), Some("two")),
            other => panic!("expected ADDED, got {other:?}"),
        }
        match stream.next().await.unwrap().unwrap() {
            WatchEvent::Bookmark(_) => {}
            other => panic!("expected a bookmark, got {other:?}"),
        }
        env.fake.expire_resource_versions();
        let stream = cms.watch(&WatchParams::default(), &rv).await.unwrap();
        let mut stream = std::pin::pin!(stream);
        match stream.next().await.unwrap().unwrap() {
            WatchEvent::Error(e) => assert_eq!(e.code, 410),
            other => panic!("expected 410 Gone, got {other:?}"),
        }
    });
}

// === Source ===

#[test]
fn initial_sync_is_one_reset_of_every_kind() {
    let env = Env::new();
    let docs = all_kinds();
    for d in &docs {
        apply(&env.fake, d);
    }
    // A Secret nobody references is not kept.
    apply(
        &env.fake,
        &json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"namespace": "infra",
            "name": "unrelated"}, "data": {"x": "eA=="}}),
    );
    let follower = env.follow();
    follower.wait("the initial sync", |s| s.len() == docs.len());
    let store = follower.store.lock().unwrap();
    for d in &docs {
        assert!(store.get(&key_of(d)).is_some(), "{} missing", key_of(d));
    }
    assert!(
        store
            .get(&ObjectKey::namespaced(Kind::Secret, "infra", "unrelated"))
            .is_none()
    );
    let log = follower.log.lock().unwrap();
    assert_eq!(log[0], format!("reset({})", docs.len()), "{log:?}");
}

#[test]
fn create_update_and_delete_of_every_kind_reach_the_store() {
    let env = Env::new();
    let follower = env.follow();
    follower.wait("the (empty) initial sync", |_| {
        !follower.log.lock().unwrap().is_empty()
    });
    let docs = all_kinds();
    for d in &docs {
        apply(&env.fake, d);
    }
    follower.wait("every kind created", |s| s.len() == docs.len());
    for d in &docs {
        apply(&env.fake, &labelled(d.clone(), "updated"));
    }
    for d in &docs {
        let key = key_of(d);
        follower.wait(&format!("{key} updated"), |_| true);
        let start = Instant::now();
        while follower.label(&key, "step").as_deref() != Some("updated") {
            assert!(start.elapsed() < DEADLINE, "{key} was not updated");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    // Delete everything but the Secret's referrer first, then the rest.
    for d in &docs {
        let meta = &d["metadata"];
        env.fake.delete(
            &resource_of(d),
            meta["namespace"].as_str().unwrap_or_default(),
            meta["name"].as_str().unwrap(),
        );
    }
    follower.wait("every kind deleted", |s| s.is_empty());
}

#[test]
fn a_secret_becomes_visible_when_a_gateway_starts_referencing_it() {
    let env = Env::new();
    let docs = all_kinds();
    let gateway = docs
        .iter()
        .find(|d| d["kind"] == "Gateway")
        .unwrap()
        .clone();
    let secret = docs.iter().find(|d| d["kind"] == "Secret").unwrap().clone();
    let mut plain = gateway.clone();
    plain["spec"]["listeners"] = json!([gateway["spec"]["listeners"][0].clone()]);
    apply(&env.fake, &plain);
    apply(&env.fake, &secret);
    let follower = env.follow();
    let secret_key = key_of(&secret);
    follower.wait("the gateway", |s| s.get(&key_of(&plain)).is_some());
    assert!(follower.store.lock().unwrap().get(&secret_key).is_none());
    apply(&env.fake, &gateway);
    follower.wait("the referenced secret", |s| s.get(&secret_key).is_some());
    apply(&env.fake, &plain);
    follower.wait("the secret dropped", |s| s.get(&secret_key).is_none());
}

fn service(name: &str, step: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Service",
        "metadata": {"namespace": "apps", "name": name, "labels": {"step": step}},
        "spec": {"ports": [{"name": "http", "port": 80}]}})
}

#[test]
fn a_dropped_watch_resumes_without_losing_an_update() {
    let env = Env::new();
    apply(&env.fake, &service("web", "one"));
    let follower = env.follow();
    let key = ObjectKey::namespaced(Kind::Service, "apps", "web");
    follower.wait("the service", |s| s.get(&key).is_some());
    // The update is made while no watch delivers anything, then every watch drops: only
    // resuming from the last resourceVersion can deliver it.
    env.fake.hold_watches(true);
    apply(&env.fake, &service("web", "two"));
    apply(&env.fake, &service("db", "one"));
    env.fake.drop_watches();
    env.fake.hold_watches(false);
    follower.wait("the update after the drop", |s| {
        s.get(&ObjectKey::namespaced(Kind::Service, "apps", "db"))
            .is_some()
    });
    assert_eq!(follower.label(&key, "step").as_deref(), Some("two"));
}

#[test]
fn gone_410_relists_without_losing_an_update_or_a_delete() {
    let env = Env::new();
    apply(&env.fake, &service("web", "one"));
    apply(&env.fake, &service("old", "one"));
    let follower = env.follow();
    let key = ObjectKey::namespaced(Kind::Service, "apps", "web");
    let old = ObjectKey::namespaced(Kind::Service, "apps", "old");
    follower.wait("the services", |s| {
        s.get(&key).is_some() && s.get(&old).is_some()
    });
    env.fake.hold_watches(true);
    apply(&env.fake, &service("web", "two"));
    env.fake
        .delete(&Resource::new("", "v1", "services"), "apps", "old");
    // The history is gone: resuming gets 410 and must relist.
    env.fake.expire_resource_versions();
    env.fake.drop_watches();
    env.fake.hold_watches(false);
    follower.wait("the relist", |s| s.get(&old).is_none());
    assert_eq!(follower.label(&key, "step").as_deref(), Some("two"));
    // And the watch carries on afterwards.
    apply(&env.fake, &service("web", "three"));
    let start = Instant::now();
    while follower.label(&key, "step").as_deref() != Some("three") {
        assert!(start.elapsed() < DEADLINE, "no update after the relist");
        std::thread::sleep(Duration::from_millis(20));
    }
}

// === Reporter ===

const WEIR_CONTROLLER: &str = "gateway.weir.dev/controller";

fn httproutes() -> Resource {
    Resource::new("gateway.networking.k8s.io", "v1", "httproutes")
}

/// A GatewayClass of Weir's, a Gateway, a route to a Service with endpoints.
fn quickstart(fake: &FakeApiServer) {
    let gw = "gateway.networking.k8s.io/v1";
    fake.apply(
        "gatewayclasses",
        json!({"apiVersion": gw, "kind": "GatewayClass",
        "metadata": {"name": "weir"}, "spec": {"controllerName": WEIR_CONTROLLER}}),
    );
    fake.apply(
        "gateways",
        json!({"apiVersion": gw, "kind": "Gateway",
        "metadata": {"namespace": "default", "name": "quickstart"},
        "spec": {"gatewayClassName": "weir",
                 "listeners": [{"name": "http", "protocol": "HTTP", "port": 8080}]}}),
    );
    fake.apply(
        "services",
        json!({"apiVersion": "v1", "kind": "Service",
        "metadata": {"namespace": "default", "name": "echo"},
        "spec": {"ports": [{"name": "http", "port": 80, "targetPort": 9001}]}}),
    );
    fake.apply(
        "endpointslices",
        json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"namespace": "default", "name": "echo-local",
                     "labels": {"kubernetes.io/service-name": "echo"}},
        "addressType": "IPv4", "ports": [{"name": "http", "port": 9001}],
        "endpoints": [{"addresses": ["127.0.0.1"], "conditions": {"ready": true}}]}),
    );
}

fn route(hostname: &str) -> Value {
    json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
        "metadata": {"namespace": "default", "name": "echo"},
        "spec": {"parentRefs": [{"name": "quickstart"}], "hostnames": [hostname],
                 "rules": [{"backendRefs": [{"name": "echo", "port": 80}]}]}})
}

fn other_parent(controller: &str) -> Value {
    json!({"controllerName": controller,
           "parentRef": {"name": "someone-elses", "namespace": "default"},
           "conditions": [{"type": "Accepted", "status": "True", "reason": "Accepted",
                           "message": "", "lastTransitionTime": "2020-01-01T00:00:00Z"}]})
}

fn condition<'a>(conditions: &'a Value, type_: &str) -> &'a Value {
    conditions
        .as_array()
        .and_then(|a| a.iter().find(|c| c["type"] == type_))
        .unwrap_or_else(|| panic!("no {type_} condition in {conditions}"))
}

fn status_writes(fake: &FakeApiServer) -> Vec<fake_apiserver::Write> {
    fake.writes()
        .into_iter()
        .filter(|w| w.path.ends_with("/status"))
        .collect()
}

fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < DEADLINE, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Translates the follower's store and hands the statuses to the reporter.
fn translate(follower: &Follower) -> weir::reporter::Statuses {
    let store = follower.store.lock().unwrap();
    let now = k8s_openapi::jiff::Timestamp::now();
    let translation = weir::translate::translate(&store, &mut weir::translate::NoPlugins, now);
    Arc::new(translation.statuses)
}

#[test]
fn reporter_writes_conditions_keeps_other_controllers_and_writes_nothing_when_unchanged() {
    use weir::reporter::{Reporter, ReporterConfig};
    let env = Env::new();
    quickstart(&env.fake);
    let mut r = route("one.example.com");
    r["status"] = json!({"parents": [other_parent("example.com/other")]});
    env.fake.apply("httproutes", r);
    let follower = env.follow();
    let route_key = ObjectKey::namespaced(Kind::HttpRoute, "default", "echo");
    follower.wait("the route", |s| s.get(&route_key).is_some());

    let reporter = Reporter::new(
        env.client(),
        follower.reflectors.clone(),
        ReporterConfig { qps: 100.0 },
    );
    let stats = reporter.stats();
    let (statuses_tx, statuses_rx) = tokio::sync::watch::channel(translate(&follower));
    let (_leader_tx, leader_rx) = tokio::sync::watch::channel(true);
    env.rt.spawn(reporter.run(statuses_rx, leader_rx));

    let get_route = || env.fake.get(&httproutes(), "default", "echo").unwrap();
    wait_for("our route parent", || {
        get_route()["status"]["parents"]
            .as_array()
            .is_some_and(|p| p.iter().any(|p| p["controllerName"] == WEIR_CONTROLLER))
    });
    let status = get_route()["status"].clone();
    let parents = status["parents"].as_array().unwrap();
    assert_eq!(parents.len(), 2, "{status}");
    assert_eq!(parents[0], other_parent("example.com/other"));
    let ours = &parents[1];
    assert_eq!(condition(&ours["conditions"], "Accepted")["status"], "True");
    assert_eq!(
        condition(&ours["conditions"], "ResolvedRefs")["status"],
        "True"
    );
    assert_eq!(
        condition(&ours["conditions"], "Accepted")["observedGeneration"],
        1
    );
    let class = env
        .fake
        .get(
            &Resource::new("gateway.networking.k8s.io", "v1", "gatewayclasses"),
            "",
            "weir",
        )
        .unwrap();
    assert_eq!(
        condition(&class["status"]["conditions"], "Accepted")["status"],
        "True"
    );
    let gateway = env
        .fake
        .get(
            &Resource::new("gateway.networking.k8s.io", "v1", "gateways"),
            "default",
            "quickstart",
        )
        .unwrap();
    wait_for("the gateway status", || {
        env.fake
            .get(
                &Resource::new("gateway.networking.k8s.io", "v1", "gateways"),
                "default",
                "quickstart",
            )
            .unwrap()["status"]["conditions"]
            .is_array()
    });
    let _ = gateway;
    let accepted_at = condition(&ours["conditions"], "Accepted")["lastTransitionTime"].clone();

    // The reflector catches up with our writes; a new translation (a later `now`) then
    // writes nothing.
    wait_for("the reflector to see our writes", || {
        follower.reflectors.find(&route_key).is_some_and(|(_, o)| {
            o.data["status"]["parents"]
                .as_array()
                .is_some_and(|p| p.len() == 2)
        })
    });
    std::thread::sleep(Duration::from_millis(300));
    let before = status_writes(&env.fake).len();
    std::thread::sleep(Duration::from_millis(20));
    statuses_tx.send(translate(&follower)).unwrap();
    std::thread::sleep(Duration::from_millis(1000));
    assert_eq!(
        status_writes(&env.fake).len(),
        before,
        "an unchanged status was written again: {:?}",
        status_writes(&env.fake)
    );

    // A spec change moves the generation; another controller writes its parent just
    // before ours lands (409): we re-read, keep both of theirs and write ours.
    env.fake
        .before_next_status_write(&httproutes(), "default", "echo", |o| {
            o["status"]["parents"]
                .as_array_mut()
                .unwrap()
                .push(other_parent("late.example.com/racer"));
        });
    env.fake.apply("httproutes", route("two.example.com"));
    follower.wait("generation 2", |s| {
        s.get(&route_key).unwrap().metadata().generation == Some(2)
    });
    statuses_tx.send(translate(&follower)).unwrap();
    wait_for("observedGeneration 2", || {
        get_route()["status"]["parents"]
            .as_array()
            .is_some_and(|p| {
                p.iter().any(|p| {
                    p["controllerName"] == WEIR_CONTROLLER
                        && condition(&p["conditions"], "Accepted")["observedGeneration"] == 2
                })
            })
    });
    let parents = get_route()["status"]["parents"].as_array().unwrap().clone();
    let controllers: Vec<&str> = parents
        .iter()
        .map(|p| p["controllerName"].as_str().unwrap())
        .collect();
    assert_eq!(
        controllers,
        [
            "example.com/other",
            "late.example.com/racer",
            WEIR_CONTROLLER
        ]
    );
    let ours = &parents[2];
    // Still accepted: the transition time did not move.
    assert_eq!(
        condition(&ours["conditions"], "Accepted")["lastTransitionTime"],
        accepted_at
    );
    assert!(
        status_writes(&env.fake).iter().any(|w| w.code == 409),
        "the racing write did not conflict"
    );
    assert!(stats.conflicts.load(std::sync::atomic::Ordering::Relaxed) >= 1);
}

#[test]
fn a_follower_writes_no_status() {
    use weir::reporter::{Reporter, ReporterConfig};
    let env = Env::new();
    quickstart(&env.fake);
    env.fake.apply("httproutes", route("one.example.com"));
    let follower = env.follow();
    let route_key = ObjectKey::namespaced(Kind::HttpRoute, "default", "echo");
    follower.wait("the route", |s| s.get(&route_key).is_some());
    let reporter = Reporter::new(
        env.client(),
        follower.reflectors.clone(),
        ReporterConfig::default(),
    );
    let (_statuses_tx, statuses_rx) = tokio::sync::watch::channel(translate(&follower));
    let (leader_tx, leader_rx) = tokio::sync::watch::channel(false);
    env.rt.spawn(reporter.run(statuses_rx, leader_rx));
    std::thread::sleep(Duration::from_millis(800));
    assert!(status_writes(&env.fake).is_empty());
    leader_tx.send(true).unwrap();
    wait_for("the new leader's writes", || {
        !status_writes(&env.fake).is_empty()
    });
}

// === Discovery ===

fn upstreams() -> Resource {
    Resource::new("gateway.weir.dev", "v1alpha1", "upstreams")
}

fn shop_service(name: &str, ports: &[i64], labels: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Service",
        "metadata": {"namespace": "shop", "name": name, "labels": labels},
        "spec": {"ports": ports.iter().map(|p| json!({"port": p})).collect::<Vec<_>>()}})
}

fn upstream_names(fake: &FakeApiServer) -> Vec<String> {
    fake.list(&upstreams())
        .iter()
        .map(|u| u["metadata"]["name"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn discovery_creates_updates_and_collects_upstreams_and_respects_opt_outs() {
    let env = Env::new();
    let users = json!({"apiVersion": "gateway.weir.dev/v1alpha1", "kind": "Upstream",
        "metadata": {"namespace": "shop", "name": "web-80"},
        "spec": {"static": {"hosts": [{"addr": "example.com", "port": 80}]}}});
    env.fake.apply("upstreams", users.clone());
    env.fake.apply(
        "namespaces",
        json!({"apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": "private", "labels": {"weir.dev/discovery": "disabled"}}}),
    );
    env.fake.apply(
        "services",
        json!({"apiVersion": "v1", "kind": "Service",
        "metadata": {"namespace": "private", "name": "hidden"}, "spec": {"ports": [{"port": 80}]}}),
    );
    let petstore = env.fake.apply(
        "services",
        shop_service("petstore", &[8080, 9090], json!({"app": "pets"})),
    );
    env.fake
        .apply("services", shop_service("web", &[80], json!({})));
    env.fake.apply(
        "services",
        shop_service("quiet", &[80], json!({"weir.dev/discovery": "disabled"})),
    );

    let follower = env.follow();
    let (leader_tx, leader_rx) = tokio::sync::watch::channel(true);
    env.rt.spawn(weir::discovery::run(
        env.client(),
        follower.reflectors.clone(),
        leader_rx,
    ));

    wait_for("the discovered upstreams", || {
        upstream_names(&env.fake) == ["petstore-8080", "petstore-9090", "web-80"]
    });
    let up = env.fake.get(&upstreams(), "shop", "petstore-8080").unwrap();
    assert_eq!(
        up["spec"]["kube"],
        json!({"serviceName": "petstore", "serviceNamespace": "shop", "servicePort": 8080})
    );
    assert_eq!(
        up["metadata"]["ownerReferences"][0]["uid"],
        petstore["metadata"]["uid"]
    );
    assert_eq!(up["spec"]["discoveryMetadata"]["labels"]["app"], "pets");
    // The user's Upstream of the same name is untouched.
    assert_eq!(
        env.fake.get(&upstreams(), "shop", "web-80").unwrap()["spec"],
        users["spec"]
    );
    // Discovered Upstreams are inputs like any other.
    follower.wait("the discovered upstream in the store", |s| {
        s.get(&ObjectKey::namespaced(
            Kind::Upstream,
            "shop",
            "petstore-8080",
        ))
        .is_some()
    });

    // A changed Service: port 9090 goes, 7070 comes, labels change.
    env.fake.apply(
        "services",
        shop_service("petstore", &[8080, 7070], json!({"app": "pets2"})),
    );
    wait_for("the updated upstreams", || {
        upstream_names(&env.fake) == ["petstore-7070", "petstore-8080", "web-80"]
            && env.fake.get(&upstreams(), "shop", "petstore-8080").unwrap()["spec"]["discoveryMetadata"]
                ["labels"]["app"]
                == "pets2"
    });

    // Opting the Service out removes its Upstreams.
    env.fake.apply(
        "services",
        shop_service(
            "petstore",
            &[8080, 7070],
            json!({"weir.dev/discovery": "disabled"}),
        ),
    );
    wait_for("the opted-out upstreams gone", || {
        upstream_names(&env.fake) == ["web-80"]
    });
    env.fake
        .apply("services", shop_service("petstore", &[8080], json!({})));
    wait_for("opted back in", || {
        upstream_names(&env.fake) == ["petstore-8080", "web-80"]
    });

    // With discovery not running (not the leader), deleting the Service leaves the
    // Upstream to Kubernetes' garbage collector, through the owner reference.
    leader_tx.send(false).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    env.fake
        .delete(&Resource::new("", "v1", "services"), "shop", "petstore");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(upstream_names(&env.fake), ["petstore-8080", "web-80"]);
    assert_eq!(env.fake.collect_garbage(), 1);
    assert_eq!(upstream_names(&env.fake), ["web-80"]);

    // And the leader deletes the Upstreams of a deleted Service itself.
    leader_tx.send(true).unwrap();
    env.fake
        .apply("services", shop_service("cart", &[81], json!({})));
    wait_for("cart-81", || {
        upstream_names(&env.fake).contains(&"cart-81".to_string())
    });
    env.fake
        .delete(&Resource::new("", "v1", "services"), "shop", "cart");
    wait_for("cart-81 collected", || {
        upstream_names(&env.fake) == ["web-80"]
    });
}

// === Leader election ===

fn election(env: &Env, identity: &str, lease: Duration) -> weir::leader::Election {
    let mut config = weir::leader::LeaderConfig::new("weir-system");
    config.identity = identity.into();
    config.lease_duration = lease;
    config.retry_period = Duration::from_millis(200);
    let client = env.client();
    let _guard = env.rt.enter();
    weir::leader::spawn(client, config)
}

fn lease(fake: &FakeApiServer) -> Value {
    fake.get(
        &Resource::new("coordination.k8s.io", "v1", "leases"),
        "weir-system",
        "weir-leader",
    )
    .expect("the lease exists")
}

#[test]
fn two_replicas_one_leader_and_failover_within_the_lease() {
    let env = Env::new();
    let lease_duration = Duration::from_secs(2);
    let a = election(&env, "replica-a", lease_duration);
    let b = election(&env, "replica-b", lease_duration);
    let (la, lb) = (a.leading(), b.leading());
    wait_for("a leader", || *la.borrow() || *lb.borrow());
    // Exactly one leads, and keeps leading through several renewals.
    let start = Instant::now();
    while start.elapsed() < Duration::from_millis(1500) {
        assert!(*la.borrow() ^ *lb.borrow(), "both or neither lead");
        std::thread::sleep(Duration::from_millis(10));
    }
    let (leader, follower_rx, follower_id) = if *la.borrow() {
        (a, lb, "replica-b")
    } else {
        (b, la, "replica-a")
    };
    let transitions = lease(&env.fake)["spec"]["leaseTransitions"]
        .as_i64()
        .unwrap();
    // The leader dies without a word: the other takes over once the lease expires.
    let died = Instant::now();
    drop(leader);
    wait_for("the failover", || *follower_rx.borrow());
    let took = died.elapsed();
    assert!(
        took <= lease_duration + Duration::from_millis(800),
        "failover took {took:?} with a {lease_duration:?} lease"
    );
    let record = lease(&env.fake);
    assert_eq!(record["spec"]["holderIdentity"], follower_id);
    assert_eq!(
        record["spec"]["leaseTransitions"].as_i64().unwrap(),
        transitions + 1
    );
}

#[test]
fn a_released_lease_is_taken_over_at_once() {
    let env = Env::new();
    let lease_duration = Duration::from_secs(10);
    let a = election(&env, "replica-a", lease_duration);
    let la = a.leading();
    wait_for("a leads", || *la.borrow());
    let b = election(&env, "replica-b", lease_duration);
    let lb = b.leading();
    std::thread::sleep(Duration::from_millis(500));
    assert!(!*lb.borrow());
    let released = Instant::now();
    env.rt.block_on(a.release());
    wait_for("b leads", || *lb.borrow());
    assert!(
        released.elapsed() < lease_duration / 2,
        "took {:?}",
        released.elapsed()
    );
}

// === End to end: fake API server + `weir serve --source kubernetes` + Envoy ===

const WEIR: &str = env!("CARGO_BIN_EXE_weir");

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A child process killed (and reaped) when dropped.
struct Running(std::process::Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_http(
    port: u16,
    path: &str,
    status: u16,
    body: Option<&str>,
    envoy: &mut envoy::RunningEnvoy,
    weir_log: &std::path::Path,
) {
    let start = Instant::now();
    let mut last = Err("no request yet".to_string());
    while start.elapsed() < Duration::from_secs(60) {
        assert!(envoy.is_running(), "Envoy exited:\n{}", envoy.log());
        last = http::get(port, path);
        if let Ok((got, got_body)) = &last
            && *got == status
            && body.is_none_or(|b| b == got_body)
        {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!(
        "GET {path} never answered {status} {body:?} (last: {last:?});\nEnvoy log:\n{}\nweir log:\n{}",
        envoy.log(),
        std::fs::read_to_string(weir_log).unwrap_or_default()
    );
}

fn e2e_route(path: &str) -> Value {
    json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
        "metadata": {"namespace": "default", "name": "echo"},
        "spec": {"parentRefs": [{"name": "quickstart"}],
                 "rules": [{"matches": [{"path": {"type": "PathPrefix", "value": path}}],
                            "backendRefs": [{"name": "echo", "port": 80}]}]}})
}

fn e2e_slice(backend_port: u16) -> Value {
    json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"namespace": "default", "name": "echo-local",
                     "labels": {"kubernetes.io/service-name": "echo"}},
        "addressType": "IPv4", "ports": [{"name": "http", "port": backend_port}],
        "endpoints": [{"addresses": ["127.0.0.1"], "conditions": {"ready": true}}]})
}

#[test]
fn weir_serve_kubernetes_routes_through_envoy_to_endpoint_slices_and_reports_status() {
    let env = Env::new();
    let (xds_port, admin_port, listen_port) = (free_port(), free_port(), free_port());
    let gw = "gateway.networking.k8s.io/v1";
    env.fake.apply(
        "gatewayclasses",
        json!({"apiVersion": gw, "kind": "GatewayClass",
        "metadata": {"name": "weir"}, "spec": {"controllerName": WEIR_CONTROLLER}}),
    );
    env.fake.apply(
        "gateways",
        json!({"apiVersion": gw, "kind": "Gateway",
        "metadata": {"namespace": "default", "name": "quickstart"},
        "spec": {"gatewayClassName": "weir",
                 "listeners": [{"name": "http", "protocol": "HTTP", "port": listen_port}]}}),
    );
    env.fake.apply(
        "services",
        json!({"apiVersion": "v1", "kind": "Service",
        "metadata": {"namespace": "default", "name": "echo"},
        "spec": {"ports": [{"name": "http", "port": 80}]}}),
    );
    let first = backend::start_backend("first");
    let second = backend::start_backend("second");
    env.fake.apply("endpointslices", e2e_slice(first));
    env.fake.apply("httproutes", e2e_route("/echo"));

    let dir = tempfile::tempdir().unwrap();
    let weir_log = dir.path().join("weir.log");
    let log = std::fs::File::create(&weir_log).unwrap();
    let mut weir = Running(
        std::process::Command::new(WEIR)
            .args([
                "serve",
                "--source=kubernetes",
                &format!("--kubeconfig={}", env.kubeconfig.display()),
                &format!("--xds-addr=127.0.0.1:{xds_port}"),
                &format!("--admin-addr=127.0.0.1:{admin_port}"),
                "--leader-election-namespace=weir-system",
            ])
            .env(
                "XDG_CACHE_HOME",
                std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("kube-cache"),
            )
            .env("RUST_LOG", "info")
            .stdin(std::process::Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("weir serve starts"),
    );
    let start = Instant::now();
    while !matches!(http::get(admin_port, "/readyz"), Ok((200, _))) {
        if let Ok(Some(status)) = weir.0.try_wait() {
            panic!(
                "weir serve exited ({status}):\n{}",
                std::fs::read_to_string(&weir_log).unwrap()
            );
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "never ready:\n{}",
            std::fs::read_to_string(&weir_log).unwrap()
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    let out = std::process::Command::new(WEIR)
        .args([
            "bootstrap",
            "--gateway",
            "default/quickstart",
            "--xds",
            &format!("127.0.0.1:{xds_port}"),
            "--admin-port",
            &free_port().to_string(),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut envoy = envoy::start_envoy(&serde_json::from_slice(&out.stdout).unwrap());
    wait_http(
        listen_port,
        "/echo",
        200,
        Some("first"),
        &mut envoy,
        &weir_log,
    );

    // Endpoints move: traffic follows the EndpointSlice.
    env.fake.apply("endpointslices", e2e_slice(second));
    wait_http(
        listen_port,
        "/echo",
        200,
        Some("second"),
        &mut envoy,
        &weir_log,
    );
    // The route changes.
    env.fake.apply("httproutes", e2e_route("/two"));
    wait_http(
        listen_port,
        "/two",
        200,
        Some("second"),
        &mut envoy,
        &weir_log,
    );
    wait_http(listen_port, "/echo", 404, None, &mut envoy, &weir_log);

    // The single replica leads: it wrote status and discovered the Service.
    wait_for("the route status", || {
        env.fake.get(&httproutes(), "default", "echo").unwrap()["status"]["parents"]
            .as_array()
            .is_some_and(|p| {
                p.iter().any(|p| {
                    p["controllerName"] == WEIR_CONTROLLER
                        && condition(&p["conditions"], "Accepted")["status"] == "True"
                        && condition(&p["conditions"], "Accepted")["observedGeneration"] == 2
                })
            })
    });
    wait_for("the discovered upstream", || {
        env.fake.get(&upstreams(), "default", "echo-80").is_some()
    });
    let lease = || {
        env.fake
            .get(
                &Resource::new("coordination.k8s.io", "v1", "leases"),
                "weir-system",
                "weir-leader",
            )
            .unwrap()
    };
    assert!(
        lease()["spec"]["holderIdentity"]
            .as_str()
            .is_some_and(|h| !h.is_empty())
    );

    // SIGTERM: the leader gives the Lease up on its way out, for an immediate failover.
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &weir.0.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let start = Instant::now();
    while weir.0.try_wait().unwrap().is_none() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "weir did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        lease()["spec"]["holderIdentity"].is_null(),
        "lease not released: {}",
        lease()
    );
}

#[test]
fn status_writes_are_paced_to_the_configured_qps() {
    use weir::reporter::{Reporter, ReporterConfig};
    let env = Env::new();
    quickstart(&env.fake);
    for i in 0..20 {
        let mut r = route(&format!("r{i}.example.com"));
        r["metadata"]["name"] = json!(format!("route-{i}"));
        env.fake.apply("httproutes", r);
    }
    let follower = env.follow();
    follower.wait("the routes", |s| {
        s.get(&ObjectKey::namespaced(
            Kind::HttpRoute,
            "default",
            "route-19",
        ))
        .is_some()
    });
    let statuses = translate(&follower);
    let qps = 10.0;
    let reporter = Reporter::new(
        env.client(),
        follower.reflectors.clone(),
        ReporterConfig { qps },
    );
    let (_statuses_tx, statuses_rx) = tokio::sync::watch::channel(statuses.clone());
    let (_leader_tx, leader_rx) = tokio::sync::watch::channel(true);
    let started = Instant::now();
    env.rt.spawn(reporter.run(statuses_rx, leader_rx));
    // 22 objects (20 routes, the Gateway, the GatewayClass) at 10 per second.
    std::thread::sleep(Duration::from_millis(1000));
    let early = status_writes(&env.fake).len();
    let elapsed = started.elapsed().as_secs_f64();
    assert!(
        (early as f64) <= qps * elapsed + 1.0,
        "{early} writes in {elapsed:.2} s at {qps} QPS"
    );
    assert!(early >= 5, "only {early} writes in {elapsed:.2} s");
    wait_for("every status", || {
        status_writes(&env.fake).len() == statuses.len()
    });
}

#[test]
fn an_api_server_that_is_down_is_retried_and_the_last_state_stays() {
    let env = Env::new();
    apply(&env.fake, &service("web", "one"));
    let follower = env.follow();
    let key = ObjectKey::namespaced(Kind::Service, "apps", "web");
    follower.wait("the service", |s| s.get(&key).is_some());
    env.fake.hold_watches(true);
    env.fake.set_down(true);
    apply(&env.fake, &service("web", "two"));
    std::thread::sleep(Duration::from_millis(1500));
    // Nothing is lost or emptied while the server is unreachable.
    assert_eq!(follower.label(&key, "step").as_deref(), Some("one"));
    assert_eq!(follower.store.lock().unwrap().len(), 1);
    env.fake.set_down(false);
    env.fake.hold_watches(false);
    let start = Instant::now();
    while follower.label(&key, "step").as_deref() != Some("two") {
        assert!(
            start.elapsed() < DEADLINE,
            "no recovery after the server came back"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}
