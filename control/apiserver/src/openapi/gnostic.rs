//! The v2 document as gnostic's `openapi.v2.Document` protobuf, the form client-go's
//! `OpenAPISchema()` (and so kubectl) asks for. Upstream makes it by reading its JSON with
//! gnostic's compiler; this reads the same JSON into the prost messages of
//! `gnostic_v2.rs` (generated from gnostic-models' OpenAPIv2.proto) and lets prost encode
//! them. Maps become lists of named pairs in document order, `x-` extensions `NamedAny`s and
//! free-form values (`default`, `enum`, extensions) `Any`s holding their YAML, as gnostic does.

use prost::Message;
use serde_json::{Map, Value};

use super::gnostic_v2 as pb;

pub(super) fn encode(doc: &Value) -> Vec<u8> {
    document(doc).encode_to_vec()
}

fn document(doc: &Value) -> pb::Document {
    pb::Document {
        swagger: text(&doc["swagger"]),
        info: doc["info"].as_object().map(|i| pb::Info {
            title: text(&i["title"]),
            version: text(&i["version"]),
            ..Default::default()
        }),
        paths: Some(pb::Paths {
            path: entries(&doc["paths"])
                .map(|(name, item)| pb::NamedPathItem {
                    name: name.clone(),
                    value: Some(path_item(item)),
                })
                .collect(),
            vendor_extension: vec![],
        }),
        definitions: Some(pb::Definitions {
            additional_properties: named_schemas(&doc["definitions"]),
        }),
        security_definitions: Some(pb::SecurityDefinitions {
            additional_properties: entries(&doc["securityDefinitions"])
                .map(|(name, d)| pb::NamedSecurityDefinitionsItem {
                    name: name.clone(),
                    value: Some(pb::SecurityDefinitionsItem {
                        oneof: Some(pb::security_definitions_item::Oneof::ApiKeySecurity(
                            pb::ApiKeySecurity {
                                r#type: text(&d["type"]),
                                name: text(&d["name"]),
                                r#in: text(&d["in"]),
                                description: text(&d["description"]),
                                vendor_extension: extensions(d),
                            },
                        )),
                    }),
                })
                .collect(),
        }),
        security: doc["security"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|req| pb::SecurityRequirement {
                additional_properties: entries(req)
                    .map(|(name, scopes)| pb::NamedStringArray {
                        name: name.clone(),
                        value: Some(pb::StringArray {
                            value: strings(scopes),
                        }),
                    })
                    .collect(),
            })
            .collect(),
        vendor_extension: extensions(doc),
        ..Default::default()
    }
}

fn entries(v: &Value) -> impl Iterator<Item = (&String, &Value)> {
    v.as_object().into_iter().flat_map(Map::iter)
}

fn text(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_string()
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s.as_str().map(str::to_string))
        .collect()
}

fn float(v: &Value) -> f64 {
    v.as_f64().unwrap_or_default()
}

fn int(v: &Value) -> i64 {
    v.as_i64().unwrap_or_default()
}

fn flag(v: &Value) -> bool {
    v.as_bool().unwrap_or_default()
}

/// A free-form value as gnostic keeps it: its YAML text.
fn any(v: &Value) -> pb::Any {
    pb::Any {
        value: None,
        yaml: serde_yaml::to_string(v).unwrap_or_default(),
    }
}

fn optional_any(v: &Value) -> Option<pb::Any> {
    (!v.is_null()).then(|| any(v))
}

fn extensions(v: &Value) -> Vec<pb::NamedAny> {
    entries(v)
        .filter(|(k, _)| k.starts_with("x-"))
        .map(|(k, v)| pb::NamedAny {
            name: k.clone(),
            value: Some(any(v)),
        })
        .collect()
}

fn named_schemas(v: &Value) -> Vec<pb::NamedSchema> {
    entries(v)
        .map(|(name, s)| pb::NamedSchema {
            name: name.clone(),
            value: Some(schema(s)),
        })
        .collect()
}

