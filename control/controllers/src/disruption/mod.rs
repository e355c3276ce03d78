//! The disruption controller (upstream `pkg/controller/disruption`): keeps each
//! PodDisruptionBudget's status — expected pods, desired and current healthy, disruptions
//! allowed, the DisruptionAllowed condition — so the API server's eviction subresource (and
//! with it `kubectl drain`) can refuse an eviction the budget does not allow. The arithmetic
//! is in `budget.rs`.
//!
//! The expected count for percentages and maxUnavailable is the scale of the pods'
//! controllers: a ReplicaSet's (its Deployment's when it has one), a ReplicationController's or
//! a StatefulSet's `spec.replicas`, read live per sync — a budget is synced when its pods
//! change, which is rare next to the reads the API server answers from its watch cache.
//! Entries of `status.disruptedPods` expire after two minutes; the controller comes back then.

pub mod budget;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures::channel::mpsc::{unbounded, UnboundedSender};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::{Pod, ReplicationController};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::api::{Api, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use kube::{Client, ResourceExt};

use crate::backoff::Backoffs;
use crate::events::{Recorder, NORMAL, WARNING};
use crate::informer::Informer;
use crate::selector::Selector;
use crate::workqueue::{self, names};

const COMPONENT: &str = "controllermanager";
pub const CONDITION: &str = "DisruptionAllowed";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("API request failed: {0}")]
    Kube(#[from] kube::Error),
    #[error("{0}")]
    Scale(String),
    #[error("the object has no uid or namespace")]
    Incomplete,
}

struct Context {
    client: Client,
    pods: Arc<Informer<Pod>>,
    recorder: Recorder,
    backoffs: Backoffs,
}

fn selector(pdb: &PodDisruptionBudget) -> Option<Selector> {
    // A budget without a selector selects nothing (policy/v1).
    pdb.spec
        .as_ref()
        .and_then(|s| s.selector.as_ref())
        .map(Selector::from_label_selector)
}

fn pod_handler(
    store: Store<PodDisruptionBudget>,
    queue: UnboundedSender<ObjectRef<PodDisruptionBudget>>,
) -> crate::informer::Handler<Pod> {
    Box::new(move |old, new| {
        for pod in [old, new].into_iter().flatten() {
            let namespace = pod.metadata.namespace.as_deref().unwrap_or_default();
            for pdb in store.state() {
                if pdb.metadata.namespace.as_deref() == Some(namespace)
                    && selector(&pdb).is_some_and(|s| s.matches(pod.metadata.labels.as_ref()))
                {
                    let _ = queue.unbounded_send(ObjectRef::from_obj(pdb.as_ref()));
                }
            }
        }
    })
}

/// Builds the disruption controller: registers its pod handler on `pods` at once (call this
/// before the informer runs) and returns the future that runs it once the pod cache is synced.
pub fn controller(
    client: Client,
    pods: Arc<Informer<Pod>>,
    recorder: &Recorder,
) -> impl std::future::Future<Output = ()> + Send {
    let api: Api<PodDisruptionBudget> = Api::all(client.clone());
    let controller = Controller::new(api, watcher::Config::default());
    let (queue, triggers) = unbounded();
    pods.on_change(pod_handler(controller.store(), queue));
    let ctx = Arc::new(Context {
        client,
        pods: pods.clone(),
        recorder: recorder.for_component(COMPONENT),
        backoffs: Backoffs::default(),
    });
    async move {
        pods.wait_synced().await;
        let controller = controller.reconcile_on(triggers);
        workqueue::run(names::DISRUPTION, controller, reconcile, error_policy, ctx).await;
    }
}

fn error_policy(pdb: Arc<PodDisruptionBudget>, error: &Error, ctx: Arc<Context>) -> Action {
    let delay = ctx.backoffs.next(&pdb.uid().unwrap_or_default());
    tracing::debug!(name = %pdb.name_any(), "disruption sync failed: {error}; retrying in {delay:?}");
    Action::requeue(delay)
}

/// The scale of the controller that owns `pod` (upstream's `finders`), keyed by controller uid.
async fn scale_of(
    client: &Client,
    namespace: &str,
    pod: &Pod,
) -> Result<Option<(String, i32)>, Error> {
    let Some(owner) = pod
        .metadata
        .owner_references
        .iter()
        .flatten()
        .find(|r| r.controller == Some(true))
    else {
        return Ok(None);
    };
    let replicas = |r: Option<i32>| r.unwrap_or(1);
    Ok(match (owner.api_version.as_str(), owner.kind.as_str()) {
        ("apps/v1", "ReplicaSet") => {
            let rs = Api::<ReplicaSet>::namespaced(client.clone(), namespace)
                .get(&owner.name)
                .await?;
            let deployment = rs
                .metadata
                .owner_references
                .iter()
                .flatten()
                .find(|r| r.controller == Some(true) && r.kind == "Deployment");
            match deployment {
                Some(d) => {
                    let d = Api::<Deployment>::namespaced(client.clone(), namespace)
                        .get(&d.name)
                        .await?;
                    Some((d.uid().unwrap_or_default(), replicas(d.spec.replicas)))
                }
                None => Some((owner.uid.clone(), replicas(rs.spec.replicas))),
            }
        }
        ("v1", "ReplicationController") => {
            let rc = Api::<ReplicationController>::namespaced(client.clone(), namespace)
                .get(&owner.name)
                .await?;
            Some((
                owner.uid.clone(),
                replicas(rc.spec.and_then(|s| s.replicas)),
            ))
        }
        ("apps/v1", "StatefulSet") => {
            let set = Api::<StatefulSet>::namespaced(client.clone(), namespace)
                .get(&owner.name)
                .await?;
            Some((owner.uid.clone(), replicas(set.spec.replicas)))
        }
        _ => None,
    })
}

