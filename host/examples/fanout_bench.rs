//! The fan-out benchmark of issue 4: `--clients` simulated Envoys (in-process tonic delta
//! ADS clients, one connection and node id each, all naming Gateway `infra/gw` in
//! `node.metadata["weir.gateway"]` as `weir bootstrap` writes it) on one Gateway of a
//! `--routes` world served by a real `weir serve`; the time for a route change to reach
//! all of them, and `weir serve`'s RSS.
//!
//! ```text
//! cargo build --release -p weir
//! cargo run --release -p weir --example fanout_bench -- --clients 1000 --routes 1000
//! ```
//!
//! With `--sotw` the clients use state-of-the-world ADS instead (what `weir bootstrap
//! --sotw` configures), naming every resource they want in each request.
//!
//! Each client behaves as Envoy does over delta ADS: wildcard clusters and listeners;
//! endpoints for its EDS clusters; the route configurations and secrets its listeners
//! name, or for a listener with scoped routes every route scope (wildcard) and the route
//! configurations the scopes name; every response ACKed. Once all are in sync, `--changes` times one route's file
//! is rewritten (through a rename) with a new path; the time runs from the write to each
//! client's first route-configuration update. A client whose connection fails (1,000
//! connecting at once can overflow the listen backlog) reconnects after a back-off, as
//! Envoy does. `weir serve` runs as its own process so its
//! RSS (`/proc/PID/status`) counts no client memory. RSS is sampled when the last
//! client is in sync and again 3 s later, when the sync's garbage has been returned to
//! the system; the peak (`VmHWM`) is printed at the end. Targets: change → all clients
//! p99 ≤ 1 s, control-plane RSS ≤ 200 MiB.

#[path = "support/bench.rs"]
mod bench;

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use envoy_types::pb::envoy::config::cluster::v3::{Cluster, cluster};
use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::config::core::v3::transport_socket;
use envoy_types::pb::envoy::config::listener::v3::{Listener, filter};
use envoy_types::pb::envoy::config::route::v3::ScopedRouteConfiguration;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpConnectionManager, http_connection_manager::RouteSpecifier,
};
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::DownstreamTlsContext;
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, DiscoveryRequest, DiscoveryResponse,
};
use envoy_types::pb::google::protobuf::{Struct, Value, value};
use prost::Message;
use serde_json::json;
use tokio::sync::mpsc;
use tokio_stream::wrappers::UnboundedReceiverStream;
use weir::translate::synthetic::Synthetic;
use weir::xds::{GATEWAY_METADATA_KEY, ResourceType};

use bench::{mean, ms, percentile};

/// How long to wait before sampling an RSS that has settled.
const SETTLE: Duration = Duration::from_secs(3);

struct Args {
    clients: usize,
    routes: usize,
    changes: usize,
    /// State-of-the-world clients instead of delta ones.
    sotw: bool,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut args = Args {
        clients: 1_000,
        routes: 1_000,
        changes: 10,
        sotw: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--clients" => args.clients = bench::number(&mut it, "--clients")?.max(1),
            "--routes" => args.routes = bench::number(&mut it, "--routes")?.max(1),
            "--changes" => args.changes = bench::number(&mut it, "--changes")?.max(1),
            "--sotw" => args.sotw = true,
            other => bail!(
                "unknown argument {other}; usage: fanout_bench [--clients N] [--routes N] [--changes N] [--sotw]"
            ),
        }
    }
    Ok(args)
}

/// What a client reports: a route-configuration update with resources arrived.
struct RouteUpdate {
    client: usize,
    at: Instant,
}

fn request(ty: ResourceType, subscribe: Vec<String>, node: Option<Node>) -> DeltaDiscoveryRequest {
    DeltaDiscoveryRequest {
        node,
        type_url: ty.type_url().to_string(),
        resource_names_subscribe: subscribe,
        ..Default::default()
    }
}

