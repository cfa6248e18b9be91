//! [`ObjectRef`], which names the Kubernetes-style object being translated.

use std::fmt;

/// A reference to a Kubernetes-style object the host is translating.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct ObjectRef {
    /// API group, empty for the core group (`gateway.weir.dev`, ...).
    pub group: String,
    /// Kind (`Upstream`, `RouteOption`, `HTTPRoute`, ...).
    pub kind: String,
    /// Namespace; empty for cluster-scoped objects.
    pub namespace: String,
    /// Object name.
    pub name: String,
}

impl fmt::Display for ObjectRef {
    /// Formats as `Kind namespace/name` (or `Kind name` when cluster-scoped).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.namespace.is_empty() {
            write!(f, "{} {}", self.kind, self.name)
        } else {
            write!(f, "{} {}/{}", self.kind, self.namespace, self.name)
        }
    }
}
