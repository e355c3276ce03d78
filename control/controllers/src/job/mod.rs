//! The Job controller (upstream `pkg/controller/job`, as 1.32 runs it: pod tracking with
//! finalizers, JobPodReplacementPolicy, JobManagedBy and JobSuccessPolicy on).
//!
//! A Job runs pods until `completions` of them succeeded (or, without completions, until one
//! did and the rest stopped), `parallelism` at a time, replacing failed ones after a growing
//! delay (`pod_backoff.rs`) until `backoffLimit` failures or `activeDeadlineSeconds` fail the
//! Job. `completionMode: Indexed` gives each pod an index (`indexes.rs`); `podFailurePolicy`
//! (`failure_policy.rs`) and `successPolicy` (`success_policy.rs`) end it early; `suspend`
//! stops its pods and resumes them. The sync is in `sync.rs`; conditions in `conditions.rs`.
//!
//! Why finalizers: every pod the controller creates carries `batch.kubernetes.io/job-tracking`,
//! so a finished pod cannot vanish (pod GC, a node's deletion, a user's delete) before the
//! controller counted it. Counting is a three-step protocol that survives a crash at any
//! point: the pod's uid goes into `status.uncountedTerminatedPods` (written), then its
//! finalizer is removed, then the uid moves from the uncounted list to `succeeded`/`failed`.
//! The pod cache may still show a finalizer the controller already removed; the uids it is
//! waiting to see go (`FinalizerExpectations`) are skipped, so no pod is counted twice.
//!
//! Pods whose Job is gone or finished lose their finalizer in a separate worker
//! (upstream's orphan queue), started only once the Job cache is synced, so a pod is never
//! taken for an orphan because its Job was not listed yet.

pub mod conditions;
pub mod failure_policy;
pub mod indexes;
pub mod pod_backoff;
pub mod success_policy;
mod sync;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures::channel::mpsc::{unbounded, UnboundedReceiver, UnboundedSender};
use futures::StreamExt;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::{Action, Config, Controller};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use parking_lot::Mutex;

use crate::backoff::Backoffs;
use crate::events::Recorder;
use crate::expectations::Expectations;
use crate::informer::{controller_uid, Informer};
use crate::workqueue::{self, names};

/// The finalizer on every pod a Job creates or adopts.
pub const TRACKING_FINALIZER: &str = "batch.kubernetes.io/job-tracking";
/// The only `spec.managedBy` this controller acts on (unset means the same).
pub const MANAGED_BY: &str = "kubernetes.io/job-controller";
const COMPONENT: &str = "job-controller";
/// Upstream's `MaxUncountedPods`: keeps `uncountedTerminatedPods` under 20 KB.
pub const MAX_UNCOUNTED: usize = 500;
/// Upstream's `MaxPodCreateDeletePerSync`.
pub const MAX_PODS_PER_SYNC: usize = 500;
/// Syncs running at once (upstream `--concurrent-job-syncs` is 5; see the ReplicaSet
/// controller for why more here).
const WORKERS: u16 = 16;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("API request failed: {0}")]
    Kube(#[from] kube::Error),
    #[error("{0}")]
    Manage(String),
    #[error("the object has no uid, namespace or spec")]
    Incomplete,
}

/// Pods whose tracking finalizer was removed but whose update the pod cache has not shown yet,
/// by Job uid (upstream `uidTrackingExpectations`).
#[derive(Default)]
pub struct FinalizerExpectations {
    by_job: Mutex<HashMap<String, HashSet<String>>>,
}

impl FinalizerExpectations {
    pub fn expect(&self, job: &str, pods: impl IntoIterator<Item = String>) {
        self.by_job
            .lock()
            .entry(job.to_string())
            .or_default()
            .extend(pods);
    }

    pub fn observed(&self, job: &str, pod: &str) {
        let mut by_job = self.by_job.lock();
        if let Some(set) = by_job.get_mut(job) {
            set.remove(pod);
            if set.is_empty() {
                by_job.remove(job);
            }
        }
    }

    pub fn pending(&self, job: &str) -> HashSet<String> {
        self.by_job.lock().get(job).cloned().unwrap_or_default()
    }

    pub fn forget(&self, job: &str) {
        self.by_job.lock().remove(job);
    }
}

