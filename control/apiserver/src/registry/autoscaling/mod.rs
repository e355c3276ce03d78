//! autoscaling/v2 (`pkg/registry/autoscaling/horizontalpodautoscaler`): HorizontalPodAutoscalers
//! with upstream's v2 defaults (one minimum replica, a CPU utilization target of 80% when no
//! metric is given, complete scaling rules once `behavior` names any), the validation users run
//! into (the scale target, the replica bounds, metric sources and targets, scaling policies),
//! generation tracking and a status written through `/status`; the printer.
//!
//! v2 is the storage version; autoscaling/v1 serves the same objects through the conversion in
//! `v1.rs`. Nothing scales yet — the object is stored for a controller to act on.

pub mod v1;

use crate::error::FieldError;
use crate::names::is_dns1123_label;
use crate::registry::fields::{check_enum, child, default, spec_of};
use crate::registry::Strategy;
use crate::table::prelude::*;

pub struct HorizontalPodAutoscalers;

pub static HORIZONTAL_POD_AUTOSCALERS: HorizontalPodAutoscalers = HorizontalPodAutoscalers;

/// The utilization target of the metric defaulted in when none is given
/// (`autoscaling.DefaultCPUUtilization`).
pub const DEFAULT_CPU_UTILIZATION: i64 = 80;
/// The longest scaling policy period and stabilization window upstream allows, in seconds.
const MAX_PERIOD_SECONDS: i64 = 1800;
const MAX_STABILIZATION_WINDOW_SECONDS: i64 = 3600;

impl Strategy for HorizontalPodAutoscalers {
    fn tracks_generation(&self) -> bool {
        true
    }

    fn default(&self, object: &mut Value) {
        let Some(spec) = spec_of(object) else {
            return;
        };
        default(spec, "minReplicas", json!(1));
        if spec
            .get("metrics")
            .and_then(Value::as_array)
            .is_none_or(Vec::is_empty)
        {
            spec.insert(
                "metrics".into(),
                json!([{"type": "Resource", "resource": {"name": "cpu",
                    "target": {"type": "Utilization", "averageUtilization": DEFAULT_CPU_UTILIZATION}}}]),
            );
        }
        // A behavior with any rule gets both directions filled in (upstream's
        // SetDefaults_HorizontalPodAutoscalerBehavior); what the user set wins field by field.
        if spec.get("behavior").is_some_and(Value::is_object) {
            let behavior = child(spec, "behavior");
            let scale_up = json!({"stabilizationWindowSeconds": 0, "selectPolicy": "Max",
                "policies": [{"type": "Pods", "value": 4, "periodSeconds": 15},
                             {"type": "Percent", "value": 100, "periodSeconds": 15}]});
            let scale_down = json!({"selectPolicy": "Max",
                "policies": [{"type": "Percent", "value": 100, "periodSeconds": 15}]});
            for (direction, defaults) in [("scaleUp", scale_up), ("scaleDown", scale_down)] {
                let rules = child(behavior, direction);
                if let Value::Object(defaults) = defaults {
                    for (key, value) in defaults {
                        default(rules, &key, value);
                    }
                }
            }
        }
    }

    fn validate(&self, object: &Value, errors: &mut Vec<FieldError>) {
        validate_spec(&object["spec"], errors);
    }

    fn validate_subresource_update(
        &self,
        _sub: crate::resources::Sub,
        _old: &Value,
        new: &Value,
        errors: &mut Vec<FieldError>,
    ) {
        for field in ["currentReplicas", "desiredReplicas"] {
            if let Some(n) = new["status"][field].as_i64().filter(|n| *n < 0) {
                errors.push(FieldError::invalid(
                    format!("status.{field}"),
                    &json!(n),
                    "must be greater than or equal to 0",
                ));
            }
        }
    }

    fn printer(&self) -> &'static Printer {
        &HORIZONTAL_POD_AUTOSCALER_PRINTER
    }
}

