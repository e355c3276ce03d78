//! autoscaling/v1 HorizontalPodAutoscalers: the stored v2 object in v1's shape
//! (`pkg/apis/autoscaling/v1/conversion.go`). v1 knows one metric, a CPU utilization target
//! (`targetCPUUtilizationPercentage`); every other metric, the current metrics, the conditions
//! and the behavior travel in upstream's round-trip annotations, so a v2 object read and written
//! back through v1 loses nothing. The metrics in those annotations are in v1's (v2beta1-style)
//! metric shape; the behavior is upstream's internal type marshalled without JSON tags, so its
//! keys are Go field names (`ScaleUp`, `StabilizationWindowSeconds`).

use serde_json::{json, Map, Value};

use super::DEFAULT_CPU_UTILIZATION;
use crate::resources::Conversion;

pub const METRICS_ANNOTATION: &str = "autoscaling.alpha.kubernetes.io/metrics";
pub const CURRENT_METRICS_ANNOTATION: &str = "autoscaling.alpha.kubernetes.io/current-metrics";
pub const CONDITIONS_ANNOTATION: &str = "autoscaling.alpha.kubernetes.io/conditions";
pub const BEHAVIOR_ANNOTATION: &str = "autoscaling.alpha.kubernetes.io/behavior";
const SCALE_DOWN_TOLERANCE_ANNOTATION: &str =
    "autoscaling.alpha.kubernetes.io/scale-down-tolerance";
const SCALE_UP_TOLERANCE_ANNOTATION: &str = "autoscaling.alpha.kubernetes.io/scale-up-tolerance";

/// Every annotation the conversion writes (upstream's `DropRoundTripHorizontalPodAutoscalerAnnotations`).
const ROUND_TRIP: &[&str] = &[
    METRICS_ANNOTATION,
    CURRENT_METRICS_ANNOTATION,
    CONDITIONS_ANNOTATION,
    BEHAVIOR_ANNOTATION,
    SCALE_DOWN_TOLERANCE_ANNOTATION,
    SCALE_UP_TOLERANCE_ANNOTATION,
];

pub static V1: Conversion = Conversion {
    storage: ("autoscaling", "v2", "horizontalpodautoscalers"),
    to_storage,
    from_storage,
    field_labels: &[],
};

fn annotations(object: &mut Value) -> &mut Map<String, Value> {
    if !object["metadata"].is_object() {
        object["metadata"] = json!({});
    }
    let meta = object["metadata"]
        .as_object_mut()
        .expect("metadata is an object");
    if !meta.get("annotations").is_some_and(Value::is_object) {
        meta.insert("annotations".into(), json!({}));
    }
    meta.get_mut("annotations")
        .and_then(Value::as_object_mut)
        .expect("annotations are an object")
}

fn drop_round_trip(object: &mut Value) {
    let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) else {
        return;
    };
    if let Some(a) = meta.get_mut("annotations").and_then(Value::as_object_mut) {
        for key in ROUND_TRIP {
            a.remove(*key);
        }
        if a.is_empty() {
            meta.remove("annotations");
        }
    }
}

/// Inserts `value` under `key` unless it is null (an absent optional field).
fn put(out: &mut Map<String, Value>, key: &str, value: Option<&Value>) {
    if let Some(v) = value.filter(|v| !v.is_null()) {
        out.insert(key.into(), v.clone());
    }
}

fn is_cpu_utilization(metric: &Value) -> bool {
    metric["type"] == "Resource"
        && metric["resource"]["name"] == "cpu"
        && !metric["resource"]["target"]["averageUtilization"].is_null()
}

// ---------------------------------------------------------------- v2 → v1

