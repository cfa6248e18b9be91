//! The routing option values: serde shapes (K8sGateway's), validation with field paths,
//! and the Envoy route fields they set.

use serde::Deserialize;
use weir_plugin_sdk::envoy::config::core::v3::RuntimeFractionalPercent;
use weir_plugin_sdk::envoy::config::core::v3::{
    HeaderValue, HeaderValueOption, header_value_option,
};
use weir_plugin_sdk::envoy::config::route::v3::{
    RetryPolicy, Route, RouteAction, retry_policy, route, route_action, route_match,
};
use weir_plugin_sdk::envoy::r#type::matcher::v3::{RegexMatchAndSubstitute, RegexMatcher};
use weir_plugin_sdk::envoy::r#type::v3::{FractionalPercent, fractional_percent};
use weir_plugin_sdk::{ClusterName, FieldError, PluginError, duration, parse_config};

/// One routing option's value, by key.
#[derive(Debug, Clone, PartialEq)]
pub enum RouteSettings {
    /// `timeout`: the whole request's timeout (`"15s"`; `"0s"` disables it).
    Timeout(std::time::Duration),
    /// `retries`.
    Retries(Retries),
    /// `prefixRewrite`: replaces the matched path prefix.
    PrefixRewrite(String),
    /// `regexRewrite`: rewrites the path by regular expression.
    RegexRewrite(RegexRewrite),
    /// `hostRewrite`: the Host header sent upstream.
    HostRewrite(String),
    /// `autoHostRewrite`: the Host header becomes the upstream host's name.
    AutoHostRewrite(bool),
    /// `hostRewriteHeader`: the Host header is taken from this request header.
    HostRewriteHeader(String),
    /// `headerManipulation`.
    Headers(HeaderManipulation),
    /// `idleTimeout`: how long a stream may go without activity.
    IdleTimeout(std::time::Duration),
    /// `lbHash`: what consistent-hash load balancers hash requests by.
    LbHash(LbHash),
    /// `upgrades`: which connection upgrades the route allows (websocket).
    Upgrades(Vec<Upgrade>),
    /// `includeRequestAttemptCount` (virtual hosts): send `x-envoy-attempt-count`
    /// upstream.
    IncludeRequestAttemptCount(bool),
    /// `includeAttemptCountInResponse` (virtual hosts): return `x-envoy-attempt-count`
    /// to the client.
    IncludeAttemptCountInResponse(bool),
    /// `shadowing`: a copy of a share of the requests goes to an Upstream too.
    Shadowing(Shadowing),
}

/// `shadowing`: mirror requests to an Upstream (answers are ignored).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Shadowing {
    /// The Upstream that gets the copies.
    pub upstream: UpstreamRef,
    /// The share of requests copied, 0 to 100 (default 100).
    pub percentage: Option<f64>,
}

/// `shadowing.upstream`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpstreamRef {
    /// Its name.
    pub name: String,
    /// Its namespace.
    pub namespace: String,
}

/// `lbHash`: the hash policies, tried in order.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LbHash {
    /// The policies.
    pub hash_policies: Vec<HashPolicy>,
}

/// `lbHash.hashPolicies[]`: exactly one of `header`, `cookie`, `sourceIp`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HashPolicy {
    /// Hash by this request header.
    pub header: Option<String>,
    /// Hash by this cookie (Envoy sets it when `ttl` is given and it is missing).
    pub cookie: Option<Cookie>,
    /// Hash by the client's address.
    pub source_ip: Option<bool>,
    /// Stop at this policy when it produced a hash.
    #[serde(default)]
    pub terminal: bool,
}

/// `lbHash.hashPolicies[].cookie`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Cookie {
    /// The cookie's name.
    pub name: String,
    /// Lifetime of a cookie Envoy generates.
    pub ttl: Option<String>,
    /// Path of a cookie Envoy generates.
    #[serde(default)]
    pub path: String,
}

/// `upgrades[]`: only `websocket`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Upgrade {
    /// WebSocket upgrades.
    pub websocket: Toggle,
}

/// `{enabled: bool}`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Toggle {
    /// On or off.
    pub enabled: bool,
}

