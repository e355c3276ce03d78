//! The REST verbs on stored objects: get, list, create, update, patch, delete, deletecollection
//! and the subresources. HTTP details (routing, bodies, watch streams) live in `http.rs`; this file
//! is the registry logic upstream keeps in `apiserver/pkg/registry/generic/registry/store.go` plus
//! the per-resource strategies.

use std::sync::Arc;

use base64::Engine;
use rand::Rng;
use serde_json::{json, Map, Value};

use crate::apply;
use crate::cache::Caches;
use crate::error::{success_status, ApiError, ApiResult, FieldError};
use crate::patch::{self, PatchType};
use crate::resources::{self, ResourceInfo, Sub};
use crate::selectors::{FieldSelector, LabelSelector};
use crate::storage::{Extra, Storage, Stored, Write};
use crate::table::{self, IncludeObject};
use crate::tls::{Tokens, UserInfo};
use crate::{defaults, services, validation};

/// How many times an unconditional update retries after losing a compare-and-swap race.
const MAX_RETRIES: usize = 16;

pub struct ApiServer {
    pub storage: Storage,
    pub caches: Caches,
    pub tokens: Option<Tokens>,
    pub metrics: crate::metrics::Metrics,
    /// host:port clients reach this server at (discovery's serverAddressByClientCIDRs).
    pub server_address: String,
}

/// What the client asked to get back.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Output {
    Json,
    Table(IncludeObjectMode),
    PartialMetadata,
}

/// A `Copy` mirror of table::IncludeObject so Output stays comparable.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum IncludeObjectMode {
    None,
    Metadata,
    Object,
}

