//! A custom resource's `openAPIV3Schema`, read once when its CustomResourceDefinition is served
//! (upstream's `apiserver/schema.Structural`): the structure (types, properties, items,
//! additionalProperties, the `x-kubernetes-*` extensions) that pruning and defaulting walk, and
//! the value validations (`enum`, bounds, lengths, `pattern`, `required`, the `allOf`/`anyOf`/
//! `oneOf`/`not` combinators) that `validate.rs` checks. The JSON is the CRD's, already checked by
//! the CRD's own validation (`registry/apiextensions`), so reading it never fails: what cannot be
//! read is left out.

use std::collections::BTreeMap;

use serde_json::Value;

/// `additionalProperties`: absent, a boolean, or a schema for every value of a map.
#[derive(Debug, Clone, Default)]
pub enum Additional {
    #[default]
    Absent,
    Allowed(bool),
    Schema(Box<Schema>),
}

/// One node of a structural schema with its value validations.
#[derive(Debug, Clone, Default)]
pub struct Schema {
    /// `object`, `array`, `string`, `integer`, `number`, `boolean`, or empty.
    pub kind: String,
    pub format: String,
    pub description: String,
    pub properties: BTreeMap<String, Schema>,
    pub items: Option<Box<Schema>>,
    pub additional: Additional,
    pub nullable: bool,
    pub default: Option<Value>,
    pub preserve_unknown: bool,
    pub int_or_string: bool,
    pub embedded: bool,
    pub list_type: Option<String>,
    pub list_map_keys: Vec<String>,
    pub map_type: Option<String>,
    pub enumeration: Option<Vec<Value>>,
    pub maximum: Option<f64>,
    pub exclusive_maximum: bool,
    pub minimum: Option<f64>,
    pub exclusive_minimum: bool,
    pub multiple_of: Option<f64>,
    pub max_length: Option<u64>,
    pub min_length: Option<u64>,
    /// The pattern as written (for messages) and compiled.
    pub pattern: Option<(String, regex::Regex)>,
    pub max_items: Option<u64>,
    pub min_items: Option<u64>,
    pub unique_items: bool,
    pub max_properties: Option<u64>,
    pub min_properties: Option<u64>,
    pub required: Vec<String>,
    pub all_of: Vec<Schema>,
    pub any_of: Vec<Schema>,
    pub one_of: Vec<Schema>,
    pub not: Option<Box<Schema>>,
    /// `x-kubernetes-validations`, compiled.
    pub rules: Vec<super::cel::Rule>,
    /// The JSON the node was read from (OpenAPI publishing hands it on as it is).
    pub raw: Value,
}

fn u(v: &Value, k: &str) -> Option<u64> {
    v.get(k).and_then(Value::as_u64)
}

fn f(v: &Value, k: &str) -> Option<f64> {
    v.get(k).and_then(Value::as_f64)
}

fn b(v: &Value, k: &str) -> bool {
    v.get(k).and_then(Value::as_bool).unwrap_or(false)
}

