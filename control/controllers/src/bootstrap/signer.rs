//! The bootstrap signer (upstream `pkg/controller/bootstrap/bootstrapsigner.go`): keeps one
//! `jws-kubeconfig-<token id>` in `kube-public/cluster-info` for every bootstrap token that may
//! sign — a Secret `bootstrap-token-<id>` of the bootstrap type whose `token-id` is `<id>`,
//! with `usage-bootstrap-signing: "true"`, not expired and not being deleted — and none for
//! any other, each the detached JWS of the ConfigMap's `kubeconfig`. Synced when the ConfigMap
//! or any bootstrap-token Secret changes, and when the first of the tokens expires.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{Api, ListParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::Client;
use skiff_apiserver::auth::bootstrap_token as token;
use skiff_apiserver::auth::cluster_info;

use crate::backoff::Backoffs;
use crate::workqueue;

/// Upstream's queue name.
pub const QUEUE: &str = "bootstrap_signer_queue";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("API request failed: {0}")]
    Kube(#[from] kube::Error),
}

struct Context {
    /// Reads the Secrets (the controller manager's own client, upstream's informers).
    informers: Client,
    /// Updates cluster-info as `bootstrap-signer` (its Role allows `update`, not `patch`).
    client: Client,
    backoffs: Backoffs,
}

pub async fn run(informers: Client, client: Client) {
    let controller = Controller::new(
        Api::<ConfigMap>::namespaced(informers.clone(), cluster_info::NAMESPACE),
        watcher::Config::default().fields(&format!("metadata.name={}", cluster_info::NAME)),
    )
    .watches(
        Api::<Secret>::namespaced(informers.clone(), token::NAMESPACE),
        watcher::Config::default().fields(&super::secret_type_selector()),
        |_| Some(ObjectRef::new(cluster_info::NAME).within(cluster_info::NAMESPACE)),
    );
    let ctx = Arc::new(Context {
        informers,
        client,
        backoffs: Backoffs::default(),
    });
    workqueue::run(QUEUE, controller, reconcile, error_policy, ctx).await;
}

fn error_policy(_: Arc<ConfigMap>, error: &Error, ctx: Arc<Context>) -> Action {
    let delay = ctx.backoffs.next(cluster_info::NAME);
    tracing::debug!("bootstrap signer: {error}; retrying in {delay:?}");
    Action::requeue(delay)
}

/// A token that may sign: (id, secret, expiry).
fn signing_token(secret: &Secret) -> Option<(String, String, Option<jiff::Timestamp>)> {
    if secret.type_.as_deref() != Some(token::SECRET_TYPE)
        || secret.metadata.deletion_timestamp.is_some()
        || super::data(secret, token::USAGE_SIGNING_KEY).as_deref() != Some("true")
    {
        return None;
    }
    let id = super::data(secret, token::TOKEN_ID_KEY)?;
    let value = super::data(secret, token::TOKEN_SECRET_KEY)?;
    let full = format!("{id}.{value}");
    token::parse_token(&full)?;
    if secret.metadata.name.as_deref() != Some(&format!("{}{id}", token::SECRET_PREFIX)) {
        return None;
    }
    let expires = super::expires(secret);
    if expires.is_some_and(|t| t <= jiff::Timestamp::now()) {
        return None;
    }
    Some((id, value, expires))
}

/// `data` with exactly the signatures `tokens` make of its kubeconfig.
fn signed(
    data: &BTreeMap<String, String>,
    tokens: &[(String, String, Option<jiff::Timestamp>)],
) -> BTreeMap<String, String> {
    let mut out: BTreeMap<String, String> = data
        .iter()
        .filter(|(k, _)| !k.starts_with(cluster_info::SIGNATURE_PREFIX))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    if let Some(content) = data.get(cluster_info::KUBECONFIG_KEY) {
        for (id, secret, _) in tokens {
            out.insert(
                format!("{}{id}", cluster_info::SIGNATURE_PREFIX),
                cluster_info::detached_signature(content, id, secret),
            );
        }
    }
    out
}

