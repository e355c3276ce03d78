//! certificates.k8s.io (`pkg/registry/certificates/certificates`): CertificateSigningRequests.
//! A request must hold a PEM `CERTIFICATE REQUEST` whose signature checks out, a signer name,
//! and known usages; who asked (username, uid, groups) is recorded from the request's user, never
//! from the body. Three write paths, as upstream's three strategies: the main resource changes
//! metadata only; `/status` may issue the certificate (once) and add conditions other than
//! Approved/Denied; `/approval` changes only the conditions — `kubectl certificate
//! approve|deny`. Approved and Denied exclude each other, and none of Approved, Denied and Failed
//! can be removed once set. Field selectors on spec.signerName; the printer.
//!
//! The controller manager's signer and approver (`skiff_controllers::certificates`) issue and
//! approve requests through these subresources, as upstream's csrsigning and csrapproving.

use base64::Engine;

use crate::auth::UserInfo;
use crate::error::FieldError;
use crate::names::{is_dns1123_label, is_dns1123_subdomain, PATH_SEGMENT};
use crate::registry::fields::str_at;
use crate::registry::Strategy;
use crate::resources::Sub;
use crate::table::prelude::*;
use crate::timestamps;

pub struct CertificateSigningRequests;

pub static CERTIFICATE_SIGNING_REQUESTS: CertificateSigningRequests = CertificateSigningRequests;

/// The signer v1beta1 defaulted to; v1 refuses it for new requests.
const LEGACY_UNKNOWN_SIGNER: &str = "kubernetes.io/legacy-unknown";

const USAGES: &[&str] = &[
    "any",
    "cert sign",
    "client auth",
    "code signing",
    "content commitment",
    "crl sign",
    "data encipherment",
    "decipher only",
    "digital signature",
    "email protection",
    "encipher only",
    "ipsec end system",
    "ipsec tunnel",
    "ipsec user",
    "key agreement",
    "key encipherment",
    "microsoft sgc",
    "netscape sgc",
    "ocsp signing",
    "s/mime",
    "server auth",
    "signing",
    "timestamping",
];

/// Conditions that, once present, may only say True.
const TRUE_ONLY: &[&str] = &["Approved", "Denied", "Failed"];

impl Strategy for CertificateSigningRequests {
    fn name_rule(&self) -> crate::names::NameRule {
        // Upstream doesn't care what requests are called; a name must still fit in a URL.
        PATH_SEGMENT
    }

    fn prepare_for_create(&self, object: &mut Value, _uid: &str) {
        // Nobody creates a pre-approved request.
        if let Some(root) = object.as_object_mut() {
            root.insert("status".into(), json!({}));
        }
    }

    fn record_requester(&self, object: &mut Value, user: &UserInfo) {
        let Some(spec) = crate::registry::fields::spec_of(object) else {
            return;
        };
        for field in ["username", "uid", "groups", "extra"] {
            spec.remove(field);
        }
        spec.insert("username".into(), json!(user.name));
        if !user.uid.is_empty() {
            spec.insert("uid".into(), json!(user.uid));
        }
        if !user.groups.is_empty() {
            spec.insert("groups".into(), json!(user.groups));
        }
        // The approver's SubjectAccessReview asks with these too.
        if !user.extra.is_empty() {
            spec.insert("extra".into(), json!(user.extra));
        }
    }

    fn prepare_for_update(&self, new: &mut Value, old: &Value) {
        // Requests are immutable but through their subresources.
        match old.get("spec") {
            Some(spec) => new["spec"] = spec.clone(),
            None => {
                if let Some(root) = new.as_object_mut() {
                    root.remove("spec");
                }
            }
        }
    }

    fn prepare_for_subresource_update(&self, sub: Sub, new: &mut Value, old: &Value) {
        if sub == Sub::Status {
            // `/status` keeps the Approved and Denied conditions as they are: approving is
            // `/approval`'s, issuing `/status`'s.
            for kind in ["Approved", "Denied"] {
                preserve_conditions(new, old, kind);
            }
        }
        stamp_condition_times(new, old);
    }

