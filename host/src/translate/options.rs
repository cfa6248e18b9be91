//! RouteOption attachment and application: which RouteOptions apply to each rule of an
//! HTTPRoute, which option keys win, and the plugin calls that apply them.
//!
//! A RouteOption attaches to a whole HTTPRoute by `targetRefs` (same namespace only) or to
//! one rule by an `ExtensionRef` filter (group `gateway.weir.dev` or `gateway.solo.io`,
//! kind `RouteOption`). Precedence follows K8sGateway: ExtensionRef over targetRef, then
//! older (creationTimestamp, then name) over newer; a lower-priority source only fills
//! keys no higher one set, and each key it set in vain is a warning on its status. Each
//! winning key goes to the plugin that claims it
//! ([`FilterPlugins::apply_route`]); a key nobody claims or a value its plugin rejects is
//! an [`OptionError`] on the RouteOption it came from, and the route is served without it.
//!
//! The targetRef side is a per-pass index ([`TargetIndex`]), rebuilt only when some
//! RouteOption changed. A memoised route keeps the list of RouteOptions that targeted it
//! (with their content hashes) and is re-translated when that list changes.

use std::collections::BTreeMap;
use std::sync::Arc;

use envoy_types::pb::envoy::config::route::v3::Route;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::Value;

use crate::model::options::Spec;
use crate::model::{GATEWAY_API_GROUP, Kind, ObjectKey, RouteOption};
use crate::store::{ContentHash, Store};

use super::{ClusterRef, FastMap, FilterPlugins, OptionFilter, RouteOptionRequest};

/// One RouteOption attached to a route, with what precedence needs.
#[derive(Clone, Debug)]
pub(crate) struct Attached {
    pub(crate) key: ObjectKey,
    pub(crate) hash: ContentHash,
    /// `(no timestamp, creation time in ns, name)`: smaller wins.
    order: (bool, Option<i128>, String),
    pub(crate) options: Arc<BTreeMap<String, Value>>,
}

impl PartialEq for Attached {
    /// Same object with the same content.
    fn eq(&self, other: &Self) -> bool {
        self.key == other.key && self.hash == other.hash
    }
}

impl Attached {
    /// `option` if its spec is valid (an invalid one already has `Accepted=False` and
    /// contributes nothing).
    pub(crate) fn of(key: ObjectKey, hash: ContentHash, option: &RouteOption) -> Option<Self> {
        let spec = Spec::try_from(option).ok()?;
        Some(Self::from_spec(key, hash, &option.metadata, spec))
    }

    fn from_spec(key: ObjectKey, hash: ContentHash, meta: &ObjectMeta, spec: Spec) -> Self {
        let created = meta
            .creation_timestamp
            .as_ref()
            .map(|t| t.0.as_nanosecond());
        Self {
            order: (created.is_none(), created, key.name.clone()),
            key,
            hash,
            options: Arc::new(spec.options),
        }
    }
}

/// RouteOptions by the HTTPRoute their `targetRefs` name, oldest first.
#[derive(Default)]
pub(crate) struct TargetIndex {
    by_route: FastMap<ObjectKey, Vec<Attached>>,
    built: bool,
}

impl TargetIndex {
    /// Rebuilds the index unless no RouteOption changed since the last pass.
    pub(crate) fn refresh(&mut self, store: &Store, route_options_stable: bool) {
        if self.built && route_options_stable {
            return;
        }
        self.by_route.clear();
        for (key, object, hash) in store.of_kind_hashed(Kind::RouteOption) {
            let Some(option) = object.as_route_option() else {
                continue;
            };
            let Ok(spec) = Spec::try_from(&**option) else {
                continue;
            };
            let own_ns = key.namespace.as_deref().unwrap_or_default();
            let targets: Vec<ObjectKey> = spec
                .targets
                .iter()
                .filter(|t| t.group == GATEWAY_API_GROUP && t.kind == "HTTPRoute")
                .filter(|t| t.namespace == own_ns)
                .map(|t| ObjectKey::namespaced(Kind::HttpRoute, &t.namespace, &t.name))
                .collect();
            if targets.is_empty() {
                continue;
            }
            let attached = Attached::from_spec(key.clone(), hash, &option.metadata, spec);
            for t in targets {
                self.by_route.entry(t).or_default().push(attached.clone());
            }
        }
        for list in self.by_route.values_mut() {
            list.sort_by(|a, b| a.order.cmp(&b.order));
            list.dedup_by(|a, b| a.key == b.key);
        }
        self.built = true;
    }

