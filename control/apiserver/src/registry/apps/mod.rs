//! The apps group: a file per resource, and the rules its workloads share — replicas, a
//! selector that matches the pod template's labels (immutable once set), and the template's pod
//! spec.

pub mod controllerrevisions;
pub mod daemonsets;
pub mod deployments;
pub mod replicasets;
pub mod statefulsets;

use serde_json::{Map, Value};

use crate::error::FieldError;
use crate::registry::core::podspec::{default_template, validate_pod_spec};
use crate::registry::fields::{immutable, spec_of};
use crate::registry::Strategy;
use crate::selectors::LabelSelector;
use crate::table::Printer;

/// A workload (Deployment, ReplicaSet, DaemonSet, StatefulSet): what differs between them — the
/// spec's defaults, extra validation, selectable fields, the printer — around the rules they
/// share: generation tracking, the pod template's defaults, replicas, a selector that matches
/// the template's labels and never changes, the template's pod spec.
pub struct Workload {
    /// Defaults of the spec's own fields (the template's come after).
    pub spec_defaults: fn(&mut Map<String, Value>),
    /// Rules beyond the shared ones, on the spec.
    pub validate_spec: fn(&Value, &mut Vec<FieldError>),
    pub selectable: &'static [&'static str],
    pub printer: &'static Printer,
}

/// For workloads with no rules of their own.
pub fn no_rules(_spec: &Value, _errors: &mut Vec<FieldError>) {}

impl Strategy for Workload {
    fn tracks_generation(&self) -> bool {
        true
    }

    fn default(&self, object: &mut Value) {
        if let Some(spec) = spec_of(object) {
            (self.spec_defaults)(spec);
            default_template(spec);
        }
    }

    fn validate(&self, object: &Value, errors: &mut Vec<FieldError>) {
        let spec = &object["spec"];
        validate_replicas("spec", spec, errors);
        validate_selector_template("spec", spec, true, errors);
        validate_pod_spec("spec.template.spec", &spec["template"]["spec"], errors);
        (self.validate_spec)(spec, errors);
    }

    fn validate_update(&self, old: &Value, new: &Value, errors: &mut Vec<FieldError>) {
        immutable(
            "spec.selector",
            old.pointer("/spec/selector"),
            new.pointer("/spec/selector"),
            errors,
        );
    }

    fn selectable_fields(&self) -> &'static [&'static str] {
        self.selectable
    }

    fn printer(&self) -> &'static Printer {
        self.printer
    }
}

fn validate_selector_template(
    path: &str,
    spec: &Value,
    required: bool,
    errors: &mut Vec<FieldError>,
) {
    let Some(selector) = spec.get("selector").filter(|s| !s.is_null()) else {
        if required {
            errors.push(FieldError::required(format!("{path}.selector"), ""));
        }
        return;
    };
    match LabelSelector::from_object(selector) {
        Err(e) => errors.push(FieldError::invalid(format!("{path}.selector"), selector, e)),
        Ok(sel) if sel.is_empty() => errors.push(FieldError::invalid(
            format!("{path}.selector"),
            selector,
            "empty selector is invalid for deployment",
        )),
        Ok(sel) => {
            let labels = spec.pointer("/template/metadata/labels");
            if !sel.matches_labels(labels.and_then(Value::as_object)) {
                errors.push(FieldError::invalid(
                    format!("{path}.template.metadata.labels"),
                    labels.unwrap_or(&Value::Null),
                    "`selector` does not match template `labels`",
                ));
            }
        }
    }
}

fn validate_replicas(path: &str, spec: &Value, errors: &mut Vec<FieldError>) {
    if let Some(r) = spec.get("replicas") {
        if r.as_i64().is_some_and(|n| n < 0) {
            errors.push(FieldError::invalid(
                format!("{path}.replicas"),
                r,
                "must be greater than or equal to 0",
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::registry::Strategy;

    #[test]
    fn deployment_selector_must_match() {
        let d = json!({"metadata": {"name": "web"}, "spec": {"selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "other"}}, "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}});
        let mut errs = Vec::new();
        super::deployments::STRATEGY.validate(&d, &mut errs);
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].field, "spec.template.metadata.labels");
    }
}
