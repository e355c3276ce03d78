//! storage.k8s.io (`pkg/registry/storage`): StorageClasses (defaults, validation, immutable
//! provisioning fields; the default class fills in claims without one — DefaultStorageClass
//! admission, `registry/core/persistentvolumes.rs`), CSIDrivers (upstream's defaults), CSINodes,
//! VolumeAttachments (with status), CSIStorageCapacities (what CSI drivers report for
//! kube-scheduler's volume binding; class and topology immutable) and VolumeAttributesClasses
//! (driver and parameters immutable); their printers. CSIStorageCapacities print as upstream
//! serves them: its storage uses the generic Name/Created At convertor, not the columns
//! printers.go defines for the type.

use crate::error::FieldError;
use crate::names::{is_dns1123_subdomain, qualified_name_messages, DNS1123_SUBDOMAIN_MSG};
use crate::registry::fields::{check_enum, default, str_at};
use crate::registry::Strategy;
use crate::resources::Sub;
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

/// CSINodes (`pkg/registry/storage/csinode`): since 1.37 with a `status` written through
/// `csinodes/status` (the generic status rules keep it out of creates and main-resource
/// updates). Its only field, `storageHealth`, is behind the CSIVolumeHealth gate (alpha, off):
/// dropped unless the stored object already has it, as upstream's `dropDisabledCSINodeFields`.
pub struct CsiNodes;

pub static CSI_NODES: CsiNodes = CsiNodes;

impl Strategy for CsiNodes {
    fn printer(&self) -> &'static Printer {
        &CSI_NODE_PRINTER
    }

    fn prepare_for_subresource_update(&self, _sub: Sub, new: &mut Value, old: &Value) {
        let had = old
            .pointer("/status/storageHealth")
            .and_then(Value::as_array)
            .is_some_and(|a| !a.is_empty());
        if !had {
            if let Some(status) = new.get_mut("status").and_then(Value::as_object_mut) {
                status.remove("storageHealth");
            }
        }
    }
}

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

pub struct CsiStorageCapacities;

pub static CSI_STORAGE_CAPACITIES: CsiStorageCapacities = CsiStorageCapacities;

impl Strategy for CsiStorageCapacities {
    fn validate(&self, object: &Value, errors: &mut Vec<FieldError>) {
        let class = str_at(object, "/storageClassName");
        if !is_dns1123_subdomain(class) {
            let message = if class.len() > 253 {
                "must be no more than 253 characters"
            } else {
                DNS1123_SUBDOMAIN_MSG
            };
            errors.push(FieldError::invalid(
                "storageClassName",
                &json!(class),
                message,
            ));
        }
        if let Some(capacity) = object.get("capacity").and_then(Value::as_str) {
            if capacity.starts_with('-') {
                errors.push(FieldError::invalid(
                    "capacity",
                    &json!(capacity),
                    "must be greater than or equal to 0",
                ));
            }
        }
    }

    /// The inputs of the CSI GetCapacity call never change.
    fn validate_update(&self, old: &Value, new: &Value, errors: &mut Vec<FieldError>) {
        for field in ["nodeTopology", "storageClassName"] {
            if old.get(field) != new.get(field) {
                errors.push(FieldError::invalid(
                    field,
                    new.get(field).unwrap_or(&Value::Null),
                    "field is immutable",
                ));
            }
        }
    }
}

pub struct VolumeAttributesClasses;

pub static VOLUME_ATTRIBUTES_CLASSES: VolumeAttributesClasses = VolumeAttributesClasses;

impl Strategy for VolumeAttributesClasses {
    fn validate(&self, object: &Value, errors: &mut Vec<FieldError>) {
        let driver = str_at(object, "/driverName");
        if driver.is_empty() {
            errors.push(FieldError::required("driverName", ""));
        } else {
            for message in qualified_name_messages(&driver.to_lowercase()) {
                errors.push(FieldError::invalid("driverName", &json!(driver), message));
            }
        }
        let parameters = object.get("parameters").and_then(Value::as_object);
        let parameters = parameters.filter(|p| !p.is_empty());
        match parameters {
            None => errors.push(FieldError::required(
                "parameters",
                "must contain at least one key/value pair",
            )),
            Some(p) if p.contains_key("") => errors.push(FieldError::invalid(
                "parameters",
                &json!(""),
                "field can not be empty.",
            )),
            Some(_) => {}
        }
    }

    fn validate_update(&self, old: &Value, new: &Value, errors: &mut Vec<FieldError>) {
        for field in ["driverName", "parameters"] {
            if old.get(field) != new.get(field) {
                errors.push(FieldError::forbidden(
                    field,
                    format!("updates to {field} are forbidden."),
                ));
            }
        }
    }

