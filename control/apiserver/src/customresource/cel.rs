//! CEL validation rules (`x-kubernetes-validations`), evaluated with the `cel` crate of cel-rust
//! as upstream's `apiserver/schema/cel` evaluates them with cel-go: each rule of a schema node
//! is a boolean expression over `self` (the node's value) and, for transition rules, `oldSelf`
//! (the value before an update; a rule naming `oldSelf` is checked only on updates where the old
//! value exists, as upstream's).
//!
//! A failed rule is upstream's field error: `Invalid value: <value>: <message>` (objects and lists
//! leave the value out: `spec: Invalid value: <message>`), where
//! the message is the rule's `messageExpression` result, else its `message`, else `failed rule:
//! <rule>`; `reason` picks the error type (`FieldValueForbidden`, `FieldValueRequired`,
//! `FieldValueDuplicate`) and `fieldPath` the field it names. A rule that does not compile is
//! refused with the CRD.
//!
//! Values are handed to CEL by their schema type: `number` fields are doubles even when the
//! JSON holds an integral number, `integer` fields ints, objects maps. Not done: upstream's
//! cost estimation and limits, the Kubernetes CEL libraries (`isSorted`, `url`, `quantity`,
//! `authorizer`, …) beyond what the `cel` crate's standard library has.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::Value;

use super::schema::{Additional, Schema};
use crate::error::FieldError;

/// One rule of `x-kubernetes-validations`, compiled.
#[derive(Clone)]
pub struct Rule {
    pub rule: String,
    pub message: String,
    pub message_expression: Option<Arc<cel::Program>>,
    pub reason: String,
    pub field_path: String,
    program: Arc<cel::Program>,
    uses_old_self: bool,
}

impl std::fmt::Debug for Rule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Rule({:?})", self.rule)
    }
}

/// Compiles a rule's expression; the error text is what the CRD's validation reports.
pub fn compile(source: &str) -> Result<cel::Program, String> {
    std::panic::catch_unwind(|| cel::Program::compile(source))
        .map_err(|_| "the expression could not be parsed".to_string())?
        .map_err(|e| e.to_string().trim().to_string())
}

/// The rules of a schema node (those that compile: the CRD's validation refused the others).
pub fn rules(node: &Value) -> Vec<Rule> {
    node.get("x-kubernetes-validations")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|r| {
            let rule = r.get("rule")?.as_str()?.to_string();
            let program = compile(&rule).ok()?;
            let uses_old_self = program.references().has_variable("oldSelf");
            let text = |k: &str| {
                r.get(k)
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string()
            };
            Some(Rule {
                message: text("message"),
                message_expression: r
                    .get("messageExpression")
                    .and_then(Value::as_str)
                    .filter(|m| !m.is_empty())
                    .and_then(|m| compile(m).ok())
                    .map(Arc::new),
                reason: text("reason"),
                field_path: text("fieldPath"),
                program: Arc::new(program),
                uses_old_self,
                rule,
            })
        })
        .collect()
}

/// A JSON value as CEL sees it without a schema (integral numbers are ints), as admission's
/// expressions see objects, requests and params.
pub fn value(v: &Value) -> cel::Value {
    to_cel(v, None)
}

/// A JSON value as CEL sees it, typed by its schema node.
fn to_cel(v: &Value, schema: Option<&Schema>) -> cel::Value {
    match v {
        Value::Null => cel::Value::Null,
        Value::Bool(b) => cel::Value::Bool(*b),
        Value::Number(n) => {
            let float = schema.is_some_and(|s| s.kind == "number");
            match (n.as_i64(), float) {
                (Some(i), false) => cel::Value::Int(i),
                _ => cel::Value::Float(n.as_f64().unwrap_or(0.0)),
            }
        }
        Value::String(s) => cel::Value::String(Arc::new(s.clone())),
        Value::Array(items) => {
            let item_schema = schema.and_then(|s| s.items.as_deref());
            cel::Value::List(Arc::new(
                items.iter().map(|i| to_cel(i, item_schema)).collect(),
            ))
        }
        Value::Object(map) => {
            let entries: HashMap<String, cel::Value> = map
                .iter()
                .map(|(k, v)| (k.clone(), to_cel(v, schema.and_then(|s| s.field(k)))))
                .collect();
            cel::Value::from(entries)
        }
    }
}

