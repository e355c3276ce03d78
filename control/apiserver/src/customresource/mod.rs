//! Custom resources: what a CustomResourceDefinition adds to the API server once it is
//! Established (upstream's `apiextensions-apiserver`, folded into the one server as upstream's
//! delegation chain does).
//!
//! A served version of a CRD is one more [`ResourceInfo`] — the same table line a built-in
//! resource has, built at run time — whose strategy is a [`CustomResource`]. So custom
//! resources go through the same verbs (`handlers/`), storage, watch cache, selectors, patch and
//! apply code, discovery and Table output as built-ins; what is theirs is here, a file per
//! concern:
//!
//! - `schema.rs`: the structural schema read from `openAPIV3Schema`;
//! - `structural.rs`: whether a CRD's schema is structural (the CRD's validation uses it);
//! - `prune.rs`, `default.rs`, `validate.rs`, `formats.rs`: what a write goes through —
//!   unknown fields dropped (reported under `fieldValidation`), defaults filled in, the value
//!   validated with upstream's messages;
//! - `cel.rs`: the CEL rules of `x-kubernetes-validations` (transition rules on updates);
//! - `columns.rs`: `additionalPrinterColumns` (and the JSONPath they use);
//! - `scale.rs`: the scale subresource's paths;
//! - `controller.rs`: the CRD controllers upstream runs beside its handler — names
//!   (NamesAccepted), establishing, and the cleanup finalizer that deletes a CRD's objects
//!   before the CRD — and the [`Registry`] of what is served, updated from them.
//!
//! The [`ResourceInfo`] of a served version lives as long as the process (the tables hand out
//! `&'static` entries). One is built per distinct CRD state that gets served and reused while
//! the CRD does not change, so what stays behind is one small entry per CRD change.

pub mod cel;
pub mod columns;
pub mod controller;
pub mod default;
pub mod formats;
pub mod prune;
pub mod scale;
pub mod schema;
pub mod structural;
pub mod validate;

use std::collections::HashMap;

use parking_lot::RwLock;
use serde_json::Value;

use crate::error::FieldError;
use crate::registry::Strategy;
use crate::resources::{ResourceInfo, Sub, TypedOps, ALL_VERBS};
use crate::table::Convertor;

/// One served version of a CRD: everything its objects' writes and reads need.
#[derive(Debug)]
pub struct CustomResource {
    /// The CRD's name (`widgets.example.com`).
    pub crd: String,
    /// The version objects are stored in (`spec.versions[].storage`).
    pub storage_version: String,
    /// The served versions, for conversion (`None` strategy: only apiVersion changes).
    pub versions: Vec<String>,
    pub schema: Option<schema::Schema>,
    /// The schema sets a default somewhere (computed once: every object read is defaulted
    /// only when it does).
    pub has_defaults: bool,
    /// `spec.preserveUnknownFields` (v1beta1 CRDs only): nothing is pruned.
    pub preserve_unknown_fields: bool,
    pub columns: columns::Columns,
    pub selectable: &'static [&'static str],
    pub scale: Option<scale::ScalePaths>,
    /// The CRD is being deleted: no new objects (upstream answers 405).
    pub terminating: bool,
}

impl CustomResource {
    /// Prunes a decoded object against the schema; returns the dropped paths.
    pub fn prune(&self, object: &mut Value) -> Vec<String> {
        let mut dropped = Vec::new();
        if let (Some(schema), false) = (&self.schema, self.preserve_unknown_fields) {
            prune::prune(object, schema, &mut dropped);
        }
        dropped
    }

    /// `apiVersion` rewritten for a version of the same CRD (`None` conversion).
    pub fn convert(&self, object: &mut Value, api_version: &str) {
        if let Some(o) = object.as_object_mut() {
            if o.get("apiVersion").and_then(Value::as_str) != Some(api_version) {
                o.insert("apiVersion".into(), Value::from(api_version));
            }
        }
    }
}

impl Strategy for CustomResource {
    fn tracks_generation(&self) -> bool {
        true
    }

