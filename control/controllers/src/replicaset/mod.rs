//! The ReplicaSet controller, also the ReplicationController controller (upstream
//! `pkg/controller/replicaset` runs both from one implementation, and so does this module:
//! [`Replicated`] is what differs between the two kinds).
//!
//! A sync (one ReplicaSet at a time, never two syncs of the same one at once — kube-runtime's
//! `Controller` guarantees it):
//! 1. claims pods: the ones it controls that still match its selector, plus orphans that match
//!    (adopted with a controllerRef); controlled pods that stopped matching are released;
//! 2. unless expectations are pending (`expectations.rs`), creates the missing pods in
//!    slow-start batches (`slow_start.rs`, at most 500 per sync) or deletes the surplus in
//!    upstream's victim order (`victims.rs`);
//! 3. writes the status (`status.rs`) if it changed.
//!
//! What triggers a sync: the ReplicaSet itself changing (kube-runtime's watch of the kind) and
//! its pods changing (the shared pod informer's handler maps a pod to its controller, or an
//! orphan to every ReplicaSet whose selector matches it). Failed syncs retry with a per-object
//! backoff (`backoff.rs`).

pub mod slow_start;
pub mod status;
pub mod victims;

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

use futures::channel::mpsc::{unbounded, UnboundedSender};
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::{Pod, PodTemplateSpec, ReplicationController};
use k8s_openapi::NamespaceResourceScope;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use kube::runtime::controller::{Action, Config, Controller};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use kube::{Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::backoff::Backoffs;
use crate::controller_ref::{self, owner_ref};
use crate::events::{Recorder, NORMAL, WARNING};
use crate::expectations::Expectations;
use crate::informer::{controller_uid, Informer};
use crate::pods;
use crate::selector::Selector;
use crate::workqueue;
use status::{Condition, ManageFailure, ReplicaStatus, Spec};

/// Pods created or deleted per sync at most (upstream's `burstReplicas`).
pub const BURST_REPLICAS: usize = 500;
/// Syncs running at once (upstream's `--concurrent-replicaset-syncs` is 5; kube-rs has no
/// client-side rate limit, so more workers keep the API server busy instead of waiting).
const WORKERS: u16 = 16;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("API request failed: {0}")]
    Kube(#[from] kube::Error),
    #[error("{0}")]
    Manage(String),
    #[error("the object has no uid or namespace")]
    Incomplete,
}

/// What the controller needs to know of a ReplicaSet-like kind.
pub trait Replicated:
    Resource<DynamicType = (), Scope = NamespaceResourceScope>
    + Clone
    + DeserializeOwned
    + Serialize
    + Debug
    + Send
    + Sync
    + 'static
{
    /// `source.component` of its events, as upstream.
    const COMPONENT: &'static str;
    /// The name of upstream's work queue (the `workqueue_*` metrics' `name`).
    const QUEUE: &'static str;
    fn desired_replicas(&self) -> i32;
    fn min_ready_seconds(&self) -> i32;
    fn pod_selector(&self) -> Selector;
    fn pod_template(&self) -> Option<&PodTemplateSpec>;
    fn current_status(&self) -> ReplicaStatus;
}

impl Replicated for ReplicaSet {
    const COMPONENT: &'static str = "replicaset-controller";
    const QUEUE: &'static str = workqueue::names::REPLICASET;
    fn desired_replicas(&self) -> i32 {
        self.spec.replicas.unwrap_or(1)
    }
    fn min_ready_seconds(&self) -> i32 {
        self.spec.min_ready_seconds.unwrap_or(0)
    }
    fn pod_selector(&self) -> Selector {
        Selector::from_label_selector(&self.spec.selector)
    }
    fn pod_template(&self) -> Option<&PodTemplateSpec> {
        self.spec.template.as_ref()
    }
    fn current_status(&self) -> ReplicaStatus {
        let Some(s) = &self.status else {
            return ReplicaStatus::default();
        };
        ReplicaStatus {
            replicas: s.replicas,
            fully_labeled: s.fully_labeled_replicas.unwrap_or(0),
            ready: s.ready_replicas.unwrap_or(0),
            available: s.available_replicas.unwrap_or(0),
            observed_generation: s.observed_generation.unwrap_or(0),
            conditions: s
                .conditions
                .iter()
                .flatten()
                .map(|c| Condition {
                    type_: c.type_.clone().unwrap_or_default(),
                    status: c.status.clone().unwrap_or_default(),
                    reason: c.reason.clone(),
                    message: c.message.clone(),
                    last_transition_time: c.last_transition_time.clone(),
                })
                .collect(),
        }
    }
}

