//! What every plugin sees: a node with the pods bound (or assumed) to it and what they request
//! (upstream's `framework.NodeInfo`), a pod's requests as upstream computes them
//! (`resource.PodRequests`), and the outcome of a filter.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Container, Node, Pod, Taint};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use crate::quantity::{milli_value, value};

/// cpu (millicores), memory and ephemeral storage (bytes), and extended resources (units).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Resources {
    pub milli_cpu: i64,
    pub memory: i64,
    pub ephemeral_storage: i64,
    pub scalar: BTreeMap<String, i64>,
}

impl Resources {
    pub fn from_list(list: Option<&BTreeMap<String, Quantity>>) -> Resources {
        let mut r = Resources::default();
        for (name, q) in list.into_iter().flatten() {
            match name.as_str() {
                "cpu" => r.milli_cpu = milli_value(&q.0).unwrap_or(0),
                "memory" => r.memory = value(&q.0).unwrap_or(0),
                "ephemeral-storage" => r.ephemeral_storage = value(&q.0).unwrap_or(0),
                "pods" => {}
                other if is_extended(other) => {
                    r.scalar.insert(other.to_string(), value(&q.0).unwrap_or(0));
                }
                _ => {}
            }
        }
        r
    }

    pub fn add(&mut self, other: &Resources) {
        self.milli_cpu += other.milli_cpu;
        self.memory += other.memory;
        self.ephemeral_storage += other.ephemeral_storage;
        for (k, v) in &other.scalar {
            *self.scalar.entry(k.clone()).or_default() += v;
        }
    }

    pub fn sub(&mut self, other: &Resources) {
        self.milli_cpu -= other.milli_cpu;
        self.memory -= other.memory;
        self.ephemeral_storage -= other.ephemeral_storage;
        for (k, v) in &other.scalar {
            *self.scalar.entry(k.clone()).or_default() -= v;
        }
    }

    /// Each field the larger of the two.
    pub fn max(&mut self, other: &Resources) {
        self.milli_cpu = self.milli_cpu.max(other.milli_cpu);
        self.memory = self.memory.max(other.memory);
        self.ephemeral_storage = self.ephemeral_storage.max(other.ephemeral_storage);
        for (k, v) in &other.scalar {
            let e = self.scalar.entry(k.clone()).or_default();
            *e = (*e).max(*v);
        }
    }
}

/// Extended resources (`example.com/gpu`) and hugepages: everything namespaced by a domain.
fn is_extended(name: &str) -> bool {
    name.contains('/') || name.starts_with("hugepages-")
}

fn container_requests(c: &Container) -> Resources {
    let resources = c.resources.as_ref();
    // A limit without a request means the request equals the limit (API defaulting).
    let mut r = Resources::from_list(resources.and_then(|r| r.limits.as_ref()));
    let requests = Resources::from_list(resources.and_then(|r| r.requests.as_ref()));
    let requested = resources.and_then(|r| r.requests.as_ref());
    let has = |name: &str| requested.is_some_and(|m| m.contains_key(name));
    if has("cpu") {
        r.milli_cpu = requests.milli_cpu;
    }
    if has("memory") {
        r.memory = requests.memory;
    }
    if has("ephemeral-storage") {
        r.ephemeral_storage = requests.ephemeral_storage;
    }
    for (k, v) in requests.scalar {
        r.scalar.insert(k, v);
    }
    r
}

fn is_restartable(c: &Container) -> bool {
    c.restart_policy.as_deref() == Some("Always")
}

/// What a pod requests of a node (upstream's `PodRequests`): the larger of its containers' sum
/// and each init container's need — sidecars (restartable init containers) run beside the
/// later init containers and the app containers — plus the pod overhead.
pub fn pod_requests(pod: &Pod) -> Resources {
    let Some(spec) = pod.spec.as_ref() else {
        return Resources::default();
    };
    let mut reqs = Resources::default();
    for c in &spec.containers {
        reqs.add(&container_requests(c));
    }
    let mut sidecars = Resources::default();
    let mut init_max = Resources::default();
    for c in spec.init_containers.iter().flatten() {
        let r = container_requests(c);
        let need = if is_restartable(c) {
            reqs.add(&r);
            sidecars.add(&r);
            sidecars.clone()
        } else {
            let mut need = r;
            need.add(&sidecars);
            need
        };
        init_max.max(&need);
    }
    reqs.max(&init_max);
    reqs.add(&Resources::from_list(spec.overhead.as_ref()));
    reqs
}

