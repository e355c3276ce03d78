//! `GET /openapi/v2`: the one Swagger 2.0 document of the whole API, as kubectl's client-side
//! validation (the fallback for kinds it finds nowhere else), client-go's
//! `OpenAPISchema()` and older client generators read it.
//!
//! It is not generated a second time: every group version's v3 document (built-in and custom)
//! is converted — `#/components/schemas/` becomes `#/definitions/`, a `requestBody` a `body`
//! parameter, response `content` a `schema` with `produces`, parameter `schema`s their
//! `type` — and the results merged, with upstream's `securityDefinitions`. The built-in part is
//! converted once; the document with the custom resources is cached until the CRDs' documents
//! change. JSON and gnostic's protobuf (`gnostic.rs`) are made together, with one ETag (a
//! SHA-512 of the JSON, as upstream's), so `If-None-Match` answers 304 for either.

use std::sync::{Arc, LazyLock};

use bytes::Bytes;
use parking_lot::Mutex;
use serde_json::{json, Map, Value};

use super::{build_custom_gv, build_gv, gv_path, SCHEMAS};
use crate::customresource::Registry;
use crate::resources::group_versions;

/// The media type client-go asks for (`Accept`) and the one upstream answers with.
pub const PROTOBUF_ACCEPT: &str = "application/com.github.proto-openapi.spec.v2@v1.0+protobuf";
pub const PROTOBUF_CONTENT_TYPE: &str =
    "application/com.github.proto-openapi.spec.v2.v1.0+protobuf";

/// Whether an `Accept` header asks for the protobuf form.
pub fn wants_protobuf(accept: &str) -> bool {
    accept.split(',').any(|t| {
        let t = t.split(';').next().unwrap_or("").trim();
        t == PROTOBUF_ACCEPT || t == PROTOBUF_CONTENT_TYPE
    })
}

/// One version of the document in both forms.
pub struct Spec {
    /// Quoted, as sent in `ETag`.
    pub etag: String,
    pub json: Bytes,
    pub protobuf: Bytes,
}

const DEFINITIONS: &str = "#/definitions/";

/// The converted built-in group versions: (paths, definitions).
static BUILTIN: LazyLock<(Map<String, Value>, Map<String, Value>)> = LazyLock::new(|| {
    let mut paths = Map::new();
    let mut definitions = Map::new();
    for (g, v) in group_versions() {
        merge(&build_gv(g, v), &mut paths, &mut definitions);
    }
    (paths, definitions)
});

/// The custom group versions a document includes: (path, hash of its v3 document).
type CustomKey = Vec<(String, String)>;

/// The last document served, keyed by the custom group versions' documents it includes.
static CACHE: Mutex<Option<(CustomKey, Arc<Spec>)>> = Mutex::new(None);

/// The document with the custom resources served now.
pub fn spec(custom: &Registry) -> Arc<Spec> {
    let mut gvs: Vec<(&str, &str)> = custom.all().iter().map(|r| (r.group, r.version)).collect();
    gvs.sort();
    gvs.dedup();
    let docs: Vec<(String, Value)> = gvs
        .iter()
        .filter_map(|(g, v)| Some((gv_path(g, v), build_custom_gv(custom, g, v)?)))
        .collect();
    let key: CustomKey = docs
        .iter()
        .map(|(path, doc)| (path.clone(), super::hash_of(doc.to_string().as_bytes())))
        .collect();
    let mut cache = CACHE.lock();
    if let Some((k, spec)) = cache.as_ref() {
        if *k == key {
            return spec.clone();
        }
    }
    let kinds: Vec<(String, Value)> = custom
        .all()
        .into_iter()
        .map(|r| (super::custom_definition(r), custom_resource(r)))
        .collect();
    let spec = Arc::new(build(docs.iter().map(|(_, d)| d), kinds));
    *cache = Some((key, spec.clone()));
    spec
}

