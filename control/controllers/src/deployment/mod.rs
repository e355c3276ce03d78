//! The Deployment controller (upstream `pkg/controller/deployment`). A Deployment owns
//! ReplicaSets, one per pod template it has had; this controller moves pods from the old ones
//! to the new one and reports progress.
//!
//! A sync:
//! 1. claims ReplicaSets by selector and controllerRef (adopts matching orphans, releases
//!    controlled ones that stopped matching — `controller_ref.rs`);
//! 2. records pause/resume in the Progressing condition (`progress.rs`);
//! 3. paused, or resized without a template change: only scales (`sync.rs`, proportionally
//!    mid-rollout) and writes status;
//! 4. otherwise rolls out by strategy: `rolling.rs` (RollingUpdate) or `recreate.rs`;
//!    revisions, the new ReplicaSet's name and its `pod-template-hash` come from `history.rs`
//!    and `hash.rs`.
//!
//! Triggers: the Deployment (kube-runtime's watch) and its ReplicaSets (the shared ReplicaSet
//! informer; an orphan ReplicaSet wakes every Deployment whose selector matches it).

pub mod hash;
pub mod history;
pub mod progress;
pub mod recreate;
pub mod rolling;
pub mod sync;
pub mod util;

use std::sync::Arc;
use std::time::Duration;

use futures::channel::mpsc::{unbounded, UnboundedSender};
use k8s_openapi::api::apps::v1::{Deployment, DeploymentStatus, ReplicaSet};
use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use kube::runtime::controller::{Action, Config, Controller};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use kube::{Client, ResourceExt};

use crate::backoff::Backoffs;
use crate::controller_ref::{self, owner_ref};
use crate::events::{Recorder, WARNING};
use crate::informer::{controller_uid, Handler, Informer};
use crate::selector::Selector;
use crate::workqueue::{self, names};
use sync::Rollout;

pub const COMPONENT: &str = "deployment-controller";
/// Syncs at once (upstream `--concurrent-deployment-syncs` is 5; see the ReplicaSet controller
/// for why more).
const WORKERS: u16 = 16;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("API request failed: {0}")]
    Kube(#[from] kube::Error),
    #[error("replica set name {0} is taken by another object; collisionCount raised")]
    Collision(String),
    #[error("the deployment has no uid or namespace")]
    Incomplete,
}

pub struct Context {
    client: Client,
    pods: Arc<Informer<Pod>>,
    replica_sets: Arc<Informer<ReplicaSet>>,
    recorder: Recorder,
    backoffs: Backoffs,
}

fn controller_of(rs: &ReplicaSet) -> Option<(String, String)> {
    let r = rs
        .metadata
        .owner_references
        .iter()
        .flatten()
        .find(|r| r.controller == Some(true))?;
    (r.kind == "Deployment" && r.api_version == "apps/v1").then(|| (r.name.clone(), r.uid.clone()))
}

fn selector_of(d: &Deployment) -> Selector {
    Selector::from_label_selector(&d.spec.selector)
}

/// Maps ReplicaSet changes to the Deployments to sync (upstream addReplicaSet/updateReplicaSet/
/// deleteReplicaSet).
fn replica_set_handler(
    store: Store<Deployment>,
    queue: UnboundedSender<ObjectRef<Deployment>>,
) -> Handler<ReplicaSet> {
    Box::new(move |old, new| {
        let enqueue = |rs: &ReplicaSet, name: &str| {
            let namespace = rs.metadata.namespace.as_deref().unwrap_or_default();
            let _ = queue.unbounded_send(ObjectRef::new(name).within(namespace));
        };
        let enqueue_matching = |rs: &ReplicaSet| {
            for d in store.state() {
                if d.metadata.namespace == rs.metadata.namespace
                    && selector_of(&d).matches(rs.metadata.labels.as_ref())
                {
                    enqueue(rs, &d.name_any());
                }
            }
        };
        let owner = new.and_then(|rs| controller_of(rs));
        let old_owner = old.and_then(|rs| controller_of(rs));
        if let (Some(rs), Some((name, _))) = (new.or(old), &owner) {
            enqueue(rs, name);
        }
        if let (Some(rs), Some((name, _))) = (old, &old_owner) {
            if owner != old_owner || new.is_none() {
                enqueue(rs, name);
            }
        }
        if let Some(rs) = new {
            let relabelled = old.is_some_and(|o| o.metadata.labels != rs.metadata.labels);
            let orphan = controller_uid(rs.as_ref()).is_none();
            let was_orphan = old.is_none_or(|o| controller_uid(o.as_ref()).is_none());
            if orphan
                && rs.metadata.deletion_timestamp.is_none()
                && (old.is_none() || relabelled || !was_orphan)
            {
                enqueue_matching(rs);
            }
        }
    })
}

