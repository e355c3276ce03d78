//! create: decode and check the object, name it (generateName), give it identity, then the
//! strategy's defaults, create-time defaults, validation and allocations, and one
//! create-if-absent in the store.

use rand::Rng;
use serde_json::{json, Value};

use super::{decode_object, meta, meta_mut, ApiServer, Ctx, Target};
use crate::apply;
use crate::auth::admission::{self, Operation};
use crate::error::{ApiError, ApiResult};
use crate::resources::Sub;
use crate::storage::{Extra, Write};
use crate::{registry, timestamps};

impl ApiServer {
    pub async fn create(&self, target: &Target, ctx: &Ctx, body: Value) -> ApiResult<(u16, Value)> {
        let info = target.info;
        if info.custom.is_some_and(|c| c.terminating) {
            return Err(ApiError::new(
                405,
                "MethodNotAllowed",
                "create not allowed while custom resource definition is terminating",
            ));
        }
        let mut object = decode_object(info, ctx, body)?;
        if info.is_virtual() {
            // Reviews have no table printer: upstream's default convertor refuses them.
            if matches!(ctx.output, crate::response::Output::Table(_)) {
                return Err(ApiError::new(
                    406,
                    "NotAcceptable",
                    format!(
                        "the resource {} does not support being converted to a Table",
                        info.qualified()
                    ),
                ));
            }
            let tokens = self.tokens.as_ref();
            // A TokenReview of a service-account token: checked here, with its lookups,
            // before the (synchronous) review runs.
            let service_account = if info.resource == "tokenreviews" {
                self.review_service_account_token(&object).await
            } else {
                None
            };
            let audiences = service_account.as_ref().map(|(_, _, a)| a.clone());
            let authenticate = move |token: &str| match tokens {
                Some(tokens) => tokens
                    .authenticate(Some(&format!("Bearer {token}")))
                    .or_else(|| {
                        let (reviewed, user, _) = service_account.as_ref()?;
                        (reviewed == token).then(|| user.clone())
                    }),
                // Authentication off: every caller is the admin.
                None => Some(crate::auth::UserInfo {
                    name: "admin".into(),
                    uid: "admin".into(),
                    groups: vec!["system:masters".into(), "system:authenticated".into()],
                    ..Default::default()
                }),
            };
            let review = registry::Review {
                user: &ctx.user,
                authenticate: &authenticate,
                authorizer: &self.authorizer,
                namespace: target.namespace.as_deref(),
                audiences,
            };
            return Ok((201, info.strategy.review(&review, object)));
        }
        // The namespace comes from the URL; a different one in the body is an error.
        if info.namespaced {
            let url_ns = target.namespace.clone().unwrap_or_default();
            match meta(&object)["namespace"].as_str() {
                Some(ns) if !ns.is_empty() && ns != url_ns => {
                    return Err(ApiError::bad_request(
                        "the namespace of the provided object does not match the namespace sent on the request",
                    ))
                }
                _ => {
                    meta_mut(&mut object).insert("namespace".into(), json!(url_ns));
                }
            }
        } else {
            meta_mut(&mut object).remove("namespace");
        }
        let generate_name = meta(&object)["generateName"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let explicit_name = meta(&object)["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let warnings_before = ctx.warnings.lock().len();
        for attempt in 0..8 {
            // A retried attempt answers its own admission warnings, not the last one's too.
            ctx.warnings.lock().truncate(warnings_before);
            let mut candidate = object.clone();
            let name = if explicit_name.is_empty() && !generate_name.is_empty() {
                const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
                let suffix: String = (0..5)
                    .map(|_| ALPHABET[rand::rng().random_range(0..ALPHABET.len())] as char)
                    .collect();
                format!("{generate_name}{suffix}")
            } else {
                explicit_name.clone()
            };
            let t = Target {
                name: Some(name.clone()),
                ..target.clone()
            };
            self.check_namespace(&t, true).await?;
            let uid = uuid::Uuid::new_v4().to_string();
            {
                let m = meta_mut(&mut candidate);
                m.insert("name".into(), json!(name));
                m.insert("uid".into(), json!(uid));
                m.insert("creationTimestamp".into(), json!(timestamps::now_rfc3339()));
                for k in [
                    "resourceVersion",
                    "deletionTimestamp",
                    "deletionGracePeriodSeconds",
                    "selfLink",
                ] {
                    m.remove(k);
                }
                if info.strategy.tracks_generation() {
                    m.insert("generation".into(), json!(1));
                } else {
                    m.remove("generation");
                }
            }
            if info.has(Sub::Status) && !info.strategy.keeps_status_on_create() {
                super::clear_status(info, &mut candidate);
            }
            info.strategy.default(&mut candidate);
            // The creator owns what it set (an apply that creates brings its own entry).
            if candidate.pointer("/metadata/managedFields").is_none() {
                let owner = apply::Owner {
                    manager: ctx.manager(),
                    operation: apply::Operation::Update,
                    subresource: "",
                };
                apply::record_update(
                    &json!({}),
                    &mut candidate,
                    &apply::type_name(info),
                    &owner,
                    &info.api_version(),
                    &timestamps::now_rfc3339(),
                    !info.has(Sub::Status),
                );
            }
            // Upstream's plugin admission (LimitRanger, PodSecurity): mutating first.
            let request = crate::admission::Request {
                info,
                sub: None,
                operation: Operation::Create,
                namespace: t.namespace.as_deref(),
                name: &name,
                user: &ctx.user,
                dry_run: ctx.dry_run(),
            };
            crate::admission::mutate(self, &request, &mut candidate).await?;
            if let Some(admission) = info.strategy.admit(self, &mut candidate) {
                admission.await?;
            }
            // Then the mutating webhooks, last of the mutating plugins.
            let mut outcome = crate::admission::Outcome::default();
            let mutated = crate::admission::mutate_dynamic(
                self,
                &request,
                &mut candidate,
                None,
                &mut outcome,
            )
            .await;
            ctx.report(outcome);
            mutated?;
            info.strategy.prepare_for_create(&mut candidate, &uid);
            info.strategy.record_requester(&mut candidate, &ctx.user);
            admission::check(
                &self.authorizer,
                &ctx.user,
                info,
                None,
                Operation::Create,
                &name,
                Some(&candidate),
                None,
            )?;
            admission::verify_mirror_owner_uid(self, &ctx.user, info, &name, &candidate).await?;
            let mut outcome = crate::admission::Outcome::default();
            let admitted =
                crate::admission::validate(self, &request, &candidate, None, &mut outcome).await;
            ctx.report(outcome);
            admitted?;
            let mut errors = registry::validate(info.strategy, &candidate);
            info.strategy.validate_create(&candidate, &mut errors);
            if !errors.is_empty() {
                return Err(ApiError::invalid(info, &name, errors));
            }
            // ValidatingAdmissionPolicies and validating webhooks see only valid objects.
            let mut outcome = crate::admission::Outcome::default();
            let admitted = crate::admission::validate_dynamic(
                self,
                &request,
                Some(&candidate),
                None,
                &mut outcome,
            )
            .await;
            ctx.report(outcome);
            admitted?;
            // ResourceQuota, the last validating plugin: its charges are written with the object.
            let quota =
                crate::admission::resourcequota::admit(self, &request, &candidate, None).await?;
            let key = t.key();
            let mut extra = match info
                .strategy
                .allocate(&self.storage, None, &mut candidate, &key)
            {
                Some(allocation) => allocation.await?,
                None => Extra::default(),
            };
            extra.updates = quota.charges;
            if ctx.dry_run() {
                return Ok((201, candidate));
            }
            let mut stored = candidate.clone();
            super::to_storage(info, &mut stored);
            match self.storage.create(&key, &stored, &extra).await? {
                Write::Done(rev) => {
                    crate::storage::set_resource_version(&mut candidate, rev);
                    return Ok((201, candidate));
                }
                Write::Conflict => {
                    let exists = self.storage.get(&key).await?.is_some();
                    if exists && (explicit_name.is_empty() && attempt < 7) {
                        continue; // generateName collision: try another suffix
                    }
                    if exists {
                        return Err(ApiError::already_exists(info, &name));
                    }
                    // An allocation or a quota charge raced with another writer: admit and
                    // allocate again from the new state.
                }
            }
        }
        Err(ApiError::already_exists(info, &explicit_name))
    }

    /// The service account a TokenReview's `spec.token` authenticates as, for the review's
    /// `spec.audiences` (default: the API's): (token, user with `system:authenticated`,
    /// the audiences it was accepted for).
    async fn review_service_account_token(
        &self,
        review: &Value,
    ) -> Option<(String, crate::auth::UserInfo, Vec<String>)> {
        let token = review.pointer("/spec/token")?.as_str()?.to_string();
        let audiences: Vec<String> = review
            .pointer("/spec/audiences")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        let (mut user, accepted) =
            crate::auth::serviceaccount::authenticate_for(self, &token, Some(&audiences)).await?;
        user.groups.push("system:authenticated".into());
        Some((token, user, accepted))
    }
}
