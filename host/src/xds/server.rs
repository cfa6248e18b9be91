//! The gRPC edge: [`AdsServer`] serves the Aggregated Discovery Service ([`AdsService`],
//! the tower service tonic routes to) and runs one task per stream that feeds a [`Sotw`]
//! or [`Delta`] state machine from the proxy's requests and its Gateway's snapshot
//! channel (through the [`Binder`] when the proxy names a bind address). Requests are
//! decoded by tonic; responses are written by [`ResponseBody`] as the framed chunks of
//! [`crate::xds::wire`], whose resource bodies are the snapshot's shared bytes.

use std::future::Future;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use std::collections::VecDeque;
use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::service::discovery::v3::{DeltaDiscoveryRequest, DiscoveryRequest};
use envoy_types::pb::google::protobuf::value::Kind as ValueKind;
use http_body::Frame as BodyFrame;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tonic::Status;
use tonic::codegen::{BoxFuture, Service, StdError, http};
use tonic::server::NamedService;
use tracing::Instrument;

use crate::model::{Kind, ObjectKey};
use crate::xds::bind::{BIND_ADDRESS_METADATA_KEY, Binder, View};
use crate::xds::delta::Delta;
use crate::xds::names::Names;
use crate::xds::requests::Requests;
use crate::xds::sotw::Sotw;
use crate::xds::stream::StreamCtx;
use crate::xds::wire::{DeltaResponse, Frame, Framed, SotwResponse};
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
    /// The names streams subscribe to, one copy each for all streams.
    names: Names,
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
            names: Names::default(),
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
    pub fn into_service(self) -> AdsService {
        AdsService { server: self }
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
                // Without TCP_NODELAY a response written in two segments waits for the
                // proxy's delayed ACK (~40 ms on Linux) before its second segment leaves.
                tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true)),
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

// === The gRPC service ===

/// The gRPC path of state-of-the-world ADS.
const SOTW_PATH: &str =
    "/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources";
/// The gRPC path of delta ADS.
const DELTA_PATH: &str =
    "/envoy.service.discovery.v3.AggregatedDiscoveryService/DeltaAggregatedResources";

/// The Aggregated Discovery Service as a tower service (what [`AdsServer::into_service`]
/// gives tonic's server): both ADS methods, requests decoded by tonic, responses written
/// as shared pre-encoded chunks by [`ResponseBody`].
#[derive(Clone, Debug)]
pub struct AdsService {
    server: AdsServer,
}

impl NamedService for AdsService {
    const NAME: &'static str = "envoy.service.discovery.v3.AggregatedDiscoveryService";
}

impl<B> Service<http::Request<B>> for AdsService
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<StdError> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let response = match request.uri().path() {
            SOTW_PATH => self.server.spawn_stream::<Sotw, B>(request),
            DELTA_PATH => self.server.spawn_stream::<Delta, B>(request),
            _ => Status::unimplemented("Weir serves only the two ADS methods").into_http(),
        };
        Box::pin(async move { Ok(response) })
    }
}

/// A response stream's body: each response's framed chunks in order, then the trailers
/// (`grpc-status`) once the stream task ends, with the status it ended with.
pub(crate) struct ResponseBody {
    rx: mpsc::Receiver<Result<Framed, Status>>,
    pending: VecDeque<Bytes>,
    done: bool,
}

impl http_body::Body for ResponseBody {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<BodyFrame<Bytes>, Status>>> {
        loop {
            if let Some(chunk) = self.pending.pop_front() {
                return Poll::Ready(Some(Ok(BodyFrame::data(chunk))));
            }
            if self.done {
                return Poll::Ready(None);
            }
            let end = match std::task::ready!(self.rx.poll_recv(cx)) {
                Some(Ok(chunks)) => {
                    self.pending
                        .extend(chunks.into_iter().filter(Buf::has_remaining));
                    continue;
                }
                Some(Err(status)) => status,
                None => Status::ok(""),
            };
            self.done = true;
            let mut trailers = http::HeaderMap::new();
            if let Err(status) = end.add_header(&mut trailers) {
                trailers.clear();
                let _ = Status::internal(status.message().to_string()).add_header(&mut trailers);
            }
            return Poll::Ready(Some(Ok(BodyFrame::trailers(trailers))));
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done && self.pending.is_empty()
    }
}

// === Stream driver ===

/// A state machine the stream driver can feed.
trait Protocol: Send + 'static {
    type Request: prost::Message + Default + Send + 'static;
    type Response: Frame + Send + 'static;
    const MODE: &'static str;
    fn node(request: &Self::Request) -> Option<&Node>;
    fn new(ctx: StreamCtx) -> Self;
    fn on_request(&mut self, request: Self::Request) -> Vec<Self::Response>;
    fn on_view(&mut self, view: Option<View>) -> Vec<Self::Response>;
}

impl Protocol for Sotw {
    type Request = DiscoveryRequest;
    type Response = SotwResponse;
    const MODE: &'static str = "sotw";
    fn node(request: &DiscoveryRequest) -> Option<&Node> {
        request.node.as_ref()
    }
    fn new(ctx: StreamCtx) -> Self {
        Sotw::new(ctx)
    }
    fn on_request(&mut self, request: DiscoveryRequest) -> Vec<SotwResponse> {
        Sotw::on_request(self, request)
    }
    fn on_view(&mut self, view: Option<View>) -> Vec<SotwResponse> {
        Sotw::on_view(self, view)
    }
}

impl Protocol for Delta {
    type Request = DeltaDiscoveryRequest;
    type Response = DeltaResponse;
    const MODE: &'static str = "delta";
    fn node(request: &DeltaDiscoveryRequest) -> Option<&Node> {
        request.node.as_ref()
    }
    fn new(ctx: StreamCtx) -> Self {
        Delta::new(ctx)
    }
    fn on_request(&mut self, request: DeltaDiscoveryRequest) -> Vec<DeltaResponse> {
        Delta::on_request(self, request)
    }
    fn on_view(&mut self, view: Option<View>) -> Vec<DeltaResponse> {
        Delta::on_view(self, view)
    }
}

/// Where a stream task sends its framed responses (or the status that ends it).
type Outbound = mpsc::Sender<Result<Framed, Status>>;

impl AdsServer {
    /// Starts the task of one ADS stream and answers with its response body.
    fn spawn_stream<P: Protocol, B>(
        &self,
        request: http::Request<B>,
    ) -> http::Response<tonic::body::Body>
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<StdError> + Send + 'static,
    {
        let peer = request
            .extensions()
            .get::<tonic::transport::server::TcpConnectInfo>()
            .and_then(|info| info.remote_addr());
        let inbound = Requests::<P::Request>::new(request.into_body());
        let (tx, rx) = mpsc::channel(STREAM_BUFFER);
        tokio::spawn(
            self.clone()
                .run_stream::<P>(inbound, tx)
                .instrument(tracing::info_span!("xds_stream", mode = P::MODE, peer = ?peer)),
        );
        let body = ResponseBody {
            rx,
            pending: VecDeque::new(),
            done: false,
        };
        let mut response = http::Response::new(tonic::body::Body::new(body));
        response.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/grpc"),
        );
        response
    }

    async fn run_stream<P: Protocol>(self, mut inbound: Requests<P::Request>, tx: Outbound) {
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
        mut inbound: Requests<P::Request>,
        tx: Outbound,
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
            self.names.clone(),
        ));
        let mut out = machine.on_view(view(initial));
        out.extend(machine.on_request(first));
        let mut snapshots_open = true;
        loop {
            for response in out.drain(..) {
                if tx.send(Ok(response.frame())).await.is_err() {
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
