//! PersistentVolumes and PersistentVolumeClaims (`pkg/registry/core/persistentvolume`,
//! `persistentvolumeclaim`): DefaultStorageClass admission for claims, and their printers, which
//! share the access-mode formatting.

use futures::future::BoxFuture;

use crate::error::ApiResult;
use crate::registry::storage::DEFAULT_CLASS_ANNOTATION;
use crate::registry::{Lookup, Printed, Strategy};
use crate::table::prelude::*;

pub static STRATEGY: Printed = Printed(&PERSISTENT_VOLUME_PRINTER);

pub struct PersistentVolumeClaims;

pub static CLAIMS_STRATEGY: PersistentVolumeClaims = PersistentVolumeClaims;

impl Strategy for PersistentVolumeClaims {
    fn admit<'a>(
        &'a self,
        lookup: &'a dyn Lookup,
        object: &'a mut Value,
    ) -> Option<BoxFuture<'a, ApiResult<()>>> {
        Some(Box::pin(default_storage_class(lookup, object)))
    }

    fn printer(&self) -> &'static Printer {
        &PERSISTENT_VOLUME_CLAIM_PRINTER
    }
}

/// DefaultStorageClass admission: a claim that names no class (the field absent — an explicit
/// `""` asks for none) gets the default StorageClass, the newest when several are marked.
async fn default_storage_class(lookup: &dyn Lookup, claim: &mut Value) -> ApiResult<()> {
    if claim
        .pointer("/spec/storageClassName")
        .is_some_and(|c| !c.is_null())
    {
        return Ok(());
    }
    let classes = lookup.list("storage.k8s.io", "storageclasses").await?;
    let default = classes
        .iter()
        .filter(|c| {
            c.pointer("/metadata/annotations")
                .and_then(|a| a.get(DEFAULT_CLASS_ANNOTATION))
                .and_then(Value::as_str)
                == Some("true")
        })
        .max_by(|a, b| {
            let created = |c: &Value| {
                c.pointer("/metadata/creationTimestamp")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string()
            };
            created(a).cmp(&created(b))
        });
    if let Some(class) = default {
        claim["spec"]["storageClassName"] = class["metadata"]["name"].clone();
    }
    Ok(())
}

// ---------------------------------------------------------------- table

pub const PERSISTENT_VOLUME_COLUMNS: &[Column] = &[
    NAME,
    col("Capacity", "string", "Capacity is the description of the persistent volume's resources and capacity."),
    col("Access Modes", "string", "AccessModes contains all ways the volume can be mounted."),
    col("Reclaim Policy", "string", "What happens to a persistent volume when released from its claim."),
    col("Status", "string", "Phase indicates if a volume is available, bound to a claim, or released by a claim."),
    col("Claim", "string", "ClaimRef is part of a bi-directional binding between PersistentVolume and PersistentVolumeClaim."),
    col("StorageClass", "string", "StorageClass of the pv"),
    col("VolumeAttributesClass", "string", "VolumeAttributesClass of the pv"),
    col("Reason", "string", "Reason is a brief CamelCase string that describes any failure."),
    AGE,
    wide("VolumeMode", "string", "volumeMode defines if a volume is intended to be used with a formatted filesystem or to remain in raw block state."),
];

pub static PERSISTENT_VOLUME_PRINTER: Printer =
    Printer::new(PERSISTENT_VOLUME_COLUMNS, persistent_volume_cells);

