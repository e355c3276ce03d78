//! OpenAPI v3 documents generated from the k8s-openapi types (schemars), one per group version,
//! with the extensions kubectl reads: `x-kubernetes-group-version-kind` on kinds and operations,
//! and the `fieldValidation` parameter on patch so kubectl validates server-side (kubectl
//! detects server-side field validation from that parameter). Custom resources get a document
//! per served group version, built on request from their CRDs' schemas.

use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::sync::LazyLock;

use bytes::Bytes;
use serde_json::{json, Map, Value};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::customresource::Registry;
use crate::resources::{group_versions, ResourceInfo, RESOURCES};

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

fn gvk(r: &ResourceInfo) -> Value {
    json!({"group": r.group, "version": r.version, "kind": r.kind})
}

fn param(name: &str, location: &str, description: &str) -> Value {
    json!({"name": name, "in": location, "description": description, "schema": {"type": "string", "uniqueItems": true}})
}

fn operation(
    r: &ResourceInfo,
    action: &str,
    op_id: &str,
    schema_ref: &str,
    with_body: bool,
    patch: bool,
) -> Value {
    let mut params = vec![param(
        "pretty",
        "query",
        "If 'true', then the output is pretty printed.",
    )];
    if with_body {
        params.push(param(
            "dryRun",
            "query",
            "When present, indicates that modifications should not be persisted.",
        ));
        params.push(param("fieldManager", "query", "fieldManager is a name associated with the actor or entity that is making these changes."));
        params.push(param(
            "fieldValidation",
            "query",
            "fieldValidation instructs the server on how to handle objects in the request containing unknown or duplicate fields. Valid values are: Ignore, Warn, Strict.",
        ));
    }
    let mut op = json!({
        "description": format!("{action} {}", r.kind),
        "operationId": op_id,
        "tags": [r.group.replace('.', "_")],
        "parameters": params,
        "responses": {"200": {"description": "OK", "content": {"application/json": {"schema": {"$ref": schema_ref}}}}},
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": gvk(r),
    });
    if with_body {
        // Strategic merge patch is left out on purpose: kubectl then computes it from its
        // compiled-in types, which carry the merge keys (the documents here carry no
        // `x-kubernetes-patch-merge-key`/`strategy`).
        let content: Vec<&str> = if patch {
            vec![
                "application/json-patch+json",
                "application/merge-patch+json",
                "application/apply-patch+yaml",
            ]
        } else {
            vec!["application/json", "application/yaml"]
        };
        let mut c = Map::new();
        for t in content {
            c.insert(t.into(), json!({"schema": {"$ref": schema_ref}}));
        }
        op["requestBody"] = json!({"content": c, "required": true});
    }
    op
}

/// The paths of one resource (collection, item, all-namespaces list), every operation naming
/// the kind's schema.
fn add_paths(r: &ResourceInfo, schema_ref: &str, paths: &mut Map<String, Value>) {
    let base = format!("/{}", gv_path(r.group, r.version));
    let op_base = format!("{}{}", r.kind, if r.namespaced { "Namespaced" } else { "" });
    let collection = if r.namespaced {
        format!("{base}/namespaces/{{namespace}}/{}", r.resource)
    } else {
        format!("{base}/{}", r.resource)
    };
    if r.is_virtual() {
        paths.insert(collection, json!({"post": operation(r, "post", &format!("create{op_base}"), schema_ref, true, false)}));
        return;
    }
    if !r.is_stored() {
        // Computed on read (componentstatuses): get and list only.
        paths.insert(collection.clone(), json!({"get": operation(r, "list", &format!("list{op_base}"), schema_ref, false, false)}));
        paths.insert(format!("{collection}/{{name}}"), json!({"get": operation(r, "get", &format!("read{op_base}"), schema_ref, false, false)}));
        return;
    }
    paths.insert(
        collection.clone(),
        json!({
            "get": operation(r, "list", &format!("list{op_base}"), schema_ref, false, false),
            "post": operation(r, "post", &format!("create{op_base}"), schema_ref, true, false),
        }),
    );
    paths.insert(
        format!("{collection}/{{name}}"),
        json!({
            "get": operation(r, "get", &format!("read{op_base}"), schema_ref, false, false),
            "put": operation(r, "put", &format!("replace{op_base}"), schema_ref, true, false),
            "patch": operation(r, "patch", &format!("patch{op_base}"), schema_ref, true, true),
            "delete": operation(r, "delete", &format!("delete{op_base}"), schema_ref, false, false),
        }),
    );
    if r.namespaced {
        paths.insert(
            format!("{base}/{}", r.resource),
            json!({"get": operation(r, "list", &format!("list{}ForAllNamespaces", r.kind), schema_ref, false, false)}),
        );
    }
}

