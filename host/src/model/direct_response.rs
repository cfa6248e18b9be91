//! `DirectResponse`: a fixed response (status and optional body) an HTTPRoute rule can
//! answer with, through an `ExtensionRef` filter.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::status::WeirStatus;
use super::validation::FieldErrors;

/// Largest body we accept, in bytes: Envoy's default limit for a direct response body.
pub const MAX_BODY_BYTES: usize = 4096;

/// Desired state of a DirectResponse.
#[derive(CustomResource, Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "gateway.weir.dev",
    version = "v1alpha1",
    kind = "DirectResponse",
    plural = "directresponses",
    namespaced,
    category = "weir",
    doc = "A DirectResponse: a fixed HTTP response an HTTPRoute rule answers with through an ExtensionRef filter",
    status = "WeirStatus",
    derive = "PartialEq",
    derive = "Default"
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DirectResponseSpec {
    /// HTTP status code to answer with, 200..=599.
    #[schemars(range(min = 200, max = 599))]
    pub status: u16,
    /// Response body, at most 4096 bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 4096))]
    pub body: Option<String>,
}

/// A validated DirectResponse.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Spec {
    /// HTTP status code, 200..=599.
    pub status: u16,
    /// Response body, if any (never empty).
    pub body: Option<String>,
}

impl DirectResponseSpec {
    /// Checks the status range and body size.
    pub fn validate(&self) -> Result<Spec, FieldErrors> {
        let mut errors = FieldErrors::new();
        if !(200..=599).contains(&self.status) {
            errors.push(
                "spec.status",
                format!("must be between 200 and 599, not {}", self.status),
            );
        }
        if let Some(body) = &self.body
            && body.len() > MAX_BODY_BYTES
        {
            errors.push(
                "spec.body",
                format!(
                    "is {} bytes; at most {MAX_BODY_BYTES} are allowed",
                    body.len()
                ),
            );
        }
        errors.into_result(Spec {
            status: self.status,
            body: self.body.clone().filter(|b| !b.is_empty()),
        })
    }
}

impl TryFrom<&DirectResponse> for Spec {
    type Error = FieldErrors;

    fn try_from(d: &DirectResponse) -> Result<Self, Self::Error> {
        d.spec.validate()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mk_direct_response(status: u16, body: Option<&str>) -> DirectResponse {
        DirectResponse::new(
            "dr",
            DirectResponseSpec {
                status,
                body: body.map(str::to_string),
            },
        )
    }

    #[test]
    fn direct_response_in_range_validates() {
        let spec = Spec::try_from(&mk_direct_response(503, Some("down"))).unwrap();
        assert_eq!(spec.status, 503);
        assert_eq!(spec.body.as_deref(), Some("down"));
    }

    #[test]
    fn status_outside_200_to_599_is_rejected() {
        for status in [0, 199, 600] {
            let errors = Spec::try_from(&mk_direct_response(status, None)).unwrap_err();
            assert_eq!(errors.errors()[0].path, "spec.status");
        }
    }

    #[test]
    fn oversized_body_is_rejected() {
        let body = "x".repeat(MAX_BODY_BYTES + 1);
        let errors = Spec::try_from(&mk_direct_response(200, Some(&body))).unwrap_err();
        assert_eq!(errors.errors()[0].path, "spec.body");
    }

    #[test]
    fn empty_body_means_no_body() {
        let spec = Spec::try_from(&mk_direct_response(204, Some(""))).unwrap();
        assert_eq!(spec.body, None);
    }
}
