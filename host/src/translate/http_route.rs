//! HTTPRoute → [`RouteIr`]: the Envoy routes of every rule and match, the clusters they
//! need, and the route's own Accepted/ResolvedRefs problems. Memoised per route in
//! [`RouteCache`].
//!
//! The IR does not depend on which listener the route attaches to, with one exception:
//! a RequestRedirect without a port takes the listener's port, so it is kept as a
//! [`Redirect`] and finished at assembly.
//!
//! Backends that cannot be resolved keep their weight: the rule sends that share to a
//! cluster name that is never defined ([`UNRESOLVED_CLUSTER`]) and the route action answers
//! a missing cluster with 500 (`cluster_not_found_response_code`), which is what Gateway
//! API asks for. A rule with no usable backend at all answers 500 directly.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use envoy_types::pb::envoy::config::core::v3::{DataSource, data_source};
use envoy_types::pb::envoy::config::route::v3::{
    DirectResponseAction, RetryPolicy, Route, RouteAction, RouteMatch, WeightedCluster,
    retry_policy, route, route_action, weighted_cluster,
};
use envoy_types::pb::envoy::extensions::filters::http::cors::v3::{Cors, CorsPolicy};
use envoy_types::pb::google::protobuf::{Duration as PbDuration, UInt32Value};
use prost::Message;

use crate::model::gateway_api::HttpRoute;
use crate::model::gateway_api::httproutes::{HttpRouteParentRefs, HttpRouteRules};
use crate::model::{GATEWAY_API_GROUP, Kind, ObjectKey, weir_ref_kind};
use crate::store::{ContentHash, Store};

use super::cluster::{ClusterRef, ClusterSet, to_any};
use super::conditions::*;
use super::deps::{DepSnapshot, PassId, PassReader, Recorder, RefFrom, RefTo, reference_permitted};
use super::filters::{self, FilterSet, Redirect};
use super::hostnames;
use super::matches::{self, PathMatch, Specificity};
use super::options::{self, Attached, OptionError, TargetIndex};
use super::parallel;
use super::{FastMap, FilterPlugins, OptionFilter, PassStats, UpstreamPlugins};

/// The cluster name unresolved backends' share of traffic goes to; it never exists, so
/// Envoy answers 500 for it.
pub(crate) const UNRESOLVED_CLUSTER: &str = "weir_unresolved_backend";

/// One Envoy route of an HTTPRoute (one rule × one match).
#[derive(Clone, Debug)]
pub(crate) struct RouteEntry {
    /// The Envoy route, protobuf-encoded. The IR lives as long as the translator and the
    /// virtual hosts built from it hold the decoded route, so keeping the message here too
    /// (over 2 KiB each, plus its strings) held every route twice: at 10,000 HTTPRoutes
    /// ~30,000 routes, over 100 MiB. Encoded, one is a few hundred bytes.
    pub(crate) route: Box<[u8]>,
    pub(crate) specificity: Specificity,
    pub(crate) rule: usize,
    pub(crate) matched: usize,
    /// A redirect to finish with the listener's port.
    pub(crate) redirect: Option<Redirect>,
}

/// A translated HTTPRoute.
#[derive(Clone, Debug)]
pub(crate) struct RouteIr {
    pub(crate) namespace: String,
    pub(crate) name: String,
    pub(crate) generation: Option<i64>,
    /// Creation time in nanoseconds, for precedence between routes.
    pub(crate) created: Option<i128>,
    pub(crate) hostnames: Vec<String>,
    pub(crate) parent_refs: Vec<HttpRouteParentRefs>,
    /// `Err`: the route is invalid (Accepted=False everywhere, nothing programmed).
    pub(crate) accepted: Result<(), Problem>,
    /// The first reference that could not be resolved.
    pub(crate) resolved: Result<(), Problem>,
    pub(crate) entries: Vec<RouteEntry>,
    pub(crate) clusters: ClusterSet,
    /// HTTP filters the route's options need on the listener (one per name).
    pub(crate) http_filters: Vec<OptionFilter>,
    /// RouteOption keys that could not be applied, by the RouteOption they came from.
    pub(crate) option_errors: Vec<OptionError>,
    /// RouteOption keys another RouteOption overrode, by the RouteOption that lost.
    pub(crate) option_warnings: Vec<OptionError>,
}

impl RouteIr {
    /// The precedence key of entry `i`: more specific first, then older, then by name,
    /// then rule and match order.
    pub(crate) fn precedence<'a>(&'a self, e: &RouteEntry) -> impl Ord + use<'a> {
        (
            std::cmp::Reverse(e.specificity),
            self.created.is_none(),
            self.created,
            self.namespace.as_str(),
            self.name.as_str(),
            e.rule,
            e.matched,
        )
    }
}

struct CacheEntry {
    hash: ContentHash,
    deps: DepSnapshot,
    /// The pass that last built or checked this entry.
    checked: PassId,
    /// The RouteOptions whose targetRefs named the route (with their hashes).
    targeting: Vec<Attached>,
    /// The plugin generation, when some option went through a plugin.
    plugins: Option<u64>,
}

