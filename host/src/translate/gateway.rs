//! GatewayClasses and Gateways: which we own, which listeners are valid, and which routes
//! attach to which listener.
//!
//! [`plan_gateways`] checks every listener of every Gateway whose class names our
//! controller (protocol, port, hostname, TLS certificates with ReferenceGrants, allowed
//! route kinds) and finds conflicts between listeners sharing a port: on each port the
//! first listener's protocol wins ([`R_PROTOCOL_CONFLICT`] for the others), and two
//! listeners with the same protocol and hostname conflict ([`R_HOSTNAME_CONFLICT`] for the
//! later one). [`attach_routes`] then binds each HTTPRoute parentRef to listeners by
//! sectionName, port, allowed namespaces and kinds, and hostname intersection.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Arc;

use crate::model::gateway_api::{Gateway, gateways, httproutes};
use crate::model::{GATEWAY_API_GROUP, Kind, ObjectKey, SecretObject};
use crate::store::Store;

use super::conditions::*;
use super::deps::{PassId, PassReader, RefFrom, RefTo, reference_permitted};
use super::hostnames;
use super::http_route::RouteIr;
use super::{CONTROLLER_NAME, FastMap};

/// GatewayClasses that name our controller, with whether each is accepted.
pub(crate) type Classes = BTreeMap<String, ClassPlan>;

/// One of our GatewayClasses.
#[derive(Clone, Debug)]
pub(crate) struct ClassPlan {
    pub(crate) generation: Option<i64>,
    pub(crate) accepted: Result<(), Problem>,
}

/// The GatewayClasses naming [`CONTROLLER_NAME`].
pub(crate) fn our_classes(store: &Store) -> Classes {
    store
        .gateway_classes()
        .filter(|c| c.spec.controller_name == CONTROLLER_NAME)
        .map(|c| {
            let accepted = match &c.spec.parameters_ref {
                Some(p) => Err(Problem::new(
                    R_INVALID_PARAMETERS,
                    format!(
                        "spec.parametersRef: Weir takes no GatewayClass parameters (got {}/{} {})",
                        p.group, p.kind, p.name
                    ),
                )),
                None => Ok(()),
            };
            let name = c.metadata.name.clone().unwrap_or_default();
            (
                name,
                ClassPlan {
                    generation: c.metadata.generation,
                    accepted,
                },
            )
        })
        .collect()
}

/// A listener's protocol, when it is one we serve.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Protocol {
    /// Plain HTTP.
    Http,
    /// HTTP over TLS, terminated at the proxy.
    Https,
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Protocol::Http => "HTTP",
            Protocol::Https => "HTTPS",
        })
    }
}

/// Which namespaces may attach routes to a listener.
#[derive(Clone, Debug)]
pub(crate) enum AllowedNamespaces {
    Same,
    All,
    Selector(gateways::GatewayListenersAllowedRoutesNamespacesSelector),
}

/// A certificate a listener serves.
#[derive(Clone, Debug)]
pub(crate) struct Cert {
    pub(crate) namespace: String,
    pub(crate) name: String,
    pub(crate) secret: Arc<SecretObject>,
}

/// One Gateway listener, checked.
#[derive(Clone, Debug)]
pub(crate) struct ListenerPlan {
    pub(crate) name: String,
    pub(crate) port: u16,
    pub(crate) protocol: Option<Protocol>,
    pub(crate) hostname: Option<String>,
    pub(crate) allowed: AllowedNamespaces,
    /// Valid `allowedRoutes.kinds` (HTTPRoute or nothing).
    pub(crate) supported_kinds: Vec<(String, String)>,
    pub(crate) accepted: Result<(), Problem>,
    pub(crate) conflicted: Option<Problem>,
    pub(crate) resolved: Result<(), Problem>,
    pub(crate) certs: Vec<Cert>,
}

impl ListenerPlan {
    /// Routes may attach: accepted and not conflicted.
    pub(crate) fn usable(&self) -> bool {
        self.accepted.is_ok() && self.conflicted.is_none()
    }

    /// Envoy configuration is generated for it.
    pub(crate) fn programmed(&self) -> bool {
        self.usable() && self.resolved.is_ok()
    }

    fn allows_http_route(&self) -> bool {
        !self.supported_kinds.is_empty()
    }
}