fn s(v: &Value, k: &str) -> String {
    v.get(k)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

fn list(v: &Value, k: &str) -> Vec<Schema> {
    v.get(k)
        .and_then(Value::as_array)
        .map(|a| a.iter().map(Schema::from_json).collect())
        .unwrap_or_default()
}

/// Go's RE2 and Rust's `regex` share their syntax for what CRDs use; a pattern `regex` refuses
/// was refused when the CRD was validated.
pub fn compile_pattern(pattern: &str) -> Result<regex::Regex, regex::Error> {
    regex::Regex::new(pattern)
}

impl Schema {
    /// Whether any node of the schema has a `default`.
    pub fn has_defaults(&self) -> bool {
        self.default.is_some()
            || self.properties.values().any(Schema::has_defaults)
            || self.items.as_ref().is_some_and(|i| i.has_defaults())
            || matches!(&self.additional, Additional::Schema(s) if s.has_defaults())
    }

    pub fn from_json(v: &Value) -> Schema {
        let additional = match v.get("additionalProperties") {
            Some(Value::Bool(allowed)) => Additional::Allowed(*allowed),
            Some(o @ Value::Object(_)) => Additional::Schema(Box::new(Schema::from_json(o))),
            _ => Additional::Absent,
        };
        Schema {
            kind: s(v, "type"),
            format: s(v, "format"),
            description: s(v, "description"),
            properties: v
                .get("properties")
                .and_then(Value::as_object)
                .map(|p| {
                    p.iter()
                        .map(|(k, v)| (k.clone(), Schema::from_json(v)))
                        .collect()
                })
                .unwrap_or_default(),
            items: v
                .get("items")
                .filter(|i| i.is_object())
                .map(|i| Box::new(Schema::from_json(i))),
            additional,
            nullable: b(v, "nullable"),
            default: v.get("default").cloned(),
            preserve_unknown: b(v, "x-kubernetes-preserve-unknown-fields"),
            int_or_string: b(v, "x-kubernetes-int-or-string"),
            embedded: b(v, "x-kubernetes-embedded-resource"),
            list_type: v
                .get("x-kubernetes-list-type")
                .and_then(Value::as_str)
                .map(str::to_string),
            list_map_keys: v
                .get("x-kubernetes-list-map-keys")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|k| k.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default(),
            map_type: v
                .get("x-kubernetes-map-type")
                .and_then(Value::as_str)
                .map(str::to_string),
            enumeration: v.get("enum").and_then(Value::as_array).cloned(),
            maximum: f(v, "maximum"),
            exclusive_maximum: b(v, "exclusiveMaximum"),
            minimum: f(v, "minimum"),
            exclusive_minimum: b(v, "exclusiveMinimum"),
            multiple_of: f(v, "multipleOf"),
            max_length: u(v, "maxLength"),
            min_length: u(v, "minLength"),
            pattern: v
                .get("pattern")
                .and_then(Value::as_str)
                .and_then(|p| compile_pattern(p).ok().map(|r| (p.to_string(), r))),
            max_items: u(v, "maxItems"),
            min_items: u(v, "minItems"),
            unique_items: b(v, "uniqueItems"),
            max_properties: u(v, "maxProperties"),
            min_properties: u(v, "minProperties"),
            required: v
                .get("required")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|k| k.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default(),
            all_of: list(v, "allOf"),
            any_of: list(v, "anyOf"),
            one_of: list(v, "oneOf"),
            not: v
                .get("not")
                .filter(|n| n.is_object())
                .map(|n| Box::new(Schema::from_json(n))),
            rules: super::cel::rules(v),
            raw: v.clone(),
        }
    }

    /// The schema of a field of this object: its property, else additionalProperties.
    pub fn field(&self, name: &str) -> Option<&Schema> {
        if let Some(p) = self.properties.get(name) {
            return Some(p);
        }
        match &self.additional {
            Additional::Schema(s) => Some(s),
            _ => None,
        }
    }

    /// The schema at a dotted path below this one (`.spec.replicas`, `spec.replicas`).
    pub fn at_path(&self, path: &str) -> Option<&Schema> {
        let mut here = self;
        for part in path.trim_start_matches('.').split('.') {
            if part.is_empty() {
                continue;
            }
            here = here.field(part)?;
        }
        Some(here)
    }
}

/// The root schema of a version of a CRD: `spec.versions[i].schema.openAPIV3Schema`, or the
/// deprecated top-level `spec.validation` a v1beta1 CRD stored. `None`: no schema (only CRDs with
/// `preserveUnknownFields: true` from v1beta1 days have none).
pub fn version_schema(crd: &Value, version: &Value) -> Option<Schema> {
    version
        .pointer("/schema/openAPIV3Schema")
        .or_else(|| crd.pointer("/spec/validation/openAPIV3Schema"))
        .filter(|s| s.is_object())
        .map(Schema::from_json)
}
