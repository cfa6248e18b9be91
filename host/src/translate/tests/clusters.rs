//! Clusters and endpoints: Services via EndpointSlices, Upstreams via plugins.

use envoy_types::pb::envoy::config::cluster::v3::cluster;
use envoy_types::pb::envoy::config::core::v3::{address, socket_address};
use envoy_types::pb::envoy::config::endpoint::v3::lb_endpoint;

use super::*;

fn addresses(cla: &crate::translate::EncodedEndpoints) -> Vec<String> {
    cla.decode()
        .endpoints
        .iter()
        .flat_map(|l| &l.lb_endpoints)
        .map(|e| {
            let Some(lb_endpoint::HostIdentifier::Endpoint(ep)) = &e.host_identifier else {
                panic!("no endpoint")
            };
            let Some(address::Address::SocketAddress(sa)) = &ep.address.as_ref().unwrap().address
            else {
                panic!("no socket")
            };
            let Some(socket_address::PortSpecifier::PortValue(p)) = sa.port_specifier else {
                panic!("no port")
            };
            format!("{}:{p}", sa.address)
        })
        .collect()
}

fn route_to(svc: &str, port: u16) -> String {
    mk_route(
        "infra",
        "r",
        &format!("parentRefs:\n- name: gw\nrules:\n- backendRefs: [{{name: {svc}, port: {port}}}]"),
    )
}

#[test]
fn service_port_becomes_an_eds_cluster_with_ready_endpoints_on_the_target_port() {
    let t = run_yaml(&format!("{}{}", mk_base(), route_to("v1", 8080)));
    let res = &t.gateways[&key(Kind::Gateway, "infra", "gw")];
    let c = &res.clusters[0].decode();
    assert_eq!(
        c.cluster_discovery_type,
        Some(cluster::ClusterDiscoveryType::Type(
            cluster::DiscoveryType::Eds as i32
        ))
    );
    assert_eq!(res.endpoints[0].name(), "kube_infra_v1_8080");
    assert_eq!(
        addresses(&res.endpoints[0]),
        ["10.0.0.1:3000", "10.0.0.2:3000"]
    );
}

#[test]
fn terminating_serving_endpoints_are_used_only_when_none_is_ready() {
    let svc = "apiVersion: v1\nkind: Service\nmetadata: {name: t, namespace: infra}\nspec:\n  ports: [{name: web, port: 80, targetPort: web}]\n---\n\
apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: t-1\n  namespace: infra\n  labels: {kubernetes.io/service-name: t}\naddressType: IPv4\nports: [{name: web, port: 9000}, {name: other, port: 1}]\nendpoints:\n- addresses: [10.0.0.9]\n  conditions: {ready: false, serving: true, terminating: true}\n- addresses: [10.0.0.8]\n  conditions: {ready: false, serving: false, terminating: true}\n---\n";
    let t = run_yaml(&format!("{}{svc}{}", mk_base(), route_to("t", 80)));
    let res = &t.gateways[&key(Kind::Gateway, "infra", "gw")];
    assert_eq!(addresses(&res.endpoints[0]), ["10.0.0.9:9000"]);

    let ready = svc.replace(
        "  conditions: {ready: false, serving: false, terminating: true}",
        "  conditions: {ready: true}",
    );
    let t = run_yaml(&format!("{}{ready}{}", mk_base(), route_to("t", 80)));
    let res = &t.gateways[&key(Kind::Gateway, "infra", "gw")];
    assert_eq!(addresses(&res.endpoints[0]), ["10.0.0.8:9000"]);
}

#[test]
fn h2c_app_protocol_makes_the_cluster_speak_http2() {
    let svc = "apiVersion: v1\nkind: Service\nmetadata: {name: h2, namespace: infra}\nspec:\n  ports: [{name: h2c, port: 8081, appProtocol: kubernetes.io/h2c}]\n---\n";
    let t = run_yaml(&format!("{}{svc}{}", mk_base(), route_to("h2", 8081)));
    let c = &t.gateways[&key(Kind::Gateway, "infra", "gw")].clusters[0].decode();
    assert!(
        c.typed_extension_protocol_options
            .contains_key("envoy.extensions.upstreams.http.v3.HttpProtocolOptions")
    );
}

fn upstream(name: &str, spec: &str) -> String {
    format!(
        "apiVersion: gateway.weir.dev/v1alpha1\nkind: Upstream\nmetadata:\n  name: {name}\n  namespace: infra\n  generation: 2\nspec:\n{}---\n",
        spec.lines().map(|l| format!("  {l}\n")).collect::<String>()
    )
}

fn route_to_upstream(name: &str) -> String {
    mk_route(
        "infra",
        "r",
        &format!(
            "parentRefs:\n- name: gw\nrules:\n- backendRefs: [{{group: gateway.weir.dev, kind: Upstream, name: {name}}}]"
        ),
    )
}

