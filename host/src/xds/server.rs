//! The gRPC edge: [`AdsServer`] implements the Aggregated Discovery Service and runs one
//! task per stream that feeds a [`Sotw`] or [`Delta`] state machine from the proxy's
//! requests and its Gateway's snapshot channel (through the [`Binder`] when the proxy
//! names a bind address).

use std::future::Future;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_server::{
    AggregatedDiscoveryService, AggregatedDiscoveryServiceServer,
};
use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, DiscoveryRequest, DiscoveryResponse,
};
use envoy_types::pb::google::protobuf::value::Kind as ValueKind;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio_stream::StreamExt;
use tokio_stream::wrappers::{ReceiverStream, TcpListenerStream};
use tonic::{Request, Response, Status, Streaming};
use tracing::Instrument;

use crate::model::{Kind, ObjectKey};
use crate::xds::bind::{BIND_ADDRESS_METADATA_KEY, Binder, View};
use crate::xds::delta::Delta;
use crate::xds::sotw::Sotw;
use crate::xds::stream::StreamCtx;
use crate::xds::{NackReports, SnapshotCache, XdsError, XdsMetrics};

/// The node metadata key naming a proxy's Gateway as `NAMESPACE/NAME`.
pub const GATEWAY_METADATA_KEY: &str = "weir.gateway";

/// Responses a stream may queue before it waits for the proxy to read them.
const STREAM_BUFFER: usize = 16;

/// The ADS server. Cheap to clone; clones share the cache, NACK reports and metrics.
#[derive(Clone, Debug)]
pub struct AdsServer {
    cache: SnapshotCache,
    nacks: NackReports,
    metrics: Arc<XdsMetrics>,
    /// Listener sets rebound per Gateway and bind address, shared by their streams.
    binder: Binder,
    /// Ends every stream when it turns `true`.
    drain_rx: Option<watch::Receiver<bool>>,
}

impl AdsServer {
    /// A server answering from `cache`.
    pub fn new(cache: SnapshotCache) -> Self {
        Self {
            cache,
            nacks: NackReports::default(),
            metrics: Arc::default(),
            binder: Binder::default(),
            drain_rx: None,
        }
    }

    /// Ends every stream once `drain_rx` turns `true` (for callers that build their own
    /// tonic server with [`AdsServer::into_service`]; [`AdsServer::serve`] does this
    /// itself).
    pub fn with_drain(mut self, drain_rx: watch::Receiver<bool>) -> Self {
        self.drain_rx = Some(drain_rx);
        self
    }

    /// The NACKs proxies reported.
    pub fn nacks(&self) -> &NackReports {
        &self.nacks
    }

    /// The server's counters.
    pub fn metrics(&self) -> Arc<XdsMetrics> {
        self.metrics.clone()
    }

    /// The snapshot cache the server answers from.
    pub fn cache(&self) -> &SnapshotCache {
        &self.cache
    }

    /// The tonic service, to add to a `tonic::transport::Server`.
    pub fn into_service(self) -> AggregatedDiscoveryServiceServer<Self> {
        AggregatedDiscoveryServiceServer::new(self)
    }

    /// Serves ADS on `listener` until `shutdown` completes; then ends every stream (so
    /// proxies reconnect elsewhere) and returns once connections have closed.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), XdsError> {
        let (drain_tx, drain_rx) = watch::channel(false);
        let local = listener.local_addr().ok();
        tracing::info!(addr = ?local, "serving xDS (ADS, state of the world and delta)");
        tonic::transport::Server::builder()
            // Dead proxies are noticed, and idle streams survive middleboxes.
            .http2_keepalive_interval(Some(Duration::from_secs(30)))
            .http2_keepalive_timeout(Some(Duration::from_secs(10)))
            .serve_with_incoming_shutdown(
                self.with_drain(drain_rx).into_service(),
                TcpListenerStream::new(listener),
                async move {
                    shutdown.await;
                    tracing::info!("draining xDS streams");
                    let _ = drain_tx.send(true);
                },
            )
            .await?;
        Ok(())
    }
}

