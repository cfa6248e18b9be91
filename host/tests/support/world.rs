//! The smallest world an end-to-end test of options needs: one Gateway, one Service on a
//! local backend, one HTTPRoute.

use std::path::Path;

use super::backend;
use super::envoy::RunningEnvoy;
use super::weir::{Weir, free_port};

/// `weir serve` (loading `plugin_dir`), an echo backend, an Envoy for `default/gw` and
/// [`world`] written and answering: the Weir, the Envoy and the Gateway's port.
#[allow(dead_code)]
pub fn serve_world(plugin_dir: Option<&Path>) -> (Weir, RunningEnvoy, u16) {
    let weir = Weir::start(plugin_dir);
    let listen = free_port();
    let echo = backend::start_echo_backend();
    let mut envoy = weir.envoy("default/gw", &[]);
    weir.write("world.yaml", &world(listen, echo));
    weir.wait_for(&mut envoy, listen, "example.com", "/hello", 200, None);
    (weir, envoy, listen)
}

/// Class, Gateway `default/gw` on `port`, Service `alpha` on `backend`, and HTTPRoute
/// `default/app` sending `/` to it.
pub fn world(port: u16, backend: u16) -> String {
    format!(
        r#"apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {{name: weir}}
spec: {{controllerName: gateway.weir.dev/controller}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: gw, namespace: default}}
spec:
  gatewayClassName: weir
  listeners:
    - {{name: http, protocol: HTTP, port: {port}}}
---
apiVersion: v1
kind: Service
metadata: {{name: alpha, namespace: default}}
spec:
  ports: [{{name: http, port: 80, targetPort: {backend}}}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: alpha-local
  namespace: default
  labels: {{kubernetes.io/service-name: alpha}}
addressType: IPv4
ports: [{{name: http, port: {backend}}}]
endpoints:
  - addresses: ["127.0.0.1"]
    conditions: {{ready: true}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: app, namespace: default}}
spec:
  parentRefs: [{{name: gw}}]
  rules:
    - backendRefs: [{{name: alpha, port: 80}}]
"#
    )
}

/// Upstream `default/name` (`gloo.solo.io/v1`, K8sGateway's group) of `static` hosts on
/// 127.0.0.1 at `ports`, with `extra` spec fields (YAML lines indented two spaces).
#[allow(dead_code)]
pub fn static_upstream(name: &str, ports: &[u16], extra: &str) -> String {
    let hosts: Vec<String> = ports
        .iter()
        .map(|p| format!("{{addr: 127.0.0.1, port: {p}}}"))
        .collect();
    format!(
        "apiVersion: gloo.solo.io/v1\nkind: Upstream\nmetadata: {{name: {name}, namespace: default}}\nspec:\n{extra}  static: {{hosts: [{}]}}\n---\n",
        hosts.join(", ")
    )
}