/// One of our Gateways, checked.
#[derive(Clone, Debug)]
pub(crate) struct GatewayPlan {
    pub(crate) key: ObjectKey,
    pub(crate) namespace: String,
    pub(crate) name: String,
    pub(crate) generation: Option<i64>,
    /// A problem with the Gateway as a whole (its class, its parameters).
    pub(crate) problem: Option<Problem>,
    pub(crate) listeners: Vec<ListenerPlan>,
}

/// Checks every Gateway of one of our classes.
pub(crate) fn plan_gateways(store: &Store, classes: &Classes) -> Vec<GatewayPlan> {
    let reader = PassReader::new(store);
    store
        .gateways()
        .filter_map(|gw| {
            let class = classes.get(&gw.spec.gateway_class_name)?;
            Some(plan_gateway(&reader, gw, class))
        })
        .collect()
}

fn plan_gateway(reader: &PassReader<'_>, gw: &Gateway, class: &ClassPlan) -> GatewayPlan {
    let namespace = gw
        .metadata
        .namespace
        .clone()
        .unwrap_or_else(|| crate::model::DEFAULT_NAMESPACE.to_string());
    let name = gw.metadata.name.clone().unwrap_or_default();
    let mut problem = class.accepted.as_ref().err().map(|p| {
        Problem::new(
            R_INVALID,
            format!(
                "spec.gatewayClassName: GatewayClass {} is not accepted: {}",
                gw.spec.gateway_class_name, p.message
            ),
        )
    });
    if let Some(p) = gw
        .spec
        .infrastructure
        .as_ref()
        .and_then(|i| i.parameters_ref.as_ref())
    {
        problem = Some(Problem::new(
            R_INVALID_PARAMETERS,
            format!(
                "spec.infrastructure.parametersRef: Weir takes no Gateway parameters (got {}/{} {})",
                p.group, p.kind, p.name
            ),
        ));
    }
    let mut listeners: Vec<ListenerPlan> = gw
        .spec
        .listeners
        .iter()
        .enumerate()
        .map(|(i, l)| plan_listener(reader, &namespace, i, l))
        .collect();
    find_conflicts(&mut listeners);
    GatewayPlan {
        key: ObjectKey::namespaced(Kind::Gateway, &namespace, &name),
        namespace,
        name,
        generation: gw.metadata.generation,
        problem,
        listeners,
    }
}

