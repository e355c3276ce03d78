//! Admission webhooks: upstream's MutatingAdmissionWebhook and ValidatingAdmissionWebhook
//! plugins (`apiserver/pkg/admission/plugin/webhook/{generic,mutating,validating}`).
//!
//! The configurations are read from the watch cache on every request (as the other plugins
//! read theirs, through `Lookup`): the cache is fed by the store's watch, so a configuration
//! applies as soon as it is stored there, and costs nothing when there are none. A webhook is
//! called when its `rules` match (`admission::matching`), then its `namespaceSelector` and
//! `objectSelector`, then its `matchConditions` (CEL, `admission::cel`); configurations in
//! name order, webhooks in their order. Requests on the admission configurations themselves
//! never go to webhooks (upstream's exemption, so a broken webhook cannot lock itself in).
//!
//! Mutating webhooks run one after the other, each on the object the previous one patched
//! (JSONPatch, applied with `json-patch`); a webhook with `reinvocationPolicy: IfNeeded` runs a
//! second time when a later one changed the object. Validating webhooks run concurrently and
//! the first refusal (in their order) is answered. A refusal is upstream's
//! `admission webhook "<name>" denied the request: <message>`; a webhook that cannot be called
//! or answers nonsense fails the request with `failed calling webhook "<name>": …` under
//! `failurePolicy: Fail` and is skipped (with a `failed-open…` audit annotation) under
//! `Ignore`. A dry run reaches only webhooks whose `sideEffects` are None or NoneOnDryRun.
//! `warnings` become `Warning` headers, `auditAnnotations` the audit event's
//! `<webhook>/<key>` annotations. `client.rs` makes the calls.
//!
//! Not done: DELETE and CONNECT requests (the delete handlers run no plugin admission yet), and
//! conversion of the object to the version a rule names under `matchPolicy: Equivalent`.

pub mod client;

use std::time::Duration;

use base64::Engine;
use serde_json::{json, Map, Value};

use super::cel::{Activation, Expression};
use super::matching::{self, NamespaceSubject};
use super::{forbidden, Outcome, Request};
use crate::error::{ApiError, ApiResult};
use crate::registry::Lookup;

const GROUP: &str = "admissionregistration.k8s.io";

/// Whether requests on this resource skip webhooks and policies: the admission configurations
/// themselves (upstream's `IsExemptAdmissionConfigurationResource`).
pub fn exempt(req: &Request<'_>) -> bool {
    req.info.group == GROUP
        && matches!(
            req.info.resource,
            "validatingwebhookconfigurations"
                | "mutatingwebhookconfigurations"
                | "validatingadmissionpolicies"
                | "validatingadmissionpolicybindings"
                | "mutatingadmissionpolicies"
                | "mutatingadmissionpolicybindings"
        )
}

/// One webhook of a configuration.
struct Hook {
    configuration: String,
    spec: Value,
}

impl Hook {
    fn name(&self) -> &str {
        self.spec["name"].as_str().unwrap_or_default()
    }
    fn fails_open(&self) -> bool {
        self.spec["failurePolicy"] == "Ignore"
    }
    fn timeout(&self) -> Duration {
        Duration::from_secs(
            self.spec["timeoutSeconds"]
                .as_u64()
                .unwrap_or(10)
                .clamp(1, 30),
        )
    }
}

/// The webhooks of every configuration of `resource`, configurations in name order.
async fn hooks(lookup: &dyn Lookup, resource: &str) -> ApiResult<Vec<Hook>> {
    let mut configurations = lookup.list(GROUP, resource).await?;
    if configurations.is_empty() {
        return Ok(Vec::new());
    }
    configurations.sort_by(|a, b| {
        a.pointer("/metadata/name")
            .and_then(Value::as_str)
            .cmp(&b.pointer("/metadata/name").and_then(Value::as_str))
    });
    Ok(configurations
        .iter()
        .flat_map(|c| {
            let configuration = c
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            c["webhooks"]
                .as_array()
                .into_iter()
                .flatten()
                .map(move |spec| Hook {
                    configuration: configuration.clone(),
                    spec: spec.clone(),
                })
        })
        .collect())
}

