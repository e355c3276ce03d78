//! What the scheduler writes through the API server: bindings, the PodScheduled condition and
//! nominatedNodeName on `pods/status`, evictions of preemption victims, and core/v1 Events with
//! upstream's reasons (`Scheduled`, `FailedScheduling`, `Preempted`) so `kubectl describe pod`
//! reads as upstream.

use k8s_openapi::api::core::v1::{Binding, Event, EventSource, ObjectReference, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, Time};
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

/// Records events with upstream's aggregation (client-go's EventCorrelator): the same event —
/// same pod, type, reason and message — within 10 minutes bumps the count and lastTimestamp of
/// the one already written, so `kubectl describe` shows `(x5 over 2m)` instead of five rows and
/// a pod retried often does not flood the store.
#[derive(Default)]
pub struct Recorder {
    seen: std::sync::Mutex<std::collections::HashMap<EventKey, Recorded>>,
}

type EventKey = (String, String, String, String);

struct Recorded {
    name: String,
    count: i32,
    first: jiff::Timestamp,
}

const AGGREGATION_WINDOW: jiff::SignedDuration = jiff::SignedDuration::from_secs(600);
/// Aggregation state kept at most; older entries are dropped first.
const MAX_REMEMBERED: usize = 10_000;

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
        let key: EventKey = (
            pod.metadata.uid.clone().unwrap_or_default(),
            type_.to_string(),
            reason.to_string(),
            message.to_string(),
        );
        let now = jiff::Timestamp::now();
        let repeat = {
            let mut seen = self.seen.lock().expect("not poisoned");
            match seen.get_mut(&key) {
                Some(r) if now.duration_since(r.first) < AGGREGATION_WINDOW => {
                    r.count += 1;
                    Some((r.name.clone(), r.count))
                }
                _ => None,
            }
        };
        let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
        if let Some((name, count)) = repeat {
            let patch = serde_json::json!({"count": count, "lastTimestamp": Time(now)});
            let patched = Api::<Event>::namespaced(client.clone(), namespace)
                .patch(&name, &PatchParams::default(), &Patch::Merge(patch))
                .await;
            match patched {
                Ok(_) => return Ok(()),
                // Gone (expired or deleted): write a new one.
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(e) => return Err(e),
            }
        }
        let name = event(client, pod, type_, reason, action, message).await?;
        let mut seen = self.seen.lock().expect("not poisoned");
        if seen.len() >= MAX_REMEMBERED {
            seen.retain(|_, r| now.duration_since(r.first) < AGGREGATION_WINDOW);
            if seen.len() >= MAX_REMEMBERED {
                seen.clear();
            }
        }
        seen.insert(
            key,
            Recorded {
                name,
                count: 1,
                first: now,
            },
        );
        Ok(())
    }

    /// Forgets the events of a pod that is gone or bound.
    pub fn forget(&self, uid: &str) {
        self.seen
            .lock()
            .expect("not poisoned")
            .retain(|(u, ..), _| u != uid);
    }
}

/// A core/v1 Event about `pod` from the default scheduler; returns its name.
pub async fn event(
    client: &Client,
    pod: &Pod,
    type_: &str,
    reason: &str,
    action: &str,
    message: &str,
) -> Result<String, kube::Error> {
    let namespace = pod
        .metadata
        .namespace
        .clone()
        .unwrap_or_else(|| "default".into());
    let now = jiff::Timestamp::now();
    let event = Event {
        metadata: ObjectMeta {
            name: Some(format!(
                "{}.{:x}",
                name(pod),
                now.as_nanosecond() as u64 ^ rand::random::<u64>()
            )),
            namespace: Some(namespace.clone()),
            ..ObjectMeta::default()
        },
        involved_object: ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Pod".into()),
            name: pod.metadata.name.clone(),
            namespace: Some(namespace.clone()),
            uid: pod.metadata.uid.clone(),
            resource_version: pod.metadata.resource_version.clone(),
            ..ObjectReference::default()
        },
        reason: Some(reason.into()),
        // Upstream caps an event's note at 1024 bytes.
        message: Some(truncate(message, 1024)),
        type_: Some(type_.into()),
        action: Some(action.into()),
        count: Some(1),
        first_timestamp: Some(Time(now)),
        last_timestamp: Some(Time(now)),
        event_time: Some(MicroTime(now)),
        reporting_component: Some(SCHEDULER_NAME.into()),
        reporting_instance: Some(SCHEDULER_NAME.into()),
        source: Some(EventSource {
            component: Some(SCHEDULER_NAME.into()),
            host: None,
        }),
        ..Event::default()
    };
    let name = event.metadata.name.clone().unwrap_or_default();
    Api::<Event>::namespaced(client.clone(), &namespace)
        .create(&PostParams::default(), &event)
        .await
        .map(|_| name)
}

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}
