//! The message table: every Kubernetes protobuf message with its fields'
//! tags, JSON names and kinds, loaded from `protobuf_messages.txt` (generated
//! by `gen/proto_table.py`), and the mapping from API group and version to
//! protobuf package.

use std::collections::HashMap;
use std::sync::LazyLock;

pub(super) static TABLE: LazyLock<Result<Table, String>> =
    LazyLock::new(|| Table::parse(include_str!("../protobuf_messages.txt")));

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Scalar {
    String,
    Bytes,
    Bool,
    Int32,
    Int64,
    Uint32,
    Uint64,
    Sint32,
    Sint64,
    Double,
    Float,
    Fixed32,
    Fixed64,
    Sfixed32,
    Sfixed64,
}

impl Scalar {
    pub(super) fn parse(text: &str) -> Option<Scalar> {
        Some(match text {
            "string" => Scalar::String,
            "bytes" => Scalar::Bytes,
            "bool" => Scalar::Bool,
            "int32" => Scalar::Int32,
            "int64" => Scalar::Int64,
            "uint32" => Scalar::Uint32,
            "uint64" => Scalar::Uint64,
            "sint32" => Scalar::Sint32,
            "sint64" => Scalar::Sint64,
            "double" => Scalar::Double,
            "float" => Scalar::Float,
            "fixed32" => Scalar::Fixed32,
            "fixed64" => Scalar::Fixed64,
            "sfixed32" => Scalar::Sfixed32,
            "sfixed64" => Scalar::Sfixed64,
            _ => return None,
        })
    }

    /// Repeated numeric fields may arrive packed into one length-delimited
    /// record even though Kubernetes (proto2) writes them unpacked.
    pub(super) fn packable(self) -> bool {
        !matches!(self, Scalar::String | Scalar::Bytes)
    }
}

