//! The StatefulSet controller (upstream `pkg/controller/statefulset`): pods with stable names,
//! hostnames and storage, created, deleted and updated in ordinal order.
//!
//! A sync (one StatefulSet at a time — kube-runtime's `Controller` guarantees it):
//! 1. claims its ControllerRevisions (adopting matching orphans) and pods (controllerRef,
//!    selector *and* a name of this set, `<set>-<ordinal>`; adopting matching orphans,
//!    releasing pods that stopped matching);
//! 2. finds the update revision — the latest if it holds the template, an older one renumbered
//!    if the template came back (`kubectl rollout undo`), else a new one — and the current
//!    revision named by `status.currentRevision` (`revision.rs`);
//! 3. lays the pods out by ordinal and walks them (`control.rs`: OrderedReady or Parallel),
//!    creating claims (`pvc.rs`) before pods (`identity.rs`), then one step of the update
//!    strategy (`update.rs`);
//! 4. writes the status (`status.rs`) if it changed, and deletes revisions beyond
//!    `revisionHistoryLimit` that nothing runs.
//!
//! Unlike the ReplicaSet and DaemonSet controllers there are no expectations, as upstream:
//! pods have fixed names, so a sync on a stale cache that tries to create `web-1` again gets
//! AlreadyExists (and retries with backoff) instead of a duplicate, and OrderedReady never
//! moves on before the cache shows the previous pod Ready.
//!
//! Triggers: the StatefulSet itself (kube-runtime's watch) and its pods (the shared pod
//! informer: a pod maps to its set by controllerRef, an orphan to every set whose selector
//! matches it). ControllerRevisions and claims are read from shared informers but trigger
//! nothing (upstream only lists them); a sync with `minReadySeconds` requeues itself until the
//! pods are available.
//!
//! Events as upstream's `StatefulPodControl` (`statefulset-controller`): `SuccessfulCreate`
//! "create Pod web-0 in StatefulSet web successful", `SuccessfulDelete`, `SuccessfulUpdate`,
//! their `Failed…` warnings "… failed error: <err>", and for claims "create Claim www-web-0
//! Pod web-0 in StatefulSet web success".

pub mod control;
pub mod identity;
pub mod pvc;
pub mod revision;
pub mod status;
pub mod update;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::channel::mpsc::{unbounded, UnboundedSender};
use k8s_openapi::api::apps::v1::{ControllerRevision, StatefulSet};
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod, PodTemplateSpec};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use kube::runtime::controller::{Action, Config, Controller};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use kube::{Client, Resource, ResourceExt};

use crate::backoff::Backoffs;
use crate::controller_ref::{self, owner_ref};
use crate::events::{Recorder, NORMAL, WARNING};
use crate::history::{self, Created};
use crate::informer::{controller_uid, Handler, Informer};
use crate::replicaset::{api_message, slow_start};
use crate::selector::Selector;
use crate::workqueue::{self, names};
use control::{Revision, Step};
use revision::UpdateRevision;

pub const COMPONENT: &str = "statefulset-controller";
/// Syncs at once (upstream `--concurrent-statefulset-syncs` is 5).
const WORKERS: u16 = 5;
/// Names tried for a new revision before giving up for this sync.
const MAX_COLLISIONS: i32 = 100;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("API request failed: {0}")]
    Kube(#[from] kube::Error),
    #[error("{0}")]
    Sync(String),
    #[error("the stateful set has no uid or namespace")]
    Incomplete,
}

struct Context {
    client: Client,
    pods: Arc<Informer<Pod>>,
    revisions: Arc<Informer<ControllerRevision>>,
    claims: Arc<Informer<PersistentVolumeClaim>>,
    recorder: Recorder,
    backoffs: Backoffs,
}

/// The StatefulSet named by the object's controllerRef, as its name.
fn controller_of<K: Resource>(object: &K) -> Option<String> {
    let r = object
        .meta()
        .owner_references
        .iter()
        .flatten()
        .find(|r| r.controller == Some(true))?;
    (r.kind == "StatefulSet" && r.api_version == "apps/v1").then(|| r.name.clone())
}

