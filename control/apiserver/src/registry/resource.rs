//! resource.k8s.io/v1, dynamic resource allocation (`pkg/registry/resource`): DeviceClasses,
//! ResourceClaims (with status, which the scheduler writes; the spec never changes after create),
//! ResourceClaimTemplates (likewise immutable), ResourceSlices (what DRA drivers publish; field
//! selectors on node, driver and pool) and DeviceTaintRules (with status; GA and served by
//! default since 1.37). They are served because kube-scheduler and kube-controller-manager 1.37
//! start informers on all of them and wait for those to sync before they do any work.
//!
//! Defaults follow `pkg/apis/resource/v1/defaults.go` (allocation mode and count, toleration
//! operator, a taint's time added). Validation follows `pkg/apis/resource/validation` for what a
//! hand-written manifest gets wrong, with upstream's messages: request, sub-request and device
//! names are DNS labels, class, driver, node and pool names, exactly one of `exactly` and
//! `firstAvailable`, allocation modes and counts, references to requests, opaque configuration,
//! tolerations and taints, a slice's node selection, and the fields that never change. Left out:
//! CEL selectors are not compiled (only an empty expression is refused), size limits, device
//! attributes, capacities and counters, allocation results, condition lists, and the check that
//! admin access is asked for only in namespaces labelled for it.

use std::collections::{HashMap, HashSet};

use crate::error::FieldError;
use crate::names::{
    is_dns1123_label, is_dns1123_subdomain, is_qualified_name, label_value_messages,
    qualified_name_messages, DNS1123_LABEL_MSG, DNS1123_SUBDOMAIN_MSG,
};
use crate::registry::fields::{default, each, immutable};
use crate::registry::Strategy;
use crate::table::prelude::*;
use crate::timestamps::now_rfc3339;

pub struct DeviceClasses;

pub static DEVICE_CLASSES: DeviceClasses = DeviceClasses;

impl Strategy for DeviceClasses {
    fn tracks_generation(&self) -> bool {
        true
    }

    fn validate(&self, object: &Value, errors: &mut Vec<FieldError>) {
        let Some(spec) = present(object.get("spec")) else {
            return;
        };
        validate_selectors("spec.selectors", list(spec, &["selectors"]), errors);
        for (i, config) in list(spec, &["config"]).iter().enumerate() {
            validate_opaque(&format!("spec.config[{i}]"), config, errors);
        }
        if let Some(resource) = opt_text(spec, &["extendedResourceName"]) {
            if !is_extended_resource_name(resource) {
                errors.push(FieldError::invalid(
                    "spec.extendedResourceName",
                    &json!(resource),
                    "must be a valid extended resource name",
                ));
            }
        }
    }

    fn printer(&self) -> &'static Printer {
        &DEVICE_CLASS_PRINTER
    }

    fn delete_returns_object(&self) -> bool {
        true
    }
}

pub struct ResourceClaims;

pub static RESOURCE_CLAIMS: ResourceClaims = ResourceClaims;

impl Strategy for ResourceClaims {
    fn default(&self, object: &mut Value) {
        default_claim_spec(object.get_mut("spec"));
    }

    fn validate(&self, object: &Value, errors: &mut Vec<FieldError>) {
        validate_claim_spec("spec", object.get("spec"), errors);
        validate_claim_status(object, errors);
    }

    fn validate_update(&self, old: &Value, new: &Value, errors: &mut Vec<FieldError>) {
        immutable("spec", old.get("spec"), new.get("spec"), errors);
        // An allocation may be added or removed, never changed in place.
        let allocation = |o: &Value| present(o.pointer("/status/allocation")).cloned();
        if let (Some(before), Some(after)) = (allocation(old), allocation(new)) {
            if before != after {
                errors.push(FieldError::invalid(
                    "status.allocation",
                    &after,
                    "field is immutable",
                ));
            }
        }
    }

    fn printer(&self) -> &'static Printer {
        &RESOURCE_CLAIM_PRINTER
    }

    fn delete_returns_object(&self) -> bool {
        true
    }
}

pub struct ResourceClaimTemplates;

pub static RESOURCE_CLAIM_TEMPLATES: ResourceClaimTemplates = ResourceClaimTemplates;

impl Strategy for ResourceClaimTemplates {
    fn default(&self, object: &mut Value) {
        default_claim_spec(object.pointer_mut("/spec/spec"));
    }

    fn validate(&self, object: &Value, errors: &mut Vec<FieldError>) {
        validate_claim_spec("spec.spec", object.pointer("/spec/spec"), errors);
    }

    fn validate_update(&self, old: &Value, new: &Value, errors: &mut Vec<FieldError>) {
        immutable("spec", old.get("spec"), new.get("spec"), errors);
    }

    fn printer(&self) -> &'static Printer {
        &RESOURCE_CLAIM_TEMPLATE_PRINTER
    }

    fn delete_returns_object(&self) -> bool {
        true
    }
}

pub struct ResourceSlices;

pub static RESOURCE_SLICES: ResourceSlices = ResourceSlices;

impl Strategy for ResourceSlices {
    fn tracks_generation(&self) -> bool {
        true
    }

    fn default(&self, object: &mut Value) {
        let devices = object
            .pointer_mut("/spec/devices")
            .and_then(Value::as_array_mut);
        for device in devices
            .into_iter()
            .flatten()
            .filter_map(Value::as_object_mut)
        {
            for taint in each(device, "taints") {
                default(taint, "timeAdded", json!(now_rfc3339()));
            }
        }
    }

    fn validate(&self, object: &Value, errors: &mut Vec<FieldError>) {
        validate_slice_spec(object.get("spec").unwrap_or(&Value::Null), errors);
    }

    fn validate_update(&self, old: &Value, new: &Value, errors: &mut Vec<FieldError>) {
        for (path, pointer) in [
            ("spec.pool.name", "/spec/pool/name"),
            ("spec.driver", "/spec/driver"),
            ("spec.nodeName", "/spec/nodeName"),
        ] {
            immutable(path, old.pointer(pointer), new.pointer(pointer), errors);
        }
    }

    fn selectable_fields(&self) -> &'static [&'static str] {
        &["spec.nodeName", "spec.driver", "spec.pool.name"]
    }

    fn printer(&self) -> &'static Printer {
        &RESOURCE_SLICE_PRINTER
    }

    fn delete_returns_object(&self) -> bool {
        true
    }
}

pub struct DeviceTaintRules;