async fn reconcile(cm: Arc<ConfigMap>, ctx: Arc<Context>) -> Result<Action, Error> {
    let secrets = Api::<Secret>::namespaced(ctx.informers.clone(), token::NAMESPACE)
        .list(&ListParams::default().fields(&super::secret_type_selector()))
        .await?;
    let tokens: Vec<_> = secrets.items.iter().filter_map(signing_token).collect();
    let data = cm.data.clone().unwrap_or_default();
    let want = signed(&data, &tokens);
    if want != data {
        let mut updated = (*cm).clone();
        updated.data = Some(want);
        match Api::<ConfigMap>::namespaced(ctx.client.clone(), cluster_info::NAMESPACE)
            .replace(cluster_info::NAME, &PostParams::default(), &updated)
            .await
        {
            Ok(_) => {}
            // Changed meanwhile: the watch brings the new one.
            Err(kube::Error::Api(e)) if e.code == 409 => {}
            Err(e) => return Err(e.into()),
        }
    }
    ctx.backoffs.reset(cluster_info::NAME);
    // The first expiry takes a signature away.
    let now = jiff::Timestamp::now();
    let next = tokens
        .iter()
        .filter_map(|t| t.2)
        .map(|t| t.duration_since(now))
        .min();
    Ok(match next.and_then(|d| Duration::try_from(d).ok()) {
        Some(d) => Action::requeue(d + Duration::from_secs(1)),
        None => Action::await_change(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::ByteString;

    fn secret(id: &str, value: &str, signing: &str, expiration: Option<&str>) -> Secret {
        let mut data = BTreeMap::from([
            (token::TOKEN_ID_KEY.to_string(), ByteString(id.into())),
            (
                token::TOKEN_SECRET_KEY.to_string(),
                ByteString(value.into()),
            ),
            (
                token::USAGE_SIGNING_KEY.to_string(),
                ByteString(signing.into()),
            ),
        ]);
        if let Some(e) = expiration {
            data.insert(token::EXPIRATION_KEY.into(), ByteString(e.into()));
        }
        Secret {
            metadata: kube::api::ObjectMeta {
                name: Some(format!("{}{id}", token::SECRET_PREFIX)),
                ..Default::default()
            },
            type_: Some(token::SECRET_TYPE.into()),
            data: Some(data),
            ..Default::default()
        }
    }

    #[test]
    fn only_valid_signing_tokens_sign() {
        assert!(signing_token(&secret("abcdef", "0123456789abcdef", "true", None)).is_some());
        assert!(signing_token(&secret("abcdef", "0123456789abcdef", "false", None)).is_none());
        assert!(signing_token(&secret(
            "abcdef",
            "0123456789abcdef",
            "true",
            Some("2001-01-01T00:00:00Z")
        ))
        .is_none());
        assert!(
            signing_token(&secret("abcdef", "0123456789abcdef", "true", Some("soon"))).is_none(),
            "an unparseable expiration counts as expired"
        );
        assert!(signing_token(&secret(
            "abcdef",
            "0123456789abcdef",
            "true",
            Some("2999-01-01T00:00:00Z")
        ))
        .is_some());
        let mut renamed = secret("abcdef", "0123456789abcdef", "true", None);
        renamed.metadata.name = Some("bootstrap-token-zzzzzz".into());
        assert!(signing_token(&renamed).is_none());
        assert!(signing_token(&secret("ABCDEF", "0123456789abcdef", "true", None)).is_none());
    }

    #[test]
    fn signatures_follow_the_tokens() {
        let data = BTreeMap::from([
            ("kubeconfig".to_string(), "content".to_string()),
            ("jws-kubeconfig-gone00".to_string(), "stale".to_string()),
        ]);
        let tokens = vec![("abcdef".to_string(), "0123456789abcdef".to_string(), None)];
        let out = signed(&data, &tokens);
        assert_eq!(
            out.keys().collect::<Vec<_>>(),
            ["jws-kubeconfig-abcdef", "kubeconfig"]
        );
        assert!(cluster_info::signature_is_valid(
            &out["jws-kubeconfig-abcdef"],
            "content",
            "abcdef",
            "0123456789abcdef"
        ));
        assert_eq!(
            signed(&out, &tokens),
            out,
            "nothing to change the second time"
        );
    }
}