fn plan_listener(
    reader: &PassReader<'_>,
    gw_ns: &str,
    i: usize,
    l: &gateways::GatewayListeners,
) -> ListenerPlan {
    let path = format!("spec.listeners[{i}]");
    let mut accepted = Ok(());
    let protocol = match l.protocol.as_str() {
        "HTTP" => Some(Protocol::Http),
        "HTTPS" => Some(Protocol::Https),
        other => {
            accepted = Err(Problem::new(
                R_UNSUPPORTED_PROTOCOL,
                format!("{path}.protocol: Weir serves HTTP and HTTPS listeners, not {other:?}"),
            ));
            None
        }
    };
    let port = match u16::try_from(l.port) {
        Ok(p) if p > 0 => p,
        _ => {
            if accepted.is_ok() {
                accepted = Err(Problem::new(
                    R_PORT_UNAVAILABLE,
                    format!("{path}.port: {} is not a port (1-65535)", l.port),
                ));
            }
            0
        }
    };
    if let Some(h) = &l.hostname
        && let Err(e) = hostnames::check(h)
        && accepted.is_ok()
    {
        accepted = Err(Problem::new(
            R_UNSUPPORTED_VALUE,
            format!("{path}.hostname: {e}"),
        ));
    }

    // Route kinds.
    let mut resolved: Result<(), Problem> = Ok(());
    let mut supported_kinds = Vec::new();
    if protocol.is_some() {
        let kinds = l
            .allowed_routes
            .as_ref()
            .and_then(|a| a.kinds.as_ref())
            .filter(|k| !k.is_empty());
        match kinds {
            None => supported_kinds.push((GATEWAY_API_GROUP.to_string(), "HTTPRoute".to_string())),
            Some(kinds) => {
                for (k, kind) in kinds.iter().enumerate() {
                    let group = kind.group.as_deref().unwrap_or(GATEWAY_API_GROUP);
                    if group == GATEWAY_API_GROUP && kind.kind == "HTTPRoute" {
                        let entry = (group.to_string(), kind.kind.clone());
                        if !supported_kinds.contains(&entry) {
                            supported_kinds.push(entry);
                        }
                    } else if resolved.is_ok() {
                        resolved = Err(Problem::new(
                            R_INVALID_ROUTE_KINDS,
                            format!(
                                "{path}.allowedRoutes.kinds[{k}]: Weir supports HTTPRoute, not {group}/{}",
                                kind.kind
                            ),
                        ));
                    }
                }
            }
        }
    }

    let allowed = match l
        .allowed_routes
        .as_ref()
        .and_then(|a| a.namespaces.as_ref())
    {
        None => AllowedNamespaces::Same,
        Some(ns) => match ns.from {
            None | Some(gateways::GatewayListenersAllowedRoutesNamespacesFrom::Same) => {
                AllowedNamespaces::Same
            }
            Some(gateways::GatewayListenersAllowedRoutesNamespacesFrom::All) => {
                AllowedNamespaces::All
            }
            Some(gateways::GatewayListenersAllowedRoutesNamespacesFrom::Selector) => {
                AllowedNamespaces::Selector(ns.selector.clone().unwrap_or_default())
            }
        },
    };

    // Certificates.
    let mut certs = Vec::new();
    if protocol == Some(Protocol::Https) {
        let tls = l.tls.as_ref();
        if matches!(
            tls.and_then(|t| t.mode.as_ref()),
            Some(gateways::GatewayListenersTlsMode::Passthrough)
        ) && accepted.is_ok()
        {
            accepted = Err(Problem::new(
                R_UNSUPPORTED_VALUE,
                format!(
                    "{path}.tls.mode: an HTTPS listener terminates TLS; Passthrough needs a TLS listener, which Weir does not serve yet"
                ),
            ));
        }
        let refs = tls
            .and_then(|t| t.certificate_refs.as_deref())
            .unwrap_or_default();
        if refs.is_empty() && resolved.is_ok() {
            resolved = Err(Problem::new(
                R_INVALID_CERTIFICATE_REF,
                format!("{path}.tls.certificateRefs: an HTTPS listener needs a certificate"),
            ));
        }
        let mut recorder = reader.recorder();
        for (j, r) in refs.iter().enumerate() {
            match resolve_cert(
                &mut recorder,
                gw_ns,
                &format!("{path}.tls.certificateRefs[{j}]"),
                r,
            ) {
                Ok(cert) => certs.push(cert),
                Err(p) => {
                    if resolved.is_ok() {
                        resolved = Err(p);
                    }
                }
            }
        }
    }

    ListenerPlan {
        name: l.name.clone(),
        port,
        protocol,
        hostname: l.hostname.clone(),
        allowed,
        supported_kinds,
        accepted,
        conflicted: None,
        resolved,
        certs,
    }
}

fn resolve_cert(
    recorder: &mut super::deps::Recorder<'_>,
    gw_ns: &str,
    path: &str,
    r: &gateways::GatewayListenersTlsCertificateRefs,
) -> Result<Cert, Problem> {
    let group = r.group.as_deref().unwrap_or("");
    let kind = r.kind.as_deref().unwrap_or("Secret");
    if !group.is_empty() || kind != "Secret" {
        return Err(Problem::new(
            R_INVALID_CERTIFICATE_REF,
            format!("{path}: Weir reads certificates from core Secrets, not {group}/{kind}"),
        ));
    }
    let ns = r.namespace.as_deref().unwrap_or(gw_ns);
    let from = RefFrom {
        group: GATEWAY_API_GROUP,
        kind: "Gateway",
        namespace: gw_ns,
    };
    let to = RefTo {
        group: "",
        kind: "Secret",
        namespace: ns,
        name: &r.name,
    };
    if !reference_permitted(recorder, from, to) {
        return Err(Problem::new(
            R_REF_NOT_PERMITTED,
            format!(
                "{path}: no ReferenceGrant in namespace {ns} lets Gateways in {gw_ns} use Secret {}",
                r.name
            ),
        ));
    }
    let Some(secret) = recorder.secret(ns, &r.name) else {
        return Err(Problem::new(
            R_INVALID_CERTIFICATE_REF,
            format!("{path}: Secret {ns}/{} not found", r.name),
        ));
    };
    if secret.type_() != Some("kubernetes.io/tls") {
        return Err(Problem::new(
            R_INVALID_CERTIFICATE_REF,
            format!(
                "{path}: Secret {ns}/{} has type {:?}, not kubernetes.io/tls",
                r.name,
                secret.type_().unwrap_or_default()
            ),
        ));
    }
    // A structural check only: we look for PEM blocks, we do not parse the certificate.
    let pem = |key: &str, marker: &str| {
        secret
            .value(key)
            .and_then(|v| std::str::from_utf8(v).ok())
            .is_some_and(|s| s.contains("-----BEGIN") && s.contains(marker))
    };
    if !pem("tls.crt", "CERTIFICATE-----") || !pem("tls.key", "PRIVATE KEY-----") {
        return Err(Problem::new(
            R_INVALID_CERTIFICATE_REF,
            format!(
                "{path}: Secret {ns}/{} needs a PEM certificate in tls.crt and a PEM private key in tls.key",
                r.name
            ),
        ));
    }
    Ok(Cert {
        namespace: ns.to_string(),
        name: r.name.clone(),
        secret: secret.clone(),
    })
}

