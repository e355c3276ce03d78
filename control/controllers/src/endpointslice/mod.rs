//! The EndpointSlice controller (upstream `pkg/controller/endpointslice`, with
//! `staging/src/k8s.io/endpointslice`'s reconciler): for every Service with a selector, the
//! discovery.k8s.io/v1 EndpointSlices that list its pods — what kube-proxy, DNS and most
//! clients read to find a service's backends.
//!
//! A sync of one service (kube-runtime's `Controller` keeps one sync per service at a time):
//! 1. the matching pods from the shared pod informer become endpoints grouped by port set
//!    (`desired.rs`);
//! 2. unless the slice cache misses one of this controller's own writes (`tracker.rs`), the
//!    service's slices (those it controls, labelled `managed-by: endpointslice-controller.k8s.io`)
//!    are planned toward them with minimal churn (`plan.rs`);
//! 3. the plan is written — creates, then in-place updates (conditional on the cached
//!    resourceVersion), then deletes — with the last-change-trigger-time annotation
//!    (`trigger_time.rs`). A failure records a `FailedToUpdateEndpointSlices` warning and retries
//!    with backoff.
//!
//! What triggers a sync: the service changing (its own watch), a pod change that matters
//! (`service_pods::changed`) for every service whose selector matches the old or new pod, and a
//! change to one of its slices by anyone (so a slice edited or deleted by hand is put back).
//! Deleting the service needs nothing here: its slices carry a controllerRef and the garbage
//! collector removes them.

pub mod desired;
pub mod plan;
pub mod tracker;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::channel::mpsc::{unbounded, UnboundedSender};
use k8s_openapi::api::core::v1::{Node, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, DeleteParams, PostParams, Preconditions};
use kube::runtime::controller::{Action, Config, Controller};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Client, ResourceExt};

use crate::backoff::Backoffs;
use crate::controller_ref::owner_ref;
use crate::events::{Recorder, WARNING};
use crate::informer::Informer;
use crate::replicaset::api_message;
use crate::workqueue::{self, names};
use crate::{service_pods, trigger_time};
use desired::Group;

/// `source.component` of its events, as upstream.
pub const COMPONENT: &str = "endpoint-slice-controller";
/// The label naming the service a slice belongs to.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
/// The label naming the controller that manages a slice, and this controller's value.
pub const MANAGED_BY_LABEL: &str = "endpointslice.kubernetes.io/managed-by";
pub const MANAGED_BY: &str = "endpointslice-controller.k8s.io";
/// Set (empty) on the slices and Endpoints of a headless service.
pub const HEADLESS_LABEL: &str = "service.kubernetes.io/headless";
/// Upstream's `--max-endpoints-per-slice` default (its maximum is 1000).
pub const MAX_ENDPOINTS_PER_SLICE: usize = 100;
/// Services synced at once (upstream's `--concurrent-endpointslice-syncs` is 5).
const WORKERS: u16 = 8;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Kube(#[from] kube::Error),
    #[error("the service has no uid or namespace")]
    Incomplete,
}

struct Context {
    client: Client,
    pods: Arc<Informer<Pod>>,
    nodes: Arc<Informer<Node>>,
    slices: Arc<Informer<EndpointSlice>>,
    tracker: tracker::Tracker,
    trigger_times: trigger_time::Tracker,
    recorder: Recorder,
    backoffs: Backoffs,
    max_per_slice: usize,
}

/// The labels of a service's slices (upstream `setEndpointSliceLabels`): the service's own
/// labels, `service.kubernetes.io/headless` for a headless service, the service name and the
/// managing controller.
pub fn slice_labels(service: &Service) -> BTreeMap<String, String> {
    let mut labels = service_pods::copied_labels(
        service,
        &[SERVICE_NAME_LABEL, MANAGED_BY_LABEL, HEADLESS_LABEL],
    );
    if service_pods::is_headless(service) {
        labels.insert(HEADLESS_LABEL.into(), String::new());
    }
    labels.insert(SERVICE_NAME_LABEL.into(), service.name_any());
    labels.insert(MANAGED_BY_LABEL.into(), MANAGED_BY.into());
    labels
}

fn is_managed(slice: &EndpointSlice) -> bool {
    slice.labels().get(MANAGED_BY_LABEL).map(String::as_str) == Some(MANAGED_BY)
}

/// A slice as read back, in the form the plan compares (an unnamed port as `""`, as written).
fn existing_group(slice: &EndpointSlice) -> Group {
    Group {
        ports: slice
            .ports
            .iter()
            .flatten()
            .map(|p| {
                let mut p = p.clone();
                p.name.get_or_insert_with(String::new);
                p
            })
            .collect(),
        endpoints: slice.endpoints.clone().unwrap_or_default(),
    }
}

