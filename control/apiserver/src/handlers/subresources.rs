//! Subresources with verbs of their own: `/scale` (read and written as an autoscaling/v1 Scale
//! carried to spec.replicas) and the pod subresources — `binding` (the scheduler's assignment),
//! `eviction` (a delete the pod's PodDisruptionBudget must allow). log/exec/attach/
//! portforward go to the pod's kubelet (`kubelet_proxy.rs`).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{StatusCause, StatusDetails};
use serde_json::{json, Value};

use super::update::patch_error;
use super::{meta, ApiServer, Ctx, Target, MAX_RETRIES};
use crate::auth::admission::{self, Operation};
use crate::error::{success_status, ApiError, ApiResult, FieldError};
use crate::patch::{self, PatchType};
use crate::resources::{self, ResourceInfo};
use crate::selectors::LabelSelector;
use crate::storage::{Extra, Write};
use crate::timestamps;

impl ApiServer {
    pub fn scale_of(&self, info: &ResourceInfo, object: &Value) -> Value {
        if let Some(paths) = info.custom.and_then(|c| c.scale.as_ref()) {
            return paths.scale_of(object);
        }
        let m = meta(object);
        // A LabelSelector's matchLabels, or a ReplicationController's plain label map.
        let selector = object
            .pointer("/spec/selector")
            .and_then(|s| match s.get("matchLabels") {
                Some(labels) => Some(labels),
                None if s.get("matchExpressions").is_none() => Some(s),
                None => None,
            })
            .and_then(Value::as_object)
            .map(|l| {
                l.iter()
                    .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .unwrap_or_default();
        let _ = info;
        json!({
            "kind": "Scale",
            "apiVersion": "autoscaling/v1",
            "metadata": {
                "name": m["name"], "namespace": m["namespace"], "uid": m["uid"],
                "resourceVersion": m["resourceVersion"], "creationTimestamp": m["creationTimestamp"],
            },
            "spec": {"replicas": object.pointer("/spec/replicas").cloned().unwrap_or(json!(0))},
            "status": {"replicas": object.pointer("/status/replicas").cloned().unwrap_or(json!(0)), "selector": selector},
        })
    }

    /// PUT or PATCH on `/scale`: the change is made on a Scale and carried to spec.replicas.
    pub async fn update_scale(
        &self,
        target: &Target,
        ctx: &Ctx,
        change: ScaleChange<'_>,
    ) -> ApiResult<(u16, Value)> {
        let info = target.info;
        let main = Target {
            sub: None,
            ..target.clone()
        };
        let (code, object) = self
            .guaranteed_update(&main, ctx, None, Some("scale"), |current| {
                let scale = self.scale_of(info, current);
                let new_scale = match &change {
                    ScaleChange::Replace(s) => s.clone(),
                    ScaleChange::Patch(t, body) => {
                        patch::apply_patch("io.k8s.api.autoscaling.v1.Scale", &scale, *t, body)
                            .map_err(patch_error)?
                    }
                };
                if let Some(rv) = new_scale
                    .pointer("/metadata/resourceVersion")
                    .and_then(Value::as_str)
                {
                    if !rv.is_empty() && Some(rv) != meta(current)["resourceVersion"].as_str() {
                        return Err(ApiError::modified(info, target.name()));
                    }
                }
                let replicas = new_scale
                    .pointer("/spec/replicas")
                    .and_then(Value::as_i64)
                    .unwrap_or(0);
                if replicas < 0 {
                    return Err(ApiError::invalid(
                        info,
                        target.name(),
                        vec![FieldError::invalid(
                            "spec.replicas",
                            &json!(replicas),
                            "must be greater than or equal to 0",
                        )],
                    ));
                }
                let mut next = current.clone();
                match info.custom.and_then(|c| c.scale.as_ref()) {
                    Some(paths) => paths.set_replicas(&mut next, replicas),
                    None => next["spec"]["replicas"] = json!(replicas),
                }
                Ok(next)
            })
            .await?;
        Ok((code, self.scale_of(info, &object)))
    }

    /// `POST pods/<name>/binding`: the scheduler's assignment of a pod to a node.
    pub async fn bind(&self, target: &Target, ctx: &Ctx, body: Value) -> ApiResult<(u16, Value)> {
        let node = body
            .pointer("/target/name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        if node.is_empty() {
            return Err(ApiError::invalid(
                target.info,
                target.name(),
                vec![FieldError::required("target.name", "")],
            ));
        }
        let main = Target {
            sub: None,
            ..target.clone()
        };
        let info = target.info;
        let key = main.key();
        for _ in 0..MAX_RETRIES {
            let current = self
                .storage
                .get(&key)
                .await?
                .ok_or_else(|| ApiError::not_found(info, target.name()))?;
            if let Some(uid) = body.pointer("/metadata/uid").and_then(Value::as_str) {
                if Some(uid) != meta(&current.object)["uid"].as_str() {
                    return Err(ApiError::conflict(
                        info,
                        target.name(),
                        "the UID in the binding does not match the pod",
                    ));
                }
            }
            if !meta(&current.object)["deletionTimestamp"].is_null() {
                return Err(ApiError::conflict(
                    info,
                    target.name(),
                    "pod is being deleted, cannot be assigned to a host",
                ));
            }
            if let Some(existing) = current
                .object
                .pointer("/spec/nodeName")
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
            {
                return Err(ApiError::conflict(
                    info,
                    target.name(),
                    &format!(
                        "pod {} is already assigned to node \"{existing}\"",
                        target.name()
                    ),
                ));
            }
            let mut next = current.object.clone();
            next["spec"]["nodeName"] = json!(node);
            let conditions = next["status"]["conditions"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let mut conditions: Vec<Value> = conditions
                .into_iter()
                .filter(|c| c["type"] != "PodScheduled")
                .collect();
            conditions.push(json!({"type": "PodScheduled", "status": "True", "lastProbeTime": null, "lastTransitionTime": timestamps::now_rfc3339()}));
            next["status"]["conditions"] = json!(conditions);
            if ctx.dry_run() {
                return Ok((201, success_status(None)));
            }
            match self
                .storage
                .update(&key, &next, current.mod_revision, &Extra::default())
                .await?
            {
                Write::Done(_) => return Ok((201, success_status(None))),
                Write::Conflict => continue,
            }
        }
        Err(ApiError::modified(info, target.name()))
    }

    /// `POST pods/<name>/eviction` (upstream `pkg/registry/core/pod/storage/eviction.go`): a
    /// delete that the pod's PodDisruptionBudget must allow. A pod that is finished, pending or
    /// already being deleted is deleted at once; otherwise its one budget (more than one is an
    /// error, as upstream) must have been processed by the disruption controller and allow a
    /// disruption, which the eviction spends — `disruptionsAllowed` goes down and the pod is
    /// recorded in `disruptedPods`, in one compare-and-swap of the budget — before the pod is
    /// deleted. A refusal is 429 TooManyRequests, which `kubectl drain` retries.
    pub async fn evict(&self, target: &Target, ctx: &Ctx, body: Value) -> ApiResult<(u16, Value)> {
        let main = Target {
            sub: None,
            ..target.clone()
        };
        let options = body.get("deleteOptions").cloned().unwrap_or(json!({}));
        let info = target.info;
        let pod = self
            .storage
            .get(&main.key())
            .await?
            .ok_or_else(|| ApiError::not_found(info, target.name()))?
            .object;
        admission::check(
            &self.authorizer,
            &ctx.user,
            info,
            Some(resources::Sub::Eviction),
            Operation::Create,
            target.name(),
            None,
            Some(&pod),
        )?;
        if !ignores_budgets(&pod) {
            self.spend_disruption(target, ctx, &pod).await?;
        }
        self.delete(&main, ctx, &options).await?;
        Ok((201, success_status(None)))
    }

    async fn spend_disruption(&self, target: &Target, ctx: &Ctx, pod: &Value) -> ApiResult<()> {
        let Some(budgets) = resources::find_kind("policy/v1", "PodDisruptionBudget") else {
            return Ok(());
        };
        let namespace = target.namespace.as_deref();
        let labels = pod.pointer("/metadata/labels").and_then(Value::as_object);
        let pod_name = target.name();
        for _ in 0..MAX_RETRIES {
            let page = self
                .storage
                .list(&budgets.namespace_prefix(namespace), None, 0, 0)
                .await?;
            let matching: Vec<_> = page
                .items
                .into_iter()
                .filter(|b| {
                    // policy/v1: an empty selector matches every pod, a missing one none.
                    b.object
                        .pointer("/spec/selector")
                        .filter(|s| s.is_object())
                        .and_then(|s| LabelSelector::from_object(s).ok())
                        .is_some_and(|s| s.matches_labels(labels))
                })
                .collect();
            let budget = match matching.as_slice() {
                [] => return Ok(()),
                [one] => one,
                _ => {
                    return Err(ApiError::new(
                        500,
                        "InternalError",
                        "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support.",
                    ))
                }
            };
            let object = &budget.object;
            let name = meta(object)["name"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            let status = &object["status"];
            let generation = meta(object)["generation"].as_i64().unwrap_or(0);
            let observed = status["observedGeneration"].as_i64().unwrap_or(0);
            if observed < generation {
                return Err(too_many_requests(format!(
                    "The disruption budget {name} is still being processed by the server."
                )));
            }
            let allowed = status["disruptionsAllowed"].as_i64().unwrap_or(0);
            let healthy = status["currentHealthy"].as_i64().unwrap_or(0);
            let desired = status["desiredHealthy"].as_i64().unwrap_or(0);
            // An unready pod costs the budget nothing when the budget is met anyway (upstream's
            // IfHealthyBudget) or the policy says so (AlwaysAllow).
            let policy = object
                .pointer("/spec/unhealthyPodEvictionPolicy")
                .and_then(Value::as_str)
                .unwrap_or("IfHealthyBudget");
            if !is_ready(pod) && (policy == "AlwaysAllow" || healthy >= desired) {
                return Ok(());
            }
            if allowed < 0 {
                return Err(ApiError::forbidden("pdb disruptions allowed is negative"));
            }
            if allowed == 0 {
                return Err(too_many_requests(format!(
                    "The disruption budget {name} needs {desired} healthy pods and has {healthy} currently"
                )));
            }
            if ctx.dry_run() {
                return Ok(());
            }
            let mut next = object.clone();
            next["status"]["disruptionsAllowed"] = json!(allowed - 1);
            if !next["status"]["disruptedPods"].is_object() {
                next["status"]["disruptedPods"] = json!({});
            }
            next["status"]["disruptedPods"][pod_name] = json!(timestamps::now_rfc3339());
            let key = budgets.key(namespace, &name);
            match self
                .storage
                .update(&key, &next, budget.mod_revision, &Extra::default())
                .await?
            {
                Write::Done(_) => return Ok(()),
                Write::Conflict => continue,
            }
        }
        Err(too_many_requests(
            "The disruption budget changed too often; try again.".into(),
        ))
    }
}

/// Pods whose eviction needs no budget: finished, not yet running, or already going.
fn ignores_budgets(pod: &Value) -> bool {
    let phase = pod.pointer("/status/phase").and_then(Value::as_str);
    matches!(
        phase,
        Some("Succeeded") | Some("Failed") | Some("Pending") | None
    ) || !meta(pod)["deletionTimestamp"].is_null()
}

fn is_ready(pod: &Value) -> bool {
    pod.pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|cs| {
            cs.iter()
                .any(|c| c["type"] == "Ready" && c["status"] == "True")
        })
}

/// Upstream's refusal: 429 with the budget's reason as a `DisruptionBudget` cause.
fn too_many_requests(cause: String) -> ApiError {
    let mut error = ApiError::new(
        429,
        "TooManyRequests",
        "Cannot evict pod as it would violate the pod's disruption budget.",
    );
    error.details = Some(Box::new(StatusDetails {
        causes: Some(vec![StatusCause {
            reason: Some("DisruptionBudget".into()),
            message: Some(cause),
            field: None,
        }]),
        ..StatusDetails::default()
    }));
    error
}

/// How a `/scale` request changes the Scale.
pub enum ScaleChange<'a> {
    Replace(Value),
    Patch(PatchType, &'a [u8]),
}
