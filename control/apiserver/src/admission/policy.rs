//! ValidatingAdmissionPolicy: upstream's `apiserver/pkg/admission/plugin/policy/validating`.
//!
//! Every ValidatingAdmissionPolicyBinding names a policy; a binding applies when its policy's
//! `matchConstraints` match the request (`resourceRules` less `excludeResourceRules`, with
//! their `resourceNames`, and the namespace and object selectors: `admission::matching`), its
//! own `matchResources` too, and the policy's `matchConditions` hold. The policy's
//! `validations` are then evaluated (CEL, `admission::cel`) once per param: none without a
//! `paramKind`, else the object `paramRef` names (in `paramRef.namespace`, or the request's
//! namespace for a namespaced kind) or every object its `selector` picks, with the binding's
//! `parameterNotFoundAction` when there are none. `variables` are evaluated first, in order.
//! A failed validation is handled per the binding's `validationActions`: Deny refuses the
//! request with upstream's `ValidatingAdmissionPolicy '<p>' with binding '<b>' denied request:
//! <message>` (reason `Invalid`, 422, unless the validation names another), Warn sends
//! `Validation failed for ValidatingAdmissionPolicy …` as a warning, Audit records the
//! `validation.policy.admission.k8s.io/validation_failure` audit annotation. An expression that
//! errors, or params that cannot be found, are a denial under `failurePolicy: Fail` (the
//! default) and nothing under `Ignore`. The policy's `auditAnnotations` are published as
//! `<policy>/<key>`.
//!
//! Policies and bindings are read from the watch cache on each request, as webhook
//! configurations are. Params are built-in resources (ConfigMaps, Secrets, …); custom resources
//! as params are not served yet. Not done: `status.typeChecking`, the `authorizer` variable.

use std::collections::HashMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::StatusCause;
use serde_json::{json, Value};

use super::cel::{Activation, Expression};
use super::matching::{self, NamespaceSubject};
use super::{forbidden, webhook, Outcome, Request};
use crate::error::ApiResult;
use crate::registry::Lookup;
use crate::resources;

const GROUP: &str = "admissionregistration.k8s.io";

