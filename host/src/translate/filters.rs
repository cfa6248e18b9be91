//! HTTPRoute filters → what they do to an Envoy route.
//!
//! Rule-level and backend-level filters have separate generated Rust types with identical
//! shapes; backend filters are converted to the rule type once ([`from_backend_filter`]) so
//! one function translates both. Mirrors and ExtensionRefs are only *collected* here; the
//! route translator resolves their references (with ReferenceGrants) and records them as
//! dependencies.

use envoy_types::pb::envoy::config::core::v3::{
    HeaderValue, HeaderValueOption, RuntimeFractionalPercent, header_value_option,
};
use envoy_types::pb::envoy::config::route::v3::{
    RedirectAction, RouteAction, redirect_action, route_action,
};
use envoy_types::pb::envoy::extensions::filters::http::cors::v3::CorsPolicy;
use envoy_types::pb::envoy::r#type::matcher::v3::{
    RegexMatchAndSubstitute, RegexMatcher, StringMatcher, string_matcher,
};
use envoy_types::pb::envoy::r#type::v3::{FractionalPercent, fractional_percent};

use envoy_types::pb::google::protobuf::BoolValue;

use crate::model::gateway_api::httproutes::{
    HttpRouteRulesBackendRefsFilters, HttpRouteRulesFilters, HttpRouteRulesFiltersCors,
    HttpRouteRulesFiltersRequestRedirectPathType, HttpRouteRulesFiltersRequestRedirectScheme,
    HttpRouteRulesFiltersType, HttpRouteRulesFiltersUrlRewritePathType,
};

use std::fmt;

use super::conditions::{FieldPath, Problem, R_UNSUPPORTED_VALUE};
use super::matches::PathMatch;

/// Header changes on requests or responses.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct HeaderChanges {
    pub(crate) add: Vec<HeaderValueOption>,
    pub(crate) remove: Vec<String>,
}

/// A path modifier of a redirect or rewrite.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum PathModifier {
    Full(String),
    Prefix(String),
}

/// A RequestRedirect, waiting for the listener's port and scheme.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Redirect {
    scheme: Option<&'static str>,
    hostname: Option<String>,
    port: Option<u16>,
    path: Option<PathModifier>,
    status: u16,
    /// The rule's path match, for ReplacePrefixMatch.
    matched: PathMatch,
}

/// A URLRewrite.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Rewrite {
    hostname: Option<String>,
    path: Option<PathModifier>,
}

/// A RequestMirror before its backend is resolved.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct MirrorSpec {
    pub(crate) group: String,
    pub(crate) kind: String,
    pub(crate) name: String,
    pub(crate) namespace: Option<String>,
    pub(crate) port: Option<i32>,
    pub(crate) fraction: Option<FractionalPercent>,
    pub(crate) path: String,
}

/// An ExtensionRef before it is resolved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ExtensionRef {
    pub(crate) group: String,
    pub(crate) kind: String,
    pub(crate) name: String,
    pub(crate) path: String,
}

/// Everything a list of filters asks for.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct FilterSet {
    pub(crate) request: HeaderChanges,
    pub(crate) response: HeaderChanges,
    pub(crate) redirect: Option<Redirect>,
    pub(crate) rewrite: Option<Rewrite>,
    pub(crate) mirrors: Vec<MirrorSpec>,
    pub(crate) extension_refs: Vec<ExtensionRef>,
    /// A CORS policy, for the `envoy.filters.http.cors` filter's per-route config.
    pub(crate) cors: Option<CorsPolicy>,
}

impl FilterSet {
    /// Whether anything beyond header changes was asked for.
    pub(crate) fn has_non_header_filters(&self) -> bool {
        self.redirect.is_some()
            || self.rewrite.is_some()
            || !self.mirrors.is_empty()
            || !self.extension_refs.is_empty()
            || self.cors.is_some()
    }
}