/// The AdmissionRequest of this write (`object` as it stands now).
pub fn admission_request(
    uid: &str,
    req: &Request<'_>,
    object: Option<&Value>,
    old: Option<&Value>,
) -> Value {
    let info = req.info;
    let kind = json!({"group": info.group, "version": info.version, "kind": info.kind});
    let resource = json!({"group": info.group, "version": info.version, "resource": info.resource});
    let mut user = Map::new();
    user.insert("username".into(), json!(req.user.name));
    if !req.user.uid.is_empty() {
        user.insert("uid".into(), json!(req.user.uid));
    }
    if !req.user.groups.is_empty() {
        user.insert("groups".into(), json!(req.user.groups));
    }
    if !req.user.extra.is_empty() {
        user.insert("extra".into(), json!(req.user.extra));
    }
    let options_kind = match req.operation {
        crate::auth::admission::Operation::Create => "CreateOptions",
        crate::auth::admission::Operation::Update => "UpdateOptions",
        crate::auth::admission::Operation::Delete => "DeleteOptions",
    };
    let mut options = json!({"apiVersion": "meta.k8s.io/v1", "kind": options_kind});
    if req.dry_run {
        options["dryRun"] = json!(["All"]);
    }
    let mut request = json!({
        "uid": uid,
        "kind": kind,
        "resource": resource,
        "requestKind": kind,
        "requestResource": resource,
        "name": req.name,
        "operation": matching::operation_name(req.operation),
        "userInfo": user,
        "object": object,
        "oldObject": old,
        "dryRun": req.dry_run,
        "options": options,
    });
    if let Some(sub) = req.sub {
        request["subResource"] = json!(sub.name());
        request["requestSubResource"] = json!(sub.name());
    }
    if let Some(ns) = req.namespace.filter(|n| !n.is_empty()) {
        request["namespace"] = json!(ns);
    }
    request
}

/// Whether `hook` applies to the request: rules, selectors, then matchConditions.
async fn applies(
    lookup: &dyn Lookup,
    hook: &Hook,
    req: &Request<'_>,
    object: Option<&Value>,
    old: Option<&Value>,
) -> ApiResult<bool> {
    let spec = &hook.spec;
    let equivalent = spec["matchPolicy"] != "Exact";
    if !matching::rules_match(&spec["rules"], req, equivalent) {
        return Ok(false);
    }
    let selector_error = |e: String| ApiError::internal(e);
    let namespace_selector = &spec["namespaceSelector"];
    let namespace = match matching::namespace_subject(req, object, old) {
        NamespaceSubject::Always => None,
        NamespaceSubject::Own(ns) => ns.cloned(),
        NamespaceSubject::Namespace(name) => lookup
            .get("", "namespaces", None, name)
            .await?
            .map(|ns| (*ns).clone()),
    };
    if !matches!(
        matching::namespace_subject(req, object, old),
        NamespaceSubject::Always
    ) && !matching::namespace_selector_matches(namespace_selector, namespace.as_ref())
        .map_err(selector_error)?
    {
        return Ok(false);
    }
    if !matching::object_selector_matches(&spec["objectSelector"], object, old)
        .map_err(selector_error)?
    {
        return Ok(false);
    }
    let conditions = spec["matchConditions"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    if conditions.is_empty() {
        return Ok(true);
    }
    let request = admission_request("", req, object, old);
    let activation = Activation::new(object, old, &request, None, None);
    let mut errors = Vec::new();
    for condition in conditions {
        let source = condition["expression"].as_str().unwrap_or_default();
        let result = Expression::compile(source).and_then(|e| e.eval_bool(&activation));
        match result {
            Ok(true) => {}
            Ok(false) => return Ok(false),
            Err(e) => errors.push(e),
        }
    }
    if errors.is_empty() {
        return Ok(true);
    }
    if hook.fails_open() {
        return Ok(false);
    }
    let why = if errors.len() == 1 {
        errors.remove(0)
    } else {
        format!("[{}]", errors.join(", "))
    };
    Err(forbidden(req.info.group, req.info.resource, req.name, &why))
}

/// Why a call did not yield an answer to act on.
enum CallError {
    /// The webhook could not be called or answered nonsense: its failurePolicy decides.
    Calling(String),
    /// A refusal or an error that fails the request whatever the policy.
    Refused(ApiError),
}

/// The StatusReason a webhook's refusal names, among upstream's.
fn reason(reason: &str) -> &'static str {
    const REASONS: &[&str] = &[
        "Unauthorized",
        "Forbidden",
        "NotFound",
        "AlreadyExists",
        "Conflict",
        "Gone",
        "Invalid",
        "ServerTimeout",
        "Timeout",
        "TooManyRequests",
        "BadRequest",
        "MethodNotAllowed",
        "NotAcceptable",
        "RequestEntityTooLarge",
        "UnsupportedMediaType",
        "InternalError",
        "Expired",
        "ServiceUnavailable",
    ];
    REASONS
        .iter()
        .find(|r| **r == reason)
        .copied()
        .unwrap_or("")
}