/// Marks listeners that conflict with an earlier one on the same port.
fn find_conflicts(listeners: &mut [ListenerPlan]) {
    let mut port_protocol: BTreeMap<u16, Protocol> = BTreeMap::new();
    let mut taken: BTreeSet<(u16, Option<String>)> = BTreeSet::new();
    for l in listeners.iter_mut() {
        let Some(protocol) = l.protocol else { continue };
        if l.accepted.is_err() {
            continue;
        }
        let first = *port_protocol.entry(l.port).or_insert(protocol);
        if first != protocol {
            l.conflicted = Some(Problem::new(
                R_PROTOCOL_CONFLICT,
                format!(
                    "listener {}: port {} already serves {}",
                    l.name, l.port, first
                ),
            ));
        } else if !taken.insert((l.port, l.hostname.clone())) {
            l.conflicted = Some(Problem::new(
                R_HOSTNAME_CONFLICT,
                format!(
                    "listener {}: another listener on port {} already has hostname {}",
                    l.name,
                    l.port,
                    l.hostname.as_deref().unwrap_or("(none)")
                ),
            ));
        }
    }
}

// === Attachment ===

/// One parentRef's outcome, for the route's status.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct ParentOutcome {
    pub(crate) parent_ref: httproutes::HttpRouteStatusParentsParentRef,
    pub(crate) accepted: Result<(), Problem>,
}

/// A route attached to one listener, with the hostnames it serves there.
#[derive(Clone, Debug)]
pub(crate) struct Attached {
    /// The route's translation (saves a lookup by key per attachment in assembly).
    pub(crate) ir: Arc<RouteIr>,
    /// Shared with the route's [`Binding`], so reusing it copies no string.
    pub(crate) hostnames: Arc<[String]>,
}

/// What attaching one route produced: the listeners it attaches to, with the hostnames
/// it serves on each, and one outcome per parentRef naming one of our Gateways.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Binding {
    /// `(Gateway index, listener index, hostnames)`, each listener once.
    listeners: Vec<(usize, usize, Arc<[String]>)>,
    /// In spec order.
    pub(crate) parents: Vec<ParentOutcome>,
}

/// A route with parentRefs naming our Gateways: its translation and its binding.
#[derive(Clone, Debug)]
pub(crate) struct Bound {
    pub(crate) ir: Arc<RouteIr>,
    pub(crate) binding: Arc<Binding>,
}

/// Which routes attach where.
#[derive(Clone, Debug, Default)]
pub(crate) struct Attachments {
    /// Per route whose parentRefs name one of our Gateways, its translation and binding.
    pub(crate) parents: BTreeMap<ObjectKey, Bound>,
    /// Per (Gateway index, listener index), the attached routes in key order.
    pub(crate) listeners: BTreeMap<(usize, usize), Vec<Attached>>,
}

impl Attachments {
    /// The routes attached to listener `li` of Gateway `gi`.
    pub(crate) fn on(&self, gi: usize, li: usize) -> &[Attached] {
        self.listeners.get(&(gi, li)).map_or(&[], Vec::as_slice)
    }
}

/// The binding memo: a route whose translation (the same `Arc`) is unchanged keeps its
/// binding while nothing attachment reads changed (GatewayClasses, Gateways, Namespaces,
/// Secrets, ReferenceGrants). The attachments themselves are kept too and, in such a
/// pass, updated for the changed routes only, so a one-route change binds one route.
#[derive(Default)]
pub(crate) struct BindingCache {
    entries: FastMap<ObjectKey, BindingEntry>,
    attachments: Attachments,
    /// The pass the attachments are for (0: none yet).
    pass: PassId,
}

