//! The Endpoints controller (upstream `pkg/controller/endpoint`): for every Service with a
//! selector, the core/v1 Endpoints object of the same name — the older API that many clients
//! (and `kubectl describe service`) still read.
//!
//! A sync of one service builds its subsets from the matching pods (`subsets.rs`), truncates
//! them at 1000 addresses, and writes the Endpoints only if the subsets, the labels (the
//! service's, plus `service.kubernetes.io/headless` when headless) or the over-capacity
//! annotation differ from what is there — creating it if missing, else an update conditional
//! on the cached resourceVersion. The last-change-trigger-time annotation rides along.
//! Failed writes record upstream's `FailedToCreateEndpoint`/`FailedToUpdateEndpoint` warnings
//! and retry with backoff.
//!
//! Endpoints carry no ownerReference (upstream's don't), so this controller deletes them
//! itself: a deleted service — seen on the service watch, or an Endpoints object whose service
//! is missing (after a restart) — gets its Endpoints deleted once a live GET confirms the
//! service is gone. Services without a selector are left alone: their Endpoints belong to
//! someone else (the API server's `default/kubernetes`, or a user pointing a service outside).

pub mod subsets;

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::channel::mpsc::{unbounded, UnboundedSender};
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Endpoints, Pod, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, DeleteParams, PostParams, Preconditions};
use kube::runtime::controller::{self, Action, Config, Controller};
use kube::runtime::reflector::{self, ObjectRef};
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt;
use kube::{Client, ResourceExt};

use crate::backoff::Backoffs;
use crate::endpointslice::HEADLESS_LABEL;
use crate::events::{Recorder, WARNING};
use crate::informer::Informer;
use crate::replicaset::api_message;
use crate::workqueue::{self, names};
use crate::{service_pods, trigger_time};

/// `source.component` of its events, as upstream.
pub const COMPONENT: &str = "endpoint-controller";
/// Set to `truncated` on Endpoints cut at [`subsets::MAX_CAPACITY`] addresses.
pub const OVER_CAPACITY: &str = "endpoints.kubernetes.io/over-capacity";
/// Endpoints used as a leader-election lock (old components): never deleted here.
const LEADER_ANNOTATION: &str = "control-plane.alpha.kubernetes.io/leader";
/// Services synced at once (upstream's `--concurrent-endpoint-syncs` is 5).
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
    endpoints: Arc<Informer<Endpoints>>,
    trigger_times: trigger_time::Tracker,
    recorder: Recorder,
    backoffs: Backoffs,
}

/// The labels of a service's Endpoints: the service's, plus the headless marker.
pub fn endpoints_labels(service: &Service) -> BTreeMap<String, String> {
    let mut labels = service_pods::copied_labels(service, &[HEADLESS_LABEL]);
    if service_pods::is_headless(service) {
        labels.insert(HEADLESS_LABEL.into(), String::new());
    }
    labels
}

fn pod_handler(
    services: reflector::Store<Service>,
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
            if [old, new]
                .into_iter()
                .flatten()
                .any(|p| selector.matches(p.metadata.labels.as_ref()))
            {
                let _ = queue.unbounded_send(ObjectRef::from_obj(service.as_ref()));
            }
        }
    })
}

/// Any Endpoints change syncs the service of that name: an edit by hand is undone, and one
/// without a service is found (and deleted) after a restart.
fn endpoints_handler(
    queue: UnboundedSender<ObjectRef<Service>>,
) -> crate::informer::Handler<Endpoints> {
    Box::new(move |old, new| {
        let Some(endpoints) = new.or(old) else { return };
        let (Some(name), Some(namespace)) = (
            endpoints.metadata.name.as_deref(),
            endpoints.metadata.namespace.as_deref(),
        ) else {
            return;
        };
        let _ = queue.unbounded_send(ObjectRef::new(name).within(namespace));
    })
}

