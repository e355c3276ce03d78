//! Prometheus text metrics at `/metrics`: request counts and latency by verb, resource and code
//! (names follow upstream's `apiserver_request_total` and `apiserver_request_duration_seconds`),
//! the audit log's counters and API Priority and Fairness' series.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;

const BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 60.0,
];

#[derive(Default)]
struct Series {
    count: u64,
    sum: f64,
    buckets: [u64; 12],
}

#[derive(Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(String, String, u16), Series>>,
    /// The audit log's counters (`apiserver_audit_*`), shared with its writer.
    pub audit: Arc<crate::audit::Counters>,
    /// API Priority and Fairness' series (`apiserver_flowcontrol_*`), shared with its queues.
    pub flowcontrol: Arc<crate::flowcontrol::metrics::Counters>,
}

impl Metrics {
    pub fn observe(&self, verb: &str, resource: &str, code: u16, elapsed: Duration) {
        let secs = elapsed.as_secs_f64();
        let mut map = self.requests.lock();
        let s = map
            .entry((verb.to_string(), resource.to_string(), code))
            .or_default();
        s.count += 1;
        s.sum += secs;
        for (i, b) in BUCKETS.iter().enumerate() {
            if secs <= *b {
                s.buckets[i] += 1;
            }
        }
    }

    pub fn render(&self) -> String {
        let map = self.requests.lock();
        let mut out = String::new();
        out.push_str("# HELP apiserver_request_total Counter of apiserver requests broken out for each verb, resource and HTTP response code.\n");
        out.push_str("# TYPE apiserver_request_total counter\n");
        for ((verb, resource, code), s) in map.iter() {
            out.push_str(&format!("apiserver_request_total{{code=\"{code}\",resource=\"{resource}\",verb=\"{verb}\"}} {}\n", s.count));
        }
        out.push_str("# HELP apiserver_request_duration_seconds Response latency distribution in seconds for each verb and resource.\n");
        out.push_str("# TYPE apiserver_request_duration_seconds histogram\n");
        for ((verb, resource, code), s) in map.iter() {
            let labels = format!("code=\"{code}\",resource=\"{resource}\",verb=\"{verb}\"");
            for (i, b) in BUCKETS.iter().enumerate() {
                out.push_str(&format!(
                    "apiserver_request_duration_seconds_bucket{{{labels},le=\"{b}\"}} {}\n",
                    s.buckets[i]
                ));
            }
            out.push_str(&format!(
                "apiserver_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {}\n",
                s.count
            ));
            out.push_str(&format!(
                "apiserver_request_duration_seconds_sum{{{labels}}} {}\n",
                s.sum
            ));
            out.push_str(&format!(
                "apiserver_request_duration_seconds_count{{{labels}}} {}\n",
                s.count
            ));
        }
        drop(map);
        self.audit.render(&mut out);
        self.flowcontrol.render(&mut out);
        out
    }
}
