//! Service discovery: one Upstream of type `kube` per Service port.
//!
//! For every Service (not `ExternalName`) and every port, an Upstream named
//! `<service>-<port>` lives in the Service's namespace:
//!
//! ```yaml
//! apiVersion: gateway.weir.dev/v1alpha1
//! kind: Upstream
//! metadata:
//!   name: petstore-8080
//!   namespace: shop
//!   labels: {app.kubernetes.io/managed-by: weir-discovery}
//!   ownerReferences: [{apiVersion: v1, kind: Service, name: petstore, uid: ..., controller: true}]
//! spec:
//!   discoveryMetadata: {labels: <the Service's labels>}
//!   kube: {serviceName: petstore, serviceNamespace: shop, servicePort: 8080}
//! ```
//!
//! The owner reference lets Kubernetes garbage-collect it with its Service; discovery also
//! deletes the Upstreams of a port that went away or of a Service that opted out. A
//! `weir.dev/discovery: disabled` label on the Service or its Namespace opts out. An
//! Upstream of that name that discovery did not create (no managed-by label and owner
//! reference to the Service) is a user's: it is never changed or deleted.
//!
//! [`plan`] is a pure function of the Services, Namespaces and Upstreams; [`run`] applies
//! it through the API whenever the reflectors change, while this replica leads.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use kube::Client;
use kube::api::{Api, DeleteParams, DynamicObject, PostParams};
use serde_json::{Value, json};
use tokio::sync::watch;

use crate::model::{Kind, WEIR_GROUP};
use crate::source::kubernetes::Reflectors;

/// The label that opts a Service or a Namespace out of discovery (value `disabled`).
pub const OPT_OUT_LABEL: &str = "weir.dev/discovery";
/// The label discovery puts on the Upstreams it manages.
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
/// The value of [`MANAGED_BY_LABEL`] on discovered Upstreams.
pub const MANAGED_BY: &str = "weir-discovery";

/// One change discovery wants made.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// Create this Upstream.
    Create(Value),
    /// Replace the existing discovered Upstream with this one (carries its resourceVersion).
    Replace(Value),
    /// Delete the discovered Upstream `namespace/name`.
    Delete(String, String),
}

/// The name of the Upstream for port `port` of Service `service`.
pub fn upstream_name(service: &str, port: i64) -> String {
    format!("{service}-{port}")
}

fn opted_out(object: &Value) -> bool {
    object["metadata"]["labels"][OPT_OUT_LABEL].as_str() == Some("disabled")
}

fn ns_name(object: &Value) -> (String, String) {
    let m = &object["metadata"];
    (
        m["namespace"].as_str().unwrap_or_default().to_string(),
        m["name"].as_str().unwrap_or_default().to_string(),
    )
}

/// Whether discovery created this Upstream (so may change or delete it).
pub fn is_discovered(upstream: &Value) -> bool {
    upstream["metadata"]["labels"][MANAGED_BY_LABEL].as_str() == Some(MANAGED_BY)
        && upstream["metadata"]["ownerReferences"]
            .as_array()
            .is_some_and(|refs| {
                refs.iter()
                    .any(|r| r["kind"] == "Service" && r["apiVersion"] == "v1")
            })
}

/// The Upstreams the Services call for, by (namespace, name).
pub fn desired(services: &[Value], namespaces: &[Value]) -> BTreeMap<(String, String), Value> {
    let disabled: BTreeSet<&str> = namespaces
        .iter()
        .filter(|n| opted_out(n))
        .filter_map(|n| n["metadata"]["name"].as_str())
        .collect();
    let mut out = BTreeMap::new();
    for svc in services {
        let (ns, name) = ns_name(svc);
        if opted_out(svc) || disabled.contains(ns.as_str()) || svc["spec"]["type"] == "ExternalName"
        {
            continue;
        }
        let labels = svc["metadata"]["labels"].clone();
        for port in svc["spec"]["ports"].as_array().into_iter().flatten() {
            let Some(number) = port["port"].as_i64() else {
                continue;
            };
            let upstream_name = upstream_name(&name, number);
            let mut spec = json!({"kube": {
                "serviceName": name, "serviceNamespace": ns, "servicePort": number}});
            if labels.as_object().is_some_and(|l| !l.is_empty()) {
                spec["discoveryMetadata"] = json!({"labels": labels});
            }
            let upstream = json!({
                "apiVersion": format!("{WEIR_GROUP}/v1alpha1"), "kind": "Upstream",
                "metadata": {
                    "name": upstream_name, "namespace": ns,
                    "labels": {MANAGED_BY_LABEL: MANAGED_BY},
                    "ownerReferences": [{
                        "apiVersion": "v1", "kind": "Service", "name": name,
                        "uid": svc["metadata"]["uid"], "controller": true,
                        "blockOwnerDeletion": false,
                    }],
                },
                "spec": spec,
            });
            out.insert((ns.clone(), upstream_name), upstream);
        }
    }
    out
}

