//! A CustomResourceDefinition's validation, with upstream's paths and messages
//! (`apiextensions-apiserver/pkg/apis/apiextensions/validation/validation.go`, the v1 options:
//! a schema is required for every version and must be structural).

use serde_json::{json, Value};

use crate::customresource::{columns, formats, structural};
use crate::error::FieldError;
use crate::names;

fn dns1035(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    if s.len() > 63 {
        out.push("must be no more than 63 characters".to_string());
    }
    if !names::is_dns1035_label(s) {
        out.push(names::DNS1035_LABEL_MSG.to_string());
    }
    out
}

fn subdomain(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    if s.len() > 253 {
        out.push("must be no more than 253 characters".to_string());
    }
    if !names::is_dns1123_subdomain(s) {
        out.push(names::DNS1123_SUBDOMAIN_MSG.to_string());
    }
    out
}

fn text<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// `spec.names` or `status.acceptedNames`.
pub fn validate_names(names: &Value, path: &str, errors: &mut Vec<FieldError>) {
    for key in ["plural", "singular"] {
        let v = text(names, &format!("/{key}"));
        let errs = dns1035(v);
        if !v.is_empty() && !errs.is_empty() {
            errors.push(FieldError::invalid(
                format!("{path}.{key}"),
                &json!(v),
                errs.join(","),
            ));
        }
    }
    for key in ["kind", "listKind"] {
        let v = text(names, &format!("/{key}"));
        let errs = dns1035(&v.to_lowercase());
        if !v.is_empty() && !errs.is_empty() {
            errors.push(FieldError::invalid(
                format!("{path}.{key}"),
                &json!(v),
                format!(
                    "may have mixed case, but should otherwise match: {}",
                    errs.join(",")
                ),
            ));
        }
    }
    for (i, short) in names["shortNames"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        let v = short.as_str().unwrap_or_default();
        let errs = dns1035(v);
        if !errs.is_empty() {
            errors.push(FieldError::invalid(
                format!("{path}.shortNames[{i}]"),
                short,
                errs.join(","),
            ));
        }
    }
    let kind = text(names, "/kind");
    if !kind.is_empty() && kind == text(names, "/listKind") {
        errors.push(FieldError::invalid(
            format!("{path}.listKind"),
            &json!(kind),
            "kind and listKind may not be the same",
        ));
    }
    for (i, category) in names["categories"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        let errs = dns1035(category.as_str().unwrap_or_default());
        if !errs.is_empty() {
            errors.push(FieldError::invalid(
                format!("{path}.categories[{i}]"),
                category,
                errs.join(","),
            ));
        }
    }
}

const COLUMN_TYPES: &[&str] = &["boolean", "date", "integer", "number", "string"];
const COLUMN_FORMATS: &[&str] = &[
    "byte",
    "date",
    "date-time",
    "double",
    "float",
    "int32",
    "int64",
    "password",
];

fn validate_column(col: &Value, path: &str, errors: &mut Vec<FieldError>) {
    if text(col, "/name").is_empty() {
        errors.push(FieldError::required(format!("{path}.name"), ""));
    }
    let kind = text(col, "/type");
    let must = format!("must be one of {}", COLUMN_TYPES.join(","));
    if kind.is_empty() {
        errors.push(FieldError::required(format!("{path}.type"), &must));
    } else if !COLUMN_TYPES.contains(&kind) {
        errors.push(FieldError::invalid(
            format!("{path}.type"),
            &json!(kind),
            &must,
        ));
    }
    let format = text(col, "/format");
    if !format.is_empty() && !COLUMN_FORMATS.contains(&format) {
        errors.push(FieldError::invalid(
            format!("{path}.format"),
            &json!(format),
            format!("must be one of {}", COLUMN_FORMATS.join(",")),
        ));
    }
    let json_path = text(col, "/jsonPath");
    if json_path.is_empty() {
        errors.push(FieldError::required(format!("{path}.JSONPath"), ""));
    } else if !columns::is_valid(json_path) {
        errors.push(FieldError::invalid(
            format!("{path}.JSONPath"),
            &json!(json_path),
            "must be a simple json path starting with .",
        ));
    }
}

