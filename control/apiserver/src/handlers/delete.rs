//! delete and deletecollection with DeleteOptions (body or query, decoded into k8s-openapi's
//! type so a mistyped field is a 400): preconditions, the strategy's deletion plan (pod graceful
//! deletion, namespace finalization), finalizers and propagation policy.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{DeleteOptions, StatusDetails};
use serde_json::{json, Value};

use super::{finalizers, meta, meta_mut, ApiServer, Ctx, Target, MAX_RETRIES};
use crate::auth::admission::{self, Operation};
use crate::error::{success_status, ApiError, ApiResult, FieldError};
use crate::registry::DeletePlan;
use crate::selectors::{FieldSelector, LabelSelector};
use crate::storage::{Extra, Write};
use crate::timestamps;

/// DeleteOptions from the request body, with the query's gracePeriodSeconds, propagationPolicy
/// and dryRun where the body leaves them unset.
fn delete_options(ctx: &Ctx, options: &Value) -> ApiResult<DeleteOptions> {
    let mut parsed: DeleteOptions = serde_json::from_value(options.clone()).map_err(|e| {
        ApiError::bad_request(format!(
            "DeleteOptions in version \"v1\" cannot be handled as a DeleteOptions: {e}"
        ))
    })?;
    if parsed.grace_period_seconds.is_none() {
        if let Some(g) = ctx.param("gracePeriodSeconds").filter(|g| !g.is_empty()) {
            parsed.grace_period_seconds = Some(g.parse().map_err(|_| {
                ApiError::bad_request(format!(
                    "invalid gracePeriodSeconds {g:?}: must be an integer"
                ))
            })?);
        }
    }
    if parsed.propagation_policy.is_none() {
        parsed.propagation_policy = ctx.param("propagationPolicy").map(str::to_string);
    }
    if ctx.dry_run() {
        parsed.dry_run = Some(vec!["All".to_string()]);
    }
    Ok(parsed)
}

