//! The ADS server against an in-process tonic client playing Envoy: real gRPC over
//! loopback, our server unmodified, the proxy's side scripted request by request.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::config::endpoint::v3::{ClusterLoadAssignment, LocalityLbEndpoints};
use envoy_types::pb::envoy::config::listener::v3::Listener;
use envoy_types::pb::envoy::config::route::v3::{
    RouteConfiguration, ScopedRouteConfiguration, VirtualHost,
};
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::Secret;
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, DiscoveryRequest, DiscoveryResponse,
};
use envoy_types::pb::google::protobuf::{Any, Struct, Value, value};
use envoy_types::pb::google::rpc::Status as RpcStatus;
use prost::Message;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};
use tokio_stream::wrappers::UnboundedReceiverStream;
use tonic::Streaming;
use tonic::transport::Channel;

use super::*;
use crate::model::{Kind, ObjectKey};
use crate::translate::{
    EncodedCluster, EncodedEndpoints, EncodedVirtualHost, GatewayResources, RouteTable,
};

use ResourceType::{
    Cluster as CDS, Endpoint as EDS, Listener as LDS, Route as RDS, ScopedRoute as SRDS,
};

mod invariants;

const WAIT: Duration = Duration::from_secs(5);
const QUIET: Duration = Duration::from_millis(250);

// === Builders ===

fn mk_gateway(name: impl ToString) -> ObjectKey {
    ObjectKey::namespaced(Kind::Gateway, "default", name.to_string())
}

fn mk_node(id: impl ToString, gateway: impl ToString) -> Node {
    Node {
        id: id.to_string(),
        metadata: Some(Struct {
            fields: [(
                GATEWAY_METADATA_KEY.to_string(),
                Value {
                    kind: Some(value::Kind::StringValue(gateway.to_string())),
                },
            )]
            .into(),
        }),
        ..Default::default()
    }
}

/// Resources of a Gateway: clusters (name, connect-timeout seconds — change it to make
/// a new version), one endpoint assignment per cluster, listeners `l_<route>` each
/// using route configuration `<route>`, whose virtual hosts name the clusters, and
/// route scopes each naming the route configuration of its own name.
#[derive(Clone, Default)]
struct Spec {
    clusters: Vec<(String, i64)>,
    routes: Vec<(String, Vec<String>)>,
    scopes: Vec<String>,
    secrets: Vec<String>,
}

fn mk_spec() -> Spec {
    Spec::default()
}

impl Spec {
    fn cluster(mut self, name: impl ToString, generation: i64) -> Self {
        self.clusters.push((name.to_string(), generation));
        self
    }
    fn route(mut self, name: impl ToString, clusters: &[&str]) -> Self {
        self.routes.push((
            name.to_string(),
            clusters.iter().map(|c| c.to_string()).collect(),
        ));
        self
    }
    fn scope(mut self, name: impl ToString) -> Self {
        self.scopes.push(name.to_string());
        self
    }
    fn secret(mut self, name: impl ToString) -> Self {
        self.secrets.push(name.to_string());
        self
    }
    // `.into()`: the translator may share these lists behind an `Arc`.
    fn resources(&self) -> GatewayResources {
        GatewayResources {
            clusters: self
                .clusters
                .iter()
                .map(|(name, generation)| {
                    Arc::new(EncodedCluster::from(Cluster {
                        name: name.clone(),
                        connect_timeout: Some(envoy_types::pb::google::protobuf::Duration {
                            seconds: *generation,
                            nanos: 0,
                        }),
                        ..Default::default()
                    }))
                })
                .collect(),
            endpoints: self
                .clusters
                .iter()
                .map(|(name, generation)| {
                    Arc::new(EncodedEndpoints::from(ClusterLoadAssignment {
                        cluster_name: name.clone(),
                        endpoints: vec![LocalityLbEndpoints {
                            priority: *generation as u32,
                            ..Default::default()
                        }],
                        ..Default::default()
                    }))
                })
                .collect(),
            listeners: self
                .routes
                .iter()
                .map(|(route, _)| {
                    Arc::new(Listener {
                        name: format!("l_{route}"),
                        stat_prefix: route.clone(),
                        ..Default::default()
                    })
                })
                .collect(),
            routes: self
                .routes
                .iter()
                .map(|(route, clusters)| {
                    RouteTable::new(
                        route.clone(),
                        clusters
                            .iter()
                            .map(|c| {
                                Arc::new(EncodedVirtualHost::from(VirtualHost {
                                    name: c.clone(),
                                    ..Default::default()
                                }))
                            })
                            .collect(),
                    )
                })
                .collect(),
            scoped_routes: self
                .scopes
                .iter()
                .map(|name| {
                    Arc::new(ScopedRouteConfiguration {
                        name: name.clone(),
                        route_configuration_name: name.clone(),
                        ..Default::default()
                    })
                })
                .collect(),
            secrets: self
                .secrets
                .iter()
                .map(|name| {
                    Arc::new(Secret {
                        name: name.clone(),
                        ..Default::default()
                    })
                })
                .collect(),
        }
    }
    fn snapshot(&self) -> Snapshot {
        Snapshot::from_resources(&self.resources())
    }
}

fn name_of(any: &Any) -> String {
    let bytes = any.value.as_slice();
    match ResourceType::from_type_url(&any.type_url).expect("a type we serve") {
        CDS => Cluster::decode(bytes).unwrap().name,
        EDS => ClusterLoadAssignment::decode(bytes).unwrap().cluster_name,
        LDS => Listener::decode(bytes).unwrap().name,
        RDS => RouteConfiguration::decode(bytes).unwrap().name,
        ResourceType::ScopedRoute => ScopedRouteConfiguration::decode(bytes).unwrap().name,
        ResourceType::Secret => Secret::decode(bytes).unwrap().name,
    }
}

fn names(resp: &DiscoveryResponse) -> Vec<String> {
    resp.resources.iter().map(name_of).collect()
}

fn delta_names(resp: &DeltaDiscoveryResponse) -> Vec<String> {
    resp.resources
        .iter()
        .map(|r| {
            let any = r.resource.as_ref().expect("resource body");
            assert_eq!(
                name_of(any),
                r.name,
                "a delta resource is named as its body"
            );
            r.name.clone()
        })
        .collect()
}

fn ty_of(type_url: &str) -> ResourceType {
    ResourceType::from_type_url(type_url).expect("a type we serve")
}

// === Harness ===

struct Harness {
    cache: SnapshotCache,
    server: AdsServer,
    addr: SocketAddr,
    shutdown_tx: Option<oneshot::Sender<()>>,
    serving: tokio::task::JoinHandle<Result<(), XdsError>>,
}

async fn start() -> Harness {
    let cache = SnapshotCache::new();
    let server = AdsServer::new(cache.clone());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (shutdown_tx, shutdown_rx) = oneshot::channel::<()>();
    let serving = tokio::spawn(server.clone().serve(listener, async move {
        let _ = shutdown_rx.await;
    }));
    Harness {
        cache,
        server,
        addr,
        shutdown_tx: Some(shutdown_tx),
        serving,
    }
}

impl Harness {
    fn publish(&self, gateway: &str, spec: &Spec) {
        self.cache.publish(mk_gateway(gateway), spec.snapshot());
    }

