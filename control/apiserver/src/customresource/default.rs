//! Defaulting (upstream's `apiserver/schema/defaulting`): a property with a `default` that is
//! absent — or `null` where the schema does not allow null — gets the default, then defaults
//! are applied below it too (so a defaulted object gets its own fields' defaults). Runs on every
//! create and update, after pruning and before validation, as upstream's request path does.

use serde_json::Value;

use super::schema::{Additional, Schema};

pub fn apply(value: &mut Value, schema: &Schema) {
    match value {
        Value::Object(map) => {
            for (key, prop) in &schema.properties {
                let Some(default) = &prop.default else {
                    continue;
                };
                let missing = match map.get(key) {
                    None => true,
                    Some(Value::Null) => !prop.nullable,
                    Some(_) => false,
                };
                if missing {
                    map.insert(key.clone(), default.clone());
                }
            }
            for (key, v) in map.iter_mut() {
                if let Some(prop) = schema.properties.get(key) {
                    apply(v, prop);
                } else if let Additional::Schema(s) = &schema.additional {
                    apply(v, s);
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = &schema.items {
                for item in items {
                    apply(item, item_schema);
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
    fn defaults_fill_absent_and_null_fields_and_nest() {
        let schema = Schema::from_json(&json!({
            "type": "object",
            "properties": {"spec": {"type": "object", "default": {}, "properties": {
                "replicas": {"type": "integer", "default": 1},
                "mode": {"type": "string", "default": "fast"},
                "note": {"type": "string", "nullable": true, "default": "n"},
                "ports": {"type": "array", "items": {"type": "object", "properties": {"protocol": {"type": "string", "default": "TCP"}}}}
            }}}
        }));
        let mut v = json!({"metadata": {"name": "w"}});
        apply(&mut v, &schema);
        assert_eq!(
            v["spec"],
            json!({"replicas": 1, "mode": "fast", "note": "n"})
        );
        let mut v = json!({"spec": {"replicas": 3, "mode": null, "note": null, "ports": [{}]}});
        apply(&mut v, &schema);
        assert_eq!(
            v["spec"],
            json!({"replicas": 3, "mode": "fast", "note": null, "ports": [{"protocol": "TCP"}]})
        );
    }
}
