//! The table of served resources: one line per REST resource with everything discovery,
//! storage, the OpenAPI documents and typed decoding need, and the strategy that holds the
//! resource's behaviour (`registry/`). Adding a resource is adding its registry file and its line
//! here. Custom resources are lines of the same shape built at run time from Established CRDs
//! (`customresource::Registry`, with `custom` set); routing, discovery and OpenAPI look here
//! first, then there.

use k8s_openapi::api::{
    admissionregistration::v1 as admission, apps::v1 as apps, authentication::v1 as authn,
    authorization::v1 as authz, autoscaling::v1 as autoscaling_v1, autoscaling::v2 as autoscaling,
    batch::v1 as batch, certificates::v1 as certificates, coordination::v1 as coordination,
    core::v1 as core, discovery::v1 as discovery, events::v1 as events,
    flowcontrol::v1 as flowcontrol, networking::v1 as networking, node::v1 as node,
    policy::v1 as policy, rbac::v1 as rbac, resource::v1 as dra, scheduling::v1 as scheduling,
    storage::v1 as storage, storagemigration::v1 as storagemigration,
};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1 as apiextensions;
use k8s_openapi::kube_aggregator::pkg::apis::apiregistration::v1 as apiregistration;
use serde::{de::DeserializeOwned, Serialize};
use serde_json::Value;

use crate::error::Kind;
use crate::registry::{self, Strategy};

/// Typed operations for a kind, monomorphised once per k8s-openapi type.
#[derive(Clone, Copy)]
pub struct TypedOps {
    /// Decode into the k8s-openapi type and encode again: checks field types and drops unknown
    /// fields (upstream's pruning). The caller compares input and output for Strict validation.
    pub normalize: fn(&Value) -> Result<Value, serde_json::Error>,
    /// Adds the kind's JSON schema (and its closure) to an OpenAPI generator; returns the `$ref`.
    pub schema: fn(&mut schemars::SchemaGenerator) -> schemars::Schema,
    /// OpenAPI definition name, e.g. `io.k8s.api.core.v1.Pod`.
    pub definition: fn() -> std::borrow::Cow<'static, str>,
}

fn normalize<T: DeserializeOwned + Serialize>(v: &Value) -> Result<Value, serde_json::Error> {
    let typed = T::deserialize(v)?;
    serde_json::to_value(typed)
}

fn schema<T: schemars::JsonSchema>(g: &mut schemars::SchemaGenerator) -> schemars::Schema {
    g.subschema_for::<T>()
}

macro_rules! typed {
    ($t:ty) => {
        TypedOps {
            normalize: normalize::<$t>,
            schema: schema::<$t>,
            definition: <$t as schemars::JsonSchema>::schema_name,
        }
    };
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Sub {
    Status,
    Scale,
    Binding,
    Eviction,
    Log,
    Exec,
    Attach,
    PortForward,
    Finalize,
    /// A CertificateSigningRequest's Approved/Denied conditions (`kubectl certificate approve`).
    Approval,
    /// A ServiceAccount's TokenRequest (`kubectl create token`, the kubelet's projected tokens).
    Token,
    /// HTTP to a node's kubelet, a pod or a service's endpoint (`proxy.rs`): the path goes on
    /// after `/proxy`.
    Proxy,
    /// A pod's `spec.ephemeralContainers`, which only this subresource may add to (`kubectl
    /// debug`).
    EphemeralContainers,
    /// A pod's container resources and resize policies, changed in place.
    Resize,
}

impl Sub {
    pub fn name(self) -> &'static str {
        match self {
            Sub::Status => "status",
            Sub::Scale => "scale",
            Sub::Binding => "binding",
            Sub::Eviction => "eviction",
            Sub::Log => "log",
            Sub::Exec => "exec",
            Sub::Attach => "attach",
            Sub::PortForward => "portforward",
            Sub::Finalize => "finalize",
            Sub::Approval => "approval",
            Sub::Token => "token",
            Sub::Proxy => "proxy",
            Sub::EphemeralContainers => "ephemeralcontainers",
            Sub::Resize => "resize",
        }
    }
    /// (group, version, kind, verbs) as listed in discovery.
    pub fn discovery(
        self,
        parent: &ResourceInfo,
    ) -> (
        &'static str,
        &'static str,
        &'static str,
        &'static [&'static str],
    ) {
        match self {
            Sub::Status | Sub::Approval | Sub::EphemeralContainers | Sub::Resize => (
                parent.group,
                parent.version,
                parent.kind,
                &["get", "patch", "update"],
            ),
            Sub::Scale => ("autoscaling", "v1", "Scale", &["get", "patch", "update"]),
            Sub::Binding => ("", "v1", "Binding", &["create"]),
            Sub::Eviction => ("policy", "v1", "Eviction", &["create"]),
            Sub::Log => ("", "v1", "Pod", &["get"]),
            Sub::Exec => ("", "v1", "PodExecOptions", &["create", "get"]),
            Sub::Attach => ("", "v1", "PodAttachOptions", &["create", "get"]),
            Sub::PortForward => ("", "v1", "PodPortForwardOptions", &["create", "get"]),
            Sub::Finalize => ("", "v1", "Namespace", &["update"]),
            Sub::Token => ("authentication.k8s.io", "v1", "TokenRequest", &["create"]),
            Sub::Proxy => (
                "",
                "v1",
                match parent.resource {
                    "nodes" => "NodeProxyOptions",
                    "services" => "ServiceProxyOptions",
                    _ => "PodProxyOptions",
                },
                &["create", "delete", "get", "patch", "update"],
            ),
        }
    }
    pub fn parse(name: &str) -> Option<Sub> {
        [
            Sub::Status,
            Sub::Scale,
            Sub::Binding,
            Sub::Eviction,
            Sub::Log,
            Sub::Exec,
            Sub::Attach,
            Sub::PortForward,
            Sub::Finalize,
            Sub::Approval,
            Sub::Token,
            Sub::Proxy,
            Sub::EphemeralContainers,
            Sub::Resize,
        ]
        .into_iter()
        .find(|s| s.name() == name)
    }
}