#[derive(Debug, Clone, Copy)]
pub(super) enum MapValue {
    Scalar(Scalar),
    Message(&'static str),
}

#[derive(Debug, Clone, Copy)]
pub(super) enum Kind {
    Scalar(Scalar),
    Message(&'static str),
    Map { key: Scalar, value: MapValue },
}

#[derive(Debug)]
pub(super) struct Field {
    pub(super) tag: u32,
    pub(super) json: &'static str,
    pub(super) kind: Kind,
    pub(super) repeated: bool,
    /// Not `omitempty` in Go (not an `Option` in k8s-openapi).
    pub(super) required: bool,
    /// A Go embedded struct: its fields are written into the parent object.
    pub(super) inline: bool,
}

/// Messages whose JSON form is not the plain object of their fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Special {
    Time,
    MicroTime,
    Duration,
    Quantity,
    IntOrString,
    /// runtime.RawExtension: JSON, or an embedded Kubernetes protobuf object.
    RawExtension,
    /// meta.v1.FieldsV1 and apiextensions' JSON: raw JSON bytes.
    RawJson,
    JsonSchemaPropsOrArray,
    JsonSchemaPropsOrBool,
    JsonSchemaPropsOrStringArray,
}

impl Special {
    fn for_message(name: &str) -> Option<Special> {
        let special = match name {
            "apimachinery.pkg.apis.meta.v1.Time" => Special::Time,
            "apimachinery.pkg.apis.meta.v1.MicroTime" => Special::MicroTime,
            "apimachinery.pkg.apis.meta.v1.Duration" => Special::Duration,
            "apimachinery.pkg.apis.meta.v1.FieldsV1" => Special::RawJson,
            "apimachinery.pkg.api.resource.Quantity" => Special::Quantity,
            "apimachinery.pkg.api.resource.QuantityValue" => Special::Quantity,
            "apimachinery.pkg.util.intstr.IntOrString" => Special::IntOrString,
            "apimachinery.pkg.runtime.RawExtension" => Special::RawExtension,
            _ => {
                // apiextensions v1 and v1beta1; the table spells v1beta1's
                // names the prost way (`Json`), so compare without case.
                if !name.starts_with("apiextensions_apiserver.pkg.apis.apiextensions.") {
                    return None;
                }
                let short = name.rsplit('.').next().unwrap_or("").to_ascii_lowercase();
                match short.as_str() {
                    "json" => Special::RawJson,
                    "jsonschemapropsorarray" => Special::JsonSchemaPropsOrArray,
                    "jsonschemapropsorbool" => Special::JsonSchemaPropsOrBool,
                    "jsonschemapropsorstringarray" => Special::JsonSchemaPropsOrStringArray,
                    _ => return None,
                }
            }
        };
        Some(special)
    }
}

#[derive(Debug)]
pub(super) struct Message {
    pub(super) name: &'static str,
    /// Sorted by tag.
    pub(super) fields: Vec<Field>,
    /// A Go named slice (`type ExtraValue []string`): JSON is the bare array.
    pub(super) wrapper: bool,
    pub(super) special: Option<Special>,
}

impl Message {
    pub(super) fn field(&self, tag: u32) -> Option<&Field> {
        self.fields
            .binary_search_by_key(&tag, |f| f.tag)
            .ok()
            .map(|i| &self.fields[i])
    }
}

#[derive(Debug)]
pub(super) struct Table {
    pub(super) messages: HashMap<&'static str, Message>,
    /// Lowercased full name -> full name, for kinds spelled differently
    /// from the table (prost-style names of types k8s-openapi lacks).
    by_lowercase: HashMap<String, &'static str>,
}

impl Table {
    fn parse(text: &'static str) -> Result<Table, String> {
        let mut messages: HashMap<&'static str, Message> = HashMap::new();
        let mut current: Option<&'static str> = None;
        for (index, line) in text.lines().enumerate() {
            let line_no = index + 1;
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let parts: Vec<&'static str> = line.split(' ').collect();
            match parts.as_slice() {
                ["M", name] => {
                    let message = Message {
                        name,
                        fields: Vec::new(),
                        wrapper: false,
                        special: Special::for_message(name),
                    };
                    if messages.insert(name, message).is_some() {
                        return Err(format!("line {line_no}: message {name} listed twice"));
                    }
                    current = Some(name);
                }
                ["W", name] => {
                    let message = current
                        .filter(|c| c == name)
                        .and_then(|c| messages.get_mut(c))
                        .ok_or_else(|| format!("line {line_no}: W outside its message"))?;
                    message.wrapper = true;
                }
                ["F", tag, json, kind, flags] => {
                    let message = current
                        .and_then(|c| messages.get_mut(c))
                        .ok_or_else(|| format!("line {line_no}: field outside a message"))?;
                    let tag: u32 = tag
                        .parse()
                        .map_err(|_| format!("line {line_no}: bad tag {tag:?}"))?;
                    let kind = parse_kind(kind)
                        .ok_or_else(|| format!("line {line_no}: bad kind {kind:?}"))?;
                    let field = Field {
                        tag,
                        json,
                        kind,
                        repeated: flags.contains('r'),
                        required: flags.contains('q'),
                        inline: flags.contains('i'),
                    };
                    message.fields.push(field);
                }
                _ => return Err(format!("line {line_no}: cannot parse {line:?}")),
            }
        }

        for message in messages.values_mut() {
            message.fields.sort_by_key(|f| f.tag);
            if message.fields.windows(2).any(|w| w[0].tag == w[1].tag) {
                return Err(format!("message {} has a tag twice", message.name));
            }
        }
        // Every referenced message must exist, so that decoding never meets
        // a dangling name.
        for message in messages.values() {
            for field in &message.fields {
                let referenced = match field.kind {
                    Kind::Message(name) => Some(name),
                    Kind::Map {
                        value: MapValue::Message(name),
                        ..
                    } => Some(name),
                    _ => None,
                };
                if let Some(name) = referenced {
                    if !messages.contains_key(name) {
                        return Err(format!(
                            "{}.{} refers to unknown {name}",
                            message.name, field.json
                        ));
                    }
                }
            }
        }

        let by_lowercase = messages
            .keys()
            .map(|name| (name.to_ascii_lowercase(), *name))
            .collect();
        Ok(Table {
            messages,
            by_lowercase,
        })
    }

    pub(super) fn get(&self, name: &str) -> Option<&Message> {
        self.messages.get(name)
    }

