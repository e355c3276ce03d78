//! Subresources with verbs of their own: `/scale` (read and written as an autoscaling/v1 Scale
//! carried to spec.replicas) and the pod subresources — `binding` (the scheduler's assignment),
//! `eviction` (a delete; PodDisruptionBudgets are not checked yet). log/exec/attach/
//! portforward go to the pod's kubelet (`kubelet_proxy.rs`).

use serde_json::{json, Value};

use super::update::patch_error;
use super::{meta, ApiServer, Ctx, Target, MAX_RETRIES};
use crate::error::{success_status, ApiError, ApiResult, FieldError};
use crate::patch::{self, PatchType};
use crate::resources::ResourceInfo;
use crate::storage::{Extra, Write};
use crate::timestamps;

impl ApiServer {
    pub fn scale_of(&self, info: &ResourceInfo, object: &Value) -> Value {
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
            .guaranteed_update(&main, ctx, None, |current| {
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
                next["spec"]["replicas"] = json!(replicas);
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

    /// `POST pods/<name>/eviction`: deletes the pod (PodDisruptionBudgets are not checked yet).
    pub async fn evict(&self, target: &Target, ctx: &Ctx, body: Value) -> ApiResult<(u16, Value)> {
        let main = Target {
            sub: None,
            ..target.clone()
        };
        let options = body.get("deleteOptions").cloned().unwrap_or(json!({}));
        self.delete(&main, ctx, &options).await?;
        Ok((201, success_status(None)))
    }
}

/// How a `/scale` request changes the Scale.
pub enum ScaleChange<'a> {
    Replace(Value),
    Patch(PatchType, &'a [u8]),
}