    async fn client(&self) -> AggregatedDiscoveryServiceClient<Channel> {
        AggregatedDiscoveryServiceClient::connect(format!("http://{}", self.addr))
            .await
            .expect("connect to the ADS server")
    }

    async fn sotw(&self, node: Node) -> SotwEnvoy {
        let (tx, rx) = mpsc::unbounded_channel();
        let mut client = self.client().await;
        let responses = client
            .stream_aggregated_resources(UnboundedReceiverStream::new(rx))
            .await
            .expect("stream opens")
            .into_inner();
        SotwEnvoy {
            tx,
            responses,
            node: Some(node),
        }
    }

    async fn delta(&self, node: Node) -> DeltaEnvoy {
        let (tx, rx) = mpsc::unbounded_channel();
        let mut client = self.client().await;
        let responses = client
            .delta_aggregated_resources(UnboundedReceiverStream::new(rx))
            .await
            .expect("stream opens")
            .into_inner();
        DeltaEnvoy {
            tx,
            responses,
            node: Some(node),
        }
    }
}

/// A state-of-the-world proxy: requests are sent as scripted; the node goes on the
/// first only (as Envoy's `set_node_on_first_message_only`).
struct SotwEnvoy {
    tx: mpsc::UnboundedSender<DiscoveryRequest>,
    responses: Streaming<DiscoveryResponse>,
    node: Option<Node>,
}

impl SotwEnvoy {
    fn request(&mut self, ty: ResourceType, names: &[&str], version: &str, nonce: &str) {
        self.send(DiscoveryRequest {
            version_info: version.to_string(),
            resource_names: names.iter().map(|n| n.to_string()).collect(),
            type_url: ty.type_url().to_string(),
            response_nonce: nonce.to_string(),
            ..Default::default()
        });
    }

    fn ack(&mut self, resp: &DiscoveryResponse, names: &[&str]) {
        let ty = ty_of(&resp.type_url);
        self.request(ty, names, &resp.version_info, &resp.nonce);
    }

    fn nack(&mut self, resp: &DiscoveryResponse, names: &[&str], last_good: &str, message: &str) {
        self.send(DiscoveryRequest {
            version_info: last_good.to_string(),
            resource_names: names.iter().map(|n| n.to_string()).collect(),
            type_url: resp.type_url.clone(),
            response_nonce: resp.nonce.clone(),
            error_detail: Some(RpcStatus {
                code: 3,
                message: message.to_string(),
                details: vec![],
            }),
            ..Default::default()
        });
    }

    fn send(&mut self, mut req: DiscoveryRequest) {
        req.node = self.node.take();
        self.tx.send(req).expect("stream open");
    }

    async fn recv(&mut self) -> DiscoveryResponse {
        match tokio::time::timeout(WAIT, self.responses.message()).await {
            Ok(Ok(Some(resp))) => resp,
            Ok(other) => panic!("expected a response, got {other:?}"),
            Err(_) => panic!("no response within {WAIT:?}"),
        }
    }

    async fn recv_type(&mut self, ty: ResourceType) -> DiscoveryResponse {
        let resp = self.recv().await;
        assert_eq!(ty_of(&resp.type_url), ty, "response type ({resp:?})");
        resp
    }

    async fn expect_quiet(&mut self) {
        if let Ok(msg) = tokio::time::timeout(QUIET, self.responses.message()).await {
            panic!("expected nothing, got {msg:?}");
        }
    }
}

/// A delta proxy.
struct DeltaEnvoy {
    tx: mpsc::UnboundedSender<DeltaDiscoveryRequest>,
    responses: Streaming<DeltaDiscoveryResponse>,
    node: Option<Node>,
}

impl DeltaEnvoy {
    fn subscribe(
        &mut self,
        ty: ResourceType,
        subscribe: &[&str],
        unsubscribe: &[&str],
        nonce: &str,
    ) {
        self.send(DeltaDiscoveryRequest {
            type_url: ty.type_url().to_string(),
            resource_names_subscribe: subscribe.iter().map(|n| n.to_string()).collect(),
            resource_names_unsubscribe: unsubscribe.iter().map(|n| n.to_string()).collect(),
            response_nonce: nonce.to_string(),
            ..Default::default()
        });
    }

    fn ack(&mut self, resp: &DeltaDiscoveryResponse) {
        self.subscribe(ty_of(&resp.type_url), &[], &[], &resp.nonce);
    }

    fn nack(&mut self, resp: &DeltaDiscoveryResponse, message: &str) {
        self.send(DeltaDiscoveryRequest {
            type_url: resp.type_url.clone(),
            response_nonce: resp.nonce.clone(),
            error_detail: Some(RpcStatus {
                code: 3,
                message: message.to_string(),
                details: vec![],
            }),
            ..Default::default()
        });
    }

    fn send(&mut self, mut req: DeltaDiscoveryRequest) {
        req.node = self.node.take();
        self.tx.send(req).expect("stream open");
    }

    async fn recv(&mut self) -> DeltaDiscoveryResponse {
        match tokio::time::timeout(WAIT, self.responses.message()).await {
            Ok(Ok(Some(resp))) => resp,
            Ok(other) => panic!("expected a response, got {other:?}"),
            Err(_) => panic!("no response within {WAIT:?}"),
        }
    }

    async fn recv_type(&mut self, ty: ResourceType) -> DeltaDiscoveryResponse {
        let resp = self.recv().await;
        assert_eq!(ty_of(&resp.type_url), ty, "response type ({resp:?})");
        resp
    }

    async fn expect_quiet(&mut self) {
        if let Ok(msg) = tokio::time::timeout(QUIET, self.responses.message()).await {
            panic!("expected nothing, got {msg:?}");
        }
    }
}

/// A SotW proxy that went through Envoy's start-up sequence and ACKed everything.
async fn sotw_synced(
    h: &Harness,
    spec: &Spec,
) -> (SotwEnvoy, BTreeMap<ResourceType, DiscoveryResponse>) {
    let mut envoy = h.sotw(mk_node("envoy-1", "default/gw")).await;
    let mut last = BTreeMap::new();
    let clusters: Vec<&str> = spec.clusters.iter().map(|(n, _)| n.as_str()).collect();
    let routes: Vec<&str> = spec.routes.iter().map(|(n, _)| n.as_str()).collect();

    envoy.request(CDS, &[], "", "");
    let cds = envoy.recv_type(CDS).await;
    envoy.ack(&cds, &[]);
    envoy.request(EDS, &clusters, "", "");
    let eds = envoy.recv_type(EDS).await;
    envoy.ack(&eds, &clusters);
    envoy.request(LDS, &[], "", "");
    let lds = envoy.recv_type(LDS).await;
    envoy.ack(&lds, &[]);
    envoy.request(RDS, &routes, "", "");
    let rds = envoy.recv_type(RDS).await;
    envoy.ack(&rds, &routes);
    envoy.expect_quiet().await;
    last.extend([(CDS, cds), (EDS, eds), (LDS, lds), (RDS, rds)]);
    (envoy, last)
}

fn spec_v1() -> Spec {
    mk_spec()
        .cluster("a", 1)
        .cluster("b", 1)
        .route("r1", &["a", "b"])
}

// === State of the world ===