pub const ALL_VERBS: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];
const NAMESPACE_VERBS: &[&str] = &[
    "create", "delete", "get", "list", "patch", "update", "watch",
];
const CREATE_ONLY: &[&str] = &["create"];
/// Computed on each read, never stored (componentstatuses).
const GET_LIST: &[&str] = &["get", "list"];

pub struct ResourceInfo {
    pub group: &'static str,
    pub version: &'static str,
    pub resource: &'static str,
    pub kind: &'static str,
    pub singular: &'static str,
    pub namespaced: bool,
    pub short_names: &'static [&'static str],
    pub categories: &'static [&'static str],
    pub subresources: &'static [Sub],
    pub verbs: &'static [&'static str],
    pub typed: TypedOps,
    /// The resource's behaviour: defaults, validation, printer, hooks.
    pub strategy: &'static dyn Strategy,
    /// A custom resource's schema and settings (the same object as `strategy`); `None` for
    /// built-in resources.
    pub custom: Option<&'static crate::customresource::CustomResource>,
    /// For a built-in version served beside the one its objects are stored in (events.k8s.io/v1
    /// beside core v1 Events, autoscaling/v1 beside autoscaling/v2): where they are stored and
    /// how they convert. `None`: this line is its own storage version.
    pub conversion: Option<&'static Conversion>,
}

/// A served version of a built-in resource whose objects are stored in another version
/// (upstream's scheme conversion between a version and the internal type, with one version as
/// the storage version). The request's body is converted to the storage version as soon as it
/// is decoded, so the strategy — defaults, validation, the table printer — and the store see the
/// storage version only, as upstream's see the internal type; answers and watch events are
/// converted back (`handlers::served_view`). Adding a version of a built-in resource is adding
/// its line in `RESOURCES` with a `Conversion` beside the resource's registry file.
pub struct Conversion {
    /// The storage version's (group, version, resource): its storage keys are this line's.
    pub storage: (&'static str, &'static str, &'static str),
    /// A decoded object of this version → the storage version (apiVersion included).
    pub to_storage: fn(&mut Value),
    /// A stored object → this version (apiVersion included).
    pub from_storage: fn(&mut Value),
    /// Field selector labels of this version and the storage version's label each stands for
    /// (upstream's `AddFieldLabelConversionFunc`); empty: the storage version's labels.
    pub field_labels: &'static [(&'static str, &'static str)],
}

impl Conversion {
    pub fn storage_api_version(&self) -> String {
        match self.storage.0 {
            "" => self.storage.1.to_string(),
            g => format!("{g}/{}", self.storage.1),
        }
    }
}

impl<'a> From<&'a ResourceInfo> for Kind<'a> {
    fn from(info: &'a ResourceInfo) -> Kind<'a> {
        Kind {
            group: info.group,
            resource: info.resource,
            kind: info.kind,
        }
    }
}

impl std::fmt::Debug for ResourceInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.qualified())
    }
}

