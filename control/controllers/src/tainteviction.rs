//! The taint eviction controller (upstream `pkg/controller/tainteviction`, events from
//! `taint-eviction-controller`): a pod on a node with a NoExecute taint it does not tolerate is
//! deleted — at once if some taint is not tolerated at all, else when the shortest
//! `tolerationSeconds` among the tolerations that match has passed; a toleration without
//! `tolerationSeconds` tolerates for good. The timer is cancelled when the taints go away (the
//! node recovered) or the pod changes node or tolerations so that it no longer has to go.
//!
//! This is how a dead node's pods move elsewhere: the node lifecycle controller taints the node
//! `node.kubernetes.io/unreachable:NoExecute`, every pod carries the API server's default
//! toleration of it for 300 s, and 5 minutes later this controller deletes the pods so their
//! controllers create replacements on healthy nodes.
//!
//! As upstream, a timer starts when this controller sees the taint (not at the taint's
//! `timeAdded`), and a scheduled deletion stands until cancelled even if the pod's tolerations
//! change. Before deleting, the pod gets the condition `DisruptionTarget`
//! (`DeletionByTaintManager`) so that it says why it went; the event `TaintManagerEviction`
//! "Marking for deletion Pod ns/name" is recorded when the deletion happens, and
//! "Cancelling deletion of Pod ns/name" when a scheduled one is cancelled.
//!
//! One task owns the state (tainted nodes, scheduled deletions): informer handlers send it the
//! nodes and pods that changed, and it sleeps until the next deletion is due.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use futures::channel::mpsc::{unbounded, UnboundedReceiver, UnboundedSender};
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, Pod, Taint, Toleration};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::api::{Api, DeleteParams, Patch, PatchParams, Preconditions};
use kube::{Client, ResourceExt};
use serde_json::json;
use tokio::time::Instant;

use crate::events::{Recorder, NORMAL};
use crate::informer::{Informer, Key};

/// `source.component` of its events, as upstream.
pub const COMPONENT: &str = "taint-eviction-controller";
/// Tries of one deletion (upstream `retries`).
const RETRIES: usize = 5;

/// Upstream `Toleration.ToleratesTaint`: an empty effect matches every effect, an empty key
/// (with `Exists`) every key; the operator defaults to `Equal`.
pub fn tolerates(toleration: &Toleration, taint: &Taint) -> bool {
    let effect = toleration.effect.as_deref().unwrap_or_default();
    if !effect.is_empty() && effect != taint.effect {
        return false;
    }
    let key = toleration.key.as_deref().unwrap_or_default();
    if !key.is_empty() && key != taint.key {
        return false;
    }
    match toleration.operator.as_deref().unwrap_or_default() {
        "" | "Equal" => {
            toleration.value.as_deref().unwrap_or_default()
                == taint.value.as_deref().unwrap_or_default()
        }
        "Exists" => true,
        _ => false,
    }
}

/// Upstream `GetMatchingTolerations`: for every taint, the first toleration that tolerates it;
/// None if some taint is not tolerated.
pub fn matching_tolerations<'a>(
    taints: &[Taint],
    tolerations: &'a [Toleration],
) -> Option<Vec<&'a Toleration>> {
    taints
        .iter()
        .map(|taint| tolerations.iter().find(|t| tolerates(t, taint)))
        .collect()
}

/// How long the pod may stay (upstream `getMinTolerationTime`): the shortest
/// `tolerationSeconds` (≤ 0 means none at all); None: for good.
pub fn min_toleration_time(used: &[&Toleration]) -> Option<Duration> {
    if used.is_empty() {
        return Some(Duration::ZERO);
    }
    let mut min: Option<i64> = None;
    for seconds in used.iter().filter_map(|t| t.toleration_seconds) {
        if seconds <= 0 {
            return Some(Duration::ZERO);
        }
        min = Some(min.map_or(seconds, |m: i64| m.min(seconds)));
    }
    min.map(|s| Duration::from_secs(s as u64))
}

#[derive(Debug, PartialEq, Eq)]
pub enum Decision {
    /// Nothing to do about the pod (any scheduled deletion is cancelled).
    Stay,
    /// A taint is not tolerated: delete now.
    DeleteNow,
    /// Delete after this long, unless cancelled.
    DeleteAfter(Duration),
}

/// What the node's NoExecute taints mean for a pod with these tolerations (upstream
/// `processPodOnNode`).
pub fn decide(taints: &[Taint], tolerations: &[Toleration]) -> Decision {
    if taints.is_empty() {
        return Decision::Stay;
    }
    match matching_tolerations(taints, tolerations) {
        None => Decision::DeleteNow,
        Some(used) => match min_toleration_time(&used) {
            None => Decision::Stay,
            Some(after) => Decision::DeleteAfter(after),
        },
    }
}