fn selector_of(set: &StatefulSet) -> Selector {
    Selector::from_label_selector(&set.spec.selector)
}

fn enqueue_to(queue: &UnboundedSender<ObjectRef<StatefulSet>>, namespace: &str, name: &str) {
    let _ = queue.unbounded_send(ObjectRef::new(name).within(namespace));
}

/// Every StatefulSet of the pod's namespace whose selector matches it (upstream
/// `getStatefulSetsForPod`).
fn enqueue_matching(
    store: &Store<StatefulSet>,
    queue: &UnboundedSender<ObjectRef<StatefulSet>>,
    pod: &Pod,
) {
    let namespace = pod.metadata.namespace.as_deref().unwrap_or_default();
    for set in store.state() {
        if set.metadata.namespace.as_deref() == Some(namespace)
            && selector_of(&set).matches(pod.metadata.labels.as_ref())
        {
            enqueue_to(queue, namespace, &set.name_any());
        }
    }
}

/// Pod changes → StatefulSets to sync (upstream addPod/updatePod/deletePod).
fn pod_handler(
    store: Store<StatefulSet>,
    queue: UnboundedSender<ObjectRef<StatefulSet>>,
) -> Handler<Pod> {
    Box::new(move |old, new| {
        let namespace = |pod: &Pod| pod.metadata.namespace.clone().unwrap_or_default();
        let orphan = |pod: &Pod| controller_uid(pod).is_none();
        match (old, new) {
            (None, Some(pod)) => match controller_of(pod.as_ref()) {
                Some(name) => enqueue_to(&queue, &namespace(pod), &name),
                None if orphan(pod) && pod.metadata.deletion_timestamp.is_none() => {
                    enqueue_matching(&store, &queue, pod)
                }
                None => {}
            },
            (Some(old), Some(pod)) => {
                if old.metadata.resource_version == pod.metadata.resource_version {
                    return;
                }
                let owner = controller_of(pod.as_ref());
                let old_owner = controller_of(old.as_ref());
                if let Some(name) = &old_owner {
                    if old_owner != owner {
                        enqueue_to(&queue, &namespace(old), name);
                    }
                }
                match &owner {
                    Some(name) => enqueue_to(&queue, &namespace(pod), name),
                    None if orphan(pod)
                        && (old.metadata.labels != pod.metadata.labels || !orphan(old)) =>
                    {
                        enqueue_matching(&store, &queue, pod)
                    }
                    None => {}
                }
            }
            (Some(pod), None) => {
                if let Some(name) = controller_of(pod.as_ref()) {
                    enqueue_to(&queue, &namespace(pod), &name);
                }
            }
            (None, None) => {}
        }
    })
}

/// Builds the controller: registers its handler on the shared pod informer at once (call this
/// before the informers run) and returns the future that runs it once their caches are synced.
pub fn controller(
    client: Client,
    pods: Arc<Informer<Pod>>,
    revisions: Arc<Informer<ControllerRevision>>,
    claims: Arc<Informer<PersistentVolumeClaim>>,
    recorder: &Recorder,
) -> impl std::future::Future<Output = ()> + Send {
    let api: Api<StatefulSet> = Api::all(client.clone());
    let controller = Controller::new(api, watcher::Config::default())
        .with_config(Config::default().concurrency(WORKERS));
    let store = controller.store();
    let (queue, triggers) = unbounded();
    pods.on_change(pod_handler(store, queue));
    let ctx = Arc::new(Context {
        client,
        pods: pods.clone(),
        revisions: revisions.clone(),
        claims: claims.clone(),
        recorder: recorder.for_component(COMPONENT),
        backoffs: Backoffs::default(),
    });
    async move {
        pods.wait_synced().await;
        revisions.wait_synced().await;
        claims.wait_synced().await;
        let controller = controller.reconcile_on(triggers);
        workqueue::run(names::STATEFULSET, controller, reconcile, error_policy, ctx).await;
    }
}

