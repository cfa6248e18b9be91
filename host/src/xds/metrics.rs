//! Counters of the xDS server: plain atomics the admin endpoint can render (Prometheus
//! text, JSON) without this module knowing the format.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use crate::model::ObjectKey;
use crate::xds::ResourceType;

/// The server's counters. Shared by every stream.
#[derive(Debug, Default)]
pub struct XdsMetrics {
    pushes: [AtomicU64; ResourceType::ALL.len()],
    acks: [AtomicU64; ResourceType::ALL.len()],
    nacks: [AtomicU64; ResourceType::ALL.len()],
    streams_opened: AtomicU64,
    connected: Mutex<BTreeMap<ObjectKey, u64>>,
}

/// A point-in-time copy of [`XdsMetrics`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MetricsSnapshot {
    /// Responses sent, per type.
    pub pushes: BTreeMap<ResourceType, u64>,
    /// ACKs received, per type.
    pub acks: BTreeMap<ResourceType, u64>,
    /// NACKs received, per type.
    pub nacks: BTreeMap<ResourceType, u64>,
    /// Streams opened since start.
    pub streams_opened: u64,
    /// Streams open now, per Gateway (Gateways with none are absent).
    pub connected: BTreeMap<ObjectKey, u64>,
}

impl XdsMetrics {
    /// Copies the counters.
    pub fn snapshot(&self) -> MetricsSnapshot {
        let per_type = |counters: &[AtomicU64; ResourceType::ALL.len()]| {
            ResourceType::ALL
                .into_iter()
                .map(|t| (t, counters[t.index()].load(Ordering::Relaxed)))
                .collect()
        };
        MetricsSnapshot {
            pushes: per_type(&self.pushes),
            acks: per_type(&self.acks),
            nacks: per_type(&self.nacks),
            streams_opened: self.streams_opened.load(Ordering::Relaxed),
            connected: self.lock_connected().clone(),
        }
    }

    pub(crate) fn pushed(&self, ty: ResourceType) {
        self.pushes[ty.index()].fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn acked(&self, ty: ResourceType) {
        self.acks[ty.index()].fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn nacked(&self, ty: ResourceType) {
        self.nacks[ty.index()].fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a stream of `gateway` as connected until the guard drops.
    pub(crate) fn connect(self: &Arc<Self>, gateway: &ObjectKey) -> ConnectedGuard {
        self.streams_opened.fetch_add(1, Ordering::Relaxed);
        *self.lock_connected().entry(gateway.clone()).or_default() += 1;
        ConnectedGuard {
            metrics: self.clone(),
            gateway: gateway.clone(),
        }
    }

    fn lock_connected(&self) -> std::sync::MutexGuard<'_, BTreeMap<ObjectKey, u64>> {
        self.connected
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// Decrements the connected count of its Gateway when dropped.
#[derive(Debug)]
pub(crate) struct ConnectedGuard {
    metrics: Arc<XdsMetrics>,
    gateway: ObjectKey,
}

impl Drop for ConnectedGuard {
    fn drop(&mut self) {
        let mut connected = self.metrics.lock_connected();
        if let Some(n) = connected.get_mut(&self.gateway) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                connected.remove(&self.gateway);
            }
        }
    }
}