/// The proxy's `node.id` and the Gateway it names (see the module docs).
pub fn gateway_from_node(node: Option<&Node>) -> Result<(String, ObjectKey), XdsError> {
    let node = node.ok_or(XdsError::MissingNode)?;
    let value = node
        .metadata
        .as_ref()
        .and_then(|m| m.fields.get(GATEWAY_METADATA_KEY))
        .and_then(|v| v.kind.as_ref());
    let value = match value {
        Some(ValueKind::StringValue(s)) => s,
        Some(other) => {
            return Err(XdsError::BadGateway {
                node: node.id.clone(),
                value: format!("{other:?}"),
            });
        }
        None => {
            return Err(XdsError::NoGateway {
                node: node.id.clone(),
            });
        }
    };
    match value.split_once('/') {
        Some((ns, name)) if !ns.is_empty() && !name.is_empty() && !name.contains('/') => Ok((
            node.id.clone(),
            ObjectKey::namespaced(Kind::Gateway, ns, name),
        )),
        _ => Err(XdsError::BadGateway {
            node: node.id.clone(),
            value: value.clone(),
        }),
    }
}

/// The local address the proxy asked its listeners to bind (`None`: as translated).
pub fn bind_address_from_node(node: Option<&Node>) -> Result<Option<IpAddr>, XdsError> {
    let Some(node) = node else {
        return Ok(None);
    };
    let value = node
        .metadata
        .as_ref()
        .and_then(|m| m.fields.get(BIND_ADDRESS_METADATA_KEY))
        .and_then(|v| v.kind.as_ref());
    match value {
        None => Ok(None),
        Some(ValueKind::StringValue(s)) => {
            s.parse().map(Some).map_err(|_| XdsError::BadBindAddress {
                node: node.id.clone(),
                value: s.clone(),
            })
        }
        Some(other) => Err(XdsError::BadBindAddress {
            node: node.id.clone(),
            value: format!("{other:?}"),
        }),
    }
}

// === impl AggregatedDiscoveryService ===

#[tonic::async_trait]
impl AggregatedDiscoveryService for AdsServer {
    type StreamAggregatedResourcesStream = ReceiverStream<Result<DiscoveryResponse, Status>>;
    type DeltaAggregatedResourcesStream = ReceiverStream<Result<DeltaDiscoveryResponse, Status>>;

    async fn stream_aggregated_resources(
        &self,
        request: Request<Streaming<DiscoveryRequest>>,
    ) -> Result<Response<Self::StreamAggregatedResourcesStream>, Status> {
        Ok(Response::new(self.spawn_stream::<Sotw>(request)))
    }

    async fn delta_aggregated_resources(
        &self,
        request: Request<Streaming<DeltaDiscoveryRequest>>,
    ) -> Result<Response<Self::DeltaAggregatedResourcesStream>, Status> {
        Ok(Response::new(self.spawn_stream::<Delta>(request)))
    }
}

// === Stream driver ===

/// A state machine the stream driver can feed.
trait Protocol: Send + 'static {
    type Request: Send + 'static;
    type Response: Send + 'static;
    const MODE: &'static str;
    fn node(request: &Self::Request) -> Option<&Node>;
    fn new(ctx: StreamCtx) -> Self;
    fn on_request(&mut self, request: Self::Request) -> Vec<Self::Response>;
    fn on_view(&mut self, view: Option<View>) -> Vec<Self::Response>;
}

impl Protocol for Sotw {
    type Request = DiscoveryRequest;
    type Response = DiscoveryResponse;
    const MODE: &'static str = "sotw";
    fn node(request: &DiscoveryRequest) -> Option<&Node> {
        request.node.as_ref()
    }
    fn new(ctx: StreamCtx) -> Self {
        Sotw::new(ctx)
    }
    fn on_request(&mut self, request: DiscoveryRequest) -> Vec<DiscoveryResponse> {
        Sotw::on_request(self, request)
    }
    fn on_view(&mut self, view: Option<View>) -> Vec<DiscoveryResponse> {
        Sotw::on_view(self, view)
    }
}

impl Protocol for Delta {
    type Request = DeltaDiscoveryRequest;
    type Response = DeltaDiscoveryResponse;
    const MODE: &'static str = "delta";
    fn node(request: &DeltaDiscoveryRequest) -> Option<&Node> {
        request.node.as_ref()
    }
    fn new(ctx: StreamCtx) -> Self {
        Delta::new(ctx)
    }
    fn on_request(&mut self, request: DeltaDiscoveryRequest) -> Vec<DeltaDiscoveryResponse> {
        Delta::on_request(self, request)
    }
    fn on_view(&mut self, view: Option<View>) -> Vec<DeltaDiscoveryResponse> {
        Delta::on_view(self, view)
    }
}

type Outbound<R> = mpsc::Sender<Result<R, Status>>;

