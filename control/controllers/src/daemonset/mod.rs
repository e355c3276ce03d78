//! The DaemonSet controller (upstream `pkg/controller/daemon`): one pod on every node that
//! should run it.
//!
//! A sync (one DaemonSet at a time — kube-runtime's `Controller` guarantees it):
//! 1. claims its ControllerRevisions and makes sure one holds the current template
//!    (`history.rs`): its `controller-revision-hash` label is the hash new pods get;
//! 2. claims pods (controllerRef and selector, adopting matching orphans) and groups them by
//!    the node they are for (`nodes.rs` `target_node`: bound, or pinned by node affinity);
//! 3. unless expectations are pending (`expectations.rs`), creates a pod on every node that
//!    should run one and lacks it, deletes pods where they may not run, failed pods (with a
//!    backoff per node, `failed.rs`) and extra pods (`manage.rs`); pods are created unbound
//!    with a node affinity naming their node (`pod.rs`), and the scheduler binds them;
//! 4. if nothing was left pending, one step of the update strategy (`rolling.rs`), then old
//!    revisions beyond `revisionHistoryLimit` go;
//! 5. writes the status (`status.rs`) if it changed.
//!
//! Triggers: the DaemonSet itself (kube-runtime's watch), its pods (the shared pod informer: a
//! pod maps to its DaemonSet by controllerRef, an orphan to every DaemonSet whose selector
//! matches it), nodes (the shared node informer: a node added or removed concerns every
//! DaemonSet, a changed node those for which it started or stopped fitting) and its
//! ControllerRevisions.
//!
//! ControllerRevisions come from a shared informer rather than a LIST per sync: a sync needs
//! all of a DaemonSet's revisions (to find the current one and to truncate the old ones) plus
//! the orphans it may adopt, which the informer's indexes by controller uid and by orphans per
//! namespace answer without a request; the StatefulSet controller will share it, as upstream's
//! controllers share the history informer. A revision the cache does not show yet is found by
//! the create's AlreadyExists and a read, as upstream's.

pub mod failed;
pub mod manage;
pub mod nodes;
pub mod pod;
pub mod rolling;
pub mod status;

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::channel::mpsc::{unbounded, UnboundedSender};
use k8s_openapi::api::apps::v1::{ControllerRevision, DaemonSet};
use k8s_openapi::api::core::v1::{Node, Pod, PodSpec};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use kube::runtime::controller::{Action, Config, Controller};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use kube::{Client, Resource, ResourceExt};

use crate::backoff::Backoffs;
use crate::controller_ref::{self, owner_ref};
use crate::deployment::hash;
use crate::events::{Recorder, NORMAL, WARNING};
use crate::expectations::Expectations;
use crate::history::{self, Created};
use crate::informer::{controller_uid, Handler, Informer};
use crate::pods;
use crate::replicaset::{api_message, slow_start};
use crate::selector::Selector;
use crate::workqueue::{self, names};
use nodes::Fit;
use pod::HASH_LABEL;

pub const COMPONENT: &str = "daemonset-controller";
/// Pods created or deleted per sync at most (upstream's `burstReplicas`).
pub const BURST_REPLICAS: usize = 250;
/// Syncs at once (upstream `--concurrent-daemonset-syncs` is 2; see the ReplicaSet controller
/// for why more).
const WORKERS: u16 = 8;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("API request failed: {0}")]
    Kube(#[from] kube::Error),
    #[error("{0}")]
    Sync(String),
    #[error("revision name {0} is taken by another revision; collisionCount raised")]
    Collision(String),
    #[error("the daemon set has no uid or namespace")]
    Incomplete,
}

struct Context {
    client: Client,
    pods: Arc<Informer<Pod>>,
    nodes: Arc<Informer<Node>>,
    revisions: Arc<Informer<ControllerRevision>>,
    expectations: Arc<Expectations>,
    recorder: Recorder,
    backoffs: Backoffs,
    failed: failed::FailedPods,
}

