//! The kubelet's Prometheus endpoints, in the text format (0.0.4) with upstream's names:
//!
//! - `/metrics/resource` (upstream's `pkg/kubelet/metrics/collectors/resource_metrics.go`,
//!   what metrics-server ≥ 0.6 scrapes for `kubectl top`): `node_cpu_usage_seconds_total`,
//!   `node_memory_working_set_bytes`, `container_cpu_usage_seconds_total`,
//!   `container_memory_working_set_bytes`, `container_start_time_seconds` (labels `container`,
//!   `namespace`, `pod`), `pod_cpu_usage_seconds_total`, `pod_memory_working_set_bytes`
//!   (`namespace`, `pod`), `resource_scrape_error` and its deprecated twin `scrape_error` —
//!   from the Summary's CPU and memory (`stats.rs`), each sample stamped with its time.
//! - `/metrics`: the kubelet's own — `kubelet_node_name`, `kubelet_running_pods`,
//!   `kubelet_running_containers{container_state}` — and the process metrics every Go
//!   component exports (`process_cpu_seconds_total`, `process_resident_memory_bytes`, …).
//!
//! Families are sorted by name and samples by labels, numbers written as Go's `strconv`
//! writes them (`1.2345678e+07`), as upstream's output is.

use std::fmt::Write;

use super::stats::Summary;

/// A metric family.
pub struct Family {
    pub name: &'static str,
    /// The help text, with the stability level as component-base prefixes it.
    pub help: String,
    pub kind: &'static str,
    pub samples: Vec<Sample>,
}

pub struct Sample {
    pub labels: Vec<(&'static str, String)>,
    pub value: f64,
    /// Milliseconds since the epoch.
    pub timestamp_ms: Option<i64>,
}

impl Family {
    fn new(name: &'static str, kind: &'static str, help: impl Into<String>) -> Family {
        Family {
            name,
            help: help.into(),
            kind,
            samples: Vec::new(),
        }
    }

