//! JSON patch (RFC 6902), applied with the `json-patch` crate one operation
//! at a time so that every step can be bounded.

use serde_json::{Map, Value};

use super::go_text::{go_json_kind, json_syntax_message};
use super::{node_count, value_depth, PatchError, MAX_DEPTH, MAX_JSON_PATCH_OPERATIONS};

/// Extra nodes a JSON patch's `copy` operations may create beyond the size of
/// the original object plus the patch itself. Copy is the only operation that
/// can grow a document faster than the patch body (each copy can double it),
/// so its total output is capped.
const JSON_PATCH_COPY_SLACK_NODES: usize = 10_000;

pub(super) fn apply_json_patch(original: &Value, body: &[u8]) -> Result<Value, PatchError> {
    // Upstream decodes the body into []map[string]*json.RawMessage first, so
    // anything that is not a list of objects is a 400 before any operation
    // runs.
    let parsed: Value = serde_json::from_slice(body)
        .map_err(|e| PatchError::BadRequest(json_syntax_message(&e)))?;
    let raw_ops = match parsed {
        Value::Array(raw_ops) => raw_ops,
        other => {
            return Err(PatchError::BadRequest(format!(
                "json: cannot unmarshal {} into Go value of type jsonpatch.Patch",
                go_json_kind(&other)
            )))
        }
    };
    let mut op_objects = Vec::with_capacity(raw_ops.len());
    for raw in raw_ops {
        match raw {
            Value::Object(op) => op_objects.push(op),
            other => {
                return Err(PatchError::BadRequest(format!(
                    "json: cannot unmarshal {} into Go value of type jsonpatch.Operation",
                    go_json_kind(&other)
                )))
            }
        }
    }
    if op_objects.len() > MAX_JSON_PATCH_OPERATIONS {
        return Err(PatchError::TooManyOperations {
            max: MAX_JSON_PATCH_OPERATIONS,
            got: op_objects.len(),
        });
    }

    let patch_nodes: usize = op_objects
        .iter()
        .map(|op| node_count(op.get("value").unwrap_or(&Value::Null), usize::MAX))
        .sum();
    let mut copy_budget = node_count(original, usize::MAX)
        .saturating_add(patch_nodes)
        .saturating_add(JSON_PATCH_COPY_SLACK_NODES);

    // Work on a copy: an error simply drops it, which is the all-or-nothing
    // behaviour RFC 6902 asks for.
    let mut doc = original.clone();
    for op_object in op_objects {
        let op = JsonPatchOp::parse(op_object)?;
        op.check_growth(&doc, &mut copy_budget)?;
        if let Err(err) = json_patch::patch_unsafe(&mut doc, std::slice::from_ref(&op.operation)) {
            return Err(PatchError::OperationFailed(op.failure_message(&err.kind)));
        }
    }
    // An operation on the root ("path": "") can replace the whole object;
    // upstream then fails to decode it into the resource type (422).
    if !doc.is_object() {
        return Err(PatchError::OperationFailed(format!(
            "json: cannot unmarshal {} into Go value of type map[string]interface {{}}",
            go_json_kind(&doc)
        )));
    }
    Ok(doc)
}

/// One JSON patch operation, validated and converted for the json-patch crate.
pub(super) struct JsonPatchOp {
    kind: String,
    path: String,
    from: Option<String>,
    operation: json_patch::PatchOperation,
}

