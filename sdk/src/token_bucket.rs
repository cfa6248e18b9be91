//! K8sGateway's token bucket shape (`{maxTokens, tokensPerFill, fillInterval}`), shared
//! by the options that rate-limit locally, and Envoy's `TokenBucket` it becomes.

use serde::Deserialize;

use crate::envoy::r#type::v3::TokenBucket;
use crate::{FieldError, duration};

/// A token bucket: `maxTokens` is the burst allowed, `tokensPerFill` tokens come back
/// every `fillInterval`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TokenBucketSpec {
    /// Bucket size: the burst allowed.
    pub max_tokens: u32,
    /// Tokens added each interval (Envoy's default 1).
    pub tokens_per_fill: Option<u32>,
    /// The refill interval, a duration string of at least 50ms (Envoy's minimum).
    pub fill_interval: String,
}

impl TokenBucketSpec {
    /// Envoy's token bucket, or every bad field (paths relative to the bucket).
    ///
    /// ```
    /// use weir_plugin_sdk::token_bucket::TokenBucketSpec;
    ///
    /// let spec: TokenBucketSpec =
    ///     serde_json::from_str(r#"{"maxTokens": 0, "fillInterval": "1s"}"#).unwrap();
    /// assert_eq!(spec.to_proto().unwrap_err()[0].path, "maxTokens");
    /// ```
    pub fn to_proto(&self) -> Result<TokenBucket, Vec<FieldError>> {
        let mut errors = Vec::new();
        if self.max_tokens == 0 {
            errors.push(FieldError::new("maxTokens", "must be at least 1"));
        }
        if self.tokens_per_fill == Some(0) {
            errors.push(FieldError::new("tokensPerFill", "must be at least 1"));
        }
        let interval = match duration::parse(&self.fill_interval) {
            Ok(d) if d.as_millis() >= 50 => Some(duration::to_proto(d)),
            Ok(_) => {
                errors.push(FieldError::new("fillInterval", "must be at least 50ms"));
                None
            }
            Err(e) => {
                errors.push(FieldError::new("fillInterval", e.to_string()));
                None
            }
        };
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(TokenBucket {
            max_tokens: self.max_tokens,
            tokens_per_fill: self.tokens_per_fill,
            fill_interval: interval,
        })
    }
}
