//! The REST verbs on stored objects, as upstream's generic registry store
//! (`apiserver/pkg/registry/generic/registry/store.go`) runs them: `read.rs` (get, list),
//! `create.rs`, `update.rs` (update, patch, server-side apply, the guaranteed update loop),
//! `delete.rs` (delete, deletecollection), `subresources.rs` (scale, and the pod
//! subresources binding, eviction and the node-agent proxies) and `token.rs` (the
//! ServiceAccount's TokenRequest). The verbs know no resource by
//! name: everything resource-specific comes from the resource's strategy (`registry/`). They
//! return objects; `response.rs` shapes them for the client, `http.rs` routes to them.

mod create;
mod delete;
mod read;
mod subresources;
mod token;
mod update;

pub use subresources::ScaleChange;

use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{StatusCause, StatusDetails};
use serde_json::{json, Map, Value};

use futures::future::BoxFuture;

use crate::auth::token_file::Tokens;
use crate::auth::UserInfo;
use crate::cache::Caches;
use crate::error::{ApiError, ApiResult};
use crate::registry::Lookup;
use crate::resources::{self, ResourceInfo, Sub};
use crate::response::Output;
use crate::storage::{Storage, Stored};

/// How many times an unconditional update retries after losing a compare-and-swap race.
const MAX_RETRIES: usize = 16;

pub struct ApiServer {
    pub storage: Storage,
    pub caches: Caches,
    pub tokens: Option<Tokens>,
    /// The authorizer chain (`--authorization-mode`).
    pub authorizer: crate::auth::Authorizer,
    pub metrics: crate::metrics::Metrics,
    /// The audit policy and log (`--audit-policy-file`, `--audit-log-path`).
    pub audit: crate::audit::Auditor,
    /// host:port clients reach this server at (discovery's serverAddressByClientCIDRs).
    pub server_address: String,
    /// Admission's reads from the store where the cache had nothing in a namespace, kept a
    /// while (upstream LimitRanger's live-lookup cache).
    pub live_lookups: LiveLookups,
    /// The service-account token issuer and authenticator (`auth::serviceaccount`); `None`:
    /// no TokenRequest API and no service-account authentication.
    pub service_accounts: Option<crate::auth::serviceaccount::ServiceAccountTokens>,
    /// Admission plugins turned off with `--disable-admission-plugins` (upstream's names).
    pub disabled_admission_plugins: Vec<String>,
    /// Per key prefix, the lock writers hold while they charge what the prefix holds
    /// (`Lookup::list_current`: a namespace's ResourceQuotas).
    pub namespace_locks: NamespaceLocks,
    /// How pods/log, exec, attach and portforward reach kubelets (`kubelet_proxy`).
    pub kubelet_client: crate::kubelet_proxy::KubeletClient,
    /// The custom resources served now (Established CRDs), kept by the CRD controller.
    pub custom: crate::customresource::Registry,
    /// The group versions extension servers serve, and the front proxy's credentials.
    pub aggregator: crate::aggregator::Aggregator,
    /// API Priority and Fairness (or the max-in-flight limits when it is off).
    pub flow_control: crate::flowcontrol::FlowControl,
}

pub type NamespaceLocks =
    parking_lot::Mutex<std::collections::HashMap<String, Arc<tokio::sync::Mutex<()>>>>;

/// Store reads by key prefix, each good for [`LIVE_LOOKUP_TTL`].
#[derive(Default)]
pub struct LiveLookups(parking_lot::Mutex<std::collections::HashMap<String, LiveLookup>>);

/// When a live lookup was read, and what it found.
type LiveLookup = (std::time::Instant, Vec<Arc<Value>>);

/// How long a live lookup is reused (upstream LimitRanger's `liveTTL`).
const LIVE_LOOKUP_TTL: std::time::Duration = std::time::Duration::from_secs(30);
/// How many live lookups are kept (upstream's LRU holds 10,000).
const LIVE_LOOKUP_ENTRIES: usize = 10_000;

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
    /// The request's audit context (annotations from admission).
    pub audit: crate::audit::Context,
    /// The field manager when the request names none: the user agent up to its first `/`
    /// (upstream's `managerOrUserAgent`), e.g. `kubectl-edit`, `OpenAPI-Generator`.
    pub default_manager: String,
}

