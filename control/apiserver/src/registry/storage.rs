//! storage.k8s.io (`pkg/registry/storage`): StorageClasses (defaults, validation, immutable
//! provisioning fields; the default class fills in claims without one — DefaultStorageClass
//! admission, `registry/core/persistentvolumes.rs`), CSIDrivers (upstream's defaults), CSINodes
//! and VolumeAttachments (with status); their printers.

use crate::error::FieldError;
use crate::registry::fields::{check_enum, default, str_at};
use crate::registry::{Printed, Strategy};
use crate::table::prelude::*;

/// The annotation that marks the default StorageClass.
pub const DEFAULT_CLASS_ANNOTATION: &str = "storageclass.kubernetes.io/is-default-class";

pub struct StorageClasses;

pub static STORAGE_CLASSES: StorageClasses = StorageClasses;

impl Strategy for StorageClasses {
    fn default(&self, object: &mut Value) {
        if let Some(root) = object.as_object_mut() {
            default(root, "reclaimPolicy", json!("Delete"));
            default(root, "volumeBindingMode", json!("Immediate"));
        }
    }

    fn validate(&self, object: &Value, errors: &mut Vec<FieldError>) {
        if str_at(object, "/provisioner").is_empty() {
            errors.push(FieldError::required("provisioner", ""));
        }
        check_enum(
            "reclaimPolicy",
            object.get("reclaimPolicy"),
            &["Delete", "Retain"],
            errors,
        );
        check_enum(
            "volumeBindingMode",
            object.get("volumeBindingMode"),
            &["Immediate", "WaitForFirstConsumer"],
            errors,
        );
    }

    fn validate_update(&self, old: &Value, new: &Value, errors: &mut Vec<FieldError>) {
        for field in [
            "provisioner",
            "parameters",
            "reclaimPolicy",
            "volumeBindingMode",
        ] {
            if old.get(field) != new.get(field) {
                errors.push(FieldError::forbidden(
                    field,
                    format!("updates to {field} are forbidden."),
                ));
            }
        }
    }

    fn printer(&self) -> &'static Printer {
        &STORAGE_CLASS_PRINTER
    }
}

pub struct CsiDrivers;

pub static CSI_DRIVERS: CsiDrivers = CsiDrivers;

impl Strategy for CsiDrivers {
    fn default(&self, object: &mut Value) {
        let Some(root) = object.as_object_mut() else {
            return;
        };
        let spec = crate::registry::fields::child(root, "spec");
        default(spec, "attachRequired", json!(true));
        default(spec, "podInfoOnMount", json!(false));
        default(spec, "storageCapacity", json!(false));
        default(spec, "fsGroupPolicy", json!("ReadWriteOnceWithFSType"));
        default(spec, "requiresRepublish", json!(false));
        default(spec, "seLinuxMount", json!(false));
        default(spec, "volumeLifecycleModes", json!(["Persistent"]));
    }

    fn printer(&self) -> &'static Printer {
        &CSI_DRIVER_PRINTER
    }
}

pub static CSI_NODES: Printed = Printed(&CSI_NODE_PRINTER);

pub struct VolumeAttachments;

pub static VOLUME_ATTACHMENTS: VolumeAttachments = VolumeAttachments;

impl Strategy for VolumeAttachments {
    fn validate(&self, object: &Value, errors: &mut Vec<FieldError>) {
        for (path, pointer) in [
            ("spec.attacher", "/spec/attacher"),
            ("spec.nodeName", "/spec/nodeName"),
        ] {
            if str_at(object, pointer).is_empty() {
                errors.push(FieldError::required(path, ""));
            }
        }
    }

    fn validate_update(&self, old: &Value, new: &Value, errors: &mut Vec<FieldError>) {
        if old.get("spec") != new.get("spec") {
            errors.push(FieldError::invalid(
                "spec",
                new.get("spec").unwrap_or(&Value::Null),
                "field is immutable",
            ));
        }
    }

    fn printer(&self) -> &'static Printer {
        &VOLUME_ATTACHMENT_PRINTER
    }
}

// ---------------------------------------------------------------- table

pub const STORAGE_CLASS_COLUMNS: &[Column] = &[
    NAME,
    col("Provisioner", "string", "Provisioner indicates the type of the provisioner."),
    col("ReclaimPolicy", "string", "Dynamically provisioned PersistentVolumes of this storage class are created with this reclaimPolicy."),
    col("VolumeBindingMode", "string", "VolumeBindingMode indicates how PersistentVolumeClaims should be provisioned and bound."),
    col("AllowVolumeExpansion", "string", "AllowVolumeExpansion shows whether the storage class allow volume expand."),
    AGE,
];

pub static STORAGE_CLASS_PRINTER: Printer =
    Printer::new(STORAGE_CLASS_COLUMNS, storage_class_cells);