fn validate_selectable(
    fields: &[Value],
    schema: Option<&crate::customresource::schema::Schema>,
    path: &str,
    errors: &mut Vec<FieldError>,
) {
    let mut seen: Vec<&str> = Vec::new();
    for (i, f) in fields.iter().enumerate() {
        let here = format!("{path}[{i}].jsonPath");
        let json_path = text(f, "/jsonPath");
        if json_path.is_empty() {
            errors.push(FieldError::required(here, ""));
            continue;
        }
        if !columns::is_valid(json_path) {
            errors.push(FieldError::invalid(
                here,
                &json!(json_path),
                "is an invalid path",
            ));
            continue;
        }
        if json_path.trim_start_matches('.').starts_with("metadata") {
            errors.push(FieldError::invalid(
                here,
                &json!(json_path),
                "must not point to fields in metadata",
            ));
            continue;
        }
        let leaf = schema.and_then(|s| s.at_path(json_path));
        if !leaf.is_some_and(|l| matches!(l.kind.as_str(), "string" | "boolean" | "integer")) {
            errors.push(FieldError::invalid(
                here,
                &json!(json_path),
                "must point to a field of type string, boolean or integer. Enum string fields and strings with formats are allowed.",
            ));
            continue;
        }
        if seen.contains(&json_path) {
            errors.push(FieldError::duplicate(here, &json!(json_path)));
        }
        seen.push(json_path);
    }
    if fields.len() > 8 {
        errors.push(FieldError::too_many(path, fields.len() as u64, 8));
    }
}

fn validate_subresources(sub: &Value, path: &str, errors: &mut Vec<FieldError>) {
    let Some(scale) = sub.get("scale").filter(|s| !s.is_null()) else {
        return;
    };
    let path = format!("{path}.scale");
    for key in ["specReplicasPath", "statusReplicasPath"] {
        let v = text(scale, &format!("/{key}"));
        if v.is_empty() {
            errors.push(FieldError::required(format!("{path}.{key}"), ""));
            continue;
        }
        let bad = !v.starts_with('.') || !columns::is_valid(v);
        if bad {
            errors.push(FieldError::invalid(
                format!("{path}.{key}"),
                &json!(v),
                "must be a simple json path starting with .",
            ));
        } else if key == "specReplicasPath" && !v.starts_with(".spec.") {
            errors.push(FieldError::invalid(
                format!("{path}.{key}"),
                &json!(v),
                "should be a json path under .spec",
            ));
        } else if key == "statusReplicasPath" && !v.starts_with(".status.") {
            errors.push(FieldError::invalid(
                format!("{path}.{key}"),
                &json!(v),
                "should be a json path under .status",
            ));
        }
    }
    if let Some(v) = scale.get("labelSelectorPath").and_then(Value::as_str) {
        if !v.starts_with(".spec.") && !v.starts_with(".status.") {
            errors.push(FieldError::invalid(
                format!("{path}.labelSelectorPath"),
                &json!(v),
                "should be a json path under either .spec or .status",
            ));
        }
    }
}

/// Formats kept by upstream's validation: anything else in a schema's `format` is refused
/// (`requireValidPropertyType`'s companion check for formats).
fn validate_formats(schema: &Value, path: &str, errors: &mut Vec<FieldError>) {
    let Some(map) = schema.as_object() else {
        return;
    };
    if let Some(format) = map.get("format").and_then(Value::as_str) {
        if !format.is_empty() && !formats::SUPPORTED.contains(&format) {
            errors.push(FieldError::not_supported(
                format!("{path}.format"),
                &json!(format),
                formats::SUPPORTED,
            ));
        }
    }
    if let Some(props) = map.get("properties").and_then(Value::as_object) {
        for (k, v) in props {
            validate_formats(v, &format!("{path}.properties[{k}]"), errors);
        }
    }
    for key in ["items", "additionalProperties"] {
        if let Some(v) = map.get(key) {
            validate_formats(v, &format!("{path}.{key}"), errors);
        }
    }
}

