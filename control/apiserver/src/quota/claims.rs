//! What a PersistentVolumeClaim costs (upstream
//! `pkg/quota/v1/evaluator/core/persistent_volume_claims.go`): one `persistentvolumeclaims`
//! (and `count/persistentvolumeclaims`) and its `requests.storage` — the larger of what it
//! requests and what was allocated to it, in whole bytes — each also charged to its storage
//! class as `<class>.storageclass.storage.k8s.io/<name>`.

use serde_json::Value;

use super::{Quantity, ResourceList};

pub const STORAGE_CLASS_SUFFIX: &str = ".storageclass.storage.k8s.io/";

/// Whether the claim evaluator counts `name`.
pub fn is_claim_resource(name: &str) -> bool {
    match name.split_once(STORAGE_CLASS_SUFFIX) {
        Some((_, rest)) => rest == "requests.storage" || rest == "persistentvolumeclaims",
        None => matches!(
            name,
            "count/persistentvolumeclaims" | "persistentvolumeclaims" | "requests.storage"
        ),
    }
}

/// Upstream `GetPersistentVolumeClaimClass`: the beta annotation first, then the field.
fn storage_class(claim: &Value) -> Option<&str> {
    claim
        .pointer("/metadata/annotations/volume.beta.kubernetes.io~1storage-class")
        .and_then(Value::as_str)
        .or_else(|| {
            claim
                .pointer("/spec/storageClassName")
                .and_then(Value::as_str)
        })
        .filter(|c| !c.is_empty())
}

pub fn usage(claim: &Value) -> ResourceList {
    let mut out = ResourceList::new();
    out.insert("persistentvolumeclaims".into(), Quantity::from_count(1));
    out.insert(
        "count/persistentvolumeclaims".into(),
        Quantity::from_count(1),
    );
    let class = storage_class(claim);
    if let Some(class) = class {
        out.insert(
            format!("{class}{STORAGE_CLASS_SUFFIX}persistentvolumeclaims"),
            Quantity::from_count(1),
        );
    }
    let requested = claim
        .pointer("/spec/resources/requests/storage")
        .and_then(Quantity::from_json);
    let allocated = claim
        .pointer("/status/allocatedResources/storage")
        .and_then(Quantity::from_json);
    let storage = match (requested, allocated) {
        (Some(r), Some(a)) if a > r => Some(a),
        (Some(r), _) => Some(r),
        _ => None,
    };
    if let Some(storage) = storage.map(|q| q.rounded_up()) {
        out.insert("requests.storage".into(), storage);
        if let Some(class) = class {
            out.insert(
                format!("{class}{STORAGE_CLASS_SUFFIX}requests.storage"),
                storage,
            );
        }
    }
    out
}
