//! Random snapshots against the state machines with a model proxy that behaves like
//! Envoy (subscribes to the endpoints of the clusters and the routes of the listeners
//! it holds, ACKing a response before changing those subscriptions; asks for listeners
//! once its first clusters are warm; processes responses in order). Checked after every
//! response: no route the proxy holds names a cluster it lacks or whose endpoints it
//! lacks (a warming cluster: Envoy would answer "no cluster") — make-before-break,
//! including stale clusters removed last. Checked at the end: once every response is
//! delivered, the proxy holds exactly the latest snapshot.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use proptest::prelude::*;

use super::*;
use crate::xds::delta::Delta;
use crate::xds::names::Names;
use crate::xds::sotw::Sotw;
use crate::xds::stream::StreamCtx;

const CLUSTERS: [&str; 4] = ["a", "b", "c", "d"];
const ROUTES: [&str; 3] = ["r1", "r2", "r3"];

#[derive(Clone, Debug)]
enum Event {
    /// Publish a snapshot: which clusters exist (bit mask) and their generations,
    /// which routes exist and the clusters each uses (masked by those that exist).
    Publish {
        clusters: u8,
        generations: [i64; 4],
        routes: u8,
        uses: [u8; 3],
    },
    /// The proxy processes its next response, if any.
    Deliver,
}

fn event() -> impl Strategy<Value = Event> {
    prop_oneof![
        1 => (any::<u8>(), [1i64..3, 1i64..3, 1i64..3, 1i64..3], any::<u8>(), any::<[u8; 3]>())
            .prop_map(|(clusters, generations, routes, uses)| Event::Publish {
                clusters,
                generations,
                routes,
                uses,
            }),
        3 => Just(Event::Deliver),
    ]
}

fn spec_of(clusters: u8, generations: [i64; 4], routes: u8, uses: [u8; 3]) -> Spec {
    let mut spec = mk_spec();
    let present: Vec<usize> = (0..4).filter(|i| clusters & (1 << i) != 0).collect();
    for &i in &present {
        spec = spec.cluster(CLUSTERS[i], generations[i]);
    }
    for (r, name) in ROUTES.iter().enumerate() {
        if routes & (1 << r) != 0 {
            let used: Vec<&str> = present
                .iter()
                .filter(|&&i| uses[r] & (1 << i) != 0)
                .map(|&i| CLUSTERS[i])
                .collect();
            spec = spec.route(name, &used);
        }
    }
    spec
}

/// What the model proxy holds, by type and name (the resource bodies).
#[derive(Debug, Default)]
struct Held {
    by_type: BTreeMap<ResourceType, BTreeMap<String, Any>>,
}