/// Converts a backend-level filter to the rule-level type (the shapes are identical).
pub(crate) fn from_backend_filter(
    f: &HttpRouteRulesBackendRefsFilters,
    path: &dyn fmt::Display,
) -> Result<HttpRouteRulesFilters, Problem> {
    serde_json::to_value(f)
        .and_then(serde_json::from_value)
        .map_err(|e| Problem::new(R_UNSUPPORTED_VALUE, format!("{path}: {e}")))
}

fn missing(path: &dyn fmt::Display, field: &str) -> Problem {
    Problem::new(
        R_UNSUPPORTED_VALUE,
        format!("{path}.{field}: is required by the filter's type"),
    )
}

fn header(
    name: &str,
    value: &str,
    action: header_value_option::HeaderAppendAction,
) -> HeaderValueOption {
    HeaderValueOption {
        header: Some(HeaderValue {
            key: name.to_string(),
            value: value.to_string(),
            ..Default::default()
        }),
        append_action: action as i32,
        ..Default::default()
    }
}

/// Collects `filters` (at `path`, e.g. `spec.rules[0].filters`) for a rule whose path
/// match is `matched`. An unsupported value is an error naming the field.
pub(crate) fn collect(
    filters: &[HttpRouteRulesFilters],
    path: &dyn fmt::Display,
    matched: &PathMatch,
) -> Result<FilterSet, Problem> {
    use header_value_option::HeaderAppendAction as A;
    let mut set = FilterSet::default();
    for (i, f) in filters.iter().enumerate() {
        let p = FieldPath {
            parent: path,
            field: "",
            index: i,
        };
        match f.r#type {
            HttpRouteRulesFiltersType::RequestHeaderModifier => {
                let m = f
                    .request_header_modifier
                    .as_ref()
                    .ok_or_else(|| missing(&p, "requestHeaderModifier"))?;
                for s in m.set.iter().flatten() {
                    set.request
                        .add
                        .push(header(&s.name, &s.value, A::OverwriteIfExistsOrAdd));
                }
                for a in m.add.iter().flatten() {
                    set.request
                        .add
                        .push(header(&a.name, &a.value, A::AppendIfExistsOrAdd));
                }
                set.request
                    .remove
                    .extend(m.remove.iter().flatten().cloned());
            }
            HttpRouteRulesFiltersType::ResponseHeaderModifier => {
                let m = f
                    .response_header_modifier
                    .as_ref()
                    .ok_or_else(|| missing(&p, "responseHeaderModifier"))?;
                for s in m.set.iter().flatten() {
                    set.response
                        .add
                        .push(header(&s.name, &s.value, A::OverwriteIfExistsOrAdd));
                }
                for a in m.add.iter().flatten() {
                    set.response
                        .add
                        .push(header(&a.name, &a.value, A::AppendIfExistsOrAdd));
                }
                set.response
                    .remove
                    .extend(m.remove.iter().flatten().cloned());
            }
            HttpRouteRulesFiltersType::RequestRedirect => {
                let r = f
                    .request_redirect
                    .as_ref()
                    .ok_or_else(|| missing(&p, "requestRedirect"))?;
                let status = match r.status_code {
                    None => 302,
                    Some(c @ (301 | 302 | 303 | 307 | 308)) => c as u16,
                    Some(c) => {
                        return Err(Problem::new(
                            R_UNSUPPORTED_VALUE,
                            format!(
                                "{p}.requestRedirect.statusCode: {c} is not one of 301, 302, 303, 307, 308"
                            ),
                        ));
                    }
                };
                let port = match r.port {
                    None => None,
                    Some(n) => Some(u16::try_from(n).ok().filter(|n| *n > 0).ok_or_else(|| {
                        Problem::new(
                            R_UNSUPPORTED_VALUE,
                            format!("{p}.requestRedirect.port: {n} is not a port"),
                        )
                    })?),
                };
                let path_mod = match &r.path {
                    None => None,
                    Some(rp) => Some(match rp.r#type {
                        HttpRouteRulesFiltersRequestRedirectPathType::ReplaceFullPath => {
                            PathModifier::Full(rp.replace_full_path.clone().ok_or_else(|| {
                                missing(&format!("{p}.requestRedirect.path"), "replaceFullPath")
                            })?)
                        }
                        HttpRouteRulesFiltersRequestRedirectPathType::ReplacePrefixMatch => {
                            PathModifier::Prefix(rp.replace_prefix_match.clone().ok_or_else(
                                || {
                                    missing(
                                        &format!("{p}.requestRedirect.path"),
                                        "replacePrefixMatch",
                                    )
                                },
                            )?)
                        }
                    }),
                };
                if matches!(path_mod, Some(PathModifier::Prefix(_)))
                    && !matches!(matched, PathMatch::Prefix(_))
                {
                    return Err(Problem::new(
                        R_UNSUPPORTED_VALUE,
                        format!(
                            "{p}.requestRedirect.path.replacePrefixMatch: needs a PathPrefix match"
                        ),
                    ));
                }
                set.redirect = Some(Redirect {
                    scheme: r.scheme.as_ref().map(|s| match s {
                        HttpRouteRulesFiltersRequestRedirectScheme::Http => "http",
                        HttpRouteRulesFiltersRequestRedirectScheme::Https => "https",
                    }),
                    hostname: r.hostname.clone(),
                    port,
                    path: path_mod,
                    status,
                    matched: matched.clone(),
                });
            }
            HttpRouteRulesFiltersType::UrlRewrite => {
                let r = f
                    .url_rewrite
                    .as_ref()
                    .ok_or_else(|| missing(&p, "urlRewrite"))?;
                let path_mod = match &r.path {
                    None => None,
                    Some(rp) => Some(match rp.r#type {
                        HttpRouteRulesFiltersUrlRewritePathType::ReplaceFullPath => {
                            PathModifier::Full(rp.replace_full_path.clone().ok_or_else(|| {
                                missing(&format!("{p}.urlRewrite.path"), "replaceFullPath")
                            })?)
                        }
                        HttpRouteRulesFiltersUrlRewritePathType::ReplacePrefixMatch => {
                            PathModifier::Prefix(rp.replace_prefix_match.clone().ok_or_else(
                                || missing(&format!("{p}.urlRewrite.path"), "replacePrefixMatch"),
                            )?)
                        }
                    }),
                };
                if matches!(path_mod, Some(PathModifier::Prefix(_)))
                    && !matches!(matched, PathMatch::Prefix(_))
                {
                    return Err(Problem::new(
                        R_UNSUPPORTED_VALUE,
                        format!("{p}.urlRewrite.path.replacePrefixMatch: needs a PathPrefix match"),
                    ));
                }
                set.rewrite = Some(Rewrite {
                    hostname: r.hostname.clone(),
                    path: path_mod,
                });
            }
            HttpRouteRulesFiltersType::RequestMirror => {
                let m = f
                    .request_mirror
                    .as_ref()
                    .ok_or_else(|| missing(&p, "requestMirror"))?;
                let fraction = match (&m.percent, &m.fraction) {
                    (Some(_), Some(_)) => {
                        return Err(Problem::new(
                            R_UNSUPPORTED_VALUE,
                            format!("{p}.requestMirror: set `percent` or `fraction`, not both"),
                        ));
                    }
                    (Some(pc), None) => {
                        Some(percent(*pc, 100, &format!("{p}.requestMirror.percent"))?)
                    }
                    (None, Some(fr)) => Some(percent(
                        fr.numerator,
                        fr.denominator.unwrap_or(100),
                        &format!("{p}.requestMirror.fraction"),
                    )?),
                    (None, None) => None,
                };
                let b = &m.backend_ref;
                set.mirrors.push(MirrorSpec {
                    group: b.group.clone().unwrap_or_default(),
                    kind: b.kind.clone().unwrap_or_else(|| "Service".to_string()),
                    name: b.name.clone(),
                    namespace: b.namespace.clone(),
                    port: b.port,
                    fraction,
                    path: format!("{p}.requestMirror.backendRef"),
                });
            }
            HttpRouteRulesFiltersType::ExtensionRef => {
                let e = f
                    .extension_ref
                    .as_ref()
                    .ok_or_else(|| missing(&p, "extensionRef"))?;
                set.extension_refs.push(ExtensionRef {
                    group: e.group.clone(),
                    kind: e.kind.clone(),
                    name: e.name.clone(),
                    path: format!("{p}.extensionRef"),
                });
            }
            HttpRouteRulesFiltersType::Cors => {
                let c = f.cors.as_ref().ok_or_else(|| missing(&p, "cors"))?;
                if set.cors.is_some() {
                    return Err(Problem::new(
                        R_UNSUPPORTED_VALUE,
                        format!("{p}: a rule takes one CORS filter"),
                    ));
                }
                set.cors = Some(cors_policy(c, &format!("{p}.cors"))?);
            }
            HttpRouteRulesFiltersType::ExternalAuth => {
                return Err(Problem::new(
                    R_UNSUPPORTED_VALUE,
                    format!("{p}.type: the ExternalAuth filter is not supported by Weir"),
                ));
            }
        }
    }
    if set.redirect.is_some() && set.rewrite.is_some() {
        return Err(Problem::new(
            R_UNSUPPORTED_VALUE,
            format!("{path}: RequestRedirect and URLRewrite cannot be used together"),
        ));
    }
    Ok(set)
}

