//! Reading Weir's reported status (keyed `Kind/namespace/name`) the way the suite's
//! status assertions do.

use serde_json::Value;

/// A condition of a list: `(status, reason)`.
pub fn condition<'a>(conditions: Option<&'a Value>, kind: &str) -> Option<(&'a str, &'a str)> {
    let c = conditions?
        .as_array()?
        .iter()
        .find(|c| c.get("type").and_then(Value::as_str) == Some(kind))?;
    Some((
        c.get("status").and_then(Value::as_str).unwrap_or(""),
        c.get("reason").and_then(Value::as_str).unwrap_or(""),
    ))
}

/// An object's status.
pub fn object<'a>(status: &'a Value, key: &str) -> Result<&'a Value, String> {
    status
        .get(key)
        .ok_or_else(|| format!("Weir reports no status for {key}"))
}

/// The `status.parents` entry of route `ns/name` for Gateway `gw_ns/gw_name`.
pub fn route_parent<'a>(
    status: &'a Value,
    kind: &str,
    route: &str,
    gateway: &str,
) -> Result<&'a Value, String> {
    let (route_ns, _) = route.split_once('/').unwrap_or(("", route));
    let (gw_ns, gw_name) = gateway.split_once('/').unwrap_or(("", gateway));
    let st = object(status, &format!("{kind}/{route}"))?;
    st.get("parents")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .find(|p| {
            let r = p.get("parentRef").unwrap_or(&Value::Null);
            let ns = r
                .get("namespace")
                .and_then(Value::as_str)
                .unwrap_or(route_ns);
            r.get("name").and_then(Value::as_str) == Some(gw_name) && ns == gw_ns
        })
        .ok_or_else(|| format!("{kind} {route} has no parent status for Gateway {gateway}"))
}

/// Checks a route parent condition: `want` is `(status, Some(reason))`.
pub fn route_condition(
    status: &Value,
    route: &str,
    gateway: &str,
    kind: &str,
    want: (&str, Option<&str>),
) -> Result<(), String> {
    let parent = route_parent(status, "HTTPRoute", route, gateway)?;
    check(
        condition(parent.get("conditions"), kind),
        &format!("HTTPRoute {route} (parent {gateway}) {kind}"),
        want,
    )
}

/// Checks a Gateway condition.
pub fn gateway_condition(
    status: &Value,
    gateway: &str,
    kind: &str,
    want: (&str, Option<&str>),
) -> Result<(), String> {
    let st = object(status, &format!("Gateway/{gateway}"))?;
    check(
        condition(st.get("conditions"), kind),
        &format!("Gateway {gateway} {kind}"),
        want,
    )
}

/// A listener's status entry.
pub fn listener<'a>(status: &'a Value, gateway: &str, name: &str) -> Result<&'a Value, String> {
    let st = object(status, &format!("Gateway/{gateway}"))?;
    st.get("listeners")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .find(|l| l.get("name").and_then(Value::as_str) == Some(name))
        .ok_or_else(|| format!("Gateway {gateway} has no status for listener {name}"))
}

/// Checks a listener condition.
pub fn listener_condition(
    status: &Value,
    gateway: &str,
    name: &str,
    kind: &str,
    want: (&str, Option<&str>),
) -> Result<(), String> {
    let l = listener(status, gateway, name)?;
    check(
        condition(l.get("conditions"), kind),
        &format!("Gateway {gateway} listener {name} {kind}"),
        want,
    )
}

/// Checks a listener's attachedRoutes.
pub fn attached_routes(status: &Value, gateway: &str, name: &str, want: u64) -> Result<(), String> {
    let l = listener(status, gateway, name)?;
    let got = l.get("attachedRoutes").and_then(Value::as_u64).unwrap_or(0);
    if got == want {
        Ok(())
    } else {
        Err(format!(
            "Gateway {gateway} listener {name} attachedRoutes {got} (wanted {want})"
        ))
    }
}

/// Checks a listener's supportedKinds (kind names, in any order).
pub fn supported_kinds(
    status: &Value,
    gateway: &str,
    name: &str,
    want: &[&str],
) -> Result<(), String> {
    let l = listener(status, gateway, name)?;
    let mut got: Vec<&str> = l
        .get("supportedKinds")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|k| k.get("kind").and_then(Value::as_str))
        .collect();
    got.sort();
    let mut want = want.to_vec();
    want.sort();
    if got == want {
        Ok(())
    } else {
        Err(format!(
            "Gateway {gateway} listener {name} supportedKinds {got:?} (wanted {want:?})"
        ))
    }
}

/// The route is accepted by no parent at all.
pub fn no_accepted_parent(status: &Value, route: &str) -> Result<(), String> {
    let st = object(status, &format!("HTTPRoute/{route}"))?;
    for p in st
        .get("parents")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if condition(p.get("conditions"), "Accepted").is_some_and(|(s, _)| s == "True") {
            return Err(format!(
                "HTTPRoute {route} is accepted by {}",
                p["parentRef"]
            ));
        }
    }
    Ok(())
}

fn check(got: Option<(&str, &str)>, what: &str, want: (&str, Option<&str>)) -> Result<(), String> {
    match got {
        Some((s, r)) if s == want.0 && want.1.is_none_or(|w| w == r) => Ok(()),
        Some((s, r)) => Err(format!(
            "{what}: status {s} reason {r} (wanted {} {})",
            want.0,
            want.1.unwrap_or("any reason")
        )),
        None => Err(format!("{what}: condition missing (wanted {})", want.0)),
    }
}

/// Every condition carries `observedGeneration` = `generation`.
pub fn generation_current(
    conditions: Option<&Value>,
    generation: i64,
    what: &str,
) -> Result<(), String> {
    let list = conditions
        .and_then(Value::as_array)
        .filter(|l| !l.is_empty())
        .ok_or_else(|| format!("{what}: no conditions"))?;
    for c in list {
        let got = c.get("observedGeneration").and_then(Value::as_i64);
        if got != Some(generation) {
            return Err(format!(
                "{what}: condition {} has observedGeneration {got:?} (wanted {generation})",
                c["type"]
            ));
        }
    }
    Ok(())
}
