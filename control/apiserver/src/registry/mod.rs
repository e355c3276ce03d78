//! The registry: each served resource's behaviour in one place, as upstream keeps it in
//! `pkg/registry/<group>/<resource>/strategy.go`.
//!
//! A resource's [`Strategy`] holds everything that differs from one resource to the next:
//! defaulting, create-time admission defaults, validation (names, fields, what an update may
//! change), the fields a field selector may name, its table printer (columns beside cells), and
//! the hooks around writes — service IP and port allocation, pod graceful deletion, namespace
//! finalization. `resources.rs` is the one table of served resources; each line names its strategy.
//! The generic verbs in `handlers/` know no resource by name: they ask the strategy.
//!
//! Layout: `core/` (the legacy group, a file per resource; services are a folder with their
//! allocator), `apps/` and `batch/` (a file per resource), and a file per smaller group. A group
//! not served yet (apiregistration) already has its table printer here, so serving it is adding
//! a strategy and a line in `resources.rs`; a further version of a served resource is a line
//! with a `resources::Conversion`.
//!
//! The request path: HTTP (`http.rs`: routing, authentication, body decoding) → the verbs
//! (`handlers/`: decode and check the object, call the strategy, read-modify-write through
//! `storage.rs` and the watch cache) → the response shaping (`response.rs`: JSON, Table or
//! PartialObjectMetadata) → HTTP.

pub mod admissionregistration;
pub mod apiextensions;
pub mod apiregistration;
pub mod apps;
pub mod authentication;
pub mod authorization;
pub mod autoscaling;
pub mod batch;
pub mod certificates;
pub mod coordination;
pub mod core;
pub mod discovery;
pub mod fields;
pub mod flowcontrol;
pub mod metadata;
pub mod networking;
pub mod node;
pub mod policy;
pub mod rbac;
pub mod resource;
pub mod scheduling;
pub mod storage;
pub mod storagemigration;

use futures::future::BoxFuture;
use serde_json::Value;

use crate::auth::UserInfo;
use crate::error::{ApiResult, FieldError};
use crate::names::{self, NameRule};
use crate::resources::Sub;
use crate::storage::{Extra, Storage};
use crate::table::{self, Printer};

/// What admission may read: the current objects of another resource, from the watch cache (the
/// handlers implement it; upstream's admission plugins read through informers the same way).
pub trait Lookup: Sync {
    /// Every object of the resource `group`/`resource` (all namespaces).
    fn list<'a>(
        &'a self,
        group: &'a str,
        resource: &'a str,
    ) -> BoxFuture<'a, ApiResult<Vec<std::sync::Arc<Value>>>>;

    /// The objects of `group`/`resource` in one namespace. When the cache has none there, the
    /// API server reads the store and reuses that answer for 30 s (upstream LimitRanger's live
    /// lookup, so a LimitRange created a moment ago applies).
    fn list_in<'a>(
        &'a self,
        group: &'a str,
        resource: &'a str,
        namespace: &'a str,
    ) -> BoxFuture<'a, ApiResult<Vec<std::sync::Arc<Value>>>> {
        Box::pin(async move {
            let all = self.list(group, resource).await?;
            Ok(all
                .into_iter()
                .filter(|o| {
                    o.pointer("/metadata/namespace").and_then(Value::as_str) == Some(namespace)
                })
                .collect())
        })
    }

    /// The object `namespace/name` of `group`/`resource`, if it exists. The API server reads
    /// its watch cache and, on a miss, the store (an object created a moment ago may not be in
    /// the cache yet), as upstream's informer-backed getters fall back to a live read.
    fn get<'a>(
        &'a self,
        group: &'a str,
        resource: &'a str,
        namespace: Option<&'a str>,
        name: &'a str,
    ) -> BoxFuture<'a, ApiResult<Option<std::sync::Arc<Value>>>> {
        Box::pin(async move {
            Ok(self.list(group, resource).await?.into_iter().find(|o| {
                o["metadata"]["name"] == name && o["metadata"]["namespace"].as_str() == namespace
            }))
        })
    }

    /// The objects of `group`/`resource` in one namespace as the store holds them now, each with
    /// its revision, for admission that writes them back conditionally (ResourceQuota); when
    /// there are any, with the namespace's write lock held until the [`Current`] is dropped.
    /// The API server answers an empty list from its watch cache without asking the store.
    fn list_current<'a>(
        &'a self,
        group: &'a str,
        resource: &'a str,
        namespace: &'a str,
    ) -> BoxFuture<'a, ApiResult<Current>> {
        Box::pin(async move {
            let items = self
                .list_in(group, resource, namespace)
                .await?
                .into_iter()
                .map(|o| {
                    let rev = o
                        .pointer("/metadata/resourceVersion")
                        .and_then(Value::as_str)
                        .and_then(|r| r.parse().ok())
                        .unwrap_or(0);
                    (o, rev)
                })
                .collect();
            Ok(Current { items, guard: None })
        })
    }

    /// Whether the admission plugin `name` (upstream's name, e.g. `ServiceAccount`) runs: all
    /// do unless `--disable-admission-plugins` names them.
    fn admission_enabled(&self, _name: &str) -> bool {
        true
    }
}