/// What to create, replace and delete so the discovered Upstreams match the Services.
pub fn plan(services: &[Value], namespaces: &[Value], upstreams: &[Value]) -> Vec<Action> {
    let want = desired(services, namespaces);
    let have: BTreeMap<(String, String), &Value> =
        upstreams.iter().map(|u| (ns_name(u), u)).collect();
    let mut actions = Vec::new();
    for (key, upstream) in &want {
        match have.get(key) {
            None => actions.push(Action::Create(upstream.clone())),
            Some(existing) if !is_discovered(existing) => {} // a user's: never touched
            Some(existing) => {
                let same = existing["spec"] == upstream["spec"]
                    && existing["metadata"]["ownerReferences"]
                        == upstream["metadata"]["ownerReferences"]
                    && existing["metadata"]["labels"][MANAGED_BY_LABEL] == MANAGED_BY;
                if !same {
                    let mut replacement = upstream.clone();
                    replacement["metadata"]["resourceVersion"] =
                        existing["metadata"]["resourceVersion"].clone();
                    // Keep labels others added.
                    if let Some(labels) = existing["metadata"]["labels"].as_object() {
                        for (k, v) in labels {
                            replacement["metadata"]["labels"][k] = v.clone();
                        }
                    }
                    actions.push(Action::Replace(replacement));
                }
            }
        }
    }
    for (key, existing) in &have {
        if is_discovered(existing) && !want.contains_key(key) {
            actions.push(Action::Delete(key.0.clone(), key.1.clone()));
        }
    }
    actions
}

/// Reconciles discovered Upstreams whenever the reflectors change, while `leader` is true,
/// until `leader` closes.
pub async fn run(client: Client, reflectors: Reflectors, mut leader: watch::Receiver<bool>) {
    let mut changes = reflectors.changes();
    let Some((upstream_api, _)) = reflectors
        .of_kind(Kind::Upstream)
        .find(|(a, _)| a.group == WEIR_GROUP)
    else {
        return;
    };
    let ar = upstream_api.resource();
    loop {
        if *leader.borrow_and_update() && reflectors.synced() {
            let services = values(&reflectors, Kind::Service, "");
            let namespaces = values(&reflectors, Kind::Namespace, "");
            let upstreams = values(&reflectors, Kind::Upstream, WEIR_GROUP);
            for action in plan(&services, &namespaces, &upstreams) {
                apply(&client, &ar, action).await;
            }
        }
        tokio::select! {
            changed = leader.changed() => if changed.is_err() { return },
            changed = changes.changed() => if changed.is_err() { return },
        }
        // Coalesce a burst of changes into one pass.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn values(reflectors: &Reflectors, kind: Kind, group: &str) -> Vec<Value> {
    reflectors
        .store(kind, group)
        .map(|s| {
            s.state()
                .iter()
                .filter_map(|o: &Arc<DynamicObject>| serde_json::to_value(&**o).ok())
                .collect()
        })
        .unwrap_or_default()
}

async fn apply(client: &Client, ar: &kube::core::ApiResource, action: Action) {
    let ns_of = |v: &Value| {
        v["metadata"]["namespace"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    let result = match &action {
        Action::Create(u) | Action::Replace(u) => {
            let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), &ns_of(u), ar);
            let object: DynamicObject = match serde_json::from_value(u.clone()) {
                Ok(o) => o,
                Err(_) => return,
            };
            let name = u["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            if matches!(action, Action::Create(_)) {
                api.create(&PostParams::default(), &object).await.map(drop)
            } else {
                api.replace(&name, &PostParams::default(), &object)
                    .await
                    .map(drop)
            }
        }
        Action::Delete(ns, name) => {
            let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, ar);
            api.delete(name, &DeleteParams::default()).await.map(drop)
        }
    };
    match result {
        Ok(()) => tracing::info!("discovery: {}", describe(&action)),
        // A conflict or a concurrent create: the next change brings a fresh view.
        Err(kube::Error::Api(s)) if s.code == 409 || s.code == 404 => {
            tracing::debug!(
                code = s.code,
                "discovery: {} raced; retried on the next change",
                describe(&action)
            );
        }
        Err(err) => tracing::warn!(error = %err, "discovery: cannot {}", describe(&action)),
    }
}

