//! Server-side `Table` output (`Accept: application/json;as=Table;v=v1;g=meta.k8s.io`), the form
//! `kubectl get` asks for. Columns and cells follow upstream 1.32's printers
//! (pkg/printers/internalversion/printers.go), the generic convertor upstream uses for built-in
//! resources without a printer (Name, Created At), and the custom-resource convertor's default
//! (Name, Age).
//!
//! Upstream's server always renders the wide cells too (`-o wide` columns carry `priority: 1`) and
//! leaves hiding them to kubectl, so every row here has one cell per column.
//!
//! Objects are the stored JSON. Anything may be missing (a pod without status yet, a hand-written
//! object): a missing field reads as zero/empty, or as the value upstream defaulting would have
//! filled in, so the output matches what a real cluster shows for the same manifest.

use std::collections::BTreeSet;
use std::time::Duration;

use jiff::Timestamp;
use serde_json::{json, Map, Value};

/// The `includeObject` query parameter: what each row's `object` carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IncludeObject {
    /// No `object` in rows.
    None,
    /// A `PartialObjectMetadata` with the object's metadata (upstream's default).
    Metadata,
    /// The whole object.
    Object,
}

impl IncludeObject {
    /// Unknown values fall back to the default rather than failing the request.
    pub fn from_query(v: Option<&str>) -> IncludeObject {
        match v {
            Some("None") => IncludeObject::None,
            Some("Object") => IncludeObject::Object,
            _ => IncludeObject::Metadata,
        }
    }
}

/// Column definitions (a JSON array) for a resource; `group` is "" for core, `resource` the plural.
pub fn column_definitions(group: &str, resource: &str) -> Value {
    let printer = printer_for(group, resource);
    Value::Array(columns(printer).iter().map(Column::to_json).collect())
}

/// One table row: `{"cells":[…],"object":…}` (plus `conditions` for finished pods, as upstream).
pub fn row(
    group: &str,
    resource: &str,
    object: &Value,
    include: IncludeObject,
    now: Timestamp,
) -> Value {
    let printer = printer_for(group, resource);
    let mut row = Map::new();
    row.insert(
        "cells".to_string(),
        Value::Array(cells(printer, object, now)),
    );
    if printer == Printer::Pod {
        if let Some(conditions) = pod_row_conditions(object) {
            row.insert("conditions".to_string(), conditions);
        }
    }
    match include {
        IncludeObject::None => {}
        IncludeObject::Metadata => {
            let metadata = object.get("metadata").cloned().unwrap_or_else(|| json!({}));
            row.insert(
                "object".to_string(),
                json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": metadata}),
            );
        }
        IncludeObject::Object => {
            row.insert("object".to_string(), object.clone());
        }
    }
    Value::Object(row)
}

/// A whole `meta.k8s.io/v1` Table for a list (or a single object, as a one-element slice).
pub fn table(
    group: &str,
    resource: &str,
    objects: &[Value],
    resource_version: &str,
    continue_token: Option<&str>,
    include: IncludeObject,
    now: Timestamp,
) -> Value {
    // ListMeta fields are omitempty upstream.
    let mut metadata = Map::new();
    if !resource_version.is_empty() {
        metadata.insert("resourceVersion".to_string(), Value::from(resource_version));
    }
    if let Some(token) = continue_token.filter(|t| !t.is_empty()) {
        metadata.insert("continue".to_string(), Value::from(token));
    }
    let rows: Vec<Value> = objects
        .iter()
        .map(|o| row(group, resource, o, include, now))
        .collect();
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": metadata,
        "columnDefinitions": column_definitions(group, resource),
        "rows": rows,
    })
}

