//! The Node: registration, status and the heartbeat Lease (upstream's
//! `kubelet_node_status.go`, `nodestatus/setters.go` and `nodelease`).
//!
//! - Registration creates the Node (or, when it exists, brings its labels and taints from the
//!   flags), then the status is posted at once and every `--node-status-update-frequency`
//!   (10 s); a changed condition is posted at once, as upstream does.
//! - The heartbeat is a Lease `kube-node-lease/<node>` renewed every quarter of its duration
//!   (40 s → 10 s), owned by the Node so it goes with it. The node lifecycle controller reads
//!   the Lease, not the status, to decide whether the node is alive.

pub mod machine;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::{
    DaemonEndpoint, Node, NodeAddress, NodeCondition, NodeDaemonEndpoints, NodeSpec, NodeStatus,
    NodeSystemInfo, ObjectReference,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, OwnerReference, Time};
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::Client;
use serde_json::json;

use crate::config::KubeletArgs;
use machine::Machine;

/// The version the kubelet reports (the API the cluster serves).
pub const KUBELET_VERSION: &str = "v1.32.0";

/// What the node status loop needs to know about the rest of the kubelet.
pub struct NodeHealth {
    /// Why pods cannot get a network yet (no CNI configuration), if so.
    pub network_not_ready: Box<dyn Fn() -> Option<String> + Send + Sync>,
}

pub struct NodeAgent {
    client: Client,
    args: Arc<KubeletArgs>,
    machine: Machine,
    recorder: Arc<skiff_events::Recorder>,
}

impl NodeAgent {
    pub fn new(
        client: Client,
        args: Arc<KubeletArgs>,
        recorder: Arc<skiff_events::Recorder>,
    ) -> NodeAgent {
        let machine = Machine::read(&args.root_dir);
        NodeAgent {
            client,
            args,
            machine,
            recorder,
        }
    }

    fn reference(&self) -> ObjectReference {
        // Upstream's kubelet refers to its Node with the node name as uid.
        ObjectReference {
            kind: Some("Node".into()),
            name: Some(self.args.node_name.clone()),
            uid: Some(self.args.node_name.clone()),
            ..ObjectReference::default()
        }
    }

    async fn event(&self, type_: &str, reason: &str, message: &str) {
        let _ = self
            .recorder
            .record(
                &self.client,
                &self.reference(),
                type_,
                reason,
                reason,
                message,
            )
            .await;
    }

    /// The Node as this kubelet registers it.
    fn desired(&self) -> anyhow::Result<Node> {
        let args = &self.args;
        let mut labels = BTreeMap::from([
            ("kubernetes.io/hostname".to_string(), args.node_name.clone()),
            ("kubernetes.io/os".to_string(), "linux".to_string()),
            ("kubernetes.io/arch".to_string(), "amd64".to_string()),
            ("beta.kubernetes.io/os".to_string(), "linux".to_string()),
            ("beta.kubernetes.io/arch".to_string(), "amd64".to_string()),
        ]);
        labels.extend(args.labels()?);
        let taints = args.taints()?;
        Ok(Node {
            metadata: ObjectMeta {
                name: Some(args.node_name.clone()),
                labels: Some(labels),
                annotations: Some(BTreeMap::from([(
                    "volumes.kubernetes.io/controller-managed-attach-detach".to_string(),
                    "true".to_string(),
                )])),
                ..ObjectMeta::default()
            },
            spec: Some(NodeSpec {
                taints: (!taints.is_empty()).then_some(taints),
                ..NodeSpec::default()
            }),
            status: None,
        })
    }