struct Context {
    client: Client,
    pods: Arc<Informer<Pod>>,
    store: Store<Job>,
    expectations: Arc<Expectations>,
    finalizers: Arc<FinalizerExpectations>,
    pod_backoff: pod_backoff::Store,
    recorder: Recorder,
    backoffs: Backoffs,
}

pub fn has_tracking_finalizer(pod: &Pod) -> bool {
    pod.metadata
        .finalizers
        .iter()
        .flatten()
        .any(|f| f == TRACKING_FINALIZER)
}

/// `(name, uid)` of the batch/v1 Job controlling the pod.
fn job_of(pod: &Pod) -> Option<(String, String)> {
    let r = pod
        .metadata
        .owner_references
        .iter()
        .flatten()
        .find(|r| r.controller == Some(true))?;
    (r.kind == "Job" && r.api_version == "batch/v1").then(|| (r.name.clone(), r.uid.clone()))
}

/// Whether the pod's finalizer is no Job's to remove any more: no Job controls it, or its
/// Job is gone (or replaced under the same name) or finished.
fn is_orphaned(store: &Store<Job>, pod: &Pod) -> bool {
    match controller_uid(pod) {
        None => true,
        Some(_) => {
            let Some((name, uid)) = job_of(pod) else {
                // Controlled by another kind: not ours to touch.
                return false;
            };
            let namespace = pod.metadata.namespace.as_deref().unwrap_or_default();
            match store.get(&ObjectRef::new(&name).within(namespace)) {
                None => true,
                Some(job) => {
                    job.metadata.uid.as_deref() != Some(uid.as_str())
                        || conditions::is_finished(&job)
                }
            }
        }
    }
}

/// Maps pod changes to the Jobs to sync and feeds both kinds of expectations (upstream
/// addPod/updatePod/deletePod); pods that may be orphans with a finalizer go to the orphan
/// worker.
fn pod_handler(
    store: Store<Job>,
    expectations: Arc<Expectations>,
    finalizers: Arc<FinalizerExpectations>,
    queue: UnboundedSender<ObjectRef<Job>>,
    orphans: UnboundedSender<(String, String)>,
) -> crate::informer::Handler<Pod> {
    Box::new(move |old, new| {
        let enqueue = |pod: &Pod, name: &str| {
            let namespace = pod.metadata.namespace.as_deref().unwrap_or_default();
            let _ = queue.unbounded_send(ObjectRef::new(name).within(namespace));
        };
        let enqueue_matching = |pod: &Pod| {
            let namespace = pod.metadata.namespace.as_deref().unwrap_or_default();
            for job in store.state() {
                if job.metadata.namespace.as_deref() == Some(namespace)
                    && sync::selector(&job).matches(pod.metadata.labels.as_ref())
                {
                    enqueue(pod, &job.name_any());
                }
            }
        };
        let check_orphan = |pod: &Pod| {
            if has_tracking_finalizer(pod) {
                let namespace = pod.metadata.namespace.clone().unwrap_or_default();
                let _ = orphans.unbounded_send((namespace, pod.name_any()));
            }
        };
        match (old, new) {
            (None, Some(pod)) => {
                match job_of(pod) {
                    Some((name, uid)) => {
                        if pod.metadata.deletion_timestamp.is_some() {
                            expectations.deletion_observed(&uid, &pod.uid().unwrap_or_default());
                        } else {
                            expectations.creation_observed(&uid);
                        }
                        enqueue(pod, &name);
                    }
                    None if controller_uid(pod.as_ref()).is_none()
                        && pod.metadata.deletion_timestamp.is_none() =>
                    {
                        enqueue_matching(pod)
                    }
                    None => {}
                }
                check_orphan(pod);
            }
            (Some(old), Some(pod)) => {
                let owner = job_of(pod);
                if let Some((name, uid)) = &owner {
                    let pod_uid = pod.uid().unwrap_or_default();
                    if pod.metadata.deletion_timestamp.is_some()
                        && old.metadata.deletion_timestamp.is_none()
                    {
                        expectations.deletion_observed(uid, &pod_uid);
                    }
                    if has_tracking_finalizer(old) && !has_tracking_finalizer(pod) {
                        finalizers.observed(uid, &pod_uid);
                    }
                    enqueue(pod, name);
                }
                if let Some((name, _)) = job_of(old) {
                    if Some(&name) != owner.as_ref().map(|(n, _)| n) {
                        enqueue(old, &name);
                    }
                }
                if controller_uid(pod.as_ref()).is_none()
                    && (old.metadata.labels != pod.metadata.labels
                        || controller_uid(old.as_ref()).is_some())
                {
                    enqueue_matching(pod);
                }
                check_orphan(pod);
            }
            (Some(pod), None) => {
                if let Some((name, uid)) = job_of(pod) {
                    let pod_uid = pod.uid().unwrap_or_default();
                    expectations.deletion_observed(&uid, &pod_uid);
                    finalizers.observed(&uid, &pod_uid);
                    enqueue(pod, &name);
                }
            }
            (None, None) => {}
        }
    })
}

