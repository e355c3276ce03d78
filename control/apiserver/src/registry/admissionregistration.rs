//! admissionregistration.k8s.io/v1 (`pkg/registry/admissionregistration`): validating and
//! mutating webhook configurations, ValidatingAdmissionPolicies (with the status their type
//! checker writes) and their bindings, MutatingAdmissionPolicies and their bindings — all that
//! kube-apiserver 1.37 serves by default. They are stored with upstream's v1 defaults (webhooks
//! fail closed, match equivalent requests, select everything, time out after 10 s; policies fail
//! closed and match equivalent requests) and checked by upstream's structural rules (fully
//! qualified webhook names, one client config, https URLs, side effects declared, review
//! versions, rules, match constraints, validation actions), with generation tracking.
//!
//! Nothing here is enforced yet: no webhook is called and no CEL is compiled or evaluated (so
//! expressions are only required to be present). What serving them gives is that upstream
//! components' informers sync and kubectl can manage them; calling webhooks and evaluating
//! policies is a later step of the admission chain.

use crate::error::FieldError;
use crate::names::{
    is_dns1035_label, is_dns1123_subdomain, is_qualified_name, DNS1123_SUBDOMAIN_MSG,
};
use crate::registry::fields::{check_enum, child, default, each, spec_of, strings};
use crate::registry::Strategy;
use crate::selectors::LabelSelector;
use crate::table::prelude::*;

/// The AdmissionReview versions this server understands (`AcceptedAdmissionReviewVersions`).
const REVIEW_VERSIONS: &[&str] = &["v1", "v1beta1"];

/// What the webhook configurations differ in.
#[derive(Clone, Copy, PartialEq)]
enum Hooks {
    Validating,
    Mutating,
}

pub struct WebhookConfigurations(Hooks);

pub static VALIDATING_WEBHOOK_CONFIGURATIONS: WebhookConfigurations =
    WebhookConfigurations(Hooks::Validating);
pub static MUTATING_WEBHOOK_CONFIGURATIONS: WebhookConfigurations =
    WebhookConfigurations(Hooks::Mutating);

impl Strategy for WebhookConfigurations {
    fn prepare_for_create(&self, object: &mut Value, _uid: &str) {
        // Generation counts changes of `webhooks` (there is no spec).
        object["metadata"]["generation"] = json!(1);
    }

    fn prepare_for_update(&self, new: &mut Value, old: &Value) {
        let generation = old["metadata"]["generation"].as_i64().unwrap_or(1);
        let changed = old.get("webhooks") != new.get("webhooks");
        new["metadata"]["generation"] = json!(generation + i64::from(changed));
    }

    fn default(&self, object: &mut Value) {
        let Some(root) = object.as_object_mut() else {
            return;
        };
        for hook in each(root, "webhooks") {
            default(hook, "failurePolicy", json!("Fail"));
            default(hook, "matchPolicy", json!("Equivalent"));
            default(hook, "namespaceSelector", json!({}));
            default(hook, "objectSelector", json!({}));
            default(hook, "timeoutSeconds", json!(10));
            if self.0 == Hooks::Mutating {
                default(hook, "reinvocationPolicy", json!("Never"));
            }
            for rule in each(hook, "rules") {
                default(rule, "scope", json!("*"));
            }
            if let Some(service) = hook
                .get_mut("clientConfig")
                .and_then(|c| c.get_mut("service"))
                .and_then(Value::as_object_mut)
            {
                default(service, "port", json!(443));
            }
        }
    }

    fn validate(&self, object: &Value, errors: &mut Vec<FieldError>) {
        let mut names = BTreeSet::new();
        for (i, hook) in list(object, &["webhooks"]).iter().enumerate() {
            let path = format!("webhooks[{i}]");
            validate_webhook(hook, &path, self.0, errors);
            validate_review_versions(hook, &format!("{path}.admissionReviewVersions"), errors);
            let name = text(hook, &["name"]);
            if !name.is_empty() && !names.insert(name) {
                errors.push(FieldError::duplicate(format!("{path}.name"), &json!(name)));
            }
        }
    }

    fn printer(&self) -> &'static Printer {
        &WEBHOOK_CONFIGURATION_PRINTER
    }
}

/// Admission policies and their bindings: what each one's spec holds.
#[derive(Clone, Copy, PartialEq)]
enum Policy {
    Validating,
    ValidatingBinding,
    Mutating,
    MutatingBinding,
}

pub struct AdmissionPolicies(Policy);

pub static VALIDATING_ADMISSION_POLICIES: AdmissionPolicies = AdmissionPolicies(Policy::Validating);
pub static VALIDATING_ADMISSION_POLICY_BINDINGS: AdmissionPolicies =
    AdmissionPolicies(Policy::ValidatingBinding);
pub static MUTATING_ADMISSION_POLICIES: AdmissionPolicies = AdmissionPolicies(Policy::Mutating);
pub static MUTATING_ADMISSION_POLICY_BINDINGS: AdmissionPolicies =
    AdmissionPolicies(Policy::MutatingBinding);

