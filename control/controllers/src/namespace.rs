//! The namespace controller (upstream pkg/controller/namespace): a namespace being deleted has
//! everything in it deleted — its pods first, and the rest only once no pod is left (upstream's
//! OrderedNamespaceDeletion, on by default since 1.34: a pod never outlives the policies,
//! secrets or config it runs with) — then its `kubernetes` finalizer removed through
//! `/finalize`, at which point the API server removes it.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, PostParams};
use kube::discovery::{verbs, ApiCapabilities, ApiResource, Discovery, Scope};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::{Client, ResourceExt};

use crate::workqueue::{self, names};

const FINALIZER: &str = "kubernetes";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("API request failed: {0}")]
    Kube(#[from] kube::Error),
}

struct Context {
    client: Client,
}

/// Namespaced resources that can be listed and deleted as a collection.
async fn namespaced_resources(
    client: &Client,
) -> Result<Vec<(ApiResource, ApiCapabilities)>, Error> {
    let discovery = Discovery::new(client.clone()).run().await?;
    let mut out = Vec::new();
    for group in discovery.groups() {
        for (ar, caps) in group.recommended_resources() {
            if caps.scope == Scope::Namespaced
                && caps.supports_operation(verbs::LIST)
                && caps.supports_operation(verbs::DELETE_COLLECTION)
            {
                out.push((ar, caps));
            }
        }
    }
    Ok(out)
}

async fn reconcile(ns: Arc<Namespace>, ctx: Arc<Context>) -> Result<Action, Error> {
    if ns.metadata.deletion_timestamp.is_none() {
        return Ok(Action::await_change());
    }
    let finalizers = ns
        .spec
        .as_ref()
        .and_then(|s| s.finalizers.clone())
        .unwrap_or_default();
    if !finalizers.iter().any(|f| f == FINALIZER) {
        return Ok(Action::await_change());
    }
    let name = ns.name_any();
    // Discovery runs per pass so resources added later are covered too.
    let mut remaining = 0usize;
    let (pods, rest): (Vec<_>, Vec<_>) = namespaced_resources(&ctx.client)
        .await?
        .into_iter()
        .partition(|(ar, _)| ar.group.is_empty() && ar.plural == "pods");
    for (i, (ar, _)) in pods.into_iter().chain(rest).enumerate() {
        if i > 0 && remaining > 0 {
            // Pods are still going: nothing else is deleted yet.
            break;
        }
        let api: Api<DynamicObject> = Api::namespaced_with(ctx.client.clone(), &name, &ar);
        let left = api.list_metadata(&ListParams::default()).await?;
        if left.items.is_empty() {
            continue;
        }
        api.delete_collection(&DeleteParams::background(), &ListParams::default())
            .await?;
        let left = api.list_metadata(&ListParams::default()).await?;
        if !left.items.is_empty() {
            tracing::info!(namespace = %name, resource = %ar.plural, count = left.items.len(), "waiting for deletion");
            remaining += left.items.len();
        }
    }
    if remaining > 0 {
        return Ok(Action::requeue(Duration::from_secs(2)));
    }
    let mut finalized = (*ns).clone();
    if let Some(spec) = finalized.spec.as_mut() {
        spec.finalizers = Some(finalizers.into_iter().filter(|f| f != FINALIZER).collect());
    }
    let namespaces: Api<Namespace> = Api::all(ctx.client.clone());
    namespaces
        .replace_subresource("finalize", &name, &PostParams::default(), &finalized)
        .await?;
    tracing::info!(namespace = %name, "finalized");
    Ok(Action::await_change())
}

fn error_policy(_ns: Arc<Namespace>, error: &Error, _ctx: Arc<Context>) -> Action {
    tracing::warn!("namespace controller: {error}");
    Action::requeue(Duration::from_secs(2))
}

pub async fn run(client: Client) {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let ctx = Arc::new(Context { client });
    let controller = Controller::new(namespaces, watcher::Config::default());
    workqueue::run(names::NAMESPACE, controller, reconcile, error_policy, ctx).await;
}
