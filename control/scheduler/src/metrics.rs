//! The scheduler's metrics under upstream's names (prometheus-client): attempts by result,
//! attempt duration, the end-to-end scheduling latency of each pod (queued → bound), and the
//! pending pods in each part of the queue. `skiff scheduler` serves them at `/metrics`.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabels {
    pub result: &'static str,
    pub profile: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct QueueLabels {
    pub queue: &'static str,
}

pub struct Metrics {
    registry: Registry,
    attempts: Family<ResultLabels, Counter>,
    attempt_duration: Family<ResultLabels, Histogram>,
    e2e: Histogram,
    pending: Family<QueueLabels, Gauge>,
}

fn latency_histogram() -> Histogram {
    // 1 ms to ~16 s, as upstream's scheduling histograms.
    Histogram::new(exponential_buckets(0.001, 2.0, 15))
}

impl Default for Metrics {
    fn default() -> Metrics {
        let mut registry = Registry::default();
        let attempts = Family::<ResultLabels, Counter>::default();
        let attempt_duration = Family::<ResultLabels, Histogram>::new_with_constructor(
            latency_histogram as fn() -> Histogram,
        );
        let e2e = latency_histogram();
        let pending = Family::<QueueLabels, Gauge>::default();
        registry.register(
            "scheduler_schedule_attempts",
            "Number of attempts to schedule pods, by the result.",
            attempts.clone(),
        );
        registry.register(
            "scheduler_scheduling_attempt_duration_seconds",
            "Scheduling attempt latency in seconds (scheduling algorithm + binding).",
            attempt_duration.clone(),
        );
        registry.register(
            "scheduler_pod_scheduling_sli_duration_seconds",
            "E2e latency for a pod being scheduled, from the time the pod enters the scheduling queue.",
            e2e.clone(),
        );
        registry.register(
            "scheduler_pending_pods",
            "Number of pending pods, by the queue type.",
            pending.clone(),
        );
        Metrics {
            registry,
            attempts,
            attempt_duration,
            e2e,
            pending,
        }
    }
}

const PROFILE: &str = "default-scheduler";

impl Metrics {
    /// One attempt: `scheduled`, `unschedulable` or `error`, and how long it took.
    pub fn attempt(&self, result: &'static str, seconds: f64) {
        let labels = ResultLabels {
            result,
            profile: PROFILE,
        };
        self.attempts.get_or_create(&labels).inc();
        self.attempt_duration
            .get_or_create(&labels)
            .observe(seconds);
    }

    /// A pod bound, `seconds` after it entered the queue.
    pub fn scheduled(&self, seconds: f64) {
        self.e2e.observe(seconds);
    }

    pub fn queue_sizes(&self, active: usize, backoff: usize, unschedulable: usize) {
        for (queue, n) in [
            ("active", active),
            ("backoff", backoff),
            ("unschedulable", unschedulable),
        ] {
            self.pending
                .get_or_create(&QueueLabels { queue })
                .set(n as i64);
        }
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_upstreams_names() {
        let m = Metrics::default();
        m.attempt("scheduled", 0.002);
        m.attempt("unschedulable", 0.001);
        m.scheduled(0.5);
        m.queue_sizes(1, 2, 3);
        let text = m.render();
        assert!(text.contains(r#"scheduler_schedule_attempts_total{result="scheduled",profile="default-scheduler"} 1"#), "{text}");
        assert!(
            text.contains("scheduler_pod_scheduling_sli_duration_seconds_count 1"),
            "{text}"
        );
        assert!(
            text.contains(r#"scheduler_pending_pods{queue="unschedulable"} 3"#),
            "{text}"
        );
    }
}