/// The per-route memo.
#[derive(Default)]
pub(crate) struct RouteCache {
    entries: FastMap<ObjectKey, CacheEntry>,
    /// Every route's IR as of the last pass, in key order; updated in place, so a pass
    /// that changed one route copies no key.
    current: BTreeMap<ObjectKey, Arc<RouteIr>>,
}

impl RouteCache {
    /// How many routes are memoised.
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Every HTTPRoute's IR as of the last [`RouteCache::translate_all`], by key.
    pub(crate) fn current(&self) -> &BTreeMap<ObjectKey, Arc<RouteIr>> {
        &self.current
    }

    /// Translates or reuses every HTTPRoute's IR (then read through
    /// [`RouteCache::current`]) and forgets routes that are gone. Returns the keys whose
    /// IR is new or gone this pass, in key order.
    pub(crate) fn translate_all(
        &mut self,
        reader: &mut PassReader<'_>,
        plugins: &mut dyn UpstreamPlugins,
        index: &TargetIndex,
        stats: &mut PassStats,
    ) -> Vec<ObjectKey> {
        let store = reader.store;
        let pass = reader.pass();
        let generation = plugins.generation();
        let mut jobs = Vec::new();
        let mut present = 0;
        for (key, object, hash) in store.of_kind_hashed(Kind::HttpRoute) {
            let Some(route) = object.as_http_route() else {
                continue;
            };
            present += 1;
            let targeting = index.targeting(key);
            if let Some(e) = self.entries.get_mut(key)
                && e.hash == hash
                && e.plugins.is_none_or(|g| g == generation)
                && e.targeting == targeting
                && reader.unchanged(e.checked, &e.deps)
            {
                e.checked = pass;
                stats.routes_reused += 1;
                continue;
            }
            jobs.push(RouteJob {
                key,
                route,
                hash,
                targeting,
            });
        }
        // Routes are translated independently: a pass with many (a full one) spreads
        // them over the cores. A route whose options reach a plugin is translated here,
        // where the plugins are.
        // The two copies of each key the memo keeps are made there too.
        let mut wide = if jobs.len() >= parallel::MIN_PARALLEL {
            parallel::map(&jobs, |job| {
                let (ir, deps) = job.translate_without_plugins(store)?;
                Some((ir, deps, [job.key.clone(), job.key.clone()]))
            })
        } else {
            Vec::new()
        };
        self.entries.reserve(jobs.len());
        let mut fresh = Vec::with_capacity(jobs.len());
        for (i, job) in jobs.iter().enumerate() {
            stats.routes_translated += 1;
            let (ir, deps, used, [key, fresh_key]) = match wide.get_mut(i).and_then(Option::take) {
                Some((ir, deps, keys)) => (ir, deps, false, keys),
                None => {
                    let mut rec = reader.recorder();
                    let mut opts = RouteOptions {
                        plugins: plugins.filter_plugins(),
                        targeting: job.targeting,
                        used: false,
                    };
                    let ir = Arc::new(job.translate(&mut rec, &mut opts));
                    let keys = [job.key.clone(), job.key.clone()];
                    (ir, reader.snapshot(rec), opts.used, keys)
                }
            };
            self.entries.insert(
                key,
                CacheEntry {
                    hash: job.hash,
                    deps,
                    checked: pass,
                    targeting: job.targeting.to_vec(),
                    plugins: used.then_some(generation),
                },
            );
            fresh.push((fresh_key, ir));
        }
        let mut changed: Vec<ObjectKey> = fresh.iter().map(|(k, _)| k.clone()).collect();
        if self.current.is_empty() {
            // Sorted input: built in linear time.
            self.current = fresh.into_iter().collect();
        } else {
            self.current.extend(fresh);
        }
        // Every route in the store was checked or built this pass, so the others are
        // gone. When the counts match nothing is gone and no entry is visited.
        if self.entries.len() != present {
            let mut gone = Vec::new();
            self.entries.retain(|k, e| {
                let keep = e.checked == pass;
                if !keep {
                    gone.push(k.clone());
                }
                keep
            });
            for k in &gone {
                self.current.remove(k);
            }
            changed.extend(gone);
            changed.sort_unstable();
        }
        changed
    }
}

/// An HTTPRoute to translate afresh this pass.
struct RouteJob<'a> {
    key: &'a ObjectKey,
    route: &'a HttpRoute,
    hash: ContentHash,
    /// The RouteOptions whose targetRefs name the route.
    targeting: &'a [Attached],
}

impl RouteJob<'_> {
    /// The route's translation.
    fn translate(&self, rec: &mut Recorder<'_>, opts: &mut RouteOptions<'_, '_>) -> RouteIr {
        let ns = self.key.namespace.clone().unwrap_or_default();
        translate_route(rec, opts, self.route, ns, self.key.name.clone())
    }

    /// The route's translation and what it read, if it needs no plugin: no RouteOption
    /// targets it and none of its rules applies one (`None` otherwise, to be translated
    /// with the plugins at hand).
    fn translate_without_plugins(&self, store: &Store) -> Option<(Arc<RouteIr>, DepSnapshot)> {
        if !self.targeting.is_empty() {
            return None;
        }
        let mut rec = Recorder::new(store);
        let mut opts = RouteOptions {
            plugins: None,
            targeting: self.targeting,
            used: false,
        };
        let ir = self.translate(&mut rec, &mut opts);
        (!opts.used).then(|| (Arc::new(ir), rec.into_snapshot()))
    }
}