    /// Upstream's custom resource strategy: any change outside metadata (and outside status,
    /// when status is a subresource) is a new generation.
    fn generation_changed(&self, old: &Value, new: &Value, status_subresource: bool) -> bool {
        let strip = |v: &Value| -> Value {
            let mut v = v.clone();
            if let Some(o) = v.as_object_mut() {
                o.remove("metadata");
                if status_subresource {
                    o.remove("status");
                }
            }
            v
        };
        strip(old) != strip(new)
    }

    fn default(&self, object: &mut Value) {
        if let Some(schema) = &self.schema {
            default::apply(object, schema);
        }
    }

    fn validate(&self, object: &Value, errors: &mut Vec<FieldError>) {
        if let Some(schema) = &self.schema {
            let structural = validate::validate(object, schema);
            // CEL rules run on values of the right shape only (upstream skips them too when
            // the schema validation failed).
            if structural.is_empty() {
                cel::validate(object, None, schema, "", errors);
            }
            errors.extend(structural);
        }
        if let Some(scale) = &self.scale {
            scale.validate(object, errors);
        }
    }

    /// Transition rules (those naming `oldSelf`) compare the update with the stored object.
    fn validate_update(&self, old: &Value, new: &Value, errors: &mut Vec<FieldError>) {
        let Some(schema) = &self.schema else {
            return;
        };
        if !validate::validate(new, schema).is_empty() {
            return;
        }
        let mut all = Vec::new();
        cel::validate(new, Some(old), schema, "", &mut all);
        // Rules without oldSelf were checked by `validate` already.
        let mut plain = Vec::new();
        cel::validate(new, None, schema, "", &mut plain);
        for e in all {
            if !plain
                .iter()
                .any(|p| p.field == e.field && p.message == e.message)
            {
                errors.push(e);
            }
        }
    }

    fn selectable_fields(&self) -> &'static [&'static str] {
        self.selectable
    }

    fn convertor(&self) -> &dyn Convertor {
        &self.columns
    }
}

/// The served custom resources, rebuilt by the CRD controller whenever CRDs change.
#[derive(Default)]
pub struct Registry {
    inner: RwLock<Inner>,
}

#[derive(Default)]
struct Inner {
    served: Vec<&'static ResourceInfo>,
    /// Entries already built, by the CRD state they were built from.
    built: HashMap<String, &'static ResourceInfo>,
}

fn leak(s: &str) -> &'static str {
    Box::leak(s.to_string().into_boxed_str())
}