/// Everything a CRD must satisfy (its metadata is checked generically).
pub fn validate(crd: &Value, errors: &mut Vec<FieldError>) {
    let spec = &crd["spec"];
    let group = text(spec, "/group");
    let plural = text(spec, "/names/plural");
    let name = text(crd, "/metadata/name");
    if name != format!("{plural}.{group}") {
        errors.push(FieldError::invalid(
            "metadata.name",
            &json!(name),
            "must be spec.names.plural+\".\"+spec.group",
        ));
    }
    if group.is_empty() {
        errors.push(FieldError::required("spec.group", ""));
    } else if !subdomain(group).is_empty() {
        errors.push(FieldError::invalid(
            "spec.group",
            &json!(group),
            subdomain(group).join(","),
        ));
    } else if group.split('.').count() < 2 {
        errors.push(FieldError::invalid(
            "spec.group",
            &json!(group),
            "should be a domain with at least one dot",
        ));
    }
    match text(spec, "/scope") {
        "" => errors.push(FieldError::required("spec.scope", "")),
        "Cluster" | "Namespaced" => {}
        other => errors.push(FieldError::not_supported(
            "spec.scope",
            &json!(other),
            &["Cluster", "Namespaced"],
        )),
    }
    let versions: &[Value] = spec["versions"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    let top_schema = spec.pointer("/validation/openAPIV3Schema");
    let preserve_unknown = spec["preserveUnknownFields"].as_bool().unwrap_or(false);
    if versions.is_empty() {
        errors.push(FieldError::required("spec.versions", ""));
    }
    // Upstream validates its internal form, where a schema every version shares is the CRD's
    // top-level `spec.validation`: its errors are named there.
    let schemas: Vec<Option<&Value>> = versions
        .iter()
        .map(|v| v.pointer("/schema/openAPIV3Schema"))
        .collect();
    let shared = !schemas.is_empty() && schemas.iter().all(|s| s.is_some() && *s == schemas[0]);
    let mut storage = 0;
    let mut names_seen: Vec<&str> = Vec::new();
    let mut unique = true;
    for (i, v) in versions.iter().enumerate() {
        let path = format!("spec.versions[{i}]");
        let vname = text(v, "/name");
        if v["storage"].as_bool().unwrap_or(false) {
            storage += 1;
        }
        if names_seen.contains(&vname) {
            unique = false;
        }
        names_seen.push(vname);
        let errs = dns1035(vname);
        if !errs.is_empty() {
            errors.push(FieldError::invalid(
                format!("{path}.name"),
                &json!(vname),
                errs.join(","),
            ));
        }
        let schema = v.pointer("/schema/openAPIV3Schema").or(top_schema);
        match schema {
            None if !preserve_unknown => errors.push(FieldError::required(
                format!("{path}.schema.openAPIV3Schema"),
                "",
            )),
            None => {}
            Some(_) if shared && i > 0 => {}
            Some(s) => {
                let schema_path = if shared {
                    "spec.validation.openAPIV3Schema".to_string()
                } else {
                    format!("{path}.schema.openAPIV3Schema")
                };
                errors.extend(structural::check(s, &schema_path));
                validate_formats(s, &schema_path, errors);
            }
        }
        if let Some(sub) = v.get("subresources") {
            validate_subresources(sub, &format!("{path}.subresources"), errors);
        }
        for (j, col) in v["additionalPrinterColumns"]
            .as_array()
            .into_iter()
            .flatten()
            .enumerate()
        {
            validate_column(
                col,
                &format!("{path}.additionalPrinterColumns[{j}]"),
                errors,
            );
        }
        if let Some(fields) = v["selectableFields"].as_array() {
            let parsed = schema.map(crate::customresource::schema::Schema::from_json);
            validate_selectable(
                fields,
                parsed.as_ref(),
                &format!("{path}.selectableFields"),
                errors,
            );
        }
        if let Some(warning) = v["deprecationWarning"].as_str() {
            if warning.len() > 256 {
                errors.push(FieldError::invalid(
                    format!("{path}.deprecationWarning"),
                    &json!(warning),
                    "must be <= 256 characters long",
                ));
            }
        }
    }
    // The versions as upstream prints its internal type (Go's field names; what is shared by
    // every version has moved to the top level and shows as null).
    let shown = || -> Value {
        let every = |key: &str| {
            versions
                .iter()
                .all(|v| v.get(key).is_some() && v.get(key) == versions[0].get(key))
        };
        let (schema, subresources, columns, fields) = (
            every("schema"),
            every("subresources"),
            every("additionalPrinterColumns"),
            every("selectableFields"),
        );
        let own = |v: &Value, key: &str, hoisted: bool| {
            if hoisted {
                Value::Null
            } else {
                v.get(key).cloned().unwrap_or(Value::Null)
            }
        };
        Value::Array(
            versions
                .iter()
                .map(|v| {
                    json!({
                        "Name": v["name"], "Served": v["served"].as_bool().unwrap_or(false),
                        "Storage": v["storage"].as_bool().unwrap_or(false),
                        "Deprecated": v["deprecated"].as_bool().unwrap_or(false),
                        "DeprecationWarning": v.get("deprecationWarning").cloned().unwrap_or(Value::Null),
                        "Schema": own(v, "schema", schema),
                        "Subresources": own(v, "subresources", subresources),
                        "AdditionalPrinterColumns": own(v, "additionalPrinterColumns", columns),
                        "SelectableFields": own(v, "selectableFields", fields),
                    })
                })
                .collect(),
        )
    };
    if !unique {
        errors.push(FieldError::invalid(
            "spec.versions",
            &shown(),
            "must contain unique version names",
        ));
    }
    if !versions.is_empty() && storage != 1 {
        errors.push(FieldError::invalid(
            "spec.versions",
            &shown(),
            "must have exactly one version marked as storage version",
        ));
    }
    for key in ["plural", "singular", "kind", "listKind"] {
        if text(spec, &format!("/names/{key}")).is_empty() {
            errors.push(FieldError::required(format!("spec.names.{key}"), ""));
        }
    }
    validate_names(&spec["names"], "spec.names", errors);
    match text(spec, "/conversion/strategy") {
        "" | "None" => {
            if spec
                .pointer("/conversion/webhook")
                .is_some_and(|w| !w.is_null())
            {
                errors.push(FieldError::forbidden(
                    "spec.conversion.webhook",
                    "should not be set when strategy is not set to Webhook",
                ));
            }
        }
        "Webhook" => {
            if preserve_unknown {
                errors.push(FieldError::invalid(
                    "spec.conversion.strategy",
                    &json!("Webhook"),
                    "must be None if spec.preserveUnknownFields is true",
                ));
            }
            if spec.pointer("/conversion/webhook/clientConfig").is_none() {
                errors.push(FieldError::required(
                    "spec.conversion.webhook.clientConfig",
                    "required when strategy is set to Webhook",
                ));
            }
        }
        other => errors.push(FieldError::not_supported(
            "spec.conversion.strategy",
            &json!(other),
            &["None", "Webhook"],
        )),
    }
    validate_names(
        crd.pointer("/status/acceptedNames").unwrap_or(&Value::Null),
        "status.acceptedNames",
        errors,
    );
    validate_stored_versions(crd, errors);
    validate_api_approval(crd, errors);
}

/// `status.storedVersions` holds the storage version, and only versions still in spec.
fn validate_stored_versions(crd: &Value, errors: &mut Vec<FieldError>) {
    let Some(stored) = crd
        .pointer("/status/storedVersions")
        .and_then(Value::as_array)
    else {
        return;
    };
    let path = "status.storedVersions";
    if stored.is_empty() {
        errors.push(FieldError::invalid(
            path,
            &Value::Null,
            "must have at least one stored version",
        ));
        return;
    }
    let versions: Vec<(&str, bool)> = crd
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|v| (text(v, "/name"), v["storage"].as_bool().unwrap_or(false)))
        .collect();
    for (name, is_storage) in &versions {
        if *is_storage && !stored.iter().any(|s| s == name) {
            errors.push(FieldError::invalid(
                path,
                &json!(stored),
                format!("must have the storage version {name}"),
            ));
        }
    }
    for (i, s) in stored.iter().enumerate() {
        let v = s.as_str().unwrap_or_default();
        if !versions.iter().any(|(n, _)| *n == v) {
            errors.push(FieldError::invalid(
                format!("{path}[{i}]"),
                s,
                format!("missing from spec.versions; {v} was previously a storage version, and must remain in spec.versions until a storage migration ensures no data remains persisted in {v} and removes {v} from status.storedVersions"),
            ));
        }
    }
}