/// Builds the controller: registers its ReplicaSet handler at once (before the informers run)
/// and returns the future that runs it once the caches are synced.
pub fn controller(
    client: Client,
    pods: Arc<Informer<Pod>>,
    replica_sets: Arc<Informer<ReplicaSet>>,
    recorder: &Recorder,
) -> impl std::future::Future<Output = ()> + Send {
    let api: Api<Deployment> = Api::all(client.clone());
    let controller = Controller::new(api, watcher::Config::default())
        .with_config(Config::default().concurrency(WORKERS));
    let (queue, triggers) = unbounded();
    replica_sets.on_change(replica_set_handler(controller.store(), queue));
    let ctx = Arc::new(Context {
        client,
        pods: pods.clone(),
        replica_sets: replica_sets.clone(),
        recorder: recorder.for_component(COMPONENT),
        backoffs: Backoffs::default(),
    });
    async move {
        pods.wait_synced().await;
        replica_sets.wait_synced().await;
        let controller = controller.reconcile_on(triggers);
        workqueue::run(names::DEPLOYMENT, controller, reconcile, error_policy, ctx).await;
    }
}

fn error_policy(d: Arc<Deployment>, error: &Error, ctx: Arc<Context>) -> Action {
    let delay = ctx.backoffs.next(&d.uid().unwrap_or_default());
    tracing::debug!(name = %d.name_any(), "deployment sync failed: {error}; retrying in {delay:?}");
    Action::requeue(delay)
}

/// The ReplicaSets this Deployment owns after adoption and release (upstream
/// `getReplicaSetsForDeployment`).
async fn claim_replica_sets(
    d: &Deployment,
    ctx: &Context,
    namespace: &str,
    uid: &str,
) -> Result<Vec<ReplicaSet>, Error> {
    let deleting = d.metadata.deletion_timestamp.is_some();
    let claim = {
        let cache = ctx.replica_sets.read();
        controller_ref::classify(
            cache.controlled_by(uid),
            cache.orphans_in(namespace),
            &selector_of(d),
            deleting,
        )
    };
    let api: Api<ReplicaSet> = Api::namespaced(ctx.client.clone(), namespace);
    for rs in &claim.release {
        controller_ref::release(&api, rs.as_ref(), uid).await?;
    }
    let mut owned: Vec<ReplicaSet> = claim.owned.iter().map(|rs| (**rs).clone()).collect();
    if !claim.adopt.is_empty() {
        let deployments: Api<Deployment> = Api::namespaced(ctx.client.clone(), namespace);
        if controller_ref::can_adopt(&deployments, d).await? {
            for rs in &claim.adopt {
                if controller_ref::adopt(&api, rs.as_ref(), owner_ref(d)).await? {
                    owned.push((**rs).clone());
                }
            }
        }
    }
    Ok(owned)
}

async fn reconcile(d: Arc<Deployment>, ctx: Arc<Context>) -> Result<Action, Error> {
    let uid = d.uid().ok_or(Error::Incomplete)?;
    let namespace = d.namespace().ok_or(Error::Incomplete)?;
    let action = sync_deployment(&d, &ctx, &namespace, &uid).await?;
    ctx.backoffs.reset(&uid);
    Ok(action)
}

async fn sync_deployment(
    d: &Deployment,
    ctx: &Context,
    namespace: &str,
    uid: &str,
) -> Result<Action, Error> {
    let mut r = Rollout {
        ctx,
        d: d.clone(),
        namespace: namespace.to_string(),
        name: d.name_any(),
    };
    if selector_of(d).is_empty() {
        ctx.recorder.publish(
            d,
            WARNING,
            "SelectorRequired",
            "This deployment has no selector".to_string(),
        );
        let generation = d.metadata.generation;
        if d.status.as_ref().and_then(|s| s.observed_generation) != generation {
            let status = DeploymentStatus {
                observed_generation: generation,
                ..d.status.clone().unwrap_or_default()
            };
            r.set_status(status).await?;
        }
        return Ok(Action::await_change());
    }
    let list = claim_replica_sets(d, ctx, namespace, uid).await?;
    if d.metadata.deletion_timestamp.is_some() {
        let (new, old) = r.split(&list);
        r.sync_status(new.as_ref(), &old).await?;
        return Ok(Action::await_change());
    }
    if progress::paused_conditions(&mut r.d, jiff::Timestamp::now()) {
        r.write_status().await?;
    }
    if progress::is_paused(&r.d) {
        r.sync(&list).await?;
        return Ok(Action::await_change());
    }
    if r.is_scaling_event(&list).await? {
        r.sync(&list).await?;
        return Ok(Action::await_change());
    }
    let after = if util::is_rolling(&r.d) {
        rolling::rollout(&mut r, &list).await?
    } else {
        recreate::rollout(&mut r, &list).await?
    };
    Ok(match after {
        Some(after) => Action::requeue(after.max(Duration::from_secs(1))),
        None => Action::await_change(),
    })
}
