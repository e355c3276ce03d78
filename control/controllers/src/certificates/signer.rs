//! The CSR signer (upstream `pkg/controller/certificates/signer`, kube-controller-manager's
//! csrsigning controllers): an approved, not failed, not yet issued CertificateSigningRequest for
//! `kubernetes.io/kube-apiserver-client`, `…/kube-apiserver-client-kubelet`,
//! `…/kubelet-serving` (or the legacy `…/legacy-unknown`) is checked against its signer's rules
//! (`request::validate_for_signer`): a request that breaks them gets the condition
//! `Failed` (reason `SignerValidationFailure`); a valid one is signed by the cluster CA
//! (`--cluster-signing-cert-file`/`--cluster-signing-key-file`) for `spec.expirationSeconds`
//! (at least 10 minutes) capped by `--cluster-signing-duration`, and the certificate is
//! written to `status.certificate` through the `status` subresource.
//!
//! Upstream reloads the CA files when they change; this one reads them at start.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::certificates::v1::{
    CertificateSigningRequest, CertificateSigningRequestCondition, CertificateSigningRequestStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::ByteString;
use kube::api::{Api, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::{Client, ResourceExt};

use super::authority::{self, Authority};
use super::request;
use crate::backoff::Backoffs;
use crate::workqueue::{self, names};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("API request failed: {0}")]
    Kube(#[from] kube::Error),
    #[error("unable to parse csr {0:?}: {1}")]
    Parse(String, String),
    #[error("error auto signing csr: {0}")]
    Sign(String),
}

/// What the signer does with a request.
#[derive(Debug, PartialEq)]
pub enum Decision {
    /// Not approved, failed, issued, or another signer's.
    Ignore,
    /// Invalid for its signer: mark it Failed with this message.
    Fail(String),
    /// Issue this PEM certificate.
    Issue(String),
}

/// The signer's decision on `csr` at `now` (Unix seconds).
pub fn decide(
    csr: &CertificateSigningRequest,
    authority: &Authority,
    max_duration: Duration,
    now: i64,
) -> Result<Decision, Error> {
    if super::is_issued(csr) || !super::is_approved(csr) || super::has_true_condition(csr, "Failed")
    {
        return Ok(Decision::Ignore);
    }
    let spec = &csr.spec;
    if !request::SIGNERS.contains(&spec.signer_name.as_str()) {
        return Ok(Decision::Ignore);
    }
    let parsed = request::parse(&spec.request.0).map_err(|e| Error::Parse(csr.name_any(), e))?;
    let usages = spec.usages.clone().unwrap_or_default();
    match request::validate_for_signer(&spec.signer_name, &parsed, &usages) {
        None => return Ok(Decision::Ignore),
        Some(Err(message)) => return Ok(Decision::Fail(message)),
        Some(Ok(())) => {}
    }
    let ttl = authority::duration(spec.expiration_seconds, max_duration);
    let der = authority
        .sign(&parsed, &usages, ttl, now)
        .map_err(Error::Sign)?;
    Ok(Decision::Issue(authority::pem(&der)))
}

struct Context {
    client: Client,
    authority: Authority,
    max_duration: Duration,
    backoffs: Backoffs,
}

/// Runs the signer with `authority` and `--cluster-signing-duration` `max_duration`.
pub async fn run(client: Client, authority: Authority, max_duration: Duration) {
    let ctx = Arc::new(Context {
        client: client.clone(),
        authority,
        max_duration,
        backoffs: Backoffs::default(),
    });
    let controller = Controller::new(
        Api::<CertificateSigningRequest>::all(client),
        watcher::Config::default(),
    );
    workqueue::run(names::CERTIFICATE, controller, reconcile, error_policy, ctx).await;
}

