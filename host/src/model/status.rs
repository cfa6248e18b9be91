//! The status subresource shared by Weir's own kinds.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Status of a Weir object: the conditions the translator reports (`Accepted`, with the
/// reason and the fields at fault) and its warnings. Written only by the reporter.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct WeirStatus {
    /// Standard Kubernetes conditions, one per type.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// What the object set that did not take effect, and why (an option key another
    /// option with higher precedence also set, naming the route and the winner).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}