    fn validate(&self, object: &Value, errors: &mut Vec<FieldError>) {
        validate_request(object, errors);
    }

    fn validate_update(&self, old: &Value, new: &Value, errors: &mut Vec<FieldError>) {
        validate_update_rules(old, new, None, errors);
    }

    fn validate_subresource_update(
        &self,
        sub: Sub,
        old: &Value,
        new: &Value,
        errors: &mut Vec<FieldError>,
    ) {
        validate_update_rules(old, new, Some(sub), errors);
    }

    fn selectable_fields(&self) -> &'static [&'static str] {
        &["spec.signerName"]
    }

    fn printer(&self) -> &'static Printer {
        &CERTIFICATE_SIGNING_REQUEST_PRINTER
    }
}

fn conditions(object: &Value) -> &[Value] {
    object
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
}

fn of_type<'a>(object: &'a Value, kind: &str) -> Vec<&'a Value> {
    conditions(object)
        .iter()
        .filter(|c| c["type"] == kind)
        .collect()
}

/// Puts the old conditions of `kind` back in place of the new ones, when the update neither
/// added nor removed any (it cannot change them, only fail validation trying to).
fn preserve_conditions(new: &mut Value, old: &Value, kind: &str) {
    let old_ones: Vec<Value> = of_type(old, kind).into_iter().cloned().collect();
    let Some(list) = new
        .pointer_mut("/status/conditions")
        .and_then(Value::as_array_mut)
    else {
        return;
    };
    let positions: Vec<usize> = (0..list.len())
        .filter(|i| list[*i]["type"] == kind)
        .collect();
    if positions.len() == old_ones.len() {
        for (position, condition) in positions.into_iter().zip(old_ones) {
            list[position] = condition;
        }
    }
}

/// lastUpdateTime and lastTransitionTime where the writer left them out; a condition whose type
/// and status were already there keeps its transition time.
fn stamp_condition_times(new: &mut Value, old: &Value) {
    let now = timestamps::now_rfc3339();
    let old_conditions = conditions(old).to_vec();
    let Some(list) = new
        .pointer_mut("/status/conditions")
        .and_then(Value::as_array_mut)
    else {
        return;
    };
    for condition in list.iter_mut().filter_map(Value::as_object_mut) {
        if condition.get("lastUpdateTime").is_none_or(Value::is_null) {
            condition.insert("lastUpdateTime".into(), json!(now));
        }
        if condition
            .get("lastTransitionTime")
            .is_none_or(Value::is_null)
        {
            let kept = old_conditions.iter().find(|c| {
                c["type"] == condition["type"]
                    && c["status"] == condition["status"]
                    && c.get("lastTransitionTime").is_some_and(|t| !t.is_null())
            });
            let time = kept.map_or_else(|| json!(now), |c| c["lastTransitionTime"].clone());
            condition.insert("lastTransitionTime".into(), time);
        }
    }
}

/// Decodes the base64 of a `[]byte` field.
fn bytes_at(object: &Value, pointer: &str) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD
        .decode(str_at(object, pointer))
        .unwrap_or_default()
}

/// Upstream's `ParseCSR` and `CheckSignature`: one PEM block of type CERTIFICATE REQUEST holding a
/// PKCS#10 request signed by the key it carries.
pub fn check_certificate_request(pem: &[u8]) -> Result<(), String> {
    use x509_parser::certification_request::X509CertificationRequest;
    use x509_parser::prelude::FromDer;
    let block = match x509_parser::pem::parse_x509_pem(pem) {
        Ok((_, block)) if block.label == "CERTIFICATE REQUEST" => block,
        _ => return Err("PEM block type must be CERTIFICATE REQUEST".into()),
    };
    let (_, request) = X509CertificationRequest::from_der(&block.contents)
        .map_err(|e| format!("x509: malformed certificate request: {e}"))?;
    request.verify_signature().map_err(|e| format!("x509: {e}"))
}

