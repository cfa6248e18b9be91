//! The Kubernetes source: kube-rs watchers on every kind the translator reads.
//!
//! ```text
//!  watcher(GatewayClass) ─► reflector ─┐
//!  watcher(Gateway)      ─► reflector ─┤  decode    ┌────────┐  SourceEvent
//!  ...  (one per kind and API group)   ├──────────► │ Merger │ ────────────► events()
//!  watcher(Secret) (not reflected) ────┘            └────────┘
//!                                                     │ fetch newly referenced Secrets
//! ```
//!
//! [`KubeSource::start`] runs one watcher per watched API ([`apis::all`]): each with
//! kube-runtime's default exponential back-off, each feeding one shared reflector whose
//! store ([`Reflectors`]) the reporter and discovery read too. Watchers relist by
//! themselves on a `410 Gone` and resume from their last resourceVersion when a watch
//! drops; the [`merge::Merger`] turns their events into the same [`SourceEvent`]s the
//! file source emits, the first being one `Reset` once every API has listed. An API the
//! server does not serve (a CRD not installed) counts as empty. Secrets are watched but not
//! reflected: only those a Gateway listener or an Upstream references are kept.
//!
//! While the API server is down, watchers retry with back-off and nothing is emitted, so
//! the last good snapshot keeps serving.

pub mod apis;
pub mod merge;
pub mod serve;

use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context;
use kube::api::{Api, DynamicObject};
use kube::core::ApiResource;
use kube::runtime::reflector::{self, ObjectRef};
use kube::runtime::watcher::{self, Event, watcher};
use kube::runtime::{WatchStreamExt, reflector::store::Writer};
use kube::{Client, Config};
use tokio::sync::{mpsc, watch};
use tokio_stream::{Stream, StreamExt};

use crate::model::gateway_api::{
    EndpointSlice, Gateway, GatewayClass, HttpRoute, Namespace, ReferenceGrant, Service,
};
use crate::model::{
    DirectResponse, HttpListenerOption, Kind, ListenerOption, Object, ObjectKey, RouteOption,
    Upstream, VirtualHostOption,
};
use crate::source::SourceEvent;

use apis::WatchedApi;
use merge::{Input, Merger};

/// A client from the kubeconfig at `kubeconfig`, or else inferred as kubectl does
/// (in-cluster service account, then `$KUBECONFIG`, then `~/.kube/config`, current context).
pub async fn client(kubeconfig: Option<&Path>) -> anyhow::Result<Client> {
    let config = match kubeconfig {
        Some(path) => {
            let kc = kube::config::Kubeconfig::read_from(path)
                .with_context(|| format!("cannot read kubeconfig {}", path.display()))?;
            Config::from_custom_kubeconfig(kc, &Default::default())
                .await
                .with_context(|| format!("kubeconfig {} is unusable", path.display()))?
        }
        None => Config::infer()
            .await
            .context("no Kubernetes configuration found (in-cluster or kubeconfig)")?,
    };
    Client::try_from(config).context("cannot build the Kubernetes client")
}

/// The shared reflector stores: one per watched API (Secrets excluded).
#[derive(Clone)]
pub struct Reflectors {
    stores: Arc<Vec<(WatchedApi, reflector::Store<DynamicObject>)>>,
    /// Per watched API: whether its first list completed (or it is not served).
    synced: Arc<Vec<AtomicBool>>,
    changes: watch::Sender<u64>,
}

impl Reflectors {
    /// Every reflected API of `kind` with its store (two for Weir's kinds).
    pub fn of_kind(
        &self,
        kind: Kind,
    ) -> impl Iterator<Item = &(WatchedApi, reflector::Store<DynamicObject>)> {
        self.stores.iter().filter(move |(a, _)| a.kind == kind)
    }

    /// The store of one API (`kind` under `group`).
    pub fn store(&self, kind: Kind, group: &str) -> Option<&reflector::Store<DynamicObject>> {
        self.of_kind(kind)
            .find(|(a, _)| a.group == group)
            .map(|(_, s)| s)
    }

    /// Whether every watched API has completed its first list.
    pub fn synced(&self) -> bool {
        self.synced.iter().all(|s| s.load(Ordering::Acquire))
    }

