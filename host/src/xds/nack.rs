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
use crate::translate::Statuses;
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

// === NACKs on Gateway status ===

/// The condition a NACK sets on its Gateway: Gateway API's `Programmed`, status
/// `False`, reason `Invalid` (the configuration was accepted by Weir but the data plane
/// refused it, so the Gateway is not programmed as its spec says).
pub const NACK_CONDITION: &str = "Programmed";
/// The reason of [`NACK_CONDITION`] while a NACK stands.
pub const NACK_REASON: &str = "Invalid";
/// Kubernetes caps a condition's message at 32768 bytes.
const MAX_MESSAGE: usize = 32 * 1024;

/// `statuses` (as translation computed them, keyed by object) with the `Programmed`
/// condition of every Gateway that has a standing NACK replaced by
/// `Programmed=False/Invalid`, naming each rejected resource type, the resources and
/// Envoy's message. `now` (RFC 3339) is the new condition's `lastTransitionTime`. Gateways
/// absent from `statuses` (not ours, or gone) are left out; everything else is unchanged.
pub fn merge_nacks(statuses: &Statuses, nacks: &NackMap, now: &str) -> Statuses {
    let mut merged = statuses.clone();
    for (gateway, reports) in nacks {
        if let Some(status) = merged.get_mut(gateway) {
            set_nack_condition(Arc::make_mut(status), reports, now);
        }
    }
    merged
}

/// Replaces (or adds) the `Programmed` condition of one Gateway status.
fn set_nack_condition(
    status: &mut serde_json::Value,
    reports: &BTreeMap<ResourceType, NackReport>,
    now: &str,
) {
    if reports.is_empty() {
        return;
    }
    let mut message = reports
        .values()
        .map(describe_nack)
        .collect::<Vec<_>>()
        .join("; ");
    if message.len() > MAX_MESSAGE {
        let mut end = MAX_MESSAGE - 3;
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        message.truncate(end);
        message.push_str("...");
    }
    let Some(object) = status.as_object_mut() else {
        return;
    };
    let conditions = object
        .entry("conditions")
        .or_insert_with(|| serde_json::Value::Array(Vec::new()));
    let Some(conditions) = conditions.as_array_mut() else {
        return;
    };
    // The generation the translation observed (any of its conditions carries it).
    let generation = conditions
        .iter()
        .find_map(|c| c.get("observedGeneration").cloned());
    let mut condition = serde_json::json!({
        "type": NACK_CONDITION,
        "status": "False",
        "reason": NACK_REASON,
        "message": message,
        "lastTransitionTime": now,
    });
    if let Some(generation) = generation {
        condition["observedGeneration"] = generation;
    }
    match conditions
        .iter_mut()
        .find(|c| c.get("type").and_then(|t| t.as_str()) == Some(NACK_CONDITION))
    {
        Some(existing) => *existing = condition,
        None => conditions.push(condition),
    }
}

