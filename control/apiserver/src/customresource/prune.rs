//! Pruning (upstream's `apiserver/schema/pruning`): fields a structural schema does not specify
//! are dropped from every custom object written, unless a node says
//! `x-kubernetes-preserve-unknown-fields: true` (or allows them with `additionalProperties`).
//! At the root and in embedded resources `apiVersion`, `kind` and `metadata` always stay. The
//! dropped paths are what `fieldValidation=Strict` refuses and `Warn` reports, in upstream's
//! words: `unknown field "spec.foo"`.

use serde_json::Value;

use super::schema::{Additional, Schema};

/// Prunes `value` (an object at the root, or an embedded resource when `embedded`) against
/// `schema`, appending the dotted paths of dropped fields to `dropped`.
pub fn prune(value: &mut Value, schema: &Schema, dropped: &mut Vec<String>) {
    prune_node(value, schema, "", true, dropped);
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn prune_node(
    value: &mut Value,
    schema: &Schema,
    path: &str,
    is_resource: bool,
    dropped: &mut Vec<String>,
) {
    match value {
        Value::Object(map) => {
            let resource = is_resource || schema.embedded;
            let keys: Vec<String> = map.keys().cloned().collect();
            for key in keys {
                if resource && matches!(key.as_str(), "apiVersion" | "kind" | "metadata") {
                    continue;
                }
                let here = join(path, &key);
                let child = match schema.properties.get(&key) {
                    Some(p) => Some(p),
                    None => match &schema.additional {
                        Additional::Schema(s) => Some(s.as_ref()),
                        Additional::Allowed(true) => None,
                        _ if schema.preserve_unknown => None,
                        _ => {
                            map.remove(&key);
                            dropped.push(here);
                            continue;
                        }
                    },
                };
                if let (Some(child), Some(v)) = (child, map.get_mut(&key)) {
                    prune_node(v, child, &here, false, dropped);
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = &schema.items {
                for (i, item) in items.iter_mut().enumerate() {
                    prune_node(item, item_schema, &format!("{path}[{i}]"), false, dropped);
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn unknown_fields_go_and_are_named() {
        let schema = Schema::from_json(&json!({
            "type": "object",
            "properties": {
                "spec": {"type": "object", "properties": {
                    "replicas": {"type": "integer"},
                    "template": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                    "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                    "ports": {"type": "array", "items": {"type": "object", "properties": {"port": {"type": "integer"}}}},
                    "pod": {"type": "object", "x-kubernetes-embedded-resource": true, "properties": {"spec": {"type": "object"}}}
                }}
            }
        }));
        let mut v = json!({
            "apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"},
            "extra": 1,
            "spec": {
                "replicas": 2, "foo": "x",
                "template": {"anything": {"goes": true}},
                "labels": {"a": "b"},
                "ports": [{"port": 80, "name": "http"}],
                "pod": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {"x": 1}, "status": {}}
            }
        });
        let mut dropped = Vec::new();
        prune(&mut v, &schema, &mut dropped);
        dropped.sort();
        assert_eq!(
            dropped,
            vec![
                "extra",
                "spec.foo",
                "spec.pod.spec.x",
                "spec.pod.status",
                "spec.ports[0].name"
            ]
        );
        assert_eq!(v["spec"]["template"]["anything"]["goes"], true);
        assert_eq!(v["spec"]["labels"]["a"], "b");
        assert_eq!(v["spec"]["pod"]["kind"], "Pod");
        assert_eq!(v["metadata"]["name"], "w");
    }
}
