//! Status: the conditions each object we own should carry, in Kubernetes' shape.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use serde_json::{Value, json};

use crate::model::gateway_api::{gateways, httproutes};
use crate::model::{Kind, Object, ObjectKey};
use crate::store::Store;

use super::cluster::Upstreams;
use super::conditions::*;
use super::gateway::{
    AttachDelta, Attachments, Binding, Bound, Classes, GatewayPlan, ParentOutcome,
};
use super::http_route::RouteIr;
use super::options::OptionError;
use super::{CONTROLLER_NAME, FastMap, Statuses};

/// Writes every status into `out`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn write_all(
    store: &Store,
    stamp: &Stamp,
    classes: &Classes,
    plans: &[GatewayPlan],
    routes: &BTreeMap<ObjectKey, Arc<RouteIr>>,
    attachments: &Attachments,
    upstreams: &Upstreams,
    (vhost_errors, vhost_warnings): (&[OptionError], &[OptionError]),
    (route_memo, delta): (&mut RouteStatusCache, Option<&AttachDelta>),
    out: &mut Statuses,
) {
    for (name, class) in classes {
        let c = stamp.of_result(
            ACCEPTED,
            R_ACCEPTED,
            "Weir manages Gateways of this class",
            class.accepted.as_ref().map(|_| ()),
            class.generation,
        );
        out.insert(
            ObjectKey::cluster(Kind::GatewayClass, name),
            Arc::new(json!({ "conditions": [c] })),
        );
    }
    for (gi, plan) in plans.iter().enumerate() {
        out.insert(
            plan.key.clone(),
            Arc::new(gateway_status(stamp, gi, plan, attachments)),
        );
    }
    let build = |ir: &RouteIr, binding: &Binding| route_status(stamp, ir, &binding.parents);
    match delta {
        Some(d) => route_memo.update(&d.routes, attachments, build),
        None => route_memo.rebuild(attachments, build),
    }
    // The route statuses are most of the map: copied whole, the others inserted.
    let others = std::mem::replace(out, route_memo.statuses.clone());
    out.extend(others);
    for (key, outcome) in upstreams {
        let c = match &outcome.result {
            Ok(_) if outcome.ignored.is_empty() => stamp.condition(
                ACCEPTED,
                true,
                R_ACCEPTED,
                "Upstream is accepted",
                outcome.generation,
            ),
            Ok(_) => stamp.condition(
                ACCEPTED,
                true,
                R_ACCEPTED,
                format!(
                    "Upstream is accepted; not applied yet: {}",
                    outcome.ignored.join(", ")
                ),
                outcome.generation,
            ),
            Err(p) => stamp.condition(
                ACCEPTED,
                false,
                p.reason,
                p.message.clone(),
                outcome.generation,
            ),
        };
        out.insert(key.clone(), Arc::new(json!({ "conditions": [c] })));
    }
    // RouteOption keys that failed, or lost to another RouteOption, on some route.
    let mut option_errors: BTreeMap<&ObjectKey, Vec<&str>> = BTreeMap::new();
    let mut option_warnings: BTreeMap<&ObjectKey, BTreeSet<&str>> = BTreeMap::new();
    let route_notes = routes
        .values()
        .map(|ir| (&ir.option_errors[..], &ir.option_warnings[..]));
    for (errors, warnings) in route_notes.chain([(vhost_errors, vhost_warnings)]) {
        for e in errors {
            let list = option_errors.entry(&e.option).or_default();
            if !list.contains(&e.message.as_str()) {
                list.push(&e.message);
            }
        }
        for w in warnings {
            option_warnings
                .entry(&w.option)
                .or_default()
                .insert(&w.message);
        }
    }
    for kind in [
        Kind::RouteOption,
        Kind::VirtualHostOption,
        Kind::ListenerOption,
        Kind::HttpListenerOption,
        Kind::DirectResponse,
    ] {
        for o in store.of_kind(kind) {
            let result = validate_weir(o).and_then(|()| route_option_problem(o, &option_errors));
            let accepted = format!("{kind} is accepted");
            let c = stamp.of_result(
                ACCEPTED,
                R_ACCEPTED,
                &accepted,
                result.as_ref().map(|_| ()),
                o.metadata().generation,
            );
            let status = match option_warnings.get(&o.key()) {
                Some(warnings) => json!({ "conditions": [c], "warnings": warnings }),
                None => json!({ "conditions": [c] }),
            };
            out.insert(o.key(), Arc::new(status));
        }
    }
}

