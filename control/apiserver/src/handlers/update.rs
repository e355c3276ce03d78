//! update, patch and server-side apply: read, modify, compare-and-swap, retried on races
//! (upstream's GuaranteedUpdate), with the generic update rules (identity, status, generation)
//! and the strategy's defaults, update rules, validation and allocations.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{StatusCause, StatusDetails};
use serde_json::{json, Value};

use super::{decode_object, finalizers, meta, meta_mut, ApiServer, Ctx, Target, MAX_RETRIES};
use crate::apply;
use crate::auth::admission::{self, Operation};
use crate::error::{ApiError, ApiResult};
use crate::patch::{self, PatchType};
use crate::resources::{ResourceInfo, Sub};
use crate::storage::{Extra, Write};
use crate::{registry, timestamps};

impl ApiServer {
    /// Replaces an object (PUT). `sub` = Some(Status|Approval|Finalize) updates only that part.
    pub async fn update(&self, target: &Target, ctx: &Ctx, body: Value) -> ApiResult<(u16, Value)> {
        let info = target.info;
        let new = decode_object(info, ctx, body)?;
        let body_name = meta(&new)["name"].as_str().unwrap_or_default();
        if body_name != target.name() {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({body_name}) does not match the name on the URL ({})",
                target.name()
            )));
        }
        let precondition = meta(&new)["resourceVersion"]
            .as_str()
            .filter(|s| !s.is_empty())
            .map(str::to_string);
        let subresource = target.sub.map(Sub::name).unwrap_or_default();
        self.guaranteed_update(
            target,
            ctx,
            precondition,
            Some(subresource),
            move |_current| Ok(new.clone()),
        )
        .await
    }

    pub async fn patch(
        &self,
        target: &Target,
        ctx: &Ctx,
        patch_type: PatchType,
        body: &[u8],
    ) -> ApiResult<(u16, Value)> {
        let info = target.info;
        if info.is_custom() && patch_type == PatchType::Strategic {
            // Custom resources have no patch strategies to merge by (upstream refuses too).
            return Err(ApiError::new(
                415,
                "UnsupportedMediaType",
                "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml",
            ));
        }
        let definition = apply::type_name(info);
        let subresource = target.sub.map(Sub::name).unwrap_or_default();
        let body = body.to_vec();
        // A patch is conditional only if it sets metadata.resourceVersion itself.
        let precondition = serde_json::from_slice::<Value>(&body).ok().and_then(|p| {
            p.pointer("/metadata/resourceVersion")
                .and_then(Value::as_str)
                .map(str::to_string)
        });
        ctx.field_validation()?;
        // Server-side apply: who applies (upstream requires it), and what they apply.
        let applier = if patch_type == PatchType::Apply {
            let manager = ctx.param("fieldManager").unwrap_or_default().to_string();
            if manager.is_empty() {
                return Err(ApiError::new(
                    422,
                    "Invalid",
                    "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch",
                ));
            }
            let config = Value::Object(patch::parse_apply_config(&body).map_err(patch_error)?);
            if ctx.field_validation()? == super::FieldValidation::Strict {
                strict_apply_checks(target, &config, &body)?;
            }
            let fields = apply::field_set(&definition, &config, subresource == "status");
            Some((manager, config, fields))
        } else {
            None
        };
        // An apply records its own entry; any other patch is an update of its manager's.
        let update_of = applier.is_none().then_some(subresource);
        let result = self
            .guaranteed_update(target, ctx, precondition, update_of, |current| {
                let mut patched = patch::apply_patch(&definition, current, patch_type, &body)
                    .map_err(patch_error)?;
                if let Some((manager, _, fields)) = &applier {
                    let owner = apply::Owner {
                        manager,
                        operation: apply::Operation::Apply,
                        subresource,
                    };
                    let conflicts = apply::conflicts(current, &patched, fields, &owner);
                    if !conflicts.is_empty() {
                        if ctx.param("force") != Some("true") {
                            return Err(apply::conflict_error(&conflicts));
                        }
                        apply::take_over(&mut patched, &conflicts);
                    }
                    let previous = apply::previous(current, &owner);
                    let others = apply::others(current, &owner);
                    apply::remove_dropped(&mut patched, &previous, fields, &others);
                    apply::record(
                        &mut patched,
                        &owner,
                        &info.api_version(),
                        fields.clone(),
                        &timestamps::now_rfc3339(),
                    );
                }
                decode_object(info, ctx, patched)
            })
            .await;
        match (result, applier) {
            // Server-side apply creates the object when it does not exist.
            (Err(e), Some((manager, mut object, fields)))
                if e.code == 404 && target.sub.is_none() =>
            {
                if !object["metadata"].is_object() {
                    object["metadata"] = json!({});
                }
                let owner = apply::Owner {
                    manager: &manager,
                    operation: apply::Operation::Apply,
                    subresource: "",
                };
                apply::record(
                    &mut object,
                    &owner,
                    &info.api_version(),
                    fields,
                    &timestamps::now_rfc3339(),
                );
                self.create(target, ctx, object).await
            }
            (other, _) => other,
        }
    }

    /// Read, modify, compare-and-swap, retried on races (upstream's GuaranteedUpdate).
    ///
    /// The first attempt starts from the watch cache's copy, as upstream's does: when it is
    /// current, the update costs one store round trip instead of two. A cached copy can be
    /// stale, so anything it leads to short of a successful write — a failed compare, a
    /// precondition or validation error, "nothing changed" — is retried from the store before
    /// it is answered.
    ///
    /// `update_of`: the subresource (`""` for the main resource) whose `Update` entry of the
    /// request's manager records the fields this write changes; `None` for an apply, which
    /// records its own.
    pub(super) async fn guaranteed_update<F>(
        &self,
        target: &Target,
        ctx: &Ctx,
        precondition: Option<String>,
        update_of: Option<&str>,
        modify: F,
    ) -> ApiResult<(u16, Value)>
    where
        F: Fn(&Value) -> ApiResult<Value>,
    {
        let info = target.info;
        let key = target.key();
        let mut try_cache = !ctx.dry_run();
        let warnings_before = ctx.warnings.lock().len();
        for _ in 0..MAX_RETRIES {
            // A retried attempt answers its own warnings (decoding, admission), not the last
            // one's too.
            ctx.warnings.lock().truncate(warnings_before);
            let cached = if std::mem::take(&mut try_cache) {
                self.cached(info, &key).await
            } else {
                None
            };
            let from_cache = cached.is_some();
            let mut current = match cached {
                Some(current) => current,
                None => match self.storage.get(&key).await? {
                    Some(current) => current,
                    None => return Err(ApiError::not_found(info, target.name())),
                },
            };
            if info.is_custom() {
                super::to_served(info, &mut current.object);
            }
            // A built-in object stays in its storage version; the patch or the caller's check
            // sees it in the version the request named.
            let view = match info.conversion {
                Some(_) => {
                    let mut view = current.object.clone();
                    super::to_served(info, &mut view);
                    std::borrow::Cow::Owned(view)
                }
                None => std::borrow::Cow::Borrowed(&current.object),
            };
            // An answer that a stale cached copy may have caused: retry from the store.
            macro_rules! answer {
                ($result:expr) => {
                    if from_cache {
                        continue;
                    } else {
                        return $result;
                    }
                };
            }
            if let Some(rv) = &precondition {
                if *rv != current.mod_revision.to_string() {
                    answer!(Err(ApiError::modified(info, target.name())));
                }
            }
            let proposed = match modify(&view) {
                Ok(proposed) => proposed,
                Err(e) => answer!(Err(e)),
            };
            // A uid in the new object is a precondition (upstream's store: "Precondition
            // failed: UID in precondition ..."); it guards writers against a re-created object.
            if let Some(uid) = proposed.pointer("/metadata/uid").and_then(Value::as_str) {
                let existing = meta(&current.object)["uid"].as_str().unwrap_or_default();
                if !uid.is_empty() && uid != existing {
                    answer!(Err(ApiError::conflict(
                        info,
                        target.name(),
                        &format!(
                            "Precondition failed: UID in precondition: {uid}, UID in object meta: {existing}"
                        ),
                    )));
                }
            }
            let mut next = match target.sub {
                Some(Sub::Status) => with_status_from(&current.object, &proposed),
                Some(Sub::Approval) => with_conditions_from(&current.object, &proposed),
                Some(Sub::Finalize) => {
                    let mut n = current.object.clone();
                    n["spec"]["finalizers"] = proposed["spec"]["finalizers"].clone();
                    n
                }
                // The strategy takes from the request what these may change.
                Some(Sub::EphemeralContainers | Sub::Resize) => proposed,
                _ => self.prepare_update(info, &current.object, proposed),
            };
            if let Some(sub) = target.sub {
                info.strategy
                    .prepare_for_subresource_update(sub, &mut next, &current.object);
            }
            info.strategy.default(&mut next);
            let request = crate::admission::Request {
                info,
                sub: target.sub,
                operation: Operation::Update,
                namespace: target.namespace.as_deref(),
                name: target.name(),
                user: &ctx.user,
                dry_run: ctx.dry_run(),
            };
            // The mutating webhooks.
            let mut outcome = crate::admission::Outcome::default();
            let mutated = crate::admission::mutate_dynamic(
                self,
                &request,
                &mut next,
                Some(&current.object),
                &mut outcome,
            )
            .await;
            ctx.report(outcome);
            if let Err(e) = mutated {
                answer!(Err(e));
            }
            if let Some(subresource) = update_of {
                let owner = apply::Owner {
                    manager: ctx.manager(),
                    operation: apply::Operation::Update,
                    subresource,
                };
                apply::record_update(
                    &current.object,
                    &mut next,
                    &apply::type_name(info),
                    &owner,
                    &info.api_version(),
                    &timestamps::now_rfc3339(),
                    subresource == "status" || !info.has(Sub::Status),
                );
            }
            if let Err(e) = admission::check(
                &self.authorizer,
                &ctx.user,
                info,
                target.sub,
                Operation::Update,
                target.name(),
                Some(&next),
                Some(&current.object),
            ) {
                answer!(Err(e));
            }
            // Upstream's plugin admission (LimitRanger, PodSecurity) on the final object.
            let mut outcome = crate::admission::Outcome::default();
            let admitted = crate::admission::validate(
                self,
                &request,
                &next,
                Some(&current.object),
                &mut outcome,
            )
            .await;
            ctx.report(outcome);
            if let Err(e) = admitted {
                answer!(Err(e));
            }
            let mut errors = registry::validate(info.strategy, &next);
            match target.sub {
                Some(sub) => info.strategy.validate_subresource_update(
                    sub,
                    &current.object,
                    &next,
                    &mut errors,
                ),
                None => info
                    .strategy
                    .validate_update(&current.object, &next, &mut errors),
            }
            if !errors.is_empty() {
                answer!(Err(ApiError::invalid(info, target.name(), errors)));
            }
            // ValidatingAdmissionPolicies and validating webhooks.
            let mut outcome = crate::admission::Outcome::default();
            let admitted = crate::admission::validate_dynamic(
                self,
                &request,
                Some(&next),
                Some(&current.object),
                &mut outcome,
            )
            .await;
            ctx.report(outcome);
            if let Err(e) = admitted {
                answer!(Err(e));
            }
            let quota = match crate::admission::resourcequota::admit(
                self,
                &request,
                &next,
                Some(&current.object),
            )
            .await
            {
                Ok(quota) => quota,
                Err(e) => answer!(Err(e)),
            };
            let mut extra = Extra::default();
            if target.sub.is_none() {
                let allocation =
                    info.strategy
                        .allocate(&self.storage, Some(&current.object), &mut next, &key);
                if let Some(allocation) = allocation {
                    extra = match allocation.await {
                        Ok(extra) => extra,
                        Err(e) => answer!(Err(e)),
                    };
                }
            }
            extra.updates = quota.charges;
            if ctx.dry_run() {
                return Ok((200, next));
            }
            if should_delete_after_update(info, &next) {
                let release = Extra {
                    deletes: info.strategy.held_keys(&next),
                    ..Extra::default()
                };
                match self
                    .storage
                    .delete(&key, current.mod_revision, &release)
                    .await?
                {
                    Write::Done(rev) => {
                        crate::storage::set_resource_version(&mut next, rev);
                        return Ok((200, next));
                    }
                    Write::Conflict => continue,
                }
            }
            if next == current.object {
                // Nothing changed: no write, the same resourceVersion (as upstream).
                answer!(Ok((200, next)));
            }
            let mut stored = next.clone();
            super::to_storage(info, &mut stored);
            match self
                .storage
                .update(&key, &stored, current.mod_revision, &extra)
                .await?
            {
                Write::Done(rev) => {
                    crate::storage::set_resource_version(&mut next, rev);
                    return Ok((200, next));
                }
                // A quota charged with the update changed meanwhile: admit again (the object
                // itself may be unchanged, so its precondition still holds).
                Write::Conflict if !extra.updates.is_empty() => continue,
                Write::Conflict if precondition.is_some() => {
                    answer!(Err(ApiError::modified(info, target.name())))
                }
                Write::Conflict => continue,
            }
        }
        Err(ApiError::modified(info, target.name()))
    }

    /// Keeps what a main-resource update may not change: identity, timestamps, deletion state
    /// and (for resources with a status subresource) status; bumps generation on spec changes.
    fn prepare_update(&self, info: &ResourceInfo, old: &Value, mut new: Value) -> Value {
        let old_meta = meta(old).clone();
        {
            let m = meta_mut(&mut new);
            for k in [
                "uid",
                "creationTimestamp",
                "namespace",
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
                "generation",
            ] {
                match old_meta.get(k) {
                    Some(v) => {
                        m.insert(k.into(), v.clone());
                    }
                    None => {
                        m.remove(k);
                    }
                }
            }
            m.remove("resourceVersion");
        }
        if info.has(Sub::Status) {
            match old.get("status") {
                Some(s) => new["status"] = s.clone(),
                None => super::clear_status(info, &mut new),
            }
        }
        info.strategy.prepare_for_update(&mut new, old);
        if info.strategy.tracks_generation() {
            let generation = old_meta["generation"].as_i64().unwrap_or(1);
            let changed = info
                .strategy
                .generation_changed(old, &new, info.has(Sub::Status));
            meta_mut(&mut new).insert(
                "generation".into(),
                json!(if changed { generation + 1 } else { generation }),
            );
        }
        new
    }
}

