//! JSON merge patch (RFC 7386).

use serde_json::Value;

use super::PatchError;

pub(super) fn apply_merge_patch(original: &Value, body: &[u8]) -> Result<Value, PatchError> {
    // evanphx/json-patch's MergePatch answers ErrBadJSONPatch ("Invalid JSON
    // Patch", a 400) for a syntax error, `null` and scalars. An array would
    // replace the whole object and fail to decode later (a 422 upstream);
    // refusing it here with the same 400 is simpler and never wrong.
    let patch: Value = serde_json::from_slice(body)
        .map_err(|_| PatchError::BadRequest("Invalid JSON Patch".to_string()))?;
    if !patch.is_object() {
        return Err(PatchError::BadRequest("Invalid JSON Patch".to_string()));
    }
    let mut doc = original.clone();
    json_patch::merge(&mut doc, &patch);
    Ok(doc)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::patch::testing::*;
    use crate::patch::{apply_patch, PatchType};

    // --- merge patch (kubectl label / annotate) --------------------------

    #[test]
    fn kubectl_label_and_annotate() {
        let original = deployment();
        let labeled = apply_patch(
            DEPLOYMENT,
            &original,
            PatchType::Merge,
            br#"{"metadata":{"labels":{"env":"prod"}}}"#,
        )
        .unwrap();
        assert_eq!(
            labeled["metadata"]["labels"],
            json!({"app": "web", "tier": "frontend", "env": "prod"})
        );

        let unlabeled = apply_patch(
            DEPLOYMENT,
            &labeled,
            PatchType::Merge,
            br#"{"metadata":{"labels":{"env":null}}}"#,
        )
        .unwrap();
        assert_eq!(
            unlabeled["metadata"]["labels"],
            original["metadata"]["labels"]
        );

        let annotated = apply_patch(
            DEPLOYMENT,
            &original,
            PatchType::Merge,
            br#"{"metadata":{"annotations":{"note":null,"owner":"team"},"resourceVersion":"7"}}"#,
        )
        .unwrap();
        assert_eq!(
            annotated["metadata"]["annotations"],
            json!({"owner": "team"})
        );

        // Merge patch replaces lists whole.
        let replaced = apply_patch(
            DEPLOYMENT,
            &original,
            PatchType::Merge,
            br#"{"metadata":{"finalizers":["x"]}}"#,
        )
        .unwrap();
        assert_eq!(replaced["metadata"]["finalizers"], json!(["x"]));

        for body in [&b"[1]"[..], b"null", b"3", b"{", b""] {
            let err = apply_patch(DEPLOYMENT, &original, PatchType::Merge, body).unwrap_err();
            assert_eq!(err.to_string(), "Invalid JSON Patch");
            assert_eq!(err.http_code(), 400);
        }
    }
}