impl AdsServer {
    fn spawn_stream<P: Protocol>(
        &self,
        request: Request<Streaming<P::Request>>,
    ) -> ReceiverStream<Result<P::Response, Status>>
    where
        Streaming<P::Request>: Unpin,
    {
        let peer = request.remote_addr();
        let (tx, rx) = mpsc::channel(STREAM_BUFFER);
        tokio::spawn(
            self.clone()
                .run_stream::<P>(request.into_inner(), tx)
                .instrument(tracing::info_span!("xds_stream", mode = P::MODE, peer = ?peer)),
        );
        ReceiverStream::new(rx)
    }

    async fn run_stream<P: Protocol>(
        self,
        mut inbound: Streaming<P::Request>,
        tx: Outbound<P::Response>,
    ) {
        let mut drain_rx = self.drain_rx.clone();
        let first = tokio::select! {
            biased;
            () = drained(&mut drain_rx) => return,
            first = inbound.next() => first,
        };
        let first = match first {
            Some(Ok(first)) => first,
            Some(Err(status)) => {
                tracing::debug!(%status, "stream failed before its first request");
                return;
            }
            None => return,
        };
        let identity = gateway_from_node(P::node(&first)).and_then(|(node, gateway)| {
            Ok((node, gateway, bind_address_from_node(P::node(&first))?))
        });
        let (node, gateway, bind) = match identity {
            Ok(identity) => identity,
            Err(error) => {
                tracing::warn!(%error, "refusing xDS stream");
                let _ = tx.send(Err(error.to_status())).await;
                return;
            }
        };
        let span = tracing::info_span!(
            "proxy",
            node,
            gateway = format_args!(
                "{}/{}",
                gateway.namespace.as_deref().unwrap_or(""),
                gateway.name
            ),
            bind = ?bind,
        );
        self.serve_stream::<P>(node, gateway, bind, first, inbound, tx, drain_rx)
            .instrument(span)
            .await;
    }

    #[allow(clippy::too_many_arguments)]
    async fn serve_stream<P: Protocol>(
        self,
        node: String,
        gateway: ObjectKey,
        bind: Option<IpAddr>,
        first: P::Request,
        mut inbound: Streaming<P::Request>,
        tx: Outbound<P::Response>,
        mut drain_rx: Option<watch::Receiver<bool>>,
    ) {
        let _connected = self.metrics.connect(&gateway);
        let mut snapshot_rx = self.cache.subscribe(&gateway);
        let initial = snapshot_rx.borrow_and_update().clone();
        if initial.is_none() {
            tracing::error!(
                "no such Gateway: this proxy is sent nothing until the Gateway exists \
                 (check node.metadata[\"{GATEWAY_METADATA_KEY}\"] in its bootstrap)"
            );
        }
        tracing::info!("proxy connected");
        let binder = self.binder.clone();
        let view = |snapshot| binder.view(&gateway, bind, snapshot);
        let mut machine = P::new(StreamCtx::new(
            gateway.clone(),
            node,
            self.nacks.clone(),
            self.metrics.clone(),
        ));
        let mut out = machine.on_view(view(initial));
        out.extend(machine.on_request(first));
        let mut snapshots_open = true;
        loop {
            for response in out.drain(..) {
                if tx.send(Ok(response)).await.is_err() {
                    tracing::info!("proxy disconnected");
                    return;
                }
            }
            tokio::select! {
                biased;
                () = drained(&mut drain_rx) => {
                    tracing::info!("ending stream: the server is draining");
                    return;
                }
                changed = snapshot_rx.changed(), if snapshots_open => {
                    if changed.is_err() {
                        // The cache forgot this Gateway; nothing more will come.
                        snapshots_open = false;
                        continue;
                    }
                    let snapshot = snapshot_rx.borrow_and_update().clone();
                    out = machine.on_view(view(snapshot));
                }
                request = inbound.next() => match request {
                    Some(Ok(request)) => out = machine.on_request(request),
                    Some(Err(status)) => {
                        tracing::info!(%status, "proxy stream ended with an error");
                        return;
                    }
                    None => {
                        tracing::info!("proxy disconnected");
                        return;
                    }
                },
            }
        }
    }
}

/// Completes when the drain signal turns `true`; never without a drain signal or once
/// its sender is gone.
async fn drained(drain_rx: &mut Option<watch::Receiver<bool>>) {
    match drain_rx {
        Some(rx) => {
            if rx.wait_for(|drain| *drain).await.is_err() {
                std::future::pending::<()>().await;
            }
        }
        None => std::future::pending().await,
    }
}