/// Maps pod changes to the services to sync (upstream `onPodUpdate` → `GetPodServiceMemberships`).
fn pod_handler(
    services: kube::runtime::reflector::Store<Service>,
    queue: UnboundedSender<ObjectRef<Service>>,
) -> crate::informer::Handler<Pod> {
    Box::new(move |old, new| {
        if let (Some(old), Some(new)) = (old, new) {
            if !service_pods::changed(old, new) {
                return;
            }
        }
        let Some(namespace) = new.or(old).and_then(|p| p.metadata.namespace.clone()) else {
            return;
        };
        for service in services.state() {
            if service.metadata.namespace.as_deref() != Some(namespace.as_str()) {
                continue;
            }
            let Some(selector) = service_pods::selector(&service) else {
                continue;
            };
            let matches = [old, new]
                .into_iter()
                .flatten()
                .any(|p| selector.matches(p.metadata.labels.as_ref()));
            if matches {
                let _ = queue.unbounded_send(ObjectRef::from_obj(service.as_ref()));
            }
        }
    })
}

/// A change to one of our slices syncs its service (the slice may have been edited or deleted
/// by someone else, or be the write the tracker waits for).
fn slice_handler(
    queue: UnboundedSender<ObjectRef<Service>>,
) -> crate::informer::Handler<EndpointSlice> {
    Box::new(move |old, new| {
        let Some(slice) = new.or(old) else { return };
        if !is_managed(slice) {
            return;
        }
        let (Some(service), Some(namespace)) = (
            slice.labels().get(SERVICE_NAME_LABEL),
            slice.metadata.namespace.as_deref(),
        ) else {
            return;
        };
        let _ = queue.unbounded_send(ObjectRef::new(service).within(namespace));
    })
}

/// Builds the controller: registers its handlers on the shared informers at once (call before
/// they run) and returns the future that runs it once the caches are synced.
pub fn controller(
    client: Client,
    pods: Arc<Informer<Pod>>,
    nodes: Arc<Informer<Node>>,
    slices: Arc<Informer<EndpointSlice>>,
    recorder: &Recorder,
) -> impl std::future::Future<Output = ()> + Send {
    let api: Api<Service> = Api::all(client.clone());
    let controller = Controller::new(api, watcher::Config::default())
        .with_config(Config::default().concurrency(WORKERS));
    let (queue, triggers) = unbounded();
    pods.on_change(pod_handler(controller.store(), queue.clone()));
    slices.on_change(slice_handler(queue));
    let ctx = Arc::new(Context {
        client,
        pods: pods.clone(),
        nodes: nodes.clone(),
        slices: slices.clone(),
        tracker: tracker::Tracker::default(),
        trigger_times: trigger_time::Tracker::default(),
        recorder: recorder.for_component(COMPONENT),
        backoffs: Backoffs::default(),
        max_per_slice: MAX_ENDPOINTS_PER_SLICE,
    });
    async move {
        pods.wait_synced().await;
        nodes.wait_synced().await;
        slices.wait_synced().await;
        let controller = controller.reconcile_on(triggers);
        workqueue::run(
            names::ENDPOINTSLICE,
            controller,
            reconcile,
            error_policy,
            ctx,
        )
        .await;
    }
}

fn error_policy(service: Arc<Service>, error: &Error, ctx: Arc<Context>) -> Action {
    let delay = ctx.backoffs.next(&service.uid().unwrap_or_default());
    tracing::debug!(service = %service.name_any(), "endpointslice sync failed: {error}; retrying in {delay:?}");
    Action::requeue(delay)
}

async fn reconcile(service: Arc<Service>, ctx: Arc<Context>) -> Result<Action, Error> {
    let uid = service.uid().ok_or(Error::Incomplete)?;
    let namespace = service.namespace().ok_or(Error::Incomplete)?;
    if service.metadata.deletion_timestamp.is_some() {
        // The garbage collector removes the slices with the service.
        ctx.tracker.forget(&uid);
        ctx.trigger_times.forget(&namespace, &service.name_any());
        return Ok(Action::await_change());
    }
    let Some(selector) = service_pods::selector(&service) else {
        // No selector: its slices, if any, are someone else's.
        return Ok(Action::await_change());
    };
    let pods: Vec<Arc<Pod>> = ctx
        .pods
        .read()
        .in_namespace(&namespace)
        .into_iter()
        .filter(|p| selector.matches(p.metadata.labels.as_ref()))
        .collect();
    let slices: Vec<Arc<EndpointSlice>> = ctx
        .slices
        .read()
        .controlled_by(&uid)
        .into_iter()
        .filter(|s| is_managed(s))
        .collect();
    if ctx.tracker.stale(&uid, slices.iter().map(AsRef::as_ref)) {
        // The slice watch has not shown our last writes yet; its event syncs again.
        return Ok(Action::requeue(Duration::from_secs(1)));
    }
    let (trigger, seen) = ctx
        .trigger_times
        .compute(&service, pods.iter().map(AsRef::as_ref));
    let desired = {
        let nodes = ctx.nodes.read();
        desired::desired(&service, pods.iter().map(AsRef::as_ref), |node| {
            nodes
                .get("", node)
                .and_then(|n| n.labels().get("topology.kubernetes.io/zone").cloned())
        })
    };
    let labels = slice_labels(&service);
    let existing = slices
        .iter()
        .map(|s| plan::Existing {
            name: s.name_any(),
            group: existing_group(s),
            stale_meta: s.metadata.labels.as_ref() != Some(&labels) || s.address_type != "IPv4",
        })
        .collect();
    let plan = plan::plan(existing, desired, ctx.max_per_slice);
    if plan.is_empty() {
        ctx.trigger_times.commit(seen);
        ctx.backoffs.reset(&uid);
        return Ok(Action::await_change());
    }
    if let Err(e) = apply(&service, &uid, &slices, plan, labels, trigger, &ctx).await {
        ctx.recorder.publish(
            service.as_ref(),
            WARNING,
            "FailedToUpdateEndpointSlices",
            format!(
                "Error updating Endpoint Slices for Service {namespace}/{}: {}",
                service.name_any(),
                api_message(&e)
            ),
        );
        return Err(e.into());
    }
    ctx.trigger_times.commit(seen);
    ctx.backoffs.reset(&uid);
    Ok(Action::await_change())
}