/// One NACK as a sentence: who rejected what, and Envoy's own words.
fn describe_nack(report: &NackReport) -> String {
    let kind = match report.resource_type {
        ResourceType::Cluster => "clusters",
        ResourceType::Endpoint => "endpoints",
        ResourceType::Listener => "listeners",
        ResourceType::ScopedRoute => "route scopes",
        ResourceType::Route => "route configurations",
        ResourceType::Secret => "secrets",
    };
    format!(
        "Envoy (node {}) rejected {kind} [{}] (version {}): {}",
        report.node,
        report.resource_names.join(", "),
        report.version,
        report.message
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Kind;
    use serde_json::json;

    fn mk_gateway(name: &str) -> ObjectKey {
        ObjectKey {
            kind: Kind::Gateway,
            namespace: Some("default".into()),
            name: name.into(),
        }
    }

    fn mk_report(gateway: &str, ty: ResourceType, version: &str, message: &str) -> NackReport {
        NackReport {
            gateway: mk_gateway(gateway),
            node: "envoy-1".into(),
            resource_type: ty,
            resource_names: vec!["secret_default_tls".into()],
            message: message.into(),
            version: version.into(),
        }
    }

    fn mk_status() -> serde_json::Value {
        json!({
            "conditions": [
                {"type": "Accepted", "status": "True", "reason": "Accepted", "message": "",
                 "observedGeneration": 3, "lastTransitionTime": "2025-01-01T00:00:00Z"},
                {"type": "Programmed", "status": "True", "reason": "Programmed", "message": "",
                 "observedGeneration": 3, "lastTransitionTime": "2025-01-01T00:00:00Z"},
            ],
            "listeners": [],
        })
    }

    fn programmed(status: &serde_json::Value) -> &serde_json::Value {
        status["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["type"] == "Programmed")
            .unwrap()
    }

    #[test]
    fn a_nack_turns_programmed_false_naming_the_resource_and_envoys_message() {
        let statuses = BTreeMap::from([
            (mk_gateway("gw"), Arc::new(mk_status())),
            (mk_gateway("other"), Arc::new(mk_status())),
        ]);
        let reports = NackReports::default();
        reports.record(mk_report(
            "gw",
            ResourceType::Secret,
            "v7",
            "Failed to load certificate chain",
        ));
        let merged = merge_nacks(&statuses, &reports.current(), "2025-02-02T00:00:00Z");
        let condition = programmed(&merged[&mk_gateway("gw")]);
        assert_eq!(condition["status"], "False");
        assert_eq!(condition["reason"], "Invalid");
        assert_eq!(condition["observedGeneration"], 3);
        assert_eq!(condition["lastTransitionTime"], "2025-02-02T00:00:00Z");
        let message = condition["message"].as_str().unwrap();
        assert_eq!(
            message,
            "Envoy (node envoy-1) rejected secrets [secret_default_tls] (version v7): \
             Failed to load certificate chain"
        );
        assert_eq!(
            merged[&mk_gateway("gw")]["conditions"]
                .as_array()
                .unwrap()
                .len(),
            2,
            "replaced, not added"
        );
        assert_eq!(
            *merged[&mk_gateway("other")],
            mk_status(),
            "others untouched"
        );
    }

    #[test]
    fn nacks_of_several_types_are_all_named_and_unknown_gateways_are_skipped() {
        let statuses = BTreeMap::from([(mk_gateway("gw"), Arc::new(json!({})))]);
        let reports = NackReports::default();
        reports.record(mk_report(
            "gw",
            ResourceType::Listener,
            "l1",
            "bad listener",
        ));
        reports.record(mk_report("gw", ResourceType::Cluster, "c1", "bad cluster"));
        reports.record(mk_report("gone", ResourceType::Cluster, "c1", "x"));
        let merged = merge_nacks(&statuses, &reports.current(), "now");
        assert_eq!(merged.len(), 1);
        let message = programmed(&merged[&mk_gateway("gw")])["message"]
            .as_str()
            .unwrap()
            .to_string();
        let (clusters, listeners) = message.split_once("; ").unwrap();
        assert!(clusters.ends_with("bad cluster"), "{message}");
        assert!(listeners.ends_with("bad listener"), "{message}");
    }

    #[test]
    fn the_condition_clears_when_a_later_version_is_acked() {
        let statuses = BTreeMap::from([(mk_gateway("gw"), Arc::new(mk_status()))]);
        let reports = NackReports::default();
        reports.record(mk_report("gw", ResourceType::Secret, "v7", "bad"));
        // An ACK of the rejected version itself does not clear it.
        reports.accepted(&mk_gateway("gw"), ResourceType::Secret, "v7");
        let merged = merge_nacks(&statuses, &reports.current(), "now");
        assert_eq!(programmed(&merged[&mk_gateway("gw")])["status"], "False");
        reports.accepted(&mk_gateway("gw"), ResourceType::Secret, "v8");
        assert!(reports.current().is_empty());
        assert_eq!(merge_nacks(&statuses, &reports.current(), "now"), statuses);
    }

    #[test]
    fn an_overlong_message_is_cut_to_the_kubernetes_limit() {
        let statuses = BTreeMap::from([(mk_gateway("gw"), Arc::new(mk_status()))]);
        let reports = NackReports::default();
        reports.record(mk_report(
            "gw",
            ResourceType::Route,
            "r",
            &"é".repeat(40_000),
        ));
        let merged = merge_nacks(&statuses, &reports.current(), "now");
        let message = programmed(&merged[&mk_gateway("gw")])["message"]
            .as_str()
            .unwrap();
        assert!(message.len() <= MAX_MESSAGE && message.ends_with("..."));
    }
}