impl Held {
    fn names(&self, ty: ResourceType) -> BTreeSet<String> {
        self.by_type
            .get(&ty)
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// The route configurations its listeners use (stat_prefix names them).
    fn wanted_routes(&self) -> BTreeSet<String> {
        self.by_type
            .get(&LDS)
            .into_iter()
            .flat_map(|m| m.values())
            .map(|any| Listener::decode(any.value.as_slice()).unwrap().stat_prefix)
            .collect()
    }

    /// Whether every cluster it holds has its endpoints (each of this test's clusters
    /// is an EDS cluster): Envoy's start-up waits for that before asking for listeners.
    fn clusters_warm(&self) -> bool {
        self.names(CDS).is_subset(&self.names(EDS))
    }

    fn check_routes_use_known_clusters(&self) -> Result<(), String> {
        let clusters = self.names(CDS);
        let endpoints = self.names(EDS);
        for (name, any) in self.by_type.get(&RDS).into_iter().flatten() {
            let route = RouteConfiguration::decode(any.value.as_slice()).unwrap();
            for vh in route.virtual_hosts {
                if !clusters.contains(&vh.name) {
                    return Err(format!(
                        "route {name} uses cluster {} the proxy lacks (has {clusters:?})",
                        vh.name
                    ));
                }
                if !endpoints.contains(&vh.name) {
                    return Err(format!(
                        "route {name} uses cluster {} whose endpoints the proxy lacks \
                         (it is still warming; has endpoints of {endpoints:?})",
                        vh.name
                    ));
                }
            }
        }
        Ok(())
    }

    fn check_matches(&self, snapshot: &Snapshot) -> Result<(), String> {
        let wanted = self.wanted_routes();
        for ty in [CDS, EDS, LDS, RDS] {
            let expected: BTreeMap<String, Any> = snapshot
                .resources(ty)
                .iter()
                .filter(|r| ty != RDS || wanted.contains(&r.name))
                .map(|r| (r.name.clone(), r.body()))
                .collect();
            let held = self.by_type.get(&ty).cloned().unwrap_or_default();
            if held != expected {
                return Err(format!(
                    "{ty}: proxy holds {:?}, snapshot has {:?}",
                    held.keys().collect::<Vec<_>>(),
                    expected.keys().collect::<Vec<_>>()
                ));
            }
        }
        Ok(())
    }
}

fn mk_ctx() -> StreamCtx {
    StreamCtx::new(
        mk_gateway("gw"),
        "model".into(),
        NackReports::default(),
        Arc::default(),
        Names::default(),
    )
}

// === State of the world ===

fn run_sotw(events: &[Event]) -> Result<(), String> {
    let mut server = Sotw::new(mk_ctx());
    let mut queue: std::collections::VecDeque<DiscoveryResponse> = Default::default();
    let mut held = Held::default();
    let mut last_nonce: BTreeMap<ResourceType, String> = BTreeMap::new();
    let mut snapshot = Arc::new(Snapshot::empty());
    let req = |ty: ResourceType, names: &BTreeSet<String>, nonce: &str| DiscoveryRequest {
        type_url: ty.type_url().into(),
        resource_names: names.iter().cloned().collect(),
        response_nonce: nonce.into(),
        ..Default::default()
    };
    queue.extend(
        server
            .on_snapshot(Some(snapshot.clone()))
            .into_iter()
            .map(|r| r.to_proto()),
    );
    queue.extend(
        server
            .on_request(req(CDS, &BTreeSet::new(), ""))
            .into_iter()
            .map(|r| r.to_proto()),
    );
    let deliver = |server: &mut Sotw,
                   queue: &mut std::collections::VecDeque<DiscoveryResponse>,
                   held: &mut Held,
                   last_nonce: &mut BTreeMap<ResourceType, String>|
     -> Result<bool, String> {
        let Some(resp) = queue.pop_front() else {
            return Ok(false);
        };
        let ty = ty_of(&resp.type_url);
        let entries = held.by_type.entry(ty).or_default();
        let body: BTreeMap<String, Any> = resp
            .resources
            .iter()
            .map(|any| (name_of(any), any.clone()))
            .collect();
        match ty {
            // Full state: the response replaces what is held.
            CDS | LDS => *entries = body,
            _ => entries.extend(body),
        }
        // Envoy drops what it no longer subscribes to.
        let clusters = held.names(CDS);
        held.by_type
            .entry(EDS)
            .or_default()
            .retain(|n, _| clusters.contains(n));
        let routes = held.wanted_routes();
        held.by_type
            .entry(RDS)
            .or_default()
            .retain(|n, _| routes.contains(n));
        held.check_routes_use_known_clusters()?;

        last_nonce.insert(ty, resp.nonce.clone());
        let subscription = |ty| match ty {
            EDS => held.names(CDS),
            RDS => held.wanted_routes(),
            _ => BTreeSet::new(),
        };
        let mut out: Vec<_> = server
            .on_request(req(ty, &subscription(ty), &resp.nonce))
            .into_iter()
            .map(|r| r.to_proto())
            .collect();
        // A change of clusters or listeners changes what endpoints and routes it wants.
        let dependent = match ty {
            CDS => Some(EDS),
            LDS => Some(RDS),
            _ => None,
        };
        if let Some(dep) = dependent {
            let nonce = last_nonce.get(&dep).cloned().unwrap_or_default();
            out.extend(
                server
                    .on_request(req(dep, &subscription(dep), &nonce))
                    .into_iter()
                    .map(|r| r.to_proto()),
            );
        }
        if ty != LDS && !last_nonce.contains_key(&LDS) && held.clusters_warm() {
            last_nonce.insert(LDS, String::new());
            out.extend(
                server
                    .on_request(req(LDS, &BTreeSet::new(), ""))
                    .into_iter()
                    .map(|r| r.to_proto()),
            );
        }
        queue.extend(out);
        Ok(true)
    };

    for event in events {
        match event {
            Event::Publish {
                clusters,
                generations,
                routes,
                uses,
            } => {
                snapshot = Arc::new(spec_of(*clusters, *generations, *routes, *uses).snapshot());
                queue.extend(
                    server
                        .on_snapshot(Some(snapshot.clone()))
                        .into_iter()
                        .map(|r| r.to_proto()),
                );
            }
            Event::Deliver => {
                deliver(&mut server, &mut queue, &mut held, &mut last_nonce)?;
            }
        }
    }
    let mut steps = 0;
    while deliver(&mut server, &mut queue, &mut held, &mut last_nonce)? {
        steps += 1;
        if steps > 1_000 {
            return Err("responses never stop".into());
        }
    }
    held.check_matches(&snapshot)
}

// === Delta ===

fn run_delta(events: &[Event]) -> Result<(), String> {
    let mut server = Delta::new(mk_ctx());
    let mut queue: std::collections::VecDeque<DeltaDiscoveryResponse> = Default::default();
    let mut held = Held::default();
    let mut subscribed: BTreeMap<ResourceType, BTreeSet<String>> = BTreeMap::new();
    let mut last_nonce: BTreeMap<ResourceType, String> = BTreeMap::new();
    let mut snapshot = Arc::new(Snapshot::empty());
    let req = |ty: ResourceType, sub: Vec<String>, unsub: Vec<String>, nonce: &str| {
        DeltaDiscoveryRequest {
            type_url: ty.type_url().into(),
            resource_names_subscribe: sub,
            resource_names_unsubscribe: unsub,
            response_nonce: nonce.into(),
            ..Default::default()
        }
    };
    queue.extend(
        server
            .on_snapshot(Some(snapshot.clone()))
            .into_iter()
            .map(|r| r.to_proto()),
    );
    queue.extend(
        server
            .on_request(req(CDS, vec![], vec![], ""))
            .into_iter()
            .map(|r| r.to_proto()),
    );

    let deliver = |server: &mut Delta,
                   queue: &mut std::collections::VecDeque<DeltaDiscoveryResponse>,
                   held: &mut Held,
                   subscribed: &mut BTreeMap<ResourceType, BTreeSet<String>>,
                   last_nonce: &mut BTreeMap<ResourceType, String>|
     -> Result<bool, String> {
        let Some(resp) = queue.pop_front() else {
            return Ok(false);
        };
        let ty = ty_of(&resp.type_url);
        let entries = held.by_type.entry(ty).or_default();
        for r in &resp.resources {
            // A response sent before an unsubscribe arrived may still carry the resource:
            // a proxy ignores what it no longer subscribes to.
            if matches!(ty, EDS | RDS) && !subscribed.get(&ty).is_some_and(|s| s.contains(&r.name))
            {
                continue;
            }
            entries.insert(r.name.clone(), r.resource.clone().unwrap());
        }
        for name in &resp.removed_resources {
            entries.remove(name);
        }
        held.check_routes_use_known_clusters()?;
        last_nonce.insert(ty, resp.nonce.clone());
        let mut out: Vec<_> = server
            .on_request(req(ty, vec![], vec![], &resp.nonce))
            .into_iter()
            .map(|r| r.to_proto())
            .collect();
        let dependent = match ty {
            CDS => Some((EDS, held.names(CDS))),
            LDS => Some((RDS, held.wanted_routes())),
            _ => None,
        };
        if let Some((dep, want)) = dependent {
            let had = subscribed.entry(dep).or_default();
            let sub: Vec<String> = want.difference(had).cloned().collect();
            let unsub: Vec<String> = had.difference(&want).cloned().collect();
            if !sub.is_empty() || !unsub.is_empty() {
                // Envoy forgets what it unsubscribes from.
                let entries = held.by_type.entry(dep).or_default();
                for name in &unsub {
                    entries.remove(name);
                }
                *had = want;
                let nonce = last_nonce.get(&dep).cloned().unwrap_or_default();
                out.extend(
                    server
                        .on_request(req(dep, sub, unsub, &nonce))
                        .into_iter()
                        .map(|r| r.to_proto()),
                );
            }
        }
        if ty != LDS && !last_nonce.contains_key(&LDS) && held.clusters_warm() {
            last_nonce.insert(LDS, String::new());
            out.extend(
                server
                    .on_request(req(LDS, vec![], vec![], ""))
                    .into_iter()
                    .map(|r| r.to_proto()),
            );
        }
        queue.extend(out);
        Ok(true)
    };

    for event in events {
        match event {
            Event::Publish {
                clusters,
                generations,
                routes,
                uses,
            } => {
                snapshot = Arc::new(spec_of(*clusters, *generations, *routes, *uses).snapshot());
                queue.extend(
                    server
                        .on_snapshot(Some(snapshot.clone()))
                        .into_iter()
                        .map(|r| r.to_proto()),
                );
            }
            Event::Deliver => {
                deliver(
                    &mut server,
                    &mut queue,
                    &mut held,
                    &mut subscribed,
                    &mut last_nonce,
                )?;
            }
        }
    }
    let mut steps = 0;
    while deliver(
        &mut server,
        &mut queue,
        &mut held,
        &mut subscribed,
        &mut last_nonce,
    )? {
        steps += 1;
        if steps > 1_000 {
            return Err("responses never stop".into());
        }
    }
    held.check_matches(&snapshot)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn sotw_proxy_never_routes_to_a_missing_cluster_and_converges(
        events in prop::collection::vec(event(), 1..80)
    ) {
        run_sotw(&events).map_err(TestCaseError::fail)?;
    }

    #[test]
    fn delta_proxy_never_routes_to_a_missing_cluster_and_converges(
        events in prop::collection::vec(event(), 1..80)
    ) {
        run_delta(&events).map_err(TestCaseError::fail)?;
    }
}
