//! What status to write: the translator's status merged into the object's current one.
//! Pure functions, so every rule is unit-tested without an API server.
//!
//! - A condition whose `status` did not change keeps its `lastTransitionTime` (the
//!   `meta.SetStatusCondition` rule); every condition gets the object's
//!   `observedGeneration`.
//! - HTTPRoute `status.parents` is shared with other controllers: entries whose
//!   `controllerName` is not Weir's are kept untouched; Weir's are replaced by ours.
//! - Fields of the current status the translator does not produce are kept.
//! - [`next_status`] returns `None` when the merged status means the same as the current
//!   one (list order of route parents aside), so nothing is written.

use serde_json::{Map, Value};

use crate::model::Kind;
use crate::translate::CONTROLLER_NAME;

/// The status to write, or `None` when the current one already says the same.
///
/// `current` is the object's `status` (absent when it has none), `desired` what the
/// translator computed, `generation` the object's `metadata.generation`.
pub fn next_status(
    kind: Kind,
    current: Option<&Value>,
    desired: &Value,
    generation: Option<i64>,
) -> Option<Value> {
    let merged = merge(kind, current, desired, generation);
    let unchanged = current.is_some_and(|c| normalized(kind, c) == normalized(kind, &merged));
    (!unchanged).then_some(merged)
}

/// The merged status (see the module documentation).
pub fn merge(
    kind: Kind,
    current: Option<&Value>,
    desired: &Value,
    generation: Option<i64>,
) -> Value {
    let empty = Map::new();
    let current_map = current.and_then(Value::as_object).unwrap_or(&empty);
    let mut out = current_map.clone();
    let Some(desired_map) = desired.as_object() else {
        return desired.clone();
    };
    for (field, value) in desired_map {
        let merged = match (kind, field.as_str()) {
            (_, "conditions") => merge_conditions(current_map.get(field), value, generation),
            (Kind::Gateway, "listeners") => {
                merge_named(current_map.get(field), value, generation, |l| {
                    l.get("name").cloned()
                })
            }
            (Kind::HttpRoute, "parents") => {
                merge_parents(current_map.get(field), value, generation)
            }
            _ => value.clone(),
        };
        out.insert(field.clone(), merged);
    }
    Value::Object(out)
}

/// Conditions in `desired`, keeping the current `lastTransitionTime` of those whose status
/// did not change, with `observedGeneration` set.
pub fn merge_conditions(
    current: Option<&Value>,
    desired: &Value,
    generation: Option<i64>,
) -> Value {
    let current = current.and_then(Value::as_array);
    let Some(desired) = desired.as_array() else {
        return desired.clone();
    };
    let merged = desired
        .iter()
        .map(|d| {
            let mut c = d.clone();
            if let Some(generation) = generation
                && let Some(map) = c.as_object_mut()
            {
                map.insert("observedGeneration".into(), generation.into());
            }
            let same = current.into_iter().flatten().find(|old| {
                old.get("type") == d.get("type") && old.get("status") == d.get("status")
            });
            if let Some(old) = same
                && let Some(time) = old.get("lastTransitionTime")
            {
                c["lastTransitionTime"] = time.clone();
            }
            c
        })
        .collect();
    Value::Array(merged)
}

/// A list of objects with conditions (Gateway listeners), matched to the current list by
/// `id`.
fn merge_named(
    current: Option<&Value>,
    desired: &Value,
    generation: Option<i64>,
    id: impl Fn(&Value) -> Option<Value>,
) -> Value {
    let current = current.and_then(Value::as_array);
    let Some(desired) = desired.as_array() else {
        return desired.clone();
    };
    Value::Array(
        desired
            .iter()
            .map(|d| {
                let old = current
                    .into_iter()
                    .flatten()
                    .find(|o| id(o).is_some() && id(o) == id(d));
                with_conditions(d, old, generation)
            })
            .collect(),
    )
}

/// `entry` with its conditions merged against `old`'s.
fn with_conditions(entry: &Value, old: Option<&Value>, generation: Option<i64>) -> Value {
    let mut out = entry.clone();
    if let Some(conditions) = entry.get("conditions") {
        out["conditions"] = merge_conditions(
            old.and_then(|o| o.get("conditions")),
            conditions,
            generation,
        );
    }
    out
}

/// Route parents: other controllers' entries as they are, then ours.
fn merge_parents(current: Option<&Value>, desired: &Value, generation: Option<i64>) -> Value {
    let current = current.and_then(Value::as_array);
    let Some(desired) = desired.as_array() else {
        return desired.clone();
    };
    let ours = |p: &Value| p.get("controllerName").and_then(Value::as_str) == Some(CONTROLLER_NAME);
    let mut out: Vec<Value> = current
        .into_iter()
        .flatten()
        .filter(|p| !ours(p))
        .cloned()
        .collect();
    for d in desired.iter().filter(|d| ours(d)) {
        let old = current
            .into_iter()
            .flatten()
            .find(|o| ours(o) && o.get("parentRef") == d.get("parentRef"));
        out.push(with_conditions(d, old, generation));
    }
    Value::Array(out)
}