impl ApiServer {
    /// DELETE of one object with DeleteOptions (body or query): preconditions, the strategy's
    /// deletion plan, finalizers and propagation policy.
    pub async fn delete(
        &self,
        target: &Target,
        ctx: &Ctx,
        options: &Value,
    ) -> ApiResult<(u16, Value)> {
        let info = target.info;
        let key = target.key();
        let options = delete_options(ctx, options)?;
        let dry_run = options
            .dry_run
            .as_ref()
            .is_some_and(|d| d.iter().any(|v| v == "All"));
        if let Some(p) = &options.propagation_policy {
            if !matches!(p.as_str(), "Orphan" | "Background" | "Foreground") {
                return Err(ApiError::invalid(
                    info,
                    target.name(),
                    vec![FieldError::not_supported(
                        "propagationPolicy",
                        &json!(p),
                        &["Foreground", "Background", "Orphan"],
                    )],
                ));
            }
        }
        for _ in 0..MAX_RETRIES {
            let Some(current) = self.storage.get(&key).await? else {
                return Err(ApiError::not_found(info, target.name()));
            };
            let object = current.object.clone();
            admission::check(
                &self.authorizer,
                &ctx.user,
                info,
                None,
                Operation::Delete,
                target.name(),
                None,
                Some(&object),
            )?;
            if let Some(pre) = &options.preconditions {
                if let Some(uid) = &pre.uid {
                    let actual = meta(&object)["uid"].as_str().unwrap_or_default();
                    if uid != actual {
                        return Err(ApiError::conflict(info, target.name(), &format!("Precondition failed: UID in precondition: {uid}, UID in object meta: {actual}")));
                    }
                }
                if let Some(rv) = &pre.resource_version {
                    let actual = current.mod_revision.to_string();
                    if *rv != actual {
                        return Err(ApiError::conflict(info, target.name(), &format!("Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {actual}")));
                    }
                }
            }
            // ValidatingAdmissionPolicies and validating webhooks see the object as it is
            // (`oldObject`; a deletion has no new one), as upstream's deleteValidation.
            let request = crate::admission::Request {
                info,
                sub: None,
                operation: Operation::Delete,
                namespace: target.namespace.as_deref(),
                name: target.name(),
                user: &ctx.user,
                dry_run,
            };
            let mut outcome = crate::admission::Outcome::default();
            let admitted = crate::admission::validate_dynamic(
                self,
                &request,
                None,
                Some(&object),
                &mut outcome,
            )
            .await;
            ctx.report(outcome);
            admitted?;
            let mut next = object.clone();
            let already_deleting = !meta(&object)["deletionTimestamp"].is_null();
            let grace =
                match info
                    .strategy
                    .before_delete(&object, &mut next, options.grace_period_seconds)
                {
                    DeletePlan::Unchanged => return Ok((200, object)),
                    DeletePlan::Marked { delete_now } => {
                        let done = if delete_now {
                            self.delete_now(target, current.mod_revision, next, dry_run)
                                .await?
                        } else {
                            self.write_marked(&key, next, current.mod_revision, dry_run)
                                .await?
                        };
                        match done {
                            Some(done) => return Ok(done),
                            None => continue, // changed meanwhile: read again
                        }
                    }
                    DeletePlan::Graceful(grace) => grace,
                };

            let mut fins = finalizers(&object);
            let policy = options.propagation_policy.clone().or_else(|| {
                options.orphan_dependents.map(|o| {
                    if o {
                        "Orphan".into()
                    } else {
                        "Background".into()
                    }
                })
            });
            match policy.as_deref() {
                Some("Orphan") if !fins.iter().any(|f| f == "orphan") => fins.push("orphan".into()),
                Some("Foreground") if !fins.iter().any(|f| f == "foregroundDeletion") => {
                    fins.push("foregroundDeletion".into())
                }
                _ => {}
            }

            if grace > 0 || !fins.is_empty() {
                // Mark for deletion: the kubelet (grace) or the finalizers' owners finish it.
                let m = meta_mut(&mut next);
                if !fins.is_empty() {
                    m.insert("finalizers".into(), json!(fins));
                }
                if !already_deleting || grace > 0 {
                    m.insert(
                        "deletionTimestamp".into(),
                        json!(timestamps::rfc3339_in(grace)),
                    );
                }
                m.insert("deletionGracePeriodSeconds".into(), json!(grace));
                if info.strategy.tracks_generation() && !already_deleting {
                    let g = m.get("generation").and_then(Value::as_i64).unwrap_or(1);
                    m.insert("generation".into(), json!(g + 1));
                }
                if next == object {
                    return Ok((200, object));
                }
                match self
                    .write_marked(&key, next, current.mod_revision, dry_run)
                    .await?
                {
                    Some(done) => return Ok(done),
                    None => continue,
                }
            }
            match self
                .delete_now(target, current.mod_revision, object, dry_run)
                .await?
            {
                Some(done) => return Ok(done),
                None => continue,
            }
        }
        Err(ApiError::modified(info, target.name()))
    }

    /// Stores an object marked for deletion (deletionTimestamp, finalizers); `None` when it
    /// changed meanwhile (the caller retries).
    async fn write_marked(
        &self,
        key: &str,
        mut next: Value,
        expected: i64,
        dry_run: bool,
    ) -> ApiResult<Option<(u16, Value)>> {
        if dry_run {
            return Ok(Some((200, next)));
        }
        match self
            .storage
            .update(key, &next, expected, &Extra::default())
            .await?
        {
            Write::Done(rev) => {
                crate::storage::set_resource_version(&mut next, rev);
                Ok(Some((200, next)))
            }
            Write::Conflict => Ok(None),
        }
    }