/// Records the first problem only.
fn first(slot: &mut Result<(), Problem>, p: Problem) {
    if slot.is_ok() {
        *slot = Err(p);
    }
}

/// What a route's translation needs to apply RouteOptions.
pub(crate) struct RouteOptions<'p, 't> {
    /// The option plugins, if any.
    pub(crate) plugins: Option<&'p mut dyn FilterPlugins>,
    /// The RouteOptions whose targetRefs name this route, in precedence order.
    pub(crate) targeting: &'t [Attached],
    /// Set when some option key was applied (or failed to be).
    pub(crate) used: bool,
}

/// Translates one HTTPRoute.
pub(crate) fn translate_route(
    rec: &mut Recorder<'_>,
    opts: &mut RouteOptions<'_, '_>,
    route: &HttpRoute,
    namespace: String,
    name: String,
) -> RouteIr {
    let mut ir = RouteIr {
        generation: route.metadata.generation,
        created: route
            .metadata
            .creation_timestamp
            .as_ref()
            .map(|t| t.0.as_nanosecond()),
        hostnames: route.spec.hostnames.clone().unwrap_or_default(),
        parent_refs: route.spec.parent_refs.clone().unwrap_or_default(),
        accepted: Ok(()),
        resolved: Ok(()),
        entries: Vec::new(),
        clusters: ClusterSet::default(),
        http_filters: Vec::new(),
        option_errors: Vec::new(),
        option_warnings: Vec::new(),
        namespace,
        name,
    };
    for (i, h) in ir.hostnames.iter().enumerate() {
        if let Err(e) = hostnames::check(h) {
            first(
                &mut ir.accepted,
                Problem::new(R_UNSUPPORTED_VALUE, format!("spec.hostnames[{i}]: {e}")),
            );
        }
    }
    // One entry per rule and match (a rule without matches has one): sized exactly, as
    // the IR is kept for the translator's lifetime.
    let rules = route.spec.rules.iter().flatten();
    ir.entries.reserve_exact(
        rules
            .map(|r| r.matches.as_ref().map_or(1, |m| m.len().max(1)))
            .sum(),
    );
    for (ri, rule) in route.spec.rules.iter().flatten().enumerate() {
        translate_rule(rec, opts, &mut ir, ri, rule);
    }
    if ir.accepted.is_err() {
        // An invalid route programs nothing.
        ir.entries = Vec::new();
        ir.clusters.clear();
        ir.http_filters.clear();
    }
    options::sort_filters(&mut ir.http_filters);
    // Kept for the translator's lifetime.
    ir.clusters.shrink_to_fit();
    ir
}

/// A backend of a rule, resolved or not.
struct Backend {
    /// `None`: unresolved (its weight answers 500).
    cluster: Option<ClusterRef>,
    weight: u32,
    filters: FilterSet,
}

fn translate_rule(
    rec: &mut Recorder<'_>,
    opts: &mut RouteOptions<'_, '_>,
    ir: &mut RouteIr,
    ri: usize,
    rule: &HttpRouteRules,
) {
    // Displayed only in an error message, so not formatted up front.
    let path = FieldPath {
        parent: &"spec",
        field: "rules",
        index: ri,
    };
    let timeouts = match rule_timeouts(rule, &path) {
        Ok(t) => t,
        Err(p) => return first(&mut ir.accepted, p),
    };
    let retry = match rule_retry(rule, &path) {
        Ok(r) => r,
        Err(p) => return first(&mut ir.accepted, p),
    };
    let default_match = [Default::default()];
    let matches: &[_] = match rule.matches.as_deref() {
        None | Some([]) => &default_match,
        Some(ms) => ms,
    };
    // Each backend is resolved once per rule, at its first use, not once per match.
    let mut resolved = Vec::new();
    // The encoding of the rule's route without its match and name, when that is the
    // same for every match (see `same_route_for_every_match`).
    let shared = same_route_for_every_match(rule, opts);
    let mut body: Option<Vec<u8>> = None;
    for (mi, m) in matches.iter().enumerate() {
        let match_path = FieldPath {
            parent: &path,
            field: "matches",
            index: mi,
        };
        let translated = match matches::translate(Some(m), &match_path) {
            Ok(t) => t,
            Err(p) => return first(&mut ir.accepted, p),
        };
        let name = envoy_route_name(&ir.namespace, &ir.name, ri, mi);
        if let Some(body) = &body {
            ir.entries.push(RouteEntry {
                route: around_body(&translated.route_match, body, &name),
                specificity: translated.specificity,
                rule: ri,
                matched: mi,
                redirect: None,
            });
            continue;
        }
        let mut set = match filters::collect(
            rule.filters.as_deref().unwrap_or_default(),
            &format_args!("{path}.filters"),
            &translated.path,
        ) {
            Ok(s) => s,
            Err(p) => return first(&mut ir.accepted, p),
        };
        let backends = match backends(
            rec,
            ir,
            (ri, rule),
            &translated.path,
            &mut set,
            // Kept for the next matches only when they are built afresh too.
            (!shared).then_some(&mut resolved),
        ) {
            Ok(b) => b,
            Err(p) => return first(&mut ir.accepted, p),
        };
        // Built in place: a route is over 2 KiB, and each move of it is a copy.
        let mut route = Route::default();
        if let Err(p) = build_route(
            rec,
            ir,
            &mut set,
            backends,
            &translated.path,
            (timeouts, retry.as_ref()),
            &mut route,
        ) {
            return first(&mut ir.accepted, p);
        }
        if let Some(cors) = &set.cors {
            add_cors(ir, &mut route, cors);
        }
        let encoded = if shared && body_precedes_name(&route) {
            let b = body.insert(route.encode_to_vec());
            around_body(&translated.route_match, b, &name)
        } else {
            route.name = name;
            route.r#match = Some(translated.route_match);
            apply_route_options(rec, opts, ir, (ri, &set), &mut route);
            route.encode_to_vec().into_boxed_slice()
        };
        ir.entries.push(RouteEntry {
            route: encoded,
            specificity: translated.specificity,
            rule: ri,
            matched: mi,
            redirect: set.redirect.clone(),
        });
    }
}

