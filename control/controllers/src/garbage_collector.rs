//! The garbage collector (upstream pkg/controller/garbagecollector): deletes objects whose
//! owners are gone and carries out the two deletion modes the API server only marks.
//!
//! - **Background** (the default): an owner is deleted at once; every object listing it in
//!   `ownerReferences` whose owners are then all absent is deleted by this controller.
//! - **Foreground**: the API server marks the owner with the `foregroundDeletion` finalizer;
//!   we delete its dependents (in foreground themselves when they block owner deletion) and
//!   remove the finalizer once no dependent with `blockOwnerDeletion: true` is left, which
//!   lets the API server delete the owner.
//! - **Orphan**: the owner carries the `orphan` finalizer; we remove the owner's entry from
//!   every dependent's `ownerReferences`, then the finalizer.
//!
//! How: one metadata-only watcher per resource that supports list, watch and delete (from
//! discovery, re-run every minute so new resources are covered) feeds a graph of
//! uid → (owners, dependents). Graph changes queue the objects they affect; a single worker
//! processes the queue. The queue is kube-runtime's `scheduler`, which holds each uid once however
//! often it is queued; an object whose processing fails is queued again after a per-object
//! exponential backoff (kube-runtime's `DefaultBackoff`, reset when it succeeds). An owner missing from the graph is confirmed absent with a live GET
//! before anything is deleted, because the watchers start independently and a dependent can be
//! seen before its owner.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use futures::channel::mpsc::{unbounded, UnboundedSender};
use futures::StreamExt;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{
    Api, DeleteParams, DynamicObject, Patch, PatchParams, PostParams, Preconditions,
    PropagationPolicy,
};
use kube::core::PartialObjectMeta;
use kube::discovery::{verbs, ApiResource, Scope};
use kube::runtime::scheduler::{scheduler, ScheduleRequest};
use kube::runtime::watcher::{self, DefaultBackoff, Event};
use kube::runtime::WatchStreamExt;
use kube::Client;
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::workqueue::{names, Workqueues};

const FOREGROUND: &str = "foregroundDeletion";
const ORPHAN: &str = "orphan";
const DISCOVERY_EVERY: Duration = Duration::from_secs(60);
/// Retry delay should the backoff run out (`DefaultBackoff` never does: it stays at 30 s).
const MAX_RETRY_AFTER: Duration = Duration::from_secs(30);

/// A resource the collector watches.
#[derive(Clone)]
struct Resource {
    api: ApiResource,
    namespaced: bool,
}

/// What the collector knows of one object.
#[derive(Clone, Debug)]
struct Node {
    resource: usize,
    namespace: Option<String>,
    name: String,
    owners: Vec<OwnerReference>,
    deleting: bool,
    finalizers: Vec<String>,
}

#[derive(Default)]
struct Graph {
    nodes: HashMap<String, Node>,
    /// owner uid → uids of objects listing it in ownerReferences.
    dependents: HashMap<String, HashSet<String>>,
}

impl Graph {
    /// Inserts or replaces a node; returns the uids whose decisions may have changed.
    fn upsert(&mut self, uid: String, node: Node) -> Vec<String> {
        let mut affected = vec![uid.clone()];
        if let Some(old) = self.nodes.remove(&uid) {
            self.unlink(&uid, &old);
            affected.extend(old.owners.into_iter().map(|o| o.uid));
        }
        for owner in &node.owners {
            self.dependents
                .entry(owner.uid.clone())
                .or_default()
                .insert(uid.clone());
            affected.push(owner.uid.clone());
        }
        if node.deleting {
            affected.extend(self.dependents_of(&uid));
        }
        self.nodes.insert(uid, node);
        affected
    }

    /// Removes a node; returns its dependents (their owner is gone) and owners (a foreground
    /// owner may be waiting for it).
    fn remove(&mut self, uid: &str) -> Vec<String> {
        let Some(old) = self.nodes.remove(uid) else {
            return Vec::new();
        };
        self.unlink(uid, &old);
        let mut affected = self.dependents_of(uid);
        affected.extend(old.owners.into_iter().map(|o| o.uid));
        affected
    }