fn annotate(meta: &mut ObjectMeta, trigger: Option<jiff::Timestamp>) {
    let annotations = meta.annotations.get_or_insert_with(BTreeMap::new);
    match trigger {
        Some(t) => {
            annotations.insert(trigger_time::ANNOTATION.into(), trigger_time::format(t));
        }
        None => {
            annotations.remove(trigger_time::ANNOTATION);
        }
    }
    if annotations.is_empty() {
        meta.annotations = None;
    }
}

fn with_group(mut slice: EndpointSlice, group: Group) -> EndpointSlice {
    slice.address_type = "IPv4".into();
    slice.ports = (!group.ports.is_empty()).then_some(group.ports);
    slice.endpoints = Some(group.endpoints);
    slice
}

/// Writes the plan: creates first, then updates, then deletes, so a service's endpoints never
/// disappear in between.
async fn apply(
    service: &Service,
    uid: &str,
    cached: &[Arc<EndpointSlice>],
    plan: plan::Plan,
    labels: BTreeMap<String, String>,
    trigger: Option<jiff::Timestamp>,
    ctx: &Context,
) -> Result<(), kube::Error> {
    let namespace = service.namespace().unwrap_or_default();
    let api: Api<EndpointSlice> = Api::namespaced(ctx.client.clone(), &namespace);
    for group in plan.create {
        let mut meta = ObjectMeta {
            generate_name: Some(format!("{}-", service.name_any())),
            namespace: Some(namespace.clone()),
            labels: Some(labels.clone()),
            owner_references: Some(vec![owner_ref(service)]),
            ..ObjectMeta::default()
        };
        annotate(&mut meta, trigger);
        let slice = with_group(
            EndpointSlice {
                metadata: meta,
                address_type: "IPv4".into(),
                endpoints: None,
                ports: None,
            },
            group,
        );
        let created = api.create(&PostParams::default(), &slice).await?;
        ctx.tracker.written(uid, &created);
    }
    for (name, group) in plan.update {
        let Some(current) = cached.iter().find(|s| s.name_any() == name) else {
            continue;
        };
        let mut slice = (**current).clone();
        slice.metadata.labels = Some(labels.clone());
        slice.metadata.owner_references = Some(vec![owner_ref(service)]);
        slice.metadata.managed_fields = None;
        annotate(&mut slice.metadata, trigger);
        let slice = with_group(slice, group);
        let updated = api.replace(&name, &PostParams::default(), &slice).await?;
        ctx.tracker.written(uid, &updated);
    }
    for name in plan.delete {
        let precondition = cached
            .iter()
            .find(|s| s.name_any() == name)
            .and_then(|s| s.uid());
        let params = DeleteParams {
            preconditions: Some(Preconditions {
                uid: precondition,
                resource_version: None,
            }),
            ..DeleteParams::default()
        };
        match api.delete(&name, &params).await {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => return Err(e),
        }
        ctx.tracker.deleted(uid, &name);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service_pods::testing::service;

    #[test]
    fn slice_labels_as_upstream() {
        let mut svc = service("web", &[]);
        svc.metadata.labels = Some(BTreeMap::from([
            ("team".to_string(), "a".to_string()),
            (MANAGED_BY_LABEL.to_string(), "someone".to_string()),
        ]));
        let labels = slice_labels(&svc);
        assert_eq!(labels.get("team").map(String::as_str), Some("a"));
        assert_eq!(labels[MANAGED_BY_LABEL], MANAGED_BY);
        assert_eq!(labels[SERVICE_NAME_LABEL], "web");
        assert!(!labels.contains_key(HEADLESS_LABEL));
        svc.spec.as_mut().unwrap().cluster_ip = Some("None".into());
        assert_eq!(slice_labels(&svc)[HEADLESS_LABEL], "");
    }
}
