//! The ResourceQuota controller (upstream `pkg/controller/resourcequota`): keeps every quota's
//! `status.hard` equal to its `spec.hard` and `status.used` equal to what its namespace holds,
//! counted with the API server's own evaluators (`skiff_apiserver::quota`), so the two agree to
//! the unit.
//!
//! The API server's admission charges a new object to its quotas in the object's own
//! transaction; this controller gives back what went away. A quota is recounted when:
//! - it is new or its limits or scopes change (not when only `status.used` moves — admission
//!   does that on every charged write, and a recount each time would list the namespace per
//!   write; the predicate filter below hashes everything but the used amounts);
//! - something it may count is deleted, a pod finishes or passes its deletion grace period or
//!   moves between the Terminating scopes, or a Service or claim changes (upstream's
//!   replenishment, its `DefaultUpdateFilter`);
//! - an object of a kind some quota counts by `count/<resource>.<group>` is deleted (a watch
//!   per such kind, started the first time a quota names it);
//! - every `--resource-quota-sync-period` (upstream's 5 minutes).
//!
//! A recount reads the objects with a consistent list and writes the status with the quota's
//! resourceVersion: a charge admitted in between changes that version, so the write fails and
//! the recount runs again rather than overwrite a charge it did not see.

use std::collections::{BTreeSet, HashMap};
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinSet;

use futures::channel::mpsc::{unbounded, UnboundedSender};
use futures::StreamExt;
use k8s_openapi::api::core::v1::{
    ConfigMap, PersistentVolumeClaim, Pod, ReplicationController, ResourceQuota, Secret, Service,
};
use kube::api::{Api, ApiResource, DynamicObject, ListParams, PartialObjectMeta, PostParams};
use kube::runtime::controller::{Action, Config, Controller};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::watcher::{self, Event};
use kube::runtime::{PredicateConfig, WatchStreamExt};
use kube::{Client, Resource, ResourceExt};
use parking_lot::Mutex;
use serde_json::Value;
use skiff_apiserver::quota::{self, Evaluator, Quota, ResourceList};

use crate::backoff::Backoffs;
use crate::informer::Informer;
use crate::workqueue::{self, names};