/// `custom`: the custom group versions' v3 documents; `kinds`: each custom kind's v2
/// definition, which replaces the converted v3 one.
fn build<'a>(custom: impl Iterator<Item = &'a Value>, kinds: Vec<(String, Value)>) -> Spec {
    let (mut paths, mut definitions) = BUILTIN.clone();
    for doc in custom {
        merge(doc, &mut paths, &mut definitions);
    }
    definitions.extend(kinds);
    let doc = json!({
        "swagger": "2.0",
        "info": {"title": "Kubernetes", "version": "v1.37.2"},
        "paths": paths,
        "definitions": definitions,
        "securityDefinitions": {
            "BearerToken": {"description": "Bearer Token authentication", "type": "apiKey", "name": "authorization", "in": "header"},
        },
        "security": [{"BearerToken": []}],
    });
    let json = serde_json::to_vec(&doc).expect("JSON values serialise");
    let protobuf = super::gnostic::encode(&doc);
    let etag = format!("\"{}\"", super::hash_of(&json));
    Spec {
        etag,
        json: Bytes::from(json),
        protobuf: Bytes::from(protobuf),
    }
}

/// Adds a v3 document's paths and schemas, converted, to the v2 maps.
fn merge(v3: &Value, paths: &mut Map<String, Value>, definitions: &mut Map<String, Value>) {
    if let Some(schemas) = v3["components"]["schemas"].as_object() {
        for (name, s) in schemas {
            definitions.insert(name.clone(), schema(s));
        }
    }
    if let Some(items) = v3["paths"].as_object() {
        for (path, item) in items {
            paths.insert(path.clone(), path_item(item));
        }
    }
}

/// The keywords of a Swagger 2.0 schema object (anything else but `x-` extensions is v3 only).
const SCHEMA_KEYWORDS: &[&str] = &[
    "$ref",
    "format",
    "title",
    "description",
    "default",
    "multipleOf",
    "maximum",
    "exclusiveMaximum",
    "minimum",
    "exclusiveMinimum",
    "maxLength",
    "minLength",
    "pattern",
    "maxItems",
    "minItems",
    "uniqueItems",
    "maxProperties",
    "minProperties",
    "required",
    "enum",
    "additionalProperties",
    "type",
    "items",
    "allOf",
    "properties",
    "discriminator",
    "readOnly",
    "example",
];

/// A v3 schema as v2: references renamed, a lone `allOf: [{$ref}]` (v3's way of giving a
/// reference a description) folded into `$ref` as upstream's v2 writes it, v3-only keywords
/// (`nullable`, `oneOf`, `anyOf`, `not`) left out, int-or-string as upstream's v2 types it.
pub(super) fn schema(v: &Value) -> Value {
    let Some(o) = v.as_object() else {
        return v.clone();
    };
    let mut out = Map::new();
    for (k, val) in o {
        let converted = match k.as_str() {
            "$ref" => match val.as_str() {
                Some(r) => json!(r.replacen(SCHEMAS, DEFINITIONS, 1)),
                None => continue,
            },
            "properties" => match val.as_object() {
                Some(props) => Value::Object(
                    props
                        .iter()
                        .map(|(name, s)| (name.clone(), schema(s)))
                        .collect(),
                ),
                None => continue,
            },
            "items" | "additionalProperties" if val.is_object() => schema(val),
            "allOf" => {
                let all: Vec<Value> = val.as_array().into_iter().flatten().map(schema).collect();
                if let [only] = all.as_slice() {
                    if let Some(r) = only
                        .get("$ref")
                        .filter(|_| only.as_object().is_some_and(|o| o.len() == 1))
                    {
                        if !o.contains_key("$ref") {
                            out.insert("$ref".into(), r.clone());
                            continue;
                        }
                    }
                }
                Value::Array(all)
            }
            k if k.starts_with("x-") || SCHEMA_KEYWORDS.contains(&k) => val.clone(),
            _ => continue,
        };
        out.insert(k.clone(), converted);
    }
    if out.get("x-kubernetes-int-or-string") == Some(&json!(true)) && !out.contains_key("type") {
        out.insert("type".into(), json!("string"));
        out.insert("format".into(), json!("int-or-string"));
    }
    Value::Object(out)
}