pub fn no_execute_taints(node: &Node) -> Vec<Taint> {
    node.spec
        .as_ref()
        .and_then(|s| s.taints.as_ref())
        .into_iter()
        .flatten()
        .filter(|t| t.effect == "NoExecute")
        .cloned()
        .collect()
}

/// Scheduled deletions (upstream `TimedWorkerQueue`).
#[derive(Debug, Default)]
pub struct Schedule {
    /// pod → (when scheduled, when due).
    work: HashMap<Key, (Instant, Instant)>,
    by_time: BTreeSet<(Instant, Key)>,
}

impl Schedule {
    /// Schedules a deletion at `now + after`; an existing one stands (upstream keeps a worker
    /// created earlier). False if one was already scheduled.
    pub fn add(&mut self, key: Key, now: Instant, after: Duration) -> bool {
        if self.work.contains_key(&key) {
            return false;
        }
        let due = now + after;
        self.by_time.insert((due, key.clone()));
        self.work.insert(key, (now, due));
        true
    }

    /// Cancels a scheduled deletion; true if there was one.
    pub fn cancel(&mut self, key: &Key) -> bool {
        match self.work.remove(key) {
            Some((_, due)) => {
                self.by_time.remove(&(due, key.clone()));
                true
            }
            None => false,
        }
    }

    pub fn next_due(&self) -> Option<Instant> {
        self.by_time.first().map(|(due, _)| *due)
    }

    /// Takes the deletions due at `now`.
    pub fn take_due(&mut self, now: Instant) -> Vec<Key> {
        let mut due = Vec::new();
        while let Some((at, key)) = self.by_time.first().cloned() {
            if at > now {
                break;
            }
            self.by_time.pop_first();
            self.work.remove(&key);
            due.push(key);
        }
        due
    }
}

enum Change {
    Node(String),
    /// A pod and the node it was (or is) on.
    Pod(Key, String),
}

struct Controller {
    client: Client,
    nodes: Arc<Informer<Node>>,
    pods: Arc<Informer<Pod>>,
    recorder: Recorder,
    /// node → its NoExecute taints (only nodes that have some).
    tainted: HashMap<String, Vec<Taint>>,
    schedule: Schedule,
}

fn node_handler(queue: UnboundedSender<Change>) -> crate::informer::Handler<Node> {
    Box::new(move |old, new| {
        if let (Some(old), Some(new)) = (old, new) {
            if no_execute_taints(old) == no_execute_taints(new) {
                return;
            }
        }
        if let Some(node) = new.or(old) {
            let _ = queue.unbounded_send(Change::Node(node.name_any()));
        }
    })
}

fn node_name(pod: &Pod) -> &str {
    pod.spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .unwrap_or_default()
}

fn tolerations(pod: &Pod) -> &[Toleration] {
    pod.spec
        .as_ref()
        .and_then(|s| s.tolerations.as_deref())
        .unwrap_or_default()
}

fn pod_handler(queue: UnboundedSender<Change>) -> crate::informer::Handler<Pod> {
    Box::new(move |old, new| {
        if let (Some(old), Some(new)) = (old, new) {
            if tolerations(old) == tolerations(new) && node_name(old) == node_name(new) {
                return;
            }
        }
        let Some(pod) = new.or(old) else {
            return;
        };
        let key = (
            pod.metadata.namespace.clone().unwrap_or_default(),
            pod.name_any(),
        );
        let _ = queue.unbounded_send(Change::Pod(key, node_name(pod).to_string()));
    })
}

/// Builds the controller: registers its handlers at once (call before the informers run) and
/// returns the future that runs it once the caches are synced.
pub fn controller(
    client: Client,
    nodes: Arc<Informer<Node>>,
    pods: Arc<Informer<Pod>>,
    recorder: &Recorder,
) -> impl std::future::Future<Output = ()> + Send {
    let (queue, changes) = unbounded();
    nodes.on_change(node_handler(queue.clone()));
    pods.on_change(pod_handler(queue));
    let controller = Controller {
        client,
        nodes,
        pods,
        recorder: recorder.for_component(COMPONENT),
        tainted: HashMap::new(),
        schedule: Schedule::default(),
    };
    controller.run(changes)
}

