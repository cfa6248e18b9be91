//! Publish and serve: per-Gateway snapshots and the Aggregated Discovery Service (ADS)
//! that hands them to Envoy, in both state-of-the-world (SotW) and delta form.
//!
//! ```text
//!  Translation.gateways ──► SnapshotCache::publish_all ──► watch channel per Gateway
//!                               (encode + hash, then                │ (send_replace: wakes,
//!                                one short lock)                    │  never answers)
//!                                                                   ▼
//!  Envoy ◄──── ADS stream task (one per proxy stream: Sotw or Delta state machine)
//!                 │ NACK
//!                 └──► NackReports (watch) ──► Gateway status     XdsMetrics (atomics)
//! ```
//!
//! Start at [`SnapshotCache`] (what translation publishes to) and [`AdsServer`] (what
//! `weir serve` binds); [`bootstrap`] builds the Envoy bootstrap that points a proxy here. `weir serve` does, in outline:
//!
//! ```no_run
//! # async fn f(translation: weir::translate::Translation) -> Result<(), weir::xds::XdsError> {
//! use weir::xds::{AdsServer, SnapshotCache};
//! let cache = SnapshotCache::new();
//! let server = AdsServer::new(cache.clone());
//! let nacks_rx = server.nacks().subscribe(); // → Gateway status
//! let metrics = server.metrics();            // → /metrics
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:18000").await?;
//! let serving = tokio::spawn(server.serve(listener, async { /* SIGTERM */ }));
//! cache.publish_all(&translation.gateways);  // after every translation pass
//! # Ok(()) }
//! ```
//!
//! ## Node identity
//!
//! A proxy names its Gateway in its node metadata: `node.metadata["weir.gateway"] =
//! "NAMESPACE/NAME"` ([`GATEWAY_METADATA_KEY`]); `weir bootstrap` writes exactly that.
//! `node.id` is free-form (per proxy; it appears in logs and NACK reports) and
//! `node.cluster` is not interpreted. Identity is read from the first request of a stream
//! only, as the xDS protocol specifies; later `node` fields are ignored.
//!
//! - A stream whose first request has no node, or no or a malformed `weir.gateway`, is
//!   closed with `INVALID_ARGUMENT` and a message saying what to set.
//! - `node.metadata["weir.bind_address"]` ([`BIND_ADDRESS_METADATA_KEY`], written by
//!   `weir bootstrap --bind-address`), when set, is the local IP address the proxy's
//!   listeners bind instead of the translated one (`0.0.0.0`), so Gateways can share a
//!   port on different addresses. The stream is served its Gateway's snapshot with the
//!   listeners rebound; a Gateway's listener set is re-encoded once per distinct address
//!   (and per change) and shared by every stream binding there. A value that is not an
//!   IP address closes the stream with `INVALID_ARGUMENT`.
//! - A well-formed identity naming a Gateway that is not known (never published) is
//!   logged as an error and the stream is kept open with nothing sent: if the Gateway
//!   appears later (created after its proxies started, or translation not yet done at
//!   start-up) the proxy is served then.
//!
//! ## Protocol
//!
//! Both variants follow Envoy's xDS protocol document:
//!
//! - **Versions and nonces per type.** A response's nonce is unique within its stream.
//!   In SotW a type's `version_info` is a content hash of exactly the resources sent, so
//!   an unchanged set is never re-sent; in delta each resource carries its own content
//!   hash and `system_version_info` is the snapshot's version.
//! - **ACK / NACK.** A request carrying the nonce of the latest response for its type
//!   answers it: with `error_detail` it is a NACK, otherwise an ACK. A NACK is logged,
//!   counted ([`XdsMetrics`]) and recorded ([`NackReports`]); the rejected version is
//!   never re-sent on that stream (the proxy keeps its last good configuration) — the
//!   next change is.
//! - **Stale nonces.** SotW requests with an older nonce are ignored entirely. Delta
//!   requests with an older nonce do not ACK anything, but their subscription changes
//!   are honoured.
//! - **Wildcards.** The first request of a type with no names is a (legacy) wildcard
//!   subscription; `*` subscribes to the wildcard explicitly. In SotW a later non-empty
//!   request ends the legacy wildcard; in delta it lasts until `*` is unsubscribed.
//! - **Resources that do not exist yet** are sent as soon as a snapshot has them. In
//!   SotW a named subscription to nothing that exists is not answered (the proxy waits,
//!   as the protocol allows); in delta each subscribed name the snapshot lacks is listed
//!   once in `removed_resources` ("does not exist"), so the proxy stops waiting. Wildcard
//!   subscriptions are always answered, even with nothing.
//! - **Reconnects.** Delta honours `initial_resource_versions`: unchanged resources are
//!   not re-sent and resources that are gone are listed in `removed_resources`. SotW
//!   answers a new stream's first request of each type (cheap, and robust to a proxy
//!   whose view differs from its `version_info`).
//! - **Make-before-break.** A stream sends types in the order of [`ResourceType::ALL`]:
//!   clusters, endpoints, listeners, routes, secrets. Listeners and routes wait while a
//!   cluster update is unacknowledged, while clusters, endpoints or listeners have more
//!   to send after an unacknowledged update, and until the
//!   proxy has asked for (and been sent) the endpoints of every EDS cluster it took — a
//!   new cluster warms until its endpoints arrive, and Envoy asks for them only once it
//!   has the cluster — so a route never arrives before its cluster is ready (Envoy
//!   would answer 503 "no cluster" meanwhile). Clusters (and their endpoints) that
//!   left the snapshot are kept until the proxy has acknowledged the listeners and routes
//!   that stopped using them, and removed in a follow-up response.
//! - **One responder per stream.** Each stream runs in its own task with its own state;
//!   publishing only wakes it. A slow proxy back-pressures its own stream and nothing
//!   else.
//! - **Drain.** [`AdsServer::serve`] ends every stream when shutdown is signalled, so
//!   proxies reconnect elsewhere (another replica) and the server can stop.
//!
//! Not implemented: `resource_locators`/xDS-TP names, TTLs, and on-demand (VHDS) types.

