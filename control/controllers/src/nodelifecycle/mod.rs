//! The node lifecycle controller (upstream `pkg/controller/nodelifecycle`, events from
//! `node-controller`): notices nodes whose kubelet went quiet and says so in the API, so that the
//! rest of the cluster (scheduler, taint eviction, endpoints) can act on it.
//!
//! * Every `--node-monitor-period` (5 s) it looks at every Node and its Lease (`health.rs`): past
//!   the grace period the node's Ready and pressure conditions turn `Unknown`, the Node gets the
//!   event `NodeNotReady` and the Ready condition of its pods turns False (upstream
//!   `MarkPodsNotReady`, with the pod event `NodeNotReady` "Node is not ready"), which takes them
//!   out of Service endpoints.
//! * A node not Ready (by its own word or by silence) is queued for the NoExecute taint its state
//!   calls for (`taints.rs`), at a per-zone rate (`zones.rs`); the taint eviction controller then
//!   evicts the pods that do not tolerate it. Ready again: the taints go at once.
//! * On every Node change its NoSchedule condition taints (TaintNodesByCondition) are brought in
//!   line with its conditions and `spec.unschedulable`.
//!
//! Like upstream, it reads the status it writes from the shared informers (nodes, pods, and the
//! Leases of `kube-node-lease`), keeps its own clock for heartbeats, and leaves a deleted Node's
//! pods to the pod garbage collector (`podgc.rs`).

pub mod health;
pub mod taints;
pub mod zones;

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::channel::mpsc::{unbounded, UnboundedSender};
use futures::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, NodeCondition, Pod, Taint};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::api::{Api, Patch, PatchParams};
use kube::{Client, ResourceExt};
use parking_lot::Mutex;
use serde_json::json;

use crate::events::{Recorder, NORMAL, WARNING};
use crate::informer::Informer;
use health::{Grace, Tracker};
use zones::{Disruption, Queue, Rates};

/// `source.component` of its events, as upstream.
pub const COMPONENT: &str = "node-controller";
/// Where kubelets keep their heartbeat Leases.
pub const LEASE_NAMESPACE: &str = "kube-node-lease";
/// Tries of a node write that lost a race (upstream `UpdateTaintBackoff` / `NodeHealthUpdateRetry`).
const RETRIES: usize = 5;

/// What the flags say (`lib.rs`).
#[derive(Debug, Clone, Copy)]
pub struct Config {
    pub monitor_period: Duration,
    pub grace: Grace,
    pub rates: Rates,
}

struct Context {
    client: Client,
    nodes: Arc<Informer<Node>>,
    pods: Arc<Informer<Pod>>,
    leases: Arc<Informer<Lease>>,
    recorder: Recorder,
    config: Config,
    /// zone → its NoExecute tainting queue.
    queues: Mutex<BTreeMap<String, Queue>>,
}

/// Builds the controller: registers its Node handler at once (call before the informers run) and
/// returns the future that runs it once the caches are synced. `leases` must watch
/// `kube-node-lease`.
pub fn controller(
    client: Client,
    nodes: Arc<Informer<Node>>,
    pods: Arc<Informer<Pod>>,
    leases: Arc<Informer<Lease>>,
    config: Config,
    recorder: &Recorder,
) -> impl std::future::Future<Output = ()> + Send {
    let (queue, changed) = unbounded::<String>();
    nodes.on_change(node_handler(queue.clone()));
    let ctx = Arc::new(Context {
        client,
        nodes,
        pods,
        leases,
        recorder: recorder.for_component(COMPONENT),
        config,
        queues: Mutex::new(BTreeMap::new()),
    });
    async move {
        ctx.nodes.wait_synced().await;
        ctx.pods.wait_synced().await;
        ctx.leases.wait_synced().await;
        tokio::select! {
            _ = monitor(ctx.clone()) => {}
            _ = taint_pass(ctx.clone()) => {}
            _ = no_schedule_worker(ctx.clone(), changed, queue) => {}
        }
    }
}

fn node_handler(queue: UnboundedSender<String>) -> crate::informer::Handler<Node> {
    Box::new(move |_old, new| {
        if let Some(node) = new {
            let _ = queue.unbounded_send(node.name_any());
        }
    })
}