impl JsonPatchOp {
    fn parse(mut raw: Map<String, Value>) -> Result<JsonPatchOp, PatchError> {
        // evanphx/json-patch reports a missing or non-string "op" as kind
        // "unknown" and fails on apply with "Unexpected kind".
        let kind = match raw.get("op") {
            Some(Value::String(kind)) => kind.clone(),
            _ => "unknown".to_string(),
        };
        if !matches!(
            kind.as_str(),
            "add" | "remove" | "replace" | "move" | "copy" | "test"
        ) {
            return Err(PatchError::OperationFailed(format!(
                "Unexpected kind: {kind}"
            )));
        }
        let path = match raw.get("path") {
            Some(Value::String(path)) => path.clone(),
            _ => {
                return Err(PatchError::OperationFailed(format!(
                    "{kind} operation failed to decode path: operation missing path field: missing value"
                )))
            }
        };
        let from = if kind == "move" || kind == "copy" {
            match raw.get("from") {
                Some(Value::String(from)) => Some(from.clone()),
                _ => {
                    return Err(PatchError::OperationFailed(format!(
                        "{kind} operation failed to decode from: operation missing from field: missing value"
                    )))
                }
            }
        } else {
            None
        };
        let value = raw.remove("value").unwrap_or(Value::Null);

        // Rebuild the operation with only the members the crate reads, so
        // that stray members cannot change how it deserializes.
        let mut clean = Map::new();
        clean.insert("op".to_string(), Value::String(kind.clone()));
        clean.insert("path".to_string(), Value::String(path.clone()));
        if let Some(from) = &from {
            clean.insert("from".to_string(), Value::String(from.clone()));
        }
        if matches!(kind.as_str(), "add" | "replace" | "test") {
            // A missing "value" is a null value, as in evanphx/json-patch.
            clean.insert("value".to_string(), value);
        }
        let operation: json_patch::PatchOperation = serde_json::from_value(Value::Object(clean))
            .map_err(|e| {
                PatchError::OperationFailed(format!("{kind} operation is invalid: {e}"))
            })?;
        Ok(JsonPatchOp {
            kind,
            path,
            from,
            operation,
        })
    }

    /// Refuses an operation that would nest the document deeper than
    /// [`MAX_DEPTH`] or copy more than the remaining budget. Checked before
    /// applying, so that a hostile patch never builds the huge or deep value
    /// in the first place (dropping a very deep `Value` recurses).
    fn check_growth(&self, doc: &Value, copy_budget: &mut usize) -> Result<(), PatchError> {
        // A pointer's token count is its number of '/' (escapes use '~').
        let target_depth = self.path.matches('/').count();
        if target_depth > MAX_DEPTH {
            return Err(PatchError::TooDeep { limit: MAX_DEPTH });
        }
        let room = MAX_DEPTH - target_depth;
        let inserted = match &self.operation {
            json_patch::PatchOperation::Add(op) => Some(&op.value),
            json_patch::PatchOperation::Replace(op) => Some(&op.value),
            json_patch::PatchOperation::Copy(_) => {
                let source = self.from.as_deref().and_then(|from| doc.pointer(from));
                if let Some(source) = source {
                    let nodes = node_count(source, *copy_budget);
                    if nodes > *copy_budget {
                        return Err(PatchError::OperationFailed(format!(
                            "copy operation does not apply: the copies would exceed the allowed size of the patched object (copying {})",
                            self.from.as_deref().unwrap_or("")
                        )));
                    }
                    *copy_budget -= nodes;
                }
                source
            }
            json_patch::PatchOperation::Move(_) => {
                // Moving a value no deeper than it was cannot deepen the
                // document; only look at it when it goes further down.
                let from_depth = self
                    .from
                    .as_deref()
                    .map(|from| from.matches('/').count())
                    .unwrap_or(0);
                if target_depth > from_depth {
                    self.from.as_deref().and_then(|from| doc.pointer(from))
                } else {
                    None
                }
            }
            json_patch::PatchOperation::Remove(_) | json_patch::PatchOperation::Test(_) => None,
        };
        if let Some(inserted) = inserted {
            if value_depth(inserted, room) > room {
                return Err(PatchError::TooDeep { limit: MAX_DEPTH });
            }
        }
        Ok(())
    }