    fn printer(&self) -> &'static Printer {
        &VOLUME_ATTRIBUTES_CLASS_PRINTER
    }

    fn delete_returns_object(&self) -> bool {
        true
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

pub const VOLUME_ATTRIBUTES_CLASS_COLUMNS: &[Column] = &[
    NAME,
    col(
        "DriverName",
        "string",
        "driverName is the name of the CSI driver This field is immutable.",
    ),
    AGE,
];

pub static VOLUME_ATTRIBUTES_CLASS_PRINTER: Printer = Printer::new(
    VOLUME_ATTRIBUTES_CLASS_COLUMNS,
    volume_attributes_class_cells,
);

fn volume_attributes_class_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    // The alpha annotation is the only default marker upstream's printer knows.
    let is_default = annotation(
        obj,
        "volumeattributesclass.alpha.kubernetes.io/is-default-class",
    ) == Some("true");
    let mut display_name = text(obj, &["metadata", "name"]).to_string();
    if is_default {
        display_name.push_str(" (default)");
    }
    vec![
        display_name.into(),
        text(obj, &["driverName"]).into(),
        age(obj, now).into(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry;

    fn errors(strategy: &dyn Strategy, object: &Value) -> Vec<String> {
        registry::validate(strategy, object)
            .iter()
            .map(|e| format!("{}: {}", e.field, e.message))
            .collect()
    }

    #[test]
    fn volume_attributes_classes() {
        let vac = json!({"metadata": {"name": "gold", "creationTimestamp": "2026-01-10T11:58:00Z",
                         "annotations": {"volumeattributesclass.alpha.kubernetes.io/is-default-class": "true"}},
                         "driverName": "csi.example.com", "parameters": {"iops": "5000"}});
        assert!(errors(&VOLUME_ATTRIBUTES_CLASSES, &vac).is_empty());
        let now: Timestamp = "2026-01-10T12:00:00Z".parse().unwrap();
        assert_eq!(
            VOLUME_ATTRIBUTES_CLASS_COLUMNS
                .iter()
                .map(|c| c.name)
                .collect::<Vec<_>>(),
            ["Name", "DriverName", "Age"]
        );
        assert_eq!(
            (VOLUME_ATTRIBUTES_CLASS_PRINTER.cells)(&vac, now),
            [
                json!("gold (default)"),
                json!("csi.example.com"),
                json!("2m")
            ]
        );
        assert_eq!(
            errors(
                &VOLUME_ATTRIBUTES_CLASSES,
                &json!({"metadata": {"name": "x"}, "driverName": ""})
            ),
            [
                "driverName: Required value",
                "parameters: Required value: must contain at least one key/value pair"
            ]
        );
        let mut faster = vac.clone();
        faster["parameters"]["iops"] = json!("9000");
        let mut errs = Vec::new();
        VOLUME_ATTRIBUTES_CLASSES.validate_update(&vac, &faster, &mut errs);
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].field, "parameters");
        assert_eq!(
            errs[0].message,
            "Forbidden: updates to parameters are forbidden."
        );
    }

    #[test]
    fn csi_storage_capacities() {
        let capacity = json!({"metadata": {"name": "csisc-1", "namespace": "kube-system"},
                              "storageClassName": "fast", "capacity": "10Gi",
                              "nodeTopology": {"matchLabels": {"topology.kubernetes.io/zone": "a"}}});
        assert!(errors(&CSI_STORAGE_CAPACITIES, &capacity).is_empty());
        let mut bad = capacity.clone();
        bad["storageClassName"] = json!("");
        bad["capacity"] = json!("-1Gi");
        assert_eq!(
            errors(&CSI_STORAGE_CAPACITIES, &bad),
            [
                format!("storageClassName: Invalid value: \"\": {DNS1123_SUBDOMAIN_MSG}"),
                "capacity: Invalid value: \"-1Gi\": must be greater than or equal to 0".to_string()
            ]
        );
        let mut moved = capacity.clone();
        moved["nodeTopology"]["matchLabels"]["topology.kubernetes.io/zone"] = json!("b");
        moved["capacity"] = json!("20Gi");
        let mut errs = Vec::new();
        CSI_STORAGE_CAPACITIES.validate_update(&capacity, &moved, &mut errs);
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].field, "nodeTopology");
        assert!(errs[0].message.ends_with("field is immutable"));
        // Upstream's storage serves the generic convertor.
        assert_eq!(
            CSI_STORAGE_CAPACITIES.printer().column_definitions()[1]["name"],
            "Created At"
        );
    }
}
