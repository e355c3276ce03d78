//! The token controller (upstream `pkg/controller/serviceaccount/tokens_controller.go`): a
//! Secret of type `kubernetes.io/service-account-token` annotated
//! `kubernetes.io/service-account.name: <account>` gets the account's legacy token (`token`,
//! signed with `--service-account-private-key-file`), the cluster CA (`ca.crt`, from
//! `--root-ca-file` or the controller manager's kubeconfig) and its namespace (`namespace`),
//! and the account's UID in the annotation `kubernetes.io/service-account.uid`. Such a Secret
//! whose account is gone (or was recreated with another UID) is deleted. The API server accepts
//! these tokens while the Secret holds them (`skiff_apiserver::auth::serviceaccount`).
//!
//! Triggers: a token Secret appearing or changing (a list filtered on `type`), and a
//! ServiceAccount changing or going (mapped to its token Secrets). Without a private key the
//! controller does not run, as upstream's.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Secret, ServiceAccount};
use k8s_openapi::ByteString;
use kube::api::{Api, DeleteParams, PostParams, Preconditions};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use skiff_apiserver::auth::serviceaccount::keys::SigningKey;
use skiff_apiserver::auth::serviceaccount::{legacy_token, Ref};

use crate::backoff::Backoffs;
use crate::workqueue::{self, names};

pub const SECRET_TYPE: &str = "kubernetes.io/service-account-token";
pub const NAME_ANNOTATION: &str = "kubernetes.io/service-account.name";
pub const UID_ANNOTATION: &str = "kubernetes.io/service-account.uid";
pub const TOKEN_KEY: &str = "token";
pub const CA_KEY: &str = "ca.crt";
pub const NAMESPACE_KEY: &str = "namespace";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("API request failed: {0}")]
    Kube(#[from] kube::Error),
    #[error("signing the token: {0}")]
    Sign(String),
}

struct Context {
    client: Client,
    key: Arc<SigningKey>,
    root_ca: String,
    backoffs: Backoffs,
}

pub async fn run(client: Client, key: Arc<SigningKey>, root_ca: String) {
    let ctx = Arc::new(Context {
        client: client.clone(),
        key,
        root_ca,
        backoffs: Backoffs::default(),
    });
    let controller = Controller::new(
        Api::<Secret>::all(client.clone()),
        watcher::Config::default().fields(&format!("type={SECRET_TYPE}")),
    );
    let secrets = controller.store();
    let controller = controller.watches(
        Api::<ServiceAccount>::all(client),
        watcher::Config::default(),
        move |account| {
            let namespace = account.namespace();
            let name = account.name_any();
            secrets
                .state()
                .into_iter()
                .filter(|s| s.namespace() == namespace && account_of(s) == Some(name.as_str()))
                .map(|s| ObjectRef::from_obj(&*s))
                .collect::<Vec<_>>()
        },
    );
    workqueue::run(
        names::SERVICEACCOUNT_TOKENS,
        controller,
        reconcile,
        error_policy,
        ctx,
    )
    .await;
}

fn key_of(secret: &Secret) -> String {
    format!(
        "{}/{}",
        secret.namespace().unwrap_or_default(),
        secret.name_any()
    )
}

fn error_policy(secret: Arc<Secret>, error: &Error, ctx: Arc<Context>) -> Action {
    let delay = ctx.backoffs.next(&key_of(&secret));
    tracing::debug!(secret = %key_of(&secret), "token secret sync failed: {error}; retrying in {delay:?}");
    Action::requeue(delay)
}

fn annotation<'a>(secret: &'a Secret, key: &str) -> Option<&'a str> {
    secret
        .metadata
        .annotations
        .as_ref()?
        .get(key)
        .map(String::as_str)
        .filter(|v| !v.is_empty())
}

/// The account a token Secret belongs to.
fn account_of(secret: &Secret) -> Option<&str> {
    annotation(secret, NAME_ANNOTATION)
}

/// What a Secret lacks (upstream `secretUpdateNeeded`): (ca.crt, namespace, token).
fn needs(secret: &Secret, root_ca: &str) -> (bool, bool, bool) {
    let data = secret.data.as_ref();
    let value = |key: &str| data.and_then(|d| d.get(key)).map(|v| v.0.as_slice());
    let needs_ca = !root_ca.is_empty() && value(CA_KEY) != Some(root_ca.as_bytes());
    let needs_namespace = value(NAMESPACE_KEY).is_none_or(<[u8]>::is_empty);
    let needs_token = value(TOKEN_KEY).is_none_or(<[u8]>::is_empty);
    (needs_ca, needs_namespace, needs_token)
}

