//! Mirror pods (upstream's `pkg/kubelet/pod/mirror_client.go` and the mirror-pod part of
//! `SyncPod` and `HandlePodCleanups`): the API's view of the static pods, so `kubectl get
//! pods` lists them and their status is seen.
//!
//! A mirror pod is the static pod with the annotation `kubernetes.io/config.mirror: <hash>`
//! and an owner reference to this Node (v1 Node, name, uid, controller), as NodeRestriction
//! requires. The API server gives it its own uid; the pod worker posts the static pod's status
//! to it through [`MirrorUids`].
//!
//! This task keeps the API in line with the static pods, after the first complete list of
//! this node's pods and on every change (of the manifests or of mirror pods), and every 10 s
//! while something failed (the API server is down — the static pods run on regardless):
//! - a static pod without a mirror pod gets one;
//! - a mirror pod being deleted (`kubectl delete`), or of an older hash (the manifest was
//!   edited), is deleted at once (grace 0, uid precondition) and made again;
//! - a mirror pod whose static pod is gone (the manifest was removed) is deleted.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{Api, DeleteParams, PostParams, Preconditions};
use tokio::sync::{mpsc, watch};

use super::file::{Snapshot, CONFIG_HASH, CONFIG_MIRROR};
use crate::Kubelet;

/// How often failed steps are tried again.
const RETRY: Duration = Duration::from_secs(10);

/// Which mirror pod (its uid in the API) stands for which static pod (by the static pod's uid).
#[derive(Debug, Default)]
pub struct MirrorUids(Mutex<HashMap<String, String>>);

impl MirrorUids {
    /// The uid of the mirror pod of static pod `uid`, if the API has a current one.
    pub fn get(&self, uid: &str) -> Option<String> {
        self.0.lock().expect("not poisoned").get(uid).cloned()
    }

    fn set(&self, links: HashMap<String, String>) {
        *self.0.lock().expect("not poisoned") = links;
    }
}

/// What the pod watch saw of mirror pods on this node (kube-runtime's watcher events).
#[derive(Debug)]
pub enum Seen {
    /// A (re)list begins.
    Init,
    Apply(Pod),
    Delete(Pod),
    /// The (re)list is complete: mirror pods not seen in it are gone.
    InitDone,
}

/// Whether `pod` is a mirror pod.
pub fn is_mirror(pod: &Pod) -> bool {
    annotation(pod, CONFIG_MIRROR).is_some()
}

fn annotation<'a>(pod: &'a Pod, key: &str) -> Option<&'a String> {
    pod.metadata.annotations.as_ref().and_then(|a| a.get(key))
}

/// (namespace, name)
pub type Key = (String, String);

pub fn key(pod: &Pod) -> Key {
    (
        pod.metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into()),
        pod.metadata.name.clone().unwrap_or_default(),
    )
}

/// One step toward the API matching the static pods.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    Delete {
        namespace: String,
        name: String,
        uid: String,
    },
    Create(Key),
}

/// What to do, given the static pods and the mirror pods the API has (upstream: a mirror pod
/// that is being deleted or is not `IsMirrorPodOf` its static pod is deleted and made again;
/// orphans are deleted).
pub fn plan(statics: &[Pod], mirrors: &BTreeMap<Key, Pod>) -> Vec<Action> {
    let wanted: BTreeMap<Key, &Pod> = statics.iter().map(|p| (key(p), p)).collect();
    let mut actions = Vec::new();
    for (k, mirror) in mirrors {
        let current = wanted.get(k).is_some_and(|s| {
            mirror.metadata.deletion_timestamp.is_none()
                && annotation(mirror, CONFIG_MIRROR) == annotation(s, CONFIG_HASH)
        });
        if !current {
            actions.push(Action::Delete {
                namespace: k.0.clone(),
                name: k.1.clone(),
                uid: mirror.metadata.uid.clone().unwrap_or_default(),
            });
            if wanted.contains_key(k) {
                actions.push(Action::Create(k.clone()));
            }
        }
    }
    for k in wanted.keys() {
        if !mirrors.contains_key(k) {
            actions.push(Action::Create(k.clone()));
        }
    }
    actions
}