#[tokio::test]
async fn sotw_serves_wildcard_clusters_and_listeners_and_named_endpoints_and_routes() {
    let h = start().await;
    h.publish("gw", &spec_v1().route("r2", &["a"]));
    let mut envoy = h.sotw(mk_node("envoy-1", "default/gw")).await;

    envoy.request(CDS, &[], "", "");
    let cds = envoy.recv_type(CDS).await;
    assert_eq!(names(&cds), ["a", "b"]);
    envoy.ack(&cds, &[]);
    envoy.request(EDS, &["a"], "", "");
    let eds = envoy.recv_type(EDS).await;
    assert_eq!(names(&eds), ["a"], "only the endpoints asked for");
    envoy.ack(&eds, &["a"]);
    envoy.request(LDS, &[], "", "");
    // Listeners wait until the proxy asks for the endpoints of every cluster it took.
    envoy.expect_quiet().await;
    envoy.ack(&eds, &["a", "b"]);
    let eds = envoy.recv_type(EDS).await;
    assert_eq!(names(&eds), ["a", "b"]);
    envoy.ack(&eds, &["a", "b"]);
    let lds = envoy.recv_type(LDS).await;
    assert_eq!(names(&lds), ["l_r1", "l_r2"]);
    envoy.ack(&lds, &[]);
    envoy.request(RDS, &["r2"], "", "");
    let rds = envoy.recv_type(RDS).await;
    assert_eq!(names(&rds), ["r2"]);
    assert_ne!(cds.nonce, eds.nonce);
    envoy.ack(&rds, &["r2"]);
    envoy.expect_quiet().await;
}

#[tokio::test]
async fn sotw_ack_stops_pushes_and_republishing_the_same_content_sends_nothing() {
    let h = start().await;
    h.publish("gw", &spec_v1());
    let (mut envoy, _) = sotw_synced(&h, &spec_v1()).await;
    h.publish("gw", &spec_v1());
    envoy.expect_quiet().await;
    let pushes = h.server.metrics().snapshot().pushes;
    assert_eq!(pushes.values().sum::<u64>(), 4);
}

#[tokio::test]
async fn sotw_new_snapshot_is_pushed_in_make_before_break_order() {
    let h = start().await;
    h.publish("gw", &spec_v1());
    let (mut envoy, last) = sotw_synced(&h, &spec_v1()).await;

    // Everything changes: a new cluster the listener's new route uses.
    let v2 = mk_spec()
        .cluster("a", 2)
        .cluster("b", 2)
        .cluster("c", 2)
        .route("r1", &["a", "b", "c"])
        .route("r2", &["c"]);
    h.publish("gw", &v2);
    let cds = envoy.recv_type(CDS).await;
    assert_eq!(names(&cds), ["a", "b", "c"]);
    assert_ne!(cds.version_info, last[&CDS].version_info);
    let eds = envoy.recv_type(EDS).await;
    assert_eq!(names(&eds), ["a", "b"], "endpoints asked for so far");
    // Listeners and routes wait: the proxy has not taken cluster c yet.
    envoy.expect_quiet().await;
    envoy.ack(&cds, &[]);
    envoy.ack(&eds, &["a", "b"]);
    // Nor asked for c's endpoints: a route to c would find no cluster while c warms.
    envoy.expect_quiet().await;
    envoy.ack(&eds, &["a", "b", "c"]);
    // c's endpoints, then (the stream keeps this order) what uses c.
    let eds = envoy.recv().await;
    assert_eq!(ty_of(&eds.type_url), EDS);
    assert_eq!(names(&eds), ["a", "b", "c"]);
    let lds = envoy.recv_type(LDS).await;
    assert_eq!(names(&lds), ["l_r1", "l_r2"]);
    let rds = envoy.recv_type(RDS).await;
    assert_eq!(names(&rds), ["r1"]);
    // Envoy asks for the new listener's route.
    envoy.ack(&lds, &[]);
    envoy.ack(&eds, &["a", "b", "c"]);
    envoy.ack(&rds, &["r1", "r2"]);
    let rds = envoy.recv_type(RDS).await;
    assert_eq!(names(&rds), ["r1", "r2"]);
    envoy.ack(&rds, &["r1", "r2"]);
    envoy.expect_quiet().await;
}

/// A Gateway served by scoped routes: cluster `a`, one scope per host `s/<host>` naming
/// the route configuration of the same name.
fn scoped_spec(generation: i64, hosts: &[&str]) -> Spec {
    let mut spec = mk_spec().cluster("a", generation);
    for h in hosts {
        spec = spec.route(format!("s/{h}"), &["a"]).scope(format!("s/{h}"));
    }
    spec
}

#[tokio::test]
async fn sotw_scopes_are_a_wildcard_type_that_waits_for_clusters_like_routes() {
    let h = start().await;
    h.publish("gw", &scoped_spec(1, &["a.example"]));
    let mut envoy = h.sotw(mk_node("envoy-1", "default/gw")).await;
    envoy.request(CDS, &[], "", "");
    let cds = envoy.recv_type(CDS).await;
    envoy.ack(&cds, &[]);
    envoy.request(EDS, &["a"], "", "");
    let eds = envoy.recv_type(EDS).await;
    envoy.ack(&eds, &["a"]);
    // Envoy asks for every scope (an empty list), then the routes they name.
    envoy.request(SRDS, &[], "", "");
    let srds = envoy.recv_type(SRDS).await;
    assert_eq!(names(&srds), ["s/a.example"]);
    envoy.ack(&srds, &[]);
    envoy.request(RDS, &["s/a.example"], "", "");
    let rds = envoy.recv_type(RDS).await;
    assert_eq!(names(&rds), ["s/a.example"]);
    envoy.ack(&rds, &["s/a.example"]);
    envoy.expect_quiet().await;

    // A new host, and a new version of the cluster: the cluster goes first, and the new
    // scope waits until the proxy has taken it.
    h.publish("gw", &scoped_spec(2, &["a.example", "b.example"]));
    let cds = envoy.recv_type(CDS).await;
    let eds = envoy.recv_type(EDS).await;
    envoy.expect_quiet().await;
    envoy.ack(&cds, &[]);
    envoy.ack(&eds, &["a"]);
    let srds = envoy.recv_type(SRDS).await;
    assert_eq!(names(&srds), ["s/a.example", "s/b.example"]);
    envoy.ack(&srds, &[]);
    envoy.request(RDS, &["s/a.example", "s/b.example"], "", &rds.nonce);
    let rds = envoy.recv_type(RDS).await;
    assert_eq!(names(&rds), ["s/a.example", "s/b.example"]);
    envoy.ack(&rds, &["s/a.example", "s/b.example"]);
    envoy.expect_quiet().await;

    // A host gone: its scope leaves the next state of the world.
    h.publish("gw", &scoped_spec(2, &["b.example"]));
    let srds = envoy.recv_type(SRDS).await;
    assert_eq!(names(&srds), ["s/b.example"]);
}

#[tokio::test]
async fn sotw_routes_go_out_when_the_proxy_rejected_the_new_clusters() {
    let h = start().await;
    h.publish("gw", &spec_v1());
    let (mut envoy, last) = sotw_synced(&h, &spec_v1()).await;

    h.publish("gw", &spec_v1().cluster("c", 1).route("r2", &["c"]));
    let cds = envoy.recv_type(CDS).await;
    assert_eq!(names(&cds), ["a", "b", "c"]);
    envoy.expect_quiet().await;
    envoy.nack(&cds, &[], &last[&CDS].version_info, "cluster c: bad config");
    // The proxy keeps its old clusters and will not ask for c's endpoints: the rest of
    // the configuration is not held back for them.
    let lds = envoy.recv_type(LDS).await;
    assert_eq!(names(&lds), ["l_r1", "l_r2"]);
}