/// Builds the controller: registers its handlers on the shared informers at once (call before
/// they run) and returns the future that runs it once the caches are synced.
pub fn controller(
    client: Client,
    pods: Arc<Informer<Pod>>,
    endpoints: Arc<Informer<Endpoints>>,
    recorder: &Recorder,
) -> impl std::future::Future<Output = ()> + Send {
    let (queue, triggers) = unbounded();
    // The service watch, with its deletions turned into syncs of services that no longer
    // exist (kube-runtime reports those as ObjectNotFound, handled below).
    let (reader, writer) = reflector::store();
    let deleted = queue.clone();
    let services = watcher::watcher(
        Api::<Service>::all(client.clone()),
        watcher::Config::default(),
    )
    .default_backoff()
    .reflect(writer)
    .inspect(move |event| {
        if let Ok(Event::Delete(service)) = event {
            let _ = deleted.unbounded_send(ObjectRef::from_obj(service));
        }
    })
    .applied_objects();
    let controller = Controller::for_stream(services, reader.clone())
        .with_config(Config::default().concurrency(WORKERS));
    pods.on_change(pod_handler(reader, queue.clone()));
    endpoints.on_change(endpoints_handler(queue));
    let ctx = Arc::new(Context {
        client,
        pods: pods.clone(),
        endpoints: endpoints.clone(),
        trigger_times: trigger_time::Tracker::default(),
        recorder: recorder.for_component(COMPONENT),
        backoffs: Backoffs::default(),
    });
    let cleanup = ctx.clone();
    async move {
        pods.wait_synced().await;
        endpoints.wait_synced().await;
        let controller = controller.reconcile_on(triggers);
        workqueue::instrumented(names::ENDPOINT, controller, reconcile, error_policy, ctx)
            .for_each(|result| {
                let ctx = cleanup.clone();
                async move {
                    match result {
                        Err(controller::Error::ObjectNotFound(service)) => {
                            let namespace = service.namespace.clone().unwrap_or_default();
                            if let Err(e) = delete_leftover(&ctx, &namespace, &service.name).await
                            {
                                tracing::debug!(%namespace, name = %service.name, "deleting leftover endpoints: {e}");
                            }
                        }
                        Err(e) => tracing::debug!("endpoints sync: {e}"),
                        Ok(_) => {}
                    }
                }
            })
            .await;
    }
}

/// The Endpoints of a service that is gone (upstream deletes them in `syncService` when the
/// service is not found). The service watch may lag or not be listed yet, so a live GET
/// decides.
async fn delete_leftover(ctx: &Context, namespace: &str, name: &str) -> Result<(), kube::Error> {
    let Some(current) = ctx.endpoints.read().get(namespace, name) else {
        return Ok(());
    };
    if current.annotations().contains_key(LEADER_ANNOTATION) {
        return Ok(());
    }
    let services: Api<Service> = Api::namespaced(ctx.client.clone(), namespace);
    if services.get_opt(name).await?.is_some() {
        return Ok(());
    }
    ctx.trigger_times.forget(namespace, name);
    let api: Api<Endpoints> = Api::namespaced(ctx.client.clone(), namespace);
    let params = DeleteParams {
        preconditions: Some(Preconditions {
            uid: current.uid(),
            resource_version: None,
        }),
        ..DeleteParams::default()
    };
    match api.delete(name, &params).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => Ok(()),
        Err(e) => Err(e),
    }
}

fn error_policy(service: Arc<Service>, error: &Error, ctx: Arc<Context>) -> Action {
    let delay = ctx.backoffs.next(&service.uid().unwrap_or_default());
    tracing::debug!(service = %service.name_any(), "endpoints sync failed: {error}; retrying in {delay:?}");
    Action::requeue(delay)
}