fn from_storage(object: &mut Value) {
    drop_round_trip(object);
    let spec = object.get("spec").cloned().unwrap_or(Value::Null);
    let status = object.get("status").cloned();
    let metrics: Vec<Value> = spec["metrics"].as_array().cloned().unwrap_or_default();
    let other: Vec<Value> = metrics
        .iter()
        .filter(|m| !is_cpu_utilization(m))
        .map(metric_spec_to_v1)
        .collect();
    let mut v1_spec = Map::new();
    put(&mut v1_spec, "scaleTargetRef", spec.get("scaleTargetRef"));
    put(&mut v1_spec, "minReplicas", spec.get("minReplicas"));
    put(&mut v1_spec, "maxReplicas", spec.get("maxReplicas"));
    if let Some(cpu) = metrics.iter().find(|m| is_cpu_utilization(m)) {
        v1_spec.insert(
            "targetCPUUtilizationPercentage".into(),
            cpu["resource"]["target"]["averageUtilization"].clone(),
        );
    }
    let mut extra = Vec::new();
    if !other.is_empty() {
        extra.push((METRICS_ANNOTATION, Value::Array(other)));
    }
    let mut v1_status = None;
    if let Some(status) = status.filter(Value::is_object) {
        let current: Vec<Value> = status["currentMetrics"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let conditions: Vec<Value> = status["conditions"].as_array().cloned().unwrap_or_default();
        let mut out = Map::new();
        for key in [
            "observedGeneration",
            "lastScaleTime",
            "currentReplicas",
            "desiredReplicas",
        ] {
            put(&mut out, key, status.get(key));
        }
        for m in &current {
            if m["type"] == "Resource" && m["resource"]["name"] == "cpu" {
                let u = &m["resource"]["current"]["averageUtilization"];
                if !u.is_null() {
                    out.insert("currentCPUUtilizationPercentage".into(), u.clone());
                }
            }
        }
        if !current.is_empty() {
            extra.push((
                CURRENT_METRICS_ANNOTATION,
                Value::Array(current.iter().map(metric_status_to_v1).collect()),
            ));
        }
        if !conditions.is_empty() {
            extra.push((CONDITIONS_ANNOTATION, Value::Array(conditions)));
        }
        // v1's replica counts are plain int32s in Go (no omitempty): 0 when unset.
        for key in ["currentReplicas", "desiredReplicas"] {
            out.entry(key).or_insert(Value::from(0));
        }
        v1_status = Some(Value::Object(out));
    }
    if let Some(behavior) = spec.get("behavior").filter(|b| !b.is_null()) {
        extra.push((BEHAVIOR_ANNOTATION, behavior_to_go(behavior)));
    }
    if !extra.is_empty() {
        let a = annotations(object);
        for (key, value) in extra {
            a.insert(key.into(), Value::from(value.to_string()));
        }
    }
    let o = object.as_object_mut().expect("an object");
    o.insert("apiVersion".into(), json!("autoscaling/v1"));
    o.insert("spec".into(), Value::Object(v1_spec));
    match v1_status {
        Some(s) => o.insert("status".into(), s),
        None => o.remove("status"),
    };
}

fn metric_spec_to_v1(m: &Value) -> Value {
    let mut out = Map::new();
    out.insert("type".into(), m["type"].clone());
    let target = |source: &Value| source["target"].clone();
    match m["type"].as_str().unwrap_or_default() {
        "Object" => {
            let s = &m["object"];
            let t = target(s);
            let mut o = Map::new();
            o.insert("target".into(), s["describedObject"].clone());
            o.insert("metricName".into(), s["metric"]["name"].clone());
            o.insert(
                "targetValue".into(),
                if t["value"].is_null() {
                    json!("0")
                } else {
                    t["value"].clone()
                },
            );
            put(&mut o, "selector", s["metric"].get("selector"));
            put(&mut o, "averageValue", t.get("averageValue"));
            out.insert("object".into(), Value::Object(o));
        }
        "Pods" => {
            let s = &m["pods"];
            let t = target(s);
            let mut o = Map::new();
            o.insert("metricName".into(), s["metric"]["name"].clone());
            o.insert(
                "targetAverageValue".into(),
                if t["averageValue"].is_null() {
                    json!("0")
                } else {
                    t["averageValue"].clone()
                },
            );
            put(&mut o, "selector", s["metric"].get("selector"));
            out.insert("pods".into(), Value::Object(o));
        }
        "Resource" | "ContainerResource" => {
            let field = if m["type"] == "Resource" {
                "resource"
            } else {
                "containerResource"
            };
            let s = &m[field];
            let t = target(s);
            let mut o = Map::new();
            o.insert("name".into(), s["name"].clone());
            put(&mut o, "container", s.get("container"));
            put(
                &mut o,
                "targetAverageUtilization",
                t.get("averageUtilization"),
            );
            put(&mut o, "targetAverageValue", t.get("averageValue"));
            out.insert(field.into(), Value::Object(o));
        }
        "External" => {
            let s = &m["external"];
            let t = target(s);
            let mut o = Map::new();
            o.insert("metricName".into(), s["metric"]["name"].clone());
            put(&mut o, "metricSelector", s["metric"].get("selector"));
            put(&mut o, "targetValue", t.get("value"));
            put(&mut o, "targetAverageValue", t.get("averageValue"));
            out.insert("external".into(), Value::Object(o));
        }
        _ => {}
    }
    Value::Object(out)
}

fn metric_status_to_v1(m: &Value) -> Value {
    let mut out = Map::new();
    out.insert("type".into(), m["type"].clone());
    match m["type"].as_str().unwrap_or_default() {
        "Object" => {
            let s = &m["object"];
            let c = &s["current"];
            let mut o = Map::new();
            o.insert("target".into(), s["describedObject"].clone());
            o.insert("metricName".into(), s["metric"]["name"].clone());
            o.insert(
                "currentValue".into(),
                if c["value"].is_null() {
                    json!("0")
                } else {
                    c["value"].clone()
                },
            );
            put(&mut o, "selector", s["metric"].get("selector"));
            put(&mut o, "averageValue", c.get("averageValue"));
            out.insert("object".into(), Value::Object(o));
        }
        "Pods" => {
            let s = &m["pods"];
            let c = &s["current"];
            let mut o = Map::new();
            o.insert("metricName".into(), s["metric"]["name"].clone());
            o.insert(
                "currentAverageValue".into(),
                if c["averageValue"].is_null() {
                    json!("0")
                } else {
                    c["averageValue"].clone()
                },
            );
            put(&mut o, "selector", s["metric"].get("selector"));
            out.insert("pods".into(), Value::Object(o));
        }
        "Resource" | "ContainerResource" => {
            let field = if m["type"] == "Resource" {
                "resource"
            } else {
                "containerResource"
            };
            let s = &m[field];
            let c = &s["current"];
            let mut o = Map::new();
            o.insert("name".into(), s["name"].clone());
            put(&mut o, "container", s.get("container"));
            put(
                &mut o,
                "currentAverageUtilization",
                c.get("averageUtilization"),
            );
            o.insert(
                "currentAverageValue".into(),
                if c["averageValue"].is_null() {
                    json!("0")
                } else {
                    c["averageValue"].clone()
                },
            );
            out.insert(field.into(), Value::Object(o));
        }
        "External" => {
            let s = &m["external"];
            let c = &s["current"];
            let mut o = Map::new();
            o.insert("metricName".into(), s["metric"]["name"].clone());
            put(&mut o, "metricSelector", s["metric"].get("selector"));
            o.insert(
                "currentValue".into(),
                if c["value"].is_null() {
                    json!("0")
                } else {
                    c["value"].clone()
                },
            );
            put(&mut o, "currentAverageValue", c.get("averageValue"));
            out.insert("external".into(), Value::Object(o));
        }
        _ => {}
    }
    Value::Object(out)
}

/// A v2 behavior as upstream's annotation holds it: the internal type marshalled by Go without
/// JSON tags — field names capitalised, absent pointers as null.
fn behavior_to_go(b: &Value) -> Value {
    let rules = |r: &Value| -> Value {
        if r.is_null() {
            return Value::Null;
        }
        let policies: Vec<Value> = r["policies"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|p| json!({"Type": p["type"], "Value": p["value"], "PeriodSeconds": p["periodSeconds"]}))
            .collect();
        json!({
            "StabilizationWindowSeconds": r["stabilizationWindowSeconds"],
            "SelectPolicy": r["selectPolicy"],
            "Policies": if policies.is_empty() { Value::Null } else { Value::Array(policies) },
            "Tolerance": r["tolerance"],
        })
    };
    json!({"ScaleUp": rules(&b["scaleUp"]), "ScaleDown": rules(&b["scaleDown"])})
}

/// The annotation's behavior back in v2's JSON (`None` when it is empty or unreadable, as
/// upstream ignores it then).
fn behavior_from_go(b: &Value) -> Option<Value> {
    let rules = |r: &Value| -> Option<Value> {
        let r = r.as_object()?;
        let mut out = Map::new();
        put(
            &mut out,
            "stabilizationWindowSeconds",
            r.get("StabilizationWindowSeconds"),
        );
        put(&mut out, "selectPolicy", r.get("SelectPolicy"));
        if let Some(policies) = r.get("Policies").and_then(Value::as_array) {
            let policies: Vec<Value> = policies
                .iter()
                .map(|p| json!({"type": p["Type"], "value": p["Value"], "periodSeconds": p["PeriodSeconds"]}))
                .collect();
            out.insert("policies".into(), Value::Array(policies));
        }
        put(&mut out, "tolerance", r.get("Tolerance"));
        Some(Value::Object(out))
    };
    let mut out = Map::new();
    if let Some(up) = rules(&b["ScaleUp"]) {
        out.insert("scaleUp".into(), up);
    }
    if let Some(down) = rules(&b["ScaleDown"]) {
        out.insert("scaleDown".into(), down);
    }
    (!out.is_empty()).then_some(Value::Object(out))
}

// ---------------------------------------------------------------- v1 → v2

fn annotation_json(object: &Value, key: &str) -> Option<Value> {
    let text = object["metadata"]["annotations"][key].as_str()?;
    serde_json::from_str(text).ok()
}

fn to_storage(object: &mut Value) {
    let spec = object.get("spec").cloned().unwrap_or(Value::Null);
    let status = object.get("status").cloned().filter(Value::is_object);
    let mut v2_spec = Map::new();
    put(&mut v2_spec, "scaleTargetRef", spec.get("scaleTargetRef"));
    put(&mut v2_spec, "minReplicas", spec.get("minReplicas"));
    put(&mut v2_spec, "maxReplicas", spec.get("maxReplicas"));
    let cpu = spec
        .get("targetCPUUtilizationPercentage")
        .filter(|v| !v.is_null())
        .map(|u| cpu_metric(u.clone()));
    let mut metrics: Vec<Value> = Vec::new();
    match annotation_json(object, METRICS_ANNOTATION).and_then(|m| m.as_array().cloned()) {
        Some(other) => {
            metrics.extend(other.iter().map(metric_spec_from_v1));
            metrics.extend(cpu);
        }
        None => metrics.extend(cpu),
    }
    if metrics.is_empty() {
        metrics.push(cpu_metric(json!(DEFAULT_CPU_UTILIZATION)));
    }
    v2_spec.insert("metrics".into(), Value::Array(metrics));
    if let Some(behavior) = annotation_json(object, BEHAVIOR_ANNOTATION)
        .as_ref()
        .and_then(behavior_from_go)
    {
        v2_spec.insert("behavior".into(), behavior);
    }
    let v2_status = status.map(|status| {
        let mut out = Map::new();
        for key in [
            "observedGeneration",
            "lastScaleTime",
            "currentReplicas",
            "desiredReplicas",
        ] {
            put(&mut out, key, status.get(key));
        }
        let from_annotation = annotation_json(object, CURRENT_METRICS_ANNOTATION)
            .and_then(|m| m.as_array().cloned());
        match from_annotation {
            Some(current) => {
                out.insert(
                    "currentMetrics".into(),
                    Value::Array(current.iter().map(metric_status_from_v1).collect()),
                );
            }
            None => {
                if let Some(u) = status
                    .get("currentCPUUtilizationPercentage")
                    .filter(|v| !v.is_null())
                {
                    out.insert(
                        "currentMetrics".into(),
                        json!([{"type": "Resource", "resource": {"name": "cpu", "current": {"averageUtilization": u}}}]),
                    );
                }
            }
        }
        if let Some(conditions) = annotation_json(object, CONDITIONS_ANNOTATION) {
            out.insert("conditions".into(), conditions);
        }
        Value::Object(out)
    });
    drop_round_trip(object);
    let o = object.as_object_mut().expect("an object");
    o.insert("apiVersion".into(), json!("autoscaling/v2"));
    o.insert("spec".into(), Value::Object(v2_spec));
    match v2_status {
        Some(s) => o.insert("status".into(), s),
        None => o.remove("status"),
    };
}

fn cpu_metric(utilization: Value) -> Value {
    json!({"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": utilization}}})
}