/// Upstream's `ToStatusErr`: the refusal as the client sees it.
fn denial(name: &str, result: &Value) -> ApiError {
    let denied = format!("admission webhook {name:?} denied the request");
    let message = result["message"].as_str().unwrap_or_default();
    let why = result["reason"].as_str().unwrap_or_default();
    let message = if !message.is_empty() {
        format!("{denied}: {message}")
    } else if !why.is_empty() {
        format!("{denied}: {why}")
    } else {
        format!("{denied} without explanation")
    };
    let code = match result["code"].as_u64() {
        Some(code @ 400..=599) => code as u16,
        _ => 400,
    };
    ApiError {
        details: result
            .get("details")
            .and_then(|d| serde_json::from_value(d.clone()).ok())
            .map(Box::new),
        ..ApiError::new(code, reason(why), message)
    }
}

/// Calls one webhook with the request and answers its verified response, warnings and audit
/// annotations recorded in `out`.
async fn call(
    lookup: &dyn Lookup,
    hook: &Hook,
    req: &Request<'_>,
    object: Option<&Value>,
    old: Option<&Value>,
    mutating: bool,
    out: &mut Outcome,
) -> Result<Value, CallError> {
    let name = hook.name();
    if req.dry_run
        && !matches!(
            hook.spec["sideEffects"].as_str(),
            Some("None" | "NoneOnDryRun")
        )
    {
        return Err(CallError::Refused(ApiError::bad_request(format!(
            "admission webhook {name:?} does not support dry run"
        ))));
    }
    let versions: Vec<&str> = hook.spec["admissionReviewVersions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    let version = if versions.contains(&"v1") {
        "v1"
    } else if versions.contains(&"v1beta1") {
        "v1beta1"
    } else {
        return Err(CallError::Calling(
            "could not create admission objects: webhook does not accept known AdmissionReview versions (v1, v1beta1)".into(),
        ));
    };
    let uid = uuid::Uuid::new_v4().to_string();
    let review = json!({
        "apiVersion": format!("admission.k8s.io/{version}"),
        "kind": "AdmissionReview",
        "request": admission_request(&uid, req, object, old),
    });
    let timeout = hook.timeout();
    let failed = |e: String| CallError::Calling(format!("failed to call webhook: {e}"));
    let endpoint = client::resolve(lookup, &hook.spec["clientConfig"], timeout)
        .await
        .map_err(failed)?;
    let ca_bundle = hook.spec["clientConfig"]["caBundle"]
        .as_str()
        .unwrap_or_default();
    let body = serde_json::to_vec(&review).expect("a review serializes");
    let answer = client::post(&endpoint, ca_bundle, body, timeout)
        .await
        .map_err(failed)?;
    let response = verify(&answer, &uid, version, mutating)
        .map_err(|e| CallError::Calling(format!("received invalid webhook response: {e}")))?;
    if let Some(annotations) = response["auditAnnotations"].as_object() {
        for (key, value) in annotations {
            out.annotate(&format!("{name}/{key}"), value.as_str().unwrap_or_default());
        }
    }
    for warning in response["warnings"].as_array().into_iter().flatten() {
        if let Some(w) = warning.as_str() {
            out.warnings.push(w.to_string());
        }
    }
    if response["allowed"] != true {
        return Err(CallError::Refused(denial(name, &response["status"])));
    }
    Ok(response)
}