fn storage_class_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    let is_default = annotation(obj, "storageclass.kubernetes.io/is-default-class") == Some("true")
        || annotation(obj, "storageclass.beta.kubernetes.io/is-default-class") == Some("true");
    let mut display_name = text(obj, &["metadata", "name"]).to_string();
    if is_default {
        display_name.push_str(" (default)");
    }
    vec![
        display_name.into(),
        text(obj, &["provisioner"]).into(),
        opt_text(obj, &["reclaimPolicy"]).unwrap_or("Delete").into(),
        opt_text(obj, &["volumeBindingMode"])
            .unwrap_or("Immediate")
            .into(),
        opt_boolean(obj, &["allowVolumeExpansion"])
            .unwrap_or(false)
            .into(),
        age(obj, now).into(),
    ]
}

pub const CSI_DRIVER_COLUMNS: &[Column] = &[
    NAME,
    col("AttachRequired", "boolean", "attachRequired indicates this CSI volume driver requires an attach operation."),
    col("PodInfoOnMount", "boolean", "podInfoOnMount indicates this CSI volume driver requires additional pod information during mount operations."),
    col("StorageCapacity", "boolean", "storageCapacity indicates that the CSI volume driver wants pod scheduling to consider the storage capacity."),
    col("TokenRequests", "string", "tokenRequests indicates the CSI driver needs pods' service account tokens it is mounting volume for."),
    col("RequiresRepublish", "boolean", "requiresRepublish indicates the CSI driver wants NodePublishVolume being periodically called."),
    col("Modes", "string", "volumeLifecycleModes defines what kind of volumes this CSI volume driver supports."),
    AGE,
];

pub static CSI_DRIVER_PRINTER: Printer = Printer::new(CSI_DRIVER_COLUMNS, csi_driver_cells);

fn csi_driver_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    let token_requests = match field(obj, &["spec", "tokenRequests"]).filter(|t| !t.is_null()) {
        Some(requests) => {
            let audiences: Vec<&str> = requests
                .as_array()
                .map(|a| a.iter().map(|r| text(r, &["audience"])).collect())
                .unwrap_or_default();
            audiences.join(",")
        }
        None => "<unset>".to_string(),
    };
    // volumeLifecycleModes defaults to Persistent.
    let modes: Vec<&str> =
        match field(obj, &["spec", "volumeLifecycleModes"]).and_then(Value::as_array) {
            Some(modes) => modes.iter().filter_map(Value::as_str).collect(),
            None => vec!["Persistent"],
        };
    vec![
        name(obj),
        opt_boolean(obj, &["spec", "attachRequired"])
            .unwrap_or(true)
            .into(),
        opt_boolean(obj, &["spec", "podInfoOnMount"])
            .unwrap_or(false)
            .into(),
        opt_boolean(obj, &["spec", "storageCapacity"])
            .unwrap_or(false)
            .into(),
        token_requests.into(),
        opt_boolean(obj, &["spec", "requiresRepublish"])
            .unwrap_or(false)
            .into(),
        non_empty_or(&modes.join(","), "<none>").into(),
        age(obj, now).into(),
    ]
}

pub const CSI_NODE_COLUMNS: &[Column] = &[
    NAME,
    col(
        "Drivers",
        "integer",
        "Drivers indicates the number of CSI drivers registered on the node",
    ),
    AGE,
];

pub static CSI_NODE_PRINTER: Printer = Printer::new(CSI_NODE_COLUMNS, csi_node_cells);

fn csi_node_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    vec![
        name(obj),
        (list(obj, &["spec", "drivers"]).len() as i64).into(),
        age(obj, now).into(),
    ]
}

pub const VOLUME_ATTACHMENT_COLUMNS: &[Column] = &[
    NAME,
    Column {
        name: "Attacher",
        kind: "string",
        format: "name",
        priority: 0,
        description:
            "Attacher indicates the name of the volume driver that MUST handle this request.",
    },
    col("PV", "string", "Name of the persistent volume to attach."),
    col(
        "Node",
        "string",
        "The node that the volume should be attached to.",
    ),
    col(
        "Attached",
        "boolean",
        "Indicates the volume is successfully attached.",
    ),
    AGE,
];

pub static VOLUME_ATTACHMENT_PRINTER: Printer =
    Printer::new(VOLUME_ATTACHMENT_COLUMNS, volume_attachment_cells);

fn volume_attachment_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    vec![
        name(obj),
        text(obj, &["spec", "attacher"]).into(),
        text(obj, &["spec", "source", "persistentVolumeName"]).into(),
        text(obj, &["spec", "nodeName"]).into(),
        boolean(obj, &["status", "attached"]).into(),
        age(obj, now).into(),
    ]
}
