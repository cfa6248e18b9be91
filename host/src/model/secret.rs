//! [`SecretObject`]: a Kubernetes Secret that never prints its contents.
//!
//! Secrets flow through the store and the translator like any object, and objects get
//! logged, printed in errors and dumped in tests. Wrapping the Secret makes `Debug` and
//! `Display` show its keys but never their values; reading the data takes an explicit
//! [`SecretObject::expose`].

use std::fmt;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

/// A Secret whose `data` and `stringData` are redacted from `Debug` and `Display`.
#[derive(Clone, PartialEq)]
pub struct SecretObject(Secret);

impl SecretObject {
    /// Wraps a Secret.
    pub fn new(secret: Secret) -> Self {
        Self(secret)
    }

    /// The Secret's metadata (safe to print).
    pub fn metadata(&self) -> &ObjectMeta {
        &self.0.metadata
    }

    /// Mutable metadata (for defaulting the namespace at the edge).
    pub fn metadata_mut(&mut self) -> &mut ObjectMeta {
        &mut self.0.metadata
    }

    /// The Secret's `type`, such as `kubernetes.io/tls`.
    pub fn type_(&self) -> Option<&str> {
        self.0.type_.as_deref()
    }

    /// The whole Secret, values included. Never log what this returns.
    pub fn expose(&self) -> &Secret {
        &self.0
    }

    /// The value of one key, from `data` or else `stringData`. Never log what this returns.
    pub fn value(&self, key: &str) -> Option<&[u8]> {
        if let Some(v) = self.0.data.as_ref().and_then(|d| d.get(key)) {
            return Some(&v.0);
        }
        self.0
            .string_data
            .as_ref()
            .and_then(|d| d.get(key))
            .map(|s| s.as_bytes())
    }
}

impl From<Secret> for SecretObject {
    fn from(secret: Secret) -> Self {
        Self(secret)
    }
}

/// Prints a map's keys with every value replaced.
struct Redacted<'a, I>(&'a I);

impl<'a, I, K, V> fmt::Debug for Redacted<'a, I>
where
    &'a I: IntoIterator<Item = (K, V)>,
    K: fmt::Debug,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.0.into_iter().map(|(k, _)| (k, "<redacted>")))
            .finish()
    }
}

impl fmt::Debug for SecretObject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Secret")
            .field("metadata", &self.0.metadata)
            .field("type", &self.0.type_)
            .field("immutable", &self.0.immutable)
            .field("data", &self.0.data.as_ref().map(Redacted))
            .field("stringData", &self.0.string_data.as_ref().map(Redacted))
            .finish()
    }
}

impl fmt::Display for SecretObject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = &self.0.metadata;
        write!(
            f,
            "Secret/{}/{}",
            m.namespace.as_deref().unwrap_or("default"),
            m.name.as_deref().unwrap_or_default()
        )?;
        let keys: Vec<&str> = self
            .0
            .data
            .iter()
            .flat_map(|d| d.keys())
            .chain(self.0.string_data.iter().flat_map(|d| d.keys()))
            .map(String::as_str)
            .collect();
        if !keys.is_empty() {
            write!(f, " (keys: {}; values redacted)", keys.join(", "))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::ByteString;
    use std::collections::BTreeMap;

    fn mk_secret(name: impl ToString) -> SecretObject {
        SecretObject::new(Secret {
            metadata: ObjectMeta {
                name: Some(name.to_string()),
                namespace: Some("default".into()),
                ..Default::default()
            },
            type_: Some("kubernetes.io/tls".into()),
            data: Some(BTreeMap::from([(
                "tls.key".to_string(),
                ByteString(b"-----BEGIN PRIVATE KEY----- hunter2".to_vec()),
            )])),
            string_data: Some(BTreeMap::from([(
                "password".to_string(),
                "correct horse battery staple".to_string(),
            )])),
            ..Default::default()
        })
    }

    #[test]
    fn secret_debug_and_display_never_show_values() {
        let s = mk_secret("cert");
        for printed in [format!("{s:?}"), format!("{s:#?}"), s.to_string()] {
            assert!(!printed.contains("hunter2"), "{printed}");
            assert!(!printed.contains("PRIVATE KEY"), "{printed}");
            assert!(!printed.contains("horse"), "{printed}");
            assert!(printed.contains("tls.key"), "{printed}");
        }
        assert!(format!("{s:?}").contains("<redacted>"));
    }

    #[test]
    fn secret_values_are_reachable_explicitly() {
        let s = mk_secret("cert");
        assert!(s.value("tls.key").unwrap().ends_with(b"hunter2"));
        assert_eq!(
            s.value("password"),
            Some(&b"correct horse battery staple"[..])
        );
        assert_eq!(s.value("missing"), None);
    }
}
