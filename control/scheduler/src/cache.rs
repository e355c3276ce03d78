//! The scheduler's view of the cluster (upstream's `internal/cache`): every node with the pods
//! on it. A pod chosen for a node is *assumed* there at once — counted before its binding lands
//! — so the next decision already sees it; a failed binding forgets it. Pods bound to a node the
//! scheduler has not seen yet are kept aside and counted when the node appears.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Node, Pod};
use kube::runtime::watcher::Event;

use crate::framework::NodeInfo;

#[derive(Default)]
pub struct Cache {
    nodes: BTreeMap<String, NodeInfo>,
    /// uid → node of every pod counted (bound or assumed).
    placed: HashMap<String, String>,
    /// Pods counted because we chose them, not yet seen bound by the watch.
    assumed: HashSet<String>,
    /// Pods bound to nodes not (yet) in `nodes`.
    waiting_for_node: HashMap<String, Vec<Arc<Pod>>>,
    /// Nodes and pods seen since a watch restarted (`Init`), to drop the rest at `InitDone`.
    relisting_nodes: Option<HashSet<String>>,
    relisting_pods: Option<HashSet<String>>,
}

fn uid(pod: &Pod) -> String {
    pod.metadata.uid.clone().unwrap_or_default()
}

/// Pods that hold node resources: bound, and not finished.
fn occupies(pod: &Pod) -> Option<&str> {
    let node = pod
        .spec
        .as_ref()?
        .node_name
        .as_deref()
        .filter(|n| !n.is_empty())?;
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    (!matches!(phase, Some("Succeeded") | Some("Failed"))).then_some(node)
}

impl Cache {
    pub fn nodes(&self) -> Vec<&NodeInfo> {
        self.nodes.values().collect()
    }

    pub fn node(&self, name: &str) -> Option<&NodeInfo> {
        self.nodes.get(name)
    }

    pub fn is_assumed(&self, uid: &str) -> bool {
        self.assumed.contains(uid)
    }

    /// Applies a node watch event; true when the change may let waiting pods fit.
    pub fn node_event(&mut self, ev: Event<Node>) -> bool {
        match ev {
            Event::Init => {
                self.relisting_nodes = Some(HashSet::new());
                false
            }
            Event::InitApply(node) | Event::Apply(node) => {
                let name = node.metadata.name.clone().unwrap_or_default();
                if let Some(seen) = self.relisting_nodes.as_mut() {
                    seen.insert(name.clone());
                }
                self.put_node(name, Arc::new(node));
                true
            }
            Event::Delete(node) => {
                self.remove_node(node.metadata.name.as_deref().unwrap_or_default());
                false
            }
            Event::InitDone => {
                if let Some(seen) = self.relisting_nodes.take() {
                    let gone: Vec<String> = self
                        .nodes
                        .keys()
                        .filter(|n| !seen.contains(*n))
                        .cloned()
                        .collect();
                    for n in gone {
                        self.remove_node(&n);
                    }
                }
                true
            }
        }
    }

    fn put_node(&mut self, name: String, node: Arc<Node>) {
        match self.nodes.get_mut(&name) {
            Some(info) => {
                // Keep the pods; take the new allocatable, labels, taints and conditions.
                let pods = std::mem::take(&mut info.pods);
                *info = NodeInfo::new(node);
                for p in pods {
                    info.add_pod(p);
                }
            }
            None => {
                let mut info = NodeInfo::new(node);
                for p in self.waiting_for_node.remove(&name).unwrap_or_default() {
                    info.add_pod(p);
                }
                self.nodes.insert(name, info);
            }
        }
    }

    fn remove_node(&mut self, name: &str) {
        if let Some(info) = self.nodes.remove(name) {
            self.waiting_for_node
                .entry(name.to_string())
                .or_default()
                .extend(info.pods);
        }
    }

    /// Marks the start of a pod relist (the pod watch restarted).
    pub fn pods_relisting(&mut self) {
        self.relisting_pods = Some(HashSet::new());
    }

    /// Ends a pod relist: pods not seen again are gone. True when resources were freed.
    pub fn pods_relisted(&mut self) -> bool {
        let Some(seen) = self.relisting_pods.take() else {
            return false;
        };
        let gone: Vec<String> = self
            .placed
            .keys()
            .filter(|u| !seen.contains(*u) && !self.assumed.contains(*u))
            .cloned()
            .collect();
        let freed = !gone.is_empty();
        for u in gone {
            self.pod_deleted(&u);
        }
        freed
    }

