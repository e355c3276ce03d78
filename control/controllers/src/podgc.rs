//! The pod garbage collector (upstream `pkg/controller/podgc`), every 20 s:
//!
//! * **terminated pods** (phase Succeeded or Failed) beyond `--terminated-pod-gc-threshold`
//!   (12500) are deleted, evicted ones first, then oldest first — finished Job pods would
//!   otherwise pile up for ever;
//! * **terminating pods on an out-of-service node** (not Ready and tainted
//!   `node.kubernetes.io/out-of-service`) are force-deleted: the admin declared the node dead;
//! * **orphaned pods** — bound to a Node that no longer exists — are marked Failed with the
//!   condition `DisruptionTarget` (`DeletionByPodGC`) and force-deleted (grace 0: no kubelet
//!   is left to confirm). A missing node is first quarantined for 40 s and then confirmed by a
//!   GET, so a pod bound just before its Node shows up in the cache is not lost;
//! * **unscheduled terminating pods** (deleted before they were bound) are force-deleted: no
//!   kubelet will ever finish them.
//!
//! Status changes are server-side applies with field manager `PodGC`, as upstream. The
//! collector records no events (upstream's does not either).

use std::cmp::Ordering;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::{Client, ResourceExt};
use serde_json::json;
use tokio::time::Instant;

use crate::informer::Informer;

/// Upstream `gcCheckPeriod`.
pub const GC_CHECK_PERIOD: Duration = Duration::from_secs(20);
/// Upstream `quarantineTime`: how long a node must be missing before its pods count as orphans.
pub const QUARANTINE: Duration = Duration::from_secs(40);
/// Upstream's field manager for its status applies.
const FIELD_MANAGER: &str = "PodGC";
const OUT_OF_SERVICE: &str = "node.kubernetes.io/out-of-service";

fn phase(pod: &Pod) -> &str {
    pod.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or_default()
}

/// Upstream `isPodTerminated`: any phase but Pending, Running and Unknown.
pub fn is_terminated(pod: &Pod) -> bool {
    !matches!(phase(pod), "Pending" | "Running" | "Unknown")
}

fn is_evicted(pod: &Pod) -> bool {
    phase(pod) == "Failed"
        && pod.status.as_ref().and_then(|s| s.reason.as_deref()) == Some("Evicted")
}

fn node_name(pod: &Pod) -> &str {
    pod.spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .unwrap_or_default()
}

/// Upstream `byEvictionAndCreationTimestamp`: evicted first, then oldest, then by name.
fn gc_order(a: &Arc<Pod>, b: &Arc<Pod>) -> Ordering {
    is_evicted(b)
        .cmp(&is_evicted(a))
        .then_with(|| {
            let at = |p: &Pod| p.metadata.creation_timestamp.as_ref().map(|t| t.0);
            at(a).cmp(&at(b))
        })
        .then_with(|| a.name_any().cmp(&b.name_any()))
}

/// The terminated pods beyond `threshold`, in deletion order (threshold ≤ 0: none).
pub fn terminated_victims(pods: &[Arc<Pod>], threshold: i64) -> Vec<Arc<Pod>> {
    if threshold <= 0 {
        return Vec::new();
    }
    let mut terminated: Vec<Arc<Pod>> = pods.iter().filter(|p| is_terminated(p)).cloned().collect();
    let excess = terminated.len() as i64 - threshold;
    if excess <= 0 {
        return Vec::new();
    }
    terminated.sort_by(gc_order);
    terminated.truncate(excess as usize);
    terminated
}

/// Pods deleted before they were ever bound.
pub fn unscheduled_terminating(pods: &[Arc<Pod>]) -> Vec<Arc<Pod>> {
    pods.iter()
        .filter(|p| p.metadata.deletion_timestamp.is_some() && node_name(p).is_empty())
        .cloned()
        .collect()
}

/// Missing nodes waiting out their quarantine (upstream's delaying `nodeQueue`).
#[derive(Debug, Default)]
pub struct Quarantine {
    ready_at: HashMap<String, Instant>,
}

impl Quarantine {
    /// Starts (or keeps) the node's quarantine.
    pub fn add(&mut self, node: &str, now: Instant) {
        self.ready_at
            .entry(node.to_string())
            .or_insert(now + QUARANTINE);
    }