/// Whether `rule` builds the same Envoy route for each of its matches but for the match
/// and the name: no filter reads the matched path (URLRewrite, RequestRedirect), no
/// ExtensionRef or targeting RouteOption changes the route, and no backend has filters.
/// Such a rule's route is built and encoded once, not once per match.
fn same_route_for_every_match(rule: &HttpRouteRules, opts: &RouteOptions<'_, '_>) -> bool {
    use crate::model::gateway_api::httproutes::HttpRouteRulesFiltersType as T;
    opts.targeting.is_empty()
        && rule.filters.iter().flatten().all(|f| {
            matches!(
                f.r#type,
                T::RequestHeaderModifier | T::ResponseHeaderModifier | T::RequestMirror | T::Cors
            )
        })
        && rule
            .backend_refs
            .iter()
            .flatten()
            .all(|b| b.filters.as_ref().is_none_or(Vec::is_empty))
}

/// Whether `route` (without match and name) has no field numbered after `name` (14), so
/// that match (1), these bytes, then name is the field order protobuf encoders write.
#[allow(deprecated)] // per_request_buffer_limit_bytes: unset here, but still a field.
fn body_precedes_name(route: &Route) -> bool {
    route.tracing.is_none()
        && route.per_request_buffer_limit_bytes.is_none()
        && route.stat_prefix.is_empty()
        && route.request_body_buffer_limit.is_none()
        && route.route_specifiers.is_empty()
        && matches!(
            route.action,
            None | Some(
                route::Action::Route(_)
                    | route::Action::Redirect(_)
                    | route::Action::DirectResponse(_)
            )
        )
}

/// The encoded route made of `route_match`, the encoded rest of a route (`body`, see
/// [`body_precedes_name`]) and `name`: the bytes of the whole route encoded at once.
fn around_body(route_match: &RouteMatch, body: &[u8], name: &str) -> Box<[u8]> {
    const MATCH: u32 = 1;
    const NAME: u32 = 14;
    use super::encoded::{length_delimited_len, put_header, put_length_delimited};
    let match_len = route_match.encoded_len();
    let mut out = Vec::with_capacity(
        length_delimited_len(MATCH, match_len)
            + body.len()
            + length_delimited_len(NAME, name.len()),
    );
    put_header(MATCH, match_len, &mut out);
    route_match.encode_raw(&mut out);
    out.extend_from_slice(body);
    put_length_delimited(NAME, name.as_bytes(), &mut out);
    out.into_boxed_slice()
}

/// The Envoy route name of match `mi` of rule `ri` of HTTPRoute `namespace/name`:
/// `<namespace>_<name>_rule<ri>_match<mi>`, built without the formatting machinery (a
/// `format!` per Envoy route was a visible share of a full pass).
fn envoy_route_name(namespace: &str, name: &str, ri: usize, mi: usize) -> String {
    let mut out = String::with_capacity(namespace.len() + name.len() + 16);
    out.push_str(namespace);
    out.push('_');
    out.push_str(name);
    out.push_str("_rule");
    super::push_decimal(&mut out, ri);
    out.push_str("_match");
    super::push_decimal(&mut out, mi);
    out
}

/// The name of Envoy's CORS HTTP filter.
pub(crate) const CORS_FILTER: &str = "envoy.filters.http.cors";