/// A custom kind's v2 definition as upstream's CRD OpenAPI builder publishes it for v2
/// (`buildKubeNative` with `V2`): a schema that keeps unknown fields at its root (or none) is
/// just `type: object` — kubectl's v2 validation would refuse every field not listed —
/// otherwise the schema made v2-safe ([`structural_v2`]) with apiVersion, kind and metadata,
/// and those three inside every embedded resource.
fn custom_resource(r: &crate::resources::ResourceInfo) -> Value {
    let gvk = json!([{"group": r.group, "version": r.version, "kind": r.kind}]);
    let raw = r.custom.and_then(|c| c.schema.as_ref()).map(|s| &s.raw);
    let Some(raw) = raw.filter(|s| s["x-kubernetes-preserve-unknown-fields"] != json!(true)) else {
        return json!({"type": "object", "x-kubernetes-group-version-kind": gvk});
    };
    let mut v3 = raw.clone();
    structural_v2(&mut v3, 0);
    add_type_meta(&mut v3);
    add_embedded_type_meta(&mut v3, 0);
    let mut out = schema(&v3);
    out["x-kubernetes-group-version-kind"] = gvk;
    out
}

/// v3 `metadata` (a reference with a description) and v2-style apiVersion and kind properties.
fn add_type_meta(s: &mut Value) {
    let Some(o) = s.as_object_mut() else {
        return;
    };
    let props = o.entry("properties").or_insert_with(|| json!({}));
    if let Some(props) = props.as_object_mut() {
        props.insert(
            "metadata".into(),
            json!({"description": "Standard object's metadata. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata",
                   "allOf": [{"$ref": format!("{SCHEMAS}io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta")}]}),
        );
        props.insert(
            "apiVersion".into(),
            json!({"type": "string", "description": super::API_VERSION}),
        );
        props.insert(
            "kind".into(),
            json!({"type": "string", "description": super::KIND}),
        );
    }
}

/// Upstream's `addEmbeddedProperties` for v2: apiVersion, kind and metadata (required kind
/// and apiVersion) in every `x-kubernetes-embedded-resource` schema, except one that keeps
/// unknown fields.
fn add_embedded_type_meta(s: &mut Value, depth: usize) {
    if depth > 64 {
        return;
    }
    let Some(o) = s.as_object_mut() else {
        return;
    };
    if let Some(props) = o.get_mut("properties").and_then(Value::as_object_mut) {
        props
            .values_mut()
            .for_each(|p| add_embedded_type_meta(p, depth + 1));
    }
    for key in ["items", "additionalProperties"] {
        if let Some(child) = o.get_mut(key).filter(|c| c.is_object()) {
            add_embedded_type_meta(child, depth + 1);
        }
    }
    if o.get("x-kubernetes-preserve-unknown-fields") == Some(&json!(true))
        || o.get("x-kubernetes-embedded-resource") != Some(&json!(true))
    {
        return;
    }
    add_type_meta(s);
    let required = s
        .as_object_mut()
        .expect("an object")
        .entry("required")
        .or_insert_with(|| json!([]));
    if let Some(list) = required.as_array_mut() {
        for key in ["kind", "apiVersion"] {
            if !list.iter().any(|k| k == key) {
                list.push(json!(key));
            }
        }
    }
}