/// The Envoy CORS policy of a CORS filter at `path` (`….filters[i].cors`). Origins are
/// matched case-insensitively, the scheme's default port being optional; a `*` in an
/// origin's host stands for one or more labels. A preflight whose origin does not match
/// is answered by the proxy (200, no CORS headers), not forwarded.
pub(crate) fn cors_policy(
    c: &HttpRouteRulesFiltersCors,
    path: &str,
) -> Result<CorsPolicy, Problem> {
    let origins = c
        .allow_origins
        .iter()
        .flatten()
        .enumerate()
        .map(|(i, o)| {
            origin_matcher(o).map_err(|e| {
                Problem::new(
                    R_UNSUPPORTED_VALUE,
                    format!("{path}.allowOrigins[{i}]: {o:?} {e}"),
                )
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let list = |field: &str, values: &Option<Vec<String>>| -> Result<String, Problem> {
        let values = values.as_deref().unwrap_or_default();
        for (i, v) in values.iter().enumerate() {
            let token = v == "*"
                || (!v.is_empty()
                    && v.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)));
            if !token {
                return Err(Problem::new(
                    R_UNSUPPORTED_VALUE,
                    format!("{path}.{field}[{i}]: {v:?} is not an HTTP token"),
                ));
            }
        }
        // A wildcard allows everything: the other entries add nothing.
        Ok(if values.iter().any(|v| v == "*") {
            "*".to_string()
        } else {
            values.join(", ")
        })
    };
    let max_age = match c.max_age {
        None => 5,
        Some(s) if s >= 0 => s,
        Some(s) => {
            return Err(Problem::new(
                R_UNSUPPORTED_VALUE,
                format!("{path}.maxAge: {s} is negative"),
            ));
        }
    };
    Ok(CorsPolicy {
        allow_origin_string_match: origins,
        allow_methods: list("allowMethods", &c.allow_methods)?,
        allow_headers: list("allowHeaders", &c.allow_headers)?,
        expose_headers: list("exposeHeaders", &c.expose_headers)?,
        max_age: max_age.to_string(),
        allow_credentials: (c.allow_credentials == Some(true)).then_some(BoolValue { value: true }),
        forward_not_matching_preflights: Some(BoolValue { value: false }),
        ..Default::default()
    })
}

/// The matcher for one allowed origin: `*`, or `scheme://host[:port]` with `http` or
/// `https` and an optional leading `*` in the host; the reason otherwise.
fn origin_matcher(origin: &str) -> Result<StringMatcher, &'static str> {
    let regex = |r: String| StringMatcher {
        match_pattern: Some(string_matcher::MatchPattern::SafeRegex(RegexMatcher {
            regex: r,
            engine_type: None,
        })),
        ignore_case: false,
    };
    if origin == "*" {
        return Ok(regex(".*".to_string()));
    }
    let (scheme, rest) = origin
        .split_once("://")
        .ok_or("is not `*` or scheme://host[:port]")?;
    let default_port = match scheme.to_ascii_lowercase().as_str() {
        "http" => "80",
        "https" => "443",
        _ => return Err("has a scheme other than http or https"),
    };
    let (host, port) = match rest.rsplit_once(':') {
        Some((h, p)) => {
            if !p.parse::<u16>().is_ok_and(|n| n > 0) {
                return Err("has a port that is not a number from 1 to 65535");
            }
            (h, Some(p))
        }
        None => (rest, None),
    };
    let (wildcard, fixed) = match host.strip_prefix('*') {
        Some(tail) => (true, tail),
        None => (false, host),
    };
    let label_ok = |l: &str| {
        !l.is_empty() && l.len() <= 63 && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    let fixed_ok = if wildcard {
        fixed.is_empty()
            || fixed
                .strip_prefix('.')
                .is_some_and(|f| f.split('.').all(label_ok))
    } else {
        fixed.split('.').all(label_ok)
    };
    if !fixed_ok {
        return Err("has a host that is not a DNS name (a `*` may only lead it)");
    }
    let port_re = match port {
        Some(p) if p == default_port => format!("(:{p})?"),
        Some(p) => format!(":{p}"),
        None => format!("(:{default_port})?"),
    };
    // `*` is greedy to the left: any number of labels (and dots) before the rest.
    let host_re = if wildcard {
        format!("[A-Za-z0-9.-]+{}", regex::escape(fixed))
    } else {
        regex::escape(fixed)
    };
    Ok(regex(format!(
        "(?i){}://{host_re}{port_re}",
        regex::escape(scheme)
    )))
}

fn percent(numerator: i32, denominator: i32, path: &str) -> Result<FractionalPercent, Problem> {
    if denominator <= 0 || numerator < 0 || numerator > denominator {
        return Err(Problem::new(
            R_UNSUPPORTED_VALUE,
            format!("{path}: {numerator}/{denominator} is not a fraction between 0 and 1"),
        ));
    }
    // Both are non-negative and numerator <= denominator, so the casts and the division are safe.
    Ok(if denominator == 100 {
        FractionalPercent {
            numerator: numerator as u32,
            denominator: fractional_percent::DenominatorType::Hundred as i32,
        }
    } else {
        FractionalPercent {
            numerator: (u64::from(numerator as u32) * 1_000_000 / u64::from(denominator as u32))
                as u32,
            denominator: fractional_percent::DenominatorType::Million as i32,
        }
    })
}

/// The runtime fraction for a mirror.
pub(crate) fn mirror_fraction(f: &Option<FractionalPercent>) -> Option<RuntimeFractionalPercent> {
    f.as_ref().map(|f| RuntimeFractionalPercent {
        default_value: Some(*f),
        runtime_key: String::new(),
    })
}

/// A regex rewrite of the path.
fn regex_rewrite(pattern: String, substitution: String) -> RegexMatchAndSubstitute {
    RegexMatchAndSubstitute {
        pattern: Some(RegexMatcher {
            regex: pattern,
            engine_type: None,
        }),
        substitution,
    }
}

/// How a ReplacePrefixMatch is expressed in Envoy: a prefix rewrite where it is exact, a
/// regex rewrite where Envoy's prefix rewrite would double or drop a slash.
enum PrefixRewrite {
    Prefix(String),
    Regex(RegexMatchAndSubstitute),
}

fn prefix_rewrite(matched: &PathMatch, replacement: &str) -> PrefixRewrite {
    let prefix = match matched {
        PathMatch::Prefix(p) => p.trim_end_matches('/'),
        _ => "",
    };
    let repl = replacement.trim_end_matches('/');
    if repl.is_empty() {
        // `/strip-prefix/three` → `/three`, `/strip-prefix` → `/`.
        PrefixRewrite::Regex(regex_rewrite(
            format!("^{}/*", regex::escape(prefix)),
            "/".to_string(),
        ))
    } else if prefix.is_empty() {
        // Prefix `/`: `/x` → `<repl>/x`.
        PrefixRewrite::Regex(regex_rewrite("^/".to_string(), format!("{repl}/")))
    } else {
        PrefixRewrite::Prefix(repl.to_string())
    }
}

impl Redirect {
    /// The Envoy redirect for a listener on `listener_port`.
    ///
    /// Without a port, Gateway API takes the scheme's well-known port when a scheme is
    /// set, else the listener's port. We always write the port; Envoy keeps it in
    /// `Location` even when it is the scheme's default, which clients accept.
    pub(crate) fn to_action(&self, listener_port: u16) -> RedirectAction {
        let port = self.port.unwrap_or(match self.scheme {
            Some("https") => 443,
            Some(_) => 80,
            None => listener_port,
        });
        let response_code = match self.status {
            301 => redirect_action::RedirectResponseCode::MovedPermanently,
            303 => redirect_action::RedirectResponseCode::SeeOther,
            307 => redirect_action::RedirectResponseCode::TemporaryRedirect,
            308 => redirect_action::RedirectResponseCode::PermanentRedirect,
            _ => redirect_action::RedirectResponseCode::Found,
        };
        RedirectAction {
            host_redirect: self.hostname.clone().unwrap_or_default(),
            port_redirect: u32::from(port),
            response_code: response_code as i32,
            scheme_rewrite_specifier: self
                .scheme
                .map(|s| redirect_action::SchemeRewriteSpecifier::SchemeRedirect(s.to_string())),
            path_rewrite_specifier: self.path.as_ref().map(|p| match p {
                PathModifier::Full(f) => {
                    redirect_action::PathRewriteSpecifier::PathRedirect(f.clone())
                }
                PathModifier::Prefix(r) => match prefix_rewrite(&self.matched, r) {
                    PrefixRewrite::Prefix(s) => {
                        redirect_action::PathRewriteSpecifier::PrefixRewrite(s)
                    }
                    PrefixRewrite::Regex(re) => {
                        redirect_action::PathRewriteSpecifier::RegexRewrite(re)
                    }
                },
            }),
            ..Default::default()
        }
    }
}

impl Rewrite {
    /// Applies the rewrite to a forwarding action.
    pub(crate) fn apply(&self, action: &mut RouteAction, matched: &PathMatch) {
        if let Some(h) = &self.hostname {
            action.host_rewrite_specifier = Some(
                route_action::HostRewriteSpecifier::HostRewriteLiteral(h.clone()),
            );
        }
        match &self.path {
            None => {}
            Some(PathModifier::Full(f)) => {
                action.regex_rewrite = Some(regex_rewrite("^/.*$".to_string(), f.clone()));
            }
            Some(PathModifier::Prefix(r)) => match prefix_rewrite(matched, r) {
                PrefixRewrite::Prefix(s) => action.prefix_rewrite = s,
                PrefixRewrite::Regex(re) => action.regex_rewrite = Some(re),
            },
        }
    }

    /// The hostname it sets, if any.
    pub(crate) fn hostname(&self) -> Option<&str> {
        self.hostname.as_deref()
    }

    /// Whether it changes the path.
    pub(crate) fn changes_path(&self) -> bool {
        self.path.is_some()
    }
}