fn metric_spec_from_v1(m: &Value) -> Value {
    let mut out = Map::new();
    out.insert("type".into(), m["type"].clone());
    let identifier = |name: &Value, selector: Option<&Value>| {
        let mut id = Map::new();
        id.insert("name".into(), name.clone());
        put(&mut id, "selector", selector);
        Value::Object(id)
    };
    match m["type"].as_str().unwrap_or_default() {
        "Object" => {
            let s = &m["object"];
            let average = s.get("averageValue").filter(|v| !v.is_null());
            let mut target = Map::new();
            match average {
                None => {
                    target.insert("type".into(), json!("Value"));
                    target.insert("value".into(), s["targetValue"].clone());
                }
                Some(a) => {
                    target.insert("type".into(), json!("AverageValue"));
                    if !is_zero(&s["targetValue"]) {
                        target.insert("value".into(), s["targetValue"].clone());
                    }
                    target.insert("averageValue".into(), a.clone());
                }
            }
            out.insert(
                "object".into(),
                json!({"describedObject": s["target"], "metric": identifier(&s["metricName"], s.get("selector")), "target": target}),
            );
        }
        "Pods" => {
            let s = &m["pods"];
            out.insert(
                "pods".into(),
                json!({"metric": identifier(&s["metricName"], s.get("selector")),
                       "target": {"type": "AverageValue", "averageValue": s["targetAverageValue"]}}),
            );
        }
        "Resource" | "ContainerResource" => {
            let field = if m["type"] == "Resource" {
                "resource"
            } else {
                "containerResource"
            };
            let s = &m[field];
            let utilization = s.get("targetAverageUtilization").filter(|v| !v.is_null());
            let mut target = Map::new();
            target.insert(
                "type".into(),
                json!(if utilization.is_some() {
                    "Utilization"
                } else {
                    "AverageValue"
                }),
            );
            put(&mut target, "averageUtilization", utilization);
            put(&mut target, "averageValue", s.get("targetAverageValue"));
            let mut o = Map::new();
            o.insert("name".into(), s["name"].clone());
            put(&mut o, "container", s.get("container"));
            o.insert("target".into(), Value::Object(target));
            out.insert(field.into(), Value::Object(o));
        }
        "External" => {
            let s = &m["external"];
            let value = s.get("targetValue").filter(|v| !v.is_null());
            let mut target = Map::new();
            target.insert(
                "type".into(),
                json!(if value.is_some() {
                    "Value"
                } else {
                    "AverageValue"
                }),
            );
            put(&mut target, "value", value);
            put(&mut target, "averageValue", s.get("targetAverageValue"));
            out.insert(
                "external".into(),
                json!({"metric": identifier(&s["metricName"], s.get("metricSelector")), "target": target}),
            );
        }
        _ => {}
    }
    Value::Object(out)
}