fn validate_spec(spec: &Value, errors: &mut Vec<FieldError>) {
    let min = spec["minReplicas"].as_i64();
    if let Some(min) = min.filter(|m| *m < 1) {
        errors.push(FieldError::invalid(
            "spec.minReplicas",
            &json!(min),
            "must be greater than or equal to 1",
        ));
    }
    // Declarative validation (beta, on by default since 1.37): maxReplicas is required — a zero
    // reads as unset — and at least 1.
    let max = spec["maxReplicas"].as_i64().unwrap_or(0);
    if max == 0 {
        errors.push(FieldError::required("spec.maxReplicas", ""));
    } else if max < 1 {
        errors.push(FieldError::invalid(
            "spec.maxReplicas",
            &json!(max),
            "must be greater than or equal to 1",
        ));
    }
    if min.is_some_and(|min| max < min) {
        errors.push(FieldError::invalid(
            "spec.maxReplicas",
            &json!(max),
            "must be greater than or equal to `minReplicas`",
        ));
    }
    validate_object_reference(&spec["scaleTargetRef"], "spec.scaleTargetRef", errors);
    for (i, metric) in list(spec, &["metrics"]).iter().enumerate() {
        validate_metric(metric, &format!("spec.metrics[{i}]"), errors);
    }
    let behavior = &spec["behavior"];
    if behavior.is_object() {
        for direction in ["scaleUp", "scaleDown"] {
            if behavior[direction].is_object() {
                validate_scaling_rules(
                    &behavior[direction],
                    &format!("spec.behavior.{direction}"),
                    errors,
                );
            }
        }
    }
}

/// A path segment name (`IsValidPathSegmentName`): not `.` or `..`, no `/` or `%`.
fn check_path_segment(path: &str, value: &str, errors: &mut Vec<FieldError>) {
    if value == "." || value == ".." {
        errors.push(FieldError::invalid(
            path,
            &json!(value),
            format!("may not be '{value}'"),
        ));
    }
    for c in ['/', '%'] {
        if value.contains(c) {
            errors.push(FieldError::invalid(
                path,
                &json!(value),
                format!("may not contain '{c}'"),
            ));
        }
    }
}

fn validate_object_reference(reference: &Value, path: &str, errors: &mut Vec<FieldError>) {
    for field in ["kind", "name"] {
        match reference[field].as_str().unwrap_or_default() {
            "" => errors.push(FieldError::required(format!("{path}.{field}"), "")),
            value => check_path_segment(&format!("{path}.{field}"), value, errors),
        }
    }
}

const METRIC_SOURCE_TYPES: &[&str] = &[
    "ContainerResource",
    "External",
    "Object",
    "Pods",
    "Resource",
];

fn validate_metric(metric: &Value, path: &str, errors: &mut Vec<FieldError>) {
    let kind = metric["type"].as_str().unwrap_or_default();
    if kind.is_empty() {
        errors.push(FieldError::required(
            format!("{path}.type"),
            "must specify a metric source type",
        ));
    }
    if !METRIC_SOURCE_TYPES.contains(&kind) {
        errors.push(FieldError::not_supported(
            format!("{path}.type"),
            &json!(kind),
            METRIC_SOURCE_TYPES,
        ));
    }
    // The sources present, in upstream's order; only the first is validated.
    let present: Vec<&str> = [
        "object",
        "external",
        "pods",
        "resource",
        "containerResource",
    ]
    .into_iter()
    .filter(|source| metric[*source].is_object())
    .collect();
    if let Some(first) = present.first() {
        let source = &metric[*first];
        let source_path = format!("{path}.{first}");
        match *first {
            "object" => validate_object_source(source, &source_path, errors),
            "external" => validate_external_source(source, &source_path, errors),
            "pods" => validate_pods_source(source, &source_path, errors),
            _ => validate_resource_source(
                source,
                &source_path,
                *first == "containerResource",
                errors,
            ),
        }
    }
    let expected = match kind {
        "Object" => "object",
        "Pods" => "pods",
        "Resource" => "resource",
        "External" => "external",
        "ContainerResource" => "containerResource",
        _ => "",
    };
    if !expected.is_empty() && !metric[expected].is_object() {
        errors.push(FieldError::required(
            format!("{path}.{expected}"),
            "must populate information for the given metric source",
        ));
    }
    if present.len() != 1 {
        for other in present.iter().filter(|p| **p != expected) {
            errors.push(FieldError::forbidden(
                format!("{path}.{other}"),
                "must populate the given metric source only",
            ));
        }
    }
}

fn validate_metric_identifier(metric: &Value, path: &str, errors: &mut Vec<FieldError>) {
    match metric["name"].as_str().unwrap_or_default() {
        "" => errors.push(FieldError::required(
            format!("{path}.name"),
            "must specify a metric name",
        )),
        name => check_path_segment(&format!("{path}.name"), name, errors),
    }
}