/// `retries`: Envoy's retry policy.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Retries {
    /// Envoy's retry conditions, comma separated (`5xx`, `connect-failure`, …).
    #[serde(default)]
    pub retry_on: String,
    /// How many retries; Envoy's default (1) when unset. Read wide for our message.
    #[serde(default)]
    pub num_retries: Option<i64>,
    /// Timeout of each try.
    #[serde(default)]
    pub per_try_timeout: Option<String>,
    /// Back-off between tries.
    #[serde(default)]
    pub retry_back_off: Option<BackOff>,
}

/// `retries.retryBackOff`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BackOff {
    /// First interval (Envoy's default 25 ms).
    pub base_interval: String,
    /// Longest interval (Envoy's default 10 × base).
    #[serde(default)]
    pub max_interval: Option<String>,
}

/// `regexRewrite`: a pattern and its substitution (`\1` refers to groups).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RegexRewrite {
    /// The regular expression (RE2 syntax).
    pub pattern: Pattern,
    /// What the matched part becomes.
    pub substitution: String,
}

/// `regexRewrite.pattern`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Pattern {
    /// The regular expression.
    pub regex: String,
}

/// `headerManipulation`: headers added to and removed from requests and responses.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HeaderManipulation {
    /// Added to the request sent upstream.
    #[serde(default)]
    pub request_headers_to_add: Vec<HeaderToAdd>,
    /// Removed from the request sent upstream.
    #[serde(default)]
    pub request_headers_to_remove: Vec<String>,
    /// Added to the response sent downstream.
    #[serde(default)]
    pub response_headers_to_add: Vec<HeaderToAdd>,
    /// Removed from the response sent downstream.
    #[serde(default)]
    pub response_headers_to_remove: Vec<String>,
}

/// One header to add.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HeaderToAdd {
    /// The header.
    pub header: Header,
    /// Append to an existing value (the default) or replace it.
    #[serde(default)]
    pub append: Option<bool>,
}

/// A header name and value.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Header {
    /// The header name.
    pub key: String,
    /// Its value.
    pub value: String,
}

// === impl RouteSettings ===

impl RouteSettings {
    /// Parses and validates the value of option `key`, reporting every bad field.
    pub fn from_json(key: &str, json: &str) -> Result<Self, PluginError> {
        let settings = match key {
            "timeout" => Self::Timeout(parse_duration("", &parse_config::<String>(json)?)?),
            "retries" => {
                let retries: Retries = parse_config(json)?;
                PluginError::check(retries.problems())?;
                Self::Retries(retries)
            }
            "prefixRewrite" => {
                let prefix: String = parse_config(json)?;
                if !prefix.starts_with('/') {
                    return Err(PluginError::invalid("", "must start with /"));
                }
                Self::PrefixRewrite(prefix)
            }
            "regexRewrite" => {
                let rewrite: RegexRewrite = parse_config(json)?;
                if rewrite.pattern.regex.is_empty() {
                    return Err(PluginError::invalid("pattern.regex", "must not be empty"));
                }
                Self::RegexRewrite(rewrite)
            }
            "hostRewrite" => Self::HostRewrite(non_empty(parse_config(json)?)?),
            "autoHostRewrite" => Self::AutoHostRewrite(parse_config(json)?),
            "hostRewriteHeader" => Self::HostRewriteHeader(non_empty(parse_config(json)?)?),
            "headerManipulation" => {
                let headers: HeaderManipulation = parse_config(json)?;
                PluginError::check(headers.problems())?;
                Self::Headers(headers)
            }
            "idleTimeout" => Self::IdleTimeout(parse_duration("", &parse_config::<String>(json)?)?),
            "lbHash" => {
                let hash: LbHash = parse_config(json)?;
                hash.to_proto()?;
                Self::LbHash(hash)
            }
            "upgrades" => Self::Upgrades(parse_config(json)?),
            "includeRequestAttemptCount" => Self::IncludeRequestAttemptCount(parse_config(json)?),
            "includeAttemptCountInResponse" => {
                Self::IncludeAttemptCountInResponse(parse_config(json)?)
            }
            "shadowing" => {
                let shadowing: Shadowing = parse_config(json)?;
                if shadowing.upstream.name.is_empty() || shadowing.upstream.namespace.is_empty() {
                    return Err(PluginError::invalid(
                        "upstream",
                        "needs the name and namespace of an Upstream",
                    ));
                }
                if shadowing
                    .percentage
                    .is_some_and(|p| !(0.0..=100.0).contains(&p))
                {
                    return Err(PluginError::invalid(
                        "percentage",
                        "must be between 0 and 100",
                    ));
                }
                Self::Shadowing(shadowing)
            }
            other => {
                return Err(PluginError::invalid(
                    "",
                    format!("{other} is not a routing option"),
                ));
            }
        };
        Ok(settings)
    }