    fn unlink(&mut self, uid: &str, node: &Node) {
        for owner in &node.owners {
            if let Some(set) = self.dependents.get_mut(&owner.uid) {
                set.remove(uid);
                if set.is_empty() {
                    self.dependents.remove(&owner.uid);
                }
            }
        }
    }

    fn dependents_of(&self, uid: &str) -> Vec<String> {
        self.dependents
            .get(uid)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default()
    }
}

/// A watcher event for resource `resource`.
struct Update {
    resource: usize,
    event: Event<PartialObjectMeta<DynamicObject>>,
}

struct Collector {
    client: Client,
    resources: Vec<Resource>,
    graph: Graph,
    /// uids seen during a watcher's (re)list, per resource; stale nodes go at InitDone.
    relisting: HashMap<usize, HashSet<String>>,
    /// Requests to the work queue (the scheduler in `run`).
    queue: UnboundedSender<ScheduleRequest<String>>,
    /// Retry delays of the uids whose last processing failed.
    backoffs: HashMap<String, DefaultBackoff>,
}

/// Runs the collector until the API server connection is lost for good.
pub async fn run(client: Client) {
    let (updates_tx, mut updates) = mpsc::channel::<Update>(1024);
    let (queue_tx, queue_rx) = unbounded();
    // Emits each uid when its time comes, once however often it was requested before that.
    let mut queue = std::pin::pin!(scheduler(queue_rx));
    let mut collector = Collector {
        client: client.clone(),
        resources: Vec::new(),
        graph: Graph::default(),
        relisting: HashMap::new(),
        queue: queue_tx,
        backoffs: HashMap::new(),
    };
    let mut discovery_tick = tokio::time::interval(DISCOVERY_EVERY);
    // Upstream's queues: graph changes (the watch events) and attempts to delete (the uids).
    let graph_changes = Workqueues::global().queue(names::GARBAGE_COLLECTOR_GRAPH_CHANGES);
    let attempts = Workqueues::global().queue(names::GARBAGE_COLLECTOR_ATTEMPT_TO_DELETE);
    loop {
        tokio::select! {
            biased;
            Some(update) = updates.recv() => {
                let started = graph_changes.started();
                collector.apply(update);
                graph_changes.done(started);
            }
            _ = discovery_tick.tick() => {
                if let Err(e) = collector.watch_new_resources(&updates_tx).await {
                    tracing::warn!("garbage collector discovery: {e}");
                }
            }
            Some(uid) = queue.next() => {
                let started = attempts.started();
                let processed = collector.process(&uid).await;
                attempts.done(started);
                match processed {
                    Ok(()) => {
                        collector.backoffs.remove(&uid);
                    }
                    Err(e) => {
                        let delay = collector
                            .backoffs
                            .entry(uid.clone())
                            .or_default()
                            .next()
                            .unwrap_or(MAX_RETRY_AFTER);
                        tracing::debug!(%uid, "garbage collector: {e}; retrying in {delay:?}");
                        attempts.retried();
                        collector.schedule(uid, Instant::now() + delay);
                    }
                }
            }
        }
    }
}

fn has(list: &[String], item: &str) -> bool {
    list.iter().any(|f| f == item)
}

impl Collector {
    /// Starts a metadata watcher for every deletable, watchable resource not yet watched.
    async fn watch_new_resources(&mut self, updates: &mpsc::Sender<Update>) -> kube::Result<()> {
        // Groups that do not answer (an aggregated API whose backend is down) are skipped
        // until a later pass, as upstream's `GetDeletableResources` does.
        let resources = crate::discovery::preferred_resources(&self.client).await?;
        if let Some(failure) = resources.failure() {
            tracing::warn!("garbage collector discovery: {failure}");
        }
        for (ar, caps) in resources.found {
            let wanted = [verbs::LIST, verbs::WATCH, verbs::DELETE]
                .iter()
                .all(|v| caps.supports_operation(v));
            let known = self
                .resources
                .iter()
                .any(|r| r.api.group == ar.group && r.api.plural == ar.plural);
            if !wanted || known {
                continue;
            }
            let resource = self.resources.len();
            self.resources.push(Resource {
                api: ar.clone(),
                namespaced: caps.scope == Scope::Namespaced,
            });
            // Metadata-only list and watch (PartialObjectMetadata).
            let api: Api<PartialObjectMeta<DynamicObject>> =
                Api::all_with(self.client.clone(), &ar);
            let updates = updates.clone();
            tokio::spawn(async move {
                let mut events =
                    Box::pin(watcher::watcher(api, watcher::Config::default()).default_backoff());
                while let Some(event) = events.next().await {
                    match event {
                        Ok(event) => {
                            if updates.send(Update { resource, event }).await.is_err() {
                                return;
                            }
                        }
                        Err(e) => tracing::debug!(resource = %ar.plural, "watch: {e}"),
                    }
                }
            });
        }
        Ok(())
    }