/// Upstream's `duration.HumanDuration`: about two significant figures, coarser as it grows.
pub fn human_duration(d: Duration) -> String {
    human_duration_seconds(i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// HumanDuration on whole seconds, negative allowed: timestamps slightly in the future (clock skew
/// between nodes) read as "0s", further in the future as "<invalid>", as upstream.
fn human_duration_seconds(seconds: i64) -> String {
    if seconds < -1 {
        return "<invalid>".to_string();
    }
    if seconds < 0 {
        return "0s".to_string();
    }
    if seconds < 60 * 2 {
        return format!("{seconds}s");
    }
    let minutes = seconds / 60;
    if minutes < 10 {
        let s = seconds % 60;
        if s == 0 {
            return format!("{minutes}m");
        }
        return format!("{minutes}m{s}s");
    }
    if minutes < 60 * 3 {
        return format!("{minutes}m");
    }
    let hours = seconds / 3600;
    if hours < 8 {
        let m = minutes % 60;
        if m == 0 {
            return format!("{hours}h");
        }
        return format!("{hours}h{m}m");
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    if hours < 24 * 8 {
        let h = hours % 24;
        if h == 0 {
            return format!("{}d", hours / 24);
        }
        return format!("{}d{h}h", hours / 24);
    }
    if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    }
    if hours < 24 * 365 * 8 {
        let days_into_year = (hours / 24) % 365;
        if days_into_year == 0 {
            return format!("{}y", hours / 24 / 365);
        }
        return format!("{}y{days_into_year}d", hours / 24 / 365);
    }
    format!("{}y", hours / 24 / 365)
}

// ---------------------------------------------------------------------------------------------
// Which printer serves which resource
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Printer {
    Pod,
    PodTemplate,
    PodDisruptionBudget,
    ReplicationController,
    ReplicaSet,
    DaemonSet,
    Deployment,
    StatefulSet,
    ControllerRevision,
    Job,
    CronJob,
    Service,
    Endpoints,
    EndpointSlice,
    Ingress,
    IngressClass,
    NetworkPolicy,
    Node,
    Namespace,
    /// core/v1 events.
    Event,
    /// events.k8s.io/v1 events: the same printer upstream, fields under their newer names.
    EventsV1Event,
    ConfigMap,
    Secret,
    ServiceAccount,
    PersistentVolume,
    PersistentVolumeClaim,
    StorageClass,
    CsiDriver,
    CsiNode,
    VolumeAttachment,
    PriorityClass,
    RuntimeClass,
    Lease,
    RoleBinding,
    ClusterRoleBinding,
    ResourceQuota,
    HorizontalPodAutoscaler,
    WebhookConfiguration,
    CertificateSigningRequest,
    ApiService,
    /// A built-in resource without a printer (roles, clusterroles, limitranges, CRDs, …):
    /// upstream's generic convertor, Name and Created At.
    BuiltinDefault,
    /// A custom resource: the CRD convertor's default columns, Name and Age.
    CustomResource,
}

fn printer_for(group: &str, resource: &str) -> Printer {
    match (group, resource) {
        ("", "pods") => Printer::Pod,
        ("", "podtemplates") => Printer::PodTemplate,
        ("", "replicationcontrollers") => Printer::ReplicationController,
        ("", "services") => Printer::Service,
        ("", "endpoints") => Printer::Endpoints,
        ("", "nodes") => Printer::Node,
        ("", "namespaces") => Printer::Namespace,
        ("", "events") => Printer::Event,
        ("", "configmaps") => Printer::ConfigMap,
        ("", "secrets") => Printer::Secret,
        ("", "serviceaccounts") => Printer::ServiceAccount,
        ("", "persistentvolumes") => Printer::PersistentVolume,
        ("", "persistentvolumeclaims") => Printer::PersistentVolumeClaim,
        ("", "resourcequotas") => Printer::ResourceQuota,
        ("apps", "replicasets") => Printer::ReplicaSet,
        ("apps", "daemonsets") => Printer::DaemonSet,
        ("apps", "deployments") => Printer::Deployment,
        ("apps", "statefulsets") => Printer::StatefulSet,
        ("apps", "controllerrevisions") => Printer::ControllerRevision,
        ("batch", "jobs") => Printer::Job,
        ("batch", "cronjobs") => Printer::CronJob,
        ("policy", "poddisruptionbudgets") => Printer::PodDisruptionBudget,
        ("autoscaling", "horizontalpodautoscalers") => Printer::HorizontalPodAutoscaler,
        ("discovery.k8s.io", "endpointslices") => Printer::EndpointSlice,
        ("networking.k8s.io", "ingresses") => Printer::Ingress,
        ("networking.k8s.io", "ingressclasses") => Printer::IngressClass,
        ("networking.k8s.io", "networkpolicies") => Printer::NetworkPolicy,
        ("events.k8s.io", "events") => Printer::EventsV1Event,
        ("storage.k8s.io", "storageclasses") => Printer::StorageClass,
        ("storage.k8s.io", "csidrivers") => Printer::CsiDriver,
        ("storage.k8s.io", "csinodes") => Printer::CsiNode,
        ("storage.k8s.io", "volumeattachments") => Printer::VolumeAttachment,
        ("scheduling.k8s.io", "priorityclasses") => Printer::PriorityClass,
        ("node.k8s.io", "runtimeclasses") => Printer::RuntimeClass,
        ("coordination.k8s.io", "leases") => Printer::Lease,
        ("rbac.authorization.k8s.io", "rolebindings") => Printer::RoleBinding,
        ("rbac.authorization.k8s.io", "clusterrolebindings") => Printer::ClusterRoleBinding,
        ("admissionregistration.k8s.io", "mutatingwebhookconfigurations") => {
            Printer::WebhookConfiguration
        }
        ("admissionregistration.k8s.io", "validatingwebhookconfigurations") => {
            Printer::WebhookConfiguration
        }
        ("certificates.k8s.io", "certificatesigningrequests") => Printer::CertificateSigningRequest,
        ("apiregistration.k8s.io", "apiservices") => Printer::ApiService,
        _ if is_builtin_group(group) => Printer::BuiltinDefault,
        _ => Printer::CustomResource,
    }
}

/// Groups served by kube-apiserver itself; anything else is assumed to come from a CRD.
fn is_builtin_group(group: &str) -> bool {
    matches!(
        group,
        "" | "apps"
            | "batch"
            | "autoscaling"
            | "policy"
            | "extensions"
            | "networking.k8s.io"
            | "rbac.authorization.k8s.io"
            | "storage.k8s.io"
            | "scheduling.k8s.io"
            | "node.k8s.io"
            | "coordination.k8s.io"
            | "discovery.k8s.io"
            | "events.k8s.io"
            | "certificates.k8s.io"
            | "admissionregistration.k8s.io"
            | "apiextensions.k8s.io"
            | "apiregistration.k8s.io"
            | "flowcontrol.apiserver.k8s.io"
            | "authentication.k8s.io"
            | "authorization.k8s.io"
            | "resource.k8s.io"
            | "internal.apiserver.k8s.io"
            | "storagemigration.k8s.io"
    )
}

// ---------------------------------------------------------------------------------------------
// Column definitions
// ---------------------------------------------------------------------------------------------

struct Column {
    name: &'static str,
    /// OpenAPI type name: "string", "integer", "boolean", "date".
    kind: &'static str,
    format: &'static str,
    /// 0: always shown; 1: only with `-o wide`.
    priority: u32,
    description: &'static str,
}

impl Column {
    fn to_json(&self) -> Value {
        // Upstream serializes all five fields, empty format included.
        json!({
            "name": self.name,
            "type": self.kind,
            "format": self.format,
            "description": self.description,
            "priority": self.priority,
        })
    }
}

const fn col(name: &'static str, kind: &'static str, description: &'static str) -> Column {
    Column {
        name,
        kind,
        format: "",
        priority: 0,
        description,
    }
}

const fn wide(name: &'static str, kind: &'static str, description: &'static str) -> Column {
    Column {
        name,
        kind,
        format: "",
        priority: 1,
        description,
    }
}

const NAME_DESC: &str = "Name must be unique within a namespace.";
const CREATED_DESC: &str =
    "CreationTimestamp is a timestamp representing the server time when this object was created.";
const NAME: Column = Column {
    name: "Name",
    kind: "string",
    format: "name",
    priority: 0,
    description: NAME_DESC,
};
const AGE: Column = col("Age", "string", CREATED_DESC);
const CONTAINERS: Column = wide(
    "Containers",
    "string",
    "Names of each container in the template.",
);
const IMAGES: Column = wide(
    "Images",
    "string",
    "Images referenced by each container in the template.",
);
const SELECTOR: Column = wide(
    "Selector",
    "string",
    "Label query over pods that should match the replica count.",
);

fn columns(printer: Printer) -> Vec<Column> {
    match printer {
        Printer::Pod => pod_columns(),
        Printer::PodTemplate => vec![
            NAME,
            col("Containers", "string", "Names of each container in the template."),
            col("Images", "string", "Images referenced by each container in the template."),
            col("Pod Labels", "string", "The labels for the pod template."),
        ],
        Printer::PodDisruptionBudget => vec![
            NAME,
            col("Min Available", "string", "The minimum number of pods that must be available."),
            col("Max Unavailable", "string", "The maximum number of pods that may be unavailable."),
            col("Allowed Disruptions", "integer", "Calculated number of pods that may be disrupted at this time."),
            AGE,
        ],
        Printer::ReplicationController | Printer::ReplicaSet => vec![
            NAME,
            col("Desired", "integer", "Replicas is the number of desired replicas."),
            col("Current", "integer", "Replicas is the most recently observed number of replicas."),
            col("Ready", "integer", "The number of ready replicas for this replica set."),
            AGE,
            CONTAINERS,
            IMAGES,
            SELECTOR,
        ],
        Printer::DaemonSet => vec![
            NAME,
            col("Desired", "integer", "The total number of nodes that should be running the daemon pod."),
            col("Current", "integer", "The number of nodes that are running at least one daemon pod."),
            col("Ready", "integer", "The number of nodes that should be running the daemon pod and have it ready."),
            col("Up-to-date", "integer", "The total number of nodes that are running the updated daemon pod."),
            col("Available", "integer", "The number of nodes that should be running the daemon pod and have it available."),
            col("Node Selector", "string", "NodeSelector is a selector which must be true for the pod to fit on a node."),
            AGE,
            CONTAINERS,
            IMAGES,
            SELECTOR,
        ],
        Printer::Deployment => vec![
            NAME,
            col("Ready", "string", "Number of the pod with ready state"),
            col("Up-to-date", "string", "Total number of non-terminated pods targeted by this deployment that have the desired template spec."),
            col("Available", "string", "Total number of available pods targeted by this deployment."),
            AGE,
            CONTAINERS,
            IMAGES,
            SELECTOR,
        ],
        Printer::StatefulSet => vec![NAME, col("Ready", "string", "Number of the pod with ready state"), AGE, CONTAINERS, IMAGES],
        Printer::ControllerRevision => vec![
            NAME,
            col("Controller", "string", "Controller of the object"),
            col("Revision", "string", "Revision indicates the revision of the state represented by Data."),
            AGE,
        ],
        Printer::Job => vec![
            NAME,
            col("Status", "string", "Status of the job."),
            col("Completions", "string", "The number of pods which reached phase Succeeded."),
            col("Duration", "string", "Time required to complete the job."),
            AGE,
            CONTAINERS,
            IMAGES,
            SELECTOR,
        ],
        Printer::CronJob => vec![
            NAME,
            col("Schedule", "string", "The schedule in Cron format."),
            col("Timezone", "string", "The time zone name for the given schedule."),
            col("Suspend", "boolean", "This flag tells the controller to suspend subsequent executions."),
            col("Active", "integer", "A list of pointers to currently running jobs."),
            col("Last Schedule", "string", "Information when was the last time the job was successfully scheduled."),
            AGE,
            CONTAINERS,
            IMAGES,
            SELECTOR,
        ],
        Printer::Service => vec![
            NAME,
            col("Type", "string", "Type determines how the Service is exposed."),
            col("Cluster-IP", "string", "ClusterIP is the IP address of the service."),
            col("External-IP", "string", "ExternalIPs or load-balancer ingress points of the service."),
            col("Port(s)", "string", "The list of ports that are exposed by this service."),
            AGE,
            wide("Selector", "string", "Route service traffic to pods with label keys and values matching this selector."),
        ],
        Printer::Endpoints => vec![
            NAME,
            col("Endpoints", "string", "The set of all endpoints is the union of all subsets."),
            AGE,
        ],
        Printer::EndpointSlice => vec![
            NAME,
            col("AddressType", "string", "The type of address carried by this EndpointSlice."),
            col("Ports", "string", "The network ports exposed by each endpoint in this slice."),
            col("Endpoints", "string", "A list of unique endpoints in this slice."),
            AGE,
        ],
        Printer::Ingress => vec![
            NAME,
            col("Class", "string", "The name of the IngressClass resource that should be used for additional configuration"),
            col("Hosts", "string", "Hosts that incoming requests are matched against before the ingress rule"),
            col("Address", "string", "Address is a list containing ingress points for the load-balancer"),
            col("Ports", "string", "Ports of TLS configurations that open"),
            AGE,
        ],
        Printer::IngressClass => vec![
            NAME,
            col("Controller", "string", "Controller that is responsible for handling this class"),
            col("Parameters", "string", "A reference to a resource with additional parameters"),
            AGE,
        ],
        Printer::NetworkPolicy => vec![
            NAME,
            col("Pod-Selector", "string", "Selects the pods to which this NetworkPolicy object applies."),
            AGE,
        ],
        Printer::Node => vec![
            NAME,
            col("Status", "string", "The status of the node"),
            col("Roles", "string", "The roles of the node"),
            AGE,
            col("Version", "string", "Kubelet Version reported by the node."),
            wide("Internal-IP", "string", "List of addresses reachable to the node."),
            wide("External-IP", "string", "List of addresses reachable to the node."),
            wide("OS-Image", "string", "OS Image reported by the node."),
            wide("Kernel-Version", "string", "Kernel Version reported by the node."),
            wide("Container-Runtime", "string", "ContainerRuntime Version reported by the node."),
        ],
        Printer::Event | Printer::EventsV1Event => event_columns(),
        Printer::Namespace => vec![NAME, col("Status", "string", "The status of the namespace"), AGE],
        Printer::ConfigMap => vec![NAME, col("Data", "string", "Data contains the configuration data."), AGE],
        Printer::Secret => vec![
            NAME,
            col("Type", "string", "Used to facilitate programmatic handling of secret data."),
            col("Data", "string", "Data contains the secret data."),
            AGE,
        ],
        Printer::ServiceAccount => vec![
            NAME,
            col("Secrets", "string", "Secrets is a list of the secrets in the same namespace that pods running using this ServiceAccount are allowed to use."),
            AGE,
        ],
        Printer::PersistentVolume => vec![
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
        ],
        Printer::PersistentVolumeClaim => vec![
            NAME,
            col("Status", "string", "Phase represents the current phase of PersistentVolumeClaim."),
            col("Volume", "string", "VolumeName is the binding reference to the PersistentVolume backing this claim."),
            col("Capacity", "string", "Capacity represents the actual resources of the underlying volume."),
            col("Access Modes", "string", "AccessModes contains the actual access modes the volume backing the PVC has."),
            col("StorageClass", "string", "StorageClass of the pvc"),
            col("VolumeAttributesClass", "string", "VolumeAttributesClass of the pvc"),
            AGE,
            wide("VolumeMode", "string", "volumeMode defines what type of volume is required by the claim."),
        ],
        Printer::StorageClass => vec![
            NAME,
            col("Provisioner", "string", "Provisioner indicates the type of the provisioner."),
            col("ReclaimPolicy", "string", "Dynamically provisioned PersistentVolumes of this storage class are created with this reclaimPolicy."),
            col("VolumeBindingMode", "string", "VolumeBindingMode indicates how PersistentVolumeClaims should be provisioned and bound."),
            col("AllowVolumeExpansion", "string", "AllowVolumeExpansion shows whether the storage class allow volume expand."),
            AGE,
        ],
        Printer::CsiDriver => vec![
            NAME,
            col("AttachRequired", "boolean", "attachRequired indicates this CSI volume driver requires an attach operation."),
            col("PodInfoOnMount", "boolean", "podInfoOnMount indicates this CSI volume driver requires additional pod information during mount operations."),
            col("StorageCapacity", "boolean", "storageCapacity indicates that the CSI volume driver wants pod scheduling to consider the storage capacity."),
            col("TokenRequests", "string", "tokenRequests indicates the CSI driver needs pods' service account tokens it is mounting volume for."),
            col("RequiresRepublish", "boolean", "requiresRepublish indicates the CSI driver wants NodePublishVolume being periodically called."),
            col("Modes", "string", "volumeLifecycleModes defines what kind of volumes this CSI volume driver supports."),
            AGE,
        ],
        Printer::CsiNode => vec![
            NAME,
            col("Drivers", "integer", "Drivers indicates the number of CSI drivers registered on the node"),
            AGE,
        ],
        Printer::VolumeAttachment => vec![
            NAME,
            Column {
                name: "Attacher",
                kind: "string",
                format: "name",
                priority: 0,
                description: "Attacher indicates the name of the volume driver that MUST handle this request.",
            },
            col("PV", "string", "Name of the persistent volume to attach."),
            col("Node", "string", "The node that the volume should be attached to."),
            col("Attached", "boolean", "Indicates the volume is successfully attached."),
            AGE,
        ],
        Printer::PriorityClass => vec![
            NAME,
            col("Value", "integer", "The value of this priority class."),
            col("Global-Default", "boolean", "globalDefault specifies whether this PriorityClass should be considered as the default priority."),
            AGE,
            col("PreemptionPolicy", "string", "PreemptionPolicy is the Policy for preempting pods with lower priority."),
        ],
        Printer::RuntimeClass => vec![
            NAME,
            col("Handler", "string", "Handler specifies the underlying runtime and configuration that the CRI implementation will use."),
            AGE,
        ],
        Printer::Lease => vec![
            NAME,
            col("Holder", "string", "holderIdentity contains the identity of the holder of a current lease."),
            AGE,
        ],
        Printer::RoleBinding => vec![
            NAME,
            col("Role", "string", "RoleRef can reference a Role in the current namespace or a ClusterRole in the global namespace."),
            AGE,
            wide("Users", "string", "Users in the roleBinding"),
            wide("Groups", "string", "Groups in the roleBinding"),
            wide("ServiceAccounts", "string", "ServiceAccounts in the roleBinding"),
        ],
        Printer::ClusterRoleBinding => vec![
            NAME,
            col("Role", "string", "RoleRef can only reference a ClusterRole in the global namespace."),
            AGE,
            wide("Users", "string", "Users in the clusterRoleBinding"),
            wide("Groups", "string", "Groups in the clusterRoleBinding"),
            wide("ServiceAccounts", "string", "ServiceAccounts in the clusterRoleBinding"),
        ],
        // 1.32 order; 1.33 moved Age to the end.
        Printer::ResourceQuota => vec![
            NAME,
            AGE,
            col("Request", "string", "Request represents a minimum amount of cpu/memory that a container may consume."),
            col("Limit", "string", "Limits control the maximum amount of cpu/memory that a container may use independent of contention on the node."),
        ],
        Printer::HorizontalPodAutoscaler => vec![
            NAME,
            col("Reference", "string", "Reference to scaled resource."),
            col("Targets", "string", "The specifications for which to use to calculate the desired replica count."),
            col("MinPods", "string", "The lower limit for the number of pods that can be set by the autoscaler."),
            col("MaxPods", "string", "The upper limit for the number of pods that can be set by the autoscaler."),
            col("Replicas", "string", "Current number of replicas of pods managed by this autoscaler."),
            AGE,
        ],
        Printer::WebhookConfiguration => vec![
            NAME,
            col("Webhooks", "integer", "Webhooks indicates the number of webhooks registered in this configuration"),
            AGE,
        ],
        Printer::CertificateSigningRequest => vec![
            NAME,
            AGE,
            col("SignerName", "string", "Requested signer for the request."),
            col("Requestor", "string", "The user that created the request."),
            col("RequestedDuration", "string", "The requested duration of validity of the issued certificate."),
            col("Condition", "string", "Conditions applied to the request."),
        ],
        Printer::ApiService => vec![
            NAME,
            col("Service", "string", "The reference to the service that hosts this API endpoint."),
            col("Available", "string", "Whether this service is available."),
            AGE,
        ],
        Printer::BuiltinDefault => vec![NAME, col("Created At", "date", CREATED_DESC)],
        Printer::CustomResource => vec![NAME, col("Age", "date", CREATED_DESC)],
    }
}

fn pod_columns() -> Vec<Column> {
    vec![
        NAME,
        col("Ready", "string", "The aggregate readiness state of this pod for accepting traffic."),
        col("Status", "string", "The aggregate status of the containers in this pod."),
        col(
            "Restarts",
            "string",
            "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted.",
        ),
        AGE,
        wide("IP", "string", "IP address allocated to the pod."),
        wide("Node", "string", "NodeName is the name of the node the pod is scheduled onto."),
        wide("Nominated Node", "string", "nominatedNodeName is set when this pod preempts other pods on the node."),
        wide("Readiness Gates", "string", "If specified, all readiness gates will be evaluated for pod readiness."),
    ]
}

/// Since 1.23 the default event columns are Last Seen, Type, Reason, Object, Message; the rest only
/// with `-o wide`, and Name last.
fn event_columns() -> Vec<Column> {
    vec![
        col("Last Seen", "string", "The time at which the most recent occurrence of this event was recorded."),
        col("Type", "string", "Type of this event (Normal, Warning)."),
        col("Reason", "string", "This should be a short, machine understandable string that gives the reason for the transition into the object's current status."),
        col("Object", "string", "The object that this event is about."),
        wide("Subobject", "string", "The field of the involved object this event is about."),
        wide("Source", "string", "The component reporting this event."),
        col("Message", "string", "A human-readable description of the status of this operation."),
        wide("First Seen", "string", "The time at which the event was first recorded."),
        wide("Count", "string", "The number of times this event has occurred."),
        Column { name: "Name", kind: "string", format: "name", priority: 1, description: NAME_DESC },
    ]
}

// ---------------------------------------------------------------------------------------------
// Cells
// ---------------------------------------------------------------------------------------------

fn cells(printer: Printer, obj: &Value, now: Timestamp) -> Vec<Value> {
    match printer {
        Printer::Pod => pod_cells(obj, now),
        Printer::PodTemplate => pod_template_cells(obj),
        Printer::PodDisruptionBudget => pod_disruption_budget_cells(obj, now),
        Printer::ReplicationController => replication_controller_cells(obj, now),
        Printer::ReplicaSet => replica_set_cells(obj, now),
        Printer::DaemonSet => daemon_set_cells(obj, now),
        Printer::Deployment => deployment_cells(obj, now),
        Printer::StatefulSet => stateful_set_cells(obj, now),
        Printer::ControllerRevision => controller_revision_cells(obj, now),
        Printer::Job => job_cells(obj, now),
        Printer::CronJob => cron_job_cells(obj, now),
        Printer::Service => service_cells(obj, now),
        Printer::Endpoints => endpoints_cells(obj, now),
        Printer::EndpointSlice => endpoint_slice_cells(obj, now),
        Printer::Ingress => ingress_cells(obj, now),
        Printer::IngressClass => ingress_class_cells(obj, now),
        Printer::NetworkPolicy => network_policy_cells(obj, now),
        Printer::Node => node_cells(obj, now),
        Printer::Namespace => namespace_cells(obj, now),
        Printer::Event => event_cells(obj, now, &CORE_EVENT_FIELDS),
        Printer::EventsV1Event => event_cells(obj, now, &EVENTS_V1_EVENT_FIELDS),
        Printer::ConfigMap => config_map_cells(obj, now),
        Printer::Secret => secret_cells(obj, now),
        Printer::ServiceAccount => service_account_cells(obj, now),
        Printer::PersistentVolume => persistent_volume_cells(obj, now),
        Printer::PersistentVolumeClaim => persistent_volume_claim_cells(obj, now),
        Printer::StorageClass => storage_class_cells(obj, now),
        Printer::CsiDriver => csi_driver_cells(obj, now),
        Printer::CsiNode => csi_node_cells(obj, now),
        Printer::VolumeAttachment => volume_attachment_cells(obj, now),
        Printer::PriorityClass => priority_class_cells(obj, now),
        Printer::RuntimeClass => runtime_class_cells(obj, now),
        Printer::Lease => lease_cells(obj, now),
        Printer::RoleBinding | Printer::ClusterRoleBinding => role_binding_cells(obj, now),
        Printer::ResourceQuota => resource_quota_cells(obj, now),
        Printer::HorizontalPodAutoscaler => horizontal_pod_autoscaler_cells(obj, now),
        Printer::WebhookConfiguration => webhook_configuration_cells(obj, now),
        Printer::CertificateSigningRequest => certificate_signing_request_cells(obj, now),
        Printer::ApiService => api_service_cells(obj, now),
        Printer::BuiltinDefault => builtin_default_cells(obj),
        Printer::CustomResource => vec![name(obj), age(obj, now).into()],
    }
}

// --- pods ------------------------------------------------------------------------------------

fn pod_cells(pod: &Value, now: Timestamp) -> Vec<Value> {
    let spec_init_containers = list(pod, &["spec", "initContainers"]);
    let phase = text(pod, &["status", "phase"]);
    let status_reason = text(pod, &["status", "reason"]);
    let conditions = list(pod, &["status", "conditions"]);

    let mut restarts: i64 = 0;
    let mut restartable_init_restarts: i64 = 0;
    let mut total_containers = list(pod, &["spec", "containers"]).len();
    let mut ready_containers = 0usize;
    let mut last_restart: Option<Timestamp> = None;
    let mut last_restartable_init_restart: Option<Timestamp> = None;

    let mut reason = if status_reason.is_empty() {
        phase.to_string()
    } else {
        status_reason.to_string()
    };

    // A pod held back by scheduling gates says so instead of "Pending".
    for condition in conditions {
        if text(condition, &["type"]) == "PodScheduled"
            && text(condition, &["reason"]) == "SchedulingGated"
        {
            reason = "SchedulingGated".to_string();
        }
    }

    // Sidecars (init containers with restartPolicy Always) count as regular containers.
    for init in spec_init_containers {
        if is_restartable_init_container(init) {
            total_containers += 1;
        }
    }
    let restartable = |container_name: &str| {
        spec_init_containers
            .iter()
            .find(|c| text(c, &["name"]) == container_name)
            .is_some_and(is_restartable_init_container)
    };

    // Init containers run in order: the first one not done yet tells where initialization is.
    let mut initializing = false;
    for (index, status) in list(pod, &["status", "initContainerStatuses"])
        .iter()
        .enumerate()
    {
        let container_name = text(status, &["name"]);
        let is_sidecar = restartable(container_name);
        restarts = restarts.saturating_add(integer(status, &["restartCount"]));
        let finished = timestamp(status, &["lastState", "terminated", "finishedAt"]);
        last_restart = latest(last_restart, finished);
        if is_sidecar {
            restartable_init_restarts =
                restartable_init_restarts.saturating_add(integer(status, &["restartCount"]));
            last_restartable_init_restart = latest(last_restartable_init_restart, finished);
        }

        let terminated = field(status, &["state", "terminated"]).filter(|t| !t.is_null());
        let waiting = field(status, &["state", "waiting"]).filter(|w| !w.is_null());
        if terminated.is_some_and(|t| integer(t, &["exitCode"]) == 0) {
            continue;
        }
        if is_sidecar && boolean(status, &["started"]) {
            if boolean(status, &["ready"]) {
                ready_containers += 1;
            }
            continue;
        }
        if let Some(terminated) = terminated {
            // Initialization failed.
            let terminated_reason = text(terminated, &["reason"]);
            reason = if !terminated_reason.is_empty() {
                format!("Init:{terminated_reason}")
            } else if integer(terminated, &["signal"]) != 0 {
                format!("Init:Signal:{}", integer(terminated, &["signal"]))
            } else {
                format!("Init:ExitCode:{}", integer(terminated, &["exitCode"]))
            };
        } else if let Some(waiting_reason) = waiting
            .map(|w| text(w, &["reason"]))
            .filter(|r| !r.is_empty() && *r != "PodInitializing")
        {
            reason = format!("Init:{waiting_reason}");
        } else {
            reason = format!("Init:{}/{}", index, spec_init_containers.len());
        }
        initializing = true;
        break;
    }

    if !initializing || pod_condition_is_true_first(conditions, "Initialized") {
        // Restarts of finished init containers no longer matter; sidecar restarts still do.
        restarts = restartable_init_restarts;
        last_restart = last_restartable_init_restart;
        let mut has_running = false;
        // Backwards, so the first container's state wins, as upstream.
        for status in list(pod, &["status", "containerStatuses"]).iter().rev() {
            restarts = restarts.saturating_add(integer(status, &["restartCount"]));
            last_restart = latest(
                last_restart,
                timestamp(status, &["lastState", "terminated", "finishedAt"]),
            );

            let waiting_reason = field(status, &["state", "waiting"])
                .filter(|w| !w.is_null())
                .map(|w| text(w, &["reason"]));
            let terminated = field(status, &["state", "terminated"]).filter(|t| !t.is_null());
            let running = field(status, &["state", "running"]).is_some_and(|r| !r.is_null());
            if let Some(r) = waiting_reason.filter(|r| !r.is_empty()) {
                reason = r.to_string();
            } else if let Some(terminated) = terminated {
                let terminated_reason = text(terminated, &["reason"]);
                reason = if !terminated_reason.is_empty() {
                    terminated_reason.to_string()
                } else if integer(terminated, &["signal"]) != 0 {
                    format!("Signal:{}", integer(terminated, &["signal"]))
                } else {
                    format!("ExitCode:{}", integer(terminated, &["exitCode"]))
                };
            } else if boolean(status, &["ready"]) && running {
                has_running = true;
                ready_containers += 1;
            }
        }

        // One finished container does not make the pod "Completed" while others still run.
        if reason == "Completed" && has_running {
            reason = if pod_condition_is_true_any(conditions, "Ready") {
                "Running"
            } else {
                "NotReady"
            }
            .to_string();
        }
    }

    let deleting = is_set(pod, &["metadata", "deletionTimestamp"]);
    if deleting && status_reason == "NodeLost" {
        reason = "Unknown".to_string();
    } else if deleting && phase != "Failed" && phase != "Succeeded" {
        reason = "Terminating".to_string();
    }

    let restarts_text = match last_restart {
        Some(when) if restarts != 0 => format!("{restarts} ({} ago)", since(Some(when), now)),
        _ => restarts.to_string(),
    };

    let node = non_empty_or(text(pod, &["spec", "nodeName"]), "<none>");
    let nominated = non_empty_or(text(pod, &["status", "nominatedNodeName"]), "<none>");
    let ip = non_empty_or(pod_ip(pod), "<none>");
    let readiness_gates = pod_readiness_gates(pod);

    vec![
        name(pod),
        format!("{ready_containers}/{total_containers}").into(),
        reason.into(),
        restarts_text.into(),
        age(pod, now).into(),
        ip.into(),
        node.into(),
        nominated.into(),
        readiness_gates.into(),
    ]
}

fn is_restartable_init_container(container: &Value) -> bool {
    text(container, &["restartPolicy"]) == "Always"
}

/// The primary pod IP. Upstream's conversion makes `podIP` authoritative over `podIPs[0]`.
fn pod_ip(pod: &Value) -> &str {
    let ip = text(pod, &["status", "podIP"]);
    if !ip.is_empty() {
        return ip;
    }
    list(pod, &["status", "podIPs"])
        .first()
        .map(|p| text(p, &["ip"]))
        .unwrap_or("")
}

fn pod_readiness_gates(pod: &Value) -> String {
    let gates = list(pod, &["spec", "readinessGates"]);
    if gates.is_empty() {
        return "<none>".to_string();
    }
    let conditions = list(pod, &["status", "conditions"]);
    let mut true_conditions = 0;
    for gate in gates {
        let wanted = text(gate, &["conditionType"]);
        if let Some(condition) = conditions.iter().find(|c| text(c, &["type"]) == wanted) {
            if text(condition, &["status"]) == "True" {
                true_conditions += 1;
            }
        }
    }
    format!("{true_conditions}/{}", gates.len())
}

/// Finished pods carry a row condition, which clients may use to dim or hide them.
fn pod_row_conditions(pod: &Value) -> Option<Value> {
    let (reason, message) = match text(pod, &["status", "phase"]) {
        "Succeeded" => ("Succeeded", "The pod has completed successfully."),
        "Failed" => ("Failed", "The pod failed."),
        _ => return None,
    };
    Some(json!([{"type": "Completed", "status": "True", "reason": reason, "message": message}]))
}

/// Status of the first condition of that type is True (upstream stops at the first match).
fn pod_condition_is_true_first(conditions: &[Value], condition_type: &str) -> bool {
    conditions
        .iter()
        .find(|c| text(c, &["type"]) == condition_type)
        .is_some_and(|c| text(c, &["status"]) == "True")
}

/// Any condition of that type is True.
fn pod_condition_is_true_any(conditions: &[Value], condition_type: &str) -> bool {
    conditions
        .iter()
        .any(|c| text(c, &["type"]) == condition_type && text(c, &["status"]) == "True")
}

fn pod_template_cells(obj: &Value) -> Vec<Value> {
    let (names, images) = container_cells(list(obj, &["template", "spec", "containers"]));
    vec![
        name(obj),
        names.into(),
        images.into(),
        format_labels(field(obj, &["template", "metadata", "labels"])).into(),
    ]
}

// --- workloads -------------------------------------------------------------------------------

fn pod_disruption_budget_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    let min_available =
        int_or_string(field(obj, &["spec", "minAvailable"])).unwrap_or_else(|| "N/A".to_string());
    let max_unavailable =
        int_or_string(field(obj, &["spec", "maxUnavailable"])).unwrap_or_else(|| "N/A".to_string());
    vec![
        name(obj),
        min_available.into(),
        max_unavailable.into(),
        integer(obj, &["status", "disruptionsAllowed"]).into(),
        age(obj, now).into(),
    ]
}

fn replication_controller_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    let (names, images) = container_cells(list(obj, &["spec", "template", "spec", "containers"]));
    vec![
        name(obj),
        replicas(obj).into(),
        integer(obj, &["status", "replicas"]).into(),
        integer(obj, &["status", "readyReplicas"]).into(),
        age(obj, now).into(),
        names.into(),
        images.into(),
        // A replication controller's selector is a plain map, not a LabelSelector.
        format_labels(field(obj, &["spec", "selector"])).into(),
    ]
}