/// Whether a quantity's text is greater than zero (`Sign() == 1`).
fn quantity_is_positive(quantity: &Value) -> bool {
    let text = match quantity {
        Value::String(s) => s.trim().to_string(),
        other => other.to_string(),
    };
    let unsigned = text.strip_prefix('+').unwrap_or(&text);
    if unsigned.starts_with('-') {
        return false;
    }
    unsigned
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.')
        .any(|c| ('1'..='9').contains(&c))
}

fn validate_metric_target(target: &Value, path: &str, errors: &mut Vec<FieldError>) {
    let kind = target["type"].as_str().unwrap_or_default();
    if kind.is_empty() {
        errors.push(FieldError::required(
            format!("{path}.type"),
            "must specify a metric target type",
        ));
    }
    if !matches!(kind, "Utilization" | "Value" | "AverageValue") {
        errors.push(FieldError::invalid(
            format!("{path}.type"),
            &json!(kind),
            "must be either Utilization, Value, or AverageValue",
        ));
    }
    for field in ["value", "averageValue"] {
        if let Some(quantity) = target.get(field).filter(|q| !q.is_null()) {
            if !quantity_is_positive(quantity) {
                errors.push(FieldError::invalid(
                    format!("{path}.{field}"),
                    quantity,
                    "must be positive",
                ));
            }
        }
    }
    if let Some(utilization) = target["averageUtilization"].as_i64().filter(|u| *u < 1) {
        errors.push(FieldError::invalid(
            format!("{path}.averageUtilization"),
            &json!(utilization),
            "must be greater than 0",
        ));
    }
}

fn is_set_field(v: &Value, field: &str) -> bool {
    v.get(field).is_some_and(|f| !f.is_null())
}

fn validate_object_source(source: &Value, path: &str, errors: &mut Vec<FieldError>) {
    validate_object_reference(
        &source["describedObject"],
        &format!("{path}.describedObject"),
        errors,
    );
    validate_metric_identifier(&source["metric"], &format!("{path}.metric"), errors);
    let target = &source["target"];
    validate_metric_target(target, &format!("{path}.target"), errors);
    if !is_set_field(target, "value") && !is_set_field(target, "averageValue") {
        errors.push(FieldError::required(
            format!("{path}.target.averageValue"),
            "must set either a target value or averageValue",
        ));
    }
}

fn validate_external_source(source: &Value, path: &str, errors: &mut Vec<FieldError>) {
    validate_metric_identifier(&source["metric"], &format!("{path}.metric"), errors);
    let target = &source["target"];
    validate_metric_target(target, &format!("{path}.target"), errors);
    let (value, average) = (
        is_set_field(target, "value"),
        is_set_field(target, "averageValue"),
    );
    if !value && !average {
        errors.push(FieldError::required(
            format!("{path}.target.averageValue"),
            "must set either a target value for metric or a per-pod target",
        ));
    }
    if value && average {
        errors.push(FieldError::forbidden(
            format!("{path}.target.value"),
            "may not set both a target value for metric and a per-pod target",
        ));
    }
}

fn validate_pods_source(source: &Value, path: &str, errors: &mut Vec<FieldError>) {
    validate_metric_identifier(&source["metric"], &format!("{path}.metric"), errors);
    let target = &source["target"];
    validate_metric_target(target, &format!("{path}.target"), errors);
    if !is_set_field(target, "averageValue") {
        errors.push(FieldError::required(
            format!("{path}.target.averageValue"),
            "must specify a positive target averageValue",
        ));
    }
}

fn validate_resource_source(
    source: &Value,
    path: &str,
    container: bool,
    errors: &mut Vec<FieldError>,
) {
    if source["name"].as_str().unwrap_or_default().is_empty() {
        errors.push(FieldError::required(
            format!("{path}.name"),
            "must specify a resource name",
        ));
    }
    if container {
        match source["container"].as_str().unwrap_or_default() {
            "" => errors.push(FieldError::required(
                format!("{path}.container"),
                "must specify a container",
            )),
            name if !is_dns1123_label(name) => errors.push(FieldError::invalid(
                format!("{path}.container"),
                &json!(name),
                crate::names::DNS1123_LABEL_MSG,
            )),
            _ => {}
        }
    }
    let target = &source["target"];
    validate_metric_target(target, &format!("{path}.target"), errors);
    let (utilization, average) = (
        is_set_field(target, "averageUtilization"),
        is_set_field(target, "averageValue"),
    );
    if !utilization && !average {
        errors.push(FieldError::required(
            format!("{path}.target.averageUtilization"),
            "must set either a target raw value or a target utilization",
        ));
    }
    if utilization && average {
        errors.push(FieldError::forbidden(
            format!("{path}.target.averageValue"),
            "may not set both a target raw value and a target utilization",
        ));
    }
}