fn ack(response: &DeltaDiscoveryResponse) -> DeltaDiscoveryRequest {
    DeltaDiscoveryRequest {
        type_url: response.type_url.clone(),
        response_nonce: response.nonce.clone(),
        ..Default::default()
    }
}

/// What the clients found in each (name, version) of a resource, decoded once for all of
/// them: every client gets the same resources, and decoding 10,000 clusters for each of
/// 1,000 clients would make this process, not `weir serve`, what the figures measure.
/// The route configurations and secrets one listener names, and whether it takes its
/// routes from route scopes.
#[derive(Clone, Default)]
struct ListenerNeeds {
    routes: Vec<String>,
    secrets: Vec<String>,
    scoped: bool,
}

impl ListenerNeeds {
    fn extend(&mut self, other: &ListenerNeeds) {
        self.routes.extend(other.routes.iter().cloned());
        self.secrets.extend(other.secrets.iter().cloned());
        self.scoped |= other.scoped;
    }
}

#[derive(Default)]
struct Decoded {
    eds: Mutex<HashMap<(String, String), bool>>,
    listeners: Mutex<HashMap<(String, String), ListenerNeeds>>,
    /// The route configuration each route scope names (see [`scope_routes`]).
    scopes: Mutex<HashMap<(String, String), String>>,
    /// State-of-the-world clients' EDS clusters, by cluster response version.
    sotw_eds: Mutex<HashMap<String, Vec<String>>>,
    /// State-of-the-world clients' listener needs, by listener response version.
    sotw_listeners: Mutex<HashMap<String, ListenerNeeds>>,
}

/// The EDS clusters among `response`'s clusters.
fn eds_clusters(response: &DeltaDiscoveryResponse, decoded: &Decoded) -> Vec<String> {
    let mut eds = decoded.eds.lock().unwrap();
    response
        .resources
        .iter()
        .filter(|r| {
            *eds.entry((r.name.clone(), r.version.clone()))
                .or_insert_with(|| {
                    r.resource
                        .as_ref()
                        .and_then(|any| Cluster::decode(any.value.as_slice()).ok())
                        .is_some_and(|c| is_eds(&c))
                })
        })
        .map(|r| r.name.clone())
        .collect()
}

/// What `response`'s listeners need.
fn listener_needs(response: &DeltaDiscoveryResponse, decoded: &Decoded) -> ListenerNeeds {
    let mut needs = ListenerNeeds::default();
    let mut cache = decoded.listeners.lock().unwrap();
    for r in &response.resources {
        let key = (r.name.clone(), r.version.clone());
        if !cache.contains_key(&key) {
            let one = r
                .resource
                .as_ref()
                .map(|any| one_listener_needs(any.value.as_slice()))
                .unwrap_or_default();
            cache.insert(key.clone(), one);
        }
        needs.extend(&cache[&key]);
    }
    needs
}

/// The route configurations the route scopes of `resources` ((key, encoded)) name,
/// decoded once per key: (name, version) in delta, (response version, position) in SotW.
fn scope_routes<'a>(
    resources: impl Iterator<Item = ((String, String), &'a [u8])>,
    decoded: &Decoded,
) -> Vec<String> {
    let mut cache = decoded.scopes.lock().unwrap();
    resources
        .map(|(key, bytes)| {
            cache
                .entry(key)
                .or_insert_with(|| {
                    ScopedRouteConfiguration::decode(bytes)
                        .map(|s| s.route_configuration_name)
                        .unwrap_or_default()
                })
                .clone()
        })
        .collect()
}