#[tokio::test]
async fn sotw_listeners_wait_for_unacknowledged_clusters() {
    let h = start().await;
    h.publish("gw", &spec_v1());
    let (mut envoy, last) = sotw_synced(&h, &spec_v1()).await;

    // A cluster change is in flight (not yet ACKed) when the listeners change too.
    h.publish("gw", &spec_v1().cluster("c", 1));
    let cds = envoy.recv_type(CDS).await;
    assert_eq!(names(&cds), ["a", "b", "c"]);
    let v3 = mk_spec()
        .cluster("a", 1)
        .cluster("b", 1)
        .cluster("c", 2)
        .route("r1", &["a", "b"])
        .route("r3", &["c"]);
    h.publish("gw", &v3);
    envoy.expect_quiet().await;
    envoy.ack(&cds, &[]);
    let cds = envoy.recv_type(CDS).await;
    assert_eq!(names(&cds), ["a", "b", "c"]);
    envoy.expect_quiet().await;
    envoy.ack(&cds, &[]);
    // Still not until the proxy asks for c's endpoints.
    envoy.expect_quiet().await;
    envoy.ack(&last[&EDS], &["a", "b", "c"]);
    let eds = envoy.recv_type(EDS).await;
    assert_eq!(names(&eds), ["a", "b", "c"]);
    let lds = envoy.recv_type(LDS).await;
    assert_eq!(names(&lds), ["l_r1", "l_r3"]);
}

#[tokio::test]
async fn sotw_stale_clusters_are_removed_after_routes_stop_using_them() {
    let h = start().await;
    h.publish("gw", &spec_v1());
    let (mut envoy, last) = sotw_synced(&h, &spec_v1()).await;

    h.publish("gw", &mk_spec().cluster("a", 1).route("r1", &["a"]));
    // Cluster b and its endpoints stay (unchanged, so not re-sent) while the route
    // still uses it.
    let rds = envoy.recv_type(RDS).await;
    assert_eq!(names(&rds), ["r1"]);
    envoy.expect_quiet().await;
    envoy.ack(&rds, &["r1"]);
    let cds = envoy.recv_type(CDS).await;
    assert_eq!(names(&cds), ["a"]);
    assert_ne!(cds.version_info, last[&CDS].version_info);
    let eds = envoy.recv_type(EDS).await;
    assert_eq!(names(&eds), ["a"]);
    envoy.ack(&cds, &[]);
    envoy.ack(&eds, &["a"]);
    envoy.expect_quiet().await;
}

#[tokio::test]
async fn sotw_new_clusters_come_with_the_stale_ones_still_in_use_in_name_order() {
    let h = start().await;
    h.publish("gw", &spec_v1());
    let (mut envoy, last) = sotw_synced(&h, &spec_v1()).await;

    // Route r1 moves from b to c: c must arrive before the route, and b must stay
    // until the proxy has taken the route that no longer uses it.
    let next = mk_spec()
        .cluster("a", 1)
        .cluster("c", 1)
        .route("r1", &["a", "c"]);
    h.publish("gw", &next);
    let cds = envoy.recv_type(CDS).await;
    assert_eq!(names(&cds), ["a", "b", "c"]);
    envoy.ack(&cds, &[]);
    envoy.ack(&last[&EDS], &["a", "b", "c"]);
    let eds = envoy.recv_type(EDS).await;
    assert_eq!(names(&eds), ["a", "b", "c"]);
    envoy.ack(&eds, &["a", "b", "c"]);
    let rds = envoy.recv_type(RDS).await;
    envoy.ack(&rds, &["r1"]);
    let cds = envoy.recv_type(CDS).await;
    assert_eq!(names(&cds), ["a", "c"], "b goes once no route uses it");
}

#[tokio::test]
async fn sotw_nack_is_recorded_and_the_rejected_version_is_not_resent() {
    let h = start().await;
    h.publish("gw", &spec_v1());
    let (mut envoy, last) = sotw_synced(&h, &spec_v1()).await;

    h.publish("gw", &spec_v1().route("bad", &["a"]));
    let lds = envoy.recv_type(LDS).await;
    envoy.nack(
        &lds,
        &[],
        &last[&LDS].version_info,
        "listener l_bad: invalid filter",
    );
    envoy.expect_quiet().await;

    let nacks = h.server.nacks().current();
    let report = &nacks[&mk_gateway("gw")][&LDS];
    assert_eq!(report.node, "envoy-1");
    assert_eq!(report.version, lds.version_info);
    assert_eq!(report.resource_names, ["l_bad", "l_r1"]);
    assert_eq!(report.message, "listener l_bad: invalid filter");
    assert_eq!(h.server.metrics().snapshot().nacks[&LDS], 1);

    // Publishing it again changes nothing; the next change is sent.
    h.publish("gw", &spec_v1().route("bad", &["a"]));
    envoy.expect_quiet().await;
    h.publish("gw", &spec_v1().route("good", &["a"]));
    let lds = envoy.recv_type(LDS).await;
    assert_eq!(names(&lds), ["l_good", "l_r1"]);
    envoy.ack(&lds, &[]);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(
        h.server.nacks().current().is_empty(),
        "an ACK resolves the NACK"
    );
}

#[tokio::test]
async fn sotw_stale_nonce_is_ignored() {
    let h = start().await;
    h.publish("gw", &spec_v1().route("r2", &["a"]));
    let mut envoy = h.sotw(mk_node("envoy-1", "default/gw")).await;
    envoy.request(RDS, &["r1"], "", "");
    let first = envoy.recv_type(RDS).await;
    envoy.ack(&first, &["r1"]);
    envoy.expect_quiet().await;

    h.publish(
        "gw",
        &mk_spec()
            .cluster("a", 1)
            .cluster("b", 1)
            .cluster("c", 1)
            .route("r1", &["c"])
            .route("r2", &["a"]),
    );
    let second = envoy.recv_type(RDS).await;
    // A request answering the older response: ignored, subscription change included.
    envoy.request(RDS, &["r1", "r2"], &first.version_info, &first.nonce);
    envoy.expect_quiet().await;
    envoy.ack(&second, &["r1", "r2"]);
    let third = envoy.recv_type(RDS).await;
    assert_eq!(names(&third), ["r1", "r2"]);
}

#[tokio::test]
async fn sotw_resources_requested_before_they_exist_arrive_when_published() {
    let h = start().await;
    h.publish("gw", &spec_v1());
    let mut envoy = h.sotw(mk_node("envoy-1", "default/gw")).await;
    envoy.request(RDS, &["later"], "", "");
    envoy.expect_quiet().await;
    h.publish("gw", &spec_v1().route("later", &["a"]));
    let rds = envoy.recv_type(RDS).await;
    assert_eq!(names(&rds), ["later"]);
}

#[tokio::test]
async fn sotw_secrets_are_served_by_name() {
    let h = start().await;
    h.publish(
        "gw",
        &spec_v1().secret("secret_default_cert").secret("other"),
    );
    let mut envoy = h.sotw(mk_node("envoy-1", "default/gw")).await;
    envoy.request(ResourceType::Secret, &["secret_default_cert"], "", "");
    let sds = envoy.recv_type(ResourceType::Secret).await;
    assert_eq!(names(&sds), ["secret_default_cert"]);
}

