//! A faithful in-process fake of the Kubernetes API server's HTTP API, for tests.
//!
//! No kube-apiserver can be installed here, so tests run `weir`'s real Kubernetes code
//! (kube-rs client, watchers, reflectors) against this server through an ordinary
//! kubeconfig ([`FakeApiServer::write_kubeconfig`]). It speaks the JSON API kube-rs uses,
//! for any `group/version/plural` path (core `/api/v1/...` and `/apis/G/V/...`,
//! namespaced and cluster-scoped):
//!
//! - **list** with `resourceVersion` in the list metadata, `limit`/`continue` paging and
//!   `labelSelector` (`k=v`, `k!=v`, `k`, comma-separated);
//! - **watch** (`?watch=1`): newline-delimited `ADDED`/`MODIFIED`/`DELETED` events
//!   replayed from the given resourceVersion out of an in-memory history, then live;
//!   `BOOKMARK`s when `allowWatchBookmarks` is set; a `410 Gone` `ERROR` event for a
//!   resourceVersion older than the history ([`FakeApiServer::expire_resource_versions`]);
//!   `timeoutSeconds` honoured;
//! - **get / create / update (PUT) / patch** (JSON merge patch; strategic merge and
//!   server-side apply are treated as a merge patch, enough for what Weir sends; apply
//!   creates a missing object) and **delete**;
//! - the **status subresource** (`.../status`): PUT/PATCH change only `status`; the main
//!   resource ignores `status`; a stale `metadata.resourceVersion` is `409 Conflict`;
//!   `metadata.generation` moves when anything but metadata and status changes.
//!
//! Objects live in memory. Tests can drop every open watch ([`FakeApiServer::drop_watches`]),
//! hold deliveries ([`FakeApiServer::hold_watches`]), expire old resourceVersions, change
//! an object behind a writer's back right before its next status write
//! ([`FakeApiServer::before_next_status_write`]), read the log of writes, and run the
//! owner-reference garbage collector that kube-controller-manager would run
//! ([`FakeApiServer::collect_garbage`]).

use std::collections::{BTreeMap, BTreeSet};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::body::{Bytes, Frame};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{Value, json};
use tokio::sync::{broadcast, mpsc, watch};

/// Which resource a path names: API group ("" for core), version and plural.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Resource {
    /// API group; empty for the core group.
    pub group: String,
    /// API version.
    pub version: String,
    /// Lower-case plural, as in the URL.
    pub plural: String,
}

impl Resource {
    /// A resource by group, version and plural.
    pub fn new(group: &str, version: &str, plural: &str) -> Self {
        Self {
            group: group.into(),
            version: version.into(),
            plural: plural.into(),
        }
    }

    fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }
}

/// One mutating request the server accepted or refused, for tests to count writes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Write {
    /// HTTP method.
    pub method: String,
    /// Request path.
    pub path: String,
    /// Response status code.
    pub code: u16,
}

/// One stored change, replayed to watches.
#[derive(Clone, Debug)]
struct Change {
    rv: u64,
    resource: Resource,
    namespace: String,
    type_: &'static str,
    object: Value,
}

type Hook = Box<dyn FnOnce(&mut Value) + Send>;

#[derive(Default)]
struct State {
    rv: u64,
    objects: BTreeMap<Resource, BTreeMap<(String, String), Value>>,
    kinds: BTreeMap<Resource, String>,
    history: Vec<Change>,
    /// Watches from a resourceVersion older than this get 410 Gone.
    oldest_rv: u64,
    writes: Vec<Write>,
    status_hooks: Vec<(Resource, String, String, Hook)>,
    uid: u64,
}

struct Shared {
    state: Mutex<State>,
    changes: broadcast::Sender<Arc<Change>>,
    /// Bumped to end every open watch.
    drops: watch::Sender<u64>,
    /// While `true`, open watches deliver nothing (they buffer).
    hold: watch::Sender<bool>,
    /// While `true`, every request gets 503 (the server is "down").
    down: std::sync::atomic::AtomicBool,
    bookmark_interval: Duration,
}