/// A status update: the stored object with only `status` (and metadata labels/annotations)
/// taken from the request, as upstream's status strategies do.
fn with_status_from(current: &Value, proposed: &Value) -> Value {
    let mut next = current.clone();
    match proposed.get("status") {
        Some(s) => next["status"] = s.clone(),
        None => {
            if let Some(o) = next.as_object_mut() {
                o.remove("status");
            }
        }
    }
    // managedFields too: an apply on /status brings its entry (an update without them keeps
    // the stored ones, `apply::record_update`).
    for k in [
        "labels",
        "annotations",
        "finalizers",
        "ownerReferences",
        "managedFields",
    ] {
        match meta(proposed).get(k) {
            Some(v) => {
                meta_mut(&mut next).insert(k.into(), v.clone());
            }
            None => {
                meta_mut(&mut next).remove(k);
            }
        }
    }
    meta_mut(&mut next).remove("resourceVersion");
    next
}

/// An approval update (a CertificateSigningRequest's `/approval`): the stored object with only
/// `status.conditions` (and the metadata a status update may change) taken from the request, as
/// upstream's approval strategy does.
fn with_conditions_from(current: &Value, proposed: &Value) -> Value {
    let mut next = with_status_from(current, proposed);
    next["status"] = current.get("status").cloned().unwrap_or_else(|| json!({}));
    match proposed.pointer("/status/conditions") {
        Some(conditions) => next["status"]["conditions"] = conditions.clone(),
        None => {
            if let Some(status) = next["status"].as_object_mut() {
                status.remove("conditions");
            }
        }
    }
    next
}

