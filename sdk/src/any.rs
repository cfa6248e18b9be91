//! [`Any`], an encoded protobuf message with its type URL, and [`pack`] /
//! [`unpack`] to move Envoy messages in and out of it.

use prost::Name;

use crate::PluginError;

/// An encoded protobuf message together with its type URL, like
/// `google.protobuf.Any` (`type.googleapis.com/envoy.config.cluster.v3.Cluster`).
///
/// This is how Envoy messages cross the plugin boundary. Inside Envoy messages
/// (for example `typed_per_filter_config`) use [`prost_types::Any`]; the two
/// convert into each other with `From`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Any {
    /// The fully qualified type URL of the encoded message.
    pub type_url: String,
    /// The message encoded in the protobuf binary format.
    pub value: Vec<u8>,
}

// === impl Any ===

impl Any {
    /// The fully qualified message name: the type URL after its last `/`.
    pub fn type_name(&self) -> &str {
        type_name(&self.type_url)
    }

    /// Whether this holds a message of type `M` (compared by full name, so any
    /// type URL domain matches, as in protobuf's own `Any`).
    pub fn is<M: Name>(&self) -> bool {
        self.type_name() == M::full_name()
    }
}

impl From<prost_types::Any> for Any {
    fn from(any: prost_types::Any) -> Self {
        Self {
            type_url: any.type_url,
            value: any.value,
        }
    }
}

impl From<Any> for prost_types::Any {
    fn from(any: Any) -> Self {
        Self {
            type_url: any.type_url,
            value: any.value,
        }
    }
}

fn type_name(type_url: &str) -> &str {
    type_url.rsplit_once('/').map_or(type_url, |(_, name)| name)
}

/// Encodes `message` as an [`Any`] with its `type.googleapis.com/...` type URL.
pub fn pack<M: Name>(message: &M) -> Any {
    Any {
        type_url: M::type_url(),
        value: message.encode_to_vec(),
    }
}

/// Decodes an [`Any`] as `M`, failing with [`PluginError::BadInput`] when the
/// type URL names another message or the bytes do not decode.
pub fn unpack<M: Name + Default>(any: &Any) -> Result<M, PluginError> {
    if !any.is::<M>() {
        return Err(PluginError::bad_input(format!(
            "expected a {} but got a {}",
            M::full_name(),
            any.type_url
        )));
    }
    M::decode(any.value.as_slice())
        .map_err(|err| PluginError::bad_input(format!("cannot decode {}: {err}", M::full_name())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envoy::config::cluster::v3::Cluster;
    use crate::envoy::config::route::v3::Route;

    #[test]
    fn pack_uses_the_googleapis_type_url() {
        let any = pack(&Cluster::default());
        assert_eq!(
            any.type_url,
            "type.googleapis.com/envoy.config.cluster.v3.Cluster"
        );
    }

    #[test]
    fn unpack_round_trips_a_message() {
        let cluster = Cluster {
            name: "backend".into(),
            ..Default::default()
        };
        let back: Cluster = unpack(&pack(&cluster)).unwrap();
        assert_eq!(back, cluster);
    }

    #[test]
    fn unpack_rejects_another_type() {
        let err = unpack::<Route>(&pack(&Cluster::default())).unwrap_err();
        assert!(
            matches!(&err, PluginError::BadInput(msg) if msg.contains("envoy.config.route.v3.Route")),
            "{err}"
        );
    }

    #[test]
    fn unpack_accepts_any_type_url_domain() {
        let any = Any {
            type_url: "example.com/envoy.config.cluster.v3.Cluster".into(),
            value: vec![],
        };
        assert!(unpack::<Cluster>(&any).is_ok());
    }

    #[test]
    fn unpack_reports_undecodable_bytes() {
        let any = Any {
            type_url: Cluster::type_url(),
            value: vec![0xff, 0xff, 0xff],
        };
        assert!(matches!(
            unpack::<Cluster>(&any),
            Err(PluginError::BadInput(_))
        ));
    }
}