fn lease_renew(ctx: &Context, node: &str) -> Option<jiff::Timestamp> {
    let lease = ctx.leases.read().get(LEASE_NAMESPACE, node)?;
    lease.spec.as_ref()?.renew_time.as_ref().map(|t| t.0)
}

fn cached_node(ctx: &Context, name: &str) -> Option<Arc<Node>> {
    ctx.nodes.read().get("", name)
}

/// The node as upstream's node events name it (`RecordNodeStatusChange`: uid = the name).
fn node_ref(name: &str, uid: Option<String>) -> Node {
    Node {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            uid: Some(uid.unwrap_or_else(|| name.to_string())),
            ..ObjectMeta::default()
        },
        ..Node::default()
    }
}

/// Upstream `monitorNodeHealth`, every `--node-monitor-period`.
async fn monitor(ctx: Arc<Context>) {
    let mut tracker = Tracker::default();
    let mut known: HashSet<String> = HashSet::new();
    // Nodes whose pods could not all be marked not ready: retried on the next pass.
    let mut retry: HashSet<String> = HashSet::new();
    let mut tick = tokio::time::interval(ctx.config.monitor_period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        monitor_pass(&ctx, &mut tracker, &mut known, &mut retry).await;
    }
}

async fn monitor_pass(
    ctx: &Context,
    tracker: &mut Tracker,
    known: &mut HashSet<String>,
    retry: &mut HashSet<String>,
) {
    let nodes: Vec<Arc<Node>> = ctx.nodes.read().in_namespace("");
    let rate = ctx.config.rates.eviction_rate;
    let names: HashSet<String> = nodes.iter().map(|n| n.name_any()).collect();
    for node in &nodes {
        let name = node.name_any();
        if known.insert(name.clone()) {
            tracing::info!(node = %name, "Controller observed a new Node");
            ctx.recorder.publish(
                &node_ref(&name, node.uid()),
                NORMAL,
                "RegisteredNode",
                format!("Node {name} event: Registered Node {name} in Controller"),
            );
            ctx.queues
                .lock()
                .entry(zones::zone_key(node))
                .or_insert_with(|| Queue::new(rate, Instant::now()));
            mark_reachable(ctx, node).await;
        }
    }
    for gone in known.iter().filter(|n| !names.contains(*n)) {
        tracing::info!(node = %gone, "Controller observed a Node deletion");
        ctx.recorder.publish(
            &node_ref(gone, None),
            NORMAL,
            "RemovingNode",
            format!("Node {gone} event: Removing Node {gone} from Controller"),
        );
        tracker.forget(gone);
        retry.remove(gone);
    }
    known.retain(|n| names.contains(n));

    let mut ready_by_zone: BTreeMap<String, Vec<Option<NodeCondition>>> = BTreeMap::new();
    for node in &nodes {
        let name = node.name_any();
        let now = jiff::Timestamp::now();
        let observation = tracker.observe(node, lease_renew(ctx, &name), now, ctx.config.grace);
        let mut current_ready = observation.current_ready.clone();
        if let Some(conditions) = observation.update {
            match write_conditions(ctx, node, &conditions).await {
                Ok(()) => tracker.written(&name, current_ready.clone(), now),
                Err(e) => {
                    tracing::warn!(node = %name, "updating the node's conditions: {e}");
                    // Judged again on the next pass, from what the API then holds.
                    current_ready = health::condition(node, "Ready").cloned();
                    if current_ready.is_none() {
                        continue;
                    }
                }
            }
        }
        ready_by_zone
            .entry(zones::zone_key(node))
            .or_default()
            .push(current_ready.clone());
        let Some(current) = current_ready else {
            continue;
        };
        let observed = &observation.observed_ready;
        no_execute_by_state(ctx, node, &observed.status).await;
        let went_not_ready = current.status != "True" && observed.status == "True";
        if went_not_ready {
            // Once per transition (upstream `RecordNodeStatusChange`).
            ctx.recorder.publish(
                &node_ref(&name, None),
                NORMAL,
                "NodeNotReady",
                format!("Node {name} status is now: NodeNotReady"),
            );
        }
        if went_not_ready || (retry.contains(&name) && current.status != "True") {
            if let Err(e) = mark_pods_not_ready(ctx, &name).await {
                tracing::warn!(node = %name, "marking the node's pods not ready: {e}; retrying");
                retry.insert(name);
                continue;
            }
        }
        retry.remove(&name);
    }

    let decision = {
        let mut queues = ctx.queues.lock();
        zones::handle_disruption(
            &mut queues,
            &ready_by_zone,
            &ctx.config.rates,
            Instant::now(),
        )
    };
    match decision {
        Disruption::EnterFull => {
            for node in &nodes {
                mark_reachable(ctx, node).await;
            }
        }
        Disruption::LeaveFull => tracker.reset_probes(jiff::Timestamp::now()),
        Disruption::Zones | Disruption::StayFull => {}
    }
}