    /// The RouteOptions targeting HTTPRoute `route`, in precedence order.
    pub(crate) fn targeting(&self, route: &ObjectKey) -> &[Attached] {
        self.by_route.get(route).map(Vec::as_slice).unwrap_or(&[])
    }
}

/// One kind of Gateway-level option (VirtualHostOption, ListenerOption or
/// HttpListenerOption) by the Gateway its `targetRefs` name (same namespace only), with
/// the listener (`sectionName`) each is limited to.
pub(crate) struct GatewayTargets {
    kind: Kind,
    by_gateway: FastMap<ObjectKey, Vec<(Option<String>, Attached)>>,
    built: bool,
}

impl GatewayTargets {
    /// An empty index of option kind `kind`.
    pub(crate) fn new(kind: Kind) -> Self {
        Self {
            kind,
            by_gateway: FastMap::default(),
            built: false,
        }
    }

    /// Rebuilds the index unless no object of its kind changed since the last pass.
    pub(crate) fn refresh(&mut self, store: &Store, stable: &super::deps::KindSet) {
        if self.built && stable.contains(self.kind) {
            return;
        }
        self.by_gateway.clear();
        for (key, object, hash) in store.of_kind_hashed(self.kind) {
            let Some((spec, meta)) = gateway_option(object) else {
                continue;
            };
            let own_ns = key.namespace.as_deref().unwrap_or_default();
            let targets: Vec<(ObjectKey, Option<String>)> = spec
                .targets
                .iter()
                .filter(|t| t.group == GATEWAY_API_GROUP && t.kind == "Gateway")
                .filter(|t| t.namespace == own_ns)
                .map(|t| {
                    (
                        ObjectKey::namespaced(Kind::Gateway, &t.namespace, &t.name),
                        t.section_name.clone(),
                    )
                })
                .collect();
            let attached = Attached::from_spec(key.clone(), hash, meta, spec);
            for (gateway, section) in targets {
                self.by_gateway
                    .entry(gateway)
                    .or_default()
                    .push((section, attached.clone()));
            }
        }
        for list in self.by_gateway.values_mut() {
            list.sort_by(|a, b| a.1.order.cmp(&b.1.order));
        }
        self.built = true;
    }

    /// The options for listener `section` of `gateway`, highest precedence first: those
    /// naming the listener, then those for the whole Gateway, each oldest first.
    pub(crate) fn for_listener(&self, gateway: &ObjectKey, section: &str) -> Vec<&Attached> {
        self.for_listeners(gateway, &[section])
    }

    /// The options for the listeners `sections` of `gateway` (that share one Envoy
    /// listener or filter chain), highest precedence first: those naming one of them (in
    /// the order given), then those for the whole Gateway, each oldest first.
    pub(crate) fn for_listeners(&self, gateway: &ObjectKey, sections: &[&str]) -> Vec<&Attached> {
        let all = self
            .by_gateway
            .get(gateway)
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        let named = sections.iter().flat_map(|section| {
            all.iter()
                .filter(move |(s, _)| s.as_deref() == Some(*section))
        });
        let whole = all.iter().filter(|(s, _)| s.is_none());
        let mut out: Vec<&Attached> = Vec::new();
        for (_, a) in named.chain(whole) {
            if !out.iter().any(|b| b.key == a.key) {
                out.push(a);
            }
        }
        out
    }
}