/// An HTTPRoute's status from its translation and its parents' outcomes.
fn route_status(stamp: &Stamp, ir: &RouteIr, parents: &[ParentOutcome]) -> Value {
    let resolved = stamp.of_result(
        RESOLVED_REFS,
        R_RESOLVED_REFS,
        "All references are resolved",
        ir.resolved.as_ref().map(|_| ()),
        ir.generation,
    );
    let status = httproutes::HttpRouteStatus {
        parents: parents
            .iter()
            .map(|p| httproutes::HttpRouteStatusParents {
                conditions: vec![
                    stamp.of_result(
                        ACCEPTED,
                        R_ACCEPTED,
                        "Route is accepted",
                        p.accepted.as_ref().map(|_| ()),
                        ir.generation,
                    ),
                    resolved.clone(),
                ],
                controller_name: CONTROLLER_NAME.to_string(),
                parent_ref: p.parent_ref.clone(),
            })
            .collect(),
    };
    serde_json::to_value(&status).unwrap_or(Value::Null)
}

/// The HTTPRoute status memo: a route whose translation (the same `Arc`) and parent
/// outcomes did not change keeps its status value, conditions' times included. The
/// statuses of the last pass are kept in key order, so a pass that changed some routes
/// replaces only their entries. At 10,000 routes, building every status afresh was a
/// third of a one-route-change pass.
#[derive(Default)]
pub(crate) struct RouteStatusCache {
    entries: FastMap<ObjectKey, RouteStatusEntry>,
    /// Every attached route's status as of the last pass.
    statuses: Statuses,
    /// The status built last this pass, with the route and binding it was built from: a
    /// route with the same outcome (references resolved, generation and parent outcomes,
    /// as most routes behind one Gateway have) shares that value instead of serialising
    /// its own. At 10,000 routes that is 10,000 JSON trees fewer.
    last: Option<(Arc<RouteIr>, Arc<Binding>, Arc<Value>)>,
}

struct RouteStatusEntry {
    ir: Arc<RouteIr>,
    binding: Arc<Binding>,
    status: Arc<Value>,
}

impl RouteStatusCache {
    /// The status of route `key` (translated as `ir`, bound as `binding`): the memoised
    /// one if neither changed, else `build`'s, memoised. `build` reads only the route's
    /// `resolved` and `generation` and the binding's `parents`, so the value built last
    /// this pass from equal ones is taken as it is.
    fn get_or_build(
        &mut self,
        key: &ObjectKey,
        ir: &Arc<RouteIr>,
        binding: &Arc<Binding>,
        build: impl FnOnce() -> Value,
    ) -> Arc<Value> {
        if let Some(e) = self.entries.get(key) {
            let same_binding = Arc::ptr_eq(&e.binding, binding) || e.binding == *binding;
            if Arc::ptr_eq(&e.ir, ir) && same_binding {
                return e.status.clone();
            }
        }
        let status = match &self.last {
            Some((last_ir, last_binding, status))
                if last_ir.resolved == ir.resolved
                    && last_ir.generation == ir.generation
                    && last_binding.parents == binding.parents =>
            {
                status.clone()
            }
            _ => {
                let status = Arc::new(build());
                self.last = Some((ir.clone(), binding.clone(), status.clone()));
                status
            }
        };
        let entry = RouteStatusEntry {
            ir: ir.clone(),
            binding: binding.clone(),
            status: status.clone(),
        };
        self.entries.insert(key.clone(), entry);
        status
    }

    /// Every attached route's status, memoised or built; routes no longer attached are
    /// forgotten.
    fn rebuild(&mut self, attachments: &Attachments, build: impl Fn(&RouteIr, &Binding) -> Value) {
        // Built in an earlier pass, with an earlier time in its conditions.
        self.last = None;
        let statuses: Statuses = attachments
            .parents
            .iter()
            .map(|(key, Bound { ir, binding })| {
                let status = self.get_or_build(key, ir, binding, || build(ir, binding));
                (key.clone(), status)
            })
            .collect();
        if self.entries.len() != statuses.len() {
            self.entries.retain(|k, _| statuses.contains_key(k));
        }
        self.statuses = statuses;
    }

    /// Refreshes the statuses of routes `changed` only (the others' translation and
    /// binding are those of the last pass).
    fn update(
        &mut self,
        changed: &[ObjectKey],
        attachments: &Attachments,
        build: impl Fn(&RouteIr, &Binding) -> Value,
    ) {
        self.last = None;
        for key in changed {
            match attachments.parents.get(key) {
                Some(Bound { ir, binding }) => {
                    let status = self.get_or_build(key, ir, binding, || build(ir, binding));
                    self.statuses.insert(key.clone(), status);
                }
                None => {
                    self.entries.remove(key);
                    self.statuses.remove(key);
                }
            }
        }
    }
}

