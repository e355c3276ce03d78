//! The `apiserver_flowcontrol_*` series of `/metrics`, with upstream's names and labels
//! (`k8s.io/apiserver/pkg/util/flowcontrol/metrics`): requests waiting and executing per
//! priority level and flow schema, the dispatched and rejected counts, and each level's seat
//! limits. The queue sets and the filter update them; `crate::metrics` renders them with the
//! rest.

use std::collections::BTreeMap;

use parking_lot::Mutex;

/// One (priority level, flow schema) pair's numbers.
#[derive(Default, Clone, Debug, PartialEq)]
pub struct FlowSeries {
    pub inqueue: i64,
    pub executing: i64,
    pub dispatched: u64,
    /// By upstream's reason: `queue-full`, `concurrency-limit`, `time-out`, `cancelled`.
    pub rejected: BTreeMap<&'static str, u64>,
}

/// A priority level's seat limits (nominal, lower, upper, current).
#[derive(Default, Clone, Copy, Debug, PartialEq)]
pub struct Limits {
    pub nominal: usize,
    pub lower: usize,
    pub upper: usize,
    pub current: usize,
}

#[derive(Default)]
pub struct Counters {
    flows: Mutex<BTreeMap<(String, String), FlowSeries>>,
    levels: Mutex<BTreeMap<String, Limits>>,
}

impl Counters {
    fn with(&self, level: &str, schema: &str, f: impl FnOnce(&mut FlowSeries)) {
        let mut flows = self.flows.lock();
        f(flows
            .entry((level.to_string(), schema.to_string()))
            .or_default());
    }

    pub fn add_inqueue(&self, level: &str, schema: &str, delta: i64) {
        self.with(level, schema, |s| s.inqueue += delta);
    }

    pub fn add_executing(&self, level: &str, schema: &str, delta: i64) {
        self.with(level, schema, |s| s.executing += delta);
    }

    pub fn dispatched(&self, level: &str, schema: &str) {
        self.with(level, schema, |s| s.dispatched += 1);
    }

    pub fn rejected(&self, level: &str, schema: &str, reason: &'static str) {
        self.with(level, schema, |s| {
            *s.rejected.entry(reason).or_default() += 1
        });
    }

    pub fn set_limits(&self, level: &str, limits: Limits) {
        self.levels.lock().insert(level.to_string(), limits);
    }

    /// A copy of one pair's numbers (tests, the bench).
    pub fn series(&self, level: &str, schema: &str) -> FlowSeries {
        self.flows
            .lock()
            .get(&(level.to_string(), schema.to_string()))
            .cloned()
            .unwrap_or_default()
    }

    /// Appends the series in Prometheus' text format.
    pub fn render(&self, out: &mut String) {
        let flows = self.flows.lock().clone();
        let labels = |pl: &str, fs: &str| format!("flow_schema=\"{fs}\",priority_level=\"{pl}\"");
        type Gauge = (&'static str, &'static str, fn(&FlowSeries) -> i64);
        let gauges: [Gauge; 2] = [
            (
                "apiserver_flowcontrol_current_inqueue_requests",
                "Number of requests currently pending in queues of the API Priority and Fairness subsystem",
                |s| s.inqueue,
            ),
            (
                "apiserver_flowcontrol_current_executing_requests",
                "Number of requests in initial (for a WATCH) or any (for a non-WATCH) execution stage in the API Priority and Fairness subsystem",
                |s| s.executing,
            ),
        ];
        for (name, help, value) in gauges {
            out.push_str(&format!(
                "# HELP {name} [BETA] {help}\n# TYPE {name} gauge\n"
            ));
            for ((pl, fs), s) in &flows {
                out.push_str(&format!("{name}{{{}}} {}\n", labels(pl, fs), value(s)));
            }
        }
        let name = "apiserver_flowcontrol_dispatched_requests_total";
        out.push_str(&format!("# HELP {name} [BETA] Number of requests executed by API Priority and Fairness subsystem\n# TYPE {name} counter\n"));
        for ((pl, fs), s) in &flows {
            out.push_str(&format!("{name}{{{}}} {}\n", labels(pl, fs), s.dispatched));
        }
        let name = "apiserver_flowcontrol_rejected_requests_total";
        out.push_str(&format!("# HELP {name} [BETA] Number of requests rejected by API Priority and Fairness subsystem\n# TYPE {name} counter\n"));
        for ((pl, fs), s) in &flows {
            for (reason, count) in &s.rejected {
                out.push_str(&format!(
                    "{name}{{{},reason=\"{reason}\"}} {count}\n",
                    labels(pl, fs)
                ));
            }
        }
        let levels = self.levels.lock().clone();
        type Limit = (&'static str, &'static str, fn(&Limits) -> usize);
        let limits: [Limit; 4] = [
            ("apiserver_flowcontrol_nominal_limit_seats", "[BETA] Nominal number of execution seats configured for each priority level", |l| l.nominal),
            ("apiserver_flowcontrol_lower_limit_seats", "[ALPHA] Configured lower bound on number of execution seats available to each priority level", |l| l.lower),
            ("apiserver_flowcontrol_upper_limit_seats", "[ALPHA] Configured upper bound on number of execution seats available to each priority level", |l| l.upper),
            ("apiserver_flowcontrol_current_limit_seats", "[ALPHA] current derived number of execution seats available to each priority level", |l| l.current),
        ];
        for (name, help, value) in limits {
            out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} gauge\n"));
            for (pl, l) in &levels {
                out.push_str(&format!("{name}{{priority_level=\"{pl}\"}} {}\n", value(l)));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_upstream_names_and_labels() {
        let c = Counters::default();
        c.add_inqueue("workload-low", "service-accounts", 2);
        c.add_executing("workload-low", "service-accounts", 1);
        c.dispatched("workload-low", "service-accounts");
        c.rejected("workload-low", "service-accounts", "queue-full");
        c.set_limits(
            "workload-low",
            Limits {
                nominal: 245,
                lower: 25,
                upper: 600,
                current: 245,
            },
        );
        let mut out = String::new();
        c.render(&mut out);
        for line in [
            "apiserver_flowcontrol_current_inqueue_requests{flow_schema=\"service-accounts\",priority_level=\"workload-low\"} 2",
            "apiserver_flowcontrol_current_executing_requests{flow_schema=\"service-accounts\",priority_level=\"workload-low\"} 1",
            "apiserver_flowcontrol_dispatched_requests_total{flow_schema=\"service-accounts\",priority_level=\"workload-low\"} 1",
            "apiserver_flowcontrol_rejected_requests_total{flow_schema=\"service-accounts\",priority_level=\"workload-low\",reason=\"queue-full\"} 1",
            "apiserver_flowcontrol_nominal_limit_seats{priority_level=\"workload-low\"} 245",
        ] {
            assert!(out.lines().any(|l| l == line), "{line}\n{out}");
        }
    }
}