/// The Gateway-level option indexes, one per kind.
pub(crate) struct GatewayOptionIndexes {
    /// VirtualHostOptions.
    pub(crate) virtual_hosts: GatewayTargets,
    /// HttpListenerOptions.
    pub(crate) http_listeners: GatewayTargets,
    /// ListenerOptions.
    pub(crate) listeners: GatewayTargets,
}

impl Default for GatewayOptionIndexes {
    fn default() -> Self {
        Self {
            virtual_hosts: GatewayTargets::new(Kind::VirtualHostOption),
            http_listeners: GatewayTargets::new(Kind::HttpListenerOption),
            listeners: GatewayTargets::new(Kind::ListenerOption),
        }
    }
}

impl GatewayOptionIndexes {
    /// Rebuilds the indexes whose kind changed since the last pass.
    pub(crate) fn refresh(&mut self, store: &Store, stable: &super::deps::KindSet) {
        self.virtual_hosts.refresh(store, stable);
        self.http_listeners.refresh(store, stable);
        self.listeners.refresh(store, stable);
    }
}

/// The valid spec and metadata of a Gateway-level option object; `None` for other kinds
/// and for an invalid spec (which already has `Accepted=False`).
fn gateway_option(object: &crate::model::Object) -> Option<(Spec, &ObjectMeta)> {
    use crate::model::Object;
    match object {
        Object::VirtualHostOption(o) => Some((Spec::try_from(&**o).ok()?, &o.metadata)),
        Object::ListenerOption(o) => Some((Spec::try_from(&**o).ok()?, &o.metadata)),
        Object::HttpListenerOption(o) => Some((Spec::try_from(&**o).ok()?, &o.metadata)),
        _ => None,
    }
}

/// Sorts ExtensionRef'd RouteOptions into precedence order (oldest first).
pub(crate) fn sort_by_precedence(options: &mut [Attached]) {
    options.sort_by(|a, b| a.order.cmp(&b.order));
}

/// A winning option key: its value and the RouteOption it came from.
pub(crate) type Merged<'a> = BTreeMap<&'a str, (&'a Value, &'a ObjectKey)>;

/// Merges sources given highest priority first: each key is taken from the first source
/// that sets it. A key a later source also sets is a warning on that source, naming
/// `route` (the HTTPRoute, and rule when it matters) and the winner.
pub(crate) fn merge<'a>(
    sources: impl IntoIterator<Item = &'a Attached>,
    route: &str,
    warnings: &mut Vec<OptionError>,
) -> Merged<'a> {
    let mut out = Merged::new();
    for s in sources {
        for (k, v) in s.options.iter() {
            match out.entry(k.as_str()) {
                std::collections::btree_map::Entry::Vacant(e) => {
                    e.insert((v, &s.key));
                }
                std::collections::btree_map::Entry::Occupied(e) if *e.get().1 != s.key => {
                    let warning = OptionError {
                        option: s.key.clone(),
                        message: format!(
                            "spec.options.{k}: overridden on {route} by {}, which takes precedence",
                            e.get().1
                        ),
                    };
                    if !warnings.contains(&warning) {
                        warnings.push(warning);
                    }
                }
                std::collections::btree_map::Entry::Occupied(_) => {}
            }
        }
    }
    out
}

/// A RouteOption key that could not be applied (an error), or that lost to another
/// RouteOption (a warning).
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct OptionError {
    /// The RouteOption the key came from.
    pub(crate) option: ObjectKey,
    /// A sentence naming the key and field.
    pub(crate) message: String,
}