/// The DaemonSet named by the object's controllerRef, as (name, uid).
fn controller_of<K: Resource>(object: &K) -> Option<(String, String)> {
    let r = object
        .meta()
        .owner_references
        .iter()
        .flatten()
        .find(|r| r.controller == Some(true))?;
    (r.kind == "DaemonSet" && r.api_version == "apps/v1").then(|| (r.name.clone(), r.uid.clone()))
}

fn selector_of(ds: &DaemonSet) -> Selector {
    Selector::from_label_selector(&ds.spec.selector)
}

fn template_spec(ds: &DaemonSet) -> Option<&PodSpec> {
    ds.spec.template.spec.as_ref()
}

fn min_ready_seconds(ds: &DaemonSet) -> i32 {
    ds.spec.min_ready_seconds.unwrap_or(0)
}

fn enqueue_to(queue: &UnboundedSender<ObjectRef<DaemonSet>>, namespace: &str, name: &str) {
    let _ = queue.unbounded_send(ObjectRef::new(name).within(namespace));
}

/// Every DaemonSet of the object's namespace whose selector matches its labels.
fn enqueue_matching<K: Resource>(
    store: &Store<DaemonSet>,
    queue: &UnboundedSender<ObjectRef<DaemonSet>>,
    object: &K,
) {
    let namespace = object.meta().namespace.as_deref().unwrap_or_default();
    for ds in store.state() {
        if ds.metadata.namespace.as_deref() == Some(namespace)
            && selector_of(&ds).matches(object.meta().labels.as_ref())
        {
            enqueue_to(queue, namespace, &ds.name_any());
        }
    }
}

/// Pod changes → DaemonSets to sync, and expectations (upstream addPod/updatePod/deletePod).
fn pod_handler(
    store: Store<DaemonSet>,
    expectations: Arc<Expectations>,
    queue: UnboundedSender<ObjectRef<DaemonSet>>,
) -> Handler<Pod> {
    Box::new(move |old, new| {
        let namespace = |pod: &Pod| pod.metadata.namespace.clone().unwrap_or_default();
        let orphan = |pod: &Pod| controller_uid(pod).is_none();
        match (old, new) {
            (None, Some(pod)) => match controller_of(pod.as_ref()) {
                Some((name, uid)) => {
                    if pod.metadata.deletion_timestamp.is_some() {
                        expectations.deletion_observed(&uid, &pod.uid().unwrap_or_default());
                    } else {
                        expectations.creation_observed(&uid);
                    }
                    enqueue_to(&queue, &namespace(pod), &name);
                }
                None if orphan(pod) && pod.metadata.deletion_timestamp.is_none() => {
                    enqueue_matching(&store, &queue, pod.as_ref())
                }
                None => {}
            },
            (Some(old), Some(pod)) => {
                let owner = controller_of(pod.as_ref());
                let old_owner = controller_of(old.as_ref());
                if let Some((name, uid)) = &owner {
                    if pod.metadata.deletion_timestamp.is_some()
                        && old.metadata.deletion_timestamp.is_none()
                    {
                        expectations.deletion_observed(uid, &pod.uid().unwrap_or_default());
                    }
                    enqueue_to(&queue, &namespace(pod), name);
                }
                if let Some((name, _)) = &old_owner {
                    if old_owner != owner {
                        enqueue_to(&queue, &namespace(old), name);
                    }
                }
                if orphan(pod) && (old.metadata.labels != pod.metadata.labels || !orphan(old)) {
                    enqueue_matching(&store, &queue, pod.as_ref());
                }
            }
            (Some(pod), None) => {
                if let Some((name, uid)) = controller_of(pod.as_ref()) {
                    expectations.deletion_observed(&uid, &pod.uid().unwrap_or_default());
                    enqueue_to(&queue, &namespace(pod), &name);
                }
            }
            (None, None) => {}
        }
    })
}