/// Builds the Job controller: registers its pod handler on `pods` at once (call this before
/// the informer runs) and returns the future that runs it once the pod cache is synced.
pub fn controller(
    client: Client,
    pods: Arc<Informer<Pod>>,
    recorder: &Recorder,
) -> impl std::future::Future<Output = ()> + Send {
    let api: Api<Job> = Api::all(client.clone());
    let controller = Controller::new(api, watcher::Config::default())
        .with_config(Config::default().concurrency(WORKERS));
    let store = controller.store();
    let expectations = Arc::new(Expectations::default());
    let finalizers = Arc::new(FinalizerExpectations::default());
    let (queue, triggers) = unbounded();
    let (orphans_tx, orphans_rx) = unbounded();
    pods.on_change(pod_handler(
        store.clone(),
        expectations.clone(),
        finalizers.clone(),
        queue,
        orphans_tx.clone(),
    ));
    let ctx = Arc::new(Context {
        client,
        pods: pods.clone(),
        store,
        expectations,
        finalizers,
        pod_backoff: pod_backoff::Store::default(),
        recorder: recorder.for_component(COMPONENT),
        backoffs: Backoffs::default(),
    });
    async move {
        pods.wait_synced().await;
        let orphan_worker = clean_orphans(ctx.clone(), orphans_tx, orphans_rx);
        let controller = controller.reconcile_on(triggers);
        let jobs = workqueue::run(names::JOB, controller, sync::reconcile, error_policy, ctx);
        tokio::select! {
            _ = jobs => {}
            _ = orphan_worker => {}
        }
    }
}

fn error_policy(job: Arc<Job>, error: &Error, ctx: Arc<Context>) -> Action {
    let delay = ctx.backoffs.next(&job.uid().unwrap_or_default());
    tracing::debug!(name = %job.name_any(), "job sync failed: {error}; retrying in {delay:?}");
    Action::requeue(delay)
}

/// The strategic merge patch that drops the tracking finalizer (and nothing else).
fn remove_finalizer_patch() -> Patch<serde_json::Value> {
    Patch::Strategic(serde_json::json!({
        "metadata": {"$deleteFromPrimitiveList/finalizers": [TRACKING_FINALIZER]}
    }))
}

async fn remove_finalizer(client: &Client, pod: &Pod) -> Result<(), kube::Error> {
    let api: Api<Pod> = Api::namespaced(
        client.clone(),
        pod.metadata.namespace.as_deref().unwrap_or_default(),
    );
    match api
        .patch(
            &pod.name_any(),
            &PatchParams::default(),
            &remove_finalizer_patch(),
        )
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        Err(e) => Err(e),
    }
}

/// Removes the tracking finalizer from pods no running Job counts any more (upstream
/// `syncOrphanPod`); failures retry after a few seconds.
async fn clean_orphans(
    ctx: Arc<Context>,
    retry: UnboundedSender<(String, String)>,
    keys: UnboundedReceiver<(String, String)>,
) {
    if ctx.store.wait_until_ready().await.is_err() {
        return;
    }
    keys.for_each_concurrent(WORKERS as usize, |(namespace, name)| {
        let ctx = ctx.clone();
        let retry = retry.clone();
        async move {
            let Some(pod) = ctx.pods.read().get(&namespace, &name) else {
                return;
            };
            if !has_tracking_finalizer(&pod) || !is_orphaned(&ctx.store, &pod) {
                return;
            }
            if let Err(e) = remove_finalizer(&ctx.client, &pod).await {
                tracing::debug!(pod = %name, "removing the job tracking finalizer: {e}");
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_secs(5)).await;
                    let _ = retry.unbounded_send((namespace, name));
                });
            }
        }
    })
    .await;
}