/// The running fake. Dropping it stops the server.
pub struct FakeApiServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    _runtime: tokio::runtime::Runtime,
}

impl FakeApiServer {
    /// Starts a server on a free local port, on its own runtime.
    pub fn start() -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .thread_name("fake-apiserver")
            .build()
            .expect("fake apiserver runtime");
        let (changes, _) = broadcast::channel(1 << 16);
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                rv: 1,
                oldest_rv: 0,
                ..Default::default()
            }),
            changes,
            drops: watch::channel(0).0,
            hold: watch::channel(false).0,
            down: std::sync::atomic::AtomicBool::new(false),
            bookmark_interval: Duration::from_millis(500),
        });
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("bind fake apiserver");
        let addr = listener.local_addr().unwrap();
        let accept_shared = shared.clone();
        runtime.spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let shared = accept_shared.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        let shared = shared.clone();
                        async move { Ok::<_, Infallible>(handle(shared, req).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self {
            addr,
            shared,
            _runtime: runtime,
        }
    }

    /// The server's URL (`http://127.0.0.1:PORT`).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Writes a kubeconfig whose current context points at this server; returns its path.
    pub fn write_kubeconfig(&self, dir: &Path) -> PathBuf {
        let path = dir.join("kubeconfig");
        let text = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: {}\n\
             users:\n- name: fake\n  user: {{}}\ncontexts:\n- name: fake\n  context:\n    cluster: fake\n    \
             user: fake\n    namespace: default\ncurrent-context: fake\n",
            self.url()
        );
        std::fs::write(&path, text).expect("write kubeconfig");
        path
    }

    /// Creates or replaces an object (as a user's `kubectl apply` would); a `status` in
    /// `object` replaces the stored one, none keeps it.
    /// The resource is found from `apiVersion` and `plural`.
    pub fn apply(&self, plural: &str, object: Value) -> Value {
        let api_version = object["apiVersion"]
            .as_str()
            .expect("apiVersion")
            .to_string();
        let (group, version) = api_version.rsplit_once('/').unwrap_or(("", &api_version));
        let resource = Resource::new(group, version, plural);
        let ns = object["metadata"]["namespace"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let name = object["metadata"]["name"]
            .as_str()
            .expect("name")
            .to_string();
        let mut state = self.shared.state.lock().unwrap();
        let existing = state
            .objects
            .get(&resource)
            .and_then(|m| m.get(&(ns.clone(), name.clone())))
            .cloned();
        match existing {
            Some(old) => {
                let mut new = object;
                // A manifest without status leaves the status (a subresource) as it is.
                let keep_new_status = new.get("status").is_some();
                carry_server_fields(&old, &mut new, keep_new_status);
                state.store(&self.shared, &resource, &ns, &name, new, "MODIFIED")
            }
            None => {
                let new = state.admit_new(object, &ns);
                state.store(&self.shared, &resource, &ns, &name, new, "ADDED")
            }
        }
    }

    /// Deletes an object if it exists.
    pub fn delete(&self, resource: &Resource, namespace: &str, name: &str) -> bool {
        let mut state = self.shared.state.lock().unwrap();
        state
            .remove(&self.shared, resource, namespace, name)
            .is_some()
    }

    /// The stored object, if any.
    pub fn get(&self, resource: &Resource, namespace: &str, name: &str) -> Option<Value> {
        let state = self.shared.state.lock().unwrap();
        state
            .objects
            .get(resource)?
            .get(&(namespace.to_string(), name.to_string()))
            .cloned()
    }

    /// Every stored object of a resource (all namespaces).
    pub fn list(&self, resource: &Resource) -> Vec<Value> {
        let state = self.shared.state.lock().unwrap();
        state
            .objects
            .get(resource)
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default()
    }

    /// Every write (POST, PUT, PATCH, DELETE) received so far.
    pub fn writes(&self) -> Vec<Write> {
        self.shared.state.lock().unwrap().writes.clone()
    }

    /// Ends every open watch stream (clients reconnect from their last resourceVersion).
    pub fn drop_watches(&self) {
        self.shared.drops.send_modify(|n| *n += 1);
    }

    /// While held, open watches deliver no events (they keep them until released).
    pub fn hold_watches(&self, hold: bool) {
        self.shared.hold.send_replace(hold);
    }

    /// Takes the server down (every request answers 503 and open watches end) or
    /// brings it back.
    pub fn set_down(&self, down: bool) {
        self.shared
            .down
            .store(down, std::sync::atomic::Ordering::SeqCst);
        if down {
            self.drop_watches();
        }
    }

    /// Forgets the change history: a watch from any resourceVersion issued so far gets
    /// `410 Gone` and must relist.
    pub fn expire_resource_versions(&self) {
        let mut state = self.shared.state.lock().unwrap();
        state.rv += 1;
        state.oldest_rv = state.rv;
        state.history.clear();
    }

    /// Runs `change` on the stored object (bumping its resourceVersion) right before the
    /// next status write to it is processed, as another writer racing it would.
    pub fn before_next_status_write(
        &self,
        resource: &Resource,
        namespace: &str,
        name: &str,
        change: impl FnOnce(&mut Value) + Send + 'static,
    ) {
        self.shared.state.lock().unwrap().status_hooks.push((
            resource.clone(),
            namespace.into(),
            name.into(),
            Box::new(change),
        ));
    }

    /// Deletes every object whose owner references all name objects that no longer exist,
    /// as kube-controller-manager's garbage collector does. Returns how many it deleted.
    pub fn collect_garbage(&self) -> usize {
        let mut state = self.shared.state.lock().unwrap();
        let uids: BTreeSet<String> = state
            .objects
            .values()
            .flat_map(|m| m.values())
            .filter_map(|o| o["metadata"]["uid"].as_str().map(str::to_string))
            .collect();
        let mut orphans = Vec::new();
        for (resource, objects) in &state.objects {
            for ((ns, name), o) in objects {
                if let Some(owners) = o["metadata"]["ownerReferences"].as_array()
                    && !owners.is_empty()
                    && owners
                        .iter()
                        .all(|r| !uids.contains(r["uid"].as_str().unwrap_or_default()))
                {
                    orphans.push((resource.clone(), ns.clone(), name.clone()));
                }
            }
        }
        for (resource, ns, name) in &orphans {
            state.remove(&self.shared, resource, ns, name);
        }
        orphans.len()
    }
}