fn replica_set_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    let (names, images) = container_cells(list(obj, &["spec", "template", "spec", "containers"]));
    vec![
        name(obj),
        replicas(obj).into(),
        integer(obj, &["status", "replicas"]).into(),
        integer(obj, &["status", "readyReplicas"]).into(),
        age(obj, now).into(),
        names.into(),
        images.into(),
        format_label_selector(field(obj, &["spec", "selector"])).into(),
    ]
}

fn daemon_set_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    let (names, images) = container_cells(list(obj, &["spec", "template", "spec", "containers"]));
    vec![
        name(obj),
        integer(obj, &["status", "desiredNumberScheduled"]).into(),
        integer(obj, &["status", "currentNumberScheduled"]).into(),
        integer(obj, &["status", "numberReady"]).into(),
        integer(obj, &["status", "updatedNumberScheduled"]).into(),
        integer(obj, &["status", "numberAvailable"]).into(),
        format_labels(field(obj, &["spec", "template", "spec", "nodeSelector"])).into(),
        age(obj, now).into(),
        names.into(),
        images.into(),
        format_label_selector(field(obj, &["spec", "selector"])).into(),
    ]
}

fn deployment_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    let (names, images) = container_cells(list(obj, &["spec", "template", "spec", "containers"]));
    // Unlike the other workloads, an empty selector prints as "" here, and an invalid one as
    // "<invalid>".
    let selector = match label_selector_string(field(obj, &["spec", "selector"])) {
        Ok(s) => s,
        Err(()) => "<invalid>".to_string(),
    };
    vec![
        name(obj),
        format!(
            "{}/{}",
            integer(obj, &["status", "readyReplicas"]),
            replicas(obj)
        )
        .into(),
        integer(obj, &["status", "updatedReplicas"]).into(),
        integer(obj, &["status", "availableReplicas"]).into(),
        age(obj, now).into(),
        names.into(),
        images.into(),
        selector.into(),
    ]
}

fn stateful_set_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    let (names, images) = container_cells(list(obj, &["spec", "template", "spec", "containers"]));
    vec![
        name(obj),
        format!(
            "{}/{}",
            integer(obj, &["status", "readyReplicas"]),
            replicas(obj)
        )
        .into(),
        age(obj, now).into(),
        names.into(),
        images.into(),
    ]
}

/// `spec.replicas`, which upstream defaults to 1 for every replicated workload.
fn replicas(obj: &Value) -> i64 {
    opt_integer(obj, &["spec", "replicas"]).unwrap_or(1)
}

fn controller_revision_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    let controller = list(obj, &["metadata", "ownerReferences"])
        .iter()
        .find(|r| boolean(r, &["controller"]))
        .map(|owner| {
            // "apps/v1" -> group "apps"; "v1" -> core.
            let api_version = text(owner, &["apiVersion"]);
            let group = api_version.split_once('/').map(|(g, _)| g).unwrap_or("");
            let kind = text(owner, &["kind"]);
            let owner_name = text(owner, &["name"]);
            if group.is_empty() && kind.is_empty() {
                owner_name.to_string()
            } else if group.is_empty() {
                format!("{}/{owner_name}", kind.to_lowercase())
            } else {
                format!(
                    "{}.{}/{owner_name}",
                    kind.to_lowercase(),
                    group.to_lowercase()
                )
            }
        })
        .unwrap_or_else(|| "<none>".to_string());
    vec![
        name(obj),
        controller.into(),
        integer(obj, &["revision"]).into(),
        age(obj, now).into(),
    ]
}

fn job_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    let succeeded = integer(obj, &["status", "succeeded"]);
    let completions = match opt_integer(obj, &["spec", "completions"]) {
        Some(completions) => format!("{succeeded}/{completions}"),
        None => {
            // Without completions, any one success finishes a (possibly parallel) job.
            let parallelism = opt_integer(obj, &["spec", "parallelism"]).unwrap_or(1);
            if parallelism > 1 {
                format!("{succeeded}/1 of {parallelism}")
            } else {
                format!("{succeeded}/1")
            }
        }
    };
    let duration = match (
        timestamp(obj, &["status", "startTime"]),
        timestamp(obj, &["status", "completionTime"]),
    ) {
        (None, _) => String::new(),
        (Some(start), None) => human_duration_seconds(seconds_between(start, now)),
        (Some(start), Some(end)) => human_duration_seconds(seconds_between(start, end)),
    };
    let conditions = list(obj, &["status", "conditions"]);
    let status = if job_condition_is_true(conditions, "Complete") {
        "Complete"
    } else if job_condition_is_true(conditions, "Failed") {
        "Failed"
    } else if is_set(obj, &["metadata", "deletionTimestamp"]) {
        "Terminating"
    } else if job_condition_is_true(conditions, "Suspended") {
        "Suspended"
    } else if job_condition_is_true(conditions, "FailureTarget") {
        "FailureTarget"
    } else {
        "Running"
    };
    let (names, images) = container_cells(list(obj, &["spec", "template", "spec", "containers"]));
    vec![
        name(obj),
        status.into(),
        completions.into(),
        duration.into(),
        age(obj, now).into(),
        names.into(),
        images.into(),
        format_label_selector(field(obj, &["spec", "selector"])).into(),
    ]
}

fn job_condition_is_true(conditions: &[Value], condition_type: &str) -> bool {
    conditions
        .iter()
        .find(|c| text(c, &["type"]) == condition_type)
        .is_some_and(|c| text(c, &["status"]) == "True")
}

fn cron_job_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    let last_schedule = if is_set(obj, &["status", "lastScheduleTime"]) {
        since(timestamp(obj, &["status", "lastScheduleTime"]), now)
    } else {
        "<none>".to_string()
    };
    let time_zone = opt_text(obj, &["spec", "timeZone"]).unwrap_or("<none>");
    // spec.suspend defaults to false.
    let suspend = if opt_boolean(obj, &["spec", "suspend"]).unwrap_or(false) {
        "True"
    } else {
        "False"
    };
    let (names, images) = container_cells(list(
        obj,
        &[
            "spec",
            "jobTemplate",
            "spec",
            "template",
            "spec",
            "containers",
        ],
    ));
    vec![
        name(obj),
        text(obj, &["spec", "schedule"]).into(),
        time_zone.into(),
        suspend.into(),
        (list(obj, &["status", "active"]).len() as i64).into(),
        last_schedule.into(),
        age(obj, now).into(),
        names.into(),
        images.into(),
        format_label_selector(field(obj, &["spec", "jobTemplate", "spec", "selector"])).into(),
    ]
}

/// Container names and images, each comma-joined.
fn container_cells(containers: &[Value]) -> (String, String) {
    let names: Vec<&str> = containers.iter().map(|c| text(c, &["name"])).collect();
    let images: Vec<&str> = containers.iter().map(|c| text(c, &["image"])).collect();
    (names.join(","), images.join(","))
}

