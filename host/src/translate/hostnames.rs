//! Hostname rules of Gateway API: wildcard matching, listener ∩ route intersection, and
//! which listener is the most specific for a host.
//!
//! A wildcard `*.example.com` matches one or more labels in front of `example.com`
//! (`a.example.com`, `a.b.example.com`) but not `example.com` itself. `*` (our spelling of
//! "no hostname") matches everything.

/// The catch-all hostname.
pub(crate) const ANY: &str = "*";

/// Whether `pattern` (a hostname, a `*.` wildcard, or `*`) matches `host` (which may itself
/// be a wildcard, in which case every host it matches must match `pattern`).
pub(crate) fn matches(pattern: &str, host: &str) -> bool {
    if pattern == ANY || pattern == host {
        return true;
    }
    match pattern.strip_prefix('*') {
        // `*.example.com` matches `x.example.com` and `*.x.example.com`.
        Some(suffix) if suffix.starts_with('.') => {
            let h = host.strip_prefix('*').unwrap_or(host);
            h.len() > suffix.len() && h.ends_with(suffix)
        }
        _ => false,
    }
}

/// The hostnames a route serves on a listener: the intersection of the listener's
/// hostname and the route's hostnames. Empty means the route does not fit the listener.
pub(crate) fn intersect(listener: Option<&str>, route: &[String]) -> Vec<String> {
    let mut out: Vec<String> = match (listener, route.is_empty()) {
        (None, true) => vec![ANY.to_string()],
        (None, false) => route.to_vec(),
        (Some(l), true) => vec![l.to_string()],
        (Some(l), false) => route
            .iter()
            .filter_map(|h| {
                if matches(l, h) {
                    Some(h.clone())
                } else if matches(h, l) {
                    Some(l.to_string())
                } else {
                    None
                }
            })
            .collect(),
    };
    out.sort();
    out.dedup();
    out
}

/// Specificity of a listener hostname for ordering: exact beats wildcard, longer wildcard
/// beats shorter, any hostname beats none.
fn specificity(listener: Option<&str>) -> (u8, usize) {
    match listener {
        None => (0, 0),
        Some(h) if h.starts_with('*') => (1, h.len()),
        Some(h) => (2, h.len()),
    }
}

/// Of the listener hostnames on one port, the most specific one matching `domain`, if any
/// (`Some(None)` is the listener without a hostname).
pub(crate) fn most_specific<'a>(
    listeners: impl IntoIterator<Item = Option<&'a str>>,
    domain: &str,
) -> Option<Option<&'a str>> {
    listeners
        .into_iter()
        .filter(|l| l.is_none_or(|l| matches(l, domain)))
        .max_by_key(|l| specificity(*l))
}

/// The hostnames whose routes may serve requests for `domain`: itself, every wildcard
/// covering it, and `*`.
pub(crate) fn covering(domain: &str) -> Vec<String> {
    let mut out = Vec::new();
    for_each_covering(domain, |h| out.push(h.to_string()));
    out
}

/// Calls `f` with each hostname covering `domain`, in [`covering`]'s order, written into
/// one reused buffer instead of a `String` each.
pub(crate) fn for_each_covering(domain: &str, mut f: impl FnMut(&str)) {
    f(domain);
    if domain == ANY {
        return;
    }
    let bare = domain.strip_prefix("*.").unwrap_or(domain);
    let mut rest = bare;
    let mut buf = String::with_capacity(domain.len() + 2);
    let mut wildcard = |f: &mut dyn FnMut(&str), r: &str| {
        buf.clear();
        buf.push_str("*.");
        buf.push_str(r);
        f(&buf);
    };
    // For a wildcard domain, `*.<bare>` is the domain itself; start one label up.
    if domain.starts_with("*.") {
        rest = rest.split_once('.').map_or("", |(_, r)| r);
        if !rest.is_empty() {
            wildcard(&mut f, rest);
        }
    }
    while let Some((_, r)) = rest.split_once('.') {
        wildcard(&mut f, r);
        rest = r;
    }
    f(ANY);
}

/// Checks a hostname as Gateway API's pattern would (RFC 1123 labels, optional leading
/// `*.`); returns what is wrong.
pub(crate) fn check(hostname: &str) -> Result<(), String> {
    let bare = hostname.strip_prefix("*.").unwrap_or(hostname);
    let ok = !bare.is_empty()
        && hostname.len() <= 253
        && bare.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        });
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{hostname:?} is not a valid hostname (lowercase RFC 1123 labels, optionally after `*.`)"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcard_matches_one_or_more_labels_but_not_the_bare_domain() {
        assert!(matches("*.example.com", "a.example.com"));
        assert!(matches("*.example.com", "a.b.example.com"));
        assert!(matches("*.example.com", "*.a.example.com"));
        assert!(!matches("*.example.com", "example.com"));
        assert!(!matches("*.example.com", "aexample.com"));
        assert!(!matches("a.example.com", "*.example.com"));
        assert!(matches("*", "anything.at.all"));
    }

    #[test]
    fn intersection_keeps_the_more_specific_side() {
        let r = |hs: &[&str]| hs.iter().map(|h| h.to_string()).collect::<Vec<_>>();
        assert_eq!(
            intersect(Some("*.wildcard.io"), &r(&["foo.wildcard.io"])),
            ["foo.wildcard.io"]
        );
        assert_eq!(
            intersect(Some("very.specific.com"), &r(&["*.specific.com"])),
            ["very.specific.com"]
        );
        assert_eq!(intersect(Some("a.com"), &r(&[])), ["a.com"]);
        assert_eq!(intersect(None, &r(&[])), ["*"]);
        assert!(intersect(Some("a.com"), &r(&["b.com"])).is_empty());
        assert!(intersect(Some("*.io"), &r(&["wildcard.com"])).is_empty());
    }

    #[test]
    fn most_specific_listener_prefers_exact_then_longest_wildcard() {
        let ls = [
            None,
            Some("*.bar.com"),
            Some("foo.bar.com"),
            Some("*.foo.bar.com"),
        ];
        assert_eq!(most_specific(ls, "foo.bar.com"), Some(Some("foo.bar.com")));
        assert_eq!(
            most_specific(ls, "x.foo.bar.com"),
            Some(Some("*.foo.bar.com"))
        );
        assert_eq!(most_specific(ls, "x.bar.com"), Some(Some("*.bar.com")));
        assert_eq!(most_specific(ls, "other.org"), Some(None));
        assert_eq!(most_specific([Some("a.com")], "b.com"), None);
    }

    #[test]
    fn covering_lists_the_domain_its_wildcards_and_any() {
        assert_eq!(covering("a.b.c"), ["a.b.c", "*.b.c", "*.c", "*"]);
        assert_eq!(covering("*.b.c"), ["*.b.c", "*.c", "*"]);
        assert_eq!(covering("*"), ["*"]);
        assert_eq!(covering("*.c"), ["*.c", "*"]);
        assert_eq!(covering("c"), ["c", "*"]);
        assert_eq!(covering(""), ["", "*"]);
    }

    #[test]
    fn hostnames_are_checked_like_the_gateway_api_pattern() {
        assert!(check("foo.example.com").is_ok());
        assert!(check("*.example.com").is_ok());
        assert!(check("Foo.com").is_err());
        assert!(check("*").is_err());
        assert!(check("a..b").is_err());
    }
}
