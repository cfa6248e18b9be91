//! The duration type used by Weir's own kinds.
//!
//! K8sGateway manifests write durations in protobuf JSON form (`5s`, `0.250s`), Gateway
//! API manifests in Go form (`1m30s`, `250ms`). [`Duration`] accepts both, so existing
//! users' YAML keeps working, and always writes the protobuf JSON form Envoy reads. A bad
//! duration fails deserialization (the file source reports it with its line); in a cluster
//! the CRD's `pattern` keeps it out in the first place.

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The CRD pattern; keep in step with [`Duration::from_str`].
const PATTERN: &str = r"^([0-9]+(\.[0-9]+)?(h|m|s|ms|us|ns))+$";

/// A non-negative duration written as `<number><unit>` pairs (`h`, `m`, `s`, `ms`, `us`,
/// `ns`), such as `5s`, `0.5s` or `1m30s`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Duration(std::time::Duration);

/// Why a duration string was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid duration {input:?}: {reason} (write it like `5s`, `0.5s` or `1m30s`)")]
pub struct DurationError {
    input: String,
    reason: &'static str,
}

impl Duration {
    /// Wraps a standard duration.
    pub const fn new(d: std::time::Duration) -> Self {
        Self(d)
    }

    /// The standard duration.
    pub const fn get(self) -> std::time::Duration {
        self.0
    }
}

impl From<std::time::Duration> for Duration {
    fn from(d: std::time::Duration) -> Self {
        Self(d)
    }
}

impl FromStr for Duration {
    type Err = DurationError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let err = |reason| DurationError {
            input: input.to_string(),
            reason,
        };
        if input.is_empty() {
            return Err(err("it is empty"));
        }
        let mut total: u128 = 0; // nanoseconds
        let mut rest = input;
        while !rest.is_empty() {
            let int_len = rest.bytes().take_while(u8::is_ascii_digit).count();
            if int_len == 0 {
                return Err(err("expected a number"));
            }
            let (int_part, tail) = rest.split_at(int_len);
            let (frac_part, tail) = match tail.strip_prefix('.') {
                Some(t) => {
                    let n = t.bytes().take_while(u8::is_ascii_digit).count();
                    if n == 0 {
                        return Err(err("expected digits after the decimal point"));
                    }
                    t.split_at(n)
                }
                None => ("", tail),
            };
            let (unit_nanos, tail): (u128, &str) = if let Some(t) = tail.strip_prefix("ms") {
                (1_000_000, t)
            } else if let Some(t) = tail.strip_prefix("us") {
                (1_000, t)
            } else if let Some(t) = tail.strip_prefix("ns") {
                (1, t)
            } else if let Some(t) = tail.strip_prefix('h') {
                (3_600_000_000_000, t)
            } else if let Some(t) = tail.strip_prefix('m') {
                (60_000_000_000, t)
            } else if let Some(t) = tail.strip_prefix('s') {
                (1_000_000_000, t)
            } else {
                return Err(err(
                    "expected a unit (h, m, s, ms, us or ns) after the number",
                ));
            };
            let int: u128 = int_part
                .parse()
                .map_err(|_| err("the number is too large"))?;
            let mut nanos = int
                .checked_mul(unit_nanos)
                .ok_or_else(|| err("it is too large"))?;
            // Fractions finer than a nanosecond are dropped.
            let mut scale = unit_nanos;
            for d in frac_part.bytes().take(30) {
                scale /= 10;
                nanos += u128::from(d - b'0') * scale;
            }
            total = total
                .checked_add(nanos)
                .ok_or_else(|| err("it is too large"))?;
            rest = tail;
        }
        let secs = u64::try_from(total / 1_000_000_000).map_err(|_| err("it is too large"))?;
        // The remainder is below 1e9, so it fits.
        let sub = (total % 1_000_000_000) as u32;
        Ok(Self(std::time::Duration::new(secs, sub)))
    }
}

impl fmt::Display for Duration {
    /// Protobuf JSON form: whole seconds, or 3, 6 or 9 fractional digits, then `s`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.0.as_secs();
        let nanos = self.0.subsec_nanos();
        if nanos == 0 {
            write!(f, "{secs}s")
        } else if nanos.is_multiple_of(1_000_000) {
            write!(f, "{secs}.{:03}s", nanos / 1_000_000)
        } else if nanos.is_multiple_of(1_000) {
            write!(f, "{secs}.{:06}s", nanos / 1_000)
        } else {
            write!(f, "{secs}.{nanos:09}s")
        }
    }
}

impl Serialize for Duration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // A visitor rather than `String::deserialize` then parse: an error raised inside
        // the visitor carries the field's path and line in serde_yaml_ng.
        struct DurationVisitor;

        impl serde::de::Visitor<'_> for DurationVisitor {
            type Value = Duration;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration such as `5s`, `0.5s` or `1m30s`")
            }

            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Duration, E> {
                s.parse().map_err(E::custom)
            }
        }

        d.deserialize_str(DurationVisitor)
    }
}

impl JsonSchema for Duration {
    fn schema_name() -> Cow<'static, str> {
        "Duration".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "pattern": PATTERN,
            "description": "A duration such as `5s`, `0.5s` or `1m30s` (units h, m, s, ms, us, ns)."
        })
    }

    fn inline_schema() -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> std::time::Duration {
        s.parse::<Duration>().unwrap().get()
    }

    #[test]
    fn protobuf_and_go_forms_both_parse() {
        assert_eq!(d("5s"), std::time::Duration::from_secs(5));
        assert_eq!(d("0.250s"), std::time::Duration::from_millis(250));
        assert_eq!(d("250ms"), std::time::Duration::from_millis(250));
        assert_eq!(d("1m30s"), std::time::Duration::from_secs(90));
        assert_eq!(d("1h"), std::time::Duration::from_secs(3600));
        assert_eq!(d("1.5m"), std::time::Duration::from_secs(90));
        assert_eq!(d("10us"), std::time::Duration::from_micros(10));
    }

    #[test]
    fn bad_durations_are_refused_with_a_hint() {
        for bad in [
            "",
            "5",
            "s",
            "-1s",
            "1.s",
            "5 s",
            "1d",
            "99999999999999999999999h",
        ] {
            let err = bad.parse::<Duration>().unwrap_err().to_string();
            assert!(err.contains("invalid duration"), "{bad}: {err}");
        }
    }

    #[test]
    fn durations_print_in_protobuf_json_form() {
        assert_eq!(
            Duration::new(std::time::Duration::from_secs(5)).to_string(),
            "5s"
        );
        assert_eq!("250ms".parse::<Duration>().unwrap().to_string(), "0.250s");
        let ms = Duration::new(std::time::Duration::from_millis(1250));
        assert_eq!(ms.to_string(), "1.250s");
        let us = Duration::new(std::time::Duration::from_micros(10));
        assert_eq!(us.to_string(), "0.000010s");
    }
}