// --- networking ------------------------------------------------------------------------------

fn service_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    // spec.type defaults to ClusterIP.
    let service_type = non_empty_or(text(obj, &["spec", "type"]), "ClusterIP");
    // Upstream's conversion makes clusterIP authoritative over clusterIPs[0].
    let mut cluster_ip = text(obj, &["spec", "clusterIP"]);
    if cluster_ip.is_empty() {
        cluster_ip = list(obj, &["spec", "clusterIPs"])
            .first()
            .and_then(Value::as_str)
            .unwrap_or("");
    }
    let ports = service_ports(list(obj, &["spec", "ports"]));
    vec![
        name(obj),
        service_type.into(),
        non_empty_or(cluster_ip, "<none>").into(),
        service_external_ip(obj, service_type).into(),
        non_empty_or(&ports, "<none>").into(),
        age(obj, now).into(),
        format_labels(field(obj, &["spec", "selector"])).into(),
    ]
}

fn service_external_ip(obj: &Value, service_type: &str) -> String {
    let external_ips: Vec<&str> = list(obj, &["spec", "externalIPs"])
        .iter()
        .filter_map(Value::as_str)
        .collect();
    match service_type {
        "ClusterIP" | "NodePort" => {
            if external_ips.is_empty() {
                "<none>".to_string()
            } else {
                external_ips.join(",")
            }
        }
        "LoadBalancer" => {
            let ingress = load_balancer_ingress(list(obj, &["status", "loadBalancer", "ingress"]));
            if !external_ips.is_empty() {
                let mut all: Vec<&str> = ingress.iter().map(String::as_str).collect();
                all.extend(external_ips);
                all.join(",")
            } else if !ingress.is_empty() {
                ingress.join(",")
            } else {
                "<pending>".to_string()
            }
        }
        "ExternalName" => text(obj, &["spec", "externalName"]).to_string(),
        _ => "<unknown>".to_string(),
    }
}

/// Load-balancer ingress points (IP, else hostname), sorted and de-duplicated. The server renders
/// wide output, so the list is not clipped here.
fn load_balancer_ingress(ingress: &[Value]) -> Vec<String> {
    let mut points = BTreeSet::new();
    for point in ingress {
        let ip = text(point, &["ip"]);
        let hostname = text(point, &["hostname"]);
        if !ip.is_empty() {
            points.insert(ip.to_string());
        } else if !hostname.is_empty() {
            points.insert(hostname.to_string());
        }
    }
    points.into_iter().collect()
}

/// "80/TCP,443:30443/TCP".
fn service_ports(ports: &[Value]) -> String {
    let pieces: Vec<String> = ports
        .iter()
        .map(|p| {
            let port = integer(p, &["port"]);
            let protocol = non_empty_or(text(p, &["protocol"]), "TCP");
            let node_port = integer(p, &["nodePort"]);
            if node_port > 0 {
                format!("{port}:{node_port}/{protocol}")
            } else {
                format!("{port}/{protocol}")
            }
        })
        .collect();
    pieces.join(",")
}

fn endpoints_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    vec![
        name(obj),
        format_endpoints(list(obj, &["subsets"])).into(),
        age(obj, now).into(),
    ]
}

/// Up to three "ip:port" pairs, then "+ N more...".
fn format_endpoints(subsets: &[Value]) -> String {
    if subsets.is_empty() {
        return "<none>".to_string();
    }
    const MAX: usize = 3;
    let mut shown: Vec<String> = Vec::new();
    let mut more = false;
    let mut count = 0usize;
    for subset in subsets {
        let addresses = list(subset, &["addresses"]);
        let ports = list(subset, &["ports"]);
        if ports.is_empty() {
            // Headless services may have no ports.
            count += addresses.len();
            for address in addresses {
                if shown.len() == MAX {
                    more = true;
                    break;
                }
                shown.push(text(address, &["ip"]).to_string());
            }
            continue;
        }
        for port in ports {
            count += addresses.len();
            for address in addresses {
                if shown.len() == MAX {
                    more = true;
                    break;
                }
                shown.push(join_host_port(
                    text(address, &["ip"]),
                    integer(port, &["port"]),
                ));
            }
        }
    }
    let joined = shown.join(",");
    if more {
        format!("{joined} + {} more...", count.saturating_sub(MAX))
    } else {
        joined
    }
}

/// IPv6 addresses get brackets, as Go's net.JoinHostPort does.
fn join_host_port(host: &str, port: i64) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

fn endpoint_slice_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    const MAX: usize = 3;
    let mut ports_shown: Vec<String> = Vec::new();
    let ports = list(obj, &["ports"]);
    for port in ports.iter().take(MAX) {
        let shown = if let Some(number) = opt_integer(port, &["port"]) {
            number.to_string()
        } else if let Some(port_name) = opt_text(port, &["name"]) {
            port_name.to_string()
        } else {
            "*".to_string()
        };
        ports_shown.push(shown);
    }
    let mut addresses: Vec<&str> = Vec::new();
    let mut address_count = 0usize;
    for endpoint in list(obj, &["endpoints"]) {
        for address in list(endpoint, &["addresses"]) {
            if addresses.len() < MAX {
                addresses.push(address.as_str().unwrap_or(""));
            }
            address_count += 1;
        }
    }
    vec![
        name(obj),
        text(obj, &["addressType"]).into(),
        list_with_more(
            &ports_shown.iter().map(String::as_str).collect::<Vec<_>>(),
            ports.len(),
            MAX,
        )
        .into(),
        list_with_more(&addresses, address_count, MAX).into(),
        age(obj, now).into(),
    ]
}

/// "a,b,c + 2 more...", or "<unset>" when empty.
fn list_with_more(shown: &[&str], total: usize, max: usize) -> String {
    let joined = shown.join(",");
    if total > max {
        return format!("{joined} + {} more...", total - max);
    }
    if joined.is_empty() {
        return "<unset>".to_string();
    }
    joined
}

fn ingress_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    let class = opt_text(obj, &["spec", "ingressClassName"]).unwrap_or("<none>");
    let ports = if list(obj, &["spec", "tls"]).is_empty() {
        "80"
    } else {
        "80, 443"
    };
    let address =
        load_balancer_ingress(list(obj, &["status", "loadBalancer", "ingress"])).join(",");
    vec![
        name(obj),
        class.into(),
        ingress_hosts(list(obj, &["spec", "rules"])).into(),
        address.into(),
        ports.into(),
        age(obj, now).into(),
    ]
}

/// Up to three rule hosts ("*" when none has one), then "+ N more...".
fn ingress_hosts(rules: &[Value]) -> String {
    const MAX: usize = 3;
    let mut hosts: Vec<&str> = Vec::new();
    let mut more = false;
    for rule in rules {
        if hosts.len() == MAX {
            more = true;
        }
        let host = text(rule, &["host"]);
        if !more && !host.is_empty() {
            hosts.push(host);
        }
    }
    if hosts.is_empty() {
        return "*".to_string();
    }
    let joined = hosts.join(",");
    if more {
        format!("{joined} + {} more...", rules.len().saturating_sub(MAX))
    } else {
        joined
    }
}

fn ingress_class_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    let parameters = match field(obj, &["spec", "parameters"]).filter(|p| !p.is_null()) {
        None => "<none>".to_string(),
        Some(p) => {
            let mut kind = text(p, &["kind"]).to_string();
            if let Some(api_group) = opt_text(p, &["apiGroup"]) {
                kind = format!("{kind}.{api_group}");
            }
            format!("{kind}/{}", text(p, &["name"]))
        }
    };
    vec![
        name(obj),
        text(obj, &["spec", "controller"]).into(),
        parameters.into(),
        age(obj, now).into(),
    ]
}

fn network_policy_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    // podSelector is not a pointer upstream: missing means empty, which selects everything.
    let pod_selector = field(obj, &["spec", "podSelector"])
        .filter(|s| !s.is_null())
        .cloned()
        .unwrap_or_else(|| json!({}));
    vec![
        name(obj),
        format_label_selector(Some(&pod_selector)).into(),
        age(obj, now).into(),
    ]
}

// --- cluster ---------------------------------------------------------------------------------

fn node_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    // The last Ready condition wins, as upstream builds a map keyed by type.
    let ready = list(obj, &["status", "conditions"])
        .iter()
        .rev()
        .find(|c| text(c, &["type"]) == "Ready");
    let mut status = vec![match ready {
        Some(c) if text(c, &["status"]) == "True" => "Ready",
        Some(_) => "NotReady",
        None => "Unknown",
    }];
    if boolean(obj, &["spec", "unschedulable"]) {
        status.push("SchedulingDisabled");
    }

    let roles = node_roles(obj);
    let node_info =
        |key: &str| non_empty_or(text(obj, &["status", "nodeInfo", key]), "<unknown>").to_string();
    vec![
        name(obj),
        status.join(",").into(),
        non_empty_or(&roles.join(","), "<none>").into(),
        age(obj, now).into(),
        text(obj, &["status", "nodeInfo", "kubeletVersion"]).into(),
        node_address(obj, "InternalIP").into(),
        node_address(obj, "ExternalIP").into(),
        node_info("osImage").into(),
        node_info("kernelVersion").into(),
        node_info("containerRuntimeVersion").into(),
    ]
}

/// Roles from `node-role.kubernetes.io/<role>` label keys and the older `kubernetes.io/role=<role>`.
fn node_roles(obj: &Value) -> Vec<String> {
    let mut roles = BTreeSet::new();
    if let Some(labels) = field(obj, &["metadata", "labels"]).and_then(Value::as_object) {
        for (key, value) in labels {
            if let Some(role) = key.strip_prefix("node-role.kubernetes.io/") {
                if !role.is_empty() {
                    roles.insert(role.to_string());
                }
            } else if key == "kubernetes.io/role" {
                let role = value.as_str().unwrap_or("");
                if !role.is_empty() {
                    roles.insert(role.to_string());
                }
            }
        }
    }
    roles.into_iter().collect()
}

fn node_address(obj: &Value, address_type: &str) -> String {
    list(obj, &["status", "addresses"])
        .iter()
        .find(|a| text(a, &["type"]) == address_type)
        .map(|a| text(a, &["address"]).to_string())
        .unwrap_or_else(|| "<none>".to_string())
}

fn namespace_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    // Upstream sets the phase to Active on create; a missing phase means the same.
    let phase = non_empty_or(text(obj, &["status", "phase"]), "Active");
    vec![name(obj), phase.into(), age(obj, now).into()]
}

/// Where the fields upstream's event printer reads live in each event API.
struct EventFields {
    first_timestamp: &'static str,
    last_timestamp: &'static str,
    count: &'static str,
    involved_object: &'static str,
    source: &'static str,
    reporting_controller: &'static str,
    message: &'static str,
}

const CORE_EVENT_FIELDS: EventFields = EventFields {
    first_timestamp: "firstTimestamp",
    last_timestamp: "lastTimestamp",
    count: "count",
    involved_object: "involvedObject",
    source: "source",
    reporting_controller: "reportingComponent",
    message: "message",
};

const EVENTS_V1_EVENT_FIELDS: EventFields = EventFields {
    first_timestamp: "deprecatedFirstTimestamp",
    last_timestamp: "deprecatedLastTimestamp",
    count: "deprecatedCount",
    involved_object: "regarding",
    source: "deprecatedSource",
    reporting_controller: "reportingController",
    message: "note",
};

fn event_cells(obj: &Value, now: Timestamp, fields: &EventFields) -> Vec<Value> {
    // Events from the newer API have only eventTime; series replace count and lastTimestamp.
    let first_seen = match timestamp(obj, &[fields.first_timestamp]) {
        Some(first) => since(Some(first), now),
        None => since(timestamp(obj, &["eventTime"]), now),
    };
    let mut last_seen = match timestamp(obj, &[fields.last_timestamp]) {
        Some(last) => since(Some(last), now),
        None => first_seen.clone(),
    };
    let mut count = integer(obj, &[fields.count]);
    if is_set(obj, &["series"]) {
        last_seen = since(timestamp(obj, &["series", "lastObservedTime"]), now);
        count = integer(obj, &["series", "count"]);
    } else if count == 0 {
        // Singleton events have no count in the new API.
        count = 1;
    }

    let kind = text(obj, &[fields.involved_object, "kind"]).to_lowercase();
    let object_name = text(obj, &[fields.involved_object, "name"]);
    let target = if object_name.is_empty() {
        kind
    } else {
        format!("{kind}/{object_name}")
    };

    let component = non_empty_or(
        text(obj, &[fields.source, "component"]),
        text(obj, &[fields.reporting_controller]),
    );
    let host = non_empty_or(
        text(obj, &[fields.source, "host"]),
        text(obj, &["reportingInstance"]),
    );
    let source = if host.is_empty() {
        component.to_string()
    } else {
        format!("{component}, {host}")
    };

    vec![
        last_seen.into(),
        text(obj, &["type"]).into(),
        text(obj, &["reason"]).into(),
        target.into(),
        text(obj, &[fields.involved_object, "fieldPath"]).into(),
        source.into(),
        text(obj, &[fields.message]).trim().into(),
        first_seen.into(),
        count.into(),
        name(obj),
    ]
}

// --- configuration ---------------------------------------------------------------------------

fn config_map_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    let entries = map_len(obj, &["data"]) + map_len(obj, &["binaryData"]);
    vec![name(obj), (entries as i64).into(), age(obj, now).into()]
}

fn secret_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    // type defaults to Opaque.
    let secret_type = non_empty_or(text(obj, &["type"]), "Opaque");
    vec![
        name(obj),
        secret_type.into(),
        (map_len(obj, &["data"]) as i64).into(),
        age(obj, now).into(),
    ]
}

fn service_account_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    vec![
        name(obj),
        (list(obj, &["secrets"]).len() as i64).into(),
        age(obj, now).into(),
    ]
}

fn resource_quota_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    let mut resources: Vec<&String> = field(obj, &["status", "hard"])
        .and_then(Value::as_object)
        .map(|m| m.keys().collect())
        .unwrap_or_default();
    resources.sort();
    let mut requests: Vec<String> = Vec::new();
    let mut limits: Vec<String> = Vec::new();
    for resource in resources {
        let used = quantity(field(obj, &["status", "used", resource.as_str()]));
        let hard = quantity(field(obj, &["status", "hard", resource.as_str()]));
        let entry = format!("{resource}: {used}/{hard}");
        // "limits.cpu" and the like go to the Limit column, everything else to Request.
        if resource.split('.').count() > 1 && resource.starts_with("limits.") {
            limits.push(entry);
        } else {
            requests.push(entry);
        }
    }
    vec![
        name(obj),
        age(obj, now).into(),
        requests.join(", ").into(),
        limits.join(", ").into(),
    ]
}

/// A stored quantity as text; a missing one reads as zero.
fn quantity(v: Option<&Value>) -> String {
    match v {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => "0".to_string(),
    }
}

