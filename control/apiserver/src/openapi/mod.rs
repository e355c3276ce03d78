//! The OpenAPI documents: v3, one per group version, generated from the k8s-openapi types
//! (schemars) with the extensions kubectl reads — `x-kubernetes-group-version-kind` on kinds
//! and operations, `x-kubernetes-patch-strategy`/`-merge-key` on merged lists, and the
//! `fieldValidation` parameter (kubectl detects server-side field validation from it).
//! Custom resources get a document per served group version, built on request from their
//! CRDs' schemas. `v2` turns the same documents into the single Swagger 2.0 document (JSON,
//! and gnostic's protobuf in `gnostic`), so there is one schema generator for both versions.
//!
//! Files: `paths.rs` lays out a resource's paths and operations, `parameters.rs` holds the
//! query parameters' texts, `v2.rs` the conversion and its cache, `gnostic.rs` the protobuf
//! form (`gnostic_v2.rs` its generated messages).

mod gnostic;
#[allow(clippy::all, dead_code, unused_qualifications)]
mod gnostic_v2;
mod parameters;
mod paths;
pub mod v2;

use std::collections::BTreeMap;
use std::sync::LazyLock;

use bytes::Bytes;
use serde_json::{json, Map, Value};

use k8s_openapi::api::authentication::v1::TokenRequest;
use k8s_openapi::api::autoscaling::v1::Scale;
use k8s_openapi::api::core::v1::Binding;
use k8s_openapi::api::policy::v1::Eviction;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    DeleteOptions, ListMeta, ObjectMeta, Patch, Status,
};
use schemars::{JsonSchema, SchemaGenerator};

use crate::customresource::Registry;
use crate::patch::ListStrategy;
use crate::resources::{group_versions, ResourceInfo, Sub, RESOURCES};

pub struct Documents {
    /// `api/v1`, `apis/apps/v1` → (hash, document)
    pub by_path: BTreeMap<String, (String, Bytes)>,
    pub root: Bytes,
    /// The root's `paths` (custom group versions are added to them per request).
    root_paths: Map<String, Value>,
}

fn gv_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

fn gvk(r: &ResourceInfo, kind: &str) -> Value {
    json!({"group": r.group, "version": r.version, "kind": kind})
}

const SCHEMAS: &str = "#/components/schemas/";

/// Adds `T`'s schema to the generator and returns its reference.
fn reference<T: JsonSchema>(generator: &mut SchemaGenerator) -> String {
    let _ = generator.subschema_for::<T>();
    format!("{SCHEMAS}{}", T::schema_name())
}

/// The references every resource's operations share, and its subresources' kinds.
fn refs(generator: &mut SchemaGenerator, def: &str) -> paths::Refs {
    let kind = format!("{SCHEMAS}{def}");
    let scale = reference::<Scale>(generator);
    let binding = reference::<Binding>(generator);
    let eviction = reference::<Eviction>(generator);
    let token = reference::<TokenRequest>(generator);
    let parent = kind.clone();
    paths::Refs {
        list: format!("{kind}List"),
        patch: reference::<Patch>(generator),
        delete_options: reference::<DeleteOptions>(generator),
        status: reference::<Status>(generator),
        kind,
        sub: Box::new(move |sub| match sub {
            Sub::Status
            | Sub::Approval
            | Sub::Finalize
            | Sub::EphemeralContainers
            | Sub::Resize => Some(parent.clone()),
            Sub::Scale => Some(scale.clone()),
            Sub::Binding => Some(binding.clone()),
            Sub::Eviction => Some(eviction.clone()),
            Sub::Token => Some(token.clone()),
            Sub::Log | Sub::Exec | Sub::Attach | Sub::PortForward | Sub::Proxy => None,
        }),
    }
}

/// Upstream's `<Kind>List` schema for a listable kind.
fn list_schema(r: &ResourceInfo, def: &str, list_meta: &str) -> Value {
    json!({
        "description": format!("{}List is a list of {}", r.kind, r.kind),
        "type": "object",
        "required": ["items"],
        "properties": {
            "apiVersion": {"type": "string", "description": API_VERSION},
            "items": {"type": "array", "description": format!("List of {}.", r.resource), "items": {"$ref": format!("{SCHEMAS}{def}")}},
            "kind": {"type": "string", "description": KIND},
            "metadata": {"description": "Standard list metadata. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#types-kinds", "allOf": [{"$ref": list_meta}]},
        },
        "x-kubernetes-group-version-kind": [gvk(r, &format!("{}List", r.kind))],
    })
}

