//! Status: the conditions each object we own should carry, in Kubernetes' shape.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{Value, json};

use crate::model::gateway_api::{gateways, httproutes};
use crate::model::{Kind, Object, ObjectKey};
use crate::store::Store;

use super::CONTROLLER_NAME;
use super::cluster::Upstreams;
use super::conditions::*;
use super::gateway::{Attachments, Classes, GatewayPlan};
use super::http_route::RouteIr;

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
    out: &mut BTreeMap<ObjectKey, Value>,
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
            json!({ "conditions": [c] }),
        );
    }
    for (gi, plan) in plans.iter().enumerate() {
        out.insert(
            plan.key.clone(),
            gateway_status(stamp, gi, plan, attachments),
        );
    }
    for (key, parents) in &attachments.parents {
        let Some(ir) = routes.get(key) else { continue };
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
        out.insert(
            key.clone(),
            serde_json::to_value(&status).unwrap_or(Value::Null),
        );
    }
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
        out.insert(key.clone(), json!({ "conditions": [c] }));
    }
    for kind in [
        Kind::RouteOption,
        Kind::VirtualHostOption,
        Kind::ListenerOption,
        Kind::HttpListenerOption,
        Kind::DirectResponse,
    ] {
        for o in store.of_kind(kind) {
            let result = validate_weir(o);
            let c = stamp.of_result(
                ACCEPTED,
                R_ACCEPTED,
                &format!("{kind} is accepted"),
                result.as_ref().map(|_| ()),
                o.metadata().generation,
            );
            out.insert(o.key(), json!({ "conditions": [c] }));
        }
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