pub static DEVICE_TAINT_RULES: DeviceTaintRules = DeviceTaintRules;

impl Strategy for DeviceTaintRules {
    fn tracks_generation(&self) -> bool {
        true
    }

    fn default(&self, object: &mut Value) {
        if let Some(taint) = object
            .pointer_mut("/spec/taint")
            .and_then(Value::as_object_mut)
        {
            default(taint, "timeAdded", json!(now_rfc3339()));
        }
    }

    /// The time added follows the effect: a new effect with the old time gets the current time,
    /// as tolerations count from when the effect began.
    fn prepare_for_update(&self, new: &mut Value, old: &Value) {
        let effect = |o: &Value| o.pointer("/spec/taint/effect").cloned();
        let added = |o: &Value| present(o.pointer("/spec/taint/timeAdded")).cloned();
        if effect(new) != effect(old) && added(new) == added(old) {
            if let Some(taint) = new
                .pointer_mut("/spec/taint")
                .and_then(Value::as_object_mut)
            {
                taint.insert("timeAdded".into(), json!(now_rfc3339()));
            }
        }
    }

    fn validate(&self, object: &Value, errors: &mut Vec<FieldError>) {
        if let Some(selector) = present(object.pointer("/spec/deviceSelector")) {
            if let Some(driver) = opt_text(selector, &["driver"]) {
                driver_name("spec.deviceSelector.driver", driver, errors);
            }
            if let Some(pool) = opt_text(selector, &["pool"]) {
                pool_name("spec.deviceSelector.pool", pool, errors);
            }
            if let Some(device) = opt_text(selector, &["device"]) {
                dns_label("spec.deviceSelector.device", device, errors);
            }
        }
        let taint = object.pointer("/spec/taint").unwrap_or(&Value::Null);
        validate_taint("spec.taint", taint, errors);
    }

    fn printer(&self) -> &'static Printer {
        &DEVICE_TAINT_RULE_PRINTER
    }

    fn delete_returns_object(&self) -> bool {
        true
    }
}

// ---------------------------------------------------------------- defaults

/// A claim's spec (a ResourceClaim's `spec`, a template's `spec.spec`): allocation mode
/// ExactCount with one device, tolerations matching with Equal.
fn default_claim_spec(spec: Option<&mut Value>) {
    let requests = spec
        .and_then(|s| s.pointer_mut("/devices/requests"))
        .and_then(Value::as_array_mut);
    for request in requests
        .into_iter()
        .flatten()
        .filter_map(Value::as_object_mut)
    {
        if let Some(exact) = request.get_mut("exactly").and_then(Value::as_object_mut) {
            default_device_request(exact, true);
        }
        if let Some(alternatives) = request
            .get_mut("firstAvailable")
            .and_then(Value::as_array_mut)
        {
            let n = alternatives.len();
            for (j, sub) in alternatives.iter_mut().enumerate() {
                if let Some(sub) = sub.as_object_mut() {
                    // The last of several alternatives may ask for no devices at all.
                    default_device_request(sub, n == 1 || j + 1 < n);
                }
            }
        }
    }
}

fn default_device_request(request: &mut Map<String, Value>, count_one: bool) {
    default(request, "allocationMode", json!("ExactCount"));
    let exact_count = request.get("allocationMode") == Some(&json!("ExactCount"));
    let count = request.get("count").and_then(Value::as_i64).unwrap_or(0);
    if count_one && exact_count && count == 0 {
        request.insert("count".into(), json!(1));
    }
    for toleration in each(request, "tolerations") {
        default(toleration, "operator", json!("Equal"));
    }
}

// ---------------------------------------------------------------- validation

const REQUEST_REF_MSG: &str = "must be the name of a request in the claim or the name of a request and a subrequest separated by '/'";
const TAINT_EFFECTS: &[&str] = &["NoExecute", "NoSchedule", "None"];

/// Set and not null.
fn present(v: Option<&Value>) -> Option<&Value> {
    v.filter(|v| !v.is_null())
}

fn too_long(path: &str, max: usize) -> FieldError {
    FieldError {
        field: path.into(),
        reason: "FieldValueTooLong",
        message: format!("Too long: may not be more than {max} bytes"),
    }
}

/// `IsDNS1123Subdomain`'s messages.
fn subdomain_messages(value: &str) -> Option<&'static str> {
    if value.len() > 253 {
        Some("must be no more than 253 characters")
    } else if !is_dns1123_subdomain(value) {
        Some(DNS1123_SUBDOMAIN_MSG)
    } else {
        None
    }
}

/// `ValidateDNS1123Label`: request, sub-request and device names.
fn dns_label(path: &str, value: &str, errors: &mut Vec<FieldError>) {
    let message = if value.len() > 63 {
        "must be no more than 63 characters"
    } else if !is_dns1123_label(value) {
        DNS1123_LABEL_MSG
    } else {
        return;
    };
    errors.push(FieldError::invalid(path, &json!(value), message));
}

/// `ValidateDNS1123Subdomain`: class and node names.
fn dns_subdomain(path: &str, value: &str, errors: &mut Vec<FieldError>) {
    if let Some(message) = subdomain_messages(value) {
        errors.push(FieldError::invalid(path, &json!(value), message));
    }
}

/// `ValidateCSIDriverName`: DRA drivers are named like CSI drivers.
fn driver_name(path: &str, value: &str, errors: &mut Vec<FieldError>) {
    if value.is_empty() {
        errors.push(FieldError::required(path, ""));
    }
    if value.len() > 63 {
        errors.push(too_long(path, 63));
    }
    if let Some(message) = subdomain_messages(&value.to_lowercase()) {
        errors.push(FieldError::invalid(path, &json!(value), message));
    }
}

/// A pool name: DNS subdomains separated by slashes, at most 253 bytes.
fn pool_name(path: &str, value: &str, errors: &mut Vec<FieldError>) {
    if value.is_empty() {
        errors.push(FieldError::required(path, ""));
        return;
    }
    if value.len() > 253 {
        errors.push(too_long(path, 253));
    }
    for part in value.split('/') {
        dns_subdomain(path, part, errors);
    }
}

fn label_name(path: &str, value: &str, errors: &mut Vec<FieldError>) {
    for message in qualified_name_messages(value) {
        errors.push(FieldError::invalid(path, &json!(value), message));
    }
}

fn label_value(path: &str, value: &str, errors: &mut Vec<FieldError>) {
    for message in label_value_messages(value) {
        errors.push(FieldError::invalid(path, &json!(value), message));
    }
}