fn validate_scaling_rules(rules: &Value, path: &str, errors: &mut Vec<FieldError>) {
    if let Some(window) = rules["stabilizationWindowSeconds"].as_i64() {
        if window < 0 {
            errors.push(FieldError::invalid(
                format!("{path}.stabilizationWindowSeconds"),
                &json!(window),
                "must be greater than or equal to zero",
            ));
        }
        if window > MAX_STABILIZATION_WINDOW_SECONDS {
            errors.push(FieldError::invalid(
                format!("{path}.stabilizationWindowSeconds"),
                &json!(window),
                format!("must be less than or equal to {MAX_STABILIZATION_WINDOW_SECONDS}"),
            ));
        }
    }
    check_enum(
        &format!("{path}.selectPolicy"),
        rules.get("selectPolicy").filter(|v| !v.is_null()),
        &["Disabled", "Max", "Min"],
        errors,
    );
    let policies = list(rules, &["policies"]);
    if policies.is_empty() {
        errors.push(FieldError::required(
            format!("{path}.policies"),
            "must specify at least one Policy",
        ));
    }
    for (i, policy) in policies.iter().enumerate() {
        let at = format!("{path}.policies[{i}]");
        let kind = policy["type"].as_str().unwrap_or_default();
        if !matches!(kind, "Pods" | "Percent") {
            errors.push(FieldError::not_supported(
                format!("{at}.type"),
                &json!(kind),
                &["Percent", "Pods"],
            ));
        }
        let value = policy["value"].as_i64().unwrap_or(0);
        if value <= 0 {
            errors.push(FieldError::invalid(
                format!("{at}.value"),
                &json!(value),
                "must be greater than zero",
            ));
        }
        let period = policy["periodSeconds"].as_i64().unwrap_or(0);
        if period <= 0 {
            errors.push(FieldError::invalid(
                format!("{at}.periodSeconds"),
                &json!(period),
                "must be greater than zero",
            ));
        }
        if period > MAX_PERIOD_SECONDS {
            errors.push(FieldError::invalid(
                format!("{at}.periodSeconds"),
                &json!(period),
                format!("must be less than or equal to {MAX_PERIOD_SECONDS}"),
            ));
        }
    }
}

// ---------------------------------------------------------------- table

pub const HORIZONTAL_POD_AUTOSCALER_COLUMNS: &[Column] = &[
    NAME,
    col("Reference", "string", "Reference to scaled resource."),
    col(
        "Targets",
        "string",
        "The specifications for which to use to calculate the desired replica count.",
    ),
    col(
        "MinPods",
        "string",
        "The lower limit for the number of pods that can be set by the autoscaler.",
    ),
    col(
        "MaxPods",
        "string",
        "The upper limit for the number of pods that can be set by the autoscaler.",
    ),
    col(
        "Replicas",
        "string",
        "Current number of replicas of pods managed by this autoscaler.",
    ),
    AGE,
];

pub static HORIZONTAL_POD_AUTOSCALER_PRINTER: Printer = Printer::new(
    HORIZONTAL_POD_AUTOSCALER_COLUMNS,
    horizontal_pod_autoscaler_cells,
);

fn horizontal_pod_autoscaler_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    let reference = format!(
        "{}/{}",
        text(obj, &["spec", "scaleTargetRef", "kind"]),
        text(obj, &["spec", "scaleTargetRef", "name"])
    );
    // minReplicas defaults to 1.
    let min_pods = opt_integer(obj, &["spec", "minReplicas"]).unwrap_or(1);
    vec![
        name(obj),
        reference.into(),
        hpa_targets(obj).into(),
        min_pods.to_string().into(),
        integer(obj, &["spec", "maxReplicas"]).into(),
        integer(obj, &["status", "currentReplicas"]).into(),
        age(obj, now).into(),
    ]
}

