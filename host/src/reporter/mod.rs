//! The reporter: writes the statuses the translator computes to the status subresource.
//!
//! [`Reporter::run`] takes each new set of statuses (a `watch` channel, so a burst of
//! translations collapses into the latest) and, while this replica leads, compares each
//! object's desired status with the one in the shared reflector cache through the pure
//! [`merge::next_status`]. Only a status that differs is written: a `PUT` of the status
//! subresource carrying the cached `resourceVersion`. On `409 Conflict` (someone wrote in
//! between — another controller's route parent, a user) it re-reads the object, merges
//! again and retries. Writes are paced to [`ReporterConfig::qps`], so a burst of changes
//! cannot flood the API server. Objects not in the cache (gone) are skipped.

pub mod merge;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use kube::Client;
use kube::api::{Api, DynamicObject, PostParams};
use kube::core::ApiResource;
use serde_json::Value;
use tokio::sync::watch;

use crate::model::ObjectKey;
use crate::source::kubernetes::Reflectors;

/// The statuses of one translation, by object.
pub type Statuses = Arc<crate::translate::Statuses>;

/// How often a conflicting write is retried before waiting for the next translation.
const MAX_ATTEMPTS: usize = 5;

/// Reporter settings.
#[derive(Clone, Debug)]
pub struct ReporterConfig {
    /// Status writes per second, at most.
    pub qps: f64,
}

impl Default for ReporterConfig {
    fn default() -> Self {
        Self { qps: 20.0 }
    }
}

/// Counters of what the reporter did (for logs, metrics and tests).
#[derive(Debug, Default)]
pub struct ReporterStats {
    /// Status writes that succeeded.
    pub writes: AtomicU64,
    /// Writes refused with 409 Conflict (then retried).
    pub conflicts: AtomicU64,
    /// Writes that failed otherwise.
    pub failures: AtomicU64,
}

/// Writes statuses for one replica.
pub struct Reporter {
    client: Client,
    reflectors: Reflectors,
    config: ReporterConfig,
    stats: Arc<ReporterStats>,
}

impl Reporter {
    /// A reporter reading current objects from `reflectors`.
    pub fn new(client: Client, reflectors: Reflectors, config: ReporterConfig) -> Self {
        Self {
            client,
            reflectors,
            config,
            stats: Arc::default(),
        }
    }

    /// Its counters.
    pub fn stats(&self) -> Arc<ReporterStats> {
        self.stats.clone()
    }

    /// Writes every new set of statuses while `leader` is `true`, until `statuses` closes.
    pub async fn run(
        self,
        mut statuses: watch::Receiver<Statuses>,
        mut leader: watch::Receiver<bool>,
    ) {
        let period = Duration::from_secs_f64(1.0 / self.config.qps.max(0.001));
        let mut pace = tokio::time::interval(period);
        pace.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // Once the election ends (its sender dropped), its last word stands.
        let mut electing = true;
        loop {
            if *leader.borrow_and_update() {
                let latest = statuses.borrow_and_update().clone();
                self.report(&latest, &mut pace, &statuses).await;
            }
            tokio::select! {
                changed = statuses.changed() => if changed.is_err() { return },
                changed = leader.changed(), if electing => electing = changed.is_ok(),
            }
        }
    }

    /// One round: writes what differs; stops early when newer statuses arrive.
    async fn report(
        &self,
        desired: &crate::translate::Statuses,
        pace: &mut tokio::time::Interval,
        newer: &watch::Receiver<Statuses>,
    ) {
        for (key, status) in desired {
            if newer.has_changed().unwrap_or(false) {
                return;
            }
            let Some((ar, object)) = self.reflectors.find(key) else {
                continue;
            };
            let Some(next) = merge::next_status(
                key.kind,
                object.data.get("status"),
                status,
                object.metadata.generation,
            ) else {
                continue;
            };
            pace.tick().await;
            self.write(key, &ar, (*object).clone(), next, status).await;
        }
    }

    /// Writes `next` as `object`'s status; on conflict re-reads, re-merges and retries.
    async fn write(
        &self,
        key: &ObjectKey,
        ar: &ApiResource,
        mut object: DynamicObject,
        mut next: Value,
        desired: &Value,
    ) {
        let api: Api<DynamicObject> = match &key.namespace {
            Some(ns) => Api::namespaced_with(self.client.clone(), ns, ar),
            None => Api::all_with(self.client.clone(), ar),
        };
        for _ in 0..MAX_ATTEMPTS {
            object.data["status"] = next;
            object.metadata.managed_fields = None;
            match api
                .replace_status(&key.name, &PostParams::default(), &object)
                .await
            {
                Ok(_) => {
                    self.stats.writes.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(object = %key, "status written");
                    return;
                }
                Err(kube::Error::Api(s)) if s.code == 409 => {
                    self.stats.conflicts.fetch_add(1, Ordering::Relaxed);
                    object = match api.get_opt(&key.name).await {
                        Ok(Some(fresh)) => fresh,
                        Ok(None) => return,
                        Err(err) => {
                            tracing::warn!(object = %key, error = %err, "cannot re-read after a status conflict");
                            self.stats.failures.fetch_add(1, Ordering::Relaxed);
                            return;
                        }
                    };
                    match merge::next_status(
                        key.kind,
                        object.data.get("status"),
                        desired,
                        object.metadata.generation,
                    ) {
                        Some(n) => next = n,
                        None => return,
                    }
                }
                Err(kube::Error::Api(s)) if s.code == 404 => return,
                Err(err) => {
                    self.stats.failures.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(object = %key, error = %err, "cannot write status");
                    return;
                }
            }
        }
        tracing::warn!(object = %key, "status still conflicting after {MAX_ATTEMPTS} attempts; will retry on the next change");
    }
}
