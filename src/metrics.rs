//! Prometheus metrics (prometheus-client): request and attempt counters and
//! latency histograms recorded on the request path, and gauges (keys by
//! state, scan progress, store buffer, policy faults, reloads) read at scrape.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::time::Duration;

/// Labels of a served request.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// API route (`generateContent`, `chat.completions`, …).
    pub route: String,
    /// Model.
    pub model: String,
    /// Status returned to the client.
    pub status: String,
}

/// Labels of an upstream attempt.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AttemptLabels {
    /// `success` or the failure kind.
    pub outcome: String,
}

/// Labels of a route.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    /// API route.
    pub route: String,
}

/// Labels of a key state gauge.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabels {
    /// `active`, `cooling` or `disabled`.
    pub state: String,
}

/// Labels of a reload counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReloadLabels {
    /// `config`, `keys` or `policy`.
    pub what: String,
    /// `accepted` or `rejected`.
    pub result: String,
}

/// Model names used as label values at most; the rest count as `other`.
const MAX_MODEL_LABELS: usize = 100;

/// Every metric gemgate exports.
pub struct Metrics {
    registry: Registry,
    /// Models that have been served (a 2xx), the only ones named in labels:
    /// a client inventing model names cannot grow the exposition.
    served_models: std::sync::RwLock<std::collections::HashSet<String>>,
    requests: Family<RequestLabels, Counter>,
    latency: Family<RouteLabels, Histogram>,
    attempts: Family<AttemptLabels, Counter>,
    retries: Counter,
    /// Keys by state (set at scrape).
    pub keys: Family<StateLabels, Gauge>,
    /// Keys cooling for at least one model (set at scrape).
    pub cooldowns: Gauge,
    /// Scan progress (set at scrape).
    pub scan_done: Gauge,
    /// Scan size (set at scrape).
    pub scan_total: Gauge,
    /// Whether a scan runs (set at scrape).
    pub scan_running: Gauge,
    /// Request rows dropped because the store fell behind (set at scrape).
    pub store_dropped: Gauge,
    /// Policy script faults (set at scrape).
    pub policy_faults: Gauge,
    /// Reloads by kind and result (set at scrape).
    pub reloads: Family<ReloadLabels, Gauge>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("gemgate");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register("requests", "Client requests by route, model and status", requests.clone());
        let latency = Family::<RouteLabels, Histogram>::new_with_constructor(|| {
            Histogram::new([0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0])
        });
        registry.register("request_duration_seconds", "Client request latency by route", latency.clone());
        let attempts = Family::<AttemptLabels, Counter>::default();
        registry.register("upstream_attempts", "Upstream attempts by outcome", attempts.clone());
        let retries = Counter::default();
        registry.register("retries", "Attempts after the first one of a request", retries.clone());
        let keys = Family::<StateLabels, Gauge>::default();
        registry.register("keys", "Keys by state", keys.clone());
        let gauge = |registry: &mut Registry, name: &str, help: &str| {
            let gauge = Gauge::default();
            registry.register(name, help, gauge.clone());
            gauge
        };
        let cooldowns = gauge(&mut registry, "keys_cooling", "Keys cooling down for at least one model");
        let scan_done = gauge(&mut registry, "scan_done", "Keys checked by the current or last health scan");
        let scan_total = gauge(&mut registry, "scan_total", "Keys in the current or last health scan");
        let scan_running = gauge(&mut registry, "scan_running", "1 while a health scan runs");
        let store_dropped =
            gauge(&mut registry, "store_dropped_rows", "Request rows dropped because the store fell behind");
        let policy_faults = gauge(&mut registry, "policy_faults", "Policy script calls that failed and fell back");
        let reloads = Family::<ReloadLabels, Gauge>::default();
        registry.register("reloads", "Reloads by what and result (last 100)", reloads.clone());
        Self {
            registry,
            served_models: Default::default(),
            requests,
            latency,
            attempts,
            retries,
            keys,
            cooldowns,
            scan_done,
            scan_total,
            scan_running,
            store_dropped,
            policy_faults,
            reloads,
        }
    }
}

impl Metrics {
    /// Counts one finished client request.
    pub fn request(&self, route: &str, model: &str, status: u16, latency: Duration) {
        let model = self.model_label(model, (200..300).contains(&status));
        let labels = RequestLabels { route: route.to_string(), model, status: status.to_string() };
        self.requests.get_or_create(&labels).inc();
        self.latency.get_or_create(&RouteLabels { route: route.to_string() }).observe(latency.as_secs_f64());
    }

    /// The label for `model`: its name once it has been served (up to
    /// [`MAX_MODEL_LABELS`] names), `other` otherwise.
    fn model_label(&self, model: &str, served: bool) -> String {
        let known = self.served_models.read().unwrap_or_else(|e| e.into_inner());
        if model.is_empty() || known.contains(model) {
            return model.to_string();
        }
        let full = known.len() >= MAX_MODEL_LABELS;
        drop(known);
        if !served || full {
            return "other".to_string();
        }
        self.served_models.write().unwrap_or_else(|e| e.into_inner()).insert(model.to_string());
        model.to_string()
    }

    /// Counts one upstream attempt; `retry` when it was not the first.
    pub fn attempt(&self, outcome: &str, retry: bool) {
        self.attempts.get_or_create(&AttemptLabels { outcome: outcome.to_string() }).inc();
        if retry {
            self.retries.inc();
        }
    }

    /// The text exposition.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invented_model_names_do_not_grow_the_exposition() {
        let metrics = Metrics::default();
        metrics.request("generateContent", "gemini-2.5-flash", 200, Duration::from_millis(5));
        let before = metrics.encode().len();
        for i in 0..1000 {
            metrics.request("generateContent", &format!("made-up-{i}"), 404, Duration::from_millis(1));
        }
        let after = metrics.encode();
        assert!(after.contains("model=\"gemini-2.5-flash\"") && after.contains("model=\"other\""));
        assert!(!after.contains("made-up-"));
        assert!(after.len() < before + 600, "{} -> {}", before, after.len());
    }
}