/// A valid option object's problems from attachment: a RouteOption target outside its
/// namespace, or keys that no plugin claims or whose plugin rejected the value.
fn route_option_problem(
    o: &Object,
    option_errors: &BTreeMap<&ObjectKey, Vec<&str>>,
) -> Result<(), Problem> {
    if let Some(message) = super::options::target_problem(o) {
        return Err(Problem::new(R_INVALID_SPEC, message));
    }
    match option_errors.get(&o.key()) {
        Some(errors) => {
            let mut errors = errors.clone();
            errors.sort_unstable();
            Err(Problem::new(R_INVALID_SPEC, errors.join("; ")))
        }
        None => Ok(()),
    }
}

fn validate_weir(o: &Object) -> Result<(), Problem> {
    use crate::model::{direct_response, options};
    let r = match o {
        Object::RouteOption(x) => options::Spec::try_from(&**x).map(drop),
        Object::VirtualHostOption(x) => options::Spec::try_from(&**x).map(drop),
        Object::ListenerOption(x) => options::Spec::try_from(&**x).map(drop),
        Object::HttpListenerOption(x) => options::Spec::try_from(&**x).map(drop),
        Object::DirectResponse(x) => direct_response::Spec::try_from(&**x).map(drop),
        _ => Ok(()),
    };
    r.map_err(|e| Problem::new(R_INVALID_SPEC, e.to_string()))
}

fn gateway_status(
    stamp: &Stamp,
    gi: usize,
    plan: &GatewayPlan,
    attachments: &Attachments,
) -> Value {
    let g = plan.generation;
    let listeners: Vec<gateways::GatewayStatusListeners> = plan
        .listeners
        .iter()
        .enumerate()
        .map(|(li, l)| {
            let accepted = match (&l.accepted, &l.conflicted) {
                (Err(p), _) | (Ok(()), Some(p)) => {
                    stamp.condition(ACCEPTED, false, p.reason, p.message.clone(), g)
                }
                (Ok(()), None) => {
                    stamp.condition(ACCEPTED, true, R_ACCEPTED, "Listener is accepted", g)
                }
            };
            let conflicted = match &l.conflicted {
                Some(p) => stamp.condition(CONFLICTED, true, p.reason, p.message.clone(), g),
                None => stamp.condition(CONFLICTED, false, R_NO_CONFLICTS, "No conflicts", g),
            };
            let resolved = stamp.of_result(
                RESOLVED_REFS,
                R_RESOLVED_REFS,
                "All references are resolved",
                l.resolved.as_ref().map(|_| ()),
                g,
            );
            let programmed = if l.programmed() && plan.problem.is_none() {
                stamp.condition(PROGRAMMED, true, R_PROGRAMMED, "Listener is programmed", g)
            } else {
                stamp.condition(
                    PROGRAMMED,
                    false,
                    R_INVALID,
                    "Listener is not programmed: see its other conditions",
                    g,
                )
            };
            gateways::GatewayStatusListeners {
                attached_routes: i32::try_from(attachments.on(gi, li).len()).unwrap_or(i32::MAX),
                conditions: vec![accepted, conflicted, resolved, programmed],
                name: l.name.clone(),
                supported_kinds: Some(
                    l.supported_kinds
                        .iter()
                        .map(
                            |(group, kind)| gateways::GatewayStatusListenersSupportedKinds {
                                group: Some(group.clone()),
                                kind: kind.clone(),
                            },
                        )
                        .collect(),
                ),
            }
        })
        .collect();
    let invalid: Vec<&str> = plan
        .listeners
        .iter()
        .filter(|l| !l.usable())
        .map(|l| l.name.as_str())
        .collect();
    let (accepted, programmed) = if let Some(p) = &plan.problem {
        (
            stamp.condition(ACCEPTED, false, p.reason, p.message.clone(), g),
            stamp.condition(PROGRAMMED, false, R_INVALID, p.message.clone(), g),
        )
    } else if !plan.listeners.is_empty() && invalid.len() == plan.listeners.len() {
        let msg = format!("no listener is valid: {}", invalid.join(", "));
        (
            stamp.condition(ACCEPTED, false, R_LISTENERS_NOT_VALID, msg.clone(), g),
            stamp.condition(PROGRAMMED, false, R_INVALID, msg, g),
        )
    } else if !invalid.is_empty() {
        (
            stamp.condition(
                ACCEPTED,
                true,
                R_LISTENERS_NOT_VALID,
                format!("some listeners are not valid: {}", invalid.join(", ")),
                g,
            ),
            stamp.condition(PROGRAMMED, true, R_PROGRAMMED, "Gateway is programmed", g),
        )
    } else {
        (
            stamp.condition(ACCEPTED, true, R_ACCEPTED, "Gateway is accepted", g),
            stamp.condition(PROGRAMMED, true, R_PROGRAMMED, "Gateway is programmed", g),
        )
    };
    let status = gateways::GatewayStatus {
        conditions: Some(vec![accepted, programmed]),
        listeners: Some(listeners),
        ..Default::default()
    };
    serde_json::to_value(&status).unwrap_or(Value::Null)
}