/// `IsExtendedResourceName`: a domain-prefixed name outside kubernetes.io that still is a
/// qualified name as a quota's `requests.<name>`.
fn is_extended_resource_name(name: &str) -> bool {
    let native = !name.contains('/') || name.contains("kubernetes.io/");
    !native && !name.starts_with("requests.") && is_qualified_name(&format!("requests.{name}"))
}

fn validate_selectors(path: &str, selectors: &[Value], errors: &mut Vec<FieldError>) {
    for (i, selector) in selectors.iter().enumerate() {
        let cel = format!("{path}[{i}].cel");
        match present(selector.get("cel")) {
            None => errors.push(FieldError::required(cel, "")),
            Some(c) if text(c, &["expression"]).is_empty() => {
                errors.push(FieldError::required(format!("{cel}.expression"), ""))
            }
            Some(_) => {}
        }
    }
}

/// A claim's or class's configuration entry: opaque parameters for a driver.
fn validate_opaque(path: &str, config: &Value, errors: &mut Vec<FieldError>) {
    let path = format!("{path}.opaque");
    let Some(opaque) = present(config.get("opaque")) else {
        errors.push(FieldError::required(path, ""));
        return;
    };
    driver_name(&format!("{path}.driver"), text(opaque, &["driver"]), errors);
    let parameters = format!("{path}.parameters");
    match opaque.get("parameters") {
        None | Some(Value::Null) => errors.push(FieldError::required(parameters, "")),
        Some(Value::Object(_)) => {}
        Some(_) => errors.push(FieldError::invalid(
            parameters,
            &json!("<value omitted>"),
            "must be a valid JSON object",
        )),
    }
}

fn validate_taint(path: &str, taint: &Value, errors: &mut Vec<FieldError>) {
    label_name(&format!("{path}.key"), text(taint, &["key"]), errors);
    let value = text(taint, &["value"]);
    if !value.is_empty() {
        label_value(&format!("{path}.value"), value, errors);
    }
    match text(taint, &["effect"]) {
        "" => errors.push(FieldError::required(format!("{path}.effect"), "")),
        effect if !TAINT_EFFECTS.contains(&effect) => errors.push(FieldError::not_supported(
            format!("{path}.effect"),
            &json!(effect),
            TAINT_EFFECTS,
        )),
        _ => {}
    }
}

fn validate_toleration(path: &str, toleration: &Value, errors: &mut Vec<FieldError>) {
    let key = text(toleration, &["key"]);
    if !key.is_empty() {
        label_name(&format!("{path}.key"), key, errors);
    }
    let value = text(toleration, &["value"]);
    match text(toleration, &["operator"]) {
        "Exists" if !value.is_empty() => errors.push(FieldError::invalid(
            format!("{path}.value"),
            &json!(value),
            "must be empty for operator `Exists`",
        )),
        "Exists" => {}
        "Equal" => label_value(&format!("{path}.value"), value, errors),
        "" => errors.push(FieldError::required(format!("{path}.operator"), "")),
        operator => errors.push(FieldError::not_supported(
            format!("{path}.operator"),
            &json!(operator),
            &["Equal", "Exists"],
        )),
    }
    let effect = text(toleration, &["effect"]);
    if !effect.is_empty() && !TAINT_EFFECTS.contains(&effect) {
        errors.push(FieldError::not_supported(
            format!("{path}.effect"),
            &json!(effect),
            TAINT_EFFECTS,
        ));
    }
}

/// A claim's request names, each with the names of its alternatives (None: no `firstAvailable`).
type RequestNames<'a> = HashMap<&'a str, Option<HashSet<&'a str>>>;

fn request_names(devices: &Value) -> RequestNames<'_> {
    list(devices, &["requests"])
        .iter()
        .map(|request| {
            let alternatives = list(request, &["firstAvailable"]);
            let subs = (!alternatives.is_empty())
                .then(|| alternatives.iter().map(|s| text(s, &["name"])).collect());
            (text(request, &["name"]), subs)
        })
        .collect()
}

/// Constraints and configuration name the requests they apply to: `request` or
/// `request/alternative`, each at most once.
fn validate_request_refs(
    path: &str,
    refs: &[Value],
    names: &RequestNames,
    errors: &mut Vec<FieldError>,
) {
    let mut seen = HashSet::new();
    for (i, reference) in refs.iter().enumerate() {
        let item = format!("{path}[{i}]");
        let reference = reference.as_str().unwrap_or_default();
        let segments: Vec<&str> = reference.split('/').collect();
        if segments.len() > 2 {
            errors.push(FieldError::invalid(
                &item,
                &json!(reference),
                REQUEST_REF_MSG,
            ));
        } else {
            for segment in &segments {
                dns_label(&item, segment, errors);
            }
            let known = match segments[..] {
                [request] => names.contains_key(request),
                [request, sub] => names
                    .get(request)
                    .and_then(Option::as_ref)
                    .is_some_and(|subs| subs.contains(sub)),
                _ => false,
            };
            if !known {
                errors.push(FieldError::invalid(
                    &item,
                    &json!(reference),
                    REQUEST_REF_MSG,
                ));
            }
        }
        if !seen.insert(reference) {
            errors.push(FieldError::duplicate(item, &json!(reference)));
        }
    }
}

/// An `exactly` request or one `firstAvailable` alternative. `zero_ok`: the last of several
/// alternatives may ask for no devices.
fn validate_device_request(
    path: &str,
    request: &Value,
    zero_ok: bool,
    errors: &mut Vec<FieldError>,
) {
    let class = text(request, &["deviceClassName"]);
    if class.is_empty() {
        errors.push(FieldError::required(format!("{path}.deviceClassName"), ""));
    } else {
        dns_subdomain(&format!("{path}.deviceClassName"), class, errors);
    }
    validate_selectors(
        &format!("{path}.selectors"),
        list(request, &["selectors"]),
        errors,
    );
    let count = opt_integer(request, &["count"]).unwrap_or(0);
    match text(request, &["allocationMode"]) {
        "All" if count != 0 => errors.push(FieldError::invalid(
            format!("{path}.count"),
            &json!(count),
            "must not be specified when allocationMode is 'All'",
        )),
        "ExactCount" if count < 0 || (count == 0 && !zero_ok) => errors.push(FieldError::invalid(
            format!("{path}.count"),
            &json!(count),
            "must be greater than zero",
        )),
        "All" | "ExactCount" => {}
        mode => errors.push(FieldError::not_supported(
            format!("{path}.allocationMode"),
            &json!(mode),
            &["All", "ExactCount"],
        )),
    }
    for (k, toleration) in list(request, &["tolerations"]).iter().enumerate() {
        validate_toleration(&format!("{path}.tolerations[{k}]"), toleration, errors);
    }
}