/// `status.certificate`: PEM CERTIFICATE blocks only, each holding a certificate.
pub fn check_certificate(pem: &[u8]) -> Result<(), String> {
    if pem.is_empty() {
        return Ok(());
    }
    let mut blocks = 0;
    for block in x509_parser::pem::Pem::iter_from_buffer(pem) {
        let Ok(block) = block else { break };
        if block.label != "CERTIFICATE" {
            return Err(format!(
                "only CERTIFICATE PEM blocks are allowed, found {:?}",
                block.label
            ));
        }
        blocks += 1;
        x509_parser::parse_x509_certificate(&block.contents)
            .map_err(|e| format!("x509: malformed certificate: {e}"))?;
    }
    if blocks == 0 {
        return Err("must contain at least one CERTIFICATE PEM block".into());
    }
    Ok(())
}

/// `ValidateSignerName`: `<fully qualified domain>/<path>`.
pub fn check_signer_name(path: &str, signer: &str, errors: &mut Vec<FieldError>) {
    if signer.is_empty() {
        errors.push(FieldError::required(path, ""));
        return;
    }
    let segments: Vec<&str> = signer.split('/').collect();
    let [domain, name] = segments[..] else {
        errors.push(FieldError::invalid(
            path,
            &json!(signer),
            "must be a fully qualified domain and path of the form 'example.com/signer-name'",
        ));
        return;
    };
    let labels: Vec<&str> = domain.split('.').collect();
    if let Some(bad) = labels.iter().find(|l| !is_dns1123_label(l)) {
        errors.push(FieldError::invalid(
            path,
            &json!(domain),
            format!(
                "validating label {bad:?}: {}",
                crate::names::DNS1123_LABEL_MSG
            ),
        ));
    }
    if labels.len() < 2 {
        errors.push(FieldError::invalid(
            path,
            &json!(domain),
            "should be a domain with at least two segments separated by dots",
        ));
    }
    if let Some(bad) = name.split('.').find(|l| !is_dns1123_subdomain(l)) {
        errors.push(FieldError::invalid(
            path,
            &json!(name),
            format!(
                "validating label {bad:?}: {}",
                crate::names::DNS1123_SUBDOMAIN_MSG
            ),
        ));
    }
}

/// `validateCertificateSigningRequest`. Upstream tolerates on update what a stored object already
/// breaks (a legacy signer, duplicate conditions); objects stored here were checked on create.
fn validate_request(object: &Value, errors: &mut Vec<FieldError>) {
    let spec = &object["spec"];
    if let Err(message) = check_certificate_request(&bytes_at(object, "/spec/request")) {
        errors.push(FieldError::invalid(
            "spec.request",
            spec.get("request").unwrap_or(&Value::Null),
            message,
        ));
    }
    let usages = list(spec, &["usages"]);
    if usages.is_empty() {
        errors.push(FieldError::required("spec.usages", ""));
    }
    let mut seen = BTreeSet::new();
    for (i, usage) in usages.iter().enumerate() {
        let text = usage.as_str().unwrap_or_default();
        if !USAGES.contains(&text) {
            errors.push(FieldError::not_supported(
                format!("spec.usages[{i}]"),
                usage,
                USAGES,
            ));
        }
        if !seen.insert(text) {
            errors.push(FieldError::duplicate(format!("spec.usages[{i}]"), usage));
        }
    }
    let signer = str_at(object, "/spec/signerName");
    if signer == LEGACY_UNKNOWN_SIGNER {
        errors.push(FieldError::invalid(
            "spec.signerName",
            &json!(signer),
            "the legacy signerName is not allowed via this API version",
        ));
    } else {
        check_signer_name("spec.signerName", signer, errors);
    }
    if let Some(seconds) = spec["expirationSeconds"].as_i64().filter(|s| *s < 600) {
        errors.push(FieldError::invalid(
            "spec.expirationSeconds",
            &json!(seconds),
            "may not specify a duration less than 600 seconds (10 minutes)",
        ));
    }
    validate_conditions(object, errors);
    if let Err(message) = check_certificate(&bytes_at(object, "/status/certificate")) {
        errors.push(FieldError::invalid(
            "status.certificate",
            &json!("<certificate data>"),
            message,
        ));
    }
}