async fn reconcile(service: Arc<Service>, ctx: Arc<Context>) -> Result<Action, Error> {
    let uid = service.uid().ok_or(Error::Incomplete)?;
    let namespace = service.namespace().ok_or(Error::Incomplete)?;
    let name = service.name_any();
    if service.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let Some(selector) = service_pods::selector(&service) else {
        return Ok(Action::await_change());
    };
    let pods: Vec<Arc<Pod>> = ctx
        .pods
        .read()
        .in_namespace(&namespace)
        .into_iter()
        .filter(|p| selector.matches(p.metadata.labels.as_ref()))
        .collect();
    let (trigger, seen) = ctx
        .trigger_times
        .compute(&service, pods.iter().map(AsRef::as_ref));
    let mut subsets = subsets::build(&service, pods.iter().map(AsRef::as_ref));
    let truncated = subsets::truncate(&mut subsets, subsets::MAX_CAPACITY);
    let labels = endpoints_labels(&service);
    let current = ctx.endpoints.read().get(&namespace, &name);

    if let Some(current) = &current {
        let same_subsets = current.subsets.clone().unwrap_or_default() == subsets;
        let same_labels = current.metadata.labels.clone().unwrap_or_default() == labels;
        let capacity_ok = current.annotations().get(OVER_CAPACITY).map(String::as_str)
            == truncated.then_some("truncated");
        if same_subsets && same_labels && capacity_ok {
            ctx.trigger_times.commit(seen);
            ctx.backoffs.reset(&uid);
            return Ok(Action::await_change());
        }
    }

    let mut meta = match &current {
        Some(current) => ObjectMeta {
            managed_fields: None,
            ..current.metadata.clone()
        },
        None => ObjectMeta {
            name: Some(name.clone()),
            namespace: Some(namespace.clone()),
            ..ObjectMeta::default()
        },
    };
    meta.labels = (!labels.is_empty()).then_some(labels);
    let annotations = meta.annotations.get_or_insert_with(BTreeMap::new);
    match trigger {
        Some(t) => {
            annotations.insert(trigger_time::ANNOTATION.into(), trigger_time::format(t));
        }
        None => {
            annotations.remove(trigger_time::ANNOTATION);
        }
    }
    if truncated {
        annotations.insert(OVER_CAPACITY.into(), "truncated".into());
    } else {
        annotations.remove(OVER_CAPACITY);
    }
    if annotations.is_empty() {
        meta.annotations = None;
    }
    let endpoints = Endpoints {
        metadata: meta,
        subsets: (!subsets.is_empty()).then_some(subsets),
    };
    let api: Api<Endpoints> = Api::namespaced(ctx.client.clone(), &namespace);
    let result = match &current {
        None => api.create(&PostParams::default(), &endpoints).await,
        Some(_) => api.replace(&name, &PostParams::default(), &endpoints).await,
    };
    if let Err(e) = result {
        // A namespace being deleted refuses new objects; that is not worth a warning.
        let terminating = matches!(&e, kube::Error::Api(s) if s.code == 403 && s.message.contains("being terminated"));
        if !terminating {
            let (reason, message) = match &current {
                None => (
                    "FailedToCreateEndpoint",
                    format!(
                        "Failed to create endpoint for service {namespace}/{name}: {}",
                        api_message(&e)
                    ),
                ),
                Some(_) => (
                    "FailedToUpdateEndpoint",
                    format!(
                        "Failed to update endpoint {namespace}/{name}: {}",
                        api_message(&e)
                    ),
                ),
            };
            ctx.recorder
                .publish(service.as_ref(), WARNING, reason, message);
        }
        return Err(e.into());
    }
    ctx.trigger_times.commit(seen);
    ctx.backoffs.reset(&uid);
    Ok(Action::await_change())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service_pods::testing::service;

    #[test]
    fn labels_copied_with_the_headless_marker() {
        let mut svc = service("db", &[]);
        svc.metadata.labels = Some(BTreeMap::from([
            ("app".to_string(), "db".to_string()),
            (HEADLESS_LABEL.to_string(), "stale".to_string()),
        ]));
        assert_eq!(
            endpoints_labels(&svc),
            BTreeMap::from([("app".to_string(), "db".to_string())])
        );
        svc.spec.as_mut().unwrap().cluster_ip = Some("None".into());
        assert_eq!(endpoints_labels(&svc)[HEADLESS_LABEL], "");
    }
}