/// Puts a CORS filter's policy on `route` (per-filter config of `envoy.filters.http.cors`)
/// and asks for that filter in the listener's chain, at the CORS stage.
fn add_cors(ir: &mut RouteIr, route: &mut Route, cors: &CorsPolicy) {
    route
        .typed_per_filter_config
        .insert(CORS_FILTER.to_string(), to_any(cors));
    if !ir.http_filters.iter().any(|f| f.name == CORS_FILTER) {
        ir.http_filters.push(OptionFilter {
            name: CORS_FILTER.to_string(),
            // The WIT stage record as a sort key: (cors, during).
            stage: (1, 1),
            config: to_any(&Cors::default()),
            disabled: false,
        });
    }
}

/// Applies the RouteOptions of this rule (ExtensionRef) and of the whole route
/// (targetRef) to one Envoy route.
fn apply_route_options(
    rec: &mut Recorder<'_>,
    opts: &mut RouteOptions<'_, '_>,
    ir: &mut RouteIr,
    (rule, set): (usize, &FilterSet),
    route: &mut Route,
) {
    let mut by_ref: Vec<Attached> = Vec::new();
    for e in &set.extension_refs {
        if weir_ref_kind(&e.group, &e.kind) != Some(Kind::RouteOption) {
            continue;
        }
        let key = ObjectKey::namespaced(Kind::RouteOption, &ir.namespace, &e.name);
        if by_ref.iter().any(|a| a.key == key) {
            continue;
        }
        if let Some((option, hash)) = rec.route_option(&ir.namespace, &e.name)
            && let Some(a) = Attached::of(key, hash, option)
        {
            by_ref.push(a);
        }
    }
    if by_ref.is_empty() && opts.targeting.is_empty() {
        // No RouteOption applies: nothing to merge, name or apply.
        return;
    }
    options::sort_by_precedence(&mut by_ref);
    let route_name = if by_ref.is_empty() {
        format!("HTTPRoute {}/{}", ir.namespace, ir.name)
    } else {
        format!("HTTPRoute {}/{} rule {rule}", ir.namespace, ir.name)
    };
    let merged = options::merge(
        by_ref.iter().chain(opts.targeting),
        &route_name,
        &mut ir.option_warnings,
    );
    if merged.is_empty() {
        return;
    }
    opts.used = true;
    *route = options::apply_to_route(
        &mut opts.plugins,
        std::mem::take(route),
        &merged,
        (&mut ir.http_filters, &mut ir.clusters),
        &mut ir.option_errors,
        // Recorded, so the route is translated again when the Upstream comes or goes.
        &mut |ns, name| rec.upstream(ns, name).is_some(),
    );
}

/// `(request, backendRequest)` timeouts.
type Timeouts = (Option<PbDuration>, Option<PbDuration>);

fn rule_timeouts(rule: &HttpRouteRules, path: &dyn fmt::Display) -> Result<Timeouts, Problem> {
    let parse = |v: &Option<String>, field: &str| -> Result<Option<PbDuration>, Problem> {
        v.as_deref()
            .map(|s| {
                crate::model::Duration::from_str(s)
                    .map(|d| pb_duration(d.get()))
                    .map_err(|e| {
                        Problem::new(R_UNSUPPORTED_VALUE, format!("{path}.timeouts.{field}: {e}"))
                    })
            })
            .transpose()
    };
    match &rule.timeouts {
        None => Ok((None, None)),
        Some(t) => Ok((
            parse(&t.request, "request")?,
            parse(&t.backend_request, "backendRequest")?,
        )),
    }
}

/// What Envoy retries when a rule has a `retry` stanza, besides its status codes: a
/// connection that fails, is reset or refused, or an attempt that exceeds the per-try
/// (`backendRequest`) timeout.
pub(crate) const RETRY_ON_CONNECTION_ERRORS: &str = "connect-failure,refused-stream,reset";

/// The rule's `retry` (experimental channel) as an Envoy retry policy without a per-try
/// timeout: `attempts` retries (Envoy's default of 1 when unset) on connection errors
/// and on each of `codes`, `backoff` as the base back-off interval.
fn rule_retry(
    rule: &HttpRouteRules,
    path: &dyn fmt::Display,
) -> Result<Option<RetryPolicy>, Problem> {
    let Some(r) = &rule.retry else {
        return Ok(None);
    };
    let bad = |field: String, why: String| {
        Problem::new(R_UNSUPPORTED_VALUE, format!("{path}.retry.{field}: {why}"))
    };
    let mut codes = Vec::new();
    for (i, c) in r.codes.iter().flatten().enumerate() {
        match u32::try_from(*c) {
            Ok(code @ 400..=599) => codes.push(code),
            _ => {
                return Err(bad(
                    format!("codes[{i}]"),
                    format!("{c} is not an HTTP status code from 400 to 599"),
                ));
            }
        }
    }
    let num_retries = r
        .attempts
        .map(|a| {
            u32::try_from(a)
                .map(|value| UInt32Value { value })
                .map_err(|_| bad("attempts".into(), format!("{a} is not a count of retries")))
        })
        .transpose()?;
    let back_off = r
        .backoff
        .as_deref()
        .map(|b| {
            crate::model::Duration::from_str(b)
                .map_err(|e| bad("backoff".into(), e.to_string()))
                .and_then(|d| {
                    if d.get().is_zero() {
                        Err(bad("backoff".into(), "must be more than 0s".into()))
                    } else {
                        Ok(retry_policy::RetryBackOff {
                            base_interval: Some(pb_duration(d.get())),
                            max_interval: None,
                        })
                    }
                })
        })
        .transpose()?;
    let mut retry_on = RETRY_ON_CONNECTION_ERRORS.to_string();
    if !codes.is_empty() {
        retry_on.push_str(",retriable-status-codes");
    }
    Ok(Some(RetryPolicy {
        retry_on,
        num_retries,
        retriable_status_codes: codes,
        retry_back_off: back_off,
        ..Default::default()
    }))
}