/// The Secret filled for `account` (None: nothing to do).
fn filled(
    secret: &Secret,
    account: &ServiceAccount,
    key: &SigningKey,
    root_ca: &str,
) -> Result<Option<Secret>, Error> {
    let (needs_ca, needs_namespace, needs_token) = needs(secret, root_ca);
    if !needs_ca && !needs_namespace && !needs_token {
        return Ok(None);
    }
    let namespace = secret.namespace().unwrap_or_default();
    let mut next = secret.clone();
    let data = next.data.get_or_insert_with(BTreeMap::new);
    if needs_ca {
        data.insert(CA_KEY.into(), ByteString(root_ca.as_bytes().to_vec()));
    }
    if needs_namespace {
        data.insert(
            NAMESPACE_KEY.into(),
            ByteString(namespace.as_bytes().to_vec()),
        );
    }
    let uid = account.metadata.uid.clone().unwrap_or_default();
    if needs_token {
        let token = legacy_token(
            key,
            &namespace,
            &Ref::new(account.name_any(), &uid),
            &secret.name_any(),
        )
        .map_err(|e| Error::Sign(e.to_string()))?;
        data.insert(TOKEN_KEY.into(), ByteString(token.into_bytes()));
    }
    let annotations = next.metadata.annotations.get_or_insert_with(BTreeMap::new);
    annotations.insert(NAME_ANNOTATION.into(), account.name_any());
    annotations.insert(UID_ANNOTATION.into(), uid);
    Ok(Some(next))
}

async fn reconcile(secret: Arc<Secret>, ctx: Arc<Context>) -> Result<Action, Error> {
    let Some(account_name) = account_of(&secret) else {
        return Ok(Action::await_change());
    };
    if secret.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let namespace = secret.namespace().unwrap_or_default();
    let name = secret.name_any();
    let accounts: Api<ServiceAccount> = Api::namespaced(ctx.client.clone(), &namespace);
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &namespace);
    // The account, if it is still the one the Secret was made for.
    let account = accounts.get_opt(account_name).await?.filter(|a| {
        annotation(&secret, UID_ANNOTATION).is_none_or(|uid| a.metadata.uid.as_deref() == Some(uid))
    });
    match account {
        None => {
            let params = DeleteParams {
                preconditions: Some(Preconditions {
                    uid: secret.metadata.uid.clone(),
                    resource_version: None,
                }),
                ..DeleteParams::default()
            };
            match secrets.delete(&name, &params).await {
                Ok(_) => {}
                Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => {}
                Err(e) => return Err(e.into()),
            }
        }
        Some(account) => {
            if let Some(next) = filled(&secret, &account, &ctx.key, &ctx.root_ca)? {
                // Written against the version read: a newer one brings its own event.
                match secrets.replace(&name, &PostParams::default(), &next).await {
                    Ok(_) => {}
                    Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
    }
    ctx.backoffs.reset(&key_of(&secret));
    Ok(Action::await_change())
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    use super::*;

    fn secret(data: &[(&str, &str)]) -> Secret {
        Secret {
            metadata: ObjectMeta {
                name: Some("web-token".into()),
                namespace: Some("ns".into()),
                annotations: Some(BTreeMap::from([(NAME_ANNOTATION.into(), "web".into())])),
                ..ObjectMeta::default()
            },
            type_: Some(SECRET_TYPE.into()),
            data: Some(
                data.iter()
                    .map(|(k, v)| (k.to_string(), ByteString(v.as_bytes().to_vec())))
                    .collect(),
            ),
            ..Secret::default()
        }
    }

    fn account() -> ServiceAccount {
        ServiceAccount {
            metadata: ObjectMeta {
                name: Some("web".into()),
                namespace: Some("ns".into()),
                uid: Some("sa-uid".into()),
                ..ObjectMeta::default()
            },
            ..ServiceAccount::default()
        }
    }

    #[test]
    fn fills_token_ca_and_namespace() {
        let (key, _) = SigningKey::generate().unwrap();
        let next = filled(&secret(&[]), &account(), &key, "CA")
            .unwrap()
            .unwrap();
        let data = next.data.as_ref().unwrap();
        assert_eq!(data[CA_KEY].0, b"CA");
        assert_eq!(data[NAMESPACE_KEY].0, b"ns");
        let token = String::from_utf8(data[TOKEN_KEY].0.clone()).unwrap();
        assert_eq!(token.split('.').count(), 3);
        let annotations = next.metadata.annotations.as_ref().unwrap();
        assert_eq!(annotations[UID_ANNOTATION], "sa-uid");
        // Complete: nothing to do; a changed CA is rewritten, the token kept.
        assert!(filled(&next, &account(), &key, "CA").unwrap().is_none());
        let again = filled(&next, &account(), &key, "CA2").unwrap().unwrap();
        assert_eq!(again.data.as_ref().unwrap()[TOKEN_KEY].0, token.as_bytes());
        // No CA configured: none is required.
        let done = secret(&[("token", "t"), ("namespace", "ns")]);
        assert!(filled(&done, &account(), &key, "").unwrap().is_none());
    }
}