fn strings(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// Kubernetes' version priority (`v1` > `v1beta2` > `v1beta1` > `v1alpha1` > `foo`), as
/// discovery orders a group's versions and picks the preferred one.
pub fn version_order(a: &str, b: &str) -> std::cmp::Ordering {
    fn key(v: &str) -> (u8, u64, u64, String) {
        let re = regex::Regex::new(r"^v(\d+)(?:(alpha|beta)(\d+))?$").expect("version pattern");
        match re.captures(v) {
            Some(c) => {
                let major: u64 = c[1].parse().unwrap_or(0);
                let (stage, minor) = match c.get(2).map(|m| m.as_str()) {
                    None => (3, 0),
                    Some("beta") => (2, c[3].parse().unwrap_or(0)),
                    _ => (1, c[3].parse().unwrap_or(0)),
                };
                (stage, major, minor, String::new())
            }
            None => (0, 0, 0, v.to_string()),
        }
    }
    let (ka, kb) = (key(a), key(b));
    // Higher stage, major, minor first; non-Kubernetes names last, alphabetically.
    kb.0.cmp(&ka.0)
        .then(kb.1.cmp(&ka.1))
        .then(kb.2.cmp(&ka.2))
        .then(ka.3.cmp(&kb.3))
}

impl Registry {
    pub fn find(
        &self,
        group: &str,
        version: &str,
        resource: &str,
    ) -> Option<&'static ResourceInfo> {
        self.inner
            .read()
            .served
            .iter()
            .copied()
            .find(|r| r.group == group && r.version == version && r.resource == resource)
    }

    pub fn find_kind(&self, api_version: &str, kind: &str) -> Option<&'static ResourceInfo> {
        self.inner
            .read()
            .served
            .iter()
            .copied()
            .find(|r| r.kind == kind && r.api_version() == api_version)
    }

    /// Any served version of `group`/`resource`.
    pub fn find_any(&self, group: &str, resource: &str) -> Option<&'static ResourceInfo> {
        self.inner
            .read()
            .served
            .iter()
            .copied()
            .find(|r| r.group == group && r.resource == resource)
    }

    /// Every served custom resource version, groups together, versions by priority.
    pub fn all(&self) -> Vec<&'static ResourceInfo> {
        self.inner.read().served.clone()
    }

    /// Serves exactly the given CRDs (those Established, with their accepted names).
    pub fn set(&self, crds: &[Value]) {
        let mut inner = self.inner.write();
        let mut served = Vec::new();
        let mut keep = HashMap::new();
        for crd in crds {
            for version in crd
                .pointer("/spec/versions")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter(|v| v["served"].as_bool().unwrap_or(false))
            {
                let fingerprint = format!(
                    "{}\u{0}{}\u{0}{}\u{0}{}\u{0}{}",
                    crd["spec"],
                    crd.pointer("/status/acceptedNames")
                        .cloned()
                        .unwrap_or_default(),
                    version["name"],
                    crd.pointer("/metadata/deletionTimestamp").is_some(),
                    crd.pointer("/metadata/uid").cloned().unwrap_or_default(),
                );
                let info = match inner.built.get(&fingerprint) {
                    Some(info) => *info,
                    None => match build(crd, version) {
                        Some(info) => info,
                        None => continue,
                    },
                };
                keep.insert(fingerprint, info);
                served.push(info);
            }
        }
        served.sort_by(|a, b| {
            a.group
                .cmp(b.group)
                .then(version_order(a.version, b.version))
                .then(a.resource.cmp(b.resource))
        });
        inner.served = served;
        inner.built = keep;
    }
}

/// The table line of one served version of an established CRD.
fn build(crd: &Value, version: &Value) -> Option<&'static ResourceInfo> {
    let names = crd.pointer("/status/acceptedNames")?;
    let plural = names["plural"].as_str().filter(|p| !p.is_empty())?;
    let kind = names["kind"].as_str().filter(|k| !k.is_empty())?;
    let group = crd.pointer("/spec/group")?.as_str()?;
    let version_name = version["name"].as_str()?;
    let singular = names["singular"]
        .as_str()
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .unwrap_or_else(|| kind.to_lowercase());
    let versions: Vec<&Value> = crd
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .map(|v| v.iter().collect())
        .unwrap_or_default();
    let storage_version = versions
        .iter()
        .find(|v| v["storage"].as_bool().unwrap_or(false))
        .and_then(|v| v["name"].as_str())
        .unwrap_or(version_name)
        .to_string();
    // Per-version settings, or the CRD's top-level ones (CRDs written as v1beta1).
    let per_version = |key: &str| version.get(key).or_else(|| crd["spec"].get(key));
    let subresources = per_version("subresources");
    let has_status = subresources.and_then(|s| s.get("status")).is_some();
    let scale = subresources
        .and_then(|s| s.get("scale"))
        .and_then(scale::ScalePaths::from_json);
    let mut subs = Vec::new();
    if has_status {
        subs.push(Sub::Status);
    }
    if scale.is_some() {
        subs.push(Sub::Scale);
    }
    let selectable: Vec<&'static str> = per_version("selectableFields")
        .and_then(Value::as_array)
        .map(|l| {
            l.iter()
                .filter_map(|f| f["jsonPath"].as_str())
                .map(|p| leak(p.trim_start_matches('.')))
                .collect()
        })
        .unwrap_or_default();
    let schema = schema::version_schema(crd, version);
    let custom: &'static CustomResource = Box::leak(Box::new(CustomResource {
        crd: crd.pointer("/metadata/name")?.as_str()?.to_string(),
        storage_version,
        versions: versions
            .iter()
            .filter_map(|v| v["name"].as_str().map(str::to_string))
            .collect(),
        has_defaults: schema.as_ref().is_some_and(schema::Schema::has_defaults),
        schema,
        preserve_unknown_fields: crd
            .pointer("/spec/preserveUnknownFields")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        columns: columns::Columns::from_definitions(per_version("additionalPrinterColumns")),
        selectable: Box::leak(selectable.into_boxed_slice()),
        scale,
        terminating: crd.pointer("/metadata/deletionTimestamp").is_some(),
    }));
    let short_names: Vec<&'static str> = strings(names.get("shortNames"))
        .iter()
        .map(|s| leak(s))
        .collect();
    let categories: Vec<&'static str> = strings(names.get("categories"))
        .iter()
        .map(|s| leak(s))
        .collect();
    let info = ResourceInfo {
        group: leak(group),
        version: leak(version_name),
        resource: leak(plural),
        kind: leak(kind),
        singular: leak(&singular),
        namespaced: crd.pointer("/spec/scope").and_then(Value::as_str) == Some("Namespaced"),
        short_names: Box::leak(short_names.into_boxed_slice()),
        categories: Box::leak(categories.into_boxed_slice()),
        subresources: Box::leak(subs.into_boxed_slice()),
        verbs: ALL_VERBS,
        typed: UNTYPED,
        strategy: custom,
        custom: Some(custom),
        conversion: None,
    };
    Some(Box::leak(Box::new(info)))
}