/// Static pod uid → mirror pod uid, for the mirror pods that are current.
pub fn links(statics: &[Pod], mirrors: &BTreeMap<Key, Pod>) -> HashMap<String, String> {
    statics
        .iter()
        .filter_map(|s| {
            let mirror = mirrors.get(&key(s))?;
            let current = mirror.metadata.deletion_timestamp.is_none()
                && annotation(mirror, CONFIG_MIRROR) == annotation(s, CONFIG_HASH);
            if !current {
                return None;
            }
            Some((s.metadata.uid.clone()?, mirror.metadata.uid.clone()?))
        })
        .collect()
}

/// The mirror pod of `static_pod` (upstream's `CreateMirrorPod`).
pub fn mirror_pod(static_pod: &Pod, node: &str, node_uid: &str) -> Pod {
    let mut pod = static_pod.clone();
    let hash = annotation(static_pod, CONFIG_HASH)
        .cloned()
        .unwrap_or_default();
    pod.metadata
        .annotations
        .get_or_insert_with(BTreeMap::new)
        .insert(CONFIG_MIRROR.into(), hash);
    pod.metadata.owner_references = Some(vec![OwnerReference {
        api_version: "v1".into(),
        kind: "Node".into(),
        name: node.to_string(),
        uid: node_uid.to_string(),
        controller: Some(true),
        block_owner_deletion: None,
    }]);
    // The API server gives the object its own identity and status.
    pod.metadata.uid = None;
    pod.metadata.resource_version = None;
    pod.metadata.creation_timestamp = None;
    pod.status = None;
    pod
}

/// Keeps the mirror pods in line with the static pods until the kubelet stops.
pub async fn run(
    k: Arc<Kubelet>,
    mut statics: watch::Receiver<Snapshot>,
    mut seen: mpsc::UnboundedReceiver<Seen>,
    uids: Arc<MirrorUids>,
) {
    let mut sync = Sync {
        k,
        mirrors: BTreeMap::new(),
        node_uid: None,
        failures: HashMap::new(),
    };
    let mut listing: Option<BTreeMap<Key, Pod>> = None;
    let mut synced = false;
    let mut statics_open = true;
    let mut retry = tokio::time::interval(RETRY);
    retry.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            event = seen.recv() => {
                let Some(event) = event else { return };
                let mut next = Some(event);
                // Take everything queued, then act once.
                while let Some(event) = next {
                    match event {
                        Seen::Init => listing = Some(BTreeMap::new()),
                        Seen::Apply(pod) => {
                            let map = listing.as_mut().unwrap_or(&mut sync.mirrors);
                            map.insert(key(&pod), pod);
                        }
                        Seen::Delete(pod) => {
                            let k = key(&pod);
                            let map = listing.as_mut().unwrap_or(&mut sync.mirrors);
                            if map.get(&k).is_some_and(|m| m.metadata.uid == pod.metadata.uid) {
                                map.remove(&k);
                            }
                        }
                        Seen::InitDone => {
                            if let Some(listed) = listing.take() {
                                sync.mirrors = listed;
                                synced = true;
                            }
                        }
                    }
                    next = seen.try_recv().ok();
                }
            }
            changed = statics.changed(), if statics_open => statics_open = changed.is_ok(),
            _ = retry.tick() => {}
        }
        if !synced {
            continue;
        }
        let snapshot = statics.borrow().clone();
        uids.set(links(&snapshot, &sync.mirrors));
        let actions = plan(&snapshot, &sync.mirrors);
        if actions.is_empty() {
            continue;
        }
        for action in actions {
            sync.apply(&snapshot, action).await;
        }
        uids.set(links(&snapshot, &sync.mirrors));
    }
}