/// Upstream's `ToStructuralOpenAPIV2`: no junctors (`allOf`, `oneOf`, `anyOf`, `not`); a
/// nullable schema loses its type, items and properties, and its name leaves the parent's
/// `required`; a schema that keeps unknown fields loses items and properties, and `object` as
/// its type; an array left without items loses its type.
fn structural_v2(s: &mut Value, depth: usize) {
    if depth > 64 {
        return;
    }
    let Some(o) = s.as_object_mut() else {
        return;
    };
    for key in ["allOf", "oneOf", "anyOf", "not"] {
        o.remove(key);
    }
    if o.get("nullable") == Some(&json!(true)) {
        for key in ["type", "nullable", "items", "properties"] {
            o.remove(key);
        }
    }
    let preserve = o.get("x-kubernetes-preserve-unknown-fields") == Some(&json!(true));
    if preserve {
        o.remove("items");
        o.remove("properties");
    }
    if !o.contains_key("items") && o.get("type") == Some(&json!("array")) {
        o.remove("type");
    }
    if preserve && o.get("type") == Some(&json!("object")) {
        o.remove("type");
    }
    let nullable_props: Vec<String> = o
        .get("properties")
        .and_then(Value::as_object)
        .map(|props| {
            props
                .iter()
                .filter(|(_, p)| p["nullable"] == json!(true))
                .map(|(name, _)| name.clone())
                .collect()
        })
        .unwrap_or_default();
    if let Some(required) = o.get_mut("required").and_then(Value::as_array_mut) {
        required.retain(|r| !nullable_props.iter().any(|n| r == n.as_str()));
    }
    if o.get("additionalProperties")
        .is_some_and(|a| a["nullable"] == json!(true))
    {
        o.remove("required");
    }
    if let Some(props) = o.get_mut("properties").and_then(Value::as_object_mut) {
        props.values_mut().for_each(|p| structural_v2(p, depth + 1));
    }
    for key in ["items", "additionalProperties"] {
        if let Some(child) = o.get_mut(key).filter(|c| c.is_object()) {
            structural_v2(child, depth + 1);
        }
    }
}

/// A v3 parameter (`schema: {type}`) as v2 (`type` beside the name).
fn parameter(p: &Value) -> Value {
    let mut out = Map::new();
    if let Some(s) = p["schema"].as_object() {
        for (k, v) in s {
            out.insert(k.clone(), v.clone());
        }
    }
    for k in ["description", "name", "in", "required"] {
        if let Some(v) = p.get(k) {
            out.insert(k.into(), v.clone());
        }
    }
    Value::Object(out)
}

const METHODS: &[&str] = &["get", "put", "post", "delete", "options", "head", "patch"];

fn path_item(item: &Value) -> Value {
    let mut out = Map::new();
    for m in METHODS {
        if let Some(op) = item.get(*m) {
            out.insert((*m).into(), operation(op));
        }
    }
    if let Some(params) = item["parameters"].as_array() {
        out.insert(
            "parameters".into(),
            Value::Array(params.iter().map(parameter).collect()),
        );
    }
    Value::Object(out)
}