/// "cpu: 40%/80%, memory: 1Gi/2Gi + 1 more...": current/target for each metric.
fn hpa_targets(obj: &Value) -> String {
    let specs = list(obj, &["spec", "metrics"]);
    let statuses = list(obj, &["status", "currentMetrics"]);
    if specs.is_empty() {
        // autoscaling/v1 shape: only a CPU utilization target (defaulted to 80%).
        if is_set(obj, &["spec", "targetCPUUtilizationPercentage"])
            || text(obj, &["apiVersion"]) == "autoscaling/v1"
        {
            let target =
                opt_integer(obj, &["spec", "targetCPUUtilizationPercentage"]).unwrap_or(80);
            let current = opt_integer(obj, &["status", "currentCPUUtilizationPercentage"])
                .map(|c| format!("{c}%"))
                .unwrap_or_else(|| "<unknown>".to_string());
            return format!("cpu: {current}/{target}%");
        }
        // autoscaling/v2 defaulting adds a CPU 80% utilization metric when none is given.
        let current = statuses
            .first()
            .and_then(|s| opt_integer(s, &["resource", "current", "averageUtilization"]))
            .map(|c| format!("{c}%"))
            .unwrap_or_else(|| "<unknown>".to_string());
        return format!("cpu: {current}/80%");
    }

    const MAX: usize = 2;
    let mut shown: Vec<String> = Vec::new();
    for (i, spec) in specs.iter().enumerate() {
        let status = statuses.get(i);
        shown.push(hpa_metric(spec, status));
    }
    let count = shown.len();
    let more = count > MAX;
    shown.truncate(MAX);
    let joined = shown.join(", ");
    if more {
        format!("{joined} + {} more...", count - MAX)
    } else {
        joined
    }
}

