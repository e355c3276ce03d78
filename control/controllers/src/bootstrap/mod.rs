//! The bootstrap-token controllers kubeadm turns on in kube-controller-manager
//! (`--controllers=*,bootstrapsigner,tokencleaner`; upstream's `pkg/controller/bootstrap`):
//!
//! - `signer.rs` (bootstrap-signer): signs `kube-public/cluster-info` with every bootstrap
//!   token allowed to (`usage-bootstrap-signing: "true"`, not expired), so a node given such a
//!   token can trust the cluster's CA before it has any credential (token discovery,
//!   `skiff_apiserver::auth::cluster_info`);
//! - `cleaner.rs` (token-cleaner): deletes bootstrap-token Secrets once their `expiration` has
//!   passed, so an expired token neither authenticates nor signs and does not pile up.
//!
//! Both act as upstream's service accounts (`bootstrap-signer`, `token-cleaner`), bound by
//! upstream's policy to Roles in kube-system (secrets) and kube-public (cluster-info).

pub mod cleaner;
pub mod signer;

use k8s_openapi::api::core::v1::Secret;
use skiff_apiserver::auth::bootstrap_token as token;

/// A string field of a Secret's data (`getSecretString`).
fn data(secret: &Secret, key: &str) -> Option<String> {
    let value = secret.data.as_ref()?.get(key)?;
    String::from_utf8(value.0.clone()).ok()
}

/// When the token expires: `None` if it never does; an unparseable `expiration` counts as
/// already expired, as upstream's `isSecretExpired` treats it.
fn expires(secret: &Secret) -> Option<jiff::Timestamp> {
    let text = data(secret, token::EXPIRATION_KEY)?;
    Some(text.parse().unwrap_or(jiff::Timestamp::MIN))
}

/// The field selector of bootstrap-token Secrets.
fn secret_type_selector() -> String {
    format!("type={}", token::SECRET_TYPE)
}