impl Replicated for ReplicationController {
    const COMPONENT: &'static str = "replication-controller";
    const QUEUE: &'static str = workqueue::names::REPLICATION;
    fn desired_replicas(&self) -> i32 {
        self.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
    }
    fn min_ready_seconds(&self) -> i32 {
        self.spec
            .as_ref()
            .and_then(|s| s.min_ready_seconds)
            .unwrap_or(0)
    }
    fn pod_selector(&self) -> Selector {
        self.spec
            .as_ref()
            .and_then(|s| s.selector.as_ref())
            .map(Selector::from_map)
            .unwrap_or_default()
    }
    fn pod_template(&self) -> Option<&PodTemplateSpec> {
        self.spec.as_ref().and_then(|s| s.template.as_ref())
    }
    fn current_status(&self) -> ReplicaStatus {
        let Some(s) = &self.status else {
            return ReplicaStatus::default();
        };
        ReplicaStatus {
            replicas: s.replicas,
            fully_labeled: s.fully_labeled_replicas.unwrap_or(0),
            ready: s.ready_replicas.unwrap_or(0),
            available: s.available_replicas.unwrap_or(0),
            observed_generation: s.observed_generation.unwrap_or(0),
            conditions: s
                .conditions
                .iter()
                .flatten()
                .map(|c| Condition {
                    type_: c.type_.clone(),
                    status: c.status.clone(),
                    reason: c.reason.clone(),
                    message: c.message.clone(),
                    last_transition_time: c.last_transition_time.clone(),
                })
                .collect(),
        }
    }
}

struct Context<K: Replicated> {
    client: Client,
    pods: Arc<Informer<Pod>>,
    store: Store<K>,
    expectations: Arc<Expectations>,
    recorder: Recorder,
    backoffs: Backoffs,
}

fn is_controlled_by_kind<K: Replicated>(pod: &Pod) -> Option<(String, String)> {
    let r = pod
        .metadata
        .owner_references
        .iter()
        .flatten()
        .find(|r| r.controller == Some(true))?;
    (r.kind == K::kind(&()) && r.api_version == K::api_version(&()))
        .then(|| (r.name.clone(), r.uid.clone()))
}

/// No controller at all (a pod controlled by another kind is not ours to adopt).
fn is_orphan(pod: &Pod) -> bool {
    controller_uid(pod).is_none()
}

/// Maps pod changes to the ReplicaSets to sync, and feeds expectations (upstream's
/// addPod/updatePod/deletePod handlers).
fn pod_handler<K: Replicated>(
    store: Store<K>,
    expectations: Arc<Expectations>,
    queue: UnboundedSender<ObjectRef<K>>,
) -> crate::informer::Handler<Pod> {
    Box::new(move |old, new| {
        let enqueue = |pod: &Pod, name: &str| {
            let namespace = pod.metadata.namespace.as_deref().unwrap_or_default();
            let _ = queue.unbounded_send(ObjectRef::new(name).within(namespace));
        };
        let enqueue_matching = |pod: &Pod| {
            let namespace = pod.metadata.namespace.as_deref().unwrap_or_default();
            for rs in store.state() {
                if rs.meta().namespace.as_deref() == Some(namespace)
                    && rs.pod_selector().matches(pod.metadata.labels.as_ref())
                {
                    enqueue(pod, &rs.name_any());
                }
            }
        };
        match (old, new) {
            (None, Some(pod)) => match is_controlled_by_kind::<K>(pod) {
                Some((name, uid)) => {
                    if pod.metadata.deletion_timestamp.is_some() {
                        // Seen first while already terminating (a relist): a deletion.
                        expectations.deletion_observed(&uid, &pod.uid().unwrap_or_default());
                    } else {
                        expectations.creation_observed(&uid);
                    }
                    enqueue(pod, &name);
                }
                None if is_orphan(pod) && pod.metadata.deletion_timestamp.is_none() => {
                    enqueue_matching(pod)
                }
                None => {}
            },
            (Some(old), Some(pod)) => {
                let owner = is_controlled_by_kind::<K>(pod);
                let old_owner = is_controlled_by_kind::<K>(old);
                if let Some((name, uid)) = &owner {
                    if pod.metadata.deletion_timestamp.is_some()
                        && old.metadata.deletion_timestamp.is_none()
                    {
                        expectations.deletion_observed(uid, &pod.uid().unwrap_or_default());
                    }
                    enqueue(pod, name);
                }
                if let Some((name, _)) = &old_owner {
                    if old_owner != owner {
                        enqueue(old, name);
                    }
                }
                if is_orphan(pod) && (old.metadata.labels != pod.metadata.labels || !is_orphan(old))
                {
                    enqueue_matching(pod);
                }
            }
            (Some(pod), None) => {
                if let Some((name, uid)) = is_controlled_by_kind::<K>(pod) {
                    expectations.deletion_observed(&uid, &pod.uid().unwrap_or_default());
                    enqueue(pod, &name);
                }
            }
            (None, None) => {}
        }
    })
}