/// Node changes → DaemonSets to sync (upstream addNode/updateNode): a node added or gone
/// concerns every DaemonSet; a changed node those for which it started or stopped fitting (a
/// status heartbeat concerns none).
fn node_handler(
    store: Store<DaemonSet>,
    queue: UnboundedSender<ObjectRef<DaemonSet>>,
) -> Handler<Node> {
    Box::new(move |old, new| {
        for ds in store.state() {
            let changed = match (old, new) {
                (Some(old), Some(new)) => {
                    nodes::fit(template_spec(&ds), old) != nodes::fit(template_spec(&ds), new)
                }
                _ => true,
            };
            if changed {
                enqueue_to(
                    &queue,
                    ds.metadata.namespace.as_deref().unwrap_or_default(),
                    &ds.name_any(),
                );
            }
        }
    })
}

/// ControllerRevision changes → DaemonSets to sync (upstream addHistory/updateHistory/
/// deleteHistory).
fn revision_handler(
    store: Store<DaemonSet>,
    queue: UnboundedSender<ObjectRef<DaemonSet>>,
) -> Handler<ControllerRevision> {
    Box::new(move |old, new| {
        let namespace = |r: &ControllerRevision| r.metadata.namespace.clone().unwrap_or_default();
        if let Some(r) = new.or(old) {
            if let Some((name, _)) = controller_of(r.as_ref()) {
                enqueue_to(&queue, &namespace(r), &name);
            }
        }
        if let (Some(old), Some(new)) = (old, new) {
            if let Some((name, _)) = controller_of(old.as_ref()) {
                if controller_of(new.as_ref()).is_none() {
                    enqueue_to(&queue, &namespace(old), &name);
                }
            }
        }
        if let Some(r) = new {
            if controller_uid(r.as_ref()).is_none() && r.metadata.deletion_timestamp.is_none() {
                enqueue_matching(&store, &queue, r.as_ref());
            }
        }
    })
}

/// Builds the controller: registers its handlers on the shared informers at once (call this
/// before they run) and returns the future that runs it once their caches are synced.
pub fn controller(
    client: Client,
    pods: Arc<Informer<Pod>>,
    nodes: Arc<Informer<Node>>,
    revisions: Arc<Informer<ControllerRevision>>,
    recorder: &Recorder,
) -> impl std::future::Future<Output = ()> + Send {
    let api: Api<DaemonSet> = Api::all(client.clone());
    let controller = Controller::new(api, watcher::Config::default())
        .with_config(Config::default().concurrency(WORKERS));
    let store = controller.store();
    let expectations = Arc::new(Expectations::default());
    let (queue, triggers) = unbounded();
    pods.on_change(pod_handler(
        store.clone(),
        expectations.clone(),
        queue.clone(),
    ));
    nodes.on_change(node_handler(store.clone(), queue.clone()));
    revisions.on_change(revision_handler(store, queue));
    let ctx = Arc::new(Context {
        client,
        pods: pods.clone(),
        nodes: nodes.clone(),
        revisions: revisions.clone(),
        expectations,
        recorder: recorder.for_component(COMPONENT),
        backoffs: Backoffs::default(),
        failed: failed::FailedPods::default(),
    });
    async move {
        pods.wait_synced().await;
        nodes.wait_synced().await;
        revisions.wait_synced().await;
        let controller = controller.reconcile_on(triggers);
        workqueue::run(names::DAEMONSET, controller, reconcile, error_policy, ctx).await;
    }
}

fn error_policy(ds: Arc<DaemonSet>, error: &Error, ctx: Arc<Context>) -> Action {
    let delay = ctx.backoffs.next(&ds.uid().unwrap_or_default());
    tracing::debug!(name = %ds.name_any(), "daemonset sync failed: {error}; retrying in {delay:?}");
    Action::requeue(delay)
}

/// One sync's view of a DaemonSet.
struct Sync<'a> {
    ctx: &'a Context,
    ds: &'a DaemonSet,
    uid: String,
    namespace: String,
    /// The current revision's hash.
    hash: String,
    generation: Option<i64>,
    nodes: Vec<Arc<Node>>,
    /// Claimed pods by the node they are for (terminal pods being deleted left out).
    by_node: BTreeMap<String, Vec<Arc<Pod>>>,
    now: jiff::Timestamp,
    /// When a failed pod's backoff ends, the soonest.
    retry_failed: Option<Duration>,
}