impl Strategy for AdmissionPolicies {
    fn tracks_generation(&self) -> bool {
        true
    }

    fn default(&self, object: &mut Value) {
        let Some(spec) = spec_of(object) else {
            return;
        };
        let constraints = match self.0 {
            Policy::Validating | Policy::Mutating => {
                default(spec, "failurePolicy", json!("Fail"));
                Some(child(spec, "matchConstraints"))
            }
            // A binding's matchResources is optional; defaulted when given.
            Policy::ValidatingBinding | Policy::MutatingBinding => spec
                .get_mut("matchResources")
                .and_then(Value::as_object_mut),
        };
        if let Some(constraints) = constraints {
            default(constraints, "matchPolicy", json!("Equivalent"));
            default(constraints, "namespaceSelector", json!({}));
            default(constraints, "objectSelector", json!({}));
            for key in ["resourceRules", "excludeResourceRules"] {
                for rule in each(constraints, key) {
                    default(rule, "scope", json!("*"));
                }
            }
        }
    }

    fn validate(&self, object: &Value, errors: &mut Vec<FieldError>) {
        let spec = &object["spec"];
        match self.0 {
            Policy::Validating => validate_validating_policy(object, spec, errors),
            Policy::Mutating => validate_mutating_policy(spec, errors),
            Policy::ValidatingBinding | Policy::MutatingBinding => {
                validate_binding(spec, self.0 == Policy::ValidatingBinding, errors)
            }
        }
    }

    fn printer(&self) -> &'static Printer {
        match self.0 {
            Policy::Validating => &VALIDATING_ADMISSION_POLICY_PRINTER,
            Policy::Mutating => &MUTATING_ADMISSION_POLICY_PRINTER,
            Policy::ValidatingBinding | Policy::MutatingBinding => &POLICY_BINDING_PRINTER,
        }
    }
}

// ---------------------------------------------------------------- validation

/// `IsFullyQualifiedName`: a DNS subdomain of at least three labels.
fn check_fully_qualified(path: &str, name: &str, errors: &mut Vec<FieldError>) {
    if name.is_empty() {
        errors.push(FieldError::required(path, ""));
    } else if !is_dns1123_subdomain(name) {
        errors.push(FieldError::invalid(
            path,
            &json!(name),
            DNS1123_SUBDOMAIN_MSG,
        ));
    } else if name.split('.').count() < 3 {
        errors.push(FieldError::invalid(
            path,
            &json!(name),
            "should be a domain with at least three segments separated by dots",
        ));
    }
}

fn check_selector(path: &str, selector: &Value, errors: &mut Vec<FieldError>) {
    if selector.is_null() {
        return;
    }
    if let Err(message) = LabelSelector::from_object(selector) {
        errors.push(FieldError::invalid(path, selector, message));
    }
}

fn wildcard_with_others(values: &[String]) -> bool {
    values.len() > 1 && values.iter().any(|v| v == "*")
}

fn validate_webhook(hook: &Value, path: &str, hooks: Hooks, errors: &mut Vec<FieldError>) {
    check_fully_qualified(&format!("{path}.name"), text(hook, &["name"]), errors);
    for (i, rule) in list(hook, &["rules"]).iter().enumerate() {
        validate_rule_with_operations(rule, &format!("{path}.rules[{i}]"), errors);
    }
    check_enum(
        &format!("{path}.failurePolicy"),
        hook.get("failurePolicy"),
        &["Fail", "Ignore"],
        errors,
    );
    check_enum(
        &format!("{path}.matchPolicy"),
        hook.get("matchPolicy"),
        &["Equivalent", "Exact"],
        errors,
    );
    // v1 has no default: a webhook must say it has no side effects.
    const NO_SIDE_EFFECTS: &[&str] = &["None", "NoneOnDryRun"];
    // The typed decoding writes a missing required string as "" (k8s-openapi's plain String).
    match hook
        .get("sideEffects")
        .filter(|v| !v.is_null() && v.as_str() != Some(""))
    {
        None => errors.push(FieldError::required(
            format!("{path}.sideEffects"),
            format!("must specify one of {}", NO_SIDE_EFFECTS.join(", ")),
        )),
        side_effects => check_enum(
            &format!("{path}.sideEffects"),
            side_effects,
            NO_SIDE_EFFECTS,
            errors,
        ),
    }
    if let Some(timeout) = hook["timeoutSeconds"]
        .as_i64()
        .filter(|t| !(1..=30).contains(t))
    {
        errors.push(FieldError::invalid(
            format!("{path}.timeoutSeconds"),
            &json!(timeout),
            "the timeout value must be between 1 and 30 seconds",
        ));
    }
    check_selector(
        &format!("{path}.namespaceSelector"),
        &hook["namespaceSelector"],
        errors,
    );
    check_selector(
        &format!("{path}.objectSelector"),
        &hook["objectSelector"],
        errors,
    );
    if hooks == Hooks::Mutating {
        check_enum(
            &format!("{path}.reinvocationPolicy"),
            hook.get("reinvocationPolicy"),
            &["IfNeeded", "Never"],
            errors,
        );
    }
    let config = &hook["clientConfig"];
    let url = config.get("url").filter(|u| !u.is_null());
    let service = config.get("service").filter(|s| !s.is_null());
    match (url, service) {
        (Some(url), None) => check_webhook_url(
            &format!("{path}.clientConfig.url"),
            url.as_str().unwrap_or_default(),
            errors,
        ),
        (None, Some(service)) => {
            check_webhook_service(&format!("{path}.clientConfig.service"), service, errors)
        }
        _ => errors.push(FieldError::required(
            format!("{path}.clientConfig"),
            "exactly one of url or service is required",
        )),
    }
    validate_match_conditions(hook, &format!("{path}.matchConditions"), errors);
}

