//! PodSecurity admission (upstream `pod-security-admission/admission`, wrapped by
//! `plugin/pkg/admission/security/podsecurity`): the Pod Security Standards enforced per
//! namespace by its `pod-security.kubernetes.io/{enforce,audit,warn}[-version]` labels.
//!
//! - pods (create, and updates that change an image or add an ephemeral container): the enforce
//!   level refuses (403 `pods "x" is forbidden: violates PodSecurity "restricted:latest": ...`),
//!   the warn level answers `Warning` headers (`would violate PodSecurity ...`);
//! - workloads with a pod template (Deployments, Jobs, ...): warnings only, never a refusal;
//! - namespaces: invalid label values are refused (422); a stricter enforce level answers
//!   warnings naming the existing pods that violate it.
//!
//! Every pod write checked also annotates the request's audit event as upstream's does
//! (`pod-security.kubernetes.io/enforce-policy`, `audit-violations` at the audit level,
//! `exempt`, `error`). `levels` parses the labels, `checks` holds the checks, `config` reads
//! the defaults and exemptions.

pub mod checks;
pub mod config;
pub mod levels;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use serde_json::Value;

use super::Outcome;
use crate::error::{ApiError, ApiResult, FieldError};
use checks::{evaluate, forbidden_detail, forbidden_reason, Violation};
use levels::{labels_of, policy_to_evaluate, Level, LevelVersion, Policy};

/// The audit annotations upstream's plugin adds to a request's audit event (each prefixed with
/// `pod-security.kubernetes.io/`).
pub const ENFORCE_POLICY_ANNOTATION: &str = "pod-security.kubernetes.io/enforce-policy";
pub const AUDIT_VIOLATIONS_ANNOTATION: &str = "pod-security.kubernetes.io/audit-violations";
pub const EXEMPT_ANNOTATION: &str = "pod-security.kubernetes.io/exempt";
pub const ERROR_ANNOTATION: &str = "pod-security.kubernetes.io/error";

/// Upstream's `PodSecurityConfiguration`: the policy of unlabelled namespaces and who is exempt.
/// The API server's default: privileged everywhere, nobody exempt (not even kube-system).
#[derive(Clone, Debug, Default)]
pub struct Config {
    pub defaults: Policy,
    pub exemptions: Exemptions,
}

#[derive(Clone, Debug, Default)]
pub struct Exemptions {
    pub usernames: Vec<String>,
    pub runtime_classes: Vec<String>,
    pub namespaces: Vec<String>,
}

impl Config {
    fn exempt_namespace(&self, namespace: &str) -> bool {
        !namespace.is_empty() && self.exemptions.namespaces.iter().any(|n| n == namespace)
    }
    fn exempt_user(&self, user: &str) -> bool {
        !user.is_empty() && self.exemptions.usernames.iter().any(|n| n == user)
    }
    fn exempt_runtime_class(&self, spec: &Value) -> bool {
        let class = spec["runtimeClassName"].as_str().unwrap_or_default();
        !class.is_empty() && self.exemptions.runtime_classes.iter().any(|n| n == class)
    }
    fn policy(&self, namespace: &Value) -> (Policy, Vec<FieldError>) {
        policy_to_evaluate(&labels_of(namespace), self.defaults)
    }
}

/// What a write is: its resource, and for whom.
pub struct Subject<'a> {
    pub group: &'a str,
    pub resource: &'a str,
    pub namespace: &'a str,
    pub name: &'a str,
    pub user: &'a str,
}

/// Upstream `DefaultPodSpecExtractor`: the resources whose objects carry a pod template.
pub fn has_pod_template(group: &str, resource: &str) -> bool {
    matches!(
        (group, resource),
        ("", "replicationcontrollers")
            | ("", "podtemplates")
            | ("apps", "replicasets")
            | ("apps", "deployments")
            | ("apps", "statefulsets")
            | ("apps", "daemonsets")
            | ("batch", "jobs")
            | ("batch", "cronjobs")
    )
}

/// The pod template's metadata and spec of a workload; None when it has none (a
/// ReplicationController without a template).
pub fn pod_template<'a>(resource: &str, object: &'a Value) -> Option<(&'a Value, &'a Value)> {
    let pointer = match resource {
        "podtemplates" => "/template",
        "cronjobs" => "/spec/jobTemplate/spec/template",
        _ => "/spec/template",
    };
    let template = object.pointer(pointer).filter(|t| !t.is_null())?;
    Some((&template["metadata"], &template["spec"]))
}

