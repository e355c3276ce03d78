//! ReplicationControllers (`pkg/registry/core/replicationcontroller`): one replica by default, a
//! selector (a plain label map) and labels taken from the template when unset, validation of
//! replicas, selector against template labels and the template's pod spec (restartPolicy
//! Always), field selectors on status.replicas; the printer (ReplicaSet's columns). The
//! controller that acts on them is the controllers issue's.

use crate::error::FieldError;
use crate::registry::core::podspec::{default_template, validate_pod_spec};
use crate::registry::fields::{check_enum, child, default, spec_of};
use crate::registry::Strategy;
use crate::table::prelude::*;

pub struct ReplicationControllers;

pub static STRATEGY: ReplicationControllers = ReplicationControllers;

impl Strategy for ReplicationControllers {
    fn tracks_generation(&self) -> bool {
        true
    }

    fn default(&self, object: &mut Value) {
        let template_labels = object
            .pointer("/spec/template/metadata/labels")
            .filter(|l| l.as_object().is_some_and(|m| !m.is_empty()))
            .cloned();
        if let Some(labels) = &template_labels {
            if let Some(root) = object.as_object_mut() {
                let meta = child(root, "metadata");
                if meta
                    .get("labels")
                    .is_none_or(|l| l.as_object().is_none_or(|m| m.is_empty()))
                {
                    meta.insert("labels".into(), labels.clone());
                }
            }
        }
        let Some(spec) = spec_of(object) else {
            return;
        };
        default(spec, "replicas", json!(1));
        if let Some(labels) = template_labels {
            if spec
                .get("selector")
                .is_none_or(|s| s.as_object().is_none_or(|m| m.is_empty()))
            {
                spec.insert("selector".into(), labels);
            }
        }
        default_template(spec);
    }

    fn validate(&self, object: &Value, errors: &mut Vec<FieldError>) {
        let spec = &object["spec"];
        if let Some(r) = spec
            .get("replicas")
            .filter(|r| r.as_i64().is_some_and(|n| n < 0))
        {
            errors.push(FieldError::invalid(
                "spec.replicas",
                r,
                "must be greater than or equal to 0",
            ));
        }
        let selector = spec.get("selector").and_then(Value::as_object);
        match selector.filter(|s| !s.is_empty()) {
            None => errors.push(FieldError::required("spec.selector", "")),
            Some(selector) => {
                let labels = spec.pointer("/template/metadata/labels");
                let matches = selector
                    .iter()
                    .all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v));
                if !matches {
                    errors.push(FieldError::invalid(
                        "spec.template.metadata.labels",
                        labels.unwrap_or(&Value::Null),
                        "`selector` does not match template `labels`",
                    ));
                }
            }
        }
        validate_pod_spec("spec.template.spec", &spec["template"]["spec"], errors);
        check_enum(
            "spec.template.spec.restartPolicy",
            spec.pointer("/template/spec/restartPolicy"),
            &["Always"],
            errors,
        );
    }

    fn selectable_fields(&self) -> &'static [&'static str] {
        &["status.replicas"]
    }

    fn printer(&self) -> &'static Printer {
        &REPLICATION_CONTROLLER_PRINTER
    }
}

// ---------------------------------------------------------------- table

pub static REPLICATION_CONTROLLER_PRINTER: Printer = Printer::new(
    crate::registry::apps::replicasets::REPLICA_SET_COLUMNS,
    replication_controller_cells,
);

fn replication_controller_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    let (names, images) = container_cells(list(obj, &["spec", "template", "spec", "containers"]));
    vec![
        name(obj),
        replicas(obj).into(),
        integer(obj, &["status", "replicas"]).into(),
        integer(obj, &["status", "readyReplicas"]).into(),
        age(obj, now).into(),
        names.into(),
        images.into(),
        // A replication controller's selector is a plain map, not a LabelSelector.
        format_labels(field(obj, &["spec", "selector"])).into(),
    ]
}