    /// Queues `uid` to be processed at `run_at`, or earlier if it is already queued for then.
    fn schedule(&self, uid: String, run_at: Instant) {
        // The receiver lives as long as `run`, which owns the collector.
        let _ = self.queue.unbounded_send(ScheduleRequest {
            message: uid,
            run_at,
        });
    }

    fn enqueue(&mut self, uid: String) {
        self.schedule(uid, Instant::now());
    }

    fn enqueue_all(&mut self, uids: Vec<String>) {
        for uid in uids {
            self.enqueue(uid);
        }
    }

    fn apply(&mut self, update: Update) {
        let resource = update.resource;
        match update.event {
            Event::Apply(object) => {
                if let Some((uid, node)) = node_of(resource, object) {
                    let affected = self.graph.upsert(uid, node);
                    self.enqueue_all(affected);
                }
            }
            Event::Delete(object) => {
                if let Some(uid) = object.metadata.uid {
                    let affected = self.graph.remove(&uid);
                    self.enqueue_all(affected);
                }
            }
            Event::Init => {
                self.relisting.insert(resource, HashSet::new());
            }
            Event::InitApply(object) => {
                if let Some((uid, node)) = node_of(resource, object) {
                    self.relisting
                        .entry(resource)
                        .or_default()
                        .insert(uid.clone());
                    let affected = self.graph.upsert(uid, node);
                    self.enqueue_all(affected);
                }
            }
            Event::InitDone => {
                let seen = self.relisting.remove(&resource).unwrap_or_default();
                let stale: Vec<String> = self
                    .graph
                    .nodes
                    .iter()
                    .filter(|(uid, n)| n.resource == resource && !seen.contains(*uid))
                    .map(|(uid, _)| uid.clone())
                    .collect();
                for uid in stale {
                    let affected = self.graph.remove(&uid);
                    self.enqueue_all(affected);
                }
            }
        }
    }

    fn api(&self, node: &Node) -> Api<DynamicObject> {
        let resource = &self.resources[node.resource];
        match &node.namespace {
            Some(ns) if resource.namespaced => {
                Api::namespaced_with(self.client.clone(), ns, &resource.api)
            }
            _ => Api::all_with(self.client.clone(), &resource.api),
        }
    }

    async fn process(&mut self, uid: &str) -> kube::Result<()> {
        let Some(node) = self.graph.nodes.get(uid).cloned() else {
            return Ok(());
        };
        if node.deleting && has(&node.finalizers, ORPHAN) {
            return self.orphan_dependents(uid, &node).await;
        }
        if node.deleting && has(&node.finalizers, FOREGROUND) {
            return self.delete_dependents(uid, &node).await;
        }
        if node.owners.is_empty() || node.deleting {
            return Ok(());
        }
        let mut solid = false;
        let mut waiting_for_dependents = false;
        let mut dangling = Vec::new();
        for owner in &node.owners {
            match self.graph.nodes.get(&owner.uid) {
                Some(o) if o.deleting && has(&o.finalizers, FOREGROUND) => {
                    waiting_for_dependents = true
                }
                Some(_) => solid = true,
                None => {
                    if self.owner_absent(&node, owner).await? {
                        dangling.push(owner.uid.clone());
                    } else {
                        solid = true;
                    }
                }
            }
        }
        if !solid {
            // Foreground when an owner waits for us, so our own dependents go first too.
            let policy = if waiting_for_dependents {
                PropagationPolicy::Foreground
            } else {
                PropagationPolicy::Background
            };
            if waiting_for_dependents && self.in_deletion_circle(uid) {
                self.unblock_owners(&node, uid).await?;
            }
            tracing::info!(object = %node.name, %uid, "deleting: its owners are gone");
            return self.delete(&node, uid, policy).await;
        }
        if !dangling.is_empty() {
            // Some owners live on: only the references to the gone ones are dropped.
            let patch = remove_owner_refs_patch(uid, &dangling);
            return ignore_not_found(
                self.api(&node)
                    .patch(
                        &node.name,
                        &PatchParams::default(),
                        &Patch::Strategic(patch),
                    )
                    .await,
            );
        }
        Ok(())
    }