fn pb_duration(d: std::time::Duration) -> PbDuration {
    PbDuration {
        seconds: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        nanos: i32::try_from(d.subsec_nanos()).unwrap_or(0),
    }
}

/// Resolves a reference to a Service or Upstream from an HTTPRoute in `route_ns`.
#[allow(clippy::too_many_arguments)]
fn resolve_backend(
    rec: &mut Recorder<'_>,
    route_ns: &str,
    group: &str,
    kind: &str,
    name: &str,
    namespace: Option<&str>,
    port: Option<i32>,
    path: &dyn std::fmt::Display,
) -> Result<ClusterRef, Problem> {
    let ns = namespace.unwrap_or(route_ns);
    let from = RefFrom {
        group: GATEWAY_API_GROUP,
        kind: "HTTPRoute",
        namespace: route_ns,
    };
    let is_service = group.is_empty() && kind == "Service";
    let is_upstream = weir_ref_kind(group, kind) == Some(Kind::Upstream);
    if !is_service && !is_upstream {
        return Err(Problem::new(
            R_INVALID_KIND,
            format!("{path}: Weir forwards to Services and Upstreams, not {group}/{kind}"),
        ));
    }
    let to = RefTo {
        group,
        kind,
        namespace: ns,
        name,
    };
    if !reference_permitted(rec, from, to) {
        return Err(Problem::new(
            R_REF_NOT_PERMITTED,
            format!(
                "{path}: no ReferenceGrant in namespace {ns} lets HTTPRoutes in {route_ns} refer to {kind} {name}"
            ),
        ));
    }
    if is_service {
        let Some(port) = port else {
            return Err(Problem::new(
                R_UNSUPPORTED_VALUE,
                format!("{path}.port: is required for a Service backend"),
            ));
        };
        let Some(svc) = rec.service(ns, name) else {
            return Err(Problem::new(
                R_BACKEND_NOT_FOUND,
                format!("{path}: Service {ns}/{name} not found"),
            ));
        };
        let has_port = svc
            .spec
            .as_ref()
            .and_then(|s| s.ports.as_ref())
            .is_some_and(|ps| ps.iter().any(|p| p.port == port));
        let port = u16::try_from(port)
            .ok()
            .filter(|_| has_port)
            .ok_or_else(|| {
                Problem::new(
                    R_BACKEND_NOT_FOUND,
                    format!("{path}.port: Service {ns}/{name} has no port {port}"),
                )
            })?;
        return Ok(ClusterRef::Service {
            namespace: ns.to_string(),
            name: name.to_string(),
            port,
        });
    }
    let Some(up) = rec.upstream(ns, name) else {
        return Err(Problem::new(
            R_BACKEND_NOT_FOUND,
            format!("{path}: Upstream {ns}/{name} not found"),
        ));
    };
    if let Err(e) = up.spec.check() {
        return Err(Problem::new(
            R_BACKEND_NOT_FOUND,
            format!("{path}: Upstream {ns}/{name} is not valid: {e}"),
        ));
    }
    Ok(ClusterRef::Upstream {
        namespace: ns.to_string(),
        name: name.to_string(),
    })
}