#[tokio::test]
async fn requests_for_types_we_do_not_serve_are_ignored_and_the_stream_goes_on() {
    let h = start().await;
    h.publish("gw", &spec_v1());
    let mut envoy = h.sotw(mk_node("envoy-1", "default/gw")).await;
    envoy.send(DiscoveryRequest {
        type_url: "type.googleapis.com/envoy.config.route.v3.VirtualHost".into(),
        ..Default::default()
    });
    envoy.expect_quiet().await;
    envoy.request(CDS, &[], "", "");
    assert_eq!(names(&envoy.recv_type(CDS).await), ["a", "b"]);
}

#[tokio::test]
async fn unknown_gateway_gets_nothing_until_it_is_published() {
    let h = start().await;
    h.publish("gw", &spec_v1());
    let mut envoy = h.sotw(mk_node("envoy-1", "default/nope")).await;
    envoy.request(CDS, &[], "", "");
    envoy.expect_quiet().await;
    h.publish("nope", &mk_spec().cluster("z", 1));
    let cds = envoy.recv_type(CDS).await;
    assert_eq!(names(&cds), ["z"]);
}

#[tokio::test]
async fn node_without_a_gateway_is_refused_with_invalid_argument() {
    let h = start().await;
    for node in [
        Node {
            id: "anonymous".into(),
            ..Default::default()
        },
        mk_node("bad", "no-slash"),
        mk_node("bad", "a/b/c"),
    ] {
        let mut envoy = h.sotw(node).await;
        envoy.request(CDS, &[], "", "");
        let status = tokio::time::timeout(WAIT, envoy.responses.message())
            .await
            .expect("answered")
            .expect_err("refused");
        assert_eq!(status.code(), tonic::Code::InvalidArgument);
        assert!(status.message().contains(GATEWAY_METADATA_KEY), "{status}");
    }
}

#[tokio::test]
async fn removed_gateway_gets_an_empty_snapshot() {
    let h = start().await;
    let gateways: BTreeMap<_, _> = [(mk_gateway("gw"), spec_v1().resources())].into();
    h.cache.publish_all(&gateways);
    let mut envoy = h.sotw(mk_node("envoy-1", "default/gw")).await;
    envoy.request(LDS, &[], "", "");
    let lds = envoy.recv_type(LDS).await;
    assert_eq!(names(&lds), ["l_r1"]);
    envoy.ack(&lds, &[]);
    h.cache.publish_all(&BTreeMap::new());
    let lds = envoy.recv_type(LDS).await;
    assert!(lds.resources.is_empty(), "the listener drains");
}

#[tokio::test]
async fn two_proxies_of_one_gateway_share_its_snapshot() {
    let h = start().await;
    h.publish("gw", &spec_v1());
    let mut one = h.sotw(mk_node("envoy-1", "default/gw")).await;
    let mut two = h.delta(mk_node("envoy-2", "default/gw")).await;
    one.request(CDS, &[], "", "");
    two.subscribe(CDS, &[], &[], "");
    let cds_one = one.recv_type(CDS).await;
    let cds_two = two.recv_type(CDS).await;
    assert_eq!(names(&cds_one), delta_names(&cds_two));
    let connected = h.server.metrics().snapshot().connected;
    assert_eq!(connected[&mk_gateway("gw")], 2);

    one.ack(&cds_one, &[]);
    two.ack(&cds_two);
    h.publish("gw", &spec_v1().cluster("c", 1));
    assert_eq!(names(&one.recv_type(CDS).await), ["a", "b", "c"]);
    assert_eq!(delta_names(&two.recv_type(CDS).await), ["c"]);

    drop(one);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        h.server.metrics().snapshot().connected[&mk_gateway("gw")],
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishing_never_waits_for_slow_proxies() {
    let h = start().await;
    // `publish` is a plain function that swaps a value and wakes tasks: it cannot wait
    // for a stream. This checks it stays so with many streams that never read or ACK.
    let mut big = mk_spec();
    for i in 0..20 {
        big = big.cluster(format!("cluster-{i:03}"), 1);
    }
    h.publish("gw", &big);
    let mut slow = Vec::new();
    for i in 0..50 {
        let mut envoy = h.sotw(mk_node(format!("slow-{i}"), "default/gw")).await;
        envoy.request(CDS, &[], "", "");
        slow.push(envoy); // never reads, never ACKs
    }
    tokio::time::sleep(Duration::from_millis(200)).await;

    let snapshots: Vec<Snapshot> = (2..1002)
        .map(|generation| {
            let mut spec = big.clone();
            spec.clusters[0].1 = generation;
            spec.snapshot()
        })
        .collect();
    let started = Instant::now();
    for snapshot in snapshots {
        h.cache.publish(mk_gateway("gw"), snapshot);
    }
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(2),
        "1,000 publishes took {took:?}"
    );

    // A fresh proxy still gets the latest snapshot at once.
    let mut fresh = h.sotw(mk_node("fresh", "default/gw")).await;
    fresh.request(CDS, &[], "", "");
    let cds = fresh.recv_type(CDS).await;
    let first = Cluster::decode(cds.resources[0].value.as_slice()).unwrap();
    assert_eq!(first.connect_timeout.unwrap().seconds, 1001);
    drop(slow);
}

#[tokio::test]
async fn shutdown_ends_streams_and_the_server() {
    let mut h = start().await;
    h.publish("gw", &spec_v1());
    let mut envoy = h.sotw(mk_node("envoy-1", "default/gw")).await;
    envoy.request(CDS, &[], "", "");
    envoy.recv_type(CDS).await;
    let _ = h.shutdown_tx.take().unwrap().send(());
    let end = tokio::time::timeout(WAIT, envoy.responses.message())
        .await
        .expect("the stream ends");
    assert!(matches!(end, Ok(None) | Err(_)), "{end:?}");
    tokio::time::timeout(WAIT, &mut h.serving)
        .await
        .expect("the server stops")
        .unwrap()
        .unwrap();
}

// === Delta ===

#[tokio::test]
async fn delta_serves_wildcard_and_named_subscriptions() {
    let h = start().await;
    h.publish("gw", &spec_v1().route("r2", &["a"]));
    let mut envoy = h.delta(mk_node("envoy-1", "default/gw")).await;
    envoy.subscribe(CDS, &[], &[], "");
    let cds = envoy.recv_type(CDS).await;
    assert_eq!(delta_names(&cds), ["a", "b"]);
    assert!(cds.resources.iter().all(|r| !r.version.is_empty()));
    envoy.ack(&cds);
    envoy.subscribe(EDS, &["a"], &[], "");
    let eds = envoy.recv_type(EDS).await;
    assert_eq!(delta_names(&eds), ["a"]);
    envoy.ack(&eds);
    envoy.subscribe(LDS, &["*"], &[], "");
    // Listeners wait until the proxy asks for the endpoints of every cluster it took.
    envoy.expect_quiet().await;
    envoy.subscribe(EDS, &["b"], &[], "");
    let eds = envoy.recv_type(EDS).await;
    assert_eq!(delta_names(&eds), ["b"]);
    envoy.ack(&eds);
    let lds = envoy.recv_type(LDS).await;
    assert_eq!(delta_names(&lds), ["l_r1", "l_r2"]);
    envoy.ack(&lds);
    envoy.subscribe(RDS, &["r2"], &[], "");
    let rds = envoy.recv_type(RDS).await;
    assert_eq!(delta_names(&rds), ["r2"]);
    envoy.ack(&rds);
    envoy.expect_quiet().await;

    // Subscribing to more sends only what is new.
    envoy.subscribe(RDS, &["r1"], &[], &rds.nonce);
    let rds = envoy.recv_type(RDS).await;
    assert_eq!(delta_names(&rds), ["r1"]);
}

