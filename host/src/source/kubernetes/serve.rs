//! `weir serve --source kubernetes`: the source, the reporter, discovery and the leader
//! election, started together for [`crate::app`].
//!
//! Every replica watches, translates and serves xDS; only the replica holding the Lease
//! ([`crate::leader`]) writes status ([`crate::reporter`]) and creates Upstreams
//! ([`crate::discovery`]). The app hands the translation thread [`KubeMode::events`] and
//! the reporter the statuses it publishes.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use tokio::sync::{mpsc, watch};

use crate::leader::{Election, LeaderConfig};
use crate::reporter::{Reporter, ReporterConfig};
use crate::source::SourceEvent;

use super::KubeSource;

/// The `weir serve` flags of Kubernetes mode.
#[derive(Clone, Debug, Args)]
pub struct KubeArgs {
    /// With `--source kubernetes`: the kubeconfig to use (else in-cluster configuration,
    /// then `$KUBECONFIG`, then `~/.kube/config`, at its current context).
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    /// With `--source kubernetes`: create an Upstream of type `kube` for each Service
    /// port (`--discovery=false` turns it off; a `weir.dev/discovery: disabled` label on a
    /// Service or Namespace opts it out).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub discovery: bool,
    /// With `--source kubernetes`: status writes per second, at most.
    #[arg(long, default_value_t = 20.0)]
    pub status_qps: f64,
    /// With `--source kubernetes`: elect a leader with a Lease (`--leader-election=false`
    /// for a single replica, which then always leads).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub leader_election: bool,
    /// The namespace of the leader Lease (default: `$POD_NAMESPACE`, else `default`).
    #[arg(long, value_name = "NS")]
    pub leader_election_namespace: Option<String>,
    /// How long the leader's Lease lasts without renewal, in seconds.
    #[arg(long, default_value_t = 15)]
    pub lease_duration_seconds: u64,
}

impl Default for KubeArgs {
    fn default() -> Self {
        Self {
            kubeconfig: None,
            discovery: true,
            status_qps: 20.0,
            leader_election: true,
            leader_election_namespace: None,
            lease_duration_seconds: 15,
        }
    }
}

/// The statuses the app publishes, by object.
pub type StatusFeed = watch::Receiver<Arc<crate::translate::Statuses>>;

/// Kubernetes mode, running.
pub struct KubeMode {
    /// The source's events, for the translation thread.
    pub events: mpsc::UnboundedReceiver<SourceEvent>,
    /// Keeps the election (and so the reporter and discovery) going while held.
    pub guard: KubeGuard,
}

/// Holds the election; dropping it stops campaigning.
pub struct KubeGuard {
    /// Whether this replica leads.
    pub leading: watch::Receiver<bool>,
    election: Option<Election>,
    _always: Option<watch::Sender<bool>>,
}

impl KubeGuard {
    /// Takes the election out, for the app to release the Lease on shutdown so another
    /// replica takes over at once.
    pub fn take_election(&mut self) -> Option<Election> {
        self.election.take()
    }
}

impl KubeMode {
    /// Connects and starts the watchers, the election, the reporter (fed by `statuses`)
    /// and discovery on the current runtime.
    pub async fn start(args: &KubeArgs, statuses: StatusFeed) -> anyhow::Result<Self> {
        let client = super::client(args.kubeconfig.as_deref()).await?;
        let (reflectors, events) = KubeSource::start(client.clone()).into_parts();
        let (election, always, leading) = if args.leader_election {
            let namespace = args
                .leader_election_namespace
                .clone()
                .or_else(|| std::env::var("POD_NAMESPACE").ok())
                .unwrap_or_else(|| "default".into());
            let mut config = LeaderConfig::new(namespace);
            config.lease_duration = Duration::from_secs(args.lease_duration_seconds.max(1));
            config.retry_period = (config.lease_duration / 5).max(Duration::from_millis(200));
            let election = crate::leader::spawn(client.clone(), config);
            let leading = election.leading();
            (Some(election), None, leading)
        } else {
            let (tx, rx) = watch::channel(true);
            (None, Some(tx), rx)
        };
        let reporter = Reporter::new(
            client.clone(),
            reflectors.clone(),
            ReporterConfig {
                qps: args.status_qps,
            },
        );
        tokio::spawn(reporter.run(statuses, leading.clone()));
        if args.discovery {
            tokio::spawn(crate::discovery::run(client, reflectors, leading.clone()));
        }
        Ok(Self {
            events,
            guard: KubeGuard {
                leading,
                election,
                _always: always,
            },
        })
    }
}