async fn reconcile(ds: Arc<DaemonSet>, ctx: Arc<Context>) -> Result<Action, Error> {
    let uid = ds.uid().ok_or(Error::Incomplete)?;
    let namespace = ds.namespace().ok_or(Error::Incomplete)?;
    if selector_of(&ds).is_empty() {
        ctx.recorder.publish(
            ds.as_ref(),
            WARNING,
            "SelectingAll",
            "This daemon set is selecting all pods. A non-empty selector is required.".into(),
        );
        return Ok(Action::await_change());
    }
    // Being deleted: its revisions may be gone already, so the status cannot be trusted; the
    // garbage collector takes the pods (upstream returns here too).
    if ds.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let (hash, old) = construct_history(&ds, &ctx, &namespace, &uid).await?;
    let by_node = claim_pods(&ds, &ctx, &namespace, &uid).await?;
    let mut sync = Sync {
        ctx: &ctx,
        ds: &ds,
        uid,
        namespace,
        hash,
        generation: pod::template_generation(&ds),
        nodes: ctx.nodes.read().all(),
        by_node,
        now: jiff::Timestamp::now(),
        retry_failed: None,
    };
    if !ctx.expectations.satisfied(&sync.uid) {
        // Only the status; observedGeneration stays, this generation was not acted on.
        sync.write_status(false).await?;
        return Ok(sync.after());
    }
    let result = sync.update(old).await;
    let status = sync.write_status(true).await;
    result?;
    status?;
    ctx.backoffs.reset(&sync.uid);
    Ok(sync.after())
}

/// The DaemonSet's pods after adoption and release, by node (upstream `getNodesToDaemonPods`).
async fn claim_pods(
    ds: &DaemonSet,
    ctx: &Context,
    namespace: &str,
    uid: &str,
) -> Result<BTreeMap<String, Vec<Arc<Pod>>>, Error> {
    let claim = {
        let cache = ctx.pods.read();
        controller_ref::classify(
            cache.controlled_by(uid),
            cache.orphans_in(namespace),
            &selector_of(ds),
            false,
        )
    };
    let pod_api: Api<Pod> = Api::namespaced(ctx.client.clone(), namespace);
    for pod in &claim.release {
        controller_ref::release(&pod_api, pod.as_ref(), uid).await?;
    }
    let mut owned = claim.owned;
    if !claim.adopt.is_empty() {
        let api: Api<DaemonSet> = Api::namespaced(ctx.client.clone(), namespace);
        if controller_ref::can_adopt(&api, ds).await? {
            for pod in claim.adopt {
                if controller_ref::adopt(&pod_api, pod.as_ref(), owner_ref(ds)).await? {
                    owned.push(pod);
                }
            }
        }
    }
    let mut by_node: BTreeMap<String, Vec<Arc<Pod>>> = BTreeMap::new();
    for pod in owned {
        let terminal = matches!(
            pod.status.as_ref().and_then(|s| s.phase.as_deref()),
            Some("Succeeded") | Some("Failed")
        );
        if terminal && pod.metadata.deletion_timestamp.is_some() {
            continue;
        }
        if let Some(node) = nodes::target_node(&pod) {
            by_node.entry(node).or_default().push(pod);
        }
    }
    Ok(by_node)
}

