//! What printers share: upstream's HumanDuration and timestamp handling, label and selector
//! formatting (labels.FormatLabels, metav1.FormatLabelSelector), and JSON access where a missing
//! or mistyped field reads as empty and never panics.

use std::collections::BTreeSet;
use std::time::Duration;

use jiff::Timestamp;
use serde_json::{Map, Value};

/// Upstream's `duration.HumanDuration`: about two significant figures, coarser as it grows.
pub fn human_duration(d: Duration) -> String {
    human_duration_seconds(i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// HumanDuration on whole seconds, negative allowed: timestamps slightly in the future (clock skew
/// between nodes) read as "0s", further in the future as "<invalid>", as upstream.
pub fn human_duration_seconds(seconds: i64) -> String {
    if seconds < -1 {
        return "<invalid>".to_string();
    }
    if seconds < 0 {
        return "0s".to_string();
    }
    if seconds < 60 * 2 {
        return format!("{seconds}s");
    }
    let minutes = seconds / 60;
    if minutes < 10 {
        let s = seconds % 60;
        if s == 0 {
            return format!("{minutes}m");
        }
        return format!("{minutes}m{s}s");
    }
    if minutes < 60 * 3 {
        return format!("{minutes}m");
    }
    let hours = seconds / 3600;
    if hours < 8 {
        let m = minutes % 60;
        if m == 0 {
            return format!("{hours}h");
        }
        return format!("{hours}h{m}m");
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    if hours < 24 * 8 {
        let h = hours % 24;
        if h == 0 {
            return format!("{}d", hours / 24);
        }
        return format!("{}d{h}h", hours / 24);
    }
    if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    }
    if hours < 24 * 365 * 8 {
        let days_into_year = (hours / 24) % 365;
        if days_into_year == 0 {
            return format!("{}y", hours / 24 / 365);
        }
        return format!("{}y{days_into_year}d", hours / 24 / 365);
    }
    format!("{}y", hours / 24 / 365)
}

/// A plain label map as "a=1,b=2" (keys sorted), or "<none>".
pub fn format_labels(labels: Option<&Value>) -> String {
    let mut pairs: Vec<(&String, &str)> = labels
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k, v.as_str().unwrap_or("")))
                .collect()
        })
        .unwrap_or_default();
    pairs.sort();
    let joined: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect();
    non_empty_or(&joined.join(","), "<none>").to_string()
}

/// A LabelSelector as "app=web,tier in (a,b)", "<none>" when it selects everything or is unset,
/// "<error>" when invalid.
pub fn format_label_selector(selector: Option<&Value>) -> String {
    match label_selector_string(selector) {
        Some(s) if s.is_empty() => "<none>".to_string(),
        Some(s) => s,
        None => "<error>".to_string(),
    }
}

/// The selector's canonical text, None when it is invalid: requirements sorted by key, values
/// sorted. Unset and empty selectors both give "".
pub fn label_selector_string(selector: Option<&Value>) -> Option<String> {
    let Some(selector) = selector.filter(|s| !s.is_null()) else {
        return Some(String::new());
    };
    let mut requirements: Vec<(String, String)> = Vec::new();
    if let Some(match_labels) = field(selector, &["matchLabels"]).and_then(Value::as_object) {
        for (key, value) in match_labels {
            requirements.push((
                key.clone(),
                format!("{key}={}", value.as_str().unwrap_or("")),
            ));
        }
    }
    for expression in list(selector, &["matchExpressions"]) {
        let key = text(expression, &["key"]);
        let mut values: Vec<&str> = list(expression, &["values"])
            .iter()
            .filter_map(Value::as_str)
            .collect();
        values.sort();
        let requirement = match text(expression, &["operator"]) {
            "In" | "NotIn" if values.is_empty() => return None,
            "In" => format!("{key} in ({})", values.join(",")),
            "NotIn" => format!("{key} notin ({})", values.join(",")),
            "Exists" | "DoesNotExist" if !values.is_empty() => return None,
            "Exists" => key.to_string(),
            "DoesNotExist" => format!("!{key}"),
            _ => return None,
        };
        requirements.push((key.to_string(), requirement));
    }
    // Stable, so requirements on the same key keep their order.
    requirements.sort_by(|a, b| a.0.cmp(&b.0));
    let texts: Vec<String> = requirements.into_iter().map(|(_, r)| r).collect();
    Some(texts.join(","))
}

pub fn field<'a>(v: &'a Value, path: &[&str]) -> Option<&'a Value> {
    let mut current = v;
    for key in path {
        current = current.as_object()?.get(*key)?;
    }
    Some(current)
}

/// A string field, "" when missing.
pub fn text<'a>(v: &'a Value, path: &[&str]) -> &'a str {
    field(v, path).and_then(Value::as_str).unwrap_or("")
}