    /// Removes the object and releases what it held; `None` when it changed meanwhile (the
    /// caller retries).
    async fn delete_now(
        &self,
        target: &Target,
        expected: i64,
        mut object: Value,
        dry_run: bool,
    ) -> ApiResult<Option<(u16, Value)>> {
        let info = target.info;
        let returns_object = info.strategy.delete_returns_object();
        let status = || {
            success_status(Some(StatusDetails {
                name: Some(target.name().to_string()),
                group: Some(info.group.to_string()),
                kind: Some(info.resource.to_string()),
                uid: meta(&object)["uid"].as_str().map(str::to_string),
                ..StatusDetails::default()
            }))
        };
        if dry_run {
            return Ok(Some((
                200,
                if returns_object {
                    object.clone()
                } else {
                    status()
                },
            )));
        }
        let release = Extra {
            deletes: info.strategy.held_keys(&object),
            ..Extra::default()
        };
        match self
            .storage
            .delete(&target.key(), expected, &release)
            .await?
        {
            Write::Done(rev) => {
                let reply = if returns_object {
                    object.clone()
                } else {
                    status()
                };
                crate::storage::set_resource_version(&mut object, rev);
                Ok(Some((200, if returns_object { object } else { reply })))
            }
            Write::Conflict => Ok(None),
        }
    }

    pub async fn delete_collection(
        &self,
        target: &Target,
        ctx: &Ctx,
        options: &Value,
    ) -> ApiResult<(u16, Value)> {
        let info = target.info;
        let labels = LabelSelector::parse(ctx.param("labelSelector").unwrap_or_default())?;
        let fields =
            FieldSelector::for_resource(info, ctx.param("fieldSelector").unwrap_or_default())?;
        let page = self
            .storage
            .list(
                &info.namespace_prefix(target.namespace.as_deref()),
                None,
                0,
                0,
            )
            .await?;
        let mut deleted = Vec::new();
        for item in page.items {
            if !labels.matches(&item.object) || !fields.matches(&item.object) {
                continue;
            }
            let name = meta(&item.object)["name"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            let ns = meta(&item.object)["namespace"].as_str().map(str::to_string);
            let t = Target {
                info,
                namespace: ns,
                name: Some(name),
                sub: None,
            };
            match self.delete(&t, ctx, options).await {
                Ok((_, obj)) => deleted.push(obj),
                Err(e) if e.code == 404 => {}
                Err(e) => return Err(e),
            }
        }
        let rv = page.revision.to_string();
        Ok((
            200,
            json!({"kind": info.list_kind(), "apiVersion": info.api_version(), "metadata": {"resourceVersion": rv}, "items": deleted}),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::UserInfo;
    use crate::response::Output;

    fn ctx(query: &[(&str, &str)]) -> Ctx {
        Ctx {
            user: UserInfo {
                name: "admin".into(),
                uid: "admin".into(),
                groups: vec![],
                ..Default::default()
            },
            query: query
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            output: Output::Json,
            warnings: Default::default(),
            duplicate_fields: Default::default(),
            audit: crate::audit::Context::of(&Default::default()),
            default_manager: String::new(),
        }
    }

    #[test]
    fn options_from_body_and_query() {
        let o = delete_options(
            &ctx(&[("gracePeriodSeconds", "5"), ("dryRun", "All")]),
            &json!({"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Foreground", "preconditions": {"uid": "u1"}}),
        )
        .unwrap();
        assert_eq!(o.grace_period_seconds, Some(5));
        assert_eq!(o.propagation_policy.as_deref(), Some("Foreground"));
        assert_eq!(o.preconditions.unwrap().uid.as_deref(), Some("u1"));
        assert_eq!(o.dry_run, Some(vec!["All".to_string()]));
        // The body wins over the query.
        let o = delete_options(
            &ctx(&[("gracePeriodSeconds", "5")]),
            &json!({"gracePeriodSeconds": 0}),
        )
        .unwrap();
        assert_eq!(o.grace_period_seconds, Some(0));
    }

    #[test]
    fn mistyped_options_are_400() {
        for body in [
            json!({"gracePeriodSeconds": "soon"}),
            json!({"preconditions": {"uid": 7}}),
            json!({"orphanDependents": "yes"}),
            json!({"dryRun": "All"}),
        ] {
            let err = delete_options(&ctx(&[]), &body).unwrap_err();
            assert_eq!(err.code, 400, "{body}");
        }
        let err = delete_options(&ctx(&[("gracePeriodSeconds", "soon")]), &json!({})).unwrap_err();
        assert_eq!(err.code, 400);
    }
}