/// A claim's spec at `path` (`spec`, or a template's `spec.spec`).
fn validate_claim_spec(path: &str, spec: Option<&Value>, errors: &mut Vec<FieldError>) {
    let Some(devices) = present(spec.and_then(|s| s.get("devices"))) else {
        return;
    };
    let path = format!("{path}.devices");
    let names = request_names(devices);
    let mut seen = HashSet::new();
    for (i, request) in list(devices, &["requests"]).iter().enumerate() {
        let item = format!("{path}.requests[{i}]");
        let request_name = text(request, &["name"]);
        dns_label(&format!("{item}.name"), request_name, errors);
        let exactly = present(request.get("exactly"));
        let alternatives = list(request, &["firstAvailable"]);
        match (exactly, alternatives.is_empty()) {
            (None, true) => errors.push(FieldError::required(
                &item,
                "exactly one of `exactly` or `firstAvailable` is required",
            )),
            (Some(_), false) => errors.push(FieldError::invalid(
                &item,
                &Value::Null,
                "exactly one of `exactly` or `firstAvailable` is required, but multiple fields are set",
            )),
            (Some(exact), true) => {
                validate_device_request(&format!("{item}.exactly"), exact, false, errors)
            }
            (None, false) => {
                let mut sub_seen = HashSet::new();
                for (j, sub) in alternatives.iter().enumerate() {
                    let sub_item = format!("{item}.firstAvailable[{j}]");
                    let sub_name = text(sub, &["name"]);
                    dns_label(&format!("{sub_item}.name"), sub_name, errors);
                    let zero_ok = alternatives.len() > 1 && j + 1 == alternatives.len();
                    validate_device_request(&sub_item, sub, zero_ok, errors);
                    if !sub_seen.insert(sub_name) {
                        errors.push(FieldError::duplicate(sub_item, &json!(sub_name)));
                    }
                }
            }
        }
        if !seen.insert(request_name) {
            errors.push(FieldError::duplicate(item, &json!(request_name)));
        }
    }
    for (i, constraint) in list(devices, &["constraints"]).iter().enumerate() {
        let item = format!("{path}.constraints[{i}]");
        validate_request_refs(
            &format!("{item}.requests"),
            list(constraint, &["requests"]),
            &names,
            errors,
        );
        if !is_set(constraint, &["matchAttribute"]) && !is_set(constraint, &["distinctAttribute"]) {
            // Upstream's wording, with DRAConsumableCapacity on as it is by default.
            errors.push(FieldError::required(
                item,
                "exactly one of \"matchAttribute\" or \"distinctAttribute\" is required, but multiple fields are set",
            ));
        }
    }
    for (i, config) in list(devices, &["config"]).iter().enumerate() {
        let item = format!("{path}.config[{i}]");
        validate_request_refs(
            &format!("{item}.requests"),
            list(config, &["requests"]),
            &names,
            errors,
        );
        validate_opaque(&item, config, errors);
    }
}

/// Who holds the claim: complete references, each consumer once, only once it is allocated.
fn validate_claim_status(claim: &Value, errors: &mut Vec<FieldError>) {
    let reserved = list(claim, &["status", "reservedFor"]);
    let mut uids = HashSet::new();
    for (i, consumer) in reserved.iter().enumerate() {
        let item = format!("status.reservedFor[{i}]");
        for key in ["resource", "name", "uid"] {
            if text(consumer, &[key]).is_empty() {
                errors.push(FieldError::required(format!("{item}.{key}"), ""));
            }
        }
        let uid = text(consumer, &["uid"]);
        if !uids.insert(uid) {
            errors.push(FieldError::duplicate(item, &json!(uid)));
        }
    }
    if !reserved.is_empty() && !is_set(claim, &["status", "allocation"]) {
        errors.push(FieldError::forbidden(
            "status.reservedFor",
            "may not be specified when `allocated` is not set",
        ));
    }
}

fn validate_slice_spec(spec: &Value, errors: &mut Vec<FieldError>) {
    driver_name("spec.driver", text(spec, &["driver"]), errors);
    pool_name("spec.pool.name", text(spec, &["pool", "name"]), errors);
    let slice_count = integer(spec, &["pool", "resourceSliceCount"]);
    if slice_count <= 0 {
        errors.push(FieldError::invalid(
            "spec.pool.resourceSliceCount",
            &json!(slice_count),
            "must be greater than zero",
        ));
    }
    let generation = integer(spec, &["pool", "generation"]);
    if generation < 0 {
        errors.push(FieldError::invalid(
            "spec.pool.generation",
            &json!(generation),
            "must be greater than or equal to zero",
        ));
    }

    // Where the pool's devices are: exactly one way of saying it.
    let mut set = Vec::new();
    if let Some(node) = opt_text(spec, &["nodeName"]) {
        if node.is_empty() {
            errors.push(FieldError::invalid(
                "spec.nodeName",
                &json!(node),
                "must be either unset or set to a non-empty string",
            ));
        } else {
            set.push("`nodeName`");
            dns_subdomain("spec.nodeName", node, errors);
        }
    }
    if let Some(selector) = present(spec.get("nodeSelector")) {
        set.push("`nodeSelector`");
        let terms = list(selector, &["nodeSelectorTerms"]);
        if terms.len() != 1 {
            errors.push(FieldError::invalid(
                "spec.nodeSelector.nodeSelectorTerms",
                &json!(terms),
                "must have exactly one node selector term",
            ));
        }
    }
    for (key, shown) in [
        ("allNodes", "`allNodes`"),
        ("perDeviceNodeSelection", "`perDeviceNodeSelection`"),
    ] {
        match opt_boolean(spec, &[key]) {
            Some(true) => set.push(shown),
            Some(false) => errors.push(FieldError::invalid(
                format!("spec.{key}"),
                &json!(false),
                "must be either unset or set to true",
            )),
            None => {}
        }
    }
    const WHERE: &str = "exactly one of `nodeName`, `nodeSelector`, `allNodes`, `perDeviceNodeSelection` is required";
    match set.len() {
        0 => errors.push(FieldError::required("spec", WHERE)),
        1 => {}
        _ => errors.push(FieldError::invalid(
            "spec",
            &json!(format!("{{{}}}", set.join(", "))),
            format!("{WHERE}, but multiple fields are set"),
        )),
    }

    if present(spec.get("sharedCounters")).is_some() && present(spec.get("devices")).is_some() {
        errors.push(FieldError::invalid(
            "spec",
            &json!(""),
            "only one of `sharedCounters` or `devices` is allowed",
        ));
    }

    let per_device = opt_boolean(spec, &["perDeviceNodeSelection"]) == Some(true);
    let mut seen = HashSet::new();
    for (i, device) in list(spec, &["devices"]).iter().enumerate() {
        let item = format!("spec.devices[{i}]");
        let device_name = text(device, &["name"]);
        dns_label(&format!("{item}.name"), device_name, errors);
        for (k, taint) in list(device, &["taints"]).iter().enumerate() {
            validate_taint(&format!("{item}.taints[{k}]"), taint, errors);
        }
        validate_device_nodes(&item, device, per_device, errors);
        if !seen.insert(device_name) {
            errors.push(FieldError::duplicate(item, &json!(device_name)));
        }
    }
}

