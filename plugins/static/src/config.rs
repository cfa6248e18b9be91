//! The `static` type block: serde shape and validation.

use std::net::IpAddr;

use serde::Deserialize;
use weir_plugin_sdk::{ConfigBlock, FieldError, PluginError, parse_config};

use crate::plain_json;

/// The `static` type block of an Upstream.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StaticConfig {
    /// The hosts to balance across; at least one.
    pub hosts: Vec<Host>,
    /// Whether to connect with TLS. Unset means: TLS when a host is on port
    /// 443 or names an `sniAddr` (K8sGateway's rule).
    #[serde(default)]
    pub use_tls: Option<bool>,
    /// Whether a host named by hostname gets that hostname as its SNI when it
    /// has no `sniAddr`. Defaults to true.
    #[serde(default)]
    pub auto_sni_rewrite: Option<bool>,
}

/// One host of a `static` Upstream.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Host {
    /// IP address or DNS hostname.
    pub addr: String,
    /// Port, 1..=65535. Read as a wide integer so out-of-range values get our
    /// message rather than serde's.
    pub port: i64,
    /// Relative weight among the hosts, at least 1; unset means equal weights.
    #[serde(default)]
    pub load_balancing_weight: Option<i64>,
    /// SNI to send to this host; implies TLS.
    #[serde(default)]
    pub sni_addr: Option<String>,
}

// === impl StaticConfig ===

impl ConfigBlock for StaticConfig {
    /// Parses a block with the quick [`plain_json`] reader, or with serde when the block
    /// is not plain, then fails with every one of the problems at once.
    fn from_json(json: &str) -> Result<Self, PluginError> {
        let config = match plain_json::parse(json) {
            Some(config) => config,
            None => parse_config(json)?,
        };
        PluginError::check(config.problems())?;
        Ok(config)
    }

    /// Every problem in an already parsed block, with field paths.
    fn problems(&self) -> Vec<FieldError> {
        let mut problems = Vec::new();
        if self.hosts.is_empty() {
            problems.push(FieldError::new("hosts", "must list at least one host"));
        }
        for (i, host) in self.hosts.iter().enumerate() {
            let host_problems = host.problems();
            let sni_without_tls = self.use_tls == Some(false) && host.sni_addr.is_some();
            // Build the path only when there is something to report: this runs for
            // every translation, and valid blocks are the common case.
            if host_problems.is_empty() && !sni_without_tls {
                continue;
            }
            let at = format!("hosts[{i}]");
            problems.extend(host_problems.into_iter().map(|p| p.under(&at)));
            if sni_without_tls {
                problems.push(FieldError::new(
                    format!("{at}.sniAddr"),
                    "SNI needs TLS, but useTls is false; remove sniAddr or set useTls to true",
                ));
            }
        }
        problems
    }
}

impl StaticConfig {
    /// Whether the cluster connects with TLS.
    pub fn tls(&self) -> bool {
        self.use_tls.unwrap_or_else(|| {
            self.hosts
                .iter()
                .any(|host| host.port == 443 || host.sni_addr.is_some())
        })
    }

    /// The SNI to send to `host`, if any: its `sniAddr`, else its hostname
    /// when `autoSniRewrite` is on (the default) and the address is not an IP.
    pub fn sni_for<'a>(&self, host: &'a Host) -> Option<&'a str> {
        self.sni_for_parsed(host, || host.is_ip())
    }

    /// [`StaticConfig::sni_for`] with the answer of [`Host::is_ip`] supplied by the
    /// caller (asked only when needed), so an address is parsed once per translation.
    pub(crate) fn sni_for_parsed<'a>(
        &self,
        host: &'a Host,
        is_ip: impl FnOnce() -> bool,
    ) -> Option<&'a str> {
        host.sni_addr.as_deref().or_else(|| {
            (self.auto_sni_rewrite.unwrap_or(true) && !is_ip()).then_some(host.addr.as_str())
        })
    }
}

// === impl Host ===

impl Host {
    /// Whether `addr` is an IP address (otherwise it is a hostname).
    pub fn is_ip(&self) -> bool {
        is_plain_ipv4(&self.addr) || self.addr.parse::<IpAddr>().is_ok()
    }

    /// The port, once validated.
    pub fn port(&self) -> u32 {
        u32::try_from(self.port).unwrap_or_default()
    }