fn metric_status_from_v1(m: &Value) -> Value {
    let mut out = Map::new();
    out.insert("type".into(), m["type"].clone());
    let identifier = |name: &Value, selector: Option<&Value>| {
        let mut id = Map::new();
        id.insert("name".into(), name.clone());
        put(&mut id, "selector", selector);
        Value::Object(id)
    };
    match m["type"].as_str().unwrap_or_default() {
        "Object" => {
            let s = &m["object"];
            let mut current = Map::new();
            current.insert("value".into(), s["currentValue"].clone());
            put(&mut current, "averageValue", s.get("averageValue"));
            out.insert(
                "object".into(),
                json!({"describedObject": s["target"], "metric": identifier(&s["metricName"], s.get("selector")), "current": current}),
            );
        }
        "Pods" => {
            let s = &m["pods"];
            out.insert(
                "pods".into(),
                json!({"metric": identifier(&s["metricName"], s.get("selector")),
                       "current": {"averageValue": s["currentAverageValue"]}}),
            );
        }
        "Resource" | "ContainerResource" => {
            let field = if m["type"] == "Resource" {
                "resource"
            } else {
                "containerResource"
            };
            let s = &m[field];
            let mut current = Map::new();
            put(
                &mut current,
                "averageUtilization",
                s.get("currentAverageUtilization"),
            );
            put(&mut current, "averageValue", s.get("currentAverageValue"));
            let mut o = Map::new();
            o.insert("name".into(), s["name"].clone());
            put(&mut o, "container", s.get("container"));
            o.insert("current".into(), Value::Object(current));
            out.insert(field.into(), Value::Object(o));
        }
        "External" => {
            let s = &m["external"];
            let mut current = Map::new();
            put(&mut current, "value", s.get("currentValue"));
            put(&mut current, "averageValue", s.get("currentAverageValue"));
            out.insert(
                "external".into(),
                json!({"metric": identifier(&s["metricName"], s.get("metricSelector")), "current": current}),
            );
        }
        _ => {}
    }
    Value::Object(out)
}

