//! apiregistration.k8s.io: APIServices (kube-aggregator's `pkg/registry/apiservice`) — which
//! server answers a group version: this one (`Local`, no `spec.service`) or an extension API
//! server behind a Service, to which the aggregator (`crate::aggregator`) proxies. Validation
//! as upstream's (`pkg/apis/apiregistration/validation`): the name is `version.group`,
//! priorities in range, a local APIService has no CA bundle; the `Available` condition lives in
//! `/status` and is written by the availability controller. The printer.

use crate::error::FieldError;
use crate::names::{
    is_dns1035_label, is_dns1123_subdomain, NameRule, DNS1035_LABEL_MSG, DNS1123_SUBDOMAIN_MSG,
    PATH_SEGMENT,
};
use crate::registry::Strategy;
use crate::resources::Sub;
use crate::table::prelude::*;

pub struct ApiServices;

pub static API_SERVICES: ApiServices = ApiServices;

impl Strategy for ApiServices {
    fn name_rule(&self) -> NameRule {
        PATH_SEGMENT
    }

    fn default(&self, object: &mut Value) {
        // `SetDefaults_ServiceReference`: a service's port is 443 unless given.
        if let Some(service) = object
            .pointer_mut("/spec/service")
            .and_then(Value::as_object_mut)
        {
            crate::registry::fields::default(service, "port", json!(443));
        }
    }

    fn validate(&self, object: &Value, errors: &mut Vec<FieldError>) {
        validate_spec(object, errors);
    }

    fn validate_subresource_update(
        &self,
        _sub: Sub,
        _old: &Value,
        new: &Value,
        errors: &mut Vec<FieldError>,
    ) {
        let conditions = new.pointer("/status/conditions").and_then(Value::as_array);
        for (i, condition) in conditions.into_iter().flatten().enumerate() {
            let status = condition.get("status").unwrap_or(&Value::Null);
            if !matches!(status.as_str(), Some("True" | "False" | "Unknown")) {
                errors.push(FieldError::not_supported(
                    format!("status.conditions[{i}].status"),
                    status,
                    &["True", "False", "Unknown"],
                ));
            }
        }
    }

    fn printer(&self) -> &'static Printer {
        &API_SERVICE_PRINTER
    }
}

/// Upstream's `ValidateAPIService`, after the generic metadata checks.
fn validate_spec(object: &Value, errors: &mut Vec<FieldError>) {
    let spec = object.get("spec").unwrap_or(&Value::Null);
    let text = |key: &str| spec.get(key).and_then(Value::as_str).unwrap_or_default();
    let (group, version) = (text("group"), text("version"));
    let name = object
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let required = format!("{version}.{group}");
    if !name.is_empty() && name != required {
        errors.push(FieldError::invalid(
            "metadata.name",
            &json!(name),
            format!("must be `spec.version+\".\"+spec.group`: {required:?}"),
        ));
    }
    if group.is_empty() && version != "v1" {
        errors.push(FieldError::required(
            "spec.group",
            "only v1 may have an empty group and it better be legacy kube",
        ));
    }
    if !group.is_empty() && !is_dns1123_subdomain(group) {
        errors.push(FieldError::invalid(
            "spec.group",
            &json!(group),
            DNS1123_SUBDOMAIN_MSG,
        ));
    }
    if !is_dns1035_label(version) {
        errors.push(FieldError::invalid(
            "spec.version",
            &json!(version),
            DNS1035_LABEL_MSG,
        ));
    }
    let number = |key: &str| spec.get(key).and_then(Value::as_i64).unwrap_or(0);
    let group_priority = number("groupPriorityMinimum");
    if !(1..=20000).contains(&group_priority) {
        errors.push(FieldError::invalid(
            "spec.groupPriorityMinimum",
            &json!(group_priority),
            "must be positive and less than 20000",
        ));
    }
    let version_priority = number("versionPriority");
    if !(1..=1000).contains(&version_priority) {
        errors.push(FieldError::invalid(
            "spec.versionPriority",
            &json!(version_priority),
            "must be positive and less than 1000",
        ));
    }
    let ca_bundle = text("caBundle");
    let insecure = spec
        .get("insecureSkipTLSVerify")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let service = spec.get("service").filter(|s| !s.is_null());
    let Some(service) = service else {
        if !ca_bundle.is_empty() {
            // The API holds the bundle in base64; upstream counts the decoded bytes.
            let bytes = ca_bundle.len() / 4 * 3;
            errors.push(FieldError::invalid(
                "spec.caBundle",
                &json!(format!("{bytes} bytes")),
                "local APIServices may not have a caBundle",
            ));
        }
        if insecure {
            errors.push(FieldError::invalid(
                "spec.insecureSkipTLSVerify",
                &json!(true),
                "local APIServices may not have insecureSkipTLSVerify",
            ));
        }
        return;
    };
    for key in ["namespace", "name"] {
        if service
            .get(key)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .is_empty()
        {
            errors.push(FieldError::required(format!("spec.service.{key}"), ""));
        }
    }
    let port = service.get("port").and_then(Value::as_i64).unwrap_or(443);
    if !(1..=65535).contains(&port) {
        errors.push(FieldError::invalid(
            "spec.service.port",
            &json!(port),
            "port is not valid: must be between 1 and 65535, inclusive",
        ));
    }
    if insecure && !ca_bundle.is_empty() {
        errors.push(FieldError::invalid(
            "spec.insecureSkipTLSVerify",
            &json!(true),
            "may not be true if caBundle is present",
        ));
    }
}

// ---------------------------------------------------------------- table

pub const API_SERVICE_COLUMNS: &[Column] = &[
    NAME,
    col(
        "Service",
        "string",
        "The reference to the service that hosts this API endpoint.",
    ),
    col("Available", "string", "Whether this service is available."),
    AGE,
];

pub static API_SERVICE_PRINTER: Printer = Printer::new(API_SERVICE_COLUMNS, api_service_cells);

fn api_service_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    let service = match field(obj, &["spec", "service"]).filter(|s| !s.is_null()) {
        Some(s) => format!("{}/{}", text(s, &["namespace"]), text(s, &["name"])),
        None => "Local".to_string(),
    };
    let available = match list(obj, &["status", "conditions"])
        .iter()
        .find(|c| text(c, &["type"]) == "Available")
    {
        None => "Unknown".to_string(),
        Some(c) => {
            let status = text(c, &["status"]);
            let reason = text(c, &["reason"]);
            if status == "True" || reason.is_empty() {
                status.to_string()
            } else {
                format!("{status} ({reason})")
            }
        }
    };
    vec![
        name(obj),
        service.into(),
        available.into(),
        age(obj, now).into(),
    ]
}
