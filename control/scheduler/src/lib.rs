//! skiff's kube-scheduler: watches pods that have no node and the nodes, picks the best node for
//! each pod and binds it (upstream's `pkg/scheduler`).
//!
//! Layout: `framework.rs` (a node with its pods, a pod's requests), `plugins/` (the default
//! filters and scores, a module each), `algorithm.rs` (one decision: filter, score, pick;
//! upstream's failure message; preemption), `queue.rs` (active/backoff/unschedulable),
//! `cache.rs` (nodes and the pods on them, with pods assumed before their binding lands),
//! `api.rs` (bindings, conditions, events), and this file: the loop that joins them.
//!
//! One task owns the queue and the cache and makes the decisions, so nothing is shared under a
//! lock; bindings run as tasks of their own and report back, as upstream binds asynchronously
//! after assuming the pod in its cache. A binding that fails is forgotten from the cache and the
//! pod retried after its backoff, so the cache never counts a node's resources twice.

pub mod algorithm;
pub mod api;
pub mod cache;
pub mod framework;
pub mod metrics;
pub mod plugins;
pub mod quantity;
pub mod queue;

use std::sync::Arc;
use std::time::Duration;

use futures::{FutureExt, StreamExt};
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt;
use kube::{Api, Client};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::algorithm::{FitError, Preemption};
use crate::cache::Cache;
use crate::metrics::Metrics;
use crate::queue::Queue;

/// A pod this scheduler is responsible for: no node yet, ours by name, not finished or deleting,
/// and no scheduling gates left (upstream's SchedulingGates plugin keeps gated pods out of the
/// active queue until their gates are removed).
pub fn is_pending_for_us(pod: &Pod) -> bool {
    let Some(spec) = pod.spec.as_ref() else {
        return false;
    };
    let ours = spec
        .scheduler_name
        .as_deref()
        .is_none_or(|n| n.is_empty() || n == api::SCHEDULER_NAME);
    let unbound = spec.node_name.as_deref().is_none_or(str::is_empty);
    let gated = spec
        .scheduling_gates
        .as_ref()
        .is_some_and(|g| !g.is_empty());
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    ours && unbound
        && !gated
        && pod.metadata.deletion_timestamp.is_none()
        && !matches!(phase, Some("Succeeded") | Some("Failed"))
}

/// Where the scheduler's Lease lives, as upstream's.
pub const LEASE_NAMESPACE: &str = "kube-system";
pub const LEASE_NAME: &str = "kube-scheduler";

/// Runs the scheduler while this instance holds the Lease `kube-system/kube-scheduler`
/// (upstream's timings: 15 s lease, 10 s renew deadline, 2 s retry), so several can run and one
/// schedules; when `shutdown` completes it stops and releases the Lease for a standby at once.
/// Losing the Lease is an error: the caller exits, as upstream's scheduler does.
pub async fn run_leader_elected(
    client: Client,
    metrics: Arc<Metrics>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    use skiff_leaderelection::{default_identity, LeaderElector, LeaseConfig};
    let config = LeaseConfig::new(LEASE_NAMESPACE, LEASE_NAME, default_identity());
    LeaderElector::new(client.clone(), config)
        .run_until(move || run(client, metrics), shutdown)
        .await
}

/// Bindings (and their events) in flight at once: enough to keep the API server busy, few
/// enough that a burst of decisions cannot open thousands of requests.
const BINDINGS_IN_FLIGHT: usize = 64;

/// What a binding task reports.
struct BindResult {
    pod: Arc<Pod>,
    node: String,
    result: Result<(), kube::Error>,
    /// When the pod entered the queue, and when this attempt started.
    since: Instant,
    attempt_started: Instant,
}

