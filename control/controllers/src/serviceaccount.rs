//! The ServiceAccount controller (upstream `pkg/controller/serviceaccount`): every active
//! namespace has a `default` ServiceAccount, recreated if deleted, so pods that name none (and
//! so run as `default`) always find it.
//!
//! Triggers: a namespace appearing or changing, and a `default` ServiceAccount changing or
//! going (kube-runtime's `watches`, mapped to its namespace).

use std::sync::Arc;

use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Client, ResourceExt};

use crate::backoff::Backoffs;
use crate::workqueue::{self, names};

/// The accounts every namespace gets (upstream's `--service-account-names` default).
pub const DEFAULT_ACCOUNTS: &[&str] = &["default"];

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("API request failed: {0}")]
    Kube(#[from] kube::Error),
}

struct Context {
    /// Reads (upstream's listers) with the controller manager's own credential.
    informers: Client,
    /// Writes as `service-account-controller`.
    client: Client,
    backoffs: Backoffs,
}

/// `informers` (the controller manager's own client) watches and reads, as upstream's shared
/// informers do; `client` (the controller's) creates the accounts: upstream's
/// `system:controller:service-account-controller` may only create service accounts.
pub async fn run(informers: Client, client: Client) {
    let ctx = Arc::new(Context {
        informers: informers.clone(),
        client,
        backoffs: Backoffs::default(),
    });
    let controller = Controller::new(
        Api::<Namespace>::all(informers.clone()),
        watcher::Config::default(),
    )
    .watches(
        Api::<ServiceAccount>::all(informers),
        watcher::Config::default().fields("metadata.name=default"),
        |sa| {
            sa.metadata
                .namespace
                .as_deref()
                .map(ObjectRef::<Namespace>::new)
        },
    );
    workqueue::run(
        names::SERVICEACCOUNT,
        controller,
        reconcile,
        error_policy,
        ctx,
    )
    .await;
}

fn error_policy(ns: Arc<Namespace>, error: &Error, ctx: Arc<Context>) -> Action {
    let delay = ctx.backoffs.next(&ns.name_any());
    tracing::debug!(namespace = %ns.name_any(), "serviceaccount sync failed: {error}; retrying in {delay:?}");
    Action::requeue(delay)
}

/// A namespace that is going away gets nothing new (the API server would refuse it anyway).
fn is_active(ns: &Namespace) -> bool {
    ns.metadata.deletion_timestamp.is_none()
        && ns.status.as_ref().and_then(|s| s.phase.as_deref()) != Some("Terminating")
}

async fn reconcile(ns: Arc<Namespace>, ctx: Arc<Context>) -> Result<Action, Error> {
    if !is_active(&ns) {
        return Ok(Action::await_change());
    }
    let name = ns.name_any();
    let api: Api<ServiceAccount> = Api::namespaced(ctx.client.clone(), &name);
    let read: Api<ServiceAccount> = Api::namespaced(ctx.informers.clone(), &name);
    for account in DEFAULT_ACCOUNTS {
        if read.get_opt(account).await?.is_some() {
            continue;
        }
        let sa = ServiceAccount {
            metadata: ObjectMeta {
                name: Some((*account).to_string()),
                namespace: Some(name.clone()),
                ..ObjectMeta::default()
            },
            ..ServiceAccount::default()
        };
        match api.create(&PostParams::default(), &sa).await {
            Ok(_) => {}
            // Created meanwhile, or the namespace started terminating: both fine.
            Err(kube::Error::Api(e)) if e.code == 409 || e.code == 403 => {}
            Err(e) => return Err(e.into()),
        }
    }
    ctx.backoffs.reset(&name);
    Ok(Action::await_change())
}
