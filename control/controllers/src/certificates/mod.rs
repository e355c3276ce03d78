//! The certificates controllers (upstream `pkg/controller/certificates`): the signer
//! (`signer.rs`, csrsigning: issues the approved CertificateSigningRequests of the built-in
//! signers with the cluster CA) and the approver (`approver.rs`, csrapproving: approves kubelet
//! client certificates whose requester may ask for them, by SubjectAccessReview). Together with
//! bootstrap tokens they let a node join: its kubelet asks for `system:node:<name>` with the
//! token, the approver approves, the signer issues, and the kubelet goes on with its own
//! certificate. The PKCS#10 parsing and per-signer rules are in `request.rs`, the CA and the
//! certificate it writes in `authority.rs`. The root CA publisher is `rootcacert.rs`.

pub mod approver;
pub mod authority;
pub mod request;
pub mod signer;

use k8s_openapi::api::certificates::v1::CertificateSigningRequest;

/// `GetCertApprovalCondition`: (approved, denied), whatever the conditions' status.
pub fn approval(csr: &CertificateSigningRequest) -> (bool, bool) {
    let conditions = csr
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_deref())
        .unwrap_or_default();
    (
        conditions.iter().any(|c| c.type_ == "Approved"),
        conditions.iter().any(|c| c.type_ == "Denied"),
    )
}

/// `IsCertificateRequestApproved`.
pub fn is_approved(csr: &CertificateSigningRequest) -> bool {
    let (approved, denied) = approval(csr);
    approved && !denied
}

/// `HasTrueCondition`: a condition of `kind` whose status is True (or empty).
pub fn has_true_condition(csr: &CertificateSigningRequest, kind: &str) -> bool {
    csr.status
        .as_ref()
        .and_then(|s| s.conditions.as_deref())
        .unwrap_or_default()
        .iter()
        .any(|c| c.type_ == kind && (c.status.is_empty() || c.status == "True"))
}

/// Whether the request was issued (`status.certificate` set): nothing left to do.
pub fn is_issued(csr: &CertificateSigningRequest) -> bool {
    csr.status
        .as_ref()
        .and_then(|s| s.certificate.as_ref())
        .is_some_and(|c| !c.0.is_empty())
}