fn error_policy(set: Arc<StatefulSet>, error: &Error, ctx: Arc<Context>) -> Action {
    let delay = ctx.backoffs.next(&set.uid().unwrap_or_default());
    tracing::debug!(name = %set.name_any(), "statefulset sync failed: {error}; retrying in {delay:?}");
    Action::requeue(delay)
}

/// The current and update revisions of one sync.
struct Revisions {
    /// The set's revisions before this sync touched them, oldest first.
    all: Vec<Arc<ControllerRevision>>,
    current: Arc<ControllerRevision>,
    update: Arc<ControllerRevision>,
    collision_count: i32,
}

async fn reconcile(set: Arc<StatefulSet>, ctx: Arc<Context>) -> Result<Action, Error> {
    let uid = set.uid().ok_or(Error::Incomplete)?;
    let namespace = set.namespace().ok_or(Error::Incomplete)?;
    if selector_of(&set).is_empty() {
        // Validation rejects this; a set selecting every pod must not adopt them.
        return Ok(Action::await_change());
    }
    let sync = Sync {
        ctx: &ctx,
        set: &set,
        uid,
        namespace,
        now: jiff::Timestamp::now(),
    };
    let all = sync.adopt_revisions().await?;
    let pods = sync.claim_pods().await?;
    let revisions = sync.revisions(all).await?;
    let result = sync.update(&pods, &revisions).await;
    let truncated = sync.truncate_history(&pods, &revisions).await;
    let action = result?;
    truncated?;
    ctx.backoffs.reset(&sync.uid);
    Ok(action)
}

/// One sync's view of a StatefulSet.
struct Sync<'a> {
    ctx: &'a Context,
    set: &'a StatefulSet,
    uid: String,
    namespace: String,
    now: jiff::Timestamp,
}