fn name_of(v: &Value) -> &str {
    v.pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// Whether `resourceRules` (less `excludeResourceRules`; none: every resource, as upstream's
/// matcher) and the selectors of a `MatchResources` match; `namespace` is the request's
/// namespace object.
fn resources_match(
    resources: &Value,
    req: &Request<'_>,
    object: Option<&Value>,
    old: Option<&Value>,
    namespace: Option<&Value>,
) -> Result<bool, String> {
    let equivalent = resources["matchPolicy"] != "Exact";
    let named = |rule: &Value| {
        let names = rule["resourceNames"].as_array();
        names.is_none_or(|n| n.is_empty() || n.iter().any(|n| n == req.name))
    };
    let matched = |rules: &Value| {
        let rules = rules.as_array().map(Vec::as_slice).unwrap_or_default();
        rules
            .iter()
            .any(|r| named(r) && matching::rule_matches(r, req, false))
            || (equivalent
                && rules
                    .iter()
                    .any(|r| named(r) && matching::rule_matches(r, req, true)))
    };
    // No `resourceRules` (a binding that narrows by namespace only) match every resource.
    let rules = &resources["resourceRules"];
    let any_resource = rules.as_array().is_none_or(Vec::is_empty);
    if (!any_resource && !matched(rules)) || matched(&resources["excludeResourceRules"]) {
        return Ok(false);
    }
    let always = matches!(
        matching::namespace_subject(req, object, old),
        NamespaceSubject::Always
    );
    if !always && !matching::namespace_selector_matches(&resources["namespaceSelector"], namespace)?
    {
        return Ok(false);
    }
    matching::object_selector_matches(&resources["objectSelector"], object, old)
}

/// One refusal (or warning, or audit record) from a binding.
struct Decision {
    policy: String,
    binding: Option<String>,
    message: String,
    reason: &'static str,
}

impl Decision {
    fn message(&self) -> String {
        match &self.binding {
            Some(b) => format!(
                "ValidatingAdmissionPolicy '{}' with binding '{b}' denied request: {}",
                self.policy, self.message
            ),
            None => format!(
                "ValidatingAdmissionPolicy '{}' denied request: {}",
                self.policy, self.message
            ),
        }
    }
}

/// The reason a validation names (upstream allows these four), and its code.
fn reason_code(reason: &str) -> (&'static str, u16) {
    match reason {
        "Forbidden" => ("Forbidden", 403),
        "Unauthorized" => ("Unauthorized", 401),
        "RequestEntityTooLarge" => ("RequestEntityTooLarge", 413),
        _ => ("Invalid", 422),
    }
}

/// The params a binding evaluates its policy with: `[None]` without a paramKind.
async fn params(
    lookup: &dyn Lookup,
    policy: &Value,
    binding: &Value,
    req: &Request<'_>,
) -> Result<Vec<Option<Value>>, String> {
    let kind = &policy["spec"]["paramKind"];
    if kind.is_null() {
        return Ok(vec![None]);
    }
    let param_ref = &binding["spec"]["paramRef"];
    if param_ref.is_null() {
        return Ok(vec![None]);
    }
    let api_version = kind["apiVersion"].as_str().unwrap_or_default();
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    let kind_name = kind["kind"].as_str().unwrap_or_default();
    let info = resources::RESOURCES
        .iter()
        .find(|r| r.group == group && r.version == version && r.kind == kind_name)
        .ok_or_else(|| format!("failed to find resource referenced by paramKind: '{group}/{version}, Kind={kind_name}'"))?;
    let ref_namespace = param_ref["namespace"].as_str().unwrap_or_default();
    if !info.namespaced && !ref_namespace.is_empty() {
        return Err(
            "paramRef.namespace must not be provided for a cluster-scoped `paramKind`".into(),
        );
    }
    let namespace = if !info.namespaced {
        None
    } else if !ref_namespace.is_empty() {
        Some(ref_namespace)
    } else {
        match req.namespace.filter(|n| !n.is_empty()) {
            Some(ns) => Some(ns),
            None => {
                return Err(
                    "cannot use namespaced paramRef in policy binding that matches cluster-scoped resources"
                        .into(),
                )
            }
        }
    };
    let found: Vec<Option<Value>> =
        if let Some(name) = param_ref["name"].as_str().filter(|n| !n.is_empty()) {
            lookup
                .get(info.group, info.resource, namespace, name)
                .await
                .map_err(|e| e.message)?
                .map(|p| Some((*p).clone()))
                .into_iter()
                .collect()
        } else {
            let selector = &param_ref["selector"];
            let all = match namespace {
                Some(ns) => lookup.list_in(info.group, info.resource, ns).await,
                None => lookup.list(info.group, info.resource).await,
            }
            .map_err(|e| e.message)?;
            let mut picked = Vec::new();
            for p in all {
                let labels = p.pointer("/metadata/labels").and_then(Value::as_object);
                if matching::selector_matches(selector, labels)? {
                    picked.push(Some((*p).clone()));
                }
            }
            picked
        };
    if found.is_empty() && param_ref["parameterNotFoundAction"] == "Deny" {
        return Err(
            "no params found for policy binding with `Deny` parameterNotFoundAction".into(),
        );
    }
    Ok(found)
}

/// What one binding's evaluation with one param found: refusals (message, reason) and
/// audit annotations (key, value).
#[derive(Default)]
struct Evaluation {
    failures: Vec<(String, &'static str)>,
    errors: Vec<String>,
    annotations: Vec<(String, String)>,
    /// A matchCondition was false: the binding does not apply.
    excluded: bool,
}

/// Evaluates the policy's conditions, variables, validations and audit annotations.
fn evaluate(policy: &Value, activation: &mut Activation) -> Evaluation {
    let spec = &policy["spec"];
    let mut result = Evaluation::default();
    let list = |k: &str| spec[k].as_array().cloned().unwrap_or_default();
    let compiled = |source: &str| Expression::compile(source);
    let mut condition_errors = Vec::new();
    for condition in list("matchConditions") {
        let source = condition["expression"].as_str().unwrap_or_default();
        match compiled(source).and_then(|e| e.eval_bool(activation)) {
            Ok(true) => {}
            Ok(false) => {
                result.excluded = true;
                return result;
            }
            Err(e) => condition_errors.push(e),
        }
    }
    if !condition_errors.is_empty() {
        result.errors.extend(condition_errors);
        return result;
    }
    let mut variables = HashMap::new();
    for variable in list("variables") {
        let name = variable["name"].as_str().unwrap_or_default().to_string();
        let source = variable["expression"].as_str().unwrap_or_default();
        match compiled(source).and_then(|e| e.eval(activation)) {
            Ok(v) => {
                variables.insert(name, v);
                activation.set_variables(variables.clone());
            }
            Err(e) => {
                result.errors.push(e);
                return result;
            }
        }
    }
    for validation in list("validations") {
        let source = validation["expression"].as_str().unwrap_or_default();
        match compiled(source).and_then(|e| e.eval_bool(activation)) {
            Ok(true) => {}
            Ok(false) => {
                let from_expression = validation["messageExpression"]
                    .as_str()
                    .filter(|m| !m.is_empty())
                    .and_then(|m| compiled(m).and_then(|e| e.eval_string(activation)).ok())
                    .map(|m| m.trim().to_string())
                    .filter(|m| !m.is_empty() && !m.contains('\n'));
                let message = from_expression
                    .or_else(|| {
                        validation["message"]
                            .as_str()
                            .map(|m| m.trim().to_string())
                            .filter(|m| !m.is_empty())
                    })
                    .unwrap_or_else(|| format!("failed expression: {}", source.trim()));
                let (reason, _) = reason_code(validation["reason"].as_str().unwrap_or_default());
                result.failures.push((message, reason));
            }
            Err(e) => result.errors.push(e),
        }
    }
    for annotation in list("auditAnnotations") {
        let key = annotation["key"].as_str().unwrap_or_default();
        let source = annotation["valueExpression"].as_str().unwrap_or_default();
        match compiled(source).and_then(|e| e.eval(activation)) {
            Ok(cel::Value::String(s)) => result.annotations.push((key.to_string(), s.to_string())),
            Ok(cel::Value::Null) => {}
            Ok(other) => result.errors.push(format!(
                "valueExpression '{source}' resulted in unsupported return type: {other:?}. Return type must be either string or null."
            )),
            Err(e) => result.errors.push(e),
        }
    }
    result
}

/// The policies' verdict on the request: the first denial, warnings and audit annotations in
/// `out`.
pub async fn validate(
    lookup: &dyn Lookup,
    req: &Request<'_>,
    object: Option<&Value>,
    old: Option<&Value>,
    out: &mut Outcome,
) -> ApiResult<()> {
    if webhook::exempt(req) {
        return Ok(());
    }
    let mut bindings = lookup
        .list(GROUP, "validatingadmissionpolicybindings")
        .await?;
    if bindings.is_empty() {
        return Ok(());
    }
    bindings.sort_by(|a, b| {
        let key = |v: &Value| {
            (
                v["spec"]["policyName"].as_str().map(str::to_string),
                name_of(v).to_string(),
            )
        };
        key(a).cmp(&key(b))
    });
    let namespace = match matching::namespace_subject(req, object, old) {
        NamespaceSubject::Always => None,
        NamespaceSubject::Own(ns) => ns.cloned(),
        NamespaceSubject::Namespace(name) => lookup
            .get("", "namespaces", None, name)
            .await?
            .map(|ns| (*ns).clone()),
    };
    let mut denied: Vec<Decision> = Vec::new();
    let mut audit_failures = Vec::new();
    let mut request_json = None;
    for binding in &bindings {
        let policy_name = binding["spec"]["policyName"].as_str().unwrap_or_default();
        let Some(policy) = lookup
            .get(GROUP, "validatingadmissionpolicies", None, policy_name)
            .await?
        else {
            continue;
        };
        let binding_name = name_of(binding).to_string();
        let fails_open = policy["spec"]["failurePolicy"] == "Ignore";
        let constraints = &policy["spec"]["matchConstraints"];
        let policy_error = |message: String, binding: Option<&str>| Decision {
            policy: policy_name.to_string(),
            binding: binding.map(str::to_string),
            message,
            reason: "Invalid",
        };
        match resources_match(constraints, req, object, old, namespace.as_ref()) {
            Ok(true) => {}
            Ok(false) => continue,
            Err(e) => {
                if !fails_open {
                    denied.push(policy_error(
                        format!("failed to configure policy: {e}"),
                        None,
                    ));
                }
                continue;
            }
        }
        let own = &binding["spec"]["matchResources"];
        if !own.is_null() {
            match resources_match(own, req, object, old, namespace.as_ref()) {
                Ok(true) => {}
                Ok(false) => continue,
                Err(e) => {
                    if !fails_open {
                        denied.push(policy_error(
                            format!("failed to configure binding: {e}"),
                            Some(&binding_name),
                        ));
                    }
                    continue;
                }
            }
        }
        let params = match params(lookup, &policy, binding, req).await {
            Ok(params) => params,
            Err(e) => {
                if !fails_open {
                    denied.push(policy_error(
                        format!("failed to configure binding: {e}"),
                        Some(&binding_name),
                    ));
                }
                continue;
            }
        };
        let request =
            request_json.get_or_insert_with(|| webhook::admission_request("", req, object, old));
        let actions: Vec<&str> = binding["spec"]["validationActions"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        for param in &params {
            let mut activation =
                Activation::new(object, old, request, param.as_ref(), namespace.as_ref());
            let evaluation = evaluate(&policy, &mut activation);
            if evaluation.excluded {
                continue;
            }
            let mut failures = evaluation.failures;
            if !fails_open {
                failures.extend(evaluation.errors.into_iter().map(|e| (e, "Invalid")));
            }
            for (message, reason) in failures {
                for action in &actions {
                    match *action {
                        "Deny" => denied.push(Decision {
                            policy: policy_name.to_string(),
                            binding: Some(binding_name.clone()),
                            message: message.clone(),
                            reason,
                        }),
                        "Warn" => out.warnings.push(format!(
                            "Validation failed for ValidatingAdmissionPolicy '{policy_name}' with binding '{binding_name}': {message}"
                        )),
                        "Audit" => audit_failures.push(json!({
                            "message": message,
                            "policy": policy_name,
                            "binding": binding_name,
                            "expressionIndex": 0,
                            "validationActions": actions,
                        })),
                        _ => {}
                    }
                }
            }
            for (key, value) in evaluation.annotations {
                out.annotate(&format!("{policy_name}/{key}"), &value);
            }
        }
    }
    if !audit_failures.is_empty() {
        out.annotate(
            "validation.policy.admission.k8s.io/validation_failure",
            &Value::Array(audit_failures).to_string(),
        );
    }
    let Some(first) = denied.first() else {
        return Ok(());
    };
    let message = first.message();
    let (reason, code) = reason_code(first.reason);
    let mut error = forbidden(req.info.group, req.info.resource, req.name, &message);
    error.code = code;
    error.reason = reason;
    if let Some(details) = error.details.as_mut() {
        details
            .causes
            .get_or_insert_with(Vec::new)
            .push(StatusCause {
                message: Some(message),
                ..StatusCause::default()
            });
    }
    Err(error)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validations_fail_with_their_message() {
        let policy = json!({"spec": {
            "variables": [{"name": "replicas", "expression": "object.spec.replicas"}],
            "validations": [
                {"expression": "variables.replicas <= int(params.data.max)",
                 "messageExpression": "'replicas must be at most ' + params.data.max"},
                {"expression": "object.metadata.name != 'bad'", "reason": "Forbidden"},
                {"expression": "object.spec.missing > 1"},
            ]
        }});
        let object = json!({"metadata": {"name": "bad"}, "spec": {"replicas": 6}});
        let params = json!({"data": {"max": "5"}});
        let request = json!({});
        let mut activation = Activation::new(Some(&object), None, &request, Some(&params), None);
        let result = evaluate(&policy, &mut activation);
        assert_eq!(
            result.failures,
            vec![
                ("replicas must be at most 5".to_string(), "Invalid"),
                (
                    "failed expression: object.metadata.name != 'bad'".to_string(),
                    "Forbidden"
                ),
            ]
        );
        assert_eq!(result.errors.len(), 1);
    }

    #[test]
    fn a_false_match_condition_excludes() {
        let policy = json!({"spec": {
            "matchConditions": [{"name": "only-a", "expression": "object.metadata.name == 'a'"}],
            "validations": [{"expression": "false"}]
        }});
        let object = json!({"metadata": {"name": "b"}});
        let mut activation = Activation::new(Some(&object), None, &json!({}), None, None);
        assert!(evaluate(&policy, &mut activation).excluded);
    }
}