/// What one encoded listener needs.
fn one_listener_needs(bytes: &[u8]) -> ListenerNeeds {
    let mut needs = ListenerNeeds::default();
    {
        let Ok(listener) = Listener::decode(bytes) else {
            return needs;
        };
        for chain in &listener.filter_chains {
            if let Some(transport_socket::ConfigType::TypedConfig(any)) = chain
                .transport_socket
                .as_ref()
                .and_then(|t| t.config_type.as_ref())
                && let Ok(tls) = DownstreamTlsContext::decode(any.value.as_slice())
            {
                for sds in tls
                    .common_tls_context
                    .iter()
                    .flat_map(|c| &c.tls_certificate_sds_secret_configs)
                {
                    needs.secrets.push(sds.name.clone());
                }
            }
            for f in &chain.filters {
                if let Some(filter::ConfigType::TypedConfig(any)) = &f.config_type
                    && let Ok(hcm) = HttpConnectionManager::decode(any.value.as_slice())
                {
                    match hcm.route_specifier {
                        Some(RouteSpecifier::Rds(rds)) => needs.routes.push(rds.route_config_name),
                        Some(RouteSpecifier::ScopedRoutes(_)) => needs.scoped = true,
                        _ => {}
                    }
                }
            }
        }
    }
    needs
}

/// Client `id`'s node, naming Gateway `infra/gw` as `weir bootstrap` writes it.
fn node_of(id: usize) -> Node {
    Node {
        id: format!("fanout-{id:05}"),
        cluster: "infra/gw".into(),
        metadata: Some(Struct {
            fields: [(
                GATEWAY_METADATA_KEY.to_string(),
                Value {
                    kind: Some(value::Kind::StringValue("infra/gw".into())),
                },
            )]
            .into(),
        }),
        ..Default::default()
    }
}

/// An ADS client of the server at `xds`.
async fn connect(
    xds: &str,
) -> anyhow::Result<AggregatedDiscoveryServiceClient<tonic::transport::Channel>> {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{xds}"))?
        .connect()
        .await?;
    Ok(AggregatedDiscoveryServiceClient::new(channel).max_decoding_message_size(256 << 20))
}

/// Whether `cluster` takes its endpoints from EDS.
fn is_eds(cluster: &Cluster) -> bool {
    matches!(
        cluster.cluster_discovery_type,
        Some(cluster::ClusterDiscoveryType::Type(t)) if t == cluster::DiscoveryType::Eds as i32
    )
}

/// One simulated Envoy: connects, subscribes as Envoy does, ACKs everything and reports
/// every route-configuration update.
async fn client(
    id: usize,
    xds: String,
    updates: mpsc::UnboundedSender<RouteUpdate>,
    decoded: Arc<Decoded>,
) -> anyhow::Result<()> {
    let mut ads = connect(&xds).await?;
    let (tx, rx) = mpsc::unbounded_channel();
    tx.send(request(
        ResourceType::Cluster,
        Vec::new(),
        Some(node_of(id)),
    ))?;
    tx.send(request(ResourceType::Listener, Vec::new(), None))?;
    let mut stream = ads
        .delta_aggregated_resources(UnboundedReceiverStream::new(rx))
        .await?
        .into_inner();
    let mut eds = BTreeSet::new();
    let mut rds = BTreeSet::new();
    let mut sds = BTreeSet::new();
    let mut scoped = false;
    let new = |set: &mut BTreeSet<String>, names: Vec<String>| -> Vec<String> {
        names
            .into_iter()
            .filter(|n| set.insert(n.clone()))
            .collect()
    };
    while let Some(response) = stream.message().await? {
        let at = Instant::now();
        tx.send(ack(&response))?;
        match ResourceType::from_type_url(&response.type_url) {
            Some(ResourceType::Cluster) => {
                let more = new(&mut eds, eds_clusters(&response, &decoded));
                if !more.is_empty() {
                    tx.send(request(ResourceType::Endpoint, more, None))?;
                }
            }
            Some(ResourceType::Listener) => {
                let needs = listener_needs(&response, &decoded);
                if needs.scoped && !scoped {
                    scoped = true;
                    tx.send(request(ResourceType::ScopedRoute, Vec::new(), None))?;
                }
                let routes = new(&mut rds, needs.routes);
                if !routes.is_empty() {
                    tx.send(request(ResourceType::Route, routes, None))?;
                }
                let secrets = new(&mut sds, needs.secrets);
                if !secrets.is_empty() {
                    tx.send(request(ResourceType::Secret, secrets, None))?;
                }
            }
            Some(ResourceType::ScopedRoute) => {
                let scopes = response.resources.iter().map(|r| {
                    let bytes = r.resource.as_ref().map_or(&[][..], |a| a.value.as_slice());
                    ((r.name.clone(), r.version.clone()), bytes)
                });
                let routes = new(&mut rds, scope_routes(scopes, &decoded));
                if !routes.is_empty() {
                    tx.send(request(ResourceType::Route, routes, None))?;
                }
            }
            Some(ResourceType::Route) if !response.resources.is_empty() => {
                let _ = updates.send(RouteUpdate { client: id, at });
            }
            _ => {}
        }
    }
    bail!("client {id}: the server closed the stream")
}