/// Upstream `--resource-quota-sync-period`'s default.
pub const DEFAULT_SYNC_PERIOD: Duration = Duration::from_secs(300);

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("API request failed: {0}")]
    Kube(#[from] kube::Error),
    #[error("the quota has no namespace")]
    NoNamespace,
    #[error("{0}")]
    Json(#[from] serde_json::Error),
}

struct Context {
    client: Client,
    /// `(group, resource)` → how to list it, found by discovery and kept.
    kinds: Mutex<HashMap<(String, String), ApiResource>>,
    sync_period: Duration,
    backoffs: Backoffs,
    store: Store<ResourceQuota>,
    queue: UnboundedSender<ObjectRef<ResourceQuota>>,
    /// The watches of kinds some quota counts (`count/<resource>.<group>`) beyond the ones
    /// [`controller`] always watches; dropped (aborted) with the controller.
    monitors: Mutex<Monitors>,
}

/// The `(group, resource)`s watched beyond [`ALWAYS_WATCHED`], and their watches.
type Monitors = (BTreeSet<(String, String)>, JoinSet<()>);

/// The kinds [`controller`] watches from the start.
const ALWAYS_WATCHED: [&str; 7] = [
    "pods",
    "services",
    "persistentvolumeclaims",
    "configmaps",
    "secrets",
    "replicationcontrollers",
    "resourcequotas",
];

/// What makes a recount necessary: everything of the quota but its used amounts (their names
/// count: a used entry missing for a limit means the status is incomplete).
fn needs_recount(quota: &ResourceQuota) -> Option<u64> {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    serde_json::to_string(&quota.spec).ok()?.hash(&mut h);
    let status = quota.status.as_ref();
    serde_json::to_string(&status.and_then(|s| s.hard.as_ref()))
        .ok()?
        .hash(&mut h);
    let used_names: BTreeSet<&String> = status
        .and_then(|s| s.used.as_ref())
        .map(|u| u.keys().collect())
        .unwrap_or_default();
    used_names.hash(&mut h);
    quota.metadata.uid.hash(&mut h);
    Some(h.finish())
}

/// Every quota in `namespace`, to recount.
fn enqueue_namespace(
    store: &Store<ResourceQuota>,
    queue: &UnboundedSender<ObjectRef<ResourceQuota>>,
    namespace: &str,
) {
    for q in store.state() {
        if q.metadata.namespace.as_deref() == Some(namespace) {
            let _ = queue.unbounded_send(ObjectRef::from_obj(q.as_ref()));
        }
    }
}

/// Upstream's pod update filter: a change that gives back quota.
fn pod_releases_quota(old: &Pod, new: &Pod) -> bool {
    let (Ok(old), Ok(new)) = (serde_json::to_value(old), serde_json::to_value(new)) else {
        return false;
    };
    let now = jiff::Timestamp::now();
    let charged = |p: &Value| Evaluator::Pods.usage(p, now).contains_key("pods");
    quota::pods::is_terminating(&old) != quota::pods::is_terminating(&new)
        || (charged(&old) && !charged(&new))
}

fn pod_handler(
    store: Store<ResourceQuota>,
    queue: UnboundedSender<ObjectRef<ResourceQuota>>,
) -> crate::informer::Handler<Pod> {
    Box::new(move |old, new| {
        let Some(pod) = old.or(new) else { return };
        let namespace = pod.metadata.namespace.as_deref().unwrap_or_default();
        // Most namespaces have no quota: nothing to look at.
        if !store
            .state()
            .iter()
            .any(|q| q.metadata.namespace.as_deref() == Some(namespace))
        {
            return;
        }
        let releases = match (old, new) {
            (Some(_), None) => true,
            // (A pod stuck terminating past its grace period stops counting without an
            // event; the periodic recount finds it, as upstream's does.)
            (Some(old), Some(new)) => pod_releases_quota(old, new),
            _ => false,
        };
        if releases {
            enqueue_namespace(&store, &queue, namespace);
        }
    })
}

/// Recounts a namespace's quotas when an object of kind `K` there is deleted (and, with
/// `on_change`, when one changes: Services and claims, whose usage can shrink in place).
async fn replenish<K>(
    client: Client,
    store: Store<ResourceQuota>,
    queue: UnboundedSender<ObjectRef<ResourceQuota>>,
    on_change: bool,
) where
    K: Resource<DynamicType = ()> + Clone + std::fmt::Debug + serde::de::DeserializeOwned,
    K: Send + Sync + 'static,
{
    let events =
        watcher::watcher(Api::<K>::all(client), watcher::Config::default()).default_backoff();
    futures::pin_mut!(events);
    while let Some(event) = events.next().await {
        let object = match event {
            Ok(Event::Delete(o)) => o,
            Ok(Event::Apply(o)) if on_change => o,
            _ => continue,
        };
        if let Some(namespace) = object.meta().namespace.as_deref() {
            enqueue_namespace(&store, &queue, namespace);
        }
    }
}

/// Recounts a namespace's quotas when an object of `ar`'s kind there is deleted: the
/// replenishment of a kind a quota counts by `count/<resource>.<group>` (upstream's quota
/// monitor, which watches every quotable kind discovery finds; here the kinds quotas name).
async fn replenish_dynamic(
    client: Client,
    ar: ApiResource,
    store: Store<ResourceQuota>,
    queue: UnboundedSender<ObjectRef<ResourceQuota>>,
) {
    let api: Api<PartialObjectMeta<DynamicObject>> = Api::all_with(client, &ar);
    let events = watcher::watcher(api, watcher::Config::default()).default_backoff();
    futures::pin_mut!(events);
    while let Some(event) = events.next().await {
        if let Ok(Event::Delete(object)) = event {
            if let Some(namespace) = object.metadata.namespace.as_deref() {
                enqueue_namespace(&store, &queue, namespace);
            }
        }
    }
}

impl Context {
    /// Starts watching `(group, resource)` for deletions unless it is already watched.
    fn monitor(&self, group: &str, resource: &str, ar: &ApiResource) {
        if group.is_empty() && ALWAYS_WATCHED.contains(&resource) {
            return;
        }
        let mut monitors = self.monitors.lock();
        if !monitors.0.insert((group.to_string(), resource.to_string())) {
            return;
        }
        tracing::debug!(group, resource, "resourcequota: watching for replenishment");
        monitors.1.spawn(replenish_dynamic(
            self.client.clone(),
            ar.clone(),
            self.store.clone(),
            self.queue.clone(),
        ));
    }
}

/// Builds the ResourceQuota controller: registers its pod handler on `pods` at once (call
/// before the informer runs) and returns the future that runs it once the pod cache is synced.
pub fn controller(
    client: Client,
    pods: Arc<Informer<Pod>>,
    sync_period: Duration,
) -> impl std::future::Future<Output = ()> + Send {
    let (queue, triggers) = unbounded();
    let (reader, writer) = reflector::store();
    let quotas = watcher::watcher(
        Api::<ResourceQuota>::all(client.clone()),
        watcher::Config::default(),
    )
    .default_backoff()
    .reflect(writer)
    .applied_objects()
    .predicate_filter(needs_recount, PredicateConfig::default());
    // A burst of deletions in a namespace is one recount (upstream batches through its queue).
    let controller = Controller::for_stream(quotas, reader.clone())
        .with_config(Config::default().debounce(Duration::from_millis(500)));
    pods.on_change(pod_handler(reader.clone(), queue.clone()));
    let ctx = Arc::new(Context {
        client: client.clone(),
        kinds: Mutex::new(HashMap::new()),
        sync_period,
        backoffs: Backoffs::default(),
        store: reader.clone(),
        queue: queue.clone(),
        monitors: Mutex::default(),
    });
    async move {
        pods.wait_synced().await;
        let controller = controller.reconcile_on(triggers);
        let run = workqueue::run(
            names::RESOURCEQUOTA,
            controller,
            reconcile,
            error_policy,
            ctx,
        );
        let (c, r, q) = (client, reader, queue);
        tokio::select! {
            _ = run => {}
            _ = replenish::<Service>(c.clone(), r.clone(), q.clone(), true) => {}
            _ = replenish::<PersistentVolumeClaim>(c.clone(), r.clone(), q.clone(), true) => {}
            _ = replenish::<ConfigMap>(c.clone(), r.clone(), q.clone(), false) => {}
            _ = replenish::<Secret>(c.clone(), r.clone(), q.clone(), false) => {}
            _ = replenish::<ReplicationController>(c.clone(), r.clone(), q.clone(), false) => {}
            _ = replenish::<ResourceQuota>(c, r, q, false) => {}
        }
    }
}

fn error_policy(quota: Arc<ResourceQuota>, error: &Error, ctx: Arc<Context>) -> Action {
    let delay = ctx.backoffs.next(&quota.uid().unwrap_or_default());
    tracing::debug!(name = %quota.name_any(), "resourcequota sync failed: {error}; retrying in {delay:?}");
    Action::requeue(delay)
}

impl Context {
    /// How to list `(group, resource)`: the kinds recounted most are known; others are found
    /// by discovery once. None for a resource the server does not serve.
    async fn kind(&self, group: &str, resource: &str) -> Result<Option<ApiResource>, Error> {
        let key = (group.to_string(), resource.to_string());
        if let Some(ar) = self.kinds.lock().get(&key) {
            return Ok(Some(ar.clone()));
        }
        let found = match kube::discovery::oneshot::group(&self.client, group).await {
            Ok(g) => g
                .recommended_resources()
                .into_iter()
                .map(|(ar, _)| ar)
                .find(|ar| ar.plural == resource),
            Err(kube::Error::Discovery(_)) => None,
            Err(e) => return Err(e.into()),
        };
        if let Some(ar) = &found {
            self.kinds.lock().insert(key, ar.clone());
        }
        Ok(found)
    }
}

/// Upstream `syncResourceQuota`: status.hard from the spec, status.used recounted for every
/// limited name an evaluator counts (others keep what they had).
async fn reconcile(rq: Arc<ResourceQuota>, ctx: Arc<Context>) -> Result<Action, Error> {
    let namespace = rq.namespace().ok_or(Error::NoNamespace)?;
    let stored = serde_json::to_value(rq.as_ref())?;
    let mut quota = Quota::from_json(&stored);
    // Count against the limits the spec sets now.
    quota.hard = quota.spec_hard.clone();
    let hard_names = quota.hard_names();
    let kinds: BTreeSet<(String, String)> = hard_names
        .iter()
        .filter_map(|n| quota::counted_by(n))
        .collect();
    let now = jiff::Timestamp::now();
    let mut used: ResourceList = quota.used.clone();
    for (group, resource) in kinds {
        let Some(ar) = ctx.kind(&group, &resource).await? else {
            continue;
        };
        ctx.monitor(&group, &resource, &ar);
        let api: Api<DynamicObject> = Api::namespaced_with(ctx.client.clone(), &namespace, &ar);
        let objects: Vec<Value> = api
            .list(&ListParams::default())
            .await?
            .items
            .iter()
            .map(serde_json::to_value)
            .collect::<Result<_, _>>()?;
        let evaluator = Evaluator::for_resource(&group, &resource);
        let counted = quota::usage_of(&quota, &evaluator, &objects, now);
        used.extend(counted);
    }
    let used = quota::mask(&used, &hard_names);
    let current_hard = quota::parse_list(stored.pointer("/status/hard"));
    let complete = stored.pointer("/status/hard").is_some() && quota.has_used;
    if complete && current_hard == quota.hard && quota.used == used {
        ctx.backoffs.reset(&rq.uid().unwrap_or_default());
        return Ok(Action::requeue(ctx.sync_period));
    }
    let mut updated = stored.clone();
    updated["status"] = serde_json::json!({
        "hard": quota::to_json(&quota.hard),
        "used": quota::to_json(&used),
    });
    let updated: ResourceQuota = serde_json::from_value(updated)?;
    let api: Api<ResourceQuota> = Api::namespaced(ctx.client.clone(), &namespace);
    api.replace_status(&rq.name_any(), &PostParams::default(), &updated)
        .await?;
    ctx.backoffs.reset(&rq.uid().unwrap_or_default());
    Ok(Action::requeue(ctx.sync_period))
}