fn operation(op: &Value) -> Value {
    let mut out = Map::new();
    out.insert("description".into(), op["description"].clone());
    let mut params = Vec::new();
    let consumes: Vec<String> = match op["requestBody"]["content"].as_object() {
        Some(content) => {
            let body_schema = content.values().next().map(|c| schema(&c["schema"]));
            let mut body = json!({"name": "body", "in": "body", "schema": body_schema});
            if op["requestBody"]["required"] == json!(true) {
                body["required"] = json!(true);
            }
            params.push(body);
            content.keys().cloned().collect()
        }
        None => vec!["*/*".into()],
    };
    out.insert("consumes".into(), json!(consumes));
    let mut produces: Vec<String> = Vec::new();
    let mut responses = Map::new();
    if let Some(rs) = op["responses"].as_object() {
        for (code, r) in rs {
            let mut resp = json!({"description": r["description"]});
            if let Some(content) = r["content"].as_object() {
                for t in content.keys() {
                    if !produces.contains(t) {
                        produces.push(t.clone());
                    }
                }
                if let Some(c) = content.values().next() {
                    resp["schema"] = schema(&c["schema"]);
                }
            }
            responses.insert(code.clone(), resp);
        }
    }
    if produces.is_empty() {
        produces.push("*/*".into());
    }
    out.insert("produces".into(), json!(produces));
    out.insert("schemes".into(), json!(["https"]));
    out.insert("tags".into(), op["tags"].clone());
    out.insert("operationId".into(), op["operationId"].clone());
    params.extend(
        op["parameters"]
            .as_array()
            .into_iter()
            .flatten()
            .map(parameter),
    );
    if !params.is_empty() {
        out.insert("parameters".into(), Value::Array(params));
    }
    out.insert("responses".into(), Value::Object(responses));
    if let Some(o) = op.as_object() {
        for (k, v) in o.iter().filter(|(k, _)| k.starts_with("x-")) {
            out.insert(k.clone(), v.clone());
        }
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn builtin() -> Value {
        let spec = build(std::iter::empty(), Vec::new());
        serde_json::from_slice(&spec.json).unwrap()
    }

    #[test]
    fn pods_as_upstream() {
        let doc = builtin();
        assert_eq!(doc["swagger"], "2.0");
        let pod = &doc["definitions"]["io.k8s.api.core.v1.Pod"];
        assert_eq!(pod["x-kubernetes-group-version-kind"][0]["kind"], "Pod");
        assert_eq!(
            pod["properties"]["spec"]["$ref"],
            "#/definitions/io.k8s.api.core.v1.PodSpec"
        );
        let containers =
            &doc["definitions"]["io.k8s.api.core.v1.PodSpec"]["properties"]["containers"];
        assert_eq!(containers["x-kubernetes-patch-merge-key"], "name");
        assert_eq!(containers["x-kubernetes-patch-strategy"], "merge");
        assert_eq!(
            doc["definitions"]["io.k8s.api.core.v1.PodList"]["properties"]["items"]["items"]
                ["$ref"],
            "#/definitions/io.k8s.api.core.v1.Pod"
        );

        let item = &doc["paths"]["/api/v1/namespaces/{namespace}/pods/{name}"];
        let names: Vec<&str> = item["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["name", "namespace", "pretty"]);
        assert_eq!(item["parameters"][0]["in"], "path");
        assert_eq!(item["parameters"][0]["required"], true);
        assert_eq!(item["parameters"][0]["type"], "string");
        assert_eq!(item["get"]["operationId"], "readCoreV1NamespacedPod");
        assert_eq!(item["put"]["parameters"][0]["in"], "body");
        assert_eq!(
            item["put"]["parameters"][0]["schema"]["$ref"],
            "#/definitions/io.k8s.api.core.v1.Pod"
        );
        assert_eq!(item["patch"]["x-kubernetes-action"], "patch");
        let list = &doc["paths"]["/api/v1/namespaces/{namespace}/pods"]["get"];
        assert_eq!(list["operationId"], "listCoreV1NamespacedPod");
        assert_eq!(
            list["responses"]["200"]["schema"]["$ref"],
            "#/definitions/io.k8s.api.core.v1.PodList"
        );
        let binding = &doc["paths"]["/api/v1/namespaces/{namespace}/bindings"]["post"];
        assert_eq!(binding["operationId"], "createCoreV1NamespacedBinding");
        assert_eq!(
            binding["x-kubernetes-group-version-kind"]["kind"],
            "Binding"
        );
        let proxy = &doc["paths"]["/api/v1/namespaces/{namespace}/pods/{name}/proxy/{path}"];
        assert!(proxy["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "path" && p["in"] == "path"));
    }

    /// Every `{param}` in a path is declared by the path item (Swagger 2.0 requires it), and
    /// every reference resolves.
    #[test]
    fn path_parameters_declared_and_references_resolve() {
        let doc = builtin();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for seg in path.split('/').filter(|s| s.starts_with('{')) {
                let name = seg.trim_matches(|c| c == '{' || c == '}');
                assert!(
                    item["parameters"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .any(|p| p["name"] == name && p["in"] == "path" && p["required"] == true),
                    "{path} does not declare {name}"
                );
            }
        }
        let text = doc.to_string();
        for r in text.split("\"#/definitions/").skip(1) {
            let name = &r[..r.find('"').unwrap()];
            assert!(doc["definitions"].get(name).is_some(), "unresolved {name}");
        }
        assert!(!text.contains("#/components/"));
    }
}