/// Applies every merged key to `route` in key order, adding the filters they need to
/// `filters` and the keys that failed to `errors`. A key whose result mirrors requests to
/// a cluster (`request_mirror_policies`, shadowing) must name an Upstream's cluster that
/// `upstream_exists` finds; its cluster then joins `clusters`, else the key is refused.
pub(crate) fn apply_to_route(
    plugins: &mut Option<&mut dyn FilterPlugins>,
    mut route: Route,
    merged: &Merged<'_>,
    (filters, clusters): (&mut Vec<OptionFilter>, &mut super::cluster::ClusterSet),
    errors: &mut Vec<OptionError>,
    upstream_exists: &mut dyn FnMut(&str, &str) -> bool,
) -> Route {
    for (key, (config, source)) in merged {
        let result = match plugins.as_deref_mut() {
            None => Err(unclaimed(key)),
            Some(p) => p.apply_route(&RouteOptionRequest {
                source,
                key,
                config,
                target: &route,
            }),
        };
        let result = result.and_then(|(modified, needed)| {
            let mirrors = mirror_clusters(&modified, upstream_exists)
                .map_err(|c| {
                    format!(
                        "spec.options.{key}: mirrors requests to cluster {c}, which no Upstream provides (an Upstream ns/name is cluster upstream_<ns>_<name>)"
                    )
                })?;
            Ok((modified, needed, mirrors))
        });
        match result {
            Ok((modified, needed, mirrors)) => {
                route = modified;
                for c in mirrors {
                    clusters.insert(c);
                }
                for f in needed {
                    if !filters.iter().any(|g| g.name == f.name) {
                        filters.push(f);
                    }
                }
            }
            Err(message) => {
                let error = OptionError {
                    option: (*source).clone(),
                    message,
                };
                if !errors.contains(&error) {
                    errors.push(error);
                }
            }
        }
    }
    route
}

/// The Upstream clusters `route` mirrors requests to, or the first cluster name that is
/// no existing Upstream's.
fn mirror_clusters(
    route: &Route,
    upstream_exists: &mut dyn FnMut(&str, &str) -> bool,
) -> Result<Vec<ClusterRef>, String> {
    use envoy_types::pb::envoy::config::route::v3::route;
    let Some(route::Action::Route(action)) = &route.action else {
        return Ok(Vec::new());
    };
    action
        .request_mirror_policies
        .iter()
        .map(|m| {
            m.cluster
                .strip_prefix("upstream_")
                .and_then(|rest| rest.split_once('_'))
                .filter(|(ns, name)| upstream_exists(ns, name))
                .map(|(ns, name)| ClusterRef::Upstream {
                    namespace: ns.to_string(),
                    name: name.to_string(),
                })
                .ok_or_else(|| m.cluster.clone())
        })
        .collect()
}

/// The error for an option key no plugin claims.
pub(crate) fn unclaimed(key: &str) -> String {
    format!("spec.options.{key}: no plugin claims option key `{key}`")
}

/// Orders HTTP filters by stage, then name.
pub(crate) fn sort_filters(filters: &mut [OptionFilter]) {
    filters.sort_by(|a, b| (a.stage, &a.name).cmp(&(b.stage, &b.name)));
}

/// An option object's problem beyond its spec: a target outside its namespace (a
/// RouteOption attaches only to HTTPRoutes, the other option kinds only to Gateways, in
/// their own namespace).
pub(crate) fn target_problem(object: &crate::model::Object) -> Option<String> {
    use crate::model::Object;
    macro_rules! parts {
        ($o:expr, $targets:literal) => {
            (
                Spec::try_from(&**$o).ok()?,
                $o.spec.target_ref.is_some(),
                &$o.metadata,
                $targets,
            )
        };
    }
    let (spec, single_ref, meta, targets) = match object {
        Object::RouteOption(o) => parts!(o, "HTTPRoutes"),
        Object::VirtualHostOption(o) => parts!(o, "Gateways"),
        Object::ListenerOption(o) => parts!(o, "Gateways"),
        Object::HttpListenerOption(o) => parts!(o, "Gateways"),
        _ => return None,
    };
    let kind = object.kind();
    let own_ns = meta.namespace.as_deref().unwrap_or("default");
    let path = |i: usize| {
        if single_ref {
            "spec.targetRef".to_string()
        } else {
            format!("spec.targetRefs[{i}]")
        }
    };
    spec.targets
        .iter()
        .enumerate()
        .find(|(_, t)| t.namespace != own_ns)
        .map(|(i, t)| {
            format!(
                "{}.namespace: a {kind} attaches only to {targets} in its own namespace ({own_ns}), not {}",
                path(i),
                t.namespace
            )
        })
}