/// The same client over state-of-the-world ADS: each request names every resource it
/// wants of its type and acknowledges the type's latest response.
async fn sotw_client(
    id: usize,
    xds: String,
    updates: mpsc::UnboundedSender<RouteUpdate>,
    decoded: Arc<Decoded>,
) -> anyhow::Result<()> {
    let mut ads = connect(&xds).await?;
    let (tx, rx) = mpsc::unbounded_channel();
    // Per type: the names asked for, and the version and nonce of the latest response.
    let mut asked: HashMap<ResourceType, SotwAsked> = HashMap::new();
    asked.entry(ResourceType::Cluster).or_default().send(
        &tx,
        ResourceType::Cluster,
        Some(node_of(id)),
    )?;
    asked
        .entry(ResourceType::Listener)
        .or_default()
        .send(&tx, ResourceType::Listener, None)?;
    let mut stream = ads
        .stream_aggregated_resources(UnboundedReceiverStream::new(rx))
        .await?
        .into_inner();
    // The route configurations the listeners name, and those the route scopes name.
    let (mut listener_routes, mut scoped_routes) = (Vec::new(), Vec::new());
    while let Some(response) = stream.message().await? {
        let at = Instant::now();
        let Some(ty) = ResourceType::from_type_url(&response.type_url) else {
            continue;
        };
        let state = asked.entry(ty).or_default();
        state.version = response.version_info.clone();
        state.nonce = response.nonce.clone();
        state.send(&tx, ty, None)?;
        let mut ask = |ty: ResourceType, mut names: Vec<String>| -> anyhow::Result<()> {
            names.sort();
            names.dedup();
            let state = asked.entry(ty).or_default();
            if state.names != names {
                state.names = names;
                state.send(&tx, ty, None)?;
            }
            Ok(())
        };
        match ty {
            ResourceType::Cluster => ask(ResourceType::Endpoint, sotw_eds(&response, &decoded))?,
            ResourceType::Listener => {
                let needs = sotw_listener_needs(&response, &decoded);
                listener_routes = needs.routes;
                ask(
                    ResourceType::Route,
                    [&listener_routes[..], &scoped_routes[..]].concat(),
                )?;
                if !needs.secrets.is_empty() {
                    ask(ResourceType::Secret, needs.secrets)?;
                }
                if needs.scoped && !asked.contains_key(&ResourceType::ScopedRoute) {
                    asked.entry(ResourceType::ScopedRoute).or_default().send(
                        &tx,
                        ResourceType::ScopedRoute,
                        None,
                    )?;
                }
            }
            ResourceType::ScopedRoute => {
                let version = &response.version_info;
                let scopes = response
                    .resources
                    .iter()
                    .enumerate()
                    .map(|(i, any)| ((version.clone(), i.to_string()), any.value.as_slice()));
                scoped_routes = scope_routes(scopes, &decoded);
                ask(
                    ResourceType::Route,
                    [&listener_routes[..], &scoped_routes[..]].concat(),
                )?;
            }
            ResourceType::Route if !response.resources.is_empty() => {
                let _ = updates.send(RouteUpdate { client: id, at });
            }
            _ => {}
        }
    }
    bail!("client {id}: the server closed the stream")
}

