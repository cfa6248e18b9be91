//! Leader election with a `coordination.k8s.io/v1` Lease.
//!
//! Every replica watches, translates and serves xDS; only the holder of the Lease writes
//! status and creates Upstreams. [`spawn`] runs the election and returns a `watch` of
//! "this replica leads". The rules are client-go's:
//!
//! - the holder renews `spec.renewTime` every [`LeaderConfig::retry_period`]; each write
//!   carries the resourceVersion it read, so two replicas can never both win a round;
//! - another replica takes over once the Lease record has not changed for
//!   `leaseDurationSeconds`, judged by its own clock from when it first saw the record (no
//!   clock comparison across machines), so it takes over at most one retry period after
//!   the lease expires;
//! - a holder that cannot renew for a whole lease duration stops leading on its own, before
//!   anyone else may take over;
//! - a holder that shuts down clears `holderIdentity`, so a follower takes over at once.

use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kube::Client;
use kube::api::{Api, ObjectMeta, PostParams};
use tokio::sync::watch;

/// Election settings.
#[derive(Clone, Debug)]
pub struct LeaderConfig {
    /// Namespace of the Lease.
    pub namespace: String,
    /// Name of the Lease.
    pub name: String,
    /// This replica's identity (unique per replica).
    pub identity: String,
    /// How long a lease is good for without renewal.
    pub lease_duration: Duration,
    /// How often to renew or try to acquire.
    pub retry_period: Duration,
}

impl LeaderConfig {
    /// Defaults: Lease `weir-leader` in `namespace`, 15 s lease, 2 s retries, the host
    /// name and process id as identity.
    pub fn new(namespace: impl Into<String>) -> Self {
        let host = std::env::var("HOSTNAME")
            .or_else(|_| std::env::var("POD_NAME"))
            .unwrap_or_else(|_| "weir".into());
        Self {
            namespace: namespace.into(),
            name: "weir-leader".into(),
            identity: format!("{host}-{}", std::process::id()),
            lease_duration: Duration::from_secs(15),
            retry_period: Duration::from_secs(2),
        }
    }
}

/// A running election. Dropping it stops campaigning without releasing the Lease (as a
/// crash would: another replica takes over when it expires); [`Election::release`] gives
/// it up at once.
pub struct Election {
    leading: watch::Receiver<bool>,
    stop: watch::Sender<bool>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Drop for Election {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

impl Election {
    /// `true` while this replica holds the Lease.
    pub fn leading(&self) -> watch::Receiver<bool> {
        self.leading.clone()
    }

    /// Stops campaigning and, if leading, gives the Lease up so another replica takes over
    /// at once.
    pub async fn release(mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

/// Starts campaigning for the Lease on the current runtime.
pub fn spawn(client: Client, config: LeaderConfig) -> Election {
    let (tx, leading) = watch::channel(false);
    let (stop, mut stop_rx) = watch::channel(false);
    let task = tokio::spawn(async move {
        let api: Api<Lease> = Api::namespaced(client, &config.namespace);
        let mut state = Campaign::default();
        loop {
            let now = Instant::now();
            let leads = match state.round(&api, &config, now).await {
                Ok(leads) => {
                    if leads {
                        state.renewed = Some(now);
                    }
                    leads
                }
                Err(err) => {
                    tracing::warn!(error = %err, lease = %config.name, "leader election round failed");
                    // Lead on only while the last renewal is still good.
                    *tx.borrow()
                        && state
                            .renewed
                            .is_some_and(|r| now - r < config.lease_duration)
                }
            };
            if tx.send_if_modified(|l| std::mem::replace(l, leads) != leads) {
                tracing::info!(identity = %config.identity, leading = leads, "leadership changed");
            }
            tokio::select! {
                _ = tokio::time::sleep(config.retry_period) => {}
                _ = stop_rx.changed() => {
                    if *tx.borrow() {
                        state.release(&api, &config).await;
                    }
                    tx.send_replace(false);
                    return;
                }
            }
        }
    });
    Election {
        leading,
        stop,
        task: Some(task),
    }
}

/// What one replica remembers between rounds.
#[derive(Default)]
struct Campaign {
    /// The last Lease record seen (holder and renew time) and when it was first seen.
    observed: Option<(String, Instant)>,
    /// When this replica last renewed.
    renewed: Option<Instant>,
}

fn micro_now() -> MicroTime {
    MicroTime(Timestamp::now())
}

impl Campaign {
    /// One round: acquire, renew or observe. `Ok(true)` when this replica holds the Lease.
    async fn round(
        &mut self,
        api: &Api<Lease>,
        config: &LeaderConfig,
        now: Instant,
    ) -> Result<bool, kube::Error> {
        let duration_secs = config.lease_duration.as_secs().max(1) as i32;
        let Some(mut lease) = api.get_opt(&config.name).await? else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(config.name.clone()),
                    namespace: Some(config.namespace.clone()),
                    ..Default::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(config.identity.clone()),
                    lease_duration_seconds: Some(duration_secs),
                    acquire_time: Some(micro_now()),
                    renew_time: Some(micro_now()),
                    lease_transitions: Some(0),
                    ..Default::default()
                }),
            };
            return written(api.create(&PostParams::default(), &lease).await);
        };
        let spec = lease.spec.get_or_insert_with(Default::default);
        let holder = spec.holder_identity.clone().unwrap_or_default();
        if holder == config.identity {
            spec.renew_time = Some(micro_now());
            spec.lease_duration_seconds = Some(duration_secs);
            return written(
                api.replace(&config.name, &PostParams::default(), &lease)
                    .await,
            );
        }
        let record = format!(
            "{holder}@{}",
            spec.renew_time
                .as_ref()
                .map(|t| t.0.to_string())
                .unwrap_or_default()
        );
        let first_seen = match &self.observed {
            Some((r, at)) if *r == record => *at,
            _ => {
                self.observed = Some((record, now));
                now
            }
        };
        let duration =
            Duration::from_secs(spec.lease_duration_seconds.unwrap_or(duration_secs).max(1) as u64);
        if !holder.is_empty() && now - first_seen < duration {
            return Ok(false);
        }
        // Expired (or released): take it over.
        spec.holder_identity = Some(config.identity.clone());
        spec.acquire_time = Some(micro_now());
        spec.renew_time = Some(micro_now());
        spec.lease_duration_seconds = Some(duration_secs);
        spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
        written(
            api.replace(&config.name, &PostParams::default(), &lease)
                .await,
        )
    }

    /// Clears the holder so a follower takes over without waiting for expiry.
    async fn release(&self, api: &Api<Lease>, config: &LeaderConfig) {
        let Ok(Some(mut lease)) = api.get_opt(&config.name).await else {
            return;
        };
        let spec = lease.spec.get_or_insert_with(Default::default);
        if spec.holder_identity.as_deref() != Some(config.identity.as_str()) {
            return;
        }
        spec.holder_identity = None;
        if let Err(err) = api
            .replace(&config.name, &PostParams::default(), &lease)
            .await
        {
            tracing::warn!(error = %err, "cannot release the lease");
        }
    }
}

/// A write that lost a race (409) means someone else holds the Lease this round.
fn written(result: Result<Lease, kube::Error>) -> Result<bool, kube::Error> {
    match result {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
        Err(err) => Err(err),
    }
}
