//! Conditions: the reasons Gateway API defines, and how we build conditions.

use std::fmt;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;

/// A problem to report: the condition reason and a message naming the field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Problem {
    pub(crate) reason: &'static str,
    pub(crate) message: String,
}

impl Problem {
    pub(crate) fn new(reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            reason,
            message: message.into(),
        }
    }
}

/// The path of an indexed field below `parent` (`{parent}.{field}[{index}]`, or
/// `{parent}[{index}]` when `field` is empty), written only when a problem names it:
/// formatting every rule's, match's and backend's path up front cost a tenth of a full
/// translation.
#[derive(Clone, Copy)]
pub(crate) struct FieldPath<'a> {
    pub(crate) parent: &'a dyn fmt::Display,
    pub(crate) field: &'static str,
    pub(crate) index: usize,
}

impl fmt::Display for FieldPath<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() {
            write!(f, "{}[{}]", self.parent, self.index)
        } else {
            write!(f, "{}.{}[{}]", self.parent, self.field, self.index)
        }
    }
}

// Condition types.
pub(crate) const ACCEPTED: &str = "Accepted";
pub(crate) const PROGRAMMED: &str = "Programmed";
pub(crate) const RESOLVED_REFS: &str = "ResolvedRefs";
pub(crate) const CONFLICTED: &str = "Conflicted";

// Reasons (Gateway API names).
pub(crate) const R_ACCEPTED: &str = "Accepted";
pub(crate) const R_PROGRAMMED: &str = "Programmed";
pub(crate) const R_RESOLVED_REFS: &str = "ResolvedRefs";
pub(crate) const R_NO_CONFLICTS: &str = "NoConflicts";
pub(crate) const R_INVALID: &str = "Invalid";
pub(crate) const R_INVALID_PARAMETERS: &str = "InvalidParameters";
pub(crate) const R_LISTENERS_NOT_VALID: &str = "ListenersNotValid";
pub(crate) const R_UNSUPPORTED_PROTOCOL: &str = "UnsupportedProtocol";
pub(crate) const R_HOSTNAME_CONFLICT: &str = "HostnameConflict";
pub(crate) const R_PROTOCOL_CONFLICT: &str = "ProtocolConflict";
pub(crate) const R_INVALID_CERTIFICATE_REF: &str = "InvalidCertificateRef";
pub(crate) const R_INVALID_ROUTE_KINDS: &str = "InvalidRouteKinds";
pub(crate) const R_REF_NOT_PERMITTED: &str = "RefNotPermitted";
pub(crate) const R_BACKEND_NOT_FOUND: &str = "BackendNotFound";
pub(crate) const R_INVALID_KIND: &str = "InvalidKind";
pub(crate) const R_UNSUPPORTED_VALUE: &str = "UnsupportedValue";
pub(crate) const R_NOT_ALLOWED_BY_LISTENERS: &str = "NotAllowedByListeners";
pub(crate) const R_NO_MATCHING_LISTENER_HOSTNAME: &str = "NoMatchingListenerHostname";
pub(crate) const R_NO_MATCHING_PARENT: &str = "NoMatchingParent";
pub(crate) const R_PORT_UNAVAILABLE: &str = "PortUnavailable";
/// Weir kinds: the spec failed validation.
pub(crate) const R_INVALID_SPEC: &str = "InvalidSpec";
/// Weir kinds: the Upstream's plugin declined or failed.
pub(crate) const R_PLUGIN_FAILED: &str = "PluginFailed";

/// Builds conditions stamped with one pass's `now`.
#[derive(Clone, Debug)]
pub(crate) struct Stamp {
    now: Time,
}

impl Stamp {
    pub(crate) fn new(now: Timestamp) -> Self {
        Self { now: Time(now) }
    }

    /// One condition.
    pub(crate) fn condition(
        &self,
        type_: &str,
        status: bool,
        reason: &str,
        message: impl Into<String>,
        generation: Option<i64>,
    ) -> Condition {
        Condition {
            last_transition_time: self.now.clone(),
            message: message.into(),
            observed_generation: generation,
            reason: reason.to_string(),
            status: if status { "True" } else { "False" }.to_string(),
            type_: type_.to_string(),
        }
    }

    /// `type` True with `ok_reason` when `result` is Ok, else False with the problem.
    pub(crate) fn of_result(
        &self,
        type_: &str,
        ok_reason: &str,
        ok_message: &str,
        result: Result<(), &Problem>,
        generation: Option<i64>,
    ) -> Condition {
        match result {
            Ok(()) => self.condition(type_, true, ok_reason, ok_message, generation),
            Err(p) => self.condition(type_, false, p.reason, p.message.clone(), generation),
        }
    }
}