fn error_policy(csr: Arc<CertificateSigningRequest>, error: &Error, ctx: Arc<Context>) -> Action {
    let delay = ctx.backoffs.next(&csr.name_any());
    tracing::warn!(csr = %csr.name_any(), "signing failed: {error}; retrying in {delay:?}");
    Action::requeue(delay)
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

async fn reconcile(
    csr: Arc<CertificateSigningRequest>,
    ctx: Arc<Context>,
) -> Result<Action, Error> {
    let decision = decide(&csr, &ctx.authority, ctx.max_duration, now())?;
    let mut updated = (*csr).clone();
    let status = updated
        .status
        .get_or_insert_with(CertificateSigningRequestStatus::default);
    match decision {
        Decision::Ignore => return Ok(Action::await_change()),
        Decision::Fail(message) => {
            tracing::info!(csr = %csr.name_any(), "request is invalid for its signer: {message}");
            status.conditions.get_or_insert_with(Vec::new).push(
                CertificateSigningRequestCondition {
                    type_: "Failed".into(),
                    status: "True".into(),
                    reason: Some("SignerValidationFailure".into()),
                    message: Some(message),
                    last_update_time: Some(Time(jiff::Timestamp::now())),
                    ..Default::default()
                },
            );
        }
        Decision::Issue(pem) => {
            status.certificate = Some(ByteString(pem.into_bytes()));
        }
    }
    let api: Api<CertificateSigningRequest> = Api::all(ctx.client.clone());
    api.replace_status(&csr.name_any(), &PostParams::default(), &updated)
        .await?;
    ctx.backoffs.reset(&csr.name_any());
    Ok(Action::await_change())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::certificates::request::tests::csr as pem_request;
    use k8s_openapi::api::certificates::v1::CertificateSigningRequestSpec;

    const NOW: i64 = 1_900_000_000;
    const YEAR: Duration = Duration::from_secs(365 * 86400);

    fn authority() -> Authority {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.not_after = rcgen::date_time_ymd(2036, 1, 1);
        let cert = params.self_signed(&key).unwrap();
        Authority::from_pem(&cert.pem(), &key.serialize_pem()).unwrap()
    }

    fn request(
        signer: &str,
        cn: &str,
        usages: &[&str],
        conditions: &[&str],
    ) -> CertificateSigningRequest {
        let (pem, _) = pem_request(cn, Some("system:nodes"), vec![]);
        CertificateSigningRequest {
            metadata: kube::api::ObjectMeta {
                name: Some("csr-1".into()),
                ..Default::default()
            },
            spec: CertificateSigningRequestSpec {
                request: ByteString(pem.into_bytes()),
                signer_name: signer.into(),
                usages: Some(usages.iter().map(|u| u.to_string()).collect()),
                expiration_seconds: Some(3600),
                ..Default::default()
            },
            status: Some(CertificateSigningRequestStatus {
                conditions: Some(
                    conditions
                        .iter()
                        .map(|c| CertificateSigningRequestCondition {
                            type_: c.to_string(),
                            status: "True".into(),
                            ..Default::default()
                        })
                        .collect(),
                ),
                certificate: None,
            }),
        }
    }

    const KUBELET: &str = request::KUBE_APISERVER_CLIENT_KUBELET;
    const CLIENT_USAGES: &[&str] = &["digital signature", "client auth"];

    #[test]
    fn approved_valid_requests_are_issued() {
        let ca = authority();
        let csr = request(KUBELET, "system:node:w", CLIENT_USAGES, &["Approved"]);
        let Decision::Issue(pem) = decide(&csr, &ca, YEAR, NOW).unwrap() else {
            panic!("not issued");
        };
        let (_, block) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).unwrap();
        let (_, cert) = x509_parser::parse_x509_certificate(&block.contents).unwrap();
        // expirationSeconds: 3600 (short-lived: not backdated at the end).
        assert_eq!(cert.validity().not_after.timestamp(), NOW + 3600);
    }

    #[test]
    fn unapproved_denied_failed_issued_or_foreign_requests_are_ignored() {
        let ca = authority();
        for conditions in [
            &[][..],
            &["Denied"],
            &["Approved", "Denied"],
            &["Approved", "Failed"],
        ] {
            let csr = request(KUBELET, "system:node:w", CLIENT_USAGES, conditions);
            assert_eq!(decide(&csr, &ca, YEAR, NOW).unwrap(), Decision::Ignore);
        }
        let csr = request(
            "example.com/mine",
            "system:node:w",
            CLIENT_USAGES,
            &["Approved"],
        );
        assert_eq!(decide(&csr, &ca, YEAR, NOW).unwrap(), Decision::Ignore);
        let mut issued = request(KUBELET, "system:node:w", CLIENT_USAGES, &["Approved"]);
        issued.status.as_mut().unwrap().certificate = Some(ByteString(b"x".to_vec()));
        assert_eq!(decide(&issued, &ca, YEAR, NOW).unwrap(), Decision::Ignore);
    }

    #[test]
    fn invalid_requests_fail() {
        let ca = authority();
        let csr = request(KUBELET, "jane", CLIENT_USAGES, &["Approved"]);
        assert_eq!(
            decide(&csr, &ca, YEAR, NOW).unwrap(),
            Decision::Fail("subject common name does not begin with system:node:".into())
        );
        let csr = request(KUBELET, "system:node:w", &["client auth"], &["Approved"]);
        assert!(matches!(
            decide(&csr, &ca, YEAR, NOW).unwrap(),
            Decision::Fail(_)
        ));
        let csr = request(
            request::KUBE_APISERVER_CLIENT,
            "jane",
            &["server auth", "client auth"],
            &["Approved"],
        );
        assert_eq!(
            decide(&csr, &ca, YEAR, NOW).unwrap(),
            Decision::Fail("invalid usage for client certificate: server auth".into())
        );
    }
}