fn validate_conditions(object: &Value, errors: &mut Vec<FieldError>) {
    let path = "status.conditions";
    let (mut approved, mut denied) = (false, false);
    let mut seen = BTreeSet::new();
    for (i, condition) in conditions(object).iter().enumerate() {
        let kind = condition["type"].as_str().unwrap_or_default();
        if kind.is_empty() {
            errors.push(FieldError::required(format!("{path}[{i}].type"), ""));
        }
        let allowed: &[&str] = if TRUE_ONLY.contains(&kind) {
            &["True"]
        } else {
            &["False", "True", "Unknown"]
        };
        match condition["status"].as_str().unwrap_or_default() {
            "" => errors.push(FieldError::required(format!("{path}[{i}].status"), "")),
            status if !allowed.contains(&status) => errors.push(FieldError::not_supported(
                format!("{path}[{i}].status"),
                &condition["status"],
                allowed,
            )),
            _ => {}
        }
        match kind {
            "Approved" => approved = true,
            "Denied" => denied = true,
            _ => {}
        }
        if (kind == "Approved" && denied) || (kind == "Denied" && approved) {
            errors.push(FieldError::invalid(
                path,
                &json!(kind),
                "Approved and Denied conditions are mutually exclusive",
            ));
        }
        if !seen.insert(kind) {
            errors.push(FieldError::duplicate(
                format!("{path}[{i}].type"),
                &json!(kind),
            ));
        }
    }
}

