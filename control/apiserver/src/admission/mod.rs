//! Upstream admission plugins that read other objects and answer per request, beside the
//! strategies' own admission (`registry::Strategy::admit`) and the identity checks in
//! `auth::admission`: LimitRanger (`limitranger`), PodSecurity (`podsecurity`) and
//! ResourceQuota (`resourcequota`).
//!
//! The write handlers call three entry points, in upstream's phase order:
//! - [`mutate`], on create, before the strategy's admission and create-time defaults (so the
//!   QoS class sees LimitRange defaults): LimitRanger's defaults for pods;
//! - [`validate`], on create and update, after the object is final and before field
//!   validation: LimitRanger's limits (pods on create, claims on create and update), then
//!   PodSecurity (pods, workload templates, namespaces). A refusal writes nothing; the
//!   [`Outcome`] — warnings for `Warning` headers, annotations for the audit event — is
//!   reported either way;
//! - [`resourcequota::admit`], last, after field validation (upstream's validating plugin
//!   runs after the strategy's validation): the quota charges, stored in the object's own
//!   transaction.

pub mod cel;
pub mod limitranger;
pub mod matching;
pub mod podsecurity;
pub mod policy;
pub mod quantity;
pub mod resourcequota;
pub mod webhook;

use std::sync::OnceLock;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::StatusDetails;
use serde_json::Value;

use crate::auth::admission::Operation;
use crate::auth::UserInfo;
use crate::error::{ApiError, ApiResult};
use crate::registry::Lookup;
use crate::resources::{ResourceInfo, Sub};

/// One write as the plugins see it (upstream's admission `Attributes`).
pub struct Request<'a> {
    pub info: &'static ResourceInfo,
    pub sub: Option<Sub>,
    pub operation: Operation,
    /// The namespace of the URL (None for cluster-scoped resources).
    pub namespace: Option<&'a str>,
    pub name: &'a str,
    pub user: &'a UserInfo,
    /// `dryRun=All`: webhooks with side effects refuse it.
    pub dry_run: bool,
}

impl Request<'_> {
    fn is(&self, group: &str, resource: &str) -> bool {
        self.info.group == group && self.info.resource == resource
    }
    fn namespace(&self) -> &str {
        self.namespace.unwrap_or_default()
    }
}

/// What admission answers besides allowing or refusing: `Warning` headers for the client and
/// annotations for the request's audit event.
#[derive(Debug, Default, PartialEq)]
pub struct Outcome {
    pub warnings: Vec<String>,
    pub audit_annotations: Vec<(String, String)>,
}

impl Outcome {
    pub fn annotate(&mut self, key: &str, value: &str) {
        self.audit_annotations
            .push((key.to_string(), value.to_string()));
    }
}

static PODSECURITY: OnceLock<podsecurity::Config> = OnceLock::new();

/// Sets PodSecurity's configuration (defaults and exemptions) once, at startup; unset, upstream's
/// default applies (privileged everywhere, no exemptions).
pub fn configure_podsecurity(config: podsecurity::Config) {
    let _ = PODSECURITY.set(config);
}

fn podsecurity_config() -> &'static podsecurity::Config {
    PODSECURITY.get_or_init(podsecurity::Config::default)
}

/// Upstream `admission.NewForbidden`: `<resource> "<name>" is forbidden: <why>`, with the
/// details naming the object.
pub fn forbidden(group: &str, resource: &str, name: &str, why: &str) -> ApiError {
    let qualified = if group.is_empty() {
        resource.to_string()
    } else {
        format!("{resource}.{group}")
    };
    ApiError {
        continue_token: None,
        details: Some(Box::new(StatusDetails {
            name: Some(name.to_string()),
            group: Some(group.to_string()),
            kind: Some(resource.to_string()),
            ..StatusDetails::default()
        })),
        ..ApiError::forbidden(format!("{qualified} {name:?} is forbidden: {why}"))
    }
}

/// The mutating phase on create: LimitRanger's defaults for a pod.
pub async fn mutate(lookup: &dyn Lookup, req: &Request<'_>, object: &mut Value) -> ApiResult<()> {
    if req.sub.is_none()
        && req.operation == Operation::Create
        && req.is("", "pods")
        && lookup.admission_enabled("LimitRanger")
    {
        let ranges = lookup.list_in("", "limitranges", req.namespace()).await?;
        limitranger::mutate_pod(&ranges, object);
    }
    Ok(())
}

/// The validating phase on create and update (`old`: the stored object): LimitRanger, then
/// PodSecurity. Warnings and audit annotations go to `out`, refused or not.
pub async fn validate(
    lookup: &dyn Lookup,
    req: &Request<'_>,
    object: &Value,
    old: Option<&Value>,
    out: &mut Outcome,
) -> ApiResult<()> {
    validate_limits(lookup, req, object, old).await?;
    validate_pod_security(lookup, req, object, old, out).await
}