fn would_violate(lv: LevelVersion, violations: &[Violation]) -> String {
    format!(
        "would violate PodSecurity \"{lv}\": {}",
        forbidden_detail(violations)
    )
}

/// Upstream `EvaluatePod`: the enforce level (when `enforce`) refuses, the audit level
/// annotates the audit event, the warn level warns. A pod with an exempt runtime class passes.
fn evaluate_pod(
    config: &Config,
    policy: &Policy,
    policy_errors: &[FieldError],
    subject: &Subject,
    (metadata, spec): (&Value, &Value),
    enforce: bool,
    out: &mut Outcome,
) -> ApiResult<()> {
    if config.exempt_runtime_class(spec) {
        out.annotate(EXEMPT_ANNOTATION, "runtimeClass");
        return Ok(());
    }
    if !policy_errors.is_empty() {
        out.annotate(
            ERROR_ANNOTATION,
            &format!("Failed to parse policy: {}", aggregate(policy_errors)),
        );
    }
    let mut results: Vec<(LevelVersion, Vec<Violation>)> = Vec::new();
    let mut result_of = |lv: LevelVersion| -> Vec<Violation> {
        if let Some((_, cached)) = results.iter().find(|(l, _)| *l == lv) {
            return cached.clone();
        }
        let violations = evaluate(lv, metadata, spec);
        results.push((lv, violations.clone()));
        violations
    };
    let mut denied = None;
    if enforce {
        out.annotate(ENFORCE_POLICY_ANNOTATION, &policy.enforce.to_string());
        let violations = result_of(policy.enforce);
        if !violations.is_empty() {
            denied = Some(super::forbidden(
                subject.group,
                subject.resource,
                subject.name,
                &format!(
                    "violates PodSecurity \"{}\": {}",
                    policy.enforce,
                    forbidden_detail(&violations)
                ),
            ));
        }
    }
    let audit = result_of(policy.audit);
    if !audit.is_empty() {
        out.annotate(
            AUDIT_VIOLATIONS_ANNOTATION,
            &would_violate(policy.audit, &audit),
        );
    }
    if let Some(denied) = denied {
        return Err(denied);
    }
    let warn = result_of(policy.warn);
    if !warn.is_empty() {
        out.warnings.push(would_violate(policy.warn, &warn));
    }
    Ok(())
}

/// Upstream `field.ErrorList.ToAggregate().Error()`.
fn aggregate(errors: &[FieldError]) -> String {
    let messages: Vec<String> = errors
        .iter()
        .map(|e| format!("{}: {}", e.field, e.message))
        .collect();
    match messages.len() {
        1 => messages[0].clone(),
        _ => format!("[{}]", messages.join(", ")),
    }
}