impl State {
    fn next_rv(&mut self) -> u64 {
        self.rv += 1;
        self.rv
    }

    /// Server-set metadata of a new object.
    fn admit_new(&mut self, mut object: Value, ns: &str) -> Value {
        self.uid += 1;
        let meta = object
            .as_object_mut()
            .unwrap()
            .entry("metadata")
            .or_insert_with(|| json!({}));
        if !ns.is_empty() {
            meta["namespace"] = json!(ns);
        }
        meta["uid"] = json!(format!("uid-{}", self.uid));
        meta["generation"] = json!(1);
        meta["creationTimestamp"] = json!("2026-01-01T00:00:00Z");
        object
    }

    /// Stores `object` with a fresh resourceVersion and records the change.
    fn store(
        &mut self,
        shared: &Shared,
        resource: &Resource,
        ns: &str,
        name: &str,
        mut object: Value,
        type_: &'static str,
    ) -> Value {
        let rv = self.next_rv();
        object["metadata"]["resourceVersion"] = json!(rv.to_string());
        if let Some(kind) = object["kind"].as_str() {
            self.kinds.insert(resource.clone(), kind.to_string());
        }
        self.objects
            .entry(resource.clone())
            .or_default()
            .insert((ns.to_string(), name.to_string()), object.clone());
        self.record(shared, resource, ns, type_, object.clone(), rv);
        object
    }