    /// The message of a top-level object of `kind` in `api_version`.
    pub(super) fn message_for(&self, api_version: &str, kind: &str) -> Option<&Message> {
        let (group, version) = match api_version.split_once('/') {
            Some((group, version)) => (group, version),
            None => ("", api_version),
        };
        if version.is_empty() || kind.is_empty() {
            return None;
        }
        let package = package_for_group(group)?;
        let full = format!("{package}.{version}.{kind}");
        if let Some(message) = self.lookup(&full) {
            return Some(message);
        }
        // metav1.AddToGroupVersion registers these in every group version.
        const META_KINDS: &[&str] = &[
            "DeleteOptions",
            "ListOptions",
            "GetOptions",
            "CreateOptions",
            "UpdateOptions",
            "PatchOptions",
            "WatchEvent",
            "Status",
        ];
        if META_KINDS.contains(&kind) {
            return self.lookup(&format!("apimachinery.pkg.apis.meta.v1.{kind}"));
        }
        None
    }

    fn lookup(&self, full: &str) -> Option<&Message> {
        if let Some(message) = self.messages.get(full) {
            return Some(message);
        }
        let name = self.by_lowercase.get(&full.to_ascii_lowercase())?;
        self.messages.get(name)
    }
}

/// Parses a table kind: `string`, `msg:<name>`, `map:<key>:<value>`.
fn parse_kind(text: &'static str) -> Option<Kind> {
    if let Some(name) = text.strip_prefix("msg:") {
        return Some(Kind::Message(name));
    }
    if let Some(rest) = text.strip_prefix("map:") {
        let (key, value) = rest.split_once(':')?;
        let key = Scalar::parse(key)?;
        let value = match value.strip_prefix("msg:") {
            Some(name) => MapValue::Message(name),
            None => MapValue::Scalar(Scalar::parse(value)?),
        };
        return Some(Kind::Map { key, value });
    }
    Scalar::parse(text).map(Kind::Scalar)
}

/// The table's package prefix for an API group, e.g. `apps` -> `api.apps`.
fn package_for_group(group: &str) -> Option<&'static str> {
    // Groups whose protobuf package does not follow the general rule below.
    let special = match group {
        "" | "core" => Some("api.core"),
        "meta.k8s.io" => Some("apimachinery.pkg.apis.meta"),
        "apiextensions.k8s.io" => Some("apiextensions_apiserver.pkg.apis.apiextensions"),
        "apiregistration.k8s.io" => Some("kube_aggregator.pkg.apis.apiregistration"),
        "internal.apiserver.k8s.io" => Some("api.apiserverinternal"),
        "metrics.k8s.io" => Some("metrics.pkg.apis.metrics"),
        "custom.metrics.k8s.io" => Some("metrics.pkg.apis.custom_metrics"),
        "external.metrics.k8s.io" => Some("metrics.pkg.apis.external_metrics"),
        _ => None,
    };
    if special.is_some() {
        return special;
    }
    // `apps`, `batch`, `policy`: the package is the group. `x.k8s.io` and
    // `rbac.authorization.k8s.io`, `flowcontrol.apiserver.k8s.io`: the first
    // label. Any other dotted group (custom resources) has no protobuf.
    let first = if !group.contains('.') {
        group
    } else if let Some(stripped) = group.strip_suffix(".k8s.io") {
        stripped.split('.').next().unwrap_or("")
    } else {
        return None;
    };
    API_PACKAGES
        .iter()
        .find(|(label, _)| *label == first)
        .map(|(_, package)| *package)
}