struct Sync {
    k: Arc<Kubelet>,
    /// The mirror pods on this node as last seen (by the watch, or by our own writes).
    mirrors: BTreeMap<Key, Pod>,
    node_uid: Option<String>,
    /// The last failure per pod (each reported once).
    failures: HashMap<Key, String>,
}

impl Sync {
    async fn apply(&mut self, snapshot: &[Pod], action: Action) {
        match action {
            Action::Delete {
                namespace,
                name,
                uid,
            } => {
                let k = (namespace.clone(), name.clone());
                let api: Api<Pod> = Api::namespaced(self.k.client.clone(), &namespace);
                let params = DeleteParams {
                    grace_period_seconds: Some(0),
                    preconditions: Some(Preconditions {
                        uid: Some(uid.clone()),
                        resource_version: None,
                    }),
                    ..DeleteParams::default()
                };
                match api.delete(&name, &params).await {
                    Ok(_) => {
                        tracing::info!(pod = %format!("{namespace}/{name}"), %uid, "deleted the mirror pod");
                        self.forget(&k, &uid);
                    }
                    // Gone already, or another object by that name now: the watch tells.
                    Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => {
                        self.forget(&k, &uid)
                    }
                    Err(e) => self.failed(&k, format!("deleting the mirror pod: {e}")),
                }
            }
            Action::Create(k) => {
                let Some(static_pod) = snapshot.iter().find(|p| key(p) == k) else {
                    return;
                };
                if self.mirrors.contains_key(&k) {
                    // Its deletion failed: try again later.
                    return;
                }
                let node = self.k.args.node_name.clone();
                let node_uid = match self.node_uid.clone() {
                    Some(uid) => uid,
                    None => {
                        let nodes: Api<Node> = Api::all(self.k.client.clone());
                        match nodes.get(&node).await {
                            Ok(n) => match n.metadata.uid {
                                Some(uid) => {
                                    self.node_uid = Some(uid.clone());
                                    uid
                                }
                                None => return self.failed(&k, format!("node {node} has no uid")),
                            },
                            Err(e) => {
                                return self.failed(
                                    &k,
                                    format!("creating the mirror pod: reading node {node}: {e}"),
                                )
                            }
                        }
                    }
                };
                let mirror = mirror_pod(static_pod, &node, &node_uid);
                let api: Api<Pod> = Api::namespaced(self.k.client.clone(), &k.0);
                match api.create(&PostParams::default(), &mirror).await {
                    Ok(created) => {
                        tracing::info!(pod = %format!("{}/{}", k.0, k.1), uid = ?created.metadata.uid, "created the mirror pod");
                        self.failures.remove(&k);
                        self.mirrors.insert(k, created);
                    }
                    Err(kube::Error::Api(e)) if e.code == 409 => {
                        // Someone's pod by that name: if it is a mirror pod, the next pass
                        // judges it (upstream: the same hash is success).
                        if let Ok(existing) = api.get(&k.1).await {
                            if is_mirror(&existing) {
                                self.mirrors.insert(k.clone(), existing);
                                return;
                            }
                        }
                        self.failed(&k, format!("creating the mirror pod: {}", e.message));
                    }
                    Err(e) => {
                        if matches!(&e, kube::Error::Api(a) if a.code == 403) {
                            // The Node may have been made again with another uid.
                            self.node_uid = None;
                        }
                        self.failed(&k, format!("creating the mirror pod: {e}"));
                    }
                }
            }
        }
    }

    fn forget(&mut self, k: &Key, uid: &str) {
        self.failures.remove(k);
        if self
            .mirrors
            .get(k)
            .is_some_and(|m| m.metadata.uid.as_deref() == Some(uid))
        {
            self.mirrors.remove(k);
        }
    }