impl ResourceInfo {
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }
    /// `pods`, `deployments.apps`: how upstream names a resource in messages.
    pub fn qualified(&self) -> String {
        if self.group.is_empty() {
            self.resource.to_string()
        } else {
            format!("{}.{}", self.resource, self.group)
        }
    }
    pub fn has(&self, sub: Sub) -> bool {
        self.subresources.contains(&sub)
    }
    /// Resources that only accept `create` and store nothing (access reviews).
    pub fn is_virtual(&self) -> bool {
        self.verbs == CREATE_ONLY
    }
    /// Whether objects of this resource live in the store (not reviews, not computed ones).
    pub fn is_stored(&self) -> bool {
        !self.is_virtual() && self.verbs != GET_LIST
    }
    /// Storage prefix, following upstream's layout (`/registry/pods/`, `/registry/deployments/`),
    /// with the group added for non-core groups so plural names never collide.
    pub fn key_prefix(&self) -> String {
        let (group, resource) = match self.conversion {
            Some(c) => (c.storage.0, c.storage.2),
            None => (self.group, self.resource),
        };
        if group.is_empty() {
            format!("/registry/{resource}/")
        } else {
            format!("/registry/{group}/{resource}/")
        }
    }
    pub fn key(&self, namespace: Option<&str>, name: &str) -> String {
        match namespace {
            Some(ns) if self.namespaced => format!("{}{ns}/{name}", self.key_prefix()),
            _ => format!("{}{name}", self.key_prefix()),
        }
    }
    pub fn namespace_prefix(&self, namespace: Option<&str>) -> String {
        match namespace {
            Some(ns) if self.namespaced => format!("{}{ns}/", self.key_prefix()),
            _ => self.key_prefix(),
        }
    }
    pub fn list_kind(&self) -> String {
        format!("{}List", self.kind)
    }
    pub fn is_custom(&self) -> bool {
        self.custom.is_some()
    }
}

macro_rules! resource {
    ($group:expr, $version:expr, $resource:expr, $kind:expr, $singular:expr, $namespaced:expr, $ty:ty,
     short: [$($short:expr),*], cat: [$($cat:expr),*], sub: [$($sub:expr),*], verbs: $verbs:expr,
     strategy: $strategy:expr) => {
        resource!($group, $version, $resource, $kind, $singular, $namespaced, $ty,
            short: [$($short),*], cat: [$($cat),*], sub: [$($sub),*], verbs: $verbs,
            strategy: $strategy, conversion: None)
    };
    ($group:expr, $version:expr, $resource:expr, $kind:expr, $singular:expr, $namespaced:expr, $ty:ty,
     short: [$($short:expr),*], cat: [$($cat:expr),*], sub: [$($sub:expr),*], verbs: $verbs:expr,
     strategy: $strategy:expr, conversion: $conversion:expr) => {
        ResourceInfo {
            group: $group,
            version: $version,
            resource: $resource,
            kind: $kind,
            singular: $singular,
            namespaced: $namespaced,
            short_names: &[$($short),*],
            categories: &[$($cat),*],
            subresources: &[$($sub),*],
            verbs: $verbs,
            typed: typed!($ty),
            strategy: $strategy,
            custom: None,
            conversion: $conversion,
        }
    };
}