impl Sync<'_> {
    fn pod_api(&self) -> Api<Pod> {
        Api::namespaced(self.ctx.client.clone(), &self.namespace)
    }

    fn claim_api(&self) -> Api<PersistentVolumeClaim> {
        Api::namespaced(self.ctx.client.clone(), &self.namespace)
    }

    fn revision_api(&self) -> Api<ControllerRevision> {
        Api::namespaced(self.ctx.client.clone(), &self.namespace)
    }

    fn deleting(&self) -> bool {
        self.set.metadata.deletion_timestamp.is_some()
    }

    /// Upstream `canAdoptFunc`: a live read shows the set still there and not being deleted.
    async fn can_adopt(&self) -> Result<bool, Error> {
        let api: Api<StatefulSet> = Api::namespaced(self.ctx.client.clone(), &self.namespace);
        Ok(controller_ref::can_adopt(&api, self.set).await?)
    }

    /// The set's revisions, oldest first, after adopting matching orphans (upstream
    /// `adoptOrphanRevisions` + `ListRevisions`; revisions are never released).
    async fn adopt_revisions(&self) -> Result<Vec<Arc<ControllerRevision>>, Error> {
        let selector = selector_of(self.set);
        let claim = {
            let cache = self.ctx.revisions.read();
            controller_ref::classify(
                cache.controlled_by(&self.uid),
                cache.orphans_in(&self.namespace),
                &selector,
                self.deleting(),
            )
        };
        let mut owned = claim.owned;
        if !claim.adopt.is_empty() && self.can_adopt().await? {
            let api = self.revision_api();
            for r in claim.adopt {
                if controller_ref::adopt(&api, r.as_ref(), owner_ref(self.set)).await? {
                    owned.push(r);
                }
            }
        }
        history::sort_by_revision(&mut owned);
        Ok(owned)
    }

    /// The set's pods (upstream `getPodsForStatefulSet`): controlled or adoptable, matching the
    /// selector and named `<set>-<ordinal>`; controlled pods that are neither are released.
    async fn claim_pods(&self) -> Result<Vec<Arc<Pod>>, Error> {
        let selector = selector_of(self.set);
        let claim = {
            let cache = self.ctx.pods.read();
            controller_ref::classify(
                cache.controlled_by(&self.uid),
                cache.orphans_in(&self.namespace),
                &selector,
                self.deleting(),
            )
        };
        let api = self.pod_api();
        let member = |p: &Arc<Pod>| identity::is_member_of(self.set, p);
        let (mut owned, strangers): (Vec<_>, Vec<_>) = claim.owned.into_iter().partition(member);
        let mut release = claim.release;
        if !self.deleting() {
            release.extend(strangers);
        }
        for pod in &release {
            controller_ref::release(&api, pod.as_ref(), &self.uid).await?;
        }
        let adopt: Vec<_> = claim.adopt.into_iter().filter(member).collect();
        if !adopt.is_empty() && self.can_adopt().await? {
            for pod in adopt {
                if controller_ref::adopt(&api, pod.as_ref(), owner_ref(self.set)).await? {
                    owned.push(pod);
                }
            }
        }
        Ok(owned)
    }

    /// Upstream `getStatefulSetRevisions`.
    async fn revisions(&self, all: Vec<Arc<ControllerRevision>>) -> Result<Revisions, Error> {
        let mut collision_count = self
            .set
            .status
            .as_ref()
            .and_then(|s| s.collision_count)
            .unwrap_or(0);
        let api = self.revision_api();
        let update = match revision::choose_update(&all, &revision::data(self.set)) {
            UpdateRevision::Latest(latest) => latest,
            UpdateRevision::Renumber(found, next) => Arc::new(renumber(&api, &found, next).await?),
            UpdateRevision::Create(next) => loop {
                let candidate = revision::new_revision(self.set, next, collision_count);
                match history::create(&api, &candidate).await? {
                    Created::Revision(created) => break Arc::new(*created),
                    Created::Collision if collision_count < MAX_COLLISIONS => collision_count += 1,
                    Created::Collision => {
                        return Err(Error::Sync(format!(
                            "no free revision name after {MAX_COLLISIONS} collisions"
                        )))
                    }
                }
            },
        };
        let shown = self
            .set
            .status
            .as_ref()
            .and_then(|s| s.current_revision.as_deref())
            .unwrap_or_default();
        let current = all
            .iter()
            .find(|r| r.metadata.name.as_deref() == Some(shown))
            .cloned()
            .unwrap_or_else(|| update.clone());
        Ok(Revisions {
            all,
            current,
            update,
            collision_count,
        })
    }

    /// Upstream `updateStatefulSet` + `updateStatefulSetStatus`.
    async fn update(&self, pods: &[Arc<Pod>], revisions: &Revisions) -> Result<Action, Error> {
        let own_template = self.set.spec.template.clone();
        let template = |r: &ControllerRevision| -> PodTemplateSpec {
            revision::template_of(r).unwrap_or_else(|| own_template.clone())
        };
        let (current_template, update_template) =
            (template(&revisions.current), template(&revisions.update));
        let current = Revision {
            name: revisions
                .current
                .metadata
                .name
                .as_deref()
                .unwrap_or_default(),
            template: &current_template,
        };
        let update = Revision {
            name: revisions
                .update
                .metadata
                .name
                .as_deref()
                .unwrap_or_default(),
            template: &update_template,
        };
        let layout = control::layout(self.set, pods, &current, &update);
        let mut status = status::Status {
            observed_generation: self.set.metadata.generation.unwrap_or(0),
            current_revision: current.name.to_string(),
            update_revision: update.name.to_string(),
            collision_count: revisions.collision_count,
            ..status::Status::default()
        };
        let min_ready = control::min_ready_seconds(self.set);
        status::count(&mut status, &layout.replicas, min_ready, self.now);
        status::count(&mut status, &layout.condemned, min_ready, self.now);

        // Being deleted: only the status (the garbage collector takes the pods).
        let result = if self.deleting() {
            Ok(())
        } else {
            self.act(&layout, update.name)
                .await
                .map(|deleted_for_update| {
                    if deleted_for_update {
                        status.current -= 1;
                    }
                })
        };
        status::complete_rolling_update(self.set, &mut status);
        let written = self.write_status(&status).await;
        result?;
        written?;
        let replicas = identity::replicas(self.set);
        Ok(if min_ready > 0 && status.available != replicas {
            Action::requeue(Duration::from_secs(min_ready as u64))
        } else {
            Action::await_change()
        })
    }

    /// The walk and the update step; true when a pod was deleted for the update.
    async fn act(&self, layout: &control::Layout, update_revision: &str) -> Result<bool, Error> {
        let plan = {
            let lookup = |name: &str| self.ctx.claims.read().get(&self.namespace, name);
            let input = control::Input {
                set: self.set,
                now: self.now,
                claim: &lookup,
            };
            control::plan(&input, layout)
        };
        let parallel = control::is_parallel(self.set);
        for phase in &plan.phases {
            self.run_phase(phase, parallel).await?;
        }
        if plan.blocked {
            return Ok(false);
        }
        match update::rolling_target(self.set, &layout.replicas, update_revision, self.now) {
            Some(pod) => {
                self.run(&Step::Delete(pod)).await?;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Runs the steps in order (OrderedReady) or in slow-start batches (Parallel); the first
    /// failure ends the phase.
    async fn run_phase(&self, steps: &[Step], parallel: bool) -> Result<(), Error> {
        if !parallel {
            for step in steps {
                self.run(step).await?;
            }
            return Ok(());
        }
        let next = AtomicUsize::new(0);
        let (_, error) = slow_start::run(steps.len(), 1, || {
            let step = &steps[next.fetch_add(1, Ordering::SeqCst)];
            self.run(step)
        })
        .await;
        error.map_or(Ok(()), Err)
    }

    async fn run(&self, step: &Step) -> Result<(), Error> {
        match step {
            Step::Create(pod) => self.create_pod(pod).await,
            Step::Delete(pod) => self.delete_pod(pod).await,
            Step::CreateClaims(pod) => self.create_claims(pod).await,
            Step::Fix(pod, fixed) => self.fix_pod(pod, fixed).await,
            Step::FixClaims(pod) => self.fix_claim_owners(pod).await,
        }
    }

    /// Upstream `recordPodEvent`.
    fn pod_event(&self, verb: &str, pod: &Pod, error: Option<&str>) {
        let name = pod.metadata.name.as_deref().unwrap_or_default();
        let set = self.set.name_any();
        let (ok, failed): (&'static str, &'static str) = match verb {
            "create" => ("SuccessfulCreate", "FailedCreate"),
            "delete" => ("SuccessfulDelete", "FailedDelete"),
            _ => ("SuccessfulUpdate", "FailedUpdate"),
        };
        match error {
            None => self.ctx.recorder.publish(
                self.set,
                NORMAL,
                ok,
                format!("{verb} Pod {name} in StatefulSet {set} successful"),
            ),
            Some(e) => self.ctx.recorder.publish(
                self.set,
                WARNING,
                failed,
                format!("{verb} Pod {name} in StatefulSet {set} failed error: {e}"),
            ),
        }
    }

    /// Upstream `recordClaimEvent`.
    fn claim_event(&self, verb: &str, claim: &str, pod: &Pod, error: Option<&str>) {
        let name = pod.metadata.name.as_deref().unwrap_or_default();
        let set = self.set.name_any();
        let (ok, failed): (&'static str, &'static str) = match verb {
            "create" => ("SuccessfulCreate", "FailedCreate"),
            _ => ("SuccessfulUpdate", "FailedUpdate"),
        };
        match error {
            None => self.ctx.recorder.publish(
                self.set,
                NORMAL,
                ok,
                format!("{verb} Claim {claim} Pod {name} in StatefulSet {set} success"),
            ),
            Some(e) => self.ctx.recorder.publish(
                self.set,
                WARNING,
                failed,
                format!(
                    "{verb} Claim {claim} for Pod {name} in StatefulSet {set} failed error: {e}"
                ),
            ),
        }
    }

    /// Upstream `createPersistentVolumeClaims`: every claim the pod needs that the cache does
    /// not show is created; one being deleted is an error (the pod must wait for it to go).
    async fn create_claims(&self, pod: &Pod) -> Result<(), Error> {
        let api = self.claim_api();
        let mut errors = Vec::new();
        for claim in pvc::claims_for(self.set, pod) {
            let name = claim.name_any();
            match self.ctx.claims.read().get(&self.namespace, &name) {
                Some(existing) if existing.metadata.deletion_timestamp.is_some() => {
                    errors.push(format!("pvc {name} is being deleted"));
                    continue;
                }
                Some(_) => continue,
                None => {}
            }
            match api.create(&PostParams::default(), &claim).await {
                Ok(_) => self.claim_event("create", &name, pod, None),
                Err(kube::Error::Api(e)) if e.code == 409 => {}
                Err(e) => {
                    let message = api_message(&e);
                    self.claim_event("create", &name, pod, Some(&message));
                    errors.push(format!("failed to create PVC {name}: {message}"));
                }
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(Error::Sync(errors.join("; ")))
        }
    }

    /// Upstream `CreateStatefulPod`: claims first, then the pod.
    async fn create_pod(&self, pod: &Pod) -> Result<(), Error> {
        if let Err(e) = self.create_claims(pod).await {
            self.pod_event("create", pod, Some(&e.to_string()));
            return Err(e);
        }
        match self.pod_api().create(&PostParams::default(), pod).await {
            Ok(_) => {
                self.pod_event("create", pod, None);
                Ok(())
            }
            // The cache is behind; the next sync sees the pod.
            Err(kube::Error::Api(e)) if e.code == 409 => Err(Error::Sync(e.message)),
            Err(e) => {
                self.pod_event("create", pod, Some(&api_message(&e)));
                Err(e.into())
            }
        }
    }

    /// Upstream `DeleteStatefulPod` (guarded by the pod's uid; one already gone is fine).
    async fn delete_pod(&self, pod: &Pod) -> Result<(), Error> {
        let params = DeleteParams {
            preconditions: Some(Preconditions {
                uid: pod.uid(),
                resource_version: None,
            }),
            ..DeleteParams::default()
        };
        match self.pod_api().delete(&pod.name_any(), &params).await {
            Ok(_) => {
                self.pod_event("delete", pod, None);
                Ok(())
            }
            Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => Ok(()),
            Err(e) => {
                self.pod_event("delete", pod, Some(&api_message(&e)));
                Err(e.into())
            }
        }
    }

    /// Upstream `UpdateStatefulPod`: the identity labels and claim volumes put right (a merge
    /// patch guarded by the resourceVersion the fix was computed from), missing claims
    /// created, and the claims' owners put right.
    async fn fix_pod(&self, pod: &Pod, fixed: &Pod) -> Result<(), Error> {
        let storage = !identity::storage_matches(self.set, pod);
        if storage {
            if let Err(e) = self.create_claims(fixed).await {
                self.pod_event("update", pod, Some(&e.to_string()));
                return Err(e);
            }
        }
        if fixed.metadata.labels != pod.metadata.labels || storage {
            let mut patch = serde_json::json!({
                "metadata": {
                    "resourceVersion": pod.metadata.resource_version,
                    "labels": fixed.metadata.labels,
                }
            });
            if storage {
                patch["spec"] = serde_json::json!({
                    "volumes": fixed.spec.as_ref().and_then(|s| s.volumes.clone()),
                });
            }
            match self
                .pod_api()
                .patch(
                    &pod.name_any(),
                    &PatchParams::default(),
                    &Patch::Merge(patch),
                )
                .await
            {
                Ok(_) => self.pod_event("update", pod, None),
                Err(kube::Error::Api(e)) if e.code == 404 => return Ok(()),
                Err(e) => {
                    self.pod_event("update", pod, Some(&api_message(&e)));
                    return Err(e.into());
                }
            }
        }
        self.fix_claim_owners(pod).await
    }

    /// Upstream `UpdatePodClaimForRetentionPolicy`: the owners of the pod's claims as the
    /// retention policy says; a claim not in the cache yet is done by a later sync.
    async fn fix_claim_owners(&self, pod: &Pod) -> Result<(), Error> {
        let api = self.claim_api();
        for wanted in pvc::claims_for(self.set, pod) {
            let name = wanted.name_any();
            let Some(claim) = self.ctx.claims.read().get(&self.namespace, &name) else {
                continue;
            };
            if pvc::has_unexpected_controller(&claim, self.set, pod) {
                let message = format!(
                    "PersistentVolumeClaim {name} has a conflicting OwnerReference that acts as a manging controller, the retention policy is ignored for this claim"
                );
                self.claim_event("update", &name, pod, Some(&message));
                continue;
            }
            let mut updated = (*claim).clone();
            if !pvc::update_owners(&mut updated, self.set, pod) {
                continue;
            }
            let patch = serde_json::json!({
                "metadata": {
                    "resourceVersion": claim.metadata.resource_version,
                    "ownerReferences": updated.metadata.owner_references.unwrap_or_default(),
                }
            });
            match api
                .patch(&name, &PatchParams::default(), &Patch::Merge(patch))
                .await
            {
                Ok(_) => {}
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(e) => {
                    return Err(Error::Sync(format!(
                        "could not update claim {name} for delete policy ownerRefs: {}",
                        api_message(&e)
                    )))
                }
            }
        }
        Ok(())
    }

    async fn write_status(&self, status: &status::Status) -> Result<(), Error> {
        let Some(patch) = status::patch(self.set, status) else {
            return Ok(());
        };
        let api: Api<StatefulSet> = Api::namespaced(self.ctx.client.clone(), &self.namespace);
        match api
            .patch_status(
                &self.set.name_any(),
                &PatchParams::default(),
                &Patch::Merge(patch),
            )
            .await
        {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Upstream `truncateHistory`: live are the current and update revisions and every pod's.
    async fn truncate_history(
        &self,
        pods: &[Arc<Pod>],
        revisions: &Revisions,
    ) -> Result<(), Error> {
        let limit = self
            .set
            .spec
            .revision_history_limit
            .unwrap_or(history::DEFAULT_HISTORY_LIMIT);
        let live = [&revisions.current, &revisions.update]
            .into_iter()
            .filter_map(|r| r.metadata.name.as_deref())
            .chain(pods.iter().map(|p| identity::revision(p)));
        let api = self.revision_api();
        for r in revision::to_truncate(&revisions.all, live, limit) {
            history::delete(&api, &r).await?;
        }
        Ok(())
    }
}

/// Gives a revision that came back the number `next` (upstream `UpdateControllerRevision`);
/// the cache may show it as it was before an earlier renumbering, so a conflict re-reads it.
async fn renumber(
    api: &Api<ControllerRevision>,
    revision: &ControllerRevision,
    next: i64,
) -> Result<ControllerRevision, Error> {
    match history::set_revision(api, revision, next).await {
        Ok(updated) => Ok(updated),
        Err(kube::Error::Api(e)) if e.code == 409 => {
            let fresh = api.get(&revision.name_any()).await?;
            if history::number(&fresh) >= next {
                Ok(fresh)
            } else {
                Ok(history::set_revision(api, &fresh, next).await?)
            }
        }
        Err(e) => Err(e.into()),
    }
}