    fn push(&mut self, labels: Vec<(&'static str, String)>, value: f64, timestamp_ms: Option<i64>) {
        self.samples.push(Sample {
            labels,
            value,
            timestamp_ms,
        });
    }
}

/// A number as Go's `strconv.FormatFloat(f, 'g', -1, 64)` writes it: the shortest digits,
/// in exponent form (two exponent digits at least) below 1e-4 and from 1e+06 up.
pub fn go_float(f: f64) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "+Inf" } else { "-Inf" }.into();
    }
    if f == 0.0 {
        return "0".into();
    }
    let exp_form = format!("{f:e}");
    let (mantissa, exp) = exp_form.split_once('e').unwrap_or((&exp_form, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if !(-4..6).contains(&exp) {
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{mantissa}e{sign}{:02}", exp.abs())
    } else {
        format!("{f}")
    }
}

fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The text exposition of `families`.
pub fn render(mut families: Vec<Family>) -> String {
    families.sort_by_key(|f| f.name);
    let mut out = String::new();
    for mut family in families {
        if family.samples.is_empty() {
            continue;
        }
        family.samples.iter_mut().for_each(|s| s.labels.sort());
        family.samples.sort_by(|a, b| a.labels.cmp(&b.labels));
        let _ = writeln!(out, "# HELP {} {}", family.name, family.help);
        let _ = writeln!(out, "# TYPE {} {}", family.name, family.kind);
        for s in &family.samples {
            out.push_str(family.name);
            if !s.labels.is_empty() {
                let labels: Vec<String> = s
                    .labels
                    .iter()
                    .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
                    .collect();
                let _ = write!(out, "{{{}}}", labels.join(","));
            }
            let _ = write!(out, " {}", go_float(s.value));
            if let Some(ts) = s.timestamp_ms {
                let _ = write!(out, " {ts}");
            }
            out.push('\n');
        }
    }
    out
}

/// Milliseconds of a metav1.Time string.
fn millis(time: &str) -> Option<i64> {
    time.parse::<jiff::Timestamp>()
        .ok()
        .map(|t| t.as_millisecond())
}

fn scrape_errors(value: f64) -> Vec<Family> {
    let mut errors = Family::new(
        "resource_scrape_error",
        "gauge",
        "[STABLE] 1 if there was an error while getting container metrics, 0 otherwise",
    );
    let mut errors_deprecated = Family::new(
        "scrape_error",
        "gauge",
        "[ALPHA] (Deprecated since 1.29.0) 1 if there was an error while getting container metrics, 0 otherwise",
    );
    errors.push(vec![], value, None);
    errors_deprecated.push(vec![], value, None);
    vec![errors, errors_deprecated]
}

/// `/metrics/resource` when the stats could not be read.
pub fn resource_scrape_failed() -> String {
    render(scrape_errors(1.0))
}

/// `/metrics/resource` from a Summary (its CPU and memory).
pub fn resource_metrics(summary: &Summary) -> String {
    let mut node_cpu = Family::new(
        "node_cpu_usage_seconds_total",
        "counter",
        "[STABLE] Cumulative cpu time consumed by the node in core-seconds",
    );
    let mut node_memory = Family::new(
        "node_memory_working_set_bytes",
        "gauge",
        "[STABLE] Current working set of the node in bytes",
    );
    let mut container_cpu = Family::new(
        "container_cpu_usage_seconds_total",
        "counter",
        "[STABLE] Cumulative cpu time consumed by the container in core-seconds",
    );
    let mut container_memory = Family::new(
        "container_memory_working_set_bytes",
        "gauge",
        "[STABLE] Current working set of the container in bytes",
    );
    let mut container_start = Family::new(
        "container_start_time_seconds",
        "gauge",
        "[STABLE] Start time of the container since unix epoch in seconds",
    );
    let mut pod_cpu = Family::new(
        "pod_cpu_usage_seconds_total",
        "counter",
        "[STABLE] Cumulative cpu time consumed by the pod in core-seconds",
    );
    let mut pod_memory = Family::new(
        "pod_memory_working_set_bytes",
        "gauge",
        "[STABLE] Current working set of the pod in bytes",
    );
    let node = &summary.node;
    if let Some(cpu) = &node.cpu {
        if let Some(usage) = cpu.usage_core_nano_seconds {
            node_cpu.push(vec![], usage as f64 / 1e9, millis(&cpu.time));
        }
    }
    if let Some(memory) = &node.memory {
        if let Some(ws) = memory.working_set_bytes {
            node_memory.push(vec![], ws as f64, millis(&memory.time));
        }
    }
    for pod in &summary.pods {
        let (name, namespace) = (&pod.pod_ref.name, &pod.pod_ref.namespace);
        for c in &pod.containers {
            let labels = || {
                vec![
                    ("container", c.name.clone()),
                    ("namespace", namespace.clone()),
                    ("pod", name.clone()),
                ]
            };
            if let Some(start) = millis(&c.start_time).filter(|ms| *ms > 0) {
                container_start.push(labels(), start as f64 / 1e3, None);
            }
            if let Some(cpu) = &c.cpu {
                if let Some(usage) = cpu.usage_core_nano_seconds {
                    container_cpu.push(labels(), usage as f64 / 1e9, millis(&cpu.time));
                }
            }
            if let Some(memory) = &c.memory {
                if let Some(ws) = memory.working_set_bytes {
                    container_memory.push(labels(), ws as f64, millis(&memory.time));
                }
            }
        }
        let labels = || vec![("namespace", namespace.clone()), ("pod", name.clone())];
        if let Some(cpu) = &pod.cpu {
            if let Some(usage) = cpu.usage_core_nano_seconds {
                pod_cpu.push(labels(), usage as f64 / 1e9, millis(&cpu.time));
            }
        }
        if let Some(memory) = &pod.memory {
            if let Some(ws) = memory.working_set_bytes {
                pod_memory.push(labels(), ws as f64, millis(&memory.time));
            }
        }
    }
    let mut families = vec![
        node_cpu,
        node_memory,
        container_cpu,
        container_memory,
        container_start,
        pod_cpu,
        pod_memory,
    ];
    families.extend(scrape_errors(0.0));
    render(families)
}

/// The process metrics of Prometheus' Go client (its process collector), for this process.
fn process_families() -> Vec<Family> {
    let mut out = Vec::new();
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command (which may hold spaces) in parentheses.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let field = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok());
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    // SAFETY: as above.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(1) as f64;
    // After ")": state is 0, utime 11, stime 12, starttime 19, vsize 20, rss 21.
    if let (Some(user), Some(system)) = (field(11), field(12)) {
        let mut f = Family::new(
            "process_cpu_seconds_total",
            "counter",
            "Total user and system CPU time spent in seconds.",
        );
        f.push(vec![], (user + system) / ticks, None);
        out.push(f);
    }
    if let Some(vsize) = field(20) {
        let mut f = Family::new(
            "process_virtual_memory_bytes",
            "gauge",
            "Virtual memory size in bytes.",
        );
        f.push(vec![], vsize, None);
        out.push(f);
    }
    if let Some(rss) = field(21) {
        let mut f = Family::new(
            "process_resident_memory_bytes",
            "gauge",
            "Resident memory size in bytes.",
        );
        f.push(vec![], rss * page, None);
        out.push(f);
    }
    let boot = std::fs::read_to_string("/proc/stat").ok().and_then(|t| {
        t.lines()
            .find_map(|l| l.strip_prefix("btime "))
            .and_then(|v| v.trim().parse::<f64>().ok())
    });
    if let (Some(start), Some(boot)) = (field(19), boot) {
        let mut f = Family::new(
            "process_start_time_seconds",
            "gauge",
            "Start time of the process since unix epoch in seconds.",
        );
        f.push(vec![], boot + start / ticks, None);
        out.push(f);
    }
    if let Ok(fds) = std::fs::read_dir("/proc/self/fd") {
        let mut f = Family::new(
            "process_open_fds",
            "gauge",
            "Number of open file descriptors.",
        );
        f.push(vec![], fds.count() as f64, None);
        out.push(f);
    }
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
    if let Some(max) = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|v| v.parse::<f64>().ok())
    {
        let mut f = Family::new(
            "process_max_fds",
            "gauge",
            "Maximum number of open file descriptors.",
        );
        f.push(vec![], max, None);
        out.push(f);
    }
    out
}