pub static RESOURCES: std::sync::LazyLock<Vec<ResourceInfo>> = std::sync::LazyLock::new(|| {
    use Sub::*;
    vec![
        resource!("", "v1", "namespaces", "Namespace", "namespace", false, core::Namespace,
            short: ["ns"], cat: [], sub: [Status, Finalize], verbs: NAMESPACE_VERBS,
            strategy: &registry::core::namespaces::STRATEGY),
        resource!("", "v1", "pods", "Pod", "pod", true, core::Pod,
            short: ["po"], cat: ["all"], sub: [Status, Binding, Eviction, Log, Exec, Attach, PortForward, Proxy, EphemeralContainers, Resize], verbs: ALL_VERBS,
            strategy: &registry::core::pods::STRATEGY),
        resource!("", "v1", "nodes", "Node", "node", false, core::Node,
            short: ["no"], cat: [], sub: [Status, Proxy], verbs: ALL_VERBS,
            strategy: &registry::core::nodes::STRATEGY),
        resource!("", "v1", "services", "Service", "service", true, core::Service,
            short: ["svc"], cat: ["all"], sub: [Status, Proxy], verbs: &["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"],
            strategy: &registry::core::services::STRATEGY),
        resource!("", "v1", "endpoints", "Endpoints", "endpoints", true, core::Endpoints,
            short: ["ep"], cat: [], sub: [], verbs: ALL_VERBS,
            strategy: &registry::core::endpoints::STRATEGY),
        resource!("", "v1", "configmaps", "ConfigMap", "configmap", true, core::ConfigMap,
            short: ["cm"], cat: [], sub: [], verbs: ALL_VERBS,
            strategy: &registry::core::configmaps::STRATEGY),
        resource!("", "v1", "secrets", "Secret", "secret", true, core::Secret,
            short: [], cat: [], sub: [], verbs: ALL_VERBS,
            strategy: &registry::core::secrets::STRATEGY),
        resource!("", "v1", "serviceaccounts", "ServiceAccount", "serviceaccount", true, core::ServiceAccount,
            short: ["sa"], cat: [], sub: [Token], verbs: ALL_VERBS,
            strategy: &registry::core::serviceaccounts::STRATEGY),
        resource!("", "v1", "events", "Event", "event", true, core::Event,
            short: ["ev"], cat: [], sub: [], verbs: ALL_VERBS,
            strategy: &registry::core::events::STRATEGY),
        resource!("", "v1", "limitranges", "LimitRange", "limitrange", true, core::LimitRange,
            short: ["limits"], cat: [], sub: [], verbs: ALL_VERBS,
            strategy: &crate::admission::limitranger::LIMIT_RANGES),
        resource!("", "v1", "resourcequotas", "ResourceQuota", "resourcequota", true, core::ResourceQuota,
            short: ["quota"], cat: [], sub: [Status], verbs: ALL_VERBS,
            strategy: &registry::core::resourcequotas::STRATEGY),
        resource!("", "v1", "podtemplates", "PodTemplate", "podtemplate", true, core::PodTemplate,
            short: [], cat: [], sub: [], verbs: ALL_VERBS,
            strategy: &registry::core::podtemplates::STRATEGY),
        resource!("", "v1", "persistentvolumeclaims", "PersistentVolumeClaim", "persistentvolumeclaim", true, core::PersistentVolumeClaim,
            short: ["pvc"], cat: [], sub: [Status], verbs: ALL_VERBS,
            strategy: &registry::core::persistentvolumes::CLAIMS_STRATEGY),
        resource!("", "v1", "replicationcontrollers", "ReplicationController", "replicationcontroller", true, core::ReplicationController,
            short: ["rc"], cat: ["all"], sub: [Scale, Status], verbs: ALL_VERBS,
            strategy: &registry::core::replicationcontrollers::STRATEGY),
        resource!("", "v1", "componentstatuses", "ComponentStatus", "componentstatus", false, core::ComponentStatus,
            short: ["cs"], cat: [], sub: [], verbs: GET_LIST,
            strategy: &registry::core::componentstatuses::STRATEGY),
        resource!("", "v1", "bindings", "Binding", "binding", true, core::Binding,
            short: [], cat: [], sub: [], verbs: CREATE_ONLY,
            strategy: &registry::PLAIN),
        resource!("", "v1", "persistentvolumes", "PersistentVolume", "persistentvolume", false, core::PersistentVolume,
            short: ["pv"], cat: [], sub: [Status], verbs: ALL_VERBS,
            strategy: &registry::core::persistentvolumes::STRATEGY),
        resource!("apps", "v1", "deployments", "Deployment", "deployment", true, apps::Deployment,
            short: ["deploy"], cat: ["all"], sub: [Scale, Status], verbs: ALL_VERBS,
            strategy: &registry::apps::deployments::STRATEGY),
        resource!("apps", "v1", "replicasets", "ReplicaSet", "replicaset", true, apps::ReplicaSet,
            short: ["rs"], cat: ["all"], sub: [Scale, Status], verbs: ALL_VERBS,
            strategy: &registry::apps::replicasets::STRATEGY),
        resource!("apps", "v1", "daemonsets", "DaemonSet", "daemonset", true, apps::DaemonSet,
            short: ["ds"], cat: ["all"], sub: [Status], verbs: ALL_VERBS,
            strategy: &registry::apps::daemonsets::STRATEGY),
        resource!("apps", "v1", "statefulsets", "StatefulSet", "statefulset", true, apps::StatefulSet,
            short: ["sts"], cat: ["all"], sub: [Scale, Status], verbs: ALL_VERBS,
            strategy: &registry::apps::statefulsets::STRATEGY),
        resource!("apps", "v1", "controllerrevisions", "ControllerRevision", "controllerrevision", true, apps::ControllerRevision,
            short: [], cat: [], sub: [], verbs: ALL_VERBS,
            strategy: &registry::apps::controllerrevisions::STRATEGY),
        resource!("events.k8s.io", "v1", "events", "Event", "event", true, events::Event,
            short: ["ev"], cat: [], sub: [], verbs: ALL_VERBS,
            strategy: &registry::core::events::EVENTS_V1_STRATEGY,
            conversion: Some(&registry::core::events::EVENTS_V1)),
        resource!("batch", "v1", "jobs", "Job", "job", true, batch::Job,
            short: [], cat: ["all"], sub: [Status], verbs: ALL_VERBS,
            strategy: &registry::batch::jobs::STRATEGY),
        resource!("batch", "v1", "cronjobs", "CronJob", "cronjob", true, batch::CronJob,
            short: ["cj"], cat: ["all"], sub: [Status], verbs: ALL_VERBS,
            strategy: &registry::batch::cronjobs::STRATEGY),
        resource!("discovery.k8s.io", "v1", "endpointslices", "EndpointSlice", "endpointslice", true, discovery::EndpointSlice,
            short: [], cat: [], sub: [], verbs: ALL_VERBS,
            strategy: &registry::discovery::ENDPOINT_SLICES),
        resource!("coordination.k8s.io", "v1", "leases", "Lease", "lease", true, coordination::Lease,
            short: [], cat: [], sub: [], verbs: ALL_VERBS,
            strategy: &registry::coordination::LEASES),
        resource!("autoscaling", "v2", "horizontalpodautoscalers", "HorizontalPodAutoscaler", "horizontalpodautoscaler", true, autoscaling::HorizontalPodAutoscaler,
            short: ["hpa"], cat: ["all"], sub: [Status], verbs: ALL_VERBS,
            strategy: &registry::autoscaling::HORIZONTAL_POD_AUTOSCALERS),
        resource!("autoscaling", "v1", "horizontalpodautoscalers", "HorizontalPodAutoscaler", "horizontalpodautoscaler", true, autoscaling_v1::HorizontalPodAutoscaler,
            short: ["hpa"], cat: ["all"], sub: [Status], verbs: ALL_VERBS,
            strategy: &registry::autoscaling::HORIZONTAL_POD_AUTOSCALERS,
            conversion: Some(&registry::autoscaling::v1::V1)),
        resource!("certificates.k8s.io", "v1", "certificatesigningrequests", "CertificateSigningRequest", "certificatesigningrequest", false, certificates::CertificateSigningRequest,
            short: ["csr"], cat: [], sub: [Status, Approval], verbs: ALL_VERBS,
            strategy: &registry::certificates::CERTIFICATE_SIGNING_REQUESTS),
        resource!("certificates.k8s.io", "v1", "clustertrustbundles", "ClusterTrustBundle", "clustertrustbundle", false, certificates::ClusterTrustBundle,
            short: [], cat: [], sub: [], verbs: ALL_VERBS,
            strategy: &registry::certificates::CLUSTER_TRUST_BUNDLES),
        resource!("certificates.k8s.io", "v1", "podcertificaterequests", "PodCertificateRequest", "podcertificaterequest", true, certificates::PodCertificateRequest,
            short: [], cat: [], sub: [Status], verbs: ALL_VERBS,
            strategy: &registry::certificates::POD_CERTIFICATE_REQUESTS),
        resource!("admissionregistration.k8s.io", "v1", "validatingwebhookconfigurations", "ValidatingWebhookConfiguration", "validatingwebhookconfiguration", false, admission::ValidatingWebhookConfiguration,
            short: [], cat: ["api-extensions"], sub: [], verbs: ALL_VERBS,
            strategy: &registry::admissionregistration::VALIDATING_WEBHOOK_CONFIGURATIONS),
        resource!("admissionregistration.k8s.io", "v1", "mutatingwebhookconfigurations", "MutatingWebhookConfiguration", "mutatingwebhookconfiguration", false, admission::MutatingWebhookConfiguration,
            short: [], cat: ["api-extensions"], sub: [], verbs: ALL_VERBS,
            strategy: &registry::admissionregistration::MUTATING_WEBHOOK_CONFIGURATIONS),
        resource!("admissionregistration.k8s.io", "v1", "validatingadmissionpolicies", "ValidatingAdmissionPolicy", "validatingadmissionpolicy", false, admission::ValidatingAdmissionPolicy,
            short: [], cat: ["api-extensions"], sub: [Status], verbs: ALL_VERBS,
            strategy: &registry::admissionregistration::VALIDATING_ADMISSION_POLICIES),
        resource!("admissionregistration.k8s.io", "v1", "validatingadmissionpolicybindings", "ValidatingAdmissionPolicyBinding", "validatingadmissionpolicybinding", false, admission::ValidatingAdmissionPolicyBinding,
            short: [], cat: ["api-extensions"], sub: [], verbs: ALL_VERBS,
            strategy: &registry::admissionregistration::VALIDATING_ADMISSION_POLICY_BINDINGS),
        resource!("admissionregistration.k8s.io", "v1", "mutatingadmissionpolicies", "MutatingAdmissionPolicy", "mutatingadmissionpolicy", false, admission::MutatingAdmissionPolicy,
            short: [], cat: ["api-extensions"], sub: [], verbs: ALL_VERBS,
            strategy: &registry::admissionregistration::MUTATING_ADMISSION_POLICIES),
        resource!("admissionregistration.k8s.io", "v1", "mutatingadmissionpolicybindings", "MutatingAdmissionPolicyBinding", "mutatingadmissionpolicybinding", false, admission::MutatingAdmissionPolicyBinding,
            short: [], cat: ["api-extensions"], sub: [], verbs: ALL_VERBS,
            strategy: &registry::admissionregistration::MUTATING_ADMISSION_POLICY_BINDINGS),
        resource!("apiextensions.k8s.io", "v1", "customresourcedefinitions", "CustomResourceDefinition", "customresourcedefinition", false, apiextensions::CustomResourceDefinition,
            short: ["crd", "crds"], cat: ["api-extensions"], sub: [Status], verbs: ALL_VERBS,
            strategy: &registry::apiextensions::CUSTOM_RESOURCE_DEFINITIONS),
        resource!("apiregistration.k8s.io", "v1", "apiservices", "APIService", "apiservice", false, apiregistration::APIService,
            short: [], cat: ["api-extensions"], sub: [Status], verbs: ALL_VERBS,
            strategy: &registry::apiregistration::API_SERVICES),
        resource!("flowcontrol.apiserver.k8s.io", "v1", "flowschemas", "FlowSchema", "flowschema", false, flowcontrol::FlowSchema,
            short: [], cat: [], sub: [Status], verbs: ALL_VERBS,
            strategy: &registry::flowcontrol::FLOW_SCHEMAS),
        resource!("flowcontrol.apiserver.k8s.io", "v1", "prioritylevelconfigurations", "PriorityLevelConfiguration", "prioritylevelconfiguration", false, flowcontrol::PriorityLevelConfiguration,
            short: [], cat: [], sub: [Status], verbs: ALL_VERBS,
            strategy: &registry::flowcontrol::PRIORITY_LEVEL_CONFIGURATIONS),
        resource!("networking.k8s.io", "v1", "ingresses", "Ingress", "ingress", true, networking::Ingress,
            short: ["ing"], cat: [], sub: [Status], verbs: ALL_VERBS,
            strategy: &registry::networking::INGRESSES),
        resource!("networking.k8s.io", "v1", "ingressclasses", "IngressClass", "ingressclass", false, networking::IngressClass,
            short: [], cat: [], sub: [], verbs: ALL_VERBS,
            strategy: &registry::networking::INGRESS_CLASSES),
        resource!("networking.k8s.io", "v1", "ipaddresses", "IPAddress", "ipaddress", false, networking::IPAddress,
            short: ["ip"], cat: [], sub: [], verbs: ALL_VERBS,
            strategy: &registry::networking::IP_ADDRESSES),
        resource!("networking.k8s.io", "v1", "servicecidrs", "ServiceCIDR", "servicecidr", false, networking::ServiceCIDR,
            short: [], cat: [], sub: [Status], verbs: ALL_VERBS,
            strategy: &registry::networking::SERVICE_CIDRS),
        resource!("networking.k8s.io", "v1", "networkpolicies", "NetworkPolicy", "networkpolicy", true, networking::NetworkPolicy,
            short: ["netpol"], cat: [], sub: [], verbs: ALL_VERBS,
            strategy: &registry::networking::NETWORK_POLICIES),
        resource!("policy", "v1", "poddisruptionbudgets", "PodDisruptionBudget", "poddisruptionbudget", true, policy::PodDisruptionBudget,
            short: ["pdb"], cat: [], sub: [Status], verbs: ALL_VERBS,
            strategy: &registry::policy::POD_DISRUPTION_BUDGETS),
        resource!("scheduling.k8s.io", "v1", "priorityclasses", "PriorityClass", "priorityclass", false, scheduling::PriorityClass,
            short: ["pc"], cat: [], sub: [], verbs: ALL_VERBS,
            strategy: &registry::scheduling::PRIORITY_CLASSES),
        resource!("storage.k8s.io", "v1", "storageclasses", "StorageClass", "storageclass", false, storage::StorageClass,
            short: ["sc"], cat: [], sub: [], verbs: ALL_VERBS,
            strategy: &registry::storage::STORAGE_CLASSES),
        resource!("storage.k8s.io", "v1", "csidrivers", "CSIDriver", "csidriver", false, storage::CSIDriver,
            short: [], cat: [], sub: [], verbs: ALL_VERBS,
            strategy: &registry::storage::CSI_DRIVERS),
        resource!("storage.k8s.io", "v1", "csinodes", "CSINode", "csinode", false, storage::CSINode,
            short: [], cat: [], sub: [Status], verbs: ALL_VERBS,
            strategy: &registry::storage::CSI_NODES),
        resource!("storage.k8s.io", "v1", "volumeattachments", "VolumeAttachment", "volumeattachment", false, storage::VolumeAttachment,
            short: [], cat: [], sub: [Status], verbs: ALL_VERBS,
            strategy: &registry::storage::VOLUME_ATTACHMENTS),
        resource!("storage.k8s.io", "v1", "csistoragecapacities", "CSIStorageCapacity", "csistoragecapacity", true, storage::CSIStorageCapacity,
            short: [], cat: [], sub: [], verbs: ALL_VERBS,
            strategy: &registry::storage::CSI_STORAGE_CAPACITIES),
        resource!("storage.k8s.io", "v1", "volumeattributesclasses", "VolumeAttributesClass", "volumeattributesclass", false, storage::VolumeAttributesClass,
            short: ["vac"], cat: [], sub: [], verbs: ALL_VERBS,
            strategy: &registry::storage::VOLUME_ATTRIBUTES_CLASSES),
        resource!("node.k8s.io", "v1", "runtimeclasses", "RuntimeClass", "runtimeclass", false, node::RuntimeClass,
            short: [], cat: [], sub: [], verbs: ALL_VERBS,
            strategy: &registry::node::RUNTIME_CLASSES),
        resource!("storagemigration.k8s.io", "v1", "storageversionmigrations", "StorageVersionMigration", "storageversionmigration", false, storagemigration::StorageVersionMigration,
            short: [], cat: [], sub: [Status], verbs: ALL_VERBS,
            strategy: &registry::storagemigration::STORAGE_VERSION_MIGRATIONS),
        resource!("resource.k8s.io", "v1", "deviceclasses", "DeviceClass", "deviceclass", false, dra::DeviceClass,
            short: [], cat: [], sub: [], verbs: ALL_VERBS,
            strategy: &registry::resource::DEVICE_CLASSES),
        resource!("resource.k8s.io", "v1", "resourceclaims", "ResourceClaim", "resourceclaim", true, dra::ResourceClaim,
            short: [], cat: [], sub: [Status], verbs: ALL_VERBS,
            strategy: &registry::resource::RESOURCE_CLAIMS),
        resource!("resource.k8s.io", "v1", "resourceclaimtemplates", "ResourceClaimTemplate", "resourceclaimtemplate", true, dra::ResourceClaimTemplate,
            short: [], cat: [], sub: [], verbs: ALL_VERBS,
            strategy: &registry::resource::RESOURCE_CLAIM_TEMPLATES),
        resource!("resource.k8s.io", "v1", "resourceslices", "ResourceSlice", "resourceslice", false, dra::ResourceSlice,
            short: [], cat: [], sub: [], verbs: ALL_VERBS,
            strategy: &registry::resource::RESOURCE_SLICES),
        resource!("resource.k8s.io", "v1", "devicetaintrules", "DeviceTaintRule", "devicetaintrule", false, dra::DeviceTaintRule,
            short: [], cat: [], sub: [Status], verbs: ALL_VERBS,
            strategy: &registry::resource::DEVICE_TAINT_RULES),
        resource!("rbac.authorization.k8s.io", "v1", "roles", "Role", "role", true, rbac::Role,
            short: [], cat: [], sub: [], verbs: ALL_VERBS,
            strategy: &registry::rbac::ROLES),
        resource!("rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding", "rolebinding", true, rbac::RoleBinding,
            short: [], cat: [], sub: [], verbs: ALL_VERBS,
            strategy: &registry::rbac::ROLE_BINDINGS),
        resource!("rbac.authorization.k8s.io", "v1", "clusterroles", "ClusterRole", "clusterrole", false, rbac::ClusterRole,
            short: [], cat: [], sub: [], verbs: ALL_VERBS,
            strategy: &registry::rbac::CLUSTER_ROLES),
        resource!("rbac.authorization.k8s.io", "v1", "clusterrolebindings", "ClusterRoleBinding", "clusterrolebinding", false, rbac::ClusterRoleBinding,
            short: [], cat: [], sub: [], verbs: ALL_VERBS,
            strategy: &registry::rbac::CLUSTER_ROLE_BINDINGS),
        resource!("authentication.k8s.io", "v1", "tokenreviews", "TokenReview", "tokenreview", false, authn::TokenReview,
            short: [], cat: [], sub: [], verbs: CREATE_ONLY,
            strategy: &registry::authentication::TOKEN_REVIEWS),
        resource!("authentication.k8s.io", "v1", "selfsubjectreviews", "SelfSubjectReview", "selfsubjectreview", false, authn::SelfSubjectReview,
            short: [], cat: [], sub: [], verbs: CREATE_ONLY,
            strategy: &registry::authentication::SELF_SUBJECT_REVIEWS),
        resource!("authorization.k8s.io", "v1", "localsubjectaccessreviews", "LocalSubjectAccessReview", "localsubjectaccessreview", true, authz::LocalSubjectAccessReview,
            short: [], cat: [], sub: [], verbs: CREATE_ONLY,
            strategy: &registry::authorization::ACCESS_REVIEWS),
        resource!("authorization.k8s.io", "v1", "selfsubjectaccessreviews", "SelfSubjectAccessReview", "selfsubjectaccessreview", false, authz::SelfSubjectAccessReview,
            short: [], cat: [], sub: [], verbs: CREATE_ONLY,
            strategy: &registry::authorization::SELF_ACCESS_REVIEWS),
        resource!("authorization.k8s.io", "v1", "selfsubjectrulesreviews", "SelfSubjectRulesReview", "selfsubjectrulesreview", false, authz::SelfSubjectRulesReview,
            short: [], cat: [], sub: [], verbs: CREATE_ONLY,
            strategy: &registry::authorization::RULES_REVIEWS),
        resource!("authorization.k8s.io", "v1", "subjectaccessreviews", "SubjectAccessReview", "subjectaccessreview", false, authz::SubjectAccessReview,
            short: [], cat: [], sub: [], verbs: CREATE_ONLY,
            strategy: &registry::authorization::ACCESS_REVIEWS),
    ]
});

