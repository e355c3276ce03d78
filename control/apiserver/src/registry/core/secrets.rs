//! Secrets (`pkg/registry/core/secret`): type Opaque by default, write-only stringData merged
//! into data, the config-key and immutability rules of configmaps, field selectors on type; the
//! printer.

use base64::Engine;

use crate::error::FieldError;
use crate::registry::core::configmaps::{validate_immutable_data, validate_keys};
use crate::registry::fields::{child, default};
use crate::registry::Strategy;
use crate::table::prelude::*;

pub struct Secrets;

pub const SERVICE_ACCOUNT_TOKEN: &str = "kubernetes.io/service-account-token";
pub const SERVICE_ACCOUNT_NAME: &str = "kubernetes.io/service-account.name";

pub static STRATEGY: Secrets = Secrets;

impl Strategy for Secrets {
    fn default(&self, object: &mut Value) {
        let Some(root) = object.as_object_mut() else {
            return;
        };
        default(root, "type", json!("Opaque"));
        // stringData is write-only: merged into data (base64) and never stored.
        if let Some(Value::Object(string_data)) = root.remove("stringData") {
            let data = child(root, "data");
            for (k, v) in string_data {
                let text = v.as_str().unwrap_or_default();
                data.insert(
                    k,
                    json!(base64::engine::general_purpose::STANDARD.encode(text)),
                );
            }
        }
    }

    fn validate(&self, object: &Value, errors: &mut Vec<FieldError>) {
        validate_keys(object, errors);
        // A service-account token Secret names its account (the token controller fills it).
        if object["type"] == SERVICE_ACCOUNT_TOKEN {
            let named = object
                .pointer("/metadata/annotations")
                .and_then(|a| a.get(SERVICE_ACCOUNT_NAME))
                .and_then(Value::as_str)
                .is_some_and(|n| !n.is_empty());
            if !named {
                errors.push(FieldError::required(
                    format!("metadata.annotations[{SERVICE_ACCOUNT_NAME}]"),
                    "",
                ));
            }
        }
    }

    fn validate_update(&self, old: &Value, new: &Value, errors: &mut Vec<FieldError>) {
        validate_immutable_data(old, new, errors);
    }

    fn selectable_fields(&self) -> &'static [&'static str] {
        &["type"]
    }

    fn printer(&self) -> &'static Printer {
        &SECRET_PRINTER
    }
}

// ---------------------------------------------------------------- table

pub const SECRET_COLUMNS: &[Column] = &[
    NAME,
    col(
        "Type",
        "string",
        "Used to facilitate programmatic handling of secret data.",
    ),
    col("Data", "string", "Data contains the secret data."),
    AGE,
];

pub static SECRET_PRINTER: Printer = Printer::new(SECRET_COLUMNS, secret_cells);

fn secret_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    // type defaults to Opaque.
    let secret_type = non_empty_or(text(obj, &["type"]), "Opaque");
    vec![
        name(obj),
        secret_type.into(),
        (map_len(obj, &["data"]) as i64).into(),
        age(obj, now).into(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_string_data_merges() {
        let mut s = json!({"metadata": {"name": "s"}, "stringData": {"a": "hi"}});
        STRATEGY.default(&mut s);
        assert_eq!(s["data"]["a"], "aGk=");
        assert!(s.get("stringData").is_none());
        assert_eq!(s["type"], "Opaque");
    }

    #[test]
    fn service_account_token_secrets_name_their_account() {
        let mut s = json!({"metadata": {"name": "t"}, "type": SERVICE_ACCOUNT_TOKEN});
        let errors = crate::registry::validate(&STRATEGY, &s);
        assert_eq!(
            errors[0].field,
            "metadata.annotations[kubernetes.io/service-account.name]"
        );
        s["metadata"]["annotations"] = json!({SERVICE_ACCOUNT_NAME: "web"});
        assert!(crate::registry::validate(&STRATEGY, &s).is_empty());
    }
}
