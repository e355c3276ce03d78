//! The kubelet's `/metrics/resource` (Prometheus text format 0.0.4) read into one node's
//! points, as upstream's `pkg/scraper/client/resource/decode.go` reads it:
//! `node_cpu_usage_seconds_total` and `node_memory_working_set_bytes` for the node;
//! `container_cpu_usage_seconds_total`, `container_memory_working_set_bytes` and
//! `container_start_time_seconds` (labels `container`, `pod`, `namespace`) for containers.
//! Samples without a timestamp take the scrape's time. A node point missing its CPU, memory or
//! time is dropped; so is a pod any of whose containers lacks CPU or memory (upstream's
//! `checkContainerMetrics`: an incomplete pod would under-report). Other families
//! (`pod_*`, `scrape_error`, …) are ignored.

use std::collections::BTreeMap;

/// One measurement of a node or a container.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Point {
    /// When the container started (ns since the epoch); 0 when unknown (nodes).
    pub start_ns: i64,
    /// When it was measured (ns since the epoch).
    pub timestamp_ns: i64,
    /// CPU used since start, in nanocore-seconds (ns of CPU).
    pub cpu_ns: u64,
    /// Working set, bytes.
    pub memory: u64,
}

/// `(namespace, pod)`.
pub type PodKey = (String, String);

/// What one scrape of one node gave.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Batch {
    pub node: Option<Point>,
    /// Per pod, per container.
    pub pods: BTreeMap<PodKey, BTreeMap<String, Point>>,
}

/// A parse failure, with the line.
#[derive(Debug, PartialEq, Eq)]
pub struct ParseError(pub String);

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "failed parsing metrics: {}", self.0)
    }
}

impl std::error::Error for ParseError {}

/// One sample line: name, labels, value, timestamp (ms).
#[derive(Debug, PartialEq)]
struct Sample<'a> {
    name: &'a str,
    labels: Vec<(&'a str, String)>,
    value: f64,
    timestamp_ms: Option<i64>,
}

/// `name{a="b",c="d"} value [timestamp]`.
fn sample(line: &str) -> Result<Sample<'_>, String> {
    let name_end = line
        .find(|c: char| c == '{' || c.is_ascii_whitespace())
        .ok_or("no value")?;
    let name = &line[..name_end];
    if name.is_empty() {
        return Err("no metric name".into());
    }
    let mut rest = &line[name_end..];
    let mut labels = Vec::new();
    if let Some(after) = rest.strip_prefix('{') {
        let mut chars = after.char_indices().peekable();
        let end;
        loop {
            while chars.next_if(|(_, c)| *c == ' ' || *c == ',').is_some() {}
            let Some(&(start, c)) = chars.peek() else {
                return Err("unterminated label set".into());
            };
            if c == '}' {
                end = start + 1;
                break;
            }
            let mut key_end = start;
            while let Some((i, c)) = chars.next_if(|(_, c)| c.is_ascii_alphanumeric() || *c == '_')
            {
                key_end = i + c.len_utf8();
            }
            let key = &after[start..key_end];
            while chars.next_if(|(_, c)| *c == ' ').is_some() {}
            if chars.next().map(|(_, c)| c) != Some('=') || key.is_empty() {
                return Err(format!("bad label near {:?}", &after[start..]));
            }
            while chars.next_if(|(_, c)| *c == ' ').is_some() {}
            if chars.next().map(|(_, c)| c) != Some('"') {
                return Err(format!("label {key}: value not quoted"));
            }
            let mut value = String::new();
            loop {
                match chars.next() {
                    None => return Err(format!("label {key}: unterminated value")),
                    Some((_, '"')) => break,
                    Some((_, '\\')) => match chars.next() {
                        Some((_, 'n')) => value.push('\n'),
                        Some((_, c)) => value.push(c),
                        None => return Err(format!("label {key}: unterminated value")),
                    },
                    Some((_, c)) => value.push(c),
                }
            }
            labels.push((key, value));
        }
        rest = &after[end..];
    }
    let mut fields = rest.split_ascii_whitespace();
    let value = fields.next().ok_or("no value")?;
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        "NaN" => f64::NAN,
        v => v.parse().map_err(|_| format!("bad value {v:?}"))?,
    };
    let timestamp_ms = match fields.next() {
        None => None,
        Some(t) => Some(t.parse().map_err(|_| format!("bad timestamp {t:?}"))?),
    };
    Ok(Sample {
        name,
        labels,
        value,
        timestamp_ms,
    })
}