fn describe(action: &Action) -> String {
    let name = |v: &Value| {
        let (ns, name) = ns_name(v);
        format!("Upstream/{ns}/{name}")
    };
    match action {
        Action::Create(u) => format!("create {}", name(u)),
        Action::Replace(u) => format!("update {}", name(u)),
        Action::Delete(ns, n) => format!("delete Upstream/{ns}/{n}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn svc(name: &str, ports: &[i64], labels: Value) -> Value {
        json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"namespace": "shop", "name": name, "uid": format!("uid-{name}"), "labels": labels},
            "spec": {"ports": ports.iter().map(|p| json!({"port": p})).collect::<Vec<_>>()}})
    }

    fn names(actions: &[Action]) -> Vec<String> {
        actions.iter().map(describe).collect()
    }

    #[test]
    fn one_upstream_per_service_port_owned_by_the_service() {
        let services = [svc("petstore", &[8080, 9090], json!({"app": "petstore"}))];
        let actions = plan(&services, &[], &[]);
        assert_eq!(
            names(&actions),
            [
                "create Upstream/shop/petstore-8080",
                "create Upstream/shop/petstore-9090"
            ]
        );
        let Action::Create(u) = &actions[0] else {
            panic!()
        };
        assert_eq!(u["spec"]["kube"]["servicePort"], 8080);
        assert_eq!(u["spec"]["kube"]["serviceName"], "petstore");
        assert_eq!(u["spec"]["discoveryMetadata"]["labels"]["app"], "petstore");
        assert_eq!(u["metadata"]["ownerReferences"][0]["uid"], "uid-petstore");
        assert!(is_discovered(u));
        // Applied, the plan is empty.
        let created: Vec<Value> = actions
            .iter()
            .map(|a| match a {
                Action::Create(u) => u.clone(),
                _ => unreachable!(),
            })
            .collect();
        assert!(plan(&services, &[], &created).is_empty());
    }

    #[test]
    fn changed_and_removed_ports_update_and_delete() {
        let before = [svc("petstore", &[8080, 9090], json!({}))];
        let existing: Vec<Value> = desired(&before, &[]).into_values().collect();
        let after = [svc("petstore", &[8080], json!({"tier": "web"}))];
        assert_eq!(
            names(&plan(&after, &[], &existing)),
            [
                "update Upstream/shop/petstore-8080",
                "delete Upstream/shop/petstore-9090"
            ]
        );
        // The Service is gone: its Upstreams go too.
        assert_eq!(
            names(&plan(&[], &[], &existing)),
            [
                "delete Upstream/shop/petstore-8080",
                "delete Upstream/shop/petstore-9090"
            ]
        );
    }

    #[test]
    fn opt_outs_and_users_upstreams_are_respected() {
        let services = [
            svc("quiet", &[80], json!({OPT_OUT_LABEL: "disabled"})),
            svc("web", &[80], json!({})),
        ];
        let users = json!({"apiVersion": "gateway.weir.dev/v1alpha1", "kind": "Upstream",
            "metadata": {"namespace": "shop", "name": "web-80"},
            "spec": {"static": {"hosts": [{"addr": "example.com", "port": 80}]}}});
        assert!(plan(&services, &[], std::slice::from_ref(&users)).is_empty());
        let ns = json!({"metadata": {"name": "shop", "labels": {OPT_OUT_LABEL: "disabled"}}});
        let existing: Vec<Value> = desired(&services[1..], &[]).into_values().collect();
        assert_eq!(
            names(&plan(&services, &[ns], &existing)),
            ["delete Upstream/shop/web-80"]
        );
    }
}