/// Upstream `processTaintBaseEviction`, by the Ready status seen before this pass: not ready →
/// queue the matching NoExecute taint (or swap the opposite one at once); Ready → lift them.
async fn no_execute_by_state(ctx: &Context, node: &Node, observed_status: &str) {
    let name = node.name_any();
    match taints::no_execute_for(observed_status) {
        Some((wanted, opposite)) => {
            if taints::has(node, &opposite) {
                // The node changed from not-ready to unreachable (or back): swap now, no queue.
                if let Err(e) = swap_taints(ctx, &name, &[wanted], &[opposite]).await {
                    tracing::warn!(node = %name, "swapping its NoExecute taint: {e}; retrying next pass");
                }
            } else {
                let zone = zones::zone_key(node);
                let rate = ctx.config.rates.eviction_rate;
                ctx.queues
                    .lock()
                    .entry(zone)
                    .or_insert_with(|| Queue::new(rate, Instant::now()))
                    .add(&name);
            }
        }
        None => mark_reachable(ctx, node).await,
    }
}

/// Upstream `markNodeAsReachable`: no NoExecute taint of ours, and out of the tainting queue.
async fn mark_reachable(ctx: &Context, node: &Node) {
    let name = node.name_any();
    let ours = [
        taints::taint(taints::UNREACHABLE, taints::NO_EXECUTE),
        taints::taint(taints::NOT_READY, taints::NO_EXECUTE),
    ];
    if ours.iter().any(|t| taints::has(node, t)) {
        if let Err(e) = swap_taints(ctx, &name, &[], &ours).await {
            tracing::warn!(node = %name, "removing its NoExecute taints: {e}");
        }
    }
    if let Some(queue) = ctx.queues.lock().get_mut(&zones::zone_key(node)) {
        queue.remove(&name);
    }
}

/// Upstream `doNoExecuteTaintingPass`: taints the queued nodes as fast as their zone allows.
async fn taint_pass(ctx: Arc<Context>) {
    let mut tick = tokio::time::interval(zones::TAINT_PASS_PERIOD);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let due: Vec<(String, String)> = {
            let mut queues = ctx.queues.lock();
            let now = Instant::now();
            queues
                .iter_mut()
                .filter_map(|(zone, q)| q.pop(now).map(|n| (zone.clone(), n)))
                .collect()
        };
        for (zone, name) in due {
            let Some(node) = cached_node(&ctx, &name) else {
                continue;
            };
            let Some(ready) = health::condition(&node, "Ready") else {
                continue;
            };
            // Ready again by now: nothing to taint.
            let Some((wanted, opposite)) = taints::no_execute_for(&ready.status) else {
                continue;
            };
            if let Err(e) = swap_taints(&ctx, &name, &[wanted], &[opposite]).await {
                tracing::warn!(node = %name, "tainting the unresponsive node: {e}");
                if let Some(q) = ctx.queues.lock().get_mut(&zone) {
                    q.retry(name);
                }
            }
        }
    }
}