    /// True when the owner does not exist (or exists under another uid), checked live.
    async fn owner_absent(&self, dependent: &Node, owner: &OwnerReference) -> kube::Result<bool> {
        let (group, version) = match owner.api_version.split_once('/') {
            Some((g, v)) => (g, v),
            None => ("", owner.api_version.as_str()),
        };
        let Some(resource) = self
            .resources
            .iter()
            .find(|r| r.api.group == group && r.api.version == version && r.api.kind == owner.kind)
        else {
            // A kind we cannot look up: never delete on a guess.
            return Ok(false);
        };
        let api: Api<DynamicObject> = match &dependent.namespace {
            Some(ns) if resource.namespaced => {
                Api::namespaced_with(self.client.clone(), ns, &resource.api)
            }
            _ if resource.namespaced => return Ok(true), // a cluster object cannot have a namespaced owner
            _ => Api::all_with(self.client.clone(), &resource.api),
        };
        match api.get_metadata_opt(&owner.name).await? {
            Some(found) => Ok(found.metadata.uid.as_deref() != Some(owner.uid.as_str())),
            None => Ok(true),
        }
    }

    async fn delete(&self, node: &Node, uid: &str, policy: PropagationPolicy) -> kube::Result<()> {
        let params = DeleteParams {
            propagation_policy: Some(policy),
            preconditions: Some(Preconditions {
                uid: Some(uid.to_string()),
                resource_version: None,
            }),
            ..DeleteParams::default()
        };
        ignore_not_found(self.api(node).delete(&node.name, &params).await.map(|_| ()))
    }

    async fn orphan_dependents(&self, uid: &str, owner: &Node) -> kube::Result<()> {
        for dependent_uid in self.graph.dependents_of(uid) {
            let Some(dependent) = self.graph.nodes.get(&dependent_uid) else {
                continue;
            };
            let patch = remove_owner_refs_patch(&dependent_uid, &[uid.to_string()]);
            ignore_not_found(
                self.api(dependent)
                    .patch(
                        &dependent.name,
                        &PatchParams::default(),
                        &Patch::Strategic(patch),
                    )
                    .await,
            )?;
        }
        tracing::info!(object = %owner.name, %uid, "dependents orphaned");
        self.remove_finalizer(owner, ORPHAN).await
    }

    async fn delete_dependents(&self, uid: &str, owner: &Node) -> kube::Result<()> {
        let mut blocking = 0;
        for dependent_uid in self.graph.dependents_of(uid) {
            let Some(dependent) = self.graph.nodes.get(&dependent_uid) else {
                continue;
            };
            let blocks = dependent
                .owners
                .iter()
                .any(|o| o.uid == uid && o.block_owner_deletion == Some(true));
            let mut blocks = blocks;
            if !dependent.deleting {
                if blocks && self.in_deletion_circle(&dependent_uid) {
                    self.unblock_owners(dependent, &dependent_uid).await?;
                    blocks = false;
                }
                let policy = if blocks || !self.graph.dependents_of(&dependent_uid).is_empty() {
                    PropagationPolicy::Foreground
                } else {
                    PropagationPolicy::Background
                };
                self.delete(dependent, &dependent_uid, policy).await?;
            }
            if blocks {
                blocking += 1;
            }
        }
        if blocking > 0 {
            // Their DELETED events bring this owner back into the queue.
            return Ok(());
        }
        tracing::info!(object = %owner.name, %uid, "dependents deleted; finishing foreground deletion");
        self.remove_finalizer(owner, FOREGROUND).await
    }

    /// One of the object's own dependents waits for its dependents too: a circle of foreground
    /// deletions would wait forever. As upstream, the object stops blocking its owners (and is
    /// then deleted in foreground).
    async fn unblock_owners(&self, node: &Node, uid: &str) -> kube::Result<()> {
        tracing::info!(object = %node.name, %uid, "unblocking owner references to break a deletion circle");
        let patch = unblock_owner_refs_patch(uid, &node.owners);
        ignore_not_found(
            self.api(node)
                .patch(
                    &node.name,
                    &PatchParams::default(),
                    &Patch::Strategic(patch),
                )
                .await,
        )
    }