/// Upstream `isSignificantPodUpdate`: an update is checked only when it changes what the checks
/// could see change on a running pod — an image, the number of containers, a new ephemeral
/// container.
pub fn significant_pod_update(new: &Value, old: &Value) -> bool {
    let list = |pod: &Value, name: &str| -> Vec<Value> {
        pod.pointer(&format!("/spec/{name}"))
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    for name in ["containers", "initContainers"] {
        let (a, b) = (list(new, name), list(old, name));
        if a.len() != b.len() || a.iter().zip(&b).any(|(x, y)| x["image"] != y["image"]) {
            return true;
        }
    }
    let old_ephemeral = list(old, "ephemeralContainers");
    list(new, "ephemeralContainers").iter().any(|c| {
        match old_ephemeral.iter().find(|o| o["name"] == c["name"]) {
            None => true,
            Some(o) => o["image"] != c["image"],
        }
    })
}

/// A pod create or update (upstream `ValidatePod`). `namespace` is the pod's namespace object
/// (None: it could not be read); `old` the stored pod on update. Warnings and audit annotations
/// go to `out`.
pub fn check_pod(
    config: &Config,
    subject: &Subject,
    namespace: Option<&Value>,
    pod: &Value,
    old: Option<&Value>,
    out: &mut Outcome,
) -> ApiResult<()> {
    if config.exempt_namespace(subject.namespace) {
        out.annotate(EXEMPT_ANNOTATION, "namespace");
        return Ok(());
    }
    if config.exempt_user(subject.user) {
        out.annotate(EXEMPT_ANNOTATION, "user");
        return Ok(());
    }
    let Some(namespace) = namespace else {
        let err = ApiError::internal(format!(
            "failed to lookup namespace {:?}",
            subject.namespace
        ));
        out.annotate(ERROR_ANNOTATION, &err.message);
        return Err(err);
    };
    let (policy, errors) = config.policy(namespace);
    if errors.is_empty() && policy.fully_privileged() {
        out.annotate(
            ENFORCE_POLICY_ANNOTATION,
            &LevelVersion::PRIVILEGED_LATEST.to_string(),
        );
        return Ok(());
    }
    if let Some(old) = old {
        if !significant_pod_update(pod, old) {
            return Ok(());
        }
    }
    evaluate_pod(
        config,
        &policy,
        &errors,
        subject,
        (&pod["metadata"], &pod["spec"]),
        true,
        out,
    )
}

/// A workload with a pod template, created or updated (upstream `ValidatePodController`):
/// warnings and audit annotations only. A namespace that cannot be read allows the write.
pub fn check_pod_controller(
    config: &Config,
    subject: &Subject,
    namespace: Option<&Value>,
    object: &Value,
    out: &mut Outcome,
) {
    if config.exempt_namespace(subject.namespace) {
        out.annotate(EXEMPT_ANNOTATION, "namespace");
        return;
    }
    if config.exempt_user(subject.user) {
        out.annotate(EXEMPT_ANNOTATION, "user");
        return;
    }
    let Some(namespace) = namespace else {
        out.annotate(
            ERROR_ANNOTATION,
            &format!("failed to lookup namespace {:?}", subject.namespace),
        );
        return;
    };
    let (policy, errors) = config.policy(namespace);
    if errors.is_empty()
        && policy.warn.level == Level::Privileged
        && policy.audit.level == Level::Privileged
    {
        return;
    }
    let Some(template) = pod_template(subject.resource, object) else {
        return;
    };
    // Never refused: enforce is not evaluated.
    let _ = evaluate_pod(config, &policy, &errors, subject, template, false, out);
}

/// What a namespace write needs beyond its own labels.
#[derive(Debug, PartialEq)]
pub enum NamespaceCheck {
    /// Allowed, with these warnings.
    Done(Vec<String>),
    /// Allowed; the namespace's existing pods are to be checked against this new enforce level
    /// ([`evaluate_pods_in_namespace`]) for warnings.
    CheckPods(LevelVersion),
}

/// A namespace create or update (upstream `ValidateNamespace`): invalid labels are refused (an
/// update only when they newly became invalid), a stricter enforce level checks existing pods.
pub fn check_namespace(
    config: &Config,
    new: &Value,
    old: Option<&Value>,
) -> ApiResult<NamespaceCheck> {
    let name = new
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let (policy, errors) = config.policy(new);
    let invalid = |errors| ApiError::invalid(crate::resources::namespaces(), name, errors);
    let exempt_warning = || {
        exempt_namespace_warning(config, name, &policy, &labels_of(new))
            .into_iter()
            .collect::<Vec<_>>()
    };
    let Some(old) = old else {
        if !errors.is_empty() {
            return Err(invalid(errors));
        }
        if config.exempt_namespace(name) {
            return Ok(NamespaceCheck::Done(exempt_warning()));
        }
        return Ok(NamespaceCheck::Done(Vec::new()));
    };
    let (old_policy, old_errors) = config.policy(old);
    let same_errors = |a: &[FieldError], b: &[FieldError]| {
        a.len() == b.len()
            && a.iter()
                .zip(b)
                .all(|(x, y)| x.field == y.field && x.message == y.message)
    };
    if !errors.is_empty() && (old_errors.is_empty() || !same_errors(&errors, &old_errors)) {
        return Err(invalid(errors));
    }
    if policy.enforce == old_policy.enforce || policy.enforce.level == Level::Privileged {
        return Ok(NamespaceCheck::Done(Vec::new()));
    }
    if policy.enforce.version == old_policy.enforce.version
        && policy.enforce.level <= old_policy.enforce.level
    {
        return Ok(NamespaceCheck::Done(Vec::new()));
    }
    if config.exempt_namespace(name) {
        return Ok(NamespaceCheck::Done(exempt_warning()));
    }
    Ok(NamespaceCheck::CheckPods(policy.enforce))
}

/// Upstream's warning for labels on an exempt namespace.
fn exempt_namespace_warning(
    config: &Config,
    namespace: &str,
    policy: &Policy,
    labels: &BTreeMap<String, String>,
) -> Option<String> {
    if policy.fully_privileged() || policy.equivalent(&config.defaults) {
        return None;
    }
    let has = |a: &str, b: &str| labels.contains_key(a) || labels.contains_key(b);
    let mut parts = Vec::new();
    if policy.enforce.level != Level::Privileged
        && has(levels::ENFORCE_LEVEL_LABEL, levels::ENFORCE_VERSION_LABEL)
    {
        parts.push(format!("enforce={}", policy.enforce));
    }
    if policy.audit.level != Level::Privileged
        && has(levels::AUDIT_LEVEL_LABEL, levels::AUDIT_VERSION_LABEL)
    {
        parts.push(format!("audit={}", policy.audit));
    }
    if policy.warn.level != Level::Privileged
        && has(levels::WARN_LEVEL_LABEL, levels::WARN_VERSION_LABEL)
    {
        parts.push(format!("warn={}", policy.warn));
    }
    Some(format!(
        "namespace {namespace:?} is exempt from Pod Security, and the policy ({}) will be ignored",
        parts.join(", ")
    ))
}

/// How many existing pods a new enforce level is checked against (upstream's default).
const MAX_PODS_TO_CHECK: usize = 3000;

/// Upstream `EvaluatePodsInNamespace`: the warnings for a namespace's existing pods under a new
/// enforce level — one line per distinct set of reasons, naming the first pod (by name) and how
/// many others share it; pods of a controller already seen are checked last.
pub fn evaluate_pods_in_namespace(
    config: &Config,
    namespace: &str,
    enforce: LevelVersion,
    pods: &[Arc<Value>],
) -> Vec<String> {
    // One pod per controller first, then the other replicas.
    let mut seen_controllers = std::collections::HashSet::new();
    let mut first = Vec::new();
    let mut duplicates = Vec::new();
    for pod in pods {
        if config.exempt_runtime_class(&pod["spec"]) {
            continue;
        }
        let controller = pod
            .pointer("/metadata/ownerReferences")
            .and_then(Value::as_array)
            .and_then(|refs| refs.iter().find(|r| r["controller"] == true))
            .map(|r| r["uid"].as_str().unwrap_or_default().to_string());
        match controller {
            None => first.push(pod),
            Some(uid) if seen_controllers.insert(uid.clone()) => first.push(pod),
            Some(_) => duplicates.push(pod),
        }
    }
    first.extend(duplicates);
    let total = first.len();
    let checked = total.min(MAX_PODS_TO_CHECK);
    let mut order: Vec<String> = Vec::new();
    let mut counts: HashMap<String, (String, usize)> = HashMap::new();
    for pod in &first[..checked] {
        let violations = evaluate(enforce, &pod["metadata"], &pod["spec"]);
        if violations.is_empty() {
            continue;
        }
        let reason = forbidden_reason(&violations);
        let pod_name = pod["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        match counts.get_mut(&reason) {
            None => {
                order.push(reason.clone());
                counts.insert(reason, (pod_name, 1));
            }
            Some((name, count)) => {
                if pod_name < *name {
                    *name = pod_name;
                }
                *count += 1;
            }
        }
    }
    let mut warnings = Vec::new();
    if checked < total {
        warnings.push(format!(
            "new PodSecurity enforce level only checked against the first {checked} of {total} existing pods"
        ));
    }
    if !order.is_empty() {
        warnings.push(format!(
            "existing pods in namespace {namespace:?} violate the new PodSecurity enforce level \"{enforce}\""
        ));
    }
    let mut pod_warnings: Vec<String> = order
        .into_iter()
        .map(|reason| {
            let (name, count) = &counts[&reason];
            match count {
                1 => format!("{name}: {reason}"),
                2 => format!("{name} (and 1 other pod): {reason}"),
                n => format!("{name} (and {} other pods): {reason}", n - 1),
            }
        })
        .collect();
    pod_warnings.sort();
    warnings.extend(pod_warnings);
    warnings
}

#[cfg(test)]
mod tests;
