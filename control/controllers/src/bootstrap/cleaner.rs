//! The token cleaner (upstream `pkg/controller/bootstrap/tokencleaner.go`): a bootstrap-token
//! Secret past its `expiration` is deleted (with its uid as precondition, so a Secret made
//! again under the name is not); one that expires later is looked at again then.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, DeleteParams, Preconditions};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use skiff_apiserver::auth::bootstrap_token as token;

use crate::backoff::Backoffs;
use crate::workqueue;

/// Upstream's queue name.
pub const QUEUE: &str = "token_cleaner";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("API request failed: {0}")]
    Kube(#[from] kube::Error),
}

struct Context {
    /// Deletes as `token-cleaner`.
    client: Client,
    backoffs: Backoffs,
}

/// `informers` watches (the controller manager's own client); `client` deletes.
pub async fn run(informers: Client, client: Client) {
    let controller = Controller::new(
        Api::<Secret>::namespaced(informers, token::NAMESPACE),
        watcher::Config::default().fields(&super::secret_type_selector()),
    );
    let ctx = Arc::new(Context {
        client,
        backoffs: Backoffs::default(),
    });
    workqueue::run(QUEUE, controller, reconcile, error_policy, ctx).await;
}

fn error_policy(secret: Arc<Secret>, error: &Error, ctx: Arc<Context>) -> Action {
    let delay = ctx.backoffs.next(&secret.name_any());
    tracing::debug!(secret = %secret.name_any(), "token cleaner: {error}; retrying in {delay:?}");
    Action::requeue(delay)
}

async fn reconcile(secret: Arc<Secret>, ctx: Arc<Context>) -> Result<Action, Error> {
    let name = secret.name_any();
    let Some(expires) = super::expires(&secret) else {
        return Ok(Action::await_change());
    };
    let left = expires.duration_since(jiff::Timestamp::now());
    if left.is_positive() {
        // Looked at again when it expires (and a second later, for clock granularity).
        let left = Duration::try_from(left).unwrap_or(Duration::from_secs(3600));
        return Ok(Action::requeue(left + Duration::from_secs(1)));
    }
    if secret.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    tracing::info!(secret = %name, "deleting the expired bootstrap token");
    let params = DeleteParams {
        preconditions: Some(Preconditions {
            uid: secret.metadata.uid.clone(),
            resource_version: None,
        }),
        ..DeleteParams::default()
    };
    match Api::<Secret>::namespaced(ctx.client.clone(), token::NAMESPACE)
        .delete(&name, &params)
        .await
    {
        Ok(_) => {}
        // Gone already, or another Secret now has the name.
        Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => {}
        Err(e) => return Err(e.into()),
    }
    ctx.backoffs.reset(&name);
    Ok(Action::await_change())
}