/// The status with the order of route parents made canonical, for comparison.
fn normalized(kind: Kind, status: &Value) -> Value {
    let mut v = status.clone();
    if kind == Kind::HttpRoute
        && let Some(parents) = v.get_mut("parents").and_then(Value::as_array_mut)
    {
        parents.sort_by_key(|p| p.to_string());
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cond(type_: &str, status: &str, time: &str) -> Value {
        json!({"type": type_, "status": status, "reason": "R", "message": "m",
               "lastTransitionTime": time, "observedGeneration": 1})
    }

    #[test]
    fn unchanged_condition_keeps_its_transition_time_and_nothing_is_written() {
        let current = json!({"conditions": [cond("Accepted", "True", "2020-01-01T00:00:00Z")]});
        let desired = json!({"conditions": [cond("Accepted", "True", "2026-01-01T00:00:00Z")]});
        assert_eq!(
            next_status(Kind::GatewayClass, Some(&current), &desired, Some(1)),
            None
        );
    }

    #[test]
    fn changed_condition_gets_the_new_time_and_generation() {
        let current = json!({"conditions": [cond("Accepted", "True", "2020-01-01T00:00:00Z"),
                                            cond("Programmed", "True", "2020-01-01T00:00:00Z")]});
        let desired = json!({"conditions": [cond("Accepted", "False", "2026-01-01T00:00:00Z"),
                                            cond("Programmed", "True", "2026-01-01T00:00:00Z")]});
        let next = next_status(Kind::Upstream, Some(&current), &desired, Some(7)).unwrap();
        assert_eq!(
            next["conditions"][0]["lastTransitionTime"],
            "2026-01-01T00:00:00Z"
        );
        assert_eq!(next["conditions"][0]["status"], "False");
        assert_eq!(
            next["conditions"][1]["lastTransitionTime"],
            "2020-01-01T00:00:00Z"
        );
        assert_eq!(next["conditions"][0]["observedGeneration"], 7);
        assert_eq!(next["conditions"][1]["observedGeneration"], 7);
    }

    #[test]
    fn a_new_generation_alone_is_written() {
        let current = json!({"conditions": [cond("Accepted", "True", "2020-01-01T00:00:00Z")]});
        let desired = json!({"conditions": [cond("Accepted", "True", "2026-01-01T00:00:00Z")]});
        let next = next_status(Kind::GatewayClass, Some(&current), &desired, Some(2)).unwrap();
        assert_eq!(next["conditions"][0]["observedGeneration"], 2);
        assert_eq!(
            next["conditions"][0]["lastTransitionTime"],
            "2020-01-01T00:00:00Z"
        );
    }

    #[test]
    fn an_object_without_status_is_written() {
        let desired = json!({"conditions": [cond("Accepted", "True", "2026-01-01T00:00:00Z")]});
        let next = next_status(Kind::GatewayClass, None, &desired, Some(1)).unwrap();
        assert_eq!(next["conditions"][0]["type"], "Accepted");
    }

    fn parent(controller: &str, gateway: &str, status: &str, time: &str) -> Value {
        json!({"controllerName": controller,
               "parentRef": {"name": gateway, "namespace": "infra"},
               "conditions": [cond("Accepted", status, time)]})
    }

    #[test]
    fn other_controllers_route_parents_survive_and_ours_are_replaced() {
        let theirs = parent("example.com/other", "gw", "False", "2019-01-01T00:00:00Z");
        let current = json!({"parents": [
            theirs.clone(),
            parent(CONTROLLER_NAME, "gw", "True", "2020-01-01T00:00:00Z"),
            parent(CONTROLLER_NAME, "removed", "True", "2020-01-01T00:00:00Z"),
        ]});
        let desired = json!({"parents": [
            parent(CONTROLLER_NAME, "gw", "True", "2026-01-01T00:00:00Z"),
            parent(CONTROLLER_NAME, "new", "True", "2026-01-01T00:00:00Z"),
        ]});
        let next = next_status(Kind::HttpRoute, Some(&current), &desired, Some(1)).unwrap();
        let parents = next["parents"].as_array().unwrap();
        assert_eq!(parents.len(), 3);
        assert_eq!(parents[0], theirs);
        assert_eq!(parents[1]["parentRef"]["name"], "gw");
        assert_eq!(
            parents[1]["conditions"][0]["lastTransitionTime"],
            "2020-01-01T00:00:00Z"
        );
        assert_eq!(parents[2]["parentRef"]["name"], "new");
        // Written once, the same desired status is then a no-op, whatever the order.
        let reordered =
            json!({"parents": [parents[2].clone(), parents[0].clone(), parents[1].clone()]});
        assert_eq!(
            next_status(Kind::HttpRoute, Some(&reordered), &desired, Some(1)),
            None
        );
    }

    #[test]
    fn gateway_listener_conditions_keep_their_times_by_listener_name() {
        let current = json!({"addresses": [{"value": "10.0.0.1"}], "listeners": [
            {"name": "http", "attachedRoutes": 1, "conditions": [cond("Programmed", "True", "2020-01-01T00:00:00Z")]}]});
        let desired = json!({"listeners": [
            {"name": "http", "attachedRoutes": 2, "conditions": [cond("Programmed", "True", "2026-01-01T00:00:00Z")]}]});
        let next = next_status(Kind::Gateway, Some(&current), &desired, Some(1)).unwrap();
        assert_eq!(next["listeners"][0]["attachedRoutes"], 2);
        assert_eq!(
            next["listeners"][0]["conditions"][0]["lastTransitionTime"],
            "2020-01-01T00:00:00Z"
        );
        // A field we do not compute is kept.
        assert_eq!(next["addresses"][0]["value"], "10.0.0.1");
    }
}