/// `validateCertificateSigningRequestUpdate` for the main resource (`sub` None), `/status` and
/// `/approval`.
fn validate_update_rules(old: &Value, new: &Value, sub: Option<Sub>, errors: &mut Vec<FieldError>) {
    let path = "status.conditions";
    for kind in ["Approved", "Denied", "Failed"] {
        if of_type(new, kind).len() < of_type(old, kind).len() {
            errors.push(FieldError::forbidden(
                path,
                format!("updates may not remove a condition of type {kind:?}"),
            ));
        }
    }
    if sub != Some(Sub::Approval) {
        for kind in ["Approved", "Denied"] {
            let (before, after) = (of_type(old, kind), of_type(new, kind));
            if after.len() > before.len() {
                errors.push(FieldError::forbidden(
                    path,
                    format!("updates may not add a condition of type {kind:?}"),
                ));
            } else if after.len() == before.len() && after != before {
                errors.push(FieldError::forbidden(
                    path,
                    format!("updates may not modify a condition of type {kind:?}"),
                ));
            }
        }
    }
    if bytes_at(new, "/status/certificate") != bytes_at(old, "/status/certificate") {
        if sub != Some(Sub::Status) {
            errors.push(FieldError::forbidden(
                "status.certificate",
                "updates may not set certificate content",
            ));
        } else if !bytes_at(old, "/status/certificate").is_empty() {
            errors.push(FieldError::forbidden(
                "status.certificate",
                "updates may not modify existing certificate content",
            ));
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A real PKCS#10 request, base64 as the JSON carries `spec.request`.
    fn request_b64() -> String {
        let key = rcgen::KeyPair::generate().unwrap();
        let params = rcgen::CertificateParams::new(vec!["alice.example.com".into()]).unwrap();
        let pem = params.serialize_request(&key).unwrap().pem().unwrap();
        base64::engine::general_purpose::STANDARD.encode(pem)
    }

    fn csr(request: &str) -> Value {
        json!({"metadata": {"name": "alice"},
               "spec": {"request": request, "signerName": "kubernetes.io/kube-apiserver-client",
                        "usages": ["client auth"]},
               "status": {}})
    }

    fn messages(errors: &[FieldError]) -> Vec<String> {
        errors
            .iter()
            .map(|e| format!("{}: {}", e.field, e.message))
            .collect()
    }

    fn errors_of(object: &Value) -> Vec<String> {
        messages(&crate::registry::validate(
            &CERTIFICATE_SIGNING_REQUESTS,
            object,
        ))
    }

    #[test]
    fn requests_are_checked() {
        assert!(errors_of(&csr(&request_b64())).is_empty());
        let not_pem = base64::engine::general_purpose::STANDARD.encode("hello");
        let mut bad = csr(&not_pem);
        bad["spec"]["signerName"] = json!("");
        bad["spec"]["usages"] = json!(["client auth", "flying", "client auth"]);
        bad["spec"]["expirationSeconds"] = json!(60);
        let errors = errors_of(&bad);
        assert_eq!(
            errors[0],
            format!("spec.request: Invalid value: {not_pem:?}: PEM block type must be CERTIFICATE REQUEST")
        );
        assert!(errors[1].starts_with("spec.usages[1]: Unsupported value: \"flying\""));
        assert_eq!(
            errors[2],
            "spec.usages[2]: Duplicate value: \"client auth\""
        );
        assert_eq!(errors[3], "spec.signerName: Required value");
        assert_eq!(
            errors[4],
            "spec.expirationSeconds: Invalid value: 60: may not specify a duration less than 600 seconds (10 minutes)"
        );
        // A certificate in a CERTIFICATE REQUEST block is still not a request.
        let mut tampered = csr(&request_b64());
        let pem = String::from_utf8(bytes_at(&tampered, "/spec/request")).unwrap();
        let flipped = pem.replacen("MII", "MIJ", 1);
        tampered["spec"]["request"] =
            json!(base64::engine::general_purpose::STANDARD.encode(flipped));
        assert_eq!(errors_of(&tampered).len(), 1);
        assert!(errors_of(&tampered)[0].starts_with("spec.request: Invalid value"));
    }

    #[test]
    fn signer_names() {
        let check = |signer: &str| {
            let mut errors = Vec::new();
            check_signer_name("spec.signerName", signer, &mut errors);
            messages(&errors)
        };
        assert!(check("example.com/my-signer").is_empty());
        assert_eq!(
            check("example"),
            ["spec.signerName: Invalid value: \"example\": must be a fully qualified domain and path of the form 'example.com/signer-name'"]
        );
        assert_eq!(
            check("example/x"),
            ["spec.signerName: Invalid value: \"example\": should be a domain with at least two segments separated by dots"]
        );
    }

    #[test]
    fn requester_comes_from_the_user() {
        let mut object = csr(&request_b64());
        object["spec"]["username"] = json!("mallory");
        object["spec"]["extra"] = json!({"k": ["v"]});
        let user = UserInfo {
            name: "alice".into(),
            uid: String::new(),
            groups: vec!["system:authenticated".into()],
            ..Default::default()
        };
        CERTIFICATE_SIGNING_REQUESTS.record_requester(&mut object, &user);
        assert_eq!(object["spec"]["username"], "alice");
        assert_eq!(object["spec"]["groups"], json!(["system:authenticated"]));
        assert!(object["spec"].get("uid").is_none() && object["spec"].get("extra").is_none());
        let user = UserInfo {
            extra: [(
                "authentication.kubernetes.io/credential-id".to_string(),
                vec!["X509SHA256=ab".to_string()],
            )]
            .into(),
            ..user
        };
        CERTIFICATE_SIGNING_REQUESTS.record_requester(&mut object, &user);
        assert_eq!(
            object["spec"]["extra"],
            json!({"authentication.kubernetes.io/credential-id": ["X509SHA256=ab"]})
        );
    }

    /// The conditions `kubectl certificate approve` appends.
    fn approved(object: &Value) -> Value {
        let mut next = object.clone();
        next["status"]["conditions"] = json!([{"type": "Approved", "status": "True",
            "reason": "KubectlApprove", "message": "This CSR was approved by kubectl certificate approve."}]);
        next
    }

    fn update(sub: Option<Sub>, old: &Value, mut new: Value) -> (Value, Vec<String>) {
        if let Some(sub) = sub {
            CERTIFICATE_SIGNING_REQUESTS.prepare_for_subresource_update(sub, &mut new, old);
        }
        let mut errors = crate::registry::validate(&CERTIFICATE_SIGNING_REQUESTS, &new);
        match sub {
            Some(sub) => CERTIFICATE_SIGNING_REQUESTS.validate_subresource_update(
                sub,
                old,
                &new,
                &mut errors,
            ),
            None => CERTIFICATE_SIGNING_REQUESTS.validate_update(old, &new, &mut errors),
        }
        (new, messages(&errors))
    }

    #[test]
    fn approval_is_the_approval_subresource_s() {
        let pending = csr(&request_b64());
        let (stored, errors) = update(Some(Sub::Approval), &pending, approved(&pending));
        assert!(errors.is_empty(), "{errors:?}");
        let condition = &stored["status"]["conditions"][0];
        assert!(
            condition["lastUpdateTime"].is_string() && condition["lastTransitionTime"].is_string()
        );
        let cells = (CERTIFICATE_SIGNING_REQUEST_PRINTER.cells)(&stored, Timestamp::now());
        assert_eq!(cells[5], "Approved");
        assert_eq!(
            (CERTIFICATE_SIGNING_REQUEST_PRINTER.cells)(&pending, Timestamp::now())[5],
            "Pending"
        );

        // Neither /status nor the main resource may approve.
        for sub in [Some(Sub::Status), None] {
            let (_, errors) = update(sub, &pending, approved(&pending));
            assert_eq!(
                errors,
                ["status.conditions: Forbidden: updates may not add a condition of type \"Approved\""]
            );
        }
        // /status keeps an existing approval as it was, whatever the writer sent.
        let mut rewritten = stored.clone();
        rewritten["status"]["conditions"][0]["message"] = json!("changed");
        let (through_status, errors) = update(Some(Sub::Status), &stored, rewritten);
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(
            through_status["status"]["conditions"],
            stored["status"]["conditions"]
        );

        // Denying an approved request: exclusive, and the approval can't be dropped.
        let mut both = approved(&stored);
        both["status"]["conditions"]
            .as_array_mut()
            .unwrap()
            .push(json!({"type": "Denied", "status": "True"}));
        let (_, errors) = update(Some(Sub::Approval), &stored, both);
        assert_eq!(
            errors,
            ["status.conditions: Invalid value: \"Denied\": Approved and Denied conditions are mutually exclusive"]
        );
        let mut denied_only = stored.clone();
        denied_only["status"]["conditions"] = json!([{"type": "Denied", "status": "True"}]);
        let (_, errors) = update(Some(Sub::Approval), &stored, denied_only);
        assert_eq!(
            errors,
            ["status.conditions: Forbidden: updates may not remove a condition of type \"Approved\""]
        );
    }

    #[test]
    fn certificates_are_issued_once_through_status() {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["alice".into()])
            .unwrap()
            .self_signed(&key)
            .unwrap()
            .pem();
        let pending = csr(&request_b64());
        let mut issued = approved(&pending);
        issued["status"]["certificate"] =
            json!(base64::engine::general_purpose::STANDARD.encode(&cert));
        let (_, errors) = update(None, &pending, issued.clone());
        assert!(errors.contains(
            &"status.certificate: Forbidden: updates may not set certificate content".to_string()
        ));
        let approved_csr = update(Some(Sub::Approval), &pending, approved(&pending)).0;
        let mut issue = approved_csr.clone();
        issue["status"]["certificate"] = issued["status"]["certificate"].clone();
        let (stored, errors) = update(Some(Sub::Status), &approved_csr, issue);
        assert!(errors.is_empty(), "{errors:?}");
        let mut garbage = stored.clone();
        garbage["status"]["certificate"] =
            json!(base64::engine::general_purpose::STANDARD.encode("junk"));
        let (_, errors) = update(Some(Sub::Status), &stored, garbage);
        assert_eq!(
            errors,
            [
                "status.certificate: Invalid value: \"<certificate data>\": must contain at least one CERTIFICATE PEM block",
                "status.certificate: Forbidden: updates may not modify existing certificate content",
            ]
        );
    }
}