fn untyped_normalize(v: &Value) -> Result<Value, serde_json::Error> {
    Ok(v.clone())
}

fn untyped_schema(g: &mut schemars::SchemaGenerator) -> schemars::Schema {
    g.subschema_for::<Value>()
}

fn untyped_definition() -> std::borrow::Cow<'static, str> {
    std::borrow::Cow::Borrowed("io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.JSON")
}

/// Custom objects have no Rust type: decoding is pruning against the schema (`decode_object`).
const UNTYPED: TypedOps = TypedOps {
    normalize: untyped_normalize,
    schema: untyped_schema,
    definition: untyped_definition,
};

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Server-side apply merges `x-kubernetes-list-type: map` lists by their key and records
    /// the items' keys in managedFields; other lists are atomic.
    #[test]
    fn apply_merges_map_lists_by_key() {
        let schema: &'static schema::Schema = Box::leak(Box::new(schema::Schema::from_json(
            &json!({"type": "object", "properties": {"spec": {"type": "object", "properties": {
                "ports": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"],
                          "items": {"type": "object", "properties": {"name": {"type": "string"}, "port": {"type": "integer"}}}},
                "args": {"type": "array", "items": {"type": "string"}}
            }}}}),
        )));
        let name = crate::patch::custom_type_name(schema);
        let original = json!({"apiVersion": "x.io/v1", "kind": "K", "metadata": {"name": "a"},
            "spec": {"ports": [{"name": "a", "port": 1}, {"name": "b", "port": 2}], "args": ["x", "y"]}});
        let patched = crate::patch::apply_patch(
            &name,
            &original,
            crate::patch::PatchType::Apply,
            br#"{"apiVersion": "x.io/v1", "kind": "K", "spec": {"ports": [{"name": "b", "port": 3}], "args": ["z"]}}"#,
        )
        .unwrap();
        assert_eq!(
            patched["spec"]["ports"],
            json!([{"name": "a", "port": 1}, {"name": "b", "port": 3}])
        );
        assert_eq!(patched["spec"]["args"], json!(["z"]));
        let fields = crate::apply::field_set(
            &name,
            &json!({"spec": {"ports": [{"name": "b", "port": 3}]}}),
            false,
        );
        assert!(fields["f:spec"]["f:ports"]
            .get(r#"k:{"name":"b"}"#)
            .is_some());
    }

    #[test]
    fn versions_sort_as_kubernetes_does() {
        let mut v = vec![
            "v1alpha1", "foo", "v2", "v1beta1", "v1", "v1beta2", "bar", "v10",
        ];
        v.sort_by(|a, b| version_order(a, b));
        assert_eq!(
            v,
            vec!["v10", "v2", "v1", "v1beta2", "v1beta1", "v1alpha1", "bar", "foo"]
        );
    }
}