    /// The nodes whose quarantine is over (they leave the quarantine).
    pub fn take_due(&mut self, now: Instant) -> Vec<String> {
        let due: Vec<String> = self
            .ready_at
            .iter()
            .filter(|(_, at)| **at <= now)
            .map(|(n, _)| n.clone())
            .collect();
        for node in &due {
            self.ready_at.remove(node);
        }
        due
    }
}

/// The nodes pods are bound to that the cache does not know.
pub fn missing_nodes(pods: &[Arc<Pod>], nodes: &HashSet<String>) -> HashSet<String> {
    pods.iter()
        .map(|p| node_name(p))
        .filter(|n| !n.is_empty() && !nodes.contains(*n))
        .map(str::to_string)
        .collect()
}

/// Runs the collector once the caches are synced.
pub async fn run(
    client: Client,
    pods: Arc<Informer<Pod>>,
    nodes: Arc<Informer<Node>>,
    threshold: i64,
) {
    pods.wait_synced().await;
    nodes.wait_synced().await;
    let mut quarantine = Quarantine::default();
    let mut tick = tokio::time::interval(GC_CHECK_PERIOD);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        gc(&client, &pods, &nodes, threshold, &mut quarantine).await;
    }
}

async fn gc(
    client: &Client,
    pods: &Informer<Pod>,
    nodes: &Informer<Node>,
    threshold: i64,
    quarantine: &mut Quarantine,
) {
    let pod_list = pods.read().all();
    let node_list = nodes.read().in_namespace("");
    let node_api: Api<Node> = Api::all(client.clone());

    let victims = terminated_victims(&pod_list, threshold);
    if !victims.is_empty() {
        tracing::info!(count = victims.len(), "Garbage collecting pods");
    }
    futures::future::join_all(
        victims
            .iter()
            .map(|p| mark_failed_and_delete(client, p, None)),
    )
    .await;

    // Terminating pods on nodes declared out of service.
    for pod in pod_list
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_some())
    {
        let Some(node) = node_list.iter().find(|n| n.name_any() == node_name(pod)) else {
            continue;
        };
        let ready = crate::nodelifecycle::health::condition(node, "Ready")
            .is_some_and(|c| c.status == "True");
        if !ready
            && crate::nodelifecycle::taints::taints(node)
                .iter()
                .any(|t| t.key == OUT_OF_SERVICE)
        {
            tracing::info!(pod = %pod.name_any(), node = %node.name_any(), "garbage collecting a terminating pod on an out-of-service node");
            mark_failed_and_delete(client, pod, None).await;
        }
    }

    // Orphans.
    let existing: HashSet<String> = node_list.iter().map(|n| n.name_any()).collect();
    let now = Instant::now();
    for node in missing_nodes(&pod_list, &existing) {
        quarantine.add(&node, now);
    }
    let mut deleted: HashSet<String> = HashSet::new();
    for node in quarantine.take_due(now) {
        if existing.contains(&node) {
            continue;
        }
        match node_api.get_opt(&node).await {
            Ok(None) => {
                deleted.insert(node);
            }
            Ok(Some(_)) => {}
            // Quarantined again on the next pass if still missing.
            Err(e) => tracing::warn!(node = %node, "checking whether the node exists: {e}"),
        }
    }
    for pod in pod_list.iter().filter(|p| deleted.contains(node_name(p))) {
        tracing::info!(pod = %pod.name_any(), node = %node_name(pod), "Found orphaned Pod assigned to the Node, deleting");
        let condition = json!({
            "type": "DisruptionTarget",
            "status": "True",
            "reason": "DeletionByPodGC",
            "message": "PodGC: node no longer exists",
            "lastTransitionTime": Time(jiff::Timestamp::now()),
        });
        mark_failed_and_delete(client, pod, Some(condition)).await;
    }

    for pod in unscheduled_terminating(&pod_list) {
        tracing::info!(pod = %pod.name_any(), "Found unscheduled terminating Pod not assigned to any Node, deleting");
        mark_failed_and_delete(client, &pod, None).await;
    }
}