/// Requests as scoring counts them: a container without a cpu or memory request counts 100m
/// and 200 MiB (upstream's `schedutil.GetNonzeroRequests`), so best-effort pods still spread.
pub fn nonzero_requests(pod: &Pod) -> (i64, i64) {
    const DEFAULT_MILLI_CPU: i64 = 100;
    const DEFAULT_MEMORY: i64 = 200 << 20;
    let Some(spec) = pod.spec.as_ref() else {
        return (0, 0);
    };
    let mut cpu = 0;
    let mut memory = 0;
    for c in &spec.containers {
        let requests = c.resources.as_ref().and_then(|r| r.requests.as_ref());
        let r = container_requests(c);
        let set = |name: &str| requests.is_some_and(|m| m.contains_key(name));
        cpu += if set("cpu") || r.milli_cpu != 0 {
            r.milli_cpu
        } else {
            DEFAULT_MILLI_CPU
        };
        memory += if set("memory") || r.memory != 0 {
            r.memory
        } else {
            DEFAULT_MEMORY
        };
    }
    (cpu, memory)
}

/// A host port a pod uses: (protocol, host IP, port).
pub type HostPort = (String, String, i32);

pub fn host_ports(pod: &Pod) -> Vec<HostPort> {
    let Some(spec) = pod.spec.as_ref() else {
        return Vec::new();
    };
    spec.containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
        .flat_map(|c| c.ports.iter().flatten())
        .filter_map(|p| {
            let port = p.host_port.filter(|p| *p > 0)?;
            let ip = p
                .host_ip
                .clone()
                .filter(|ip| !ip.is_empty())
                .unwrap_or_else(|| "0.0.0.0".to_string());
            Some((p.protocol.clone().unwrap_or_else(|| "TCP".into()), ip, port))
        })
        .collect()
}

/// A node and what is placed on it.
#[derive(Clone, Debug)]
pub struct NodeInfo {
    pub node: Arc<Node>,
    pub pods: Vec<Arc<Pod>>,
    /// Sum of the pods' requests.
    pub requested: Resources,
    /// Sum of the pods' requests as scoring counts them (cpu, memory).
    pub nonzero_requested: (i64, i64),
    pub allocatable: Resources,
    pub allowed_pods: i64,
    pub used_ports: Vec<HostPort>,
    /// The pods with any pod affinity or anti-affinity (upstream's `PodsWithAffinity`).
    pub pods_with_affinity: Vec<Arc<Pod>>,
    /// The pods with required pod anti-affinity (`PodsWithRequiredAntiAffinity`).
    pub pods_with_required_anti_affinity: Vec<Arc<Pod>>,
    /// The node's taints and the one its Ready condition implies (`effective_taints`).
    pub taints: Vec<Taint>,
}

impl NodeInfo {
    pub fn new(node: Arc<Node>) -> NodeInfo {
        let status_allocatable = node.status.as_ref().and_then(|s| s.allocatable.as_ref());
        let allowed_pods = status_allocatable
            .and_then(|a| a.get("pods"))
            .and_then(|q| value(&q.0))
            .unwrap_or(0);
        NodeInfo {
            allocatable: Resources::from_list(status_allocatable),
            allowed_pods,
            taints: effective_taints(&node),
            node,
            pods: Vec::new(),
            requested: Resources::default(),
            nonzero_requested: (0, 0),
            used_ports: Vec::new(),
            pods_with_affinity: Vec::new(),
            pods_with_required_anti_affinity: Vec::new(),
        }
    }

    pub fn name(&self) -> &str {
        self.node.metadata.name.as_deref().unwrap_or_default()
    }

    /// The node's labels (empty when it has none).
    pub fn labels(&self) -> &BTreeMap<String, String> {
        self.node.metadata.labels.as_ref().unwrap_or(&NO_LABELS)
    }

    pub fn add_pod(&mut self, pod: Arc<Pod>) {
        self.requested.add(&pod_requests(&pod));
        let (cpu, memory) = nonzero_requests(&pod);
        self.nonzero_requested.0 += cpu;
        self.nonzero_requested.1 += memory;
        self.used_ports.extend(host_ports(&pod));
        let (any, required_anti) = has_pod_affinity(&pod);
        if any {
            self.pods_with_affinity.push(pod.clone());
        }
        if required_anti {
            self.pods_with_required_anti_affinity.push(pod.clone());
        }
        self.pods.push(pod);
    }

    /// Removes the pod with this uid; false when it was not here.
    pub fn remove_pod(&mut self, uid: &str) -> bool {
        let Some(i) = self
            .pods
            .iter()
            .position(|p| p.metadata.uid.as_deref() == Some(uid))
        else {
            return false;
        };
        let pod = self.pods.remove(i);
        self.requested.sub(&pod_requests(&pod));
        let (cpu, memory) = nonzero_requests(&pod);
        self.nonzero_requested.0 -= cpu;
        self.nonzero_requested.1 -= memory;
        for port in host_ports(&pod) {
            if let Some(j) = self.used_ports.iter().position(|p| *p == port) {
                self.used_ports.remove(j);
            }
        }
        let other = |p: &Arc<Pod>| p.metadata.uid.as_deref() != Some(uid);
        self.pods_with_affinity.retain(other);
        self.pods_with_required_anti_affinity.retain(other);
        true
    }
}

static NO_LABELS: BTreeMap<String, String> = BTreeMap::new();

/// The pod's labels (empty when it has none).
pub fn pod_labels(pod: &Pod) -> &BTreeMap<String, String> {
    pod.metadata.labels.as_ref().unwrap_or(&NO_LABELS)
}