fn persistent_volume_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    let claim = match field(obj, &["spec", "claimRef"]).filter(|c| !c.is_null()) {
        Some(c) => format!("{}/{}", text(c, &["namespace"]), text(c, &["name"])),
        None => String::new(),
    };
    // Defaults: reclaim policy Retain, phase Pending, volume mode Filesystem.
    let reclaim = non_empty_or(
        text(obj, &["spec", "persistentVolumeReclaimPolicy"]),
        "Retain",
    );
    let phase = if is_set(obj, &["metadata", "deletionTimestamp"]) {
        "Terminating"
    } else {
        non_empty_or(text(obj, &["status", "phase"]), "Pending")
    };
    let volume_mode = opt_text(obj, &["spec", "volumeMode"]).unwrap_or("Filesystem");
    let attributes_class =
        opt_text(obj, &["spec", "volumeAttributesClassName"]).unwrap_or("<unset>");
    let storage_class = match annotation(obj, "volume.beta.kubernetes.io/storage-class") {
        Some(class) => class,
        None => text(obj, &["spec", "storageClassName"]),
    };
    vec![
        name(obj),
        quantity(field(obj, &["spec", "capacity", "storage"])).into(),
        access_modes(list(obj, &["spec", "accessModes"])).into(),
        reclaim.into(),
        phase.into(),
        claim.into(),
        storage_class.into(),
        attributes_class.into(),
        text(obj, &["status", "reason"]).into(),
        age(obj, now).into(),
        volume_mode.into(),
    ]
}

pub const PERSISTENT_VOLUME_CLAIM_COLUMNS: &[Column] = &[
    NAME,
    col(
        "Status",
        "string",
        "Phase represents the current phase of PersistentVolumeClaim.",
    ),
    col(
        "Volume",
        "string",
        "VolumeName is the binding reference to the PersistentVolume backing this claim.",
    ),
    col(
        "Capacity",
        "string",
        "Capacity represents the actual resources of the underlying volume.",
    ),
    col(
        "Access Modes",
        "string",
        "AccessModes contains the actual access modes the volume backing the PVC has.",
    ),
    col("StorageClass", "string", "StorageClass of the pvc"),
    col(
        "VolumeAttributesClass",
        "string",
        "VolumeAttributesClass of the pvc",
    ),
    AGE,
    wide(
        "VolumeMode",
        "string",
        "volumeMode defines what type of volume is required by the claim.",
    ),
];

pub static PERSISTENT_VOLUME_CLAIM_PRINTER: Printer = Printer::new(
    PERSISTENT_VOLUME_CLAIM_COLUMNS,
    persistent_volume_claim_cells,
);

fn persistent_volume_claim_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    let phase = if is_set(obj, &["metadata", "deletionTimestamp"]) {
        "Terminating"
    } else {
        non_empty_or(text(obj, &["status", "phase"]), "Pending")
    };
    let volume_name = text(obj, &["spec", "volumeName"]);
    // Capacity and access modes only mean something once bound.
    let (capacity, modes) = if volume_name.is_empty() {
        (String::new(), String::new())
    } else {
        (
            quantity(field(obj, &["status", "capacity", "storage"])),
            access_modes(list(obj, &["status", "accessModes"])),
        )
    };
    let storage_class = match annotation(obj, "volume.beta.kubernetes.io/storage-class") {
        Some(class) => class,
        None => text(obj, &["spec", "storageClassName"]),
    };
    vec![
        name(obj),
        phase.into(),
        volume_name.into(),
        capacity.into(),
        modes.into(),
        storage_class.into(),
        opt_text(obj, &["spec", "volumeAttributesClassName"])
            .unwrap_or("<unset>")
            .into(),
        age(obj, now).into(),
        opt_text(obj, &["spec", "volumeMode"])
            .unwrap_or("Filesystem")
            .into(),
    ]
}

/// "RWO,ROX,RWX,RWOP" in that fixed order, whatever order the object lists them in.
fn access_modes(modes: &[Value]) -> String {
    let has = |mode: &str| modes.iter().any(|m| m.as_str() == Some(mode));
    let mut short = Vec::new();
    for (mode, abbreviation) in [
        ("ReadWriteOnce", "RWO"),
        ("ReadOnlyMany", "ROX"),
        ("ReadWriteMany", "RWX"),
        ("ReadWriteOncePod", "RWOP"),
    ] {
        if has(mode) {
            short.push(abbreviation);
        }
    }
    short.join(",")
}
