//! Durations as users write them in K8sGateway-style configuration: `"5s"`,
//! `"100ms"`, `"1.5s"`, `"1m30s"`.
//!
//! [`parse`] reads one, [`to_proto`] turns it into the
//! `google.protobuf.Duration` Envoy messages use, and [`deserialize`] plugs
//! into serde so a bad duration is reported at its field path by
//! [`parse_config`](crate::parse_config):
//!
//! ```
//! #[derive(serde::Deserialize)]
//! #[serde(rename_all = "camelCase")]
//! struct Delay {
//!     #[serde(deserialize_with = "weir_plugin_sdk::duration::deserialize")]
//!     fixed_delay: std::time::Duration,
//! }
//!
//! let delay: Delay = weir_plugin_sdk::parse_config(r#"{"fixedDelay":"1.5s"}"#).unwrap();
//! assert_eq!(delay.fixed_delay.as_millis(), 1500);
//! ```

use std::time::Duration;

/// Why a duration string was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    /// The string is empty.
    #[error("empty duration; write a number and a unit, for example \"5s\"")]
    Empty,
    /// The duration is negative.
    #[error("negative duration {0:?}; durations must not be negative")]
    Negative(String),
    /// A number is missing or malformed.
    #[error(
        "invalid duration {0:?}; write a number and a unit, for example \"5s\", \"100ms\" or \"1.5s\""
    )]
    Invalid(String),
    /// A number has no unit.
    #[error("duration {0:?} has no unit; add one of h, m, s, ms, us, ns (for example \"5s\")")]
    MissingUnit(String),
    /// A unit is not one of h, m, s, ms, us (µs), ns.
    #[error("unknown unit {unit:?} in duration {input:?}; use h, m, s, ms, us or ns")]
    UnknownUnit {
        /// The whole input.
        input: String,
        /// The unit that was not understood.
        unit: String,
    },
    /// The duration does not fit protobuf's range (about 10,000 years).
    #[error("duration {0:?} is too long")]
    Overflow(String),
}

/// Protobuf's limit: `google.protobuf.Duration` covers ±315,576,000,000 s.
const MAX_SECONDS: u64 = 315_576_000_000;

/// Parses a non-negative duration: one or more `<number><unit>` parts, where
/// the number may have a fraction and the unit is `h`, `m`, `s`, `ms`, `us`
/// (or `µs`) or `ns`. `"0"` alone is zero.
pub fn parse(input: &str) -> Result<Duration, DurationError> {
    let s = input.trim();
    if s.is_empty() {
        return Err(DurationError::Empty);
    }
    if s.starts_with('-') {
        return Err(DurationError::Negative(input.to_owned()));
    }
    let s = s.strip_prefix('+').unwrap_or(s);
    if s == "0" {
        return Ok(Duration::ZERO);
    }

    let mut total_nanos: u128 = 0;
    let mut rest = s;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (number, after) = rest.split_at(number_len);
        if number.is_empty() || number == "." || number.matches('.').count() > 1 {
            return Err(DurationError::Invalid(input.to_owned()));
        }
        let unit_len = after
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(after.len());
        let (unit, after) = after.split_at(unit_len);
        let unit_nanos: u128 = match unit {
            "h" => 3_600_000_000_000,
            "m" => 60_000_000_000,
            "s" => 1_000_000_000,
            "ms" => 1_000_000,
            "us" | "µs" | "μs" => 1_000,
            "ns" => 1,
            "" => return Err(DurationError::MissingUnit(input.to_owned())),
            other => {
                return Err(DurationError::UnknownUnit {
                    input: input.to_owned(),
                    unit: other.to_owned(),
                });
            }
        };
        let part =
            scale(number, unit_nanos).ok_or_else(|| DurationError::Overflow(input.to_owned()))?;
        total_nanos = total_nanos
            .checked_add(part)
            .ok_or_else(|| DurationError::Overflow(input.to_owned()))?;
        rest = after;
    }

    let secs = total_nanos / 1_000_000_000;
    if secs > u128::from(MAX_SECONDS) {
        return Err(DurationError::Overflow(input.to_owned()));
    }
    // Both casts are in range: secs <= MAX_SECONDS and the remainder < 1e9.
    Ok(Duration::new(
        secs as u64,
        (total_nanos % 1_000_000_000) as u32,
    ))
}

