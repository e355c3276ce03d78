//! The CSR approver (upstream `pkg/controller/certificates/approver`, csrapproving): a pending,
//! not yet issued request for `kubernetes.io/kube-apiserver-client-kubelet` that is a valid
//! kubelet client request (`request::validate_kubelet_client`: CN `system:node:<name>`, O
//! `system:nodes`, digital signature + client auth) is approved when its requester may create
//! `certificatesigningrequests/selfnodeclient` (renewal: the requester is the node the
//! certificate names) or `certificatesigningrequests/nodeclient` (a first certificate: usually
//! a bootstrap token's user), asked through a SubjectAccessReview with the requester's
//! username, uid, groups and extra as the API server recorded them. The approval is the
//! condition Approved, reason `AutoApproved`, through the `approval` subresource. A recognised
//! request whose requester may not is retried with backoff (the permission may be granted
//! later), as upstream requeues it; anything else is left to people (`kubectl certificate
//! approve`).

use std::sync::Arc;

use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use k8s_openapi::api::certificates::v1::{
    CertificateSigningRequest, CertificateSigningRequestCondition, CertificateSigningRequestStatus,
};
use kube::api::{Api, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::{Client, ResourceExt};

use super::request::{self, Request};
use crate::backoff::Backoffs;
use crate::workqueue::{self, names};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("API request failed: {0}")]
    Kube(#[from] kube::Error),
    #[error("unable to parse csr {0:?}: {1}")]
    Parse(String, String),
    #[error("recognized csr {0:?} as {1:?} but subject access review was not approved")]
    NotAllowed(String, Vec<&'static str>),
}

/// A kind of request the approver knows, and the permission its requester needs.
#[derive(Debug, PartialEq)]
pub struct Recognizer {
    /// The `certificatesigningrequests` subresource the requester must be allowed to create.
    pub subresource: &'static str,
    pub message: &'static str,
}

pub const SELF_NODE_CLIENT: Recognizer = Recognizer {
    subresource: "selfnodeclient",
    message: "Auto approving self kubelet client certificate after SubjectAccessReview.",
};

pub const NODE_CLIENT: Recognizer = Recognizer {
    subresource: "nodeclient",
    message: "Auto approving kubelet client certificate after SubjectAccessReview.",
};

fn is_node_client(csr: &CertificateSigningRequest, parsed: &Request) -> bool {
    csr.spec.signer_name == request::KUBE_APISERVER_CLIENT_KUBELET
        && request::validate_kubelet_client(parsed, csr.spec.usages.as_deref().unwrap_or_default())
            .is_ok()
}

/// The recognizers that match `csr`, in the order they are tried (self first, as upstream).
pub fn recognize(csr: &CertificateSigningRequest, parsed: &Request) -> Vec<&'static Recognizer> {
    let mut matched = Vec::new();
    if !is_node_client(csr, parsed) {
        return matched;
    }
    if csr.spec.username.as_deref() == Some(parsed.subject.common_name.as_str()) {
        matched.push(&SELF_NODE_CLIENT);
    }
    matched.push(&NODE_CLIENT);
    matched
}

/// Whether the approver has anything to decide on `csr`: not issued, neither approved nor
/// denied.
pub fn is_pending(csr: &CertificateSigningRequest) -> bool {
    let (approved, denied) = super::approval(csr);
    !super::is_issued(csr) && !approved && !denied
}

/// The SubjectAccessReview asking whether the requester of `csr` may `create`
/// `certificatesigningrequests/<subresource>`.
pub fn access_review(csr: &CertificateSigningRequest, subresource: &str) -> SubjectAccessReview {
    SubjectAccessReview {
        spec: SubjectAccessReviewSpec {
            user: csr.spec.username.clone(),
            uid: csr.spec.uid.clone(),
            groups: csr.spec.groups.clone(),
            extra: csr.spec.extra.clone(),
            resource_attributes: Some(ResourceAttributes {
                group: Some("certificates.k8s.io".into()),
                resource: Some("certificatesigningrequests".into()),
                verb: Some("create".into()),
                subresource: Some(subresource.into()),
                version: Some("*".into()),
                ..Default::default()
            }),
            ..Default::default()
        },
        ..Default::default()
    }
}

/// `csr` with the Approved condition of `recognizer` added.
pub fn approved(
    csr: &CertificateSigningRequest,
    recognizer: &Recognizer,
) -> CertificateSigningRequest {
    let mut csr = csr.clone();
    csr.status
        .get_or_insert_with(CertificateSigningRequestStatus::default)
        .conditions
        .get_or_insert_with(Vec::new)
        .push(CertificateSigningRequestCondition {
            type_: "Approved".into(),
            status: "True".into(),
            reason: Some("AutoApproved".into()),
            message: Some(recognizer.message.into()),
            ..Default::default()
        });
    csr
}

struct Context {
    client: Client,
    backoffs: Backoffs,
}