/// `ValidateWebhookURL` with https forced.
fn check_webhook_url(path: &str, url: &str, errors: &mut Vec<FieldError>) {
    let Some((scheme, rest)) = url.split_once("://") else {
        errors.push(FieldError::required(path, "host must be specified"));
        return;
    };
    if scheme != "https" {
        errors.push(FieldError::invalid(
            path,
            &json!(scheme),
            "'https' is the only allowed URL scheme",
        ));
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.is_empty() {
        errors.push(FieldError::invalid(
            path,
            &json!(url),
            "host must be specified",
        ));
    }
    if authority.contains('@') {
        errors.push(FieldError::invalid(
            path,
            &json!(url),
            "user information is not permitted in the URL",
        ));
    }
    if rest.contains('#') {
        errors.push(FieldError::invalid(
            path,
            &json!(url),
            "fragments are not permitted in the URL",
        ));
    }
    if rest.contains('?') {
        errors.push(FieldError::invalid(
            path,
            &json!(url),
            "query parameters are not permitted in the URL",
        ));
    }
}

/// `ValidateWebhookService`.
fn check_webhook_service(path: &str, service: &Value, errors: &mut Vec<FieldError>) {
    for field in ["name", "namespace"] {
        if text(service, &[field]).is_empty() {
            errors.push(FieldError::required(
                format!("{path}.{field}"),
                format!("service {field} is required"),
            ));
        }
    }
    if let Some(port) = service["port"]
        .as_i64()
        .filter(|p| !(1..=65535).contains(p))
    {
        errors.push(FieldError::invalid(
            format!("{path}.port"),
            &json!(port),
            "port is not valid: must be between 1 and 65535, inclusive",
        ));
    }
    if let Some(url_path) = service["path"].as_str() {
        if !url_path.starts_with('/') {
            errors.push(FieldError::invalid(
                format!("{path}.path"),
                &json!(url_path),
                "must start with a '/'",
            ));
        }
    }
}

fn validate_review_versions(hook: &Value, path: &str, errors: &mut Vec<FieldError>) {
    let versions = strings(hook, "admissionReviewVersions");
    if versions.is_empty() {
        errors.push(FieldError::required(
            path,
            format!("must specify one of {}", REVIEW_VERSIONS.join(", ")),
        ));
        return;
    }
    let mut seen = BTreeSet::new();
    for (i, version) in versions.iter().enumerate() {
        if !seen.insert(version.as_str()) {
            errors.push(FieldError::invalid(
                format!("{path}[{i}]"),
                &json!(version),
                "duplicate version",
            ));
        } else if !is_dns1035_label(version) {
            errors.push(FieldError::invalid(
                format!("{path}[{i}]"),
                &json!(version),
                crate::names::DNS1035_LABEL_MSG,
            ));
        }
    }
    if !versions
        .iter()
        .any(|v| REVIEW_VERSIONS.contains(&v.as_str()))
    {
        errors.push(FieldError::invalid(
            path,
            &json!(versions),
            format!(
                "must include at least one of {}",
                REVIEW_VERSIONS.join(", ")
            ),
        ));
    }
}

const OPERATIONS: &[&str] = &["*", "CONNECT", "CREATE", "DELETE", "UPDATE"];

fn validate_rule_with_operations(rule: &Value, path: &str, errors: &mut Vec<FieldError>) {
    let operations = strings(rule, "operations");
    if operations.is_empty() {
        errors.push(FieldError::required(format!("{path}.operations"), ""));
    }
    if wildcard_with_others(&operations) {
        errors.push(FieldError::invalid(
            format!("{path}.operations"),
            &json!(operations),
            "if '*' is present, must not specify other operations",
        ));
    }
    for (i, operation) in operations.iter().enumerate() {
        if !OPERATIONS.contains(&operation.as_str()) {
            errors.push(FieldError::not_supported(
                format!("{path}.operations[{i}]"),
                &json!(operation),
                OPERATIONS,
            ));
        }
    }
    let groups = strings(rule, "apiGroups");
    if groups.is_empty() {
        errors.push(FieldError::required(format!("{path}.apiGroups"), ""));
    }
    if wildcard_with_others(&groups) {
        errors.push(FieldError::invalid(
            format!("{path}.apiGroups"),
            &json!(groups),
            "if '*' is present, must not specify other API groups",
        ));
    }
    let versions = strings(rule, "apiVersions");
    if versions.is_empty() {
        errors.push(FieldError::required(format!("{path}.apiVersions"), ""));
    }
    if wildcard_with_others(&versions) {
        errors.push(FieldError::invalid(
            format!("{path}.apiVersions"),
            &json!(versions),
            "if '*' is present, must not specify other API versions",
        ));
    }
    for (i, version) in versions.iter().enumerate() {
        if version.is_empty() {
            errors.push(FieldError::required(format!("{path}.apiVersions[{i}]"), ""));
        }
    }
    let resources = strings(rule, "resources");
    if resources.is_empty() {
        errors.push(FieldError::required(format!("{path}.resources"), ""));
    }
    for (i, resource) in resources.iter().enumerate() {
        if resource.is_empty() {
            errors.push(FieldError::required(format!("{path}.resources[{i}]"), ""));
        }
    }
    if resources.len() > 1 && resources.iter().any(|r| r == "*/*") {
        errors.push(FieldError::invalid(
            format!("{path}.resources"),
            &json!(resources),
            "if '*/*' is present, must not specify other resources",
        ));
    }
    if resources.iter().any(|r| r == "*") && resources.iter().any(|r| r != "*" && !r.contains('/'))
    {
        errors.push(FieldError::invalid(
            format!("{path}.resources"),
            &json!(resources),
            "if '*' is present, must not specify other resources without subresources",
        ));
    }
    check_enum(
        &format!("{path}.scope"),
        rule.get("scope"),
        &["*", "Cluster", "Namespaced"],
        errors,
    );
}

fn validate_match_conditions(owner: &Value, path: &str, errors: &mut Vec<FieldError>) {
    let conditions = list(owner, &["matchConditions"]);
    if conditions.len() > 64 {
        errors.push(FieldError {
            field: path.to_string(),
            reason: "FieldValueTooMany",
            message: format!("Too many: {}: must have at most 64 items", conditions.len()),
        });
    }
    let mut names = BTreeSet::new();
    for (i, condition) in conditions.iter().enumerate() {
        let at = format!("{path}[{i}]");
        if text(condition, &["expression"]).trim().is_empty() {
            errors.push(FieldError::required(format!("{at}.expression"), ""));
        }
        let name = text(condition, &["name"]);
        if name.is_empty() {
            errors.push(FieldError::required(format!("{at}.name"), ""));
        } else if !is_qualified_name(name) {
            errors.push(FieldError::invalid(
                format!("{at}.name"),
                &json!(name),
                crate::names::LABEL_KEY_MSG,
            ));
        } else if !names.insert(name) {
            errors.push(FieldError::duplicate(format!("{at}.name"), &json!(name)));
        }
    }
}

/// `validateMatchResources`: defaulting fills the policy fields, so missing ones are errors.
fn validate_match_resources(resources: &Value, path: &str, errors: &mut Vec<FieldError>) {
    match resources.get("matchPolicy").filter(|v| !v.is_null()) {
        None => errors.push(FieldError::required(format!("{path}.matchPolicy"), "")),
        policy => check_enum(
            &format!("{path}.matchPolicy"),
            policy,
            &["Equivalent", "Exact"],
            errors,
        ),
    }
    for selector in ["namespaceSelector", "objectSelector"] {
        match resources.get(selector).filter(|v| !v.is_null()) {
            None => errors.push(FieldError::required(format!("{path}.{selector}"), "")),
            Some(s) => check_selector(&format!("{path}.{selector}"), s, errors),
        }
    }
    for key in ["resourceRules", "excludeResourceRules"] {
        for (i, rule) in list(resources, &[key]).iter().enumerate() {
            let at = format!("{path}.{key}[{i}]");
            let mut names = BTreeSet::new();
            for (j, name) in strings(rule, "resourceNames").iter().enumerate() {
                if name.contains('/') || name.contains('%') || name == "." || name == ".." {
                    errors.push(FieldError::invalid(
                        format!("{at}.resourceNames[{j}]"),
                        &json!(name),
                        "may not contain '/' or '%', or be '.' or '..'",
                    ));
                }
                if !names.insert(name.clone()) {
                    errors.push(FieldError::duplicate(
                        format!("{at}.resourceNames[{j}]"),
                        &json!(name),
                    ));
                }
            }
            validate_rule_with_operations(rule, &at, errors);
        }
    }
}

fn validate_policy_common(spec: &Value, errors: &mut Vec<FieldError>) {
    match spec.get("failurePolicy").filter(|v| !v.is_null()) {
        None => errors.push(FieldError::required("spec.failurePolicy", "")),
        policy => check_enum("spec.failurePolicy", policy, &["Fail", "Ignore"], errors),
    }
    let param_kind = &spec["paramKind"];
    if param_kind.is_object() {
        if text(param_kind, &["apiVersion"]).is_empty() {
            errors.push(FieldError::required("spec.paramKind.apiVersion", ""));
        }
        if text(param_kind, &["kind"]).is_empty() {
            errors.push(FieldError::required("spec.paramKind.kind", ""));
        }
    }
    let constraints = &spec["matchConstraints"];
    if constraints.is_object() {
        validate_match_resources(constraints, "spec.matchConstraints", errors);
        if list(constraints, &["resourceRules"]).is_empty() {
            errors.push(FieldError::required(
                "spec.matchConstraints.resourceRules",
                "",
            ));
        }
    } else {
        errors.push(FieldError::required("spec.matchConstraints", ""));
    }
    validate_match_conditions(spec, "spec.matchConditions", errors);
    for (i, variable) in list(spec, &["variables"]).iter().enumerate() {
        let at = format!("spec.variables[{i}]");
        if text(variable, &["name"]).trim().is_empty() {
            errors.push(FieldError::required(
                format!("{at}.name"),
                "name is not specified",
            ));
        }
        if text(variable, &["expression"]).trim().is_empty() {
            errors.push(FieldError::required(
                format!("{at}.expression"),
                "expression is not specified",
            ));
        }
    }
}

fn validate_validating_policy(object: &Value, spec: &Value, errors: &mut Vec<FieldError>) {
    validate_policy_common(spec, errors);
    let validations = list(spec, &["validations"]);
    let audits = list(spec, &["auditAnnotations"]);
    if validations.is_empty() && audits.is_empty() {
        for field in ["validations", "auditAnnotations"] {
            errors.push(FieldError::required(
                format!("spec.{field}"),
                "validations or auditAnnotations must contain at least one item",
            ));
        }
    }
    for (i, validation) in validations.iter().enumerate() {
        let at = format!("spec.validations[{i}]");
        if text(validation, &["expression"]).trim().is_empty() {
            errors.push(FieldError::required(
                format!("{at}.expression"),
                "expression is not specified",
            ));
        }
        let message = text(validation, &["message"]);
        if !message.is_empty() && message.trim().is_empty() {
            errors.push(FieldError::invalid(
                format!("{at}.message"),
                &json!(message),
                "message must be non-empty if specified",
            ));
        } else if message.trim().contains(['\n', '\r']) {
            errors.push(FieldError::invalid(
                format!("{at}.message"),
                &json!(message),
                "message must not contain line breaks",
            ));
        }
        check_enum(
            &format!("{at}.reason"),
            validation.get("reason"),
            &["Forbidden", "Invalid", "RequestEntityTooLarge"],
            errors,
        );
    }
    if audits.len() > 20 {
        errors.push(FieldError::invalid(
            "spec.auditAnnotations",
            &spec["auditAnnotations"],
            "must not have more than 20 auditAnnotations",
        ));
    }
    let name = text(object, &["metadata", "name"]);
    let mut keys = BTreeSet::new();
    for (i, audit) in audits.iter().enumerate() {
        let at = format!("spec.auditAnnotations[{i}]");
        let key = text(audit, &["key"]);
        if !is_qualified_name(&format!("{name}/{key}")) {
            errors.push(FieldError::invalid(
                format!("{at}.key"),
                &json!(key),
                "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character",
            ));
        }
        if !keys.insert(key) {
            errors.push(FieldError::duplicate(format!("{at}.key"), &json!(key)));
        }
        if text(audit, &["valueExpression"]).trim().is_empty() {
            errors.push(FieldError::required(
                format!("{at}.valueExpression"),
                "valueExpression is not specified",
            ));
        }
    }
}

fn validate_mutating_policy(spec: &Value, errors: &mut Vec<FieldError>) {
    validate_policy_common(spec, errors);
    let mutations = list(spec, &["mutations"]);
    if mutations.is_empty() {
        errors.push(FieldError::required(
            "spec.mutations",
            "mutations must contain at least one item",
        ));
    }
    for (i, mutation) in mutations.iter().enumerate() {
        let at = format!("spec.mutations[{i}]");
        let (source, kind) = match text(mutation, &["patchType"]) {
            "" => {
                errors.push(FieldError::required(format!("{at}.patchType"), ""));
                continue;
            }
            "ApplyConfiguration" => ("applyConfiguration", "ApplyConfiguration"),
            "JSONPatch" => ("jsonPatch", "JSONPatch"),
            other => {
                errors.push(FieldError::not_supported(
                    format!("{at}.patchType"),
                    &json!(other),
                    &["ApplyConfiguration", "JSONPatch"],
                ));
                continue;
            }
        };
        if text(mutation, &[source, "expression"]).trim().is_empty() {
            errors.push(FieldError::required(
                format!("{at}.{source}.expression"),
                format!("expression is required when patchType is {kind}"),
            ));
        }
    }
    match spec.get("reinvocationPolicy").filter(|v| !v.is_null()) {
        None => errors.push(FieldError::required("spec.reinvocationPolicy", "")),
        policy => check_enum(
            "spec.reinvocationPolicy",
            policy,
            &["IfNeeded", "Never"],
            errors,
        ),
    }
}

fn validate_binding(spec: &Value, validating: bool, errors: &mut Vec<FieldError>) {
    match text(spec, &["policyName"]) {
        "" => errors.push(FieldError::required("spec.policyName", "")),
        name if !is_dns1123_subdomain(name) => errors.push(FieldError::invalid(
            "spec.policyName",
            &json!(name),
            DNS1123_SUBDOMAIN_MSG,
        )),
        _ => {}
    }
    let param_ref = &spec["paramRef"];
    if param_ref.is_object() {
        let name = text(param_ref, &["name"]);
        let selector = param_ref.get("selector").filter(|s| !s.is_null());
        if !name.is_empty() && selector.is_some() {
            for field in ["name", "selector"] {
                errors.push(FieldError::forbidden(
                    format!("spec.paramRef.{field}"),
                    "name and selector are mutually exclusive",
                ));
            }
        }
        if let Some(selector) = selector {
            check_selector("spec.paramRef.selector", selector, errors);
        }
        if name.is_empty() && selector.is_none() {
            errors.push(FieldError::required(
                "spec.paramRef",
                "one of name or selector must be specified",
            ));
        }
        match param_ref
            .get("parameterNotFoundAction")
            .filter(|v| v.as_str().is_some_and(|s| !s.is_empty()))
        {
            None => errors.push(FieldError::required(
                "spec.paramRef.parameterNotFoundAction",
                "",
            )),
            action => check_enum(
                "spec.paramRef.parameterNotFoundAction",
                action,
                &["Deny", "Allow"],
                errors,
            ),
        }
    }
    if spec["matchResources"].is_object() {
        validate_match_resources(&spec["matchResources"], "spec.matchResources", errors);
    }
    if validating {
        const ACTIONS: &[&str] = &["Audit", "Deny", "Warn"];
        let actions = strings(spec, "validationActions");
        let mut seen = BTreeSet::new();
        for (i, action) in actions.iter().enumerate() {
            let at = format!("spec.validationActions[{i}]");
            if !ACTIONS.contains(&action.as_str()) {
                errors.push(FieldError::not_supported(
                    at.clone(),
                    &json!(action),
                    ACTIONS,
                ));
            }
            if !seen.insert(action.as_str()) {
                errors.push(FieldError::duplicate(at, &json!(action)));
            }
        }
        if seen.contains("Deny") && seen.contains("Warn") {
            errors.push(FieldError::invalid(
                "spec.validationActions",
                &json!(actions),
                "must not contain both Deny and Warn (repeating the same validation failure information in the API response and headers serves no purpose)",
            ));
        }
        if seen.is_empty() {
            errors.push(FieldError::required(
                "spec.validationActions",
                "at least one validation action is required",
            ));
        }
    }
}

// ---------------------------------------------------------------- table

pub const WEBHOOK_CONFIGURATION_COLUMNS: &[Column] = &[
    NAME,
    col(
        "Webhooks",
        "integer",
        "Webhooks indicates the number of webhooks registered in this configuration",
    ),
    AGE,
];

pub static WEBHOOK_CONFIGURATION_PRINTER: Printer =
    Printer::new(WEBHOOK_CONFIGURATION_COLUMNS, webhook_configuration_cells);

fn webhook_configuration_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    vec![
        name(obj),
        (list(obj, &["webhooks"]).len() as i64).into(),
        age(obj, now).into(),
    ]
}

