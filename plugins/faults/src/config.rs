//! The `faults` option value: serde shape, validation and the `HTTPFault` it
//! becomes.

use std::time::Duration;

use serde::Deserialize;
use weir_plugin_sdk::envoy::extensions::filters::common::fault::v3::{FaultDelay, fault_delay};
use weir_plugin_sdk::envoy::extensions::filters::http::fault::v3::{
    FaultAbort, HttpFault, fault_abort,
};
use weir_plugin_sdk::envoy::r#type::v3::{FractionalPercent, fractional_percent};
use weir_plugin_sdk::{FieldError, PluginError, duration, parse_config};

/// The `faults` option value.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FaultsConfig {
    /// Answer some requests with an error status instead of routing them.
    #[serde(default)]
    pub abort: Option<Abort>,
    /// Hold some requests for a while before routing them.
    #[serde(default)]
    pub delay: Option<Delay>,
}

/// Aborts a percentage of requests with an HTTP status.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Abort {
    /// Percentage of requests to abort, 0.0 to 100.0; 0 when unset (K8sGateway's default).
    #[serde(default)]
    pub percentage: f64,
    /// Status to answer with, 200..=599. Read wide so range errors get our message.
    pub http_status: i64,
}

/// Delays a percentage of requests by a fixed duration.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Delay {
    /// Percentage of requests to delay, 0.0 to 100.0; 0 when unset (K8sGateway's default).
    #[serde(default)]
    pub percentage: f64,
    /// How long to delay, for example `"2s"` or `"150ms"`.
    pub fixed_delay: String,
}

// === impl FaultsConfig ===

impl FaultsConfig {
    /// Parses and validates an option value, reporting every bad field.
    pub fn from_json(json: &str) -> Result<Self, PluginError> {
        let config: Self = parse_config(json)?;
        PluginError::check(config.problems())?;
        Ok(config)
    }

    /// Every problem in an already parsed value, with field paths.
    pub fn problems(&self) -> Vec<FieldError> {
        let mut problems = Vec::new();
        if self.abort.is_none() && self.delay.is_none() {
            problems.push(FieldError::new("", "set at least one of abort and delay"));
        }
        if let Some(abort) = &self.abort {
            problems.extend(check_percentage("abort.percentage", abort.percentage));
            if !(200..=599).contains(&abort.http_status) {
                problems.push(FieldError::new(
                    "abort.httpStatus",
                    format!(
                        "must be an HTTP status between 200 and 599, got {}",
                        abort.http_status
                    ),
                ));
            }
        }
        if let Some(delay) = &self.delay {
            problems.extend(check_percentage("delay.percentage", delay.percentage));
            match duration::parse(&delay.fixed_delay) {
                Ok(d) if d.is_zero() => {
                    problems.push(FieldError::new(
                        "delay.fixedDelay",
                        "must be longer than zero",
                    ));
                }
                Ok(_) => {}
                Err(err) => problems.push(FieldError::new("delay.fixedDelay", err.to_string())),
            }
        }
        problems
    }

    /// The per-route `HTTPFault` for this (validated) value.
    pub fn to_http_fault(&self) -> HttpFault {
        HttpFault {
            abort: self.abort.as_ref().map(|abort| FaultAbort {
                error_type: Some(fault_abort::ErrorType::HttpStatus(
                    u32::try_from(abort.http_status).unwrap_or_default(),
                )),
                percentage: Some(to_fractional_percent(abort.percentage)),
                ..Default::default()
            }),
            delay: self.delay.as_ref().map(|delay| FaultDelay {
                fault_delay_secifier: Some(fault_delay::FaultDelaySecifier::FixedDelay(
                    duration::to_proto(
                        duration::parse(&delay.fixed_delay).unwrap_or(Duration::ZERO),
                    ),
                )),
                percentage: Some(to_fractional_percent(delay.percentage)),
            }),
            ..Default::default()
        }
    }
}

fn check_percentage(path: &str, percentage: f64) -> Option<FieldError> {
    (!(0.0..=100.0).contains(&percentage))
        .then(|| FieldError::new(path, format!("must be between 0 and 100, got {percentage}")))
}

/// A percentage (0.0..=100.0) as parts per million, Envoy's finest
/// denominator, so fractions such as 0.5% survive.
pub fn to_fractional_percent(percentage: f64) -> FractionalPercent {
    let per_million = (percentage.clamp(0.0, 100.0) * 10_000.0).round();
    FractionalPercent {
        // In range: 0 <= per_million <= 1,000,000.
        numerator: per_million as u32,
        denominator: fractional_percent::DenominatorType::Million as i32,
    }
}