/// Upstream `markFailedAndDeletePodWithCondition`: a pod not yet finished is marked Failed (with
/// the condition, if any) by a server-side apply of its status, then deleted with grace 0.
async fn mark_failed_and_delete(client: &Client, pod: &Pod, condition: Option<serde_json::Value>) {
    let namespace = pod.metadata.namespace.clone().unwrap_or_default();
    let name = pod.name_any();
    let api: Api<Pod> = Api::namespaced(client.clone(), &namespace);
    tracing::info!(pod = %format!("{namespace}/{name}"), "PodGC is force deleting Pod");
    if !matches!(phase(pod), "Succeeded" | "Failed") {
        let mut status = json!({"phase": "Failed"});
        if let Some(condition) = condition {
            status["conditions"] = json!([condition]);
        }
        let apply = json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "namespace": namespace},
            "status": status,
        });
        let params = PatchParams::apply(FIELD_MANAGER).force();
        match api.patch_status(&name, &params, &Patch::Apply(apply)).await {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 => return,
            Err(e) => {
                tracing::warn!(pod = %format!("{namespace}/{name}"), "marking the pod Failed: {e}");
                return;
            }
        }
    }
    match api
        .delete(&name, &DeleteParams::default().grace_period(0))
        .await
    {
        Ok(_) => {}
        Err(kube::Error::Api(e)) if e.code == 404 => {}
        Err(e) => tracing::warn!(pod = %format!("{namespace}/{name}"), "deleting the pod: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pods::testing::pod;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn created(name: &str, phase: &str, at: i64) -> Arc<Pod> {
        let mut p = pod(name, "n1", phase, None);
        p.metadata.creation_timestamp = Some(Time(jiff::Timestamp::from_second(at).unwrap()));
        Arc::new(p)
    }

    fn names(pods: &[Arc<Pod>]) -> Vec<String> {
        pods.iter().map(|p| p.name_any()).collect()
    }

    #[test]
    fn terminated_pods_over_the_threshold_go_evicted_first_then_oldest() {
        let mut evicted = (*created("evicted", "Failed", 50)).clone();
        evicted.status.as_mut().unwrap().reason = Some("Evicted".into());
        let pods = vec![
            created("running", "Running", 1),
            created("new-done", "Succeeded", 30),
            created("old-done", "Succeeded", 10),
            created("old-failed", "Failed", 10),
            Arc::new(evicted),
            created("pending", "Pending", 2),
        ];
        assert_eq!(
            names(&terminated_victims(&pods, 1)),
            ["evicted", "old-done", "old-failed"]
        );
        assert_eq!(names(&terminated_victims(&pods, 3)), ["evicted"]);
        assert!(terminated_victims(&pods, 4).is_empty());
        assert!(terminated_victims(&pods, 0).is_empty());
    }

    #[test]
    fn orphans_wait_out_the_quarantine() {
        let pods = vec![
            created("a", "Running", 1),
            Arc::new(pod("b", "gone", "Running", None)),
            Arc::new(pod("c", "", "Pending", None)),
        ];
        let nodes: HashSet<String> = ["n1".to_string()].into();
        let missing = missing_nodes(&pods, &nodes);
        assert_eq!(missing, ["gone".to_string()].into());
        let t0 = Instant::now();
        let mut q = Quarantine::default();
        q.add("gone", t0);
        // Seen missing again 20 s later: the first sighting's clock stands.
        q.add("gone", t0 + Duration::from_secs(20));
        assert!(q.take_due(t0 + Duration::from_secs(39)).is_empty());
        assert_eq!(q.take_due(t0 + Duration::from_secs(40)), ["gone"]);
        assert!(q.take_due(t0 + Duration::from_secs(80)).is_empty());
    }

    #[test]
    fn unscheduled_terminating_pods_are_found() {
        let mut deleting = pod("d", "", "Pending", None);
        deleting.metadata.deletion_timestamp = Some(Time(jiff::Timestamp::UNIX_EPOCH));
        let mut bound_deleting = pod("e", "n1", "Running", None);
        bound_deleting.metadata.deletion_timestamp = Some(Time(jiff::Timestamp::UNIX_EPOCH));
        let pods = vec![
            Arc::new(deleting),
            Arc::new(bound_deleting),
            Arc::new(pod("f", "", "Pending", None)),
        ];
        assert_eq!(names(&unscheduled_terminating(&pods)), ["d"]);
    }
}
