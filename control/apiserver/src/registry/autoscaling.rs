//! autoscaling: HorizontalPodAutoscalers — their table printers.
//! Not served yet: the whole-API work adds strategies here and lines in `resources.rs`.

use crate::table::prelude::*;

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