    fn failed(&mut self, k: &Key, message: String) {
        if self.failures.get(k) != Some(&message) {
            tracing::warn!(pod = %format!("{}/{}", k.0, k.1), "{message}; trying again");
            self.failures.insert(k.clone(), message);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use std::path::Path;

    fn static_pod(image: &str) -> Pod {
        let manifest = format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: web}}\nspec: {{containers: [{{name: c, image: {image}}}]}}\n"
        );
        super::super::file::decode(manifest.as_bytes(), Path::new("/m/web.yaml"), "n1").unwrap()
    }

    fn mirror(of: &Pod, uid: &str) -> Pod {
        let mut m = mirror_pod(of, "n1", "node-uid");
        m.metadata.uid = Some(uid.into());
        m
    }

    fn map(pods: &[Pod]) -> BTreeMap<Key, Pod> {
        pods.iter().map(|p| (key(p), p.clone())).collect()
    }

    #[test]
    fn the_mirror_pod_is_upstreams() {
        let s = static_pod("busybox");
        let m = mirror_pod(&s, "n1", "node-uid");
        let hash = s.metadata.annotations.as_ref().unwrap()[CONFIG_HASH].clone();
        let annotations = m.metadata.annotations.clone().unwrap();
        assert_eq!(annotations[CONFIG_MIRROR], hash);
        assert_eq!(annotations[CONFIG_HASH], hash);
        assert_eq!(annotations["kubernetes.io/config.source"], "file");
        assert!(is_mirror(&m) && !is_mirror(&s));
        let owner = &m.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!(
            (
                owner.api_version.as_str(),
                owner.kind.as_str(),
                owner.name.as_str()
            ),
            ("v1", "Node", "n1")
        );
        assert_eq!(owner.uid, "node-uid");
        assert_eq!(owner.controller, Some(true));
        assert_eq!(owner.block_owner_deletion, None);
        assert_eq!(m.metadata.uid, None);
        assert_eq!(m.metadata.name.as_deref(), Some("web-n1"));
        assert_eq!(m.spec.as_ref().unwrap().node_name.as_deref(), Some("n1"));
        // What NodeRestriction checks: no API object references.
        assert_eq!(
            skiff_podutil::api_object_reference(&serde_json::to_value(&m).unwrap()),
            None
        );
    }

    #[test]
    fn missing_mirror_pods_are_made() {
        let s = static_pod("busybox");
        assert_eq!(
            plan(std::slice::from_ref(&s), &BTreeMap::new()),
            [Action::Create(key(&s))]
        );
        let m = mirror(&s, "m1");
        assert!(plan(std::slice::from_ref(&s), &map(std::slice::from_ref(&m))).is_empty());
        let links = links(std::slice::from_ref(&s), &map(&[m]));
        assert_eq!(links[s.metadata.uid.as_deref().unwrap()], "m1");
    }

    #[test]
    fn deleted_or_outdated_mirror_pods_are_replaced_and_orphans_removed() {
        let old = static_pod("busybox:1");
        let new = static_pod("busybox:2");
        // The manifest changed: the mirror pod of the old hash goes, a new one comes.
        let stale = mirror(&old, "m1");
        let replace = vec![
            Action::Delete {
                namespace: "default".into(),
                name: "web-n1".into(),
                uid: "m1".into(),
            },
            Action::Create(key(&new)),
        ];
        assert_eq!(
            plan(
                std::slice::from_ref(&new),
                &map(std::slice::from_ref(&stale))
            ),
            replace
        );
        assert!(links(std::slice::from_ref(&new), &map(&[stale])).is_empty());
        // `kubectl delete` of the mirror pod: deleted for good, then made again.
        let mut deleting = mirror(&new, "m1");
        deleting.metadata.deletion_timestamp = Some(Time(jiff::Timestamp::now()));
        assert_eq!(plan(std::slice::from_ref(&new), &map(&[deleting])), replace);
        // The manifest is gone: the mirror pod is an orphan.
        assert_eq!(
            plan(&[], &map(&[mirror(&new, "m2")])),
            [Action::Delete {
                namespace: "default".into(),
                name: "web-n1".into(),
                uid: "m2".into(),
            }]
        );
    }
}