impl Controller {
    async fn run(mut self, mut changes: UnboundedReceiver<Change>) {
        self.nodes.wait_synced().await;
        self.pods.wait_synced().await;
        loop {
            let next = self.schedule.next_due();
            let sleep = async {
                match next {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                change = changes.next() => match change {
                    Some(Change::Node(name)) => self.node_changed(&name),
                    Some(Change::Pod(key, node)) => self.pod_changed(key, &node),
                    None => return,
                },
                _ = sleep => {
                    for key in self.schedule.take_due(Instant::now()) {
                        self.evict(key);
                    }
                }
            }
        }
    }

    /// Upstream `handleNodeUpdate`.
    fn node_changed(&mut self, name: &str) {
        let Some(node) = self.nodes.read().get("", name) else {
            self.tainted.remove(name);
            return;
        };
        let taints = no_execute_taints(&node);
        if taints.is_empty() {
            self.tainted.remove(name);
        } else {
            self.tainted.insert(name.to_string(), taints.clone());
        }
        let pods: Vec<Arc<Pod>> = self
            .pods
            .read()
            .all()
            .into_iter()
            .filter(|p| node_name(p) == name)
            .collect();
        let now = Instant::now();
        for pod in pods {
            let key = (
                pod.metadata.namespace.clone().unwrap_or_default(),
                pod.name_any(),
            );
            self.process(key, tolerations(&pod), &taints, now);
        }
    }

    /// Upstream `handlePodUpdate`.
    fn pod_changed(&mut self, key: Key, node: &str) {
        let Some(pod) = self.pods.read().get(&key.0, &key.1) else {
            self.cancel(&key);
            return;
        };
        if node_name(&pod) != node || node.is_empty() {
            return;
        }
        // A node without NoExecute taints: nothing to do (recoveries cancel in node_changed).
        let Some(taints) = self.tainted.get(node).cloned() else {
            return;
        };
        self.process(key, tolerations(&pod), &taints, Instant::now());
    }

    /// Upstream `processPodOnNode`.
    fn process(&mut self, key: Key, tolerations: &[Toleration], taints: &[Taint], now: Instant) {
        match decide(taints, tolerations) {
            Decision::Stay => self.cancel(&key),
            Decision::DeleteNow => {
                tracing::info!(pod = %format!("{}/{}", key.0, key.1), "not all taints are tolerated; deleting the pod");
                self.cancel(&key);
                self.schedule.add(key, now, Duration::ZERO);
            }
            Decision::DeleteAfter(after) => {
                self.schedule.add(key, now, after);
            }
        }
    }

    fn reference(&self, key: &Key) -> Pod {
        // The cached pod (with its uid, so `kubectl describe pod` lists the event), else a
        // bare reference as upstream's.
        match self.pods.read().get(&key.0, &key.1) {
            Some(pod) => pod.as_ref().clone(),
            None => Pod {
                metadata: ObjectMeta {
                    namespace: Some(key.0.clone()),
                    name: Some(key.1.clone()),
                    ..ObjectMeta::default()
                },
                ..Pod::default()
            },
        }
    }

    fn cancel(&mut self, key: &Key) {
        if self.schedule.cancel(key) {
            self.recorder.publish(
                &self.reference(key),
                NORMAL,
                "TaintManagerEviction",
                format!("Cancelling deletion of Pod {}/{}", key.0, key.1),
            );
        }
    }

    /// A deletion is due (upstream `deletePodHandler`): event, condition, delete.
    fn evict(&self, key: Key) {
        self.recorder.publish(
            &self.reference(&key),
            NORMAL,
            "TaintManagerEviction",
            format!("Marking for deletion Pod {}/{}", key.0, key.1),
        );
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &key.0);
        tokio::spawn(async move {
            for attempt in 1..=RETRIES {
                match add_condition_and_delete(&api, &key.1).await {
                    Ok(()) => return,
                    Err(kube::Error::Api(e)) if e.code == 404 => return,
                    Err(e) if attempt == RETRIES => {
                        tracing::warn!(pod = %format!("{}/{}", key.0, key.1), "deleting the pod: {e}");
                    }
                    Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
                }
            }
        });
    }
}