/// What a state-of-the-world client asked for of one type.
#[derive(Default)]
struct SotwAsked {
    names: Vec<String>,
    version: String,
    nonce: String,
}

impl SotwAsked {
    fn send(
        &self,
        tx: &mpsc::UnboundedSender<DiscoveryRequest>,
        ty: ResourceType,
        node: Option<Node>,
    ) -> anyhow::Result<()> {
        tx.send(DiscoveryRequest {
            node,
            type_url: ty.type_url().to_string(),
            resource_names: self.names.clone(),
            version_info: self.version.clone(),
            response_nonce: self.nonce.clone(),
            ..Default::default()
        })?;
        Ok(())
    }
}

/// The EDS clusters of a state-of-the-world cluster response, decoded once per version.
fn sotw_eds(response: &DiscoveryResponse, decoded: &Decoded) -> Vec<String> {
    let mut cache = decoded.sotw_eds.lock().unwrap();
    cache
        .entry(response.version_info.clone())
        .or_insert_with(|| {
            response
                .resources
                .iter()
                .filter_map(|any| Cluster::decode(any.value.as_slice()).ok())
                .filter(is_eds)
                .map(|c| c.name)
                .collect()
        })
        .clone()
}

/// The route configurations and secrets a state-of-the-world listener response names,
/// decoded once per version.
fn sotw_listener_needs(response: &DiscoveryResponse, decoded: &Decoded) -> ListenerNeeds {
    let mut cache = decoded.sotw_listeners.lock().unwrap();
    cache
        .entry(response.version_info.clone())
        .or_insert_with(|| {
            let mut needs = ListenerNeeds::default();
            for any in &response.resources {
                needs.extend(&one_listener_needs(any.value.as_slice()));
            }
            needs
        })
        .clone()
}

/// Waits until every client reported a route update after `since`; returns each client's
/// first one after `since`, minus `since`.
async fn until_all(
    updates: &mut mpsc::UnboundedReceiver<RouteUpdate>,
    clients: usize,
    since: Instant,
    what: &str,
) -> anyhow::Result<Vec<Duration>> {
    let mut first: Vec<Option<Duration>> = vec![None; clients];
    let mut missing = clients;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(300);
    while missing > 0 {
        let update = tokio::time::timeout_at(deadline, updates.recv())
            .await
            .with_context(|| format!("{what}: {missing} clients never got a route update"))?
            .context("every client stopped")?;
        if update.at >= since && first[update.client].is_none() {
            first[update.client] = Some(update.at - since);
            missing -= 1;
        }
    }
    Ok(first.into_iter().flatten().collect())
}

fn main() -> anyhow::Result<()> {
    let args = parse_args()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run(args))
}