    /// Upstream-shaped text (evanphx/json-patch v4) for a failed operation.
    fn failure_message(&self, kind: &json_patch::PatchErrorKind) -> String {
        let path = &self.path;
        let from = self.from.as_deref().unwrap_or("");
        match kind {
            json_patch::PatchErrorKind::TestFailed => {
                format!("testing value {path} failed: test failed")
            }
            json_patch::PatchErrorKind::InvalidFromPointer => {
                format!(
                    "{} operation does not apply: doc is missing from path: {from}: missing value",
                    self.kind
                )
            }
            json_patch::PatchErrorKind::CannotMoveInsideItself => {
                format!(
                    "move operation does not apply: cannot move {from} into its own child {path}"
                )
            }
            json_patch::PatchErrorKind::InvalidPointer => match self.kind.as_str() {
                "test" => format!("testing value {path} failed: test failed"),
                "add" | "remove" => {
                    format!(
                        "{} operation does not apply: doc is missing path: \"{path}\": missing value",
                        self.kind
                    )
                }
                _ => format!(
                    "{} operation does not apply: doc is missing path: {path}: missing value",
                    self.kind
                ),
            },
            other => format!("{} operation does not apply: {other}", self.kind),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    use crate::patch::testing::*;
    use crate::patch::{apply_patch, PatchType};

    // --- JSON patch (kubectl patch --type=json) ------------------------------

    #[test]
    fn kubectl_patch_type_json() {
        let original = deployment();
        let body = br#"[
            {"op": "test", "path": "/spec/replicas", "value": 1},
            {"op": "replace", "path": "/spec/replicas", "value": 4},
            {"op": "add", "path": "/metadata/labels/env", "value": "prod"},
            {"op": "add", "path": "/spec/template/spec/containers/0/env/-", "value": {"name": "BAZ", "value": "3"}},
            {"op": "remove", "path": "/metadata/annotations/note"},
            {"op": "copy", "from": "/metadata/labels/app", "path": "/metadata/labels/copied"},
            {"op": "move", "from": "/metadata/labels/tier", "path": "/metadata/labels/moved"}
        ]"#;
        let patched = apply_patch(DEPLOYMENT, &original, PatchType::Json, body).unwrap();
        assert_eq!(patched["spec"]["replicas"], json!(4));
        assert_eq!(
            patched["metadata"]["labels"],
            json!({"app": "web", "env": "prod", "copied": "web", "moved": "frontend"})
        );
        assert_eq!(
            container(&patched, 0)["env"][2],
            json!({"name": "BAZ", "value": "3"})
        );
        assert_eq!(patched["metadata"]["annotations"], json!({}));
    }

    #[test]
    fn json_patch_failures() {
        let original = deployment();
        let err = apply_patch(
            DEPLOYMENT,
            &original,
            PatchType::Json,
            br#"[{"op":"test","path":"/spec/replicas","value":2}]"#,
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "testing value /spec/replicas failed: test failed"
        );
        assert_eq!(err.http_code(), 422);
        assert_eq!(err.reason(), "Invalid");
        assert_eq!(
            err.status_message(),
            "the server rejected our request due to an error in our request"
        );

        let err = apply_patch(
            DEPLOYMENT,
            &original,
            PatchType::Json,
            br#"[{"op":"remove","path":"/spec/nope"}]"#,
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "remove operation does not apply: doc is missing path: \"/spec/nope\": missing value"
        );
        assert_eq!(err.http_code(), 422);

        let err = apply_patch(
            DEPLOYMENT,
            &original,
            PatchType::Json,
            br#"[{"op":"add","path":"/a/b/c","value":1}]"#,
        )
        .unwrap_err();
        assert_eq!(err.http_code(), 422);

        let err = apply_patch(
            DEPLOYMENT,
            &original,
            PatchType::Json,
            br#"[{"op":"frobnicate","path":"/a"}]"#,
        )
        .unwrap_err();
        assert_eq!(err.to_string(), "Unexpected kind: frobnicate");

        let err =
            apply_patch(DEPLOYMENT, &original, PatchType::Json, br#"{"op":"add"}"#).unwrap_err();
        assert_eq!(
            err.to_string(),
            "json: cannot unmarshal object into Go value of type jsonpatch.Patch"
        );
        assert_eq!(err.http_code(), 400);

        let err = apply_patch(DEPLOYMENT, &original, PatchType::Json, b"[1]").unwrap_err();
        assert_eq!(err.http_code(), 400);

        let err = apply_patch(DEPLOYMENT, &original, PatchType::Json, b"[{\"op\":").unwrap_err();
        assert_eq!(err.to_string(), "unexpected end of JSON input");

        // A failing operation leaves nothing half-applied.
        let body =
            br#"[{"op":"replace","path":"/spec/replicas","value":9},{"op":"test","path":"/spec/replicas","value":1}]"#;
        assert!(apply_patch(DEPLOYMENT, &original, PatchType::Json, body).is_err());
        assert_eq!(original["spec"]["replicas"], json!(1));
    }

    #[test]
    fn json_patch_limits() {
        let original = json!({"a": {}});
        let ops: Vec<Value> = (0..=MAX_JSON_PATCH_OPERATIONS)
            .map(|_| json!({"op": "test", "path": "/a", "value": {}}))
            .collect();
        let body = serde_json::to_vec(&ops).unwrap();
        let err = apply_patch(POD, &original, PatchType::Json, &body).unwrap_err();
        assert_eq!(err.http_code(), 413);
        assert_eq!(
            err.to_string(),
            "The allowed maximum operations in a JSON patch is 10000, got 10001"
        );

        // Deepening one level per operation stops at MAX_DEPTH.
        let mut ops = Vec::new();
        let mut path = String::from("/a");
        for _ in 0..200 {
            path.push_str("/x");
            ops.push(json!({"op": "add", "path": path.clone(), "value": {}}));
        }
        let err = apply_patch(
            POD,
            &original,
            PatchType::Json,
            &serde_json::to_vec(&ops).unwrap(),
        )
        .unwrap_err();
        assert!(matches!(err, PatchError::TooDeep { .. }), "{err}");

        // Doubling a document with copies hits the copy budget.
        let mut ops = vec![json!({"op": "add", "path": "/a/v", "value": vec![1; 1000]})];
        for i in 0..40 {
            ops.push(json!({"op": "copy", "from": "/a", "path": format!("/b{i}")}));
            ops.push(json!({"op": "copy", "from": format!("/b{i}"), "path": "/a/w"}));
        }
        let err = apply_patch(
            POD,
            &original,
            PatchType::Json,
            &serde_json::to_vec(&ops).unwrap(),
        )
        .unwrap_err();
        assert!(err.to_string().contains("the copies would exceed"), "{err}");
        assert_eq!(err.http_code(), 422);

        // The root can be replaced, but not by a non-object.
        let err = apply_patch(
            POD,
            &original,
            PatchType::Json,
            br#"[{"op":"replace","path":"","value":[1]}]"#,
        )
        .unwrap_err();
        assert_eq!(err.http_code(), 422);
        let replaced = apply_patch(
            POD,
            &original,
            PatchType::Json,
            br#"[{"op":"replace","path":"","value":{"b":1}}]"#,
        );
        assert_eq!(replaced.unwrap(), json!({"b": 1}));

        // Moving a deep value deeper is refused too.
        let mut deep = json!({});
        for _ in 0..100 {
            deep = json!({"x": deep});
        }
        let mut nested = json!({});
        for _ in 0..60 {
            nested = json!({"y": nested});
        }
        let mut target = String::from("/n");
        for _ in 0..60 {
            target.push_str("/y");
        }
        target.push_str("/moved");
        let ops = json!([
            {"op": "add", "path": "/d", "value": deep},
            {"op": "add", "path": "/n", "value": nested},
            {"op": "move", "from": "/d", "path": target}
        ]);
        let err =
            apply_patch(POD, &original, PatchType::Json, ops.to_string().as_bytes()).unwrap_err();
        assert!(matches!(err, PatchError::TooDeep { .. }), "{err}");
    }
}