/// With per-device node selection every device says where it is, in exactly one way; without it
/// none may.
fn validate_device_nodes(
    path: &str,
    device: &Value,
    per_device: bool,
    errors: &mut Vec<FieldError>,
) {
    let node = opt_text(device, &["nodeName"]);
    let selector = present(device.get("nodeSelector"));
    let all = opt_boolean(device, &["allNodes"]);
    if !per_device {
        if node.is_some() || selector.is_some() || all.is_some() {
            errors.push(FieldError::invalid(
                path,
                &Value::Null,
                "`nodeName`, `nodeSelector` and `allNodes` can only be set if `perDeviceNodeSelection` is set to true in the ResourceSlice spec",
            ));
        }
        return;
    }
    let mut set = Vec::new();
    match node {
        Some("") => errors.push(FieldError::invalid(
            format!("{path}.nodeName"),
            &json!(""),
            "must not be empty",
        )),
        Some(node) => {
            set.push("`nodeName`");
            dns_subdomain(&format!("{path}.nodeName"), node, errors);
        }
        None => {}
    }
    if selector.is_some() {
        set.push("`nodeSelector`");
    }
    match all {
        Some(true) => set.push("`allNodes`"),
        Some(false) => errors.push(FieldError::invalid(
            format!("{path}.allNodes"),
            &json!(false),
            "must be either unset or set to true",
        )),
        None => {}
    }
    const WHERE: &str = "exactly one of `nodeName`, `nodeSelector`, or `allNodes` is required when `perDeviceNodeSelection` is set to true in the ResourceSlice spec";
    match set.len() {
        0 => errors.push(FieldError::required(path, WHERE)),
        1 => {}
        _ => errors.push(FieldError::invalid(
            path,
            &json!(format!("{{{}}}", set.join(", "))),
            WHERE,
        )),
    }
}

// ---------------------------------------------------------------- table

pub const DEVICE_CLASS_COLUMNS: &[Column] = &[NAME, AGE];

pub static DEVICE_CLASS_PRINTER: Printer = Printer::new(DEVICE_CLASS_COLUMNS, name_and_age);

pub const RESOURCE_CLAIM_TEMPLATE_COLUMNS: &[Column] = &[NAME, AGE];

pub static RESOURCE_CLAIM_TEMPLATE_PRINTER: Printer =
    Printer::new(RESOURCE_CLAIM_TEMPLATE_COLUMNS, name_and_age);

fn name_and_age(obj: &Value, now: Timestamp) -> Vec<Value> {
    vec![name(obj), age(obj, now).into()]
}

pub const RESOURCE_CLAIM_COLUMNS: &[Column] = &[
    NAME,
    col(
        "State",
        "string",
        "A summary of the current state (allocated, pending, reserved, etc.).",
    ),
    AGE,
];

pub static RESOURCE_CLAIM_PRINTER: Printer =
    Printer::new(RESOURCE_CLAIM_COLUMNS, resource_claim_cells);

fn resource_claim_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    vec![name(obj), claim_state(obj).into(), age(obj, now).into()]
}

/// Upstream's summary: `deleted` while being deleted, then `pending` until allocated, or
/// `allocated` and `reserved` once pods use it.
fn claim_state(obj: &Value) -> String {
    let deleted = is_set(obj, &["metadata", "deletionTimestamp"]);
    let mut states = Vec::new();
    if deleted {
        states.push("deleted");
    }
    if is_set(obj, &["status", "allocation"]) {
        states.push("allocated");
        if !list(obj, &["status", "reservedFor"]).is_empty() {
            states.push("reserved");
        }
    } else if !deleted {
        states.push("pending");
    }
    states.join(",")
}

pub const RESOURCE_SLICE_COLUMNS: &[Column] = &[
    NAME,
    col("Node", "string", "NodeName identifies the node which provides the resources in this pool. A field selector can be used to list only ResourceSlice objects belonging to a certain node.\n\nThis field can be used to limit access from nodes to ResourceSlices with the same node name. It also indicates to autoscalers that adding new nodes of the same type as some old node might also make new resources available.\n\nExactly one of NodeName, NodeSelector, AllNodes, and PerDeviceNodeSelection must be set. This field is immutable."),
    col("Driver", "string", "Driver identifies the DRA driver providing the capacity information. A field selector can be used to list only ResourceSlice objects with a certain driver name.\n\nMust be a DNS subdomain and should end with a DNS domain owned by the vendor of the driver. It should use only lower case characters. This field is immutable."),
    col("Pool", "string", "Name is used to identify the pool. For node-local devices, this is often the node name, but this is not required. A field selector can be used to list only ResourceSlice objects belonging to a certain pool.\n\nIt must not be longer than 253 characters and must consist of one or more DNS sub-domains separated by slashes. This field is immutable."),
    AGE,
];

pub static RESOURCE_SLICE_PRINTER: Printer =
    Printer::new(RESOURCE_SLICE_COLUMNS, resource_slice_cells);

fn resource_slice_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    vec![
        name(obj),
        text(obj, &["spec", "nodeName"]).into(),
        text(obj, &["spec", "driver"]).into(),
        text(obj, &["spec", "pool", "name"]).into(),
        age(obj, now).into(),
    ]
}