    fn remove(
        &mut self,
        shared: &Shared,
        resource: &Resource,
        ns: &str,
        name: &str,
    ) -> Option<Value> {
        let mut object = self
            .objects
            .get_mut(resource)?
            .remove(&(ns.to_string(), name.to_string()))?;
        let rv = self.next_rv();
        object["metadata"]["resourceVersion"] = json!(rv.to_string());
        self.record(shared, resource, ns, "DELETED", object.clone(), rv);
        Some(object)
    }

    fn record(
        &mut self,
        shared: &Shared,
        resource: &Resource,
        ns: &str,
        type_: &'static str,
        object: Value,
        rv: u64,
    ) {
        let change = Change {
            rv,
            resource: resource.clone(),
            namespace: ns.to_string(),
            type_,
            object,
        };
        self.history.push(change.clone());
        // Sent under the state lock, so receivers see changes in resourceVersion order.
        let _ = shared.changes.send(Arc::new(change));
    }
}

/// Copies what the server owns (uid, creation time, generation) from `old` to `new`;
/// bumps the generation when anything but metadata and status changed.
fn carry_server_fields(old: &Value, new: &mut Value, keep_new_status: bool) {
    let mut generation = old["metadata"]["generation"].as_i64().unwrap_or(1);
    if spec_of(old) != spec_of(new) {
        generation += 1;
    }
    for field in ["uid", "creationTimestamp", "namespace"] {
        if let Some(v) = old["metadata"].get(field) {
            new["metadata"][field] = v.clone();
        }
    }
    new["metadata"]["generation"] = json!(generation);
    if !keep_new_status {
        match old.get("status") {
            Some(s) => new["status"] = s.clone(),
            None => {
                if let Some(map) = new.as_object_mut() {
                    map.remove("status");
                }
            }
        }
    }
}

fn spec_of(object: &Value) -> Value {
    let mut v = object.clone();
    if let Some(map) = v.as_object_mut() {
        map.remove("metadata");
        map.remove("status");
        map.remove("apiVersion");
        map.remove("kind");
    }
    v
}

/// RFC 7386 JSON merge patch.
fn merge_patch(target: &mut Value, patch: &Value) {
    match patch {
        Value::Object(p) => {
            if !target.is_object() {
                *target = json!({});
            }
            let t = target.as_object_mut().unwrap();
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else {
                    merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        _ => *target = patch.clone(),
    }
}

// === HTTP ===

type Body = BoxBody<Bytes, Infallible>;

/// A parsed request path.
struct Target {
    resource: Resource,
    /// The namespace in the path, if any.
    namespace: Option<String>,
    name: Option<String>,
    status: bool,
}

fn parse_path(path: &str) -> Option<Target> {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, version, rest) = match segs.as_slice() {
        ["api", v, rest @ ..] => ("", *v, rest),
        ["apis", g, v, rest @ ..] => (*g, *v, rest),
        _ => return None,
    };
    let (namespace, rest) = match rest {
        ["namespaces", ns, plural, rest @ ..] => (Some(ns.to_string()), {
            let mut r = vec![*plural];
            r.extend_from_slice(rest);
            r
        }),
        other => (None, other.to_vec()),
    };
    let (plural, name, status) = match rest.as_slice() {
        [plural] => (*plural, None, false),
        [plural, name] => (*plural, Some(name.to_string()), false),
        [plural, name, "status"] => (*plural, Some(name.to_string()), true),
        _ => return None,
    };
    Some(Target {
        resource: Resource::new(group, version, plural),
        namespace,
        name,
        status,
    })
}

fn query(req: &Request<hyper::body::Incoming>) -> BTreeMap<String, String> {
    req.uri()
        .query()
        .unwrap_or_default()
        .split('&')
        .filter(|s| !s.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (decode(k), decode(v))
        })
        .collect()
}

fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 3;
                        continue;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn json_response(code: StatusCode, value: &Value) -> Response<Body> {
    let mut r = Response::new(
        Full::new(Bytes::from(serde_json::to_vec(value).unwrap()))
            .map_err(|e| match e {})
            .boxed(),
    );
    *r.status_mut() = code;
    r.headers_mut()
        .insert("content-type", "application/json".parse().unwrap());
    r
}

fn status_error(code: StatusCode, reason: &str, message: impl Into<String>) -> Response<Body> {
    json_response(
        code,
        &json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {},
            "status": "Failure", "message": message.into(), "reason": reason,
            "code": code.as_u16(),
        }),
    )
}

async fn handle(shared: Arc<Shared>, req: Request<hyper::body::Incoming>) -> Response<Body> {
    if shared.down.load(std::sync::atomic::Ordering::SeqCst) {
        return status_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "ServiceUnavailable",
            "the server is down",
        );
    }
    let path = req.uri().path().to_string();
    let method = req.method().clone();
    let Some(target) = parse_path(&path) else {
        return status_error(
            StatusCode::NOT_FOUND,
            "NotFound",
            format!("no route {path}"),
        );
    };
    let q = query(&req);
    let content_type = req
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let body = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => Bytes::new(),
    };
    if method == Method::GET && target.name.is_none() {
        if matches!(q.get("watch").map(String::as_str), Some("1" | "true")) {
            return start_watch(&shared, &target, &q);
        }
        return list(&shared, &target, &q);
    }
    let response = mutate(&shared, &method, &target, &q, &content_type, &body);
    if method != Method::GET {
        shared.state.lock().unwrap().writes.push(Write {
            method: method.to_string(),
            path,
            code: response.status().as_u16(),
        });
    }
    response
}

fn parse_selector(s: &str) -> Vec<(String, Option<String>, bool)> {
    s.split(',')
        .filter(|t| !t.is_empty())
        .map(|t| {
            if let Some((k, v)) = t.split_once("!=") {
                (k.to_string(), Some(v.to_string()), false)
            } else if let Some((k, v)) = t.split_once('=') {
                (
                    k.to_string(),
                    Some(v.trim_start_matches('=').to_string()),
                    true,
                )
            } else {
                (t.to_string(), None, true)
            }
        })
        .collect()
}

fn selected(object: &Value, selector: &[(String, Option<String>, bool)]) -> bool {
    selector.iter().all(|(k, v, eq)| {
        let have = object["metadata"]["labels"][k].as_str();
        match (v, eq) {
            (None, _) => have.is_some(),
            (Some(v), true) => have == Some(v.as_str()),
            (Some(v), false) => have != Some(v.as_str()),
        }
    })
}

fn list(shared: &Shared, target: &Target, q: &BTreeMap<String, String>) -> Response<Body> {
    let state = shared.state.lock().unwrap();
    let selector = parse_selector(q.get("labelSelector").map_or("", String::as_str));
    let limit: usize = q
        .get("limit")
        .and_then(|l| l.parse().ok())
        .filter(|l| *l > 0)
        .unwrap_or(usize::MAX);
    let after = q.get("continue").filter(|c| !c.is_empty()).cloned();
    let mut items = Vec::new();
    let mut next = None;
    if let Some(objects) = state.objects.get(&target.resource) {
        for ((ns, name), o) in objects {
            if target.namespace.as_ref().is_some_and(|want| want != ns) {
                continue;
            }
            let token = format!("{ns}/{name}");
            if after.as_ref().is_some_and(|a| token.as_str() <= a.as_str()) {
                continue;
            }
            if !selected(o, &selector) {
                continue;
            }
            if items.len() == limit {
                next = items.last().map(|o: &Value| {
                    format!(
                        "{}/{}",
                        o["metadata"]["namespace"].as_str().unwrap_or_default(),
                        o["metadata"]["name"].as_str().unwrap_or_default()
                    )
                });
                break;
            }
            items.push(o.clone());
        }
    }
    let kind = state
        .kinds
        .get(&target.resource)
        .map_or("List".to_string(), |k| format!("{k}List"));
    let mut metadata = json!({"resourceVersion": state.rv.to_string()});
    if let Some(next) = next {
        metadata["continue"] = json!(next);
    }
    json_response(
        StatusCode::OK,
        &json!({
            "kind": kind, "apiVersion": target.resource.api_version(),
            "metadata": metadata, "items": items,
        }),
    )
}

