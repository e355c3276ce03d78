//! The pods bound to this node: one kube-runtime watcher (`spec.nodeName=<node>`) feeds a
//! worker per pod (`worker.rs`). After every (re)list, pods the API no longer has — deleted
//! while the kubelet was away — are terminated and cleaned up from their records on disk.

pub mod env;
pub mod images;
pub mod probes;
pub mod sandbox;
pub mod spec;
pub mod state;
pub mod status;
pub mod volumes;
pub mod worker;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt;
use tokio::sync::watch;

use crate::Kubelet;

/// Runs until the watch ends (it does not: kube-runtime retries with backoff).
pub async fn run(k: Arc<Kubelet>) -> anyhow::Result<()> {
    let mut recovered = state::recover(&k.args.root_dir);
    tracing::info!(
        sandboxes = recovered.sandboxes.len(),
        containers = recovered.containers.values().map(Vec::len).sum::<usize>(),
        "recovered local pod state"
    );
    let api: Api<Pod> = Api::all(k.client.clone());
    let config = watcher::Config::default().fields(&format!("spec.nodeName={}", k.args.node_name));
    let mut events = watcher::watcher(api, config).default_backoff().boxed();
    let mut workers: HashMap<String, watch::Sender<Option<Arc<Pod>>>> = HashMap::new();
    let mut listed: Option<HashSet<String>> = None;
    while let Some(event) = events.next().await {
        match event {
            Ok(Event::Init) => listed = Some(HashSet::new()),
            Ok(Event::InitApply(pod)) | Ok(Event::Apply(pod)) => {
                let Some(uid) = pod.metadata.uid.clone() else {
                    continue;
                };
                if let Some(seen) = listed.as_mut() {
                    seen.insert(uid.clone());
                }
                let pod = Arc::new(pod);
                let alive = workers
                    .get(&uid)
                    .is_some_and(|tx| tx.send(Some(pod.clone())).is_ok());
                if !alive {
                    let (tx, rx) = watch::channel(Some(pod));
                    let sandbox = recovered.sandboxes.remove(&uid);
                    let instances = recovered.containers.remove(&uid).unwrap_or_default();
                    let worker = worker::Worker::new(k.clone(), uid.clone(), sandbox, instances);
                    tokio::spawn(worker.run(rx));
                    workers.insert(uid, tx);
                }
            }
            Ok(Event::Delete(pod)) => {
                if let Some(uid) = pod.metadata.uid.as_ref() {
                    if let Some(tx) = workers.remove(uid) {
                        let _ = tx.send(None);
                    }
                }
            }
            Ok(Event::InitDone) => {
                let Some(seen) = listed.take() else { continue };
                // Workers of pods that vanished while the watch was down.
                let gone: Vec<String> = workers
                    .keys()
                    .filter(|u| !seen.contains(*u))
                    .cloned()
                    .collect();
                for uid in gone {
                    if let Some(tx) = workers.remove(&uid) {
                        let _ = tx.send(None);
                    }
                }
                // Local state of pods the API no longer has (deleted while we were down).
                let orphans: HashSet<String> = recovered
                    .sandboxes
                    .keys()
                    .chain(recovered.containers.keys())
                    .filter(|u| !seen.contains(*u))
                    .cloned()
                    .collect();
                for uid in orphans {
                    let sandbox = recovered.sandboxes.remove(&uid);
                    let instances = recovered.containers.remove(&uid).unwrap_or_default();
                    tracing::info!(%uid, "cleaning up a pod deleted while the kubelet was away");
                    let worker = worker::Worker::new(k.clone(), uid, sandbox, instances);
                    let (_tx, rx) = watch::channel(None);
                    tokio::spawn(worker.run(rx));
                }
            }
            Err(e) => tracing::warn!("watching pods: {e}"),
        }
        // Workers that finished (pod deleted) drop their receiver.
        workers.retain(|_, tx| !tx.is_closed());
    }
    anyhow::bail!("the pod watch ended")
}