/// Upstream `addConditionAndDeletePod`.
async fn add_condition_and_delete(api: &Api<Pod>, name: &str) -> Result<(), kube::Error> {
    let pod = api.get(name).await?;
    let present = pod
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .into_iter()
        .flatten()
        .any(|c| {
            c.type_ == "DisruptionTarget"
                && c.status == "True"
                && c.reason.as_deref() == Some("DeletionByTaintManager")
        });
    if !present {
        let patch = json!({"status": {"conditions": [{
            "type": "DisruptionTarget",
            "status": "True",
            "reason": "DeletionByTaintManager",
            "message": "Taint manager: deleting due to NoExecute taint",
            "lastTransitionTime": Time(jiff::Timestamp::now()),
        }]}});
        api.patch_status(name, &PatchParams::default(), &Patch::Strategic(patch))
            .await?;
    }
    let params = DeleteParams {
        preconditions: Some(Preconditions {
            uid: pod.uid(),
            resource_version: None,
        }),
        ..DeleteParams::default()
    };
    api.delete(name, &params).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn taint(key: &str, value: &str, effect: &str) -> Taint {
        Taint {
            key: key.into(),
            value: (!value.is_empty()).then(|| value.into()),
            effect: effect.into(),
            time_added: None,
        }
    }

    fn toleration(key: &str, op: &str, value: &str, effect: &str, secs: Option<i64>) -> Toleration {
        let opt = |s: &str| (!s.is_empty()).then(|| s.to_string());
        Toleration {
            key: opt(key),
            operator: opt(op),
            value: opt(value),
            effect: opt(effect),
            toleration_seconds: secs,
        }
    }

    const UNREACHABLE: &str = "node.kubernetes.io/unreachable";
    const NOT_READY: &str = "node.kubernetes.io/not-ready";

    #[test]
    fn tolerations_match_as_upstream() {
        let t = taint("k", "v", "NoExecute");
        assert!(tolerates(
            &toleration("k", "Equal", "v", "NoExecute", None),
            &t
        ));
        assert!(tolerates(&toleration("k", "", "v", "", None), &t));
        assert!(!tolerates(
            &toleration("k", "Equal", "w", "NoExecute", None),
            &t
        ));
        assert!(tolerates(
            &toleration("k", "Exists", "", "NoExecute", None),
            &t
        ));
        assert!(!tolerates(
            &toleration("k", "Exists", "", "NoSchedule", None),
            &t
        ));
        assert!(!tolerates(&toleration("other", "Exists", "", "", None), &t));
        // Empty key with Exists: everything.
        assert!(tolerates(&toleration("", "Exists", "", "", None), &t));
        assert!(!tolerates(&toleration("k", "Lt", "v", "", None), &t));
    }

    #[test]
    fn the_shortest_matching_toleration_decides() {
        let taints = vec![taint(UNREACHABLE, "", "NoExecute")];
        // Admission's default (300 s) plus the pod's own (5 s): the first matching one counts.
        let own = vec![
            toleration(UNREACHABLE, "Exists", "", "NoExecute", Some(5)),
            toleration(NOT_READY, "Exists", "", "NoExecute", Some(300)),
        ];
        assert_eq!(
            decide(&taints, &own),
            Decision::DeleteAfter(Duration::from_secs(5))
        );
        // Two taints: the minimum over the tolerations used.
        let both = vec![
            taint(UNREACHABLE, "", "NoExecute"),
            taint("example.com/maintenance", "", "NoExecute"),
        ];
        let tols = vec![
            toleration(UNREACHABLE, "Exists", "", "NoExecute", Some(300)),
            toleration("example.com/maintenance", "Exists", "", "", Some(60)),
        ];
        assert_eq!(
            decide(&both, &tols),
            Decision::DeleteAfter(Duration::from_secs(60))
        );
        // One taint not tolerated: now.
        assert_eq!(decide(&both, &own), Decision::DeleteNow);
        assert_eq!(decide(&taints, &[]), Decision::DeleteNow);
        // Tolerated without tolerationSeconds: forever.
        let forever = vec![toleration("", "Exists", "", "", None)];
        assert_eq!(decide(&both, &forever), Decision::Stay);
        // tolerationSeconds ≤ 0: now, as if not tolerated.
        let zero = vec![toleration(UNREACHABLE, "Exists", "", "", Some(0))];
        assert_eq!(
            decide(&taints, &zero),
            Decision::DeleteAfter(Duration::ZERO)
        );
        assert_eq!(decide(&[], &own), Decision::Stay);
    }

    #[test]
    fn scheduled_deletions_come_due_in_order_and_can_be_cancelled() {
        let t0 = Instant::now();
        let mut s = Schedule::default();
        let a = ("ns".to_string(), "a".to_string());
        let b = ("ns".to_string(), "b".to_string());
        assert!(s.add(a.clone(), t0, Duration::from_secs(5)));
        assert!(s.add(b.clone(), t0, Duration::from_secs(2)));
        // A later look does not push an existing deletion back.
        assert!(!s.add(
            a.clone(),
            t0 + Duration::from_secs(3),
            Duration::from_secs(5)
        ));
        assert_eq!(s.next_due(), Some(t0 + Duration::from_secs(2)));
        assert!(s.take_due(t0 + Duration::from_secs(1)).is_empty());
        assert_eq!(s.take_due(t0 + Duration::from_secs(2)), vec![b.clone()]);
        assert!(s.cancel(&a));
        assert!(!s.cancel(&a));
        assert!(s.take_due(t0 + Duration::from_secs(10)).is_empty());
        assert_eq!(s.next_due(), None);
    }
}
