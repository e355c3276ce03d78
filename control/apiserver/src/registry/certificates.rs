//! certificates.k8s.io: CertificateSigningRequests — field selectors on spec.signerName and the
//! printer. Not served yet: the whole-API work adds its line to `resources.rs`.

use crate::registry::Strategy;
use crate::table::prelude::*;

pub struct CertificateSigningRequests;

pub static CERTIFICATE_SIGNING_REQUESTS: CertificateSigningRequests = CertificateSigningRequests;

impl Strategy for CertificateSigningRequests {
    fn selectable_fields(&self) -> &'static [&'static str] {
        &["spec.signerName"]
    }

    fn printer(&self) -> &'static Printer {
        &CERTIFICATE_SIGNING_REQUEST_PRINTER
    }
}

// ---------------------------------------------------------------- table

pub const CERTIFICATE_SIGNING_REQUEST_COLUMNS: &[Column] = &[
    NAME,
    AGE,
    col("SignerName", "string", "Requested signer for the request."),
    col("Requestor", "string", "The user that created the request."),
    col(
        "RequestedDuration",
        "string",
        "The requested duration of validity of the issued certificate.",
    ),
    col("Condition", "string", "Conditions applied to the request."),
];

pub static CERTIFICATE_SIGNING_REQUEST_PRINTER: Printer = Printer::new(
    CERTIFICATE_SIGNING_REQUEST_COLUMNS,
    certificate_signing_request_cells,
);

fn certificate_signing_request_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    let signer = non_empty_or(text(obj, &["spec", "signerName"]), "<none>");
    let requested_duration = match opt_integer(obj, &["spec", "expirationSeconds"]) {
        Some(seconds) => human_duration_seconds(seconds),
        None => "<none>".to_string(),
    };
    vec![
        name(obj),
        age(obj, now).into(),
        signer.into(),
        text(obj, &["spec", "username"]).into(),
        requested_duration.into(),
        csr_condition(obj).into(),
    ]
}

/// "Approved,Issued", "Denied", "Pending", …: precedence Denied, Approved, Pending.
fn csr_condition(obj: &Value) -> String {
    let conditions = list(obj, &["status", "conditions"]);
    let has = |t: &str| conditions.iter().any(|c| text(c, &["type"]) == t);
    let mut status = if has("Denied") {
        "Denied".to_string()
    } else if has("Approved") {
        "Approved".to_string()
    } else {
        "Pending".to_string()
    };
    if has("Failed") {
        status.push_str(",Failed");
    }
    if !text(obj, &["status", "certificate"]).is_empty() {
        status.push_str(",Issued");
    }
    status
}
