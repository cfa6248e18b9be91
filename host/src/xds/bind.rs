//! Per-proxy listener addresses. A proxy may name, in its node metadata
//! (`weir.bind_address`, [`BIND_ADDRESS_METADATA_KEY`]), the local address its listeners
//! bind, so several Gateways can share a port on different addresses (127.0.0.2:80 and
//! 127.0.0.3:80). Snapshots stay per Gateway; a stream serves a [`View`] of its
//! Gateway's snapshot whose listeners are rebound to that address. The [`Binder`]
//! re-encodes a Gateway's listeners once per distinct address and listener set, and
//! every stream binding the same address shares the result.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use envoy_types::pb::envoy::config::core::v3::{Address, address};
use envoy_types::pb::envoy::config::listener::v3::Listener;
use prost::Message;

use crate::model::ObjectKey;
use crate::xds::{Resource, ResourceType, Snapshot, TypeResources};

/// The node metadata key naming the local address a proxy's listeners bind.
pub const BIND_ADDRESS_METADATA_KEY: &str = "weir.bind_address";

/// Listeners re-encoded for one address.
#[derive(Debug)]
pub(crate) struct Rebound {
    /// The version of the snapshot's listener set they were made from.
    from_version: String,
    resources: BTreeMap<String, Arc<Resource>>,
}

/// What one stream serves: its Gateway's snapshot, with the listeners rebound when the
/// proxy named an address. Cheap to clone.
#[derive(Clone, Debug)]
pub(crate) struct View {
    snapshot: Arc<Snapshot>,
    listeners: Option<Arc<Rebound>>,
}

impl View {
    /// The snapshot as it is (listeners on the addresses translation gave them).
    pub fn shared(snapshot: Arc<Snapshot>) -> Self {
        Self {
            snapshot,
            listeners: None,
        }
    }

    /// Whether `other` is this very view (the same snapshot and rebound listeners, by
    /// identity, not by content).
    pub fn same(&self, other: &View) -> bool {
        Arc::ptr_eq(&self.snapshot, &other.snapshot)
            && match (&self.listeners, &other.listeners) {
                (None, None) => true,
                (Some(a), Some(b)) => Arc::ptr_eq(a, b),
                _ => false,
            }
    }

    /// The snapshot's version.
    pub fn version(&self) -> &str {
        self.snapshot.version()
    }

    /// The resources of one type as this stream serves them.
    pub fn resources(&self, ty: ResourceType) -> Resources<'_> {
        match (&self.listeners, ty) {
            (Some(rebound), ResourceType::Listener) => Resources::Rebound(&rebound.resources),
            _ => Resources::Shared(self.snapshot.resources(ty)),
        }
    }
}

/// The resources of one type of a [`View`].
#[derive(Clone, Copy, Debug)]
pub(crate) enum Resources<'a> {
    Shared(&'a TypeResources),
    Rebound(&'a BTreeMap<String, Arc<Resource>>),
}

impl<'a> Resources<'a> {
    /// The resources in name order.
    pub fn iter(self) -> impl Iterator<Item = &'a Arc<Resource>> + 'a {
        let (shared, rebound) = match self {
            Self::Shared(t) => (Some(t.iter()), None),
            Self::Rebound(m) => (None, Some(m.values())),
        };
        shared
            .into_iter()
            .flatten()
            .chain(rebound.into_iter().flatten())
    }

    /// The resource with this name.
    pub fn get(self, name: &str) -> Option<&'a Arc<Resource>> {
        match self {
            Self::Shared(t) => t.get(name),
            Self::Rebound(m) => m.get(name),
        }
    }
}

type Slot = Arc<Mutex<Option<Arc<Rebound>>>>;

/// Makes [`View`]s, caching the latest rebound listener set per Gateway and address.
/// Cheap to clone; clones share the cache.
#[derive(Clone, Debug, Default)]
pub(crate) struct Binder {
    slots: Arc<Mutex<HashMap<(ObjectKey, IpAddr), Slot>>>,
    /// How many listener sets were re-encoded (for tests).
    encodes: Arc<AtomicU64>,
}

impl Binder {
    /// What a stream of `gateway` binding `addr` (if any) serves of `snapshot`.
    pub fn view(
        &self,
        gateway: &ObjectKey,
        addr: Option<IpAddr>,
        snapshot: Option<Arc<Snapshot>>,
    ) -> Option<View> {
        let snapshot = snapshot?;
        let Some(addr) = addr else {
            return Some(View::shared(snapshot));
        };
        let slot = self
            .slots
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry((gateway.clone(), addr))
            .or_default()
            .clone();
        // Only streams of this Gateway and address wait here: the first re-encodes, the
        // others take its result.
        let mut slot = slot.lock().unwrap_or_else(PoisonError::into_inner);
        let listeners = snapshot.resources(ResourceType::Listener);
        let rebound = match slot.as_ref() {
            Some(r) if r.from_version == listeners.version() => r.clone(),
            _ => {
                self.encodes.fetch_add(1, Ordering::Relaxed);
                let r = Arc::new(Rebound {
                    from_version: listeners.version().to_string(),
                    resources: listeners
                        .iter()
                        .map(|l| (l.name.clone(), Arc::new(rebind(l, addr))))
                        .collect(),
                });
                *slot = Some(r.clone());
                r
            }
        };
        Some(View {
            snapshot,
            listeners: Some(rebound),
        })
    }

    /// How many listener sets were re-encoded so far.
    #[cfg(test)]
    pub fn encodes(&self) -> u64 {
        self.encodes.load(Ordering::Relaxed)
    }
}

/// The listener with every socket address it listens on set to `addr` (ports kept).
fn rebind(resource: &Resource, addr: IpAddr) -> Resource {
    let Ok(mut listener) = Listener::decode(resource.value().as_ref()) else {
        // Snapshots hold what we encoded ourselves; should one not decode, serve it as is.
        return resource.clone();
    };
    let set = |a: &mut Option<Address>| {
        if let Some(Address {
            address: Some(address::Address::SocketAddress(socket)),
        }) = a
        {
            socket.address = addr.to_string();
            socket.ipv4_compat = false;
        }
    };
    set(&mut listener.address);
    for extra in &mut listener.additional_addresses {
        set(&mut extra.address);
    }
    Resource::new(
        resource.name.clone(),
        resource.type_url(),
        listener.encode_to_vec(),
    )
}
