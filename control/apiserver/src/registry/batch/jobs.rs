//! Jobs (`pkg/registry/batch/job`): defaults (completions/parallelism 1, backoffLimit 6), the
//! job controller's selector and pod labels on create, validation (restartPolicy OnFailure or
//! Never), an immutable selector and template, field selectors on status.successful; the printer.

use crate::error::FieldError;
use crate::registry::core::podspec::{default_template, validate_pod_spec};
use crate::registry::fields::{check_enum, child, default, immutable, spec_of};
use crate::registry::Strategy;
use crate::table::prelude::*;

pub struct Jobs;

pub static STRATEGY: Jobs = Jobs;

impl Strategy for Jobs {
    fn tracks_generation(&self) -> bool {
        true
    }

    fn default(&self, object: &mut Value) {
        let Some(spec) = spec_of(object) else {
            return;
        };
        if spec.get("completions").is_none_or(Value::is_null)
            && spec.get("parallelism").is_none_or(Value::is_null)
        {
            spec.insert("completions".into(), json!(1));
            spec.insert("parallelism".into(), json!(1));
        }
        default(spec, "parallelism", json!(1));
        default(spec, "backoffLimit", json!(6));
        default(spec, "completionMode", json!("NonIndexed"));
        default(spec, "suspend", json!(false));
        default(spec, "podReplacementPolicy", json!("TerminatingOrFailed"));
        default_template(spec);
    }

    fn prepare_for_create(&self, object: &mut Value, uid: &str) {
        let Some(root) = object.as_object_mut() else {
            return;
        };
        // The job controller's selector: a label only this job's pods carry.
        let name = root
            .get("metadata")
            .and_then(|m| m.get("name"))
            .cloned()
            .unwrap_or(Value::Null);
        let spec = child(root, "spec");
        let manual = spec.get("manualSelector").and_then(Value::as_bool) == Some(true);
        if !manual {
            spec.insert(
                "selector".into(),
                json!({"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}),
            );
            let template = child(spec, "template");
            let meta = child(template, "metadata");
            let labels = child(meta, "labels");
            labels.insert("batch.kubernetes.io/controller-uid".into(), json!(uid));
            labels.insert("batch.kubernetes.io/job-name".into(), name.clone());
            labels.insert("controller-uid".into(), json!(uid));
            labels.insert("job-name".into(), name);
        }
    }

    fn validate(&self, object: &Value, errors: &mut Vec<FieldError>) {
        let spec = &object["spec"];
        validate_pod_spec("spec.template.spec", &spec["template"]["spec"], errors);
        check_enum(
            "spec.template.spec.restartPolicy",
            spec.pointer("/template/spec/restartPolicy"),
            &["OnFailure", "Never"],
            errors,
        );
    }

    fn validate_update(&self, old: &Value, new: &Value, errors: &mut Vec<FieldError>) {
        immutable(
            "spec.selector",
            old.pointer("/spec/selector"),
            new.pointer("/spec/selector"),
            errors,
        );
        let tmpl = |v: &Value| {
            let mut t = v.pointer("/spec/template").cloned().unwrap_or(Value::Null);
            // Labels/annotations of the template may change while suspended; keep it simple:
            // compare specs only.
            if let Some(o) = t.as_object_mut() {
                o.remove("metadata");
            }
            t
        };
        if tmpl(old) != tmpl(new) {
            errors.push(FieldError::invalid(
                "spec.template",
                new.pointer("/spec/template").unwrap_or(&Value::Null),
                "field is immutable",
            ));
        }
    }

    fn selectable_fields(&self) -> &'static [&'static str] {
        &["status.successful"]
    }

    fn printer(&self) -> &'static Printer {
        &JOB_PRINTER
    }
}

// ---------------------------------------------------------------- table

pub const JOB_COLUMNS: &[Column] = &[
    NAME,
    col("Status", "string", "Status of the job."),
    col(
        "Completions",
        "string",
        "The number of pods which reached phase Succeeded.",
    ),
    col("Duration", "string", "Time required to complete the job."),
    AGE,
    CONTAINERS,
    IMAGES,
    SELECTOR,
];

pub static JOB_PRINTER: Printer = Printer::new(JOB_COLUMNS, job_cells);

fn job_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    let succeeded = integer(obj, &["status", "succeeded"]);
    let completions = match opt_integer(obj, &["spec", "completions"]) {
        Some(completions) => format!("{succeeded}/{completions}"),
        None => {
            // Without completions, any one success finishes a (possibly parallel) job.
            let parallelism = opt_integer(obj, &["spec", "parallelism"]).unwrap_or(1);
            if parallelism > 1 {
                format!("{succeeded}/1 of {parallelism}")
            } else {
                format!("{succeeded}/1")
            }
        }
    };
    let duration = match (
        timestamp(obj, &["status", "startTime"]),
        timestamp(obj, &["status", "completionTime"]),
    ) {
        (None, _) => String::new(),
        (Some(start), None) => human_duration_seconds(seconds_between(start, now)),
        (Some(start), Some(end)) => human_duration_seconds(seconds_between(start, end)),
    };
    let conditions = list(obj, &["status", "conditions"]);
    let status = if job_condition_is_true(conditions, "Complete") {
        "Complete"
    } else if job_condition_is_true(conditions, "Failed") {
        "Failed"
    } else if is_set(obj, &["metadata", "deletionTimestamp"]) {
        "Terminating"
    } else if job_condition_is_true(conditions, "Suspended") {
        "Suspended"
    } else if job_condition_is_true(conditions, "FailureTarget") {
        "FailureTarget"
    } else {
        "Running"
    };
    let (names, images) = container_cells(list(obj, &["spec", "template", "spec", "containers"]));
    vec![
        name(obj),
        status.into(),
        completions.into(),
        duration.into(),
        age(obj, now).into(),
        names.into(),
        images.into(),
        format_label_selector(field(obj, &["spec", "selector"])).into(),
    ]
}

fn job_condition_is_true(conditions: &[Value], condition_type: &str) -> bool {
    conditions
        .iter()
        .find(|c| text(c, &["type"]) == condition_type)
        .is_some_and(|c| text(c, &["status"]) == "True")
}