impl Ctx {
    /// What admission answered besides its verdict: warnings for the response, annotations for
    /// the audit event.
    pub fn report(&self, outcome: crate::admission::Outcome) {
        self.warnings.lock().extend(outcome.warnings);
        for (key, value) in &outcome.audit_annotations {
            self.audit.annotate(key, value);
        }
    }
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
    /// The manager whose fields this write sets (`?fieldManager=`, else the user agent's).
    pub fn manager(&self) -> &str {
        self.param("fieldManager")
            .filter(|m| !m.is_empty())
            .unwrap_or(&self.default_manager)
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
    pub fn name(&self) -> &str {
        self.name.as_deref().unwrap_or_default()
    }
}

pub(crate) fn meta(v: &Value) -> &Value {
    &v["metadata"]
}

pub(crate) fn meta_mut(v: &mut Value) -> &mut Map<String, Value> {
    if !v["metadata"].is_object() {
        v["metadata"] = json!({});
    }
    v["metadata"]
        .as_object_mut()
        .expect("metadata is an object")
}

pub(crate) fn finalizers(v: &Value) -> Vec<String> {
    meta(v)["finalizers"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|f| f.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// Clears an object's status the way upstream's strategies do: built-in types hold `status` as
/// a Go struct, which always serializes — `{}`, plus the fields Go writes even at their zero
/// value (an HPA's `desiredReplicas: 0`; clients' models require them) — and clients patch under
/// it (the conformance suite's JSON patch `add /status/conditions` needs the parent to exist);
/// custom resources are unstructured, so theirs goes away.
pub(crate) fn clear_status(info: &ResourceInfo, object: &mut Value) {
    if info.is_custom() {
        if let Some(obj) = object.as_object_mut() {
            obj.remove("status");
        }
        return;
    }
    let empty = empty_status(info, object);
    if let Some(obj) = object.as_object_mut() {
        obj.insert("status".into(), empty);
    }
}

/// The zero-value status of `info`'s type, learned once per type from the first object (the
/// typed round trip of an empty status writes the fields Go never omits).
fn empty_status(info: &ResourceInfo, object: &Value) -> Value {
    static LEARNED: std::sync::LazyLock<
        parking_lot::Mutex<std::collections::HashMap<String, Value>>,
    > = std::sync::LazyLock::new(Default::default);
    let key = format!("{}/{}", info.api_version(), info.resource);
    if let Some(known) = LEARNED.lock().get(&key) {
        return known.clone();
    }
    let mut probe = object.clone();
    probe["status"] = json!({});
    match (info.typed.normalize)(&probe) {
        Ok(normalized) => {
            let status = normalized
                .get("status")
                .filter(|s| s.is_object())
                .cloned()
                .unwrap_or_else(|| json!({}));
            LEARNED.lock().insert(key, status.clone());
            status
        }
        // The object itself does not decode (validation reports it): no default to learn.
        Err(_) => json!({}),
    }
}

/// A typed object with a status subresource that arrives without status gets an empty one.
fn with_status(info: &ResourceInfo, mut decoded: Value) -> Value {
    if info.has(Sub::Status) && decoded.get("status").is_none_or(Value::is_null) {
        clear_status(info, &mut decoded);
    }
    decoded
}

fn unknown_fields(sent: &Value, decoded: &Value, path: &str, out: &mut Vec<String>) {
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
    let mut unknown = Vec::new();
    let decoded = match info.custom {
        Some(custom) => decode_custom(info, custom, &body, &mut unknown)?,
        None => {
            let decoded = (info.typed.normalize)(&body).map_err(|e| {
                ApiError::bad_request(format!(
                    "{} in version \"{}\" cannot be handled as a {}: {e}",
                    info.kind, info.version, info.kind
                ))
            })?;
            unknown_fields(&body, &decoded, "", &mut unknown);
            with_status(info, decoded)
        }
    };
    let duplicates = std::mem::take(&mut *ctx.duplicate_fields.lock());
    if !unknown.is_empty() || !duplicates.is_empty() {
        // Unknown fields first, then duplicates: the order upstream's conformance suite reads.
        let list: Vec<String> = unknown
            .iter()
            .map(|f| format!("unknown field \"{f}\""))
            .chain(
                duplicates
                    .iter()
                    .map(|f| format!("duplicate field \"{f}\"")),
            )
            .collect();
        match ctx.field_validation()? {
            // Custom resources answer with the decoder's whole sentence, as upstream's
            // unstructured decoder does.
            FieldValidation::Strict if info.is_custom() => {
                return Err(ApiError::bad_request(format!(
                    "{} in version \"{}\" cannot be handled as a {}: strict decoding error: {}",
                    info.kind,
                    info.version,
                    info.kind,
                    list.join(", ")
                )))
            }
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
    let mut decoded = decoded;
    drop_empty_metadata(&mut decoded);
    if let Some(conversion) = info.conversion {
        // From here on a built-in object is in its storage version (upstream's internal type).
        (conversion.to_storage)(&mut decoded);
    }
    Ok(decoded)
}

/// A custom object: its metadata decoded as ObjectMeta (a mistyped metadata field is a 400, as
/// upstream's), the rest pruned against the schema. Unknown fields are what pruning dropped.
pub(super) fn decode_custom(
    info: &ResourceInfo,
    custom: &crate::customresource::CustomResource,
    body: &Value,
    unknown: &mut Vec<String>,
) -> ApiResult<Value> {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    let mut decoded = body.clone();
    if let Some(metadata) = body.get("metadata").filter(|m| !m.is_null()) {
        let typed: ObjectMeta = serde_json::from_value(metadata.clone()).map_err(|e| {
            ApiError::bad_request(format!(
                "{} in version \"{}\" cannot be handled as a {}: {e}",
                info.kind, info.version, info.kind
            ))
        })?;
        let normalized = serde_json::to_value(typed).unwrap_or_else(|_| json!({}));
        unknown_fields(metadata, &normalized, "metadata", unknown);
        decoded["metadata"] = normalized;
    }
    unknown.extend(custom.prune(&mut decoded));
    Ok(decoded)
}

/// A custom object in the version it is stored in (its CRD's storage version). Conversion
/// between a CRD's versions is the `None` strategy: only `apiVersion` changes.
pub(crate) fn to_storage(info: &ResourceInfo, object: &mut Value) {
    if let Some(custom) = info.custom {
        if custom.storage_version != info.version {
            custom.convert(
                object,
                &format!("{}/{}", info.group, custom.storage_version),
            );
        }
    }
}

/// A stored object in the version the request named: a custom object's apiVersion, or a
/// built-in object through its line's `Conversion`. Objects not in the storage version (already
/// converted, or another kind's) are left alone, so converting twice is harmless.
pub(crate) fn to_served(info: &ResourceInfo, object: &mut Value) {
    if let Some(custom) = info.custom {
        custom.convert(object, &info.api_version());
        // Defaults added to the schema after an object was written apply when it is read, as
        // upstream's decoding from storage defaults.
        if custom.has_defaults {
            info.strategy.default(object);
        }
    }
    if let Some(conversion) = info.conversion {
        let stored = object.get("apiVersion").and_then(Value::as_str)
            == Some(conversion.storage_api_version().as_str());
        if stored {
            (conversion.from_storage)(object);
        }
    }
}

/// What the client sees of an answer for a resource served in a version other than its storage
/// version: the object, a list's items or a Table's embedded objects converted (`to_served`).
/// Tables' cells are printed from the stored objects, as upstream prints its internal type.
pub(crate) fn served_view(info: &ResourceInfo, value: &mut Value) {
    if info.custom.is_none() && info.conversion.is_none() {
        return;
    }
    let kind = value
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    if kind == info.kind {
        to_served(info, value);
    } else if kind == info.list_kind() {
        for item in value
            .get_mut("items")
            .and_then(Value::as_array_mut)
            .into_iter()
            .flatten()
        {
            to_served(info, item);
        }
    } else if kind == "Table" {
        for row in value
            .get_mut("rows")
            .and_then(Value::as_array_mut)
            .into_iter()
            .flatten()
        {
            if let Some(object) = row.get_mut("object") {
                to_served(info, object);
            }
        }
    }
}

/// ObjectMeta's collections are `omitempty` upstream: a patch that removes the last finalizer
/// leaves no `finalizers` field, not `[]` (clients read "no finalizers" either way, but
/// `kubectl get -o jsonpath` and watchers comparing objects see the difference).
fn drop_empty_metadata(object: &mut Value) {
    let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) else {
        return;
    };
    for field in ["labels", "annotations", "ownerReferences", "finalizers"] {
        let empty = match meta.get(field) {
            Some(Value::Array(a)) => a.is_empty(),
            Some(Value::Object(o)) => o.is_empty(),
            Some(Value::Null) => true,
            _ => false,
        };
        if empty {
            meta.remove(field);
        }
    }
}

impl ApiServer {
    /// Namespace lifecycle (upstream's NamespaceLifecycle admission): a namespaced object
    /// needs its namespace to exist, and a new one may not enter a terminating namespace.
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
                continue_token: None,
                details: Some(Box::new(StatusDetails {
                    name: Some(target.name().to_string()),
                    group: Some(target.info.group.to_string()),
                    kind: Some(target.info.resource.to_string()),
                    causes: Some(vec![StatusCause {
                        reason: Some("NamespaceTerminating".into()),
                        message: Some(format!("namespace {ns} is being terminated")),
                        field: Some("metadata.namespace".into()),
                    }]),
                    ..StatusDetails::default()
                })),
                ..ApiError::forbidden(format!(
                    "{} \"{}\" is forbidden: unable to create new content in namespace {ns} because it is being terminated",
                    target.info.qualified(),
                    target.name()
                ))
            }),
            Some(_) => Ok(()),
        }
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
}

/// Admission reads other resources from the watch cache, as upstream's plugins read informers.
impl Lookup for ApiServer {
    fn list<'a>(
        &'a self,
        group: &'a str,
        resource: &'a str,
    ) -> BoxFuture<'a, ApiResult<Vec<Arc<Value>>>> {
        Box::pin(async move {
            let info = resources::RESOURCES
                .iter()
                .find(|r| r.group == group && r.resource == resource)
                .ok_or_else(|| ApiError::internal(format!("{resource}.{group} is not served")))?;
            let cacher = self.caches.get(info).await?;
            Ok(cacher.snapshot(&info.key_prefix()).0)
        })
    }

    fn list_in<'a>(
        &'a self,
        group: &'a str,
        resource: &'a str,
        namespace: &'a str,
    ) -> BoxFuture<'a, ApiResult<Vec<Arc<Value>>>> {
        Box::pin(async move {
            let info = served(group, resource)?;
            let prefix = info.namespace_prefix(Some(namespace));
            let cached = self.caches.get(info).await?.snapshot(&prefix).0;
            if !cached.is_empty() {
                return Ok(cached);
            }
            let now = std::time::Instant::now();
            if let Some((at, items)) = self.live_lookups.0.lock().get(&prefix) {
                if now.duration_since(*at) < LIVE_LOOKUP_TTL {
                    return Ok(items.clone());
                }
            }
            let page = self.storage.list(&prefix, None, 0, 0).await?;
            let items: Vec<Arc<Value>> =
                page.items.into_iter().map(|s| Arc::new(s.object)).collect();
            let mut live = self.live_lookups.0.lock();
            if live.len() >= LIVE_LOOKUP_ENTRIES {
                live.retain(|_, (at, _)| now.duration_since(*at) < LIVE_LOOKUP_TTL);
                if live.len() >= LIVE_LOOKUP_ENTRIES {
                    live.clear();
                }
            }
            live.insert(prefix, (now, items.clone()));
            Ok(items)
        })
    }

    fn get<'a>(
        &'a self,
        group: &'a str,
        resource: &'a str,
        namespace: Option<&'a str>,
        name: &'a str,
    ) -> BoxFuture<'a, ApiResult<Option<Arc<Value>>>> {
        Box::pin(async move {
            let info = resources::RESOURCES
                .iter()
                .find(|r| r.group == group && r.resource == resource)
                .ok_or_else(|| ApiError::internal(format!("{resource}.{group} is not served")))?;
            let key = info.key(namespace, name);
            if let Ok(cacher) = self.caches.get(info).await {
                if let Some(object) = cacher.lookup(&key) {
                    return Ok(Some(object));
                }
            }
            Ok(self.storage.get(&key).await?.map(|s| Arc::new(s.object)))
        })
    }

    fn list_current<'a>(
        &'a self,
        group: &'a str,
        resource: &'a str,
        namespace: &'a str,
    ) -> BoxFuture<'a, ApiResult<crate::registry::Current>> {
        Box::pin(async move {
            let info = served(group, resource)?;
            let prefix = info.namespace_prefix(Some(namespace));
            // The cache says whether there is anything to read: a namespace without quotas
            // (almost all of them) costs no lock and no store round trip. One created a moment
            // ago and not yet cached is missed, as upstream's informer-backed plugin misses it.
            if self.caches.get(info).await?.snapshot(&prefix).0.is_empty() {
                return Ok(crate::registry::Current::default());
            }
            let lock = self
                .namespace_locks
                .lock()
                .entry(prefix.clone())
                .or_default()
                .clone();
            let guard = lock.lock_owned().await;
            let page = self.storage.list(&prefix, None, 0, 0).await?;
            Ok(crate::registry::Current {
                items: page
                    .items
                    .into_iter()
                    .map(|s| (Arc::new(s.object), s.mod_revision))
                    .collect(),
                guard: Some(guard),
            })
        })
    }

    fn admission_enabled(&self, name: &str) -> bool {
        !self.disabled_admission_plugins.iter().any(|p| p == name)
    }
}

fn served(group: &str, resource: &str) -> ApiResult<&'static ResourceInfo> {
    resources::RESOURCES
        .iter()
        .find(|r| r.group == group && r.resource == resource)
        .ok_or_else(|| ApiError::internal(format!("{resource}.{group} is not served")))
}

pub fn parse_rv(rv: &str) -> ApiResult<i64> {
    rv.parse::<i64>()
        .ok()
        .filter(|n| *n >= 0)
        .ok_or_else(|| ApiError::bad_request(format!("invalid resource version: {rv:?}")))
}

pub type Shared = Arc<ApiServer>;