fn horizontal_pod_autoscaler_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    let reference = format!(
        "{}/{}",
        text(obj, &["spec", "scaleTargetRef", "kind"]),
        text(obj, &["spec", "scaleTargetRef", "name"])
    );
    // minReplicas defaults to 1.
    let min_pods = opt_integer(obj, &["spec", "minReplicas"]).unwrap_or(1);
    vec![
        name(obj),
        reference.into(),
        hpa_targets(obj).into(),
        min_pods.to_string().into(),
        integer(obj, &["spec", "maxReplicas"]).into(),
        integer(obj, &["status", "currentReplicas"]).into(),
        age(obj, now).into(),
    ]
}

/// "cpu: 40%/80%, memory: 1Gi/2Gi + 1 more...": current/target for each metric.
fn hpa_targets(obj: &Value) -> String {
    let specs = list(obj, &["spec", "metrics"]);
    let statuses = list(obj, &["status", "currentMetrics"]);
    if specs.is_empty() {
        // autoscaling/v1 shape: only a CPU utilization target (defaulted to 80%).
        if is_set(obj, &["spec", "targetCPUUtilizationPercentage"])
            || text(obj, &["apiVersion"]) == "autoscaling/v1"
        {
            let target =
                opt_integer(obj, &["spec", "targetCPUUtilizationPercentage"]).unwrap_or(80);
            let current = opt_integer(obj, &["status", "currentCPUUtilizationPercentage"])
                .map(|c| format!("{c}%"))
                .unwrap_or_else(|| "<unknown>".to_string());
            return format!("cpu: {current}/{target}%");
        }
        // autoscaling/v2 defaulting adds a CPU 80% utilization metric when none is given.
        let current = statuses
            .first()
            .and_then(|s| opt_integer(s, &["resource", "current", "averageUtilization"]))
            .map(|c| format!("{c}%"))
            .unwrap_or_else(|| "<unknown>".to_string());
        return format!("cpu: {current}/80%");
    }

    const MAX: usize = 2;
    let mut shown: Vec<String> = Vec::new();
    for (i, spec) in specs.iter().enumerate() {
        let status = statuses.get(i);
        shown.push(hpa_metric(spec, status));
    }
    let count = shown.len();
    let more = count > MAX;
    shown.truncate(MAX);
    let joined = shown.join(", ");
    if more {
        format!("{joined} + {} more...", count - MAX)
    } else {
        joined
    }
}

fn hpa_metric(spec: &Value, status: Option<&Value>) -> String {
    // The current value from the status entry at the same index, when that entry is about the same
    // metric source and has the value.
    let current = |source: &str, value: &str| -> String {
        status
            .and_then(|s| field(s, &[source, "current", value]))
            .filter(|v| !v.is_null())
            .map(|v| quantity(Some(v)))
            .unwrap_or_else(|| "<unknown>".to_string())
    };
    match text(spec, &["type"]) {
        source_type @ ("Object" | "External") => {
            let source = if source_type == "Object" {
                "object"
            } else {
                "external"
            };
            match field(spec, &[source, "target", "averageValue"]).filter(|v| !v.is_null()) {
                Some(average) => format!(
                    "{}/{} (avg)",
                    current(source, "averageValue"),
                    quantity(Some(average))
                ),
                None => format!(
                    "{}/{}",
                    current(source, "value"),
                    quantity(field(spec, &[source, "target", "value"]))
                ),
            }
        }
        "Pods" => format!(
            "{}/{}",
            current("pods", "averageValue"),
            quantity(field(spec, &["pods", "target", "averageValue"]))
        ),
        source_type @ ("Resource" | "ContainerResource") => {
            let source = if source_type == "Resource" {
                "resource"
            } else {
                "containerResource"
            };
            let resource_name = text(spec, &[source, "name"]);
            if let Some(average) =
                field(spec, &[source, "target", "averageValue"]).filter(|v| !v.is_null())
            {
                return format!(
                    "{resource_name}: {}/{}",
                    current(source, "averageValue"),
                    quantity(Some(average))
                );
            }
            let current = status
                .and_then(|s| opt_integer(s, &[source, "current", "averageUtilization"]))
                .map(|c| format!("{c}%"))
                .unwrap_or_else(|| "<unknown>".to_string());
            let target = opt_integer(spec, &[source, "target", "averageUtilization"])
                .map(|t| format!("{t}%"))
                .unwrap_or_else(|| "<auto>".to_string());
            format!("{resource_name}: {current}/{target}")
        }
        _ => "<unknown type>".to_string(),
    }
}

fn lease_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    vec![
        name(obj),
        text(obj, &["spec", "holderIdentity"]).into(),
        age(obj, now).into(),
    ]
}

fn priority_class_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    // preemptionPolicy defaults to PreemptLowerPriority.
    let preemption = non_empty_or(text(obj, &["preemptionPolicy"]), "PreemptLowerPriority");
    vec![
        name(obj),
        integer(obj, &["value"]).into(),
        boolean(obj, &["globalDefault"]).into(),
        age(obj, now).into(),
        preemption.into(),
    ]
}

fn runtime_class_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    vec![
        name(obj),
        text(obj, &["handler"]).into(),
        age(obj, now).into(),
    ]
}

fn webhook_configuration_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    vec![
        name(obj),
        (list(obj, &["webhooks"]).len() as i64).into(),
        age(obj, now).into(),
    ]
}

fn certificate_signing_request_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    let signer = non_empty_or(text(obj, &["spec", "signerName"]), "<none>");
    let requested_duration = match opt_integer(obj, &["spec", "expirationSeconds"]) {
        Some(seconds) => human_duration_seconds(seconds),
        None => "<none>".to_string(),
    };
    vec![
        name(obj),
        age(obj, now).into(),
        signer.into(),
        text(obj, &["spec", "username"]).into(),
        requested_duration.into(),
        csr_condition(obj).into(),
    ]
}

/// "Approved,Issued", "Denied", "Pending", …: precedence Denied, Approved, Pending.
fn csr_condition(obj: &Value) -> String {
    let conditions = list(obj, &["status", "conditions"]);
    let has = |t: &str| conditions.iter().any(|c| text(c, &["type"]) == t);
    let mut status = if has("Denied") {
        "Denied".to_string()
    } else if has("Approved") {
        "Approved".to_string()
    } else {
        "Pending".to_string()
    };
    if has("Failed") {
        status.push_str(",Failed");
    }
    if !text(obj, &["status", "certificate"]).is_empty() {
        status.push_str(",Issued");
    }
    status
}

fn api_service_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    let service = match field(obj, &["spec", "service"]).filter(|s| !s.is_null()) {
        Some(s) => format!("{}/{}", text(s, &["namespace"]), text(s, &["name"])),
        None => "Local".to_string(),
    };
    let available = match list(obj, &["status", "conditions"])
        .iter()
        .find(|c| text(c, &["type"]) == "Available")
    {
        None => "Unknown".to_string(),
        Some(c) => {
            let status = text(c, &["status"]);
            let reason = text(c, &["reason"]);
            if status == "True" || reason.is_empty() {
                status.to_string()
            } else {
                format!("{status} ({reason})")
            }
        }
    };
    vec![
        name(obj),
        service.into(),
        available.into(),
        age(obj, now).into(),
    ]
}

// --- storage ---------------------------------------------------------------------------------

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

fn csi_node_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    vec![
        name(obj),
        (list(obj, &["spec", "drivers"]).len() as i64).into(),
        age(obj, now).into(),
    ]
}

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

// --- rbac and defaults -----------------------------------------------------------------------

fn role_binding_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    let role = format!(
        "{}/{}",
        text(obj, &["roleRef", "kind"]),
        text(obj, &["roleRef", "name"])
    );
    let mut users: Vec<String> = Vec::new();
    let mut groups: Vec<String> = Vec::new();
    let mut service_accounts: Vec<String> = Vec::new();
    for subject in list(obj, &["subjects"]) {
        let subject_name = text(subject, &["name"]);
        match text(subject, &["kind"]) {
            "ServiceAccount" => {
                service_accounts.push(format!("{}/{subject_name}", text(subject, &["namespace"])))
            }
            "User" => users.push(subject_name.to_string()),
            "Group" => groups.push(subject_name.to_string()),
            _ => {}
        }
    }
    vec![
        name(obj),
        role.into(),
        age(obj, now).into(),
        users.join(", ").into(),
        groups.join(", ").into(),
        service_accounts.join(", ").into(),
    ]
}

/// Upstream's generic convertor: the creation time as RFC 3339 in UTC, Go's zero time when unset.
fn builtin_default_cells(obj: &Value) -> Vec<Value> {
    let created = match timestamp(obj, &["metadata", "creationTimestamp"]) {
        // Whole seconds, as Go's RFC 3339 layout; Display cannot fail where strftime could.
        Some(ts) => Timestamp::from_second(ts.as_second())
            .unwrap_or(ts)
            .to_string(),
        None => "0001-01-01T00:00:00Z".to_string(),
    };
    vec![name(obj), created.into()]
}

// ---------------------------------------------------------------------------------------------
// Label formatting (labels.FormatLabels, metav1.FormatLabelSelector)
// ---------------------------------------------------------------------------------------------

/// A plain label map as "a=1,b=2" (keys sorted), or "<none>".
fn format_labels(labels: Option<&Value>) -> String {
    let mut pairs: Vec<(&String, &str)> = labels
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k, v.as_str().unwrap_or("")))
                .collect()
        })
        .unwrap_or_default();
    pairs.sort();
    let joined: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect();
    non_empty_or(&joined.join(","), "<none>").to_string()
}

/// A LabelSelector as "app=web,tier in (a,b)", "<none>" when it selects everything or is unset,
/// "<error>" when invalid.
fn format_label_selector(selector: Option<&Value>) -> String {
    match label_selector_string(selector) {
        Ok(s) if s.is_empty() => "<none>".to_string(),
        Ok(s) => s,
        Err(()) => "<error>".to_string(),
    }
}

/// The selector's canonical text: requirements sorted by key, values sorted. Unset and empty
/// selectors both give "".
fn label_selector_string(selector: Option<&Value>) -> Result<String, ()> {
    let Some(selector) = selector.filter(|s| !s.is_null()) else {
        return Ok(String::new());
    };
    let mut requirements: Vec<(String, String)> = Vec::new();
    if let Some(match_labels) = field(selector, &["matchLabels"]).and_then(Value::as_object) {
        for (key, value) in match_labels {
            requirements.push((
                key.clone(),
                format!("{key}={}", value.as_str().unwrap_or("")),
            ));
        }
    }
    for expression in list(selector, &["matchExpressions"]) {
        let key = text(expression, &["key"]);
        let mut values: Vec<&str> = list(expression, &["values"])
            .iter()
            .filter_map(Value::as_str)
            .collect();
        values.sort();
        let requirement = match text(expression, &["operator"]) {
            "In" | "NotIn" if values.is_empty() => return Err(()),
            "In" => format!("{key} in ({})", values.join(",")),
            "NotIn" => format!("{key} notin ({})", values.join(",")),
            "Exists" | "DoesNotExist" if !values.is_empty() => return Err(()),
            "Exists" => key.to_string(),
            "DoesNotExist" => format!("!{key}"),
            _ => return Err(()),
        };
        requirements.push((key.to_string(), requirement));
    }
    // Stable, so requirements on the same key keep their order.
    requirements.sort_by(|a, b| a.0.cmp(&b.0));
    let texts: Vec<String> = requirements.into_iter().map(|(_, r)| r).collect();
    Ok(texts.join(","))
}

// ---------------------------------------------------------------------------------------------
// JSON access: missing or mistyped fields read as empty, never panic
// ---------------------------------------------------------------------------------------------

fn field<'a>(v: &'a Value, path: &[&str]) -> Option<&'a Value> {
    let mut current = v;
    for key in path {
        current = current.as_object()?.get(*key)?;
    }
    Some(current)
}

/// A string field, "" when missing.
fn text<'a>(v: &'a Value, path: &[&str]) -> &'a str {
    field(v, path).and_then(Value::as_str).unwrap_or("")
}

/// A string field that is present (like a non-nil `*string` upstream), even if empty.
fn opt_text<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    field(v, path).and_then(Value::as_str)
}

fn opt_integer(v: &Value, path: &[&str]) -> Option<i64> {
    let value = field(v, path)?;
    value
        .as_i64()
        .or_else(|| value.as_u64().map(|u| i64::try_from(u).unwrap_or(i64::MAX)))
        .or_else(|| value.as_f64().map(|f| f as i64))
}

fn integer(v: &Value, path: &[&str]) -> i64 {
    opt_integer(v, path).unwrap_or(0)
}

fn opt_boolean(v: &Value, path: &[&str]) -> Option<bool> {
    field(v, path).and_then(Value::as_bool)
}

fn boolean(v: &Value, path: &[&str]) -> bool {
    opt_boolean(v, path).unwrap_or(false)
}

/// An array field, empty when missing.
fn list<'a>(v: &'a Value, path: &[&str]) -> &'a [Value] {
    field(v, path)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

fn map_len(v: &Value, path: &[&str]) -> usize {
    field(v, path)
        .and_then(Value::as_object)
        .map(Map::len)
        .unwrap_or(0)
}

/// Present and not null: a non-nil pointer upstream.
fn is_set(v: &Value, path: &[&str]) -> bool {
    field(v, path).is_some_and(|x| !x.is_null())
}

fn annotation<'a>(obj: &'a Value, key: &str) -> Option<&'a str> {
    opt_text(obj, &["metadata", "annotations", key])
}

fn name(obj: &Value) -> Value {
    text(obj, &["metadata", "name"]).into()
}

fn non_empty_or<'a>(s: &'a str, fallback: &'a str) -> &'a str {
    if s.is_empty() {
        fallback
    } else {
        s
    }
}

fn int_or_string(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) => Some(s.clone()),
        _ => None,
    }
}

// ---------------------------------------------------------------------------------------------
// Time
// ---------------------------------------------------------------------------------------------

/// A timestamp field; unset, unparseable and Go's zero time all read as None ("<unknown>").
fn timestamp(v: &Value, path: &[&str]) -> Option<Timestamp> {
    let ts: Timestamp = text(v, path).parse().ok()?;
    // Go's zero time.Time, 0001-01-01T00:00:00Z, is what a zero metav1.Time serializes as.
    if ts.as_second() == -62_135_596_800 && ts.subsec_nanosecond() == 0 {
        return None;
    }
    Some(ts)
}

fn latest(a: Option<Timestamp>, b: Option<Timestamp>) -> Option<Timestamp> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, None) => a,
        (None, b) => b,
    }
}

/// Whole seconds from `start` to `end`, truncated toward zero as Go's int(d.Seconds()) does.
fn seconds_between(start: Timestamp, end: Timestamp) -> i64 {
    let nanos = end.as_nanosecond() - start.as_nanosecond();
    i64::try_from(nanos / 1_000_000_000).unwrap_or(if nanos < 0 { i64::MIN } else { i64::MAX })
}

/// Upstream's translateTimestampSince: "<unknown>" for an unset time.
fn since(ts: Option<Timestamp>, now: Timestamp) -> String {
    match ts {
        Some(ts) => human_duration_seconds(seconds_between(ts, now)),
        None => "<unknown>".to_string(),
    }
}