/// Runs the scheduler until the watches end (they retry with backoff, so: until the process
/// stops).
pub async fn run(client: Client, metrics: Arc<Metrics>) -> anyhow::Result<()> {
    let mut pods = watcher::watcher(Api::<Pod>::all(client.clone()), watcher::Config::default())
        .default_backoff()
        .boxed()
        .fuse();
    let mut nodes = watcher::watcher(Api::<Node>::all(client.clone()), watcher::Config::default())
        .default_backoff()
        .boxed()
        .fuse();
    let (bound_tx, mut bound_rx) = mpsc::unbounded_channel::<BindResult>();
    let mut state = State {
        metrics,
        ..State::default()
    };
    let in_flight = Arc::new(tokio::sync::Semaphore::new(BINDINGS_IN_FLIGHT));
    let mut gauges_at = Instant::now();
    let mut decisions: u64 = 0;
    tracing::info!("scheduler: started");
    loop {
        // Everything already delivered goes in before the next decision.
        while let Some(Some(ev)) = nodes.next().now_or_never() {
            state.node_event(ev);
        }
        while let Some(Some(ev)) = pods.next().now_or_never() {
            state.pod_event(ev);
        }
        while let Ok(done) = bound_rx.try_recv() {
            state.bound(&client, done);
        }
        if gauges_at.elapsed() >= Duration::from_secs(1) {
            gauges_at = Instant::now();
            let (active, backoff, unschedulable) = state.queue.sizes();
            state.metrics.queue_sizes(active, backoff, unschedulable);
        }
        if state.synced() && state.schedule_next(&client, &bound_tx, &in_flight) {
            // Let the binding tasks and the watches run between decisions on a busy queue.
            decisions += 1;
            if decisions.is_multiple_of(32) {
                tokio::task::yield_now().await;
            }
            continue;
        }
        // Nothing ready: wait for a change or the next backoff to end.
        let wakeup = state
            .queue
            .next_wakeup()
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(30));
        tokio::select! {
            Some(ev) = nodes.next() => state.node_event(ev),
            Some(ev) = pods.next() => state.pod_event(ev),
            Some(done) = bound_rx.recv() => state.bound(&client, done),
            _ = tokio::time::sleep_until(wakeup) => {}
        }
    }
}

/// The queue and the cache, owned by the scheduling loop.
#[derive(Default)]
struct State {
    cache: Cache,
    queue: Queue,
    metrics: Arc<Metrics>,
    /// Where the next decision starts filtering (see `algorithm::schedule`).
    next_start: usize,
    recorder: Arc<api::Recorder>,
    nodes_synced: bool,
    pods_synced: bool,
}

impl State {
    /// Decisions wait for the first full list of nodes and pods, or a node's pods could be
    /// missed and its resources double-booked.
    fn synced(&self) -> bool {
        self.nodes_synced && self.pods_synced
    }

    fn node_event(&mut self, ev: Result<Event<Node>, watcher::Error>) {
        match ev {
            Ok(ev) => {
                if matches!(ev, Event::InitDone) {
                    self.nodes_synced = true;
                }
                if self.cache.node_event(ev) {
                    self.queue.move_all_unschedulable();
                }
            }
            Err(e) => tracing::warn!("scheduler: node watch: {e}"),
        }
    }

    fn pod_event(&mut self, ev: Result<Event<Pod>, watcher::Error>) {
        let ev = match ev {
            Ok(ev) => ev,
            Err(e) => {
                tracing::warn!("scheduler: pod watch: {e}");
                return;
            }
        };
        match ev {
            Event::Apply(pod) | Event::InitApply(pod) => {
                let pod = Arc::new(pod);
                let uid = pod.metadata.uid.clone().unwrap_or_default();
                if is_pending_for_us(&pod) {
                    if !self.cache.is_assumed(&uid) {
                        self.queue.add_or_update(pod, Instant::now());
                    }
                } else {
                    self.queue.remove(&uid);
                    if self.cache.pod_updated(pod) {
                        self.queue.move_all_unschedulable();
                    }
                }
            }
            Event::Delete(pod) => {
                let uid = pod.metadata.uid.clone().unwrap_or_default();
                self.queue.remove(&uid);
                self.recorder.forget(&uid);
                if self.cache.pod_deleted(&uid) {
                    self.queue.move_all_unschedulable();
                }
            }
            Event::Init => self.cache.pods_relisting(),
            Event::InitDone => {
                self.pods_synced = true;
                if self.cache.pods_relisted() {
                    self.queue.move_all_unschedulable();
                }
            }
        }
    }