struct BindingEntry {
    ir: Arc<RouteIr>,
    binding: Arc<Binding>,
}

/// The kinds whose objects attachment reads (through the Gateway plans or directly).
pub(crate) const ATTACHMENT_INPUTS: [Kind; 5] = [
    Kind::GatewayClass,
    Kind::Gateway,
    Kind::Namespace,
    Kind::Secret,
    Kind::ReferenceGrant,
];

/// An attachment a pass removed or added: `(Gateway index, listener index, attached)`.
pub(crate) type AttachedAt = (usize, usize, Attached);

/// How the attachments changed since the previous pass, when only some routes changed.
#[derive(Debug, Default)]
pub(crate) struct AttachDelta {
    /// The routes whose translation changed (or that are gone), in key order.
    pub(crate) routes: Vec<ObjectKey>,
    /// Their attachments in the previous pass.
    pub(crate) removed: Vec<AttachedAt>,
    /// Their attachments now.
    pub(crate) added: Vec<AttachedAt>,
}

/// Binds every route's parentRefs to listeners of our Gateways. `stable`: the
/// [`ATTACHMENT_INPUTS`] did not change since pass `pass - 1`, so the attachments of
/// that pass still hold for routes not in `changed` (the routes whose translation is new
/// or gone) and only those are bound again; the delta says what moved. Otherwise every
/// route is bound and the delta is `None`.
pub(crate) fn attach_routes<'m>(
    store: &Store,
    plans: &[GatewayPlan],
    routes: &BTreeMap<ObjectKey, Arc<RouteIr>>,
    changed: &[ObjectKey],
    (memo, pass, stable): (&'m mut BindingCache, PassId, bool),
) -> (&'m Attachments, Option<AttachDelta>) {
    // Looked up by borrowed names: no allocation per parentRef.
    let by_name: FastMap<(&str, &str), usize> = plans
        .iter()
        .enumerate()
        .map(|(i, p)| ((p.namespace.as_str(), p.name.as_str()), i))
        .collect();
    let incremental = stable && memo.pass != 0 && memo.pass + 1 == pass;
    memo.pass = pass;
    if !incremental {
        memo.entries.clear();
        memo.attachments = Attachments::default();
        // Each route binds on its own: many (a full pass) bind over the cores.
        let routes: Vec<(&ObjectKey, &Arc<RouteIr>)> = routes.iter().collect();
        // The two copies of each key the memo keeps are made there too.
        let bindings = super::parallel::map(&routes, |(key, ir)| {
            let binding = Arc::new(bind(store, plans, &by_name, ir));
            (binding, (*key).clone(), (*key).clone())
        });
        memo.entries.reserve(routes.len());
        // The routes come in key order: their parents are collected and built into the
        // map at once rather than inserted one by one from its root.
        let mut parents = Vec::new();
        for ((_, ir), (binding, key, parent_key)) in routes.into_iter().zip(bindings) {
            memo.attach_listeners(ir, &binding, None);
            if !binding.parents.is_empty() {
                let bound = Bound {
                    ir: ir.clone(),
                    binding: binding.clone(),
                };
                parents.push((parent_key, bound));
            }
            let entry = BindingEntry {
                ir: ir.clone(),
                binding,
            };
            memo.entries.insert(key, entry);
        }
        memo.attachments.parents = parents.into_iter().collect();
        return (&memo.attachments, None);
    }
    let mut delta = AttachDelta {
        routes: changed.to_vec(),
        ..AttachDelta::default()
    };
    for key in changed {
        memo.detach(key, &mut delta.removed);
        if let Some(ir) = routes.get(key) {
            let binding = Arc::new(bind(store, plans, &by_name, ir));
            memo.attach(key, ir, binding, Some(&mut delta.added));
        }
    }
    (&memo.attachments, Some(delta))
}