    fn problems(&self) -> Vec<FieldError> {
        let mut problems = Vec::new();
        if self.addr.is_empty() {
            problems.push(FieldError::new("addr", "must not be empty"));
        } else if !self.is_ip() && !is_hostname(&self.addr) {
            problems.push(FieldError::new(
                "addr",
                format!(
                    "{:?} is neither an IP address nor a DNS hostname",
                    self.addr
                ),
            ));
        }
        if !(1..=65535).contains(&self.port) {
            problems.push(FieldError::new(
                "port",
                format!("must be between 1 and 65535, got {}", self.port),
            ));
        }
        if let Some(weight) = self.load_balancing_weight
            && !(1..=i64::from(u32::MAX)).contains(&weight)
        {
            problems.push(FieldError::new(
                "loadBalancingWeight",
                format!("must be between 1 and {}, got {weight}", u32::MAX),
            ));
        }
        if let Some(sni) = &self.sni_addr
            && !is_hostname(sni)
        {
            problems.push(FieldError::new(
                "sniAddr",
                format!("{sni:?} is not a DNS hostname"),
            ));
        }
        problems
    }
}

/// Whether `addr` is a dotted-quad IPv4 address as `Ipv4Addr`'s parser reads one: four
/// decimal numbers up to 255, one to three digits each, without leading zeros.
///
/// Every translation asks whether each address is an IP, and the standard parser
/// (which also tries IPv6) took ~300 instructions per address in a plugin; this check
/// takes a few dozen. It never accepts what the parser rejects (the tests compare
/// them); `false` only means "ask the parser".
fn is_plain_ipv4(addr: &str) -> bool {
    // One pass over the bytes: the standard library's `split` iterator cost several
    // times as much as the check itself in a plugin.
    let bytes = addr.as_bytes();
    if bytes.len() > 15 {
        return false;
    }
    let (mut dots, mut digits, mut value) = (0, 0, 0u32);
    for &byte in bytes {
        if byte == b'.' {
            if digits == 0 || dots == 3 {
                return false;
            }
            dots += 1;
            (digits, value) = (0, 0);
        } else if byte.is_ascii_digit() {
            // A second digit after a leading zero, or a number past 255 (which also
            // rules out a fourth digit), is not a plain dotted quad.
            if digits == 1 && value == 0 {
                return false;
            }
            value = value * 10 + u32::from(byte - b'0');
            digits += 1;
            if value > 255 {
                return false;
            }
        } else {
            return false;
        }
    }
    dots == 3 && digits != 0
}

