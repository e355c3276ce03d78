//! Pods (`pkg/registry/core/pod`): defaults and the admission defaults every cluster runs
//! (ServiceAccount — `pods/serviceaccount.rs` —, Priority, DefaultTolerationSeconds), the QoS class, validation, what an
//! update may change, field selectors, graceful deletion, and the `kubectl get pods` printer.
//! The pod subresources (binding, eviction, log/exec/attach/portforward) are served by
//! `handlers/subresources.rs`; what `ephemeralcontainers` and `resize` may change is
//! `pods/ephemeral.rs` and `pods/resize.rs`.

pub mod ephemeral;
pub mod resize;
pub mod serviceaccount;

use futures::future::BoxFuture;

use crate::error::{ApiError, ApiResult, FieldError};
use crate::registry::core::podspec::{default_pod_spec, validate_pod_spec};
use crate::registry::fields::{child, default, spec_of};
use crate::registry::{DeletePlan, Lookup, Strategy};
use crate::resources::Sub;
use crate::table::prelude::*;

pub struct Pods;

pub static STRATEGY: Pods = Pods;

impl Strategy for Pods {
    fn default(&self, object: &mut Value) {
        let Some(spec) = spec_of(object) else {
            return;
        };
        default_pod_spec(spec);
        default(spec, "enableServiceLinks", json!(true));
        // The deprecated serviceAccount fills an empty serviceAccountName (upstream
        // SetDefaults_PodSpec); the two are kept equal.
        let deprecated = spec
            .get("serviceAccount")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_string);
        let named = spec
            .get("serviceAccountName")
            .and_then(Value::as_str)
            .is_some_and(|s| !s.is_empty());
        if let (Some(account), false) = (deprecated, named) {
            spec.insert("serviceAccountName".into(), json!(account));
        }
        // LimitRanger's companion default (upstream SetDefaults_Pod): requests from limits.
        crate::admission::limitranger::default_requests_from_limits(object);
    }

    fn prepare_for_create(&self, object: &mut Value, _uid: &str) {
        let mirror = serviceaccount::is_mirror(object);
        let Some(root) = object.as_object_mut() else {
            return;
        };
        let spec = child(root, "spec");
        // ServiceAccount admission (`pods/serviceaccount.rs`) names the account; it leaves
        // mirror pods alone, and so does this (it only matters when the plugin is off).
        if !mirror {
            default(spec, "serviceAccountName", json!("default"));
        }
        if let Some(sa) = spec.get("serviceAccountName").cloned() {
            spec.insert("serviceAccount".into(), sa);
        }
        // DefaultTolerationSeconds admission: 300 s for not-ready and unreachable.
        let tolerations = spec.entry("tolerations").or_insert_with(|| json!([]));
        if let Some(list) = tolerations.as_array_mut() {
            for key in [
                "node.kubernetes.io/not-ready",
                "node.kubernetes.io/unreachable",
            ] {
                let present = list
                    .iter()
                    .any(|t| t.get("key").and_then(Value::as_str) == Some(key));
                if !present {
                    list.push(json!({"key": key, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}));
                }
            }
        }
        let qos = qos_class(&root["spec"]);
        // A new pod's status is the server's, not the client's.
        root.insert(
            "status".into(),
            json!({"phase": "Pending", "qosClass": qos}),
        );
    }

    fn admit<'a>(
        &'a self,
        lookup: &'a dyn Lookup,
        object: &'a mut Value,
    ) -> Option<BoxFuture<'a, ApiResult<()>>> {
        Some(Box::pin(async move {
            serviceaccount::admit(lookup, object).await?;
            priority_admission(lookup, object).await
        }))
    }

    fn validate(&self, object: &Value, errors: &mut Vec<FieldError>) {
        validate_pod_spec("spec", &object["spec"], errors);
        ephemeral::validate(&object["spec"], errors);
    }

    /// Ephemeral containers come only through `pods/ephemeralcontainers` (upstream's
    /// `ValidatePodCreate`).
    fn validate_create(&self, object: &Value, errors: &mut Vec<FieldError>) {
        let set = object["spec"]["ephemeralContainers"]
            .as_array()
            .is_some_and(|a| !a.is_empty());
        if set {
            errors.push(FieldError::forbidden(
                "spec.ephemeralContainers",
                "cannot be set on create",
            ));
        }
    }

    fn validate_update(&self, old: &Value, new: &Value, errors: &mut Vec<FieldError>) {
        // Only images, activeDeadlineSeconds, tolerations (additions) and the scheduling gates
        // may change on a pod (upstream ValidatePodUpdate).
        let strip = |spec: &Value| {
            let mut s = spec.clone();
            for list in ["containers", "initContainers"] {
                if let Some(cs) = s.get_mut(list).and_then(Value::as_array_mut) {
                    for c in cs {
                        if let Some(o) = c.as_object_mut() {
                            o.remove("image");
                        }
                    }
                }
            }
            if let Some(o) = s.as_object_mut() {
                o.remove("activeDeadlineSeconds");
                o.remove("tolerations");
                o.remove("schedulingGates");
                // nodeName is set once through pods/binding.
                if old["spec"].get("nodeName").is_none() {
                    o.remove("nodeName");
                }
            }
            s
        };
        if strip(&old["spec"]) != strip(&new["spec"]) {
            errors.push(FieldError::forbidden("spec", "pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)"));
        }
    }

    /// What `pods/ephemeralcontainers` and `pods/resize` take from the request (`pods/`).
    fn prepare_for_subresource_update(&self, sub: Sub, new: &mut Value, old: &Value) {
        match sub {
            Sub::EphemeralContainers => ephemeral::prepare(new, old),
            Sub::Resize => resize::prepare(new, old),
            _ => {}
        }
    }

    fn validate_subresource_update(
        &self,
        sub: Sub,
        old: &Value,
        new: &Value,
        errors: &mut Vec<FieldError>,
    ) {
        match sub {
            Sub::EphemeralContainers => ephemeral::validate_update(old, new, errors),
            Sub::Resize => resize::validate_update(old, new, errors),
            _ => self.validate_update(old, new, errors),
        }
    }

    fn selectable_fields(&self) -> &'static [&'static str] {
        &[
            "spec.nodeName",
            "spec.restartPolicy",
            "spec.schedulerName",
            "spec.serviceAccountName",
            "spec.hostNetwork",
            "status.phase",
            "status.podIP",
            "status.nominatedNodeName",
        ]
    }

    fn printer(&self) -> &'static Printer {
        &POD_PRINTER
    }

    /// Graceful deletion: a pod a kubelet runs is marked with a grace period (the request's, else
    /// its terminationGracePeriodSeconds) and the kubelet finishes the delete; an unscheduled or
    /// finished pod goes at once. A second delete may only shorten the grace period.
    fn before_delete(&self, object: &Value, _next: &mut Value, grace: Option<i64>) -> DeletePlan {
        let scheduled = object
            .pointer("/spec/nodeName")
            .and_then(Value::as_str)
            .is_some_and(|n| !n.is_empty());
        let phase = object
            .pointer("/status/phase")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let terminal = phase == "Succeeded" || phase == "Failed";
        let default_grace = object
            .pointer("/spec/terminationGracePeriodSeconds")
            .and_then(Value::as_i64)
            .unwrap_or(30);
        let mut grace = grace.unwrap_or(default_grace).max(0);
        if !scheduled || terminal {
            grace = 0;
        }
        if !object["metadata"]["deletionTimestamp"].is_null() {
            let current_grace = object["metadata"]["deletionGracePeriodSeconds"]
                .as_i64()
                .unwrap_or(0);
            if grace >= current_grace && current_grace > 0 {
                return DeletePlan::Unchanged;
            }
        }
        DeletePlan::Graceful(grace)
    }

    fn delete_returns_object(&self) -> bool {
        true
    }
}

