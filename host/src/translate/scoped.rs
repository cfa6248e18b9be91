//! Scoped routes: one route configuration per hostname, chosen by the request's host.
//!
//! Envoy rebuilds a whole route configuration whenever any part of it changes; at 1,000
//! routes over 250 hostnames that is ~40 ms of Envoy's time per change, whichever route
//! changed. A port whose virtual hosts all serve one exact hostname each can instead be
//! served with scoped routes (SRDS): the listener's HTTP connection manager takes the
//! host of `:authority` (before any `:port`) as a scope key, and each scope names the
//! route configuration of one hostname, so a change rebuilds only that hostname's routes.
//!
//! Where it applies:
//!
//! - every virtual host of the port's table has an exact, lower-case domain: a scope key
//!   matches exactly, so a wildcard (`*.example.com`) or catch-all (`*`) host, which would
//!   have to be a fallback, keeps the port on one route configuration over RDS;
//! - at most one table per Gateway: Envoy hands every scope to every connection manager
//!   that subscribes to scoped routes, so two scoped tables would see each other's hosts.
//!   Ports sharing that one table (an HTTP and an HTTPS listener with the same routes)
//!   are all scoped.
//!
//! The one difference a client can see: Envoy lower-cases the host before matching a
//! virtual host but not before building a scope key, so a request whose `Host` has upper
//! case letters finds no scope and is answered 404 on a scoped port. HTTP clients send
//! the host lower case as written in the URL; hostnames in Gateway API are lower case.

use std::sync::Arc;

use envoy_types::pb::envoy::config::route::v3::ScopedRouteConfiguration;
use envoy_types::pb::envoy::config::route::v3::scoped_route_configuration::{Key, key};
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    Rds, ScopedRds, ScopedRoutes, http_connection_manager::RouteSpecifier, scoped_routes,
};
use scoped_routes::scope_key_builder::{FragmentBuilder, fragment_builder};

use super::RouteTable;
use super::cluster::ads;

/// Whether `table` can be served as scoped routes: it has virtual hosts, each for one
/// exact lower-case hostname.
pub(crate) fn qualifies(table: &RouteTable) -> bool {
    !table.virtual_hosts.is_empty()
        && table.virtual_hosts.iter().all(|v| {
            let d = v.name();
            !d.is_empty() && !d.contains('*') && !d.bytes().any(|b| b.is_ascii_uppercase())
        })
}

/// How a connection manager finds its routes: route configuration `route_name` over RDS,
/// or, when `scoped`, the scopes [`split`] makes of it.
pub(crate) fn route_specifier(route_name: &str, scoped: bool) -> RouteSpecifier {
    if !scoped {
        return RouteSpecifier::Rds(Rds {
            config_source: Some(ads()),
            route_config_name: route_name.to_string(),
        });
    }
    // The host of `:authority`: the part before the first `:` (the port, if any).
    let host = fragment_builder::HeaderValueExtractor {
        name: ":authority".to_string(),
        element_separator: ":".to_string(),
        extract_type: Some(fragment_builder::header_value_extractor::ExtractType::Index(0)),
    };
    RouteSpecifier::ScopedRoutes(ScopedRoutes {
        name: route_name.to_string(),
        scope_key_builder: Some(scoped_routes::ScopeKeyBuilder {
            fragments: vec![FragmentBuilder {
                r#type: Some(fragment_builder::Type::HeaderValueExtractor(host)),
            }],
        }),
        rds_config_source: Some(ads()),
        config_specifier: Some(scoped_routes::ConfigSpecifier::ScopedRds(ScopedRds {
            scoped_rds_config_source: Some(ads()),
            ..Default::default()
        })),
    })
}

/// The name of the scope, and of the route configuration, serving `host` from `table`.
fn scope_name(table: &str, host: &str) -> String {
    let mut name = String::with_capacity(table.len() + 1 + host.len());
    name.push_str(table);
    name.push('/');
    name.push_str(host);
    name
}

/// `table` as one route configuration per virtual host (`<table>/<host>`, in the table's
/// order) and the scopes that choose them by host.
pub(crate) fn split(table: &RouteTable) -> (Vec<RouteTable>, Vec<Arc<ScopedRouteConfiguration>>) {
    table
        .virtual_hosts
        .iter()
        .map(|v| {
            let name = scope_name(&table.name, v.name());
            let scope = ScopedRouteConfiguration {
                name: name.clone(),
                route_configuration_name: name.clone(),
                key: Some(Key {
                    fragments: vec![key::Fragment {
                        r#type: Some(key::fragment::Type::StringKey(v.name().to_string())),
                    }],
                }),
                ..Default::default()
            };
            (RouteTable::new(name, vec![v.clone()]), Arc::new(scope))
        })
        .unzip()
}