fn is_zero(quantity: &Value) -> bool {
    match quantity {
        Value::Null => true,
        Value::String(s) => s
            .trim_start_matches(['+', '-'])
            .chars()
            .all(|c| c == '0' || c == '.'),
        Value::Number(n) => n.as_f64() == Some(0.0),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v2_full() -> Value {
        json!({
            "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "web", "namespace": "default", "annotations": {"keep": "me"}},
            "spec": {
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                "minReplicas": 2, "maxReplicas": 5,
                "metrics": [
                    {"type": "Pods", "pods": {"metric": {"name": "qps"}, "target": {"type": "AverageValue", "averageValue": "10"}}},
                    {"type": "External", "external": {"metric": {"name": "queue"}, "target": {"type": "Value", "value": "30"}}},
                    {"type": "Resource", "resource": {"name": "memory", "target": {"type": "AverageValue", "averageValue": "100Mi"}}},
                    {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}}}
                ],
                "behavior": {"scaleDown": {"stabilizationWindowSeconds": 300, "selectPolicy": "Max",
                    "policies": [{"type": "Percent", "value": 100, "periodSeconds": 15}]}}
            },
            "status": {
                "currentReplicas": 2, "desiredReplicas": 2,
                "currentMetrics": [{"type": "Resource", "resource": {"name": "cpu", "current": {"averageUtilization": 40, "averageValue": "40m"}}}],
                "conditions": [{"type": "AbleToScale", "status": "True", "reason": "ReadyForNewScale", "lastTransitionTime": "2026-01-01T00:00:00Z"}]
            }
        })
    }

    #[test]
    fn v2_through_v1_and_back_loses_nothing() {
        let v2 = v2_full();
        let mut v1 = v2.clone();
        from_storage(&mut v1);
        assert_eq!(v1["apiVersion"], "autoscaling/v1");
        assert_eq!(v1["spec"]["targetCPUUtilizationPercentage"], 70);
        assert_eq!(v1["status"]["currentCPUUtilizationPercentage"], 40);
        assert!(v1["spec"].get("metrics").is_none());
        let annotations = &v1["metadata"]["annotations"];
        assert_eq!(annotations["keep"], "me");
        let other: Value =
            serde_json::from_str(annotations[METRICS_ANNOTATION].as_str().unwrap()).unwrap();
        assert_eq!(other[0]["pods"]["metricName"], "qps");
        assert_eq!(other[0]["pods"]["targetAverageValue"], "10");
        assert_eq!(other[2]["resource"]["targetAverageValue"], "100Mi");
        let behavior: Value =
            serde_json::from_str(annotations[BEHAVIOR_ANNOTATION].as_str().unwrap()).unwrap();
        assert_eq!(behavior["ScaleDown"]["StabilizationWindowSeconds"], 300);
        assert!(behavior["ScaleUp"].is_null());
        // v1 is a valid autoscaling/v1 object for k8s-openapi.
        serde_json::from_value::<k8s_openapi::api::autoscaling::v1::HorizontalPodAutoscaler>(
            v1.clone(),
        )
        .unwrap();

        let mut back = v1.clone();
        to_storage(&mut back);
        let mut want = v2.clone();
        // v1's CPU target comes back after the annotation's metrics, as upstream's.
        let metrics = want["spec"]["metrics"].as_array_mut().unwrap();
        let cpu = metrics.remove(3);
        metrics.push(cpu);
        assert_eq!(back["spec"], want["spec"]);
        assert_eq!(back["status"], want["status"]);
        assert_eq!(back["metadata"], want["metadata"]);
    }

    #[test]
    fn v1_cpu_target_and_default() {
        let mut v1 = json!({"apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "web"},
            "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "web"}, "maxReplicas": 5, "targetCPUUtilizationPercentage": 80}});
        to_storage(&mut v1);
        assert_eq!(v1["apiVersion"], "autoscaling/v2");
        assert_eq!(v1["spec"]["metrics"], json!([cpu_metric(json!(80))]));
        let mut bare = json!({"apiVersion": "autoscaling/v1", "metadata": {"name": "web"},
            "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "web"}, "maxReplicas": 5}});
        to_storage(&mut bare);
        assert_eq!(bare["spec"]["metrics"], json!([cpu_metric(json!(80))]));
        assert!(bare["metadata"].get("annotations").is_none());
        let mut again = bare.clone();
        from_storage(&mut again);
        assert_eq!(again["spec"]["targetCPUUtilizationPercentage"], 80);
        assert!(again["metadata"].get("annotations").is_none());
    }
}