fn label<'a>(labels: &'a [(&str, String)], key: &str) -> &'a str {
    labels
        .iter()
        .find(|(k, _)| *k == key)
        .map_or("", |(_, v)| v.as_str())
}

/// The points in `text`, samples without a timestamp stamped `now_ns`.
pub fn decode(text: &str, now_ns: i64) -> Result<Batch, ParseError> {
    let mut node = Point::default();
    let mut pods: BTreeMap<PodKey, BTreeMap<String, Point>> = BTreeMap::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let s = sample(line).map_err(|e| ParseError(format!("{e}: {line:?}")))?;
        let at = s
            .timestamp_ms
            .map_or(now_ns, |ms| ms.saturating_mul(1_000_000));
        match s.name {
            "node_cpu_usage_seconds_total" => {
                node.cpu_ns = (s.value * 1e9) as u64;
                node.timestamp_ns = at;
            }
            "node_memory_working_set_bytes" => {
                node.memory = s.value as u64;
                node.timestamp_ns = at;
            }
            "container_cpu_usage_seconds_total"
            | "container_memory_working_set_bytes"
            | "container_start_time_seconds" => {
                let key = (
                    label(&s.labels, "namespace").to_string(),
                    label(&s.labels, "pod").to_string(),
                );
                let container = label(&s.labels, "container").to_string();
                let point = pods.entry(key).or_default().entry(container).or_default();
                match s.name {
                    "container_cpu_usage_seconds_total" => {
                        point.cpu_ns = (s.value * 1e9) as u64;
                        point.timestamp_ns = at;
                    }
                    "container_memory_working_set_bytes" => {
                        point.memory = s.value as u64;
                        point.timestamp_ns = at;
                    }
                    _ => point.start_ns = (s.value * 1e9) as i64,
                }
            }
            _ => {}
        }
    }
    let node = (node.timestamp_ns != 0 && node.cpu_ns != 0 && node.memory != 0).then_some(node);
    let pods = pods
        .into_iter()
        .filter(|(_, containers)| {
            containers
                .values()
                .filter(|p| **p != Point::default())
                .all(|p| p.cpu_ns != 0 && p.memory != 0)
        })
        .map(|(key, containers)| {
            let containers = containers
                .into_iter()
                .filter(|(_, p)| *p != Point::default())
                .collect::<BTreeMap<_, _>>();
            (key, containers)
        })
        .filter(|(_, containers)| !containers.is_empty())
        .collect();
    Ok(Batch { node, pods })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The kubelet's own output (runtime/kubelet's `resource_metrics` test, two containers).
    const KUBELET: &str = r#"# HELP container_cpu_usage_seconds_total [STABLE] Cumulative cpu time consumed by the container in core-seconds