/// The selector is left out, as upstream does: it can be long (CEL) and is often empty; the
/// taint says more.
pub const DEVICE_TAINT_RULE_COLUMNS: &[Column] = &[
    NAME,
    col("Key", "string", "The taint key to be applied to a device. Must be a label name."),
    col("Value", "string", "The taint value corresponding to the taint key. Must be a label value."),
    col("Effect", "string", "The effect of the taint on claims that do not tolerate the taint and through such claims on the pods using them.\n\nValid effects are None, NoSchedule and NoExecute. PreferNoSchedule as used for nodes is not valid here. More effects may get added in the future. Consumers must treat unknown effects like None."),
    col("TimeAdded", "string", "TimeAdded represents the time at which the taint was added or (only in a DeviceTaintRule) the effect was modified. Added automatically during create or update if not set.\n\nIn addition, in a DeviceTaintRule a value provided during an update gets replaced with the current time if the provided value is the same as the old one and the new effect is different. Changing the key and/or value while keeping the effect unchanged is possible and does not update the time stamp because the eviction which uses it is either already started (NoExecute) or not started yet (NoEffect, NoSchedule)."),
    AGE,
];

pub static DEVICE_TAINT_RULE_PRINTER: Printer =
    Printer::new(DEVICE_TAINT_RULE_COLUMNS, device_taint_rule_cells);