    /// Sets this option on `route`. Timeouts, retries and rewrites leave a route that
    /// does not forward (a redirect, a direct response) as it is.
    pub fn apply_to_route(&self, route: &mut Route) -> Result<(), PluginError> {
        if let Self::Headers(headers) = self {
            headers.add_to(HeaderLists {
                request_add: &mut route.request_headers_to_add,
                request_remove: &mut route.request_headers_to_remove,
                response_add: &mut route.response_headers_to_add,
                response_remove: &mut route.response_headers_to_remove,
            });
            return Ok(());
        }
        let regex_match = matches!(
            route
                .r#match
                .as_ref()
                .and_then(|m| m.path_specifier.as_ref()),
            Some(route_match::PathSpecifier::SafeRegex(_))
        );
        let Some(route::Action::Route(action)) = route.action.as_mut() else {
            return Ok(());
        };
        match self {
            Self::Timeout(timeout) => action.timeout = Some(duration::to_proto(*timeout)),
            Self::Retries(retries) => action.retry_policy = Some(retries.to_proto()),
            Self::PrefixRewrite(prefix) => {
                if regex_match {
                    return Err(PluginError::invalid(
                        "",
                        "a route matched by regular expression has no prefix to replace; use regexRewrite",
                    ));
                }
                clear_path_rewrites(action);
                action.prefix_rewrite = prefix.clone();
            }
            Self::RegexRewrite(rewrite) => {
                clear_path_rewrites(action);
                action.regex_rewrite = Some(RegexMatchAndSubstitute {
                    pattern: Some(RegexMatcher {
                        regex: rewrite.pattern.regex.clone(),
                        ..Default::default()
                    }),
                    substitution: rewrite.substitution.clone(),
                });
            }
            Self::HostRewrite(host) => {
                action.host_rewrite_specifier = Some(
                    route_action::HostRewriteSpecifier::HostRewriteLiteral(host.clone()),
                )
            }
            Self::AutoHostRewrite(auto) => {
                action.host_rewrite_specifier =
                    Some(route_action::HostRewriteSpecifier::AutoHostRewrite(*auto))
            }
            Self::HostRewriteHeader(header) => {
                action.host_rewrite_specifier = Some(
                    route_action::HostRewriteSpecifier::HostRewriteHeader(header.clone()),
                )
            }
            Self::IdleTimeout(timeout) => action.idle_timeout = Some(duration::to_proto(*timeout)),
            Self::LbHash(hash) => action.hash_policy = hash.to_proto()?,
            Self::Upgrades(upgrades) => {
                action.upgrade_configs = upgrades
                    .iter()
                    .map(|u| route_action::UpgradeConfig {
                        upgrade_type: "websocket".to_owned(),
                        enabled: Some(u.websocket.enabled),
                        ..Default::default()
                    })
                    .collect()
            }
            Self::Shadowing(shadowing) => {
                let share = shadowing.percentage.unwrap_or(100.0);
                action.request_mirror_policies = vec![route_action::RequestMirrorPolicy {
                    cluster: ClusterName::for_upstream(
                        &shadowing.upstream.namespace,
                        &shadowing.upstream.name,
                    )
                    .to_string(),
                    runtime_fraction: Some(RuntimeFractionalPercent {
                        default_value: Some(FractionalPercent {
                            // Parts per million keep two decimals of a percentage.
                            numerator: (share * 10_000.0).round() as u32,
                            denominator: fractional_percent::DenominatorType::Million as i32,
                        }),
                        runtime_key: String::new(),
                    }),
                    ..Default::default()
                }]
            }
            Self::IncludeRequestAttemptCount(_) | Self::IncludeAttemptCountInResponse(_) => {
                return Err(PluginError::invalid(
                    "",
                    "applies to virtual hosts only; set it on a VirtualHostOption",
                ));
            }
            Self::Headers(_) => {}
        }
        Ok(())
    }
}