fn hpa_metric(spec: &Value, status: Option<&Value>) -> String {
    // The current value from the status entry at the same index, when that entry is about the same
    // metric source and has the value.
    let current = |source: &str, value: &str| -> String {
        status
            .and_then(|s| field(s, &[source, "current", value]))
            .filter(|v| !v.is_null())
            .map(|v| quantity(Some(v)))
            .unwrap_or_else(|| "<unknown>".to_string())
    };
    match text(spec, &["type"]) {
        source_type @ ("Object" | "External") => {
            let source = if source_type == "Object" {
                "object"
            } else {
                "external"
            };
            match field(spec, &[source, "target", "averageValue"]).filter(|v| !v.is_null()) {
                Some(average) => format!(
                    "{}/{} (avg)",
                    current(source, "averageValue"),
                    quantity(Some(average))
                ),
                None => format!(
                    "{}/{}",
                    current(source, "value"),
                    quantity(field(spec, &[source, "target", "value"]))
                ),
            }
        }
        "Pods" => format!(
            "{}/{}",
            current("pods", "averageValue"),
            quantity(field(spec, &["pods", "target", "averageValue"]))
        ),
        source_type @ ("Resource" | "ContainerResource") => {
            let source = if source_type == "Resource" {
                "resource"
            } else {
                "containerResource"
            };
            let resource_name = text(spec, &[source, "name"]);
            if let Some(average) =
                field(spec, &[source, "target", "averageValue"]).filter(|v| !v.is_null())
            {
                return format!(
                    "{resource_name}: {}/{}",
                    current(source, "averageValue"),
                    quantity(Some(average))
                );
            }
            let current = status
                .and_then(|s| opt_integer(s, &[source, "current", "averageUtilization"]))
                .map(|c| format!("{c}%"))
                .unwrap_or_else(|| "<unknown>".to_string());
            let target = opt_integer(spec, &[source, "target", "averageUtilization"])
                .map(|t| format!("{t}%"))
                .unwrap_or_else(|| "<auto>".to_string());
            format!("{resource_name}: {current}/{target}")
        }
        _ => "<unknown type>".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `kubectl autoscale deployment web --min=2 --max=5 --cpu-percent=50` sends.
    fn autoscaled() -> Value {
        json!({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
               "metadata": {"name": "web", "namespace": "default"},
               "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                        "minReplicas": 2, "maxReplicas": 5,
                        "metrics": [{"type": "Resource", "resource": {"name": "cpu",
                            "target": {"type": "Utilization", "averageUtilization": 50}}}]}})
    }

    fn errors_of(object: &Value) -> Vec<String> {
        crate::registry::validate(&HORIZONTAL_POD_AUTOSCALERS, object)
            .iter()
            .map(|e| format!("{}: {}", e.field, e.message))
            .collect()
    }

    #[test]
    fn defaults_follow_v2() {
        let mut hpa = json!({"metadata": {"name": "h"},
            "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "web"}, "maxReplicas": 3,
                     "behavior": {"scaleDown": {"stabilizationWindowSeconds": 60}}}});
        HORIZONTAL_POD_AUTOSCALERS.default(&mut hpa);
        assert_eq!(hpa["spec"]["minReplicas"], 1);
        assert_eq!(
            hpa["spec"]["metrics"],
            json!([{"type": "Resource", "resource": {"name": "cpu",
                "target": {"type": "Utilization", "averageUtilization": 80}}}])
        );
        let behavior = &hpa["spec"]["behavior"];
        assert_eq!(behavior["scaleDown"]["stabilizationWindowSeconds"], 60);
        assert_eq!(behavior["scaleDown"]["selectPolicy"], "Max");
        assert_eq!(
            behavior["scaleDown"]["policies"],
            json!([{"type": "Percent", "value": 100, "periodSeconds": 15}])
        );
        assert_eq!(behavior["scaleUp"]["stabilizationWindowSeconds"], 0);
        assert_eq!(behavior["scaleUp"]["policies"][0]["type"], "Pods");
        assert!(errors_of(&hpa).is_empty(), "{:?}", errors_of(&hpa));

        // No behavior stays no behavior.
        let mut plain = autoscaled();
        HORIZONTAL_POD_AUTOSCALERS.default(&mut plain);
        assert!(plain["spec"].get("behavior").is_none());
        assert_eq!(
            plain["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"],
            50
        );
    }

    #[test]
    fn validation_messages() {
        let mut hpa = json!({"metadata": {"name": "h"},
            "spec": {"scaleTargetRef": {}, "minReplicas": 4, "maxReplicas": 2}});
        HORIZONTAL_POD_AUTOSCALERS.default(&mut hpa);
        assert_eq!(
            errors_of(&hpa),
            [
                "spec.maxReplicas: Invalid value: 2: must be greater than or equal to `minReplicas`",
                "spec.scaleTargetRef.kind: Required value",
                "spec.scaleTargetRef.name: Required value",
            ]
        );
        hpa["spec"]["maxReplicas"] = json!(0);
        hpa["spec"]["minReplicas"] = json!(0);
        hpa["spec"]["scaleTargetRef"] = json!({"kind": "Deployment", "name": "web"});
        assert_eq!(
            errors_of(&hpa),
            [
                "spec.minReplicas: Invalid value: 0: must be greater than or equal to 1",
                "spec.maxReplicas: Required value",
            ]
        );
        hpa["spec"]["maxReplicas"] = json!(3);
        hpa["spec"]["minReplicas"] = json!(1);
        hpa["spec"]["metrics"] = json!([{"type": "Pods", "resource": {"name": "cpu",
            "target": {"type": "Utilization", "averageUtilization": 0}}}]);
        assert_eq!(
            errors_of(&hpa),
            [
                "spec.metrics[0].resource.target.averageUtilization: Invalid value: 0: must be greater than 0",
                "spec.metrics[0].pods: Required value: must populate information for the given metric source",
            ]
        );
        hpa["spec"]["metrics"] = json!([{"type": "External", "external": {"metric": {"name": "qps"},
            "target": {"type": "Value", "value": "0"}}}]);
        assert_eq!(
            errors_of(&hpa),
            ["spec.metrics[0].external.target.value: Invalid value: \"0\": must be positive"]
        );
    }

    #[test]
    fn kubectl_autoscale_row() {
        let mut hpa = autoscaled();
        HORIZONTAL_POD_AUTOSCALERS.default(&mut hpa);
        assert!(errors_of(&hpa).is_empty());
        let cells = (HORIZONTAL_POD_AUTOSCALER_PRINTER.cells)(&hpa, Timestamp::now());
        assert_eq!(
            cells[..6],
            [
                json!("web"),
                json!("Deployment/web"),
                json!("cpu: <unknown>/50%"),
                json!("2"),
                json!(5),
                json!(0)
            ]
        );
    }
}