/// A failed rule's error: the value is shown for scalars and left out for objects and lists,
/// as upstream's.
fn error_for(rule: &Rule, path: &str, value: &Value, message: String) -> FieldError {
    let path = if rule.field_path.is_empty() {
        path.to_string()
    } else if path.is_empty() {
        rule.field_path.trim_start_matches('.').to_string()
    } else {
        format!("{path}{}", rule.field_path)
    };
    let composite = value.is_object() || value.is_array();
    match rule.reason.as_str() {
        "FieldValueForbidden" => FieldError::forbidden(path, message),
        "FieldValueRequired" => FieldError::required(path, message),
        "FieldValueDuplicate" if composite => FieldError {
            message: "Duplicate value".into(),
            ..FieldError::duplicate(path, value)
        },
        "FieldValueDuplicate" => FieldError::duplicate(path, value),
        _ if composite => FieldError::invalid_omitted(path, message),
        _ => FieldError::invalid(path, value, message),
    }
}

/// Checks the rules of `schema`'s node and of every node below it against `value`; `old` is
/// the value before the update at the same place, when there is one.
pub fn validate(
    value: &Value,
    old: Option<&Value>,
    schema: &Schema,
    path: &str,
    errors: &mut Vec<FieldError>,
) {
    if value.is_null() {
        return;
    }
    if !schema.rules.is_empty() {
        let this = to_cel(value, Some(schema));
        let before = old.map(|o| to_cel(o, Some(schema)));
        for rule in &schema.rules {
            if rule.uses_old_self && before.is_none() {
                continue;
            }
            let mut context = cel::Context::default();
            context.add_variable_from_value("self", this.clone());
            if let Some(b) = &before {
                context.add_variable_from_value("oldSelf", b.clone());
            }
            match rule.program.execute(&context) {
                Ok(cel::Value::Bool(true)) => {}
                Ok(cel::Value::Bool(false)) => {
                    let message = rule
                        .message_expression
                        .as_ref()
                        .and_then(|m| match m.execute(&context) {
                            Ok(cel::Value::String(s)) if !s.trim().is_empty() => {
                                Some(s.to_string())
                            }
                            _ => None,
                        })
                        .or_else(|| (!rule.message.is_empty()).then(|| rule.message.clone()))
                        .unwrap_or_else(|| format!("failed rule: {}", rule.rule));
                    errors.push(error_for(rule, path, value, message));
                }
                Ok(other) => errors.push(error_for(
                    rule,
                    path,
                    value,
                    format!(
                        "rule evaluation error: the rule {:?} returned {other:?}, not a bool",
                        rule.rule
                    ),
                )),
                Err(e) => errors.push(error_for(rule, path, value, e.to_string())),
            }
        }
    }
    match value {
        Value::Object(map) => {
            for (key, v) in map {
                let sub = match schema.properties.get(key) {
                    Some(p) => p,
                    None => match &schema.additional {
                        Additional::Schema(s) => s.as_ref(),
                        _ => continue,
                    },
                };
                let here = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                validate(v, old.and_then(|o| o.get(key)), sub, &here, errors);
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = &schema.items {
                // Items correlate with old ones by their keys in map lists, not otherwise.
                let old_item = |item: &Value| -> Option<&Value> {
                    if schema.list_type.as_deref() != Some("map") {
                        return None;
                    }
                    old?.as_array()?
                        .iter()
                        .find(|o| schema.list_map_keys.iter().all(|k| o.get(k) == item.get(k)))
                };
                for (i, item) in items.iter().enumerate() {
                    validate(
                        item,
                        old_item(item),
                        item_schema,
                        &format!("{path}[{i}]"),
                        errors,
                    );
                }
            }
        }
        _ => {}
    }
}

/// The CRD's check of its rules: each compiles, and says something.
pub fn check_rules(node: &Value, path: &str, errors: &mut Vec<FieldError>) {
    let Some(list) = node
        .get("x-kubernetes-validations")
        .and_then(Value::as_array)
    else {
        return;
    };
    for (i, r) in list.iter().enumerate() {
        let here = format!("{path}.x-kubernetes-validations[{i}]");
        let rule = r.get("rule").and_then(Value::as_str).unwrap_or_default();
        if rule.trim().is_empty() {
            errors.push(FieldError::required(format!("{here}.rule"), ""));
            continue;
        }
        if let Err(e) = compile(rule) {
            errors.push(FieldError::invalid(
                format!("{here}.rule"),
                &Value::from(rule),
                format!("compilation failed: {e}"),
            ));
        }
        if let Some(m) = r.get("messageExpression").and_then(Value::as_str) {
            if let Err(e) = compile(m) {
                errors.push(FieldError::invalid(
                    format!("{here}.messageExpression"),
                    &Value::from(m),
                    format!("messageExpression compilation failed: {e}"),
                ));
            }
        }
        if let Some(m) = r.get("message").and_then(Value::as_str) {
            if m.contains('\n') {
                errors.push(FieldError::invalid(
                    format!("{here}.message"),
                    &Value::from(m),
                    "message must not contain line breaks",
                ));
            }
        }
        if let Some(reason) = r.get("reason").and_then(Value::as_str) {
            let allowed = [
                "FieldValueInvalid",
                "FieldValueForbidden",
                "FieldValueRequired",
                "FieldValueDuplicate",
            ];
            if !allowed.contains(&reason) {
                errors.push(FieldError::not_supported(
                    format!("{here}.reason"),
                    &Value::from(reason),
                    &allowed,
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> Schema {
        Schema::from_json(&json!({
            "type": "object",
            "properties": {"spec": {
                "type": "object",
                "x-kubernetes-validations": [
                    {"rule": "self.replicas <= self.maxReplicas", "message": "replicas must not exceed maxReplicas"},
                    {"rule": "!has(self.ratio) || self.ratio < 1.5"},
                    {"rule": "self.name.startsWith('w-')", "messageExpression": "'name ' + self.name + ' must start with w-'", "fieldPath": ".name", "reason": "FieldValueForbidden"}
                ],
                "properties": {
                    "replicas": {"type": "integer"},
                    "maxReplicas": {"type": "integer"},
                    "ratio": {"type": "number"},
                    "name": {"type": "string", "x-kubernetes-validations": [{"rule": "self == oldSelf", "message": "name is immutable"}]}
                }
            }}
        }))
    }

    fn messages(new: Value, old: Option<Value>) -> Vec<String> {
        let mut errors = Vec::new();
        validate(&new, old.as_ref(), &schema(), "", &mut errors);
        errors
            .iter()
            .map(|e| format!("{}: {}", e.field, e.message))
            .collect()
    }

    #[test]
    fn rules_with_upstream_messages() {
        assert!(messages(
            json!({"spec": {"replicas": 1, "maxReplicas": 2, "ratio": 1, "name": "w-a"}}),
            None
        )
        .is_empty());
        assert_eq!(
            messages(
                json!({"spec": {"replicas": 3, "maxReplicas": 2, "ratio": 2, "name": "x"}}),
                None
            ),
            vec![
                "spec: Invalid value: replicas must not exceed maxReplicas",
                "spec: Invalid value: failed rule: !has(self.ratio) || self.ratio < 1.5",
                "spec.name: Forbidden: name x must start with w-",
            ]
        );
        // Transition rules run on updates only.
        let old = json!({"spec": {"replicas": 1, "maxReplicas": 2, "name": "w-a"}});
        assert_eq!(
            messages(
                json!({"spec": {"replicas": 1, "maxReplicas": 2, "name": "w-b"}}),
                Some(old)
            ),
            vec![r#"spec.name: Invalid value: "w-b": name is immutable"#]
        );
    }

    #[test]
    fn bad_rules_are_named() {
        let mut errors = Vec::new();
        check_rules(
            &json!({"x-kubernetes-validations": [{"rule": "self.a <"}, {"rule": ""}]}),
            "spec.versions[0].schema.openAPIV3Schema",
            &mut errors,
        );
        assert!(
            errors[0].message.contains("compilation failed"),
            "{:?}",
            errors[0]
        );
        assert_eq!(
            errors[1].field,
            "spec.versions[0].schema.openAPIV3Schema.x-kubernetes-validations[1].rule"
        );
    }
}