/// Group versions in the order discovery lists them (core first, like upstream's priority).
pub fn group_versions() -> Vec<(&'static str, &'static str)> {
    let mut out: Vec<(&'static str, &'static str)> = Vec::new();
    for r in RESOURCES.iter() {
        if !out.contains(&(r.group, r.version)) {
            out.push((r.group, r.version));
        }
    }
    out
}

pub fn find(group: &str, version: &str, resource: &str) -> Option<&'static ResourceInfo> {
    RESOURCES
        .iter()
        .find(|r| r.group == group && r.version == version && r.resource == resource)
}

pub fn find_kind(api_version: &str, kind: &str) -> Option<&'static ResourceInfo> {
    RESOURCES
        .iter()
        .find(|r| r.kind == kind && r.api_version() == api_version)
}

pub fn namespaces() -> &'static ResourceInfo {
    &RESOURCES[0]
}

pub fn pods() -> &'static ResourceInfo {
    &RESOURCES[1]
}

pub fn services() -> &'static ResourceInfo {
    find("", "v1", "services").expect("services are registered")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn definitions_match_kinds() {
        for r in RESOURCES.iter() {
            let def = (r.typed.definition)();
            assert!(
                def.ends_with(&format!(".{}", r.kind)),
                "{def} vs {}",
                r.kind
            );
        }
        assert_eq!(namespaces().resource, "namespaces");
        assert_eq!(pods().resource, "pods");
    }

    #[test]
    fn prefixes_never_nest() {
        let prefixes: Vec<String> = RESOURCES.iter().map(|r| r.key_prefix()).collect();
        for a in &prefixes {
            for b in &prefixes {
                assert!(a == b || !a.starts_with(b.as_str()), "{a} is inside {b}");
            }
        }
    }
}