# TYPE container_cpu_usage_seconds_total counter
container_cpu_usage_seconds_total{container="a",namespace="default",pod="web"} 0.05 1764876116789
container_cpu_usage_seconds_total{container="b",namespace="default",pod="web"} 0.2 1764876116789
# HELP container_memory_working_set_bytes [STABLE] Current working set of the container in bytes
# TYPE container_memory_working_set_bytes gauge
container_memory_working_set_bytes{container="a",namespace="default",pod="web"} 2048 1764876116789
container_memory_working_set_bytes{container="b",namespace="default",pod="web"} 2048 1764876116789
# HELP container_start_time_seconds [STABLE] Start time of the container since unix epoch in seconds
# TYPE container_start_time_seconds gauge
container_start_time_seconds{container="a",namespace="default",pod="web"} 1.764876e+09 1764876116789
# HELP node_cpu_usage_seconds_total [STABLE] Cumulative cpu time consumed by the node in core-seconds
# TYPE node_cpu_usage_seconds_total counter
node_cpu_usage_seconds_total 12.5 1764876116789
# HELP node_memory_working_set_bytes [STABLE] Current working set of the node in bytes
# TYPE node_memory_working_set_bytes gauge
node_memory_working_set_bytes 1.23456789e+08 1764876116789
# HELP pod_cpu_usage_seconds_total [STABLE] Cumulative cpu time consumed by the pod in core-seconds
# TYPE pod_cpu_usage_seconds_total counter
pod_cpu_usage_seconds_total{namespace="default",pod="web"} 0.25 1764876116789
# HELP resource_scrape_error [STABLE] 1 if there was an error while getting container metrics, 0 otherwise
# TYPE resource_scrape_error gauge
resource_scrape_error 0
"#;

    #[test]
    fn the_kubelets_resource_metrics() {
        let batch = decode(KUBELET, 1).unwrap();
        let ts = 1_764_876_116_789_000_000;
        assert_eq!(
            batch.node,
            Some(Point {
                start_ns: 0,
                timestamp_ns: ts,
                cpu_ns: 12_500_000_000,
                memory: 123_456_789
            })
        );
        let web = &batch.pods[&("default".to_string(), "web".to_string())];
        assert_eq!(web.len(), 2);
        assert_eq!(web["a"].cpu_ns, 50_000_000);
        assert_eq!(web["a"].memory, 2048);
        assert_eq!(web["a"].start_ns, 1_764_876_000_000_000_000);
        assert_eq!(web["b"].cpu_ns, 200_000_000);
        assert_eq!(web["b"].timestamp_ns, ts);
    }

    #[test]
    fn incomplete_points_are_dropped_and_times_default() {
        let text = "node_cpu_usage_seconds_total 1\n\
            container_cpu_usage_seconds_total{container=\"a\",namespace=\"n\",pod=\"full\"} 1\n\
            container_memory_working_set_bytes{container=\"a\",namespace=\"n\",pod=\"full\"} 10\n\
            container_cpu_usage_seconds_total{container=\"a\",namespace=\"n\",pod=\"half\"} 1\n\
            container_memory_working_set_bytes{container=\"a\",namespace=\"n\",pod=\"half\"} 10\n\
            container_cpu_usage_seconds_total{container=\"b\",namespace=\"n\",pod=\"half\"} 1\n";
        let batch = decode(text, 42).unwrap();
        assert_eq!(batch.node, None, "no memory: no node point");
        assert_eq!(batch.pods.len(), 1, "{:?}", batch.pods);
        let full = &batch.pods[&("n".to_string(), "full".to_string())];
        assert_eq!(full["a"].timestamp_ns, 42);
    }

    #[test]
    fn labels_with_escapes_spaces_and_any_order() {
        let s = sample(r#"m{ pod="a \"b\"\\c" , container="x\ny",namespace="ns",} 3 17"#).unwrap();
        assert_eq!(s.name, "m");
        assert_eq!(label(&s.labels, "pod"), "a \"b\"\\c");
        assert_eq!(label(&s.labels, "container"), "x\ny");
        assert_eq!((s.value, s.timestamp_ms), (3.0, Some(17)));
        let s = sample("plain 1e+06").unwrap();
        assert_eq!((s.value, s.labels.len()), (1e6, 0));
    }

    proptest::proptest! {
        /// Any text: points or an error, never a panic.
        #[test]
        fn any_text_decodes_or_fails(text in "((node|container)_[a-z_]{0,30}|[{}\",= a-z0-9.e+\\-]|\n){0,80}") {
            let _ = decode(&text, 1);
        }
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for bad in [
            "m{a=\"b\" 1",
            "m{a=b} 1",
            "m{=\"b\"} 1",
            "m",
            "m{a=\"b\"} x",
            "m 1 y",
            "{a=\"b\"} 1",
        ] {
            assert!(decode(bad, 0).is_err(), "{bad}");
        }
    }
}