// === impl LbHash ===

impl LbHash {
    /// Envoy's hash policies, or every bad entry named.
    pub fn to_proto(&self) -> Result<Vec<route_action::HashPolicy>, PluginError> {
        use route_action::hash_policy::{
            ConnectionProperties, Cookie as EnvoyCookie, Header as EnvoyHeader, PolicySpecifier,
        };
        let mut problems = Vec::new();
        let mut out = Vec::new();
        for (i, p) in self.hash_policies.iter().enumerate() {
            let set = [
                p.header.is_some(),
                p.cookie.is_some(),
                p.source_ip.is_some(),
            ];
            if set.iter().filter(|s| **s).count() != 1 {
                problems.push(FieldError::new(
                    format!("hashPolicies[{i}]"),
                    "set exactly one of header, cookie, sourceIp",
                ));
                continue;
            }
            let specifier = if let Some(header) = &p.header {
                PolicySpecifier::Header(EnvoyHeader {
                    header_name: header.clone(),
                    ..Default::default()
                })
            } else if let Some(cookie) = &p.cookie {
                let ttl = match &cookie.ttl {
                    Some(t) => match duration::parse(t) {
                        Ok(d) => Some(duration::to_proto(d)),
                        Err(e) => {
                            problems.push(FieldError::new(
                                format!("hashPolicies[{i}].cookie.ttl"),
                                e.to_string(),
                            ));
                            None
                        }
                    },
                    None => None,
                };
                PolicySpecifier::Cookie(EnvoyCookie {
                    name: cookie.name.clone(),
                    ttl,
                    path: cookie.path.clone(),
                    ..Default::default()
                })
            } else {
                PolicySpecifier::ConnectionProperties(ConnectionProperties {
                    source_ip: p.source_ip.unwrap_or_default(),
                })
            };
            out.push(route_action::HashPolicy {
                policy_specifier: Some(specifier),
                terminal: p.terminal,
            });
        }
        PluginError::check(problems)?;
        Ok(out)
    }
}

/// Envoy takes one way of rewriting the path: the option replaces any the route had (an
/// HTTPRoute URLRewrite filter).
fn clear_path_rewrites(action: &mut RouteAction) {
    action.prefix_rewrite.clear();
    action.regex_rewrite = None;
    action.path_rewrite_policy = None;
}

fn non_empty(value: String) -> Result<String, PluginError> {
    if value.is_empty() {
        Err(PluginError::invalid("", "must not be empty"))
    } else {
        Ok(value)
    }
}

fn parse_duration(path: &str, value: &str) -> Result<std::time::Duration, PluginError> {
    duration::parse(value).map_err(|err| PluginError::invalid(path, err.to_string()))
}

fn duration_problem(path: &str, value: &str) -> Option<FieldError> {
    duration::parse(value)
        .err()
        .map(|err| FieldError::new(path, err.to_string()))
}

// === impl Retries ===

impl Retries {
    /// Every problem, with field paths.
    pub fn problems(&self) -> Vec<FieldError> {
        let mut problems = Vec::new();
        if let Some(n) = self.num_retries
            && !(0..=i64::from(u32::MAX)).contains(&n)
        {
            problems.push(FieldError::new(
                "numRetries",
                format!("must be a whole number from 0, got {n}"),
            ));
        }
        if let Some(t) = &self.per_try_timeout {
            problems.extend(duration_problem("perTryTimeout", t));
        }
        if let Some(back_off) = &self.retry_back_off {
            problems.extend(duration_problem(
                "retryBackOff.baseInterval",
                &back_off.base_interval,
            ));
            if let Some(max) = &back_off.max_interval {
                problems.extend(duration_problem("retryBackOff.maxInterval", max));
            }
        }
        problems
    }