#[tokio::test]
async fn delta_scopes_are_sent_by_change_and_removed_by_name() {
    let h = start().await;
    h.publish("gw", &scoped_spec(1, &["a.example", "b.example"]));
    let mut envoy = h.delta(mk_node("envoy-1", "default/gw")).await;
    envoy.subscribe(CDS, &[], &[], "");
    let cds = envoy.recv_type(CDS).await;
    envoy.ack(&cds);
    envoy.subscribe(EDS, &["a"], &[], "");
    let eds = envoy.recv_type(EDS).await;
    envoy.ack(&eds);
    envoy.subscribe(SRDS, &[], &[], "");
    let srds = envoy.recv_type(SRDS).await;
    assert_eq!(delta_names(&srds), ["s/a.example", "s/b.example"]);
    envoy.ack(&srds);
    envoy.expect_quiet().await;

    // One host added and one removed: only those two, not the host that stayed.
    h.publish("gw", &scoped_spec(1, &["b.example", "c.example"]));
    let srds = envoy.recv_type(SRDS).await;
    assert_eq!(delta_names(&srds), ["s/c.example"]);
    assert_eq!(srds.removed_resources, ["s/a.example"]);
    envoy.ack(&srds);
    envoy.expect_quiet().await;
}

#[tokio::test]
async fn delta_sends_changes_and_removals_only() {
    let h = start().await;
    h.publish("gw", &spec_v1());
    let mut envoy = h.delta(mk_node("envoy-1", "default/gw")).await;
    envoy.subscribe(CDS, &[], &[], "");
    let cds = envoy.recv_type(CDS).await;
    envoy.ack(&cds);
    envoy.expect_quiet().await;

    h.publish("gw", &mk_spec().cluster("a", 2).cluster("c", 1));
    let cds = envoy.recv_type(CDS).await;
    assert_eq!(delta_names(&cds), ["a", "c"]);
    assert_eq!(cds.removed_resources, ["b"]);
    envoy.ack(&cds);
    envoy.expect_quiet().await;
}

#[tokio::test]
async fn delta_reconnect_with_initial_resource_versions_resends_only_changes() {
    let h = start().await;
    h.publish("gw", &spec_v1());
    let mut envoy = h.delta(mk_node("envoy-1", "default/gw")).await;
    envoy.subscribe(CDS, &[], &[], "");
    let cds = envoy.recv_type(CDS).await;
    let held: std::collections::HashMap<String, String> = cds
        .resources
        .iter()
        .map(|r| (r.name.clone(), r.version.clone()))
        .collect();
    envoy.ack(&cds);
    drop(envoy);

    // While it was away: a changed, b removed, c added.
    h.publish("gw", &mk_spec().cluster("a", 2).cluster("c", 1));
    let mut envoy = h.delta(mk_node("envoy-1", "default/gw")).await;
    envoy.send(DeltaDiscoveryRequest {
        type_url: CDS.type_url().into(),
        initial_resource_versions: held.clone(),
        ..Default::default()
    });
    let cds = envoy.recv_type(CDS).await;
    assert_eq!(delta_names(&cds), ["a", "c"]);
    assert_eq!(cds.removed_resources, ["b"]);

    // Nothing changed at all: an empty answer for the wildcard, nothing re-sent.
    let held: std::collections::HashMap<String, String> = h
        .cache
        .get(&mk_gateway("gw"))
        .unwrap()
        .resources(CDS)
        .iter()
        .map(|r| (r.name.clone(), r.version.clone()))
        .collect();
    let mut envoy = h.delta(mk_node("envoy-1", "default/gw")).await;
    envoy.send(DeltaDiscoveryRequest {
        type_url: CDS.type_url().into(),
        initial_resource_versions: held,
        ..Default::default()
    });
    let cds = envoy.recv_type(CDS).await;
    assert!(cds.resources.is_empty() && cds.removed_resources.is_empty());
}

#[tokio::test]
async fn delta_stale_nonce_still_changes_subscriptions() {
    let h = start().await;
    h.publish("gw", &spec_v1().route("r2", &["a"]));
    let mut envoy = h.delta(mk_node("envoy-1", "default/gw")).await;
    envoy.subscribe(RDS, &["r1"], &[], "");
    let first = envoy.recv_type(RDS).await;
    envoy.ack(&first);
    h.publish(
        "gw",
        &mk_spec()
            .cluster("a", 1)
            .cluster("b", 1)
            .cluster("c", 1)
            .route("r1", &["c"])
            .route("r2", &["a"]),
    );
    let second = envoy.recv_type(RDS).await;
    assert_eq!(delta_names(&second), ["r1"]);
    // Answers the older response: not an ACK of `second`, but the subscription counts.
    envoy.subscribe(RDS, &["r2"], &[], &first.nonce);
    envoy.expect_quiet().await;
    envoy.ack(&second);
    let third = envoy.recv_type(RDS).await;
    assert_eq!(delta_names(&third), ["r2"]);
    envoy.ack(&third);
    // Unsubscribing drops it without a removal.
    envoy.subscribe(RDS, &[], &["r2"], &third.nonce);
    envoy.expect_quiet().await;
}

#[tokio::test]
async fn delta_named_subscription_in_sync_gets_only_its_own_changes_and_removals() {
    let h = start().await;
    let routes = |names: &[&str]| {
        names
            .iter()
            .fold(mk_spec().cluster("a", 1).cluster("b", 1), |spec, name| {
                spec.route(*name, &["a"])
            })
    };
    h.publish("gw", &routes(&["r1", "r2"]));
    let mut envoy = h.delta(mk_node("envoy-1", "default/gw")).await;
    envoy.subscribe(RDS, &["r1", "r2"], &[], "");
    let rds = envoy.recv_type(RDS).await;
    assert_eq!(delta_names(&rds), ["r1", "r2"]);
    envoy.ack(&rds);
    envoy.expect_quiet().await;

    // In sync: r1 changes and r3 (not subscribed) appears; only r1 is sent.
    h.publish(
        "gw",
        &mk_spec()
            .cluster("a", 1)
            .cluster("b", 1)
            .route("r1", &["b"])
            .route("r2", &["a"])
            .route("r3", &["a"]),
    );
    let rds = envoy.recv_type(RDS).await;
    assert_eq!(delta_names(&rds), ["r1"]);
    assert!(rds.removed_resources.is_empty());
    envoy.ack(&rds);
    // Unsubscribed, r2 leaves without a removal; r1, still subscribed, is removed.
    envoy.subscribe(RDS, &[], &["r2"], &rds.nonce);
    envoy.expect_quiet().await;
    h.publish("gw", &routes(&["r3"]));
    let rds = envoy.recv_type(RDS).await;
    assert!(rds.resources.is_empty());
    assert_eq!(rds.removed_resources, ["r1"]);
    envoy.ack(&rds);
    // Subscribing again to r2, which no longer exists: reported removed once.
    envoy.subscribe(RDS, &["r2", "r3"], &[], &rds.nonce);
    let rds = envoy.recv_type(RDS).await;
    assert_eq!(delta_names(&rds), ["r3"]);
    assert_eq!(rds.removed_resources, ["r2"]);
    envoy.ack(&rds);
    envoy.expect_quiet().await;
}

