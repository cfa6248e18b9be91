//! HTTPRoute matches → Envoy `RouteMatch`, and the precedence Gateway API orders them by.
//!
//! Regular expressions are checked with the `regex` crate's parser. Envoy uses RE2; the two
//! syntaxes agree on everything but a few corners (RE2 lacks nothing `regex` has that a
//! route would use, but `regex` accepts some Unicode classes RE2 spells differently), so
//! the check is an approximation: a pattern it accepts may still, rarely, be NACKed.
//! Patterns in a plain subset of the syntax the parser always accepts (literals, `.`,
//! anchors, alternation, groups, simple classes and repetition operators) skip the parse,
//! which cost more than the rest of the route's translation.

use envoy_types::pb::envoy::config::route::v3::{
    HeaderMatcher, QueryParameterMatcher, RouteMatch, header_matcher, query_parameter_matcher,
    route_match,
};
use envoy_types::pb::envoy::r#type::matcher::v3::{RegexMatcher, StringMatcher, string_matcher};

use crate::model::gateway_api::httproutes::{
    HttpRouteRulesMatches, HttpRouteRulesMatchesHeadersType, HttpRouteRulesMatchesMethod,
    HttpRouteRulesMatchesPathType, HttpRouteRulesMatchesQueryParamsType,
};

use std::fmt;

use super::conditions::{Problem, R_UNSUPPORTED_VALUE};

/// How specific a match is; larger sorts first. Field order is the spec's precedence:
/// exact path, then longer prefix, then method, then more headers, then more query params.
/// We rank a regular-expression path between exact and prefix, as kgateway and Envoy
/// Gateway do (the spec leaves it to the implementation).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Specificity {
    pub(crate) path_kind: u8,
    pub(crate) path_len: usize,
    pub(crate) method: bool,
    pub(crate) headers: usize,
    pub(crate) query_params: usize,
}

/// The path part of a translated match, which rewrites need.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum PathMatch {
    /// A prefix (as written, e.g. `/v2/` or `/`).
    Prefix(String),
    /// An exact path.
    Exact(String),
    /// A regular expression.
    Regex,
}

/// One translated match.
#[derive(Clone, Debug)]
pub(crate) struct Translated {
    pub(crate) route_match: RouteMatch,
    pub(crate) specificity: Specificity,
    pub(crate) path: PathMatch,
}

fn exact(v: &str) -> StringMatcher {
    StringMatcher {
        match_pattern: Some(string_matcher::MatchPattern::Exact(v.to_string())),
        ..Default::default()
    }
}

fn regex(path: &dyn fmt::Display, v: &str) -> Result<RegexMatcher, Problem> {
    // Parsing is the whole check (compiling would build automata we never use, which
    // cost more than the rest of a route's translation); a syntax error reads the same as
    // `regex::Regex::new` reports it. Patterns of the plain subset skip even that.
    if !plainly_valid(v) {
        check_syntax(path, v)?;
    }
    Ok(RegexMatcher {
        regex: v.to_string(),
        engine_type: None,
    })
}

/// The full syntax check of a regular expression.
fn check_syntax(path: &dyn fmt::Display, v: &str) -> Result<(), Problem> {
    regex_syntax::Parser::new().parse(v).map_err(|e| {
        let first = e.to_string();
        let first = first.lines().last().unwrap_or_default().trim().to_string();
        Problem::new(
            R_UNSUPPORTED_VALUE,
            format!("{path}: invalid regular expression {v:?}: {first}"),
        )
    })?;
    Ok(())
}

/// How deep groups may nest in a pattern [`plainly_valid`] vouches for (the parser's own
/// limit is far higher).
const PLAIN_NESTING: usize = 16;