/// `number` (digits with an optional fraction) times `unit_nanos`, in whole
/// nanoseconds (finer fractions are truncated), or `None` on overflow.
fn scale(number: &str, unit_nanos: u128) -> Option<u128> {
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    let whole: u128 = if whole.is_empty() {
        0
    } else {
        whole.parse().ok()?
    };
    let mut nanos = whole.checked_mul(unit_nanos)?;
    // Each fraction digit is worth a tenth of the one before it.
    let mut place = unit_nanos;
    for digit in fraction.bytes() {
        place /= 10;
        if place == 0 {
            break;
        }
        nanos = nanos.checked_add(u128::from(digit - b'0') * place)?;
    }
    Some(nanos)
}

/// Converts a duration to the `google.protobuf.Duration` Envoy messages use.
pub fn to_proto(duration: Duration) -> prost_types::Duration {
    prost_types::Duration {
        // parse() keeps durations within protobuf's range; clamp anything else.
        seconds: i64::try_from(duration.as_secs().min(MAX_SECONDS)).unwrap_or(i64::MAX),
        nanos: i32::try_from(duration.subsec_nanos()).unwrap_or(0),
    }
}

/// Serde `deserialize_with` helper reading a duration string with [`parse`].
pub fn deserialize<'de, D>(deserializer: D) -> Result<Duration, D::Error>
where
    D: serde::Deserializer<'de>,
{
    let text = <String as serde::Deserialize>::deserialize(deserializer)?;
    parse(&text).map_err(serde::de::Error::custom)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_whole_seconds() {
        assert_eq!(parse("5s"), Ok(Duration::from_secs(5)));
    }

    #[test]
    fn parses_milliseconds() {
        assert_eq!(parse("100ms"), Ok(Duration::from_millis(100)));
    }

    #[test]
    fn parses_fractional_seconds() {
        assert_eq!(parse("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse(".25s"), Ok(Duration::from_millis(250)));
    }

    #[test]
    fn parses_compound_durations() {
        assert_eq!(parse("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse("1h2m3s4ms"), Ok(Duration::new(3723, 4_000_000)));
    }

    #[test]
    fn parses_bare_zero_and_small_units() {
        assert_eq!(parse("0"), Ok(Duration::ZERO));
        assert_eq!(parse("15us"), Ok(Duration::from_micros(15)));
        assert_eq!(parse("7ns"), Ok(Duration::from_nanos(7)));
    }

    #[test]
    fn rejects_a_number_without_a_unit() {
        assert_eq!(parse("5"), Err(DurationError::MissingUnit("5".into())));
    }

    #[test]
    fn rejects_unknown_units() {
        assert!(matches!(parse("5d"), Err(DurationError::UnknownUnit { unit, .. }) if unit == "d"));
    }

    #[test]
    fn rejects_negative_empty_and_garbage() {
        assert_eq!(parse("-1s"), Err(DurationError::Negative("-1s".into())));
        assert_eq!(parse(""), Err(DurationError::Empty));
        assert!(matches!(parse("s"), Err(DurationError::Invalid(_))));
        assert!(matches!(parse("1..5s"), Err(DurationError::Invalid(_))));
    }

    #[test]
    fn rejects_durations_beyond_protobuf_range() {
        assert!(matches!(
            parse("99999999999999999999h"),
            Err(DurationError::Overflow(_))
        ));
        assert!(matches!(
            parse("315576000001s"),
            Err(DurationError::Overflow(_))
        ));
    }

    #[test]
    fn converts_to_protobuf() {
        let proto = to_proto(Duration::from_millis(1500));
        assert_eq!((proto.seconds, proto.nanos), (1, 500_000_000));
    }
}