    /// Envoy's retry policy for this (validated) value.
    pub fn to_proto(&self) -> RetryPolicy {
        let proto_duration = |s: &str| duration::parse(s).ok().map(duration::to_proto);
        RetryPolicy {
            retry_on: self.retry_on.clone(),
            num_retries: self.num_retries.and_then(|n| u32::try_from(n).ok()),
            per_try_timeout: self.per_try_timeout.as_deref().and_then(proto_duration),
            retry_back_off: self
                .retry_back_off
                .as_ref()
                .map(|b| retry_policy::RetryBackOff {
                    base_interval: proto_duration(&b.base_interval),
                    max_interval: b.max_interval.as_deref().and_then(proto_duration),
                }),
            ..Default::default()
        }
    }
}

/// The four header lists Envoy's `Route` and `VirtualHost` both have.
pub struct HeaderLists<'a> {
    /// `request_headers_to_add`.
    pub request_add: &'a mut Vec<HeaderValueOption>,
    /// `request_headers_to_remove`.
    pub request_remove: &'a mut Vec<String>,
    /// `response_headers_to_add`.
    pub response_add: &'a mut Vec<HeaderValueOption>,
    /// `response_headers_to_remove`.
    pub response_remove: &'a mut Vec<String>,
}

// === impl HeaderManipulation ===

impl HeaderManipulation {
    /// Every problem, with field paths.
    pub fn problems(&self) -> Vec<FieldError> {
        let mut problems = Vec::new();
        for (field, list) in [
            ("requestHeadersToAdd", &self.request_headers_to_add),
            ("responseHeadersToAdd", &self.response_headers_to_add),
        ] {
            for (i, h) in list.iter().enumerate() {
                problems.extend(header_name_problem(
                    &format!("{field}[{i}].header.key"),
                    &h.header.key,
                ));
            }
        }
        for (field, list) in [
            ("requestHeadersToRemove", &self.request_headers_to_remove),
            ("responseHeadersToRemove", &self.response_headers_to_remove),
        ] {
            for (i, name) in list.iter().enumerate() {
                problems.extend(header_name_problem(&format!("{field}[{i}]"), name));
            }
        }
        problems
    }

    /// Appends these changes to a route's or virtual host's header lists.
    pub fn add_to(&self, lists: HeaderLists<'_>) {
        lists.request_add.extend(self.request_to_add());
        lists
            .request_remove
            .extend(self.request_headers_to_remove.iter().cloned());
        lists.response_add.extend(self.response_to_add());
        lists
            .response_remove
            .extend(self.response_headers_to_remove.iter().cloned());
    }

    /// `requestHeadersToAdd` as Envoy header options.
    pub fn request_to_add(&self) -> Vec<HeaderValueOption> {
        self.request_headers_to_add.iter().map(to_option).collect()
    }

    /// `responseHeadersToAdd` as Envoy header options.
    pub fn response_to_add(&self) -> Vec<HeaderValueOption> {
        self.response_headers_to_add.iter().map(to_option).collect()
    }
}

fn to_option(h: &HeaderToAdd) -> HeaderValueOption {
    let action = if h.append.unwrap_or(true) {
        header_value_option::HeaderAppendAction::AppendIfExistsOrAdd
    } else {
        header_value_option::HeaderAppendAction::OverwriteIfExistsOrAdd
    };
    HeaderValueOption {
        header: Some(HeaderValue {
            key: h.header.key.clone(),
            value: h.header.value.clone(),
            ..Default::default()
        }),
        append_action: action as i32,
        ..Default::default()
    }
}

/// Envoy rejects header names that are empty, not lower-case tokens, or pseudo-headers.
fn header_name_problem(path: &str, name: &str) -> Option<FieldError> {
    let token = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
    if name.is_empty() {
        Some(FieldError::new(path, "must not be empty"))
    } else if name.starts_with(':') || name.eq_ignore_ascii_case("host") {
        Some(FieldError::new(
            path,
            format!("{name} cannot be changed with headerManipulation"),
        ))
    } else if !name.chars().all(token) {
        Some(FieldError::new(
            path,
            format!("{name:?} is not a valid header name"),
        ))
    } else {
        None
    }
}