const APPROVAL: &str = "api-approved.kubernetes.io";

/// Groups `k8s.io`, `kubernetes.io` and their subdomains need the API approval annotation.
fn validate_api_approval(crd: &Value, errors: &mut Vec<FieldError>) {
    let group = text(crd, "/spec/group");
    let protected = ["k8s.io", "kubernetes.io"]
        .iter()
        .any(|d| group == *d || group.ends_with(&format!(".{d}")));
    if !protected {
        return;
    }
    let annotation = crd
        .pointer("/metadata/annotations")
        .and_then(|a| a.get(APPROVAL))
        .and_then(Value::as_str);
    let path = format!("metadata.annotations[{APPROVAL}]");
    match annotation {
        None => errors.push(FieldError::required(
            path,
            "protected groups must have approval annotation \"api-approved.kubernetes.io\", see https://github.com/kubernetes/enhancements/pull/1111",
        )),
        Some(v) if v.starts_with("unapproved") => {}
        Some(v) if v.starts_with("https://") || v.starts_with("http://") => {}
        Some(v) => errors.push(FieldError::invalid(
            path,
            &json!(v),
            "protected groups must have approval annotation \"api-approved.kubernetes.io\" with either a URL or a reason starting with \"unapproved\", see https://github.com/kubernetes/enhancements/pull/1111",
        )),
    }
}