/// The `api.*` packages of k8s-pb, as static strings for `package_for_group`.
const API_PACKAGES: &[(&str, &str)] = &[
    ("admission", "api.admission"),
    ("admissionregistration", "api.admissionregistration"),
    ("apidiscovery", "api.apidiscovery"),
    ("apps", "api.apps"),
    ("authentication", "api.authentication"),
    ("authorization", "api.authorization"),
    ("autoscaling", "api.autoscaling"),
    ("batch", "api.batch"),
    ("certificates", "api.certificates"),
    ("coordination", "api.coordination"),
    ("discovery", "api.discovery"),
    ("events", "api.events"),
    ("extensions", "api.extensions"),
    ("flowcontrol", "api.flowcontrol"),
    ("imagepolicy", "api.imagepolicy"),
    ("networking", "api.networking"),
    ("node", "api.node"),
    ("policy", "api.policy"),
    ("rbac", "api.rbac"),
    ("resource", "api.resource"),
    ("scheduling", "api.scheduling"),
    ("storage", "api.storage"),
    ("storagemigration", "api.storagemigration"),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_parses_and_every_group_maps() {
        let table = TABLE.as_ref().expect("table parses");
        assert!(table.messages.len() > 1000);
        let cases = [
            ("v1", "Namespace", "api.core.v1.Namespace"),
            ("v1", "Pod", "api.core.v1.Pod"),
            ("apps/v1", "Deployment", "api.apps.v1.Deployment"),
            ("batch/v1", "CronJob", "api.batch.v1.CronJob"),
            (
                "authorization.k8s.io/v1",
                "SelfSubjectAccessReview",
                "api.authorization.v1.SelfSubjectAccessReview",
            ),
            (
                "authentication.k8s.io/v1",
                "TokenRequest",
                "api.authentication.v1.TokenRequest",
            ),
            ("policy/v1", "Eviction", "api.policy.v1.Eviction"),
            (
                "rbac.authorization.k8s.io/v1",
                "ClusterRole",
                "api.rbac.v1.ClusterRole",
            ),
            (
                "networking.k8s.io/v1",
                "Ingress",
                "api.networking.v1.Ingress",
            ),
            (
                "discovery.k8s.io/v1",
                "EndpointSlice",
                "api.discovery.v1.EndpointSlice",
            ),
            (
                "coordination.k8s.io/v1",
                "Lease",
                "api.coordination.v1.Lease",
            ),
            ("autoscaling/v1", "Scale", "api.autoscaling.v1.Scale"),
            (
                "autoscaling/v2",
                "HorizontalPodAutoscaler",
                "api.autoscaling.v2.HorizontalPodAutoscaler",
            ),
            ("storage.k8s.io/v1", "CSIDriver", "api.storage.v1.CSIDriver"),
            (
                "scheduling.k8s.io/v1",
                "PriorityClass",
                "api.scheduling.v1.PriorityClass",
            ),
            ("node.k8s.io/v1", "RuntimeClass", "api.node.v1.RuntimeClass"),
            (
                "certificates.k8s.io/v1",
                "CertificateSigningRequest",
                "api.certificates.v1.CertificateSigningRequest",
            ),
            ("events.k8s.io/v1", "Event", "api.events.v1.Event"),
            (
                "admissionregistration.k8s.io/v1",
                "ValidatingWebhookConfiguration",
                "api.admissionregistration.v1.ValidatingWebhookConfiguration",
            ),
            (
                "apiextensions.k8s.io/v1",
                "CustomResourceDefinition",
                "apiextensions_apiserver.pkg.apis.apiextensions.v1.CustomResourceDefinition",
            ),
            (
                "apiregistration.k8s.io/v1",
                "APIService",
                "kube_aggregator.pkg.apis.apiregistration.v1.APIService",
            ),
            (
                "flowcontrol.apiserver.k8s.io/v1",
                "FlowSchema",
                "api.flowcontrol.v1.FlowSchema",
            ),
            (
                "v1",
                "DeleteOptions",
                "apimachinery.pkg.apis.meta.v1.DeleteOptions",
            ),
            (
                "policy/v1",
                "DeleteOptions",
                "apimachinery.pkg.apis.meta.v1.DeleteOptions",
            ),
        ];
        for (api_version, kind, want) in cases {
            let got = table.message_for(api_version, kind).map(|m| m.name);
            assert_eq!(got, Some(want), "{api_version} {kind}");
        }
        // A custom resource group that merely starts like a built-in one.
        assert!(table.message_for("batch.example.com/v1", "Job").is_none());
        assert!(table.message_for("v1", "Widget").is_none());
    }

    /// `protobuf_messages.txt` is what `gen/proto_table.py` makes of the
    /// k8s-pb and k8s-openapi sources in the cargo registry (both are
    /// dependencies of this crate, so a build has fetched them).
    #[test]
    fn message_table_is_not_stale() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let output = std::process::Command::new("python3")
            .arg("control/apiserver/gen/proto_table.py")
            .arg("--check")
            .current_dir(&root)
            .output()
            .expect("python3 runs gen/proto_table.py");
        assert!(
            output.status.success(),
            "gen/proto_table.py --check failed ({}):\n{}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr),
        );
    }
}
