//! `/metrics`: Weir's own measurements and the xDS server's counters, in the
//! Prometheus text format (0.0.4).
//!
//! Histograms (translation passes, plugin calls) and plugin error counters live in a
//! `prometheus-client` registry and are updated where the work happens. The xDS
//! counters stay plain atomics in [`XdsMetrics`] (the server knows nothing of
//! Prometheus) and are read, with each Gateway's snapshot version, at scrape time by a
//! collector.
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `weir_translation_duration_seconds` | histogram | |
//! | `weir_translation_errors_total` | counter | |
//! | `weir_plugin_call_duration_seconds` | histogram | `plugin` |
//! | `weir_plugin_call_errors_total` | counter | `plugin`, `error` |
//! | `weir_snapshot_info` | gauge (1) | `gateway`, `version` |
//! | `weir_xds_connected_proxies` | gauge | `gateway` |
//! | `weir_xds_pushes_total`, `weir_xds_acks_total`, `weir_xds_nacks_total` | counter | `type` |
//! | `weir_xds_streams_opened_total` | counter | |

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::plugin::CallObserver;
use crate::xds::{ResourceType, SnapshotCache, XdsMetrics};

/// The `Content-Type` of what [`Metrics::render`] returns.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// Labels: pairs of name and value.
type Labels = Vec<(&'static str, String)>;
/// A family of histograms, all with the same buckets.
type HistogramFamily = Family<Labels, Histogram, fn() -> Histogram>;

/// Every metric `weir serve` exports. Shared (`Arc`) by the translation thread, which
/// records, and the admin server, which renders.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    translation_seconds: Histogram,
    translation_errors: Counter,
    plugin_call_seconds: HistogramFamily,
    plugin_call_errors: Family<Labels, Counter>,
}

impl Metrics {
    /// Metrics reading the xDS counters from `xds` and snapshot versions from `cache`.
    pub fn new(xds: Arc<XdsMetrics>, cache: SnapshotCache) -> Self {
        let mut registry = Registry::default();
        // 0.5 ms .. ~8 s.
        let translation_seconds = Histogram::new(exponential_buckets(0.0005, 2.0, 15));
        registry.register(
            "weir_translation_duration_seconds",
            "Time of one translation pass: reading changed files, translating, publishing",
            translation_seconds.clone(),
        );
        let translation_errors = Counter::default();
        registry.register(
            "weir_translation_errors",
            "Passes that could not read the source (the last good configuration kept serving)",
            translation_errors.clone(),
        );
        // 25 µs .. ~0.4 s (the default call deadline is 100 ms).
        let plugin_call_seconds: HistogramFamily =
            Family::new_with_constructor(|| Histogram::new(exponential_buckets(0.000025, 2.0, 15)));
        registry.register(
            "weir_plugin_call_duration_seconds",
            "Time of one plugin call, by plugin",
            plugin_call_seconds.clone(),
        );
        let plugin_call_errors = Family::<Labels, Counter>::default();
        registry.register(
            "weir_plugin_call_errors",
            "Plugin calls that produced no result, by plugin and kind of error",
            plugin_call_errors.clone(),
        );
        registry.register_collector(Box::new(XdsCollector { xds, cache }));
        Self {
            registry,
            translation_seconds,
            translation_errors,
            plugin_call_seconds,
            plugin_call_errors,
        }
    }

    /// Records one translation pass.
    pub fn translation(&self, elapsed: Duration) {
        self.translation_seconds.observe(elapsed.as_secs_f64());
    }

    /// Records a pass that could not read its source.
    pub fn translation_failed(&self) {
        self.translation_errors.inc();
    }

    /// Every metric in the Prometheus text format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail, and our collector never returns an error.
        if let Err(err) =
            prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry)
        {
            tracing::error!(error = %err, "cannot render metrics");
        }
        out
    }
}

impl CallObserver for Metrics {
    fn plugin_call(&self, plugin: &str, elapsed: Duration, error: Option<&'static str>) {
        let labels = vec![("plugin", plugin.to_string())];
        self.plugin_call_seconds
            .get_or_create(&labels)
            .observe(elapsed.as_secs_f64());
        if let Some(error) = error {
            let labels = vec![("plugin", plugin.to_string()), ("error", error.to_string())];
            self.plugin_call_errors.get_or_create(&labels).inc();
        }
    }
}