fn schema(s: &Value) -> pb::Schema {
    pb::Schema {
        r#ref: text(&s["$ref"]),
        format: text(&s["format"]),
        title: text(&s["title"]),
        description: text(&s["description"]),
        default: optional_any(&s["default"]),
        multiple_of: float(&s["multipleOf"]),
        maximum: float(&s["maximum"]),
        exclusive_maximum: flag(&s["exclusiveMaximum"]),
        minimum: float(&s["minimum"]),
        exclusive_minimum: flag(&s["exclusiveMinimum"]),
        max_length: int(&s["maxLength"]),
        min_length: int(&s["minLength"]),
        pattern: text(&s["pattern"]),
        max_items: int(&s["maxItems"]),
        min_items: int(&s["minItems"]),
        unique_items: flag(&s["uniqueItems"]),
        max_properties: int(&s["maxProperties"]),
        min_properties: int(&s["minProperties"]),
        required: strings(&s["required"]),
        r#enum: s["enum"]
            .as_array()
            .into_iter()
            .flatten()
            .map(any)
            .collect(),
        additional_properties: match &s["additionalProperties"] {
            Value::Bool(b) => Some(Box::new(pb::AdditionalPropertiesItem {
                oneof: Some(pb::additional_properties_item::Oneof::Boolean(*b)),
            })),
            Value::Object(_) => Some(Box::new(pb::AdditionalPropertiesItem {
                oneof: Some(pb::additional_properties_item::Oneof::Schema(Box::new(
                    schema(&s["additionalProperties"]),
                ))),
            })),
            _ => None,
        },
        r#type: match &s["type"] {
            Value::String(t) => Some(pb::TypeItem {
                value: vec![t.clone()],
            }),
            Value::Array(_) => Some(pb::TypeItem {
                value: strings(&s["type"]),
            }),
            _ => None,
        },
        items: match &s["items"] {
            Value::Object(_) => Some(pb::ItemsItem {
                schema: vec![schema(&s["items"])],
            }),
            Value::Array(all) => Some(pb::ItemsItem {
                schema: all.iter().map(schema).collect(),
            }),
            _ => None,
        },
        all_of: s["allOf"]
            .as_array()
            .into_iter()
            .flatten()
            .map(schema)
            .collect(),
        properties: s["properties"].as_object().map(|_| pb::Properties {
            additional_properties: named_schemas(&s["properties"]),
        }),
        discriminator: text(&s["discriminator"]),
        read_only: flag(&s["readOnly"]),
        example: optional_any(&s["example"]),
        vendor_extension: extensions(s),
        ..Default::default()
    }
}

fn path_item(item: &Value) -> pb::PathItem {
    let op = |m: &str| item.get(m).map(operation);
    pb::PathItem {
        get: op("get"),
        put: op("put"),
        post: op("post"),
        delete: op("delete"),
        options: op("options"),
        head: op("head"),
        patch: op("patch"),
        parameters: parameters(&item["parameters"]),
        vendor_extension: extensions(item),
        ..Default::default()
    }
}

fn operation(op: &Value) -> pb::Operation {
    pb::Operation {
        tags: strings(&op["tags"]),
        description: text(&op["description"]),
        operation_id: text(&op["operationId"]),
        produces: strings(&op["produces"]),
        consumes: strings(&op["consumes"]),
        parameters: parameters(&op["parameters"]),
        responses: Some(pb::Responses {
            response_code: entries(&op["responses"])
                .map(|(code, r)| pb::NamedResponseValue {
                    name: code.clone(),
                    value: Some(pb::ResponseValue {
                        oneof: Some(pb::response_value::Oneof::Response(pb::Response {
                            description: text(&r["description"]),
                            schema: r.get("schema").map(|s| pb::SchemaItem {
                                oneof: Some(pb::schema_item::Oneof::Schema(schema(s))),
                            }),
                            vendor_extension: extensions(r),
                            ..Default::default()
                        })),
                    }),
                })
                .collect(),
            vendor_extension: vec![],
        }),
        schemes: strings(&op["schemes"]),
        deprecated: flag(&op["deprecated"]),
        vendor_extension: extensions(op),
        ..Default::default()
    }
}