/// Whether the pod has any pod (anti-)affinity, and whether it has required anti-affinity.
fn has_pod_affinity(pod: &Pod) -> (bool, bool) {
    let Some(a) = pod.spec.as_ref().and_then(|s| s.affinity.as_ref()) else {
        return (false, false);
    };
    let required_anti = a
        .pod_anti_affinity
        .as_ref()
        .and_then(|a| {
            a.required_during_scheduling_ignored_during_execution
                .as_ref()
        })
        .is_some_and(|t| !t.is_empty());
    (
        a.pod_affinity.is_some() || a.pod_anti_affinity.is_some(),
        required_anti,
    )
}

/// A label selector as upstream evaluates it (`labels.Selector`): every requirement must hold.
/// A missing selector (`nil`) matches nothing, an empty one (`{}`) everything; one with an
/// unknown operator matches nothing, as upstream's conversion fails for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Selector {
    nothing: bool,
    requirements: Vec<Requirement>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Requirement {
    key: String,
    operator: Operator,
    values: Vec<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operator {
    In,
    NotIn,
    Exists,
    DoesNotExist,
}

impl Selector {
    pub fn new(selector: Option<&LabelSelector>) -> Selector {
        let Some(s) = selector else {
            return Selector {
                nothing: true,
                requirements: Vec::new(),
            };
        };
        let mut out = Selector {
            nothing: false,
            requirements: Vec::new(),
        };
        for (k, v) in s.match_labels.iter().flatten() {
            out.require(k, Operator::In, std::slice::from_ref(v));
        }
        for e in s.match_expressions.iter().flatten() {
            let operator = match e.operator.as_str() {
                "In" => Operator::In,
                "NotIn" => Operator::NotIn,
                "Exists" => Operator::Exists,
                "DoesNotExist" => Operator::DoesNotExist,
                _ => {
                    out.nothing = true;
                    continue;
                }
            };
            out.require(&e.key, operator, e.values.as_deref().unwrap_or_default());
        }
        out
    }

    /// Adds a requirement (as upstream's `Selector.Add`).
    pub fn require(&mut self, key: &str, operator: Operator, values: &[String]) {
        self.requirements.push(Requirement {
            key: key.to_string(),
            operator,
            values: values.to_vec(),
        });
    }

    /// Matches nothing (a missing selector).
    pub fn is_nothing(&self) -> bool {
        self.nothing
    }

    /// Matches everything (`{}`): upstream's `Selector.Empty`.
    pub fn is_everything(&self) -> bool {
        !self.nothing && self.requirements.is_empty()
    }

    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        !self.nothing
            && self.requirements.iter().all(|r| {
                let value = labels.get(&r.key);
                match r.operator {
                    Operator::In => value.is_some_and(|v| r.values.contains(v)),
                    Operator::NotIn => !value.is_some_and(|v| r.values.contains(v)),
                    Operator::Exists => value.is_some(),
                    Operator::DoesNotExist => value.is_none(),
                }
            })
    }
}

/// Why a node does not fit, as the FailedScheduling message counts it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unfit {
    pub reasons: Vec<String>,
    /// Removing pods from the node would not help (taints, affinity, node name, …): upstream's
    /// `UnschedulableAndUnresolvable`, which preemption skips.
    pub unresolvable: bool,
}

impl Unfit {
    pub fn resolvable(reason: impl Into<String>) -> Unfit {
        Unfit {
            reasons: vec![reason.into()],
            unresolvable: false,
        }
    }

    pub fn unresolvable(reason: impl Into<String>) -> Unfit {
        Unfit {
            reasons: vec![reason.into()],
            unresolvable: true,
        }
    }
}

pub type FilterResult = Result<(), Unfit>;

/// The pod's priority (set from its PriorityClass at admission; 0 when unset).
pub fn priority(pod: &Pod) -> i32 {
    pod.spec.as_ref().and_then(|s| s.priority).unwrap_or(0)
}

/// The node's taints, with the not-ready/unreachable one its Ready condition implies: a node
/// whose Ready condition is not True counts as tainted `node.kubernetes.io/not-ready:NoSchedule`
/// (`unreachable` when Unknown) even before a node lifecycle controller writes that taint.
fn effective_taints(node: &Node) -> Vec<Taint> {
    let mut taints: Vec<Taint> = node
        .spec
        .as_ref()
        .and_then(|s| s.taints.clone())
        .unwrap_or_default();
    let ready = node
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
        .map(|c| c.status.as_str());
    let implied = match ready {
        Some("True") => None,
        Some("Unknown") => Some("node.kubernetes.io/unreachable"),
        _ => Some("node.kubernetes.io/not-ready"),
    };
    if let Some(key) = implied {
        if !taints.iter().any(|t| t.key == key) {
            taints.push(Taint {
                key: key.into(),
                effect: "NoSchedule".into(),
                ..Taint::default()
            });
        }
    }
    taints
}