/// The current revision's hash and the old revisions (upstream `constructHistory`): claims
/// revisions, creates the current one if missing, renumbers it if it came back (an undo), and
/// drops duplicates of it.
async fn construct_history(
    ds: &DaemonSet,
    ctx: &Context,
    namespace: &str,
    uid: &str,
) -> Result<(String, Vec<Arc<ControllerRevision>>), Error> {
    let api: Api<ControllerRevision> = Api::namespaced(ctx.client.clone(), namespace);
    let claim = {
        let cache = ctx.revisions.read();
        controller_ref::classify(
            cache.controlled_by(uid),
            cache.orphans_in(namespace),
            &selector_of(ds),
            false,
        )
    };
    for r in &claim.release {
        controller_ref::release(&api, r.as_ref(), uid).await?;
    }
    let mut owned = claim.owned;
    if !claim.adopt.is_empty() {
        let ds_api: Api<DaemonSet> = Api::namespaced(ctx.client.clone(), namespace);
        if controller_ref::can_adopt(&ds_api, ds).await? {
            for r in claim.adopt {
                if controller_ref::adopt(&api, r.as_ref(), owner_ref(ds)).await? {
                    owned.push(r);
                }
            }
        }
    }
    // Revisions of old controllers lack the hash label: upstream labels them with their name.
    for r in owned.iter_mut() {
        let labelled = r
            .metadata
            .labels
            .as_ref()
            .is_some_and(|l| l.contains_key(HASH_LABEL));
        if !labelled {
            *r = Arc::new(history::add_label(&api, r, HASH_LABEL, &r.name_any()).await?);
        }
    }
    let template = ds.spec.template.clone();
    let data = history::template_patch(&template);
    let (current, old) = history::split_current(owned, &data);
    let next = history::max_revision(old.iter().map(|r| r.as_ref())) + 1;
    let current = match history::keep_of_duplicates(&current) {
        None => {
            let collision_count = ds.status.as_ref().and_then(|s| s.collision_count);
            let revision = snapshot(ds, namespace, data, next);
            match history::create(&api, &revision).await? {
                Created::Revision(created) => *created,
                Created::Collision => {
                    bump_collision_count(ds, ctx, namespace, collision_count).await?;
                    return Err(Error::Collision(revision.name_any()));
                }
            }
        }
        Some(keep) => {
            for duplicate in current.iter().filter(|r| r.name_any() != keep.name_any()) {
                relabel_pods(ctx, namespace, uid, &keep).await?;
                history::delete(&api, duplicate).await?;
            }
            if history::number(&keep) < next {
                renumber(&api, &keep, next).await?
            } else {
                (*keep).clone()
            }
        }
    };
    let hash = current
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(HASH_LABEL))
        .cloned()
        .unwrap_or_else(|| hash::compute(&template, None));
    Ok((hash, old))
}

/// The revision holding the DaemonSet's current template (upstream `snapshot`): named
/// `<ds>-<hash>`, the hash over the template and `status.collisionCount`, labelled with the
/// template's labels and the hash, annotated with the DaemonSet's annotations (so
/// `kubernetes.io/change-cause` shows in `kubectl rollout history`).
fn snapshot(
    ds: &DaemonSet,
    namespace: &str,
    data: serde_json::Value,
    revision: i64,
) -> ControllerRevision {
    let template = ds.spec.template.clone();
    let collision_count = ds.status.as_ref().and_then(|s| s.collision_count);
    let hash = hash::compute(&template, collision_count);
    let labels = template.metadata.as_ref().and_then(|m| m.labels.as_ref());
    history::new_revision(
        owner_ref(ds),
        namespace,
        labels,
        ds.metadata.annotations.as_ref(),
        HASH_LABEL,
        &hash,
        data,
        revision,
    )
}

/// Gives the current revision the number `next`. The cache may still show the revision as it
/// was before the previous sync renumbered it: on a conflict a fresh read decides.
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

/// Raises `status.collisionCount` so that the next sync hashes to another name.
async fn bump_collision_count(
    ds: &DaemonSet,
    ctx: &Context,
    namespace: &str,
    current: Option<i32>,
) -> Result<(), Error> {
    let api: Api<DaemonSet> = Api::namespaced(ctx.client.clone(), namespace);
    let patch = serde_json::json!({
        "metadata": {"resourceVersion": ds.metadata.resource_version},
        "status": {"collisionCount": current.unwrap_or(0) + 1},
    });
    api.patch_status(
        &ds.name_any(),
        &PatchParams::default(),
        &Patch::Merge(patch),
    )
    .await?;
    Ok(())
}