#[tokio::test]
async fn delta_stream_in_sync_that_subscribes_to_more_gets_just_those() {
    // A proxy subscribes to each new cluster's endpoints one name at a time.
    let h = start().await;
    let spec = |gen_a| {
        mk_spec()
            .cluster("a", gen_a)
            .cluster("b", 1)
            .cluster("c", 1)
            .route("r1", &["a"])
    };
    h.publish("gw", &spec(1));
    let mut envoy = h.delta(mk_node("envoy-1", "default/gw")).await;
    envoy.subscribe(EDS, &["a"], &[], "");
    let eds = envoy.recv_type(EDS).await;
    assert_eq!(delta_names(&eds), ["a"]);
    envoy.ack(&eds);
    envoy.subscribe(EDS, &["b"], &[], &eds.nonce);
    let eds = envoy.recv_type(EDS).await;
    assert_eq!(delta_names(&eds), ["b"]);
    assert!(eds.removed_resources.is_empty());
    envoy.ack(&eds);
    // One that exists and one that does not: the first sent, the second reported.
    envoy.subscribe(EDS, &["c", "ghost"], &[], &eds.nonce);
    let eds = envoy.recv_type(EDS).await;
    assert_eq!(delta_names(&eds), ["c"]);
    assert_eq!(eds.removed_resources, ["ghost"]);
    envoy.ack(&eds);
    envoy.expect_quiet().await;
    // Still in sync: a change of one is sent alone; unsubscribed ones are not sent.
    envoy.subscribe(EDS, &[], &["b"], &eds.nonce);
    h.publish("gw", &spec(2));
    let eds = envoy.recv_type(EDS).await;
    assert_eq!(delta_names(&eds), ["a"]);
    assert!(eds.removed_resources.is_empty());
    envoy.ack(&eds);
    envoy.expect_quiet().await;
}

#[tokio::test]
async fn delta_resources_requested_before_they_exist_arrive_when_published() {
    let h = start().await;
    h.publish("gw", &spec_v1());
    let mut envoy = h.delta(mk_node("envoy-1", "default/gw")).await;
    envoy.subscribe(EDS, &["later"], &[], "");
    // "Does not exist", once, so the proxy stops waiting.
    let eds = envoy.recv_type(EDS).await;
    assert!(eds.resources.is_empty());
    assert_eq!(eds.removed_resources, ["later"]);
    envoy.ack(&eds);
    envoy.expect_quiet().await;
    h.publish("gw", &spec_v1().cluster("later", 1));
    let eds = envoy.recv_type(EDS).await;
    assert_eq!(delta_names(&eds), ["later"]);
    assert!(eds.removed_resources.is_empty());
}

#[tokio::test]
async fn delta_subscribed_names_that_do_not_exist_are_reported_removed_once() {
    let h = start().await;
    h.publish("gw", &spec_v1());
    let mut envoy = h.delta(mk_node("envoy-1", "default/gw")).await;
    envoy.subscribe(EDS, &["a", "ghost"], &[], "");
    let eds = envoy.recv_type(EDS).await;
    assert_eq!(delta_names(&eds), ["a"]);
    assert_eq!(eds.removed_resources, ["ghost"]);
    envoy.ack(&eds);
    // An unrelated change does not repeat it.
    let mut changed = spec_v1();
    changed.clusters[0].1 = 2;
    h.publish("gw", &changed);
    let eds = envoy.recv_type(EDS).await;
    assert_eq!(delta_names(&eds), ["a"]);
    assert!(eds.removed_resources.is_empty(), "{eds:?}");
    envoy.ack(&eds);
    envoy.expect_quiet().await;
    // A name that existed and went away is removed, and not reported again after.
    h.publish("gw", &mk_spec().cluster("b", 2).route("r1", &["b"]));
    let eds = envoy.recv_type(EDS).await;
    assert_eq!(eds.removed_resources, ["a"]);
    envoy.ack(&eds);
    envoy.expect_quiet().await;
    // Unsubscribing and subscribing again asks again, and is answered again.
    envoy.subscribe(EDS, &[], &["ghost"], &eds.nonce);
    envoy.expect_quiet().await;
    envoy.subscribe(EDS, &["ghost"], &[], &eds.nonce);
    let eds = envoy.recv_type(EDS).await;
    assert_eq!(eds.removed_resources, ["ghost"]);
}

#[tokio::test]
async fn delta_routes_of_a_listener_that_names_a_missing_route_do_not_hang() {
    // Envoy's RDS subscription for a route configuration translation did not produce
    // is answered with "does not exist" rather than left waiting.
    let h = start().await;
    h.publish("gw", &spec_v1());
    let mut envoy = h.delta(mk_node("envoy-1", "default/gw")).await;
    envoy.subscribe(RDS, &["r1", "missing"], &[], "");
    let rds = envoy.recv_type(RDS).await;
    assert_eq!(delta_names(&rds), ["r1"]);
    assert_eq!(rds.removed_resources, ["missing"]);
}

#[tokio::test]
async fn delta_nack_is_recorded_and_not_resent() {
    let h = start().await;
    h.publish("gw", &spec_v1());
    let mut envoy = h.delta(mk_node("envoy-1", "default/gw")).await;
    envoy.subscribe(LDS, &[], &[], "");
    let lds = envoy.recv_type(LDS).await;
    envoy.ack(&lds);
    h.publish("gw", &spec_v1().route("bad", &["a"]));
    let lds = envoy.recv_type(LDS).await;
    assert_eq!(delta_names(&lds), ["l_bad"]);
    envoy.nack(&lds, "bad listener");
    envoy.expect_quiet().await;
    let nacks = h.server.nacks().current();
    let report = &nacks[&mk_gateway("gw")][&LDS];
    assert_eq!(report.resource_names, ["l_bad"]);
    assert_eq!(report.message, "bad listener");
    assert_eq!(report.version, lds.system_version_info);

    h.publish("gw", &spec_v1().route("bad", &["a"]).route("good", &["a"]));
    let lds = envoy.recv_type(LDS).await;
    assert_eq!(delta_names(&lds), ["l_good"], "l_bad is not re-sent");
}

#[tokio::test]
async fn delta_stale_clusters_are_removed_after_routes_stop_using_them() {
    let h = start().await;
    h.publish("gw", &spec_v1());
    let mut envoy = h.delta(mk_node("envoy-1", "default/gw")).await;
    for (ty, names) in [
        (CDS, vec![]),
        (EDS, vec!["a", "b"]),
        (LDS, vec![]),
        (RDS, vec!["r1"]),
    ] {
        envoy.subscribe(ty, &names, &[], "");
        let resp = envoy.recv_type(ty).await;
        envoy.ack(&resp);
    }
    envoy.expect_quiet().await;

    h.publish("gw", &mk_spec().cluster("a", 1).route("r1", &["a"]));
    let rds = envoy.recv_type(RDS).await;
    assert_eq!(delta_names(&rds), ["r1"]);
    envoy.expect_quiet().await;
    envoy.ack(&rds);
    let cds = envoy.recv_type(CDS).await;
    assert!(cds.resources.is_empty());
    assert_eq!(cds.removed_resources, ["b"]);
    let eds = envoy.recv_type(EDS).await;
    assert!(eds.resources.is_empty());
    assert_eq!(eds.removed_resources, ["b"]);
}