    /// A pod that is not pending (bound, finished or deleting) changed. True when resources
    /// were freed (a pod finished).
    pub fn pod_updated(&mut self, pod: Arc<Pod>) -> bool {
        let uid = uid(&pod);
        if let Some(seen) = self.relisting_pods.as_mut() {
            seen.insert(uid.clone());
        }
        let Some(node) = occupies(&pod).map(str::to_string) else {
            // Finished (or never bound): it holds nothing any more.
            return self.pod_deleted(&uid);
        };
        self.assumed.remove(&uid);
        self.unplace(&uid);
        self.place(pod, &node);
        false
    }

    /// A pod is gone. True when it held resources.
    pub fn pod_deleted(&mut self, uid: &str) -> bool {
        self.assumed.remove(uid);
        self.unplace(uid)
    }

    /// Counts `pod` on `node` before its binding lands.
    pub fn assume(&mut self, pod: Arc<Pod>, node: &str) {
        let uid = uid(&pod);
        self.unplace(&uid);
        self.assumed.insert(uid);
        self.place(pod, node);
    }

    /// The binding failed: the assumed pod no longer counts.
    pub fn forget(&mut self, uid: &str) {
        if self.assumed.remove(uid) {
            self.unplace(uid);
        }
    }

    fn place(&mut self, pod: Arc<Pod>, node: &str) {
        self.placed.insert(uid(&pod), node.to_string());
        match self.nodes.get_mut(node) {
            Some(info) => info.add_pod(pod),
            None => self
                .waiting_for_node
                .entry(node.to_string())
                .or_default()
                .push(pod),
        }
    }

    fn unplace(&mut self, uid: &str) -> bool {
        let Some(node) = self.placed.remove(uid) else {
            return false;
        };
        if let Some(info) = self.nodes.get_mut(&node) {
            info.remove_pod(uid);
        } else if let Some(list) = self.waiting_for_node.get_mut(&node) {
            list.retain(|p| p.metadata.uid.as_deref() != Some(uid));
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::testing::{node, pod, requests};
    use serde_json::json;

    fn bound(name: &str, node: &str) -> Arc<Pod> {
        let mut p = pod(name, requests("500m", "1Gi"));
        p.spec.as_mut().unwrap().node_name = Some(node.into());
        Arc::new(p)
    }

    #[test]
    fn assumed_pods_count_until_forgotten() {
        let mut c = Cache::default();
        c.node_event(Event::Apply(
            (*node("a", "2", "4Gi", json!({})).node).clone(),
        ));
        c.assume(Arc::new(pod("p", requests("1", "1Gi"))), "a");
        assert_eq!(c.node("a").unwrap().requested.milli_cpu, 1000);
        assert!(c.is_assumed("uid-p"));
        c.forget("uid-p");
        assert_eq!(c.node("a").unwrap().requested.milli_cpu, 0);
        // Assumed, then seen bound by the watch: counted once.
        c.assume(Arc::new(pod("p", requests("1", "1Gi"))), "a");
        c.pod_updated(bound("p", "a"));
        assert!(!c.is_assumed("uid-p"));
        assert_eq!(c.node("a").unwrap().requested.milli_cpu, 500);
        assert_eq!(c.node("a").unwrap().pods.len(), 1);
    }

    #[test]
    fn pods_of_unknown_nodes_wait_for_them() {
        let mut c = Cache::default();
        c.pod_updated(bound("p", "late"));
        assert!(c.node("late").is_none());
        c.node_event(Event::Apply(
            (*node("late", "2", "4Gi", json!({})).node).clone(),
        ));
        assert_eq!(c.node("late").unwrap().pods.len(), 1);
        // Node updates keep the pods; node deletion sets them aside again.
        c.node_event(Event::Apply(
            (*node("late", "4", "4Gi", json!({})).node).clone(),
        ));
        assert_eq!(c.node("late").unwrap().allocatable.milli_cpu, 4000);
        assert_eq!(c.node("late").unwrap().pods.len(), 1);
        c.node_event(Event::Delete(
            (*node("late", "4", "4Gi", json!({})).node).clone(),
        ));
        assert!(c.pod_deleted("uid-p"));
    }

    #[test]
    fn finished_pods_free_their_node() {
        let mut c = Cache::default();
        c.node_event(Event::Apply(
            (*node("a", "2", "4Gi", json!({})).node).clone(),
        ));
        c.pod_updated(bound("p", "a"));
        let mut done = (*bound("p", "a")).clone();
        done.status = Some(serde_json::from_value(json!({"phase": "Succeeded"})).unwrap());
        assert!(c.pod_updated(Arc::new(done)));
        assert_eq!(c.node("a").unwrap().pods.len(), 0);
    }
}