fn device_taint_rule_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    let added = timestamp(obj, &["spec", "taint", "timeAdded"])
        .map(|t| since(Some(t), now))
        .unwrap_or_default();
    vec![
        name(obj),
        text(obj, &["spec", "taint", "key"]).into(),
        text(obj, &["spec", "taint", "value"]).into(),
        text(obj, &["spec", "taint", "effect"]).into(),
        added.into(),
        age(obj, now).into(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry;

    fn now() -> Timestamp {
        "2026-01-10T12:00:00Z".parse().unwrap()
    }

    fn cells(printer: &Printer, obj: &Value) -> Vec<Value> {
        (printer.cells)(obj, now())
    }

    fn errors(strategy: &dyn Strategy, mut object: Value) -> Vec<String> {
        strategy.default(&mut object);
        registry::validate(strategy, &object)
            .iter()
            .map(|e| format!("{}: {}", e.field, e.message))
            .collect()
    }

    fn claim(spec: Value) -> Value {
        json!({"metadata": {"name": "gpu", "namespace": "default", "creationTimestamp": "2026-01-10T11:59:00Z"}, "spec": spec})
    }

    #[test]
    fn claim_defaults_and_state() {
        let mut c = claim(json!({"devices": {"requests": [
            {"name": "gpu", "exactly": {"deviceClassName": "gpu.example.com", "tolerations": [{"key": "k", "value": "v"}]}},
            {"name": "any", "firstAvailable": [
                {"name": "big", "deviceClassName": "big.example.com"},
                {"name": "none", "deviceClassName": "small.example.com"}]}]}}));
        RESOURCE_CLAIMS.default(&mut c);
        let exact = &c["spec"]["devices"]["requests"][0]["exactly"];
        assert_eq!(exact["allocationMode"], "ExactCount");
        assert_eq!(exact["count"], 1);
        assert_eq!(exact["tolerations"][0]["operator"], "Equal");
        let alternatives = &c["spec"]["devices"]["requests"][1]["firstAvailable"];
        assert_eq!(alternatives[0]["count"], 1);
        assert_eq!(alternatives[1]["allocationMode"], "ExactCount");
        assert!(
            alternatives[1].get("count").is_none(),
            "the last may ask for none"
        );
        assert!(registry::validate(&RESOURCE_CLAIMS, &c).is_empty());

        assert_eq!(
            RESOURCE_CLAIM_COLUMNS
                .iter()
                .map(|c| c.name)
                .collect::<Vec<_>>(),
            ["Name", "State", "Age"]
        );
        assert_eq!(
            cells(&RESOURCE_CLAIM_PRINTER, &c),
            [json!("gpu"), json!("pending"), json!("60s")]
        );
        c["status"] = json!({"allocation": {"devices": {"results": []}}});
        assert_eq!(cells(&RESOURCE_CLAIM_PRINTER, &c)[1], json!("allocated"));
        c["status"]["reservedFor"] = json!([{"resource": "pods", "name": "p", "uid": "u"}]);
        assert_eq!(
            cells(&RESOURCE_CLAIM_PRINTER, &c)[1],
            json!("allocated,reserved")
        );
        c["metadata"]["deletionTimestamp"] = json!("2026-01-10T12:00:00Z");
        assert_eq!(
            cells(&RESOURCE_CLAIM_PRINTER, &c)[1],
            json!("deleted,allocated,reserved")
        );
        c["status"] = Value::Null;
        assert_eq!(cells(&RESOURCE_CLAIM_PRINTER, &c)[1], json!("deleted"));
    }

    #[test]
    fn claim_validation() {
        let bad = claim(json!({"devices": {
            "requests": [
                {"name": "GPU_0", "exactly": {"deviceClassName": "gpu.example.com"}},
                {"name": "both", "exactly": {"deviceClassName": "a"}, "firstAvailable": [{"name": "x", "deviceClassName": "b"}]},
                {"name": "neither"},
                {"name": "all", "exactly": {"deviceClassName": "a", "allocationMode": "All", "count": 2}},
                {"name": "odd", "exactly": {"deviceClassName": "a", "allocationMode": "Some"}},
                {"name": "tol", "exactly": {"deviceClassName": "a", "tolerations": [{"key": "k", "operator": "Exists", "value": "v", "effect": "Evict"}]}},
                {"name": "all", "exactly": {"deviceClassName": "a"}}],
            "constraints": [{"requests": ["missing"]}],
            "config": [{"requests": ["all"], "opaque": {"driver": "", "parameters": [1]}}]}}));
        let errs = errors(&RESOURCE_CLAIMS, bad);
        for want in [
            format!("spec.devices.requests[0].name: Invalid value: \"GPU_0\": {DNS1123_LABEL_MSG}"),
            "spec.devices.requests[1]: Invalid value: null: exactly one of `exactly` or `firstAvailable` is required, but multiple fields are set".to_string(),
            "spec.devices.requests[2]: Required value: exactly one of `exactly` or `firstAvailable` is required".to_string(),
            "spec.devices.requests[3].exactly.count: Invalid value: 2: must not be specified when allocationMode is 'All'".to_string(),
            "spec.devices.requests[4].exactly.allocationMode: Unsupported value: \"Some\": supported values: \"All\", \"ExactCount\"".to_string(),
            "spec.devices.requests[5].exactly.tolerations[0].value: Invalid value: \"v\": must be empty for operator `Exists`".to_string(),
            "spec.devices.requests[5].exactly.tolerations[0].effect: Unsupported value: \"Evict\": supported values: \"NoExecute\", \"NoSchedule\", \"None\"".to_string(),
            "spec.devices.requests[6]: Duplicate value: \"all\"".to_string(),
            format!("spec.devices.constraints[0].requests[0]: Invalid value: \"missing\": {REQUEST_REF_MSG}"),
            "spec.devices.constraints[0]: Required value: exactly one of \"matchAttribute\" or \"distinctAttribute\" is required, but multiple fields are set".to_string(),
            "spec.devices.config[0].opaque.driver: Required value".to_string(),
            "spec.devices.config[0].opaque.parameters: Invalid value: \"<value omitted>\": must be a valid JSON object".to_string(),
        ] {
            assert!(errs.contains(&want), "{want}\nnot in {errs:#?}");
        }

        let old = claim(
            json!({"devices": {"requests": [{"name": "gpu", "exactly": {"deviceClassName": "gpu.example.com"}}]}}),
        );
        let mut new = old.clone();
        new["spec"]["devices"]["requests"][0]["exactly"]["deviceClassName"] =
            json!("other.example.com");
        let mut errs = Vec::new();
        RESOURCE_CLAIMS.validate_update(&old, &new, &mut errs);
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].field, "spec");
        assert!(errs[0].message.starts_with("Invalid value: {\"devices\""));
        assert!(errs[0].message.ends_with(": field is immutable"));

        let mut held = old.clone();
        held["status"] = json!({"reservedFor": [{"resource": "pods", "name": "p", "uid": "u"}, {"resource": "pods", "name": "q", "uid": "u"}]});
        let errs = errors(&RESOURCE_CLAIMS, held);
        assert!(
            errs.contains(
                &"status.reservedFor: Forbidden: may not be specified when `allocated` is not set"
                    .to_string()
            ),
            "{errs:?}"
        );
        assert!(
            errs.contains(&"status.reservedFor[1]: Duplicate value: \"u\"".to_string()),
            "{errs:?}"
        );

        let mut allocated = old.clone();
        allocated["status"] = json!({"allocation": {"devices": {"results": [{"request": "gpu", "driver": "gpu.example.com", "pool": "node-1", "device": "gpu-0"}]}}});
        let mut moved = allocated.clone();
        moved["status"]["allocation"]["devices"]["results"][0]["device"] = json!("gpu-1");
        let mut errs = Vec::new();
        RESOURCE_CLAIMS.validate_update(&allocated, &moved, &mut errs);
        assert_eq!(errs[0].field, "status.allocation");
        let mut errs = Vec::new();
        RESOURCE_CLAIMS.validate_update(&allocated, &old, &mut errs);
        assert!(errs.is_empty(), "deallocation is allowed");
    }

    #[test]
    fn templates_validate_and_freeze_the_claim_spec() {
        let t = json!({"metadata": {"name": "t", "namespace": "default"}, "spec": {"spec": {"devices": {"requests": [{"name": "Bad"}]}}}});
        let errs = errors(&RESOURCE_CLAIM_TEMPLATES, t.clone());
        assert!(
            errs.contains(&format!(
                "spec.spec.devices.requests[0].name: Invalid value: \"Bad\": {DNS1123_LABEL_MSG}"
            )),
            "{errs:?}"
        );
        assert!(errs.contains(&"spec.spec.devices.requests[0]: Required value: exactly one of `exactly` or `firstAvailable` is required".to_string()), "{errs:?}");
        let mut changed = t.clone();
        changed["spec"]["metadata"] = json!({"labels": {"a": "b"}});
        let mut errs = Vec::new();
        RESOURCE_CLAIM_TEMPLATES.validate_update(&t, &changed, &mut errs);
        assert!(errs[0].message.ends_with("field is immutable"));
        assert_eq!(
            cells(&RESOURCE_CLAIM_TEMPLATE_PRINTER, &t),
            [json!("t"), json!("<unknown>")]
        );
    }

    fn slice(spec: Value) -> Value {
        json!({"metadata": {"name": "node-1-gpu", "creationTimestamp": "2026-01-10T11:00:00Z"}, "spec": spec})
    }

    #[test]
    fn slices() {
        let mut s = slice(json!({"driver": "gpu.example.com", "nodeName": "node-1",
            "pool": {"name": "node-1", "generation": 0, "resourceSliceCount": 1},
            "devices": [{"name": "gpu-0", "taints": [{"key": "example.com/unhealthy", "effect": "NoSchedule"}]}]}));
        RESOURCE_SLICES.default(&mut s);
        assert!(s["spec"]["devices"][0]["taints"][0]["timeAdded"].is_string());
        assert!(registry::validate(&RESOURCE_SLICES, &s).is_empty());
        assert_eq!(
            RESOURCE_SLICE_COLUMNS
                .iter()
                .map(|c| c.name)
                .collect::<Vec<_>>(),
            ["Name", "Node", "Driver", "Pool", "Age"]
        );
        assert_eq!(
            cells(&RESOURCE_SLICE_PRINTER, &s),
            [
                json!("node-1-gpu"),
                json!("node-1"),
                json!("gpu.example.com"),
                json!("node-1"),
                json!("60m")
            ]
        );
        let selects = |query: &str, object: &Value| {
            crate::selectors::FieldSelector::parse(query, RESOURCE_SLICES.selectable_fields())
                .unwrap()
                .matches(object)
        };
        let all = "spec.nodeName=node-1,spec.driver=gpu.example.com,spec.pool.name=node-1";
        assert!(selects(all, &s));
        assert!(!selects("spec.nodeName=node-2", &s));
        let shared = slice(
            json!({"driver": "gpu.example.com", "allNodes": true, "pool": {"name": "shared"}}),
        );
        assert!(selects("spec.nodeName=", &shared), "no node reads as empty");

        let errs = errors(
            &RESOURCE_SLICES,
            slice(
                json!({"driver": "Bad_Driver", "nodeName": "node-1", "allNodes": true,
            "pool": {"name": "", "generation": -1, "resourceSliceCount": 0},
            "devices": [{"name": "gpu-0", "nodeName": "node-1"}, {"name": "gpu-0", "taints": [{"key": "", "effect": "PreferNoSchedule"}]}]}),
            ),
        );
        for want in [
            format!("spec.driver: Invalid value: \"Bad_Driver\": {DNS1123_SUBDOMAIN_MSG}"),
            "spec.pool.name: Required value".to_string(),
            "spec.pool.resourceSliceCount: Invalid value: 0: must be greater than zero".to_string(),
            "spec.pool.generation: Invalid value: -1: must be greater than or equal to zero".to_string(),
            "spec: Invalid value: \"{`nodeName`, `allNodes`}\": exactly one of `nodeName`, `nodeSelector`, `allNodes`, `perDeviceNodeSelection` is required, but multiple fields are set".to_string(),
            "spec.devices[0]: Invalid value: null: `nodeName`, `nodeSelector` and `allNodes` can only be set if `perDeviceNodeSelection` is set to true in the ResourceSlice spec".to_string(),
            "spec.devices[1].taints[0].key: Invalid value: \"\": name part must be non-empty".to_string(),
            "spec.devices[1].taints[0].effect: Unsupported value: \"PreferNoSchedule\": supported values: \"NoExecute\", \"NoSchedule\", \"None\"".to_string(),
            "spec.devices[1]: Duplicate value: \"gpu-0\"".to_string(),
        ] {
            assert!(errs.contains(&want), "{want}\nnot in {errs:#?}");
        }
        let errs = errors(
            &RESOURCE_SLICES,
            slice(
                json!({"driver": "d.example.com", "pool": {"name": "p", "resourceSliceCount": 1}}),
            ),
        );
        assert_eq!(errs, ["spec: Required value: exactly one of `nodeName`, `nodeSelector`, `allNodes`, `perDeviceNodeSelection` is required"]);

        let mut moved = s.clone();
        moved["spec"]["nodeName"] = json!("node-2");
        moved["spec"]["pool"]["generation"] = json!(1);
        let mut errs = Vec::new();
        RESOURCE_SLICES.validate_update(&s, &moved, &mut errs);
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].field, "spec.nodeName");
        assert_eq!(
            errs[0].message,
            "Invalid value: \"node-2\": field is immutable"
        );
    }

    #[test]
    fn device_classes() {
        let class = json!({"metadata": {"name": "gpu.example.com"}, "spec": {
            "selectors": [{"cel": {"expression": "device.driver == \"gpu.example.com\""}}, {}],
            "config": [{"opaque": {"driver": "gpu.example.com", "parameters": {"a": 1}}}],
            "extendedResourceName": "example.com/gpu"}});
        assert_eq!(
            errors(&DEVICE_CLASSES, class.clone()),
            ["spec.selectors[1].cel: Required value"]
        );
        let mut native = class.clone();
        native["spec"]["selectors"] = json!([]);
        native["spec"]["extendedResourceName"] = json!("cpu");
        assert_eq!(
            errors(&DEVICE_CLASSES, native),
            ["spec.extendedResourceName: Invalid value: \"cpu\": must be a valid extended resource name"]
        );
        assert!(DEVICE_CLASSES.tracks_generation());
        assert_eq!(
            DEVICE_CLASS_COLUMNS
                .iter()
                .map(|c| c.name)
                .collect::<Vec<_>>(),
            ["Name", "Age"]
        );
    }

    #[test]
    fn device_taint_rules() {
        let mut rule = json!({"metadata": {"name": "unhealthy", "creationTimestamp": "2026-01-10T11:59:30Z"}, "spec": {
            "deviceSelector": {"driver": "gpu.example.com", "pool": "node-1", "device": "gpu-0"},
            "taint": {"key": "example.com/unhealthy", "value": "true", "effect": "NoSchedule"}}});
        DEVICE_TAINT_RULES.default(&mut rule);
        assert!(rule["spec"]["taint"]["timeAdded"].is_string());
        assert!(registry::validate(&DEVICE_TAINT_RULES, &rule).is_empty());
        rule["spec"]["taint"]["timeAdded"] = json!("2026-01-10T11:59:50Z");
        assert_eq!(
            DEVICE_TAINT_RULE_COLUMNS
                .iter()
                .map(|c| c.name)
                .collect::<Vec<_>>(),
            ["Name", "Key", "Value", "Effect", "TimeAdded", "Age"]
        );
        assert_eq!(
            cells(&DEVICE_TAINT_RULE_PRINTER, &rule),
            [
                json!("unhealthy"),
                json!("example.com/unhealthy"),
                json!("true"),
                json!("NoSchedule"),
                json!("10s"),
                json!("30s")
            ]
        );

        // A new effect with the old time gets a new time; a new key keeps it.
        let mut evict = rule.clone();
        evict["spec"]["taint"]["effect"] = json!("NoExecute");
        DEVICE_TAINT_RULES.prepare_for_update(&mut evict, &rule);
        assert_ne!(evict["spec"]["taint"]["timeAdded"], "2026-01-10T11:59:50Z");
        let mut renamed = rule.clone();
        renamed["spec"]["taint"]["key"] = json!("example.com/broken");
        DEVICE_TAINT_RULES.prepare_for_update(&mut renamed, &rule);
        assert_eq!(
            renamed["spec"]["taint"]["timeAdded"],
            "2026-01-10T11:59:50Z"
        );

        let errs = errors(
            &DEVICE_TAINT_RULES,
            json!({"metadata": {"name": "x"}, "spec": {
            "deviceSelector": {"driver": "", "pool": "a//b", "device": "GPU"},
            "taint": {"key": "bad key", "value": "-x", "effect": ""}}}),
        );
        for want in [
            "spec.deviceSelector.driver: Required value".to_string(),
            format!("spec.deviceSelector.pool: Invalid value: \"\": {DNS1123_SUBDOMAIN_MSG}"),
            format!("spec.deviceSelector.device: Invalid value: \"GPU\": {DNS1123_LABEL_MSG}"),
            format!(
                "spec.taint.key: Invalid value: \"bad key\": {}",
                crate::names::QUALIFIED_NAME_PART_MSG
            ),
            format!(
                "spec.taint.value: Invalid value: \"-x\": {}",
                crate::names::LABEL_VALUE_MSG
            ),
            "spec.taint.effect: Required value".to_string(),
        ] {
            assert!(errs.contains(&want), "{want}\nnot in {errs:#?}");
        }
    }
}