// === Identity and bind addresses ===

fn mk_bound_node(id: &str, gateway: &str, bind: &str) -> Node {
    let mut node = mk_node(id, gateway);
    node.metadata.as_mut().unwrap().fields.insert(
        BIND_ADDRESS_METADATA_KEY.to_string(),
        Value {
            kind: Some(value::Kind::StringValue(bind.to_string())),
        },
    );
    node
}

/// `spec`'s resources with every listener on 0.0.0.0:`port`.
fn with_port(spec: &Spec, port: u32) -> GatewayResources {
    use envoy_types::pb::envoy::config::core::v3::{
        Address, SocketAddress, address, socket_address,
    };
    let mut resources = spec.resources();
    for l in &mut resources.listeners {
        Arc::make_mut(l).address = Some(Address {
            address: Some(address::Address::SocketAddress(SocketAddress {
                address: "0.0.0.0".into(),
                port_specifier: Some(socket_address::PortSpecifier::PortValue(port)),
                ..Default::default()
            })),
        });
    }
    resources
}

fn listener_address(any: &Any) -> (String, u32) {
    use envoy_types::pb::envoy::config::core::v3::{address, socket_address};
    let listener = Listener::decode(any.value.as_slice()).unwrap();
    match listener.address.and_then(|a| a.address) {
        Some(address::Address::SocketAddress(s)) => match s.port_specifier {
            Some(socket_address::PortSpecifier::PortValue(p)) => (s.address, p),
            other => panic!("no port: {other:?}"),
        },
        other => panic!("no socket address: {other:?}"),
    }
}

#[tokio::test]
async fn proxies_naming_a_bind_address_get_listeners_bound_there() {
    let h = start().await;
    h.cache.publish(
        mk_gateway("gw"),
        Snapshot::from_resources(&with_port(&spec_v1(), 8080)),
    );
    let mut plain = h.sotw(mk_node("plain", "default/gw")).await;
    let mut bound = h
        .sotw(mk_bound_node("bound", "default/gw", "127.0.0.2"))
        .await;
    let mut delta = h
        .delta(mk_bound_node("delta", "default/gw", "127.0.0.3"))
        .await;
    plain.request(LDS, &[], "", "");
    bound.request(LDS, &[], "", "");
    delta.subscribe(LDS, &[], &[], "");
    let lds = plain.recv_type(LDS).await;
    assert_eq!(
        listener_address(&lds.resources[0]),
        ("0.0.0.0".into(), 8080)
    );
    let lds = bound.recv_type(LDS).await;
    assert_eq!(
        listener_address(&lds.resources[0]),
        ("127.0.0.2".into(), 8080)
    );
    bound.ack(&lds, &[]);
    let dlds = delta.recv_type(LDS).await;
    let body = dlds.resources[0].resource.as_ref().unwrap();
    assert_eq!(listener_address(body), ("127.0.0.3".into(), 8080));
    delta.ack(&dlds);

    // A change of listeners reaches the bound proxies rebound too.
    h.cache.publish(
        mk_gateway("gw"),
        Snapshot::from_resources(&with_port(&spec_v1(), 9090)),
    );
    let lds = bound.recv_type(LDS).await;
    assert_eq!(
        listener_address(&lds.resources[0]),
        ("127.0.0.2".into(), 9090)
    );
    let dlds = delta.recv_type(LDS).await;
    let body = dlds.resources[0].resource.as_ref().unwrap();
    assert_eq!(listener_address(body), ("127.0.0.3".into(), 9090));
}

#[test]
fn rebound_listeners_are_encoded_once_per_address_and_listener_set() {
    use crate::xds::bind::Binder;
    let binder = Binder::default();
    let gw = mk_gateway("gw");
    let at = |ip: &str| Some(ip.parse::<std::net::IpAddr>().unwrap());
    let v1 = Arc::new(Snapshot::from_resources(&with_port(&spec_v1(), 80)));
    for _ in 0..3 {
        // Three streams at the same address share one encoding.
        let view = binder.view(&gw, at("127.0.0.2"), Some(v1.clone())).unwrap();
        let l = view.resources(LDS).get("l_r1").unwrap().clone();
        assert_eq!(listener_address(&l.body()), ("127.0.0.2".into(), 80));
    }
    assert_eq!(binder.encodes(), 1);
    binder.view(&gw, at("127.0.0.3"), Some(v1.clone()));
    assert_eq!(binder.encodes(), 2);
    // Without an address nothing is encoded: the snapshot is served as it is.
    let view = binder.view(&gw, None, Some(v1.clone())).unwrap();
    assert!(Arc::ptr_eq(
        view.resources(LDS).get("l_r1").unwrap(),
        v1.resources(LDS).get("l_r1").unwrap()
    ));
    assert_eq!(binder.encodes(), 2);
    // A snapshot whose listeners did not change reuses the encoding.
    let mut spec = spec_v1();
    spec.clusters[0].1 = 7;
    let v2 = Arc::new(Snapshot::from_resources(&with_port(&spec, 80)));
    assert_ne!(v1.version(), v2.version());
    binder.view(&gw, at("127.0.0.2"), Some(v2));
    assert_eq!(binder.encodes(), 2);
    // A new listener set is encoded again.
    let v3 = Arc::new(Snapshot::from_resources(&with_port(&spec_v1(), 81)));
    binder.view(&gw, at("127.0.0.2"), Some(v3));
    assert_eq!(binder.encodes(), 3);
}

#[tokio::test]
async fn a_bind_address_that_is_not_an_ip_is_refused_with_invalid_argument() {
    let h = start().await;
    h.publish("gw", &spec_v1());
    let mut envoy = h
        .sotw(mk_bound_node("bad", "default/gw", "localhost"))
        .await;
    envoy.request(CDS, &[], "", "");
    let status = tokio::time::timeout(WAIT, envoy.responses.message())
        .await
        .expect("answered")
        .expect_err("refused");
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert!(
        status.message().contains(BIND_ADDRESS_METADATA_KEY),
        "{status}"
    );
}

#[tokio::test]
async fn node_identity_is_read_from_the_first_request_only() {
    let h = start().await;
    h.publish("gw", &spec_v1());
    h.publish("other", &mk_spec().cluster("z", 1));
    let mut envoy = h.sotw(mk_node("envoy-1", "default/gw")).await;
    envoy.request(CDS, &[], "", "");
    let cds = envoy.recv_type(CDS).await;
    assert_eq!(names(&cds), ["a", "b"]);
    // A later request naming another Gateway changes nothing.
    envoy.node = Some(mk_node("envoy-1", "default/other"));
    envoy.ack(&cds, &[]);
    envoy.request(EDS, &["a", "b"], "", "");
    let eds = envoy.recv_type(EDS).await;
    assert_eq!(names(&eds), ["a", "b"]);
    envoy.ack(&eds, &["a", "b"]);
    envoy.request(LDS, &[], "", "");
    let lds = envoy.recv_type(LDS).await;
    assert_eq!(names(&lds), ["l_r1"]);
}
