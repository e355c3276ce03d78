//! The server's own metrics at `/metrics`, under upstream metrics-server's names
//! (`pkg/scraper`, `pkg/server`, `pkg/storage`): kubelet requests (count by success, duration
//! and last time per node), the scrape round's duration, and the points stored.

use std::sync::atomic::AtomicU64;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

type Labels = Vec<(&'static str, String)>;

/// Prometheus' `DefBuckets`, which upstream's histograms use.
const DEFAULT_BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

fn histogram() -> Histogram {
    Histogram::new(DEFAULT_BUCKETS)
}

#[derive(Clone)]
pub struct ServerMetrics {
    request_total: Family<Labels, Counter>,
    request_duration: Family<Labels, Histogram, fn() -> Histogram>,
    last_request: Family<Labels, Gauge<f64, AtomicU64>>,
    tick_duration: Histogram,
    points: Family<Labels, Gauge>,
}

impl ServerMetrics {
    /// The metrics, registered in `registry`.
    pub fn register(registry: &mut Registry) -> ServerMetrics {
        let m = ServerMetrics {
            request_total: Family::default(),
            request_duration: Family::new_with_constructor(histogram),
            last_request: Family::default(),
            tick_duration: histogram(),
            points: Family::default(),
        };
        let server = registry.sub_registry_with_prefix("metrics_server");
        // (prometheus-client appends `_total` to counters.)
        server.register(
            "kubelet_request",
            "[ALPHA] Number of requests sent to Kubelet API",
            m.request_total.clone(),
        );
        server.register(
            "kubelet_request_duration_seconds",
            "[ALPHA] Duration of requests to Kubelet API in seconds",
            m.request_duration.clone(),
        );
        server.register(
            "kubelet_last_request_time_seconds",
            "[ALPHA] Time of last request performed to Kubelet API since unix epoch in seconds",
            m.last_request.clone(),
        );
        server.register(
            "manager_tick_duration_seconds",
            "[ALPHA] The total time spent collecting and storing metrics in seconds",
            m.tick_duration.clone(),
        );
        server.register(
            "storage_points",
            "[ALPHA] Number of metrics points stored.",
            m.points.clone(),
        );
        m
    }

    /// One kubelet request to `node`, `seconds` long, begun at `at` (s since the epoch).
    pub fn kubelet_request(&self, node: &str, success: bool, seconds: f64, at: f64) {
        self.request_total
            .get_or_create(&vec![("success", success.to_string())])
            .inc();
        self.request_duration
            .get_or_create(&vec![("node", node.to_string())])
            .observe(seconds);
        self.last_request
            .get_or_create(&vec![("node", node.to_string())])
            .set(at);
    }

    /// A scrape round done: how long it took, and what is stored after it.
    pub fn round(&self, seconds: f64, node_points: usize, container_points: usize) {
        self.tick_duration.observe(seconds);
        self.points
            .get_or_create(&vec![("type", "node".to_string())])
            .set(node_points as i64);
        self.points
            .get_or_create(&vec![("type", "container".to_string())])
            .set(container_points as i64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstreams_names() {
        let mut registry = Registry::default();
        let m = ServerMetrics::register(&mut registry);
        m.kubelet_request("n1", true, 0.02, 1.5e9);
        m.round(0.03, 2, 5);
        let text = skiff_serving::metrics::render(&registry);
        assert!(
            text.contains("metrics_server_kubelet_request_total{success=\"true\"} 1"),
            "{text}"
        );
        assert!(text.contains("metrics_server_kubelet_request_duration_seconds_bucket{node=\"n1\",le=\"0.025\"} 1"), "{text}");
        assert!(
            text.contains("metrics_server_storage_points{type=\"container\"} 5"),
            "{text}"
        );
        assert!(
            text.contains("metrics_server_manager_tick_duration_seconds_count 1"),
            "{text}"
        );
    }
}
