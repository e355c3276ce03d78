//! What the scheduler writes through the API server: bindings, the PodScheduled condition and
//! nominatedNodeName on `pods/status`, evictions of preemption victims, and core/v1 Events with
//! upstream's reasons (`Scheduled`, `FailedScheduling`, `Preempted`) so `kubectl describe pod`
//! reads as upstream.

use k8s_openapi::api::core::v1::{Binding, ObjectReference, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::Client;
use serde_json::json;

pub const SCHEDULER_NAME: &str = "default-scheduler";

fn pods(client: &Client, pod: &Pod) -> Api<Pod> {
    Api::namespaced(
        client.clone(),
        pod.metadata.namespace.as_deref().unwrap_or("default"),
    )
}

fn name(pod: &Pod) -> String {
    pod.metadata.name.clone().unwrap_or_default()
}

/// `POST pods/<name>/binding`, guarded by the pod's uid.
pub async fn bind(client: &Client, pod: &Pod, node: &str) -> Result<(), kube::Error> {
    let binding = Binding {
        metadata: ObjectMeta {
            name: pod.metadata.name.clone(),
            namespace: pod.metadata.namespace.clone(),
            uid: pod.metadata.uid.clone(),
            ..ObjectMeta::default()
        },
        target: ObjectReference {
            kind: Some("Node".into()),
            name: Some(node.to_string()),
            ..ObjectReference::default()
        },
    };
    pods(client, pod)
        .create_subresource::<Binding, serde_json::Value>(
            "binding",
            &name(pod),
            &PostParams::default(),
            &binding,
        )
        .await
        .map(|_| ())
}

/// Whether the pod already says PodScheduled=False/Unschedulable with this message (upstream
/// writes the condition only when it changes).
pub fn already_unschedulable(pod: &Pod, message: &str) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == "PodScheduled"))
        .is_some_and(|c| {
            c.status == "False"
                && c.reason.as_deref() == Some("Unschedulable")
                && c.message.as_deref() == Some(message)
        })
}

/// PodScheduled=False, reason Unschedulable, with the FailedScheduling message.
pub async fn mark_unschedulable(
    client: &Client,
    pod: &Pod,
    message: &str,
) -> Result<(), kube::Error> {
    let now = Time(jiff::Timestamp::now());
    let patch = json!({"status": {"conditions": [{
        "type": "PodScheduled", "status": "False", "reason": "Unschedulable",
        "message": message, "lastProbeTime": null, "lastTransitionTime": now,
    }]}});
    patch_status(client, pod, patch).await
}

/// The node the pod will go to once its preemption victims are gone.
pub async fn nominate(client: &Client, pod: &Pod, node: &str) -> Result<(), kube::Error> {
    patch_status(client, pod, json!({"status": {"nominatedNodeName": node}})).await
}

/// A strategic merge patch on `pods/status` (conditions merge by type).
async fn patch_status(
    client: &Client,
    pod: &Pod,
    patch: serde_json::Value,
) -> Result<(), kube::Error> {
    pods(client, pod)
        .patch_status(
            &name(pod),
            &PatchParams::default(),
            &Patch::Strategic(patch),
        )
        .await
        .map(|_| ())
}

/// Deletes a preemption victim gracefully (its own grace period), guarded by its uid.
pub async fn evict_victim(client: &Client, victim: &Pod) -> Result<(), kube::Error> {
    let params = DeleteParams {
        preconditions: Some(kube::api::Preconditions {
            uid: victim.metadata.uid.clone(),
            resource_version: None,
        }),
        ..DeleteParams::default()
    };
    match pods(client, victim).delete(&name(victim), &params).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        Err(e) => Err(e),
    }
}

/// The scheduler's events (`source.component` default-scheduler) through skiff-events, with
/// upstream's aggregation.
pub struct Recorder(skiff_events::Recorder);

impl Default for Recorder {
    fn default() -> Recorder {
        Recorder(skiff_events::Recorder::new(SCHEDULER_NAME, None))
    }
}

impl Recorder {
    pub async fn record(
        &self,
        client: &Client,
        pod: &Pod,
        type_: &str,
        reason: &str,
        action: &str,
        message: &str,
    ) -> Result<(), kube::Error> {
        let object = skiff_events::reference(pod);
        self.0
            .record(client, &object, type_, reason, action, message)
            .await
    }

    /// Forgets the events of a pod that is gone or bound.
    pub fn forget(&self, uid: &str) {
        self.0.forget(uid)
    }

    /// One event, not aggregated (a pod is bound once).
    pub async fn event(
        &self,
        client: &Client,
        pod: &Pod,
        type_: &str,
        reason: &str,
        action: &str,
        message: &str,
    ) -> Result<String, kube::Error> {
        let object = skiff_events::reference(pod);
        self.0
            .write(client, &object, type_, reason, action, message)
            .await
    }
}