pub(super) const API_VERSION: &str = "APIVersion defines the versioned schema of this representation of an object. Servers should convert recognized schemas to the latest internal value, and may reject unrecognized values. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#resources";
pub(super) const KIND: &str = "Kind is a string value representing the REST resource this object represents. Servers may infer this from the endpoint the client submits requests to. Cannot be updated. In CamelCase. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#types-kinds";

/// Marks the lists strategic merge patch merges, as upstream's documents do.
fn add_patch_strategies(schemas: &mut Map<String, Value>) {
    for (ty, field, how) in crate::patch::merged_lists() {
        let Some(prop) = schemas
            .get_mut(ty)
            .and_then(|s| s.get_mut("properties"))
            .and_then(|p| p.get_mut(field))
            .and_then(Value::as_object_mut)
        else {
            continue;
        };
        if let ListStrategy::MergeByKey(key) = how {
            prop.insert("x-kubernetes-patch-merge-key".into(), json!(key));
        }
        prop.insert("x-kubernetes-patch-strategy".into(), json!("merge"));
    }
}

fn document(paths: Map<String, Value>, schemas: Map<String, Value>) -> Value {
    json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "v1.37.2"},
        "paths": paths,
        "components": {"schemas": schemas},
    })
}

fn listable(r: &ResourceInfo) -> bool {
    r.verbs.contains(&"list")
}

fn build_gv(group: &str, version: &str) -> Value {
    let mut generator = schemars::generate::SchemaSettings::openapi3().into_generator();
    let list_meta = reference::<ListMeta>(&mut generator);
    let mut paths = Map::new();
    let mut kinds: Vec<(&ResourceInfo, String)> = Vec::new();
    for r in RESOURCES
        .iter()
        .filter(|r| r.group == group && r.version == version)
    {
        let _ = (r.typed.schema)(&mut generator);
        let def = (r.typed.definition)().to_string();
        paths::add(r, &refs(&mut generator, &def), &mut paths);
        kinds.push((r, def));
    }
    let mut schemas = generator.take_definitions(true);
    for (r, def) in kinds {
        if let Some(Value::Object(s)) = schemas.get_mut(&def) {
            s.insert(
                "x-kubernetes-group-version-kind".into(),
                json!([gvk(r, r.kind)]),
            );
        }
        if listable(r) {
            schemas.insert(format!("{def}List"), list_schema(r, &def, &list_meta));
        }
    }
    add_patch_strategies(&mut schemas);
    document(paths, schemas)
}

/// Upstream's definition name for a custom kind: the group reversed, then version and kind
/// (`com.example.stable.v1.CronTab`).
pub(super) fn custom_definition(r: &ResourceInfo) -> String {
    let mut parts: Vec<&str> = r.group.split('.').collect();
    parts.reverse();
    format!("{}.{}.{}", parts.join("."), r.version, r.kind)
}

/// The document of a custom group version: the CRD's schema of each kind (with apiVersion,
/// kind and a metadata reference added, as upstream's builder does) and its paths, so `kubectl
/// explain` reads custom resources as it reads built-ins.
fn build_custom_gv(custom: &Registry, group: &str, version: &str) -> Option<Value> {
    let served: Vec<&ResourceInfo> = custom
        .all()
        .into_iter()
        .filter(|r| r.group == group && r.version == version)
        .collect();
    if served.is_empty() {
        return None;
    }
    let mut generator = schemars::generate::SchemaSettings::openapi3().into_generator();
    let meta_ref = reference::<ObjectMeta>(&mut generator);
    let list_meta = reference::<ListMeta>(&mut generator);
    let mut paths = Map::new();
    let mut custom_schemas = Vec::new();
    for r in served {
        let def = custom_definition(r);
        paths::add(r, &refs(&mut generator, &def), &mut paths);
        let mut schema = r
            .custom
            .and_then(|c| c.schema.as_ref())
            .map(|s| s.raw.clone())
            .unwrap_or_else(
                || json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true}),
            );
        if let Some(o) = schema.as_object_mut() {
            let props = o
                .entry("properties")
                .or_insert_with(|| json!({}))
                .as_object_mut()
                .map(std::mem::take)
                .unwrap_or_default();
            let mut with_meta = Map::new();
            with_meta.insert(
                "apiVersion".into(),
                json!({"type": "string", "description": API_VERSION}),
            );
            with_meta.insert(
                "kind".into(),
                json!({"type": "string", "description": KIND}),
            );
            with_meta.insert("metadata".into(), json!({"description": "Standard object's metadata. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata", "allOf": [{"$ref": meta_ref}]}));
            for (k, v) in props {
                if k != "metadata" {
                    with_meta.insert(k, v);
                }
            }
            o.insert("properties".into(), Value::Object(with_meta));
            o.insert(
                "x-kubernetes-group-version-kind".into(),
                json!([gvk(r, r.kind)]),
            );
        }
        custom_schemas.push((format!("{def}List"), list_schema(r, &def, &list_meta)));
        custom_schemas.push((def, schema));
    }
    let mut schemas = generator.take_definitions(true);
    schemas.extend(custom_schemas);
    Some(document(paths, schemas))
}