/// Objects read from the store for a conditional write-back ([`Lookup::list_current`]).
#[derive(Default)]
pub struct Current {
    pub items: Vec<(std::sync::Arc<Value>, i64)>,
    /// Held until the write that depends on `items` is done: writers charging the same
    /// namespace's quotas go one at a time (upstream's quota admission queues them per
    /// namespace), so they do not spend their retries failing each other's compares.
    pub guard: Option<tokio::sync::OwnedMutexGuard<()>>,
}

/// How a DELETE proceeds, as the strategy decides it.
#[derive(Debug, PartialEq)]
pub enum DeletePlan {
    /// The object is already being deleted the way this request asks: answer it unchanged.
    Unchanged,
    /// The generic path with this grace period: marked for deletion while the grace period runs
    /// or finalizers remain, removed at once otherwise.
    Graceful(i64),
    /// The strategy marked the object itself (in `next`); it is stored as marked, or removed at
    /// once when `delete_now` (nothing left to wait for).
    Marked { delete_now: bool },
}

/// A resource's behaviour (upstream's RESTCreateStrategy, RESTUpdateStrategy,
/// RESTDeleteStrategy, TableConvertor and field attributes in one trait). Every method has the
/// behaviour of a plain resource as its default, so a strategy states only what differs.
pub trait Strategy: Sync {
    /// How names are checked.
    fn name_rule(&self) -> NameRule {
        names::SUBDOMAIN
    }

    /// Whether `metadata.generation` counts spec changes.
    fn tracks_generation(&self) -> bool {
        false
    }

    /// Whether an update makes a new generation (when generations are tracked): a change of
    /// `spec` for built-ins; custom resources count any change outside metadata and status.
    fn generation_changed(&self, old: &Value, new: &Value, _status_subresource: bool) -> bool {
        old.get("spec") != new.get("spec")
    }

    /// Resources with a status subresource get their status from the server, not from the
    /// creating client — except those whose status is the creator's to set (nodes, namespaces).
    fn keeps_status_on_create(&self) -> bool {
        false
    }

    /// Upstream defaulting (`pkg/apis/<group>/v1/defaults.go`), on every create and update.
    fn default(&self, _object: &mut Value) {}

    /// Create-time defaults: `PrepareForCreate` and the admission plugins every cluster runs.
    /// `uid` is the new object's.
    fn prepare_for_create(&self, _object: &mut Value, _uid: &str) {}

    /// Create-time fields that come from who asks rather than from the body (upstream's
    /// `PrepareForCreate` reads the request's user from its context: a CertificateSigningRequest
    /// records its requester).
    fn record_requester(&self, _object: &mut Value, _user: &UserInfo) {}

