//! OpenAPI v3 documents generated from the k8s-openapi types (schemars), one per group version,
//! with the extensions kubectl reads: `x-kubernetes-group-version-kind` on kinds and operations,
//! and the `fieldValidation` parameter on patch so kubectl validates server-side (kubectl
//! detects server-side field validation from that parameter).

use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::sync::LazyLock;

use bytes::Bytes;
use serde_json::{json, Map, Value};

use crate::resources::{group_versions, ResourceInfo, RESOURCES};

pub struct Documents {
    /// `api/v1`, `apis/apps/v1` → (hash, document)
    pub by_path: BTreeMap<String, (String, Bytes)>,
    pub root: Bytes,
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
        let schema_ref = format!("#/components/schemas/{def}");
        let base = format!("/{}", gv_path(group, version));
        let op_base = format!("{}{}", r.kind, if r.namespaced { "Namespaced" } else { "" });
        let collection = if r.namespaced {
            format!("{base}/namespaces/{{namespace}}/{}", r.resource)
        } else {
            format!("{base}/{}", r.resource)
        };
        if r.is_virtual() {
            paths.insert(collection, json!({"post": operation(r, "post", &format!("create{op_base}"), &schema_ref, true, false)}));
        } else {
            paths.insert(
                collection.clone(),
                json!({
                    "get": operation(r, "list", &format!("list{op_base}"), &schema_ref, false, false),
                    "post": operation(r, "post", &format!("create{op_base}"), &schema_ref, true, false),
                }),
            );
            paths.insert(
                format!("{collection}/{{name}}"),
                json!({
                    "get": operation(r, "get", &format!("read{op_base}"), &schema_ref, false, false),
                    "put": operation(r, "put", &format!("replace{op_base}"), &schema_ref, true, false),
                    "patch": operation(r, "patch", &format!("patch{op_base}"), &schema_ref, true, true),
                    "delete": operation(r, "delete", &format!("delete{op_base}"), &schema_ref, false, false),
                }),
            );
            if r.namespaced {
                paths.insert(
                    format!("{base}/{}", r.resource),
                    json!({"get": operation(r, "list", &format!("list{}ForAllNamespaces", r.kind), &schema_ref, false, false)}),
                );
            }
        }
        kinds.push((r, def));
    }
    let mut schemas = generator.take_definitions(true);
    for (r, def) in kinds {
        if let Some(Value::Object(s)) = schemas.get_mut(&def) {
            s.insert("x-kubernetes-group-version-kind".into(), json!([gvk(r)]));
        }
    }
    json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "v1.32.4"},
        "paths": paths,
        "components": {"schemas": schemas},
    })
}

static DOCUMENTS: LazyLock<Documents> = LazyLock::new(|| {
    let mut by_path = BTreeMap::new();
    let mut root_paths = Map::new();
    for (g, v) in group_versions() {
        let doc = serde_json::to_vec(&build_gv(g, v)).expect("JSON values serialise");
        let mut h = std::collections::hash_map::DefaultHasher::new();
        doc.hash(&mut h);
        let hash = format!("{:016X}", h.finish());
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
    Documents { by_path, root }
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