    /// Whether a dependent of `uid` is itself being deleted in foreground (upstream's circle
    /// detection: it has false positives, which only cost blocking).
    fn in_deletion_circle(&self, uid: &str) -> bool {
        self.graph.dependents_of(uid).iter().any(|d| {
            self.graph
                .nodes
                .get(d)
                .is_some_and(|n| n.deleting && has(&n.finalizers, FOREGROUND))
        })
    }

    /// Removes one finalizer with a read-modify-write (a conflict is retried by the caller).
    async fn remove_finalizer(&self, node: &Node, finalizer: &str) -> kube::Result<()> {
        let api = self.api(node);
        let Some(mut object) = api.get_opt(&node.name).await? else {
            return Ok(());
        };
        let finalizers = object.metadata.finalizers.get_or_insert_with(Vec::new);
        if !has(finalizers, finalizer) {
            return Ok(());
        }
        finalizers.retain(|f| f != finalizer);
        ignore_not_found(
            api.replace(&node.name, &PostParams::default(), &object)
                .await
                .map(|_| ()),
        )
    }
}

/// A strategic merge patch setting `blockOwnerDeletion: false` on every blocking owner
/// reference (upstream `unblockOwnerReferencesStrategicMergePatch`), guarded by the uid.
fn unblock_owner_refs_patch(uid: &str, owners: &[OwnerReference]) -> serde_json::Value {
    let refs: Vec<serde_json::Value> = owners
        .iter()
        .filter(|o| o.block_owner_deletion == Some(true))
        .map(|o| serde_json::json!({"uid": o.uid, "blockOwnerDeletion": false}))
        .collect();
    serde_json::json!({"metadata": {"uid": uid, "ownerReferences": refs}})
}

/// A strategic merge patch dropping the owner references with these uids (ownerReferences
/// merge on uid), guarded by the dependent's own uid.
fn remove_owner_refs_patch(dependent_uid: &str, owners: &[String]) -> serde_json::Value {
    let refs: Vec<serde_json::Value> = owners
        .iter()
        .map(|uid| serde_json::json!({"$patch": "delete", "uid": uid}))
        .collect();
    serde_json::json!({"metadata": {"uid": dependent_uid, "ownerReferences": refs}})
}

fn ignore_not_found<T>(result: kube::Result<T>) -> kube::Result<()> {
    match result {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        Err(e) => Err(e),
    }
}

fn node_of(resource: usize, object: PartialObjectMeta<DynamicObject>) -> Option<(String, Node)> {
    let meta = object.metadata;
    let uid = meta.uid?;
    Some((
        uid,
        Node {
            resource,
            namespace: meta.namespace,
            name: meta.name?,
            owners: meta.owner_references.unwrap_or_default(),
            deleting: meta.deletion_timestamp.is_some(),
            finalizers: meta.finalizers.unwrap_or_default(),
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(owners: &[&str]) -> Node {
        Node {
            resource: 0,
            namespace: Some("default".into()),
            name: "x".into(),
            owners: owners
                .iter()
                .map(|uid| OwnerReference {
                    uid: uid.to_string(),
                    ..OwnerReference::default()
                })
                .collect(),
            deleting: false,
            finalizers: Vec::new(),
        }
    }

    #[test]
    fn graph_tracks_dependents_through_updates_and_removal() {
        let mut g = Graph::default();
        g.upsert("owner".into(), node(&[]));
        let affected = g.upsert("dep".into(), node(&["owner"]));
        assert!(affected.contains(&"owner".to_string()));
        assert_eq!(g.dependents_of("owner"), vec!["dep".to_string()]);
        // The dependent drops its owner reference.
        g.upsert("dep".into(), node(&[]));
        assert!(g.dependents_of("owner").is_empty());
        g.upsert("dep".into(), node(&["owner"]));
        // Removing the owner names its dependents.
        assert_eq!(g.remove("owner"), vec!["dep".to_string()]);
        assert!(g.remove("nothing").is_empty());
    }
}