impl BindingCache {
    /// Adds route `key`'s attachments, in key order on each listener, recording them in
    /// `added`.
    fn attach(
        &mut self,
        key: &ObjectKey,
        ir: &Arc<RouteIr>,
        binding: Arc<Binding>,
        added: Option<&mut Vec<AttachedAt>>,
    ) {
        self.attach_listeners(ir, &binding, added);
        if !binding.parents.is_empty() {
            let bound = Bound {
                ir: ir.clone(),
                binding: binding.clone(),
            };
            self.attachments.parents.insert(key.clone(), bound);
        }
        let entry = BindingEntry {
            ir: ir.clone(),
            binding,
        };
        self.entries.insert(key.clone(), entry);
    }

    /// Adds the attachments of route `ir` (bound as `binding`) to its listeners, in key
    /// order on each, recording them in `added`.
    fn attach_listeners(
        &mut self,
        ir: &Arc<RouteIr>,
        binding: &Binding,
        mut added: Option<&mut Vec<AttachedAt>>,
    ) {
        let out = &mut self.attachments;
        for (gi, li, hostnames) in &binding.listeners {
            let attached = Attached {
                ir: ir.clone(),
                hostnames: hostnames.clone(),
            };
            let list = out.listeners.entry((*gi, *li)).or_default();
            // Appending in key order is the full pass; an update inserts in place.
            let at = match list.last() {
                Some(last) if route_order(last, ir).is_lt() => list.len(),
                _ => list
                    .binary_search_by(|a| route_order(a, ir))
                    .unwrap_or_else(|i| i),
            };
            if let Some(added) = added.as_deref_mut() {
                added.push((*gi, *li, attached.clone()));
            }
            list.insert(at, attached);
        }
    }

    /// Removes route `key`'s attachments, recording them in `removed`.
    fn detach(&mut self, key: &ObjectKey, removed: &mut Vec<AttachedAt>) {
        let Some(old) = self.entries.remove(key) else {
            return;
        };
        let out = &mut self.attachments;
        for (gi, li, _) in &old.binding.listeners {
            let Some(list) = out.listeners.get_mut(&(*gi, *li)) else {
                continue;
            };
            if let Ok(at) = list.binary_search_by(|a| route_order(a, &old.ir)) {
                removed.push((*gi, *li, list.remove(at)));
            }
            if list.is_empty() {
                out.listeners.remove(&(*gi, *li));
            }
        }
        out.parents.remove(key);
    }
}

/// How an attached route sorts against route `ir`: by namespace, then name (key order).
fn route_order(a: &Attached, ir: &RouteIr) -> std::cmp::Ordering {
    (a.ir.namespace.as_str(), a.ir.name.as_str()).cmp(&(ir.namespace.as_str(), ir.name.as_str()))
}

/// Binds one route's parentRefs to listeners of `plans` (found by namespace and name
/// through `by_name`).
fn bind(
    store: &Store,
    plans: &[GatewayPlan],
    by_name: &FastMap<(&str, &str), usize>,
    ir: &RouteIr,
) -> Binding {
    let route_ns = ir.namespace.as_str();
    let mut listeners: Vec<(usize, usize, Vec<String>)> = Vec::new();
    // Sized exactly: a pushed-to vector keeps room for four outcomes (~200 B each), and
    // every route's binding is held between passes.
    let mut parents = Vec::with_capacity(ir.parent_refs.len());
    for pref in &ir.parent_refs {
        let group = pref.group.as_deref().unwrap_or(GATEWAY_API_GROUP);
        let kind = pref.kind.as_deref().unwrap_or("Gateway");
        if group != GATEWAY_API_GROUP || kind != "Gateway" {
            continue;
        }
        let gw_ns = pref.namespace.as_deref().unwrap_or(route_ns);
        let Some(&gi) = by_name.get(&(gw_ns, pref.name.as_str())) else {
            continue;
        };
        let plan = &plans[gi];
        let mut accepted = ir.accepted.clone();
        let mut chosen = Vec::new();
        if accepted.is_ok() {
            accepted = select_listeners(store, plan, pref, ir, &mut chosen);
        }
        for (li, hosts) in chosen {
            match listeners.iter_mut().find(|(g, l, _)| (*g, *l) == (gi, li)) {
                Some((_, _, known)) => {
                    known.extend(hosts);
                    known.sort();
                    known.dedup();
                }
                None => listeners.push((gi, li, hosts)),
            }
        }
        parents.push(ParentOutcome {
            parent_ref: httproutes::HttpRouteStatusParentsParentRef {
                group: pref.group.clone(),
                kind: pref.kind.clone(),
                name: pref.name.clone(),
                namespace: pref.namespace.clone(),
                port: pref.port,
                section_name: pref.section_name.clone(),
            },
            accepted,
        });
    }
    // Collected in place, into the pushed-to vector's spare room: give that back.
    let mut listeners: Vec<_> = listeners
        .into_iter()
        .map(|(gi, li, hosts)| (gi, li, hosts.into()))
        .collect();
    listeners.shrink_to_fit();
    Binding { listeners, parents }
}