fn age(obj: &Value, now: Timestamp) -> String {
    since(timestamp(obj, &["metadata", "creationTimestamp"]), now)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> Timestamp {
        "2025-01-10T12:00:00Z".parse().unwrap()
    }

    /// `now` minus that many seconds, as a Kubernetes timestamp.
    fn ago(seconds: i64) -> String {
        let ts = Timestamp::from_second(now().as_second() - seconds).unwrap();
        ts.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
    }

    fn cells_of(group: &str, resource: &str, object: &Value) -> Vec<Value> {
        row(group, resource, object, IncludeObject::None, now())["cells"]
            .as_array()
            .unwrap()
            .clone()
    }

    fn column_names(group: &str, resource: &str) -> Vec<String> {
        column_definitions(group, resource)
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap().to_string())
            .collect()
    }

    #[test]
    fn human_duration_matches_upstream() {
        let cases: &[(u64, &str)] = &[
            (0, "0s"),
            (1, "1s"),
            (45, "45s"),
            (119, "119s"),
            (120, "2m"),
            (200, "3m20s"),
            (599, "9m59s"),
            (600, "10m"),
            (125 * 60, "125m"),
            (179 * 60 + 59, "179m"),
            (3 * 3600, "3h"),
            (3 * 3600 + 5 * 60, "3h5m"),
            (7 * 3600 + 59 * 60, "7h59m"),
            (8 * 3600, "8h"),
            (47 * 3600, "47h"),
            (48 * 3600, "2d"),
            (3 * 86400 + 4 * 3600, "3d4h"),
            (7 * 86400 + 23 * 3600, "7d23h"),
            (8 * 86400, "8d"),
            (400 * 86400, "400d"),
            (729 * 86400, "729d"),
            (730 * 86400, "2y"),
            (770 * 86400, "2y40d"),
            (365 * 8 * 86400, "8y"),
            (365 * 10 * 86400 + 100 * 86400, "10y"),
        ];
        for (seconds, want) in cases {
            assert_eq!(
                human_duration(Duration::from_secs(*seconds)),
                *want,
                "{seconds}s"
            );
        }
        // Sub-second parts are dropped, like Go's int(d.Seconds()).
        assert_eq!(human_duration(Duration::from_millis(1999)), "1s");
        // Clock skew: slightly in the future is "0s", further is "<invalid>".
        assert_eq!(human_duration_seconds(-1), "0s");
        assert_eq!(human_duration_seconds(-2), "<invalid>");
    }

    #[test]
    fn age_is_unknown_without_creation_timestamp() {
        let cells = cells_of("", "configmaps", &json!({"metadata": {"name": "c"}}));
        assert_eq!(cells[2], json!("<unknown>"));
        let cells = cells_of(
            "",
            "configmaps",
            &json!({"metadata": {"name": "c", "creationTimestamp": null}}),
        );
        assert_eq!(cells[2], json!("<unknown>"));
    }

    fn running_pod() -> Value {
        json!({
            "metadata": {"name": "web-1", "namespace": "default", "creationTimestamp": ago(300)},
            "spec": {"nodeName": "node-a", "containers": [{"name": "app", "image": "nginx"}, {"name": "sidecar", "image": "envoy"}]},
            "status": {
                "phase": "Running",
                "podIP": "10.0.0.5",
                "podIPs": [{"ip": "10.0.0.5"}],
                "conditions": [{"type": "Ready", "status": "True"}],
                "containerStatuses": [
                    {"name": "app", "ready": true, "restartCount": 0, "state": {"running": {"startedAt": ago(290)}}},
                    {"name": "sidecar", "ready": true, "restartCount": 0, "state": {"running": {"startedAt": ago(290)}}}
                ]
            }
        })
    }

    #[test]
    fn pod_running() {
        let cells = cells_of("", "pods", &running_pod());
        assert_eq!(
            cells,
            vec![
                json!("web-1"),
                json!("2/2"),
                json!("Running"),
                json!("0"),
                json!("5m"),
                json!("10.0.0.5"),
                json!("node-a"),
                json!("<none>"),
                json!("<none>")
            ]
        );
    }

    #[test]
    fn pod_pending_container_creating() {
        let pod = json!({
            "metadata": {"name": "p", "creationTimestamp": ago(5)},
            "spec": {"containers": [{"name": "app", "image": "nginx"}]},
            "status": {
                "phase": "Pending",
                "containerStatuses": [
                    {"name": "app", "ready": false, "restartCount": 0, "state": {"waiting": {"reason": "ContainerCreating"}}}
                ]
            }
        });
        let cells = cells_of("", "pods", &pod);
        assert_eq!(cells[1], json!("0/1"));
        assert_eq!(cells[2], json!("ContainerCreating"));
        assert_eq!(cells[3], json!("0"));
        assert_eq!(cells[4], json!("5s"));
        assert_eq!(cells[5], json!("<none>"));
        assert_eq!(cells[6], json!("<none>"));
    }

    #[test]
    fn pod_crash_loop_with_restarts() {
        let pod = json!({
            "metadata": {"name": "p", "creationTimestamp": ago(3600)},
            "spec": {"containers": [{"name": "app", "image": "busybox"}]},
            "status": {
                "phase": "Running",
                "containerStatuses": [{
                    "name": "app", "ready": false, "restartCount": 3,
                    "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off"}},
                    "lastState": {"terminated": {"exitCode": 1, "reason": "Error", "finishedAt": ago(300)}}
                }]
            }
        });
        let cells = cells_of("", "pods", &pod);
        assert_eq!(cells[1], json!("0/1"));
        assert_eq!(cells[2], json!("CrashLoopBackOff"));
        assert_eq!(cells[3], json!("3 (5m ago)"));
        assert_eq!(cells[4], json!("60m"));
    }

    #[test]
    fn pod_image_pull_error_and_terminated_reasons() {
        let mut pod = json!({
            "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "app"}]},
            "status": {"phase": "Pending", "containerStatuses": [{"name": "app", "state": {"waiting": {"reason": "ErrImagePull"}}}]}
        });
        assert_eq!(cells_of("", "pods", &pod)[2], json!("ErrImagePull"));
        pod["status"]["containerStatuses"][0]["state"] =
            json!({"terminated": {"exitCode": 137, "reason": "OOMKilled"}});
        assert_eq!(cells_of("", "pods", &pod)[2], json!("OOMKilled"));
        pod["status"]["containerStatuses"][0]["state"] = json!({"terminated": {"exitCode": 2}});
        assert_eq!(cells_of("", "pods", &pod)[2], json!("ExitCode:2"));
        pod["status"]["containerStatuses"][0]["state"] =
            json!({"terminated": {"exitCode": 0, "signal": 9}});
        assert_eq!(cells_of("", "pods", &pod)[2], json!("Signal:9"));
    }

    #[test]
    fn pod_terminating() {
        let mut pod = running_pod();
        pod["metadata"]["deletionTimestamp"] = json!(ago(1));
        assert_eq!(cells_of("", "pods", &pod)[2], json!("Terminating"));
        pod["status"]["reason"] = json!("NodeLost");
        assert_eq!(cells_of("", "pods", &pod)[2], json!("Unknown"));
    }

    #[test]
    fn pod_completed() {
        let pod = json!({
            "metadata": {"name": "job-x", "creationTimestamp": ago(600), "deletionTimestamp": ago(1)},
            "spec": {"containers": [{"name": "main"}]},
            "status": {
                "phase": "Succeeded",
                "containerStatuses": [{"name": "main", "ready": false, "restartCount": 0,
                    "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}]
            }
        });
        let r = row("", "pods", &pod, IncludeObject::None, now());
        // A terminal pod being deleted keeps its final status.
        assert_eq!(r["cells"][1], json!("0/1"));
        assert_eq!(r["cells"][2], json!("Completed"));
        assert_eq!(r["conditions"][0]["type"], json!("Completed"));
        assert_eq!(r["conditions"][0]["reason"], json!("Succeeded"));
    }

    #[test]
    fn pod_completed_container_but_another_running() {
        let pod = json!({
            "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "a"}, {"name": "b"}]},
            "status": {
                "phase": "Running",
                "conditions": [{"type": "Ready", "status": "False"}],
                "containerStatuses": [
                    {"name": "a", "ready": false, "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}},
                    {"name": "b", "ready": true, "state": {"running": {}}}
                ]
            }
        });
        assert_eq!(cells_of("", "pods", &pod)[2], json!("NotReady"));
    }

    #[test]
    fn pod_init_containers() {
        let mut pod = json!({
            "metadata": {"name": "p"},
            "spec": {"initContainers": [{"name": "init"}], "containers": [{"name": "app"}]},
            "status": {
                "phase": "Pending",
                "initContainerStatuses": [{"name": "init", "ready": false, "restartCount": 0, "state": {"running": {}}}],
                "containerStatuses": [{"name": "app", "state": {"waiting": {"reason": "PodInitializing"}}}]
            }
        });
        assert_eq!(cells_of("", "pods", &pod)[2], json!("Init:0/1"));
        pod["status"]["initContainerStatuses"][0]["state"] =
            json!({"waiting": {"reason": "CrashLoopBackOff"}});
        assert_eq!(
            cells_of("", "pods", &pod)[2],
            json!("Init:CrashLoopBackOff")
        );
        pod["status"]["initContainerStatuses"][0]["state"] =
            json!({"terminated": {"exitCode": 1, "reason": "Error"}});
        assert_eq!(cells_of("", "pods", &pod)[2], json!("Init:Error"));
        pod["status"]["initContainerStatuses"][0]["state"] = json!({"terminated": {"exitCode": 3}});
        assert_eq!(cells_of("", "pods", &pod)[2], json!("Init:ExitCode:3"));
        // Done: the app container's state decides.
        pod["status"]["initContainerStatuses"][0]["state"] =
            json!({"terminated": {"exitCode": 0, "reason": "Completed"}});
        assert_eq!(cells_of("", "pods", &pod)[2], json!("PodInitializing"));
    }

    #[test]
    fn pod_sidecar_counts_as_container() {
        let pod = json!({
            "metadata": {"name": "p"},
            "spec": {"initContainers": [{"name": "proxy", "restartPolicy": "Always"}], "containers": [{"name": "app"}]},
            "status": {
                "phase": "Running",
                "conditions": [{"type": "Initialized", "status": "True"}, {"type": "Ready", "status": "True"}],
                "initContainerStatuses": [{"name": "proxy", "started": true, "ready": true, "restartCount": 2, "state": {"running": {}}}],
                "containerStatuses": [{"name": "app", "ready": true, "restartCount": 1, "state": {"running": {}}}]
            }
        });
        let cells = cells_of("", "pods", &pod);
        assert_eq!(cells[1], json!("2/2"));
        assert_eq!(cells[2], json!("Running"));
        assert_eq!(cells[3], json!("3"));
    }

    #[test]
    fn pod_without_status_does_not_panic() {
        let cells = cells_of("", "pods", &json!({"metadata": {"name": "bare"}}));
        assert_eq!(cells.len(), 9);
        assert_eq!(cells[1], json!("0/0"));
        assert_eq!(cells[2], json!(""));
        assert_eq!(cells[3], json!("0"));
        // Absurd numbers saturate instead of overflowing.
        let huge = json!({"status": {"phase": "Running", "containerStatuses": [
            {"name": "a", "restartCount": i64::MAX}, {"name": "b", "restartCount": i64::MAX}]}});
        assert_eq!(cells_of("", "pods", &huge)[3], json!(i64::MAX.to_string()));
        // Not even an object.
        assert_eq!(cells_of("", "pods", &json!(null)).len(), 9);
        assert_eq!(
            cells_of(
                "",
                "pods",
                &json!({"spec": {"containers": "oops"}, "status": 7})
            )
            .len(),
            9
        );
    }

    #[test]
    fn pod_readiness_gates_and_nominated_node() {
        let mut pod = running_pod();
        pod["spec"]["readinessGates"] =
            json!([{"conditionType": "example.com/lb"}, {"conditionType": "example.com/x"}]);
        pod["status"]["conditions"] = json!([{"type": "Ready", "status": "True"}, {"type": "example.com/lb", "status": "True"}]);
        pod["status"]["nominatedNodeName"] = json!("node-b");
        let cells = cells_of("", "pods", &pod);
        assert_eq!(cells[7], json!("node-b"));
        assert_eq!(cells[8], json!("1/2"));
    }

    #[test]
    fn node_ready_with_roles() {
        let node = json!({
            "metadata": {"name": "cp-1", "creationTimestamp": ago(86400 * 3), "labels": {
                "node-role.kubernetes.io/control-plane": "",
                "node-role.kubernetes.io/etcd": "",
                "kubernetes.io/hostname": "cp-1"
            }},
            "spec": {"unschedulable": true},
            "status": {
                "conditions": [{"type": "MemoryPressure", "status": "False"}, {"type": "Ready", "status": "True"}],
                "addresses": [{"type": "InternalIP", "address": "192.168.1.10"}, {"type": "Hostname", "address": "cp-1"}],
                "nodeInfo": {"kubeletVersion": "v1.32.0", "osImage": "Debian GNU/Linux 12", "kernelVersion": "6.1.0", "containerRuntimeVersion": "containerd://1.7.0"}
            }
        });
        assert_eq!(
            cells_of("", "nodes", &node),
            vec![
                json!("cp-1"),
                json!("Ready,SchedulingDisabled"),
                json!("control-plane,etcd"),
                json!("3d"),
                json!("v1.32.0"),
                json!("192.168.1.10"),
                json!("<none>"),
                json!("Debian GNU/Linux 12"),
                json!("6.1.0"),
                json!("containerd://1.7.0")
            ]
        );
    }

    #[test]
    fn node_not_ready_and_unknown() {
        let node = json!({"metadata": {"name": "n"}, "status": {"conditions": [{"type": "Ready", "status": "Unknown"}]}});
        let cells = cells_of("", "nodes", &node);
        assert_eq!(cells[1], json!("NotReady"));
        assert_eq!(cells[2], json!("<none>"));
        assert_eq!(cells[7], json!("<unknown>"));
        let cells = cells_of(
            "",
            "nodes",
            &json!({"metadata": {"name": "n", "labels": {"kubernetes.io/role": "worker"}}}),
        );
        assert_eq!(cells[1], json!("Unknown"));
        assert_eq!(cells[2], json!("worker"));
    }

    #[test]
    fn services_of_each_type() {
        let cluster_ip = json!({
            "metadata": {"name": "web", "creationTimestamp": ago(60)},
            "spec": {"type": "ClusterIP", "clusterIP": "10.96.0.10", "clusterIPs": ["10.96.0.10"],
                "ports": [{"port": 80, "protocol": "TCP"}, {"port": 53, "protocol": "UDP"}], "selector": {"tier": "web", "app": "x"}}
        });
        assert_eq!(
            cells_of("", "services", &cluster_ip),
            vec![
                json!("web"),
                json!("ClusterIP"),
                json!("10.96.0.10"),
                json!("<none>"),
                json!("80/TCP,53/UDP"),
                json!("60s"),
                json!("app=x,tier=web")
            ]
        );

        let node_port = json!({
            "metadata": {"name": "np"},
            "spec": {"type": "NodePort", "clusterIP": "10.96.0.11", "externalIPs": ["1.2.3.4"],
                "ports": [{"port": 80, "nodePort": 30080, "protocol": "TCP"}, {"port": 443, "protocol": "TCP"}]}
        });
        let cells = cells_of("", "services", &node_port);
        assert_eq!(cells[3], json!("1.2.3.4"));
        assert_eq!(cells[4], json!("80:30080/TCP,443/TCP"));
        assert_eq!(cells[6], json!("<none>"));

        let mut load_balancer = json!({
            "metadata": {"name": "lb"},
            "spec": {"type": "LoadBalancer", "clusterIP": "10.96.0.12", "ports": [{"port": 80, "nodePort": 31000}]}
        });
        assert_eq!(
            cells_of("", "services", &load_balancer)[3],
            json!("<pending>")
        );
        load_balancer["status"] = json!({"loadBalancer": {"ingress": [{"ip": "203.0.113.9"}, {"hostname": "lb.example.com"}, {"ip": "203.0.113.1"}]}});
        assert_eq!(
            cells_of("", "services", &load_balancer)[3],
            json!("203.0.113.1,203.0.113.9,lb.example.com")
        );
        assert_eq!(
            cells_of("", "services", &load_balancer)[4],
            json!("80:31000/TCP")
        );

        let external = json!({"metadata": {"name": "ext"}, "spec": {"type": "ExternalName", "externalName": "db.example.com"}});
        let cells = cells_of("", "services", &external);
        assert_eq!(cells[2], json!("<none>"));
        assert_eq!(cells[3], json!("db.example.com"));
        assert_eq!(cells[4], json!("<none>"));

        let headless = json!({"metadata": {"name": "h"}, "spec": {"clusterIP": "None", "ports": [{"port": 5432}]}});
        let cells = cells_of("", "services", &headless);
        assert_eq!(cells[1], json!("ClusterIP"));
        assert_eq!(cells[2], json!("None"));
        assert_eq!(cells[4], json!("5432/TCP"));
    }

    #[test]
    fn endpoints_and_slices() {
        let endpoints = json!({
            "metadata": {"name": "web"},
            "subsets": [{"addresses": [{"ip": "10.0.0.1"}, {"ip": "10.0.0.2"}, {"ip": "fd00::3"}, {"ip": "10.0.0.4"}],
                         "ports": [{"port": 8080}]}]
        });
        assert_eq!(
            cells_of("", "endpoints", &endpoints)[1],
            json!("10.0.0.1:8080,10.0.0.2:8080,[fd00::3]:8080 + 1 more...")
        );
        assert_eq!(
            cells_of("", "endpoints", &json!({"metadata": {"name": "e"}}))[1],
            json!("<none>")
        );

        let slice = json!({
            "metadata": {"name": "web-abc"},
            "addressType": "IPv4",
            "ports": [{"name": "http", "port": 80}, {"name": "named"}, {}],
            "endpoints": [{"addresses": ["10.0.0.1"]}, {"addresses": ["10.0.0.2"]}]
        });
        let cells = cells_of("discovery.k8s.io", "endpointslices", &slice);
        assert_eq!(cells[1], json!("IPv4"));
        assert_eq!(cells[2], json!("80,named,*"));
        assert_eq!(cells[3], json!("10.0.0.1,10.0.0.2"));
        let empty = cells_of(
            "discovery.k8s.io",
            "endpointslices",
            &json!({"metadata": {"name": "e"}}),
        );
        assert_eq!(empty[2], json!("<unset>"));
        assert_eq!(empty[3], json!("<unset>"));
    }

    #[test]
    fn deployment() {
        let deployment = json!({
            "metadata": {"name": "web", "creationTimestamp": ago(7200)},
            "spec": {
                "replicas": 3,
                "selector": {"matchLabels": {"app": "web"}, "matchExpressions": [{"key": "env", "operator": "In", "values": ["prod", "canary"]}]},
                "template": {"spec": {"containers": [{"name": "app", "image": "nginx:1.27"}, {"name": "log", "image": "fluentbit"}]}}
            },
            "status": {"readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2}
        });
        assert_eq!(
            cells_of("apps", "deployments", &deployment),
            vec![
                json!("web"),
                json!("2/3"),
                json!(3),
                json!(2),
                json!("120m"),
                json!("app,log"),
                json!("nginx:1.27,fluentbit"),
                json!("app=web,env in (canary,prod)")
            ]
        );
        // Fresh object, no status; replicas default to 1.
        let bare = cells_of("apps", "deployments", &json!({"metadata": {"name": "d"}}));
        assert_eq!(bare[1], json!("0/1"));
        assert_eq!(bare[2], json!(0));
        assert_eq!(bare[7], json!(""));
    }

    #[test]
    fn replica_set_daemon_set_stateful_set() {
        let rs = json!({
            "metadata": {"name": "web-5d"},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web", "pod-template-hash": "5d"}},
                     "template": {"spec": {"containers": [{"name": "app", "image": "nginx"}]}}},
            "status": {"replicas": 2, "readyReplicas": 1}
        });
        let cells = cells_of("apps", "replicasets", &rs);
        assert_eq!(cells[1..4], [json!(2), json!(2), json!(1)]);
        assert_eq!(cells[7], json!("app=web,pod-template-hash=5d"));

        let ds = json!({
            "metadata": {"name": "agent"},
            "spec": {"selector": {}, "template": {"spec": {"nodeSelector": {"kubernetes.io/os": "linux"}, "containers": []}}},
            "status": {"desiredNumberScheduled": 3, "currentNumberScheduled": 3, "numberReady": 2, "updatedNumberScheduled": 3, "numberAvailable": 2}
        });
        let cells = cells_of("apps", "daemonsets", &ds);
        assert_eq!(
            cells[1..6],
            [json!(3), json!(3), json!(2), json!(3), json!(2)]
        );
        assert_eq!(cells[6], json!("kubernetes.io/os=linux"));
        assert_eq!(cells[10], json!("<none>"));

        let sts = json!({"metadata": {"name": "db"}, "spec": {"replicas": 3}, "status": {"readyReplicas": 3}});
        assert_eq!(cells_of("apps", "statefulsets", &sts)[1], json!("3/3"));
    }

    #[test]
    fn job_complete() {
        let job = json!({
            "metadata": {"name": "pi", "creationTimestamp": ago(600)},
            "spec": {"completions": 1, "parallelism": 1, "selector": {"matchLabels": {"batch.kubernetes.io/controller-uid": "u1"}},
                     "template": {"spec": {"containers": [{"name": "pi", "image": "perl"}]}}},
            "status": {"succeeded": 1, "startTime": ago(600), "completionTime": ago(555),
                       "conditions": [{"type": "SuccessCriteriaMet", "status": "True"}, {"type": "Complete", "status": "True"}]}
        });
        assert_eq!(
            cells_of("batch", "jobs", &job),
            vec![
                json!("pi"),
                json!("Complete"),
                json!("1/1"),
                json!("45s"),
                json!("10m"),
                json!("pi"),
                json!("perl"),
                json!("batch.kubernetes.io/controller-uid=u1")
            ]
        );
    }

    #[test]
    fn job_states() {
        let mut job = json!({"metadata": {"name": "j"}, "spec": {"parallelism": 3}, "status": {"startTime": ago(90)}});
        let cells = cells_of("batch", "jobs", &job);
        assert_eq!(cells[1], json!("Running"));
        assert_eq!(cells[2], json!("0/1 of 3"));
        assert_eq!(cells[3], json!("90s"));
        job["status"]["conditions"] = json!([{"type": "Suspended", "status": "True"}]);
        assert_eq!(cells_of("batch", "jobs", &job)[1], json!("Suspended"));
        job["metadata"]["deletionTimestamp"] = json!(ago(1));
        assert_eq!(cells_of("batch", "jobs", &job)[1], json!("Terminating"));
        job["status"]["conditions"] = json!([{"type": "Failed", "status": "True"}]);
        assert_eq!(cells_of("batch", "jobs", &job)[1], json!("Failed"));
        let bare = cells_of("batch", "jobs", &json!({"metadata": {"name": "j"}}));
        assert_eq!(bare[2], json!("0/1"));
        assert_eq!(bare[3], json!(""));
    }

    #[test]
    fn cron_job() {
        let cron = json!({
            "metadata": {"name": "nightly"},
            "spec": {"schedule": "0 3 * * *", "jobTemplate": {"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "busybox"}]}}}}},
            "status": {"active": [{"name": "nightly-1"}], "lastScheduleTime": ago(3600 * 9)}
        });
        assert_eq!(
            cells_of("batch", "cronjobs", &cron)[..7],
            [
                json!("nightly"),
                json!("0 3 * * *"),
                json!("<none>"),
                json!("False"),
                json!(1),
                json!("9h"),
                json!("<unknown>")
            ]
        );
    }

    #[test]
    fn event_row() {
        let event = json!({
            "metadata": {"name": "web-1.17a", "creationTimestamp": ago(120)},
            "involvedObject": {"kind": "Pod", "name": "web-1", "fieldPath": "spec.containers{app}"},
            "reason": "Pulled",
            "message": "Successfully pulled image \"nginx\"\n",
            "source": {"component": "kubelet", "host": "node-a"},
            "firstTimestamp": ago(600),
            "lastTimestamp": ago(120),
            "count": 4,
            "type": "Normal"
        });
        assert_eq!(
            cells_of("", "events", &event),
            vec![
                json!("2m"),
                json!("Normal"),
                json!("Pulled"),
                json!("pod/web-1"),
                json!("spec.containers{app}"),
                json!("kubelet, node-a"),
                json!("Successfully pulled image \"nginx\""),
                json!("10m"),
                json!(4),
                json!("web-1.17a")
            ]
        );
        let columns = column_definitions("", "events");
        let names = column_names("", "events");
        assert_eq!(names[..4], ["Last Seen", "Type", "Reason", "Object"]);
        let default_names: Vec<&str> = columns
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["priority"] == json!(0))
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            default_names,
            ["Last Seen", "Type", "Reason", "Object", "Message"]
        );
    }

    #[test]
    fn event_new_style_series_and_events_v1_group() {
        let core = json!({
            "metadata": {"name": "e"},
            "involvedObject": {"kind": "Node", "name": ""},
            "eventTime": ago(300),
            "series": {"count": 7, "lastObservedTime": ago(30)},
            "reportingComponent": "scheduler",
            "firstTimestamp": null,
            "lastTimestamp": null
        });
        let cells = cells_of("", "events", &core);
        assert_eq!(cells[0], json!("30s"));
        assert_eq!(cells[3], json!("node"));
        assert_eq!(cells[5], json!("scheduler"));
        assert_eq!(cells[7], json!("5m"));
        assert_eq!(cells[8], json!(7));

        let v1 = json!({
            "metadata": {"name": "e2"},
            "regarding": {"kind": "Deployment", "name": "web"},
            "note": "Scaled up",
            "reason": "ScalingReplicaSet",
            "type": "Normal",
            "eventTime": ago(10),
            "reportingController": "deployment-controller",
            "reportingInstance": "cm-1"
        });
        let cells = cells_of("events.k8s.io", "events", &v1);
        assert_eq!(cells[0], json!("10s"));
        assert_eq!(cells[3], json!("deployment/web"));
        assert_eq!(cells[5], json!("deployment-controller, cm-1"));
        assert_eq!(cells[6], json!("Scaled up"));
        assert_eq!(cells[8], json!(1));
    }

    #[test]
    fn config_secret_service_account_namespace_lease() {
        let cm = json!({"metadata": {"name": "c"}, "data": {"a": "1", "b": "2"}, "binaryData": {"c": "AA=="}});
        assert_eq!(cells_of("", "configmaps", &cm)[1], json!(3));
        let secret = json!({"metadata": {"name": "s"}, "type": "kubernetes.io/tls", "data": {"tls.crt": "", "tls.key": ""}});
        assert_eq!(
            cells_of("", "secrets", &secret)[1..3],
            [json!("kubernetes.io/tls"), json!(2)]
        );
        assert_eq!(
            cells_of("", "secrets", &json!({"metadata": {"name": "s"}}))[1],
            json!("Opaque")
        );
        let sa = json!({"metadata": {"name": "default"}, "secrets": [{"name": "t"}]});
        assert_eq!(cells_of("", "serviceaccounts", &sa)[1], json!(1));
        let ns = json!({"metadata": {"name": "kube-system"}, "status": {"phase": "Terminating"}});
        assert_eq!(cells_of("", "namespaces", &ns)[1], json!("Terminating"));
        assert_eq!(
            cells_of("", "namespaces", &json!({"metadata": {"name": "x"}}))[1],
            json!("Active")
        );
        let lease =
            json!({"metadata": {"name": "kube-scheduler"}, "spec": {"holderIdentity": "cp-1_abc"}});
        assert_eq!(
            cells_of("coordination.k8s.io", "leases", &lease)[1],
            json!("cp-1_abc")
        );
    }

    #[test]
    fn rbac_and_builtin_default() {
        let binding = json!({
            "metadata": {"name": "admins"},
            "roleRef": {"kind": "ClusterRole", "name": "cluster-admin"},
            "subjects": [
                {"kind": "User", "name": "alice"},
                {"kind": "Group", "name": "ops"},
                {"kind": "ServiceAccount", "name": "robot", "namespace": "ci"},
                {"kind": "User", "name": "bob"}
            ]
        });
        let cells = cells_of("rbac.authorization.k8s.io", "clusterrolebindings", &binding);
        assert_eq!(cells[1], json!("ClusterRole/cluster-admin"));
        assert_eq!(
            cells[3..],
            [json!("alice, bob"), json!("ops"), json!("ci/robot")]
        );
        assert_eq!(
            column_names("rbac.authorization.k8s.io", "rolebindings"),
            ["Name", "Role", "Age", "Users", "Groups", "ServiceAccounts"]
        );

        // Roles have no printer upstream: the generic Name / Created At.
        let role =
            json!({"metadata": {"name": "reader", "creationTimestamp": "2024-03-01T10:20:30Z"}});
        assert_eq!(
            column_names("rbac.authorization.k8s.io", "clusterroles"),
            ["Name", "Created At"]
        );
        assert_eq!(
            column_definitions("rbac.authorization.k8s.io", "roles")[1]["type"],
            json!("date")
        );
        assert_eq!(
            cells_of("rbac.authorization.k8s.io", "roles", &role),
            vec![json!("reader"), json!("2024-03-01T10:20:30Z")]
        );
        let precise =
            json!({"metadata": {"name": "r", "creationTimestamp": "2024-03-01T10:20:30.987654Z"}});
        assert_eq!(
            cells_of("rbac.authorization.k8s.io", "roles", &precise)[1],
            json!("2024-03-01T10:20:30Z")
        );
        assert_eq!(column_names("", "limitranges"), ["Name", "Created At"]);
        assert_eq!(
            cells_of("", "limitranges", &json!({"metadata": {"name": "l"}}))[1],
            json!("0001-01-01T00:00:00Z")
        );
    }

    #[test]
    fn unknown_resource_is_name_and_age() {
        let widget = json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w1", "creationTimestamp": ago(45)}});
        assert_eq!(column_names("example.com", "widgets"), ["Name", "Age"]);
        let columns = column_definitions("example.com", "widgets");
        assert_eq!(columns[0]["format"], json!("name"));
        assert_eq!(
            cells_of("example.com", "widgets", &widget),
            vec![json!("w1"), json!("45s")]
        );
    }

    #[test]
    fn resource_quota_ingress_controller_revision_pvc() {
        let quota = json!({
            "metadata": {"name": "q"},
            "status": {"hard": {"limits.cpu": "2", "requests.cpu": "1", "pods": "10", "limits.memory": "2Gi"},
                       "used": {"requests.cpu": "500m", "pods": "3", "limits.cpu": "1"}}
        });
        assert_eq!(
            column_names("", "resourcequotas"),
            ["Name", "Age", "Request", "Limit"]
        );
        let cells = cells_of("", "resourcequotas", &quota);
        assert_eq!(cells[2], json!("pods: 3/10, requests.cpu: 500m/1"));
        assert_eq!(cells[3], json!("limits.cpu: 1/2, limits.memory: 0/2Gi"));

        let ingress = json!({
            "metadata": {"name": "web"},
            "spec": {"ingressClassName": "nginx", "rules": [{"host": "a.example.com"}, {}, {"host": "b.example.com"}], "tls": [{}]},
            "status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.1"}]}}
        });
        assert_eq!(
            cells_of("networking.k8s.io", "ingresses", &ingress)[..5],
            [
                json!("web"),
                json!("nginx"),
                json!("a.example.com,b.example.com"),
                json!("192.0.2.1"),
                json!("80, 443")
            ]
        );
        let bare = cells_of(
            "networking.k8s.io",
            "ingresses",
            &json!({"metadata": {"name": "i"}}),
        );
        assert_eq!(
            bare[1..5],
            [json!("<none>"), json!("*"), json!(""), json!("80")]
        );

        let revision = json!({
            "metadata": {"name": "agent-7f", "ownerReferences": [{"apiVersion": "apps/v1", "kind": "DaemonSet", "name": "agent", "controller": true}]},
            "revision": 2
        });
        assert_eq!(
            cells_of("apps", "controllerrevisions", &revision)[1..3],
            [json!("daemonset.apps/agent"), json!(2)]
        );

        let pvc = json!({
            "metadata": {"name": "data"},
            "spec": {"volumeName": "pv-1", "storageClassName": "standard", "volumeMode": "Filesystem"},
            "status": {"phase": "Bound", "capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteMany", "ReadWriteOnce"]}
        });
        assert_eq!(
            cells_of("", "persistentvolumeclaims", &pvc),
            vec![
                json!("data"),
                json!("Bound"),
                json!("pv-1"),
                json!("1Gi"),
                json!("RWO,RWX"),
                json!("standard"),
                json!("<unset>"),
                json!("<unknown>"),
                json!("Filesystem")
            ]
        );
    }

    #[test]
    fn wide_priority_flags() {
        let priorities = |group: &str, resource: &str| -> Vec<(String, u64)> {
            column_definitions(group, resource)
                .as_array()
                .unwrap()
                .iter()
                .map(|c| {
                    (
                        c["name"].as_str().unwrap().to_string(),
                        c["priority"].as_u64().unwrap(),
                    )
                })
                .collect()
        };
        let pods = priorities("", "pods");
        let wide_pods: Vec<&str> = pods
            .iter()
            .filter(|(_, p)| *p == 1)
            .map(|(n, _)| n.as_str())
            .collect();
        assert_eq!(
            wide_pods,
            ["IP", "Node", "Nominated Node", "Readiness Gates"]
        );
        let wide_deployments: Vec<String> = priorities("apps", "deployments")
            .into_iter()
            .filter(|(_, p)| *p == 1)
            .map(|(n, _)| n)
            .collect();
        assert_eq!(wide_deployments, ["Containers", "Images", "Selector"]);
        let wide_nodes: Vec<String> = priorities("", "nodes")
            .into_iter()
            .filter(|(_, p)| *p == 1)
            .map(|(n, _)| n)
            .collect();
        assert_eq!(
            wide_nodes,
            [
                "Internal-IP",
                "External-IP",
                "OS-Image",
                "Kernel-Version",
                "Container-Runtime"
            ]
        );

        // Every column definition has all five fields; Name carries format "name".
        let first = &column_definitions("", "pods")[0];
        assert_eq!(
            *first,
            json!({"name": "Name", "type": "string", "format": "name", "description": NAME_DESC, "priority": 0})
        );
        assert_eq!(column_definitions("", "pods")[3]["type"], json!("string"));
        assert_eq!(
            column_definitions("apps", "replicasets")[1]["type"],
            json!("integer")
        );
        assert_eq!(
            column_names("batch", "jobs"),
            [
                "Name",
                "Status",
                "Completions",
                "Duration",
                "Age",
                "Containers",
                "Images",
                "Selector"
            ]
        );
    }

    #[test]
    fn every_printer_has_one_cell_per_column() {
        let resources = [
            ("", "pods"),
            ("", "podtemplates"),
            ("", "replicationcontrollers"),
            ("", "services"),
            ("", "endpoints"),
            ("", "nodes"),
            ("", "namespaces"),
            ("", "events"),
            ("", "configmaps"),
            ("", "secrets"),
            ("", "serviceaccounts"),
            ("", "persistentvolumes"),
            ("", "persistentvolumeclaims"),
            ("", "resourcequotas"),
            ("", "limitranges"),
            ("apps", "replicasets"),
            ("apps", "daemonsets"),
            ("apps", "deployments"),
            ("apps", "statefulsets"),
            ("apps", "controllerrevisions"),
            ("batch", "jobs"),
            ("batch", "cronjobs"),
            ("policy", "poddisruptionbudgets"),
            ("autoscaling", "horizontalpodautoscalers"),
            ("discovery.k8s.io", "endpointslices"),
            ("networking.k8s.io", "ingresses"),
            ("networking.k8s.io", "ingressclasses"),
            ("networking.k8s.io", "networkpolicies"),
            ("events.k8s.io", "events"),
            ("storage.k8s.io", "storageclasses"),
            ("storage.k8s.io", "csidrivers"),
            ("storage.k8s.io", "csinodes"),
            ("storage.k8s.io", "volumeattachments"),
            ("scheduling.k8s.io", "priorityclasses"),
            ("node.k8s.io", "runtimeclasses"),
            ("coordination.k8s.io", "leases"),
            ("rbac.authorization.k8s.io", "roles"),
            ("rbac.authorization.k8s.io", "rolebindings"),
            ("rbac.authorization.k8s.io", "clusterroles"),
            ("rbac.authorization.k8s.io", "clusterrolebindings"),
            (
                "admissionregistration.k8s.io",
                "mutatingwebhookconfigurations",
            ),
            (
                "admissionregistration.k8s.io",
                "validatingwebhookconfigurations",
            ),
            ("certificates.k8s.io", "certificatesigningrequests"),
            ("apiregistration.k8s.io", "apiservices"),
            ("apiextensions.k8s.io", "customresourcedefinitions"),
            ("example.com", "widgets"),
        ];
        let objects = [
            json!({}),
            json!(null),
            json!({"metadata": {"name": "x"}, "spec": null, "status": null}),
            json!([1, 2]),
        ];
        for (group, resource) in resources {
            let width = column_definitions(group, resource)
                .as_array()
                .unwrap()
                .len();
            for object in &objects {
                let cells = cells_of(group, resource, object);
                assert_eq!(cells.len(), width, "{group}/{resource} with {object}");
            }
        }
    }

    #[test]
    fn other_printers() {
        let hpa = json!({
            "apiVersion": "autoscaling/v2",
            "metadata": {"name": "web"},
            "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "web"}, "minReplicas": 2, "maxReplicas": 10,
                     "metrics": [
                         {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}}},
                         {"type": "Resource", "resource": {"name": "memory", "target": {"type": "AverageValue", "averageValue": "1Gi"}}},
                         {"type": "Pods", "pods": {"metric": {"name": "qps"}, "target": {"type": "AverageValue", "averageValue": "100"}}}
                     ]},
            "status": {"currentReplicas": 3, "currentMetrics": [{"type": "Resource", "resource": {"name": "cpu", "current": {"averageUtilization": 40, "averageValue": "200m"}}}]}
        });
        assert_eq!(
            cells_of("autoscaling", "horizontalpodautoscalers", &hpa)[..6],
            [
                json!("web"),
                json!("Deployment/web"),
                json!("cpu: 40%/80%, memory: <unknown>/1Gi + 1 more..."),
                json!("2"),
                json!(10),
                json!(3)
            ]
        );
        let v1 = json!({"apiVersion": "autoscaling/v1", "metadata": {"name": "h"}, "spec": {"targetCPUUtilizationPercentage": 50}});
        assert_eq!(
            cells_of("autoscaling", "horizontalpodautoscalers", &v1)[2],
            json!("cpu: <unknown>/50%")
        );

        let pdb = json!({"metadata": {"name": "p"}, "spec": {"minAvailable": "50%"}, "status": {"disruptionsAllowed": 1}});
        assert_eq!(
            cells_of("policy", "poddisruptionbudgets", &pdb)[1..4],
            [json!("50%"), json!("N/A"), json!(1)]
        );

        let sc = json!({"metadata": {"name": "standard", "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}},
                        "provisioner": "rancher.io/local-path", "volumeBindingMode": "WaitForFirstConsumer"});
        assert_eq!(
            cells_of("storage.k8s.io", "storageclasses", &sc)[..5],
            [
                json!("standard (default)"),
                json!("rancher.io/local-path"),
                json!("Delete"),
                json!("WaitForFirstConsumer"),
                json!(false)
            ]
        );

        let csr = json!({"metadata": {"name": "c"}, "spec": {"signerName": "kubernetes.io/kube-apiserver-client", "username": "alice", "expirationSeconds": 86400},
                         "status": {"conditions": [{"type": "Approved"}], "certificate": "LS0t"}});
        assert_eq!(
            cells_of("certificates.k8s.io", "certificatesigningrequests", &csr)[2..],
            [
                json!("kubernetes.io/kube-apiserver-client"),
                json!("alice"),
                json!("24h"),
                json!("Approved,Issued")
            ]
        );

        let np = json!({"metadata": {"name": "deny"}, "spec": {"podSelector": {}}});
        assert_eq!(
            cells_of("networking.k8s.io", "networkpolicies", &np)[1],
            json!("<none>")
        );
        let bad = json!({"metadata": {"name": "rs"}, "spec": {"selector": {"matchExpressions": [{"key": "a", "operator": "Bogus"}]}}});
        assert_eq!(cells_of("apps", "replicasets", &bad)[7], json!("<error>"));
        let bad_deployment = json!({"metadata": {"name": "d"}, "spec": {"selector": {"matchExpressions": [{"key": "a", "operator": "In"}]}}});
        assert_eq!(
            cells_of("apps", "deployments", &bad_deployment)[7],
            json!("<invalid>")
        );
        let exists = json!({"metadata": {"name": "rs"}, "spec": {"selector": {"matchExpressions": [
            {"key": "b", "operator": "DoesNotExist"}, {"key": "a", "operator": "Exists"}, {"key": "c", "operator": "NotIn", "values": ["y", "x"]}]}}});
        assert_eq!(
            cells_of("apps", "replicasets", &exists)[7],
            json!("a,!b,c notin (x,y)")
        );

        let pv = json!({"metadata": {"name": "pv-1"}, "spec": {"capacity": {"storage": "5Gi"}, "accessModes": ["ReadWriteOnce"],
                        "claimRef": {"namespace": "default", "name": "data"}, "storageClassName": "standard"},
                        "status": {"phase": "Bound"}});
        assert_eq!(
            cells_of("", "persistentvolumes", &pv)[1..9],
            [
                json!("5Gi"),
                json!("RWO"),
                json!("Retain"),
                json!("Bound"),
                json!("default/data"),
                json!("standard"),
                json!("<unset>"),
                json!("")
            ]
        );

        let api_service = json!({"metadata": {"name": "v1beta1.metrics.k8s.io"}, "spec": {"service": {"namespace": "kube-system", "name": "metrics-server"}},
                                 "status": {"conditions": [{"type": "Available", "status": "False", "reason": "MissingEndpoints"}]}});
        assert_eq!(
            cells_of("apiregistration.k8s.io", "apiservices", &api_service)[1..3],
            [
                json!("kube-system/metrics-server"),
                json!("False (MissingEndpoints)")
            ]
        );
    }

    #[test]
    fn include_object_variants() {
        assert_eq!(IncludeObject::from_query(None), IncludeObject::Metadata);
        assert_eq!(
            IncludeObject::from_query(Some("Metadata")),
            IncludeObject::Metadata
        );
        assert_eq!(
            IncludeObject::from_query(Some("Object")),
            IncludeObject::Object
        );
        assert_eq!(IncludeObject::from_query(Some("None")), IncludeObject::None);
        assert_eq!(
            IncludeObject::from_query(Some("bogus")),
            IncludeObject::Metadata
        );

        let pod = running_pod();
        let none = row("", "pods", &pod, IncludeObject::None, now());
        assert!(none.get("object").is_none());
        let metadata = row("", "pods", &pod, IncludeObject::Metadata, now());
        assert_eq!(
            metadata["object"],
            json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": pod["metadata"]})
        );
        let full = row("", "pods", &pod, IncludeObject::Object, now());
        assert_eq!(full["object"], pod);
        // Running pods carry no row conditions.
        assert!(full.get("conditions").is_none());
    }

    #[test]
    fn whole_table() {
        let pods = [running_pod(), json!({"metadata": {"name": "other"}})];
        let t = table(
            "",
            "pods",
            &pods,
            "42",
            Some("next-page"),
            IncludeObject::Metadata,
            now(),
        );
        assert_eq!(t["kind"], json!("Table"));
        assert_eq!(t["apiVersion"], json!("meta.k8s.io/v1"));
        assert_eq!(
            t["metadata"],
            json!({"resourceVersion": "42", "continue": "next-page"})
        );
        assert_eq!(t["columnDefinitions"].as_array().unwrap().len(), 9);
        assert_eq!(t["rows"].as_array().unwrap().len(), 2);
        assert_eq!(t["rows"][1]["cells"][0], json!("other"));
        assert_eq!(
            t["rows"][1]["object"]["kind"],
            json!("PartialObjectMetadata")
        );

        let empty = table(
            "apps",
            "deployments",
            &[],
            "",
            None,
            IncludeObject::None,
            now(),
        );
        assert_eq!(empty["metadata"], json!({}));
        assert_eq!(empty["rows"], json!([]));
        let no_continue = table(
            "apps",
            "deployments",
            &[],
            "7",
            Some(""),
            IncludeObject::None,
            now(),
        );
        assert_eq!(no_continue["metadata"], json!({"resourceVersion": "7"}));
    }
}