fn event_line(type_: &str, object: &Value) -> Bytes {
    let mut line = serde_json::to_vec(&json!({"type": type_, "object": object})).unwrap();
    line.push(b'\n');
    Bytes::from(line)
}

fn start_watch(
    shared: &Arc<Shared>,
    target: &Target,
    q: &BTreeMap<String, String>,
) -> Response<Body> {
    let bookmarks = matches!(
        q.get("allowWatchBookmarks").map(String::as_str),
        Some("true" | "1")
    );
    let timeout = q
        .get("timeoutSeconds")
        .and_then(|t| t.parse::<u64>().ok())
        .map_or(Duration::from_secs(290), Duration::from_secs);
    let selector = parse_selector(q.get("labelSelector").map_or("", String::as_str));
    let from: Option<u64> = q
        .get("resourceVersion")
        .filter(|v| !v.is_empty() && v.as_str() != "0")
        .and_then(|v| v.parse().ok());
    let (tx, rx) = mpsc::channel::<Bytes>(1024);
    let kind = |state: &State| {
        state
            .kinds
            .get(&target.resource)
            .cloned()
            .unwrap_or_default()
    };
    let mut pending: Vec<Bytes> = Vec::new();
    let live;
    let start_rv;
    let kind_name;
    {
        let state = shared.state.lock().unwrap();
        live = shared.changes.subscribe();
        start_rv = state.rv;
        kind_name = kind(&state);
        let wanted = |c: &Change| {
            c.resource == target.resource
                && target
                    .namespace
                    .as_ref()
                    .is_none_or(|ns| *ns == c.namespace)
                && selected(&c.object, &selector)
        };
        match from {
            Some(rv) if rv < state.oldest_rv => {
                let gone = json!({
                    "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                    "message": format!("too old resource version: {rv} ({})", state.oldest_rv),
                    "reason": "Expired", "code": 410,
                });
                pending.push(event_line("ERROR", &gone));
                let body = StreamBody::new(tokio_stream::iter(
                    pending
                        .into_iter()
                        .map(|b| Ok::<_, Infallible>(Frame::data(b))),
                ));
                return watch_response(BoxBody::new(body));
            }
            Some(rv) => {
                for c in state.history.iter().filter(|c| c.rv > rv && wanted(c)) {
                    pending.push(event_line(c.type_, &c.object));
                }
            }
            None => {
                if let Some(objects) = state.objects.get(&target.resource) {
                    for ((ns, _), o) in objects {
                        if target.namespace.as_ref().is_none_or(|want| want == ns)
                            && selected(o, &selector)
                        {
                            pending.push(event_line("ADDED", o));
                        }
                    }
                }
            }
        }
    }
    let shared = shared.clone();
    let resource = target.resource.clone();
    let namespace = target.namespace.clone();
    tokio::spawn(async move {
        let mut live = live;
        let mut drops = shared.drops.subscribe();
        drops.borrow_and_update();
        let mut hold = shared.hold.subscribe();
        let deadline = tokio::time::sleep(timeout);
        tokio::pin!(deadline);
        let mut ticker = tokio::time::interval(shared.bookmark_interval);
        let mut buffered = pending;
        loop {
            if !*hold.borrow() {
                for b in buffered.drain(..) {
                    if tx.send(b).await.is_err() {
                        return;
                    }
                }
            }
            tokio::select! {
                _ = &mut deadline => return,
                _ = drops.changed() => return,
                _ = hold.changed() => {}
                change = live.recv() => match change {
                    Ok(c) => {
                        if c.rv > start_rv
                            && c.resource == resource
                            && namespace.as_ref().is_none_or(|ns| *ns == c.namespace)
                            && selected(&c.object, &selector)
                        {
                            buffered.push(event_line(c.type_, &c.object));
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        // Too slow: end the stream; the client resumes from its last version.
                        return;
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                },
                _ = ticker.tick(), if bookmarks => {
                    // A bookmark may only claim a version whose changes this stream has
                    // already taken off the channel: check under the lock that sends under it.
                    let rv = {
                        let state = shared.state.lock().unwrap();
                        (live.is_empty() && buffered.is_empty() && !*hold.borrow()).then_some(state.rv)
                    };
                    if let Some(rv) = rv {
                        let mark = json!({
                            "kind": kind_name, "apiVersion": resource.api_version(),
                            "metadata": {"resourceVersion": rv.to_string()},
                        });
                        if tx.send(event_line("BOOKMARK", &mark)).await.is_err() {
                            return;
                        }
                    }
                }
            }
        }
    });
    let stream = tokio_stream::wrappers::ReceiverStream::new(rx);
    let body = StreamBody::new(tokio_stream::StreamExt::map(stream, |b| {
        Ok::<_, Infallible>(Frame::data(b))
    }));
    watch_response(BoxBody::new(body))
}

fn watch_response(body: Body) -> Response<Body> {
    let mut r = Response::new(body);
    r.headers_mut()
        .insert("content-type", "application/json".parse().unwrap());
    r
}

fn mutate(
    shared: &Shared,
    method: &Method,
    target: &Target,
    q: &BTreeMap<String, String>,
    content_type: &str,
    body: &Bytes,
) -> Response<Body> {
    let ns = target.namespace.clone().unwrap_or_default();
    let mut state = shared.state.lock().unwrap();
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    let existing = target.name.as_ref().and_then(|name| {
        state
            .objects
            .get(&target.resource)
            .and_then(|m| m.get(&(ns.clone(), name.clone())))
            .cloned()
    });
    let not_found = || {
        status_error(
            StatusCode::NOT_FOUND,
            "NotFound",
            format!(
                "{} \"{}\" not found",
                target.resource.plural,
                target.name.as_deref().unwrap_or_default()
            ),
        )
    };
    match *method {
        Method::GET => match existing {
            Some(o) => json_response(StatusCode::OK, &o),
            None => not_found(),
        },
        Method::POST => {
            let Some(object) = parsed else {
                return status_error(StatusCode::BAD_REQUEST, "BadRequest", "body is not JSON");
            };
            let Some(name) = object["metadata"]["name"].as_str().map(str::to_string) else {
                return status_error(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "Invalid",
                    "metadata.name: Required value",
                );
            };
            if state
                .objects
                .get(&target.resource)
                .is_some_and(|m| m.contains_key(&(ns.clone(), name.clone())))
            {
                return status_error(
                    StatusCode::CONFLICT,
                    "AlreadyExists",
                    format!("{} \"{name}\" already exists", target.resource.plural),
                );
            }
            let mut object = state.admit_new(object, &ns);
            if let Some(map) = object.as_object_mut() {
                map.remove("status");
            }
            let stored = state.store(shared, &target.resource, &ns, &name, object, "ADDED");
            json_response(StatusCode::CREATED, &stored)
        }
        Method::PUT => {
            let (Some(name), Some(mut object)) = (target.name.clone(), parsed) else {
                return status_error(StatusCode::BAD_REQUEST, "BadRequest", "body is not JSON");
            };
            let Some(old) = existing else {
                return not_found();
            };
            if target.status {
                run_status_hook(&mut state, shared, target, &ns, &name);
            }
            let current = state.objects[&target.resource][&(ns.clone(), name.clone())].clone();
            if let Some(rv) = object["metadata"]["resourceVersion"].as_str()
                && !rv.is_empty()
                && Some(rv) != current["metadata"]["resourceVersion"].as_str()
            {
                return status_error(
                    StatusCode::CONFLICT,
                    "Conflict",
                    format!(
                        "Operation cannot be fulfilled on {} \"{name}\": the object has been modified; please apply your changes to the latest version and try again",
                        target.resource.plural
                    ),
                );
            }
            let _ = old;
            let new = if target.status {
                let mut new = current.clone();
                match object.get("status") {
                    Some(s) => new["status"] = s.clone(),
                    None => {
                        new.as_object_mut().unwrap().remove("status");
                    }
                }
                new
            } else {
                carry_server_fields(&current, &mut object, false);
                object
            };
            if new == current {
                return json_response(StatusCode::OK, &current);
            }
            let stored = state.store(shared, &target.resource, &ns, &name, new, "MODIFIED");
            json_response(StatusCode::OK, &stored)
        }
        Method::PATCH => {
            let (Some(name), Some(patch)) = (target.name.clone(), parsed) else {
                return status_error(StatusCode::BAD_REQUEST, "BadRequest", "body is not JSON");
            };
            let apply = content_type.starts_with("application/apply-patch");
            if target.status {
                run_status_hook(&mut state, shared, target, &ns, &name);
            }
            let current = state
                .objects
                .get(&target.resource)
                .and_then(|m| m.get(&(ns.clone(), name.clone())))
                .cloned();
            let Some(current) = current else {
                if apply && !target.status {
                    let object = state.admit_new(patch, &ns);
                    let stored = state.store(shared, &target.resource, &ns, &name, object, "ADDED");
                    return json_response(StatusCode::CREATED, &stored);
                }
                return not_found();
            };
            let _ = q;
            if let Some(rv) = patch["metadata"]["resourceVersion"].as_str()
                && !rv.is_empty()
                && Some(rv) != current["metadata"]["resourceVersion"].as_str()
            {
                return status_error(
                    StatusCode::CONFLICT,
                    "Conflict",
                    "the object has been modified",
                );
            }
            let mut new = current.clone();
            merge_patch(&mut new, &patch);
            if target.status {
                let status = new.get("status").cloned();
                new = current.clone();
                match status {
                    Some(s) => new["status"] = s,
                    None => {
                        new.as_object_mut().unwrap().remove("status");
                    }
                }
            } else {
                carry_server_fields(&current, &mut new, false);
            }
            if new == current {
                return json_response(StatusCode::OK, &current);
            }
            let stored = state.store(shared, &target.resource, &ns, &name, new, "MODIFIED");
            json_response(StatusCode::OK, &stored)
        }
        Method::DELETE => {
            let Some(name) = target.name.clone() else {
                return status_error(
                    StatusCode::METHOD_NOT_ALLOWED,
                    "MethodNotAllowed",
                    "collection delete",
                );
            };
            match state.remove(shared, &target.resource, &ns, &name) {
                Some(o) => json_response(StatusCode::OK, &o),
                None => not_found(),
            }
        }
        _ => status_error(StatusCode::METHOD_NOT_ALLOWED, "MethodNotAllowed", "method"),
    }
}

/// Runs the test's "racing writer" hook for this object, if one is set.
fn run_status_hook(state: &mut State, shared: &Shared, target: &Target, ns: &str, name: &str) {
    let Some(i) = state
        .status_hooks
        .iter()
        .position(|(r, n, m, _)| *r == target.resource && n == ns && m == name)
    else {
        return;
    };
    let (_, _, _, hook) = state.status_hooks.remove(i);
    let Some(mut object) = state
        .objects
        .get(&target.resource)
        .and_then(|m| m.get(&(ns.to_string(), name.to_string())))
        .cloned()
    else {
        return;
    };
    hook(&mut object);
    state.store(shared, &target.resource, ns, name, object, "MODIFIED");
}