/// Upstream `doNoScheduleTaintingPass`, for every changed Node.
async fn no_schedule_worker(
    ctx: Arc<Context>,
    mut changed: futures::channel::mpsc::UnboundedReceiver<String>,
    requeue: UnboundedSender<String>,
) {
    while let Some(name) = changed.next().await {
        let Some(node) = cached_node(&ctx, &name) else {
            continue;
        };
        let (add, remove) = taints::no_schedule_diff(&node);
        if add.is_empty() && remove.is_empty() {
            continue;
        }
        if let Err(e) = swap_taints(&ctx, &name, &add, &remove).await {
            tracing::warn!(node = %name, "updating its condition taints: {e}; retrying");
            let requeue = requeue.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_secs(1)).await;
                let _ = requeue.unbounded_send(name);
            });
        }
    }
}

/// Writes the node's conditions (a strategic merge patch: conditions merge by type) unless
/// the Node changed since it was read.
async fn write_conditions(
    ctx: &Context,
    node: &Node,
    conditions: &[NodeCondition],
) -> Result<(), kube::Error> {
    let api: Api<Node> = Api::all(ctx.client.clone());
    let patch = json!({
        "metadata": {"resourceVersion": node.resource_version()},
        "status": {"conditions": conditions},
    });
    api.patch_status(
        &node.name_any(),
        &PatchParams::default(),
        &Patch::Strategic(patch),
    )
    .await?;
    Ok(())
}

/// Adds and removes taints on the Node as it is in the API now (upstream
/// `SwapNodeControllerTaint`: GET, change, patch with the resourceVersion as precondition,
/// again on a conflict).
async fn swap_taints(
    ctx: &Context,
    name: &str,
    add: &[Taint],
    remove: &[Taint],
) -> Result<(), kube::Error> {
    let api: Api<Node> = Api::all(ctx.client.clone());
    let mut attempt = 0;
    loop {
        attempt += 1;
        let node = match api.get(name).await {
            Ok(node) => node,
            Err(kube::Error::Api(e)) if e.code == 404 => return Ok(()),
            Err(e) => return Err(e),
        };
        let Some(next) = taints::swap(taints::taints(&node), add, remove, jiff::Timestamp::now())
        else {
            return Ok(());
        };
        let patch = json!({
            "metadata": {"resourceVersion": node.resource_version()},
            "spec": {"taints": next},
        });
        match api
            .patch(name, &PatchParams::default(), &Patch::Merge(patch))
            .await
        {
            Ok(_) => {
                tracing::info!(node = %name, ?add, ?remove, "node taints updated");
                return Ok(());
            }
            Err(kube::Error::Api(e)) if e.code == 409 && attempt < RETRIES => continue,
            Err(kube::Error::Api(e)) if e.code == 404 => return Ok(()),
            Err(e) => return Err(e),
        }
    }
}

/// Upstream `MarkPodsNotReady`: the Ready condition of every pod on the node turns False (the
/// pods leave Service endpoints), with the pod event `NodeNotReady`.
async fn mark_pods_not_ready(ctx: &Context, node: &str) -> Result<(), kube::Error> {
    let pods: Vec<Arc<Pod>> = ctx
        .pods
        .read()
        .all()
        .into_iter()
        .filter(|p| p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(node))
        .collect();
    let mut failure = None;
    for pod in pods {
        let Some(ready) = pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
        else {
            continue;
        };
        if ready.status == "False" {
            continue;
        }
        let api: Api<Pod> = Api::namespaced(
            ctx.client.clone(),
            pod.metadata.namespace.as_deref().unwrap_or_default(),
        );
        let patch = json!({"status": {"conditions": [{
            "type": "Ready",
            "status": "False",
            "lastTransitionTime": Time(jiff::Timestamp::now()),
        }]}});
        match api
            .patch_status(
                &pod.name_any(),
                &PatchParams::default(),
                &Patch::Strategic(patch),
            )
            .await
        {
            Ok(_) => {}
            // Already gone: nothing left to do.
            Err(kube::Error::Api(e)) if e.code == 404 => continue,
            Err(e) => {
                tracing::info!(pod = %pod.name_any(), "updating the pod's Ready condition: {e}");
                failure = Some(e);
            }
        }
        // After the update, so that the pod still exists (as upstream).
        ctx.recorder.publish(
            pod.as_ref(),
            WARNING,
            "NodeNotReady",
            "Node is not ready".into(),
        );
    }
    match failure {
        Some(e) => Err(e),
        None => Ok(()),
    }
}