/// Upstream's `VerifyAdmissionResponse`: the review's version and kind, the uid, and patches
/// only from mutating webhooks.
fn verify(answer: &Value, uid: &str, version: &str, mutating: bool) -> Result<Value, String> {
    let api_version = answer["apiVersion"].as_str().unwrap_or_default();
    let kind = answer["kind"].as_str().unwrap_or_default();
    let expected = format!("admission.k8s.io/{version}");
    if api_version != expected || kind != "AdmissionReview" {
        let (group, v) = api_version.split_once('/').unwrap_or(("", api_version));
        return Err(format!(
            "expected webhook response of admission.k8s.io/{version}, Kind=AdmissionReview, got {group}/{v}, Kind={kind}"
        ));
    }
    let response = answer
        .get("response")
        .filter(|r| r.is_object())
        .ok_or("webhook response was absent")?;
    let got = response["uid"].as_str().unwrap_or_default();
    if got != uid {
        return Err(format!("expected response.uid={uid:?}, got {got:?}"));
    }
    let patch = response.get("patch").is_some_and(|p| !p.is_null());
    let patch_type = response.get("patchType").is_some_and(|p| !p.is_null());
    if mutating {
        if patch && !patch_type {
            return Err("webhook returned response.patch but not response.patchType".into());
        }
        if patch_type && !patch {
            return Err("webhook returned response.patchType but not response.patch".into());
        }
        if let Some(t) = response["patchType"].as_str() {
            if t != "JSONPatch" {
                return Err(format!(
                    "webhook returned invalid response.patchType of {t:?}"
                ));
            }
        }
    } else if patch {
        return Err("validating webhook may not return response.patch".into());
    } else if patch_type {
        return Err("validating webhook may not return response.patchType".into());
    }
    Ok(response.clone())
}

/// A failed call under the webhook's failurePolicy: the request's error, or nothing (with the
/// failed-open audit annotation).
fn failure(hook: &Hook, reason: String, annotation: String, out: &mut Outcome) -> ApiResult<()> {
    let name = hook.name();
    if hook.fails_open() {
        tracing::warn!("Failed calling webhook, failing open {name}: failed calling webhook {name:?}: {reason}");
        out.annotate(&annotation, name);
        return Ok(());
    }
    Err(ApiError::internal(format!(
        "failed calling webhook {name:?}: {reason}"
    )))
}

/// The mutating webhooks, in order, on `object`; `old` on updates. Answers whether any
/// changed the object.
pub async fn mutate(
    lookup: &dyn Lookup,
    req: &Request<'_>,
    object: &mut Value,
    old: Option<&Value>,
    out: &mut Outcome,
) -> ApiResult<bool> {
    if exempt(req) {
        return Ok(false);
    }
    let hooks = hooks(lookup, "mutatingwebhookconfigurations").await?;
    if hooks.is_empty() {
        return Ok(false);
    }
    // Round 0 runs every webhook; round 1 those with IfNeeded that ran before a later change.
    let mut ran_at: Vec<Option<usize>> = vec![None; hooks.len()];
    let mut last_change: Option<usize> = None;
    let mut step = 0;
    for round in 0..2 {
        let mut index = 0;
        for (i, hook) in hooks.iter().enumerate() {
            if round == 1 {
                let again = hook.spec["reinvocationPolicy"] == "IfNeeded"
                    && matches!((ran_at[i], last_change), (Some(at), Some(change)) if change > at);
                if !again {
                    continue;
                }
            }
            if !applies(lookup, hook, req, Some(object), old).await? {
                continue;
            }
            let annotation_index = index;
            index += 1;
            step += 1;
            ran_at[i] = Some(step);
            let response = match call(lookup, hook, req, Some(object), old, true, out).await {
                Ok(response) => response,
                Err(CallError::Refused(e)) => return Err(e),
                Err(CallError::Calling(reason)) => {
                    let key = format!(
                        "failed-open.mutation.webhook.admission.k8s.io/round_{round}_index_{annotation_index}"
                    );
                    failure(hook, reason, key, out)?;
                    continue;
                }
            };
            let mutated = apply_patch(hook, &response, object)?;
            out.annotate(
                &format!("mutation.webhook.admission.k8s.io/round_{round}_index_{annotation_index}"),
                &json!({"configuration": hook.configuration, "webhook": hook.name(), "mutated": mutated})
                    .to_string(),
            );
            if mutated {
                last_change = Some(step);
            }
        }
        if last_change.is_none() {
            break;
        }
    }
    Ok(last_change.is_some())
}