/// What an update may not change: the group and the plural (they make the name and the
/// storage keys); the storage version list obeys the same rules as on create.
pub fn validate_update(old: &Value, new: &Value, errors: &mut Vec<FieldError>) {
    for (pointer, path) in [
        ("/spec/group", "spec.group"),
        ("/spec/names/plural", "spec.names.plural"),
    ] {
        let (a, b) = (old.pointer(pointer), new.pointer(pointer));
        if a != b {
            errors.push(FieldError::invalid(
                path,
                b.unwrap_or(&Value::Null),
                "field is immutable",
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn crd() -> Value {
        json!({
            "metadata": {"name": "widgets.example.com"},
            "spec": {
                "group": "example.com", "scope": "Namespaced",
                "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "listKind": "WidgetList"},
                "versions": [{"name": "v1", "served": true, "storage": true, "schema": {"openAPIV3Schema": {"type": "object"}}}]
            },
            "status": {"storedVersions": ["v1"]}
        })
    }

    fn messages(crd: &Value) -> Vec<String> {
        let mut errors = Vec::new();
        validate(crd, &mut errors);
        errors
            .iter()
            .map(|e| format!("{}: {}", e.field, e.message))
            .collect()
    }

    #[test]
    fn a_valid_crd_passes() {
        assert!(messages(&crd()).is_empty(), "{:?}", messages(&crd()));
    }

    #[test]
    fn upstream_messages() {
        let mut c = crd();
        c["metadata"]["name"] = json!("widget.example.com");
        c["spec"]["group"] = json!("example");
        c["spec"]["versions"][0]["storage"] = json!(false);
        c["spec"]["versions"][0]["schema"] = Value::Null;
        let m = messages(&c);
        assert!(m.contains(&"metadata.name: Invalid value: \"widget.example.com\": must be spec.names.plural+\".\"+spec.group".to_string()), "{m:?}");
        assert!(m.contains(
            &"spec.group: Invalid value: \"example\": should be a domain with at least one dot"
                .to_string()
        ));
        assert!(m.contains(&"spec.versions[0].schema.openAPIV3Schema: Required value".to_string()));
        assert!(m
            .iter()
            .any(|e| e.ends_with("must have exactly one version marked as storage version")));
        let mut c = crd();
        c["spec"]["group"] = json!("things.k8s.io");
        c["metadata"]["name"] = json!("widgets.things.k8s.io");
        assert!(messages(&c)[0]
            .starts_with("metadata.annotations[api-approved.kubernetes.io]: Required value"));
    }
}