/// Whether `name` is a DNS hostname: dot-separated labels of 1 to 63 letters,
/// digits, `-` or `_`, not starting or ending with `-`, 253 characters at most.
fn is_hostname(name: &str) -> bool {
    let name = name.strip_suffix('.').unwrap_or(name);
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use weir_plugin_sdk::PluginError;

    fn problems(json: &str) -> Vec<FieldError> {
        match StaticConfig::from_json(json) {
            Err(PluginError::InvalidConfig(problems)) => problems,
            other => panic!("expected invalid config, got {other:?}"),
        }
    }

    #[test]
    fn quick_ipv4_check_agrees_with_the_standard_parser() {
        use std::net::Ipv4Addr;
        let parses = |s: &str| s.parse::<Ipv4Addr>().is_ok();
        // Dotted quads of tricky numbers: the quick check must say exactly what the
        // parser says.
        let numbers = [
            "0", "00", "01", "1", "9", "10", "99", "100", "199", "200", "249", "250", "255", "256",
            "260", "300", "999", "1000",
        ];
        for a in numbers {
            for b in numbers {
                for c in numbers {
                    for d in numbers {
                        let addr = format!("{a}.{b}.{c}.{d}");
                        assert_eq!(is_plain_ipv4(&addr), parses(&addr), "{addr:?}");
                    }
                }
            }
        }
        // Every short string over a small alphabet: it never accepts what the parser
        // rejects.
        let alphabet = ['0', '1', '2', '5', '9', '.', '+', 'a'];
        let mut addr = String::new();
        fn walk(addr: &mut String, alphabet: &[char], depth: usize, check: &dyn Fn(&str)) {
            check(addr);
            if depth == 0 {
                return;
            }
            for &c in alphabet {
                addr.push(c);
                walk(addr, alphabet, depth - 1, check);
                addr.pop();
            }
        }
        walk(&mut addr, &alphabet, 7, &|addr| {
            if is_plain_ipv4(addr) {
                assert!(parses(addr), "{addr:?}");
            }
        });
        assert!(is_plain_ipv4("10.0.0.1") && Host::is_ip(&host("10.0.0.1")));
        assert!(!is_plain_ipv4("::1") && Host::is_ip(&host("::1")));
        assert!(!Host::is_ip(&host("example.com")));
    }

    fn host(addr: &str) -> Host {
        Host {
            addr: addr.into(),
            port: 80,
            load_balancing_weight: None,
            sni_addr: None,
        }
    }

    fn paths(json: &str) -> Vec<String> {
        problems(json).into_iter().map(|p| p.path).collect()
    }

    #[test]
    fn minimal_config_is_valid() {
        let config =
            StaticConfig::from_json(r#"{"hosts":[{"addr":"10.0.0.1","port":8080}]}"#).unwrap();
        assert_eq!(config.hosts[0].port(), 8080);
        assert!(!config.tls());
    }

    #[test]
    fn port_out_of_range_is_reported_at_its_index() {
        let json = r#"{"hosts":[{"addr":"10.0.0.1","port":80},{"addr":"10.0.0.2","port":70000}]}"#;
        let problems = problems(json);
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].path, "hosts[1].port");
        assert_eq!(
            problems[0].message,
            "must be between 1 and 65535, got 70000"
        );
    }

    #[test]
    fn port_zero_and_negative_ports_are_rejected() {
        let json = r#"{"hosts":[{"addr":"a.example","port":0},{"addr":"b.example","port":-1}]}"#;
        assert_eq!(paths(json), ["hosts[0].port", "hosts[1].port"]);
    }

    #[test]
    fn empty_hosts_are_rejected() {
        assert_eq!(paths(r#"{"hosts":[]}"#), ["hosts"]);
    }

    #[test]
    fn missing_addr_is_named() {
        let problems = problems(r#"{"hosts":[{"port":80}]}"#);
        assert_eq!(problems[0].path, "hosts[0]");
        assert_eq!(problems[0].message, "missing field `addr`");
    }

    #[test]
    fn missing_hosts_is_named() {
        assert_eq!(problems("{}")[0].message, "missing field `hosts`");
    }

    #[test]
    fn unknown_field_is_rejected_by_name() {
        let problems = problems(r#"{"hosts":[{"addr":"10.0.0.1","port":80,"wieght":2}]}"#);
        assert_eq!(problems[0].path, "hosts[0].wieght");
        assert!(
            problems[0].message.contains("unknown field `wieght`"),
            "{:?}",
            problems[0]
        );
    }

    #[test]
    fn every_bad_field_is_reported_at_once() {
        let json =
            r#"{"hosts":[{"addr":"","port":0,"loadBalancingWeight":0,"sniAddr":"bad sni"}]}"#;
        assert_eq!(
            paths(json),
            [
                "hosts[0].addr",
                "hosts[0].port",
                "hosts[0].loadBalancingWeight",
                "hosts[0].sniAddr"
            ]
        );
    }

    #[test]
    fn malformed_hostname_is_rejected() {
        assert_eq!(
            paths(r#"{"hosts":[{"addr":"-bad-.example","port":80}]}"#),
            ["hosts[0].addr"]
        );
        assert_eq!(
            paths(r#"{"hosts":[{"addr":"a b","port":80}]}"#),
            ["hosts[0].addr"]
        );
    }

    #[test]
    fn sni_with_tls_turned_off_is_a_contradiction() {
        let json =
            r#"{"useTls":false,"hosts":[{"addr":"10.0.0.1","port":80,"sniAddr":"api.example"}]}"#;
        assert_eq!(paths(json), ["hosts[0].sniAddr"]);
    }

    #[test]
    fn wrong_type_is_reported_at_its_field() {
        let problems = problems(r#"{"hosts":[{"addr":"10.0.0.1","port":80}],"useTls":"yes"}"#);
        assert_eq!(problems[0].path, "useTls");
    }

    #[test]
    fn tls_defaults_on_for_port_443_and_sni() {
        let on_443 =
            StaticConfig::from_json(r#"{"hosts":[{"addr":"api.example","port":443}]}"#).unwrap();
        assert!(on_443.tls());
        let with_sni = StaticConfig::from_json(
            r#"{"hosts":[{"addr":"10.0.0.1","port":8443,"sniAddr":"api.example"}]}"#,
        )
        .unwrap();
        assert!(with_sni.tls());
        let off = StaticConfig::from_json(
            r#"{"useTls":false,"hosts":[{"addr":"api.example","port":443}]}"#,
        )
        .unwrap();
        assert!(!off.tls());
    }

    #[test]
    fn sni_comes_from_sni_addr_then_hostname() {
        let config = StaticConfig::from_json(
            r#"{"hosts":[{"addr":"api.example","port":443},{"addr":"10.0.0.1","port":443},{"addr":"10.0.0.2","port":443,"sniAddr":"x.example"}]}"#,
        )
        .unwrap();
        let snis: Vec<_> = config.hosts.iter().map(|h| config.sni_for(h)).collect();
        assert_eq!(snis, [Some("api.example"), None, Some("x.example")]);
    }

    #[test]
    fn auto_sni_rewrite_off_keeps_hostnames_out_of_sni() {
        let config = StaticConfig::from_json(
            r#"{"autoSniRewrite":false,"hosts":[{"addr":"api.example","port":443}]}"#,
        )
        .unwrap();
        assert_eq!(config.sni_for(&config.hosts[0]), None);
    }
}