/// The backends of rule `ri` for one of its matches; `resolved`, if given, keeps each
/// backend's resolution (by index) for the rule's later matches, since it does not
/// depend on the match.
fn backends(
    rec: &mut Recorder<'_>,
    ir: &mut RouteIr,
    (ri, rule): (usize, &HttpRouteRules),
    matched: &PathMatch,
    rule_set: &mut FilterSet,
    mut resolved: Option<&mut Vec<Option<Result<ClusterRef, Problem>>>>,
) -> Result<Vec<Backend>, Problem> {
    let refs = rule.backend_refs.as_deref().unwrap_or_default();
    let single = refs.len() == 1;
    let mut out = Vec::new();
    for (bi, b) in refs.iter().enumerate() {
        let rule_path = FieldPath {
            parent: &"spec",
            field: "rules",
            index: ri,
        };
        let path = FieldPath {
            parent: &rule_path,
            field: "backendRefs",
            index: bi,
        };
        let weight = match b.weight {
            None => 1,
            Some(w) => u32::try_from(w).map_err(|_| {
                Problem::new(
                    R_UNSUPPORTED_VALUE,
                    format!("{path}.weight: {w} is negative"),
                )
            })?,
        };
        let converted = b
            .filters
            .iter()
            .flatten()
            .enumerate()
            .map(|(fi, f)| {
                let at = FieldPath {
                    parent: &path,
                    field: "filters",
                    index: fi,
                };
                filters::from_backend_filter(f, &at)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let mut set = filters::collect(&converted, &format_args!("{path}.filters"), matched)?;
        if single {
            // One backend: its filters act on the whole rule.
            merge(rule_set, std::mem::take(&mut set));
        } else if set.has_non_header_filters()
            && !(set.redirect.is_none()
                && set.mirrors.is_empty()
                && set.extension_refs.is_empty()
                && set.rewrite.as_ref().is_some_and(|r| !r.changes_path()))
        {
            return Err(Problem::new(
                R_UNSUPPORTED_VALUE,
                format!(
                    "{path}.filters: only header modifiers and a hostname rewrite can apply to one of several backends"
                ),
            ));
        }
        let cached = resolved
            .as_deref()
            .and_then(|r| r.get(bi))
            .and_then(Option::as_ref);
        let result = match cached {
            Some(r) => r.clone(),
            None => {
                let r = resolve_backend(
                    rec,
                    &ir.namespace,
                    b.group.as_deref().unwrap_or(""),
                    b.kind.as_deref().unwrap_or("Service"),
                    &b.name,
                    b.namespace.as_deref(),
                    b.port,
                    &path,
                );
                if let Some(cache) = resolved.as_deref_mut() {
                    if cache.len() <= bi {
                        cache.resize(bi + 1, None);
                    }
                    cache[bi] = Some(r.clone());
                }
                r
            }
        };
        let cluster = match result {
            Ok(c) => Some(c),
            Err(p) => {
                first(&mut ir.resolved, p);
                None
            }
        };
        out.push(Backend {
            cluster,
            weight,
            filters: set,
        });
    }
    Ok(out)
}

fn merge(into: &mut FilterSet, from: FilterSet) {
    into.request.add.extend(from.request.add);
    into.request.remove.extend(from.request.remove);
    into.response.add.extend(from.response.add);
    into.response.remove.extend(from.response.remove);
    if from.redirect.is_some() {
        into.redirect = from.redirect;
    }
    if from.rewrite.is_some() {
        into.rewrite = from.rewrite;
    }
    into.mirrors.extend(from.mirrors);
    into.extension_refs.extend(from.extension_refs);
    if from.cors.is_some() {
        into.cors = from.cors;
    }
}

fn internal_error() -> route::Action {
    route::Action::DirectResponse(DirectResponseAction {
        status: 500,
        ..Default::default()
    })
}

/// Fills `r` (a default route) with the rule's header changes, which it takes from `set`,
/// and its action.
#[allow(clippy::too_many_arguments)]
fn build_route(
    rec: &mut Recorder<'_>,
    ir: &mut RouteIr,
    set: &mut FilterSet,
    backends: Vec<Backend>,
    matched: &PathMatch,
    ((request_timeout, backend_timeout), retry): (Timeouts, Option<&RetryPolicy>),
    r: &mut Route,
) -> Result<(), Problem> {
    r.request_headers_to_add = std::mem::take(&mut set.request.add);
    r.request_headers_to_remove = std::mem::take(&mut set.request.remove);
    r.response_headers_to_add = std::mem::take(&mut set.response.add);
    r.response_headers_to_remove = std::mem::take(&mut set.response.remove);

    // ExtensionRefs: DirectResponse answers; RouteOption is a hook for later.
    let mut direct: Option<DirectResponseAction> = None;
    let mut broken = false;
    for e in &set.extension_refs {
        match weir_ref_kind(&e.group, &e.kind) {
            Some(Kind::DirectResponse) => match rec.direct_response(&ir.namespace, &e.name) {
                None => {
                    broken = true;
                    first(
                        &mut ir.resolved,
                        Problem::new(
                            R_BACKEND_NOT_FOUND,
                            format!(
                                "{}: DirectResponse {}/{} not found",
                                e.path, ir.namespace, e.name
                            ),
                        ),
                    );
                }
                Some(dr) => match crate::model::direct_response::Spec::try_from(&**dr) {
                    Ok(spec) => {
                        direct = Some(DirectResponseAction {
                            status: u32::from(spec.status),
                            body: spec.body.map(|b| DataSource {
                                specifier: Some(data_source::Specifier::InlineString(b)),
                                ..Default::default()
                            }),
                            ..Default::default()
                        });
                    }
                    Err(errors) => {
                        broken = true;
                        first(
                            &mut ir.resolved,
                            Problem::new(
                                R_BACKEND_NOT_FOUND,
                                format!(
                                    "{}: DirectResponse {}/{} is not valid: {errors}",
                                    e.path, ir.namespace, e.name
                                ),
                            ),
                        );
                    }
                },
            },
            Some(Kind::RouteOption) => {
                // Applied after the route is built (`apply_route_options`); a missing
                // one breaks the rule like any unresolved reference.
                if !rec.route_option_exists(&ir.namespace, &e.name) {
                    broken = true;
                    first(
                        &mut ir.resolved,
                        Problem::new(
                            R_BACKEND_NOT_FOUND,
                            format!(
                                "{}: RouteOption {}/{} not found",
                                e.path, ir.namespace, e.name
                            ),
                        ),
                    );
                }
            }
            _ => {
                broken = true;
                first(
                    &mut ir.resolved,
                    Problem::new(
                        R_INVALID_KIND,
                        format!(
                            "{}: Weir's ExtensionRef filters name a DirectResponse or RouteOption, not {}/{}",
                            e.path, e.group, e.kind
                        ),
                    ),
                );
            }
        }
    }

    if broken {
        r.action = Some(internal_error());
        return Ok(());
    }
    if let Some(redirect) = &set.redirect {
        // Finished with the listener's port at assembly.
        r.action = Some(route::Action::Redirect(redirect.to_action(0)));
        return Ok(());
    }
    if let Some(d) = direct {
        r.action = Some(route::Action::DirectResponse(d));
        return Ok(());
    }

    let valid: Vec<(&ClusterRef, &Backend)> = backends
        .iter()
        .filter(|b| b.weight > 0)
        .filter_map(|b| b.cluster.as_ref().map(|c| (c, b)))
        .collect();
    let unresolved: u32 = backends
        .iter()
        .filter(|b| b.cluster.is_none())
        .map(|b| b.weight)
        .sum();
    if valid.is_empty() {
        r.action = Some(internal_error());
        return Ok(());
    }
    let mut action = RouteAction {
        cluster_not_found_response_code:
            route_action::ClusterNotFoundResponseCode::InternalServerError as i32,
        ..Default::default()
    };
    let per_backend = valid.iter().any(|(_, b)| b.filters != FilterSet::default());
    if valid.len() == 1 && unresolved == 0 && !per_backend {
        action.cluster_specifier = Some(route_action::ClusterSpecifier::Cluster(
            valid[0].0.cluster_name(),
        ));
    } else {
        let mut clusters: Vec<weighted_cluster::ClusterWeight> = valid
            .iter()
            .map(|(c, b)| weighted_cluster::ClusterWeight {
                name: c.cluster_name(),
                weight: Some(UInt32Value { value: b.weight }),
                request_headers_to_add: b.filters.request.add.clone(),
                request_headers_to_remove: b.filters.request.remove.clone(),
                response_headers_to_add: b.filters.response.add.clone(),
                response_headers_to_remove: b.filters.response.remove.clone(),
                host_rewrite_specifier: b
                    .filters
                    .rewrite
                    .as_ref()
                    .and_then(|rw| rw.hostname())
                    .map(|h| {
                        weighted_cluster::cluster_weight::HostRewriteSpecifier::HostRewriteLiteral(
                            h.to_string(),
                        )
                    }),
                ..Default::default()
            })
            .collect();
        if unresolved > 0 {
            clusters.push(weighted_cluster::ClusterWeight {
                name: UNRESOLVED_CLUSTER.to_string(),
                weight: Some(UInt32Value { value: unresolved }),
                ..Default::default()
            });
        }
        action.cluster_specifier = Some(route_action::ClusterSpecifier::WeightedClusters(
            WeightedCluster {
                clusters,
                ..Default::default()
            },
        ));
    }
    drop(valid);
    // The route's clusters, moved from its backends.
    for b in backends {
        if let (Some(c), true) = (b.cluster, b.weight > 0) {
            ir.clusters.insert(c);
        }
    }
    if let Some(rw) = &set.rewrite {
        rw.apply(&mut action, matched);
    }
    for m in &set.mirrors {
        match resolve_backend(
            rec,
            &ir.namespace.clone(),
            &m.group,
            &m.kind,
            &m.name,
            m.namespace.as_deref(),
            m.port,
            &m.path,
        ) {
            Ok(c) => {
                action
                    .request_mirror_policies
                    .push(route_action::RequestMirrorPolicy {
                        cluster: c.cluster_name(),
                        runtime_fraction: filters::mirror_fraction(&m.fraction),
                        ..Default::default()
                    });
                ir.clusters.insert(c);
            }
            Err(p) => first(&mut ir.resolved, p),
        }
    }
    match (retry, request_timeout, backend_timeout) {
        // With retries, backendRequest bounds each attempt and request (else Envoy's
        // default route timeout) the whole exchange.
        (Some(retry), req, be) => {
            action.timeout = req;
            action.retry_policy = Some(RetryPolicy {
                per_try_timeout: be,
                ..retry.clone()
            });
        }
        (None, Some(req), Some(be)) => {
            action.timeout = Some(req);
            action.retry_policy = Some(RetryPolicy {
                per_try_timeout: Some(be),
                ..Default::default()
            });
        }
        (None, Some(t), None) | (None, None, Some(t)) => action.timeout = Some(t),
        (None, None, None) => {}
    }
    r.action = Some(route::Action::Route(action));
    Ok(())
}