/// Priority admission (`plugin/pkg/admission/priority`): `priorityClassName` — or the global
/// default class when it is empty — gives `spec.priority` and `spec.preemptionPolicy`; an unknown
/// class, or a priority or policy in the pod that differs from its class's, is refused.
async fn priority_admission(lookup: &dyn Lookup, pod: &mut Value) -> ApiResult<()> {
    let name = pod["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let forbidden =
        |why: String| ApiError::forbidden(format!("pods \"{name}\" is forbidden: {why}"));
    let wanted = pod
        .pointer("/spec/priorityClassName")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let classes = lookup.list("scheduling.k8s.io", "priorityclasses").await?;
    let class = if wanted.is_empty() {
        // The global default with the lowest value, as upstream picks it.
        classes
            .iter()
            .filter(|c| c["globalDefault"] == true)
            .min_by_key(|c| c["value"].as_i64().unwrap_or(0))
    } else {
        let found = classes
            .iter()
            .find(|c| c["metadata"]["name"] == wanted.as_str());
        if found.is_none() {
            return Err(forbidden(format!(
                "no PriorityClass with name {wanted} was found"
            )));
        }
        found
    };
    let (class_name, value, policy) = match class {
        Some(c) => (
            c["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            c["value"].as_i64().unwrap_or(0),
            c["preemptionPolicy"]
                .as_str()
                .unwrap_or("PreemptLowerPriority")
                .to_string(),
        ),
        None => (String::new(), 0, "PreemptLowerPriority".to_string()),
    };
    let spec = &mut pod["spec"];
    if let Some(given) = spec.get("priority").and_then(Value::as_i64) {
        if given != value {
            return Err(forbidden(format!("the integer value of priority ({given}) must not be provided in pod spec; priority admission controller computed {value} from the given PriorityClass name")));
        }
    }
    if let Some(given) = spec.get("preemptionPolicy").and_then(Value::as_str) {
        if given != policy {
            return Err(forbidden(format!("the string value of PreemptionPolicy ({given}) must not be provided in pod spec; priority admission controller computed {policy} from the given PriorityClass name")));
        }
    }
    if !class_name.is_empty() {
        spec["priorityClassName"] = json!(class_name);
    }
    spec["priority"] = json!(value);
    spec["preemptionPolicy"] = json!(policy);
    Ok(())
}

/// QoS class from requests/limits (upstream `GetPodQOS`, simplified to cpu and memory).
pub(crate) fn qos_class(spec: &Value) -> &'static str {
    let containers = spec
        .get("containers")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    let mut any = false;
    let mut guaranteed = !containers.is_empty();
    for c in containers {
        let limits = c.pointer("/resources/limits").and_then(Value::as_object);
        let requests = c.pointer("/resources/requests").and_then(Value::as_object);
        for r in ["cpu", "memory"] {
            let l = limits.and_then(|m| m.get(r));
            let q = requests.and_then(|m| m.get(r)).or(l);
            if l.is_some() || q.is_some() {
                any = true;
            }
            if l.is_none() || q != l {
                guaranteed = false;
            }
        }
    }
    if guaranteed && any {
        "Guaranteed"
    } else if any {
        "Burstable"
    } else {
        "BestEffort"
    }
}

// ---------------------------------------------------------------- table

pub const POD_COLUMNS: &[Column] = &[
    NAME,
    col("Ready", "string", "The aggregate readiness state of this pod for accepting traffic."),
    col("Status", "string", "The aggregate status of the containers in this pod."),
    col(
    "Restarts",
    "string",
    "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted.",
    ),
    AGE,
    wide("IP", "string", "IP address allocated to the pod."),
    wide("Node", "string", "NodeName is the name of the node the pod is scheduled onto."),
    wide("Nominated Node", "string", "nominatedNodeName is set when this pod preempts other pods on the node."),
    wide("Readiness Gates", "string", "If specified, all readiness gates will be evaluated for pod readiness."),
];

pub static POD_PRINTER: Printer = Printer {
    columns: POD_COLUMNS,
    cells: pod_cells,
    conditions: pod_row_conditions,
};

fn pod_cells(pod: &Value, now: Timestamp) -> Vec<Value> {
    let spec_init_containers = list(pod, &["spec", "initContainers"]);
    let phase = text(pod, &["status", "phase"]);
    let status_reason = text(pod, &["status", "reason"]);
    let conditions = list(pod, &["status", "conditions"]);

    let mut restarts: i64 = 0;
    let mut restartable_init_restarts: i64 = 0;
    let mut total_containers = list(pod, &["spec", "containers"]).len();
    let mut ready_containers = 0usize;
    let mut last_restart: Option<Timestamp> = None;
    let mut last_restartable_init_restart: Option<Timestamp> = None;

    let mut reason = if status_reason.is_empty() {
        phase.to_string()
    } else {
        status_reason.to_string()
    };

    // A pod held back by scheduling gates says so instead of "Pending".
    for condition in conditions {
        if text(condition, &["type"]) == "PodScheduled"
            && text(condition, &["reason"]) == "SchedulingGated"
        {
            reason = "SchedulingGated".to_string();
        }
    }

    // Sidecars (init containers with restartPolicy Always) count as regular containers.
    for init in spec_init_containers {
        if is_restartable_init_container(init) {
            total_containers += 1;
        }
    }
    let restartable = |container_name: &str| {
        spec_init_containers
            .iter()
            .find(|c| text(c, &["name"]) == container_name)
            .is_some_and(is_restartable_init_container)
    };

    // Init containers run in order: the first one not done yet tells where initialization is.
    let mut initializing = false;
    for (index, status) in list(pod, &["status", "initContainerStatuses"])
        .iter()
        .enumerate()
    {
        let container_name = text(status, &["name"]);
        let is_sidecar = restartable(container_name);
        restarts = restarts.saturating_add(integer(status, &["restartCount"]));
        let finished = timestamp(status, &["lastState", "terminated", "finishedAt"]);
        last_restart = latest(last_restart, finished);
        if is_sidecar {
            restartable_init_restarts =
                restartable_init_restarts.saturating_add(integer(status, &["restartCount"]));
            last_restartable_init_restart = latest(last_restartable_init_restart, finished);
        }

        let terminated = field(status, &["state", "terminated"]).filter(|t| !t.is_null());
        let waiting = field(status, &["state", "waiting"]).filter(|w| !w.is_null());
        if terminated.is_some_and(|t| integer(t, &["exitCode"]) == 0) {
            continue;
        }
        if is_sidecar && boolean(status, &["started"]) {
            if boolean(status, &["ready"]) {
                ready_containers += 1;
            }
            continue;
        }
        if let Some(terminated) = terminated {
            // Initialization failed.
            let terminated_reason = text(terminated, &["reason"]);
            reason = if !terminated_reason.is_empty() {
                format!("Init:{terminated_reason}")
            } else if integer(terminated, &["signal"]) != 0 {
                format!("Init:Signal:{}", integer(terminated, &["signal"]))
            } else {
                format!("Init:ExitCode:{}", integer(terminated, &["exitCode"]))
            };
        } else if let Some(waiting_reason) = waiting
            .map(|w| text(w, &["reason"]))
            .filter(|r| !r.is_empty() && *r != "PodInitializing")
        {
            reason = format!("Init:{waiting_reason}");
        } else {
            reason = format!("Init:{}/{}", index, spec_init_containers.len());
        }
        initializing = true;
        break;
    }

    if !initializing || pod_condition_is_true_first(conditions, "Initialized") {
        // Restarts of finished init containers no longer matter; sidecar restarts still do.
        restarts = restartable_init_restarts;
        last_restart = last_restartable_init_restart;
        let mut has_running = false;
        // Backwards, so the first container's state wins, as upstream.
        for status in list(pod, &["status", "containerStatuses"]).iter().rev() {
            restarts = restarts.saturating_add(integer(status, &["restartCount"]));
            last_restart = latest(
                last_restart,
                timestamp(status, &["lastState", "terminated", "finishedAt"]),
            );

            let waiting_reason = field(status, &["state", "waiting"])
                .filter(|w| !w.is_null())
                .map(|w| text(w, &["reason"]));
            let terminated = field(status, &["state", "terminated"]).filter(|t| !t.is_null());
            let running = field(status, &["state", "running"]).is_some_and(|r| !r.is_null());
            if let Some(r) = waiting_reason.filter(|r| !r.is_empty()) {
                reason = r.to_string();
            } else if let Some(terminated) = terminated {
                let terminated_reason = text(terminated, &["reason"]);
                reason = if !terminated_reason.is_empty() {
                    terminated_reason.to_string()
                } else if integer(terminated, &["signal"]) != 0 {
                    format!("Signal:{}", integer(terminated, &["signal"]))
                } else {
                    format!("ExitCode:{}", integer(terminated, &["exitCode"]))
                };
            } else if boolean(status, &["ready"]) && running {
                has_running = true;
                ready_containers += 1;
            }
        }

        // One finished container does not make the pod "Completed" while others still run.
        if reason == "Completed" && has_running {
            reason = if pod_condition_is_true_any(conditions, "Ready") {
                "Running"
            } else {
                "NotReady"
            }
            .to_string();
        }
    }

    let deleting = is_set(pod, &["metadata", "deletionTimestamp"]);
    if deleting && status_reason == "NodeLost" {
        reason = "Unknown".to_string();
    } else if deleting && phase != "Failed" && phase != "Succeeded" {
        reason = "Terminating".to_string();
    }

    let restarts_text = match last_restart {
        Some(when) if restarts != 0 => format!("{restarts} ({} ago)", since(Some(when), now)),
        _ => restarts.to_string(),
    };

    let node = non_empty_or(text(pod, &["spec", "nodeName"]), "<none>");
    let nominated = non_empty_or(text(pod, &["status", "nominatedNodeName"]), "<none>");
    let ip = non_empty_or(pod_ip(pod), "<none>");
    let readiness_gates = pod_readiness_gates(pod);

    vec![
        name(pod),
        format!("{ready_containers}/{total_containers}").into(),
        reason.into(),
        restarts_text.into(),
        age(pod, now).into(),
        ip.into(),
        node.into(),
        nominated.into(),
        readiness_gates.into(),
    ]
}

fn is_restartable_init_container(container: &Value) -> bool {
    text(container, &["restartPolicy"]) == "Always"
}

/// The primary pod IP. Upstream's conversion makes `podIP` authoritative over `podIPs[0]`.
fn pod_ip(pod: &Value) -> &str {
    let ip = text(pod, &["status", "podIP"]);
    if !ip.is_empty() {
        return ip;
    }
    list(pod, &["status", "podIPs"])
        .first()
        .map(|p| text(p, &["ip"]))
        .unwrap_or("")
}

fn pod_readiness_gates(pod: &Value) -> String {
    let gates = list(pod, &["spec", "readinessGates"]);
    if gates.is_empty() {
        return "<none>".to_string();
    }
    let conditions = list(pod, &["status", "conditions"]);
    let mut true_conditions = 0;
    for gate in gates {
        let wanted = text(gate, &["conditionType"]);
        if let Some(condition) = conditions.iter().find(|c| text(c, &["type"]) == wanted) {
            if text(condition, &["status"]) == "True" {
                true_conditions += 1;
            }
        }
    }
    format!("{true_conditions}/{}", gates.len())
}

/// Finished pods carry a row condition, which clients may use to dim or hide them.
fn pod_row_conditions(pod: &Value) -> Option<Value> {
    let (reason, message) = match text(pod, &["status", "phase"]) {
        "Succeeded" => ("Succeeded", "The pod has completed successfully."),
        "Failed" => ("Failed", "The pod failed."),
        _ => return None,
    };
    Some(json!([{"type": "Completed", "status": "True", "reason": reason, "message": message}]))
}

/// Status of the first condition of that type is True (upstream stops at the first match).
fn pod_condition_is_true_first(conditions: &[Value], condition_type: &str) -> bool {
    conditions
        .iter()
        .find(|c| text(c, &["type"]) == condition_type)
        .is_some_and(|c| text(c, &["status"]) == "True")
}

/// Any condition of that type is True.
fn pod_condition_is_true_any(conditions: &[Value], condition_type: &str) -> bool {
    conditions
        .iter()
        .any(|c| text(c, &["type"]) == condition_type && text(c, &["status"]) == "True")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pod_admission() {
        let mut p = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "i", "resources": {"limits": {"cpu": "1", "memory": "1Gi"}}}]}});
        STRATEGY.default(&mut p);
        STRATEGY.prepare_for_create(&mut p, "u");
        assert_eq!(p["spec"]["serviceAccountName"], "default");
        assert_eq!(p["spec"]["tolerations"].as_array().unwrap().len(), 2);
        assert_eq!(p["status"]["qosClass"], "Guaranteed");
        assert_eq!(p["status"]["phase"], "Pending");
    }

    #[test]
    fn pod_requires_containers_and_images() {
        let errs = crate::registry::validate(
            &STRATEGY,
            &json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "BAD"}]}}),
        );
        let fields: Vec<&str> = errs.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            vec!["spec.containers[0].name", "spec.containers[0].image"]
        );
    }

    #[test]
    fn graceful_deletion_only_shortens() {
        let mut pod = json!({"metadata": {"name": "p"}, "spec": {"nodeName": "n1", "terminationGracePeriodSeconds": 30}, "status": {"phase": "Running"}});
        let mut next = pod.clone();
        assert_eq!(
            STRATEGY.before_delete(&pod, &mut next, None),
            DeletePlan::Graceful(30)
        );
        assert_eq!(
            STRATEGY.before_delete(&pod, &mut next, Some(5)),
            DeletePlan::Graceful(5)
        );
        pod["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
        pod["metadata"]["deletionGracePeriodSeconds"] = json!(5);
        assert_eq!(
            STRATEGY.before_delete(&pod, &mut next, Some(10)),
            DeletePlan::Unchanged
        );
        assert_eq!(
            STRATEGY.before_delete(&pod, &mut next, Some(0)),
            DeletePlan::Graceful(0)
        );
        // Unscheduled and finished pods go at once.
        let pending = json!({"metadata": {"name": "p"}, "spec": {}});
        assert_eq!(
            STRATEGY.before_delete(&pending, &mut next, None),
            DeletePlan::Graceful(0)
        );
    }
}