/// Builds the controller for kind `K`: registers its pod handler on `pods` at once (call this
/// before the informer runs) and returns the future that runs it once the pod cache is synced.
pub fn controller<K: Replicated>(
    client: Client,
    pods: Arc<Informer<Pod>>,
    recorder: &Recorder,
) -> impl std::future::Future<Output = ()> + Send {
    let api: Api<K> = Api::all(client.clone());
    let controller = Controller::new(api, watcher::Config::default())
        .with_config(Config::default().concurrency(WORKERS));
    let store = controller.store();
    let expectations = Arc::new(Expectations::default());
    let (queue, triggers) = unbounded();
    pods.on_change(pod_handler(store.clone(), expectations.clone(), queue));
    let ctx = Arc::new(Context {
        client,
        pods: pods.clone(),
        store,
        expectations,
        recorder: recorder.for_component(K::COMPONENT),
        backoffs: Backoffs::default(),
    });
    async move {
        pods.wait_synced().await;
        let controller = controller.reconcile_on(triggers);
        workqueue::run(K::QUEUE, controller, reconcile::<K>, error_policy::<K>, ctx).await;
    }
}

fn error_policy<K: Replicated>(rs: Arc<K>, error: &Error, ctx: Arc<Context<K>>) -> Action {
    let delay = ctx.backoffs.next(&rs.uid().unwrap_or_default());
    tracing::debug!(kind = %K::kind(&()), name = %rs.name_any(), "sync failed: {error}; retrying in {delay:?}");
    Action::requeue(delay)
}

/// The message upstream shows for a failed request: the API server's own message.
pub fn api_message(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(status) => status.message.clone(),
        other => other.to_string(),
    }
}

async fn reconcile<K: Replicated>(rs: Arc<K>, ctx: Arc<Context<K>>) -> Result<Action, Error> {
    let uid = rs.uid().ok_or(Error::Incomplete)?;
    let namespace = rs.namespace().ok_or(Error::Incomplete)?;
    let selector = rs.pod_selector();
    let deleting = rs.meta().deletion_timestamp.is_some();
    let pod_api: Api<Pod> = Api::namespaced(ctx.client.clone(), &namespace);

    let claim = {
        let cache = ctx.pods.read();
        controller_ref::classify(
            cache.controlled_by(&uid),
            cache.orphans_in(&namespace),
            &selector,
            deleting,
        )
    };
    for pod in &claim.release {
        controller_ref::release(&pod_api, pod.as_ref(), &uid).await?;
    }
    let mut owned = claim.owned;
    if !claim.adopt.is_empty() {
        let api: Api<K> = Api::namespaced(ctx.client.clone(), &namespace);
        if controller_ref::can_adopt(&api, rs.as_ref()).await? {
            for pod in claim.adopt {
                if controller_ref::adopt(&pod_api, pod.as_ref(), owner_ref(rs.as_ref())).await? {
                    owned.push(pod);
                }
            }
        }
    }
    let active: Vec<Arc<Pod>> = owned.into_iter().filter(|p| pods::is_active(p)).collect();

    let mut failure = None;
    if !deleting && ctx.expectations.satisfied(&uid) {
        if let Err(e) = manage(&rs, &uid, &namespace, &active, &ctx, &pod_api).await {
            failure = Some(e);
        }
    }

    let now = jiff::Timestamp::now();
    let current = rs.current_status();
    let template_labels: Option<&BTreeMap<String, String>> = rs
        .pod_template()
        .and_then(|t| t.metadata.as_ref())
        .and_then(|m| m.labels.as_ref());
    let spec = Spec {
        generation: rs.meta().generation.unwrap_or(0),
        desired: rs.desired_replicas(),
        template_labels,
        min_ready_seconds: rs.min_ready_seconds(),
    };
    let manage_failure = failure.as_ref().map(|e| ManageFailure {
        message: e.to_string(),
    });
    let next = status::calculate(&current, &spec, &active, manage_failure.as_ref(), now);
    if next != current {
        let api: Api<K> = Api::namespaced(ctx.client.clone(), &namespace);
        match api
            .patch_status(
                &rs.name_any(),
                &PatchParams::default(),
                &Patch::Merge(status::patch(&next)),
            )
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 => return Ok(Action::await_change()),
            Err(e) => return Err(e.into()),
        }
    }
    if let Some(e) = failure {
        return Err(e);
    }
    ctx.backoffs.reset(&uid);
    // Pods ready but not yet available for minReadySeconds: look again when they will be.
    let wait = active
        .iter()
        .filter_map(|p| pods::seconds_until_available(p, rs.min_ready_seconds(), now))
        .min();
    Ok(match wait {
        Some(seconds) => Action::requeue(Duration::from_secs(seconds.max(1) as u64)),
        None => Action::await_change(),
    })
}