    /// Moves on every event of every watched API (after the reflector applied it).
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// The cached object `key` names and the API it came from (the first group holding it).
    pub fn find(&self, key: &ObjectKey) -> Option<(ApiResource, Arc<DynamicObject>)> {
        self.of_kind(key.kind).find_map(|(api, store)| {
            let ar = api.resource();
            let mut r = ObjectRef::<DynamicObject>::new_with(&key.name, ar.clone());
            if let Some(ns) = &key.namespace {
                r = r.within(ns);
            }
            store.get(&r).map(|o| (ar, o))
        })
    }
}

/// A running Kubernetes source.
pub struct KubeSource {
    reflectors: Reflectors,
    events: mpsc::UnboundedReceiver<SourceEvent>,
}

impl KubeSource {
    /// Starts every watcher and the merger on the current tokio runtime.
    pub fn start(client: Client) -> Self {
        let apis = apis::all();
        let (in_tx, in_rx) = mpsc::unbounded_channel::<(usize, Input)>();
        let mut stores = Vec::new();
        let synced: Arc<Vec<AtomicBool>> =
            Arc::new(apis.iter().map(|_| AtomicBool::new(false)).collect());
        let changes = watch::channel(0u64).0;
        for (index, api) in apis.iter().enumerate() {
            let ar = api.resource();
            let dyn_api: Api<DynamicObject> = Api::all_with(client.clone(), &ar);
            let writer = if api.kind == Kind::Secret {
                None
            } else {
                let writer = Writer::new(ar.clone());
                stores.push((api.clone(), writer.as_reader()));
                Some(writer)
            };
            let signals = Signals {
                synced: synced.clone(),
                changes: changes.clone(),
            };
            tokio::spawn(watch_api(
                dyn_api,
                api.clone(),
                index,
                writer,
                in_tx.clone(),
                signals,
            ));
        }
        let (out_tx, events) = mpsc::unbounded_channel();
        let kinds = apis.iter().map(|a| a.kind).collect();
        tokio::spawn(merge_loop(client, kinds, in_rx, in_tx, out_tx));
        Self {
            reflectors: Reflectors {
                stores: Arc::new(stores),
                synced,
                changes,
            },
            events,
        }
    }

    /// The shared reflector stores.
    pub fn reflectors(&self) -> Reflectors {
        self.reflectors.clone()
    }

    /// Splits into the reflectors and the stream of events for the store.
    pub fn into_parts(self) -> (Reflectors, mpsc::UnboundedReceiver<SourceEvent>) {
        (self.reflectors, self.events)
    }
}

type WatchStream = Pin<Box<dyn Stream<Item = Result<Event<DynamicObject>, watcher::Error>> + Send>>;

/// How a watcher tells the reflectors' readers about progress.
struct Signals {
    synced: Arc<Vec<AtomicBool>>,
    changes: watch::Sender<u64>,
}

/// Watches one API until the merger goes away, reporting decoded events.
async fn watch_api(
    api: Api<DynamicObject>,
    watched: WatchedApi,
    index: usize,
    writer: Option<Writer<DynamicObject>>,
    tx: mpsc::UnboundedSender<(usize, Input)>,
    signals: Signals,
) {
    let stream = watcher(api, watcher::Config::default()).default_backoff();
    let mut stream: WatchStream = match writer {
        Some(writer) => Box::pin(reflector::reflector(writer, stream)),
        None => Box::pin(stream),
    };
    let what = watched.api_version() + " " + watched.kind.as_str();
    let mut last_error: Option<String> = None;
    while let Some(item) = stream.next().await {
        let input = match item {
            Ok(Event::Init) => Some(Input::Init),
            Ok(Event::InitApply(o)) => decode(watched.kind, o).map(Input::InitApply),
            Ok(Event::InitDone) => {
                if last_error.take().is_some() {
                    tracing::info!(api = %what, "watch recovered");
                }
                Some(Input::InitDone)
            }
            Ok(Event::Apply(o)) => decode(watched.kind, o).map(Input::Apply),
            Ok(Event::Delete(o)) => key_of(watched.kind, &o).map(Input::Delete),
            Err(err) => {
                let message = err.to_string();
                if last_error.as_ref() != Some(&message) {
                    tracing::warn!(api = %what, error = %message, "watch failed; retrying with back-off");
                    last_error = Some(message);
                }
                let not_served = matches!(
                    &err,
                    watcher::Error::InitialListFailed(kube::Error::Api(s)) if s.code == 404
                );
                not_served.then_some(Input::Unavailable)
            }
        };
        if matches!(input, Some(Input::InitDone | Input::Unavailable)) {
            signals.synced[index].store(true, Ordering::Release);
        }
        if input.is_some() {
            signals.changes.send_modify(|n| *n += 1);
        }
        if let Some(input) = input
            && tx.send((index, input)).is_err()
        {
            return;
        }
    }
}