async fn run(args: Args) -> anyhow::Result<()> {
    let synthetic = Synthetic::with_routes(args.routes);
    println!(
        "fanout_bench: {} {} ADS clients on one Gateway; {} routes, {} Services, {} Upstreams; {} changes; load average {}",
        args.clients,
        if args.sotw {
            "state-of-the-world"
        } else {
            "delta"
        },
        synthetic.routes,
        synthetic.services,
        synthetic.upstreams,
        args.changes,
        bench::load_average()
    );
    // No Envoy here, so no traffic: the backends only give the endpoints a port.
    let local = bench::Local::new(vec![bench::free_port()])?;
    let work = tempfile::tempdir()?;
    let dir = work.path().join("manifests");
    synthetic.write_yaml_dir(&dir, 0..synthetic.routes, &mut |m| local.edit(m))?;
    let serve = bench::start_serve(&dir, work.path())?;
    let pid = serve.process.pid();
    println!(
        "weir serve ready:    VmRSS {:.1} MiB (no client yet)",
        bench::memory_mib(pid, "VmRSS:")
    );
    tokio::time::sleep(SETTLE).await;
    println!(
        "weir serve idle:     VmRSS {:.1} MiB ({} s later)",
        bench::memory_mib(pid, "VmRSS:"),
        SETTLE.as_secs()
    );

    let (updates_tx, mut updates) = mpsc::unbounded_channel();
    let decoded = Arc::new(Decoded::default());
    let started = Instant::now();
    let clients: Vec<_> = (0..args.clients)
        .map(|id| {
            let xds = serve.xds.clone();
            let tx = updates_tx.clone();
            let decoded = decoded.clone();
            let sotw = args.sotw;
            tokio::spawn(async move {
                // As Envoy does, a client whose connection fails (1,000 connecting at
                // once overflow the listen backlog) reconnects after a back-off.
                for attempt in 1..=10u64 {
                    let attempt_result = if sotw {
                        sotw_client(id, xds.clone(), tx.clone(), decoded.clone()).await
                    } else {
                        client(id, xds.clone(), tx.clone(), decoded.clone()).await
                    };
                    match attempt_result {
                        Ok(()) => return,
                        Err(err) if attempt == 10 => eprintln!("client {id}: {err:#}"),
                        Err(_) => {
                            let jitter = (id as u64 * 37) % 250;
                            tokio::time::sleep(Duration::from_millis(250 * attempt + jitter)).await
                        }
                    }
                }
            })
        })
        .collect();
    drop(updates_tx);
    let initial = until_all(&mut updates, args.clients, started, "initial sync").await?;
    println!(
        "initial sync:        all {} clients have routes after {} (p50 {})",
        args.clients,
        ms(percentile(&initial, 100.0)),
        ms(percentile(&initial, 50.0)),
    );
    println!(
        "weir serve RSS:      VmRSS {:.1} MiB with {} clients just in sync",
        bench::memory_mib(pid, "VmRSS:"),
        args.clients
    );
    // The sync's garbage is returned to the system within about a second (jemalloc's
    // decay, host/src/alloc.rs); what stays is what the clients cost while connected.
    tokio::time::sleep(SETTLE).await;
    println!(
        "weir serve RSS:      VmRSS {:.1} MiB with {} clients in sync, {} s later",
        bench::memory_mib(pid, "VmRSS:"),
        args.clients,
        SETTLE.as_secs()
    );
    while updates.try_recv().is_ok() {}

    let mut all = Vec::new();
    let mut last = Vec::new();
    let load_before = bench::load_average();
    for k in 0..args.changes {
        let index = (k * 7919 + 13) % synthetic.routes;
        let mut manifest = synthetic.route_manifest(index, 0);
        local.edit(&mut manifest);
        manifest["spec"]["rules"][0]["matches"][0] =
            json!({"path": {"type": "PathPrefix", "value": format!("/r{index}/fanout/{k}")}});
        let since = Instant::now();
        bench::write_manifest(&dir.join(synthetic.route_file(index)), &manifest)?;
        let times = until_all(&mut updates, args.clients, since, "change").await?;
        let slowest = percentile(&times, 100.0);
        println!(
            "  change {k}: first client {}, p50 {}, all {}",
            ms(percentile(&times, 0.0)),
            ms(percentile(&times, 50.0)),
            ms(slowest)
        );
        last.push(slowest);
        all.extend(times);
        tokio::time::sleep(Duration::from_millis(500)).await;
        while updates.try_recv().is_ok() {}
    }
    let load_after = bench::load_average();
    println!(
        "change → clients:    per client p50 {}, p99 {}, mean {}; change → all {} clients: p50 {}, max {} over {} changes",
        ms(percentile(&all, 50.0)),
        ms(percentile(&all, 99.0)),
        ms(mean(&all)),
        args.clients,
        ms(percentile(&last, 50.0)),
        ms(percentile(&last, 100.0)),
        args.changes,
    );
    println!(
        "weir serve RSS:      VmHWM {:.1} MiB, VmRSS {:.1} MiB; load average before {load_before}, after {load_after}",
        bench::memory_mib(pid, "VmHWM:"),
        bench::memory_mib(pid, "VmRSS:"),
    );
    for c in clients {
        c.abort();
    }
    drop(serve);
    Ok(())
}