/// `/metrics`: the kubelet's own.
pub fn kubelet_metrics(node_name: &str, views: &[crate::PodView]) -> String {
    let mut node = Family::new(
        "kubelet_node_name",
        "gauge",
        "[ALPHA] The node's name. The count is always 1.",
    );
    node.push(vec![("node", node_name.to_string())], 1.0, None);
    let mut pods = Family::new(
        "kubelet_running_pods",
        "gauge",
        "[ALPHA] Number of pods that have a running pod sandbox",
    );
    let running_pods = views
        .iter()
        .filter(|v| v.containers.iter().any(|c| c.running))
        .count();
    pods.push(vec![], running_pods as f64, None);
    let mut containers = Family::new(
        "kubelet_running_containers",
        "gauge",
        "[ALPHA] Number of containers currently running",
    );
    let all = views.iter().flat_map(|v| v.containers.iter());
    let running = all.clone().filter(|c| c.running).count();
    let exited = all
        .filter(|c| !c.running && c.id.is_some() && c.waiting.is_none())
        .count();
    containers.push(
        vec![("container_state", "running".into())],
        running as f64,
        None,
    );
    containers.push(
        vec![("container_state", "exited".into())],
        exited as f64,
        None,
    );
    let mut families = vec![node, pods, containers];
    families.extend(process_families());
    render(families)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::stats::{
        ContainerStats, CpuStats, MemoryStats, NodeStats, PodReference, PodStats,
    };

    #[test]
    fn numbers_as_go_writes_them() {
        assert_eq!(go_float(0.0), "0");
        assert_eq!(go_float(1.0), "1");
        assert_eq!(go_float(12_345_678.0), "1.2345678e+07");
        assert_eq!(go_float(1_000_000.0), "1e+06");
        assert_eq!(go_float(999_999.0), "999999");
        assert_eq!(go_float(0.123), "0.123");
        assert_eq!(go_float(0.0001), "0.0001");
        assert_eq!(go_float(0.00001234), "1.234e-05");
        assert_eq!(go_float(1.7e9), "1.7e+09");
        assert_eq!(go_float(-2.5), "-2.5");
        assert_eq!(go_float(f64::NAN), "NaN");
    }

    fn cpu(ns: u64) -> Option<CpuStats> {
        Some(CpuStats {
            time: "2023-11-14T22:13:20Z".into(),
            usage_nano_cores: None,
            usage_core_nano_seconds: Some(ns),
        })
    }

    fn memory(ws: u64) -> Option<MemoryStats> {
        Some(MemoryStats {
            time: "2023-11-14T22:13:20Z".into(),
            working_set_bytes: Some(ws),
            ..Default::default()
        })
    }

    #[test]
    fn resource_metrics_in_upstreams_names() {
        let summary = Summary {
            node: NodeStats {
                node_name: "n1".into(),
                cpu: cpu(12_500_000_000),
                memory: memory(123_456_789),
                ..Default::default()
            },
            pods: vec![PodStats {
                pod_ref: PodReference {
                    name: "web".into(),
                    namespace: "default".into(),
                    uid: "u".into(),
                },
                cpu: cpu(250_000_000),
                memory: memory(4096),
                containers: vec![
                    ContainerStats {
                        name: "b".into(),
                        start_time: "2023-11-14T22:13:20Z".into(),
                        cpu: cpu(200_000_000),
                        memory: memory(2048),
                        ..Default::default()
                    },
                    ContainerStats {
                        name: "a".into(),
                        start_time: "2023-11-14T22:13:19Z".into(),
                        cpu: cpu(50_000_000),
                        memory: memory(2048),
                        ..Default::default()
                    },
                ],
                ..Default::default()
            }],
        };
        let text = resource_metrics(&summary);
        let ts = 1_700_000_000_000i64;
        let expected = format!(
            r#"# HELP container_cpu_usage_seconds_total [STABLE] Cumulative cpu time consumed by the container in core-seconds
# TYPE container_cpu_usage_seconds_total counter
container_cpu_usage_seconds_total{{container="a",namespace="default",pod="web"}} 0.05 {ts}
container_cpu_usage_seconds_total{{container="b",namespace="default",pod="web"}} 0.2 {ts}
# HELP container_memory_working_set_bytes [STABLE] Current working set of the container in bytes
# TYPE container_memory_working_set_bytes gauge
container_memory_working_set_bytes{{container="a",namespace="default",pod="web"}} 2048 {ts}
container_memory_working_set_bytes{{container="b",namespace="default",pod="web"}} 2048 {ts}
# HELP container_start_time_seconds [STABLE] Start time of the container since unix epoch in seconds
# TYPE container_start_time_seconds gauge
container_start_time_seconds{{container="a",namespace="default",pod="web"}} 1.699999999e+09
container_start_time_seconds{{container="b",namespace="default",pod="web"}} 1.7e+09
# HELP node_cpu_usage_seconds_total [STABLE] Cumulative cpu time consumed by the node in core-seconds
# TYPE node_cpu_usage_seconds_total counter
node_cpu_usage_seconds_total 12.5 {ts}
# HELP node_memory_working_set_bytes [STABLE] Current working set of the node in bytes
# TYPE node_memory_working_set_bytes gauge
node_memory_working_set_bytes 1.23456789e+08 {ts}
# HELP pod_cpu_usage_seconds_total [STABLE] Cumulative cpu time consumed by the pod in core-seconds
# TYPE pod_cpu_usage_seconds_total counter
pod_cpu_usage_seconds_total{{namespace="default",pod="web"}} 0.25 {ts}
# HELP pod_memory_working_set_bytes [STABLE] Current working set of the pod in bytes
# TYPE pod_memory_working_set_bytes gauge
pod_memory_working_set_bytes{{namespace="default",pod="web"}} 4096 {ts}
# HELP resource_scrape_error [STABLE] 1 if there was an error while getting container metrics, 0 otherwise
# TYPE resource_scrape_error gauge
resource_scrape_error 0
# HELP scrape_error [ALPHA] (Deprecated since 1.29.0) 1 if there was an error while getting container metrics, 0 otherwise
# TYPE scrape_error gauge
scrape_error 0
"#
        );
        assert_eq!(text, expected);
    }

    #[test]
    fn kubelet_metrics_count_pods_and_containers() {
        let container = |name: &str, running: bool| crate::ContainerView {
            name: name.into(),
            id: Some(format!("id-{name}")),
            running,
            restart_count: 0,
            log_path: None,
            waiting: None,
        };
        let views = vec![
            crate::PodView {
                namespace: "default".into(),
                name: "a".into(),
                uid: "u1".into(),
                pod_ip: None,
                netns: None,
                containers: vec![container("x", true), container("init", false)],
            },
            crate::PodView {
                namespace: "default".into(),
                name: "done".into(),
                uid: "u2".into(),
                pod_ip: None,
                netns: None,
                containers: vec![container("y", false)],
            },
        ];
        let text = kubelet_metrics("n1", &views);
        assert!(
            text.contains("kubelet_node_name{node=\"n1\"} 1\n"),
            "{text}"
        );
        assert!(text.contains("\nkubelet_running_pods 1\n"), "{text}");
        assert!(text.contains(
            "kubelet_running_containers{container_state=\"exited\"} 2\nkubelet_running_containers{container_state=\"running\"} 1\n"
        ), "{text}");
        assert!(
            text.contains("# TYPE process_cpu_seconds_total counter\n"),
            "{text}"
        );
        assert!(text.contains("\nprocess_resident_memory_bytes "), "{text}");
        assert!(text.contains("\nprocess_open_fds "), "{text}");
    }
}
