//! CronJobs (`pkg/registry/batch/cronjob`): defaults (Allow, history limits 3/1, the job
//! template's), a required schedule, the job template's pod spec; the printer.

use crate::error::FieldError;
use crate::registry::core::podspec::{default_template, validate_pod_spec};
use crate::registry::fields::{child, default, spec_of, str_at};
use crate::registry::Strategy;
use crate::table::prelude::*;

pub struct CronJobs;

pub static STRATEGY: CronJobs = CronJobs;

impl Strategy for CronJobs {
    fn tracks_generation(&self) -> bool {
        true
    }

    fn default(&self, object: &mut Value) {
        let Some(spec) = spec_of(object) else {
            return;
        };
        default(spec, "concurrencyPolicy", json!("Allow"));
        default(spec, "suspend", json!(false));
        default(spec, "successfulJobsHistoryLimit", json!(3));
        default(spec, "failedJobsHistoryLimit", json!(1));
        let job_template = child(spec, "jobTemplate");
        let job_spec = child(job_template, "spec");
        default(job_spec, "backoffLimit", json!(6));
        default(job_spec, "completionMode", json!("NonIndexed"));
        default(job_spec, "suspend", json!(false));
        default_template(job_spec);
    }

    fn validate(&self, object: &Value, errors: &mut Vec<FieldError>) {
        let spec = &object["spec"];
        if str_at(spec, "/schedule").trim().is_empty() {
            errors.push(FieldError::required("spec.schedule", ""));
        }
        let tmpl = &spec["jobTemplate"]["spec"]["template"]["spec"];
        validate_pod_spec("spec.jobTemplate.spec.template.spec", tmpl, errors);
    }

    fn printer(&self) -> &'static Printer {
        &CRON_JOB_PRINTER
    }
}

// ---------------------------------------------------------------- table

pub const CRON_JOB_COLUMNS: &[Column] = &[
    NAME,
    col("Schedule", "string", "The schedule in Cron format."),
    col(
        "Timezone",
        "string",
        "The time zone name for the given schedule.",
    ),
    col(
        "Suspend",
        "boolean",
        "This flag tells the controller to suspend subsequent executions.",
    ),
    col(
        "Active",
        "integer",
        "A list of pointers to currently running jobs.",
    ),
    col(
        "Last Schedule",
        "string",
        "Information when was the last time the job was successfully scheduled.",
    ),
    AGE,
    CONTAINERS,
    IMAGES,
    SELECTOR,
];

pub static CRON_JOB_PRINTER: Printer = Printer::new(CRON_JOB_COLUMNS, cron_job_cells);

fn cron_job_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    let last_schedule = if is_set(obj, &["status", "lastScheduleTime"]) {
        since(timestamp(obj, &["status", "lastScheduleTime"]), now)
    } else {
        "<none>".to_string()
    };
    let time_zone = opt_text(obj, &["spec", "timeZone"]).unwrap_or("<none>");
    // spec.suspend defaults to false.
    let suspend = if opt_boolean(obj, &["spec", "suspend"]).unwrap_or(false) {
        "True"
    } else {
        "False"
    };
    let (names, images) = container_cells(list(
        obj,
        &[
            "spec",
            "jobTemplate",
            "spec",
            "template",
            "spec",
            "containers",
        ],
    ));
    vec![
        name(obj),
        text(obj, &["spec", "schedule"]).into(),
        time_zone.into(),
        suspend.into(),
        (list(obj, &["status", "active"]).len() as i64).into(),
        last_schedule.into(),
        age(obj, now).into(),
        names.into(),
        images.into(),
        format_label_selector(field(obj, &["spec", "jobTemplate", "spec", "selector"])).into(),
    ]
}