/// Applies a mutating webhook's JSONPatch; answers whether the object changed.
fn apply_patch(hook: &Hook, response: &Value, object: &mut Value) -> ApiResult<bool> {
    let Some(encoded) = response["patch"].as_str() else {
        return Ok(false);
    };
    let name = hook.name();
    let undecodable = |e: String| {
        ApiError::internal(format!(
            "failed calling webhook {name:?}: received undecodable patch in webhook response: {e}"
        ))
    };
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .map_err(|e| undecodable(e.to_string()))?;
    let patch: json_patch::Patch =
        serde_json::from_slice(&bytes).map_err(|e| undecodable(e.to_string()))?;
    if patch.0.is_empty() {
        return Ok(false);
    }
    let mut patched = object.clone();
    json_patch::patch(&mut patched, &patch).map_err(|e| ApiError::internal(e.to_string()))?;
    let changed = patched != *object;
    *object = patched;
    Ok(changed)
}

/// The validating webhooks, concurrently, on the final object; the first refusal in their
/// order is answered.
pub async fn validate(
    lookup: &dyn Lookup,
    req: &Request<'_>,
    object: Option<&Value>,
    old: Option<&Value>,
    out: &mut Outcome,
) -> ApiResult<()> {
    if exempt(req) {
        return Ok(());
    }
    let hooks = hooks(lookup, "validatingwebhookconfigurations").await?;
    if hooks.is_empty() {
        return Ok(());
    }
    let mut relevant = Vec::new();
    for hook in &hooks {
        if applies(lookup, hook, req, object, old).await? {
            relevant.push(hook);
        }
    }
    let calls = relevant.iter().map(|hook| async move {
        let mut own = Outcome::default();
        let result = call(lookup, hook, req, object, old, false, &mut own).await;
        (result, own)
    });
    let results = futures::future::join_all(calls).await;
    let mut first_error = None;
    for (index, (hook, (result, own))) in relevant.iter().zip(results).enumerate() {
        out.warnings.extend(own.warnings);
        out.audit_annotations.extend(own.audit_annotations);
        let outcome = match result {
            Ok(_) => Ok(()),
            Err(CallError::Refused(e)) => Err(e),
            Err(CallError::Calling(reason)) => {
                let key = format!(
                    "failed-open.validating.webhook.admission.k8s.io/round_0_index_{index}"
                );
                failure(hook, reason, key, out)
            }
        };
        if let Err(e) = outcome {
            first_error.get_or_insert(e);
        }
    }
    first_error.map_or(Ok(()), Err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn denials_read_as_upstream() {
        let e = denial(
            "x.example.com",
            &json!({"message": "no", "code": 403, "reason": "Forbidden"}),
        );
        assert_eq!(e.code, 403);
        assert_eq!(e.reason, "Forbidden");
        assert_eq!(
            e.message,
            "admission webhook \"x.example.com\" denied the request: no"
        );
        let e = denial("x.example.com", &json!({}));
        assert_eq!(e.code, 400);
        assert_eq!(
            e.message,
            "admission webhook \"x.example.com\" denied the request without explanation"
        );
    }

    #[test]
    fn responses_are_verified() {
        let ok = json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
                        "response": {"uid": "u", "allowed": true}});
        assert!(verify(&ok, "u", "v1", false).is_ok());
        assert_eq!(
            verify(&ok, "v", "v1", false).unwrap_err(),
            "expected response.uid=\"v\", got \"u\""
        );
        let patched = json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
                             "response": {"uid": "u", "allowed": true, "patch": "W10="}});
        assert_eq!(
            verify(&patched, "u", "v1", true).unwrap_err(),
            "webhook returned response.patch but not response.patchType"
        );
        assert_eq!(
            verify(&patched, "u", "v1", false).unwrap_err(),
            "validating webhook may not return response.patch"
        );
    }
}