/// Picks the listeners of `plan` that `pref` attaches `ir` to, or says why none.
fn select_listeners(
    store: &Store,
    plan: &GatewayPlan,
    pref: &httproutes::HttpRouteParentRefs,
    ir: &RouteIr,
    chosen: &mut Vec<(usize, Vec<String>)>,
) -> Result<(), Problem> {
    let candidates: Vec<(usize, &ListenerPlan)> = plan
        .listeners
        .iter()
        .enumerate()
        .filter(|(_, l)| pref.section_name.as_ref().is_none_or(|s| s == &l.name))
        .filter(|(_, l)| pref.port.is_none_or(|p| p == i32::from(l.port)))
        .collect();
    if candidates.is_empty() {
        return Err(Problem::new(
            R_NO_MATCHING_PARENT,
            format!(
                "Gateway {}/{} has no listener{}{}",
                plan.namespace,
                plan.name,
                pref.section_name
                    .as_ref()
                    .map(|s| format!(" named {s}"))
                    .unwrap_or_default(),
                pref.port
                    .map(|p| format!(" on port {p}"))
                    .unwrap_or_default()
            ),
        ));
    }
    let allowing: Vec<(usize, &ListenerPlan)> = candidates
        .into_iter()
        .filter(|(_, l)| {
            l.usable()
                && l.allows_http_route()
                && namespace_allowed(store, &l.allowed, &plan.namespace, &ir.namespace)
        })
        .collect();
    if allowing.is_empty() {
        return Err(Problem::new(
            R_NOT_ALLOWED_BY_LISTENERS,
            format!(
                "no listener of Gateway {}/{} that this parentRef selects accepts HTTPRoutes from namespace {}",
                plan.namespace, plan.name, ir.namespace
            ),
        ));
    }
    for (li, l) in allowing {
        let hosts = hostnames::intersect(l.hostname.as_deref(), &ir.hostnames);
        if !hosts.is_empty() {
            chosen.push((li, hosts));
        }
    }
    if chosen.is_empty() {
        return Err(Problem::new(
            R_NO_MATCHING_LISTENER_HOSTNAME,
            format!(
                "spec.hostnames: none of {:?} matches a listener hostname of Gateway {}/{}",
                ir.hostnames, plan.namespace, plan.name
            ),
        ));
    }
    Ok(())
}

/// Whether a listener's `allowedRoutes.namespaces` admits routes from `route_ns`.
fn namespace_allowed(
    store: &Store,
    allowed: &AllowedNamespaces,
    gw_ns: &str,
    route_ns: &str,
) -> bool {
    match allowed {
        AllowedNamespaces::Same => gw_ns == route_ns,
        AllowedNamespaces::All => true,
        AllowedNamespaces::Selector(sel) => {
            let mut labels: BTreeMap<String, String> = store
                .namespace(route_ns)
                .and_then(|n| n.metadata.labels.clone())
                .unwrap_or_default();
            // Kubernetes sets this label on every namespace.
            labels.insert(
                "kubernetes.io/metadata.name".to_string(),
                route_ns.to_string(),
            );
            selector_matches(sel, &labels)
        }
    }
}

/// Kubernetes label selector semantics; an unknown operator matches nothing.
fn selector_matches(
    sel: &gateways::GatewayListenersAllowedRoutesNamespacesSelector,
    labels: &BTreeMap<String, String>,
) -> bool {
    let labels_ok = sel
        .match_labels
        .iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v));
    let exprs_ok = sel.match_expressions.iter().flatten().all(|e| {
        let values = e.values.as_deref().unwrap_or_default();
        let got = labels.get(&e.key);
        match e.operator.as_str() {
            "In" => got.is_some_and(|v| values.contains(v)),
            "NotIn" => got.is_none_or(|v| !values.contains(v)),
            "Exists" => got.is_some(),
            "DoesNotExist" => got.is_none(),
            _ => false,
        }
    });
    labels_ok && exprs_ok
}