pub const VALIDATING_ADMISSION_POLICY_COLUMNS: &[Column] = &[
    NAME,
    col(
        "Validations",
        "integer",
        "Validations indicates the number of validation rules defined in this configuration",
    ),
    col(
        "ParamKind",
        "string",
        "ParamKind specifies the kind of resources used to parameterize this policy",
    ),
    AGE,
];

pub static VALIDATING_ADMISSION_POLICY_PRINTER: Printer =
    Printer::new(VALIDATING_ADMISSION_POLICY_COLUMNS, validating_policy_cells);

fn validating_policy_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    policy_cells(obj, "validations", now)
}

pub const MUTATING_ADMISSION_POLICY_COLUMNS: &[Column] = &[
    NAME,
    col(
        "Mutations",
        "integer",
        "Mutation indicates the number of mutations rules defined in this configuration",
    ),
    col(
        "ParamKind",
        "string",
        "ParamKind specifies the kind of resources used to parameterize this policy",
    ),
    AGE,
];

pub static MUTATING_ADMISSION_POLICY_PRINTER: Printer =
    Printer::new(MUTATING_ADMISSION_POLICY_COLUMNS, mutating_policy_cells);

fn mutating_policy_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    policy_cells(obj, "mutations", now)
}

/// Name, how many rules, "apiVersion/Kind" of the parameters or `<unset>`, age.
fn policy_cells(obj: &Value, rules: &str, now: Timestamp) -> Vec<Value> {
    let param_kind = match field(obj, &["spec", "paramKind"]).filter(|p| p.is_object()) {
        Some(kind) => format!("{}/{}", text(kind, &["apiVersion"]), text(kind, &["kind"])),
        None => "<unset>".to_string(),
    };
    vec![
        name(obj),
        (list(obj, &["spec", rules]).len() as i64).into(),
        param_kind.into(),
        age(obj, now).into(),
    ]
}