    /// Takes the next ready pod from the queue and decides for it; false when none is ready.
    fn schedule_next(
        &mut self,
        client: &Client,
        bound_tx: &mpsc::UnboundedSender<BindResult>,
        in_flight: &Arc<tokio::sync::Semaphore>,
    ) -> bool {
        let Some(popped) = self.queue.pop(Instant::now()) else {
            return false;
        };
        let attempt_started = Instant::now();
        let (pod, since) = (popped.pod, popped.since);
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let nodes = self.cache.nodes();
        match algorithm::schedule(&pod, &nodes, &mut self.next_start) {
            Ok(node) => {
                self.cache.assume(pod.clone(), &node);
                let client = client.clone();
                let tx = bound_tx.clone();
                let in_flight = in_flight.clone();
                tokio::spawn(async move {
                    let _permit = in_flight.acquire_owned().await;
                    let result = api::bind(&client, &pod, &node).await;
                    let _ = tx.send(BindResult {
                        pod,
                        node,
                        result,
                        since,
                        attempt_started,
                    });
                });
            }
            Err(fit) => {
                self.metrics
                    .attempt("unschedulable", attempt_started.elapsed().as_secs_f64());
                self.queue.unschedulable(&uid, Instant::now());
                unschedulable(client, &self.recorder, &pod, fit);
            }
        }
        true
    }

    /// A binding finished: confirm or forget the assumed pod.
    fn bound(&mut self, client: &Client, done: BindResult) {
        let uid = done.pod.metadata.uid.clone().unwrap_or_default();
        match done.result {
            Ok(()) => {
                self.metrics
                    .attempt("scheduled", done.attempt_started.elapsed().as_secs_f64());
                self.metrics.scheduled(done.since.elapsed().as_secs_f64());
                // The pod stays assumed in the cache until the watch shows it bound.
                self.queue.done(&uid);
                self.recorder.forget(&uid);
                let message = format!(
                    "Successfully assigned {}/{} to {}",
                    done.pod.metadata.namespace.as_deref().unwrap_or_default(),
                    done.pod.metadata.name.as_deref().unwrap_or_default(),
                    done.node
                );
                let client = client.clone();
                let recorder = self.recorder.clone();
                tokio::spawn(async move {
                    let _ = recorder
                        .event(
                            &client,
                            &done.pod,
                            "Normal",
                            "Scheduled",
                            "Binding",
                            &message,
                        )
                        .await;
                });
            }
            Err(e) => {
                self.metrics
                    .attempt("error", done.attempt_started.elapsed().as_secs_f64());
                tracing::info!(pod = ?done.pod.metadata.name, node = %done.node, "binding failed: {e}");
                self.cache.forget(&uid);
                match e {
                    // Gone or already bound by someone else: the watch tells the rest.
                    kube::Error::Api(ref s) if s.code == 404 => self.queue.remove(&uid),
                    _ => self.queue.backoff(&uid, Instant::now()),
                }
            }
        }
    }
}

/// Reports a pod that fits nowhere (event, condition) and starts its preemption, if any.
fn unschedulable(client: &Client, recorder: &Arc<api::Recorder>, pod: &Arc<Pod>, fit: FitError) {
    let message = fit.message();
    tracing::debug!(pod = ?pod.metadata.name, %message, "unschedulable");
    let client = client.clone();
    let recorder = recorder.clone();
    let pod = pod.clone();
    tokio::spawn(async move {
        if let Preemption::Victims { node, victims } = &fit.preemption {
            for victim in victims {
                let note = format!(
                    "Preempted by pod {} on node {node}",
                    pod.metadata.uid.as_deref().unwrap_or_default()
                );
                if let Err(e) = api::evict_victim(&client, victim).await {
                    tracing::warn!("scheduler: evicting a preemption victim: {e}");
                    continue;
                }
                let _ = recorder
                    .record(&client, victim, "Normal", "Preempted", "Preempting", &note)
                    .await;
            }
            if let Err(e) = api::nominate(&client, &pod, node).await {
                tracing::warn!("scheduler: nominating {node}: {e}");
            }
        }
        if !api::already_unschedulable(&pod, &message) {
            if let Err(e) = api::mark_unschedulable(&client, &pod, &message).await {
                tracing::debug!("scheduler: PodScheduled condition: {e}");
            }
        }
        let _ = recorder
            .record(
                &client,
                &pod,
                "Warning",
                "FailedScheduling",
                "Scheduling",
                &message,
            )
            .await;
    });
}