/// Creates or deletes pods toward the desired count (upstream `manageReplicas`).
async fn manage<K: Replicated>(
    rs: &Arc<K>,
    uid: &str,
    namespace: &str,
    active: &[Arc<Pod>],
    ctx: &Context<K>,
    pod_api: &Api<Pod>,
) -> Result<(), Error> {
    let diff = active.len() as i64 - i64::from(rs.desired_replicas());
    if diff < 0 {
        let count = ((-diff) as usize).min(BURST_REPLICAS);
        let Some(template) = rs.pod_template() else {
            return Err(Error::Manage("the object has no pod template".into()));
        };
        ctx.expectations.expect_creations(uid, count);
        let pod = pods::from_template(template, namespace, &rs.name_any(), owner_ref(rs.as_ref()));
        let (created, error) = slow_start::run(count, 1, || async {
            match pod_api.create(&PostParams::default(), &pod).await {
                Ok(created) => {
                    ctx.recorder.publish(
                        rs.as_ref(),
                        NORMAL,
                        "SuccessfulCreate",
                        format!("Created pod: {}", created.name_any()),
                    );
                    Ok(())
                }
                Err(e) => {
                    ctx.recorder.publish(
                        rs.as_ref(),
                        WARNING,
                        "FailedCreate",
                        format!("Error creating: {}", api_message(&e)),
                    );
                    Err(e)
                }
            }
        })
        .await;
        // Pods that were never created will never be observed.
        for _ in created..count {
            ctx.expectations.creation_observed(uid);
        }
        if let Some(e) = error {
            return Err(Error::Manage(api_message(&e)));
        }
    } else if diff > 0 {
        let count = (diff as usize).min(BURST_REPLICAS);
        let related = related_pods(rs, ctx, active);
        let victims = victims::choose(active, &related, count, jiff::Timestamp::now());
        ctx.expectations
            .expect_deletions(uid, victims.iter().filter_map(|p| p.uid()));
        let results = futures::future::join_all(victims.iter().map(|pod| async move {
            let params = DeleteParams {
                preconditions: Some(Preconditions {
                    uid: pod.uid(),
                    resource_version: None,
                }),
                ..DeleteParams::default()
            };
            match pod_api.delete(&pod.name_any(), &params).await {
                Ok(_) => {
                    ctx.recorder.publish(
                        rs.as_ref(),
                        NORMAL,
                        "SuccessfulDelete",
                        format!("Deleted pod: {}", pod.name_any()),
                    );
                    Ok(())
                }
                Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => {
                    ctx.expectations
                        .deletion_observed(uid, &pod.uid().unwrap_or_default());
                    Ok(())
                }
                Err(e) => {
                    ctx.expectations
                        .deletion_observed(uid, &pod.uid().unwrap_or_default());
                    ctx.recorder.publish(
                        rs.as_ref(),
                        WARNING,
                        "FailedDelete",
                        format!("Error deleting: {}", api_message(&e)),
                    );
                    Err(e)
                }
            }
        }))
        .await;
        if let Some(Err(e)) = results.into_iter().find(|r| r.is_err()) {
            return Err(Error::Manage(api_message(&e)));
        }
    }
    Ok(())
}

/// The active pods of the whole workload: this ReplicaSet's and those of the other
/// ReplicaSets with the same controller (a Deployment's old and new ReplicaSets).
fn related_pods<K: Replicated>(rs: &Arc<K>, ctx: &Context<K>, own: &[Arc<Pod>]) -> Vec<Arc<Pod>> {
    let mut related = own.to_vec();
    let Some(owner) = controller_uid(rs.as_ref()) else {
        return related;
    };
    let siblings: Vec<String> = ctx
        .store
        .state()
        .iter()
        .filter(|s| s.meta().namespace == rs.meta().namespace && s.meta().uid != rs.meta().uid)
        .filter(|s| controller_uid(s.as_ref()) == Some(owner))
        .filter_map(|s| s.uid())
        .collect();
    let cache = ctx.pods.read();
    for sibling in siblings {
        related.extend(
            cache
                .controlled_by(&sibling)
                .into_iter()
                .filter(|p| pods::is_active(p)),
        );
    }
    related
}