/// Upstream deletes an object during an update that leaves it marked for deletion with no
/// finalizers and no grace period left, and nothing else holding it (the strategy's say).
fn should_delete_after_update(info: &ResourceInfo, object: &Value) -> bool {
    let m = meta(object);
    if m["deletionTimestamp"].is_null() || !finalizers(object).is_empty() {
        return false;
    }
    if info.strategy.blocks_deletion(object) {
        return false;
    }
    m["deletionGracePeriodSeconds"].as_i64().unwrap_or(0) == 0
}

/// A patch that cannot be applied. Upstream answers some merge failures with a bare 500; a patch
/// that does not fit the object is the client's error, so skiff answers 400 there.
pub(super) fn patch_error(e: patch::PatchError) -> ApiError {
    let code = e.http_code();
    if code >= 500 {
        return ApiError::bad_request(e.to_string());
    }
    let mut err = ApiError::new(code, e.reason(), e.status_message());
    if code == 422 {
        err.details = Some(Box::new(StatusDetails {
            causes: Some(vec![StatusCause {
                reason: Some("FieldValueInvalid".into()),
                message: Some(e.to_string()),
                field: None,
            }]),
            ..StatusDetails::default()
        }));
    }
    err
}

/// What upstream's apply refuses under `fieldValidation=Strict` besides what decoding the
/// result refuses: fields a custom resource's schema does not declare (structured-merge-diff
/// cannot type the patch: a 500 naming each field) and a key given twice in a YAML body
/// (its strict YAML decoding, with the line).
fn strict_apply_checks(target: &Target, config: &Value, body: &[u8]) -> ApiResult<()> {
    let info = target.info;
    if let Some(custom) = info.custom {
        let mut unknown = Vec::new();
        // A metadata that does not decode is refused with the object, later.
        let _ = super::decode_custom(info, custom, config, &mut unknown);
        if !unknown.is_empty() {
            let fields: Vec<String> = unknown
                .iter()
                .map(|path| format!(".{path}: field not declared in schema"))
                .collect();
            let detail = match fields.as_slice() {
                [one] => one.clone(),
                many => format!("errors:\n  {}", many.join("\n  ")),
            };
            let namespace = target.namespace.as_deref().unwrap_or_default();
            let kind = format!("{}, Kind={}", info.api_version(), info.kind);
            return Err(ApiError::internal(format!(
                "failed to create typed patch object ({namespace}/{}; {kind}): {detail}",
                target.name()
            )));
        }
    }
    if let Some(duplicate) = patch::yaml_duplicate_key(body) {
        return Err(ApiError::bad_request(format!(
            "error strict decoding patch: yaml: unmarshal errors:\n  {duplicate}"
        )));
    }
    Ok(())
}