fn parameters(v: &Value) -> Vec<pb::ParametersItem> {
    v.as_array()
        .into_iter()
        .flatten()
        .map(|p| pb::ParametersItem {
            oneof: Some(match p.get("$ref") {
                Some(r) => pb::parameters_item::Oneof::JsonReference(pb::JsonReference {
                    r#ref: text(r),
                    description: text(&p["description"]),
                }),
                None => pb::parameters_item::Oneof::Parameter(parameter(p)),
            }),
        })
        .collect()
}

fn parameter(p: &Value) -> pb::Parameter {
    use pb::non_body_parameter::Oneof as NonBody;
    let oneof = match p["in"].as_str() {
        Some("body") => pb::parameter::Oneof::BodyParameter(pb::BodyParameter {
            description: text(&p["description"]),
            name: text(&p["name"]),
            r#in: text(&p["in"]),
            required: flag(&p["required"]),
            schema: p.get("schema").map(schema),
            vendor_extension: extensions(p),
        }),
        Some("path") => pb::parameter::Oneof::NonBodyParameter(pb::NonBodyParameter {
            oneof: Some(NonBody::PathParameterSubSchema(
                pb::PathParameterSubSchema {
                    required: flag(&p["required"]),
                    r#in: text(&p["in"]),
                    description: text(&p["description"]),
                    name: text(&p["name"]),
                    r#type: text(&p["type"]),
                    format: text(&p["format"]),
                    unique_items: flag(&p["uniqueItems"]),
                    default: optional_any(&p["default"]),
                    vendor_extension: extensions(p),
                    ..Default::default()
                },
            )),
        }),
        // Query parameters, and any other kind the document does not use.
        _ => pb::parameter::Oneof::NonBodyParameter(pb::NonBodyParameter {
            oneof: Some(NonBody::QueryParameterSubSchema(
                pb::QueryParameterSubSchema {
                    required: flag(&p["required"]),
                    r#in: text(&p["in"]),
                    description: text(&p["description"]),
                    name: text(&p["name"]),
                    r#type: text(&p["type"]),
                    format: text(&p["format"]),
                    unique_items: flag(&p["uniqueItems"]),
                    default: optional_any(&p["default"]),
                    vendor_extension: extensions(p),
                    ..Default::default()
                },
            )),
        }),
    };
    pb::Parameter { oneof: Some(oneof) }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The encoded document decodes with gnostic's schema (the prost messages generated from
    /// OpenAPIv2.proto) into what the JSON says.
    #[test]
    fn decodes_as_gnostic_document() {
        let spec = super::super::v2::spec(&crate::customresource::Registry::default());
        let doc = pb::Document::decode(spec.protobuf.as_ref()).unwrap();
        assert_eq!(doc.swagger, "2.0");
        let defs = &doc.definitions.unwrap().additional_properties;
        let pod = defs
            .iter()
            .find(|d| d.name == "io.k8s.api.core.v1.Pod")
            .and_then(|d| d.value.as_ref())
            .unwrap();
        let gvk = pod
            .vendor_extension
            .iter()
            .find(|e| e.name == "x-kubernetes-group-version-kind")
            .unwrap();
        let yaml: Value = serde_yaml::from_str(&gvk.value.as_ref().unwrap().yaml).unwrap();
        assert_eq!(yaml[0]["kind"], "Pod");
        let spec_prop = pod
            .properties
            .as_ref()
            .unwrap()
            .additional_properties
            .iter()
            .find(|p| p.name == "spec")
            .unwrap();
        assert_eq!(
            spec_prop.value.as_ref().unwrap().r#ref,
            "#/definitions/io.k8s.api.core.v1.PodSpec"
        );
        let paths = doc.paths.unwrap().path;
        let item = paths
            .iter()
            .find(|p| p.name == "/api/v1/namespaces/{namespace}/pods/{name}")
            .and_then(|p| p.value.as_ref())
            .unwrap();
        assert_eq!(
            item.get.as_ref().unwrap().operation_id,
            "readCoreV1NamespacedPod"
        );
        assert_eq!(item.parameters.len(), 3);
    }
}
