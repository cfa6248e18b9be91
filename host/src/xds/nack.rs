//! NACKs: configuration a proxy rejected, kept per Gateway and resource type so the
//! reporter can put it on the Gateway's status.
//!
//! A proxy that NACKs keeps serving its last good configuration, and the server never
//! re-sends the rejected version (it waits for the next change). The latest NACK of each
//! Gateway and type is held in a watch channel ([`NackReports::subscribe`]); it is
//! cleared when a proxy of that Gateway ACKs a different version of that type.

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio::sync::watch;

use crate::model::ObjectKey;
use crate::xds::ResourceType;

/// One rejected response, as a proxy reported it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NackReport {
    /// The Gateway whose configuration was rejected.
    pub gateway: ObjectKey,
    /// The rejecting proxy's `node.id`.
    pub node: String,
    /// The type of the rejected resources.
    pub resource_type: ResourceType,
    /// The resources in the rejected response (Envoy's message usually names the
    /// culprit among them).
    pub resource_names: Vec<String>,
    /// Envoy's message (`error_detail.message`).
    pub message: String,
    /// The rejected version (the type's version in state of the world, the snapshot's
    /// version in delta).
    pub version: String,
}

/// The latest NACK per Gateway and resource type.
pub type NackMap = BTreeMap<ObjectKey, BTreeMap<ResourceType, NackReport>>;

/// Where streams record NACKs and ACKs; readers subscribe. Cheap to clone.
#[derive(Clone, Debug)]
pub struct NackReports {
    tx: Arc<watch::Sender<NackMap>>,
}

impl Default for NackReports {
    fn default() -> Self {
        Self {
            tx: Arc::new(watch::Sender::new(NackMap::new())),
        }
    }
}

impl NackReports {
    /// A receiver that changes whenever a NACK is recorded or cleared.
    pub fn subscribe(&self) -> watch::Receiver<NackMap> {
        self.tx.subscribe()
    }

    /// The current NACKs.
    pub fn current(&self) -> NackMap {
        self.tx.borrow().clone()
    }

    /// Records a NACK, replacing any earlier one of the same Gateway and type.
    pub(crate) fn record(&self, report: NackReport) {
        self.tx.send_modify(|map| {
            map.entry(report.gateway.clone())
                .or_default()
                .insert(report.resource_type, report);
        });
    }

    /// A proxy of `gateway` accepted `version` of `ty`: a NACK of another version is
    /// resolved.
    pub(crate) fn accepted(&self, gateway: &ObjectKey, ty: ResourceType, version: &str) {
        self.tx.send_if_modified(|map| {
            let Some(by_type) = map.get_mut(gateway) else {
                return false;
            };
            if by_type.get(&ty).is_none_or(|r| r.version == version) {
                return false;
            }
            by_type.remove(&ty);
            if by_type.is_empty() {
                map.remove(gateway);
            }
            true
        });
    }
}