    /// Admission on create that needs other objects (upstream's mutating and validating
    /// admission plugins, e.g. Priority): may change the object or refuse it. `None` when the
    /// resource has none.
    fn admit<'a>(
        &'a self,
        _lookup: &'a dyn Lookup,
        _object: &'a mut Value,
    ) -> Option<BoxFuture<'a, ApiResult<()>>> {
        None
    }

    /// What a main-resource update may not change beyond the generic rules (identity, status).
    fn prepare_for_update(&self, _new: &mut Value, _old: &Value) {}

    /// Field rules for a new or updated object (the name is checked generically).
    fn validate(&self, _object: &Value, _errors: &mut Vec<FieldError>) {}

    /// Rules only a new object must meet (beyond `validate`, which both creates and updates
    /// meet).
    fn validate_create(&self, _object: &Value, _errors: &mut Vec<FieldError>) {}

    /// Rules that compare an update with the stored object (immutable fields).
    fn validate_update(&self, _old: &Value, _new: &Value, _errors: &mut Vec<FieldError>) {}

    /// A write through a subresource (status, approval), after the generic rules took from the
    /// request only what that subresource may change: what the resource's own status strategy
    /// adds (condition timestamps, fields another subresource owns).
    fn prepare_for_subresource_update(&self, _sub: Sub, _new: &mut Value, _old: &Value) {}

    /// The update rules of a write through a subresource; by default those of a main-resource
    /// update.
    fn validate_subresource_update(
        &self,
        _sub: Sub,
        old: &Value,
        new: &Value,
        errors: &mut Vec<FieldError>,
    ) {
        self.validate_update(old, new, errors)
    }

    /// A resource whose objects are computed on each read instead of stored (upstream's
    /// componentstatuses): every object, now. `None` for stored resources.
    fn computed<'a>(&'a self, _probes: &'a Probes) -> Option<BoxFuture<'a, Vec<Value>>> {
        None
    }

    /// The `Warning` every request on a deprecated resource gets (upstream's
    /// `APILifecycleDeprecated`).
    fn deprecated(&self) -> Option<&'static str> {
        None
    }

    /// Field paths a field selector may name beyond metadata.name and metadata.namespace.
    fn selectable_fields(&self) -> &'static [&'static str] {
        &[]
    }

    /// The table printer for `kubectl get`.
    fn printer(&self) -> &'static Printer {
        &table::BUILTIN_DEFAULT
    }

    /// What makes the Table rows: the printer, unless the resource's columns are data (custom
    /// resources).
    fn convertor(&self) -> &dyn table::Convertor {
        self.printer()
    }

    /// Allocations written in the same transaction as the object (service IPs and node ports);
    /// `None` when the resource allocates nothing. `old` is the stored object on update.
    fn allocate<'a>(
        &'a self,
        _storage: &'a Storage,
        _old: Option<&'a Value>,
        _new: &'a mut Value,
        _key: &'a str,
    ) -> Option<BoxFuture<'a, ApiResult<Extra>>> {
        None
    }

    /// Keys released in the same transaction as the object's removal.
    fn held_keys(&self, _object: &Value) -> Vec<String> {
        Vec::new()
    }

    /// Decides how a DELETE proceeds. `next` starts as a copy of `object`; `grace` is the
    /// request's gracePeriodSeconds.
    fn before_delete(&self, _object: &Value, _next: &mut Value, _grace: Option<i64>) -> DeletePlan {
        DeletePlan::Graceful(0)
    }

    /// Whether something beyond metadata.finalizers still holds a marked object (namespaces:
    /// spec.finalizers).
    fn blocks_deletion(&self, _object: &Value) -> bool {
        false
    }

    /// Whether DELETE answers with the object (upstream's ReturnDeletedObject) or a Status.
    fn delete_returns_object(&self) -> bool {
        false
    }

    /// Create-only resources that store nothing (access and token reviews) answer a create
    /// with this.
    fn review(&self, _review: &Review, object: Value) -> Value {
        object
    }
}

/// What a review (a create-only resource) may consult: who asks, and the API server's
/// authenticator for TokenReview.
pub struct Review<'a> {
    pub user: &'a UserInfo,
    pub authenticate: &'a (dyn Fn(&str) -> Option<UserInfo> + Sync),
    pub authorizer: &'a crate::auth::Authorizer,
    /// The namespace in the URL (LocalSubjectAccessReview).
    pub namespace: Option<&'a str>,
    /// The audiences a reviewed service-account token was accepted for (the intersection of
    /// its audiences and the review's); `None` for other tokens.
    pub audiences: Option<Vec<String>>,
}

/// Everything a new or updated object must satisfy: its metadata, then the strategy's rules.
pub fn validate(strategy: &dyn Strategy, object: &Value) -> Vec<FieldError> {
    let mut errors = Vec::new();
    metadata::validate(strategy.name_rule(), object, &mut errors);
    strategy.validate(object, &mut errors);
    errors
}

/// What a computed resource may reach: the store and TLS toward local components.
pub struct Probes {
    pub storage: Storage,
    pub insecure_tls: std::sync::Arc<rustls::ClientConfig>,
}

/// A resource whose only behaviour of its own is its printer.
pub struct Printed(pub &'static Printer);

impl Strategy for Printed {
    fn printer(&self) -> &'static Printer {
        self.0
    }
}

/// A resource with no behaviour of its own.
pub struct Plain;

impl Strategy for Plain {}

pub static PLAIN: Plain = Plain;
