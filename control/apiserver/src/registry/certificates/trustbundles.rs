//! ClusterTrustBundles (`pkg/registry/certificates/clustertrustbundle`): a set of PEM trust
//! anchors, optionally published by a signer. A bundle with a signer is named
//! `<signer with '/' as ':'>:<suffix>` so that only that signer's bundles carry its prefix; the
//! signer never changes; the bundle holds CERTIFICATE blocks only.

use serde_json::json;

use crate::error::FieldError;
use crate::names::{NameRule, PATH_SEGMENT};
use crate::registry::fields::immutable;
use crate::registry::Strategy;
use crate::table::prelude::*;

use super::{check_certificate, check_signer_name};

pub struct ClusterTrustBundles;

pub static CLUSTER_TRUST_BUNDLES: ClusterTrustBundles = ClusterTrustBundles;

impl Strategy for ClusterTrustBundles {
    fn name_rule(&self) -> NameRule {
        // The signer prefix is checked in `validate`, where the signer is known.
        PATH_SEGMENT
    }

    fn validate(&self, object: &Value, errors: &mut Vec<FieldError>) {
        let name = object
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let signer = object
            .pointer("/spec/signerName")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if signer.is_empty() {
            if name.contains(':') {
                errors.push(FieldError::invalid(
                    "metadata.name",
                    &json!(name),
                    "ClusterTrustBundle without signer name must not have \":\" in its name",
                ));
            }
        } else {
            check_signer_name("spec.signerName", signer, errors);
            let prefix = format!("{}:", signer.replace('/', ":"));
            if !name.starts_with(&prefix) {
                errors.push(FieldError::invalid(
                    "metadata.name",
                    &json!(name),
                    format!("ClusterTrustBundle for signerName {signer} must be named with prefix {prefix}"),
                ));
            }
        }
        let bundle = object
            .pointer("/spec/trustBundle")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if bundle.is_empty() {
            errors.push(FieldError::required("spec.trustBundle", ""));
        } else if let Err(message) = check_certificate(bundle.as_bytes()) {
            errors.push(FieldError::invalid(
                "spec.trustBundle",
                &json!("<value omitted>"),
                message,
            ));
        }
    }

    fn validate_update(&self, old: &Value, new: &Value, errors: &mut Vec<FieldError>) {
        immutable(
            "spec.signerName",
            old.pointer("/spec/signerName"),
            new.pointer("/spec/signerName"),
            errors,
        );
    }

    fn selectable_fields(&self) -> &'static [&'static str] {
        &["spec.signerName"]
    }

    fn printer(&self) -> &'static Printer {
        &CLUSTER_TRUST_BUNDLE_PRINTER
    }
}

// ---------------------------------------------------------------- table

pub const CLUSTER_TRUST_BUNDLE_COLUMNS: &[Column] = &[
    NAME,
    col(
        "SignerName",
        "string",
        "signerName indicates the associated signer, if any.",
    ),
];

pub static CLUSTER_TRUST_BUNDLE_PRINTER: Printer =
    Printer::new(CLUSTER_TRUST_BUNDLE_COLUMNS, cluster_trust_bundle_cells);

fn cluster_trust_bundle_cells(obj: &Value, _now: Timestamp) -> Vec<Value> {
    let signer = text(obj, &["spec", "signerName"]);
    let signer = if signer.is_empty() { "<none>" } else { signer };
    vec![name(obj), signer.into()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signer_names_its_bundles() {
        let bundle = |name: &str, signer: &str| json!({"metadata": {"name": name}, "spec": {"signerName": signer, "trustBundle": "not pem"}});
        let mut errors = Vec::new();
        CLUSTER_TRUST_BUNDLES.validate(&bundle("other", "example.com/signer"), &mut errors);
        assert!(
            errors.iter().any(|e| e
                .message
                .contains("must be named with prefix example.com:signer:")),
            "{errors:?}"
        );
        assert!(
            errors.iter().any(|e| e.field == "spec.trustBundle"),
            "{errors:?}"
        );
        let cells = cluster_trust_bundle_cells(&bundle("x", ""), Timestamp::now());
        assert_eq!(cells[1], json!("<none>"));
    }
}