#[test]
fn upstream_common_fields_are_applied_to_the_plugins_cluster() {
    let up = upstream(
        "ext",
        "static:\n  hosts: [{addr: 1.2.3.4, port: 80}]\nconnectionConfig:\n  connectTimeout: 2s\ncircuitBreakers:\n  maxConnections: 7\nloadBalancerConfig:\n  leastRequest: {choiceCount: 3}\noutlierDetection:\n  consecutive5xx: 4\nuseHttp2: true\nhealthChecks:\n- timeout: 1s\n  interval: 5s\n  unhealthyThreshold: 2\n  healthyThreshold: 1\n  httpHealthCheck: {path: /healthz}",
    );
    let t = run_yaml(&format!("{}{up}{}", mk_base(), route_to_upstream("ext")));
    let c = &t.gateways[&key(Kind::Gateway, "infra", "gw")].clusters[0].decode();
    assert_eq!(c.connect_timeout.unwrap().seconds, 2);
    assert_eq!(
        c.circuit_breakers.clone().unwrap().thresholds[0]
            .max_connections
            .unwrap()
            .value,
        7
    );
    assert_eq!(c.lb_policy, cluster::LbPolicy::LeastRequest as i32);
    assert_eq!(
        c.outlier_detection
            .clone()
            .unwrap()
            .consecutive_5xx
            .unwrap()
            .value,
        4
    );
    assert_eq!(c.health_checks.len(), 1);
    assert!(
        c.typed_extension_protocol_options
            .contains_key("envoy.extensions.upstreams.http.v3.HttpProtocolOptions")
    );
}

#[test]
fn upstream_naming_a_service_gets_its_endpoints_resolved_by_the_host() {
    let up = upstream("kube-up", "kube:\n  serviceName: v1\n  servicePort: 8080");
    let t = run_yaml(&format!(
        "{}{up}{}",
        mk_base(),
        route_to_upstream("kube-up")
    ));
    let res = &t.gateways[&key(Kind::Gateway, "infra", "gw")];
    assert_eq!(res.endpoints[0].name(), "upstream_infra_kube-up");
    assert_eq!(
        addresses(&res.endpoints[0]),
        ["10.0.0.1:3000", "10.0.0.2:3000"]
    );
    assert_eq!(
        res.clusters[0].decode().cluster_discovery_type,
        Some(cluster::ClusterDiscoveryType::Type(
            cluster::DiscoveryType::Eds as i32
        ))
    );
}

#[test]
fn upstream_fields_not_applied_yet_are_named_in_the_accepted_message() {
    let up = upstream(
        "ext",
        "static:\n  hosts: [{addr: 1.2.3.4, port: 80}]\nhttpProxyHostname: proxy:3128",
    );
    let t = run_yaml(&format!("{}{up}", mk_base()));
    let (s, _, msg) = csr(cond(status(&t, Kind::Upstream, "infra", "ext"), "Accepted"));
    assert_eq!(s, "True");
    assert!(msg.contains("spec.httpProxyHostname"), "{msg}");
}

#[test]
fn failed_upstream_has_no_cluster_and_routes_to_it_answer_500_via_cluster_not_found() {
    let up = upstream("bad", "broken:\n  hosts: [{addr: 1.2.3.4, port: 0}]");
    let t = run_yaml(&format!("{}{up}{}", mk_base(), route_to_upstream("bad")));
    assert!(
        t.gateways[&key(Kind::Gateway, "infra", "gw")]
            .clusters
            .is_empty()
    );
    let (s, reason, msg) = csr(cond(status(&t, Kind::Upstream, "infra", "bad"), "Accepted"));
    assert_eq!((s.as_str(), reason.as_str()), ("False", "PluginFailed"));
    assert!(msg.contains("spec.broken.hosts[0].port"), "{msg}");
}

#[test]
fn real_static_plugin_translates_an_upstream() {
    use crate::plugin::{PluginRuntime, RuntimeConfig, builtin};
    let mut runtime = PluginRuntime::new(RuntimeConfig::default()).expect("runtime");
    builtin::load_all(&mut runtime).expect("built-in plugins load");
    let mut session = runtime.session();
    let up = upstream(
        "ext",
        "static:\n  hosts: [{addr: 1.2.3.4, port: 8080}]\nconnectionConfig:\n  connectTimeout: 3s",
    );
    let store = mk_store(&format!("{}{up}{}", mk_base(), route_to_upstream("ext")));
    let t = translate(&store, &mut session, Timestamp::UNIX_EPOCH);
    let c = &t.gateways[&key(Kind::Gateway, "infra", "gw")].clusters[0].decode();
    assert_eq!(c.name, "upstream_infra_ext");
    assert_eq!(c.connect_timeout.unwrap().seconds, 3);
    assert!(c.load_assignment.is_some());

    let bad = upstream("nope", "static:\n  hosts: [{addr: 1.2.3.4, port: 8080}]")
        .replace("static:", "unheard-of:");
    let store = mk_store(&format!("{}{bad}", mk_base()));
    let t = translate(&store, &mut session, Timestamp::UNIX_EPOCH);
    let (s, _, msg) = csr(cond(
        status(&t, Kind::Upstream, "infra", "nope"),
        "Accepted",
    ));
    assert_eq!(s, "False");
    assert!(msg.contains("unheard-of"), "{msg}");
}