fn document(paths: Map<String, Value>, schemas: Value) -> Value {
    json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "v1.32.4"},
        "paths": paths,
        "components": {"schemas": schemas},
    })
}

fn build_gv(group: &str, version: &str) -> Value {
    let mut generator = schemars::generate::SchemaSettings::openapi3().into_generator();
    let mut paths = Map::new();
    let mut kinds: Vec<(&ResourceInfo, String)> = Vec::new();
    for r in RESOURCES
        .iter()
        .filter(|r| r.group == group && r.version == version)
    {
        let _ = (r.typed.schema)(&mut generator);
        let def = (r.typed.definition)().to_string();
        add_paths(r, &format!("#/components/schemas/{def}"), &mut paths);
        kinds.push((r, def));
    }
    let mut schemas = generator.take_definitions(true);
    for (r, def) in kinds {
        if let Some(Value::Object(s)) = schemas.get_mut(&def) {
            s.insert("x-kubernetes-group-version-kind".into(), json!([gvk(r)]));
        }
    }
    document(paths, Value::Object(schemas))
}

/// Upstream's definition name for a custom kind: the group reversed, then version and kind
/// (`com.example.stable.v1.CronTab`).
fn custom_definition(r: &ResourceInfo) -> String {
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
    let _ = generator.subschema_for::<ObjectMeta>();
    let meta_ref = format!(
        "#/components/schemas/{}",
        <ObjectMeta as schemars::JsonSchema>::schema_name()
    );
    let mut paths = Map::new();
    let mut schemas = generator.take_definitions(true);
    for r in served {
        let def = custom_definition(r);
        add_paths(r, &format!("#/components/schemas/{def}"), &mut paths);
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
            with_meta.insert("apiVersion".into(), json!({"type": "string", "description": "APIVersion defines the versioned schema of this representation of an object. Servers should convert recognized schemas to the latest internal value, and may reject unrecognized values. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#resources"}));
            with_meta.insert("kind".into(), json!({"type": "string", "description": "Kind is a string value representing the REST resource this object represents. Servers may infer this from the endpoint the client submits requests to. Cannot be updated. In CamelCase. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#types-kinds"}));
            with_meta.insert("metadata".into(), json!({"description": "Standard object's metadata. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata", "allOf": [{"$ref": meta_ref}]}));
            for (k, v) in props {
                if k != "metadata" {
                    with_meta.insert(k, v);
                }
            }
            o.insert("properties".into(), Value::Object(with_meta));
            o.insert("x-kubernetes-group-version-kind".into(), json!([gvk(r)]));
        }
        schemas.insert(def, schema);
    }
    Some(document(paths, Value::Object(schemas)))
}

fn hash_of(doc: &[u8]) -> String {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    doc.hash(&mut h);
    format!("{:016X}", h.finish())
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
pub fn gv_document(custom: &Registry, path: &str) -> Option<Bytes> {
    if let Some((_, doc)) = documents().by_path.get(path) {
        return Some(doc.clone());
    }
    let (group, version) = path.strip_prefix("apis/")?.split_once('/')?;
    custom_gv(custom, group, version).map(|(_, doc)| doc)
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