/// Runs the merger: forwards its events and fetches the Secrets it asks for.
async fn merge_loop(
    client: Client,
    kinds: Vec<Kind>,
    mut rx: mpsc::UnboundedReceiver<(usize, Input)>,
    fetched_tx: mpsc::UnboundedSender<(usize, Input)>,
    out: mpsc::UnboundedSender<SourceEvent>,
) {
    let secret_api = kinds.iter().position(|k| *k == Kind::Secret);
    let mut merger = Merger::new(kinds);
    let secrets_ar = apis::all()
        .into_iter()
        .find(|a| a.kind == Kind::Secret)
        .map(|a| a.resource());
    // A fetched Secret comes back through the same channel as an `Apply` marked with this
    // index, which the merger never sees otherwise.
    let fetched_index = usize::MAX;
    while let Some((index, input)) = rx.recv().await {
        let output = if index == fetched_index {
            match input {
                Input::Apply(secret) => merger.fetched(secret),
                _ => continue,
            }
        } else {
            merger.handle(index, input)
        };
        for event in output.events {
            if out.send(event).is_err() {
                return;
            }
        }
        let (Some(_), Some(ar)) = (secret_api, &secrets_ar) else {
            continue;
        };
        for key in output.fetch {
            let api: Api<DynamicObject> = Api::namespaced_with(
                client.clone(),
                key.namespace.as_deref().unwrap_or_default(),
                ar,
            );
            let tx = fetched_tx.clone();
            tokio::spawn(async move {
                match api.get_opt(&key.name).await {
                    Ok(Some(o)) => {
                        if let Some(secret) = decode(Kind::Secret, o) {
                            let _ = tx.send((fetched_index, Input::Apply(secret)));
                        }
                    }
                    Ok(None) => {}
                    Err(err) => {
                        tracing::warn!(secret = %key, error = %err, "cannot get a referenced Secret")
                    }
                }
            });
        }
    }
}

/// The key of a deleted object.
fn key_of(kind: Kind, o: &DynamicObject) -> Option<ObjectKey> {
    let name = o.metadata.name.clone()?;
    Some(if kind.is_namespaced() {
        ObjectKey::namespaced(kind, o.metadata.namespace.clone().unwrap_or_default(), name)
    } else {
        ObjectKey::cluster(kind, name)
    })
}

/// Decodes a watched object into the model's type; an object that does not decode is
/// logged (by key, never contents) and skipped.
pub fn decode(kind: Kind, o: DynamicObject) -> Option<Object> {
    let key = key_of(kind, &o);
    let mut value = match serde_json::to_value(o) {
        Ok(v) => v,
        Err(_) => return None,
    };
    if let Some(meta) = value.get_mut("metadata").and_then(|m| m.as_object_mut()) {
        meta.remove("managedFields");
    }
    match decode_value(kind, value) {
        Ok(object) => Some(object),
        Err(err) => {
            let key = key.map_or_else(|| kind.to_string(), |k| k.to_string());
            // serde_json's messages name the field and type, not the value.
            tracing::error!(object = %key, error = %err, "cannot decode; ignored");
            None
        }
    }
}

fn decode_value(kind: Kind, v: serde_json::Value) -> Result<Object, serde_json::Error> {
    use serde_json::from_value as from;
    Ok(match kind {
        Kind::GatewayClass => from::<GatewayClass>(v)?.into(),
        Kind::Gateway => from::<Gateway>(v)?.into(),
        Kind::HttpRoute => from::<HttpRoute>(v)?.into(),
        Kind::ReferenceGrant => from::<ReferenceGrant>(v)?.into(),
        Kind::Upstream => from::<Upstream>(v)?.into(),
        Kind::RouteOption => from::<RouteOption>(v)?.into(),
        Kind::VirtualHostOption => from::<VirtualHostOption>(v)?.into(),
        Kind::ListenerOption => from::<ListenerOption>(v)?.into(),
        Kind::HttpListenerOption => from::<HttpListenerOption>(v)?.into(),
        Kind::DirectResponse => from::<DirectResponse>(v)?.into(),
        Kind::Namespace => from::<Namespace>(v)?.into(),
        Kind::Service => from::<Service>(v)?.into(),
        Kind::EndpointSlice => from::<EndpointSlice>(v)?.into(),
        Kind::Secret => from::<k8s_openapi::api::core::v1::Secret>(v)?.into(),
    })
}