fn condition(
    current: Option<&Condition>,
    allowed: bool,
    reason: &str,
    message: &str,
    generation: i64,
    now: jiff::Timestamp,
) -> Condition {
    let status = if allowed { "True" } else { "False" };
    let since = current
        .filter(|c| c.status == status)
        .map(|c| c.last_transition_time.clone())
        .unwrap_or(Time(now));
    Condition {
        type_: CONDITION.into(),
        status: status.into(),
        reason: reason.into(),
        message: message.into(),
        observed_generation: Some(generation),
        last_transition_time: since,
    }
}

async fn reconcile(pdb: Arc<PodDisruptionBudget>, ctx: Arc<Context>) -> Result<Action, Error> {
    let uid = pdb.uid().ok_or(Error::Incomplete)?;
    let namespace = pdb.namespace().ok_or(Error::Incomplete)?;
    if pdb.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let spec = pdb.spec.clone().unwrap_or_default();
    let now = jiff::Timestamp::now();
    let generation = pdb.metadata.generation.unwrap_or(0);
    let pods: Vec<Arc<Pod>> = match selector(&pdb) {
        Some(selector) => ctx
            .pods
            .read()
            .in_namespace(&namespace)
            .into_iter()
            .filter(|p| selector.matches(p.metadata.labels.as_ref()))
            .collect(),
        None => Vec::new(),
    };
    let refs: Vec<&Pod> = pods.iter().map(|p| p.as_ref()).collect();
    if pods.is_empty() {
        ctx.recorder.publish(
            pdb.as_ref(),
            NORMAL,
            "NoPods",
            "No matching pods found".into(),
        );
    }

    let mut scale_error = None;
    let mut scale = 0;
    if budget::needs_scale(&spec) {
        let mut by_controller: HashMap<String, i32> = HashMap::new();
        for pod in &refs {
            match scale_of(&ctx.client, &namespace, pod).await {
                Ok(Some((controller, replicas))) => {
                    by_controller.insert(controller, replicas);
                }
                Ok(None) => {
                    let message = format!("found no controllers for pod {:?}", pod.name_any());
                    ctx.recorder
                        .publish(pdb.as_ref(), WARNING, "NoControllers", message.clone());
                    scale_error = Some(message);
                    break;
                }
                Err(e) => {
                    scale_error = Some(e.to_string());
                    break;
                }
            }
        }
        scale = by_controller.values().sum();
        if let Some(e) = &scale_error {
            ctx.recorder.publish(
                pdb.as_ref(),
                WARNING,
                "CalculateExpectedPodCountFailed",
                format!("Failed to calculate the number of expected pods: {e}"),
            );
        }
    }

    let current_status = pdb.status.clone().unwrap_or_default();
    let disrupted = budget::live_disruptions(
        &current_status.disrupted_pods.clone().unwrap_or_default(),
        &refs,
        now,
    );
    let current_condition = current_status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == CONDITION);
    let mut next = current_status.clone();
    match &scale_error {
        Some(message) => {
            // Upstream's failSafe: nothing may be disrupted while the budget is unknown.
            next.disruptions_allowed = Some(0);
            next.conditions = Some(vec![condition(
                current_condition,
                false,
                "SyncFailed",
                message,
                generation,
                now,
            )]);
        }
        None => {
            let (expected, desired) = budget::expected_and_desired(&spec, pods.len() as i32, scale);
            let counts = budget::counts(
                expected,
                desired,
                budget::current_healthy(&refs, &disrupted),
            );
            next.expected_pods = Some(counts.expected);
            next.desired_healthy = Some(counts.desired_healthy);
            next.current_healthy = Some(counts.current_healthy);
            next.disruptions_allowed = Some(counts.disruptions_allowed);
            let allowed = counts.disruptions_allowed > 0;
            let reason = if allowed {
                "SufficientPods"
            } else {
                "InsufficientPods"
            };
            next.conditions = Some(vec![condition(
                current_condition,
                allowed,
                reason,
                "",
                generation,
                now,
            )]);
        }
    }
    next.disrupted_pods = (!disrupted.is_empty()).then(|| disrupted.clone());
    next.observed_generation = Some(generation);
    if next != current_status {
        let mut updated = (*pdb).clone();
        updated.status = Some(next);
        let api: Api<PodDisruptionBudget> = Api::namespaced(ctx.client.clone(), &namespace);
        match api
            .replace_status(&pdb.name_any(), &PostParams::default(), &updated)
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 => return Ok(Action::await_change()),
            Err(e) => return Err(e.into()),
        }
    }
    if let Some(e) = scale_error {
        return Err(Error::Scale(e));
    }
    ctx.backoffs.reset(&uid);
    // Come back when the oldest recorded eviction expires.
    let expiry = disrupted
        .values()
        .map(|t| t.0 + budget::DELETION_TIMEOUT)
        .min();
    Ok(match expiry {
        Some(at) => Action::requeue(
            Duration::try_from(at.duration_since(now)).unwrap_or(Duration::ZERO)
                + Duration::from_secs(1),
        ),
        None => Action::await_change(),
    })
}