/// Before a duplicate revision goes, pods labelled with another hash get the kept one's
/// (upstream `dedupCurHistories`).
async fn relabel_pods(
    ctx: &Context,
    namespace: &str,
    uid: &str,
    keep: &ControllerRevision,
) -> Result<(), Error> {
    let Some(hash) = keep
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(HASH_LABEL))
    else {
        return Ok(());
    };
    let pods = ctx.pods.read().controlled_by(uid);
    let pod_api: Api<Pod> = Api::namespaced(ctx.client.clone(), namespace);
    for pod in pods {
        if pod.metadata.labels.as_ref().and_then(|l| l.get(HASH_LABEL)) == Some(hash) {
            continue;
        }
        let patch = serde_json::json!({"metadata": {"labels": {HASH_LABEL: hash}}});
        match pod_api
            .patch(
                &pod.name_any(),
                &PatchParams::default(),
                &Patch::Merge(patch),
            )
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

impl Sync<'_> {
    fn fit(&self, node: &Node) -> Fit {
        nodes::fit(template_spec(self.ds), node)
    }

    /// Manage, then one rolling-update step, then history cleanup (upstream
    /// `updateDaemonSet`).
    async fn update(&mut self, old: Vec<Arc<ControllerRevision>>) -> Result<(), Error> {
        self.manage().await?;
        if self.ctx.expectations.satisfied(&self.uid) && rolling::is_rolling(self.ds) {
            self.rolling_update().await?;
        }
        self.cleanup_history(old).await
    }

    /// Creates and deletes toward one pod per fitting node (upstream `manage`).
    async fn manage(&mut self) -> Result<(), Error> {
        let input = manage::Input {
            hash: &self.hash,
            surge: rolling::allows_surge(self.ds),
            min_ready_seconds: min_ready_seconds(self.ds),
            now: self.now,
        };
        let mut create_on = Vec::new();
        let mut delete = Vec::new();
        let mut retry: Option<Duration> = None;
        let names: HashSet<String> = self.nodes.iter().map(|n| n.name_any()).collect();
        for node in &self.nodes {
            let name = node.name_any();
            let needs = manage::on_node(self.fit(node), self.by_node.get(&name), &input, |pod| {
                let key = failed::key(&self.uid, &name);
                let now = Instant::now();
                if let Some(wait) = self.ctx.failed.wait(&key, now) {
                    retry = Some(retry.map_or(wait, |r| r.min(wait)));
                    return false;
                }
                self.ctx.failed.next(&key, now);
                self.ctx.recorder.publish(
                    self.ds,
                    WARNING,
                    "FailedDaemonPod",
                    format!(
                        "Found failed daemon pod {}/{} on node {name}, will try to kill it",
                        pod.namespace().unwrap_or_default(),
                        pod.name_any()
                    ),
                );
                true
            });
            if needs.create {
                create_on.push(name);
            }
            delete.extend(needs.delete);
        }
        delete.extend(manage::unscheduled_without_node(&names, &self.by_node));
        self.retry_failed = retry;
        self.sync_nodes(delete, create_on).await
    }

    /// One step of the RollingUpdate strategy.
    async fn rolling_update(&mut self) -> Result<(), Error> {
        let mut by_node = self.by_node.clone();
        let mut desired = 0;
        for node in &self.nodes {
            if self.fit(node).should_run {
                desired += 1;
                by_node.entry(node.name_any()).or_default();
            }
        }
        let (max_surge, max_unavailable) = rolling::budget(self.ds, desired);
        let input = rolling::Input {
            hash: &self.hash,
            generation: self.generation,
            min_ready_seconds: min_ready_seconds(self.ds),
            max_surge,
            max_unavailable,
            desired,
            now: self.now,
        };
        let by_name: BTreeMap<String, &Arc<Node>> =
            self.nodes.iter().map(|n| (n.name_any(), n)).collect();
        let plan = rolling::plan(&by_node, &input, |node| {
            by_name.get(node).is_some_and(|n| self.fit(n).should_run)
        });
        self.sync_nodes(plan.delete, plan.create_on).await
    }

    /// Deletes `delete` and creates a pod on each of `create_on`, at most
    /// [`BURST_REPLICAS`] of each, under expectations (upstream `syncNodes`).
    async fn sync_nodes(
        &self,
        mut delete: Vec<Arc<Pod>>,
        mut create_on: Vec<String>,
    ) -> Result<(), Error> {
        create_on.truncate(BURST_REPLICAS);
        delete.truncate(BURST_REPLICAS);
        if create_on.is_empty() && delete.is_empty() {
            return Ok(());
        }
        let uid = self.uid.as_str();
        let ctx = self.ctx;
        ctx.expectations
            .expect(uid, create_on.len(), delete.iter().filter_map(|p| p.uid()));
        let pod_api: Api<Pod> = Api::namespaced(ctx.client.clone(), &self.namespace);
        let mut errors = Vec::new();

        let template = pod::template(self.ds, self.generation, &self.hash);
        let next = AtomicUsize::new(0);
        let (_, error) = slow_start::run(create_on.len(), 1, || {
            let i = next.fetch_add(1, Ordering::SeqCst);
            let node = create_on[i].clone();
            let pod = pods::from_template(
                &pod::for_node(&template, &node),
                &self.namespace,
                &self.ds.name_any(),
                owner_ref(self.ds),
            );
            let pod_api = &pod_api;
            async move {
                match pod_api.create(&PostParams::default(), &pod).await {
                    Ok(created) => {
                        ctx.recorder.publish(
                            self.ds,
                            NORMAL,
                            "SuccessfulCreate",
                            format!("Created pod: {}", created.name_any()),
                        );
                        Ok(())
                    }
                    Err(e) => {
                        ctx.expectations.creation_observed(uid);
                        ctx.recorder.publish(
                            self.ds,
                            WARNING,
                            "FailedCreate",
                            format!("Error creating: {}", api_message(&e)),
                        );
                        Err(e)
                    }
                }
            }
        })
        .await;
        // Creations never attempted will never be observed.
        for _ in next.load(Ordering::SeqCst)..create_on.len() {
            ctx.expectations.creation_observed(uid);
        }
        if let Some(e) = error {
            errors.push(api_message(&e));
        }

        let results = futures::future::join_all(delete.iter().map(|pod| {
            let pod_api = &pod_api;
            async move {
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
                            self.ds,
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
                            self.ds,
                            WARNING,
                            "FailedDelete",
                            format!("Error deleting: {}", api_message(&e)),
                        );
                        Err(e)
                    }
                }
            }
        }))
        .await;
        errors.extend(
            results
                .iter()
                .filter_map(|r| r.as_ref().err())
                .map(api_message),
        );
        if errors.is_empty() {
            Ok(())
        } else {
            Err(Error::Sync(errors.join("; ")))
        }
    }

    /// Old revisions beyond `revisionHistoryLimit` that no pod runs go (upstream
    /// `cleanupHistory`).
    async fn cleanup_history(&self, old: Vec<Arc<ControllerRevision>>) -> Result<(), Error> {
        let limit = self
            .ds
            .spec
            .revision_history_limit
            .unwrap_or(history::DEFAULT_HISTORY_LIMIT);
        let live: HashSet<&str> = self
            .by_node
            .values()
            .flatten()
            .filter_map(|p| p.metadata.labels.as_ref()?.get(HASH_LABEL))
            .map(String::as_str)
            .collect();
        let doomed = history::to_truncate(old, limit, |r| {
            r.metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(HASH_LABEL))
                .is_some_and(|h| live.contains(h.as_str()))
        });
        let api: Api<ControllerRevision> =
            Api::namespaced(self.ctx.client.clone(), &self.namespace);
        for r in doomed {
            history::delete(&api, &r).await?;
        }
        Ok(())
    }

    async fn write_status(&self, observe_generation: bool) -> Result<(), Error> {
        let input = status::Input {
            hash: &self.hash,
            generation: self.generation,
            min_ready_seconds: min_ready_seconds(self.ds),
            now: self.now,
        };
        let counts = status::calculate(&self.nodes, |n| self.fit(n), &self.by_node, &input);
        let Some(patch) = status::patch(self.ds, &counts, observe_generation) else {
            return Ok(());
        };
        let api: Api<DaemonSet> = Api::namespaced(self.ctx.client.clone(), &self.namespace);
        match api
            .patch_status(
                &self.ds.name_any(),
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

    /// When to look again without an event: a failed pod's backoff ending, or a ready pod
    /// becoming available after minReadySeconds.
    fn after(&self) -> Action {
        let available_in = self
            .by_node
            .values()
            .flatten()
            .filter_map(|p| pods::seconds_until_available(p, min_ready_seconds(self.ds), self.now))
            .min()
            .map(|s| Duration::from_secs(s.max(1) as u64));
        match [self.retry_failed, available_in]
            .into_iter()
            .flatten()
            .min()
        {
            Some(after) => Action::requeue(after.max(Duration::from_secs(1))),
            None => Action::await_change(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::{DaemonSetSpec, DaemonSetStatus};
    use k8s_openapi::api::core::v1::{Container, PodTemplateSpec};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn ds(image: &str, collision_count: Option<i32>) -> DaemonSet {
        DaemonSet {
            metadata: ObjectMeta {
                name: Some("agent".into()),
                uid: Some("uid-agent".into()),
                annotations: Some(
                    [("kubernetes.io/change-cause".to_string(), "v1".to_string())].into(),
                ),
                ..ObjectMeta::default()
            },
            spec: DaemonSetSpec {
                template: PodTemplateSpec {
                    metadata: Some(ObjectMeta {
                        labels: Some([("app".to_string(), "agent".to_string())].into()),
                        ..ObjectMeta::default()
                    }),
                    spec: Some(PodSpec {
                        containers: vec![Container {
                            name: "c".into(),
                            image: Some(image.into()),
                            ..Container::default()
                        }],
                        ..PodSpec::default()
                    }),
                },
                ..DaemonSetSpec::default()
            },
            status: collision_count.map(|c| DaemonSetStatus {
                collision_count: Some(c),
                ..DaemonSetStatus::default()
            }),
        }
    }

    fn revision_of(ds: &DaemonSet) -> ControllerRevision {
        let data = history::template_patch(&ds.spec.template);
        snapshot(ds, "default", data, 1)
    }

    #[test]
    fn revisions_are_named_by_the_template_hash() {
        let r = revision_of(&ds("nginx:1", None));
        let hash = r
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(HASH_LABEL))
            .cloned()
            .expect("hash");
        assert_eq!(r.metadata.name, Some(format!("agent-{hash}")));
        assert_eq!(
            hash,
            hash::compute(&ds("nginx:1", None).spec.template, None)
        );
        assert_eq!(
            r.metadata
                .labels
                .as_ref()
                .and_then(|l| l.get("app"))
                .map(String::as_str),
            Some("agent")
        );
        assert_eq!(
            r.metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get("kubernetes.io/change-cause"))
                .map(String::as_str),
            Some("v1")
        );
        let owner = &r.metadata.owner_references.as_ref().expect("owner")[0];
        assert_eq!(
            (owner.kind.as_str(), owner.uid.as_str(), owner.controller),
            ("DaemonSet", "uid-agent", Some(true))
        );
        // Same template, same name; another template or a collision count, another name.
        assert_eq!(
            revision_of(&ds("nginx:1", None)).metadata.name,
            r.metadata.name
        );
        assert_ne!(
            revision_of(&ds("nginx:2", None)).metadata.name,
            r.metadata.name
        );
        assert_ne!(
            revision_of(&ds("nginx:1", Some(1))).metadata.name,
            r.metadata.name
        );
        assert!(history::matches(
            &r,
            &history::template_patch(&ds("nginx:1", Some(1)).spec.template)
        ));
    }
}