    /// Creates the Node, or reconciles the labels and taints of an existing one.
    pub async fn register(&self) -> anyhow::Result<Node> {
        let api: Api<Node> = Api::all(self.client.clone());
        let desired = self.desired()?;
        let mut delay = Duration::from_millis(200);
        loop {
            let result = match api.create(&PostParams::default(), &desired).await {
                Ok(node) => {
                    tracing::info!(node = %self.args.node_name, "registered the node");
                    Ok(node)
                }
                Err(kube::Error::Api(e)) if e.code == 409 => {
                    let patch = json!({"metadata": {"labels": desired.metadata.labels}});
                    api.patch(
                        &self.args.node_name,
                        &PatchParams::default(),
                        &Patch::Merge(patch),
                    )
                    .await
                    .map_err(anyhow::Error::from)
                }
                Err(e) => Err(e.into()),
            };
            match result {
                Ok(node) => {
                    self.event("Normal", "Starting", "Starting kubelet.").await;
                    return Ok(node);
                }
                Err(e) => {
                    tracing::warn!("registering node {}: {e:#}; retrying", self.args.node_name);
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(7));
                }
            }
        }
    }

    fn conditions(&self, health: &NodeHealth, previous: &[NodeCondition]) -> Vec<NodeCondition> {
        let now = Time(jiff::Timestamp::now());
        let not_ready = (health.network_not_ready)();
        let wanted = [
            (
                "MemoryPressure",
                "False",
                "KubeletHasSufficientMemory",
                "kubelet has sufficient memory available".to_string(),
            ),
            (
                "DiskPressure",
                "False",
                "KubeletHasNoDiskPressure",
                "kubelet has no disk pressure".to_string(),
            ),
            (
                "PIDPressure",
                "False",
                "KubeletHasSufficientPID",
                "kubelet has sufficient PID available".to_string(),
            ),
            match &not_ready {
                None => (
                    "Ready",
                    "True",
                    "KubeletReady",
                    "kubelet is posting ready status".to_string(),
                ),
                Some(why) => ("Ready", "False", "KubeletNotReady", why.clone()),
            },
        ];
        wanted
            .into_iter()
            .map(|(type_, status, reason, message)| {
                let before = previous.iter().find(|c| c.type_ == type_);
                let transition = match before {
                    Some(b) if b.status == status => b.last_transition_time.clone(),
                    _ => Some(now.clone()),
                };
                NodeCondition {
                    type_: type_.into(),
                    status: status.into(),
                    reason: Some(reason.into()),
                    message: Some(message),
                    last_heartbeat_time: Some(now.clone()),
                    last_transition_time: transition,
                }
            })
            .collect()
    }

    fn status(&self, conditions: Vec<NodeCondition>) -> NodeStatus {
        let args = &self.args;
        let capacity = self.machine.capacity(args.capacity.as_ref());
        let allocatable = Machine::allocatable(&capacity);
        NodeStatus {
            capacity: Some(capacity),
            allocatable: Some(allocatable),
            addresses: Some(vec![
                NodeAddress {
                    type_: "InternalIP".into(),
                    address: args.node_ip.to_string(),
                },
                NodeAddress {
                    type_: "Hostname".into(),
                    address: args.node_name.clone(),
                },
            ]),
            daemon_endpoints: Some(NodeDaemonEndpoints {
                kubelet_endpoint: Some(DaemonEndpoint {
                    port: i32::from(args.port),
                }),
            }),
            node_info: Some(NodeSystemInfo {
                architecture: "amd64".into(),
                boot_id: self.machine.boot_id.clone(),
                container_runtime_version: format!("skiff://{}", env!("CARGO_PKG_VERSION")),
                kernel_version: self.machine.kernel_version.clone(),
                kube_proxy_version: KUBELET_VERSION.into(),
                kubelet_version: KUBELET_VERSION.into(),
                machine_id: self.machine.machine_id.clone(),
                operating_system: "linux".into(),
                os_image: self.machine.os_image.clone(),
                system_uuid: self.machine.system_uuid.clone(),
                running_in_user_namespace: None,
                swap: None,
            }),
            conditions: Some(conditions),
            ..NodeStatus::default()
        }
    }

    /// Posts the status now and then every update period, and at once when a condition
    /// changes. Runs until the task is dropped.
    pub async fn keep_status(self: Arc<Self>, health: NodeHealth) {
        let api: Api<Node> = Api::all(self.client.clone());
        let mut previous: Vec<NodeCondition> = Vec::new();
        let period = Duration::from_secs(self.args.node_status_update_frequency.max(1));
        let mut last_post = tokio::time::Instant::now() - period;
        loop {
            let conditions = self.conditions(&health, &previous);
            let changed = conditions.iter().any(|c| {
                !previous
                    .iter()
                    .any(|p| p.type_ == c.type_ && p.status == c.status && p.message == c.message)
            });
            if changed || last_post.elapsed() >= period {
                let status = self.status(conditions.clone());
                let patch = json!({"status": status});
                match api
                    .patch_status(
                        &self.args.node_name,
                        &PatchParams::default(),
                        &Patch::Strategic(patch),
                    )
                    .await
                {
                    Ok(_) => {
                        for c in &conditions {
                            let before = previous.iter().find(|p| p.type_ == c.type_);
                            if before.map(|b| &b.status) != Some(&c.status) {
                                self.condition_event(c).await;
                            }
                        }
                        previous = conditions;
                        last_post = tokio::time::Instant::now();
                    }
                    Err(kube::Error::Api(e)) if e.code == 404 => {
                        // Deleted under us (kubectl delete node): register again, as upstream.
                        tracing::warn!("node {} is gone; registering again", self.args.node_name);
                        let _ = self.register().await;
                        previous.clear();
                    }
                    Err(e) => tracing::warn!("posting node status: {e}"),
                }
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    async fn condition_event(&self, c: &NodeCondition) {
        let name = &self.args.node_name;
        let (type_, reason, message) = match (c.type_.as_str(), c.status.as_str()) {
            ("Ready", "True") => (
                "Normal",
                "NodeReady",
                format!("Node {name} status is now: NodeReady"),
            ),
            ("Ready", _) => (
                "Normal",
                "NodeNotReady",
                format!("Node {name} status is now: NodeNotReady"),
            ),
            (_, _) => {
                let reason = c
                    .reason
                    .clone()
                    .unwrap_or_default()
                    .replace("Kubelet", "Node");
                ("Normal", "", format!("Node {name} status is now: {reason}"))
            }
        };
        let reason = if reason.is_empty() {
            c.reason
                .clone()
                .unwrap_or_default()
                .replace("Kubelet", "Node")
        } else {
            reason.to_string()
        };
        self.event(type_, &reason, &message).await;
    }

    /// Renews `kube-node-lease/<node>` every quarter of its duration.
    pub async fn keep_lease(self: Arc<Self>) {
        let api: Api<Lease> = Api::namespaced(self.client.clone(), "kube-node-lease");
        let duration = self.args.node_lease_duration_seconds.max(4);
        let period = Duration::from_secs((duration / 4) as u64);
        let name = self.args.node_name.clone();
        loop {
            let now = MicroTime(jiff::Timestamp::now());
            let result = match api.get_opt(&name).await {
                Ok(Some(mut lease)) => {
                    let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
                    spec.holder_identity = Some(name.clone());
                    spec.lease_duration_seconds = Some(duration);
                    spec.renew_time = Some(now);
                    api.replace(&name, &PostParams::default(), &lease)
                        .await
                        .map(|_| ())
                }
                Ok(None) => {
                    let owner = Api::<Node>::all(self.client.clone())
                        .get_opt(&name)
                        .await
                        .ok()
                        .flatten()
                        .and_then(|n| n.metadata.uid)
                        .map(|uid| OwnerReference {
                            api_version: "v1".into(),
                            kind: "Node".into(),
                            name: name.clone(),
                            uid,
                            ..OwnerReference::default()
                        });
                    let lease = Lease {
                        metadata: ObjectMeta {
                            name: Some(name.clone()),
                            namespace: Some("kube-node-lease".into()),
                            owner_references: owner.map(|o| vec![o]),
                            ..ObjectMeta::default()
                        },
                        spec: Some(LeaseSpec {
                            holder_identity: Some(name.clone()),
                            lease_duration_seconds: Some(duration),
                            renew_time: Some(now),
                            ..LeaseSpec::default()
                        }),
                    };
                    api.create(&PostParams::default(), &lease).await.map(|_| ())
                }
                Err(e) => Err(e),
            };
            let wait = match result {
                Ok(()) => period,
                Err(e) => {
                    tracing::warn!("renewing node lease: {e}");
                    Duration::from_millis(200 * 7).min(period)
                }
            };
            tokio::time::sleep(wait).await;
        }
    }
}