/// Reads the xDS counters and the snapshot versions at scrape time.
#[derive(Debug)]
struct XdsCollector {
    xds: Arc<XdsMetrics>,
    cache: SnapshotCache,
}

impl Collector for XdsCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let counters = self.xds.snapshot();
        let gateways = self.cache.gateways();

        let mut info = encoder.encode_descriptor(
            "weir_snapshot_info",
            "The version (content hash) of the snapshot each Gateway's proxies are served; always 1",
            None,
            MetricType::Gauge,
        )?;
        for gateway in &gateways {
            let Some(snapshot) = self.cache.get(gateway) else {
                continue;
            };
            let labels = vec![
                ("gateway", gateway_label(gateway)),
                ("version", snapshot.version().to_string()),
            ];
            ConstGauge::new(1i64).encode(info.encode_family(&labels)?)?;
        }

        let mut connected = encoder.encode_descriptor(
            "weir_xds_connected_proxies",
            "ADS streams open now, by Gateway",
            None,
            MetricType::Gauge,
        )?;
        let mut by_gateway: std::collections::BTreeMap<String, u64> =
            gateways.iter().map(|g| (gateway_label(g), 0)).collect();
        for (gateway, n) in &counters.connected {
            by_gateway.insert(gateway_label(gateway), *n);
        }
        for (gateway, n) in by_gateway {
            let labels = vec![("gateway", gateway)];
            ConstGauge::new(n as i64).encode(connected.encode_family(&labels)?)?;
        }

        for (name, help, values) in [
            (
                "weir_xds_pushes",
                "xDS responses sent, by resource type",
                &counters.pushes,
            ),
            (
                "weir_xds_acks",
                "xDS responses acknowledged, by resource type",
                &counters.acks,
            ),
            (
                "weir_xds_nacks",
                "xDS responses rejected by a proxy (NACK), by resource type",
                &counters.nacks,
            ),
        ] {
            let mut family = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
            for ty in ResourceType::ALL {
                let labels = vec![("type", ty.short_name().to_string())];
                let value = values.get(&ty).copied().unwrap_or_default();
                ConstCounter::new(value).encode(family.encode_family(&labels)?)?;
            }
        }

        let opened = encoder.encode_descriptor(
            "weir_xds_streams_opened",
            "ADS streams opened since start",
            None,
            MetricType::Counter,
        )?;
        ConstCounter::new(counters.streams_opened).encode(opened)?;
        Ok(())
    }
}

/// A Gateway as `NAMESPACE/NAME`.
fn gateway_label(key: &crate::model::ObjectKey) -> String {
    format!(
        "{}/{}",
        key.namespace.as_deref().unwrap_or_default(),
        key.name
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The value of the sample line starting with `prefix` (name and labels).
    fn sample(text: &str, prefix: &str) -> Option<f64> {
        text.lines()
            .find(|l| l.starts_with(prefix))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
    }

    #[test]
    fn records_translations_and_plugin_calls_by_plugin() {
        let metrics = Metrics::new(Arc::default(), SnapshotCache::new());
        metrics.translation(Duration::from_millis(3));
        metrics.plugin_call("static", Duration::from_micros(80), None);
        metrics.plugin_call("static", Duration::from_micros(90), Some("timeout"));
        let text = metrics.render();
        assert_eq!(
            sample(&text, "weir_translation_duration_seconds_count"),
            Some(1.0),
            "{text}"
        );
        assert_eq!(
            sample(
                &text,
                "weir_plugin_call_duration_seconds_count{plugin=\"static\"}"
            ),
            Some(2.0),
            "{text}"
        );
        assert_eq!(
            sample(
                &text,
                "weir_plugin_call_errors_total{plugin=\"static\",error=\"timeout\"}"
            ),
            Some(1.0),
            "{text}"
        );
        assert_eq!(
            sample(&text, "weir_xds_pushes_total{type=\"cds\"}"),
            Some(0.0),
            "{text}"
        );
        assert!(
            text.contains("# TYPE weir_xds_connected_proxies gauge"),
            "{text}"
        );
    }
}