/// Whether `v` is in a plain subset of the regular-expression syntax that the parser
/// always accepts, so checking it needs no parse (a parse costs more than the rest of the
/// route's translation): literal ASCII letters, digits and `/-_~%=,;:@!'<>`, escaped
/// metacharacters, `.`, `^`, `$`, `|`, groups `( )` that are not `(?`, classes of letters,
/// digits, `_` and ascending ranges of them, and `*`, `+` or `?` after a literal, `.`, a
/// class or a group, optionally made lazy by one `?`. `false` says nothing either way:
/// the parser decides.
fn plainly_valid(v: &str) -> bool {
    let b = v.as_bytes();
    let mut i = 0;
    let mut depth = 0usize;
    // Whether the last item can take a repetition operator.
    let mut repeatable = false;
    while i < b.len() {
        let c = b[i];
        i += 1;
        match c {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' => repeatable = true,
            b'/' | b'-' | b'_' | b'~' | b'%' | b'=' | b',' | b';' | b':' | b'@' | b'!' | b'\''
            | b'<' | b'>' | b'.' => repeatable = true,
            b'^' | b'$' | b'|' => repeatable = false,
            b'\\' => match b.get(i) {
                Some(
                    b'\\' | b'.' | b'+' | b'*' | b'?' | b'(' | b')' | b'|' | b'[' | b']' | b'{'
                    | b'}' | b'^' | b'$',
                ) => {
                    i += 1;
                    repeatable = true;
                }
                _ => return false,
            },
            b'(' => {
                if b.get(i) == Some(&b'?') || depth == PLAIN_NESTING {
                    return false;
                }
                depth += 1;
                repeatable = false;
            }
            b')' => {
                if depth == 0 {
                    return false;
                }
                depth -= 1;
                repeatable = true;
            }
            b'[' => match plain_class(&b[i..]) {
                Some(len) => {
                    i += len;
                    repeatable = true;
                }
                None => return false,
            },
            b'*' | b'+' | b'?' => {
                if !repeatable {
                    return false;
                }
                if b.get(i) == Some(&b'?') {
                    i += 1;
                }
                repeatable = false;
            }
            _ => return false,
        }
    }
    depth == 0
}

/// The length of a plain class's body and closing `]` (what follows its `[`): one or more
/// letters, digits, `_` or ascending ranges of them.
fn plain_class(b: &[u8]) -> Option<usize> {
    let plain = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    let mut i = 0;
    loop {
        let lo = *b.get(i)?;
        if lo == b']' && i > 0 {
            return Some(i + 1);
        }
        if !plain(lo) {
            return None;
        }
        i += 1;
        if b.get(i) == Some(&b'-') {
            let hi = *b.get(i + 1)?;
            if !plain(hi) || hi < lo {
                return None;
            }
            i += 2;
        }
    }
}

/// Translates one match (`None`: a rule without matches, which matches every request).
pub(crate) fn translate(
    m: Option<&HttpRouteRulesMatches>,
    path: &dyn fmt::Display,
) -> Result<Translated, Problem> {
    let mut rm = RouteMatch::default();
    let mut spec = Specificity::default();

    let (kind, value) = match m.and_then(|m| m.path.as_ref()) {
        None => (HttpRouteRulesMatchesPathType::PathPrefix, "/".to_string()),
        Some(p) => (
            p.r#type
                .clone()
                .unwrap_or(HttpRouteRulesMatchesPathType::PathPrefix),
            p.value.clone().unwrap_or_else(|| "/".to_string()),
        ),
    };
    let path_match = match kind {
        HttpRouteRulesMatchesPathType::Exact | HttpRouteRulesMatchesPathType::PathPrefix
            if !value.starts_with('/') =>
        {
            return Err(Problem::new(
                R_UNSUPPORTED_VALUE,
                format!("{path}.path.value: {value:?} must start with `/`"),
            ));
        }
        HttpRouteRulesMatchesPathType::Exact => {
            spec.path_kind = 3;
            rm.path_specifier = Some(route_match::PathSpecifier::Path(value.clone()));
            PathMatch::Exact(value.clone())
        }
        HttpRouteRulesMatchesPathType::RegularExpression => {
            spec.path_kind = 2;
            rm.path_specifier = Some(route_match::PathSpecifier::SafeRegex(regex(
                &format_args!("{path}.path.value"),
                &value,
            )?));
            PathMatch::Regex
        }
        HttpRouteRulesMatchesPathType::PathPrefix => {
            spec.path_kind = 1;
            let trimmed = value.trim_end_matches('/');
            rm.path_specifier = Some(if trimmed.is_empty() {
                route_match::PathSpecifier::Prefix("/".to_string())
            } else {
                // Gateway API prefixes match whole path segments: `/v2` matches `/v2` and
                // `/v2/x` but not `/v2x`.
                route_match::PathSpecifier::PathSeparatedPrefix(trimmed.to_string())
            });
            PathMatch::Prefix(value.clone())
        }
    };
    spec.path_len = value.len();

    if let Some(m) = m {
        if let Some(method) = &m.method {
            spec.method = true;
            rm.headers.push(HeaderMatcher {
                name: ":method".to_string(),
                header_match_specifier: Some(header_matcher::HeaderMatchSpecifier::StringMatch(
                    exact(method_name(method)),
                )),
                ..Default::default()
            });
        }
        let mut seen = Vec::new();
        for (i, h) in m.headers.iter().flatten().enumerate() {
            // Only the first match for a header name counts (header names are case-insensitive).
            let lower = h.name.to_ascii_lowercase();
            if seen.contains(&lower) {
                continue;
            }
            seen.push(lower);
            let spec_ = match h.r#type {
                Some(HttpRouteRulesMatchesHeadersType::RegularExpression) => {
                    header_matcher::HeaderMatchSpecifier::StringMatch(StringMatcher {
                        match_pattern: Some(string_matcher::MatchPattern::SafeRegex(regex(
                            &format_args!("{path}.headers[{i}].value"),
                            &h.value,
                        )?)),
                        ..Default::default()
                    })
                }
                _ => header_matcher::HeaderMatchSpecifier::StringMatch(exact(&h.value)),
            };
            rm.headers.push(HeaderMatcher {
                name: h.name.clone(),
                header_match_specifier: Some(spec_),
                ..Default::default()
            });
        }
        spec.headers = seen.len();
        let mut seen = Vec::new();
        for (i, q) in m.query_params.iter().flatten().enumerate() {
            // Query parameter names are case-sensitive; the first match for a name counts.
            if seen.contains(&q.name) {
                continue;
            }
            seen.push(q.name.clone());
            let sm = match q.r#type {
                Some(HttpRouteRulesMatchesQueryParamsType::RegularExpression) => StringMatcher {
                    match_pattern: Some(string_matcher::MatchPattern::SafeRegex(regex(
                        &format_args!("{path}.queryParams[{i}].value"),
                        &q.value,
                    )?)),
                    ..Default::default()
                },
                _ => exact(&q.value),
            };
            rm.query_parameters.push(QueryParameterMatcher {
                name: q.name.clone(),
                query_parameter_match_specifier: Some(
                    query_parameter_matcher::QueryParameterMatchSpecifier::StringMatch(sm),
                ),
            });
        }
        spec.query_params = seen.len();
    }
    Ok(Translated {
        route_match: rm,
        specificity: spec,
        path: path_match,
    })
}