/// Upstream's document hash (`?hash=` and `ETag`): SHA-512, upper-case hex.
pub(super) fn hash_of(doc: &[u8]) -> String {
    use sha2::{Digest, Sha512};
    Sha512::digest(doc)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect()
}

/// `GET /openapi/v3`: the built-in group versions, then the custom ones served now.
pub fn root(custom: &Registry) -> Bytes {
    let docs = documents();
    let mut root_paths = docs.root_paths.clone();
    let mut seen = Vec::new();
    for r in custom.all() {
        if seen.contains(&(r.group, r.version)) {
            continue;
        }
        seen.push((r.group, r.version));
        if let Some((hash, _)) = custom_gv(custom, r.group, r.version) {
            let path = gv_path(r.group, r.version);
            root_paths.insert(
                path.clone(),
                json!({"serverRelativeURL": format!("/openapi/v3/{path}?hash={hash}")}),
            );
        }
    }
    Bytes::from(serde_json::to_vec(&json!({"paths": root_paths})).expect("JSON values serialise"))
}

/// The document of a custom group version, with its hash.
pub fn custom_gv(custom: &Registry, group: &str, version: &str) -> Option<(String, Bytes)> {
    let doc = serde_json::to_vec(&build_custom_gv(custom, group, version)?)
        .expect("JSON values serialise");
    Some((hash_of(&doc), Bytes::from(doc)))
}

/// `GET /openapi/v3/<path>`: a built-in group version's document or a custom one's.
pub fn gv_document(custom: &Registry, path: &str) -> Option<(String, Bytes)> {
    if let Some(found) = documents().by_path.get(path) {
        return Some(found.clone());
    }
    let (group, version) = path.strip_prefix("apis/")?.split_once('/')?;
    custom_gv(custom, group, version)
}

static DOCUMENTS: LazyLock<Documents> = LazyLock::new(|| {
    let mut by_path = BTreeMap::new();
    let mut root_paths = Map::new();
    for (g, v) in group_versions() {
        let doc = serde_json::to_vec(&build_gv(g, v)).expect("JSON values serialise");
        let hash = hash_of(&doc);
        let path = gv_path(g, v);
        root_paths.insert(
            path.clone(),
            json!({"serverRelativeURL": format!("/openapi/v3/{path}?hash={hash}")}),
        );
        by_path.insert(path, (hash, Bytes::from(doc)));
    }
    let root = Bytes::from(
        serde_json::to_vec(&json!({"paths": root_paths})).expect("JSON values serialise"),
    );
    Documents {
        by_path,
        root,
        root_paths,
    }
});

pub fn documents() -> &'static Documents {
    &DOCUMENTS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pod_schema_and_patch_operation() {
        let docs = documents();
        let (_, core) = docs.by_path.get("api/v1").unwrap();
        let doc: Value = serde_json::from_slice(core).unwrap();
        let pod = &doc["components"]["schemas"]["io.k8s.api.core.v1.Pod"];
        assert_eq!(pod["x-kubernetes-group-version-kind"][0]["kind"], "Pod");
        assert!(
            doc["components"]["schemas"]["io.k8s.api.core.v1.PodSpec"]["properties"]["containers"]
                .is_object()
        );
        let patch = &doc["paths"]["/api/v1/namespaces/{namespace}/pods/{name}"]["patch"];
        assert!(patch["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "fieldValidation"));
        assert_eq!(patch["x-kubernetes-group-version-kind"]["kind"], "Pod");
        let root: Value = serde_json::from_slice(&docs.root).unwrap();
        assert!(root["paths"]["apis/apps/v1"]["serverRelativeURL"]
            .as_str()
            .unwrap()
            .starts_with("/openapi/v3/apis/apps/v1?hash="));
    }
}