mod bind;
pub mod bootstrap;
mod delta;
mod metrics;
mod nack;
mod names;
mod requests;
mod server;
mod snapshot;
mod sotw;
mod stream;
mod wire;

#[cfg(test)]
mod tests;

pub use bind::BIND_ADDRESS_METADATA_KEY;
pub use metrics::{MetricsSnapshot, XdsMetrics};
pub use nack::{NACK_CONDITION, NACK_REASON, NackMap, NackReport, NackReports, merge_nacks};
pub use server::{
    AdsServer, AdsService, GATEWAY_METADATA_KEY, bind_address_from_node, gateway_from_node,
};
pub use snapshot::{Resource, ResourceType, Snapshot, SnapshotCache, SnapshotSlot, TypeResources};

/// What can go wrong serving xDS. Errors about one stream end only that stream.
#[derive(Debug, thiserror::Error)]
pub enum XdsError {
    /// The first request of a stream had no `node`.
    #[error(
        "the first xDS request of a stream carries no node; set node.metadata[\"{GATEWAY_METADATA_KEY}\"] \
         to \"NAMESPACE/NAME\" of the Gateway (weir bootstrap writes it)"
    )]
    MissingNode,
    /// The node does not name its Gateway.
    #[error(
        "node `{node}` does not name its Gateway: set node.metadata[\"{GATEWAY_METADATA_KEY}\"] \
         to \"NAMESPACE/NAME\" (weir bootstrap writes it)"
    )]
    NoGateway {
        /// The node's id.
        node: String,
    },
    /// The node's Gateway identity is not `NAMESPACE/NAME`.
    #[error(
        "node `{node}`: node.metadata[\"{GATEWAY_METADATA_KEY}\"] is {value:?}; expected \"NAMESPACE/NAME\""
    )]
    BadGateway {
        /// The node's id.
        node: String,
        /// What it set.
        value: String,
    },
    /// The node's bind address is not an IP address.
    #[error(
        "node `{node}`: node.metadata[\"{BIND_ADDRESS_METADATA_KEY}\"] is {value:?}; expected an IP \
         address such as 127.0.0.2 (weir bootstrap --bind-address writes it)"
    )]
    BadBindAddress {
        /// The node's id.
        node: String,
        /// What it set.
        value: String,
    },
    /// Binding or serving the gRPC endpoint failed.
    #[error("the xDS server failed: {0}")]
    Serve(#[from] tonic::transport::Error),
    /// Binding the listening socket failed.
    #[error("cannot listen for xDS: {0}")]
    Io(#[from] std::io::Error),
}

impl XdsError {
    /// The gRPC status a client sees for this error (the one place errors become
    /// statuses).
    pub fn to_status(&self) -> tonic::Status {
        match self {
            Self::MissingNode
            | Self::NoGateway { .. }
            | Self::BadGateway { .. }
            | Self::BadBindAddress { .. } => tonic::Status::invalid_argument(self.to_string()),
            Self::Serve(_) | Self::Io(_) => tonic::Status::internal(self.to_string()),
        }
    }
}