fn method_name(m: &HttpRouteRulesMatchesMethod) -> &'static str {
    use HttpRouteRulesMatchesMethod as M;
    match m {
        M::Get => "GET",
        M::Head => "HEAD",
        M::Post => "POST",
        M::Put => "PUT",
        M::Delete => "DELETE",
        M::Connect => "CONNECT",
        M::Options => "OPTIONS",
        M::Trace => "TRACE",
        M::Patch => "PATCH",
    }
}

#[cfg(test)]
mod tests {
    use super::plainly_valid;

    fn parses(p: &str) -> bool {
        regex_syntax::Parser::new().parse(p).is_ok()
    }

    #[test]
    fn plain_patterns_skip_the_parse() {
        for p in [
            "^/r12/rule0/m1/items/[0-9]+$",
            "/api/v[0-9]+/.*",
            "^/(users|groups)/[a-zA-Z0-9_]+/?$",
            "a.b\\.c\\(d\\)",
            "x*?y+?z??",
            "",
        ] {
            assert!(plainly_valid(p), "{p}");
            assert!(parses(p), "{p}");
        }
        for p in [
            "(?i)a", "\\d+", "[^a]", "[a-]", "a{2}", "a**", "*a", "(a", "a)", "[z-a]", "é",
        ] {
            assert!(!plainly_valid(p), "{p}");
        }
    }

    /// Every pattern the plain subset vouches for parses: all patterns of up to four
    /// characters of the subset and just outside it, and many longer random ones.
    #[test]
    fn plainly_valid_patterns_always_parse() {
        const ALPHABET: &[u8] = b"aZ0-.*+?()|[]^$\\{";
        let check = |p: &str| {
            if plainly_valid(p) {
                assert!(parses(p), "{p:?} is vouched for but does not parse");
                1
            } else {
                0
            }
        };
        let mut vouched = 0;
        let n = ALPHABET.len();
        for len in 0..=4u32 {
            for mut code in 0..n.pow(len) {
                let mut p = String::new();
                for _ in 0..len {
                    p.push(char::from(ALPHABET[code % n]));
                    code /= n;
                }
                vouched += check(&p);
            }
        }
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..20_000 {
            let mut p = String::new();
            for _ in 0..12 {
                state = state
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                p.push(char::from(ALPHABET[(state >> 33) as usize % n]));
            }
            vouched += check(&p);
        }
        assert!(vouched > 1_000, "{vouched}");
    }
}