pub const POLICY_BINDING_COLUMNS: &[Column] = &[
    NAME,
    col(
        "PolicyName",
        "string",
        "PolicyName indicates the policy definition which the policy binding binded to",
    ),
    col(
        "ParamRef",
        "string",
        "ParamRef indicates the param resource which sets the configration param",
    ),
    AGE,
];

/// Validating and mutating policy bindings print alike.
pub static POLICY_BINDING_PRINTER: Printer =
    Printer::new(POLICY_BINDING_COLUMNS, policy_binding_cells);

fn policy_binding_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    let param_ref = field(obj, &["spec", "paramRef"]).filter(|p| p.is_object());
    let param = match param_ref {
        None => "<unset>".to_string(),
        Some(reference) => match (text(reference, &["name"]), text(reference, &["namespace"])) {
            ("", _) => match reference.get("selector").filter(|s| !s.is_null()) {
                // Upstream prints the selector struct; its label-selector text reads better.
                Some(selector) => format_label_selector(Some(selector)),
                None => "<unset>".to_string(),
            },
            // Without a namespace the parameter may be cluster-scoped or in any namespace.
            (name, "") => format!("*/{name}"),
            (name, namespace) => format!("{namespace}/{name}"),
        },
    };
    vec![
        name(obj),
        text(obj, &["spec", "policyName"]).into(),
        param.into(),
        age(obj, now).into(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errors_of(strategy: &dyn Strategy, object: &Value) -> Vec<String> {
        crate::registry::validate(strategy, object)
            .iter()
            .map(|e| format!("{}: {}", e.field, e.message))
            .collect()
    }

    fn webhook_configuration() -> Value {
        json!({"metadata": {"name": "policy"},
               "webhooks": [{"name": "check.example.com",
                   "clientConfig": {"service": {"namespace": "default", "name": "checker"}},
                   "rules": [{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"],
                              "resources": ["pods"]}],
                   "sideEffects": "None", "admissionReviewVersions": ["v1"]}]})
    }

    #[test]
    fn webhooks_get_v1_defaults() {
        let mut config = webhook_configuration();
        MUTATING_WEBHOOK_CONFIGURATIONS.default(&mut config);
        let hook = &config["webhooks"][0];
        assert_eq!(hook["failurePolicy"], "Fail");
        assert_eq!(hook["matchPolicy"], "Equivalent");
        assert_eq!(hook["namespaceSelector"], json!({}));
        assert_eq!(hook["objectSelector"], json!({}));
        assert_eq!(hook["timeoutSeconds"], 10);
        assert_eq!(hook["reinvocationPolicy"], "Never");
        assert_eq!(hook["rules"][0]["scope"], "*");
        assert_eq!(hook["clientConfig"]["service"]["port"], 443);
        assert!(errors_of(&MUTATING_WEBHOOK_CONFIGURATIONS, &config).is_empty());

        let mut validating = webhook_configuration();
        VALIDATING_WEBHOOK_CONFIGURATIONS.default(&mut validating);
        assert!(validating["webhooks"][0]
            .get("reinvocationPolicy")
            .is_none());
    }

    #[test]
    fn webhook_validation_messages() {
        let mut config = webhook_configuration();
        let hook = &mut config["webhooks"][0];
        hook["name"] = json!("check");
        hook.as_object_mut().unwrap().remove("sideEffects");
        hook.as_object_mut()
            .unwrap()
            .remove("admissionReviewVersions");
        hook["clientConfig"] = json!({"url": "http://checker.example.com/x?y=1"});
        hook["timeoutSeconds"] = json!(31);
        VALIDATING_WEBHOOK_CONFIGURATIONS.default(&mut config);
        assert_eq!(
            errors_of(&VALIDATING_WEBHOOK_CONFIGURATIONS, &config),
            [
                "webhooks[0].name: Invalid value: \"check\": should be a domain with at least three segments separated by dots",
                "webhooks[0].sideEffects: Required value: must specify one of None, NoneOnDryRun",
                "webhooks[0].timeoutSeconds: Invalid value: 31: the timeout value must be between 1 and 30 seconds",
                "webhooks[0].clientConfig.url: Invalid value: \"http\": 'https' is the only allowed URL scheme",
                "webhooks[0].clientConfig.url: Invalid value: \"http://checker.example.com/x?y=1\": query parameters are not permitted in the URL",
                "webhooks[0].admissionReviewVersions: Required value: must specify one of v1, v1beta1",
            ]
        );
        let mut twice = webhook_configuration();
        let hook = twice["webhooks"][0].clone();
        twice["webhooks"].as_array_mut().unwrap().push(hook);
        twice["webhooks"][0]["sideEffects"] = json!("Some");
        VALIDATING_WEBHOOK_CONFIGURATIONS.default(&mut twice);
        assert_eq!(
            errors_of(&VALIDATING_WEBHOOK_CONFIGURATIONS, &twice),
            [
                "webhooks[0].sideEffects: Unsupported value: \"Some\": supported values: \"None\", \"NoneOnDryRun\"",
                "webhooks[1].name: Duplicate value: \"check.example.com\"",
            ]
        );
    }

    #[test]
    fn webhook_generation_counts_webhook_changes() {
        let mut old = webhook_configuration();
        VALIDATING_WEBHOOK_CONFIGURATIONS.prepare_for_create(&mut old, "u");
        assert_eq!(old["metadata"]["generation"], 1);
        let mut relabelled = old.clone();
        relabelled["metadata"]["labels"] = json!({"a": "b"});
        VALIDATING_WEBHOOK_CONFIGURATIONS.prepare_for_update(&mut relabelled, &old);
        assert_eq!(relabelled["metadata"]["generation"], 1);
        let mut changed = old.clone();
        changed["webhooks"][0]["timeoutSeconds"] = json!(5);
        VALIDATING_WEBHOOK_CONFIGURATIONS.prepare_for_update(&mut changed, &old);
        assert_eq!(changed["metadata"]["generation"], 2);
    }

    fn policy() -> Value {
        json!({"metadata": {"name": "replicas"},
               "spec": {"matchConstraints": {"resourceRules": [{"apiGroups": ["apps"], "apiVersions": ["v1"],
                            "operations": ["CREATE", "UPDATE"], "resources": ["deployments"]}]},
                        "validations": [{"expression": "object.spec.replicas <= 5"}]}})
    }

    #[test]
    fn policies_and_bindings() {
        let mut policy = policy();
        VALIDATING_ADMISSION_POLICIES.default(&mut policy);
        assert_eq!(policy["spec"]["failurePolicy"], "Fail");
        let constraints = &policy["spec"]["matchConstraints"];
        assert_eq!(constraints["matchPolicy"], "Equivalent");
        assert_eq!(constraints["namespaceSelector"], json!({}));
        assert_eq!(constraints["resourceRules"][0]["scope"], "*");
        assert!(errors_of(&VALIDATING_ADMISSION_POLICIES, &policy).is_empty());
        assert_eq!(
            (VALIDATING_ADMISSION_POLICY_PRINTER.cells)(&policy, Timestamp::now())[..3],
            [json!("replicas"), json!(1), json!("<unset>")]
        );

        let mut empty = json!({"metadata": {"name": "empty"}, "spec": {}});
        VALIDATING_ADMISSION_POLICIES.default(&mut empty);
        assert_eq!(
            errors_of(&VALIDATING_ADMISSION_POLICIES, &empty),
            [
                "spec.matchConstraints.resourceRules: Required value",
                "spec.validations: Required value: validations or auditAnnotations must contain at least one item",
                "spec.auditAnnotations: Required value: validations or auditAnnotations must contain at least one item",
            ]
        );

        let binding = json!({"metadata": {"name": "replicas"},
            "spec": {"policyName": "replicas", "validationActions": ["Deny"],
                     "paramRef": {"name": "limits", "namespace": "default", "parameterNotFoundAction": "Deny"}}});
        assert!(errors_of(&VALIDATING_ADMISSION_POLICY_BINDINGS, &binding).is_empty());
        assert_eq!(
            (POLICY_BINDING_PRINTER.cells)(&binding, Timestamp::now())[..3],
            [
                json!("replicas"),
                json!("replicas"),
                json!("default/limits")
            ]
        );
        let bad =
            json!({"metadata": {"name": "b"}, "spec": {"validationActions": ["Deny", "Warn"]}});
        assert_eq!(
            errors_of(&VALIDATING_ADMISSION_POLICY_BINDINGS, &bad),
            [
                "spec.policyName: Required value",
                "spec.validationActions: Invalid value: [\"Deny\",\"Warn\"]: must not contain both Deny and Warn (repeating the same validation failure information in the API response and headers serves no purpose)",
            ]
        );
        // A mutating binding has no validation actions.
        let mutating = json!({"metadata": {"name": "m"}, "spec": {"policyName": "p"}});
        assert!(errors_of(&MUTATING_ADMISSION_POLICY_BINDINGS, &mutating).is_empty());
    }

    #[test]
    fn mutating_policies() {
        let mut policy = json!({"metadata": {"name": "labels"},
            "spec": {"matchConstraints": {"resourceRules": [{"apiGroups": [""], "apiVersions": ["v1"],
                         "operations": ["CREATE"], "resources": ["pods"]}]},
                     "reinvocationPolicy": "Never",
                     "mutations": [{"patchType": "ApplyConfiguration",
                                    "applyConfiguration": {"expression": "Object{}"}}]}});
        MUTATING_ADMISSION_POLICIES.default(&mut policy);
        assert!(errors_of(&MUTATING_ADMISSION_POLICIES, &policy).is_empty());
        assert_eq!(
            (MUTATING_ADMISSION_POLICY_PRINTER.cells)(&policy, Timestamp::now())[1],
            json!(1)
        );
        policy["spec"]["mutations"] = json!([{"patchType": "JSONPatch"}]);
        policy["spec"]
            .as_object_mut()
            .unwrap()
            .remove("reinvocationPolicy");
        assert_eq!(
            errors_of(&MUTATING_ADMISSION_POLICIES, &policy),
            [
                "spec.mutations[0].jsonPatch.expression: Required value: expression is required when patchType is JSONPatch",
                "spec.reinvocationPolicy: Required value",
            ]
        );
    }
}