/// LimitRanger's validation: pods on create, claims on create and update (not of a claim being
/// deleted).
async fn validate_limits(
    lookup: &dyn Lookup,
    req: &Request<'_>,
    object: &Value,
    old: Option<&Value>,
) -> ApiResult<()> {
    if req.sub.is_some() || !lookup.admission_enabled("LimitRanger") {
        return Ok(());
    }
    let pods = req.is("", "pods") && req.operation == Operation::Create;
    let claims = req.is("", "persistentvolumeclaims");
    if !(pods || claims) {
        return Ok(());
    }
    if old.is_some_and(|o| {
        !o.pointer("/metadata/deletionTimestamp")
            .unwrap_or(&Value::Null)
            .is_null()
    }) {
        return Ok(());
    }
    let ranges = lookup.list_in("", "limitranges", req.namespace()).await?;
    if ranges.is_empty() {
        return Ok(());
    }
    let result = if pods {
        limitranger::validate_pod(&ranges, object)
    } else {
        limitranger::validate_pvc(&ranges, object)
    };
    result.map_err(|why| forbidden(req.info.group, req.info.resource, req.name, &why))
}

async fn validate_pod_security(
    lookup: &dyn Lookup,
    req: &Request<'_>,
    object: &Value,
    old: Option<&Value>,
    out: &mut Outcome,
) -> ApiResult<()> {
    // Subresources are not checked: of a pod's, only ephemeralcontainers and resize would be,
    // and skiff serves neither; a namespace's status and finalize are not.
    if req.sub.is_some()
        || req.operation == Operation::Delete
        || !lookup.admission_enabled("PodSecurity")
    {
        return Ok(());
    }
    let config = podsecurity_config();
    let group = req.info.group;
    let resource = req.info.resource;
    if req.is("", "namespaces") {
        match podsecurity::check_namespace(config, object, old)? {
            podsecurity::NamespaceCheck::Done(warnings) => out.warnings.extend(warnings),
            podsecurity::NamespaceCheck::CheckPods(enforce) => {
                let name = req.name;
                match lookup.list_in("", "pods", name).await {
                    Ok(pods) => out.warnings.extend(podsecurity::evaluate_pods_in_namespace(
                        config, name, enforce, &pods,
                    )),
                    Err(_) => out.warnings.push(
                        "failed to list pods while checking new PodSecurity enforce level".into(),
                    ),
                }
            }
        }
        return Ok(());
    }
    let is_pod = req.is("", "pods");
    if !is_pod && !podsecurity::has_pod_template(group, resource) {
        return Ok(());
    }
    let subject = podsecurity::Subject {
        group,
        resource,
        namespace: req.namespace(),
        name: req.name,
        user: &req.user.name,
    };
    let namespace = lookup
        .get("", "namespaces", None, req.namespace())
        .await
        .ok()
        .flatten();
    if is_pod {
        podsecurity::check_pod(config, &subject, namespace.as_deref(), object, old, out)
    } else {
        podsecurity::check_pod_controller(config, &subject, namespace.as_deref(), object, out);
        Ok(())
    }
}

/// The dynamic mutating phase, after the built-in mutating plugins and the strategy's
/// admission: MutatingAdmissionWebhook (`webhook`). The caller defaults the object again
/// afterwards, as upstream defaults a patched object.
pub async fn mutate_dynamic(
    lookup: &dyn Lookup,
    req: &Request<'_>,
    object: &mut Value,
    old: Option<&Value>,
    out: &mut Outcome,
) -> ApiResult<()> {
    if !lookup.admission_enabled("MutatingAdmissionWebhook") {
        return Ok(());
    }
    if !webhook::mutate(lookup, req, object, old, out).await? {
        return Ok(());
    }
    // A patched object is decoded again (unknown fields dropped, wrong types refused) and
    // defaulted, as upstream decodes and defaults a webhook's result; its identity stays.
    let identity = ["name", "namespace", "uid", "creationTimestamp"]
        .map(|k| (k, object.pointer(&format!("/metadata/{k}")).cloned()));
    if req.info.custom.is_none() {
        *object =
            (req.info.typed.normalize)(object).map_err(|e| ApiError::internal(e.to_string()))?;
    }
    req.info.strategy.default(object);
    if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        for (key, value) in identity {
            match value {
                Some(v) => meta.insert(key.to_string(), v),
                None => meta.remove(key),
            };
        }
    }
    Ok(())
}

/// The dynamic validating phase, after field validation and before ResourceQuota:
/// ValidatingAdmissionPolicy (`policy`), then ValidatingAdmissionWebhook (`webhook`).
pub async fn validate_dynamic(
    lookup: &dyn Lookup,
    req: &Request<'_>,
    object: Option<&Value>,
    old: Option<&Value>,
    out: &mut Outcome,
) -> ApiResult<()> {
    if lookup.admission_enabled("ValidatingAdmissionPolicy") {
        policy::validate(lookup, req, object, old, out).await?;
    }
    if lookup.admission_enabled("ValidatingAdmissionWebhook") {
        webhook::validate(lookup, req, object, old, out).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests;