impl IncludeObjectMode {
    fn to_table(self) -> IncludeObject {
        match self {
            IncludeObjectMode::None => IncludeObject::None,
            IncludeObjectMode::Metadata => IncludeObject::Metadata,
            IncludeObjectMode::Object => IncludeObject::Object,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum FieldValidation {
    Ignore,
    Warn,
    Strict,
}

/// One request's parameters.
pub struct Ctx {
    pub user: UserInfo,
    pub query: Vec<(String, String)>,
    pub output: Output,
    pub warnings: parking_lot::Mutex<Vec<String>>,
    /// Duplicate fields found while parsing the request body (json.rs), reported by
    /// `decode_object` under the request's fieldValidation.
    pub duplicate_fields: parking_lot::Mutex<Vec<String>>,
}

impl Ctx {
    pub fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
    pub fn params(&self, name: &str) -> Vec<String> {
        self.query
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .collect()
    }
    pub fn dry_run(&self) -> bool {
        self.param("dryRun").is_some_and(|v| v == "All")
    }
    pub fn field_validation(&self) -> ApiResult<FieldValidation> {
        match self.param("fieldValidation") {
            None | Some("") | Some("Warn") => Ok(FieldValidation::Warn),
            Some("Strict") => Ok(FieldValidation::Strict),
            Some("Ignore") => Ok(FieldValidation::Ignore),
            Some(other) => Err(ApiError::bad_request(format!(
                "fieldValidation parameter unsupported: {other}. Supported values are: Ignore, Warn, Strict"
            ))),
        }
    }
}

/// A resource addressed by a request URL.
#[derive(Clone, Debug)]
pub struct Target {
    pub info: &'static ResourceInfo,
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub sub: Option<Sub>,
}

impl Target {
    pub fn key(&self) -> String {
        self.info.key(
            self.namespace.as_deref(),
            self.name.as_deref().unwrap_or_default(),
        )
    }
    fn name(&self) -> &str {
        self.name.as_deref().unwrap_or_default()
    }
}

pub fn now_rfc3339() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

fn rfc3339_in(seconds: i64) -> String {
    let t = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(seconds);
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// Resources whose `metadata.generation` counts spec changes (upstream strategies that set it).
fn tracks_generation(info: &ResourceInfo) -> bool {
    matches!(
        info.group,
        "apps" | "batch" | "networking.k8s.io" | "policy"
    )
}

fn meta(v: &Value) -> &Value {
    &v["metadata"]
}

fn meta_mut(v: &mut Value) -> &mut Map<String, Value> {
    if !v["metadata"].is_object() {
        v["metadata"] = json!({});
    }
    v["metadata"]
        .as_object_mut()
        .expect("metadata is an object")
}

fn finalizers(v: &Value) -> Vec<String> {
    meta(v)["finalizers"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|f| f.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// Unknown fields: keys present (non-null) in what the client sent but gone after decoding into
/// the k8s-openapi type, reported with upstream's paths (`spec.foo`, `spec.containers[0].bar`).
pub fn unknown_fields(sent: &Value, decoded: &Value, path: &str, out: &mut Vec<String>) {
    match (sent, decoded) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in a {
                let here = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                match b.get(k) {
                    None if !v.is_null() => out.push(here),
                    Some(d) => unknown_fields(v, d, &here, out),
                    None => {}
                }
            }
        }
        (Value::Array(a), Value::Array(b)) => {
            for (i, (x, y)) in a.iter().zip(b.iter()).enumerate() {
                unknown_fields(x, y, &format!("{path}[{i}]"), out);
            }
        }
        _ => {}
    }
}

/// Checks kind/apiVersion against the URL, decodes into the typed object and applies
/// fieldValidation. Returns the normalised JSON.
pub fn decode_object(info: &ResourceInfo, ctx: &Ctx, mut body: Value) -> ApiResult<Value> {
    let Some(obj) = body.as_object_mut() else {
        return Err(ApiError::bad_request(format!(
            "the body of the request must be a JSON object describing a {}",
            info.kind
        )));
    };
    let api_version = info.api_version();
    match obj.get("apiVersion").and_then(Value::as_str) {
        Some(v) if !v.is_empty() && v != api_version => {
            return Err(ApiError::bad_request(format!(
                "the API version in the data ({v}) does not match the expected API version ({api_version})"
            )))
        }
        _ => {
            obj.insert("apiVersion".into(), json!(api_version));
        }
    }
    match obj.get("kind").and_then(Value::as_str) {
        Some(k) if !k.is_empty() && k != info.kind => {
            return Err(ApiError::bad_request(format!(
                "the kind in the data ({k}) does not match the expected kind ({}) for this URL",
                info.kind
            )))
        }
        _ => {
            obj.insert("kind".into(), json!(info.kind));
        }
    }
    let decoded = (info.typed.normalize)(&body).map_err(|e| {
        ApiError::bad_request(format!(
            "{} in version \"{}\" cannot be handled as a {}: {e}",
            info.kind, info.version, info.kind
        ))
    })?;
    let mut unknown = Vec::new();
    unknown_fields(&body, &decoded, "", &mut unknown);
    let duplicates = std::mem::take(&mut *ctx.duplicate_fields.lock());
    if !unknown.is_empty() || !duplicates.is_empty() {
        let list: Vec<String> = duplicates
            .iter()
            .map(|f| format!("duplicate field \"{f}\""))
            .chain(unknown.iter().map(|f| format!("unknown field \"{f}\"")))
            .collect();
        match ctx.field_validation()? {
            FieldValidation::Strict => {
                return Err(ApiError::bad_request(format!(
                    "strict decoding error: {}",
                    list.join(", ")
                )))
            }
            FieldValidation::Warn => ctx.warnings.lock().extend(list),
            FieldValidation::Ignore => {}
        }
    } else {
        ctx.field_validation()?;
    }
    Ok(decoded)
}

impl ApiServer {
    pub fn render(&self, info: &ResourceInfo, ctx: &Ctx, object: Value) -> Value {
        match ctx.output {
            Output::Json => object,
            Output::PartialMetadata => partial_metadata(&object),
            Output::Table(include) => {
                let rv = meta(&object)["resourceVersion"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                table::table(
                    info.group,
                    info.resource,
                    &[object],
                    &rv,
                    None,
                    include.to_table(),
                    jiff::Timestamp::now(),
                )
            }
        }
    }

    async fn check_namespace(&self, target: &Target, creating: bool) -> ApiResult<()> {
        if !target.info.namespaced {
            return Ok(());
        }
        let Some(ns) = target.namespace.as_deref() else {
            return Err(ApiError::bad_request(
                "a namespace is required for this resource",
            ));
        };
        let nsinfo = resources::namespaces();
        let key = nsinfo.key(None, ns);
        // The namespace watch cache answers almost every time (upstream's lifecycle admission
        // uses an informer too); a miss — e.g. a namespace created a moment ago — reads etcd.
        let cached = match self.caches.get(nsinfo).await {
            Ok(cacher) => cacher.lookup(&key),
            Err(_) => None,
        };
        let namespace = match cached {
            Some(object) => Some((*object).clone()),
            None => self.storage.get(&key).await?.map(|s| s.object),
        };
        match namespace {
            None => Err(ApiError::not_found(nsinfo, ns)),
            Some(o) if creating && !meta(&o)["deletionTimestamp"].is_null() => Err(ApiError {
                details: Some(json!({"name": target.name(), "group": target.info.group, "kind": target.info.resource, "causes": [{"reason": "NamespaceTerminating", "message": format!("namespace {ns} is being terminated"), "field": "metadata.namespace"}]})),
                ..ApiError::forbidden(format!(
                    "{} \"{}\" is forbidden: unable to create new content in namespace {ns} because it is being terminated",
                    target.info.qualified(),
                    target.name()
                ))
            }),
            Some(_) => Ok(()),
        }
    }

    // ---------------------------------------------------------------- get / list

    pub async fn get(&self, target: &Target, _ctx: &Ctx) -> ApiResult<Value> {
        let stored = self
            .storage
            .get(&target.key())
            .await?
            .ok_or_else(|| ApiError::not_found(target.info, target.name()))?;
        Ok(stored.object)
    }

    /// A list (JSON list, Table or PartialObjectMetadataList) with selectors and paging.
    pub async fn list(&self, target: &Target, ctx: &Ctx) -> ApiResult<Value> {
        let info = target.info;
        let labels = LabelSelector::parse(ctx.param("labelSelector").unwrap_or_default())?;
        let fields = FieldSelector::parse(ctx.param("fieldSelector").unwrap_or_default(), info)?;
        let limit: i64 = match ctx.param("limit") {
            None | Some("") => 0,
            Some(l) => l
                .parse()
                .map_err(|_| ApiError::bad_request(format!("invalid limit {l:?}")))?,
        };
        let prefix = info.namespace_prefix(target.namespace.as_deref());
        let rv = ctx.param("resourceVersion").unwrap_or_default();
        let rv_match = ctx.param("resourceVersionMatch").unwrap_or_default();
        let continue_token = ctx.param("continue").filter(|c| !c.is_empty());
        let matches = |o: &Value| labels.matches(o) && fields.matches(o);

        let (items, revision, next): (Vec<Value>, i64, Option<String>) = if continue_token.is_none()
            && (rv == "0" || (!rv.is_empty() && rv_match == "NotOlderThan"))
        {
            // Served from the watch cache (any revision at least as new as the one given).
            let cacher = self.caches.get(info).await?;
            if rv != "0" {
                let n = parse_rv(rv)?;
                cacher.wait_for(n).await?;
            }
            let (objects, revision) = cacher.snapshot(&prefix);
            (
                objects
                    .iter()
                    .filter(|o| matches(o))
                    .map(|o| (**o).clone())
                    .collect(),
                revision,
                None,
            )
        } else {
            let (mut start, mut revision) = match continue_token {
                Some(token) => decode_continue(token, &prefix)?,
                None if !rv.is_empty() && rv_match == "Exact" => (None, parse_rv(rv)?),
                None => (None, 0),
            };
            if let (Some(name), None) = (fields.exact_name(), &start) {
                // metadata.name=x reads one key (kubectl delete/rollout status wait this way).
                let key = format!("{prefix}{name}");
                let page = self.storage.list(&key, None, revision, 1).await?;
                let items: Vec<Value> = page
                    .items
                    .into_iter()
                    .filter(|s| s.key == key)
                    .map(|s| s.object)
                    .filter(|o| matches(o))
                    .collect();
                (items, page.revision, None)
            } else {
                let mut items = Vec::new();
                let mut next = None;
                loop {
                    let want = if limit > 0 {
                        limit - items.len() as i64
                    } else {
                        0
                    };
                    let page = self
                        .storage
                        .list(&prefix, start.as_deref(), revision, want.max(0))
                        .await?;
                    revision = page.revision;
                    items.extend(
                        page.items
                            .into_iter()
                            .map(|s| s.object)
                            .filter(|o| matches(o)),
                    );
                    match page.next_key {
                        Some(k) if limit > 0 && (items.len() as i64) < limit => start = Some(k),
                        Some(k) => {
                            next = Some(encode_continue(&k, revision));
                            break;
                        }
                        None => break,
                    }
                }
                (items, revision, next)
            }
        };
        let rv_string = revision.to_string();
        Ok(match ctx.output {
            Output::Table(include) => table::table(
                info.group,
                info.resource,
                &items,
                &rv_string,
                next.as_deref(),
                include.to_table(),
                jiff::Timestamp::now(),
            ),
            Output::PartialMetadata => {
                let items: Vec<Value> = items.iter().map(partial_metadata).collect();
                let mut m = json!({"resourceVersion": rv_string});
                if let Some(n) = next {
                    m["continue"] = json!(n);
                }
                json!({"kind": "PartialObjectMetadataList", "apiVersion": "meta.k8s.io/v1", "metadata": m, "items": items})
            }
            Output::Json => {
                let mut m = json!({"resourceVersion": rv_string});
                if let Some(n) = next {
                    m["continue"] = json!(n);
                }
                json!({"kind": info.list_kind(), "apiVersion": info.api_version(), "metadata": m, "items": items})
            }
        })
    }

    // ---------------------------------------------------------------- create

    pub async fn create(&self, target: &Target, ctx: &Ctx, body: Value) -> ApiResult<(u16, Value)> {
        let info = target.info;
        let mut object = decode_object(info, ctx, body)?;
        if info.is_virtual() {
            return Ok((201, self.review(info, ctx, object)));
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
        for attempt in 0..8 {
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
                m.insert("creationTimestamp".into(), json!(now_rfc3339()));
                for k in [
                    "resourceVersion",
                    "deletionTimestamp",
                    "deletionGracePeriodSeconds",
                    "selfLink",
                ] {
                    m.remove(k);
                }
                if tracks_generation(info) {
                    m.insert("generation".into(), json!(1));
                } else {
                    m.remove("generation");
                }
            }
            if info.has(Sub::Status) && !matches!(info.resource, "nodes" | "namespaces") {
                if let Some(o) = candidate.as_object_mut() {
                    o.remove("status");
                }
            }
            defaults::apply(info, &mut candidate);
            defaults::on_create(info, &mut candidate, &uid);
            let errors = validation::validate(info, &candidate);
            if !errors.is_empty() {
                return Err(ApiError::invalid(info, &name, errors));
            }
            let key = t.key();
            let extra = if info.resource == "services" && info.group.is_empty() {
                services::allocate(&self.storage, None, &mut candidate, &key).await?
            } else {
                Extra::default()
            };
            if ctx.dry_run() {
                return Ok((201, candidate));
            }
            match self.storage.create(&key, &candidate, &extra).await? {
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
                    // An allocation raced with another writer: allocate again.
                }
            }
        }
        Err(ApiError::already_exists(info, &explicit_name))
    }

    /// authorization.k8s.io reviews: authorization is not enforced yet (a later issue), so every
    /// authenticated user may do everything; the answer says so.
    fn review(&self, info: &ResourceInfo, ctx: &Ctx, mut object: Value) -> Value {
        match info.kind {
            "SelfSubjectRulesReview" => {
                object["status"] = json!({
                    "resourceRules": [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}],
                    "nonResourceRules": [{"verbs": ["*"], "nonResourceURLs": ["*"]}],
                    "incomplete": false,
                });
            }
            _ => {
                object["status"] = json!({"allowed": true, "reason": format!("user {:?} is allowed: authorization is not enforced yet", ctx.user.name)});
            }
        }
        meta_mut(&mut object).insert("creationTimestamp".into(), Value::Null);
        object
    }

    // ---------------------------------------------------------------- update / patch

    /// Replaces an object (PUT). `sub` = Some(Status|Finalize) updates only that part.
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
        self.guaranteed_update(target, ctx, precondition, move |_current| Ok(new.clone()))
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
        let definition = (info.typed.definition)().to_string();
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
            let fields = apply::field_set(&definition, &config);
            Some((manager, config, fields))
        } else {
            None
        };
        let result = self
            .guaranteed_update(target, ctx, precondition, |current| {
                let mut patched = patch::apply_patch(&definition, current, patch_type, &body)
                    .map_err(patch_error)?;
                if let Some((manager, _, fields)) = &applier {
                    let previous = apply::previous(current, manager);
                    let others = apply::others(current, manager);
                    apply::remove_dropped(&mut patched, &previous, fields, &others);
                    apply::record(
                        &mut patched,
                        manager,
                        &info.api_version(),
                        fields.clone(),
                        &rfc3339_in(0),
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
                apply::record(
                    &mut object,
                    &manager,
                    &info.api_version(),
                    fields,
                    &rfc3339_in(0),
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
    async fn guaranteed_update<F>(
        &self,
        target: &Target,
        ctx: &Ctx,
        precondition: Option<String>,
        modify: F,
    ) -> ApiResult<(u16, Value)>
    where
        F: Fn(&Value) -> ApiResult<Value>,
    {
        let info = target.info;
        let key = target.key();
        let mut try_cache = !ctx.dry_run();
        for _ in 0..MAX_RETRIES {
            let cached = if std::mem::take(&mut try_cache) {
                self.cached(info, &key).await
            } else {
                None
            };
            let from_cache = cached.is_some();
            let current = match cached {
                Some(current) => current,
                None => match self.storage.get(&key).await? {
                    Some(current) => current,
                    None => return Err(ApiError::not_found(info, target.name())),
                },
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
            let proposed = match modify(&current.object) {
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
                Some(Sub::Finalize) => {
                    let mut n = current.object.clone();
                    n["spec"]["finalizers"] = proposed["spec"]["finalizers"].clone();
                    n
                }
                _ => self.prepare_update(info, &current.object, proposed),
            };
            defaults::apply(info, &mut next);
            let mut errors = validation::validate(info, &next);
            errors.extend(validation::validate_update(info, &current.object, &next));
            if !errors.is_empty() {
                answer!(Err(ApiError::invalid(info, target.name(), errors)));
            }
            let mut extra = Extra::default();
            if info.resource == "services" && info.group.is_empty() && target.sub.is_none() {
                extra =
                    match services::allocate(&self.storage, Some(&current.object), &mut next, &key)
                        .await
                    {
                        Ok(extra) => extra,
                        Err(e) => answer!(Err(e)),
                    };
            }
            if ctx.dry_run() {
                return Ok((200, next));
            }
            if should_delete_after_update(info, &next) {
                match self
                    .storage
                    .delete(&key, current.mod_revision, &self.release_keys(info, &next))
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
            match self
                .storage
                .update(&key, &next, current.mod_revision, &extra)
                .await?
            {
                Write::Done(rev) => {
                    crate::storage::set_resource_version(&mut next, rev);
                    return Ok((200, next));
                }
                Write::Conflict if precondition.is_some() => {
                    answer!(Err(ApiError::modified(info, target.name())))
                }
                Write::Conflict => continue,
            }
        }
        Err(ApiError::modified(info, target.name()))
    }

    /// The watch cache's copy of `key`, if the cache holds it.
    async fn cached(&self, info: &'static ResourceInfo, key: &str) -> Option<Stored> {
        let object = self.caches.get(info).await.ok()?.lookup(key)?;
        let mod_revision = meta(&object)["resourceVersion"].as_str()?.parse().ok()?;
        Some(Stored {
            key: key.to_string(),
            object: (*object).clone(),
            mod_revision,
        })
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
                None => {
                    if let Some(o) = new.as_object_mut() {
                        o.remove("status");
                    }
                }
            }
        }
        if info.resource == "namespaces" {
            // spec.finalizers change only through /finalize.
            new["spec"] = old["spec"].clone();
        }
        if tracks_generation(info) {
            let generation = old_meta["generation"].as_i64().unwrap_or(1);
            let changed = old.get("spec") != new.get("spec");
            meta_mut(&mut new).insert(
                "generation".into(),
                json!(if changed { generation + 1 } else { generation }),
            );
        }
        new
    }

    fn release_keys(&self, info: &ResourceInfo, object: &Value) -> Extra {
        if info.resource == "services" && info.group.is_empty() {
            Extra {
                creates: vec![],
                deletes: services::held_keys(object),
            }
        } else {
            Extra::default()
        }
    }

    // ---------------------------------------------------------------- scale

    pub fn scale_of(&self, info: &ResourceInfo, object: &Value) -> Value {
        let m = meta(object);
        let selector = object
            .pointer("/spec/selector")
            .and_then(|s| s.get("matchLabels"))
            .and_then(Value::as_object)
            .map(|l| {
                l.iter()
                    .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .unwrap_or_default();
        let _ = info;
        json!({
            "kind": "Scale",
            "apiVersion": "autoscaling/v1",
            "metadata": {
                "name": m["name"], "namespace": m["namespace"], "uid": m["uid"],
                "resourceVersion": m["resourceVersion"], "creationTimestamp": m["creationTimestamp"],
            },
            "spec": {"replicas": object.pointer("/spec/replicas").cloned().unwrap_or(json!(0))},
            "status": {"replicas": object.pointer("/status/replicas").cloned().unwrap_or(json!(0)), "selector": selector},
        })
    }

    /// PUT or PATCH on `/scale`: the change is made on a Scale and carried to spec.replicas.
    pub async fn update_scale(
        &self,
        target: &Target,
        ctx: &Ctx,
        change: ScaleChange<'_>,
    ) -> ApiResult<(u16, Value)> {
        let info = target.info;
        let main = Target {
            sub: None,
            ..target.clone()
        };
        let (code, object) = self
            .guaranteed_update(&main, ctx, None, |current| {
                let scale = self.scale_of(info, current);
                let new_scale = match &change {
                    ScaleChange::Replace(s) => s.clone(),
                    ScaleChange::Patch(t, body) => {
                        patch::apply_patch("io.k8s.api.autoscaling.v1.Scale", &scale, *t, body)
                            .map_err(patch_error)?
                    }
                };
                if let Some(rv) = new_scale
                    .pointer("/metadata/resourceVersion")
                    .and_then(Value::as_str)
                {
                    if !rv.is_empty() && Some(rv) != meta(current)["resourceVersion"].as_str() {
                        return Err(ApiError::modified(info, target.name()));
                    }
                }
                let replicas = new_scale
                    .pointer("/spec/replicas")
                    .and_then(Value::as_i64)
                    .unwrap_or(0);
                if replicas < 0 {
                    return Err(ApiError::invalid(
                        info,
                        target.name(),
                        vec![FieldError::invalid(
                            "spec.replicas",
                            &json!(replicas),
                            "must be greater than or equal to 0",
                        )],
                    ));
                }
                let mut next = current.clone();
                next["spec"]["replicas"] = json!(replicas);
                Ok(next)
            })
            .await?;
        Ok((code, self.scale_of(info, &object)))
    }

    // ---------------------------------------------------------------- binding

    /// `POST pods/<name>/binding`: the scheduler's assignment of a pod to a node.
    pub async fn bind(&self, target: &Target, ctx: &Ctx, body: Value) -> ApiResult<(u16, Value)> {
        let node = body
            .pointer("/target/name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        if node.is_empty() {
            return Err(ApiError::invalid(
                target.info,
                target.name(),
                vec![FieldError::required("target.name", "")],
            ));
        }
        let main = Target {
            sub: None,
            ..target.clone()
        };
        let info = target.info;
        let key = main.key();
        for _ in 0..MAX_RETRIES {
            let current = self
                .storage
                .get(&key)
                .await?
                .ok_or_else(|| ApiError::not_found(info, target.name()))?;
            if let Some(uid) = body.pointer("/metadata/uid").and_then(Value::as_str) {
                if Some(uid) != meta(&current.object)["uid"].as_str() {
                    return Err(ApiError::conflict(
                        info,
                        target.name(),
                        "the UID in the binding does not match the pod",
                    ));
                }
            }
            if !meta(&current.object)["deletionTimestamp"].is_null() {
                return Err(ApiError::conflict(
                    info,
                    target.name(),
                    "pod is being deleted, cannot be assigned to a host",
                ));
            }
            if let Some(existing) = current
                .object
                .pointer("/spec/nodeName")
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
            {
                return Err(ApiError::conflict(
                    info,
                    target.name(),
                    &format!(
                        "pod {} is already assigned to node \"{existing}\"",
                        target.name()
                    ),
                ));
            }
            let mut next = current.object.clone();
            next["spec"]["nodeName"] = json!(node);
            let conditions = next["status"]["conditions"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let mut conditions: Vec<Value> = conditions
                .into_iter()
                .filter(|c| c["type"] != "PodScheduled")
                .collect();
            conditions.push(json!({"type": "PodScheduled", "status": "True", "lastProbeTime": null, "lastTransitionTime": now_rfc3339()}));
            next["status"]["conditions"] = json!(conditions);
            if ctx.dry_run() {
                return Ok((201, success_status(None)));
            }
            match self
                .storage
                .update(&key, &next, current.mod_revision, &Extra::default())
                .await?
            {
                Write::Done(_) => return Ok((201, success_status(None))),
                Write::Conflict => continue,
            }
        }
        Err(ApiError::modified(info, target.name()))
    }

    // ---------------------------------------------------------------- delete

    /// DELETE of one object with DeleteOptions (body or query): preconditions, graceful pod
    /// deletion, finalizers and propagation policy.
    pub async fn delete(
        &self,
        target: &Target,
        ctx: &Ctx,
        options: &Value,
    ) -> ApiResult<(u16, Value)> {
        let info = target.info;
        let key = target.key();
        let grace_param = ctx
            .param("gracePeriodSeconds")
            .and_then(|g| g.parse::<i64>().ok());
        let grace_option = options
            .get("gracePeriodSeconds")
            .and_then(Value::as_i64)
            .or(grace_param);
        let propagation = options
            .get("propagationPolicy")
            .and_then(Value::as_str)
            .or(ctx.param("propagationPolicy"))
            .map(str::to_string);
        let orphan_dependents = options.get("orphanDependents").and_then(Value::as_bool);
        let dry_run = ctx.dry_run()
            || options
                .get("dryRun")
                .and_then(Value::as_array)
                .is_some_and(|a| a.iter().any(|v| v == "All"));
        if let Some(p) = &propagation {
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
            if let Some(pre) = options.get("preconditions") {
                if let Some(uid) = pre.get("uid").and_then(Value::as_str) {
                    let actual = meta(&object)["uid"].as_str().unwrap_or_default();
                    if uid != actual {
                        return Err(ApiError::conflict(info, target.name(), &format!("Precondition failed: UID in precondition: {uid}, UID in object meta: {actual}")));
                    }
                }
                if let Some(rv) = pre.get("resourceVersion").and_then(Value::as_str) {
                    let actual = current.mod_revision.to_string();
                    if rv != actual {
                        return Err(ApiError::conflict(info, target.name(), &format!("Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {actual}")));
                    }
                }
            }
            let mut next = object.clone();
            let already_deleting = !meta(&object)["deletionTimestamp"].is_null();

            // Namespaces: mark Terminating; the namespace controller empties and finalizes them.
            if info.resource == "namespaces" && info.group.is_empty() {
                if already_deleting {
                    return Ok((200, object));
                }
                meta_mut(&mut next).insert("deletionTimestamp".into(), json!(now_rfc3339()));
                meta_mut(&mut next).insert("deletionGracePeriodSeconds".into(), json!(0));
                next["status"]["phase"] = json!("Terminating");
                let spec_finalizers = next["spec"]["finalizers"]
                    .as_array()
                    .is_some_and(|a| !a.is_empty());
                if !spec_finalizers && finalizers(&next).is_empty() {
                    match self
                        .delete_now(target, current.mod_revision, next, dry_run)
                        .await?
                    {
                        Some(done) => return Ok(done),
                        None => continue, // changed meanwhile: read again
                    }
                }
                match self
                    .write_marked(&key, next, current.mod_revision, dry_run)
                    .await?
                {
                    Some(done) => return Ok(done),
                    None => continue,
                }
            }

            // Graceful deletion of pods that a kubelet runs.
            let mut grace = 0;
            if info.resource == "pods" && info.group.is_empty() {
                let scheduled = object
                    .pointer("/spec/nodeName")
                    .and_then(Value::as_str)
                    .is_some_and(|n| !n.is_empty());
                let phase = object
                    .pointer("/status/phase")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                let terminal = phase == "Succeeded" || phase == "Failed";
                let default_grace = object
                    .pointer("/spec/terminationGracePeriodSeconds")
                    .and_then(Value::as_i64)
                    .unwrap_or(30);
                grace = grace_option.unwrap_or(default_grace).max(0);
                if !scheduled || terminal {
                    grace = 0;
                }
                if already_deleting {
                    let current_grace = meta(&object)["deletionGracePeriodSeconds"]
                        .as_i64()
                        .unwrap_or(0);
                    if grace >= current_grace && current_grace > 0 {
                        return Ok((200, object));
                    }
                }
            }

            let mut fins = finalizers(&object);
            let policy = propagation.clone().or_else(|| {
                orphan_dependents.map(|o| {
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
                    m.insert("deletionTimestamp".into(), json!(rfc3339_in(grace)));
                }
                m.insert("deletionGracePeriodSeconds".into(), json!(grace));
                if tracks_generation(info) && !already_deleting {
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

    /// Removes the object; `None` when it changed meanwhile (the caller retries).
    async fn delete_now(
        &self,
        target: &Target,
        expected: i64,
        mut object: Value,
        dry_run: bool,
    ) -> ApiResult<Option<(u16, Value)>> {
        let info = target.info;
        let returns_object =
            matches!(info.resource, "pods" | "services" | "namespaces") && info.group.is_empty();
        let status = || {
            success_status(Some(
                json!({"name": target.name(), "group": info.group, "kind": info.resource, "uid": meta(&object)["uid"]}),
            ))
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
        match self
            .storage
            .delete(&target.key(), expected, &self.release_keys(info, &object))
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
        let fields = FieldSelector::parse(ctx.param("fieldSelector").unwrap_or_default(), info)?;
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

    // ---------------------------------------------------------------- eviction

    /// `POST pods/<name>/eviction`: deletes the pod (PodDisruptionBudgets are not checked yet).
    pub async fn evict(&self, target: &Target, ctx: &Ctx, body: Value) -> ApiResult<(u16, Value)> {
        let main = Target {
            sub: None,
            ..target.clone()
        };
        let options = body.get("deleteOptions").cloned().unwrap_or(json!({}));
        self.delete(&main, ctx, &options).await?;
        Ok((201, success_status(None)))
    }
}

/// How a `/scale` request changes the Scale.
pub enum ScaleChange<'a> {
    Replace(Value),
    Patch(PatchType, &'a [u8]),
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
    for k in ["labels", "annotations", "finalizers", "ownerReferences"] {
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

/// Upstream deletes an object during an update that leaves it marked for deletion with no
/// finalizers and no grace period left (and, for namespaces, no spec finalizers).
fn should_delete_after_update(info: &ResourceInfo, object: &Value) -> bool {
    let m = meta(object);
    if m["deletionTimestamp"].is_null() || !finalizers(object).is_empty() {
        return false;
    }
    if info.resource == "namespaces" && info.group.is_empty() {
        return object["spec"]["finalizers"]
            .as_array()
            .is_none_or(|a| a.is_empty());
    }
    m["deletionGracePeriodSeconds"].as_i64().unwrap_or(0) == 0
}

/// A patch that cannot be applied. Upstream answers some merge failures with a bare 500; a patch
/// that does not fit the object is the client's error, so skiff answers 400 there.
fn patch_error(e: patch::PatchError) -> ApiError {
    let code = e.http_code();
    if code >= 500 {
        return ApiError::bad_request(e.to_string());
    }
    let mut err = ApiError::new(code, e.reason(), e.status_message());
    if code == 422 {
        err.details =
            Some(json!({"causes": [{"reason": "FieldValueInvalid", "message": e.to_string()}]}));
    }
    err
}

pub fn partial_metadata(object: &Value) -> Value {
    json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": object["metadata"]})
}

pub fn parse_rv(rv: &str) -> ApiResult<i64> {
    rv.parse::<i64>()
        .ok()
        .filter(|n| *n >= 0)
        .ok_or_else(|| ApiError::bad_request(format!("invalid resource version: {rv:?}")))
}

fn encode_continue(next_key: &str, revision: i64) -> String {
    let token = json!({"v": "meta.k8s.io/v1", "rv": revision, "start": next_key});
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(token.to_string())
}

fn decode_continue(token: &str, prefix: &str) -> ApiResult<(Option<String>, i64)> {
    let bad = || ApiError::bad_request("continue key is not valid: the token is malformed");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token.trim_end_matches('='))
        .map_err(|_| bad())?;
    let v: Value = serde_json::from_slice(&bytes).map_err(|_| bad())?;
    let start = v["start"].as_str().ok_or_else(bad)?.to_string();
    let rv = v["rv"].as_i64().ok_or_else(bad)?;
    if !start.starts_with(prefix) {
        return Err(ApiError::bad_request(
            "continue key is not valid: the token does not belong to this list",
        ));
    }
    Ok((Some(start), rv))
}

pub type Shared = Arc<ApiServer>;