pub async fn run(client: Client) {
    let ctx = Arc::new(Context {
        client: client.clone(),
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
    match error {
        // Usually a user's mistake (upstream's IgnorableError): quiet.
        Error::NotAllowed(..) => tracing::debug!("{error}; retrying in {delay:?}"),
        _ => {
            tracing::warn!(csr = %csr.name_any(), "approving failed: {error}; retrying in {delay:?}")
        }
    }
    Action::requeue(delay)
}

async fn reconcile(
    csr: Arc<CertificateSigningRequest>,
    ctx: Arc<Context>,
) -> Result<Action, Error> {
    if !is_pending(&csr) {
        return Ok(Action::await_change());
    }
    let name = csr.name_any();
    let parsed = request::parse(&csr.spec.request.0).map_err(|e| Error::Parse(name.clone(), e))?;
    let mut tried = Vec::new();
    for recognizer in recognize(&csr, &parsed) {
        tried.push(recognizer.subresource);
        let review = Api::<SubjectAccessReview>::all(ctx.client.clone())
            .create(
                &PostParams::default(),
                &access_review(&csr, recognizer.subresource),
            )
            .await?;
        if review.status.is_some_and(|s| s.allowed) {
            Api::<CertificateSigningRequest>::all(ctx.client.clone())
                .replace_subresource::<CertificateSigningRequest>(
                    "approval",
                    &name,
                    &PostParams::default(),
                    &approved(&csr, recognizer),
                )
                .await?;
            tracing::info!(csr = %name, "{}", recognizer.message);
            ctx.backoffs.reset(&name);
            return Ok(Action::await_change());
        }
    }
    if tried.is_empty() {
        return Ok(Action::await_change());
    }
    Err(Error::NotAllowed(name, tried))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::certificates::request::tests::csr as pem_request;
    use k8s_openapi::api::certificates::v1::CertificateSigningRequestSpec;
    use k8s_openapi::ByteString;

    fn csr(
        signer: &str,
        cn: &str,
        org: &str,
        username: &str,
        usages: &[&str],
    ) -> (CertificateSigningRequest, Request) {
        let (pem, _) = pem_request(cn, Some(org), vec![]);
        let parsed = request::parse(pem.as_bytes()).unwrap();
        let object = CertificateSigningRequest {
            spec: CertificateSigningRequestSpec {
                request: ByteString(pem.into_bytes()),
                signer_name: signer.into(),
                usages: Some(usages.iter().map(|u| u.to_string()).collect()),
                username: Some(username.into()),
                groups: Some(vec![
                    "system:bootstrappers".into(),
                    "system:authenticated".into(),
                ]),
                ..Default::default()
            },
            ..Default::default()
        };
        (object, parsed)
    }

    const KUBELET: &str = request::KUBE_APISERVER_CLIENT_KUBELET;
    const USAGES: &[&str] = &["digital signature", "client auth"];

    #[test]
    fn bootstrap_requests_need_nodeclient() {
        let (object, parsed) = csr(
            KUBELET,
            "system:node:w",
            "system:nodes",
            "system:bootstrap:abcdef",
            USAGES,
        );
        assert_eq!(recognize(&object, &parsed), [&NODE_CLIENT]);
        let review = access_review(&object, "nodeclient");
        let attrs = review.spec.resource_attributes.as_ref().unwrap();
        assert_eq!(review.spec.user.as_deref(), Some("system:bootstrap:abcdef"));
        assert_eq!(
            review.spec.groups.as_ref().unwrap()[0],
            "system:bootstrappers"
        );
        assert_eq!(
            (
                attrs.group.as_deref(),
                attrs.resource.as_deref(),
                attrs.verb.as_deref(),
                attrs.subresource.as_deref()
            ),
            (
                Some("certificates.k8s.io"),
                Some("certificatesigningrequests"),
                Some("create"),
                Some("nodeclient")
            )
        );
    }

    #[test]
    fn renewals_by_the_node_try_selfnodeclient_first() {
        let (object, parsed) = csr(
            KUBELET,
            "system:node:w",
            "system:nodes",
            "system:node:w",
            USAGES,
        );
        assert_eq!(
            recognize(&object, &parsed),
            [&SELF_NODE_CLIENT, &NODE_CLIENT]
        );
    }

    #[test]
    fn other_requests_are_not_recognized() {
        for (signer, cn, org, usages) in [
            (
                request::KUBE_APISERVER_CLIENT,
                "system:node:w",
                "system:nodes",
                USAGES,
            ),
            (KUBELET, "jane", "system:nodes", USAGES),
            (KUBELET, "system:node:w", "system:masters", USAGES),
            (
                KUBELET,
                "system:node:w",
                "system:nodes",
                &["client auth"][..],
            ),
        ] {
            let (object, parsed) = csr(signer, cn, org, "system:bootstrap:abcdef", usages);
            assert!(
                recognize(&object, &parsed).is_empty(),
                "{signer} {cn} {org} {usages:?}"
            );
        }
    }

    #[test]
    fn approval_condition_as_upstream() {
        let (object, _) = csr(
            KUBELET,
            "system:node:w",
            "system:nodes",
            "system:bootstrap:abcdef",
            USAGES,
        );
        assert!(is_pending(&object));
        let done = approved(&object, &NODE_CLIENT);
        let condition = &done.status.as_ref().unwrap().conditions.as_ref().unwrap()[0];
        assert_eq!(condition.type_, "Approved");
        assert_eq!(condition.status, "True");
        assert_eq!(condition.reason.as_deref(), Some("AutoApproved"));
        assert_eq!(
            condition.message.as_deref(),
            Some("Auto approving kubelet client certificate after SubjectAccessReview.")
        );
        assert!(!is_pending(&done));
    }
}
