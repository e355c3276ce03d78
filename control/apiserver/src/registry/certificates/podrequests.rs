//! PodCertificateRequests (`pkg/registry/certificates/podcertificaterequest`): a kubelet asks a
//! signer for a certificate for one of its pods' projected volumes. The spec names the pod, its
//! ServiceAccount and node (with uids), the signer and the public key with its proof of
//! possession, and never changes; the status (conditions, the issued chain) is the signer's.
//!
//! Not yet as upstream: the proof of possession is not verified, the pod/node/ServiceAccount
//! identities are not cross-checked against the requesting node, and no kubelet asks for these
//! yet (projected podCertificate volumes are not built).

use serde_json::json;

use crate::error::FieldError;
use crate::registry::fields::immutable;
use crate::registry::Strategy;
use crate::table::prelude::*;

use super::check_signer_name;

pub struct PodCertificateRequests;

pub static POD_CERTIFICATE_REQUESTS: PodCertificateRequests = PodCertificateRequests;

/// Spec fields every request must carry.
const REQUIRED: &[&str] = &[
    "podName",
    "podUID",
    "serviceAccountName",
    "serviceAccountUID",
    "nodeName",
    "nodeUID",
    "pkixPublicKey",
    "proofOfPossession",
];

impl Strategy for PodCertificateRequests {
    fn validate(&self, object: &Value, errors: &mut Vec<FieldError>) {
        let spec = &object["spec"];
        check_signer_name(
            "spec.signerName",
            spec["signerName"].as_str().unwrap_or_default(),
            errors,
        );
        for field in REQUIRED {
            if spec[*field].as_str().is_none_or(str::is_empty) {
                errors.push(FieldError::required(format!("spec.{field}"), ""));
            }
        }
        if let Some(seconds) = spec["maxExpirationSeconds"].as_i64() {
            if !(3600..=91 * 86400).contains(&seconds) {
                errors.push(FieldError::invalid(
                    "spec.maxExpirationSeconds",
                    &json!(seconds),
                    "must be in the range [3600, 7862400]",
                ));
            }
        }
    }

    /// Also the rule of `/status` writes (the default for subresources).
    fn validate_update(&self, old: &Value, new: &Value, errors: &mut Vec<FieldError>) {
        immutable("spec", old.get("spec"), new.get("spec"), errors);
    }

    fn selectable_fields(&self) -> &'static [&'static str] {
        &["spec.signerName", "spec.podName", "spec.nodeName"]
    }

    fn printer(&self) -> &'static Printer {
        &POD_CERTIFICATE_REQUEST_PRINTER
    }
}

// ---------------------------------------------------------------- table

pub const POD_CERTIFICATE_REQUEST_COLUMNS: &[Column] = &[
    NAME,
    col(
        "PodName",
        "string",
        "podName is the name of the pod into which the certificate will be mounted.",
    ),
    col(
        "ServiceAccountName",
        "string",
        "serviceAccountName is the name of the service account the pod is running as.",
    ),
    col(
        "NodeName",
        "string",
        "nodeName is the name of the node the pod is assigned to.",
    ),
    col(
        "SignerName",
        "string",
        "signerName indicates the requested signer.",
    ),
    col(
        "State",
        "string",
        "Is the request Pending, Issued, Denied, or Failed?",
    ),
];

pub static POD_CERTIFICATE_REQUEST_PRINTER: Printer = Printer::new(
    POD_CERTIFICATE_REQUEST_COLUMNS,
    pod_certificate_request_cells,
);

/// The state is the last of Issued, Denied or Failed among the conditions, else Pending.
fn pod_certificate_request_cells(obj: &Value, _now: Timestamp) -> Vec<Value> {
    let mut state = "Pending";
    for c in list(obj, &["status", "conditions"]) {
        match c["type"].as_str() {
            Some("Issued") => state = "Issued",
            Some("Denied") => state = "Denied",
            Some("Failed") => state = "Failed",
            _ => {}
        }
    }
    vec![
        name(obj),
        text(obj, &["spec", "podName"]).into(),
        text(obj, &["spec", "serviceAccountName"]).into(),
        text(obj, &["spec", "nodeName"]).into(),
        text(obj, &["spec", "signerName"]).into(),
        state.into(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn required_fields_and_state() {
        let mut errors = Vec::new();
        POD_CERTIFICATE_REQUESTS.validate(
            &json!({"spec": {"signerName": "example.com/s"}}),
            &mut errors,
        );
        assert_eq!(errors.len(), REQUIRED.len(), "{errors:?}");
        let issued = json!({"metadata": {"name": "r"}, "spec": {"podName": "p"}, "status": {"conditions": [{"type": "Issued", "status": "True"}]}});
        assert_eq!(
            pod_certificate_request_cells(&issued, Timestamp::now())[5],
            json!("Issued")
        );
    }
}