/// A string field that is present (like a non-nil `*string` upstream), even if empty.
pub fn opt_text<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    field(v, path).and_then(Value::as_str)
}

pub fn opt_integer(v: &Value, path: &[&str]) -> Option<i64> {
    let value = field(v, path)?;
    value
        .as_i64()
        .or_else(|| value.as_u64().map(|u| i64::try_from(u).unwrap_or(i64::MAX)))
        .or_else(|| value.as_f64().map(|f| f as i64))
}

pub fn integer(v: &Value, path: &[&str]) -> i64 {
    opt_integer(v, path).unwrap_or(0)
}

pub fn opt_boolean(v: &Value, path: &[&str]) -> Option<bool> {
    field(v, path).and_then(Value::as_bool)
}

pub fn boolean(v: &Value, path: &[&str]) -> bool {
    opt_boolean(v, path).unwrap_or(false)
}

/// An array field, empty when missing.
pub fn list<'a>(v: &'a Value, path: &[&str]) -> &'a [Value] {
    field(v, path)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

pub fn map_len(v: &Value, path: &[&str]) -> usize {
    field(v, path)
        .and_then(Value::as_object)
        .map(Map::len)
        .unwrap_or(0)
}

/// Present and not null: a non-nil pointer upstream.
pub fn is_set(v: &Value, path: &[&str]) -> bool {
    field(v, path).is_some_and(|x| !x.is_null())
}

pub fn annotation<'a>(obj: &'a Value, key: &str) -> Option<&'a str> {
    opt_text(obj, &["metadata", "annotations", key])
}

pub fn name(obj: &Value) -> Value {
    text(obj, &["metadata", "name"]).into()
}

pub fn non_empty_or<'a>(s: &'a str, fallback: &'a str) -> &'a str {
    if s.is_empty() {
        fallback
    } else {
        s
    }
}

pub fn int_or_string(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) => Some(s.clone()),
        _ => None,
    }
}

/// A timestamp field; unset, unparseable and Go's zero time all read as None ("<unknown>").
pub fn timestamp(v: &Value, path: &[&str]) -> Option<Timestamp> {
    let ts: Timestamp = text(v, path).parse().ok()?;
    // Go's zero time.Time, 0001-01-01T00:00:00Z, is what a zero metav1.Time serializes as.
    if ts.as_second() == -62_135_596_800 && ts.subsec_nanosecond() == 0 {
        return None;
    }
    Some(ts)
}

pub fn latest(a: Option<Timestamp>, b: Option<Timestamp>) -> Option<Timestamp> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, None) => a,
        (None, b) => b,
    }
}

/// Whole seconds from `start` to `end`, truncated toward zero as Go's int(d.Seconds()) does.
pub fn seconds_between(start: Timestamp, end: Timestamp) -> i64 {
    let nanos = end.as_nanosecond() - start.as_nanosecond();
    i64::try_from(nanos / 1_000_000_000).unwrap_or(if nanos < 0 { i64::MIN } else { i64::MAX })
}

/// Upstream's translateTimestampSince: "<unknown>" for an unset time.
pub fn since(ts: Option<Timestamp>, now: Timestamp) -> String {
    match ts {
        Some(ts) => human_duration_seconds(seconds_between(ts, now)),
        None => "<unknown>".to_string(),
    }
}

pub fn age(obj: &Value, now: Timestamp) -> String {
    since(timestamp(obj, &["metadata", "creationTimestamp"]), now)
}

/// Container names and images, each comma-joined.
pub fn container_cells(containers: &[Value]) -> (String, String) {
    let names: Vec<&str> = containers.iter().map(|c| text(c, &["name"])).collect();
    let images: Vec<&str> = containers.iter().map(|c| text(c, &["image"])).collect();
    (names.join(","), images.join(","))
}

/// `spec.replicas`, which upstream defaults to 1 for every replicated workload.
pub fn replicas(obj: &Value) -> i64 {
    opt_integer(obj, &["spec", "replicas"]).unwrap_or(1)
}

/// A stored quantity as text; a missing one reads as zero.
pub fn quantity(v: Option<&Value>) -> String {
    match v {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => "0".to_string(),
    }
}

/// Load-balancer ingress points (IP, else hostname), sorted and de-duplicated. The server renders
/// wide output, so the list is not clipped here.
pub fn load_balancer_ingress(ingress: &[Value]) -> Vec<String> {
    let mut points = BTreeSet::new();
    for point in ingress {
        let ip = text(point, &["ip"]);
        let hostname = text(point, &["hostname"]);
        if !ip.is_empty() {
            points.insert(ip.to_string());
        } else if !hostname.is_empty() {
            points.insert(hostname.to_string());
        }
    }
    points.into_iter().collect()
}
